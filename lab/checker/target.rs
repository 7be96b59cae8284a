//! The checks of a run against a target (a user's own app): the same
//! invariants, counted from the fake services' ledgers and Sidekiq's Redis
//! alone — the lab cannot see the app's database.
//!
//! Which orders there are is what the lab placed (the app's ids, read as the
//! target file's `id` says); where a ledger record names its order is the
//! target's `[match]`. `dead_jobs` and `notified` are the lab's own checks
//! over a [`Snapshot`] whose dead set and pending jobs are Sidekiq's.

use fake_services::Record;

use super::effects::{count, Effect, OrderMatch};
use super::expect::{effective, Expect, Invariant};
use super::indexed::Indexed;
use super::snapshot::Snapshot;
use super::violation::Violation;
use super::wording::{amount, listed};
use crate::runner::Job;

/// One effect a target's orders get, and where its records name the order.
#[derive(Clone)]
pub struct TargetEffect {
    /// The effect (its service, invariant and words).
    pub effect: &'static Effect,
    /// The JSON pointer into the request body (`/metadata/order_id`).
    pub order_at: String,
    /// Must every placed order get it (`effects` in the target file)?
    pub required: bool,
}

impl TargetEffect {
    fn names_order(&self) -> OrderMatch<'_> {
        OrderMatch {
            order_at: &self.order_at,
            template: None,
        }
    }
}

/// What a target run left behind, as the checker reads it.
pub struct TargetRun<'a> {
    /// The ledgers; the dead set and the jobs still to run are Sidekiq's
    /// (empty without `[sidekiq]`); no order rows, no job history.
    pub snapshot: &'a Snapshot,
    /// The app's ids of the orders the lab placed, in the order placed.
    pub placed: &'a [String],
    /// Charges, emails and fulfillments, with the target's `[match]`.
    pub effects: &'a [TargetEffect],
}

