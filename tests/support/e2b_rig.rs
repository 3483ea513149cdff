//! A "template-faithful" E2B rig: a stock jupyter_server started the way E2B's
//! code-interpreter template starts it, behind a small stand-in for E2B's sandbox proxy, plus a
//! scripted control plane.
//!
//! The proxy routes the way E2B's does (reference/e2b-sdk.md §9): by a `{port}-{sandboxId}.…`
//! host, or, when the host is `localhost`, an IP or `sandbox.…`, by the `E2b-Sandbox-Id` and
//! `E2b-Sandbox-Port` headers; anything else gets `400 Invalid host`. A sandbox marked gone
//! gets E2B's `502` JSON body, a port other than 8888 (or one marked closed) its "port is not
//! open" 502. Everything else is spliced byte for byte to the Jupyter server, websockets
//! included; plain requests are forced to `Connection: close` so each one is routed afresh.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::listener::{JOIN_DEADLINE, Listener, Threads};
use super::python_server::PythonServer;
use super::scripted_ws::{HttpAnswer, Options, ScriptedWs};

/// The id the rig's control plane hands out.
pub const SANDBOX_ID: &str = "sbxrig01";
/// The API key the rig's control plane accepts.
pub const API_KEY: &str = "e2b_test";
/// The port Jupyter listens on in E2B's template.
const JUPYTER_PORT: &str = "8888";
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_HEAD: usize = 64 * 1024;

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub host: String,
    pub sandbox_id: Option<String>,
    pub sandbox_port: Option<String>,
    pub upgrade: bool,
    /// The subprotocols a websocket upgrade offered.
    pub subprotocols: Option<String>,
    /// The status the proxy answered itself, or `None` when it forwarded the request.
    pub answered: Option<u16>,
}

struct Shared {
    /// Where each of the sandbox's ports is served.
    targets: Vec<(String, SocketAddr)>,
    /// The traffic token the proxy wants, when the sandbox's traffic is not public.
    traffic_token: Mutex<Option<String>>,
    sandbox_id: String,
    gone: Arc<AtomicBool>,
    /// Paused without auto-resume: E2B's proxy answers as for a sandbox that is not there.
    paused: Arc<AtomicBool>,
    port_open: AtomicBool,
    header_routing: AtomicBool,
    seen: Mutex<Vec<Seen>>,
    live: Mutex<Vec<TcpStream>>,
    threads: Threads,
}

/// The stand-in for E2B's sandbox proxy.
pub struct SandboxProxy {
    shared: Arc<Shared>,
    listener: Listener,
}

impl SandboxProxy {
    /// Proxies sandbox `sandbox_id`'s port 8888 to `target`.
    /// `gone` and `paused` are shared with the control plane: a kill or pause there is seen here.
    pub fn start(
        target: SocketAddr,
        sandbox_id: &str,
        gone: Arc<AtomicBool>,
        paused: Arc<AtomicBool>,
    ) -> io::Result<SandboxProxy> {
        SandboxProxy::start_ports(&[(JUPYTER_PORT, target)], sandbox_id, gone, paused)
    }

    /// Proxies each of sandbox `sandbox_id`'s `ports` (`(port, target)`) to its target.
    pub fn start_ports(
        ports: &[(&str, SocketAddr)],
        sandbox_id: &str,
        gone: Arc<AtomicBool>,
        paused: Arc<AtomicBool>,
    ) -> io::Result<SandboxProxy> {
        let shared = Arc::new(Shared {
            targets: ports.iter().map(|(p, a)| (p.to_string(), *a)).collect(),
            traffic_token: Mutex::new(None),
            sandbox_id: sandbox_id.to_string(),
            gone,
            paused,
            port_open: AtomicBool::new(true),
            header_routing: AtomicBool::new(true),
            seen: Mutex::new(Vec::new()),
            live: Mutex::new(Vec::new()),
            threads: Threads::default(),
        });
        let listener = {
            let (a, b) = (shared.clone(), shared.clone());
            Listener::start(
                "e2b-proxy",
                move || a.stopping(),
                move |client| {
                    let s = b.clone();
                    let _ = b
                        .threads
                        .spawn_numbered("e2b-proxy", move || serve(&s, client));
                },
            )?
        };
        Ok(SandboxProxy { shared, listener })
    }

    /// `http://127.0.0.1:PORT`: an IP host, so the proxy routes by the headers.
    pub fn url(&self) -> String {
        format!("http://{}", self.listener.addr())
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener.addr()
    }

