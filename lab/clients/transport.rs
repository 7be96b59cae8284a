//! [`Transport`]: how a request reaches the fake services — over HTTP, or in
//! process through [`FakeServices::call`] — and how the answer is sorted into
//! a typed value or a [`ServiceError`].
//!
//! Both transports see the same state and rules, and fail alike: a provider
//! slower than the client's timeout still performs its effect while the
//! client hears `Timeout`; a dropped connection is a connection error.
//!
//! What the client shares with the server comes from fake-services, not from
//! a copy here: the paths ([`Route::of`]) and the rule for an
//! `Idempotency-Key` ([`idempotency_key::parse`]).

use std::fmt;
use std::time::{Duration, Instant};

use fake_services::idempotency_key;
use fake_services::{Call, ClientFaults, FakeServices, Operation, Reply, Route, Service};
use reqwest::header::{HeaderValue, ACCEPT, RETRY_AFTER};
use reqwest::Url;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{BuildError, ServiceError};

/// How much of an unexpected body an error keeps.
const BODY_EXCERPT_CHARS: usize = 200;

/// Where a client on virtual time states its timeout, and how the server
/// says the client would have given up (fake-services' `http::api`).
const CLIENT_TIMEOUT_HEADER: &str = "x-client-timeout-ms";
const CLIENT_TIMED_OUT_HEADER: &str = "x-client-timed-out";

/// `base_url` as the transport joins paths to it, or why it cannot be one.
fn checked_base_url(base_url: &str) -> Result<Url, BuildError> {
    let bad = |reason: &str| BuildError::BadUrl {
        url: base_url.to_string(),
        reason: reason.to_string(),
    };
    let mut url = Url::parse(base_url).map_err(|err| bad(&err.to_string()))?;
    match url.scheme() {
        "http" => {}
        // reqwest is built without TLS here: an https URL would fail on
        // every call with what looks like a transient connection error.
        "https" => return Err(bad("https is not supported (reqwest is built without TLS)")),
        other => return Err(bad(&format!("the scheme must be http, not `{other}`"))),
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(bad("it needs a host, as in http://127.0.0.1:3001"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it must not have a query or a fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// The real-time safety net of a client on virtual time.
const REAL_TIME_LIMIT: Duration = Duration::from_secs(60);

/// The longest in-process timeout, so that `Duration::MAX` cannot overflow a
/// virtual clock's deadline (about 140 000 years).
const MAX_TIMEOUT_MS: u64 = 1 << 52;

/// Where the clients send their requests. Cheap to clone.
#[derive(Clone)]
pub enum Transport {
    /// Over HTTP to a fake-services server (or any server with its API).
    Http {
        /// The server's root, ending in `/` (e.g. `http://127.0.0.1:3001/`).
        base_url: Url,
        /// A client built with `timeout` as its request timeout.
        client: reqwest::Client,
        /// The request timeout, for the errors' messages.
        timeout: Duration,
        /// Set when the server runs on virtual time: the timeout is sent
        /// along (`X-Client-Timeout-Ms`) for the server to apply on its
        /// clock, since a real-time timeout would never fire there.
        declared: bool,
    },
    /// In process, with no sockets: the deterministic simulator's way.
    InProcess {
        fakes: FakeServices,
        /// Measured on the fakes' own clock.
        timeout: Duration,
    },
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Http {
                base_url, timeout, ..
            } => f
                .debug_struct("Http")
                .field("base_url", &base_url.as_str())
                .field("timeout", timeout)
                .finish_non_exhaustive(),
            Transport::InProcess { timeout, .. } => f
                .debug_struct("InProcess")
                .field("timeout", timeout)
                .finish_non_exhaustive(),
        }
    }
}

impl Transport {
    /// HTTP to the server at `base_url` (`http://host:port`, optionally with
    /// a path prefix), each request limited to `timeout`.
    pub fn http(base_url: &str, timeout: Duration) -> Result<Self, BuildError> {
        let client = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(Transport::Http {
            base_url: checked_base_url(base_url)?,
            client,
            timeout,
            declared: false,
        })
    }

    /// HTTP to a fake-services server on virtual time (a simulation over
    /// sockets): the server applies `timeout` on its own clock and answers
    /// 504 with `X-Client-Timed-Out` when the call outlasted it, which comes
    /// back here as the same timeout error a real one would be. A real-time
    /// limit of a minute stays as a safety net.
    pub fn http_on_virtual_time(base_url: &str, timeout: Duration) -> Result<Self, BuildError> {
        let client = reqwest::Client::builder()
            .timeout(REAL_TIME_LIMIT)
            .build()?;
        Ok(Transport::Http {
            base_url: checked_base_url(base_url)?,
            client,
            timeout,
            declared: true,
        })
    }

    /// In process over `fakes`; `timeout` runs on `fakes.clock()`.
    pub fn in_process(fakes: FakeServices, timeout: Duration) -> Self {
        Transport::InProcess { fakes, timeout }
    }

    /// The client's timeout.
    pub fn timeout(&self) -> Duration {
        match self {
            Transport::Http { timeout, .. } | Transport::InProcess { timeout, .. } => *timeout,
        }
    }

    /// Makes one call and returns the provider's answer, whatever its status;
    /// fails only when there is no answer (timeout, connection).
    pub(crate) async fn send(&self, mut request: Request) -> Result<RawAnswer, ServiceError> {
        let started = Instant::now();
        let service = request.service;
        let operation = request.operation.name(service);
        check_key(&mut request)?;
        let result = match self {
            Transport::Http {
                base_url,
                client,
                timeout,
                declared,
            } => send_http(base_url, client, *timeout, *declared, request).await,
            Transport::InProcess { fakes, timeout } => {
                send_in_process(fakes, *timeout, request).await
            }
        };
        match &result {
            Ok(answer) => tracing::debug!(
                %service, operation, status = answer.status, replayed = answer.replayed,
                elapsed_ms = started.elapsed().as_millis() as u64, "provider answered"
            ),
            Err(err) => tracing::debug!(
                %service, operation, error = %err,
                elapsed_ms = started.elapsed().as_millis() as u64, "provider call failed"
            ),
        }
        result
    }

    /// Sends `request` and reads a 2xx answer's body as `T`; every other
    /// outcome is a [`ServiceError`].
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        request: Request,
    ) -> Result<T, ServiceError> {
        let service = request.service;
        self.send(request).await?.decode(service)
    }
}

/// One request, independent of the transport.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Request {
    pub service: Service,
    /// [`Operation::Effect`] or [`Operation::Search`].
    pub operation: Operation,
    /// The JSON body of an effect; the query parameters (an object of
    /// strings) of a search.
    pub body: Value,
    /// The `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
}

