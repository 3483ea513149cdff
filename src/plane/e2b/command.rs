//! A shell command run through envd: `/bin/bash -l -c <cmd>` as E2B's SDKs start it, its
//! stdout and stderr apart, its exit code from envd's end event, E2B's 60 s default timeout
//! enforced by killing it.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::E2bPlane;
use super::process::{E2bProcess, ProcessEvent, ProcessStart, Utf8Pieces};
use super::record::{self, Seen};
use crate::error::{Error, TimeoutPhase};
use crate::model::command::{CommandOutput, CommandResult};
use crate::model::execution::Execution;
use crate::output::{DEFAULT_MAX_OUTPUT, DroppedOutput, Tail};

/// How long a killed command may take to report its end.
const SETTLE: Duration = Duration::from_secs(5);

type Callback<'a> = Box<dyn FnMut(&str) + Send + 'a>;

/// Why a command ended other than by exiting, kept so every `wait` gives the same error.
#[derive(Debug, Clone)]
enum Fault {
    Timeout(Duration),
    /// The sandbox stopped under it: killed or timed out, or `paused`.
    Sandbox {
        id: String,
        paused: bool,
    },
    Lost,
    Panicked(&'static str, String),
    Other(String),
}

impl Fault {
    /// The fault kept for an error that says the sandbox stopped; `None` for any other.
    fn of_stopped_sandbox(e: &Error) -> Option<Fault> {
        match e {
            Error::SandboxNotFound { sandbox_id } => Some(Fault::Sandbox {
                id: sandbox_id.clone(),
                paused: false,
            }),
            Error::SandboxPaused { sandbox_id } => Some(Fault::Sandbox {
                id: sandbox_id.clone(),
                paused: true,
            }),
            _ => None,
        }
    }
}

/// A running (or ended) command and the wait for it.
pub(crate) struct E2bCommand<'a> {
    /// The command's pid (the recorder's, for a recorded one).
    pid: u32,
    /// The stream read now: the command's own, or a follower of its recorded output.
    process: E2bProcess,
    /// For a recorded command (see `record`), the bytes delivered of each stream.
    record: Option<Seen>,
    /// Whether `process` follows the recorded output (after a cut, or a `connect`).
    following: bool,
    /// What the result keeps of the output (the last bytes of each stream).
    stdout: Tail,
    stderr: Tail,
    decode_out: Utf8Pieces,
    decode_err: Utf8Pieces,
    on_stdout: Option<Callback<'a>>,
    on_stderr: Option<Callback<'a>>,
    queue: VecDeque<CommandOutput>,
    pub(crate) queueing: bool,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    ending: Option<Result<i32, Fault>>,
    background: bool,
    stdin: bool,
    stdin_open: bool,
}

impl std::fmt::Debug for E2bCommand<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandHandle")
            .field("pid", &self.process.pid())
            .field("finished", &self.ending.is_some())
            .field("plane", &"e2b")
            .finish_non_exhaustive()
    }
}

/// What to run, and how.
pub(crate) struct CommandSpec<'s, 'a> {
    pub(crate) start: ProcessStart<'s>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) background: bool,
    /// The most bytes of each stream the result keeps.
    pub(crate) keep: usize,
    pub(crate) on_stdout: Option<Callback<'a>>,
    pub(crate) on_stderr: Option<Callback<'a>>,
}

