//! E2B cloud sandboxes: created on the E2B control plane, then reached through E2B's data plane
//! (envd and the code-interpreter server, `crate::plane::e2b`) or, for templates that still
//! serve it, the Jupyter server on port 8888 (`https://8888-{sandboxID}.{domain}`); which one
//! is settled while the sandbox starts (`E2bBackend::wait_ready`).
//!
//! Who kills the sandbox: a sandbox this SDK **created** is killed when the handle closes, as
//! E2B's own SDKs do on leaving a `with` block. A sandbox it **connected to** by id belongs to
//! someone else, so closing the handle leaves it running and shuts down only the kernels this
//! handle started; [`E2bBackend::set_kill_on_close`] changes either default (detach a created
//! sandbox, or take over a connected one). Either way E2B kills a sandbox when its lifetime
//! runs out, so a leaked one costs at most that long.

mod api;
mod config;
mod control_http;
mod e2b_sandbox;
mod lifecycle;
mod metrics;
mod models;
mod network;
mod options;
mod pager;
mod retry;
mod signature;
mod snapshots;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crate::backend::{Backend, Liveness, SandboxProbe};
use crate::config::{Secret, Timeouts};
use crate::error::{Error, TimeoutPhase};
use crate::net::{Endpoint, GoneCheck, Http, Method};
use crate::plane::e2b::{Access, E2bPlane, EnvdVersion};
use crate::plane::{DataPlane, Plane};

pub use api::E2bClient;
pub use config::{DEFAULT_DOMAIN, E2bConfig};
pub use e2b_sandbox::E2bSandbox;
pub use lifecycle::{
    ConnectOptions, ForkOptions, Lifecycle, MAX_FORK_COUNT, OnResume, OnTimeout, PauseMode,
    PauseOptions,
};
pub use metrics::{MetricsQuery, SandboxMetric};
pub use models::{
    ListQuery, Order, SandboxAccess, SandboxInfo, SandboxLifecycle, SandboxPage, SandboxState,
    VolumeMount,
};
pub use network::{ALL_TRAFFIC, NetworkInfo, NetworkOptions, NetworkUpdate};
pub use options::{DEFAULT_LIFETIME, DEFAULT_TEMPLATE, E2bOptions};
pub use pager::Paginator;
pub use signature::FileUrlOptions;
pub use snapshots::{SnapshotInfo, SnapshotOptions, SnapshotQuery};

/// The header E2B's proxy wants when a sandbox's traffic is not public.
const TRAFFIC_TOKEN_HEADER: &str = "E2B-Traffic-Access-Token";
/// The headers E2B's proxy routes by when the host is `localhost`, an IP or `sandbox.{domain}`
/// (an `E2B_SANDBOX_URL` such as `http://localhost:3002`); ignored on `{port}-{id}` hosts.
const SANDBOX_ID_HEADER: &str = "E2b-Sandbox-Id";
const SANDBOX_PORT_HEADER: &str = "E2b-Sandbox-Port";

/// The sandbox id in debug mode, as in E2B's SDKs (there is no control plane to ask).
pub(crate) const DEBUG_SANDBOX_ID: &str = "debug_sandbox_id";

/// A sandbox just created may be unknown to the proxy for a moment; a "not found" that lasts
/// longer than this while starting means it is gone.
const NOT_FOUND_GRACE: Duration = Duration::from_secs(2);
/// Jupyter is already running in a resumed snapshot of E2B's template; a port that stays closed
/// this long means the template runs no Jupyter server on 8888.
const PORT_GRACE: Duration = Duration::from_secs(10);

/// Jupyter's readiness is polled this often while a new sandbox starts.
const READY_POLL: Duration = Duration::from_millis(200);

