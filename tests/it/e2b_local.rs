//! E2B end to end without the cloud: a scripted control plane on 127.0.0.1 and a real
//! jupyter_server configured like E2B's template (no token, XSRF checks off) as the sandbox.
//! `Sandbox` creates the sandbox, runs code in it, and `Drop` sends the kill.

use crate::support::deadline;
use crate::support::e2b_plane::{assert_created_then_killed, control_plane};
use crate::support::python_server::PythonServer;
use e2b_blocking::{E2bConfig, E2bOptions, Sandbox};

#[test]
fn create_run_and_drop_kills_the_sandbox() {
    deadline(|| {
        let jupyter = PythonServer::tokenless_jupyter();
        let (plane, seen) = control_plane();
        let config = E2bConfig::default()
            .api_key("e2b_test")
            .api_url(plane.http_url())
            .sandbox_url(jupyter.url.clone());
        let sbx = Sandbox::builder()
            .e2b_with(&config, &E2bOptions::default())
            .unwrap();
        assert_eq!(sbx.sandbox_id(), "sbx-local");
        assert!(
            !format!("{sbx:?}").contains("e2b_test"),
            "API key in Debug output"
        );
        let exec = sbx.code("print('in the sandbox')\n6 * 7").run().unwrap();
        assert_eq!(exec.text(), Some("42"));
        assert_eq!(exec.logs.stdout.concat(), "in the sandbox\n");
        drop(sbx);
        assert_created_then_killed(&seen);
    });
}

// ----- Through the template-faithful rig: a stock jupyter_server started as E2B's template
// starts it, behind a stand-in for E2B's sandbox proxy (see support/e2b_rig.rs). -----

use std::time::{Duration, Instant};

use crate::support::e2b_rig::{Rig, SANDBOX_ID};
use crate::support::{init_logs, within};
use e2b_blocking::{ContextOptions, Error};

#[test]
fn through_the_proxy_every_request_carries_the_routing_headers() {
    deadline(|| {
        init_logs();
        let rig = Rig::start();
        let sbx = Sandbox::builder()
            .e2b_with(&rig.config(), &E2bOptions::default())
            .unwrap();
        assert_eq!(sbx.run_code("6 * 7").unwrap().text(), Some("42"));
        let out = sbx.commands().run("echo routed").unwrap();
        assert_eq!(out.stdout, "routed\n");
        drop(sbx);
        let seen = rig.proxy.seen();
        assert!(seen.iter().any(|s| s.upgrade), "no websocket went through");
        for s in &seen {
            assert_eq!(s.sandbox_id.as_deref(), Some(SANDBOX_ID), "{s:?}");
            assert_eq!(s.sandbox_port.as_deref(), Some("8888"), "{s:?}");
            assert_eq!(s.answered, None, "{s:?}");
            // JSON framing by default on a server the SDK did not patch.
            assert_eq!(s.subprotocols, None, "{s:?}");
        }
        let plane = rig.plane_requests();
        assert_eq!(
            plane.first().map(String::as_str),
            Some("POST /v2/sandboxes")
        );
        assert_eq!(
            plane.last().map(String::as_str),
            Some(format!("DELETE /sandboxes/{SANDBOX_ID}").as_str())
        );
    });
}

#[test]
fn sandbox_envs_reach_code_and_commands() {
    deadline(|| {
        init_logs();
        let rig = Rig::start();
        let options = E2bOptions::default().envs([("FROM_E2B", "sandbox-env"), ("BOTH", "e2b")]);
        let sbx = Sandbox::builder()
            .envs([("BOTH", "builder")])
            .e2b_with(&rig.config(), &options)
            .unwrap();
        let exec = sbx
            .run_code("import os\nos.environ['FROM_E2B'] + ' ' + os.environ['BOTH']")
            .unwrap();
        assert_eq!(exec.text(), Some("'sandbox-env builder'"));
        let ctx = sbx.create_context(ContextOptions::new()).unwrap();
        let exec = sbx
            .code("import os\nos.environ['FROM_E2B']")
            .context(&ctx)
            .run()
            .unwrap();
        assert_eq!(exec.text(), Some("'sandbox-env'"));
        let out = sbx.commands().run("echo $FROM_E2B").unwrap();
        assert_eq!(out.stdout, "sandbox-env\n");
    });
}

