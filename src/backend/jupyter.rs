//! An existing Jupyter server (jupyter_server, Jupyter Kernel Gateway, Enterprise Gateway):
//! nothing to create; the SDK starts its own kernels and shuts down only those. (A server
//! behind JupyterHub, which may have to be started first, is `jupyterhub.rs`.)

use crate::backend::{Backend, Liveness, SandboxProbe};
use crate::config::{Secret, Timeouts};
use crate::error::Error;
use crate::net::{Endpoint, Http, Method};

#[derive(Debug)]
pub(crate) struct JupyterBackend {
    id: String,
    endpoint: Endpoint,
}

impl JupyterBackend {
    /// Checks that the server answers and accepts the token before anything else happens.
    pub(crate) fn connect(
        url: &str,
        token: &Secret,
        timeouts: &Timeouts,
        tls: crate::net::tls::TlsRoots,
    ) -> Result<Self, Error> {
        let endpoint = Endpoint::new(url)?.with_jupyter_token(token).with_tls(tls);
        let id = endpoint
            .public_url()
            .split("://")
            .nth(1)
            .unwrap_or(endpoint.public_url())
            .to_string();
        let http = Http::new(endpoint.clone(), timeouts);
        // Both jupyter_server and Kernel Gateway guard this with the token.
        http.send(Method::Get, "/api/kernelspecs", None)?
            .error_for_status()?;
        log::debug!("using the Jupyter server at {}", endpoint.public_url());
        Ok(JupyterBackend { id, endpoint })
    }
}

impl JupyterBackend {
    /// `Sandbox::get_host`: the server's host with `port` (`localhost` for a server on a Unix
    /// socket).
    pub(crate) fn host(&self, port: u16) -> String {
        host_of(self.endpoint.base(), port)
    }
}

/// The host of the URL `base` with `port`.
pub(crate) fn host_of(base: &str, port: u16) -> String {
    {
        let authority = base
            .split("://")
            .nth(1)
            .unwrap_or(base)
            .split('/')
            .next()
            .unwrap_or_default();
        // `[v6]:port`, `host:port` or `host`.
        let host = match authority.rfind(']') {
            Some(end) => &authority[..=end],
            None => authority.split(':').next().unwrap_or(authority),
        };
        format!("{host}:{port}")
    }
}

impl SandboxProbe for JupyterBackend {
    fn sandbox_id(&self) -> &str {
        &self.id
    }

    /// A server that does not answer may come back, so this backend never says `Gone`; only
    /// the kernel's own 404 is final, and the connection reports that itself. Asking the
    /// server would only spend the reconnect budget on a request through the same broken link.
    fn probe(&self) -> Liveness {
        Liveness::Unknown
    }
}

impl Backend for JupyterBackend {
    fn jupyter(&self) -> &Endpoint {
        &self.endpoint
    }

    fn owns_server(&self) -> bool {
        false
    }

    fn shutdown(&self) -> Result<(), Error> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn the_host_of_a_server_url_takes_the_port_asked() {
        assert_eq!(host_of("http://127.0.0.1:8888", 3000), "127.0.0.1:3000");
        assert_eq!(
            host_of("https://gw.example.org/prefix", 80),
            "gw.example.org:80"
        );
        assert_eq!(host_of("http://[::1]:8888/x", 5), "[::1]:5");
        assert_eq!(host_of("http://localhost", 5), "localhost:5");
    }
}
