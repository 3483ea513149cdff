//! The E2B control-plane calls this SDK makes, as in E2B's OpenAPI spec.

use std::collections::HashSet;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::Error;
use crate::net::{Method, Response, encode_component};

use super::config::E2bConfig;
use super::metrics::{MetricsQuery, SandboxMetric};
use super::models::{
    ListQuery, NewSandbox, RefreshBody, SandboxAccess, SandboxInfo, SandboxPage, TimeoutBody,
    whole_seconds,
};
use super::options::E2bOptions;
use super::transport::{Retry, Transport};

/// Longest keep-alive `refresh` accepts (the spec's maximum).
const MAX_REFRESH: Duration = Duration::from_secs(3600);

/// Pages [`E2bClient::list_all`] follows before it stops with an error.
const MAX_PAGES: usize = 10_000;

/// A blocking client for the E2B control plane (`https://api.{domain}`): create, look up,
/// list, extend, measure and kill sandboxes.
///
/// Cheap to clone; clones share one connection pool. Idempotent calls are retried on 5xx and
/// network errors with jittered backoff ([`E2bConfig::max_attempts`]); creating is not.
///
/// Errors: 401/403 → [`Error::Authentication`], 404 on a sandbox → [`Error::SandboxNotFound`],
/// 429 → [`Error::RateLimited`], other statuses → [`Error::Http`], a missed deadline →
/// [`Error::Timeout`], an unreadable body → [`Error::Protocol`].
#[derive(Debug, Clone)]
pub struct E2bClient {
    transport: Transport,
}

impl E2bClient {
    /// A client for `config`. Fails with [`Error::InvalidArgument`] when there is no API key
    /// (outside debug mode) or the API URL is not http(s).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when there is no API key (outside debug mode) or the API URL is
    /// not http(s).
    pub fn new(config: &E2bConfig) -> Result<E2bClient, Error> {
        Ok(E2bClient {
            transport: Transport::new(config)?,
        })
    }

    /// The same client, each call bounded by `budget` in total, retries included.
    pub(crate) fn bounded(&self, budget: Duration) -> E2bClient {
        E2bClient {
            transport: self.transport.bounded(budget),
        }
    }

    /// The control-plane base URL this client talks to.
    pub fn api_url(&self) -> &str {
        self.transport.base()
    }

    /// Creates a sandbox (`POST /sandboxes`). It lives for [`E2bOptions::lifetime`] unless
    /// extended or killed; the caller owns it. Never retried.
    ///
    /// # Errors
    ///
    /// [`Error::Authentication`] for a rejected key; [`Error::RateLimited`] when E2B refuses
    /// more sandboxes; [`Error::Http`] for other refusals; [`Error::Transport`] or
    /// [`Error::Timeout`] when the control plane cannot be reached.
    pub fn create(&self, options: &E2bOptions) -> Result<SandboxAccess, Error> {
        let body = to_value(&NewSandbox::from_options(options)?)?;
        let r = self
            .transport
            .send(Method::Post, "/sandboxes", Some(&body), Retry::Once)?;
        let access: SandboxAccess = ok_json(r, None)?;
        log::debug!(
            "created E2B sandbox {} from template {}",
            access.sandbox_id,
            options.template
        );
        Ok(access)
    }

    /// Connects to an existing sandbox (`POST /sandboxes/{id}/connect`), resuming it if it is
    /// paused, and makes sure it lives at least `lifetime` more (a longer remaining lifetime
    /// is kept). Returns what it takes to reach it.
    ///
    /// # Errors
    ///
    /// [`Error::SandboxNotFound`] for an unknown or killed sandbox; otherwise as for
    /// [`E2bClient::create`].
    pub fn connect(&self, sandbox_id: &str, lifetime: Duration) -> Result<SandboxAccess, Error> {
        let body = to_value(&TimeoutBody {
            timeout: whole_seconds(lifetime, "sandbox lifetime")?,
        })?;
        let path = format!("{}/connect", sandbox_path(sandbox_id)?);
        // Connecting twice is harmless: the second finds it running and only extends.
        let r = self
            .transport
            .send(Method::Post, &path, Some(&body), Retry::Idempotent)?;
        let access: SandboxAccess = ok_json(r, Some(sandbox_id))?;
        log::debug!("connected to E2B sandbox {}", access.sandbox_id);
        Ok(access)
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
            .transport
            .send(Method::Get, &path, None, Retry::Idempotent)?;
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
            .transport
            .send(Method::Get, &path, None, Retry::Idempotent)?;
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
            .transport
            .send(Method::Get, &path, None, Retry::Idempotent)?;
        let next_token = r
            .header("x-next-token")
            .filter(|v| !v.is_empty())
            .map(str::to_string);
        let total_running = r.header("x-total-running").and_then(|v| v.parse().ok());
        let sandboxes: Vec<SandboxInfo> = ok_json(r, None)?;
        Ok(SandboxPage {
            sandboxes,
            next_token,
            total_running,
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
            .transport
            .send(Method::Delete, &path, None, Retry::Idempotent)?;
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
    pub fn set_timeout(&self, sandbox_id: &str, lifetime: Duration) -> Result<(), Error> {
        let body = to_value(&TimeoutBody {
            timeout: whole_seconds(lifetime, "sandbox lifetime")?,
        })?;
        let path = format!("{}/timeout", sandbox_path(sandbox_id)?);
        let r = self
            .transport
            .send(Method::Post, &path, Some(&body), Retry::Idempotent)?;
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
            .transport
            .send(Method::Post, &path, Some(&body), Retry::Idempotent)?;
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

/// A 404 about a sandbox means it does not exist (any more).
fn status_error(r: Response, sandbox_id: Option<&str>) -> Error {
    match (r.status, sandbox_id) {
        (404, Some(id)) => Error::SandboxNotFound {
            sandbox_id: id.to_string(),
        },
        _ => r.into_error(),
    }
}

fn ok_json<T: DeserializeOwned>(r: Response, sandbox_id: Option<&str>) -> Result<T, Error> {
    if !r.is_success() {
        return Err(status_error(r, sandbox_id));
    }
    r.json()
}

fn ok_empty(r: Response, sandbox_id: &str) -> Result<(), Error> {
    if !r.is_success() {
        return Err(status_error(r, Some(sandbox_id)));
    }
    Ok(())
}
