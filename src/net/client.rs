//! A blocking HTTP client bound to one [`Endpoint`]: one `ureq::Agent` whose secret headers
//! only the transport below it sees (see [`super::redact`]), per-call deadlines, and retries under
//! a [`ReconnectPolicy`] for the calls a caller says may be sent again.

use std::fmt;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::redact::{self, MaskedHeaders};
use super::{Endpoint, Method, Response, describe, expired, link_broke};
use crate::config::{ReconnectPolicy, Timeouts};
use crate::error::{BoxError, Error};
use crate::net::Attempts;

/// Largest response body read into memory by default.
const MAX_BODY: u64 = 256 * 1024 * 1024;

/// A blocking HTTP client bound to one [`Endpoint`].
#[derive(Clone)]
pub(crate) struct Http {
    agent: ureq::Agent,
    endpoint: Endpoint,
    /// The endpoint's headers as this agent must be given them.
    headers: MaskedHeaders,
    connect_timeout: Duration,
    request_timeout: Duration,
    /// Whether the agent hands ureq `*` for every response body (see [`Http::hiding_bodies`]).
    hide_bodies: bool,
    max_body: u64,
    /// How GET and DELETE are retried when the link breaks under them.
    retry: ReconnectPolicy,
}

impl fmt::Debug for Http {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http")
            .field("endpoint", &self.endpoint)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

impl Http {
    pub(crate) fn new(endpoint: Endpoint, timeouts: &Timeouts) -> Http {
        Http::build(endpoint, timeouts.connect, timeouts.request, false)
    }

    /// A client whose response bodies never reach ureq, which dumps every body it reads at
    /// trace level: for servers that answer with secrets (E2B's control plane hands out
    /// sandboxes' access tokens).
    pub(crate) fn hiding_bodies(
        endpoint: Endpoint,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Http {
        Http::build(endpoint, connect_timeout, request_timeout, true)
    }

    fn build(endpoint: Endpoint, connect: Duration, request: Duration, hide_bodies: bool) -> Http {
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(connect))
            .timeout_global(Some(request))
            .user_agent(concat!("e2b-blocking/", env!("CARGO_PKG_VERSION")));
        if let Some(tls) = endpoint.tls().ureq() {
            config = config.tls_config(tls);
        }
        // Pinned certificates need the SDK's own verifier, which ureq's TLS cannot take.
        let own_tls = endpoint
            .tls()
            .has_pins()
            .then(|| endpoint.tls().rustls())
            .and_then(|c| c.inspect_err(|e| log::warn!("TLS set-up failed: {e}")).ok());
        let (agent, headers) = redact::agent(
            config,
            endpoint.headers(),
            endpoint.unix_socket(),
            own_tls,
            hide_bodies,
        );
        Http {
            agent,
            endpoint,
            headers,
            connect_timeout: connect,
            request_timeout: request,
            hide_bodies,
            max_body: MAX_BODY,
            retry: ReconnectPolicy::default(),
        }
    }

    /// Retries idempotent requests (GET, DELETE) under `policy` when the connection breaks
    /// under them. Defaults to [`ReconnectPolicy::default`].
    pub(crate) fn with_retry(mut self, policy: ReconnectPolicy) -> Http {
        self.retry = policy;
        self
    }

