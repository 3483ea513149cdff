//! `sandbox.commands()`: shell commands in the sandbox, run to completion or spawned. See
//! [`Commands`] for how they run and why.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use crate::error::{Error, TimeoutPhase};
use crate::exec::driver::{Driver, Stop};
use crate::exec::models::Execution;
use crate::jupyter::delivery::Failure;
use crate::jupyter::rest;
use crate::jupyter::wire::{Incoming, Outgoing};
use crate::kernel::Kernel;
use crate::sandbox::Sandbox;

/// The cell-side runner (see [`Commands`]).
const RUNNER: &str = include_str!("commands.py");
/// MIME type of the runner's start, exit and error records.
const COMMAND_MIME: &str = "application/x-e2b-command+json";
/// Default timeout of a command, as in E2B.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long after the command's own timeout the client stops trusting the sandbox side.
const BACKSTOP: Duration = Duration::from_secs(10);
/// How long to wait for the kernel to report after an interrupt.
const SETTLE: Duration = Duration::from_secs(5);
/// How often an interrupt is repeated while a kill is pending.
const REINTERRUPT: Duration = Duration::from_secs(1);
/// Idle system kernels kept for the next command.
const MAX_IDLE: usize = 2;

type Callback<'a> = Box<dyn FnMut(&str) + Send + 'a>;

/// What a finished command produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
#[must_use = "a non-zero exit code is data; use `.check()` to turn it into an Err"]
pub struct CommandResult {
    /// Everything written to stdout (invalid UTF-8 replaced by U+FFFD).
    pub stdout: String,
    /// Everything written to stderr (invalid UTF-8 replaced by U+FFFD).
    pub stderr: String,
    /// The exit code; negative when a signal ended the process (`-9` after a kill).
    pub exit_code: i32,
}

impl CommandResult {
    /// True when the exit code is 0.
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }

    /// `Ok(self)` when the exit code is 0, else [`Error::CommandFailed`] with the output.
    pub fn check(self) -> Result<CommandResult, Error> {
        if self.success() {
            Ok(self)
        } else {
            Err(Error::CommandFailed {
                exit_code: self.exit_code,
                stdout: self.stdout,
                stderr: self.stderr,
            })
        }
    }
}

/// One piece of a running command's output, as yielded by [`CommandHandle::output`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandOutput {
    /// Text the command wrote to stdout.
    Stdout(String),
    /// Text the command wrote to stderr.
    Stderr(String),
}

impl CommandOutput {
    /// The text, whichever stream it came from.
    pub fn text(&self) -> &str {
        match self {
            CommandOutput::Stdout(s) | CommandOutput::Stderr(s) => s,
        }
    }

    /// True for stderr.
    pub fn is_stderr(&self) -> bool {
        matches!(self, CommandOutput::Stderr(_))
    }
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
///
/// Why not the terminals API: a PTY merges stdout and stderr into one stream with ANSI noise
/// and no exit code; terminado replays its last 1000 chunks to *every* client that reconnects,
/// so a client cannot resume exactly where it was cut; and Jupyter Kernel Gateway has no
/// terminals at all.
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
    pub fn run(&self, cmd: impl Into<String>) -> Result<CommandResult, Error> {
        self.cmd(cmd).run()
    }

    /// Starts a command and returns a handle to stream, wait for, or kill it (60 s timeout).
    pub fn spawn(&self, cmd: impl Into<String>) -> Result<CommandHandle, Error> {
        self.cmd(cmd).spawn()
    }

