//! [`JupyterTerminal`]: a terminado terminal over Jupyter's websocket (a shell on a PTY of the
//! server), and reading its events.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use mio::{Poll, Waker};

use crate::error::Error;
use crate::jupyter::delivery::Failure;
use crate::jupyter::link::io_setup;
use crate::jupyter::state::{ConnectionState, ConnectionWatch};
use crate::jupyter::websocket::{self, Limits};
use crate::pty::session::{self, Cmd, Item, Session, Shared, WAKE};
use crate::pty::{PtyEnd, PtyEvent, PtyOptions, PtySize, rest, wire};
use crate::sandbox::Sandbox;
use crate::sync::lock;

/// A terminado terminal over Jupyter's websocket, behind [`Terminal`](crate::Terminal). It
/// holds a clone of its [`Sandbox`], so the sandbox lives at least as long as it.
pub(crate) struct JupyterTerminal {
    name: String,
    sandbox: Sandbox,
    commands: Sender<Cmd>,
    waker: Arc<Waker>,
    items: Receiver<Item>,
    shared: Arc<Shared>,
    /// The end or failure once read, returned again to every later read.
    over: Mutex<Option<Over>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    /// Disconnects when the worker thread ends.
    stopped: Receiver<()>,
    kill_on_drop: bool,
}

#[derive(Debug, Clone)]
enum Over {
    End(PtyEnd),
    Failed(Failure),
}

impl std::fmt::Debug for JupyterTerminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JupyterTerminal")
            .field("name", &self.name)
            .field("state", &self.shared.state.get())
            .finish_non_exhaustive()
    }
}

impl JupyterTerminal {
    pub(crate) fn create(sandbox: &Sandbox, options: PtyOptions) -> Result<JupyterTerminal, Error> {
        sandbox.ensure_open()?;
        let size = options.size.check()?;
        for (k, _) in &options.envs {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                return Err(Error::InvalidArgument(format!("bad env var name {k:?}")));
            }
        }
        let cwd = resolve_cwd(sandbox, options.cwd.as_deref())?;
        let envs: Vec<(String, String)> = sandbox
            .config()
            .envs
            .iter()
            .chain(&options.envs)
            .cloned()
            .collect();
        let name = format!("e2b{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        rest::create(sandbox.http(), &name, &cwd, &envs)?;
        log::debug!("terminal {name}: started in {cwd}");
        let opened = JupyterTerminal::open(sandbox, name.clone(), Some(size), options.kill_on_drop)
            .and_then(|mut t| {
                t.set_expiry(options.timeout)?;
                Ok(t)
            });
        if opened.is_err() {
            // Nobody will ever hold this terminal: do not leave its shell behind.
            let _ = rest::delete(sandbox.http(), &name);
        }
        opened
    }

    pub(crate) fn attach(sandbox: &Sandbox, name: &str) -> Result<JupyterTerminal, Error> {
        sandbox.ensure_open()?;
        if !rest::exists(sandbox.http(), name)? {
            return Err(Error::TerminalNotFound { name: name.into() });
        }
        JupyterTerminal::open(sandbox, name.to_string(), None, true)
    }

