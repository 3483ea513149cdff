//! `Sandbox`: the blocking facade over one sandbox's kernels, whatever its backend.

mod builder;
mod forward;
mod host;
mod kernels;
mod spare;
mod teardown;

pub use builder::SandboxBuilder;
pub(crate) use builder::SandboxConfig;
pub use host::Host;
use kernels::context_of;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::backend::e2b::{E2bBackend, E2bSandbox};
use crate::backend::jupyter::JupyterBackend;
use crate::backend::jupyterhub::JupyterHubBackend;
use crate::backend::local::{LocalBackend, LocalSandbox};
use crate::backend::{Backend, Liveness};
use crate::config::Secret;
use crate::context::{Context, ContextOptions};
use crate::error::Error;
use crate::exec::code::CodeBuilder;
use crate::jupyter::rest::{self, KernelSpecs};
use crate::jupyter::state::{ConnectionState, ConnectionWatch};
use crate::kernel::Kernel;
use crate::model::execution::Execution;
use crate::net::{Http, Method};
use crate::plane::{DataPlane, Plane};

/// A code-interpreter sandbox: stateful kernels, their output, and the sandbox's lifetime.
///
/// `Sandbox` is a cheap `Clone` handle (an `Arc` inside) and `Send + Sync`: clone it into
/// threads; executions on one context run one after another in its kernel. The sandbox is torn
/// down by [`Sandbox::kill`] (from any clone) or when the last clone drops;
/// [`Sandbox::close`] does the same and returns the error instead of logging it.
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
    JupyterHub(Arc<JupyterHubBackend>),
    E2b(Arc<E2bBackend>),
}

impl Backends {
    /// The backend, for the connections that outlive a borrow of the sandbox.
    fn shared(&self) -> Arc<dyn Backend> {
        match self {
            Backends::Local(b) => b.clone(),
            Backends::Jupyter(b) => b.clone(),
            Backends::JupyterHub(b) => b.clone(),
            Backends::E2b(b) => b.clone(),
        }
    }

