//! The thread that owns one terminal's websocket: it writes input and size changes, reads
//! output, answers and sends pings, and reconnects to the same terminal name under the
//! sandbox's [`ReconnectPolicy`](crate::ReconnectPolicy), dropping what terminado replays that
//! was already delivered (see [`super::replay`]).

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use tungstenite::Message;

use crate::backend::{Backend, Liveness};
use crate::config::ConnectionConfig;
use crate::error::Error;
use crate::http::{Endpoint, Http, encode_component};
use crate::jupyter::delivery::Failure;
use crate::jupyter::state::{CloseReason, ConnectionState, StateCell};
use crate::jupyter::transport::{self, Limits, Route, Socket};
use crate::pty::replay::{Alignment, Delivered};
use crate::pty::wire::{self, FromTerm};
use crate::pty::{PtyEnd, PtyEvent, PtyGap, PtySize};
use crate::retry::Retry;

const SOCKET: Token = Token(0);
pub(crate) const WAKE: Token = Token(1);
/// Least time between two liveness probes of the backend during one outage.
const PROBE_INTERVAL: Duration = Duration::from_millis(200);

/// Requests from the handle.
pub(crate) enum Cmd {
    Input(String),
    Resize(PtySize),
    /// Kill the terminal once this much time has passed.
    Expire(Duration),
    Shutdown,
}

/// What the worker hands to the terminal's reader.
#[derive(Debug)]
pub(crate) enum Item {
    Event(PtyEvent),
    Failed(Failure),
}

/// What the handle and the worker both see.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: StateCell,
    /// Set by the handle before it deletes the terminal, so the end reads `Killed`.
    pub(crate) killed: AtomicBool,
}

impl Shared {
    pub(crate) fn new(name: &str) -> Shared {
        Shared {
            state: StateCell::new(&format!("terminal:{name}")),
            killed: AtomicBool::new(false),
        }
    }
}

/// Where a terminal's websocket is.
pub(crate) fn route<'a>(endpoint: &'a Endpoint, name: &str) -> Route<'a> {
    Route {
        endpoint,
        path: format!("/terminals/websocket/{}", encode_component(name)),
        label: format!("terminal {name}"),
        id: name.to_string(),
        not_found: |name| Error::TerminalNotFound { name },
    }
}

pub(crate) struct Session {
    pub(crate) name: String,
    pub(crate) endpoint: Endpoint,
    pub(crate) config: ConnectionConfig,
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) commands: Receiver<Cmd>,
    pub(crate) events: Sender<Item>,
    pub(crate) poll: Poll,
    pub(crate) shared: Arc<Shared>,
    /// For deleting the terminal when its own timeout passes.
    http: Http,
    /// When the terminal is killed by its own timeout; `None`: never.
    expires: Option<Instant>,
    socket: Option<Socket>,
    want_write: bool,
    delivered: Delivered,
    /// `setup` arrived: the next `stdout` is terminado's replay of its buffer.
    replay_next: bool,
    /// The last size asked for, sent again on every connect.
    size: Option<PtySize>,
    /// Input not yet written, with its number.
    pending: VecDeque<(u64, String)>,
    /// Input written but not yet confirmed: (the ping whose pong confirms it, number, text).
    unconfirmed: VecDeque<(u64, u64, String)>,
    /// Numbers given to input so far.
    inputs: u64,
    pings: u64,
    /// The greeting ping of this connection, until its pong: everything terminado sent when
    /// the connection opened (setup, replay, and `e2b_stdin_seq` if it numbers input) comes
    /// before that pong, so input waits for it.
    hello: Option<u64>,
    /// `e2b_stdin_seq` of this connection.
    announced: Option<u64>,
    /// Whether the server takes numbered input (learned at each greeting).
    numbered: bool,
    last_rx: Instant,
    ping_sent: Option<Instant>,
    outage: Option<Outage>,
    ended: bool,
    reconnects: u64,
}

