//! Contexts, env vars, working directories and language selection on the local sandbox.

use std::time::Duration;

use crate::support::{deadline, init_logs, local};
use e2b_blocking::{ContextOptions, Error, Sandbox};

#[test]
fn contexts_have_independent_state_and_restart_clears_it() {
    deadline(|| {
        let sbx = local();
        let a = sbx.create_context(ContextOptions::new()).unwrap();
        let b = sbx
            .create_context(ContextOptions::new().language("python"))
            .unwrap();
        assert_ne!(a.id, b.id);
        let _ = sbx.code("v = 'a'").context(&a).run().unwrap();
        let _ = sbx.code("v = 'b'").context(&b).run().unwrap();
        assert_eq!(sbx.code("v").context(&a).run().unwrap().text(), Some("'a'"));
        assert_eq!(sbx.code("v").context(&b).run().unwrap().text(), Some("'b'"));
        let default = sbx.run_code("'v' in globals()").unwrap();
        assert_eq!(default.text(), Some("False"));

        sbx.restart_context(&a).unwrap();
        let after = sbx.code("'v' in globals()").context(&a).run().unwrap();
        assert_eq!(after.text(), Some("False"));
        assert_eq!(sbx.code("v").context(&b).run().unwrap().text(), Some("'b'"));
    });
}

/// Set-up after a restart races the server re-subscribing to the new kernel's output; a
/// lost race showed up as a set-up timeout. Each restart must leave the context set up.
#[test]
fn back_to_back_restarts_each_leave_the_context_set_up() {
    deadline(|| {
        let sbx = local();
        let _ = sbx
            .run_code("import os\nos.makedirs('again', exist_ok=True)")
            .unwrap();
        let ctx = sbx
            .create_context(
                ContextOptions::new()
                    .cwd("again")
                    .envs([("CTX_VAR", "kept")]),
            )
            .unwrap();
        let probe = "import os\n(os.path.basename(os.getcwd()), os.environ.get('CTX_VAR'), 'v' in globals())";
        for round in 0..6 {
            let _ = sbx.code("v = 1").context(&ctx).run().unwrap();
            sbx.restart_context(&ctx)
                .unwrap_or_else(|e| panic!("restart {round}: {e:?}"));
            let exec = sbx.code(probe).context(&ctx).run().unwrap();
            assert_eq!(
                exec.text(),
                Some("('again', 'kept', False)"),
                "round {round}"
            );
        }
    });
}

#[test]
fn removed_contexts_are_gone() {
    deadline(|| {
        let sbx = local();
        let ctx = sbx.create_context(ContextOptions::new()).unwrap();
        let ids: Vec<String> = sbx
            .list_contexts()
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids.len(), 2, "default + created: {ids:?}");
        assert!(ids.contains(&ctx.id));
        sbx.remove_context(&ctx).unwrap();
        let ids: Vec<String> = sbx
            .list_contexts()
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert!(!ids.contains(&ctx.id));
        let err = sbx.code("1").context(&ctx).run().unwrap_err();
        assert!(matches!(err, Error::KernelNotFound { .. }), "{err:?}");
    });
}

#[test]
fn cwd_per_context_and_shell_escapes() {
    deadline(|| {
        let sbx = local();
        let _ = sbx
            .run_code("import os\nos.makedirs('work/sub', exist_ok=True)")
            .unwrap();
        let ctx = sbx
            .create_context(ContextOptions::new().cwd("work/sub"))
            .unwrap();
        assert_eq!(ctx.cwd.as_deref(), Some("work/sub"));
        let exec = sbx
            .code("import os\nos.getcwd()")
            .context(&ctx)
            .run()
            .unwrap();
        assert!(
            exec.text().unwrap().ends_with("work/sub'"),
            "{:?}",
            exec.text()
        );
        let exec = sbx.code("!pwd").context(&ctx).run().unwrap();
        assert!(
            exec.logs.stdout.concat().trim_end().ends_with("work/sub"),
            "{exec:?}"
        );
        // The default context keeps the sandbox root.
        let root = sbx.run_code("import os\nos.getcwd()").unwrap();
        assert!(!root.text().unwrap().contains("work/sub"));
        // The cwd survives a restart.
        sbx.restart_context(&ctx).unwrap();
        let exec = sbx
            .code("import os\nos.getcwd()")
            .context(&ctx)
            .run()
            .unwrap();
        assert!(
            exec.text().unwrap().ends_with("work/sub'"),
            "{:?}",
            exec.text()
        );
    });
}

#[test]
fn env_vars_per_sandbox_context_and_execution() {
    deadline(|| {
        init_logs();
        let sbx = Sandbox::builder()
            .envs([("SBX_VAR", "sandbox")])
            .local()
            .unwrap();
        let read = "import os\n(os.environ.get('SBX_VAR'), os.environ.get('RUN_VAR'))";
        assert_eq!(
            sbx.run_code(read).unwrap().text(),
            Some("('sandbox', None)")
        );

        let exec = sbx.code(read).envs([("RUN_VAR", "once")]).run().unwrap();
        assert_eq!(exec.text(), Some("('sandbox', 'once')"));
        // Gone again, and an override of a sandbox variable is undone too.
        assert_eq!(
            sbx.run_code(read).unwrap().text(),
            Some("('sandbox', None)")
        );
        let exec = sbx.code(read).envs([("SBX_VAR", "shadow")]).run().unwrap();
        assert_eq!(exec.text(), Some("('shadow', None)"));
        assert_eq!(
            sbx.run_code(read).unwrap().text(),
            Some("('sandbox', None)")
        );
        // Subprocesses see them as well.
        let exec = sbx
            .code("!echo $RUN_VAR")
            .envs([("RUN_VAR", "shell")])
            .run()
            .unwrap();
        assert_eq!(exec.logs.stdout.concat().trim(), "shell");

        let ctx = sbx
            .create_context(ContextOptions::new().envs([("CTX_VAR", "ctx")]))
            .unwrap();
        let exec = sbx
            .code("import os\n(os.environ.get('SBX_VAR'), os.environ.get('CTX_VAR'))")
            .context(&ctx)
            .run()
            .unwrap();
        assert_eq!(exec.text(), Some("('sandbox', 'ctx')"));
    });
}

