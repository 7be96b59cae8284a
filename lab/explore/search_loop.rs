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
//!
//! The loop is proptest's `TestRunner::run` done again step for step (the
//! cases drawn from the seeded runner, its result cache, its shrinking), so
//! that runs can start ahead of their turn on several cores ([`Runs`]) and
//! still find what one case at a time finds ([`search_on`]). A test holds
//! it to proptest's own runner.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Debug;
use std::time::{Duration, Instant};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

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
        self.fits_with(elapsed, runs, 0)
    }

    /// [`Budget::fits`] with `under_way` runs already started and not yet
    /// ended: one more run fits while it, those and the reserved ones do,
    /// at the mean so far (runs ended over the wall time: with several
    /// workers, the time a run adds to the whole).
    pub fn fits_with(&self, elapsed: Duration, runs: u64, under_way: u64) -> bool {
        let left = self.max_time.saturating_sub(elapsed);
        if runs == 0 {
            return !left.is_zero();
        }
        let mean = elapsed.as_secs_f64() / runs as f64;
        let needed = 1 + under_way + u64::from(self.reserve_runs);
        left.as_secs_f64() >= mean * needed as f64
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
    /// The try (below [`LoopSettings::shrink_tries`]) at which that case
    /// failed: with a seed per try, the one it broke under.
    pub failing_try: Option<u64>,
    /// The time budget ran out: fewer cases were tried than asked, or the
    /// shrinking stopped early.
    pub out_of_time: bool,
    /// A run said [`RunOutcome::Stop`].
    pub stopped: bool,
}

/// Where the runs of the loop happen: the loop starts runs, at most
/// [`Runs::width`] at once, and takes their outcomes back as they end, in
/// any order. [`Inline`] runs one at a time on the calling thread (`lab
/// explore --target`); [`super::workers::Pool`] on pinned worker threads.
pub trait Runs<V> {
    /// Runs under way at most.
    fn width(&self) -> usize;
    /// Starts a run of `value`; its outcome comes back from [`Runs::next`]
    /// with `id`.
    fn start(&mut self, id: u64, value: &V, attempt: Attempt);
    /// Waits for a run started and not yet handed back: its id and outcome.
    fn next(&mut self) -> Result<(u64, RunOutcome), ExploreError>;
}

/// Runs one at a time on the calling thread, when [`Runs::next`] asks (a
/// panicking run is a failing one).
pub struct Inline<V, F> {
    run: F,
    queued: std::collections::VecDeque<(u64, V, Attempt)>,
}

impl<V, F: FnMut(&V, Attempt) -> RunOutcome> Inline<V, F> {
    pub fn new(run: F) -> Self {
        Self {
            run,
            queued: Default::default(),
        }
    }
}

impl<V: Clone, F: FnMut(&V, Attempt) -> RunOutcome> Runs<V> for Inline<V, F> {
    fn width(&self) -> usize {
        1
    }

    fn start(&mut self, id: u64, value: &V, attempt: Attempt) {
        self.queued.push_back((id, value.clone(), attempt));
    }

    fn next(&mut self) -> Result<(u64, RunOutcome), ExploreError> {
        let (id, value, attempt) = self
            .queued
            .pop_front()
            .ok_or_else(|| ExploreError::Aborted("no run under way".into()))?;
        // proptest's runner makes a panicking case a failing one; so do
        // the loop's runs, here as on a worker.
        let run = &mut self.run;
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&value, attempt)))
                .unwrap_or_else(|panic| {
                    RunOutcome::Failed(format!(
                        "the run panicked: {}",
                        crate::cores::panic_message(&*panic)
                    ))
                });
        Ok((id, outcome))
    }
}

/// Tries `settings.cases` cases of `strategy`; on the first that fails,
/// shrinks it to the smallest that still does, one run at a time on the
/// calling thread. `run` runs one attempt of a case; `progress` hears of
/// every run, `started` being when the exploration began (the budget counts
/// from there).
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
    search_on(strategy, settings, started, &mut Inline::new(run), progress)
}

