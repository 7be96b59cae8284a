//! Faults of the engines themselves, on real ones: a worker process killed
//! with SIGKILL in the middle of a job, Redis restarted while orders come in,
//! Postgres restarted while jobs run. Each test runs its own `redis-server`
//! (and Postgres cluster) on free ports, so killing them disturbs nobody.
//!
//! Needs `redis-server` and PostgreSQL's server programs; without them a test
//! says so and passes, and with `CI` set it fails.

use idemlab_test_support as common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::servers::{PrivatePostgres, PrivateRedis};
use common::{wait_until_within, wait_until_within_or_tell};
use fake_services::http::router;
use fake_services::serve::RunningServer;
use fake_services::{BehaviorSpec, FakeServices, Service, SharedClock, SystemClock};
use idemlab::app::{Lab, LabParts};
use idemlab::checker::{self, Expect, Invariant, Snapshot, Violation};
use idemlab::clients::ProviderClients;
use idemlab::pipeline::{place_order, Enqueue, Knobs, PlaceError};
use idemlab::runner::{
    AttemptOutcome, Backend, FetchMode, JobSet, RedisBackend, RetryPolicy, Runner, RunnerConfig,
};
use idemlab::store::{NewOrder, Store};

/// What a safe pipeline must end with: each order charged, emailed and
/// fulfilled once, nothing dead, nothing lost (notifications are not held
/// to a count here).
fn exactly_once() -> Expect {
    Expect {
        notified: None,
        ..Expect::exactly_once()
    }
}

fn order_form() -> NewOrder {
    NewOrder {
        product_id: 1,
        quantity: 1,
        email: "pat@example.com".into(),
        address: "123 Main St".into(),
        amount_cents: None,
    }
}

/// Runner settings of `lab serve --time-scale 0.01`: retries in tenths of a
/// second, a dead process noticed after 0.6 s.
fn fast_runner(fetch: FetchMode) -> RunnerConfig {
    RunnerConfig {
        fetch,
        concurrency: 5,
        retry: RetryPolicy {
            max_retries: 25,
            time_scale: 0.01,
        },
        heartbeat_ms: 50,
        process_ttl_ms: 600,
        poll_ms: 10,
        ..RunnerConfig::default()
    }
}

async fn all_complete(store: &Store, count: usize) -> bool {
    let orders = store.orders().await.unwrap_or_default();
    orders.len() == count && orders.iter().all(|o| o.is_complete())
}

/// What the checker finds, held to [`exactly_once`], in a lab whose history
/// is in process.
async fn violations(lab: &Lab, store: &Store, fakes: &FakeServices) -> Vec<Violation> {
    let snapshot = Snapshot::capture(
        store,
        fakes,
        lab.runner.backend().as_ref(),
        lab.runner.history().attempts(),
    )
    .await;
    checker::check(&exactly_once(), &snapshot)
}

fn describe(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.invariant, v.message))
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------
// kill -9 a worker mid-job
// ---------------------------------------------------------------------------

/// A `lab worker` child process, killed when the test ends.
struct Worker(Child);

impl Worker {
    fn spawn(fakes_url: &str, redis: &str, database: &str, fetch: &str, label: &str) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_lab"))
            .args(["worker", "--fakes-url", fakes_url, "--redis", redis])
            .args(["--database", database, "--fetch", fetch])
            .args(["--time-scale", "0.01", "--concurrency", "2"])
            .args(["--code-version", label])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("lab worker starts");
        Self(child)
    }

    /// SIGKILL: no graceful stop, no requeue, no goodbye to the process set.
    fn kill_9(&mut self) {
        self.0.kill().expect("SIGKILL");
        self.0.wait().expect("reaped");
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The world of one kill test: a private Redis, a SQLite file both the test
/// and the workers open, and fake services over HTTP on real time.
struct KillLab {
    _redis: PrivateRedis,
    redis_url: String,
    _dir: tempfile::TempDir,
    database: String,
    fakes: FakeServices,
    server: RunningServer,
    store: Store,
    backend: Arc<RedisBackend>,
    runner: Runner,
    shop: Arc<idemlab::pipeline::Shop>,
}

async fn kill_lab() -> Option<KillLab> {
    let redis = PrivateRedis::start(false)?;
    let redis_url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}?mode=rwc", dir.path().join("lab.db").display());
    let clock: SharedClock = Arc::new(SystemClock);
    let fakes = FakeServices::with_clock(clock.clone(), 5);
    let server = RunningServer::start(
        "127.0.0.1:0".parse().unwrap(),
        router(fakes.clone(), Default::default()),
    )
    .await
    .unwrap();
    let store = Store::connect(&database).await.unwrap();
    let backend = Arc::new(RedisBackend::connect(&redis_url).await.unwrap());
    // The test's own lab only places orders (its runner is never started):
    // the web process of the story.
    let lab = Lab::new(LabParts {
        store: store.clone(),
        clients: ProviderClients::http(&server.url(), Duration::from_secs(5)).unwrap(),
        backend: backend.clone(),
        clock,
        knobs: Knobs::default(),
        runner: fast_runner(FetchMode::Reliable),
        fakes_url: server.url(),
    });
    Some(KillLab {
        _redis: redis,
        redis_url,
        _dir: dir,
        database,
        fakes,
        server,
        store,
        backend,
        runner: lab.runner.clone(),
        shop: lab.shop.clone(),
    })
}

