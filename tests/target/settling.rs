//! When a run has settled: no provider call for `quiet_ms` and, with
//! `[sidekiq]`, nothing left to run; retries moved at once with
//! `fast_retries`; and the message of a run that never settles.

use std::time::Duration;

use crate::harness::*;

const ALL_ONCE: &str = "charges_per_order = 1\nemails_per_order = 1\nfulfillments_per_order = 1\norders = \"all-complete\"";

fn one_order(faults: &str, expect: &str) -> String {
    format!("name = \"settling\"\norders = [{{ count = 1 }}]\n\n{faults}\n[expect]\n{expect}\n")
}

/// The toy worker (no `[sidekiq]`, quiet_ms 600) with `gap_s` between an
/// order's effects.
fn toy_worker(gap_s: &str) -> Outcome {
    let target = Target::toy("queued");
    let scenario = target.scenario("gaps.toml", &one_order("", ALL_ONCE));
    check_with_env(&target, &[&scenario], &[], &[("TOY_GAP_S", gap_s)])
}

#[test]
fn without_sidekiq_the_run_waits_for_quiet_between_effects() {
    // 0.4 s between effects, 0.6 s of quiet: the run sees them all.
    let outcome = toy_worker("0.4");
    outcome.assert_passed();
    let run = outcome.only_run();
    let fulfilled = run.performed("fulfillment", "ord-1");
    assert_eq!(fulfilled.len(), 1, "{}", run.story());
    let ended = run.0["virtual_ms"].as_u64().unwrap();
    assert!(
        ended >= fulfilled[0].at_ms + 600,
        "settled {} ms after the last effect:\n{}",
        ended - fulfilled[0].at_ms,
        run.story()
    );
}

#[test]
fn without_sidekiq_a_pause_longer_than_the_quiet_is_taken_for_the_end() {
    // 1.5 s between effects, 0.6 s of quiet: with no queue to look at, the
    // lab settles in the first pause, before the email.
    let outcome = toy_worker("1.5");
    outcome.assert_failed();
    let run = outcome.only_run();
    assert_eq!(
        run.performed("payments", "ord-1").len(),
        1,
        "{}",
        run.story()
    );
    assert!(
        run.performed("email", "ord-1").is_empty(),
        "{}",
        run.story()
    );
    assert!(
        run.violations()
            .contains(&("emails_per_order".to_string(), Some("ord-1".to_string()))),
        "{}",
        outcome.explain()
    );
}

/// The safe lab pipeline with `[sidekiq]`'s fast retries off and 100 ms of
/// quiet, a shorter time than the first retry's backoff.
fn safe_slow_retries() -> Option<Target> {
    Some(
        Target::lab_pipeline("safe")?
            .edit("quiet_ms = 500", "quiet_ms = 100")
            .edit("fast_retries = true", "fast_retries = false"),
    )
}

#[test]
fn with_sidekiq_a_retry_due_later_than_the_quiet_is_waited_for() {
    let Some(target) = safe_slow_retries() else {
        return;
    };
    let crash = "[[faults]]\nservice = \"payments\"\nmode = \"crash\"\ncalls = 1\n";
    let scenario = target.scenario("retry.toml", &one_order(crash, ALL_ONCE));
    let outcome = check(&target, &[&scenario], &[]);
    outcome.assert_passed();
    let run = outcome.only_run();
    assert!(
        run.moments("Sidekiq retry moved").is_empty(),
        "fast retries are off:\n{}",
        run.story()
    );
    assert_eq!(run.performed("payments", "1").len(), 1, "{}", run.story());
}

#[test]
fn without_sidekiq_the_same_app_is_taken_as_settled_before_its_retry() {
    // The control for the test above: with `[sidekiq]` gone, 100 ms of
    // quiet after the crash is the end, and the retry's charge is missed.
    let Some(target) = safe_slow_retries() else {
        return;
    };
    let text = std::fs::read_to_string(&target.path).unwrap();
    let cut = text.find("[sidekiq]").unwrap();
    std::fs::write(&target.path, &text[..cut]).unwrap();
    let crash = "[[faults]]\nservice = \"payments\"\nmode = \"crash\"\ncalls = 1\n";
    let scenario = target.scenario("retry.toml", &one_order(crash, ALL_ONCE));
    let outcome = check(&target, &[&scenario], &[]);
    outcome.assert_failed();
    let run = outcome.only_run();
    assert!(run.performed("payments", "1").is_empty(), "{}", run.story());
    assert!(
        run.violations()
            .contains(&("charges_per_order".to_string(), Some("1".to_string()))),
        "{}",
        outcome.explain()
    );
}

