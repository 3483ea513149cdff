//! One `ureq::Agent` per sandbox, with the base URL and auth headers of one server, and the
//! mapping from HTTP outcomes to [`Error`].

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::{ReconnectPolicy, Secret, Timeouts};
use crate::error::{BoxError, Error, TimeoutPhase};
use crate::mask::{self, MaskedHeaders};
use crate::retry::Retry;

/// A server's base URL plus the headers every request to it carries. Header values are secrets.
#[derive(Clone)]
pub(crate) struct Endpoint {
    base: String,
    headers: Vec<(String, Secret)>,
    /// Roots its TLS certificate must chain to.
    tls: crate::tls::TlsRoots,
    /// Where every connection goes instead of the URL's host, for a server on a Unix socket.
    unix: Option<Arc<Path>>,
    /// The `http+unix://` form of the URL, when `unix` is set: what users are shown.
    unix_url: Option<String>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Endpoint")
            .field("base", &self.base)
            .field("headers", &names)
            .field("tls", &self.tls)
            .field("unix", &self.unix)
            .finish()
    }
}

impl Endpoint {
    /// `base` is `http(s)://host:port[/prefix]`, or `http+unix://{percent-encoded socket
    /// path}[/prefix]` for a server on a Unix socket; a trailing slash is dropped.
    pub(crate) fn new(base: &str) -> Result<Endpoint, Error> {
        if let Some(parsed) = crate::unix_url::parse(base) {
            let (path, prefix) = parsed?;
            return Ok(Endpoint::new(&format!("http://localhost{prefix}"))?.with_unix_socket(&path));
        }
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::InvalidArgument(format!(
                "server URL must start with http:// or https://, got {base:?}"
            )));
        }
        if base.contains('?') || base.contains('#') {
            return Err(Error::InvalidArgument(
                "server URL must not carry a query or fragment; pass the token separately".into(),
            ));
        }
        Ok(Endpoint {
            base,
            headers: Vec::new(),
            tls: Default::default(),
            unix: None,
            unix_url: None,
        })
    }

    /// Connects to the Unix socket at `path` instead of the URL's host and port.
    pub(crate) fn with_unix_socket(mut self, path: &Path) -> Endpoint {
        self.unix = Some(Arc::from(path));
        let prefix = self.base.splitn(4, '/').nth(3).unwrap_or_default();
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("/{prefix}")
        };
        self.unix_url = Some(crate::unix_url::format(path, &prefix));
        self
    }

    /// The URL to show users: [`Endpoint::base`], or its `http+unix://` form for a server on a
    /// Unix socket (whose `base` names `localhost`, only the Host header it is sent).
    pub(crate) fn public_url(&self) -> &str {
        self.unix_url.as_deref().unwrap_or(&self.base)
    }

    /// The Unix socket connections go to, if any.
    pub(crate) fn unix_socket(&self) -> Option<&Arc<Path>> {
        self.unix.as_ref()
    }

    pub(crate) fn with_header(mut self, name: &str, value: Secret) -> Endpoint {
        if !value.is_empty() {
            self.headers.push((name.to_string(), value));
        }
        self
    }

    /// Jupyter's own scheme: `Authorization: token …`.
    pub(crate) fn with_jupyter_token(self, token: &Secret) -> Endpoint {
        if token.is_empty() {
            return self;
        }
        let value = Secret::new(format!("token {}", token.expose()));
        self.with_header("Authorization", value)
    }

    /// The same endpoint, trusting `roots` for `https://` and `wss://`.
    pub(crate) fn with_tls(mut self, roots: crate::tls::TlsRoots) -> Endpoint {
        self.tls = roots;
        self
    }

    pub(crate) fn tls(&self) -> &crate::tls::TlsRoots {
        &self.tls
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(n, v)| (n.as_str(), v.expose()))
    }

    pub(crate) fn secret_headers(&self) -> impl Iterator<Item = (&str, &Secret)> {
        self.headers.iter().map(|(n, v)| (n.as_str(), v))
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The same URL with `ws://` or `wss://`.
    pub(crate) fn ws_url(&self, path: &str) -> String {
        let url = self.url(path);
        match url.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}"),
            None => format!("ws://{}", url.trim_start_matches("http://")),
        }
    }
}

/// HTTP method, kept to what the Jupyter and E2B APIs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Post,
    #[allow(dead_code)] // used by the contents API
    Put,
    #[allow(dead_code)] // used by the contents API
    Patch,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// A response whose status the caller still has to judge.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    pub(crate) content_type: String,
    pub(crate) endpoint: String,
    pub(crate) retry_after: Option<Duration>,
}

