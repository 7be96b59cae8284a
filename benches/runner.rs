//! Job throughput of the lab's runner against Ruby Sidekiq 6.4 on the same
//! Redis, and whole order pipelines per second.
//!
//! ```text
//! cargo bench --bench runner -- [--jobs 50000] [--orders 2000] [--concurrency 25]
//!     [--placers 8] [--pipeline embedded|shared|both] [--place-first]
//!     [--sidekiq-logs] [--skip-noop] [--skip-sidekiq] [--skip-pipelines]
//! ```
//!
//! Redis: `IDEMLAB_BENCH_REDIS` (default `redis://127.0.0.1:6379/10`); the
//! bench empties that database (`FLUSHDB`) before and after each run.
//! Postgres: `IDEMLAB_BENCH_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), where it creates and drops
//! a scratch database.
//!
//! - **No-op jobs.** `--jobs` `NoopJob` payloads (Sidekiq's JSON, queue
//!   `default`) are pushed in bulk, then one process with 10 workers runs
//!   them: the lab's runner on a tokio runtime of one thread (reliable
//!   fetch, then basic: the worker process on one core, as Sidekiq's is
//!   under Ruby's global lock; `lab worker`'s default), then on
//!   one thread per core (reliable; `lab worker --threads 2`), then
//!   `sidekiq -c 10` (Debian's `ruby-sidekiq`) with
//!   `benches/sidekiq/noop_job.rb`. The target compares the first. Neither
//!   logs a line per job (`--sidekiq-logs` gives Sidekiq its default
//!   logging). Both are timed by the same probe, which polls `LLEN
//!   queue:default` and `stat:processed` every millisecond: from the first
//!   sample that shows a job taken to the end, over the jobs taken in that
//!   time, so boot time is not counted. The lab's end is `stat:processed`
//!   reaching the count; Sidekiq 6.4 adds to `stat:processed` only on its
//!   5 s heartbeat, so its end is the queue running empty (its last ≤10
//!   no-op jobs still running, which favours Sidekiq by microseconds), and
//!   its count is checked on the next heartbeat. Without a `sidekiq` command
//!   the bench says so and goes on.
//! - **Order pipelines.** The safe chained pipeline (default knobs, outbox
//!   enqueue) as `lab serve` runs it — supervised worker process, outbox
//!   relay, reminder scheduler, `--time-scale 0.01` timings — on the memory
//!   queue with a temporary SQLite file and in-process fakes (`embedded`),
//!   then on Redis with a scratch Postgres database and the fakes over HTTP
//!   on a random port (`shared`). `--placers` tasks place `--orders` orders
//!   with `place_order` while one worker process with `--concurrency`
//!   workers runs them (`--place-first`: all orders first, then the workers,
//!   to see the two rates apart). Each order is for its own customer email
//!   and the orders go round the seed products, restocked, as a shop's
//!   customers buy different things. The time is from the first placement
//!   until every order is charged, emailed and fulfilled. The fake services'
//!   ledgers must then hold exactly one charge, email and fulfillment
//!   request per order, and the error catcher nothing, or the bench fails.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fake_services::http::router;
use fake_services::serve::RunningServer;
use fake_services::{Clock, FakeServices, Service, SystemClock};
use idemlab::app::{Lab, LabParts};
use idemlab::clients::ProviderClients;
use idemlab::options::RunnerArgs;
use idemlab::pipeline::{place_order, Knobs};
use idemlab::runner::job::new_jid;
use idemlab::runner::{
    Backend, FetchMode, Job, JobContext, JobError, MemoryBackend, RedisBackend, Registry,
    RunnerBuilder, RunnerConfig, Worker,
};
use idemlab::store::{NewOrder, ScratchDatabase, Store};
use redis::aio::MultiplexedConnection;

const NOOP: &str = "NoopJob";
const QUEUE: &str = "default";
/// Sidekiq's default, and the lab's `--concurrency` for the no-op runs.
const NOOP_CONCURRENCY: usize = 10;
const SIDEKIQ_JOB_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/sidekiq/noop_job.rb");
/// How often the probe samples the queue and the counter.
const SAMPLE: Duration = Duration::from_millis(1);
/// A run that takes longer has hung.
const RUN_LIMIT: Duration = Duration::from_secs(300);

