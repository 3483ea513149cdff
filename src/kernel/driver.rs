//! Drives one execute request to its end across connection cuts: the kernel's messages for it,
//! in the kernel's order, each exactly once, and the moment it is finished (reply and idle).
//! Code runs, commands and silent set-up cells all go through this one driver; what they make
//! of the messages is theirs.
//!
//! After a cut the driver asks the kernel's hook (`kernel/hook.py`) for what it missed:
//! - at most one replay request is outstanding per execution, and each answer is a chunk of at
//!   most [`REPLAY_CHUNK`] bytes, resumed from what already arrived, so a large output never
//!   travels twice and never piles up in the server, however often the link is cut;
//! - a replay answer can itself be lost in a cut. After a reconnect with a replay outstanding
//!   the driver sends a tiny probe cell: the kernel runs it after the replay, so when the
//!   probe's `idle` arrives and the replay's answer has not, the answer is gone and is asked
//!   for again (never before: asking while the first answer may still come would send the
//!   same output twice);
//! - a request the kernel never saw is sent again, at most [`MAX_RESENDS`] times.

use std::sync::Arc;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::error::{Error, TimeoutPhase};
use crate::jupyter::delivery::{self, Delivery, Failure, WakeOn};
use crate::jupyter::wire::{Incoming, Outgoing};
use crate::kernel::Kernel;
use crate::kernel::recovery::{Replay, Sequencer, probe_request, replay_request};
use crate::model::execution::{Continuity, Execution};

/// Largest replay answer the hook sends at once (it always sends at least one message).
/// Small enough to cross a link that is cut every few hundred milliseconds, large enough that
/// recovering a big output takes few round trips.
pub(crate) const REPLAY_CHUNK: usize = 1 << 20;

/// How often a request the kernel never saw is sent again after reconnects. A request that
/// breaks the connection every time it is sent (a server that resets on it) must not be resent
/// for ever.
pub(crate) const MAX_RESENDS: u32 = 3;

/// How waiting for the next message ended, when it did not yield messages.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The deadline passed.
    TimedOut,
    /// The connection failed for good, or the sandbox was closed.
    Failed(Failure),
    /// The kernel's record of the execution is gone: what did not arrive cannot be recovered.
    /// `missing` is the number of messages lost, when known.
    Lost { missing: Option<u64> },
    /// The request was sent `sends` times and the kernel never received it.
    NeverArrived { sends: u32 },
}

/// How [`Driver::wait`] ended, when the execution did not fail.
#[derive(Debug)]
pub(crate) enum Waited {
    /// The execution's messages it released, in order (possibly none).
    Ready(Vec<Incoming>),
    /// The deadline passed: the kernel was interrupted, and the execution has `grace` to end.
    Interrupted,
    /// The settling period passed and the execution has not ended.
    Unsettled,
    /// The caller's own limit (`until`) passed first.
    Paused,
}

/// The replay request waiting for its answer.
#[derive(Debug)]
struct PendingReplay {
    msg_id: String,
}

pub(crate) struct Driver {
    kernel: Arc<Kernel>,
    request: Outgoing,
    tx: Sender<Delivery>,
    rx: Receiver<Delivery>,
    /// The thread the worker unparks for this request's deliveries; `None` once requests
    /// were sent from more than one thread (a handle that moved), whose routes unpark
    /// different threads: then waiting is on the channel itself.
    owner: Option<ThreadId>,
    order: Sequencer,
    replay: Option<PendingReplay>,
    /// Probes sent after reconnects, each with the replay request it checks on.
    probes: Vec<(String, String)>,
    need_replay: bool,
    /// Set once a replay record said the execution ended in the kernel.
    record_final: bool,
    sends: u32,
    /// Send the request again after every reconnect while the kernel has no hook: for cells
    /// that may run twice (installing the hook itself).
    resend_on_reconnect: bool,
    /// The msg_ids of those renewed copies: their messages count as the request's own.
    copies: Vec<String>,
    reconnected: bool,
    /// The last reconnect acted on (see [`Delivery::Reconnected`]).
    reconnect_epoch: u64,
    replied: bool,
    idle: bool,
    /// The server dropped some of this execution's output (its IOPub rate limit).
    rate_limited: bool,
    /// Until when the execution may take to end after an interrupt (or before one is sent).
    settle_until: Option<Instant>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("msg_id", &self.request.msg_id)
            .field("kernel", &self.kernel.id)
            .field("finished", &self.finished())
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// Sends `request` to the kernel and returns the driver that follows it; its waiter is
    /// woken for every message it acts on.
    pub(crate) fn send(kernel: Arc<Kernel>, request: Outgoing) -> Result<Driver, Error> {
        Driver::send_waking(kernel, request, WakeOn::Output)
    }

