//! A running command on a private kernel: its launch, the wait for its output and exit, and
//! the kernel given back when it ends. What its messages mean is `records`'; its stdin and its
//! kill have files of their own.

mod kill;
mod records;
mod stdin;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::runner::command_cell;
use super::{BACKSTOP, Callback, CommandBuilder, CommandOutput, CommandResult, SETTLE};
use crate::error::{Error, TimeoutPhase};
use crate::jupyter::wire::Outgoing;
use crate::kernel::Kernel;
use crate::kernel::driver::{Driver, Stop, Waited};
use crate::kernel::pool::Lease;
use crate::output::Tail;
use crate::sandbox::Sandbox;
use records::{Ending, Fault};

/// A command and the wait for it: what [`CommandHandle`](super::CommandHandle) wraps, and what
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
            let Some(driver) = self.driver.as_mut() else {
                self.end(Ending::Failed(Fault::Closed), false);
                return;
            };
            // The runner enforces the command's timeout; the backstop is the client's, should
            // the runner not report.
            match driver.wait(self.backstop, until, SETTLE) {
                Ok(Waited::Ready(ready)) => {
                    for m in ready {
                        self.apply(m);
                    }
                    if self.driver.as_ref().is_some_and(Driver::finished) {
                        self.conclude();
                    }
                }
                Ok(Waited::Interrupted) => self.client_timed_out = true,
                // A kill keeps its own deadline and fallback.
                Ok(Waited::Unsettled) if self.killing => return,
                Ok(Waited::Unsettled) => {
                    let kernel = self.kernel().map_or("?", |k| k.id.as_str());
                    log::warn!("kernel {kernel} did not settle after an interrupt");
                    let after = self.timeout.unwrap_or(SETTLE);
                    self.end(Ending::Failed(Fault::Timeout(after)), false);
                    return;
                }
                Ok(Waited::Paused) => return,
                Err(Stop::TimedOut) => return,
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

    /// The private kernel running the command, until it goes back to the pool.
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

    /// Runs `launch`'s cell on a private kernel; returns once the cell reported the pid (or an
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
