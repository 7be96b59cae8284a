//! The web lab over real HTTP: its pages and their JSON, against a lab whose
//! jobs call the fake services over HTTP on a virtual clock. Jobs run only
//! when a test drains them (or runs one), so every page is read at a known
//! point of the pipeline.

use std::sync::Arc;
use std::time::Duration;

use fake_services::serve::RunningServer;
use fake_services::{BehaviorSpec, FakeServices, ManualClock, Service};
use idemlab::app::{Lab, LabParts};
use idemlab::clients::ProviderClients;
use idemlab::pipeline::{place_order, Enqueue, Knobs, Step};
use idemlab::runner::backend::{BusyJob, ProcessInfo};
use idemlab::runner::{Fetch, FetchMode, JobOutcome, MemoryBackend, RetryPolicy, RunnerConfig};
use idemlab::store::{NewOrder, Store};
use idemlab::web::{router, WebOptions};
use idemlab_test_support::scrape::scrape;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HOST, LOCATION, ORIGIN};
use reqwest::StatusCode;
use serde_json::{json, Value};

struct Web {
    fakes: FakeServices,
    clock: ManualClock,
    lab: Lab,
    url: String,
    http: reqwest::Client,
    fakes_server: RunningServer,
    _web_server: RunningServer,
}

/// Fake services on their own server, a lab on them, the web lab on its own.
async fn web(knobs: Knobs) -> Web {
    web_with(knobs, None, WebOptions::default(), None).await
}

async fn web_with(
    knobs: Knobs,
    control_token: Option<&str>,
    options: WebOptions,
    fakes_url: Option<&str>,
) -> Web {
    let clock = ManualClock::default();
    let fakes = FakeServices::with_clock(Arc::new(clock.clone()), 1);
    let fakes_server = RunningServer::start(
        "127.0.0.1:0".parse().unwrap(),
        fake_services::http::router(
            fakes.clone(),
            fake_services::http::HttpOptions {
                control_token: control_token.map(String::from),
                ..Default::default()
            },
        ),
    )
    .await
    .unwrap();
    let clients = ProviderClients::http(&fakes_server.url(), Duration::from_secs(30)).unwrap();
    let lab = Lab::new(LabParts {
        store: Store::temporary().await.unwrap(),
        clients,
        backend: Arc::new(MemoryBackend::new()),
        clock: Arc::new(clock.clone()),
        knobs,
        runner: RunnerConfig {
            retry: RetryPolicy {
                max_retries: 25,
                time_scale: 1.0,
            },
            seed: 3,
            ..RunnerConfig::default()
        },
        fakes_url: fakes_url.map_or_else(|| fakes_server.url(), String::from),
    });
    let web_server =
        RunningServer::start("127.0.0.1:0".parse().unwrap(), router(lab.clone(), options))
            .await
            .unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Web {
        fakes,
        clock,
        url: web_server.url(),
        lab,
        http,
        fakes_server,
        _web_server: web_server,
    }
}

/// `application/x-www-form-urlencoded`, as a browser encodes a form.
fn encode(pairs: &[(&str, &str)]) -> String {
    let part = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                    char::from(b).to_string()
                }
                b' ' => "+".to_string(),
                b => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", part(k), part(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn order_fields<'a>(
    product: &'a str,
    quantity: &'a str,
    email: &'a str,
    address: &'a str,
) -> [(&'static str, &'a str); 4] {
    [
        ("order[product_id]", product),
        ("order[quantity]", quantity),
        ("order[email]", email),
        ("order[address]", address),
    ]
}

