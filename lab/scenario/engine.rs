//! Runs a scenario: a fresh lab (in-memory SQLite store, memory queue,
//! in-process fake services, one virtual clock), the orders placed, the jobs
//! run until nothing is left to do, then the checker reads what happened.
//!
//! Jobs run in lockstep batches of up to `concurrency` jobs. Between batches
//! virtual time jumps to the next due retry (or past a dead process's
//! heartbeat timeout). Within a batch the clock is also the scheduler
//! ([`Turns`]): one task runs at a time and the seed picks who goes next at
//! each call to a service, so a run is a function of its seed. A full retry
//! schedule of weeks takes milliseconds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fake_services::{BehaviorSpec, Clock, FakeServices, Service, SharedClock};
use serde::Serialize;

use super::format::{Fault, Scenario};
use super::turns::Turns;
use crate::checker::{self, Snapshot, Verdict};
use crate::clients::Clients;
use crate::pipeline::{self, place_order, relay_outbox, reminders, Shop, Step, WorkerDeaths};
use crate::runner::backend::{BusyJob, ProcessInfo, SetEntry};
use crate::runner::{
    Backend, BackendError, Fetch, FetchMode, History, Job, JobOutcome, JobSet, MemoryBackend,
    RedisBackend, RetryPolicy, Runner, RunnerConfig,
};
use crate::store::{NewOrder, ScratchDatabase, Store};
use fake_services::serve::RunningServer;

/// When every run starts, 2026-01-01T00:00:00Z: a fixed, readable start
/// for reproducible ledgers.
const START_MS: u64 = 1_767_225_600_000;

/// How scenarios run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Seeds the fake services and the runner: the same seed, the same run.
    pub seed: u64,
    /// Virtual time after which a run that has not settled is a failure.
    pub deadline_ms: u64,
    /// The jobs' provider clients give up after this long (virtual).
    pub client_timeout_ms: u64,
    /// Run the queues on this Redis (each run in a namespace of its own,
    /// removed afterwards) instead of in memory.
    pub redis: Option<String>,
    /// Run the store on a fresh database of this Postgres server (dropped
    /// afterwards) instead of an in-memory SQLite database.
    pub database: Option<String>,
    /// Call the fake services over HTTP (a server on a free 127.0.0.1 port,
    /// on the run's virtual time) instead of in process: the web lab's way,
    /// to check that both give the same outcome.
    pub over_http: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            seed: 1,
            // Sidekiq's 25 retries take about three weeks.
            deadline_ms: 60 * 24 * 3600 * 1000,
            client_timeout_ms: 5_000,
            redis: None,
            database: None,
            over_http: false,
        }
    }
}

/// One run of a scenario (a scenario with `step = "every"` has one per step).
#[derive(Debug, Serialize)]
pub struct Run {
    /// The step the worker died after, for `step = "every"` runs.
    pub step: Option<Step>,
    pub verdict: Verdict,
    /// Set when the run hit the deadline: what was still pending.
    pub unfinished: Option<String>,
    /// Virtual time the run took.
    pub virtual_ms: u64,
    pub snapshot: Snapshot,
}

impl Run {
    pub fn passed(&self) -> bool {
        self.unfinished.is_none() && self.verdict.passed
    }
}

/// A scenario's result.
#[derive(Debug, Serialize)]
pub struct ScenarioResult {
    pub name: String,
    pub path: Option<String>,
    pub runs: Vec<Run>,
    /// Real time, all runs.
    pub elapsed_ms: u64,
}

impl ScenarioResult {
    /// Every run ended as the scenario expected.
    pub fn passed(&self) -> bool {
        self.runs.iter().all(Run::passed)
    }
}

/// Runs `scenario` (once, or once per step for `step = "every"`).
pub async fn run(scenario: &Scenario, options: &RunOptions) -> ScenarioResult {
    let started = Instant::now();
    let every = scenario
        .faults
        .iter()
        .any(|f| matches!(f, Fault::WorkerDies { step: None }));
    let steps: Vec<Option<Step>> = if every {
        Step::ALL.iter().copied().map(Some).collect()
    } else {
        vec![None]
    };
    let mut runs = Vec::new();
    for step in steps {
        runs.push(run_once(scenario, options, step).await);
    }
    ScenarioResult {
        name: scenario.name.clone(),
        path: scenario.path.as_ref().map(|p| p.display().to_string()),
        runs,
        elapsed_ms: started.elapsed().as_millis() as u64,
    }
}

