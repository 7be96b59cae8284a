//! [`check`]: a finished run against its `[expect]`, counted from the
//! providers' ledgers and the order rows — never from what the pipeline
//! believes it did.
//!
//! Each broken invariant is a [`Violation`] that names the order (or
//! reminder), what was expected and what was found, the ledger records
//! involved (with what the client was told about each) and the job history
//! of that order. The invariants themselves are in their own files:
//! [`per_order`](super::per_order) (over [`effects`](super::effects)),
//! [`reminders`](super::reminders), [`settlement`](super::settlement) and
//! [`deaths`](super::deaths); here is the index of the snapshot they share.

use fake_services::{Record, Service};
use serde::Serialize;

use super::deaths::match_deaths;
use super::expect::{effective, Expect, Invariant};
use super::per_order::{CHARGE_ID, EMAIL_ID, FULFILLMENT_REQUEST_ID};
use super::records::{first_arg_is, is_for_order};
use super::snapshot::Snapshot;
use crate::runner::backend::SetEntry;
use crate::runner::Attempt;
use crate::store::Order;

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

/// Checks a finished run against `[expect]` (see [`effective`]). Violations
/// come in invariant order, then by order or reminder id.
pub fn check(expect: &Expect, snapshot: &Snapshot) -> Vec<Violation> {
    let held = effective(expect);
    let lab = Lab::new(snapshot);
    let mut found = Vec::new();
    if let Some(n) = held.charges_per_order {
        found.extend(lab.per_order(&CHARGE_ID, n));
    }
    if let Some(n) = held.emails_per_order {
        found.extend(lab.per_order(&EMAIL_ID, n));
    }
    if let Some(n) = held.fulfillments_per_order {
        found.extend(lab.per_order(&FULFILLMENT_REQUEST_ID, n));
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

/// A snapshot, indexed for the checks.
pub(super) struct Lab<'a> {
    pub(super) snapshot: &'a Snapshot,
    /// By id.
    pub(super) orders: Vec<&'a Order>,
    /// For each entry of the dead set (same index), the death notification
    /// matched to it, if any.
    pub(super) death_notices: Vec<Option<&'a Record>>,
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

    /// The attempts at the order's jobs.
    pub(super) fn attempts_for(&self, order_id: i64) -> Vec<Attempt> {
        self.snapshot
            .history
            .iter()
            .filter(|a| first_arg_is(&a.args, order_id))
            .cloned()
            .collect()
    }

    /// The dead-set entries for an order, with their death notification.
    pub(super) fn dead_for(&self, order_id: i64) -> Vec<(&'a SetEntry, Option<&'a Record>)> {
        self.snapshot
            .dead
            .iter()
            .zip(&self.death_notices)
            .filter(|(entry, _)| first_arg_is(&entry.job.args, order_id))
            .map(|(entry, notice)| (entry, *notice))
            .collect()
    }

    /// Whether a job for the order would still run.
    pub(super) fn pending_for(&self, order_id: i64) -> bool {
        self.snapshot
            .pending
            .iter()
            .any(|job| first_arg_is(&job.args, order_id))
    }

    /// Whether the order's outbox row is still to be relayed.
    pub(super) fn outbox_for(&self, order_id: i64) -> bool {
        self.snapshot
            .outbox_pending
            .iter()
            .any(|entry| entry.order_id == order_id)
    }

    /// Every record of the three effect ledgers for the order.
    pub(super) fn records_for(&self, order_id: i64) -> Vec<Record> {
        [Service::Payments, Service::Email, Service::Fulfillment]
            .into_iter()
            .flat_map(|service| self.snapshot.ledger(service))
            .filter(|r| is_for_order(r, order_id))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::expect::checked;
    use crate::checker::fixtures::*;

    #[test]
    fn a_clean_run_passes_every_invariant() {
        let mut records = Vec::new();
        records.extend(once(1));
        records.extend(once(2));
        let snap = snapshot(vec![complete(1), complete(2)], records);
        assert_eq!(check(&safe(), &snap), vec![]);
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
