//! Processes through envd's `process.Process`: `Start` and `Connect` are server streams of
//! start, data and end events, read by a thread per stream into a channel so that a caller can
//! wait with a deadline; `SendInput`, `CloseStdin`, `SendSignal`, `Update` and `List` are
//! unary. A PTY is a process started with a size.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde_json::{Map, Value, json};

use super::E2bPlane;
use super::connect::{Call, Failure, KEEPALIVE, Stream};
use super::version::{CLOSE_STDIN, COMMAND_STDIN};
use crate::error::Error;

/// How long a stream may stay silent: envd sends a keepalive every [`KEEPALIVE`].
const IDLE: Duration = Duration::from_secs(3 * KEEPALIVE.as_secs());

/// What to start.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProcessStart<'a> {
    pub(crate) cmd: &'a str,
    pub(crate) args: Vec<String>,
    pub(crate) cwd: Option<&'a str>,
    pub(crate) envs: &'a [(String, String)],
    pub(crate) user: Option<&'a str>,
    pub(crate) stdin: bool,
    /// `(cols, rows)` for a PTY.
    pub(crate) pty: Option<(u16, u16)>,
}

/// One event of a process, as envd sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProcessEvent {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Pty(Vec<u8>),
    /// The end: the exit code as a shell's `$?` would say it for an exit, the negative signal
    /// number for a process a signal ended (`-9` for SIGKILL), and envd's status text.
    End {
        exit_code: i32,
        status: String,
        error: Option<String>,
    },
}

/// A process as envd's `List` describes it.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    pub(crate) pid: u32,
    pub(crate) cmd: String,
    pub(crate) args: Vec<String>,
    pub(crate) cwd: Option<String>,
}

/// A process envd runs, and the stream of its events this handle reads.
#[derive(Debug)]
pub(crate) struct E2bProcess {
    plane: Arc<E2bPlane>,
    pid: u32,
    events: Receiver<Result<ProcessEvent, Error>>,
    ended: bool,
}

impl E2bPlane {
    /// Starts a process; returns once envd said its pid.
    pub(crate) fn start_process(
        self: &Arc<Self>,
        start: &ProcessStart<'_>,
    ) -> Result<E2bProcess, Error> {
        if start.stdin {
            self.version.require(COMMAND_STDIN, "a command's stdin")?;
        }
        let envs: Map<String, Value> = start
            .envs
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let mut process = json!({"cmd": start.cmd, "args": start.args, "envs": envs});
        if let Some(cwd) = start.cwd {
            process["cwd"] = json!(cwd);
        }
        let mut body = json!({"process": process, "stdin": start.stdin});
        if let Some((cols, rows)) = start.pty {
            body["pty"] = json!({"size": {"cols": cols, "rows": rows}});
        }
        self.open(
            "process.Process/Start",
            start.user,
            &body,
            &format!("starting {}", start.cmd),
        )
    }

    /// Attaches to a running process by pid: its output from now on (envd keeps none).
    pub(crate) fn connect_process(self: &Arc<Self>, pid: u32) -> Result<E2bProcess, Error> {
        self.open(
            "process.Process/Connect",
            None,
            &json!({"process": {"pid": pid}}),
            &format!("process {pid}"),
        )
    }

    fn open(
        self: &Arc<Self>,
        method: &str,
        user: Option<&str>,
        body: &Value,
        what: &str,
    ) -> Result<E2bProcess, Error> {
        let call = Call {
            http: &self.envd,
            method,
            user: self.version.user_for(user),
        };
        let mut stream = call
            .stream(body, self.timeouts.request, IDLE)
            .map_err(|f| self.process_error(self.typed(f), what))?;
        // The first event is the start, with the pid.
        let pid = loop {
            match stream
                .next()
                .map_err(|f| self.process_error(self.typed(f), what))?
            {
                Some(m) => {
                    if let Some(pid) = m["event"]["start"].get("pid").and_then(Value::as_u64) {
                        break pid as u32;
                    }
                    if m["event"].get("start").is_some() {
                        break 0;
                    }
                }
                None => {
                    return Err(Error::protocol(format!(
                        "{what}: the stream ended before the start event"
                    )));
                }
            }
        };
        log::debug!("envd process {pid}: attached ({method})");
        let (tx, rx) = crossbeam_channel::unbounded();
        let plane = self.clone();
        std::thread::Builder::new()
            .name(format!("e2b-process-{pid}"))
            .spawn(move || read_events(&plane, stream, pid, &tx))
            .map_err(|e| Error::Io {
                path: "process stream thread".into(),
                source: e,
            })?;
        Ok(E2bProcess {
            plane: self.clone(),
            pid,
            events: rx,
            ended: false,
        })
    }

