//! The network layer. HTTP, for both servers the SDK talks to: a sandbox's Jupyter server (and
//! E2B's proxy in front of it) and E2B's control plane. One client ([`Http`]) with one way to
//! send, read and judge a request, retried under a [`crate::config::ReconnectPolicy`] (the one
//! backoff: [`Attempts`]); each caller only says what may be sent again. Below it: the streams
//! ([`conn`]: TCP or a Unix socket, and [`unix_url`]), which certificates are trusted ([`tls`]),
//! and the secrets kept out of ureq's and tungstenite's logs ([`redact`]).

mod attempts;
mod client;
pub(crate) mod conn;
mod endpoint;
pub(crate) mod redact;
mod response;
mod rustls_connector;
pub(crate) mod tls;
mod unix_url;

use std::time::Duration;

pub(crate) use attempts::Attempts;
pub(crate) use client::Http;
pub(crate) use endpoint::{Endpoint, GoneCheck};
pub(crate) use response::{Response, status_error};
pub(crate) use rustls_connector::RustlsConnector;

use crate::error::{Error, TimeoutPhase};

/// HTTP method, kept to what the Jupyter and E2B APIs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Post,
    Put,
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
fn expired(
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

/// Buffers for one of the SDK's ureq transports, sized by the agent's config as ureq sizes those
/// of its own (`LazyBuffers` wants neither size 0).
pub(crate) fn transport_buffers(
    details: &ureq::unversioned::transport::ConnectionDetails,
) -> ureq::unversioned::transport::LazyBuffers {
    ureq::unversioned::transport::LazyBuffers::new(
        details.config.input_buffer_size().max(1),
        details.config.output_buffer_size().max(1),
    )
}

/// `METHOD /path` without the query string, for error messages and logs.
pub(crate) fn describe(method: Method, path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    format!("{} {}", method.as_str(), path)
}

/// `?a=1&b=2` from parts already encoded, or empty when there are none.
pub(crate) fn query_string(parts: &[String]) -> String {
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// Percent-encodes one path segment or query value.
pub(crate) fn encode_component(s: &str) -> String {
    encode_bytes(s.as_bytes())
}

/// Percent-encodes every byte but RFC 3986's unreserved characters.
pub(crate) fn encode_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
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
    fn describe_drops_query() {
        assert_eq!(
            describe(Method::Get, "/api/contents/a?token=x"),
            "GET /api/contents/a"
        );
        assert_eq!(encode_component("a b/c"), "a%20b%2Fc");
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
}
