//! Server-rendered HTML: the index, a ledger page per service ("NONE YET"
//! when empty, as in the book server, plus what the client was told and which
//! orders have more than one effect), and the "Make it behave badly" form.
//! No JavaScript: every page works from a plain form.

use std::fmt::Write;

use axum::extract::{RawQuery, State};
use axum::response::{Html, IntoResponse, Response};

use super::{token_for_links, ApiError, AppState, ServiceSegment};
use crate::books::{Cursor, Filter, Page};
use crate::fault_rules::{InvalidBehavior, Mode};
use crate::ledger::{scalar_to_string, Record};
use crate::service::Service;

/// Records on a ledger page unless `limit` says otherwise.
const PAGE_RECORDS: usize = 50;
/// Orders named in a page's duplicate warning; the rest are counted.
const DUPLICATES_NAMED: usize = 20;

const STYLE: &str = "
body { font-family: system-ui, helvetica, sans-serif; color: #222; margin: 1.5rem; }
h1 { font-weight: 500; letter-spacing: 1px; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: solid thin #888; padding: .35rem .6rem; text-align: left; vertical-align: top; }
th { background: #e8e8e8; font-weight: 500; }
tr.dup td { background: #ffe3e3; }
tr.spent td { color: #888; }
.warn { background: #fff3cd; border: solid thin #e0b000; padding: .6rem; }
.error { background: #ffe3e3; border: solid thin #c00; padding: .6rem; }
code, .mono { font-family: ui-monospace, monospace; font-size: 90%; }
fieldset { margin: .6rem 0; }
label { margin-right: .8rem; }
fieldset input:not([type]) { width: 6rem; }
";

/// Escapes text for HTML element content and quoted attribute values.
pub(super) fn escape(text: &str) -> String {
    html_escape::encode_quoted_attribute(text).into_owned()
}

/// Percent-encodes a query parameter value.
pub(super) fn url_encode(text: &str) -> String {
    serde_urlencoded::to_string([("", text)])
        .map(|s| s.trim_start_matches('=').to_string())
        .unwrap_or_default()
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title><style>{STYLE}</style></head>\n<body><main>\n<p><a href=\"/\">idemlab fake services</a></p>\n<h1>{t}</h1>\n{body}\n</main></body></html>\n",
        t = escape(title)
    )
}

/// `path` with `?token=…` added when there is a token to carry.
pub(super) fn with_token(path: &str, token: Option<&str>) -> String {
    match token {
        Some(token) => format!("{path}?token={}", url_encode(token)),
        None => path.to_string(),
    }
}

/// A hidden form field carrying the token, or a field to type it in when the
/// server wants one and the page was not given it.
fn token_field(app: &AppState, token: Option<&str>) -> String {
    match token {
        Some(token) => format!(
            "<input type=\"hidden\" name=\"token\" value=\"{}\">",
            escape(token)
        ),
        None if app.control_token.is_some() => {
            "<label>control token <input type=\"password\" name=\"token\"></label> ".to_string()
        }
        None => String::new(),
    }
}

pub(super) async fn index(State(app): State<AppState>, RawQuery(query): RawQuery) -> Html<String> {
    let token = token_for_links(&app, query.as_deref());
    let mut body = String::from(
        "<table><thead><tr><th>Service</th><th>Records</th><th>Faults</th><th></th></tr></thead><tbody>\n",
    );
    for service in Service::ALL {
        let (records, _) = app.fakes.ledger_size(service);
        let faulty = app.fakes.has_active_faults(service);
        let _ = writeln!(
            body,
            "<tr><td><a href=\"{ui}\">{title}</a></td><td>{records}</td><td>{state}</td><td><a href=\"{behavior}\">Make it behave badly…</a></td></tr>",
            ui = escape(&with_token(&format!("/{}/ui", service.name()), token.as_deref())),
            behavior = escape(&with_token(&format!("/{}/behavior", service.name()), token.as_deref())),
            title = service.title(),
            state = if faulty { "🛑 faults in force" } else { "✅ none" },
        );
    }
    let _ = writeln!(
        body,
        "</tbody></table>\n<form method=\"post\" action=\"/reset\">{}<button>Reset every ledger and behaviour</button></form>",
        token_field(&app, token.as_deref())
    );
    Html(page("Fake services", &body))
}

/// A ledger table's column: its header, and how to read its cell.
type Column = (&'static str, fn(&Record) -> String);

fn columns(service: Service) -> Vec<Column> {
    fn field(record: &Record, pointer: &str) -> String {
        record
            .request
            .pointer(pointer)
            .map(|v| scalar_to_string(v).unwrap_or_else(|| v.to_string()))
            .unwrap_or_default()
    }
    match service {
        Service::Payments => vec![
            ("Charge", |r| r.id.clone()),
            ("Customer", |r| field(r, "/customer_id")),
            ("Amount (cents)", |r| field(r, "/amount_cents")),
            ("Status", |r| {
                r.response
                    .get("status")
                    .and_then(scalar_to_string)
                    .unwrap_or_default()
            }),
            ("Metadata", |r| field(r, "/metadata")),
        ],
        Service::Email => vec![
            ("Email", |r| r.id.clone()),
            ("To", |r| field(r, "/to")),
            ("Template", |r| field(r, "/template_id")),
            ("Template data", |r| field(r, "/template_data")),
        ],
        Service::Fulfillment => vec![
            ("Request", |r| r.id.clone()),
            ("Customer", |r| field(r, "/customer_id")),
            ("Address", |r| field(r, "/address")),
            ("Product", |r| field(r, "/product_id")),
            ("Quantity", |r| field(r, "/quantity")),
            ("Metadata", |r| field(r, "/metadata")),
        ],
        Service::ErrorCatcher => vec![
            ("Notification", |r| r.id.clone()),
            ("Exception", |r| field(r, "/exception_class")),
            ("Message", |r| field(r, "/exception_message")),
        ],
    }
}

/// `GET /{service}/ui`: the newest page of the ledger (or the page a
/// `starting_after` / `ending_before` cursor names), with links to older
/// and newer pages. What it costs does not grow with the ledger: a page of
/// records, the duplicate counts kept as records were added.
pub(super) async fn ledger_page(
    State(app): State<AppState>,
    ServiceSegment(service): ServiceSegment,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let token = token_for_links(&app, query.as_deref());
    let params = super::api::query_object(RawQuery(query.clone()));
    let (cursor, limit) = match crate::providers::paging(&params).map_err(super::list_error)? {
        Some((cursor, limit)) if params.get("limit").is_some() => (cursor, limit),
        Some((cursor, _)) => (cursor, PAGE_RECORDS),
        None => (Cursor::Newest, PAGE_RECORDS),
    };
    let shown = app
        .fakes
        .ledger_page(service, &Filter::All, &cursor, limit)
        .map_err(|e| super::list_error(crate::providers::unknown_cursor(service, e)))?;
    let (kept, dropped) = app.fakes.ledger_size(service);
    let (duplicated, named) = app.fakes.duplicated_orders(service, DUPLICATES_NAMED);
    let mut body = String::new();
    let _ = write!(body, "<p>{kept} record(s)");
    if dropped > 0 {
        let _ = write!(
            body,
            "; the {dropped} oldest were dropped (<code>--keep</code>), and the duplicate counts still count them"
        );
    }
    body.push_str(".</p>\n");
    if duplicated > 0 {
        body.push_str("<p class=\"warn\">⚠ More than one effect for ");
        let mut list: Vec<String> = named
            .iter()
            .map(|(order, n)| format!("order {} ({n}×)", escape(order)))
            .collect();
        if duplicated > named.len() {
            list.push(format!("and {} more order(s)", duplicated - named.len()));
        }
        body.push_str(&list.join(", "));
        body.push_str("</p>\n");
    }
    let columns = columns(service);
    body.push_str("<table><thead><tr>");
    for (title, _) in &columns {
        let _ = write!(body, "<th>{title}</th>");
    }
    body.push_str(
        "<th>Idempotency-Key</th><th>Client was told</th><th>Time</th></tr></thead><tbody>\n",
    );
    if shown.records.is_empty() {
        let _ = writeln!(
            body,
            "<tr><td colspan=\"{}\">NONE YET</td></tr>",
            columns.len() + 3
        );
    }
    for record in &shown.records {
        let duplicated = record.is_success()
            && record
                .order_id()
                .is_some_and(|o| app.fakes.successes_for(service, &o) > 1);
        body.push_str(if duplicated {
            "<tr class=\"dup\">"
        } else {
            "<tr>"
        });
        for (_, read) in &columns {
            let _ = write!(body, "<td class=\"mono\">{}</td>", escape(&read(record)));
        }
        let _ = writeln!(
            body,
            "<td class=\"mono\">{}</td><td>{}</td><td>{}</td></tr>",
            escape(record.idempotency_key.as_deref().unwrap_or("")),
            escape(&record.told.describe()),
            escape(&record.created_at()),
        );
    }
    body.push_str("</tbody></table>\n");
    body.push_str(&page_links(
        &app,
        service,
        &cursor,
        &shown,
        limit,
        token.as_deref(),
    ));
    let _ = write!(
        body,
        "<p><a href=\"{behavior}\">Make it behave badly…</a> · <a href=\"/{n}/ledger\">ledger as JSON</a></p>",
        n = service.name(),
        behavior = escape(&with_token(&format!("/{}/behavior", service.name()), token.as_deref())),
    );
    Ok(Html(page(service.title(), &body)).into_response())
}

/// "Newest · ← Newer · Older →", each where there is such a page.
fn page_links(
    app: &AppState,
    service: Service,
    cursor: &Cursor,
    shown: &Page,
    limit: usize,
    token: Option<&str>,
) -> String {
    let (Some(newest), Some(oldest)) = (shown.records.first(), shown.records.last()) else {
        return String::new();
    };
    // Whether a record lies beyond `cursor`: a page of one.
    let exists = |beyond: Cursor| {
        app.fakes
            .ledger_page(service, &Filter::All, &beyond, 1)
            .is_ok_and(|p| !p.records.is_empty())
    };
    let (newer, older) = match cursor {
        Cursor::Newest => (false, shown.has_more),
        Cursor::StartingAfter(_) => (
            exists(Cursor::EndingBefore(newest.id.clone())),
            shown.has_more,
        ),
        Cursor::EndingBefore(_) => (
            shown.has_more,
            exists(Cursor::StartingAfter(oldest.id.clone())),
        ),
    };
    let link = |param: &str, id: &str| {
        let mut query = format!("{param}={}", url_encode(id));
        if limit != PAGE_RECORDS {
            let _ = write!(query, "&limit={limit}");
        }
        if let Some(token) = token {
            let _ = write!(query, "&token={}", url_encode(token));
        }
        escape(&format!("/{}/ui?{query}", service.name()))
    };
    let mut links = Vec::new();
    if newer {
        links.push(format!(
            "<a href=\"{}\">Newest</a>",
            escape(&with_token(&format!("/{}/ui", service.name()), token))
        ));
        links.push(format!(
            "<a href=\"{}\" rel=\"prev\">← Newer</a>",
            link("ending_before", &newest.id)
        ));
    }
    if older {
        links.push(format!(
            "<a href=\"{}\" rel=\"next\">Older →</a>",
            link("starting_after", &oldest.id)
        ));
    }
    if links.is_empty() {
        return String::new();
    }
    format!("<p class=\"pages\">{}</p>\n", links.join(" · "))
}

/// The behaviour form: one fieldset per rule in force (with its state), one
/// blank fieldset to add a rule, and the search lag.
pub(super) fn behavior_page(
    app: &AppState,
    service: Service,
    token: Option<&str>,
    problem: Option<&InvalidBehavior>,
) -> String {
    let view = app.fakes.behavior(service);
    let n = service.name();
    let mut body = String::new();
    if let Some(err) = problem {
        let _ = writeln!(
            body,
            "<p class=\"error\">Not saved: <code>{}</code>: {}</p>",
            escape(&err.field),
            escape(&err.error)
        );
    }
    let _ = writeln!(
        body,
        "<p>Rules are looked at in order for each <code>{}</code> or <code>search</code> call; the first that applies decides (a <code>slow</code> rule adds latency and lets the next decide). Saving replaces every rule and restarts its counters.</p>",
        service.effect_name()
    );
    let _ = writeln!(body, "<form method=\"post\" action=\"/{n}/behavior\">");
    body.push_str(&token_field(app, token));
    let blank = crate::fault_rules::FaultView {
        spec: crate::fault_rules::FaultSpec::new(Mode::Crash),
        state: crate::fault_rules::FaultState {
            hits: 0,
            remaining_calls: None,
            expires_at_ms: None,
            seed: None,
            spent: false,
        },
    };
    let rows = view.faults.iter().map(Some).chain([None]);
    for (i, rule) in rows.enumerate() {
        let spec = rule.map_or(&blank.spec, |r| &r.spec);
        let legend = match rule {
            Some(r) => format!(
                "Rule {i}: {} — applied {} time(s){}",
                spec.mode.name(),
                r.state.hits,
                if r.state.spent { ", spent" } else { "" }
            ),
            None => "Add a rule".to_string(),
        };
        let _ = writeln!(body, "<fieldset><legend>{}</legend>", escape(&legend));
        let _ = write!(body, "<label>mode <select name=\"mode_{i}\">");
        if rule.is_none() {
            body.push_str("<option value=\"\" selected>(none)</option>");
        }
        for mode in Mode::ALL {
            let selected = rule.is_some() && spec.mode == mode;
            let _ = write!(
                body,
                "<option value=\"{m}\"{s}>{m}</option>",
                m = mode.name(),
                s = if selected { " selected" } else { "" }
            );
        }
        body.push_str("</select></label>\n");
        let numbers: [(&str, Option<String>); 7] = [
            ("calls", spec.calls.map(|v| v.to_string())),
            ("probability", spec.probability.map(|v| v.to_string())),
            // The seed in use, also when the server chose it: saving the form
            // again keeps the rule reproducible.
            (
                "seed",
                spec.seed
                    .or(rule.and_then(|r| r.state.seed))
                    .map(|v| v.to_string()),
            ),
            ("for_ms", spec.for_ms.map(|v| v.to_string())),
            ("sleep_ms", spec.sleep_ms.map(|v| v.to_string())),
            ("status", spec.status.map(|v| v.to_string())),
            ("retry_after_s", spec.retry_after_s.map(|v| v.to_string())),
        ];
        for (name, value) in numbers {
            let _ = write!(
                body,
                "<label>{name} <input name=\"{name}_{i}\" value=\"{}\" inputmode=\"decimal\"></label>",
                escape(value.as_deref().unwrap_or(""))
            );
        }
        body.push_str("<br>operations: ");
        for op in service.faultable_operations() {
            let checked = spec
                .operations
                .as_ref()
                .is_none_or(|ops| ops.iter().any(|o| o == op));
            let _ = write!(
                body,
                "<label><input type=\"checkbox\" name=\"operations_{i}\" value=\"{op}\"{}> {op}</label>",
                if checked { " checked" } else { "" }
            );
        }
        if rule.is_some() {
            let _ = write!(
                body,
                "<label><input type=\"checkbox\" name=\"remove_{i}\" value=\"1\"> remove</label>"
            );
        }
        body.push_str("</fieldset>\n");
    }
    let _ = writeln!(
        body,
        "<p><label>search lag (ms) <input name=\"search_lag_ms\" value=\"{}\" inputmode=\"numeric\"></label></p>",
        view.search_lag_ms
    );
    body.push_str("<button>Save</button></form>\n");
    let _ = writeln!(
        body,
        "<form method=\"post\" action=\"/{n}/behavior\">{}<input type=\"hidden\" name=\"search_lag_ms\" value=\"0\"><button>Behave well again (clear every rule)</button></form>",
        token_field(app, token)
    );
    let _ = writeln!(
        body,
        "<p><a href=\"{}\">{} ledger</a></p>",
        escape(&with_token(&format!("/{n}/ui"), token)),
        service.title()
    );
    page(
        &format!("{} — make it behave badly", service.title()),
        &body,
    )
}
