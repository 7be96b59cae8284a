//! A verdict's report: plain text for a person reading a CI log (each
//! violation with its ledger records and job history), JSON for tools.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::verdict::Verdict;
use super::violation::Violation;
use crate::runner::{Attempt, AttemptOutcome};

/// The report a person reads in a CI log.
pub fn render_text(scenario_name: &str, verdict: &Verdict) -> String {
    let mut out = String::new();
    let status = if verdict.passed { "PASSED" } else { "FAILED" };
    let _ = writeln!(out, "scenario \"{scenario_name}\": {status}");
    let _ = writeln!(out, "  {}", verdict.reason);
    let total = verdict.violations.len();
    for (i, v) in verdict.violations.iter().enumerate() {
        out.push('\n');
        let about = match (&v.order_id, v.reminder_id) {
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
        if verdict.job_history {
            render_attempts(&mut out, &v.attempts);
        }
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
    use crate::checker::expect::{Expect, Invariant};
    use crate::checker::fixtures::*;
    use crate::checker::verdict::verdict;

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
