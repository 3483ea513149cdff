//! The thread that owns one terminal's websocket: it writes input and size changes, reads
//! output, answers and sends pings, and reconnects to the same terminal name under the
//! sandbox's [`ReconnectPolicy`](crate::ReconnectPolicy), dropping what terminado replays that
//! was already delivered (see [`super::replay`]).

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::{Events, Poll};
use tungstenite::Message;

use crate::backend::Backend;
use crate::config::ConnectionConfig;
use crate::error::Error;
use crate::jupyter::delivery::Failure;
pub(crate) use crate::jupyter::link::WAKE;
use crate::jupyter::link::{self, Link, Names, Read, Reconnect};
use crate::jupyter::state::{CloseReason, ConnectionState, StateCell};
use crate::jupyter::websocket::{self, Route, Socket};
use crate::net::{Endpoint, Http, encode_component};
use crate::pty::replay::{Alignment, Delivered};
use crate::pty::wire::{self, FromTerm};
use crate::pty::{PtyEnd, PtyEvent, PtyGap, PtySize};

/// How long after a confirmed kill the server may take to say the terminal ended. The shell
/// is dead by then and its last output on the way, but a stock terminado says nothing while
/// any process the shell started holds the PTY open (one that ignored the hangup): the
/// terminal then ends here, so `wait` returns.
const KILL_SETTLE: Duration = Duration::from_secs(5);