impl Web {
    async fn page(&self, path: &str) -> (StatusCode, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .header(ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8")
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
    }

    /// A page of the fake services, as a browser asks for it.
    async fn fakes_page(&self, path: &str) -> String {
        self.http
            .get(format!("{}{path}", self.fakes_server.url()))
            .header(ACCEPT, "text/html")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn json(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .header(ACCEPT, "application/json")
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    async fn post_form(&self, path: &str, pairs: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .header(ACCEPT, "text/html")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(encode(pairs))
            .send()
            .await
            .unwrap()
    }

    async fn post_json(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Places an order through the form; returns where it redirected.
    async fn order_via_form(&self, address: &str) -> String {
        let response = self
            .post_form(
                "/orders",
                &order_fields("1", "1", "pat@example.com", address),
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        location(&response)
    }

    fn fault(&self, service: Service, spec: Value) {
        let spec: BehaviorSpec = serde_json::from_value(spec).unwrap();
        self.fakes.set_behavior(service, spec).unwrap();
    }

    async fn drain(&self) -> usize {
        self.lab.runner.drain_all(&self.clock).await
    }

    /// Runs the next queued job once, as worker process `p` would: a failure
    /// goes to the retry (or dead) set and stays there.
    async fn run_one(&self) -> JobOutcome {
        let runner = &self.lab.runner;
        let job = runner
            .backend()
            .fetch(&Fetch::new(
                &runner.config().queues,
                FetchMode::Reliable,
                "p",
            ))
            .await
            .unwrap()
            .expect("a queued job");
        runner.perform(job, "p").await
    }
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_string()
}

/// The Service Status block of one service on `/`.
fn block<'a>(page: &'a str, id: &str) -> &'a str {
    let start = page
        .find(&format!("id=\"status-{id}\""))
        .unwrap_or_else(|| panic!("no status block {id} in {page}"));
    let rest = &page[start..];
    &rest[..rest.find("</div>").unwrap()]
}

#[tokio::test]
async fn the_index_shows_each_service_and_the_faults_in_force() {
    let web = web(Knobs::safe()).await;
    let (status, page) = web.page("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Service Status"), "{page}");
    assert!(page.contains("0 orders"), "{page}");
    assert!(block(&page, "store").contains("✅"));
    assert!(block(&page, "store").contains("SQLite"));
    assert!(block(&page, "store").contains("synchronous = normal"));
    assert!(block(&page, "queue").contains("memory"));
    for service in ["error-catcher", "payments", "fulfillment", "email"] {
        let b = block(&page, service);
        assert!(b.contains("✅"), "{service}: {b}");
        let manage = format!("{}/{service}/behavior\">Manage…", web.fakes_server.url());
        assert!(b.contains(&manage), "{service}: {b}");
    }
    assert!(page.contains("safe pipeline"), "{page}");
    assert!(page.contains("How to see a double charge"), "{page}");

    let (status, body) = web.json("/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["orders"], 0);
    assert_eq!(body["knobs"]["charge"], "idempotency-key");
    assert_eq!(body["unsafe_knobs"], json!([]));
    assert_eq!(body["services"]["store"]["ok"], true);
    assert_eq!(body["services"]["store"]["dialect"], "SQLite");
    assert_eq!(
        body["services"]["store"]["commit_wait"],
        "synchronous = normal"
    );
    assert_eq!(body["services"]["queue"]["backend"], "memory");
    assert_eq!(body["services"]["queue"]["queues"]["high"], 0);
    assert_eq!(body["services"]["payments"]["ok"], true);
    assert_eq!(body["services"]["payments"]["reachable"], true);

    web.fault(
        Service::Payments,
        json!({"faults": [{"mode": "send-then-crash", "calls": 2, "operations": ["charge"]}]}),
    );
    let (_, page) = web.page("/").await;
    let payments = block(&page, "payments");
    assert!(payments.contains("🛑"), "{payments}");
    assert!(
        payments.contains("rule 0: send-then-crash: let the charge happen, then answer 503 on the next 2 calls (charge) — 2 left"),
        "{payments}"
    );
    assert!(block(&page, "email").contains("✅"));

    let (_, body) = web.json("/").await;
    let payments = &body["services"]["payments"];
    assert_eq!(payments["ok"], false);
    assert_eq!(payments["reachable"], true);
    assert_eq!(payments["faults"][0]["mode"], "send-then-crash");
    assert_eq!(payments["faults"][0]["state"]["remaining_calls"], 2);
    assert_eq!(body["services"]["email"]["ok"], true);
}

#[tokio::test]
async fn the_index_says_the_rules_as_the_behaviour_page_does_with_what_is_used_up() {
    let web = web(Knobs::safe()).await;
    web.fault(
        Service::Email,
        json!({"faults": [
            {"mode": "slow", "sleep_ms": 5, "operations": ["search"]},
            {"mode": "crash", "calls": 1},
        ]}),
    );
    // The same words, from the one function, on both sites.
    let words: Vec<String> = web
        .fakes
        .behavior(Service::Email)
        .faults
        .iter()
        .map(|rule| fake_services::rule_words::rule(Service::Email, rule))
        .collect();
    assert_eq!(
        words[1],
        "crash: answer 503 with no effect on the next 1 call (send, search) — 1 left"
    );
    let behavior_page = web.fakes_page("/email/behavior").await;
    let (_, page) = web.page("/").await;
    let email = block(&page, "email");
    assert!(email.contains("🛑"), "{email}");
    for (i, words) in words.iter().enumerate() {
        assert!(email.contains(&format!("rule {i}: {words}")), "{email}");
        assert!(behavior_page.contains(words.as_str()), "{behavior_page}");
    }
    let (_, body) = web.json("/").await;
    assert_eq!(
        body["services"]["email"]["faults"][1]["words"],
        words[1].as_str()
    );
    assert_eq!(body["services"]["email"]["faults"][1]["index"], 1);

    // The crash used up: listed as spent, and Email is ✅ again once the
    // slow search rule is removed too.
    let call = fake_services::Call::new(
        Service::Email,
        fake_services::Operation::Effect,
        json!({"to": "pat@example.com", "template_id": "t", "template_data": {}}),
    );
    assert_eq!(web.fakes.call(call).await.response().unwrap().status, 503);
    web.fakes.remove_rule(Service::Email, 0).unwrap();
    let (_, page) = web.page("/").await;
    let email = block(&page, "email");
    assert!(email.contains("✅"), "{email}");
    assert!(email.contains("No fault rules in force."), "{email}");
    assert!(
        email.contains("<li class=\"spent\">rule 0: crash: answer 503 with no effect on the next 1 call (send, search) — spent after 1 call</li>"),
        "{email}"
    );
    let (_, body) = web.json("/").await;
    assert_eq!(
        body["services"]["email"]["spent_faults"][0]["state"]["spent"],
        true
    );
}

#[tokio::test]
async fn the_lab_and_the_fake_services_share_one_stylesheet() {
    let web = web(Knobs::safe()).await;
    let (_, page) = web.page("/").await;
    assert!(page.contains(fake_services::style::STYLE), "{page}");
    assert!(page.contains("<nav><a href=\"/\">idemlab</a>"), "{page}");
    let fakes_page = web.fakes_page("/").await;
    assert!(
        fakes_page.contains(fake_services::style::STYLE),
        "{fakes_page}"
    );
}

#[tokio::test]
async fn an_unsafe_variant_is_highlighted_with_a_hint() {
    let web = web(Knobs {
        structure: idemlab::pipeline::Structure::Monolithic,
        charge: idemlab::pipeline::ChargeDedup::None,
        ..Knobs::safe()
    })
    .await;
    let (_, page) = web.page("/").await;
    assert!(page.contains("class=\"unsafe\"><td>charge</td>"), "{page}");
    assert!(page.contains("⚠️ unsafe"), "{page}");
    assert!(page.contains("/email/behavior\">Email → Manage…"), "{page}");
    let (_, body) = web.json("/").await;
    assert_eq!(
        body["unsafe_knobs"],
        json!(["structure=monolithic", "charge=none"])
    );
}

#[tokio::test]
async fn unreachable_services_and_a_missing_control_token_are_stop_signs() {
    // Port 1 on loopback refuses connections.
    let web = web_with(
        Knobs::safe(),
        None,
        WebOptions::default(),
        Some("http://127.0.0.1:1"),
    )
    .await;
    let (_, body) = web.json("/").await;
    let payments = &body["services"]["payments"];
    assert_eq!(payments["ok"], false);
    assert_eq!(payments["reachable"], false);
    assert!(
        payments["error"].as_str().unwrap().contains("unreachable"),
        "{payments}"
    );
    let (_, page) = web.page("/").await;
    assert!(block(&page, "email").contains("🛑"));

    // The fakes need a token: without it the rules cannot be read...
    let web = web_with(Knobs::safe(), Some("s3cret"), WebOptions::default(), None).await;
    let (_, body) = web.json("/").await;
    let payments = &body["services"]["payments"];
    assert_eq!(payments["ok"], false);
    assert!(
        payments["error"].as_str().unwrap().contains("401"),
        "{payments}"
    );
    // ... with it they can, and the token is never shown.
    let options = WebOptions {
        control_token: Some("s3cret".into()),
        ..WebOptions::default()
    };
    let web = web_with(Knobs::safe(), Some("s3cret"), options, None).await;
    let (_, body) = web.json("/").await;
    assert_eq!(body["services"]["payments"]["ok"], true, "{body}");
    let (_, page) = web.page("/").await;
    assert!(!page.contains("s3cret"));
}

#[tokio::test]
async fn the_order_form_uses_the_book_field_names() {
    let web = web(Knobs::safe()).await;
    let (status, page) = web.page("/orders/new").await;
    assert_eq!(status, StatusCode::OK);
    for name in [
        "order[product_id]",
        "order[quantity]",
        "order[email]",
        "order[address]",
    ] {
        assert!(page.contains(&format!("name=\"{name}\"")), "{name}: {page}");
    }
    assert!(page.contains("value=\"pat@example.com\""), "{page}");
    assert!(
        page.contains("Flux Capacitor — $123.00 (100 left)"),
        "{page}"
    );
    assert!(
        page.contains("Self-sealing Stembolt — $5678.00 (4 left)"),
        "{page}"
    );
    assert!(page.contains("Place Order"), "{page}");
    assert!(page.contains("action=\"/orders\""), "{page}");
}

#[tokio::test]
async fn a_placed_order_is_in_progress_until_its_jobs_run() {
    let web = web(Knobs::safe()).await;
    let address = "<script>alert(1)</script> & Sons, 1 Main St";
    let to = web.order_via_form(address).await;
    assert_eq!(to, "/orders/1");

    let (status, page) = web.page(&to).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<meta http-equiv=\"refresh\" content=\"1\">"));
    for row in ["Payment", "Confirmation Email", "Fulfillment"] {
        assert!(page.contains(&format!("<td>{row}</td>")), "{row}: {page}");
    }
    assert_eq!(page.matches("in progress").count(), 3, "{page}");
    assert!(!page.contains("<script>alert"), "escaped: {page}");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; Sons"));

    assert_eq!(web.drain().await, 3);
    let order = web.lab.shop.store.order(1).await.unwrap().unwrap();
    let (_, page) = web.page(&to).await;
    assert!(!page.contains("http-equiv=\"refresh\""), "{page}");
    for id in [
        order.charge_id.as_deref().unwrap(),
        order.email_id.as_deref().unwrap(),
        order.fulfillment_request_id.as_deref().unwrap(),
    ] {
        assert!(page.contains(id), "{id}: {page}");
    }
    assert!(page.contains("CompleteOrderJob"), "history: {page}");
    assert!(
        page.contains("RequestOrderFulfillmentJob"),
        "history: {page}"
    );

    let (status, body) = web.json(&to).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], 1);
    assert_eq!(body["state"], "fulfilled");
    assert_eq!(body["in_progress"], false);
    assert_eq!(body["steps"]["payment"]["status"], "done");
    assert_eq!(body["steps"]["payment"]["id"], json!(order.charge_id));
    assert_eq!(body["steps"]["email"]["id"], json!(order.email_id));
    assert_eq!(
        body["steps"]["fulfillment"]["id"],
        json!(order.fulfillment_request_id)
    );
    assert_eq!(body["history"].as_array().unwrap().len(), 3);
    assert_eq!(body["history"][0]["outcome"], "done");
    assert_eq!(body["address"], address);

    let (_, list) = web.json("/orders").await;
    assert_eq!(list["orders"][0]["id"], 1);
    assert_eq!(list["orders"][0]["state"], "fulfilled");
    let (_, page) = web.page("/orders").await;
    assert!(page.contains("<a href=\"/orders/1\">1</a>"), "{page}");
    let (_, index) = web.json("/").await;
    assert_eq!(index["orders"], 1);
}

