//! [`explore_target`]: `lab explore --target`, the search and shrink of the
//! lab's own pipeline run against a user's app instead, through the same
//! loop ([`super::search_loop`]).
//!
//! What changes is what a run is. A target run starts real processes and
//! takes seconds, and a real app is not deterministic: the same plan may
//! break it once and hold the next time (a kill lands a little earlier, two
//! threads race another way). So a plan counts as breaking the app if any
//! run of it broke an invariant:
//!
//! - the search runs each plan once;
//! - shrinking tries each smaller plan up to `tries` times, stopping at the
//!   first run that fails (a plan that passed `tries` times counts as
//!   passing); then, with the faults at their smallest, fewer orders once
//!   more ([`fewest_orders`]);
//! - the smallest plan is then run `confirm` times, and the written file
//!   says how often it reproduced ("reproduced 3 of 3 runs").
//!
//! `max_time` bounds all of it: a run (search or shrink) starts only while
//! the time left holds it and the `confirm` runs at the mean run time so far
//! ([`super::search_loop::Budget`]); the confirmation itself always runs in
//! full.
//!
//! Ctrl-C drops the run under way, which kills the app's process groups and
//! its Redis ([`crate::target::processes`]), and the exploration ends with
//! [`ExploreError::Interrupted`].

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::search::{write_up, ExploreError, WriteUp, DEFAULT_SHRINK_ITERS};
use super::search_loop::{self, per_second, Budget, LoopSettings, RunOutcome};
use super::target_plan;
use crate::checker::Verdict;
use crate::scenario::result::{Run, ScenarioResult};
use crate::scenario::{to_toml, Scenario};
use crate::target::file::Target;
use crate::target::run::{self, TargetOptions};
use crate::target::scenario_rules;

/// Plans tried by default: each is seconds of real processes.
pub const DEFAULT_CASES: u32 = 20;
/// Runs of each smaller plan while shrinking, by default.
pub const DEFAULT_TRIES: u32 = 2;
/// Runs of the smallest plan at the end, by default.
pub const DEFAULT_CONFIRM: u32 = 3;

/// How to explore a target.
#[derive(Debug, Clone)]
pub struct TargetExploreOptions {
    /// Plans to try (shrinking and confirming come on top).
    pub cases: u32,
    /// Seeds the plans: the same seed, the same plans.
    pub seed: u64,
    /// Runs spent shrinking at most.
    pub max_shrink_iters: u32,
    /// Runs of each smaller plan before it counts as passing.
    pub tries: u32,
    /// Runs of the smallest plan to say how often it reproduces.
    pub confirm: u32,
    /// Bounds the whole exploration's wall time.
    pub max_time: Option<Duration>,
    /// How each run goes (where failed runs' logs are kept, the fakes'
    /// seed).
    pub run: TargetOptions,
}

impl Default for TargetExploreOptions {
    fn default() -> Self {
        Self {
            cases: DEFAULT_CASES,
            seed: 0,
            max_shrink_iters: DEFAULT_SHRINK_ITERS,
            tries: DEFAULT_TRIES,
            confirm: DEFAULT_CONFIRM,
            max_time: None,
            run: TargetOptions {
                logs: None,
                seed: 1,
            },
        }
    }
}

/// What the exploration is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Trying plan `case` of `of`.
    Searching { case: u32, of: u32 },
    /// Shrinking the plan that failed.
    Shrinking,
    /// Running the smallest plan again: run `run` of `of`.
    Confirming { run: u32, of: u32 },
}

/// Where a target exploration is, for a progress display: told before each
/// run starts.
#[derive(Debug, Clone, Copy)]
pub struct TargetProgress {
    pub phase: Phase,
    /// Runs finished so far.
    pub runs: u64,
    pub elapsed: Duration,
    /// What is left of `max_time`, if set.
    pub time_left: Option<Duration>,
}

