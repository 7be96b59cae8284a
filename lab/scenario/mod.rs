//! Scenario files: one TOML file per incident — which pipeline, which
//! orders, which faults, what must be true at the end.
//!
//! - [`format`]: the file format, parsed strictly.
//! - [`engine`]: runs a scenario on a fresh in-process lab and checks it.
//! - [`report`]: the result as text.
//! - [`turns`]: the simulator's clock and scheduler: a run is a function of its seed.
//! - [`write`]: a scenario written back as a file (`lab explore`'s counterexamples).

pub mod engine;
pub mod format;
pub mod report;
pub mod turns;
pub mod write;

pub use format::{load, parse, Expect, Fault, Invariant, Scenario, ScenarioError};
pub use write::to_toml;
