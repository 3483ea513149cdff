//! One kernel the SDK started, with its connection: the unit a context wraps. Its set-up
//! (the output hook in `hook.py`, env vars in [`envs`]) runs in it silently.
//!
//! The layer below the facade: it never names `Sandbox`. Here too are what runs in kernels:
//! the [`driver`] that follows an execution across cuts ([`recovery`]: replay records),
//! kernelspecs ([`spec`]), and the private-kernel service: the [`pool`] a [`pool::Lease`]
//! borrows from, the SDK's Python modules called with JSON arguments ([`module`]), the one
//! table from their faults to `Error` ([`fault`]), and the file [`helper`].

pub(crate) mod driver;
pub(crate) mod envs;
pub(crate) mod fault;
pub(crate) mod helper;
pub(crate) mod module;
pub(crate) mod pool;
pub(crate) mod recovery;
mod setup;
pub(crate) mod spec;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::backend::Backend;
use crate::config::ConnectionConfig;
use crate::error::{Error, TimeoutPhase};
use crate::jupyter::connection::Connection;
use crate::jupyter::delivery::{self, Delivery};
use crate::jupyter::rest;
use crate::jupyter::state::ConnectionState;
use crate::jupyter::websocket::Target;
use crate::jupyter::wire::Outgoing;
use crate::kernel::driver::Driver;
use crate::model::execution::Execution;
use crate::net::{Endpoint, Http};
use crate::sync::lock;

#[derive(Debug)]
pub(crate) struct Kernel {
    pub(crate) id: String,
    pub(crate) language: String,
    pub(crate) cwd: Option<String>,
    /// The context's own env vars, set again after every restart.
    pub(crate) envs: crate::env_vars::EnvVars,
    pub(crate) conn: Connection,
    /// The server and the connection settings the kernel was started with, for its REST
    /// interrupt.
    endpoint: Endpoint,
    config: ConnectionConfig,
    /// `conn.kernel_events()` when set-up (hook, env vars, cwd) last ran; a different count
    /// means the kernel restarted and set-up must run again.
    prepared_at: AtomicU64,
    hooked: AtomicBool,
    /// A restore of per-execution env vars whose end was not confirmed; runs before the next
    /// execution.
    pending_restore: Mutex<Option<String>>,
    /// The SDK's Python modules installed in the kernel (see [`module`]), and the
    /// `conn.kernel_events()` they were installed at: a restart empties `sys.modules`.
    modules: Mutex<(u64, Vec<&'static str>)>,
}

impl Kernel {
    /// Starts a kernel of `spec` on the server and connects to it.
    pub(crate) fn start(
        http: &Http,
        backend: &Arc<dyn Backend>,
        spec: &str,
        language: &str,
        config: &ConnectionConfig,
    ) -> Result<Kernel, Error> {
        let model = rest::start_kernel(http, spec, &[])?;
        let target = Target {
            endpoint: http.endpoint().clone(),
            kernel_id: model.id.clone(),
            session_id: uuid::Uuid::new_v4().simple().to_string(),
        };
        let conn = match Connection::open(target, config.clone(), backend.clone()) {
            Ok(c) => c,
            Err(e) => {
                if matches!(e, Error::Timeout { .. })
                    && let Some(tail) = backend.server_log_tail()
                {
                    log::warn!(
                        "kernel {} did not answer ({e}); the server's log ends with:\n{tail}",
                        model.id
                    );
                }
                let _ = rest::shutdown_kernel(http, &model.id);
                return Err(e);
            }
        };
        Ok(Kernel {
            id: model.id,
            language: language.to_string(),
            cwd: None,
            envs: Default::default(),
            conn,
            endpoint: http.endpoint().clone(),
            config: config.clone(),
            prepared_at: AtomicU64::new(u64::MAX),
            hooked: AtomicBool::new(false),
            pending_restore: Mutex::new(None),
            modules: Mutex::new((u64::MAX, Vec::new())),
        })
    }

    /// Whether the output-numbering hook is installed (Python kernels).
    /// False again from a restart until set-up ran: the new process has no hook yet.
    pub(crate) fn hooked(&self) -> bool {
        self.hooked.load(Ordering::SeqCst) && !self.needs_prepare()
    }

    /// True when set-up has not run since the kernel last (re)started.
    pub(crate) fn needs_prepare(&self) -> bool {
        self.prepared_at.load(Ordering::SeqCst) != self.conn.kernel_events()
    }

    /// Interrupts the kernel through the server's REST API, giving the request at most
    /// `within`; a failure is logged (the caller's wait then ends by its own deadline).
    pub(crate) fn interrupt(&self, within: Duration) {
        let http = http_within(&self.endpoint, &self.config, within);
        if let Err(e) = rest::interrupt_kernel(&http, &self.id) {
            log::warn!("could not interrupt kernel {}: {e}", self.id);
        }
    }

    pub(crate) fn state(&self) -> ConnectionState {
        self.conn.state()
    }

