//! The sandbox's private kernels that run commands, apart from user contexts.

use std::sync::{Arc, Mutex, MutexGuard};

use super::MAX_IDLE;
use crate::error::Error;
use crate::jupyter::rest;
use crate::kernel::Kernel;
use crate::sandbox::Sandbox;

/// The sandbox's private kernels for commands: idle ones ready for the next command, and
/// every one started, so closing the sandbox can shut them all down.
#[derive(Debug, Default)]
pub(crate) struct SystemKernels {
    inner: Mutex<Pool>,
}

#[derive(Debug, Default)]
struct Pool {
    idle: Vec<Arc<Kernel>>,
    /// Kernels still running a background command whose handle was dropped.
    detached: Vec<Arc<Kernel>>,
    all: Vec<Arc<Kernel>>,
    closed: bool,
}

impl SystemKernels {
    fn lock(&self) -> MutexGuard<'_, Pool> {
        crate::sync::lock(&self.inner)
    }

    /// Every kernel, for the sandbox to close; later acquires fail with [`Error::Closed`].
    pub(crate) fn drain(&self) -> Vec<Arc<Kernel>> {
        let mut pool = self.lock();
        pool.closed = true;
        pool.idle.clear();
        pool.detached.clear();
        std::mem::take(&mut pool.all)
    }

    /// An idle kernel, or a new one.
    pub(crate) fn acquire(&self, sandbox: &Sandbox) -> Result<Arc<Kernel>, Error> {
        loop {
            let mut pool = self.lock();
            if pool.closed {
                return Err(Error::Closed);
            }
            let Some(kernel) = pool.idle.pop() else { break };
            if kernel.conn.failure().is_none() {
                return Ok(kernel);
            }
            pool.all.retain(|k| !Arc::ptr_eq(k, &kernel));
            drop(pool);
            retire(sandbox, &kernel);
        }
        if let Some(kernel) = self.reclaim(sandbox) {
            return Ok(kernel);
        }
        let kernel = sandbox.start_system_kernel()?;
        log::debug!("started system kernel {} for commands", kernel.id);
        let mut pool = self.lock();
        if pool.closed {
            drop(pool);
            retire(sandbox, &kernel);
            return Err(Error::Closed);
        }
        pool.all.push(kernel.clone());
        Ok(kernel)
    }

    /// Keeps a kernel whose background command outlived its handle, for [`Self::reclaim`].
    pub(crate) fn detach(&self, kernel: Arc<Kernel>) {
        let mut pool = self.lock();
        if !pool.closed {
            pool.detached.push(kernel);
        }
    }

    /// A detached kernel whose command has ended: the server reports it idle. One REST call
    /// per detached kernel, and only when no idle kernel is left.
    fn reclaim(&self, sandbox: &Sandbox) -> Option<Arc<Kernel>> {
        let detached = std::mem::take(&mut self.lock().detached);
        let mut found = None;
        let mut busy = Vec::new();
        for kernel in detached {
            if found.is_none()
                && kernel.conn.failure().is_none()
                && rest::kernel_execution_state(sandbox.http(), &kernel.id).as_deref()
                    == Some("idle")
            {
                log::debug!(
                    "reusing system kernel {} after its background command",
                    kernel.id
                );
                found = Some(kernel);
            } else {
                busy.push(kernel);
            }
        }
        let mut pool = self.lock();
        if pool.closed {
            return None;
        }
        pool.detached.extend(busy);
        found
    }

    /// Gives a kernel back: kept when `clean` and the pool has room, else shut down.
    pub(crate) fn release(&self, sandbox: &Sandbox, kernel: Arc<Kernel>, clean: bool) {
        let mut pool = self.lock();
        if pool.closed {
            return;
        }
        if clean && pool.idle.len() < MAX_IDLE && kernel.conn.failure().is_none() {
            pool.idle.push(kernel);
            return;
        }
        pool.all.retain(|k| !Arc::ptr_eq(k, &kernel));
        drop(pool);
        retire(sandbox, &kernel);
    }
}

fn retire(sandbox: &Sandbox, kernel: &Kernel) {
    log::debug!("shutting down system kernel {}", kernel.id);
    let _ = kernel.conn.close(sandbox.config().timeouts.close);
    if let Err(e) = rest::shutdown_kernel(sandbox.http(), &kernel.id) {
        log::debug!("could not shut down system kernel {}: {e}", kernel.id);
    }
}
