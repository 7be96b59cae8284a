//! Fault rules in words, for people: what a rule does to a call, on which
//! calls, and what it has used up ("crash: answer 503 with no effect on the
//! next 1 call (charge, search) — 1 left"), and what each field of a rule
//! means for a given mode. The behaviour page and the web lab's `/` both
//! say rules this way, so a rule reads the same wherever it is shown.
//!
//! Which fields a mode uses is [`Mode::uses`] (the validation's rule too);
//! the defaults are `fault_rules`' constants.

use crate::fault_rules::{
    FaultSpec, FaultState, FaultView, Field, Mode, DEFAULT_CRASH_STATUS, DEFAULT_RETRY_AFTER_S,
    DEFAULT_SLOW_MS,
};
use crate::service::Service;

/// A rule in words with what it has used up.
pub fn rule(service: Service, rule: &FaultView) -> String {
    format!(
        "{} — {}",
        spec(service, &rule.spec, rule.state.seed),
        state(&rule.spec, &rule.state)
    )
}

/// A rule as written, in words: its mode, what it does, on which calls.
/// `seed` is the one in use when the server chose it.
pub fn spec(service: Service, spec: &FaultSpec, seed: Option<u64>) -> String {
    let ops = operations(service, spec).join(", ");
    // A slow rule's action ends on "let the next rule decide": a comma
    // keeps the calls it holds from reading as the next rule's.
    let on = if spec.mode == Mode::Slow {
        ", on"
    } else {
        " on"
    };
    let mut out = format!("{}: {}{on} ", spec.mode.name(), action(service, spec));
    match spec.calls {
        Some(n) => out.push_str(&format!("the next {}", count(n, "call"))),
        None => out.push_str("every call"),
    }
    out.push_str(&format!(" ({ops})"));
    if let Some(p) = spec.probability {
        out.push_str(&format!(", each with chance {p}"));
        if let Some(seed) = spec.seed.or(seed) {
            out.push_str(&format!(" (seed {seed})"));
        }
    }
    if let Some(ms) = spec.for_ms {
        out.push_str(&format!(", within {ms} ms of being set"));
    }
    out
}

/// What a rule of this spec does to a call it applies to, with the values
/// it names or the defaults.
pub fn action(service: Service, spec: &FaultSpec) -> String {
    let status = spec.status.unwrap_or(DEFAULT_CRASH_STATUS);
    let happen = format!("let the {} happen", operations(service, spec).join(" or "));
    match spec.mode {
        Mode::Crash => format!("answer {status} with no effect"),
        Mode::Throttle => format!(
            "answer 429 with Retry-After: {} s and no effect",
            spec.retry_after_s.unwrap_or(DEFAULT_RETRY_AFTER_S)
        ),
        Mode::Slow => format!(
            "hold each call {} ms, then let the next rule decide",
            spec.sleep_ms.unwrap_or(DEFAULT_SLOW_MS)
        ),
        Mode::SendThenCrash => format!("{happen}, then answer {status}"),
        Mode::DropBefore => "close the connection unanswered with no effect".to_string(),
        Mode::DropAfter => format!("{happen}, then close the connection unanswered"),
    }
}

/// What a rule has used up: `1 left`, `spent after 1 call`, `applied 3
/// times so far`, `spent: its 500 ms window closed after 2 calls`.
pub fn state(spec: &FaultSpec, state: &FaultState) -> String {
    match (state.spent, state.remaining_calls, spec.for_ms) {
        (true, Some(0), _) | (true, _, None) => {
            format!("spent after {}", count(state.hits, "call"))
        }
        (true, _, Some(ms)) => format!(
            "spent: its {ms} ms window closed after {}",
            count(state.hits, "call")
        ),
        (false, Some(left), _) => format!("{left} left"),
        (false, None, _) => format!("applied to {} so far", count(state.hits, "call")),
    }
}

/// The calls-left cell of a rules table: `2 of 3`, `no limit`.
pub fn calls_left(spec: &FaultSpec, state: &FaultState) -> String {
    match (state.remaining_calls, spec.calls) {
        (Some(left), Some(of)) => format!("{left} of {of}"),
        (Some(left), None) => left.to_string(),
        (None, _) => "no limit".to_string(),
    }
}

