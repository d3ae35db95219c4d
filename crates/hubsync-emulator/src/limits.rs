//! Rate limits counted the way HubSpot counts them: a rolling burst window per portal (or per
//! app, a setting), a daily budget for private-app tokens, and the search bucket.

use std::collections::{HashMap, VecDeque};

/// Which policy refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// The 10-second rolling burst window.
    TenSecondlyRolling,
    /// The daily budget.
    Daily,
    /// The search bucket.
    Secondly,
}

impl Policy {
    /// HubSpot's `policyName`.
    pub fn name(self) -> &'static str {
        match self {
            Policy::TenSecondlyRolling => "TEN_SECONDLY_ROLLING",
            Policy::Daily => "DAILY",
            Policy::Secondly => "SECONDLY",
        }
    }
}

/// Budget left after an admitted request, for the rate-limit headers.
#[derive(Debug, Clone, Copy)]
pub struct Admitted {
    /// `X-HubSpot-RateLimit-Max`.
    pub max: u32,
    /// `X-HubSpot-RateLimit-Remaining`.
    pub remaining: u32,
    /// `X-HubSpot-RateLimit-Interval-Milliseconds`.
    pub interval_ms: u64,
    /// `(daily, daily remaining)` for private-app tokens.
    pub daily: Option<(u64, u64)>,
    /// The deprecated, unenforced `(secondly, secondly remaining)` pair (a tenth of the burst).
    pub secondly: (u32, u32),
}

/// A refusal: the policy and how long until a slot frees (ms).
#[derive(Debug, Clone, Copy)]
pub struct Refused {
    /// The policy.
    pub policy: Policy,
    /// Milliseconds until the oldest counted request leaves the window.
    pub retry_in_ms: u64,
}

/// Counters of one portal.
#[derive(Debug, Default)]
pub struct Limiter {
    burst: HashMap<u64, VecDeque<i64>>,
    search: VecDeque<i64>,
    daily_day: i64,
    daily_used: u64,
}

/// Parameters for one burst check.
#[derive(Debug, Clone, Copy)]
pub struct BurstParams {
    /// Key of the budget (0 for the whole portal, else the app id).
    pub key: u64,
    /// Requests per window.
    pub max: u32,
    /// Window length.
    pub window_ms: u64,
    /// Requests a competing app holds in the window.
    pub competing: u32,
    /// Daily limit to enforce (private-app tokens).
    pub daily: Option<u64>,
}

fn prune(q: &mut VecDeque<i64>, now: i64, window: i64) {
    while q.front().is_some_and(|t| *t <= now - window) {
        q.pop_front();
    }
}

impl Limiter {
    /// Admits or refuses a non-search request.
    pub fn admit(&mut self, now: i64, p: BurstParams) -> Result<Admitted, Refused> {
        let window = i64::try_from(p.window_ms).unwrap_or(10_000);
        let q = self.burst.entry(p.key).or_default();
        prune(q, now, window);
        let used = u32::try_from(q.len())
            .unwrap_or(u32::MAX)
            .saturating_add(p.competing);
        if used >= p.max {
            let retry = q.front().map(|t| t + window - now).unwrap_or(window);
            return Err(Refused {
                policy: Policy::TenSecondlyRolling,
                retry_in_ms: u64::try_from(retry.max(1)).unwrap_or(1),
            });
        }
        let day = now.div_euclid(86_400_000);
        if day != self.daily_day {
            self.daily_day = day;
            self.daily_used = 0;
        }
        let daily = if let Some(limit) = p.daily {
            if self.daily_used >= limit {
                let retry = (day + 1) * 86_400_000 - now;
                return Err(Refused {
                    policy: Policy::Daily,
                    retry_in_ms: u64::try_from(retry.max(1)).unwrap_or(1),
                });
            }
            self.daily_used += 1;
            Some((limit, limit - self.daily_used))
        } else {
            self.daily_used += 1;
            None
        };
        q.push_back(now);
        let per_second = (p.max / 10).max(1);
        let last_second = q.iter().rev().take_while(|t| **t > now - 1000).count();
        let last_second = u32::try_from(last_second).unwrap_or(u32::MAX);
        Ok(Admitted {
            max: p.max,
            remaining: p.max - used - 1,
            interval_ms: p.window_ms,
            daily,
            secondly: (per_second, per_second.saturating_sub(last_second)),
        })
    }

    /// Admits or refuses a search request.
    pub fn admit_search(
        &mut self,
        now: i64,
        per_window: u32,
        window_ms: u64,
    ) -> Result<(), Refused> {
        let window = i64::try_from(window_ms).unwrap_or(1000);
        prune(&mut self.search, now, window);
        if self.search.len() >= usize::try_from(per_window).unwrap_or(usize::MAX) {
            let retry = self
                .search
                .front()
                .map(|t| t + window - now)
                .unwrap_or(window);
            return Err(Refused {
                policy: Policy::Secondly,
                retry_in_ms: u64::try_from(retry.max(1)).unwrap_or(1),
            });
        }
        self.search.push_back(now);
        Ok(())
    }
}
