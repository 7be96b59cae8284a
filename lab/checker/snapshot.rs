//! What a finished run leaves behind, as the checker reads it: the order
//! rows, the providers' ledgers (the truth), the reminders, the dead set, the
//! jobs still waiting and every attempt.

use fake_services::{FakeServices, Record, Service};
use serde::Serialize;

use crate::runner::backend::SetEntry;
use crate::runner::{Attempt, Backend, Job, JobSet};
use crate::store::{Order, OutboxEntry, Reminder, Store};

/// The state of a lab at the end of a scenario run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    pub orders: Vec<Order>,
    /// Every effect of payments, email, fulfillment and the error catcher.
    pub ledgers: Vec<(Service, Vec<Record>)>,
    pub reminders: Vec<Reminder>,
    /// The dead set.
    pub dead: Vec<SetEntry>,
    /// Jobs that would still run: queued, scheduled, waiting to retry, or in
    /// a dead process's in-progress list.
    pub pending: Vec<Job>,
    /// Outbox rows not yet relayed.
    pub outbox_pending: Vec<OutboxEntry>,
    /// Every attempt at every job, oldest first.
    pub history: Vec<Attempt>,
}

impl Snapshot {
    /// Reads what a lab left behind: the store's rows, the services'
    /// ledgers, the queues (`history` comes from the runner, which keeps it
    /// in memory). A part that cannot be read is left empty; the checker
    /// then reports what it misses.
    pub async fn capture(
        store: &Store,
        fakes: &FakeServices,
        backend: &dyn Backend,
        history: Vec<Attempt>,
    ) -> Snapshot {
        let dead = backend.set_entries(JobSet::Dead).await.unwrap_or_default();
        let mut pending: Vec<Job> = backend.waiting_jobs().await.unwrap_or_default();
        for set in [JobSet::Retry, JobSet::Schedule] {
            let entries = backend.set_entries(set).await.unwrap_or_default();
            pending.extend(entries.into_iter().map(|e| e.job));
        }
        Snapshot {
            orders: store.orders().await.unwrap_or_default(),
            ledgers: Service::ALL
                .iter()
                .map(|s| (*s, fakes.ledger(*s)))
                .collect(),
            reminders: store.reminders().await.unwrap_or_default(),
            dead,
            pending,
            outbox_pending: store.pending_outbox(i64::MAX).await.unwrap_or_default(),
            history,
        }
    }

    /// One service's ledger (empty when it was not captured).
    pub fn ledger(&self, service: Service) -> &[Record] {
        self.ledgers
            .iter()
            .find(|(s, _)| *s == service)
            .map_or(&[], |(_, records)| records.as_slice())
    }
}