impl Request {
    /// The effect call of `service` with `body`.
    pub fn effect(service: Service, body: Value, idempotency_key: Option<String>) -> Self {
        Self {
            service,
            operation: Operation::Effect,
            body,
            idempotency_key,
        }
    }

    /// A search of `service` with these query parameters.
    pub fn search(service: Service, params: &[(&str, String)]) -> Self {
        let query = params
            .iter()
            .map(|(name, value)| (name.to_string(), Value::String(value.clone())))
            .collect();
        Self {
            service,
            operation: Operation::Search,
            body: Value::Object(query),
            idempotency_key: None,
        }
    }
}

/// A provider's answer, before it is judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawAnswer {
    pub status: u16,
    pub body: Vec<u8>,
    /// `Retry-After`, in seconds.
    pub retry_after_s: Option<u64>,
    /// `Idempotent-Replayed: true`.
    pub replayed: bool,
}

impl RawAnswer {
    /// A 2xx body as `T`; any other status as the error it means.
    pub fn decode<T: DeserializeOwned>(self, service: Service) -> Result<T, ServiceError> {
        let status = self.status;
        match status {
            200..=299 => {}
            409 => {
                return Err(ServiceError::InFlight {
                    service,
                    message: self.message(),
                })
            }
            429 => {
                return Err(ServiceError::Throttled {
                    service,
                    retry_after: self.retry_after_s.map(Duration::from_secs),
                })
            }
            400..=499 => {
                return Err(ServiceError::Rejected {
                    service,
                    status,
                    message: self.message(),
                })
            }
            500..=599 => {
                return Err(ServiceError::ServerError {
                    service,
                    status,
                    message: self.message(),
                })
            }
            _ => {
                return Err(self.bad(service, format!("unexpected status {status}")));
            }
        }
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Err(self.bad(service, "empty body".into()));
        }
        serde_json::from_slice(&self.body).map_err(|err| self.bad(service, err.to_string()))
    }

    fn bad(&self, service: Service, problem: String) -> ServiceError {
        ServiceError::BadResponse {
            service,
            status: self.status,
            problem,
            body: excerpt(&self.body),
        }
    }

    /// The provider's explanation of an error: the JSON body's `error`
    /// (`errorMessage` for email, as the book server has it), else the body
    /// itself, else a note that there was none.
    fn message(&self) -> String {
        if let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&self.body) {
            for name in ["error", "errorMessage", "message", "explanation"] {
                if let Some(Value::String(text)) = fields.get(name) {
                    return text.clone();
                }
            }
        }
        let text = excerpt(&self.body);
        if text.trim().is_empty() {
            "no message (empty body)".into()
        } else {
            text
        }
    }
}

