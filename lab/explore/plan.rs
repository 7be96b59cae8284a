//! Fault plans: the proptest strategies behind `lab explore` and the
//! property tests (DESIGN.md, "Property tests").
//!
//! A [`Plan`] is what one case tries: a few orders (some declined), maybe
//! reminders for the sweep, a concurrency, and up to four faults. It is kept
//! in the shapes proptest shrinks well — a `Vec` of faults that loses
//! elements, a `Vec` of orders, numbers that fall to their lower bound,
//! choices that fall to the first (plainest) alternative — so that a failing
//! plan shrinks towards fewer faults, fewer orders and lower concurrency.
//!
//! # The fault space
//!
//! The plans are the faults the safe pipeline is built to survive; the
//! property tests check that it does, and every unsafe knob breaks within
//! them. Each service rule is limited (a few calls, a probability of at
//! most one half, or a window of at most ten minutes), so it ends well
//! within Sidekiq's 25 retries. Left out ([`Plan::out_of_bounds`]), because
//! the safe pipeline's email dedup — search the provider before sending, the
//! book's way — cannot see an email that is not yet searchable, and the
//! reminder sweep sends without any dedup:
//!
//! - a rule that never ends: retries run out and the job dies;
//! - an email that stays out of sight past the first retry (15 s after the
//!   client's 5 s timeout): a search lag, or `slow` rules holding the send
//!   up, of 15 s together at most (a long lag is explored on payments,
//!   where `charge = "search"` trusts it: scenario 09a);
//! - the same job delivered twice *at once* (`queue = "duplicate"` with
//!   concurrency above 1, or with the late scheduler, which runs two jobs at
//!   once): two copies that search at the same moment both find nothing
//!   (scenario 20; `email = "idempotency-key"` survives it);
//! - a duplicate delivery while the email search lags or a send outlasts the
//!   client's timeout: the second copy runs right after the first, in the
//!   same virtual instant, and cannot see its email yet;
//! - email faults or a queue outage in a plan with reminders: a sweep whose
//!   send fails after the provider sent sends again on its retry on every
//!   pipeline (the `sweep` knob is about overlapping sweeps), and an outage
//!   when the sweep is scheduled leaves the reminders unsent.

use fake_services::{FaultSpec, Mode, Service};
use proptest::prelude::*;

use crate::pipeline::{Knobs, Step};
use crate::scenario::format::{
    Expect, Fault, OrderBatch, OrdersExpectation, ReminderBatch, Scenario,
};

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
/// A payments search lag goes up to two minutes, past several retries.
pub const MAX_PAYMENTS_LAG_MS: u64 = 120_000;
/// An email search lag stays below the first retry (see the module doc).
pub const MAX_EMAIL_LAG_MS: u64 = 10_000;
/// The most latency `slow` rules may add to one email, together with the
/// email search lag (see the module doc): the client gives up after 5 s and
/// the first retry comes 15 s later.
pub const MAX_HELD_UP_MS: u64 = 15_000;
/// The provider clients' timeout in the engine (`RunOptions::default()`).
pub const CLIENT_TIMEOUT_MS: u64 = 5_000;
/// A queue outage lasts at most this.
pub const MAX_QUEUE_DOWN_MS: u64 = 10_000;