#[tokio::test]
async fn a_declined_order_says_why() {
    let web = web(Knobs::safe()).await;
    let new = NewOrder {
        product_id: 1,
        quantity: 1,
        email: "pat@example.com".into(),
        address: "123 Main St".into(),
        amount_cents: Some(9999),
    };
    let placed = place_order(&web.lab.shop, &web.lab.runner, &new)
        .await
        .unwrap();
    web.drain().await;
    let path = format!("/orders/{}", placed.order.id);
    let (_, page) = web.page(&path).await;
    assert!(
        page.contains("Payment Declined: Insufficient funds"),
        "{page}"
    );
    assert!(
        page.contains("Not sent: the payment was declined"),
        "{page}"
    );
    assert!(!page.contains("http-equiv=\"refresh\""), "{page}");
    let (_, body) = web.json(&path).await;
    assert_eq!(body["state"], "declined");
    assert_eq!(body["steps"]["payment"]["status"], "declined");
    assert_eq!(body["steps"]["email"]["status"], "skipped");
    assert_eq!(body["in_progress"], false);
}

#[tokio::test]
async fn a_bad_form_comes_back_with_its_errors_and_values() {
    let web = web(Knobs::safe()).await;
    let cases: [([(&str, &str); 4], &str); 5] = [
        (
            order_fields("1", "1", "  ", "<b>Main</b> St"),
            "Email can't be blank",
        ),
        (
            order_fields("1", "0", "pat@example.com", "1 Main St"),
            "Quantity must be greater than 0",
        ),
        (
            order_fields("2", "5", "pat@example.com", "1 Main St"),
            "Quantity is more than what is in stock",
        ),
        (
            order_fields("1", "abc", "pat@example.com", "1 Main St"),
            "Quantity is not a number",
        ),
        (
            order_fields("999", "1", "pat@example.com", "1 Main St"),
            "Product must exist",
        ),
    ];
    for (fields, message) in cases {
        let response = web.post_form("/orders", &fields).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let page = response.text().await.unwrap();
        let escaped = html_escape::encode_quoted_attribute(message);
        assert!(page.contains(escaped.as_ref()), "{message}: {page}");
        assert!(page.contains("prohibited this order from being saved"));
        // The values come back as typed (escaped).
        let quantity = format!("value=\"{}\"", fields[1].1);
        assert!(page.contains(&quantity), "{quantity}: {page}");
        assert!(page.contains("name=\"order[address]\""));
    }
    // The address with markup is kept, escaped.
    let response = web
        .post_form("/orders", &order_fields("1", "1", "", "<b>Main</b> St"))
        .await;
    let page = response.text().await.unwrap();
    assert!(
        page.contains("value=\"&lt;b&gt;Main&lt;/b&gt; St\""),
        "{page}"
    );
    // An empty body is all blanks, not a crash.
    let response = web.post_form("/orders", &[]).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(web.lab.shop.store.count_orders().await.unwrap(), 0);
}

