//! The scenario engine and checker on scenarios written here: a wrong
//! expectation fails with a report that says why, the reports name the
//! violating order, and every scenario in `scenarios/` ends for the reason
//! it states (not by accident).

use std::path::Path;

use idemlab::scenario::result::{render, ScenarioResult};
use idemlab::scenario::{self, engine};

async fn run(text: &str) -> ScenarioResult {
    let scenario = scenario::parse(text, Path::new("test.toml")).unwrap();
    engine::run(&scenario, &engine::RunOptions::default()).await
}

#[tokio::test]
async fn a_wrong_expectation_fails_with_a_plain_report() {
    // The monolithic double charge, expected (wrongly) to charge once.
    let result = run(include_str!("data/monolithic-claimed-safe.toml")).await;
    assert!(!result.passed());
    let text = render(&result);
    for needle in [
        "charges_per_order",
        "order 1 was charged 2 times",
        "CompleteOrderJob",
        "Email::ServerError",
    ] {
        assert!(text.contains(needle), "`{needle}` missing from:\n{text}");
    }
}

#[tokio::test]
async fn an_expected_violation_that_does_not_happen_fails_and_says_so() {
    let result = run(include_str!("data/safe-claimed-broken.toml")).await;
    assert!(!result.passed());
    let reason = &result.runs[0].verdict.reason;
    assert!(
        reason.contains("every order was charged exactly once"),
        "{reason}"
    );
}

/// Everything a run leaves behind, as bytes.
fn fingerprint(result: &ScenarioResult) -> String {
    result
        .runs
        .iter()
        .map(|run| serde_json::to_string(&run.snapshot).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

fn every_scenario() -> Vec<(String, scenario::Scenario)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            (name, scenario::load(&path).unwrap())
        })
        .collect()
}

#[tokio::test]
async fn the_same_seed_gives_the_same_run_byte_for_byte() {
    for (name, scenario) in every_scenario() {
        for seed in [1, 7] {
            let options = engine::RunOptions {
                seed,
                ..engine::RunOptions::default()
            };
            let a = engine::run(&scenario, &options).await;
            let b = engine::run(&scenario, &options).await;
            assert_eq!(
                fingerprint(&a),
                fingerprint(&b),
                "{name} with seed {seed} ran differently twice"
            );
        }
    }
}

/// Jobs racing each other: the seed decides who goes first at each call,
/// and the same seed always decides the same way.
#[tokio::test]
async fn concurrent_jobs_interleave_by_the_seed() {
    let text = r#"
name = "five orders, every job delivered twice, eight at once"
pipeline = { charge = "none", email = "none", fulfillment = "none" }
orders = [{ count = 5 }]
concurrency = 8
[[faults]]
queue = "duplicate"
[[faults]]
service = "email"
mode = "crash"
probability = 0.5
seed = 3
[expect]
violation = "charges_per_order"
"#;
    let scenario = scenario::parse(text, Path::new("race.toml")).unwrap();
    // The order in which effects reached the providers, ids left out (they
    // follow from the seed anyway).
    let sequence = |result: &ScenarioResult| {
        result.runs[0]
            .snapshot
            .ledgers
            .iter()
            .flat_map(|(service, records)| {
                records
                    .iter()
                    .map(move |r| format!("{service}:{:?}@{}", r.order_id(), r.created_at_ms))
            })
            .collect::<Vec<_>>()
    };
    let mut seen = std::collections::HashSet::new();
    for seed in 1..=12 {
        let options = engine::RunOptions {
            seed,
            ..engine::RunOptions::default()
        };
        let a = engine::run(&scenario, &options).await;
        let b = engine::run(&scenario, &options).await;
        assert_eq!(fingerprint(&a), fingerprint(&b), "seed {seed}");
        seen.insert(sequence(&a));
    }
    assert!(
        seen.len() > 1,
        "twelve seeds, one interleaving: the scheduler's choice is not used"
    );
}

/// A file's `seed` is its run's, whatever `lab check --seed` says: a
/// counterexample found under one interleaving replays under it.
#[tokio::test]
async fn a_files_seed_beats_the_command_lines() {
    let text = r#"
name = "two orders racing"
orders = [{ count = 2 }]
concurrency = 2
seed = 5
[expect]
charges_per_order = 1
"#;
    let scenario = scenario::parse(text, Path::new("seeded.toml")).unwrap();
    let with = |seed| engine::RunOptions {
        seed,
        ..engine::RunOptions::default()
    };
    let own = engine::run(&scenario, &with(5)).await;
    for seed in [1, 9] {
        let told = engine::run(&scenario, &with(seed)).await;
        assert_eq!(fingerprint(&told), fingerprint(&own), "--seed {seed}");
    }
    let unseeded = scenario::Scenario {
        seed: None,
        ..scenario
    };
    let other = engine::run(&unseeded, &with(9)).await;
    assert_ne!(
        fingerprint(&other),
        fingerprint(&own),
        "seed 9 gives other ids than seed 5"
    );
}

