//! The local sandbox is a sandbox: what code inside a default (bubblewrap) local sandbox can
//! and cannot reach, its resource limits, and the explicit opt-outs.

mod attacks;

use std::net::TcpListener;
use std::time::Duration;

use crate::support::own_process::in_own_process;
use crate::support::{deadline, init_logs, local};
use e2b_blocking::{Error, Isolation, LocalOptions, Sandbox};

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

#[test]
fn the_host_home_environment_and_processes_are_invisible() {
    in_own_process(|| {
        deadline(|| {
            init_logs();
            let home = std::env::var("HOME").expect("HOME");
            let marker = std::path::Path::new(&home)
                .join(format!("e2b-isolation-marker-{}", std::process::id()));
            std::fs::write(&marker, "secret").unwrap();
            // Children inherit the test's environment; the sandbox must not.
            // SAFETY: this test runs alone in its own process, and sets it before any sandbox
            // (and its threads) exists.
            unsafe { std::env::set_var("E2B_API_KEY", "e2b_leaked_key_value") };
            let sbx = Sandbox::local().expect("local sandbox starts");
            let me = std::process::id();
            let code = format!(
                r#"
    import os, signal
    print("marker", os.path.exists({marker:?}))
    print("home", sorted(os.listdir({home:?})) if os.path.isdir({home:?}) else "absent")
    print("key", os.environ.get("E2B_API_KEY"))
    print("leak", any("e2b_leaked_key_value" in v for v in os.environ.values()))
    try:
        os.kill({me}, signal.SIGTERM)
        print("signalled")
    except ProcessLookupError:
        print("no such process")
    print("procs", [p for p in os.listdir("/proc") if p.isdigit() and int(p) == {me}])
    "#,
                marker = marker.display().to_string(),
            );
            let text = out(&sbx, &code);
            let _ = std::fs::remove_file(&marker);
            assert!(text.contains("marker False"), "{text}");
            // Only the mount points of the bound-back Python may show.
            let name = marker.file_name().unwrap().to_string_lossy().to_string();
            assert!(!text.contains(&name), "{text}");
            assert!(text.contains("key None"), "{text}");
            assert!(text.contains("leak False"), "{text}");
            assert!(text.contains("no such process"), "{text}");
            assert!(text.contains("procs []"), "{text}");
            let shell = sh(
                &sbx,
                &format!(
                    "cat {} 2>&1; echo key=$E2B_API_KEY; kill -0 {me} 2>&1 && echo alive; ps ax | wc -l",
                    marker.display()
                ),
            );
            assert!(!shell.contains("secret"), "{shell}");
            assert!(shell.contains("key=\n"), "{shell}");
            assert!(!shell.contains("alive"), "{shell}");
        });
    });
}

/// What a sandboxed `connect` to `port` on host 127.0.0.1 prints: `connected` or the error.
fn connect_code(port: u16) -> String {
    format!(
        r#"
import socket
s = socket.socket()
s.settimeout(5)
try:
    s.connect(("127.0.0.1", {port}))
    print("connected")
except OSError as e:
    print("refused", type(e).__name__)
"#
    )
}

#[test]
fn the_host_network_is_unreachable_by_default_and_reachable_when_allowed() {
    deadline(|| {
        init_logs();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sbx = Sandbox::local().expect("local sandbox starts");
        let text = out(&sbx, &connect_code(port));
        assert!(text.starts_with("refused"), "{text}");
        let shell = sh(
            &sbx,
            &format!(
                "python -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 5)' 2>&1 | tail -1"
            ),
        );
        assert!(shell.contains("Error"), "{shell}");
        drop(sbx);

        let open = Sandbox::builder()
            .local_with(LocalOptions::new().allow_internet_access(true))
            .expect("local sandbox with network starts");
        assert_eq!(out(&open, &connect_code(port)), "connected\n");
    });
}

