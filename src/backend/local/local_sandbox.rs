//! [`LocalSandbox`]: what only a local sandbox has, reached through `Sandbox::as_local`.

use std::path::Path;

use crate::backend::local::LocalBackend;
use crate::backend::local::beneath::{Access, open_beneath};
use crate::error::Error;

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

    /// The host directory the sandbox's files live in (its root; code in an isolated sandbox
    /// sees it as `/home/user`, [`Sandbox::server_root`](crate::Sandbox::server_root)).
    ///
    /// **Its contents are untrusted.** Code in the sandbox can replace any entry with a
    /// symbolic link (to `/etc/shadow`, to your `~/.ssh`, to another sandbox's files) or a
    /// FIFO at any moment, and `std::fs` on `root().join(name)` follows links with the host
    /// process's rights: a host that runs the SDK as root would read or overwrite any file of
    /// the machine. From the host, use [`LocalSandbox::open`] and [`LocalSandbox::create`],
    /// which refuse links, or [`Sandbox::files`](crate::Sandbox::files), which resolves paths
    /// inside the sandbox as its code does.
    pub fn root(&self) -> &'a Path {
        self.backend.root()
    }

    /// Opens a file of the root for reading from the host, safely against what the sandbox
    /// planted: each component of `path` (relative to the root) is opened without following
    /// symbolic links, beneath the one before it, and the file must be a regular one.
    ///
    /// ```no_run
    /// # let sbx = e2b_blocking::Sandbox::local()?;
    /// sbx.run_code("open('out.txt', 'w').write('from the sandbox')")?;
    /// let mut text = String::new();
    /// std::io::Read::read_to_string(&mut sbx.as_local().unwrap().open("out.txt")?, &mut text)
    ///     .expect("readable");
    /// # Ok::<(), e2b_blocking::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::PermissionDenied`](crate::Error::PermissionDenied) when a component is a
    /// symbolic link (wherever it points) or access is denied;
    /// [`Error::FileNotFound`](crate::Error::FileNotFound);
    /// [`Error::NotADirectory`](crate::Error::NotADirectory) and
    /// [`Error::IsADirectory`](crate::Error::IsADirectory);
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for an absolute path, `..`,
    /// or what is not a regular file (a FIFO, a socket); [`Error::Io`](crate::Error::Io) for
    /// other I/O errors.
    pub fn open(&self, path: &str) -> Result<std::fs::File, Error> {
        open_beneath(self.backend.root(), path, Access::Read)
    }

    /// Creates (or truncates) a file of the root for writing from the host, as safely as
    /// [`LocalSandbox::open`] reads: a symbolic link on the way or in the file's place is
    /// refused, never written through. Its parent directories must exist. When the SDK runs
    /// as root the file is given to the sandbox's user, as the rest of the root.
    ///
    /// # Errors
    ///
    /// As for [`LocalSandbox::open`].
    pub fn create(&self, path: &str) -> Result<std::fs::File, Error> {
        open_beneath(self.backend.root(), path, Access::Create)
    }

    /// Where the kernels' connection files are, for direct ZMQ access (benchmarks, tools).
    /// Code in the sandbox can write there too: treat what is in it as untrusted, as the
    /// contents of [`LocalSandbox::root`].
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
