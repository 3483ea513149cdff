//! Tearing a sandbox down: its kernels within one close budget, then its backend; and when
//! the last clone drops.

use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, TimeoutPhase};
use crate::jupyter::delivery::Failure;
use crate::jupyter::rest;
use crate::jupyter::state::ConnectionState;
use crate::kernel::Kernel;
use crate::net::Http;
use crate::sync::lock;

use super::{Inner, Kernels};

impl Inner {
    pub(super) fn kill(&self) -> Result<(), Error> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        log::debug!("closing sandbox {}", self.backend.get().sandbox_id());
        let deadline = Instant::now() + self.config.timeouts.close;
        let mut kernels: Vec<Arc<Kernel>> = {
            let mut k = self.lock_kernels();
            k.order.clear();
            k.defaults.clear();
            let k = &mut *k;
            let listed = k.by_id.drain().map(|(_, v)| v);
            listed.chain(k.preparing.drain().map(|(_, v)| v)).collect()
        };
        kernels.extend(self.system.drain());
        // Every worker is told first, so they all wind down within the one budget.
        for kernel in &kernels {
            kernel.conn.request_close();
        }
        let mut first_err = None;
        for kernel in &kernels {
            // A worker busy with a reconnect attempt stops when the attempt ends, by itself.
            if kernel.state() == ConnectionState::Connected && !kernel.conn.wait_closed(deadline) {
                first_err.get_or_insert(Error::Timeout {
                    phase: TimeoutPhase::Close,
                    after: self.config.timeouts.close,
                });
            }
        }
        // A kernel whose connection was given up on sits behind a link that did not come back
        // within the reconnect budget: asking again would only spend the close budget.
        let (gone, reachable): (Vec<_>, Vec<_>) = kernels
            .into_iter()
            .partition(|k| k.conn.failure().is_some_and(|f| f != Failure::Closed));
        for kernel in &gone {
            log::debug!(
                "kernel {}: connection lost; not shutting it down",
                kernel.id
            );
        }
        if !self.backend.get().owns_server()
            && let Err(e) = self.shutdown_kernels(&reachable, deadline)
        {
            first_err.get_or_insert(e);
        }
        if let Err(e) = self.backend.get().shutdown() {
            first_err.get_or_insert(e);
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Shuts kernels down on a server the sandbox does not own, all at once, by `deadline`.
    pub(super) fn shutdown_kernels(
        &self,
        kernels: &[Arc<Kernel>],
        deadline: Instant,
    ) -> Result<(), Error> {
        if kernels.is_empty() {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let http = Arc::new(self.http_within(left));
        let (tx, rx) = crossbeam_channel::unbounded();
        for kernel in kernels {
            let (http, tx, id) = (http.clone(), tx.clone(), kernel.id.clone());
            // Each call is bounded by `http`'s timeout; a thread that outlives the deadline
            // ends by itself and its result is dropped.
            let spawned = std::thread::Builder::new()
                .name("e2b-kernel-shutdown".into())
                .spawn(move || {
                    let result = rest::shutdown_kernel(&http, &id);
                    let _ = tx.send((id, result));
                });
            if let Err(e) = spawned {
                log::debug!("could not start a shutdown thread: {e}");
            }
        }
        drop(tx);
        let budget_spent = || Error::Timeout {
            phase: TimeoutPhase::Close,
            after: self.config.timeouts.close,
        };
        let mut first_err = None;
        let mut done = 0;
        while done < kernels.len() {
            match rx.recv_deadline(deadline) {
                Ok((id, result)) => {
                    done += 1;
                    if let Err(e) = result {
                        log::debug!("could not shut down kernel {id}: {e}");
                        // A call's request timeout is what was left of the close budget, so on
                        // a busy machine a call can notice the budget is spent before this loop.
                        first_err.get_or_insert_with(|| match e {
                            Error::Timeout {
                                phase: TimeoutPhase::Request,
                                ..
                            } => budget_spent(),
                            e => e,
                        });
                    }
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    log::warn!(
                        "{} kernel(s) not shut down within the close budget",
                        kernels.len() - done
                    );
                    first_err.get_or_insert_with(budget_spent);
                    break;
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    pub(super) fn lock_kernels(&self) -> MutexGuard<'_, Kernels> {
        lock(&self.kernels)
    }

    /// A client for calls that must end within `limit` (teardown, interrupts).
    pub(super) fn http_within(&self, limit: Duration) -> Http {
        crate::kernel::http_within(self.backend.get().jupyter(), &self.config.connection, limit)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.kill() {
            log::warn!("closing sandbox {}: {e}", self.backend.get().sandbox_id());
        }
    }
}
