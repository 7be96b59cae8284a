//! Server-side fault rules: how a service misbehaves for unmodified clients.
//!
//! The book server only misbehaves when the client sends `X-Crash` and friends,
//! which means changing the code under test. Here each service holds a list of
//! rules (`GET|PUT /{service}/behavior`); every faultable call walks the list
//! and the first rule that applies decides its fate. `slow` rules add latency
//! and let the walk go on, so "slow, then crash" is two rules. A rule can be
//! added, removed or moved on its own, and the others keep what they have
//! used up: moving a half-spent `calls: 3` rule does not give it 3 again.
//!
//! The faults sit *in front of* the provider, like a failing gateway or load
//! balancer: `crash`, `throttle` and `drop-before` never reach it, while
//! `send-then-crash` and `drop-after` let the provider do its work (and store
//! its idempotent result) before the client is told otherwise.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::service::Service;

/// The latency a `slow` rule adds when it names no `sleep_ms`.
pub const DEFAULT_SLOW_MS: u64 = 1_000;
/// The status `crash` and `send-then-crash` answer when they name none.
pub const DEFAULT_CRASH_STATUS: u16 = 503;
/// The `Retry-After` seconds a `throttle` rule sends when it names none.
pub const DEFAULT_RETRY_AFTER_S: u64 = 1;
/// More rules than this on one service is a mistake, not a test plan.
pub const MAX_RULES: usize = 100;

/// How a rule makes a call fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Answer 5xx without reaching the provider.
    Crash,
    /// Answer 429 with `Retry-After`, without reaching the provider.
    Throttle,
    /// Add `sleep_ms` of latency, then let the next rule decide.
    Slow,
    /// Let the provider perform the effect, then answer 5xx.
    SendThenCrash,
    /// Close the connection without answering; the provider never sees the call.
    DropBefore,
    /// Let the provider perform the effect, then close the connection.
    DropAfter,
}

impl Mode {
    /// Every mode, in the order forms list them.
    pub const ALL: [Mode; 6] = [
        Mode::Crash,
        Mode::Throttle,
        Mode::Slow,
        Mode::SendThenCrash,
        Mode::DropBefore,
        Mode::DropAfter,
    ];

    /// The name used in JSON, forms and scenario files.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Crash => "crash",
            Mode::Throttle => "throttle",
            Mode::Slow => "slow",
            Mode::SendThenCrash => "send-then-crash",
            Mode::DropBefore => "drop-before",
            Mode::DropAfter => "drop-after",
        }
    }

    /// Whether a rule of this mode takes `field`; setting a field the mode
    /// does not use is refused, so that nobody believes it does something.
    pub fn uses(self, field: Field) -> bool {
        match field {
            Field::SleepMs => self == Mode::Slow,
            Field::Status => matches!(self, Mode::Crash | Mode::SendThenCrash),
            Field::RetryAfterS => self == Mode::Throttle,
            Field::Calls | Field::Probability | Field::Seed | Field::ForMs | Field::Operations => {
                true
            }
        }
    }
}

/// A field of a rule besides its mode, as JSON and the forms name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Calls,
    Probability,
    Seed,
    ForMs,
    Operations,
    SleepMs,
    Status,
    RetryAfterS,
}

impl Field {
    /// Every field, in the order forms show them.
    pub const ALL: [Field; 8] = [
        Field::Calls,
        Field::Probability,
        Field::Seed,
        Field::ForMs,
        Field::Operations,
        Field::SleepMs,
        Field::Status,
        Field::RetryAfterS,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::Calls => "calls",
            Field::Probability => "probability",
            Field::Seed => "seed",
            Field::ForMs => "for_ms",
            Field::Operations => "operations",
            Field::SleepMs => "sleep_ms",
            Field::Status => "status",
            Field::RetryAfterS => "retry_after_s",
        }
    }

    /// The modes that use this field.
    pub fn modes(self) -> Vec<Mode> {
        Mode::ALL.into_iter().filter(|m| m.uses(self)).collect()
    }
}