impl<'a> E2bCommand<'a> {
    /// Starts `cmd` with bash, as E2B's SDKs do.
    pub(crate) fn start(
        plane: &Arc<E2bPlane>,
        cmd: &str,
        spec: CommandSpec<'_, 'a>,
    ) -> Result<E2bCommand<'a>, Error> {
        if cmd.contains('\0') {
            return Err(Error::InvalidArgument("command contains a NUL byte".into()));
        }
        // A background command is recorded, so that its output survives cuts and reattaches.
        let start = if spec.background {
            record::recorded(cmd, spec.start)
        } else {
            ProcessStart {
                cmd: "/bin/bash",
                args: vec!["-l".into(), "-c".into(), cmd.to_string()],
                ..spec.start
            }
        };
        let stdin = start.stdin;
        let process = plane.start_process(&start)?;
        let mut command = E2bCommand::around(
            process,
            spec.timeout,
            spec.background,
            stdin,
            spec.on_stdout,
            spec.on_stderr,
        );
        command.stdout = Tail::new(spec.keep);
        command.stderr = Tail::new(spec.keep);
        command.record = spec.background.then(Seen::default);
        Ok(command)
    }

    /// A handle on a command that runs already (`connect` by pid): a recorded (background)
    /// command's output from its start; any other's from now on (envd keeps none).
    pub(crate) fn connect(plane: &Arc<E2bPlane>, pid: u32) -> Result<E2bCommand<'a>, Error> {
        if record::is_recorded(plane, pid)? {
            let follower = record::follow(plane, pid, Seen::default())?;
            let mut command = E2bCommand::around(follower, None, true, true, None, None);
            command.pid = pid;
            command.record = Some(Seen::default());
            command.following = true;
            return Ok(command);
        }
        let process = plane.connect_process(pid)?;
        Ok(E2bCommand::around(process, None, true, true, None, None))
    }

    fn around(
        process: E2bProcess,
        timeout: Option<Duration>,
        background: bool,
        stdin: bool,
        on_stdout: Option<Callback<'a>>,
        on_stderr: Option<Callback<'a>>,
    ) -> E2bCommand<'a> {
        E2bCommand {
            pid: process.pid(),
            process,
            record: None,
            following: false,
            stdout: Tail::new(DEFAULT_MAX_OUTPUT),
            stderr: Tail::new(DEFAULT_MAX_OUTPUT),
            decode_out: Utf8Pieces::default(),
            decode_err: Utf8Pieces::default(),
            on_stdout,
            on_stderr,
            queue: VecDeque::new(),
            queueing: false,
            timeout,
            deadline: timeout.map(|t| Instant::now() + t),
            ending: None,
            background,
            stdin,
            stdin_open: stdin,
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.ending.is_some()
    }

    pub(crate) fn stdout(&self) -> &str {
        self.stdout.text()
    }

    pub(crate) fn stderr(&self) -> &str {
        self.stderr.text()
    }

    pub(crate) fn wait(&mut self) -> Result<CommandResult, Error> {
        self.pump(None);
        self.outcome()
    }

    pub(crate) fn wait_timeout(&mut self, limit: Duration) -> Result<Option<CommandResult>, Error> {
        self.pump(Some(Instant::now() + limit));
        if self.ending.is_none() {
            return Ok(None);
        }
        self.outcome().map(Some)
    }

    /// The next output while `queueing` (the `output()` iterator); `None` once it ended.
    pub(crate) fn next_output(&mut self) -> Option<CommandOutput> {
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

    pub(crate) fn stop_queueing(&mut self) {
        self.queueing = false;
        self.queue.clear();
    }

    pub(crate) fn kill(&mut self) -> Result<bool, Error> {
        if self.ending.is_some() {
            return Ok(false);
        }
        let killed = self.process.plane().kill_process(self.pid())?;
        self.pump(Some(Instant::now() + SETTLE));
        if self.ending.is_none() {
            return Err(Error::Timeout {
                phase: TimeoutPhase::Command,
                after: SETTLE,
            });
        }
        Ok(killed)
    }

    pub(crate) fn send_stdin(&mut self, data: &[u8]) -> Result<(), Error> {
        if !self.stdin {
            return Err(Error::InvalidArgument(
                "the command was not started with stdin(true)".into(),
            ));
        }
        if !self.stdin_open {
            return Err(Error::StdinClosed);
        }
        self.process.plane().send_input(self.pid(), data, false)
    }

    pub(crate) fn close_stdin(&mut self) -> Result<(), Error> {
        if !self.stdin {
            return Err(Error::InvalidArgument(
                "the command was not started with stdin(true)".into(),
            ));
        }
        if !self.stdin_open || self.ending.is_some() {
            return Ok(());
        }
        self.stdin_open = false;
        match self.process.plane().close_stdin(self.pid()) {
            Err(Error::ProcessNotFound { .. }) => Ok(()),
            other => other,
        }
    }

    /// Handles events until the command ends or `until` passes (`None`: until it ends).
    fn pump(&mut self, until: Option<Instant>) {
        while self.ending.is_none() {
            let limit = match (until, self.deadline) {
                (Some(u), Some(d)) => Some(u.min(d)),
                (u, d) => u.or(d),
            };
            match self.process.next(limit) {
                Ok(Some(ProcessEvent::Stdout(bytes))) => {
                    if let Some(seen) = &mut self.record {
                        seen.out += bytes.len() as u64;
                    }
                    let text = self.decode_out.push(&bytes);
                    self.deliver(false, text);
                }
                Ok(Some(ProcessEvent::Stderr(bytes) | ProcessEvent::Pty(bytes))) => {
                    if let Some(seen) = &mut self.record {
                        seen.err += bytes.len() as u64;
                    }
                    let text = self.decode_err.push(&bytes);
                    self.deliver(true, text);
                }
                Ok(Some(ProcessEvent::End {
                    exit_code, error, ..
                })) => {
                    let (out, err) = (self.decode_out.finish(), self.decode_err.finish());
                    self.deliver(false, out);
                    self.deliver(true, err);
                    if let Some(e) = error.filter(|e| !e.is_empty()) {
                        log::debug!("command {}: envd says {e}", self.pid());
                    }
                    if self.ending.is_none() {
                        self.ending = Some(self.exit_code(exit_code));
                    }
                }
                Ok(None) => {
                    if self.deadline.is_some_and(|d| Instant::now() >= d) {
                        self.time_out();
                    } else {
                        return;
                    }
                }
                Err(e) if self.record.is_some() && super::link_failure(&e) => {
                    log::debug!(
                        "command {}: its stream broke ({e}); following its record",
                        self.pid
                    );
                    if let Err(e) = self.reattach() {
                        let fault = Fault::of_stopped_sandbox(&e).unwrap_or_else(|| {
                            log::debug!("command {}: could not follow it again: {e}", self.pid);
                            Fault::Lost
                        });
                        self.ending = Some(Err(fault));
                    }
                }
                Err(e) => {
                    let fault = Fault::of_stopped_sandbox(&e).unwrap_or_else(|| match e {
                        Error::ConnectionLost { .. }
                        | Error::Transport { .. }
                        | Error::Timeout { .. } => {
                            log::debug!("command {}: its stream broke: {e}", self.pid());
                            Fault::Lost
                        }
                        e => Fault::Other(e.to_string()),
                    });
                    self.ending = Some(Err(fault));
                }
            }
        }
    }

    /// How the command ended: envd's exit code for its own stream; for a follower, the code
    /// the recorder wrote (`-9` when there is none: the recorder was killed with it).
    fn exit_code(&self, stream_code: i32) -> Result<i32, Fault> {
        if !self.following {
            return Ok(stream_code);
        }
        match record::exit_code(self.process.plane(), self.pid) {
            Ok(code) => Ok(code.unwrap_or(-9)),
            Err(e) => Err(Fault::of_stopped_sandbox(&e).unwrap_or_else(|| {
                Fault::Other(format!("reading command {}'s exit code: {e}", self.pid))
            })),
        }
    }

    /// Follows the recorded output from what was delivered, under the reconnect policy.
    fn reattach(&mut self) -> Result<(), Error> {
        let plane = self.process.plane().clone();
        let seen = self.record.unwrap_or_default();
        if self.following {
            // The old follower's tails end with the command anyway; do not leave them waiting.
            let _ = plane.kill_process(self.process.pid());
        }
        let mut retry = crate::net::Attempts::new(&plane.reconnect);
        loop {
            match record::follow(&plane, self.pid, seen) {
                Ok(follower) => {
                    self.process = follower;
                    self.following = true;
                    return Ok(());
                }
                Err(e) if super::link_failure(&e) => match retry.failed() {
                    Some(next) => {
                        std::thread::sleep(next.saturating_duration_since(Instant::now()))
                    }
                    None => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
    }

    /// The command ran past its timeout: kill it, and say so once it ended.
    fn time_out(&mut self) {
        let after = self.timeout.unwrap_or_default();
        self.deadline = None;
        log::debug!(
            "command {} timed out after {after:?}; killing it",
            self.pid()
        );
        if let Err(e) = self.process.plane().kill_process(self.pid()) {
            log::warn!(
                "command {}: could not kill it at its timeout: {e}",
                self.pid()
            );
        }
        self.pump(Some(Instant::now() + SETTLE));
        self.ending = Some(Err(Fault::Timeout(after)));
    }

    fn deliver(&mut self, stderr: bool, text: String) {
        if text.is_empty() {
            return;
        }
        let callback = if stderr {
            self.on_stderr.as_mut()
        } else {
            self.on_stdout.as_mut()
        };
        if let Some(f) = callback
            && let Err(payload) = catch_unwind(AssertUnwindSafe(|| f(&text)))
        {
            let name = if stderr { "on_stderr" } else { "on_stdout" };
            let message = crate::sync::panic_message(payload.as_ref());
            log::warn!(
                "command {}: {name} panicked; killing the command",
                self.pid()
            );
            let _ = self.process.plane().kill_process(self.pid());
            self.ending = Some(Err(Fault::Panicked(name, message)));
        }
        if self.queueing {
            self.queue.push_back(if stderr {
                CommandOutput::Stderr(text.clone())
            } else {
                CommandOutput::Stdout(text.clone())
            });
        }
        if stderr {
            self.stderr.append(&text);
        } else {
            self.stdout.append(&text);
        }
    }

    fn outcome(&self) -> Result<CommandResult, Error> {
        match self.ending.as_ref().expect("outcome after the end") {
            Ok(code) => Ok(CommandResult {
                stdout: self.stdout.text().to_string(),
                stderr: self.stderr.text().to_string(),
                exit_code: *code,
                dropped: DroppedOutput {
                    stdout_bytes: self.stdout.dropped(),
                    stderr_bytes: self.stderr.dropped(),
                    ..DroppedOutput::default()
                },
            }),
            Err(fault) => Err(match fault {
                Fault::Timeout(after) => Error::Timeout {
                    phase: TimeoutPhase::Command,
                    after: *after,
                },
                Fault::Sandbox { id, paused: false } => Error::SandboxNotFound {
                    sandbox_id: id.clone(),
                },
                Fault::Sandbox { id, paused: true } => Error::SandboxPaused {
                    sandbox_id: id.clone(),
                },
                Fault::Lost => {
                    let mut partial = Execution::default();
                    partial.logs.stdout.push(self.stdout.text().to_string());
                    partial.logs.stderr.push(self.stderr.text().to_string());
                    Error::OutputLost {
                        missing: None,
                        partial: Box::new(partial),
                    }
                }
                Fault::Panicked(callback, message) => Error::CallbackPanicked {
                    callback,
                    message: message.clone(),
                },
                Fault::Other(message) => Error::protocol(message.clone()),
            }),
        }
    }
}

impl Drop for E2bCommand<'_> {
    fn drop(&mut self) {
        if self.following && self.ending.is_none() {
            let _ = self.process.plane().kill_process(self.process.pid());
        }
        if !self.background
            && self.ending.is_none()
            && let Err(e) = self.process.plane().kill_process(self.pid())
        {
            log::warn!("command {}: could not kill it on drop: {e}", self.pid());
        }
    }
}
