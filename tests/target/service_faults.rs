//! Each fault mode of the fake services, and search lag, against a target,
//! each shown by its effect in the ledgers: the naive lab pipeline (one job,
//! no idempotency keys) charges twice when a charge is performed but its
//! answer lost, and once when the failed call never reached the provider.

use crate::harness::*;

/// A scenario of one order, these faults and this `[expect]`.
fn scenario(faults: &str, expect: &str) -> String {
    format!("name = \"a fault\"\norders = [{{ count = 1 }}]\n\n{faults}\n[expect]\n{expect}\n")
}

const ONCE: &str = "charges_per_order = 1\nemails_per_order = 1\nfulfillments_per_order = 1\norders = \"all-complete\"\nlost_jobs = 0";
const TWICE: &str = "violation = \"charges_per_order\"";

/// The naive lab pipeline under `faults`, which must end as `expect` says.
fn naive(name: &str, faults: &str, expect: &str) -> Option<Run> {
    let target = Target::lab_pipeline("naive")?;
    let file = target.scenario(&format!("{name}.toml"), &scenario(faults, expect));
    let outcome = check(&target, &[&file], &[]);
    outcome.assert_passed();
    Some(outcome.only_run())
}

fn payments(mode: &str, extra: &str) -> String {
    format!("[[faults]]\nservice = \"payments\"\nmode = \"{mode}\"\n{extra}\n")
}

#[test]
fn send_then_crash_charges_then_answers_503_and_the_retry_charges_again() {
    let Some(run) = naive("stc", &payments("send-then-crash", "calls = 1"), TWICE) else {
        return;
    };
    let charges = run.performed("payments", "1");
    assert_eq!(charges.len(), 2, "{}", run.story());
    assert!(
        charges[0].what.ends_with("told 503 (send-then-crash)"),
        "{}",
        run.story()
    );
    assert!(charges[1].what.ends_with("told 201"), "{}", run.story());
    assert_eq!(
        run.moments("Sidekiq retry moved").len(),
        1,
        "{}",
        run.story()
    );
}

#[test]
fn drop_after_charges_then_closes_the_connection_and_the_retry_charges_again() {
    let Some(run) = naive("drop-after", &payments("drop-after", "calls = 1"), TWICE) else {
        return;
    };
    let charges = run.performed("payments", "1");
    assert_eq!(charges.len(), 2, "{}", run.story());
    assert!(
        charges[0].what.contains("told nothing") || charges[0].what.contains("dropped"),
        "{}",
        run.story()
    );
}

#[test]
fn crash_never_reaches_the_provider_so_the_retries_charge_once() {
    let Some(run) = naive("crash", &payments("crash", "calls = 2"), ONCE) else {
        return;
    };
    assert_eq!(run.performed("payments", "1").len(), 1, "{}", run.story());
    let retries = run.moments("Sidekiq retry moved");
    assert_eq!(retries.len(), 2, "{}", run.story());
    assert!(retries[0].what.contains("503"), "{}", run.story());
    run.moment("payments rule 0 (crash) fired on 2 calls");
}

#[test]
fn throttle_answers_429_and_the_retries_charge_once() {
    let Some(run) = naive(
        "throttle",
        &payments("throttle", "calls = 2\nretry_after_s = 1"),
        ONCE,
    ) else {
        return;
    };
    assert_eq!(run.performed("payments", "1").len(), 1, "{}", run.story());
    let retries = run.moments("Sidekiq retry moved");
    assert_eq!(retries.len(), 2, "{}", run.story());
    assert!(retries[0].what.contains("429"), "{}", run.story());
    run.moment("payments rule 0 (throttle) fired on 2 calls");
}

#[test]
fn drop_before_closes_the_connection_unanswered_and_the_retry_charges_once() {
    let Some(run) = naive("drop-before", &payments("drop-before", "calls = 1"), ONCE) else {
        return;
    };
    assert_eq!(run.performed("payments", "1").len(), 1, "{}", run.story());
    assert_eq!(
        run.moments("Sidekiq retry moved").len(),
        1,
        "{}",
        run.story()
    );
    run.moment("payments rule 0 (drop-before) fired on 1 call");
}

#[test]
fn slow_past_the_clients_timeout_charges_and_the_clients_retry_charges_again() {
    // The toy worker's curl gives up after 1 s and calls again; the slow
    // charge still lands.
    let target = Target::toy("queued");
    let file = target.scenario(
        "slow.toml",
        &scenario(&payments("slow", "sleep_ms = 1500\ncalls = 1"), TWICE),
    );
    let outcome = check_with_env(&target, &[&file], &[], &[("TOY_CLIENT_TIMEOUT_S", "1")]);
    outcome.assert_passed();
    let run = outcome.only_run();
    let charges = run.performed("payments", "ord-1");
    assert_eq!(charges.len(), 2, "{}", run.story());
    let placed = run.moment("placed (order number 1;");
    assert!(
        charges.iter().any(|c| c.at_ms >= placed.at_ms + 1400),
        "the slow charge lands after its sleep:\n{}",
        run.story()
    );
}

/// The naive pipeline deduplicating its charge by search, with the first
/// charge's answer lost and the search index `lag_ms` behind.
fn searched(lag_ms: u64, expect: &str) -> Option<Run> {
    let target = Target::lab_pipeline("naive")?;
    let text = std::fs::read_to_string(&target.path).unwrap();
    // The worker's flags (the second `--charge none`; the web's comes first).
    let at = text.rfind(r#""--charge", "none""#).unwrap();
    let edited = format!(
        "{}\"--charge\", \"search\"{}",
        &text[..at],
        &text[at + r#""--charge", "none""#.len()..]
    );
    std::fs::write(&target.path, edited).unwrap();
    let faults = format!(
        "{}operations = [\"charge\"]\n[[faults]]\nservice = \"payments\"\nsearch_lag_ms = {lag_ms}\n",
        payments("send-then-crash", "calls = 1")
    );
    let file = target.scenario("search.toml", &scenario(&faults, expect));
    let outcome = check(&target, &[&file], &[]);
    outcome.assert_passed();
    Some(outcome.only_run())
}

#[test]
fn search_lag_hides_the_first_charge_from_the_dedup_search() {
    let Some(run) = searched(60_000, TWICE) else {
        return;
    };
    assert_eq!(run.performed("payments", "1").len(), 2, "{}", run.story());
}

#[test]
fn without_search_lag_the_dedup_search_finds_the_first_charge() {
    let Some(run) = searched(0, ONCE) else {
        return;
    };
    assert_eq!(run.performed("payments", "1").len(), 1, "{}", run.story());
}
