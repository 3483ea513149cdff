//! The C ABI as C and Python see it: C programs are compiled with the system `cc` against
//! `include/e2b_blocking.h` and the library `cargo test` built, and run against local sandboxes
//! (and a jupyter_server this process starts, for `e2b_sandbox_connect_jupyter`), also under
//! valgrind. A missing `cc`, `valgrind` or `python3` fails its test with one line saying what
//! to install.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2b_blocking::Sandbox;

/// One C or Python program: a sandbox or two and a few dozen runs.
const RUN_LIMIT: Duration = Duration::from_secs(300);
/// The same under valgrind, which slows the library's own code down many times.
const VALGRIND_LIMIT: Duration = Duration::from_secs(600);

const CC_HINT: &str = "install a C compiler (Debian: apt-get install gcc)";
const VALGRIND_HINT: &str = "install valgrind (Debian: apt-get install valgrind)";
const PYTHON_HINT: &str = "install Python 3 (Debian: apt-get install python3)";

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Where `cargo test` put this package's libraries: next to this test binary
/// (`target/<profile>/deps/`), since integration tests need the library target built, and it is
/// built with every crate type `Cargo.toml` gives it (cdylib and staticlib included).
fn library_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.to_path_buf()))
        .unwrap_or_else(|| manifest_dir().join("target/debug/deps"))
}

/// Where this test puts the C programs it compiles.
fn programs_dir() -> PathBuf {
    library_dir()
        .parent()
        .map_or_else(|| manifest_dir().join("target"), Path::to_path_buf)
        .join("c-programs")
}

