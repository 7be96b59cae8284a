//! `POST /reset`: a clean lab — no orders, jobs or history, the seed data
//! back, and the fake services' ledgers and fault rules cleared.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;

use super::pages::{internal, json, wants_json};
use super::WebState;

pub(super) async fn reset(State(web): State<WebState>, headers: HeaderMap) -> Response {
    if let Err(err) = web.lab.reset().await {
        return internal(&headers, "resetting the store", &err);
    }
    let mut request = web.http.post(format!("{}/reset", web.lab.fakes_url));
    if let Some(token) = &web.options.control_token {
        request = request.bearer_auth(token);
    }
    let fakes = match request.header("accept", "application/json").send().await {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => Err(format!("the fake services answered {}", response.status())),
        Err(err) => Err(format!("the fake services did not answer: {err}")),
    };
    if let Err(err) = fakes {
        return internal(&headers, "resetting the fake services", &err);
    }
    if wants_json(&headers) {
        return json(StatusCode::OK, json!({"status": "reset"}));
    }
    Redirect::to("/").into_response()
}
