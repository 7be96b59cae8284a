//! The book's flows end to end: orders placed in the store, jobs on the
//! memory runner, provider calls over real HTTP to the fake services, and
//! the outcome read from the fake services' ledgers.

use idemlab_test_support as common;

use common::{lab, lab_with};
use fake_services::Service;
use idemlab::pipeline::{
    place_order, relay_outbox, ChargeDedup, EmailDedup, Enqueue, FulfillmentDedup, Knobs, Step,
    Structure,
};
use idemlab::runner::{FetchMode, JobSet};
use idemlab::store::NewOrder;
use serde_json::json;

#[tokio::test]
async fn an_order_is_charged_emailed_and_fulfilled() {
    let lab = lab(Knobs::safe()).await;
    let order = lab.order(false).await.unwrap();
    assert_eq!(lab.drain().await, 3, "three chained jobs");
    let order = lab.reload(&order).await;
    assert!(order.is_complete(), "{order:?}");
    for service in [Service::Payments, Service::Email, Service::Fulfillment] {
        assert_eq!(lab.effects(service, order.id), 1, "{service}");
    }
    // The ids on the order are the ones in the ledgers.
    let charge = &lab.fakes.ledger(Service::Payments)[0];
    assert_eq!(order.charge_id.as_deref(), Some(charge.id.as_str()));
    assert_eq!(charge.request["amount_cents"], json!(12300));
    let email = &lab.fakes.ledger(Service::Email)[0];
    assert_eq!(order.email_id.as_deref(), Some(email.id.as_str()));
    assert_eq!(email.request["template_id"], "order-confirmation");
    assert_eq!(
        email.request["template_data"],
        json!({"order_id": order.id, "subject": "Your order has been received"})
    );
    assert_eq!(
        charge.idempotency_key.as_deref(),
        Some(format!("idempotency_key-order-{}", order.id).as_str())
    );
    assert!(lab.notifications().is_empty());
}

#[tokio::test]
async fn a_declined_charge_stops_the_pipeline() {
    let lab = lab(Knobs::safe()).await;
    let order = lab.order(true).await.unwrap();
    lab.drain().await;
    let order = lab.reload(&order).await;
    assert!(order.is_declined());
    assert_eq!(
        order.charge_decline_reason.as_deref(),
        Some("Insufficient funds")
    );
    assert_eq!(lab.effects(Service::Payments, order.id), 0);
    assert_eq!(lab.effects(Service::Email, order.id), 0);
    assert_eq!(lab.effects(Service::Fulfillment, order.id), 0);
}

#[tokio::test]
async fn payments_crashing_then_recovering_charge_once_and_notify_nobody() {
    let lab = lab(Knobs::safe()).await;
    lab.fault(
        Service::Payments,
        json!({"faults": [{"mode": "crash", "calls": 3}]}),
    );
    let order = lab.order(false).await.unwrap();
    assert_eq!(
        lab.drain().await,
        3 + 3,
        "three failed attempts, then the chain"
    );
    let order = lab.reload(&order).await;
    assert!(order.is_complete());
    assert_eq!(lab.effects(Service::Payments, order.id), 1);
    assert!(
        lab.notifications().is_empty(),
        "transient errors are silenced"
    );
    let attempts = lab.runner.history().attempts();
    assert_eq!(
        attempts
            .iter()
            .filter(|a| a.class == "CompleteOrderJob")
            .count(),
        4
    );
}

#[tokio::test]
async fn email_send_then_crash_without_dedup_sends_twice() {
    let lab = lab(Knobs {
        email: EmailDedup::None,
        ..Knobs::safe()
    })
    .await;
    lab.fault(
        Service::Email,
        json!({"faults": [{"mode": "send-then-crash", "calls": 1}]}),
    );
    let order = lab.order(false).await.unwrap();
    lab.drain().await;
    assert!(lab.reload(&order).await.is_complete());
    assert_eq!(
        lab.effects(Service::Email, order.id),
        2,
        "the duplicate email"
    );
    assert_eq!(lab.effects(Service::Payments, order.id), 1);
}

#[tokio::test]
async fn email_send_then_crash_with_search_dedup_sends_once() {
    let lab = lab(Knobs::safe()).await;
    lab.fault(
        Service::Email,
        json!({"faults": [{"mode": "send-then-crash", "calls": 1, "operations": ["send"]}]}),
    );
    let order = lab.order(false).await.unwrap();
    lab.drain().await;
    let order = lab.reload(&order).await;
    assert!(order.is_complete());
    assert_eq!(lab.effects(Service::Email, order.id), 1);
    // The order records the email the first, crashed, send made.
    let email = &lab.fakes.ledger(Service::Email)[0];
    assert_eq!(order.email_id.as_deref(), Some(email.id.as_str()));
}