/// A sandbox on E2B.
#[derive(Debug)]
pub(crate) struct E2bBackend {
    id: String,
    /// Whether this handle resumes its sandbox when it finds it paused.
    auto_resume: AtomicBool,
    /// Whether this handle paused the sandbox and has not resumed it since.
    paused: AtomicBool,
    /// envd's base URL, for signed file URLs.
    envd_base: String,
    /// The handle's deadlines, for waiting out a resume.
    timeouts: Timeouts,
    client: E2bClient,
    /// The same client bounded by the close deadline, for the probe and the kill on close.
    quick: E2bClient,
    endpoint: Endpoint,
    access: SandboxAccess,
    kill_on_close: AtomicBool,
    shut_down: AtomicBool,
    /// Debug mode: no control plane; the sandbox is whatever answers at the sandbox URL.
    debug: bool,
    /// A client for the Jupyter server bounded by the close deadline (the probe in debug mode).
    jupyter_probe: Http,
    /// The domain the sandbox's ports are served under.
    host_domain: String,
    /// Which data plane was asked for.
    wanted: DataPlane,
    /// E2B's data plane of the sandbox, whether or not it is the one used.
    e2b_plane: Arc<E2bPlane>,
    /// The plane found once the sandbox answered.
    plane: OnceLock<Plane>,
}

impl E2bBackend {
    /// Creates a sandbox and waits until its Jupyter server answers (at most
    /// `timeouts.sandbox_start`). If anything fails after the sandbox exists, it is killed before
    /// the error returns.
    pub(crate) fn create(
        config: &E2bConfig,
        options: &E2bOptions,
        timeouts: &Timeouts,
    ) -> Result<E2bBackend, Error> {
        let client = E2bClient::new(config)?;
        if let Some(url) = &config.sandbox_url {
            Endpoint::new(url)?;
        }
        if config.debug {
            return E2bBackend::debug(client, config, timeouts);
        }
        let access = client.create(options)?;
        let backend = E2bBackend::started(&client, config, access, timeouts)?;
        Ok(backend.resuming(options.lifecycle.resumes()))
    }

    /// The backend of a sandbox just made (created or forked), once its Jupyter server
    /// answers; it kills the sandbox on close. If it cannot be reached, the sandbox is killed
    /// before the error returns.
    fn started(
        client: &E2bClient,
        config: &E2bConfig,
        access: SandboxAccess,
        timeouts: &Timeouts,
    ) -> Result<E2bBackend, Error> {
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
    /// as `options` say; waits until its Jupyter server answers. Closing the handle leaves
    /// this sandbox running unless [`E2bBackend::set_kill_on_close`] says otherwise.
    pub(crate) fn connect(
        config: &E2bConfig,
        sandbox_id: &str,
        options: &ConnectOptions,
        timeouts: &Timeouts,
    ) -> Result<E2bBackend, Error> {
        let client = E2bClient::new(config)?;
        if config.debug {
            return E2bBackend::debug(client, config, timeouts);
        }
        let access = client.connect(sandbox_id, options)?;
        let backend =
            E2bBackend::from_access(client, config, access, false, timeouts).map_err(|(e, _)| e)?;
        backend.wait_ready(timeouts)?;
        Ok(backend)
    }

    /// Forks sandbox `sandbox_id`: one backend per fork that started and answers (each killed
    /// on close, as a created sandbox is), or why it did not.
    pub(crate) fn fork(
        config: &E2bConfig,
        sandbox_id: &str,
        options: &ForkOptions,
        timeouts: &Timeouts,
    ) -> Result<Vec<Result<E2bBackend, Error>>, Error> {
        let client = E2bClient::new(config)?;
        if config.debug {
            return Err(Error::InvalidArgument(
                "E2B debug mode has no control plane to fork a sandbox".into(),
            ));
        }
        let forks = client.fork(sandbox_id, options)?;
        Ok(forks
            .into_iter()
            .map(|access| E2bBackend::started(&client, config, access?, timeouts))
            .collect())
    }

    /// Debug mode, as in E2B's SDKs: no control-plane call at all. The sandbox is the template
    /// container reachable at the sandbox URL (`E2B_SANDBOX_URL`, else `http://localhost:8888`);
    /// closing the handle and `set_lifetime` leave it alone.
    fn debug(
        client: E2bClient,
        config: &E2bConfig,
        timeouts: &Timeouts,
    ) -> Result<E2bBackend, Error> {
        let access = SandboxAccess::debug(DEBUG_SANDBOX_ID);
        let mut backend =
            E2bBackend::from_access(client, config, access, false, timeouts).map_err(|(e, _)| e)?;
        backend.debug = true;
        log::debug!(
            "E2B debug mode: no control plane; sandbox at {}",
            backend.endpoint.base()
        );
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
        let quick = client.bounded(timeouts.close);
        let gone = (!config.debug).then(|| gone_check(quick.clone()));
        let with_gone = |endpoint: Endpoint| match &gone {
            Some(check) => endpoint.with_gone_check(check.clone()),
            None => endpoint,
        };
        let endpoint = with_gone(jupyter_endpoint(config, &access).map_err(|e| (e, id.clone()))?);
        log::debug!(
            "E2B sandbox {id}: Jupyter at {}, kill on close: {kill_on_close}",
            endpoint.base()
        );
        let jupyter_probe = Http::new(
            endpoint.clone(),
            &timeouts
                .clone()
                .request(timeouts.close)
                .connect(timeouts.connect.min(timeouts.close)),
        );
        let host_domain = access
            .domain
            .clone()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| config.domain.clone());
        let e2b_plane = Arc::new(
            E2bPlane::new(
                e2b_access(config, &access).map_err(|e| (e, id.clone()))?,
                timeouts,
                with_gone,
            )
            .map_err(|e| (e, id.clone()))?,
        );
        Ok(E2bBackend {
            auto_resume: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            envd_base: config.envd_url(&id, access.domain.as_deref()),
            timeouts: timeouts.clone(),
            wanted: config.data_plane,
            e2b_plane,
            plane: OnceLock::new(),
            quick,
            client,
            endpoint,
            access,
            kill_on_close: AtomicBool::new(kill_on_close),
            shut_down: AtomicBool::new(false),
            debug: false,
            jupyter_probe,
            host_domain,
            id,
        })
    }

