//! Snapshots built by hand for the checker's tests: ledger records, order
//! rows, attempts and dead jobs, in the shapes the lab's pipeline and fake
//! services write them.

use fake_services::{Record, Service, Told};
use serde_json::{json, Value};

use super::expect::{Expect, Invariant};
use super::snapshot::Snapshot;
use super::violation::{OrderId, Violation};
use crate::pipeline::jobs::CONFIRMATION_TEMPLATE;
use crate::pipeline::reminders::REMINDER_TEMPLATE;
use crate::runner::backend::SetEntry;
use crate::runner::{Attempt, AttemptOutcome, Job};
use crate::store::Order;

pub fn told_ok(status: u16) -> Told {
    Told::Response {
        status,
        fault: None,
    }
}

pub fn told_fault(status: u16, fault: &str) -> Told {
    Told::Response {
        status,
        fault: Some(fault.into()),
    }
}

fn record(id: &str, service: Service, request: Value, response: Value, told: Told) -> Record {
    Record {
        id: id.into(),
        service,
        created_at_ms: 1_700_000_000_000,
        searchable_at_ms: 1_700_000_000_000,
        request,
        idempotency_key: None,
        status: 201,
        response,
        told,
    }
}

pub fn charge(id: &str, order: i64, told: Told) -> Record {
    record(
        id,
        Service::Payments,
        json!({"amount_cents": 1000, "metadata": {"order_id": order}}),
        json!({"status": "success", "charge_id": id}),
        told,
    )
}

pub fn declined_charge(id: &str, order: i64) -> Record {
    record(
        id,
        Service::Payments,
        json!({"amount_cents": 9999, "metadata": {"order_id": order}}),
        json!({"status": "declined", "explanation": "Insufficient funds"}),
        told_ok(201),
    )
}

pub fn email(id: &str, order: i64, told: Told) -> Record {
    record(
        id,
        Service::Email,
        json!({"to": "a@example.com", "template_id": CONFIRMATION_TEMPLATE,
               "template_data": {"order_id": order, "subject": "Your order has been received"}}),
        json!({"status": "queued", "email_id": id}),
        told,
    )
}

pub fn reminder_email(id: &str, reminder: i64) -> Record {
    record(
        id,
        Service::Email,
        json!({"to": "a@example.com", "template_id": REMINDER_TEMPLATE,
               "template_data": {"reminder_id": reminder}}),
        json!({"status": "queued", "email_id": id}),
        told_ok(202),
    )
}

pub fn fulfillment(id: &str, order: i64) -> Record {
    record(
        id,
        Service::Fulfillment,
        json!({"address": "1 Main St", "metadata": {"order_id": order}}),
        json!({"status": "accepted", "request_id": id}),
        told_ok(202),
    )
}

pub fn notification(id: &str, class: &str, message: &str) -> Record {
    record(
        id,
        Service::ErrorCatcher,
        json!({"exception_class": class, "exception_message": message}),
        json!({"notification_id": id}),
        told_ok(202),
    )
}

/// An order placed and nothing more.
pub fn placed(id: i64) -> Order {
    Order::placed(id)
}

/// An order with ids `ch_<id>`, `em_<id>`, `fr_<id>` recorded.
pub fn complete(id: i64) -> Order {
    Order {
        charge_completed_at_ms: Some(1),
        charge_successful: Some(true),
        charge_id: Some(format!("ch_{id}")),
        email_id: Some(format!("em_{id}")),
        fulfillment_request_id: Some(format!("fr_{id}")),
        ..placed(id)
    }
}

pub fn declined(id: i64) -> Order {
    Order {
        charge_completed_at_ms: Some(1),
        charge_successful: Some(false),
        charge_decline_reason: Some("Insufficient funds".into()),
        ..placed(id)
    }
}

/// The ledgers of a complete order done once: `ch_<id>`, `em_<id>`, `fr_<id>`.
pub fn once(id: i64) -> [Record; 3] {
    [
        charge(&format!("ch_{id}"), id, told_ok(201)),
        email(&format!("em_{id}"), id, told_ok(202)),
        fulfillment(&format!("fr_{id}"), id),
    ]
}

pub fn attempt(
    class: &str,
    order: i64,
    n: u32,
    process: &str,
    version: &str,
    outcome: AttemptOutcome,
) -> Attempt {
    Attempt {
        jid: format!("jid{order}"),
        class: class.into(),
        args: vec![json!(order)],
        attempt: n,
        process: process.into(),
        code_version: version.into(),
        started_ms: 0,
        finished_ms: 1,
        outcome,
    }
}

pub fn failed(class: &str, message: &str, then: &'static str) -> AttemptOutcome {
    AttemptOutcome::Failed {
        error_class: class.into(),
        error_message: message.into(),
        transient: true,
        then,
    }
}

pub fn job(class: &str, order: i64) -> Job {
    Job::new(class, vec![json!(order)], "high", format!("jid{order}"), 0)
}

pub fn dead(class: &str, order: i64, error: &str) -> SetEntry {
    let mut job = job(class, order);
    job.error_message = Some(error.into());
    SetEntry { at_ms: 5, job }
}

/// A snapshot with these orders and records (sorted into ledgers).
pub fn snapshot(orders: Vec<Order>, records: Vec<Record>) -> Snapshot {
    let ledgers = Service::ALL
        .into_iter()
        .map(|s| {
            let of: Vec<Record> = records.iter().filter(|r| r.service == s).cloned().collect();
            (s, of)
        })
        .collect();
    Snapshot {
        orders,
        ledgers,
        ..Snapshot::default()
    }
}

/// An expectation: the default with `f` applied.
pub fn expect(f: impl FnOnce(&mut Expect)) -> Expect {
    let mut e = Expect::default();
    f(&mut e);
    e
}

/// The safe pipeline's expectation.
pub fn safe() -> Expect {
    Expect::exactly_once()
}

/// Each violation's invariant and order.
pub fn invariants(v: &[Violation]) -> Vec<(Invariant, Option<i64>)> {
    v.iter()
        .map(|v| (v.invariant, v.order_id.as_ref().and_then(OrderId::as_i64)))
        .collect()
}

/// Order 1 charged twice: once by v1 (which crashed), once by v2.
pub fn double_charge() -> Snapshot {
    let mut first = charge("ch_1", 1, told_fault(503, "send-then-crash"));
    first.created_at_ms = 150;
    let mut second = charge("ch_1b", 1, told_ok(201));
    second.created_at_ms = 250;
    second.idempotency_key = Some("order-1".into());
    let mut records = vec![first, second];
    records.extend(once(2));
    let mut snap = snapshot(vec![complete(1), complete(2)], records);
    // Charged (the second charge recorded), never emailed.
    snap.orders[0].charge_id = Some("ch_1b".into());
    snap.orders[0].email_id = None;
    snap.orders[0].fulfillment_request_id = None;
    let mut a1 = attempt(
        "CompleteOrderJob",
        1,
        1,
        "worker-a",
        "v1",
        failed("Payments::ServerError", "503 Service Unavailable", "retry"),
    );
    (a1.started_ms, a1.finished_ms) = (100, 200);
    let mut a2 = attempt(
        "CompleteOrderJob",
        1,
        2,
        "worker-b",
        "v2",
        AttemptOutcome::Done,
    );
    (a2.started_ms, a2.finished_ms) = (240, 300);
    snap.history = vec![a1, a2];
    snap
}

/// An expectation that only names a violation.
pub fn expect_violation(invariant: Invariant) -> Expect {
    Expect {
        violation: Some(invariant),
        ..Expect::default()
    }
}