/// The start of a body, as text, for messages.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut short: String = text.chars().take(BODY_EXCERPT_CHARS).collect();
    if text.chars().count() > BODY_EXCERPT_CHARS {
        short.push('…');
    }
    short
}

/// Refuses a key the HTTP server would refuse, on both transports alike
/// (one rule: [`idempotency_key::parse`]), and sends the key as the server
/// reads it (bare, without the draft's quotes), so that an in-process call
/// stores the key an HTTP call would.
fn check_key(request: &mut Request) -> Result<(), ServiceError> {
    let Some(key) = &request.idempotency_key else {
        return Ok(());
    };
    let key =
        idempotency_key::parse(key.as_bytes()).map_err(|err| ServiceError::InvalidRequest {
            service: request.service,
            message: err.to_string(),
        })?;
    request.idempotency_key = Some(key.to_string());
    Ok(())
}

async fn send_http(
    base_url: &Url,
    client: &reqwest::Client,
    timeout: Duration,
    declared: bool,
    request: Request,
) -> Result<RawAnswer, ServiceError> {
    let service = request.service;
    let Route { method, path } = Route::of(service, request.operation);
    // Relative to the base, which may carry a path prefix of its own.
    let path = path.trim_start_matches('/');
    let mut url = base_url
        .join(path)
        .map_err(|err| ServiceError::InvalidRequest {
            service,
            message: format!("no URL for {path}: {err}"),
        })?;
    let mut builder = if request.operation == Operation::Search {
        if let Value::Object(params) = &request.body {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in params {
                match value {
                    Value::String(text) => pairs.append_pair(name, text),
                    other => pairs.append_pair(name, &other.to_string()),
                };
            }
        }
        client.request(method, url)
    } else {
        client.request(method, url).json(&request.body)
    };
    builder = builder.header(ACCEPT, HeaderValue::from_static("application/json"));
    if let Some(key) = &request.idempotency_key {
        builder = builder.header("Idempotency-Key", key.as_str());
    }
    if declared {
        builder = builder.header(CLIENT_TIMEOUT_HEADER, timeout.as_millis().to_string());
    }
    let no_answer = |err: reqwest::Error| -> ServiceError {
        if err.is_timeout() {
            ServiceError::Timeout {
                service,
                after: timeout,
            }
        } else if err.is_builder() {
            ServiceError::InvalidRequest {
                service,
                message: error_chain(&err),
            }
        } else {
            ServiceError::Connection {
                service,
                message: error_chain(&err),
            }
        }
    };
    let response = builder.send().await.map_err(no_answer)?;
    let status = response.status().as_u16();
    let headers = response.headers();
    if declared && headers.contains_key(CLIENT_TIMED_OUT_HEADER) {
        return Err(ServiceError::Timeout {
            service,
            after: timeout,
        });
    }
    let retry_after_s = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let replayed = headers
        .get("idempotent-replayed")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
    let body = response.bytes().await.map_err(no_answer)?.to_vec();
    Ok(RawAnswer {
        status,
        body,
        retry_after_s,
        replayed,
    })
}

