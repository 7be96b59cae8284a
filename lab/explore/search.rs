//! [`explore`]: proptest's runner over the fault plans, each case one run of
//! the scenario engine, shrinking a failure to the smallest plan that still
//! breaks the pipeline.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::{Duration, Instant};

use proptest::test_runner::{
    basic_result_cache, Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner,
};

use super::one_core::OneCore;
use super::plan;
use crate::checker::{Expect, Invariant, Verdict, Violation};
use crate::pipeline::Knobs;
use crate::scenario::engine::{self, RunOptions};
use crate::scenario::{to_toml, Scenario};

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
            run: RunOptions::default(),
        }
    }
}

/// Where an exploration is, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Plans tried so far.
    pub cases: u32,
    /// Plans to try.
    pub total: u32,
    /// Runs of the engine, shrinking included.
    pub runs: u64,
    /// Set once a plan has failed: the runs since are shrinking it.
    pub shrinking: bool,
    pub elapsed: Duration,
}

impl Progress {
    pub fn runs_per_second(&self) -> f64 {
        per_second(self.runs, self.elapsed)
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
    /// The smallest failing plan, if a plan failed.
    pub counterexample: Option<Counterexample>,
}

impl Exploration {
    pub fn runs_per_second(&self) -> f64 {
        per_second(self.runs, self.elapsed)
    }
}

fn per_second(runs: u64, elapsed: Duration) -> f64 {
    runs as f64 / elapsed.as_secs_f64().max(1e-9)
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
        let command = explore_command(knobs, exploration.seed);
        let headline = self.headline();
        let found: Vec<&str> = self
            .verdict
            .violations
            .iter()
            .filter(|v| Some(v.invariant) == headline)
            .map(|v| v.message.as_str())
            .collect();
        let found = if found.is_empty() {
            self.unfinished.clone().unwrap_or_default()
        } else {
            found.join("; ")
        };
        let (name, expect, why) = match headline {
            Some(invariant) if !expect_safe => (
                format!("{knobs}: {}", describe(invariant)),
                Expect {
                    violation: Some(invariant),
                    ..Expect::default()
                },
                "It passes while the bug is there.",
            ),
            _ => (
                format!("{knobs}: must hold every invariant under this fault plan"),
                self.scenario.expect.clone(),
                "A regression test: it fails until the pipeline is fixed.",
            ),
        };
        let description = format!(
            "The smallest fault plan `{command}` found ({} plan(s) tried, {} run(s) to shrink it). {why}\nFound: {found}.",
            exploration.cases, self.shrink_runs
        );
        Scenario {
            name,
            description: Some(wrap(&description, 76)),
            expect,
            ..self.scenario.clone()
        }
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

/// Why an exploration could not run.
#[derive(Debug, thiserror::Error)]
pub enum ExploreError {
    #[error("could not start a runtime for the scenario engine: {0}")]
    Runtime(#[from] std::io::Error),
    #[error("the exploration stopped: {0}")]
    Aborted(String),
}

/// Tries `options.cases` fault plans on the pipeline `knobs`; on the first
/// that breaks a safe invariant, shrinks it to the smallest plan that still
/// does. `progress` hears of every run.
///
/// Blocking: it runs the engine on a single-threaded runtime of its own (a
/// scenario's lab is single-threaded), so call it off any async runtime
/// (e.g. in `spawn_blocking`). The calling thread is held to one core
/// meanwhile ([`OneCore`]).
pub fn explore(
    knobs: Knobs,
    options: &ExploreOptions,
    progress: impl FnMut(Progress),
) -> Result<Exploration, ExploreError> {
    let _one_core = OneCore::pin();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let config = Config {
        cases: options.cases,
        // The limit is kept in the test below instead: proptest's own
        // prints a muddled message on stderr when it is reached, and its
        // `u32::MAX` means "four times `cases`".
        max_shrink_iters: u32::MAX - 1,
        failure_persistence: None,
        // Shrinking revisits plans; a run costs more than a lookup.
        result_cache: basic_result_cache,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, rng(options.seed));
    let cases = Cell::new(0u32);
    let runs = Cell::new(0u64);
    let shrink_runs = Cell::new(0u64);
    let failed = Cell::new(false);
    let progress = RefCell::new(progress);
    // The seed each failing plan failed under, by its file's text.
    let failed_under: RefCell<HashMap<String, u64>> = RefCell::default();
    let strategy = plan::scenarios(knobs);
    let outcome = runner.run(&strategy, |mut scenario| {
        let shrinking = failed.get();
        let own_seed = scenario.seed.unwrap_or(options.run.seed);
        let tries = if shrinking { SHRINK_INTERLEAVINGS } else { 1 };
        for seed in (0..tries).map(|i| own_seed.wrapping_add(i)) {
            if shrinking {
                if shrink_runs.get() >= u64::from(options.max_shrink_iters) {
                    // Enough shrinking: every smaller plan "passes", so the
                    // smallest failing one so far is the answer.
                    return Ok(());
                }
                shrink_runs.set(shrink_runs.get() + 1);
            } else {
                cases.set(cases.get() + 1);
            }
            runs.set(runs.get() + 1);
            scenario.seed = Some(seed);
            let result = runtime.block_on(engine::run(&scenario, &options.run));
            let passed = result.passed();
            if !passed {
                failed.set(true);
            }
            (progress.borrow_mut())(Progress {
                cases: cases.get(),
                total: options.cases,
                runs: runs.get(),
                shrinking: failed.get(),
                elapsed: started.elapsed(),
            });
            if !passed {
                scenario.seed = Some(own_seed);
                failed_under.borrow_mut().insert(to_toml(&scenario), seed);
                return Err(TestCaseError::fail(result.failure_reason()));
            }
        }
        Ok(())
    });
    let counterexample = match outcome {
        Ok(()) => None,
        Err(TestError::Abort(why)) => return Err(ExploreError::Aborted(why.to_string())),
        Err(TestError::Fail(_, mut scenario)) => {
            let seed = failed_under.borrow().get(&to_toml(&scenario)).copied();
            scenario.seed = seed.or(scenario.seed);
            // Once more, for its report (the runner keeps only the plan).
            runs.set(runs.get() + 1);
            let result = runtime.block_on(engine::run(&scenario, &options.run));
            let run = result.runs.into_iter().next();
            Some(Counterexample {
                verdict: run
                    .as_ref()
                    .map_or_else(|| Verdict::failed("no run"), |r| r.verdict.clone()),
                unfinished: run.and_then(|r| r.unfinished),
                scenario,
                shrink_runs: shrink_runs.get(),
            })
        }
    };
    Ok(Exploration {
        knobs,
        seed: options.seed,
        cases: cases.get(),
        runs: runs.get(),
        elapsed: started.elapsed(),
        counterexample,
    })
}

/// proptest's ChaCha RNG from a 64-bit seed: the seed, then splitmix64 of it
/// for the other 24 bytes.
fn rng(seed: u64) -> TestRng {
    let mut bytes = [0u8; 32];
    let mut state = seed;
    for chunk in bytes.chunks_mut(8) {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
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
