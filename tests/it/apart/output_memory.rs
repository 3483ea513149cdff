//! A flood of output costs the caller bounded memory: a command or a cell that writes 1 GiB
//! leaves the result with its last `DEFAULT_MAX_OUTPUT` bytes and a count of the rest, the
//! callbacks see every byte, and this process's resident memory grows by less than the cap
//! plus 64 MiB (it grew by the whole output, twice over for commands, before). It runs in a process
//! of its own: it measures the peak RSS, which other tests running beside it would raise.

use std::sync::Mutex;

use crate::support::own_process::in_own_process;
use crate::support::{deadline, local};
use e2b_blocking::DEFAULT_MAX_OUTPUT;

/// What each flood writes before its last line.
const FLOOD: usize = 1 << 30;
/// What the SDK may use beyond the kept output: buffers of the messages in flight, the
/// allocator's slack, the sandbox's threads.
const SLACK: u64 = 64 << 20;

/// The floods run one at a time, so that each measures its own peak.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// `VmRSS` and `VmHWM` of this process, in bytes.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .unwrap_or_else(|| panic!("no {name} in /proc/self/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Measures how far `f` raises this process's peak resident memory above what it uses now.
/// The peak is reset first (`clear_refs`, Linux 4.0+); where it cannot be, the peak so far
/// counts too, which only makes the bound stricter.
fn peak_growth<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let (before, _) = rss();
    let out = f();
    let (_, peak) = rss();
    (out, peak.saturating_sub(before))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// Runs the flood `f`, says how long it took and how far it raised the peak, and asserts that
/// the peak grew by less than the kept output plus [`SLACK`].
fn within_cap<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let started = std::time::Instant::now();
    let (out, growth) = peak_growth(f);
    println!(
        "{what}: {} MiB in {:?}, peak RSS growth {:.1} MiB",
        FLOOD >> 20,
        started.elapsed(),
        mib(growth)
    );
    assert!(
        growth < DEFAULT_MAX_OUTPUT as u64 + SLACK,
        "{what}: RSS grew by {:.1} MiB",
        mib(growth)
    );
    out
}

#[test]
fn a_command_that_writes_1_gib_costs_the_caller_at_most_the_cap() {
    in_own_process(|| {
        deadline(|| {
            let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
            let sbx = local();
            let _ = sbx.commands().run("true").unwrap();
            let mut seen = 0usize;
            let out = within_cap("command", || {
                sbx.commands()
                    .cmd(format!(
                        "head -c {FLOOD} /dev/zero | tr '\\0' x; echo END; echo fin >&2"
                    ))
                    .on_stdout(|s| seen += s.len())
                    .run()
                    .unwrap()
            });
            let total = FLOOD + "END\n".len();
            assert_eq!(seen, total, "the callback saw every byte");
            assert!(out.stdout.ends_with("xxEND\n"), "the tail is kept");
            assert!(
                out.stdout.len() <= DEFAULT_MAX_OUTPUT
                    && out.stdout.len() + 3 >= DEFAULT_MAX_OUTPUT
            );
            assert_eq!(out.dropped.stdout_bytes, (total - out.stdout.len()) as u64);
            assert_eq!(
                (out.stderr.as_str(), out.dropped.stderr_bytes),
                ("fin\n", 0)
            );
        });
    });
}

#[test]
fn a_cell_that_writes_1_gib_costs_the_caller_at_most_the_cap() {
    in_own_process(|| {
        deadline(|| {
            let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
            let sbx = local();
            let _ = sbx.run_code("1").unwrap();
            let mut seen = 0usize;
            // Unflushed 1 MiB writes: ipykernel sends what piled up every 0.2 s.
            let code = format!(
                "import sys\nc = 'x' * (1 << 20)\nfor _ in range({}):\n    sys.stdout.write(c)\nprint('END')",
                FLOOD >> 20
            );
            let exec = within_cap("run_code", || {
                sbx.code(code)
                    .on_stdout(|m| seen += m.line.len())
                    .run()
                    .unwrap()
            });
            let total = FLOOD + "END\n".len();
            assert_eq!(seen, total, "the callback saw every byte");
            let kept = exec.logs.stdout.concat();
            assert!(kept.ends_with("xxEND\n"), "the tail is kept");
            assert!(kept.len() <= DEFAULT_MAX_OUTPUT && kept.len() + 3 >= DEFAULT_MAX_OUTPUT);
            assert_eq!(exec.dropped.stdout_bytes, (total - kept.len()) as u64);
            assert!(exec.logs.stderr.is_empty() && exec.dropped.stderr_bytes == 0);
        });
    });
}
