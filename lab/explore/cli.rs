//! `lab explore`: searches fault plans for one that breaks a pipeline
//! variant and hands back the smallest as a scenario file. Exits 0 when no
//! plan broke it, 1 with a counterexample, 2 on bad input (like `lab check`).

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::search::{explore, Exploration, ExploreOptions, Progress, DEFAULT_SHRINK_ITERS};
use crate::checker::render_text;
use crate::options::KnobArgs;
use crate::scenario::to_toml;
use crate::suite::{EXIT_FAILED, EXIT_INVALID, EXIT_OK};

/// `lab explore`.
#[derive(Debug, Clone, Args)]
pub struct ExploreArgs {
    /// The pipeline variant to explore (default: the safe pipeline).
    #[command(flatten)]
    pub knobs: KnobArgs,
    /// Fault plans to try.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub cases: u32,
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
    let knobs = args.knobs.knobs();
    let seed = args.seed.unwrap_or_else(rand::random);
    let options = ExploreOptions {
        cases: args.cases,
        seed,
        max_shrink_iters: args.max_shrink_iters,
        ..ExploreOptions::default()
    };
    let variant = if knobs == crate::pipeline::Knobs::safe() {
        "the safe pipeline".to_string()
    } else {
        format!("the pipeline with {knobs}")
    };
    eprintln!(
        "exploring {} fault plan(s) on {variant} (seed {seed}; repeat with --seed {seed})",
        args.cases
    );
    let bar = crate::progress::bar(u64::from(args.cases));
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
                "no violation in {} cases ({:.0} runs/s, {:.1} s)",
                exploration.cases,
                exploration.runs_per_second(),
                exploration.elapsed.as_secs_f64()
            );
            EXIT_OK
        }
        Some(_) => report(&exploration, &args),
    }
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
