//! `sandbox.commands()`: shell commands in the sandbox, run to completion or spawned. See
//! [`Commands`] for how they run and why.

mod connect;
mod handle;
mod plane;
mod runner;
mod running;

use std::time::Duration;

use serde::Serialize;

use crate::error::Error;
use crate::output::DEFAULT_MAX_OUTPUT;
use crate::sandbox::Sandbox;

pub(crate) use crate::model::command::{CommandOutput, CommandResult};
pub use handle::{CommandHandle, OutputIter};
use plane::Proc;

/// Default timeout of a command, as in E2B.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long after the command's own timeout the client stops trusting the sandbox side.
const BACKSTOP: Duration = Duration::from_secs(10);
/// How long to wait for the kernel to report after an interrupt.
const SETTLE: Duration = Duration::from_secs(5);
/// How often an interrupt is repeated while a kill is pending.
const REINTERRUPT: Duration = Duration::from_secs(1);

type Callback<'a> = Box<dyn FnMut(&str) + Send + 'a>;

/// A command that this SDK's runner started in the sandbox and that still runs, as
/// [`Commands::list`] gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ProcessInfo {
    /// The process id of the shell running the command (its process group and session id).
    pub pid: u32,
    /// The command line, as given to `/bin/bash -c`.
    pub cmd: String,
    /// Its absolute working directory.
    #[serde(default)]
    pub cwd: Option<String>,
    /// When it started (RFC 3339, UTC).
    #[serde(default)]
    pub started_at: Option<String>,
}

/// Shell commands in the sandbox. Get one with [`Sandbox::commands`].
///
/// # How a command runs
///
/// Each command runs in a private Python kernel of the sandbox (a *system* kernel, started on
/// first use and never listed as a context), as one cell that starts
/// `/bin/bash -c <cmd>` with `subprocess.Popen(start_new_session=True)` and pipes, reads stdout
/// and stderr with `selectors`, and writes what it reads to the cell's own `sys.stdout` and
/// `sys.stderr` (decoded as UTF-8 with `errors="replace"`). Its start (pid) and its end (exit
/// code) are published as display data of a private MIME type. Consequences:
///
/// - **stdout and stderr stay apart**: they arrive as separate `stream` messages.
/// - **Output survives connection cuts like `run_code` output**: it travels over the kernel
///   websocket, so it is buffered and replayed by the server on reconnect, numbered by the
///   kernel hook, and gaps are filled from the hook's ring (the same recovery as `run_code`).
/// - **The timeout is enforced in the sandbox**: the cell kills the process group when it
///   expires, even if the client is gone. The client keeps a later deadline of its own as a
///   backstop and interrupts the kernel if the sandbox side never reports.
/// - **Killing** interrupts that kernel (`POST /api/kernels/{id}/interrupt`); the cell turns
///   the `KeyboardInterrupt` into `killpg(SIGKILL)`. The command's own process group is a new
///   session, so the interrupt itself never reaches the command.
/// - **It works on every backend that runs kernels**, Jupyter Kernel Gateway included.
/// - **Concurrency**: a kernel runs one cell at a time, so each running command holds a kernel
///   of a small pool; finished commands return theirs (two idle kernels are kept).
/// - **Output is also kept in the sandbox**, in a ring of files (the last 8 MiB per command,
///   kept a minute after it ends), so [`Commands::connect`] can replay it to another handle.
/// - **A command dies with its kernel** unless started with
///   [`CommandBuilder::background`]: a small guard process kills its process group when the
///   kernel goes away without saying the command ended (a server shutting the kernel down,
///   a crash), since the command's own session is out of reach of the kernel's process group.
///
/// Why not the terminals API (which [`Sandbox::pty`](crate::Sandbox::pty) uses for interactive
/// shells): a PTY merges stdout and stderr into one stream with ANSI noise and no exit code;
/// terminado's replay after a cut only covers its last 1000 output chunks; and Jupyter Kernel
/// Gateway has no terminals at all.
///
/// A non-zero exit code is data ([`CommandResult::exit_code`]), not an `Err`;
/// [`CommandResult::check`] turns it into [`Error::CommandFailed`] when that is what you want.
///
/// ```no_run
/// # let sbx = e2b_blocking::Sandbox::local()?;
/// let out = sbx.commands().run("echo hi; echo oops >&2; exit 3")?;
/// assert_eq!((out.stdout.as_str(), out.stderr.as_str(), out.exit_code), ("hi\n", "oops\n", 3));
///
/// let mut server = sbx
///     .commands()
///     .cmd("python3 -m http.server 8000")
///     .cwd("site")
///     .timeout(None)
///     .spawn()?;
/// // ... later
/// server.kill()?;
/// # Ok::<(), e2b_blocking::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Commands {
    sandbox: Sandbox,
}