    /// [`Driver::send`] for a caller with nothing to do before the execution ends (no
    /// callbacks): its thread is woken once, at the end, unless a cut calls for more.
    pub(crate) fn send_until_end(kernel: Arc<Kernel>, request: Outgoing) -> Result<Driver, Error> {
        Driver::send_waking(kernel, request, WakeOn::End)
    }

    fn send_waking(
        kernel: Arc<Kernel>,
        request: Outgoing,
        wake_on: WakeOn,
    ) -> Result<Driver, Error> {
        let (tx, rx) = crossbeam_channel::unbounded();
        kernel.conn.send_on(request.clone(), tx.clone(), wake_on)?;
        Ok(Driver {
            kernel,
            request,
            tx,
            rx,
            owner: Some(std::thread::current().id()),
            order: Sequencer::default(),
            replay: None,
            probes: Vec::new(),
            need_replay: false,
            record_final: false,
            sends: 1,
            resend_on_reconnect: false,
            copies: Vec::new(),
            reconnected: false,
            reconnect_epoch: 0,
            replied: false,
            idle: false,
            rate_limited: false,
            settle_until: None,
        })
    }

    /// [`Driver::send_until_end`] for a cell that may safely run twice: without the kernel's
    /// hook (which is what such a cell installs) it is sent again after every reconnect, since
    /// whether its reply was lost in the cut cannot be asked.
    pub(crate) fn send_idempotent(kernel: Arc<Kernel>, request: Outgoing) -> Result<Driver, Error> {
        let mut driver = Driver::send_until_end(kernel, request)?;
        driver.resend_on_reconnect = true;
        Ok(driver)
    }

    /// The request's msg_id.
    pub(crate) fn msg_id(&self) -> &str {
        &self.request.msg_id
    }

    pub(crate) fn kernel(&self) -> &Arc<Kernel> {
        &self.kernel
    }

    /// True once the execution's reply and its `idle` were both handed out.
    pub(crate) fn finished(&self) -> bool {
        self.replied && self.idle
    }

    /// Messages known to be missing for good.
    pub(crate) fn lost(&self) -> u64 {
        self.order.lost()
    }

    /// How complete the output is known to be, for a finished execution.
    pub(crate) fn continuity(&self) -> Continuity {
        if self.order.recovered() > 0 {
            Continuity::Recovered
        } else if self.reconnected && !self.order.numbered() {
            Continuity::Unverified
        } else {
            Continuity::Intact
        }
    }