    /// The processes envd runs.
    pub(crate) fn list_processes(&self) -> Result<Vec<Listed>, Error> {
        let answer = self
            .call("process.Process/List", None, &json!({}))
            .map_err(|f| self.plain(f, "listing processes"))?;
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(answer["processes"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|p| Listed {
                        pid: p["pid"].as_u64().unwrap_or(0) as u32,
                        cmd: p["config"]["cmd"].as_str().unwrap_or_default().to_string(),
                        args: strings(&p["config"]["args"]),
                        cwd: p["config"]["cwd"].as_str().map(str::to_string),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Writes to a process's stdin (or its PTY).
    pub(crate) fn send_input(&self, pid: u32, data: &[u8], pty: bool) -> Result<(), Error> {
        if !pty {
            self.version.require(COMMAND_STDIN, "a command's stdin")?;
        }
        let data = base64::engine::general_purpose::STANDARD.encode(data);
        let input = if pty {
            json!({"pty": data})
        } else {
            json!({"stdin": data})
        };
        self.call(
            "process.Process/SendInput",
            None,
            &json!({"process": {"pid": pid}, "input": input}),
        )
        .map(drop)
        .map_err(|f| match f {
            Failure::Rpc(r) if !pty && r.code == "failed_precondition" => Error::StdinClosed,
            f => self.process_error(f, &format!("process {pid}")),
        })
    }

    pub(crate) fn close_stdin(&self, pid: u32) -> Result<(), Error> {
        self.version
            .require(CLOSE_STDIN, "closing a command's stdin")?;
        self.call(
            "process.Process/CloseStdin",
            None,
            &json!({"process": {"pid": pid}}),
        )
        .map(drop)
        .map_err(|f| self.process_error(f, &format!("process {pid}")))
    }

    /// SIGKILL to a process (envd signals its process group); `false` when there is none.
    pub(crate) fn kill_process(&self, pid: u32) -> Result<bool, Error> {
        match self.call(
            "process.Process/SendSignal",
            None,
            &json!({"process": {"pid": pid}, "signal": "SIGNAL_SIGKILL"}),
        ) {
            Ok(_) => Ok(true),
            Err(Failure::Rpc(r)) if r.code == "not_found" => Ok(false),
            Err(f) => Err(self.plain(f, &format!("killing process {pid}"))),
        }
    }

    /// Resizes a PTY.
    pub(crate) fn resize(&self, pid: u32, cols: u16, rows: u16) -> Result<(), Error> {
        self.call(
            "process.Process/Update",
            None,
            &json!({"process": {"pid": pid}, "pty": {"size": {"cols": cols, "rows": rows}}}),
        )
        .map(drop)
        .map_err(|f| self.process_error(f, &format!("process {pid}")))
    }

    fn process_error(&self, failure: Failure, what: &str) -> Error {
        match failure {
            Failure::Rpc(r) if r.code == "not_found" => {
                let pid = what
                    .rsplit(' ')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                Error::ProcessNotFound { pid }
            }
            Failure::Rpc(r)
                if r.code == "invalid_argument"
                    && r.message.to_ascii_lowercase().contains("cwd") =>
            {
                Error::FileNotFound {
                    path: r
                        .message
                        .split('\'')
                        .nth(1)
                        .unwrap_or(&r.message)
                        .to_string(),
                }
            }
            f => self.plain(f, what),
        }
    }
}

/// Reads a process stream into `tx` until it ends, fails or nobody listens.
fn read_events(
    plane: &E2bPlane,
    mut stream: Stream,
    pid: u32,
    tx: &crossbeam_channel::Sender<Result<ProcessEvent, Error>>,
) {
    loop {
        let item = match stream.next() {
            Ok(Some(m)) => match event_of(&m["event"]) {
                Some(e) => Ok(e),
                None => continue,
            },
            Ok(None) => Err(Error::ConnectionLost {
                kernel_id: format!("process {pid}"),
                source: Some("envd's stream ended before the process did".into()),
            }),
            Err(f) => Err(match plane.typed(f) {
                Failure::Other(e) => e,
                Failure::Rpc(r) => super::rpc_error(r, &format!("process {pid}")),
            }),
        };
        let last = !matches!(
            item,
            Ok(ProcessEvent::Stdout(_) | ProcessEvent::Stderr(_) | ProcessEvent::Pty(_))
        );
        if tx.send(item).is_err() || last {
            log::debug!("envd process {pid}: stream closed");
            return;
        }
    }
}

fn event_of(event: &Value) -> Option<ProcessEvent> {
    let bytes = |v: &Value| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .unwrap_or_default()
    };
    if let Some(data) = event.get("data") {
        if let Some(b) = data.get("stdout") {
            return Some(ProcessEvent::Stdout(bytes(b)));
        }
        if let Some(b) = data.get("stderr") {
            return Some(ProcessEvent::Stderr(bytes(b)));
        }
        if let Some(b) = data.get("pty") {
            return Some(ProcessEvent::Pty(bytes(b)));
        }
        return None;
    }
    let end = event.get("end")?;
    let status = end["status"].as_str().unwrap_or_default().to_string();
    let signal = status.strip_prefix("signal: ").map(|name| match name {
        "killed" => 9,
        "terminated" => 15,
        "interrupt" => 2,
        "hangup" => 1,
        "aborted" => 6,
        "segmentation fault" => 11,
        _ => 0,
    });
    let exit_code = match signal {
        Some(n) if n > 0 => -n,
        _ => end["exitCode"].as_i64().unwrap_or(0) as i32,
    };
    Some(ProcessEvent::End {
        exit_code,
        status,
        error: end["error"].as_str().map(str::to_string),
    })
}

impl E2bProcess {
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    pub(crate) fn plane(&self) -> &Arc<E2bPlane> {
        &self.plane
    }

    /// The next event, waiting until `until` (`None`: no limit); `Ok(None)` when none came in
    /// time or the process has ended (after its end event).
    pub(crate) fn next(&mut self, until: Option<Instant>) -> Result<Option<ProcessEvent>, Error> {
        if self.ended {
            return Ok(None);
        }
        let item = match until {
            None => self
                .events
                .recv()
                .map_err(|_| RecvTimeoutError::Disconnected),
            Some(t) => self
                .events
                .recv_timeout(t.saturating_duration_since(Instant::now())),
        };
        match item {
            Ok(Ok(e)) => {
                if matches!(e, ProcessEvent::End { .. }) {
                    self.ended = true;
                }
                Ok(Some(e))
            }
            Ok(Err(e)) => {
                self.ended = true;
                Err(e)
            }
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => {
                self.ended = true;
                Err(Error::ConnectionLost {
                    kernel_id: format!("process {}", self.pid),
                    source: None,
                })
            }
        }
    }
}

/// Decodes UTF-8 arriving in pieces: a character split between two pieces is kept whole;
/// invalid bytes become U+FFFD.
#[derive(Debug, Default)]
pub(crate) struct Utf8Pieces {
    pending: Vec<u8>,
}

impl Utf8Pieces {
    pub(crate) fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let valid_up_to = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => self.pending.len(),
        };
        let rest = self.pending.split_off(valid_up_to);
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending = rest;
        text
    }

    /// What is left at the end (an incomplete character, replaced).
    pub(crate) fn finish(&mut self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut self.pending)).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_split_between_pieces_is_kept_whole() {
        let mut d = Utf8Pieces::default();
        let bytes = "é€".as_bytes();
        assert_eq!(d.push(&bytes[..1]), "");
        assert_eq!(d.push(&bytes[1..3]), "é");
        assert_eq!(d.push(&bytes[3..]), "€");
        assert_eq!(d.push(b"\xffx"), "\u{fffd}x");
        assert_eq!(d.push(&bytes[..2]), "é");
        assert_eq!(d.finish(), "");
    }

    #[test]
    fn end_events_map_signals_to_negative_codes() {
        let end = |v: Value| event_of(&json!({"end": v}));
        assert!(matches!(
            end(json!({"exited": true, "status": "exit status 0"})),
            Some(ProcessEvent::End { exit_code: 0, .. })
        ));
        assert!(matches!(
            end(json!({"exitCode": 3, "exited": true, "status": "exit status 3"})),
            Some(ProcessEvent::End { exit_code: 3, .. })
        ));
        assert!(matches!(
            end(json!({"exitCode": -1, "status": "signal: killed"})),
            Some(ProcessEvent::End { exit_code: -9, .. })
        ));
    }
}
