//! The simulator's speed (issues 6 and 15): simulated runs per second —
//! one-order runs of a fixed plan, and the random plans `lab explore` tries,
//! with one job and with one per core — and the time `lab explore` takes to
//! find and shrink the monolithic pipeline's double charge, likewise.
//!
//! The one-order target (2,000 runs per second) is for one core, and that
//! part holds itself to the core it starts on, as each `lab explore` worker
//! does (`lab/cores.rs`): the simulator is one thread, but sqlx runs
//! each SQLite connection on a thread of its own and every statement is a
//! hand-over between the two — on one core a context switch, across cores a
//! wake-up of the other core, three to four times slower. The explorations
//! run as `lab explore --jobs 1` and `--jobs N` (N: the cores this process
//! may use), same seed, and must find the same counterexample; the target
//! for the random plans is 1.8 times the one-job rate on 2 cores.
//! `IDEMLAB_BENCH_RUNS` sets the number of one-order runs (default 2,000;
//! the random plans are as many cases).
//!
//! The one-order runs use this bench's runtime and leave their stores for
//! the next runs on this thread; `explore` then uses them from a runtime of
//! its own (a counterexample's report runs on the calling thread) while
//! this one is alive but idle. That used to hang (see
//! `lab/store/writer.rs`), so the bench also checks it does not.

use std::path::Path;
use std::time::{Duration, Instant};

use idemlab::cores::{self, Pinned};
use idemlab::explore::{explore, ExploreOptions};
use idemlab::pipeline::{ChargeDedup, Knobs, Structure};
use idemlab::scenario::{self, engine};

const ONE_ORDER: &str = include_str!("../tests/data/one-order-email-crash.toml");

fn main() {
    let runs: u32 = std::env::var("IDEMLAB_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let all = cores::default_jobs();
    println!("cores this process may use: {all}");
    // Alive, idle, to the end (see above).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    {
        // Before the first store (and its connection thread) exists; given
        // back before the explorations, whose workers pin themselves.
        let here = Pinned::here();
        if !here.pinned() {
            eprintln!("(could not hold the bench to one core: the figures are for several)");
        }
        one_order_runs(&runtime, runs);
    }

    // 2. What `lab explore` tries: random plans of 1–5 orders and 0–4 faults.
    let mut rates = Vec::new();
    for jobs in [1, all] {
        let exploration = explore(
            Knobs::default(),
            &ExploreOptions {
                cases: runs.max(1),
                seed: 1,
                jobs,
                ..ExploreOptions::default()
            },
            |_| {},
        )
        .expect("the exploration runs");
        assert!(
            exploration.counterexample.is_none(),
            "the safe pipeline broke"
        );
        rates.push(exploration.runs_per_second());
        println!(
            "random plans (lab explore --jobs {jobs}, safe pipeline): {} runs in {:.2} s = {:.0} runs/s",
            exploration.runs,
            exploration.elapsed.as_secs_f64(),
            exploration.runs_per_second()
        );
    }
    println!(
        "random plans, --jobs {all} over --jobs 1: {:.2}x",
        rates[1] / rates[0]
    );

    // 3. Find and shrink the monolithic double charge, from ten seeds.
    let monolithic = Knobs {
        structure: Structure::Monolithic,
        charge: ChargeDedup::None,
        ..Knobs::default()
    };
    let mut found_by_jobs = Vec::new();
    for jobs in [1, all] {
        let mut found = Vec::new();
        let mut times: Vec<Duration> = (1..=10)
            .map(|seed| {
                let started = Instant::now();
                let exploration = explore(
                    monolithic,
                    &ExploreOptions {
                        cases: 1_000,
                        seed,
                        jobs,
                        ..ExploreOptions::default()
                    },
                    |_| {},
                )
                .expect("the exploration runs");
                let elapsed = started.elapsed();
                let counterexample = exploration
                    .counterexample
                    .unwrap_or_else(|| panic!("seed {seed}: no double charge found"));
                assert!(counterexample.scenario.faults.len() <= 2);
                found.push(scenario::to_toml(&counterexample.scenario));
                elapsed
            })
            .collect();
        times.sort();
        println!(
            "monolithic double charge found and shrunk (--jobs {jobs}): median {:.0} ms, slowest {:.0} ms (10 seeds)",
            times[times.len() / 2].as_secs_f64() * 1000.0,
            times[times.len() - 1].as_secs_f64() * 1000.0
        );
        found_by_jobs.push(found);
    }
    assert_eq!(
        found_by_jobs[0], found_by_jobs[1],
        "--jobs {all} found other counterexamples than --jobs 1"
    );
    drop(runtime);
}

/// 1. The same one-order plan, seed after seed, on this thread.
fn one_order_runs(runtime: &tokio::runtime::Runtime, runs: u32) {
    let plan = scenario::parse(ONE_ORDER, Path::new("bench.toml")).expect("the plan parses");
    let started = Instant::now();
    runtime.block_on(async {
        for seed in 0..u64::from(runs) {
            let options = engine::RunOptions {
                seed,
                ..engine::RunOptions::default()
            };
            let result = engine::run(&plan, &options).await;
            assert!(result.passed(), "the safe pipeline broke: seed {seed}");
        }
    });
    let elapsed = started.elapsed();
    println!(
        "one-order runs (safe pipeline, email crash once): {runs} in {:.2} s = {:.0} runs/s",
        elapsed.as_secs_f64(),
        f64::from(runs) / elapsed.as_secs_f64()
    );
}
