//! The system under test: a shop that saves an order, then completes it in
//! background jobs that call the fake services — built so that every naive
//! and every safe variant can be switched on ([`knobs`]).
//!
//! - [`knobs`]: the variants and the step boundaries.
//! - [`jobs`]: the three jobs; [`email`]: the emails they and the sweep send;
//!   [`keys`]: the idempotency keys;
//!   `job_errors`: a failure as the job's error; [`checkout`]: placing an
//!   order and the outbox relay; [`reminders`]: the periodic sweep; [`handlers`]: error and death
//!   notifications; [`deaths`]: planned worker deaths.

pub mod checkout;
pub mod deaths;
pub mod email;
pub mod handlers;
mod job_errors;
pub mod jobs;
pub mod keys;
pub mod knobs;
pub mod reminders;

use std::sync::Arc;

use fake_services::SharedClock;

use crate::clients::ProviderClients;
use crate::runner::{
    Backend, History, Registry, Runner, RunnerBuilder, RunnerConfig, TransientErrorSilencer,
};
use crate::store::Store;

pub use checkout::{place_order, relay_outbox, PlaceError, Placed};
pub use deaths::WorkerDeaths;
pub use knobs::{
    ChargeDedup, EmailDedup, Enqueue, FulfillmentDedup, Knobs, Step, Structure, Sweep,
};

/// What the jobs work with: the store, the provider clients, the variant,
/// the planned deaths and the clock.
pub struct Shop {
    pub store: Store,
    pub clients: ProviderClients,
    pub knobs: Knobs,
    pub deaths: WorkerDeaths,
    pub clock: SharedClock,
    /// Set when the scheduler runs late: two sweeps overlap exactly.
    pub sweep_overlap: Option<Arc<reminders::Overlap>>,
}

impl Shop {
    /// The clock's now, as the store's millisecond columns take it.
    pub fn now_ms(&self) -> i64 {
        i64::try_from(self.clock.now_ms()).unwrap_or(i64::MAX)
    }
}

/// A runner for `shop`'s jobs: the job classes, the transient-error
/// silencer, and the error catcher told of errors and deaths. The runner's
/// fetch mode is the knob's.
pub fn runner(shop: &Arc<Shop>, backend: Arc<dyn Backend>, config: RunnerConfig) -> Runner {
    runner_sharing(shop, backend, config, History::new())
}

/// The same, recording into `history`: an old worker sharing the queues
/// (a runner for another shop) shares the history too.
pub fn runner_sharing(
    shop: &Arc<Shop>,
    backend: Arc<dyn Backend>,
    config: RunnerConfig,
    history: History,
) -> Runner {
    let mut registry = Registry::new();
    register(&mut registry, shop);
    let config = RunnerConfig {
        fetch: shop.knobs.fetch,
        ..config
    };
    RunnerBuilder::new(backend, shop.clock.clone(), registry)
        .config(config)
        .history(history)
        .middleware(TransientErrorSilencer)
        .error_handler(handlers::NotifyErrorCatcher(shop.clients.clone()))
        .death_handler(handlers::NotifyErrorCatcher(shop.clients.clone()))
        .build()
}

/// The pipeline's job classes and the reminder sweep, registered for `shop`.
fn register(registry: &mut Registry, shop: &Arc<Shop>) {
    registry
        .register(jobs::COMPLETE_ORDER, jobs::CompleteOrder(shop.clone()))
        .register(jobs::SEND_ORDER_EMAIL, jobs::SendOrderEmail(shop.clone()))
        .register(
            jobs::REQUEST_FULFILLMENT,
            jobs::RequestFulfillment(shop.clone()),
        )
        .register(
            reminders::SWEEP_REMINDERS,
            reminders::SweepReminders(shop.clone()),
        );
}
