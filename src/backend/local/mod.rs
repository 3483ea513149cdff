//! The local sandbox: a `jupyter server` child process with a random token and a fresh root
//! directory, killed with its kernels when the sandbox is dropped. On Linux it runs inside
//! bubblewrap and listens on a Unix socket; with [`Isolation::None`], on 127.0.0.1 as the
//! calling user.

mod beneath;
pub(crate) mod bwrap;
mod cgroup;
mod child;
mod disk;
mod local_sandbox;
pub(crate) mod python;
mod sandbox_dir;
mod seccomp;
mod server;
mod server_log;

use std::path::{Path, PathBuf};

use crate::backend::{Backend, Liveness, SandboxProbe};
use crate::config::{Secret, Timeouts};
use crate::error::Error;
use crate::net::Endpoint;

pub use local_sandbox::LocalSandbox;
pub use python::{CACHE_ENV, PYTHON_ENV};
use server::LocalServer;

/// How the local sandbox is kept apart from the host.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// The default: the server and its kernels run inside bubblewrap (`bwrap`), in their own
    /// user, PID, IPC, UTS and network namespaces, with the host's environment dropped, its
    /// home directories hidden, its system directories read-only and the resource limits of
    /// [`ResourceLimits`]. When the SDK runs as root, the sandbox runs as the unprivileged
    /// user `nobody`, which then needs to reach the Python it runs (the managed venv of root is
    /// kept under `/var/cache` for that). Linux only; needs the `bubblewrap` package and user namespaces,
    /// else [`Sandbox::local`](crate::Sandbox::local) fails with
    /// [`Error::IsolationUnavailable`](crate::Error::IsolationUnavailable).
    #[default]
    Bubblewrap,
    /// No isolation: the code runs on the host as the calling user, with the user's files,
    /// environment variables, processes and network. Only for code you would run yourself.
    /// Its `TMPDIR` is a directory of its own, removed with the sandbox. The server listens
    /// on 127.0.0.1; its kernels talk to it over Unix sockets in the sandbox's directory
    /// (over 127.0.0.1 TCP only where that directory's path is too long for a socket address).
    None,
}

/// Resource limits of an isolated local sandbox (ignored with [`Isolation::None`]).
///
/// Some hold per process (address space, open files), some per sandbox (processes, total
/// memory, the size of `/tmp` and `/dev/shm`). The process limit holds for root's sandboxes
/// too, which run as `nobody`. The root's size is capped only where the SDK runs as root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceLimits {
    pub(crate) max_processes: Option<u32>,
    pub(crate) max_memory: Option<u64>,
    pub(crate) max_total_memory: Option<u64>,
    pub(crate) max_open_files: Option<u64>,
    pub(crate) tmp_size: Option<u64>,
    pub(crate) shm_size: Option<u64>,
    pub(crate) max_disk: Option<u64>,
}

/// Default of [`ResourceLimits::max_processes`].
const DEFAULT_MAX_PROCESSES: u32 = 1024;
/// Default of [`ResourceLimits::max_open_files`]: what jupyter_server raises its own soft
/// limit to, and enough for a server with a hundred kernels.
const DEFAULT_MAX_OPEN_FILES: u64 = 4096;
/// Default of [`ResourceLimits::tmp_size_bytes`].
const DEFAULT_TMP_SIZE: u64 = 1 << 30;
/// Default of [`ResourceLimits::shm_size_bytes`], Docker's.
const DEFAULT_SHM_SIZE: u64 = 64 << 20;
/// Default of [`ResourceLimits::max_disk_bytes`], as an E2B sandbox's disk.
const DEFAULT_MAX_DISK: u64 = 10 << 30;

impl Default for ResourceLimits {
    fn default() -> Self {
        ResourceLimits {
            max_processes: Some(DEFAULT_MAX_PROCESSES),
            max_memory: physical_memory(),
            max_total_memory: physical_memory().map(|m| m / 2),
            max_open_files: Some(DEFAULT_MAX_OPEN_FILES),
            tmp_size: Some(DEFAULT_TMP_SIZE),
            shm_size: Some(DEFAULT_SHM_SIZE),
            max_disk: Some(DEFAULT_MAX_DISK),
        }
    }
}

impl ResourceLimits {
    /// The defaults: 1024 processes and threads, the machine's physical memory as each
    /// process's address space, half of it for the whole sandbox, 4096 open files per
    /// process, a 1 GiB `/tmp`, a 64 MiB `/dev/shm` and a 10 GiB root (where the SDK runs as
    /// root).
    pub fn new() -> Self {
        Self::default()
    }

