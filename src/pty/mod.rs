//! Interactive terminals (PTYs) in the sandbox, over jupyter_server's terminals API
//! (terminado): `POST /api/terminals` starts a shell on a PTY, `/terminals/websocket/{name}`
//! carries its input, output and size, `DELETE /api/terminals/{name}` kills it.
//!
//! One background thread per [`Terminal`] owns its websocket, as for kernels, and reconnects
//! to the same terminal under the sandbox's [`ReconnectPolicy`](crate::ReconnectPolicy).
//!
//! # What arrives after a cut
//!
//! terminado keeps the last 1000 chunks of a terminal's output (one chunk per PTY read, up to
//! 64 KiB each) while no client is connected, and sends them to a new connection. The worker
//! lines that replay up with what it already delivered and passes on only the rest, so:
//!
//! - **Output arrives once and in order** when fewer than 1000 PTY reads happened during the
//!   cut (or since the terminal started). Beyond that, or when the overlap cannot be proven
//!   (several alignments fit, as with periodic output once 1000 chunks went by), a
//!   [`PtyEvent::Gap`] says so where it happened.
//! - **Input sent while disconnected** is queued and written once, after the reconnect, in
//!   order. Input written just before a cut may or may not have reached the server:
//!   - the local sandbox's server numbers terminal input (a small patch in its config: it
//!     takes `["e2b_stdin", n, text]` at most once per `n` and tells every new connection the
//!     last `n` it took), so the worker sends again exactly what did not arrive: **input
//!     arrives exactly once**;
//!   - on any other server (stock jupyter_server, E2B) the worker confirms input with a
//!     websocket ping/pong; input still unconfirmed when the link broke is not written again
//!     (typing a line twice can do harm) and is reported as [`PtyGap::InputUnconfirmed`]: at
//!     most once, and you are told when it is unknown.
//! - **A terminal that ended while disconnected** (the shell exited, or someone deleted it)
//!   is gone from the server with its buffer: the end is [`PtyEnd::Gone`], and output of its
//!   last moments may be missing.
//!
//! # Backends
//!
//! The local sandbox's server and a stock jupyter_server have terminals (terminado comes with
//! jupyter_server). The local sandbox's shell is bash, whatever `$SHELL` the host has
//! (jupyter_server alone starts `$SHELL -l`, or `sh -l` where it is unset): interactive, it
//! reads what a login shell reads, as E2B's envd starts its own terminals (`bash -i -l`), then
//! puts the kernel's venv first on PATH, as commands have it, so `python` and `pip` in a
//! terminal are the kernel's. E2B's code-interpreter template (`template/` in
//! e2b-dev/code-interpreter) runs a stock jupyter_server 2.20 whose config does not turn
//! terminals off, reached on port 8888 like the kernels, so they work there too: tested
//! against a server started as the template starts it behind a stand-in for E2B's proxy, not
//! against E2B itself. There the shell is jupyter_server's `$SHELL -l` (or `sh -l`), as root,
//! unlike the bash that E2B's own envd PTY starts as `user`. Jupyter Kernel Gateway and
//! Enterprise Gateway have no terminals: creating one fails with [`Error::Http`] (404).

mod jupyter_terminal;
mod replay;
mod rest;
mod session;
mod terminal;
mod wire;

use std::time::Duration;

use crate::error::Error;
use crate::plane::Plane;
use crate::plane::e2b::E2bTerminal;
use crate::sandbox::Sandbox;
use jupyter_terminal::JupyterTerminal;

pub(crate) use crate::model::terminal::{PtyEnd, PtyEvent, PtyGap};
pub use terminal::{PtyIter, PtyResult, Terminal};

/// Terminals in a sandbox. Get it with [`Sandbox::pty`].
#[derive(Debug, Clone)]
pub struct Pty {
    sandbox: Sandbox,
}

/// A terminal's size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PtySize {
    /// Columns (characters per line).
    pub cols: u16,
    /// Rows (lines).
    pub rows: u16,
}

