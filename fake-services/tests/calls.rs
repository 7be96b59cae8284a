//! The call log over HTTP (`GET /calls`): every answered call — the
//! effects, the faults that answered instead of the provider, the replays
//! an idempotency key answered, the searches — for one order, oldest
//! first, with the ledgers' exact effect counts.

use fake_services_test_support as common;

use common::{charge_body, send_json, spawn};
use fake_services::Service;
use serde_json::{json, Value};

fn calls(body: &Value) -> &Vec<Value> {
    body["calls"]
        .as_array()
        .unwrap_or_else(|| panic!("no calls: {body}"))
}

#[tokio::test]
async fn one_orders_story_has_the_fault_the_effect_and_the_replay_in_order() {
    let tf = spawn().await;
    tf.set_behavior(
        Service::Payments,
        json!({"faults": [{"mode": "send-then-crash", "calls": 1}]}),
    )
    .await;
    let keyed = |order: u64| {
        tf.post_charge(&charge_body(order, 500))
            .header("Idempotency-Key", format!("charge-{order}"))
    };
    // Charged, but told 503; the retry with the same key is replayed.
    assert_eq!(send_json(keyed(5)).await.0, 503);
    assert_eq!(send_json(keyed(5)).await.0, 201);
    // Another order's call stays out of order 5's story.
    assert_eq!(send_json(keyed(6)).await.0, 201);
    // A retry without the key charges again: the duplicate.
    assert_eq!(send_json(tf.post_charge(&charge_body(5, 500))).await.0, 201);
    assert_eq!(tf.get_json("/payments/charges?order_id=5").await.0, 200);

    let (status, body) = tf.get_json("/calls?order_id=5").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["order_id"], "5");
    assert_eq!(body["effects"]["payments"], 2, "{body}");
    assert_eq!(body["effects"]["email"], 0, "{body}");
    assert_eq!(body["forgotten"], 0);
    let calls = calls(&body);
    let did: Vec<&str> = calls
        .iter()
        .map(|c| c["provider"]["did"].as_str().unwrap())
        .collect();
    assert_eq!(
        did,
        ["performed", "replayed", "performed", "answered"],
        "{body}"
    );

    let first = &calls[0];
    assert_eq!(first["service"], "payments");
    assert_eq!(first["operation"], "charge");
    assert_eq!(first["idempotency_key"], "charge-5");
    assert_eq!(first["fault"], "send-then-crash (rule 0)");
    assert_eq!(
        first["told"],
        json!({"outcome": "response", "status": 503, "fault": "send-then-crash (rule 0)"})
    );
    let ledger = tf.ledger(Service::Payments).await;
    assert_eq!(
        first["provider"]["record"], ledger[0]["id"],
        "the record it made"
    );
    assert_eq!(calls[1]["told"]["status"], 201);
    assert!(calls[1].get("fault").is_none(), "{body}");
    assert!(calls[2].get("idempotency_key").is_none(), "{body}");
    assert_eq!(calls[3]["operation"], "search");
    let seqs: Vec<u64> = calls.iter().map(|c| c["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "oldest first: {seqs:?}"
    );
    for call in calls {
        assert!(
            call["started_ms"].as_u64() <= call["answered_ms"].as_u64(),
            "{call}"
        );
    }
}

#[tokio::test]
async fn a_crash_before_the_provider_and_a_dropped_connection_are_told_as_such() {
    let tf = spawn().await;
    tf.set_behavior(
        Service::Payments,
        json!({"faults": [{"mode": "crash", "calls": 1}, {"mode": "drop-after", "calls": 1}]}),
    )
    .await;
    assert_eq!(send_json(tf.charge(9)).await.0, 503);
    assert!(
        tf.charge(9).send().await.is_err(),
        "drop-after drops the connection"
    );
    let (_, body) = tf.get_json("/calls?order_id=9").await;
    let calls = calls(&body);
    assert_eq!(calls.len(), 2, "{body}");
    assert_eq!(calls[0]["provider"], json!({"did": "not-reached"}));
    assert_eq!(calls[0]["told"]["fault"], "crash (rule 0)");
    assert_eq!(calls[1]["provider"]["did"], "performed");
    assert_eq!(calls[1]["fault"], "drop-after (rule 1)");
    assert_eq!(calls[1]["told"], json!({"outcome": "dropped"}));
    assert_eq!(body["effects"]["payments"], 1);
}

#[tokio::test]
async fn the_newest_calls_of_all_and_a_reset_that_forgets_them() {
    let tf = spawn().await;
    for order in 1..=5 {
        assert_eq!(send_json(tf.charge(order)).await.0, 201);
    }
    let (status, body) = tf.get_json("/calls?limit=2").await;
    assert_eq!(status, 200, "{body}");
    let orders: Vec<&str> = calls(&body)
        .iter()
        .map(|c| c["order_id"].as_str().unwrap())
        .collect();
    assert_eq!(orders, ["4", "5"]);
    for bad in [
        "/calls?limit=0",
        "/calls?limit=1001",
        "/calls?limit=x",
        "/calls?order_id=",
    ] {
        let (status, body) = tf.get_json(bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("limit") || e.contains("order_id")),
            "{body}"
        );
    }
    let reset = tf
        .client
        .post(tf.url("/reset"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    let (_, body) = tf.get_json("/calls").await;
    assert!(calls(&body).is_empty(), "{body}");
}
