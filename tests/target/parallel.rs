//! `--jobs 2`: two scenarios at once against one target, each run with its
//! own fake services, ports, Redis and run folder, both passing.

use crate::harness::*;

#[test]
fn two_runs_at_once_each_have_their_own_ports_and_redis() {
    if !need_redis() {
        return;
    }
    // A second of quiet, so that the two runs surely overlap.
    let target = Target::toy("templates").edit("quiet_ms = 300", "quiet_ms = 1000");
    let text = "name = \"NAME\"\norders = [{ count = 1 }]\n[expect]\ncharges_per_order = 1\norders = \"all-complete\"\n";
    let a = target.scenario("a.toml", &text.replace("NAME", "a"));
    let b = target.scenario("b.toml", &text.replace("NAME", "b"));
    let outcome = check(&target, &[&a, &b], &["--jobs", "2"]);
    outcome.assert_passed();
    let json = outcome.json();
    assert_eq!(json["passed"], 2, "{}", outcome.explain());

    let files = files_starting(&target.folder().join("out"), "recorder-");
    assert_eq!(files.len(), 2, "{files:?}");
    let runs: Vec<Vec<(String, String)>> = files.iter().map(|f| recorded(f)).collect();
    for key in ["fakes", "redis", "port", "web", "run_dir"] {
        assert_ne!(
            value(&runs[0], key),
            value(&runs[1], key),
            "both runs had the same {key}"
        );
    }
    let span = |run: &[(String, String)]| -> (u64, u64) {
        (
            value(run, "started_ms").parse().unwrap(),
            value(run, "stopped_ms").parse().unwrap(),
        )
    };
    let (a_start, a_stop) = span(&runs[0]);
    let (b_start, b_stop) = span(&runs[1]);
    assert!(
        a_start < b_stop && b_start < a_stop,
        "the runs did not overlap: {a_start}..{a_stop} and {b_start}..{b_stop}"
    );
}
