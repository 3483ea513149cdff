//! The E2B control plane over [`Http`]: the `X-API-KEY` header, bodies hidden from ureq's trace
//! dumps (they carry sandboxes' access tokens), and bounded, jittered retries for idempotent
//! calls.

use std::time::Duration;

use serde_json::Value;

use crate::config::ReconnectPolicy;
use crate::error::Error;
use crate::net::{Endpoint, Http, Method, Response};
use crate::tls::TlsRoots;

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

/// The control plane's client plus how its calls are retried.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    http: Http,
    max_attempts: u32,
    /// Bound on all attempts of one call together, retries and their delays included.
    budget: Option<Duration>,
}

impl Transport {
    pub(crate) fn new(config: &E2bConfig) -> Result<Transport, Error> {
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
        Ok(Transport {
            http,
            max_attempts: config.max_attempts.max(1),
            budget: None,
        })
    }

    /// The same client with every call bounded by `budget` in total (for probes and the
    /// kill on close, which must not hang): each attempt gets what is left of it.
    pub(crate) fn bounded(&self, budget: Duration) -> Transport {
        Transport {
            budget: Some(budget),
            ..self.clone()
        }
    }

    pub(crate) fn base(&self) -> &str {
        self.http.endpoint().base()
    }

    /// Sends one call, retrying an idempotent one on 5xx and network errors.
    pub(crate) fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        retry: Retry,
    ) -> Result<Response, Error> {
        let attempts = match retry {
            Retry::Idempotent => self.max_attempts,
            Retry::Once => 1,
        };
        // The control plane's own pace, and the call's budget when there is one.
        let policy = ReconnectPolicy::default()
            .first_delay(FIRST_DELAY)
            .max_delay(MAX_DELAY)
            .max_attempts(attempts)
            .max_elapsed(self.budget.unwrap_or(UNBOUNDED));
        self.http.send_retrying(
            method,
            path,
            body,
            &policy,
            self.budget,
            |outcome| match outcome {
                Ok(r) => matches!(r.status, 500 | 502 | 503 | 504),
                Err(e) => matches!(e, Error::Transport { .. }),
            },
        )
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
