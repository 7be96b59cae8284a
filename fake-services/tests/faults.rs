//! Every server-side fault mode and limit, over real HTTP: what the client
//! gets, and what the ledger says really happened.

use fake_services_test_support as common;

use common::{
    email_body, error_mentions, fulfillment_body, send_json, spawn, status_and_json, TestFakes,
    START_MS,
};
use fake_services::Service;
use serde_json::json;

async fn charge_status(tf: &TestFakes, order_id: u64) -> u16 {
    tf.charge(order_id).send().await.unwrap().status().as_u16()
}

fn send_email(tf: &TestFakes) -> reqwest::RequestBuilder {
    tf.post_email(&email_body("pat@example.com", "order-confirmation", 7))
}

fn request_fulfillment(tf: &TestFakes) -> reqwest::RequestBuilder {
    tf.put_fulfillment(&fulfillment_body(7, Some("1 Main St")))
}

fn notify_error(tf: &TestFakes) -> reqwest::RequestBuilder {
    tf.put_notification(&json!({"exception_class": "RuntimeError", "exception_message": "boom"}))
}

/// Makes `rule` the only fault rule of `service`.
async fn one_rule(tf: &TestFakes, service: Service, rule: serde_json::Value) {
    tf.set_behavior(service, json!({ "faults": [rule] })).await;
}

/// Puts one `mode` rule for one call on payments and makes a charge: the
/// connection is closed without an answer, not left hanging.
async fn a_charge_is_dropped_by_one_rule_of(tf: &TestFakes, mode: &str) {
    one_rule(tf, Service::Payments, json!({"mode": mode, "calls": 1})).await;
    let err = tf
        .charge(1)
        .send()
        .await
        .expect_err(&format!("no response after {mode}"));
    assert!(!err.is_timeout(), "closed, not hung: {err:?}");
}

// ---------------------------------------------------------------- modes

#[tokio::test]
async fn crash_answers_503_naming_the_rule_and_performs_nothing() {
    let tf = spawn().await;
    one_rule(&tf, Service::Payments, json!({"mode": "crash"})).await;
    let response = tf.charge(1).send().await.unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "a rule's fault explains itself in JSON"
    );
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 503);
    let error = body["error"].as_str().expect("an error message");
    assert!(
        error.contains("payments rule 0") && error.contains("crash"),
        "{error}"
    );
    assert!(tf.ledger(Service::Payments).await.is_empty());

    // The message names the rule that decided, not merely the first one.
    tf.set_behavior(
        Service::Payments,
        json!({"faults": [{"mode": "throttle", "operations": ["search"]}, {"mode": "crash"}]}),
    )
    .await;
    let (status, body) = send_json(tf.charge(1)).await;
    assert_eq!(status, 503);
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("rule 1") && error.contains("crash"),
        "{error}"
    );
    assert!(tf.ledger(Service::Payments).await.is_empty());
}

#[tokio::test]
async fn crash_with_a_custom_status() {
    let tf = spawn().await;
    one_rule(
        &tf,
        Service::Payments,
        json!({"mode": "crash", "status": 500}),
    )
    .await;
    assert_eq!(charge_status(&tf, 1).await, 500);
    one_rule(
        &tf,
        Service::Payments,
        json!({"mode": "crash", "status": 504}),
    )
    .await;
    assert_eq!(charge_status(&tf, 1).await, 504);
    assert!(tf.ledger(Service::Payments).await.is_empty());
}

