//! `/jobs`, like Sidekiq's web UI: processed and failed counts, queues,
//! busy jobs, the scheduled, retry and dead sets (with "Retry now" and
//! "Delete"), and the process set.

use std::fmt::Write as _;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{json, Value};

use super::layout::{escape, json_cell, page, path_segment, post_button, when};
use super::pages::{html, internal, json, not_found, wants_json};
use super::{Web, WebState};
use crate::runner::backend::{BusyJob, ProcessInfo, SetEntry};
use crate::runner::{BackendError, JobSet};

/// The set named in a URL: `retry` (or `retries`), `dead`, `schedule` (or
/// `scheduled`).
fn parse_set(name: &str) -> Option<JobSet> {
    match name {
        "retry" | "retries" => Some(JobSet::Retry),
        "dead" => Some(JobSet::Dead),
        "schedule" | "scheduled" => Some(JobSet::Schedule),
        _ => None,
    }
}

/// Queue sizes in the runner's priority order, then any other queue by name.
pub(super) fn ordered_queues(web: &Web, mut sizes: Vec<(String, usize)>) -> Vec<(String, usize)> {
    let priority = &web.lab.runner.config().queues;
    let rank = |name: &str| {
        priority
            .iter()
            .position(|q| q == name)
            .unwrap_or(priority.len())
    };
    for queue in priority {
        if !sizes.iter().any(|(name, _)| name == queue) {
            sizes.push((queue.clone(), 0));
        }
    }
    sizes.sort_by(|a, b| rank(&a.0).cmp(&rank(&b.0)).then_with(|| a.0.cmp(&b.0)));
    sizes
}

/// Everything `/jobs` shows (and `/metrics` counts).
pub(super) struct Snapshot {
    pub now_ms: u64,
    pub processed: u64,
    pub failed: u64,
    pub queues: Vec<(String, usize)>,
    pub busy: Vec<BusyJob>,
    pub scheduled: Vec<SetEntry>,
    pub retries: Vec<SetEntry>,
    pub dead: Vec<SetEntry>,
    pub processes: Vec<ProcessInfo>,
}

pub(super) async fn snapshot(web: &Web) -> Result<Snapshot, BackendError> {
    let backend = web.lab.runner.backend();
    let (processed, failed) = backend.stats().await?;
    let queues = ordered_queues(web, backend.queue_sizes().await?);
    let mut busy = backend.busy().await?;
    busy.sort_by_key(|b| b.started_at_ms);
    let mut dead = backend.set_entries(JobSet::Dead).await?;
    // Sidekiq lists the most recent deaths first.
    dead.reverse();
    let mut processes = backend.processes().await?;
    processes.sort_by(|a, b| a.identity.cmp(&b.identity));
    Ok(Snapshot {
        now_ms: web.lab.shop.clock.now_ms(),
        processed,
        failed,
        queues,
        busy,
        scheduled: backend.set_entries(JobSet::Schedule).await?,
        retries: backend.set_entries(JobSet::Retry).await?,
        dead,
        processes,
    })
}

/// A set entry as JSON: the job's Sidekiq fields plus `at_ms` (when it is
/// due, or when it died).
pub(super) fn entry_json(entry: &SetEntry) -> Value {
    let mut value = serde_json::to_value(&entry.job).unwrap_or(Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.insert("at_ms".into(), Value::from(entry.at_ms));
    }
    value
}

fn snapshot_json(s: &Snapshot) -> Value {
    let queues: Vec<Value> = s
        .queues
        .iter()
        .map(|(name, size)| json!({"name": name, "size": size}))
        .collect();
    json!({
        "now_ms": s.now_ms,
        "processed": s.processed,
        "failed": s.failed,
        "queues": queues,
        "busy": s.busy,
        "scheduled": s.scheduled.iter().map(entry_json).collect::<Vec<_>>(),
        "retries": s.retries.iter().map(entry_json).collect::<Vec<_>>(),
        "dead": s.dead.iter().map(entry_json).collect::<Vec<_>>(),
        "processes": s.processes,
    })
}

pub(super) async fn index(State(web): State<WebState>, headers: HeaderMap) -> Response {
    let snapshot = match snapshot(&web).await {
        Ok(s) => s,
        Err(err) => return internal(&headers, "the queue backend failed", &err),
    };
    if wants_json(&headers) {
        return json(StatusCode::OK, snapshot_json(&snapshot));
    }
    html(
        StatusCode::OK,
        page("Jobs", &snapshot_html(&snapshot), false),
    )
}

