//! The book server's routes (and the searches beyond it), translated into
//! [`Call`]s and back.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::{Map, Value};

use super::{ApiError, AppState, MAX_BODY_BYTES};
use crate::fakes::{Call, ClientFaults, ClientSlow, FakeServices, Reply, TimedOut};
use crate::idempotency_key;
use crate::routes::Route;
use crate::serve::drop_connection;
use crate::service::{Operation, Service};

/// The routes of `service`'s operations, where [`Route::of`] puts them.
pub(super) fn routes(service: Service) -> Router<AppState> {
    Operation::ALL
        .into_iter()
        .fold(Router::new(), |router, operation| {
            let route = Route::of(service, operation);
            let method = MethodFilter::try_from(route.method)
                .expect("the route table uses standard methods");
            router.route(route.path, handler(service, operation, method))
        })
}

/// What serves `operation` of `service`, with `method`.
fn handler(service: Service, operation: Operation, method: MethodFilter) -> MethodRouter<AppState> {
    match operation {
        Operation::Effect => on(
            method,
            move |State(app): State<AppState>, headers: HeaderMap, body: Body| {
                effect(app.fakes, service, headers, body)
            },
        ),
        Operation::Search => on(
            method,
            move |State(app): State<AppState>, headers: HeaderMap, query: RawQuery| {
                simple(app.fakes, service, operation, headers, query_object(query))
            },
        ),
        Operation::Status | Operation::Clear => on(
            method,
            move |State(app): State<AppState>, headers: HeaderMap| {
                simple(app.fakes, service, operation, headers, Value::Null)
            },
        ),
    }
}

async fn effect(
    fakes: FakeServices,
    service: Service,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = read_json(body).await?;
    let idempotency_key = idempotency_key(&headers)?;
    let timeout_ms = client_timeout_ms(&headers)?;
    Ok(run(
        fakes,
        Call {
            service,
            operation: Operation::Effect,
            body,
            idempotency_key,
            client_faults: client_faults(&headers),
        },
        timeout_ms,
    )
    .await)
}

async fn simple(
    fakes: FakeServices,
    service: Service,
    operation: Operation,
    headers: HeaderMap,
    body: Value,
) -> Result<Response, ApiError> {
    let call = Call {
        client_faults: client_faults(&headers),
        ..Call::new(service, operation, body)
    };
    let timeout_ms = client_timeout_ms(&headers)?;
    Ok(run(fakes, call, timeout_ms).await)
}

/// Runs the call on its own task, so that a client hanging up mid-request
/// cannot cancel an effect halfway: ledger truth includes effects nobody
/// heard about. With the client's timeout stated (a simulation on virtual
/// time), the call is made as [`FakeServices::call_within`] makes it.
async fn run(fakes: FakeServices, call: Call, timeout_ms: Option<u64>) -> Response {
    let reply = tokio::spawn(async move {
        match timeout_ms {
            Some(ms) => fakes.call_within(call, ms).await,
            None => Ok(fakes.call(call).await),
        }
    })
    .await;
    match reply {
        Ok(Err(TimedOut)) => {
            let mut response = ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "the client gave up after {} ms (its X-Client-Timeout-Ms); the call goes on",
                    timeout_ms.unwrap_or_default()
                ),
            )
            .into_response();
            response
                .headers_mut()
                .insert("x-client-timed-out", HeaderValue::from_static("true"));
            response
        }
        Ok(Ok(Reply::Dropped)) => drop_connection(),
        Ok(Ok(Reply::Response(reply))) => {
            let status =
                StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let is_json = reply.body_is_json();
            let mut response = (status, reply.body).into_response();
            let headers = response.headers_mut();
            if is_json {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
            if let Some(seconds) = reply.retry_after_s {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            if reply.replayed {
                headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
            }
            response
        }
        Err(join_error) => {
            tracing::error!(%join_error, "a call failed inside the fake services");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the fake service failed; see its log",
            )
            .into_response()
        }
    }
}

/// Reads a body of at most [`MAX_BODY_BYTES`].
pub(super) async fn read_body(body: Body) -> Result<bytes::Bytes, ApiError> {
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
        )),
        Err(err) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("could not read the request body: {err}"),
        )),
    }
}

/// The body as JSON; empty counts as `{}`, as with the book server.
async fn read_json(body: Body) -> Result<Value, ApiError> {
    let bytes = read_body(body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_slice(&bytes).map_err(|err| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the request body is not valid JSON: {err}"),
        )
    })
}

/// `Idempotency-Key`, bare (as Stripe takes it) or as the draft's quoted
/// structured-field string; see [`idempotency_key::parse`].
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    idempotency_key::parse(value.as_bytes())
        .map(|key| Some(key.to_string()))
        .map_err(|err| ApiError::new(StatusCode::BAD_REQUEST, err.to_string()))
}

/// `X-Client-Timeout-Ms`: a client on virtual time states how long it
/// waits, for the server to apply on its clock.
fn client_timeout_ms(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get("x-client-timeout-ms") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "X-Client-Timeout-Ms must be a whole number of milliseconds, got {:?}",
                    String::from_utf8_lossy(value.as_bytes())
                ),
            )
        })
}

/// The book server's fault headers. Values it would read as zero (`false`,
/// garbage) ask for nothing, as there.
fn client_faults(headers: &HeaderMap) -> ClientFaults {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_ascii_lowercase())
    };
    let slow = text("x-be-slow").and_then(|v| {
        if v == "true" {
            Some(ClientSlow::Random)
        } else {
            v.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                .map(|s| ClientSlow::Millis((s * 1000.0) as u64))
        }
    });
    ClientFaults {
        slow,
        throttle: text("x-throttle").as_deref() == Some("true"),
        crash: text("x-crash").as_deref() == Some("true"),
    }
}

/// Query parameters as a JSON object of strings (the last of a repeated name wins).
pub(super) fn query_object(RawQuery(query): RawQuery) -> Value {
    let pairs: Vec<(String, String)> = query
        .as_deref()
        .map(|q| serde_urlencoded::from_str(q).unwrap_or_default())
        .unwrap_or_default();
    let map: BTreeMap<String, String> = pairs.into_iter().collect();
    Value::Object(
        map.into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    )
}
