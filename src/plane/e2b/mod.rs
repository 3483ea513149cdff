//! E2B's public data plane: envd (port 49983: files over HTTP `/files` and
//! `filesystem.Filesystem`, commands and terminals over `process.Process`, health) and the
//! code-interpreter server (port 49999: code and contexts), both reached through E2B's sandbox
//! proxy with the sandbox's routing headers, envd's access token and, for a private sandbox,
//! the traffic token. Facts from E2B's specs (`spec/envd/*`, vendored in `tests/spec/envd`)
//! and SDKs; see the README's table of what travels how.

mod command;
mod connect;
mod files;
mod interpreter;
mod process;
mod record;
mod terminal;
mod version;

use std::time::Duration;

use serde_json::Value;

pub(crate) use command::{CommandSpec, E2bCommand};
pub(crate) use files::{E2bDownload, E2bFiles};
pub(crate) use interpreter::CodeRequest;
pub(crate) use process::ProcessStart;
pub(crate) use terminal::E2bTerminal;
pub(crate) use version::EnvdVersion;

use crate::config::{ReconnectPolicy, Secret, Timeouts};
use crate::error::Error;
use crate::net::{Endpoint, Http, Method};
use connect::{Call, Failure, RpcError};

/// envd's port.
pub(crate) const ENVD_PORT: u16 = 49983;
/// The code-interpreter server's port.
pub(crate) const INTERPRETER_PORT: u16 = 49999;

/// How one sandbox's E2B data plane is reached.
#[derive(Debug, Clone)]
pub(crate) struct Access {
    pub(crate) sandbox_id: String,
    /// `https://{port}-{id}.{domain}`-style base URL for a port.
    pub(crate) urls: [(u16, String); 2],
    /// Headers every request carries (routing, traffic token).
    pub(crate) headers: Vec<(String, Secret)>,
    pub(crate) envd_token: Option<Secret>,
    pub(crate) envd_version: EnvdVersion,
    pub(crate) tls: crate::net::tls::TlsRoots,
    /// How idempotent calls are retried when the link breaks.
    pub(crate) reconnect: ReconnectPolicy,
}

/// One sandbox's E2B data plane.
#[derive(Debug)]
pub(crate) struct E2bPlane {
    sandbox_id: String,
    envd: Http,
    interpreter: Http,
    /// The same clients bounded by the close deadline, for health probes.
    envd_probe: Http,
    interpreter_probe: Http,
    version: EnvdVersion,
    timeouts: Timeouts,
    reconnect: ReconnectPolicy,
}

impl E2bPlane {
    /// `finish` completes each server's endpoint (the backend's judge of "sandbox not found").
    pub(crate) fn new(
        access: Access,
        timeouts: &Timeouts,
        finish: impl Fn(Endpoint) -> Endpoint,
    ) -> Result<E2bPlane, Error> {
        let http = |port: u16, timeouts: &Timeouts| -> Result<Http, Error> {
            let url = &access
                .urls
                .iter()
                .find(|(p, _)| *p == port)
                .expect("a URL per port")
                .1;
            let mut endpoint = Endpoint::new(url)?
                .with_tls(access.tls.clone())
                .with_header("E2b-Sandbox-Id", Secret::new(access.sandbox_id.as_str()))
                .with_header("E2b-Sandbox-Port", Secret::new(port.to_string()));
            for (name, value) in &access.headers {
                endpoint = endpoint.with_header(name, value.clone());
            }
            if let Some(token) = &access.envd_token {
                endpoint = endpoint.with_header("X-Access-Token", token.clone());
            }
            Ok(Http::new(finish(endpoint), timeouts))
        };
        let probing = timeouts
            .clone()
            .request(timeouts.close)
            .connect(timeouts.connect.min(timeouts.close));
        Ok(E2bPlane {
            envd: http(ENVD_PORT, timeouts)?,
            interpreter: http(INTERPRETER_PORT, timeouts)?,
            envd_probe: http(ENVD_PORT, &probing)?,
            interpreter_probe: http(INTERPRETER_PORT, &probing)?,
            sandbox_id: access.sandbox_id,
            version: access.envd_version,
            timeouts: timeouts.clone(),
            reconnect: access.reconnect,
        })
    }

    /// envd's `GET /health` (204 while it runs): `Ok(true)` running, `Ok(false)` when the proxy
    /// says the sandbox is gone, `Err` when neither could be told.
    pub(crate) fn health(&self) -> Result<bool, Error> {
        let resp = self.envd_probe.send_once(Method::Get, "/health", None)?;
        if resp.sandbox_gone().is_some() {
            return Ok(false);
        }
        if resp.is_success() {
            return Ok(true);
        }
        Err(resp.into_error())
    }