    fn open(
        sandbox: &Sandbox,
        name: String,
        size: Option<PtySize>,
        kill_on_drop: bool,
    ) -> Result<JupyterTerminal, Error> {
        let config = sandbox.config().connection.clone();
        let endpoint = sandbox.http().endpoint().clone();
        let route = session::route(&endpoint, &name);
        let socket = websocket::first_connect(
            &route.label,
            Limits::reconnect(config.timeouts.connect),
            &config.reconnect,
            |limits| websocket::connect_plain(&route, limits, config.max_message_size),
        )?;
        let shared = Arc::new(Shared::new(&name));
        let poll = Poll::new().map_err(io_setup)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE).map_err(io_setup)?);
        let (commands, command_rx) = crossbeam_channel::unbounded();
        let (items_tx, items) = crossbeam_channel::unbounded();
        let (stopped_tx, stopped) = crossbeam_channel::bounded::<()>(0);
        if let Some(size) = size {
            let _ = commands.send(Cmd::Resize(size));
        }
        let mut session = Session::new(
            name.clone(),
            endpoint,
            config,
            sandbox.backend_shared(),
            sandbox.http().clone(),
            command_rx,
            items_tx,
            poll,
            shared.clone(),
        );
        session.adopt(socket).map_err(io_setup)?;
        let handle = std::thread::Builder::new()
            .name(format!("e2b-pty-{name}"))
            .spawn(move || {
                let _stopped = stopped_tx;
                session.run();
            })
            .map_err(io_setup)?;
        Ok(JupyterTerminal {
            name,
            sandbox: sandbox.clone(),
            commands,
            waker,
            items,
            shared,
            over: Mutex::new(None),
            worker: Mutex::new(Some(handle)),
            stopped,
            kill_on_drop,
        })
    }

    /// Arms the terminal's own timeout in its worker (a fresh worker is idle until then).
    fn set_expiry(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        let Some(timeout) = timeout else {
            return Ok(());
        };
        self.command(Cmd::Expire(timeout))
    }

    /// See [`Terminal::name`].
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// See [`Terminal::send_input`].
    pub(super) fn send_input(&self, data: impl AsRef<[u8]>) -> Result<(), Error> {
        let text = std::str::from_utf8(data.as_ref()).map_err(|e| {
            Error::InvalidArgument(format!("terminal input must be UTF-8 text: {e}"))
        })?;
        if text.is_empty() {
            return Ok(());
        }
        // A server resets the connection on a message over its limit; sent anyway, it would
        // be sent again after every reconnect.
        let size = wire::numbered_stdin(u64::MAX, text).len();
        let limit = self.sandbox.config().connection.max_request_size;
        if size > limit {
            return Err(Error::RequestTooLarge { size, limit });
        }
        self.command(Cmd::Input(text.to_string()))
    }

    /// See [`Terminal::resize`].
    pub(super) fn resize(&self, size: PtySize) -> Result<(), Error> {
        self.command(Cmd::Resize(size.check()?))
    }

    fn command(&self, cmd: Cmd) -> Result<(), Error> {
        self.check_open()?;
        self.commands.send(cmd).map_err(|_| self.ended_error())?;
        if let Err(e) = self.waker.wake() {
            log::warn!("terminal {}: wake failed: {e}", self.name);
        }
        Ok(())
    }

    /// `Ok` while the terminal may still take input.
    fn check_open(&self) -> Result<(), Error> {
        self.sandbox.ensure_open()?;
        match lock(&self.over).as_ref() {
            Some(Over::Failed(f)) => Err(f.to_error()),
            Some(Over::End(_)) => Err(Error::TerminalNotFound {
                name: self.name.clone(),
            }),
            None if matches!(self.shared.state.get(), ConnectionState::Closed { .. }) => {
                Err(self.ended_error())
            }
            None => Ok(()),
        }
    }

    fn ended_error(&self) -> Error {
        Error::TerminalNotFound {
            name: self.name.clone(),
        }
    }

    /// See [`Terminal::kill`].
    pub(super) fn kill(&self) -> Result<bool, Error> {
        self.sandbox.ensure_open()?;
        self.shared.killed.store(true, Ordering::SeqCst);
        let killed = rest::delete(self.sandbox.http(), &self.name)?;
        if killed {
            // Over already if the worker ended it meanwhile; nothing to settle then.
            let _ = self.command(Cmd::Killed);
        }
        Ok(killed)
    }

    pub(super) fn next(&self, deadline: Option<Instant>) -> Result<Option<PtyEvent>, Error> {
        if let Some(over) = lock(&self.over).clone() {
            return match over {
                Over::End(end) => Ok(Some(PtyEvent::End(end))),
                Over::Failed(f) => Err(f.to_error()),
            };
        }
        let item = match deadline {
            Some(d) => match self.items.recv_deadline(d) {
                Ok(item) => item,
                Err(RecvTimeoutError::Timeout) => return Ok(None),
                Err(RecvTimeoutError::Disconnected) => return Err(self.worker_gone()),
            },
            None => match self.items.recv() {
                Ok(item) => item,
                Err(_) => return Err(self.worker_gone()),
            },
        };
        match item {
            Item::Event(PtyEvent::End(end)) => {
                *lock(&self.over) = Some(Over::End(end));
                Ok(Some(PtyEvent::End(end)))
            }
            Item::Event(event) => Ok(Some(event)),
            Item::Failed(f) => {
                let e = f.to_error();
                *lock(&self.over) = Some(Over::Failed(f));
                Err(e)
            }
        }
    }

    /// The worker stopped without an end: the sandbox was closed.
    fn worker_gone(&self) -> Error {
        *lock(&self.over) = Some(Over::Failed(Failure::Closed));
        Error::Closed
    }

    /// See [`Terminal::connection_state`].
    pub(super) fn connection_state(&self) -> ConnectionState {
        self.shared.state.get()
    }

    /// See [`Terminal::watch_connection`].
    pub(super) fn watch_connection(&self) -> ConnectionWatch {
        self.shared.state.watch()
    }

    /// See [`Terminal::set_kill_on_drop`].
    pub(super) fn set_kill_on_drop(&mut self, kill: bool) {
        self.kill_on_drop = kill;
    }

    /// Stops the worker, waiting at most `timeout`.
    fn stop(&self, timeout: Duration) {
        let _ = self.commands.send(Cmd::Shutdown);
        let _ = self.waker.wake();
        let Some(handle) = lock(&self.worker).take() else {
            return;
        };
        match self.stopped.recv_timeout(timeout) {
            Err(RecvTimeoutError::Disconnected) | Ok(()) => {
                let _ = handle.join();
            }
            Err(RecvTimeoutError::Timeout) => {
                log::warn!("terminal {}: worker did not stop in time", self.name);
            }
        }
    }
}

impl Drop for JupyterTerminal {
    fn drop(&mut self) {
        let close = self.sandbox.config().timeouts.close;
        let over = lock(&self.over).is_some();
        if self.kill_on_drop && !over && self.sandbox.ensure_open().is_ok() {
            self.shared.killed.store(true, Ordering::SeqCst);
            if let Err(e) = rest::delete(&self.sandbox.http_within(close), &self.name) {
                log::warn!("terminal {}: could not kill it: {e}", self.name);
            }
        }
        self.stop(close);
    }
}

/// The directory to send: checked to be one, and relative to the server's root. terminado
/// resolves a relative `cwd` against the server process's cwd first and silently starts in
/// that cwd when the directory does not exist, so a relative path is sent only where that is
/// the root (the local sandbox); elsewhere (E2B: process in `/`, root `/home/user`) it is made
/// absolute with the root as the server sees it.
fn resolve_cwd(sandbox: &Sandbox, cwd: Option<&str>) -> Result<String, Error> {
    let local = sandbox.as_local().is_some();
    let Some(cwd) = cwd else {
        return if local {
            Ok(".".into())
        } else {
            sandbox.server_root()
        };
    };
    let info = sandbox.files().get_info(cwd)?;
    if info.kind != crate::FileType::Dir {
        return Err(Error::NotADirectory { path: cwd.into() });
    }
    if local || cwd.starts_with('/') {
        return Ok(cwd.to_string());
    }
    let root = sandbox.server_root()?;
    Ok(format!("{}/{}", root.trim_end_matches('/'), cwd))
}
