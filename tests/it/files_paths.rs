//! Paths in `files()` mean what they mean to code in the sandbox, as on E2B: `/home/user/...`,
//! relative paths and `/tmp` on the local sandbox with and without isolation; a cwd built
//! from `server_root()`; removing a missing path; links the sandbox plants, read through
//! `files()` (typed errors, never `Authentication`) and opened from the host
//! (`as_local().open` / `create` refuse them); a token the server no longer takes.

use std::path::{Path, PathBuf};

use crate::support::python_server::PythonServer;
use crate::support::{deadline, init_logs};
use e2b_blocking::{ContextOptions, Error, FileType, Isolation, LocalOptions, Sandbox};

/// A local sandbox isolated with bubblewrap (`true`) or not.
fn local_with(isolated: bool) -> Sandbox {
    init_logs();
    let isolation = if isolated {
        Isolation::Bubblewrap
    } else {
        Isolation::None
    };
    Sandbox::builder()
        .local_with(LocalOptions::new().isolation(isolation))
        .expect("local sandbox starts")
}

/// A fresh directory of the host, for files the sandbox must not reach.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("e2b-paths-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What code in the sandbox evaluates `expr` to, as its repr.
fn eval(sbx: &Sandbox, code: &str) -> String {
    let exec = sbx.run_code(code).unwrap();
    assert!(exec.error.is_none(), "{code}: {:?}", exec.error);
    exec.text().unwrap_or_default().to_string()
}

/// Python's repr of a plain path.
fn quoted(path: &str) -> String {
    format!("'{path}'")
}

#[test]
fn absolute_relative_and_tmp_paths_mean_what_code_sees() {
    deadline(|| {
        for isolated in [true, false] {
            let sbx = local_with(isolated);
            let files = sbx.files();
            let root = sbx.server_root().unwrap();
            let host_root = sbx.as_local().unwrap().root().to_path_buf();
            if isolated {
                assert_eq!(root, "/home/user");
            } else {
                assert_eq!(Path::new(&root), host_root.canonicalize().unwrap());
            }
            assert_eq!(eval(&sbx, "import os\nos.getcwd()"), quoted(&root));

            // The root by its absolute name, as code sees it, and relative paths: one place.
            files.write(&format!("{root}/abs.txt"), "absolute").unwrap();
            assert_eq!(files.read("abs.txt").unwrap(), "absolute");
            let info = files.get_info(&format!("{root}/abs.txt")).unwrap();
            assert_eq!(info.path, "abs.txt");
            assert_eq!(
                eval(&sbx, &format!("open('{root}/abs.txt').read()")),
                "'absolute'"
            );
            if isolated {
                files.write("/home/user/x", "home").unwrap();
                assert_eq!(files.read("x").unwrap(), "home");
                assert_eq!(eval(&sbx, "open('/home/user/x').read()"), "'home'");
            }

            // Elsewhere, through a kernel: in the isolated sandbox its private /tmp.
            let dir = format!("/tmp/e2b-paths-{}", uuid::Uuid::new_v4().simple());
            let written = files.write(&format!("{dir}/deep/x.txt"), "to tmp").unwrap();
            assert_eq!(written.path, format!("{dir}/deep/x.txt"));
            assert_eq!(written.size, Some(6));
            let from_code = eval(&sbx, &format!("open('{dir}/deep/x.txt').read()"));
            assert_eq!(from_code, "'to tmp'");
            eval(
                &sbx,
                &format!("open('{dir}/from-code.txt', 'w').write('made by code')"),
            );
            assert_eq!(
                files.read(&format!("{dir}/from-code.txt")).unwrap(),
                "made by code"
            );
            let listing = files.list(&dir).unwrap();
            let paths: Vec<&str> = listing.iter().map(|e| e.path.as_str()).collect();
            assert_eq!(
                paths,
                [format!("{dir}/deep"), format!("{dir}/from-code.txt")]
            );
            assert_eq!(listing[0].kind, FileType::Dir);
            assert!(files.exists(&format!("{dir}/deep/x.txt")).unwrap());
            assert_eq!(Path::new(&dir).exists(), !isolated, "the host's /tmp");
            // Moves between the root and /tmp (two file systems in the isolated sandbox).
            files
                .rename(&format!("{dir}/deep/x.txt"), "moved.txt")
                .unwrap();
            assert_eq!(files.read("moved.txt").unwrap(), "to tmp");
            files
                .rename("moved.txt", &format!("{dir}/back.txt"))
                .unwrap();
            assert!(!files.exists("moved.txt").unwrap());
            files.remove(&dir).unwrap();
            assert!(!files.exists(&dir).unwrap());

            // Errors name the path as given, never the sandbox's host directory.
            let missing = format!("{root}/nope.txt");
            for (given, named) in [
                (missing.as_str(), missing.as_str()),
                ("nope.txt", "nope.txt"),
                ("/tmp/e2b-nope/x", "/tmp/e2b-nope/x"),
            ] {
                match files.read(given) {
                    Err(Error::FileNotFound { path }) => assert_eq!(path, named),
                    other => panic!("{given}: {other:?}"),
                }
            }
            if isolated {
                let err = files.read("/home/user/nope.txt").unwrap_err().to_string();
                assert!(!err.contains(&host_root.display().to_string()), "{err}");
            }
            // The root and what holds it cannot be removed or moved away.
            for held in ["", ".", "..", "/", root.as_str()] {
                assert!(
                    matches!(files.remove(held), Err(Error::InvalidArgument(_))),
                    "{held}"
                );
            }
            assert!(matches!(
                files.rename("abs.txt", &root),
                Err(Error::InvalidArgument(_))
            ));
            assert!(files.exists("abs.txt").unwrap());
        }
    });
}