    /// Describes a command with options (cwd, env vars, timeout, output callbacks); finish
    /// with [`CommandBuilder::run`] or [`CommandBuilder::spawn`].
    pub fn cmd<'a>(&self, cmd: impl Into<String>) -> CommandBuilder<'a> {
        CommandBuilder {
            sandbox: self.sandbox.clone(),
            cmd: cmd.into(),
            cwd: None,
            envs: Vec::new(),
            timeout: Some(DEFAULT_TIMEOUT),
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
    envs: Vec<(String, String)>,
    timeout: Option<Duration>,
    on_stdout: Option<Callback<'a>>,
    on_stderr: Option<Callback<'a>>,
}

impl std::fmt::Debug for CommandBuilder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env_names: Vec<&str> = self.envs.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("CommandBuilder")
            .field("cmd", &self.cmd)
            .field("cwd", &self.cwd)
            .field("envs", &env_names)
            .field("timeout", &self.timeout)
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
        self.envs
            .extend(envs.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// How long the command may run; then its process group is killed and waiting for it
    /// gives [`Error::Timeout`] with [`TimeoutPhase::Command`]. `None` lets it run for as long
    /// as it likes. Defaults to 60 s, for spawned commands too.
    pub fn timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.timeout = timeout.into();
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
    pub fn run(self) -> Result<CommandResult, Error> {
        self.start()?.wait()
    }

    /// Starts the command; returns once it is running (its pid is known).
    fn start(self) -> Result<Running<'a>, Error> {
        if self.cmd.contains('\0') {
            return Err(Error::InvalidArgument("command contains a NUL byte".into()));
        }
        for (k, v) in &self.envs {
            if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
                return Err(Error::InvalidArgument(format!(
                    "invalid environment variable name or value: {k:?}"
                )));
            }
        }
        if self.cwd.as_deref().is_some_and(|c| c.contains('\0')) {
            return Err(Error::InvalidArgument("cwd contains a NUL byte".into()));
        }
        let sandbox = &self.sandbox;
        let pool = sandbox.system_kernels();
        let kernel = pool.acquire(sandbox)?;
        if let Err(e) = sandbox.ensure_prepared(&kernel) {
            pool.release(sandbox, kernel, false);
            return Err(e);
        }
        let envs: serde_json::Map<String, Value> = self
            .envs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let spec = json!({
            "cmd": self.cmd,
            "cwd": self.cwd,
            "envs": envs,
            "timeout": self.timeout.map(|t| t.as_secs_f64()),
        });
        let code = command_cell(&spec);
        let mut request = Outgoing::execute(kernel.conn.session_id(), &code, false);
        request.content["store_history"] = Value::Bool(false);
        let msg_id = request.msg_id.clone();
        let kernel_id = kernel.id.clone();
        let driver = match Driver::send(kernel.clone(), request) {
            Ok(d) => d,
            Err(e) => {
                pool.release(sandbox, kernel, false);
                return Err(e);
            }
        };
        log::debug!("command {msg_id} on kernel {kernel_id}: {:?}", self.cmd);
        let mut handle = Running {
            sandbox: sandbox.clone(),
            driver: Some(driver),
            msg_id,
            pid: None,
            exit: None,
            start_error: None,
            python_error: None,
            stdout: String::new(),
            stderr: String::new(),
            timeout: self.timeout,
            backstop: self.timeout.map(|t| Instant::now() + t + BACKSTOP),
            settle_until: None,
            kill_requested: false,
            client_timed_out: false,
            panicked: None,
            ending: None,
            on_stdout: self.on_stdout,
            on_stderr: self.on_stderr,
            queue: VecDeque::new(),
            queueing: false,
            starting: true,
            killing: false,
        };
        let started_by = Instant::now() + sandbox.config().timeouts.request;
        while handle.pid.is_none() && handle.ending.is_none() {
            handle.pump(Some(started_by));
            if handle.pid.is_none() && handle.ending.is_none() && Instant::now() >= started_by {
                // Dropping the handle kills whatever did start.
                handle.starting = false;
                return Err(Error::Timeout {
                    phase: TimeoutPhase::KernelReply,
                    after: sandbox.config().timeouts.request,
                });
            }
        }
        handle.starting = false;
        if let Some(Ending::Failed(e)) = &handle.ending {
            return Err(e.to_error(&handle.stdout, &handle.stderr));
        }
        Ok(handle)
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

/// Why a command ended, kept so that every `wait` can rebuild the same outcome.
#[derive(Debug)]
enum Ending {
    Exited(i32),
    Failed(Fault),
}

#[derive(Debug, Clone)]
enum Fault {
    Timeout(Duration),
    Connection(Failure),
    NotFound(String),
    NotADirectory(String),
    PermissionDenied(String),
    Runner(String),
    Lost(Option<u64>),
    Panicked(&'static str, String),
    Closed,
    /// The cell was sent this many times and never reached the kernel (on this kernel id).
    NeverArrived(String, u32),
}

impl Fault {
    fn to_error(&self, stdout: &str, stderr: &str) -> Error {
        match self {
            Fault::Timeout(after) => Error::Timeout {
                phase: TimeoutPhase::Command,
                after: *after,
            },
            Fault::Connection(f) => f.to_error(),
            Fault::NotFound(path) => Error::FileNotFound { path: path.clone() },
            Fault::NotADirectory(path) => Error::NotADirectory { path: path.clone() },
            Fault::PermissionDenied(path) => Error::PermissionDenied { path: path.clone() },
            Fault::Runner(message) => Error::protocol(message.clone()),
            Fault::Lost(missing) => {
                let mut partial = Execution::default();
                partial.logs.stdout.push(stdout.to_string());
                partial.logs.stderr.push(stderr.to_string());
                Error::OutputLost {
                    missing: *missing,
                    partial: Box::new(partial),
                }
            }
            Fault::Panicked(callback, message) => Error::CallbackPanicked {
                callback,
                message: message.clone(),
            },
            Fault::Closed => Error::Closed,
            Fault::NeverArrived(kernel_id, sends) => Stop::NeverArrived { sends: *sends }
                .into_error(
                    kernel_id,
                    (TimeoutPhase::Command, Duration::ZERO),
                    Execution::default,
                ),
        }
    }
}

impl Ending {
    fn to_result(&self, stdout: &str, stderr: &str) -> Result<CommandResult, Error> {
        match self {
            Ending::Exited(code) => Ok(CommandResult {
                stdout: stdout.to_string(),
                stderr: stderr.to_string(),
                exit_code: *code,
            }),
            Ending::Failed(fault) => Err(fault.to_error(stdout, stderr)),
        }
    }
}

/// A running (or finished) command. Output reaches the callbacks and [`CommandHandle::output`]
/// while a thread waits in one of the handle's methods. The handle is `Send`: a spawned server
/// can be waited on, or killed, from another thread.
///
/// Dropping a handle whose command still runs kills the command.
pub struct CommandHandle(Running<'static>);

impl std::fmt::Debug for CommandHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl CommandHandle {
    /// The process id of the shell running the command, in the sandbox.
    pub fn pid(&self) -> Option<u32> {
        self.0.pid
    }

    /// True once the command has ended (as far as this handle has seen; see
    /// [`CommandHandle::try_wait`]).
    pub fn is_finished(&self) -> bool {
        self.0.ending.is_some()
    }

    /// Stdout received so far.
    pub fn stdout(&self) -> &str {
        &self.0.stdout
    }

    /// Stderr received so far.
    pub fn stderr(&self) -> &str {
        &self.0.stderr
    }

    /// Waits for the command to end. Bounded by the command's timeout (plus a grace period
    /// for the sandbox to report); unbounded for a command without one. Can be called again:
    /// it returns the same outcome.
    ///
    /// # Errors
    ///
    /// What ended the command other than its own exit: [`Error::Timeout`] with
    /// [`TimeoutPhase::Command`], a lost connection or sandbox, [`Error::OutputLost`], a
    /// callback that panicked ([`Error::CallbackPanicked`]). A non-zero exit code is not one.
    pub fn wait(&mut self) -> Result<CommandResult, Error> {
        self.0.wait()
    }

    /// Waits at most `limit`; `Ok(None)` means the command is still running.
    ///
    /// # Errors
    ///
    /// As for [`CommandHandle::wait`].
    pub fn wait_timeout(&mut self, limit: Duration) -> Result<Option<CommandResult>, Error> {
        self.0.wait_timeout(limit)
    }

    /// Handles whatever output has arrived, without blocking; `Ok(None)` while running.
    ///
    /// # Errors
    ///
    /// As for [`CommandHandle::wait`].
    pub fn try_wait(&mut self) -> Result<Option<CommandResult>, Error> {
        self.0.wait_timeout(Duration::ZERO)
    }

    /// Kills the command's process group (SIGKILL) and waits for the sandbox to confirm.
    /// Returns `false` when it had already ended. Afterwards [`CommandHandle::wait`] gives the
    /// result, with exit code `-9` unless the command ended first.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] or a connection error when the sandbox cannot be told;
    /// [`Error::Timeout`] when the command did not end even when killed from another kernel.
    pub fn kill(&mut self) -> Result<bool, Error> {
        self.0.kill()
    }

    /// Iterates over output as it arrives, until the command ends (then call
    /// [`CommandHandle::wait`] for the exit code, or for the error that ended it). Callbacks
    /// still run.
    pub fn output(&mut self) -> OutputIter<'_> {
        self.0.queueing = true;
        OutputIter {
            handle: &mut self.0,
        }
    }
}

/// A command and the wait for it: what [`CommandHandle`] wraps, and what
/// [`CommandBuilder::run`] waits on directly with callbacks that borrow.
struct Running<'a> {
    sandbox: Sandbox,
    /// The cell's execution on a system kernel, until the kernel goes back to the pool.
    driver: Option<Driver>,
    msg_id: String,
    pid: Option<u32>,
    exit: Option<(i32, String)>,
    start_error: Option<Fault>,
    python_error: Option<String>,
    stdout: String,
    stderr: String,
    timeout: Option<Duration>,
    backstop: Option<Instant>,
    settle_until: Option<Instant>,
    kill_requested: bool,
    client_timed_out: bool,
    panicked: Option<(&'static str, String)>,
    ending: Option<Ending>,
    on_stdout: Option<Callback<'a>>,
    on_stderr: Option<Callback<'a>>,
    queue: VecDeque<CommandOutput>,
    queueing: bool,
    /// Set while `spawn` waits for the start record.
    starting: bool,
    /// Set while `kill` drives the wait (it keeps its own deadline and fallback).
    killing: bool,
}

impl std::fmt::Debug for Running<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandHandle")
            .field("pid", &self.pid)
            .field("finished", &self.ending.is_some())
            .field("kernel", &self.kernel().map(|k| &k.id))
            .finish_non_exhaustive()
    }
}

impl<'a> Running<'a> {
    fn wait(&mut self) -> Result<CommandResult, Error> {
        self.pump(None);
        self.outcome()
            .unwrap_or_else(|| Err(Error::protocol("command wait ended without an outcome")))
    }

