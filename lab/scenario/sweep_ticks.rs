//! The reminder scheduler of a simulated run: when it ticks and what it
//! enqueues.

use crate::pipeline::reminders;
use crate::runner::Runner;

/// The reminder scheduler, as a cron entry: it ticks at the top of every
/// minute ([`reminders::SWEEP_EVERY_MS`]) and enqueues a sweep (two when it
/// runs late, to overlap). A tick whose enqueue fails — the queue is down —
/// is made up by the next, as with a real scheduler; the simulator stops
/// ticking once its sweeps are enqueued, since later sweeps would find
/// nothing due and the run could never settle.
#[derive(Debug, Default)]
pub struct SweepTicks {
    /// Sweeps still to enqueue.
    pub left: usize,
    /// When the next tick comes.
    pub next_ms: u64,
}

impl SweepTicks {
    /// The first tick after `now_ms`.
    pub fn next_minute(now_ms: u64) -> u64 {
        (now_ms / reminders::SWEEP_EVERY_MS + 1) * reminders::SWEEP_EVERY_MS
    }

    /// When the scheduler next ticks, if it has sweeps left to enqueue.
    pub fn next_ms(&self) -> Option<u64> {
        (self.left > 0).then_some(self.next_ms)
    }

    /// Enqueues the sweeps left, if a tick is due at `now`.
    pub async fn tick(&mut self, runner: &Runner, now: u64) {
        if self.left == 0 || now < self.next_ms {
            return;
        }
        while self.left > 0 {
            if let Err(err) = reminders::schedule_sweep(runner.client()).await {
                tracing::debug!(%err, "the scheduler could not enqueue a sweep; it tries next minute");
                self.next_ms = Self::next_minute(now);
                return;
            }
            self.left -= 1;
        }
    }
}
