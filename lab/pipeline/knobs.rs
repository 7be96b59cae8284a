//! The pipeline's knobs: every naive and every safe way of doing each step,
//! with the same names in scenario files (`pipeline = {…}`) and on the
//! command line (`--charge search`). The default of each is the safe one.

use std::fmt;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use crate::runner::FetchMode;

/// How the three provider calls are split into jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Structure {
    /// One job charges, emails and requests fulfillment: a failure in the
    /// email retries the whole job, charge included.
    Monolithic,
    /// Charge → email → fulfillment, each its own job enqueued by the last.
    #[default]
    Chained,
}

/// How the charge avoids charging twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ChargeDedup {
    /// Charge every time the job runs.
    None,
    /// Send an idempotency key that carries the order: the provider replays.
    #[default]
    IdempotencyKey,
    /// Ask the provider for charges of the order first (fooled by search lag).
    Search,
}

/// How the confirmation email avoids going out twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum EmailDedup {
    /// Send every time the job runs.
    None,
    /// Search the provider's sent emails for this one first (the book's way,
    /// for providers without keys). Blind to an email the search cannot see
    /// yet: a search lag, a send still in flight, a duplicate job running at
    /// the same moment.
    Search,
    /// Send a key that names the order: the provider replays, or answers
    /// 409 while the first send is in flight.
    #[default]
    IdempotencyKey,
}

/// How the fulfillment request avoids shipping twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FulfillmentDedup {
    None,
    #[default]
    IdempotencyKey,
}

/// How placing an order starts the first job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Enqueue {
    /// The job body runs in the request: nothing retries it.
    Inline,
    /// Enqueue before the transaction commits: a worker may run the job
    /// before the order exists, or for an order that was rolled back.
    InTransaction,
    /// Enqueue after the commit: a crash (or a queue outage) in between loses
    /// the order's job (the dual write).
    AfterCommit,
    /// Write an outbox row in the order's transaction; a relay enqueues it.
    #[default]
    Outbox,
}

/// How the periodic reminder sweep keeps from sending a reminder twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Sweep {
    /// Select due reminders, send, mark sent: two overlapping sweeps send
    /// twice, and so does a sweep retried after the provider sent and then
    /// failed.
    SelectThenSend,
    /// Claim due reminders in one atomic update, then send only those, each
    /// with the reminder's idempotency key: an overlapping sweep gets none of
    /// them, a retried one has the provider replay.
    #[default]
    AtomicClaim,
}

/// One pipeline variant. Every knob left out takes its safe value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Knobs {
    pub structure: Structure,
    pub charge: ChargeDedup,
    pub email: EmailDedup,
    pub fulfillment: FulfillmentDedup,
    pub enqueue: Enqueue,
    pub sweep: Sweep,
    pub fetch: FetchMode,
}

impl Knobs {
    /// Every knob at its safe value.
    pub fn safe() -> Self {
        Self::default()
    }

    /// Every knob at its naive value (basic fetch, after-commit enqueue).
    pub fn naive() -> Self {
        Self {
            structure: Structure::Monolithic,
            charge: ChargeDedup::None,
            email: EmailDedup::None,
            fulfillment: FulfillmentDedup::None,
            enqueue: Enqueue::AfterCommit,
            sweep: Sweep::SelectThenSend,
            fetch: FetchMode::Basic,
        }
    }

    /// The knobs that differ from the safe pipeline, as `name=value` pairs.
    pub fn unsafe_knobs(&self) -> Vec<String> {
        let safe = serde_json::to_value(Knobs::safe()).expect("knobs serialize");
        let mine = serde_json::to_value(self).expect("knobs serialize");
        let (Some(safe), Some(mine)) = (safe.as_object(), mine.as_object()) else {
            return Vec::new();
        };
        mine.iter()
            .filter(|(k, v)| safe.get(*k) != Some(v))
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect()
    }
}

impl fmt::Display for Knobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unsafe_knobs = self.unsafe_knobs();
        if unsafe_knobs.is_empty() {
            f.write_str("safe pipeline")
        } else {
            write!(f, "{}", unsafe_knobs.join(", "))
        }
    }
}

/// Where a worker can die: after the named step, before the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// The order is saved, nothing is enqueued yet.
    Commit,
    /// The charge call returned; the order row is not updated yet.
    Charge,
    /// The order row records the charge; the next job is not enqueued yet.
    ChargeRecorded,
    Email,
    EmailRecorded,
    Fulfillment,
    FulfillmentRecorded,
}

impl Step {
    /// Every boundary, in pipeline order.
    pub const ALL: [Step; 7] = [
        Step::Commit,
        Step::Charge,
        Step::ChargeRecorded,
        Step::Email,
        Step::EmailRecorded,
        Step::Fulfillment,
        Step::FulfillmentRecorded,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::Commit => "commit",
            Step::Charge => "charge",
            Step::ChargeRecorded => "charge-recorded",
            Step::Email => "email",
            Step::EmailRecorded => "email-recorded",
            Step::Fulfillment => "fulfillment",
            Step::FulfillmentRecorded => "fulfillment-recorded",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn omitted_knobs_are_safe_and_unknown_ones_are_errors() {
        let knobs: Knobs = serde_json::from_str(r#"{"charge":"none"}"#).unwrap();
        assert_eq!(knobs.charge, ChargeDedup::None);
        assert_eq!(knobs.email, EmailDedup::IdempotencyKey);
        assert_eq!(knobs.to_string(), "charge=none");
        assert_eq!(Knobs::safe().to_string(), "safe pipeline");
        let err = serde_json::from_str::<Knobs>(r#"{"charges":"none"}"#).unwrap_err();
        assert!(err.to_string().contains("charges"), "{err}");
        let err = serde_json::from_str::<Knobs>(r#"{"charge":"maybe"}"#).unwrap_err();
        assert!(err.to_string().contains("idempotency-key"), "{err}");
    }

    #[test]
    fn command_line_names_match_scenario_names() {
        for (value, name) in [
            (Enqueue::AfterCommit.to_possible_value(), "after-commit"),
            (
                Sweep::SelectThenSend.to_possible_value(),
                "select-then-send",
            ),
            (
                ChargeDedup::IdempotencyKey.to_possible_value(),
                "idempotency-key",
            ),
        ] {
            assert_eq!(value.unwrap().get_name(), name);
        }
    }
}