    fn get(&self) -> &dyn Backend {
        match self {
            Backends::Local(b) => &**b,
            Backends::Jupyter(b) => &**b,
            Backends::JupyterHub(b) => &**b,
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
    system: crate::kernel::pool::KernelPool,
    /// The server's root_dir as an absolute path, once a kernel has told it.
    server_root: OnceLock<String>,
    /// What carries code, files, commands and terminals.
    plane: Plane,
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
    /// Kernels being set up, not listed yet: kill() closes them too, so a set-up under way
    /// fails at once instead of waiting out its timeout.
    preparing: HashMap<String, Arc<Kernel>>,
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
            .field("data_plane", &self.inner.plane.kind())
            .field("jupyter", self.inner.backend.get().jupyter())
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Opening a sandbox.
impl Sandbox {
    /// Starts a local sandbox with every default. See [`SandboxBuilder::local_with`].
    ///
    /// # Errors
    ///
    /// As for [`SandboxBuilder::local_with`].
    ///
    /// # Examples
    ///
    /// ```
    /// # std::thread::spawn(|| { std::thread::sleep(std::time::Duration::from_secs(120)); eprintln!("doctest deadline passed"); std::process::exit(1) });
    /// use e2b_blocking::Sandbox;
    ///
    /// let sbx = Sandbox::local()?; // torn down when the last clone is dropped
    /// let exec = sbx.run_code("x = 6 * 7\nx")?;
    /// assert_eq!(exec.text(), Some("42"));
    /// # Ok::<(), e2b_blocking::Error>(())
    /// ```
    pub fn local() -> Result<Sandbox, Error> {
        Sandbox::builder().local()
    }

    /// Uses an existing Jupyter server with default options. See [`SandboxBuilder::jupyter`].
    ///
    /// # Errors
    ///
    /// As for [`SandboxBuilder::jupyter`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use e2b_blocking::Sandbox;
    ///
    /// // jupyter_server, Jupyter Kernel Gateway or Enterprise Gateway, with its token.
    /// let sbx = Sandbox::jupyter("http://127.0.0.1:8888", "my-token")?;
    /// println!("{}", sbx.run_code("import sys; sys.version")?.text().unwrap_or_default());
    /// # Ok::<(), e2b_blocking::Error>(())
    /// ```
    pub fn jupyter(url: &str, token: impl Into<Secret>) -> Result<Sandbox, Error> {
        Sandbox::builder().jupyter(url, token)
    }

    /// Uses `user`'s default server on the JupyterHub at `hub_url`, starting it when it is not
    /// running, with an API token of that user (from the Hub's token page) or of a service
    /// allowed to start and access it. See [`SandboxBuilder::jupyterhub`].
    ///
    /// # Errors
    ///
    /// As for [`SandboxBuilder::jupyterhub_with`].
    pub fn jupyterhub(
        hub_url: &str,
        user: &str,
        token: impl Into<Secret>,
    ) -> Result<Sandbox, Error> {
        Sandbox::builder().jupyterhub(hub_url, user, token)
    }

    /// Creates an E2B sandbox from the environment (`E2B_API_KEY`, …) with default options.
    ///
    /// # Errors
    ///
    /// As for [`SandboxBuilder::e2b_with`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use e2b_blocking::Sandbox;
    ///
    /// // Reads E2B_API_KEY (and E2B_DOMAIN, …) from the environment.
    /// let sbx = Sandbox::create()?;
    /// let exec = sbx.run_code("1 + 1")?;
    /// assert_eq!(exec.text(), Some("2"));
    /// sbx.kill()?; // an E2B sandbox lives until its timeout otherwise
    /// # Ok::<(), e2b_blocking::Error>(())
    /// ```
    pub fn create() -> Result<Sandbox, Error> {
        Sandbox::builder().e2b()
    }

    /// A builder for options shared by every backend; it ends with the backend
    /// ([`SandboxBuilder::local_with`], [`SandboxBuilder::jupyter`],
    /// [`SandboxBuilder::e2b_with`], …).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use e2b_blocking::{LocalOptions, Sandbox, Timeouts};
    ///
    /// let sbx = Sandbox::builder()
    ///     .timeouts(Timeouts::default().execution(Some(Duration::from_secs(60))))
    ///     .envs([("MODE", "test")]) // for every execution and command
    ///     .local_with(LocalOptions::new().packages(["numpy==2.2.6"]))?;
    /// # Ok::<(), e2b_blocking::Error>(())
    /// ```
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder::default()
    }

    fn open(backend: Backends, config: SandboxConfig) -> Result<Sandbox, Error> {
        let http = Http::new(backend.get().jupyter().clone(), &config.timeouts)
            .with_retry(config.connection.reconnect.clone());
        let plane = backend.get().plane();
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
                plane,
            }),
        };
        // The default Python context is made up front, as E2B's sandbox does, so the first
        // run_code does not pay for a kernel start (E2B's code-interpreter server made its own).
        if let Plane::Jupyter = sandbox.inner.plane {
            sandbox.default_kernel_for("python")?;
        }
        Ok(sandbox)
    }
}

/// Running code.
impl Sandbox {
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
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let sbx = e2b_blocking::Sandbox::local()?;
    /// let exec = sbx.run_code("print('hi'); 1 / 0")?;
    /// assert_eq!(exec.logs.stdout.concat(), "hi\n");
    /// // An exception is data, not an Err...
    /// assert_eq!(exec.error.as_ref().map(|e| e.name.as_str()), Some("ZeroDivisionError"));
    /// // ...until you ask for one.
    /// assert!(exec.check().is_err());
    /// # Ok::<(), e2b_blocking::Error>(())
    /// ```
    pub fn run_code(&self, code: impl Into<String>) -> Result<Execution, Error> {
        self.code(code).run()
    }