impl Commands {
    pub(crate) fn new(sandbox: Sandbox) -> Self {
        Commands { sandbox }
    }

    /// Runs a command with `/bin/bash -c` in the sandbox root and waits for it (60 s timeout).
    /// A non-zero exit code is not an error; see [`CommandResult::check`].
    ///
    /// # Errors
    ///
    /// As for [`CommandBuilder::run`].
    ///
    /// # Examples
    ///
    /// ```
    /// # std::thread::spawn(|| { std::thread::sleep(std::time::Duration::from_secs(120)); eprintln!("doctest deadline passed"); std::process::exit(1) });
    /// use e2b_blocking::Sandbox;
    ///
    /// let sbx = Sandbox::local()?;
    /// let out = sbx.commands().run("echo hi; echo oops >&2; exit 3")?;
    /// assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("hi\n", "oops\n"));
    /// assert_eq!(out.exit_code, 3); // data, not an Err...
    /// assert!(out.check().is_err()); // ...until you ask for one
    ///
    /// let mut job = sbx.commands().spawn("sleep 30")?;
    /// job.kill()?;
    /// assert_eq!(job.wait()?.exit_code, -9);
    /// # Ok::<(), e2b_blocking::Error>(())
    /// ```
    pub fn run(&self, cmd: impl Into<String>) -> Result<CommandResult, Error> {
        self.cmd(cmd).run()
    }

    /// Starts a command and returns a handle to stream, wait for, or kill it (60 s timeout).
    ///
    /// # Errors
    ///
    /// As for [`CommandBuilder::spawn`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// # let sbx = e2b_blocking::Sandbox::local()?;
    ///
    /// let mut job = sbx.commands().spawn("for i in 1 2 3; do echo $i; sleep 1; done")?;
    /// // The handle is Send: wait on it, or kill it, from any thread.
    /// match job.wait_timeout(Duration::from_secs(10))? {
    ///     Some(done) => println!("exited {}: {}", done.exit_code, done.stdout),
    ///     None => {
    ///         job.kill()?;
    ///     }
    /// }
    /// # Ok::<(), e2b_blocking::Error>(())
    /// ```
    pub fn spawn(&self, cmd: impl Into<String>) -> Result<CommandHandle, Error> {
        self.cmd(cmd).spawn()
    }

    /// The commands started through this sandbox (by any client of it) that still run,
    /// spawned and background ones alike, by pid. Each command is recorded by the runner in
    /// the sandbox's temp directory while it runs; a record whose process is gone, or whose
    /// pid now belongs to another process, is not listed.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] and connection errors; [`Error::KernelSetup`] when the sandbox could
    /// not run the listing.
    pub fn list(&self) -> Result<Vec<ProcessInfo>, Error> {
        if let crate::plane::Plane::E2b(plane) = self.sandbox.plane()? {
            return Ok(plane
                .list_processes()?
                .into_iter()
                .map(|p| ProcessInfo {
                    pid: p.pid,
                    // A command started as `/bin/bash -l -c CMD` is shown as CMD.
                    cmd: match p.args.as_slice() {
                        [.., c, last] if c == "-c" => last.clone(),
                        _ => std::iter::once(p.cmd)
                            .chain(p.args)
                            .collect::<Vec<_>>()
                            .join(" "),
                    },
                    cwd: p.cwd,
                    started_at: None,
                })
                .collect());
        }
        let out =
            crate::kernel::helper::call(&self.sandbox, serde_json::json!({"op": "commands"}))?;
        serde_json::from_value(out["commands"].clone())
            .map_err(|e| Error::protocol_from("command list from the sandbox", e))
    }

