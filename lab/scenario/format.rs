//! The scenario file format: one TOML file, one incident. Parsing is strict
//! — an unknown key, a wrong type or an impossible combination is an error
//! naming the file, line and column.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::checker::Expect;
use crate::pipeline::{Knobs, Step};

/// A parsed, checked scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    pub name: String,
    pub description: Option<String>,
    pub pipeline: Knobs,
    pub orders: Vec<OrderBatch>,
    pub reminders: Vec<ReminderBatch>,
    /// Jobs run at once (default 1).
    pub concurrency: usize,
    /// The run's seed — the fake services' ids, the retries' jitter, the
    /// order in which jobs running at once take turns — instead of `lab
    /// check --seed`: a counterexample `lab explore` found under one
    /// interleaving keeps it.
    pub seed: Option<u64>,
    pub max_retries: Option<u32>,
    pub backend: Option<BackendKind>,
    pub faults: Vec<Fault>,
    pub expect: Expect,
    /// Where it was read from, for reports.
    #[serde(skip)]
    pub path: Option<PathBuf>,
    /// Where some keys were written, so that a later check (a target's
    /// rules, `lab check`'s own) can name their line and column.
    #[serde(skip)]
    pub spans: KeySpans,
}

/// A 1-based line and column in the scenario file.
pub type At = (usize, usize);

/// Where the keys a later check may refuse were written: `None` (or an
/// empty list) for a scenario built in code. Only the keys written in the
/// file are here — a default-valued `pipeline` is indistinguishable from a
/// missing one by its value, so only its span says it was given.
#[derive(Debug, Clone, Default)]
pub struct KeySpans {
    pub pipeline: Option<At>,
    pub reminders: Option<At>,
    pub backend: Option<At>,
    pub concurrency: Option<At>,
    pub max_retries: Option<At>,
    /// The `[expect]` table.
    pub expect: Option<At>,
    /// Each `[[faults]]` entry, at the same index as `Scenario::faults`.
    pub faults: Vec<At>,
    /// Each `orders` entry's `decline` when it is `true` (same index as
    /// `Scenario::orders`).
    pub declines: Vec<Option<At>>,
}

/// Two scenarios that say the same are equal wherever their keys were
/// written: a scenario written back and read again (`lab explore`'s
/// counterexamples) compares equal to the one it came from.
impl PartialEq for KeySpans {
    fn eq(&self, _: &KeySpans) -> bool {
        true
    }
}

impl KeySpans {
    /// Where fault `index` was written, if known.
    pub fn fault(&self, index: usize) -> Option<At> {
        self.faults.get(index).copied()
    }
}

/// `orders = [{ count = 3 }]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderBatch {
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default = "one")]
    pub quantity: u32,
    /// Priced at 9999 cents, which the payments service declines.
    #[serde(default)]
    pub decline: bool,
}

/// `reminders = [{ count = 2 }]`: reminders due now, for the sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReminderBatch {
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

/// Which queue backend a scenario asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    Memory,
    Redis,
}

/// One injected failure.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fault {
    /// A service misbehaves: the fault rule as `PUT /{service}/behavior`
    /// takes it (`None` for a fault that only sets the search lag).
    Service {
        service: fake_services::Service,
        rule: Option<fake_services::FaultSpec>,
        search_lag_ms: Option<u64>,
    },
    /// The worker process dies after a step (`None`: every step, one run each).
    WorkerDies {
        step: Option<Step>,
        /// For a target only: the worker dies the `calls`-th time the effect
        /// is performed (default the first).
        calls: Option<u64>,
        /// For a target only: how long its supervisor waits before starting
        /// the killed workers again (default 500 ms).
        restart_after_ms: Option<u64>,
    },
    /// An old worker, running other code, shares the queues.
    StaleWorker {
        code_version: String,
        pipeline: Knobs,
    },
    /// Each job is delivered twice at once.
    DuplicateDelivery,
    /// Enqueues fail for a while.
    QueueDown { for_ms: u64 },
    /// The periodic sweep fires late and overlaps the next one.
    SchedulerLate,
}

/// A scenario that could not be read: where, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    pub path: PathBuf,
    /// 1-based, when known.
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ScenarioError {}

impl ScenarioError {
    /// An error at a 1-based line and column of `path` (none when unknown).
    pub fn at(path: &Path, at: Option<At>, message: impl Into<String>) -> ScenarioError {
        ScenarioError {
            path: path.to_path_buf(),
            line: at.map(|(line, _)| line),
            column: at.map(|(_, column)| column),
            message: message.into(),
        }
    }
}

