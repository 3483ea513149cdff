//! The thread that owns one kernel websocket: it sends what callers queue, reads and routes
//! what the kernel sends, answers and sends pings, and reconnects with the same session id so
//! the server replays what it buffered meanwhile.

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use tungstenite::Message;

use crate::backend::{Backend, Liveness};
use crate::config::ConnectionConfig;
use crate::error::{Error, KernelEvent};
use crate::jupyter::delivery::{Delivery, Failure};
use crate::jupyter::routes::{Routes, Seen};
use crate::jupyter::state::{CloseReason, ConnectionState, StateCell};
use crate::jupyter::transport::{self, Limits, Socket, Target};
use crate::jupyter::wire::{self, Framing, Incoming, Outgoing};
use crate::retry::Retry;

pub(crate) const SOCKET: Token = Token(0);
pub(crate) const WAKE: Token = Token(1);

/// Messages read per batch before they are routed.
const BATCH: usize = 256;
/// Bytes read per batch before they are routed: bounds the raw frames held at once when a
/// burst of large output sits in the socket buffer (up to 256 × 64 KiB before).
const BATCH_BYTES: usize = 1 << 20;
/// Bytes of routed messages after which waiters are woken without waiting for the batch end.
const WAKE_BYTES: usize = 32 * 1024;
/// Message ids remembered for duplicate detection.
const SEEN_CAPACITY: usize = 32 * 1024;
/// Writes of one request that may break the connection before it is failed instead of queued
/// again for the next reconnect.
const MAX_BROKEN_WRITES: u32 = 3;
/// Least time between two liveness probes of the backend during one outage.
const PROBE_INTERVAL: Duration = Duration::from_millis(200);

/// How a read batch ended.
enum ReadOutcome {
    /// Nothing more to read until the socket is readable again.
    Drained,
    /// The batch is full; read on.
    More,
    Failed(tungstenite::Error),
}

/// Why a request was not written.
enum Unsent {
    /// Over [`ConnectionConfig::max_request_size`]; never sent.
    TooLarge { size: usize, limit: usize },
    /// The link broke.
    Broken(String),
}

/// Requests from the handle to the worker.
pub(crate) enum Command {
    Send {
        msg: Outgoing,
        reply: Sender<Delivery>,
        /// The thread to unpark when a reply arrives.
        waiter: std::thread::Thread,
    },
    Forget {
        msg_id: String,
    },
    Shutdown,
}

/// What the handle and the worker both see.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: StateCell,
    /// Set once, when the connection is gone for good.
    pub(crate) failure: Mutex<Option<Failure>>,
    /// Counts restarts, deaths and shutdowns of the kernel, so set-up can be redone.
    pub(crate) kernel_events: AtomicU64,
}

impl Shared {
    pub(crate) fn new(kernel_id: &str) -> Shared {
        Shared {
            state: StateCell::new(kernel_id),
            failure: Mutex::new(None),
            kernel_events: AtomicU64::new(0),
        }
    }

    pub(crate) fn failure(&self) -> Option<Failure> {
        crate::sync::lock(&self.failure).clone()
    }

    fn set_failure(&self, failure: Failure) {
        *crate::sync::lock(&self.failure) = Some(failure);
    }
}

pub(crate) struct Worker {
    pub(crate) target: Target,
    pub(crate) config: ConnectionConfig,
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) commands: Receiver<Command>,
    pub(crate) poll: Poll,
    pub(crate) socket: Option<Socket>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) framing: Option<Framing>,
    pub(crate) routes: Routes,
    pub(crate) seen: Seen,
    /// Requests to write once connected, each with how many writes of it broke the link.
    pub(crate) queued: VecDeque<(Outgoing, u32)>,
    pub(crate) want_write: bool,
    pub(crate) last_rx: Instant,
    pub(crate) ping_sent: Option<Instant>,
    pub(crate) outage: Option<Outage>,
    /// Reconnects so far, handed to waiters with each [`Delivery::Reconnected`].
    pub(crate) reconnects: u64,
}