struct Options {
    jobs: u64,
    orders: usize,
    concurrency: u16,
    placers: usize,
    noop: bool,
    sidekiq: bool,
    place_first: bool,
    sidekiq_logs: bool,
    /// Which pipeline runs: `[embedded, shared]`.
    variants: [bool; 2],
    pipelines: bool,
    redis: String,
    postgres: String,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        jobs: 50_000,
        orders: 2_000,
        concurrency: 25,
        placers: 8,
        noop: true,
        sidekiq: true,
        place_first: false,
        sidekiq_logs: false,
        variants: [true, true],
        pipelines: true,
        redis: std::env::var("IDEMLAB_BENCH_REDIS")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379/10".into()),
        postgres: std::env::var("IDEMLAB_BENCH_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--jobs" => options.jobs = number("--jobs", &value("--jobs")?)?,
            "--orders" => options.orders = number("--orders", &value("--orders")?)?,
            "--concurrency" => {
                options.concurrency = number("--concurrency", &value("--concurrency")?)?
            }
            "--placers" => options.placers = number("--placers", &value("--placers")?)?,
            "--skip-noop" => options.noop = false,
            "--place-first" => options.place_first = true,
            "--sidekiq-logs" => options.sidekiq_logs = true,
            "--pipeline" => {
                options.variants = match value("--pipeline")?.as_str() {
                    "embedded" => [true, false],
                    "shared" => [false, true],
                    "both" => [true, true],
                    other => {
                        return Err(format!(
                            "--pipeline: `{other}` is not embedded, shared or both"
                        ))
                    }
                }
            }
            "--skip-sidekiq" => options.sidekiq = false,
            "--skip-pipelines" => options.pipelines = false,
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if options.jobs == 0 || options.orders == 0 || options.concurrency == 0 || options.placers == 0
    {
        return Err("--jobs, --orders, --concurrency and --placers must be at least 1".into());
    }
    Ok(options)
}

fn number<T: std::str::FromStr>(name: &str, text: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e| format!("{name}: {e}"))
}

/// One line of the results table.
struct Row {
    configuration: String,
    count: u64,
    unit: &'static str,
    seconds: f64,
}

impl Row {
    fn per_second(&self) -> f64 {
        self.count as f64 / self.seconds
    }
}

fn main() {
    let options = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "idemlab runner bench: {cores} cores; Redis {} (emptied with FLUSHDB before and after each run)",
        options.redis
    );
    let mut rows = Vec::new();
    // The lab's no-op runs, each on a runtime of its own: with one thread
    // (`lab worker`'s default), the worker process on one core as
    // Sidekiq's under Ruby's global lock, then with one per core
    // (`lab worker --threads 2` on two cores).
    let noop_runs = [
        (FetchMode::Reliable, 1),
        (FetchMode::Basic, 1),
        (FetchMode::Reliable, cores),
    ];
    for (fetch, threads) in noop_runs.into_iter().filter(|_| options.noop) {
        let row = runtime(threads).block_on(async {
            let mut redis = connect_redis(&options).await?;
            lab_noop(&options, &mut redis, fetch, threads).await
        });
        match row {
            Ok(row) => {
                print_row(&row);
                rows.push(row);
            }
            Err(e) => fail(&e),
        }
    }
    match runtime(cores).block_on(run(&options)) {
        Ok(more) => {
            rows.extend(more);
            report(&rows);
        }
        Err(e) => fail(&e),
    }
}

fn fail(error: &str) -> ! {
    eprintln!("error: {error}");
    std::process::exit(1);
}

fn runtime(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn connect_redis(options: &Options) -> Result<MultiplexedConnection, String> {
    redis::Client::open(options.redis.as_str())
        .map_err(|e| format!("Redis URL {}: {e}", options.redis))?
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("cannot reach Redis at {}: {e}", options.redis))
}

/// Sidekiq's no-op run and the order pipelines.
async fn run(options: &Options) -> Result<Vec<Row>, String> {
    let mut redis = connect_redis(options).await?;
    let mut rows = Vec::new();
    if options.sidekiq {
        match sidekiq_noop(options, &mut redis).await? {
            Ok(row) => {
                print_row(&row);
                rows.push(row);
            }
            Err(note) => println!("note: no Sidekiq figure: {note}"),
        }
    }
    if options.pipelines {
        for shared in [false, true]
            .into_iter()
            .filter(|s| options.variants[usize::from(*s)])
        {
            let row = pipeline(options, &mut redis, shared).await?;
            print_row(&row);
            rows.push(row);
        }
    }
    flushdb(&mut redis).await?;
    Ok(rows)
}

