//! Search, for clients that deduplicate by asking the provider: charges and
//! fulfillment requests by `metadata.order_id`, emails by address and
//! template (v1.2.1), and the search lag of a provider's index.

use fake_services_test_support as common;

use common::{
    charge_body, email_body, error_mentions, fulfillment_body, send_json, spawn, TestFakes,
    START_MS,
};
use fake_services::Service;
use serde_json::{json, Value};

/// A successful search's results.
async fn search(tf: &TestFakes, path: &str) -> Vec<Value> {
    let (status, body) = tf.get_json(path).await;
    assert_eq!(status, 200, "{path}: {body}");
    match body {
        Value::Array(found) => found,
        other => panic!("{path}: not an array: {other}"),
    }
}

fn ids(found: &[Value]) -> Vec<&str> {
    found.iter().map(|r| r["id"].as_str().unwrap()).collect()
}

/// Sends `request`, asserts it answers `status`, and returns the new record's
/// id, found at `field` in the answer.
async fn created_id(request: reqwest::RequestBuilder, status: u16, field: &str) -> String {
    let (got, body) = send_json(request).await;
    assert_eq!(got, status, "{body}");
    body[field].as_str().unwrap().to_string()
}

/// Charges `order_id` (any JSON) and returns the charge id.
async fn charge(tf: &TestFakes, order_id: Value) -> String {
    created_id(
        tf.post_charge(&charge_body(order_id, 500)),
        201,
        "charge_id",
    )
    .await
}

/// Sends an email for order 7 and returns the email id.
async fn send_email(tf: &TestFakes, to: &str, template_id: &str) -> String {
    created_id(
        tf.post_email(&email_body(to, template_id, 7)),
        202,
        "email_id",
    )
    .await
}

/// Requests fulfillment of `order_id` (any JSON) and returns the request id.
async fn request_fulfillment(tf: &TestFakes, order_id: Value) -> String {
    let body = fulfillment_body(order_id, Some("1 Main St"));
    created_id(tf.put_fulfillment(&body), 202, "request_id").await
}

#[tokio::test]
async fn charges_are_found_by_order_id_whether_number_or_string() {
    let tf = spawn().await;
    let as_number = charge(&tf, json!(7)).await;
    let other = charge(&tf, json!(8)).await;
    let as_string = charge(&tf, json!("7")).await;

    let found = search(&tf, "/payments/charges?order_id=7").await;
    assert_eq!(ids(&found), [as_number.as_str(), as_string.as_str()]);
    let hit = &found[0];
    assert_eq!(hit["metadata"]["order_id"], 7);
    assert_eq!(hit["amount_cents"], 500);
    assert_eq!(
        hit["response"],
        json!({"status": "success", "charge_id": as_number})
    );
    assert_eq!(found[1]["metadata"]["order_id"], "7");

    assert_eq!(
        ids(&search(&tf, "/payments/charges?order_id=8").await),
        [other.as_str()]
    );
    assert!(search(&tf, "/payments/charges?order_id=9").await.is_empty());
    assert!(search(&tf, "/payments/charges?order_id=77")
        .await
        .is_empty());
    assert_eq!(
        search(&tf, "/payments/charges").await.len(),
        3,
        "no filter: all"
    );
}

#[tokio::test]
async fn fulfillment_requests_are_found_by_order_id() {
    let tf = spawn().await;
    let seven = request_fulfillment(&tf, json!(7)).await;
    let eight = request_fulfillment(&tf, json!("8")).await;

    let found = search(&tf, "/fulfillment/requests?order_id=7").await;
    assert_eq!(ids(&found), [seven.as_str()]);
    assert_eq!(found[0]["address"], "1 Main St");
    assert_eq!(found[0]["response"]["request_id"], seven.as_str());
    assert_eq!(
        ids(&search(&tf, "/fulfillment/requests?order_id=8").await),
        [eight.as_str()]
    );
    assert!(search(&tf, "/fulfillment/requests?order_id=9")
        .await
        .is_empty());
    // Charges are not fulfillment requests.
    assert!(search(&tf, "/payments/charges?order_id=7").await.is_empty());
}

