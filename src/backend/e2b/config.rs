//! Where the E2B control plane and a sandbox's Jupyter server answer, and with which key.

use std::time::Duration;

use crate::config::{ReconnectPolicy, Secret};
use crate::plane::DataPlane;

/// Reads the API key.
pub(crate) const API_KEY_ENV: &str = "E2B_API_KEY";
/// Reads the base domain.
pub(crate) const DOMAIN_ENV: &str = "E2B_DOMAIN";
/// Reads the control-plane URL override.
pub(crate) const API_URL_ENV: &str = "E2B_API_URL";
/// Reads the Jupyter URL override.
pub(crate) const SANDBOX_URL_ENV: &str = "E2B_SANDBOX_URL";
/// Reads debug mode (`true`, any case, turns it on).
pub(crate) const DEBUG_ENV: &str = "E2B_DEBUG";
/// Reads how often a connection that could not be opened is tried again.
pub(crate) const CONNECTION_RETRIES_ENV: &str = "E2B_CONNECTION_RETRIES";

/// The port of E2B's daemon (envd) in every sandbox: files, commands, signed file URLs.
pub(crate) const ENVD_PORT: u16 = 49983;

/// The domain E2B's SDKs use today.
pub const DEFAULT_DOMAIN: &str = "e2b.app";

/// The port of the Jupyter server inside a code-interpreter sandbox.
pub(crate) const JUPYTER_PORT: u16 = 8888;

/// How to reach E2B: API key, domain, URLs, request deadline.
///
/// [`E2bConfig::from_env`] reads the same environment variables as E2B's own SDKs;
/// [`E2bConfig::default`] reads none. Either way the chainable setters override.
/// `Debug` never shows the API key or header values.
#[derive(Debug, Clone, PartialEq)]
pub struct E2bConfig {
    pub(crate) api_key: Secret,
    pub(crate) domain: String,
    pub(crate) api_url: Option<String>,
    pub(crate) sandbox_url: Option<String>,
    pub(crate) debug: bool,
    pub(crate) request_timeout: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) connection_retries: u32,
    pub(crate) headers: Vec<(String, Secret)>,
    /// PEM or DER roots for the control plane and the sandbox (see
    /// `SandboxBuilder::add_root_certificate`).
    pub(crate) tls_roots: Vec<Vec<u8>>,
    pub(crate) data_plane: DataPlane,
    /// How idempotent data-plane calls are retried (the sandbox's reconnect policy).
    pub(crate) reconnect: ReconnectPolicy,
}

impl Default for E2bConfig {
    /// No API key, domain `e2b.app`, no overrides, not debug, 60 s per call, 4 attempts
    /// (E2B's 3 retries), 3 connection retries, the data plane detected.
    fn default() -> Self {
        E2bConfig {
            api_key: Secret::default(),
            domain: DEFAULT_DOMAIN.to_string(),
            api_url: None,
            sandbox_url: None,
            debug: false,
            request_timeout: Duration::from_secs(60),
            max_attempts: 4,
            connection_retries: 3,
            headers: Vec::new(),
            tls_roots: Vec::new(),
            data_plane: DataPlane::Auto,
            reconnect: ReconnectPolicy::default(),
        }
    }
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

impl E2bConfig {
    /// The defaults, overridden by `E2B_API_KEY`, `E2B_DOMAIN`, `E2B_API_URL`,
    /// `E2B_SANDBOX_URL`, `E2B_DEBUG` and `E2B_CONNECTION_RETRIES` where set (empty counts as
    /// unset; a count that does not parse is ignored).
    pub fn from_env() -> Self {
        let mut config = E2bConfig::default();
        if let Some(key) = env_var(API_KEY_ENV) {
            config.api_key = Secret::new(key);
        }
        if let Some(domain) = env_var(DOMAIN_ENV) {
            config.domain = domain;
        }
        config.api_url = env_var(API_URL_ENV);
        config.sandbox_url = env_var(SANDBOX_URL_ENV);
        config.debug = env_var(DEBUG_ENV).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if let Some(n) = env_var(CONNECTION_RETRIES_ENV).and_then(|v| v.parse().ok()) {
            config.connection_retries = n;
        }
        config
    }