/// One rule as a client writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub mode: Mode,
    /// Apply to the next N matching calls only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls: Option<u64>,
    /// Apply to each matching call with this chance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// Makes `probability` reproducible; a random seed is chosen (and shown)
    /// when it is left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Apply only within this many milliseconds from when the rule was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_ms: Option<u64>,
    /// Apply only to these operations (`charge`, `search`, …); all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operations: Option<Vec<String>>,
    /// Latency added by `slow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sleep_ms: Option<u64>,
    /// The 5xx status of `crash` and `send-then-crash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The `Retry-After` seconds of `throttle`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
    /// The read-only `state` that `GET` shows; accepted and ignored so that
    /// what `GET` returns can be `PUT` back unchanged.
    #[serde(default, skip_serializing)]
    pub state: Option<IgnoredAny>,
}

impl FaultSpec {
    /// A rule of `mode` with no limits: it applies to every call.
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            calls: None,
            probability: None,
            seed: None,
            for_ms: None,
            operations: None,
            sleep_ms: None,
            status: None,
            retry_after_s: None,
            state: None,
        }
    }

    /// Parses one rule that is to be rule `index` (`POST
    /// /{service}/behavior/rules`); errors name the field as
    /// `faults[index].…`, as for a whole behaviour. It is validated when it
    /// is added ([`Behavior::add_rule`]).
    pub fn from_json(body: &[u8], index: usize) -> Result<Self, InvalidBehavior> {
        parse_json(body, &format!("faults[{index}]"))
    }

    /// Checks what serde cannot: ranges, and keys that make no sense
    /// together; `index` is where the rule stands, for the error's field.
    pub fn validate(&self, service: Service, index: usize) -> Result<(), InvalidBehavior> {
        let field = |name: &str| format!("faults[{index}].{name}");
        let mode = self.mode.name();
        if let Some(p) = self.probability {
            if !(0.0..=1.0).contains(&p) || p.is_nan() {
                return Err(InvalidBehavior::new(
                    field("probability"),
                    format!("must be between 0 and 1, got {p}"),
                ));
            }
        } else if self.seed.is_some() {
            return Err(InvalidBehavior::new(
                field("seed"),
                "only makes sense with `probability`",
            ));
        }
        if self.calls == Some(0) {
            return Err(InvalidBehavior::new(
                field("calls"),
                "must be at least 1 (remove the rule to turn it off)",
            ));
        }
        if self.for_ms == Some(0) {
            return Err(InvalidBehavior::new(field("for_ms"), "must be at least 1"));
        }
        let set = [
            (Field::SleepMs, self.sleep_ms.is_some()),
            (Field::Status, self.status.is_some()),
            (Field::RetryAfterS, self.retry_after_s.is_some()),
        ];
        if let Some((unused, _)) = set.iter().find(|(f, set)| *set && !self.mode.uses(*f)) {
            let modes: Vec<String> = unused
                .modes()
                .iter()
                .map(|m| format!("`{}`", m.name()))
                .collect();
            return Err(InvalidBehavior::new(
                field(unused.name()),
                format!(
                    "only applies to mode{} {}, not `{mode}`",
                    if modes.len() == 1 { "" } else { "s" },
                    modes.join(" and ")
                ),
            ));
        }
        if let Some(status) = self.status {
            if !(500..=599).contains(&status) {
                return Err(InvalidBehavior::new(
                    field("status"),
                    format!("must be a 5xx status, got {status}"),
                ));
            }
        }
        if let Some(ops) = &self.operations {
            let allowed = service.faultable_operations();
            if ops.is_empty() {
                return Err(InvalidBehavior::new(
                    field("operations"),
                    format!(
                        "must name at least one of {} (leave it out for all)",
                        allowed.join(", ")
                    ),
                ));
            }
            for (i, op) in ops.iter().enumerate() {
                if !allowed.contains(&op.as_str()) {
                    return Err(InvalidBehavior::new(
                        format!("faults[{index}].operations[{i}]"),
                        format!(
                            "`{op}` is not an operation of {service}; it has {}",
                            allowed.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A service's whole behaviour, as `PUT /{service}/behavior` takes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BehaviorSpec {
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
    /// New records become searchable only this long after they are made.
    #[serde(default)]
    pub search_lag_ms: u64,
}

impl BehaviorSpec {
    /// Parses and validates a behaviour for `service`, naming the offending
    /// field (`faults[1].probability`) in the error.
    pub fn from_json(service: Service, body: &[u8]) -> Result<Self, InvalidBehavior> {
        let spec: BehaviorSpec = parse_json(body, "")?;
        spec.validate(service)?;
        Ok(spec)
    }

    /// Checks every rule; see [`BehaviorSpec::from_json`].
    pub fn validate(&self, service: Service) -> Result<(), InvalidBehavior> {
        if self.faults.len() > MAX_RULES {
            return Err(InvalidBehavior::new(
                "faults",
                format!("at most {MAX_RULES} rules, got {}", self.faults.len()),
            ));
        }
        for (i, fault) in self.faults.iter().enumerate() {
            fault.validate(service, i)?;
        }
        Ok(())
    }
}

/// Parses one JSON value, naming the offending field in the error: its
/// path under `prefix` (`faults[1].probability`), `prefix` itself for an
/// unknown key at the top, or `body` when the JSON is malformed.
pub fn parse_json<T: serde::de::DeserializeOwned>(
    body: &[u8],
    prefix: &str,
) -> Result<T, InvalidBehavior> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut *de).map_err(|err| {
        let path = err.path().to_string();
        let err = err.into_inner();
        // Malformed JSON is the body's fault, not a field's (its path
        // would read like `faults[0].?`); the message has line and column.
        let malformed = matches!(
            err.classify(),
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof
        );
        let field = match (malformed, path.as_str(), prefix) {
            (true, _, _) | (false, ".", "") => "body".to_string(),
            (false, ".", prefix) => prefix.to_string(),
            (false, path, "") => path.to_string(),
            (false, path, prefix) => format!("{prefix}.{path}"),
        };
        InvalidBehavior::new(field, err.to_string())
    })?;
    // Text after the JSON value (`{...} x`) is malformed too.
    de.end()
        .map_err(|err| InvalidBehavior::new("body", err.to_string()))?;
    Ok(value)
}

/// Why one rule could not be added, removed or moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleError {
    /// The path names a rule that is not there (404).
    NoSuchRule { index: usize, rules: usize },
    /// The new rule, or where to move one, is wrong (422).
    Invalid(InvalidBehavior),
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuleError::NoSuchRule { index, rules: 0 } => {
                write!(f, "there is no rule {index}: no rules are set")
            }
            RuleError::NoSuchRule { index, rules } => write!(
                f,
                "there is no rule {index}: the rules are numbered 0 to {}",
                rules - 1
            ),
            RuleError::Invalid(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for RuleError {}

impl From<InvalidBehavior> for RuleError {
    fn from(err: InvalidBehavior) -> Self {
        RuleError::Invalid(err)
    }
}

/// A rejected behaviour (`PUT /{service}/behavior` or its form): which field,
/// and what was wrong with it; answered as `{"error", "field"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidBehavior {
    pub field: String,
    pub error: String,
}

impl InvalidBehavior {
    pub fn new(field: impl Into<String>, error: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            error: error.into(),
        }
    }
}

impl std::fmt::Display for InvalidBehavior {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.error)
    }
}

impl std::error::Error for InvalidBehavior {}

/// A rule in force, with what it has done so far.
#[derive(Debug, Clone)]
struct Rule {
    spec: FaultSpec,
    hits: u64,
    remaining: Option<u64>,
    expires_at_ms: Option<u64>,
    seed: Option<u64>,
    rng: Option<ChaCha8Rng>,
}

impl Rule {
    fn new(spec: FaultSpec, now_ms: u64, pick_seed: &mut impl FnMut() -> u64) -> Self {
        let seed = spec
            .probability
            .map(|_| spec.seed.unwrap_or_else(&mut *pick_seed));
        Self {
            hits: 0,
            remaining: spec.calls,
            expires_at_ms: spec.for_ms.map(|ms| now_ms + ms),
            rng: seed.map(ChaCha8Rng::seed_from_u64),
            seed,
            spec,
        }
    }

    fn spent(&self, now_ms: u64) -> bool {
        self.remaining == Some(0) || self.expires_at_ms.is_some_and(|t| now_ms >= t)
    }

    /// Whether the rule fires for this call; firing uses up one of its calls.
    fn fires(&mut self, operation: &str, now_ms: u64) -> bool {
        if self.spent(now_ms) {
            return false;
        }
        if let Some(ops) = &self.spec.operations {
            if !ops.iter().any(|op| op == operation) {
                return false;
            }
        }
        if let (Some(p), Some(rng)) = (self.spec.probability, self.rng.as_mut()) {
            if !rng.random_bool(p) {
                return false;
            }
        }
        self.hits += 1;
        if let Some(left) = self.remaining.as_mut() {
            *left -= 1;
        }
        true
    }
}

/// What happens to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Added before the call is answered (or reaches the provider).
    pub latency_ms: u64,
    pub action: Action,
    /// Which rule decided, for the error body and the ledger; `None` for the
    /// client's own `X-…` headers or no fault.
    pub rule: Option<usize>,
}