/// Requests from the handle.
pub(crate) enum Cmd {
    Input(String),
    Resize(PtySize),
    /// Kill the terminal once this much time has passed.
    Expire(Duration),
    /// The server confirmed killing the terminal.
    Killed,
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
    pub(crate) commands: Receiver<Cmd>,
    pub(crate) events: Sender<Item>,
    pub(crate) link: Link,
    pub(crate) shared: Arc<Shared>,
    /// For deleting the terminal when its own timeout passes.
    http: Http,
    /// When the terminal is killed by its own timeout; `None`: never.
    expires: Option<Instant>,
    /// After a kill the server confirmed, when the terminal ends here if the server has not
    /// said so (see [`KILL_SETTLE`]).
    settle_kill: Option<Instant>,
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
    /// The shell's exit status, from `e2b_exit` just before `disconnect`.
    exit_code: Option<i32>,
    ended: bool,
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
        let names = Names {
            label: format!("terminal {name}"),
            lost_id: format!("terminal:{name}"),
            ping_verb: "write",
            reuse_recent_probe: false,
        };
        Session {
            link: Link::new(names, config, backend, poll),
            name,
            endpoint,
            http,
            commands,
            events,
            shared,
            expires: None,
            settle_kill: None,
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
            exit_code: None,
            ended: false,
        }
    }

    /// Takes over a connected socket.
    pub(crate) fn adopt(&mut self, socket: Socket) -> io::Result<()> {
        self.link.adopt(socket, &self.shared.state)?;
        self.replay_next = false;
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
            if self.link.is_connected() {
                if let Err(cause) = self.pump() {
                    self.lost(cause);
                }
            } else if self.link.reconnect_due() {
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
            if !self.ended && self.settle_kill.is_some_and(|t| Instant::now() >= t) {
                log::warn!(
                    "terminal {}: killed, but the server did not say it ended; ending it here",
                    self.name
                );
                self.end(PtyEnd::Killed);
            }
            if self.ended {
                break;
            }
            let wake = [self.expires, self.settle_kill].into_iter().flatten().min();
            self.link.wait(&mut events, wake);
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
                Ok(Cmd::Killed) => {
                    self.settle_kill = Some(Instant::now() + KILL_SETTLE);
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
        self.link
            .send(Message::Ping(self.pings.to_be_bytes().to_vec().into()))?;
        self.link.flush()
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
        match (self.size, self.link.is_connected()) {
            (Some(s), true) => self.write(wire::set_size(s.rows, s.cols)),
            _ => Ok(()),
        }
    }

    /// Writes queued input, then a ping whose pong confirms that the server read all of it.
    fn write_pending(&mut self) -> Result<(), String> {
        if !self.link.is_connected() || self.hello.is_some() || self.pending.is_empty() {
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
        self.link
            .send(Message::Ping(ping.to_be_bytes().to_vec().into()))?;
        self.link.flush()
    }

    fn write(&mut self, text: String) -> Result<(), String> {
        self.link.send(Message::Text(text.into()))?;
        self.link.flush()
    }

    /// Reads everything available and handles it, flushes, and keeps the link alive.
    fn pump(&mut self) -> Result<(), String> {
        loop {
            match self.link.read() {
                Read::Frame(frame) => {
                    self.on_frame(frame)?;
                    if self.ended {
                        return Ok(());
                    }
                }
                Read::Drained => break,
                Read::Failed(e) => return Err(format!("read failed: {e}")),
            }
        }
        self.link.flush()?;
        self.link.keepalive()
    }

    fn on_frame(&mut self, frame: Message) -> Result<(), String> {
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
            Message::Close(c) => return Err(link::closed_by_server(c)),
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
            FromTerm::Exit(code) => self.exit_code = Some(code),
            FromTerm::Disconnect => {
                let end = if self.shared.killed.load(Ordering::SeqCst) {
                    PtyEnd::Killed
                } else {
                    PtyEnd::Exited {
                        code: self.exit_code,
                    }
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

    fn lost(&mut self, cause: String) {
        if self.ended || !self.link.is_connected() && self.link.in_outage() {
            return;
        }
        self.link.cut(&cause);
        self.replay_next = false;
        self.hello = None;
        // Input written since the last pong may or may not have reached the server. A server
        // that numbers input says which on the next connect; for any other it stays unknown.
        if !self.numbered {
            self.report_unconfirmed();
        }
        if let Err(failure) = self.link.begin_outage(cause, &self.shared.state) {
            self.give_up(failure);
        }
    }

    fn reconnect_once(&mut self) {
        let route = route(&self.endpoint, &self.name);
        let attempt = self
            .link
            .reconnect(&self.shared.state, |limits, max_message_size| {
                websocket::connect_plain(&route, limits, max_message_size)
            });
        match attempt {
            Reconnect::Waiting => {}
            Reconnect::Connected { attempt, took } => {
                self.replay_next = false;
                log::debug!(
                    "terminal {}: reconnected after {attempt} attempt(s) in {took:?} \
                     (reconnect {})",
                    self.name,
                    self.link.reconnects()
                );
                if let Err(cause) = self.after_connect() {
                    self.lost(cause);
                }
            }
            Reconnect::Unregistered(cause) => self.lost(cause),
            Reconnect::NotFound => {
                // The shell exited (or the terminal was deleted) while no client was connected:
                // terminado forgets the terminal and its buffer with it.
                if self.link.sandbox_is_gone() {
                    let f = self.link.sandbox_gone();
                    self.give_up(f);
                } else if self.shared.killed.load(Ordering::SeqCst) {
                    self.end(PtyEnd::Killed);
                } else {
                    self.end(PtyEnd::Gone);
                }
            }
            Reconnect::GiveUp(f) => self.give_up(f),
        }
    }

    /// A typed end: the terminal is over, and every event before it was delivered.
    fn end(&mut self, end: PtyEnd) {
        if self.ended {
            return;
        }
        log::debug!("terminal {}: ended: {end:?}", self.name);
        self.ended = true;
        self.link.end();
        self.replay_next = false;
        self.shared.state.set(ConnectionState::Closed {
            reason: CloseReason::Requested,
        });
        self.emit(PtyEvent::End(end));
    }

    fn give_up(&mut self, failure: Failure) {
        let reason = self.link.give_up(&failure);
        self.replay_next = false;
        self.ended = true;
        self.shared.state.set(ConnectionState::Closed { reason });
        let _ = self.events.send(Item::Failed(failure));
    }

    fn finish(mut self) {
        self.link.close();
        if !matches!(self.shared.state.get(), ConnectionState::Closed { .. }) {
            self.shared.state.set(ConnectionState::Closed {
                reason: CloseReason::Requested,
            });
        }
        log::debug!("terminal {}: worker stopped", self.name);
    }
}