/// Each documented violation is found for the reason the file states, and
/// each safe scenario really exercised its fault.
#[tokio::test]
async fn the_suite_fails_for_the_stated_reasons() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let cases = [
        (
            "04-monolithic-email-crash-double-charge",
            "was charged 2 times",
        ),
        ("05-email-send-then-crash-no-dedup", "confirmation emails"),
        (
            "08a-payments-send-then-crash-without-key",
            "was charged 2 times",
        ),
        (
            "09a-search-dedup-with-long-search-lag",
            "was charged 2 times",
        ),
        ("10a-worker-dies-after-charge-basic-fetch", "lost"),
        ("14a-slow-provider-without-key", "was charged 2 times"),
        ("15b-enqueue-after-commit-crash-between", "lost"),
        ("16a-queue-down-after-commit", "lost"),
        ("17a-late-sweep-select-then-send", "reminder"),
        ("18-stale-worker-shares-the-queues", "v1"),
        (
            "21-email-search-dedup-with-search-lag",
            "2 confirmation emails",
        ),
        (
            "22a-sweep-retried-after-send-then-crash-select-then-send",
            "was sent 2 times",
        ),
    ];
    for (file, needle) in cases {
        let scenario = scenario::load(&dir.join(format!("{file}.toml"))).unwrap();
        let result = engine::run(&scenario, &engine::RunOptions::default()).await;
        assert!(result.passed(), "{file}:\n{}", render(&result));
        let text = render(&result);
        assert!(
            text.contains(needle),
            "{file}: `{needle}` missing from:\n{text}"
        );
    }
}

/// The scenario format's first example (search dedup against an email
/// provider that sends, then crashes) runs and holds.
#[tokio::test]
async fn the_design_example_runs_unchanged() {
    let result = run(r#"
name = "email provider sends, then crashes: search dedup sends one email"
pipeline = { structure = "chained", charge = "idempotency-key", email = "search", fulfillment = "idempotency-key" }
orders = [{ count = 3 }]

[[faults]]
service = "email"          # payments | email | fulfillment | error-catcher
mode = "send-then-crash"   # crash | throttle | slow | send-then-crash | drop-before | drop-after
calls = 2                  # the next 2 calls; or probability = 0.3; or for_ms = 500

[[faults]]
worker = "die-after"       # the worker process dies at a step boundary
step = "charge"            # commit | charge | charge-recorded | email | … | every

[expect]
charges_per_order = 1
emails_per_order = 1
fulfillments_per_order = 1
orders = "all-complete"    # or "all-settled" (complete, declined or dead)
dead_jobs = 0
notified = 0               # error-catcher notifications (transient ones are silenced)
"#)
    .await;
    assert!(result.passed(), "{}", render(&result));
}

#[tokio::test]
async fn a_run_that_does_not_settle_by_the_deadline_fails_saying_what_was_pending() {
    let scenario = scenario::parse(
        r#"
name = "payments down"
orders = [{ count = 1 }]
[[faults]]
service = "payments"
mode = "crash"
[expect]
orders = "all-complete"
"#,
        Path::new("t.toml"),
    )
    .unwrap();
    // The first retry is due after 15 s; the deadline comes first.
    let options = engine::RunOptions {
        deadline_ms: 1_000,
        ..engine::RunOptions::default()
    };
    let result = engine::run(&scenario, &options).await;
    assert!(!result.passed());
    let unfinished = result.runs[0].unfinished.as_deref().unwrap();
    assert!(unfinished.contains("1 waiting to retry"), "{unfinished}");
    assert!(render(&result).contains("did not settle"));
}

/// The simulator (services in process) and the HTTP lab (the same services
/// behind their HTTP server, on the run's virtual time) end every scenario
/// the same way: same verdict, same violations, same counts in the ledgers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_and_over_http_give_the_same_outcome() {
    let outcome = |result: &ScenarioResult| {
        result
            .runs
            .iter()
            .map(|run| {
                let violations: Vec<String> = run
                    .verdict
                    .violations
                    .iter()
                    .map(|v| format!("{} {} found {}", v.invariant, v.message, v.found))
                    .collect();
                let effects: Vec<(String, usize)> = run
                    .snapshot
                    .ledgers
                    .iter()
                    .map(|(service, records)| (service.to_string(), records.len()))
                    .collect();
                (run.verdict.passed, violations, effects)
            })
            .collect::<Vec<_>>()
    };
    for (name, scenario) in every_scenario() {
        let in_process = engine::run(&scenario, &engine::RunOptions::default()).await;
        let over_http = engine::run(
            &scenario,
            &engine::RunOptions {
                over_http: true,
                ..engine::RunOptions::default()
            },
        )
        .await;
        assert!(
            over_http.passed(),
            "{name} over HTTP: {}",
            render(&over_http)
        );
        assert_eq!(outcome(&in_process), outcome(&over_http), "{name}");
    }
}
