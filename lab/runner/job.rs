//! The job payload, in Sidekiq's JSON format, so that Sidekiq's own tools can
//! read the lab's queues and a job pushed by Ruby's `Sidekiq::Client` runs here.

use rand::Rng;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Sidekiq's `retry` option: `true` (the default maximum), `false` (no retry
/// and no dead set), or a number of retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RetryOption {
    Enabled(bool),
    Count(u32),
}

impl Default for RetryOption {
    fn default() -> Self {
        RetryOption::Enabled(true)
    }
}

/// One job, as Sidekiq stores it in Redis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub class: String,
    pub args: Vec<Value>,
    pub jid: String,
    pub queue: String,
    #[serde(default)]
    pub retry: RetryOption,
    /// Epoch seconds (float, as Sidekiq 6 and 7 write it).
    #[serde(deserialize_with = "epoch_seconds")]
    pub created_at: f64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "optional_epoch_seconds"
    )]
    pub enqueued_at: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_class: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "optional_epoch_seconds"
    )]
    pub failed_at: Option<f64>,
    /// Sidekiq's "Retry Now" lowers it by one before pushing, so a job that
    /// failed once comes back with -1: read as "not failed yet", which gives
    /// the same count on its next failure.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "retry_count"
    )]
    pub retry_count: Option<u32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "optional_epoch_seconds"
    )]
    pub retried_at: Option<f64>,
    /// Keys this version does not know (`backtrace`, `tags`, …), kept as they
    /// were so nothing a Ruby client wrote is lost on the way through.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Job {
    /// A new job for `class` on `queue`, created at `now_ms`.
    pub fn new(
        class: impl Into<String>,
        args: Vec<Value>,
        queue: impl Into<String>,
        jid: String,
        now_ms: u64,
    ) -> Self {
        Self {
            class: class.into(),
            args,
            jid,
            queue: queue.into(),
            retry: RetryOption::default(),
            created_at: ms_to_seconds(now_ms),
            enqueued_at: None,
            error_message: None,
            error_class: None,
            failed_at: None,
            retry_count: None,
            retried_at: None,
            extra: Map::new(),
        }
    }

    /// The JSON Sidekiq stores.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a job always serializes")
    }

    /// Parses a payload, saying what is wrong with a bad one.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// Sidekiq's job id: 12 random bytes as 24 hex digits, from the caller's
/// random source so that a seeded run gives the same ids.
pub fn new_jid(rng: &mut impl Rng) -> String {
    let bytes: [u8; 12] = rng.random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Milliseconds to Sidekiq's float seconds.
pub fn ms_to_seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// Sidekiq's float seconds back to milliseconds.
pub fn seconds_to_ms(seconds: f64) -> u64 {
    (seconds * 1000.0).round().max(0.0) as u64
}

/// Reads a time as Sidekiq 6/7 write it (float epoch seconds) or as Sidekiq 8
/// does (integer epoch milliseconds): an integer too large to be seconds in
/// this millennium is milliseconds.
fn to_seconds(value: &Value) -> Option<f64> {
    if let Some(n) = value.as_u64() {
        return Some(if n > 100_000_000_000 {
            n as f64 / 1000.0
        } else {
            n as f64
        });
    }
    value.as_f64()
}

fn retry_count<'de, D: Deserializer<'de>>(de: D) -> Result<Option<u32>, D::Error> {
    Ok(Option::<i64>::deserialize(de)?.and_then(|n| u32::try_from(n).ok()))
}

fn epoch_seconds<'de, D: Deserializer<'de>>(de: D) -> Result<f64, D::Error> {
    let value = Value::deserialize(de)?;
    to_seconds(&value).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "expected epoch seconds or milliseconds, got {value}"
        ))
    })
}

fn optional_epoch_seconds<'de, D: Deserializer<'de>>(de: D) -> Result<Option<f64>, D::Error> {
    let value = Option::<Value>::deserialize(de)?;
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => to_seconds(&v).map(Some).ok_or_else(|| {
            serde::de::Error::custom(format!("expected epoch seconds or milliseconds, got {v}"))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_what_sidekiq_6_reads() {
        let jid = new_jid(&mut rand::rng());
        let job = Job::new(
            "CompleteOrderJob",
            vec![json!(7)],
            "high",
            jid,
            1_700_000_000_123,
        );
        let value: Value = serde_json::from_str(&job.to_json()).unwrap();
        assert_eq!(value["class"], "CompleteOrderJob");
        assert_eq!(value["args"], json!([7]));
        assert_eq!(value["queue"], "high");
        assert_eq!(value["retry"], json!(true));
        assert_eq!(value["created_at"], json!(1_700_000_000.123));
        assert_eq!(value["jid"].as_str().unwrap().len(), 24);
        assert!(value.get("error_message").is_none());
    }

    #[test]
    fn reads_sidekiq_8_milliseconds_and_keeps_unknown_keys() {
        let job = Job::from_json(
            r#"{"class":"X","args":[],"jid":"abc","queue":"default","retry":3,
                "created_at":1700000000123,"enqueued_at":1700000000.5,"tags":["a"]}"#,
        )
        .unwrap();
        assert_eq!(job.created_at, 1_700_000_000.123);
        assert_eq!(job.enqueued_at, Some(1_700_000_000.5));
        assert_eq!(job.retry, RetryOption::Count(3));
        assert_eq!(job.extra["tags"], json!(["a"]));
        let again: Value = serde_json::from_str(&job.to_json()).unwrap();
        assert_eq!(again["tags"], json!(["a"]));
    }

    #[test]
    fn sidekiqs_retry_now_minus_one_reads_as_not_failed_yet() {
        let job = Job::from_json(
            r#"{"class":"X","args":[],"jid":"a","queue":"q","created_at":1.5,"retry_count":-1}"#,
        )
        .unwrap();
        assert_eq!(job.retry_count, None);
    }

    #[test]
    fn a_bad_payload_is_an_error_naming_the_problem() {
        let err =
            Job::from_json(r#"{"class":"X","args":[],"jid":"a","queue":"q","created_at":"soon"}"#)
                .unwrap_err();
        assert!(err.to_string().contains("epoch seconds"), "{err}");
    }
}
