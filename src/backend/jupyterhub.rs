//! A user's server on JupyterHub: found through the Hub's REST API, started there when it is
//! not running (waiting out a pending spawn within the start deadline), then driven through
//! the Hub's proxy at `/user/{name}/` like any Jupyter server, with the same API token.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::backend::jupyter::host_of;
use crate::backend::{Backend, Liveness, SandboxProbe};
use crate::config::{ReconnectPolicy, Secret, Timeouts};
use crate::error::{Error, TimeoutPhase};
use crate::net::tls::TlsRoots;
use crate::net::{Endpoint, Http, Method, encode_component, link_broke};

/// Which of a user's JupyterHub servers a sandbox uses, and what closing it does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JupyterHubOptions {
    pub(crate) server_name: String,
    pub(crate) stop_on_close: bool,
}

impl JupyterHubOptions {
    /// The defaults: the user's default server, left running on close.
    pub fn new() -> Self {
        Self::default()
    }

    /// A named server of the user (JupyterHub's `allow_named_servers`), started by that name
    /// when it is not running. Defaults to `""`, the user's default server.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = name.into();
        self
    }

    /// Whether closing the sandbox stops the user's server through the Hub (its kernels and
    /// terminals go with it). Defaults to `false`: the server keeps running, as a user's
    /// JupyterLab would, and only the kernels this sandbox started are shut down.
    ///
    /// The Hub answers a stop once the server is gone, or with "under way" after its
    /// `slow_stop_timeout` (10 s by default). A close budget ([`Timeouts::close`], 5 s by
    /// default) shorter than the stop makes `close` return [`Error::Timeout`] while the Hub
    /// goes on stopping the server.
    ///
    /// [`Timeouts::close`]: crate::Timeouts::close
    /// [`Error::Timeout`]: crate::Error::Timeout
    pub fn stop_on_close(mut self, stop: bool) -> Self {
        self.stop_on_close = stop;
        self
    }
}

/// How long a probe's answer is reused: every connection of a sandbox may ask at once.
const PROBE_REUSE: Duration = Duration::from_secs(1);
/// Bound on one probe: it runs on a connection's own thread while that connection is down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Polling a pending spawn: first after this, then less often, up to [`POLL_MAX`].
const POLL_FIRST: Duration = Duration::from_millis(100);
const POLL_MAX: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct JupyterHubBackend {
    /// `user` or `user/server`: JupyterHub's own name for the server.
    id: String,
    hub: Http,
    /// `/hub/api/users/{user}`.
    user_path: String,
    /// `/hub/api/users/{user}/server` or `.../servers/{name}`.
    server_path: String,
    server_name: String,
    endpoint: Endpoint,
    stop_on_close: bool,
    close_timeout: Duration,
    last_probe: Mutex<Option<(Instant, Liveness)>>,
}

/// What the Hub says of one server.
#[derive(Debug, PartialEq)]
enum ServerState {
    /// Ready, at this path (or full URL when the Hub knows its public URL).
    Ready(String),
    /// A spawn or stop under way.
    Pending(String),
    /// Not running.
    Stopped,
}

