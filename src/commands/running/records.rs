//! What a command's cell reports and what it comes to: the output streams, the runner's start,
//! exit and error records (`runner.py`), the cell's own failure, and the outcome each `wait`
//! rebuilds from them.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use super::Running;
use crate::commands::runner::COMMAND_MIME;
use crate::error::{Error, TimeoutPhase};
use crate::jupyter::delivery::Failure;
use crate::jupyter::wire::Incoming;
use crate::kernel::driver::{Driver, Stop};
use crate::kernel::fault::SandboxFault;
use crate::model::command::{CommandOutput, CommandResult};
use crate::model::execution::Execution;
use crate::output::{DroppedOutput, Tail};

/// Why a command ended, kept so that every `wait` can rebuild the same outcome.
#[derive(Debug)]
pub(super) enum Ending {
    Exited(i32),
    Failed(Fault),
}

#[derive(Debug, Clone)]
pub(super) enum Fault {
    Timeout(Duration),
    Connection(Failure),
    /// The runner could not start the command (its error record).
    Start(SandboxFault),
    ProcessNotFound(u32),
    Runner(String),
    Lost(Option<u64>),
    Panicked(&'static str, String),
    Closed,
    /// The cell was sent this many times and never reached the kernel (on this kernel id).
    NeverArrived(String, u32),
}

impl Fault {
    pub(super) fn to_error(&self, stdout: &Tail, stderr: &Tail) -> Error {
        match self {
            Fault::Timeout(after) => Error::Timeout {
                phase: TimeoutPhase::Command,
                after: *after,
            },
            Fault::Connection(f) => f.to_error(),
            Fault::Start(fault) => fault.to_error("starting a command", |message| {
                Error::protocol(format!(
                    "could not start the command: {}",
                    if message.is_empty() {
                        "unknown error"
                    } else {
                        message
                    }
                ))
            }),
            Fault::ProcessNotFound(pid) => Error::ProcessNotFound { pid: *pid },
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

impl Running<'_> {
    pub(super) fn apply(&mut self, m: Incoming) {
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
                        let text = |key: &str| record[key].as_str().unwrap_or("").to_string();
                        self.start_error = Some(match record["kind"].as_str() {
                            Some("process_not_found") => {
                                Fault::ProcessNotFound(self.pid_asked.unwrap_or_default())
                            }
                            _ => Fault::Start(SandboxFault {
                                kind: text("kind"),
                                path: text("path"),
                                message: text("message"),
                            }),
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
            self.panicked = Some((name, crate::sync::panic_message(payload.as_ref())));
            self.kill_requested = true;
            match self.pid {
                Some(pid) if self.background || self.follower => self.kill_from_elsewhere(pid),
                _ => self.interrupt(),
            }
        }
    }

    /// The cell has ended cleanly (reply and idle): decide the outcome.
    pub(super) fn conclude(&mut self) {
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

    pub(super) fn outcome(&self) -> Option<Result<CommandResult, Error>> {
        self.ending
            .as_ref()
            .map(|e| e.to_result(&self.stdout, &self.stderr))
    }
}
