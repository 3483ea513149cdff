//! HTTP to the E2B control plane: one `ureq::Agent`, the `X-API-KEY` header, per-call deadlines,
//! and bounded, jittered retries for idempotent calls.

use std::fmt;
use std::io::Read;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::config::ReconnectPolicy;
use crate::error::{BoxError, Error};
use crate::http::{Method, Response, describe, expired};
use crate::mask::{self, MaskedHeaders};
use crate::retry::Retry as Backoff;

use super::config::E2bConfig;

/// Largest control-plane response read into memory.
const MAX_BODY: u64 = 32 * 1024 * 1024;

/// Delay before the second attempt; doubled (jittered) for each later one, up to
/// [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_millis(200);
const MAX_DELAY: Duration = Duration::from_secs(2);
/// A call without a budget is bounded by its attempts alone.
const UNBOUNDED: Duration = Duration::from_secs(24 * 3600);

/// Whether a call may be sent twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// GET, DELETE and the POSTs that only set a deadline: retried on 5xx and network errors.
    Idempotent,
    /// Creating a sandbox: a retry could leave a second sandbox running.
    Once,
}

/// A control-plane response: the status still to be judged, plus the paging headers.
#[derive(Debug)]
pub(crate) struct ApiResponse {
    pub(crate) response: Response,
    pub(crate) next_token: Option<String>,
    pub(crate) total_running: Option<u32>,
}