    /// From now on the sandbox is gone: 502 "not found" to every request, live connections cut.
    pub fn mark_gone(&self) {
        self.shared.gone.store(true, Ordering::SeqCst);
        self.cut_all();
    }

    /// Whether Jupyter's port counts as open (a template without a server on 8888 when not).
    pub fn set_port_open(&self, open: bool) {
        self.shared.port_open.store(open, Ordering::SeqCst);
    }

    /// Whether `localhost`/IP hosts are routed by the headers. Off, such a host is an
    /// "Invalid host" (400), as for an `E2B_SANDBOX_URL` host the proxy does not serve.
    pub fn set_header_routing(&self, on: bool) {
        self.shared.header_routing.store(on, Ordering::SeqCst);
    }

    /// From now on every request needs `E2B-Traffic-Access-Token: token` (403 otherwise), as
    /// for a sandbox created with `allowPublicTraffic: false`.
    pub fn require_traffic_token(&self, token: &str) {
        *self.shared.traffic_token.lock().unwrap() = Some(token.to_string());
    }

    pub fn cut_all(&self) {
        self.shared.cut_all();
    }

    /// What a pause does to the proxy, as E2B's does: it stops routing to the sandbox (its
    /// answer is "sandbox not found") and the connections through it break.
    pub fn pause_hook(&self) -> PauseHook {
        let shared = self.shared.clone();
        Arc::new(move |pause| {
            if pause {
                shared.paused.store(true, Ordering::SeqCst);
                shared.cut_all();
            }
        })
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }
}

impl Drop for SandboxProxy {
    fn drop(&mut self) {
        self.shared.threads.stop();
        self.cut_all();
        let deadline = Instant::now() + JOIN_DEADLINE;
        self.listener.close(deadline);
        self.shared.threads.join_by(deadline);
    }
}

impl Shared {
    fn stopping(&self) -> bool {
        self.threads.stopping()
    }

