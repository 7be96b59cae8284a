//! The fault plans `lab explore --target` tries: what a target takes
//! ([`crate::target::scenario_rules`]), in real time.
//!
//! A plan is 1–3 orders and 1–3 faults drawn from what the target supports:
//! a fault rule of any mode and limit on the service of each of its
//! `effects`, a search lag on those that search (payments, email), a worker
//! death after each effect when it has `role = "worker"` processes, and the
//! queue faults once the lab can put them between a target and its Redis
//! ([`queue_faults_supported`]). Every plan is held to the safe
//! expectations of that target ([`target_expect`]).
//!
//! # Real time
//!
//! A target run is seconds on the wall clock with Sidekiq's retries moved at
//! once (`fast_retries`): a retry comes every few tens of milliseconds, so a
//! job spends its 25 retries in under a second. The bounds follow from that:
//!
//! - a `for_ms` window is at most [`MAX_WINDOW_MS`]: a crash window of a
//!   second kills a safe app's jobs (they run out of retries inside it),
//!   which is the retry policy's business, not idempotency's;
//! - a `slow` sleep stays under [`MAX_SLOW_MS`], below a typical client
//!   timeout (the sidekiq-shop's 5 s): past it, the retry of a keyed call
//!   meets the first still in flight (409) and fast retries spend all 25 on
//!   that within a second — a dead job the lab's speed-up made, not the app;
//! - `Retry-After` is at most 5 s and a search lag at most 5 s;
//! - at most 3 faults and 3 orders: each run costs seconds.
//!
//! Numbers are drawn from a few values rather than a range, so shrinking
//! one takes a run or two, not the dozen a binary search over a range does.

use fake_services::{FaultSpec, Mode, Service};
use proptest::prelude::*;
use proptest::strategy::{BoxedStrategy, Union};

use super::plan::{limited_rule, Limit};
use crate::checker::{Expect, OrdersExpectation};
use crate::pipeline::{Knobs, Step};
use crate::scenario::format::{Fault, OrderBatch, Scenario};
use crate::target::file::{Effect, Target};

/// At most this many faults in a plan (at least one: a plan without any is
/// the happy path, which a scenario file covers).
pub const MAX_FAULTS: usize = 3;
/// At most this many orders.
pub const MAX_ORDERS: u32 = 3;
/// A `calls` limit is at most this.
pub const MAX_CALLS: u64 = 3;
/// A `probability` is at most this (in percent).
pub const MAX_PERCENT: u32 = 50;
/// The `for_ms` windows a rule may have: well inside the second in which
/// fast retries spend a job's 25.
pub const WINDOWS_MS: [u64; 3] = [100, 200, 300];
/// A `slow` rule's sleeps; [`MAX_SLOW_MS`] the longest.
pub const SLEEPS_MS: [u64; 4] = [250, 1_000, 2_500, MAX_SLOW_MS];
/// The longest `slow` sleep: under a 5 s client timeout.
pub const MAX_SLOW_MS: u64 = 4_500;
/// The `Retry-After` seconds of a `throttle` rule.
pub const RETRY_AFTERS_S: [u64; 3] = [1, 2, 5];
/// The search lags.
pub const SEARCH_LAGS_MS: [u64; 4] = [500, 1_000, 2_500, 5_000];
/// A queue outage lasts at most this.
pub const MAX_QUEUE_DOWN_MS: u64 = 3_000;

/// Whether the lab can put queue faults (`queue = "duplicate"`, `queue =
/// "down"`) between `target` and its Redis: when the app is given its
/// Redis as `{redis}`, which the lab serves through its proxy.
pub fn queue_faults_supported(target: &Target) -> bool {
    target.uses_redis()
}

/// What every plan is held to on `target`: each of its `effects` exactly
/// once per order, every order complete, nothing dead, lost or notified.
pub fn target_expect(target: &Target) -> Expect {
    let once = |effect| target.effects.contains(&effect).then_some(1);
    Expect {
        charges_per_order: once(Effect::Charge),
        emails_per_order: once(Effect::Email),
        fulfillments_per_order: once(Effect::Fulfillment),
        reminders_per_reminder: None,
        orders: Some(OrdersExpectation::AllComplete),
        dead_jobs: Some(0),
        notified: Some(0),
        lost_jobs: Some(0),
        violation: None,
    }
}

/// One case on a target: how many orders, and the faults.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetPlan {
    pub orders: u32,
    pub faults: Vec<Fault>,
}

