//! The pure rate-limit arithmetic behind the lanes: a rolling-window send log whose view is
//! corrected by HubSpot's headers, the daily budget, and the header parser. No clocks are
//! read here: callers pass `now`, so every rule is unit-testable.

use std::collections::VecDeque;
use std::time::Duration;

use time::{OffsetDateTime, UtcOffset};
use tokio::time::Instant;

/// Who is asking for a slot. Inside one portal's budget, higher priorities go first and
/// lower ones leave headroom for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// API read-through on behalf of a waiting user.
    Interactive = 0,
    /// Outbound writes draining the outbox.
    Outbound = 1,
    /// Reconciliation scans and imports.
    Reconcile = 2,
}

impl Priority {
    /// All priorities, highest first.
    pub const ALL: [Priority; 3] = [
        Priority::Interactive,
        Priority::Outbound,
        Priority::Reconcile,
    ];

    /// A stable lower-case name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Interactive => "interactive",
            Priority::Outbound => "outbound",
            Priority::Reconcile => "reconcile",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// What one response's headers said about a rolling window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RateLimitHeaders {
    /// Requests allowed per window.
    pub max: Option<u32>,
    /// Requests left in the window, as the server counts them (all apps together).
    pub remaining: Option<u32>,
    /// The window length.
    pub interval: Option<Duration>,
    /// Time until the window resets (IETF `RateLimit-Reset`; HubSpot's window is rolling).
    pub reset_in: Option<Duration>,
    /// Daily allowance (private apps only).
    pub daily: Option<u64>,
    /// Daily requests left.
    pub daily_remaining: Option<u64>,
}

impl RateLimitHeaders {
    /// Reads HubSpot's `X-HubSpot-RateLimit-*` headers, falling back to the IETF
    /// `RateLimit-Limit/-Remaining/-Reset` trio or a combined `RateLimit` header.
    pub fn parse(headers: &http::HeaderMap) -> Self {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let leading_int = |name: &str| text(name).and_then(leading_integer);
        let mut parsed = RateLimitHeaders {
            max: leading_int("x-hubspot-ratelimit-max").and_then(|v| u32::try_from(v).ok()),
            remaining: leading_int("x-hubspot-ratelimit-remaining")
                .and_then(|v| u32::try_from(v).ok()),
            interval: leading_int("x-hubspot-ratelimit-interval-milliseconds").map(header_millis),
            reset_in: None,
            daily: leading_int("x-hubspot-ratelimit-daily"),
            daily_remaining: leading_int("x-hubspot-ratelimit-daily-remaining"),
        };
        if parsed.max.is_none() && parsed.remaining.is_none() {
            parsed.max = leading_int("ratelimit-limit").and_then(|v| u32::try_from(v).ok());
            parsed.remaining =
                leading_int("ratelimit-remaining").and_then(|v| u32::try_from(v).ok());
            parsed.reset_in = leading_int("ratelimit-reset").map(header_secs);
            if let Some(combined) = text("ratelimit") {
                parse_combined(combined, &mut parsed);
            }
        }
        parsed
    }

    /// Whether any window information is present.
    pub fn has_window(&self) -> bool {
        self.max.is_some() || self.remaining.is_some()
    }
}

/// Durations read from headers are capped, so a hostile or garbled value cannot overflow the
/// clock arithmetic.
const MAX_HEADER_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

fn header_millis(ms: u64) -> Duration {
    Duration::from_millis(ms).min(MAX_HEADER_DURATION)
}

fn header_secs(secs: u64) -> Duration {
    Duration::from_secs(secs.min(MAX_HEADER_DURATION.as_secs()))
}

fn leading_integer(value: &str) -> Option<u64> {
    let digits: String = value
        .trim()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// `limit=100, remaining=50, reset=5` (IETF drafts up to 07) or `"default";r=50;t=30`
/// (draft 08 and later).
fn parse_combined(value: &str, out: &mut RateLimitHeaders) {
    for part in value.split([',', ';']) {
        let Some((key, val)) = part.split_once('=') else {
            continue;
        };
        let Some(n) = leading_integer(val) else {
            continue;
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "limit" | "l" => out.max = out.max.or(u32::try_from(n).ok()),
            "remaining" | "r" => out.remaining = out.remaining.or(u32::try_from(n).ok()),
            "reset" | "t" => out.reset_in = out.reset_in.or(Some(header_secs(n))),
            _ => {}
        }
    }
}

/// A rolling-window limiter: an exact log of our own send times, plus an estimate of what
/// other apps spend in the same window, learnt from the server's `Remaining` header.
#[derive(Debug)]
pub(crate) struct RollingWindow {
    max: u32,
    window: Duration,
    /// Slack kept free while other apps share the budget.
    contention_margin: u32,
    /// Our send times within the last `window`, oldest first.
    sends: VecDeque<Instant>,
    /// Requests other apps spent in the window when last observed.
    foreign: u32,
    foreign_seen_at: Option<Instant>,
    /// Under contention, sends are spaced evenly; this is when the next one may go.
    next_paced: Option<Instant>,
    /// A hard stop after a 429 or an exhausted window.
    blocked_until: Option<Instant>,
}

/// A snapshot of one window for [`crate::BudgetView`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowView {
    pub limit: u32,
    pub remaining: u32,
    pub window: Duration,
    pub reset_in: Duration,
}

