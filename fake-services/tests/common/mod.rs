//! Test helpers: the fake services on a random port, on a manual clock, with
//! a client and a few shortcuts. Every test gets its own server.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fake_services::http::{router, HttpOptions};
use fake_services::serve::RunningServer;
use fake_services::{FakeServices, ManualClock, Service};
use serde_json::Value;

/// A running fake-services server for one test.
pub struct TestFakes {
    pub base: String,
    pub fakes: FakeServices,
    pub clock: ManualClock,
    pub client: reqwest::Client,
    pub server: RunningServer,
}

/// Spawns the services on 127.0.0.1 and a free port, on a manual clock.
pub async fn spawn() -> TestFakes {
    spawn_with(HttpOptions::default()).await
}

pub async fn spawn_with(options: HttpOptions) -> TestFakes {
    let clock = ManualClock::default();
    let fakes = FakeServices::with_clock(Arc::new(clock.clone()), 42);
    let app = router(fakes.clone(), options);
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = RunningServer::start(addr, app)
        .await
        .expect("bind a free port");
    TestFakes {
        base: server.url(),
        fakes,
        clock,
        client: reqwest::Client::builder()
            // Far longer than any test needs; only a hung server reaches it.
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        server,
    }
}

impl TestFakes {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `PUT /{service}/behavior` with `body`, asserting it is accepted.
    pub async fn set_behavior(&self, service: Service, body: Value) -> Value {
        let response = self
            .client
            .put(self.url(&format!("/{}/behavior", service.name())))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "behaviour {body} was refused");
        response.json().await.unwrap()
    }

    /// `POST /payments/charge` with a typical body for `order_id`.
    pub fn charge(&self, order_id: u64) -> reqwest::RequestBuilder {
        self.client
            .post(self.url("/payments/charge"))
            .json(&serde_json::json!({
                "customer_id": "cus_1",
                "payment_method_id": "pm_1",
                "amount_cents": 12300,
                "metadata": {"order_id": order_id},
            }))
    }

    /// The ledger as JSON records.
    pub async fn ledger(&self, service: Service) -> Vec<Value> {
        self.client
            .get(self.url(&format!("/{}/ledger", service.name())))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// Polls `condition` until it holds or 10 seconds pass; the deadline is far
/// beyond what a loaded machine needs, and only guards against hanging.
pub async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
