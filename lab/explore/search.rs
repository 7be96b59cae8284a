//! [`explore`]: proptest's runner over the fault plans, each case one run of
//! the scenario engine, shrinking a failure to the smallest plan that still
//! breaks the pipeline.

use std::time::{Duration, Instant};

use super::plan;
use super::search_loop::{self, per_second, Attempt, Budget, LoopSettings, RunOutcome};
pub use super::search_loop::{ExploreError, Progress};
use super::workers;
use crate::checker::{Expect, Invariant, Verdict, Violation};
use crate::cores::Pinned;
use crate::pipeline::Knobs;
use crate::scenario::engine::{self, RunOptions};
use crate::scenario::Scenario;

/// Shrinking steps at most, by default: a counterexample of four faults and
/// five orders shrinks in a few hundred.
pub const DEFAULT_SHRINK_ITERS: u32 = 2_000;

/// Interleavings a smaller plan is tried under while shrinking, its own
/// seed first, before it counts as passing. A race (two copies of a job
/// searching at the same moment) shows under some interleavings of a plan
/// and not others, and a smaller plan interleaves differently: one seed
/// alone would strand the shrink at a larger plan that happened to race.
pub const SHRINK_INTERLEAVINGS: u64 = 8;

/// How to explore.
#[derive(Debug, Clone)]
pub struct ExploreOptions {
    /// Plans to try (shrinking runs come on top).
    pub cases: u32,
    /// Seeds the plans: the same seed, the same plans and counterexample.
    pub seed: u64,
    /// Runs spent shrinking at most (0: the first failing plan as found).
    pub max_shrink_iters: u32,
    /// Bounds the whole exploration's wall time, if set (see
    /// [`search_loop::Budget`]).
    pub max_time: Option<Duration>,
    /// Worker threads the runs go to, each held to its own core (`lab
    /// explore --jobs`; at least 1). What is found does not depend on it
    /// ([`search_loop::search_on`]): only how soon.
    pub jobs: usize,
    /// How each plan runs. Its seed goes unused: each plan carries its own
    /// (the interleaving), and a written counterexample keeps the one it
    /// broke under, so that `lab check` fails there the same way.
    pub run: RunOptions,
}

impl Default for ExploreOptions {
    fn default() -> Self {
        Self {
            cases: 1_000,
            seed: 0,
            max_shrink_iters: DEFAULT_SHRINK_ITERS,
            max_time: None,
            jobs: 1,
            run: RunOptions::default(),
        }
    }
}

/// What an exploration found.
#[derive(Debug)]
pub struct Exploration {
    pub knobs: Knobs,
    pub seed: u64,
    /// Plans tried (up to and including the first that failed).
    pub cases: u32,
    /// Runs of the engine, shrinking included.
    pub runs: u64,
    pub elapsed: Duration,
    /// `max_time` ran out before every plan was tried or the shrinking
    /// ended.
    pub out_of_time: bool,
    /// The smallest failing plan, if a plan failed.
    pub counterexample: Option<Counterexample>,
}

impl Exploration {
    pub fn runs_per_second(&self) -> f64 {
        per_second(self.runs, self.elapsed)
    }
}

/// The smallest plan that breaks the pipeline, held to the safe
/// expectations, and what its run found.
#[derive(Debug)]
pub struct Counterexample {
    pub scenario: Scenario,
    pub verdict: Verdict,
    /// Set when the run did not settle before the engine's deadline.
    pub unfinished: Option<String>,
    /// Runs spent shrinking it.
    pub shrink_runs: u64,
}

impl Counterexample {
    /// The invariant a file documenting this bug names: a duplicated effect
    /// first (what idempotency is about), then a lost or dead job (the cause
    /// of the missing effects that come with it), then the rest in the
    /// checker's order. `None` when the run broke no invariant but did not
    /// settle.
    pub fn headline(&self) -> Option<Invariant> {
        headline(&self.verdict.violations)
    }

    /// The counterexample as a scenario file's contents. By default its
    /// `[expect]` names the violation, so `lab check` passes on it while the
    /// bug is there; with `expect_safe` it holds the safe invariants, as a
    /// regression test that fails until the pipeline is fixed.
    pub fn scenario_file(&self, exploration: &Exploration, expect_safe: bool) -> Scenario {
        let knobs = exploration.knobs;
        write_up(
            &WriteUp {
                found: &self.scenario,
                verdict: &self.verdict,
                unfinished: self.unfinished.as_deref(),
                subject: knobs.to_string(),
                command: explore_command(knobs, exploration.seed),
                tally: format!(
                    "{} plan(s) tried, {} run(s) to shrink it",
                    exploration.cases, self.shrink_runs
                ),
                fixed: "the pipeline",
            },
            expect_safe,
        )
    }
}

