//! A scripted websocket server on 127.0.0.1 for what a real Jupyter server never sends:
//! garbage and truncated frames, malformed JSON, refused or silent upgrades, declined
//! subprotocols, abrupt closes. Every accepted websocket runs the user's script on its own
//! thread with a [`Peer`]; plain HTTP requests get canned answers (see [`Options::route`]).
//!
//! Messages are Jupyter-shaped in the legacy JSON form ([`jupyter_msg`], [`jupyter_reply`]);
//! when the client negotiated `v1.kernel.websocket.jupyter.org`, [`Peer::recv_json`] and
//! [`Peer::send_msg`] translate to and from its binary framing, so scripts read the same either
//! way. Dropping the [`ScriptedWs`] shuts every connection down, which ends a script blocked in
//! a receive, and joins the threads within a deadline: it never hangs a test.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tungstenite::handshake::server::{ErrorResponse, Request as WsRequest, Response};
use tungstenite::http::HeaderValue;
use tungstenite::{Message, WebSocket};

use super::listener::{JOIN_DEADLINE, Listener, Threads};

/// The subprotocol the SDK offers.
pub const V1_SUBPROTOCOL: &str = "v1.kernel.websocket.jupyter.org";
/// Reading a request head, and the websocket handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Writes to a client that stopped reading give up after this.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often waiting threads look at the stop flag.
const TICK: Duration = Duration::from_millis(20);
/// Largest request head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// Which subprotocol the server answers an upgrade with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subprotocol {
    /// The first one the client offered, if any (what jupyter_server does with v1).
    Echo,
    /// None, whatever the client offered (an older server). A tungstenite client that offered
    /// one then fails the handshake and drops the connection.
    Decline,
    /// This one, whatever the client offered (a server answering something else).
    Select(String),
}

/// How the server answers a websocket upgrade request.
#[derive(Debug, Clone)]
pub enum Handshake {
    /// Complete the upgrade and run the script.
    Accept(Subprotocol),
    /// Answer with this HTTP response instead (e.g. 403, 404, or 200 with an HTML page).
    Reject(HttpAnswer),
    /// Read the request, never answer; hold the connection until the client closes it or the
    /// server stops (a handshake that times out).
    Silent,
}

