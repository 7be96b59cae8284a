//! The periodic reminder sweep: every (virtual) minute a job sends the
//! reminders that are due. Run late, two sweeps overlap; the `sweep` knob
//! decides whether they then send every reminder twice, and whether a sweep
//! retried after the provider sent (and then failed) sends again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use fake_services::Clock;

use super::email::{send_once, Email};
use super::job_errors::store_error;
use super::jobs::DEFAULT_QUEUE;
use super::knobs::{EmailDedup, Sweep};
use super::Shop;
use crate::runner::{BackendError, Client, JobContext, JobError, Worker};
use crate::store::Reminder;

pub const SWEEP_REMINDERS: &str = "SendDueRemindersJob";
pub use super::email::REMINDER_TEMPLATE;
/// The sweep's period: once a minute, as a cron entry would say.
pub const SWEEP_EVERY_MS: u64 = 60_000;

/// The overlap of two sweeps when the scheduler runs late, made exact: the
/// first two sweeps each wait here, after reading the due reminders and
/// before sending, until the other has read them too. Later sweeps pass, and
/// so does a sweep whose partner does not come (it was not fetched with it).
#[derive(Debug, Default)]
pub struct Overlap {
    arrived: AtomicUsize,
}

/// Turns a sweep lets other tasks take before it gives up on its partner.
const PATIENCE: usize = 1_000;

impl Overlap {
    async fn wait(&self, clock: &dyn Clock) {
        if self.arrived.fetch_add(1, Ordering::SeqCst) >= 2 {
            return;
        }
        for _ in 0..PATIENCE {
            if self.arrived.load(Ordering::SeqCst) >= 2 {
                return;
            }
            clock.interleave().await;
        }
    }
}

/// Enqueues one sweep (what the scheduler does each minute).
pub async fn schedule_sweep(client: &Client) -> Result<String, BackendError> {
    client.push(SWEEP_REMINDERS, vec![], DEFAULT_QUEUE).await
}

/// Sends due reminders.
pub(super) struct SweepReminders(pub Arc<Shop>);

#[async_trait]
impl Worker for SweepReminders {
    /// The scheduler enqueues one a minute, due reminders or not.
    fn periodic(&self) -> bool {
        true
    }

    async fn perform(&self, ctx: &JobContext<'_>) -> Result<(), JobError> {
        let shop = &self.0;
        let now = shop.now_ms();
        let due: Vec<Reminder> = match shop.knobs.sweep {
            // Two sweeps that read before either writes both send.
            Sweep::SelectThenSend => shop.store.due_reminders(now).await.map_err(store_error)?,
            Sweep::AtomicClaim => {
                let claimer = &ctx.job.jid;
                shop.store
                    .claim_due_reminders(now, claimer)
                    .await
                    .map_err(store_error)?;
                // This job's claims, including those of an earlier attempt of
                // it that failed before sending them all.
                shop.store
                    .reminders()
                    .await
                    .map_err(store_error)?
                    .into_iter()
                    .filter(|r| r.claimed_by.as_deref() == Some(claimer) && r.sent_at_ms.is_none())
                    .collect()
            }
        };
        if due.is_empty() {
            ctx.found_nothing_to_do();
        }
        if let Some(overlap) = &shop.sweep_overlap {
            overlap.wait(shop.clock.as_ref()).await;
        }
        for reminder in due {
            // A retried sweep sends its unsent claims again: the key makes
            // the provider replay what it sent before failing.
            let dedup = match shop.knobs.sweep {
                Sweep::SelectThenSend => EmailDedup::None,
                Sweep::AtomicClaim => EmailDedup::IdempotencyKey,
            };
            let email_id = send_once(shop, Email::reminder(&reminder), dedup).await?;
            shop.store
                .mark_reminder_sent(reminder.id, &email_id, shop.now_ms())
                .await
                .map_err(store_error)?;
        }
        Ok(())
    }
}
