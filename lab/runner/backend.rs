//! Where jobs wait: the queues, the scheduled / retry / dead sets, the
//! in-progress lists of reliable fetch, the process set and the counters.
//!
//! One trait, Sidekiq's Redis layout as its model, so the memory backend (the
//! embedded default) and the Redis backend behave alike and share one test
//! suite. Times are passed in by the caller (milliseconds of the runner's
//! clock), never read from the system, so virtual time works.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::fetch::Fetch;
use super::job::Job;

/// The error of a backend operation (Redis down, a corrupt payload, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("queue backend: {0}")]
pub struct BackendError(pub String);

pub type BackendResult<T> = Result<T, BackendError>;

/// The sorted sets of Sidekiq.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobSet {
    Schedule,
    Retry,
    Dead,
}

impl JobSet {
    /// Sidekiq's Redis key.
    pub fn key(self) -> &'static str {
        match self {
            JobSet::Schedule => "schedule",
            JobSet::Retry => "retry",
            JobSet::Dead => "dead",
        }
    }
}

/// A job in a sorted set, with its score (when it is due, or when it died).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SetEntry {
    pub at_ms: u64,
    pub job: Job,
}

/// A worker process, as the process set shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// Unique per process run (`hostname:pid:nonce` in Sidekiq).
    pub identity: String,
    pub hostname: String,
    pub started_at_ms: u64,
    /// The last heartbeat.
    pub beat_ms: u64,
    pub concurrency: usize,
    pub queues: Vec<String>,
    /// Jobs running now.
    pub busy: usize,
    /// Which code the process runs: a stale worker shows an older version.
    pub code_version: String,
}

/// A job being run, for the `/jobs` page's busy list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BusyJob {
    pub process: String,
    pub started_at_ms: u64,
    pub job: Job,
}

/// A job a worker is finished with (done, retried or buried), still to be
/// acknowledged and counted.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub job: Job,
    /// What to add to `stat:processed` and `stat:failed`.
    pub processed: u64,
    pub failed: u64,
}

/// Sidekiq's dead set limits: 10,000 jobs, 180 days.
pub const DEAD_MAX_JOBS: usize = 10_000;
pub const DEAD_TIMEOUT_MS: u64 = 180 * 24 * 3600 * 1000;

/// The queue storage a runner works against.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Which backend this is (`memory`, `redis`), for status pages and reports.
    fn name(&self) -> &'static str;

    /// Puts a job at the back of its queue (and sets `enqueued_at`).
    async fn push(&self, job: Job, now_ms: u64) -> BackendResult<()>;

    /// Takes the next job from the first non-empty of the fetch's queues
    /// (strict priority), waiting up to its `wait` of real time for one to
    /// arrive. With reliable fetch the job moves to the fetching process's
    /// in-progress list until [`Backend::acknowledge`].
    async fn fetch(&self, fetch: &Fetch<'_>) -> BackendResult<Option<Job>>;

    /// The job is finished with (done, retried or dead): drop it from the
    /// in-progress list (a no-op for basic fetch).
    async fn acknowledge(&self, process: &str, job: &Job) -> BackendResult<()>;

    /// [`Backend::acknowledge`], then [`Backend::count`]: the end of every
    /// job run. Both are tried; the first error is returned.
    async fn settle(&self, process: &str, finished: &Finished) -> BackendResult<()> {
        let acknowledged = self.acknowledge(process, &finished.job).await;
        let counted = self.count(finished.processed, finished.failed).await;
        acknowledged.and(counted)
    }

    /// What a worker does between two jobs: [`Backend::settle`] the one it
    /// finished, then [`Backend::fetch`] the next. A backend over the network
    /// does both in one round trip (the Redis backend does), so a busy worker
    /// pays one round trip per job, as Sidekiq's `BRPOP` loop does.
    ///
    /// A settle that fails is not the fetch's error: it is logged, and the
    /// finished job stays held (reliable fetch) until recovered, as when
    /// [`Backend::settle`] fails on its own. Where one round trip does both,
    /// an error loses both halves, with the same outcome.
    async fn settle_and_fetch(
        &self,
        finished: Option<Finished>,
        fetch: &Fetch<'_>,
    ) -> BackendResult<Option<Job>> {
        if let Some(finished) = finished {
            if let Err(err) = self.settle(fetch.process, &finished).await {
                tracing::error!(jid = %finished.job.jid, %err, "could not acknowledge or count a finished job");
            }
        }
        self.fetch(fetch).await
    }

    /// Adds a job to a sorted set at `at_ms` (dead: trims to the limits).
    async fn add_to_set(&self, set: JobSet, job: Job, at_ms: u64) -> BackendResult<()>;

    /// Moves every job of the schedule and retry sets that is due at `now_ms`
    /// to its queue; returns how many moved.
    async fn enqueue_due(&self, now_ms: u64) -> BackendResult<usize>;

    /// The earliest score in the schedule and retry sets.
    async fn next_due_ms(&self) -> BackendResult<Option<u64>>;

    /// The jobs of a set, earliest first.
    async fn set_entries(&self, set: JobSet) -> BackendResult<Vec<SetEntry>>;

    /// Removes a job from a set; false when it was not there.
    async fn delete_from_set(&self, set: JobSet, jid: &str) -> BackendResult<bool>;

    /// Moves a job from a set to its queue now ("Retry Now").
    async fn requeue_from_set(&self, set: JobSet, jid: &str, now_ms: u64) -> BackendResult<bool>;

    /// Queue names and sizes, in no particular order.
    async fn queue_sizes(&self) -> BackendResult<Vec<(String, usize)>>;

    /// Records a heartbeat (and the jobs the process is running).
    async fn heartbeat(&self, process: ProcessInfo, busy: Vec<BusyJob>) -> BackendResult<()>;

    /// Removes a process that stopped cleanly.
    async fn remove_process(&self, identity: &str) -> BackendResult<()>;

    /// The process set.
    async fn processes(&self) -> BackendResult<Vec<ProcessInfo>>;

    /// Jobs running now, by process.
    async fn busy(&self) -> BackendResult<Vec<BusyJob>>;

    /// For every process whose last heartbeat is older than `ttl_ms`: puts the
    /// jobs of its in-progress list back at the front of their queues and
    /// removes it. Returns the jobs put back.
    async fn recover_expired(&self, now_ms: u64, ttl_ms: u64) -> BackendResult<Vec<Job>>;

    /// Every job waiting in a queue or held in an in-progress list: what would
    /// still run (the checker's "not lost").
    async fn waiting_jobs(&self) -> BackendResult<Vec<Job>>;

    /// Adds to `stat:processed` / `stat:failed`.
    async fn count(&self, processed: u64, failed: u64) -> BackendResult<()>;

    /// `(processed, failed)`.
    async fn stats(&self) -> BackendResult<(u64, u64)>;

    /// Forgets every job, set, process and counter.
    async fn clear(&self) -> BackendResult<()>;
}
