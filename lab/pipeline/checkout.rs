//! Placing an order and starting its first job, in each of the ways the
//! `enqueue` knob names, and the outbox relay.

use serde_json::json;

use super::jobs::{CHARGE_QUEUE, COMPLETE_ORDER};
use super::knobs::Enqueue;
use super::{Shop, Step};
use crate::runner::{BackendError, Client, JobError, Runner};
use crate::store::{NewOrder, Order, StoreError};

/// Why an order could not be placed.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    /// The form was wrong; nothing was saved. The field errors say what.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The web process died at the commit boundary (a planned death).
    #[error("the web process died: {0}")]
    Died(JobError),
    /// The order was saved but its job could not be enqueued: the dual-write
    /// bug of `after-commit` when the queue is down.
    #[error("order {order_id} was saved but its job could not be enqueued: {source}")]
    Enqueue { order_id: i64, source: BackendError },
}

/// A placed order, and what went wrong after it was saved, if anything
/// (`enqueue = inline`: the job body failed in the request and nothing will
/// retry it).
#[derive(Debug)]
pub struct Placed {
    pub order: Order,
    pub problem: Option<String>,
}

/// Saves the order and starts `CompleteOrderJob` the way the knob says.
pub async fn place_order(
    shop: &Shop,
    runner: &Runner,
    new: &NewOrder,
) -> Result<Placed, PlaceError> {
    let client = runner.client();
    let now = shop.now_ms();
    let placed = |order| Placed {
        order,
        problem: None,
    };
    match shop.knobs.enqueue {
        Enqueue::InTransaction => {
            let mut tx = shop.store.begin().await?;
            let order = tx.create_order_at(new, now).await?;
            push(client, order.id).await?;
            if let Err(died) = shop.deaths.at(Step::Commit) {
                // The process dies before COMMIT: the order is rolled back,
                // its job is already on the queue.
                tx.rollback().await?;
                return Err(PlaceError::Died(died));
            }
            tx.commit().await?;
            Ok(placed(order))
        }
        Enqueue::AfterCommit => {
            let order = shop.store.create_order_at(new, now).await?;
            shop.deaths.at(Step::Commit).map_err(PlaceError::Died)?;
            push(client, order.id).await?;
            Ok(placed(order))
        }
        Enqueue::Outbox => {
            let mut tx = shop.store.begin().await?;
            let order = tx.create_order_at(new, now).await?;
            tx.add_outbox(order.id, COMPLETE_ORDER, &json!([order.id]), CHARGE_QUEUE)
                .await?;
            tx.commit().await?;
            shop.deaths.at(Step::Commit).map_err(PlaceError::Died)?;
            // Relay at once for a quick start; if the queue is down, the
            // periodic relay gets it later. Nothing is lost either way.
            if let Err(err) = relay_outbox(shop, client).await {
                tracing::warn!(%err, "outbox relay failed; the periodic relay will retry");
            }
            Ok(placed(order))
        }
        Enqueue::Inline => {
            let order = shop.store.create_order_at(new, now).await?;
            shop.deaths.at(Step::Commit).map_err(PlaceError::Died)?;
            let job = client.build(COMPLETE_ORDER, vec![json!(order.id)], CHARGE_QUEUE);
            let problem = runner
                .perform_inline(&job, "web")
                .await
                .err()
                .map(|err| format!("{err} (ran inline: nothing will retry it)"));
            Ok(Placed { order, problem })
        }
    }
}

/// Enqueues the order's first job.
async fn push(client: &Client, order_id: i64) -> Result<String, PlaceError> {
    client
        .push(COMPLETE_ORDER, vec![json!(order_id)], CHARGE_QUEUE)
        .await
        .map_err(|source| PlaceError::Enqueue { order_id, source })
}

/// Moves pending outbox rows to the queue; returns how many it moved. A row
/// is claimed before it is pushed and released if the push fails, so it is
/// pushed once when all goes well and never lost when the queue is down.
pub async fn relay_outbox(shop: &Shop, client: &Client) -> Result<usize, PlaceError> {
    let claimed = shop.store.claim_pending_outbox(100, shop.now_ms()).await?;
    let mut moved = 0;
    for (i, entry) in claimed.iter().enumerate() {
        let args = entry.args.as_array().cloned().unwrap_or_default();
        let job = client.build(&entry.job_class, args, &entry.queue);
        if let Err(source) = client.push_job(job).await {
            // This row and the claimed ones not pushed yet are pending again.
            for unpushed in &claimed[i..] {
                shop.store.release_outbox(unpushed.id).await?;
            }
            return Err(PlaceError::Enqueue {
                order_id: entry.order_id,
                source,
            });
        }
        moved += 1;
    }
    Ok(moved)
}
