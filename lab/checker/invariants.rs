//! The invariants (DESIGN.md, "Checker"), counted from the providers' ledgers
//! and the order rows — never from what the pipeline believes it did.
//!
//! Each broken invariant is a [`Violation`] that names the order (or
//! reminder), what was expected and what was found, the ledger records
//! involved (with what the client was told about each) and the job history
//! of that order.

use fake_services::ledger::scalar_to_string;
use fake_services::{Record, Service};
use serde::Serialize;
use serde_json::Value;

use super::snapshot::Snapshot;
use crate::pipeline::jobs::CONFIRMATION_TEMPLATE;
use crate::pipeline::reminders::{REMINDER_TEMPLATE, SWEEP_REMINDERS};
use crate::runner::backend::SetEntry;
use crate::runner::{Attempt, AttemptOutcome};
use crate::scenario::format::{Expect, Invariant, OrdersExpectation};
use crate::store::{Order, Reminder};

/// What a death notification says (`<JobClass> won't be retried: <message>`).
pub const DEATH_MARK: &str = "won't be retried";

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    pub invariant: Invariant,
    /// The order it is about, when it is about one.
    pub order_id: Option<i64>,
    /// The reminder it is about (`reminders_per_reminder`).
    pub reminder_id: Option<i64>,
    pub expected: String,
    pub found: String,
    /// A plain sentence fragment, e.g. "order 1 was charged 2 times".
    pub message: String,
    /// The ledger records involved, with what the client was told.
    pub records: Vec<Record>,
    /// The job history: the attempts whose first argument is the order id
    /// (for a reminder, the sweeps; for the dead set, the dead jobs' attempts).
    pub attempts: Vec<Attempt>,
}

/// What the run is held to: the keys `[expect]` gives, and for the invariant
/// a `violation` names, its safe value (1 per order or reminder,
/// `all-complete`, 0 dead, notified or lost), so the violation can be found.
pub fn effective(expect: &Expect) -> Expect {
    let mut held = expect.clone();
    match expect.violation {
        None => {}
        Some(Invariant::ChargesPerOrder) => held.charges_per_order = Some(1),
        Some(Invariant::EmailsPerOrder) => held.emails_per_order = Some(1),
        Some(Invariant::FulfillmentsPerOrder) => held.fulfillments_per_order = Some(1),
        Some(Invariant::RemindersPerReminder) => held.reminders_per_reminder = Some(1),
        Some(Invariant::Orders) => held.orders = Some(OrdersExpectation::AllComplete),
        Some(Invariant::DeadJobs) => held.dead_jobs = Some(0),
        Some(Invariant::Notified) => held.notified = Some(0),
        Some(Invariant::LostJobs) => held.lost_jobs = Some(0),
    }
    held
}

/// The expectations the check evaluates, as `key = value`, in invariant order.
pub fn checked(expect: &Expect) -> Vec<(Invariant, String)> {
    let held = effective(expect);
    let mut list = Vec::new();
    let mut count = |invariant: Invariant, value: Option<u32>| {
        if let Some(n) = value {
            list.push((invariant, n.to_string()));
        }
    };
    count(Invariant::ChargesPerOrder, held.charges_per_order);
    count(Invariant::EmailsPerOrder, held.emails_per_order);
    count(Invariant::FulfillmentsPerOrder, held.fulfillments_per_order);
    count(Invariant::RemindersPerReminder, held.reminders_per_reminder);
    if let Some(orders) = held.orders {
        list.push((Invariant::Orders, orders_key(orders).to_string()));
    }
    let mut count = |invariant: Invariant, value: Option<u32>| {
        if let Some(n) = value {
            list.push((invariant, n.to_string()));
        }
    };
    count(Invariant::DeadJobs, held.dead_jobs);
    count(Invariant::Notified, held.notified);
    count(Invariant::LostJobs, held.lost_jobs);
    list
}

fn orders_key(orders: OrdersExpectation) -> &'static str {
    match orders {
        OrdersExpectation::AllComplete => "all-complete",
        OrdersExpectation::AllSettled => "all-settled",
    }
}

/// Checks a finished run against `[expect]` (see [`effective`]). Violations
/// come in invariant order, then by order or reminder id.
pub fn check(expect: &Expect, snapshot: &Snapshot) -> Vec<Violation> {
    let held = effective(expect);
    let lab = Lab::new(snapshot);
    let mut found = Vec::new();
    if let Some(n) = held.charges_per_order {
        found.extend(lab.per_order(&CHARGES, n));
    }
    if let Some(n) = held.emails_per_order {
        found.extend(lab.per_order(&EMAILS, n));
    }
    if let Some(n) = held.fulfillments_per_order {
        found.extend(lab.per_order(&FULFILLMENTS, n));
    }
    if let Some(n) = held.reminders_per_reminder {
        found.extend(lab.reminders(n));
    }
    if let Some(orders) = held.orders {
        found.extend(lab.orders(orders));
    }
    if let Some(n) = held.dead_jobs {
        found.extend(lab.dead_jobs(n));
    }
    if let Some(n) = held.notified {
        found.extend(lab.notified(n));
    }
    if let Some(n) = held.lost_jobs {
        found.extend(lab.lost_jobs(n));
    }
    found
}

