//! Retries under a [`ReconnectPolicy`]: the one place that turns the policy into delays, for
//! kernel reconnects, a new kernel's first handshake and idempotent HTTP requests alike.

use std::time::{Duration, Instant};

use backoff::backoff::Backoff;

use crate::config::ReconnectPolicy;

/// One run of retries: the first retry at once, then growing, jittered delays, until the
/// policy's attempts or time are used up. Each attempt should be cut to [`Attempts::left`].
pub(crate) struct Attempts {
    started: Instant,
    failed: u32,
    max_attempts: u32,
    max_elapsed: Duration,
    first_delay: Duration,
    max_delay: Duration,
    backoff: backoff::ExponentialBackoff,
}

impl Attempts {
    pub(crate) fn new(policy: &ReconnectPolicy) -> Attempts {
        Attempts {
            started: Instant::now(),
            failed: 0,
            max_attempts: policy.max_attempts,
            max_elapsed: policy.max_elapsed,
            first_delay: policy.first_delay,
            max_delay: policy.max_delay,
            backoff: backoff::ExponentialBackoff {
                current_interval: policy.first_delay,
                initial_interval: policy.first_delay,
                // The fields are public: keep what the backoff maths needs in range.
                randomization_factor: if policy.jitter.is_finite() {
                    policy.jitter.clamp(0.0, 1.0)
                } else {
                    0.0
                },
                multiplier: if policy.multiplier.is_finite() {
                    policy.multiplier.max(1.0)
                } else {
                    1.0
                },
                max_interval: policy.max_delay,
                max_elapsed_time: None,
                ..backoff::ExponentialBackoff::default()
            },
        }
    }

    /// When this run began.
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// What is left of the time budget.
    pub(crate) fn left(&self) -> Duration {
        self.max_elapsed.saturating_sub(self.started.elapsed())
    }

    /// Failed attempts so far.
    pub(crate) fn failures(&self) -> u32 {
        self.failed
    }

    /// Records a failed attempt; returns when to make the next one, or `None` when the budget
    /// is spent. The next attempt never starts after the budget's end.
    pub(crate) fn failed(&mut self) -> Option<Instant> {
        self.failed += 1;
        if self.failed >= self.max_attempts || self.left().is_zero() {
            return None;
        }
        let delay = if self.failed == 1 {
            self.first_delay
        } else {
            self.backoff.next_backoff().unwrap_or(self.max_delay)
        };
        Some((Instant::now() + delay).min(self.started + self.max_elapsed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_and_time_both_end_a_run() {
        let mut r = Attempts::new(&ReconnectPolicy::default().max_attempts(3));
        assert!(r.failed().is_some());
        assert!(r.failed().is_some());
        assert!(r.failed().is_none());
        assert!(
            Attempts::new(&ReconnectPolicy::disabled())
                .failed()
                .is_none()
        );

        let mut r = Attempts::new(&ReconnectPolicy::default().max_elapsed(Duration::ZERO));
        assert!(r.failed().is_none());

        let budget = Duration::from_millis(50);
        let mut r = Attempts::new(
            &ReconnectPolicy::default()
                .max_elapsed(budget)
                .first_delay(Duration::from_secs(10)),
        );
        let next = r.failed().unwrap();
        assert!(next <= r.started() + budget, "the next attempt is capped");
    }
}
