//! A websocket client's opening handshake (RFC 6455 §4.1) written and read here, not by
//! tungstenite, whose client logs the whole upgrade request, auth headers included, at trace
//! level. tungstenite takes the socket over once the answer's head is read (with
//! `WebSocket::from_partially_read`); what the answer means is the caller's to judge.

use std::io::{self, Read, Write};
use std::time::Instant;

use tungstenite::http::Uri;
use tungstenite::http::uri::Authority;
use tungstenite::stream::MaybeTlsStream;

use crate::config::Secret;
use crate::error::Error;
use crate::net::conn::Conn;

/// An upgrade request and the key its answer must be derived from.
pub(crate) struct Upgrade {
    pub(crate) bytes: Vec<u8>,
    pub(crate) key: String,
}

/// The upgrade request for `uri`, offering `subprotocol` if given, with `headers` in it.
pub(crate) fn request<'a>(
    uri: &Uri,
    authority: &Authority,
    subprotocol: Option<&str>,
    headers: impl Iterator<Item = (&'a str, &'a Secret)>,
) -> Result<Upgrade, Error> {
    let key = tungstenite::handshake::client::generate_key();
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    // A userinfo part is never sent in the Host header.
    let host = authority
        .as_str()
        .rsplit_once('@')
        .map_or(authority.as_str(), |(_, h)| h);
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
    );
    if let Some(subprotocol) = subprotocol {
        req.push_str(&format!("Sec-WebSocket-Protocol: {subprotocol}\r\n"));
    }
    for (name, value) in headers {
        let value = value.expose();
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(Error::InvalidArgument(format!("bad header name {name:?}")));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(Error::InvalidArgument(format!(
                "header {name} has characters not allowed in HTTP"
            )));
        }
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    Ok(Upgrade {
        bytes: req.into_bytes(),
        key,
    })
}

/// RFC 9110 `tchar`: what a header name may consist of.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Largest upgrade response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// Sends the request and reads the response head by `deadline`. Returns the head and whatever
/// was read past it: frames the server sent right after the upgrade, which belong to the
/// websocket.
pub(crate) fn exchange(
    stream: &mut MaybeTlsStream<Conn>,
    raw: &Conn,
    request: &[u8],
    deadline: Instant,
) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))
    };
    raw.set_write_timeout(Some(left()?))?;
    raw.set_read_timeout(Some(left()?))?;
    stream.write_all(request)?;
    stream.flush()?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let scan_from = buf.len().saturating_sub(3);
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection during the websocket upgrade",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf[scan_from..].windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(scan_from + at + 4);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "websocket upgrade response head is too large",
            ));
        }
        raw.set_read_timeout(Some(left()?))?;
    }
}