    /// Kills a process in the sandbox with SIGKILL: the whole process group of a command from
    /// [`Commands::list`], or just that process for any other pid. Returns `false` when no
    /// such process exists. A [`CommandHandle`] of a killed command then waits with exit code
    /// `-9`.
    ///
    /// # Errors
    ///
    /// [`Error::PermissionDenied`] for a process the sandbox's user may not signal;
    /// [`Error::Closed`] and connection errors.
    pub fn kill(&self, pid: u32) -> Result<bool, Error> {
        if let crate::plane::Plane::E2b(plane) = self.sandbox.plane()? {
            return plane.kill_process(pid);
        }
        let op = serde_json::json!({"op": "kill", "pid": pid, "path": format!("pid {pid}")});
        let out = crate::kernel::helper::call(&self.sandbox, op)?;
        Ok(out["killed"].as_bool().unwrap_or(false))
    }

    /// Describes a command with options (cwd, env vars, timeout, output callbacks); finish
    /// with [`CommandBuilder::run`] or [`CommandBuilder::spawn`].
    pub fn cmd<'a>(&self, cmd: impl Into<String>) -> CommandBuilder<'a> {
        CommandBuilder {
            sandbox: self.sandbox.clone(),
            cmd: cmd.into(),
            cwd: None,
            envs: Default::default(),
            timeout: Some(DEFAULT_TIMEOUT),
            stdin: false,
            background: false,
            retain_output: true,
            max_output: DEFAULT_MAX_OUTPUT,
            user: None,
            on_stdout: None,
            on_stderr: None,
        }
    }
}

/// Options of one command.
///
/// Callbacks may borrow from the caller for [`CommandBuilder::run`], which waits; a command
/// that outlives the call ([`CommandBuilder::spawn`]) needs `'static` callbacks.
#[must_use = "nothing runs until .run() or .spawn() is called"]
pub struct CommandBuilder<'a> {
    sandbox: Sandbox,
    cmd: String,
    cwd: Option<String>,
    envs: crate::env_vars::EnvVars,
    timeout: Option<Duration>,
    stdin: bool,
    background: bool,
    retain_output: bool,
    max_output: usize,
    user: Option<String>,
    on_stdout: Option<Callback<'a>>,
    on_stderr: Option<Callback<'a>>,
}

impl std::fmt::Debug for CommandBuilder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandBuilder")
            .field("cmd", &self.cmd)
            .field("cwd", &self.cwd)
            .field("envs", &self.envs)
            .field("timeout", &self.timeout)
            .field("stdin", &self.stdin)
            .field("background", &self.background)
            .field("retain_output", &self.retain_output)
            .field("max_output", &self.max_output)
            .finish_non_exhaustive()
    }
}

impl<'a> CommandBuilder<'a> {
    /// Working directory: relative to the sandbox root, or absolute (commands can reach the
    /// whole machine). Defaults to the sandbox root.
    pub fn cwd(mut self, cwd: impl Into<String>) -> Self {
        self.cwd = Some(cwd.into());
        self
    }

    /// One environment variable for this command, on top of the sandbox's own.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// Environment variables for this command, on top of the sandbox's own.
    pub fn envs<I, K, V>(mut self, envs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.envs.extend(crate::env_vars::owned(envs));
        self
    }