/// [`search`], its runs started on `runs`, up to [`Runs::width`] at once.
///
/// What it finds does not depend on the width: it is what proptest's
/// `TestRunner` finds one case at a time (the same cases from the same
/// seed, the same result cache, the same shrinking steps). The cases are
/// drawn from the seeded runner in order whatever the runs find, started
/// ahead of time, and their outcomes are taken in case order: the first
/// failing case *by index* wins, however soon a later one ended. Shrinking
/// is a chain of steps, each on the last one's outcome, so it stays one
/// step at a time; what runs ahead there are a step's tries (the
/// interleavings of one smaller plan), taken in order up to the first that
/// fails. Counting (cases, runs, shrinking runs, progress) follows the
/// outcomes taken, not the runs started: a run started ahead whose outcome
/// the one-at-a-time loop would never have asked for is not counted.
pub fn search_on<S, R>(
    strategy: &S,
    settings: &LoopSettings,
    started: Instant,
    runs: &mut R,
    progress: impl FnMut(Progress),
) -> Result<Searched<S::Value>, ExploreError>
where
    S: Strategy,
    S::Value: Clone + Debug,
    R: Runs<S::Value> + ?Sized,
{
    let mut state = Loop {
        settings,
        started,
        driver: Driver::new(runs),
        tally: Tally::default(),
        progress,
    };
    let failing = state.find(strategy)?.map(|tree| state.shrink(tree));
    let tally = state.tally;
    let failing_try = failing
        .as_ref()
        .and_then(|value| match tally.cache.get(&cache_key(value)) {
            Some(Outcome::Fail(try_index)) => Some(*try_index),
            _ => None,
        });
    Ok(Searched {
        cases: tally.cases,
        runs: tally.runs,
        shrink_runs: tally.shrink_runs,
        failing,
        failing_try,
        out_of_time: tally.out_of_time,
        stopped: tally.stopped,
    })
}

/// A case's outcome as the loop keeps it (proptest's result cache): it
/// passed (or "passed" unrun: stopped, out of time or of shrinking runs),
/// or it failed at this try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Pass,
    Fail(u64),
}

/// proptest's `basic_result_cache` keys a case by its `Debug` text (a hash
/// of it); so does this loop, by the text itself.
fn cache_key<V: Debug>(value: &V) -> String {
    format!("{value:?}")
}

/// The loop's state.
struct Loop<'a, R: ?Sized, P> {
    settings: &'a LoopSettings,
    started: Instant,
    driver: Driver<'a, R>,
    tally: Tally,
    progress: P,
}

/// What the loop counts, from the outcomes taken in order (the runs that
/// the one-at-a-time loop makes), and proptest's result cache.
#[derive(Default)]
struct Tally {
    cache: HashMap<String, Outcome>,
    cases: u32,
    runs: u64,
    shrink_runs: u64,
    failed: bool,
    out_of_time: bool,
    stopped: bool,
}

impl Tally {
    fn report(
        &self,
        settings: &LoopSettings,
        started: Instant,
        progress: &mut impl FnMut(Progress),
    ) {
        progress(Progress {
            cases: self.cases,
            total: settings.cases,
            runs: self.runs,
            shrinking: self.failed,
            elapsed: started.elapsed(),
            time_left: settings
                .budget
                .map(|b| b.max_time.saturating_sub(started.elapsed())),
        });
    }
}