    /// The API key, sent as `X-API-KEY`. Defaults to `E2B_API_KEY` (with
    /// [`from_env`](Self::from_env)), else none; calls without a key fail unless in debug mode.
    pub fn api_key(mut self, key: impl Into<Secret>) -> Self {
        self.api_key = key.into();
        self
    }

    /// The base domain of the control plane and of sandbox hosts. Defaults to `E2B_DOMAIN`,
    /// else `e2b.app`.
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = domain.into();
        self
    }

    /// The control-plane base URL. Defaults to `E2B_API_URL`, else `http://localhost:3000` in
    /// debug mode, else `https://api.{domain}`.
    pub fn api_url(mut self, url: impl Into<String>) -> Self {
        self.api_url = Some(url.into());
        self
    }

    /// The base URL of the sandbox, for every sandbox made with this config (a tunnel, a local
    /// stand-in): its Jupyter server, or a proxy that routes by the `E2b-Sandbox-Id` and
    /// `E2b-Sandbox-Port` headers, which every request carries (envd and the code-interpreter
    /// server are reached there too). Defaults to `E2B_SANDBOX_URL`, else
    /// `http://localhost:{port}` in debug mode, else `https://{port}-{sandboxID}.{domain}`,
    /// where the domain is the one the control plane reports for the sandbox.
    pub fn sandbox_url(mut self, url: impl Into<String>) -> Self {
        self.sandbox_url = Some(url.into());
        self
    }

    /// Debug mode, as in E2B's SDKs: **no control-plane call at all**. The sandbox is a
    /// template container you run yourself, reached at the sandbox URL (`E2B_SANDBOX_URL`,
    /// else `http://localhost:8888`) over plain http; its id is `debug_sandbox_id`; closing
    /// the handle and `set_lifetime` leave it alone; `get_info` fails. No API key needed.
    /// Defaults to `E2B_DEBUG` being `true`, else off.
    ///
    /// To run E2B's code-interpreter template locally for it, start its Jupyter server the
    /// way the template does, publishing port 8888 (see the README, "E2B debug mode").
    pub fn debug(mut self, debug: bool) -> Self {
        self.debug = debug;
        self
    }

    /// Deadline for one control-plane call, its retries and the waits between them included
    /// (creating a sandbox included), as in E2B's SDKs. Defaults to 60 s.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Attempts for one control-plane call, at least 1, under E2B's retry policy: an answer
    /// marked `Should-Retry: true`, or a 429, 502, 503 or 504 without that header, is tried
    /// again after its `Retry-After` or a jittered backoff (0.1 s doubling, at most 10 s),
    /// within [`request_timeout`](Self::request_timeout). Only calls that are safe to send
    /// twice are retried once sent: lookups, kill, timeouts, network rules, connect, pause,
    /// and create (which carries an idempotency key); never a snapshot or a fork. Defaults
    /// to 4 (E2B's 3 retries).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// How often a connection to the control plane that could not be opened (refused, timed
    /// out, unknown host) is tried again, apart from [`max_attempts`](Self::max_attempts); the
    /// request never left, so any call may be. Defaults to `E2B_CONNECTION_RETRIES`, else 3.
    pub fn connection_retries(mut self, retries: u32) -> Self {
        self.connection_retries = retries;
        self
    }

    /// An extra header on every control-plane request, for a proxy in between or a mock
    /// server (for example `Prefer: code=404` for Stoplight Prism). The value is kept as a
    /// [`Secret`]. Defaults to none.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Secret>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Trusts `pem_or_der` (a PEM bundle or one DER certificate) as a root for the control
    /// plane and the sandbox, instead of Mozilla's roots (a company proxy's CA, a private E2B
    /// deployment). Defaults to none: Mozilla's roots, or `SSL_CERT_FILE`'s when set.
    pub fn root_certificate(mut self, pem_or_der: impl Into<Vec<u8>>) -> Self {
        self.tls_roots.push(pem_or_der.into());
        self
    }

