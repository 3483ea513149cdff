//! Code and contexts through E2B's code-interpreter server: `POST /execute` answers one JSON
//! line per output, `/contexts` creates, lists, restarts and removes kernels.
//!
//! The server interrupts a cell when its `/execute` connection drops, and has no way to resume
//! one, so a cut mid-execution cannot be recovered here: the call ends with
//! [`Error::OutputLost`] carrying what arrived (or [`Error::SandboxNotFound`] when the sandbox is
//! gone), and the cell is never sent again.

use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::E2bPlane;
use crate::context::Context;
use crate::error::{Error, TimeoutPhase};
use crate::jupyter::accumulate::{Accumulator, Event};
use crate::model::execution::{Execution, ExecutionError, OutputMessage, RichResult};
use crate::net::{Method, Response};
use crate::output::json_size;

/// Bytes read from the stream at once.
const READ_BUF: usize = 256 << 10;
/// Largest single output line read (a big image travels as one line).
const MAX_LINE: usize = 512 << 20;

/// The fields of a result line and the MIME types they carry.
const FORMATS: &[(&str, &str)] = &[
    ("text", "text/plain"),
    ("html", "text/html"),
    ("markdown", "text/markdown"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpeg", "image/jpeg"),
    ("pdf", "application/pdf"),
    ("latex", "text/latex"),
    ("json", "application/json"),
    ("javascript", "application/javascript"),
    ("data", "e2b/data"),
    ("chart", "e2b/chart"),
];

/// One execution as the facade asks for it.
pub(crate) struct CodeRequest<'a> {
    pub(crate) code: &'a str,
    pub(crate) context_id: Option<&'a str>,
    pub(crate) language: Option<&'a str>,
    pub(crate) envs: &'a [(String, String)],
    pub(crate) timeout: Option<Duration>,
    /// The most bytes of each stream (and of rich results) the execution keeps.
    pub(crate) max_output: usize,
}

