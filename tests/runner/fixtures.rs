//! Jobs, process records and fetches for the cases that call the backend
//! trait directly, at the manual clock's start.

use std::sync::Arc;
use std::time::Duration;

use idemlab::runner::backend::ProcessInfo;
use idemlab::runner::{Backend, BackendError, Fetch, FetchMode, Job};
use tokio::task::JoinHandle;

/// The manual clock's start (`ManualClock::default`), in epoch milliseconds.
pub const T0: u64 = 1_767_225_600_000;

/// Job `n` of `class` on `queue`, created at `at_ms`, its jid `n` in hex.
pub fn job(class: &str, n: u64, queue: &str, at_ms: u64) -> Job {
    Job::new(
        class,
        vec![serde_json::json!(n)],
        queue,
        format!("{n:024x}"),
        at_ms,
    )
}

pub fn jids(jobs: &[Job]) -> Vec<String> {
    jobs.iter().map(|j| j.jid.clone()).collect()
}

/// One look at `queue`, as `process` fetching with `mode`.
pub async fn look(
    backend: &dyn Backend,
    queue: &str,
    mode: FetchMode,
    process: &str,
) -> Result<Option<Job>, BackendError> {
    let queues = [queue.to_string()];
    backend.fetch(&Fetch::new(&queues, mode, process)).await
}

/// One look at `queue` that must find a job.
pub async fn take_from(backend: &dyn Backend, queue: &str, mode: FetchMode, process: &str) -> Job {
    look(backend, queue, mode, process)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("a job on {queue}"))
}

/// One look at `high`, then `default`.
pub async fn take(backend: &dyn Backend, mode: FetchMode, process: &str) -> Option<Job> {
    let queues = ["high".to_string(), "default".to_string()];
    backend
        .fetch(&Fetch::new(&queues, mode, process))
        .await
        .unwrap()
}

/// A process on `high` and `default` that last beat at `beat_ms`.
pub fn process(identity: &str, beat_ms: u64) -> ProcessInfo {
    ProcessInfo {
        identity: identity.into(),
        hostname: "lab".into(),
        started_at_ms: T0,
        beat_ms,
        concurrency: 5,
        queues: vec!["high".into(), "default".into()],
        busy: 0,
        code_version: "v1".into(),
    }
}

/// Nothing is held in any in-progress list: recovering every process now
/// puts nothing back.
pub async fn assert_nothing_held(backend: &dyn Backend) {
    assert!(backend
        .recover_expired(u64::MAX, 0)
        .await
        .unwrap()
        .is_empty());
}

/// A fetch from `default` waiting up to `wait`, in a task of its own.
pub fn spawn_fetch<B: Backend + ?Sized>(
    backend: Arc<B>,
    mode: FetchMode,
    wait: Duration,
) -> JoinHandle<Result<Option<Job>, BackendError>> {
    tokio::spawn(async move {
        let queues = ["default".to_string()];
        backend
            .fetch(&Fetch::new(&queues, mode, "p").waiting(wait))
            .await
    })
}