impl<R: ?Sized, P: FnMut(Progress)> Loop<'_, R, P> {
    /// The search: `cases` distinct cases drawn from the seeded runner (a
    /// case equal to an earlier one is a cache hit: not run, not counted,
    /// as in proptest), until one fails. Its value tree, to shrink.
    fn find<S>(&mut self, strategy: &S) -> Result<Option<S::Tree>, ExploreError>
    where
        S: Strategy,
        S::Value: Clone + Debug,
        R: Runs<S::Value>,
    {
        let Self {
            settings,
            started,
            driver,
            tally,
            progress,
        } = self;
        let (settings, started) = (*settings, *started);
        let config = Config {
            cases: settings.cases,
            max_shrink_iters: MAX_SHRINK_STEPS,
            failure_persistence: None,
            ..Config::default()
        };
        let mut runner = TestRunner::new_with_rng(config, rng(settings.seed));
        let mut drawn = 0u32;
        let mut seen: HashSet<String> = HashSet::new();
        // The cases started and not yet taken, in order: (key, tree).
        let ahead: RefCell<VecDeque<(String, S::Tree)>> = RefCell::default();
        let mut failing = None;
        let mut draw = |_: usize| -> Next<S::Value> {
            while drawn < settings.cases {
                // As proptest's runner does for each case (`gen_get_seed`):
                // a fresh RNG from the runner's, then the tree from it.
                let fresh = runner.new_rng();
                *runner.rng() = fresh;
                let tree = match strategy.new_tree(&mut runner) {
                    Ok(tree) => tree,
                    Err(why) => return Next::Abort(why.to_string()),
                };
                let value = tree.current();
                let key = cache_key(&value);
                if seen.insert(key.clone()) {
                    drawn += 1;
                    ahead.borrow_mut().push_back((key, tree));
                    return Next::Run(
                        value,
                        Attempt {
                            shrinking: false,
                            try_index: 0,
                        },
                    );
                }
            }
            Next::End
        };
        driver.in_order(settings.budget, started, &mut draw, |_, taken| {
            let Taken::Ran(outcome) = taken else {
                tally.out_of_time = true;
                return false;
            };
            let (key, tree) = ahead
                .borrow_mut()
                .pop_front()
                .expect("a case taken was drawn before it ran");
            tally.cases += 1;
            tally.runs += 1;
            let go_on = match outcome {
                RunOutcome::Passed => true,
                RunOutcome::Failed(_) => {
                    tally.failed = true;
                    failing = Some(tree);
                    false
                }
                RunOutcome::Stop => {
                    tally.stopped = true;
                    false
                }
            };
            let kept = if failing.is_some() {
                Outcome::Fail(0)
            } else {
                Outcome::Pass
            };
            tally.cache.insert(key, kept);
            tally.report(settings, started, progress);
            go_on
        })?;
        Ok(failing)
    }

    /// proptest's shrinking of a failing case, step by step: after a
    /// failing step `simplify`, after a passing one `complicate`, until
    /// neither can go on. Returns the smallest failing value.
    fn shrink<T>(&mut self, mut tree: T) -> T::Value
    where
        T: ValueTree,
        T::Value: Clone + Debug,
        R: Runs<T::Value>,
    {
        let mut iterations = 0u32;
        if tree.simplify() {
            loop {
                if iterations >= MAX_SHRINK_STEPS {
                    while tree.complicate() {}
                    break;
                }
                iterations += 1;
                let value = tree.current();
                let key = cache_key(&value);
                let outcome = match self.tally.cache.get(&key) {
                    Some(&outcome) => outcome,
                    None => {
                        let outcome = self.shrink_step(&value);
                        self.tally.cache.insert(key, outcome);
                        outcome
                    }
                };
                let went_on = match outcome {
                    Outcome::Pass => tree.complicate(),
                    Outcome::Fail(_) => tree.simplify(),
                };
                if !went_on {
                    break;
                }
            }
        }
        tree.current()
    }

    /// One smaller case, tried up to `shrink_tries` times (the tries run
    /// ahead, taken in order up to the first that fails). It "passes" unrun
    /// once the loop is stopped, out of time, or out of shrinking runs, so
    /// the smallest failing case so far is the answer.
    fn shrink_step<V>(&mut self, value: &V) -> Outcome
    where
        V: Clone + Debug,
        R: Runs<V>,
    {
        let Self {
            settings,
            started,
            driver,
            tally,
            progress,
        } = self;
        let (settings, started) = (*settings, *started);
        if tally.stopped || tally.out_of_time {
            return Outcome::Pass;
        }
        let tries = settings.shrink_tries.max(1);
        let left = u64::from(settings.max_shrink_iters).saturating_sub(tally.shrink_runs);
        let mut next = |try_index: usize| {
            let try_index = try_index as u64;
            if try_index >= tries {
                Next::End
            } else if try_index >= left {
                Next::Unrun
            } else {
                Next::Run(
                    value.clone(),
                    Attempt {
                        shrinking: true,
                        try_index,
                    },
                )
            }
        };
        let mut outcome = Outcome::Pass;
        // Nothing is drawn while shrinking, so nothing aborts.
        let _ = driver.in_order(settings.budget, started, &mut next, |try_index, taken| {
            let Taken::Ran(ran) = taken else {
                tally.out_of_time = true;
                return false;
            };
            tally.shrink_runs += 1;
            tally.runs += 1;
            tally.report(settings, started, progress);
            match ran {
                RunOutcome::Passed => true,
                RunOutcome::Failed(_) => {
                    outcome = Outcome::Fail(try_index as u64);
                    false
                }
                RunOutcome::Stop => {
                    tally.stopped = true;
                    false
                }
            }
        });
        outcome
    }
}