#[tokio::test]
async fn throttle_answers_429_with_retry_after() {
    let tf = spawn().await;
    one_rule(&tf, Service::Payments, json!({"mode": "throttle"})).await;
    let response = tf.charge(1).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    let (_, body) = status_and_json(response).await;
    assert!(error_mentions(&body, "throttle"), "{body}");

    one_rule(
        &tf,
        Service::Payments,
        json!({"mode": "throttle", "retry_after_s": 7}),
    )
    .await;
    let response = tf.charge(1).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    assert!(tf.ledger(Service::Payments).await.is_empty());

    // A successful answer carries no Retry-After.
    tf.set_behavior(Service::Payments, json!({})).await;
    let response = tf.charge(1).send().await.unwrap();
    assert_eq!(response.status(), 201);
    assert!(response.headers().get("retry-after").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_waits_until_the_clock_has_moved_sleep_ms() {
    let tf = spawn().await;
    one_rule(
        &tf,
        Service::Payments,
        json!({"mode": "slow", "sleep_ms": 300}),
    )
    .await;
    let request = tf.charge(1);
    let pending = tokio::spawn(async move { request.send().await.unwrap() });
    tf.wait_for_sleepers(1).await;

    tf.clock.advance(299);
    // A round trip through the server, then the charge must still be waiting.
    assert_eq!(tf.get_json("/payments/status").await.0, 200);
    assert!(
        !pending.is_finished(),
        "answered before sleep_ms had passed"
    );
    assert!(tf.ledger(Service::Payments).await.is_empty());
    assert_eq!(tf.clock.sleepers(), 1);

    tf.clock.advance(1);
    let response = pending.await.unwrap();
    assert_eq!(response.status(), 201, "slow alone lets the call through");
    let ledger = tf.ledger(Service::Payments).await;
    assert_eq!(ledger.len(), 1);
    assert_eq!(
        ledger[0]["created_at_ms"],
        START_MS + 300,
        "the provider ran after the latency"
    );
    assert_eq!(
        ledger[0]["told"],
        json!({"outcome": "response", "status": 201})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_then_crash_is_a_delayed_503() {
    let tf = spawn().await;
    tf.set_behavior(
        Service::Payments,
        json!({"faults": [{"mode": "slow", "sleep_ms": 500}, {"mode": "crash"}]}),
    )
    .await;
    let request = tf.charge(1);
    let pending = tokio::spawn(async move { request.send().await.unwrap() });
    tf.wait_for_sleepers(1).await;
    assert_eq!(tf.get_json("/payments/status").await.0, 200);
    assert!(!pending.is_finished(), "the crash came without the latency");
    tf.clock.advance(500);
    let (status, body) = status_and_json(pending.await.unwrap()).await;
    assert_eq!(status, 503);
    assert!(error_mentions(&body, "rule 1"), "{body}");
    assert!(tf.ledger(Service::Payments).await.is_empty());
    let view = tf.behavior(Service::Payments).await;
    assert_eq!(view["faults"][0]["state"]["hits"], 1);
    assert_eq!(view["faults"][1]["state"]["hits"], 1);
}

#[tokio::test]
async fn send_then_crash_performs_the_effect_then_answers_503() {
    let tf = spawn().await;
    one_rule(&tf, Service::Payments, json!({"mode": "send-then-crash"})).await;
    let (status, body) = send_json(tf.charge(1)).await;
    assert_eq!(status, 503);
    assert!(error_mentions(&body, "send-then-crash"), "{body}");
    assert!(
        body.get("charge_id").is_none(),
        "the client must not hear the charge"
    );
    let ledger = tf.ledger(Service::Payments).await;
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0]["status"], 201);
    assert_eq!(ledger[0]["response"]["status"], "success");
    assert_eq!(
        ledger[0]["told"],
        json!({"outcome": "response", "status": 503, "fault": "send-then-crash"})
    );

    one_rule(
        &tf,
        Service::Payments,
        json!({"mode": "send-then-crash", "status": 502}),
    )
    .await;
    assert_eq!(charge_status(&tf, 2).await, 502);
    let ledger = tf.ledger(Service::Payments).await;
    assert_eq!(ledger.len(), 2);
    assert_eq!(
        ledger[1]["told"],
        json!({"outcome": "response", "status": 502, "fault": "send-then-crash"})
    );
}

#[tokio::test]
async fn drop_before_closes_the_connection_and_performs_nothing() {
    let tf = spawn().await;
    a_charge_is_dropped_by_one_rule_of(&tf, "drop-before").await;
    assert!(tf.ledger(Service::Payments).await.is_empty());
    // The server is fine afterwards.
    assert_eq!(charge_status(&tf, 1).await, 201);
    assert_eq!(tf.ledger(Service::Payments).await.len(), 1);
}

#[tokio::test]
async fn drop_after_closes_the_connection_but_the_effect_happened() {
    let tf = spawn().await;
    a_charge_is_dropped_by_one_rule_of(&tf, "drop-after").await;
    let ledger = tf.ledger(Service::Payments).await;
    assert_eq!(
        ledger.len(),
        1,
        "exactly one effect, not retried by the client"
    );
    assert_eq!(ledger[0]["status"], 201);
    assert_eq!(ledger[0]["told"], json!({"outcome": "dropped"}));
    assert_eq!(charge_status(&tf, 2).await, 201);
    let ledger = tf.ledger(Service::Payments).await;
    assert_eq!(
        ledger[1]["told"],
        json!({"outcome": "response", "status": 201})
    );
}

// ---------------------------------------------------------------- limits

#[tokio::test]
async fn calls_limits_a_rule_to_the_next_n_calls() {
    let tf = spawn().await;
    let view = tf
        .set_behavior(
            Service::Payments,
            json!({"faults": [{"mode": "crash", "calls": 3}]}),
        )
        .await;
    assert_eq!(view["faults"][0]["state"]["spent"], false);
    assert_eq!(view["faults"][0]["state"]["remaining_calls"], 3);
    assert_eq!(charge_status(&tf, 1).await, 503);
    assert_eq!(charge_status(&tf, 1).await, 503);
    let view = tf.behavior(Service::Payments).await;
    assert_eq!(view["faults"][0]["state"]["hits"], 2);
    assert_eq!(view["faults"][0]["state"]["remaining_calls"], 1);
    assert_eq!(view["faults"][0]["state"]["spent"], false);
    assert_eq!(charge_status(&tf, 1).await, 503);
    assert_eq!(charge_status(&tf, 1).await, 201);
    assert_eq!(charge_status(&tf, 1).await, 201);

    let view = tf.behavior(Service::Payments).await;
    let rule = &view["faults"][0];
    assert_eq!(rule["mode"], "crash", "a spent rule stays visible");
    assert_eq!(rule["calls"], 3);
    assert_eq!(rule["state"]["spent"], true);
    assert_eq!(rule["state"]["hits"], 3);
    assert_eq!(rule["state"]["remaining_calls"], 0);
    assert_eq!(tf.ledger(Service::Payments).await.len(), 2);
}

/// 40 charges against a fresh server with one probabilistic crash rule:
/// which of them were faulted.
async fn faulted_pattern(probability: f64, seed: u64) -> Vec<bool> {
    let tf = spawn().await;
    let view = tf
        .set_behavior(
            Service::Payments,
            json!({"faults": [{"mode": "crash", "probability": probability, "seed": seed}]}),
        )
        .await;
    assert_eq!(view["faults"][0]["state"]["seed"], seed);
    let mut pattern = Vec::new();
    for order in 0..40 {
        let status = charge_status(&tf, order).await;
        assert!(status == 201 || status == 503, "unexpected {status}");
        pattern.push(status == 503);
    }
    let faulted = pattern.iter().filter(|f| **f).count();
    assert_eq!(
        tf.ledger(Service::Payments).await.len(),
        40 - faulted,
        "a faulted call has no effect"
    );
    assert_eq!(
        tf.behavior(Service::Payments).await["faults"][0]["state"]["hits"],
        faulted as u64
    );
    pattern
}

#[tokio::test]
async fn probability_with_a_seed_is_the_same_on_every_server() {
    let first = faulted_pattern(0.5, 1234).await;
    let second = faulted_pattern(0.5, 1234).await;
    assert_eq!(first, second, "same seed, same faults");
    let faulted = first.iter().filter(|f| **f).count();
    assert!(
        (5..=35).contains(&faulted),
        "{faulted} of 40 faulted at p=0.5"
    );
    let other = faulted_pattern(0.5, 98_765).await;
    assert_ne!(first, other, "another seed, other faults");

    assert_eq!(faulted_pattern(0.0, 1).await, vec![false; 40]);
    assert_eq!(faulted_pattern(1.0, 1).await, vec![true; 40]);
}

#[tokio::test]
async fn for_ms_applies_within_its_window_only() {
    let tf = spawn().await;
    let view = tf
        .set_behavior(
            Service::Payments,
            json!({"faults": [{"mode": "crash", "for_ms": 1000}]}),
        )
        .await;
    assert_eq!(view["faults"][0]["state"]["expires_at_ms"], START_MS + 1000);
    assert_eq!(charge_status(&tf, 1).await, 503);
    tf.clock.advance(999);
    assert_eq!(charge_status(&tf, 1).await, 503);
    assert_eq!(
        tf.behavior(Service::Payments).await["faults"][0]["state"]["spent"],
        false
    );
    tf.clock.advance(1);
    assert_eq!(charge_status(&tf, 1).await, 201);
    tf.clock.advance(60_000);
    assert_eq!(charge_status(&tf, 1).await, 201);
    let view = tf.behavior(Service::Payments).await;
    assert_eq!(view["faults"][0]["state"]["spent"], true);
    assert_eq!(view["faults"][0]["state"]["hits"], 2);
}

#[tokio::test]
async fn operations_limit_a_rule_to_the_named_operations() {
    let tf = spawn().await;
    one_rule(
        &tf,
        Service::Payments,
        json!({"mode": "crash", "operations": ["charge"]}),
    )
    .await;
    assert_eq!(tf.get_json("/payments/charges").await, (200, json!([])));
    assert_eq!(tf.get_json("/payments/charges?order_id=1").await.0, 200);
    assert_eq!(charge_status(&tf, 1).await, 503);
    assert_eq!(
        tf.behavior(Service::Payments).await["faults"][0]["state"]["hits"],
        1,
        "searches do not count as hits of a charge-only rule"
    );

    one_rule(
        &tf,
        Service::Payments,
        json!({"mode": "crash", "operations": ["search"]}),
    )
    .await;
    assert_eq!(charge_status(&tf, 1).await, 201);
    assert_eq!(tf.get_json("/payments/charges?order_id=1").await.0, 503);
    assert_eq!(tf.ledger(Service::Payments).await.len(), 1);

    // Both named: both fail.
    one_rule(
        &tf,
        Service::Payments,
        json!({"mode": "crash", "operations": ["charge", "search"]}),
    )
    .await;
    assert_eq!(charge_status(&tf, 1).await, 503);
    assert_eq!(tf.get_json("/payments/charges").await.0, 503);
}

#[tokio::test]
async fn the_first_rule_that_applies_decides() {
    let tf = spawn().await;
    tf.set_behavior(
        Service::Payments,
        json!({"faults": [{"mode": "throttle", "calls": 1}, {"mode": "crash"}]}),
    )
    .await;
    assert_eq!(charge_status(&tf, 1).await, 429);
    assert_eq!(charge_status(&tf, 1).await, 503);
    let view = tf.behavior(Service::Payments).await;
    assert_eq!(view["faults"][0]["state"]["hits"], 1);
    assert_eq!(
        view["faults"][1]["state"]["hits"], 1,
        "the second rule is not looked at while the first decides"
    );

    // The other order: the crash decides every time, the throttle never.
    tf.set_behavior(
        Service::Payments,
        json!({"faults": [{"mode": "crash"}, {"mode": "throttle", "calls": 1}]}),
    )
    .await;
    assert_eq!(charge_status(&tf, 1).await, 503);
    assert_eq!(charge_status(&tf, 1).await, 503);
    let view = tf.behavior(Service::Payments).await;
    assert_eq!(view["faults"][1]["state"]["hits"], 0);
    assert_eq!(view["faults"][1]["state"]["spent"], false);

    // Rules that do not apply (another operation, p=0, spent) pass the call on.
    tf.set_behavior(
        Service::Payments,
        json!({"faults": [
            {"mode": "crash", "operations": ["search"]},
            {"mode": "crash", "probability": 0.0, "seed": 3},
            {"mode": "drop-before", "for_ms": 10},
            {"mode": "throttle", "retry_after_s": 9},
        ]}),
    )
    .await;
    tf.clock.advance(10);
    let response = tf.charge(1).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "9");
}

// ---------------------------------------------------------------- services

#[tokio::test]
async fn faults_apply_to_email_send() {
    let tf = spawn().await;
    one_rule(
        &tf,
        Service::Email,
        json!({"mode": "send-then-crash", "calls": 1}),
    )
    .await;
    let (status, body) = send_json(send_email(&tf)).await;
    assert_eq!(status, 503);
    assert!(error_mentions(&body, "email rule 0"), "{body}");
    let ledger = tf.ledger(Service::Email).await;
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0]["response"]["status"], "queued");
    assert_eq!(
        ledger[0]["told"],
        json!({"outcome": "response", "status": 503, "fault": "send-then-crash"})
    );
    assert_eq!(send_email(&tf).send().await.unwrap().status(), 202);

    one_rule(&tf, Service::Email, json!({"mode": "crash"})).await;
    assert_eq!(send_email(&tf).send().await.unwrap().status(), 503);
    assert_eq!(tf.ledger(Service::Email).await.len(), 2);
    assert!(tf.ledger(Service::Payments).await.is_empty());
}

