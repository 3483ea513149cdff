//! Opening one websocket on a Jupyter server (a kernel's channels, a terminal): TCP with the
//! latency options set, TLS when the URL says so, the handshake with subprotocol negotiation,
//! and the mapping of handshake failures to errors.
//!
//! The upgrade request is written and its answer's head read by [`upgrade`], not by
//! tungstenite, whose client logs the whole request, and the server's token with it.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use tungstenite::WebSocket;
use tungstenite::handshake::derive_accept_key;
use tungstenite::http::Uri;
use tungstenite::http::uri::InvalidUri;
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::stream::MaybeTlsStream;

use crate::config::{ReconnectPolicy, Timeouts};
use crate::error::{Error, TimeoutPhase};
use crate::jupyter::wire::{Framing, V1_SUBPROTOCOL};
use crate::net::Attempts;
use crate::net::conn::Conn;
use crate::net::redact::{Outbox, upgrade};
use crate::net::{Endpoint, encode_component};

/// Bytes tungstenite reads (and zero-fills) per read() call.
const READ_BUFFER: usize = 16 * 1024;

/// The websocket plus a second handle on its socket for socket options and readiness.
pub(crate) struct Socket {
    /// Data frames go into its [`Outbox`] directly (see there), not through `ws.write`.
    pub(crate) ws: WebSocket<Outbox<MaybeTlsStream<Conn>>>,
    pub(crate) raw: Conn,
    pub(crate) framing: Framing,
}

/// Where and how to connect to one kernel's channels.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) endpoint: Endpoint,
    pub(crate) kernel_id: String,
    pub(crate) session_id: String,
}

impl Target {
    fn route(&self) -> Route<'_> {
        Route {
            endpoint: &self.endpoint,
            path: format!(
                "/api/kernels/{}/channels?session_id={}",
                encode_component(&self.kernel_id),
                encode_component(&self.session_id)
            ),
            label: format!("kernel {}", self.kernel_id),
            id: self.kernel_id.clone(),
            not_found: |kernel_id| Error::KernelNotFound { kernel_id },
        }
    }
}

/// Any websocket on a Jupyter server (a kernel's channels, a terminal): where it is, what to
/// call it in logs and errors, and the error a 404 on the upgrade stands for.
pub(crate) struct Route<'a> {
    pub(crate) endpoint: &'a Endpoint,
    /// Path and query, from the server's base URL on.
    pub(crate) path: String,
    /// `kernel <id>`, `terminal <name>`.
    pub(crate) label: String,
    /// The kernel id or terminal name, for the not-found error.
    pub(crate) id: String,
    /// The error of a 404, given `id`.
    pub(crate) not_found: fn(String) -> Error,
}

/// How long one connect may take, and what running out is reported as.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Resolving the host and opening TCP; never more than `total`.
    tcp: Duration,
    /// The whole connect, handshake included.
    total: Duration,
    /// The phase a handshake that runs out of `total` reports.
    phase: TimeoutPhase,
    /// The deadline reported then: `total`, or the whole budget this attempt is part of.
    budget: Duration,
}

impl Limits {
    /// A reconnect to a running kernel: the handshake answers in milliseconds.
    pub(crate) fn reconnect(timeout: Duration) -> Limits {
        Limits {
            tcp: timeout,
            total: timeout,
            phase: TimeoutPhase::Connect,
            budget: timeout,
        }
    }

    /// The first connect to a kernel just started: jupyter_server holds the handshake until the
    /// kernel is alive and has answered `kernel_info` (for up to its own `kernel_info_timeout`,
    /// 60 s), so the kernel's start-up is part of it.
    pub(crate) fn new_kernel(timeouts: &Timeouts) -> Limits {
        Limits {
            tcp: timeouts.connect.min(timeouts.kernel_start),
            total: timeouts.kernel_start,
            phase: TimeoutPhase::KernelStart,
            budget: timeouts.kernel_start,
        }
    }

    /// These limits for a later attempt, `used` into the budget: `None` once it is spent.
    pub(crate) fn after(self, used: Duration) -> Option<Limits> {
        let left = self.budget.checked_sub(used).filter(|d| !d.is_zero())?;
        Some(Limits {
            tcp: self.tcp.min(left),
            total: self.total.min(left),
            ..self
        })
    }

    pub(crate) fn timeout(&self) -> Error {
        Error::Timeout {
            phase: self.phase,
            after: self.budget,
        }
    }

    fn tcp_timeout(&self) -> Error {
        Error::Timeout {
            phase: TimeoutPhase::Connect,
            after: self.tcp,
        }
    }
}