    fn wait_timeout(&mut self, limit: Duration) -> Result<Option<CommandResult>, Error> {
        self.pump(Some(Instant::now() + limit));
        self.outcome().transpose()
    }

    fn kill(&mut self) -> Result<bool, Error> {
        if self.ending.is_some() {
            return Ok(false);
        }
        self.kill_requested = true;
        let mut deadline = Instant::now() + SETTLE;
        self.settle_until = Some(deadline);
        let mut fallback = self.pid;
        self.killing = true;
        while self.ending.is_none() {
            if Instant::now() >= deadline {
                if let Some(pid) = fallback.take() {
                    // The kernel did not turn the interrupt into a kill in time: kill the
                    // process group from another kernel, then give this one time to report.
                    log::warn!(
                        "command {} ignored the interrupt; killing pid {pid} directly",
                        self.msg_id
                    );
                    self.kill_from_elsewhere(pid);
                    deadline = Instant::now() + SETTLE;
                    self.settle_until = Some(deadline);
                    continue;
                }
                log::warn!("command {} did not end after a kill", self.msg_id);
                let after = self.timeout.unwrap_or(SETTLE);
                self.end(Ending::Failed(Fault::Timeout(after)), false);
                break;
            }
            if let Some(kernel) = self.kernel()
                && let Err(e) = rest::interrupt_kernel(self.sandbox.http(), &kernel.id)
            {
                log::debug!("interrupting kernel {} to kill a command: {e}", kernel.id);
                if e.is_fatal() || matches!(e, Error::KernelNotFound { .. }) {
                    self.killing = false;
                    self.end(Ending::Failed(Fault::Closed), false);
                    return Err(e);
                }
            }
            self.pump(Some((Instant::now() + REINTERRUPT).min(deadline)));
        }
        self.killing = false;
        match &self.ending {
            Some(Ending::Exited(_)) => Ok(true),
            Some(Ending::Failed(f)) => Err(f.to_error(&self.stdout, &self.stderr)),
            None => Ok(true),
        }
    }

