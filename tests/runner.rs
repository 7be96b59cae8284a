//! The job runner's Sidekiq semantics, on the memory backend and a virtual
//! clock. No test waits on real time except where real time is the subject
//! (the graceful-stop timeout), and then only for a short, bounded while.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::wait_until;
use fake_services::{Clock, ManualClock};
use idemlab::runner::{
    AttemptOutcome, Backend, DeathHandler, ErrorHandler, FetchMode, Job, JobContext, JobError,
    JobSet, MemoryBackend, Registry, RetryPolicy, Runner, RunnerBuilder, RunnerConfig,
    TransientErrorSilencer, Worker,
};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

/// Fails `failures` times (transiently or not), then succeeds; counts runs.
struct Flaky {
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
struct Recorder(Arc<Mutex<Vec<Value>>>);

#[async_trait]
impl Worker for Recorder {
    async fn perform(&self, ctx: &JobContext<'_>) -> Result<(), JobError> {
        self.0.lock().unwrap().push(ctx.job.args[0].clone());
        Ok(())
    }
}

/// The process dies during the first run; later runs succeed.
struct DiesOnce(Arc<AtomicU32>);

#[async_trait]
impl Worker for DiesOnce {
    async fn perform(&self, _ctx: &JobContext<'_>) -> Result<(), JobError> {
        if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(JobError::worker_died("charge"));
        }
        Ok(())
    }
}

struct Panics;

#[async_trait]
impl Worker for Panics {
    async fn perform(&self, _ctx: &JobContext<'_>) -> Result<(), JobError> {
        panic!("boom in the job")
    }
}