/// What exploring a target found.
#[derive(Debug)]
pub struct TargetExploration {
    /// The target file as the command line named it.
    pub target_path: PathBuf,
    pub target_name: String,
    pub seed: u64,
    /// Plans tried (up to and including the first that failed).
    pub cases: u32,
    /// Runs of the app: searching, shrinking and confirming.
    pub runs: u64,
    pub elapsed: Duration,
    /// `max_time` ran out before every plan was tried or the shrinking
    /// ended.
    pub out_of_time: bool,
    /// The smallest plan that broke the app, if one did.
    pub counterexample: Option<TargetCounterexample>,
}

impl TargetExploration {
    pub fn runs_per_second(&self) -> f64 {
        per_second(self.runs, self.elapsed)
    }

    /// `lab explore --target FILE --seed S` (with `--cases` when not the
    /// default): the command that repeats the search.
    pub fn command(&self, cases: u32) -> String {
        let mut command = format!("lab explore --target {}", self.target_path.display());
        if cases != DEFAULT_CASES {
            command.push_str(&format!(" --cases {cases}"));
        }
        command.push_str(&format!(" --seed {}", self.seed));
        command
    }
}

/// The smallest plan that broke the app, and how it did.
#[derive(Debug)]
pub struct TargetCounterexample {
    /// The plan, held to the target's safe expectations.
    pub scenario: Scenario,
    /// A run of it that failed: a confirmation run's if one did, else the
    /// run that found it.
    pub result: ScenarioResult,
    /// Confirmation runs that failed, of `confirm_runs`.
    pub reproduced: u32,
    pub confirm_runs: u32,
    /// Runs spent shrinking it.
    pub shrink_runs: u64,
    /// Plans tried, and the options' `cases`, for the command.
    cases: u32,
    asked_cases: u32,
}

impl TargetCounterexample {
    /// The failing run.
    pub fn run(&self) -> Option<&Run> {
        self.result
            .runs
            .iter()
            .find(|r| !r.passed())
            .or(self.result.runs.first())
    }

    pub fn verdict(&self) -> Verdict {
        self.run()
            .map_or_else(|| Verdict::failed("no run"), |r| r.verdict.clone())
    }

    /// The plan as a scenario file for `lab check --target`: by default it
    /// expects the violation (it passes while the bug is there); with
    /// `expect_safe` it holds the safe invariants (it fails until the app is
    /// fixed). Its description says how often it reproduced.
    pub fn scenario_file(&self, exploration: &TargetExploration, expect_safe: bool) -> Scenario {
        let verdict = self.verdict();
        let unfinished = self.run().and_then(|r| r.unfinished.clone());
        write_up(
            &WriteUp {
                found: &self.scenario,
                verdict: &verdict,
                unfinished: unfinished.as_deref(),
                subject: exploration.target_name.clone(),
                command: exploration.command(self.asked_cases),
                tally: format!(
                    "{} plan(s) tried, {} run(s) to shrink it; reproduced {} of {} runs",
                    self.cases, self.shrink_runs, self.reproduced, self.confirm_runs
                ),
                fixed: "the app",
            },
            expect_safe,
        )
    }
}

/// A scenario run against the target: `None` when Ctrl-C came first (the
/// run was dropped, and its processes with it).
struct Runner<'a> {
    target: &'a Target,
    options: &'a TargetOptions,
    runtime: tokio::runtime::Runtime,
    interrupted: tokio::sync::watch::Receiver<bool>,
}

impl Runner<'_> {
    fn run(&self, scenario: &Scenario) -> Result<Option<ScenarioResult>, ExploreError> {
        if *self.interrupted.borrow() {
            return Ok(None);
        }
        let plan = scenario_rules::plan(scenario, self.target).map_err(|e| {
            ExploreError::Aborted(format!(
                "a generated plan is one the target does not take (a bug of the lab): {e}\n{}",
                to_toml(scenario)
            ))
        })?;
        let mut interrupted = self.interrupted.clone();
        Ok(self.runtime.block_on(async {
            tokio::select! {
                biased;
                Ok(_) = interrupted.wait_for(|stop| *stop) => None,
                result = run::run(self.target, scenario, &plan, self.options) => Some(result),
            }
        }))
    }
}