impl RollingWindow {
    pub fn new(max: u32, window: Duration, contention_margin: u32) -> Self {
        RollingWindow {
            max: max.max(1),
            window: window.max(Duration::from_millis(1)),
            contention_margin,
            sends: VecDeque::with_capacity(max as usize),
            foreign: 0,
            foreign_seen_at: None,
            next_paced: None,
            blocked_until: None,
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    fn prune(&mut self, now: Instant) {
        while let Some(&oldest) = self.sends.front() {
            if oldest + self.window <= now {
                self.sends.pop_front();
            } else {
                break;
            }
        }
    }

    /// Other apps' usage now. Held as last observed for one window (a competitor's usage is
    /// steady until a response says otherwise: assuming it fades would let us overshoot while
    /// we wait without sending), then dropped so a paced probe can find out.
    fn foreign_now(&self, now: Instant) -> u32 {
        match self.foreign_seen_at {
            Some(seen) if now.saturating_duration_since(seen) < self.window => self.foreign,
            _ => 0,
        }
    }

    /// Whether another app was seen spending this budget recently (two windows): sends are
    /// paced rather than burst while that holds.
    fn contended(&self, now: Instant) -> bool {
        self.foreign > 0
            && self
                .foreign_seen_at
                .is_some_and(|seen| now.saturating_duration_since(seen) < self.window * 2)
    }

    /// How many requests we may have in the window right now.
    fn capacity(&self, now: Instant) -> u32 {
        let foreign = self.foreign_now(now);
        if foreign == 0 {
            self.max
        } else {
            self.max
                .saturating_sub(foreign)
                .saturating_sub(self.contention_margin)
        }
    }

    /// Takes a slot if one is free for a caller that must leave `reserve` slots to higher
    /// priorities; otherwise says how long to wait before asking again.
    pub fn try_acquire(&mut self, now: Instant, reserve: u32) -> Result<(), Duration> {
        self.prune(now);
        if let Some(until) = self.blocked_until {
            if now < until {
                return Err(until - now);
            }
            self.blocked_until = None;
        }
        let capacity = self.capacity(now);
        let used = u32::try_from(self.sends.len()).unwrap_or(u32::MAX);
        if used.saturating_add(reserve) >= capacity {
            return Err(self.wait_for_room(now, used, reserve, capacity));
        }
        if self.contended(now) {
            if let Some(next) = self.next_paced
                && now < next
            {
                return Err(next - now);
            }
            // Spread what is left of the shared budget evenly over the window.
            self.next_paced = Some(now + self.window / capacity.max(1));
        } else {
            self.next_paced = None;
        }
        self.sends.push_back(now);
        Ok(())
    }

    fn wait_for_room(&self, now: Instant, used: u32, reserve: u32, capacity: u32) -> Duration {
        // The oldest `need` of our sends must age out before there is room...
        let need = used
            .saturating_add(reserve)
            .saturating_add(1)
            .saturating_sub(capacity) as usize;
        let ours_free = need
            .checked_sub(1)
            .and_then(|i| self.sends.get(i))
            .map(|&t| (t + self.window).saturating_duration_since(now));
        // ...unless the estimate of other apps' usage goes stale first.
        let estimate_stale = self
            .foreign_seen_at
            .filter(|_| self.foreign_now(now) > 0)
            .map(|seen| (seen + self.window).saturating_duration_since(now));
        let wait = match (ours_free, estimate_stale) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => self.window / 20,
        };
        wait.max(Duration::from_millis(1))
    }

    /// A request sent at `sent_at` has completed (or was abandoned) at `now`. The server
    /// counted it somewhere in between, so from now on it is logged at `now`: when the log says
    /// a slot is free, it is free on the server too, whatever the latency.
    pub fn complete(&mut self, sent_at: Instant, now: Instant) {
        if let Some(pos) = self.sends.iter().position(|t| *t == sent_at) {
            self.sends.remove(pos);
        }
        let at = self.sends.partition_point(|t| *t <= now);
        self.sends.insert(at, now);
    }

    /// Corrects the view from a response's headers: what the server counted, minus what we
    /// have in the window, is other apps' usage.
    pub fn observe(&mut self, headers: &RateLimitHeaders, now: Instant) {
        if let Some(max) = headers.max.filter(|m| *m > 0) {
            self.max = max;
        }
        if let Some(interval) = headers.interval.filter(|i| !i.is_zero()) {
            self.window = interval;
        }
        self.prune(now);
        if let Some(remaining) = headers.remaining {
            // Everything of ours still in the window, including requests sent after this one:
            // the server may have counted those already (requests overtake each other), and
            // mistaking our own in-flight requests for another app would throttle a portal
            // we have to ourselves. The error the other way (requests the server has not seen
            // yet) is bounded by what is in flight, which pacing keeps small under contention.
            let ours = u32::try_from(self.sends.len()).unwrap_or(u32::MAX);
            let used_by_all = self.max.saturating_sub(remaining);
            self.foreign = used_by_all.saturating_sub(ours);
            self.foreign_seen_at = Some(now);
            if let Some(reset_in) = headers.reset_in {
                if remaining == 0 {
                    self.block_until(now + reset_in);
                } else {
                    // A fixed window: pace what is left over the time until it resets.
                    let gap = reset_in / remaining.saturating_add(1);
                    self.next_paced = Some(self.next_paced.map_or(now + gap, |n| n.max(now + gap)));
                }
            }
        }
    }

    /// After a 429: nothing is left in the window as far as the server is concerned.
    /// Returns how long to wait before the window frees (`retry_after` wins when given).
    pub fn exhausted(
        &mut self,
        now: Instant,
        retry_after: Option<Duration>,
        attempt: u32,
    ) -> Duration {
        self.prune(now);
        let ours = u32::try_from(self.sends.len()).unwrap_or(u32::MAX);
        self.foreign = self.max.saturating_sub(ours);
        self.foreign_seen_at = Some(now);
        let wait = retry_after.unwrap_or_else(|| match self.sends.front() {
            Some(&oldest) => (oldest + self.window).saturating_duration_since(now),
            // Everything in the window is someone else's: probe again after a growing slice.
            None => (self.window / 10)
                .saturating_mul(1 << attempt.min(3))
                .min(self.window),
        });
        let wait = wait.max(Duration::from_millis(10));
        self.block_until(now + wait);
        wait
    }

    pub fn block_until(&mut self, until: Instant) {
        self.blocked_until = Some(self.blocked_until.map_or(until, |b| b.max(until)));
    }

    pub fn view(&mut self, now: Instant) -> WindowView {
        self.prune(now);
        let used = u32::try_from(self.sends.len()).unwrap_or(u32::MAX);
        let blocked = self.blocked_until.is_some_and(|b| b > now);
        let reset_in = match (self.blocked_until, self.sends.front()) {
            (Some(b), _) if b > now => b - now,
            (_, Some(&oldest)) => (oldest + self.window).saturating_duration_since(now),
            _ => Duration::ZERO,
        };
        WindowView {
            limit: self.max,
            remaining: if blocked {
                0
            } else {
                self.capacity(now).saturating_sub(used)
            },
            window: self.window,
            reset_in,
        }
    }
}

/// The daily allowance: counted locally, corrected by `X-HubSpot-RateLimit-Daily-Remaining`,
/// parked after a DAILY 429 until the reset (midnight in the configured offset).
#[derive(Debug)]
pub(crate) struct DailyBudget {
    limit: Option<u64>,
    remaining: Option<u64>,
    reset_offset: UtcOffset,
    reset_at: OffsetDateTime,
    parked_until: Option<OffsetDateTime>,
}

impl DailyBudget {
    pub fn new(limit: Option<u64>, reset_offset: UtcOffset, now: OffsetDateTime) -> Self {
        DailyBudget {
            limit,
            remaining: limit,
            reset_offset,
            reset_at: next_reset(now, reset_offset),
            parked_until: None,
        }
    }

