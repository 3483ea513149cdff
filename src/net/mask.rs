//! Secret header values that ureq sends without ever seeing them.
//!
//! At trace level ureq (ureq-proto) hex-dumps every request head it writes, auth headers
//! included, and no option turns that off. So requests carry a random mask of the same length
//! instead of each secret value, and a transport at the end of the agent's connector chain, which
//! sees the bytes after ureq has logged them and before TLS, puts the secrets in place of their
//! masks in the request head.
//!
//! ureq dumps every response it reads the same way, and E2B's control plane answers with
//! sandboxes' access tokens. An agent built with `hide_bodies` has that transport take each
//! response body for itself, on its way in: ureq is handed the same number of `*` bytes, framing
//! left intact, and the caller picks up the real body with [`take_hidden_body`].

use std::cell::RefCell;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{
    Buffers, ConnectProxyConnector, ConnectionDetails, Connector, DefaultConnector, LazyBuffers,
    NextTimeout, TcpConnector, Transport,
};

use crate::config::Secret;
use crate::conn::UnixConnector;
use crate::net::RustlsConnector;

/// One header whose value is swapped in on the way out.
struct Swap {
    /// `": <mask>\r\n"`, following the header name in the request head.
    needle: Vec<u8>,
    /// The lowercase header name (ureq writes names in lowercase).
    name: Vec<u8>,
    secret: Secret,
}

/// Headers to send through an agent built by [`agent`]: the names with masked values.
#[derive(Clone, Default)]
pub(crate) struct MaskedHeaders(Vec<(String, String)>);

impl fmt::Debug for MaskedHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(n, _)| n))
            .finish()
    }
}

impl MaskedHeaders {
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// An agent with `config` whose requests may carry `headers` through [`MaskedHeaders`]. With
/// `hide_bodies`, ureq reads `*` for every response body and the caller takes the real one
/// with [`take_hidden_body`]; such an agent asks for bodies without content encoding, which
/// ureq would otherwise try to decode from the `*`.
pub(crate) fn agent<'a>(
    config: ureq::config::Config,
    headers: impl Iterator<Item = (&'a str, &'a Secret)>,
    unix: Option<&Arc<Path>>,
    tls: Option<Arc<rustls::ClientConfig>>,
    hide_bodies: bool,
) -> (ureq::Agent, MaskedHeaders) {
    let mut shown = Vec::new();
    let mut swaps = Vec::new();
    for (name, secret) in headers {
        let mask = mask_for(secret.expose().len());
        swaps.push(Swap {
            needle: format!(": {mask}\r\n").into_bytes(),
            name: name.to_ascii_lowercase().into_bytes(),
            secret: secret.clone(),
        });
        shown.push((name.to_string(), mask));
    }
    let unmask = Unmask {
        swaps: Arc::new(swaps),
        hide_bodies,
    };
    let agent = match (unix, tls) {
        (Some(path), _) => ureq::Agent::with_parts(
            config,
            UnixConnector(path.clone()).chain(unmask),
            DefaultResolver::default(),
        ),
        // ureq's default chain, with the SDK's TLS in place of ureq's.
        (None, Some(tls)) => ureq::Agent::with_parts(
            config,
            ().chain(ConnectProxyConnector::default())
                .chain(TcpConnector::default())
                .chain(RustlsConnector(tls))
                .chain(unmask),
            DefaultResolver::default(),
        ),
        (None, None) => ureq::Agent::with_parts(
            config,
            DefaultConnector::new().chain(unmask),
            DefaultResolver::default(),
        ),
    };
    (agent, MaskedHeaders(shown))
}

/// Random hex of `len` bytes.
fn mask_for(len: usize) -> String {
    let mut out = String::with_capacity(len + 32);
    while out.len() < len {
        out.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    out.truncate(len);
    out
}

#[derive(Clone)]
struct Unmask {
    swaps: Arc<Vec<Swap>>,
    hide_bodies: bool,
}

impl fmt::Debug for Unmask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unmask").finish_non_exhaustive()
    }
}