impl E2bPlane {
    /// Runs code and calls `notify` with each output as it arrives; `notify`'s error stops the
    /// execution (the dropped request interrupts the cell) and is returned.
    pub(crate) fn run_code(
        &self,
        request: &CodeRequest<'_>,
        notify: &mut dyn FnMut(&Event) -> Result<(), Error>,
    ) -> Result<Execution, Error> {
        let mut body = json!({"code": request.code});
        if let Some(id) = request.context_id {
            body["context_id"] = json!(id);
        }
        if let Some(language) = request.language {
            body["language"] = json!(language);
        }
        if !request.envs.is_empty() {
            let envs: Map<String, Value> = request
                .envs
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            body["env_vars"] = Value::Object(envs);
        }
        let endpoint = "POST /execute".to_string();
        let http = &self.interpreter;
        log::debug!("{endpoint} on sandbox {}", self.sandbox_id);
        let started = std::time::Instant::now();
        let timed_out = || request.timeout.is_some_and(|t| started.elapsed() >= t);
        // A dedicated connection: dropping it is how the server learns to interrupt the cell.
        let req = http
            .headed(http.agent().post(http.endpoint().url("/execute")))
            .header("Content-Type", "application/json")
            .config()
            .timeout_global(request.timeout)
            .timeout_connect(Some(self.timeouts.connect))
            .build();
        let resp = req.send(body.to_string()).map_err(|e| {
            self.execution_failure(http.transport_error(&endpoint, e), request.timeout)
        })?;
        if !resp.status().is_success() {
            let resp = http.read_response(resp, &endpoint, 1 << 20)?;
            return Err(self.execute_refused(resp, request));
        }
        let mut reader = BufReader::with_capacity(READ_BUF, resp.into_body().into_reader());
        let mut acc = Accumulator::new(request.max_output);
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = Read::by_ref(&mut reader)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut line);
            let failed = match read {
                Ok(0) => Some(None),
                Ok(n) if n > MAX_LINE => {
                    return Err(Error::protocol("an output line over 512 MiB"));
                }
                Ok(_) => None,
                Err(e) => Some(Some(e)),
            };
            if let Some(cause) = failed {
                // The stream ended without end_of_execution: the connection was cut or timed out.
                let e = match cause {
                    Some(e) if e.kind() == std::io::ErrorKind::TimedOut || timed_out() => {
                        return Err(Error::Timeout {
                            phase: TimeoutPhase::Execution,
                            after: request.timeout.unwrap_or_default(),
                        });
                    }
                    Some(e) => http.transport_error(&endpoint, ureq::Error::Io(e)),
                    None => Error::protocol("the execution's stream ended early"),
                };
                return Err(self.lost(e, acc.finish()));
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let value: Value = serde_json::from_slice(&line)
                .map_err(|e| Error::protocol_from("a bad output line from /execute", e))?;
            let event = match value["type"].as_str().unwrap_or_default() {
                "end_of_execution" => return Ok(acc.finish()),
                "unexpected_end_of_execution" => {
                    return Err(self.lost(
                        Error::protocol("the code-interpreter server lost the kernel"),
                        acc.finish(),
                    ));
                }
                "stdout" | "stderr" => {
                    let message = OutputMessage {
                        line: value["text"].as_str().unwrap_or_default().to_string(),
                        timestamp: value["timestamp"].as_str().map(str::to_string),
                        error: value["type"] == "stderr",
                    };
                    if message.error {
                        Event::Stderr(message)
                    } else {
                        Event::Stdout(message)
                    }
                }
                "result" => Event::Result(Box::new(result_of(&value)), json_size(&value)),
                "error" => Event::Error(ExecutionError {
                    name: value["name"].as_str().unwrap_or_default().to_string(),
                    value: value["value"].as_str().unwrap_or_default().to_string(),
                    traceback: match &value["traceback"] {
                        Value::Array(lines) => lines
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join("\n"),
                        other => other.as_str().unwrap_or_default().to_string(),
                    },
                }),
                "number_of_executions" => {
                    acc.set_execution_count(
                        value["execution_count"]
                            .as_u64()
                            .and_then(|n| u32::try_from(n).ok()),
                    );
                    Event::None
                }
                kind => {
                    if kind != "keepalive" {
                        log::trace!("ignoring an output line of type {kind:?}");
                    }
                    Event::None
                }
            };
            notify(&event)?;
            acc.keep(event);
        }
    }

    /// A cut mid-execution: the sandbox is gone, or the output is lost (never resent).
    fn lost(&self, cause: Error, partial: Execution) -> Error {
        if let Ok(false) = self.health() {
            return self.stopped();
        }
        log::debug!("execution cut off: {cause}");
        Error::OutputLost {
            missing: None,
            partial: Box::new(partial),
        }
    }

    fn execution_failure(&self, e: Error, timeout: Option<Duration>) -> Error {
        match e {
            Error::Timeout { phase, .. } if phase != TimeoutPhase::Connect => Error::Timeout {
                phase: TimeoutPhase::Execution,
                after: timeout.unwrap_or_default(),
            },
            e if super::link_failure(&e) => match self.health() {
                Ok(false) => self.stopped(),
                _ => e,
            },
            e => e,
        }
    }

    fn execute_refused(&self, resp: Response, request: &CodeRequest<'_>) -> Error {
        match (resp.status, request.context_id) {
            (404, Some(id)) => Error::KernelNotFound {
                kernel_id: id.to_string(),
            },
            (400, _) => Error::InvalidArgument(resp.message()),
            (500, None) if request.language.is_some() => Error::InvalidArgument(format!(
                "language {:?}: {}",
                request.language.unwrap_or_default(),
                resp.message()
            )),
            _ => resp.into_error(),
        }
    }

    /// Creates a context: its own kernel, in `cwd` (default `/home/user`), with `envs` set in
    /// it (Python and bash contexts).
    pub(crate) fn create_context(
        &self,
        language: Option<&str>,
        cwd: Option<&str>,
        envs: &[(String, String)],
    ) -> Result<Context, Error> {
        let mut body = json!({});
        if let Some(l) = language {
            body["language"] = json!(l);
        }
        if let Some(c) = cwd {
            body["cwd"] = json!(c);
        }
        let resp = self
            .interpreter
            .send_once(Method::Post, "/contexts", Some(&body))?;
        if resp.status == 500 {
            return Err(Error::InvalidArgument(format!(
                "no context for language {:?}: {}",
                language.unwrap_or("python"),
                resp.message()
            )));
        }
        let context = context_of(&resp.error_for_status()?.json::<Value>()?)?;
        if !envs.is_empty() {
            let setup = envs_code(&context.language, envs)?;
            let request = CodeRequest {
                code: &setup,
                context_id: Some(&context.id),
                language: None,
                envs: &[],
                timeout: Some(self.timeouts.request),
                max_output: crate::output::DEFAULT_MAX_OUTPUT,
            };
            let done = self.run_code(&request, &mut |_| Ok(()))?;
            if let Some(e) = done.error {
                return Err(Error::KernelSetup {
                    kernel_id: context.id,
                    message: format!("setting env vars: {}: {}", e.name, e.value),
                });
            }
        }
        Ok(context)
    }

    /// Every context the server has, the default ones included.
    pub(crate) fn list_contexts(&self) -> Result<Vec<Context>, Error> {
        let listed: Vec<Value> = self.interpreter.json(Method::Get, "/contexts", None)?;
        listed.iter().map(context_of).collect()
    }

    /// The server's default Python context (made when the sandbox started).
    pub(crate) fn default_context(&self) -> Result<Context, Error> {
        self.list_contexts()?
            .into_iter()
            .find(|c| c.language == "python")
            .ok_or_else(|| Error::protocol("the code-interpreter server has no Python context"))
    }

    pub(crate) fn restart_context(&self, id: &str) -> Result<(), Error> {
        let path = format!("/contexts/{}/restart", crate::net::encode_component(id));
        self.context_call(Method::Post, &path, id)
    }

    pub(crate) fn remove_context(&self, id: &str) -> Result<(), Error> {
        let path = format!("/contexts/{}", crate::net::encode_component(id));
        self.context_call(Method::Delete, &path, id)
    }

    fn context_call(&self, method: Method, path: &str, id: &str) -> Result<(), Error> {
        let resp = self.interpreter.send_once(
            method,
            path,
            (method == Method::Post).then_some(&json!({})),
        )?;
        if resp.status == 404 {
            return Err(Error::KernelNotFound {
                kernel_id: id.to_string(),
            });
        }
        resp.error_for_status().map(drop)
    }
}

