//! A running command: the wait for its output and exit, the kill, and the handle a caller
//! keeps ([`CommandHandle`]).

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::runner::{COMMAND_MIME, command_cell};
use super::{
    BACKSTOP, Callback, CommandBuilder, CommandOutput, CommandResult, REINTERRUPT, SETTLE,
};
use crate::error::{Error, TimeoutPhase};
use crate::exec::models::Execution;
use crate::jupyter::delivery::Failure;
use crate::jupyter::rest;
use crate::jupyter::wire::{Incoming, Outgoing};
use crate::kernel::Kernel;
use crate::kernel::driver::{Driver, Stop};
use crate::kernel::fault::SandboxFault;
use crate::kernel::module::PyModule;
use crate::kernel::pool::{self, Lease};
use crate::output::{DroppedOutput, Tail};
use crate::sandbox::Sandbox;

const STDIN: PyModule = PyModule {
    name: "__e2b_stdin",
    source: include_str!("stdin.py"),
};

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
    ProcessNotFound(u32),
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
    fn to_error(&self, stdout: &Tail, stderr: &Tail) -> Error {
        match self {
            Fault::Timeout(after) => Error::Timeout {
                phase: TimeoutPhase::Command,
                after: *after,
            },
            Fault::Connection(f) => f.to_error(),
            Fault::NotFound(path) => Error::FileNotFound { path: path.clone() },
            Fault::ProcessNotFound(pid) => Error::ProcessNotFound { pid: *pid },
            Fault::NotADirectory(path) => Error::NotADirectory { path: path.clone() },
            Fault::PermissionDenied(path) => Error::PermissionDenied { path: path.clone() },
            Fault::Runner(message) => Error::protocol(message.clone()),
            Fault::Lost(missing) => {
                let mut partial = Execution::default();
                partial.logs.stdout.push(stdout.text().to_string());
                partial.logs.stderr.push(stderr.text().to_string());
                partial.dropped = dropped(stdout, stderr);
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
    fn to_result(&self, stdout: &Tail, stderr: &Tail) -> Result<CommandResult, Error> {
        match self {
            Ending::Exited(code) => Ok(CommandResult {
                stdout: stdout.text().to_string(),
                stderr: stderr.text().to_string(),
                exit_code: *code,
                dropped: dropped(stdout, stderr),
            }),
            Ending::Failed(fault) => Err(fault.to_error(stdout, stderr)),
        }
    }
}

fn dropped(stdout: &Tail, stderr: &Tail) -> DroppedOutput {
    DroppedOutput {
        stdout_bytes: stdout.dropped(),
        stderr_bytes: stderr.dropped(),
        ..DroppedOutput::default()
    }
}

/// A running (or finished) command. Output reaches the callbacks and [`CommandHandle::output`]
/// while a thread waits in one of the handle's methods. The handle is `Send`: a spawned server
/// can be waited on, or killed, from another thread.
///
/// Dropping a handle whose command still runs kills the command, unless it was started with
/// [`CommandBuilder::background`].
pub struct CommandHandle(pub(super) super::plane::Proc<'static>);

impl std::fmt::Debug for CommandHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl CommandHandle {
    /// The process id of the shell running the command, in the sandbox.
    pub fn pid(&self) -> Option<u32> {
        self.0.pid()
    }

    /// True once the command has ended (as far as this handle has seen; see
    /// [`CommandHandle::try_wait`]).
    pub fn is_finished(&self) -> bool {
        self.0.is_finished()
    }

    /// Stdout received so far: its last [`max_output`](CommandBuilder::max_output) bytes,
    /// none with [`retain_output(false)`](CommandBuilder::retain_output).
    pub fn stdout(&self) -> &str {
        self.0.stdout()
    }

    /// Stderr received so far, as for [`CommandHandle::stdout`].
    pub fn stderr(&self) -> &str {
        self.0.stderr()
    }

    /// Waits for the command to end. Bounded by the command's timeout (plus a grace period
    /// for the sandbox to report); unbounded for a command without one. Can be called again:
    /// it returns the same outcome.
    ///
    /// # Errors
    ///
    /// What ended the command other than its own exit: [`Error::Timeout`] with
    /// [`TimeoutPhase::Command`](crate::TimeoutPhase::Command), a lost connection or sandbox,
    /// [`Error::OutputLost`], a callback that panicked ([`Error::CallbackPanicked`]). A non-zero
    /// exit code is not one.
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

    /// Writes `data` to the command's stdin (see [`CommandBuilder::stdin`]). Returns once the
    /// bytes are in the command's stdin pipe; while that pipe is full (the command does not
    /// read), this waits for it, up to the request timeout. Each call is one cell that the
    /// client resends across reconnects only when the kernel never received it, so the bytes
    /// arrive once. Large data is sent in pieces of 4 MiB.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when the command was not started with `stdin(true)`;
    /// [`Error::StdinClosed`] after [`CommandHandle::close_stdin`] or once the command (and
    /// every process that inherited its stdin) has ended; connection errors, or
    /// [`Error::Timeout`] when the pipe stayed full (some of the bytes may have been written).
    pub fn send_stdin(&mut self, data: impl AsRef<[u8]>) -> Result<(), Error> {
        self.0.send_stdin(data.as_ref())
    }

    /// Closes the command's stdin: it reads EOF once it has read what was sent. Closing twice,
    /// or closing the stdin of a command that has ended, does nothing.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when the command was not started with `stdin(true)`;
    /// connection errors.
    pub fn close_stdin(&mut self) -> Result<(), Error> {
        self.0.close_stdin()
    }

    /// Iterates over output as it arrives, until the command ends (then call
    /// [`CommandHandle::wait`] for the exit code, or for the error that ended it). Callbacks
    /// still run.
    pub fn output(&mut self) -> OutputIter<'_> {
        self.0.queue_output();
        OutputIter {
            handle: &mut self.0,
        }
    }
}

/// A command and the wait for it: what [`CommandHandle`] wraps, and what
/// [`CommandBuilder::run`] waits on directly with callbacks that borrow.
pub(super) struct Running<'a> {
    sandbox: Sandbox,
    /// The cell's execution on a private kernel, until the kernel goes back to the pool.
    driver: Option<Driver>,
    /// The private kernel, given back when the command ends (after the driver is dropped).
    lease: Option<Lease<Sandbox>>,
    msg_id: String,
    pub(super) pid: Option<u32>,
    exit: Option<(i32, String)>,
    start_error: Option<Fault>,
    python_error: Option<String>,
    /// What the result keeps of the output, each stream as one text.
    pub(super) stdout: Tail,
    pub(super) stderr: Tail,
    timeout: Option<Duration>,
    backstop: Option<Instant>,
    kill_requested: bool,
    client_timed_out: bool,
    panicked: Option<(&'static str, String)>,
    ending: Option<Ending>,
    on_stdout: Option<Callback<'a>>,
    on_stderr: Option<Callback<'a>>,
    pub(super) queue: VecDeque<CommandOutput>,
    pub(super) queueing: bool,
    /// Set while `spawn` waits for the start record.
    starting: bool,
    /// Set while `kill` drives the wait (it keeps its own deadline and fallback).
    killing: bool,
    /// Whether the command was started with a stdin to write to.
    wants_stdin: bool,
    /// The runner's directory of stdin FIFOs, from its start record.
    stdin_dir: Option<String>,
    /// Cleared by `close_stdin` and when a write finds the command gone.
    stdin_open: bool,
    /// Dropping the handle leaves the command running.
    background: bool,
    /// The cell follows a command that another cell runs (`commands().connect(pid)`): an
    /// interrupt stops the following, not the command.
    pub(super) follower: bool,
    /// The pid a follower was asked to follow, for its error.
    pid_asked: Option<u32>,
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
    pub(super) fn wait(&mut self) -> Result<CommandResult, Error> {
        self.pump(None);
        self.outcome()
            .unwrap_or_else(|| Err(Error::protocol("command wait ended without an outcome")))
    }

    pub(super) fn wait_timeout(&mut self, limit: Duration) -> Result<Option<CommandResult>, Error> {
        self.pump(Some(Instant::now() + limit));
        self.outcome().transpose()
    }

    pub(super) fn kill(&mut self) -> Result<bool, Error> {
        if self.ending.is_some() {
            return Ok(false);
        }
        if self.follower || self.background {
            // A background command's runner ignores interrupts (see runner.py): by pid.
            return self.kill_by_pid();
        }
        self.kill_requested = true;
        let mut deadline = self.settle(SETTLE);
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
                    deadline = self.settle(SETTLE);
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

    /// [`Running::kill`] by pid, from another kernel: for a follower (the command runs in
    /// another kernel; the follower then sees its exit in the log) and for a background
    /// command (whose runner outlives interrupts).
    fn kill_by_pid(&mut self) -> Result<bool, Error> {
        let Some(pid) = self.pid else {
            return Ok(false);
        };
        super::Commands::new(self.sandbox.clone()).kill(pid)?;
        let deadline = Instant::now() + SETTLE;
        self.killing = true;
        while self.ending.is_none() && Instant::now() < deadline {
            self.pump(Some(deadline));
        }
        self.killing = false;
        match &self.ending {
            Some(Ending::Exited(_)) => Ok(true),
            Some(Ending::Failed(f)) => Err(f.to_error(&self.stdout, &self.stderr)),
            None => {
                log::warn!("command {pid} did not report its end after a kill");
                self.end(Ending::Failed(Fault::Timeout(SETTLE)), false);
                Err(Error::Timeout {
                    phase: TimeoutPhase::Command,
                    after: SETTLE,
                })
            }
        }
    }

    pub(super) fn send_stdin(&mut self, data: &[u8]) -> Result<(), Error> {
        let dir = self.stdin_target()?;
        if !self.stdin_open || self.ending.is_some() {
            return Err(Error::StdinClosed);
        }
        for piece in data.chunks(crate::kernel::helper::PIECE) {
            match self.stdin_cell(&format!("{dir}/in"), piece) {
                Ok(()) => {}
                Err(Error::StdinClosed) => {
                    self.stdin_open = false;
                    return Err(Error::StdinClosed);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    pub(super) fn close_stdin(&mut self) -> Result<(), Error> {
        let dir = self.stdin_target()?;
        if !self.stdin_open || self.ending.is_some() {
            return Ok(());
        }
        match self.stdin_cell(&format!("{dir}/ctl"), b"c") {
            Ok(()) | Err(Error::StdinClosed) => {
                self.stdin_open = false;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The FIFO directory, or why there is none.
    fn stdin_target(&self) -> Result<String, Error> {
        if !self.wants_stdin {
            return Err(Error::InvalidArgument(
                "the command was not started with stdin(true)".into(),
            ));
        }
        self.stdin_dir
            .clone()
            .ok_or_else(|| Error::protocol("the command runner reported no stdin FIFO"))
    }

    /// Writes `data` to the FIFO at `path` from another private kernel (this command's kernel
    /// is busy running it). A FIFO without a reader, or one removed, means the command is gone.
    fn stdin_cell(&self, path: &str, data: &[u8]) -> Result<(), Error> {
        let args = [json!(path), json!(crate::kernel::helper::encode(data))];
        let out = pool::call(&self.sandbox, &STDIN, "write", &args)?;
        if out.get("ok").is_some() {
            return Ok(());
        }
        Err(
            SandboxFault::of(&out, path).to_error("writing to stdin", |message| {
                Error::protocol(format!("writing to stdin: {message}"))
            }),
        )
    }
    /// `killpg(pid, SIGKILL)` run in another private kernel.
    fn kill_from_elsewhere(&self, pid: u32) {
        let op = json!({"op": "kill", "pid": pid, "group": true, "path": format!("pid {pid}")});
        if let Err(e) = crate::kernel::helper::call(&self.sandbox, op) {
            log::warn!("could not kill pid {pid} from another kernel: {e}");
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
            let guard = self.settle_until().or(self.backstop);
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
                    if let Some(settle) = self.settle_until()
                        && now >= settle
                        && !self.killing
                    {
                        let kernel = self.kernel().map_or("?", |k| k.id.as_str());
                        log::warn!("kernel {kernel} did not settle after an interrupt");
                        let after = self.timeout.unwrap_or(SETTLE);
                        self.end(Ending::Failed(Fault::Timeout(after)), false);
                        return;
                    }
                    if self.settle_until().is_none()
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
        if let Some(driver) = self.driver.as_mut() {
            driver.interrupt(SETTLE);
        }
    }

    /// Gives the command `grace` to end; returns when that period ends.
    fn settle(&mut self, grace: Duration) -> Instant {
        match self.driver.as_mut() {
            Some(driver) => {
                driver.settle(grace);
                driver
                    .settle_until()
                    .unwrap_or_else(|| Instant::now() + grace)
            }
            None => Instant::now() + grace,
        }
    }

    fn settle_until(&self) -> Option<Instant> {
        self.driver.as_ref().and_then(Driver::settle_until)
    }

    fn apply(&mut self, m: Incoming) {
        let c = &m.content;
        match m.msg_type.as_str() {
            "stream" => {
                let text = c["text"].as_str().unwrap_or("").to_string();
                let is_err = c["name"] == "stderr";
                if is_err {
                    self.stderr.append(&text);
                } else {
                    self.stdout.append(&text);
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
                        self.stdin_dir = record["stdin"].as_str().map(str::to_string);
                        if self.follower && self.stdin_dir.is_some() {
                            // The command was started with a stdin: a connected handle
                            // writes to it too.
                            self.wants_stdin = true;
                            self.stdin_open = true;
                        }
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
                            Some("process_not_found") => {
                                Fault::ProcessNotFound(self.pid_asked.unwrap_or_default())
                            }
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
            match self.pid {
                Some(pid) if self.background || self.follower => self.kill_from_elsewhere(pid),
                _ => self.interrupt(),
            }
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
                Some((_, outcome)) if outcome == "detached" => Ending::Failed(Fault::Runner(
                    "the command's kernel was interrupted or shut down; the background command \
                     runs on, detached"
                        .into(),
                )),
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
        // Dropping an unfinished driver stops the routing of its messages; then the lease
        // gives the kernel back.
        self.driver = None;
        if let Some(mut lease) = self.lease.take() {
            lease.clean(clean);
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if self.ending.is_none()
            && self.follower
            && self.driver.take().is_some()
            && let Some(lease) = self.lease.take()
        {
            // Stops the following (the cell ends at the interrupt); the command runs on.
            lease
                .kernel()
                .interrupt(self.sandbox.config().timeouts.request);
            lease.detach();
            return;
        }
        if self.ending.is_none()
            && self.background
            && self.driver.take().is_some()
            && let Some(lease) = self.lease.take()
        {
            log::debug!("leaving background command {} running", self.msg_id);
            // Without its driver the command's output is no longer routed or kept.
            lease.detach();
            return;
        }
        if self.ending.is_none() {
            log::debug!("dropping running command {}; killing it", self.msg_id);
            if let Err(e) = self.kill() {
                log::debug!("killing command {} on drop: {e}", self.msg_id);
            }
        }
        // The driver first: a kernel goes back only once its messages are no longer routed.
        self.driver = None;
        self.lease = None;
    }
}

/// Output of a running command as it arrives; see [`CommandHandle::output`].
pub struct OutputIter<'h> {
    handle: &'h mut super::plane::Proc<'static>,
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
        self.handle.next_output()
    }
}

impl Drop for OutputIter<'_> {
    fn drop(&mut self) {
        self.handle.stop_queueing();
    }
}

impl Running<'_> {
    pub(super) fn is_finished(&self) -> bool {
        self.ending.is_some()
    }

    /// The next output kept for an [`OutputIter`]; `None` once the command ended.
    pub(super) fn next_output(&mut self) -> Option<CommandOutput> {
        loop {
            if let Some(out) = self.queue.pop_front() {
                return Some(out);
            }
            if self.ending.is_some() {
                return None;
            }
            self.pump(None);
        }
    }
}

impl<'a> Running<'a> {
    /// Starts `b`'s command; returns once it is running (its pid is known).
    pub(super) fn start(b: CommandBuilder<'a>) -> Result<Running<'a>, Error> {
        if b.cmd.contains('\0') {
            return Err(Error::InvalidArgument("command contains a NUL byte".into()));
        }
        for (k, v) in &b.envs {
            if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
                return Err(Error::InvalidArgument(format!(
                    "invalid environment variable name or value: {k:?}"
                )));
            }
        }
        if b.cwd.as_deref().is_some_and(|c| c.contains('\0')) {
            return Err(Error::InvalidArgument("cwd contains a NUL byte".into()));
        }
        let spec = json!({
            "cmd": b.cmd,
            "cwd": b.cwd,
            "timeout": b.timeout.map(|t| t.as_secs_f64()),
            "stdin": b.stdin,
            "background": b.background,
        });
        let code = command_cell(&spec);
        let launch = Launch {
            code,
            envs: b.envs.clone(),
            timeout: b.timeout,
            stdin: b.stdin,
            background: b.background,
            follow: None,
            max_output: if b.retain_output { b.max_output } else { 0 },
        };
        Running::launch(&b.sandbox, launch, b.on_stdout, b.on_stderr)
    }

    /// Runs `launch`'s cell on a system kernel; returns once the cell reported the pid (or an
    /// error).
    pub(super) fn launch(
        sandbox: &Sandbox,
        launch: Launch,
        on_stdout: Option<Callback<'a>>,
        on_stderr: Option<Callback<'a>>,
    ) -> Result<Running<'a>, Error> {
        // Dropped on every early return: the kernel is then shut down.
        let lease = Lease::take(sandbox)?;
        let kernel = lease.kernel().clone();
        let code = launch.code;
        let mut request = Outgoing::execute(kernel.conn.session_id(), &code, false);
        request.content["store_history"] = Value::Bool(false);
        // In the request's metadata, not the cell: the kernel's hook sets them around the cell
        // (the runner starts the command with the cell's environment), and the kernel echoes
        // a cell's code to every client (`execute_input`), which may log it.
        let request = crate::kernel::envs::in_metadata(request, &launch.envs)?;
        let msg_id = request.msg_id.clone();
        let kernel_id = kernel.id.clone();
        let driver = Driver::send(kernel, request)?;
        log::debug!("command {msg_id} on kernel {kernel_id}");
        let mut handle = Running {
            sandbox: sandbox.clone(),
            driver: Some(driver),
            lease: Some(lease),
            msg_id,
            pid: None,
            exit: None,
            start_error: None,
            python_error: None,
            stdout: Tail::new(launch.max_output),
            stderr: Tail::new(launch.max_output),
            timeout: launch.timeout,
            backstop: launch.timeout.map(|t| Instant::now() + t + BACKSTOP),
            kill_requested: false,
            client_timed_out: false,
            panicked: None,
            ending: None,
            on_stdout,
            on_stderr,
            queue: VecDeque::new(),
            queueing: false,
            starting: true,
            killing: false,
            wants_stdin: launch.stdin,
            stdin_dir: None,
            stdin_open: launch.stdin,
            background: launch.background,
            follower: launch.follow.is_some(),
            pid_asked: launch.follow,
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

/// What [`Running::launch`] runs: a command's cell, or a follower's.
pub(super) struct Launch {
    pub(super) code: String,
    /// The command's own env vars, on top of the sandbox's.
    pub(super) envs: crate::env_vars::EnvVars,
    pub(super) timeout: Option<Duration>,
    pub(super) stdin: bool,
    pub(super) background: bool,
    /// The pid a follower follows; `None` for a command's own cell.
    pub(super) follow: Option<u32>,
    /// The most bytes of each stream the handle keeps.
    pub(super) max_output: usize,
}