/// Book-keeping for one period of being disconnected.
pub(crate) struct Outage {
    retry: Retry,
    next_attempt: Instant,
    last_probe: Option<Instant>,
    last_cause: String,
}

impl Worker {
    pub(crate) fn new(
        target: Target,
        config: ConnectionConfig,
        backend: Arc<dyn Backend>,
        commands: Receiver<Command>,
        poll: Poll,
        shared: Arc<Shared>,
    ) -> Worker {
        Worker {
            target,
            config,
            backend,
            commands,
            poll,
            socket: None,
            shared,
            framing: None,
            routes: Routes::default(),
            seen: Seen::new(SEEN_CAPACITY),
            queued: VecDeque::new(),
            want_write: false,
            last_rx: Instant::now(),
            ping_sent: None,
            outage: None,
            reconnects: 0,
        }
    }

    /// Takes over a socket opened by the caller's thread.
    pub(crate) fn adopt(&mut self, socket: Socket) -> io::Result<()> {
        self.poll.registry().register(
            &mut SourceFd(&socket.raw.as_raw_fd()),
            SOCKET,
            Interest::READABLE,
        )?;
        self.framing = Some(socket.framing);
        self.socket = Some(socket);
        self.want_write = false;
        self.last_rx = Instant::now();
        self.ping_sent = None;
        self.shared.state.set(ConnectionState::Connected);
        Ok(())
    }

    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(16);
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
            // Once per sleep is enough: see transport::quickack.
            if let Some(s) = &self.socket {
                transport::quickack(&s.raw);
            }
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != io::ErrorKind::Interrupted
            {
                log::warn!("kernel {}: poll failed: {e}", self.target.kernel_id);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.finish();
    }

