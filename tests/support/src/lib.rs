//! Test helpers for the idemlab package: a lab whose provider calls go over
//! real HTTP to fake services on a random port, with one virtual clock for
//! the runner's retries and the services' fault windows alike; private
//! Redis and Postgres servers ([`servers`]); the `lab` binary as its own
//! process ([`lab_binary`]); waiting on a condition (the fake services'
//! [`wait_until`], re-exported); and their [`scrape`] of `GET /metrics`.
//!
//! A library of its own (not a `mod common;` that each test binary compiles
//! and uses part of), so that a helper one test binary does not use is not
//! dead code there.

pub mod lab_binary;
pub mod servers;

use std::sync::Arc;
use std::time::Duration;

use fake_services::http::router;
use fake_services::serve::RunningServer;
use fake_services::{BehaviorSpec, Clock, FakeServices, ManualClock, Service};
pub use fake_services_test_support::{
    scrape, wait_until, wait_until_within, wait_until_within_or_tell,
};
use idemlab::clients::ProviderClients;
use idemlab::pipeline::{self, place_order, Knobs, Shop, WorkerDeaths};
use idemlab::runner::{MemoryBackend, RetryPolicy, Runner, RunnerConfig};
use idemlab::store::{NewOrder, Order, Store};

pub struct Lab {
    pub fakes: FakeServices,
    pub clock: ManualClock,
    pub shop: Arc<Shop>,
    pub runner: Runner,
    pub server: RunningServer,
}

pub async fn lab(knobs: Knobs) -> Lab {
    lab_with(knobs, 25).await
}

pub async fn lab_with(knobs: Knobs, max_retries: u32) -> Lab {
    lab_on(Arc::new(MemoryBackend::new()), knobs, max_retries).await
}

/// A lab whose jobs wait in `backend` (Redis, for the interop tests).
pub async fn lab_on(
    backend: Arc<dyn idemlab::runner::Backend>,
    knobs: Knobs,
    max_retries: u32,
) -> Lab {
    let clock = ManualClock::default();
    let fakes = FakeServices::with_clock(Arc::new(clock.clone()), 1);
    let server = RunningServer::start(
        "127.0.0.1:0".parse().unwrap(),
        router(fakes.clone(), Default::default()),
    )
    .await
    .unwrap();
    let clients = ProviderClients::http(&server.url(), Duration::from_secs(30)).unwrap();
    let shop = Arc::new(Shop {
        store: Store::temporary().await.unwrap(),
        clients,
        knobs,
        deaths: WorkerDeaths::none(),
        clock: Arc::new(clock.clone()),
        sweep_overlap: None,
    });
    let runner = pipeline::runner(
        &shop,
        backend,
        RunnerConfig {
            retry: RetryPolicy {
                max_retries,
                time_scale: 1.0,
            },
            seed: 3,
            ..RunnerConfig::default()
        },
    );
    Lab {
        fakes,
        clock,
        shop,
        runner,
        server,
    }
}

impl Lab {
    /// Places an order for one Flux Capacitor (12300 cents), or for 9999 cents.
    pub async fn order(&self, decline: bool) -> Option<Order> {
        let new = NewOrder {
            product_id: 1,
            quantity: 1,
            email: "pat@example.com".into(),
            address: "123 Main St".into(),
            amount_cents: decline.then_some(9999),
        };
        match place_order(&self.shop, &self.runner, &new).await {
            Ok(placed) => Some(placed.order),
            Err(_) => None,
        }
    }

    pub async fn drain(&self) -> usize {
        self.runner.drain_all(&self.clock).await
    }

    pub fn fault(&self, service: Service, json: serde_json::Value) {
        let spec: BehaviorSpec = serde_json::from_value(json).unwrap();
        self.fakes.set_behavior(service, spec).unwrap();
    }

    /// Successful effects for an order in a service's ledger.
    pub fn effects(&self, service: Service, order_id: i64) -> usize {
        self.fakes
            .ledger(service)
            .iter()
            .filter(|r| r.is_success() && r.order_id() == Some(order_id.to_string()))
            .count()
    }

    pub fn notifications(&self) -> Vec<String> {
        self.fakes
            .ledger(Service::ErrorCatcher)
            .iter()
            .map(|r| {
                r.request["exception_message"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    }

    pub async fn reload(&self, order: &Order) -> Order {
        self.shop.store.order(order.id).await.unwrap().unwrap()
    }

    /// A reminder for `email`, due now on the lab's clock.
    pub async fn remind_now(&self, email: &str) {
        let now = i64::try_from(self.clock.now_ms()).unwrap();
        self.shop.store.add_reminder(email, now).await.unwrap();
    }
}
