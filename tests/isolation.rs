//! The local sandbox is a sandbox: what code inside a default (bubblewrap) local sandbox can
//! and cannot reach, its resource limits, and the explicit opt-outs.

mod support;

use std::net::TcpListener;
use std::time::Duration;

use e2b_blocking::{Error, Isolation, LocalOptions, Sandbox};
use support::{deadline, init_logs, local};

/// Runs `code` and returns its stdout, failing the test on any error.
fn out(sbx: &Sandbox, code: &str) -> String {
    let exec = sbx.run_code(code).expect("run_code");
    if let Some(err) = &exec.error {
        panic!("{code}: {}: {}\n{}", err.name, err.value, err.traceback);
    }
    exec.logs.stdout.join("")
}

/// Runs a shell command and returns its stdout, whatever its exit code.
fn sh(sbx: &Sandbox, cmd: &str) -> String {
    match sbx.commands().run(cmd) {
        Ok(r) => r.stdout,
        Err(Error::CommandFailed { stdout, .. }) => stdout,
        Err(e) => panic!("{cmd}: {e}"),
    }
}

#[test]
fn system_directories_are_read_only_and_the_root_is_home_user() {
    deadline(|| {
        let sbx = local();
        let code = r#"
import os
for p in ("/usr/e2b-probe", "/etc/e2b-probe"):
    try:
        open(p, "w").write("x")
        print("WROTE", p)
    except OSError as e:
        print("refused", p, type(e).__name__)
print("cwd", os.getcwd())
open("made-inside.txt", "w").write("hi")
"#;
        let text = out(&sbx, code);
        assert!(!text.contains("WROTE"), "{text}");
        assert_eq!(text.matches("refused").count(), 2, "{text}");
        assert!(text.contains("cwd /home/user"), "{text}");
        assert_eq!(sbx.files().read("made-inside.txt").unwrap(), "hi");
        let shell = sh(
            &sbx,
            "touch /usr/e2b-probe 2>&1; touch /etc/e2b-probe 2>&1; pwd",
        );
        assert_eq!(shell.matches("Read-only file system").count(), 2, "{shell}");
        assert!(shell.ends_with("/home/user\n"), "{shell}");
    });
}