/// The template's server runs in `/` with root_dir `/home/user`; the rig's runs in its own
/// directory with root_dir `<dir>/root`. Relative paths must mean the root everywhere.
#[test]
fn relative_paths_mean_the_server_root_for_files_code_and_commands() {
    deadline(|| {
        init_logs();
        let rig = Rig::start();
        let sbx = Sandbox::builder()
            .e2b_with(&rig.config(), &E2bOptions::default())
            .unwrap();
        sbx.files().write("data.csv", "a,b\n1,2\n").unwrap();
        let exec = sbx.run_code("open('data.csv').read()").unwrap();
        assert_eq!(exec.text(), Some("'a,b\\n1,2\\n'"));
        let out = sbx.commands().run("cat data.csv").unwrap();
        assert_eq!(out.stdout, "a,b\n1,2\n");
        sbx.files().write("sub/x.txt", "in sub").unwrap();
        let ctx = sbx
            .create_context(ContextOptions::new().cwd("sub"))
            .unwrap();
        let exec = sbx
            .code("import os\n(os.getcwd(), open('x.txt').read())")
            .context(&ctx)
            .run()
            .unwrap();
        let root = rig.jupyter.root();
        let root = root.canonicalize().unwrap_or(root);
        assert_eq!(
            exec.text(),
            Some(format!("('{}/sub', 'in sub')", root.display()).as_str())
        );
        let out = sbx.commands().cmd("cat x.txt").cwd("sub").run().unwrap();
        assert_eq!(out.stdout, "in sub");
        let err = sbx
            .create_context(ContextOptions::new().cwd("missing"))
            .unwrap_err();
        assert!(matches!(err, Error::FileNotFound { .. }), "{err:?}");
    });
}

/// A sandbox the proxy no longer knows: creating it fails with `SandboxNotFound` after the
/// short grace, not after the 120 s start timeout; a sandbox that dies while in use does too.
#[test]
fn a_gone_sandbox_is_sandbox_not_found_within_seconds() {
    deadline(|| {
        init_logs();
        let rig = Rig::start();
        rig.proxy.mark_gone();
        let config = rig.config();
        let started = Instant::now();
        let err = within(Duration::from_secs(5), move || {
            Sandbox::builder()
                .e2b_with(&config, &E2bOptions::default())
                .unwrap_err()
        });
        eprintln!(
            "create of a gone sandbox failed after {:?}",
            started.elapsed()
        );
        assert!(
            matches!(&err, Error::SandboxNotFound { sandbox_id } if sandbox_id == SANDBOX_ID),
            "{err:?}"
        );
    });
}

#[test]
fn a_sandbox_that_dies_in_use_is_sandbox_not_found() {
    deadline(|| {
        init_logs();
        let rig = Rig::start();
        let sbx = Sandbox::builder()
            .e2b_with(&rig.config(), &E2bOptions::default())
            .unwrap();
        assert_eq!(sbx.run_code("1 + 1").unwrap().text(), Some("2"));
        rig.kill_sandbox();
        let started = Instant::now();
        let err = within(Duration::from_secs(30), move || {
            let run = sbx.run_code("1 + 1").unwrap_err();
            let files = sbx.files().read("x").unwrap_err();
            (run, files)
        });
        eprintln!("in-use sandbox reported gone after {:?}", started.elapsed());
        assert!(
            matches!(err.0, Error::SandboxNotFound { .. }),
            "{:?}",
            err.0
        );
        assert!(
            matches!(err.1, Error::SandboxNotFound { .. }),
            "{:?}",
            err.1
        );
        let connect = rig.config();
        let err = within(Duration::from_secs(5), move || {
            Sandbox::builder()
                .e2b_connect(&connect, SANDBOX_ID)
                .unwrap_err()
        });
        assert!(matches!(err, Error::SandboxNotFound { .. }), "{err:?}");
    });
}

#[test]
fn invalid_host_is_fatal_and_a_closed_port_is_named() {
    deadline(|| {
        init_logs();
        let rig = Rig::start();
        rig.proxy.set_header_routing(false);
        let config = rig.config();
        let err = within(Duration::from_secs(5), move || {
            Sandbox::builder()
                .e2b_with(&config, &E2bOptions::default())
                .unwrap_err()
        });
        assert!(matches!(err, Error::Http { status: 400, .. }), "{err:?}");
        // The failed start killed the sandbox; the control plane makes a new one.
        rig.gone.store(false, std::sync::atomic::Ordering::SeqCst);
        rig.proxy.set_header_routing(true);
        rig.proxy.set_port_open(false);
        let config = rig.config();
        let err = within(Duration::from_secs(30), move || {
            Sandbox::builder()
                .e2b_with(&config, &E2bOptions::default())
                .unwrap_err()
        });
        assert!(
            matches!(&err, Error::Http { status: 502, message, .. } if message.contains("8888")),
            "{err:?}"
        );
    });
}

