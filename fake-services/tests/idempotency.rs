//! The `Idempotency-Key` header over HTTP: replay, mismatch, in flight, the
//! retry after an injected fault, and many clients racing with one key.

use fake_services_test_support as common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use common::{charge_body, error_mentions, spawn, wait_until, TestFakes};
use fake_services::Service;
use serde_json::{json, Value};
use tokio::sync::Barrier;

const KEY: &str = "idempotency-key";
const REPLAYED: &str = "idempotent-replayed";

/// A response as raw as a test can compare it.
#[derive(Debug)]
struct Raw {
    status: u16,
    replayed: Option<String>,
    body: Bytes,
}

impl Raw {
    async fn from(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let replayed = response
            .headers()
            .get(REPLAYED)
            .map(|v| v.to_str().unwrap().to_string());
        let body = response.bytes().await.unwrap();
        Self {
            status,
            replayed,
            body,
        }
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn is_replay(&self) -> bool {
        self.replayed.as_deref() == Some("true")
    }
}

async fn send(request: reqwest::RequestBuilder) -> Raw {
    Raw::from(request.send().await.unwrap()).await
}

fn charge_with(tf: &TestFakes, key: &str, body: &Value) -> reqwest::RequestBuilder {
    tf.post_charge(body).header(KEY, key)
}

#[tokio::test]
async fn same_key_and_body_replays_the_first_response_byte_for_byte() {
    let tf = spawn().await;
    let first = send(tf.charge(7).header(KEY, "k-1")).await;
    assert_eq!(first.status, 201);
    assert_eq!(first.replayed, None, "the first response is not a replay");
    let charge_id = first.json()["charge_id"].as_str().unwrap().to_string();

    for _ in 0..2 {
        let again = send(tf.charge(7).header(KEY, "k-1")).await;
        assert_eq!(again.status, first.status);
        assert_eq!(again.body, first.body, "replayed byte for byte");
        assert_eq!(again.replayed.as_deref(), Some("true"));
    }
    let ledger = tf.ledger(Service::Payments).await;
    assert_eq!(ledger.len(), 1, "a replay has no effect");
    assert_eq!(ledger[0]["id"], charge_id.as_str());
    assert_eq!(ledger[0]["idempotency_key"], "k-1");

    // Another key is another charge.
    let other = send(tf.charge(7).header(KEY, "k-2")).await;
    assert_eq!(other.status, 201);
    assert_eq!(other.replayed, None);
    assert_ne!(other.body, first.body);
    assert_eq!(tf.ledger(Service::Payments).await.len(), 2);
}

#[tokio::test]
async fn a_decline_is_replayed_too() {
    let tf = spawn().await;
    let body = charge_body(7, 9999);
    let first = send(charge_with(&tf, "k", &body)).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.json()["status"], "declined");
    let again = send(charge_with(&tf, "k", &body)).await;
    assert_eq!((again.status, &again.body), (200, &first.body));
    assert!(again.is_replay());
    assert_eq!(tf.ledger(Service::Payments).await.len(), 1);
}

#[tokio::test]
async fn same_key_with_another_body_is_refused_with_422() {
    let tf = spawn().await;
    let first = send(charge_with(&tf, "k", &charge_body(7, 100))).await;
    assert_eq!(first.status, 201);
    let other = send(charge_with(&tf, "k", &charge_body(7, 200))).await;
    assert_eq!(other.status, 422);
    assert_eq!(other.replayed, None);
    assert!(error_mentions(&other.json(), "Idempotency-Key"));
    assert_eq!(tf.ledger(Service::Payments).await.len(), 1);
    // The original body still replays.
    let again = send(charge_with(&tf, "k", &charge_body(7, 100))).await;
    assert_eq!((again.status, &again.body), (201, &first.body));
    assert!(again.is_replay());
}