    /// Most processes and threads alive in the sandbox at once (RLIMIT_NPROC, which counts
    /// threads too); `None` for no limit. Defaults to 1024: enough for process pools and
    /// multi-threaded numeric libraries, and a fork bomb ends there.
    pub fn max_processes(mut self, max: Option<u32>) -> Self {
        self.max_processes = max;
        self
    }

    /// Largest address space of each process in the sandbox, in bytes (RLIMIT_AS): an
    /// allocation past it fails (`MemoryError` in Python) instead of exhausting the host.
    /// `None` for no limit. Defaults to the machine's physical memory. Address space is more
    /// than memory in use: runtimes that reserve huge address ranges up front (some JITs,
    /// sanitizers) need a higher limit or `None`.
    pub fn max_memory_bytes(mut self, max: Option<u64>) -> Self {
        self.max_memory = max;
        self
    }

    /// Most memory the whole sandbox holds at once, in bytes: its processes and what it
    /// writes to `/tmp` and `/dev/shm` together. Past it the kernel's OOM killer ends a process
    /// of the sandbox (usually the kernel: [`Error::KernelDisrupted`](crate::Error::KernelDisrupted)),
    /// never one of the host. `None` for no cap. Defaults to half the machine's physical
    /// memory. Enforced by a memory cgroup where the host lets the SDK make one (root, cgroup
    /// v1, or a cgroup v2 subtree delegated to the user); elsewhere only the per-process
    /// limit holds and the first sandbox logs a warning.
    pub fn max_total_memory_bytes(mut self, max: Option<u64>) -> Self {
        self.max_total_memory = max;
        self
    }

    /// Most files each process of the sandbox may have open (RLIMIT_NOFILE); `None` keeps the
    /// SDK's own limit. Defaults to 4096.
    pub fn max_open_files(mut self, max: Option<u64>) -> Self {
        self.max_open_files = max;
        self
    }

    /// Size of the sandbox's `/tmp` (a tmpfs: memory), in bytes; a write past it fails with
    /// "No space left on device". `None` for the kernel's default, half the host's RAM.
    /// Defaults to 1 GiB. Needs bubblewrap 0.8.0 or later.
    pub fn tmp_size_bytes(mut self, size: Option<u64>) -> Self {
        self.tmp_size = size;
        self
    }

    /// Most bytes the sandbox may store in its root (`/home/user`); past it a write fails with
    /// "No space left on device" instead of filling the host's disk. `None` for no cap.
    /// Defaults to 10 GiB. Enforced where the SDK runs as root: the root is then an ext4 file
    /// system in a sparse image file in the sandbox's directory (host disk is used only as
    /// the sandbox writes), loop-mounted over the root directory; an ordinary user may not
    /// mount, so there the root is a plain directory and the first sandbox logs a warning.
    pub fn max_disk_bytes(mut self, max: Option<u64>) -> Self {
        self.max_disk = max;
        self
    }

    /// Size of the sandbox's `/dev/shm` (a tmpfs: memory), in bytes. `None` for the kernel's
    /// default, half the host's RAM. Defaults to 64 MiB, as Docker's: raise it for libraries
    /// that share large arrays between processes (PyTorch's `DataLoader` workers). Needs
    /// bubblewrap 0.8.0 or later.
    pub fn shm_size_bytes(mut self, size: Option<u64>) -> Self {
        self.shm_size = size;
        self
    }
}

