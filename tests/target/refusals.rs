//! Bad input stops `lab check --target` before anything starts: exit code
//! 2, and stderr names the file, line and column — of the target file for
//! its own mistakes, of the scenario for a key a target cannot take (the
//! app's code is its own).

use crate::harness::*;

/// `lab check --target TARGET SCENARIO` exits 2 and says `where` first.
fn assert_refused(target: &Target, scenario: &std::path::Path, at: &str, says: &str) {
    let outcome = check(target, &[scenario], &[]);
    assert_eq!(outcome.code, Some(2), "{}", outcome.explain());
    let line = outcome
        .stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line:\n{}", outcome.stderr));
    assert!(
        line.starts_with(&format!("error: {at}")),
        "want {at}: {line}"
    );
    assert!(line.contains(says), "want {says:?}: {line}");
    assert!(
        outcome.stdout.is_empty(),
        "nothing was run, so no report: {}",
        outcome.stdout
    );
}

const ANY_SCENARIO: &str =
    "name = \"s\"\norders = [{ count = 1 }]\n[expect]\ncharges_per_order = 1\n";

#[test]
fn an_unknown_key_in_the_target_file_names_its_line_and_column() {
    let target = Target::toy("inline").edit("[settle]\n", "[settle]\ncolour = \"red\"\n");
    let scenario = target.scenario("s.toml", ANY_SCENARIO);
    let text = std::fs::read_to_string(&target.path).unwrap();
    let line = text.lines().position(|l| l.starts_with("colour")).unwrap() + 1;
    assert_refused(
        &target,
        &scenario,
        &format!("{}:{line}:1: ", target.path.display()),
        "colour",
    );
}

#[test]
fn an_unknown_template_names_its_line_and_column() {
    let target = Target::toy("inline").edit("\"{fakes}\"", "\"{fakez}/api\"");
    let scenario = target.scenario("s.toml", ANY_SCENARIO);
    let text = std::fs::read_to_string(&target.path).unwrap();
    let (line, column) = text
        .lines()
        .enumerate()
        .find_map(|(i, l)| l.find("\"{fakez}").map(|c| (i + 1, c + 1)))
        .unwrap();
    assert_refused(
        &target,
        &scenario,
        &format!("{}:{line}:{column}: ", target.path.display()),
        "unknown template `{fakez}`",
    );
}

