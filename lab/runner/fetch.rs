//! Taking a job off the queues: what a worker asks for ([`Fetch`], with its
//! [`FetchMode`]) and the one loop that waits for a job to arrive
//! ([`wait_for_job`]), which every backend runs around its own single look.
//!
//! The loop is shared so that "register interest, look, wait until woken or
//! the deadline" is written once: the order of those steps is what keeps a
//! push that lands between the look and the wait from being missed.

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::backend::BackendResult;
use super::job::Job;

/// How a worker takes a job off a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FetchMode {
    /// Pop the job: if the worker dies while running it, the job is gone
    /// (Sidekiq OSS's `BRPOP`).
    Basic,
    /// Move it to the process's in-progress list; a process whose heartbeat
    /// expires has its jobs put back (Sidekiq Pro's super_fetch).
    #[default]
    Reliable,
}

/// One request for a job: from which queues (in strict priority), how it is
/// held while it runs, on behalf of which process, and how long to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fetch<'a> {
    /// Queue names, first non-empty one wins.
    pub queues: &'a [String],
    pub mode: FetchMode,
    /// The identity of the process that takes the job (its in-progress list,
    /// with reliable fetch).
    pub process: &'a str,
    /// Real time to wait for a job when every queue is empty; zero is one
    /// look.
    pub wait: Duration,
}

impl<'a> Fetch<'a> {
    /// One look at `queues`, no waiting.
    pub fn new(queues: &'a [String], mode: FetchMode, process: &'a str) -> Self {
        Self {
            queues,
            mode,
            process,
            wait: Duration::ZERO,
        }
    }

    /// The same request, waiting up to `wait` for a job.
    pub fn waiting(self, wait: Duration) -> Self {
        Self { wait, ..self }
    }
}

/// When a waiting fetch looks at the queues again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LookAgain {
    /// Only when woken: every push reaches the queues through this backend,
    /// so a wake-up cannot be missed (the memory backend).
    WhenWoken,
    /// When woken, and otherwise after a pause that doubles from `first` to
    /// `longest`: other processes push too, without waking anyone here (a
    /// Redis server shared with a Ruby client or another lab).
    WhenWokenOrAfter { first: Duration, longest: Duration },
}

/// Runs `look` (one non-blocking attempt to take a job) until it returns a
/// job, fails, or `wait` has passed; between two looks it sleeps until
/// `pushed` is notified or [`LookAgain`] says to look anyway.
///
/// Interest in `pushed` is registered before each look (a `Notified` future
/// receives `notify_waiters` from its creation on), so a push that lands
/// between a look that found nothing and the sleep still wakes it. A zero
/// `wait` is exactly one look, never a nap (tokio's timer would round even
/// a zero sleep up to its next millisecond tick).
pub(super) async fn wait_for_job<F, Fut>(
    pushed: &Notify,
    wait: Duration,
    look_again: LookAgain,
    mut look: F,
) -> BackendResult<Option<Job>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = BackendResult<Option<Job>>>,
{
    let deadline = Instant::now() + wait;
    let mut pause = match look_again {
        LookAgain::WhenWoken => wait,
        LookAgain::WhenWokenOrAfter { first, .. } => first,
    };
    loop {
        let woken = pushed.notified();
        if let Some(job) = look().await? {
            return Ok(Some(job));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        let nap = pause.min(deadline - now);
        tokio::select! {
            () = woken => {}
            () = tokio::time::sleep(nap) => {
                if let LookAgain::WhenWokenOrAfter { longest, .. } = look_again {
                    pause = (pause * 2).min(longest);
                }
            }
        }
    }
}
