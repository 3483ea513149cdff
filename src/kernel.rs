//! One kernel the SDK started, with its connection: the unit a context wraps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::backend::Backend;
use crate::config::ConnectionConfig;
use crate::error::{Error, TimeoutPhase};
use crate::http::Http;
use crate::jupyter::connection::Connection;
use crate::jupyter::delivery::Delivery;
use crate::jupyter::rest;
use crate::jupyter::state::ConnectionState;
use crate::jupyter::transport::Target;
use crate::jupyter::wire::Outgoing;

#[derive(Debug)]
pub(crate) struct Kernel {
    pub(crate) id: String,
    pub(crate) language: String,
    pub(crate) cwd: Option<String>,
    pub(crate) conn: Connection,
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
                let _ = rest::shutdown_kernel(http, &model.id);
                return Err(e);
            }
        };
        Ok(Kernel {
            id: model.id,
            language: language.to_string(),
            cwd: None,
            conn,
        })
    }

    pub(crate) fn state(&self) -> ConnectionState {
        self.conn.state()
    }

    /// Runs code silently (no history, no execute_input) and returns the reply's content.
    /// Used for set-up the user should not see, such as env vars and the working directory.
    pub(crate) fn run_silent(&self, code: &str, timeout: Duration) -> Result<Value, Error> {
        let msg = Outgoing::execute(self.conn.session_id(), code, true);
        let msg_id = msg.msg_id.clone();
        let rx = self.conn.send(msg)?;
        let deadline = Instant::now() + timeout;
        let mut reply = None;
        let mut idle = false;
        loop {
            match rx.recv_deadline(deadline) {
                Ok(Delivery::Message(m)) => {
                    if m.msg_type == "execute_reply" {
                        reply = Some(m.content);
                    } else if m.msg_type == "status" && m.content["execution_state"] == "idle" {
                        idle = true;
                    }
                    if idle && let Some(content) = reply.take() {
                        if content["status"] == "error" {
                            return Err(Error::protocol(format!(
                                "set-up code failed in kernel {}: {}: {}",
                                self.id,
                                content["ename"].as_str().unwrap_or("error"),
                                content["evalue"].as_str().unwrap_or("")
                            )));
                        }
                        return Ok(content);
                    }
                }
                Ok(Delivery::Failed(f)) => return Err(f.to_error()),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    self.conn.forget(&msg_id);
                    return Err(Error::Timeout {
                        phase: TimeoutPhase::KernelReply,
                        after: timeout,
                    });
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    return Err(self
                        .conn
                        .failure()
                        .map(|f| f.to_error())
                        .unwrap_or(Error::Closed));
                }
            }
        }
    }
}