/// proptest's shrinking step limit as this loop sets it (`u32::MAX`
/// would mean "four times `cases`"): `max_shrink_iters` counts runs, and
/// is kept in [`Loop::shrink_step`].
const MAX_SHRINK_STEPS: u32 = u32::MAX - 1;

/// What comes next in a sequence of runs.
enum Next<V> {
    /// Run this.
    Run(V, Attempt),
    /// It would pass unrun (out of shrinking runs): the sequence ends
    /// there, after the time budget is checked as for a run.
    Unrun,
    /// The sequence ends.
    End,
    /// Drawing the case failed (proptest's `Abort`): the loop ends with it
    /// once every run before it is taken.
    Abort(String),
}

/// A run's outcome as taken, in order.
#[derive(Debug, Clone)]
enum Taken {
    Ran(RunOutcome),
    /// The time budget did not hold this run: the loop is out of time.
    NotStarted,
}

/// Starts runs ahead on [`Runs`] and hands their outcomes back in order.
struct Driver<'a, R: ?Sized> {
    runs: &'a mut R,
    next_id: u64,
    /// Runs started and not yet ended, a sequence's or an earlier one's
    /// (started ahead, their outcomes no longer wanted).
    in_flight: usize,
    /// Runs ended, wanted or not: with the wall time, the mean run time.
    ended: u64,
}

impl<'a, R: ?Sized> Driver<'a, R> {
    fn new(runs: &'a mut R) -> Self {
        Self {
            runs,
            next_id: 0,
            in_flight: 0,
            ended: 0,
        }
    }