fn context_of(v: &Value) -> Result<Context, Error> {
    let field = |name: &str| v[name].as_str().map(str::to_string);
    Ok(Context {
        id: field("id").ok_or_else(|| Error::protocol("a context without an id"))?,
        language: field("language").unwrap_or_else(|| "python".into()),
        cwd: field("cwd"),
    })
}

/// A result line as the rich result it carries: its fields back into a MIME bundle.
fn result_of(line: &Value) -> RichResult {
    let mut bundle = Map::new();
    for (field, mime) in FORMATS {
        if let Some(v) = line.get(*field).filter(|v| !v.is_null()) {
            bundle.insert((*mime).to_string(), v.clone());
        }
    }
    if let Some(Value::Object(extra)) = line.get("extra") {
        bundle.extend(extra.clone());
    }
    RichResult::from_bundle(
        &Value::Object(bundle),
        line["is_main_result"].as_bool().unwrap_or(false),
    )
}

/// Code that sets `envs` in a context of `language`.
fn envs_code(language: &str, envs: &[(String, String)]) -> Result<String, Error> {
    let pairs: Map<String, Value> = envs.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    match language {
        "python" => Ok(format!(
            "import os as _e2b_os\n_e2b_os.environ.update({})\ndel _e2b_os",
            Value::Object(pairs)
        )),
        "bash" => Ok(envs
            .iter()
            .map(|(k, v)| format!("export {k}={}", shell_quote(v)))
            .collect::<Vec<_>>()
            .join("\n")),
        other => Err(Error::InvalidArgument(format!(
            "context env vars are supported for python and bash contexts on E2B, not {other}"
        ))),
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
