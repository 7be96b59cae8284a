//! The control routes: behaviour (JSON and the HTML form), ledgers, reset,
//! and what the behaviour routes share with the one-rule routes
//! (`rules.rs`): the token check, form parsing, the page after a form.

use axum::body::Body;
use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::api::read_body;
use super::behavior_page::{behavior_page, Draft};
use super::{pages, token_for_links, ApiError, AppState, ServiceSegment};
use crate::books::Filter;
use crate::fault_rules::{BehaviorSpec, Field, InvalidBehavior, Mode, RuleError};
use crate::negotiation::Accept;
use crate::service::Service;

/// The control token a request carries: the `Authorization: Bearer` header,
/// or a `token` query parameter or form field (what a browser can send).
fn presented_token(
    headers: &HeaderMap,
    query: Option<&str>,
    form: &[(String, String)],
) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    let from_pairs = |pairs: &[(String, String)]| {
        pairs
            .iter()
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.clone())
    };
    bearer
        .or_else(|| from_pairs(&query_pairs(query)))
        .or_else(|| from_pairs(form))
}

/// Ok when no token is configured or the right one was presented.
fn authorize(
    app: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
    form: &[(String, String)],
) -> Result<(), ApiError> {
    let Some(expected) = app.control_token.as_deref() else {
        return Ok(());
    };
    match presented_token(headers, query, form) {
        Some(given) if constant_time_eq(given.as_bytes(), expected.as_bytes()) => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this route needs the control token: send `Authorization: Bearer <token>` (from a browser, add `?token=<token>` to the address)",
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(super) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| serde_urlencoded::from_str(q).unwrap_or_default())
        .unwrap_or_default()
}

/// What the behaviour routes read besides the body: the service the path
/// names, the query (which may carry the token) and the headers.
pub(super) struct BehaviorRequest {
    service: Service,
    query: Option<String>,
    headers: HeaderMap,
}

impl<S: Send + Sync> FromRequestParts<S> for BehaviorRequest {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let ServiceSegment(service) = ServiceSegment::from_request_parts(parts, state).await?;
        Ok(Self {
            service,
            query: parts.uri.query().map(str::to_string),
            headers: parts.headers.clone(),
        })
    }
}

impl BehaviorRequest {
    pub(super) fn service(&self) -> Service {
        self.service
    }

    pub(super) fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// See [`authorize`]; `form` is the submitted form's fields, if any.
    pub(super) fn authorize(
        &self,
        app: &AppState,
        form: &[(String, String)],
    ) -> Result<(), ApiError> {
        authorize(app, &self.headers, self.query.as_deref(), form)
    }

    fn token_for_links(&self, app: &AppState) -> Option<String> {
        token_for_links(app, self.query.as_deref())
    }

    /// The token to carry on in the page's links and forms after a form
    /// was submitted: the form's own, else the address's.
    pub(super) fn form_token(&self, app: &AppState, form: &[(String, String)]) -> Option<String> {
        form.iter()
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.clone())
            .or_else(|| self.token_for_links(app))
    }

    /// After a form's change: back to the behaviour page (303).
    pub(super) fn back_to_page(&self, token: Option<&str>) -> Response {
        let to = pages::with_token(&format!("/{}/behavior", self.service.name()), token);
        Redirect::to(&to).into_response()
    }

    /// A form's change refused: the behaviour page again with why, and
    /// what was typed (422, or 404 for a rule that is not there).
    pub(super) fn page_with_problem(
        &self,
        app: &AppState,
        token: Option<&str>,
        problem: &RuleError,
        draft: &Draft<'_>,
    ) -> Response {
        let status = match problem {
            RuleError::NoSuchRule { .. } => StatusCode::NOT_FOUND,
            RuleError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        };
        let page = behavior_page(app, self.service, token, Some(problem), draft);
        (status, Html(page)).into_response()
    }
}

/// The URL-encoded fields of a form body; 422 when it is not one.
pub(super) fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_bytes(body).map_err(|err| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the form body is not URL-encoded: {err}"),
        )
    })
}

pub(super) async fn get_behavior(
    State(app): State<AppState>,
    request: BehaviorRequest,
) -> Result<Response, ApiError> {
    request.authorize(&app, &[])?;
    if Accept::of(&request.headers).wants_html() {
        let token = request.token_for_links(&app);
        let draft = Draft {
            mode: chosen_mode(request.query.as_deref())?,
            ..Draft::default()
        };
        let page = behavior_page(&app, request.service, token.as_deref(), None, &draft);
        return Ok(Html(page).into_response());
    }
    Ok(Json(app.fakes.behavior(request.service)).into_response())
}

pub(super) async fn put_behavior(
    State(app): State<AppState>,
    request: BehaviorRequest,
    body: Body,
) -> Result<Response, ApiError> {
    let service = request.service;
    request.authorize(&app, &[])?;
    let body = read_body(body).await?;
    Ok(
        match BehaviorSpec::from_json(service, &body)
            .and_then(|spec| app.fakes.set_behavior(service, spec))
        {
            Ok(view) => Json(view).into_response(),
            Err(err) => invalid_behavior(&err),
        },
    )
}

