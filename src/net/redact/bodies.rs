//! Response bodies that ureq never sees: a hiding transport (see [`super::chain`]) follows each
//! response's HTTP/1.1 framing (RFC 9112 §6) as it comes in, takes the body bytes into a
//! thread-local buffer and hands ureq the same number of [`HIDDEN`] bytes, framing left intact.
//! The caller picks the body up with [`take_hidden_body`].

use std::cell::RefCell;

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
pub(super) enum Framing {
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
    pub(super) fn head(head_request: bool) -> Framing {
        Framing::Head {
            head: Vec::new(),
            head_request,
        }
    }

    /// Takes the body bytes out of `input`, the next bytes of the connection, into the thread's
    /// hidden body, leaving [`HIDDEN`] in their place.
    pub(super) fn hide(&mut self, input: &mut [u8]) {
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
}
