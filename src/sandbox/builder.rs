//! [`SandboxBuilder`]: the options every sandbox shares, then the backend that makes it.

use std::sync::Arc;

use crate::backend::e2b::{
    ConnectOptions, DEFAULT_LIFETIME, E2bBackend, E2bConfig, E2bOptions, ForkOptions,
};
use crate::backend::jupyter::JupyterBackend;
use crate::backend::jupyterhub::{JupyterHubBackend, JupyterHubOptions};
use crate::backend::local::{LocalBackend, LocalOptions};
use crate::config::{ConnectionConfig, Keepalive, ReconnectPolicy, Secret, Timeouts};
use crate::error::Error;

use super::{Backends, Sandbox};

/// Settings every sandbox has, whatever its backend.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SandboxConfig {
    pub(crate) timeouts: Timeouts,
    pub(crate) connection: ConnectionConfig,
    pub(crate) envs: crate::env_vars::EnvVars,
}

/// Builds a [`Sandbox`]: set the shared options, then pick the backend.
#[derive(Debug, Clone, Default, PartialEq)]
#[must_use = "a builder does nothing until a backend method such as .local() is called"]
pub struct SandboxBuilder {
    config: SandboxConfig,
    /// Set by [`SandboxBuilder::binary_framing`]; otherwise chosen per backend.
    binary_framing: Option<bool>,
    /// PEM bundles or DER certificates given to [`SandboxBuilder::add_root_certificate`].
    tls_roots: Vec<Vec<u8>>,
    /// Server certificates given to [`SandboxBuilder::trust_server_certificate`].
    tls_pins: Vec<Vec<u8>>,
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

    /// Trusts exactly the server certificate `pem_or_der` (PEM or DER; a PEM bundle pins each
    /// certificate in it) for `https://` and `wss://` connections to a Jupyter server or
    /// JupyterHub: for a server with its own self-signed certificate, such as one made the
    /// way Jupyter's docs show (`openssl req -x509 …`, which marks it `CA:TRUE`, so it cannot
    /// serve as a root for itself). A server presenting this certificate is trusted whatever
    /// its issuer, names, dates or CA bit; the TLS handshake still proves the server holds its
    /// key. Any other certificate must chain to a root given to
    /// [`SandboxBuilder::add_root_certificate`]: with pins and no roots, Mozilla's roots and
    /// `SSL_CERT_FILE` are not used. Not used for E2B. Defaults to none. A certificate that does
    /// not parse fails the backend method with [`Error::InvalidArgument`]; a server whose
    /// certificate is not trusted fails with [`Error::UntrustedCertificate`].
    pub fn trust_server_certificate(mut self, pem_or_der: impl Into<Vec<u8>>) -> Self {
        self.tls_pins.push(pem_or_der.into());
        self
    }

    /// What a Jupyter server or JupyterHub's certificate must be.
    fn tls(&self) -> Result<crate::net::tls::TlsRoots, Error> {
        crate::net::tls::TlsRoots::new(&self.tls_roots)?.pinning(&self.tls_pins)
    }

    /// `config` plus the roots given to this builder.
    fn e2b_config(&self, config: &E2bConfig) -> E2bConfig {
        let mut config = config.clone();
        config.tls_roots.extend(self.tls_roots.iter().cloned());
        config.reconnect = self.config.connection.reconnect.clone();
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
        self.config.envs.extend(crate::env_vars::owned(envs));
        self
    }