    /// Reads at most `limit` bytes of a body (default 256 MiB).
    pub(crate) fn with_max_body(mut self, limit: u64) -> Http {
        self.max_body = limit;
        self
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The agent, for requests the helpers above do not cover (streamed bodies, per-request
    /// timeouts). Callers add the endpoint's headers with [`Http::headed`].
    pub(crate) fn agent(&self) -> &ureq::Agent {
        &self.agent
    }

    /// `req` with the endpoint's headers, masked as this client's agent must be given them.
    pub(crate) fn headed<B>(&self, mut req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        for (name, value) in self.headers.iter() {
            req = req.header(name, value);
        }
        req
    }

    /// The per-request deadline this client was built with.
    pub(crate) fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Sends a request and reads the whole body, whatever the status. GET and DELETE are sent
    /// again when the connection breaks under them (see [`Http::with_retry`]).
    pub(crate) fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Response, Error> {
        if !matches!(method, Method::Get | Method::Delete) {
            return self.send_once(method, path, body);
        }
        self.send_retrying(
            method,
            path,
            body,
            &self.retry,
            None,
            |outcome| matches!(outcome, Err(e) if link_broke(e)),
        )
    }

    /// Sends a request until `again` no longer asks for another attempt or `policy` runs out,
    /// and gives the last outcome. With a `budget`, all attempts and the delays between them
    /// end within it.
    pub(crate) fn send_retrying(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        policy: &ReconnectPolicy,
        budget: Option<Duration>,
        again: impl Fn(&Result<Response, Error>) -> bool,
    ) -> Result<Response, Error> {
        let start = Instant::now();
        let mut retry = Attempts::new(policy);
        loop {
            let timeout = match budget {
                Some(budget) => budget.saturating_sub(start.elapsed()),
                None => self.request_timeout,
            };
            let outcome = self.send_within(method, path, body, &[], timeout);
            if !again(&outcome) {
                return outcome;
            }
            // Out of attempts, or no time left for another within the budget: the last
            // outcome is the one to give.
            let Some(next) = retry
                .failed()
                .filter(|next| budget.is_none_or(|b| *next < start + b))
            else {
                return outcome;
            };
            let delay = next.saturating_duration_since(Instant::now());
            log::debug!(
                "{} failed ({}), attempt {} of {}; retrying in {delay:?}",
                describe(method, path),
                match &outcome {
                    Ok(r) => format!("HTTP {}", r.status),
                    Err(e) => e.report(),
                },
                retry.failures(),
                policy.max_attempts,
            );
            std::thread::sleep(delay);
        }
    }

    /// Sends a request once and reads the whole body, whatever the status.
    pub(crate) fn send_once(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Response, Error> {
        self.send_within(method, path, body, &[], self.request_timeout)
    }

    /// Sends a request once with `headers` besides the endpoint's, bounded by `timeout`, and
    /// reads the whole body, whatever the status.
    pub(crate) fn send_within(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Response, Error> {
        let url = self.endpoint.url(path);
        let endpoint = describe(method, path);
        let started = Instant::now();
        if self.hide_bodies {
            redact::forget_hidden_body();
        }
        let result = match method {
            Method::Get | Method::Delete => {
                let req = match method {
                    Method::Get => self.agent.get(&url),
                    _ => self.agent.delete(&url),
                };
                let mut req = self.headed(req);
                for (name, value) in headers {
                    req = req.header(*name, *value);
                }
                req.config().timeout_global(Some(timeout)).build().call()
            }
            Method::Post | Method::Put | Method::Patch => {
                let req = match method {
                    Method::Post => self.agent.post(&url),
                    Method::Put => self.agent.put(&url),
                    _ => self.agent.patch(&url),
                };
                let body = body.map_or_else(|| "{}".to_string(), Value::to_string);
                let mut req = self.headed(req);
                for (name, value) in headers {
                    req = req.header(*name, *value);
                }
                req.header("Content-Type", "application/json")
                    .config()
                    .timeout_global(Some(timeout))
                    .build()
                    .send(body)
            }
        };
        let fail = |e| self.transport_error_within(&endpoint, timeout, e);
        let resp = result.map_err(fail)?;
        let mut resp = Response::read(resp, endpoint.clone(), self.max_body)
            .map_err(|e| fail(ureq::Error::Io(e)))?;
        resp.gone = self.endpoint.gone.clone();
        if self.hide_bodies {
            // ureq read as many `*` as the body has bytes; the transport kept the bytes.
            let mut bytes = redact::take_hidden_body().unwrap_or_default();
            if bytes.len() < resp.body.len() {
                return Err(Error::protocol(format!(
                    "{endpoint}: the response body was lost on its way in"
                )));
            }
            bytes.truncate(resp.body.len());
            resp.body = bytes;
        }
        log::trace!("{endpoint} -> {} in {:?}", resp.status, started.elapsed());
        Ok(resp)
    }

    /// Sends and parses a 2xx JSON body; any other status becomes an error.
    pub(crate) fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, Error> {
        self.send(method, path, body)?.error_for_status()?.json()
    }

    /// Reads at most `limit` bytes of the body of `resp`, an answer to `endpoint` (a request
    /// described as "METHOD /path") this client's agent sent, to judge its status.
    pub(crate) fn read_response(
        &self,
        resp: ureq::http::Response<ureq::Body>,
        endpoint: &str,
        limit: u64,
    ) -> Result<Response, Error> {
        let mut resp = Response::read(resp, endpoint.to_string(), limit)
            .map_err(|e| self.transport_error(endpoint, ureq::Error::Io(e)))?;
        resp.gone = self.endpoint.gone.clone();
        Ok(resp)
    }

    /// The error for a request that got no answer under the request timeout.
    pub(crate) fn transport_error(&self, endpoint: &str, e: ureq::Error) -> Error {
        self.transport_error_within(endpoint, self.request_timeout, e)
    }

    fn transport_error_within(&self, endpoint: &str, timeout: Duration, e: ureq::Error) -> Error {
        if let Some((phase, after)) = expired(&e, self.connect_timeout, timeout) {
            return Error::Timeout { phase, after };
        }
        let endpoint = format!("{endpoint} at {}", self.endpoint.base());
        crate::net::tls::untrusted(&endpoint, BoxError::from(e))
            .unwrap_or_else(|source| Error::Transport { endpoint, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::error::TimeoutPhase;

    /// A loopback address whose connects never complete: a listener with a backlog of 0
    /// whose accept queue is filled by connections it never accepts, so further SYNs are
    /// dropped. Returns the listener and the connections, which must be kept open.
    fn unanswering() -> Option<(
        socket2::Socket,
        Vec<std::net::TcpStream>,
        std::net::SocketAddr,
    )> {
        use socket2::{Domain, Socket, Type};
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        listener
            .bind(
                &"127.0.0.1:0"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
            )
            .unwrap();
        listener.listen(0).unwrap();
        let addr = listener.local_addr().unwrap().as_socket().unwrap();
        let mut held = Vec::new();
        for _ in 0..64 {
            match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(s) => held.push(s),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return Some((listener, held, addr));
                }
                Err(e) => panic!("unexpected connect error: {e}"),
            }
        }
        None
    }

    #[test]
    fn a_connect_that_never_completes_reports_the_connect_timeout() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let Some((_listener, _held, addr)) = unanswering() else {
                panic!("the accept queue never filled; connects still complete");
            };
            let http = Http::new(
                Endpoint::new(&format!("http://{addr}"))
                    .unwrap()
                    .with_jupyter_token(&Secret::new("t")),
                &Timeouts::default()
                    .connect(Duration::from_millis(300))
                    .request(Duration::from_secs(30)),
            );
            let _ = tx.send(http.send(Method::Get, "/api/status", None));
        });
        let outcome = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the call ends within its own deadlines");
        match outcome {
            Err(Error::Timeout { phase, after }) => {
                assert_eq!(phase, TimeoutPhase::Connect);
                assert_eq!(after, Duration::from_millis(300));
            }
            other => panic!("{other:?}"),
        }
    }
}