/// The fate a rule (or a client header) gives a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// No fault: the provider answers.
    Forward,
    Crash {
        status: u16,
    },
    Throttle {
        retry_after_s: u64,
    },
    SendThenCrash {
        status: u16,
    },
    DropBefore,
    DropAfter,
}

impl Action {
    /// Whether the provider sees the call.
    pub fn reaches_provider(self) -> bool {
        matches!(
            self,
            Action::Forward | Action::SendThenCrash { .. } | Action::DropAfter
        )
    }
}

impl Decision {
    pub const FORWARD: Decision = Decision {
        latency_ms: 0,
        action: Action::Forward,
        rule: None,
    };
}

/// A service's rules in force and its search lag.
#[derive(Debug, Clone, Default)]
pub struct Behavior {
    rules: Vec<Rule>,
    search_lag_ms: u64,
}

impl Behavior {
    /// Puts a validated spec in force; windows start now and counters at zero.
    pub fn from_spec(spec: BehaviorSpec, now_ms: u64, mut pick_seed: impl FnMut() -> u64) -> Self {
        Self {
            rules: spec
                .faults
                .into_iter()
                .map(|f| Rule::new(f, now_ms, &mut pick_seed))
                .collect(),
            search_lag_ms: spec.search_lag_ms,
        }
    }

