//! [`Runner`]: one job run from start to finish, with Sidekiq's handling of
//! what comes after — acknowledge, count, retry or bury, tell the handlers.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fake_services::SharedClock;
use futures::FutureExt;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::backend::{Backend, Finished, JobSet};
use super::client::Client;
use super::fetch::FetchMode;
use super::history::{Attempt, AttemptOutcome, History};
use super::job::{ms_to_seconds, Job};
use super::job_counts::JobCounts;
use super::retry::{AfterFailure, RetryPolicy};
use super::worker::{
    DeathHandler, ErrorHandler, ErrorKind, JobContext, JobError, Next, Registry, ServerMiddleware,
    Worker,
};

/// How a runner's processes work.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Queues in strict priority order: a job on `high` always goes before
    /// one on `default`.
    pub queues: Vec<String>,
    /// Jobs run at once by one process.
    pub concurrency: usize,
    pub fetch: FetchMode,
    pub retry: RetryPolicy,
    /// Shown in the process set and the job history.
    pub code_version: String,
    /// Prefix of process identities.
    pub hostname: String,
    /// Heartbeat period, in the runner clock's milliseconds.
    pub heartbeat_ms: u64,
    /// A process silent for longer is dead: its reliable-fetch jobs come back.
    pub process_ttl_ms: u64,
    /// How often due scheduled and retry jobs are enqueued.
    pub poll_ms: u64,
    /// Real time a fetch waits for a job before looking again.
    pub fetch_wait: Duration,
    /// Real time in-flight jobs get to finish on a graceful stop.
    pub shutdown_timeout: Duration,
    /// Seeds retry jitter and job ids.
    pub seed: u64,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            queues: vec!["high".into(), "default".into()],
            concurrency: 5,
            fetch: FetchMode::Reliable,
            retry: RetryPolicy::default(),
            code_version: env!("IDEMLAB_CODE_VERSION").to_string(),
            hostname: "lab".into(),
            heartbeat_ms: 5_000,
            process_ttl_ms: 60_000,
            poll_ms: 1_000,
            fetch_wait: Duration::from_millis(100),
            shutdown_timeout: Duration::from_secs(10),
            seed: 0,
        }
    }
}

/// How one job run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    Done,
    Failed(AfterFailure),
    /// The process died during the job: the caller must stop the process.
    Died,
}

/// Runs jobs. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Runner {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub backend: Arc<dyn Backend>,
    pub clock: SharedClock,
    pub client: Client,
    pub registry: Registry,
    pub middleware: Vec<Arc<dyn ServerMiddleware>>,
    pub error_handlers: Vec<Arc<dyn ErrorHandler>>,
    pub death_handlers: Vec<Arc<dyn DeathHandler>>,
    pub config: RunnerConfig,
    pub history: History,
    /// `GET /metrics`' job counters, counted with each attempt recorded.
    pub counts: JobCounts,
    rng: Mutex<ChaCha8Rng>,
    processes_started: AtomicU64,
}

/// Puts a [`Runner`] together.
pub struct RunnerBuilder {
    backend: Arc<dyn Backend>,
    clock: SharedClock,
    registry: Registry,
    config: RunnerConfig,
    client: Option<Client>,
    history: History,
    middleware: Vec<Arc<dyn ServerMiddleware>>,
    error_handlers: Vec<Arc<dyn ErrorHandler>>,
    death_handlers: Vec<Arc<dyn DeathHandler>>,
}

impl RunnerBuilder {
    pub fn new(backend: Arc<dyn Backend>, clock: SharedClock, registry: Registry) -> Self {
        Self {
            backend,
            clock,
            registry,
            config: RunnerConfig::default(),
            client: None,
            history: History::new(),
            middleware: Vec::new(),
            error_handlers: Vec::new(),
            death_handlers: Vec::new(),
        }
    }

    pub fn config(mut self, config: RunnerConfig) -> Self {
        self.config = config;
        self
    }

    /// Shares a client (and so its job-id source) with the code that enqueues.
    pub fn client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Shares a history with another runner on the same queues (an old worker).
    pub fn history(mut self, history: History) -> Self {
        self.history = history;
        self
    }

    pub fn middleware(mut self, middleware: impl ServerMiddleware) -> Self {
        self.middleware.push(Arc::new(middleware));
        self
    }

    pub fn error_handler(mut self, handler: impl ErrorHandler) -> Self {
        self.error_handlers.push(Arc::new(handler));
        self
    }

    pub fn death_handler(mut self, handler: impl DeathHandler) -> Self {
        self.death_handlers.push(Arc::new(handler));
        self
    }