/// The scenario's knobs and faults set up on a fresh lab.
struct World {
    clock: Turns,
    fakes: FakeServices,
    backend: Arc<dyn Backend>,
    /// The current code's shop; a stale worker has its own.
    shop: Arc<Shop>,
    /// The runners sharing the queues: the current code first.
    runners: Vec<Runner>,
    identities: Vec<String>,
    concurrency: usize,
    /// The Postgres database to drop when the run is over.
    scratch: Option<ScratchDatabase>,
    /// The fake services' HTTP server, with `over_http`.
    server: Option<RunningServer>,
    /// The product the orders go to, when known before placing them.
    product: std::cell::Cell<Option<i64>>,
    /// When a `queue = "down"` outage ends (0: none).
    queue_up_at_ms: u64,
}

async fn run_once(scenario: &Scenario, options: &RunOptions, every_step: Option<Step>) -> Run {
    let world = match setup(scenario, options, every_step).await {
        Ok(world) => world,
        Err(err) => return failed_setup(every_step, err),
    };
    let start_ms = world.clock.now_ms();
    let ticks = place_orders(scenario, &world).await;
    let unfinished = drive(&world, ticks, start_ms + options.deadline_ms).await;
    let snapshot = Snapshot::capture(
        &world.shop.store,
        &world.fakes,
        world.backend.as_ref(),
        world.runners[0].history().attempts(),
    )
    .await;
    let verdict = checker::verdict(
        &scenario.expect,
        checker::check(&scenario.expect, &snapshot),
    );
    let virtual_ms = world.clock.now_ms() - start_ms;
    // On real engines, leave nothing behind.
    let _ = world.backend.clear().await;
    if let Some(server) = world.server {
        let _ = server.shutdown().await;
    }
    match world.scratch {
        Some(scratch) => {
            world.shop.store.close().await;
            scratch.drop_now().await;
        }
        None => {
            let spare = Spare {
                store: world.shop.store.clone(),
                product: world.product.get(),
            };
            give_back(spare).await;
        }
    }
    Run {
        step: every_step,
        verdict,
        unfinished,
        virtual_ms,
        snapshot,
    }
}

fn failed_setup(step: Option<Step>, err: String) -> Run {
    Run {
        step,
        verdict: Verdict::failed(format!("the lab could not be set up: {err}")),
        unfinished: Some(err),
        virtual_ms: 0,
        snapshot: Snapshot::default(),
    }
}