/// The page's `?mode=`: which mode's fields the add-rule form shows; 400
/// naming the modes when it is none of them.
fn chosen_mode(query: Option<&str>) -> Result<Option<Mode>, ApiError> {
    let pairs = query_pairs(query);
    let Some((_, name)) = pairs.iter().find(|(k, _)| k == "mode") else {
        return Ok(None);
    };
    if name.is_empty() {
        return Ok(None);
    }
    Mode::ALL
        .into_iter()
        .find(|m| m.name() == name)
        .map(Some)
        .ok_or_else(|| {
            let names: Vec<&str> = Mode::ALL.iter().map(|m| m.name()).collect();
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "mode: `{name}` is not a mode; the modes are {}",
                    names.join(", ")
                ),
            )
        })
}

pub(super) fn invalid_behavior(err: &InvalidBehavior) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({"error": err.to_string(), "field": err.field})),
    )
        .into_response()
}

/// The HTML form's submission: same validation as `PUT`, errors shown in the form.
pub(super) async fn post_behavior_form(
    State(app): State<AppState>,
    request: BehaviorRequest,
    body: Body,
) -> Result<Response, ApiError> {
    let service = request.service;
    let body = read_body(body).await?;
    let form = parse_form(&body)?;
    request.authorize(&app, &form)?;
    let token = request.form_token(&app, &form);
    let spec = form_to_json(service, &form);
    let result = serde_json::to_vec(&spec)
        .map_err(|e| InvalidBehavior::new("form", e.to_string()))
        .and_then(|json| BehaviorSpec::from_json(service, &json))
        .and_then(|spec| app.fakes.set_behavior(service, spec));
    Ok(match result {
        Ok(_) => request.back_to_page(token.as_deref()),
        Err(err) => request.page_with_problem(
            &app,
            token.as_deref(),
            &RuleError::Invalid(err),
            &Draft {
                mode: None,
                form: &form,
            },
        ),
    })
}

/// Turns the form's fields (`mode_0`, `calls_0`, `operations_0`, …, and
/// `search_lag_ms`) into the JSON that `PUT` takes, so that one validation
/// serves both. A number field that does not parse is passed on as text, so
/// the error names the field.
fn form_to_json(service: Service, form: &[(String, String)]) -> Value {
    let mut spec = Map::new();
    spec.insert("faults".into(), Value::Array(form_rules(service, form)));
    if let Some(lag) = form_field(form, "search_lag_ms") {
        spec.insert("search_lag_ms".into(), form_number(lag));
    }
    Value::Object(spec)
}

/// A form field's value, trimmed; `None` when missing or blank.
pub(super) fn form_field<'f>(form: &'f [(String, String)], name: &str) -> Option<&'f str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// A number typed in a form, as JSON; text that is no number stays text,
/// so that the validation names the field.
pub(super) fn form_number(text: &str) -> Value {
    text.parse::<i64>()
        .map(Value::from)
        .or_else(|_| text.parse::<f64>().map(Value::from))
        .unwrap_or_else(|_| Value::from(text))
}

/// The rules a form describes (`mode_0`, `calls_0`, …, `remove_0`), as the
/// JSON objects `PUT` takes, in row order: rows with no mode or ticked
/// `remove` are left out.
pub(super) fn form_rules(service: Service, form: &[(String, String)]) -> Vec<Value> {
    let field = |name: &str| form_field(form, name);
    let mut faults = Vec::new();
    let rows = form
        .iter()
        .filter_map(|(k, _)| k.strip_prefix("mode_")?.parse::<usize>().ok())
        .max()
        .map_or(0, |n| n + 1);
    for row in 0..rows {
        let Some(mode) = field(&format!("mode_{row}")) else {
            continue;
        };
        if field(&format!("remove_{row}")).is_some() {
            continue;
        }
        let mut rule = Map::new();
        rule.insert("mode".into(), Value::from(mode));
        for key in Field::ALL.map(Field::name) {
            if key == Field::Operations.name() {
                continue;
            }
            if let Some(text) = field(&format!("{key}_{row}")) {
                rule.insert(key.into(), form_number(text));
            }
        }
        let ops: Vec<Value> = form
            .iter()
            .filter(|(k, _)| *k == format!("operations_{row}"))
            .map(|(_, v)| Value::from(v.as_str()))
            .collect();
        // Every box ticked means "all operations": leave the limit out.
        if !ops.is_empty() && ops.len() < service.faultable_operations().len() {
            rule.insert("operations".into(), Value::Array(ops));
        }
        faults.push(Value::Object(rule));
    }
    faults
}

/// `GET /{service}/ledger`: every record, oldest first, as a bare array;
/// with `limit`, `starting_after` or `ending_before`, a page of them,
/// newest first, as Stripe's list API answers.
pub(super) async fn ledger(
    State(app): State<AppState>,
    ServiceSegment(service): ServiceSegment,
    query: RawQuery,
) -> Result<Response, ApiError> {
    let query = super::api::query_object(query);
    let paging = crate::providers::paging(&query).map_err(super::list_error)?;
    let Some((cursor, limit)) = paging else {
        return Ok(Json(app.fakes.ledger(service)).into_response());
    };
    let page = app
        .fakes
        .ledger_page(service, &Filter::All, &cursor, limit)
        .map_err(|e| super::list_error(crate::providers::unknown_cursor(service, e)))?;
    let body =
        crate::providers::list_body(page, |r| serde_json::to_value(r).unwrap_or(Value::Null));
    Ok(Json(body).into_response())
}

pub(super) async fn reset(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = read_body(body).await?;
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    authorize(&app, &headers, query.as_deref(), &form)?;
    app.fakes.reset();
    if Accept::of(&headers).wants_html() {
        return Ok(Redirect::to("/").into_response());
    }
    Ok(Json(json!({"status": "reset"})).into_response())
}
