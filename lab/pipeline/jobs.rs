//! The order pipeline's jobs: `CompleteOrderJob` (charge) →
//! `SendOrderNotificationEmailJob` → `RequestOrderFulfillmentJob`, each step
//! done the naive or the safe way as the knobs say, with a worker death
//! possible at every step boundary.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::email::{send_once, Email};
use super::job_errors::{service_error, store_error};
use super::keys::idempotency_key;
use super::knobs::{ChargeDedup, EmailDedup, FulfillmentDedup, Structure};
use super::{Shop, Step};
use crate::clients::{Charge, ChargeRequest, FulfillmentRequest};
use crate::runner::{Client, JobContext, JobError, Worker};
use crate::store::{Order, User};

pub const COMPLETE_ORDER: &str = "CompleteOrderJob";
pub const SEND_ORDER_EMAIL: &str = "SendOrderNotificationEmailJob";
pub const REQUEST_FULFILLMENT: &str = "RequestOrderFulfillmentJob";
pub use super::email::CONFIRMATION_TEMPLATE;
/// The charge runs on the `high` queue, the rest on `default`.
pub const CHARGE_QUEUE: &str = "high";
pub const DEFAULT_QUEUE: &str = "default";

/// Charges the order; in the monolithic structure also emails and fulfils,
/// in the chained one enqueues the email job.
pub(super) struct CompleteOrder(pub Arc<Shop>);

#[async_trait]
impl Worker for CompleteOrder {
    async fn perform(&self, ctx: &JobContext<'_>) -> Result<(), JobError> {
        let shop = &self.0;
        let (order, user) = load(shop, ctx).await?;
        if !charge(shop, &order, user.as_ref()).await? {
            return Ok(());
        }
        match shop.knobs.structure {
            Structure::Monolithic => {
                let (order, _) = reload(shop, order.id).await?;
                send_email(shop, &order).await?;
                let (order, user) = reload(shop, order.id).await?;
                request_fulfillment(shop, &order, user.as_ref()).await
            }
            Structure::Chained => {
                enqueue(ctx.client, SEND_ORDER_EMAIL, order.id, DEFAULT_QUEUE).await
            }
        }
    }
}

pub(super) struct SendOrderEmail(pub Arc<Shop>);

#[async_trait]
impl Worker for SendOrderEmail {
    async fn perform(&self, ctx: &JobContext<'_>) -> Result<(), JobError> {
        let shop = &self.0;
        let (order, _) = load(shop, ctx).await?;
        if order.charge_successful != Some(true) {
            // Declined (or never charged): nothing to confirm.
            return Ok(());
        }
        send_email(shop, &order).await?;
        enqueue(ctx.client, REQUEST_FULFILLMENT, order.id, DEFAULT_QUEUE).await
    }
}

pub(super) struct RequestFulfillment(pub Arc<Shop>);

#[async_trait]
impl Worker for RequestFulfillment {
    async fn perform(&self, ctx: &JobContext<'_>) -> Result<(), JobError> {
        let shop = &self.0;
        let (order, user) = load(shop, ctx).await?;
        if order.charge_successful != Some(true) {
            return Ok(());
        }
        request_fulfillment(shop, &order, user.as_ref()).await
    }
}

