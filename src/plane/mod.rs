//! Data planes: what carries a sandbox's capabilities (code, contexts, files, commands,
//! terminals, watches) once the sandbox exists.
//!
//! - The **Jupyter plane**: a Jupyter server's REST API and kernel websockets. The local
//!   sandbox, Jupyter servers, JupyterHub and E2B templates that serve Jupyter on port 8888 use
//!   it; its code lives where it always has (`jupyter/`, `kernel/` and the Jupyter paths of
//!   `exec/`, `files/`, `commands/`, `pty/`).
//! - The **E2B plane** ([`e2b`]): E2B's public data plane, envd (port 49983) and the
//!   code-interpreter server (port 49999), for E2B templates from 0.4.7 on, which keep Jupyter
//!   on a private socket.
//!
//! The facade (`Sandbox`, `Files`, `Commands`, `Pty`, `CodeBuilder`) asks [`Plane`] once per
//! call which plane the sandbox has and hands the call to it.

pub(crate) mod e2b;

use std::sync::Arc;

/// Which data plane a sandbox uses: asked for in [`E2bConfig::data_plane`](crate::E2bConfig::data_plane),
/// reported by [`Sandbox::data_plane`](crate::Sandbox::data_plane).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum DataPlane {
    /// Detect it (E2B only): the Jupyter server on port 8888 when the template serves one
    /// (older and custom templates), else E2B's envd and code-interpreter server.
    #[default]
    Auto,
    /// A Jupyter server: REST API and kernel websockets.
    Jupyter,
    /// E2B's envd (files, commands, terminals, watches) and code-interpreter server (code,
    /// contexts).
    E2b,
}

/// The plane of one sandbox, as the facade dispatches on it.
#[derive(Debug, Clone)]
pub(crate) enum Plane {
    Jupyter,
    E2b(Arc<e2b::E2bPlane>),
}

impl Plane {
    pub(crate) fn kind(&self) -> DataPlane {
        match self {
            Plane::Jupyter => DataPlane::Jupyter,
            Plane::E2b(_) => DataPlane::E2b,
        }
    }
}
