//! `Indexed`: a finished run's snapshot, indexed once for every check:
//! orders by id, each dead job with the death notification that belongs to
//! it, and the records, attempts and jobs of one order.

use fake_services::{Record, Service};

use super::records::{exception_message, first_arg_is, is_death, is_for_order, DEATH_MARK};
use super::snapshot::Snapshot;
use crate::runner::backend::SetEntry;
use crate::runner::Attempt;
use crate::store::Order;

/// A snapshot, indexed for the checks.
pub(super) struct Indexed<'a> {
    pub(super) snapshot: &'a Snapshot,
    /// By id.
    pub(super) orders: Vec<&'a Order>,
    /// For each entry of the dead set (same index), the death notification
    /// matched to it, if any.
    pub(super) death_notices: Vec<Option<&'a Record>>,
}

impl<'a> Indexed<'a> {
    pub(super) fn new(snapshot: &'a Snapshot) -> Self {
        let mut orders: Vec<&Order> = snapshot.orders.iter().collect();
        orders.sort_by_key(|o| o.id);
        let death_notices = match_deaths(
            &snapshot.dead,
            snapshot.ledger(Service::ErrorCatcher).iter().collect(),
        );
        Indexed {
            snapshot,
            orders,
            death_notices,
        }
    }

    /// The attempts at the order's jobs.
    pub(super) fn attempts_for(&self, order_id: i64) -> Vec<Attempt> {
        self.snapshot
            .history
            .iter()
            .filter(|a| first_arg_is(&a.args, order_id))
            .cloned()
            .collect()
    }

    /// The dead-set entries for an order, with their death notification.
    pub(super) fn dead_for(&self, order_id: i64) -> Vec<(&'a SetEntry, Option<&'a Record>)> {
        self.snapshot
            .dead
            .iter()
            .zip(&self.death_notices)
            .filter(|(entry, _)| first_arg_is(&entry.job.args, order_id))
            .map(|(entry, notice)| (entry, *notice))
            .collect()
    }

    /// Whether a job for the order would still run.
    pub(super) fn pending_for(&self, order_id: i64) -> bool {
        self.snapshot
            .pending
            .iter()
            .any(|job| first_arg_is(&job.args, order_id))
    }

    /// Whether the order's outbox row is still to be relayed.
    pub(super) fn outbox_for(&self, order_id: i64) -> bool {
        self.snapshot
            .outbox_pending
            .iter()
            .any(|entry| entry.order_id == order_id)
    }

    /// Every record of the three effect ledgers for the order.
    pub(super) fn records_for(&self, order_id: i64) -> Vec<Record> {
        [Service::Payments, Service::Email, Service::Fulfillment]
            .into_iter()
            .flat_map(|service| self.snapshot.ledger(service))
            .filter(|r| is_for_order(r, order_id))
            .cloned()
            .collect()
    }
}

/// Pairs each dead job with a death notification, one notification per job:
/// the message the death handler writes for it
/// (`<JobClass> won't be retried: <error message>`) if there is one, else any
/// death notification for a job of its class. The notification does not name
/// the order, so two dead jobs of one class with one notification leave the
/// later death unnotified.
pub(super) fn match_deaths<'a>(
    dead: &[SetEntry],
    notices: Vec<&'a Record>,
) -> Vec<Option<&'a Record>> {
    let mut free: Vec<&Record> = notices.into_iter().filter(|r| is_death(r)).collect();
    let mut matched = vec![None; dead.len()];
    let mut order: Vec<usize> = (0..dead.len()).collect();
    order.sort_by_key(|&i| dead[i].at_ms);
    // Exact messages first, so a vague match cannot take another job's notice.
    for exact in [true, false] {
        for &i in &order {
            if matched[i].is_some() {
                continue;
            }
            let job = &dead[i].job;
            let prefix = format!("{} {DEATH_MARK}", job.class);
            let full = job
                .error_message
                .as_deref()
                .map(|m| format!("{prefix}: {m}"));
            let fits = |r: &&Record| {
                let m = exception_message(r).unwrap_or_default();
                if exact {
                    full.as_deref() == Some(m)
                } else {
                    m.starts_with(&prefix)
                }
            };
            if let Some(at) = free.iter().position(fits) {
                matched[i] = Some(free.remove(at));
            }
        }
    }
    matched
}
