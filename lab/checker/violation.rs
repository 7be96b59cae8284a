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
    pub order_id: Option<OrderId>,
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

/// An order's id as the checker names it: the lab's own orders are numbered,
/// a target's are whatever its app calls them (a number, a UUID, a slug).
/// Written to JSON as a number when it is one, so reports keep their shape.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrderId(pub String);

impl OrderId {
    /// The id as a number, when it is one (every lab order's is).
    pub fn as_i64(&self) -> Option<i64> {
        self.0.parse().ok()
    }
}

impl From<i64> for OrderId {
    fn from(id: i64) -> Self {
        OrderId(id.to_string())
    }
}

impl From<&str> for OrderId {
    fn from(id: &str) -> Self {
        OrderId(id.to_string())
    }
}

impl std::fmt::Display for OrderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for OrderId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.as_i64() {
            Some(n) => serializer.serialize_i64(n),
            None => serializer.serialize_str(&self.0),
        }
    }
}