    /// Whether an answer from envd or the code-interpreter server shows that both are there:
    /// the probe that tells this plane from a template that serves only Jupyter.
    pub(crate) fn answers(&self) -> Result<bool, Error> {
        let resp = self
            .interpreter_probe
            .send_once(Method::Get, "/health", None)?;
        if let Some(sandbox_id) = resp.sandbox_gone() {
            return Err(self.interpreter_probe.endpoint().gone_error(&sandbox_id));
        }
        Ok(resp.is_success() && self.health().unwrap_or(false))
    }

    /// A unary envd call acting as `user`. A call whose repetition changes nothing
    /// ([`IDEMPOTENT`]) is sent again when the link broke under it, under the sandbox's
    /// reconnect policy; any other is sent once, since envd may have acted on it.
    fn call(&self, method: &str, user: Option<&str>, body: &Value) -> Result<Value, Failure> {
        let call = Call {
            http: &self.envd,
            method,
            user: self.version.user_for(user),
        };
        let mut retry = IDEMPOTENT
            .contains(&method)
            .then(|| crate::net::Attempts::new(&self.reconnect));
        loop {
            match call.unary(body, self.timeouts.request) {
                Err(Failure::Other(e)) if link_failure(&e) => {
                    let Some(next) = retry.as_mut().and_then(crate::net::Attempts::failed) else {
                        return Err(self.typed(Failure::Other(e)));
                    };
                    log::debug!("{method} failed ({e}); sending it again");
                    std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
                }
                outcome => return outcome.map_err(|f| self.typed(f)),
            }
        }
    }

    /// A link error turned into [`E2bPlane::stopped`] when envd's health says the sandbox is
    /// not running.
    fn typed(&self, failure: Failure) -> Failure {
        match failure {
            Failure::Other(e) if link_failure(&e) => match self.health() {
                Ok(false) => Failure::Other(self.stopped()),
                _ => Failure::Other(e),
            },
            other => other,
        }
    }

    /// The error for a sandbox the proxy no longer routes to: [`Error::SandboxPaused`] when the
    /// control plane says it is paused, else [`Error::SandboxNotFound`] (killed or timed out).
    fn stopped(&self) -> Error {
        self.envd.endpoint().gone_error(&self.sandbox_id)
    }

    /// The error for a failure with no more specific meaning.
    fn plain(&self, failure: Failure, what: &str) -> Error {
        match failure {
            Failure::Other(e) => e,
            Failure::Rpc(r) => rpc_error(r, what),
        }
    }
}

/// envd calls that may be sent twice: sending one again changes nothing.
const IDEMPOTENT: &[&str] = &[
    "filesystem.Filesystem/Stat",
    "filesystem.Filesystem/ListDir",
    "filesystem.Filesystem/Remove",
    "process.Process/List",
    "process.Process/Update",
];

/// A transport failure or a lost connection: the kind after which the sandbox may be gone.
fn link_failure(e: &Error) -> bool {
    matches!(e, Error::Transport { .. } | Error::ConnectionLost { .. })
}

/// A Connect error with no more specific meaning for the call.
fn rpc_error(r: RpcError, what: &str) -> Error {
    match r.code.as_str() {
        "unauthenticated" => Error::Authentication {
            status: 401,
            endpoint: what.to_string(),
        },
        "invalid_argument" | "failed_precondition" | "out_of_range" => {
            Error::InvalidArgument(format!("{what}: {}", r.message))
        }
        "deadline_exceeded" => Error::Timeout {
            phase: crate::error::TimeoutPhase::Request,
            after: Duration::ZERO,
        },
        code => Error::Http {
            status: http_status(code),
            endpoint: what.to_string(),
            message: format!("{code}: {}", r.message),
        },
    }
}

/// The HTTP status Connect's spec pairs with a code, for `Error::Http`.
fn http_status(code: &str) -> u16 {
    match code {
        "canceled" => 499,
        "invalid_argument" | "failed_precondition" | "out_of_range" => 400,
        "unauthenticated" => 401,
        "permission_denied" => 403,
        "not_found" => 404,
        "already_exists" | "aborted" => 409,
        "resource_exhausted" => 429,
        "unimplemented" => 501,
        "unavailable" => 503,
        "deadline_exceeded" => 504,
        _ => 500,
    }
}