/// An error and its sources, as one line.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Makes the call through the fakes' own front door for clients with a
/// timeout: as behind the HTTP server, a provider slower than the client
/// still finishes (and performs its effect). The timeout is measured on the
/// fakes' clock; a call as slow as the timeout counts as answered.
async fn send_in_process(
    fakes: &FakeServices,
    timeout: Duration,
    request: Request,
) -> Result<RawAnswer, ServiceError> {
    let service = request.service;
    let call = Call {
        service,
        operation: request.operation,
        body: request.body,
        idempotency_key: request.idempotency_key,
        client_faults: ClientFaults::default(),
    };
    let timeout_ms = u64::try_from(timeout.as_millis())
        .unwrap_or(u64::MAX)
        .min(MAX_TIMEOUT_MS);
    let reply =
        fakes
            .call_within(call, timeout_ms)
            .await
            .map_err(|fake_services::fakes::TimedOut| ServiceError::Timeout {
                service,
                after: timeout,
            })?;
    match reply {
        Reply::Response(response) => Ok(RawAnswer {
            status: response.status,
            body: response.body.to_vec(),
            retry_after_s: response.retry_after_s,
            replayed: response.replayed,
        }),
        Reply::Dropped => Err(ServiceError::Connection {
            service,
            message: "the connection was closed without a response".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn answer(status: u16, body: &str) -> RawAnswer {
        RawAnswer {
            status,
            body: body.as_bytes().to_vec(),
            retry_after_s: None,
            replayed: false,
        }
    }

    #[derive(Debug, Deserialize)]
    struct Id {
        #[allow(dead_code)]
        id: String,
    }

    #[test]
    fn statuses_are_classified() {
        let p = Service::Payments;
        let err = answer(503, "").decode::<Id>(p).unwrap_err();
        assert!(err.is_transient());
        assert_eq!(err.class_name(), "Payments::ServerError");
        assert!(err.to_string().contains("no message"), "{err}");
        let err = answer(409, r#"{"error":"in flight"}"#)
            .decode::<Id>(p)
            .unwrap_err();
        assert!(matches!(err, ServiceError::InFlight { .. }) && err.is_transient());
        let err = answer(
            422,
            r#"{"status":"not-queued","errorMessage":"to required"}"#,
        )
        .decode::<Id>(Service::Email)
        .unwrap_err();
        assert!(
            matches!(&err, ServiceError::Rejected { service: Service::Email, status: 422, message }
                if message == "to required"),
            "{err:?}"
        );
        let err = answer(404, "<h1>nope</h1>").decode::<Id>(p).unwrap_err();
        assert!(err.to_string().contains("<h1>nope</h1>"), "{err}");
        let err = answer(302, "").decode::<Id>(p).unwrap_err();
        assert!(matches!(err, ServiceError::BadResponse { status: 302, .. }));
    }

    #[test]
    fn garbage_is_an_error() {
        for body in [
            "",
            "  ",
            "not json",
            "{\"other\": 1}",
            "[1, 2]",
            "{\"id\": 7}",
        ] {
            let err = answer(200, body)
                .decode::<Id>(Service::Payments)
                .unwrap_err();
            assert!(
                matches!(err, ServiceError::BadResponse { .. }) && !err.is_transient(),
                "{body}: {err:?}"
            );
            assert_eq!(err.class_name(), "Payments::BadResponse");
        }
        let long = "x".repeat(1000);
        let err = answer(200, &long)
            .decode::<Id>(Service::Payments)
            .unwrap_err();
        assert!(err.to_string().len() < 400, "{err}");
    }

    fn checked(key: &str) -> Result<Option<String>, ServiceError> {
        let mut request = Request::effect(Service::Payments, Value::Null, Some(key.to_string()));
        check_key(&mut request).map(|()| request.idempotency_key)
    }

    #[test]
    fn keys_that_cannot_be_headers_are_refused() {
        for key in ["", " ", "\"\"", "ключ", "a\nb", "a\tb", &"k".repeat(256)] {
            let err = checked(key).unwrap_err();
            assert!(
                matches!(err, ServiceError::InvalidRequest { .. }),
                "{key:?}"
            );
            assert!(err.to_string().contains("Idempotency-Key"), "{err}");
            assert!(!err.is_transient());
        }
        assert_eq!(checked("order-7").unwrap().as_deref(), Some("order-7"));
    }

    #[test]
    fn the_key_limit_is_the_servers() {
        let at_limit = "k".repeat(fake_services::idempotency_key::MAX_LEN);
        assert_eq!(checked(&at_limit).unwrap(), Some(at_limit.clone()));
        let err = checked(&format!("{at_limit}k")).unwrap_err();
        assert!(err.to_string().contains("at most 255"), "{err}");
        // The quoted form is the same key, sent as the server reads it.
        assert_eq!(checked(&format!("\"{at_limit}\"")).unwrap(), Some(at_limit));
    }

    #[test]
    fn base_urls_are_checked_and_get_a_trailing_slash() {
        let Transport::Http { base_url, .. } =
            Transport::http("http://127.0.0.1:3001", Duration::from_secs(1)).unwrap()
        else {
            unreachable!()
        };
        assert_eq!(
            base_url.join("payments/charge").unwrap().as_str(),
            "http://127.0.0.1:3001/payments/charge"
        );
        let Transport::Http { base_url, .. } =
            Transport::http("http://fakes:3001/lab", Duration::from_secs(1)).unwrap()
        else {
            unreachable!()
        };
        assert_eq!(
            base_url.join("email/send").unwrap().as_str(),
            "http://fakes:3001/lab/email/send"
        );
        for bad in [
            "127.0.0.1:3001",
            "https://x",
            "ftp://x",
            "http://x/?a=1",
            "nonsense",
        ] {
            assert!(
                Transport::http(bad, Duration::from_secs(1)).is_err(),
                "{bad}"
            );
        }
    }
}
