//! `/`: the order count, the pipeline variant, what to click to see a double
//! charge, and a Service Status block each for the store, the queue backend
//! and the four fake services.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use fake_services::fault_rules::{BehaviorView, FaultView};
use fake_services::{rule_words, Operation, Route, Service};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::layout::{escape, page};
use super::pages::{html, json, wants_json};
use super::{Web, WebState};
use crate::pipeline::{ChargeDedup, Knobs, Structure};
use crate::runner::JobSet;

/// The fake services in the order the page shows them.
const SERVICES: [Service; 4] = [
    Service::ErrorCatcher,
    Service::Payments,
    Service::Fulfillment,
    Service::Email,
];

#[derive(Serialize)]
struct StoreStatus {
    ok: bool,
    dialect: &'static str,
    url: String,
    /// What a commit waits for (`synchronous_commit = off`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    commit_wait: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct QueueStatus {
    ok: bool,
    backend: &'static str,
    /// Queue name → size, in priority order.
    queues: Map<String, Value>,
    scheduled: usize,
    retries: usize,
    dead: usize,
    processed: u64,
    failed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct FakeStatus {
    /// Reachable, and no fault rule in force.
    ok: bool,
    reachable: bool,
    /// What `GET /{service}/status` answered.
    status: Option<Value>,
    /// The rules in force (not spent), as `GET /{service}/behavior` shows
    /// them, each with its words.
    faults: Vec<RuleStatus>,
    /// Rules that are used up (still listed by the service).
    spent_faults: Vec<RuleStatus>,
    search_lag_ms: u64,
    /// Why the service is 🛑 beyond its faults: unreachable, rules unreadable.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    manage_url: String,
    ledger_url: String,
    #[serde(skip)]
    title: &'static str,
}

/// A service's rule as the service shows it, and in the words its
/// behaviour page uses ([`rule_words::rule`]).
#[derive(Serialize)]
struct RuleStatus {
    /// Its number on the service (the order the rules are looked at).
    index: usize,
    #[serde(flatten)]
    rule: FaultView,
    words: String,
}

pub(super) async fn index(State(web): State<WebState>, headers: HeaderMap) -> Response {
    let store = &web.lab.shop.store;
    let (orders, store_status, queue_status, fakes) = tokio::join!(
        store.count_orders(),
        store_status(&web),
        queue_status(&web),
        fakes_status(&web)
    );
    let orders = orders.ok();
    let knobs = web.lab.shop.knobs;
    if wants_json(&headers) {
        let mut services = Map::new();
        services.insert("store".into(), to_value(&store_status));
        services.insert("queue".into(), to_value(&queue_status));
        for (service, status) in SERVICES.iter().zip(&fakes) {
            services.insert(service.name().into(), to_value(status));
        }
        return json(
            StatusCode::OK,
            json!({
                "orders": orders,
                "knobs": knobs,
                "unsafe_knobs": knobs.unsafe_knobs(),
                "services": services,
                "fakes_url": web.lab.fakes_url,
            }),
        );
    }
    let mut body = String::new();
    let _ = writeln!(
        body,
        "<p>{} · <a href=\"/orders/new\">Place an order</a> · <a href=\"/orders\">All orders</a> · \
         <a href=\"/jobs\">Jobs</a> · <a href=\"{}/\">The fake services' ledgers</a></p>",
        match orders {
            Some(1) => "1 order".to_string(),
            Some(n) => format!("{n} orders"),
            None => "orders: the database could not count them".to_string(),
        },
        escape(fakes_base(&web)),
    );
    body.push_str(&knobs_html(&knobs));
    body.push_str(&hint_html(&web, &knobs));
    body.push_str("<h2>Service Status</h2>\n<div class=\"services\">\n");
    body.push_str(&store_html(&store_status));
    body.push_str(&queue_html(&queue_status));
    for (service, status) in SERVICES.iter().zip(&fakes) {
        body.push_str(&fake_html(*service, status));
    }
    body.push_str("</div>\n");
    html(StatusCode::OK, page("idemlab", &body, false))
}

fn to_value(value: &impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn fakes_base(web: &Web) -> &str {
    web.lab.fakes_url.trim_end_matches('/')
}

async fn store_status(web: &Web) -> StoreStatus {
    let store = &web.lab.shop.store;
    // A round trip that also tells how durable a commit is.
    let (commit_wait, error) = match store.commit_wait().await {
        Ok(wait) => (Some(wait), None),
        Err(e) => (None, Some(e.to_string())),
    };
    StoreStatus {
        ok: error.is_none(),
        dialect: store.dialect().name(),
        url: store.url().to_string(),
        commit_wait,
        error,
    }
}

async fn queue_status(web: &Web) -> QueueStatus {
    let backend = web.lab.runner.backend();
    let (sizes, scheduled, retries, dead, stats) = tokio::join!(
        backend.queue_sizes(),
        backend.set_entries(JobSet::Schedule),
        backend.set_entries(JobSet::Retry),
        backend.set_entries(JobSet::Dead),
        backend.stats(),
    );
    let mut error = None;
    let mut note = |e: &dyn std::fmt::Display| {
        error.get_or_insert_with(|| e.to_string());
    };
    let sizes = sizes.unwrap_or_else(|e| {
        note(&e);
        Vec::new()
    });
    let mut count = |set: Result<Vec<_>, _>| {
        set.map(|entries| entries.len()).unwrap_or_else(|e| {
            note(&e);
            0
        })
    };
    let (scheduled, retries, dead) = (count(scheduled), count(retries), count(dead));
    let (processed, failed) = stats.unwrap_or_else(|e| {
        note(&e);
        (0, 0)
    });
    let mut queues = Map::new();
    for (name, size) in super::jobs::ordered_queues(web, sizes) {
        queues.insert(name, Value::from(size));
    }
    QueueStatus {
        ok: error.is_none(),
        backend: backend.name(),
        queues,
        scheduled,
        retries,
        dead,
        processed,
        failed,
        error,
    }
}

async fn fakes_status(web: &Web) -> Vec<FakeStatus> {
    let [a, b, c, d] = SERVICES;
    let (a, b, c, d) = tokio::join!(
        fake_status(web, a),
        fake_status(web, b),
        fake_status(web, c),
        fake_status(web, d)
    );
    vec![a, b, c, d]
}

/// `GET url` as JSON, with the control token when `control` is set; the
/// error says what went wrong in words for the page.
async fn get_json(web: &Web, url: &str, control: bool) -> Result<Value, String> {
    let mut request = web.http.get(url).header(header::ACCEPT, "application/json");
    if control {
        if let Some(token) = &web.options.control_token {
            request = request.bearer_auth(token);
        }
    }
    let response = request
        .send()
        .await
        .map_err(|err| format!("unreachable: {err}"))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        let body: String = body.chars().take(200).collect();
        return Err(format!("HTTP {status}: {body}"));
    }
    response
        .json::<Value>()
        .await
        .map_err(|err| format!("answered something that is not JSON: {err}"))
}

async fn fake_status(web: &Web, service: Service) -> FakeStatus {
    let base = fakes_base(web);
    let name = service.name();
    let status_url = format!("{base}{}", Route::of(service, Operation::Status).path);
    let behavior_url = format!("{base}/{name}/behavior");
    let (status, behavior) = tokio::join!(
        get_json(web, &status_url, false),
        get_json(web, &behavior_url, true)
    );
    let behavior = behavior.and_then(|value| {
        serde_json::from_value::<BehaviorView>(value)
            .map_err(|err| format!("answered rules this lab does not understand: {err}"))
    });
    let mut fake = FakeStatus {
        ok: false,
        reachable: status.is_ok(),
        status: None,
        faults: Vec::new(),
        spent_faults: Vec::new(),
        search_lag_ms: 0,
        error: None,
        manage_url: behavior_url,
        ledger_url: format!("{base}/{name}/ui"),
        title: service.title(),
    };
    match status {
        Ok(value) => fake.status = Some(value),
        Err(err) => fake.error = Some(err),
    }
    match behavior {
        Ok(view) => {
            let (spent, live): (Vec<RuleStatus>, Vec<RuleStatus>) = view
                .faults
                .into_iter()
                .enumerate()
                .map(|(index, rule)| RuleStatus {
                    index,
                    words: rule_words::rule(service, &rule),
                    rule,
                })
                .partition(|rule| rule.rule.state.spent);
            fake.faults = live;
            fake.spent_faults = spent;
            fake.search_lag_ms = view.search_lag_ms;
        }
        Err(err) if fake.error.is_none() => {
            fake.error = Some(format!("could not read the fault rules: {err}"));
        }
        Err(_) => {}
    }
    fake.ok =
        fake.reachable && fake.error.is_none() && fake.faults.is_empty() && fake.search_lag_ms == 0;
    fake
}

fn badge(ok: bool) -> &'static str {
    if ok {
        "✅"
    } else {
        "🛑"
    }
}

