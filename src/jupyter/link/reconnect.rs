//! The outage after a cut: reconnect attempts under the [`ReconnectPolicy`] (through
//! [`Attempts`]), liveness probes of the backend, and which failure ends the link when the
//! attempts run out.
//!
//! [`ReconnectPolicy`]: crate::ReconnectPolicy

use std::time::{Duration, Instant};

use super::Link;
use crate::error::Error;
use crate::jupyter::delivery::Failure;
use crate::jupyter::liveness::Liveness;
use crate::jupyter::state::{CloseReason, ConnectionState, StateCell};
use crate::jupyter::websocket::{Limits, Socket};
use crate::net::Attempts;

/// Least time between two liveness probes of the backend during one outage.
pub(super) const PROBE_INTERVAL: Duration = Duration::from_millis(200);

/// Book-keeping for one period of being disconnected.
pub(super) struct Outage {
    retry: Attempts,
    pub(super) next_attempt: Instant,
    last_probe: Option<Instant>,
    last_cause: String,
}

/// How a reconnect attempt ended.
pub(crate) enum Reconnect {
    /// None was due, or it failed and another comes later.
    Waiting,
    /// Connected and adopted again.
    Connected { attempt: u32, took: Duration },
    /// Connected, but the socket could not be registered: a new cut with this cause.
    Unregistered(String),
    /// The server does not know the kernel or terminal (any more).
    NotFound,
    /// The link is over with this failure; pass it to [`Link::give_up`].
    GiveUp(Failure),
}

impl Link {
    /// Whether a reconnect attempt is due now.
    pub(crate) fn reconnect_due(&self) -> bool {
        self.outage
            .as_ref()
            .is_some_and(|o| Instant::now() >= o.next_attempt)
    }

    /// Whether the link is between a cut and a reconnect.
    pub(crate) fn in_outage(&self) -> bool {
        self.outage.is_some()
    }

    /// Reconnects so far.
    pub(crate) fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// Drops the socket of a connection found broken.
    pub(crate) fn cut(&mut self, cause: &str) {
        self.drop_socket();
        log::debug!("{}: connection lost: {cause}", self.names.label);
    }

    /// Starts reconnecting after a [`Link::cut`]; `Err` is the failure to give up with when
    /// the policy allows no reconnects.
    pub(crate) fn begin_outage(&mut self, cause: String, state: &StateCell) -> Result<(), Failure> {
        let policy = &self.config.reconnect;
        if policy.max_attempts == 0 {
            return Err(self.unreachable(cause));
        }
        self.outage = Some(Outage {
            retry: Attempts::new(policy),
            next_attempt: Instant::now(),
            last_probe: None,
            last_cause: cause,
        });
        state.set(ConnectionState::Reconnecting { attempt: 1 });
        Ok(())
    }

    /// Makes one attempt, if one is pending, with `connect` (given the limits and the largest
    /// message size); a socket it returns is adopted.
    pub(crate) fn reconnect(
        &mut self,
        state: &StateCell,
        connect: impl FnOnce(Limits, usize) -> Result<Socket, Error>,
    ) -> Reconnect {
        let Some(outage) = self.outage.as_mut() else {
            return Reconnect::Waiting;
        };
        let attempt = outage.retry.failures() + 1;
        state.set(ConnectionState::Reconnecting { attempt });
        let left = outage.retry.left().max(Duration::from_millis(50));
        let timeout = self.config.timeouts.connect.min(left);
        match connect(Limits::reconnect(timeout), self.config.max_message_size) {
            Ok(socket) => {
                let took = outage.retry.started().elapsed();
                self.outage = None;
                if let Err(e) = self.adopt(socket, state) {
                    return Reconnect::Unregistered(format!("register failed: {e}"));
                }
                self.reconnects += 1;
                Reconnect::Connected { attempt, took }
            }
            Err(e) => self.attempt_failed(e, attempt),
        }
    }

    fn attempt_failed(&mut self, e: Error, attempt: u32) -> Reconnect {
        let cause = e.report();
        log::debug!(
            "{}: reconnect attempt {attempt} failed: {cause}",
            self.names.label
        );
        match e {
            Error::Authentication { status, endpoint } => {
                return Reconnect::GiveUp(Failure::Unauthorized { status, endpoint });
            }
            // Each link's route yields only its own kind.
            Error::KernelNotFound { .. } | Error::TerminalNotFound { .. } => {
                return Reconnect::NotFound;
            }
            _ => {}
        }
        let Some(outage) = self.outage.as_mut() else {
            return Reconnect::Waiting;
        };
        outage.last_cause = cause;
        // The budget covers attempts and probes alike: both start only within it, and each
        // attempt is cut to what is left of it.
        let Some(next_attempt) = outage.retry.failed() else {
            let cause = outage.last_cause.clone();
            return Reconnect::GiveUp(self.unreachable(cause));
        };
        outage.next_attempt = next_attempt;
        let now = Instant::now();
        let probe_due = outage
            .last_probe
            .is_none_or(|t| now.duration_since(t) >= PROBE_INTERVAL);
        if probe_due {
            outage.last_probe = Some(now);
            match self.backend.probe() {
                Liveness::Gone => return Reconnect::GiveUp(self.sandbox_gone()),
                // Nothing answers until someone resumes it: fail now, not at the budget's end.
                Liveness::Paused => return Reconnect::GiveUp(self.sandbox_paused()),
                Liveness::Alive | Liveness::Unknown => {}
            }
        }
        Reconnect::Waiting
    }

    /// Asks the backend whether the sandbox is gone.
    pub(crate) fn sandbox_is_gone(&self) -> bool {
        self.backend.probe() == Liveness::Gone
    }

    pub(crate) fn sandbox_gone(&self) -> Failure {
        Failure::SandboxGone {
            sandbox_id: self.backend.sandbox_id().to_string(),
        }
    }

    fn sandbox_paused(&self) -> Failure {
        Failure::SandboxPaused {
            sandbox_id: self.backend.sandbox_id().to_string(),
        }
    }

    /// The failure for a connection that cannot be re-established: `SandboxGone` when the
    /// backend says the sandbox is gone, otherwise `Lost`. Where [`Names::reuse_recent_probe`]
    /// allows, a probe made in the last [`PROBE_INTERVAL`] already said the sandbox was there,
    /// so none is made again.
    ///
    /// [`Names::reuse_recent_probe`]: super::Names::reuse_recent_probe
    fn unreachable(&self, cause: String) -> Failure {
        let probed_just_now = self.names.reuse_recent_probe
            && self
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
            Liveness::Paused => self.sandbox_paused(),
            _ => Failure::Lost {
                kernel_id: self.names.lost_id.clone(),
                cause,
            },
        }
    }

    /// Ends the link with `failure`: the socket is dropped and no reconnect follows. Returns
    /// the reason to publish in the state.
    pub(crate) fn give_up(&mut self, failure: &Failure) -> CloseReason {
        self.drop_socket();
        self.outage = None;
        log::debug!("{}: giving up: {failure:?}", self.names.label);
        match failure {
            Failure::SandboxGone { .. } => CloseReason::SandboxGone,
            Failure::KernelGone { .. } => CloseReason::KernelGone,
            Failure::Unauthorized { .. } => CloseReason::Unauthorized,
            Failure::Closed => CloseReason::Requested,
            _ => CloseReason::GaveUp,
        }
    }

    /// Ends the link without a failure (the far end is over): no reconnect follows.
    pub(crate) fn end(&mut self) {
        self.outage = None;
        self.drop_socket();
    }
}
