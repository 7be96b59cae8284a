//! The job runner's Sidekiq semantics, on a virtual clock, on both queue
//! backends: `on_each_backend!` makes every case a `memory::<case>` and a
//! `redis::<case>` test, so the two cannot drift (`cargo test redis::` runs
//! the Redis share). `redis_layout::*` reads the Redis backend's keys with a
//! plain connection: Sidekiq's layout and JSON, exactly.
//!
//! Redis: `IDEMLAB_TEST_REDIS` (default `redis://127.0.0.1:6379`). Every
//! backend a test makes gets its own random key namespace, deleted at the end,
//! so the tests run in parallel on one server. If the server is not
//! reachable the Redis tests are skipped with a note on stderr — unless `CI`
//! is set, where they fail.
//!
//! No test waits on real time except where real time is the subject (the
//! graceful-stop timeout, a fetch's wait), and then only for a short, bounded
//! while.

use idemlab_test_support as common;

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::AsyncCommands;
use async_trait::async_trait;
use common::wait_until;
use fake_services::{Clock, ManualClock};
use idemlab::runner::backend::{BusyJob, ProcessInfo, DEAD_MAX_JOBS, DEAD_TIMEOUT_MS};
use idemlab::runner::{
    AttemptOutcome, Backend, DeathHandler, ErrorHandler, FetchMode, Finished, Job, JobContext,
    JobError, JobSet, MemoryBackend, RedisBackend, Registry, RetryPolicy, Runner, RunnerBuilder,
    RunnerConfig, TransientErrorSilencer, Worker,
};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

const DEFAULT_REDIS: &str = "redis://127.0.0.1:6379";

// ---------------------------------------------------------------------------
// Harness

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Memory,
    Redis,
}

/// What a case gets: fresh, empty backends of one kind, as many as it wants.
#[derive(Clone)]
struct Backends {
    kind: Kind,
    redis_url: String,
    /// The namespaces handed out, to delete afterwards.
    namespaces: Arc<Mutex<Vec<String>>>,
}

impl Backends {
    async fn fresh(&self) -> Arc<dyn Backend> {
        match self.kind {
            Kind::Memory => Arc::new(MemoryBackend::new()),
            Kind::Redis => self.fresh_redis().await.0,
        }
    }

    /// A Redis backend in a new namespace, and a plain connection to look
    /// at its keys with.
    async fn fresh_redis(&self) -> (Arc<RedisBackend>, Raw) {
        assert_eq!(self.kind, Kind::Redis);
        let namespace = format!("idemlab-test-{:016x}", rand::random::<u64>());
        self.namespaces.lock().unwrap().push(namespace.clone());
        let backend = RedisBackend::connect_with_namespace(&self.redis_url, &namespace)
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.redis_url));
        assert_eq!(backend.key_prefix(), format!("{namespace}:"));
        let raw = Raw {
            conn: raw_connection(&self.redis_url).await.unwrap(),
            prefix: format!("{namespace}:"),
        };
        (Arc::new(backend), raw)
    }

    /// Deletes every key of every namespace handed out.
    async fn clean_up(&self) {
        if self.kind != Kind::Redis {
            return;
        }
        let namespaces = self.namespaces.lock().unwrap().clone();
        let Ok(mut conn) = raw_connection(&self.redis_url).await else {
            eprintln!("note: could not connect to delete the test keys");
            return;
        };
        for namespace in namespaces {
            let keys = scan(&mut conn, &format!("{namespace}:*")).await;
            if !keys.is_empty() {
                let _: Result<(), _> = conn.del(keys).await;
            }
        }
    }
}

/// A plain connection to the test server, and the namespace's prefix.
struct Raw {
    conn: MultiplexedConnection,
    prefix: String,
}

impl Raw {
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Every key of the namespace, prefix stripped, sorted.
    async fn keys(&mut self) -> Vec<String> {
        let pattern = format!("{}*", self.prefix);
        let mut keys: Vec<String> = scan(&mut self.conn, &pattern)
            .await
            .into_iter()
            .map(|k| k[self.prefix.len()..].to_string())
            .collect();
        keys.sort();
        keys
    }
}

async fn raw_connection(url: &str) -> ::redis::RedisResult<MultiplexedConnection> {
    let client = ::redis::Client::open(url)?;
    client.get_multiplexed_async_connection().await
}

async fn scan(conn: &mut MultiplexedConnection, pattern: &str) -> Vec<String> {
    let mut cursor = 0u64;
    let mut keys = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = ::redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .expect("SCAN");
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

/// The test server's URL if it answers; otherwise a skip note (or, in CI, a
/// failure).
async fn redis_url() -> Option<String> {
    let url = std::env::var("IDEMLAB_TEST_REDIS").unwrap_or_else(|_| DEFAULT_REDIS.to_string());
    let ping = async {
        let mut conn = raw_connection(&url).await?;
        ::redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(Duration::from_secs(5), ping).await {
        Ok(Ok(_)) => Some(url),
        Ok(Err(e)) => unreachable_redis(&url, &e.to_string()),
        Err(_) => unreachable_redis(&url, "no answer within 5 s"),
    }
}

fn unreachable_redis(url: &str, error: &str) -> Option<String> {
    if std::env::var_os("CI").is_some() {
        panic!(
            "Redis is needed for the runner tests (CI is set) but is not reachable at {url}: \
             {error}\nStart it with `redis-server --daemonize yes --bind 127.0.0.1 --port 6379 \
             --save \"\" --appendonly no`, or point IDEMLAB_TEST_REDIS at a server the tests may \
             write to."
        );
    }
    // Straight to the process's stderr: the test harness captures `eprintln!`
    // of passing tests, and a skip should be seen.
    let line = format!("skipped: Redis not reachable at {url} (set IDEMLAB_TEST_REDIS): {error}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    None
}

/// Runs `case` on `kind`, then deletes its Redis keys (even if it panicked),
/// then re-raises its panic.
async fn run<F, Fut>(kind: Kind, case: F)
where
    F: FnOnce(Backends) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let redis_url = match kind {
        Kind::Memory => String::new(),
        Kind::Redis => match redis_url().await {
            Some(url) => url,
            None => return,
        },
    };
    let backends = Backends {
        kind,
        redis_url,
        namespaces: Arc::default(),
    };
    let result = tokio::spawn(case(backends.clone())).await;
    backends.clean_up().await;
    if let Err(e) = result {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("test case did not finish: {e}"),
        }
    }
}

/// One `#[tokio::test]` per case and backend: `memory::<case>` and
/// `redis::<case>`.
macro_rules! on_each_backend {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::run(crate::Kind::Memory, crate::cases::$case).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::run(crate::Kind::Redis, crate::cases::$case).await;
                }
            )*
        }
    };
}

/// Redis-only tests, with a plain connection to read the keys.
macro_rules! on_redis {
    ($($case:ident),* $(,)?) => {
        mod redis_layout {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::run(crate::Kind::Redis, crate::layout::$case).await;
                }
            )*
        }
    };
}