#[test]
fn a_runaway_allocation_is_a_memory_error_and_the_kernel_goes_on() {
    deadline(|| {
        let sbx = local();
        // 64 GiB, or twice the machine's memory where that is more.
        let exec = sbx
            .run_code("import os\nn = max(64 << 30, 2 * os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES'))\nb = bytearray(n)")
            .expect("run_code");
        let err = exec.error.expect("the allocation fails");
        assert_eq!(err.name, "MemoryError", "{err:?}");
        assert_eq!(out(&sbx, "print(1 + 1)"), "2\n");
        let shell = sbx
            .commands()
            .run("python -c 'bytearray(64 << 30)'")
            .expect("the command runs");
        assert_ne!(shell.exit_code, 0);
        assert!(shell.stderr.contains("MemoryError"), "{}", shell.stderr);
        assert_eq!(sh(&sbx, "echo ok"), "ok\n");
    });
}

/// Every process forks, again and again, until the first process sees a fork fail (then it
/// tells the others to stop through a file) or 20 seconds pass: a fork bomb that ends by itself,
/// so a broken limit cannot take the test machine down for long. The first process raises its
/// failed fork.
const FORK_BOMB: &str = r#"
import os, time
stop = "/tmp/fork-bomb-stop"
if os.path.exists(stop):
    os.remove(stop)
end = time.time() + 20
children = 0
def bomb():
    while time.time() < end and not os.path.exists(stop):
        try:
            if os.fork() == 0:
                bomb()
                os._exit(0)
        except OSError:
            time.sleep(0.01)
    os._exit(0)
failed = None
while time.time() < end:
    try:
        pid = os.fork()
    except OSError as e:
        failed = e
        break
    if pid == 0:
        bomb()
    children += 1
open(stop, "w").close()
print("children", children)
if failed:
    raise failed
"#;