/// The file as written, before the checks that span several keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    pipeline: Option<Spanned<Knobs>>,
    #[serde(default)]
    orders: Vec<RawOrderBatch>,
    #[serde(default)]
    reminders: Option<Spanned<Vec<ReminderBatch>>>,
    #[serde(default)]
    concurrency: Option<Spanned<u32>>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    max_retries: Option<Spanned<u32>>,
    #[serde(default)]
    backend: Option<Spanned<BackendKind>>,
    #[serde(default)]
    faults: Vec<Spanned<RawFault>>,
    expect: Spanned<Expect>,
}

/// An `orders` entry as written: [`OrderBatch`] with where `decline` is.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrderBatch {
    #[serde(default = "one")]
    count: u32,
    #[serde(default = "one")]
    quantity: u32,
    #[serde(default)]
    decline: Option<Spanned<bool>>,
}

/// A `[[faults]]` table: every key any kind of fault may have.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    service: Option<fake_services::Service>,
    mode: Option<fake_services::Mode>,
    calls: Option<u64>,
    probability: Option<f64>,
    seed: Option<u64>,
    for_ms: Option<u64>,
    operations: Option<Vec<String>>,
    sleep_ms: Option<u64>,
    status: Option<u16>,
    retry_after_s: Option<u64>,
    search_lag_ms: Option<u64>,
    worker: Option<WorkerFault>,
    step: Option<StepOrEvery>,
    restart_after_ms: Option<u64>,
    code_version: Option<String>,
    pipeline: Option<Knobs>,
    queue: Option<QueueFault>,
    scheduler: Option<SchedulerFault>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum WorkerFault {
    DieAfter,
    Stale,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum QueueFault {
    Duplicate,
    Down,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum SchedulerFault {
    Late,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
enum StepOrEvery {
    Step(Step),
    Every(Every),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Every {
    Every,
}

/// Reads and checks a scenario file.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|err| ScenarioError {
        path: path.to_path_buf(),
        line: None,
        column: None,
        message: format!("cannot read it: {err}"),
    })?;
    let mut scenario = parse(&text, path)?;
    scenario.path = Some(path.to_path_buf());
    Ok(scenario)
}

/// Parses and checks scenario text; `path` only names it in errors.
pub fn parse(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
    let at = |span: Option<std::ops::Range<usize>>, message: String| {
        let (line, column) = span.map_or((None, None), |s| {
            let (l, c) = line_column(text, s.start);
            (Some(l), Some(c))
        });
        ScenarioError {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    };
    let raw: RawScenario =
        toml::from_str(text).map_err(|err| at(err.span(), err.message().to_string()))?;
    let mut faults = Vec::new();
    for spanned in &raw.faults {
        let fault =
            check_fault(spanned.get_ref()).map_err(|message| at(Some(spanned.span()), message))?;
        faults.push(fault);
    }
    let every = faults
        .iter()
        .filter(|f| matches!(f, Fault::WorkerDies { step: None, .. }))
        .count();
    if every > 1 {
        return Err(at(
            None,
            "only one worker fault may use `step = \"every\"`".into(),
        ));
    }
    let concurrency = raw.concurrency.as_ref().map_or(1, |c| *c.get_ref());
    if concurrency == 0 || concurrency > 64 {
        let span = raw.concurrency.as_ref().map(Spanned::span);
        return Err(at(
            span,
            format!("`concurrency` must be 1 to 64, got {concurrency}"),
        ));
    }
    let where_ = |span: std::ops::Range<usize>| line_column(text, span.start);
    let spans = KeySpans {
        pipeline: raw.pipeline.as_ref().map(|p| where_(p.span())),
        reminders: raw.reminders.as_ref().map(|r| where_(r.span())),
        backend: raw.backend.as_ref().map(|b| where_(b.span())),
        concurrency: raw.concurrency.as_ref().map(|c| where_(c.span())),
        max_retries: raw.max_retries.as_ref().map(|m| where_(m.span())),
        expect: Some(where_(raw.expect.span())),
        faults: raw.faults.iter().map(|f| where_(f.span())).collect(),
        declines: raw
            .orders
            .iter()
            .map(|o| {
                o.decline
                    .as_ref()
                    .filter(|d| *d.get_ref())
                    .map(|d| where_(d.span()))
            })
            .collect(),
    };
    let orders: Vec<OrderBatch> = raw
        .orders
        .iter()
        .map(|o| OrderBatch {
            count: o.count,
            quantity: o.quantity,
            decline: o.decline.as_ref().is_some_and(|d| *d.get_ref()),
        })
        .collect();
    let reminders = raw.reminders.map(Spanned::into_inner).unwrap_or_default();
    let expect = raw.expect.get_ref().clone();
    if expect == Expect::default() {
        return Err(at(
            Some(raw.expect.span()),
            "`[expect]` must say what must be true (e.g. `charges_per_order = 1`) or which `violation` the scenario shows".into(),
        ));
    }
    if orders.is_empty() && reminders.is_empty() {
        return Err(at(
            None,
            "a scenario needs `orders` or `reminders` to run".into(),
        ));
    }
    Ok(Scenario {
        name: raw.name,
        description: raw.description,
        pipeline: raw.pipeline.map(Spanned::into_inner).unwrap_or_default(),
        orders,
        reminders,
        concurrency: concurrency as usize,
        seed: raw.seed,
        max_retries: raw.max_retries.map(Spanned::into_inner),
        backend: raw.backend.map(Spanned::into_inner),
        faults,
        expect,
        path: None,
        spans,
    })
}

/// Refuses what only a target run takes (`lab check` without `--target`):
/// the lab's own worker deaths happen at a pipeline boundary, once, and the
/// runner replaces the worker at once, so `calls` and `restart_after_ms`
/// on `worker = "die-after"` would silently mean nothing.
pub fn check_for_lab(scenario: &Scenario) -> Result<(), ScenarioError> {
    let path = scenario
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from("<scenario>"));
    for (index, fault) in scenario.faults.iter().enumerate() {
        if let Fault::WorkerDies {
            calls,
            restart_after_ms,
            ..
        } = fault
        {
            let key = if restart_after_ms.is_some() {
                "restart_after_ms"
            } else if calls.is_some() {
                "calls"
            } else {
                continue;
            };
            return Err(ScenarioError::at(
                &path,
                scenario.spans.fault(index),
                format!(
                    "`{key}` is for a target (lab check --target); the lab's own worker deaths happen once, at the step's boundary, and the runner starts a new worker at once: remove it, or run the scenario against a target"
                ),
            ));
        }
    }
    Ok(())
}

/// Sorts a `[[faults]]` table into its kind, refusing keys that belong to
/// another kind.
fn check_fault(raw: &RawFault) -> Result<Fault, String> {
    let kinds = [
        raw.service.is_some(),
        raw.worker.is_some(),
        raw.queue.is_some(),
        raw.scheduler.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        return Err(
            "a fault names exactly one of `service`, `worker`, `queue` or `scheduler`".into(),
        );
    }
    let rule_keys = [
        ("mode", raw.mode.is_some()),
        ("calls", raw.calls.is_some()),
        ("probability", raw.probability.is_some()),
        ("seed", raw.seed.is_some()),
        ("operations", raw.operations.is_some()),
        ("sleep_ms", raw.sleep_ms.is_some()),
        ("status", raw.status.is_some()),
        ("retry_after_s", raw.retry_after_s.is_some()),
        ("search_lag_ms", raw.search_lag_ms.is_some()),
    ];
    let only = |kind: &str, allowed: &[&str]| -> Result<(), String> {
        let present = rule_keys.iter().map(|(k, p)| (*k, *p)).chain([
            ("for_ms", raw.for_ms.is_some()),
            ("step", raw.step.is_some()),
            ("restart_after_ms", raw.restart_after_ms.is_some()),
            ("code_version", raw.code_version.is_some()),
            ("pipeline", raw.pipeline.is_some()),
        ]);
        for (key, is_there) in present {
            if is_there && !allowed.contains(&key) {
                return Err(format!("`{key}` does not go with {kind}"));
            }
        }
        Ok(())
    };
    if let Some(service) = raw.service {
        only(
            "a service fault",
            &[
                "mode",
                "calls",
                "probability",
                "seed",
                "for_ms",
                "operations",
                "sleep_ms",
                "status",
                "retry_after_s",
                "search_lag_ms",
            ],
        )?;
        let rule = match raw.mode {
            None if raw.search_lag_ms.is_some() => {
                if rule_keys.iter().filter(|(_, p)| *p).count() > 1 || raw.for_ms.is_some() {
                    return Err("a fault without `mode` may only set `search_lag_ms`".into());
                }
                None
            }
            None => return Err("a service fault needs a `mode` (or only `search_lag_ms`)".into()),
            Some(mode) => {
                let spec = fake_services::FaultSpec {
                    calls: raw.calls,
                    probability: raw.probability,
                    seed: raw.seed,
                    for_ms: raw.for_ms,
                    operations: raw.operations.clone(),
                    sleep_ms: raw.sleep_ms,
                    status: raw.status,
                    retry_after_s: raw.retry_after_s,
                    ..fake_services::FaultSpec::new(mode)
                };
                // The services' own validation, so a scenario cannot say
                // what the behaviour API would refuse.
                let behavior = fake_services::BehaviorSpec {
                    faults: vec![spec.clone()],
                    search_lag_ms: 0,
                };
                behavior.validate(service).map_err(|e| e.error.clone())?;
                Some(spec)
            }
        };
        return Ok(Fault::Service {
            service,
            rule,
            search_lag_ms: raw.search_lag_ms,
        });
    }
    if let Some(worker) = raw.worker {
        return match worker {
            WorkerFault::DieAfter => {
                only(
                    "`worker = \"die-after\"`",
                    &["step", "calls", "restart_after_ms"],
                )?;
                if raw.calls == Some(0) {
                    return Err("`calls` counts the effects performed before the worker dies: it must be 1 or more".into());
                }
                let step =
                    match raw.step {
                        None => return Err(
                            "`worker = \"die-after\"` needs a `step` (a boundary, or \"every\")"
                                .into(),
                        ),
                        Some(StepOrEvery::Step(step)) => Some(step),
                        Some(StepOrEvery::Every(_)) => None,
                    };
                Ok(Fault::WorkerDies {
                    step,
                    calls: raw.calls,
                    restart_after_ms: raw.restart_after_ms,
                })
            }
            WorkerFault::Stale => {
                only("`worker = \"stale\"`", &["code_version", "pipeline"])?;
                Ok(Fault::StaleWorker {
                    code_version: raw
                        .code_version
                        .clone()
                        .ok_or("`worker = \"stale\"` needs a `code_version`")?,
                    pipeline: raw.pipeline.unwrap_or_else(Knobs::naive),
                })
            }
        };
    }
    if let Some(queue) = raw.queue {
        return match queue {
            QueueFault::Duplicate => {
                only("`queue = \"duplicate\"`", &[])?;
                Ok(Fault::DuplicateDelivery)
            }
            QueueFault::Down => {
                only("`queue = \"down\"`", &["for_ms"])?;
                Ok(Fault::QueueDown {
                    for_ms: raw.for_ms.ok_or("`queue = \"down\"` needs `for_ms`")?,
                })
            }
        };
    }
    only("`scheduler = \"late\"`", &[])?;
    Ok(Fault::SchedulerLate)
}

/// 1-based line and column of a byte offset.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::OrdersExpectation;

    fn parse_str(text: &str) -> Result<Scenario, ScenarioError> {
        parse(text, Path::new("s.toml"))
    }

    const GOOD: &str = r#"
name = "email provider sends, then crashes: search dedup sends one email"
pipeline = { structure = "chained", charge = "idempotency-key", email = "search", fulfillment = "idempotency-key" }
orders = [{ count = 3 }]

[[faults]]
service = "email"
mode = "send-then-crash"
calls = 2

[[faults]]
worker = "die-after"
step = "charge"

[expect]
charges_per_order = 1
emails_per_order = 1
fulfillments_per_order = 1
orders = "all-complete"
dead_jobs = 0
notified = 0
"#;

    #[test]
    fn the_design_example_parses() {
        let s = parse_str(GOOD).unwrap();
        assert_eq!(s.orders[0].count, 3);
        assert_eq!(s.faults.len(), 2);
        assert!(matches!(&s.faults[0], Fault::Service { rule: Some(r), .. } if r.calls == Some(2)));
        assert_eq!(
            s.faults[1],
            Fault::WorkerDies {
                step: Some(Step::Charge),
                calls: None,
                restart_after_ms: None,
            }
        );
        assert_eq!(s.expect.orders, Some(OrdersExpectation::AllComplete));
        assert_eq!(s.concurrency, 1);
    }

    #[test]
    fn errors_name_the_line_and_column() {
        let text = GOOD.replace("calls = 2", "calls = 2\ncolour = \"red\"");
        let err = parse_str(&text).unwrap_err();
        assert_eq!(err.line, Some(10), "{err}");
        assert!(err.to_string().starts_with("s.toml:10:"), "{err}");
        assert!(err.message.contains("colour"), "{err}");

        let text = GOOD.replace("calls = 2", "calls = \"two\"");
        let err = parse_str(&text).unwrap_err();
        assert_eq!((err.line, err.column), (Some(9), Some(9)), "{err}");

        let text = GOOD.replace("step = \"charge\"", "step = \"payday\"");
        assert!(parse_str(&text).is_err());

        let text = GOOD.replace(
            "worker = \"die-after\"",
            "worker = \"die-after\"\nmode = \"crash\"",
        );
        let err = parse_str(&text).unwrap_err();
        assert!(err.message.contains("`mode` does not go with"), "{err}");
        assert_eq!(err.line, Some(11), "the fault's [[faults]] header: {err}");
    }

    #[test]
    fn a_seed_is_a_whole_number_of_its_own() {
        let text = GOOD.replace("orders = [", "seed = 4081857368\norders = [");
        assert_eq!(parse_str(&text).unwrap().seed, Some(4_081_857_368));
        assert_eq!(parse_str(GOOD).unwrap().seed, None);
        let text = GOOD.replace("orders = [", "seed = -3\norders = [");
        let err = parse_str(&text).unwrap_err();
        assert_eq!(err.line, Some(4), "{err}");
        assert!(err.message.contains("u64"), "{err}");
    }

    #[test]
    fn rules_are_checked_by_the_services_own_validation() {
        let text = GOOD.replace("calls = 2", "probability = 1.5");
        let err = parse_str(&text).unwrap_err();
        assert!(err.message.contains("between 0 and 1"), "{err}");
    }

    #[test]
    fn spans_record_where_the_refusable_keys_are() {
        let text = "name = \"x\"\npipeline = { structure = \"chained\" }\nbackend = \"memory\"\nmax_retries = 3\nconcurrency = 2\norders = [{ count = 1 }, { count = 2, decline = true }, { decline = false }]\nreminders = [{ count = 1 }]\n\n[[faults]]\nqueue = \"duplicate\"\n\n[[faults]]\nworker = \"die-after\"\nstep = \"email\"\n\n[expect]\nnotified = 0\n";
        let s = parse_str(text).unwrap();
        let line = |at: Option<At>| at.map(|(l, _)| l);
        assert_eq!(line(s.spans.pipeline), Some(2));
        assert_eq!(line(s.spans.backend), Some(3));
        assert_eq!(line(s.spans.max_retries), Some(4));
        assert_eq!(line(s.spans.concurrency), Some(5));
        assert_eq!(line(s.spans.reminders), Some(7));
        assert_eq!(line(s.spans.expect), Some(16));
        assert_eq!(
            s.spans.faults.iter().map(|a| a.0).collect::<Vec<_>>(),
            [9, 12]
        );
        assert_eq!(s.spans.declines.len(), 3);
        assert_eq!(s.spans.declines[0], None);
        assert_eq!(s.spans.declines[1], Some((6, 49)));
        assert_eq!(
            s.spans.declines[2], None,
            "decline = false is nothing to refuse"
        );
        assert!(s.orders[1].decline && !s.orders[2].decline);

        let bare =
            parse_str("name = \"x\"\norders = [{ count = 1 }]\n[expect]\nnotified = 0\n").unwrap();
        assert_eq!(bare.spans.pipeline, None);
        assert_eq!(bare.spans.reminders, None);
        assert_eq!(bare.spans.backend, None);
        assert_eq!(bare.spans.max_retries, None);
        assert_eq!(bare.spans.concurrency, None);
    }

    #[test]
    fn die_after_takes_calls_and_restart_after_ms_which_the_lab_refuses() {
        let text = GOOD.replace(
            "step = \"charge\"",
            "step = \"charge\"\ncalls = 3\nrestart_after_ms = 200",
        );
        let s = parse_str(&text).unwrap();
        assert_eq!(
            s.faults[1],
            Fault::WorkerDies {
                step: Some(Step::Charge),
                calls: Some(3),
                restart_after_ms: Some(200),
            }
        );
        let err = check_for_lab(&s).unwrap_err();
        assert_eq!(err.line, Some(11), "{err}");
        assert!(
            err.message.contains("`restart_after_ms` is for a target"),
            "{err}"
        );

        let text = GOOD.replace("step = \"charge\"", "step = \"charge\"\ncalls = 2");
        let err = check_for_lab(&parse_str(&text).unwrap()).unwrap_err();
        assert!(err.message.starts_with("`calls` is for a target"), "{err}");
        assert!(check_for_lab(&parse_str(GOOD).unwrap()).is_ok());

        let text = GOOD.replace("step = \"charge\"", "step = \"charge\"\ncalls = 0");
        let err = parse_str(&text).unwrap_err();
        assert!(err.message.contains("1 or more"), "{err}");

        let text = GOOD.replace("calls = 2", "calls = 2\nrestart_after_ms = 5");
        let err = parse_str(&text).unwrap_err();
        assert!(
            err.message
                .contains("`restart_after_ms` does not go with a service fault"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_expectation_is_refused() {
        let text = "name = \"x\"\norders = [{ count = 1 }]\n[expect]\n";
        let err = parse_str(text).unwrap_err();
        assert!(err.message.contains("[expect]"), "{err}");
    }
}
