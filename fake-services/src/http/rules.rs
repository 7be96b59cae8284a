//! The routes that change one rule, or the search lag, and leave the rest
//! of a service's behaviour (every other rule's counters and window) as it
//! is: add (`POST /{service}/behavior/rules`), remove (`DELETE
//! …/rules/{i}`, or `POST …/rules/{i}/remove` from a form), move (`POST
//! …/rules/{i}/move` with `to`) and `POST /{service}/behavior/search_lag`.
//!
//! Each takes JSON, or the behaviour page's URL-encoded form: a form is
//! answered as the page answers (a redirect back, or the page with what
//! was wrong), JSON with the behaviour or `{"error", "field"}`. They need
//! the control token as `PUT /{service}/behavior` does.

use axum::body::Body;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde::Deserialize;

use super::api::read_body;
use super::behavior_page::Draft;
use super::control::{form_field, form_rules, invalid_behavior, parse_form, BehaviorRequest};
use super::{path_param, ApiError, AppState};
use crate::fault_rules::{parse_json, BehaviorView, FaultSpec, InvalidBehavior, Mode, RuleError};
use crate::negotiation::body_is_form;
use crate::service::Service;

/// The `{index}` of a rule route: which rule, counting from 0.
pub(super) struct RuleIndex(usize);

impl<S: Send + Sync> FromRequestParts<S> for RuleIndex {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let text = path_param(parts, state, "index").await?;
        text.parse().map(RuleIndex).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "the rule number in the path must be a whole number (0 for the first rule), got `{text}`"
                ),
            )
        })
    }
}

/// A rule route's body: the page's form, or JSON (or nothing).
enum Input {
    Form(Vec<(String, String)>),
    Json(Bytes),
}

impl Input {
    async fn read(request: &BehaviorRequest, body: Body) -> Result<Self, ApiError> {
        let body = read_body(body).await?;
        Ok(if body_is_form(request.headers()) {
            Input::Form(parse_form(&body)?)
        } else {
            Input::Json(body)
        })
    }

    fn form(&self) -> &[(String, String)] {
        match self {
            Input::Form(form) => form,
            Input::Json(_) => &[],
        }
    }

    /// Reads it, checks the token and makes the change; answers as the
    /// input asks (see the module doc). A refused form shows the page
    /// again with what was typed, for the mode it chose.
    async fn answer(
        app: &AppState,
        request: &BehaviorRequest,
        body: Body,
        ok: StatusCode,
        change: impl FnOnce(&Input) -> Result<BehaviorView, RuleError>,
    ) -> Result<Response, ApiError> {
        let input = Input::read(request, body).await?;
        request.authorize(app, input.form())?;
        let result = change(&input);
        Ok(match (&input, result) {
            (Input::Json(_), Ok(view)) => (ok, Json(view)).into_response(),
            (Input::Json(_), Err(RuleError::Invalid(err))) => invalid_behavior(&err),
            (Input::Json(_), Err(err)) => {
                ApiError::new(StatusCode::NOT_FOUND, err.to_string()).into_response()
            }
            (Input::Form(form), result) => {
                let token = request.form_token(app, form);
                match result {
                    Ok(_) => request.back_to_page(token.as_deref()),
                    Err(err) => request.page_with_problem(
                        app,
                        token.as_deref(),
                        &err,
                        &Draft {
                            mode: form_mode(form),
                            form,
                        },
                    ),
                }
            }
        })
    }
}

/// The mode a submitted add-rule form chose, if it is one.
fn form_mode(form: &[(String, String)]) -> Option<Mode> {
    form.iter()
        .filter(|(k, _)| k.starts_with("mode_"))
        .find_map(|(_, v)| Mode::ALL.into_iter().find(|m| m.name() == v.trim()))
}

/// `POST /{service}/behavior/rules`: appends one rule (a `FaultSpec` as
/// JSON, or the page's `mode_N`, `calls_N`, … fields); 201 with the
/// behaviour.
pub(super) async fn add(
    State(app): State<AppState>,
    request: BehaviorRequest,
    body: Body,
) -> Result<Response, ApiError> {
    let service = request.service();
    // The number the new rule will have, for the error's field name.
    let index = app.fakes.behavior(service).faults.len();
    Input::answer(&app, &request, body, StatusCode::CREATED, |input| {
        let spec = match input {
            Input::Json(body) => FaultSpec::from_json(body, index)?,
            Input::Form(form) => form_spec(service, form, index)?,
        };
        app.fakes.add_rule(service, spec)
    })
    .await
}

/// The one rule an add-rule form describes.
fn form_spec(
    service: Service,
    form: &[(String, String)],
    index: usize,
) -> Result<FaultSpec, InvalidBehavior> {
    let mut rules = form_rules(service, form);
    if rules.len() > 1 {
        return Err(InvalidBehavior::new(
            "form",
            format!("add one rule at a time, got {}", rules.len()),
        ));
    }
    let rule = rules.pop().ok_or_else(|| {
        InvalidBehavior::new(
            format!("faults[{index}].mode"),
            "choose a mode for the new rule",
        )
    })?;
    let json =
        serde_json::to_vec(&rule).map_err(|e| InvalidBehavior::new("form", e.to_string()))?;
    FaultSpec::from_json(&json, index)
}

/// `DELETE /{service}/behavior/rules/{i}` (or `POST …/{i}/remove` from a
/// form): takes rule i out; the rules after it move up one.
pub(super) async fn remove(
    State(app): State<AppState>,
    request: BehaviorRequest,
    RuleIndex(index): RuleIndex,
    body: Body,
) -> Result<Response, ApiError> {
    let service = request.service();
    Input::answer(&app, &request, body, StatusCode::OK, |_| {
        app.fakes.remove_rule(service, index)
    })
    .await
}

/// `POST /{service}/behavior/rules/{i}/move` with `{"to": j}` (or the
/// form's `to`): rule i becomes rule j.
pub(super) async fn move_to(
    State(app): State<AppState>,
    request: BehaviorRequest,
    RuleIndex(index): RuleIndex,
    body: Body,
) -> Result<Response, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct MoveTo {
        to: usize,
    }
    let service = request.service();
    Input::answer(&app, &request, body, StatusCode::OK, |input| {
        let to = match input {
            Input::Json(body) => parse_json::<MoveTo>(body, "")?.to,
            Input::Form(form) => form_whole_number(form, "to")?,
        };
        app.fakes.move_rule(service, index, to)
    })
    .await
}

/// `POST /{service}/behavior/search_lag` with `{"search_lag_ms": n}` (or
/// the form's field): sets the lag and leaves every rule as it is.
pub(super) async fn search_lag(
    State(app): State<AppState>,
    request: BehaviorRequest,
    body: Body,
) -> Result<Response, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct SearchLag {
        search_lag_ms: u64,
    }
    let service = request.service();
    Input::answer(&app, &request, body, StatusCode::OK, |input| {
        let ms = match input {
            Input::Json(body) => parse_json::<SearchLag>(body, "")?.search_lag_ms,
            Input::Form(form) => form_whole_number(form, "search_lag_ms")?,
        };
        Ok(app.fakes.set_search_lag(service, ms))
    })
    .await
}

/// A form field that must hold a whole number from 0.
fn form_whole_number<T: std::str::FromStr>(
    form: &[(String, String)],
    name: &str,
) -> Result<T, InvalidBehavior> {
    let text = form_field(form, name)
        .ok_or_else(|| InvalidBehavior::new(name, "is missing: give a whole number from 0"))?;
    text.parse().map_err(|_| {
        InvalidBehavior::new(name, format!("must be a whole number from 0, got `{text}`"))
    })
}
