//! Writes a [`Scenario`] back as a scenario file, in the style of the files
//! in `scenarios/`: `lab explore` hands its counterexamples over this way, as
//! files that `lab check` runs and a person can read, edit and commit.
//!
//! The text parses back ([`super::parse`]) to an equal scenario, `path`
//! aside. Keys that hold their default are left out, as a person writes them:
//! knobs at their safe value, `count = 1`, `concurrency = 1`.

use std::fmt::Write as _;

use fake_services::FaultSpec;
use serde::Serialize;

use super::format::{Fault, OrderBatch, Scenario};
use crate::checker::{Expect, OrdersExpectation};
use crate::pipeline::Knobs;

/// The scenario as TOML text.
///
/// TOML integers are signed 64-bit: a `seed` above `i64::MAX` (which no
/// parsed scenario has) is written as is, and the file then says so when it
/// is read.
pub fn to_toml(scenario: &Scenario) -> String {
    let mut out = String::new();
    line(&mut out, "name", &string(&scenario.name));
    if let Some(description) = &scenario.description {
        line(&mut out, "description", &long_string(description));
    }
    if scenario.pipeline != Knobs::safe() {
        line(&mut out, "pipeline", &knobs(&scenario.pipeline));
    }
    if !scenario.orders.is_empty() {
        let batches: Vec<String> = scenario.orders.iter().map(order_batch).collect();
        line(&mut out, "orders", &format!("[{}]", batches.join(", ")));
    }
    if !scenario.reminders.is_empty() {
        let batches: Vec<String> = scenario
            .reminders
            .iter()
            .map(|r| format!("{{ count = {} }}", r.count))
            .collect();
        line(&mut out, "reminders", &format!("[{}]", batches.join(", ")));
    }
    if scenario.concurrency != 1 {
        line(&mut out, "concurrency", &scenario.concurrency.to_string());
    }
    if let Some(seed) = scenario.seed {
        line(&mut out, "seed", &seed.to_string());
    }
    if let Some(max_retries) = scenario.max_retries {
        line(&mut out, "max_retries", &max_retries.to_string());
    }
    if let Some(backend) = scenario.backend {
        line(&mut out, "backend", &string(&name_of(&backend)));
    }
    for fault in &scenario.faults {
        out.push_str("\n[[faults]]\n");
        write_fault(&mut out, fault);
    }
    out.push_str("\n[expect]\n");
    write_expect(&mut out, &scenario.expect);
    out
}

fn line(out: &mut String, key: &str, value: &str) {
    let _ = writeln!(out, "{key} = {value}");
}

/// `{ count = 2 }`, `{ count = 1, decline = true }`.
fn order_batch(batch: &OrderBatch) -> String {
    let mut keys = vec![format!("count = {}", batch.count)];
    if batch.quantity != 1 {
        keys.push(format!("quantity = {}", batch.quantity));
    }
    if batch.decline {
        keys.push("decline = true".into());
    }
    format!("{{ {} }}", keys.join(", "))
}

/// The knobs that differ from the safe pipeline, as an inline table (the
/// others take their safe value when read back); `{}` for the safe pipeline.
fn knobs(knobs: &Knobs) -> String {
    let mine = serde_json::to_value(knobs).unwrap_or_default();
    let safe = serde_json::to_value(Knobs::safe()).unwrap_or_default();
    let (Some(mine), Some(safe)) = (mine.as_object(), safe.as_object()) else {
        return "{}".into();
    };
    let keys: Vec<String> = mine
        .iter()
        .filter(|(key, value)| safe.get(*key) != Some(value))
        .map(|(key, value)| format!("{key} = {}", string(value.as_str().unwrap_or_default())))
        .collect();
    if keys.is_empty() {
        "{}".into()
    } else {
        format!("{{ {} }}", keys.join(", "))
    }
}

