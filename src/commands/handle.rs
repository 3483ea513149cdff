//! The handle a caller keeps for a running command ([`CommandHandle`]) and the iterator over
//! its output ([`OutputIter`]); the wait, the kill and stdin are `running`'s.

use std::time::Duration;

use super::{CommandOutput, CommandResult};
use crate::error::Error;

/// A running (or finished) command. Output reaches the callbacks and [`CommandHandle::output`]
/// while a thread waits in one of the handle's methods. The handle is `Send`: a spawned server
/// can be waited on, or killed, from another thread.
///
/// Dropping a handle whose command still runs kills the command, unless it was started with
/// [`CommandBuilder::background`](super::CommandBuilder::background).
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

    /// Stdout received so far: its last [`max_output`](super::CommandBuilder::max_output) bytes,
    /// none with [`retain_output(false)`](super::CommandBuilder::retain_output).
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

    /// Writes `data` to the command's stdin (see [`CommandBuilder::stdin`](super::CommandBuilder::stdin)). Returns once the
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