/// What a counterexample's file says about it, whoever found it.
pub(crate) struct WriteUp<'a> {
    /// The smallest plan, held to the safe expectations.
    pub found: &'a Scenario,
    /// What its run broke.
    pub verdict: &'a Verdict,
    /// Why its run did not settle, if it did not.
    pub unfinished: Option<&'a str>,
    /// What broke: the variant, or the target's name (the file's name
    /// starts with it).
    pub subject: String,
    /// The command that found it, to repeat the search.
    pub command: String,
    /// How it was found: plans tried, runs to shrink it, ….
    pub tally: String,
    /// What a fix goes into: "the pipeline", "the app".
    pub fixed: &'a str,
}

/// The counterexample as a scenario file's contents. By default its
/// `[expect]` names the violation, so `lab check` passes on it while the
/// bug is there; with `expect_safe` it holds the safe invariants, as a
/// regression test that fails until the bug is fixed. A run that broke no
/// invariant but did not settle is written the second way.
pub(crate) fn write_up(w: &WriteUp<'_>, expect_safe: bool) -> Scenario {
    let headline = headline(&w.verdict.violations);
    let found: Vec<&str> = w
        .verdict
        .violations
        .iter()
        .filter(|v| Some(v.invariant) == headline)
        .map(|v| v.message.as_str())
        .collect();
    let found = if found.is_empty() {
        w.unfinished.unwrap_or_default().to_string()
    } else {
        found.join("; ")
    };
    let subject = &w.subject;
    let (name, expect, why) = match headline {
        Some(invariant) if !expect_safe => (
            format!("{subject}: {}", describe(invariant)),
            Expect {
                violation: Some(invariant),
                ..Expect::default()
            },
            "It passes while the bug is there.".to_string(),
        ),
        _ => (
            format!("{subject}: must hold every invariant under this fault plan"),
            w.found.expect.clone(),
            format!("A regression test: it fails until {} is fixed.", w.fixed),
        ),
    };
    let description = format!(
        "The smallest fault plan `{}` found ({}). {why}\nFound: {found}.",
        w.command, w.tally
    );
    Scenario {
        name,
        description: Some(wrap(&description, 76)),
        expect,
        ..w.found.clone()
    }
}

/// What breaking `invariant` means, for a scenario's name.
fn describe(invariant: Invariant) -> &'static str {
    match invariant {
        Invariant::ChargesPerOrder => "an order is not charged exactly once",
        Invariant::EmailsPerOrder => "an order does not get exactly one confirmation email",
        Invariant::FulfillmentsPerOrder => "an order is not sent to fulfillment exactly once",
        Invariant::RemindersPerReminder => "a reminder is not sent exactly once",
        Invariant::Orders => "an order does not complete",
        Invariant::DeadJobs => "a job dies",
        Invariant::Notified => "the error catcher is notified",
        Invariant::LostJobs => "an order is lost",
    }
}

/// `lab explore --charge none --seed 7`: the knobs that differ from the safe
/// pipeline as flags.
pub fn explore_command(knobs: Knobs, seed: u64) -> String {
    let mut command = String::from("lab explore");
    for knob in knobs.unsafe_knobs() {
        if let Some((name, value)) = knob.split_once('=') {
            command.push_str(&format!(" --{name} {value}"));
        }
    }
    command.push_str(&format!(" --seed {seed}"));
    command
}

/// Prose broken into lines of at most `width` characters (longer words stay
/// whole), for a `description` that reads well in the file.
fn wrap(text: &str, width: usize) -> String {
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        lines.push(line);
    }
    lines.join("\n")
}

fn headline(violations: &[Violation]) -> Option<Invariant> {
    let duplicated = violations.iter().find(|v| {
        matches!(
            v.invariant,
            Invariant::ChargesPerOrder
                | Invariant::EmailsPerOrder
                | Invariant::FulfillmentsPerOrder
                | Invariant::RemindersPerReminder
        ) && leading_number(&v.found) > leading_number(&v.expected)
    });
    let by_kind = |wanted: Invariant| violations.iter().find(|v| v.invariant == wanted);
    duplicated
        .or_else(|| by_kind(Invariant::LostJobs))
        .or_else(|| by_kind(Invariant::DeadJobs))
        .or_else(|| violations.first())
        .map(|v| v.invariant)
}

/// The count a violation's "2 successful charges" starts with (0 for text
/// that starts with none).
fn leading_number(text: &str) -> u64 {
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or(0)
}