impl Connector<Box<dyn Transport>> for Unmask {
    type Out = Unmasking;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<Box<dyn Transport>>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let hiding = self.hide_bodies.then(|| Hiding {
            // ureq's own transports size theirs the same way; LazyBuffers wants neither 0.
            buffers: LazyBuffers::new(
                details.config.input_buffer_size().max(1),
                details.config.output_buffer_size().max(1),
            ),
            framing: Framing::Idle,
        });
        Ok(chained.map(|inner| Unmasking {
            inner,
            swaps: self.swaps.clone(),
            hiding,
        }))
    }
}

/// The transport that swaps secrets for masks in what it transmits, and with `hiding`, takes
/// response bodies for itself.
struct Unmasking {
    inner: Box<dyn Transport>,
    swaps: Arc<Vec<Swap>>,
    hiding: Option<Hiding>,
}

/// What ureq reads and writes when bodies are hidden: buffers of this transport's own, since
/// ureq's [`Buffers`] give no way to change input once it is in them. Output is copied to the
/// inner transport's buffers when transmitted, input copied from them as it arrives.
struct Hiding {
    buffers: LazyBuffers,
    framing: Framing,
}

impl fmt::Debug for Unmasking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unmasking")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl Transport for Unmasking {
    fn buffers(&mut self) -> &mut dyn Buffers {
        match &mut self.hiding {
            Some(hiding) => &mut hiding.buffers,
            None => self.inner.buffers(),
        }
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let Some(hiding) = &mut self.hiding else {
            let out = self.inner.buffers().output();
            let end = amount.min(out.len());
            unmask(&mut out[..end], &self.swaps);
            return self.inner.transmit_output(amount, timeout);
        };
        let out = hiding.buffers.output();
        let end = amount.min(out.len());
        let out = &mut out[..end];
        unmask(out, &self.swaps);
        if let Some(method) = request_method(out) {
            // The next bytes in are the answer to this request.
            hiding.framing = Framing::head(method == b"HEAD");
        }
        // The inner buffers are as large as these unless configured apart: send in pieces.
        let mut sent = 0;
        while sent < out.len() {
            let room = self.inner.buffers().output();
            let n = room.len().min(out.len() - sent);
            if n == 0 {
                return Err(ureq::Error::Io(std::io::Error::other(
                    "the transport has no output buffer",
                )));
            }
            room[..n].copy_from_slice(&out[sent..sent + n]);
            self.inner.transmit_output(n, timeout)?;
            sent += n;
        }
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let Some(hiding) = &mut self.hiding else {
            return self.inner.await_input(timeout);
        };
        // Bytes the last call had no room for are used before waiting for more.
        if self.inner.buffers().input().is_empty() && !self.inner.await_input(timeout)? {
            return Ok(false);
        }
        let from = self.inner.buffers().input();
        let to = hiding.buffers.input_append_buf();
        let n = from.len().min(to.len());
        to[..n].copy_from_slice(&from[..n]);
        hiding.framing.hide(&mut to[..n]);
        hiding.buffers.input_appended(n);
        self.inner.buffers().input_consume(n);
        Ok(n > 0)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

/// Swaps masks for secrets in place, in a request head only: bytes that do not start with a
/// request line are body bytes, which are sent as they are.
fn unmask(out: &mut [u8], swaps: &[Swap]) {
    if swaps.is_empty() || !starts_with_request_line(out) {
        return;
    }
    let head_end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(out.len(), |at| at + 4);
    let head = &mut out[..head_end];
    for swap in swaps {
        let Some(at) = head
            .windows(swap.needle.len())
            .position(|w| w == swap.needle.as_slice())
        else {
            continue;
        };
        // The mask must be the value of its own header, not any other.
        let line_start = head[..at]
            .windows(2)
            .rposition(|w| w == b"\r\n")
            .map_or(0, |p| p + 2);
        if !head[line_start..at].eq_ignore_ascii_case(&swap.name) {
            continue;
        }
        let value = at + 2;
        let secret = swap.secret.expose().as_bytes();
        head[value..value + secret.len()].copy_from_slice(secret);
    }
}

/// `METHOD SP target SP HTTP/1.x CRLF` at the start of `out`.
fn starts_with_request_line(out: &[u8]) -> bool {
    request_method(out).is_some()
}

/// The method of the request line at the start of `out`, if it starts with one.
fn request_method(out: &[u8]) -> Option<&[u8]> {
    let eol = out.windows(2).position(|w| w == b"\r\n")?;
    let line = &out[..eol];
    let method_len = line.iter().take_while(|b| b.is_ascii_uppercase()).count();
    (method_len > 0
        && line.get(method_len) == Some(&b' ')
        && (line.ends_with(b" HTTP/1.1") || line.ends_with(b" HTTP/1.0")))
    .then_some(&line[..method_len])
}

/// What ureq is handed in place of each body byte.
const HIDDEN: u8 = b'*';

/// Longest response head, chunk-size line or trailer line followed; past it the rest of the
/// response is hidden whole (ureq refuses such a response anyway).
const MAX_LINE: usize = 64 * 1024;

thread_local! {
    /// The body of the last response a hiding transport read on this thread. ureq reads and
    /// writes on the thread that makes the call, so this is the caller's own response.
    static HIDDEN_BODY: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// Forgets a hidden body left from an earlier call on this thread; call before a request on a
/// hiding agent.
pub(crate) fn forget_hidden_body() {
    HIDDEN_BODY.with(|b| b.borrow_mut().take());
}

/// The body of the last response read by a hiding agent on this thread, as far as it arrived.
pub(crate) fn take_hidden_body() -> Option<Vec<u8>> {
    HIDDEN_BODY.with(|b| b.borrow_mut().take())
}

/// Where in an HTTP/1.1 response the next byte in falls: enough of its framing
/// (RFC 9112 §6) to tell body bytes from the rest.
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    /// No response expected: bytes pass as they are (and ureq judges them).
    Idle,
    /// The head so far, and whether the request was a HEAD (whose answer has no body).
    Head { head: Vec<u8>, head_request: bool },
    /// Body bytes left of a `Content-Length` body.
    Length(u64),
    /// A chunk-size line so far.
    ChunkSize(Vec<u8>),
    /// Bytes left of a chunk's data.
    ChunkData(u64),
    /// The line end after a chunk's data.
    ChunkEnd,
    /// A trailer line so far; the empty one ends the response.
    Trailer(Vec<u8>),
    /// Everything up to the connection's end is body (or a response this could not follow).
    Close,
}

impl Framing {
    fn head(head_request: bool) -> Framing {
        Framing::Head {
            head: Vec::new(),
            head_request,
        }
    }

    /// Takes the body bytes out of `input`, the next bytes of the connection, into the thread's
    /// hidden body, leaving [`HIDDEN`] in their place.
    fn hide(&mut self, input: &mut [u8]) {
        let mut at = 0;
        while at < input.len() {
            let rest = &mut input[at..];
            let (used, next) = match self {
                Framing::Idle => (rest.len(), None),
                Framing::Head { head, head_request } => {
                    let (n, done) = line_bytes(head, rest, b"\r\n\r\n");
                    (n, done.then(|| after_head(head, *head_request)))
                }
                Framing::Length(left) => {
                    let n = take_body(rest, left);
                    (n, (*left == 0).then_some(Framing::Idle))
                }
                Framing::ChunkData(left) => {
                    let n = take_body(rest, left);
                    (n, (*left == 0).then_some(Framing::ChunkEnd))
                }
                Framing::ChunkSize(line) => {
                    let (n, done) = line_bytes(line, rest, b"\n");
                    let next = done.then(|| match chunk_size(line) {
                        Some(0) => Framing::Trailer(Vec::new()),
                        Some(size) => Framing::ChunkData(size),
                        None => Framing::Close,
                    });
                    (n, next)
                }
                Framing::ChunkEnd => {
                    // CRLF, which ureq checks; up to the LF, so a lone LF passes too.
                    match rest.iter().position(|&b| b == b'\n') {
                        Some(lf) => (lf + 1, Some(Framing::ChunkSize(Vec::new()))),
                        None => (rest.len(), None),
                    }
                }
                Framing::Trailer(line) => {
                    let (n, done) = line_bytes(line, rest, b"\n");
                    let next = done.then(|| {
                        if line.as_slice() == b"\r\n" || line.as_slice() == b"\n" {
                            Framing::Idle
                        } else {
                            Framing::Trailer(Vec::new())
                        }
                    });
                    (n, next)
                }
                Framing::Close => {
                    let mut all = u64::MAX;
                    (take_body(rest, &mut all), None)
                }
            };
            let too_long = match self {
                Framing::Head { head: line, .. }
                | Framing::ChunkSize(line)
                | Framing::Trailer(line) => line.len() > MAX_LINE,
                _ => false,
            };
            if let Some(next) = next {
                *self = next;
            } else if too_long {
                *self = Framing::Close;
            }
            at += used;
        }
    }
}

/// Appends `input` to `line` up to and including the first `end` that completes; returns the
/// bytes used and whether `line` now ends with `end`.
fn line_bytes(line: &mut Vec<u8>, input: &[u8], end: &[u8]) -> (usize, bool) {
    for (i, &b) in input.iter().enumerate() {
        line.push(b);
        if line.ends_with(end) {
            return (i + 1, true);
        }
        if line.len() > MAX_LINE {
            return (i + 1, false);
        }
    }
    (input.len(), false)
}

/// How the body after a complete response head is framed; a new, empty hidden body is begun.
fn after_head(head: &[u8], head_request: bool) -> Framing {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut response = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = response.parse(head) else {
        // Not a response ureq will accept: hide whatever follows.
        return Framing::Close;
    };
    let status = response.code.unwrap_or(0);
    if (100..200).contains(&status) && status != 101 {
        // An interim answer; the final one follows.
        return Framing::head(head_request);
    }
    HIDDEN_BODY.with(|b| *b.borrow_mut() = Some(Vec::new()));
    if head_request || status == 204 || status == 304 {
        return Framing::Idle;
    }
    let header = |name: &'static str| {
        response
            .headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value))
    };
    let chunked = header("transfer-encoding").any(|v| {
        v.split(',')
            .any(|c| c.trim().eq_ignore_ascii_case("chunked"))
    });
    if chunked && response.version != Some(0) {
        return Framing::ChunkSize(Vec::new());
    }
    match header("content-length")
        .next()
        .map(|v| v.trim().parse::<u64>())
    {
        Some(Ok(0)) => Framing::Idle,
        Some(Ok(len)) => Framing::Length(len),
        // No length, or one ureq refuses: to the end of the connection.
        _ => Framing::Close,
    }
}