#[tokio::test]
async fn a_key_is_scoped_to_its_service() {
    let tf = spawn().await;
    let charge = send(charge_with(&tf, "shared", &charge_body(7, 100))).await;
    assert_eq!(charge.status, 201);

    let email_body = json!({"to": "pat@example.com", "template_id": "t1", "template_data": {}});
    let email = send(tf.post_email(&email_body).header(KEY, "shared")).await;
    assert_eq!(email.status, 202, "not a mismatch with the charge's body");
    assert_eq!(email.replayed, None);
    assert_eq!(tf.ledger(Service::Email).await.len(), 1);

    let fulfillment = send(
        tf.put_fulfillment(&json!({"customer_id": "c", "address": "1 Main St", "product_id": "p", "quantity": 1, "metadata": {}}))
            .header(KEY, "shared"),
    )
    .await;
    assert_eq!(fulfillment.status, 202);
    assert_eq!(fulfillment.replayed, None);

    // Each service still replays its own.
    let again = send(charge_with(&tf, "shared", &charge_body(7, 100))).await;
    assert_eq!((again.status, &again.body), (201, &charge.body));
    assert!(again.is_replay());
    let email_again = send(tf.post_email(&email_body).header(KEY, "shared")).await;
    assert_eq!(email_again.body, email.body);
    assert!(email_again.is_replay());
    assert_eq!(tf.ledger(Service::Payments).await.len(), 1);
    assert_eq!(tf.ledger(Service::Email).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_key_while_the_first_is_in_flight_is_refused_with_409() {
    let tf = spawn().await;
    tf.set_behavior(
        Service::Payments,
        json!({"faults": [{"mode": "slow", "sleep_ms": 1000, "calls": 1}]}),
    )
    .await;
    let body = charge_body(7, 100);
    let a = tokio::spawn(send(charge_with(&tf, "K", &body)));
    tf.wait_for_sleepers(1).await;

    let b = send(charge_with(&tf, "K", &body)).await;
    assert_eq!(b.status, 409);
    assert_eq!(b.replayed, None);
    assert!(error_mentions(&b.json(), "in flight"));
    // A different body is a mismatch even while the first is in flight.
    assert_eq!(
        send(charge_with(&tf, "K", &charge_body(7, 200)))
            .await
            .status,
        422
    );
    assert!(tf.ledger(Service::Payments).await.is_empty());
    assert!(!a.is_finished());

    tf.clock.advance(1000);
    let a = a.await.unwrap();
    assert_eq!(a.status, 201);
    assert_eq!(a.replayed, None);

    let c = send(charge_with(&tf, "K", &body)).await;
    assert_eq!((c.status, &c.body), (201, &a.body));
    assert!(c.is_replay());
    assert_eq!(tf.ledger(Service::Payments).await.len(), 1);
}

#[tokio::test]
async fn the_retry_after_send_then_crash_gets_the_original_success() {
    let tf = spawn().await;
    tf.set_behavior(
        Service::Payments,
        json!({"faults": [{"mode": "send-then-crash", "calls": 1}]}),
    )
    .await;
    let body = charge_body(7, 100);
    let first = send(charge_with(&tf, "K", &body)).await;
    assert_eq!(first.status, 503);
    let ledger = tf.ledger(Service::Payments).await;
    assert_eq!(ledger.len(), 1);
    let charge_id = ledger[0]["id"].clone();

    let retry = send(charge_with(&tf, "K", &body)).await;
    assert_eq!(retry.status, 201);
    assert!(retry.is_replay());
    assert_eq!(retry.json()["charge_id"], charge_id);
    assert_eq!(retry.json()["status"], "success");
    let ledger = tf.ledger(Service::Payments).await;
    assert_eq!(ledger.len(), 1, "the retry charged nothing new");
    assert_eq!(
        ledger[0]["told"],
        json!({"outcome": "response", "status": 503, "fault": "send-then-crash"}),
        "a replay does not rewrite what the first client was told"
    );
}

#[tokio::test]
async fn the_retry_after_drop_after_gets_the_original_success() {
    let tf = spawn().await;
    tf.set_behavior(
        Service::Payments,
        json!({"faults": [{"mode": "drop-after", "calls": 1}]}),
    )
    .await;
    let body = charge_body(7, 100);
    charge_with(&tf, "K", &body)
        .send()
        .await
        .expect_err("dropped connection");
    let ledger = tf.ledger(Service::Payments).await;
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0]["told"], json!({"outcome": "dropped"}));

    let retry = send(charge_with(&tf, "K", &body)).await;
    assert_eq!(retry.status, 201);
    assert!(retry.is_replay());
    assert_eq!(retry.json()["charge_id"], ledger[0]["id"]);
    assert_eq!(tf.ledger(Service::Payments).await.len(), 1);
}