/// Total RAM from /proc/meminfo, if it can be read.
fn physical_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// Options of the local sandbox, beyond what every sandbox has.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LocalOptions {
    pub(crate) python: Option<PathBuf>,
    pub(crate) packages: Vec<String>,
    pub(crate) isolation: Isolation,
    pub(crate) internet: bool,
    pub(crate) limits: ResourceLimits,
    pub(crate) warm_spare: bool,
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

    /// How the sandbox is isolated from the host. Defaults to [`Isolation::Bubblewrap`];
    /// [`Isolation::None`] is the explicit opt-out, needed where bubblewrap or user namespaces
    /// are unavailable (macOS included).
    pub fn isolation(mut self, isolation: Isolation) -> Self {
        self.isolation = isolation;
        self
    }

    /// Lets the isolated sandbox use the network, as E2B's option of the same name. Defaults to
    /// `false`: the sandbox has a network namespace of its own with loopback only. `true`
    /// shares the host's network namespace: code in the sandbox then reaches the internet and
    /// every service listening on the host, 127.0.0.1 included (databases, dev servers).
    /// Without isolation the sandbox always has the host's network.
    pub fn allow_internet_access(mut self, allow: bool) -> Self {
        self.internet = allow;
        self
    }

    /// Resource limits of the isolated sandbox. Defaults to [`ResourceLimits::default`].
    pub fn resource_limits(mut self, limits: ResourceLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Keeps a spare sandbox with these options (and the builder's settings) starting in the
    /// background, for a process that opens sandboxes one after another: the next start with
    /// equal settings takes the spare, whose server and default context are up already (or
    /// waits for it, when it is still starting: it began earlier), and a new spare starts
    /// behind it. A spare costs what an idle sandbox costs (a server, a kernel, a thread while
    /// it starts); one not taken ends with the process, as a dropped sandbox would. Defaults to
    /// `false`: each start starts a sandbox then.
    pub fn warm_spare(mut self, warm: bool) -> Self {
        self.warm_spare = warm;
        self
    }
}

/// A running local sandbox.
#[derive(Debug)]
pub(crate) struct LocalBackend {
    id: String,
    server: LocalServer,
    /// The root as code sees it, then the host's other spelling of it (see
    /// [`LocalBackend::root_names`]).
    root_names: Vec<String>,
    /// Whether the sandbox has a network of its own, which `get_host` must forward into.
    own_network: bool,
}

impl LocalBackend {
    pub(crate) fn start(
        options: &LocalOptions,
        envs: &[(String, String)],
        timeouts: &Timeouts,
    ) -> Result<LocalBackend, Error> {
        // Checked first: an unusable sandbox fails before any venv is built.
        let bwrap = match options.isolation {
            Isolation::Bubblewrap => Some(bwrap::check()?),
            Isolation::None => None,
        };
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
        let server =
            LocalServer::start(&python, &token, envs, timeouts, options, bwrap.as_deref())?;
        let root_names = match bwrap {
            Some(_) => vec![bwrap::HOME.to_string()],
            None => {
                // Code sees the root as the kernel's getcwd() reports it: symlinks resolved
                // (macOS: /var is /private/var).
                let host = server.root();
                let seen = host.canonicalize().unwrap_or_else(|_| host.to_path_buf());
                let mut names = vec![seen.display().to_string()];
                if seen != host {
                    names.push(host.display().to_string());
                }
                names
            }
        };
        Ok(LocalBackend {
            id: format!("local-{}", server.pid()),
            server,
            root_names,
            own_network: bwrap.is_some() && !options.internet,
        })
    }

    /// The directory the sandbox's files live in, on the host.
    pub(crate) fn root(&self) -> &Path {
        self.server.root()
    }

    /// The root as code in the sandbox sees it (`/home/user` inside bubblewrap, the host
    /// directory without isolation), then other names of the same directory.
    pub(crate) fn root_names(&self) -> &[String] {
        &self.root_names
    }

    /// Where kernel connection files are written (for direct ZMQ access in benchmarks).
    pub(crate) fn runtime_dir(&self) -> &Path {
        self.server.runtime_dir()
    }

    /// Whether the sandbox has a network namespace of its own (isolated, without internet
    /// access): its ports are then reached through a forward, else on the host's 127.0.0.1.
    pub(crate) fn own_network(&self) -> bool {
        self.own_network
    }

    /// The server's directory on the host, where a forward's Unix socket is bound in.
    pub(crate) fn server_dir(&self) -> &Path {
        self.server.dir()
    }

    /// See [`LocalServer::inner_pid`].
    pub(crate) fn inner_pid(&self) -> Option<u32> {
        self.server.inner_pid()
    }

    /// The isolated server's Unix socket.
    pub(crate) fn socket_path(&self) -> Option<&Path> {
        self.server.socket_path()
    }

    /// What the server's log keeps, scrubbed of its token.
    pub(crate) fn server_log(&self) -> String {
        self.server.log_tail(usize::MAX)
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.server.pid()
    }
}

impl SandboxProbe for LocalBackend {
    fn sandbox_id(&self) -> &str {
        &self.id
    }

    fn probe(&self) -> Liveness {
        if self.server.is_alive() {
            Liveness::Alive
        } else {
            Liveness::Gone
        }
    }
}

impl Backend for LocalBackend {
    fn jupyter(&self) -> &Endpoint {
        self.server.endpoint()
    }

    fn owns_server(&self) -> bool {
        true
    }

    fn shutdown(&self) -> Result<(), Error> {
        self.server.kill();
        Ok(())
    }

    fn server_log_tail(&self) -> Option<String> {
        Some(self.server.log_tail(12))
    }
}