    /// `Sandbox::get_host`, as E2B's SDKs: `{port}-{sandbox_id}.{domain}`, or `localhost:{port}`
    /// in debug mode.
    pub(crate) fn host(&self, port: u16) -> String {
        if self.debug {
            return format!("localhost:{port}");
        }
        format!("{port}-{}.{}", self.id, self.host_domain)
    }

    /// Waits until the sandbox's data plane answers (at most `timeouts.sandbox_start`) and settles
    /// which one it is: with [`DataPlane::Auto`], Jupyter when it answers on port 8888, else E2B's
    /// envd and code-interpreter server once both answer.
    ///
    /// A refused connection, a proxy 409 (mid-transition) or a proxy 502 "port is not open"
    /// mean not ready yet; the proxy's 502 "sandbox not found" past a short grace means the
    /// sandbox is gone; Jupyter's port still closed after [`PORT_GRACE`] while E2B's plane does
    /// not answer either means the template serves neither. 400 (the proxy could not route the
    /// request) and 401/403 fail at once.
    fn wait_ready(&self, timeouts: &Timeouts) -> Result<(), Error> {
        let start = Instant::now();
        loop {
            let jupyter = match self.wanted {
                DataPlane::E2b => Probe::NotYet,
                _ => self.probe_jupyter(timeouts, start)?,
            };
            let e2b = match (self.wanted, &jupyter) {
                (DataPlane::Jupyter, _) | (_, Probe::Ready) => false,
                _ => match self.e2b_plane.answers() {
                    Ok(answers) => answers,
                    Err(Error::SandboxNotFound { .. }) if start.elapsed() >= NOT_FOUND_GRACE => {
                        return Err(Error::SandboxNotFound {
                            sandbox_id: self.id.clone(),
                        });
                    }
                    Err(e) => {
                        log::trace!("E2B sandbox {}: envd not ready: {e}", self.id);
                        false
                    }
                },
            };
            let plane = match (jupyter, e2b) {
                (Probe::Ready, _) => Some(Plane::Jupyter),
                (_, true) => Some(Plane::E2b(self.e2b_plane.clone())),
                (Probe::PortClosed(e), false)
                    if start.elapsed() >= PORT_GRACE && self.wanted != DataPlane::E2b =>
                {
                    return Err(e);
                }
                _ => None,
            };
            if let Some(plane) = plane {
                log::debug!(
                    "E2B sandbox {}: {:?} plane answered after {:?}",
                    self.id,
                    plane.kind(),
                    start.elapsed()
                );
                let _ = self.plane.set(plane);
                return Ok(());
            }
            if start.elapsed() + READY_POLL >= timeouts.sandbox_start {
                return Err(Error::Timeout {
                    phase: TimeoutPhase::SandboxStart,
                    after: timeouts.sandbox_start,
                });
            }
            std::thread::sleep(READY_POLL);
        }
    }