    pub fn search_lag_ms(&self) -> u64 {
        self.search_lag_ms
    }

    /// Sets the search lag and leaves the rules as they are.
    pub fn set_search_lag_ms(&mut self, ms: u64) {
        self.search_lag_ms = ms;
    }

    /// Appends a rule (validated here, as rule `len`); its counters and
    /// window start now, the other rules' go on.
    pub fn add_rule(
        &mut self,
        service: Service,
        spec: FaultSpec,
        now_ms: u64,
        mut pick_seed: impl FnMut() -> u64,
    ) -> Result<(), RuleError> {
        let index = self.rules.len();
        if index >= MAX_RULES {
            return Err(InvalidBehavior::new(
                "faults",
                format!("at most {MAX_RULES} rules; remove one first"),
            )
            .into());
        }
        spec.validate(service, index)?;
        self.rules.push(Rule::new(spec, now_ms, &mut pick_seed));
        Ok(())
    }

    /// Takes rule `index` out; the rules after it move up one, with their
    /// counters.
    pub fn remove_rule(&mut self, index: usize) -> Result<(), RuleError> {
        self.check_index(index)?;
        self.rules.remove(index);
        Ok(())
    }

    /// Moves rule `from` to position `to` (the others keep their order
    /// and every rule its counters).
    pub fn move_rule(&mut self, from: usize, to: usize) -> Result<(), RuleError> {
        self.check_index(from)?;
        if to >= self.rules.len() {
            return Err(InvalidBehavior::new(
                "to",
                format!(
                    "must be a rule number from 0 to {}, got {to}",
                    self.rules.len() - 1
                ),
            )
            .into());
        }
        let rule = self.rules.remove(from);
        self.rules.insert(to, rule);
        Ok(())
    }

    fn check_index(&self, index: usize) -> Result<(), RuleError> {
        if index < self.rules.len() {
            Ok(())
        } else {
            Err(RuleError::NoSuchRule {
                index,
                rules: self.rules.len(),
            })
        }
    }

    /// Walks the rules for one call of `operation`.
    pub fn decide(&mut self, operation: &str, now_ms: u64) -> Decision {
        let mut latency_ms = 0;
        for (index, rule) in self.rules.iter_mut().enumerate() {
            if !rule.fires(operation, now_ms) {
                continue;
            }
            let action = match rule.spec.mode {
                Mode::Slow => {
                    latency_ms += rule.spec.sleep_ms.unwrap_or(DEFAULT_SLOW_MS);
                    continue;
                }
                Mode::Crash => Action::Crash {
                    status: rule.spec.status.unwrap_or(DEFAULT_CRASH_STATUS),
                },
                Mode::SendThenCrash => Action::SendThenCrash {
                    status: rule.spec.status.unwrap_or(DEFAULT_CRASH_STATUS),
                },
                Mode::Throttle => Action::Throttle {
                    retry_after_s: rule.spec.retry_after_s.unwrap_or(DEFAULT_RETRY_AFTER_S),
                },
                Mode::DropBefore => Action::DropBefore,
                Mode::DropAfter => Action::DropAfter,
            };
            return Decision {
                latency_ms,
                action,
                rule: Some(index),
            };
        }
        Decision {
            latency_ms,
            ..Decision::FORWARD
        }
    }