impl Default for PtySize {
    /// 80 × 24, the classic VT100 size.
    fn default() -> Self {
        PtySize { cols: 80, rows: 24 }
    }
}

impl PtySize {
    /// `cols` × `rows`.
    pub fn new(cols: u16, rows: u16) -> PtySize {
        PtySize { cols, rows }
    }

    pub(crate) fn check(self) -> Result<PtySize, Error> {
        if self.cols == 0 || self.rows == 0 {
            return Err(Error::InvalidArgument(format!(
                "a terminal needs at least one row and one column, not {}x{}",
                self.cols, self.rows
            )));
        }
        Ok(self)
    }
}

/// How a terminal is started. Plain settings with [`Default`]; chain the setters. `Debug`
/// shows env var names only.
#[derive(Clone)]
#[non_exhaustive]
pub struct PtyOptions {
    /// See [`PtyOptions::size`].
    pub size: PtySize,
    /// See [`PtyOptions::cwd`].
    pub cwd: Option<String>,
    /// See [`PtyOptions::envs`].
    pub envs: Vec<(String, String)>,
    /// See [`PtyOptions::timeout`].
    pub timeout: Option<Duration>,
    /// See [`PtyOptions::kill_on_drop`].
    pub kill_on_drop: bool,
}

impl std::fmt::Debug for PtyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PtyOptions")
            .field("size", &self.size)
            .field("cwd", &self.cwd)
            .field(
                "envs",
                &crate::env_vars::names(self.envs.iter().map(|(k, _)| k.as_str())),
            )
            .field("timeout", &self.timeout)
            .field("kill_on_drop", &self.kill_on_drop)
            .finish()
    }
}

impl Default for PtyOptions {
    fn default() -> Self {
        PtyOptions {
            size: PtySize::default(),
            cwd: None,
            envs: Vec::new(),
            timeout: None,
            kill_on_drop: true,
        }
    }
}

impl PtyOptions {
    /// Default options: 80 × 24, in the server's root directory, killed on drop.
    pub fn new() -> PtyOptions {
        PtyOptions::default()
    }

    /// The terminal's size. Defaults to 80 × 24.
    pub fn size(mut self, size: PtySize) -> Self {
        self.size = size;
        self
    }

    /// The shell's working directory: absolute, or relative to the server's root. Defaults to
    /// the server's root directory (E2B: `/home/user`).
    pub fn cwd(mut self, cwd: impl Into<String>) -> Self {
        self.cwd = Some(cwd.into());
        self
    }

    /// Environment variables for the shell, on top of the sandbox's own
    /// ([`SandboxBuilder::envs`](crate::SandboxBuilder::envs)), which they override. Defaults
    /// to none.
    pub fn envs<I, K, V>(mut self, envs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.envs.extend(crate::env_vars::owned(envs));
        self
    }

    /// Kills the terminal once this much time has passed since it started; it then ends with
    /// [`PtyEnd::TimedOut`]. Defaults to `None`: it lives until its shell exits, it is killed,
    /// or its handle is dropped.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Whether dropping the [`Terminal`] kills the terminal on the server. Defaults to `true`;
    /// with `false` it keeps running and [`Pty::connect`] can attach to it again by name.
    pub fn kill_on_drop(mut self, kill: bool) -> Self {
        self.kill_on_drop = kill;
        self
    }
}

impl Pty {
    pub(crate) fn new(sandbox: Sandbox) -> Pty {
        Pty { sandbox }
    }

    /// Starts a shell on a new PTY of `size`, in the server's root directory.
    /// E2B: `sbx.pty.create(size)`.
    ///
    /// # Errors
    ///
    /// As [`Pty::create_with`].
    ///
    /// # Examples
    ///
    /// ```
    /// # std::thread::spawn(|| { std::thread::sleep(std::time::Duration::from_secs(120)); eprintln!("doctest deadline passed"); std::process::exit(1) });
    /// use e2b_blocking::{PtyEnd, PtySize, Sandbox};
    ///
    /// let sbx = Sandbox::local()?;
    /// let term = sbx.pty().create(PtySize::new(80, 24))?;
    /// term.send_input("echo $((6 * 7)); exit 3\n")?;
    /// let out = term.wait()?; // the shell's output, echo and prompts included
    /// assert!(out.output.contains("42"), "{}", out.output);
    /// assert_eq!(out.end, PtyEnd::Exited { code: Some(3) });
    /// # Ok::<(), e2b_blocking::Error>(())
    /// ```
    pub fn create(&self, size: PtySize) -> Result<Terminal, Error> {
        self.create_with(PtyOptions::new().size(size))
    }

