//! Running `jupyter server` as a child process: start in a fresh directory, wait until it
//! answers, and kill it together with every kernel it started.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::backend::local::bwrap::{self, Plan, SandboxUser};
use crate::backend::local::cgroup::MemoryCgroup;
use crate::backend::local::python::{self, Python};
use crate::backend::local::server_log::{self, ServerLog};
use crate::backend::local::{Isolation, LocalOptions};
use crate::backend::local::{child, disk, sandbox_dir};
use crate::config::{Secret, Timeouts};
use crate::error::{Error, TimeoutPhase};
use crate::net::{Endpoint, Http, Method};

/// Loaded by jupyter_server from the config dir (`server_config.py`). It lifts the IOPub rate
/// limits (which would otherwise drop large output) and kills the server and its kernels if
/// the SDK's process dies without running `Drop`.
const SERVER_CONFIG: &str = include_str!("server_config.py");

/// Where the server finds its token: a 0600 file in its config dir, not the command line (which
/// `ps` shows to every local user) nor its environment (which kernels and commands inherit).
const TOKEN_CONFIG: &str = "jupyter_server_config.json";

/// Kernels talk to the server over Unix sockets beside their connection files rather than TCP
/// ports. On TCP any local user could subscribe to a kernel's output (with
/// `allow_internet_access` an isolated sandbox shares the host's network too), and ports are
/// picked by binding port 0 and letting go, from the range outgoing connections take theirs
/// from: under a burst of kernel starts a kernel failed to bind a port taken in between (most
/// likely by one of the server's own connections), and again on every restart, which kept
/// the same ports.
/// No `ip` is set: jupyter_client then gives every kernel sockets of its own
/// (`kernel-<id>-ipc-<n>`), where one shared prefix gave kernels starting at the same time the
/// same sockets.
const IPC_KERNELS_CONFIG: &str = "c.KernelManager.transport = 'ipc'\n";

/// Whether jupyter_client's IPC socket paths for kernels whose connection files are in
/// `runtime` (`{runtime}/kernel-{uuid}-ipc-{n}`) fit in a Unix socket address.
fn ipc_fits(runtime: &Path) -> bool {
    // `sun_path` less its terminating NUL.
    const LONGEST: usize = if cfg!(target_os = "linux") { 107 } else { 103 };
    let socket = "/kernel-".len() + 36 + "-ipc-".len() + 2;
    runtime.as_os_str().len() + socket <= LONGEST
}

/// [`SERVER_MAIN`]'s own argument: how the server's kernels connect and where they start (the
/// server's root), so that the kernel it starts ahead is launched as the server would launch it.
fn kernels_arg(transport: &str, cwd: &str) -> String {
    serde_json::json!({"transport": transport, "cwd": cwd}).to_string()
}

/// Plain tracebacks, as in E2B's template (ANSI colours make `ExecutionError` hard to read),
/// and history in memory: the sandbox is throw-away, and a SQLite write per cell costs latency.
const KERNEL_CONFIG: &str =
    "c.InteractiveShell.colors = 'nocolor'\nc.HistoryManager.hist_file = ':memory:'\n";

/// Starts jupyter_server (`python -m jupyter_server`, less some imports) with the default
/// context's kernel started ahead of it (see the file). Its first argument is [`kernels_arg`].
/// Run from a file in the config dir ([`MAIN_FILE`]) rather than with `-c`: the command line
/// stays short, and does not name the kernel module as a kernel's does.
const SERVER_MAIN: &str = include_str!("server_main.py");

/// [`SERVER_MAIN`]'s file in the server's config dir.
const MAIN_FILE: &str = "server_main.py";

/// The terminals' shell and terminado patches (see the file).
const TERMINALS_CONFIG: &str = include_str!("terminals.py");

/// What a terminal's bash reads as it starts (see terminals.py).
const TERMINAL_RC: &str = include_str!("terminal_rc.sh");

