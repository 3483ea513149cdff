//! What a command gives back: its whole result and the pieces of output it streams.

use serde::Serialize;

use crate::error::Error;
use crate::output::DroppedOutput;

/// What a finished command produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
#[must_use = "a non-zero exit code is data; use `.check()` to turn it into an Err"]
pub struct CommandResult {
    /// What the command wrote to stdout, invalid UTF-8 replaced by U+FFFD: all of it, or its
    /// last [`max_output`](crate::CommandBuilder::max_output) bytes.
    pub stdout: String,
    /// What the command wrote to stderr, as for `stdout`.
    pub stderr: String,
    /// The exit code; negative when a signal ended the process (`-9` after a kill).
    pub exit_code: i32,
    /// What `stdout` and `stderr` do not hold to stay within the cap (the callbacks saw it).
    pub dropped: DroppedOutput,
}

impl CommandResult {
    /// True when the exit code is 0.
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }

    /// `Ok(self)` when the exit code is 0, else [`Error::CommandFailed`] with the output.
    ///
    /// # Errors
    ///
    /// [`Error::CommandFailed`] with the exit code, stdout and stderr when the exit code is not 0.
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

/// One piece of a running command's output, as yielded by [`CommandHandle::output`](crate::CommandHandle::output).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_turns_failure_into_error() {
        let ok = CommandResult {
            stdout: "x".into(),
            stderr: String::new(),
            exit_code: 0,
            dropped: DroppedOutput::default(),
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
}