fn write_fault(out: &mut String, fault: &Fault) {
    match fault {
        Fault::Service {
            service,
            rule,
            search_lag_ms,
        } => {
            line(out, "service", &string(service.name()));
            if let Some(rule) = rule {
                write_rule(out, rule);
            }
            if let Some(lag) = search_lag_ms {
                line(out, "search_lag_ms", &lag.to_string());
            }
        }
        Fault::WorkerDies {
            step,
            calls,
            restart_after_ms,
        } => {
            line(out, "worker", &string("die-after"));
            line(out, "step", &string(step.map_or("every", |s| s.name())));
            if let Some(calls) = calls {
                line(out, "calls", &calls.to_string());
            }
            if let Some(ms) = restart_after_ms {
                line(out, "restart_after_ms", &ms.to_string());
            }
        }
        Fault::StaleWorker {
            code_version,
            pipeline,
        } => {
            line(out, "worker", &string("stale"));
            line(out, "code_version", &string(code_version));
            line(out, "pipeline", &knobs(pipeline));
        }
        Fault::DuplicateDelivery => line(out, "queue", &string("duplicate")),
        Fault::QueueDown { for_ms } => {
            line(out, "queue", &string("down"));
            line(out, "for_ms", &for_ms.to_string());
        }
        Fault::SchedulerLate => line(out, "scheduler", &string("late")),
    }
}

/// A fault rule's keys, in the order the behaviour API documents them.
fn write_rule(out: &mut String, rule: &FaultSpec) {
    line(out, "mode", &string(rule.mode.name()));
    if let Some(calls) = rule.calls {
        line(out, "calls", &calls.to_string());
    }
    if let Some(probability) = rule.probability {
        line(out, "probability", &float(probability));
    }
    if let Some(seed) = rule.seed {
        line(out, "seed", &seed.to_string());
    }
    if let Some(for_ms) = rule.for_ms {
        line(out, "for_ms", &for_ms.to_string());
    }
    if let Some(operations) = &rule.operations {
        let names: Vec<String> = operations.iter().map(|op| string(op)).collect();
        line(out, "operations", &format!("[{}]", names.join(", ")));
    }
    if let Some(sleep_ms) = rule.sleep_ms {
        line(out, "sleep_ms", &sleep_ms.to_string());
    }
    if let Some(status) = rule.status {
        line(out, "status", &status.to_string());
    }
    if let Some(retry_after_s) = rule.retry_after_s {
        line(out, "retry_after_s", &retry_after_s.to_string());
    }
}

fn write_expect(out: &mut String, expect: &Expect) {
    let counts = [
        ("charges_per_order", expect.charges_per_order),
        ("emails_per_order", expect.emails_per_order),
        ("fulfillments_per_order", expect.fulfillments_per_order),
        ("reminders_per_reminder", expect.reminders_per_reminder),
    ];
    for (key, value) in counts {
        if let Some(n) = value {
            line(out, key, &n.to_string());
        }
    }
    if let Some(orders) = expect.orders {
        let name = match orders {
            OrdersExpectation::AllComplete => "all-complete",
            OrdersExpectation::AllSettled => "all-settled",
        };
        line(out, "orders", &string(name));
    }
    let counts = [
        ("dead_jobs", expect.dead_jobs),
        ("notified", expect.notified),
        ("lost_jobs", expect.lost_jobs),
    ];
    for (key, value) in counts {
        if let Some(n) = value {
            line(out, key, &n.to_string());
        }
    }
    if let Some(violation) = expect.violation {
        line(out, "violation", &string(violation.key()));
    }
}

