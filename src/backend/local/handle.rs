//! [`LocalSandbox`]: what only a local sandbox has, reached through `Sandbox::as_local`.

use std::path::Path;

use crate::backend::local::LocalBackend;

/// The local side of a sandbox: where its files are and which process serves it. Get one with
/// [`Sandbox::as_local`](crate::Sandbox::as_local).
#[derive(Debug, Clone, Copy)]
pub struct LocalSandbox<'a> {
    backend: &'a LocalBackend,
}

impl<'a> LocalSandbox<'a> {
    pub(crate) fn new(backend: &'a LocalBackend) -> Self {
        LocalSandbox { backend }
    }

    /// The host directory the sandbox's files live in (its root).
    pub fn root(&self) -> &'a Path {
        self.backend.root()
    }

    /// Where the kernels' connection files are, for direct ZMQ access (benchmarks, tools).
    pub fn runtime_dir(&self) -> &'a Path {
        self.backend.runtime_dir()
    }

    /// The Unix socket the isolated sandbox's server listens on (owner-only), `None` without
    /// isolation (the server is then on 127.0.0.1). [`Sandbox::jupyter_url`](crate::Sandbox::jupyter_url)
    /// gives it as an `http+unix://` URL.
    pub fn socket_path(&self) -> Option<&'a Path> {
        self.backend.socket_path()
    }

    /// The end of the server's log: its last 64 KiB (what jupyter_server, its kernels and
    /// anything they start wrote to their inherited stdout and stderr), scrubbed of its token.
    /// The SDK keeps no more than that, whatever the sandbox writes.
    pub fn server_log(&self) -> String {
        self.backend.server_log()
    }

    /// The jupyter_server process's id.
    pub fn pid(&self) -> u32 {
        self.backend.pid()
    }
}
