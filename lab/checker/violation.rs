//! [`Violation`]: one broken invariant, with everything a person needs to see
//! why: the order or reminder, expected against found, the ledger records
//! (with what the client was told) and the job history.

use fake_services::Record;
use serde::Serialize;

use super::expect::Invariant;
use crate::runner::Attempt;

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    pub invariant: Invariant,
    /// The order it is about, when it is about one.
    pub order_id: Option<i64>,
    /// The reminder it is about (`reminders_per_reminder`).
    pub reminder_id: Option<i64>,
    pub expected: String,
    pub found: String,
    /// A plain sentence fragment, e.g. "order 1 was charged 2 times".
    pub message: String,
    /// The ledger records involved, with what the client was told.
    pub records: Vec<Record>,
    /// The job history: the attempts whose first argument is the order id
    /// (for a reminder, the sweeps; for the dead set, the dead jobs' attempts).
    pub attempts: Vec<Attempt>,
}