impl TargetRun<'_> {
    fn effect(&self, invariant: Invariant) -> Option<&TargetEffect> {
        self.effects
            .iter()
            .find(|e| e.effect.invariant == invariant)
    }

    fn ledger(&self, effect: &TargetEffect) -> &[Record] {
        self.snapshot.ledger(effect.effect.service)
    }

    /// The effects in `effects` the order has not had.
    fn missing(&self, order: &str) -> Vec<&TargetEffect> {
        self.effects
            .iter()
            .filter(|e| e.required)
            .filter(|e| {
                count(&e.names_order(), self.ledger(e), order)
                    .successes
                    .is_empty()
            })
            .collect()
    }

    /// Whether a job still to run names the order among its arguments.
    fn pending_for(&self, order: &str) -> bool {
        self.snapshot
            .pending
            .iter()
            .any(|job: &Job| names(&job.args, order))
    }

    /// Every effect record of the order, in the effects' order.
    fn records_for(&self, order: &str) -> Vec<Record> {
        self.effects
            .iter()
            .flat_map(|e| {
                count(&e.names_order(), self.ledger(e), order)
                    .records
                    .into_iter()
                    .cloned()
            })
            .collect()
    }

    /// Each placed order's count of one effect against `per_order`. When a
    /// ledger has records but none names a placed order, the `[match]` path
    /// is likely wrong, and the message says so.
    fn per_order(&self, invariant: Invariant, per_order: u32) -> Vec<Violation> {
        let Some(effect) = self.effect(invariant) else {
            return Vec::new();
        };
        let ledger = self.ledger(effect);
        let hint = self.match_hint(effect);
        let mut found = Vec::new();
        for order in self.placed {
            let counted = count(&effect.names_order(), ledger, order);
            let n = counted.successes.len();
            if n == per_order as usize {
                continue;
            }
            found.push(Violation {
                invariant,
                order_id: Some(order.as_str().into()),
                reminder_id: None,
                expected: amount(per_order as usize, effect.effect.counted),
                found: amount(n, effect.effect.counted),
                message: format!(
                    "{}{hint}",
                    (effect.effect.said)(&format!("order {order}"), n)
                ),
                records: counted.records.into_iter().cloned().collect(),
                attempts: Vec::new(),
            });
        }
        found
    }

    /// ", but the payments ledger has 2 records and none names a placed
    /// order at /metadata/order_id (they name 7 and 8): check `[match]`".
    fn match_hint(&self, effect: &TargetEffect) -> String {
        let ledger = self.ledger(effect);
        let how = effect.names_order();
        if ledger.is_empty()
            || ledger
                .iter()
                .any(|r| how.order_of(r).is_some_and(|o| self.placed.contains(&o)))
        {
            return String::new();
        }
        let named = super::effects::orders_named(&how, ledger);
        let they = if named.is_empty() {
            format!("no record has a value at {}", effect.order_at)
        } else {
            format!("they name {}", listed(&named))
        };
        format!(
            ", but the {} ledger has {} and none names a placed order ({they}): check the target's `[match]`",
            effect.effect.service.name(),
            amount(ledger.len(), ("record", "records")),
        )
    }

    /// `orders = "all-complete"`: every placed order got every effect in
    /// the target's `effects`.
    fn orders(&self) -> Vec<Violation> {
        let mut found = Vec::new();
        for order in self.placed {
            let missing = self.missing(order);
            if missing.is_empty() {
                continue;
            }
            let names: Vec<String> = missing
                .iter()
                .map(|e| e.effect.id_noun.to_string())
                .collect();
            let next = if self.pending_for(order) {
                "a job for it is still waiting to run"
            } else {
                "no job for it is left to run"
            };
            found.push(Violation {
                invariant: Invariant::Orders,
                order_id: Some(order.as_str().into()),
                reminder_id: None,
                expected: "every effect of the target (complete)".into(),
                found: format!("no {}", listed(&names)),
                message: format!(
                    "order {order} did not complete: it got no {}, and {next}",
                    listed(&names)
                ),
                records: self.records_for(order),
                attempts: Vec::new(),
            });
        }
        found
    }

    /// `lost_jobs`: placed orders still missing an effect, with no job left
    /// that names them.
    fn lost_jobs(&self, want: u32) -> Vec<Violation> {
        let lost: Vec<&String> = self
            .placed
            .iter()
            .filter(|o| !self.missing(o).is_empty() && !self.pending_for(o))
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
                .map(|o| {
                    let names: Vec<String> = self
                        .missing(o)
                        .iter()
                        .map(|e| e.effect.id_noun.to_string())
                        .collect();
                    format!("order {o} (no {})", listed(&names))
                })
                .collect();
            format!(
                "{} lost: an effect is missing and no job for {} is left to run",
                listed(&each),
                if lost.len() == 1 { "it" } else { "them" }
            )
        };
        Vec::from([Violation {
            invariant: Invariant::LostJobs,
            order_id: match lost.as_slice() {
                [one] => Some(one.as_str().into()),
                _ => None,
            },
            reminder_id: None,
            expected: amount(want as usize, counted),
            found: amount(lost.len(), counted),
            message,
            records: lost.iter().flat_map(|o| self.records_for(o)).collect(),
            attempts: Vec::new(),
        }])
    }
}

/// Whether a job's arguments name the order: an argument equal to its id,
/// or a hash with such a value one level down (`{"order_id": 7}`).
fn names(args: &[serde_json::Value], order: &str) -> bool {
    let is = |v: &serde_json::Value| {
        fake_services::ledger::scalar_to_string(v).as_deref() == Some(order)
    };
    args.iter().any(|arg| {
        is(arg)
            || arg
                .as_object()
                .is_some_and(|fields| fields.values().any(is))
    })
}