/// Registers the `e2b/data` and `e2b/chart` rich formats in every kernel.
const STARTUP: &str = include_str!("startup.py");

/// A running local jupyter_server.
#[derive(Debug)]
pub(crate) struct LocalServer {
    child: Mutex<Child>,
    pid: u32,
    dir: PathBuf,
    root: PathBuf,
    runtime: PathBuf,
    endpoint: Endpoint,
    /// Kept to scrub it from log lines we pass on.
    token: Secret,
    log: ServerLog,
    /// The host path of the server's Unix socket, when it runs isolated.
    socket: Option<PathBuf>,
    /// Caps the isolated sandbox's memory; dropped after `kill`, once its processes are gone.
    _cgroup: Option<MemoryCgroup>,
    /// Set by the first `kill` (a close, then `Drop`), which alone reports the server's
    /// warnings and removes its directory.
    finished: AtomicBool,
}

impl LocalServer {
    pub(crate) fn start(
        python: &Python,
        token: &Secret,
        envs: &[(String, String)],
        timeouts: &Timeouts,
        options: &LocalOptions,
        bwrap: Option<&Path>,
    ) -> Result<LocalServer, Error> {
        let dir = sandbox_dir::create(&["root", "runtime", "config", "data", "ipython"])
            .map_err(|e| Error::setup("cannot create the sandbox's directory", e))?;
        let result = match bwrap {
            Some(bwrap) if options.isolation == Isolation::Bubblewrap => {
                Self::spawn_isolated(python, token, envs, timeouts, &dir, bwrap, options)
            }
            _ => Self::spawn(python, token, envs, timeouts, &dir),
        };
        if result.is_err() {
            let _ = sandbox_dir::remove(&dir);
        }
        result
    }