    fn roll_over(&mut self, now: OffsetDateTime) {
        if now >= self.reset_at {
            self.reset_at = next_reset(now, self.reset_offset);
            self.remaining = self.limit;
            self.parked_until = None;
        }
    }

    /// `Err((reset_at, newly_parked))` when a call of this priority must not spend the daily
    /// budget now. Interactive calls are never parked: HubSpot answers them itself.
    pub fn check(
        &mut self,
        now: OffsetDateTime,
        priority: Priority,
    ) -> Result<(), (OffsetDateTime, bool)> {
        self.roll_over(now);
        if priority == Priority::Interactive {
            return Ok(());
        }
        if let Some(until) = self.parked_until {
            return Err((until, false));
        }
        if self.remaining == Some(0) {
            self.parked_until = Some(self.reset_at);
            return Err((self.reset_at, true));
        }
        Ok(())
    }

    pub fn record_send(&mut self) {
        if let Some(r) = self.remaining.as_mut() {
            *r = r.saturating_sub(1);
        }
    }

    pub fn observe(&mut self, headers: &RateLimitHeaders) {
        if let Some(limit) = headers.daily {
            self.limit = Some(limit);
        }
        if let Some(remaining) = headers.daily_remaining {
            self.remaining = Some(remaining);
        }
    }