/// Checks a target run against `[expect]` (a `violation = X` checks X's
/// safe value). Violations come in invariant order, then by order.
pub fn check_target(expect: &Expect, run: &TargetRun) -> Vec<Violation> {
    let held = effective(expect);
    let mut found = Vec::new();
    for (invariant, n) in [
        (Invariant::ChargesPerOrder, held.charges_per_order),
        (Invariant::EmailsPerOrder, held.emails_per_order),
        (Invariant::FulfillmentsPerOrder, held.fulfillments_per_order),
    ] {
        if let Some(n) = n {
            found.extend(run.per_order(invariant, n));
        }
    }
    if held.orders.is_some() {
        found.extend(run.orders());
    }
    let lab = Indexed::new(run.snapshot);
    if let Some(n) = held.dead_jobs {
        found.extend(lab.dead_jobs(n));
    }
    if let Some(n) = held.notified {
        found.extend(lab.notified(n));
    }
    if let Some(n) = held.lost_jobs {
        found.extend(run.lost_jobs(n));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::effects::{CHARGES, EMAILS, FULFILLMENTS};
    use crate::checker::fixtures::{charge, email, fulfillment, told_fault, told_ok};
    use crate::checker::OrdersExpectation;
    use fake_services::Service;

    fn effects(required: &[bool; 3]) -> Vec<TargetEffect> {
        [
            (&CHARGES, "/metadata/order_id"),
            (&EMAILS, "/template_data/order_id"),
            (&FULFILLMENTS, "/metadata/order_id"),
        ]
        .into_iter()
        .zip(required)
        .map(|((effect, at), required)| TargetEffect {
            effect,
            order_at: at.into(),
            required: *required,
        })
        .collect()
    }

    fn snapshot(records: Vec<Record>) -> Snapshot {
        let mut ledgers: Vec<(Service, Vec<Record>)> =
            Service::ALL.iter().map(|s| (*s, Vec::new())).collect();
        for record in records {
            let at = ledgers
                .iter()
                .position(|(s, _)| *s == record.service)
                .unwrap();
            ledgers[at].1.push(record);
        }
        Snapshot {
            ledgers,
            ..Snapshot::default()
        }
    }

    fn keys(found: &[Violation]) -> Vec<(Invariant, Option<String>)> {
        found
            .iter()
            .map(|v| (v.invariant, v.order_id.as_ref().map(|o| o.0.clone())))
            .collect()
    }

    #[test]
    fn each_placed_order_is_counted_from_the_ledgers_alone() {
        let snap = snapshot(vec![
            charge("ch_1", 1, told_ok(201)),
            charge("ch_1b", 1, told_fault(503, "send-then-crash")),
            email("em_1", 1, told_ok(202)),
            fulfillment("fr_1", 1),
            charge("ch_2", 2, told_ok(201)),
            email("em_2", 2, told_ok(202)),
        ]);
        let placed = ["1".to_string(), "2".to_string()];
        let effects = effects(&[true; 3]);
        let run = TargetRun {
            snapshot: &snap,
            placed: &placed,
            effects: &effects,
        };
        let found = check_target(&Expect::exactly_once(), &run);
        assert_eq!(
            keys(&found),
            [
                (Invariant::ChargesPerOrder, Some("1".into())),
                (Invariant::FulfillmentsPerOrder, Some("2".into())),
                (Invariant::Orders, Some("2".into())),
                (Invariant::LostJobs, Some("2".into())),
            ]
        );
        assert_eq!(found[0].message, "order 1 was charged 2 times");
        assert_eq!(found[0].records.len(), 2);
        assert_eq!(
            found[2].message,
            "order 2 did not complete: it got no fulfillment request, and no job for it is left to run"
        );
    }

    #[test]
    fn an_order_with_a_job_left_is_not_lost() {
        let snap = Snapshot {
            pending: vec![Job::new(
                "RequestFulfillmentJob",
                vec![serde_json::json!({"order_id": "2"})],
                "default",
                "j1".into(),
                0,
            )],
            ..snapshot(vec![])
        };
        let placed = ["2".to_string()];
        let effects = effects(&[true; 3]);
        let run = TargetRun {
            snapshot: &snap,
            placed: &placed,
            effects: &effects,
        };
        assert!(run.lost_jobs(0).is_empty());
        let unrelated = Snapshot {
            pending: vec![Job::new(
                "OtherJob",
                vec![serde_json::json!(3)],
                "default",
                "j2".into(),
                0,
            )],
            ..snapshot(vec![])
        };
        let run = TargetRun {
            snapshot: &unrelated,
            ..run
        };
        assert_eq!(run.lost_jobs(0).len(), 1);
    }

    #[test]
    fn effects_a_target_does_not_have_are_not_required() {
        let snap = snapshot(vec![charge("ch_1", 1, told_ok(201))]);
        let placed = ["1".to_string()];
        let effects = effects(&[true, false, false]);
        let run = TargetRun {
            snapshot: &snap,
            placed: &placed,
            effects: &effects,
        };
        let expect = Expect {
            charges_per_order: Some(1),
            orders: Some(OrdersExpectation::AllComplete),
            lost_jobs: Some(0),
            ..Expect::default()
        };
        assert_eq!(check_target(&expect, &run), vec![]);
    }

    #[test]
    fn a_wrong_match_path_is_pointed_out() {
        let snap = snapshot(vec![charge("ch_1", 41, told_ok(201))]);
        let placed = ["1".to_string()];
        let effects = effects(&[true; 3]);
        let run = TargetRun {
            snapshot: &snap,
            placed: &placed,
            effects: &effects,
        };
        let found = run.per_order(Invariant::ChargesPerOrder, 1);
        assert_eq!(
            found[0].message,
            "order 1 was never charged, but the payments ledger has 1 record and none names a placed order (they name 41): check the target's `[match]`"
        );
    }
}