/// What `field` means for a rule of `mode` on `service`, or for any mode
/// that uses it when `mode` is `None`; `None` when the mode does not use it
/// (the server refuses it then).
pub fn field(service: Service, mode: Option<Mode>, field: Field) -> Option<String> {
    if mode.is_some_and(|mode| !mode.uses(field)) {
        return None;
    }
    let verb = mode.map_or("applies to", verb);
    let effect = service.effect_name();
    Some(match field {
        Field::Calls => format!(
            "how many of the next matching calls it {verb}; then it is spent (empty: no limit)"
        ),
        Field::Probability => {
            format!("the chance, 0 to 1, that it {verb} each matching call (empty: every one)")
        }
        Field::Seed => "makes the probability's draws repeatable, only with a probability (empty: one is picked and shown)".to_string(),
        Field::ForMs => {
            "for how many milliseconds from now it applies (empty: until it is removed)".to_string()
        }
        Field::Operations => format!(
            "which calls it applies to: {} (none ticked: all)",
            service.faultable_operations().join(", ")
        ),
        Field::SleepMs => format!(
            "how long each call is held, in ms, before the next rule decides (default {DEFAULT_SLOW_MS})"
        ),
        Field::Status => match mode {
            Some(Mode::SendThenCrash) => format!(
                "the 5xx status answered after the {effect} happened (default {DEFAULT_CRASH_STATUS})"
            ),
            Some(_) => format!(
                "the 5xx status answered instead, with no {effect} (default {DEFAULT_CRASH_STATUS})"
            ),
            None => format!("the 5xx status answered (default {DEFAULT_CRASH_STATUS})"),
        },
        Field::RetryAfterS => format!(
            "the Retry-After header's seconds on the 429 (default {DEFAULT_RETRY_AFTER_S})"
        ),
    })
}

/// Which modes use `field`: `every mode`, `slow only`, `crash and
/// send-then-crash only`.
pub fn field_modes(field: Field) -> String {
    let modes = field.modes();
    if modes.len() == Mode::ALL.len() {
        return "every mode".to_string();
    }
    let names: Vec<&str> = modes.iter().map(|m| m.name()).collect();
    format!("{} only", names.join(" and "))
}

/// What a rule of `mode` does to the calls it applies to, in general.
fn verb(mode: Mode) -> &'static str {
    match mode {
        Mode::Crash | Mode::SendThenCrash => "crashes",
        Mode::Throttle => "throttles",
        Mode::Slow => "slows",
        Mode::DropBefore | Mode::DropAfter => "drops",
    }
}

/// The operations a rule applies to: the ones it names, or all the
/// service's faultable ones.
fn operations(service: Service, spec: &FaultSpec) -> Vec<String> {
    match &spec.operations {
        Some(ops) => ops.clone(),
        None => service
            .faultable_operations()
            .iter()
            .map(|op| op.to_string())
            .collect(),
    }
}