    /// Waits until `until` (`None`: no limit) for what arrives next and returns the
    /// execution's messages it releases, in order (possibly none: a delivery can be
    /// book-keeping only). Call again until [`Driver::finished`].
    pub(crate) fn next(&mut self, until: Option<Instant>) -> Result<Vec<Incoming>, Stop> {
        let delivery = if self.owner == Some(std::thread::current().id()) {
            delivery::next(&self.rx, until)
        } else {
            match until {
                Some(d) => self.rx.recv_deadline(d),
                None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            }
        };
        let ready = match delivery {
            Ok(d) => {
                let ready = self.on_delivery(d)?;
                if !ready.is_empty() {
                    log::trace!(
                        "execution {}: released up to seq {:?}",
                        self.msg_id(),
                        ready.last().and_then(|m| m.seq)
                    );
                }
                ready
            }
            Err(RecvTimeoutError::Timeout) => return Err(Stop::TimedOut),
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Stop::Failed(
                    self.kernel.conn.failure().unwrap_or(Failure::Closed),
                ));
            }
        };
        for m in &ready {
            match m.msg_type.as_str() {
                "execute_reply" => self.replied = true,
                "status" if m.content["execution_state"] == "idle" => self.idle = true,
                _ => {}
            }
        }
        if self.finished() && self.rate_limited && !self.order.numbered() {
            // No hook numbered the output, so what the server dropped cannot be known.
            return Err(Stop::Lost { missing: None });
        }
        if self.record_final && !self.finished() {
            // The record was complete, yet the reply or the idle is not among what it held.
            log::debug!(
                "execution {}: the record ended without its reply or idle",
                self.msg_id()
            );
            return Err(Stop::Lost {
                missing: Some(self.order.lost().max(1)),
            });
        }
        // Ask for what went missing once the burst is handled, so the request covers it all.
        if !self.finished() && self.rx.is_empty() {
            self.ask_for_replay();
        }
        Ok(ready)
    }

    /// Waits until the execution is finished or `until` passes, dropping its messages. For
    /// cells whose output does not matter (set-up, restore); returns the execute_reply's
    /// content.
    pub(crate) fn finish(&mut self, until: Option<Instant>) -> Result<serde_json::Value, Stop> {
        let mut reply = serde_json::Value::Null;
        while !self.finished() {
            for m in self.next(until)? {
                if m.msg_type == "execute_reply" {
                    reply = m.content;
                }
            }
        }
        Ok(reply)
    }

    fn on_delivery(&mut self, delivery: Delivery) -> Result<Vec<Incoming>, Stop> {
        let m = match delivery {
            Delivery::Message(m) => m,
            Delivery::Reconnected { epoch } => {
                // One per pending request of this driver: act on the first only.
                if epoch > self.reconnect_epoch {
                    self.reconnect_epoch = epoch;
                    self.on_reconnected();
                }
                return Ok(Vec::new());
            }
            Delivery::Failed(f) => return Err(Stop::Failed(f)),
        };
        if self.copies.contains(&m.parent_id) {
            // Runs of a cell that may run twice: any one of them finishing will do.
            return Ok(vec![m]);
        }
        if m.parent_id == self.request.msg_id {
            if self.resend_on_reconnect {
                return Ok(vec![m]);
            }
            self.rate_limited |= m.msg_type == crate::jupyter::routes::RATE_LIMITED;
            let ready = self.order.offer(m);
            self.need_replay |= self.order.has_gap();
            return Ok(ready);
        }
        let is_idle = m.msg_type == "status" && m.content["execution_state"] == "idle";
        if let Some(pending) = &self.replay
            && m.parent_id == pending.msg_id
        {
            if m.msg_type == "display_data" {
                return self.on_record(&m);
            }
            if is_idle {
                // iopub keeps the kernel's order: the record would have come before this.
                log::debug!("execution {}: a replay answer was lost", self.msg_id());
                self.replay_lost();
            }
            return Ok(Vec::new());
        }
        if is_idle && let Some(i) = self.probes.iter().position(|(p, _)| *p == m.parent_id) {
            let (_, checked) = self.probes.swap_remove(i);
            if self.replay.as_ref().is_some_and(|r| r.msg_id == checked) {
                log::debug!(
                    "execution {}: a probe passed its replay request, whose answer never came",
                    self.msg_id()
                );
                self.replay_lost();
            }
        }
        Ok(Vec::new())
    }

    fn on_record(&mut self, m: &Incoming) -> Result<Vec<Incoming>, Stop> {
        let Some(record) = Replay::from_bundle(&m.content["data"], &self.request.msg_id) else {
            return Ok(Vec::new());
        };
        self.settle_replay();
        match record {
            Replay::Unknown => {
                if self.sends > MAX_RESENDS {
                    return Err(Stop::NeverArrived { sends: self.sends });
                }
                log::debug!(
                    "execution {} never reached the kernel; sending it again",
                    self.msg_id()
                );
                self.sends += 1;
                // Renewed anyway: should the kernel have seen the first copy after all, it
                // would drop an identical one as a replay of a signed message.
                self.kernel.conn.forget(&self.request.msg_id);
                self.request = self.request.renewed();
                self.order = Sequencer::default();
                self.resend(self.request.clone())?;
                Ok(Vec::new())
            }
            Replay::Evicted => {
                log::debug!(
                    "execution {}: the kernel's record was evicted",
                    self.msg_id()
                );
                Err(Stop::Lost { missing: None })
            }
            Replay::Known {
                lost_below,
                upto,
                more,
                ref messages,
            } => {
                log::debug!(
                    "execution {}: replay chunk of {} message(s) up to {upto}, lost below \
                     {lost_below}, more: {more}",
                    self.msg_id(),
                    messages.len()
                );
                let ready = self.order.merge(&self.request.msg_id, &record);
                if more {
                    self.need_replay = true;
                } else {
                    self.record_final = true;
                }
                Ok(ready)
            }
        }
    }

    fn on_reconnected(&mut self) {
        self.reconnected = true;
        if self.resend_on_reconnect && !self.kernel.hooked() {
            log::debug!(
                "execution {}: sending it again after a reconnect",
                self.msg_id()
            );
            let copy = self.request.renewed();
            self.copies.push(copy.msg_id.clone());
            let _ = self.resend(copy);
            return;
        }
        match &self.replay {
            Some(pending) if self.kernel.hooked() => {
                let probe = probe_request(self.kernel.conn.session_id());
                let ids = (probe.msg_id.clone(), pending.msg_id.clone());
                if self.resend(probe).is_ok() {
                    self.probes.push(ids);
                }
            }
            _ => self.need_replay = true,
        }
    }

    /// The outstanding replay's answer will not come: ask again.
    fn replay_lost(&mut self) {
        self.settle_replay();
        self.need_replay = true;
    }

    /// Forgets the outstanding replay and the probes that check on it.
    fn settle_replay(&mut self) {
        if let Some(pending) = self.replay.take() {
            self.probes
                .retain(|(_, checked)| *checked != pending.msg_id);
        }
    }

    fn ask_for_replay(&mut self) {
        if !self.need_replay || self.replay.is_some() || !self.kernel.hooked() {
            return;
        }
        let request = replay_request(
            self.kernel.conn.session_id(),
            &self.request.msg_id,
            self.order.next(),
            REPLAY_CHUNK,
        );
        let msg_id = request.msg_id.clone();
        if self.resend(request).is_ok() {
            self.need_replay = false;
            self.replay = Some(PendingReplay { msg_id });
        }
    }

    /// Sends a replay, a probe or a copy of the request, all after a reconnect: the waiter is
    /// woken for each of their messages.
    fn resend(&mut self, msg: Outgoing) -> Result<(), Stop> {
        if self.owner != Some(std::thread::current().id()) {
            self.owner = None;
        }
        self.kernel
            .conn
            .send_on(msg, self.tx.clone(), WakeOn::Output)
            .map_err(|_| Stop::Failed(self.kernel.conn.failure().unwrap_or(Failure::Closed)))
    }

    /// Interrupts the kernel (the HTTP call bounded by `grace`) and gives the execution `grace`
    /// to end: the interrupt-then-settle every consumer uses to stop an execution.
    pub(crate) fn interrupt(&mut self, grace: Duration) {
        self.kernel.interrupt(grace);
        self.settle(grace);
    }

    /// Waits for the execution's next messages under its `deadline`, the loop every consumer
    /// stopping an execution shares: when the deadline passes the kernel is interrupted
    /// ([`Driver::interrupt`]) and the execution has `grace` to end; once a settling period
    /// (an interrupt's, or one from [`Driver::settle`]) passes unended, that is reported. The
    /// deadline counts only while no settling period runs. `until` bounds this one wait.
    pub(crate) fn wait(
        &mut self,
        deadline: Option<Instant>,
        until: Option<Instant>,
        grace: Duration,
    ) -> Result<Waited, Stop> {
        let guard = self.settle_until.or(deadline);
        let wait_until = match (until, guard) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match self.next(wait_until) {
            Ok(ready) => Ok(Waited::Ready(ready)),
            Err(Stop::TimedOut) => {
                let now = Instant::now();
                Ok(match self.settle_until {
                    Some(settle) if now >= settle => Waited::Unsettled,
                    None if deadline.is_some_and(|d| now >= d) => {
                        log::debug!(
                            "execution {} outlived its deadline; interrupting kernel {}",
                            self.msg_id(),
                            self.kernel.id
                        );
                        self.interrupt(grace);
                        Waited::Interrupted
                    }
                    _ => Waited::Paused,
                })
            }
            Err(stop) => Err(stop),
        }
    }

    /// Gives the execution `grace` to end by itself, from now (an interrupt sent after it ended
    /// would land in the next execution).
    pub(crate) fn settle(&mut self, grace: Duration) {
        self.settle_until = Some(Instant::now() + grace);
    }

    /// When the current settling period ends, if one was started.
    pub(crate) fn settle_until(&self) -> Option<Instant> {
        self.settle_until
    }

    /// Stops routing this execution's messages, and those of its replays and probes.
    pub(crate) fn abandon(&mut self) {
        self.kernel.conn.forget(&self.request.msg_id);
        for copy in self.copies.drain(..) {
            self.kernel.conn.forget(&copy);
        }
        if let Some(pending) = self.replay.take() {
            self.kernel.conn.forget(&pending.msg_id);
        }
        for (probe, _) in self.probes.drain(..) {
            self.kernel.conn.forget(&probe);
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.finished()
            || self.replay.is_some()
            || !self.probes.is_empty()
            || !self.copies.is_empty()
        {
            self.abandon();
        }
    }
}

impl Stop {
    /// The error for a stop; a timeout is reported as `phase` after `after`.
    pub(crate) fn into_error(
        self,
        kernel_id: &str,
        (phase, after): (TimeoutPhase, Duration),
        partial: impl FnOnce() -> Execution,
    ) -> Error {
        match self {
            Stop::TimedOut => Error::Timeout { phase, after },
            Stop::Failed(f) => f.to_error(),
            Stop::Lost { missing } => Error::OutputLost {
                missing,
                partial: Box::new(partial()),
            },
            Stop::NeverArrived { sends } => Error::ConnectionLost {
                kernel_id: kernel_id.to_string(),
                source: Some(
                    format!(
                        "the connection broke each of the {sends} times the request was sent, \
                         before the kernel received it (does the server reject messages this \
                         large?)"
                    )
                    .into(),
                ),
            },
        }
    }
}
