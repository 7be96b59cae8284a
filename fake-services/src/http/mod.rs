//! The HTTP front door: the book server's routes, the behaviour and ledger
//! routes, and the HTML pages, all over one [`FakeServices`].

mod api;
mod control;
mod pages;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::fakes::FakeServices;
use crate::service::Service;

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// How the routes are served.
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    /// When set, behaviour and reset routes need `Authorization: Bearer <token>`
    /// (or, from a browser form, a `token` field or query parameter).
    pub control_token: Option<String>,
}

#[derive(Clone)]
struct AppState {
    fakes: FakeServices,
    control_token: Arc<Option<String>>,
}

/// The whole HTTP API over `fakes`.
pub fn router(fakes: FakeServices, options: HttpOptions) -> Router {
    let state = AppState {
        fakes,
        control_token: Arc::new(options.control_token),
    };
    let mut app = Router::new()
        .route("/", get(pages::index))
        .route("/reset", post(control::reset))
        .route(
            "/{service}/behavior",
            get(control::get_behavior)
                .put(control::put_behavior)
                .post(control::post_behavior_form),
        )
        .route("/{service}/ledger", get(control::ledger))
        .route("/{service}/ui", get(pages::ledger_page));
    for service in Service::ALL {
        app = app.merge(api::routes(service));
    }
    app.fallback(not_found)
        .layer(middleware::from_fn(check_accept))
        .with_state(state)
}

/// The book server's content check: a client must accept JSON (or anything),
/// or be a browser asking for a page with GET.
async fn check_accept(request: Request, next: Next) -> Response {
    let accepted: Vec<String> = request
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .collect();
    let any = |t: &str| accepted.iter().any(|a| a == t);
    let json = any("application/json") || any("*/*");
    let html_get = request.method() == Method::GET && any("text/html");
    if json || html_get {
        next.run(request).await
    } else {
        error(
            StatusCode::NOT_ACCEPTABLE,
            "send `Accept: application/json` (or `*/*`; `text/html` for pages)",
        )
    }
}

async fn not_found(method: Method, uri: axum::http::Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        &format!("no route for {method} {}", uri.path()),
    )
}

/// An error answer: the status and a JSON `{"error": "..."}` body that says
/// what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.message }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    ApiError::new(status, message).into_response()
}

/// Whether a browser is asking: it lists `text/html` in `Accept`.
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// The control token given in the address (`?token=`), to carry along in
/// the pages' links and forms, when one is configured.
fn token_for_links(app: &AppState, query: Option<&str>) -> Option<String> {
    app.control_token.as_ref().as_ref()?;
    control::query_pairs(query)
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v)
}

/// The `{service}` path segment, or a 404 naming the four services.
fn parse_service(name: &str) -> Result<Service, ApiError> {
    name.parse().map_err(|err: crate::service::UnknownService| {
        ApiError::new(StatusCode::NOT_FOUND, err.to_string())
    })
}
