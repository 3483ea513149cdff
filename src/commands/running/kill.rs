//! Killing a command: interrupts its kernel until the runner turns that into a kill of the
//! process group, then kills it from another kernel if it did not; a follower's or a
//! background command's by pid.

use std::time::Instant;

use serde_json::json;

use super::Running;
use super::records::{Ending, Fault};
use crate::commands::{REINTERRUPT, SETTLE};
use crate::error::{Error, TimeoutPhase};
use crate::jupyter::rest;

impl Running<'_> {
    pub(in crate::commands) fn kill(&mut self) -> Result<bool, Error> {
        if self.ending.is_some() {
            return Ok(false);
        }
        if self.follower || self.background {
            // A background command's runner ignores interrupts (see runner.py): by pid.
            return self.kill_by_pid();
        }
        self.kill_requested = true;
        let mut deadline = self.settle(SETTLE);
        let mut fallback = self.pid;
        self.killing = true;
        while self.ending.is_none() {
            if Instant::now() >= deadline {
                if let Some(pid) = fallback.take() {
                    // The kernel did not turn the interrupt into a kill in time: kill the
                    // process group from another kernel, then give this one time to report.
                    log::warn!(
                        "command {} ignored the interrupt; killing pid {pid} directly",
                        self.msg_id
                    );
                    self.kill_from_elsewhere(pid);
                    deadline = self.settle(SETTLE);
                    continue;
                }
                log::warn!("command {} did not end after a kill", self.msg_id);
                let after = self.timeout.unwrap_or(SETTLE);
                self.end(Ending::Failed(Fault::Timeout(after)), false);
                break;
            }
            if let Some(kernel) = self.kernel()
                && let Err(e) = rest::interrupt_kernel(self.sandbox.http(), &kernel.id)
            {
                log::debug!("interrupting kernel {} to kill a command: {e}", kernel.id);
                if e.is_fatal() || matches!(e, Error::KernelNotFound { .. }) {
                    self.killing = false;
                    self.end(Ending::Failed(Fault::Closed), false);
                    return Err(e);
                }
            }
            self.pump(Some((Instant::now() + REINTERRUPT).min(deadline)));
        }
        self.killing = false;
        match &self.ending {
            Some(Ending::Exited(_)) => Ok(true),
            Some(Ending::Failed(f)) => Err(f.to_error(&self.stdout, &self.stderr)),
            None => Ok(true),
        }
    }

    /// [`Running::kill`] by pid, from another kernel: for a follower (the command runs in
    /// another kernel; the follower then sees its exit in the log) and for a background
    /// command (whose runner outlives interrupts).
    fn kill_by_pid(&mut self) -> Result<bool, Error> {
        let Some(pid) = self.pid else {
            return Ok(false);
        };
        crate::commands::Commands::new(self.sandbox.clone()).kill(pid)?;
        let deadline = Instant::now() + SETTLE;
        self.killing = true;
        while self.ending.is_none() && Instant::now() < deadline {
            self.pump(Some(deadline));
        }
        self.killing = false;
        match &self.ending {
            Some(Ending::Exited(_)) => Ok(true),
            Some(Ending::Failed(f)) => Err(f.to_error(&self.stdout, &self.stderr)),
            None => {
                log::warn!("command {pid} did not report its end after a kill");
                self.end(Ending::Failed(Fault::Timeout(SETTLE)), false);
                Err(Error::Timeout {
                    phase: TimeoutPhase::Command,
                    after: SETTLE,
                })
            }
        }
    }

    /// `killpg(pid, SIGKILL)` run in another private kernel.
    pub(super) fn kill_from_elsewhere(&self, pid: u32) {
        let op = json!({"op": "kill", "pid": pid, "group": true, "path": format!("pid {pid}")});
        if let Err(e) = crate::kernel::helper::call(&self.sandbox, op) {
            log::warn!("could not kill pid {pid} from another kernel: {e}");
        }
    }
}
