//! Opening one kernel websocket: TCP with the latency options set, TLS when the URL says so,
//! the handshake with subprotocol negotiation, and the mapping of handshake failures to errors.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{HandshakeError, WebSocket};

use crate::config::Timeouts;
use crate::error::{BoxError, Error, TimeoutPhase};
use crate::http::{Endpoint, encode_component};
use crate::jupyter::wire::{Framing, V1_SUBPROTOCOL};

/// Bytes tungstenite reads (and zero-fills) per read() call.
const READ_BUFFER: usize = 16 * 1024;

/// The websocket plus a second handle on its TCP socket for socket options and readiness.
pub(crate) struct Socket {
    pub(crate) ws: WebSocket<MaybeTlsStream<TcpStream>>,
    pub(crate) raw: TcpStream,
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
    fn url(&self) -> String {
        self.endpoint.ws_url(&format!(
            "/api/kernels/{}/channels?session_id={}",
            encode_component(&self.kernel_id),
            encode_component(&self.session_id)
        ))
    }
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
}

impl Limits {
    /// A reconnect to a running kernel: the handshake answers in milliseconds.
    pub(crate) fn reconnect(timeout: Duration) -> Limits {
        Limits {
            tcp: timeout,
            total: timeout,
            phase: TimeoutPhase::Connect,
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
        }
    }

    fn timeout(&self) -> Error {
        Error::Timeout {
            phase: self.phase,
            after: self.total,
        }
    }

    fn tcp_timeout(&self) -> Error {
        Error::Timeout {
            phase: TimeoutPhase::Connect,
            after: self.tcp,
        }
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
    // tungstenite zero-fills up to `read_buffer_size` bytes before every read() (128 KiB by
    // default: ~1 MiB of memset per `run_code("1")`); 16 KiB keeps that small, and a large
    // frame still arrives in 16 KiB reads into a buffer reserved for the whole frame.
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message));
    if framing != Some(Framing::Legacy) {
        match handshake(target, limits, started, true, config) {
            Err(Attempt::SubprotocolRefused) => {
                log::debug!("server declined {V1_SUBPROTOCOL}; using legacy JSON framing");
            }
            other => return other.map_err(Attempt::into_error),
        }
    }
    handshake(target, limits, started, false, config).map_err(Attempt::into_error)
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
    target: &Target,
    limits: Limits,
    started: Instant,
    offer_v1: bool,
    config: WebSocketConfig,
) -> Result<Socket, Attempt> {
    let url = target.url();
    let endpoint = format!("websocket of kernel {}", target.kernel_id);
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| Attempt::Failed(Error::InvalidArgument(format!("bad kernel URL: {e}"))))?;
    for (name, value) in target.endpoint.headers() {
        let value = HeaderValue::from_str(value).map_err(|_| {
            Attempt::Failed(Error::InvalidArgument(format!(
                "header {name} has characters not allowed in HTTP"
            )))
        })?;
        let name: tungstenite::http::HeaderName = name.parse().map_err(|_| {
            Attempt::Failed(Error::InvalidArgument(format!("bad header name {name:?}")))
        })?;
        request.headers_mut().insert(name, value);
    }
    if offer_v1 {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(V1_SUBPROTOCOL),
        );
    }
    let uri = request.uri();
    let host = uri
        .host()
        .unwrap_or("")
        .trim_matches(['[', ']'])
        .to_string();
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("wss") {
            443
        } else {
            80
        });
    let deadline = started + limits.total;
    let timeout_err = || Attempt::Failed(limits.timeout());
    let transport = |source: io::Error| {
        Attempt::Failed(Error::Transport {
            endpoint: format!("{host}:{port}"),
            source: Box::new(source),
        })
    };

    let tcp = open_tcp(&host, port, started + limits.tcp).map_err(|e| match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            Attempt::Failed(limits.tcp_timeout())
        }
        _ => transport(e),
    })?;
    let remaining = deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(timeout_err)?;
    tcp.set_read_timeout(Some(remaining)).map_err(transport)?;
    tcp.set_write_timeout(Some(remaining)).map_err(transport)?;
    let raw = tcp.try_clone().map_err(transport)?;

    let (ws, response) = match tungstenite::client_tls_with_config(request, tcp, Some(config), None)
    {
        Ok(pair) => pair,
        Err(HandshakeError::Interrupted(_)) => return Err(timeout_err()),
        Err(HandshakeError::Failure(e)) => return Err(classify(e, target, &endpoint, limits)),
    };
    let framing = match response.headers().get("Sec-WebSocket-Protocol") {
        Some(p) if p.as_bytes() == V1_SUBPROTOCOL.as_bytes() => Framing::V1,
        _ => Framing::Legacy,
    };
    raw.set_read_timeout(None).map_err(transport)?;
    raw.set_write_timeout(None).map_err(transport)?;
    raw.set_nonblocking(true).map_err(transport)?;
    log::debug!(
        "connected to kernel {} ({framing:?} framing)",
        target.kernel_id
    );
    Ok(Socket { ws, raw, framing })
}

fn classify(e: tungstenite::Error, target: &Target, endpoint: &str, limits: Limits) -> Attempt {
    use tungstenite::error::ProtocolError;
    match e {
        tungstenite::Error::Protocol(ProtocolError::SecWebSocketSubProtocolError(_)) => {
            Attempt::SubprotocolRefused
        }
        tungstenite::Error::Http(resp) => {
            let status = resp.status().as_u16();
            Attempt::Failed(match status {
                401 | 403 => Error::Authentication {
                    status,
                    endpoint: endpoint.to_string(),
                },
                404 => Error::KernelNotFound {
                    kernel_id: target.kernel_id.clone(),
                },
                _ => Error::Http {
                    status,
                    endpoint: endpoint.to_string(),
                    message: "websocket upgrade refused".into(),
                },
            })
        }
        tungstenite::Error::Io(io)
            if matches!(
                io.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Attempt::Failed(limits.timeout())
        }
        tungstenite::Error::Io(_) | tungstenite::Error::Tls(_) => {
            Attempt::Failed(Error::Transport {
                endpoint: endpoint.to_string(),
                source: BoxError::from(e),
            })
        }
        other => Attempt::Failed(Error::protocol_from("websocket handshake failed", other)),
    }
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
pub(crate) fn quickack(raw: &TcpStream) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let _ = socket2::SockRef::from(raw).set_tcp_quickack(true);
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = raw;
}