    /// How long the command may run; then its process group is killed and waiting for it gives
    /// [`Error::Timeout`] with [`TimeoutPhase::Command`](crate::TimeoutPhase::Command). `None` lets
    /// it run for as long as it likes. Defaults to 60 s, for spawned commands too.
    pub fn timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.timeout = timeout.into();
        self
    }

    /// Gives a spawned command a stdin that [`CommandHandle::send_stdin`] writes to and
    /// [`CommandHandle::close_stdin`] closes. Defaults to `false`: stdin is `/dev/null`.
    /// [`CommandBuilder::run`] ignores it, as nothing could be sent while it waits.
    ///
    /// The runner cell cannot receive messages while it runs, so stdin is a FIFO in the
    /// sandbox's temp directory that each `send_stdin` writes to from a small cell in another
    /// private kernel.
    pub fn stdin(mut self, stdin: bool) -> Self {
        self.stdin = stdin;
        self
    }

    /// Lets a spawned command keep running when its [`CommandHandle`] is dropped (it still
    /// ends at its timeout or when killed with [`Commands::kill`]). Defaults to `false`:
    /// dropping the handle kills the command, and so does closing the sandbox (also on a
    /// Jupyter server the sandbox does not own, where a background command outlives the
    /// sandbox). [`Commands::connect`] gives a new handle on it, with its output from the
    /// start; the private kernel running it is reused once it ends. Its handle's
    /// [`CommandHandle::kill`] kills it by pid, since its runner ignores kernel interrupts (a
    /// Jupyter server interrupts a kernel it shuts down).
    pub fn background(mut self, background: bool) -> Self {
        self.background = background;
        self
    }

    /// Whether the result and the handle keep the output. `false` keeps none of it: for
    /// output that only the callbacks or [`CommandHandle::output`] consume (a server's log,
    /// a stream piped elsewhere), so a command may print for ever at no memory cost to the
    /// caller; [`CommandResult::dropped`] still counts it. E2B's SDKs have no such switch
    /// (their handles keep everything). Defaults to `true`, within
    /// [`CommandBuilder::max_output`].
    pub fn retain_output(mut self, retain: bool) -> Self {
        self.retain_output = retain;
        self
    }

    /// The most bytes of stdout, and of stderr, that the result (and
    /// [`CommandHandle::stdout`]) keeps: the last `bytes` of each stream, since the end of a
    /// log holds its outcome (the error, the summary) while the start of a flood is more of
    /// the same. [`CommandResult::dropped`] says how much was left out; the callbacks see
    /// everything. Defaults to [`DEFAULT_MAX_OUTPUT`](crate::DEFAULT_MAX_OUTPUT), 16 MiB.
    pub fn max_output(mut self, bytes: usize) -> Self {
        self.max_output = bytes;
        self
    }

    /// Runs the command as `user` (E2B's `user` option: `user`, the default, or `root`).
    /// Only the E2B data plane ([`DataPlane::E2b`](crate::DataPlane::E2b)) has users; on the
    /// Jupyter plane the command fails to start with [`Error::Unsupported`].
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Called with each piece of stdout as it arrives, on the thread that waits.
    pub fn on_stdout(mut self, f: impl FnMut(&str) + Send + 'a) -> Self {
        self.on_stdout = Some(Box::new(f));
        self
    }

    /// Called with each piece of stderr as it arrives, on the thread that waits.
    pub fn on_stderr(mut self, f: impl FnMut(&str) + Send + 'a) -> Self {
        self.on_stderr = Some(Box::new(f));
        self
    }

    /// Runs the command and waits for it to end.
    ///
    /// # Errors
    ///
    /// What kept it from starting ([`Error::FileNotFound`] for a missing cwd,
    /// [`Error::InvalidArgument`] for a NUL byte, ...) or ended it other than its own exit
    /// (see [`CommandHandle::wait`]). A non-zero exit code is not an error.
    pub fn run(mut self) -> Result<CommandResult, Error> {
        self.stdin = false;
        self.start()?.wait()
    }

    /// Starts the command; returns once it is running (its pid is known).
    fn start(self) -> Result<Proc<'a>, Error> {
        Proc::start(self)
    }
}

impl CommandBuilder<'static> {
    /// Starts the command; returns once it is running (its pid is known), or with the error
    /// that kept it from starting. The command keeps running while the handle lives.
    ///
    /// # Errors
    ///
    /// As for [`CommandBuilder::run`], for starting.
    pub fn spawn(self) -> Result<CommandHandle, Error> {
        self.start().map(CommandHandle)
    }
}