/// Waits until `release` is notified; counts how many are waiting.
struct Blocks {
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
struct Told(Arc<Mutex<Vec<String>>>);

impl Told {
    fn lines(&self) -> Vec<String> {
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

struct Lab {
    clock: ManualClock,
    backend: Arc<MemoryBackend>,
    runner: Runner,
    told: Told,
}

fn config() -> RunnerConfig {
    RunnerConfig {
        retry: RetryPolicy {
            max_retries: 25,
            time_scale: 1.0,
        },
        seed: 7,
        ..RunnerConfig::default()
    }
}

fn lab(registry: Registry, config: RunnerConfig) -> Lab {
    let clock = ManualClock::default();
    let backend = Arc::new(MemoryBackend::new());
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

fn flaky(failures: u32, transient: bool) -> (Registry, Arc<AtomicU32>) {
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

/// A lab whose "Blocks" jobs wait for a permit from the returned semaphore;
/// the returned counter says how many have started waiting.
fn blocking_lab(config: RunnerConfig) -> (Lab, Arc<AtomicU32>, Arc<Semaphore>) {
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
    (lab(registry, config), waiting, release)
}

#[tokio::test]
async fn queues_are_served_in_strict_priority_order() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut registry = Registry::new();
    registry.register("R", Recorder(order.clone()));
    let lab = lab(registry, config());
    let client = lab.runner.client();
    client
        .push("R", vec![json!("d1")], "default")
        .await
        .unwrap();
    client.push("R", vec![json!("h1")], "high").await.unwrap();
    client
        .push("R", vec![json!("d2")], "default")
        .await
        .unwrap();
    client.push("R", vec![json!("h2")], "high").await.unwrap();
    assert_eq!(lab.runner.drain_all(&lab.clock).await, 4);
    assert_eq!(
        *order.lock().unwrap(),
        vec![json!("h1"), json!("h2"), json!("d1"), json!("d2")],
        "high before default, first in first out within a queue"
    );
}

#[tokio::test]
async fn a_failing_job_is_retried_on_sidekiqs_schedule_until_it_passes() {
    let (registry, runs) = flaky(2, true);
    let lab = lab(registry, config());
    let start = lab.clock.now_ms();
    lab.runner
        .client()
        .push("FlakyJob", vec![json!(1)], "default")
        .await
        .unwrap();
    assert_eq!(lab.runner.drain_all(&lab.clock).await, 3);
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    // Retry 0 waits 15–24 s, retry 1 waits 16–34 s.
    let waited = lab.clock.now_ms() - start;
    assert!((31_000..=58_000).contains(&waited), "waited {waited} ms");
    let attempts = lab.runner.history().attempts();
    assert_eq!(attempts.len(), 3);
    assert_eq!(
        attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(matches!(attempts[2].outcome, AttemptOutcome::Done));
    assert!(matches!(
        &attempts[0].outcome,
        AttemptOutcome::Failed {
            then: "retry",
            transient: true,
            ..
        }
    ));
    assert_eq!(lab.backend.stats().await.unwrap(), (3, 2));
    assert!(lab
        .backend
        .set_entries(JobSet::Retry)
        .await
        .unwrap()
        .is_empty());
    // Transient errors are silenced: nobody was notified.
    assert!(lab.told.lines().is_empty(), "{:?}", lab.told.lines());
}

#[tokio::test]
async fn the_time_scale_compresses_the_retry_schedule() {
    let (registry, runs) = flaky(3, true);
    let lab = lab(
        registry,
        RunnerConfig {
            retry: RetryPolicy {
                max_retries: 25,
                time_scale: 0.001,
            },
            ..config()
        },
    );
    let start = lab.clock.now_ms();
    lab.runner
        .client()
        .push("FlakyJob", vec![], "default")
        .await
        .unwrap();
    lab.runner.drain_all(&lab.clock).await;
    assert_eq!(runs.load(Ordering::SeqCst), 4);
    let waited = lab.clock.now_ms() - start;
    assert!(waited < 200, "three retries in {waited} ms of lab time");
}

#[tokio::test]
async fn exhausted_retries_bury_the_job_and_tell_the_death_handlers() {
    let (registry, runs) = flaky(100, true);
    let lab = lab(
        registry,
        RunnerConfig {
            retry: RetryPolicy {
                max_retries: 1,
                time_scale: 1.0,
            },
            ..config()
        },
    );
    lab.runner
        .client()
        .push("FlakyJob", vec![json!(9)], "default")
        .await
        .unwrap();
    lab.runner.drain_all(&lab.clock).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2, "the run and one retry");
    let dead = lab.backend.set_entries(JobSet::Dead).await.unwrap();
    assert_eq!(dead.len(), 1);
    let job = &dead[0].job;
    assert_eq!(job.error_class.as_deref(), Some("Payments::ServerError"));
    assert_eq!(job.error_message.as_deref(), Some("503 from payments"));
    assert_eq!(job.retry_count, Some(1));
    assert!(job.failed_at.is_some() && job.retried_at.is_some());
    assert_eq!(
        lab.told.lines(),
        vec!["FlakyJob won't be retried: 503 from payments".to_string()]
    );
}

#[tokio::test]
async fn permanent_errors_reach_the_error_handlers_at_once() {
    let (registry, _) = flaky(1, false);
    let lab = lab(registry, config());
    lab.runner
        .client()
        .push("FlakyJob", vec![], "default")
        .await
        .unwrap();
    lab.runner.drain_all(&lab.clock).await;
    assert_eq!(
        lab.told.lines(),
        vec!["error FlakyJob: ArgumentError: bad order".to_string()]
    );
}

#[tokio::test]
async fn retry_false_discards_and_retry_zero_buries_at_once() {
    let (registry, runs) = flaky(100, false);
    let lab = lab(registry, config());
    let client = lab.runner.client();
    let mut no_retry = client.build("FlakyJob", vec![], "default");
    no_retry.retry = idemlab::runner::job::RetryOption::Enabled(false);
    client.push_job(no_retry).await.unwrap();
    lab.runner.drain_all(&lab.clock).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(lab
        .backend
        .set_entries(JobSet::Dead)
        .await
        .unwrap()
        .is_empty());
    let mut zero = client.build("FlakyJob", vec![], "default");
    zero.retry = idemlab::runner::job::RetryOption::Count(0);
    client.push_job(zero).await.unwrap();
    lab.runner.drain_all(&lab.clock).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(
        lab.backend.set_entries(JobSet::Dead).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn unknown_classes_and_panics_are_failures_not_crashes() {
    let mut registry = Registry::new();
    registry.register("Panics", Panics);
    let lab = lab(
        registry,
        RunnerConfig {
            retry: RetryPolicy {
                max_retries: 0,
                time_scale: 1.0,
            },
            ..config()
        },
    );
    let client = lab.runner.client();
    client.push("Panics", vec![], "default").await.unwrap();
    client.push("NoSuchJob", vec![], "default").await.unwrap();
    assert_eq!(lab.runner.drain_all(&lab.clock).await, 2);
    let dead = lab.backend.set_entries(JobSet::Dead).await.unwrap();
    let classes: Vec<_> = dead
        .iter()
        .map(|e| e.job.error_class.clone().unwrap())
        .collect();
    assert_eq!(classes, vec!["Panic".to_string(), "NameError".to_string()]);
    assert!(dead[0]
        .job
        .error_message
        .as_deref()
        .unwrap()
        .contains("boom in the job"));
    assert!(dead[1]
        .job
        .error_message
        .as_deref()
        .unwrap()
        .contains("NoSuchJob"));
}

#[tokio::test]
async fn basic_fetch_loses_the_job_of_a_dying_worker() {
    let runs = Arc::new(AtomicU32::new(0));
    let mut registry = Registry::new();
    registry.register("DiesOnce", DiesOnce(runs.clone()));
    let lab = lab(
        registry,
        RunnerConfig {
            fetch: FetchMode::Basic,
            ..config()
        },
    );
    lab.runner
        .client()
        .push("DiesOnce", vec![json!(1)], "default")
        .await
        .unwrap();
    lab.runner.drain_all(&lab.clock).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1, "never run again: lost");
    let attempts = lab.runner.history().attempts();
    assert!(matches!(attempts[..], [ref a] if matches!(a.outcome, AttemptOutcome::Died { .. })));
    for set in [JobSet::Retry, JobSet::Dead, JobSet::Schedule] {
        assert!(lab.backend.set_entries(set).await.unwrap().is_empty());
    }
    assert_eq!(lab.backend.stats().await.unwrap(), (0, 0));
}

#[tokio::test]
async fn reliable_fetch_brings_the_job_back_after_the_heartbeat_expires() {
    let runs = Arc::new(AtomicU32::new(0));
    let mut registry = Registry::new();
    registry.register("DiesOnce", DiesOnce(runs.clone()));
    let lab = lab(registry, config());
    lab.runner
        .client()
        .push("DiesOnce", vec![json!(1)], "default")
        .await
        .unwrap();
    let start = lab.clock.now_ms();
    lab.runner.drain_all(&lab.clock).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let attempts = lab.runner.history().attempts();
    assert_eq!(attempts.len(), 2);
    assert!(matches!(attempts[0].outcome, AttemptOutcome::Died { .. }));
    assert!(matches!(attempts[1].outcome, AttemptOutcome::Done));
    assert_ne!(
        attempts[0].process, attempts[1].process,
        "a new process ran it"
    );
    assert!(lab.clock.now_ms() - start > config().process_ttl_ms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_runs_concurrency_jobs_at_once_and_shows_them_busy() {
    let (lab, waiting, release) = blocking_lab(RunnerConfig {
        concurrency: 3,
        code_version: "v-test".into(),
        ..config()
    });
    for i in 0..5 {
        lab.runner
            .client()
            .push("Blocks", vec![json!(i)], "default")
            .await
            .unwrap();
    }
    let process = lab.runner.start().await;
    wait_until("three jobs run at once", || async {
        waiting.load(Ordering::SeqCst) == 3
    })
    .await;
    // A heartbeat (on the virtual clock) reports them busy.
    lab.clock.advance(config().heartbeat_ms);
    wait_until("the heartbeat shows three busy", || async {
        lab.backend.busy().await.unwrap().len() == 3
    })
    .await;
    let processes = lab.backend.processes().await.unwrap();
    assert_eq!(processes.len(), 1);
    assert_eq!(processes[0].code_version, "v-test");
    assert_eq!(processes[0].concurrency, 3);
    release.add_permits(5);
    wait_until("all five jobs done", || async {
        lab.backend.stats().await.unwrap().0 == 5
    })
    .await;
    process.stop().await;
    assert!(
        lab.backend.processes().await.unwrap().is_empty(),
        "a stopped process leaves the set"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_leaves_its_job_for_the_next_one_to_recover() {
    let (lab, waiting, release) = blocking_lab(RunnerConfig {
        concurrency: 1,
        ..config()
    });
    lab.runner
        .client()
        .push("Blocks", vec![json!(1)], "default")
        .await
        .unwrap();
    let first = lab.runner.start().await;
    wait_until("the job runs", || async {
        waiting.load(Ordering::SeqCst) == 1
    })
    .await;
    first.kill();
    assert_eq!(
        lab.backend.queue_sizes().await.unwrap()[0].1,
        0,
        "not back yet"
    );
    let second = lab.runner.start().await;
    release.add_permits(10);
    // Past the dead process's heartbeat TTL, the next poll brings the job back.
    lab.clock
        .advance(config().process_ttl_ms + config().poll_ms + 1);
    wait_until("the job runs again", || async {
        waiting.load(Ordering::SeqCst) == 2
    })
    .await;
    wait_until("the recovered job finishes", || async {
        lab.backend.stats().await.unwrap().0 >= 1
    })
    .await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_puts_unfinished_jobs_back() {
    let (lab, waiting, _release) = blocking_lab(RunnerConfig {
        concurrency: 1,
        // Real time: the subject of this test.
        shutdown_timeout: Duration::from_millis(50),
        ..config()
    });
    lab.runner
        .client()
        .push("Blocks", vec![json!(1)], "default")
        .await
        .unwrap();
    let process = lab.runner.start().await;
    wait_until("the job runs", || async {
        waiting.load(Ordering::SeqCst) == 1
    })
    .await;
    process.stop().await;
    let sizes = lab.backend.queue_sizes().await.unwrap();
    assert_eq!(sizes, vec![("default".to_string(), 1)], "back on its queue");
    assert!(lab.backend.processes().await.unwrap().is_empty());
    // And it is not also in an in-progress list to be recovered twice.
    assert!(lab
        .backend
        .recover_expired(u64::MAX, 0)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn retry_now_and_delete_work_on_the_sets() {
    let (registry, runs) = flaky(1, true);
    let lab = lab(registry, config());
    let jid = lab
        .runner
        .client()
        .push("FlakyJob", vec![], "default")
        .await
        .unwrap();
    let job = lab
        .backend
        .fetch(&["default".into()], FetchMode::Basic, "p", Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    lab.runner.perform(job, "p").await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let now = lab.clock.now_ms();
    assert!(lab
        .backend
        .requeue_from_set(JobSet::Retry, &jid, now)
        .await
        .unwrap());
    assert!(!lab
        .backend
        .requeue_from_set(JobSet::Retry, &jid, now)
        .await
        .unwrap());
    assert_eq!(lab.runner.drain_all(&lab.clock).await, 1);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    lab.backend
        .add_to_set(
            JobSet::Dead,
            lab.runner.client().build("X", vec![], "default"),
            now,
        )
        .await
        .unwrap();
    let dead_jid = lab.backend.set_entries(JobSet::Dead).await.unwrap()[0]
        .job
        .jid
        .clone();
    assert!(lab
        .backend
        .delete_from_set(JobSet::Dead, &dead_jid)
        .await
        .unwrap());
    assert!(lab
        .backend
        .set_entries(JobSet::Dead)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn the_same_seed_gives_the_same_jids_and_history() {
    let run = || async {
        let (registry, _) = flaky(2, true);
        let lab = lab(registry, config());
        for i in 0..3 {
            lab.runner
                .client()
                .push("FlakyJob", vec![json!(i)], "default")
                .await
                .unwrap();
        }
        lab.runner.drain_all(&lab.clock).await;
        serde_json::to_string(&lab.runner.history().attempts()).unwrap()
    };
    assert_eq!(run().await, run().await);
}