/// One of the per-order effects: charges, confirmation emails, fulfillments.
struct Effect {
    invariant: Invariant,
    service: Service,
    /// The order column that records the effect's id.
    column: &'static str,
    /// What the id names: "charge", "email", "fulfillment request".
    id_noun: &'static str,
    /// Counted, singular and plural: "successful charge(s)".
    counted: (&'static str, &'static str),
    /// Whether a record of the service's ledger is this effect for the order
    /// (successful or not: a declined charge is listed, not counted).
    belongs: fn(&Record, i64) -> bool,
    recorded: fn(&Order) -> Option<&str>,
    /// "order 1 was charged 2 times".
    said: fn(&str, usize) -> String,
}

const CHARGES: Effect = Effect {
    invariant: Invariant::ChargesPerOrder,
    service: Service::Payments,
    column: "charge_id",
    id_noun: "charge",
    counted: ("successful charge", "successful charges"),
    belongs: is_for_order,
    recorded: |o| o.charge_id.as_deref(),
    said: |who, n| match n {
        0 => format!("{who} was never charged"),
        1 => format!("{who} was charged once"),
        n => format!("{who} was charged {n} times"),
    },
};

const EMAILS: Effect = Effect {
    invariant: Invariant::EmailsPerOrder,
    service: Service::Email,
    column: "email_id",
    id_noun: "confirmation email",
    counted: ("confirmation email", "confirmation emails"),
    belongs: |r, id| {
        template(r) == Some(CONFIRMATION_TEMPLATE)
            && r.request
                .pointer("/template_data/order_id")
                .and_then(scalar_to_string)
                == Some(id.to_string())
    },
    recorded: |o| o.email_id.as_deref(),
    said: |who, n| match n {
        0 => format!("{who} got no confirmation email"),
        1 => format!("{who} got 1 confirmation email"),
        n => format!("{who} got {n} confirmation emails"),
    },
};

const FULFILLMENTS: Effect = Effect {
    invariant: Invariant::FulfillmentsPerOrder,
    service: Service::Fulfillment,
    column: "fulfillment_request_id",
    id_noun: "fulfillment request",
    counted: ("fulfillment request", "fulfillment requests"),
    belongs: is_for_order,
    recorded: |o| o.fulfillment_request_id.as_deref(),
    said: |who, n| match n {
        0 => format!("{who} was never sent to fulfillment"),
        1 => format!("{who} was sent to fulfillment once"),
        n => format!("{who} was sent to fulfillment {n} times"),
    },
};

fn is_for_order(record: &Record, id: i64) -> bool {
    record.order_id() == Some(id.to_string())
}

fn template(record: &Record) -> Option<&str> {
    record.request.get("template_id").and_then(Value::as_str)
}

fn is_reminder_email(record: &Record, id: i64) -> bool {
    template(record) == Some(REMINDER_TEMPLATE)
        && record
            .request
            .pointer("/template_data/reminder_id")
            .and_then(scalar_to_string)
            == Some(id.to_string())
}

fn is_death(record: &Record) -> bool {
    exception_message(record).is_some_and(|m| m.contains(DEATH_MARK))
}

fn exception_message(record: &Record) -> Option<&str> {
    record
        .request
        .get("exception_message")
        .and_then(Value::as_str)
}

fn exception_class(record: &Record) -> Option<&str> {
    record
        .request
        .get("exception_class")
        .and_then(Value::as_str)
}

/// Whether a job's first argument is `id` (as a number or as text).
fn first_arg_is(args: &[Value], id: i64) -> bool {
    args.first().and_then(scalar_to_string) == Some(id.to_string())
}

fn first_arg(args: &[Value]) -> Option<i64> {
    args.first()
        .and_then(scalar_to_string)
        .and_then(|s| s.parse().ok())
}

