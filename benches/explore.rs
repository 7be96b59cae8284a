//! The simulator's speed (issue 6): simulated runs per second — one-order
//! runs of a fixed plan, and the random plans `lab explore` tries — and the
//! time `lab explore` takes to find and shrink the monolithic pipeline's
//! double charge.
//!
//! The target (2,000 one-order runs per second) is for one core, and the
//! bench holds itself to the core it starts on, as `lab explore` does
//! (`lab/explore/one_core.rs`): the simulator is one thread, but sqlx runs
//! each SQLite connection on a thread of its own and every statement is a
//! hand-over between the two — on one core a context switch, across cores a
//! wake-up of the other core, three to four times slower. `IDEMLAB_BENCH_RUNS`
//! sets the number of one-order runs (default 2,000).
//!
//! The one-order runs use this bench's runtime and leave their stores for
//! the next runs on this thread; `explore` then uses them from a runtime of
//! its own while this one is alive but idle. That used to hang (see
//! `lab/store/writer.rs`), so the bench also checks it does not.

use std::path::Path;
use std::time::{Duration, Instant};

use idemlab::explore::one_core::OneCore;
use idemlab::explore::{explore, ExploreOptions};
use idemlab::pipeline::{ChargeDedup, Knobs, Structure};
use idemlab::scenario::{self, engine};

const ONE_ORDER: &str = include_str!("../tests/data/one-order-email-crash.toml");

fn main() {
    // Before the first store (and its connection thread) exists.
    let one_core = OneCore::pin();
    if !one_core.pinned() {
        eprintln!("(could not hold the bench to one core: the figures are for several)");
    }
    let runs: u32 = std::env::var("IDEMLAB_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");

    // 1. The same one-order plan, seed after seed.
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

    // 2. What `lab explore` tries: random plans of 1–5 orders and 0–4 faults.
    let cases = (runs / 2).max(1);
    let exploration = explore(
        Knobs::default(),
        &ExploreOptions {
            cases,
            seed: 1,
            ..ExploreOptions::default()
        },
        |_| {},
    )
    .expect("the exploration runs");
    assert!(
        exploration.counterexample.is_none(),
        "the safe pipeline broke"
    );
    println!(
        "random plans (lab explore, safe pipeline): {} runs in {:.2} s = {:.0} runs/s",
        exploration.runs,
        exploration.elapsed.as_secs_f64(),
        exploration.runs_per_second()
    );

    // 3. Find and shrink the monolithic double charge, from ten seeds.
    let monolithic = Knobs {
        structure: Structure::Monolithic,
        charge: ChargeDedup::None,
        ..Knobs::default()
    };
    let mut times: Vec<Duration> = (1..=10)
        .map(|seed| {
            let started = Instant::now();
            let found = explore(
                monolithic,
                &ExploreOptions {
                    cases: 1_000,
                    seed,
                    ..ExploreOptions::default()
                },
                |_| {},
            )
            .expect("the exploration runs");
            let counterexample = found
                .counterexample
                .unwrap_or_else(|| panic!("seed {seed}: no double charge found"));
            assert!(counterexample.scenario.faults.len() <= 2);
            started.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "monolithic double charge found and shrunk: median {:.0} ms, slowest {:.0} ms (10 seeds)",
        times[times.len() / 2].as_secs_f64() * 1000.0,
        times[times.len() - 1].as_secs_f64() * 1000.0
    );
}