/// Tries `options.cases` fault plans on the pipeline `knobs`; on the first
/// that breaks a safe invariant, shrinks it to the smallest plan that still
/// does. `progress` hears of every run.
///
/// Blocking: with `options.jobs` above 1 the runs go to that many worker
/// threads, each held to its own core ([`Pinned::worker`]); with 1 they run
/// on the calling thread, held to the core it is on. Each runs the engine
/// on a single-threaded runtime of its own (a scenario's lab is
/// single-threaded), so call it off any async runtime (e.g. in
/// `spawn_blocking`). The same seed finds the same counterexample whatever
/// `jobs` is.
pub fn explore(
    knobs: Knobs,
    options: &ExploreOptions,
    progress: impl FnMut(Progress),
) -> Result<Exploration, ExploreError> {
    let started = Instant::now();
    let settings = LoopSettings {
        cases: options.cases,
        seed: options.seed,
        max_shrink_iters: options.max_shrink_iters,
        shrink_tries: SHRINK_INTERLEAVINGS,
        // The one run after the loop: the counterexample's report.
        budget: options.max_time.map(|max_time| Budget {
            max_time,
            reserve_runs: 1,
        }),
    };
    let strategy = plan::scenarios(knobs);
    // Each try of a plan is another interleaving: its own seed, then the
    // next ones.
    let seed_of = |scenario: &Scenario, try_index: u64| {
        scenario
            .seed
            .unwrap_or(options.run.seed)
            .wrapping_add(try_index)
    };
    let run_on = |runtime: &tokio::runtime::Runtime, scenario: &Scenario, attempt: Attempt| {
        let mut run = scenario.clone();
        run.seed = Some(seed_of(scenario, attempt.try_index));
        let result = runtime.block_on(engine::run(&run, &options.run));
        if result.passed() {
            RunOutcome::Passed
        } else {
            RunOutcome::Failed(result.failure_reason())
        }
    };
    let new_runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    // One job: the calling thread is the worker, held to the core it is
    // on, as the exploration ran before it had workers, with one runtime
    // for the runs and the report. The same loop, its one run at a time
    // started on this thread: no hand-over to another thread per run, and
    // the thread's spare stores (`scenario::spare_stores`) serve one
    // exploration after another — a short one took three times as long on
    // a worker thread of its own, which starts with none. More jobs: a
    // pool, each worker with a runtime of its own.
    let _pinned = (options.jobs <= 1).then(Pinned::here);
    let runtime = new_runtime()?;
    let searched = if options.jobs <= 1 {
        let mut inline = search_loop::Inline::new(|s: &Scenario, a| run_on(&runtime, s, a));
        search_loop::search_on(&strategy, &settings, started, &mut inline, progress)
    } else {
        let worker = |_: usize| {
            let runtime = new_runtime()?;
            Ok(move |s: &Scenario, a| run_on(&runtime, s, a))
        };
        workers::with_pool(options.jobs, worker, |pool| {
            search_loop::search_on(&strategy, &settings, started, pool, progress)
        })
    }?;
    let mut runs = searched.runs;
    let counterexample = match searched.failing {
        None => None,
        Some(mut scenario) => {
            // The interleaving it broke under, so that its file replays it.
            if let Some(try_index) = searched.failing_try {
                scenario.seed = Some(seed_of(&scenario, try_index));
            }
            // Once more, for its report (the loop keeps only the plan), on
            // this thread held to its core.
            runs += 1;
            let _report_pinned = _pinned.is_none().then(Pinned::here);
            let result = runtime.block_on(engine::run(&scenario, &options.run));
            let run = result.runs.into_iter().next();
            Some(Counterexample {
                verdict: run
                    .as_ref()
                    .map_or_else(|| Verdict::failed("no run"), |r| r.verdict.clone()),
                unfinished: run.and_then(|r| r.unfinished),
                scenario,
                shrink_runs: searched.shrink_runs,
            })
        }
    };
    Ok(Exploration {
        knobs,
        seed: options.seed,
        cases: searched.cases,
        runs,
        elapsed: started.elapsed(),
        out_of_time: searched.out_of_time,
        counterexample,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_wrap_at_words() {
        let text = wrap("aaa bbb ccc\nddd", 7);
        assert_eq!(text, "aaa bbb\nccc\nddd");
    }

    #[test]
    fn the_command_names_the_unsafe_knobs() {
        let knobs = Knobs {
            charge: crate::pipeline::ChargeDedup::None,
            fetch: crate::runner::FetchMode::Basic,
            ..Knobs::safe()
        };
        assert_eq!(
            explore_command(knobs, 7),
            "lab explore --charge none --fetch basic --seed 7"
        );
    }

    #[test]
    fn leading_numbers() {
        assert_eq!(leading_number("2 successful charges"), 2);
        assert_eq!(leading_number("no charge_id"), 0);
    }
}