/// Explores fault plans on `target`: `options.cases` plans, the first that
/// breaks it shrunk and confirmed. `progress` hears before each run.
///
/// Blocking: it runs the target on a runtime of its own, so call it off any
/// async runtime (e.g. in `spawn_blocking`).
pub fn explore_target(
    target: &Target,
    target_path: PathBuf,
    options: &TargetExploreOptions,
    progress: impl FnMut(TargetProgress),
) -> Result<TargetExploration, ExploreError> {
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (stop, interrupted) = tokio::sync::watch::channel(false);
    runtime.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop.send(true);
        }
        // Without a handler (it could not be installed) nothing stops the
        // runs; the sender stays, so no run takes its drop for a Ctrl-C.
        std::future::pending::<()>().await;
    });
    let runner = Runner {
        target,
        options: &options.run,
        runtime,
        interrupted,
    };
    let settings = LoopSettings {
        cases: options.cases,
        seed: options.seed,
        max_shrink_iters: options.max_shrink_iters,
        shrink_tries: u64::from(options.tries.max(1)),
        budget: options.max_time.map(|max_time| Budget {
            max_time,
            reserve_runs: options.confirm,
        }),
    };
    let progress = RefCell::new(progress);
    let runs = Cell::new(0u64);
    let tell = |phase: Phase| {
        (progress.borrow_mut())(TargetProgress {
            phase,
            runs: runs.get(),
            elapsed: started.elapsed(),
            time_left: options
                .max_time
                .map(|t| t.saturating_sub(started.elapsed())),
        })
    };
    let mut case = 0u32;
    let mut failures: HashMap<String, ScenarioResult> = HashMap::new();
    let mut stopped_by: Option<ExploreError> = None;
    let searched = search_loop::search(
        &target_plan::scenarios(target),
        &settings,
        started,
        |scenario, attempt| {
            if attempt.shrinking {
                tell(Phase::Shrinking);
            } else {
                case += 1;
                tell(Phase::Searching {
                    case,
                    of: options.cases,
                });
            }
            let outcome = runner.run(scenario);
            runs.set(runs.get() + 1);
            match outcome {
                Err(err) => {
                    stopped_by = Some(err);
                    RunOutcome::Stop
                }
                Ok(None) => {
                    stopped_by = Some(ExploreError::Interrupted);
                    RunOutcome::Stop
                }
                Ok(Some(result)) if result.passed() => RunOutcome::Passed,
                Ok(Some(result)) => {
                    let why = result.failure_reason();
                    failures.insert(to_toml(scenario), result);
                    RunOutcome::Failed(why)
                }
            }
        },
        |_| {},
    )?;
    if let Some(err) = stopped_by {
        return Err(err);
    }
    let mut counterexample = None;
    let out_of_time = Cell::new(searched.out_of_time);
    let shrink_runs = Cell::new(searched.shrink_runs);
    if let Some(mut scenario) = searched.failing {
        let fits = || {
            settings
                .budget
                .is_none_or(|b| b.fits(started.elapsed(), runs.get()))
        };
        let fewest = fewest_orders(
            order_count(&scenario),
            options.tries,
            || {
                if out_of_time.get() || shrink_runs.get() >= u64::from(options.max_shrink_iters) {
                    return false;
                }
                if !fits() {
                    out_of_time.set(true);
                    return false;
                }
                true
            },
            |count| {
                tell(Phase::Shrinking);
                let smaller = with_orders(&scenario, count);
                let result = runner.run(&smaller)?.ok_or(ExploreError::Interrupted)?;
                runs.set(runs.get() + 1);
                shrink_runs.set(shrink_runs.get() + 1);
                let failed = !result.passed();
                if failed {
                    failures.insert(to_toml(&smaller), result);
                }
                Ok::<bool, ExploreError>(failed)
            },
        )?;
        if let Some(count) = fewest {
            scenario = with_orders(&scenario, count);
        }
        let mut found = failures.remove(&to_toml(&scenario));
        let mut reproduced = 0;
        for run in 1..=options.confirm {
            tell(Phase::Confirming {
                run,
                of: options.confirm,
            });
            let result = runner.run(&scenario)?.ok_or(ExploreError::Interrupted)?;
            runs.set(runs.get() + 1);
            if !result.passed() {
                reproduced += 1;
                if reproduced == 1 {
                    found = Some(result);
                }
            }
        }
        let result = found.ok_or_else(|| {
            ExploreError::Aborted("the smallest plan's failing run was not kept".into())
        })?;
        counterexample = Some(TargetCounterexample {
            scenario,
            result,
            reproduced,
            confirm_runs: options.confirm,
            shrink_runs: shrink_runs.get(),
            cases: searched.cases,
            asked_cases: options.cases,
        });
    }
    Ok(TargetExploration {
        target_path,
        target_name: target.name.clone(),
        seed: options.seed,
        cases: searched.cases,
        runs: runs.get(),
        elapsed: started.elapsed(),
        out_of_time: out_of_time.get(),
        counterexample,
    })
}