fn snapshot_html(s: &Snapshot) -> String {
    let mut out = format!(
        "<p id=\"stats\">Processed: <strong>{}</strong> · Failed: <strong>{}</strong> · \
         Busy: <strong>{}</strong> · Scheduled: <strong>{}</strong> · Retries: <strong>{}</strong> · \
         Dead: <strong>{}</strong></p>\n",
        s.processed,
        s.failed,
        s.busy.len(),
        s.scheduled.len(),
        s.retries.len(),
        s.dead.len(),
    );
    out.push_str("<h2>Queues</h2>\n<table id=\"queues\"><tr><th>queue</th><th>size</th></tr>\n");
    for (name, size) in &s.queues {
        let _ = writeln!(out, "<tr><td>{}</td><td>{size}</td></tr>", escape(name));
    }
    out.push_str("</table>\n");

    out.push_str("<h2>Busy</h2>\n");
    if s.busy.is_empty() {
        out.push_str("<p>No jobs running.</p>\n");
    } else {
        out.push_str(
            "<table id=\"busy\"><tr><th>process</th><th>jid</th><th>queue</th><th>class</th>\
             <th>args</th><th>started</th></tr>\n",
        );
        for b in &s.busy {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&b.process),
                escape(&b.job.jid),
                escape(&b.job.queue),
                escape(&b.job.class),
                json_cell(&Value::from(b.job.args.clone())),
                when(b.started_at_ms, s.now_ms),
            );
        }
        out.push_str("</table>\n");
    }

    set_html(&mut out, "Scheduled", "schedule", &s.scheduled, s.now_ms);
    set_html(&mut out, "Retries", "retry", &s.retries, s.now_ms);
    set_html(&mut out, "Dead", "dead", &s.dead, s.now_ms);

    out.push_str("<h2>Processes</h2>\n");
    if s.processes.is_empty() {
        out.push_str("<p>No worker processes.</p>\n");
    } else {
        out.push_str(
            "<table id=\"processes\"><tr><th>identity</th><th>code version</th><th>queues</th>\
             <th>concurrency</th><th>busy</th><th>started</th><th>last heartbeat</th></tr>\n",
        );
        for p in &s.processes {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&p.identity),
                escape(&p.code_version),
                escape(&p.queues.join(", ")),
                p.concurrency,
                p.busy,
                when(p.started_at_ms, s.now_ms),
                when(p.beat_ms, s.now_ms),
            );
        }
        out.push_str("</table>\n");
    }
    out
}

/// One sorted set as a table with its buttons.
fn set_html(out: &mut String, title: &str, set: &str, entries: &[SetEntry], now_ms: u64) {
    let _ = writeln!(out, "<h2>{title}</h2>");
    if entries.is_empty() {
        let _ = writeln!(out, "<p>No {} jobs.</p>", title.to_lowercase());
        return;
    }
    let at_label = match set {
        "dead" => "died",
        "retry" => "next attempt",
        _ => "due",
    };
    let _ = writeln!(
        out,
        "<table id=\"{set}\"><tr><th>{at_label}</th><th>jid</th><th>queue</th><th>class</th>\
         <th>args</th><th>retry count</th><th>error</th><th></th></tr>"
    );
    for entry in entries {
        let job = &entry.job;
        let error = match (&job.error_class, &job.error_message) {
            (None, None) => String::new(),
            (class, message) => format!(
                "<strong>{}</strong>: {}",
                escape(class.as_deref().unwrap_or("")),
                escape(message.as_deref().unwrap_or(""))
            ),
        };
        let base = format!("/jobs/{set}/{}", path_segment(&job.jid));
        let retry_label = if set == "schedule" {
            "Add to queue"
        } else {
            "Retry now"
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{error}</td><td>{}{}</td></tr>",
            when(entry.at_ms, now_ms),
            escape(&job.jid),
            escape(&job.queue),
            escape(&job.class),
            json_cell(&Value::from(job.args.clone())),
            job.retry_count.map(|c| c.to_string()).unwrap_or_default(),
            post_button(&format!("{base}/retry"), retry_label),
            post_button(&format!("{base}/delete"), "Delete"),
        );
    }
    out.push_str("</table>\n");
}

/// "Retry now": moves a job from a set to its queue.
pub(super) async fn retry(
    State(web): State<WebState>,
    Path((set, jid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    act(&web, &set, &jid, &headers, true).await
}

/// "Delete": removes a job from a set.
pub(super) async fn delete(
    State(web): State<WebState>,
    Path((set, jid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    act(&web, &set, &jid, &headers, false).await
}

async fn act(web: &Web, set: &str, jid: &str, headers: &HeaderMap, requeue: bool) -> Response {
    let Some(job_set) = parse_set(set) else {
        return not_found(headers, &format!("job set {set:?}"));
    };
    let backend = web.lab.runner.backend();
    let done = if requeue {
        let now = web.lab.shop.clock.now_ms();
        backend.requeue_from_set(job_set, jid, now).await
    } else {
        backend.delete_from_set(job_set, jid).await
    };
    match done {
        Ok(true) => Redirect::to("/jobs").into_response(),
        Ok(false) => not_found(headers, &format!("job {jid} in the {set} set")),
        Err(err) => internal(headers, "the queue backend failed", &err),
    }
}
