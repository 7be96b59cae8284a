//! Ledger truth: every effect a provider performed, with what the client was
//! told about it.
//!
//! A charge whose response was replaced by a 503, or whose connection was
//! dropped, still happened. The checker counts effects from here, not from
//! what the pipeline believes, and the UI shows the gap.

use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::service::Service;

/// What the client heard about an effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Told {
    /// A response with this status; `fault` names the injected fault that
    /// replaced the provider's own answer (`send-then-crash`, which is also
    /// what the book's `X-Crash` header does to an email).
    Response {
        status: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fault: Option<String>,
    },
    /// The connection was closed without an answer.
    Dropped,
}

impl Told {
    /// Whether the client heard the provider's own answer.
    pub fn heard_success(&self) -> bool {
        matches!(self, Told::Response { fault: None, .. })
    }

    /// A short phrase for tables: "201", "503 (send-then-crash)", "nothing (dropped)".
    pub fn describe(&self) -> String {
        match self {
            Told::Response {
                status,
                fault: None,
            } => status.to_string(),
            Told::Response {
                status,
                fault: Some(fault),
            } => format!("{status} ({fault})"),
            Told::Dropped => "nothing (connection dropped)".to_string(),
        }
    }
}

/// One effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// `ch_…`, `em_…`, `fr_…` or `err_…`.
    pub id: String,
    pub service: Service,
    pub created_at_ms: u64,
    /// When search starts to find it (`created_at_ms` plus the search lag then in force).
    pub searchable_at_ms: u64,
    /// The request body as the client sent it.
    pub request: Value,
    /// The `Idempotency-Key` header, if any.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// The provider's own status and body.
    pub status: u16,
    pub response: Value,
    pub told: Told,
}

impl Record {
    /// The order this effect belongs to, read the way the book app writes it:
    /// `metadata.order_id` for charges and fulfillment, `template_data.order_id`
    /// for email.
    pub fn order_id(&self) -> Option<String> {
        order_of(&self.request)
    }

    /// Whether this record counts as the effect the invariants are about: a
    /// successful charge (not a decline), a queued email, an accepted request.
    pub fn is_success(&self) -> bool {
        is_success(self.service, &self.response)
    }

    /// `created_at_ms` as RFC 3339, for people.
    pub fn created_at(&self) -> String {
        humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(self.created_at_ms))
            .to_string()
    }

    /// What search returns for this record, in the book server's shape: the
    /// request's fields, the provider's `response` and the record's id (and
    /// for email, `email_id` at the top, as v1.2.1 has it).
    pub fn search_view(&self) -> Value {
        let mut view = match &self.request {
            Value::Object(fields) => fields.clone(),
            _ => Map::new(),
        };
        if self.service == Service::Email {
            view.insert("email_id".into(), Value::from(self.id.clone()));
        }
        view.insert("id".into(), Value::from(self.id.clone()));
        view.insert("response".into(), self.response.clone());
        view.insert("created_at".into(), Value::from(self.created_at()));
        Value::Object(view)
    }
}

/// The order a request belongs to, read the way the book app writes it:
/// `metadata.order_id` for charges and fulfillment, `template_data.order_id`
/// for email.
pub fn order_of(request: &Value) -> Option<String> {
    let value = request
        .pointer("/metadata/order_id")
        .or_else(|| request.pointer("/template_data/order_id"))?;
    scalar_to_string(value)
}

/// Whether a provider's response is the effect the invariants count: a
/// successful charge (not a decline), any email, request or notification.
pub fn is_success(service: Service, response: &Value) -> bool {
    match service {
        Service::Payments => response.get("status") == Some(&Value::from("success")),
        _ => true,
    }
}

/// A JSON string or number as text, so `order_id: 7` and `"7"` match alike.
pub fn scalar_to_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn told_reads_well() {
        assert_eq!(
            Told::Response {
                status: 503,
                fault: Some("send-then-crash".into())
            }
            .describe(),
            "503 (send-then-crash)"
        );
        assert_eq!(
            serde_json::to_value(Told::Dropped).unwrap(),
            json!({"outcome": "dropped"})
        );
    }
}