/// Waits until the bomb's processes are gone: the kernel answers without a new process.
fn wait_for_the_bomb_to_end(sbx: &Sandbox) {
    let count = "import os\nprint(sum(p.isdigit() for p in os.listdir('/proc')))";
    while out(sbx, count).trim().parse::<u32>().unwrap_or(u32::MAX) > 50 {
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_fork_bomb_hits_the_process_limit_and_the_sandbox_recovers() {
    deadline(|| {
        let sbx = local();
        let exec = sbx.run_code(FORK_BOMB).expect("run_code");
        let err = exec.error.expect("fork fails at the limit");
        assert_eq!(err.name, "BlockingIOError", "{err:?}");
        // The kernel itself needs no new process to answer.
        assert_eq!(out(&sbx, "print(1 + 1)"), "2\n");
        // A command does: it runs once the bomb's processes are gone.
        wait_for_the_bomb_to_end(&sbx);
        sbx.files().write("bomb.py", FORK_BOMB).unwrap();
        let run = sbx
            .commands()
            .run("python bomb.py")
            .expect("the command runs");
        assert_ne!(run.exit_code, 0);
        assert!(run.stderr.contains("BlockingIOError"), "{}", run.stderr);
        wait_for_the_bomb_to_end(&sbx);
        assert_eq!(sh(&sbx, "echo ok"), "ok\n");
    });
}

#[test]
fn without_isolation_the_sandbox_is_the_host() {
    deadline(|| {
        init_logs();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sbx = Sandbox::builder()
            .local_with(LocalOptions::new().isolation(Isolation::None))
            .expect("unisolated local sandbox starts");
        assert!(sbx.jupyter_url().starts_with("http://127.0.0.1:"));
        let root = sbx.as_local().unwrap().root().display().to_string();
        let text = out(
            &sbx,
            &format!(
                "import os\nprint(os.getcwd() == {root:?}, os.getppid() != 1)\n{}",
                connect_code(port)
            ),
        );
        assert_eq!(text, "True True\nconnected\n");
        let host = sbx.get_host(port).unwrap();
        assert_eq!(host.as_str(), format!("127.0.0.1:{port}"));
        assert!(!host.is_forwarded());
        assert!(matches!(sbx.get_host(0), Err(Error::InvalidArgument(_))));
    });
}

/// A tiny HTTP server in the sandbox's own network, on a port it picks and prints.
const HTTP_SERVER: &str = "python -c \"import http.server as h; \
s = h.ThreadingHTTPServer(('127.0.0.1', 0), h.SimpleHTTPRequestHandler); \
print(s.server_address[1], flush=True); s.serve_forever()\"";

/// `GET /{path}` over HTTP/1.0 at `addr`: the whole response, or the connect error.
fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(s, "GET /{path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

#[test]
fn get_host_forwards_a_port_into_the_isolated_sandbox_while_the_host_lives() {
    deadline(|| {
        let sbx = local();
        sbx.files().write("hello.txt", "hello from inside").unwrap();
        let mut server = sbx
            .commands()
            .cmd(HTTP_SERVER)
            .timeout(None)
            .spawn()
            .expect("the server starts");
        let port: u16 = loop {
            if let Some(line) = server.stdout().lines().next() {
                break line.trim().parse().expect("a port");
            }
            if let Some(done) = server.wait_timeout(Duration::from_millis(50)).unwrap() {
                panic!("the server exited: {done:?}");
            }
        };
        // The sandbox's loopback is not the host's.
        assert!(
            http_get(&format!("127.0.0.1:{port}"), "hello.txt")
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
                || port_is_someone_elses(port)
        );
        let host = sbx.get_host(port).expect("a forward");
        assert!(host.is_forwarded());
        let addr = host.to_string();
        assert!(addr.starts_with("127.0.0.1:"), "{addr}");
        for _ in 0..3 {
            let reply = http_get(&addr, "hello.txt").expect("the forward answers");
            assert!(reply.starts_with("HTTP/1.0 200"), "{reply}");
            assert!(reply.ends_with("hello from inside"), "{reply}");
        }
        // Two forwards of one port are independent.
        let second = sbx.get_host(port).unwrap();
        assert_ne!(second.as_str(), addr);
        drop(host);
        let refused = http_get(&addr, "hello.txt");
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused),
            "{refused:?}"
        );
        assert!(
            http_get(second.as_str(), "hello.txt")
                .unwrap()
                .ends_with("hello from inside")
        );
        drop(second);
        server.kill().unwrap();
    });
}

/// Whether something on the host listens on `port` (then the sandbox's port number is
/// merely taken on the host too, which says nothing about isolation).
fn port_is_someone_elses(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_err()
}

/// Root's files stay root's: the sandbox never runs as root, even when the SDK does (CI runs as
/// root), so `/etc/shadow` (root's, mode 0640 or stricter) is unreadable from code and from
/// commands, while the sandbox's root stays writable.
#[test]
fn the_sandbox_is_not_root_and_cannot_read_etc_shadow() {
    deadline(|| {
        let sbx = local();
        let code = r#"
import os
print("uid", os.getuid(), os.geteuid())
try:
    open("/etc/shadow").read()
    print("READ")
except OSError as e:
    print("refused", type(e).__name__)
open("written-by-code.txt", "w").write("ok")
"#;
        let text = out(&sbx, code);
        assert!(text.contains("refused PermissionError"), "{text}");
        assert!(!text.contains("READ"), "{text}");
        assert!(!text.contains("uid 0 "), "{text}");
        let (exit_code, stderr) = match sbx.commands().run("cat /etc/shadow") {
            Ok(r) => (r.exit_code, r.stderr),
            Err(Error::CommandFailed {
                exit_code, stderr, ..
            }) => (exit_code, stderr),
            Err(e) => panic!("cat /etc/shadow: {e}"),
        };
        assert_ne!(exit_code, 0);
        assert!(stderr.contains("Permission denied"), "{stderr}");
        assert_ne!(sh(&sbx, "id -u"), "0\n");
        assert_eq!(
            sh(
                &sbx,
                "echo hi > by-command.txt && cat written-by-code.txt by-command.txt"
            ),
            "okhi\n"
        );
        assert_eq!(sbx.files().read("by-command.txt").unwrap(), "hi\n");
    });
}