    /// `killpg(pid, SIGKILL)` run in another system kernel.
    fn kill_from_elsewhere(&self, pid: u32) {
        let sandbox = &self.sandbox;
        let pool = sandbox.system_kernels();
        match pool.acquire(sandbox) {
            Ok(kernel) => {
                let code = format!(
                    "import os as __e2b_os, signal as __e2b_signal\n\
                     try:\n    __e2b_os.killpg({pid}, __e2b_signal.SIGKILL)\n\
                     except OSError:\n    pass"
                );
                let done = kernel.run_silent(&code, sandbox.config().timeouts.request);
                if let Err(e) = &done {
                    log::warn!("could not kill pid {pid} from kernel {}: {e}", kernel.id);
                }
                pool.release(sandbox, kernel, done.is_ok());
            }
            Err(e) => log::warn!("no kernel to kill pid {pid} from: {e}"),
        }
    }

    fn outcome(&self) -> Option<Result<CommandResult, Error>> {
        self.ending
            .as_ref()
            .map(|e| e.to_result(&self.stdout, &self.stderr))
    }

    /// Handles deliveries until the command ends, `until` passes, or (while iterating) output
    /// is queued.
    fn pump(&mut self, until: Option<Instant>) {
        loop {
            if self.ending.is_some()
                || (self.queueing && !self.queue.is_empty())
                || (self.starting && self.pid.is_some())
            {
                return;
            }
            let guard = self.settle_until.or(self.backstop);
            let wait_until = match (until, guard) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let Some(driver) = self.driver.as_mut() else {
                self.end(Ending::Failed(Fault::Closed), false);
                return;
            };
            match driver.next(wait_until) {
                Ok(ready) => {
                    for m in ready {
                        self.apply(m);
                    }
                    if self.driver.as_ref().is_some_and(Driver::finished) {
                        self.conclude();
                    }
                }
                Err(Stop::TimedOut) => {
                    let now = Instant::now();
                    if let Some(settle) = self.settle_until
                        && now >= settle
                        && !self.killing
                    {
                        let kernel = self.kernel().map_or("?", |k| k.id.as_str());
                        log::warn!("kernel {kernel} did not settle after an interrupt");
                        let after = self.timeout.unwrap_or(SETTLE);
                        self.end(Ending::Failed(Fault::Timeout(after)), false);
                        return;
                    }
                    if self.settle_until.is_none()
                        && let Some(backstop) = self.backstop
                        && now >= backstop
                    {
                        log::debug!("command {} outlived its timeout; interrupting", self.msg_id);
                        self.client_timed_out = true;
                        self.interrupt();
                        continue;
                    }
                    if until.is_some_and(|u| now >= u) {
                        return;
                    }
                }
                Err(Stop::Failed(f)) => {
                    self.end(Ending::Failed(Fault::Connection(f)), false);
                    return;
                }
                Err(Stop::Lost { missing }) => {
                    self.end(Ending::Failed(Fault::Lost(missing)), false);
                    return;
                }
                Err(Stop::NeverArrived { sends }) => {
                    let kernel_id = self.kernel().map_or_else(String::new, |k| k.id.clone());
                    self.end(Ending::Failed(Fault::NeverArrived(kernel_id, sends)), false);
                    return;
                }
            }
        }
    }