/// A canned HTTP response. Sent with `Content-Length` and `Connection: close`.
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpAnswer {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> HttpAnswer {
        HttpAnswer {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }

    pub fn json(status: u16, body: &Value) -> HttpAnswer {
        HttpAnswer::new(status, "application/json", body.to_string())
    }

    pub fn html(status: u16, body: &str) -> HttpAnswer {
        HttpAnswer::new(status, "text/html; charset=utf-8", body)
    }

    pub fn text(status: u16, body: &str) -> HttpAnswer {
        HttpAnswer::new(status, "text/plain; charset=utf-8", body)
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> HttpAnswer {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.body.len()
        ));
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// An HTTP request as the server read it (the body only for plain HTTP requests).
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// The request target as sent: path and query.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The target without its query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The query (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// A query parameter's raw (still percent-encoded) value.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query()?
            .split('&')
            .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// A header's value (names compare case-insensitively; repeated headers joined by ", ").
    pub fn header(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }

    /// The subprotocols offered in `Sec-WebSocket-Protocol`, in order.
    pub fn requested_subprotocols(&self) -> Vec<String> {
        self.header("Sec-WebSocket-Protocol")
            .map(|v| {
                v.split(',')
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn is_websocket_upgrade(&self) -> bool {
        self.header("Upgrade")
            .is_some_and(|v| v.to_ascii_lowercase().contains("websocket"))
    }
}

type HandshakeFn = dyn Fn(&Request, u64) -> Handshake + Send + Sync;
type HttpFn = dyn Fn(&Request) -> Option<HttpAnswer> + Send + Sync;

/// How a [`ScriptedWs`] answers. The default accepts every upgrade, echoing the first offered
/// subprotocol, and answers plain HTTP requests with 404.
#[derive(Clone)]
pub struct Options {
    handshake: Arc<HandshakeFn>,
    routes: Vec<(String, String, HttpAnswer)>,
    http: Option<Arc<HttpFn>>,
    skip_declined: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options::new()
    }
}

impl Options {
    pub fn new() -> Options {
        Options {
            handshake: Arc::new(|_, _| Handshake::Accept(Subprotocol::Echo)),
            routes: Vec::new(),
            http: None,
            skip_declined: false,
        }
    }

    /// Answers every upgrade the same way.
    pub fn handshake(mut self, answer: Handshake) -> Options {
        self.handshake = Arc::new(move |_, _| answer.clone());
        self
    }

    /// Decides per upgrade request; the `u64` counts upgrade requests from 0 (so "refuse the
    /// reconnect" is `|_, n| if n == 0 { accept } else { reject }`).
    pub fn handshake_with(
        mut self,
        decide: impl Fn(&Request, u64) -> Handshake + Send + Sync + 'static,
    ) -> Options {
        self.handshake = Arc::new(decide);
        self
    }

    /// Accepts upgrades with this subprotocol choice.
    pub fn subprotocol(self, choice: Subprotocol) -> Options {
        self.handshake(Handshake::Accept(choice))
    }

    /// Accepts upgrades without selecting a subprotocol.
    pub fn decline_subprotocol(self) -> Options {
        self.subprotocol(Subprotocol::Decline)
    }

    /// Answers every upgrade with `answer` instead of upgrading.
    pub fn reject(self, answer: HttpAnswer) -> Options {
        self.handshake(Handshake::Reject(answer))
    }

    /// When an offered subprotocol was declined, the client is expected to drop that connection
    /// and retry without an offer: with this set, such connections are held until the client
    /// closes them and never reach the script (as the SDK's own unit tests do).
    pub fn skip_declined_offers(mut self, skip: bool) -> Options {
        self.skip_declined = skip;
        self
    }

    /// Answers plain (non-upgrade) HTTP requests for `method` and `path` (query ignored; a path
    /// ending in `*` matches by prefix) with `answer`. The first matching route wins.
    pub fn route(mut self, method: &str, path: &str, answer: HttpAnswer) -> Options {
        self.routes
            .push((method.to_ascii_uppercase(), path.into(), answer));
        self
    }

    /// Answers plain HTTP requests no route matched; `None` falls through to 404.
    pub fn http_with(
        mut self,
        answer: impl Fn(&Request) -> Option<HttpAnswer> + Send + Sync + 'static,
    ) -> Options {
        self.http = Some(Arc::new(answer));
        self
    }

    fn answer_http(&self, req: &Request) -> HttpAnswer {
        let path = req.path();
        self.routes
            .iter()
            .find(|(method, pattern, _)| {
                method.eq_ignore_ascii_case(&req.method)
                    && match pattern.strip_suffix('*') {
                        Some(prefix) => path.starts_with(prefix),
                        None => path == pattern,
                    }
            })
            .map(|(_, _, answer)| answer.clone())
            .or_else(|| self.http.as_ref().and_then(|f| f(req)))
            .unwrap_or_else(|| HttpAnswer::json(404, &json!({"message": "Not Found"})))
    }
}

struct Shared {
    options: Options,
    script: Box<dyn Fn(Peer) + Send + Sync>,
    connections: AtomicU64,
    upgrades_requested: AtomicU64,
    handshakes: AtomicU64,
    http_requests: AtomicU64,
    next_id: AtomicU64,
    panics: Mutex<Vec<String>>,
    /// A handle on every open connection, so `Drop` can shut them down.
    live: Mutex<Vec<(u64, TcpStream)>>,
    /// A script that sleeps cannot be interrupted: shutdown waits for it up to a deadline.
    threads: Threads,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.threads.stopping()
    }
}

/// The server. Dropping it stops accepting, shuts every connection down and joins the threads
/// (within a deadline).
pub struct ScriptedWs {
    shared: Arc<Shared>,
    listener: Listener,
}

impl ScriptedWs {
    /// Listens on 127.0.0.1 (a free port) with default [`Options`]; runs `script` for each
    /// accepted websocket, on its own thread.
    pub fn start<F>(script: F) -> io::Result<ScriptedWs>
    where
        F: Fn(Peer) + Send + Sync + 'static,
    {
        ScriptedWs::start_with(Options::new(), script)
    }

    /// Like [`start`](Self::start), answering as `options` say.
    pub fn start_with<F>(options: Options, script: F) -> io::Result<ScriptedWs>
    where
        F: Fn(Peer) + Send + Sync + 'static,
    {
        let shared = Arc::new(Shared {
            options,
            script: Box::new(script),
            connections: AtomicU64::new(0),
            upgrades_requested: AtomicU64::new(0),
            handshakes: AtomicU64::new(0),
            http_requests: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            panics: Mutex::new(Vec::new()),
            live: Mutex::new(Vec::new()),
            threads: Threads::default(),
        });
        let listener = {
            let (a, b) = (shared.clone(), shared.clone());
            Listener::start(
                "scripted-ws-accept",
                move || a.stopping(),
                move |stream| accept(&b, stream),
            )?
        };
        Ok(ScriptedWs { shared, listener })
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener.addr()
    }

    /// `http://127.0.0.1:port`, for the SDK's Jupyter URL.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// `ws://127.0.0.1:port{path}`, for a websocket client.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr())
    }

    /// TCP connections accepted so far (websocket or not).
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Websocket upgrade requests received so far (however they were answered).
    pub fn upgrades_requested(&self) -> u64 {
        self.shared.upgrades_requested.load(Ordering::SeqCst)
    }

    /// Websocket handshakes completed so far.
    pub fn handshakes(&self) -> u64 {
        self.shared.handshakes.load(Ordering::SeqCst)
    }

    /// Plain HTTP requests answered so far.
    pub fn http_requests(&self) -> u64 {
        self.shared.http_requests.load(Ordering::SeqCst)
    }

    /// Messages of scripts that panicked (an assertion inside a script fails only its thread;
    /// check this to fail the test).
    pub fn script_panics(&self) -> Vec<String> {
        self.shared.panics.lock().unwrap().clone()
    }
}

impl Drop for ScriptedWs {
    fn drop(&mut self) {
        let deadline = Instant::now() + JOIN_DEADLINE;
        self.shared.threads.stop();
        let mut stragglers = self.listener.close(deadline);
        for (_, stream) in self.shared.live.lock().unwrap().iter() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        stragglers += self.shared.threads.join_by(deadline);
        if stragglers > 0 {
            log::warn!(
                "scripted ws {}: {stragglers} thread(s) still running after {JOIN_DEADLINE:?}",
                self.addr()
            );
        }
        let panics = self.shared.panics.lock().unwrap();
        if !panics.is_empty() {
            log::warn!("scripted ws {}: scripts panicked: {panics:?}", self.addr());
        }
    }
}

/// One accepted connection: registered as live and served on its own thread.
fn accept(shared: &Arc<Shared>, stream: TcpStream) {
    shared.connections.fetch_add(1, Ordering::SeqCst);
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let Ok(handle) = stream.try_clone() else {
        return;
    };
    shared.live.lock().unwrap().push((id, handle));
    let s = shared.clone();
    let spawned = shared.threads.spawn(format!("scripted-ws-{id}"), move || {
        serve(&s, id, stream);
        s.live.lock().unwrap().retain(|(i, _)| *i != id);
    });
    if let Err(e) = spawned {
        log::warn!("scripted ws: cannot start a connection thread: {e}");
        shared.live.lock().unwrap().retain(|(i, _)| *i != id);
    }
}

/// One connection: read the request head, then answer it as the options say.
fn serve(shared: &Arc<Shared>, id: u64, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let (request, head_len) = match peek_head(shared, &stream) {
        Ok(Some(head)) => head,
        Ok(None) => return,
        Err(e) => {
            log::debug!("scripted ws: no request head: {e}");
            return;
        }
    };
    if !request.is_websocket_upgrade() {
        answer_plain_http(shared, stream, request, head_len);
        return;
    }
    let nth = shared.upgrades_requested.fetch_add(1, Ordering::SeqCst);
    let choice = match (shared.options.handshake)(&request, nth) {
        Handshake::Accept(choice) => choice,
        Handshake::Reject(answer) => {
            let mut stream = stream;
            if consume(&mut stream, head_len).is_ok() {
                let _ = stream.write_all(&answer.to_bytes());
            }
            lingering_close(&stream);
            return;
        }
        Handshake::Silent => {
            hold_until_closed(shared, &stream);
            return;
        }
    };
    let offered = request.requested_subprotocols();
    let selected = match choice {
        Subprotocol::Echo => offered.first().cloned(),
        Subprotocol::Decline => None,
        Subprotocol::Select(p) => Some(p),
    };
    let Ok(raw) = stream.try_clone() else {
        return;
    };
    let _ = stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT));
    let header = selected.clone();
    #[allow(clippy::result_large_err)] // the error type is tungstenite's
    let callback =
        move |_: &WsRequest, mut response: Response| -> Result<Response, ErrorResponse> {
            if let Some(p) = header
                .as_deref()
                .and_then(|p| HeaderValue::from_str(p).ok())
            {
                response.headers_mut().insert("Sec-WebSocket-Protocol", p);
            }
            Ok(response)
        };
    let ws = match tungstenite::accept_hdr(stream, callback) {
        Ok(ws) => ws,
        Err(e) => {
            log::debug!("scripted ws: handshake failed: {e}");
            return;
        }
    };
    shared.handshakes.fetch_add(1, Ordering::SeqCst);
    if shared.options.skip_declined && !offered.is_empty() && selected.is_none() {
        hold_until_closed(shared, &raw);
        return;
    }
    let _ = raw.set_read_timeout(None);
    let peer = Peer {
        ws,
        raw,
        request,
        subprotocol: selected,
        index: nth,
        id,
        shared: shared.clone(),
    };
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| (shared.script)(peer)));
    if let Err(payload) = outcome {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic".into());
        shared.panics.lock().unwrap().push(message);
    }
}