impl TargetPlan {
    /// The plan as a scenario for `target`: only the keys a target takes
    /// (no `pipeline`, `concurrency`, `reminders`, `seed`), held to
    /// [`target_expect`].
    pub fn scenario(&self, target: &Target) -> Scenario {
        Scenario {
            name: "an explored fault plan".into(),
            description: None,
            pipeline: Knobs::safe(),
            orders: vec![OrderBatch {
                count: self.orders,
                quantity: 1,
                decline: false,
            }],
            reminders: Vec::new(),
            concurrency: 1,
            seed: None,
            max_retries: None,
            backend: None,
            faults: self.faults.clone(),
            expect: target_expect(target),
            path: None,
            spans: Default::default(),
        }
    }
}

/// Every plan `target` takes. The orders come first so that shrinking
/// takes them down to one before it works on the faults.
pub fn plans(target: &Target) -> impl Strategy<Value = TargetPlan> {
    let faults = match fault(target) {
        Some(fault) => prop::collection::vec(fault, 1..=MAX_FAULTS).boxed(),
        None => Just(Vec::new()).boxed(),
    };
    (1..=MAX_ORDERS, faults).prop_map(|(orders, faults)| TargetPlan { orders, faults })
}

/// Every plan, as a scenario for `target`.
pub fn scenarios(target: &Target) -> impl Strategy<Value = Scenario> {
    let target = target.clone();
    plans(&target).prop_map(move |plan| plan.scenario(&target))
}

/// One fault the target takes, the plainest kinds first (what shrinking
/// tends to); `None` when it takes none.
fn fault(target: &Target) -> Option<BoxedStrategy<Fault>> {
    let services: Vec<Service> = target.effects.iter().map(|e| e.service()).collect();
    let searched: Vec<Service> = services
        .iter()
        .copied()
        .filter(|s| matches!(s, Service::Payments | Service::Email))
        .collect();
    let mut kinds: Vec<(u32, BoxedStrategy<Fault>)> = Vec::new();
    if !services.is_empty() {
        kinds.push((5, service_fault(services)));
    }
    if target.workers().next().is_some() && !target.effects.is_empty() {
        let steps: Vec<Step> = target.effects.iter().map(|&e| step_of(e)).collect();
        kinds.push((
            2,
            prop::sample::select(steps)
                .prop_map(|step| Fault::WorkerDies {
                    step: Some(step),
                    calls: None,
                    restart_after_ms: None,
                })
                .boxed(),
        ));
    }
    if !searched.is_empty() {
        kinds.push((1, search_lag(searched)));
    }
    if queue_faults_supported(target) {
        kinds.push((1, Just(Fault::DuplicateDelivery).boxed()));
        kinds.push((
            1,
            (100..=MAX_QUEUE_DOWN_MS)
                .prop_map(|for_ms| Fault::QueueDown { for_ms })
                .boxed(),
        ));
    }
    (!kinds.is_empty()).then(|| Union::new_weighted(kinds).boxed())
}

/// The pipeline step a target's worker death names for `effect`.
fn step_of(effect: Effect) -> Step {
    match effect {
        Effect::Charge => Step::Charge,
        Effect::Email => Step::Email,
        Effect::Fulfillment => Step::Fulfillment,
    }
}

/// A service's search index lagging behind its records.
fn search_lag(services: Vec<Service>) -> BoxedStrategy<Fault> {
    (
        prop::sample::select(services),
        prop::sample::select(SEARCH_LAGS_MS.to_vec()),
    )
        .prop_map(|(service, lag)| Fault::Service {
            service,
            rule: None,
            search_lag_ms: Some(lag),
        })
        .boxed()
}

/// A fault rule on one of `services`.
fn service_fault(services: Vec<Service>) -> BoxedStrategy<Fault> {
    (prop::sample::select(services), rule())
        .prop_map(|(service, rule)| Fault::Service {
            service,
            rule: Some(rule),
            search_lag_ms: None,
        })
        .boxed()
}