/// The first connect of a new link (a kernel's or a terminal's): `attempt` retried under
/// `policy` when the link breaks (not when the server answers no), all within `limits`.
pub(crate) fn first_connect(
    label: &str,
    limits: Limits,
    policy: &ReconnectPolicy,
    mut attempt: impl FnMut(Limits) -> Result<Socket, Error>,
) -> Result<Socket, Error> {
    let mut retry = Attempts::new(policy);
    loop {
        let Some(this) = limits.after(retry.started().elapsed()) else {
            return Err(limits.timeout());
        };
        let e = match attempt(this) {
            Ok(socket) => return Ok(socket),
            Err(e @ Error::Transport { .. }) => e,
            Err(e) => return Err(e),
        };
        let Some(next) = retry.failed() else {
            return Err(e);
        };
        log::debug!("{label}: first connect failed ({}); retrying", e.report());
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

/// Connects within `limits`. `framing` is a hint from an earlier connect: `Some(Legacy)` skips
/// offering the v1 subprotocol to a server known not to take it.
pub(crate) fn connect(
    target: &Target,
    limits: Limits,
    framing: Option<Framing>,
    max_message: usize,
) -> Result<Socket, Error> {
    let started = Instant::now();
    let config = ws_config(max_message);
    let route = target.route();
    if framing != Some(Framing::Legacy) {
        match handshake(&route, limits, started, true, config) {
            Err(Attempt::SubprotocolRefused) => {
                log::debug!("server declined {V1_SUBPROTOCOL}; using legacy JSON framing");
            }
            other => return other.map_err(Attempt::into_error),
        }
    }
    handshake(&route, limits, started, false, config).map_err(Attempt::into_error)
}

/// Connects to a websocket that speaks no subprotocol (a terminal's), within `limits`.
pub(crate) fn connect_plain(
    route: &Route<'_>,
    limits: Limits,
    max_message: usize,
) -> Result<Socket, Error> {
    handshake(route, limits, Instant::now(), false, ws_config(max_message))
        .map_err(Attempt::into_error)
}

/// tungstenite zero-fills up to `read_buffer_size` bytes before every read() (128 KiB by
/// default: ~1 MiB of memset per `run_code("1")`); 16 KiB keeps that small, and a large frame
/// still arrives in 16 KiB reads into a buffer reserved for the whole frame.
fn ws_config(max_message: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
}

enum Attempt {
    SubprotocolRefused,
    Failed(Error),
}

impl Attempt {
    fn into_error(self) -> Error {
        match self {
            Attempt::Failed(e) => e,
            Attempt::SubprotocolRefused => Error::protocol("server refused every subprotocol"),
        }
    }
}

fn handshake(
    route: &Route<'_>,
    limits: Limits,
    started: Instant,
    offer_v1: bool,
    config: WebSocketConfig,
) -> Result<Socket, Attempt> {
    let url = route.endpoint.ws_url(&route.path);
    let endpoint = format!("websocket of {}", route.label);
    let bad_url = |why: String| {
        Attempt::Failed(Error::InvalidArgument(format!(
            "bad URL for {}: {why}",
            route.label
        )))
    };
    let uri: Uri = url
        .parse()
        .map_err(|e: InvalidUri| bad_url(e.to_string()))?;
    let tls = match uri.scheme_str() {
        Some("wss") => true,
        Some("ws") => false,
        other => return Err(bad_url(format!("scheme {other:?}"))),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| bad_url("no host".into()))?
        .clone();
    let host = authority.host().trim_matches(['[', ']']).to_string();
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let subprotocol = offer_v1.then_some(V1_SUBPROTOCOL);
    let request = upgrade::request(&uri, &authority, subprotocol, route.endpoint.headers())
        .map_err(Attempt::Failed)?;
    let deadline = started + limits.total;
    let timeout_err = || Attempt::Failed(limits.timeout());
    let transport = |source: io::Error| {
        Attempt::Failed(Error::Transport {
            endpoint: format!("{host}:{port}"),
            source: Box::new(source),
        })
    };

    let tcp = match route.endpoint.unix_socket() {
        // A local connect completes or fails at once.
        Some(path) => crate::net::conn::connect_unix(path).map(Conn::Unix),
        None => open_tcp(&host, port, started + limits.tcp).map(Conn::Tcp),
    }
    .map_err(|e| match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            Attempt::Failed(limits.tcp_timeout())
        }
        _ => transport(e),
    })?;
    let raw = tcp.try_clone().map_err(transport)?;
    let mut stream = if tls {
        MaybeTlsStream::Rustls(
            tls_client(tcp, &host, route.endpoint.tls()).map_err(Attempt::Failed)?,
        )
    } else {
        MaybeTlsStream::Plain(tcp)
    };
    // Past the TCP connect, an I/O error is the handshake's: running out of time is the
    // connect's timeout, anything else a transport failure of this websocket.
    let io_failed = |e: io::Error| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => timeout_err(),
        _ => Attempt::Failed(
            crate::net::tls::untrusted(&endpoint, Box::new(e)).unwrap_or_else(|source| {
                Error::Transport {
                    endpoint: endpoint.clone(),
                    source,
                }
            }),
        ),
    };
    let (head, leftover) =
        upgrade::exchange(&mut stream, &raw, &request.bytes, deadline).map_err(io_failed)?;
    let framing = judge(&head, &request.key, offer_v1, route, &endpoint)?;
    let ws =
        WebSocket::from_partially_read(Outbox::new(stream), leftover, Role::Client, Some(config));
    raw.set_read_timeout(None).map_err(transport)?;
    raw.set_write_timeout(None).map_err(transport)?;
    raw.set_nonblocking(true).map_err(transport)?;
    log::debug!("connected to {} ({framing:?} framing)", route.label);
    Ok(Socket { ws, raw, framing })
}

