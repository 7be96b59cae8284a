//! Server-rendered HTML: the index, a ledger page per service ("NONE YET"
//! when empty, as in the book server, plus what the client was told and which
//! orders have more than one effect), and the shell and helpers the
//! behaviour page shares. No JavaScript: every page works from plain forms.
//! A client that prefers JSON (`Accept: application/json`, no `text/html`)
//! gets the same facts as JSON from the same address.

use std::fmt::Write;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{token_for_links, ApiError, AppState, ServiceSegment};
use crate::books::{Cursor, Filter, Page};
use crate::ledger::{scalar_to_string, Record};
use crate::negotiation::Accept;
use crate::service::Service;
use crate::style::{self, Shell};

/// Records on a ledger page unless `limit` says otherwise.
const PAGE_RECORDS: usize = 50;
/// Orders named in a page's duplicate warning; the rest are counted.
const DUPLICATES_NAMED: usize = 20;

pub(super) use crate::style::escape;

/// Percent-encodes a query parameter value.
pub(super) fn url_encode(text: &str) -> String {
    serde_urlencoded::to_string([("", text)])
        .map(|s| s.trim_start_matches('=').to_string())
        .unwrap_or_default()
}

/// A page in the shell every page shares ([`crate::style`]), with these
/// services' navigation: the index and each service's ledger.
pub(super) fn page(title: &str, body: &str, token: Option<&str>) -> String {
    let mut nav = vec![(with_token("/", token), "idemlab fake services")];
    for service in Service::ALL {
        nav.push((
            with_token(&format!("/{}/ui", service.name()), token),
            service.title(),
        ));
    }
    style::page(
        &Shell {
            head_title: &format!("{title} · idemlab fake services"),
            title,
            nav: &nav,
            refresh: false,
        },
        body,
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
pub(super) fn token_field(app: &AppState, token: Option<&str>) -> String {
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

/// `GET /`: each service's ledger size and whether faults are in force,
/// with its pages; as JSON, `{"services": [{"service", "title", "records",
/// "dropped_records", "faults_in_force", "links"}]}`.
pub(super) async fn index(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if Accept::of(&headers).prefers_json() {
        let services: Vec<Value> = Service::ALL
            .into_iter()
            .map(|service| {
                let (records, dropped) = app.fakes.ledger_size(service);
                let n = service.name();
                json!({
                    "service": n,
                    "title": service.title(),
                    "records": records,
                    "dropped_records": dropped,
                    "faults_in_force": app.fakes.has_active_faults(service),
                    "links": {
                        "page": format!("/{n}/ui"),
                        "ledger": format!("/{n}/ledger"),
                        "behavior": format!("/{n}/behavior"),
                    },
                })
            })
            .collect();
        return Json(json!({ "services": services })).into_response();
    }
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
    Html(page("Fake services", &body, token.as_deref())).into_response()
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
    headers: HeaderMap,
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
    let marked = |record: &Record| {
        record.is_success()
            && record
                .order_id()
                .is_some_and(|o| app.fakes.successes_for(service, &o) > 1)
    };
    if Accept::of(&headers).prefers_json() {
        // The page's list (as `/{service}/ledger` pages it), each record
        // with the page's mark, and the counts above the table.
        let mut body = crate::providers::list_body(shown, |r| {
            let mut value = serde_json::to_value(r).unwrap_or(Value::Null);
            if let Some(map) = value.as_object_mut() {
                map.insert("duplicate".into(), json!(marked(r)));
            }
            value
        });
        if let Some(map) = body.as_object_mut() {
            map.insert("records".into(), json!(kept));
            map.insert("dropped_records".into(), json!(dropped));
            map.insert("duplicated_orders".into(), json!(duplicated));
            let named: Vec<Value> = named
                .iter()
                .map(|(order, n)| json!({"order_id": order, "effects": n}))
                .collect();
            map.insert("duplicates".into(), Value::from(named));
        }
        return Ok(Json(body).into_response());
    }
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
        body.push_str(if marked(record) {
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
    Ok(Html(page(service.title(), &body, token.as_deref())).into_response())
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