    /// Starts describing an execution: callbacks, timeout, context, env vars; `.run()` runs it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// # let sbx = e2b_blocking::Sandbox::local()?;
    ///
    /// let exec = sbx
    ///     .code("for i in range(3): print(i)")
    ///     .on_stdout(|m| print!("{}", m.line)) // on this thread, as output arrives
    ///     .timeout(Duration::from_secs(10)) // then the kernel is interrupted: Err(Timeout)
    ///     .envs([("FOO", "bar")]) // for this execution only
    ///     .run()?;
    /// assert_eq!(exec.logs.stdout.concat(), "0\n1\n2\n");
    /// # Ok::<(), e2b_blocking::Error>(())
    /// ```
    pub fn code(&self, code: impl Into<String>) -> CodeBuilder<'_> {
        CodeBuilder::new(self, code.into())
    }
}

/// Contexts: separate kernels with their own state, language and working directory.
impl Sandbox {
    /// Creates a new context: its own kernel with its own state.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a language the server has no kernel for;
    /// [`Error::FileNotFound`] or [`Error::NotADirectory`] for a cwd that cannot be entered;
    /// [`Error::Timeout`] with `KernelStart` when the kernel does not come up; [`Error::Closed`].
    pub fn create_context(&self, options: ContextOptions) -> Result<Context, Error> {
        if let Plane::E2b(p) = self.plane()? {
            return p.create_context(
                options.language.as_deref(),
                options.cwd.as_deref(),
                &options.envs,
            );
        }
        let language = options.language.as_deref().unwrap_or("python");
        let kernel = self.start_kernel(language, options.cwd.as_deref(), &options.envs)?;
        Ok(context_of(&*self.register(kernel, None)?))
    }