/// Does nothing, as fast as the runner lets it.
struct Noop;

#[async_trait]
impl Worker for Noop {
    async fn perform(&self, _ctx: &JobContext<'_>) -> Result<(), JobError> {
        Ok(())
    }
}

async fn lab_noop(
    options: &Options,
    redis: &mut MultiplexedConnection,
    fetch: FetchMode,
    threads: usize,
) -> Result<Row, String> {
    flushdb(redis).await?;
    push_noops(redis, options.jobs).await?;
    let backend = RedisBackend::connect(&options.redis)
        .await
        .map_err(|e| e.to_string())?;
    let mut registry = Registry::new();
    registry.register(NOOP, Noop);
    let runner = RunnerBuilder::new(Arc::new(backend), Arc::new(SystemClock), registry)
        .config(RunnerConfig {
            queues: vec![QUEUE.into()],
            concurrency: NOOP_CONCURRENCY,
            fetch,
            seed: 1,
            ..RunnerConfig::default()
        })
        .build();
    let probe = tokio::spawn(watch(redis.clone(), options.jobs, End::Processed));
    let process = runner.start().await;
    let drained = probe.await.map_err(|e| e.to_string())?;
    process.stop().await;
    let drained = drained?;
    let mode = match fetch {
        FetchMode::Reliable => "reliable",
        FetchMode::Basic => "basic",
    };
    Ok(Row {
        configuration: format!(
            "no-op, lab runner, Redis, {mode} fetch, 1 process × {NOOP_CONCURRENCY}, {threads} thread{}",
            if threads == 1 { "" } else { "s" }
        ),
        count: drained.jobs,
        unit: "jobs",
        seconds: drained.seconds,
    })
}

/// The Sidekiq run: `Ok(Err(note))` when Ruby Sidekiq is not installed.
async fn sidekiq_noop(
    options: &Options,
    redis: &mut MultiplexedConnection,
) -> Result<Result<Row, String>, String> {
    let version = tokio::process::Command::new("sidekiq")
        .arg("-V")
        .output()
        .await;
    let version = match version {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        _ => {
            return Ok(Err(
                "the `sidekiq` command is missing (apt-get install ruby-sidekiq)".into(),
            ))
        }
    };
    flushdb(redis).await?;
    push_noops(redis, options.jobs).await?;
    let log_path = std::env::temp_dir().join("idemlab-bench-sidekiq.log");
    let log = std::fs::File::create(&log_path).map_err(|e| format!("{log_path:?}: {e}"))?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;
    let probe = tokio::spawn(watch(redis.clone(), options.jobs, End::QueueEmpty));
    let mut child = tokio::process::Command::new("sidekiq")
        .args(["-c", &NOOP_CONCURRENCY.to_string(), "-q", QUEUE, "-r"])
        .arg(SIDEKIQ_JOB_FILE)
        .env("REDIS_URL", &options.redis)
        .env(
            "IDEMLAB_BENCH_SIDEKIQ_LOGS",
            if options.sidekiq_logs { "1" } else { "" },
        )
        .stdout(log)
        .stderr(log_err)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start sidekiq: {e}"))?;
    let drained = tokio::select! {
        drained = probe => drained.map_err(|e| e.to_string())?,
        status = child.wait() => Err(format!(
            "sidekiq exited ({}) before the queue was empty; see {}",
            status.map_or_else(|e| e.to_string(), |s| s.to_string()),
            log_path.display()
        )),
    };
    let drained = match drained {
        Ok(d) => d,
        Err(e) => {
            let _ = child.kill().await;
            return Err(e);
        }
    };
    // The count arrives with Sidekiq's next heartbeat (every 5 s).
    let counted = wait_processed(redis, options.jobs, Duration::from_secs(15)).await;
    stop(&mut child).await;
    counted.map_err(|e| format!("{e}; see {}", log_path.display()))?;
    Ok(Ok(Row {
        configuration: format!(
            "no-op, {version} (Ruby){}, Redis, 1 process × {NOOP_CONCURRENCY}",
            if options.sidekiq_logs {
                ", a log line per job"
            } else {
                ""
            }
        ),
        count: drained.jobs,
        unit: "jobs",
        seconds: drained.seconds,
    }))
}