/// `E2B_DEBUG` as in E2B's SDKs: no control-plane call at all; the sandbox is whatever
/// answers at the sandbox URL.
#[test]
fn debug_mode_makes_no_control_plane_call() {
    deadline(|| {
        init_logs();
        let rig = Rig::start();
        let config = E2bConfig::default()
            .debug(true)
            .api_url(rig.plane.http_url())
            .sandbox_url(rig.jupyter.url.clone());
        let sbx = Sandbox::builder()
            .e2b_with(&config, &E2bOptions::default())
            .unwrap();
        assert_eq!(sbx.sandbox_id(), "debug_sandbox_id");
        assert_eq!(sbx.run_code("6 * 7").unwrap().text(), Some("42"));
        let e2b = sbx.as_e2b().unwrap();
        e2b.set_lifetime(Duration::from_secs(60)).unwrap();
        assert!(matches!(e2b.info(), Err(Error::InvalidArgument(_))));
        assert!(matches!(
            e2b.metrics(&e2b_blocking::e2b::MetricsQuery::new()),
            Err(Error::InvalidArgument(_))
        ));
        drop(sbx);
        assert!(
            rig.plane_requests().is_empty(),
            "{:?}",
            rig.plane_requests()
        );
    });
}

/// The template's server keeps jupyter_server's contents defaults: deletes go to the trash
/// and hidden paths are refused. `files()` must still remove for good, handle hidden paths,
/// and accept absolute paths under the root.
#[test]
fn files_work_on_default_contents_settings() {
    deadline(|| {
        init_logs();
        let rig = Rig::start();
        let sbx = Sandbox::builder()
            .e2b_with(&rig.config(), &E2bOptions::default())
            .unwrap();
        let root = rig.jupyter.root();
        let trash = rig.jupyter.dir().join("home/.local/share/Trash/files");

        // The rig is faithful: a plain contents-API delete lands in the trash.
        sbx.files().write("trashed.txt", "x").unwrap();
        ureq::delete(&format!("{}/api/contents/trashed.txt", rig.jupyter.url))
            .call()
            .unwrap();
        assert!(
            trash.join("trashed.txt").exists(),
            "the server did not trash"
        );

        sbx.files()
            .write("dir/big.bin", vec![7u8; 1 << 20])
            .unwrap();
        sbx.files().remove("dir").unwrap();
        assert!(!root.join("dir").exists());
        assert!(!trash.join("dir").exists(), "remove went to the trash");
        assert!(!sbx.files().exists("dir").unwrap());
        // As E2B's: removing what is not there is no error.
        sbx.files().remove("dir").unwrap();

        // Hidden paths, small and in several 4 MiB pieces.
        sbx.files().write(".env", "A=1\n").unwrap();
        assert_eq!(sbx.files().read(".env").unwrap(), "A=1\n");
        let exec = sbx.run_code("open('.env').read()").unwrap();
        assert_eq!(exec.text(), Some("'A=1\\n'"));
        let big: Vec<u8> = (0..9_000_000u32).map(|i| (i % 251) as u8).collect();
        let info = sbx.files().write(".config/app/blob.bin", &big).unwrap();
        assert_eq!(info.size, Some(big.len() as u64));
        assert_eq!(sbx.files().read_bytes(".config/app/blob.bin").unwrap(), big);
        let names: Vec<String> = sbx
            .files()
            .list(".config/app")
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(names, [".config/app/blob.bin"]);
        assert!(sbx.files().get_info(".config").unwrap().is_dir());
        sbx.files().rename(".env", ".env.bak").unwrap();
        assert!(!sbx.files().exists(".env").unwrap());
        assert!(root.join(".env.bak").exists());
        sbx.files().remove(".config").unwrap();
        assert!(!root.join(".config").exists());
        let err = sbx.files().read(".missing").unwrap_err();
        assert!(matches!(err, Error::FileNotFound { .. }), "{err:?}");

        // Absolute paths under the root, and elsewhere (through the kernel, as code sees them).
        let server_root = sbx.server_root().unwrap();
        let on_disk = root.canonicalize().unwrap_or(root.clone());
        assert_eq!(std::path::Path::new(&server_root), on_disk);
        sbx.files()
            .write(&format!("{server_root}/abs.txt"), "absolute")
            .unwrap();
        assert_eq!(sbx.files().read("abs.txt").unwrap(), "absolute");
        let elsewhere = std::env::temp_dir().join(format!(
            "e2b-local-abs-{}/x.txt",
            uuid::Uuid::new_v4().simple()
        ));
        let elsewhere = elsewhere.display().to_string();
        sbx.files().write(&elsewhere, "elsewhere").unwrap();
        let exec = sbx.run_code(format!("open({elsewhere:?}).read()")).unwrap();
        assert_eq!(exec.text(), Some("'elsewhere'"));
        let dir = elsewhere.trim_end_matches("/x.txt");
        sbx.files().remove(dir).unwrap();
        assert!(!std::path::Path::new(dir).exists());
    });
}

