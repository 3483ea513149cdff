//! [`E2bSandbox`]: what only an E2B sandbox has, reached through `Sandbox::as_e2b`.

use std::time::Duration;

use crate::backend::e2b::{E2bBackend, MetricsQuery, SandboxAccess, SandboxInfo, SandboxMetric};
use crate::error::Error;

/// The E2B side of a sandbox: its lifetime, its control-plane record, and whether closing the
/// handle kills it. Get one with [`Sandbox::as_e2b`](crate::Sandbox::as_e2b).
#[derive(Debug, Clone, Copy)]
pub struct E2bSandbox<'a> {
    backend: &'a E2bBackend,
}

impl<'a> E2bSandbox<'a> {
    pub(crate) fn new(backend: &'a E2bBackend) -> Self {
        E2bSandbox { backend }
    }

    /// Sets how long the sandbox lives from now (E2B's `set_timeout`), apart from the
    /// request deadlines in [`Timeouts`](crate::Timeouts).
    ///
    /// # Errors
    ///
    /// [`Error::SandboxNotFound`] when the sandbox is gone; [`Error::Authentication`],
    /// [`Error::RateLimited`], [`Error::Http`] or [`Error::Transport`] from the control plane.
    pub fn set_timeout(&self, lifetime: Duration) -> Result<(), Error> {
        self.backend.set_timeout(lifetime)
    }

    /// The sandbox as the control plane sees it now.
    ///
    /// # Errors
    ///
    /// As for [`E2bSandbox::set_timeout`].
    pub fn info(&self) -> Result<SandboxInfo, Error> {
        self.backend.info()
    }

    /// Samples of the sandbox's resource use (E2B's `get_metrics`): CPU, memory and disk.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] in debug mode (no control plane); as for
    /// [`E2bSandbox::set_timeout`].
    pub fn metrics(&self, query: &MetricsQuery) -> Result<Vec<SandboxMetric>, Error> {
        self.backend.metrics(query)
    }

    /// Whether closing (or dropping the last clone of) the handle kills the sandbox: `true`
    /// for a created sandbox and `false` for one connected to by id, until changed. `false`
    /// detaches: the sandbox lives on until its lifetime ends, and only the kernels this
    /// handle started are shut down.
    pub fn set_kill_on_close(&self, kill: bool) {
        self.backend.set_kill_on_close(kill);
    }

    /// See [`E2bSandbox::set_kill_on_close`].
    pub fn kills_on_close(&self) -> bool {
        self.backend.kills_on_close()
    }

    /// What the control plane returned when the sandbox was created or connected to (ids,
    /// envd version, tokens as [`Secret`](crate::Secret)s).
    pub fn access(&self) -> &'a SandboxAccess {
        self.backend.access()
    }
}
