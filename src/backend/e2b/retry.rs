//! E2B's retry policy for the control plane, as its SDK 2.63 applies it (`e2b/retry.py`):
//!
//! - An answer marked `Should-Retry: true` is retried; one marked anything else is not, whatever
//!   its status. Without that header, 429, 502, 503 and 504 are retried.
//! - The wait is the answer's `Retry-After` (delta-seconds) when valid, else
//!   `0.1 s · 2ⁿ` capped at 10 s, times a random factor in `[0.5, 1]`.
//! - No attempt starts, and no wait ends, past the call's budget.
//! - Connections that could not be opened (refused, connect timeout, unknown host) are retried
//!   separately, `E2B_CONNECTION_RETRIES` times (default 3).
//!
//! Where this SDK is stricter than E2B's: an answer is only retried when sending the call again
//! is safe, that is when the call is idempotent or carries an idempotency key
//! ([`Replay`]). E2B's SDK also retries a marked answer to a fork or a snapshot.

use std::time::Duration;

use crate::error::{Error, TimeoutPhase};
use crate::net::Response;

/// Statuses retried when the answer carries no `Should-Retry` header.
const RETRYABLE_STATUSES: [u16; 4] = [429, 502, 503, 504];
/// The first backoff step, doubled for each retry.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// The longest backoff step.
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// The smallest jitter factor; the largest is 1.
const JITTER_MIN: f64 = 0.5;
/// The largest `Retry-After` taken as given (E2B's SDK's bound, `i32::MAX` seconds).
const MAX_RETRY_AFTER: u64 = 2_147_483_647;

/// Whether a call may be sent again once the server may have seen it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    /// Sending it twice has the effect of sending it once (GET, DELETE, setting a deadline or
    /// the network rules, connecting, pausing): answers marked for retry and links that broke
    /// under it are retried.
    Idempotent,
    /// It carries an `Idempotency-Key`, so the server applies it once however often it comes
    /// (creating a sandbox): retried as an idempotent call.
    Keyed,
    /// A second copy could do the work twice (a snapshot, a fork): only a connection that was
    /// never opened is retried.
    Never,
}

impl Replay {
    fn after_sending(self) -> bool {
        self != Replay::Never
    }
}

/// A random number in `[0, 1)` for the jitter, from the OS's generator (as `uuid` draws it).
pub(crate) fn unit_random() -> f64 {
    let bits = uuid::Uuid::new_v4().as_u128() >> 75;
    bits as f64 / (1u64 << 53) as f64
}

/// The backoff before retry number `attempt` (0 for the first), with jitter factor
/// `0.5 + random · 0.5`.
pub(crate) fn backoff(attempt: u32, random: f64) -> Duration {
    let step = BACKOFF_BASE
        .checked_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
        .unwrap_or(BACKOFF_MAX)
        .min(BACKOFF_MAX);
    step.mul_f64(JITTER_MIN + random.clamp(0.0, 1.0) * (1.0 - JITTER_MIN))
}

/// `Retry-After` as delta-seconds: ASCII digits only, at most 10 of them, at most
/// [`MAX_RETRY_AFTER`]. An HTTP date or anything else is ignored.
pub(crate) fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    let value = value?.trim();
    if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds: u64 = value.parse().ok()?;
    (seconds <= MAX_RETRY_AFTER).then(|| Duration::from_secs(seconds))
}

/// How long to wait before retrying an answer, or `None` when it is final. A present
/// `Should-Retry` header decides alone, `false` included.
pub(crate) fn answer_delay(r: &Response, attempt: u32, random: f64) -> Option<Duration> {
    match r.header("should-retry") {
        Some(v) if !v.eq_ignore_ascii_case("true") => return None,
        None if !RETRYABLE_STATUSES.contains(&r.status) => return None,
        _ => {}
    }
    Some(parse_retry_after(r.header("retry-after")).unwrap_or_else(|| backoff(attempt, random)))
}

/// What to do after one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Give this outcome to the caller.
    Done,
    /// Try again after this long (the caller checks it against the budget).
    RetryAfter(Duration),
}

/// Counts one call's retries and decides on each outcome.
#[derive(Debug)]
pub(crate) struct Policy {
    replay: Replay,
    max_retries: u32,
    max_connection_retries: u32,
    retries: u32,
    connection_retries: u32,
}

impl Policy {
    pub(crate) fn new(replay: Replay, max_retries: u32, max_connection_retries: u32) -> Policy {
        Policy {
            replay,
            max_retries,
            max_connection_retries,
            retries: 0,
            connection_retries: 0,
        }
    }

    /// Decides on `outcome`, drawing the jitter from `random`.
    pub(crate) fn next(&mut self, outcome: &Result<Response, Error>, random: f64) -> Next {
        match outcome {
            Ok(r) => {
                if !self.replay.after_sending() || self.retries >= self.max_retries {
                    return Next::Done;
                }
                match answer_delay(r, self.retries, random) {
                    Some(delay) => {
                        self.retries += 1;
                        Next::RetryAfter(delay)
                    }
                    None => Next::Done,
                }
            }
            Err(e) if never_sent(e) => {
                if self.connection_retries >= self.max_connection_retries {
                    return Next::Done;
                }
                self.connection_retries += 1;
                Next::RetryAfter(backoff(self.connection_retries - 1, random))
            }
            Err(e) if crate::net::link_broke(e) => {
                if !self.replay.after_sending() || self.retries >= self.max_retries {
                    return Next::Done;
                }
                self.retries += 1;
                Next::RetryAfter(backoff(self.retries - 1, random))
            }
            Err(_) => Next::Done,
        }
    }
}