/// The agent plus what every request carries.
#[derive(Clone)]
pub(crate) struct Transport {
    agent: ureq::Agent,
    base: String,
    /// Masked: see crate::mask.
    headers: MaskedHeaders,
    connect_timeout: Duration,
    request_timeout: Duration,
    max_attempts: u32,
    /// Bound on all attempts of one call together, retries and their delays included.
    budget: Option<Duration>,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("base", &self.base)
            .field("headers", &self.headers)
            .field("request_timeout", &self.request_timeout)
            .field("max_attempts", &self.max_attempts)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl Transport {
    pub(crate) fn new(config: &E2bConfig) -> Result<Transport, Error> {
        let base = config.resolved_api_url().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::InvalidArgument(format!(
                "E2B API URL must start with http:// or https://, got {base:?}"
            )));
        }
        if config.api_key.is_empty() && !config.debug {
            return Err(Error::InvalidArgument(format!(
                "no E2B API key: set {} or call E2bConfig::api_key",
                super::config::API_KEY_ENV
            )));
        }
        let mut headers = Vec::with_capacity(config.headers.len() + 1);
        if !config.api_key.is_empty() {
            headers.push(("X-API-KEY".to_string(), config.api_key.clone()));
        }
        headers.extend(config.headers.iter().cloned());
        let connect_timeout = config.request_timeout.min(Duration::from_secs(10));
        let mut agent_config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(connect_timeout))
            .timeout_global(Some(config.request_timeout))
            .user_agent(concat!("e2b-blocking/", env!("CARGO_PKG_VERSION")))
            // ureq reads bodies hidden (below) and could not decompress them.
            .accept_encoding("identity");
        if let Some(tls) = crate::tls::TlsRoots::new(&config.tls_roots)?.ureq() {
            agent_config = agent_config.tls_config(tls);
        }
        // Answers carry sandboxes' access tokens, which ureq would dump at trace level: it
        // reads every body hidden, and send_once takes the real one from below it.
        let (agent, headers) = mask::agent(
            agent_config.build(),
            headers.iter().map(|(n, v)| (n.as_str(), v)),
            None,
            true,
        );
        Ok(Transport {
            agent,
            base,
            headers,
            connect_timeout,
            request_timeout: config.request_timeout,
            max_attempts: config.max_attempts.max(1),
            budget: None,
        })
    }

    /// The same client with every call bounded by `budget` in total (for probes and the
    /// kill on close, which must not hang).
    pub(crate) fn bounded(&self, budget: Duration) -> Transport {
        Transport {
            budget: Some(budget),
            request_timeout: self.request_timeout.min(budget),
            ..self.clone()
        }
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// Sends one call, retrying an idempotent one on 5xx and network errors.
    pub(crate) fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        retry: Retry,
    ) -> Result<ApiResponse, Error> {
        let start = Instant::now();
        let attempts = match retry {
            Retry::Idempotent => self.max_attempts,
            Retry::Once => 1,
        };
        // The same jittered exponential backoff as kernel reconnects, with the control
        // plane's own pace and, when there is one, the call's budget.
        let policy = ReconnectPolicy::default()
            .first_delay(FIRST_DELAY)
            .max_delay(MAX_DELAY)
            .max_attempts(attempts)
            .max_elapsed(self.budget.unwrap_or(UNBOUNDED));
        let mut backoff = Backoff::new(&policy);
        let mut attempt = 1;
        loop {
            let timeout = match self.budget {
                Some(budget) => budget.saturating_sub(start.elapsed()),
                None => self.request_timeout,
            };
            let outcome = self.send_once(method, path, body, timeout);
            let retryable = match &outcome {
                Ok(r) => matches!(r.response.status, 500 | 502 | 503 | 504),
                Err(e) => matches!(e, Error::Transport { .. }),
            };
            if !retryable {
                return outcome;
            }
            // Out of attempts, or no time left for another within the budget: the last
            // answer is the one to give.
            let Some(next) = backoff
                .failed()
                .filter(|next| self.budget.is_none_or(|b| *next < start + b))
            else {
                return outcome;
            };
            let delay = next.saturating_duration_since(Instant::now());
            log::debug!(
                "{} failed ({}), attempt {attempt} of {attempts}; retrying in {delay:?}",
                describe(method, path),
                match &outcome {
                    Ok(r) => format!("HTTP {}", r.response.status),
                    Err(e) => e.to_string(),
                }
            );
            std::thread::sleep(delay);
            attempt += 1;
        }
    }

    fn send_once(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<ApiResponse, Error> {
        let url = format!("{}{}", self.base, path);
        let endpoint = describe(method, path);
        let started = Instant::now();
        mask::forget_hidden_body();
        let result = match method {
            Method::Get | Method::Delete => {
                let mut req = match method {
                    Method::Get => self.agent.get(&url),
                    _ => self.agent.delete(&url),
                };
                for (name, value) in self.headers.iter() {
                    req = req.header(name, value);
                }
                req.config().timeout_global(Some(timeout)).build().call()
            }
            Method::Post | Method::Put | Method::Patch => {
                let mut req = match method {
                    Method::Post => self.agent.post(&url),
                    Method::Put => self.agent.put(&url),
                    _ => self.agent.patch(&url),
                };
                for (name, value) in self.headers.iter() {
                    req = req.header(name, value);
                }
                let body = body.map_or_else(|| "{}".to_string(), Value::to_string);
                req.header("Content-Type", "application/json")
                    .config()
                    .timeout_global(Some(timeout))
                    .build()
                    .send(body)
            }
        };
        let mut resp = result.map_err(|e| self.transport_error(&endpoint, timeout, e))?;
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_string())
        };
        let content_type = header("content-type")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let retry_after = header("retry-after")
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_secs);
        let next_token = header("x-next-token").filter(|v| !v.is_empty());
        let total_running = header("x-total-running").and_then(|v| v.parse::<u32>().ok());
        let mut shown = Vec::new();
        resp.body_mut()
            .as_reader()
            .take(MAX_BODY)
            .read_to_end(&mut shown)
            .map_err(|e| self.transport_error(&endpoint, timeout, ureq::Error::Io(e)))?;
        // ureq read as many `*` as the body has bytes; the transport kept the bytes.
        let mut bytes = mask::take_hidden_body().unwrap_or_default();
        if bytes.len() < shown.len() {
            return Err(Error::protocol(format!(
                "{endpoint}: the response body was lost on its way in"
            )));
        }
        bytes.truncate(shown.len());
        log::trace!("e2b: {endpoint} -> {status} in {:?}", started.elapsed());
        Ok(ApiResponse {
            response: Response {
                status,
                body: bytes,
                content_type,
                endpoint,
                retry_after,
            },
            next_token,
            total_running,
        })
    }

    fn transport_error(&self, endpoint: &str, timeout: Duration, e: ureq::Error) -> Error {
        if let Some((phase, after)) = expired(&e, self.connect_timeout, timeout) {
            return Error::Timeout { phase, after };
        }
        Error::Transport {
            endpoint: format!("{endpoint} at {}", self.base),
            source: BoxError::from(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_key_is_refused_except_in_debug() {
        assert!(matches!(
            Transport::new(&E2bConfig::default()),
            Err(Error::InvalidArgument(_))
        ));
        assert!(Transport::new(&E2bConfig::default().debug(true)).is_ok());
        assert!(matches!(
            Transport::new(&E2bConfig::default().api_key("k").api_url("ftp://x")),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn debug_shows_header_names_only() {
        let t = Transport::new(&E2bConfig::default().api_key("e2b_cafe")).unwrap();
        let dbg = format!("{t:?}");
        assert!(dbg.contains("X-API-KEY") && !dbg.contains("cafe"), "{dbg}");
    }
}