    /// Parks non-interactive calls until the reset. Returns `true` the first time (so the
    /// caller logs it once).
    pub fn park(&mut self, now: OffsetDateTime) -> (OffsetDateTime, bool) {
        self.roll_over(now);
        let first = self.parked_until.is_none();
        self.parked_until = Some(self.reset_at);
        self.remaining = Some(0);
        (self.reset_at, first)
    }

    pub fn remaining(&self) -> Option<u64> {
        self.remaining
    }

    pub fn parked_until(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        self.parked_until.filter(|p| *p > now)
    }
}

/// The next midnight in `offset` strictly after `now`.
pub(crate) fn next_reset(now: OffsetDateTime, offset: UtcOffset) -> OffsetDateTime {
    let local = now.to_offset(offset);
    match local.date().next_day() {
        Some(day) => day.midnight().assume_offset(offset),
        None => local.replace_time(time::Time::MIDNIGHT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};
    use time::macros::datetime;

    const W: Duration = Duration::from_secs(10);

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn fill(w: &mut RollingWindow, now: Instant, reserve: u32) -> u32 {
        let mut n = 0;
        while w.try_acquire(now, reserve).is_ok() {
            n += 1;
        }
        n
    }

    #[test]
    fn hubspot_headers_parse() {
        let h = headers(&[
            ("X-HubSpot-RateLimit-Max", "150"),
            ("X-HubSpot-RateLimit-Remaining", "149"),
            ("X-HubSpot-RateLimit-Interval-Milliseconds", "10000"),
            ("X-HubSpot-RateLimit-Daily", "500000"),
            ("X-HubSpot-RateLimit-Daily-Remaining", "498677"),
        ]);
        let p = RateLimitHeaders::parse(&h);
        assert_eq!(p.max, Some(150));
        assert_eq!(p.remaining, Some(149));
        assert_eq!(p.interval, Some(W));
        assert_eq!(p.daily_remaining, Some(498677));
    }

    #[test]
    fn ietf_headers_parse_in_both_styles() {
        let p = RateLimitHeaders::parse(&headers(&[
            ("ratelimit-limit", "100, 100;w=10"),
            ("RateLimit-Remaining", "7"),
            ("RateLimit-Reset", "3"),
        ]));
        assert_eq!(
            (p.max, p.remaining, p.reset_in),
            (Some(100), Some(7), Some(Duration::from_secs(3)))
        );
        let p = RateLimitHeaders::parse(&headers(&[("RateLimit", "\"default\";r=4;t=2")]));
        assert_eq!(
            (p.remaining, p.reset_in),
            (Some(4), Some(Duration::from_secs(2)))
        );
        let p =
            RateLimitHeaders::parse(&headers(&[("RateLimit", "limit=9, remaining=1, reset=5")]));
        assert_eq!((p.max, p.remaining), (Some(9), Some(1)));
        assert!(!RateLimitHeaders::parse(&HeaderMap::new()).has_window());
    }

    #[tokio::test(start_paused = true)]
    async fn absurd_header_values_are_capped_not_panicked_on() {
        let h = RateLimitHeaders::parse(&headers(&[
            (
                "x-hubspot-ratelimit-interval-milliseconds",
                "18446744073709551615",
            ),
            ("ratelimit-reset", "18446744073709551615"),
        ]));
        assert_eq!(h.interval, Some(MAX_HEADER_DURATION));
        let h = RateLimitHeaders::parse(&headers(&[
            ("ratelimit-remaining", "0"),
            ("ratelimit-reset", "18446744073709551615"),
            ("ratelimit-limit", "4294967295"),
        ]));
        let mut w = RollingWindow::new(10, W, 0);
        let t0 = Instant::now();
        w.observe(&h, t0);
        assert_eq!(w.try_acquire(t0, u32::MAX), Err(MAX_HEADER_DURATION));
    }

    #[tokio::test(start_paused = true)]
    async fn sole_client_may_burst_the_whole_window_then_waits_for_the_oldest_send() {
        let mut w = RollingWindow::new(110, W, 3);
        let t0 = Instant::now();
        assert_eq!(fill(&mut w, t0, 0), 110);
        let wait = w.try_acquire(t0 + Duration::from_secs(4), 0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(6));
        assert!(w.try_acquire(t0 + W, 0).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_frees_a_window_after_the_response_not_after_the_send() {
        let mut w = RollingWindow::new(1, W, 0);
        let t0 = Instant::now();
        w.try_acquire(t0, 0).unwrap();
        let answered = t0 + Duration::from_millis(300);
        w.complete(t0, answered);
        assert_eq!(w.try_acquire(t0 + W, 0), Err(Duration::from_millis(300)));
        assert!(w.try_acquire(answered + W, 0).is_ok());
    }

    /// The safety property behind invariant 5: whatever the latencies, the server never counts
    /// more than `max` of our requests in any window. Simulated time, seeded randomness.
    #[tokio::test(start_paused = true)]
    async fn the_server_never_sees_more_than_max_in_any_window_whatever_the_latency() {
        use rand::{Rng, SeedableRng};
        const MAX: u32 = 10;
        const WINDOW_MS: u64 = 1_000;
        for seed in 0..20u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut w = RollingWindow::new(MAX, Duration::from_millis(WINDOW_MS), 0);
            let t0 = Instant::now();
            let ms = |n: u64| t0 + Duration::from_millis(n);
            // (sent, completes) of requests in flight; arrival times the server saw.
            let mut in_flight: Vec<(Instant, u64)> = Vec::new();
            let mut arrivals: Vec<u64> = Vec::new();
            let mut idle_workers = 5usize;
            for now in 0..30_000u64 {
                in_flight.retain(|&(sent, done)| {
                    if done == now {
                        w.complete(sent, ms(now));
                        idle_workers += 1;
                        false
                    } else {
                        true
                    }
                });
                while idle_workers > 0 && w.try_acquire(ms(now), 0).is_ok() {
                    let to_server = rng.random_range(0..150u64);
                    let back = rng.random_range(0..150u64);
                    arrivals.push(now + to_server);
                    in_flight.push((ms(now), now + to_server + back + 1));
                    idle_workers -= 1;
                }
            }
            arrivals.sort_unstable();
            for (i, &a) in arrivals.iter().enumerate() {
                let in_window = arrivals[..=i]
                    .iter()
                    .filter(|&&b| b + WINDOW_MS > a)
                    .count();
                assert!(
                    in_window <= MAX as usize,
                    "seed {seed}: {in_window} in the window ending {a} ms"
                );
            }
            // And the budget is used, not hoarded: at least 85% of the bound over 30 windows.
            assert!(
                arrivals.len() >= (30 * MAX as usize) * 85 / 100,
                "seed {seed}: {}",
                arrivals.len()
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn lower_priorities_leave_reserved_headroom() {
        let mut w = RollingWindow::new(10, W, 0);
        let t0 = Instant::now();
        assert_eq!(fill(&mut w, t0, 4), 6, "reconcile leaves 4");
        assert_eq!(fill(&mut w, t0, 2), 2, "outbound leaves 2");
        assert_eq!(fill(&mut w, t0, 0), 2, "interactive takes the rest");
    }

    #[tokio::test(start_paused = true)]
    async fn a_competing_app_shrinks_our_share_and_spaces_our_sends() {
        let mut w = RollingWindow::new(110, W, 3);
        let t0 = Instant::now();
        w.try_acquire(t0, 0).unwrap();
        // The server counted 56 in the window, one of them ours: 55 are someone else's.
        let h = RateLimitHeaders {
            max: Some(110),
            remaining: Some(54),
            ..Default::default()
        };
        w.observe(&h, t0);
        let view = w.view(t0);
        assert_eq!(view.remaining, 110 - 55 - 3 - 1);
        // Paced: one send now, the next a slot-width away.
        w.try_acquire(t0, 0).unwrap();
        let wait = w.try_acquire(t0, 0).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= W / 50, "{wait:?}");
        assert_eq!(fill(&mut w, t0 + wait, 0), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn foreign_usage_estimate_holds_for_a_window_then_a_paced_probe_goes_out() {
        let mut w = RollingWindow::new(100, W, 0);
        let t0 = Instant::now();
        let h = RateLimitHeaders {
            remaining: Some(0),
            ..Default::default()
        };
        w.observe(&h, t0);
        assert_eq!(w.try_acquire(t0, 0), Err(W));
        assert!(
            w.try_acquire(t0 + Duration::from_secs(5), 0).is_err(),
            "no fading while we wait"
        );
        assert!(
            w.try_acquire(t0 + W, 0).is_ok(),
            "stale after a window: probe"
        );
        assert!(
            w.try_acquire(t0 + W, 0).is_err(),
            "probes are paced, not burst"
        );
        assert_eq!(w.view(t0 + W).remaining, 99);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_blocks_until_our_oldest_send_ages_out_or_retry_after() {
        let mut w = RollingWindow::new(10, W, 0);
        let t0 = Instant::now();
        w.try_acquire(t0, 0).unwrap();
        let wait = w.exhausted(t0 + Duration::from_secs(3), None, 0);
        assert_eq!(wait, Duration::from_secs(7));
        assert!(w.try_acquire(t0 + Duration::from_secs(5), 0).is_err());
        let wait = w.exhausted(t0 + Duration::from_secs(5), Some(Duration::from_secs(9)), 0);
        assert_eq!(wait, Duration::from_secs(9));
        assert_eq!(w.view(t0 + Duration::from_secs(5)).remaining, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn ietf_reset_with_nothing_left_blocks_until_reset() {
        let mut w = RollingWindow::new(10, W, 0);
        let t0 = Instant::now();
        let h = RateLimitHeaders {
            remaining: Some(0),
            reset_in: Some(Duration::from_secs(2)),
            ..Default::default()
        };
        w.observe(&h, t0);
        assert_eq!(w.try_acquire(t0, 0), Err(Duration::from_secs(2)));
    }

    #[tokio::test(start_paused = true)]
    async fn server_max_and_interval_replace_the_configured_tier() {
        let mut w = RollingWindow::new(110, W, 0);
        let t0 = Instant::now();
        let h = RateLimitHeaders {
            max: Some(190),
            interval: Some(Duration::from_secs(1)),
            ..Default::default()
        };
        w.observe(&h, t0);
        let v = w.view(t0);
        assert_eq!((v.limit, v.window), (190, Duration::from_secs(1)));
    }

    #[test]
    fn daily_budget_parks_non_interactive_calls_until_midnight_utc() {
        let now = datetime!(2026-12-03 17:00 UTC);
        let mut d = DailyBudget::new(None, UtcOffset::UTC, now);
        assert_eq!(d.check(now, Priority::Outbound), Ok(()));
        let (until, first) = d.park(now);
        assert_eq!(until, datetime!(2026-12-04 0:00 UTC));
        assert!(first);
        assert!(!d.park(now).1, "parking twice is not news");
        assert_eq!(d.check(now, Priority::Reconcile), Err((until, false)));
        assert_eq!(d.check(now, Priority::Interactive), Ok(()));
        assert_eq!(
            d.check(datetime!(2026-12-04 0:00:01 UTC), Priority::Outbound),
            Ok(())
        );
    }

    #[test]
    fn daily_remaining_header_counts_down_and_parks_at_zero() {
        let now = datetime!(2026-12-03 17:00 UTC);
        let mut d = DailyBudget::new(Some(250_000), UtcOffset::UTC, now);
        d.observe(&RateLimitHeaders {
            daily_remaining: Some(1),
            ..Default::default()
        });
        assert_eq!(d.check(now, Priority::Outbound), Ok(()));
        d.record_send();
        assert_eq!(
            d.check(now, Priority::Outbound),
            Err((datetime!(2026-12-04 0:00 UTC), true))
        );
        assert_eq!(d.remaining(), Some(0));
    }

    #[test]
    fn next_reset_respects_the_account_offset() {
        let off = UtcOffset::from_hms(-5, 0, 0).unwrap();
        let now = datetime!(2026-12-03 03:00 UTC); // 22:00 on the 2nd in UTC-5
        assert_eq!(next_reset(now, off), datetime!(2026-12-03 05:00 UTC));
    }
}