#[tokio::test]
async fn faults_apply_to_fulfillment_requests() {
    let tf = spawn().await;
    one_rule(
        &tf,
        Service::Fulfillment,
        json!({"mode": "drop-after", "calls": 1}),
    )
    .await;
    request_fulfillment(&tf)
        .send()
        .await
        .expect_err("dropped connection");
    let ledger = tf.ledger(Service::Fulfillment).await;
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0]["response"]["status"], "accepted");
    assert_eq!(ledger[0]["told"], json!({"outcome": "dropped"}));

    one_rule(
        &tf,
        Service::Fulfillment,
        json!({"mode": "throttle", "retry_after_s": 3}),
    )
    .await;
    let response = request_fulfillment(&tf).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "3");
    assert_eq!(tf.ledger(Service::Fulfillment).await.len(), 1);
}

#[tokio::test]
async fn faults_apply_to_error_catcher_notifications() {
    let tf = spawn().await;
    one_rule(
        &tf,
        Service::ErrorCatcher,
        json!({"mode": "crash", "status": 500, "calls": 1}),
    )
    .await;
    let (status, body) = send_json(notify_error(&tf)).await;
    assert_eq!(status, 500);
    assert!(error_mentions(&body, "error-catcher rule 0"), "{body}");
    assert!(tf.ledger(Service::ErrorCatcher).await.is_empty());
    assert_eq!(notify_error(&tf).send().await.unwrap().status(), 202);

    one_rule(&tf, Service::ErrorCatcher, json!({"mode": "drop-before"})).await;
    notify_error(&tf)
        .send()
        .await
        .expect_err("dropped connection");
    assert_eq!(tf.ledger(Service::ErrorCatcher).await.len(), 1);
}

