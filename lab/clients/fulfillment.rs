//! The fulfillment client: ask the warehouse to ship an order, and search the
//! requests made for an order.

use fake_services::Service;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::ServiceError;
use super::transport::{Request, Transport};
use super::{lenient_u64, metadata, metadata_fields};

/// A shipment to request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FulfillmentRequest {
    pub customer_id: String,
    /// A blank address is refused by the provider (422 "Missing address").
    pub address: String,
    pub product_id: i64,
    pub quantity: u32,
    pub order_id: i64,
    /// `metadata.idempotency_key`: a repeated one returns the stored request.
    pub metadata_idempotency_key: Option<String>,
    /// The `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
}

impl FulfillmentRequest {
    /// The JSON body, as the book app sends it.
    pub fn body(&self) -> Value {
        json!({
            "customer_id": self.customer_id,
            "address": self.address,
            "product_id": self.product_id,
            "quantity": self.quantity,
            "metadata": metadata(self.order_id, self.metadata_idempotency_key.as_deref()),
        })
    }
}

/// A fulfillment request as search shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoundFulfillment {
    pub request_id: String,
    pub order_id: Option<i64>,
    pub address: Option<String>,
    pub quantity: Option<u64>,
    pub metadata_idempotency_key: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Accepted {
    request_id: String,
}

#[derive(Debug, Deserialize)]
struct WireFulfillment {
    id: String,
    #[serde(default)]
    address: Value,
    #[serde(default)]
    quantity: Value,
    #[serde(default)]
    metadata: Value,
}

impl From<WireFulfillment> for FoundFulfillment {
    fn from(wire: WireFulfillment) -> Self {
        let (order_id, metadata_idempotency_key) = metadata_fields(&wire.metadata);
        FoundFulfillment {
            request_id: wire.id,
            order_id,
            address: wire.address.as_str().map(str::to_string),
            quantity: lenient_u64(&wire.quantity),
            metadata_idempotency_key,
        }
    }
}

/// Talks to the fulfillment service.
#[derive(Debug, Clone)]
pub struct FulfillmentClient {
    transport: Transport,
}

impl FulfillmentClient {
    pub fn new(transport: Transport) -> Self {
        Self { transport }
    }

    /// `PUT /fulfillment/request` → 202 with the `request_id`.
    pub async fn request_fulfillment(
        &self,
        request: &FulfillmentRequest,
    ) -> Result<String, ServiceError> {
        let accepted: Accepted = self
            .transport
            .call(Request::effect(
                Service::Fulfillment,
                request.body(),
                request.idempotency_key.clone(),
            ))
            .await?;
        Ok(accepted.request_id)
    }

    /// `GET /fulfillment/requests?order_id=`.
    pub async fn search_fulfillments(
        &self,
        order_id: i64,
    ) -> Result<Vec<FoundFulfillment>, ServiceError> {
        let found: Vec<WireFulfillment> = self
            .transport
            .call(Request::search(
                Service::Fulfillment,
                &[("order_id", order_id.to_string())],
            ))
            .await?;
        Ok(found.into_iter().map(FoundFulfillment::from).collect())
    }
}
