//! `lab check --target` on the Sinatra + Sidekiq example (issue 13): the
//! wall time of the naive sidekiq-shop suite, and of one settled scenario
//! (the happy path: the app's processes started, two orders placed, charged,
//! emailed and fulfilled, the run settled, everything stopped), run several
//! times for a median. Target: one settled scenario in under 5 s median,
//! with `fast_retries`.
//!
//! Run with `cargo bench --bench target`. It needs what the example needs:
//! `redis-server`, and Debian's `ruby-sinatra`, `ruby-sidekiq` and `puma`.
//! `IDEMLAB_BENCH_RUNS` sets the number of single-scenario runs (default 7).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const LAB: &str = env!("CARGO_BIN_EXE_lab");
const TARGET: &str = "examples/sidekiq-shop/naive.toml";
const SUITE: &str = "examples/sidekiq-shop/scenarios/naive";
const ONE: &str = "examples/sidekiq-shop/scenarios/naive/01-happy-path.toml";

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (what, program, args) in [
        ("redis-server", "redis-server", &["--version"][..]),
        (
            "ruby with sidekiq and sinatra",
            "ruby",
            &["-e", "require 'sidekiq'; require 'sinatra/base'"][..],
        ),
        ("puma", "puma", &["--version"][..]),
    ] {
        let ok = Command::new(program)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            eprintln!(
                "this bench needs {what} (Debian: apt-get install redis-server ruby-sinatra ruby-sidekiq puma)"
            );
            std::process::exit(1);
        }
    }
    let runs: usize = std::env::var("IDEMLAB_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);

    let suite = check(root, &[SUITE]);
    println!(
        "sidekiq-shop naive suite ({} scenarios): {:.2} s",
        suite.1,
        suite.0.as_secs_f64()
    );

    let mut times: Vec<Duration> = (0..runs).map(|_| check(root, &[ONE]).0).collect();
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "one settled scenario (01-happy-path, 2 orders): median {:.2} s, fastest {:.2} s, slowest {:.2} s over {runs} runs",
        median.as_secs_f64(),
        times[0].as_secs_f64(),
        times[times.len() - 1].as_secs_f64(),
    );
    let target = Duration::from_secs(5);
    println!(
        "target: one settled scenario under 5 s median: {}",
        if median < target { "met" } else { "NOT met" }
    );
}

/// Runs `lab check --target` on `paths`; its wall time and the number of
/// scenarios it ran. Every scenario must end as it expects.
fn check(root: &Path, paths: &[&str]) -> (Duration, usize) {
    let started = Instant::now();
    let output = Command::new(LAB)
        .current_dir(root)
        .args(["check", "--target", TARGET, "--format", "json"])
        .args(paths)
        .output()
        .expect("lab runs");
    let elapsed = started.elapsed();
    assert!(
        output.status.success(),
        "lab check --target failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("a JSON report");
    let count = report["scenarios"].as_array().map_or(0, Vec::len);
    (elapsed, count)
}