impl JupyterHubBackend {
    /// Finds the user's server, starts it when it does not run, and waits until it is ready.
    pub(crate) fn connect(
        hub_url: &str,
        user: &str,
        token: &Secret,
        options: &JupyterHubOptions,
        timeouts: &Timeouts,
        tls: TlsRoots,
    ) -> Result<Self, Error> {
        if user.is_empty() {
            return Err(Error::InvalidArgument(
                "JupyterHub user name is empty".into(),
            ));
        }
        let base = hub_base(hub_url);
        let hub_endpoint = Endpoint::new(base)?
            .with_jupyter_token(token)
            .with_tls(tls.clone());
        let hub = Http::new(hub_endpoint.clone(), timeouts);
        let user_path = format!("/hub/api/users/{}", encode_component(user));
        let server_path = match options.server_name.as_str() {
            "" => format!("{user_path}/server"),
            name => format!("{user_path}/servers/{}", encode_component(name)),
        };
        let id = match options.server_name.as_str() {
            "" => user.to_string(),
            name => format!("{user}/{name}"),
        };
        let mut backend = JupyterHubBackend {
            id,
            hub,
            user_path,
            server_path,
            server_name: options.server_name.clone(),
            endpoint: hub_endpoint,
            stop_on_close: options.stop_on_close,
            close_timeout: timeouts.close,
            last_probe: Mutex::new(None),
        };
        let location = backend.start(timeouts.sandbox_start)?;
        let url = server_url(base, &location);
        backend.endpoint = Endpoint::new(&url)?.with_jupyter_token(token).with_tls(tls);
        log::debug!("using JupyterHub server {} at {url}", backend.id);
        Ok(backend)
    }

    /// Starts the server unless it runs, and waits for it within `budget`; returns where it
    /// is.
    fn start(&self, budget: Duration) -> Result<String, Error> {
        let started = Instant::now();
        let left = || budget.saturating_sub(started.elapsed());
        let mut requested = false;
        // What the Hub answered a start request that it failed, for the error if the model
        // then shows no spawn either (JupyterHub 6.1 answers 500 to a spawn that outlives its
        // slow_spawn_timeout, though the spawn goes on).
        let mut refused: Option<String> = None;
        let mut poll = POLL_FIRST;
        // A request cut short by the start deadline is the start's timeout, not its own.
        let past_deadline = |e: Error| match e {
            Error::Timeout { .. } if left().is_zero() => Error::Timeout {
                phase: TimeoutPhase::SandboxStart,
                after: budget,
            },
            e => e,
        };
        loop {
            match self.state(left()).map_err(past_deadline)? {
                ServerState::Ready(location) => return Ok(location),
                ServerState::Stopped if requested => {
                    return Err(self.spawn_failed(left(), refused));
                }
                ServerState::Stopped => {
                    log::debug!("starting JupyterHub server {}", self.id);
                    refused = self.request_start(left()).map_err(past_deadline)?;
                    requested = true;
                    continue;
                }
                ServerState::Pending(what) => {
                    log::trace!("JupyterHub server {}: pending {what}", self.id);
                }
            }
            if left() < poll {
                return Err(Error::Timeout {
                    phase: TimeoutPhase::SandboxStart,
                    after: budget,
                });
            }
            std::thread::sleep(poll);
            poll = (poll * 2).min(POLL_MAX);
        }
    }

    /// The Hub's view of the server.
    fn state(&self, budget: Duration) -> Result<ServerState, Error> {
        let resp = self.send(Method::Get, &self.user_path, budget)?;
        if resp.status == 404 {
            return Err(Error::InvalidArgument(format!(
                "JupyterHub has no user {:?} that this token may see",
                self.id.split('/').next().unwrap_or_default()
            )));
        }
        let model: Value = resp.error_for_status()?.json()?;
        Ok(server_state(&model, &self.server_name))
    }

    /// `POST` to start the server. `Ok(Some(message))` when the Hub answered with a failure
    /// that may still have left a spawn under way (the model says which).
    fn request_start(&self, budget: Duration) -> Result<Option<String>, Error> {
        let resp = self.send(Method::Post, &self.server_path, budget)?;
        match resp.status {
            200..=299 => Ok(None),
            401 | 403 | 404 => Err(resp.into_error()),
            // 400 says "already running" or "pending" (which the next look at the model sorts
            // out) as well as "named servers are not enabled".
            _ => Ok(Some(resp.message())),
        }
    }