/// Checks the upgrade response as RFC 6455 4.1 asks and picks the framing from the
/// subprotocol the server chose.
fn judge(
    head: &[u8],
    key: &str,
    offer_v1: bool,
    route: &Route<'_>,
    endpoint: &str,
) -> Result<Framing, Attempt> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let status = match response.parse(head) {
        Ok(httparse::Status::Complete(_)) => response.code.unwrap_or(0),
        Ok(httparse::Status::Partial) => {
            return Err(Attempt::Failed(Error::protocol(
                "incomplete websocket upgrade response",
            )));
        }
        Err(e) => {
            return Err(Attempt::Failed(Error::protocol_from(
                "malformed websocket upgrade response",
                e,
            )));
        }
    };
    if status != 101 {
        return Err(Attempt::Failed(match status {
            401 | 403 => Error::Authentication {
                status,
                endpoint: endpoint.to_string(),
            },
            404 => (route.not_found)(route.id.clone()),
            _ => Error::Http {
                status,
                endpoint: endpoint.to_string(),
                message: "websocket upgrade refused".into(),
            },
        }));
    }
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
    };
    let refused = |why: &str| Attempt::Failed(Error::protocol(format!("websocket upgrade: {why}")));
    if !header("Upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
        return Err(refused("no `Upgrade: websocket` in the answer"));
    }
    if !header("Connection").is_some_and(|v| {
        v.split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
    }) {
        return Err(refused("no `Connection: upgrade` in the answer"));
    }
    if header("Sec-WebSocket-Accept").as_deref() != Some(derive_accept_key(key.as_bytes()).as_str())
    {
        return Err(refused("Sec-WebSocket-Accept does not match the key sent"));
    }
    match (header("Sec-WebSocket-Protocol"), offer_v1) {
        (Some(p), true) if p == V1_SUBPROTOCOL => Ok(Framing::V1),
        (None, false) => Ok(Framing::Legacy),
        // None chosen although offered, another than offered, or one without an offer.
        _ => Err(Attempt::SubprotocolRefused),
    }
}

/// A TLS client on `tcp` for `host`, trusting the endpoint's roots (webpki by default).
fn tls_client(
    tcp: Conn,
    host: &str,
    roots: &crate::net::tls::TlsRoots,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, Conn>, Error> {
    let config = roots.rustls()?;
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| Error::InvalidArgument(format!("bad TLS server name {host:?}: {e}")))?;
    let conn = rustls::ClientConnection::new(config, name)
        .map_err(|e| Error::protocol_from("cannot start TLS", e))?;
    Ok(rustls::StreamOwned::new(conn, tcp))
}

