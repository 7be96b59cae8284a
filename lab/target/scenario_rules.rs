//! Which scenario keys and faults a target takes, and what a scenario
//! means for one: the orders to place, the fake services' faults, and when
//! the app's worker processes die.
//!
//! A scenario written for the lab's own pipeline may say things that have
//! no meaning for an app whose code is its own (`pipeline`, `backend`, a
//! stale worker running other code, the lab's queue failing). Running it
//! anyway would report a pass for a fault that never happened, so each is
//! refused with its line and column and the reason.

use std::path::PathBuf;

use fake_services::{FaultSpec, Service};

use crate::checker::Invariant;
use crate::pipeline::Step;
use crate::scenario::format::At;
use crate::scenario::{Fault, Scenario, ScenarioError};
use crate::target::file::{Effect, Target};

/// What a scenario asks of a target.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetPlan {
    /// `(n, quantity)` for each order to place, numbered 1, 2, … across the
    /// scenario's `orders` batches.
    pub orders: Vec<(u32, u32)>,
    /// Each service fault: the service, its rule (`None` when the fault
    /// only sets the search lag), and its search lag.
    pub service_faults: Vec<(Service, Option<FaultSpec>, Option<u64>)>,
    /// The worker deaths of each run: one run per entry (`step = "every"`
    /// makes one run per effect of the target; without die-after faults,
    /// one run with none).
    pub runs: Vec<Vec<Death>>,
}

/// The target's `role = "worker"` processes are killed (SIGKILL to each
/// process group) the moment a fake service has performed `effect` for the
/// `calls`-th time, before it answers, and started again after
/// `restart_after_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Death {
    pub effect: Effect,
    pub calls: u64,
    pub restart_after_ms: u64,
}

/// How long a supervisor waits before starting killed workers again,
/// unless the fault says.
pub const DEFAULT_RESTART_AFTER_MS: u64 = 500;

/// Checks `scenario` against what `target` can do and plans its runs.
pub fn plan(scenario: &Scenario, target: &Target) -> Result<TargetPlan, ScenarioError> {
    let path = scenario
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from("<scenario>"));
    let refuse = |at: Option<At>, message: String| ScenarioError::at(&path, at, message);
    let spans = &scenario.spans;

    let lab_only = [
        (
            spans.pipeline,
            "pipeline",
            "the app's jobs are its own code, not the lab's pipeline",
        ),
        (
            spans.reminders,
            "reminders",
            "the lab has no reminder sweep in the app to trigger",
        ),
        (
            spans.backend,
            "backend",
            "the app's jobs run on its own queue",
        ),
        (
            spans.concurrency,
            "concurrency",
            "the app's worker sets its own (e.g. `sidekiq -c 5` in its command)",
        ),
        (
            spans.max_retries,
            "max_retries",
            "the app's retry policy is its own",
        ),
    ];
    for (at, key, why) in lab_only {
        if at.is_some() {
            return Err(refuse(
                at,
                format!("a target's code is its own: `{key}` does not apply ({why}); remove it"),
            ));
        }
    }
    // A scenario built in code has no spans; its values still count.
    if spans.reminders.is_none() && !scenario.reminders.is_empty() {
        return Err(refuse(
            None,
            "a target's code is its own: `reminders` does not apply; remove it".into(),
        ));
    }
    if scenario.expect.reminders_per_reminder.is_some()
        || scenario.expect.violation == Some(Invariant::RemindersPerReminder)
    {
        return Err(refuse(
            spans.expect,
            "`[expect]` counts reminders, which a target does not send (the lab has no reminder sweep in the app); remove it".into(),
        ));
    }

    let mut orders = Vec::new();
    let mut n = 0u32;
    for (index, batch) in scenario.orders.iter().enumerate() {
        if batch.decline {
            return Err(refuse(
                spans.declines.get(index).copied().flatten(),
                "`decline = true` prices the lab's own order to be declined; a target places its orders its own way: remove it".into(),
            ));
        }
        for _ in 0..batch.count {
            n = n
                .checked_add(1)
                .ok_or_else(|| refuse(None, "more orders than a target run can number".into()))?;
            orders.push((n, batch.quantity));
        }
    }

    let mut service_faults = Vec::new();
    let mut fixed: Vec<Death> = Vec::new();
    let mut every: Option<(u64, u64)> = None;
    for (index, fault) in scenario.faults.iter().enumerate() {
        let at = spans.fault(index);
        match fault {
            Fault::Service {
                service,
                rule,
                search_lag_ms,
            } => service_faults.push((*service, rule.clone(), *search_lag_ms)),
            Fault::WorkerDies {
                step,
                calls,
                restart_after_ms,
            } => {
                if target.workers().next().is_none() {
                    return Err(refuse(
                        at,
                        format!(
                            "`worker = \"die-after\"` kills the target's `role = \"worker\"` processes, and {} has none",
                            target.path.display()
                        ),
                    ));
                }
                let calls = calls.unwrap_or(1);
                let restart = restart_after_ms.unwrap_or(DEFAULT_RESTART_AFTER_MS);
                match step {
                    None => every = Some((calls, restart)),
                    Some(step) => {
                        let effect = effect_of(*step).ok_or_else(|| {
                            refuse(
                                at,
                                format!(
                                    "a target's worker dies when a fake service has performed an effect: `step` must be \"charge\", \"email\", \"fulfillment\" or \"every\", not {:?}",
                                    step.name()
                                ),
                            )
                        })?;
                        if !target.effects.contains(&effect) {
                            return Err(refuse(
                                at,
                                format!(
                                    "`step = \"{}\"`: the target's `effects` ({}) do not include it, so the worker would never die",
                                    effect.name(),
                                    target
                                        .effects
                                        .iter()
                                        .map(|e| e.name())
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            ));
                        }
                        fixed.push(Death {
                            effect,
                            calls,
                            restart_after_ms: restart,
                        });
                    }
                }
            }
            Fault::StaleWorker { .. } => {
                return Err(refuse(
                    at,
                    "a target's code is its own: `worker = \"stale\"` runs the lab's own pipeline code beside it, which a target does not have; remove it".into(),
                ))
            }
            Fault::DuplicateDelivery | Fault::QueueDown { .. } => {
                return Err(refuse(
                    at,
                    "a target's code is its own: `queue = …` faults act on the lab's own queue, not the app's; remove it".into(),
                ))
            }
            Fault::SchedulerLate => {
                return Err(refuse(
                    at,
                    "a target's code is its own: `scheduler = \"late\"` acts on the lab's own reminder scheduler; remove it".into(),
                ))
            }
        }
    }

    let runs = match every {
        None => vec![fixed],
        Some((calls, restart_after_ms)) => target
            .effects
            .iter()
            .map(|&effect| {
                let mut deaths = fixed.clone();
                deaths.push(Death {
                    effect,
                    calls,
                    restart_after_ms,
                });
                deaths
            })
            .collect(),
    };
    Ok(TargetPlan {
        orders,
        service_faults,
        runs,
    })
}

/// The effect a pipeline step names, for the steps a target's worker can
/// die after (the moment the fake service performed it).
fn effect_of(step: Step) -> Option<Effect> {
    match step {
        Step::Charge => Some(Effect::Charge),
        Step::Email => Some(Effect::Email),
        Step::Fulfillment => Some(Effect::Fulfillment),
        _ => None,
    }
}
