//! Exploring fault plans: instead of the incidents someone thought of,
//! proptest generates fault plans, runs each in the scenario engine, and
//! shrinks a plan that breaks the pipeline to the smallest that still does —
//! handed back as a ready scenario file.
//!
//! - [`plan`]: the fault plans (proptest strategies) and the safe
//!   expectations they are held to.
//! - [`search`]: [`explore`], the search and the shrinking.
//! - [`cli`]: `lab explore`.
//! - [`one_core`]: an exploration holds itself to one core, where the
//!   simulator runs fastest.

pub mod cli;
pub mod one_core;
pub mod plan;
pub mod search;

pub use plan::{plans, safe_expect, scenarios, Plan};
pub use search::{explore, Counterexample, Exploration, ExploreError, ExploreOptions, Progress};
