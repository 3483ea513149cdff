//! The seam of commands: a running command is the Jupyter runner's ([`Running`]) or envd's
//! ([`E2bCommand`]), as the sandbox's data plane says; [`CommandHandle`](super::CommandHandle)
//! and [`CommandBuilder::run`](super::CommandBuilder::run) go through [`Proc`].

use std::time::Duration;

use super::running::Running;
use super::{CommandBuilder, CommandOutput, CommandResult};
use crate::error::Error;
use crate::plane::Plane;
use crate::plane::e2b::{CommandSpec, E2bCommand, ProcessStart};

pub(crate) enum Proc<'a> {
    Jupyter(Box<Running<'a>>),
    E2b(Box<E2bCommand<'a>>),
}

impl std::fmt::Debug for Proc<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Proc::Jupyter(r) => r.fmt(f),
            Proc::E2b(c) => c.fmt(f),
        }
    }
}

impl<'a> Proc<'a> {
    /// Starts the command on the sandbox's plane; returns once it runs.
    pub(super) fn start(b: CommandBuilder<'a>) -> Result<Proc<'a>, Error> {
        let Plane::E2b(plane) = b.sandbox.plane()? else {
            if b.user.is_some() {
                return Err(Error::Unsupported {
                    feature: "running a command as another user",
                    needs: "E2B's data plane (envd)".into(),
                    found: "a Jupyter server, whose commands run as its own user".into(),
                });
            }
            return Running::start(b).map(|r| Proc::Jupyter(Box::new(r)));
        };
        let plane = plane.clone();
        let envs: Vec<(String, String)> = b
            .sandbox
            .config()
            .envs
            .iter()
            .chain(b.envs.iter())
            .cloned()
            .collect();
        let spec = CommandSpec {
            start: ProcessStart {
                cwd: b.cwd.as_deref(),
                envs: &envs,
                user: b.user.as_deref(),
                stdin: b.stdin,
                ..ProcessStart::default()
            },
            timeout: b.timeout,
            background: b.background,
            keep: if b.retain_output { b.max_output } else { 0 },
            on_stdout: b.on_stdout,
            on_stderr: b.on_stderr,
        };
        E2bCommand::start(&plane, &b.cmd, spec).map(|c| Proc::E2b(Box::new(c)))
    }

    pub(super) fn pid(&self) -> Option<u32> {
        match self {
            Proc::Jupyter(r) => r.pid,
            Proc::E2b(c) => Some(c.pid()),
        }
    }

    pub(super) fn is_finished(&self) -> bool {
        match self {
            Proc::Jupyter(r) => r.is_finished(),
            Proc::E2b(c) => c.is_finished(),
        }
    }

    pub(super) fn stdout(&self) -> &str {
        match self {
            Proc::Jupyter(r) => r.stdout.text(),
            Proc::E2b(c) => c.stdout(),
        }
    }

    pub(super) fn stderr(&self) -> &str {
        match self {
            Proc::Jupyter(r) => r.stderr.text(),
            Proc::E2b(c) => c.stderr(),
        }
    }

    pub(super) fn wait(&mut self) -> Result<CommandResult, Error> {
        match self {
            Proc::Jupyter(r) => r.wait(),
            Proc::E2b(c) => c.wait(),
        }
    }

    pub(super) fn wait_timeout(&mut self, limit: Duration) -> Result<Option<CommandResult>, Error> {
        match self {
            Proc::Jupyter(r) => r.wait_timeout(limit),
            Proc::E2b(c) => c.wait_timeout(limit),
        }
    }

    pub(super) fn kill(&mut self) -> Result<bool, Error> {
        match self {
            Proc::Jupyter(r) => r.kill(),
            Proc::E2b(c) => c.kill(),
        }
    }

    pub(super) fn send_stdin(&mut self, data: &[u8]) -> Result<(), Error> {
        match self {
            Proc::Jupyter(r) => r.send_stdin(data),
            Proc::E2b(c) => c.send_stdin(data),
        }
    }

    pub(super) fn close_stdin(&mut self) -> Result<(), Error> {
        match self {
            Proc::Jupyter(r) => r.close_stdin(),
            Proc::E2b(c) => c.close_stdin(),
        }
    }

    /// Starts keeping output for [`Proc::next_output`].
    pub(super) fn queue_output(&mut self) {
        match self {
            Proc::Jupyter(r) => r.queueing = true,
            Proc::E2b(c) => c.queueing = true,
        }
    }

    pub(super) fn next_output(&mut self) -> Option<CommandOutput> {
        match self {
            Proc::Jupyter(r) => r.next_output(),
            Proc::E2b(c) => c.next_output(),
        }
    }

    pub(super) fn stop_queueing(&mut self) {
        match self {
            Proc::Jupyter(r) => {
                r.queueing = false;
                r.queue.clear();
            }
            Proc::E2b(c) => c.stop_queueing(),
        }
    }
}
