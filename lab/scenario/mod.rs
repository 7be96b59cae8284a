//! Scenario files: one TOML file per incident — which pipeline, which
//! orders, which faults, what must be true at the end.
//!
//! - [`format`]: the file format, parsed strictly.

pub mod format;

pub use format::{load, parse, Expect, Fault, Invariant, Scenario, ScenarioError};
