//! The in-process front door: the same rules as over HTTP, reproducible from
//! a seed, and safe to abandon mid-call.

use fake_services_test_support as common;

use std::sync::Arc;

use common::charge_body;
use fake_services::{Call, FakeServices, ManualClock, Operation, Reply, Service};
use serde_json::json;

/// A mixed workload: faults by probability, keys, a decline, an email.
async fn workload(fakes: &FakeServices) -> Vec<Option<u16>> {
    fakes
        .set_behavior(
            Service::Payments,
            serde_json::from_value(json!({"faults": [
                {"mode": "send-then-crash", "probability": 0.4, "seed": 5},
                {"mode": "drop-after", "probability": 0.2, "seed": 6}
            ]}))
            .unwrap(),
        )
        .unwrap();
    let mut statuses = Vec::new();
    for order in 0..30 {
        let mut call = Call::new(
            Service::Payments,
            Operation::Effect,
            charge_body(order, 12300),
        );
        if order % 3 == 0 {
            call = call.with_key(format!("order-{order}"));
        }
        statuses.push(fakes.call(call).await.response().map(|r| r.status));
    }
    let decline = json!({"amount_cents": 9999, "metadata": {"order_id": 99}});
    let reply = fakes
        .call(Call::new(Service::Payments, Operation::Effect, decline))
        .await;
    statuses.push(reply.response().map(|r| r.status));
    let email = json!({"to": "pat@example.com", "template_id": "order-confirmation",
                       "template_data": {"order_id": 1}});
    let reply = fakes
        .call(Call::new(Service::Email, Operation::Effect, email))
        .await;
    statuses.push(reply.response().map(|r| r.status));
    statuses
}

fn ledgers(fakes: &FakeServices) -> String {
    let all: Vec<_> = Service::ALL.iter().map(|s| fakes.ledger(*s)).collect();
    serde_json::to_string(&all).unwrap()
}

#[tokio::test]
async fn the_same_seed_gives_the_same_ledgers_byte_for_byte() {
    let run = |seed| async move {
        let fakes = FakeServices::with_clock(Arc::new(ManualClock::default()), seed);
        let statuses = workload(&fakes).await;
        (statuses, ledgers(&fakes))
    };
    let (statuses_a, ledger_a) = run(7).await;
    let (statuses_b, ledger_b) = run(7).await;
    assert_eq!(statuses_a, statuses_b);
    assert_eq!(ledger_a, ledger_b);
    // The faults really were mixed in, or the comparison proves little.
    assert!(statuses_a.contains(&Some(503)), "{statuses_a:?}");
    assert!(statuses_a.contains(&None), "{statuses_a:?}");
    assert!(statuses_a.contains(&Some(201)), "{statuses_a:?}");
    let (_, ledger_c) = run(8).await;
    assert_ne!(ledger_a, ledger_c, "another seed gives other ids");
}

#[tokio::test]
async fn http_and_in_process_calls_give_the_same_ledger() {
    // Over HTTP: the test server runs on a manual clock with seed 42.
    let tf = common::spawn().await;
    for order in 0..5 {
        let response = tf
            .charge(order)
            .header("Idempotency-Key", format!("k{order}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    // In process: same seed, same clock start, same calls.
    let fakes = FakeServices::with_clock(Arc::new(ManualClock::default()), 42);
    for order in 0..5 {
        let call = Call::new(
            Service::Payments,
            Operation::Effect,
            charge_body(order, 12300),
        )
        .with_key(format!("k{order}"));
        assert_eq!(fakes.call(call).await.response().unwrap().status, 201);
    }
    assert_eq!(
        serde_json::to_value(tf.fakes.ledger(Service::Payments)).unwrap(),
        serde_json::to_value(fakes.ledger(Service::Payments)).unwrap()
    );
}

#[tokio::test]
async fn an_abandoned_call_frees_its_idempotency_key() {
    let clock = ManualClock::default();
    let fakes = FakeServices::with_clock(Arc::new(clock.clone()), 1);
    fakes
        .set_behavior(
            Service::Payments,
            serde_json::from_value(
                json!({"faults": [{"mode": "slow", "sleep_ms": 5000, "calls": 1}]}),
            )
            .unwrap(),
        )
        .unwrap();
    let call = Call::new(Service::Payments, Operation::Effect, charge_body(1, 12300)).with_key("k");
    let slow = tokio::spawn({
        let fakes = fakes.clone();
        let call = call.clone();
        async move { fakes.call(call).await }
    });
    common::wait_until("the first call sits in its latency", || async {
        clock.sleepers() >= 1
    })
    .await;
    let busy = fakes.call(call.clone()).await;
    assert_eq!(busy.response().unwrap().status, 409);
    // The client gives up: the call is dropped before the provider saw it.
    slow.abort();
    let _ = slow.await;
    assert!(fakes.ledger(Service::Payments).is_empty());
    let retry = fakes.call(call).await;
    let Reply::Response(retry) = retry else {
        panic!("dropped")
    };
    assert_eq!(retry.status, 201, "the key was freed");
    assert!(!retry.replayed);
    assert_eq!(fakes.ledger(Service::Payments).len(), 1);
}