    /// Returns false once a shutdown was asked for.
    fn drain_commands(&mut self) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(Command::Send { msg, reply, waiter }) => self.submit(msg, reply, waiter),
                Ok(Command::Forget { msg_id }) => {
                    self.routes.remove(&msg_id);
                    self.queued.retain(|(m, _)| m.msg_id != msg_id);
                }
                Ok(Command::Shutdown) => return false,
                Err(crossbeam_channel::TryRecvError::Empty) => return true,
                // Every handle is gone: nobody can ever ask for anything again.
                Err(crossbeam_channel::TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn submit(&mut self, msg: Outgoing, reply: Sender<Delivery>, waiter: std::thread::Thread) {
        if let Some(f) = self.shared.failure() {
            let _ = reply.send(Delivery::Failed(f));
            waiter.unpark();
            return;
        }
        self.routes.add(msg.msg_id.clone(), reply, waiter);
        if self.socket.is_some() {
            self.send_or_queue(msg, 0);
        } else {
            self.queued.push_back((msg, 0));
        }
    }

    /// Writes a request; one the link broke under is queued for the reconnect, unless it broke
    /// it [`MAX_BROKEN_WRITES`] times (a server that resets on it). Returns false when the
    /// connection was lost.
    fn send_or_queue(&mut self, msg: Outgoing, broken_writes: u32) -> bool {
        match self.write(&msg) {
            Ok(()) => true,
            Err(Unsent::TooLarge { size, limit }) => {
                // A server resets the connection on a message over its limit: sent anyway, it
                // would look like a network cut and be resent after every reconnect.
                log::debug!(
                    "kernel {}: request {} is {size} bytes, over the {limit}-byte limit; not sent",
                    self.target.kernel_id,
                    msg.msg_id
                );
                self.routes
                    .fail(&msg.msg_id, &Failure::TooLarge { size, limit });
                true
            }
            Err(Unsent::Broken(cause)) => {
                let broken_writes = broken_writes + 1;
                if broken_writes >= MAX_BROKEN_WRITES {
                    let cause = format!(
                        "the connection broke each of the {broken_writes} times the request was \
                         written (does the server reject messages this large?): {cause}"
                    );
                    self.routes.fail(
                        &msg.msg_id,
                        &Failure::Lost {
                            kernel_id: self.target.kernel_id.clone(),
                            cause: cause.clone(),
                        },
                    );
                } else {
                    self.queued.push_front((msg, broken_writes));
                }
                self.lost(cause);
                false
            }
        }
    }

    fn write(&mut self, msg: &Outgoing) -> Result<(), Unsent> {
        let Some(sock) = self.socket.as_mut() else {
            return Err(Unsent::Broken("not connected".into()));
        };
        let frame = match sock.framing {
            Framing::V1 => Message::Binary(msg.encode_v1().into()),
            Framing::Legacy => Message::Text(msg.encode_text().into()),
        };
        let limit = self.config.max_request_size;
        if frame.len() > limit {
            return Err(Unsent::TooLarge {
                size: frame.len(),
                limit,
            });
        }
        log::trace!(
            "kernel {}: send {} {}",
            self.target.kernel_id,
            msg.channel,
            msg.msg_id
        );
        match sock.ws.write(frame) {
            Ok(()) => Ok(()),
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(Unsent::Broken(format!("write failed: {e}"))),
        }
    }

    /// Reads everything available, routes it, flushes, and keeps the link alive.
    fn pump(&mut self) -> Result<(), String> {
        loop {
            let (batch, outcome) = self.read_batch();
            // Waiters are woken once per batch of small messages (a burst such as
            // execute_result + execute_reply costs one wake-up, not one each), and after every
            // WAKE_BYTES of output, so callers work on large output while the rest decodes.
            let mut unannounced = 0;
            let routed = batch.into_iter().try_for_each(|m| {
                unannounced += m.len();
                let r = self.on_frame(m);
                if unannounced >= WAKE_BYTES {
                    self.routes.wake();
                    unannounced = 0;
                }
                r
            });
            self.routes.wake();
            routed?;
            match outcome {
                ReadOutcome::Drained => break,
                ReadOutcome::More => {}
                ReadOutcome::Failed(tungstenite::Error::Capacity(e)) => {
                    // The oversize message belonged to some request; none can be trusted now.
                    let message = format!("the server sent a message over the size limit: {e}");
                    log::warn!("kernel {}: {message}", self.target.kernel_id);
                    self.routes.fail_all(&Failure::Protocol { message });
                    return Err("oversize message".into());
                }
                ReadOutcome::Failed(e) => return Err(format!("read failed: {e}")),
            }
        }
        self.flush()?;
        self.keepalive()
    }

    /// Reads up to a batch of frames; what arrived before an error is returned with it.
    fn read_batch(&mut self) -> (Vec<Message>, ReadOutcome) {
        let mut batch = Vec::new();
        let Some(sock) = self.socket.as_mut() else {
            return (batch, ReadOutcome::Drained);
        };
        let mut bytes = 0;
        while batch.len() < BATCH && bytes < BATCH_BYTES {
            match sock.ws.read() {
                Ok(m) => {
                    bytes += m.len();
                    batch.push(m);
                }
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    return (batch, ReadOutcome::Drained);
                }
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (batch, ReadOutcome::Failed(e)),
            }
        }
        (batch, ReadOutcome::More)
    }