/// The template keeps jupyter_server's IOPub message-rate limit (1000 msgs/s over 3 s); past
/// it the server drops output. A chatty cell or command must come back complete or fail with
/// `OutputLost`, never be silently incomplete.
#[test]
fn chatty_output_is_complete_or_output_lost_under_the_default_rate_limit() {
    deadline(|| {
        init_logs();
        let rig = Rig::start();
        let python = crate::support::python_server::venv_python(&[]);
        rig.jupyter.add_kernelspec(
            "plain",
            "plain-python",
            &[
                &python,
                "-m",
                "ipykernel_launcher",
                "-f",
                "{connection_file}",
            ],
        );
        let sbx = Sandbox::builder()
            .e2b_with(&rig.config(), &E2bOptions::default())
            .unwrap();
        let expected: String = (0..6000).map(|i| format!("{i}\n")).collect();
        match sbx.run_code("for i in range(6000):\n    print(i, flush=True)") {
            Ok(exec) => {
                assert_eq!(exec.logs.stdout.concat(), expected);
                assert_eq!(exec.logs.stderr.concat(), "");
            }
            Err(Error::OutputLost { .. }) => eprintln!("run_code: OutputLost"),
            Err(e) => panic!("{e:?}"),
        }
        // A kernel the SDK cannot number (no hook): what the server drops is unknown, so the
        // execution must end in OutputLost, not in an incomplete Ok.
        let plain = sbx
            .create_context(ContextOptions::new().language("plain"))
            .unwrap();
        match sbx
            .code("for i in range(6000):\n    print(i, flush=True)")
            .context(&plain)
            .run()
        {
            Ok(exec) => assert_eq!(exec.logs.stdout.concat(), expected),
            Err(Error::OutputLost { .. }) => eprintln!("unnumbered run_code: OutputLost"),
            Err(e) => panic!("{e:?}"),
        }
        let expected: String = (1..=20000).map(|i| format!("{i}\n")).collect();
        match sbx
            .commands()
            .run("for i in $(seq 1 20000); do echo $i; done")
        {
            Ok(out) => {
                assert_eq!(out.stdout.len(), expected.len());
                assert!(out.stdout == expected, "command output differs");
                assert_eq!(out.stderr, "");
            }
            Err(Error::OutputLost { .. }) => eprintln!("command: OutputLost"),
            Err(e) => panic!("{e:?}"),
        }
    });
}

/// E2B over TLS with a private CA (a private deployment, a company proxy): the sandbox URL is
/// `https://localhost:…` in front of the proxy stand-in, which routes by the headers.
#[test]
fn e2b_over_tls_with_a_private_ca() {
    deadline(|| {
        init_logs();
        let rig = Rig::start();
        let ca = crate::support::tls_proxy::TestCa::new();
        let tls = crate::support::tls_proxy::TlsProxy::start(rig.proxy.addr(), &ca).unwrap();
        let config = rig.config().sandbox_url(tls.url());
        let sbx = Sandbox::builder()
            .add_root_certificate(ca.ca_pem.clone())
            .e2b_with(&config, &E2bOptions::default())
            .unwrap();
        assert_eq!(sbx.run_code("6 * 7").unwrap().text(), Some("42"));
        sbx.files().write(".secret", "s").unwrap();
        assert_eq!(sbx.commands().run("cat .secret").unwrap().stdout, "s");
        assert!(tls.handshakes() > 0);
        assert!(
            rig.proxy
                .seen()
                .iter()
                .all(|s| s.sandbox_id.as_deref() == Some(SANDBOX_ID))
        );
    });
}