/// The fewest orders below `orders` with which the plan still fails, if
/// any: each count from 1 up, `tries` runs each (stopping at the first
/// failing run), while `may_run` allows another run.
///
/// Why a pass of its own: proptest shrinks a plan's parts one after the
/// other and does not go back. The orders come down while the first faults
/// are still in the plan, and a fault shrunk away afterwards may have been
/// what needed the extra orders; with the faults at their smallest, fewer
/// orders may break the app too.
fn fewest_orders<E>(
    orders: u32,
    tries: u32,
    mut may_run: impl FnMut() -> bool,
    mut fails: impl FnMut(u32) -> Result<bool, E>,
) -> Result<Option<u32>, E> {
    for count in 1..orders {
        for _ in 0..tries.max(1) {
            if !may_run() {
                return Ok(None);
            }
            if fails(count)? {
                return Ok(Some(count));
            }
        }
    }
    Ok(None)
}

/// The orders `scenario` places.
fn order_count(scenario: &Scenario) -> u32 {
    scenario.orders.iter().map(|b| b.count).sum()
}

/// `scenario` placing `count` orders (a target plan's one batch).
fn with_orders(scenario: &Scenario, count: u32) -> Scenario {
    let mut smaller = scenario.clone();
    smaller.orders.truncate(1);
    if let Some(batch) = smaller.orders.first_mut() {
        batch.count = count;
    }
    smaller
}

#[cfg(test)]
mod tests {
    use super::fewest_orders;

    /// The counts tried, and what [`fewest_orders`] answered.
    fn tried(
        orders: u32,
        tries: u32,
        runs_allowed: usize,
        fails: impl Fn(u32, usize) -> bool,
    ) -> (Vec<u32>, Option<u32>) {
        let mut tried = Vec::new();
        let allowed = std::cell::Cell::new(runs_allowed);
        let fewest = fewest_orders::<()>(
            orders,
            tries,
            || {
                let left = allowed.get();
                allowed.set(left.saturating_sub(1));
                left > 0
            },
            |count| {
                tried.push(count);
                Ok(fails(count, tried.len()))
            },
        )
        .unwrap();
        (tried, fewest)
    }

    #[test]
    fn the_fewest_failing_count_is_found_from_one_up() {
        // Fails with 2 or more orders: 1 is tried twice, then 2 fails.
        assert_eq!(tried(3, 2, 99, |c, _| c >= 2), (vec![1, 1, 2], Some(2)));
        // Fails with any: the first run of 1 does.
        assert_eq!(tried(3, 2, 99, |_, _| true), (vec![1], Some(1)));
        // Never with fewer: every smaller count tried `tries` times.
        assert_eq!(tried(3, 2, 99, |c, _| c >= 3), (vec![1, 1, 2, 2], None));
    }

    #[test]
    fn a_flaky_failure_counts_on_any_try() {
        // 1 order fails only on its second run.
        assert_eq!(tried(2, 2, 99, |_, run| run == 2), (vec![1, 1], Some(1)));
        // With one try, it counts as passing.
        assert_eq!(tried(2, 1, 99, |_, run| run == 2), (vec![1], None));
    }

    #[test]
    fn nothing_runs_once_the_budget_says_no() {
        assert_eq!(tried(3, 2, 1, |_, _| false), (vec![1], None));
        assert_eq!(tried(3, 2, 0, |_, _| true), (vec![], None));
        // One order: nothing is smaller.
        assert_eq!(tried(1, 2, 99, |_, _| true), (vec![], None));
    }
}