async fn setup(
    scenario: &Scenario,
    options: &RunOptions,
    every_step: Option<Step>,
) -> Result<World, String> {
    let seed = scenario.seed.unwrap_or(options.seed);
    if scenario.backend == Some(super::format::BackendKind::Redis) && options.redis.is_none() {
        return Err(
            "the scenario asks for the Redis backend: run it with `lab check --redis URL`".into(),
        );
    }
    let clock = Turns::new(START_MS, seed);
    let shared: SharedClock = Arc::new(clock.clone());
    let fakes = FakeServices::with_clock(shared.clone(), seed);
    set_service_faults(scenario, &fakes)?;
    let (store, scratch, product) = match &options.database {
        Some(url) => {
            let (store, scratch) = ScratchDatabase::create(url, "s")
                .await
                .map_err(|e| e.to_string())?;
            (store, Some(scratch), None)
        }
        None => {
            let spare = simulation_store().await.map_err(|e| e.to_string())?;
            (spare.store, None, spare.product)
        }
    };
    let timeout = Duration::from_millis(options.client_timeout_ms);
    let (clients, server) = if options.over_http {
        let server = RunningServer::start(
            "127.0.0.1:0".parse().expect("a socket address"),
            fake_services::http::router(fakes.clone(), Default::default()),
        )
        .await
        .map_err(|e| format!("cannot start the fake services' server: {e}"))?;
        let clients =
            Clients::http_on_virtual_time(&server.url(), timeout).map_err(|e| e.to_string())?;
        (clients, Some(server))
    } else {
        (Clients::in_process(fakes.clone(), timeout), None)
    };
    let mut backend: Arc<dyn Backend> = match &options.redis {
        Some(url) => Arc::new(
            RedisBackend::connect_with_namespace(
                url,
                &format!("idemlab-check-{:016x}", rand::random::<u64>()),
            )
            .await
            .map_err(|e| e.to_string())?,
        ),
        None => Arc::new(MemoryBackend::new()),
    };
    let mut queue_up_at_ms = 0;
    for fault in &scenario.faults {
        match fault {
            Fault::DuplicateDelivery => {
                backend = Arc::new(FaultyBackend {
                    inner: backend,
                    clock: shared.clone(),
                    duplicate: true,
                    down_until_ms: 0,
                })
            }
            Fault::QueueDown { for_ms } => {
                let down_until_ms = clock.now_ms() + for_ms;
                queue_up_at_ms = queue_up_at_ms.max(down_until_ms);
                backend = Arc::new(FaultyBackend {
                    inner: backend,
                    clock: shared.clone(),
                    duplicate: false,
                    down_until_ms,
                })
            }
            _ => {}
        }
    }
    let deaths = WorkerDeaths::none();
    for fault in &scenario.faults {
        if let Fault::WorkerDies { step } = fault {
            if let Some(step) = step.or(every_step) {
                deaths.plan(step, 1);
            }
        }
    }
    let config = RunnerConfig {
        concurrency: scenario.concurrency,
        retry: RetryPolicy {
            max_retries: scenario.max_retries.unwrap_or(25),
            time_scale: 1.0,
        },
        seed,
        ..RunnerConfig::default()
    };
    let history = History::new();
    // A late scheduler runs two sweeps at once, so it needs two slots; with
    // no reminders it has nothing to do, and changes nothing.
    let late = scenario.faults.contains(&Fault::SchedulerLate) && !scenario.reminders.is_empty();
    let sweep_overlap = late.then(|| Arc::new(reminders::Overlap::default()));
    let shop = Arc::new(Shop {
        store: store.clone(),
        clients: clients.clone(),
        knobs: scenario.pipeline,
        deaths: deaths.clone(),
        clock: shared.clone(),
        sweep_overlap: sweep_overlap.clone(),
    });
    let mut runners = vec![pipeline::runner_sharing(
        &shop,
        backend.clone(),
        config.clone(),
        history.clone(),
    )];
    for fault in &scenario.faults {
        if let Fault::StaleWorker {
            code_version,
            pipeline: knobs,
        } = fault
        {
            let stale_shop = Arc::new(Shop {
                store: store.clone(),
                clients: clients.clone(),
                knobs: *knobs,
                deaths: deaths.clone(),
                clock: shared.clone(),
                sweep_overlap: sweep_overlap.clone(),
            });
            runners.push(pipeline::runner_sharing(
                &stale_shop,
                backend.clone(),
                RunnerConfig {
                    code_version: code_version.clone(),
                    seed: seed ^ 0x01d,
                    ..config.clone()
                },
                history.clone(),
            ));
        }
    }
    let identities = runners.iter().map(Runner::new_identity).collect();
    Ok(World {
        clock,
        fakes,
        backend,
        shop,
        runners,
        identities,
        concurrency: if late {
            scenario.concurrency.max(2)
        } else {
            scenario.concurrency
        },
        scratch,
        server,
        product: std::cell::Cell::new(product),
        queue_up_at_ms,
    })
}

