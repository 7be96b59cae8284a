//! What a finished run leaves behind, as the checker reads it: the order
//! rows, the providers' ledgers (the truth), the reminders, the dead set, the
//! jobs still waiting and every attempt.

use fake_services::{Record, Service};
use serde::Serialize;

use crate::runner::backend::SetEntry;
use crate::runner::{Attempt, Job};
use crate::store::{Order, OutboxEntry, Reminder};

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
    /// One service's ledger (empty when it was not captured).
    pub fn ledger(&self, service: Service) -> &[Record] {
        self.ledgers
            .iter()
            .find(|(s, _)| *s == service)
            .map_or(&[], |(_, records)| records.as_slice())
    }
}
