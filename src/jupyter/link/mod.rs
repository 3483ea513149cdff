//! One websocket link as both websocket threads (a kernel's [`Worker`] and a terminal's
//! [`Session`]) drive it: a non-blocking socket in a mio poll, writes that wait for
//! writability, reads, keepalive pings, and (in [`reconnect`]) the outage that follows a cut.
//! What the frames mean stays with each thread.
//!
//! [`Worker`]: crate::jupyter::worker::Worker
//! [`Session`]: crate::pty::session::Session

mod reconnect;

use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use tungstenite::Message;
use tungstenite::protocol::CloseFrame;

use crate::config::ConnectionConfig;
use crate::jupyter::liveness::SandboxProbe;
use crate::jupyter::state::{ConnectionState, StateCell};
use crate::jupyter::websocket::{self, Socket};
use crate::jupyter::wire::Framing;
use crate::net::redact::DataFrame;

use reconnect::Outage;
pub(crate) use reconnect::Reconnect;

/// The error for setting up a link's thread (its poll, waker or thread) that failed: the local
/// event loop, not the server, is what could not be reached.
pub(crate) fn io_setup(e: io::Error) -> crate::error::Error {
    crate::error::Error::Transport {
        endpoint: "local event loop".into(),
        source: Box::new(e),
    }
}

const SOCKET: Token = Token(0);
/// The token of the waker that callers use to interrupt the link's sleep.
pub(crate) const WAKE: Token = Token(1);

/// What tells one link from another, in logs and in failures.
pub(crate) struct Names {
    /// Starts every log line, e.g. `kernel <id>`.
    pub(crate) label: String,
    /// The id a [`Failure::Lost`](crate::jupyter::delivery::Failure::Lost) names.
    pub(crate) lost_id: String,
    /// The verb in the cause of a failed keepalive ping (`ping failed: …` for kernels,
    /// `write failed: …` for terminals): kernels and terminals worded it differently before
    /// they shared this code, and causes reach callers in `Failure::Lost`.
    pub(crate) ping_verb: &'static str,
    /// Whether giving up after the last attempt may trust a probe made in the last
    /// [`reconnect::PROBE_INTERVAL`] instead of probing again. Kernels do; terminals always
    /// probed again, and keep doing so.
    pub(crate) reuse_recent_probe: bool,
}

/// How a read ended.
pub(crate) enum Read {
    Frame(Message),
    /// Nothing more to read until the socket is readable again (or there is no socket).
    Drained,
    Failed(tungstenite::Error),
}

/// The socket of one websocket thread and everything kept about it between sleeps; the
/// thread decides what to write and what frames mean.
pub(crate) struct Link {
    names: Names,
    config: ConnectionConfig,
    backend: Arc<dyn SandboxProbe>,
    poll: Poll,
    socket: Option<Socket>,
    /// Whether the socket is registered for writability: only while a flush is unfinished,
    /// or every poll would wake at once.
    want_write: bool,
    last_rx: Instant,
    ping_sent: Option<Instant>,
    outage: Option<Outage>,
    reconnects: u64,
    /// A data frame was read since the last nudge (see [`ConnectionConfig::ack_nudge`]).
    nudge_due: bool,
}

impl Link {
    pub(crate) fn new(
        names: Names,
        config: ConnectionConfig,
        backend: Arc<dyn SandboxProbe>,
        poll: Poll,
    ) -> Link {
        Link {
            names,
            config,
            backend,
            poll,
            socket: None,
            want_write: false,
            last_rx: Instant::now(),
            ping_sent: None,
            outage: None,
            reconnects: 0,
            nudge_due: false,
        }
    }

    pub(crate) fn config(&self) -> &ConnectionConfig {
        &self.config
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.socket.is_some()
    }

    /// The framing of the current socket; `None` while disconnected.
    pub(crate) fn framing(&self) -> Option<Framing> {
        self.socket.as_ref().map(|s| s.framing)
    }

    /// Takes over a connected socket.
    pub(crate) fn adopt(&mut self, socket: Socket, state: &StateCell) -> io::Result<()> {
        self.poll.registry().register(
            &mut SourceFd(&socket.raw.as_raw_fd()),
            SOCKET,
            Interest::READABLE,
        )?;
        self.socket = Some(socket);
        self.want_write = false;
        self.last_rx = Instant::now();
        self.ping_sent = None;
        state.set(ConnectionState::Connected);
        Ok(())
    }