#[tokio::test]
async fn a_validation_failure_does_not_store_the_key() {
    let tf = spawn().await;
    let request = |body: &Value| tf.put_fulfillment(body).header(KEY, "K");
    let blank = json!({"customer_id": "c", "address": "  ", "product_id": "p", "quantity": 1, "metadata": {"order_id": 7}});
    for _ in 0..2 {
        let rejected = send(request(&blank)).await;
        assert_eq!(rejected.status, 422);
        assert_eq!(rejected.replayed, None, "executed again, not replayed");
        assert_eq!(
            rejected.json(),
            json!({"status": "rejected", "error": "Missing address"})
        );
    }
    assert!(tf.ledger(Service::Fulfillment).await.is_empty());

    // A corrected retry may reuse the key: it is neither a mismatch nor a replay.
    let fixed = json!({"customer_id": "c", "address": "1 Main St", "product_id": "p", "quantity": 1, "metadata": {"order_id": 7}});
    let accepted = send(request(&fixed)).await;
    assert_eq!(accepted.status, 202);
    assert_eq!(accepted.replayed, None);
    assert_eq!(tf.ledger(Service::Fulfillment).await.len(), 1);
    let again = send(request(&fixed)).await;
    assert_eq!((again.status, &again.body), (202, &accepted.body));
    assert!(again.is_replay());
    assert_eq!(send(request(&blank)).await.status, 422, "now a mismatch");
}

#[tokio::test]
async fn a_fault_in_front_of_the_provider_does_not_store_the_key() {
    let tf = spawn().await;
    let body = charge_body(7, 100);
    for (i, mode) in ["crash", "throttle", "drop-before"].into_iter().enumerate() {
        let key = format!("K-{mode}");
        tf.set_behavior(
            Service::Payments,
            json!({"faults": [{"mode": mode, "calls": 1}]}),
        )
        .await;
        match charge_with(&tf, &key, &body).send().await {
            Ok(response) => assert!(
                [429, 503].contains(&response.status().as_u16()),
                "{mode}: {}",
                response.status()
            ),
            Err(err) => assert_eq!(mode, "drop-before", "{err:?}"),
        }
        assert_eq!(tf.ledger(Service::Payments).await.len(), i, "{mode}");

        let retry = send(charge_with(&tf, &key, &body)).await;
        assert_eq!(retry.status, 201, "{mode}: the retry performs the effect");
        assert_eq!(retry.replayed, None, "{mode}");
        let ledger = tf.ledger(Service::Payments).await;
        assert_eq!(ledger.len(), i + 1, "{mode}");
        assert_eq!(ledger[i]["idempotency_key"], key.as_str());

        let replay = send(charge_with(&tf, &key, &body)).await;
        assert_eq!(replay.body, retry.body, "{mode}");
        assert!(replay.is_replay(), "{mode}");
    }
}

