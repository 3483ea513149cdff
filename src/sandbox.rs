//! `Sandbox`: the blocking facade over one sandbox's kernels, whatever its backend.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::backend::e2b::{DEFAULT_LIFETIME, E2bBackend, E2bConfig, E2bOptions, E2bSandbox};
use crate::backend::jupyter::JupyterBackend;
use crate::backend::local::{LocalBackend, LocalOptions, LocalSandbox};
use crate::backend::{Backend, Liveness};
use crate::config::{ConnectionConfig, Keepalive, ReconnectPolicy, Secret, Timeouts};
use crate::context::{self, Context, ContextOptions};
use crate::error::{Error, TimeoutPhase};
use crate::exec::code::CodeBuilder;
use crate::exec::models::Execution;
use crate::http::{Http, Method};
use crate::jupyter::delivery::Failure;
use crate::jupyter::rest::{self, KernelSpecs};
use crate::jupyter::state::{ConnectionState, ConnectionWatch};
use crate::kernel::Kernel;
use crate::sync::lock;

/// Settings every sandbox has, whatever its backend.
#[derive(Debug, Clone, Default)]
pub(crate) struct SandboxConfig {
    pub(crate) timeouts: Timeouts,
    pub(crate) connection: ConnectionConfig,
    pub(crate) envs: Vec<(String, String)>,
}

/// Builds a [`Sandbox`]: set the shared options, then pick the backend.
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until a backend method such as .local() is called"]
pub struct SandboxBuilder {
    config: SandboxConfig,
    /// Set by [`SandboxBuilder::binary_framing`]; otherwise chosen per backend.
    binary_framing: Option<bool>,
    /// PEM bundles or DER certificates given to [`SandboxBuilder::add_root_certificate`].
    tls_roots: Vec<Vec<u8>>,
}