    /// The error for a spawn that ended without a server: the Hub's own message, from the
    /// spawn's progress events (which end with it at once for a finished spawn).
    fn spawn_failed(&self, budget: Duration, refused: Option<String>) -> Error {
        let path = format!("{}/progress", self.server_path);
        let from_progress = self
            .send(Method::Get, &path, budget.min(PROBE_TIMEOUT))
            .ok()
            .filter(|r| r.is_success())
            .and_then(|r| failure_message(&String::from_utf8_lossy(&r.body)));
        Error::SpawnFailed {
            server: self.id.clone(),
            message: from_progress
                .or(refused)
                .unwrap_or_else(|| "the server stopped before it was ready".into()),
        }
    }

    /// One request to the Hub within `budget`, sent again while the link breaks under it.
    fn send(
        &self,
        method: Method,
        path: &str,
        budget: Duration,
    ) -> Result<crate::net::Response, Error> {
        if budget.is_zero() {
            return Err(Error::Timeout {
                phase: TimeoutPhase::SandboxStart,
                after: budget,
            });
        }
        let retry = method == Method::Get;
        self.hub.send_retrying(
            method,
            path,
            None,
            &ReconnectPolicy::default(),
            Some(budget.min(self.hub.request_timeout())),
            |outcome| retry && matches!(outcome, Err(e) if link_broke(e)),
        )
    }

    /// `Sandbox::get_host`: the host of the Hub's proxy with `port`.
    pub(crate) fn host(&self, port: u16) -> String {
        host_of(self.endpoint.base(), port)
    }
}

impl SandboxProbe for JupyterHubBackend {
    fn sandbox_id(&self) -> &str {
        &self.id
    }

    /// Asks the Hub: a server it no longer lists as running is gone (stopped by its user, an
    /// admin or the idle culler). A Hub that does not answer leaves the question open.
    fn probe(&self) -> Liveness {
        let mut last = self.last_probe.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, liveness)) = *last
            && at.elapsed() < PROBE_REUSE
        {
            return liveness;
        }
        let liveness = match self.state(PROBE_TIMEOUT) {
            Ok(ServerState::Ready(_)) => Liveness::Alive,
            Ok(ServerState::Stopped) => Liveness::Gone,
            Ok(ServerState::Pending(_)) => Liveness::Unknown,
            Err(e) => {
                log::debug!(
                    "JupyterHub server {}: probe failed: {}",
                    self.id,
                    e.report()
                );
                Liveness::Unknown
            }
        };
        *last = Some((Instant::now(), liveness));
        liveness
    }
}

impl Backend for JupyterHubBackend {
    fn jupyter(&self) -> &Endpoint {
        &self.endpoint
    }

    fn owns_server(&self) -> bool {
        self.stop_on_close
    }

    fn shutdown(&self) -> Result<(), Error> {
        if !self.stop_on_close {
            return Ok(());
        }
        log::debug!("stopping JupyterHub server {}", self.id);
        let resp = self.hub.send_retrying(
            Method::Delete,
            &self.server_path,
            None,
            &ReconnectPolicy::default(),
            Some(self.close_timeout),
            |_| false,
        )?;
        // 202: the stop is under way; 204: stopped; 400: it was not running.
        match resp.status {
            200..=299 | 400 => Ok(()),
            _ => Err(resp.into_error()),
        }
    }
}

/// The Hub's public base URL from what a user may paste: the Hub's address, or any page under
/// its `/hub/` (`https://hub.example.org/hub/home`); JupyterHub's `base_url` prefix is kept.
fn hub_base(url: &str) -> &str {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    let url = url.trim_end_matches('/');
    let path_start = url
        .find("://")
        .map(|i| i + 3)
        .and_then(|i| url[i..].find('/').map(|p| p + i));
    let Some(path_start) = path_start else {
        return url;
    };
    let path = &url[path_start..];
    if let Some(at) = path.find("/hub/") {
        return &url[..path_start + at];
    }
    match path.strip_suffix("/hub") {
        Some(rest) => &url[..path_start + rest.len()],
        None => url,
    }
}

