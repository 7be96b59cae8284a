//! The HTTP front door: the book server's routes, the behaviour and ledger
//! routes, the HTML pages and `GET /metrics` (Prometheus text, outside the
//! JSON content check: a scraper asks for `text/plain` or OpenMetrics), all
//! over one [`FakeServices`].
//!
//! `api.rs` has the book server's routes, `control.rs` the behaviour (whole),
//! ledger and reset routes, `rules.rs` the routes that edit one rule,
//! `calls.rs` the call log, `pages.rs` the index and ledger pages and
//! `behavior_page.rs` the rules page.

mod api;
mod behavior_page;
mod calls;
mod control;
mod pages;
mod rules;

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::cross_site::{AllowedHosts, Guard, Refusal};
use crate::fakes::FakeServices;
use crate::negotiation::Accept;
use crate::service::Service;

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// How the routes are served.
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    /// When set, behaviour and reset routes need `Authorization: Bearer <token>`
    /// (or, from a browser form, a `token` field or query parameter).
    pub control_token: Option<String>,
    /// The host names, besides IP addresses and `localhost`, that requests
    /// may name in `Host` (`--allowed-host`; see [`crate::cross_site`]).
    pub allowed_hosts: AllowedHosts,
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
        .route("/{service}/behavior/rules", post(rules::add))
        .route("/{service}/behavior/rules/{index}", delete(rules::remove))
        .route(
            "/{service}/behavior/rules/{index}/remove",
            post(rules::remove),
        )
        .route(
            "/{service}/behavior/rules/{index}/move",
            post(rules::move_to),
        )
        .route("/{service}/behavior/search_lag", post(rules::search_lag))
        .route("/{service}/ledger", get(control::ledger))
        .route("/calls", get(calls::calls))
        .route("/{service}/ui", get(pages::ledger_page));
    for service in Service::ALL {
        app = app.merge(api::routes(service));
    }
    let app = app
        .fallback(not_found)
        .layer(middleware::from_fn(check_accept))
        // After the content check, so not under it: never JSON, whatever
        // the scraper's `Accept`. Read-only, so no control token.
        .route("/metrics", get(metrics))
        .with_state(state);
    // Outermost: a request from another site or to a rebound name learns
    // nothing, not even whether its `Accept` would do.
    Guard::new(options.allowed_hosts, refuse).around(app)
}

/// A cross-site refusal as this API's errors are: `{"error": "..."}`.
fn refuse(_headers: &axum::http::HeaderMap, refusal: Refusal) -> Response {
    error(refusal.status, &refusal.message)
}

/// The book server's content check: a client must accept JSON (or anything),
/// or be a browser asking for a page with GET.
async fn check_accept(request: Request, next: Next) -> Response {
    let accept = Accept::of(request.headers());
    if accept.takes_json() || (request.method() == Method::GET && accept.wants_html()) {
        next.run(request).await
    } else {
        error(
            StatusCode::NOT_ACCEPTABLE,
            "send `Accept: application/json` (or `*/*`; `text/html` for pages)",
        )
    }
}

/// `GET /metrics`: [`FakeServices::metrics_text`].
async fn metrics(State(app): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        app.fakes.metrics_text(),
    )
        .into_response()
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

/// A list query's error as an answer.
fn list_error((status, body): crate::providers::ListError) -> ApiError {
    let message = body
        .get("error")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("bad list query")
        .to_string();
    ApiError::new(
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        message,
    )
}

fn error(status: StatusCode, message: &str) -> Response {
    ApiError::new(status, message).into_response()
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

/// The `{service}` path segment of the control routes and pages, parsed;
/// a 404 naming the four services when it is none of them.
struct ServiceSegment(Service);

impl<S: Send + Sync> FromRequestParts<S> for ServiceSegment {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let name = path_param(parts, state, "service").await?;
        name.parse()
            .map(ServiceSegment)
            .map_err(|err: crate::service::UnknownService| {
                ApiError::new(StatusCode::NOT_FOUND, err.to_string())
            })
    }
}

/// The path parameter `name` of a route (`{service}`, `{index}`).
async fn path_param<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    name: &str,
) -> Result<String, ApiError> {
    let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
        .await
        .map_err(|err| ApiError::new(err.status(), err.body_text()))?;
    params
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the route has no `{{{name}}}` in its path"),
            )
        })
}
