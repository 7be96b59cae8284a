//! `lab explore --target` on the Sinatra + Sidekiq example: the wall time
//! to find what breaks the naive sidekiq-shop (its double charge, or the
//! job a killed worker loses: each seed's line says which), shrink it and
//! confirm it (3 runs), for a few seeds: the median and the slowest.
//! Target: under 2 minutes.
//!
//! Run with `cargo bench --bench explore_target`. It needs what the example
//! needs: `redis-server`, and Debian's `ruby-sinatra`, `ruby-sidekiq` and
//! `puma`. `IDEMLAB_BENCH_SEEDS` sets the seeds (default `1,2,3`).

use std::process::Command;
use std::time::{Duration, Instant};

const LAB: &str = env!("CARGO_BIN_EXE_lab");
const TARGET: &str = "examples/sidekiq-shop/naive.toml";

fn main() {
    let root = env!("CARGO_MANIFEST_DIR");
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
    let seeds: Vec<String> = std::env::var("IDEMLAB_BENCH_SEEDS")
        .unwrap_or_else(|_| "1,2,3".into())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let mut times = Vec::new();
    for seed in &seeds {
        let found = std::env::temp_dir().join(format!(
            "idemlab-bench-explore-target-{}-{seed}.toml",
            std::process::id()
        ));
        let started = Instant::now();
        let output = Command::new(LAB)
            .current_dir(root)
            .args(["explore", "--target", TARGET, "--seed", seed, "--out"])
            .arg(&found)
            .output()
            .expect("lab runs");
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(1),
            "seed {seed}: no counterexample:\n{stderr}"
        );
        let summary = stderr
            .lines()
            .find(|l| l.starts_with("violation found"))
            .unwrap_or_default()
            .to_string();
        // What it found: the written file's expected violation.
        let written = std::fs::read_to_string(&found).unwrap_or_default();
        let _ = std::fs::remove_file(&found);
        let violation = written
            .lines()
            .find_map(|l| l.strip_prefix("violation = "))
            .unwrap_or("(no file written)")
            .trim_matches('"')
            .to_string();
        println!(
            "seed {seed}: {:.1} s: {violation}: {summary}",
            took.as_secs_f64()
        );
        times.push(took);
    }
    times.sort();
    let median = times[times.len() / 2];
    let slowest = times[times.len() - 1];
    println!(
        "find, shrink and confirm a violation of the naive sidekiq-shop: median {:.1} s, slowest {:.1} s over {} seeds",
        median.as_secs_f64(),
        slowest.as_secs_f64(),
        times.len()
    );
    println!(
        "target: under 2 minutes: {}",
        if slowest < Duration::from_secs(120) {
            "met"
        } else {
            "NOT met"
        }
    );
}
