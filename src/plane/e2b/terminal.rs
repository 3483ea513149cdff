//! A terminal through envd: `/bin/bash -i -l` started with a PTY, typed into with `SendInput`,
//! resized with `Update`, killed with `SendSignal`. Its name is its pid.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::E2bPlane;
use super::process::{E2bProcess, ProcessEvent, ProcessStart, Utf8Pieces};
use crate::error::Error;
use crate::jupyter::state::{CloseReason, ConnectionState, ConnectionWatch, StateCell};
use crate::model::terminal::{PtyEnd, PtyEvent};
use crate::sync::lock;

/// A terminal's state behind the facade's `&self` methods.
#[derive(Debug)]
struct Reading {
    process: E2bProcess,
    decode: Utf8Pieces,
    over: Option<Result<PtyEnd, String>>,
    deadline: Option<Instant>,
}

/// A shell on a PTY that envd runs.
#[derive(Debug)]
pub(crate) struct E2bTerminal {
    plane: Arc<E2bPlane>,
    pid: u32,
    name: String,
    reading: Mutex<Reading>,
    killed: AtomicBool,
    pub(crate) kill_on_drop: bool,
    /// `Connected` while its stream is read, `Closed` once it ended or failed.
    state: StateCell,
}

impl E2bTerminal {
    /// Starts a login shell on a PTY of `cols` × `rows`.
    pub(crate) fn create(
        plane: &Arc<E2bPlane>,
        size: (u16, u16),
        cwd: Option<&str>,
        envs: &[(String, String)],
        timeout: Option<Duration>,
        kill_on_drop: bool,
    ) -> Result<E2bTerminal, Error> {
        let mut envs = envs.to_vec();
        for (k, v) in [
            ("TERM", "xterm-256color"),
            ("LANG", "C.UTF-8"),
            ("LC_ALL", "C.UTF-8"),
        ] {
            if !envs.iter().any(|(name, _)| name == k) {
                envs.push((k.to_string(), v.to_string()));
            }
        }
        let start = ProcessStart {
            cmd: "/bin/bash",
            args: vec!["-i".into(), "-l".into()],
            cwd,
            envs: &envs,
            pty: Some(size),
            ..ProcessStart::default()
        };
        let process = plane.start_process(&start)?;
        Ok(E2bTerminal::around(plane, process, timeout, kill_on_drop))
    }

    /// Attaches to a terminal by its name (its pid): its output from now on.
    pub(crate) fn connect(plane: &Arc<E2bPlane>, name: &str) -> Result<E2bTerminal, Error> {
        let pid: u32 = name.parse().map_err(|_| Error::TerminalNotFound {
            name: name.to_string(),
        })?;
        let process = plane.connect_process(pid).map_err(|e| match e {
            Error::ProcessNotFound { .. } => Error::TerminalNotFound {
                name: name.to_string(),
            },
            e => e,
        })?;
        Ok(E2bTerminal::around(plane, process, None, true))
    }

    fn around(
        plane: &Arc<E2bPlane>,
        process: E2bProcess,
        timeout: Option<Duration>,
        kill_on_drop: bool,
    ) -> E2bTerminal {
        let pid = process.pid();
        E2bTerminal {
            plane: plane.clone(),
            pid,
            name: pid.to_string(),
            reading: Mutex::new(Reading {
                process,
                decode: Utf8Pieces::default(),
                over: None,
                deadline: timeout.map(|t| Instant::now() + t),
            }),
            killed: AtomicBool::new(false),
            kill_on_drop,
            state: {
                let state = StateCell::new(&format!("terminal:{pid}"));
                state.set(ConnectionState::Connected);
                state
            },
        }
    }

    pub(crate) fn connection_state(&self) -> ConnectionState {
        self.state.get()
    }

