//! The verdict on a scenario run: whether it ended as its scenario
//! expected — no violation, or the one `violation = X` names — and why, in
//! one sentence.

use std::fmt::Write as _;

use serde::Serialize;

use super::expect::{checked, Expect, Invariant};
use super::violation::Violation;

/// How many violations a reason quotes before "and N more".
const QUOTED: usize = 5;

/// Whether a run ended as its scenario expected, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub passed: bool,
    /// Every violation found (with `violation = X`, the others too).
    pub violations: Vec<Violation>,
    /// The scenario's `violation = X`, if it documents a broken variant.
    pub expected_violation: Option<Invariant>,
    /// Why it passed or failed, in one sentence.
    pub reason: String,
    /// Whether the violations carry the job history: the lab's own runs
    /// know every attempt; a run against a target does not (its Sidekiq
    /// entries are on the run's timeline instead).
    #[serde(skip)]
    pub job_history: bool,
}

impl Verdict {
    /// A run that could not be judged (its lab could not be set up).
    pub fn failed(reason: impl Into<String>) -> Self {
        Self {
            passed: false,
            violations: Vec::new(),
            expected_violation: None,
            reason: reason.into(),
            job_history: true,
        }
    }
}

/// Judges the violations [`check`](super::check) found. Without `violation`,
/// the run passes iff there are none; with `violation = X`, iff at least one
/// is a violation of X (any others are listed, and do not fail it).
pub fn verdict(expect: &Expect, violations: Vec<Violation>) -> Verdict {
    let (passed, reason) = match expect.violation {
        None if violations.is_empty() => {
            let held: Vec<String> = checked(expect)
                .into_iter()
                .map(|(invariant, value)| format!("{invariant} = {value}"))
                .collect();
            (
                true,
                format!(
                    "expected no violation, and none was found (checked {})",
                    held.join(", ")
                ),
            )
        }
        None => (
            false,
            format!(
                "expected no violation, found {}: {}",
                violations.len(),
                summary(violations.iter())
            ),
        ),
        Some(wanted) => {
            let (of_it, others): (Vec<&Violation>, Vec<&Violation>) =
                violations.iter().partition(|v| v.invariant == wanted);
            let also = if others.is_empty() {
                String::new()
            } else {
                format!(
                    " (also found {} other: {})",
                    others.len(),
                    summary(others.iter().copied())
                )
            };
            if of_it.is_empty() {
                (
                    false,
                    format!(
                        "expected {} violation, but {}: the pipeline is safe against this fault, or the scenario does not trigger it{also}",
                        a(wanted),
                        held(wanted)
                    ),
                )
            } else {
                (
                    true,
                    format!(
                        "expected {} violation, and {}{also}",
                        a(wanted),
                        summary(of_it.iter().copied())
                    ),
                )
            }
        }
    };
    Verdict {
        passed,
        expected_violation: expect.violation,
        violations,
        reason,
        job_history: true,
    }
}

/// "a charges_per_order", "an emails_per_order".
fn a(invariant: Invariant) -> String {
    let key = invariant.key();
    let article = if key.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {key}")
}

/// What holding the invariant at its safe value means, in words.
fn held(invariant: Invariant) -> &'static str {
    match invariant {
        Invariant::ChargesPerOrder => "every order was charged exactly once",
        Invariant::EmailsPerOrder => "every order got exactly one confirmation email",
        Invariant::FulfillmentsPerOrder => "every order was sent to fulfillment exactly once",
        Invariant::RemindersPerReminder => "every reminder was sent exactly once",
        Invariant::Orders => "every order completed",
        Invariant::DeadJobs => "no job died",
        Invariant::Notified => "the error catcher was never notified",
        Invariant::LostJobs => "no order was lost",
    }
}

