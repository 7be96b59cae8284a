//! How each order ended: `orders = "all-complete"` / `"all-settled"` (every
//! order complete or declined, or, settled, with its job dead and the death
//! notified) and `lost_jobs` (orders nothing is left to finish: no pending
//! job, no dead job, no outbox row).

use fake_services::Record;

use super::expect::{Invariant, OrdersExpectation};
use super::indexed::Indexed;
use super::violation::Violation;
use super::wording::{amount, listed, single};
use crate::store::Order;

impl Indexed<'_> {
    /// Lost: not complete, not declined, and nothing left that could finish
    /// it — no dead job, no pending job, no pending outbox row.
    pub(super) fn is_lost(&self, order: &Order) -> bool {
        !order.is_complete()
            && !order.is_declined()
            && self.dead_for(order.id).is_empty()
            && !self.pending_for(order.id)
            && !self.outbox_for(order.id)
    }

    /// Where an unfinished order stands: "it stopped at charged, and its
    /// CompleteOrderJob is in the dead set".
    pub(super) fn whereabouts(&self, order: &Order) -> String {
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

    pub(super) fn orders(&self, expectation: OrdersExpectation) -> Vec<Violation> {
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
                order_id: Some(order.id.into()),
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
    pub(super) fn state_found(&self, order: &Order) -> String {
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

    pub(super) fn lost_jobs(&self, want: u32) -> Vec<Violation> {
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
            order_id: single(lost.iter().map(|o| o.id)).map(Into::into),
            reminder_id: None,
            expected: amount(want as usize, counted),
            found: amount(lost.len(), counted),
            message,
            records: lost.iter().flat_map(|o| self.records_for(o.id)).collect(),
            attempts: lost.iter().flat_map(|o| self.attempts_for(o.id)).collect(),
        }])
    }
}

#[cfg(test)]
mod tests {
    use crate::checker::check;
    use crate::checker::expect::{Invariant, OrdersExpectation};
    use crate::checker::fixtures::*;
    use crate::runner::AttemptOutcome;
    use crate::store::OutboxEntry;
    use serde_json::json;

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

    /// The report on an order that stopped shows what the providers did for
    /// it, and nothing they did for the others.
    #[test]
    fn a_stopped_order_carries_its_own_ledger_records() {
        let mut charged = complete(2);
        charged.email_id = None;
        charged.fulfillment_request_id = None;
        let mut records = Vec::from(once(1));
        records.push(charge("ch_2", 2, told_ok(201)));
        let snap = snapshot(vec![complete(1), charged], records);
        let found = check(
            &expect(|e| e.orders = Some(OrdersExpectation::AllComplete)),
            &snap,
        );
        assert_eq!(invariants(&found), vec![(Invariant::Orders, Some(2))]);
        let ids: Vec<&str> = found[0].records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, vec!["ch_2"]);
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

    #[test]
    fn the_found_state_names_each_fate() {
        let e = expect(|e| e.orders = Some(OrdersExpectation::AllComplete));
        let death = "CompleteOrderJob won't be retried: boom";
        let mut snap = snapshot(
            vec![placed(1), placed(2), placed(3), placed(4), placed(5)],
            vec![notification("err_1", "E", death)],
        );
        snap.pending = vec![job("CompleteOrderJob", 1)];
        snap.outbox_pending = vec![OutboxEntry {
            id: 1,
            order_id: 2,
            job_class: "CompleteOrderJob".into(),
            args: json!([2]),
            queue: "high".into(),
            created_at_ms: 0,
            relayed_at_ms: None,
        }];
        snap.dead = vec![
            dead("CompleteOrderJob", 3, "boom"),
            dead("CompleteOrderJob", 4, "other"),
        ];
        let found: Vec<String> = check(&e, &snap).into_iter().map(|v| v.found).collect();
        assert_eq!(
            found,
            [
                "placed; job pending",
                "placed; outbox row pending",
                "placed; job dead, notified",
                "placed; job dead, not notified",
                "placed; lost",
            ]
        );
        let found = check(&e, &snap);
        assert!(found[1]
            .message
            .contains("its outbox row was never relayed"));
    }
}