    /// One poll of the Jupyter server on port 8888.
    fn probe_jupyter(&self, timeouts: &Timeouts, start: Instant) -> Result<Probe, Error> {
        // Each poll gets what is left of the start deadline, so the wait ends on time.
        let left = timeouts.sandbox_start.saturating_sub(start.elapsed());
        let http = Http::new(
            self.endpoint.clone(),
            &timeouts
                .clone()
                .request(timeouts.request.min(left))
                .connect(timeouts.connect.min(left)),
        );
        match http.send(Method::Get, "/api/kernelspecs", None) {
            Ok(r) if r.is_success() => Ok(Probe::Ready),
            Ok(r) if matches!(r.status, 400 | 401 | 403) => Err(r.into_error()),
            Ok(r) if r.status == 502 => match ProxyAnswer::of(&r) {
                ProxyAnswer::NotFound if start.elapsed() >= NOT_FOUND_GRACE => {
                    Err(Error::SandboxNotFound {
                        sandbox_id: self.id.clone(),
                    })
                }
                ProxyAnswer::PortClosed => Ok(Probe::PortClosed(Error::Http {
                    status: 502,
                    endpoint: r.endpoint,
                    message: format!(
                        "sandbox {} is running but nothing listens on port {}: its template \
                         has no Jupyter server there (E2B's templates from 0.4.7 on keep it \
                         private; use DataPlane::Auto or DataPlane::E2b)",
                        self.id,
                        config::JUPYTER_PORT
                    ),
                })),
                answer => {
                    log::trace!("E2B sandbox {}: Jupyter not ready: 502 {answer:?}", self.id);
                    Ok(Probe::NotYet)
                }
            },
            Ok(r) => {
                log::trace!(
                    "E2B sandbox {}: Jupyter not ready: HTTP {}",
                    self.id,
                    r.status
                );
                Ok(Probe::NotYet)
            }
            Err(e) => {
                log::trace!("E2B sandbox {}: Jupyter not ready: {e}", self.id);
                Ok(Probe::NotYet)
            }
        }
    }

    /// What the control plane said when the sandbox was created or connected to.
    pub(crate) fn access(&self) -> &SandboxAccess {
        &self.access
    }

    /// The control plane, for questions about the sandbox that only it can answer; debug mode
    /// has none.
    fn control_plane(&self) -> Result<&E2bClient, Error> {
        if self.debug {
            return Err(Error::InvalidArgument(
                "E2B debug mode has no control plane to ask about the sandbox".into(),
            ));
        }
        Ok(&self.client)
    }

    /// Looks the sandbox up on the control plane.
    pub(crate) fn info(&self) -> Result<SandboxInfo, Error> {
        self.control_plane()?.get_info(&self.id)
    }

    /// Samples of the sandbox's resource use.
    pub(crate) fn metrics(&self, query: &MetricsQuery) -> Result<Vec<SandboxMetric>, Error> {
        self.control_plane()?.metrics(&self.id, query)
    }

    /// Sets how long the sandbox lives from now; skipped in debug mode, as in E2B's SDKs.
    pub(crate) fn set_lifetime(&self, lifetime: Duration) -> Result<(), Error> {
        if self.debug {
            log::debug!("E2B debug mode: set_lifetime skipped");
            return Ok(());
        }
        self.client.set_lifetime(&self.id, lifetime)
    }

    /// The same backend, resuming its sandbox when it finds it paused if `resume`.
    fn resuming(self, resume: bool) -> E2bBackend {
        self.auto_resume.store(resume, Ordering::SeqCst);
        self
    }

    /// See [`E2bSandbox::set_auto_resume`].
    pub(crate) fn set_auto_resume(&self, resume: bool) {
        self.auto_resume.store(resume, Ordering::SeqCst);
    }

    /// Pauses the sandbox; `Ok(false)` when it was paused already.
    pub(crate) fn pause(&self, options: &PauseOptions) -> Result<bool, Error> {
        let paused = self.control_plane()?.pause(&self.id, options)?;
        self.paused.store(true, Ordering::SeqCst);
        Ok(paused)
    }

    /// Resumes the sandbox if it is paused (connect), then waits until its Jupyter server
    /// answers again.
    pub(crate) fn resume(&self, options: &ConnectOptions) -> Result<(), Error> {
        let access = self.control_plane()?.connect(&self.id, options)?;
        if access.sandbox_id != self.id {
            return Err(Error::protocol(format!(
                "connecting to E2B sandbox {} answered for sandbox {}",
                self.id, access.sandbox_id
            )));
        }
        self.paused.store(false, Ordering::SeqCst);
        self.wait_ready(&self.timeouts)
    }

