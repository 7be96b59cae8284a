//! [`ServiceError`]: how a call to a provider failed, sorted into what a
//! retry can fix (transient) and what it cannot (permanent).

use std::time::Duration;

use fake_services::Service;

/// A failed call to a provider.
///
/// | variant | when | transient? | class |
/// | --- | --- | --- | --- |
/// | `ServerError` | 5xx | yes | `Payments::ServerError` |
/// | `Throttled` | 429 (`Retry-After` seconds if sent) | yes | `Payments::Throttled` |
/// | `Timeout` | no answer within the client's timeout | yes | `Payments::Timeout` |
/// | `Connection` | refused, reset, or closed without a response | yes | `Payments::ConnectionError` |
/// | `InFlight` | 409: the same `Idempotency-Key` is still being handled | yes | `Payments::InFlight` |
/// | `Rejected` | any other 4xx, with the provider's message | no | `Payments::Rejected` |
/// | `BadResponse` | an answer that is not the JSON expected | no | `Payments::BadResponse` |
/// | `InvalidRequest` | the client could not send the request at all | no | `Payments::InvalidRequest` |
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// The provider answered 5xx. The effect may or may not have happened
    /// (send-then-crash), so only an idempotent retry is safe.
    #[error("{service} answered {status}: {message}")]
    ServerError {
        service: Service,
        status: u16,
        message: String,
    },
    /// 429: too many requests.
    #[error("{service} throttled the request (429){}", retry_after_phrase(*retry_after))]
    Throttled {
        service: Service,
        retry_after: Option<Duration>,
    },
    /// No answer within the client's timeout; the provider may still perform
    /// the effect afterwards.
    #[error("{service} did not answer within {}", describe_duration(*after))]
    Timeout { service: Service, after: Duration },
    /// The connection could not be made, or was closed without a response
    /// (before or after the effect: the client cannot tell).
    #[error("{service}: connection failed: {message}")]
    Connection { service: Service, message: String },
    /// 409: an earlier request with the same `Idempotency-Key` is still in
    /// flight. Retrying later gets its result.
    #[error(
        "{service}: a request with the same Idempotency-Key is still in flight (409): {message}"
    )]
    InFlight { service: Service, message: String },
    /// A 4xx refusal: the request is wrong and will stay wrong.
    #[error("{service} rejected the request ({status}): {message}")]
    Rejected {
        service: Service,
        status: u16,
        message: String,
    },
    /// An answer whose status or body is not what the API promises.
    #[error("{service} answered {status} with a body that is not the JSON expected ({problem}): {body:?}")]
    BadResponse {
        service: Service,
        status: u16,
        /// What was wrong, e.g. the JSON parser's error.
        problem: String,
        /// The start of the body, for the report.
        body: String,
    },
    /// The request could not be built (e.g. an `Idempotency-Key` that is not
    /// a valid header value); nothing was sent.
    #[error("{service}: the request could not be sent: {message}")]
    InvalidRequest { service: Service, message: String },
}

impl ServiceError {
    /// Whether retrying the same request later can succeed: 5xx, 429,
    /// timeouts, connection errors and 409 in-flight conflicts.
    pub fn is_transient(&self) -> bool {
        match self {
            ServiceError::ServerError { .. }
            | ServiceError::Throttled { .. }
            | ServiceError::Timeout { .. }
            | ServiceError::Connection { .. }
            | ServiceError::InFlight { .. } => true,
            ServiceError::Rejected { .. }
            | ServiceError::BadResponse { .. }
            | ServiceError::InvalidRequest { .. } => false,
        }
    }

    /// The service that failed.
    pub fn service(&self) -> Service {
        match self {
            ServiceError::ServerError { service, .. }
            | ServiceError::Throttled { service, .. }
            | ServiceError::Timeout { service, .. }
            | ServiceError::Connection { service, .. }
            | ServiceError::InFlight { service, .. }
            | ServiceError::Rejected { service, .. }
            | ServiceError::BadResponse { service, .. }
            | ServiceError::InvalidRequest { service, .. } => *service,
        }
    }

    /// The kind of failure, without the service: `ServerError`, `Throttled`,
    /// `Timeout`, `ConnectionError`, `InFlight`, `Rejected`, `BadResponse` or
    /// `InvalidRequest`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            ServiceError::ServerError { .. } => "ServerError",
            ServiceError::Throttled { .. } => "Throttled",
            ServiceError::Timeout { .. } => "Timeout",
            ServiceError::Connection { .. } => "ConnectionError",
            ServiceError::InFlight { .. } => "InFlight",
            ServiceError::Rejected { .. } => "Rejected",
            ServiceError::BadResponse { .. } => "BadResponse",
            ServiceError::InvalidRequest { .. } => "InvalidRequest",
        }
    }

    /// A Ruby-like exception class for the error catcher and the job's
    /// `error_class`: `Payments::ServerError`, `Email::Rejected`,
    /// `ErrorCatcher::Timeout`, …
    pub fn class_name(&self) -> String {
        format!("{}::{}", ruby_module(self.service()), self.kind_name())
    }

    /// The HTTP status the provider answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ServiceError::ServerError { status, .. }
            | ServiceError::Rejected { status, .. }
            | ServiceError::BadResponse { status, .. } => Some(*status),
            ServiceError::Throttled { .. } => Some(429),
            ServiceError::InFlight { .. } => Some(409),
            ServiceError::Timeout { .. }
            | ServiceError::Connection { .. }
            | ServiceError::InvalidRequest { .. } => None,
        }
    }

    /// How long a throttled client was asked to wait (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ServiceError::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The service's name as a Ruby constant: `Payments`, `ErrorCatcher`.
pub fn ruby_module(service: Service) -> &'static str {
    match service {
        Service::Payments => "Payments",
        Service::Email => "Email",
        Service::Fulfillment => "Fulfillment",
        Service::ErrorCatcher => "ErrorCatcher",
    }
}

fn retry_after_phrase(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(after) => format!("; retry after {}", describe_duration(after)),
        None => String::new(),
    }
}

fn describe_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

/// A failure to set a client up (nothing to do with any call).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("`{url}` is not a usable base URL for the fake services: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("could not build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_messages_read_well() {
        let err = ServiceError::Throttled {
            service: Service::Payments,
            retry_after: Some(Duration::from_secs(7)),
        };
        assert!(err.is_transient());
        assert_eq!(err.class_name(), "Payments::Throttled");
        assert_eq!(
            err.to_string(),
            "payments throttled the request (429); retry after 7 s"
        );
        let err = ServiceError::Rejected {
            service: Service::ErrorCatcher,
            status: 422,
            message: "exception class or message is missing".into(),
        };
        assert!(!err.is_transient());
        assert_eq!(err.class_name(), "ErrorCatcher::Rejected");
        assert_eq!(err.status(), Some(422));
        let err = ServiceError::Timeout {
            service: Service::Email,
            after: Duration::from_millis(1500),
        };
        assert_eq!(err.to_string(), "email did not answer within 1500 ms");
        assert_eq!(err.class_name(), "Email::Timeout");
    }
}
