//! `GET /metrics`: the web lab in the Prometheus text format (version
//! 0.0.4), through the `prometheus-client` crate.
//!
//! The job counters are this lab's runner's ([`JobCounts`](crate::runner::JobCounts):
//! the jobs its own worker processes ran, never reset). Everything else is
//! read when scraped, into a registry made for the scrape: the queues and
//! sets as `/jobs` reads them ([`super::jobs::snapshot`]), and the orders
//! by state as the store counts them. When the queue backend or the store
//! cannot be read, its families are left out and its `…_up` gauge is 0, as
//! Prometheus exporters do, so the job counters are still scraped.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

use super::jobs::{snapshot, Snapshot};
use super::WebState;

/// The prefix of every family's name.
const PREFIX: &str = "idemlab";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

pub(super) async fn metrics(State(web): State<WebState>) -> Response {
    let (jobs, orders) = tokio::join!(snapshot(&web), web.lab.shop.store.order_counts());
    let mut registry = Registry::with_prefix(PREFIX);
    web.lab.runner.job_counts().register(&mut registry);
    let jobs = jobs
        .inspect_err(|err| tracing::warn!(%err, "/metrics: the queue backend failed"))
        .ok();
    up(
        &mut registry,
        "queue_backend_up",
        "the queue backend",
        jobs.is_some(),
    );
    if let Some(jobs) = &jobs {
        register_jobs(&mut registry, jobs);
    }
    let orders = orders
        .inspect_err(|err| tracing::warn!(%err, "/metrics: the store failed"))
        .ok();
    up(&mut registry, "store_up", "the store", orders.is_some());
    if let Some(orders) = orders {
        let by_state = Family::<StateLabels, Gauge>::default();
        for (state, n) in orders {
            by_state
                .get_or_create(&StateLabels {
                    state: state.as_str(),
                })
                .set(n);
        }
        registry.register(
            "orders",
            "Orders in the store, by how far they got (placed, charged, declined, emailed, fulfilled)",
            by_state,
        );
    }
    let mut text = String::new();
    prometheus_text::encode(&mut text, &registry).expect("writing to a String cannot fail");
    (
        [(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)],
        text,
    )
        .into_response()
}

/// A gauge that is 1 when `what` could be read for this scrape.
fn up(registry: &mut Registry, name: &str, what: &str, ok: bool) {
    registry.register(
        name,
        format!("1 when {what} could be read for this scrape, else 0"),
        ConstGauge::new(i64::from(ok)),
    );
}

/// The queues, the sets, the busy jobs and the backend's Sidekiq counters.
fn register_jobs(registry: &mut Registry, jobs: &Snapshot) {
    let queues = Family::<QueueLabels, Gauge>::default();
    for (queue, size) in &jobs.queues {
        queues
            .get_or_create(&QueueLabels {
                queue: queue.clone(),
            })
            .set(count(*size));
    }
    registry.register("queue_size", "Jobs enqueued, by queue", queues);
    for (name, help, size) in [
        (
            "scheduled_set_size",
            "Jobs in the schedule set",
            jobs.scheduled.len(),
        ),
        (
            "retry_set_size",
            "Jobs in the retry set, waiting for their next attempt",
            jobs.retries.len(),
        ),
        ("dead_set_size", "Jobs in the dead set", jobs.dead.len()),
        (
            "busy_jobs",
            "Jobs running now, in every worker process on the backend",
            jobs.busy.len(),
        ),
    ] {
        registry.register(name, help, ConstGauge::new(count(size)));
    }
    registry.register(
        "backend_processed",
        "Sidekiq's stat:processed: job attempts finished by every worker process on the backend (cleared by a reset)",
        ConstCounter::new(jobs.processed),
    );
    registry.register(
        "backend_failed",
        "Sidekiq's stat:failed: failed job attempts of every worker process on the backend (cleared by a reset)",
        ConstCounter::new(jobs.failed),
    );
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
