//! The provider clients: how the order pipeline's jobs talk to payments,
//! email, fulfillment and the error catcher.
//!
//! One client API, two transports ([`Transport`]): over HTTP to a
//! fake-services server, or in process through
//! [`FakeServices::call`](fake_services::FakeServices::call) for the
//! deterministic simulator. Both fail the same way, and every failure is a
//! [`ServiceError`] that says whether a retry can help
//! ([`ServiceError::is_transient`]) and what to call it in the error catcher
//! ([`ServiceError::class_name`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use idemlab::clients::{ChargeRequest, ProviderClients};
//!
//! let clients = ProviderClients::http("http://127.0.0.1:3001", Duration::from_secs(5))?;
//! let charge = clients
//!     .payments
//!     .charge(&ChargeRequest {
//!         customer_id: "cus_1".into(),
//!         payment_method_id: "pm_1".into(),
//!         amount_cents: 12300,
//!         order_id: 7,
//!         metadata_idempotency_key: None,
//!         idempotency_key: Some("idempotency_key-order-7".into()),
//!     })
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! - [`error`]: [`ServiceError`], [`BuildError`].
//! - [`transport`]: [`Transport`], and the sorting of answers into values or errors.
//! - [`payments`], [`email`], [`fulfillment`], [`error_catcher`]: one client each.

pub mod email;
pub mod error;
pub mod error_catcher;
pub mod fulfillment;
pub mod payments;
pub mod transport;

use std::time::Duration;

use fake_services::FakeServices;
use serde_json::{json, Value};

pub use email::{EmailClient, EmailRequest, FoundEmail};
pub use error::{BuildError, ServiceError};
pub use error_catcher::ErrorCatcherClient;
pub use fulfillment::{FoundFulfillment, FulfillmentClient, FulfillmentRequest};
pub use payments::{Charge, ChargeRequest, FoundCharge, PaymentsClient};
pub use transport::Transport;

/// The four clients over one transport. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ProviderClients {
    pub payments: PaymentsClient,
    pub email: EmailClient,
    pub fulfillment: FulfillmentClient,
    pub error_catcher: ErrorCatcherClient,
    transport: Transport,
}

impl ProviderClients {
    /// The four clients over `transport`.
    pub fn new(transport: Transport) -> Self {
        Self {
            payments: PaymentsClient::new(transport.clone()),
            email: EmailClient::new(transport.clone()),
            fulfillment: FulfillmentClient::new(transport.clone()),
            error_catcher: ErrorCatcherClient::new(transport.clone()),
            transport,
        }
    }

    /// Over HTTP to the fake services at `base_url`, each request limited to
    /// `timeout`.
    pub fn http(base_url: &str, timeout: Duration) -> Result<Self, BuildError> {
        Ok(Self::new(Transport::http(base_url, timeout)?))
    }

    /// Over HTTP to fake services on virtual time, the timeout applied by
    /// the server on its clock (see [`Transport::http_on_virtual_time`]).
    pub fn http_on_virtual_time(base_url: &str, timeout: Duration) -> Result<Self, BuildError> {
        Ok(Self::new(Transport::http_on_virtual_time(
            base_url, timeout,
        )?))
    }

    /// In process over `fakes`, the timeout measured on `fakes.clock()`.
    pub fn in_process(fakes: FakeServices, timeout: Duration) -> Self {
        Self::new(Transport::in_process(fakes, timeout))
    }

    /// The transport the clients share.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }
}

/// The `metadata` object of a charge or fulfillment request.
fn metadata(order_id: i64, idempotency_key: Option<&str>) -> Value {
    match idempotency_key {
        Some(key) => json!({"order_id": order_id, "idempotency_key": key}),
        None => json!({"order_id": order_id}),
    }
}

/// A whole number written as a JSON number or as text (`7` or `"7"`).
/// The order id and idempotency key a found record's `metadata` carries.
fn metadata_fields(metadata: &Value) -> (Option<i64>, Option<String>) {
    (
        metadata.get("order_id").and_then(lenient_i64),
        metadata
            .get("idempotency_key")
            .and_then(Value::as_str)
            .map(str::to_string),
    )
}

fn lenient_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// As [`lenient_i64`], for counts and amounts.
fn lenient_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}
