//! The one search-and-shrink loop every exploration runs: proptest's runner
//! over a strategy of scenarios, each case run by the caller, a failing case
//! shrunk to the smallest that still fails.
//!
//! Two callers share it and differ only in how a case runs
//! ([`crate::explore::search`], the lab's own pipeline: deterministic,
//! thousands of runs a second, a smaller plan tried under several
//! interleavings; [`crate::explore::target`], a user's app: real processes,
//! seconds a run, not deterministic, a smaller plan tried a few times). What
//! they share is here: counting cases and runs, the shrinking budget, the
//! time budget, stopping, and the progress reports.

use std::cell::{Cell, RefCell};
use std::fmt::Debug;
use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{
    basic_result_cache, Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner,
};

/// Why an exploration could not run.
#[derive(Debug, thiserror::Error)]
pub enum ExploreError {
    #[error("could not start a runtime for the scenario engine: {0}")]
    Runtime(#[from] std::io::Error),
    #[error("the exploration stopped: {0}")]
    Aborted(String),
    /// Ctrl-C: the runs under way were stopped, their processes with them.
    #[error("interrupted")]
    Interrupted,
}

/// How the loop runs, whoever calls it.
#[derive(Debug, Clone)]
pub struct LoopSettings {
    /// Cases to try (shrinking runs come on top).
    pub cases: u32,
    /// Seeds the cases: the same seed, the same cases.
    pub seed: u64,
    /// Runs spent shrinking at most (0: the first failing case as found).
    pub max_shrink_iters: u32,
    /// Runs of each smaller case while shrinking before it counts as
    /// passing (it fails at its first failing run).
    pub shrink_tries: u64,
    /// A bound on the whole loop's wall time, if any.
    pub budget: Option<Budget>,
}

/// A bound on wall time that keeps room for what comes after the loop.
///
/// A run starts only while the time left is at least `1 + reserve_runs`
/// runs at the mean run time so far: the run itself, then `reserve_runs`
/// more (a caller's confirmation runs) still fit. Once it is not, the search
/// stops trying new cases and shrinking stops where it is: the smallest
/// failing case so far is the answer.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub max_time: Duration,
    pub reserve_runs: u32,
}

impl Budget {
    /// Whether one more run and the reserved ones still fit, `runs` having
    /// taken `elapsed` so far (before the first run: while any time is left).
    pub fn fits(&self, elapsed: Duration, runs: u64) -> bool {
        let left = self.max_time.saturating_sub(elapsed);
        if runs == 0 {
            return !left.is_zero();
        }
        let mean = elapsed.as_secs_f64() / runs as f64;
        left.as_secs_f64() >= mean * f64::from(1 + self.reserve_runs)
    }
}

/// Where the loop is, for a progress display.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Cases tried so far.
    pub cases: u32,
    /// Cases to try.
    pub total: u32,
    /// Runs so far, shrinking included.
    pub runs: u64,
    /// Set once a case has failed: the runs since are shrinking it.
    pub shrinking: bool,
    pub elapsed: Duration,
    /// What is left of the time budget, if there is one.
    pub time_left: Option<Duration>,
}

impl Progress {
    pub fn runs_per_second(&self) -> f64 {
        per_second(self.runs, self.elapsed)
    }
}

/// Runs per second over `elapsed`.
pub fn per_second(runs: u64, elapsed: Duration) -> f64 {
    runs as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// One run of a case, as the caller saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    Passed,
    /// It broke an invariant (or did not settle); why, in one sentence.
    Failed(String),
    /// Stop the loop at once (interrupted, or a case the caller cannot
    /// run); the caller knows why.
    Stop,
}

/// A run as the loop asks for it.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    /// Whether this run is shrinking a failure (else it is a new case).
    pub shrinking: bool,
    /// 0 for a case's first run, 1 for its second, … (below
    /// [`LoopSettings::shrink_tries`]).
    pub try_index: u64,
}

/// What the loop found.
#[derive(Debug)]
pub struct Searched<T> {
    /// Cases tried (up to and including the first that failed).
    pub cases: u32,
    /// Runs, shrinking included.
    pub runs: u64,
    /// Runs spent shrinking.
    pub shrink_runs: u64,
    /// The smallest failing case, if a case failed.
    pub failing: Option<T>,
    /// The time budget ran out: fewer cases were tried than asked, or the
    /// shrinking stopped early.
    pub out_of_time: bool,
    /// A run said [`RunOutcome::Stop`].
    pub stopped: bool,
}

