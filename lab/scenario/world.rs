//! The world a scenario runs in: a fresh lab set up with the scenario's
//! knobs and faults (store, fake services, queue backend, the runners of
//! current and stale code), its orders and reminders placed, and torn down
//! again, leaving nothing behind.

use std::sync::Arc;
use std::time::Duration;

use fake_services::serve::RunningServer;
use fake_services::{BehaviorSpec, Clock, FakeServices, Service, SharedClock};

use super::format::{BackendKind, Fault, Scenario};
use super::queue_faults::FaultyBackend;
use super::run_options::RunOptions;
use super::spare_stores::{give_back, simulation_store, Spare};
use super::sweep_ticks::SweepTicks;
use super::turns::Turns;
use crate::clients::ProviderClients;
use crate::pipeline::{self, place_order, reminders, Shop, Step, WorkerDeaths};
use crate::runner::{
    Backend, History, MemoryBackend, RedisBackend, RetryPolicy, Runner, RunnerConfig,
};
use crate::store::{NewOrder, ScratchDatabase};

/// When every run starts, 2026-01-01T00:00:00Z: a fixed, readable start
/// for reproducible ledgers.
const START_MS: u64 = 1_767_225_600_000;
/// The scenario's knobs and faults set up on a fresh lab.
pub(super) struct World {
    pub(super) clock: Turns,
    pub(super) fakes: FakeServices,
    pub(super) backend: Arc<dyn Backend>,
    /// The current code's shop; a stale worker has its own.
    pub(super) shop: Arc<Shop>,
    /// The runners sharing the queues: the current code first.
    pub(super) runners: Vec<Runner>,
    pub(super) identities: Vec<String>,
    pub(super) concurrency: usize,
    /// The Postgres database to drop when the run is over.
    pub(super) scratch: Option<ScratchDatabase>,
    /// The fake services' HTTP server, with `over_http`.
    pub(super) server: Option<RunningServer>,
    /// The product the orders go to, when known before placing them.
    pub(super) product: std::cell::Cell<Option<i64>>,
    /// When a `queue = "down"` outage ends (0: none).
    pub(super) queue_up_at_ms: u64,
}

impl World {
    /// Leaves nothing behind on real engines (the Redis namespace, the
    /// Postgres database, the HTTP server); a simulation store goes back to
    /// the spares.
    pub(super) async fn tear_down(self) {
        let _ = self.backend.clear().await;
        if let Some(server) = self.server {
            let _ = server.shutdown().await;
        }
        match self.scratch {
            Some(scratch) => {
                self.shop.store.close().await;
                scratch.drop_now().await;
            }
            None => {
                let spare = Spare {
                    store: self.shop.store.clone(),
                    product: self.product.get(),
                };
                give_back(spare).await;
            }
        }
    }
}

/// Sets up a fresh lab for `scenario` (for a `step = "every"` run, the
/// worker dies after `every_step`).
pub(super) async fn setup(
    scenario: &Scenario,
    options: &RunOptions,
    every_step: Option<Step>,
) -> Result<World, String> {
    let seed = scenario.seed.unwrap_or(options.seed);
    if scenario.backend == Some(BackendKind::Redis) && options.redis.is_none() {
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
        let clients = ProviderClients::http_on_virtual_time(&server.url(), timeout)
            .map_err(|e| e.to_string())?;
        (clients, Some(server))
    } else {
        (ProviderClients::in_process(fakes.clone(), timeout), None)
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
                backend = Arc::new(FaultyBackend::duplicating(backend, shared.clone()))
            }
            Fault::QueueDown { for_ms } => {
                let down_until_ms = clock.now_ms() + for_ms;
                queue_up_at_ms = queue_up_at_ms.max(down_until_ms);
                backend = Arc::new(FaultyBackend::down_until(
                    backend,
                    shared.clone(),
                    down_until_ms,
                ))
            }
            _ => {}
        }
    }
    let deaths = WorkerDeaths::none();
    for fault in &scenario.faults {
        if let Fault::WorkerDies { step, .. } = fault {
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
pub(super) async fn place_orders(scenario: &Scenario, world: &World) -> SweepTicks {
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