/// The charge step. Returns whether the pipeline goes on (false: declined).
async fn charge(shop: &Shop, order: &Order, user: Option<&User>) -> Result<bool, JobError> {
    let dedup = shop.knobs.charge;
    if dedup != ChargeDedup::None {
        // The order row already knows the outcome: don't ask again.
        if let Some(successful) = order.charge_successful {
            return Ok(successful);
        }
    }
    let user = user.ok_or_else(|| {
        JobError::fatal(
            "ActiveRecord::RecordNotFound",
            format!("Couldn't find User with 'id'={}", order.user_id),
        )
    })?;
    let key = (dedup == ChargeDedup::IdempotencyKey).then(|| idempotency_key(order.id));
    let request = ChargeRequest {
        customer_id: user.payments_customer_id.clone(),
        payment_method_id: user.payments_payment_method_id.clone(),
        amount_cents: u64::try_from(order.amount_cents).unwrap_or(0),
        order_id: order.id,
        metadata_idempotency_key: key.clone(),
        idempotency_key: key,
    };
    let payments = &shop.clients.payments;
    let earlier = if dedup == ChargeDedup::Search {
        let found = payments
            .search_charges(order.id)
            .await
            .map_err(service_error)?;
        found
            .into_iter()
            .find(|c| c.is_success())
            .map(|c| Charge::Success {
                charge_id: c.charge_id,
            })
    } else {
        None
    };
    let outcome = match earlier {
        Some(found) => found,
        None => payments.charge(&request).await.map_err(service_error)?,
    };
    shop.deaths.at(Step::Charge)?;
    let now = shop.now_ms();
    let successful = match &outcome {
        Charge::Success { charge_id } => {
            shop.store
                .record_charge(order.id, true, Some(charge_id), None, now)
                .await
                .map_err(store_error)?;
            true
        }
        Charge::Declined { explanation } => {
            shop.store
                .record_charge(order.id, false, None, Some(explanation), now)
                .await
                .map_err(store_error)?;
            false
        }
    };
    shop.deaths.at(Step::ChargeRecorded)?;
    Ok(successful)
}

/// The confirmation email step.
async fn send_email(shop: &Shop, order: &Order) -> Result<(), JobError> {
    if shop.knobs.email != EmailDedup::None && order.email_id.is_some() {
        return Ok(());
    }
    let email_id = send_once(shop, Email::confirmation(order), shop.knobs.email).await?;
    shop.deaths.at(Step::Email)?;
    shop.store
        .record_email(order.id, &email_id)
        .await
        .map_err(store_error)?;
    shop.deaths.at(Step::EmailRecorded)
}

/// The fulfillment request step.
async fn request_fulfillment(
    shop: &Shop,
    order: &Order,
    user: Option<&User>,
) -> Result<(), JobError> {
    let dedup = shop.knobs.fulfillment;
    if dedup != FulfillmentDedup::None && order.fulfillment_request_id.is_some() {
        return Ok(());
    }
    let key = (dedup == FulfillmentDedup::IdempotencyKey).then(|| idempotency_key(order.id));
    let request_id = shop
        .clients
        .fulfillment
        .request_fulfillment(&FulfillmentRequest {
            customer_id: user
                .map(|u| u.payments_customer_id.clone())
                .unwrap_or_default(),
            address: order.address.clone(),
            product_id: order.product_id,
            quantity: u32::try_from(order.quantity).unwrap_or(0),
            order_id: order.id,
            metadata_idempotency_key: key.clone(),
            idempotency_key: key,
        })
        .await
        .map_err(service_error)?;
    shop.deaths.at(Step::Fulfillment)?;
    shop.store
        .record_fulfillment(order.id, &request_id)
        .await
        .map_err(store_error)?;
    shop.deaths.at(Step::FulfillmentRecorded)
}

/// The job's order and its user, or a fatal error: a job whose order does
/// not exist (it was rolled back) would fail the same way on every retry.
async fn load(shop: &Shop, ctx: &JobContext<'_>) -> Result<(Order, Option<User>), JobError> {
    let id = ctx
        .job
        .args
        .first()
        .and_then(Value::as_i64)
        .ok_or_else(|| {
            JobError::fatal(
                "ArgumentError",
                format!(
                    "{} takes an order id, got {}",
                    ctx.job.class,
                    Value::Array(ctx.job.args.clone())
                ),
            )
        })?;
    reload(shop, id).await
}

async fn reload(shop: &Shop, id: i64) -> Result<(Order, Option<User>), JobError> {
    shop.store
        .order_and_user(id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| {
            JobError::fatal(
                "ActiveRecord::RecordNotFound",
                format!("Couldn't find Order with 'id'={id}"),
            )
        })
}

/// Enqueues the next job of the chain. A queue outage is transient: the
/// current job is retried, and its steps are skipped as already done.
pub(super) async fn enqueue(
    client: &Client,
    class: &str,
    order_id: i64,
    queue: &str,
) -> Result<(), JobError> {
    client
        .push(class, vec![json!(order_id)], queue)
        .await
        .map(|_| ())
        .map_err(|err| JobError::transient("Redis::CannotConnectError", err.to_string()))
}
