//! `GET /metrics`, scraped as Prometheus would: calls by service, operation,
//! what the provider did and what the client was told; faults fired by
//! mode; idempotent replays; ledger sizes. Counters survive `POST /reset`,
//! gauges follow it; each server counts its own calls only.

use fake_services_test_support as common;

use common::scrape::{scrape, Scrape};
use common::{charge_body, email_body, send_json, spawn, spawn_with, TestFakes};
use fake_services::http::HttpOptions;
use fake_services::Service;
use serde_json::json;

async fn metrics(tf: &TestFakes) -> Scrape {
    scrape(&tf.client, &tf.url("/metrics")).await
}

const CALLS: &str = "idemlab_fakes_calls_total";

fn calls(scrape: &Scrape, service: &str, operation: &str, outcome: &str, told: &str) -> f64 {
    scrape.value(
        CALLS,
        &[
            ("service", service),
            ("operation", operation),
            ("outcome", outcome),
            ("told", told),
        ],
    )
}

#[tokio::test]
async fn a_crash_a_retry_a_replay_and_a_header_fault_are_counted_exactly() {
    let tf = spawn().await;
    tf.set_behavior(
        Service::Payments,
        json!({"faults": [{"mode": "crash", "calls": 1}]}),
    )
    .await;
    let keyed = || {
        tf.post_charge(&charge_body(1, 500))
            .header("Idempotency-Key", "charge-1")
    };
    assert_eq!(send_json(keyed()).await.0, 503, "the crash rule");
    assert_eq!(send_json(keyed()).await.0, 201, "the retry charges");
    let (status, _) = send_json(keyed()).await;
    assert_eq!(status, 201, "the key's replay");
    let email = tf
        .post_email(&email_body("pat@example.com", "order-confirmation", 1))
        .header("X-Crash", "true");
    // A header fault answers with no body.
    let crashed = email.send().await.unwrap();
    assert_eq!(crashed.status(), 503, "X-Crash: sent, then 503");
    assert_eq!(tf.get_json("/payments/charges?order_id=1").await.0, 200);

    let m = metrics(&tf).await;
    assert_eq!(m.type_of(CALLS), Some("counter"));
    assert_eq!(calls(&m, "payments", "charge", "not-reached", "5xx"), 1.0);
    assert_eq!(calls(&m, "payments", "charge", "performed", "2xx"), 1.0);
    assert_eq!(calls(&m, "payments", "charge", "replayed", "2xx"), 1.0);
    assert_eq!(calls(&m, "email", "send", "performed", "5xx"), 1.0);
    assert_eq!(calls(&m, "payments", "search", "answered", "2xx"), 1.0);
    assert_eq!(m.sum(CALLS, &[]), 5.0, "no other call:\n{}", m.text);

    let faults = "idemlab_fakes_faults_fired_total";
    let fault = |service, mode| m.value(faults, &[("service", service), ("mode", mode)]);
    assert_eq!(fault("payments", "crash"), 1.0);
    assert_eq!(fault("email", "send-then-crash"), 1.0);
    assert_eq!(m.sum(faults, &[]), 2.0, "{}", m.text);

    let replays = "idemlab_fakes_idempotent_replays_total";
    assert_eq!(m.value(replays, &[("service", "payments")]), 1.0);
    assert_eq!(m.sum(replays, &[]), 1.0);

    let records = "idemlab_fakes_ledger_records";
    assert_eq!(m.type_of(records), Some("gauge"));
    assert_eq!(m.value(records, &[("service", "payments")]), 1.0);
    assert_eq!(m.value(records, &[("service", "email")]), 1.0);
    assert_eq!(m.value(records, &[("service", "fulfillment")]), 0.0);
    assert_eq!(m.value(records, &[("service", "error-catcher")]), 0.0);

    // A reset empties the ledgers; the counters go on counting.
    let reset = tf
        .client
        .post(tf.url("/reset"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    assert_eq!(send_json(tf.charge(2)).await.0, 201);
    let m = metrics(&tf).await;
    assert_eq!(calls(&m, "payments", "charge", "performed", "2xx"), 2.0);
    assert_eq!(m.sum(CALLS, &[]), 6.0, "{}", m.text);
    assert_eq!(m.value(records, &[("service", "payments")]), 1.0);
    assert_eq!(m.value(records, &[("service", "email")]), 0.0);
}

#[tokio::test]
async fn each_server_counts_its_own_calls() {
    let (a, b) = (spawn().await, spawn().await);
    for order in 1..=3 {
        assert_eq!(send_json(a.charge(order)).await.0, 201);
    }
    assert_eq!(metrics(&a).await.sum(CALLS, &[]), 3.0);
    let other = metrics(&b).await;
    assert_eq!(other.sum(CALLS, &[]), 0.0, "{}", other.text);
    assert_eq!(
        other.value("idemlab_fakes_ledger_records", &[("service", "payments")]),
        0.0
    );
}

#[tokio::test]
async fn metrics_need_no_control_token_and_take_any_scrapers_accept() {
    let tf = spawn_with(HttpOptions {
        control_token: Some("sesame".into()),
        ..Default::default()
    })
    .await;
    // `scrape` asks for OpenMetrics or text/plain only, with no token.
    metrics(&tf).await;
    for accept in ["text/plain", "application/openmetrics-text", "*/*"] {
        let response = tf
            .client
            .get(tf.url("/metrics"))
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{accept}");
    }
    // The JSON routes keep their content check.
    let response = tf
        .client
        .get(tf.url("/payments/charges"))
        .header("accept", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 406);
}
