//! The E2B control-plane calls this SDK makes, as in E2B's OpenAPI spec and SDK 2.63.

use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::Error;
use crate::net::{Method, Response, encode_component};

use super::config::E2bConfig;
use super::control_http::{ControlHttp, IDEMPOTENCY_KEY_HEADER};
use super::lifecycle::{ConnectOptions, ForkOptions, PauseOptions};
use super::metrics::{MetricsQuery, SandboxMetric};
use super::models::{
    ListQuery, NewSandbox, RefreshBody, SandboxAccess, SandboxInfo, SandboxPage, TimeoutBody,
    whole_seconds,
};
use super::network::NetworkUpdate;
use super::options::E2bOptions;
use super::pager::Paginator;
use super::retry::Replay;
use super::snapshots::{SnapshotInfo, SnapshotOptions, SnapshotQuery};

/// Longest keep-alive `refresh` accepts (the spec's maximum).
const MAX_REFRESH: Duration = Duration::from_secs(3600);

/// Pages [`E2bClient::list_all`] follows before it stops with an error.
const MAX_PAGES: usize = 10_000;

/// The API's `error_code` for a paused sandbox whose guest agent did not answer at pause time.
const GUEST_UNRESPONSIVE_CODE: &str = "sandbox_snapshot_guest_agent_unresponsive";

/// A blocking client for the E2B control plane (`https://api.{domain}`): create, connect to
/// (resuming), pause, snapshot, fork, look up, list, extend, measure and kill sandboxes.
///
/// Cheap to clone; clones share one connection pool. Calls are retried under E2B's policy
/// ([`E2bConfig::max_attempts`]) within [`E2bConfig::request_timeout`].
///
/// Errors: 401/403 → [`Error::Authentication`], 404 on a sandbox → [`Error::SandboxNotFound`],
/// 429 → [`Error::RateLimited`], 503 → [`Error::ServiceBusy`], 507 →
/// [`Error::NotEnoughSpace`], other statuses → [`Error::Http`], a missed deadline →
/// [`Error::Timeout`], an unreadable body → [`Error::Protocol`].
#[derive(Debug, Clone)]
pub struct E2bClient {
    http: ControlHttp,
}

impl E2bClient {
    /// A client for `config`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when there is no API key (outside debug mode) or the API URL is
    /// not http(s).
    pub fn new(config: &E2bConfig) -> Result<E2bClient, Error> {
        Ok(E2bClient {
            http: ControlHttp::new(config)?,
        })
    }

    /// The same client, each call bounded by `budget` in total, retries included.
    pub(crate) fn bounded(&self, budget: Duration) -> E2bClient {
        E2bClient {
            http: self.http.bounded(budget),
        }
    }

    /// The control-plane base URL this client talks to.
    pub fn api_url(&self) -> &str {
        self.http.base()
    }

    /// Creates a sandbox (`POST /v2/sandboxes`). It lives for [`E2bOptions::lifetime`] unless
    /// extended, paused or killed; the caller owns it. The request carries an idempotency key
    /// ([`E2bOptions::idempotency_key`], else a new one), so its retries cannot create a
    /// second sandbox.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for bad options; [`Error::Authentication`] for a rejected
    /// key; [`Error::RateLimited`] when E2B refuses more sandboxes; [`Error::ServiceBusy`]
    /// when it has no capacity; [`Error::Http`] for other refusals; [`Error::Transport`] or
    /// [`Error::Timeout`] when the control plane cannot be reached.
    pub fn create(&self, options: &E2bOptions) -> Result<SandboxAccess, Error> {
        let body = to_value(&NewSandbox::from_options(options)?)?;
        let key = options.create_key()?;
        let r = self.http.send_with(
            Method::Post,
            "/v2/sandboxes",
            Some(&body),
            &[(IDEMPOTENCY_KEY_HEADER, &key)],
            Replay::Keyed,
        )?;
        let access: SandboxAccess = ok_json(r, None)?;
        log::debug!(
            "created E2B sandbox {} from template {}",
            access.sandbox_id,
            options.template
        );
        Ok(access)
    }