struct Outage {
    retry: Retry,
    next_attempt: Instant,
    last_probe: Option<Instant>,
    last_cause: String,
}

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        name: String,
        endpoint: Endpoint,
        config: ConnectionConfig,
        backend: Arc<dyn Backend>,
        http: Http,
        commands: Receiver<Cmd>,
        events: Sender<Item>,
        poll: Poll,
        shared: Arc<Shared>,
    ) -> Session {
        Session {
            name,
            endpoint,
            config,
            backend,
            http,
            commands,
            events,
            poll,
            shared,
            expires: None,
            socket: None,
            want_write: false,
            delivered: Delivered::default(),
            replay_next: false,
            size: None,
            pending: VecDeque::new(),
            unconfirmed: VecDeque::new(),
            inputs: 0,
            pings: 0,
            hello: None,
            announced: None,
            numbered: false,
            last_rx: Instant::now(),
            ping_sent: None,
            outage: None,
            ended: false,
            reconnects: 0,
        }
    }

    /// Takes over a connected socket.
    pub(crate) fn adopt(&mut self, socket: Socket) -> io::Result<()> {
        self.poll.registry().register(
            &mut SourceFd(&socket.raw.as_raw_fd()),
            SOCKET,
            Interest::READABLE,
        )?;
        self.socket = Some(socket);
        self.want_write = false;
        self.replay_next = false;
        self.last_rx = Instant::now();
        self.ping_sent = None;
        self.shared.state.set(ConnectionState::Connected);
        Ok(())
    }

    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(16);
        // Size and input queued before the worker started go out now.
        if let Err(cause) = self.after_connect() {
            self.lost(cause);
        }
        loop {
            if !self.drain_commands() {
                break;
            }
            if self.socket.is_some() {
                if let Err(cause) = self.pump() {
                    self.lost(cause);
                }
            } else if self
                .outage
                .as_ref()
                .is_some_and(|o| Instant::now() >= o.next_attempt)
            {
                self.reconnect_once();
            }
            if !self.ended && self.expires.is_some_and(|t| Instant::now() >= t) {
                log::debug!("terminal {}: its timeout passed; killing it", self.name);
                self.shared.killed.store(true, Ordering::SeqCst);
                if let Err(e) = super::rest::delete(&self.http, &self.name) {
                    log::warn!("terminal {}: could not kill it: {e}", self.name);
                }
                self.end(PtyEnd::TimedOut);
            }
            if self.ended {
                break;
            }
            if let Some(s) = &self.socket {
                transport::quickack(&s.raw);
            }
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != io::ErrorKind::Interrupted
            {
                log::warn!("terminal {}: poll failed: {e}", self.name);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.finish();
    }

    /// Returns false once a shutdown was asked for or the handle is gone.
    fn drain_commands(&mut self) -> bool {
        loop {
            let result = match self.commands.try_recv() {
                Ok(Cmd::Input(text)) => {
                    self.inputs += 1;
                    self.pending.push_back((self.inputs, text));
                    self.write_pending()
                }
                Ok(Cmd::Resize(size)) => {
                    self.size = Some(size);
                    self.write_size()
                }
                Ok(Cmd::Expire(after)) => {
                    self.expires = Some(Instant::now() + after);
                    Ok(())
                }
                Ok(Cmd::Shutdown) => return false,
                Err(crossbeam_channel::TryRecvError::Empty) => return true,
                Err(crossbeam_channel::TryRecvError::Disconnected) => return false,
            };
            if let Err(cause) = result {
                self.lost(cause);
            }
        }
    }

    fn after_connect(&mut self) -> Result<(), String> {
        self.write_size()?;
        self.pings += 1;
        self.hello = Some(self.pings);
        self.announced = None;
        self.send(Message::Ping(self.pings.to_be_bytes().to_vec().into()))?;
        self.flush()
    }

    /// Everything terminado sent on connect has arrived: settle input left unconfirmed by a
    /// cut, then write what waits.
    fn greeted(&mut self) -> Result<(), String> {
        self.numbered = self.announced.is_some();
        match self.announced {
            Some(taken) => {
                // The server says exactly which input arrived: the rest goes again, first.
                let again: Vec<_> = std::mem::take(&mut self.unconfirmed)
                    .into_iter()
                    .filter(|(_, seq, _)| *seq > taken)
                    .map(|(_, seq, text)| (seq, text))
                    .collect();
                if !again.is_empty() {
                    log::debug!(
                        "terminal {}: {} input(s) did not arrive before the cut; sending again",
                        self.name,
                        again.len()
                    );
                }
                for item in again.into_iter().rev() {
                    self.pending.push_front(item);
                }
            }
            None => self.report_unconfirmed(),
        }
        self.write_pending()
    }

    /// Input the server could not confirm, on a server that does not number input: it is not
    /// sent again (typing a line twice can do harm), and the reader is told.
    fn report_unconfirmed(&mut self) {
        for (_, _, input) in std::mem::take(&mut self.unconfirmed) {
            self.gap(PtyGap::InputUnconfirmed(input));
        }
    }

    fn write_size(&mut self) -> Result<(), String> {
        match (self.size, self.socket.is_some()) {
            (Some(s), true) => self.write(wire::set_size(s.rows, s.cols)),
            _ => Ok(()),
        }
    }

    /// Writes queued input, then a ping whose pong confirms that the server read all of it.
    fn write_pending(&mut self) -> Result<(), String> {
        if self.socket.is_none() || self.hello.is_some() || self.pending.is_empty() {
            return Ok(());
        }
        self.pings += 1;
        let ping = self.pings;
        while let Some((seq, text)) = self.pending.pop_front() {
            log::trace!("terminal {}: stdin {} bytes", self.name, text.len());
            let frame = if self.numbered {
                wire::numbered_stdin(seq, &text)
            } else {
                wire::stdin(&text)
            };
            self.unconfirmed.push_back((ping, seq, text));
            self.write(frame)?;
        }
        self.send(Message::Ping(ping.to_be_bytes().to_vec().into()))?;
        self.flush()
    }

    fn write(&mut self, text: String) -> Result<(), String> {
        self.send(Message::Text(text.into()))?;
        self.flush()
    }

    fn send(&mut self, msg: Message) -> Result<(), String> {
        let Some(sock) = self.socket.as_mut() else {
            return Err("not connected".into());
        };
        match sock.ws.write(msg) {
            Ok(()) => Ok(()),
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(format!("write failed: {e}")),
        }
    }

    fn flush(&mut self) -> Result<(), String> {
        let Some(sock) = self.socket.as_mut() else {
            return Ok(());
        };
        let want = match sock.ws.flush() {
            Ok(()) => false,
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => true,
            Err(e) => return Err(format!("flush failed: {e}")),
        };
        if want != self.want_write {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            self.poll
                .registry()
                .reregister(&mut SourceFd(&sock.raw.as_raw_fd()), SOCKET, interest)
                .map_err(|e| format!("reregister failed: {e}"))?;
            self.want_write = want;
        }
        Ok(())
    }

    /// Reads everything available and handles it, flushes, and keeps the link alive.
    fn pump(&mut self) -> Result<(), String> {
        loop {
            let Some(sock) = self.socket.as_mut() else {
                return Ok(());
            };
            match sock.ws.read() {
                Ok(frame) => {
                    self.on_frame(frame)?;
                    if self.ended {
                        return Ok(());
                    }
                }
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read failed: {e}")),
            }
        }
        self.flush()?;
        self.keepalive()
    }

    fn on_frame(&mut self, frame: Message) -> Result<(), String> {
        self.last_rx = Instant::now();
        self.ping_sent = None;
        match frame {
            Message::Text(t) => match wire::decode(t.as_str()) {
                Ok(msg) => self.on_message(msg),
                // One bad message does not make the stream untrustworthy: terminado frames each
                // message on its own.
                Err(e) => log::warn!("terminal {}: {}", self.name, e.report()),
            },
            Message::Pong(payload) => {
                if let Ok(bytes) = <[u8; 8]>::try_from(payload.as_ref()) {
                    let ping = u64::from_be_bytes(bytes);
                    // The greeting's pong says nothing about input written on an earlier
                    // connection: that is settled by what the server announced.
                    if self.hello.is_some_and(|h| ping >= h) {
                        self.hello = None;
                        return self.greeted();
                    }
                    while self.unconfirmed.front().is_some_and(|(p, _, _)| *p <= ping) {
                        self.unconfirmed.pop_front();
                    }
                }
            }
            Message::Close(c) => {
                return Err(match c {
                    Some(c) => format!("server closed the websocket ({})", c.code),
                    None => "server closed the websocket".into(),
                });
            }
            Message::Binary(_) | Message::Ping(_) | Message::Frame(_) => {}
        }
        Ok(())
    }

    fn on_message(&mut self, msg: FromTerm) {
        match msg {
            FromTerm::Setup => self.replay_next = true,
            FromTerm::Stdout(text) => {
                log::trace!("terminal {}: stdout {} bytes", self.name, text.len());
                if std::mem::take(&mut self.replay_next) {
                    let (start, alignment) = self.delivered.replay(&text);
                    match alignment {
                        Alignment::Exact => {}
                        Alignment::Lost => self.gap(PtyGap::OutputLost),
                        Alignment::Ambiguous => self.gap(PtyGap::OutputAmbiguous),
                    }
                    log::debug!(
                        "terminal {}: replay of {} bytes, {} new ({alignment:?})",
                        self.name,
                        text.len(),
                        text.len() - start
                    );
                    if start < text.len() {
                        self.emit(PtyEvent::Output(text[start..].to_string()));
                    }
                } else {
                    self.delivered.live(&text);
                    self.emit(PtyEvent::Output(text));
                }
            }
            FromTerm::StdinSeq(taken) => self.announced = Some(taken),
            FromTerm::Disconnect => {
                let end = if self.shared.killed.load(Ordering::SeqCst) {
                    PtyEnd::Killed
                } else {
                    PtyEnd::Exited
                };
                self.end(end);
            }
            FromTerm::Other(kind) => {
                log::debug!("terminal {}: ignored a {kind:?} message", self.name);
            }
        }
    }

    fn gap(&mut self, gap: PtyGap) {
        log::warn!("terminal {}: {gap:?}", self.name);
        self.emit(PtyEvent::Gap(gap));
    }

    fn emit(&self, event: PtyEvent) {
        // The handle may be gone (a detached terminal): nobody reads then.
        let _ = self.events.send(Item::Event(event));
    }

    /// Pings after a quiet spell; a missing answer means a half-open connection.
    fn keepalive(&mut self) -> Result<(), String> {
        let k = &self.config.keepalive;
        let now = Instant::now();
        match self.ping_sent {
            Some(sent) if now.duration_since(sent) >= k.pong_timeout => {
                Err(format!("no answer to a ping within {:?}", k.pong_timeout))
            }
            None if now.duration_since(self.last_rx) >= k.idle_ping => {
                self.send(Message::Ping(Vec::new().into()))?;
                self.ping_sent = Some(now);
                self.flush()
            }
            _ => Ok(()),
        }
    }

    fn poll_timeout(&self) -> Option<Duration> {
        let now = Instant::now();
        let expires = self.expires.map(|t| t.saturating_duration_since(now));
        let own = if let Some(o) = &self.outage {
            Some(o.next_attempt.saturating_duration_since(now))
        } else if self.socket.is_some() {
            let k = &self.config.keepalive;
            let due = match self.ping_sent {
                Some(sent) => sent + k.pong_timeout,
                None => self.last_rx + k.idle_ping,
            };
            Some(due.saturating_duration_since(now) + Duration::from_millis(1))
        } else {
            None
        };
        match (own, expires) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn drop_socket(&mut self) {
        if let Some(sock) = self.socket.take() {
            let _ = self
                .poll
                .registry()
                .deregister(&mut SourceFd(&sock.raw.as_raw_fd()));
            let _ = sock.raw.shutdown(std::net::Shutdown::Both);
        }
        self.want_write = false;
        self.ping_sent = None;
        self.replay_next = false;
    }

    fn lost(&mut self, cause: String) {
        if self.ended || self.socket.is_none() && self.outage.is_some() {
            return;
        }
        self.drop_socket();
        log::debug!("terminal {}: connection lost: {cause}", self.name);
        self.hello = None;
        // Input written since the last pong may or may not have reached the server. A server
        // that numbers input says which on the next connect; for any other it stays unknown.
        if !self.numbered {
            self.report_unconfirmed();
        }
        if self.config.reconnect.max_attempts == 0 {
            let f = self.unreachable(cause);
            self.give_up(f);
            return;
        }
        self.outage = Some(Outage {
            retry: Retry::new(&self.config.reconnect),
            next_attempt: Instant::now(),
            last_probe: None,
            last_cause: cause,
        });
        self.shared
            .state
            .set(ConnectionState::Reconnecting { attempt: 1 });
    }

    fn reconnect_once(&mut self) {
        let Some(outage) = self.outage.as_mut() else {
            return;
        };
        let attempt = outage.retry.failures() + 1;
        self.shared
            .state
            .set(ConnectionState::Reconnecting { attempt });
        let left = outage.retry.left().max(Duration::from_millis(50));
        let timeout = self.config.timeouts.connect.min(left);
        let route = route(&self.endpoint, &self.name);
        match transport::connect_plain(
            &route,
            Limits::reconnect(timeout),
            self.config.max_message_size,
        ) {
            Ok(socket) => {
                let took = outage.retry.started().elapsed();
                self.outage = None;
                if let Err(e) = self.adopt(socket) {
                    self.lost(format!("register failed: {e}"));
                    return;
                }
                self.reconnects += 1;
                log::debug!(
                    "terminal {}: reconnected after {attempt} attempt(s) in {took:?} \
                     (reconnect {})",
                    self.name,
                    self.reconnects
                );
                if let Err(cause) = self.after_connect() {
                    self.lost(cause);
                }
            }
            Err(e) => self.attempt_failed(e, attempt),
        }
    }

    fn attempt_failed(&mut self, e: Error, attempt: u32) {
        let cause = e.report();
        log::debug!(
            "terminal {}: reconnect attempt {attempt} failed: {cause}",
            self.name
        );
        match e {
            Error::Authentication { status, endpoint } => {
                self.give_up(Failure::Unauthorized { status, endpoint });
                return;
            }
            Error::TerminalNotFound { .. } => {
                // The shell exited (or the terminal was deleted) while no client was connected:
                // terminado forgets the terminal and its buffer with it.
                if self.backend.probe() == Liveness::Gone {
                    let f = self.sandbox_gone();
                    self.give_up(f);
                } else if self.shared.killed.load(Ordering::SeqCst) {
                    self.end(PtyEnd::Killed);
                } else {
                    self.end(PtyEnd::Gone);
                }
                return;
            }
            _ => {}
        }
        let Some(outage) = self.outage.as_mut() else {
            return;
        };
        outage.last_cause = cause;
        let Some(next_attempt) = outage.retry.failed() else {
            let cause = outage.last_cause.clone();
            let f = self.unreachable(cause);
            self.give_up(f);
            return;
        };
        outage.next_attempt = next_attempt;
        let now = Instant::now();
        if outage
            .last_probe
            .is_none_or(|t| now.duration_since(t) >= PROBE_INTERVAL)
        {
            outage.last_probe = Some(now);
            if self.backend.probe() == Liveness::Gone {
                let f = self.sandbox_gone();
                self.give_up(f);
            }
        }
    }

    fn sandbox_gone(&self) -> Failure {
        Failure::SandboxGone {
            sandbox_id: self.backend.sandbox_id().to_string(),
        }
    }

    fn unreachable(&self, cause: String) -> Failure {
        match self.backend.probe() {
            Liveness::Gone => self.sandbox_gone(),
            _ => Failure::Lost {
                kernel_id: format!("terminal:{}", self.name),
                cause,
            },
        }
    }

    /// A typed end: the terminal is over, and every event before it was delivered.
    fn end(&mut self, end: PtyEnd) {
        if self.ended {
            return;
        }
        log::debug!("terminal {}: ended: {end:?}", self.name);
        self.ended = true;
        self.outage = None;
        self.drop_socket();
        self.shared.state.set(ConnectionState::Closed {
            reason: CloseReason::Requested,
        });
        self.emit(PtyEvent::End(end));
    }

    fn give_up(&mut self, failure: Failure) {
        let reason = match &failure {
            Failure::SandboxGone { .. } => CloseReason::SandboxGone,
            Failure::Unauthorized { .. } => CloseReason::Unauthorized,
            _ => CloseReason::GaveUp,
        };
        log::debug!("terminal {}: giving up: {failure:?}", self.name);
        self.ended = true;
        self.outage = None;
        self.drop_socket();
        self.shared.state.set(ConnectionState::Closed { reason });
        let _ = self.events.send(Item::Failed(failure));
    }

    fn finish(mut self) {
        if let Some(sock) = self.socket.as_mut() {
            // Best effort: a polite close frame if the socket takes it right away.
            let _ = sock.ws.close(None);
            let _ = sock.ws.flush();
        }
        self.drop_socket();
        if !matches!(self.shared.state.get(), ConnectionState::Closed { .. }) {
            self.shared.state.set(ConnectionState::Closed {
                reason: CloseReason::Requested,
            });
        }
        log::debug!("terminal {}: worker stopped", self.name);
    }
}
