//! `lab check`, the CI gate: a suite of scenario files collected from the
//! paths given, run in parallel, and reported as a summary table with the
//! report of every scenario that did not end as it expected, as JSON or as
//! JUnit XML; it exits 0 (all as expected), 1 (some not) or 2 (bad input).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, ValueEnum};
use serde_json::json;

use crate::scenario::engine::{self, RunOptions};
use crate::scenario::result::{self, ScenarioResult};
use crate::scenario::{self, Scenario, ScenarioError};
use crate::target::{self, file::Target, run::TargetOptions};

/// Exit code: every scenario ended as it expected.
pub const EXIT_OK: u8 = 0;
/// Exit code: some scenario did not.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: a file could not be read or parsed, or a flag was wrong.
pub const EXIT_INVALID: u8 = 2;

/// `lab check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// Scenario files, or directories of them (`*.toml`); default:
    /// `scenarios/`, or with `--target FILE` the folder
    /// `scenarios/<FILE's name>/` beside it.
    pub paths: Vec<PathBuf>,
    /// Run the scenarios against your own app, described by this target
    /// file (its processes, how to place an order, when it has settled),
    /// instead of the lab's own pipeline.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["redis", "database"])]
    pub target: Option<PathBuf>,
    /// With `--target`: keep the logs of the runs that did not end as
    /// expected in this folder (default: the system's temporary folder).
    #[arg(long, value_name = "DIR", requires = "target")]
    pub logs: Option<PathBuf>,
    /// The report's format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write the report here instead of standard output (the summary still
    /// goes to standard error).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Seed for the fake services and the runner, for the scenarios that
    /// do not set their own `seed`.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Scenarios run at once (default: the cores this process may use,
    /// each worker thread held to its own; with `--target`, 1: each run
    /// starts the app's processes). The results do not depend on it.
    #[arg(long, value_name = "N", value_parser = crate::options::parse_jobs)]
    pub jobs: Option<usize>,
    /// Run the queues on this Redis (Sidekiq's layout; each scenario in a
    /// namespace of its own) instead of in memory.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// Run the store on this Postgres server (each scenario on a fresh
    /// database, dropped afterwards) instead of in-memory SQLite.
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table and the failures' reports, for people.
    Text,
    /// Every result with its verdict, violations and reasons.
    Json,
    /// JUnit XML, one testcase per scenario, for CI systems.
    Junit,
}

/// Runs `lab check`; returns the exit code.
pub async fn run(args: CheckArgs) -> u8 {
    let started = Instant::now();
    let target = match &args.target {
        None => None,
        Some(path) => match target::file::load(path) {
            Ok(target) => Some(target),
            Err(err) => {
                eprintln!("error: {err}");
                return EXIT_INVALID;
            }
        },
    };
    let paths = match (&target, args.paths.is_empty()) {
        (_, false) => args.paths.clone(),
        (None, true) => vec![PathBuf::from("scenarios")],
        (Some(target), true) => vec![target::default_scenarios(target)],
    };
    let files = match scenario_files(&paths) {
        Ok(files) => files,
        Err(message) => {
            eprintln!("error: {message}");
            return EXIT_INVALID;
        }
    };
    let (scenarios, errors): (Vec<_>, Vec<_>) = files
        .iter()
        .map(|f| {
            let scenario = scenario::load(f)?;
            match &target {
                None => scenario::format::check_for_lab(&scenario)?,
                Some(target) => {
                    target::scenario_rules::plan(&scenario, target)?;
                }
            }
            Ok(scenario)
        })
        .partition(Result::is_ok);
    let errors: Vec<ScenarioError> = errors.into_iter().filter_map(Result::err).collect();
    if !errors.is_empty() {
        for error in &errors {
            eprintln!("error: {error}");
        }
        eprintln!(
            "{} of {} scenario file(s) are invalid; nothing was run",
            errors.len(),
            files.len()
        );
        return EXIT_INVALID;
    }
    let scenarios: Vec<Scenario> = scenarios.into_iter().filter_map(Result::ok).collect();
    let results = match &target {
        None => run_all(scenarios, &args).await,
        Some(target) => run_all_against(target, scenarios, &args).await,
    };
    let elapsed = started.elapsed();
    let failed = results.iter().filter(|r| !r.passed()).count();
    let rendered = match args.format {
        Format::Text => text(&results),
        Format::Json => json_report(&results, elapsed.as_secs_f64()),
        Format::Junit => junit(&results, elapsed.as_secs_f64()),
    };
    match &args.output {
        Some(path) => {
            if let Err(err) = std::fs::write(path, &rendered) {
                eprintln!("error: cannot write {}: {err}", path.display());
                return EXIT_INVALID;
            }
            eprint!("{}", summary_table(&results));
        }
        None => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(rendered.as_bytes());
            if args.format != Format::Text {
                eprint!("{}", summary_table(&results));
            }
        }
    }
    eprintln!(
        "{} scenario(s): {} as expected, {} not, in {:.2} s",
        results.len(),
        results.len() - failed,
        failed,
        elapsed.as_secs_f64()
    );
    if failed == 0 {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}