/// Peeks (without consuming) until a whole request head is buffered, so tungstenite can still
/// read it. Returns the request and the head's length; `None` when the client went away.
fn peek_head(shared: &Shared, stream: &TcpStream) -> io::Result<Option<(Request, usize)>> {
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let mut buf = vec![0u8; MAX_HEAD];
    stream.set_read_timeout(Some(TICK))?;
    loop {
        if shared.stopping() {
            return Ok(None);
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no request head"));
        }
        match stream.peek(&mut buf) {
            Ok(0) => return Ok(None),
            Ok(n) => {
                if let Some(end) = find(&buf[..n], b"\r\n\r\n") {
                    return parse_head(&buf[..end])
                        .map(|req| Some((req, end + 4)))
                        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad head"));
                }
                if n == buf.len() {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "head too large"));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e),
        }
    }
}

fn parse_head(head: &[u8]) -> Option<Request> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let (method, target) = (first.next()?.to_string(), first.next()?.to_string());
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Some(Request {
        method,
        target,
        headers,
        body: Vec::new(),
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

fn consume(stream: &mut TcpStream, n: usize) -> io::Result<Vec<u8>> {
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let mut buf = vec![0u8; n];
    stream.read_exact(&mut buf)?;
    Ok(buf)
}

fn answer_plain_http(shared: &Shared, mut stream: TcpStream, mut req: Request, head_len: usize) {
    let body_len = req
        .header("Content-Length")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    if consume(&mut stream, head_len).is_err() {
        return;
    }
    match consume(&mut stream, body_len) {
        Ok(body) => req.body = body,
        Err(_) => return,
    }
    shared.http_requests.fetch_add(1, Ordering::SeqCst);
    let answer = shared.options.answer_http(&req);
    let _ = stream.write_all(&answer.to_bytes());
    lingering_close(&stream);
}

/// Sends FIN, then drains what the client still sends for a moment, so the kernel does not
/// answer unread data with a reset that could destroy the response in flight.
fn lingering_close(stream: &TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let deadline = Instant::now() + Duration::from_millis(500);
    let mut buf = [0u8; 4096];
    let mut reader = stream;
    while Instant::now() < deadline {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(_) => break,
        }
    }
}

/// Holds a connection without answering until the client closes it or the server stops.
fn hold_until_closed(shared: &Shared, stream: &TcpStream) {
    let _ = stream.set_read_timeout(Some(TICK));
    let mut buf = [0u8; 4096];
    let mut reader = stream;
    while !shared.stopping() {
        match reader.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(_) => return,
        }
    }
}