/// SIGTERM (Sidekiq's graceful stop), then SIGKILL if it lingers.
async fn stop(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(15), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.kill().await;
}

async fn flushdb(redis: &mut MultiplexedConnection) -> Result<(), String> {
    redis::cmd("FLUSHDB")
        .query_async::<()>(redis)
        .await
        .map_err(|e| format!("FLUSHDB: {e}"))
}

/// Pushes `n` no-op jobs as Sidekiq's `push_bulk` does: one `LPUSH` of many
/// payloads per round trip.
async fn push_noops(redis: &mut MultiplexedConnection, n: u64) -> Result<(), String> {
    let mut rng = rand::rng();
    let now_ms = SystemClock.now_ms();
    let mut left = n;
    while left > 0 {
        let batch = left.min(1_000);
        let payloads: Vec<String> = (0..batch)
            .map(|_| {
                let mut job = Job::new(NOOP, vec![], QUEUE, new_jid(&mut rng), now_ms);
                job.enqueued_at = Some(job.created_at);
                job.to_json()
            })
            .collect();
        redis::pipe()
            .atomic()
            .sadd("queues", QUEUE)
            .ignore()
            .lpush(format!("queue:{QUEUE}"), payloads)
            .ignore()
            .query_async::<()>(redis)
            .await
            .map_err(|e| format!("pushing jobs: {e}"))?;
        left -= batch;
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum End {
    /// `stat:processed` has reached the count.
    Processed,
    /// The queue is empty.
    QueueEmpty,
}

struct Drained {
    /// Jobs taken after the first sample that showed one taken.
    jobs: u64,
    seconds: f64,
}

/// Samples the queue length and the counter until `end`; the time runs from
/// the first sample with a job gone from the queue.
async fn watch(mut redis: MultiplexedConnection, n: u64, end: End) -> Result<Drained, String> {
    let limit = Instant::now() + RUN_LIMIT;
    let mut first: Option<(Instant, u64)> = None;
    loop {
        let (waiting, processed): (u64, Option<u64>) = redis::pipe()
            .llen(format!("queue:{QUEUE}"))
            .get("stat:processed")
            .query_async(&mut redis)
            .await
            .map_err(|e| format!("sampling the queue: {e}"))?;
        let now = Instant::now();
        if first.is_none() && waiting < n {
            first = Some((now, waiting));
        }
        let done = match end {
            End::Processed => processed.unwrap_or(0) >= n,
            End::QueueEmpty => waiting == 0,
        };
        if done {
            let (started, left) = first.expect("a finished run took a job");
            return Ok(Drained {
                jobs: left,
                seconds: now.duration_since(started).as_secs_f64(),
            });
        }
        if now > limit {
            return Err(format!(
                "no end after {RUN_LIMIT:?}: {waiting} jobs waiting, {} processed",
                processed.unwrap_or(0)
            ));
        }
        tokio::time::sleep(SAMPLE).await;
    }
}

async fn wait_processed(
    redis: &mut MultiplexedConnection,
    n: u64,
    limit: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        let processed: Option<u64> = redis::cmd("GET")
            .arg("stat:processed")
            .query_async(redis)
            .await
            .map_err(|e| format!("reading stat:processed: {e}"))?;
        let processed = processed.unwrap_or(0);
        if processed >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "stat:processed is {processed} after {limit:?}, expected {n}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What a pipeline run needs torn down afterwards.
struct Teardown {
    server: Option<RunningServer>,
    scratch: Option<ScratchDatabase>,
}

/// The safe chained pipeline, embedded (`shared = false`: memory queue,
/// SQLite file, fakes in process) or on shared services (Redis, Postgres,
/// fakes over HTTP).
async fn pipeline(
    options: &Options,
    redis: &mut MultiplexedConnection,
    shared: bool,
) -> Result<Row, String> {
    let fakes = FakeServices::new();
    let timeout = Duration::from_secs(5);
    let (store, clients, backend, fakes_url, teardown): (
        Store,
        ProviderClients,
        Arc<dyn Backend>,
        String,
        Teardown,
    ) = if shared {
        flushdb(redis).await?;
        let server = RunningServer::start(
            "127.0.0.1:0".parse().expect("address"),
            router(fakes.clone(), Default::default()),
        )
        .await
        .map_err(|e| format!("cannot serve the fake services: {e}"))?;
        let url = server.url();
        let clients = ProviderClients::http(&url, timeout).map_err(|e| e.to_string())?;
        let (store, scratch) = ScratchDatabase::create(&options.postgres, "bench")
            .await
            .map_err(|e| format!("Postgres at IDEMLAB_BENCH_POSTGRES: {e}"))?;
        let backend = RedisBackend::connect(&options.redis)
            .await
            .map_err(|e| e.to_string())?;
        (
            store,
            clients,
            Arc::new(backend),
            url,
            Teardown {
                server: Some(server),
                scratch: Some(scratch),
            },
        )
    } else {
        let store = Store::temporary().await.map_err(|e| e.to_string())?;
        let clients = ProviderClients::in_process(fakes.clone(), timeout);
        (
            store,
            clients,
            Arc::new(MemoryBackend::new()),
            "in process".into(),
            Teardown {
                server: None,
                scratch: None,
            },
        )
    };
    let configuration = if shared {
        format!(
            "orders, Redis + Postgres + fakes over HTTP, 1 process × {}",
            options.concurrency
        )
    } else {
        format!(
            "orders, memory queue + SQLite file + fakes in process, 1 process × {}",
            options.concurrency
        )
    };
    let n = options.orders;
    // Orders go round the seed products, as a shop's customers buy
    // different things: on one product every placement would queue for its
    // stock row. Each is stocked for every order.
    let products: Vec<i64> = store
        .products()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|p| p.id)
        .collect();
    if products.is_empty() {
        return Err("the store has no products".into());
    }
    for &id in &products {
        store
            .restock(id, n as i64)
            .await
            .map_err(|e| e.to_string())?;
    }
    let products = Arc::new(products);
    // `lab serve`'s runner settings: --time-scale 0.01, 25 retries.
    let runner = RunnerArgs {
        time_scale: 0.01,
        concurrency: options.concurrency,
        max_retries: 25,
        seed: Some(1),
        code_version: RunnerConfig::default().code_version,
    }
    .config();
    let lab = Lab::new(LabParts {
        store: store.clone(),
        clients,
        backend: backend.clone(),
        clock: Arc::new(SystemClock),
        knobs: Knobs::default(),
        runner,
        fakes_url,
    });
    let mut running = (!options.place_first).then(|| lab.start());

    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let placers: Vec<_> = (0..options.placers)
        .map(|_| {
            let (lab, next, products) = (lab.clone(), next.clone(), products.clone());
            tokio::spawn(async move {
                let mut ids = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return Ok::<_, String>(ids);
                    }
                    let new = NewOrder {
                        product_id: products[i % products.len()],
                        quantity: 1,
                        email: format!("customer-{i}@example.com"),
                        address: "123 Main St".into(),
                        amount_cents: None,
                    };
                    let placed = place_order(&lab.shop, &lab.runner, &new)
                        .await
                        .map_err(|e| format!("placing order {i}: {e}"))?;
                    ids.push(placed.order.id);
                }
            })
        })
        .collect();
    let mut ids = Vec::with_capacity(n);
    for placer in placers {
        ids.extend(placer.await.map_err(|e| e.to_string())??);
    }
    let placed_in = started.elapsed();
    let running = match running.take() {
        Some(running) => running,
        None => lab.start(),
    };
    let finished = wait_complete(&lab, n).await;
    running.stop().await;
    // Checked before the teardown, which runs whatever the outcome.
    let outcome = match finished {
        Ok(at) => match backend.stats().await {
            Ok(stats) => verify(&fakes, &ids).map(|()| (at, stats)),
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e),
    };
    store.close().await;
    if let Some(scratch) = teardown.scratch {
        scratch.drop_now().await;
    }
    if let Some(server) = teardown.server {
        let _ = server.shutdown().await;
        flushdb(redis).await?;
    }
    let (finished, (processed, failed)) = outcome?;
    println!(
        "  {n} orders placed in {:.2} s by {} placers{}; {processed} jobs run ({failed} failed and retried); \
         each order charged, emailed and fulfilled exactly once",
        placed_in.as_secs_f64(),
        options.placers,
        if options.place_first {
            format!(
                ", then run in {:.2} s",
                (finished.duration_since(started) - placed_in).as_secs_f64()
            )
        } else {
            String::new()
        }
    );
    Ok(Row {
        configuration,
        count: n as u64,
        unit: "orders",
        seconds: finished.duration_since(started).as_secs_f64(),
    })
}

