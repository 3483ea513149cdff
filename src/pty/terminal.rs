//! [`Terminal`]: the handle a caller keeps, over a terminal of the sandbox's data plane (a
//! terminado terminal over Jupyter's websocket, or a PTY process of E2B's envd).

use std::time::{Duration, Instant};

use crate::error::Error;
use crate::jupyter::state::{ConnectionState, ConnectionWatch};
use crate::plane::e2b::E2bTerminal;
use crate::pty::jupyter_terminal::JupyterTerminal;
use crate::pty::{PtyEnd, PtyEvent, PtyGap, PtySize};

/// A running terminal: a shell on a PTY in the sandbox. `Send + Sync`; it keeps its sandbox
/// alive as long as it lives.
///
/// Read its output with [`Terminal::recv_timeout`], [`Terminal::iter`] or
/// [`Terminal::wait`]; type with [`Terminal::send_input`]. Dropping it kills the terminal
/// unless it was started with [`PtyOptions::kill_on_drop`](crate::PtyOptions::kill_on_drop)`(false)`
/// or detached.
///
/// On E2B's data plane the terminal is a process envd runs with a PTY: its name is its pid,
/// [`Pty::connect`](crate::Pty::connect) gives its output from the moment of attaching (envd
/// keeps none), and a cut connection ends the handle with an error (the shell keeps running;
/// connect again).
#[derive(Debug)]
pub struct Terminal(pub(super) Plane);

#[derive(Debug)]
pub(super) enum Plane {
    Jupyter(JupyterTerminal),
    E2b(E2bTerminal),
}

/// Everything a terminal printed until it ended, from [`Terminal::wait`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PtyResult {
    /// How it ended.
    pub end: PtyEnd,
    /// The output not read before the call, in order.
    pub output: String,
    /// Gaps among that output (see [`PtyEvent::Gap`]), in order.
    pub gaps: Vec<PtyGap>,
}

impl Terminal {
    /// The terminal's name (what [`Pty::connect`](crate::Pty::connect) and
    /// [`Pty::kill`](crate::Pty::kill) take): terminado's name, or the shell's pid on E2B.
    pub fn name(&self) -> &str {
        match &self.0 {
            Plane::Jupyter(t) => t.name(),
            Plane::E2b(t) => t.name(),
        }
    }

    /// Types `data` into the terminal (a line needs its `\n` or `\r`; Ctrl-C is `"\x03"`).
    /// Over Jupyter it returns once queued: the worker writes it in order, and input given
    /// while the connection is down is written once it is back. On E2B it returns once envd
    /// took it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `data` is not UTF-8 over Jupyter (terminado carries
    /// text only); [`Error::RequestTooLarge`] when it would not fit in one websocket message
    /// (10 MiB by default, see
    /// [`SandboxBuilder::max_request_size`](crate::SandboxBuilder::max_request_size));
    /// [`Error::TerminalNotFound`] once the terminal has ended; the connection's error
    /// ([`Error::ConnectionLost`], [`Error::SandboxNotFound`]) once it is gone for good.
    pub fn send_input(&self, data: impl AsRef<[u8]>) -> Result<(), Error> {
        match &self.0 {
            Plane::Jupyter(t) => t.send_input(data),
            Plane::E2b(t) => t.send_input(data.as_ref()),
        }
    }

    /// Resizes the terminal (E2B: envd's `Update`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a zero size; as [`Terminal::send_input`].
    pub fn resize(&self, size: PtySize) -> Result<(), Error> {
        match &self.0 {
            Plane::Jupyter(t) => t.resize(size),
            Plane::E2b(t) => {
                let size = size.check()?;
                t.resize(size.cols, size.rows)
            }
        }
    }

    /// Kills the terminal and everything in it. Returns `false` when it was already gone.
    /// Its reader then gets [`PtyEnd::Killed`].
    ///
    /// # Errors
    ///
    /// [`Error::Http`], [`Error::Transport`] or [`Error::Timeout`] when the server does not
    /// confirm; [`Error::Closed`].
    pub fn kill(&self) -> Result<bool, Error> {
        match &self.0 {
            Plane::Jupyter(t) => t.kill(),
            Plane::E2b(t) => t.kill(),
        }
    }