    /// Connects to an existing sandbox (`POST /v2/sandboxes/{id}/connect`), resuming it if it
    /// is paused (as [`ConnectOptions::on_resume`] says), and makes sure it lives at least
    /// [`ConnectOptions::lifetime`] more (a longer remaining lifetime is kept). Returns what
    /// it takes to reach it.
    ///
    /// # Errors
    ///
    /// [`Error::SandboxNotFound`] for an unknown or killed sandbox;
    /// [`Error::GuestUnresponsive`] for one that must be resumed with
    /// [`OnResume::Reboot`](crate::e2b::OnResume::Reboot); otherwise as for [`E2bClient::create`].
    pub fn connect(
        &self,
        sandbox_id: &str,
        options: &ConnectOptions,
    ) -> Result<SandboxAccess, Error> {
        let body = to_value(&options.body()?)?;
        let path = format!("/v2{}/connect", sandbox_path(sandbox_id)?);
        // Connecting twice is harmless: the second finds it running and only extends.
        let r = self
            .http
            .send(Method::Post, &path, Some(&body), Replay::Idempotent)?;
        let access: SandboxAccess = ok_json(r, Some(sandbox_id))?;
        log::debug!("connected to E2B sandbox {}", access.sandbox_id);
        Ok(access)
    }

    /// Pauses a sandbox (`POST /sandboxes/{id}/pause`): `Ok(true)` when this call paused it,
    /// `Ok(false)` when it was paused already (E2B's answer 409, taken as success as E2B's SDK
    /// does). [`E2bClient::connect`] resumes it.
    ///
    /// # Errors
    ///
    /// [`Error::SandboxNotFound`] for an unknown or killed sandbox; [`Error::ServiceBusy`] for
    /// a [strict](PauseOptions::strict) pause whose guest does not answer (the sandbox keeps
    /// running); otherwise as for [`E2bClient::create`].
    pub fn pause(&self, sandbox_id: &str, options: &PauseOptions) -> Result<bool, Error> {
        let body = to_value(&options.body()?)?;
        let path = format!("{}/pause", sandbox_path(sandbox_id)?);
        // A second pause finds it paused, which is the outcome asked for.
        let r = self
            .http
            .send(Method::Post, &path, Some(&body), Replay::Idempotent)?;
        if r.status == 409 {
            log::debug!("E2B sandbox {sandbox_id} was paused already");
            return Ok(false);
        }
        ok_empty(r, sandbox_id)?;
        log::debug!("paused E2B sandbox {sandbox_id}");
        Ok(true)
    }

    /// Takes a persistent snapshot of a sandbox (`POST /sandboxes/{id}/snapshots`); the sandbox
    /// is paused while it is taken and keeps running after. Create sandboxes from it with its
    /// id as the template. Never sent twice.
    ///
    /// # Errors
    ///
    /// [`Error::SandboxNotFound`] for an unknown or killed sandbox; [`Error::Http`] 400 or 409
    /// when a file-system-only snapshot is not available; otherwise as for
    /// [`E2bClient::create`].
    pub fn create_snapshot(
        &self,
        sandbox_id: &str,
        options: &SnapshotOptions,
    ) -> Result<SnapshotInfo, Error> {
        let body = to_value(&options.body()?)?;
        let path = format!("{}/snapshots", sandbox_path(sandbox_id)?);
        let r = self
            .http
            .send(Method::Post, &path, Some(&body), Replay::Never)?;
        let snapshot: SnapshotInfo = ok_json(r, Some(sandbox_id))?;
        log::debug!(
            "took snapshot {} of E2B sandbox {sandbox_id}",
            snapshot.snapshot_id
        );
        Ok(snapshot)
    }

    /// The team's snapshots matching `query` (`GET /snapshots`), page after page as they are
    /// iterated.
    pub fn list_snapshots(&self, query: &SnapshotQuery) -> Paginator<SnapshotInfo> {
        let client = self.clone();
        let query = query.clone();
        Paginator::new(query.next_token.clone(), move |token| {
            let path = format!("/snapshots{}", query.to_query(token));
            let r = client
                .http
                .send(Method::Get, &path, None, Replay::Idempotent)?;
            let next = next_token(&r);
            Ok((ok_json(r, None)?, next))
        })
    }