    /// Every live context, default ones included, in creation order.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after [`Sandbox::kill`]; [`Error::ConnectionLost`] or
    /// [`Error::Timeout`] when the server cannot be asked.
    pub fn list_contexts(&self) -> Result<Vec<Context>, Error> {
        if let Plane::E2b(p) = self.plane()? {
            return p.list_contexts();
        }
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
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after [`Sandbox::kill`]; the errors of starting and setting up a kernel
    /// ([`Error::Timeout`] with phase `KernelStart`, [`Error::KernelSetup`]).
    pub fn default_context(&self) -> Result<Context, Error> {
        if let Plane::E2b(p) = self.plane()? {
            return p.default_context();
        }
        Ok(context_of(&*self.default_kernel_for("python")?))
    }

    /// Restarts a context's kernel: its state is lost; cwd and env vars are set again.
    ///
    /// # Errors
    ///
    /// [`Error::KernelNotFound`] for a context that is gone; [`Error::Http`] when the server
    /// refuses; [`Error::Timeout`] when the restarted kernel does not answer; [`Error::Closed`].
    pub fn restart_context(&self, context: &Context) -> Result<(), Error> {
        if let Plane::E2b(p) = self.plane()? {
            return p.restart_context(&context.id);
        }
        self.restart_kernel(&self.kernel_of(context)?)
    }

    /// Interrupts whatever a context is running.
    ///
    /// # Errors
    ///
    /// [`Error::KernelNotFound`] for a context whose kernel is gone; [`Error::Closed`] after
    /// [`Sandbox::kill`]; [`Error::Http`] or [`Error::Transport`] when the server refuses or
    /// cannot be reached.
    pub fn interrupt(&self, context: &Context) -> Result<(), Error> {
        if let Plane::E2b(_) = self.plane()? {
            return Err(Error::Unsupported {
                feature: "interrupting a context",
                needs: "a Jupyter server".into(),
                found: "E2B's code-interpreter server, which interrupts a cell only when its \
                        run_code call is dropped (give run_code a timeout)"
                    .into(),
            });
        }
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
        if let Plane::E2b(p) = self.plane()? {
            return p.remove_context(&context.id);
        }
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
}

/// Connection state: what the link to each kernel is doing, now and as it changes.
impl Sandbox {
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
    ///
    /// # Errors
    ///
    /// [`Error::KernelNotFound`] for a context this sandbox does not hold.
    pub fn context_state(&self, context: &Context) -> Result<ConnectionState, Error> {
        Ok(self.kernel_of(context)?.state())
    }

    /// Every later state change of a context's connection.
    ///
    /// # Errors
    ///
    /// [`Error::KernelNotFound`] for a context this sandbox does not hold.
    pub fn watch_context(&self, context: &Context) -> Result<ConnectionWatch, Error> {
        Ok(self.kernel_of(context)?.conn.watch())
    }
}

/// Files and commands.
impl Sandbox {
    /// Files in the sandbox: read, write, list, rename, remove, watch (over envd on E2B's data
    /// plane, over the Jupyter contents API and a private kernel on the Jupyter plane).
    pub fn files(&self) -> crate::files::Files {
        crate::files::Files::new(self.clone())
    }

    /// Shell commands in the sandbox: run one and wait, or spawn one and keep a handle.
    pub fn commands(&self) -> crate::commands::Commands {
        crate::commands::Commands::new(self.clone())
    }

    /// Interactive terminals (PTYs) in the sandbox: envd processes with a PTY on E2B's data
    /// plane, the Jupyter terminals API on the Jupyter plane.
    pub fn pty(&self) -> crate::pty::Pty {
        crate::pty::Pty::new(self.clone())
    }
}

/// The sandbox and its server: ids, addresses, and what only one backend has.
impl Sandbox {
    /// The data plane that carries this sandbox's code, files, commands and terminals:
    /// [`DataPlane::Jupyter`] for the local sandbox, Jupyter servers and E2B templates that
    /// serve Jupyter on port 8888; [`DataPlane::E2b`] for E2B templates that keep Jupyter
    /// private (0.4.7 on), reached through envd and the code-interpreter server.
    pub fn data_plane(&self) -> DataPlane {
        self.inner.plane.kind()
    }

    /// The plane, once the sandbox is known to be open.
    pub(crate) fn plane(&self) -> Result<&Plane, Error> {
        self.ensure_open()?;
        Ok(&self.inner.plane)
    }

    /// The sandbox's id: the E2B sandbox id, or `local-<pid>` for a local sandbox.
    pub fn sandbox_id(&self) -> &str {
        self.inner.backend.get().sandbox_id()
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
            .map(|(n, v)| (n.to_string(), v.clone()))
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
            .and_then(|(_, v)| v.expose().strip_prefix("token "))
            .map(Secret::new)
    }

    /// The address of `port` inside the sandbox, as seen from here (E2B's `getHost`): for E2B
    /// `{port}-{sandbox_id}.{domain}`; for an existing Jupyter server its host with `port`
    /// (the port must be reachable there: the SDK forwards nothing); for a local sandbox
    /// without isolation or with
    /// [`LocalOptions::allow_internet_access`](crate::LocalOptions::allow_internet_access),
    /// `127.0.0.1:{port}`; for an isolated local sandbox, a new `127.0.0.1` port that the SDK
    /// forwards into the sandbox's network for as long as the returned [`Host`](crate::Host)
    /// lives (through `socat`, which must be installed).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for port 0; [`Error::Closed`]; for an isolated local sandbox
    /// [`Error::Setup`] when `socat` is missing or its relay does not start, and the errors of
    /// starting a command.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let sbx = e2b_blocking::Sandbox::local()?;
    /// let _server = sbx.commands().spawn("python3 -m http.server 8000")?;
    /// let host = sbx.get_host(8000)?; // keep it while you use the address
    /// println!("the server answers at http://{host}/");
    /// # Ok::<(), e2b_blocking::Error>(())
    /// ```
    pub fn get_host(&self, port: u16) -> Result<Host, Error> {
        if port == 0 {
            return Err(Error::InvalidArgument(
                "get_host: port 0 names no port; pass the port the service listens on".into(),
            ));
        }
        self.ensure_open()?;
        match &self.inner.backend {
            Backends::Local(b) if b.own_network() => {
                let (addr, forward) = forward::start(self, b.server_dir(), b.inner_pid(), port)?;
                Ok(Host::forwarded(addr, forward))
            }
            Backends::Local(_) => Ok(Host::direct(format!("127.0.0.1:{port}"))),
            Backends::Jupyter(b) => Ok(Host::direct(b.host(port))),
            Backends::JupyterHub(b) => Ok(Host::direct(b.host(port))),
            Backends::E2b(b) => Ok(Host::direct(b.host(port))),
        }
    }

    /// The absolute path of the sandbox root as code in the sandbox sees it: the directory
    /// relative paths mean in [`Sandbox::files`], code, commands and context cwds, so a cwd
    /// or a path built from it works everywhere. `/home/user` on E2B and in the isolated local
    /// sandbox; without isolation the host directory the sandbox runs in (also
    /// [`LocalSandbox::root`](crate::local::LocalSandbox::root)); on another Jupyter server its
    /// `root_dir`, asked of a kernel the first time (the contents API does not say), then kept.
    ///
    /// # Errors
    ///
    /// On servers other than the local sandbox's, the errors of running a cell in the
    /// sandbox's private files kernel.
    pub fn server_root(&self) -> Result<String, Error> {
        Ok(self.root_names()?.swap_remove(0))
    }

    /// The root as code sees it ([`Sandbox::server_root`]), then any other name of the same
    /// directory (the host's spelling of an unisolated root, before symlinks are resolved).
    pub(crate) fn root_names(&self) -> Result<Vec<String>, Error> {
        if let Backends::Local(b) = &self.inner.backend {
            return Ok(b.root_names().to_vec());
        }
        if let Some(root) = self.inner.server_root.get() {
            return Ok(vec![root.clone()]);
        }
        let out = crate::kernel::helper::call(self, serde_json::json!({"op": "root"}))?;
        let root = out["root"]
            .as_str()
            .filter(|r| r.starts_with('/'))
            .ok_or_else(|| Error::protocol("the kernel did not report an absolute root path"))?
            .to_string();
        Ok(vec![self.inner.server_root.get_or_init(|| root).clone()])
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
}

/// Lifetime: whether the sandbox still runs, and tearing it down.
impl Sandbox {
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
        if let Plane::E2b(p) = &self.inner.plane {
            return p.health().unwrap_or_else(|e| {
                log::debug!("is_running: envd's health: {e}");
                false
            });
        }
        match self.inner.backend.get().running() {
            Liveness::Alive => true,
            Liveness::Gone | Liveness::Paused => false,
            Liveness::Unknown => match self.http().send_once(Method::Get, "/api", None) {
                Ok(r) => r.is_success(),
                Err(e) => {
                    log::debug!("is_running: GET /api: {e}");
                    false
                }
            },
        }
    }

    /// Tears the sandbox down now, from any thread: in-flight calls fail with [`Error::Closed`],
    /// and later calls too, on every clone of this handle. Takes at most
    /// [`Timeouts::close`](crate::Timeouts::close) in all, plus the backend's own teardown (killing
    /// the local server, or E2B's kill request). A kernel that is still starting is shut down when
    /// its start completes. Idempotent.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] with [`TimeoutPhase::Close`](crate::TimeoutPhase::Close) when connection
    /// workers or kernel shutdowns did not finish within the budget (they are abandoned, not waited
    /// for), or the backend's error when it could not tear the sandbox down.
    pub fn kill(&self) -> Result<(), Error> {
        self.inner.kill()
    }

    /// Tears the sandbox down, returning any error that `Drop` would only log.
    ///
    /// # Errors
    ///
    /// The first error of shutting down kernels or the backend within
    /// [`Timeouts::close`](crate::Timeouts::close) ([`Error::Timeout`] with phase `Close`,
    /// [`Error::Http`], [`Error::Transport`]); the sandbox counts as closed either way.
    pub fn close(self) -> Result<(), Error> {
        self.kill()
    }
}
