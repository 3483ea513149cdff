//! The default context's kernel is started ahead of the local server, which adopts it for the
//! first kernel the SDK asks for: that kernel must be one like any the server launches itself,
//! and a kernel that died before the server came up is replaced by one launched as usual.

use std::time::{Duration, Instant};

use crate::support::{alive, deadline, descendants, init_logs, local, local_tcp};
use e2b_blocking::{ContextOptions, Error, Isolation, LocalOptions, Sandbox};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// What the local server logs when it adopts the kernel started ahead.
const ADOPTED: &str = "e2b-blocking: adopted the kernel started ahead";
/// What it logs when it launches the first kernel itself instead.
const NOT_USED: &str = "e2b-blocking: the kernel started ahead is not used";

/// What a kernel can see of how it was launched (its pid apart): environment, working
/// directory, interpreter and arguments but for the connection file, parent, session, stdin and
/// resource limits.
const LAUNCH: &str = "\
import os, resource, stat, sys
(sorted(os.environ.items()), os.getcwd(), sys.executable, sys.argv[:-1], os.getppid(),
 os.getsid(0) == os.getpid(), stat.S_ISFIFO(os.fstat(0).st_mode),
 [resource.getrlimit(r)
  for r in (resource.RLIMIT_NPROC, resource.RLIMIT_NOFILE, resource.RLIMIT_AS)])";

/// A `sitecustomize` that makes the first `ipykernel_launcher` to start (the one started ahead)
/// exit as Python starts, and lets every later one be: the first creates `MARKER`.
const FIRST_KERNEL_EXITS: &str = r#"
import os
with open("/proc/self/cmdline", "rb") as f:
    args = f.read().split(b"\0")
if b"ipykernel_launcher" in args:
    try:
        os.close(os.open(MARKER, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        pass
    else:
        os._exit(3)
"#;

fn pid_of(sbx: &Sandbox, ctx: &e2b_blocking::Context) -> String {
    let exec = sbx
        .code("import os; os.getpid()")
        .context(ctx)
        .run()
        .unwrap();
    exec.text().unwrap().to_string()
}

fn launch_of(sbx: &Sandbox, ctx: &e2b_blocking::Context) -> String {
    let exec = sbx.code(LAUNCH).context(ctx).run().unwrap();
    exec.text().unwrap().to_string()
}

/// Isolated or not (each kernel with Unix sockets of its own).
#[test]
fn the_adopted_first_kernel_is_launched_as_the_next_one() {
    deadline(|| {
        for sbx in [local(), crate::support::local_tcp()] {
            assert!(sbx.as_local().unwrap().server_log().contains(ADOPTED));
            let first = sbx.default_context().unwrap();
            let second = sbx.create_context(ContextOptions::new()).unwrap();
            assert_ne!(pid_of(&sbx, &first), pid_of(&sbx, &second));
            assert_eq!(launch_of(&sbx, &first), launch_of(&sbx, &second));
        }
    });
}

#[test]
fn the_adopted_first_kernel_restarts_fresh_and_comes_back_after_a_kill() {
    deadline(|| {
        let sbx = local();
        assert!(sbx.as_local().unwrap().server_log().contains(ADOPTED));
        let ctx = sbx.default_context().unwrap();
        let adopted = pid_of(&sbx, &ctx);
        let _ = sbx.run_code("state = 1").unwrap();
        sbx.restart_context(&ctx).unwrap();
        assert_eq!(
            sbx.run_code("'state' in globals()").unwrap().text(),
            Some("False")
        );
        let restarted = pid_of(&sbx, &ctx);
        assert_ne!(adopted, restarted);

        let sbx = local();
        let ctx = sbx.default_context().unwrap();
        let adopted = pid_of(&sbx, &ctx);
        let _ = sbx.run_code("state = 1").unwrap();
        let killed = sbx.run_code("import os, signal; os.kill(os.getpid(), signal.SIGKILL)");
        assert!(
            matches!(killed, Err(Error::KernelDisrupted { .. })),
            "{killed:?}"
        );
        assert_eq!(
            sbx.run_code("'state' in globals()").unwrap().text(),
            Some("False")
        );
        assert_ne!(adopted, pid_of(&sbx, &ctx));
    });
}

/// jupyter_server shuts its kernels down as it exits on SIGTERM, the adopted one included.
#[test]
fn the_adopted_first_kernel_ends_with_its_server() {
    deadline(|| {
        let sbx = local_tcp();
        assert!(sbx.as_local().unwrap().server_log().contains(ADOPTED));
        let server = sbx.as_local().unwrap().pid();
        let kernels = descendants(server);
        assert!(!kernels.is_empty());
        kill(Pid::from_raw(server as i32), Signal::SIGTERM).unwrap();
        let until = Instant::now() + Duration::from_secs(20);
        while kernels.iter().any(|&k| alive(k)) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            kernels.iter().all(|&k| !alive(k)),
            "kernels outlived the server:\n{}",
            sbx.as_local().unwrap().server_log()
        );
    });
}

/// A kernel started ahead that has exited by the time the server is asked for one is not
/// adopted: the server launches the first kernel itself, and it works as any other. Here the
/// first `ipykernel_launcher` of the sandbox (the one started ahead) exits as Python starts,
/// through a `sitecustomize` on the sandbox's `PYTHONPATH` (so without isolation, which would
/// hide the host's directory).
#[test]
fn a_kernel_started_ahead_that_died_is_replaced_by_a_normal_launch() {
    deadline(|| {
        init_logs();
        let dir = std::env::temp_dir().join(format!(
            "e2b-first-kernel-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let marker = dir.join("first-kernel-died");
        let marker_literal = format!("{:?}", marker.display().to_string());
        std::fs::write(
            dir.join("sitecustomize.py"),
            FIRST_KERNEL_EXITS.replace("MARKER", &marker_literal),
        )
        .unwrap();
        let sbx = Sandbox::builder()
            .envs([("PYTHONPATH", dir.display().to_string())])
            .local_with(LocalOptions::new().isolation(Isolation::None))
            .expect("local sandbox starts");
        assert!(marker.exists(), "no kernel died");
        let log = sbx.as_local().unwrap().server_log();
        assert!(!log.contains(ADOPTED), "{log}");
        assert!(
            log.contains(&format!("{NOT_USED}: it exited with status 3")),
            "{log}"
        );
        assert_eq!(sbx.run_code("1 + 1").unwrap().text(), Some("2"));
        let first = sbx.default_context().unwrap();
        let second = sbx.create_context(ContextOptions::new()).unwrap();
        assert_ne!(pid_of(&sbx, &first), pid_of(&sbx, &second));
        assert_eq!(launch_of(&sbx, &first), launch_of(&sbx, &second));
        drop(sbx);
        let _ = std::fs::remove_dir_all(&dir);
    });
}