    /// Waits until the kernel answers a `kernel_info_request` on both channels (the reply on
    /// shell, its `idle` on iopub), asking again every half second: a request sent while the
    /// server is restarting the kernel can be dropped, and after a restart the server's iopub
    /// subscription reconnects later than shell, so a reply alone does not mean the kernel's
    /// output will reach us (the same check jupyter_server's own "nudge" makes).
    pub(crate) fn wait_ready(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let msg = Outgoing::request(
                "shell",
                "kernel_info_request",
                self.conn.session_id(),
                serde_json::json!({}),
            );
            let msg_id = msg.msg_id.clone();
            let rx = self.conn.send(msg)?;
            let attempt_until = (Instant::now() + Duration::from_millis(500)).min(deadline);
            let (mut replied, mut idle) = (false, false);
            loop {
                match delivery::next(&rx, Some(attempt_until)) {
                    Ok(Delivery::Message(m)) => {
                        replied |= m.msg_type == "kernel_info_reply";
                        idle |= m.msg_type == "status" && m.content["execution_state"] == "idle";
                        if replied && idle {
                            self.conn.forget(&msg_id);
                            return Ok(());
                        }
                    }
                    Ok(Delivery::Failed(f)) => return Err(f.to_error()),
                    Ok(_) => {}
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => break,
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                        return Err(Error::Closed);
                    }
                }
            }
            self.conn.forget(&msg_id);
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    phase: TimeoutPhase::KernelReply,
                    after: timeout,
                });
            }
        }
    }

    /// Runs code silently (no history, no execute_input) and returns the reply's content. Used
    /// for set-up the user should not see, such as env vars and the working directory; an
    /// exception in it is [`Error::KernelSetup`]. Survives reconnects like any execution.
    pub(crate) fn run_silent(
        self: &Arc<Self>,
        code: &str,
        timeout: Duration,
    ) -> Result<Value, Error> {
        let content = self.run_silent_reply(code, timeout)?;
        match SilentError::of(&content) {
            Some(e) => Err(Error::KernelSetup {
                kernel_id: self.id.clone(),
                message: e.to_string(),
            }),
            None => Ok(content),
        }
    }

    /// [`Kernel::run_silent`], with an exception left in the reply for the caller to map.
    pub(crate) fn run_silent_reply(
        self: &Arc<Self>,
        code: &str,
        timeout: Duration,
    ) -> Result<Value, Error> {
        let request = Outgoing::execute(self.conn.session_id(), code, true);
        finish_silent(&mut Driver::send_until_end(self.clone(), request)?, timeout)
    }

    /// Waits for the cell that restores a per-execution env var's previous value. When its end
    /// cannot be confirmed, it is kept and runs again before the next execution (it can run
    /// twice safely), so a variable never outlives its execution unnoticed.
    pub(crate) fn confirm_restore(&self, mut restore: Driver, code: &str, timeout: Duration) {
        let outcome = finish_silent(&mut restore, timeout);
        let ok = match &outcome {
            Ok(reply) => SilentError::of(reply).is_none(),
            Err(_) => false,
        };
        if !ok {
            log::warn!(
                "kernel {}: restoring env vars after an execution failed ({}); retrying before \
                 the next execution",
                self.id,
                match outcome {
                    Ok(reply) => SilentError::of(&reply)
                        .map(|e| e.to_string())
                        .unwrap_or_default(),
                    Err(e) => e.to_string(),
                }
            );
            *lock(&self.pending_restore) = Some(code.to_string());
        }
    }

    /// Runs a restore left over from an earlier execution, if there is one.
    pub(crate) fn finish_pending_restore(self: &Arc<Self>, timeout: Duration) -> Result<(), Error> {
        let Some(code) = lock(&self.pending_restore).take() else {
            return Ok(());
        };
        if let Err(e) = self.run_silent(&code, timeout) {
            *lock(&self.pending_restore) = Some(code);
            return Err(e);
        }
        Ok(())
    }
}

/// A client of `endpoint` whose calls end within `limit` (interrupts, teardown), with the
/// timeouts and reconnect policy of `config` cut to it.
pub(crate) fn http_within(endpoint: &Endpoint, config: &ConnectionConfig, limit: Duration) -> Http {
    let limit = limit.max(Duration::from_millis(1));
    let timeouts = config
        .timeouts
        .clone()
        .request(limit)
        .connect(config.timeouts.connect.min(limit));
    Http::new(endpoint.clone(), &timeouts).with_retry(config.reconnect.clone().max_elapsed(limit))
}

/// Waits up to `timeout` for a silent cell sent with `driver` to finish; returns its reply.
pub(crate) fn finish_silent(driver: &mut Driver, timeout: Duration) -> Result<Value, Error> {
    driver
        .finish(Some(Instant::now() + timeout))
        .map_err(|stop| {
            stop.into_error(
                &driver.kernel().id,
                (TimeoutPhase::KernelReply, timeout),
                Execution::default,
            )
        })
}

/// The exception a silent execution raised, from its reply.
pub(crate) struct SilentError<'a> {
    pub(crate) name: &'a str,
    pub(crate) value: &'a str,
}

impl<'a> SilentError<'a> {
    pub(crate) fn of(reply: &'a Value) -> Option<SilentError<'a>> {
        (reply["status"] == "error").then(|| SilentError {
            name: reply["ename"].as_str().unwrap_or("error"),
            value: reply["evalue"].as_str().unwrap_or(""),
        })
    }
}

impl std::fmt::Display for SilentError<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.value)
    }
}