fn store_html(status: &StoreStatus) -> String {
    let mut out = format!(
        "<div class=\"service\" id=\"status-store\"><h3>{} Store</h3>\n<p>{} at <code>{}</code>: {}</p>\n",
        badge(status.ok),
        escape(status.dialect),
        escape(&status.url),
        if status.ok { "reachable" } else { "not reachable" },
    );
    if let Some(wait) = &status.commit_wait {
        let _ = writeln!(out, "<p>commits: <code>{}</code></p>", escape(wait));
    }
    if let Some(err) = &status.error {
        let _ = writeln!(out, "<p class=\"bad\">{}</p>", escape(err));
    }
    out.push_str("</div>\n");
    out
}

fn queue_html(status: &QueueStatus) -> String {
    let sizes: Vec<String> = status
        .queues
        .iter()
        .map(|(name, size)| format!("{} {}", escape(name), size))
        .collect();
    let mut out = format!(
        "<div class=\"service\" id=\"status-queue\"><h3>{} Queue backend</h3>\n\
         <p>{} · queues: {} · scheduled {} · retries {} · dead {}</p>\n\
         <p>processed {} · failed {} · <a href=\"/jobs\">Jobs…</a></p>\n",
        badge(status.ok),
        escape(status.backend),
        if sizes.is_empty() {
            "all empty".to_string()
        } else {
            sizes.join(", ")
        },
        status.scheduled,
        status.retries,
        status.dead,
        status.processed,
        status.failed,
    );
    if let Some(err) = &status.error {
        let _ = writeln!(out, "<p class=\"bad\">{}</p>", escape(err));
    }
    out.push_str("</div>\n");
    out
}