    /// Deletes a snapshot (`DELETE /templates/{id}`, as E2B's SDK does: a snapshot is a
    /// template). `Ok(false)` when it did not exist.
    ///
    /// # Errors
    ///
    /// As for [`E2bClient::create`] (an unknown snapshot is not an error).
    pub fn delete_snapshot(&self, snapshot_id: &str) -> Result<bool, Error> {
        if snapshot_id.is_empty() {
            return Err(Error::InvalidArgument("the snapshot id is empty".into()));
        }
        let path = format!("/templates/{}", encode_component(snapshot_id));
        let r = self
            .http
            .send(Method::Delete, &path, None, Replay::Idempotent)?;
        if r.status == 404 {
            return Ok(false);
        }
        r.error_for_status()?;
        log::debug!("deleted snapshot {snapshot_id}");
        Ok(true)
    }

    /// Forks a running sandbox (`POST /sandboxes/{id}/fork`): it is checkpointed in place
    /// (briefly paused; id and lifetime unchanged) and [`ForkOptions::count`] sandboxes start
    /// from the checkpoint. One result per fork, in order: what it takes to reach it, or why
    /// it did not start (mapped as the API's own errors are). Never sent twice.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a count outside 1 to 20; [`Error::SandboxNotFound`] for
    /// an unknown source; otherwise as for [`E2bClient::create`]. Then no fork was attempted.
    pub fn fork(
        &self,
        sandbox_id: &str,
        options: &ForkOptions,
    ) -> Result<Vec<Result<SandboxAccess, Error>>, Error> {
        let body = to_value(&options.body()?)?;
        let path = format!("{}/fork", sandbox_path(sandbox_id)?);
        let r = self
            .http
            .send(Method::Post, &path, Some(&body), Replay::Never)?;
        let endpoint = r.endpoint.clone();
        let results: Vec<ForkResult> = ok_json(r, Some(sandbox_id))?;
        Ok(results
            .into_iter()
            .map(|result| match result {
                ForkResult {
                    error: Some(e),
                    sandbox: _,
                } => Err(e.into_error(&endpoint)),
                ForkResult {
                    sandbox: Some(access),
                    error: None,
                } => Ok(access),
                ForkResult { .. } => Err(Error::protocol(format!(
                    "{endpoint}: a fork result has neither a sandbox nor an error"
                ))),
            })
            .collect())
    }

    /// Replaces a running sandbox's egress rules (`PUT /sandboxes/{id}/network`): fields left
    /// unset in `update` are cleared.
    ///
    /// # Errors
    ///
    /// [`Error::SandboxNotFound`] for an unknown or killed sandbox; [`Error::Http`] 409 for a
    /// paused one; otherwise as for [`E2bClient::create`].
    pub fn update_network(&self, sandbox_id: &str, update: &NetworkUpdate) -> Result<(), Error> {
        let body = to_value(update)?;
        let path = format!("{}/network", sandbox_path(sandbox_id)?);
        let r = self
            .http
            .send(Method::Put, &path, Some(&body), Replay::Idempotent)?;
        ok_empty(r, sandbox_id)
    }

    /// Looks a sandbox up (`GET /sandboxes/{id}`).
    ///
    /// # Errors
    ///
    /// [`Error::SandboxNotFound`] for an unknown or killed sandbox; otherwise as for
    /// [`E2bClient::create`].
    pub fn get_info(&self, sandbox_id: &str) -> Result<SandboxInfo, Error> {
        let path = sandbox_path(sandbox_id)?;
        let r = self
            .http
            .send(Method::Get, &path, None, Replay::Idempotent)?;
        ok_json(r, Some(sandbox_id))
    }