#[tokio::test]
async fn faults_do_not_apply_to_status_polls() {
    let tf = spawn().await;
    for service in fake_services::Service::ALL {
        one_rule(&tf, service, json!({"mode": "crash", "calls": 1})).await;
        for _ in 0..3 {
            let (status, _) = tf.get_json(&format!("/{}/status", service.name())).await;
            assert_eq!(status, 200, "{service} status was faulted");
        }
        let view = tf.behavior(service).await;
        assert_eq!(view["faults"][0]["state"]["hits"], 0, "{service}");
        assert_eq!(view["faults"][0]["state"]["spent"], false, "{service}");
    }
    // The rule is still there for the first real call.
    assert_eq!(charge_status(&tf, 1).await, 503);
    assert_eq!(charge_status(&tf, 1).await, 201);
    assert_eq!(
        tf.get_json("/fulfillment/status").await,
        (200, json!({"num_requests": 0}))
    );
    assert_eq!(request_fulfillment(&tf).send().await.unwrap().status(), 503);
    assert_eq!(
        tf.get_json("/fulfillment/status").await,
        (200, json!({"num_requests": 0}))
    );
    assert_eq!(request_fulfillment(&tf).send().await.unwrap().status(), 202);
    assert_eq!(
        tf.get_json("/fulfillment/status").await,
        (200, json!({"num_requests": 1}))
    );
}

