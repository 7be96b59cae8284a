//! When a target run has settled, judged from outside the app: no
//! provider call in flight or started for `quiet_ms` and, with `[sidekiq]`,
//! no job waiting, scheduled, retrying or busy — none seen for all of
//! `quiet_ms`, since one look can miss a job Sidekiq has just popped (it
//! writes its busy jobs only on its heartbeat). And, when it did not, why.

use std::time::Duration;

use fake_services::{FakeServices, Service};

use super::sidekiq::SidekiqView;

/// The wall clock in epoch milliseconds, as the fake services' clock reads.
pub fn now_epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// No provider call has started or ended for `quiet`.
pub fn idle(fakes: &FakeServices, quiet: Duration) -> bool {
    let activity = fakes.activity();
    let idle_ms = now_epoch_ms().saturating_sub(activity.last_call_ms);
    activity.in_flight == 0 && idle_ms >= quiet.as_millis() as u64
}

/// Work under way now: a provider call in flight or, with `[sidekiq]`, a
/// job queued, scheduled, waiting to retry or busy in a live process.
pub async fn busy(fakes: &FakeServices, sidekiq: Option<&SidekiqView>) -> Result<bool, String> {
    if fakes.activity().in_flight > 0 {
        return Ok(true);
    }
    match sidekiq {
        None => Ok(false),
        Some(sidekiq) => Ok(!sidekiq.pending().await?.is_empty()),
    }
}

/// Why the run did not settle by `timeout_s`: what Sidekiq still had,
/// the calls in flight, and the last effect a provider performed.
pub async fn unsettled(
    fakes: &FakeServices,
    sidekiq: Option<&SidekiqView>,
    timeout_s: u64,
    placed: bool,
    started_epoch_ms: u64,
) -> String {
    let mut why = vec![format!("did not settle within {timeout_s} s")];
    if !placed {
        why.push("the orders were still being placed".into());
    }
    if let Some(sidekiq) = sidekiq {
        match sidekiq.pending().await {
            Ok(pending) => why.push(pending.describe()),
            Err(err) => why.push(err),
        }
    }
    let activity = fakes.activity();
    if activity.in_flight > 0 {
        why.push(format!(
            "{} provider call(s) still in flight",
            activity.in_flight
        ));
    }
    let last = Service::ALL
        .iter()
        .flat_map(|s| fakes.ledger(*s))
        .max_by_key(|r| r.created_at_ms);
    match last {
        Some(r) => why.push(format!(
            "the last provider effect was {} {} at +{:.3} s",
            r.service.name(),
            r.id,
            r.created_at_ms.saturating_sub(started_epoch_ms) as f64 / 1000.0
        )),
        None => why.push("no provider effect at all".into()),
    }
    why.join("; ")
}