/// Tries `settings.cases` cases of `strategy`; on the first that fails,
/// shrinks it to the smallest that still does. `run` runs one attempt of a
/// case; `progress` hears of every run, `started` being when the
/// exploration began (the budget counts from there).
pub fn search<S>(
    strategy: &S,
    settings: &LoopSettings,
    started: Instant,
    run: impl FnMut(&S::Value, Attempt) -> RunOutcome,
    progress: impl FnMut(Progress),
) -> Result<Searched<S::Value>, ExploreError>
where
    S: Strategy,
    S::Value: Clone + Debug,
{
    let config = Config {
        cases: settings.cases,
        // The limit is kept in the test below instead: proptest's own
        // prints a muddled message on stderr when it is reached, and its
        // `u32::MAX` means "four times `cases`".
        max_shrink_iters: u32::MAX - 1,
        failure_persistence: None,
        // Shrinking revisits cases; a run costs more than a lookup.
        result_cache: basic_result_cache,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, rng(settings.seed));
    let cases = Cell::new(0u32);
    let runs = Cell::new(0u64);
    let shrink_runs = Cell::new(0u64);
    let failed = Cell::new(false);
    let out_of_time = Cell::new(false);
    let stopped = Cell::new(false);
    // proptest's runner takes an `Fn`; one case runs at a time.
    let run = RefCell::new(run);
    let progress = RefCell::new(progress);
    let time_left = || {
        settings
            .budget
            .map(|b| b.max_time.saturating_sub(started.elapsed()))
    };
    // Whether one more run (and the runs reserved after the loop) still
    // fits in the budget, at the mean run time so far.
    let fits = || {
        settings
            .budget
            .is_none_or(|b| b.fits(started.elapsed(), runs.get()))
    };
    let outcome = runner.run(strategy, |case| {
        let shrinking = failed.get();
        let tries = if shrinking { settings.shrink_tries } else { 1 };
        for try_index in 0..tries.max(1) {
            // A stopped loop, or one out of time or shrinking budget: every
            // case from here on "passes" unrun, so the smallest failing one
            // so far is the answer (none, while still searching).
            if stopped.get() || out_of_time.get() {
                return Ok(());
            }
            if !fits() {
                out_of_time.set(true);
                return Ok(());
            }
            if shrinking {
                if shrink_runs.get() >= u64::from(settings.max_shrink_iters) {
                    return Ok(());
                }
                shrink_runs.set(shrink_runs.get() + 1);
            } else {
                cases.set(cases.get() + 1);
            }
            runs.set(runs.get() + 1);
            let outcome = (run.borrow_mut())(
                &case,
                Attempt {
                    shrinking,
                    try_index,
                },
            );
            if let RunOutcome::Failed(_) = outcome {
                failed.set(true);
            }
            (progress.borrow_mut())(Progress {
                cases: cases.get(),
                total: settings.cases,
                runs: runs.get(),
                shrinking: failed.get(),
                elapsed: started.elapsed(),
                time_left: time_left(),
            });
            match outcome {
                RunOutcome::Passed => {}
                RunOutcome::Failed(why) => return Err(TestCaseError::fail(why)),
                RunOutcome::Stop => {
                    stopped.set(true);
                    return Ok(());
                }
            }
        }
        Ok(())
    });
    let failing = match outcome {
        Ok(()) => None,
        Err(TestError::Abort(why)) => return Err(ExploreError::Aborted(why.to_string())),
        Err(TestError::Fail(_, case)) => Some(case),
    };
    Ok(Searched {
        cases: cases.get(),
        runs: runs.get(),
        shrink_runs: shrink_runs.get(),
        failing,
        out_of_time: out_of_time.get(),
        stopped: stopped.get(),
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
    use proptest::prelude::*;

    use super::*;

    fn settings(cases: u32) -> LoopSettings {
        LoopSettings {
            cases,
            seed: 1,
            max_shrink_iters: 1_000,
            shrink_tries: 1,
            budget: None,
        }
    }

    #[test]
    fn a_failure_shrinks_to_the_smallest_failing_case() {
        let found = search(
            &(0u32..1_000),
            &settings(100),
            Instant::now(),
            |&n, _| {
                if n >= 10 {
                    RunOutcome::Failed("big".into())
                } else {
                    RunOutcome::Passed
                }
            },
            |_| {},
        )
        .unwrap();
        assert_eq!(found.failing, Some(10));
        assert!(found.shrink_runs > 0);
        assert!(!found.out_of_time && !found.stopped);
    }

    /// A smaller case that fails only on its second run still counts as
    /// failing when it is tried twice.
    #[test]
    fn each_smaller_case_is_tried_up_to_shrink_tries_times() {
        let mut seen: std::collections::HashMap<u32, u64> = Default::default();
        let found = search(
            &(0u32..1_000),
            &LoopSettings {
                shrink_tries: 2,
                ..settings(100)
            },
            Instant::now(),
            |&n, attempt| {
                *seen.entry(n).or_default() += 1;
                // Anything from 10 up fails, but only on a second try
                // while shrinking (the first case fails at once).
                if n >= 10 && (!attempt.shrinking || attempt.try_index == 1) {
                    RunOutcome::Failed("big".into())
                } else {
                    RunOutcome::Passed
                }
            },
            |_| {},
        )
        .unwrap();
        assert_eq!(found.failing, Some(10));
        assert!(seen.values().all(|&n| n <= 2), "{seen:?}");
    }

    #[test]
    fn stop_ends_the_loop_without_a_failure() {
        let mut runs = 0;
        let found = search(
            &any::<u32>(),
            &settings(50),
            Instant::now(),
            |_, _| {
                runs += 1;
                if runs == 3 {
                    RunOutcome::Stop
                } else {
                    RunOutcome::Passed
                }
            },
            |_| {},
        )
        .unwrap();
        assert!(found.stopped);
        assert_eq!(found.runs, 3);
        assert_eq!(found.failing, None);
    }

    /// Runs that take longer than the budget allows stop the search: the
    /// first run always happens, and no run starts unless it and the
    /// reserved runs fit at the mean so far.
    #[test]
    fn the_budget_stops_new_cases_when_the_reserved_runs_would_not_fit() {
        let started = Instant::now() - Duration::from_secs(10);
        let found = search(
            &any::<u32>(),
            &LoopSettings {
                budget: Some(Budget {
                    max_time: Duration::from_secs(25),
                    reserve_runs: 3,
                }),
                ..settings(50)
            },
            started,
            |_, _| RunOutcome::Passed,
            |_| {},
        )
        .unwrap();
        // 10 s for the first run: 15 s left is less than 4 runs of 10 s.
        assert_eq!(found.runs, 1);
        assert!(found.out_of_time);
        assert_eq!(found.cases, 1);
    }
}