#[tokio::test]
async fn emails_are_found_by_address_and_template_both() {
    let tf = spawn().await;
    let confirmation = send_email(&tf, "pat@example.com", "order-confirmation").await;
    let reminder = send_email(&tf, "pat@example.com", "reminder").await;
    let other = send_email(&tf, "sam@example.com", "order-confirmation").await;

    let found = search(
        &tf,
        "/email/emails?email=pat%40example.com&template_id=order-confirmation",
    )
    .await;
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0]["email_id"],
        confirmation.as_str(),
        "v1.2.1's field"
    );
    assert_eq!(found[0]["to"], "pat@example.com");
    assert_eq!(found[0]["template_id"], "order-confirmation");
    assert_eq!(found[0]["template_data"], json!({"order_id": 7}));

    let found = search(
        &tf,
        "/email/emails?email=pat@example.com&template_id=reminder",
    )
    .await;
    assert_eq!(ids(&found), [reminder.as_str()]);
    let found = search(
        &tf,
        "/email/emails?email=sam@example.com&template_id=order-confirmation",
    )
    .await;
    assert_eq!(ids(&found), [other.as_str()]);
    assert!(search(
        &tf,
        "/email/emails?email=sam@example.com&template_id=reminder"
    )
    .await
    .is_empty());
    // Exact matches only, and both parameters are needed.
    assert!(search(
        &tf,
        "/email/emails?email=PAT@example.com&template_id=reminder"
    )
    .await
    .is_empty());
    assert!(search(&tf, "/email/emails?email=pat@example.com")
        .await
        .is_empty());
    assert!(search(&tf, "/email/emails?template_id=reminder")
        .await
        .is_empty());
    assert!(search(&tf, "/email/emails").await.is_empty());
}

/// A record for order 7 (or Pat's order confirmation); returns its id.
async fn create_record(tf: &TestFakes, service: Service) -> String {
    match service {
        Service::Payments => charge(tf, json!(7)).await,
        Service::Email => send_email(tf, "pat@example.com", "order-confirmation").await,
        Service::Fulfillment => request_fulfillment(tf, json!(7)).await,
        Service::ErrorCatcher => unreachable!("the error catcher is not searched for dedup"),
    }
}

/// With a search lag of 500 ms: the ledger has the record at once, search
/// finds it only once the clock has moved 500 ms.
async fn check_search_lag(service: Service, query: &str) {
    let tf = spawn().await;
    let view = tf
        .set_behavior(service, json!({"search_lag_ms": 500}))
        .await;
    assert_eq!(view["search_lag_ms"], 500);
    let id = create_record(&tf, service).await;

    let ledger = tf.ledger(service).await;
    assert_eq!(ledger.len(), 1, "{service}: in the ledger at once");
    assert_eq!(ledger[0]["id"], id.as_str());
    assert_eq!(ledger[0]["created_at_ms"], START_MS);
    assert_eq!(ledger[0]["searchable_at_ms"], START_MS + 500);

    assert!(
        search(&tf, query).await.is_empty(),
        "{service}: found at once"
    );
    tf.clock.advance(499);
    assert!(
        search(&tf, query).await.is_empty(),
        "{service}: found after 499 ms"
    );
    tf.clock.advance(1);
    assert_eq!(ids(&search(&tf, query).await), [id.as_str()], "{service}");

    // The lag is fixed when a record is made: turning it off later does not
    // expose a record still in the lag, nor does turning it on hide one.
    tf.set_behavior(service, json!({"search_lag_ms": 0})).await;
    let second = create_record(&tf, service).await;
    tf.set_behavior(service, json!({"search_lag_ms": 10_000}))
        .await;
    assert_eq!(
        ids(&search(&tf, query).await),
        [id.as_str(), second.as_str()],
        "{service}"
    );
}

#[tokio::test]
async fn search_lag_hides_new_charges_for_a_while() {
    check_search_lag(Service::Payments, "/payments/charges?order_id=7").await;
}

#[tokio::test]
async fn search_lag_hides_new_emails_for_a_while() {
    check_search_lag(
        Service::Email,
        "/email/emails?email=pat@example.com&template_id=order-confirmation",
    )
    .await;
}

#[tokio::test]
async fn search_lag_hides_new_fulfillment_requests_for_a_while() {
    check_search_lag(Service::Fulfillment, "/fulfillment/requests?order_id=7").await;
}

#[tokio::test]
async fn a_search_rule_fails_searches_but_not_effects() {
    let tf = spawn().await;
    tf.set_behavior(
        Service::Payments,
        json!({"faults": [{"mode": "crash", "operations": ["search"], "calls": 2}]}),
    )
    .await;
    let id = charge(&tf, json!(7)).await;
    let (status, body) = tf.get_json("/payments/charges?order_id=7").await;
    assert_eq!(status, 503);
    assert!(error_mentions(&body, "payments rule 0"), "{body}");
    assert_eq!(tf.get_json("/payments/charges").await.0, 503);
    // Used up by the two searches, not by the charge.
    assert_eq!(
        ids(&search(&tf, "/payments/charges?order_id=7").await),
        [id.as_str()]
    );
    assert_eq!(tf.ledger(Service::Payments).await.len(), 1);

    tf.set_behavior(
        Service::Email,
        json!({"faults": [{"mode": "throttle", "operations": ["search"]}]}),
    )
    .await;
    send_email(&tf, "pat@example.com", "t1").await;
    let response = tf
        .client
        .get(tf.url("/email/emails?email=pat@example.com&template_id=t1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(tf.ledger(Service::Email).await.len(), 1);
}
