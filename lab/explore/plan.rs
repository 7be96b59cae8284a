//! Fault plans: the proptest strategies behind `lab explore` and the
//! property tests (`tests/explore.rs`).
//!
//! A [`Plan`] is what one case tries: a few orders (some declined), maybe
//! reminders for the sweep, a concurrency, up to four faults, and the seed
//! of the interleaving its jobs run in. It is kept in the shapes proptest
//! shrinks well — a `Vec` of faults that loses elements, a `Vec` of orders,
//! numbers that fall to their lower bound, choices that fall to the first
//! (plainest) alternative — so that a failing plan shrinks towards fewer
//! faults, fewer orders and lower concurrency.
//!
//! # The fault space
//!
//! The plans are the faults the safe pipeline is built to survive — all of
//! them: the property tests check that it does, and that every unsafe knob
//! breaks within them. Each service rule is limited (a few calls, a
//! probability of at most one half, or a window of at most ten minutes), so
//! it ends well within Sidekiq's 25 retries: a rule that never ends kills
//! every pipeline's jobs, which is the retry policy's business, not
//! idempotency's. Everything else is in: search lags of minutes, `slow`
//! rules past the client's timeout, duplicates delivered at once at any
//! concurrency, faults on the reminder sweep's emails and queue.

use fake_services::{FaultSpec, Mode, Service};
use proptest::prelude::*;

use crate::checker::Expect;
use crate::pipeline::{Knobs, Step};
use crate::scenario::format::{Fault, OrderBatch, ReminderBatch, Scenario};

/// At most this many faults in a plan.
pub const MAX_FAULTS: usize = 4;
/// At most this many orders.
pub const MAX_ORDERS: usize = 5;
/// Concurrency goes up to this.
pub const MAX_CONCURRENCY: usize = 10;
/// A `calls` limit is at most this: far below the 25 retries.
pub const MAX_CALLS: u64 = 5;
/// A `probability` is at most this (in percent).
pub const MAX_PERCENT: u32 = 50;
/// A `for_ms` window is at most this: ten minutes, a few retries.
pub const MAX_WINDOW_MS: u64 = 600_000;
/// A search lag goes up to two minutes, past several retries.
pub const MAX_SEARCH_LAG_MS: u64 = 120_000;
/// A queue outage lasts at most this: past the reminder scheduler's first
/// two ticks, a minute apart, and a few of the jobs' retries.
pub const MAX_QUEUE_DOWN_MS: u64 = 150_000;

/// One case: orders, reminders, concurrency and faults.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// One entry per order, in the order they are placed: declined or not.
    pub declined: Vec<bool>,
    /// Reminders due now, for the sweep.
    pub reminders: u32,
    pub concurrency: usize,
    pub faults: Vec<Fault>,
    /// The run's seed: which of the job interleavings (and retry jitters)
    /// this plan runs under. Not shrunk: a plan that breaks under one
    /// interleaving is the same plan under another; shrinking tries a few
    /// ([`crate::explore::search`]).
    pub seed: u64,
}

impl Plan {
    /// The plan as a scenario on `knobs`, held to what the safe pipeline
    /// guarantees ([`safe_expect`]).
    pub fn scenario(&self, knobs: Knobs) -> Scenario {
        let mut orders: Vec<OrderBatch> = Vec::new();
        for &decline in &self.declined {
            match orders.last_mut() {
                Some(batch) if batch.decline == decline => batch.count += 1,
                _ => orders.push(OrderBatch {
                    count: 1,
                    quantity: 1,
                    decline,
                }),
            }
        }
        let reminders = if self.reminders > 0 {
            vec![ReminderBatch {
                count: self.reminders,
            }]
        } else {
            Vec::new()
        };
        Scenario {
            name: "an explored fault plan".into(),
            description: None,
            pipeline: knobs,
            orders,
            reminders,
            concurrency: self.concurrency,
            seed: Some(self.seed),
            max_retries: None,
            backend: None,
            faults: self.faults.clone(),
            expect: safe_expect(self.reminders > 0),
            path: None,
            spans: Default::default(),
        }
    }
}

/// What the safe pipeline guarantees under every plan: each order charged,
/// emailed and fulfilled once (a declined one not at all), every order
/// complete or declined, nothing dead, lost or notified, and each reminder
/// sent once.
pub fn safe_expect(reminders: bool) -> Expect {
    Expect {
        reminders_per_reminder: reminders.then_some(1),
        ..Expect::exactly_once()
    }
}

/// Every plan in the fault space.
pub fn plans() -> impl Strategy<Value = Plan> {
    (
        prop::collection::vec(prop::bool::weighted(0.2), 1..=MAX_ORDERS),
        prop_oneof![3 => Just(0u32), 1 => 1..=2u32],
        1..=MAX_CONCURRENCY,
        prop::collection::vec(fault(), 0..=MAX_FAULTS),
        (0..=u64::from(u32::MAX)).no_shrink(),
    )
        .prop_map(|(declined, reminders, concurrency, faults, seed)| Plan {
            declined,
            reminders,
            concurrency,
            faults,
            seed,
        })
}

/// Every plan, as a scenario on `knobs`.
pub fn scenarios(knobs: Knobs) -> impl Strategy<Value = Scenario> {
    plans().prop_map(move |plan| plan.scenario(knobs))
}

