//! A scenario's result as a person reads it in a CI log: each run's verdict
//! and, when it failed, the checker's report.

use std::fmt::Write as _;

use super::engine::ScenarioResult;
use crate::checker::render_text;

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
        } else {
            let _ = writeln!(out, "{title}: ok");
        }
    }
    out
}