on_each_backend!(
    queues_are_served_in_strict_priority_order,
    a_failing_job_is_retried_on_sidekiqs_schedule_until_it_passes,
    the_time_scale_compresses_the_retry_schedule,
    exhausted_retries_bury_the_job_and_tell_the_death_handlers,
    permanent_errors_reach_the_error_handlers_at_once,
    retry_false_discards_and_retry_zero_buries_at_once,
    unknown_classes_and_panics_are_failures_not_crashes,
    basic_fetch_loses_the_job_of_a_dying_worker,
    reliable_fetch_brings_the_job_back_after_the_heartbeat_expires,
    a_process_runs_concurrency_jobs_at_once_and_shows_them_busy,
    a_killed_process_leaves_its_job_for_the_next_one_to_recover,
    a_graceful_stop_puts_unfinished_jobs_back,
    retry_now_and_delete_work_on_the_sets,
    the_same_seed_gives_the_same_jids_and_history,
    the_backend_says_its_name,
    jobs_at_the_same_time_keep_their_order_in_a_set,
    scheduled_jobs_are_enqueued_when_due,
    the_dead_set_drops_jobs_older_than_180_days,
    the_dead_set_keeps_the_newest_10000_jobs,
    recover_expired_puts_back_only_dead_processes_jobs,
    acknowledge_drops_only_that_job,
    settle_and_fetch_settles_the_finished_job_then_takes_the_next,
    waiting_jobs_are_queued_and_held_jobs,
    the_process_set_round_trips,
    a_fetch_waits_for_a_push,
    a_fetch_gives_up_after_its_wait,
    clear_forgets_everything,
);

on_redis!(
    jobs_and_keys_are_sidekiqs,
    failed_jobs_are_scored_in_epoch_seconds,
    the_process_set_is_sidekiqs,
    reliable_fetch_holds_the_job_in_an_in_progress_list,
    jobs_pushed_by_ruby_sidekiq_6_and_8_run_and_are_acknowledged,
    recover_expired_removes_the_dead_process_keys,
    a_waiting_fetch_sees_a_push_from_another_client,
    a_waiting_fetch_does_not_stall_other_commands,
    namespaces_keep_labs_apart_and_clear_leaves_nothing,
    a_payload_the_lab_cannot_read_goes_to_the_dead_set,
);

// ---------------------------------------------------------------------------
// Workers, handlers and the lab

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
    backend: Arc<dyn Backend>,
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

/// A runner on a fresh backend of the case's kind, on a virtual clock.
async fn lab(b: &Backends, registry: Registry, config: RunnerConfig) -> Lab {
    lab_on(b.fresh().await, registry, config)
}