/// The user server's URL: a full URL as the Hub gives it, or its path on the Hub's origin.
fn server_url(hub_base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.trim_end_matches('/').to_string();
    }
    let origin_end = hub_base
        .find("://")
        .map(|i| i + 3)
        .and_then(|i| hub_base[i..].find('/').map(|p| p + i))
        .unwrap_or(hub_base.len());
    format!(
        "{}{}",
        &hub_base[..origin_end],
        location.trim_end_matches('/')
    )
}

/// The state of server `name` in a user model (`GET /hub/api/users/{name}`).
fn server_state(model: &Value, name: &str) -> ServerState {
    let Some(server) = model.get("servers").and_then(|s| s.get(name)) else {
        return ServerState::Stopped;
    };
    if let Some(pending) = server.get("pending").and_then(Value::as_str) {
        return ServerState::Pending(pending.to_string());
    }
    if server.get("ready").and_then(Value::as_bool) == Some(true) {
        let location = server
            .get("full_url")
            .and_then(Value::as_str)
            .or_else(|| server.get("url").and_then(Value::as_str));
        if let Some(location) = location {
            return ServerState::Ready(location.to_string());
        }
    }
    ServerState::Stopped
}

/// The message of the `failed` event in a spawn's progress stream (server-sent events).
fn failure_message(events: &str) -> Option<String> {
    events
        .lines()
        .rev()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .filter(|e| e.get("failed").and_then(Value::as_bool) == Some(true))
        .find_map(|e| e.get("message").and_then(Value::as_str).map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_hub_base_comes_from_any_hub_page() {
        assert_eq!(hub_base("http://127.0.0.1:8000"), "http://127.0.0.1:8000");
        assert_eq!(hub_base("http://127.0.0.1:8000/"), "http://127.0.0.1:8000");
        assert_eq!(hub_base("https://h.org/hub/home"), "https://h.org");
        assert_eq!(hub_base("https://h.org/hub/"), "https://h.org");
        assert_eq!(
            hub_base("https://h.org/jupyter/hub"),
            "https://h.org/jupyter"
        );
        assert_eq!(
            hub_base("https://h.org/jupyter/?x=1"),
            "https://h.org/jupyter"
        );
    }

    #[test]
    fn the_server_url_is_on_the_hub_origin() {
        assert_eq!(
            server_url("https://h.org/jupyter", "/jupyter/user/a%40b/"),
            "https://h.org/jupyter/user/a%40b"
        );
        assert_eq!(
            server_url("http://127.0.0.1:8000", "http://other:1/user/a/"),
            "http://other:1/user/a"
        );
    }

    #[test]
    fn server_states_from_the_user_model() {
        let model = json!({"servers": {
            "": {"ready": true, "pending": null, "url": "/user/a/", "full_url": null},
            "gpu": {"ready": false, "pending": "spawn", "url": "/user/a/gpu/"},
            "old": {"ready": false, "pending": null, "url": "/user/a/old/"},
        }});
        assert_eq!(
            server_state(&model, ""),
            ServerState::Ready("/user/a/".into())
        );
        assert_eq!(
            server_state(&model, "gpu"),
            ServerState::Pending("spawn".into())
        );
        assert_eq!(server_state(&model, "old"), ServerState::Stopped);
        assert_eq!(server_state(&model, "none"), ServerState::Stopped);
        assert_eq!(server_state(&json!({}), ""), ServerState::Stopped);
    }

    #[test]
    fn the_failure_comes_from_the_last_failed_event() {
        let events = "data: {\"progress\": 0, \"message\": \"Server requested\"}\n\n\n\
            data: {\"progress\": 100, \"failed\": true, \"message\": \"Spawn failed: boom\"}\n\n";
        assert_eq!(
            failure_message(events).as_deref(),
            Some("Spawn failed: boom")
        );
        assert_eq!(failure_message("data: {\"ready\": true}\n\n"), None);
    }
}