    /// Fails fast with [`Error::SandboxPaused`] when this handle paused its sandbox, or
    /// resumes it first when the handle auto-resumes: for calls that need it running.
    pub(crate) fn ensure_running(&self) -> Result<(), Error> {
        if !self.paused.load(Ordering::SeqCst) {
            return Ok(());
        }
        if !self.auto_resume.load(Ordering::SeqCst) {
            return Err(Error::SandboxPaused {
                sandbox_id: self.id.clone(),
            });
        }
        log::debug!("E2B sandbox {} is paused: resuming it first", self.id);
        self.resume(&ConnectOptions::new())
    }

    /// Takes a snapshot of the sandbox.
    pub(crate) fn create_snapshot(&self, options: &SnapshotOptions) -> Result<SnapshotInfo, Error> {
        self.control_plane()?.create_snapshot(&self.id, options)
    }

    /// The snapshots taken of this sandbox.
    pub(crate) fn list_snapshots(
        &self,
        query: &SnapshotQuery,
    ) -> Result<Paginator<SnapshotInfo>, Error> {
        let query = query.clone().sandbox_id(self.id.clone());
        Ok(self.control_plane()?.list_snapshots(&query))
    }

    /// Replaces the sandbox's egress rules.
    pub(crate) fn update_network(&self, update: &NetworkUpdate) -> Result<(), Error> {
        self.control_plane()?.update_network(&self.id, update)
    }

    /// A URL to read (`Read`) or write (`Write`) `path` in the sandbox through envd, signed
    /// with the sandbox's access token when it has one.
    pub(crate) fn file_url(
        &self,
        path: &str,
        operation: signature::Operation,
        options: &FileUrlOptions,
    ) -> Result<String, Error> {
        signature::file_url(
            &self.envd_base,
            &self.access.envd_version,
            self.access.envd_access_token.as_ref(),
            path,
            operation,
            options,
            SystemTime::now(),
        )
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

/// What one poll of Jupyter's port found.
#[derive(Debug)]
enum Probe {
    Ready,
    NotYet,
    /// The proxy says nothing listens on the port (the error to give if it stays so).
    PortClosed(Error),
}

/// How E2B's data plane of a sandbox is reached: the ports' URLs, the routing headers, envd's
/// token and version.
fn e2b_access(config: &E2bConfig, access: &SandboxAccess) -> Result<Access, Error> {
    let url = |port| config.port_url(&access.sandbox_id, access.domain.as_deref(), port);
    use crate::plane::e2b::{ENVD_PORT, INTERPRETER_PORT};
    Ok(Access {
        sandbox_id: access.sandbox_id.clone(),
        urls: [
            (ENVD_PORT, url(ENVD_PORT)),
            (INTERPRETER_PORT, url(INTERPRETER_PORT)),
        ],
        headers: access
            .traffic_access_token
            .iter()
            .map(|t| (TRAFFIC_TOKEN_HEADER.to_string(), t.clone()))
            .collect(),
        envd_token: access.envd_access_token.clone(),
        envd_version: EnvdVersion::parse(&access.envd_version),
        tls: crate::net::tls::TlsRoots::new(&config.tls_roots)?,
        reconnect: config.reconnect.clone(),
    })
}

/// What E2B's sandbox proxy meant by a 502 (its JSON body's `message`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProxyAnswer {
    /// "The sandbox was not found": killed, timed out, or not (yet) known to the proxy.
    NotFound,
    /// "The sandbox is running but port is not open".
    PortClosed,
    Other,
}

impl ProxyAnswer {
    fn of(r: &crate::net::Response) -> ProxyAnswer {
        let message = r.message().to_ascii_lowercase();
        if message.contains("sandbox was not found") {
            ProxyAnswer::NotFound
        } else if message.contains("port is not open") {
            ProxyAnswer::PortClosed
        } else {
            ProxyAnswer::Other
        }
    }
}

/// The Jupyter server's URL and the headers its proxy needs: the routing headers E2B's SDKs
/// send on every sandbox request, and the traffic token when traffic is not public. Jupyter
/// itself has no token in the code-interpreter template; envd's `X-Access-Token` is not sent
/// to it.
/// Asks the control plane what the proxy's "sandbox not found" means: the proxy answers so for
/// a paused sandbox as for a killed one. `control` is the probe's client, bounded by the close
/// deadline.
fn gone_check(control: E2bClient) -> GoneCheck {
    GoneCheck::new(move |sandbox_id| {
        let sandbox_id = sandbox_id.to_string();
        match control.get_info(&sandbox_id) {
            Ok(info) if info.state == SandboxState::Paused => Error::SandboxPaused { sandbox_id },
            Ok(_) | Err(Error::SandboxNotFound { .. }) => Error::SandboxNotFound { sandbox_id },
            Err(e) => {
                log::debug!("could not ask the control plane about sandbox {sandbox_id}: {e}");
                Error::SandboxNotFound { sandbox_id }
            }
        }
    })
}

fn jupyter_endpoint(config: &E2bConfig, access: &SandboxAccess) -> Result<Endpoint, Error> {
    let url = config.jupyter_url(&access.sandbox_id, access.domain.as_deref());
    let mut endpoint = Endpoint::new(&url)?
        .with_tls(crate::net::tls::TlsRoots::new(&config.tls_roots)?)
        .with_header(SANDBOX_ID_HEADER, Secret::new(access.sandbox_id.as_str()))
        .with_header(
            SANDBOX_PORT_HEADER,
            Secret::new(config::JUPYTER_PORT.to_string()),
        );
    if let Some(token) = &access.traffic_access_token {
        endpoint = endpoint.with_header(TRAFFIC_TOKEN_HEADER, Secret::clone(token));
    }
    Ok(endpoint)
}

impl SandboxProbe for E2bBackend {
    fn sandbox_id(&self) -> &str {
        &self.id
    }

