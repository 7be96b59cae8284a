//! A target run's story: what the fake services and Sidekiq saw, as
//! moments on the run's timeline — each fault a rule fired, each ledger
//! record with what the client was told, the jobs Sidekiq buried or still
//! had, and how often each rule fired — each with the order it concerns
//! (read through the target's `[match]`, or a job's first argument).
//!
//! The run loop adds its own moments as they happen (processes up, orders
//! placed, kills, restarts, retries moved); these are added once, after it.

use fake_services::{FakeServices, Record, Service};

use super::sidekiq::failed;
use super::watch::Fired;
use crate::checker::{Snapshot, TargetEffect};
use crate::runner::Job;
use crate::scenario::timeline::Timeline;

/// Where a run's moments go on its time axis.
pub struct Axis {
    /// The run's start, epoch ms (ledger records carry epoch times).
    pub started_epoch_ms: u64,
    /// When the run ended (ms since its start): the dead set, what was
    /// left and the rules' counts are as of then.
    pub end_ms: u64,
}

/// Every fault that fired, every ledger record, and Sidekiq's dead and
/// pending jobs at the end, on the timeline with their orders.
pub fn add_what_happened(
    timeline: &mut Timeline,
    axis: &Axis,
    effects: &[TargetEffect],
    snapshot: &Snapshot,
    fired: &[Fired],
    fakes: &FakeServices,
) {
    let order_in = |service: Service, request: &serde_json::Value| {
        effects
            .iter()
            .find(|e| e.effect.service == service)
            .and_then(|e| request.pointer(&e.order_at))
            .and_then(fake_services::ledger::scalar_to_string)
    };
    for f in fired {
        timeline.add(
            f.at_ms,
            order_in(f.service, &f.request),
            format!("{} {}: fault {}", f.service.name(), f.operation, f.what),
        );
    }
    for (service, records) in &snapshot.ledgers {
        for record in records {
            let order = order_in(*service, &record.request);
            let ms = record.created_at_ms.saturating_sub(axis.started_epoch_ms);
            timeline.add(ms, order, describe(record));
        }
    }
    let end = axis.end_ms;
    for entry in &snapshot.dead {
        let order = job_order(&entry.job);
        timeline.add(
            end,
            order,
            format!("in Sidekiq's dead set: {}", failed(&entry.job)),
        );
    }
    for job in &snapshot.pending {
        let order = job_order(job);
        timeline.add(end, order, format!("still to run: {}", failed(job)));
    }
    for service in Service::ALL {
        for (i, rule) in fakes.behavior(service).faults.iter().enumerate() {
            timeline.add(
                end,
                None,
                format!(
                    "{} rule {i} ({}) fired on {}",
                    service.name(),
                    rule.spec.mode.name(),
                    match rule.state.hits {
                        1 => "1 call".to_string(),
                        n => format!("{n} calls"),
                    }
                ),
            );
        }
    }
}

/// The order a Sidekiq job is for: its first argument, as the jobs of the
/// book's app (and the lab's) are written.
pub fn job_order(job: &Job) -> Option<String> {
    job.args
        .first()
        .and_then(fake_services::ledger::scalar_to_string)
}

/// "payments ch_2a performed (key charge-3), told 503 (send-then-crash)".
pub fn describe(record: &Record) -> String {
    let key = record
        .idempotency_key
        .as_deref()
        .map_or_else(String::new, |k| format!(" (key {k})"));
    let what = if record.is_success() {
        "performed"
    } else {
        "refused by the provider"
    };
    format!(
        "{} {} {what}{key}, told {}",
        record.service.name(),
        record.id,
        record.told.describe()
    )
}