    /// The system kernel running the command, until it goes back to the pool.
    fn kernel(&self) -> Option<&Arc<Kernel>> {
        self.driver.as_ref().map(Driver::kernel)
    }

    fn interrupt(&mut self) {
        if let Some(kernel) = self.kernel() {
            self.sandbox
                .interrupt_kernel(kernel, self.sandbox.config().timeouts.request);
        }
        self.settle_until = Some(Instant::now() + SETTLE);
    }

    fn apply(&mut self, m: Incoming) {
        let c = &m.content;
        match m.msg_type.as_str() {
            "stream" => {
                let text = c["text"].as_str().unwrap_or("").to_string();
                let is_err = c["name"] == "stderr";
                if is_err {
                    self.stderr.push_str(&text);
                } else {
                    self.stdout.push_str(&text);
                }
                self.notify(is_err, &text);
                if self.queueing {
                    self.queue.push_back(if is_err {
                        CommandOutput::Stderr(text)
                    } else {
                        CommandOutput::Stdout(text)
                    });
                }
            }
            "display_data" => {
                let record = &c["data"][COMMAND_MIME];
                match record["event"].as_str() {
                    Some("start") => {
                        self.pid = record["pid"].as_u64().and_then(|p| u32::try_from(p).ok());
                    }
                    Some("exit") => {
                        let code = record["exit_code"]
                            .as_i64()
                            .and_then(|c| i32::try_from(c).ok())
                            .unwrap_or(-1);
                        let outcome = record["outcome"].as_str().unwrap_or("exited").to_string();
                        self.exit = Some((code, outcome));
                    }
                    Some("error") => {
                        let path = record["path"].as_str().unwrap_or("").to_string();
                        self.start_error = Some(match record["kind"].as_str() {
                            Some("not_found") => Fault::NotFound(path),
                            Some("not_a_directory") => Fault::NotADirectory(path),
                            Some("permission_denied") => Fault::PermissionDenied(path),
                            _ => Fault::Runner(format!(
                                "could not start the command: {}",
                                record["message"].as_str().unwrap_or("unknown error")
                            )),
                        });
                    }
                    _ => {}
                }
            }
            "error" => {
                self.python_error = Some(format!(
                    "{}: {}",
                    c["ename"].as_str().unwrap_or("error"),
                    c["evalue"].as_str().unwrap_or("")
                ));
            }
            "execute_reply" if c["status"] != "ok" && self.python_error.is_none() => {
                self.python_error = Some(format!(
                    "{}: {}",
                    c["ename"].as_str().unwrap_or("execution"),
                    c["evalue"]
                        .as_str()
                        .unwrap_or(c["status"].as_str().unwrap_or(""))
                ));
            }
            _ => {}
        }
    }