    /// Samples of a sandbox's resource use (`GET /sandboxes/{id}/metrics`, E2B's
    /// `get_metrics`), as the API returns them: CPU, memory and disk, one sample every few
    /// seconds while it runs.
    ///
    /// # Errors
    ///
    /// [`Error::SandboxNotFound`] for an unknown or killed sandbox; otherwise as for
    /// [`E2bClient::create`].
    pub fn metrics(
        &self,
        sandbox_id: &str,
        query: &MetricsQuery,
    ) -> Result<Vec<SandboxMetric>, Error> {
        let path = format!("{}/metrics{}", sandbox_path(sandbox_id)?, query.to_query());
        let r = self
            .http
            .send(Method::Get, &path, None, Replay::Idempotent)?;
        ok_json(r, Some(sandbox_id))
    }

    /// One page of sandboxes (`GET /v2/sandboxes`). Follow [`SandboxPage::next_token`] with
    /// [`ListQuery::next_token`], or use [`E2bClient::list_all`].
    ///
    /// # Errors
    ///
    /// As for [`E2bClient::create`]; [`Error::Protocol`] for an answer that does not parse.
    pub fn list(&self, query: &ListQuery) -> Result<SandboxPage, Error> {
        let path = format!("/v2/sandboxes{}", query.to_query());
        let r = self
            .http
            .send(Method::Get, &path, None, Replay::Idempotent)?;
        let next_token = next_token(&r);
        let total_running = r.header("x-total-running").and_then(|v| v.parse().ok());
        let sandboxes: Vec<SandboxInfo> = ok_json(r, None)?;
        Ok(SandboxPage {
            sandboxes,
            next_token,
            total_running,
        })
    }

    /// The sandboxes matching `query`, from its `next_token` on, page after page as they are
    /// iterated (E2B's `Sandbox.list` paginator); by default running and paused ones.
    pub fn list_paged(&self, query: &ListQuery) -> Paginator<SandboxInfo> {
        let client = self.clone();
        let query = query.clone();
        Paginator::new(query.next_token.clone(), move |token| {
            let path = format!("/v2/sandboxes{}", query.page_query(token));
            let r = client
                .http
                .send(Method::Get, &path, None, Replay::Idempotent)?;
            let next = next_token(&r);
            Ok((ok_json(r, None)?, next))
        })
    }

    /// Every page of sandboxes matching `query`, from its `next_token` on. Fails with
    /// [`Error::Protocol`] if the server hands out a token twice (it would never end).
    ///
    /// # Errors
    ///
    /// As for [`E2bClient::list`].
    pub fn list_all(&self, query: &ListQuery) -> Result<Vec<SandboxInfo>, Error> {
        let mut query = query.clone();
        let mut all = Vec::new();
        let mut seen = HashSet::new();
        for _ in 0..MAX_PAGES {
            let page = self.list(&query)?;
            all.extend(page.sandboxes);
            match page.next_token {
                None => return Ok(all),
                Some(token) => {
                    if !seen.insert(token.clone()) {
                        return Err(Error::protocol(
                            "the E2B API repeated a paging token while listing sandboxes",
                        ));
                    }
                    query.next_token = Some(token);
                }
            }
        }
        Err(Error::protocol(format!(
            "listing sandboxes did not end after {MAX_PAGES} pages"
        )))
    }

    /// Kills a sandbox (`DELETE /sandboxes/{id}`). `Ok(false)` when it did not exist (any
    /// more), as in E2B's SDKs.
    ///
    /// # Errors
    ///
    /// As for [`E2bClient::create`] (an unknown sandbox is not an error).
    pub fn kill(&self, sandbox_id: &str) -> Result<bool, Error> {
        let path = sandbox_path(sandbox_id)?;
        let r = self
            .http
            .send(Method::Delete, &path, None, Replay::Idempotent)?;
        if r.status == 404 {
            log::debug!("E2B sandbox {sandbox_id} was already gone");
            return Ok(false);
        }
        r.error_for_status()?;
        log::debug!("killed E2B sandbox {sandbox_id}");
        Ok(true)
    }