#[test]
fn a_template_where_it_has_no_value_is_refused() {
    // `{n}` is the order's: in a process's command it has no value.
    let target = Target::toy("queued").edit(r#""worker"]"#, r#""worker", "{n}"]"#);
    let scenario = target.scenario("s.toml", ANY_SCENARIO);
    let text = std::fs::read_to_string(&target.path).unwrap();
    let line = text.lines().position(|l| l.contains("\"{n}\"]")).unwrap() + 1;
    assert_refused(
        &target,
        &scenario,
        &format!("{}:{line}:", target.path.display()),
        "`{n}` is the order's",
    );
}

/// Each scenario key or fault a target refuses, written at line 3 (for a
/// fault, its `[[faults]]` header), with a word its message must have.
const REFUSED: &[(&str, &str, &str)] = &[
    (
        "pipeline",
        "pipeline = { structure = \"chained\" }",
        "`pipeline` does not apply",
    ),
    (
        "reminders",
        "reminders = [{ count = 1 }]",
        "`reminders` does not apply",
    ),
    ("backend", "backend = \"redis\"", "`backend` does not apply"),
    (
        "concurrency",
        "concurrency = 2",
        "`concurrency` does not apply",
    ),
    (
        "max_retries",
        "max_retries = 3",
        "`max_retries` does not apply",
    ),
    (
        "stale",
        "[[faults]]\nworker = \"stale\"\ncode_version = \"v1\"",
        "`worker = \"stale\"`",
    ),
    (
        "scheduler",
        "[[faults]]\nscheduler = \"late\"",
        "`scheduler = \"late\"`",
    ),
    (
        "die-after-commit",
        "[[faults]]\nworker = \"die-after\"\nstep = \"commit\"",
        "not \"commit\"",
    ),
];

#[test]
fn each_key_a_target_refuses_names_the_scenarios_line() {
    let target = Target::copy("examples/lab-pipeline/naive.toml".as_ref());
    for (name, line3, says) in REFUSED {
        let scenario = target.scenario(
            &format!("{name}.toml"),
            &format!("name = \"{name}\"\norders = [{{ count = 1 }}]\n{line3}\n\n[expect]\ncharges_per_order = 1\n"),
        );
        assert_refused(
            &target,
            &scenario,
            &format!("{}:3:", scenario.display()),
            says,
        );
    }
}

/// Queue faults act on the app's Redis through the lab's proxy: a target
/// that is given no `{redis}` cannot have them.
#[test]
fn queue_faults_are_refused_for_a_target_without_redis() {
    let target = Target::toy("queued");
    for (name, fault) in [
        ("duplicate", "queue = \"duplicate\""),
        ("queue-down", "queue = \"down\"\nfor_ms = 100"),
    ] {
        let scenario = target.scenario(
            &format!("{name}.toml"),
            &format!("name = \"{name}\"\norders = [{{ count = 1 }}]\n[[faults]]\n{fault}\n\n[expect]\ncharges_per_order = 1\n"),
        );
        assert_refused(
            &target,
            &scenario,
            &format!("{}:3:", scenario.display()),
            "uses no `{redis}`",
        );
    }
}

#[test]
fn a_declined_order_is_refused_at_its_decline() {
    let target = Target::copy("examples/lab-pipeline/naive.toml".as_ref());
    let scenario = target.scenario(
        "decline.toml",
        "name = \"declined\"\norders = [{ count = 1 },\n  { count = 1, decline = true }]\n[expect]\ncharges_per_order = 1\n",
    );
    assert_refused(
        &target,
        &scenario,
        &format!("{}:3:", scenario.display()),
        "`decline = true`",
    );
}

#[test]
fn reminder_expectations_are_refused() {
    let target = Target::copy("examples/lab-pipeline/naive.toml".as_ref());
    let scenario = target.scenario(
        "reminders.toml",
        "name = \"r\"\norders = [{ count = 1 }]\n\n[expect]\nreminders_per_reminder = 1\n",
    );
    assert_refused(
        &target,
        &scenario,
        &format!("{}:4:", scenario.display()),
        "counts reminders",
    );
}

#[test]
fn all_settled_is_refused() {
    let target = Target::copy("examples/lab-pipeline/naive.toml".as_ref());
    let scenario = target.scenario(
        "settled.toml",
        "name = \"s\"\norders = [{ count = 1 }]\n\n[expect]\norders = \"all-settled\"\n",
    );
    assert_refused(
        &target,
        &scenario,
        &format!("{}:", scenario.display()),
        "all-settled",
    );
}

#[test]
fn die_after_without_a_worker_process_is_refused() {
    let target = Target::toy("inline");
    let scenario = target.scenario(
        "die.toml",
        "name = \"d\"\norders = [{ count = 1 }]\n[[faults]]\nworker = \"die-after\"\nstep = \"charge\"\n[expect]\ncharges_per_order = 1\n",
    );
    assert_refused(
        &target,
        &scenario,
        &format!("{}:3:", scenario.display()),
        "has none",
    );
}

#[test]
fn a_missing_target_file_is_an_error() {
    let target = Target::toy("inline");
    let scenario = target.scenario("s.toml", ANY_SCENARIO);
    let missing = Target {
        path: target.folder().join("nope.toml"),
        dir: tempfile::tempdir().unwrap(),
    };
    assert_refused(
        &missing,
        &scenario,
        &format!("{}: cannot read it:", missing.path.display()),
        "No such file",
    );
}

#[test]
fn one_invalid_scenario_stops_them_all_before_anything_runs() {
    let target = Target::toy("inline");
    let good = target.scenario("good.toml", ANY_SCENARIO);
    let bad = target.scenario(
        "bad.toml",
        "name = \"b\"\norders = [{ count = 1 }]\nconcurrency = 2\n[expect]\ncharges_per_order = 1\n",
    );
    let outcome = check(&target, &[&good, &bad], &[]);
    assert_eq!(outcome.code, Some(2), "{}", outcome.explain());
    assert!(
        outcome
            .stderr
            .contains(&format!("error: {}:3:", bad.display())),
        "{}",
        outcome.stderr
    );
    assert!(
        outcome
            .stderr
            .contains("1 of 2 scenario file(s) are invalid; nothing was run"),
        "{}",
        outcome.stderr
    );
    assert!(outcome.stdout.is_empty(), "{}", outcome.stdout);
}