#[test]
fn fast_retries_settle_many_failures_in_seconds() {
    let Some(target) = Target::lab_pipeline("safe") else {
        return;
    };
    let crash = "[[faults]]\nservice = \"payments\"\nmode = \"crash\"\ncalls = 5\n";
    let scenario = target.scenario("retries.toml", &one_order(crash, ALL_ONCE));
    let outcome = check(&target, &[&scenario], &[]);
    outcome.assert_passed();
    // Sidekiq's own backoff for five retries is over ten minutes (scaled by
    // the lab worker's 0.01, still seconds); moved at once, far less.
    assert!(
        outcome.took < Duration::from_secs(10),
        "took {:?}",
        outcome.took
    );
    let run = outcome.only_run();
    let retries = run.moments("Sidekiq retry moved to its queue at once");
    assert_eq!(retries.len(), 5, "{}", run.story());
    for (i, retry) in retries.iter().enumerate() {
        assert_eq!(retry.order.as_deref(), Some("1"), "{retry:?}");
        assert!(
            retry.what.contains(&format!("retry {i}")) && retry.what.contains("503"),
            "{retry:?}"
        );
    }
    assert_eq!(run.performed("payments", "1").len(), 1, "{}", run.story());
}

#[test]
fn a_run_that_never_settles_says_so_and_names_the_last_effect() {
    let target = Target::toy("chatter");
    let scenario = target.scenario("chatter.toml", &one_order("", "charges_per_order = 1"));
    let outcome = check(&target, &[&scenario], &[]);
    outcome.assert_failed();
    assert!(
        outcome.took < Duration::from_secs(10),
        "timeout_s is 2: {:?}",
        outcome.took
    );
    let run = outcome.only_run();
    let why = run.unfinished().expect("unfinished");
    assert!(why.starts_with("did not settle within 2 s"), "{why}");
    assert!(
        why.contains("the last provider effect was payments ch_"),
        "{why}"
    );
    // The charges kept coming until the end: about 20 in 2 s.
    let charges = run.performed("payments", "chatter");
    assert!(charges.len() >= 5, "{}", run.story());
}

#[test]
fn with_sidekiq_a_job_left_on_a_queue_is_named() {
    if !need_redis() {
        return;
    }
    let target = Target::toy("unworked");
    let scenario = target.scenario("unworked.toml", &one_order("", "charges_per_order = 1"));
    let outcome = check(&target, &[&scenario], &[]);
    outcome.assert_failed();
    let run = outcome.only_run();
    let why = run.unfinished().expect("unfinished");
    assert!(why.starts_with("did not settle within 2 s"), "{why}");
    assert!(
        why.contains("1 job queued (CompleteOrderJob [1] on "),
        "{why}"
    );
    assert!(why.contains("no provider effect at all"), "{why}");
    run.moment("still to run: CompleteOrderJob [1]");
}

/// The shuffled toy: one Sidekiq job, never run, on its queue or in the
/// retry set at every instant.
fn shuffled(scenario_name: &str, target: Target) -> Outcome {
    let scenario = target.scenario(scenario_name, &one_order("", "charges_per_order = 1"));
    check(&target, &[&scenario], &[])
}

#[test]
fn with_sidekiq_a_job_waiting_on_its_queue_keeps_the_run_from_settling() {
    if !need_redis() {
        return;
    }
    // The control for the test below: the job just waits on its queue.
    let target = Target::toy("shuffled").edit(
        r#"["sh", "{dir}/toy.sh", "shuffle"]"#,
        r#"["sleep", "600"]"#,
    );
    let outcome = shuffled("waits.toml", target);
    outcome.assert_failed();
    let why = outcome.only_run().unfinished().expect("unfinished");
    assert!(
        why.starts_with("did not settle within 3 s; 1 job queued (ToyJob [\"ord-1\"] on default)"),
        "{why}"
    );
}

#[test]
fn a_job_moving_between_queue_and_retry_keeps_the_run_from_settling() {
    if !need_redis() {
        return;
    }
    let outcome = shuffled("shuffled.toml", Target::toy("shuffled"));
    outcome.assert_failed();
    let run = outcome.only_run();
    let why = run
        .unfinished()
        .unwrap_or_else(|| panic!("settled with the job still to run:\n{}", run.story()));
    assert!(
        why.starts_with("did not settle within 3 s; 1 job "),
        "{why}"
    );
}

#[test]
fn every_retry_moved_at_once_is_on_the_timeline() {
    if !need_redis() {
        return;
    }
    let target = Target::toy("retrying");
    let scenario = target.scenario("retries.toml", &one_order("", "charges_per_order = 1"));
    let outcome = check(&target, &[&scenario], &[]);
    outcome.assert_failed();
    let run = outcome.only_run();
    // Nothing runs the jobs, so the run ends at its timeout, each of the
    // 200 retries (and the order's own job) on the queue.
    let why = run.unfinished().expect("unfinished");
    assert!(
        why.starts_with("did not settle within 4 s; 201 jobs queued"),
        "{}",
        &why[..why.len().min(300)]
    );
    let moved = run.moments("Sidekiq retry moved to its queue at once");
    assert_eq!(moved.len(), 200, "retries moved but not on the timeline");
}