/// Waits until every order is complete; returns when that was seen. The
/// job counter (three jobs per order) says when to start reading the orders.
async fn wait_complete(lab: &Lab, n: usize) -> Result<Instant, String> {
    let limit = Instant::now() + RUN_LIMIT;
    let backend = lab.runner.backend();
    loop {
        let (processed, _) = backend.stats().await.map_err(|e| e.to_string())?;
        if processed >= 3 * n as u64 {
            let orders = lab.shop.store.orders().await.map_err(|e| e.to_string())?;
            if orders.len() >= n && orders.iter().all(|o| o.is_complete()) {
                return Ok(Instant::now());
            }
        }
        if Instant::now() > limit {
            return Err(format!(
                "the orders were not all complete after {RUN_LIMIT:?} ({processed} jobs run)"
            ));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Exactly one charge, email and fulfillment request per order in the
/// services' own ledgers, none for anything else, and no error notified.
fn verify(fakes: &FakeServices, ids: &[i64]) -> Result<(), String> {
    for service in [Service::Payments, Service::Email, Service::Fulfillment] {
        let mut per_order: HashMap<String, usize> = HashMap::new();
        for record in fakes.ledger(service).iter().filter(|r| r.is_success()) {
            *per_order
                .entry(record.order_id().unwrap_or_default())
                .or_default() += 1;
        }
        let mut wrong: Vec<String> = ids
            .iter()
            .filter_map(|id| match per_order.remove(&id.to_string()) {
                Some(1) => None,
                found => Some(format!("order {id}: {}", found.unwrap_or(0))),
            })
            .collect();
        wrong.extend(
            per_order
                .iter()
                .map(|(id, c)| format!("unknown order {id:?}: {c}")),
        );
        if !wrong.is_empty() {
            return Err(format!(
                "{service:?}: effects per order are not exactly one: {}{}",
                wrong[..wrong.len().min(10)].join(", "),
                if wrong.len() > 10 { ", …" } else { "" }
            ));
        }
    }
    let notified = fakes.ledger(Service::ErrorCatcher);
    if !notified.is_empty() {
        return Err(format!(
            "the error catcher was told of {} errors, first: {}",
            notified.len(),
            notified[0].request
        ));
    }
    Ok(())
}

fn print_row(row: &Row) {
    println!(
        "  {}: {} {} in {:.2} s = {}/s",
        row.configuration,
        thousands(row.count as f64),
        row.unit,
        row.seconds,
        thousands(row.per_second())
    );
}

fn report(rows: &[Row]) {
    let sidekiq = rows
        .iter()
        .find(|r| r.configuration.contains("Ruby"))
        .map(Row::per_second);
    let width = rows
        .iter()
        .map(|r| r.configuration.len())
        .max()
        .unwrap_or(0);
    println!();
    println!(
        "{:width$}  {:>14}  {:>8}  {:>11}  {:>10}",
        "configuration", "count", "seconds", "per second", "vs Sidekiq"
    );
    for row in rows {
        let ratio = match (row.unit, sidekiq) {
            ("jobs", Some(s)) => format!("{:.1}×", row.per_second() / s),
            _ => "—".to_string(),
        };
        println!(
            "{:width$}  {:>14}  {:>8.2}  {:>11}  {:>10}",
            row.configuration,
            format!("{} {}", thousands(row.count as f64), row.unit),
            row.seconds,
            thousands(row.per_second()),
            ratio
        );
    }
    println!();
    // The first reliable-fetch row: the lab's worker process on one thread.
    let lab_reliable = rows
        .iter()
        .find(|r| r.configuration.contains("reliable"))
        .map(Row::per_second);
    match (lab_reliable, sidekiq) {
        (Some(lab), Some(s)) => println!(
            "target ≥ 5× Sidekiq (reliable fetch): {} ({:.1}×)",
            if lab >= 5.0 * s { "met" } else { "MISSED" },
            lab / s
        ),
        _ => println!("target ≥ 5× Sidekiq: not measured (no Sidekiq figure)"),
    }
    for row in rows.iter().filter(|r| r.unit == "orders") {
        println!(
            "target ≥ 1,000 orders/s, {}: {} ({}/s)",
            row.configuration,
            if row.per_second() >= 1_000.0 {
                "met"
            } else {
                "MISSED"
            },
            thousands(row.per_second())
        );
    }
}

/// `12345.6` as `12,346`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