#[tokio::test]
async fn a_monolithic_job_charges_again_when_the_email_crashes() {
    let lab = lab(Knobs {
        structure: Structure::Monolithic,
        charge: ChargeDedup::None,
        ..Knobs::safe()
    })
    .await;
    lab.fault(
        Service::Email,
        json!({"faults": [{"mode": "crash", "calls": 1}]}),
    );
    let order = lab.order(false).await.unwrap();
    lab.drain().await;
    assert!(lab.reload(&order).await.is_complete());
    assert_eq!(
        lab.effects(Service::Payments, order.id),
        2,
        "the double charge"
    );
}

#[tokio::test]
async fn exhausted_retries_bury_the_job_and_notify_its_death() {
    let lab = lab_with(Knobs::safe(), 1).await;
    lab.fault(Service::Payments, json!({"faults": [{"mode": "crash"}]}));
    let order = lab.order(false).await.unwrap();
    lab.drain().await;
    assert_eq!(lab.reload(&order).await.charge_successful, None);
    let dead = lab
        .runner
        .backend()
        .set_entries(JobSet::Dead)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].job.class, "CompleteOrderJob");
    let notes = lab.notifications();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].starts_with("CompleteOrderJob won't be retried: "),
        "{notes:?}"
    );
}

#[tokio::test]
async fn a_job_for_a_missing_order_dies_at_once_and_is_notified() {
    let lab = lab(Knobs::safe()).await;
    lab.runner
        .client()
        .push("CompleteOrderJob", vec![json!(424242)], "high")
        .await
        .unwrap();
    assert_eq!(lab.drain().await, 1, "not retried");
    let notes = lab.notifications();
    assert_eq!(notes.len(), 2, "the error, then the death: {notes:?}");
    assert!(notes[0].contains("Couldn't find Order with 'id'=424242"));
    assert!(notes[1].contains("won't be retried"));
}

#[tokio::test]
async fn a_worker_dying_after_the_charge_with_basic_fetch_loses_the_order() {
    let lab = lab(Knobs {
        fetch: FetchMode::Basic,
        ..Knobs::safe()
    })
    .await;
    lab.shop.deaths.plan(Step::Charge, 1);
    let order = lab.order(false).await.unwrap();
    lab.drain().await;
    let order = lab.reload(&order).await;
    assert_eq!(order.charge_successful, None, "never recorded");
    assert_eq!(lab.effects(Service::Payments, order.id), 1, "but charged");
    assert_eq!(lab.effects(Service::Email, order.id), 0);
}

#[tokio::test]
async fn with_reliable_fetch_and_a_key_the_order_completes_exactly_once() {
    let lab = lab(Knobs::safe()).await;
    lab.shop.deaths.plan(Step::Charge, 1);
    let order = lab.order(false).await.unwrap();
    lab.drain().await;
    let order = lab.reload(&order).await;
    assert!(order.is_complete());
    for service in [Service::Payments, Service::Email, Service::Fulfillment] {
        assert_eq!(lab.effects(service, order.id), 1, "{service}");
    }
}

#[tokio::test]
async fn after_commit_enqueue_loses_the_order_when_the_process_dies_between() {
    let lab = lab(Knobs {
        enqueue: Enqueue::AfterCommit,
        ..Knobs::safe()
    })
    .await;
    lab.shop.deaths.plan(Step::Commit, 1);
    assert!(lab.order(false).await.is_none(), "the request died");
    assert_eq!(lab.drain().await, 0, "no job: the order is lost");
    let orders = lab.shop.store.orders().await.unwrap();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].charge_successful, None);
}

#[tokio::test]
async fn the_outbox_survives_the_same_death() {
    let lab = lab(Knobs::safe()).await;
    lab.shop.deaths.plan(Step::Commit, 1);
    assert!(lab.order(false).await.is_none(), "the request died");
    assert_eq!(lab.drain().await, 0, "not relayed yet");
    assert_eq!(
        relay_outbox(&lab.shop, lab.runner.client()).await.unwrap(),
        1
    );
    lab.drain().await;
    let orders = lab.shop.store.orders().await.unwrap();
    assert!(orders[0].is_complete());
}

#[tokio::test]
async fn in_transaction_enqueue_with_a_rollback_leaves_a_job_without_its_order() {
    let lab = lab(Knobs {
        enqueue: Enqueue::InTransaction,
        ..Knobs::safe()
    })
    .await;
    lab.shop.deaths.plan(Step::Commit, 1);
    assert!(lab.order(false).await.is_none());
    assert!(
        lab.shop.store.orders().await.unwrap().is_empty(),
        "rolled back"
    );
    assert_eq!(lab.drain().await, 1);
    let dead = lab
        .runner
        .backend()
        .set_entries(JobSet::Dead)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1, "the orphan job is buried at once");
}