thread_local! {
    /// In-memory stores kept for the next run on this thread: making one
    /// (schema and seed) costs more than a whole run, rewinding one a tenth.
    static SPARE_STORES: std::cell::RefCell<Vec<Spare>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A simulation store between runs.
struct Spare {
    store: Store,
    /// The product its last run placed orders for. Rewinding restores the
    /// seed products, ids and stock included, so the next run would pick
    /// the same one: it need not read the products again (a statement with
    /// a row per product, in a run of about twenty).
    product: Option<i64>,
}

/// A fresh in-memory store, or a rewound one (the same ids either way).
async fn simulation_store() -> Result<Spare, crate::store::StoreError> {
    match SPARE_STORES.with(|spare| spare.borrow_mut().pop()) {
        Some(spare) => Ok(spare),
        None => Ok(Spare {
            store: Store::simulation().await?,
            product: None,
        }),
    }
}

async fn give_back(spare: Spare) {
    match spare.store.rewind().await {
        Ok(()) => SPARE_STORES.with(|spares| spares.borrow_mut().push(spare)),
        Err(err) => {
            tracing::warn!(%err, "a simulation store could not be rewound; dropping it");
            spare.store.close().await;
        }
    }
}

/// Puts the scenario's service faults in force, in file order per service.
fn set_service_faults(scenario: &Scenario, fakes: &FakeServices) -> Result<(), String> {
    for service in Service::ALL {
        let mut spec = BehaviorSpec::default();
        let mut any = false;
        for fault in &scenario.faults {
            if let Fault::Service {
                service: s,
                rule,
                search_lag_ms,
            } = fault
            {
                if *s != service {
                    continue;
                }
                any = true;
                spec.faults.extend(rule.clone());
                if let Some(lag) = search_lag_ms {
                    spec.search_lag_ms = spec.search_lag_ms.max(*lag);
                }
            }
        }
        if any {
            fakes
                .set_behavior(service, spec)
                .map_err(|e| format!("{service}: {e}"))?;
        }
    }
    Ok(())
}

/// Places every order (and the reminders) the scenario lists, and returns
/// the reminder scheduler, due to tick next minute. A placement that fails (a death at the commit, a
/// queue outage) is part of the story: the checker judges what it left
/// behind.
async fn place_orders(scenario: &Scenario, world: &World) -> SweepTicks {
    let store = &world.shop.store;
    let product = match world.product.get() {
        Some(product) => product,
        None => {
            let products = store.products().await.unwrap_or_default();
            // The product with the most stock, so a scenario can place many orders.
            let product = products
                .iter()
                .max_by_key(|p| p.quantity_remaining)
                .map_or(1, |p| p.id);
            // Only a product that was read is remembered.
            if !products.is_empty() {
                world.product.set(Some(product));
            }
            product
        }
    };
    let runner = &world.runners[0];
    for batch in &scenario.orders {
        for _ in 0..batch.count {
            let new = NewOrder {
                product_id: product,
                quantity: i64::from(batch.quantity),
                email: "pat@example.com".into(),
                address: "123 Main St".into(),
                amount_cents: batch.decline.then_some(9999),
            };
            let placed = world
                .clock
                .run(place_order(&world.shop, runner, &new))
                .await;
            if let Err(err) = placed {
                tracing::debug!(%err, "placing an order failed, as the scenario may intend");
            }
        }
    }
    let now = world.shop.now_ms();
    let mut reminders_added = false;
    for batch in &scenario.reminders {
        for i in 0..batch.count {
            let email = format!("reminder-{i}@example.com");
            if store.add_reminder(&email, now).await.is_ok() {
                reminders_added = true;
            }
        }
    }
    let mut ticks = SweepTicks::default();
    if reminders_added {
        ticks.left = if scenario.faults.contains(&Fault::SchedulerLate) {
            2
        } else {
            1
        };
        ticks.next_ms = SweepTicks::next_minute(world.clock.now_ms());
    }
    ticks
}

/// The reminder scheduler, as a cron entry: it ticks at the top of every
/// minute ([`reminders::SWEEP_EVERY_MS`]) and enqueues a sweep (two when it
/// runs late, to overlap). A tick whose enqueue fails — the queue is down —
/// is made up by the next, as with a real scheduler; the simulator stops
/// ticking once its sweeps are enqueued, since later sweeps would find
/// nothing due and the run could never settle.
#[derive(Debug, Default)]
struct SweepTicks {
    /// Sweeps still to enqueue.
    left: usize,
    /// When the next tick comes.
    next_ms: u64,
}

impl SweepTicks {
    /// The first tick after `now_ms`.
    fn next_minute(now_ms: u64) -> u64 {
        (now_ms / reminders::SWEEP_EVERY_MS + 1) * reminders::SWEEP_EVERY_MS
    }

    /// When the scheduler next ticks, if it has sweeps left to enqueue.
    fn next_ms(&self) -> Option<u64> {
        (self.left > 0).then_some(self.next_ms)
    }

    /// Enqueues the sweeps left, if a tick is due at `now`.
    async fn tick(&mut self, runner: &Runner, now: u64) {
        if self.left == 0 || now < self.next_ms {
            return;
        }
        while self.left > 0 {
            if let Err(err) = reminders::schedule_sweep(runner.client()).await {
                tracing::debug!(%err, "the scheduler could not enqueue a sweep; it tries next minute");
                self.next_ms = Self::next_minute(now);
                return;
            }
            self.left -= 1;
        }
    }
}

/// Runs jobs until nothing is left to do or the deadline passes; returns
/// what was still pending at the deadline.
async fn drive(world: &World, mut ticks: SweepTicks, deadline_ms: u64) -> Option<String> {
    let config = world.runners[0].config().clone();
    let mut identities = world.identities.clone();
    // When the jobs of a reliable process that died can be recovered: once
    // its heartbeat has expired.
    let mut recover_at: Option<u64> = None;
    // Whether the outbox may hold rows to relay: placing the orders may
    // have left some (a queue outage), and only placing writes the outbox,
    // so once a relay has found it empty the store is not asked again, each
    // turn or before the run ends (a one-order run made 6 such statements
    // of its 30). Relaying an empty outbox changes nothing, so the run is
    // the same either way. Were a job ever to write the outbox, its rows
    // would not be lost silently: the snapshot reads the pending outbox and
    // the checker reports each order whose job is still there.
    let mut outbox_dirty = true;
    let mut turn = 0;
    loop {
        let now = world.clock.now_ms();
        if now > deadline_ms {
            return Some(pending_summary(world).await);
        }
        for (runner, identity) in world.runners.iter().zip(&identities) {
            beat(runner, identity, now).await;
        }
        // While the queue is down a relay only claims its rows and gives
        // them back (every push fails): skipped, it changes nothing.
        let queue_up = now >= world.queue_up_at_ms;
        if outbox_dirty && queue_up {
            let relayed = relay_outbox(&world.shop, world.runners[0].client()).await;
            // A relay that found nothing to move: nothing is left.
            outbox_dirty = !matches!(relayed, Ok(0));
        }
        ticks.tick(&world.runners[0], now).await;
        let _ = world.backend.enqueue_due(now).await;
        let _ = world
            .backend
            .recover_expired(now, config.process_ttl_ms)
            .await;
        if recover_at.is_some_and(|at| now >= at) {
            recover_at = None;
        }
        // A batch: up to `concurrency` jobs, the runners taking turns.
        let mut batch = Vec::new();
        for slot in 0..world.concurrency {
            let which = (turn + slot) % world.runners.len();
            let runner = &world.runners[which];
            let fetched = world
                .backend
                .fetch(&Fetch::new(
                    &config.queues,
                    runner.config().fetch,
                    &identities[which],
                ))
                .await;
            if let Ok(Some(job)) = fetched {
                batch.push((which, job));
            }
        }
        turn += 1;
        if batch.is_empty() {
            // The first of: a retry or scheduled job due, a dead process's
            // jobs recoverable, the outbox relayable, the scheduler's tick.
            let due = world.backend.next_due_ms().await.ok().flatten();
            let relay = match (outbox_dirty, queue_up) {
                (true, true) => outbox_retry_at(world, now).await,
                (true, false) => Some(world.queue_up_at_ms),
                (false, _) => None,
            };
            let next = [due, recover_at, relay, ticks.next_ms()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(at) => world.clock.advance_to(at.max(now + 1)).await,
                None => return None,
            }
            continue;
        }
        let runs = batch
            .iter()
            .map(|(which, job)| world.runners[*which].perform(job.clone(), &identities[*which]));
        let outcomes = world.clock.run_all(runs.collect()).await;
        for ((which, _), outcome) in batch.iter().zip(outcomes) {
            if outcome == JobOutcome::Died {
                // The process is gone; a new one takes its place.
                if world.runners[*which].config().fetch == FetchMode::Reliable {
                    recover_at = Some(world.clock.now_ms() + config.process_ttl_ms + 1);
                }
                identities[*which] = world.runners[*which].new_identity();
            }
        }
    }
}

/// When pending outbox rows could next be relayed: after the queue outage.
async fn outbox_retry_at(world: &World, now: u64) -> Option<u64> {
    let pending = world.shop.store.pending_outbox(1).await.ok()?;
    (!pending.is_empty()).then_some(now + 1_000)
}

/// What is still pending, for a run that hit its deadline.
async fn pending_summary(world: &World) -> String {
    let count = |set| async move {
        world
            .backend
            .set_entries(set)
            .await
            .map_or(0, |entries| entries.len())
    };
    let waiting = world.backend.waiting_jobs().await.map_or(0, |j| j.len());
    format!(
        "the run did not settle before the deadline: {waiting} job(s) queued or in progress, {} waiting to retry, {} scheduled",
        count(JobSet::Retry).await,
        count(JobSet::Schedule).await,
    )
}

async fn beat(runner: &Runner, identity: &str, now: u64) {
    let config = runner.config();
    let _ = runner
        .backend()
        .heartbeat(
            ProcessInfo {
                identity: identity.to_string(),
                hostname: config.hostname.clone(),
                started_at_ms: now,
                beat_ms: now,
                concurrency: config.concurrency,
                queues: config.queues.clone(),
                busy: 0,
                code_version: config.code_version.clone(),
            },
            Vec::<BusyJob>::new(),
        )
        .await;
}

/// The queue misbehaving: every job delivered twice, or enqueues failing
/// for a while.
struct FaultyBackend {
    inner: Arc<dyn Backend>,
    clock: SharedClock,
    duplicate: bool,
    down_until_ms: u64,
}

#[async_trait]
impl Backend for FaultyBackend {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn push(&self, job: Job, now_ms: u64) -> Result<(), BackendError> {
        if self.clock.now_ms() < self.down_until_ms {
            return Err(BackendError(
                "Redis::CannotConnectError: the queue is down (injected)".into(),
            ));
        }
        if self.duplicate {
            self.inner.push(job.clone(), now_ms).await?;
        }
        self.inner.push(job, now_ms).await
    }

    async fn fetch(&self, fetch: &Fetch<'_>) -> Result<Option<Job>, BackendError> {
        self.inner.fetch(fetch).await
    }

    async fn acknowledge(&self, process: &str, job: &Job) -> Result<(), BackendError> {
        self.inner.acknowledge(process, job).await
    }

    async fn add_to_set(&self, set: JobSet, job: Job, at_ms: u64) -> Result<(), BackendError> {
        self.inner.add_to_set(set, job, at_ms).await
    }

    async fn enqueue_due(&self, now_ms: u64) -> Result<usize, BackendError> {
        self.inner.enqueue_due(now_ms).await
    }

    async fn next_due_ms(&self) -> Result<Option<u64>, BackendError> {
        self.inner.next_due_ms().await
    }

    async fn set_entries(&self, set: JobSet) -> Result<Vec<SetEntry>, BackendError> {
        self.inner.set_entries(set).await
    }

    async fn delete_from_set(&self, set: JobSet, jid: &str) -> Result<bool, BackendError> {
        self.inner.delete_from_set(set, jid).await
    }

    async fn requeue_from_set(
        &self,
        set: JobSet,
        jid: &str,
        now_ms: u64,
    ) -> Result<bool, BackendError> {
        self.inner.requeue_from_set(set, jid, now_ms).await
    }

    async fn queue_sizes(&self) -> Result<Vec<(String, usize)>, BackendError> {
        self.inner.queue_sizes().await
    }

    async fn heartbeat(
        &self,
        process: ProcessInfo,
        busy: Vec<BusyJob>,
    ) -> Result<(), BackendError> {
        self.inner.heartbeat(process, busy).await
    }

    async fn remove_process(&self, identity: &str) -> Result<(), BackendError> {
        self.inner.remove_process(identity).await
    }

    async fn processes(&self) -> Result<Vec<ProcessInfo>, BackendError> {
        self.inner.processes().await
    }

    async fn busy(&self) -> Result<Vec<BusyJob>, BackendError> {
        self.inner.busy().await
    }

    async fn recover_expired(&self, now_ms: u64, ttl_ms: u64) -> Result<Vec<Job>, BackendError> {
        self.inner.recover_expired(now_ms, ttl_ms).await
    }

    async fn waiting_jobs(&self) -> Result<Vec<Job>, BackendError> {
        self.inner.waiting_jobs().await
    }

    async fn count(&self, processed: u64, failed: u64) -> Result<(), BackendError> {
        self.inner.count(processed, failed).await
    }

    async fn stats(&self) -> Result<(u64, u64), BackendError> {
        self.inner.stats().await
    }

    async fn clear(&self) -> Result<(), BackendError> {
        self.inner.clear().await
    }
}
