//! The lab a runner case works in: test workers (flaky, recording, dying,
//! panicking, blocking), handlers that collect what they are told, and a
//! runner on a fresh backend on a virtual clock.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use fake_services::ManualClock;
use idemlab::runner::backend::SetEntry;
use idemlab::runner::{
    Backend, DeathHandler, ErrorHandler, Job, JobContext, JobError, JobSet, Process, Registry,
    RetryPolicy, Runner, RunnerBuilder, RunnerConfig, TransientErrorSilencer, Worker,
};
use idemlab_test_support::wait_until;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::harness::Backends;

/// Fails `failures` times (transiently or not), then succeeds; counts runs.
pub struct Flaky {
    failures: u32,
    transient: bool,
    runs: Arc<AtomicU32>,
}

#[async_trait]
impl Worker for Flaky {
    async fn perform(&self, _ctx: &JobContext<'_>) -> Result<(), JobError> {
        let run = self.runs.fetch_add(1, Ordering::SeqCst);
        if run < self.failures {
            return Err(if self.transient {
                JobError::transient("Payments::ServerError", "503 from payments")
            } else {
                JobError::permanent("ArgumentError", "bad order")
            });
        }
        Ok(())
    }
}

/// Records the order in which jobs ran (by first argument).
pub struct Recorder(pub Arc<Mutex<Vec<Value>>>);

#[async_trait]
impl Worker for Recorder {
    async fn perform(&self, ctx: &JobContext<'_>) -> Result<(), JobError> {
        self.0.lock().unwrap().push(ctx.job.args[0].clone());
        Ok(())
    }
}

/// The process dies during the first run; later runs succeed.
pub struct DiesOnce(pub Arc<AtomicU32>);

#[async_trait]
impl Worker for DiesOnce {
    async fn perform(&self, _ctx: &JobContext<'_>) -> Result<(), JobError> {
        if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(JobError::worker_died("charge"));
        }
        Ok(())
    }
}

pub struct Panics;

#[async_trait]
impl Worker for Panics {
    async fn perform(&self, _ctx: &JobContext<'_>) -> Result<(), JobError> {
        panic!("boom in the job")
    }
}

/// Waits until `release` is notified; counts how many are waiting.
pub struct Blocks {
    waiting: Arc<AtomicU32>,
    release: Arc<Semaphore>,
}

#[async_trait]
impl Worker for Blocks {
    async fn perform(&self, _ctx: &JobContext<'_>) -> Result<(), JobError> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _permit = self.release.acquire().await.unwrap();
        Ok(())
    }
}

/// Collects what error and death handlers are told.
#[derive(Clone, Default)]
pub struct Told(Arc<Mutex<Vec<String>>>);

impl Told {
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

#[async_trait]
impl ErrorHandler for Told {
    async fn on_error(&self, job: &Job, error: &JobError) {
        self.0
            .lock()
            .unwrap()
            .push(format!("error {}: {error}", job.class));
    }
}

#[async_trait]
impl DeathHandler for Told {
    async fn on_death(&self, job: &Job, error: &JobError) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{} won't be retried: {}", job.class, error.message));
    }
}

pub struct Lab {
    pub clock: ManualClock,
    pub backend: Arc<dyn Backend>,
    pub runner: Runner,
    pub told: Told,
}

impl Lab {
    /// Pushes a `class` job with `args` to `default`; its jid.
    pub async fn push(&self, class: &str, args: Vec<Value>) -> String {
        self.runner
            .client()
            .push(class, args, "default")
            .await
            .unwrap()
    }

    /// The entries of `set`, earliest first.
    pub async fn set(&self, set: JobSet) -> Vec<SetEntry> {
        self.backend.set_entries(set).await.unwrap()
    }

    /// Runs every job there is, as Sidekiq's fake mode does; how many ran.
    pub async fn drain(&self) -> usize {
        self.runner.drain_all(&self.clock).await
    }
}

/// The cases' runner configuration: Sidekiq's 25 retries at full length.
pub fn config() -> RunnerConfig {
    RunnerConfig {
        retry: RetryPolicy {
            max_retries: 25,
            time_scale: 1.0,
        },
        seed: 7,
        ..RunnerConfig::default()
    }
}

/// [`config`] with `max_retries` retries at full length.
pub fn with_max_retries(max_retries: u32) -> RunnerConfig {
    let mut config = config();
    config.retry.max_retries = max_retries;
    config
}

/// A runner on a fresh backend of the case's kind, on a virtual clock.
pub async fn lab(b: &Backends, registry: Registry, config: RunnerConfig) -> Lab {
    lab_on(b.fresh().await, registry, config)
}

pub fn lab_on(backend: Arc<dyn Backend>, registry: Registry, config: RunnerConfig) -> Lab {
    let clock = ManualClock::default();
    let told = Told::default();
    let runner = RunnerBuilder::new(backend.clone(), Arc::new(clock.clone()), registry)
        .config(config)
        .middleware(TransientErrorSilencer)
        .error_handler(told.clone())
        .death_handler(told.clone())
        .build();
    Lab {
        clock,
        backend,
        runner,
        told,
    }
}

pub fn flaky(failures: u32, transient: bool) -> (Registry, Arc<AtomicU32>) {
    let runs = Arc::new(AtomicU32::new(0));
    let mut registry = Registry::new();
    registry.register(
        "FlakyJob",
        Flaky {
            failures,
            transient,
            runs: runs.clone(),
        },
    );
    (registry, runs)
}

/// A lab whose one `FlakyJob` (failing `failures` times, transiently or
/// not) was pushed with `args` and run to the end; and its run counter.
pub async fn drained_flaky_job(
    b: &Backends,
    (failures, transient): (u32, bool),
    config: RunnerConfig,
    args: Vec<Value>,
) -> (Lab, Arc<AtomicU32>) {
    let (registry, runs) = flaky(failures, transient);
    let lab = lab(b, registry, config).await;
    lab.push("FlakyJob", args).await;
    lab.drain().await;
    (lab, runs)
}

/// A lab whose "Blocks" jobs wait for a permit from the returned semaphore;
/// the returned counter says how many have started waiting.
pub async fn blocking_lab(
    b: &Backends,
    config: RunnerConfig,
) -> (Lab, Arc<AtomicU32>, Arc<Semaphore>) {
    let waiting = Arc::new(AtomicU32::new(0));
    let release = Arc::new(Semaphore::new(0));
    let mut registry = Registry::new();
    registry.register(
        "Blocks",
        Blocks {
            waiting: waiting.clone(),
            release: release.clone(),
        },
    );
    (lab(b, registry, config).await, waiting, release)
}

/// A blocking lab with concurrency 1 whose one "Blocks" job a started
/// process is running (and waiting in).
pub async fn one_running_job(
    b: &Backends,
    config: RunnerConfig,
) -> (Lab, Arc<AtomicU32>, Arc<Semaphore>, Process) {
    let (lab, waiting, release) = blocking_lab(
        b,
        RunnerConfig {
            concurrency: 1,
            ..config
        },
    )
    .await;
    lab.push("Blocks", vec![json!(1)]).await;
    let process = lab.runner.start().await;
    wait_until("the job runs", || async {
        waiting.load(Ordering::SeqCst) == 1
    })
    .await;
    (lab, waiting, release, process)
}
