//! Tests that need a process of their own (they count its threads, measure its peak memory,
//! install its global logger or set its environment) live in the `it` binary all the same: such
//! a test starts the binary again to run itself alone, and passes or fails with that run. In one
//! binary they run beside the other tests, where as binaries of their own cargo ran them one
//! after another.

use std::process::Command;
use std::time::Duration;

use super::installs::run_logged;

/// Set in the process that runs the test on its own.
const CHILD: &str = "E2B_TEST_OWN_PROCESS";

/// A bound on the child as a whole; the test inside keeps its own, shorter deadline.
const LIMIT: Duration = Duration::from_secs(1200);

/// Runs `body` in a process of its own: called from a test in the binary the harness started,
/// it runs the same binary on this test alone and fails if that run fails; in that run, it
/// calls `body`.
pub fn in_own_process(body: impl FnOnce()) {
    if std::env::var_os(CHILD).is_some() {
        return body();
    }
    let name = current_test();
    let log = std::env::temp_dir().join(format!(
        "e2b-own-process-{}-{}.log",
        std::process::id(),
        name.replace("::", "-")
    ));
    let _ = std::fs::remove_file(&log);
    let mut cmd = this_test_again();
    cmd.env(CHILD, "1");
    let passed = run_logged(cmd, LIMIT, &log);
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    print!("{output}");
    assert!(passed, "{name} failed in its own process (output above)");
    // A name that matched no test would pass having run nothing.
    assert!(
        output.contains("test result: ok. 1 passed"),
        "{name} did not run in its own process (output above)"
    );
}

/// The full name of the test running on this thread (libtest names each test's thread after
/// it).
pub fn current_test() -> String {
    std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .expect("called on a test's own thread")
        .to_string()
}

/// A command that runs the test binary on the current test alone, its output not captured.
pub fn this_test_again() -> Command {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = Command::new(exe);
    cmd.args([
        &current_test(),
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ]);
    cmd
}