fn fake_html(service: Service, status: &FakeStatus) -> String {
    let mut out = format!(
        "<div class=\"service\" id=\"status-{}\"><h3>{} {}</h3>\n",
        service.name(),
        badge(status.ok),
        escape(status.title),
    );
    if let Some(err) = &status.error {
        let _ = writeln!(out, "<p class=\"bad\">{}</p>", escape(err));
    } else if status.reachable {
        out.push_str("<p>reachable</p>\n");
    }
    if status.faults.is_empty() {
        out.push_str("<p>No fault rules in force.</p>\n");
    } else {
        out.push_str("<p class=\"bad\">Fault rules in force:</p>\n");
        out.push_str(&rules_html(&status.faults, ""));
    }
    if status.search_lag_ms > 0 {
        let _ = writeln!(
            out,
            "<p class=\"bad\">Search lag: {} ms</p>",
            status.search_lag_ms
        );
    }
    if !status.spent_faults.is_empty() {
        out.push_str("<p>Spent rules (still listed by the service):</p>\n");
        out.push_str(&rules_html(&status.spent_faults, " class=\"spent\""));
    }
    let _ = writeln!(
        out,
        "<p><a href=\"{}\">Manage…</a> · <a href=\"{}\">Ledger</a></p>\n</div>",
        escape(&status.manage_url),
        escape(&status.ledger_url),
    );
    out
}

/// Rules as a list, each with its number on the service and its words.
fn rules_html(rules: &[RuleStatus], class: &str) -> String {
    let mut out = String::from("<ul>\n");
    for rule in rules {
        let _ = writeln!(
            out,
            "<li{class}>rule {}: {}</li>",
            rule.index,
            escape(&rule.words)
        );
    }
    out.push_str("</ul>\n");
    out
}

fn knobs_html(knobs: &Knobs) -> String {
    let unsafe_names: Vec<String> = knobs
        .unsafe_knobs()
        .into_iter()
        .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.to_string()))
        .collect();
    let mut out = format!(
        "<h2>Pipeline variant: {}</h2>\n<table id=\"knobs\"><tr><th>knob</th><th>value</th></tr>\n",
        escape(&knobs.to_string())
    );
    if let Value::Object(map) = to_value(knobs) {
        for (name, value) in map {
            let bad = unsafe_names.contains(&name);
            let _ = writeln!(
                out,
                "<tr{}><td>{}</td><td>{}{}</td></tr>",
                if bad { " class=\"unsafe\"" } else { "" },
                escape(&name),
                escape(value.as_str().unwrap_or_default()),
                if bad { " ⚠️ unsafe" } else { "" },
            );
        }
    }
    out.push_str("</table>\n");
    out
}

/// What to click to see a double charge in this variant.
fn hint_html(web: &Web, knobs: &Knobs) -> String {
    let base = escape(fakes_base(web));
    let payments = format!("<a href=\"{base}/payments/behavior\">Payments → Manage…</a>");
    let email = format!("<a href=\"{base}/email/behavior\">Email → Manage…</a>");
    let ledger = format!("<a href=\"{base}/payments/ui\">the Payments ledger</a>");
    let text = match (knobs.charge, knobs.structure) {
        (ChargeDedup::None, Structure::Monolithic) => format!(
            "In {email}, add a <code>crash</code> rule with <code>calls</code> 1. \
             <a href=\"/orders/new\">Place an order</a>. The one job charges, fails on the email \
             and is retried; the retry charges again: {ledger} marks the order in red."
        ),
        (ChargeDedup::None, Structure::Chained) => format!(
            "In {payments}, add a <code>send-then-crash</code> rule with <code>calls</code> 1. \
             <a href=\"/orders/new\">Place an order</a>. The charge happens but the job is told 503, \
             so its retry charges again: {ledger} marks the order in red."
        ),
        (ChargeDedup::Search, _) => format!(
            "Charges are deduplicated by searching the provider, which search lag fools. \
             In {payments}, set <code>search_lag_ms</code> to 60000 and add a \
             <code>send-then-crash</code> rule with <code>calls</code> 1, then \
             <a href=\"/orders/new\">place an order</a>: the retry finds nothing and charges again \
             ({ledger})."
        ),
        (ChargeDedup::IdempotencyKey, _) => format!(
            "This pipeline sends an idempotency key with each charge, so a retried charge is \
             replayed, never repeated: try a <code>send-then-crash</code> rule in {payments} and \
             see one charge per order in {ledger}. To see a double charge, restart with \
             <code>lab serve --structure monolithic --charge none</code> and make the email crash once."
        ),
    };
    format!("<div class=\"hint\" id=\"hint\"><strong>How to see a double charge:</strong> {text}</div>\n")
}