/// One fault, the plainest kinds first (they are what shrinking tends to).
pub fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        4 => service_fault(),
        2 => prop::sample::select(Step::ALL.to_vec())
            .prop_map(|step| Fault::WorkerDies {
                step: Some(step),
                calls: None,
                restart_after_ms: None,
            }),
        1 => Just(Fault::DuplicateDelivery),
        2 => search_lag(),
        1 => (100..=MAX_QUEUE_DOWN_MS).prop_map(|for_ms| Fault::QueueDown { for_ms }),
        1 => Just(Fault::SchedulerLate),
    ]
}

/// A service's search index lagging behind its records.
fn search_lag() -> impl Strategy<Value = Fault> {
    (
        prop::sample::select(vec![Service::Payments, Service::Email]),
        1..=MAX_SEARCH_LAG_MS,
    )
        .prop_map(|(service, lag)| Fault::Service {
            service,
            rule: None,
            search_lag_ms: Some(lag),
        })
}

/// A fault rule on payments, email or fulfillment.
fn service_fault() -> impl Strategy<Value = Fault> {
    (
        prop::sample::select(vec![
            Service::Payments,
            Service::Email,
            Service::Fulfillment,
        ]),
        rule(),
        prop::option::weighted(0.25, 0..2usize),
    )
        .prop_map(|(service, mut rule, operation)| {
            rule.operations =
                operation.map(|i| vec![service.faultable_operations()[i].to_string()]);
            Fault::Service {
                service,
                rule: Some(rule),
                search_lag_ms: None,
            }
        })
}

/// How a rule is limited: it must end.
#[derive(Debug, Clone, Copy)]
pub(super) enum Limit {
    Calls(u64),
    Probability { percent: u32, seed: u64 },
    Window(u64),
}

/// A rule of any mode, with the keys that mode takes, limited.
fn rule() -> impl Strategy<Value = FaultSpec> {
    let limit = prop_oneof![
        3 => (1..=MAX_CALLS).prop_map(Limit::Calls),
        1 => (5..=MAX_PERCENT, 0..1_000u64)
            .prop_map(|(percent, seed)| Limit::Probability { percent, seed }),
        1 => (1_000..=MAX_WINDOW_MS).prop_map(Limit::Window),
    ];
    let mode = prop::sample::select(Mode::ALL.to_vec());
    let status = prop::option::weighted(0.2, prop::sample::select(vec![500u16, 502, 503, 504]));
    let retry_after = prop::option::weighted(0.5, 1..=30u64);
    let sleep = prop::option::weighted(0.8, 100..=10_000u64);
    (mode, limit, status, retry_after, sleep).prop_map(
        |(mode, limit, status, retry_after_s, sleep_ms)| {
            limited_rule(mode, limit, status, retry_after_s, sleep_ms)
        },
    )
}

/// A rule of `mode`, limited by `limit`, with the one of `status`,
/// `retry_after_s` and `sleep_ms` its mode takes (the others unused), for
/// the lab's plans and a target's alike.
pub(super) fn limited_rule(
    mode: Mode,
    limit: Limit,
    status: Option<u16>,
    retry_after_s: Option<u64>,
    sleep_ms: Option<u64>,
) -> FaultSpec {
    let mut rule = FaultSpec::new(mode);
    match limit {
        Limit::Calls(n) => rule.calls = Some(n),
        Limit::Probability { percent, seed } => {
            rule.probability = Some(f64::from(percent) / 100.0);
            rule.seed = Some(seed);
        }
        Limit::Window(ms) => rule.for_ms = Some(ms),
    }
    match mode {
        Mode::Crash | Mode::SendThenCrash => rule.status = status,
        Mode::Throttle => rule.retry_after_s = retry_after_s,
        Mode::Slow => rule.sleep_ms = sleep_ms,
        Mode::DropBefore | Mode::DropAfter => {}
    }
    rule
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use proptest::test_runner::{Config, TestRunner};

    use super::*;
    use crate::scenario::{parse, to_toml};

    /// Every plan is a valid scenario — the format's own checks and the
    /// services' rule validation agree — and its file reads back the same.
    #[test]
    fn generated_plans_are_valid_and_round_trip() {
        let mut runner = TestRunner::new(Config {
            cases: 2_000,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&scenarios(Knobs::naive()), |scenario| {
                let text = to_toml(&scenario);
                let read = parse(&text, Path::new("plan.toml"))
                    .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
                prop_assert_eq!(read, scenario);
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn orders_are_batched_in_order() {
        let plan = Plan {
            declined: vec![false, false, true, false],
            reminders: 0,
            concurrency: 1,
            faults: vec![],
            seed: 3,
        };
        let scenario = plan.scenario(Knobs::safe());
        let counts: Vec<(u32, bool)> = scenario
            .orders
            .iter()
            .map(|b| (b.count, b.decline))
            .collect();
        assert_eq!(counts, [(2, false), (1, true), (1, false)]);
        assert!(scenario.reminders.is_empty());
        assert_eq!(scenario.expect.reminders_per_reminder, None);
        assert_eq!(scenario.seed, Some(3));
    }
}