    fn on_frame(&mut self, frame: Message) -> Result<(), String> {
        self.last_rx = Instant::now();
        self.ping_sent = None;
        let framing = self.socket.as_ref().map_or(Framing::Legacy, |s| s.framing);
        let decoded = match frame {
            Message::Text(t) => wire::decode_text(t.as_str()),
            Message::Binary(b) => wire::decode_binary(&b, framing),
            Message::Close(c) => {
                return Err(match c {
                    Some(c) => format!("server closed the websocket ({})", c.code),
                    None => "server closed the websocket".into(),
                });
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return Ok(()),
        };
        match decoded {
            Ok(msg) => self.dispatch(msg),
            Err(e) => {
                log::warn!("kernel {}: {e}", self.target.kernel_id);
                // The stream cannot be trusted to finish any pending request now.
                self.routes.fail_all(&Failure::Protocol {
                    message: e.to_string(),
                });
            }
        }
        Ok(())
    }

    fn dispatch(&mut self, msg: Incoming) {
        if !self.seen.first_time(&msg.msg_id) {
            log::trace!("kernel {}: duplicate {}", self.target.kernel_id, msg.msg_id);
            return;
        }
        log::trace!(
            "kernel {}: recv {} {} parent {} seq {:?}",
            self.target.kernel_id,
            msg.channel,
            msg.msg_type,
            msg.parent_id,
            msg.seq
        );
        if let Some(event) = kernel_event(&msg) {
            log::debug!("kernel {}: {event:?}", self.target.kernel_id);
            self.shared
                .kernel_events
                .fetch_add(1, AtomicOrdering::SeqCst);
            self.routes.fail_all(&Failure::Kernel {
                kernel_id: self.target.kernel_id.clone(),
                event,
            });
            return;
        }
        self.routes.deliver(msg);
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

    /// Pings after a quiet spell; a missing answer means a half-open connection.
    fn keepalive(&mut self) -> Result<(), String> {
        let k = &self.config.keepalive;
        let now = Instant::now();
        match self.ping_sent {
            Some(sent) if now.duration_since(sent) >= k.pong_timeout => {
                Err(format!("no answer to a ping within {:?}", k.pong_timeout))
            }
            None if now.duration_since(self.last_rx) >= k.idle_ping => {
                if let Some(sock) = self.socket.as_mut() {
                    match sock.ws.write(Message::Ping(Vec::new().into())) {
                        Ok(()) => {}
                        Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                        }
                        Err(e) => return Err(format!("ping failed: {e}")),
                    }
                }
                self.ping_sent = Some(now);
                self.flush()
            }
            _ => Ok(()),
        }
    }

    fn poll_timeout(&self) -> Option<Duration> {
        let now = Instant::now();
        if let Some(o) = &self.outage {
            return Some(o.next_attempt.saturating_duration_since(now));
        }
        self.socket.as_ref()?;
        let k = &self.config.keepalive;
        let due = match self.ping_sent {
            Some(sent) => sent + k.pong_timeout,
            None => self.last_rx + k.idle_ping,
        };
        Some(due.saturating_duration_since(now) + Duration::from_millis(1))
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

    fn lost(&mut self, cause: String) {
        self.drop_socket();
        log::debug!("kernel {}: connection lost: {cause}", self.target.kernel_id);
        let policy = &self.config.reconnect;
        if policy.max_attempts == 0 {
            let failure = self.unreachable_failure(cause);
            self.give_up(failure);
            return;
        }
        self.outage = Some(Outage {
            retry: Retry::new(policy),
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
        match transport::connect(
            &self.target,
            Limits::reconnect(timeout),
            self.framing,
            self.config.max_message_size,
        ) {
            Ok(socket) => {
                let took = outage.retry.started().elapsed();
                self.outage = None;
                if let Err(e) = self.adopt(socket) {
                    self.lost(format!("register failed: {e}"));
                    return;
                }
                log::debug!(
                    "kernel {}: reconnected after {attempt} attempt(s) in {took:?}",
                    self.target.kernel_id
                );
                self.reconnects += 1;
                self.routes.notify_reconnected(self.reconnects);
                while let Some((msg, broken_writes)) = self.queued.pop_front() {
                    if !self.send_or_queue(msg, broken_writes) {
                        return;
                    }
                }
            }
            Err(e) => self.attempt_failed(e, attempt),
        }
    }

    fn attempt_failed(&mut self, e: Error, attempt: u32) {
        let cause = e.report();
        log::debug!(
            "kernel {}: reconnect attempt {attempt} failed: {cause}",
            self.target.kernel_id
        );
        match e {
            Error::Authentication { status, endpoint } => {
                self.give_up(Failure::Unauthorized { status, endpoint });
                return;
            }
            Error::KernelNotFound { .. } => {
                let f = match self.backend.probe() {
                    Liveness::Gone => self.sandbox_gone(),
                    _ => Failure::KernelGone {
                        kernel_id: self.target.kernel_id.clone(),
                    },
                };
                self.give_up(f);
                return;
            }
            _ => {}
        }
        let Some(outage) = self.outage.as_mut() else {
            return;
        };
        outage.last_cause = cause;
        // The budget covers attempts and probes alike: both start only within it, and each
        // attempt is cut to what is left of it.
        let Some(next_attempt) = outage.retry.failed() else {
            let cause = outage.last_cause.clone();
            let f = self.unreachable_failure(cause);
            self.give_up(f);
            return;
        };
        outage.next_attempt = next_attempt;
        let now = Instant::now();
        let probe_due = outage
            .last_probe
            .is_none_or(|t| now.duration_since(t) >= PROBE_INTERVAL);
        if probe_due {
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

    /// The failure for a connection that cannot be re-established: `SandboxGone` when the
    /// backend says the sandbox is gone, otherwise `Lost`. A probe made in the last
    /// [`PROBE_INTERVAL`] already said the sandbox was there, so none is made again.
    fn unreachable_failure(&self, cause: String) -> Failure {
        let probed_just_now = self
            .outage
            .as_ref()
            .and_then(|o| o.last_probe)
            .is_some_and(|t| t.elapsed() < PROBE_INTERVAL);
        let liveness = if probed_just_now {
            Liveness::Unknown
        } else {
            self.backend.probe()
        };
        match liveness {
            Liveness::Gone => self.sandbox_gone(),
            _ => Failure::Lost {
                kernel_id: self.target.kernel_id.clone(),
                cause,
            },
        }
    }

    fn give_up(&mut self, failure: Failure) {
        self.drop_socket();
        self.outage = None;
        let reason = match &failure {
            Failure::SandboxGone { .. } => CloseReason::SandboxGone,
            Failure::KernelGone { .. } => CloseReason::KernelGone,
            Failure::Unauthorized { .. } => CloseReason::Unauthorized,
            Failure::Closed => CloseReason::Requested,
            _ => CloseReason::GaveUp,
        };
        log::debug!("kernel {}: giving up: {failure:?}", self.target.kernel_id);
        // State first: a caller woken by its failed request must already read `Closed`.
        self.shared.set_failure(failure.clone());
        self.shared.state.set(ConnectionState::Closed { reason });
        self.routes.fail_all(&failure);
        self.queued.clear();
    }

    fn finish(mut self) {
        if let Some(sock) = self.socket.as_mut() {
            // Best effort: a polite close frame if the socket takes it right away.
            let _ = sock.ws.close(None);
            let _ = sock.ws.flush();
        }
        self.drop_socket();
        if self.shared.failure().is_none() {
            self.shared.set_failure(Failure::Closed);
        }
        if !matches!(self.shared.state.get(), ConnectionState::Closed { .. }) {
            self.shared.state.set(ConnectionState::Closed {
                reason: CloseReason::Requested,
            });
        }
        self.routes.fail_all(&Failure::Closed);
        // Requests queued after the shutdown was read, before the failure was set: their
        // senders saw no failure and wait for an answer (see `Connection::send_on`).
        let failure = self.shared.failure().unwrap_or(Failure::Closed);
        while let Ok(command) = self.commands.try_recv() {
            if let Command::Send { reply, waiter, .. } = command {
                let _ = reply.send(Delivery::Failed(failure.clone()));
                waiter.unpark();
            }
        }
        log::debug!("kernel {}: worker stopped", self.target.kernel_id);
    }
}

/// Server-sent iopub events that end every in-flight request of the kernel.
fn kernel_event(msg: &Incoming) -> Option<KernelEvent> {
    if msg.channel != "iopub" {
        return None;
    }
    match msg.msg_type.as_str() {
        "status" if msg.parent_id.is_empty() => match msg.content["execution_state"].as_str() {
            Some("restarting") => Some(KernelEvent::Restarting),
            Some("dead") => Some(KernelEvent::Dead),
            _ => None,
        },
        "shutdown_reply" => Some(KernelEvent::Shutdown),
        _ => None,
    }
}