struct Finished {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

impl Finished {
    fn describe(&self) -> String {
        format!(
            "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs a command to completion, killing it if it outlives `limit`.
fn run(mut cmd: Command, limit: Duration) -> Finished {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let err = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err.join().unwrap_or_default();
            panic!("{what} did not finish within {limit:?}\n--- stderr ---\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Finished {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

fn run_ok(cmd: Command, limit: Duration) -> Finished {
    let what = format!("{cmd:?}");
    let done = run(cmd, limit);
    assert!(done.status.success(), "{what} failed: {}", done.describe());
    done
}

/// The directory holding `libe2b_blocking_ffi.so` and `libe2b_blocking_ffi.a`.
fn library() -> PathBuf {
    let dir = library_dir();
    for lib in ["libe2b_blocking_ffi.so", "libe2b_blocking_ffi.a"] {
        assert!(
            dir.join(lib).is_file(),
            "{lib} is not in {}: run this test through `cargo test`, which builds it",
            dir.display()
        );
    }
    dir
}

/// Compiles a C file against the header and the shared library (or the static one).
fn compile(source: &str, name: &str, static_link: bool) -> PathBuf {
    support::require_tool("cc", CC_HINT);
    let lib = library();
    let dir = programs_dir();
    std::fs::create_dir_all(&dir).expect("create the C programs' directory");
    let exe = dir.join(name);
    let mut cmd = Command::new("cc");
    cmd.args([
        "-std=c11",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pedantic",
        "-g",
        "-pthread",
    ])
    .arg("-I")
    .arg(manifest_dir().join("include"))
    .arg(manifest_dir().join(source))
    .arg("-o")
    .arg(&exe);
    if static_link {
        // The list `rustc --print native-static-libs` gives on Linux.
        cmd.arg(lib.join("libe2b_blocking_ffi.a")).args([
            "-lgcc_s",
            "-lutil",
            "-lrt",
            "-lpthread",
            "-lm",
            "-ldl",
        ]);
    } else {
        cmd.arg("-L")
            .arg(&lib)
            .arg("-le2b_blocking_ffi")
            // DT_RPATH, which wins over the LD_LIBRARY_PATH cargo sets: that also lists
            // target/debug, where a `cargo build` leaves an older copy of the library.
            .arg("-Wl,--disable-new-dtags")
            .arg(format!("-Wl,-rpath,{}", lib.display()));
    }
    run_ok(cmd, Duration::from_secs(120));
    exe
}

fn assert_quickstart_output(out: &str) {
    for expected in [
        "e2b-blocking ",
        "\"text\":\"42\"",
        "stdout: line 0",
        "stdout: line 2",
        "streamed 3 chunk(s)",
        "exception: {\"name\":\"ZeroDivisionError\"",
        "raised: ZeroDivisionError",
        "read 13 bytes: hello from C\n",
        "listing: [{\"name\":\"hello.txt\",\"path\":\"notes/hello.txt\",\"type\":\"file\",\"size\":13,",
        "cmd stdout: hi\n",
        "cmd stderr: err\n",
        "command: {\"stdout\":\"hi\\n\",\"stderr\":\"err\\n\",\"exit_code\":3,\"dropped\":\
         {\"stdout_bytes\":0,\"stderr_bytes\":0,\"results\":0,\"result_bytes\":0}}",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

#[test]
fn c_quickstart_runs_against_the_shared_and_the_static_library() {
    support::init_logs();
    for (name, static_link) in [("quickstart", false), ("quickstart_static", true)] {
        let exe = compile("examples/c/quickstart.c", name, static_link);
        let done = run_ok(Command::new(&exe), RUN_LIMIT);
        println!("{name}:\n{}", done.stdout);
        assert_quickstart_output(&done.stdout);
    }
}

#[test]
fn c_error_paths_give_error_codes() {
    let exe = compile("tests/c/abi_errors.c", "abi_errors", false);
    let done = run_ok(Command::new(&exe), RUN_LIMIT);
    assert!(
        done.stdout.contains("checks hold"),
        "unexpected output: {}",
        done.describe()
    );
}

/// A token-protected jupyter_server for `e2b_sandbox_connect_jupyter`: a local sandbox of this
/// process. The C program gets its URL and token in environment variables, since the ABI never
/// hands a token out.
struct JupyterServer {
    owner: Sandbox,
    url: String,
    token: String,
}

impl JupyterServer {
    fn start() -> JupyterServer {
        let owner = support::local_tcp();
        let url = owner.jupyter_url().to_string();
        let token = support::token_of(&owner);
        JupyterServer { owner, url, token }
    }

    /// What the C program needs to find the server.
    fn envs(&self) -> [(&str, &str); 2] {
        [
            ("E2B_TEST_JUPYTER_URL", self.url.as_str()),
            ("E2B_TEST_JUPYTER_TOKEN", self.token.as_str()),
        ]
    }

    /// Ids of the server's kernels, sorted.
    fn kernel_ids(&self) -> Vec<String> {
        let body = ureq::get(&format!("{}/api/kernels", self.url))
            .header("Authorization", &format!("token {}", self.token))
            .call()
            .expect("list kernels")
            .body_mut()
            .read_to_string()
            .expect("kernel list body");
        let v: serde_json::Value = serde_json::from_str(&body).expect("kernel list JSON");
        let mut ids: Vec<String> = v
            .as_array()
            .expect("a kernel list")
            .iter()
            .map(|k| k["id"].as_str().expect("a kernel id").to_string())
            .collect();
        ids.sort();
        ids
    }

    /// The C program left the server as it found it: its own kernels are gone, the owner's
    /// still run.
    fn assert_untouched(&self, before: &[String]) {
        assert_eq!(
            self.kernel_ids(),
            before,
            "kernels left behind on the server"
        );
        let exec = self
            .owner
            .run_code("1 + 1")
            .expect("the server still serves");
        assert_eq!(exec.text(), Some("2"));
    }
}

fn assert_connect_jupyter_held(done: &Finished) {
    assert!(
        done.stdout.contains("connect_jupyter: all") && done.stdout.contains("checks hold"),
        "unexpected output: {}",
        done.describe()
    );
}

#[test]
fn c_connect_jupyter_drives_a_real_server_and_rejects_a_wrong_token() {
    let exe = compile("tests/c/connect_jupyter.c", "connect_jupyter", false);
    let server = JupyterServer::start();
    let before = server.kernel_ids();
    let mut cmd = Command::new(&exe);
    cmd.envs(server.envs());
    let done = run_ok(cmd, RUN_LIMIT);
    assert_connect_jupyter_held(&done);
    server.assert_untouched(&before);
}

#[test]
fn python_ctypes_quickstart_runs() {
    support::require_tool("python3", PYTHON_HINT);
    let lib = library().join("libe2b_blocking_ffi.so");
    let mut cmd = Command::new("python3");
    cmd.arg(manifest_dir().join("examples/python/quickstart.py"))
        .arg(&lib);
    let done = run_ok(cmd, RUN_LIMIT);
    for expected in [
        "result: 42",
        "streamed: ['line', '0', 'line', '1', 'line', '2']",
        "stopped by callback: E2B_ERR_CALLBACK",
        "after stop: 'still here'",
        "read back: b'bytes \\x00 and text'",
        "missing file: E2B_ERR_FILE_NOT_FOUND",
        "command: {'stdout': 'hi\\n', 'stderr': 'err\\n', 'exit_code': 3, 'dropped': \
         {'stdout_bytes': 0, 'stderr_bytes': 0, 'results': 0, 'result_bytes': 0}}",
        "command streamed: ['hi\\n']",
        "after destroy: E2B_ERR_CLOSED",
    ] {
        assert!(
            done.stdout.contains(expected),
            "missing {expected:?}: {}",
            done.describe()
        );
    }
}

/// Runs a program under memcheck, with `envs` added to its environment; fails on any memory
/// error or definite leak.
fn valgrind(exe: &Path, envs: &[(&str, &str)], limit: Duration) -> Finished {
    let mut cmd = Command::new("valgrind");
    cmd.envs(envs.iter().copied());
    cmd.args([
        "--leak-check=full",
        "--errors-for-leak-kinds=definite",
        "--show-leak-kinds=definite",
        "--error-exitcode=99",
        "--trace-children=no",
    ])
    .arg(format!(
        "--suppressions={}",
        manifest_dir().join("tests/c/valgrind.supp").display()
    ))
    .arg(exe);
    let done = run(cmd, limit);
    let summary: Vec<&str> = done
        .stderr
        .lines()
        .filter(|l| {
            l.contains("definitely lost")
                || l.contains("ERROR SUMMARY")
                || l.contains("no leaks are possible")
        })
        .collect();
    println!("valgrind {}: {}", exe.display(), summary.join(" | "));
    assert!(
        done.status.success(),
        "valgrind reported errors or definite leaks in {}: {}",
        exe.display(),
        done.describe()
    );
    assert!(
        done.stderr.contains("ERROR SUMMARY: 0 errors"),
        "{}",
        done.describe()
    );
    done
}

// Valgrind runs are slow (each program ~10x): one test per program, so they run side by side.

#[test]
fn the_c_quickstart_has_no_memory_errors_or_definite_leaks_under_valgrind() {
    support::require_tool("valgrind", VALGRIND_HINT);
    let quickstart = compile("examples/c/quickstart.c", "quickstart_vg", false);
    let done = valgrind(&quickstart, &[], VALGRIND_LIMIT);
    assert_quickstart_output(&done.stdout);
}

#[test]
fn the_c_error_paths_have_no_memory_errors_or_definite_leaks_under_valgrind() {
    support::require_tool("valgrind", VALGRIND_HINT);
    let errors = compile("tests/c/abi_errors.c", "abi_errors_vg", false);
    let done = valgrind(&errors, &[], VALGRIND_LIMIT);
    assert!(done.stdout.contains("checks hold"), "{}", done.describe());
}

#[test]
fn c_connect_jupyter_has_no_memory_errors_or_definite_leaks_under_valgrind() {
    support::require_tool("valgrind", VALGRIND_HINT);
    let connect = compile("tests/c/connect_jupyter.c", "connect_jupyter_vg", false);
    let server = JupyterServer::start();
    let before = server.kernel_ids();
    let done = valgrind(&connect, &server.envs(), VALGRIND_LIMIT);
    assert_connect_jupyter_held(&done);
    server.assert_untouched(&before);
}

/// `e2b_commands_connect()` and directory watches from C, with and without valgrind.
#[test]
fn c_connect_and_watch_follow_commands_and_directories() {
    let exe = compile("tests/c/watch_connect.c", "watch_connect", false);
    let done = run_ok(Command::new(&exe), RUN_LIMIT);
    assert!(
        done.stdout.contains("watch_connect: all"),
        "{}",
        done.describe()
    );
    support::require_tool("valgrind", VALGRIND_HINT);
    let exe = compile("tests/c/watch_connect.c", "watch_connect_vg", false);
    let done = valgrind(&exe, &[], VALGRIND_LIMIT);
    assert!(
        done.stdout.contains("watch_connect: all"),
        "{}",
        done.describe()
    );
}

/// Terminals from C: a shell's output, resize, exit status, reattaching, kill and the error
/// codes, with and without valgrind.
#[test]
fn c_terminals_type_read_resize_and_end() {
    let exe = compile("tests/c/pty.c", "pty", false);
    let done = run_ok(Command::new(&exe), RUN_LIMIT);
    assert!(done.stdout.contains("pty: all"), "{}", done.describe());
    support::require_tool("valgrind", VALGRIND_HINT);
    let exe = compile("tests/c/pty.c", "pty_vg", false);
    let done = valgrind(&exe, &[], VALGRIND_LIMIT);
    assert!(done.stdout.contains("pty: all"), "{}", done.describe());
}

/// What every tool check above does when its tool is absent: one line naming what to install.
#[test]
fn a_missing_tool_fails_with_one_line_saying_what_to_install() {
    support::deadline(|| {
        let panic = std::panic::catch_unwind(|| {
            support::require_tool(
                "e2b-no-such-tool",
                "install it (Debian: apt-get install it)",
            )
        })
        .expect_err("the tool is missing");
        let message = panic
            .downcast_ref::<String>()
            .expect("a formatted panic message");
        assert_eq!(
            message,
            "e2b-no-such-tool not found: install it (Debian: apt-get install it)"
        );
        assert!(!support::require_tool("cc", CC_HINT).is_empty());
    });
}

/// An E2B sandbox's life cycle from C (pause, resume, lifetime, info, snapshot, fork, connect
/// by id) against a scripted control plane and a tokenless jupyter_server standing in for the
/// sandbox; then the same under valgrind.
#[test]
fn c_lifecycle_calls_drive_the_control_plane_also_under_valgrind() {
    let jupyter = support::python_server::PythonServer::tokenless_jupyter();
    for (name, under_valgrind) in [("lifecycle", false), ("lifecycle_vg", true)] {
        let (plane, seen) = support::e2b_plane::lifecycle_plane();
        let exe = compile("tests/c/lifecycle.c", name, false);
        let api = plane.http_url();
        let envs = [
            ("E2B_TEST_API_URL", api.as_str()),
            ("E2B_TEST_JUPYTER_URL", jupyter.url.as_str()),
        ];
        let done = if under_valgrind {
            support::require_tool("valgrind", VALGRIND_HINT);
            valgrind(&exe, &envs, VALGRIND_LIMIT)
        } else {
            let mut cmd = Command::new(&exe);
            cmd.envs(envs);
            run_ok(cmd, RUN_LIMIT)
        };
        assert!(
            done.stdout.contains("lifecycle: all"),
            "{}",
            done.describe()
        );
        let seen = seen.lock().unwrap().clone();
        for call in [
            "POST /v2/sandboxes",
            "POST /sandboxes/sbx-local/timeout",
            "POST /sandboxes/sbx-local/pause",
            "POST /v2/sandboxes/sbx-local/connect",
            "POST /sandboxes/sbx-local/snapshots",
            "POST /sandboxes/sbx-local/fork",
            "DELETE /sandboxes/sbx-local",
        ] {
            assert!(seen.iter().any(|s| s == call), "no {call}: {seen:?}");
        }
    }
}