/// The `*.toml` files named, directories expanded, sorted.
fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path)
                .map_err(|e| format!("cannot read the directory {}: {e}", path.display()))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            found.sort();
            files.extend(found);
        } else if path.exists() {
            files.push(path.clone());
        } else {
            return Err(format!("{}: no such file or directory", path.display()));
        }
    }
    if files.is_empty() {
        return Err("no scenario files (*.toml) found".into());
    }
    Ok(files)
}

/// Runs every scenario, `--jobs` at a time, on worker threads each held to
/// its own core (a scenario's lab is single-threaded, and its SQLite
/// threads inherit the core: see [`crate::cores`]), with a
/// progress bar on a terminal. The results come in the files' order.
async fn run_all(scenarios: Vec<Scenario>, args: &CheckArgs) -> Vec<ScenarioResult> {
    let jobs = args.jobs.unwrap_or_else(crate::cores::default_jobs);
    let options = RunOptions {
        seed: args.seed,
        redis: args.redis.clone(),
        database: args.database.clone(),
        ..RunOptions::default()
    };
    let bar = crate::progress::bar(scenarios.len() as u64);
    let shown = bar.clone();
    let results = tokio::task::spawn_blocking(move || {
        crate::cores::map_pinned(
            scenarios,
            jobs,
            |scenario| {
                // A runtime per scenario, on the worker's thread.
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map(|rt| rt.block_on(engine::run(&scenario, &options)))
            },
            |result| {
                shown.inc(1);
                if let Ok(Ok(result)) = result {
                    shown.set_message(result.name.clone());
                }
            },
        )
    })
    .await;
    bar.finish_and_clear();
    match results {
        Ok(results) => results
            .into_iter()
            .filter_map(|result| match result {
                Ok(Ok(result)) => Some(result),
                Ok(Err(err)) => {
                    eprintln!("error: could not start a runtime: {err}");
                    None
                }
                Err(panic) => {
                    eprintln!("error: a scenario run failed: {panic}");
                    None
                }
            })
            .collect(),
        Err(err) => {
            eprintln!("error: a scenario run failed: {err}");
            Vec::new()
        }
    }
}

/// Runs every scenario against the target, `--jobs` at a time (default
/// one), each run with its own fake services, ports and Redis.
async fn run_all_against(
    target: &Target,
    scenarios: Vec<Scenario>,
    args: &CheckArgs,
) -> Vec<ScenarioResult> {
    let jobs = args.jobs.unwrap_or(1);
    let options = TargetOptions {
        logs: args.logs.clone(),
        seed: args.seed,
    };
    let bar = crate::progress::bar(scenarios.len() as u64);
    let target = Arc::new(target.clone());
    let semaphore = Arc::new(tokio::sync::Semaphore::new(jobs));
    let mut handles = Vec::new();
    for scenario in scenarios {
        let (semaphore, options, bar, target) = (
            semaphore.clone(),
            options.clone(),
            bar.clone(),
            target.clone(),
        );
        handles.push(tokio::spawn(async move {
            let _permit = semaphore.acquire_owned().await.ok();
            bar.set_message(scenario.name.clone());
            let result = match target::scenario_rules::plan(&scenario, &target) {
                Ok(plan) => Some(target::run::run(&target, &scenario, &plan, &options).await),
                Err(err) => {
                    eprintln!("error: {err}");
                    None
                }
            };
            bar.inc(1);
            result
        }));
    }
    // Ctrl-C must not leave the app's processes running: they are in
    // process groups of their own, so the terminal's SIGINT does not reach
    // them. Aborting the runs drops them, and a dropped run kills its
    // processes' groups and its Redis.
    let abort: Vec<_> = handles.iter().map(|h| h.abort_handle()).collect();
    let collect = async {
        let mut results = Vec::new();
        for handle in handles {
            match handle.await {
                Ok(Some(result)) => results.push(result),
                Ok(None) => {}
                Err(err) if err.is_cancelled() => {}
                Err(err) => eprintln!("error: a scenario run failed: {err}"),
            }
        }
        results
    };
    tokio::pin!(collect);
    let results = tokio::select! {
        results = &mut collect => results,
        _ = tokio::signal::ctrl_c() => {
            bar.finish_and_clear();
            eprintln!("interrupted: stopping the target's processes");
            abort.iter().for_each(|a| a.abort());
            let _ = collect.await;
            std::process::exit(130);
        }
    };
    bar.finish_and_clear();
    results
}