    pub fn build(self) -> Runner {
        let client = self.client.unwrap_or_else(|| {
            Client::new(self.backend.clone(), self.clock.clone(), self.config.seed)
        });
        Runner {
            inner: Arc::new(Inner {
                rng: Mutex::new(ChaCha8Rng::seed_from_u64(self.config.seed ^ 0x5eed)),
                backend: self.backend,
                clock: self.clock,
                client,
                registry: self.registry,
                middleware: self.middleware,
                error_handlers: self.error_handlers,
                death_handlers: self.death_handlers,
                config: self.config,
                history: self.history,
                counts: JobCounts::default(),
                processes_started: AtomicU64::new(0),
            }),
        }
    }
}

impl Runner {
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.inner.backend
    }

    pub fn history(&self) -> &History {
        &self.inner.history
    }

    /// This runner's attempts by job class, for `GET /metrics`.
    pub fn job_counts(&self) -> &JobCounts {
        &self.inner.counts
    }

    pub fn config(&self) -> &RunnerConfig {
        &self.inner.config
    }

    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    /// A fresh process identity: a process that dies comes back as a new one,
    /// as a restarted Sidekiq does.
    pub fn new_identity(&self) -> String {
        let n = self.inner.processes_started.fetch_add(1, Ordering::Relaxed);
        format!(
            "{}:{}:{}",
            self.inner.config.hostname, self.inner.config.code_version, n
        )
    }

    /// Runs one fetched job to the end: middleware and worker, then
    /// acknowledge, count, retry or bury, and tell the handlers.
    pub async fn perform(&self, job: Job, process: &str) -> JobOutcome {
        let (outcome, settle) = self.perform_unsettled(job, process).await;
        match settle {
            Settle::Finished(finished) => self.settle(process, &finished).await,
            Settle::Store {
                set,
                job,
                at_ms,
                finished,
            } => {
                // One more try; if the backend is still unreachable the job
                // stays held, as in [`Settle::Store`].
                match self.inner.backend.add_to_set(set, job, at_ms).await {
                    Ok(()) => self.settle(process, &finished).await,
                    Err(err) => {
                        tracing::error!(jid = %finished.job.jid, %err, "could not store the failed job");
                    }
                }
            }
            Settle::Nothing => {}
        }
        outcome
    }

    /// [`Runner::perform`] up to the acknowledgement, which is left to the
    /// caller: a fetch loop hands the finished job to its next fetch, so that
    /// both take one round trip.
    pub(super) async fn perform_unsettled(&self, job: Job, process: &str) -> (JobOutcome, Settle) {
        let inner = &self.inner;
        let started_ms = inner.clock.now_ms();
        let attempt = job.retry_count.map_or(1, |c| c + 2);
        // Looked up once: its kind sets the start line's level, then it runs.
        let worker = inner.registry.get(&job.class);
        let periodic = worker.is_some_and(|w| w.periodic());
        if periodic {
            tracing::debug!(jid = %job.jid, class = %job.class, attempt, process, "start");
        } else {
            tracing::info!(jid = %job.jid, class = %job.class, attempt, process, "start");
        }
        let idle = AtomicBool::new(false);
        let result = self.run_worker(worker, &job, process, &idle).await;
        let finished_ms = inner.clock.now_ms();
        let elapsed_ms = finished_ms.saturating_sub(started_ms);
        let record = |outcome: AttemptOutcome| {
            inner.counts.count(&job.class, &outcome);
            inner.history.record(Attempt {
                jid: job.jid.clone(),
                class: job.class.clone(),
                args: job.args.clone(),
                attempt,
                process: process.to_string(),
                code_version: inner.config.code_version.clone(),
                started_ms,
                finished_ms,
                outcome,
            })
        };
        let error = match result {
            Ok(()) => {
                if idle.load(Ordering::Relaxed) {
                    tracing::debug!(jid = %job.jid, class = %job.class, elapsed_ms, "done, nothing to do");
                } else {
                    tracing::info!(jid = %job.jid, class = %job.class, elapsed_ms, "done");
                }
                record(AttemptOutcome::Done);
                let finished = Finished {
                    job,
                    processed: 1,
                    failed: 0,
                };
                return (JobOutcome::Done, Settle::Finished(finished));
            }
            Err(error) if error.kind == ErrorKind::WorkerDied => {
                tracing::warn!(jid = %job.jid, class = %job.class, process, "{}", error.message);
                record(AttemptOutcome::Died {
                    error_message: error.message,
                });
                return (JobOutcome::Died, Settle::Nothing);
            }
            Err(error) => error,
        };
        let after = if error.retryable {
            let mut rng = inner.rng.lock().unwrap_or_else(|p| p.into_inner());
            inner
                .config
                .retry
                .after_failure(job.retry, job.retry_count, &mut *rng)
        } else {
            AfterFailure::Dead
        };
        tracing::warn!(jid = %job.jid, class = %job.class, elapsed_ms, error = %error, ?after, "fail");
        record(AttemptOutcome::Failed {
            error_class: error.class.clone(),
            error_message: error.message.clone(),
            transient: error.is_transient(),
            then: match after {
                AfterFailure::Retry { .. } => "retry",
                AfterFailure::Dead => "dead",
                AfterFailure::Discard => "discarded",
            },
        });
        if !error.silenced {
            for handler in &inner.error_handlers {
                handler.on_error(&job, &error).await;
            }
        }
        let mut failed = job.clone();
        let now_s = ms_to_seconds(finished_ms);
        failed.error_class = Some(error.class.clone());
        failed.error_message = Some(error.message.clone());
        if failed.retry_count.is_some() {
            failed.retried_at = Some(now_s);
        } else {
            failed.failed_at = Some(now_s);
        }
        let store = match after {
            AfterFailure::Retry {
                retry_count,
                delay_ms,
            } => {
                failed.retry_count = Some(retry_count);
                Some((JobSet::Retry, failed, finished_ms + delay_ms))
            }
            AfterFailure::Dead => {
                failed.retry_count = Some(job.retry_count.map_or(0, |c| c + 1));
                for handler in &inner.death_handlers {
                    handler.on_death(&failed, &error).await;
                }
                Some((JobSet::Dead, failed, finished_ms))
            }
            AfterFailure::Discard => None,
        };
        let finished = Finished {
            job,
            processed: 1,
            failed: 1,
        };
        let Some((set, failed, at_ms)) = store else {
            return (JobOutcome::Failed(after), Settle::Finished(finished));
        };
        if let Err(err) = inner.backend.add_to_set(set, failed.clone(), at_ms).await {
            // Not acknowledged: with a reliable fetch the job stays in the
            // in-progress list, and the fetch loop stores it once the
            // backend is back; with basic fetch it is lost, as in Sidekiq.
            tracing::error!(jid = %finished.job.jid, %err, "could not store the failed job");
            return (
                JobOutcome::Failed(after),
                Settle::Store {
                    set,
                    job: failed,
                    at_ms,
                    finished,
                },
            );
        }
        (JobOutcome::Failed(after), Settle::Finished(finished))
    }

    /// Acknowledges and counts a finished job.
    pub(super) async fn settle(&self, process: &str, finished: &Finished) {
        if let Err(err) = self.inner.backend.settle(process, finished).await {
            tracing::error!(jid = %finished.job.jid, %err, "could not acknowledge or count");
        }
    }

    /// Sidekiq's inline mode, and the naive `enqueue = inline` pipeline: the
    /// job's body runs here and now, in the caller. An error comes back to
    /// the caller; nothing is retried, counted or recorded as a job.
    pub async fn perform_inline(&self, job: &Job, process: &str) -> Result<(), JobError> {
        let worker = self.inner.registry.get(&job.class);
        self.run_worker(worker, job, process, &AtomicBool::new(false))
            .await
    }

    /// The middleware chain and `worker`, the job's class (`None`: no such
    /// class, Ruby's `NameError`). A panicking job is a failed
    /// job, not a dead runner: the panic is caught here. The job runs in the
    /// caller's task rather than one of its own, saving a spawn and a wake-up
    /// per job; killing the process still stops it, as dropping the caller's
    /// future drops the job's.
    async fn run_worker(
        &self,
        worker: Option<&Arc<dyn Worker>>,
        job: &Job,
        process: &str,
        idle: &AtomicBool,
    ) -> Result<(), JobError> {
        let inner = &self.inner;
        let Some(worker) = worker else {
            return Err(JobError::permanent(
                "NameError",
                format!("uninitialized constant {}", job.class),
            ));
        };
        let ctx = JobContext {
            job,
            client: &inner.client,
            process,
            code_version: &inner.config.code_version,
            idle,
        };
        let run = Next::new(&inner.middleware, worker.as_ref()).run(&ctx);
        match AssertUnwindSafe(run).catch_unwind().await {
            Ok(result) => result,
            Err(panic) => Err(JobError::permanent("Panic", panic_message(panic))),
        }
    }
}

/// What is left to do for a job a worker is finished with.
// Moved once per job, never stored in bulk: boxing the rare `Store` would
// only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(super) enum Settle {
    /// Acknowledge and count it.
    Finished(Finished),
    /// Its failure could not be stored (the backend was unreachable): add
    /// `job` (the failed copy) to `set` at `at_ms`, then acknowledge and
    /// count `finished`. Until then it stays held, so nothing is lost.
    Store {
        set: JobSet,
        job: Job,
        at_ms: u64,
        finished: Finished,
    },
    /// Nothing: the process died with it.
    Nothing,
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "the job panicked".into())
}
