//! The email client: send a templated email, and search what was sent to
//! someone with a template (for dedup by search).

use fake_services::Service;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::ServiceError;
use super::transport::{Request, Transport};

/// An email to send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailRequest {
    pub to: String,
    pub template_id: String,
    pub template_data: Value,
    /// The `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
}

impl EmailRequest {
    /// The JSON body, as the book app sends it.
    pub fn body(&self) -> Value {
        json!({
            "to": self.to,
            "template_id": self.template_id,
            "template_data": self.template_data,
        })
    }
}

/// An email as search shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoundEmail {
    pub email_id: String,
    pub to: String,
    pub template_id: String,
    pub template_data: Value,
}

#[derive(Debug, Deserialize)]
struct Queued {
    email_id: String,
}

#[derive(Debug, Deserialize)]
struct WireEmail {
    email_id: String,
    #[serde(default)]
    to: Value,
    #[serde(default)]
    template_id: Value,
    #[serde(default)]
    template_data: Value,
}

impl From<WireEmail> for FoundEmail {
    fn from(wire: WireEmail) -> Self {
        let text = |v: Value| match v {
            Value::String(s) => s,
            Value::Null => String::new(),
            other => other.to_string(),
        };
        FoundEmail {
            email_id: wire.email_id,
            to: text(wire.to),
            template_id: text(wire.template_id),
            template_data: wire.template_data,
        }
    }
}

/// Talks to the email service.
#[derive(Debug, Clone)]
pub struct EmailClient {
    transport: Transport,
}

impl EmailClient {
    pub fn new(transport: Transport) -> Self {
        Self { transport }
    }

    /// `POST /email/send` → 202 with the `email_id`.
    pub async fn send_email(&self, request: &EmailRequest) -> Result<String, ServiceError> {
        let queued: Queued = self
            .transport
            .call(Request::effect(
                Service::Email,
                request.body(),
                request.idempotency_key.clone(),
            ))
            .await?;
        Ok(queued.email_id)
    }

    /// `GET /email/emails?email=&template_id=`: the emails sent to `to` with
    /// `template_id` that the provider's search already shows.
    pub async fn search_emails(
        &self,
        to: &str,
        template_id: &str,
    ) -> Result<Vec<FoundEmail>, ServiceError> {
        let found: Vec<WireEmail> = self
            .transport
            .call(Request::search(
                Service::Email,
                &[
                    ("email", to.to_string()),
                    ("template_id", template_id.to_string()),
                ],
            ))
            .await?;
        Ok(found.into_iter().map(FoundEmail::from).collect())
    }
}
