//! E2B cloud sandboxes: created on the E2B control plane, reached through the Jupyter server
//! the code-interpreter template runs on port 8888 (`https://8888-{sandboxID}.{domain}`).
//!
//! Who kills the sandbox: a sandbox this SDK **created** is killed when the handle closes, as
//! E2B's own SDKs do on leaving a `with` block. A sandbox it **connected to** by id belongs to
//! someone else, so closing the handle leaves it running and shuts down only the kernels this
//! handle started; [`E2bBackend::set_kill_on_close`] changes either default (detach a created
//! sandbox, or take over a connected one). Either way E2B kills a sandbox when its lifetime
//! runs out, so a leaked one costs at most that long.

mod api;
mod config;
mod handle;
mod models;
mod options;
mod transport;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::backend::{Backend, Liveness};
use crate::config::{Secret, Timeouts};
use crate::error::{Error, TimeoutPhase};
use crate::http::{Endpoint, Http, Method};

pub use api::E2bClient;
pub use config::{DEFAULT_DOMAIN, E2bConfig};
pub use handle::E2bSandbox;
pub use models::{
    ListQuery, SandboxAccess, SandboxInfo, SandboxLifecycle, SandboxPage, SandboxState,
};
pub use options::{DEFAULT_LIFETIME, DEFAULT_TEMPLATE, E2bOptions};

/// The header E2B's proxy wants when a sandbox's traffic is not public.
const TRAFFIC_TOKEN_HEADER: &str = "E2B-Traffic-Access-Token";

/// Jupyter's readiness is polled this often while a new sandbox starts.
const READY_POLL: Duration = Duration::from_millis(200);

/// A sandbox on E2B.
#[derive(Debug)]
pub(crate) struct E2bBackend {
    id: String,
    client: E2bClient,
    /// The same client bounded by the close deadline, for the probe and the kill on close.
    quick: E2bClient,
    endpoint: Endpoint,
    access: SandboxAccess,
    kill_on_close: AtomicBool,
    shut_down: AtomicBool,
}

impl E2bBackend {
    /// Creates a sandbox and waits until its Jupyter server answers (at most `timeouts.start`).
    /// If anything fails after the sandbox exists, it is killed before the error returns.
    pub(crate) fn create(
        config: &E2bConfig,
        options: &E2bOptions,
        timeouts: &Timeouts,
    ) -> Result<E2bBackend, Error> {
        let client = E2bClient::new(config)?;
        if let Some(url) = &config.sandbox_url {
            Endpoint::new(url)?;
        }
        let access = client.create(options)?;
        let backend = match E2bBackend::from_access(client.clone(), config, access, true, timeouts)
        {
            Ok(b) => b,
            Err((e, id)) => {
                if let Err(kill) = client.bounded(timeouts.close).kill(&id) {
                    log::warn!("could not kill E2B sandbox {id} after a failed start: {kill}");
                }
                return Err(e);
            }
        };
        if let Err(e) = backend.wait_ready(timeouts) {
            if let Err(kill) = backend.shutdown() {
                log::warn!(
                    "could not kill E2B sandbox {} after a failed start: {kill}",
                    backend.id
                );
            }
            return Err(e);
        }
        Ok(backend)
    }

    /// Connects to an existing sandbox by id, resuming it if paused and making sure it lives
    /// at least `lifetime` more; waits until its Jupyter server answers. Closing the handle
    /// leaves this sandbox running unless [`E2bBackend::set_kill_on_close`] says otherwise.
    pub(crate) fn connect(
        config: &E2bConfig,
        sandbox_id: &str,
        lifetime: Duration,
        timeouts: &Timeouts,
    ) -> Result<E2bBackend, Error> {
        let client = E2bClient::new(config)?;
        let access = client.connect(sandbox_id, lifetime)?;
        let backend =
            E2bBackend::from_access(client, config, access, false, timeouts).map_err(|(e, _)| e)?;
        backend.wait_ready(timeouts)?;
        Ok(backend)
    }

    fn from_access(
        client: E2bClient,
        config: &E2bConfig,
        access: SandboxAccess,
        kill_on_close: bool,
        timeouts: &Timeouts,
    ) -> Result<E2bBackend, (Error, String)> {
        let id = access.sandbox_id.clone();
        let endpoint = jupyter_endpoint(config, &access).map_err(|e| (e, id.clone()))?;
        log::debug!(
            "E2B sandbox {id}: Jupyter at {}, kill on close: {kill_on_close}",
            endpoint.base()
        );
        Ok(E2bBackend {
            quick: client.bounded(timeouts.close),
            client,
            endpoint,
            access,
            kill_on_close: AtomicBool::new(kill_on_close),
            shut_down: AtomicBool::new(false),
            id,
        })
    }

