//! The kinds of sandbox: how one comes to exist, how to tell whether it still does, how it dies.
//!
//! Everything after "here is a Jupyter base URL with its headers" is shared; a backend only
//! supplies that endpoint and its own life cycle.

pub(crate) mod e2b;
pub(crate) mod jupyter;
pub(crate) mod jupyterhub;
pub(crate) mod local;

use crate::error::Error;
use crate::net::Endpoint;

pub(crate) use crate::jupyter::liveness::{Liveness, SandboxProbe};

/// The life cycle of one sandbox; its id and liveness are the [`SandboxProbe`] its
/// connections hold.
pub(crate) trait Backend: SandboxProbe {
    /// Where the sandbox's Jupyter server answers, with the headers it needs.
    fn jupyter(&self) -> &Endpoint;

    /// Whether the sandbox runs now, for `Sandbox::is_running`: like [`Backend::probe`], but a
    /// paused sandbox is not running. `Unknown` leaves the answer to the Jupyter server.
    /// Must answer within the request timeout.
    fn running(&self) -> Liveness {
        self.probe()
    }

    /// True when [`Backend::shutdown`] takes the server, and so every kernel, with it (local,
    /// E2B). False for a server the user runs: then `Sandbox` shuts down the kernels it started.
    fn owns_server(&self) -> bool;

    /// Tears the sandbox down. Called once, from `close()` or `Drop`; must not hang.
    fn shutdown(&self) -> Result<(), Error>;

    /// The data plane that carries the sandbox's capabilities: Jupyter unless the backend
    /// found E2B's envd and code-interpreter server instead.
    fn plane(&self) -> crate::plane::Plane {
        crate::plane::Plane::Jupyter
    }

    /// The last lines the server logged, where the SDK runs the server and can read them.
    fn server_log_tail(&self) -> Option<String> {
        None
    }
}