// ---------------------------------------------------------------- clearing

#[tokio::test]
async fn reset_clears_every_ledger_and_behaviour() {
    let tf = spawn().await;
    let keyed = tf
        .charge(1)
        .header("idempotency-key", "k")
        .send()
        .await
        .unwrap();
    assert_eq!(keyed.status(), 201);
    assert_eq!(send_email(&tf).send().await.unwrap().status(), 202);
    assert_eq!(request_fulfillment(&tf).send().await.unwrap().status(), 202);
    assert_eq!(notify_error(&tf).send().await.unwrap().status(), 202);
    for service in Service::ALL {
        assert_eq!(tf.ledger(service).await.len(), 1, "{service}");
        tf.set_behavior(
            service,
            json!({"faults": [{"mode": "crash"}], "search_lag_ms": 250}),
        )
        .await;
    }

    let (status, body) = send_json(tf.client.post(tf.url("/reset"))).await;
    assert_eq!((status, body), (200, json!({"status": "reset"})));

    for service in Service::ALL {
        assert!(tf.ledger(service).await.is_empty(), "{service} ledger");
        assert_eq!(
            tf.behavior(service).await,
            json!({"faults": [], "search_lag_ms": 0}),
            "{service} behaviour"
        );
    }
    // Keys are forgotten too: the same key charges anew.
    let keyed = tf
        .charge(1)
        .header("idempotency-key", "k")
        .send()
        .await
        .unwrap();
    assert_eq!(keyed.status(), 201);
    assert!(keyed.headers().get("idempotent-replayed").is_none());
    // No search lag left either.
    let (_, found) = tf.get_json("/payments/charges?order_id=1").await;
    assert_eq!(found.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn deleting_charges_clears_only_the_payments_records() {
    let tf = spawn().await;
    assert_eq!(charge_status(&tf, 1).await, 201);
    assert_eq!(charge_status(&tf, 2).await, 201);
    assert_eq!(send_email(&tf).send().await.unwrap().status(), 202);
    assert_eq!(request_fulfillment(&tf).send().await.unwrap().status(), 202);
    one_rule(
        &tf,
        Service::Payments,
        json!({"mode": "crash", "operations": ["charge"], "calls": 1}),
    )
    .await;

    assert_eq!(
        tf.delete_status("/payments/charges").await,
        200,
        "clearing is not faulted"
    );

    assert!(tf.ledger(Service::Payments).await.is_empty());
    assert_eq!(tf.get_json("/payments/charges").await, (200, json!([])));
    assert_eq!(tf.ledger(Service::Email).await.len(), 1);
    assert_eq!(tf.ledger(Service::Fulfillment).await.len(), 1);
    let view = tf.behavior(Service::Payments).await;
    assert_eq!(view["faults"].as_array().unwrap().len(), 1, "rules stay");
    assert_eq!(view["faults"][0]["state"]["hits"], 0);
    assert_eq!(charge_status(&tf, 3).await, 503);
    assert_eq!(charge_status(&tf, 3).await, 201);
}

// ------------------------------------------------- clients on virtual time

#[tokio::test]
async fn a_stated_client_timeout_is_kept_on_the_services_clock() {
    let tf = spawn().await;
    one_rule(
        &tf,
        Service::Payments,
        json!({"mode": "slow", "sleep_ms": 10000, "calls": 1}),
    )
    .await;
    // The client says it waits 5 s; the charge takes 10 s of virtual time.
    let call = tokio::spawn(tf.charge(1).header("X-Client-Timeout-Ms", "5000").send());
    // Both the client's wait and the slow call sleep on the clock.
    tf.wait_for_sleepers(2).await;
    tf.clock.advance(5_000);
    let response = call.await.unwrap().unwrap();
    assert_eq!(response.status().as_u16(), 504);
    assert_eq!(response.headers()["x-client-timed-out"], "true");
    let (_, body) = status_and_json(response).await;
    assert!(error_mentions(&body, "5000 ms"), "{body}");
    assert!(
        tf.ledger(Service::Payments).await.is_empty(),
        "the charge is still on its way"
    );
    // Behind the client's back, the charge lands.
    tf.wait_for_sleepers(1).await;
    tf.clock.advance(5_000);
    let fakes = tf.fakes.clone();
    common::wait_until("the slow charge lands", || {
        let fakes = fakes.clone();
        async move { !fakes.ledger(Service::Payments).is_empty() }
    })
    .await;

    // Within its timeout, the client gets the answer as usual.
    let (status, body) = send_json(tf.charge(2).header("X-Client-Timeout-Ms", "5000")).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn a_garbled_client_timeout_is_refused() {
    let tf = spawn().await;
    let (status, body) = send_json(tf.charge(1).header("X-Client-Timeout-Ms", "soon")).await;
    assert_eq!(status, 400);
    assert!(error_mentions(&body, "X-Client-Timeout-Ms"), "{body}");
    assert!(tf.ledger(Service::Payments).await.is_empty());
}