    /// The next event, waiting at most `timeout`; `Ok(None)` when none came in time. After
    /// [`PtyEvent::End`], every call returns it again at once.
    ///
    /// # Errors
    ///
    /// The connection's error once it is gone for good ([`Error::ConnectionLost`] when the
    /// reconnect budget ran out, [`Error::SandboxNotFound`], [`Error::Authentication`]),
    /// again on every later call.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<PtyEvent>, Error> {
        self.next(Some(Instant::now() + timeout))
    }

    /// The next event if one is queued, without waiting.
    ///
    /// # Errors
    ///
    /// As [`Terminal::recv_timeout`].
    pub fn try_recv(&self) -> Result<Option<PtyEvent>, Error> {
        self.next(Some(Instant::now()))
    }

    fn next(&self, deadline: Option<Instant>) -> Result<Option<PtyEvent>, Error> {
        match &self.0 {
            Plane::Jupyter(t) => t.next(deadline),
            Plane::E2b(t) => t.next(deadline),
        }
    }

    /// Every event from now on, blocking for each, until [`PtyEvent::End`] (included) or an
    /// error (included). A shell that never exits and never prints blocks it for good: use
    /// [`Terminal::recv_timeout`] to bound each wait.
    pub fn iter(&self) -> PtyIter<'_> {
        PtyIter {
            terminal: self,
            done: false,
        }
    }

    /// Waits until the terminal ends (its shell exits, it is killed, its timeout passes, or it
    /// is gone) and returns the output not read before, with how it ended. Bounded by the
    /// shell: type `exit` or kill it, or set [`PtyOptions::timeout`](crate::PtyOptions::timeout).
    ///
    /// # Errors
    ///
    /// As [`Terminal::recv_timeout`]; the output read so far is lost with the error.
    pub fn wait(&self) -> Result<PtyResult, Error> {
        self.wait_with(|_| {})
    }

    /// [`Terminal::wait`], calling `on_output` with each piece of output as it arrives (E2B's
    /// `on_data`).
    ///
    /// # Errors
    ///
    /// As [`Terminal::wait`].
    pub fn wait_with(&self, mut on_output: impl FnMut(&str)) -> Result<PtyResult, Error> {
        let mut output = String::new();
        let mut gaps = Vec::new();
        loop {
            match self.next(None)? {
                Some(PtyEvent::Output(text)) => {
                    on_output(&text);
                    output.push_str(&text);
                }
                Some(PtyEvent::Gap(gap)) => gaps.push(gap),
                Some(PtyEvent::End(end)) => return Ok(PtyResult { end, output, gaps }),
                None => {}
            }
        }
    }

    /// State of the terminal's websocket; on E2B (no websocket), `Connected` until the
    /// terminal ended or failed, then `Closed`.
    pub fn connection_state(&self) -> ConnectionState {
        match &self.0 {
            Plane::Jupyter(t) => t.connection_state(),
            Plane::E2b(t) => t.connection_state(),
        }
    }

    /// Every later state change of the terminal's websocket (reconnects included).
    pub fn watch_connection(&self) -> ConnectionWatch {
        match &self.0 {
            Plane::Jupyter(t) => t.watch_connection(),
            Plane::E2b(t) => t.watch_connection(),
        }
    }

    /// Whether dropping this handle kills the terminal. See
    /// [`PtyOptions::kill_on_drop`](crate::PtyOptions::kill_on_drop).
    pub fn set_kill_on_drop(&mut self, kill: bool) {
        match &mut self.0 {
            Plane::Jupyter(t) => t.set_kill_on_drop(kill),
            Plane::E2b(t) => t.kill_on_drop = kill,
        }
    }

    /// Lets go of the terminal but leaves it running; returns its name, for
    /// [`Pty::connect`](crate::Pty::connect).
    pub fn detach(mut self) -> String {
        self.set_kill_on_drop(false);
        self.name().to_string()
    }
}

/// Blocking iterator over a terminal's events; see [`Terminal::iter`].
#[derive(Debug)]
pub struct PtyIter<'a> {
    terminal: &'a Terminal,
    done: bool,
}

impl Iterator for PtyIter<'_> {
    type Item = Result<PtyEvent, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        loop {
            match self.terminal.next(None) {
                Ok(Some(event)) => {
                    self.done = matches!(event, PtyEvent::End(_));
                    return Some(Ok(event));
                }
                Ok(None) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}
