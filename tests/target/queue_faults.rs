//! `queue = "duplicate"` and `queue = "down"` on both example targets,
//! through the Redis proxy the lab puts between the app and its private
//! Redis: every push doubled (two copies, one jid), and an outage that
//! closes the app's connections and refuses new ones while the orders are
//! placed. Each test runs an example's own scenario file where there is one,
//! so the examples' suites and these tests cannot drift apart.

use crate::harness::*;

/// `examples/NAME/scenarios/…` as a path in the test's target folder.
fn example_scenario(target: &Target, path: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo().join("examples").join(path)).unwrap();
    target.scenario(path.rsplit('/').next().unwrap(), &text)
}

/// The jobs the proxy pushed twice, by class, from the timeline.
fn doubled(run: &Run) -> Vec<String> {
    run.moments("pushed twice onto ")
        .iter()
        .map(|m| m.what.split(" (jid ").next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn sidekiq_shop_naive_runs_a_job_delivered_twice_and_charges_twice() {
    if !need_sidekiq_shop() {
        return;
    }
    let target = Target::at("examples/sidekiq-shop/naive.toml".as_ref());
    let scenario = example_scenario(
        &target,
        "sidekiq-shop/scenarios/naive/05-duplicate-delivery-charges-twice.toml",
    );
    let outcome = check(&target, &[&scenario], &[]);
    outcome.assert_passed();
    let run = outcome.only_run();
    assert_eq!(doubled(&run), ["CompleteOrderJob"], "{}", run.story());
    let placed = run.placed();
    let id = &placed[0].1;
    assert_eq!(run.performed("payments", id).len(), 2, "{}", run.story());
    assert_eq!(run.performed("email", id).len(), 2, "{}", run.story());
}

#[test]
fn sidekiq_shop_safe_keys_hold_every_job_delivered_twice() {
    if !need_sidekiq_shop() {
        return;
    }
    let target = Target::at("examples/sidekiq-shop/safe.toml".as_ref());
    let scenario = example_scenario(
        &target,
        "sidekiq-shop/scenarios/safe/10-duplicate-delivery-once.toml",
    );
    let outcome = check(&target, &[&scenario], &[]);
    outcome.assert_passed();
    let run = outcome.only_run();
    // Each step's job, for each of the two orders, pushed twice (retries
    // moved by the lab come on top).
    let doubled = doubled(&run);
    for class in [
        "ChargeOrderJob",
        "SendConfirmationJob",
        "RequestFulfillmentJob",
    ] {
        let copies = doubled.iter().filter(|c| *c == class).count();
        assert!(
            copies >= 2,
            "{class} doubled {copies} times:\n{}",
            run.story()
        );
    }
    for (_, id) in run.placed() {
        assert_eq!(run.performed("payments", &id).len(), 1, "{}", run.story());
        assert_eq!(run.performed("email", &id).len(), 1, "{}", run.story());
        assert_eq!(
            run.performed("fulfillment", &id).len(),
            1,
            "{}",
            run.story()
        );
    }
}

/// The shop keeps its orders in Redis too: with Redis down, its web request
/// fails and names no order. The lab notes each refusal and holds no order
/// to the invariants; nothing is charged.
#[test]
fn sidekiq_shop_refuses_orders_while_its_redis_is_down() {
    if !need_sidekiq_shop() {
        return;
    }
    let target = Target::at("examples/sidekiq-shop/naive.toml".as_ref());
    let scenario = example_scenario(
        &target,
        "sidekiq-shop/scenarios/naive/06-redis-down-refuses-orders.toml",
    );
    let outcome = check(&target, &[&scenario], &[]);
    outcome.assert_passed();
    let run = outcome.only_run();
    let down = run.moment("the app's Redis is down (queue = \"down\")");
    let back = run.moment("the app's Redis is back");
    assert!(back.at_ms >= down.at_ms + 3000, "{}", run.story());
    let refused = run.moments("refused by the app, naming no order");
    assert_eq!(refused.len(), 2, "{}", run.story());
    for moment in &refused {
        assert!(moment.what.contains("answered 500"), "{moment:?}");
        assert!(moment.at_ms < back.at_ms, "{}", run.story());
    }
    assert!(run.placed().is_empty(), "{}", run.story());
    assert!(
        run.moments("payments ").is_empty(),
        "nothing is charged:\n{}",
        run.story()
    );
}

#[test]
fn lab_pipeline_naive_loses_the_orders_it_saved_while_redis_was_down() {
    let Some(target) = Target::lab_pipeline("naive") else {
        return;
    };
    let scenario = example_scenario(
        &target,
        "lab-pipeline/scenarios/naive/03-queue-down-after-commit-loses-the-order.toml",
    );
    let outcome = check(&target, &[&scenario], &[]);
    outcome.assert_passed();
    let run = outcome.only_run();
    let named = run.moments("refused by the app, which named it as its order");
    assert_eq!(named.len(), 2, "{}", run.story());
    let lost: Vec<_> = run
        .violations()
        .into_iter()
        .filter(|(invariant, _)| invariant == "lost_jobs")
        .collect();
    assert!(!lost.is_empty(), "{}", run.story());
    assert!(run.moments("payments ").is_empty(), "{}", run.story());
}

#[test]
fn lab_pipeline_safe_outbox_enqueues_the_orders_once_redis_is_back() {
    let Some(target) = Target::lab_pipeline("safe") else {
        return;
    };
    let scenario = example_scenario(
        &target,
        "lab-pipeline/scenarios/safe/03-queue-down-outbox-completes.toml",
    );
    let outcome = check(&target, &[&scenario], &[]);
    outcome.assert_passed();
    let run = outcome.only_run();
    let back = run.moment("the app's Redis is back");
    let placed = run.placed();
    assert_eq!(placed.len(), 2, "{}", run.story());
    for (_, id) in &placed {
        let charges = run.performed("payments", id);
        assert_eq!(charges.len(), 1, "{}", run.story());
        assert!(charges[0].at_ms >= back.at_ms, "{}", run.story());
    }
}

#[test]
fn lab_pipeline_duplicate_delivery_charges_the_naive_twice_and_the_safe_once() {
    let Some(naive) = Target::lab_pipeline("naive") else {
        return;
    };
    let scenario = example_scenario(
        &naive,
        "lab-pipeline/scenarios/naive/04-duplicate-delivery-charges-twice.toml",
    );
    let outcome = check(&naive, &[&scenario], &[]);
    outcome.assert_passed();
    let run = outcome.only_run();
    assert_eq!(doubled(&run), ["CompleteOrderJob"], "{}", run.story());
    let id = &run.placed()[0].1;
    assert_eq!(run.performed("payments", id).len(), 2, "{}", run.story());

    let Some(safe) = Target::lab_pipeline("safe") else {
        return;
    };
    let scenario = example_scenario(
        &safe,
        "lab-pipeline/scenarios/safe/04-duplicate-delivery-once.toml",
    );
    let outcome = check(&safe, &[&scenario], &[]);
    outcome.assert_passed();
    let run = outcome.only_run();
    assert!(!doubled(&run).is_empty(), "{}", run.story());
    for (_, id) in run.placed() {
        assert_eq!(run.performed("payments", &id).len(), 1, "{}", run.story());
    }
}
