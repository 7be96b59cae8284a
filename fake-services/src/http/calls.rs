//! `GET /calls`: the call log over HTTP — one order's calls with its exact
//! effect counts (what the web lab's order timeline is drawn from), or the
//! newest calls of all.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::{ApiError, AppState};
use crate::call_log::OrderCallsAnswer;
use crate::service::Service;

/// Calls answered without `order_id` when no `limit` is given.
const DEFAULT_NEWEST: usize = 100;
/// The most calls answered without `order_id`.
const MAX_NEWEST: usize = 1_000;

/// `GET /calls?order_id=5`: `{"order_id", "effects": {service: count},
/// "calls": [...oldest first], "forgotten", "kept_since_ms"}`. The counts
/// are the ledgers' (kept as records are added, so exact whatever the log
/// forgot). `GET /calls?limit=N`: the newest N calls (default 100, at most
/// 1,000), oldest first.
pub(super) async fn calls(
    State(app): State<AppState>,
    query: RawQuery,
) -> Result<Json<Value>, ApiError> {
    let query = super::api::query_object(query);
    if let Some(order) = query.get("order_id").and_then(Value::as_str) {
        if order.is_empty() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "order_id is empty: give the order's id, e.g. /calls?order_id=5",
            ));
        }
        let answer = OrderCallsAnswer {
            order_id: order.to_string(),
            effects: Service::ALL
                .into_iter()
                .map(|s| (s, app.fakes.successes_for(s, order)))
                .collect(),
            log: app.fakes.calls_for(order),
        };
        return Ok(Json(json!(answer)));
    }
    let limit = match query.get("limit").and_then(Value::as_str) {
        None => DEFAULT_NEWEST,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_NEWEST).contains(&n) => n,
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("limit must be a whole number from 1 to {MAX_NEWEST}, got {text:?}"),
                ))
            }
        },
    };
    Ok(Json(json!({ "calls": app.fakes.newest_calls(limit) })))
}