    /// Polls Jupyter until it answers: a proxy 502 or a refused connection means the port is
    /// not forwarded yet. A rejected token fails at once.
    fn wait_ready(&self, timeouts: &Timeouts) -> Result<(), Error> {
        let start = Instant::now();
        loop {
            // Each poll gets what is left of the start deadline, so the wait ends on time.
            let left = timeouts.start.saturating_sub(start.elapsed());
            let http = Http::new(
                self.endpoint.clone(),
                &timeouts
                    .clone()
                    .request(timeouts.request.min(left))
                    .connect(timeouts.connect.min(left)),
            );
            let outcome = http.send(Method::Get, "/api/kernelspecs", None);
            match outcome {
                Ok(r) if r.is_success() => {
                    log::debug!(
                        "E2B sandbox {}: Jupyter answered after {:?}",
                        self.id,
                        start.elapsed()
                    );
                    return Ok(());
                }
                Ok(r) if matches!(r.status, 401 | 403) => return Err(r.into_error()),
                Ok(r) => log::trace!(
                    "E2B sandbox {}: Jupyter not ready: HTTP {}",
                    self.id,
                    r.status
                ),
                Err(e) => log::trace!("E2B sandbox {}: Jupyter not ready: {e}", self.id),
            }
            if start.elapsed() + READY_POLL >= timeouts.start {
                return Err(Error::Timeout {
                    phase: TimeoutPhase::SandboxStart,
                    after: timeouts.start,
                });
            }
            std::thread::sleep(READY_POLL);
        }
    }

    /// What the control plane said when the sandbox was created or connected to.
    pub(crate) fn access(&self) -> &SandboxAccess {
        &self.access
    }

    /// Looks the sandbox up on the control plane.
    pub(crate) fn info(&self) -> Result<SandboxInfo, Error> {
        self.client.get_info(&self.id)
    }

    /// Sets how long the sandbox lives from now.
    pub(crate) fn set_timeout(&self, lifetime: Duration) -> Result<(), Error> {
        self.client.set_timeout(&self.id, lifetime)
    }

    /// Whether closing the handle kills the sandbox: `true` for a created sandbox, `false`
    /// for one connected to by id, until changed. `false` detaches: the sandbox lives on until
    /// its lifetime ends, and only the kernels the handle started are shut down.
    pub(crate) fn set_kill_on_close(&self, kill: bool) {
        self.kill_on_close.store(kill, Ordering::SeqCst);
    }

    /// See [`E2bBackend::set_kill_on_close`].
    pub(crate) fn kills_on_close(&self) -> bool {
        self.kill_on_close.load(Ordering::SeqCst)
    }
}

/// The Jupyter server's URL and the headers its proxy needs. Jupyter itself has no token in
/// the code-interpreter template; envd's `X-Access-Token` is not sent to it.
fn jupyter_endpoint(config: &E2bConfig, access: &SandboxAccess) -> Result<Endpoint, Error> {
    let url = config.jupyter_url(&access.sandbox_id, access.domain.as_deref());
    let mut endpoint = Endpoint::new(&url)?;
    if let Some(token) = &access.traffic_access_token {
        endpoint = endpoint.with_header(TRAFFIC_TOKEN_HEADER, Secret::clone(token));
    }
    Ok(endpoint)
}

impl Backend for E2bBackend {
    fn sandbox_id(&self) -> &str {
        &self.id
    }

    fn jupyter(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Asks the control plane: 404 → gone. A paused sandbox counts as alive (connecting
    /// resumes it); an API that does not answer within the close deadline → unknown.
    fn probe(&self) -> Liveness {
        match self.quick.get_info(&self.id) {
            Ok(info) => {
                log::debug!("E2B sandbox {} is {}", self.id, info.state.as_str());
                Liveness::Alive
            }
            Err(Error::SandboxNotFound { .. }) => Liveness::Gone,
            Err(e) => {
                log::debug!("could not look up E2B sandbox {}: {e}", self.id);
                Liveness::Unknown
            }
        }
    }

    /// True while closing kills the sandbox, and every kernel with it.
    fn owns_server(&self) -> bool {
        self.kills_on_close()
    }

    /// Kills the sandbox unless detached, within the close deadline; once.
    fn shutdown(&self) -> Result<(), Error> {
        if self.shut_down.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        if !self.kills_on_close() {
            log::debug!("leaving E2B sandbox {} running", self.id);
            return Ok(());
        }
        self.quick.kill(&self.id).map(|_| ())
    }
}
