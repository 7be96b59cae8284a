//! The checker: what must be true at the end of a scenario run, counted from
//! the fake services' ledgers and the order rows — not from what the pipeline
//! believes it did.
//!
//! - [`expect`]: [`Expect`], what a run is held to, and the [`Invariant`]s.
//! - [`snapshot`]: the state a finished run leaves behind, the checker's input.
//! - [`invariants`]: [`check`], each invariant asked of the module below that
//!   counts it; [`violation`]: a broken one, as a [`Violation`] with its
//!   ledger records and job history; [`indexed`]: the snapshot indexed once
//!   for every check (and each dead job's death notice).
//! - [`effects`]: charges, emails and fulfillments per order, counted from
//!   the ledgers alone; [`per_order`]: those counts against the order rows.
//! - [`reminders`]: each reminder sent once.
//! - [`settlement`]: how each order ended (complete, settled, lost).
//! - [`deaths`]: the dead set and the death notifications matched to it.
//! - [`records`]: reading a ledger record's fields and a job's order.
//! - [`wording`]: the counted nouns and lists the messages are written with.
//! - [`verdict`](mod@verdict): the [`Verdict`] (did the run end as its scenario expected?).
//! - [`report`]: the verdict as text and JSON.
//! - [`target`](mod@target): the same invariants for a user's own app, from
//!   the ledgers and Sidekiq's Redis alone (`lab check --target`).

pub mod deaths;
pub mod effects;
pub mod expect;
pub mod indexed;
pub mod invariants;
pub mod per_order;
pub mod records;
pub mod reminders;
pub mod report;
pub mod settlement;
pub mod snapshot;
pub mod target;
pub mod verdict;
pub mod violation;
pub mod wording;

#[cfg(test)]
pub(crate) mod fixtures;

pub use expect::{Expect, Invariant, OrdersExpectation};
pub use invariants::check;
pub use report::{render_json, render_text};
pub use snapshot::Snapshot;
pub use target::{check_target, TargetEffect, TargetRun};
pub use verdict::{verdict, Verdict};
pub use violation::{OrderId, Violation};