    /// Sleeps until the socket or the waker wakes the link, a keepalive or reconnect is due,
    /// or `wake_at` passes.
    pub(crate) fn wait(&mut self, events: &mut Events, wake_at: Option<Instant>) {
        // Once per sleep is enough: see websocket::quickack.
        if let Some(s) = &self.socket {
            websocket::quickack(&s.raw);
        }
        let timeout = self.poll_timeout(wake_at);
        if let Err(e) = self.poll.poll(events, timeout)
            && e.kind() != io::ErrorKind::Interrupted
        {
            log::warn!("{}: poll failed: {e}", self.names.label);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn poll_timeout(&self, wake_at: Option<Instant>) -> Option<Duration> {
        let now = Instant::now();
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
        let other = wake_at.map(|t| t.saturating_duration_since(now));
        match (own, other) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Queues a frame; [`Link::flush`] sends what the socket did not take yet.
    pub(crate) fn send(&mut self, msg: Message) -> Result<(), String> {
        self.write(msg, "write")
    }

    fn write(&mut self, msg: Message, verb: &str) -> Result<(), String> {
        let Some(sock) = self.socket.as_mut() else {
            return Err("not connected".into());
        };
        // Data frames are encoded here, out of tungstenite's trace log (see net::redact).
        let data = match &msg {
            Message::Text(text) => Some((DataFrame::Text, text.as_bytes())),
            Message::Binary(bytes) => Some((DataFrame::Binary, bytes.as_ref())),
            _ => None,
        };
        if let Some((kind, payload)) = data {
            sock.ws.get_mut().push(kind, payload);
            return Ok(());
        }
        match sock.ws.write(msg) {
            Ok(()) => Ok(()),
            // Tungstenite keeps the frame; the next flush sends it.
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(format!("{verb} failed: {e}")),
        }
    }

    /// Sends what was queued; what the socket does not take now goes when it is writable.
    pub(crate) fn flush(&mut self) -> Result<(), String> {
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

    /// Reads one frame. Any frame, pongs included, shows the link is alive.
    pub(crate) fn read(&mut self) -> Read {
        let Some(sock) = self.socket.as_mut() else {
            return Read::Drained;
        };
        loop {
            match sock.ws.read() {
                Ok(m) => {
                    self.last_rx = Instant::now();
                    self.ping_sent = None;
                    self.nudge_due |= m.is_text() || m.is_binary();
                    return Read::Frame(m);
                }
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    if std::mem::take(&mut self.nudge_due) && self.config.ack_nudge {
                        self.nudge();
                    }
                    return Read::Drained;
                }
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Read::Failed(e),
            }
        }
    }

    /// One empty pong after a batch of data frames: its bytes carry a proxy's ACK to the
    /// server, whose Nagle holds the next frames until then. A failure shows on the next
    /// read or write.
    fn nudge(&mut self) {
        if self
            .write(Message::Pong(Vec::new().into()), "nudge")
            .is_ok()
        {
            let _ = self.flush();
        }
    }

    /// Pings after a quiet spell; a missing answer means a half-open connection.
    pub(crate) fn keepalive(&mut self) -> Result<(), String> {
        let k = &self.config.keepalive;
        let (idle_ping, pong_timeout) = (k.idle_ping, k.pong_timeout);
        let now = Instant::now();
        match self.ping_sent {
            Some(sent) if now.duration_since(sent) >= pong_timeout => {
                Err(format!("no answer to a ping within {pong_timeout:?}"))
            }
            None if now.duration_since(self.last_rx) >= idle_ping => {
                self.write(Message::Ping(Vec::new().into()), self.names.ping_verb)?;
                self.ping_sent = Some(now);
                self.flush()
            }
            _ => Ok(()),
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
    }

    /// Closes for good: a polite close frame if the socket takes it right away, then the
    /// socket is dropped.
    pub(crate) fn close(&mut self) {
        if let Some(sock) = self.socket.as_mut() {
            let _ = sock.ws.close(None);
            let _ = sock.ws.flush();
        }
        self.drop_socket();
    }
}

/// The cause of a connection ended by the server's close frame.
pub(crate) fn closed_by_server(frame: Option<CloseFrame>) -> String {
    match frame {
        Some(c) => format!("server closed the websocket ({})", c.code),
        None => "server closed the websocket".into(),
    }
}
