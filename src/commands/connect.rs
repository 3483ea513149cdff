//! `commands().connect(pid)`: a second handle on a command that runs already.
//!
//! A command's output travels in its runner cell, which only the handle that started it reads.
//! The runner also appends it to a bounded ring of files in the sandbox (8 segments of 1 MiB,
//! see `_Log` in runner.py); connecting runs a follower cell on another private kernel that
//! replays that ring from the start and then follows it live until the command's exit record.
//! Its output is ordinary cell output, so it is numbered, buffered and replayed across
//! connection cuts like any command's.

use serde_json::json;

use super::runner::follow_cell;
use super::running::{Launch, Running};
use super::{CommandHandle, Commands};
use crate::error::Error;

impl Commands {
    /// A handle on a command that this SDK's runner started in the sandbox and that still
    /// runs (or ended less than a minute ago), by pid (see [`Commands::list`]): from another
    /// thread or process, or after the handle of a [`background`](super::CommandBuilder::background)
    /// command was dropped. Its output starts with what the command printed since it started
    /// (the last 8 MiB of it), then follows live; the handle keeps the last
    /// [`DEFAULT_MAX_OUTPUT`](crate::DEFAULT_MAX_OUTPUT) bytes of each stream (use
    /// [`CommandHandle::output`] to see all of it). [`CommandHandle::wait`] gives its exit code,
    /// [`CommandHandle::kill`] kills it, and [`CommandHandle::send_stdin`] writes to it when it
    /// was started with `stdin(true)`.
    ///
    /// Dropping a connected handle stops following and leaves the command running, whatever
    /// it was started with. Output arrives with at most ~20 ms more delay than on the handle
    /// that started the command (the follower polls the ring).
    ///
    /// # Errors
    ///
    /// [`Error::ProcessNotFound`] when no command with that pid was started through the
    /// sandbox (or its record is gone); [`Error::Closed`] and connection errors.
    pub fn connect(&self, pid: u32) -> Result<CommandHandle, Error> {
        if let crate::plane::Plane::E2b(plane) = self.sandbox.plane()? {
            return crate::plane::e2b::E2bCommand::connect(plane, pid)
                .map(|c| CommandHandle(super::plane::Proc::E2b(Box::new(c))));
        }
        let launch = Launch {
            code: follow_cell(&json!({ "pid": pid })),
            envs: Default::default(),
            timeout: None,
            stdin: false,
            background: false,
            follow: Some(pid),
            max_output: crate::output::DEFAULT_MAX_OUTPUT,
        };
        Running::launch(&self.sandbox, launch, None, None)
            .map(|r| CommandHandle(super::plane::Proc::Jupyter(Box::new(r))))
    }
}