#[test]
fn a_cwd_built_from_server_root_works_for_contexts_and_commands() {
    deadline(|| {
        for isolated in [true, false] {
            let sbx = local_with(isolated);
            let root = sbx.server_root().unwrap();
            sbx.files().make_dir(&format!("{root}/sub")).unwrap();
            let sub = format!("{root}/sub");
            let ctx = sbx
                .create_context(ContextOptions::new().cwd(sub.clone()))
                .unwrap();
            let exec = sbx
                .code("import os\nos.getcwd()")
                .context(&ctx)
                .run()
                .unwrap();
            assert_eq!(exec.text(), Some(quoted(&sub).as_str()));
            let out = sbx.commands().cmd("pwd").cwd(root.clone()).run().unwrap();
            assert_eq!(out.stdout.trim_end(), root);
        }
    });
}

/// As E2B's `remove` (envd's `os.RemoveAll`): a missing path is not an error, in the root,
/// outside it and on a server with default contents settings (through a kernel).
#[test]
fn removing_a_missing_path_succeeds_everywhere() {
    deadline(|| {
        let sbx = local_with(true);
        let files = sbx.files();
        files.remove("never-there.txt").unwrap();
        files.remove("no/such/dir").unwrap();
        files.remove("/tmp/e2b-never-there").unwrap();
        files.write("gone.txt", "x").unwrap();
        files.remove("gone.txt").unwrap();
        files.remove("gone.txt").unwrap();
        // A link goes, not what it points to.
        files.write("target.txt", "kept").unwrap();
        eval(&sbx, "import os\nos.symlink('target.txt', 'link')");
        files.remove("link").unwrap();
        assert_eq!(files.read("target.txt").unwrap(), "kept");

        let server = PythonServer::template_jupyter();
        let stock = Sandbox::jupyter(&server.url, "").unwrap();
        stock.files().remove("never-there.txt").unwrap();
        stock.files().write("gone.txt", "x").unwrap();
        stock.files().remove("gone.txt").unwrap();
        stock.files().remove("gone.txt").unwrap();
        assert!(!server.root().join("gone.txt").exists());
    });
}

