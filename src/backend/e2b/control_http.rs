//! The E2B control plane over [`Http`]: the `X-API-KEY` header, bodies hidden from ureq's trace
//! dumps (they carry sandboxes' access tokens), and E2B's retry policy ([`super::retry`]) within
//! each call's budget.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::error::{Error, TimeoutPhase};
use crate::net::tls::TlsRoots;
use crate::net::{Endpoint, Http, Method, Response, describe};

use super::config::E2bConfig;
use super::retry::{Next, Policy, Replay, unit_random};

/// Largest control-plane response read into memory.
const MAX_BODY: u64 = 32 * 1024 * 1024;

/// The header that makes a create safe to send again.
pub(crate) const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// The control plane's client plus how its calls are retried.
#[derive(Debug, Clone)]
pub(crate) struct ControlHttp {
    http: Http,
    max_retries: u32,
    connection_retries: u32,
    /// Bound on all attempts of one call together, retries and their waits included.
    budget: Duration,
}

impl ControlHttp {
    pub(crate) fn new(config: &E2bConfig) -> Result<ControlHttp, Error> {
        let base = config.resolved_api_url();
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
        let mut endpoint = Endpoint::new(&base)?
            .with_tls(TlsRoots::new(&config.tls_roots)?)
            .with_header("X-API-KEY", config.api_key.clone());
        for (name, value) in &config.headers {
            endpoint = endpoint.with_header(name, value.clone());
        }
        let connect_timeout = config.request_timeout.min(Duration::from_secs(10));
        let http = Http::hiding_bodies(endpoint, connect_timeout, config.request_timeout)
            .with_max_body(MAX_BODY);
        Ok(ControlHttp {
            http,
            max_retries: config.max_attempts.max(1) - 1,
            connection_retries: config.connection_retries,
            budget: config.request_timeout,
        })
    }

    /// The same client with every call bounded by `budget` in total (for probes and the
    /// kill on close, which must not hang).
    pub(crate) fn bounded(&self, budget: Duration) -> ControlHttp {
        ControlHttp {
            budget,
            ..self.clone()
        }
    }

    pub(crate) fn base(&self) -> &str {
        self.http.endpoint().base()
    }

    /// Sends one call under E2B's retry policy; `replay` says whether it may be sent again once
    /// the server may have seen it.
    pub(crate) fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        replay: Replay,
    ) -> Result<Response, Error> {
        self.send_with(method, path, body, &[], replay)
    }

    /// [`ControlHttp::send`] with extra headers (the idempotency key), the same on every attempt.
    pub(crate) fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
        replay: Replay,
    ) -> Result<Response, Error> {
        let start = Instant::now();
        let deadline = start + self.budget;
        let mut policy = Policy::new(replay, self.max_retries, self.connection_retries);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout {
                    phase: TimeoutPhase::Request,
                    after: self.budget,
                });
            }
            let outcome = self.http.send_within(method, path, body, headers, left);
            let delay = match policy.next(&outcome, unit_random()) {
                Next::Done => return outcome,
                Next::RetryAfter(delay) => delay,
            };
            // A wait that would use up the budget leaves no time for the attempt after it.
            if Instant::now() + delay >= deadline {
                log::debug!(
                    "{}: no retry, a wait of {delay:?} would pass the call's budget",
                    describe(method, path)
                );
                return outcome;
            }
            log::debug!(
                "{} answered {}; retrying in {delay:?}",
                describe(method, path),
                match &outcome {
                    Ok(r) => format!("HTTP {}", r.status),
                    Err(e) => e.report(),
                },
            );
            std::thread::sleep(delay);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_key_is_refused_except_in_debug() {
        assert!(matches!(
            ControlHttp::new(&E2bConfig::default()),
            Err(Error::InvalidArgument(_))
        ));
        assert!(ControlHttp::new(&E2bConfig::default().debug(true)).is_ok());
        assert!(matches!(
            ControlHttp::new(&E2bConfig::default().api_key("k").api_url("ftp://x")),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn debug_shows_header_names_only() {
        let t = ControlHttp::new(&E2bConfig::default().api_key("e2b_cafe")).unwrap();
        let dbg = format!("{t:?}");
        assert!(dbg.contains("X-API-KEY") && !dbg.contains("cafe"), "{dbg}");
    }
}