/// One case: orders, reminders, concurrency and faults.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// One entry per order, in the order they are placed: declined or not.
    pub declined: Vec<bool>,
    /// Reminders due now, for the sweep.
    pub reminders: u32,
    pub concurrency: usize,
    pub faults: Vec<Fault>,
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
            max_retries: None,
            backend: None,
            faults: self.faults.clone(),
            expect: safe_expect(self.reminders > 0),
            path: None,
        }
    }

    /// Why the safe pipeline is not expected to survive this plan, if it is
    /// not (see the module doc); `None` for a plan in the fault space.
    pub fn out_of_bounds(&self) -> Option<&'static str> {
        let duplicates = self.faults.contains(&Fault::DuplicateDelivery);
        if duplicates && self.runs_at_once() > 1 {
            return Some("duplicates delivered at once");
        }
        let (slow_ms, lag_ms) = self.email_held_up_ms();
        if slow_ms + lag_ms > MAX_HELD_UP_MS {
            return Some("an email out of sight past the first retry");
        }
        if duplicates && (lag_ms > 0 || slow_ms >= CLIENT_TIMEOUT_MS) {
            return Some("a duplicate that cannot see its first copy's email");
        }
        if self.reminders > 0 {
            let touches_sweep = self.faults.iter().any(|f| match f {
                Fault::Service { service, rule, .. } => {
                    *service == Service::Email && rule.is_some()
                }
                Fault::QueueDown { .. } => true,
                _ => false,
            });
            if touches_sweep {
                return Some("a fault on the reminder sweep's emails or queue");
            }
        }
        None
    }

    /// Jobs the engine runs at once: a late scheduler needs two, so that
    /// its two sweeps can overlap.
    fn runs_at_once(&self) -> usize {
        if self.faults.contains(&Fault::SchedulerLate) {
            self.concurrency.max(2)
        } else {
            self.concurrency
        }
    }

    /// How long a sent email can stay out of the search's sight: the
    /// latency `slow` rules add to one call, and the search lag. (A held-up
    /// charge or shipment is safe: the retry's key gets a 409 while the first
    /// call is in flight, and its result afterwards.)
    fn email_held_up_ms(&self) -> (u64, u64) {
        let (mut slow_ms, mut lag_ms) = (0, 0);
        for fault in &self.faults {
            if let Fault::Service {
                service: Service::Email,
                rule,
                search_lag_ms,
            } = fault
            {
                if let Some(rule) = rule.as_ref().filter(|r| r.mode == Mode::Slow) {
                    slow_ms += rule
                        .sleep_ms
                        .unwrap_or(fake_services::fault_rules::DEFAULT_SLOW_MS);
                }
                lag_ms = lag_ms.max(search_lag_ms.unwrap_or(0));
            }
        }
        (slow_ms, lag_ms)
    }
}

/// What the safe pipeline guarantees under every plan: each order charged,
/// emailed and fulfilled once (a declined one not at all), every order
/// complete or declined, nothing dead, lost or notified, and each reminder
/// sent once.
pub fn safe_expect(reminders: bool) -> Expect {
    Expect {
        charges_per_order: Some(1),
        emails_per_order: Some(1),
        fulfillments_per_order: Some(1),
        reminders_per_reminder: reminders.then_some(1),
        orders: Some(OrdersExpectation::AllComplete),
        dead_jobs: Some(0),
        notified: Some(0),
        lost_jobs: Some(0),
        violation: None,
    }
}

/// Every plan in the fault space.
pub fn plans() -> impl Strategy<Value = Plan> {
    any_plan().prop_filter("outside the fault space", |plan| {
        plan.out_of_bounds().is_none()
    })
}

