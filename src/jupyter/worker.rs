//! The thread that owns one kernel websocket: it sends what callers queue, reads and routes
//! what the kernel sends, answers and sends pings, and reconnects with the same session id so
//! the server replays what it buffered meanwhile.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender};
use mio::{Events, Poll};
use tungstenite::Message;

use crate::config::ConnectionConfig;
use crate::error::KernelEvent;
use crate::jupyter::delivery::{Delivery, Failure, WakeOn};
pub(crate) use crate::jupyter::link::WAKE;
use crate::jupyter::link::{self, Link, Names, Read, Reconnect};
use crate::jupyter::liveness::SandboxProbe;
use crate::jupyter::routes::{Routes, Seen};
use crate::jupyter::state::{CloseReason, ConnectionState, StateCell};
use crate::jupyter::websocket::{self, Socket, Target};
use crate::jupyter::wire::{self, Framing, Incoming, Outgoing};

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
        wake_on: WakeOn,
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
    pub(crate) commands: Receiver<Command>,
    pub(crate) link: Link,
    pub(crate) shared: Arc<Shared>,
    /// The framing of the first connection, required of every reconnect.
    pub(crate) framing: Option<Framing>,
    pub(crate) routes: Routes,
    pub(crate) seen: Seen,
    /// Requests to write once connected, each with how many writes of it broke the link.
    pub(crate) queued: VecDeque<(Outgoing, u32)>,
    /// The sandbox was found paused: no reconnect runs until a request comes, which tries once
    /// more and fails at once while it is still paused.
    pub(crate) paused: bool,
}

impl Worker {
    pub(crate) fn new(
        target: Target,
        config: ConnectionConfig,
        backend: Arc<dyn SandboxProbe>,
        commands: Receiver<Command>,
        poll: Poll,
        shared: Arc<Shared>,
    ) -> Worker {
        let names = Names {
            label: format!("kernel {}", target.kernel_id),
            lost_id: target.kernel_id.clone(),
            ping_verb: "ping",
            reuse_recent_probe: true,
        };
        Worker {
            target,
            commands,
            link: Link::new(names, config, backend, poll),
            shared,
            framing: None,
            routes: Routes::default(),
            seen: Seen::new(SEEN_CAPACITY),
            queued: VecDeque::new(),
            paused: false,
        }
    }

    /// Takes over a socket opened by the caller's thread.
    pub(crate) fn adopt(&mut self, socket: Socket) -> io::Result<()> {
        let framing = socket.framing;
        self.link.adopt(socket, &self.shared.state)?;
        self.framing = Some(framing);
        Ok(())
    }

    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(16);
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
            self.link.wait(&mut events, None);
        }
        self.finish();
    }

    /// Returns false once a shutdown was asked for.
    fn drain_commands(&mut self) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(Command::Send {
                    msg,
                    reply,
                    waiter,
                    wake_on,
                }) => self.submit(msg, reply, waiter, wake_on),
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

    fn submit(
        &mut self,
        msg: Outgoing,
        reply: Sender<Delivery>,
        waiter: std::thread::Thread,
        wake_on: WakeOn,
    ) {
        if let Some(f) = self.shared.failure() {
            let _ = reply.send(Delivery::Failed(f));
            waiter.unpark();
            return;
        }
        self.routes.add(msg.msg_id.clone(), reply, waiter, wake_on);
        if self.link.is_connected() {
            self.send_or_queue(msg, 0);
        } else {
            self.queued.push_back((msg, 0));
            if self.paused && !self.link.in_outage() {
                // Resumed since, perhaps: reconnect, asking the backend again if that fails.
                self.paused = false;
                let cause = "the sandbox was paused".to_string();
                if let Err(failure) = self.link.begin_outage(cause, &self.shared.state) {
                    self.give_up(failure);
                }
            }
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
        let Some(framing) = self.link.framing() else {
            return Err(Unsent::Broken("not connected".into()));
        };
        let frame = match framing {
            Framing::V1 => Message::Binary(msg.encode_v1().into()),
            Framing::Legacy => Message::Text(msg.encode_text().into()),
        };
        let limit = self.link.config().max_request_size;
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
        self.link.send(frame).map_err(Unsent::Broken)
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
        self.link.flush()?;
        self.link.keepalive()
    }

    /// Reads up to a batch of frames; what arrived before an error is returned with it.
    fn read_batch(&mut self) -> (Vec<Message>, ReadOutcome) {
        let mut batch = Vec::new();
        let mut bytes = 0;
        while batch.len() < BATCH && bytes < BATCH_BYTES {
            match self.link.read() {
                Read::Frame(m) => {
                    bytes += m.len();
                    batch.push(m);
                }
                Read::Drained => return (batch, ReadOutcome::Drained),
                Read::Failed(e) => return (batch, ReadOutcome::Failed(e)),
            }
        }
        (batch, ReadOutcome::More)
    }

    fn on_frame(&mut self, frame: Message) -> Result<(), String> {
        let framing = self.link.framing().unwrap_or(Framing::Legacy);
        let decoded = match frame {
            Message::Text(t) => wire::decode_text(t.as_str()),
            Message::Binary(b) => wire::decode_binary(&b, framing),
            Message::Close(c) => return Err(link::closed_by_server(c)),
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

    fn lost(&mut self, cause: String) {
        self.link.cut(&cause);
        if let Err(failure) = self.link.begin_outage(cause, &self.shared.state) {
            self.give_up(failure);
        }
    }

    fn reconnect_once(&mut self) {
        let (target, framing) = (&self.target, self.framing);
        let attempt = self
            .link
            .reconnect(&self.shared.state, |limits, max_message_size| {
                websocket::connect(target, limits, framing, max_message_size)
            });
        match attempt {
            Reconnect::Waiting => {}
            Reconnect::Connected { attempt, took } => {
                self.framing = self.link.framing();
                log::debug!(
                    "kernel {}: reconnected after {attempt} attempt(s) in {took:?}",
                    self.target.kernel_id
                );
                self.routes.notify_reconnected(self.link.reconnects());
                while let Some((msg, broken_writes)) = self.queued.pop_front() {
                    if !self.send_or_queue(msg, broken_writes) {
                        return;
                    }
                }
            }
            Reconnect::Unregistered(cause) => self.lost(cause),
            Reconnect::NotFound => {
                let f = if self.link.sandbox_is_gone() {
                    self.link.sandbox_gone()
                } else {
                    Failure::KernelGone {
                        kernel_id: self.target.kernel_id.clone(),
                    }
                };
                self.give_up(f);
            }
            Reconnect::GiveUp(f) => self.give_up(f),
        }
    }

    fn give_up(&mut self, failure: Failure) {
        let reason = self.link.give_up(&failure);
        if matches!(failure, Failure::SandboxPaused { .. }) {
            // Not for good: a resume brings the sandbox back, so no failure is kept and the
            // next request reconnects (see `submit`).
            self.paused = true;
            self.shared.state.set(ConnectionState::Closed { reason });
            self.routes.fail_all(&failure);
            self.queued.clear();
            return;
        }
        // State first: a caller woken by its failed request must already read `Closed`.
        self.shared.set_failure(failure.clone());
        self.shared.state.set(ConnectionState::Closed { reason });
        self.routes.fail_all(&failure);
        self.queued.clear();
    }

    fn finish(mut self) {
        self.link.close();
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