/// One accepted websocket, handed to the script. Sends return whether the bytes were written;
/// receives return `None` on timeout, close or error.
pub struct Peer {
    ws: WebSocket<TcpStream>,
    /// A second handle on the socket: timeouts, raw writes, shutdown.
    raw: TcpStream,
    request: Request,
    subprotocol: Option<String>,
    index: u64,
    /// The connection's key in `Shared::live`.
    id: u64,
    shared: Arc<Shared>,
}

impl Peer {
    /// The upgrade request's path, without the query.
    pub fn path(&self) -> &str {
        self.request.path()
    }

    /// The upgrade request as read (method, target, headers).
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// A query parameter of the upgrade request (still percent-encoded).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.request.query_param(name)
    }

    /// A header of the upgrade request (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.request.header(name)
    }

    /// The subprotocols the client offered.
    pub fn requested_subprotocols(&self) -> Vec<String> {
        self.request.requested_subprotocols()
    }

    /// The subprotocol the server answered with, if any.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// Whether messages use the v1 binary framing on this connection.
    pub fn is_v1(&self) -> bool {
        self.subprotocol.as_deref() == Some(V1_SUBPROTOCOL)
    }

    /// Which upgrade request this was, counting from 0 across the server's life.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Whether the server is being dropped: long-running scripts should return.
    pub fn server_stopping(&self) -> bool {
        self.shared.stopping()
    }

    /// The websocket itself, for anything the helpers do not cover.
    pub fn ws(&mut self) -> &mut WebSocket<TcpStream> {
        &mut self.ws
    }

    /// The next text or binary message within `timeout`; pings are answered and skipped.
    pub fn recv(&mut self, timeout: Duration) -> Option<Message> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.shared.stopping() {
                return None;
            }
            // Short slices so a stopping server is noticed.
            let _ = self
                .raw
                .set_read_timeout(Some(left.min(Duration::from_millis(100))));
            match self.ws.read() {
                Ok(m @ (Message::Text(_) | Message::Binary(_))) => return Some(m),
                Ok(Message::Close(_)) => {
                    let _ = self.ws.flush();
                    return None;
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if is_timeout(&e) => {}
                Err(e) => {
                    log::debug!("scripted ws: read failed: {e}");
                    return None;
                }
            }
        }
    }

    /// The next message as JSON within `timeout`: text frames parsed as JSON, binary frames
    /// decoded from v1 framing when it was negotiated (into the legacy form, with `channel`).
    /// Frames that do not parse are logged and skipped.
    pub fn recv_json(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let parsed = match self.recv(left)? {
                Message::Text(t) => serde_json::from_str(t.as_str()).ok(),
                Message::Binary(b) if self.is_v1() => decode_v1(&b),
                Message::Binary(_) => None,
                _ => None,
            };
            match parsed {
                Some(v) => return Some(v),
                None => log::debug!("scripted ws: skipped a frame that is not a message"),
            }
        }
    }

    /// The next message of type `msg_type` within `timeout`, skipping others.
    pub fn recv_msg_type(&mut self, msg_type: &str, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = self.recv_json(left)?;
            if msg_type_of(&msg) == Some(msg_type) {
                return Some(msg);
            }
        }
    }

    /// Waits until the client closes the connection (close frame or EOF); false on timeout.
    pub fn wait_closed(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let _ = self
                .raw
                .set_read_timeout(Some(left.min(Duration::from_millis(100))));
            match self.ws.read() {
                Ok(Message::Close(_)) => {
                    let _ = self.ws.flush();
                    return true;
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if is_timeout(&e) => {
                    if self.shared.stopping() {
                        return false;
                    }
                }
                Err(_) => return true,
            }
        }
    }

    /// Sends any message.
    pub fn send(&mut self, message: Message) -> bool {
        match self.ws.send(message) {
            Ok(()) => true,
            Err(e) => {
                log::debug!("scripted ws: send failed: {e}");
                false
            }
        }
    }

    pub fn send_text(&mut self, s: &str) -> bool {
        self.send(Message::text(s))
    }

    pub fn send_binary(&mut self, b: &[u8]) -> bool {
        self.send(Message::binary(b.to_vec()))
    }

    /// Sends `v` as a text frame, whatever the framing.
    pub fn send_json(&mut self, v: &Value) -> bool {
        self.send_text(&v.to_string())
    }

    /// Sends a legacy-form message in the connection's framing: v1 binary when negotiated,
    /// else JSON text.
    pub fn send_msg(&mut self, msg: &Value) -> bool {
        if self.is_v1() {
            self.send_binary(&encode_v1(msg))
        } else {
            self.send_json(msg)
        }
    }

    /// Sends each message in order ([`send_msg`](Self::send_msg)); false at the first failure.
    pub fn send_msgs(&mut self, msgs: &[Value]) -> bool {
        msgs.iter().all(|m| self.send_msg(m))
    }

    /// Writes bytes straight to the TCP socket, bypassing the websocket (see [`raw_frame`] for
    /// building a frame to truncate).
    pub fn send_raw_bytes(&mut self, b: &[u8]) -> bool {
        let _ = self.ws.flush();
        self.raw
            .write_all(b)
            .and_then(|()| self.raw.flush())
            .is_ok()
    }

    /// A clean close: a close frame, then the client's answer awaited for up to a second.
    pub fn close(mut self) {
        if self.ws.close(None).is_ok() {
            let deadline = Instant::now() + Duration::from_secs(1);
            let _ = self.raw.set_read_timeout(Some(Duration::from_millis(100)));
            while Instant::now() < deadline {
                match self.ws.read() {
                    Ok(_) => {}
                    Err(tungstenite::Error::Io(e)) if is_timeout(&e) => {}
                    Err(_) => break,
                }
            }
        }
        let _ = self.raw.shutdown(Shutdown::Both);
    }

    /// An abrupt close: no close frame, TCP shut down in both directions (the client sees EOF).
    pub fn drop_tcp(self) {
        let _ = self.raw.shutdown(Shutdown::Both);
    }

    /// An abrupt close with a TCP reset (the client sees "connection reset").
    pub fn reset_tcp(self) {
        let _ = socket2::SockRef::from(&self.raw).set_linger(Some(Duration::ZERO));
        // Every handle must go for the close (and so the RST) to happen now.
        self.shared
            .live
            .lock()
            .unwrap()
            .retain(|(i, _)| *i != self.id);
        drop(self);
    }
}