impl KillLab {
    fn worker(&self, fetch: &str, label: &str) -> Worker {
        Worker::spawn(
            &self.server.url(),
            &self.redis_url,
            &self.database,
            fetch,
            label,
        )
    }

    /// Places an order whose charge hangs for 2 s in the provider, starts
    /// worker "A", waits until A is in the middle of that order's first job,
    /// and kills it. Returns the order id and A's identity.
    async fn kill_a_worker_mid_job(&self, fetch: &str) -> (i64, String) {
        let spec: BehaviorSpec = serde_json::from_value(serde_json::json!({
            "faults": [{"mode": "slow", "sleep_ms": 2000, "calls": 1}]
        }))
        .unwrap();
        self.fakes.set_behavior(Service::Payments, spec).unwrap();
        let order = place_order(&self.shop, &self.runner, &order_form())
            .await
            .expect("the order is placed")
            .order;
        let mut a = self.worker(fetch, "A");
        let backend = self.backend.clone();
        wait_until_within(
            "worker A is running the order's job",
            Duration::from_secs(30),
            || async {
                backend.busy().await.is_ok_and(|busy| {
                    busy.iter()
                        .any(|b| b.job.args.first() == Some(&order.id.into()))
                })
            },
        )
        .await;
        // The only process there is: A.
        let identity = self.backend.busy().await.unwrap()[0].process.clone();
        a.kill_9();
        // The retried charge need not wait.
        self.fakes
            .set_behavior(Service::Payments, BehaviorSpec::default())
            .unwrap();
        (order.id, identity)
    }