#[test]
fn language_selection_errors_are_clear() {
    deadline(|| {
        let sbx = local();
        let ctx = sbx.create_context(ContextOptions::new()).unwrap();
        let err = sbx
            .code("1")
            .context(&ctx)
            .language("python")
            .run()
            .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
        let err = sbx.code("1").language("cobol").run().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("cobol") && msg.contains("python3"), "{msg}");
        let exec = sbx.code("1 + 1").language("python").run().unwrap();
        assert_eq!(exec.text(), Some("2"));
    });
}

#[test]
fn images_decode_and_display_precedes_the_main_result() {
    deadline(|| {
        let sbx = local();
        // A 1x1 PNG built with the standard library, shown with display() before a value.
        let code = r#"
import struct, zlib
from IPython.display import Image, display
def chunk(t, d):
    return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
png = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 1, 1, 8, 2, 0, 0, 0)) \
    + chunk(b'IDAT', zlib.compress(b'\x00\xff\x00\x00')) + chunk(b'IEND', b'')
display(Image(data=png))
'done'
"#;
        let exec = sbx.code(code).run().unwrap();
        assert_eq!(exec.results.len(), 2);
        let image = &exec.results[0];
        assert!(!image.is_main_result);
        assert!(image.formats().contains(&"png".to_string()));
        let bytes = image.png_bytes().unwrap().unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&bytes[12..16], b"IHDR");
        assert!(exec.results[1].is_main_result);
        assert_eq!(exec.text(), Some("'done'"));

        let dir = std::env::temp_dir().join(format!("e2b-img-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dot.png");
        assert!(image.save_image(&path).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

#[test]
fn interrupting_a_context_keeps_it_usable() {
    deadline(|| {
        let sbx = local();
        let ctx = sbx.create_context(ContextOptions::new()).unwrap();
        let _ = sbx.code("keep = 7").context(&ctx).run().unwrap();
        let err = sbx
            .code("import time\ntime.sleep(30)")
            .context(&ctx)
            .timeout(Duration::from_millis(300))
            .run()
            .unwrap_err();
        assert!(err.is_timeout());
        let exec = sbx
            .code("keep")
            .context(&ctx)
            .timeout(Duration::from_secs(1))
            .run()
            .unwrap();
        assert_eq!(exec.text(), Some("7"));
    });
}

/// A working directory that does not exist, or is a file, is a typed path error, and the
/// kernel started for the context is not left behind.
#[test]
fn a_missing_or_file_cwd_is_a_typed_path_error() {
    deadline(|| {
        let sbx = local();
        let before = sbx.list_contexts().unwrap().len();
        let err = sbx
            .create_context(ContextOptions::new().cwd("no/such/dir"))
            .unwrap_err();
        assert!(
            matches!(&err, Error::FileNotFound { path } if path == "no/such/dir"),
            "{err:?}"
        );
        sbx.files().write("plain.txt", "x").unwrap();
        let err = sbx
            .create_context(ContextOptions::new().cwd("plain.txt"))
            .unwrap_err();
        assert!(matches!(err, Error::NotADirectory { .. }), "{err:?}");
        assert_eq!(sbx.list_contexts().unwrap().len(), before);
    });
}

/// Contexts created at the same moment each get a kernel of their own, isolated or not: their
/// kernels talk to the server over Unix sockets of their own. A prefix shared by every kernel
/// gave kernels that started together the same sockets, and none of them came up; TCP ports
/// picked ahead of the kernel could be taken before it bound them.
#[test]
fn contexts_created_at_once_each_get_a_kernel_of_their_own() {
    deadline(|| {
        for sbx in [local(), crate::support::local_tcp()] {
            let gate = std::sync::Arc::new(std::sync::Barrier::new(6));
            let threads: Vec<_> = (0..6)
                .map(|i| {
                    let (sbx, gate) = (sbx.clone(), gate.clone());
                    std::thread::spawn(move || {
                        gate.wait();
                        let ctx = sbx.create_context(ContextOptions::new()).unwrap();
                        let set = sbx.code(format!("v = {i}")).context(&ctx).run().unwrap();
                        assert!(set.error.is_none(), "{:?}", set.error);
                        (i, ctx)
                    })
                })
                .collect();
            for thread in threads {
                let (i, ctx) = thread.join().unwrap();
                let value = sbx.code("v").context(&ctx).run().unwrap();
                assert_eq!(value.text(), Some(i.to_string().as_str()));
            }
            let kernels = crate::support::kernel_connection_files(&sbx);
            for info in &kernels {
                assert_eq!(info["transport"], "ipc", "{info}");
            }
            assert!(kernels.len() >= 6, "{} connection files", kernels.len());
        }
    });
}
