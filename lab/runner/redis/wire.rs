//! The Redis backend's wire format: how the lab's values are written as
//! Sidekiq writes them and read back from what Sidekiq (6, 7 or 8) wrote —
//! sorted-set scores, epoch times, process hashes and their `info` field,
//! the `<identity>:work` entries of busy jobs, job payloads found in a key.

use serde::{Deserialize, Serialize};

use crate::runner::backend::{BackendError, BackendResult, BusyJob, ProcessInfo};
use crate::runner::fetch::FetchMode;
use crate::runner::job::{ms_to_seconds, seconds_to_ms, Job};

/// The process hash's `info` field, as Sidekiq's launcher writes it.
#[derive(Debug, Serialize, Deserialize)]
struct SidekiqInfo {
    #[serde(default)]
    hostname: String,
    #[serde(default)]
    started_at: f64,
    #[serde(default)]
    pid: u32,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    concurrency: usize,
    #[serde(default)]
    queues: Vec<String>,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    identity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
}

/// A value of `<identity>:work`: one job being run.
#[derive(Debug, Serialize, Deserialize)]
struct Work {
    queue: String,
    /// The job's JSON, as a string (Sidekiq's format since 6.0).
    payload: String,
    /// Epoch seconds.
    run_at: f64,
}

/// A ZSET score (epoch seconds) back to the caller's milliseconds: the
/// microseconds the lab adds to keep insertion order are dropped.
pub(super) fn score_to_ms(score: f64) -> u64 {
    ((score * 1e6).round().max(0.0) as u64) / 1000
}

/// A time Sidekiq wrote: float epoch seconds (6, 7), or integer epoch
/// milliseconds (8; the same rule as [`Job`]'s times).
pub(super) fn epoch_to_ms(value: f64) -> u64 {
    if value > 100_000_000_000.0 {
        value.round() as u64
    } else {
        seconds_to_ms(value)
    }
}

/// The latest of a payload's `enqueued_at`, `failed_at`, `retried_at` and
/// `created_at`, if it is JSON with any of them.
pub(super) fn payload_time_ms(payload: &str) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_str(payload).ok()?;
    ["enqueued_at", "failed_at", "retried_at", "created_at"]
        .iter()
        .filter_map(|key| value.get(*key)?.as_f64())
        .map(epoch_to_ms)
        .max()
}

/// The exclusive upper bound of the scores of times up to `ms`.
pub(super) fn score_bound_after(ms: u64) -> String {
    let micros = ms.saturating_add(1).saturating_mul(1000);
    format!("({}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// `payload` as a job; the error names `place`, where it was found.
pub(super) fn parse_job(payload: &str, place: &str) -> BackendResult<Job> {
    Job::from_json(payload).map_err(|e| {
        BackendError(format!(
            "{place} holds a payload that is not a job ({e}): {payload}"
        ))
    })
}

/// The fetch script's name for a fetch mode.
pub(super) fn mode_arg(mode: FetchMode) -> &'static str {
    match mode {
        FetchMode::Reliable => "reliable",
        FetchMode::Basic => "basic",
    }
}

/// The fields of a process hash, as Sidekiq's launcher writes them.
pub(super) fn encode_process(process: &ProcessInfo) -> [(&'static str, String); 6] {
    let info = SidekiqInfo {
        hostname: process.hostname.clone(),
        started_at: ms_to_seconds(process.started_at_ms),
        pid: std::process::id(),
        tag: process.code_version.clone(),
        concurrency: process.concurrency,
        queues: process.queues.clone(),
        labels: Vec::new(),
        identity: process.identity.clone(),
        version: Some(process.code_version.clone()),
    };
    let info = serde_json::to_string(&info).expect("process info serializes");
    [
        ("info", info),
        ("busy", process.busy.to_string()),
        ("beat", ms_to_seconds(process.beat_ms).to_string()),
        ("quiet", "false".to_string()),
        ("rss", "0".to_string()),
        ("rtt_us", "0".to_string()),
    ]
}

/// A process read back from its hash's `info`, `busy` and `beat` fields.
pub(super) fn decode_process(
    identity: String,
    info: &str,
    busy: Option<usize>,
    beat: Option<f64>,
) -> BackendResult<ProcessInfo> {
    let info: SidekiqInfo = serde_json::from_str(info).map_err(|e| {
        BackendError(format!(
            "process {identity} has an unreadable info field: {e}"
        ))
    })?;
    Ok(ProcessInfo {
        identity,
        hostname: info.hostname,
        started_at_ms: epoch_to_ms(info.started_at),
        beat_ms: beat.map_or(0, epoch_to_ms),
        concurrency: info.concurrency,
        queues: info.queues,
        busy: busy.unwrap_or(0),
        code_version: info.version.filter(|v| !v.is_empty()).unwrap_or(info.tag),
    })
}

/// The entries of `<identity>:work` (and `:workers`): jid → [`Work`] JSON.
pub(super) fn encode_work(busy: &[BusyJob]) -> Vec<(String, String)> {
    busy.iter()
        .map(|b| {
            let work = Work {
                queue: b.job.queue.clone(),
                payload: b.job.to_json(),
                run_at: ms_to_seconds(b.started_at_ms),
            };
            let json = serde_json::to_string(&work).expect("work serializes");
            (b.job.jid.clone(), json)
        })
        .collect()
}

/// One entry of `place` (a process's work hash) read back as a busy job.
pub(super) fn decode_work(identity: &str, place: &str, value: &str) -> BackendResult<BusyJob> {
    let work: Work = serde_json::from_str(value)
        .map_err(|e| BackendError(format!("{place} holds an unreadable entry ({e}): {value}")))?;
    Ok(BusyJob {
        process: identity.to_string(),
        started_at_ms: epoch_to_ms(work.run_at),
        job: parse_job(&work.payload, place)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_round_trip_to_milliseconds() {
        for ms in [
            0,
            1,
            999,
            1_767_225_600_000,
            1_767_225_600_123,
            1_767_225_600_999,
        ] {
            let seconds: f64 = format!("{}.{:03}", ms / 1000, ms % 1000).parse().unwrap();
            assert_eq!(score_to_ms(seconds), ms);
            // With the microseconds that keep insertion order.
            let tie: f64 = format!("{}.{:03}999", ms / 1000, ms % 1000)
                .parse()
                .unwrap();
            assert_eq!(score_to_ms(tie), ms);
        }
        assert_eq!(score_bound_after(1_767_225_600_123), "(1767225600.124000");
        assert_eq!(score_bound_after(999), "(1.000000");
    }
}