/// True when the request cannot have reached the server: the connection was refused, never
/// completed, or the host is unknown. A TLS failure is not retried: it would fail again.
pub(crate) fn never_sent(e: &Error) -> bool {
    match e {
        Error::Timeout {
            phase: TimeoutPhase::Connect,
            ..
        } => true,
        Error::Transport { source, .. } => match source.downcast_ref::<ureq::Error>() {
            Some(ureq::Error::HostNotFound | ureq::Error::ConnectionFailed) => true,
            Some(ureq::Error::Io(io)) => matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::AddrNotAvailable
            ),
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&'static str, &str)]) -> Response {
        let mut map = ureq::http::HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, v.parse().expect("a header value"));
        }
        Response {
            status,
            body: Vec::new(),
            endpoint: "POST /v2/sandboxes".into(),
            headers: map,
            gone: None,
        }
    }

    #[test]
    fn backoff_doubles_from_a_tenth_of_a_second_to_ten_seconds_with_jitter() {
        assert_eq!(backoff(0, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(0, 0.0), Duration::from_millis(50));
        assert_eq!(backoff(3, 1.0), Duration::from_millis(800));
        assert_eq!(backoff(7, 1.0), Duration::from_secs(10));
        assert_eq!(backoff(7, 0.0), Duration::from_secs(5));
        assert_eq!(backoff(u32::MAX, 1.0), Duration::from_secs(10));
        for _ in 0..100 {
            let r = unit_random();
            assert!((0.0..1.0).contains(&r), "{r}");
        }
    }

    #[test]
    fn retry_after_is_delta_seconds_only() {
        assert_eq!(parse_retry_after(Some(" 7 ")), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(Some("0")), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(Some("-1")), None);
        assert_eq!(parse_retry_after(Some("1.5")), None);
        assert_eq!(
            parse_retry_after(Some("Wed, 21 Oct 2026 07:28:00 GMT")),
            None
        );
        assert_eq!(parse_retry_after(Some("99999999999")), None);
        assert_eq!(parse_retry_after(Some("2147483648")), None);
        assert_eq!(parse_retry_after(Some("٣")), None);
        assert_eq!(parse_retry_after(None), None);
    }

    #[test]
    fn should_retry_decides_alone_and_statuses_without_it() {
        for status in [429, 502, 503, 504] {
            assert!(
                answer_delay(&answer(status, &[]), 0, 0.5).is_some(),
                "{status}"
            );
            assert_eq!(
                answer_delay(&answer(status, &[("should-retry", "false")]), 0, 0.5),
                None
            );
        }
        for status in [400, 404, 409, 500, 507] {
            assert_eq!(answer_delay(&answer(status, &[]), 0, 0.5), None, "{status}");
        }
        let marked = answer(500, &[("should-retry", "TRUE"), ("retry-after", "3")]);
        assert_eq!(answer_delay(&marked, 0, 0.5), Some(Duration::from_secs(3)));
        let bad_after = answer(429, &[("retry-after", "soon")]);
        assert_eq!(
            answer_delay(&bad_after, 2, 1.0),
            Some(Duration::from_millis(400))
        );
    }

    #[test]
    fn only_replayable_calls_retry_an_answer_and_retries_are_counted() {
        let busy = Ok(answer(503, &[]));
        let mut never = Policy::new(Replay::Never, 3, 3);
        assert_eq!(never.next(&busy, 0.0), Next::Done);
        let mut keyed = Policy::new(Replay::Keyed, 2, 3);
        assert!(matches!(keyed.next(&busy, 0.0), Next::RetryAfter(_)));
        assert!(matches!(keyed.next(&busy, 0.0), Next::RetryAfter(_)));
        assert_eq!(keyed.next(&busy, 0.0), Next::Done);
        let refused = Err(Error::Transport {
            endpoint: "POST /sandboxes/x/fork".into(),
            source: Box::new(ureq::Error::Io(
                std::io::ErrorKind::ConnectionRefused.into(),
            )),
        });
        let mut never = Policy::new(Replay::Never, 0, 2);
        assert!(matches!(never.next(&refused, 0.0), Next::RetryAfter(_)));
        assert!(matches!(never.next(&refused, 0.0), Next::RetryAfter(_)));
        assert_eq!(never.next(&refused, 0.0), Next::Done);
        let reset = Err(Error::Transport {
            endpoint: "POST /sandboxes/x/fork".into(),
            source: Box::new(ureq::Error::Io(std::io::ErrorKind::ConnectionReset.into())),
        });
        assert_eq!(
            Policy::new(Replay::Never, 3, 3).next(&reset, 0.0),
            Next::Done
        );
        assert!(matches!(
            Policy::new(Replay::Idempotent, 3, 3).next(&reset, 0.0),
            Next::RetryAfter(_)
        ));
    }
}
