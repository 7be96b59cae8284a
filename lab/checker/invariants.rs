//! [`check`]: a finished run against its `[expect]`, counted from the
//! providers' ledgers and the order rows — never from what the pipeline
//! believes it did.
//!
//! Each broken invariant is a [`Violation`] that names the order (or
//! reminder), what was expected and what was found, the ledger records
//! involved (with what the client was told about each) and the job history
//! of that order ([`violation`](super::violation)). The invariants
//! themselves are in their own files:
//! [`per_order`](super::per_order) (over [`effects`](super::effects)),
//! [`reminders`](super::reminders), [`settlement`](super::settlement) and
//! [`deaths`](super::deaths), over the snapshot's index,
//! [`indexed`](super::indexed).

use super::expect::{effective, Expect};
use super::indexed::Indexed;
use super::per_order::{CHARGE_ID, EMAIL_ID, FULFILLMENT_REQUEST_ID};
use super::snapshot::Snapshot;
use super::violation::Violation;

/// Checks a finished run against `[expect]` (see [`effective`]). Violations
/// come in invariant order, then by order or reminder id.
pub fn check(expect: &Expect, snapshot: &Snapshot) -> Vec<Violation> {
    let held = effective(expect);
    let lab = Indexed::new(snapshot);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::expect::{checked, Invariant};
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
