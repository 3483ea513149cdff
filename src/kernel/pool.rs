//! The sandbox's private kernels, apart from user contexts: the ones that run commands, file
//! operations and watchers. A caller borrows one as a [`Lease`], which gives it back when
//! dropped: to the pool when the caller said the kernel is clean, else the kernel is shut down.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

use crate::error::Error;
use crate::jupyter::rest;
use crate::kernel::Kernel;
use crate::kernel::module::PyModule;
use crate::net::Http;

/// Idle private kernels kept for the next caller.
const MAX_IDLE: usize = 2;

/// What the pool needs from the sandbox that owns it. The facade implements it, so this layer
/// never names the facade; a [`Lease`] keeps a clone (a cheap handle) to give its kernel back.
pub(crate) trait KernelSource: Clone {
    /// The pool of this source's private kernels.
    fn pool(&self) -> &KernelPool;
    /// The server's REST client.
    fn rest(&self) -> &Http;
    /// Starts a private Python kernel, set up like a context but not listed as one.
    fn start_private(&self) -> Result<Arc<Kernel>, Error>;
    /// Sets a kernel up again if it restarted since, and runs a pending env var restore.
    fn prepare(&self, kernel: &Arc<Kernel>) -> Result<(), Error>;
    /// How long a retired kernel's connection may take to close.
    fn close_timeout(&self) -> Duration;
    /// How long one call in a private kernel may take.
    fn request_timeout(&self) -> Duration;
}

/// A source's private kernels: idle ones ready for the next lease, and every one started, so
/// closing the sandbox can shut them all down.
#[derive(Debug, Default)]
pub(crate) struct KernelPool {
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

impl KernelPool {
    fn lock(&self) -> MutexGuard<'_, Pool> {
        crate::sync::lock(&self.inner)
    }

    /// Every kernel, for the sandbox to close; later leases fail with [`Error::Closed`].
    pub(crate) fn drain(&self) -> Vec<Arc<Kernel>> {
        let mut pool = self.lock();
        pool.closed = true;
        pool.idle.clear();
        pool.detached.clear();
        std::mem::take(&mut pool.all)
    }

    /// An idle kernel, or a new one.
    fn acquire(&self, source: &impl KernelSource) -> Result<Arc<Kernel>, Error> {
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
            retire(source, &kernel);
        }
        if let Some(kernel) = self.reclaim(source) {
            return Ok(kernel);
        }
        let kernel = source.start_private()?;
        log::debug!("started private kernel {}", kernel.id);
        let mut pool = self.lock();
        if pool.closed {
            drop(pool);
            retire(source, &kernel);
            return Err(Error::Closed);
        }
        pool.all.push(kernel.clone());
        Ok(kernel)
    }

    /// Keeps a kernel whose background command outlived its handle, for [`Self::reclaim`].
    fn detach(&self, kernel: Arc<Kernel>) {
        let mut pool = self.lock();
        if !pool.closed {
            pool.detached.push(kernel);
        }
    }

    /// A detached kernel whose command has ended: the server reports it idle. One REST call
    /// per detached kernel, and only when no idle kernel is left.
    fn reclaim(&self, source: &impl KernelSource) -> Option<Arc<Kernel>> {
        let detached = std::mem::take(&mut self.lock().detached);
        let mut found = None;
        let mut busy = Vec::new();
        for kernel in detached {
            if found.is_none()
                && kernel.conn.failure().is_none()
                && rest::kernel_execution_state(source.rest(), &kernel.id).as_deref()
                    == Some("idle")
            {
                log::debug!(
                    "reusing private kernel {} after its background command",
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
    fn release(&self, source: &impl KernelSource, kernel: Arc<Kernel>, clean: bool) {
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
        retire(source, &kernel);
    }
}

fn retire(source: &impl KernelSource, kernel: &Kernel) {
    log::debug!("shutting down private kernel {}", kernel.id);
    let _ = kernel.conn.close(source.close_timeout());
    if let Err(e) = rest::shutdown_kernel(source.rest(), &kernel.id) {
        log::debug!("could not shut down private kernel {}: {e}", kernel.id);
    }
}

/// A private kernel borrowed from the pool, set up and ready. Dropping the lease gives the
/// kernel back: to the pool once [`Lease::clean`] said it is idle and reusable, else (the
/// default: a call that failed or timed out may have left its cell running) it is shut down.
#[derive(Debug)]
pub(crate) struct Lease<S: KernelSource> {
    source: S,
    kernel: Arc<Kernel>,
    give_back: GiveBack,
}

/// What dropping a [`Lease`] does with its kernel.
#[derive(Debug, Clone, Copy, PartialEq)]
enum GiveBack {
    Retire,
    Keep,
    Detach,
}

impl<S: KernelSource> Lease<S> {
    /// Borrows an idle private kernel of `source` (or starts one) and prepares it.
    pub(crate) fn take(source: &S) -> Result<Lease<S>, Error> {
        let lease = Lease {
            source: source.clone(),
            kernel: source.pool().acquire(source)?,
            give_back: GiveBack::Retire,
        };
        // On failure the lease drops as it is: the kernel is shut down.
        source.prepare(&lease.kernel)?;
        Ok(lease)
    }

    pub(crate) fn kernel(&self) -> &Arc<Kernel> {
        &self.kernel
    }

    /// Whether the kernel goes back to the pool (`true`: it is idle) or is shut down.
    pub(crate) fn clean(&mut self, clean: bool) {
        self.give_back = if clean {
            GiveBack::Keep
        } else {
            GiveBack::Retire
        };
    }

    /// Calls `function(*args)` of `module` in the kernel (see [`PyModule::call`]). After a
    /// call that ended the kernel goes back to the pool; after one that failed or timed out
    /// (its cell may still run) it is shut down.
    pub(crate) fn call(
        &mut self,
        module: &PyModule,
        function: &str,
        args: &[Value],
        timeout: Duration,
    ) -> Result<Value, Error> {
        let out = module.call(&self.kernel, function, args, timeout);
        self.clean(out.is_ok());
        out
    }

    /// Gives the kernel back while a background command still runs in it: the pool reuses it
    /// once the server reports it idle.
    pub(crate) fn detach(mut self) {
        self.give_back = GiveBack::Detach;
    }
}

impl<S: KernelSource> Drop for Lease<S> {
    fn drop(&mut self) {
        let pool = self.source.pool();
        let kernel = self.kernel.clone();
        match self.give_back {
            GiveBack::Detach => pool.detach(kernel),
            keep => pool.release(&self.source, kernel, keep == GiveBack::Keep),
        }
    }
}

/// Borrows a private kernel of `source`, calls `function(*args)` of `module` in it within the
/// request timeout, and gives the kernel back: the whole private-cell recipe.
pub(crate) fn call(
    source: &impl KernelSource,
    module: &PyModule,
    function: &str,
    args: &[Value],
) -> Result<Value, Error> {
    Lease::take(source)?.call(module, function, args, source.request_timeout())
}