/// Plans before the fault space's bounds are applied. Most bounds are a
/// filter; the commonest is built in instead, so that few plans are thrown
/// away: duplicates are delivered one after the other (concurrency 1).
fn any_plan() -> impl Strategy<Value = Plan> {
    (
        prop::collection::vec(prop::bool::weighted(0.2), 1..=MAX_ORDERS),
        prop_oneof![3 => Just(0u32), 1 => 1..=2u32],
        1..=MAX_CONCURRENCY,
        prop::collection::vec(fault(), 0..=MAX_FAULTS),
    )
        .prop_map(|(declined, reminders, concurrency, faults)| Plan {
            declined,
            reminders,
            concurrency: if faults.contains(&Fault::DuplicateDelivery) {
                1
            } else {
                concurrency
            },
            faults,
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
            .prop_map(|step| Fault::WorkerDies { step: Some(step) }),
        1 => Just(Fault::DuplicateDelivery),
        2 => search_lag(),
        1 => (100..=MAX_QUEUE_DOWN_MS).prop_map(|for_ms| Fault::QueueDown { for_ms }),
        1 => Just(Fault::SchedulerLate),
    ]
}

/// A service's search index lagging behind its records.
fn search_lag() -> impl Strategy<Value = Fault> {
    prop_oneof![
        (1..=MAX_PAYMENTS_LAG_MS).prop_map(|lag| (Service::Payments, lag)),
        (1..=MAX_EMAIL_LAG_MS).prop_map(|lag| (Service::Email, lag)),
    ]
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
enum Limit {
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
        },
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use proptest::strategy::ValueTree;
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

    /// The bounds are a filter: it must reject few plans, or generating
    /// them gets slow (and proptest gives up after too many rejections).
    #[test]
    fn few_plans_are_out_of_bounds() {
        let mut runner = TestRunner::deterministic();
        let strategy = any_plan();
        let total = 10_000;
        let mut out = 0;
        for _ in 0..total {
            let plan = strategy.new_tree(&mut runner).unwrap().current();
            out += usize::from(plan.out_of_bounds().is_some());
        }
        eprintln!("{out} of {total} plans out of bounds");
        assert!(out * 5 < total, "{out} of {total} plans out of bounds");
    }

    #[test]
    fn the_client_timeout_is_the_engines() {
        let options = crate::scenario::engine::RunOptions::default();
        assert_eq!(options.client_timeout_ms, CLIENT_TIMEOUT_MS);
    }

    #[test]
    fn orders_are_batched_in_order() {
        let plan = Plan {
            declined: vec![false, false, true, false],
            reminders: 0,
            concurrency: 1,
            faults: vec![],
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
    }

    #[test]
    fn plans_outside_the_fault_space_are_named() {
        let mut plan = Plan {
            declined: vec![false],
            reminders: 0,
            concurrency: 2,
            faults: vec![Fault::DuplicateDelivery],
        };
        assert!(plan.out_of_bounds().is_some(), "two copies at once");
        plan.concurrency = 1;
        assert_eq!(plan.out_of_bounds(), None);
        plan.faults.push(Fault::SchedulerLate);
        assert!(plan.out_of_bounds().is_some(), "two jobs at once");
        plan.faults.pop();

        let slow = |ms| Fault::Service {
            service: Service::Email,
            rule: Some(FaultSpec {
                sleep_ms: Some(ms),
                calls: Some(1),
                ..FaultSpec::new(Mode::Slow)
            }),
            search_lag_ms: None,
        };
        let lag = |ms| Fault::Service {
            service: Service::Email,
            rule: None,
            search_lag_ms: Some(ms),
        };
        plan.faults = vec![slow(4_000)];
        assert_eq!(plan.out_of_bounds(), None);
        plan.faults.push(Fault::DuplicateDelivery);
        assert_eq!(plan.out_of_bounds(), None, "the send is seen in time");
        plan.faults.push(lag(1));
        assert!(plan.out_of_bounds().is_some(), "a duplicate, a lag");
        plan.faults = vec![slow(6_000), Fault::DuplicateDelivery];
        assert!(plan.out_of_bounds().is_some(), "a duplicate, a timeout");
        plan.faults = vec![slow(8_000), lag(7_001)];
        assert!(plan.out_of_bounds().is_some(), "out of sight too long");
        plan.faults = vec![slow(8_000), lag(6_000)];
        assert_eq!(plan.out_of_bounds(), None);

        plan.faults = vec![Fault::SchedulerLate, Fault::QueueDown { for_ms: 100 }];
        assert_eq!(plan.out_of_bounds(), None);
        plan.reminders = 1;
        assert!(plan.out_of_bounds().is_some(), "the sweep's queue");
        plan.faults = vec![Fault::SchedulerLate, slow(100)];
        assert!(plan.out_of_bounds().is_some(), "the sweep's emails");
        plan.faults = vec![Fault::SchedulerLate, lag(100)];
        assert_eq!(plan.out_of_bounds(), None, "a lag alone is harmless");
    }
}
