//! Taking a job off the queues: what a worker asks for ([`Fetch`], with its
//! [`FetchMode`]) and the one loop that waits for a job to arrive
//! (`wait_for_job`), which every backend runs around its own single look.
//!
//! The loop is shared so that "register interest, look, wait until woken or
//! the deadline" is written once: the order of those steps is what keeps a
//! push that lands between the look and the wait from being missed.

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::Instant;

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
    /// Which call of which fetcher this is, when the fetcher asks again with
    /// the same call after a failed one ([`FetchCall`]); `None`: a one-off.
    pub call: Option<FetchCall>,
}

/// One call of one of a process's fetchers: `slot` is the fetcher (0 to
/// concurrency - 1), `n` counts its calls and moves on only once a call has
/// been answered.
///
/// A call can take a job on the server and still fail on the client: Redis
/// stopped between running the script and sending its reply, and the job is
/// now in the in-progress list of a process that is alive and beating, so
/// no recovery would ever put it back (the order waits forever). Asked again
/// with the same call, a backend that keeps the job each call took answers
/// with that job instead of taking another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchCall {
    pub slot: usize,
    pub n: u64,
}

impl<'a> Fetch<'a> {
    /// One look at `queues`, no waiting.
    pub fn new(queues: &'a [String], mode: FetchMode, process: &'a str) -> Self {
        Self {
            queues,
            mode,
            process,
            wait: Duration::ZERO,
            call: None,
        }
    }

    /// The same request, waiting up to `wait` for a job.
    pub fn waiting(self, wait: Duration) -> Self {
        Self { wait, ..self }
    }

    /// The same request, as `call` of a fetcher.
    pub fn as_call(self, call: FetchCall) -> Self {
        Self {
            call: Some(call),
            ..self
        }
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
///
/// Generic over what is taken and how a look fails, so that the loop knows
/// nothing of the backends that run it.
pub(super) async fn wait_for_job<T, E, F, Fut>(
    pushed: &Notify,
    wait: Duration,
    look_again: LookAgain,
    mut look: F,
) -> Result<Option<T>, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, E>>,
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::runner::backend::{BackendError, BackendResult};
    use crate::runner::job::Job;

    /// Far beyond what a test needs: reaching it means a wake-up was missed.
    const LONG: Duration = Duration::from_secs(30);
    const POLL: LookAgain = LookAgain::WhenWokenOrAfter {
        first: Duration::from_millis(1),
        longest: Duration::from_millis(20),
    };

    fn a_job() -> Job {
        Job::new("J", vec![], "default", "a".repeat(24), 0)
    }

    /// Runs the loop with a `look` that answers `answers[i]` on its i-th call
    /// (then nothing), calling `between` after each look; returns the result,
    /// how many looks there were and how long it took.
    async fn run(
        pushed: &Notify,
        wait: Duration,
        look_again: LookAgain,
        answers: Vec<BackendResult<Option<Job>>>,
        between: impl Fn(usize),
    ) -> (BackendResult<Option<Job>>, usize, Duration) {
        let looks = AtomicUsize::new(0);
        let answers = std::sync::Mutex::new(answers.into_iter());
        let started = Instant::now();
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            wait_for_job(pushed, wait, look_again, || {
                let n = looks.fetch_add(1, Ordering::SeqCst);
                let answer = answers.lock().unwrap().next().unwrap_or(Ok(None));
                between(n);
                std::future::ready(answer)
            }),
        )
        .await
        .expect("the wait ends long before its 30 s deadline");
        (result, looks.load(Ordering::SeqCst), started.elapsed())
    }

    #[tokio::test]
    async fn a_push_between_a_look_and_the_nap_wakes_the_wait() {
        let pushed = Notify::new();
        // The push lands right after the first look found nothing, before
        // the loop naps: interest registered before the look catches it.
        let (result, looks, _) = run(
            &pushed,
            LONG,
            LookAgain::WhenWoken,
            vec![Ok(None), Ok(Some(a_job()))],
            |n| {
                if n == 0 {
                    pushed.notify_waiters();
                }
            },
        )
        .await;
        assert_eq!(result, Ok(Some(a_job())));
        assert_eq!(looks, 2);
    }

    #[tokio::test]
    async fn a_push_during_the_nap_wakes_the_wait() {
        let pushed = std::sync::Arc::new(Notify::new());
        let pusher = tokio::spawn({
            let pushed = pushed.clone();
            async move {
                // Until the waiter has looked once and napped.
                loop {
                    pushed.notify_waiters();
                    tokio::task::yield_now().await;
                }
            }
        });
        let (result, looks, elapsed) = run(
            &pushed,
            LONG,
            LookAgain::WhenWoken,
            vec![Ok(None), Ok(Some(a_job()))],
            |_| {},
        )
        .await;
        pusher.abort();
        assert_eq!(result, Ok(Some(a_job())));
        assert_eq!(looks, 2);
        assert!(elapsed < LONG);
    }

    #[tokio::test]
    async fn with_nothing_to_take_it_returns_none_at_its_deadline() {
        let wait = Duration::from_millis(30);
        for look_again in [LookAgain::WhenWoken, POLL] {
            let (result, looks, elapsed) =
                run(&Notify::new(), wait, look_again, vec![], |_| {}).await;
            assert_eq!(result, Ok(None), "{look_again:?}");
            assert!(elapsed >= wait, "{look_again:?}: gave up after {elapsed:?}");
            if look_again == LookAgain::WhenWoken {
                // Nobody woke it: a look, a nap to the deadline, a last look.
                assert_eq!(looks, 2);
            }
        }
    }

    #[tokio::test]
    async fn a_zero_wait_is_one_look() {
        for look_again in [LookAgain::WhenWoken, POLL] {
            let (result, looks, _) =
                run(&Notify::new(), Duration::ZERO, look_again, vec![], |_| {}).await;
            assert_eq!(result, Ok(None));
            assert_eq!(looks, 1, "{look_again:?}");
        }
    }

    #[tokio::test]
    async fn polling_finds_a_job_nobody_announced() {
        let (result, looks, elapsed) = run(
            &Notify::new(),
            LONG,
            POLL,
            vec![Ok(None), Ok(None), Ok(Some(a_job()))],
            |_| {},
        )
        .await;
        assert_eq!(result, Ok(Some(a_job())));
        assert_eq!(looks, 3);
        assert!(elapsed < LONG);
    }

    #[tokio::test]
    async fn an_error_ends_the_wait_at_once() {
        let error = BackendError("down".into());
        let (result, looks, _) =
            run(&Notify::new(), LONG, POLL, vec![Err(error.clone())], |_| {}).await;
        assert_eq!(result, Err(error));
        assert_eq!(looks, 1);
    }
}