#[tokio::test]
async fn a_quoted_structured_field_key_is_the_same_key() {
    let tf = spawn().await;
    let body = charge_body(7, 100);
    let first = send(charge_with(&tf, "\"abc\"", &body)).await;
    assert_eq!(first.status, 201);
    assert_eq!(first.replayed, None);
    let bare = send(charge_with(&tf, "abc", &body)).await;
    assert_eq!((bare.status, &bare.body), (201, &first.body));
    assert!(bare.is_replay());
    let ledger = tf.ledger(Service::Payments).await;
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0]["idempotency_key"], "abc");
    // And the other way round.
    let first = send(charge_with(&tf, "xyz", &body)).await;
    let quoted = send(charge_with(&tf, "\"xyz\"", &body)).await;
    assert_eq!(quoted.body, first.body);
    assert!(quoted.is_replay());
    assert_eq!(tf.ledger(Service::Payments).await.len(), 2);
}

const RACERS: usize = 64;

/// Starts `RACERS` identical keyed charges together; each task counts itself
/// in `done` when it has its answer.
fn race(tf: &TestFakes, done: &Arc<AtomicUsize>) -> Vec<tokio::task::JoinHandle<Raw>> {
    let barrier = Arc::new(Barrier::new(RACERS));
    let body = charge_body(7, 100);
    (0..RACERS)
        .map(|_| {
            let request = charge_with(tf, "race", &body);
            let barrier = barrier.clone();
            let done = done.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let raw = send(request).await;
                done.fetch_add(1, Ordering::SeqCst);
                raw
            })
        })
        .collect()
}

/// Checks the race's outcome: one charge, and every answer is that charge
/// (first or replayed) or a 409. Returns how many got the charge.
async fn check_race(tf: &TestFakes, answers: &[Raw]) -> usize {
    let ledger = tf.ledger(Service::Payments).await;
    assert_eq!(ledger.len(), 1, "one key, one charge");
    let charge_id = &ledger[0]["id"];
    let mut charged = 0;
    let mut first = 0;
    for answer in answers {
        match answer.status {
            201 => {
                assert_eq!(&answer.json()["charge_id"], charge_id);
                charged += 1;
                if !answer.is_replay() {
                    first += 1;
                }
            }
            409 => assert_eq!(answer.replayed, None),
            other => panic!("unexpected {other}: {answer:?}"),
        }
    }
    assert_eq!(first, 1, "exactly one answer is not a replay");
    let after = send(charge_with(tf, "race", &charge_body(7, 100))).await;
    assert_eq!(after.status, 201);
    assert!(after.is_replay());
    assert_eq!(&after.json()["charge_id"], charge_id);
    assert_eq!(tf.ledger(Service::Payments).await.len(), 1);
    charged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_requests_with_one_key_charge_once() {
    let tf = spawn().await;
    let done = Arc::new(AtomicUsize::new(0));
    let mut answers = Vec::new();
    for handle in race(&tf, &done) {
        answers.push(handle.await.unwrap());
    }
    assert!(check_race(&tf, &answers).await >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_requests_overlapping_a_slow_first_one_get_409() {
    let tf = spawn().await;
    tf.set_behavior(
        Service::Payments,
        json!({"faults": [{"mode": "slow", "sleep_ms": 1000, "calls": 1}]}),
    )
    .await;
    let done = Arc::new(AtomicUsize::new(0));
    let handles = race(&tf, &done);
    // The first to arrive takes both the slow rule and the key; every other
    // one is refused at once, while the first is still asleep.
    tf.wait_for_sleepers(1).await;
    let finished = &done;
    wait_until("every other racer has its answer", || async move {
        finished.load(Ordering::SeqCst) >= RACERS - 1
    })
    .await;
    assert_eq!(tf.clock.sleepers(), 1);
    assert!(tf.ledger(Service::Payments).await.is_empty());
    tf.clock.advance(1000);
    let mut answers = Vec::new();
    for handle in handles {
        answers.push(handle.await.unwrap());
    }
    assert_eq!(
        check_race(&tf, &answers).await,
        1,
        "all but the first got 409"
    );
    assert_eq!(
        answers.iter().filter(|a| a.status == 409).count(),
        RACERS - 1
    );
}