    /// Starts a local sandbox with default [`LocalOptions`].
    ///
    /// # Errors
    ///
    /// As for [`SandboxBuilder::local_with`].
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
        let tls = self.tls()?;
        let backend = JupyterBackend::connect(url, &token.into(), &self.config.timeouts, tls)?;
        Sandbox::open(Backends::Jupyter(Arc::new(backend)), self.config_for(false))
    }

    /// Uses `user`'s default server on a JupyterHub, left running on close; see
    /// [`SandboxBuilder::jupyterhub_with`].
    ///
    /// # Errors
    ///
    /// As for [`SandboxBuilder::jupyterhub_with`].
    pub fn jupyterhub(
        self,
        hub_url: &str,
        user: &str,
        token: impl Into<Secret>,
    ) -> Result<Sandbox, Error> {
        self.jupyterhub_with(hub_url, user, token, &JupyterHubOptions::default())
    }

    /// Uses a server of `user` on the JupyterHub at `hub_url` (the Hub's address, with its
    /// `base_url` prefix if it has one; any page under `/hub/` is taken too). `token` is an API
    /// token of the user (the Hub's token page, or `JUPYTERHUB_API_TOKEN` inside a user's server)
    /// or of a service allowed to start and access the server. The Hub is asked for the server
    /// (`GET /hub/api/users/{user}`); when it is not running it is started (`POST .../server`) and
    /// a pending spawn is waited for within [`Timeouts::sandbox_start`]. Then everything goes
    /// through the Hub's proxy at the server's URL (`/user/{user}/`), as for
    /// [`SandboxBuilder::jupyter`], with the same token. When a connection is lost for good, the
    /// Hub says whether the server still runs: a stopped server is [`Error::SandboxNotFound`].
    ///
    /// # Errors
    ///
    /// [`Error::SpawnFailed`] when the Hub could not start the server (with the Hub's message);
    /// [`Error::Timeout`] with [`TimeoutPhase::SandboxStart`](crate::TimeoutPhase::SandboxStart)
    /// when it is not ready within [`Timeouts::sandbox_start`]; [`Error::Authentication`] for a
    /// token the Hub or the server refuses; [`Error::InvalidArgument`] for a malformed URL or
    /// certificate, or a user the Hub does not know (or the token may not see);
    /// [`Error::Transport`] when the Hub cannot be reached; then the errors of starting the default
    /// context's kernel.
    pub fn jupyterhub_with(
        self,
        hub_url: &str,
        user: &str,
        token: impl Into<Secret>,
        options: &JupyterHubOptions,
    ) -> Result<Sandbox, Error> {
        let tls = self.tls()?;
        let backend = JupyterHubBackend::connect(
            hub_url,
            user,
            &token.into(),
            options,
            &self.config.timeouts,
            tls,
        )?;
        Sandbox::open(
            Backends::JupyterHub(Arc::new(backend)),
            self.config_for(false),
        )
    }

    /// Creates an E2B sandbox with [`E2bConfig::from_env`] and default [`E2bOptions`].
    ///
    /// # Errors
    ///
    /// As for [`SandboxBuilder::e2b_with`]; [`Error::InvalidArgument`] when `E2B_API_KEY` is not
    /// set.
    pub fn e2b(self) -> Result<Sandbox, Error> {
        self.e2b_with(&E2bConfig::from_env(), &E2bOptions::default())
    }

    /// Creates an E2B sandbox; closing the handle kills it.
    ///
    /// [`E2bOptions::envs`] are set in every kernel (contexts and the kernels that run
    /// commands) before the builder's own [`envs`](SandboxBuilder::envs), which win on a clash:
    /// the template's Jupyter server was started before the sandbox existed, so the API's
    /// `envVars` never reach its kernels by themselves.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] without an API key or with bad options;
    /// [`Error::Authentication`] for a rejected key; [`Error::RateLimited`] when E2B refuses more
    /// sandboxes; [`Error::Http`], [`Error::Transport`] or [`Error::Timeout`] (phase
    /// `SandboxStart`) from the control plane; then the errors of reaching the sandbox's Jupyter
    /// server and starting the default context's kernel.
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

    /// Connects to a running or paused E2B sandbox by id; closing the handle leaves it running (see
    /// [`E2bSandbox::set_kill_on_close`](crate::e2b::E2bSandbox::set_kill_on_close)). The env vars
    /// it was created with are not known here: pass them again with [`SandboxBuilder::envs`] if
    /// code needs them.
    ///
    /// # Errors
    ///
    /// [`Error::SandboxNotFound`] for an unknown or killed sandbox; otherwise as for
    /// [`SandboxBuilder::e2b_with`].
    pub fn e2b_connect(self, config: &E2bConfig, sandbox_id: &str) -> Result<Sandbox, Error> {
        let options = ConnectOptions::new().lifetime(DEFAULT_LIFETIME);
        self.e2b_connect_with(config, sandbox_id, &options)
    }

    /// [`SandboxBuilder::e2b_connect`] with the connect's own options: how long the sandbox
    /// lives at least, and how a paused one comes back ([`OnResume`](crate::e2b::OnResume)).
    ///
    /// # Errors
    ///
    /// [`Error::GuestUnresponsive`] when the sandbox must be resumed with
    /// [`OnResume::Reboot`](crate::e2b::OnResume::Reboot); otherwise as for
    /// [`SandboxBuilder::e2b_connect`].
    pub fn e2b_connect_with(
        self,
        config: &E2bConfig,
        sandbox_id: &str,
        options: &ConnectOptions,
    ) -> Result<Sandbox, Error> {
        let config = &self.e2b_config(config);
        let timeouts = self.config.timeouts.clone();
        let sandbox_config = self.config_for(false);
        let backend = E2bBackend::connect(config, sandbox_id, options, &timeouts)?;
        Sandbox::open(Backends::E2b(Arc::new(backend)), sandbox_config)
    }

    /// Forks the running E2B sandbox `sandbox_id` (E2B's `fork`): it is checkpointed in place
    /// (briefly paused; its id and lifetime stay) and [`ForkOptions::count`] new sandboxes
    /// start from that checkpoint, kernel state included. One result per fork, in order: a
    /// `Sandbox` (created, so closing it kills it) or why that fork did not start or could not
    /// be reached. The env vars of the source are not known here: pass them again with
    /// [`SandboxBuilder::envs`] if code needs them.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a count outside 1 to
    /// [`MAX_FORK_COUNT`](crate::e2b::MAX_FORK_COUNT); [`Error::SandboxNotFound`] for an unknown
    /// source; otherwise as for [`SandboxBuilder::e2b_with`]. Then no fork was attempted.
    pub fn e2b_fork(
        self,
        config: &E2bConfig,
        sandbox_id: &str,
        options: &ForkOptions,
    ) -> Result<Vec<Result<Sandbox, Error>>, Error> {
        let config = &self.e2b_config(config);
        let sandbox_config = self.config_for(false);
        let forks = E2bBackend::fork(config, sandbox_id, options, &sandbox_config.timeouts)?;
        Ok(forks
            .into_iter()
            .map(|fork| {
                let backend = fork?;
                Sandbox::open(Backends::E2b(Arc::new(backend)), sandbox_config.clone())
            })
            .collect())
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
        if !options.warm_spare {
            return self.start_local(&options);
        }
        if let Some(spare) = super::spare::take(&self, &options) {
            super::spare::replenish(&self, &options);
            return Ok(spare);
        }
        // The caller's sandbox first: a spare starting beside it would slow it down.
        let sandbox = self.clone().start_local(&options);
        if sandbox.is_ok() {
            super::spare::replenish(&self, &options);
        }
        sandbox
    }

    /// Starts a local sandbox now, whatever [`LocalOptions::warm_spare`] says.
    pub(super) fn start_local(self, options: &LocalOptions) -> Result<Sandbox, Error> {
        let backend = LocalBackend::start(options, &self.config.envs, &self.config.timeouts)?;
        Sandbox::open(Backends::Local(Arc::new(backend)), self.config_for(true))
    }
}