    pub(crate) fn watch_connection(&self) -> ConnectionWatch {
        self.state.watch()
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    fn check_open(&self) -> Result<(), Error> {
        match &lock(&self.reading).over {
            Some(Err(message)) => Err(Error::protocol(message.clone())),
            Some(Ok(_)) => Err(Error::TerminalNotFound {
                name: self.name.clone(),
            }),
            None => Ok(()),
        }
    }

    pub(crate) fn send_input(&self, data: &[u8]) -> Result<(), Error> {
        self.check_open()?;
        if data.is_empty() {
            return Ok(());
        }
        self.plane
            .send_input(self.pid, data, true)
            .map_err(|e| self.named(e))
    }

    pub(crate) fn resize(&self, cols: u16, rows: u16) -> Result<(), Error> {
        self.check_open()?;
        self.plane
            .resize(self.pid, cols, rows)
            .map_err(|e| self.named(e))
    }

    pub(crate) fn kill(&self) -> Result<bool, Error> {
        if lock(&self.reading).over.is_some() {
            return Ok(false);
        }
        self.killed.store(true, Ordering::SeqCst);
        self.plane.kill_process(self.pid)
    }

    fn named(&self, e: Error) -> Error {
        match e {
            Error::ProcessNotFound { .. } => Error::TerminalNotFound {
                name: self.name.clone(),
            },
            e => e,
        }
    }

    /// The next event, waiting until `until` (`None`: no limit).
    pub(crate) fn next(&self, until: Option<Instant>) -> Result<Option<PtyEvent>, Error> {
        let mut r = lock(&self.reading);
        loop {
            match &r.over {
                Some(Ok(end)) => return Ok(Some(PtyEvent::End(*end))),
                Some(Err(message)) => return Err(Error::protocol(message.clone())),
                None => {}
            }
            let limit = match (until, r.deadline) {
                (Some(u), Some(d)) => Some(u.min(d)),
                (u, d) => u.or(d),
            };
            match r.process.next(limit) {
                Ok(Some(
                    ProcessEvent::Pty(b) | ProcessEvent::Stdout(b) | ProcessEvent::Stderr(b),
                )) => {
                    let text = r.decode.push(&b);
                    if !text.is_empty() {
                        return Ok(Some(PtyEvent::Output(text)));
                    }
                }
                Ok(Some(ProcessEvent::End { exit_code, .. })) => {
                    let end = if self.killed.load(Ordering::SeqCst) {
                        PtyEnd::Killed
                    } else if r.deadline.is_none_or(|d| Instant::now() < d) {
                        // As `$?` says it: 128 + the signal for a signal.
                        let code = if exit_code < 0 {
                            128 - exit_code
                        } else {
                            exit_code
                        };
                        PtyEnd::Exited { code: Some(code) }
                    } else {
                        PtyEnd::TimedOut
                    };
                    r.over = Some(Ok(end));
                    self.state.set(ConnectionState::Closed {
                        reason: CloseReason::Requested,
                    });
                    let rest = r.decode.finish();
                    if !rest.is_empty() {
                        return Ok(Some(PtyEvent::Output(rest)));
                    }
                }
                Ok(None) => {
                    if r.deadline.is_some_and(|d| Instant::now() >= d) {
                        log::debug!("terminal {}: its timeout passed; killing it", self.name);
                        let _ = self.plane.kill_process(self.pid);
                        let _ = r
                            .process
                            .next(Some(Instant::now() + Duration::from_secs(5)));
                        r.over = Some(Ok(PtyEnd::TimedOut));
                        continue;
                    }
                    return Ok(None);
                }
                Err(e) => {
                    r.over = Some(Err(e.to_string()));
                    self.state.set(ConnectionState::Closed {
                        reason: CloseReason::GaveUp,
                    });
                    return Err(e);
                }
            }
        }
    }
}

impl Drop for E2bTerminal {
    fn drop(&mut self) {
        if self.kill_on_drop
            && lock(&self.reading).over.is_none()
            && let Err(e) = self.plane.kill_process(self.pid)
        {
            log::warn!("terminal {}: could not kill it: {e}", self.name);
        }
    }
}