/// A value's serde name (`"memory"`), the one the file format reads.
fn name_of(value: &impl Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A float that reads back as the same float, and as a float: Rust's `{:?}`
/// is the shortest text that round-trips and always has a `.` or an
/// exponent (`1.0`, `0.3`, `1e-7`), which TOML accepts as written.
fn float(value: f64) -> String {
    format!("{value:?}")
}

/// A TOML basic string: `"…"` with `\`, `"` and control characters escaped.
fn string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Prose over several lines as the scenario files write it (`"""` and a
/// line break, the text, `"""`); anything a multi-line string would change
/// or could not hold goes in a basic string instead.
fn long_string(text: &str) -> String {
    let plain = text.contains('\n')
        && !text.contains("\"\"\"")
        && !text.ends_with('"')
        && !text.contains('\\')
        && !text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t');
    if plain {
        format!("\"\"\"\n{text}\"\"\"")
    } else {
        string(text)
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::checker::Invariant;
    use crate::scenario::format::{parse, ReminderBatch};

    fn round_trip(scenario: &Scenario) -> Scenario {
        let text = to_toml(scenario);
        parse(&text, Path::new("written.toml")).unwrap_or_else(|err| panic!("{err}\nin:\n{text}"))
    }

    #[test]
    fn every_scenario_file_round_trips() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        assert!(files.len() >= 30, "{} files", files.len());
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let read = parse(&text, &file).unwrap();
            let again = round_trip(&read);
            assert_eq!(again, read, "{}:\n{}", file.display(), to_toml(&read));
            // Written twice, the same text: the writer is a fixed point.
            assert_eq!(to_toml(&again), to_toml(&read), "{}", file.display());
        }
    }

    #[test]
    fn awkward_text_and_every_key_survive() {
        let scenario = Scenario {
            name: "quotes \" and \\ backslashes,\ttabs and \u{7} bells".into(),
            description: Some("two lines\nending in a quote\"".into()),
            pipeline: Knobs::naive(),
            orders: vec![
                OrderBatch {
                    count: 2,
                    quantity: 3,
                    decline: false,
                },
                OrderBatch {
                    count: 1,
                    quantity: 1,
                    decline: true,
                },
            ],
            reminders: vec![ReminderBatch { count: 4 }],
            concurrency: 7,
            seed: Some(42),
            max_retries: Some(0),
            backend: Some(crate::scenario::format::BackendKind::Memory),
            faults: vec![
                Fault::Service {
                    service: fake_services::Service::Payments,
                    rule: Some(FaultSpec {
                        calls: Some(2),
                        probability: Some(0.1 + 0.2),
                        seed: Some(7),
                        for_ms: Some(500),
                        operations: Some(vec!["charge".into(), "search".into()]),
                        status: Some(502),
                        ..FaultSpec::new(fake_services::Mode::SendThenCrash)
                    }),
                    search_lag_ms: Some(60_000),
                },
                Fault::Service {
                    service: fake_services::Service::Email,
                    rule: None,
                    search_lag_ms: Some(5),
                },
                Fault::Service {
                    service: fake_services::Service::Email,
                    rule: Some(FaultSpec {
                        sleep_ms: Some(10_000),
                        probability: Some(1e-7),
                        ..FaultSpec::new(fake_services::Mode::Slow)
                    }),
                    search_lag_ms: None,
                },
                Fault::Service {
                    service: fake_services::Service::Fulfillment,
                    rule: Some(FaultSpec {
                        retry_after_s: Some(3),
                        probability: Some(1.0),
                        ..FaultSpec::new(fake_services::Mode::Throttle)
                    }),
                    search_lag_ms: None,
                },
                Fault::WorkerDies {
                    step: None,
                    calls: None,
                    restart_after_ms: None,
                },
                Fault::WorkerDies {
                    step: Some(crate::pipeline::Step::EmailRecorded),
                    calls: Some(2),
                    restart_after_ms: Some(0),
                },
                Fault::StaleWorker {
                    code_version: "v1".into(),
                    pipeline: Knobs::safe(),
                },
                Fault::StaleWorker {
                    code_version: "v0".into(),
                    pipeline: Knobs::naive(),
                },
                Fault::DuplicateDelivery,
                Fault::QueueDown { for_ms: 2_000 },
                Fault::SchedulerLate,
            ],
            expect: Expect {
                charges_per_order: Some(1),
                emails_per_order: Some(0),
                fulfillments_per_order: Some(1),
                reminders_per_reminder: Some(1),
                orders: Some(OrdersExpectation::AllSettled),
                dead_jobs: Some(0),
                notified: Some(2),
                lost_jobs: Some(0),
                violation: Some(Invariant::LostJobs),
            },
            path: None,
            spans: Default::default(),
        };
        assert_eq!(round_trip(&scenario), scenario);
    }

    #[test]
    fn it_reads_like_the_hand_written_files() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("scenarios/04-monolithic-email-crash-double-charge.toml"),
        )
        .unwrap();
        let scenario = parse(&text, Path::new("04.toml")).unwrap();
        assert_eq!(to_toml(&scenario), text);
    }
}
