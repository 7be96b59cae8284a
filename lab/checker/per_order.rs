//! `charges_per_order`, `emails_per_order`, `fulfillments_per_order`: the
//! ledger counts of [`effects`](super::effects), held against the lab's
//! order rows.
//!
//! The rows add two things the ledgers cannot say: which orders there are
//! (a declined one must have no effect at all), and the id each order
//! recorded for the effect, which must be one of its successes in the
//! ledger — not another order's, not a failed one, not one the provider
//! never had.

use fake_services::Record;

use super::effects::{count, Effect, CHARGES, EMAILS, FULFILLMENTS};
use super::indexed::Indexed;
use super::violation::Violation;
use super::wording::{amount, ids};
use crate::store::Order;

/// An effect and the order column that records its id.
pub(super) struct Recorded {
    pub(super) effect: &'static Effect,
    /// The column's name, for messages.
    pub(super) column: &'static str,
    pub(super) read: fn(&Order) -> Option<&str>,
}

pub(super) const CHARGE_ID: Recorded = Recorded {
    effect: &CHARGES,
    column: "charge_id",
    read: |o| o.charge_id.as_deref(),
};

pub(super) const EMAIL_ID: Recorded = Recorded {
    effect: &EMAILS,
    column: "email_id",
    read: |o| o.email_id.as_deref(),
};

pub(super) const FULFILLMENT_REQUEST_ID: Recorded = Recorded {
    effect: &FULFILLMENTS,
    column: "fulfillment_request_id",
    read: |o| o.fulfillment_request_id.as_deref(),
};

impl Indexed<'_> {
    /// Each order's count of the effect (`per_order`, or 0 when declined),
    /// then the id its row recorded.
    pub(super) fn per_order(&self, recorded: &Recorded, per_order: u32) -> Vec<Violation> {
        let effect = recorded.effect;
        let ledger = self.snapshot.ledger(effect.service);
        let mut found = Vec::new();
        for order in &self.orders {
            let counted = count(&effect.names_order, ledger, &order.id.to_string());
            let (records, successes) = (&counted.records, &counted.successes);
            let (want, who, why) = if order.is_declined() {
                (0, format!("declined order {}", order.id), " (declined)")
            } else {
                (per_order as usize, format!("order {}", order.id), "")
            };
            if successes.len() != want {
                found.push(Violation {
                    invariant: effect.invariant,
                    order_id: Some(order.id.into()),
                    reminder_id: None,
                    expected: format!("{}{why}", amount(want, effect.counted)),
                    found: amount(successes.len(), effect.counted),
                    message: (effect.said)(&who, successes.len()),
                    records: records.iter().map(|r| (*r).clone()).collect(),
                    attempts: self.attempts_for(order.id),
                });
            }
            let Some(id) = (recorded.read)(order) else {
                continue;
            };
            if successes.iter().any(|r| r.id == id) {
                continue;
            }
            found.push(self.stray_id(recorded, order, id, records, successes));
        }
        found
    }

    /// The order recorded `id`, which is not one of its successes.
    fn stray_id(
        &self,
        recorded: &Recorded,
        order: &Order,
        id: &str,
        records: &[&Record],
        successes: &[&Record],
    ) -> Violation {
        let effect = recorded.effect;
        let ledger = self.snapshot.ledger(effect.service);
        let mut involved: Vec<Record> = records.iter().map(|r| (*r).clone()).collect();
        let elsewhere = ledger.iter().find(|r| r.id == id);
        let whose = match elsewhere {
            None => format!("there is no {id} in the {} ledger", effect.service.name()),
            Some(r) => {
                if !involved.iter().any(|i| i.id == r.id) {
                    involved.push(r.clone());
                }
                match r.order_id() {
                    Some(other) if other != order.id.to_string() => {
                        format!("{id} in the ledger is for order {other}")
                    }
                    _ => format!("{id} in the ledger did not succeed"),
                }
            }
        };
        Violation {
            invariant: effect.invariant,
            order_id: Some(order.id.into()),
            reminder_id: None,
            expected: if successes.is_empty() {
                format!(
                    "no {} (the {} ledger has none for order {})",
                    recorded.column,
                    effect.service.name(),
                    order.id
                )
            } else {
                format!("{} = one of {}", recorded.column, ids(successes))
            },
            found: format!("{} = {id}", recorded.column),
            message: format!(
                "order {} records {} {id}, which is not one of its {} in the {} ledger: {whose}",
                order.id,
                effect.id_noun,
                effect.counted.1,
                effect.service.name()
            ),
            records: involved,
            attempts: self.attempts_for(order.id),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::checker::check;
    use crate::checker::expect::Invariant;
    use crate::checker::fixtures::*;
    use crate::runner::AttemptOutcome;
    use serde_json::json;

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
}