#[tokio::test]
async fn an_inline_job_body_is_never_retried() {
    let lab = lab(Knobs {
        enqueue: Enqueue::Inline,
        ..Knobs::safe()
    })
    .await;
    lab.fault(
        Service::Payments,
        json!({"faults": [{"mode": "crash", "calls": 1}]}),
    );
    let new = NewOrder {
        product_id: 1,
        quantity: 1,
        email: "pat@example.com".into(),
        address: "123 Main St".into(),
        amount_cents: None,
    };
    let placed = place_order(&lab.shop, &lab.runner, &new).await.unwrap();
    let problem = placed.problem.expect("the inline failure is reported");
    assert!(problem.contains("nothing will retry it"), "{problem}");
    assert_eq!(lab.drain().await, 0);
    assert_eq!(
        lab.reload(&placed.order).await.charge_successful,
        None,
        "stuck"
    );
}

#[tokio::test]
async fn charge_dedup_by_search_finds_the_charge_a_crash_hid() {
    let lab = lab(Knobs {
        charge: ChargeDedup::Search,
        ..Knobs::safe()
    })
    .await;
    lab.fault(
        Service::Payments,
        json!({"faults": [{"mode": "send-then-crash", "calls": 1, "operations": ["charge"]}]}),
    );
    let order = lab.order(false).await.unwrap();
    lab.drain().await;
    let order = lab.reload(&order).await;
    assert!(order.is_complete());
    assert_eq!(lab.effects(Service::Payments, order.id), 1);
    let charge = &lab.fakes.ledger(Service::Payments)[0];
    assert_eq!(order.charge_id.as_deref(), Some(charge.id.as_str()));
}

#[tokio::test]
async fn charge_dedup_by_search_is_fooled_by_a_search_lag_longer_than_the_retry() {
    let lab = lab(Knobs {
        charge: ChargeDedup::Search,
        ..Knobs::safe()
    })
    .await;
    // The first retry comes 15–24 s later; the index shows charges after 60 s.
    lab.fault(
        Service::Payments,
        json!({"faults": [{"mode": "send-then-crash", "calls": 1, "operations": ["charge"]}],
               "search_lag_ms": 60000}),
    );
    let order = lab.order(false).await.unwrap();
    lab.drain().await;
    assert!(lab.reload(&order).await.is_complete());
    assert_eq!(lab.effects(Service::Payments, order.id), 2, "charged twice");
}

#[tokio::test]
async fn email_dedup_by_idempotency_key_sends_once_after_a_send_then_crash() {
    let lab = lab(Knobs {
        email: EmailDedup::IdempotencyKey,
        ..Knobs::safe()
    })
    .await;
    lab.fault(
        Service::Email,
        json!({"faults": [{"mode": "send-then-crash", "calls": 1}]}),
    );
    let order = lab.order(false).await.unwrap();
    lab.drain().await;
    assert!(lab.reload(&order).await.is_complete());
    assert_eq!(lab.effects(Service::Email, order.id), 1);
}

#[tokio::test]
async fn fulfillment_after_a_dropped_answer_ships_twice_without_a_key_and_once_with() {
    for (dedup, expected) in [
        (FulfillmentDedup::None, 2),
        (FulfillmentDedup::IdempotencyKey, 1),
    ] {
        let lab = lab(Knobs {
            fulfillment: dedup,
            ..Knobs::safe()
        })
        .await;
        lab.fault(
            Service::Fulfillment,
            json!({"faults": [{"mode": "drop-after", "calls": 1}]}),
        );
        let order = lab.order(false).await.unwrap();
        lab.drain().await;
        assert!(lab.reload(&order).await.is_complete());
        assert_eq!(
            lab.effects(Service::Fulfillment, order.id),
            expected,
            "fulfillment = {dedup:?}"
        );
    }
}

#[tokio::test]
async fn the_safe_pipeline_completes_exactly_once_whichever_step_the_worker_dies_after() {
    for step in Step::ALL {
        let lab = lab(Knobs::safe()).await;
        lab.shop.deaths.plan(step, 1);
        let placed = lab.order(false).await;
        if step == Step::Commit {
            // The web process died after the commit: the outbox still has
            // the job, and the relay moves it.
            assert!(placed.is_none());
            relay_outbox(&lab.shop, lab.runner.client()).await.unwrap();
        }
        lab.drain().await;
        let orders = lab.shop.store.orders().await.unwrap();
        assert_eq!(orders.len(), 1, "{step:?}");
        let order = &orders[0];
        assert!(order.is_complete(), "dies after {step:?}: {order:?}");
        for service in [Service::Payments, Service::Email, Service::Fulfillment] {
            assert_eq!(
                lab.effects(service, order.id),
                1,
                "dies after {step:?}: {service}"
            );
        }
        assert_eq!(
            lab.shop.deaths.pending(),
            0,
            "the death at {step:?} happened"
        );
    }
}
