//! `lab explore`: searches fault plans for one that breaks a pipeline
//! variant (or, with `--target`, a user's app) and hands back the smallest
//! as a scenario file. Exits 0 when no plan broke it, 1 with a
//! counterexample, 2 on bad input (like `lab check`), 130 on Ctrl-C.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::search::{explore, Exploration, ExploreOptions, Progress, DEFAULT_SHRINK_ITERS};
use super::target::{
    explore_target, Phase, TargetExploration, TargetExploreOptions, TargetProgress, DEFAULT_CASES,
    DEFAULT_CONFIRM, DEFAULT_TRIES,
};
use crate::checker::render_text;
use crate::options::KnobArgs;
use crate::scenario::result;
use crate::scenario::to_toml;
use crate::suite::{EXIT_FAILED, EXIT_INVALID, EXIT_OK};
use crate::target::run::TargetOptions;

/// Exit code: interrupted (Ctrl-C), as a shell reports SIGINT.
pub const EXIT_INTERRUPTED: u8 = 130;

/// The knob flags, which say nothing about a target's own code.
const KNOB_FLAGS: [&str; 7] = [
    "structure",
    "charge",
    "email",
    "fulfillment",
    "enqueue",
    "sweep",
    "fetch",
];

/// `lab explore`.
#[derive(Debug, Clone, Args)]
pub struct ExploreArgs {
    /// The pipeline variant to explore (default: the safe pipeline).
    #[command(flatten)]
    pub knobs: KnobArgs,
    /// Explore your own app, described by this target file (as for `lab
    /// check --target`), instead of the lab's pipeline: plans drawn from
    /// what the target takes, each run against fresh processes.
    #[arg(long, value_name = "FILE", conflicts_with_all = KNOB_FLAGS)]
    pub target: Option<PathBuf>,
    /// Fault plans to try (default 1000; with --target, 20: each run is
    /// seconds of real processes).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub cases: Option<u32>,
    /// Seeds the plans and the interleavings they run in; the same seed
    /// finds the same counterexample (default: random, and printed so the
    /// run can be repeated).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write the counterexample here as a scenario file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Write the counterexample as a regression test that holds the safe
    /// invariants (it fails until the pipeline is fixed) instead of one that
    /// expects the violation.
    #[arg(long)]
    pub expect_safe: bool,
    /// Shrinking runs at most (0: report the first failing plan as found).
    #[arg(long, default_value_t = DEFAULT_SHRINK_ITERS)]
    pub max_shrink_iters: u32,
    /// Bounds the whole exploration (a duration with its unit: 600s, 10m,
    /// 1h). A run starts only while the time left holds it, the runs under
    /// way and the runs kept for the end (with --target, the --confirm
    /// runs; else the counterexample's report) at the mean run time so far:
    /// then the search stops, or the shrinking stops at the smallest plan
    /// so far.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub max_time: Option<Duration>,
    /// With --target: while shrinking, run each smaller plan up to N times
    /// (stopping at the first failing run) before it counts as passing: a
    /// real app is not deterministic, and a plan that broke it once counts.
    #[arg(long, value_name = "N", requires = "target", value_parser = clap::value_parser!(u32).range(1..))]
    pub tries: Option<u32>,
    /// With --target: run the smallest plan N times at the end; the written
    /// file says how often it reproduced.
    #[arg(long, value_name = "N", requires = "target", value_parser = clap::value_parser!(u32).range(1..))]
    pub confirm: Option<u32>,
    /// Worker threads the runs go to, each held to its own core (default:
    /// the cores this process may use, as `taskset` allows). The same seed
    /// finds the same counterexample and writes the same file whatever N
    /// is. Not with --target: its runs (real processes) go one at a time.
    #[arg(long, value_name = "N", value_parser = crate::options::parse_jobs, conflicts_with = "target")]
    pub jobs: Option<usize>,
    /// With --target: keep the logs of the runs that failed in this folder
    /// (default: the system's temporary folder).
    #[arg(long, value_name = "DIR", requires = "target")]
    pub logs: Option<PathBuf>,
}