    async fn snapshot(&self) -> Snapshot {
        Snapshot::capture(&self.store, &self.fakes, self.backend.as_ref(), Vec::new()).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_job_with_reliable_fetch_loses_nothing() {
    let Some(lab) = kill_lab().await else { return };
    let (order_id, dead) = lab.kill_a_worker_mid_job("reliable").await;

    // The job sits in the dead process's in-progress list until worker B's
    // reaper sees the heartbeat expire and puts it back.
    let held = lab.backend.waiting_jobs().await.unwrap();
    assert!(
        held.iter()
            .any(|j| j.args.first() == Some(&order_id.into())),
        "the killed worker's job is not held anywhere: {held:?}"
    );
    let _b = lab.worker("reliable", "B");
    let store = lab.store.clone();
    wait_until_within(
        "worker B has recovered and finished the order",
        Duration::from_secs(60),
        || all_complete(&store, 1),
    )
    .await;
    let processes = lab.backend.processes().await.unwrap();
    assert!(
        processes.iter().all(|p| p.identity != dead),
        "the killed process is still listed: {processes:?}"
    );
    let violations = checker::check(&exactly_once(), &lab.snapshot().await);
    assert!(violations.is_empty(), "{}", describe(&violations));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_job_with_basic_fetch_loses_the_job_and_the_checker_reports_it() {
    let Some(lab) = kill_lab().await else { return };
    let (order_id, dead) = lab.kill_a_worker_mid_job("basic").await;

    let _b = lab.worker("basic", "B");
    // Once B's reaper has removed the dead process, anything it could have
    // brought back would be queued again; with basic fetch nothing is.
    let backend = lab.backend.clone();
    wait_until_within(
        "worker B has reaped the killed process",
        Duration::from_secs(30),
        || async {
            backend
                .processes()
                .await
                .is_ok_and(|ps| ps.iter().all(|p| p.identity != dead) && !ps.is_empty())
        },
    )
    .await;
    // (Reminder sweeps come and go; the order's job is what matters.)
    let waiting = lab.backend.waiting_jobs().await.unwrap();
    assert!(
        waiting
            .iter()
            .all(|j| j.args.first() != Some(&order_id.into())),
        "{waiting:?}"
    );
    let order = lab
        .store
        .order(order_id)
        .await
        .unwrap()
        .expect("the order exists");
    assert!(!order.is_complete(), "{order:?}");

    let violations = checker::check(&exactly_once(), &lab.snapshot().await);
    let lost: Vec<&Violation> = violations
        .iter()
        .filter(|v| v.invariant == Invariant::LostJobs)
        .collect();
    assert_eq!(lost.len(), 1, "{}", describe(&violations));
    assert!(
        lost[0].message.contains(&order_id.to_string()),
        "{}",
        lost[0].message
    );
}

// ---------------------------------------------------------------------------
// Redis restarted during a run
// ---------------------------------------------------------------------------

/// Places `before` orders, restarts Redis with `during` more placed while it
/// is down, then `after` more; returns the lab (still running) and how many
/// placements failed.
async fn orders_across_a_redis_restart(
    enqueue: Enqueue,
    redis: &mut PrivateRedis,
    store: Store,
) -> (Lab, idemlab::app::Running, FakeServices, usize) {
    let clock: SharedClock = Arc::new(SystemClock);
    let fakes = FakeServices::with_clock(clock.clone(), 6);
    let backend = Arc::new(RedisBackend::connect(&redis.url()).await.unwrap());
    let lab = Lab::new(LabParts {
        store,
        clients: ProviderClients::in_process(fakes.clone(), Duration::from_secs(5)),
        backend,
        clock,
        knobs: Knobs {
            enqueue,
            ..Knobs::default()
        },
        runner: fast_runner(FetchMode::Reliable),
        fakes_url: String::new(),
    });
    let running = lab.start();
    let mut failed = 0;
    let place = || {
        let lab = lab.clone();
        async move { place_order(&lab.shop, &lab.runner, &order_form()).await }
    };
    for _ in 0..10 {
        place().await.expect("Redis is up");
    }
    redis.stop();
    for _ in 0..10 {
        match place().await {
            Ok(_) => {}
            Err(PlaceError::Enqueue { .. }) => failed += 1,
            Err(other) => panic!("unexpected failure placing an order: {other}"),
        }
    }
    redis.restart();
    for _ in 0..10 {
        place().await.expect("Redis is back");
    }
    (lab, running, fakes, failed)
}

/// What a stalled wait saw: the orders not complete and their state, the
/// outbox rows not relayed, and where the jobs are in Redis (queues, sets,
/// in-progress lists), the processes and what they run. Each read is given
/// 5 s, so a backend that hangs is told too.
async fn what_is_left(lab: &Lab, store: &Store) -> String {
    async fn read<T: std::fmt::Debug>(read: impl std::future::Future<Output = T>) -> String {
        match tokio::time::timeout(Duration::from_secs(5), read).await {
            Ok(value) => format!("{value:?}"),
            Err(_) => "no answer within 5 s".into(),
        }
    }
    let orders = store.orders().await.unwrap_or_default();
    let incomplete: Vec<String> = orders
        .iter()
        .filter(|o| !o.is_complete())
        .map(|o| format!("{} {:?}", o.id, o.state()))
        .collect();
    let outbox = store.outbox().await.unwrap_or_default();
    let pending: Vec<i64> = outbox
        .iter()
        .filter(|e| e.relayed_at_ms.is_none())
        .map(|e| e.order_id)
        .collect();
    let b = lab.runner.backend();
    let jobs = |jobs: Vec<idemlab::runner::Job>| -> Vec<String> {
        jobs.iter()
            .map(|j| format!("{}{}", j.class, serde_json::Value::from(j.args.clone())))
            .collect()
    };
    let mut sets = String::new();
    for set in [JobSet::Retry, JobSet::Schedule, JobSet::Dead] {
        let entries = read(async {
            b.set_entries(set)
                .await
                .map(|v| jobs(v.into_iter().map(|e| e.job).collect()))
        });
        sets += &format!("{} set: {}\n", set.key(), entries.await);
    }
    format!(
        "{} orders, not complete: {incomplete:?}\n\
         outbox rows not relayed (order ids): {pending:?}\n\
         queue sizes: {}\n\
         queued or held in progress: {}\n\
         {sets}\
         processes: {}\n\
         busy: {}\n\
         attempts recorded: {}",
        orders.len(),
        read(b.queue_sizes()).await,
        read(async { b.waiting_jobs().await.map(jobs) }).await,
        read(async {
            b.processes().await.map(|ps| {
                ps.iter()
                    .map(|p| format!("{} beat {} busy {}", p.identity, p.beat_ms, p.busy))
                    .collect::<Vec<_>>()
            })
        })
        .await,
        read(async {
            b.busy()
                .await
                .map(|busy| jobs(busy.into_iter().map(|j| j.job).collect()))
        })
        .await,
        lab.runner.history().attempts().len(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_during_a_run_loses_no_order_with_the_outbox() {
    let Some(mut redis) = PrivateRedis::start(true) else {
        return;
    };
    let store = Store::temporary().await.unwrap();
    let (lab, running, fakes, failed) =
        orders_across_a_redis_restart(Enqueue::Outbox, &mut redis, store.clone()).await;
    assert_eq!(failed, 0, "the outbox takes orders while Redis is down");
    wait_until_within_or_tell(
        "all 30 orders are complete",
        Duration::from_secs(90),
        || all_complete(&store, 30),
        || what_is_left(&lab, &store),
    )
    .await;
    running.stop().await;
    let violations = violations(&lab, &store, &fakes).await;
    assert!(violations.is_empty(), "{}", describe(&violations));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_during_a_run_loses_orders_enqueued_after_commit() {
    let Some(mut redis) = PrivateRedis::start(true) else {
        return;
    };
    let store = Store::temporary().await.unwrap();
    let (lab, running, fakes, failed) =
        orders_across_a_redis_restart(Enqueue::AfterCommit, &mut redis, store.clone()).await;
    assert_eq!(failed, 10, "each order placed while Redis was down");
    // The 20 others complete; the 10 saved while Redis was down never will.
    wait_until_within_or_tell(
        "the 20 orders with a job are complete",
        Duration::from_secs(90),
        || async {
            let orders = store.orders().await.unwrap_or_default();
            orders.iter().filter(|o| o.is_complete()).count() == 20
        },
        || what_is_left(&lab, &store),
    )
    .await;
    running.stop().await;
    let violations = violations(&lab, &store, &fakes).await;
    let lost: Vec<&Violation> = violations
        .iter()
        .filter(|v| v.invariant == Invariant::LostJobs)
        .collect();
    assert_eq!(lost.len(), 1, "{}", describe(&violations));
    assert_eq!(lost[0].found, "10 lost orders", "{}", lost[0].message);
}

// ---------------------------------------------------------------------------
// Postgres restarted during a run
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_during_a_run_jobs_retry_and_complete() {
    let Some(redis) = PrivateRedis::start(false) else {
        return;
    };
    let Some(postgres) = PrivatePostgres::start() else {
        return;
    };
    let store = Store::connect(&postgres.url()).await.unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    let fakes = FakeServices::with_clock(clock.clone(), 7);
    // Each charge takes 0.3 s, so jobs are in flight when Postgres goes.
    let spec: BehaviorSpec = serde_json::from_value(serde_json::json!({
        "faults": [{"mode": "slow", "sleep_ms": 300, "operations": ["charge"]}]
    }))
    .unwrap();
    fakes.set_behavior(Service::Payments, spec).unwrap();
    let lab = Lab::new(LabParts {
        store: store.clone(),
        clients: ProviderClients::in_process(fakes.clone(), Duration::from_secs(5)),
        backend: Arc::new(RedisBackend::connect(&redis.url()).await.unwrap()),
        clock,
        knobs: Knobs::default(),
        runner: fast_runner(FetchMode::Reliable),
        fakes_url: String::new(),
    });
    for _ in 0..20 {
        place_order(&lab.shop, &lab.runner, &order_form())
            .await
            .expect("Postgres is up");
    }
    let running = lab.start();
    let charged = || {
        fakes
            .ledger(Service::Payments)
            .iter()
            .filter(|r| r.is_success())
            .count()
    };
    wait_until_within("a first charge", Duration::from_secs(30), || async {
        charged() > 0
    })
    .await;
    postgres.stop();
    let history = lab.runner.history().clone();
    wait_until_within(
        "a job has failed on the missing database",
        Duration::from_secs(30),
        || async {
            history
                .attempts()
                .iter()
                .any(|a| matches!(a.outcome, AttemptOutcome::Failed { .. }))
        },
    )
    .await;
    postgres.start_again();
    wait_until_within(
        "all 20 orders are complete",
        Duration::from_secs(120),
        || all_complete(&store, 20),
    )
    .await;
    running.stop().await;
    let attempts = lab.runner.history().attempts();
    let retried = attempts.iter().filter(|a| a.attempt > 1).count();
    assert!(retried > 0, "no job was retried: {attempts:?}");
    let violations = violations(&lab, &store, &fakes).await;
    assert!(violations.is_empty(), "{}", describe(&violations));
}
