//! A per-portal circuit breaker: after `threshold` consecutive transient failures the portal's
//! calls fail fast for a cool-down, then one probe is let through (half-open).

use std::time::Duration;

use tokio::time::Instant;

/// The breaker's state, for status pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls flow.
    Closed,
    /// Calls fail fast until the cool-down ends.
    Open {
        /// Time left in the cool-down.
        retry_in: Duration,
    },
    /// One probe call is allowed; its outcome closes or re-opens the circuit.
    HalfOpen,
}

#[derive(Debug)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { probe_started: Instant },
}

#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    threshold: u32,
    cool_down: Duration,
    consecutive_failures: u32,
    state: State,
}

impl CircuitBreaker {
    pub fn new(threshold: u32, cool_down: Duration) -> Self {
        CircuitBreaker {
            threshold: threshold.max(1),
            cool_down,
            consecutive_failures: 0,
            state: State::Closed,
        }
    }

    /// `Err(retry_in)` when the call must fail fast.
    pub fn check(&mut self, now: Instant) -> Result<(), Duration> {
        match self.state {
            State::Closed => Ok(()),
            State::Open { until } if now < until => Err(until - now),
            State::Open { .. } => {
                self.state = State::HalfOpen { probe_started: now };
                Ok(())
            }
            // A probe that never reported back (its caller was cancelled) must not wedge the
            // circuit: after another cool-down, let a new probe through.
            State::HalfOpen { probe_started } if now >= probe_started + self.cool_down => {
                self.state = State::HalfOpen { probe_started: now };
                Ok(())
            }
            State::HalfOpen { probe_started } => Err(probe_started + self.cool_down - now),
        }
    }

    /// The portal answered (anything but a transient failure).
    pub fn record_success(&mut self) {
        self.consecutive_failures = 0;
        self.state = State::Closed;
    }

    /// A transient failure (5xx, timeout, connection error). Returns `true` if this opened
    /// the circuit.
    pub fn record_failure(&mut self, now: Instant) -> bool {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let reopen = matches!(self.state, State::HalfOpen { .. });
        if reopen
            || (matches!(self.state, State::Closed) && self.consecutive_failures >= self.threshold)
        {
            self.state = State::Open {
                until: now + self.cool_down,
            };
            return true;
        }
        false
    }

    pub fn state(&self, now: Instant) -> CircuitState {
        match self.state {
            State::Closed => CircuitState::Closed,
            State::Open { until } if now < until => CircuitState::Open {
                retry_in: until - now,
            },
            State::Open { .. } | State::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_then_half_opens_and_closes_on_success() {
        let mut b = CircuitBreaker::new(3, Duration::from_secs(30));
        let t0 = Instant::now();
        assert!(!b.record_failure(t0));
        assert!(!b.record_failure(t0));
        assert!(b.record_failure(t0));
        assert_eq!(
            b.check(t0 + Duration::from_secs(10)),
            Err(Duration::from_secs(20))
        );
        let t1 = t0 + Duration::from_secs(30);
        assert_eq!(b.check(t1), Ok(()), "one probe");
        assert!(b.check(t1).is_err(), "only one probe at a time");
        b.record_success();
        assert_eq!(b.state(t1), CircuitState::Closed);
        assert_eq!(b.check(t1), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens_immediately() {
        let mut b = CircuitBreaker::new(1, Duration::from_secs(5));
        let t0 = Instant::now();
        assert!(b.record_failure(t0));
        let t1 = t0 + Duration::from_secs(5);
        b.check(t1).unwrap();
        assert!(b.record_failure(t1));
        assert_eq!(
            b.state(t1),
            CircuitState::Open {
                retry_in: Duration::from_secs(5)
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn successes_reset_the_failure_count() {
        let mut b = CircuitBreaker::new(2, Duration::from_secs(5));
        let t0 = Instant::now();
        b.record_failure(t0);
        b.record_success();
        assert!(!b.record_failure(t0));
        assert_eq!(b.check(t0), Ok(()));
    }
}
