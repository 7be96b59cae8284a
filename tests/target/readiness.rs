//! A process's `ready` URL: polled until it answers, so the orders go to a
//! process that is up; a process that exits instead fails the run at once,
//! quoting its log, rather than after the 30 s the poll may take.

use std::time::Duration;

use crate::harness::*;

const SCENARIO: &str = r#"
name = "one order through a slow-starting web process"
orders = [{ count = 1 }]

[expect]
notified = 0
"#;

#[test]
fn orders_are_placed_once_a_slow_process_answers() {
    let target = Target::toy("late");
    let scenario = target.scenario("late.toml", SCENARIO);
    let outcome = check(&target, &[&scenario], &[]);
    // The order is a GET to the web process: had the lab not waited for
    // it, the connection would have been refused and the run failed.
    outcome.assert_passed();
    let run = outcome.only_run();
    let up = run.moment("process web up");
    let placed = run.moment("placed (order number 1;");
    assert!(
        up.at_ms >= 1000,
        "web answers after 1 s, yet was up at {} ms:\n{}",
        up.at_ms,
        run.story()
    );
    assert!(up.at_ms <= placed.at_ms, "{}", run.story());
}

#[test]
fn a_process_that_exits_before_it_is_ready_fails_the_run_fast() {
    let target = Target::toy("late").edit(
        r#"["sh", "{dir}/toy.sh", "late", "{lab}", "{port}"]"#,
        r#"["sh", "{dir}/toy.sh", "die", "3"]"#,
    );
    let scenario = target.scenario("late.toml", SCENARIO);
    let outcome = check(&target, &[&scenario], &[]);
    outcome.assert_failed();
    assert!(
        outcome.took < Duration::from_secs(10),
        "a dead process must not be polled for 30 s: {:?}",
        outcome.took
    );
    let run = outcome.only_run();
    let why = run.unfinished().expect("unfinished");
    assert!(
        why.starts_with("web exited with status 3 before http://127.0.0.1:"),
        "{why}"
    );
    assert!(
        why.contains("fatal: cannot open config/database.yml"),
        "quotes the last log line: {why}"
    );
    assert!(run.placed().is_empty(), "{}", run.story());
}