    /// Whether any rule can still fire: the web lab's 🛑 / ✅.
    pub fn has_active_faults(&self, now_ms: u64) -> bool {
        self.rules.iter().any(|r| !r.spent(now_ms))
    }

    /// The rules with their counters, as `GET /{service}/behavior` shows them.
    pub fn view(&self, now_ms: u64) -> BehaviorView {
        BehaviorView {
            faults: self
                .rules
                .iter()
                .map(|rule| FaultView {
                    spec: rule.spec.clone(),
                    state: FaultState {
                        hits: rule.hits,
                        remaining_calls: rule.remaining,
                        expires_at_ms: rule.expires_at_ms,
                        seed: rule.seed,
                        spent: rule.spent(now_ms),
                    },
                })
                .collect(),
            search_lag_ms: self.search_lag_ms,
        }
    }
}

/// What `GET /{service}/behavior` returns: the spec plus each rule's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BehaviorView {
    pub faults: Vec<FaultView>,
    pub search_lag_ms: u64,
}

/// One rule and its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultView {
    #[serde(flatten)]
    pub spec: FaultSpec,
    pub state: FaultState,
}

/// What a rule has done, and whether it can still fire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultState {
    /// Calls it has applied to.
    pub hits: u64,
    /// Calls left, when limited by `calls`.
    pub remaining_calls: Option<u64>,
    /// When its `for_ms` window closes (epoch ms).
    pub expires_at_ms: Option<u64>,
    /// The seed in use, when limited by `probability`.
    pub seed: Option<u64>,
    /// Used up: no calls left, or the window has closed.
    pub spent: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn behavior(json: &str, now: u64) -> Behavior {
        let spec = BehaviorSpec::from_json(Service::Payments, json.as_bytes()).unwrap();
        Behavior::from_spec(spec, now, || 99)
    }

    #[test]
    fn calls_limit_the_rule_and_it_stays_visible_as_spent() {
        let mut b = behavior(r#"{"faults":[{"mode":"crash","calls":2}]}"#, 0);
        assert_eq!(b.decide("charge", 0).action, Action::Crash { status: 503 });
        assert_eq!(b.decide("charge", 0).action, Action::Crash { status: 503 });
        assert_eq!(b.decide("charge", 0).action, Action::Forward);
        let view = b.view(0);
        assert_eq!(view.faults.len(), 1);
        assert!(view.faults[0].state.spent);
        assert_eq!(view.faults[0].state.hits, 2);
        assert!(!b.has_active_faults(0));
    }

    #[test]
    fn slow_adds_latency_and_the_next_rule_decides() {
        let mut b = behavior(
            r#"{"faults":[{"mode":"slow","sleep_ms":250},{"mode":"drop-after","operations":["charge"]}]}"#,
            0,
        );
        let d = b.decide("charge", 0);
        assert_eq!(d.latency_ms, 250);
        assert_eq!(d.action, Action::DropAfter);
        assert_eq!(d.rule, Some(1));
        let d = b.decide("search", 0);
        assert_eq!((d.latency_ms, d.action), (250, Action::Forward));
    }

    #[test]
    fn window_closes_after_for_ms() {
        let mut b = behavior(r#"{"faults":[{"mode":"throttle","for_ms":500}]}"#, 1_000);
        assert_eq!(
            b.decide("charge", 1_499).action,
            Action::Throttle { retry_after_s: 1 }
        );
        assert_eq!(b.decide("charge", 1_500).action, Action::Forward);
        assert!(b.view(1_500).faults[0].state.spent);
    }

    #[test]
    fn probability_with_a_seed_is_reproducible() {
        let run = |seed: u64| -> Vec<bool> {
            let mut b = behavior(
                &format!(r#"{{"faults":[{{"mode":"crash","probability":0.5,"seed":{seed}}}]}}"#),
                0,
            );
            (0..64)
                .map(|_| b.decide("charge", 0).action != Action::Forward)
                .collect()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
        let hits = run(1).iter().filter(|h| **h).count();
        assert!((10..=54).contains(&hits), "{hits} of 64 at p=0.5");
    }

    #[test]
    fn a_missing_seed_is_chosen_and_shown() {
        let b = behavior(r#"{"faults":[{"mode":"crash","probability":0.1}]}"#, 0);
        assert_eq!(b.view(0).faults[0].state.seed, Some(99));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (r#"{"faults":[{"mode":"explode"}]}"#, "faults[0].mode"),
            (
                r#"{"faults":[{"mode":"crash","probability":1.5}]}"#,
                "faults[0].probability",
            ),
            (
                r#"{"faults":[{"mode":"crash"},{"mode":"crash","calls":-1}]}"#,
                "faults[1].calls",
            ),
            (
                r#"{"faults":[{"mode":"crash","calls":0}]}"#,
                "faults[0].calls",
            ),
            (
                r#"{"faults":[{"mode":"crash","sleep_ms":5}]}"#,
                "faults[0].sleep_ms",
            ),
            (
                r#"{"faults":[{"mode":"crash","status":404}]}"#,
                "faults[0].status",
            ),
            (
                r#"{"faults":[{"mode":"crash","seed":3}]}"#,
                "faults[0].seed",
            ),
            (
                r#"{"faults":[{"mode":"crash","operations":["send"]}]}"#,
                "faults[0].operations[0]",
            ),
            (
                r#"{"faults":[{"mode":"crash","colour":"red"}]}"#,
                "faults[0]",
            ),
            (r#"{"search_lag_ms":-5}"#, "search_lag_ms"),
            (r#"{"faults":"#, "body"),
        ];
        for (json, field) in cases {
            let err = BehaviorSpec::from_json(Service::Payments, json.as_bytes()).unwrap_err();
            assert!(
                err.field.starts_with(field),
                "{json}: expected field {field}, got {err}"
            );
        }
    }

    #[test]
    fn get_output_can_be_put_back() {
        let b = behavior(
            r#"{"faults":[{"mode":"crash","calls":1}],"search_lag_ms":7}"#,
            0,
        );
        let json = serde_json::to_vec(&b.view(0)).unwrap();
        let spec = BehaviorSpec::from_json(Service::Payments, &json).unwrap();
        assert_eq!(spec.faults[0].calls, Some(1));
        assert_eq!(spec.search_lag_ms, 7);
    }

    #[test]
    fn each_mode_is_named_as_json_names_it() {
        let mut names: Vec<&str> = Mode::ALL.iter().map(|m| m.name()).collect();
        for mode in Mode::ALL {
            assert_eq!(
                serde_json::to_value(mode).unwrap(),
                serde_json::Value::from(mode.name()),
                "{mode:?}"
            );
            let rule = format!(r#"{{"faults":[{{"mode":"{}"}}]}}"#, mode.name());
            let spec = BehaviorSpec::from_json(Service::Payments, rule.as_bytes()).unwrap();
            assert_eq!(spec.faults[0].mode, mode);
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Mode::ALL.len());
    }

    #[test]
    fn max_rules_is_allowed_and_one_more_is_not() {
        let rules = |n: usize| BehaviorSpec {
            faults: vec![FaultSpec::new(Mode::Crash); n],
            search_lag_ms: 0,
        };
        assert_eq!(rules(MAX_RULES).validate(Service::Payments), Ok(()));
        let err = rules(MAX_RULES + 1)
            .validate(Service::Payments)
            .unwrap_err();
        assert_eq!(err.field, "faults");
        assert!(err.error.contains("at most 100 rules, got 101"), "{err}");
    }

    #[test]
    fn only_forward_send_then_crash_and_drop_after_reach_the_provider() {
        let reaching = [
            Action::Forward,
            Action::SendThenCrash { status: 503 },
            Action::DropAfter,
        ];
        let stopping = [
            Action::Crash { status: 503 },
            Action::Throttle { retry_after_s: 1 },
            Action::DropBefore,
        ];
        for action in reaching {
            assert!(action.reaches_provider(), "{action:?}");
        }
        for action in stopping {
            assert!(!action.reaches_provider(), "{action:?}");
        }
    }

    #[test]
    fn a_rule_that_can_still_fire_is_an_active_fault() {
        assert!(!behavior(r#"{"faults":[]}"#, 0).has_active_faults(0));
        let b = behavior(r#"{"faults":[{"mode":"crash","for_ms":100}]}"#, 0);
        assert!(b.has_active_faults(0));
        assert!(b.has_active_faults(99));
        assert!(!b.has_active_faults(100));
        let mut b = behavior(r#"{"faults":[{"mode":"slow","calls":1}]}"#, 0);
        assert!(b.has_active_faults(0));
        b.decide("charge", 0);
        assert!(!b.has_active_faults(0));
    }

    /// Each rule's (mode, hits, remaining calls), in order.
    fn counters(b: &Behavior) -> Vec<(Mode, u64, Option<u64>)> {
        b.view(0)
            .faults
            .iter()
            .map(|r| (r.spec.mode, r.state.hits, r.state.remaining_calls))
            .collect()
    }

    #[test]
    fn adding_removing_and_moving_a_rule_keeps_every_rules_counters() {
        let mut b = behavior(r#"{"faults":[{"mode":"crash","calls":3}]}"#, 0);
        b.decide("charge", 0);
        let slow = FaultSpec {
            operations: Some(vec!["search".into()]),
            ..FaultSpec::new(Mode::Slow)
        };
        b.add_rule(Service::Payments, slow, 0, || 1).unwrap();
        assert_eq!(
            counters(&b),
            [(Mode::Crash, 1, Some(2)), (Mode::Slow, 0, None)]
        );
        b.move_rule(1, 0).unwrap();
        assert_eq!(
            counters(&b),
            [(Mode::Slow, 0, None), (Mode::Crash, 1, Some(2))]
        );
        // The moved rules still decide: the crash has two calls left.
        assert_eq!(b.decide("charge", 0).rule, Some(1));
        assert_eq!(counters(&b)[1], (Mode::Crash, 2, Some(1)));
        b.remove_rule(0).unwrap();
        assert_eq!(counters(&b), [(Mode::Crash, 2, Some(1))]);
    }

    #[test]
    fn a_bad_index_or_rule_is_refused_and_changes_nothing() {
        let mut b = behavior(r#"{"faults":[{"mode":"crash"},{"mode":"throttle"}]}"#, 0);
        assert_eq!(
            b.remove_rule(2),
            Err(RuleError::NoSuchRule { index: 2, rules: 2 })
        );
        assert_eq!(
            b.remove_rule(2).unwrap_err().to_string(),
            "there is no rule 2: the rules are numbered 0 to 1"
        );
        assert_eq!(
            b.move_rule(5, 0),
            Err(RuleError::NoSuchRule { index: 5, rules: 2 })
        );
        let Err(RuleError::Invalid(err)) = b.move_rule(0, 2) else {
            panic!("moving past the end is refused");
        };
        assert_eq!(err.field, "to");
        assert!(err.error.contains("from 0 to 1, got 2"), "{err}");
        let bad = FaultSpec {
            sleep_ms: Some(5),
            ..FaultSpec::new(Mode::Crash)
        };
        let Err(RuleError::Invalid(err)) = b.add_rule(Service::Payments, bad, 0, || 1) else {
            panic!("a bad rule is refused");
        };
        assert_eq!(err.field, "faults[2].sleep_ms");
        assert!(
            err.error
                .contains("only applies to mode `slow`, not `crash`"),
            "{err}"
        );
        assert_eq!(counters(&b).len(), 2);
        assert_eq!(
            Behavior::default().remove_rule(0).unwrap_err().to_string(),
            "there is no rule 0: no rules are set"
        );
    }

    #[test]
    fn adding_past_max_rules_is_refused() {
        let mut b = Behavior::from_spec(
            BehaviorSpec {
                faults: vec![FaultSpec::new(Mode::Crash); MAX_RULES],
                search_lag_ms: 0,
            },
            0,
            || 1,
        );
        let err = b
            .add_rule(Service::Payments, FaultSpec::new(Mode::Crash), 0, || 1)
            .unwrap_err();
        assert!(err.to_string().contains("at most 100 rules"), "{err}");
    }

    #[test]
    fn one_rule_parsed_alone_names_its_place() {
        let err = FaultSpec::from_json(br#"{"mode":"crash","calls":"x"}"#, 3).unwrap_err();
        assert_eq!(err.field, "faults[3].calls");
        let err = FaultSpec::from_json(br#"{"mode":"crash","colour":1}"#, 3).unwrap_err();
        assert_eq!(err.field, "faults[3].colour");
        let err = FaultSpec::from_json(br#"{"mode":"#, 3).unwrap_err();
        assert_eq!(err.field, "body");
    }
}