fn summary_table(results: &[ScenarioResult]) -> String {
    let width = results
        .iter()
        .map(|r| file_name(r).len())
        .max()
        .unwrap_or(8)
        .max(8);
    let mut out = format!(
        "{:<width$}  {:<8}  {:>8}  expectation\n",
        "scenario", "result", "time"
    );
    for result in results {
        let expectation = result
            .runs
            .first()
            .map(|run| match run.verdict.expected_violation {
                Some(v) => format!("violation {v}"),
                None => "invariants hold".into(),
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "{:<width$}  {:<8}  {:>6}ms  {}\n",
            file_name(result),
            if result.passed() { "ok" } else { "FAILED" },
            result.elapsed_ms,
            expectation,
        ));
    }
    out
}

fn file_name(result: &ScenarioResult) -> String {
    result
        .path
        .as_deref()
        .and_then(|p| Path::new(p).file_name())
        .map_or_else(|| result.name.clone(), |n| n.to_string_lossy().into_owned())
}

fn text(results: &[ScenarioResult]) -> String {
    let mut out = summary_table(results);
    for result in results.iter().filter(|r| !r.passed()) {
        out.push('\n');
        out.push_str(&result::render(result));
    }
    out
}

fn json_report(results: &[ScenarioResult], seconds: f64) -> String {
    let scenarios: Vec<_> = results
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "path": r.path,
                "passed": r.passed(),
                "elapsed_ms": r.elapsed_ms,
                "runs": r.runs.iter().map(|run| json!({
                    "step": run.step.map(|s| s.name()),
                    "passed": run.passed(),
                    "unfinished": run.unfinished,
                    "virtual_ms": run.virtual_ms,
                    "verdict": crate::checker::render_json(&run.verdict),
                    "timeline": run.timeline.moments,
                    "logs": run.logs.iter().map(|(process, path)| json!({"process": process, "path": path})).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let failed = results.iter().filter(|r| !r.passed()).count();
    let report = json!({
        "scenarios": scenarios,
        "passed": results.len() - failed,
        "failed": failed,
        "seconds": seconds,
    });
    format!(
        "{}\n",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    )
}

fn junit(results: &[ScenarioResult], seconds: f64) -> String {
    let failed = results.iter().filter(|r| !r.passed()).count();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"idemlab\" tests=\"{}\" failures=\"{failed}\" time=\"{seconds:.3}\">\n<testsuite name=\"scenarios\" tests=\"{}\" failures=\"{failed}\" time=\"{seconds:.3}\">\n",
        results.len(),
        results.len(),
    );
    for result in results {
        let name = xml(&file_name(result));
        let time = result.elapsed_ms as f64 / 1000.0;
        if result.passed() {
            out.push_str(&format!(
                "  <testcase classname=\"scenarios\" name=\"{name}\" time=\"{time:.3}\"/>\n"
            ));
        } else {
            let reason = result.failure_reason();
            out.push_str(&format!(
                "  <testcase classname=\"scenarios\" name=\"{name}\" time=\"{time:.3}\">\n    <failure message=\"{}\">{}</failure>\n  </testcase>\n",
                xml(&reason),
                xml(&result::render(result)),
            ));
        }
    }
    out.push_str("</testsuite>\n</testsuites>\n");
    out
}

fn xml(text: &str) -> String {
    html_escape::encode_quoted_attribute(text).into_owned()
}