    /// Asks the control plane: 404 → gone; paused → resumed first when the handle
    /// auto-resumes (then alive), else paused; an API that does not answer within the close
    /// deadline → unknown.
    fn probe(&self) -> Liveness {
        if self.debug && matches!(self.plane(), Plane::E2b(_)) {
            return match self.e2b_plane.health() {
                Ok(true) => Liveness::Alive,
                Ok(false) => Liveness::Gone,
                Err(_) => Liveness::Unknown,
            };
        }
        if self.debug {
            return match self.jupyter_probe.send(Method::Get, "/api", None) {
                Ok(r) if r.is_success() => Liveness::Alive,
                Ok(r) if r.status == 502 && ProxyAnswer::of(&r) == ProxyAnswer::NotFound => {
                    Liveness::Gone
                }
                _ => Liveness::Unknown,
            };
        }
        match self.quick.get_info(&self.id) {
            Ok(info) if info.state == SandboxState::Paused => {
                if !self.auto_resume.load(Ordering::SeqCst) {
                    log::debug!("E2B sandbox {} is paused", self.id);
                    return Liveness::Paused;
                }
                // Resuming is what the lost connection needs; the reconnect that follows
                // finds the sandbox running.
                log::debug!("E2B sandbox {} is paused: resuming it", self.id);
                match self.quick.connect(&self.id, &ConnectOptions::new()) {
                    Ok(_) => {
                        self.paused.store(false, Ordering::SeqCst);
                        Liveness::Alive
                    }
                    Err(e) => {
                        log::warn!("could not resume E2B sandbox {}: {e}", self.id);
                        Liveness::Paused
                    }
                }
            }
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
}

impl Backend for E2bBackend {
    fn jupyter(&self) -> &Endpoint {
        &self.endpoint
    }

    fn plane(&self) -> Plane {
        self.plane.get().cloned().unwrap_or(Plane::Jupyter)
    }

    fn running(&self) -> Liveness {
        if self.debug {
            return self.probe();
        }
        match self.quick.get_info(&self.id) {
            Ok(info) if info.state == SandboxState::Running => Liveness::Alive,
            Ok(info) if info.state == SandboxState::Paused => Liveness::Paused,
            Ok(info) => {
                log::debug!("E2B sandbox {} is {}", self.id, info.state.as_str());
                Liveness::Gone
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
        if !self.kills_on_close() || self.debug {
            log::debug!("leaving E2B sandbox {} running", self.id);
            return Ok(());
        }
        self.quick.kill(&self.id).map(|_| ())
    }
}
