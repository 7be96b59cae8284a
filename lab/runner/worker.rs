//! What a job class is to the runner: a [`Worker`], its errors, and the
//! hooks around it (server middleware, error and death handlers).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use super::client::Client;
use super::job::Job;

/// Why a job did not finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// Worth notifying at once (a bug, a rejected request, a missing record).
    Permanent,
    /// Will likely pass on retry (a provider's 5xx, 429, timeout, dropped
    /// connection): the transient-error silencer keeps it from the error
    /// catcher, since the job is retried anyway.
    Transient,
    /// The worker process died while running the job (the lab's "gopher
    /// chews the power cable after line N"). Nothing is recorded as failed:
    /// with basic fetch the job is lost, with reliable fetch it comes back
    /// once the process's heartbeat expires.
    WorkerDied,
}

/// A failed job, as Sidekiq records it: an exception class and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    pub class: String,
    pub message: String,
    pub kind: ErrorKind,
    /// Set by middleware (the transient-error silencer): error handlers skip it.
    pub silenced: bool,
    /// False for an error no retry can fix (the job's record is gone): the
    /// job goes straight to the dead set instead of retrying for weeks.
    pub retryable: bool,
}

impl JobError {
    pub fn permanent(class: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(class, message, ErrorKind::Permanent)
    }

    pub fn transient(class: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(class, message, ErrorKind::Transient)
    }

    /// A permanent error that is not worth retrying at all.
    pub fn fatal(class: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            retryable: false,
            ..Self::new(class, message, ErrorKind::Permanent)
        }
    }

    /// The worker process dies here.
    pub fn worker_died(step: impl Into<String>) -> Self {
        Self::new(
            "WorkerDied",
            format!("the worker process died after {}", step.into()),
            ErrorKind::WorkerDied,
        )
    }

    fn new(class: impl Into<String>, message: impl Into<String>, kind: ErrorKind) -> Self {
        Self {
            class: class.into(),
            message: message.into(),
            kind,
            silenced: false,
            retryable: true,
        }
    }

    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.class, self.message)
    }
}

impl std::error::Error for JobError {}

/// What a running job can see and use.
pub struct JobContext<'a> {
    pub job: &'a Job,
    /// To enqueue the next job of a chain.
    pub client: &'a Client,
    /// The process running it, and its code version.
    pub process: &'a str,
    pub code_version: &'a str,
    /// Set by [`JobContext::found_nothing_to_do`].
    pub(super) idle: &'a AtomicBool,
}

impl JobContext<'_> {
    /// The job looked and found no work (a sweep with nothing due): its
    /// done line is logged at debug, not info. It still counts as
    /// processed, as in Sidekiq.
    pub fn found_nothing_to_do(&self) {
        self.idle.store(true, Ordering::Relaxed);
    }
}

/// A job class's code.
#[async_trait]
pub trait Worker: Send + Sync + 'static {
    async fn perform(&self, ctx: &JobContext<'_>) -> Result<(), JobError>;

    /// Whether the job runs on a clock whether or not there is work (a
    /// periodic sweep): its start line is logged at debug, so a lab that
    /// sweeps every fraction of a second does not fill its log with them.
    fn periodic(&self) -> bool {
        false
    }
}

/// Code around every job, like Sidekiq's server middleware.
#[async_trait]
pub trait ServerMiddleware: Send + Sync + 'static {
    async fn call(&self, ctx: &JobContext<'_>, next: Next<'_>) -> Result<(), JobError>;
}

/// The rest of the middleware chain, ending at the worker.
pub struct Next<'a> {
    pub(super) rest: &'a [Arc<dyn ServerMiddleware>],
    pub(super) worker: &'a dyn Worker,
}

impl<'a> Next<'a> {
    pub(super) fn new(rest: &'a [Arc<dyn ServerMiddleware>], worker: &'a dyn Worker) -> Self {
        Self { rest, worker }
    }

    /// Runs the next middleware, or the job itself.
    pub async fn run(self, ctx: &JobContext<'_>) -> Result<(), JobError> {
        match self.rest.split_first() {
            Some((middleware, rest)) => {
                middleware
                    .call(
                        ctx,
                        Next {
                            rest,
                            worker: self.worker,
                        },
                    )
                    .await
            }
            None => self.worker.perform(ctx).await,
        }
    }
}

/// Marks transient errors as silenced, so the error catcher hears only of
/// errors a retry will not fix (the book's `IgnorableExceptionSinceSidekiqWillRetry`).
pub struct TransientErrorSilencer;

#[async_trait]
impl ServerMiddleware for TransientErrorSilencer {
    async fn call(&self, ctx: &JobContext<'_>, next: Next<'_>) -> Result<(), JobError> {
        next.run(ctx).await.map_err(|mut err| {
            if err.is_transient() {
                err.silenced = true;
            }
            err
        })
    }
}

/// Told of every failure that was not silenced (Sidekiq's `error_handlers`).
#[async_trait]
pub trait ErrorHandler: Send + Sync + 'static {
    async fn on_error(&self, job: &Job, error: &JobError);
}

/// Told when a job's retries are exhausted (Sidekiq's `death_handlers`).
#[async_trait]
pub trait DeathHandler: Send + Sync + 'static {
    async fn on_death(&self, job: &Job, error: &JobError);
}

/// Job classes by name.
#[derive(Clone, Default)]
pub struct Registry {
    workers: HashMap<String, Arc<dyn Worker>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `worker` as the code of `class`.
    pub fn register(&mut self, class: impl Into<String>, worker: impl Worker) -> &mut Self {
        self.workers.insert(class.into(), Arc::new(worker));
        self
    }

    pub fn get(&self, class: &str) -> Option<&Arc<dyn Worker>> {
        self.workers.get(class)
    }
}