impl SandboxBuilder {
    /// Call deadlines. Defaults to [`Timeouts::default`].
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.config.timeouts = timeouts.clone();
        self.config.connection = self.config.connection.timeouts(timeouts);
        self
    }

    /// How broken kernel connections are re-established. Defaults to
    /// [`ReconnectPolicy::default`].
    pub fn reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.config.connection = self.config.connection.reconnect(policy);
        self
    }

    /// Keep-alive pings on kernel connections. Defaults to [`Keepalive::default`].
    pub fn keepalive(mut self, keepalive: Keepalive) -> Self {
        self.config.connection = self.config.connection.keepalive(keepalive);
        self
    }

    /// Whether kernel connections offer binary framing. Defaults to `true` for the local
    /// sandbox, whose server is patched against jupyter_server's replaced-socket stall, and to
    /// `false` (JSON framing) for every server the SDK did not start and patch (E2B, existing
    /// servers); see [`ConnectionConfig::binary_framing`].
    pub fn binary_framing(mut self, offer: bool) -> Self {
        self.binary_framing = Some(offer);
        self
    }

    /// Everything that shapes kernel connections at once (reconnect policy, keep-alive, message
    /// limits), replacing what [`SandboxBuilder::reconnect`], [`SandboxBuilder::keepalive`] and
    /// the size setters set before; its timeouts are replaced by the builder's, and its framing
    /// by [`SandboxBuilder::binary_framing`] when that was called. Defaults to
    /// [`ConnectionConfig::default`].
    pub fn connection(mut self, connection: ConnectionConfig) -> Self {
        self.config.connection = connection.timeouts(self.config.timeouts.clone());
        self
    }

    /// Trusts `pem_or_der` (a PEM bundle of one or more certificates, or one DER certificate)
    /// as a root for `https://` and `wss://` connections to the sandbox's server, for a
    /// server whose certificate comes from a private CA (an Enterprise Gateway in a company
    /// cluster, a TLS-terminating proxy). Once any root is added, the server must chain to one
    /// of the added roots: Mozilla's built-in roots are no longer used for it. For E2B the
    /// roots apply to the control plane too. Defaults to none: Mozilla's roots, or, when the
    /// `SSL_CERT_FILE` environment variable names a PEM bundle, the certificates in it (as
    /// OpenSSL does). A certificate that does not parse fails the backend method with
    /// [`Error::InvalidArgument`].
    pub fn add_root_certificate(mut self, pem_or_der: impl Into<Vec<u8>>) -> Self {
        self.tls_roots.push(pem_or_der.into());
        self
    }

    /// `config` plus the roots given to this builder.
    fn e2b_config(&self, config: &E2bConfig) -> E2bConfig {
        let mut config = config.clone();
        config.tls_roots.extend(self.tls_roots.iter().cloned());
        config
    }

    /// The config with the framing default of a backend applied: `patched` for the local
    /// sandbox's own server.
    fn config_for(self, patched: bool) -> SandboxConfig {
        let mut config = self.config;
        let offer = self.binary_framing.unwrap_or(patched);
        config.connection = config.connection.binary_framing(offer);
        config
    }

    /// Largest websocket message accepted from the server. Defaults to 256 MiB; see
    /// [`ConnectionConfig::max_message_size`].
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.config.connection = self.config.connection.max_message_size(bytes);
        self
    }

    /// Largest request sent to the server in one websocket message. Defaults to 10 MiB; see
    /// [`ConnectionConfig::max_request_size`].
    pub fn max_request_size(mut self, bytes: usize) -> Self {
        self.config.connection = self.config.connection.max_request_size(bytes);
        self
    }

    /// Environment variables set in every context of the sandbox. Defaults to none.
    pub fn envs<I, K, V>(mut self, envs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.config
            .envs
            .extend(envs.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Starts a local sandbox with default [`LocalOptions`].
    pub fn local(self) -> Result<Sandbox, Error> {
        self.local_with(LocalOptions::default())
    }

    /// Uses an existing Jupyter server (jupyter_server, Jupyter Kernel Gateway, Enterprise
    /// Gateway). The token goes in the `Authorization` header; an empty token sends none.
    /// `url` is `http(s)://host:port[/prefix]`, or `http+unix://` followed by the percent-encoded
    /// path of the server's Unix socket (`http+unix://%2Frun%2Fjupyter.sock`), as
    /// [`Sandbox::jupyter_url`] gives for an isolated local sandbox.
    /// The sandbox starts its own kernels and shuts down only those when closed.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a malformed URL or certificate; [`Error::Authentication`]
    /// for a wrong token; [`Error::Transport`] or [`Error::Timeout`] when the server cannot be
    /// reached; the errors of starting the default context's kernel.
    pub fn jupyter(self, url: &str, token: impl Into<Secret>) -> Result<Sandbox, Error> {
        let tls = crate::tls::TlsRoots::new(&self.tls_roots)?;
        let backend = JupyterBackend::connect(url, &token.into(), &self.config.timeouts, tls)?;
        Sandbox::open(Backends::Jupyter(Arc::new(backend)), self.config_for(false))
    }

    /// Creates an E2B sandbox with [`E2bConfig::from_env`] and default [`E2bOptions`].
    pub fn e2b(self) -> Result<Sandbox, Error> {
        self.e2b_with(&E2bConfig::from_env(), &E2bOptions::default())
    }

    /// Creates an E2B sandbox; closing the handle kills it.
    ///
    /// [`E2bOptions::envs`] are set in every kernel (contexts and the kernels that run
    /// commands) before the builder's own [`envs`](SandboxBuilder::envs), which win on a clash:
    /// the template's Jupyter server was started before the sandbox existed, so the API's
    /// `envVars` never reach its kernels by themselves.
    pub fn e2b_with(self, config: &E2bConfig, options: &E2bOptions) -> Result<Sandbox, Error> {
        let config = &self.e2b_config(config);
        let mut sandbox_config = self.config_for(false);
        let own = std::mem::take(&mut sandbox_config.envs);
        sandbox_config.envs = options
            .envs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain(own)
            .collect();
        let backend = E2bBackend::create(config, options, &sandbox_config.timeouts)?;
        Sandbox::open(Backends::E2b(Arc::new(backend)), sandbox_config)
    }

    /// Connects to a running or paused E2B sandbox by id; closing the handle leaves it
    /// running (see [`E2bSandbox::set_kill_on_close`]). The env vars it was created with are
    /// not known here: pass them again with [`SandboxBuilder::envs`] if code needs them.
    pub fn e2b_connect(self, config: &E2bConfig, sandbox_id: &str) -> Result<Sandbox, Error> {
        let config = &self.e2b_config(config);
        let timeouts = self.config.timeouts.clone();
        let sandbox_config = self.config_for(false);
        let backend = E2bBackend::connect(config, sandbox_id, DEFAULT_LIFETIME, &timeouts)?;
        Sandbox::open(Backends::E2b(Arc::new(backend)), sandbox_config)
    }

    /// Starts a local sandbox: a `jupyter server` child process, inside bubblewrap unless
    /// [`LocalOptions::isolation`] says otherwise.
    ///
    /// # Errors
    ///
    /// [`Error::IsolationUnavailable`] when bubblewrap cannot run (install it, or opt out with
    /// [`Isolation::None`](crate::Isolation::None)); [`Error::Setup`] when no suitable Python or
    /// venv can be had or the server does not start; [`Error::Timeout`] with
    /// [`TimeoutPhase::SandboxStart`](crate::TimeoutPhase::SandboxStart) or `KernelStart`.
    pub fn local_with(self, options: LocalOptions) -> Result<Sandbox, Error> {
        let backend = LocalBackend::start(&options, &self.config.envs, &self.config.timeouts)?;
        Sandbox::open(Backends::Local(Arc::new(backend)), self.config_for(true))
    }
}

/// A code-interpreter sandbox: stateful kernels, their output, and the sandbox's lifetime.
///
/// `Sandbox` is `Send + Sync`; calls from several threads are fine (executions on one context
/// run one after another in the kernel). Dropping it tears the sandbox down; [`Sandbox::close`]
/// does the same and returns the error instead of logging it.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

/// The backend a sandbox runs on: what it shares with the others is [`Backend`]; what only one
/// kind has is reached through [`Sandbox::as_local`] and [`Sandbox::as_e2b`].
#[derive(Debug)]
pub(crate) enum Backends {
    Local(Arc<LocalBackend>),
    Jupyter(Arc<JupyterBackend>),
    E2b(Arc<E2bBackend>),
}

impl Backends {
    /// The backend, for the connections that outlive a borrow of the sandbox.
    fn shared(&self) -> Arc<dyn Backend> {
        match self {
            Backends::Local(b) => b.clone(),
            Backends::Jupyter(b) => b.clone(),
            Backends::E2b(b) => b.clone(),
        }
    }

    fn get(&self) -> &dyn Backend {
        match self {
            Backends::Local(b) => &**b,
            Backends::Jupyter(b) => &**b,
            Backends::E2b(b) => &**b,
        }
    }
}

/// What every clone of a [`Sandbox`] shares; the sandbox is torn down when the last goes.
struct Inner {
    backend: Backends,
    http: Http,
    config: SandboxConfig,
    kernels: Mutex<Kernels>,
    specs: OnceLock<KernelSpecs>,
    closed: AtomicBool,
    /// Private kernels that run commands (`sandbox.commands()`), apart from user contexts.
    system: crate::commands::SystemKernels,
    /// The server's root_dir as an absolute path, once a kernel has told it.
    server_root: OnceLock<String>,
}

#[derive(Debug, Default)]
struct Kernels {
    by_id: HashMap<String, Arc<Kernel>>,
    /// The default context of each language, by normalised language name.
    defaults: HashMap<String, String>,
    /// One gate per language whose default kernel may be starting: a second caller waits on
    /// it instead of starting another, and the registry itself is never held across a start.
    starting: HashMap<String, Arc<Mutex<()>>>,
    /// Ids in creation order, for listing.
    order: Vec<String>,
}

impl Kernels {
    fn default_for(&self, language: &str) -> Option<Arc<Kernel>> {
        self.defaults
            .get(language)
            .and_then(|id| self.by_id.get(id))
            .cloned()
    }
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("sandbox_id", &self.inner.backend.get().sandbox_id())
            .field("jupyter", self.inner.backend.get().jupyter())
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Starts a local sandbox with every default. See [`SandboxBuilder::local_with`].
    pub fn local() -> Result<Sandbox, Error> {
        Sandbox::builder().local()
    }

    /// Uses an existing Jupyter server with default options. See [`SandboxBuilder::jupyter`].
    pub fn jupyter(url: &str, token: impl Into<Secret>) -> Result<Sandbox, Error> {
        Sandbox::builder().jupyter(url, token)
    }

    /// Creates an E2B sandbox from the environment (`E2B_API_KEY`, …) with default options.
    pub fn create() -> Result<Sandbox, Error> {
        Sandbox::builder().e2b()
    }

    /// What only a local sandbox has (its directory, its server's pid); `None` for others.
    pub fn as_local(&self) -> Option<LocalSandbox<'_>> {
        match &self.inner.backend {
            Backends::Local(b) => Some(LocalSandbox::new(b)),
            _ => None,
        }
    }

    /// What only an E2B sandbox has (its lifetime, its control-plane record, whether closing
    /// kills it); `None` for others.
    pub fn as_e2b(&self) -> Option<E2bSandbox<'_>> {
        match &self.inner.backend {
            Backends::E2b(b) => Some(E2bSandbox::new(b)),
            _ => None,
        }
    }

    /// A builder for options shared by every backend.
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder::default()
    }

    fn open(backend: Backends, config: SandboxConfig) -> Result<Sandbox, Error> {
        let http = Http::new(backend.get().jupyter().clone(), &config.timeouts)
            .with_retry(config.connection.reconnect.clone());
        let sandbox = Sandbox {
            inner: Arc::new(Inner {
                backend,
                http,
                config,
                kernels: Mutex::new(Kernels::default()),
                specs: OnceLock::new(),
                closed: AtomicBool::new(false),
                system: Default::default(),
                server_root: OnceLock::new(),
            }),
        };
        // The default Python context is made up front, as E2B's sandbox does, so the first
        // run_code does not pay for a kernel start.
        sandbox.default_kernel_for("python")?;
        Ok(sandbox)
    }

    /// The sandbox's id: the E2B sandbox id, or `local-<pid>` for a local sandbox.
    pub fn sandbox_id(&self) -> &str {
        self.inner.backend.get().sandbox_id()
    }

    /// Runs code in the default Python context and waits for it. Equivalent to
    /// `self.code(code).run()`.
    ///
    /// # Errors
    ///
    /// Not for an exception in the code (that is [`Execution::error`]). [`Error::Timeout`] or
    /// [`Error::InterruptIgnored`] past the execution timeout; [`Error::OutputLost`] when output
    /// lost in a cut could not be fetched again; [`Error::ConnectionLost`],
    /// [`Error::SandboxNotFound`], [`Error::KernelDisrupted`] or [`Error::Closed`] when the
    /// connection, the sandbox or the kernel is gone; [`Error::RequestTooLarge`] for code over
    /// the message limit.
    pub fn run_code(&self, code: impl Into<String>) -> Result<Execution, Error> {
        self.code(code).run()
    }

    /// Starts describing an execution: callbacks, timeout, context, env vars.
    pub fn code(&self, code: impl Into<String>) -> CodeBuilder<'_> {
        CodeBuilder::new(self, code.into())
    }

    /// Creates a new context: its own kernel with its own state.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a language the server has no kernel for;
    /// [`Error::FileNotFound`] or [`Error::NotADirectory`] for a cwd that cannot be entered;
    /// [`Error::Timeout`] with `KernelStart` when the kernel does not come up; [`Error::Closed`].
    pub fn create_context(&self, options: ContextOptions) -> Result<Context, Error> {
        let language = options.language.as_deref().unwrap_or("python");
        let kernel = self.start_kernel(language, options.cwd.as_deref(), &options.envs)?;
        Ok(context_of(&*self.register(kernel, None)?))
    }

    /// Every live context, default ones included, in creation order.
    pub fn list_contexts(&self) -> Result<Vec<Context>, Error> {
        self.ensure_open()?;
        let k = self.inner.lock_kernels();
        Ok(k.order
            .iter()
            .filter_map(|id| k.by_id.get(id))
            .map(|kernel| context_of(kernel))
            .collect())
    }

    /// The default Python context: the one [`Sandbox::run_code`] uses, started with the
    /// sandbox. Pass it to [`Sandbox::restart_context`], [`Sandbox::interrupt`] or
    /// [`CodeBuilder::context`](crate::CodeBuilder::context).
    pub fn default_context(&self) -> Result<Context, Error> {
        Ok(context_of(&*self.default_kernel_for("python")?))
    }

    /// Restarts a context's kernel: its state is lost; cwd and env vars are set again.
    ///
    /// # Errors
    ///
    /// [`Error::KernelNotFound`] for a context that is gone; [`Error::Http`] when the server
    /// refuses; [`Error::Timeout`] when the restarted kernel does not answer; [`Error::Closed`].
    pub fn restart_context(&self, context: &Context) -> Result<(), Error> {
        self.restart_kernel(&self.kernel_of(context)?)
    }

    /// Interrupts whatever a context is running.
    pub fn interrupt(&self, context: &Context) -> Result<(), Error> {
        let kernel = self.kernel_of(context)?;
        rest::interrupt_kernel(&self.inner.http, &kernel.id)
    }

    /// Shuts a context's kernel down and forgets it.
    ///
    /// # Errors
    ///
    /// [`Error::KernelNotFound`] for a context that was never this sandbox's; [`Error::Http`] or
    /// [`Error::Transport`] when the server cannot shut the kernel down; [`Error::Closed`].
    pub fn remove_context(&self, context: &Context) -> Result<(), Error> {
        let kernel = self.kernel_of(context)?;
        {
            let mut k = self.inner.lock_kernels();
            k.by_id.remove(&kernel.id);
            k.order.retain(|id| id != &kernel.id);
            k.defaults.retain(|_, id| id != &kernel.id);
        }
        let _ = kernel.conn.close(self.inner.config.timeouts.close);
        rest::shutdown_kernel(&self.inner.http, &kernel.id)
    }

    /// State of the default Python context's connection. Never starts a kernel: with no
    /// default context (it was removed and not used since), the state is `Connecting` until
    /// the next call that needs one, and `Closed` once the sandbox is.
    pub fn connection_state(&self) -> ConnectionState {
        if self.inner.closed.load(Ordering::SeqCst) {
            return ConnectionState::Closed {
                reason: crate::CloseReason::Requested,
            };
        }
        match self.inner.lock_kernels().default_for("python") {
            Some(k) => k.state(),
            None => ConnectionState::Connecting,
        }
    }

    /// Every later state change of the default Python context's connection.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after the sandbox was closed; the errors of starting a kernel when
    /// the default context has to be started again.
    pub fn watch_connection(&self) -> Result<ConnectionWatch, Error> {
        Ok(self.default_kernel_for("python")?.conn.watch())
    }

    /// State of a context's connection.
    pub fn context_state(&self, context: &Context) -> Result<ConnectionState, Error> {
        Ok(self.kernel_of(context)?.state())
    }

    /// Every later state change of a context's connection.
    pub fn watch_context(&self, context: &Context) -> Result<ConnectionWatch, Error> {
        Ok(self.kernel_of(context)?.conn.watch())
    }

    /// Base URL of the sandbox's Jupyter server, for tools of your own (JupyterLab, a peer
    /// client in a benchmark). An isolated local sandbox has no TCP port: its server listens
    /// on a Unix socket, and this is `http+unix://` with the socket's path percent-encoded
    /// (`http+unix://%2Ftmp%2Fe2b-local-…%2Fsock%2Fserver.sock`), the form clients such as
    /// Python's requests-unixsocket take and [`Sandbox::jupyter`] accepts; the path alone is
    /// [`LocalSandbox::socket_path`]. Start the sandbox with
    /// [`Isolation::None`](crate::Isolation::None) for a `http://127.0.0.1:PORT` URL.
    pub fn jupyter_url(&self) -> &str {
        self.inner.backend.get().jupyter().public_url()
    }

    /// The headers every request to [`Sandbox::jupyter_url`] needs (for example
    /// `Authorization: token …`). Values are [`Secret`]s.
    pub fn jupyter_headers(&self) -> Vec<(String, Secret)> {
        self.inner
            .backend
            .get()
            .jupyter()
            .headers()
            .map(|(n, v)| (n.to_string(), Secret::new(v)))
            .collect()
    }

    /// The Jupyter server's token, for tools of your own (`None` for a server without one,
    /// such as E2B's template, which is reached through its traffic token header instead).
    pub fn jupyter_token(&self) -> Option<Secret> {
        self.inner
            .backend
            .get()
            .jupyter()
            .headers()
            .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
            .and_then(|(_, v)| v.strip_prefix("token "))
            .map(Secret::new)
    }

    /// The address of `port` inside the sandbox, as seen from here (E2B's `getHost`): for E2B
    /// `{port}-{sandbox_id}.{domain}`; for an existing Jupyter server its host with `port`
    /// (the port must be reachable there: the SDK forwards nothing); for a local sandbox
    /// without isolation or with [`LocalOptions::allow_internet_access`], `127.0.0.1:{port}`;
    /// for an isolated local sandbox, a new `127.0.0.1` port that the SDK forwards into the
    /// sandbox's network for as long as the returned [`Host`](crate::Host) lives (through
    /// `socat`, which must be installed).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for port 0; [`Error::Closed`]; for an isolated local sandbox
    /// [`Error::Setup`] when `socat` is missing or its relay does not start, and the errors of
    /// starting a command.
    pub fn get_host(&self, port: u16) -> Result<crate::Host, Error> {
        if port == 0 {
            return Err(Error::InvalidArgument(
                "get_host: port 0 names no port; pass the port the service listens on".into(),
            ));
        }
        self.ensure_open()?;
        match &self.inner.backend {
            Backends::Local(b) => b.host(self, port),
            Backends::Jupyter(b) => Ok(crate::Host::direct(b.host(port))),
            Backends::E2b(b) => Ok(crate::Host::direct(b.host(port))),
        }
    }

    /// Files in the sandbox: read, write, list, rename, remove (over the Jupyter contents API).
    pub fn files(&self) -> crate::files::Files {
        crate::files::Files::new(self.clone())
    }

    /// Shell commands in the sandbox: run one and wait, or spawn one and keep a handle.
    pub fn commands(&self) -> crate::commands::Commands {
        crate::commands::Commands::new(self.clone())
    }

    /// The absolute path of the server's root directory, the one relative paths mean (E2B:
    /// `/home/user`). Asked of a kernel the first time (the contents API does not say), then
    /// kept.
    ///
    /// # Errors
    ///
    /// The errors of running a cell in the sandbox's private files kernel.
    pub fn server_root(&self) -> Result<String, Error> {
        if let Some(local) = self.as_local() {
            return Ok(local.root().display().to_string());
        }
        if let Some(root) = self.inner.server_root.get() {
            return Ok(root.clone());
        }
        let out = crate::files_kernel::call(self, serde_json::json!({"op": "root"}))?;
        let root = out["root"]
            .as_str()
            .filter(|r| r.starts_with('/'))
            .ok_or_else(|| Error::protocol("the kernel did not report an absolute root path"))?
            .to_string();
        Ok(self.inner.server_root.get_or_init(|| root).clone())
    }

    /// Whether the sandbox is running: `false` once it was killed or closed (on any clone), or
    /// when its backend says it is gone (local: the server process has exited; E2B: the
    /// control plane does not list it as running, so a paused sandbox is not running; a
    /// Jupyter server: `GET /api` does not answer with success). When the backend cannot
    /// tell (E2B's API did not answer), `GET /api` on the sandbox decides. Answers within the
    /// request timeout (once per backend check); never an error.
    pub fn is_running(&self) -> bool {
        if self.ensure_open().is_err() {
            return false;
        }
        match self.inner.backend.get().running() {
            Liveness::Alive => true,
            Liveness::Gone => false,
            Liveness::Unknown => match self.http().send_once(Method::Get, "/api", None) {
                Ok(r) => r.is_success(),
                Err(e) => {
                    log::debug!("is_running: GET /api: {e}");
                    false
                }
            },
        }
    }

    /// Tears the sandbox down now, from any thread: in-flight calls fail with
    /// [`Error::Closed`], and later calls too, on every clone of this handle. Takes at most
    /// [`Timeouts::close`] in all, plus the backend's own teardown (killing the local server,
    /// or E2B's kill request). A kernel that is still starting is shut down when its start
    /// completes. Idempotent.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] with [`TimeoutPhase::Close`] when connection workers or kernel
    /// shutdowns did not finish within the budget (they are abandoned, not waited for), or the
    /// backend's error when it could not tear the sandbox down.
    pub fn kill(&self) -> Result<(), Error> {
        self.inner.kill()
    }

    /// Tears the sandbox down, returning any error that `Drop` would only log.
    pub fn close(self) -> Result<(), Error> {
        self.kill()
    }

    // ----- crate-internal plumbing -----

    pub(crate) fn http(&self) -> &Http {
        &self.inner.http
    }

    pub(crate) fn system_kernels(&self) -> &crate::commands::SystemKernels {
        &self.inner.system
    }

    /// A Python kernel set up like a context (hook, sandbox env vars) but not listed as one.
    pub(crate) fn start_system_kernel(&self) -> Result<Arc<Kernel>, Error> {
        self.start_kernel("python", None, &[])
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
        let lang = context::normalize_language(language);
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
    fn register(
        &self,
        kernel: Arc<Kernel>,
        default_for: Option<String>,
    ) -> Result<Arc<Kernel>, Error> {
        let mut k = self.inner.lock_kernels();
        // Checked under the registry lock, which kill() takes after setting `closed`: either
        // kill() finds the kernel listed, or this sees `closed`.
        if self.inner.closed.load(Ordering::SeqCst) {
            drop(k);
            log::debug!("kernel {} started after the sandbox closed", kernel.id);
            self.discard(&kernel);
            return Err(Error::Closed);
        }
        if let Some(lang) = default_for {
            k.defaults.insert(lang, kernel.id.clone());
        }
        k.order.push(kernel.id.clone());
        k.by_id.insert(kernel.id.clone(), kernel.clone());
        Ok(kernel)
    }

    /// Stops a kernel nobody can use: its worker, and the kernel on the server.
    fn discard(&self, kernel: &Kernel) {
        let close = self.inner.config.timeouts.close;
        let _ = kernel.conn.close(close);
        if let Err(e) = rest::shutdown_kernel(&self.inner.http_within(close), &kernel.id) {
            log::debug!("could not shut down kernel {}: {e}", kernel.id);
        }
    }

    fn kernel_specs(&self) -> Result<&KernelSpecs, Error> {
        if let Some(s) = self.inner.specs.get() {
            return Ok(s);
        }
        let specs = rest::kernel_specs(&self.inner.http)?;
        Ok(self.inner.specs.get_or_init(|| specs))
    }

    fn start_kernel(
        &self,
        language: &str,
        cwd: Option<&str>,
        envs: &[(String, String)],
    ) -> Result<Arc<Kernel>, Error> {
        self.ensure_open()?;
        let (spec, lang) = context::spec_for(self.kernel_specs()?, language)?;
        let mut kernel = Kernel::start(
            &self.inner.http,
            &self.inner.backend.shared(),
            &spec,
            &lang,
            &self.inner.config.connection,
        )?;
        kernel.cwd = cwd.map(str::to_string);
        kernel.envs = envs.to_vec();
        let kernel = Arc::new(kernel);
        if let Err(e) = self.prepare(&kernel) {
            self.discard(&kernel);
            return Err(e);
        }
        Ok(kernel)
    }

    /// Applies the sandbox's env vars, the context's own, and its cwd.
    fn prepare(&self, kernel: &Arc<Kernel>) -> Result<(), Error> {
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
    fn prepare_restarted(&self, kernel: &Arc<Kernel>) -> Result<(), Error> {
        kernel.wait_ready(self.inner.config.timeouts.start)?;
        self.prepare(kernel)
    }

    /// Interrupts a kernel, giving the request at most `within`.
    pub(crate) fn interrupt_kernel(&self, kernel: &Kernel, within: Duration) {
        if let Err(e) = rest::interrupt_kernel(&self.inner.http_within(within), &kernel.id) {
            log::warn!("could not interrupt kernel {}: {e}", kernel.id);
        }
    }

    /// Restarts a kernel on the server and sets it up again (hook, env vars, cwd).
    pub(crate) fn restart_kernel(&self, kernel: &Arc<Kernel>) -> Result<(), Error> {
        rest::restart_kernel(&self.inner.http, &kernel.id)?;
        self.prepare_restarted(kernel)
    }
}

fn context_of(kernel: &Kernel) -> Context {
    Context {
        id: kernel.id.clone(),
        language: kernel.language.clone(),
        cwd: kernel.cwd.clone(),
    }
}

impl Inner {
    fn kill(&self) -> Result<(), Error> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        log::debug!("closing sandbox {}", self.backend.get().sandbox_id());
        let deadline = Instant::now() + self.config.timeouts.close;
        let mut kernels: Vec<Arc<Kernel>> = {
            let mut k = self.lock_kernels();
            k.order.clear();
            k.defaults.clear();
            k.by_id.drain().map(|(_, v)| v).collect()
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
    fn shutdown_kernels(&self, kernels: &[Arc<Kernel>], deadline: Instant) -> Result<(), Error> {
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
        let mut first_err = None;
        let mut done = 0;
        while done < kernels.len() {
            match rx.recv_deadline(deadline) {
                Ok((id, result)) => {
                    done += 1;
                    if let Err(e) = result {
                        log::debug!("could not shut down kernel {id}: {e}");
                        first_err.get_or_insert(e);
                    }
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    log::warn!(
                        "{} kernel(s) not shut down within the close budget",
                        kernels.len() - done
                    );
                    first_err.get_or_insert(Error::Timeout {
                        phase: TimeoutPhase::Close,
                        after: self.config.timeouts.close,
                    });
                    break;
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn lock_kernels(&self) -> MutexGuard<'_, Kernels> {
        lock(&self.kernels)
    }

    /// A client for calls that must end within `limit` (teardown, interrupts).
    fn http_within(&self, limit: Duration) -> Http {
        let limit = limit.max(Duration::from_millis(1));
        let timeouts = self
            .config
            .timeouts
            .clone()
            .request(limit)
            .connect(self.config.timeouts.connect.min(limit));
        Http::new(self.backend.get().jupyter().clone(), &timeouts)
            .with_retry(self.config.connection.reconnect.clone().max_elapsed(limit))
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.kill() {
            log::warn!("closing sandbox {}: {e}", self.backend.get().sandbox_id());
        }
    }
}
