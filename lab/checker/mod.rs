//! The checker: what must be true at the end of a scenario run, counted from
//! the fake services' ledgers and the order rows — not from what the pipeline
//! believes it did (DESIGN.md, "Checker").
//!
//! - [`snapshot`]: the state a finished run leaves behind, the checker's input.
//! - [`invariants`]: [`check`] — each broken invariant as a [`Violation`] with
//!   its ledger records and job history.
//! - [`report`]: the [`Verdict`] (did the run end as its scenario expected?)
//!   and its text and JSON reports.

pub mod invariants;
pub mod report;
pub mod snapshot;

pub use invariants::{check, Violation};
pub use report::{render_json, render_text, verdict, Verdict};
pub use snapshot::Snapshot;