    fn spawn(
        python: &Python,
        token: &Secret,
        envs: &[(String, String)],
        timeouts: &Timeouts,
        dir: &Path,
    ) -> Result<LocalServer, Error> {
        let root = dir.join("root");
        let runtime = dir.join("runtime");
        // The sandbox's temporary files (commands' output logs, what its code makes with
        // `tempfile`) go where the sandbox's directory goes at close, not into the host's /tmp,
        // where nothing would ever remove them; an isolated sandbox has a /tmp of its own.
        let tmp = dir.join("tmp");
        fs::create_dir(&tmp)
            .map_err(|e| Error::setup("cannot create the sandbox's temporary directory", e))?;
        // Where the sandbox's directory has too long a path (a long TMPDIR; macOS's), kernels
        // fall back to jupyter_client's default, TCP on 127.0.0.1.
        let (transport, kernels_config) = if ipc_fits(&runtime) {
            ("ipc", IPC_KERNELS_CONFIG)
        } else {
            log::debug!(
                "kernels use TCP: their Unix socket paths under {} would be too long",
                runtime.display()
            );
            ("tcp", "")
        };
        let (token_file, server_log, log, log_err) = write_server_files(
            dir,
            token,
            SERVER_MAIN,
            &format!("{SERVER_CONFIG}\n{TERMINALS_CONFIG}\n{kernels_config}"),
        )?;
        let mut cmd = Command::new(&python.exe);
        cmd.arg(dir.join("config").join(MAIN_FILE))
            .arg(kernels_arg(transport, &root.display().to_string()))
            .arg("--ServerApp.ip=127.0.0.1")
            .arg("--ServerApp.port=0")
            .arg("--ServerApp.port_retries=0")
            .arg(format!("--ServerApp.root_dir={}", root.display()))
            .arg("--allow-root")
            .env("JUPYTER_RUNTIME_DIR", &runtime)
            .env("JUPYTER_CONFIG_DIR", dir.join("config"))
            .env("JUPYTER_DATA_DIR", dir.join("data"))
            .env("IPYTHONDIR", dir.join("ipython"))
            .env("JUPYTER_PLATFORM_DIRS", "1")
            .env("TMPDIR", &tmp)
            .env("E2B_BLOCKING_PARENT_PID", std::process::id().to_string())
            .env("PYTHONUNBUFFERED", "1");
        if let (Some(bin), Some(venv)) = (python.scripts_dir(), python.venv_dir()) {
            // As an activated venv, and as on E2B: `pip install` in a command installs where
            // the kernel imports from, and `python` is the kernel's interpreter.
            let path = std::env::var_os("PATH").unwrap_or_default();
            let path =
                std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(&path)))
                    .map_err(|e| Error::setup("cannot put the venv first on PATH", e))?;
            cmd.env("PATH", path).env("VIRTUAL_ENV", venv);
        }
        cmd.envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&root)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        child::only_stdio_and(&mut cmd, &[]);
        let child = cmd
            .spawn()
            .map_err(|e| Error::setup(format!("cannot run {}", python.exe.display()), e))?;
        let pid = child.id();
        log::debug!("started jupyter_server pid {pid} in {}", dir.display());
        let server = LocalServer {
            child: Mutex::new(child),
            pid,
            dir: dir.to_path_buf(),
            root,
            runtime,
            endpoint: Endpoint::new("http://127.0.0.1:1")?,
            token: token.clone(),
            log: server_log,
            socket: None,
            _cgroup: None,
            finished: AtomicBool::new(false),
        };
        // From here on, dropping `server` cleans up the process and the directory.
        let server = server.wait_ready(token, timeouts)?;
        // Read once at start-up; gone before any user code runs, which could read it.
        if let Err(e) = fs::remove_file(&token_file) {
            log::warn!("could not remove the server's token config: {e}");
        }
        Ok(server)
    }

    /// As [`LocalServer::spawn`], inside bubblewrap: the server sees its directories under
    /// [`bwrap::STATE`], the sandbox root at [`bwrap::HOME`], and listens on a Unix socket in a
    /// 0700 directory, the only way in from the host.
    fn spawn_isolated(
        python: &Python,
        token: &Secret,
        envs: &[(String, String)],
        timeouts: &Timeouts,
        dir: &Path,
        bwrap: &Path,
        options: &LocalOptions,
    ) -> Result<LocalServer, Error> {
        use std::os::unix::fs::PermissionsExt;
        let state = Path::new(bwrap::STATE);
        let inside = |name: &str| state.join(name).display().to_string();
        let private = fs::Permissions::from_mode(0o700);
        let fwd = dir.join(bwrap::FORWARDS);
        fs::create_dir_all(dir.join("sock"))
            .and_then(|()| fs::create_dir_all(&fwd))
            .and_then(|()| fs::set_permissions(dir.join("sock"), private.clone()))
            .and_then(|()| fs::set_permissions(&fwd, private))
            .map_err(|e| Error::setup("cannot create the server's socket directory", e))?;
        let root = dir.join("root");
        let runtime = dir.join("runtime");
        let config = format!("{SERVER_CONFIG}\n{TERMINALS_CONFIG}\n{IPC_KERNELS_CONFIG}");
        // The limits first, so that the kernel started ahead has them too.
        let main = format!("{}{SERVER_MAIN}", bwrap::rlimit_code(&options.limits));
        let (token_file, server_log, log, log_err) =
            write_server_files(dir, token, &main, &config)?;

        // The environment is built from nothing: no host variable (API keys, tokens) gets in.
        let mut path = String::new();
        if let Some(bin) = python.scripts_dir() {
            path.push_str(&format!("{}:", bin.display()));
        }
        path.push_str("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), path),
            ("HOME".into(), bwrap::HOME.into()),
            ("LANG".into(), "C.UTF-8".into()),
            ("JUPYTER_RUNTIME_DIR".into(), inside("runtime")),
            ("JUPYTER_CONFIG_DIR".into(), inside("config")),
            ("JUPYTER_DATA_DIR".into(), inside("data")),
            ("IPYTHONDIR".into(), inside("ipython")),
            ("JUPYTER_PLATFORM_DIRS".into(), "1".into()),
            ("PYTHONUNBUFFERED".into(), "1".into()),
        ];
        if let Some(venv) = python.venv_dir() {
            env.push(("VIRTUAL_ENV".into(), venv.display().to_string()));
        }
        env.extend(envs.iter().cloned());
        let python_paths = python::sandbox_paths(python)?;
        if let Some(size) = options.limits.max_disk {
            disk::mount_root(dir, size);
        }
        let user = SandboxUser::for_this_process();
        if let Some(user) = user {
            if let Some(hidden) = python_paths.iter().find(|p| !user.can_reach(p)) {
                return Err(Error::setup_msg(format!(
                    "the isolated sandbox runs as uid {} (the SDK runs as root, the sandbox \
                     must not), which cannot reach {}: give the Python a path every user can \
                     read (LocalOptions::python, {}) or use the managed venv",
                    user.uid,
                    hidden.display(),
                    python::PYTHON_ENV
                )));
            }
            user.own(dir)
                .map_err(|e| Error::setup("cannot hand the sandbox's directory to its user", e))?;
        }
        let cgroup = options.limits.max_total_memory.and_then(|limit| {
            let id = dir.file_name()?.to_string_lossy().into_owned();
            MemoryCgroup::create(&id, limit)
        });
        let plan = Plan {
            bwrap,
            dir,
            python_paths: &python_paths,
            internet: options.internet,
            env: &env,
            user,
            limits: &options.limits,
            cgroup: cgroup.as_ref(),
        };
        let mut prepared = plan.command()?;
        prepared
            .cmd
            .arg(&python.exe)
            .arg(inside(&format!("config/{MAIN_FILE}")))
            .arg(kernels_arg("ipc", bwrap::HOME))
            .arg(format!("--ServerApp.sock={}", inside("sock/server.sock")))
            .arg("--ServerApp.sock_mode=0600")
            .arg(format!("--ServerApp.root_dir={}", bwrap::HOME))
            .arg("--allow-root")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        std::os::unix::process::CommandExt::process_group(&mut prepared.cmd, 0);
        let child = bwrap::spawn(prepared)
            .map_err(|e| Error::setup(format!("cannot run {}", bwrap.display()), e))?;
        let pid = child.id();
        log::debug!(
            "started isolated jupyter_server (bwrap pid {pid}) in {}",
            dir.display()
        );
        let server = LocalServer {
            child: Mutex::new(child),
            pid,
            dir: dir.to_path_buf(),
            root,
            runtime,
            endpoint: Endpoint::new("http://localhost")?,
            token: token.clone(),
            log: server_log,
            socket: Some(dir.join("sock").join("server.sock")),
            _cgroup: cgroup,
            finished: AtomicBool::new(false),
        };
        let server = server.wait_ready(token, timeouts)?;
        if let Err(e) = fs::remove_file(&token_file) {
            log::warn!("could not remove the server's token config: {e}");
        }
        Ok(server)
    }

    /// Waits for the runtime file naming the port (or for the Unix socket), then for the API
    /// to answer.
    fn wait_ready(mut self, token: &Secret, timeouts: &Timeouts) -> Result<LocalServer, Error> {
        let started = Instant::now();
        let deadline = started + timeouts.sandbox_start;
        let info = self.runtime.join(format!("jpserver-{}.json", self.pid));
        let listening = match &self.socket {
            Some(socket) => {
                self.endpoint = Endpoint::new("http://localhost")?
                    .with_unix_socket(socket)
                    .with_jupyter_token(token);
                socket.display().to_string()
            }
            None => {
                let port = loop {
                    self.check_alive()?;
                    if let Some(port) = read_port(&info) {
                        break port;
                    }
                    if Instant::now() >= deadline {
                        return Err(self.start_timeout(timeouts.sandbox_start));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                };
                self.endpoint =
                    Endpoint::new(&format!("http://127.0.0.1:{port}"))?.with_jupyter_token(token);
                format!("port {port}")
            }
        };
        let probe = Http::new(
            self.endpoint.clone(),
            &Timeouts::default().request(Duration::from_secs(2)),
        );
        loop {
            self.check_alive()?;
            match probe.send(Method::Get, "/api/status", None) {
                Ok(r) if r.is_success() => break,
                Ok(r) if matches!(r.status, 401 | 403) => return Err(r.into_error()),
                _ => {}
            }
            if Instant::now() >= deadline {
                return Err(self.start_timeout(timeouts.sandbox_start));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The server's info file and its browser-open page hold its token, and user code can
        // read the runtime dir; the port was all the SDK needed from them. An isolated server
        // names them by its PID inside the sandbox, which the SDK does not know.
        let files: Vec<PathBuf> = match self.socket {
            None => vec![
                info,
                self.runtime
                    .join(format!("jpserver-{}-open.html", self.pid)),
            ],
            Some(_) => fs::read_dir(&self.runtime)
                .map(|entries| {
                    entries
                        .flatten()
                        .map(|e| e.path())
                        .filter(|p| {
                            p.file_name()
                                .and_then(|n| n.to_str())
                                .is_some_and(|n| n.starts_with("jpserver-"))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        for file in &files {
            if let Err(e) = fs::remove_file(file)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                log::warn!("could not remove {}: {e}", file.display());
            }
        }
        log::debug!(
            "jupyter_server pid {} ready on {listening} after {:?}",
            self.pid,
            started.elapsed()
        );
        Ok(self)
    }

    fn start_timeout(&self, after: Duration) -> Error {
        log::warn!("jupyter_server did not start: {}", self.log_tail(12));
        Error::Timeout {
            phase: TimeoutPhase::SandboxStart,
            after,
        }
    }

    fn check_alive(&self) -> Result<(), Error> {
        if self.is_alive() {
            return Ok(());
        }
        Err(Error::setup_msg(format!(
            "jupyter_server exited during start-up: {}",
            self.log_tail(12)
        )))
    }

    /// The server's last `lines` log lines, scrubbed of its token.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        server_log::scrub(self.log.tail(lines), self.token.expose())
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The directory the contents API serves.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// The isolated server's Unix socket on the host.
    pub(crate) fn socket_path(&self) -> Option<&Path> {
        self.socket.as_deref()
    }

    /// The server's host directory (see [`bwrap::FORWARDS`] for what else is in it).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where kernel connection files are written.
    pub(crate) fn runtime_dir(&self) -> &Path {
        &self.runtime
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// The host PID of a process inside the isolated server's namespaces (bubblewrap's
    /// child), whose `/proc/PID/net` shows the sandbox's network to the host; `None` once the
    /// server is gone.
    pub(crate) fn inner_pid(&self) -> Option<u32> {
        descendants(self.pid)
            .first()
            .and_then(|&pid| u32::try_from(pid).ok())
    }

    pub(crate) fn is_alive(&self) -> bool {
        let mut child = crate::sync::lock(&self.child);
        matches!(child.try_wait(), Ok(None))
    }

    /// Kills every descendant (kernels run in their own sessions, so the process group alone
    /// misses them), then the server's group, reaps the server and removes the directory.
    pub(crate) fn kill(&self) {
        use nix::sys::signal::{Signal, kill, killpg};
        use nix::unistd::Pid;
        let mut child = crate::sync::lock(&self.child);
        if matches!(child.try_wait(), Ok(None)) {
            let doomed = descendants(self.pid);
            for &pid in &doomed {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            if let Ok(pid) = i32::try_from(self.pid) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
            // SIGKILL takes effect asynchronously, and processes inside bubblewrap's PID
            // namespace are not our children to wait for: wait until they are gone, so the
            // sandbox is over when `kill()` returns.
            let until = std::time::Instant::now() + KILL_WAIT;
            while doomed.iter().any(|&pid| running(pid)) && std::time::Instant::now() < until {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            log::debug!("killed jupyter_server pid {}", self.pid);
        }
        drop(child);
        if self.finished.swap(true, Ordering::SeqCst) {
            return;
        }
        if log::log_enabled!(log::Level::Debug) {
            let said = self.log.warnings();
            if !said.is_empty() {
                log::debug!(
                    "jupyter_server pid {} logged these warnings:\n{}",
                    self.pid,
                    server_log::scrub(said, self.token.expose())
                );
            }
        }
        if let Err(e) = sandbox_dir::remove(&self.dir) {
            log::warn!("could not remove {}: {e}", self.dir.display());
        }
    }
}

/// How long `kill` waits for the server's processes to be gone after SIGKILL.
const KILL_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// True while `pid` exists and is not a zombie (a zombie has exited; its parent reaps it).
fn running(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a server reads from its directory, isolated or not: its start-up script (`main`), its
/// config, its token in a private file (never on a command line), the kernels' profile; and its
/// log. Returns the token file's path, the log and what the server's stdout and stderr write to.
fn write_server_files(
    dir: &Path,
    token: &Secret,
    main: &str,
    config: &str,
) -> Result<(PathBuf, ServerLog, Stdio, Stdio), Error> {
    fs::write(dir.join("config").join(MAIN_FILE), main)
        .and_then(|()| fs::write(dir.join("config").join("jupyter_server_config.py"), config))
        .and_then(|()| fs::write(dir.join("config").join("terminal_rc.sh"), TERMINAL_RC))
        .map_err(|e| Error::setup("cannot write the server config", e))?;
    let token_file = dir.join("config").join(TOKEN_CONFIG);
    write_private(
        &token_file,
        serde_json::json!({"IdentityProvider": {"token": token.expose()}})
            .to_string()
            .as_bytes(),
    )
    .map_err(|e| Error::setup("cannot write the server's token config", e))?;
    write_kernel_config(dir)?;
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    let (log, out, err) = ServerLog::start(name.trim_start_matches("e2b-local-"))
        .map_err(|e| Error::setup("cannot create the server log", e))?;
    Ok((token_file, log, out, err))
}

/// The IPython profile every kernel loads: [`KERNEL_CONFIG`] and the [`STARTUP`] file.
fn write_kernel_config(dir: &Path) -> Result<(), Error> {
    let profile = dir.join("ipython").join("profile_default");
    fs::create_dir_all(&profile)
        .and_then(|()| fs::write(profile.join("ipython_kernel_config.py"), KERNEL_CONFIG))
        .and_then(|()| fs::create_dir_all(profile.join("startup")))
        .and_then(|()| fs::write(profile.join("startup").join("00-e2b-formats.py"), STARTUP))
        .map_err(|e| Error::setup("cannot write the kernel config", e))
}

/// Creates `path` readable and writable by its owner only, then writes `data`.
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(data)
}

fn read_port(info: &Path) -> Option<u16> {
    let text = fs::read_to_string(info).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("port")?.as_u64().and_then(|p| u16::try_from(p).ok())
}

/// Every process below `root`, from /proc (Linux); empty elsewhere.
fn descendants(root: u32) -> Vec<i32> {
    let mut children: std::collections::HashMap<u32, Vec<u32>> = Default::default();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name may hold spaces and parentheses; fields resume after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|s| s.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or(&[]) {
            if let Ok(c32) = i32::try_from(c) {
                out.push(c32);
            }
            todo.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_sockets_fit_under_tmp_and_not_under_a_long_tmpdir() {
        let dir = format!("/tmp/{}{}", sandbox_dir::PREFIX, "0".repeat(32));
        assert!(ipc_fits(&Path::new(&dir).join("runtime")));
        let long = format!("/var/folders/zz/{}/T/{dir}", "x".repeat(28));
        assert!(!ipc_fits(&Path::new(&long).join("runtime")));
    }
}
