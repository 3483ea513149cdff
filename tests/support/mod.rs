//! Shared helpers for the integration tests: deadlines and sandbox set-up.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

mod procs;
pub use procs::descendants;
pub mod data_rig;
pub mod e2b_plane;
pub mod e2b_rig;
pub mod fault_proxy;
pub mod installs;
pub mod jupyterhub;
pub mod listener;
pub mod nginx;
pub mod own_process;
pub mod python_server;
pub mod scripted_ws;
pub mod tls_proxy;

use std::sync::mpsc;
use std::time::Duration;

use e2b_blocking::Sandbox;

/// Deadline for a whole test. Generous: the first test on a fresh machine builds the local
/// Python environment (about 30 s) while the others wait for it.
pub const TEST_DEADLINE: Duration = Duration::from_secs(300);

/// Runs `f` on its own thread and fails the test if it does not finish within `limit`, so a
/// bug shows up as a failure, never as a hang. Panics inside `f` propagate.
pub fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    // Named as the test's own thread is, so panics and `own_process` still name the test.
    let mut thread = std::thread::Builder::new();
    if let Some(name) = std::thread::current().name() {
        thread = thread.name(name.to_string());
    }
    let handle = thread
        .spawn(move || {
            let out = f();
            let _ = tx.send(());
            out
        })
        .expect("spawn the test's thread");
    match rx.recv_timeout(limit) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Ok(v) => v,
            Err(p) => panic_again(p),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test did not finish within {limit:?}"),
    }
}

/// Prints the message of a panic in `f` again, shortened, then goes on unwinding with it: the
/// panic printed it where it happened, but the logs of everything torn down after it come
/// next, and a CI page that shows a failed test's first and last lines would not show it.
/// (Panicking anew would print a backtrace after it.)
fn panic_again(payload: Box<dyn std::any::Any + Send>) -> ! {
    const KEEP: usize = 1500;
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("(not a text)");
    if message.len() <= 2 * KEEP {
        println!("\ntest failed: {message}");
    } else {
        let head = (0..=KEEP)
            .rev()
            .find(|&i| message.is_char_boundary(i))
            .unwrap_or(0);
        let tail = (message.len() - KEEP..message.len())
            .find(|&i| message.is_char_boundary(i))
            .unwrap_or(message.len());
        println!(
            "\ntest failed: {} [... {} bytes ...] {}",
            &message[..head],
            tail - head,
            &message[tail..]
        );
    }
    std::panic::resume_unwind(payload)
}

/// The first line `program --version` prints. When `program` is missing or does not run,
/// panics with one line saying what to install (`install`), rather than failing later with
/// an error that does not name the tool.
pub fn require_tool(program: &str, install: &str) -> String {
    let out = std::process::Command::new(program)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output();
    match out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string(),
        Ok(out) => panic!("{program} --version failed ({}): {install}", out.status),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("{program} not found: {install}")
        }
        Err(e) => panic!("{program} cannot be run ({e}): {install}"),
    }
}

/// `within(TEST_DEADLINE, f)`.
pub fn deadline<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    within(TEST_DEADLINE, f)
}

/// A local sandbox with default options; logs go to the test output when RUST_LOG is set.
pub fn local() -> Sandbox {
    init_logs();
    Sandbox::local().expect("local sandbox starts")
}

/// A local sandbox without isolation, on 127.0.0.1: for tests that reach its server over TCP
/// themselves (fault proxies, second clients), which an isolated server's Unix socket is not.
pub fn local_tcp() -> Sandbox {
    init_logs();
    Sandbox::builder()
        .local_with(e2b_blocking::LocalOptions::new().isolation(e2b_blocking::Isolation::None))
        .expect("local sandbox starts")
}

/// Every kernel connection file of a local sandbox (`kernel-*.json` in its runtime dir), parsed.
pub fn kernel_connection_files(sbx: &Sandbox) -> Vec<serde_json::Value> {
    let runtime = sbx.as_local().expect("a local sandbox").runtime_dir();
    std::fs::read_dir(runtime)
        .expect("the runtime dir")
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("kernel-") && name.ends_with(".json")
        })
        .map(|e| serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap())
        .collect()
}

pub fn init_logs() {
    let _ = env_logger::builder().is_test(true).try_init();
}

/// The bare token of a sandbox's Jupyter server (from its `Authorization: token …` header).
pub fn token_of(sbx: &Sandbox) -> String {
    sbx.jupyter_headers()
        .into_iter()
        .find(|(name, _)| name == "Authorization")
        .and_then(|(_, v)| v.expose_secret().strip_prefix("token ").map(str::to_string))
        .expect("a token header")
}

/// The `host:port` a sandbox's Jupyter server listens on.
pub fn server_addr(sbx: &Sandbox) -> std::net::SocketAddr {
    sbx.jupyter_url()
        .trim_start_matches("http://")
        .parse()
        .expect("a host:port URL")
}

/// A sandbox on `owner`'s Jupyter server, reached through a new fault proxy. The owner is a
/// local sandbox, whose server is patched against the replaced-socket stall, so the proxied
/// sandbox keeps the local sandbox's binary framing (the SDK's default for a server it did not
/// start is JSON); see [`through_proxy_with_framing`].
pub fn through_proxy(
    owner: &Sandbox,
    builder: e2b_blocking::SandboxBuilder,
) -> (fault_proxy::FaultProxy, Sandbox) {
    through_proxy_with_framing(owner, builder, true)
}

/// [`through_proxy`] with the framing chosen: `binary` offers the v1 binary framing.
pub fn through_proxy_with_framing(
    owner: &Sandbox,
    builder: e2b_blocking::SandboxBuilder,
    binary: bool,
) -> (fault_proxy::FaultProxy, Sandbox) {
    let proxy = fault_proxy::FaultProxy::start(server_addr(owner)).expect("proxy starts");
    let sbx = builder
        .binary_framing(binary)
        .jupyter(
            &format!("http://{}", proxy.addr()),
            token_of(owner).as_str(),
        )
        .expect("sandbox through the proxy");
    (proxy, sbx)
}

/// A sandbox on an isolated local sandbox's server (`owner`, from [`local`]), reached over Unix
/// sockets through a new fault proxy: the proxy listens on a socket of its own and forwards to
/// the server's, and the sandbox connects to the proxy with an `http+unix://` URL, so its
/// transports are the ones an isolated sandbox uses. Binary framing, as the owner's.
pub fn through_unix_proxy(
    owner: &Sandbox,
    builder: e2b_blocking::SandboxBuilder,
) -> (fault_proxy::FaultProxy, Sandbox) {
    let socket = owner
        .as_local()
        .and_then(|l| l.socket_path())
        .expect("an isolated local sandbox");
    let proxy = fault_proxy::FaultProxy::start_unix(socket).expect("proxy starts");
    let path = proxy
        .socket_path()
        .expect("a Unix proxy")
        .display()
        .to_string();
    assert!(
        path.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-._".contains(&b)),
        "{path}"
    );
    let url = format!("http+unix://{}", path.replace('/', "%2F"));
    let sbx = builder
        .binary_framing(true)
        .jupyter(&url, token_of(owner).as_str())
        .expect("sandbox through the proxy");
    (proxy, sbx)
}

/// True while a process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Threads of this process, from /proc/self/status.
pub fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}