    /// Starts a shell on a new PTY.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a zero size or a bad env var name;
    /// [`Error::FileNotFound`] or [`Error::NotADirectory`] for a cwd that cannot be entered;
    /// [`Error::Http`] (404) when the server has no terminals (Kernel Gateway, or terminals
    /// disabled); [`Error::Authentication`], [`Error::Transport`], [`Error::Timeout`] when the
    /// server cannot be reached; [`Error::Closed`].
    pub fn create_with(&self, options: PtyOptions) -> Result<Terminal, Error> {
        if let Plane::E2b(plane) = self.sandbox.plane()? {
            let size = options.size.check()?;
            let envs: Vec<(String, String)> = self
                .sandbox
                .config()
                .envs
                .iter()
                .chain(&options.envs)
                .cloned()
                .collect();
            return E2bTerminal::create(
                plane,
                (size.cols, size.rows),
                options.cwd.as_deref(),
                &envs,
                options.timeout,
                options.kill_on_drop,
            )
            .map(|t| Terminal(terminal::Plane::E2b(t)));
        }
        JupyterTerminal::create(&self.sandbox, options)
            .map(|t| Terminal(terminal::Plane::Jupyter(t)))
    }

    /// Attaches to a running terminal by name (one left running with
    /// [`PtyOptions::kill_on_drop`]`(false)` or [`Terminal::detach`], or started by another
    /// client). The first output is terminado's buffer: up to its last 1000 chunks. The new
    /// handle kills the terminal when dropped unless told otherwise
    /// ([`Terminal::set_kill_on_drop`]).
    ///
    /// # Errors
    ///
    /// [`Error::TerminalNotFound`] when no terminal has that name; as [`Pty::create_with`].
    pub fn connect(&self, name: &str) -> Result<Terminal, Error> {
        if let Plane::E2b(plane) = self.sandbox.plane()? {
            return E2bTerminal::connect(plane, name).map(|t| Terminal(terminal::Plane::E2b(t)));
        }
        JupyterTerminal::attach(&self.sandbox, name).map(|t| Terminal(terminal::Plane::Jupyter(t)))
    }

    /// Names of the terminals running on the server (also those of other clients).
    ///
    /// # Errors
    ///
    /// [`Error::Http`] (404) when the server has no terminals; [`Error::Transport`],
    /// [`Error::Timeout`], [`Error::Closed`].
    pub fn list(&self) -> Result<Vec<String>, Error> {
        if let Plane::E2b(plane) = self.sandbox.plane()? {
            // envd lists processes, not terminals: a terminal is a login shell started with a
            // PTY, which envd does not mark; these are its interactive shells.
            return Ok(plane
                .list_processes()?
                .into_iter()
                .filter(|p| p.cmd == "/bin/bash" && p.args.first().is_some_and(|a| a == "-i"))
                .map(|p| p.pid.to_string())
                .collect());
        }
        rest::list(self.sandbox.http())
    }

    /// Kills a terminal by name. Returns `false` when there was no such terminal.
    ///
    /// # Errors
    ///
    /// [`Error::Http`], [`Error::Transport`] or [`Error::Timeout`] when the server does not
    /// confirm; [`Error::Closed`].
    pub fn kill(&self, name: &str) -> Result<bool, Error> {
        if let Plane::E2b(plane) = self.sandbox.plane()? {
            return match name.parse::<u32>() {
                Ok(pid) => plane.kill_process(pid),
                Err(_) => Ok(false),
            };
        }
        rest::delete(self.sandbox.http(), name)
    }
}
