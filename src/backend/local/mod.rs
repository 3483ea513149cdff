//! The local sandbox: a `jupyter server` child process on 127.0.0.1 with a random token and a
//! fresh root directory, killed with its kernels when the sandbox is dropped.

mod handle;
pub(crate) mod python;
mod server;

use std::path::{Path, PathBuf};

use crate::backend::{Backend, Liveness};
use crate::config::{Secret, Timeouts};
use crate::error::Error;
use crate::http::Endpoint;

pub use handle::LocalSandbox;
pub use python::{CACHE_ENV, PYTHON_ENV};
use server::LocalServer;

/// Options of the local sandbox, beyond what every sandbox has.
#[derive(Debug, Clone, Default)]
pub struct LocalOptions {
    pub(crate) python: Option<PathBuf>,
    pub(crate) packages: Vec<String>,
}

impl LocalOptions {
    /// Options with every default.
    pub fn new() -> Self {
        Self::default()
    }

    /// A Python that already has jupyter_server and ipykernel. Defaults to `E2B_LOCAL_PYTHON`,
    /// else a venv the SDK builds once in the user's cache dir.
    pub fn python(mut self, exe: impl Into<PathBuf>) -> Self {
        self.python = Some(exe.into());
        self
    }

    /// Extra PyPI packages to make importable (installed into the managed venv when missing),
    /// e.g. `["matplotlib"]`. Defaults to none.
    pub fn packages<I, S>(mut self, packages: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.packages.extend(packages.into_iter().map(Into::into));
        self
    }
}

/// A running local sandbox.
#[derive(Debug)]
pub(crate) struct LocalBackend {
    id: String,
    server: LocalServer,
}

impl LocalBackend {
    pub(crate) fn start(
        options: &LocalOptions,
        envs: &[(String, String)],
        timeouts: &Timeouts,
    ) -> Result<LocalBackend, Error> {
        let python = match &options.python {
            Some(exe) => python::given(exe, &format!("LocalOptions::python({})", exe.display()))?,
            None => python::resolve()?,
        };
        python::ensure_packages(&python, &options.packages)?;
        let token = Secret::new(format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        ));
        let server = LocalServer::start(&python, &token, envs, timeouts)?;
        Ok(LocalBackend {
            id: format!("local-{}", server.pid()),
            server,
        })
    }

    /// The directory the sandbox's files live in.
    pub(crate) fn root(&self) -> &Path {
        self.server.root()
    }

    /// Where kernel connection files are written (for direct ZMQ access in benchmarks).
    pub(crate) fn runtime_dir(&self) -> &Path {
        self.server.runtime_dir()
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.server.pid()
    }
}

impl Backend for LocalBackend {
    fn sandbox_id(&self) -> &str {
        &self.id
    }

    fn jupyter(&self) -> &Endpoint {
        self.server.endpoint()
    }

    fn probe(&self) -> Liveness {
        if self.server.is_alive() {
            Liveness::Alive
        } else {
            Liveness::Gone
        }
    }

    fn owns_server(&self) -> bool {
        true
    }

    fn shutdown(&self) -> Result<(), Error> {
        self.server.kill();
        Ok(())
    }

    fn server_log_tail(&self) -> Option<String> {
        Some(self.server.log_tail())
    }
}