    /// Sets how long the sandbox lives from now (`POST /sandboxes/{id}/timeout`); it can
    /// shorten the lifetime as well as extend it.
    ///
    /// # Errors
    ///
    /// [`Error::SandboxNotFound`] for an unknown or killed sandbox; otherwise as for
    /// [`E2bClient::create`].
    pub fn set_lifetime(&self, sandbox_id: &str, lifetime: Duration) -> Result<(), Error> {
        let body = to_value(&TimeoutBody {
            timeout: whole_seconds(lifetime, "sandbox lifetime")?,
        })?;
        let path = format!("{}/timeout", sandbox_path(sandbox_id)?);
        let r = self
            .http
            .send(Method::Post, &path, Some(&body), Replay::Idempotent)?;
        ok_empty(r, sandbox_id)
    }

    /// Keeps the sandbox alive at least `duration` more, up to 1 h
    /// (`POST /sandboxes/{id}/refreshes`); never shortens its lifetime.
    ///
    /// # Errors
    ///
    /// [`Error::SandboxNotFound`] for an unknown or killed sandbox; otherwise as for
    /// [`E2bClient::create`].
    pub fn refresh(&self, sandbox_id: &str, duration: Duration) -> Result<(), Error> {
        if duration > MAX_REFRESH {
            return Err(Error::InvalidArgument(format!(
                "a refresh extends a sandbox by at most {MAX_REFRESH:?}, not {duration:?}"
            )));
        }
        let body = to_value(&RefreshBody {
            duration: whole_seconds(duration, "refresh")?,
        })?;
        let path = format!("{}/refreshes", sandbox_path(sandbox_id)?);
        let r = self
            .http
            .send(Method::Post, &path, Some(&body), Replay::Idempotent)?;
        ok_empty(r, sandbox_id)
    }
}

fn sandbox_path(sandbox_id: &str) -> Result<String, Error> {
    if sandbox_id.is_empty() {
        return Err(Error::InvalidArgument("the sandbox id is empty".into()));
    }
    Ok(format!("/sandboxes/{}", encode_component(sandbox_id)))
}

fn to_value<T: serde::Serialize>(body: &T) -> Result<Value, Error> {
    serde_json::to_value(body).map_err(|e| Error::protocol_from("could not encode a request", e))
}

/// The `X-Next-Token` of a page, if it names one.
fn next_token(r: &Response) -> Option<String> {
    r.header("x-next-token")
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// The spec's `Error` body.
#[derive(Debug, Deserialize)]
struct ApiError {
    code: i64,
    #[serde(default)]
    message: String,
}

impl ApiError {
    /// The error for one fork that did not start, mapped as an answer of that status; a code
    /// that is no HTTP status is a [`Error::Protocol`] naming it.
    fn into_error(self, endpoint: &str) -> Error {
        match u16::try_from(self.code) {
            Ok(status) if (100..600).contains(&status) => {
                crate::net::status_error(status, endpoint.to_string(), self.message, None)
            }
            _ => Error::protocol(format!(
                "{endpoint}: a fork failed with code {}: {}",
                self.code, self.message
            )),
        }
    }
}

/// `SandboxForkResult`: exactly one of the two is set.
#[derive(Debug, Deserialize)]
struct ForkResult {
    #[serde(default)]
    sandbox: Option<SandboxAccess>,
    #[serde(default)]
    error: Option<ApiError>,
}

/// A 404 about a sandbox means it does not exist (any more); a 409 whose `error_code` says so,
/// that it can only be resumed by a reboot.
fn sandbox_error(r: Response, sandbox_id: Option<&str>) -> Error {
    match (r.status, sandbox_id) {
        (404, Some(id)) => Error::SandboxNotFound {
            sandbox_id: id.to_string(),
        },
        (409, Some(id)) if r.error_code().as_deref() == Some(GUEST_UNRESPONSIVE_CODE) => {
            Error::GuestUnresponsive {
                sandbox_id: id.to_string(),
            }
        }
        _ => r.into_error(),
    }
}

fn ok_json<T: DeserializeOwned>(r: Response, sandbox_id: Option<&str>) -> Result<T, Error> {
    if !r.is_success() {
        return Err(sandbox_error(r, sandbox_id));
    }
    r.json()
}

fn ok_empty(r: Response, sandbox_id: &str) -> Result<(), Error> {
    if !r.is_success() {
        return Err(sandbox_error(r, Some(sandbox_id)));
    }
    Ok(())
}