/// A rule of any mode, with the keys that mode takes, limited.
fn rule() -> impl Strategy<Value = FaultSpec> {
    let limit = prop_oneof![
        3 => (1..=MAX_CALLS).prop_map(Limit::Calls),
        1 => (prop::sample::select(vec![10u32, 25, MAX_PERCENT]), 0..1_000u64)
            .prop_map(|(percent, seed)| Limit::Probability { percent, seed }),
        1 => prop::sample::select(WINDOWS_MS.to_vec()).prop_map(Limit::Window),
    ];
    let mode = prop::sample::select(Mode::ALL.to_vec());
    let status = prop::option::weighted(0.2, prop::sample::select(vec![500u16, 502, 503, 504]));
    let retry_after = prop::option::weighted(0.5, prop::sample::select(RETRY_AFTERS_S.to_vec()));
    let sleep = prop::sample::select(SLEEPS_MS.to_vec());
    (mode, limit, status, retry_after, sleep).prop_map(
        |(mode, limit, status, retry_after_s, sleep_ms)| {
            // The sleep always set: the fake services' default sleep is
            // longer than the bound.
            limited_rule(mode, limit, status, retry_after_s, Some(sleep_ms))
        },
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use proptest::test_runner::{Config, TestRunner};

    use super::*;
    use crate::scenario::{parse, to_toml};
    use crate::target::file;
    use crate::target::scenario_rules;

    /// A target with these `effects`, a worker process with `role`, given
    /// its Redis as `{redis}` when `role` is not empty.
    fn target(effects: &str, role: &str) -> Target {
        let redis = if role.is_empty() { "" } else { ", \"{redis}\"" };
        let text = format!(
            "name = \"shop\"\neffects = {effects}\n[[process]]\nname = \"worker\"\ncommand = [\"bin/worker\"{redis}]\n{role}\n[place_order]\ncommand = [\"bin/order\", \"{{n}}\"]\n"
        );
        file::parse(&text, Path::new("/apps/shop/target.toml")).unwrap()
    }

    /// Every plan is one the target takes (`scenario_rules::plan` accepts
    /// it), its file reads back the same, and it keeps within the bounds.
    #[test]
    fn generated_plans_are_accepted_by_the_target_and_round_trip() {
        let target = target("[\"charge\", \"email\"]", "role = \"worker\"");
        let mut runner = TestRunner::new(Config {
            cases: 1_000,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&scenarios(&target), |scenario| {
                let text = to_toml(&scenario);
                let mut read = parse(&text, Path::new("plan.toml"))
                    .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
                scenario_rules::plan(&read, &target)
                    .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
                read.spans = Default::default();
                prop_assert_eq!(&read, &scenario);
                prop_assert!((1..=MAX_FAULTS).contains(&scenario.faults.len()));
                for fault in &scenario.faults {
                    match fault {
                        Fault::Service {
                            service,
                            rule,
                            search_lag_ms,
                        } => {
                            prop_assert!(
                                matches!(service, Service::Payments | Service::Email),
                                "{:?} is not an effect of the target",
                                service
                            );
                            prop_assert!(search_lag_ms.unwrap_or(0) <= 5_000);
                            if let Some(rule) = rule {
                                prop_assert!(rule.for_ms.unwrap_or(0) <= 300);
                                prop_assert!(rule.sleep_ms.unwrap_or(0) <= MAX_SLOW_MS);
                                prop_assert!(rule.retry_after_s.unwrap_or(0) <= 5);
                                prop_assert!(
                                    rule.calls.is_some()
                                        || rule.probability.is_some()
                                        || rule.for_ms.is_some(),
                                    "an unlimited rule"
                                );
                            }
                        }
                        Fault::WorkerDies { step, .. } => {
                            prop_assert!(matches!(step, Some(Step::Charge | Step::Email)));
                        }
                        Fault::DuplicateDelivery => {}
                        Fault::QueueDown { for_ms } => {
                            prop_assert!(*for_ms <= MAX_QUEUE_DOWN_MS);
                        }
                        other => prop_assert!(false, "not for a target: {:?}", other),
                    }
                }
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn a_target_without_workers_gets_no_worker_deaths() {
        let target = target("[\"fulfillment\"]", "");
        let mut runner = TestRunner::new(Config {
            cases: 300,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&scenarios(&target), |scenario| {
                for fault in &scenario.faults {
                    prop_assert!(
                        matches!(
                            fault,
                            Fault::Service {
                                service: Service::Fulfillment,
                                rule: Some(_),
                                ..
                            }
                        ),
                        "{:?}",
                        fault
                    );
                }
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn the_expectations_follow_the_effects() {
        let expect = target_expect(&target("[\"charge\"]", ""));
        assert_eq!(expect.charges_per_order, Some(1));
        assert_eq!(expect.emails_per_order, None);
        assert_eq!(expect.fulfillments_per_order, None);
        assert_eq!(expect.orders, Some(OrdersExpectation::AllComplete));
        assert_eq!(
            (expect.dead_jobs, expect.notified, expect.lost_jobs),
            (Some(0), Some(0), Some(0))
        );
    }

    #[test]
    fn queue_faults_need_the_app_on_the_labs_redis() {
        assert!(!queue_faults_supported(&target("[\"charge\"]", "")));
        assert!(queue_faults_supported(&target(
            "[\"charge\"]",
            "role = \"worker\""
        )));
    }
}