impl Response {
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Turns a non-2xx status into the matching error.
    pub(crate) fn error_for_status(self) -> Result<Response, Error> {
        if self.is_success() {
            return Ok(self);
        }
        Err(self.into_error())
    }

    pub(crate) fn into_error(self) -> Error {
        match self.status {
            401 | 403 => Error::Authentication {
                status: self.status,
                endpoint: self.endpoint,
            },
            429 => Error::RateLimited {
                endpoint: self.endpoint,
                retry_after: self.retry_after,
            },
            502 if self.sandbox_gone().is_some() => Error::SandboxNotFound {
                sandbox_id: self.sandbox_gone().unwrap_or_default(),
            },
            status => Error::Http {
                status,
                message: self.message(),
                endpoint: self.endpoint,
            },
        }
    }

    /// The sandbox id when this is E2B's sandbox proxy saying the sandbox is gone (`502`
    /// `{"sandboxId": …, "message": "The sandbox was not found"}`).
    pub(crate) fn sandbox_gone(&self) -> Option<String> {
        if self.status != 502 {
            return None;
        }
        let v: Value = serde_json::from_slice(&self.body).ok()?;
        let message = v.get("message")?.as_str()?;
        if !message
            .to_ascii_lowercase()
            .contains("sandbox was not found")
        {
            return None;
        }
        Some(
            v.get("sandboxId")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        )
    }

    /// The server's own message: `message`/`reason` of a JSON body, or the start of the text.
    pub(crate) fn message(&self) -> String {
        if let Ok(v) = serde_json::from_slice::<Value>(&self.body) {
            for key in ["message", "reason", "detail", "error"] {
                if let Some(s) = v.get(key).and_then(Value::as_str) {
                    return shorten(s);
                }
            }
        }
        if self.content_type.contains("html") {
            return format!("{} byte HTML page", self.body.len());
        }
        shorten(&String::from_utf8_lossy(&self.body))
    }

    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        if self.content_type.contains("html") {
            return Err(Error::protocol(format!(
                "{} answered an HTML page where JSON was expected",
                self.endpoint
            )));
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::protocol_from(format!("bad JSON from {}", self.endpoint), e))
    }
}