/// A server-to-client websocket frame (unmasked, FIN set) with `opcode` (1 text, 2 binary,
/// 8 close, 9 ping) around `payload`; send a prefix of it with [`Peer::send_raw_bytes`] for a
/// truncated frame.
pub fn raw_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80 | (opcode & 0x0f)];
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= u16::MAX as usize => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// Session id in the headers of messages built here.
pub const SESSION: &str = "scripted-ws-session";

/// A fresh message id, unique within the process.
pub fn new_msg_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "scripted-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// A Jupyter message in legacy JSON form: `header` (msg_id, msg_type, session, username, date,
/// version), top-level `msg_id` and `msg_type`, `parent_header` (only `msg_id` known here; `{}`
/// when `parent_msg_id` is empty), `metadata`, `content`, `buffers: []` and `channel`.
pub fn jupyter_msg(msg_type: &str, channel: &str, parent_msg_id: &str, content: Value) -> Value {
    let parent = if parent_msg_id.is_empty() {
        json!({})
    } else {
        json!({
            "msg_id": parent_msg_id,
            "msg_type": "",
            "session": "",
            "username": "",
            "date": now_iso8601(),
            "version": "5.3",
        })
    };
    with_parent(msg_type, channel, parent, content)
}

/// Like [`jupyter_msg`], with `request`'s header as the parent header (as a kernel does).
pub fn jupyter_reply(request: &Value, msg_type: &str, channel: &str, content: Value) -> Value {
    with_parent(msg_type, channel, request["header"].clone(), content)
}

