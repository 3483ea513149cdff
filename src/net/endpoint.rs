//! A server's address: its base URL (TCP or a Unix socket), the headers every request to it
//! carries, and the TLS roots it must chain to.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::config::Secret;
use crate::error::Error;

/// A server's base URL plus the headers every request to it carries. Header values are secrets.
#[derive(Clone)]
pub(crate) struct Endpoint {
    base: String,
    headers: Vec<(String, Secret)>,
    /// Roots its TLS certificate must chain to.
    tls: crate::net::tls::TlsRoots,
    /// Where every connection goes instead of the URL's host, for a server on a Unix socket.
    unix: Option<Arc<Path>>,
    /// The `http+unix://` form of the URL, when `unix` is set: what users are shown.
    unix_url: Option<String>,
    /// What a proxy's "sandbox not found" from this server means.
    pub(super) gone: Option<GoneCheck>,
}

/// Tells what a sandbox proxy's "sandbox not found" means for one sandbox, asked once such an
/// answer arrives. E2B's proxy gives the same answer for a killed sandbox as for a paused one;
/// only the control plane tells them apart, so the backend that knows it hands this in.
#[derive(Clone)]
pub(crate) struct GoneCheck(Arc<dyn Fn(&str) -> Error + Send + Sync>);

impl GoneCheck {
    /// `check` turns the sandbox id the proxy named into the error to report.
    pub(crate) fn new(check: impl Fn(&str) -> Error + Send + Sync + 'static) -> GoneCheck {
        GoneCheck(Arc::new(check))
    }

    /// The error for sandbox `sandbox_id`, which the proxy says it cannot find: what `check`
    /// says, else [`Error::SandboxNotFound`].
    pub(crate) fn judge(check: Option<&GoneCheck>, sandbox_id: &str) -> Error {
        match check {
            Some(check) => (check.0)(sandbox_id),
            None => Error::SandboxNotFound {
                sandbox_id: sandbox_id.to_string(),
            },
        }
    }
}

impl fmt::Debug for GoneCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GoneCheck")
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Endpoint")
            .field("base", &self.base)
            .field("headers", &names)
            .field("tls", &self.tls)
            .field("unix", &self.unix)
            .finish()
    }
}

impl Endpoint {
    /// `base` is `http(s)://host:port[/prefix]`, or `http+unix://{percent-encoded socket
    /// path}[/prefix]` for a server on a Unix socket; a trailing slash is dropped.
    pub(crate) fn new(base: &str) -> Result<Endpoint, Error> {
        if let Some(parsed) = crate::net::unix_url::parse(base) {
            let (path, prefix) = parsed?;
            return Ok(Endpoint::new(&format!("http://localhost{prefix}"))?.with_unix_socket(&path));
        }
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::InvalidArgument(format!(
                "server URL must start with http:// or https://, got {base:?}"
            )));
        }
        if base.contains('?') || base.contains('#') {
            return Err(Error::InvalidArgument(
                "server URL must not carry a query or fragment; pass the token separately".into(),
            ));
        }
        Ok(Endpoint {
            base,
            headers: Vec::new(),
            tls: Default::default(),
            unix: None,
            unix_url: None,
            gone: None,
        })
    }

    /// Connects to the Unix socket at `path` instead of the URL's host and port.
    pub(crate) fn with_unix_socket(mut self, path: &Path) -> Endpoint {
        self.unix = Some(Arc::from(path));
        let prefix = self.base.splitn(4, '/').nth(3).unwrap_or_default();
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("/{prefix}")
        };
        self.unix_url = Some(crate::net::unix_url::format(path, &prefix));
        self
    }

    /// The URL to show users: [`Endpoint::base`], or its `http+unix://` form for a server on a
    /// Unix socket (whose `base` names `localhost`, only the Host header it is sent).
    pub(crate) fn public_url(&self) -> &str {
        self.unix_url.as_deref().unwrap_or(&self.base)
    }

    /// The Unix socket connections go to, if any.
    pub(crate) fn unix_socket(&self) -> Option<&Arc<Path>> {
        self.unix.as_ref()
    }

    pub(crate) fn with_header(mut self, name: &str, value: Secret) -> Endpoint {
        if !value.is_empty() {
            self.headers.push((name.to_string(), value));
        }
        self
    }

    /// Jupyter's own scheme: `Authorization: token …`.
    pub(crate) fn with_jupyter_token(self, token: &Secret) -> Endpoint {
        if token.is_empty() {
            return self;
        }
        let value = Secret::new(format!("token {}", token.expose()));
        self.with_header("Authorization", value)
    }

    /// The same endpoint, whose proxy's "sandbox not found" answers `check` judges.
    pub(crate) fn with_gone_check(mut self, check: GoneCheck) -> Endpoint {
        self.gone = Some(check);
        self
    }

    /// The error for the proxy's "sandbox `sandbox_id` not found": what the endpoint's
    /// [`GoneCheck`] says, else [`Error::SandboxNotFound`].
    pub(crate) fn gone_error(&self, sandbox_id: &str) -> Error {
        GoneCheck::judge(self.gone.as_ref(), sandbox_id)
    }

    /// The same endpoint, trusting `roots` for `https://` and `wss://`.
    pub(crate) fn with_tls(mut self, roots: crate::net::tls::TlsRoots) -> Endpoint {
        self.tls = roots;
        self
    }

    pub(crate) fn tls(&self) -> &crate::net::tls::TlsRoots {
        &self.tls
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// The headers every request carries; only [`super::redact`] puts their values on the wire.
    pub(crate) fn headers(&self) -> impl Iterator<Item = (&str, &Secret)> {
        self.headers.iter().map(|(n, v)| (n.as_str(), v))
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The same URL with `ws://` or `wss://`.
    pub(crate) fn ws_url(&self, path: &str) -> String {
        let url = self.url(path);
        match url.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}"),
            None => format!("ws://{}", url.trim_start_matches("http://")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_debug_hides_header_values() {
        let e = Endpoint::new("http://127.0.0.1:1/")
            .unwrap()
            .with_jupyter_token(&Secret::new("sekrit"));
        let dbg = format!("{e:?}");
        assert!(dbg.contains("Authorization"));
        assert!(!dbg.contains("sekrit"));
        assert_eq!(e.ws_url("/api/x"), "ws://127.0.0.1:1/api/x");
    }

    #[test]
    fn endpoint_rejects_tokens_in_url() {
        assert!(Endpoint::new("http://h/?token=x").is_err());
        assert!(Endpoint::new("ftp://h").is_err());
    }
}
