//! The payments client: charge a card, and search charges by order (for
//! dedup by search).

use fake_services::Service;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::ServiceError;
use super::transport::{Request, Transport};
use super::{lenient_u64, metadata, metadata_fields};

/// A charge to make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeRequest {
    pub customer_id: String,
    pub payment_method_id: String,
    pub amount_cents: u64,
    pub order_id: i64,
    /// The book server's own dedup: `metadata.idempotency_key` in the body;
    /// a key that matches an earlier *successful* charge returns that charge.
    pub metadata_idempotency_key: Option<String>,
    /// The `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
}

impl ChargeRequest {
    /// The JSON body, as the book app sends it.
    pub fn body(&self) -> Value {
        json!({
            "customer_id": self.customer_id,
            "payment_method_id": self.payment_method_id,
            "amount_cents": self.amount_cents,
            "metadata": metadata(self.order_id, self.metadata_idempotency_key.as_deref()),
        })
    }
}

/// How a charge went. A decline is an answer (200), not an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Charge {
    Success { charge_id: String },
    Declined { explanation: String },
}

impl Charge {
    /// The charge's id, when it succeeded.
    pub fn charge_id(&self) -> Option<&str> {
        match self {
            Charge::Success { charge_id } => Some(charge_id),
            Charge::Declined { .. } => None,
        }
    }
}

/// A charge as search shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoundCharge {
    /// The record's id (`ch_…`); for a successful charge, its `charge_id`.
    pub charge_id: String,
    /// `success` or `declined`, as the provider answered it.
    pub status: String,
    /// `metadata.order_id`, when it is a whole number.
    pub order_id: Option<i64>,
    pub amount_cents: Option<u64>,
    /// `metadata.idempotency_key`.
    pub metadata_idempotency_key: Option<String>,
}

impl FoundCharge {
    /// Whether this charge took money (not a decline).
    pub fn is_success(&self) -> bool {
        self.status == "success"
    }
}

/// What `GET /payments/charges` returns per charge (the request's fields,
/// plus `id` and `response`).
#[derive(Debug, Deserialize)]
struct WireCharge {
    id: String,
    #[serde(default)]
    amount_cents: Value,
    #[serde(default)]
    metadata: Value,
    #[serde(default)]
    response: Value,
}

impl From<WireCharge> for FoundCharge {
    fn from(wire: WireCharge) -> Self {
        let (order_id, metadata_idempotency_key) = metadata_fields(&wire.metadata);
        FoundCharge {
            charge_id: wire.id,
            status: wire
                .response
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_string(),
            order_id,
            amount_cents: lenient_u64(&wire.amount_cents),
            metadata_idempotency_key,
        }
    }
}

/// Talks to the payments service.
#[derive(Debug, Clone)]
pub struct PaymentsClient {
    transport: Transport,
}

impl PaymentsClient {
    pub fn new(transport: Transport) -> Self {
        Self { transport }
    }

    /// `POST /payments/charge`: 201 success or 200 declined.
    pub async fn charge(&self, request: &ChargeRequest) -> Result<Charge, ServiceError> {
        self.transport
            .call(Request::effect(
                Service::Payments,
                request.body(),
                request.idempotency_key.clone(),
            ))
            .await
    }

    /// `GET /payments/charges?order_id=`: the charges for the order that the
    /// provider's search already shows (declined ones too).
    pub async fn search_charges(&self, order_id: i64) -> Result<Vec<FoundCharge>, ServiceError> {
        let found: Vec<WireCharge> = self
            .transport
            .call(Request::search(
                Service::Payments,
                &[("order_id", order_id.to_string())],
            ))
            .await?;
        Ok(found.into_iter().map(FoundCharge::from).collect())
    }
}
