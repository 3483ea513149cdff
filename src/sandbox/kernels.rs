//! The sandbox's kernels: the registry of contexts, default contexts started once per
//! language, and the set-up every kernel gets before its first execution.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::context::Context;
use crate::error::Error;
use crate::jupyter::rest::{self, KernelSpecs};
use crate::kernel::pool::{KernelPool, KernelSource};
use crate::kernel::{Kernel, spec};
use crate::net::Http;
use crate::sync::lock;

use super::{Kernels, Sandbox, SandboxConfig};

impl Sandbox {
    pub(crate) fn http(&self) -> &Http {
        &self.inner.http
    }

    /// A client whose calls end within `limit` (teardown).
    pub(crate) fn http_within(&self, limit: Duration) -> Http {
        self.inner.http_within(limit)
    }

    /// The backend, for connections that outlive a borrow of the sandbox.
    pub(crate) fn backend_shared(&self) -> Arc<dyn crate::backend::Backend> {
        self.inner.backend.shared()
    }

    pub(crate) fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    pub(crate) fn ensure_open(&self) -> Result<(), Error> {
        if self.inner.closed.load(Ordering::SeqCst) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    pub(crate) fn kernel_of(&self, context: &Context) -> Result<Arc<Kernel>, Error> {
        self.ensure_open()?;
        self.inner
            .lock_kernels()
            .by_id
            .get(&context.id)
            .cloned()
            .ok_or_else(|| Error::KernelNotFound {
                kernel_id: context.id.clone(),
            })
    }

    pub(crate) fn default_kernel_for(&self, language: &str) -> Result<Arc<Kernel>, Error> {
        let lang = spec::normalize_language(language);
        let gate = {
            self.ensure_open()?;
            let mut k = self.inner.lock_kernels();
            if let Some(kernel) = k.default_for(&lang) {
                return Ok(kernel);
            }
            k.starting.entry(lang.clone()).or_default().clone()
        };
        let _one_start = lock(&gate);
        {
            self.ensure_open()?;
            if let Some(kernel) = self.inner.lock_kernels().default_for(&lang) {
                return Ok(kernel);
            }
        }
        let kernel = self.start_kernel(&lang, None, &[])?;
        self.register(kernel, Some(lang))
    }

    /// Lists a started kernel, as the default of `default_for` when given. Fails with
    /// [`Error::Closed`] and shuts the kernel down when the sandbox was killed meanwhile.
    pub(super) fn register(
        &self,
        kernel: Arc<Kernel>,
        default_for: Option<String>,
    ) -> Result<Arc<Kernel>, Error> {
        self.track(&kernel, |k| {
            if let Some(lang) = default_for {
                k.defaults.insert(lang, kernel.id.clone());
            }
            k.order.push(kernel.id.clone());
            k.by_id.insert(kernel.id.clone(), kernel.clone());
        })?;
        Ok(kernel)
    }

    /// Records `kernel` in the registry with `record`, unless the sandbox was killed: then
    /// shuts the kernel down and fails with [`Error::Closed`]. Checked under the registry lock,
    /// which kill() takes after setting `closed`: either kill() finds the kernel, or this sees
    /// `closed`.
    fn track(&self, kernel: &Kernel, record: impl FnOnce(&mut Kernels)) -> Result<(), Error> {
        let mut k = self.inner.lock_kernels();
        if self.inner.closed.load(Ordering::SeqCst) {
            drop(k);
            log::debug!("kernel {} started after the sandbox closed", kernel.id);
            self.discard(kernel);
            return Err(Error::Closed);
        }
        record(&mut k);
        Ok(())
    }

    /// Stops a kernel nobody can use: its worker, and the kernel on the server.
    pub(super) fn discard(&self, kernel: &Kernel) {
        let close = self.inner.config.timeouts.close;
        let _ = kernel.conn.close(close);
        if let Err(e) = rest::shutdown_kernel(&self.inner.http_within(close), &kernel.id) {
            log::debug!("could not shut down kernel {}: {e}", kernel.id);
        }
    }

    pub(super) fn kernel_specs(&self) -> Result<&KernelSpecs, Error> {
        if let Some(s) = self.inner.specs.get() {
            return Ok(s);
        }
        let specs = rest::kernel_specs(&self.inner.http)?;
        Ok(self.inner.specs.get_or_init(|| specs))
    }

    pub(super) fn start_kernel(
        &self,
        language: &str,
        cwd: Option<&str>,
        envs: &[(String, String)],
    ) -> Result<Arc<Kernel>, Error> {
        self.ensure_open()?;
        let (spec, lang) = spec::spec_for(self.kernel_specs()?, language)?;
        let mut kernel = Kernel::start(
            &self.inner.http,
            &self.inner.backend.shared(),
            &spec,
            &lang,
            &self.inner.config.connection,
        )?;
        kernel.cwd = cwd.map(str::to_string);
        kernel.envs = envs.to_vec().into();
        let kernel = Arc::new(kernel);
        // Listed while it is set up, so that kill() can stop a set-up under way.
        self.track(&kernel, |k| {
            k.preparing.insert(kernel.id.clone(), kernel.clone());
        })?;
        let prepared = self.prepare(&kernel);
        self.inner.lock_kernels().preparing.remove(&kernel.id);
        if let Err(e) = prepared {
            self.discard(&kernel);
            if self.inner.closed.load(Ordering::SeqCst) {
                log::debug!("kernel {}: set-up ended by close: {e}", kernel.id);
                return Err(Error::Closed);
            }
            return Err(e);
        }
        Ok(kernel)
    }

    /// Applies the sandbox's env vars, the context's own, and its cwd.
    pub(super) fn prepare(&self, kernel: &Arc<Kernel>) -> Result<(), Error> {
        let envs: Vec<(String, String)> = self
            .inner
            .config
            .envs
            .iter()
            .chain(&kernel.envs)
            .cloned()
            .collect();
        kernel.set_up(&envs, self.inner.config.timeouts.request)
    }

    /// Redoes set-up after the kernel restarted by itself (it died and the server revived it).
    /// Also runs a restore of per-execution env vars that an earlier execution could not
    /// confirm.
    pub(crate) fn ensure_prepared(&self, kernel: &Arc<Kernel>) -> Result<(), Error> {
        if kernel.needs_prepare() {
            log::debug!("kernel {} restarted; setting it up again", kernel.id);
            return self.prepare_restarted(kernel);
        }
        kernel.finish_pending_restore(self.inner.config.timeouts.request)
    }

    /// Set-up of a kernel that restarted (on request or by itself). The server's iopub
    /// subscription to the new process joins later than shell, so set-up sent right away
    /// could lose its `idle` and time out: wait until the kernel answers on both first.
    pub(super) fn prepare_restarted(&self, kernel: &Arc<Kernel>) -> Result<(), Error> {
        kernel.wait_ready(self.inner.config.timeouts.kernel_start)?;
        self.prepare(kernel)
    }

    /// Restarts a kernel on the server and sets it up again (hook, env vars, cwd).
    pub(crate) fn restart_kernel(&self, kernel: &Arc<Kernel>) -> Result<(), Error> {
        rest::restart_kernel(&self.inner.http, &kernel.id)?;
        self.prepare_restarted(kernel)
    }
}

/// The sandbox's private kernels (commands, file operations, watchers) come from its pool.
impl KernelSource for Sandbox {
    fn pool(&self) -> &KernelPool {
        &self.inner.system
    }

    fn rest(&self) -> &Http {
        &self.inner.http
    }

    /// A Python kernel set up like a context (hook, sandbox env vars) but not listed as one.
    fn start_private(&self) -> Result<Arc<Kernel>, Error> {
        self.start_kernel("python", None, &[])
    }

    fn prepare(&self, kernel: &Arc<Kernel>) -> Result<(), Error> {
        self.ensure_prepared(kernel)
    }

    fn close_timeout(&self) -> Duration {
        self.inner.config.timeouts.close
    }

    fn request_timeout(&self) -> Duration {
        self.inner.config.timeouts.request
    }
}

pub(super) fn context_of(kernel: &Kernel) -> Context {
    Context {
        id: kernel.id.clone(),
        language: kernel.language.clone(),
        cwd: kernel.cwd.clone(),
    }
}
