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

use crate::checker::{Invariant, OrdersExpectation};
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
    /// What the lab's Redis proxy does to the app's queue.
    pub queue: QueueFaults,
}

/// The queue faults of a run against a target, done by the Redis proxy the
/// lab puts between the app and its private Redis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueFaults {
    /// `queue = "duplicate"`: every job the app pushes onto a Sidekiq queue
    /// is pushed twice (same payload, same jid).
    pub duplicate: bool,
    /// `queue = "down"`: for this long, from the moment the lab starts
    /// placing the orders, the app's Redis closes its connections and
    /// refuses new ones (the longest window, when there are several).
    pub down_for_ms: Option<u64>,
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
    if scenario.expect.orders == Some(OrdersExpectation::AllSettled) {
        return Err(refuse(
            spans.expect,
            "`orders = \"all-settled\"` needs the lab's own order rows (declined, or dead with a notice); a target takes `orders = \"all-complete\"`".into(),
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
    let mut queue = QueueFaults::default();
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
            Fault::DuplicateDelivery | Fault::QueueDown { .. } if !target.uses_redis() => {
                return Err(refuse(
                    at,
                    format!(
                        "`queue = …` faults act on the app's Redis, which the lab starts for `{{redis}}` behind a proxy, and {} uses no `{{redis}}`; remove the fault or give the app its Redis as `{{redis}}`",
                        target.path.display()
                    ),
                ))
            }
            Fault::DuplicateDelivery => queue.duplicate = true,
            Fault::QueueDown { for_ms } => {
                queue.down_for_ms = Some(queue.down_for_ms.unwrap_or(0).max(*for_ms));
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
        queue,
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::scenario::parse;
    use crate::target::file;

    const TARGET: &str = r#"
name = "shop"
effects = ["charge", "email"]
[[process]]
name = "worker"
command = ["bin/worker"]
role = "worker"
[place_order]
command = ["bin/order", "{n}"]
"#;

    fn target() -> Target {
        file::parse(TARGET, Path::new("/apps/shop/target.toml")).unwrap()
    }

    /// A scenario with three orders, `top` on line 3, then `faults` from line 4.
    fn scenario(top: &str, faults: &str) -> Scenario {
        let text = format!(
            "name = \"s\"\norders = [{{ count = 2, quantity = 3 }}, {{ count = 1 }}]\n{top}\n{faults}\n[expect]\ncharges_per_order = 1\n"
        );
        let mut s = parse(&text, Path::new("s.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"));
        s.path = Some("s.toml".into());
        s
    }

    fn refused(s: &Scenario, target: &Target) -> ScenarioError {
        plan(s, target).expect_err("must be refused")
    }

    #[test]
    fn orders_are_numbered_across_batches_and_service_faults_pass_through() {
        let s = scenario(
            "",
            "[[faults]]\nservice = \"email\"\nmode = \"crash\"\ncalls = 1\n[[faults]]\nservice = \"payments\"\nsearch_lag_ms = 50\n",
        );
        let p = plan(&s, &target()).unwrap();
        assert_eq!(p.orders, [(1, 3), (2, 3), (3, 1)]);
        assert_eq!(p.service_faults.len(), 2);
        let (service, rule, lag) = &p.service_faults[0];
        assert_eq!(*service, Service::Email);
        assert_eq!(rule.as_ref().unwrap().calls, Some(1));
        assert_eq!(*lag, None);
        assert_eq!(p.service_faults[1], (Service::Payments, None, Some(50)));
        assert_eq!(p.runs, [Vec::<Death>::new()], "one run, no deaths");
        assert_eq!(p.queue, QueueFaults::default());
    }

    #[test]
    fn queue_faults_need_the_app_on_the_labs_redis() {
        let faults = "[[faults]]\nqueue = \"duplicate\"\n[[faults]]\nqueue = \"down\"\nfor_ms = 300\n[[faults]]\nqueue = \"down\"\nfor_ms = 200\n";
        let s = scenario("", faults);
        let e = refused(&s, &target());
        assert_eq!(e.line, Some(4), "{e}");
        assert!(
            e.message
                .contains("/apps/shop/target.toml uses no `{redis}`"),
            "{e}"
        );
        let with_redis = file::parse(
            &format!("{TARGET}[env]\nREDIS_URL = \"{{redis}}\"\n"),
            Path::new("/apps/shop/target.toml"),
        )
        .unwrap();
        let p = plan(&s, &with_redis).unwrap();
        assert_eq!(
            p.queue,
            QueueFaults {
                duplicate: true,
                down_for_ms: Some(300),
            },
            "the longest outage"
        );
    }

    #[test]
    fn die_after_plans_deaths_and_every_is_one_run_per_effect() {
        let s = scenario(
            "",
            "[[faults]]\nworker = \"die-after\"\nstep = \"email\"\ncalls = 2\nrestart_after_ms = 50\n",
        );
        let p = plan(&s, &target()).unwrap();
        assert_eq!(
            p.runs,
            [vec![Death {
                effect: Effect::Email,
                calls: 2,
                restart_after_ms: 50
            }]]
        );

        let s = scenario(
            "",
            "[[faults]]\nworker = \"die-after\"\nstep = \"charge\"\n[[faults]]\nworker = \"die-after\"\nstep = \"every\"\n",
        );
        let p = plan(&s, &target()).unwrap();
        let charge_once = Death {
            effect: Effect::Charge,
            calls: 1,
            restart_after_ms: DEFAULT_RESTART_AFTER_MS,
        };
        assert_eq!(
            p.runs,
            [
                vec![charge_once, charge_once],
                vec![
                    charge_once,
                    Death {
                        effect: Effect::Email,
                        ..charge_once
                    }
                ],
            ],
            "the target's two effects, each with the fixed death"
        );
    }

    #[test]
    fn the_lab_only_keys_are_refused_at_their_line() {
        let cases = [
            (
                "pipeline = { structure = \"chained\" }",
                "`pipeline` does not apply",
            ),
            ("pipeline = {}", "`pipeline` does not apply"),
            ("reminders = [{ count = 1 }]", "`reminders` does not apply"),
            ("backend = \"redis\"", "`backend` does not apply"),
            ("concurrency = 1", "`concurrency` does not apply"),
            ("max_retries = 3", "`max_retries` does not apply"),
        ];
        for (line, want) in cases {
            let e = refused(&scenario(line, ""), &target());
            assert_eq!(e.line, Some(3), "{line}: {e}");
            assert!(e.message.contains(want), "{line}: {e}");
            assert!(e.message.contains("a target's code is its own"), "{e}");
            assert!(e.to_string().starts_with("s.toml:3:"), "{e}");
        }
    }

    #[test]
    fn a_declined_order_is_refused_at_its_decline() {
        let text = "name = \"s\"\norders = [{ count = 1 },\n  { count = 1, decline = true }]\n[expect]\ncharges_per_order = 1\n";
        let s = parse(text, Path::new("s.toml")).unwrap();
        let e = refused(&s, &target());
        assert_eq!((e.line, e.column), (Some(3), Some(26)), "{e}");
        assert!(e.message.contains("`decline = true`"), "{e}");
    }

    #[test]
    fn all_settled_is_refused() {
        let text = "name = \"s\"\norders = [{ count = 1 }]\n\n[expect]\norders = \"all-settled\"\n";
        let e = refused(&parse(text, Path::new("s.toml")).unwrap(), &target());
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.message.contains("all-complete"), "{e}");
    }

    #[test]
    fn reminder_expectations_are_refused() {
        let text =
            "name = \"s\"\norders = [{ count = 1 }]\n\n[expect]\nreminders_per_reminder = 1\n";
        let e = refused(&parse(text, Path::new("s.toml")).unwrap(), &target());
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.message.contains("counts reminders"), "{e}");
    }

    #[test]
    fn faults_a_target_cannot_have_are_refused_at_their_table() {
        let header = 4; // the first `[[faults]]` line in `scenario("", …)`
        let cases = [
            (
                "worker = \"stale\"\ncode_version = \"v1\"",
                "`worker = \"stale\"`",
            ),
            ("scheduler = \"late\"", "`scheduler = \"late\"`"),
            (
                "worker = \"die-after\"\nstep = \"charge-recorded\"",
                "not \"charge-recorded\"",
            ),
            (
                "worker = \"die-after\"\nstep = \"commit\"",
                "`step` must be \"charge\", \"email\", \"fulfillment\" or \"every\"",
            ),
            (
                "worker = \"die-after\"\nstep = \"fulfillment\"",
                "`effects` (charge, email) do not include it",
            ),
        ];
        for (fault, want) in cases {
            let s = scenario(
                "",
                &format!(
                    "[[faults]]\nservice = \"email\"\nsearch_lag_ms = 1\n[[faults]]\n{fault}\n"
                ),
            );
            let e = refused(&s, &target());
            assert_eq!(e.line, Some(header + 3), "{fault}: {e}");
            assert!(e.message.contains(want), "{fault}: {e}");
        }
    }

    #[test]
    fn die_after_needs_a_worker_process() {
        let no_worker = file::parse(
            "name = \"x\"\n[[process]]\nname = \"web\"\ncommand = [\"web\"]\n[place_order]\ncommand = [\"o\"]\n",
            Path::new("/apps/x/target.toml"),
        )
        .unwrap();
        let s = scenario("", "[[faults]]\nworker = \"die-after\"\nstep = \"every\"\n");
        let e = refused(&s, &no_worker);
        assert_eq!(e.line, Some(4), "{e}");
        assert!(
            e.message
                .contains("`role = \"worker\"` processes, and /apps/x/target.toml has none"),
            "{e}"
        );
        // The same scenario is fine for a target with a worker.
        assert_eq!(plan(&s, &target()).unwrap().runs.len(), 2);
    }
}
