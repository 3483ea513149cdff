//! What kind of E2B sandbox to create: template, lifetime, metadata, env vars, network.

use std::collections::BTreeMap;
use std::time::Duration;

/// The template of E2B's code-interpreter sandboxes (Jupyter on port 8888).
pub const DEFAULT_TEMPLATE: &str = "code-interpreter-v1";

/// How long a new sandbox lives unless extended: 300 s, as in E2B's SDKs.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// Options for creating an E2B sandbox (`POST /sandboxes`). `Debug` shows env var names only.
#[derive(Clone, PartialEq, Eq)]
pub struct E2bOptions {
    pub(crate) template: String,
    pub(crate) lifetime: Duration,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) envs: BTreeMap<String, String>,
    pub(crate) secure: bool,
    pub(crate) auto_pause: Option<bool>,
    pub(crate) allow_internet_access: Option<bool>,
    pub(crate) allow_public_traffic: Option<bool>,
}

impl Default for E2bOptions {
    fn default() -> Self {
        E2bOptions {
            template: DEFAULT_TEMPLATE.to_string(),
            lifetime: DEFAULT_LIFETIME,
            metadata: BTreeMap::new(),
            envs: BTreeMap::new(),
            secure: true,
            auto_pause: None,
            allow_internet_access: None,
            allow_public_traffic: None,
        }
    }
}

impl std::fmt::Debug for E2bOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E2bOptions")
            .field("template", &self.template)
            .field("lifetime", &self.lifetime)
            .field("metadata", &self.metadata)
            .field(
                "envs",
                &crate::env_vars::names(self.envs.keys().map(String::as_str)),
            )
            .field("secure", &self.secure)
            .field("auto_pause", &self.auto_pause)
            .field("allow_internet_access", &self.allow_internet_access)
            .field("allow_public_traffic", &self.allow_public_traffic)
            .finish()
    }
}

impl E2bOptions {
    /// Options with every default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Template id or alias. It must run a Jupyter server on port 8888, as E2B's
    /// code-interpreter template does. Defaults to `code-interpreter-v1`.
    pub fn template(mut self, template: impl Into<String>) -> Self {
        self.template = template.into();
        self
    }

    /// How long the sandbox lives before E2B kills it (the API's `timeout`, whole seconds,
    /// rounded up), unless extended with `set_timeout`. Defaults to 300 s; the account's tier
    /// caps it (1 h on Hobby, 24 h on Pro).
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Key-value pairs stored with the sandbox, for listing and filtering. Defaults to none.
    pub fn metadata<I, K, V>(mut self, metadata: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.metadata.extend(crate::env_vars::owned(metadata));
        self
    }

    /// Environment variables of the sandbox: sent as the API's `envVars` (seen by processes
    /// E2B's daemon starts) and set by the SDK in every kernel it starts (contexts and the
    /// kernels that run commands), since the template's Jupyter server predates the sandbox.
    /// Defaults to none.
    pub fn envs<I, K, V>(mut self, envs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.envs.extend(crate::env_vars::owned(envs));
        self
    }

    /// Secure the sandbox's own daemon (envd) with an access token. Defaults to `true`, as in
    /// E2B's SDKs.
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// Pause the sandbox instead of killing it when its lifetime ends. Defaults to the API's
    /// default (off). A handle that kills on close still kills.
    pub fn auto_pause(mut self, auto_pause: bool) -> Self {
        self.auto_pause = Some(auto_pause);
        self
    }

    /// Let the sandbox reach the internet. Defaults to the API's default (allowed).
    pub fn allow_internet_access(mut self, allow: bool) -> Self {
        self.allow_internet_access = Some(allow);
        self
    }

    /// Let anyone who knows the sandbox's URLs reach them. Defaults to `false`: the Jupyter
    /// server of E2B's template has no token, so public traffic would let anyone with the URL
    /// run code as root. When `false` the sandbox must be [`secure`](Self::secure) (the API's
    /// rule) and the SDK sends the sandbox's traffic token (`E2B-Traffic-Access-Token`) with
    /// every Jupyter request. With `secure(false)` this must be set to `true` explicitly.
    pub fn allow_public_traffic(mut self, allow: bool) -> Self {
        self.allow_public_traffic = Some(allow);
        self
    }
}