#[tokio::test]
async fn orders_can_be_placed_with_json() {
    let web = web(Knobs::safe()).await;
    let response = web
        .post_json(
            "/orders",
            json!({"product_id": 1, "quantity": "2", "email": "pat@example.com", "address": "1 Main St"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(location(&response), "/orders/1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], 1);
    assert_eq!(body["quantity"], 2);
    assert_eq!(body["amount_cents"], 24600);
    assert_eq!(body["state"], "placed");
    assert_eq!(body["in_progress"], true);

    let response = web
        .post_json(
            "/orders",
            json!({"product_id": 1, "quantity": "abc", "email": "", "address": "x"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    let messages: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["full_message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        ["Quantity is not a number", "Email can't be blank"]
    );

    let response = web
        .http
        .post(format!("{}/orders", web.url))
        .header(CONTENT_TYPE, "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("not JSON"));
}

#[tokio::test]
async fn unknown_orders_and_routes_are_404() {
    let web = web(Knobs::safe()).await;
    for path in ["/orders/999", "/orders/abc", "/orders/-1", "/nowhere"] {
        let (status, page) = web.page(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(page.contains("Not Found"), "{path}: {page}");
        let (status, body) = web.json(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    let (_, page) = web.page("/orders/%3Cb%3E").await;
    assert!(!page.contains("<b>"), "{page}");
    let (_, body) = web.json("/orders/999").await;
    assert_eq!(body["error"], "order 999 not found");
}

#[tokio::test]
async fn the_jobs_page_shows_retries_and_its_buttons_work() {
    let web = web(Knobs::safe()).await;
    web.fault(
        Service::Payments,
        json!({"faults": [{"mode": "crash", "calls": 1}]}),
    );
    web.order_via_form("1 Main St").await;
    let (_, body) = web.json("/jobs").await;
    assert_eq!(body["queues"][0], json!({"name": "high", "size": 1}));

    assert!(matches!(web.run_one().await, JobOutcome::Failed(_)));
    let (status, body) = web.json("/jobs").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["processed"], 1);
    assert_eq!(body["failed"], 1);
    assert_eq!(body["queues"][0]["size"], 0);
    let retry = &body["retries"][0];
    assert_eq!(retry["class"], "CompleteOrderJob");
    assert_eq!(retry["args"], json!([1]));
    assert_eq!(retry["retry_count"], 0);
    assert!(retry["error_class"].is_string(), "{retry}");
    assert!(retry["error_message"].as_str().unwrap().contains("503"));
    assert!(retry["at_ms"].as_u64().unwrap() > body["now_ms"].as_u64().unwrap());
    let jid = retry["jid"].as_str().unwrap().to_string();

    let (_, page) = web.page("/jobs").await;
    assert!(page.contains("Processed: <strong>1</strong>"), "{page}");
    assert!(page.contains("Failed: <strong>1</strong>"), "{page}");
    assert!(page.contains("CompleteOrderJob"));
    assert!(page.contains(&format!("action=\"/jobs/retry/{jid}/retry\"")));
    assert!(page.contains(&format!("action=\"/jobs/retry/{jid}/delete\"")));
    assert!(page.contains("Retry now") && page.contains("Delete"));
    // The order's page says it is waiting for a retry.
    let (_, order_page) = web.page("/orders/1").await;
    assert!(
        order_page.contains("CompleteOrderJob failed"),
        "{order_page}"
    );
    assert!(order_page.contains("http-equiv=\"refresh\""));

    // Retry now: back on its queue.
    let response = web
        .post_form(&format!("/jobs/retry/{jid}/retry"), &[])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/jobs");
    let (_, body) = web.json("/jobs").await;
    assert_eq!(body["retries"], json!([]));
    assert_eq!(body["queues"][0]["size"], 1);
    // It is no longer in the set.
    let response = web
        .post_form(&format!("/jobs/retry/{jid}/retry"), &[])
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // Fails again, then is deleted from the retry set.
    web.fault(
        Service::Payments,
        json!({"faults": [{"mode": "crash", "calls": 1}]}),
    );
    assert!(matches!(web.run_one().await, JobOutcome::Failed(_)));
    let (_, body) = web.json("/jobs").await;
    assert_eq!(body["retries"][0]["retry_count"], 1);
    let response = web
        .post_form(&format!("/jobs/retry/{jid}/delete"), &[])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (_, body) = web.json("/jobs").await;
    assert_eq!(body["retries"], json!([]));
    assert_eq!(web.drain().await, 0, "deleted: nothing left to run");
}

#[tokio::test]
async fn dead_jobs_can_be_retried_or_deleted_and_bad_addresses_are_404() {
    let web = web(Knobs::safe()).await;
    let client = web.lab.runner.client();
    let jid = client
        .push("CompleteOrderJob", vec![json!(424242)], "high")
        .await
        .unwrap();
    assert!(matches!(web.run_one().await, JobOutcome::Failed(_)));
    let (_, body) = web.json("/jobs").await;
    let dead = &body["dead"][0];
    assert_eq!(dead["jid"], jid.as_str());
    assert_eq!(dead["args"], json!([424242]));
    assert!(dead["error_message"]
        .as_str()
        .unwrap()
        .contains("Couldn't find Order"));
    let (_, page) = web.page("/jobs").await;
    assert!(page.contains(&format!("action=\"/jobs/dead/{jid}/retry\"")));
    assert!(page.contains("Couldn&#x27;t find Order"), "{page}");

    let response = web.post_form(&format!("/jobs/dead/{jid}/retry"), &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (_, body) = web.json("/jobs").await;
    assert_eq!(body["dead"], json!([]));
    assert_eq!(body["queues"][0]["size"], 1);

    assert!(matches!(web.run_one().await, JobOutcome::Failed(_)));
    let response = web
        .post_form(&format!("/jobs/dead/{jid}/delete"), &[])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (_, body) = web.json("/jobs").await;
    assert_eq!(body["dead"], json!([]));

    for path in [
        format!("/jobs/bogus/{jid}/retry"),
        format!("/jobs/dead/{jid}/delete"),
        "/jobs/retry/nope/retry".to_string(),
        "/jobs/dead/nope/frobnicate".to_string(),
    ] {
        let response = web.post_form(&path, &[]).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let response = web
            .http
            .post(format!("{}{path}", web.url))
            .header(ACCEPT, "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].is_string(), "{path}");
    }
}

#[tokio::test]
async fn the_jobs_page_shows_processes_and_busy_jobs_escaped() {
    let web = web(Knobs::safe()).await;
    let runner = &web.lab.runner;
    let job = runner.client().build(
        "<b>Evil</b>Job",
        vec![json!("<script>x</script>")],
        "default",
    );
    let now = runner.clock().now_ms();
    runner
        .backend()
        .heartbeat(
            ProcessInfo {
                identity: "old-box:1:0".into(),
                hostname: "old-box".into(),
                started_at_ms: now - 60_000,
                beat_ms: now - 2_000,
                concurrency: 5,
                queues: vec!["high".into(), "default".into()],
                busy: 1,
                code_version: "v0.9-stale".into(),
            },
            vec![BusyJob {
                process: "old-box:1:0".into(),
                started_at_ms: now - 1_000,
                job,
            }],
        )
        .await
        .unwrap();
    let (_, body) = web.json("/jobs").await;
    assert_eq!(body["processes"][0]["identity"], "old-box:1:0");
    assert_eq!(body["processes"][0]["code_version"], "v0.9-stale");
    assert_eq!(body["processes"][0]["concurrency"], 5);
    assert_eq!(body["busy"][0]["job"]["class"], "<b>Evil</b>Job");
    let (_, page) = web.page("/jobs").await;
    assert!(page.contains("v0.9-stale"), "{page}");
    assert!(page.contains("2.0 s ago"), "heartbeat: {page}");
    assert!(page.contains("&lt;b&gt;Evil&lt;/b&gt;Job"), "{page}");
    assert!(!page.contains("<b>Evil") && !page.contains("<script>x"));
}

/// `/metrics`, scraped: the queue before the jobs run, then after a drain
/// through an email crash, the attempts by class and the orders by state.
#[tokio::test]
async fn metrics_count_jobs_by_class_and_orders_by_state() {
    let web = web(Knobs::safe()).await;
    let url = format!("{}/metrics", web.url);
    web.fault(
        Service::Email,
        json!({"faults": [{"mode": "crash", "calls": 1}]}),
    );
    web.order_via_form("1 Main St").await;
    let m = scrape(&web.http, &url).await;
    assert_eq!(m.value("idemlab_queue_size", &[("queue", "high")]), 1.0);
    assert_eq!(m.value("idemlab_queue_size", &[("queue", "default")]), 0.0);
    assert_eq!(m.value("idemlab_orders", &[("state", "placed")]), 1.0);
    assert_eq!(
        m.sum("idemlab_jobs_processed_total", &[]),
        0.0,
        "{}",
        m.text
    );

    assert_eq!(web.drain().await, 4, "charge, email twice, fulfilment");
    let (_, order) = web.json("/orders/1").await;
    assert_eq!(order["state"], "fulfilled", "{order}");
    let m = scrape(&web.http, &url).await;
    let jobs = |family: &str, class: &str| {
        m.get(&format!("idemlab_jobs_{family}_total"), &[("class", class)])
            .unwrap_or(0.0)
    };
    for (class, processed, failed, retried) in [
        ("CompleteOrderJob", 1.0, 0.0, 0.0),
        ("SendOrderNotificationEmailJob", 2.0, 1.0, 1.0),
        ("RequestOrderFulfillmentJob", 1.0, 0.0, 0.0),
    ] {
        assert_eq!(jobs("processed", class), processed, "{class}:\n{}", m.text);
        assert_eq!(jobs("failed", class), failed, "{class}:\n{}", m.text);
        assert_eq!(jobs("retried", class), retried, "{class}:\n{}", m.text);
    }
    assert_eq!(
        m.sum("idemlab_jobs_processed_total", &[]),
        4.0,
        "{}",
        m.text
    );
    assert_eq!(m.sum("idemlab_jobs_dead_total", &[]), 0.0, "{}", m.text);
    assert_eq!(m.type_of("idemlab_jobs_processed_total"), Some("counter"));
    for state in ["placed", "charged", "declined", "emailed"] {
        assert_eq!(
            m.value("idemlab_orders", &[("state", state)]),
            0.0,
            "{state}"
        );
    }
    assert_eq!(m.value("idemlab_orders", &[("state", "fulfilled")]), 1.0);
    assert_eq!(m.type_of("idemlab_orders"), Some("gauge"));
    assert_eq!(m.value("idemlab_queue_size", &[("queue", "high")]), 0.0);
    for set in ["retry", "scheduled", "dead"] {
        assert_eq!(
            m.value(&format!("idemlab_{set}_set_size"), &[]),
            0.0,
            "{set}"
        );
    }
    assert_eq!(m.value("idemlab_backend_processed_total", &[]), 4.0);
    assert_eq!(m.value("idemlab_backend_failed_total", &[]), 1.0);
    assert_eq!(m.value("idemlab_queue_backend_up", &[]), 1.0);
    assert_eq!(m.value("idemlab_store_up", &[]), 1.0);

    // A reset empties the store and the queues; the job counters stay.
    let response = web.post_form("/reset", &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let m = scrape(&web.http, &url).await;
    assert_eq!(
        m.sum("idemlab_jobs_processed_total", &[]),
        4.0,
        "{}",
        m.text
    );
    assert_eq!(m.value("idemlab_orders", &[("state", "fulfilled")]), 0.0);
    assert_eq!(m.value("idemlab_backend_processed_total", &[]), 0.0);
}

/// A store that cannot be read leaves its family out and says so in
/// `idemlab_store_up`; the rest is still scraped.
#[tokio::test]
async fn metrics_without_a_store_say_so_and_keep_the_rest() {
    let web = web(Knobs::safe()).await;
    web.lab.shop.store.close().await;
    let m = scrape(&web.http, &format!("{}/metrics", web.url)).await;
    assert_eq!(m.value("idemlab_store_up", &[]), 0.0, "{}", m.text);
    assert!(m.type_of("idemlab_orders").is_none(), "{}", m.text);
    assert_eq!(m.value("idemlab_queue_backend_up", &[]), 1.0);
    assert_eq!(m.value("idemlab_queue_size", &[("queue", "high")]), 0.0);
}

#[tokio::test]
async fn an_inline_failure_is_shown_on_the_order_page() {
    let web = web(Knobs {
        enqueue: Enqueue::Inline,
        ..Knobs::safe()
    })
    .await;
    web.fault(
        Service::Payments,
        json!({"faults": [{"mode": "crash", "calls": 1}]}),
    );
    let to = web.order_via_form("1 Main St").await;
    let (_, page) = web.page(&to).await;
    assert!(page.contains("id=\"problem\""), "{page}");
    assert!(page.contains("nothing will retry it"), "{page}");
    assert!(!page.contains("http-equiv=\"refresh\""), "stuck: {page}");
    let (_, body) = web.json(&to).await;
    assert!(body["problem"].as_str().unwrap().contains("inline"));
    assert_eq!(body["steps"]["payment"]["status"], "stopped");
}

#[tokio::test]
async fn a_web_process_death_is_a_500_that_says_what_happened() {
    let web = web(Knobs {
        enqueue: Enqueue::AfterCommit,
        ..Knobs::safe()
    })
    .await;
    web.lab.shop.deaths.plan(Step::Commit, 1);
    let response = web
        .post_form(
            "/orders",
            &order_fields("1", "1", "pat@example.com", "1 Main St"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let page = response.text().await.unwrap();
    assert!(page.contains("The web process died"), "{page}");
    assert!(page.contains("the order is lost"), "{page}");
    assert_eq!(web.lab.shop.store.count_orders().await.unwrap(), 1);
}

/// A browser's order-form submission with `headers` added.
async fn order_form_with(web: &Web, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = web
        .http
        .post(format!("{}/orders", web.url))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(encode(&order_fields(
            "1",
            "1",
            "pat@example.com",
            "1 Main St",
        )));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn posts_from_another_site_are_refused() {
    let web = web(Knobs::safe()).await;
    let other_port = format!(
        "http://127.0.0.1:{}",
        web._web_server.addr.port().wrapping_add(1)
    );
    for headers in [
        &[("origin", "https://evil.example")][..],
        &[("origin", other_port.as_str())][..],
        &[("origin", "null")][..],
        &[("sec-fetch-site", "cross-site")][..],
        &[("sec-fetch-site", "same-site")][..],
    ] {
        let response = order_form_with(&web, headers).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{headers:?}");
        let page = response.text().await.unwrap();
        assert!(page.contains("Forbidden"), "{page}");
        assert!(page.contains("may not change this server"), "{page}");
    }
    // A script asking for JSON gets the reason as JSON.
    let response = web
        .http
        .post(format!("{}/reset", web.url))
        .header(ACCEPT, "application/json")
        .header(ORIGIN, "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("https://evil.example"),
        "{body}"
    );
    assert_eq!(web.lab.shop.store.count_orders().await.unwrap(), 0);
    // The lab's own pages post with their own origin; scripts with none.
    let own = [
        ("origin", web.url.as_str()),
        ("sec-fetch-site", "same-origin"),
    ];
    let response = order_form_with(&web, &own).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let response = order_form_with(&web, &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(web.lab.shop.store.count_orders().await.unwrap(), 2);
}

/// `GET /` with `Host: host`: its status and body.
async fn index_as(web: &Web, host: &str) -> (StatusCode, String) {
    let response = web
        .http
        .get(format!("{}/", web.url))
        .header(HOST, host)
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn pages_answer_only_to_this_servers_addresses() {
    let web = web(Knobs::safe()).await;
    let port = web._web_server.addr.port();
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let (status, _) = index_as(&web, &host).await;
        assert_eq!(status, StatusCode::OK, "{host}");
    }
    let host = format!("evil.example:{port}");
    let (status, page) = index_as(&web, &host).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("Forbidden"), "{page}");
    assert!(page.contains("--allowed-host evil.example"), "{page}");
    let response = web
        .http
        .get(format!("{}/orders", web.url))
        .header(HOST, &host)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.unwrap();
    let expected = format!(
        "Host `{host}` is not this server's address; \
         start it with --allowed-host evil.example to allow it"
    );
    assert!(
        body["error"].as_str().unwrap().starts_with(&expected),
        "{body}"
    );
    let allowed = web_with(
        Knobs::safe(),
        None,
        WebOptions {
            allowed_hosts: ["evil.example".parse().unwrap()].into_iter().collect(),
            ..WebOptions::default()
        },
        None,
    )
    .await;
    let (status, _) = index_as(&allowed, &host).await;
    assert_eq!(status, StatusCode::OK);
}

/// The README's walkthrough: the naive monolithic pipeline, one email
/// crash, an order placed through the form and its jobs run to the end
/// (the retry charges again). The web lab and the order's page.
async fn double_charged_order() -> (Web, String) {
    let web = web(Knobs {
        structure: idemlab::pipeline::Structure::Monolithic,
        charge: idemlab::pipeline::ChargeDedup::None,
        ..Knobs::safe()
    })
    .await;
    web.fault(
        Service::Email,
        json!({"faults": [{"mode": "crash", "calls": 1}]}),
    );
    let path = web.order_via_form("1 Main St").await;
    web.drain().await;
    (web, path)
}

#[tokio::test]
async fn the_order_page_shows_a_double_charge_from_the_payments_ledger() {
    let (web, path) = double_charged_order().await;
    let (status, page) = web.page(&path).await;
    assert_eq!(status, 200);
    let row = |id: &str| {
        let start = page.find(&format!("id=\"step-{id}\"")).unwrap();
        let rest = &page[start..];
        rest[..rest.find("</tr>").unwrap()].to_string()
    };
    assert!(
        row("payment").contains("⚠ 2 × charge"),
        "{}",
        row("payment")
    );
    assert!(row("email").contains("1 × email"), "{}", row("email"));
    let (_, order) = web.json(&path).await;
    assert_eq!(
        order["ledger"],
        json!({"payments": 2, "email": 1, "fulfillment": 1})
    );
}

/// The `<li>`s of the order page's timeline, in order.
fn timeline_rows(page: &str) -> Vec<&str> {
    let start = page.find("<section id=\"timeline\">").expect("a timeline");
    let section = &page[start..];
    let section = &section[..section.find("</section>").unwrap()];
    section
        .split("<li ")
        .skip(1)
        .map(|row| &row[..row.find("</li>").unwrap()])
        .collect()
}

#[tokio::test]
async fn the_timeline_shows_why_an_order_was_charged_twice() {
    let (web, path) = double_charged_order().await;
    let (_, page) = web.page(&path).await;
    let rows = timeline_rows(&page);
    // What each row is: an attempt and its outcome, or a call and what the
    // provider did, in time order.
    let kinds: Vec<String> = rows
        .iter()
        .map(|row| {
            let attr = |name: &str| {
                let from = row
                    .find(&format!("{name}=\""))
                    .map(|i| i + name.len() + 2)?;
                Some(row[from..from + row[from..].find('"')?].to_string())
            };
            match attr("data-outcome") {
                Some(outcome) => format!("attempt {outcome}"),
                None => format!(
                    "{} {} {}",
                    attr("data-service").unwrap(),
                    attr("data-operation").unwrap(),
                    attr("data-provider").unwrap()
                ),
            }
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "attempt failed",
            "payments charge performed",
            "email send not-reached",
            "attempt done",
            "payments charge performed",
            "email send performed",
            "fulfillment request performed",
        ],
        "{page}"
    );
    assert!(rows[0].contains("Email::ServerError"), "{}", rows[0]);
    assert!(rows[2].contains("crash (rule 0)"), "{}", rows[2]);
    assert!(
        rows[2].contains(" fault\""),
        "the fired fault is marked: {}",
        rows[2]
    );
    // Only the second charge is marked, and said to be one.
    let marked: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].contains(" dup\""))
        .collect();
    assert_eq!(marked, [4], "{page}");
    assert!(
        rows[4].contains("⚠ 2nd charge for this order"),
        "{}",
        rows[4]
    );
    assert!(
        rows[4].contains("(attempt 2 of CompleteOrderJob)"),
        "{}",
        rows[4]
    );

    let (_, order) = web.json(&path).await;
    let timeline = order["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 7, "{order}");
    let charges: Vec<&Value> = timeline
        .iter()
        .filter(|e| e["kind"] == "call" && e["service"] == "payments")
        .collect();
    assert_eq!(charges[0]["effect"], 1);
    assert_eq!(charges[1]["effect"], 2);
    assert_eq!(charges[0]["made_by"]["attempt"], 1);
    assert_eq!(charges[1]["made_by"]["attempt"], 2);
    assert_eq!(charges[1]["provider"]["did"], "performed");
    assert!(
        charges[1]["says"]
            .as_str()
            .unwrap()
            .starts_with("payments charge without an idempotency key: performed ch_"),
        "{}",
        charges[1]
    );
    assert_eq!(order["calls_note"], Value::Null);
}

#[tokio::test]
async fn the_timeline_shows_a_replayed_charge_and_no_duplicate() {
    let web = web(Knobs::safe()).await;
    // The charge is made, then the client hears 503: the retry's key gets
    // the first charge back.
    web.fault(
        Service::Payments,
        json!({"faults": [{"mode": "send-then-crash", "calls": 1}]}),
    );
    let path = web.order_via_form("1 Main St").await;
    web.drain().await;
    let (_, order) = web.json(&path).await;
    let charges: Vec<&Value> = order["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "call" && e["service"] == "payments")
        .collect();
    let did: Vec<&Value> = charges.iter().map(|c| &c["provider"]["did"]).collect();
    assert_eq!(did, ["performed", "replayed"], "{order}");
    assert_eq!(charges[0]["told"]["status"], 503, "{}", charges[0]);
    assert!(charges[1]["idempotency_key"].is_string(), "{}", charges[1]);
    assert_eq!(order["ledger"]["payments"], 1);
    let (_, page) = web.page(&path).await;
    assert!(!page.contains(" dup\""), "{page}");
    assert!(page.contains("data-provider=\"replayed\""), "{page}");
}

#[tokio::test]
async fn without_the_call_log_the_timeline_has_the_attempts_and_says_why() {
    let web = web_with(
        Knobs::safe(),
        None,
        WebOptions::default(),
        Some("http://127.0.0.1:1"),
    )
    .await;
    let path = web.order_via_form("1 Main St").await;
    web.drain().await;
    let (status, page) = web.page(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("No provider calls shown"), "{page}");
    assert!(page.contains("(ledger not readable)"), "{page}");
    let rows = timeline_rows(&page);
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r.starts_with("class=\"attempt")),
        "{page}"
    );
    let (_, order) = web.json(&path).await;
    assert!(
        order["calls_note"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1:1"),
        "{order}"
    );
    assert_eq!(order["ledger"]["payments"], Value::Null);
}