    fn cut_all(&self) {
        for s in std::mem::take(&mut *self.live.lock().unwrap()) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Killed, or paused: nothing answers for the sandbox.
    fn unreachable(&self) -> bool {
        self.gone.load(Ordering::SeqCst) || self.paused.load(Ordering::SeqCst)
    }

    fn target(&self, port: &str) -> Option<SocketAddr> {
        self.targets
            .iter()
            .find(|(p, _)| p == port)
            .map(|(_, a)| *a)
    }
}

fn answer(client: &mut TcpStream, status: u16, reason: &str, body: &serde_json::Value) {
    let body = body.to_string();
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = client.write_all(head.as_bytes());
    let _ = client.write_all(body.as_bytes());
    let _ = client.flush();
}

fn serve(shared: &Shared, mut client: TcpStream) {
    let _ = client.set_read_timeout(Some(HEAD_TIMEOUT));
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return;
        }
        let mut chunk = [0u8; 4096];
        match client.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let rest = buf[head_end..].to_vec();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let host = header("host").unwrap_or_default();
    let upgrade = header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let mut seen = Seen {
        method,
        target,
        host: host.clone(),
        sandbox_id: header("e2b-sandbox-id"),
        sandbox_port: header("e2b-sandbox-port"),
        upgrade,
        subprotocols: header("sec-websocket-protocol"),
        answered: None,
    };
    let route: Option<(String, String)> = route(
        &host,
        seen.sandbox_id.clone(),
        seen.sandbox_port.clone(),
        shared.header_routing.load(Ordering::SeqCst),
    );
    let reply = match route.clone() {
        None => Some((
            400,
            "Bad Request",
            json!({"message": "Invalid host", "code": 400}),
        )),
        Some((id, _)) if id != shared.sandbox_id || shared.unreachable() => Some((
            502,
            "Bad Gateway",
            json!({"sandboxId": id, "message": "The sandbox was not found", "code": 502}),
        )),
        Some(_)
            if shared
                .traffic_token
                .lock()
                .unwrap()
                .as_ref()
                .is_some_and(|t| header("e2b-traffic-access-token").as_ref() != Some(t)) =>
        {
            Some((
                403,
                "Forbidden",
                json!({"message": "missing or invalid traffic access token", "code": 403}),
            ))
        }
        Some((id, port))
            if shared.target(&port).is_none() || !shared.port_open.load(Ordering::SeqCst) =>
        {
            Some((
                502,
                "Bad Gateway",
                json!({"sandboxId": id, "port": port,
                       "message": "The sandbox is running but port is not open", "code": 502}),
            ))
        }
        Some(_) => None,
    };
    if let Some((status, reason, body)) = reply {
        seen.answered = Some(status);
        shared.seen.lock().unwrap().push(seen);
        answer(&mut client, status, reason, &body);
        return;
    }
    shared.seen.lock().unwrap().push(seen);
    let target = route
        .as_ref()
        .and_then(|(_, port)| shared.target(port))
        .expect("a routed port");
    let Ok(mut server) = TcpStream::connect(target) else {
        return;
    };
    let _ = client.set_read_timeout(None);
    // Plain requests: one per connection, so the next one is routed (and maybe refused) again.
    let mut out = String::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        if !upgrade
            && line
                .split_once(':')
                .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case("connection"))
        {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    if !upgrade {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    if server.write_all(out.as_bytes()).is_err() || server.write_all(&rest).is_err() {
        return;
    }
    {
        let mut live = shared.live.lock().unwrap();
        if let Ok(c) = client.try_clone() {
            live.push(c);
        }
        if let Ok(s) = server.try_clone() {
            live.push(s);
        }
    }
    if shared.unreachable() {
        let _ = client.shutdown(Shutdown::Both);
        let _ = server.shutdown(Shutdown::Both);
        return;
    }
    let (Ok(mut c2), Ok(mut s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || {
        let _ = io::copy(&mut c2, &mut s2);
        let _ = s2.shutdown(Shutdown::Write);
    });
    let _ = io::copy(&mut server, &mut client);
    let _ = client.shutdown(Shutdown::Both);
    let _ = up.join();
}

/// `(sandbox id, port)` from the host, or from the headers when the host is `localhost`, an IP
/// or `sandbox.…`; `None` means "Invalid host".
fn route(
    host: &str,
    id: Option<String>,
    port: Option<String>,
    header_routing: bool,
) -> Option<(String, String)> {
    let name = match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let name = name.trim_matches(['[', ']']);
    let by_headers = name == "localhost"
        || name.parse::<std::net::IpAddr>().is_ok()
        || name.starts_with("sandbox.");
    if by_headers {
        if !header_routing {
            return None;
        }
        return Some((id?, port?));
    }
    let first = name.split('.').next()?;
    let (port, id) = first.split_once('-')?;
    port.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| (id.to_string(), port.to_string()))
}

/// What the rig's control plane was asked, as "METHOD /target".
pub type PlaneLog = Arc<Mutex<Vec<String>>>;

/// What pausing (`true`) or resuming (`false`) the sandbox does besides the control plane's
/// own state.
pub type PauseHook = Arc<dyn Fn(bool) + Send + Sync>;

/// A control plane for sandbox [`SANDBOX_ID`]: create, connect (which resumes a paused
/// sandbox), get (404 once gone; running or paused), pause (409 once paused), kill (which
/// marks it gone). Pausing and resuming call `on_pause`.
pub fn control_plane(
    gone: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    on_pause: PauseHook,
) -> (ScriptedWs, PlaneLog) {
    control_plane_answering(gone, paused, on_pause, json!({}))
}

/// [`control_plane`] whose create and connect answers also carry the fields of `extra` (an
/// envd version and tokens, say).
pub fn control_plane_answering(
    gone: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    on_pause: PauseHook,
    extra: serde_json::Value,
) -> (ScriptedWs, PlaneLog) {
    let seen: PlaneLog = Arc::default();
    let log = seen.clone();
    // A pause and a resume each run whole, one after the other, as E2B's own transitions do:
    // a resume that came in while a pause was stopping the processes would otherwise be undone.
    let transition = Mutex::new(());
    let plane = ScriptedWs::start_with(
        Options::new().http_with(move |req| {
            log.lock()
                .unwrap()
                .push(format!("{} {}", req.method, req.target));
            if req.header("x-api-key").as_deref() != Some(API_KEY) {
                return Some(HttpAnswer::json(
                    401,
                    &json!({"code": 401, "message": "bad key"}),
                ));
            }
            let mut access = json!({"sandboxID": SANDBOX_ID, "templateID": "code-interpreter-v1",
                                "clientID": "c", "envdVersion": "0.2.0"});
            if let (Some(a), Some(e)) = (access.as_object_mut(), extra.as_object()) {
                a.extend(e.clone());
            }
            let path = format!("/sandboxes/{SANDBOX_ID}");
            let is_gone = gone.load(Ordering::SeqCst);
            let not_found = || {
                Some(HttpAnswer::json(
                    404,
                    &json!({"code": 404, "message": "sandbox not found"}),
                ))
            };
            match (req.method.as_str(), req.path()) {
                ("POST", "/sandboxes" | "/v2/sandboxes") => Some(HttpAnswer::json(201, &access)),
                ("POST", p) if p == format!("{path}/connect") || p == format!("/v2{path}/connect") => {
                    let _whole = transition.lock().unwrap();
                    if is_gone {
                        not_found()
                    } else if paused.load(Ordering::SeqCst) {
                        on_pause(false);
                        paused.store(false, Ordering::SeqCst);
                        Some(HttpAnswer::json(201, &access))
                    } else {
                        Some(HttpAnswer::json(200, &access))
                    }
                }
                ("POST", p) if p == format!("{path}/pause") => {
                    let _whole = transition.lock().unwrap();
                    if is_gone {
                        not_found()
                    } else if paused.swap(true, Ordering::SeqCst) {
                        Some(HttpAnswer::json(
                            409,
                            &json!({"code": 409, "message": "sandbox is already paused"}),
                        ))
                    } else {
                        on_pause(true);
                        Some(HttpAnswer::text(204, ""))
                    }
                }
                ("GET", p) if p == path => {
                    if is_gone {
                        not_found()
                    } else {
                        Some(HttpAnswer::json(
                            200,
                            &json!({"templateID": "code-interpreter-v1", "sandboxID": SANDBOX_ID,
                                "clientID": "c", "startedAt": "2026-01-01T00:00:00Z",
                                "endAt": "2026-01-01T01:00:00Z", "cpuCount": 2, "memoryMB": 512,
                                "diskSizeMB": 1024, "envdVersion": "0.2.0",
                                "state": if paused.load(Ordering::SeqCst) { "paused" } else { "running" }}),
                        ))
                    }
                }
                ("DELETE", p) if p == path => {
                    gone.store(true, Ordering::SeqCst);
                    Some(HttpAnswer::text(204, ""))
                }
                _ => None,
            }
        }),
        |_| {},
    )
    .expect("control plane starts");
    (plane, seen)
}

/// The whole rig: the template's Jupyter server, the proxy in front of it, the control plane.
pub struct Rig {
    pub jupyter: PythonServer,
    pub proxy: SandboxProxy,
    pub plane: ScriptedWs,
    pub plane_log: PlaneLog,
    pub gone: Arc<AtomicBool>,
    pub paused: Arc<AtomicBool>,
}

/// Sends `signal` to the server `root` and every process under it (its kernels).
fn signal_tree(root: u32, signal: nix::sys::signal::Signal) {
    let mut pids = vec![root];
    pids.extend(super::descendants(root));
    for pid in pids {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
    }
}

impl Rig {
    pub fn start() -> Rig {
        let jupyter = PythonServer::template_jupyter();
        let addr: SocketAddr = jupyter
            .url
            .trim_start_matches("http://")
            .parse()
            .expect("host:port");
        let gone = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let proxy = SandboxProxy::start(addr, SANDBOX_ID, gone.clone(), paused.clone())
            .expect("proxy starts");
        // A pause as E2B makes one: the proxy stops routing (the control plane's flag), the
        // connections through it break, and everything in the sandbox stops where it is,
        // memory kept; a resume lets it go on.
        let on_pause: PauseHook = {
            let (routing, pid) = (proxy.pause_hook(), jupyter.pid());
            Arc::new(move |pause| {
                routing(pause);
                if pause {
                    signal_tree(pid, nix::sys::signal::Signal::SIGSTOP);
                } else {
                    signal_tree(pid, nix::sys::signal::Signal::SIGCONT);
                }
            })
        };
        let (plane, plane_log) = control_plane(gone.clone(), paused.clone(), on_pause);
        Rig {
            jupyter,
            proxy,
            plane,
            plane_log,
            gone,
            paused,
        }
    }

    /// A config that reaches the control plane and, through the proxy, the sandbox.
    pub fn config(&self) -> e2b_blocking::E2bConfig {
        e2b_blocking::E2bConfig::default()
            .api_key(API_KEY)
            .api_url(self.plane.http_url())
            .sandbox_url(self.proxy.url())
    }

    /// The sandbox dies: the control plane says 404, the proxy 502.
    pub fn kill_sandbox(&self) {
        self.gone.store(true, Ordering::SeqCst);
        self.proxy.mark_gone();
    }

    /// Whether the control plane has the sandbox paused.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    pub fn plane_requests(&self) -> Vec<String> {
        self.plane_log.lock().unwrap().clone()
    }
}

impl Drop for Rig {
    /// A test that fails while the sandbox is paused leaves no stopped processes behind.
    fn drop(&mut self) {
        if self.is_paused() {
            signal_tree(self.jupyter.pid(), nix::sys::signal::Signal::SIGCONT);
        }
    }
}