    /// Runs the sequence `next` gives (`next(i)` for its `i`-th run, asked
    /// in order) up to `width` at once, and hands each outcome to `take` in
    /// the sequence's order until `take` says stop (false) or the sequence
    /// ends. A run starts only while the budget holds it and the runs under
    /// way; the first that it does not is taken as [`Taken::NotStarted`].
    fn in_order<V>(
        &mut self,
        budget: Option<Budget>,
        started: Instant,
        next: &mut dyn FnMut(usize) -> Next<V>,
        mut take: impl FnMut(usize, Taken) -> bool,
    ) -> Result<(), ExploreError>
    where
        R: Runs<V>,
    {
        let first = self.next_id;
        let mut issued = 0usize;
        let mut taken = 0usize;
        let mut end: Option<End> = None;
        let mut done: HashMap<usize, RunOutcome> = HashMap::new();
        loop {
            while end.is_none() && self.in_flight < self.runs.width() {
                match next(issued) {
                    Next::End => end = Some(End::Plain),
                    Next::Abort(why) => end = Some(End::Abort(why)),
                    job => {
                        // As the one-at-a-time loop: the budget first, then
                        // the run (or its passing unrun).
                        let fits = budget.is_none_or(|b| {
                            b.fits_with(started.elapsed(), self.ended, self.in_flight as u64)
                        });
                        match job {
                            _ if !fits => end = Some(End::OutOfTime),
                            Next::Run(value, attempt) => {
                                self.runs.start(self.next_id, &value, attempt);
                                self.next_id += 1;
                                self.in_flight += 1;
                                issued += 1;
                            }
                            _ => end = Some(End::Plain),
                        }
                    }
                }
            }
            while let Some(outcome) = done.remove(&taken) {
                taken += 1;
                if !take(taken - 1, Taken::Ran(outcome)) {
                    return Ok(());
                }
            }
            if taken == issued {
                match end.take() {
                    None => {}
                    Some(End::Plain) => return Ok(()),
                    Some(End::OutOfTime) => {
                        take(issued, Taken::NotStarted);
                        return Ok(());
                    }
                    Some(End::Abort(why)) => return Err(ExploreError::Aborted(why)),
                }
            }
            // Runs are under way: the sequence's, or earlier ones holding
            // every place.
            let (id, outcome) = self.runs.next()?;
            self.in_flight -= 1;
            self.ended += 1;
            if id >= first {
                done.insert((id - first) as usize, outcome);
            }
        }
    }
}

/// How a sequence of runs ended.
enum End {
    Plain,
    OutOfTime,
    Abort(String),
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
    use std::cell::Cell;

    use proptest::prelude::*;
    use proptest::test_runner::{basic_result_cache, TestCaseError, TestError};

    use super::*;

