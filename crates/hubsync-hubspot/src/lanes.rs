//! A lane: one rolling-window limiter shared by a portal's callers, handing out slots by
//! priority. A portal has two (general and search); they never borrow from each other.

use std::pin::pin;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::limiter::{Priority, RateLimitHeaders, RollingWindow, WindowView};

/// Which budget a request spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LaneKind {
    /// Every CRM call except search: the burst window (and the daily budget).
    General,
    /// CRM search: its own 5 requests/second.
    Search,
}

impl LaneKind {
    /// A stable name for metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            LaneKind::General => "general",
            LaneKind::Search => "search",
        }
    }
}

struct LaneInner {
    window: RollingWindow,
    waiting: [u32; 3],
    in_flight: u32,
}

pub(crate) struct Lane {
    inner: Mutex<LaneInner>,
    notify: Notify,
    /// Slots each priority must leave free for the ones above it.
    reserves: [u32; 3],
}

/// A granted slot; holding it counts the request as in flight.
pub(crate) struct Permit<'a> {
    lane: &'a Lane,
    pub sent_at: Instant,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut inner = self.lane.inner.lock();
        inner.in_flight = inner.in_flight.saturating_sub(1);
        inner.window.complete(self.sent_at, Instant::now());
    }
}

/// Counts a waiter of one priority for as long as it waits (also when its future is dropped).
struct Waiting<'a> {
    lane: &'a Lane,
    priority: usize,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut inner = self.lane.inner.lock();
        inner.waiting[self.priority] = inner.waiting[self.priority].saturating_sub(1);
        drop(inner);
        // Lower priorities may have been holding back for this waiter.
        self.lane.notify.notify_waiters();
    }
}

impl Lane {
    pub fn new(window: RollingWindow, reserves: [u32; 3]) -> Self {
        Lane {
            inner: Mutex::new(LaneInner {
                window,
                waiting: [0; 3],
                in_flight: 0,
            }),
            notify: Notify::new(),
            reserves,
        }
    }

    /// Waits for a slot. Higher priorities waiting go first; `max_wait` bounds the wait
    /// (`Err(expected_wait)` when it would be exceeded).
    pub async fn acquire(
        &self,
        priority: Priority,
        max_wait: Option<Duration>,
    ) -> Result<Permit<'_>, Duration> {
        let p = priority.index();
        let started = Instant::now();
        self.inner.lock().waiting[p] += 1;
        let _waiting = Waiting {
            lane: self,
            priority: p,
        };
        loop {
            let mut notified = pin!(self.notify.notified());
            notified.as_mut().enable();
            let wait = {
                let mut inner = self.inner.lock();
                let now = Instant::now();
                let higher_waiting = inner.waiting[..p].iter().any(|n| *n > 0);
                if higher_waiting {
                    // Re-check when a higher waiter leaves, or soon.
                    (inner.window.window() / 20).max(Duration::from_millis(5))
                } else {
                    match inner.window.try_acquire(now, self.reserves[p]) {
                        Ok(()) => {
                            inner.in_flight += 1;
                            return Ok(Permit {
                                lane: self,
                                sent_at: now,
                            });
                        }
                        Err(wait) => wait,
                    }
                }
            };
            if let Some(max) = max_wait
                && started.elapsed() + wait > max
            {
                return Err(wait);
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = notified => {}
            }
        }
    }

    pub fn observe(&self, headers: &RateLimitHeaders) {
        self.inner.lock().window.observe(headers, Instant::now());
        self.notify.notify_waiters();
    }

    /// After a 429: block the lane until the window frees (plus `jitter`); returns the wait.
    pub fn exhausted(
        &self,
        retry_after: Option<Duration>,
        attempt: u32,
        jitter: Duration,
    ) -> Duration {
        let mut inner = self.inner.lock();
        let now = Instant::now();
        let wait = inner.window.exhausted(now, retry_after, attempt) + jitter;
        inner.window.block_until(now + wait);
        wait
    }

    pub fn view(&self) -> (WindowView, u32) {
        let mut inner = self.inner.lock();
        let view = inner.window.view(Instant::now());
        (view, inner.in_flight)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn interactive_waiters_are_served_before_outbound_and_reconcile() {
        let lane = Arc::new(Lane::new(
            RollingWindow::new(1, Duration::from_secs(1), 0),
            [0, 0, 0],
        ));
        let first = lane.acquire(Priority::Outbound, None).await.unwrap();
        drop(first);
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for priority in [
            Priority::Reconcile,
            Priority::Outbound,
            Priority::Interactive,
        ] {
            let (lane, order) = (lane.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = lane.acquire(priority, None).await.unwrap();
                order.lock().push(priority);
            }));
            tokio::task::yield_now().await;
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            *order.lock(),
            vec![
                Priority::Interactive,
                Priority::Outbound,
                Priority::Reconcile
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn bounded_wait_gives_up_with_the_expected_wait() {
        let lane = Lane::new(RollingWindow::new(1, Duration::from_secs(10), 0), [0, 0, 0]);
        let _held = lane.acquire(Priority::Interactive, None).await.unwrap();
        let err = lane
            .acquire(Priority::Interactive, Some(Duration::from_secs(1)))
            .await
            .err();
        assert_eq!(err, Some(Duration::from_secs(10)));
        assert_eq!(lane.view().1, 1, "one in flight");
    }
}