/// A duration with its unit: `500ms`, `600s`, `10m`, `1h`. A bare number is
/// refused: `--max-time 600` could mean seconds or minutes.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(format!(
            "`{text}` is not a duration: write a number and its unit, e.g. 600s, 10m or 1h"
        ));
    }
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}`: {number} is too large"))?;
    let seconds = |per: u64| {
        n.checked_mul(per)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("`{text}` is too long"))
    };
    let duration = match unit.trim() {
        "" => {
            return Err(format!(
                "`{text}` has no unit: write 600s, 10m or 1h (a bare number could be seconds or minutes)"
            ))
        }
        "ms" => Ok(Duration::from_millis(n)),
        "s" => seconds(1),
        "m" => seconds(60),
        "h" => seconds(3_600),
        other => Err(format!(
            "`{text}`: unknown unit `{other}` (use ms, s, m or h: 600s, 10m, 1h)"
        )),
    }?;
    if duration.is_zero() {
        return Err(format!("`{text}` leaves no time to explore"));
    }
    Ok(duration)
}

/// Runs `lab explore`; returns the exit code. Blocking (the engine runs on
/// a runtime of its own): call it from `spawn_blocking`.
pub fn run(args: ExploreArgs) -> u8 {
    if let Some(out) = &args.out {
        if let Err(message) = check_writable(out) {
            eprintln!("error: --out {}: {message}", out.display());
            return EXIT_INVALID;
        }
    }
    if args.target.is_some() {
        return run_target(&args);
    }
    let knobs = args.knobs.knobs();
    let seed = args.seed.unwrap_or_else(rand::random);
    let cases = args.cases.unwrap_or(1_000);
    let jobs = args.jobs.unwrap_or_else(crate::cores::default_jobs);
    let options = ExploreOptions {
        cases,
        seed,
        max_shrink_iters: args.max_shrink_iters,
        max_time: args.max_time,
        jobs,
        ..ExploreOptions::default()
    };
    let variant = if knobs == crate::pipeline::Knobs::safe() {
        "the safe pipeline".to_string()
    } else {
        format!("the pipeline with {knobs}")
    };
    eprintln!(
        "exploring {cases} fault plan(s) on {variant} (seed {seed}; repeat with --seed {seed}), {jobs} job(s)"
    );
    let bar = crate::progress::bar(u64::from(cases));
    let exploration = explore(knobs, &options, |p| show(&bar, &p));
    bar.finish_and_clear();
    let exploration = match exploration {
        Ok(exploration) => exploration,
        Err(err) => {
            eprintln!("error: {err}");
            return EXIT_INVALID;
        }
    };
    match &exploration.counterexample {
        None => {
            println!(
                "no violation in {} cases ({:.0} runs/s, {:.1} s){}",
                exploration.cases,
                exploration.runs_per_second(),
                exploration.elapsed.as_secs_f64(),
                if exploration.out_of_time {
                    format!(
                        ": --max-time ran out after {} of {cases}",
                        exploration.cases
                    )
                } else {
                    String::new()
                }
            );
            EXIT_OK
        }
        Some(_) => report(&exploration, &args),
    }
}

/// `lab explore --target FILE`; returns the exit code.
fn run_target(args: &ExploreArgs) -> u8 {
    let Some(path) = &args.target else {
        return EXIT_INVALID;
    };
    let target = match crate::target::file::load(path) {
        Ok(target) => target,
        Err(err) => {
            eprintln!("error: {err}");
            return EXIT_INVALID;
        }
    };
    let seed = args.seed.unwrap_or_else(rand::random);
    let options = TargetExploreOptions {
        cases: args.cases.unwrap_or(DEFAULT_CASES),
        seed,
        max_shrink_iters: args.max_shrink_iters,
        tries: args.tries.unwrap_or(DEFAULT_TRIES),
        confirm: args.confirm.unwrap_or(DEFAULT_CONFIRM),
        max_time: args.max_time,
        run: TargetOptions {
            logs: args.logs.clone(),
            seed: 1,
        },
    };
    eprintln!(
        "exploring {} fault plan(s) on {} (seed {seed}; repeat with --seed {seed}){}",
        options.cases,
        target.name,
        args.max_time
            .map(|t| format!(", within {}", duration_text(t)))
            .unwrap_or_default()
    );
    let bar = crate::progress::bar(u64::from(options.cases));
    let exploration = explore_target(&target, path.clone(), &options, |p| show_target(&bar, &p));
    bar.finish_and_clear();
    let exploration = match exploration {
        Ok(exploration) => exploration,
        Err(super::ExploreError::Interrupted) => {
            eprintln!("interrupted: the target's processes were stopped");
            return EXIT_INTERRUPTED;
        }
        Err(err) => {
            eprintln!("error: {err}");
            return EXIT_INVALID;
        }
    };
    match &exploration.counterexample {
        None => {
            println!(
                "no violation in {} cases ({} runs, {:.1} s){}",
                exploration.cases,
                exploration.runs,
                exploration.elapsed.as_secs_f64(),
                if exploration.out_of_time {
                    format!(
                        ": --max-time ran out after {} of {} cases",
                        exploration.cases, options.cases
                    )
                } else {
                    String::new()
                }
            );
            EXIT_OK
        }
        Some(_) => report_target(&exploration, args),
    }
}

/// Prints (and writes) a target's counterexample; returns the exit code.
fn report_target(exploration: &TargetExploration, args: &ExploreArgs) -> u8 {
    let Some(found) = &exploration.counterexample else {
        return EXIT_OK;
    };
    let file = found.scenario_file(exploration, args.expect_safe);
    let text = to_toml(&file);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = write!(out, "{}", result::render(&found.result));
    drop(out);
    let orders: u32 = found.scenario.orders.iter().map(|b| b.count).sum();
    eprintln!(
        "violation found after {} case(s) ({} runs, {:.1} s{}); the smallest plan has {} fault(s), {} order(s); it reproduced {} of {} runs",
        exploration.cases,
        exploration.runs,
        exploration.elapsed.as_secs_f64(),
        if exploration.out_of_time {
            ", shrinking stopped by --max-time"
        } else {
            ""
        },
        found.scenario.faults.len(),
        orders,
        found.reproduced,
        found.confirm_runs,
    );
    if let Some(path) = &args.out {
        if let Err(err) = std::fs::write(path, &text) {
            eprintln!("error: cannot write {}: {err}", path.display());
            return EXIT_INVALID;
        }
        eprintln!(
            "written to {}: `lab check --target {} {}` {}",
            path.display(),
            exploration.target_path.display(),
            path.display(),
            if args.expect_safe {
                "fails until the app is fixed"
            } else {
                "passes while the bug is there"
            }
        );
    }
    EXIT_FAILED
}

/// `1h 2m 3s`, `45s`, for time left.
fn duration_text(duration: Duration) -> String {
    let total = duration.as_secs();
    let (h, m, s) = (total / 3_600, total / 60 % 60, total % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m {s}s"),
    }
}

fn show_target(bar: &indicatif::ProgressBar, progress: &TargetProgress) {
    let phase = match progress.phase {
        Phase::Searching { case, of } => {
            bar.set_position(u64::from(case.saturating_sub(1)));
            format!("searching: plan {case} of {of}")
        }
        Phase::Shrinking => "violation found; shrinking it".to_string(),
        Phase::Confirming { run, of } => format!("confirming the smallest plan: run {run} of {of}"),
    };
    let left = progress
        .time_left
        .map(|t| format!(", {} left", duration_text(t)))
        .unwrap_or_default();
    bar.set_message(format!("{phase} ({} runs done{left})", progress.runs));
}

/// Prints (and writes) the counterexample; returns the exit code.
fn report(exploration: &Exploration, args: &ExploreArgs) -> u8 {
    let Some(found) = &exploration.counterexample else {
        return EXIT_OK;
    };
    let file = found.scenario_file(exploration, args.expect_safe);
    let text = to_toml(&file);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = write!(
        out,
        "{}",
        render_text(
            "the smallest plan, held to the safe invariants",
            &found.verdict
        )
    );
    if let Some(unfinished) = &found.unfinished {
        let _ = writeln!(out, "  {unfinished}");
    }
    drop(out);
    eprintln!(
        "violation found after {} case(s) ({:.0} runs/s, {:.1} s); the smallest plan has {} fault(s), {} order(s), concurrency {}",
        exploration.cases,
        exploration.runs_per_second(),
        exploration.elapsed.as_secs_f64(),
        found.scenario.faults.len(),
        found.scenario.orders.iter().map(|b| b.count).sum::<u32>(),
        found.scenario.concurrency,
    );
    if let Some(path) = &args.out {
        if let Err(err) = std::fs::write(path, &text) {
            eprintln!("error: cannot write {}: {err}", path.display());
            return EXIT_INVALID;
        }
        eprintln!(
            "written to {}: `lab check {}` {}",
            path.display(),
            path.display(),
            if args.expect_safe {
                "fails until the pipeline is fixed"
            } else {
                "passes while the bug is there"
            }
        );
    }
    EXIT_FAILED
}

/// Refuses an `--out` that could not be written, before any time is spent.
fn check_writable(path: &std::path::Path) -> Result<(), String> {
    if path.is_dir() {
        return Err("is a directory".into());
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if !parent.is_dir() {
        return Err(format!("the directory {} does not exist", parent.display()));
    }
    Ok(())
}

fn show(bar: &indicatif::ProgressBar, progress: &Progress) {
    bar.set_position(u64::from(progress.cases));
    let rate = progress.runs_per_second();
    if progress.shrinking {
        bar.set_message(format!(
            "violation found; shrinking it ({} runs, {rate:.0} runs/s)",
            progress.runs
        ));
    } else {
        bar.set_message(format!("{rate:.0} runs/s"));
    }
}