    /// The loop as it was, on proptest's own `TestRunner::run`, one case at
    /// a time: what [`search_on`] must find at any width. On the first that fails,
    /// shrinks it to the smallest that still does. `run` runs one attempt of a
    /// case; `progress` hears of every run, `started` being when the
    /// exploration began (the budget counts from there).
    fn reference<S>(
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
            failing_try: None,
            out_of_time: out_of_time.get(),
            stopped: stopped.get(),
        })
    }

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
    /// Runs started are held, and handed back newest first: a later case
    /// always ends before an earlier one, as when low indexes are slow.
    struct NewestFirst<F> {
        width: usize,
        run: F,
        started: Vec<(u64, u32, Attempt)>,
        max_under_way: usize,
    }

    impl<F: FnMut(u32, Attempt) -> RunOutcome> Runs<u32> for NewestFirst<F> {
        fn width(&self) -> usize {
            self.width
        }
        fn start(&mut self, id: u64, value: &u32, attempt: Attempt) {
            self.started.push((id, *value, attempt));
            self.max_under_way = self.max_under_way.max(self.started.len());
        }
        fn next(&mut self) -> Result<(u64, RunOutcome), ExploreError> {
            let (id, value, attempt) = self.started.pop().expect("a run under way");
            Ok((id, (self.run)(value, attempt)))
        }
    }

    fn fails_from(limit: u32) -> impl Fn(u32, Attempt) -> RunOutcome {
        move |n, _| {
            if n >= limit {
                RunOutcome::Failed("big".into())
            } else {
                RunOutcome::Passed
            }
        }
    }

    /// The same as proptest's runner, one case at a time, at any width:
    /// the same smallest case, the same counts.
    fn assert_same_as_reference(
        strategy: &impl Strategy<Value = Vec<u32>>,
        settings: &LoopSettings,
        run: impl Fn(&Vec<u32>, Attempt) -> RunOutcome + Sync,
    ) {
        let expected =
            reference(strategy, settings, Instant::now(), |v, a| run(v, a), |_| {}).unwrap();
        for jobs in [1, 2, 3, 5] {
            let found = super::super::workers::with_pool(
                jobs,
                |_| Ok(|v: &Vec<u32>, a: Attempt| run(v, a)),
                |pool| search_on(strategy, settings, Instant::now(), pool, |_| {}),
            )
            .unwrap();
            let what = format!("jobs {jobs}, seed {}", settings.seed);
            assert_eq!(found.failing, expected.failing, "{what}");
            assert_eq!(found.cases, expected.cases, "{what}");
            assert_eq!(found.runs, expected.runs, "{what}");
            assert_eq!(found.shrink_runs, expected.shrink_runs, "{what}");
        }
    }

    #[test]
    fn finds_what_proptests_runner_finds_at_any_width() {
        let strategy = prop::collection::vec(0u32..1_000, 0..8);
        for seed in 0..12 {
            let settings = LoopSettings {
                seed,
                shrink_tries: 3,
                ..settings(200)
            };
            // Fails when the sum is large, on some tries only (a race).
            assert_same_as_reference(&strategy, &settings, |v, a| {
                let sum: u32 = v.iter().sum();
                if sum > 2_500 && (!a.shrinking || (sum + a.try_index as u32).is_multiple_of(3)) {
                    RunOutcome::Failed("large".into())
                } else {
                    RunOutcome::Passed
                }
            });
            // Shrinking cut short by max_shrink_iters, mid-step.
            assert_same_as_reference(
                &strategy,
                &LoopSettings {
                    max_shrink_iters: 7,
                    ..settings.clone()
                },
                |v, _| {
                    if v.len() >= 3 {
                        RunOutcome::Failed("long".into())
                    } else {
                        RunOutcome::Passed
                    }
                },
            );
            // Nothing fails: every case tried.
            assert_same_as_reference(&strategy, &settings, |_, _| RunOutcome::Passed);
        }
    }

    /// The first failing case by index is the one shrunk, although every
    /// later case started with it ended sooner.
    #[test]
    fn the_first_failing_case_by_index_wins() {
        // Cases drawn for seed 1: find the index of the first >= 500, and
        // make every case at or after it fail, later ones first to end.
        let drawn = {
            let mut seen = Vec::new();
            reference(
                &(0u32..1_000),
                &LoopSettings {
                    max_shrink_iters: 0,
                    ..settings(30)
                },
                Instant::now(),
                |&n, _| {
                    seen.push(n);
                    RunOutcome::Passed
                },
                |_| {},
            )
            .unwrap();
            seen
        };
        let first = drawn.iter().position(|&n| n >= 500).expect("a big case");
        assert!(drawn[first + 1..].iter().any(|&n| n >= 500));
        let expected = reference(
            &(0u32..1_000),
            &settings(30),
            Instant::now(),
            |&n, a| fails_from(500)(n, a),
            |_| {},
        )
        .unwrap();
        for width in 1..=6 {
            let mut runs = NewestFirst {
                width,
                run: fails_from(500),
                started: Vec::new(),
                max_under_way: 0,
            };
            let mut reports = Vec::new();
            let found = search_on(
                &(0u32..1_000),
                &LoopSettings {
                    max_shrink_iters: 0,
                    ..settings(30)
                },
                Instant::now(),
                &mut runs,
                |p| reports.push((p.cases, p.runs)),
            )
            .unwrap();
            assert_eq!(found.failing, Some(drawn[first]), "width {width}");
            assert_eq!(found.cases as usize, first + 1, "width {width}");
            assert_eq!(found.runs as usize, first + 1);
            // One report per run taken, in order.
            let counted: Vec<_> = (1..=first as u64 + 1).map(|n| (n as u32, n)).collect();
            assert_eq!(reports, counted);
            assert_eq!(runs.max_under_way, width.min(drawn.len()));
            // And shrunk as the one-at-a-time runner shrinks it.
            let mut runs = NewestFirst {
                width,
                run: fails_from(500),
                started: Vec::new(),
                max_under_way: 0,
            };
            let found = search_on(
                &(0u32..1_000),
                &settings(30),
                Instant::now(),
                &mut runs,
                |_| {},
            )
            .unwrap();
            assert_eq!(found.failing, Some(500));
            assert_eq!(found.failing, expected.failing);
            assert_eq!(
                (found.runs, found.shrink_runs),
                (expected.runs, expected.shrink_runs)
            );
        }
    }

    /// A stop taken in order ends the loop; runs started after it are not
    /// counted.
    #[test]
    fn a_stop_counts_only_the_runs_before_it() {
        for width in 1..=4 {
            let runs = NewestFirst {
                width,
                run: |_, _| RunOutcome::Passed,
                started: Vec::new(),
                max_under_way: 0,
            };
            // The third run started says stop.
            let mut runs = Stopping {
                inner: runs,
                stop_id: 2,
            };
            let found = search_on(
                &any::<u32>(),
                &settings(50),
                Instant::now(),
                &mut runs,
                |_| {},
            )
            .unwrap();
            assert!(found.stopped, "width {width}");
            assert_eq!(found.runs, 3, "width {width}");
            assert_eq!(found.cases, 3);
            assert_eq!(found.failing, None);
        }
    }

    /// Says [`RunOutcome::Stop`] for the run of id `stop_id`.
    struct Stopping<R> {
        inner: R,
        stop_id: u64,
    }

    impl<R: Runs<u32>> Runs<u32> for Stopping<R> {
        fn width(&self) -> usize {
            self.inner.width()
        }
        fn start(&mut self, id: u64, value: &u32, attempt: Attempt) {
            self.inner.start(id, value, attempt)
        }
        fn next(&mut self) -> Result<(u64, RunOutcome), ExploreError> {
            let (id, outcome) = self.inner.next()?;
            Ok((
                id,
                if id == self.stop_id {
                    RunOutcome::Stop
                } else {
                    outcome
                },
            ))
        }
    }

    /// A panicking run is a failing case, as in proptest's runner.
    #[test]
    fn a_panicking_run_fails_its_case() {
        let found = super::super::workers::with_pool(
            2,
            |_| {
                Ok(|&n: &u32, _: Attempt| {
                    if n >= 100 {
                        panic!("too big");
                    }
                    RunOutcome::Passed
                })
            },
            |pool| search_on(&(0u32..1_000), &settings(100), Instant::now(), pool, |_| {}),
        )
        .unwrap();
        assert_eq!(found.failing, Some(100));
        let inline = search(
            &(0u32..1_000),
            &settings(100),
            Instant::now(),
            |&n, _| {
                if n >= 100 {
                    panic!("too big");
                }
                RunOutcome::Passed
            },
            |_| {},
        )
        .unwrap();
        assert_eq!(inline.failing, Some(100));
    }
    /// With several runs under way, a run starts only while it, the runs
    /// under way and the reserved ones fit at the mean so far; before any
    /// run has ended (no mean yet), one per place starts.
    #[test]
    fn the_budget_counts_the_runs_under_way() {
        let started = Instant::now() - Duration::from_secs(10);
        let mut runs = NewestFirst {
            width: 3,
            run: |_, _| RunOutcome::Passed,
            started: Vec::new(),
            max_under_way: 0,
        };
        let found = search_on(
            &any::<u32>(),
            &LoopSettings {
                budget: Some(Budget {
                    max_time: Duration::from_secs(25),
                    reserve_runs: 3,
                }),
                ..settings(50)
            },
            started,
            &mut runs,
            |_| {},
        )
        .unwrap();
        // The first three start with no mean; once one has taken 10 s, a
        // fourth would need (1 + 2 under way + 3 reserved) x 10 s.
        assert_eq!(found.runs, 3);
        assert!(found.out_of_time);
        assert_eq!(found.cases, 3);
    }
}
