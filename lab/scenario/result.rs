//! A scenario's result — one run, or one per step for `step = "every"` —
//! and the text a person reads in a CI log: each run's verdict and, when it
//! failed, the checker's report.

use std::fmt::Write as _;

use serde::Serialize;

use super::timeline::Timeline;
use crate::checker::{render_text, Snapshot, Verdict};
use crate::pipeline::Step;

/// One run of a scenario (a scenario with `step = "every"` has one per step).
#[derive(Debug, Serialize)]
pub struct Run {
    /// The step the worker died after, for `step = "every"` runs.
    pub step: Option<Step>,
    pub verdict: Verdict,
    /// Set when the run hit the deadline: what was still pending.
    pub unfinished: Option<String>,
    /// Virtual time the run took (wall time for a run against a target).
    pub virtual_ms: u64,
    pub snapshot: Snapshot,
    /// What happened when (filled by runs against a target).
    pub timeline: Timeline,
    /// The log file of each of the target's processes: (process, path).
    pub logs: Vec<(String, String)>,
}

impl Run {
    pub fn passed(&self) -> bool {
        self.unfinished.is_none() && self.verdict.passed
    }
}

/// A scenario's result.
#[derive(Debug, Serialize)]
pub struct ScenarioResult {
    pub name: String,
    pub path: Option<String>,
    pub runs: Vec<Run>,
    /// Real time, all runs.
    pub elapsed_ms: u64,
}

impl ScenarioResult {
    /// Every run ended as the scenario expected.
    pub fn passed(&self) -> bool {
        self.runs.iter().all(Run::passed)
    }

    /// Why it did not end as expected, in one sentence: the first failed
    /// run's, the deadline it missed or its verdict's reason (empty when
    /// every run passed).
    pub fn failure_reason(&self) -> String {
        self.runs
            .iter()
            .find(|r| !r.passed())
            .map(|r| {
                r.unfinished
                    .clone()
                    .unwrap_or_else(|| r.verdict.reason.clone())
            })
            .unwrap_or_default()
    }
}

/// The whole result: one block per run (one per step for `step = "every"`).
pub fn render(result: &ScenarioResult) -> String {
    let mut out = String::new();
    if let Some(path) = &result.path {
        let _ = writeln!(out, "{path}");
    }
    for run in &result.runs {
        let title = match run.step {
            Some(step) => format!("{} [worker dies after {}]", result.name, step.name()),
            None => result.name.clone(),
        };
        if let Some(unfinished) = &run.unfinished {
            let _ = writeln!(out, "{title}: FAILED: {unfinished}");
        }
        if !run.passed() || result.runs.len() == 1 {
            out.push_str(&render_text(&title, &run.verdict));
            if !out.ends_with('\n') {
                out.push('\n');
            }
            render_story(&mut out, run);
        } else {
            let _ = writeln!(out, "{title}: ok");
        }
    }
    out
}

/// A target run's timeline (per order that broke an expectation, or whole
/// when none is named) and its processes' logs.
fn render_story(out: &mut String, run: &Run) {
    if !run.timeline.is_empty() {
        let mut orders: Vec<String> = run
            .verdict
            .violations
            .iter()
            .filter_map(|v| v.order_id.as_ref().map(|o| o.0.clone()))
            .collect();
        orders.dedup();
        if orders.is_empty() {
            let _ = writeln!(out, "\n  timeline:");
            out.push_str(&run.timeline.render());
        }
        for order in orders {
            let _ = writeln!(out, "\n  timeline of order {order}:");
            out.push_str(&run.timeline.render_for(&order));
        }
    }
    if !run.logs.is_empty() {
        let _ = writeln!(out, "\n  logs:");
        for (process, path) in &run.logs {
            let _ = writeln!(out, "    {process}: {path}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(step: Option<Step>, passed: bool, unfinished: Option<&str>) -> Run {
        let mut verdict = Verdict::failed(format!("reason {step:?}"));
        verdict.passed = passed;
        Run {
            step,
            verdict,
            unfinished: unfinished.map(Into::into),
            virtual_ms: 0,
            snapshot: Snapshot::default(),
            timeline: Timeline::default(),
            logs: Vec::new(),
        }
    }

    fn result(runs: Vec<Run>) -> ScenarioResult {
        ScenarioResult {
            name: "s".into(),
            path: Some("scenarios/s.toml".into()),
            runs,
            elapsed_ms: 1,
        }
    }

    #[test]
    fn the_reason_is_the_first_failed_runs() {
        let all_good = result(vec![run(None, true, None)]);
        assert!(all_good.passed());
        assert_eq!(all_good.failure_reason(), "");

        let late = result(vec![
            run(Some(Step::Charge), true, None),
            run(Some(Step::Email), true, Some("the run did not settle")),
            run(Some(Step::Fulfillment), false, None),
        ]);
        assert!(
            !late.passed(),
            "a run past its deadline fails, verdict or not"
        );
        assert_eq!(late.failure_reason(), "the run did not settle");

        let wrong = result(vec![
            run(Some(Step::Charge), true, None),
            run(None, false, None),
        ]);
        assert_eq!(wrong.failure_reason(), "reason None");
    }

    #[test]
    fn every_step_is_titled_and_only_failures_are_reported_in_full() {
        let text = render(&result(vec![
            run(Some(Step::Charge), true, None),
            run(Some(Step::Email), false, None),
        ]));
        assert!(text.starts_with("scenarios/s.toml\n"), "{text}");
        assert!(
            text.contains("s [worker dies after charge]: ok\n"),
            "{text}"
        );
        assert!(
            text.contains("scenario \"s [worker dies after email]\": FAILED"),
            "{text}"
        );
    }
}