/// Links the sandbox planted are read as code would read them: one that leads out of the
/// sandbox (to a host file it cannot see, to nothing) is `FileNotFound`, `/etc/shadow` is
/// `PermissionDenied`, a FIFO is refused at once; none is `Authentication`, and none makes the
/// host read its own file.
#[test]
fn reads_through_planted_links_are_typed_errors_never_authentication() {
    deadline(|| {
        let scratch = Scratch::new();
        let secret = scratch.0.join("secret.txt");
        std::fs::write(&secret, "host secret").unwrap();
        for isolated in [true, false] {
            let sbx = local_with(isolated);
            let files = sbx.files();
            let tmp = format!("/tmp/e2b-paths-{}", uuid::Uuid::new_v4().simple());
            eval(
                &sbx,
                &format!(
                    "import os\n\
                     os.symlink({secret:?}, 'leak')\n\
                     os.symlink('/nonexistent-e2b-target', 'dangling')\n\
                     os.symlink('/etc/shadow', 'shadow')\n\
                     os.mkfifo('fifo')\n\
                     os.makedirs('{tmp}')\n\
                     open('{tmp}/in-tmp.txt', 'w').write('in tmp')\n\
                     os.symlink('{tmp}/in-tmp.txt', 'to-tmp')\n\
                     os.symlink('{tmp}', 'tmp-dir')"
                ),
            );
            let read = |path: &str| files.read(path);
            if isolated {
                // The host's file is not in the sandbox: the link leads nowhere.
                match read("leak") {
                    Err(Error::FileNotFound { path }) => assert_eq!(path, "leak"),
                    other => panic!("leak: {other:?}"),
                }
                match read("shadow") {
                    Err(Error::PermissionDenied { path }) => assert_eq!(path, "shadow"),
                    other => panic!("shadow: {other:?}"),
                }
            } else {
                // Without isolation code reads the host's files, and so does files().
                assert_eq!(read("leak").unwrap(), "host secret");
            }
            assert!(
                matches!(read("dangling"), Err(Error::FileNotFound { .. })),
                "{:?}",
                read("dangling")
            );
            assert!(
                matches!(read("fifo"), Err(Error::InvalidArgument(_))),
                "{:?}",
                read("fifo")
            );
            // Out of the root but in the sandbox: what code reads.
            assert_eq!(read("to-tmp").unwrap(), "in tmp");
            assert_eq!(read("tmp-dir/in-tmp.txt").unwrap(), "in tmp");
            let mut sink = Vec::new();
            assert_eq!(files.read_to("to-tmp", &mut sink).unwrap(), 6);
            files.remove(&tmp).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host secret");
    });
}

/// `as_local().open` and `create` reach files in the root from the host, and refuse every
/// link the sandbox plants (to a host file, to a host directory) and a FIFO, without touching
/// what they point to.
#[test]
fn host_side_access_refuses_links_the_sandbox_planted() {
    deadline(|| {
        let scratch = Scratch::new();
        let secret = scratch.0.join("secret.txt");
        std::fs::write(&secret, "host secret").unwrap();
        for isolated in [true, false] {
            let sbx = local_with(isolated);
            let local = sbx.as_local().unwrap();
            eval(
                &sbx,
                &format!(
                    "import os\n\
                     os.makedirs('out')\n\
                     open('out/result.txt', 'w').write('from code')\n\
                     os.symlink({secret:?}, 'evil')\n\
                     os.symlink({dir:?}, 'evil-dir')\n\
                     os.symlink('out', 'out-link')\n\
                     os.mkfifo('fifo')",
                    dir = scratch.0
                ),
            );
            let mut text = String::new();
            std::io::Read::read_to_string(&mut local.open("out/result.txt").unwrap(), &mut text)
                .unwrap();
            assert_eq!(text, "from code");
            std::io::Write::write_all(&mut local.create("out/from-host.txt").unwrap(), b"host")
                .unwrap();
            // Code in the sandbox can change what the host wrote (as root: given to nobody).
            eval(&sbx, "open('out/from-host.txt', 'a').write('+code')");
            assert_eq!(sbx.files().read("out/from-host.txt").unwrap(), "host+code");

            for path in ["evil", "evil-dir/secret.txt", "out-link/result.txt"] {
                let err = local.open(path).unwrap_err();
                assert!(
                    matches!(err, Error::PermissionDenied { .. }),
                    "{path}: {err:?}"
                );
            }
            for path in ["evil", "evil-dir/planted.txt", "out-link/x.txt"] {
                let err = local.create(path).unwrap_err();
                assert!(
                    matches!(err, Error::PermissionDenied { .. }),
                    "{path}: {err:?}"
                );
            }
            for err in [
                local.open("fifo").unwrap_err(),
                local.create("fifo").unwrap_err(),
            ] {
                assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
            }
            assert!(matches!(
                local.open("../outside"),
                Err(Error::InvalidArgument(_))
            ));
        }
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host secret");
        let left: Vec<_> = std::fs::read_dir(&scratch.0).unwrap().flatten().collect();
        assert_eq!(left.len(), 1, "{left:?}");
    });
}

/// jupyter_server answers 403 both to a bad token and, on `/files/`, to a path whose link
/// leads out of its root: the first is `Authentication`, the second is read as code would.
/// (A bad token on `/files/` is a redirect to the login page, whose HTML must not pass for
/// the file.)
#[test]
fn a_token_the_server_no_longer_takes_is_authentication_and_a_refused_link_is_not() {
    deadline(|| {
        init_logs();
        let server = PythonServer::jupyter_with_rotating_token("first-token");
        let sbx = Sandbox::jupyter(&server.url, "first-token").unwrap();
        let beside = server.dir().join("beside-root.txt");
        std::fs::write(&beside, "beside the root").unwrap();
        eval(&sbx, &format!("import os\nos.symlink({beside:?}, 'link')"));
        sbx.files().write("in.txt", "in").unwrap();
        assert_eq!(sbx.files().read("link").unwrap(), "beside the root");
        assert_eq!(sbx.files().read("in.txt").unwrap(), "in");

        server.rotate_token("second-token");
        let files = sbx.files();
        for (what, result) in [
            ("read", files.read("in.txt").map(drop)),
            ("read link", files.read("link").map(drop)),
            ("write", files.write("w.txt", "w").map(drop)),
            ("list", files.list("").map(drop)),
        ] {
            assert!(
                matches!(result, Err(Error::Authentication { status: 403, .. })),
                "{what}: {result:?}"
            );
        }
    });
}
