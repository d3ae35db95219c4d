//! Backoff arithmetic shared by every retrying component. Pure: the caller supplies the
//! randomness, so schedules are testable and reproducible from a seed.

use std::time::Duration;

/// Capped exponential backoff with full jitter.
///
/// `attempt` counts from 0. The un-jittered delay is `base × 2^attempt`, capped at `cap`;
/// `unit` (in `[0, 1)`) picks a point in the upper half of that delay, so retries spread out
/// without ever collapsing to zero.
pub fn backoff(attempt: u32, base: Duration, cap: Duration, unit: f64) -> Duration {
    let exp = base.saturating_mul(1u32.checked_shl(attempt.min(30)).unwrap_or(u32::MAX));
    let ceiling = exp.min(cap);
    let unit = unit.clamp(0.0, 1.0);
    ceiling.mul_f64(0.5 + unit * 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(5);
        assert_eq!(backoff(0, base, cap, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(3, base, cap, 1.0), Duration::from_millis(800));
        assert_eq!(backoff(20, base, cap, 1.0), cap);
        assert_eq!(backoff(3, base, cap, 0.0), Duration::from_millis(400));
        assert_eq!(backoff(u32::MAX, base, cap, 0.5), cap.mul_f64(0.75));
    }
}