fn lab_on(backend: Arc<dyn Backend>, registry: Registry, config: RunnerConfig) -> Lab {
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
async fn blocking_lab(b: &Backends, config: RunnerConfig) -> (Lab, Arc<AtomicU32>, Arc<Semaphore>) {
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
async fn one_running_job(
    b: &Backends,
    config: RunnerConfig,
) -> (
    Lab,
    Arc<AtomicU32>,
    Arc<Semaphore>,
    idemlab::runner::Process,
) {
    let (lab, waiting, release) = blocking_lab(
        b,
        RunnerConfig {
            concurrency: 1,
            ..config
        },
    )
    .await;
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
    (lab, waiting, release, process)
}

// ---------------------------------------------------------------------------
// Cases: each runs on both backends.

mod cases {
    use super::*;

    pub async fn queues_are_served_in_strict_priority_order(b: Backends) {
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut registry = Registry::new();
        registry.register("R", Recorder(order.clone()));
        let lab = lab(&b, registry, config()).await;
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

    pub async fn a_failing_job_is_retried_on_sidekiqs_schedule_until_it_passes(b: Backends) {
        let (registry, runs) = flaky(2, true);
        let lab = lab(&b, registry, config()).await;
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

    pub async fn the_time_scale_compresses_the_retry_schedule(b: Backends) {
        let (registry, runs) = flaky(3, true);
        let lab = lab(
            &b,
            registry,
            RunnerConfig {
                retry: RetryPolicy {
                    max_retries: 25,
                    time_scale: 0.001,
                },
                ..config()
            },
        )
        .await;
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

    pub async fn exhausted_retries_bury_the_job_and_tell_the_death_handlers(b: Backends) {
        let (registry, runs) = flaky(100, true);
        let lab = lab(
            &b,
            registry,
            RunnerConfig {
                retry: RetryPolicy {
                    max_retries: 1,
                    time_scale: 1.0,
                },
                ..config()
            },
        )
        .await;
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

    pub async fn permanent_errors_reach_the_error_handlers_at_once(b: Backends) {
        let (registry, _) = flaky(1, false);
        let lab = lab(&b, registry, config()).await;
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

    pub async fn retry_false_discards_and_retry_zero_buries_at_once(b: Backends) {
        let (registry, runs) = flaky(100, false);
        let lab = lab(&b, registry, config()).await;
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

    pub async fn unknown_classes_and_panics_are_failures_not_crashes(b: Backends) {
        let mut registry = Registry::new();
        registry.register("Panics", Panics);
        let lab = lab(
            &b,
            registry,
            RunnerConfig {
                retry: RetryPolicy {
                    max_retries: 0,
                    time_scale: 1.0,
                },
                ..config()
            },
        )
        .await;
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

    pub async fn basic_fetch_loses_the_job_of_a_dying_worker(b: Backends) {
        let runs = Arc::new(AtomicU32::new(0));
        let mut registry = Registry::new();
        registry.register("DiesOnce", DiesOnce(runs.clone()));
        let lab = lab(
            &b,
            registry,
            RunnerConfig {
                fetch: FetchMode::Basic,
                ..config()
            },
        )
        .await;
        lab.runner
            .client()
            .push("DiesOnce", vec![json!(1)], "default")
            .await
            .unwrap();
        lab.runner.drain_all(&lab.clock).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1, "never run again: lost");
        let attempts = lab.runner.history().attempts();
        assert!(
            matches!(attempts[..], [ref a] if matches!(a.outcome, AttemptOutcome::Died { .. }))
        );
        for set in [JobSet::Retry, JobSet::Dead, JobSet::Schedule] {
            assert!(lab.backend.set_entries(set).await.unwrap().is_empty());
        }
        assert_eq!(lab.backend.stats().await.unwrap(), (0, 0));
    }

    pub async fn reliable_fetch_brings_the_job_back_after_the_heartbeat_expires(b: Backends) {
        let runs = Arc::new(AtomicU32::new(0));
        let mut registry = Registry::new();
        registry.register("DiesOnce", DiesOnce(runs.clone()));
        let lab = lab(&b, registry, config()).await;
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

    pub async fn a_process_runs_concurrency_jobs_at_once_and_shows_them_busy(b: Backends) {
        let (lab, waiting, release) = blocking_lab(
            &b,
            RunnerConfig {
                concurrency: 3,
                code_version: "v-test".into(),
                ..config()
            },
        )
        .await;
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
        // A heartbeat (on the virtual clock) reports them busy. Time moves a
        // heartbeat period per look: a beat that was still under way when
        // time first moved sleeps from the new time.
        wait_until("the heartbeat shows three busy", || async {
            lab.clock.advance(config().heartbeat_ms);
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

    pub async fn a_killed_process_leaves_its_job_for_the_next_one_to_recover(b: Backends) {
        let (lab, waiting, release, first) = one_running_job(&b, config()).await;
        first.kill();
        assert_eq!(
            lab.backend.queue_sizes().await.unwrap()[0].1,
            0,
            "not back yet"
        );
        let second = lab.runner.start().await;
        release.add_permits(10);
        // Past the dead process's heartbeat TTL, the next poll brings the job
        // back. Then time moves a poll period per look: the new process's
        // first poll may still be under way (it reads the clock before it
        // goes to Redis), and its sleep then starts from the new time.
        lab.clock.advance(config().process_ttl_ms + 1);
        wait_until("the job runs again", || async {
            lab.clock.advance(config().poll_ms);
            waiting.load(Ordering::SeqCst) == 2
        })
        .await;
        wait_until("the recovered job finishes", || async {
            lab.backend.stats().await.unwrap().0 >= 1
        })
        .await;
        second.stop().await;
    }

    pub async fn a_graceful_stop_puts_unfinished_jobs_back(b: Backends) {
        let (lab, _waiting, _release, process) = one_running_job(
            &b,
            RunnerConfig {
                // Real time: the subject of this test.
                shutdown_timeout: Duration::from_millis(50),
                ..config()
            },
        )
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

    pub async fn retry_now_and_delete_work_on_the_sets(b: Backends) {
        let (registry, runs) = flaky(1, true);
        let lab = lab(&b, registry, config()).await;
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

    pub async fn the_same_seed_gives_the_same_jids_and_history(b: Backends) {
        let run = || async {
            let (registry, _) = flaky(2, true);
            let lab = lab(&b, registry, config()).await;
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

    // -----------------------------------------------------------------------
    // The backend trait itself, case by case.

    const T0: u64 = 1_767_225_600_000;

    fn job(class: &str, n: u64, queue: &str, at_ms: u64) -> Job {
        Job::new(class, vec![json!(n)], queue, format!("{n:024x}"), at_ms)
    }

    fn jids(jobs: &[Job]) -> Vec<String> {
        jobs.iter().map(|j| j.jid.clone()).collect()
    }

    async fn take(backend: &dyn Backend, mode: FetchMode, process: &str) -> Option<Job> {
        backend
            .fetch(
                &["high".into(), "default".into()],
                mode,
                process,
                Duration::ZERO,
            )
            .await
            .unwrap()
    }

    fn process(identity: &str, beat_ms: u64) -> ProcessInfo {
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

    pub async fn the_backend_says_its_name(b: Backends) {
        let expected = match b.kind {
            Kind::Memory => "memory",
            Kind::Redis => "redis",
        };
        assert_eq!(b.fresh().await.name(), expected);
    }

    pub async fn jobs_at_the_same_time_keep_their_order_in_a_set(b: Backends) {
        let backend = b.fresh().await;
        // Classes in reverse byte order: a set ordered by member would flip them.
        for (n, class) in [(1, "C"), (2, "B"), (3, "A")] {
            backend
                .add_to_set(JobSet::Retry, job(class, n, "default", T0), T0 + 5_000)
                .await
                .unwrap();
        }
        backend
            .add_to_set(JobSet::Retry, job("Z", 4, "default", T0), T0 + 4_999)
            .await
            .unwrap();
        let entries = backend.set_entries(JobSet::Retry).await.unwrap();
        let seen: Vec<(u64, &str)> = entries
            .iter()
            .map(|e| (e.at_ms, e.job.class.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                (T0 + 4_999, "Z"),
                (T0 + 5_000, "C"),
                (T0 + 5_000, "B"),
                (T0 + 5_000, "A")
            ]
        );
        assert_eq!(backend.next_due_ms().await.unwrap(), Some(T0 + 4_999));
        assert_eq!(backend.enqueue_due(T0 + 4_998).await.unwrap(), 0);
        assert_eq!(backend.enqueue_due(T0 + 5_000).await.unwrap(), 4);
        assert_eq!(backend.next_due_ms().await.unwrap(), None);
        let mut order = Vec::new();
        while let Some(job) = take(backend.as_ref(), FetchMode::Basic, "p").await {
            assert_eq!(job.enqueued_at, Some((T0 + 5_000) as f64 / 1000.0));
            order.push(job.class);
        }
        assert_eq!(order, ["Z", "C", "B", "A"], "due jobs keep their order");
    }

    pub async fn scheduled_jobs_are_enqueued_when_due(b: Backends) {
        let (registry, runs) = flaky(0, true);
        let lab = lab(&b, registry, config()).await;
        let jid = lab
            .runner
            .client()
            .push_in("FlakyJob", vec![json!(1)], "default", 60_000)
            .await
            .unwrap();
        let scheduled = lab.backend.set_entries(JobSet::Schedule).await.unwrap();
        assert_eq!(scheduled.len(), 1);
        assert_eq!(scheduled[0].job.jid, jid);
        assert_eq!(scheduled[0].at_ms, T0 + 60_000);
        assert_eq!(lab.backend.enqueue_due(T0 + 59_999).await.unwrap(), 0);
        assert_eq!(lab.runner.drain_all(&lab.clock).await, 1);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(lab.clock.now_ms(), T0 + 60_000, "run when due, not before");
        assert!(lab
            .backend
            .set_entries(JobSet::Schedule)
            .await
            .unwrap()
            .is_empty());
    }

    pub async fn the_dead_set_drops_jobs_older_than_180_days(b: Backends) {
        let backend = b.fresh().await;
        let old_at = T0 - DEAD_TIMEOUT_MS - 1;
        backend
            .add_to_set(JobSet::Dead, job("Old", 1, "default", old_at), old_at)
            .await
            .unwrap();
        // 180 days to the millisecond after it died: still kept.
        backend
            .add_to_set(JobSet::Dead, job("New", 2, "default", T0), T0 - 1)
            .await
            .unwrap();
        assert_eq!(backend.set_entries(JobSet::Dead).await.unwrap().len(), 2);
        // One millisecond more: gone.
        backend
            .add_to_set(JobSet::Dead, job("Newer", 3, "default", T0), T0)
            .await
            .unwrap();
        let dead = backend.set_entries(JobSet::Dead).await.unwrap();
        let classes: Vec<&str> = dead.iter().map(|e| e.job.class.as_str()).collect();
        assert_eq!(classes, ["New", "Newer"]);
        // The retry set has no such limit.
        backend
            .add_to_set(JobSet::Retry, job("Old", 4, "default", old_at), old_at)
            .await
            .unwrap();
        backend
            .add_to_set(JobSet::Retry, job("New", 5, "default", T0), T0)
            .await
            .unwrap();
        assert_eq!(backend.set_entries(JobSet::Retry).await.unwrap().len(), 2);
    }

    pub async fn the_dead_set_keeps_the_newest_10000_jobs(b: Backends) {
        let backend = b.fresh().await;
        let n = DEAD_MAX_JOBS as u64;
        // Each job at its own millisecond, so the order does not depend on
        // which of the concurrent adds lands first.
        let mut adds = tokio::task::JoinSet::new();
        for i in 0..n {
            let backend = backend.clone();
            adds.spawn(async move {
                let at = T0 + i;
                backend
                    .add_to_set(JobSet::Dead, job("Dead", i, "default", at), at)
                    .await
                    .unwrap();
            });
        }
        while let Some(done) = adds.join_next().await {
            done.unwrap();
        }
        let dead = backend.set_entries(JobSet::Dead).await.unwrap();
        assert_eq!(dead.len(), DEAD_MAX_JOBS);
        assert_eq!(dead[0].job.jid, format!("{:024x}", 0));
        backend
            .add_to_set(JobSet::Dead, job("Dead", n, "default", T0 + n), T0 + n)
            .await
            .unwrap();
        let dead = backend.set_entries(JobSet::Dead).await.unwrap();
        assert_eq!(dead.len(), DEAD_MAX_JOBS, "one in, the oldest out");
        assert_eq!(dead[0].job.jid, format!("{:024x}", 1));
        assert_eq!(dead[DEAD_MAX_JOBS - 1].job.jid, format!("{n:024x}"));
        assert_eq!(dead[DEAD_MAX_JOBS - 1].at_ms, T0 + n);
    }

    pub async fn recover_expired_puts_back_only_dead_processes_jobs(b: Backends) {
        let backend = b.fresh().await;
        let ttl = 60_000;
        for n in 1..=4 {
            backend.push(job("J", n, "default", T0), T0).await.unwrap();
        }
        backend
            .heartbeat(process("dead", T0), vec![])
            .await
            .unwrap();
        backend
            .heartbeat(process("alive", T0), vec![])
            .await
            .unwrap();
        // "dead" holds jobs 1 and 2, "alive" job 3; "ghost" (no heartbeat
        // ever) job 4.
        let one = take(backend.as_ref(), FetchMode::Reliable, "dead")
            .await
            .unwrap();
        let two = take(backend.as_ref(), FetchMode::Reliable, "dead")
            .await
            .unwrap();
        let three = take(backend.as_ref(), FetchMode::Reliable, "alive")
            .await
            .unwrap();
        let four = take(backend.as_ref(), FetchMode::Reliable, "ghost")
            .await
            .unwrap();
        assert_eq!(
            jids(&[one, two.clone(), three, four.clone()]),
            jids(&[
                job("J", 1, "default", T0),
                job("J", 2, "default", T0),
                job("J", 3, "default", T0),
                job("J", 4, "default", T0),
            ])
        );
        backend
            .heartbeat(process("alive", T0 + ttl), vec![])
            .await
            .unwrap();
        // Exactly the TTL since "dead" beat: not dead yet; but the ghost's
        // list has no process at all.
        let recovered = backend.recover_expired(T0 + ttl, ttl).await.unwrap();
        assert_eq!(jids(&recovered), [four.jid.as_str()]);
        let later = T0 + ttl + 1;
        let mut recovered = backend.recover_expired(later, ttl).await.unwrap();
        recovered.sort_by(|a, b| a.jid.cmp(&b.jid));
        assert_eq!(
            jids(&recovered),
            [format!("{:024x}", 1), format!("{:024x}", 2)]
        );
        let identities: Vec<String> = backend
            .processes()
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.identity)
            .collect();
        assert_eq!(identities, ["alive"]);
        // Back at the taking end: the newest fetch first, then the older one,
        // then the ghost's (recovered earlier).
        let next: Vec<Job> = [
            take(backend.as_ref(), FetchMode::Basic, "p").await.unwrap(),
            take(backend.as_ref(), FetchMode::Basic, "p").await.unwrap(),
            take(backend.as_ref(), FetchMode::Basic, "p").await.unwrap(),
        ]
        .into();
        assert_eq!(
            jids(&next),
            [two.jid.clone(), format!("{:024x}", 1), four.jid.clone()]
        );
        assert_eq!(next[0].enqueued_at, Some(later as f64 / 1000.0));
        assert!(take(backend.as_ref(), FetchMode::Basic, "p")
            .await
            .is_none());
        // Nothing left to recover; "alive" still holds job 3.
        assert!(backend
            .recover_expired(later, ttl)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            jids(&backend.waiting_jobs().await.unwrap()),
            [format!("{:024x}", 3)]
        );
    }

    pub async fn acknowledge_drops_only_that_job(b: Backends) {
        let backend = b.fresh().await;
        for n in 1..=3 {
            backend.push(job("J", n, "default", T0), T0).await.unwrap();
        }
        let one = take(backend.as_ref(), FetchMode::Reliable, "p")
            .await
            .unwrap();
        let two = take(backend.as_ref(), FetchMode::Reliable, "p")
            .await
            .unwrap();
        backend.acknowledge("p", &one).await.unwrap();
        // Twice, or by another process: nothing more happens.
        backend.acknowledge("p", &one).await.unwrap();
        backend.acknowledge("q", &two).await.unwrap();
        let mut waiting = jids(&backend.waiting_jobs().await.unwrap());
        waiting.sort();
        assert_eq!(waiting, [two.jid.clone(), format!("{:024x}", 3)]);
        // Basic fetch holds nothing: acknowledging is a no-op.
        let three = take(backend.as_ref(), FetchMode::Basic, "p").await.unwrap();
        backend.acknowledge("p", &three).await.unwrap();
        backend.acknowledge("p", &two).await.unwrap();
        assert!(backend.waiting_jobs().await.unwrap().is_empty());
        assert!(backend
            .recover_expired(u64::MAX, 0)
            .await
            .unwrap()
            .is_empty());
    }

    /// What a worker does between two jobs: the finished one is dropped
    /// from the in-progress list and counted before the next is taken, and
    /// a settle with nothing to take still happens.
    pub async fn settle_and_fetch_settles_the_finished_job_then_takes_the_next(b: Backends) {
        let backend = b.fresh().await;
        let queues = ["high".to_string(), "default".to_string()];
        for n in 1..=2 {
            backend.push(job("J", n, "default", T0), T0).await.unwrap();
        }
        let one = take(backend.as_ref(), FetchMode::Reliable, "p")
            .await
            .unwrap();
        let finished = Finished {
            job: one.clone(),
            processed: 1,
            failed: 0,
        };
        let two = backend
            .settle_and_fetch(
                Some(finished),
                &queues,
                FetchMode::Reliable,
                "p",
                Duration::ZERO,
            )
            .await
            .unwrap()
            .expect("the second job");
        assert_eq!(two.jid, format!("{:024x}", 2));
        assert_eq!(
            jids(&backend.waiting_jobs().await.unwrap()),
            [two.jid.as_str()]
        );
        assert_eq!(backend.stats().await.unwrap(), (1, 0));

        // A failed job, and nothing left to take: settled all the same.
        let failed = Finished {
            job: two,
            processed: 1,
            failed: 1,
        };
        let none = backend
            .settle_and_fetch(
                Some(failed),
                &queues,
                FetchMode::Reliable,
                "p",
                Duration::ZERO,
            )
            .await
            .unwrap();
        assert_eq!(none, None);
        assert!(backend.waiting_jobs().await.unwrap().is_empty());
        assert_eq!(backend.stats().await.unwrap(), (2, 1));
        assert!(backend
            .recover_expired(u64::MAX, 0)
            .await
            .unwrap()
            .is_empty());
    }

    pub async fn waiting_jobs_are_queued_and_held_jobs(b: Backends) {
        let backend = b.fresh().await;
        backend.push(job("J", 1, "high", T0), T0).await.unwrap();
        backend.push(job("J", 2, "default", T0), T0).await.unwrap();
        backend.push(job("J", 3, "default", T0), T0).await.unwrap();
        backend
            .add_to_set(JobSet::Retry, job("J", 4, "default", T0), T0)
            .await
            .unwrap();
        let held = take(backend.as_ref(), FetchMode::Reliable, "p")
            .await
            .unwrap();
        assert_eq!(held.queue, "high", "strict priority");
        let lost = take(backend.as_ref(), FetchMode::Basic, "p").await.unwrap();
        assert_eq!(lost.jid, format!("{:024x}", 2), "first in, first out");
        let mut waiting = jids(&backend.waiting_jobs().await.unwrap());
        waiting.sort();
        assert_eq!(waiting, [format!("{:024x}", 1), format!("{:024x}", 3)]);
        let mut sizes = backend.queue_sizes().await.unwrap();
        sizes.sort();
        assert_eq!(sizes, [("default".to_string(), 1), ("high".to_string(), 0)]);
    }

    pub async fn the_process_set_round_trips(b: Backends) {
        let backend = b.fresh().await;
        let mut info = process("lab:v1:0", T0 + 5_123);
        info.busy = 2;
        let busy: Vec<BusyJob> = (1..=2)
            .map(|n| BusyJob {
                process: "lab:v1:0".into(),
                started_at_ms: T0 + n * 1_001,
                job: job("J", n, "default", T0),
            })
            .collect();
        backend.heartbeat(info.clone(), busy.clone()).await.unwrap();
        backend
            .heartbeat(process("lab:v0:0", T0), vec![])
            .await
            .unwrap();
        let processes = backend.processes().await.unwrap();
        assert_eq!(processes, [process("lab:v0:0", T0), info.clone()]);
        let mut shown = backend.busy().await.unwrap();
        shown.sort_by_key(|b| b.started_at_ms);
        assert_eq!(shown, busy);
        // The next beat replaces the busy list.
        info.busy = 0;
        backend.heartbeat(info, vec![]).await.unwrap();
        assert!(backend.busy().await.unwrap().is_empty());
        backend.remove_process("lab:v1:0").await.unwrap();
        backend.remove_process("lab:v0:0").await.unwrap();
        assert!(backend.processes().await.unwrap().is_empty());
    }

    pub async fn a_fetch_waits_for_a_push(b: Backends) {
        let backend = b.fresh().await;
        let waiting = tokio::spawn({
            let backend = backend.clone();
            async move {
                backend
                    .fetch(
                        &["default".into()],
                        FetchMode::Reliable,
                        "p",
                        Duration::from_secs(30),
                    )
                    .await
            }
        });
        backend.push(job("J", 1, "default", T0), T0).await.unwrap();
        let fetched = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("the push ends the wait")
            .unwrap()
            .unwrap();
        assert_eq!(fetched.map(|j| j.jid), Some(format!("{:024x}", 1)));
    }

    pub async fn a_fetch_gives_up_after_its_wait(b: Backends) {
        let backend = b.fresh().await;
        let started = tokio::time::Instant::now();
        let wait = Duration::from_millis(30);
        let fetched = backend
            .fetch(&["default".into()], FetchMode::Reliable, "p", wait)
            .await
            .unwrap();
        assert!(fetched.is_none());
        assert!(started.elapsed() >= wait);
        let none = backend
            .fetch(&[], FetchMode::Basic, "p", Duration::ZERO)
            .await
            .unwrap();
        assert!(none.is_none(), "no queues, no job");
    }

    pub async fn clear_forgets_everything(b: Backends) {
        let backend = b.fresh().await;
        backend.push(job("J", 1, "default", T0), T0).await.unwrap();
        backend.push(job("J", 2, "high", T0), T0).await.unwrap();
        take(backend.as_ref(), FetchMode::Reliable, "p")
            .await
            .unwrap();
        for set in [JobSet::Schedule, JobSet::Retry, JobSet::Dead] {
            backend
                .add_to_set(set, job("J", 3, "default", T0), T0)
                .await
                .unwrap();
        }
        backend.count(3, 1).await.unwrap();
        let busy = BusyJob {
            process: "p".into(),
            started_at_ms: T0,
            job: job("J", 2, "high", T0),
        };
        backend
            .heartbeat(process("p", T0), vec![busy])
            .await
            .unwrap();
        backend.clear().await.unwrap();
        assert!(backend.queue_sizes().await.unwrap().is_empty());
        for set in [JobSet::Schedule, JobSet::Retry, JobSet::Dead] {
            assert!(backend.set_entries(set).await.unwrap().is_empty());
        }
        assert_eq!(backend.stats().await.unwrap(), (0, 0));
        assert!(backend.processes().await.unwrap().is_empty());
        assert!(backend.busy().await.unwrap().is_empty());
        assert!(backend.waiting_jobs().await.unwrap().is_empty());
        assert_eq!(backend.next_due_ms().await.unwrap(), None);
        assert!(backend
            .recover_expired(u64::MAX, 0)
            .await
            .unwrap()
            .is_empty());
    }
}

// ---------------------------------------------------------------------------
// Redis only: the keys and JSON, read with a plain connection.

mod layout {
    use super::*;

    const T0: u64 = 1_767_225_600_000;

    fn object_keys(value: &Value) -> BTreeSet<String> {
        value.as_object().unwrap().keys().cloned().collect()
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    /// A lab on a fresh Redis backend, and the plain connection.
    async fn redis_lab(b: &Backends, registry: Registry, config: RunnerConfig) -> (Lab, Raw) {
        let (backend, raw) = b.fresh_redis().await;
        (lab_on(backend, registry, config), raw)
    }

    pub async fn jobs_and_keys_are_sidekiqs(b: Backends) {
        let (lab, mut raw) = redis_lab(&b, Registry::new(), config()).await;
        let client = lab.runner.client();
        let first = client
            .push("CompleteOrderJob", vec![json!(7)], "default")
            .await
            .unwrap();
        lab.clock.advance(1_500);
        let second = client
            .push("CompleteOrderJob", vec![json!(8)], "default")
            .await
            .unwrap();
        client.push("R", vec![], "high").await.unwrap();

        let queues: BTreeSet<String> = raw.conn.smembers(raw.key("queues")).await.unwrap();
        assert_eq!(queues, set(&["default", "high"]));
        // LPUSH: the newest on the left; taken from the right.
        let listed: Vec<String> = raw
            .conn
            .lrange(raw.key("queue:default"), 0, -1)
            .await
            .unwrap();
        let listed: Vec<Value> = listed
            .iter()
            .map(|s| serde_json::from_str(s).unwrap())
            .collect();
        assert_eq!(listed[0]["jid"], json!(second));
        assert_eq!(listed[1]["jid"], json!(first));
        let job = &listed[1];
        assert_eq!(
            object_keys(job),
            set(&[
                "class",
                "args",
                "jid",
                "queue",
                "retry",
                "created_at",
                "enqueued_at"
            ])
        );
        assert_eq!(job["class"], "CompleteOrderJob");
        assert_eq!(job["args"], json!([7]));
        assert_eq!(job["queue"], "default");
        assert_eq!(job["retry"], json!(true));
        assert!(job["created_at"].is_f64(), "float seconds: {job}");
        assert_eq!(job["created_at"], json!(1_767_225_600.0));
        assert_eq!(job["enqueued_at"], json!(1_767_225_600.0));
        assert_eq!(listed[0]["enqueued_at"], json!(1_767_225_601.5));
        let jid = job["jid"].as_str().unwrap();
        assert!(jid.len() == 24 && jid.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(
            raw.keys().await,
            ["queue:default", "queue:high", "queues"],
            "nothing else"
        );
        // Taken first in, first out.
        let taken = lab
            .backend
            .fetch(&["default".into()], FetchMode::Basic, "p", Duration::ZERO)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(taken.jid, first);
    }

    pub async fn failed_jobs_are_scored_in_epoch_seconds(b: Backends) {
        let (registry, _) = flaky(100, true);
        let (lab, mut raw) = redis_lab(
            &b,
            registry,
            RunnerConfig {
                retry: RetryPolicy {
                    max_retries: 1,
                    time_scale: 1.0,
                },
                ..config()
            },
        )
        .await;
        let jid = lab
            .runner
            .client()
            .push("FlakyJob", vec![json!("a")], "default")
            .await
            .unwrap();
        let job = lab
            .backend
            .fetch(
                &["default".into()],
                FetchMode::Reliable,
                "p",
                Duration::ZERO,
            )
            .await
            .unwrap()
            .unwrap();
        lab.runner.perform(job, "p").await;
        let retries: Vec<(String, f64)> = raw
            .conn
            .zrange_withscores(raw.key("retry"), 0, -1)
            .await
            .unwrap();
        assert_eq!(retries.len(), 1);
        let (member, score) = &retries[0];
        let now_s = T0 as f64 / 1000.0;
        // Retry 0 waits 15–24 s.
        assert!(
            (now_s + 15.0..=now_s + 25.0).contains(score),
            "score {score} is not epoch seconds 15–24 s after {now_s}"
        );
        let failed: Value = serde_json::from_str(member).unwrap();
        assert_eq!(failed["jid"], json!(jid));
        assert_eq!(failed["error_class"], "Payments::ServerError");
        assert_eq!(failed["error_message"], "503 from payments");
        assert_eq!(failed["failed_at"], json!(now_s));
        assert_eq!(failed["retry_count"], json!(0));
        assert!(failed.get("retried_at").is_none());
        let stats: (String, String) = ::redis::pipe()
            .get(raw.key("stat:processed"))
            .get(raw.key("stat:failed"))
            .query_async(&mut raw.conn)
            .await
            .unwrap();
        assert_eq!(stats, ("1".to_string(), "1".to_string()));
        // The retry runs, fails again and dies: the dead set, scored now.
        lab.runner.drain_all(&lab.clock).await;
        let dead: Vec<(String, f64)> = raw
            .conn
            .zrange_withscores(raw.key("dead"), 0, -1)
            .await
            .unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].1, lab.clock.now_ms() as f64 / 1000.0);
        let died: Value = serde_json::from_str(&dead[0].0).unwrap();
        assert_eq!(died["retry_count"], json!(1));
        assert!(died["retried_at"].is_f64());
        let retry_size: usize = raw.conn.zcard(raw.key("retry")).await.unwrap();
        assert_eq!(retry_size, 0);
    }

    pub async fn the_process_set_is_sidekiqs(b: Backends) {
        let (backend, mut raw) = b.fresh_redis().await;
        let identity = "lab:v7:0";
        let busy_job = Job::new(
            "CompleteOrderJob",
            vec![json!(1)],
            "high",
            "a".repeat(24),
            T0,
        );
        let info = ProcessInfo {
            identity: identity.into(),
            hostname: "worker-1".into(),
            started_at_ms: T0,
            beat_ms: T0 + 5_250,
            concurrency: 10,
            queues: vec!["high".into(), "default".into()],
            busy: 1,
            code_version: "v7".into(),
        };
        backend
            .heartbeat(
                info.clone(),
                vec![BusyJob {
                    process: identity.into(),
                    started_at_ms: T0 + 4_000,
                    job: busy_job.clone(),
                }],
            )
            .await
            .unwrap();
        let members: BTreeSet<String> = raw.conn.smembers(raw.key("processes")).await.unwrap();
        assert_eq!(members, set(&[identity]));
        let hash: HashMap<String, String> = raw.conn.hgetall(raw.key(identity)).await.unwrap();
        assert_eq!(hash["busy"], "1");
        assert_eq!(hash["beat"], "1767225605.25");
        assert_eq!(hash["quiet"], "false");
        let info_json: Value = serde_json::from_str(&hash["info"]).unwrap();
        assert_eq!(info_json["hostname"], "worker-1");
        assert_eq!(info_json["started_at"], json!(1_767_225_600.0));
        assert_eq!(info_json["pid"], json!(std::process::id()));
        assert_eq!(info_json["tag"], "v7", "the label Sidekiq's web UI shows");
        assert_eq!(info_json["version"], "v7");
        assert_eq!(info_json["concurrency"], json!(10));
        assert_eq!(info_json["queues"], json!(["high", "default"]));
        assert_eq!(info_json["identity"], identity);
        // Sidekiq 7's `:work` and Sidekiq 6's `:workers`, jid → work.
        for key in ["work", "workers"] {
            let work: HashMap<String, String> = raw
                .conn
                .hgetall(raw.key(&format!("{identity}:{key}")))
                .await
                .unwrap();
            assert_eq!(work.len(), 1, "{key}");
            let entry: Value = serde_json::from_str(&work[&busy_job.jid]).unwrap();
            assert_eq!(object_keys(&entry), set(&["queue", "payload", "run_at"]));
            assert_eq!(entry["queue"], "high");
            assert_eq!(entry["run_at"], json!(1_767_225_604.0));
            let payload: Value = serde_json::from_str(entry["payload"].as_str().unwrap()).unwrap();
            assert_eq!(payload["jid"], json!(busy_job.jid));
        }
        // A tag-only process (Sidekiq 6 writes no version) shows its tag.
        let ruby_info = json!({
            "hostname": "ruby", "started_at": 1_767_225_600.5, "pid": 42, "tag": "app-v6",
            "concurrency": 10, "queues": ["default"], "labels": [], "identity": "ruby:42:abc"
        });
        let _: () = ::redis::pipe()
            .sadd(raw.key("processes"), "ruby:42:abc")
            .hset_multiple(
                raw.key("ruby:42:abc"),
                &[
                    ("info", ruby_info.to_string()),
                    ("busy", "0".into()),
                    ("beat", "1767225610.123456".into()),
                    ("quiet", "false".into()),
                ],
            )
            .query_async(&mut raw.conn)
            .await
            .unwrap();
        let processes = backend.processes().await.unwrap();
        assert_eq!(processes[0], info);
        assert_eq!(processes[1].code_version, "app-v6");
        assert_eq!(processes[1].beat_ms, T0 + 10_123);
        assert_eq!(processes[1].started_at_ms, T0 + 500);
        backend.remove_process(identity).await.unwrap();
        backend.remove_process("ruby:42:abc").await.unwrap();
        assert!(raw.keys().await.is_empty(), "{:?}", raw.keys().await);
    }

    pub async fn reliable_fetch_holds_the_job_in_an_in_progress_list(b: Backends) {
        let (backend, mut raw) = b.fresh_redis().await;
        let job = Job::new("J", vec![], "default", "b".repeat(24), T0);
        backend.push(job, T0).await.unwrap();
        let pushed: Vec<String> = raw
            .conn
            .lrange(raw.key("queue:default"), 0, -1)
            .await
            .unwrap();
        let taken = backend
            .fetch(
                &["default".into()],
                FetchMode::Reliable,
                "w:1",
                Duration::ZERO,
            )
            .await
            .unwrap()
            .unwrap();
        let held: Vec<String> = raw
            .conn
            .lrange(raw.key("inprogress:w:1"), 0, -1)
            .await
            .unwrap();
        assert_eq!(held, pushed, "moved as it was");
        let holders: BTreeSet<String> = raw.conn.smembers(raw.key("inprogress")).await.unwrap();
        assert_eq!(holders, set(&["w:1"]));
        let size: usize = raw.conn.llen(raw.key("queue:default")).await.unwrap();
        assert_eq!(size, 0);
        backend.acknowledge("w:1", &taken).await.unwrap();
        // The emptied lists are gone (Redis drops empty lists).
        assert_eq!(raw.keys().await, ["queues"]);
    }

    pub async fn jobs_pushed_by_ruby_sidekiq_6_and_8_run_and_are_acknowledged(b: Backends) {
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut registry = Registry::new();
        registry.register("HardJob", Recorder(order.clone()));
        let (lab, mut raw) = redis_lab(&b, registry, config()).await;
        // As Sidekiq 8 writes it: integer milliseconds, its own key order,
        // keys the lab does not know.
        let sidekiq8 = r#"{"retry":true,"queue":"default","args":["eight"],"class":"HardJob","jid":"8a8a8a8a8a8a8a8a8a8a8a8a","created_at":1767225600123,"enqueued_at":1767225600456,"tags":["vip"]}"#;
        // As Sidekiq 6 writes it: float seconds.
        let sidekiq6 = r#"{"class":"HardJob","args":["six"],"retry":3,"queue":"default","jid":"6b6b6b6b6b6b6b6b6b6b6b6b","created_at":1767225600.5,"enqueued_at":1767225600.75}"#;
        let _: () = ::redis::pipe()
            .sadd(raw.key("queues"), "default")
            .lpush(raw.key("queue:default"), sidekiq8)
            .lpush(raw.key("queue:default"), sidekiq6)
            .query_async(&mut raw.conn)
            .await
            .unwrap();
        // Read as it is.
        let job = lab
            .backend
            .fetch(
                &["default".into()],
                FetchMode::Reliable,
                "w",
                Duration::ZERO,
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(job.jid, "8a8a8a8a8a8a8a8a8a8a8a8a");
        assert_eq!(job.created_at, 1_767_225_600.123);
        assert_eq!(job.enqueued_at, Some(1_767_225_600.456));
        assert_eq!(job.extra["tags"], json!(["vip"]));
        let held: Vec<String> = raw
            .conn
            .lrange(raw.key("inprogress:w"), 0, -1)
            .await
            .unwrap();
        assert_eq!(held, [sidekiq8], "held byte for byte");
        // The lab would write it differently; acknowledging still finds it.
        assert_ne!(job.to_json(), sidekiq8);
        lab.backend.acknowledge("w", &job).await.unwrap();
        let held: usize = raw.conn.llen(raw.key("inprogress:w")).await.unwrap();
        assert_eq!(held, 0);
        // Put it back and let the runner run both.
        let _: () = raw
            .conn
            .rpush(raw.key("queue:default"), sidekiq8)
            .await
            .unwrap();
        assert_eq!(lab.runner.drain_all(&lab.clock).await, 2);
        assert_eq!(*order.lock().unwrap(), [json!("eight"), json!("six")]);
        assert_eq!(lab.backend.stats().await.unwrap(), (2, 0));
        assert!(lab.backend.waiting_jobs().await.unwrap().is_empty());
        let keys = raw.keys().await;
        assert!(
            !keys.iter().any(|k| k.starts_with("inprogress")),
            "nothing held: {keys:?}"
        );
    }

    pub async fn recover_expired_removes_the_dead_process_keys(b: Backends) {
        let (backend, mut raw) = b.fresh_redis().await;
        let ttl = 60_000;
        let info = |identity: &str, beat_ms| ProcessInfo {
            identity: identity.into(),
            hostname: "lab".into(),
            started_at_ms: T0,
            beat_ms,
            concurrency: 1,
            queues: vec!["default".into()],
            busy: 1,
            code_version: "v1".into(),
        };
        let job = Job::new("J", vec![], "default", "c".repeat(24), T0);
        backend.push(job.clone(), T0).await.unwrap();
        backend.heartbeat(info("dead", T0), vec![]).await.unwrap();
        let taken = backend
            .fetch(
                &["default".into()],
                FetchMode::Reliable,
                "dead",
                Duration::ZERO,
            )
            .await
            .unwrap()
            .unwrap();
        backend
            .heartbeat(
                info("dead", T0),
                vec![BusyJob {
                    process: "dead".into(),
                    started_at_ms: T0,
                    job: taken,
                }],
            )
            .await
            .unwrap();
        backend
            .heartbeat(info("alive", T0 + ttl), vec![])
            .await
            .unwrap();
        let mut before = raw.keys().await;
        before.sort();
        assert_eq!(
            before,
            [
                "alive",
                "dead",
                "dead:work",
                "dead:workers",
                "inprogress",
                "inprogress:dead",
                "processes",
                "queues"
            ]
        );
        let now = T0 + ttl + 1;
        let recovered = backend.recover_expired(now, ttl).await.unwrap();
        assert_eq!(recovered.len(), 1);
        assert_eq!(recovered[0].jid, job.jid);
        assert_eq!(
            raw.keys().await,
            ["alive", "processes", "queue:default", "queues"],
            "the dead process, its busy jobs and its in-progress list are gone"
        );
        let members: BTreeSet<String> = raw.conn.smembers(raw.key("processes")).await.unwrap();
        assert_eq!(members, set(&["alive"]));
        let queued: Vec<String> = raw
            .conn
            .lrange(raw.key("queue:default"), 0, -1)
            .await
            .unwrap();
        let queued: Value = serde_json::from_str(&queued[0]).unwrap();
        assert_eq!(queued["jid"], json!(job.jid));
        assert_eq!(queued["enqueued_at"], json!(now as f64 / 1000.0));
    }

    pub async fn a_waiting_fetch_sees_a_push_from_another_client(b: Backends) {
        let (backend, mut raw) = b.fresh_redis().await;
        let waiting = tokio::spawn({
            let backend = backend.clone();
            async move {
                backend
                    .fetch(
                        &["default".into()],
                        FetchMode::Basic,
                        "p",
                        Duration::from_secs(30),
                    )
                    .await
            }
        });
        // Not through the backend: no wake-up, only its polling sees it.
        let job = Job::new("J", vec![], "default", "d".repeat(24), T0);
        let _: () = ::redis::pipe()
            .sadd(raw.key("queues"), "default")
            .lpush(raw.key("queue:default"), job.to_json())
            .query_async(&mut raw.conn)
            .await
            .unwrap();
        let fetched = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("polling finds the job")
            .unwrap()
            .unwrap();
        assert_eq!(fetched, Some(job));
    }

    pub async fn a_waiting_fetch_does_not_stall_other_commands(b: Backends) {
        let (backend, _raw) = b.fresh_redis().await;
        let waiting = tokio::spawn({
            let backend = backend.clone();
            async move {
                backend
                    .fetch(
                        &["default".into()],
                        FetchMode::Reliable,
                        "p",
                        Duration::from_secs(30),
                    )
                    .await
            }
        });
        // Commands on the same backend (one multiplexed connection) are
        // answered while the fetch waits.
        for _ in 0..50 {
            assert_eq!(backend.stats().await.unwrap(), (0, 0));
        }
        assert!(!waiting.is_finished(), "the fetch is still waiting");
        backend
            .push(Job::new("J", vec![], "default", "e".repeat(24), T0), T0)
            .await
            .unwrap();
        let fetched = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(fetched.is_some());
    }

    pub async fn namespaces_keep_labs_apart_and_clear_leaves_nothing(b: Backends) {
        let (one, mut raw_one) = b.fresh_redis().await;
        let (two, mut raw_two) = b.fresh_redis().await;
        let job = |n: u64| Job::new("J", vec![json!(n)], "default", format!("{n:024x}"), T0);
        one.push(job(1), T0).await.unwrap();
        two.push(job(2), T0).await.unwrap();
        one.add_to_set(JobSet::Retry, job(3), T0).await.unwrap();
        one.count(1, 1).await.unwrap();
        one.heartbeat(
            ProcessInfo {
                identity: "p".into(),
                hostname: "lab".into(),
                started_at_ms: T0,
                beat_ms: T0,
                concurrency: 1,
                queues: vec!["default".into()],
                busy: 1,
                code_version: "v1".into(),
            },
            vec![BusyJob {
                process: "p".into(),
                started_at_ms: T0,
                job: job(4),
            }],
        )
        .await
        .unwrap();
        one.fetch(
            &["default".into()],
            FetchMode::Reliable,
            "p",
            Duration::ZERO,
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(two.stats().await.unwrap(), (0, 0));
        assert_eq!(
            jids_of(&two.waiting_jobs().await.unwrap()),
            [format!("{:024x}", 2)]
        );
        assert!(!raw_one.keys().await.is_empty());
        one.clear().await.unwrap();
        assert!(
            raw_one.keys().await.is_empty(),
            "clear leaves no key behind: {:?}",
            raw_one.keys().await
        );
        assert_eq!(raw_two.keys().await, ["queue:default", "queues"]);
    }

    pub async fn a_payload_the_lab_cannot_read_goes_to_the_dead_set(b: Backends) {
        let (backend, mut raw) = b.fresh_redis().await;
        let unreadable = [
            r#"{"class":"X","args":[],"jid":"f00","queue":"default","created_at":1767225600.5,"enqueued_at":1767225601.25,"retry_count":"many"}"#,
            "not json at all",
        ];
        for payload in unreadable {
            let _: () = ::redis::pipe()
                .sadd(raw.key("queues"), "default")
                .lpush(raw.key("queue:default"), payload)
                .query_async(&mut raw.conn)
                .await
                .unwrap();
        }
        for mode in [FetchMode::Reliable, FetchMode::Basic] {
            let err = backend
                .fetch(&["default".into()], mode, "w", Duration::ZERO)
                .await
                .expect_err("not a job");
            let message = err.to_string();
            assert!(
                message.contains("cannot read as a job")
                    && message.contains("moved it to the dead set"),
                "{message}"
            );
        }
        let dead: Vec<(String, f64)> = raw
            .conn
            .zrange_withscores(raw.key("dead"), 0, -1)
            .await
            .unwrap();
        // Scored by the payload's own latest time (fetch is given none).
        assert_eq!(
            dead,
            [
                ("not json at all".to_string(), 0.0),
                (unreadable[0].to_string(), 1_767_225_601.25)
            ]
        );
        assert_eq!(raw.keys().await, ["dead", "queues"], "nothing held");
    }

    fn jids_of(jobs: &[Job]) -> Vec<String> {
        jobs.iter().map(|j| j.jid.clone()).collect()
    }
}

/// No server needed: a Redis that does not answer is an error naming it.
#[tokio::test]
async fn an_unreachable_redis_is_an_error_that_says_so() {
    let err = RedisBackend::connect("redis://127.0.0.1:1")
        .await
        .err()
        .expect("nothing listens on port 1");
    assert!(
        err.to_string()
            .contains("cannot reach Redis at redis://127.0.0.1:1"),
        "{err}"
    );
    let err = RedisBackend::connect("http://:hunter2@example.com")
        .await
        .err()
        .expect("not a Redis URL");
    assert!(err.to_string().contains("invalid Redis URL"), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}