fn open_tcp(host: &str, port: u16, deadline: Instant) -> io::Result<TcpStream> {
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "host resolved to no address");
    for addr in addrs {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return Err(io::ErrorKind::TimedOut.into());
        };
        match TcpStream::connect_timeout(&addr, left.max(Duration::from_millis(1))) {
            Ok(s) => {
                // Tornado turns Nagle back on after the upgrade; we at least keep ours off.
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Re-arms TCP_QUICKACK. Without it, stock jupyter_server's Nagle plus our delayed ACK costs
/// ~40 ms per round trip.
///
/// Linux re-enters delayed-ACK ("pingpong") mode when we send data, so the option must be set
/// again after our writes and before the server's next segment arrives. The worker does it
/// once before each poll: segments that arrive while it sleeps are acked at once, and an ACK
/// held back during a read batch is flushed by this call. Setting it before every read as well
/// (as before) cost ~10 extra syscalls per `run_code("1")` for no latency gain.
pub(crate) fn quickack(raw: &Conn) {
    // A Unix socket has no delayed ACKs to defeat.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Conn::Tcp(raw) = raw {
        let _ = socket2::SockRef::from(raw).set_tcp_quickack(true);
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = raw;
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::thread::JoinHandle;

    use super::*;
    use crate::config::Secret;
    use crate::net::Endpoint;

    type Answer = fn(&str) -> Vec<u8>;
    type Expect = fn(&Error) -> bool;

    /// Answers one upgrade request per entry of `answers` (given the client's key) and returns
    /// the request heads read.
    fn serve(answers: Vec<Answer>) -> (u16, JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            let mut heads = Vec::new();
            for answer in answers {
                let (mut tcp, _) = listener.accept().unwrap();
                tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    assert_eq!(tcp.read(&mut byte).unwrap(), 1, "request head cut short");
                    head.push(byte[0]);
                }
                let head = String::from_utf8(head).unwrap();
                let key = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                    .unwrap_or_default()
                    .to_string();
                tcp.write_all(&answer(&key)).unwrap();
                // Holds the connection until the client drops it.
                let _ = tcp.read(&mut byte);
                heads.push(head);
            }
            heads
        });
        (port, handle)
    }

    fn target(port: u16) -> Target {
        Target {
            endpoint: Endpoint::new(&format!("http://127.0.0.1:{port}"))
                .unwrap()
                .with_jupyter_token(&Secret::new("sekrit")),
            kernel_id: "k1".into(),
            session_id: "s1".into(),
        }
    }

    fn open(port: u16) -> Result<Socket, Error> {
        connect(
            &target(port),
            Limits::reconnect(Duration::from_secs(10)),
            None,
            1 << 20,
        )
    }

    fn switching(accept: &str, protocol: Option<&str>) -> String {
        let protocol = protocol.map_or(String::new(), |p| {
            format!("Sec-WebSocket-Protocol: {p}\r\n")
        });
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n{protocol}\r\n"
        )
    }

    #[test]
    fn frames_sent_with_the_upgrade_answer_reach_the_websocket() {
        let (port, server) = serve(vec![|key| {
            let mut out =
                switching(&derive_accept_key(key.as_bytes()), Some(V1_SUBPROTOCOL)).into_bytes();
            // An unmasked text frame "hi" in the same segment as the answer.
            out.extend_from_slice(&[0x81, 0x02, b'h', b'i']);
            out
        }]);
        let mut sock = open(port).unwrap();
        assert_eq!(sock.framing, Framing::V1);
        let msg = sock.ws.read().unwrap();
        assert_eq!(msg, tungstenite::Message::Text("hi".into()));
        drop(sock);
        let heads = server.join().unwrap();
        let head = &heads[0];
        assert!(head.starts_with("GET /api/kernels/k1/channels?session_id=s1 HTTP/1.1\r\n"));
        assert!(
            head.contains(&format!("\r\nHost: 127.0.0.1:{port}\r\n")),
            "{head}"
        );
        assert!(
            head.contains("\r\nAuthorization: token sekrit\r\n"),
            "{head}"
        );
        assert!(head.contains(&format!("\r\nSec-WebSocket-Protocol: {V1_SUBPROTOCOL}\r\n")));
    }

    #[test]
    fn a_declined_subprotocol_falls_back_to_legacy_framing() {
        let (port, server) = serve(vec![
            |key| switching(&derive_accept_key(key.as_bytes()), None).into_bytes(),
            |key| switching(&derive_accept_key(key.as_bytes()), None).into_bytes(),
        ]);
        let sock = open(port).unwrap();
        assert_eq!(sock.framing, Framing::Legacy);
        drop(sock);
        let heads = server.join().unwrap();
        assert!(!heads[1].contains("Sec-WebSocket-Protocol"), "{}", heads[1]);
    }

    #[test]
    fn refusals_and_bad_answers_are_typed_errors() {
        let cases: Vec<(Answer, Expect)> = vec![
            (
                |_| b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n".to_vec(),
                |e| matches!(e, Error::Authentication { status: 403, .. }),
            ),
            (
                |_| b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
                |e| matches!(e, Error::KernelNotFound { .. }),
            ),
            (
                |_| switching("bm90IHRoZSBrZXk=", Some(V1_SUBPROTOCOL)).into_bytes(),
                |e| matches!(e, Error::Protocol { .. }),
            ),
            (
                |_| b"garbage\r\n\r\n".to_vec(),
                |e| matches!(e, Error::Protocol { .. }),
            ),
        ];
        for (answer, expected) in cases {
            let (port, server) = serve(vec![answer]);
            let err = open(port).err().expect("the connect fails");
            assert!(expected(&err), "{err:?}");
            server.join().unwrap();
        }
    }
}
