//! Test helpers for the fake services: the services on a random port, on a
//! manual clock, with a client and a few shortcuts (every test gets its own
//! server), [`wait_until`], the one way a test waits for a condition, and
//! [`scrape`], `GET /metrics` parsed.
//!
//! A library of its own (not a `mod common;` that each test binary compiles
//! and uses part of), so that a helper one test binary does not use is not
//! dead code there.

pub mod process;
pub mod scrape;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fake_services::http::{router, HttpOptions};
use fake_services::serve::RunningServer;
use fake_services::{FakeServices, ManualClock, Service};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::RequestBuilder;
use serde_json::{json, Value};

/// The manual clock's start (`ManualClock::default`).
pub const START_MS: u64 = 1_767_225_600_000;

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

/// Spawns the services as [`spawn`] does, with `options`.
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
    /// The absolute URL of `path` on this server.
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
    pub fn charge(&self, order_id: u64) -> RequestBuilder {
        self.post_charge(&charge_body(order_id, 12300))
    }

    /// `POST /payments/charge` with `body`.
    pub fn post_charge(&self, body: &Value) -> RequestBuilder {
        self.client.post(self.url("/payments/charge")).json(body)
    }

    /// `POST /email/send` with `body`.
    pub fn post_email(&self, body: &Value) -> RequestBuilder {
        self.client.post(self.url("/email/send")).json(body)
    }

    /// `PUT /fulfillment/request` with `body`.
    pub fn put_fulfillment(&self, body: &Value) -> RequestBuilder {
        self.client.put(self.url("/fulfillment/request")).json(body)
    }

    /// `PUT /error-catcher/notification` with `body`.
    pub fn put_notification(&self, body: &Value) -> RequestBuilder {
        self.client
            .put(self.url("/error-catcher/notification"))
            .json(body)
    }

    /// `GET path`: its status and JSON body.
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        send_json(self.client.get(self.url(path))).await
    }

    /// `GET path`: its status.
    pub async fn get_status(&self, path: &str) -> u16 {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        response.status().as_u16()
    }

    /// `DELETE path`: its status.
    pub async fn delete_status(&self, path: &str) -> u16 {
        let response = self.client.delete(self.url(path)).send().await.unwrap();
        response.status().as_u16()
    }

    /// `GET /{service}/behavior`, asserting it answers 200.
    pub async fn behavior(&self, service: Service) -> Value {
        let (status, body) = self
            .get_json(&format!("/{}/behavior", service.name()))
            .await;
        assert_eq!(status, 200);
        body
    }

    /// An HTML page, asked for as a browser asks, asserting 200 and `text/html`.
    pub async fn page(&self, path: &str) -> String {
        let response = self
            .client
            .get(self.url(path))
            .header(ACCEPT, "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        let content_type = response.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            content_type.starts_with("text/html"),
            "{path}: {content_type}"
        );
        response.text().await.unwrap()
    }

    /// Waits until `n` calls sit in injected latency on the manual clock.
    pub async fn wait_for_sleepers(&self, n: usize) {
        let clock = &self.clock;
        wait_until("calls sit in their latency", || async move {
            clock.sleepers() >= n
        })
        .await;
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

/// The status and JSON body of `response`; panics, naming both, if the body
/// is not JSON.
pub async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|err| panic!("{status}: not JSON ({err}): {text:?}"));
    (status, body)
}

/// Sends `request` and returns its status and JSON body.
pub async fn send_json(request: RequestBuilder) -> (u16, Value) {
    status_and_json(request.send().await.unwrap()).await
}

/// Whether `body["error"]` is a string that mentions `word`.
pub fn error_mentions(body: &Value, word: &str) -> bool {
    body["error"].as_str().is_some_and(|e| e.contains(word))
}

/// A charge body: `amount_cents` for `order_id` (a number, or any JSON).
pub fn charge_body(order_id: impl Into<Value>, amount_cents: u64) -> Value {
    json!({
        "customer_id": "cus_1",
        "payment_method_id": "pm_1",
        "amount_cents": amount_cents,
        "metadata": {"order_id": order_id.into()},
    })
}

/// An email body: `template_id` to `to`, with `order_id` as template data.
pub fn email_body(to: &str, template_id: &str, order_id: u64) -> Value {
    json!({"to": to, "template_id": template_id, "template_data": {"order_id": order_id}})
}

/// A fulfillment request body for `order_id` (any JSON), with `address` if given.
pub fn fulfillment_body(order_id: impl Into<Value>, address: Option<&str>) -> Value {
    let mut body = json!({
        "customer_id": "cus_1",
        "product_id": "prod_1",
        "quantity": 2,
        "metadata": {"order_id": order_id.into()},
    });
    if let Some(address) = address {
        body["address"] = json!(address);
    }
    body
}

/// Polls `condition` (async) until it holds; the deadline (10 s, far beyond
/// what a loaded machine needs) only guards against a hang.
pub async fn wait_until<F, Fut>(what: &str, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_until_within(what, Duration::from_secs(10), condition).await;
}

/// [`wait_until`] with a deadline of `limit`, for waits on real servers and
/// processes (a worker booting, a heartbeat expiring).
pub async fn wait_until_within<F, Fut>(what: &str, limit: Duration, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_until_within_or_tell(what, limit, condition, || async { String::new() }).await;
}

/// [`wait_until_within`] whose failure also says what `seen` finds then (the
/// state a stalled wait was stuck in), so a timeout in CI can be diagnosed
/// from its message alone.
pub async fn wait_until_within_or_tell<F, Fut, S, SFut>(
    what: &str,
    limit: Duration,
    mut condition: F,
    seen: S,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
    S: FnOnce() -> SFut,
    SFut: Future<Output = String>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !condition().await {
        if tokio::time::Instant::now() >= deadline {
            let seen = seen().await;
            let seen = if seen.is_empty() {
                seen
            } else {
                format!(":\n{seen}")
            };
            panic!("timed out after {limit:?} waiting until {what}{seen}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