    /// Calls the user's callback; a panic kills the command and becomes the outcome.
    fn notify(&mut self, is_err: bool, text: &str) {
        if self.panicked.is_some() {
            return;
        }
        let (name, f) = if is_err {
            ("on_stderr", self.on_stderr.as_mut())
        } else {
            ("on_stdout", self.on_stdout.as_mut())
        };
        let Some(f) = f else { return };
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| f(text))) {
            self.panicked = Some((name, crate::exec::code::panic_message(payload.as_ref())));
            self.kill_requested = true;
            self.interrupt();
        }
    }

    /// The cell has ended cleanly (reply and idle): decide the outcome.
    fn conclude(&mut self) {
        let ending = if let Some((name, message)) = self.panicked.take() {
            Ending::Failed(Fault::Panicked(name, message))
        } else if let Some(lost) = self.driver.as_ref().map(Driver::lost).filter(|n| *n > 0) {
            Ending::Failed(Fault::Lost(Some(lost)))
        } else if let Some(fault) = self.start_error.take() {
            Ending::Failed(fault)
        } else if self.client_timed_out {
            Ending::Failed(Fault::Timeout(self.timeout.unwrap_or_default()))
        } else {
            match &self.exit {
                Some((_, outcome)) if outcome == "timeout" => {
                    Ending::Failed(Fault::Timeout(self.timeout.unwrap_or_default()))
                }
                Some((code, _)) => Ending::Exited(*code),
                // Interrupted before the process started or before it could report.
                None if self.kill_requested => Ending::Exited(-9),
                None => Ending::Failed(Fault::Runner(format!(
                    "the command runner failed: {}",
                    self.python_error.as_deref().unwrap_or("no exit status")
                ))),
            }
        };
        self.end(ending, true);
    }

    /// Records the outcome and gives the kernel back: to the pool when the cell ended
    /// cleanly, else it is shut down.
    fn end(&mut self, ending: Ending, clean: bool) {
        if self.ending.is_some() {
            return;
        }
        if let Ending::Failed(fault) = &ending {
            log::debug!("command {} failed: {fault:?}", self.msg_id);
        }
        self.ending = Some(ending);
        if let Some(driver) = self.driver.take() {
            let kernel = driver.kernel().clone();
            // Dropping an unfinished driver stops the routing of its messages.
            drop(driver);
            self.sandbox
                .system_kernels()
                .release(&self.sandbox, kernel, clean);
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if self.ending.is_none() {
            log::debug!("dropping running command {}; killing it", self.msg_id);
            if let Err(e) = self.kill() {
                log::debug!("killing command {} on drop: {e}", self.msg_id);
            }
        }
        if let Some(driver) = self.driver.take() {
            let kernel = driver.kernel().clone();
            drop(driver);
            self.sandbox
                .system_kernels()
                .release(&self.sandbox, kernel, false);
        }
    }
}

/// Output of a running command as it arrives; see [`CommandHandle::output`].
pub struct OutputIter<'h> {
    handle: &'h mut Running<'static>,
}

impl std::fmt::Debug for OutputIter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputIter")
            .field("handle", &self.handle)
            .finish()
    }
}

impl Iterator for OutputIter<'_> {
    type Item = CommandOutput;

    fn next(&mut self) -> Option<CommandOutput> {
        loop {
            if let Some(out) = self.handle.queue.pop_front() {
                return Some(out);
            }
            if self.handle.ending.is_some() {
                return None;
            }
            self.handle.pump(None);
        }
    }
}

impl Drop for OutputIter<'_> {
    fn drop(&mut self) {
        self.handle.queueing = false;
        self.handle.queue.clear();
    }
}

