//! An existing Jupyter server (jupyter_server, Jupyter Kernel Gateway, Enterprise Gateway):
//! nothing to create; the SDK starts its own kernels and shuts down only those.

use crate::backend::{Backend, Liveness};
use crate::config::{Secret, Timeouts};
use crate::error::Error;
use crate::http::{Endpoint, Http, Method};

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
        tls: crate::tls::TlsRoots,
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

impl Backend for JupyterBackend {
    fn sandbox_id(&self) -> &str {
        &self.id
    }

    fn jupyter(&self) -> &Endpoint {
        &self.endpoint
    }

    /// A server that does not answer may come back, so this backend never says `Gone`; only
    /// the kernel's own 404 is final, and the connection reports that itself. Asking the
    /// server would only spend the reconnect budget on a request through the same broken link.
    fn probe(&self) -> Liveness {
        Liveness::Unknown
    }

    fn owns_server(&self) -> bool {
        false
    }

    fn shutdown(&self) -> Result<(), Error> {
        Ok(())
    }
}