fn with_parent(msg_type: &str, channel: &str, parent_header: Value, content: Value) -> Value {
    let msg_id = new_msg_id();
    json!({
        "header": {
            "msg_id": msg_id,
            "msg_type": msg_type,
            "session": SESSION,
            "username": "scripted",
            "date": now_iso8601(),
            "version": "5.3",
        },
        "msg_id": msg_id,
        "msg_type": msg_type,
        "parent_header": parent_header,
        "metadata": {},
        "content": content,
        "buffers": [],
        "channel": channel,
    })
}

/// What a kernel sends for a successful `execute_request`: busy, one stdout stream per line
/// in `stdout` (if any), an `execute_result` with `text/plain` when `result` is given, the
/// `execute_reply`, then idle.
pub fn execute_ok(
    request: &Value,
    count: u64,
    stdout: &[&str],
    result: Option<&str>,
) -> Vec<Value> {
    let mut out = vec![jupyter_reply(
        request,
        "status",
        "iopub",
        json!({"execution_state": "busy"}),
    )];
    for line in stdout {
        out.push(jupyter_reply(
            request,
            "stream",
            "iopub",
            json!({"name": "stdout", "text": line}),
        ));
    }
    if let Some(text) = result {
        out.push(jupyter_reply(
            request,
            "execute_result",
            "iopub",
            json!({"execution_count": count, "data": {"text/plain": text}, "metadata": {}}),
        ));
    }
    out.push(jupyter_reply(
        request,
        "execute_reply",
        "shell",
        json!({"status": "ok", "execution_count": count, "user_expressions": {}, "payload": []}),
    ));
    out.push(jupyter_reply(
        request,
        "status",
        "iopub",
        json!({"execution_state": "idle"}),
    ));
    out
}