/// The cell that runs one command. The runner is installed as a module on first use in a
/// kernel (again after a restart); its source travels as one string literal, which IPython's
/// input transformers pass over cheaply, and is compiled only when it is missing.
fn command_cell(spec: &Value) -> String {
    let source = Value::String(RUNNER.to_string());
    let spec = Value::String(spec.to_string());
    format!(
        "import sys as __e2b_sys\n\
         if '__e2b_command' not in __e2b_sys.modules:\n    \
         exec({source}, {{'__name__': '__e2b_command_install'}})\n\
         __e2b_sys.modules['__e2b_command'].run(__import__('json').loads({spec}))\n"
    )
}

/// The sandbox's private kernels for commands: idle ones ready for the next command, and
/// every one started, so closing the sandbox can shut them all down.
#[derive(Debug, Default)]
pub(crate) struct SystemKernels {
    inner: Mutex<Pool>,
}

#[derive(Debug, Default)]
struct Pool {
    idle: Vec<Arc<Kernel>>,
    all: Vec<Arc<Kernel>>,
    closed: bool,
}

impl SystemKernels {
    fn lock(&self) -> MutexGuard<'_, Pool> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Every kernel, for the sandbox to close; later acquires fail with [`Error::Closed`].
    pub(crate) fn drain(&self) -> Vec<Arc<Kernel>> {
        let mut pool = self.lock();
        pool.closed = true;
        pool.idle.clear();
        std::mem::take(&mut pool.all)
    }

    /// An idle kernel, or a new one.
    pub(crate) fn acquire(&self, sandbox: &Sandbox) -> Result<Arc<Kernel>, Error> {
        loop {
            let mut pool = self.lock();
            if pool.closed {
                return Err(Error::Closed);
            }
            let Some(kernel) = pool.idle.pop() else { break };
            if kernel.conn.failure().is_none() {
                return Ok(kernel);
            }
            pool.all.retain(|k| !Arc::ptr_eq(k, &kernel));
            drop(pool);
            retire(sandbox, &kernel);
        }
        let kernel = sandbox.start_system_kernel()?;
        log::debug!("started system kernel {} for commands", kernel.id);
        let mut pool = self.lock();
        if pool.closed {
            drop(pool);
            retire(sandbox, &kernel);
            return Err(Error::Closed);
        }
        pool.all.push(kernel.clone());
        Ok(kernel)
    }

    /// Gives a kernel back: kept when `clean` and the pool has room, else shut down.
    pub(crate) fn release(&self, sandbox: &Sandbox, kernel: Arc<Kernel>, clean: bool) {
        let mut pool = self.lock();
        if pool.closed {
            return;
        }
        if clean && pool.idle.len() < MAX_IDLE && kernel.conn.failure().is_none() {
            pool.idle.push(kernel);
            return;
        }
        pool.all.retain(|k| !Arc::ptr_eq(k, &kernel));
        drop(pool);
        retire(sandbox, &kernel);
    }
}

fn retire(sandbox: &Sandbox, kernel: &Kernel) {
    log::debug!("shutting down system kernel {}", kernel.id);
    let _ = kernel.conn.close(sandbox.config().timeouts.close);
    if let Err(e) = rest::shutdown_kernel(sandbox.http(), &kernel.id) {
        log::debug!("could not shut down system kernel {}: {e}", kernel.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_turns_failure_into_error() {
        let ok = CommandResult {
            stdout: "x".into(),
            stderr: String::new(),
            exit_code: 0,
        };
        assert!(ok.clone().check().is_ok());
        let bad = CommandResult {
            exit_code: 2,
            stderr: "warning\nls: cannot access 'nope'\n".into(),
            ..ok
        };
        let err = bad.check().unwrap_err();
        assert_eq!(
            err.to_string(),
            "command exited with code 2: ls: cannot access 'nope'"
        );
        assert!(matches!(err, Error::CommandFailed { exit_code: 2, .. }));
    }

    #[test]
    fn runner_source_is_embedded() {
        assert!(RUNNER.contains("def _e2b_command(spec)"));
        assert!(RUNNER.contains(COMMAND_MIME));
        let cell = command_cell(&json!({"cmd": "echo 'hi'\n", "envs": {}}));
        assert_eq!(cell.lines().count(), 4, "{cell}");
        assert!(cell.contains(r#"\"cmd\":\"echo 'hi'\\n\""#), "{cell}");
    }
}
