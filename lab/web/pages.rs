//! Answering in HTML or JSON, and the error pages (404, 500) in both.

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use fake_services::negotiation::Accept;
use serde_json::{json, Value};

use super::layout::{escape, page};

/// Whether the client prefers JSON: its `Accept` names `application/json`
/// and not `text/html` ([`Accept::prefers_json`], read as the fake services
/// read it).
pub fn wants_json(headers: &HeaderMap) -> bool {
    Accept::of(headers).prefers_json()
}

/// An HTML page with a status.
pub fn html(status: StatusCode, body: String) -> Response {
    (status, Html(body)).into_response()
}

/// A JSON answer with a status.
pub fn json(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// An error in the client's format: `{"error": message}` (plus `extra`
/// keys) for JSON, else a page titled `title` that says `message` and
/// offers `links_html`.
pub fn error(
    headers: &HeaderMap,
    status: StatusCode,
    title: &str,
    message: &str,
    extra: Value,
    links_html: &str,
) -> Response {
    if wants_json(headers) {
        let mut body = json!({ "error": message });
        if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
            body.extend(extra);
        }
        return json(status, body);
    }
    let content = format!(
        "<p>{}</p>\n<p>{links_html} <a href=\"/\">Back to the lab</a></p>",
        escape(message)
    );
    html(status, page(title, &content, false))
}

/// 404 for a thing that does not exist (`what`: "order 42").
pub fn not_found(headers: &HeaderMap, what: &str) -> Response {
    error(
        headers,
        StatusCode::NOT_FOUND,
        "Not Found",
        &format!("{what} not found"),
        Value::Null,
        "",
    )
}

/// 500 for a broken dependency (database, queue), saying which.
pub fn internal(headers: &HeaderMap, what: &str, err: &dyn std::fmt::Display) -> Response {
    tracing::error!(%err, "{what}");
    error(
        headers,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something Went Wrong",
        &format!("{what}: {err}"),
        Value::Null,
        "",
    )
}

/// The fallback for routes that do not exist.
pub async fn no_route(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    error(
        &headers,
        StatusCode::NOT_FOUND,
        "Not Found",
        &format!("there is no page at {method} {}", uri.path()),
        Value::Null,
        "",
    )
}
