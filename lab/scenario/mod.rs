//! Scenario files: one TOML file per incident — which pipeline, which
//! orders, which faults, what must be true at the end.
//!
//! - [`format`]: the file format, parsed strictly.
//! - [`engine`]: runs a scenario on a fresh in-process lab and checks it.
//! - [`report`]: the result as text.

pub mod engine;
pub mod format;
pub mod report;
pub mod turns;

pub use format::{load, parse, Expect, Fault, Invariant, Scenario, ScenarioError};
