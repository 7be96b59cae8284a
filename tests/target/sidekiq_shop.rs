//! A few scenarios of `examples/sidekiq-shop/` (Sinatra, Sidekiq 6.4, puma;
//! CI runs its whole suites through `.ci/run`): the app's own ids read from
//! its redirect, Sidekiq's retries moved at once, and a Sidekiq process
//! killed after the charge.

use std::time::Duration;

use crate::harness::*;

#[test]
fn payments_crashing_three_times_is_retried_at_once_and_charges_once() {
    if !need_sidekiq_shop() {
        return;
    }
    let target = Target::at("examples/sidekiq-shop/safe.toml".as_ref());
    let scenario = target.scenario(
        "crash.toml",
        &std::fs::read_to_string(
            repo().join("examples/sidekiq-shop/scenarios/safe/04-payments-crash-then-recover.toml"),
        )
        .unwrap(),
    );
    let outcome = check(&target, &[&scenario], &[]);
    outcome.assert_passed();
    assert!(
        outcome.took < Duration::from_secs(30),
        "took {:?}",
        outcome.took
    );
    let run = outcome.only_run();
    // The shop's ids, read from its redirect to /orders/ID.
    let placed = run.placed();
    assert_eq!(placed.len(), 2, "{}", run.story());
    // Three crashes, three retries, each moved at once and on the timeline.
    let retries = run.moments("Sidekiq retry moved to its queue at once");
    assert!(
        retries.len() == 3,
        "{} retries moved:\n{}",
        retries.len(),
        run.story()
    );
    for retry in &retries {
        assert!(retry.what.contains("ChargeOrderJob"), "{retry:?}");
    }
    for (_, id) in &placed {
        assert_eq!(run.performed("payments", id).len(), 1, "{}", run.story());
        assert_eq!(run.performed("email", id).len(), 1, "{}", run.story());
        assert_eq!(run.performed("fulfillment", id).len(), 1, "{}", run.story());
    }
}

#[test]
fn a_sidekiq_process_killed_after_the_charge_loses_its_job() {
    if !need_sidekiq_shop() {
        return;
    }
    let target = Target::at("examples/sidekiq-shop/naive.toml".as_ref());
    let scenario = target.scenario(
        "killed.toml",
        "name = \"killed after the charge\"\norders = [{ count = 1 }]\n[[faults]]\nworker = \"die-after\"\nstep = \"charge\"\nrestart_after_ms = 300\n[expect]\nviolation = \"lost_jobs\"\n",
    );
    let outcome = check(&target, &[&scenario], &[]);
    outcome.assert_passed();
    let run = outcome.only_run();
    let placed = run.placed();
    let id = &placed[0].1;
    let kill = run.moment("worker killed (SIGKILL) after charge ch_");
    let charges = run.performed("payments", id);
    assert_eq!(charges.len(), 1, "{}", run.story());
    assert!(charges[0].at_ms <= kill.at_ms, "{}", run.story());
    assert!(run.performed("email", id).is_empty(), "{}", run.story());
    let restarted = run.moment("worker restarted");
    assert!(restarted.at_ms >= kill.at_ms + 300, "{}", run.story());
}