fn shorten(s: &str) -> String {
    const MAX: usize = 300;
    let s = s.trim();
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// A blocking HTTP client bound to one [`Endpoint`].
#[derive(Clone)]
pub(crate) struct Http {
    agent: ureq::Agent,
    endpoint: Endpoint,
    /// The endpoint's headers as this agent must be given them.
    headers: MaskedHeaders,
    connect_timeout: Duration,
    request_timeout: Duration,
    /// How GET and DELETE are retried when the link breaks under them.
    retry: ReconnectPolicy,
}

impl fmt::Debug for Http {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// Largest response body read into memory by the JSON helpers.
const MAX_BODY: u64 = 256 * 1024 * 1024;

impl Http {
    pub(crate) fn new(endpoint: Endpoint, timeouts: &Timeouts) -> Http {
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(timeouts.connect))
            .timeout_global(Some(timeouts.request))
            .user_agent(concat!("e2b-blocking/", env!("CARGO_PKG_VERSION")));
        if let Some(tls) = endpoint.tls.ureq() {
            config = config.tls_config(tls);
        }
        let (agent, headers) = mask::agent(
            config.build(),
            endpoint.secret_headers(),
            endpoint.unix_socket(),
            false,
        );
        Http {
            agent,
            endpoint,
            headers,
            connect_timeout: timeouts.connect,
            request_timeout: timeouts.request,
            retry: ReconnectPolicy::default(),
        }
    }

    /// Retries idempotent requests (GET, DELETE) under `policy` when the connection breaks
    /// under them. Defaults to [`ReconnectPolicy::default`].
    pub(crate) fn with_retry(mut self, policy: ReconnectPolicy) -> Http {
        self.retry = policy;
        self
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The agent, for requests the helpers above do not cover (streamed bodies, per-request
    /// timeouts). Callers add [`Http::headers`] themselves.
    pub(crate) fn agent(&self) -> &ureq::Agent {
        &self.agent
    }

    /// The endpoint's headers, masked: what requests through [`Http::agent`] carry.
    pub(crate) fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter()
    }

    /// The per-request deadline this client was built with.
    pub(crate) fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Sends a request and reads the whole body, whatever the status. GET and DELETE are sent
    /// again when the connection breaks under them (see [`Http::with_retry`]).
    pub(crate) fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Response, Error> {
        if !matches!(method, Method::Get | Method::Delete) {
            return self.send_once(method, path, body);
        }
        let mut retry = Retry::new(&self.retry);
        loop {
            let e = match self.send_once(method, path, body) {
                Err(e) if link_broke(&e) => e,
                other => return other,
            };
            let Some(next) = retry.failed() else {
                return Err(e);
            };
            log::debug!("{}: {}; retrying", describe(method, path), e.report());
            std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
        }
    }

    /// Sends a request once and reads the whole body, whatever the status.
    pub(crate) fn send_once(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Response, Error> {
        let url = self.endpoint.url(path);
        let endpoint = describe(method, path);
        log::trace!("{endpoint}");
        let result = match method {
            Method::Get | Method::Delete => {
                let mut req = match method {
                    Method::Get => self.agent.get(&url),
                    _ => self.agent.delete(&url),
                };
                for (name, value) in self.headers.iter() {
                    req = req.header(name, value);
                }
                req.call()
            }
            Method::Post | Method::Put | Method::Patch => {
                let mut req = match method {
                    Method::Post => self.agent.post(&url),
                    Method::Put => self.agent.put(&url),
                    _ => self.agent.patch(&url),
                };
                for (name, value) in self.headers.iter() {
                    req = req.header(name, value);
                }
                let body = body.map_or_else(|| "{}".to_string(), Value::to_string);
                req.header("Content-Type", "application/json").send(body)
            }
        };
        let mut resp = result.map_err(|e| self.transport_error(&endpoint, e))?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut bytes = Vec::new();
        resp.body_mut()
            .as_reader()
            .take(MAX_BODY)
            .read_to_end(&mut bytes)
            .map_err(|e| self.transport_error(&endpoint, ureq::Error::Io(e)))?;
        Ok(Response {
            status,
            body: bytes,
            content_type,
            endpoint,
            retry_after,
        })
    }

    /// Sends and parses a 2xx JSON body; any other status becomes an error.
    pub(crate) fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, Error> {
        self.send(method, path, body)?.error_for_status()?.json()
    }

    pub(crate) fn transport_error(&self, endpoint: &str, e: ureq::Error) -> Error {
        if let Some((phase, after)) = expired(&e, self.connect_timeout, self.request_timeout) {
            return Error::Timeout { phase, after };
        }
        Error::Transport {
            endpoint: format!("{endpoint} at {}", self.endpoint.base()),
            source: BoxError::from(e),
        }
    }
}

/// True when an error says an established connection broke (reset, closed early), which a
/// retry may get past; not for a refused connection, a name that does not resolve, or a
/// timeout, which say the server is not there.
pub(crate) fn link_broke(e: &Error) -> bool {
    let Error::Transport { source, .. } = e else {
        return false;
    };
    let io = match source.downcast_ref::<ureq::Error>() {
        Some(ureq::Error::Io(io)) => io,
        Some(ureq::Error::Protocol(_)) => return true,
        Some(_) => return false,
        None => match source.downcast_ref::<std::io::Error>() {
            Some(io) => io,
            None => return false,
        },
    };
    matches!(
        io.kind(),
        std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe
            | std::io::ErrorKind::UnexpectedEof
    )
}

/// The deadline a ureq error says expired, if any: opening the connection (`connect`), or
/// anything after it, each read and write included (`request`).
pub(crate) fn expired(
    e: &ureq::Error,
    connect: Duration,
    request: Duration,
) -> Option<(TimeoutPhase, Duration)> {
    match e {
        ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => {
            Some((TimeoutPhase::Connect, connect))
        }
        ureq::Error::Timeout(_) => Some((TimeoutPhase::Request, request)),
        // Body readers hand ureq's errors back wrapped in io::Error.
        ureq::Error::Io(io) => match io.get_ref().and_then(|i| i.downcast_ref::<ureq::Error>()) {
            Some(inner) => expired(inner, connect, request),
            None if io.kind() == std::io::ErrorKind::TimedOut => {
                Some((TimeoutPhase::Request, request))
            }
            None => None,
        },
        _ => None,
    }
}

/// `METHOD /path` without the query string, for error messages and logs.
pub(crate) fn describe(method: Method, path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    format!("{} {}", method.as_str(), path)
}

/// Percent-encodes one path segment or query value.
pub(crate) fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_debug_hides_header_values() {
        let e = Endpoint::new("http://127.0.0.1:1/")
            .unwrap()
            .with_jupyter_token(&Secret::new("sekrit"));
        let dbg = format!("{e:?}");
        assert!(dbg.contains("Authorization"));
        assert!(!dbg.contains("sekrit"));
        assert_eq!(e.ws_url("/api/x"), "ws://127.0.0.1:1/api/x");
    }

    #[test]
    fn endpoint_rejects_tokens_in_url() {
        assert!(Endpoint::new("http://h/?token=x").is_err());
        assert!(Endpoint::new("ftp://h").is_err());
    }

    #[test]
    fn describe_drops_query() {
        assert_eq!(
            describe(Method::Get, "/api/contents/a?token=x"),
            "GET /api/contents/a"
        );
        assert_eq!(encode_component("a b/c"), "a%20b%2Fc");
    }

    /// A loopback address whose connects never complete: a listener with a backlog of 0
    /// whose accept queue is filled by connections it never accepts, so further SYNs are
    /// dropped. Returns the listener and the connections, which must be kept open.
    fn unanswering() -> Option<(
        socket2::Socket,
        Vec<std::net::TcpStream>,
        std::net::SocketAddr,
    )> {
        use socket2::{Domain, Socket, Type};
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        listener
            .bind(
                &"127.0.0.1:0"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
            )
            .unwrap();
        listener.listen(0).unwrap();
        let addr = listener.local_addr().unwrap().as_socket().unwrap();
        let mut held = Vec::new();
        for _ in 0..64 {
            match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(s) => held.push(s),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return Some((listener, held, addr));
                }
                Err(e) => panic!("unexpected connect error: {e}"),
            }
        }
        None
    }

    #[test]
    fn a_connect_that_never_completes_reports_the_connect_timeout() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let Some((_listener, _held, addr)) = unanswering() else {
                panic!("the accept queue never filled; connects still complete");
            };
            let http = Http::new(
                Endpoint::new(&format!("http://{addr}"))
                    .unwrap()
                    .with_jupyter_token(&Secret::new("t")),
                &Timeouts::default()
                    .connect(Duration::from_millis(300))
                    .request(Duration::from_secs(30)),
            );
            let _ = tx.send(http.send(Method::Get, "/api/status", None));
        });
        let outcome = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the call ends within its own deadlines");
        match outcome {
            Err(Error::Timeout { phase, after }) => {
                assert_eq!(phase, TimeoutPhase::Connect);
                assert_eq!(after, Duration::from_millis(300));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ureq_timeouts_map_to_the_deadline_that_expired() {
        let (c, r) = (Duration::from_secs(2), Duration::from_secs(30));
        let connect = Some((TimeoutPhase::Connect, c));
        let request = Some((TimeoutPhase::Request, r));
        let t = |t| ureq::Error::Timeout(t);
        assert_eq!(expired(&t(ureq::Timeout::Connect), c, r), connect);
        assert_eq!(expired(&t(ureq::Timeout::Resolve), c, r), connect);
        assert_eq!(expired(&t(ureq::Timeout::Global), c, r), request);
        assert_eq!(expired(&t(ureq::Timeout::RecvBody), c, r), request);
        let wrapped = std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            ureq::Error::Timeout(ureq::Timeout::Connect),
        );
        assert_eq!(expired(&ureq::Error::Io(wrapped), c, r), connect);
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(expired(&ureq::Error::Io(refused), c, r), None);
    }

    #[test]
    fn e2b_proxy_not_found_is_sandbox_not_found() {
        let r = |status, body: &str| Response {
            status,
            body: body.as_bytes().to_vec(),
            content_type: "application/json".into(),
            endpoint: "GET /api/kernels".into(),
            retry_after: None,
        };
        let gone = r(
            502,
            r#"{"sandboxId":"sbx1","message":"The sandbox was not found","code":502}"#,
        );
        assert!(matches!(
            gone.into_error(),
            Error::SandboxNotFound { sandbox_id } if sandbox_id == "sbx1"
        ));
        let closed = r(
            502,
            r#"{"sandboxId":"sbx1","message":"The sandbox is running but port is not open"}"#,
        );
        assert!(matches!(
            closed.into_error(),
            Error::Http { status: 502, .. }
        ));
        assert!(
            r(404, r#"{"message":"The sandbox was not found"}"#)
                .sandbox_gone()
                .is_none()
        );
    }

    #[test]
    fn html_body_is_a_protocol_error() {
        let r = Response {
            status: 200,
            body: b"<html></html>".to_vec(),
            content_type: "text/html; charset=utf-8".into(),
            endpoint: "GET /api/kernels".into(),
            retry_after: None,
        };
        assert!(matches!(r.json::<Value>(), Err(Error::Protocol { .. })));
    }
}