/// The size in a chunk-size line (`1a;ext=v\r\n`).
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let hex = std::str::from_utf8(&line[..digits]).ok()?;
    u64::from_str_radix(hex, 16).ok()
}

/// Moves the first of `left` body bytes of `input` into the thread's hidden body; returns how
/// many that was.
fn take_body(input: &mut [u8], left: &mut u64) -> usize {
    let n = usize::try_from(*left).map_or(input.len(), |l| l.min(input.len()));
    let bytes = &mut input[..n];
    HIDDEN_BODY.with(|b| {
        let mut b = b.borrow_mut();
        b.get_or_insert_with(Vec::new).extend_from_slice(bytes);
    });
    bytes.fill(HIDDEN);
    *left -= n as u64;
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn swaps(pairs: &[(&str, &str)]) -> (Vec<Swap>, Vec<(String, String)>) {
        let mut out = Vec::new();
        let mut shown = Vec::new();
        for (name, secret) in pairs {
            let mask = mask_for(secret.len());
            out.push(Swap {
                needle: format!(": {mask}\r\n").into_bytes(),
                name: name.to_ascii_lowercase().into_bytes(),
                secret: Secret::new(*secret),
            });
            shown.push((name.to_string(), mask));
        }
        (out, shown)
    }

    #[test]
    fn masks_in_a_request_head_become_the_secrets() {
        let (swaps, shown) = swaps(&[("Authorization", "token abc"), ("X-API-KEY", "k")]);
        let head = format!(
            "GET /api HTTP/1.1\r\nhost: h\r\nauthorization: {}\r\nx-api-key: {}\r\n\r\n",
            shown[0].1, shown[1].1
        );
        let mut bytes = head.into_bytes();
        unmask(&mut bytes, &swaps);
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "GET /api HTTP/1.1\r\nhost: h\r\nauthorization: token abc\r\nx-api-key: k\r\n\r\n"
        );
    }

    #[test]
    fn bodies_and_other_headers_are_left_alone() {
        let (swaps, shown) = swaps(&[("X-API-KEY", "k")]);
        let mask = &shown[0].1;
        // The one-byte mask as the value of another header, and in a body chunk.
        let head = format!("POST / HTTP/1.1\r\nx-other: {mask}\r\n\r\n");
        let mut bytes = head.clone().into_bytes();
        unmask(&mut bytes, &swaps);
        assert_eq!(bytes, head.as_bytes());
        let body = format!("x-api-key: {mask}\r\n");
        let mut bytes = body.clone().into_bytes();
        unmask(&mut bytes, &swaps);
        assert_eq!(bytes, body.as_bytes());
    }

    /// Feeds `response` through [`Framing`] in pieces of `piece` bytes, as the answer to a
    /// GET (or HEAD); returns what ureq would see and the hidden body.
    fn hide_in_pieces(response: &[u8], piece: usize, head_request: bool) -> (Vec<u8>, Vec<u8>) {
        forget_hidden_body();
        let mut framing = Framing::head(head_request);
        let mut shown = response.to_vec();
        for part in shown.chunks_mut(piece) {
            framing.hide(part);
        }
        assert_eq!(framing, Framing::Idle, "the response did not end");
        (shown, take_hidden_body().unwrap_or_default())
    }

    #[test]
    fn a_content_length_body_is_hidden_and_kept() {
        let head = "HTTP/1.1 201 Created\r\nContent-Length: 23\r\n\r\n";
        let body = r#"{"envdAccessToken":"x"}"#;
        for piece in [1, 2, 7, 1000] {
            let (shown, hidden) = hide_in_pieces(format!("{head}{body}").as_bytes(), piece, false);
            assert_eq!(
                String::from_utf8(shown).unwrap(),
                format!("{head}{}", "*".repeat(23))
            );
            assert_eq!(hidden, body.as_bytes());
        }
    }

    #[test]
    fn chunked_framing_survives_and_only_data_is_hidden() {
        let response = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                        5;ext=1\r\nhello\r\n0a\r\n, token!!!\r\n0\r\nx-t: 1\r\n\r\n";
        let expected = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                        5;ext=1\r\n*****\r\n0a\r\n**********\r\n0\r\nx-t: 1\r\n\r\n";
        for piece in [1, 3, 16, 1000] {
            let (shown, hidden) = hide_in_pieces(response.as_bytes(), piece, false);
            assert_eq!(String::from_utf8(shown).unwrap(), expected);
            assert_eq!(hidden, b"hello, token!!!");
        }
    }

    #[test]
    fn interim_and_bodiless_answers_keep_their_framing() {
        let (shown, hidden) = hide_in_pieces(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            4,
            false,
        );
        assert!(shown.ends_with(b"\r\n\r\n**"));
        assert_eq!(hidden, b"ok");
        let head = b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(hide_in_pieces(head, 5, false), (head.to_vec(), Vec::new()));
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(hide_in_pieces(head, 5, true), (head.to_vec(), Vec::new()));
    }

    #[test]
    fn a_body_without_a_length_and_unreadable_framing_are_hidden_whole() {
        forget_hidden_body();
        let mut framing = Framing::head(false);
        let mut bytes = b"HTTP/1.1 200 OK\r\n\r\nsecret".to_vec();
        framing.hide(&mut bytes);
        assert_eq!(framing, Framing::Close);
        assert!(bytes.ends_with(b"\n******"));
        assert_eq!(take_hidden_body().unwrap(), b"secret");
        let mut framing = Framing::head(false);
        let mut bytes =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nsecret".to_vec();
        framing.hide(&mut bytes);
        assert_eq!(framing, Framing::Close);
        assert!(bytes.ends_with(b"zz\r\n******"));
    }

    #[test]
    fn masks_have_the_secrets_length_and_differ() {
        for len in [1, 31, 32, 33, 200] {
            assert_eq!(mask_for(len).len(), len);
        }
        assert_ne!(mask_for(64), mask_for(64));
    }
}