/// The violations' messages, "; "-separated, the first few only.
fn summary<'a>(violations: impl ExactSizeIterator<Item = &'a Violation>) -> String {
    let total = violations.len();
    let said: Vec<&str> = violations
        .take(QUOTED)
        .map(|v| v.message.as_str())
        .collect();
    let more = total - said.len();
    let mut text = said.join("; ");
    if more > 0 {
        let _ = write!(text, "; and {more} more");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::check;
    use crate::checker::expect::OrdersExpectation;
    use crate::checker::fixtures::*;

    #[test]
    fn no_violation_expected_and_none_found_passes() {
        let mut records = Vec::from(once(1));
        records.extend(once(2));
        let snap = snapshot(vec![complete(1), complete(2)], records);
        let expect = Expect {
            charges_per_order: Some(1),
            orders: Some(OrdersExpectation::AllComplete),
            ..Expect::default()
        };
        let v = verdict(&expect, check(&expect, &snap));
        assert!(v.passed);
        assert_eq!(
            v.reason,
            "expected no violation, and none was found (checked charges_per_order = 1, orders = all-complete)"
        );
    }

    #[test]
    fn an_unexpected_violation_fails_and_says_what() {
        let snap = double_charge();
        let expect = Expect {
            charges_per_order: Some(1),
            emails_per_order: Some(1),
            ..Expect::default()
        };
        let v = verdict(&expect, check(&expect, &snap));
        assert!(!v.passed);
        assert_eq!(v.violations.len(), 2, "{:#?}", v.violations);
        assert_eq!(
            v.reason,
            "expected no violation, found 2: order 1 was charged 2 times; order 1 got no confirmation email"
        );
    }

    #[test]
    fn the_expected_violation_passes_when_found() {
        let snap = double_charge();
        let expect = Expect {
            emails_per_order: Some(1),
            ..expect_violation(Invariant::ChargesPerOrder)
        };
        let v = verdict(&expect, check(&expect, &snap));
        assert!(v.passed, "{}", v.reason);
        assert_eq!(v.expected_violation, Some(Invariant::ChargesPerOrder));
        assert_eq!(
            v.reason,
            "expected a charges_per_order violation, and order 1 was charged 2 times \
             (also found 1 other: order 1 got no confirmation email)"
        );
        assert_eq!(v.violations.len(), 2, "the others are listed too");
    }

    #[test]
    fn the_expected_violation_fails_when_absent() {
        let mut records = Vec::from(once(1));
        records.extend(once(2));
        let snap = snapshot(vec![complete(1), complete(2)], records);
        let expect = expect_violation(Invariant::ChargesPerOrder);
        let v = verdict(&expect, check(&expect, &snap));
        assert!(!v.passed);
        assert_eq!(
            v.reason,
            "expected a charges_per_order violation, but every order was charged exactly once: \
             the pipeline is safe against this fault, or the scenario does not trigger it"
        );

        let expect = expect_violation(Invariant::EmailsPerOrder);
        let v = verdict(&expect, check(&expect, &snap));
        assert!(!v.passed);
        assert!(
            v.reason.starts_with(
                "expected an emails_per_order violation, but every order got exactly one confirmation email:"
            ),
            "{}",
            v.reason
        );

        // Another violation does not stand in for the expected one.
        let snap = double_charge();
        let expect = Expect {
            charges_per_order: Some(1),
            ..expect_violation(Invariant::Notified)
        };
        let v = verdict(&expect, check(&expect, &snap));
        assert!(!v.passed);
        assert!(
            v.reason.starts_with(
                "expected a notified violation, but the error catcher was never notified:"
            ),
            "{}",
            v.reason
        );
        assert!(
            v.reason
                .ends_with("(also found 1 other: order 1 was charged 2 times)"),
            "{}",
            v.reason
        );
    }

    #[test]
    fn long_lists_are_cut_short() {
        let orders = (1..=7).map(placed).collect();
        let snap = snapshot(orders, vec![]);
        let expect = Expect {
            charges_per_order: Some(1),
            ..Expect::default()
        };
        let v = verdict(&expect, check(&expect, &snap));
        assert!(v
            .reason
            .starts_with("expected no violation, found 7: order 1 was never charged;"));
        assert!(
            v.reason.ends_with("order 5 was never charged; and 2 more"),
            "{}",
            v.reason
        );
    }
}
