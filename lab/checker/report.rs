//! The verdict on a scenario run and its report: plain text for a person
//! reading a CI log, JSON for tools.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::invariants::{checked, Violation};
use crate::runner::{Attempt, AttemptOutcome};
use crate::scenario::format::{Expect, Invariant};

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
}

impl Verdict {
    /// A run that could not be judged (its lab could not be set up).
    pub fn failed(reason: impl Into<String>) -> Self {
        Self {
            passed: false,
            violations: Vec::new(),
            expected_violation: None,
            reason: reason.into(),
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

/// The report a person reads in a CI log.
pub fn render_text(scenario_name: &str, verdict: &Verdict) -> String {
    let mut out = String::new();
    let status = if verdict.passed { "PASSED" } else { "FAILED" };
    let _ = writeln!(out, "scenario \"{scenario_name}\": {status}");
    let _ = writeln!(out, "  {}", verdict.reason);
    let total = verdict.violations.len();
    for (i, v) in verdict.violations.iter().enumerate() {
        out.push('\n');
        let about = match (v.order_id, v.reminder_id) {
            (Some(order), _) => format!(", order {order}"),
            (None, Some(reminder)) => format!(", reminder {reminder}"),
            (None, None) => String::new(),
        };
        let marker = if verdict.expected_violation == Some(v.invariant) {
            " (the expected violation)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "violation {} of {total}: {}{about}{marker}",
            i + 1,
            v.invariant
        );
        let _ = writeln!(out, "  {}", v.message);
        let _ = writeln!(out, "  expected: {}", v.expected);
        let _ = writeln!(out, "  found:    {}", v.found);
        render_records(&mut out, v);
        render_attempts(&mut out, &v.attempts);
    }
    out
}

fn render_records(out: &mut String, v: &Violation) {
    if v.records.is_empty() {
        let _ = writeln!(out, "  ledger records: none");
        return;
    }
    let _ = writeln!(out, "  ledger records:");
    let rows: Vec<[String; 4]> = v
        .records
        .iter()
        .map(|r| {
            [
                format!("{} {}", r.service.name(), r.id),
                format!("told {}", r.told.describe()),
                format!("key {}", r.idempotency_key.as_deref().unwrap_or("(none)")),
                format!("created {}", r.created_at()),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..4)
        .map(|c| rows.iter().map(|row| row[c].len()).max().unwrap_or(0))
        .collect();
    for (row, record) in rows.iter().zip(&v.records) {
        let mut line = String::from("   ");
        for (cell, width) in row.iter().zip(&widths) {
            let _ = write!(line, " {cell:<width$} ");
        }
        if let Some(during) = during(record.created_at_ms, &v.attempts) {
            let _ = write!(line, " {during}");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

/// The attempt that was running when an effect was made, when the history
/// says so unambiguously (or at least which code version was running).
fn during(at_ms: u64, attempts: &[Attempt]) -> Option<String> {
    let running: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.started_ms <= at_ms && at_ms <= a.finished_ms)
        .collect();
    match running.as_slice() {
        [] => None,
        [one] => Some(format!(
            "during attempt {} of {} on {} (code version {})",
            one.attempt, one.class, one.process, one.code_version
        )),
        [first, rest @ ..] if rest.iter().all(|a| a.code_version == first.code_version) => Some(
            format!("during attempts on code version {}", first.code_version),
        ),
        _ => None,
    }
}

fn render_attempts(out: &mut String, attempts: &[Attempt]) {
    if attempts.is_empty() {
        let _ = writeln!(out, "  job history: none");
        return;
    }
    let _ = writeln!(out, "  job history:");
    for a in attempts {
        let _ = writeln!(
            out,
            "    attempt {} of {} {} on {} (code version {}): {}",
            a.attempt,
            a.class,
            a.jid,
            a.process,
            a.code_version,
            outcome(&a.outcome)
        );
    }
    // Which code version ran what, when more than one did.
    let mut versions: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for a in attempts {
        versions
            .entry(a.code_version.as_str())
            .or_default()
            .push(format!(
                "attempt {} of {} on {}",
                a.attempt, a.class, a.process
            ));
    }
    if versions.len() > 1 {
        let _ = writeln!(
            out,
            "  code versions: these attempts ran on {} code versions:",
            versions.len()
        );
        for (version, ran) in versions {
            let _ = writeln!(out, "    {version}: {}", ran.join(", "));
        }
    }
}

fn outcome(outcome: &AttemptOutcome) -> String {
    match outcome {
        AttemptOutcome::Done => "done".to_string(),
        AttemptOutcome::Failed {
            error_class,
            error_message,
            transient,
            then,
        } => {
            let kind = if *transient { "transient" } else { "permanent" };
            let next = match *then {
                "retry" => "will be retried",
                "dead" => "moved to the dead set",
                "discarded" => "discarded",
                other => other,
            };
            format!("failed with {error_class}: {error_message} ({kind}; {next})")
        }
        AttemptOutcome::Died { error_message } => {
            format!("the process died during it: {error_message}")
        }
    }
}

/// The verdict as JSON (the [`Verdict`] serialized).
pub fn render_json(verdict: &Verdict) -> serde_json::Value {
    serde_json::to_value(verdict).expect("a verdict always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::check;
    use crate::checker::invariants::tests::*;
    use crate::scenario::format::OrdersExpectation;

    /// Order 1 charged twice: once by v1 (which crashed), once by v2.
    fn double_charge() -> crate::checker::Snapshot {
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

    fn expect_violation(invariant: Invariant) -> Expect {
        Expect {
            violation: Some(invariant),
            ..Expect::default()
        }
    }

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

    #[test]
    fn the_text_report_names_everything_a_person_needs() {
        let snap = double_charge();
        let expect = expect_violation(Invariant::ChargesPerOrder);
        let v = verdict(&expect, check(&expect, &snap));
        let text = render_text("payments send-then-crash, no key", &v);
        for needle in [
            "scenario \"payments send-then-crash, no key\": PASSED",
            "expected a charges_per_order violation, and order 1 was charged 2 times",
            "violation 1 of 1: charges_per_order, order 1 (the expected violation)",
            "expected: 1 successful charge",
            "found:    2 successful charges",
            "payments ch_1 ",
            "told 503 (send-then-crash)",
            "payments ch_1b",
            "told 201",
            "key order-1",
            "key (none)",
            "created 1970-01-01T00:00:00.150Z",
            "during attempt 1 of CompleteOrderJob on worker-a (code version v1)",
            "during attempt 2 of CompleteOrderJob on worker-b (code version v2)",
            "attempt 1 of CompleteOrderJob jid1 on worker-a (code version v1): failed with \
             Payments::ServerError: 503 Service Unavailable (transient; will be retried)",
            "attempt 2 of CompleteOrderJob jid1 on worker-b (code version v2): done",
            "code versions: these attempts ran on 2 code versions:",
            "    v1: attempt 1 of CompleteOrderJob on worker-a",
            "    v2: attempt 2 of CompleteOrderJob on worker-b",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }

    #[test]
    fn one_code_version_is_not_called_out() {
        let mut snap = double_charge();
        snap.history[1].code_version = "v1".into();
        let expect = expect_violation(Invariant::ChargesPerOrder);
        let v = verdict(&expect, check(&expect, &snap));
        let text = render_text("s", &v);
        assert!(!text.contains("code versions:"), "{text}");
        assert!(text.contains("(code version v1): done"), "{text}");
    }

    #[test]
    fn a_failing_report_and_its_json() {
        let mut snap = snapshot(vec![placed(4)], vec![]);
        snap.history = vec![attempt(
            "CompleteOrderJob",
            4,
            1,
            "worker-a",
            "v1",
            AttemptOutcome::Died {
                error_message: "killed after charge".into(),
            },
        )];
        let expect = Expect {
            lost_jobs: Some(0),
            ..Expect::default()
        };
        let v = verdict(&expect, check(&expect, &snap));
        let text = render_text("worker dies", &v);
        assert!(
            text.starts_with("scenario \"worker dies\": FAILED\n"),
            "{text}"
        );
        assert!(
            text.contains("violation 1 of 1: lost_jobs, order 4\n"),
            "{text}"
        );
        assert!(text.contains("ledger records: none"), "{text}");
        assert!(
            text.contains("(code version v1): the process died during it: killed after charge"),
            "{text}"
        );

        let json = render_json(&v);
        assert_eq!(json["passed"], false);
        assert_eq!(json["expected_violation"], serde_json::Value::Null);
        assert_eq!(json["violations"][0]["invariant"], "lost_jobs");
        assert_eq!(json["violations"][0]["order_id"], 4);
        assert_eq!(json["violations"][0]["attempts"][0]["outcome"], "died");
        assert_eq!(json["reason"], v.reason.as_str());
    }
}
