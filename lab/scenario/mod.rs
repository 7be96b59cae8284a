//! Scenario files: one TOML file per incident — which pipeline, which
//! orders, which faults, what must be true at the end.
//!
//! - [`format`](mod@format): the file format, parsed strictly (what must be
//!   true is the checker's [`Expect`](crate::checker::Expect)).
//! - [`engine`]: runs a scenario on a fresh in-process lab and checks it:
//!   the drive loop, from the orders placed until nothing is left to do.
//! - [`run_options`]: how every run goes (seed, deadline, embedded or real
//!   engines).
//! - [`world`]: the lab a run happens in, set up with the scenario's knobs
//!   and faults, and torn down.
//! - [`queue_faults`]: the queue delivering twice, or down.
//! - [`sweep_ticks`]: the reminder scheduler's cron ticks, enqueueing sweeps.
//! - [`spare_stores`]: in-memory stores rewound and reused between runs.
//! - [`turns`]: the simulator's virtual clock, which also picks the task
//!   that runs next (one at a time): a run is a function of its seed.
//! - [`result`]: a scenario's runs, their verdicts, and the result as text;
//!   [`timeline`]: a run's moments in time order, for its report.
//! - [`write`](mod@write): a scenario written back as a file (`lab explore`'s counterexamples).

pub mod engine;
pub mod format;
pub mod queue_faults;
pub mod result;
pub mod run_options;
pub mod spare_stores;
pub mod sweep_ticks;
pub mod timeline;
pub mod turns;
pub mod world;
pub mod write;

pub use format::{load, parse, Fault, Scenario, ScenarioError};
pub use write::to_toml;
