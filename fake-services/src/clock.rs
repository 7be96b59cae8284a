//! Time as the lab sees it.
//!
//! Fault windows (`for_ms`), search lag and injected latency all read time
//! through [`Clock`], so the same rules run on the wall clock over HTTP and on a
//! virtual clock in tests and in the deterministic simulator, where waiting a
//! day costs nothing and no test has to sleep.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

/// A future returned by [`Clock::sleep`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A source of time that can also wait.
///
/// Implementations must be cheap to call: the services read the clock on every
/// request.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Completes once `ms` milliseconds of this clock's time have passed.
    fn sleep(&self, ms: u64) -> Sleep;

    /// A point where another task may run first: every call to a service
    /// is one. A simulator's clock decides there, from its seed, which of
    /// the waiting tasks goes next, so that concurrent jobs interleave the
    /// same way on every run; elsewhere it only yields.
    fn interleave(&self) -> Sleep {
        Box::pin(tokio::task::yield_now())
    }

    /// Runs `work` after its caller stopped waiting for it: the effect of a
    /// call whose client gave up still lands, behind the server. A
    /// simulator's clock schedules it with everything else.
    fn detach(&self, work: Sleep) {
        tokio::spawn(work);
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The wall clock, used when the services run for real.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    fn sleep(&self, ms: u64) -> Sleep {
        Box::pin(tokio::time::sleep(Duration::from_millis(ms)))
    }
}

/// A clock that moves only when told to.
///
/// Sleepers wake as soon as [`ManualClock::advance`] carries the time past
/// their deadline, so tests of windows, lag and in-flight requests are exact
/// and never wait on real time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<watch::Sender<u64>>,
    /// Deadline → how many sleeps wait for it.
    deadlines: Arc<Mutex<BTreeMap<u64, usize>>>,
}

impl ManualClock {
    /// A clock that reads `start_ms` until advanced.
    pub fn new(start_ms: u64) -> Self {
        let (tx, _rx) = watch::channel(start_ms);
        Self {
            now: Arc::new(tx),
            deadlines: Arc::default(),
        }
    }

    /// Moves time forward by `ms` and wakes every sleeper whose deadline passed.
    pub fn advance(&self, ms: u64) {
        self.now.send_modify(|now| *now += ms);
    }

    /// Moves time forward to `ms` (never back).
    pub fn advance_to(&self, ms: u64) {
        self.now.send_modify(|now| *now = (*now).max(ms));
    }

    /// How many sleeps are waiting on this clock: lets a test wait until a
    /// request has reached its injected latency before moving time.
    pub fn sleepers(&self) -> usize {
        self.now.receiver_count()
    }

    /// The earliest deadline a sleep waits for: where a simulation whose
    /// every task waits on this clock moves time next.
    pub fn next_deadline(&self) -> Option<u64> {
        self.deadlines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .next()
            .copied()
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        // 2026-01-01T00:00:00Z: a fixed, readable start for reproducible ledgers.
        Self::new(1_767_225_600_000)
    }
}

/// Keeps a sleep's deadline registered while the sleep exists.
struct Registered {
    deadlines: Arc<Mutex<BTreeMap<u64, usize>>>,
    deadline: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut deadlines = self.deadlines.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = deadlines.get_mut(&self.deadline) {
            *count -= 1;
            if *count == 0 {
                deadlines.remove(&self.deadline);
            }
        }
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        *self.now.borrow()
    }

    fn sleep(&self, ms: u64) -> Sleep {
        let mut rx = self.now.subscribe();
        let deadline = *rx.borrow() + ms;
        *self
            .deadlines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(deadline)
            .or_default() += 1;
        let registered = Registered {
            deadlines: self.deadlines.clone(),
            deadline,
        };
        Box::pin(async move {
            let _registered = registered;
            // The sender lives as long as the clock; if it is gone, time has
            // stopped for good and the sleeper is released.
            let _ = rx.wait_for(|now| *now >= deadline).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_sleep_completes_only_after_advance() {
        let clock = ManualClock::new(1_000);
        let mut sleep = clock.sleep(500);
        assert_eq!(clock.sleepers(), 1);
        assert!(futures_poll_once(&mut sleep).await.is_none());
        clock.advance(499);
        assert!(futures_poll_once(&mut sleep).await.is_none());
        assert_eq!(clock.next_deadline(), Some(1_500));
        clock.advance(1);
        sleep.await;
        assert_eq!(clock.now_ms(), 1_500);
        assert_eq!(clock.sleepers(), 0);
        assert_eq!(clock.next_deadline(), None, "a finished sleep is forgotten");
    }

    async fn futures_poll_once(sleep: &mut Sleep) -> Option<()> {
        tokio::time::timeout(Duration::from_millis(0), sleep.as_mut())
            .await
            .ok()
    }
}