/// A message's `msg_id` (from its header, else top level).
pub fn msg_id_of(msg: &Value) -> Option<&str> {
    msg["header"]["msg_id"]
        .as_str()
        .or_else(|| msg["msg_id"].as_str())
}

/// A message's `msg_type` (from its header, else top level).
pub fn msg_type_of(msg: &Value) -> Option<&str> {
    msg["header"]["msg_type"]
        .as_str()
        .or_else(|| msg["msg_type"].as_str())
}

/// Encodes a legacy-form message in `v1.kernel.websocket.jupyter.org` framing (no buffers).
pub fn encode_v1(msg: &Value) -> Vec<u8> {
    let part = |key: &str| {
        let v = &msg[key];
        if v.is_null() {
            b"{}".to_vec()
        } else {
            v.to_string().into_bytes()
        }
    };
    let parts: [Vec<u8>; 5] = [
        msg["channel"]
            .as_str()
            .unwrap_or("iopub")
            .as_bytes()
            .to_vec(),
        part("header"),
        part("parent_header"),
        part("metadata"),
        part("content"),
    ];
    let count = parts.len() + 1;
    let mut at = 8 * (1 + count);
    let mut out = (count as u64).to_le_bytes().to_vec();
    for p in &parts {
        out.extend_from_slice(&(at as u64).to_le_bytes());
        at += p.len();
    }
    out.extend_from_slice(&(at as u64).to_le_bytes());
    for p in &parts {
        out.extend_from_slice(p);
    }
    out
}

/// Decodes a v1 frame into the legacy form (`buffers` holds each buffer's length only).
pub fn decode_v1(frame: &[u8]) -> Option<Value> {
    let u64_at = |at: usize| -> Option<usize> {
        let bytes: [u8; 8] = frame.get(at..at.checked_add(8)?)?.try_into().ok()?;
        usize::try_from(u64::from_le_bytes(bytes)).ok()
    };
    let count = u64_at(0)?;
    if !(6..=4096).contains(&count) {
        return None;
    }
    let offsets: Vec<usize> = (0..count)
        .map(|i| u64_at(8 * (1 + i)))
        .collect::<Option<_>>()?;
    if offsets[0] != 8 * (1 + count)
        || offsets.windows(2).any(|w| w[0] > w[1])
        || offsets[count - 1] > frame.len()
    {
        return None;
    }
    let part = |i: usize| &frame[offsets[i]..offsets[i + 1]];
    let json = |i: usize| serde_json::from_slice::<Value>(part(i)).ok();
    let header = json(1)?;
    Some(json!({
        "msg_id": header["msg_id"],
        "msg_type": header["msg_type"],
        "header": header,
        "parent_header": json(2)?,
        "metadata": json(3)?,
        "content": json(4)?,
        "buffers": (5..count - 1).map(|i| part(i).len()).collect::<Vec<_>>(),
        "channel": std::str::from_utf8(part(0)).ok()?,
    }))
}

/// UTC now as ISO-8601 with microseconds, the form Jupyter headers use.
pub fn now_iso8601() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_micros()
    )
}