/// "2 successful charges", "1 confirmation email".
fn amount(n: usize, (one, many): (&str, &str)) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn ids(records: &[&Record]) -> String {
    records
        .iter()
        .map(|r| r.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A list of items for a sentence: "a", "a and b", "a, b and c".
fn listed(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// A snapshot, indexed for the checks.
struct Lab<'a> {
    snapshot: &'a Snapshot,
    /// By id.
    orders: Vec<&'a Order>,
    /// For each entry of the dead set (same index), the death notification
    /// matched to it, if any.
    death_notices: Vec<Option<&'a Record>>,
}

impl<'a> Lab<'a> {
    fn new(snapshot: &'a Snapshot) -> Self {
        let mut orders: Vec<&Order> = snapshot.orders.iter().collect();
        orders.sort_by_key(|o| o.id);
        let death_notices = match_deaths(
            &snapshot.dead,
            snapshot.ledger(Service::ErrorCatcher).iter().collect(),
        );
        Lab {
            snapshot,
            orders,
            death_notices,
        }
    }

    fn attempts_for(&self, order_id: i64) -> Vec<Attempt> {
        self.snapshot
            .history
            .iter()
            .filter(|a| first_arg_is(&a.args, order_id))
            .cloned()
            .collect()
    }

    /// The dead-set entries for an order, with their death notification.
    fn dead_for(&self, order_id: i64) -> Vec<(&'a SetEntry, Option<&'a Record>)> {
        self.snapshot
            .dead
            .iter()
            .zip(&self.death_notices)
            .filter(|(entry, _)| first_arg_is(&entry.job.args, order_id))
            .map(|(entry, notice)| (entry, *notice))
            .collect()
    }

    fn pending_for(&self, order_id: i64) -> bool {
        self.snapshot
            .pending
            .iter()
            .any(|job| first_arg_is(&job.args, order_id))
    }

    fn outbox_for(&self, order_id: i64) -> bool {
        self.snapshot
            .outbox_pending
            .iter()
            .any(|entry| entry.order_id == order_id)
    }

    /// Every record of the three effect ledgers for the order.
    fn records_for(&self, order_id: i64) -> Vec<Record> {
        [Service::Payments, Service::Email, Service::Fulfillment]
            .into_iter()
            .flat_map(|service| self.snapshot.ledger(service))
            .filter(|r| is_for_order(r, order_id))
            .cloned()
            .collect()
    }

    /// Lost: not complete, not declined, and nothing left that could finish
    /// it — no dead job, no pending job, no pending outbox row.
    fn is_lost(&self, order: &Order) -> bool {
        !order.is_complete()
            && !order.is_declined()
            && self.dead_for(order.id).is_empty()
            && !self.pending_for(order.id)
            && !self.outbox_for(order.id)
    }

    /// Where an unfinished order stands: "it stopped at charged, and its
    /// CompleteOrderJob is in the dead set".
    fn whereabouts(&self, order: &Order) -> String {
        let dead = self.dead_for(order.id);
        let next = if let Some((entry, _)) = dead.first() {
            format!("its {} is in the dead set", entry.job.class)
        } else if self.pending_for(order.id) {
            "a job for it is still waiting to run".to_string()
        } else if self.outbox_for(order.id) {
            "its outbox row was never relayed".to_string()
        } else {
            "no job for it is left to run (lost)".to_string()
        };
        format!("it stopped at {}, and {next}", order.state())
    }

    fn per_order(&self, effect: &Effect, per_order: u32) -> Vec<Violation> {
        let ledger = self.snapshot.ledger(effect.service);
        let mut found = Vec::new();
        for order in &self.orders {
            let records: Vec<&Record> = ledger
                .iter()
                .filter(|r| (effect.belongs)(r, order.id))
                .collect();
            let successes: Vec<&Record> =
                records.iter().copied().filter(|r| r.is_success()).collect();
            let (want, who, why) = if order.is_declined() {
                (0, format!("declined order {}", order.id), " (declined)")
            } else {
                (per_order as usize, format!("order {}", order.id), "")
            };
            if successes.len() != want {
                found.push(Violation {
                    invariant: effect.invariant,
                    order_id: Some(order.id),
                    reminder_id: None,
                    expected: format!("{}{why}", amount(want, effect.counted)),
                    found: amount(successes.len(), effect.counted),
                    message: (effect.said)(&who, successes.len()),
                    records: records.iter().map(|r| (*r).clone()).collect(),
                    attempts: self.attempts_for(order.id),
                });
            }
            let Some(recorded) = (effect.recorded)(order) else {
                continue;
            };
            if successes.iter().any(|r| r.id == recorded) {
                continue;
            }
            let mut involved: Vec<Record> = records.iter().map(|r| (*r).clone()).collect();
            let elsewhere = ledger.iter().find(|r| r.id == recorded);
            let whose = match elsewhere {
                None => format!(
                    "there is no {recorded} in the {} ledger",
                    effect.service.name()
                ),
                Some(r) => {
                    if !involved.iter().any(|i| i.id == r.id) {
                        involved.push(r.clone());
                    }
                    match r.order_id() {
                        Some(other) if other != order.id.to_string() => {
                            format!("{recorded} in the ledger is for order {other}")
                        }
                        _ => format!("{recorded} in the ledger did not succeed"),
                    }
                }
            };
            found.push(Violation {
                invariant: effect.invariant,
                order_id: Some(order.id),
                reminder_id: None,
                expected: if successes.is_empty() {
                    format!(
                        "no {} (the {} ledger has none for order {})",
                        effect.column,
                        effect.service.name(),
                        order.id
                    )
                } else {
                    format!("{} = one of {}", effect.column, ids(&successes))
                },
                found: format!("{} = {recorded}", effect.column),
                message: format!(
                    "order {} records {} {recorded}, which is not one of its {} in the {} ledger: {whose}",
                    order.id,
                    effect.id_noun,
                    effect.counted.1,
                    effect.service.name()
                ),
                records: involved,
                attempts: self.attempts_for(order.id),
            });
        }
        found
    }

    fn reminders(&self, per_reminder: u32) -> Vec<Violation> {
        let ledger = self.snapshot.ledger(Service::Email);
        let sweeps: Vec<Attempt> = self
            .snapshot
            .history
            .iter()
            .filter(|a| a.class == SWEEP_REMINDERS)
            .cloned()
            .collect();
        let mut reminders: Vec<&Reminder> = self.snapshot.reminders.iter().collect();
        reminders.sort_by_key(|r| r.id);
        let counted = ("reminder email", "reminder emails");
        let mut found = Vec::new();
        for reminder in reminders {
            let sent: Vec<&Record> = ledger
                .iter()
                .filter(|r| is_reminder_email(r, reminder.id))
                .collect();
            let want = per_reminder as usize;
            let who = format!("reminder {}", reminder.id);
            if sent.len() != want {
                found.push(Violation {
                    invariant: Invariant::RemindersPerReminder,
                    order_id: None,
                    reminder_id: Some(reminder.id),
                    expected: amount(want, counted),
                    found: amount(sent.len(), counted),
                    message: match sent.len() {
                        0 => format!("{who} was never sent"),
                        1 => format!("{who} was sent once"),
                        n => format!("{who} was sent {n} times"),
                    },
                    records: sent.iter().map(|r| (*r).clone()).collect(),
                    attempts: sweeps.clone(),
                });
            }
            if let Some(recorded) = reminder.email_id.as_deref() {
                if !sent.iter().any(|r| r.id == recorded) {
                    found.push(Violation {
                        invariant: Invariant::RemindersPerReminder,
                        order_id: None,
                        reminder_id: Some(reminder.id),
                        expected: if sent.is_empty() {
                            format!("no email_id (the email ledger has none for {who})")
                        } else {
                            format!("email_id = one of {}", ids(&sent))
                        },
                        found: format!("email_id = {recorded}"),
                        message: format!(
                            "{who} records email {recorded}, which is not one of its reminder emails in the email ledger"
                        ),
                        records: sent.iter().map(|r| (*r).clone()).collect(),
                        attempts: sweeps.clone(),
                    });
                }
            }
        }
        found
    }

    fn orders(&self, expectation: OrdersExpectation) -> Vec<Violation> {
        let mut found = Vec::new();
        for order in &self.orders {
            if order.is_complete() || order.is_declined() {
                continue;
            }
            let dead = self.dead_for(order.id);
            let mut records = self.records_for(order.id);
            records.extend(dead.iter().filter_map(|(_, n)| n.map(Record::clone)));
            let (expected, found_state, message) = match expectation {
                OrdersExpectation::AllComplete => (
                    "complete (charged, emailed, fulfilled) or declined".to_string(),
                    self.state_found(order),
                    format!(
                        "order {} did not complete: {}",
                        order.id,
                        self.whereabouts(order)
                    ),
                ),
                OrdersExpectation::AllSettled => {
                    if dead.iter().any(|(_, notice)| notice.is_some()) {
                        continue;
                    }
                    let message = match dead.first() {
                        Some((entry, _)) => format!(
                            "order {}'s {} is in the dead set, but no death notification was sent for it",
                            order.id, entry.job.class
                        ),
                        None => format!(
                            "order {} is not settled (complete, declined or dead): {}",
                            order.id,
                            self.whereabouts(order)
                        ),
                    };
                    (
                        "complete, declined, or dead with a death notification".to_string(),
                        self.state_found(order),
                        message,
                    )
                }
            };
            found.push(Violation {
                invariant: Invariant::Orders,
                order_id: Some(order.id),
                reminder_id: None,
                expected,
                found: found_state,
                message,
                records,
                attempts: self.attempts_for(order.id),
            });
        }
        found
    }

    /// "charged; job dead, not notified", "placed; lost".
    fn state_found(&self, order: &Order) -> String {
        let dead = self.dead_for(order.id);
        let fate = if !dead.is_empty() {
            if dead.iter().any(|(_, n)| n.is_some()) {
                "job dead, notified"
            } else {
                "job dead, not notified"
            }
        } else if self.pending_for(order.id) {
            "job pending"
        } else if self.outbox_for(order.id) {
            "outbox row pending"
        } else {
            "lost"
        };
        format!("{}; {fate}", order.state())
    }

    fn dead_jobs(&self, want: u32) -> Vec<Violation> {
        let dead = &self.snapshot.dead;
        if dead.len() == want as usize {
            return Vec::new();
        }
        let counted = ("dead job", "dead jobs");
        let jobs: Vec<String> = dead
            .iter()
            .map(|entry| {
                let job = &entry.job;
                let whose =
                    first_arg(&job.args).map_or_else(String::new, |id| format!(" for order {id}"));
                let why = job
                    .error_message
                    .as_deref()
                    .map_or_else(String::new, |m| format!(" ({m})"));
                format!("{}{whose}{why}", job.class)
            })
            .collect();
        let message = if dead.is_empty() {
            "no job is in the dead set".to_string()
        } else {
            format!(
                "{} in the dead set: {}",
                amount(dead.len(), ("job is", "jobs are")),
                listed(&jobs)
            )
        };
        let jids: Vec<&str> = dead.iter().map(|e| e.job.jid.as_str()).collect();
        Vec::from([Violation {
            invariant: Invariant::DeadJobs,
            order_id: single(dead.iter().filter_map(|e| first_arg(&e.job.args))),
            reminder_id: None,
            expected: amount(want as usize, counted),
            found: amount(dead.len(), counted),
            message,
            records: self
                .death_notices
                .iter()
                .flatten()
                .map(|r| (*r).clone())
                .collect(),
            attempts: self
                .snapshot
                .history
                .iter()
                .filter(|a| jids.contains(&a.jid.as_str()))
                .cloned()
                .collect(),
        }])
    }

    fn notified(&self, want: u32) -> Vec<Violation> {
        let ledger = self.snapshot.ledger(Service::ErrorCatcher);
        if ledger.len() == want as usize {
            return Vec::new();
        }
        let counted = ("notification", "notifications");
        let what: Vec<String> = ledger
            .iter()
            .map(|r| {
                format!(
                    "{}: {}",
                    exception_class(r).unwrap_or("?"),
                    exception_message(r).unwrap_or("?")
                )
            })
            .collect();
        let message = match ledger.len() {
            0 => "the error catcher was never notified".to_string(),
            1 => format!("the error catcher was notified once: {}", what[0]),
            n => format!(
                "the error catcher was notified {n} times: {}",
                what.join("; ")
            ),
        };
        // The failed attempts whose error was notified (as itself, or as a death).
        let attempts: Vec<Attempt> = self
            .snapshot
            .history
            .iter()
            .filter(|a| match &a.outcome {
                AttemptOutcome::Failed {
                    error_class,
                    error_message,
                    ..
                } => ledger.iter().any(|r| {
                    exception_class(r) == Some(error_class.as_str())
                        && exception_message(r).is_some_and(|m| {
                            m == error_message || m.ends_with(&format!(": {error_message}"))
                        })
                }),
                _ => false,
            })
            .cloned()
            .collect();
        Vec::from([Violation {
            invariant: Invariant::Notified,
            order_id: single(attempts.iter().filter_map(|a| first_arg(&a.args))),
            reminder_id: None,
            expected: amount(want as usize, counted),
            found: amount(ledger.len(), counted),
            message,
            records: ledger.to_vec(),
            attempts,
        }])
    }

    fn lost_jobs(&self, want: u32) -> Vec<Violation> {
        let lost: Vec<&Order> = self
            .orders
            .iter()
            .copied()
            .filter(|o| self.is_lost(o))
            .collect();
        if lost.len() == want as usize {
            return Vec::new();
        }
        let counted = ("lost order", "lost orders");
        let message = if lost.is_empty() {
            "no order was lost".to_string()
        } else {
            let each: Vec<String> = lost
                .iter()
                .map(|o| format!("order {} (stopped at {})", o.id, o.state()))
                .collect();
            format!(
                "{} lost: not complete, not declined, and no job, dead job or outbox row left for {}",
                listed(&each),
                if lost.len() == 1 { "it" } else { "them" }
            )
        };
        Vec::from([Violation {
            invariant: Invariant::LostJobs,
            order_id: single(lost.iter().map(|o| o.id)),
            reminder_id: None,
            expected: amount(want as usize, counted),
            found: amount(lost.len(), counted),
            message,
            records: lost.iter().flat_map(|o| self.records_for(o.id)).collect(),
            attempts: lost.iter().flat_map(|o| self.attempts_for(o.id)).collect(),
        }])
    }
}

/// The one order a set of ids names, if they all name the same one.
fn single(mut ids: impl Iterator<Item = i64>) -> Option<i64> {
    let first = ids.next()?;
    ids.all(|id| id == first).then_some(first)
}

/// Pairs each dead job with a death notification, one notification per job:
/// the message the death handler writes for it
/// (`<JobClass> won't be retried: <error message>`) if there is one, else any
/// death notification for a job of its class. The notification does not name
/// the order, so two dead jobs of one class with one notification leave the
/// later death unnotified.
fn match_deaths<'a>(dead: &[SetEntry], notices: Vec<&'a Record>) -> Vec<Option<&'a Record>> {
    let mut free: Vec<&Record> = notices.into_iter().filter(|r| is_death(r)).collect();
    let mut matched = vec![None; dead.len()];
    let mut order: Vec<usize> = (0..dead.len()).collect();
    order.sort_by_key(|&i| dead[i].at_ms);
    // Exact messages first, so a vague match cannot take another job's notice.
    for exact in [true, false] {
        for &i in &order {
            if matched[i].is_some() {
                continue;
            }
            let job = &dead[i].job;
            let prefix = format!("{} {DEATH_MARK}", job.class);
            let full = job
                .error_message
                .as_deref()
                .map(|m| format!("{prefix}: {m}"));
            let fits = |r: &&Record| {
                let m = exception_message(r).unwrap_or_default();
                if exact {
                    full.as_deref() == Some(m)
                } else {
                    m.starts_with(&prefix)
                }
            };
            if let Some(at) = free.iter().position(fits) {
                matched[i] = Some(free.remove(at));
            }
        }
    }
    matched
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::runner::Job;
    use crate::store::OutboxEntry;
    use fake_services::Told;
    use serde_json::json;

    // ---- helpers: build a snapshot by hand ----

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
        Order {
            id,
            product_id: 1,
            user_id: 1,
            quantity: 1,
            address: "1 Main St".into(),
            email: "a@example.com".into(),
            amount_cents: 1000,
            created_at_ms: 0,
            charge_completed_at_ms: None,
            charge_successful: None,
            charge_decline_reason: None,
            charge_id: None,
            email_id: None,
            fulfillment_request_id: None,
        }
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

    fn expect(f: impl FnOnce(&mut Expect)) -> Expect {
        let mut e = Expect::default();
        f(&mut e);
        e
    }

    fn safe() -> Expect {
        Expect {
            charges_per_order: Some(1),
            emails_per_order: Some(1),
            fulfillments_per_order: Some(1),
            orders: Some(OrdersExpectation::AllComplete),
            dead_jobs: Some(0),
            notified: Some(0),
            lost_jobs: Some(0),
            ..Expect::default()
        }
    }

    fn invariants(v: &[Violation]) -> Vec<(Invariant, Option<i64>)> {
        v.iter().map(|v| (v.invariant, v.order_id)).collect()
    }

    // ---- per-order counts ----

    #[test]
    fn a_clean_run_passes_every_invariant() {
        let mut records = Vec::new();
        records.extend(once(1));
        records.extend(once(2));
        let snap = snapshot(vec![complete(1), complete(2)], records);
        assert_eq!(check(&safe(), &snap), vec![]);
    }

    #[test]
    fn a_double_charge_is_counted_from_the_ledger() {
        let mut records = Vec::from(once(1));
        records.push(charge("ch_1b", 1, told_fault(503, "send-then-crash")));
        records.extend(once(2));
        let mut snap = snapshot(vec![complete(1), complete(2)], records);
        snap.history = vec![
            attempt(
                "CompleteOrderJob",
                1,
                1,
                "w1",
                "v1",
                failed("E", "boom", "retry"),
            ),
            attempt("CompleteOrderJob", 2, 1, "w1", "v1", AttemptOutcome::Done),
            attempt("CompleteOrderJob", 1, 2, "w2", "v2", AttemptOutcome::Done),
        ];
        let found = check(&safe(), &snap);
        assert_eq!(
            invariants(&found),
            vec![(Invariant::ChargesPerOrder, Some(1))]
        );
        let v = &found[0];
        assert_eq!(v.message, "order 1 was charged 2 times");
        assert_eq!(v.expected, "1 successful charge");
        assert_eq!(v.found, "2 successful charges");
        let ids: Vec<&str> = v.records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["ch_1", "ch_1b"]);
        // Only order 1's attempts.
        assert_eq!(v.attempts.len(), 2);
        assert!(v.attempts.iter().all(|a| a.args == [json!(1)]));
    }

    #[test]
    fn a_declined_charge_does_not_count_but_is_listed() {
        // Order 1 was charged once after a decline: still exactly one success.
        let mut records = Vec::from(once(1));
        records.insert(0, declined_charge("ch_0", 1));
        let snap = snapshot(vec![complete(1)], records);
        assert_eq!(check(&safe(), &snap), vec![]);

        // Order 2 has only a declined attempt: never charged.
        let mut records = Vec::from(once(1));
        records.push(declined_charge("ch_2", 2));
        let snap = snapshot(vec![complete(1), placed(2)], records);
        let found = check(&expect(|e| e.charges_per_order = Some(1)), &snap);
        assert_eq!(
            invariants(&found),
            vec![(Invariant::ChargesPerOrder, Some(2))]
        );
        assert_eq!(found[0].message, "order 2 was never charged");
        assert_eq!(found[0].records.len(), 1, "the declined charge is listed");
    }

    #[test]
    fn missing_and_duplicated_emails_and_fulfillments() {
        let records = vec![
            charge("ch_1", 1, told_ok(201)),
            email("em_1", 1, told_ok(202)),
            email("em_1b", 1, told_fault(503, "send-then-crash")),
            fulfillment("fr_1", 1),
            charge("ch_2", 2, told_ok(201)),
            // A reminder email for "2" must not count as a confirmation.
            reminder_email("em_r", 2),
        ];
        let mut two = complete(2);
        two.email_id = None;
        two.fulfillment_request_id = None;
        let snap = snapshot(vec![complete(1), two], records);
        let e = expect(|e| {
            e.emails_per_order = Some(1);
            e.fulfillments_per_order = Some(1);
        });
        let found = check(&e, &snap);
        assert_eq!(
            invariants(&found),
            vec![
                (Invariant::EmailsPerOrder, Some(1)),
                (Invariant::EmailsPerOrder, Some(2)),
                (Invariant::FulfillmentsPerOrder, Some(2)),
            ]
        );
        assert_eq!(found[0].message, "order 1 got 2 confirmation emails");
        assert_eq!(found[0].found, "2 confirmation emails");
        assert_eq!(found[1].message, "order 2 got no confirmation email");
        assert_eq!(found[2].message, "order 2 was never sent to fulfillment");
        assert_eq!(found[2].expected, "1 fulfillment request");
    }

    #[test]
    fn a_count_other_than_one_can_be_expected() {
        let mut records = Vec::from(once(1));
        records.push(email("em_1b", 1, told_ok(202)));
        let snap = snapshot(vec![complete(1)], records);
        assert_eq!(
            check(&expect(|e| e.emails_per_order = Some(2)), &snap),
            vec![]
        );
        let found = check(&expect(|e| e.emails_per_order = Some(1)), &snap);
        assert_eq!(
            invariants(&found),
            vec![(Invariant::EmailsPerOrder, Some(1))]
        );
    }

    #[test]
    fn a_declined_order_must_have_no_effect() {
        let snap = snapshot(vec![declined(3)], vec![declined_charge("ch_3", 3)]);
        assert_eq!(check(&safe(), &snap), vec![]);

        // Declined, yet charged (and emailed): each is a violation, expecting 0.
        let snap = snapshot(
            vec![declined(3)],
            vec![
                charge("ch_3", 3, told_ok(201)),
                email("em_3", 3, told_ok(202)),
            ],
        );
        let found = check(&safe(), &snap);
        assert_eq!(
            invariants(&found),
            vec![
                (Invariant::ChargesPerOrder, Some(3)),
                (Invariant::EmailsPerOrder, Some(3)),
            ]
        );
        assert_eq!(found[0].message, "declined order 3 was charged once");
        assert_eq!(found[0].expected, "0 successful charges (declined)");
        assert_eq!(
            found[1].message,
            "declined order 3 got 1 confirmation email"
        );
    }

    #[test]
    fn the_ids_on_the_order_must_be_the_ledgers() {
        // The order recorded ch_9, which the ledger has for order 5.
        let mut one = complete(1);
        one.charge_id = Some("ch_9".into());
        let mut records = Vec::from(once(1));
        records.push(charge("ch_9", 5, told_ok(201)));
        records.extend(once(5));
        let mut five = complete(5);
        five.charge_id = Some("ch_5".into());
        let snap = snapshot(vec![one, five], records);
        let found = check(&expect(|e| e.charges_per_order = Some(1)), &snap);
        // Order 5 has two charges (ch_5, ch_9); order 1's id is wrong.
        assert_eq!(
            invariants(&found),
            vec![
                (Invariant::ChargesPerOrder, Some(1)),
                (Invariant::ChargesPerOrder, Some(5)),
            ]
        );
        let v = &found[0];
        assert_eq!(v.expected, "charge_id = one of ch_1");
        assert_eq!(v.found, "charge_id = ch_9");
        assert!(
            v.message.contains("order 1 records charge ch_9"),
            "{}",
            v.message
        );
        assert!(v.message.contains("is for order 5"), "{}", v.message);
        assert!(
            v.records.iter().any(|r| r.id == "ch_9"),
            "the stray record is shown"
        );

        // An email id the ledger never had.
        let mut one = complete(1);
        one.email_id = Some("em_ghost".into());
        let snap = snapshot(vec![one], Vec::from(once(1)));
        let found = check(&safe(), &snap);
        assert_eq!(
            invariants(&found),
            vec![(Invariant::EmailsPerOrder, Some(1))]
        );
        assert!(found[0]
            .message
            .contains("there is no em_ghost in the email ledger"));

        // A fulfillment id recorded with no request in the ledger at all.
        let snap = snapshot(
            vec![complete(1)],
            vec![
                charge("ch_1", 1, told_ok(201)),
                email("em_1", 1, told_ok(202)),
            ],
        );
        let found = check(&expect(|e| e.fulfillments_per_order = Some(1)), &snap);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert_eq!(found[1].found, "fulfillment_request_id = fr_1");
        assert!(found[1].expected.starts_with("no fulfillment_request_id"));
    }

    // ---- reminders ----

    fn reminder(id: i64, email_id: Option<&str>) -> Reminder {
        Reminder {
            id,
            email: "a@example.com".into(),
            due_at_ms: 0,
            claimed_by: None,
            claimed_at_ms: None,
            sent_at_ms: email_id.map(|_| 1),
            email_id: email_id.map(Into::into),
        }
    }

    #[test]
    fn reminders_are_counted_per_reminder() {
        let records = vec![
            reminder_email("em_a", 1),
            reminder_email("em_b", 2),
            reminder_email("em_c", 2),
            // A confirmation email for order 1 is not a reminder.
            email("em_x", 1, told_ok(202)),
        ];
        let mut snap = snapshot(vec![], records);
        snap.reminders = vec![
            reminder(1, Some("em_a")),
            reminder(2, Some("em_c")),
            reminder(3, None),
        ];
        snap.history = vec![attempt(
            SWEEP_REMINDERS,
            0,
            1,
            "w1",
            "v1",
            AttemptOutcome::Done,
        )];
        let e = expect(|e| e.reminders_per_reminder = Some(1));
        let found = check(&e, &snap);
        let which: Vec<Option<i64>> = found.iter().map(|v| v.reminder_id).collect();
        assert_eq!(which, [Some(2), Some(3)]);
        assert_eq!(found[0].message, "reminder 2 was sent 2 times");
        assert_eq!(found[1].message, "reminder 3 was never sent");
        assert_eq!(found[0].attempts.len(), 1, "the sweeps are the history");

        // A recorded id that is not one of its emails.
        snap.reminders = vec![reminder(1, Some("em_b"))];
        let found = check(&e, &snap);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].found, "email_id = em_b");
    }

    // ---- orders ----

    #[test]
    fn all_complete_names_where_each_order_stopped() {
        let mut charged = complete(2);
        charged.email_id = None;
        charged.fulfillment_request_id = None;
        let mut snap = snapshot(
            vec![complete(1), charged, declined(3), placed(4)],
            Vec::from(once(1)),
        );
        snap.pending = vec![job("CompleteOrderJob", 4)];
        let e = expect(|e| e.orders = Some(OrdersExpectation::AllComplete));
        let found = check(&e, &snap);
        assert_eq!(
            invariants(&found),
            vec![(Invariant::Orders, Some(2)), (Invariant::Orders, Some(4))]
        );
        assert_eq!(
            found[0].message,
            "order 2 did not complete: it stopped at charged, and no job for it is left to run (lost)"
        );
        assert_eq!(found[0].found, "charged; lost");
        assert!(found[1].message.contains("still waiting to run"));
    }

    #[test]
    fn all_settled_needs_a_dead_job_and_its_death_notification() {
        let class = "CompleteOrderJob";
        let error = "Payments::ServerError: 503";
        let death = format!("{class} won't be retried: {error}");
        let e = expect(|e| e.orders = Some(OrdersExpectation::AllSettled));

        // Dead and notified: settled.
        let mut snap = snapshot(
            vec![complete(1), placed(2), declined(3)],
            vec![notification("err_1", "Payments::ServerError", &death)],
        );
        snap.dead = vec![dead(class, 2, error)];
        assert_eq!(check(&e, &snap), vec![]);
        // ... but not complete.
        let found = check(
            &expect(|e| e.orders = Some(OrdersExpectation::AllComplete)),
            &snap,
        );
        assert_eq!(invariants(&found), vec![(Invariant::Orders, Some(2))]);
        assert!(found[0]
            .message
            .contains("its CompleteOrderJob is in the dead set"));
        assert_eq!(found[0].records.len(), 1, "the death notification is shown");

        // Dead, but only a transient error was notified: not settled.
        let mut snap = snapshot(
            vec![placed(2)],
            vec![notification("err_1", "Payments::ServerError", error)],
        );
        snap.dead = vec![dead(class, 2, error)];
        let found = check(&e, &snap);
        assert_eq!(invariants(&found), vec![(Invariant::Orders, Some(2))]);
        assert_eq!(
            found[0].message,
            "order 2's CompleteOrderJob is in the dead set, but no death notification was sent for it"
        );
        assert_eq!(found[0].found, "placed; job dead, not notified");

        // Two dead jobs, one death notification: one order is unsettled.
        let mut snap = snapshot(
            vec![placed(2), placed(4)],
            vec![notification(
                "err_1",
                "E",
                &format!("{class} won't be retried: other"),
            )],
        );
        snap.dead = vec![dead(class, 2, error), dead(class, 4, "other")];
        let found = check(&e, &snap);
        assert_eq!(invariants(&found), vec![(Invariant::Orders, Some(2))]);

        // Neither complete, declined nor dead.
        let snap = snapshot(vec![placed(5)], vec![]);
        let found = check(&e, &snap);
        assert!(found[0].message.starts_with("order 5 is not settled"));
    }

    // ---- global counts ----

    #[test]
    fn dead_jobs_and_notifications_are_counted() {
        let class = "CompleteOrderJob";
        let death = format!("{class} won't be retried: boom");
        let mut snap = snapshot(
            vec![placed(2)],
            vec![
                notification("err_1", "E", "boom"),
                notification("err_2", "E", &death),
            ],
        );
        snap.dead = vec![dead(class, 2, "boom")];
        snap.history = vec![
            attempt(class, 2, 1, "w1", "v1", failed("E", "boom", "retry")),
            attempt(class, 2, 2, "w1", "v1", failed("E", "boom", "dead")),
            attempt(class, 7, 1, "w1", "v1", AttemptOutcome::Done),
        ];
        snap.history[2].jid = "other".into();
        assert_eq!(
            check(
                &expect(|e| {
                    e.dead_jobs = Some(1);
                    e.notified = Some(2);
                }),
                &snap
            ),
            vec![]
        );

        let found = check(
            &expect(|e| {
                e.dead_jobs = Some(0);
                e.notified = Some(0);
            }),
            &snap,
        );
        assert_eq!(
            invariants(&found),
            vec![
                (Invariant::DeadJobs, Some(2)),
                (Invariant::Notified, Some(2))
            ]
        );
        assert_eq!(found[0].expected, "0 dead jobs");
        assert_eq!(found[0].found, "1 dead job");
        assert_eq!(
            found[0].message,
            "1 job is in the dead set: CompleteOrderJob for order 2 (boom)"
        );
        assert_eq!(found[0].attempts.len(), 2, "the dead job's attempts");
        assert_eq!(found[1].records.len(), 2);
        assert!(found[1]
            .message
            .starts_with("the error catcher was notified 2 times: E: boom"));
        assert_eq!(found[1].attempts.len(), 2, "the notified failures");

        let found = check(&expect(|e| e.dead_jobs = Some(2)), &snap);
        assert_eq!(found[0].found, "1 dead job");
    }

    #[test]
    fn an_order_with_nothing_left_to_run_is_lost() {
        let mut snap = snapshot(
            vec![
                complete(1),
                declined(2),
                placed(3),
                placed(4),
                placed(5),
                placed(6),
            ],
            Vec::from(once(1)),
        );
        snap.pending = vec![job("CompleteOrderJob", 4)];
        snap.dead = vec![dead("CompleteOrderJob", 5, "boom")];
        snap.outbox_pending = vec![OutboxEntry {
            id: 1,
            order_id: 6,
            job_class: "CompleteOrderJob".into(),
            args: json!([6]),
            queue: "high".into(),
            created_at_ms: 0,
            relayed_at_ms: None,
        }];
        snap.history = vec![attempt(
            "CompleteOrderJob",
            3,
            1,
            "w1",
            "v1",
            AttemptOutcome::Died {
                error_message: "killed".into(),
            },
        )];
        let e = expect(|e| e.lost_jobs = Some(0));
        let found = check(&e, &snap);
        assert_eq!(invariants(&found), vec![(Invariant::LostJobs, Some(3))]);
        assert_eq!(found[0].found, "1 lost order");
        assert!(found[0]
            .message
            .starts_with("order 3 (stopped at placed) lost"));
        assert_eq!(found[0].attempts.len(), 1);

        snap.pending.clear();
        let found = check(&e, &snap);
        assert_eq!(found[0].found, "2 lost orders");
        assert_eq!(found[0].order_id, None, "two orders: none singled out");
        assert_eq!(check(&expect(|e| e.lost_jobs = Some(2)), &snap), vec![]);
    }

    // ---- `violation = X` ----

    #[test]
    fn a_named_violation_is_checked_with_the_safe_expectation() {
        let mut records = Vec::from(once(1));
        records.push(charge("ch_1b", 1, told_ok(201)));
        let snap = snapshot(vec![complete(1)], records);
        let e = expect(|e| e.violation = Some(Invariant::ChargesPerOrder));
        let found = check(&e, &snap);
        assert_eq!(
            invariants(&found),
            vec![(Invariant::ChargesPerOrder, Some(1))]
        );

        // The other keys given are checked too; keys not given are not.
        let e = expect(|e| {
            e.violation = Some(Invariant::ChargesPerOrder);
            e.emails_per_order = Some(2);
        });
        let found = check(&e, &snap);
        assert_eq!(
            invariants(&found),
            vec![
                (Invariant::ChargesPerOrder, Some(1)),
                (Invariant::EmailsPerOrder, Some(1)),
            ]
        );

        // The safe value replaces one given for the named key.
        let e = expect(|e| {
            e.violation = Some(Invariant::ChargesPerOrder);
            e.charges_per_order = Some(2);
        });
        assert_eq!(check(&e, &snap).len(), 1);

        for (named, key) in [
            (Invariant::Orders, "orders = all-complete"),
            (Invariant::DeadJobs, "dead_jobs = 0"),
            (Invariant::Notified, "notified = 0"),
            (Invariant::LostJobs, "lost_jobs = 0"),
            (
                Invariant::RemindersPerReminder,
                "reminders_per_reminder = 1",
            ),
        ] {
            let listed: Vec<String> = checked(&expect(|e| e.violation = Some(named)))
                .into_iter()
                .map(|(i, v)| format!("{i} = {v}"))
                .collect();
            assert_eq!(listed, [key]);
        }
    }
}