/// `1 call`, `2 calls`.
fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault_rules::{Behavior, BehaviorSpec};

    /// The rules of `json` on payments at time 0, after `calls` charges.
    fn said(json: &str, calls: usize, now_ms: u64) -> Vec<String> {
        let spec = BehaviorSpec::from_json(Service::Payments, json.as_bytes()).unwrap();
        let mut behavior = Behavior::from_spec(spec, 0, || 42);
        for _ in 0..calls {
            behavior.decide("charge", 0);
        }
        behavior
            .view(now_ms)
            .faults
            .iter()
            .map(|r| rule(Service::Payments, r))
            .collect()
    }

    #[test]
    fn each_mode_says_what_it_does_and_what_is_left() {
        let cases = [
            (
                r#"{"mode":"crash","calls":1}"#,
                "crash: answer 503 with no effect on the next 1 call (charge, search) — 1 left",
            ),
            (
                r#"{"mode":"throttle","retry_after_s":7}"#,
                "throttle: answer 429 with Retry-After: 7 s and no effect on every call (charge, search) — applied to 0 calls so far",
            ),
            (
                r#"{"mode":"slow","calls":3}"#,
                "slow: hold each call 1000 ms, then let the next rule decide, on the next 3 calls (charge, search) — 3 left",
            ),
            (
                r#"{"mode":"send-then-crash","status":504,"operations":["charge"]}"#,
                "send-then-crash: let the charge happen, then answer 504 on every call (charge) — applied to 0 calls so far",
            ),
            (
                r#"{"mode":"drop-before","probability":0.5}"#,
                "drop-before: close the connection unanswered with no effect on every call (charge, search), each with chance 0.5 (seed 42) — applied to 0 calls so far",
            ),
            (
                r#"{"mode":"drop-after","for_ms":500}"#,
                "drop-after: let the charge or search happen, then close the connection unanswered on every call (charge, search), within 500 ms of being set — applied to 0 calls so far",
            ),
        ];
        for (rule, words) in cases {
            let json = format!(r#"{{"faults":[{rule}]}}"#);
            assert_eq!(said(&json, 0, 0), [words], "{rule}");
        }
    }

    #[test]
    fn what_is_used_up_is_said() {
        let crash = r#"{"faults":[{"mode":"crash","calls":3}]}"#;
        assert!(
            said(crash, 1, 0)[0].ends_with(" — 2 left"),
            "{:?}",
            said(crash, 1, 0)
        );
        assert!(said(crash, 3, 0)[0].ends_with(" — spent after 3 calls"));
        let once = r#"{"faults":[{"mode":"crash","calls":1}]}"#;
        assert!(said(once, 1, 0)[0].ends_with(" — spent after 1 call"));
        let window = r#"{"faults":[{"mode":"crash","for_ms":500}]}"#;
        assert!(said(window, 2, 0)[0].ends_with(" — applied to 2 calls so far"));
        assert!(
            said(window, 2, 500)[0].ends_with(" — spent: its 500 ms window closed after 2 calls")
        );
    }

    #[test]
    fn calls_left_counts_down_from_calls() {
        let spec = FaultSpec {
            calls: Some(3),
            ..FaultSpec::new(Mode::Crash)
        };
        let state = FaultState {
            hits: 1,
            remaining_calls: Some(2),
            expires_at_ms: None,
            seed: None,
            spent: false,
        };
        assert_eq!(calls_left(&spec, &state), "2 of 3");
        let unlimited = FaultState {
            remaining_calls: None,
            ..state
        };
        assert_eq!(
            calls_left(&FaultSpec::new(Mode::Crash), &unlimited),
            "no limit"
        );
    }

    #[test]
    fn a_field_has_words_exactly_for_the_modes_that_take_it() {
        for mode in Mode::ALL {
            for f in Field::ALL {
                let words = field(Service::Email, Some(mode), f);
                // The validation agrees: a field the mode does not use is refused.
                let value = match f {
                    Field::Operations => serde_json::json!(["send"]),
                    Field::Probability => serde_json::json!(0.5),
                    Field::Status => serde_json::json!(502),
                    _ => serde_json::json!(5),
                };
                let mut rule = serde_json::json!({"mode": mode.name(), f.name(): value});
                if f == Field::Seed {
                    rule["probability"] = serde_json::json!(0.5);
                }
                let body = serde_json::json!({"faults": [rule]}).to_string();
                let valid = BehaviorSpec::from_json(Service::Email, body.as_bytes()).is_ok();
                assert_eq!(words.is_some(), valid, "{} for {}", f.name(), mode.name());
            }
        }
        assert_eq!(
            field(Service::Email, Some(Mode::Slow), Field::SleepMs).unwrap(),
            "how long each call is held, in ms, before the next rule decides (default 1000)"
        );
        assert_eq!(
            field(Service::Email, Some(Mode::Throttle), Field::RetryAfterS).unwrap(),
            "the Retry-After header's seconds on the 429 (default 1)"
        );
        assert!(
            field(Service::Email, Some(Mode::SendThenCrash), Field::Status)
                .unwrap()
                .contains("after the send happened (default 503)")
        );
        assert!(field(Service::Email, Some(Mode::Crash), Field::Operations)
            .unwrap()
            .contains("send, search"));
        assert_eq!(
            field(Service::Email, Some(Mode::Crash), Field::SleepMs),
            None
        );
        assert_eq!(
            field(Service::Email, None, Field::Calls).unwrap(),
            "how many of the next matching calls it applies to; then it is spent (empty: no limit)"
        );
    }

    #[test]
    fn field_modes_names_the_modes_that_take_a_field() {
        assert_eq!(field_modes(Field::Calls), "every mode");
        assert_eq!(field_modes(Field::SleepMs), "slow only");
        assert_eq!(field_modes(Field::Status), "crash and send-then-crash only");
        assert_eq!(field_modes(Field::RetryAfterS), "throttle only");
    }
}
