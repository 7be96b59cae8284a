//! The error catcher client: report an exception, as Bugsnag's notifier does.

use fake_services::Service;
use serde::Deserialize;
use serde_json::json;

use super::error::ServiceError;
use super::transport::{Request, Transport};

#[derive(Debug, Deserialize)]
struct Notified {
    notification_id: String,
}

/// Talks to the error catcher.
#[derive(Debug, Clone)]
pub struct ErrorCatcherClient {
    transport: Transport,
}

impl ErrorCatcherClient {
    pub fn new(transport: Transport) -> Self {
        Self { transport }
    }

    /// `PUT /error-catcher/notification` → 202 with the `notification_id`.
    /// Both fields must be non-blank (else 422, a `Rejected` error).
    pub async fn notify(
        &self,
        exception_class: &str,
        exception_message: &str,
    ) -> Result<String, ServiceError> {
        let notified: Notified = self
            .transport
            .call(Request::effect(
                Service::ErrorCatcher,
                json!({
                    "exception_class": exception_class,
                    "exception_message": exception_message,
                }),
                None,
            ))
            .await?;
        Ok(notified.notification_id)
    }
}
