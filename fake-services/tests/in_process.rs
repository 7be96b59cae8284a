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

/// Records what the watcher saw, and holds each answer until told to go on.
struct Gate {
    seen: std::sync::Mutex<Vec<String>>,
    faults: std::sync::Mutex<Vec<String>>,
    open: Arc<tokio::sync::Notify>,
}

impl fake_services::EffectWatcher for Gate {
    fn performed(&self, record: &fake_services::Record) -> Option<fake_services::Pause> {
        self.seen.lock().unwrap().push(record.id.clone());
        let open = self.open.clone();
        Some(Box::pin(async move { open.notified().await }))
    }

    fn fault_fired(&self, fired: &fake_services::FiredFault<'_>) {
        let order = &fired.request["metadata"]["order_id"];
        self.faults.lock().unwrap().push(format!(
            "{} {} {} order {order}",
            fired.service, fired.operation, fired.what
        ));
    }
}

#[tokio::test]
async fn a_watcher_sees_each_effect_after_it_is_recorded_and_before_it_is_answered() {
    let fakes = FakeServices::new();
    let gate = Arc::new(Gate {
        seen: Default::default(),
        faults: Default::default(),
        open: Arc::new(tokio::sync::Notify::new()),
    });
    fakes.watch_effects(gate.clone());
    assert_eq!(fakes.activity().in_flight, 0);

    let call = tokio::spawn({
        let fakes = fakes.clone();
        async move {
            fakes
                .call(Call::new(
                    Service::Payments,
                    Operation::Effect,
                    charge_body(1, 500),
                ))
                .await
        }
    });
    common::wait_until("the watcher sees the charge", || {
        let seen = !gate.seen.lock().unwrap().is_empty();
        async move { seen }
    })
    .await;
    let id = gate.seen.lock().unwrap()[0].clone();
    assert!(id.starts_with("ch_"), "{id}");
    let ledger: Vec<String> = fakes
        .ledger(Service::Payments)
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        ledger,
        std::slice::from_ref(&id),
        "the charge is in the ledger while its answer waits for the watcher"
    );
    assert!(!call.is_finished(), "the answer waits for the watcher");
    assert_eq!(fakes.activity().in_flight, 1, "the call is under way");

    gate.open.notify_one();
    let reply = call.await.unwrap();
    assert_eq!(reply.response().map(|r| r.status), Some(201));
    let activity = fakes.activity();
    assert_eq!((activity.in_flight, activity.calls), (0, 1));
    assert!(activity.last_call_ms > 0);

    // A search performs nothing: the watcher is not told.
    let search = Call::new(Service::Payments, Operation::Search, json!({"order_id": 1}));
    fakes.call(search).await;
    assert_eq!(gate.seen.lock().unwrap().len(), 1);
    assert!(gate.faults.lock().unwrap().is_empty(), "no rule, no fault");

    // A crash leaves no record, but the watcher hears of it.
    fakes
        .set_behavior(
            Service::Payments,
            serde_json::from_value(json!({"faults": [
                {"mode": "slow", "sleep_ms": 1, "calls": 1},
                {"mode": "crash", "calls": 1}
            ]}))
            .unwrap(),
        )
        .unwrap();
    let reply = fakes
        .call(Call::new(
            Service::Payments,
            Operation::Effect,
            charge_body(2, 500),
        ))
        .await;
    assert_eq!(reply.response().map(|r| r.status), Some(503));
    assert_eq!(gate.seen.lock().unwrap().len(), 1, "nothing was performed");
    assert_eq!(
        *gate.faults.lock().unwrap(),
        ["payments charge crash (rule 1) order 2"]
    );
    fakes
        .set_behavior(
            Service::Payments,
            serde_json::from_value(
                json!({"faults": [{"mode": "slow", "sleep_ms": 1, "calls": 1}]}),
            )
            .unwrap(),
        )
        .unwrap();
    let slow = tokio::spawn({
        let fakes = fakes.clone();
        async move {
            fakes
                .call(Call::new(
                    Service::Payments,
                    Operation::Effect,
                    charge_body(3, 500),
                ))
                .await
        }
    });
    common::wait_until("the slow charge reaches the watcher", || {
        let seen = gate.seen.lock().unwrap().len() == 2;
        async move { seen }
    })
    .await;
    gate.open.notify_one();
    slow.await.unwrap();
    assert_eq!(
        gate.faults.lock().unwrap().last().map(String::as_str),
        Some("payments charge slow 1 ms order 3")
    );
}