    /// Which data plane carries code, files, commands and terminals. Defaults to
    /// [`DataPlane::Auto`]: the template's Jupyter server on port 8888 when it serves one
    /// (older and custom templates; also a Jupyter server at [`E2bConfig::sandbox_url`]), else
    /// E2B's envd (49983) and code-interpreter server (49999), as in templates from 0.4.7 on,
    /// which keep Jupyter on a private socket. [`DataPlane::Jupyter`] or [`DataPlane::E2b`]
    /// skip the detection and wait for that plane only.
    pub fn data_plane(mut self, plane: DataPlane) -> Self {
        self.data_plane = plane;
        self
    }

    /// The control-plane base URL after overrides and debug mode.
    pub(crate) fn resolved_api_url(&self) -> String {
        match (&self.api_url, self.debug) {
            (Some(url), _) => url.clone(),
            (None, true) => "http://localhost:3000".to_string(),
            (None, false) => format!("https://api.{}", self.domain),
        }
    }

    /// The base URL of a sandbox's envd, for signed file URLs: `https://49983-{id}.{domain}`,
    /// `http://localhost:49983` in debug mode. The sandbox URL override names the Jupyter
    /// server only, so it does not apply.
    pub(crate) fn envd_url(&self, sandbox_id: &str, domain: Option<&str>) -> String {
        if self.debug {
            return format!("http://localhost:{ENVD_PORT}");
        }
        let domain = domain.filter(|d| !d.is_empty()).unwrap_or(&self.domain);
        format!("https://{ENVD_PORT}-{sandbox_id}.{domain}")
    }

    /// The base URL of a sandbox's Jupyter server. `domain` is what the control plane said
    /// for this sandbox, if anything.
    pub(crate) fn jupyter_url(&self, sandbox_id: &str, domain: Option<&str>) -> String {
        self.port_url(sandbox_id, domain, JUPYTER_PORT)
    }

    /// The base URL of a port of the sandbox: the sandbox URL when set (a proxy that routes by
    /// the `E2b-Sandbox-Port` header), `http://localhost:{port}` in debug mode, else
    /// `https://{port}-{sandboxID}.{domain}`.
    pub(crate) fn port_url(&self, sandbox_id: &str, domain: Option<&str>, port: u16) -> String {
        if let Some(url) = &self.sandbox_url {
            return url.clone();
        }
        if self.debug {
            return format!("http://localhost:{port}");
        }
        let domain = domain.filter(|d| !d.is_empty()).unwrap_or(&self.domain);
        format!("https://{port}-{sandbox_id}.{domain}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_domain_debug_and_overrides() {
        let c = E2bConfig::default();
        assert_eq!(c.resolved_api_url(), "https://api.e2b.app");
        assert_eq!(c.jupyter_url("abc", None), "https://8888-abc.e2b.app");
        assert_eq!(
            c.jupyter_url("abc", Some("eu.e2b.dev")),
            "https://8888-abc.eu.e2b.dev"
        );
        let c = E2bConfig::default().domain("example.org");
        assert_eq!(c.resolved_api_url(), "https://api.example.org");
        assert_eq!(
            c.jupyter_url("abc", Some("")),
            "https://8888-abc.example.org"
        );
        let c = E2bConfig::default().debug(true);
        assert_eq!(c.resolved_api_url(), "http://localhost:3000");
        assert_eq!(c.jupyter_url("abc", Some("x")), "http://localhost:8888");
        let c = c
            .api_url("http://127.0.0.1:9")
            .sandbox_url("http://127.0.0.1:8");
        assert_eq!(c.resolved_api_url(), "http://127.0.0.1:9");
        assert_eq!(c.jupyter_url("abc", None), "http://127.0.0.1:8");
    }

    #[test]
    fn debug_hides_key_and_header_values() {
        let c = E2bConfig::default()
            .api_key("e2b_deadbeef")
            .header("Proxy-Authorization", "Basic c2VjcmV0");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("deadbeef"), "{dbg}");
        assert!(!dbg.contains("c2VjcmV0"), "{dbg}");
        assert!(dbg.contains("Proxy-Authorization"));
    }

    #[test]
    fn max_attempts_is_at_least_one() {
        assert_eq!(E2bConfig::default().max_attempts(0).max_attempts, 1);
    }
}
