//! Exploring fault plans: instead of the incidents someone thought of,
//! proptest generates fault plans, runs each in the scenario engine, and
//! shrinks a plan that breaks the pipeline to the smallest that still does —
//! handed back as a ready scenario file.
//!
//! - [`plan`]: the fault plans (proptest strategies) and the safe
//!   expectations they are held to.
//! - [`search_loop`]: the one search-and-shrink loop, proptest's runner
//!   done step for step so that runs can go ahead on several cores with the
//!   same result, with its shrinking and time budgets; both explorations
//!   below call it.
//! - [`search`]: [`explore`], the lab's own pipeline explored (each smaller
//!   plan tried under several interleavings), and the counterexample
//!   written as a scenario file.
//! - [`target_plan`]: the fault plans a target takes, in real time.
//! - [`target`]: [`explore_target`], a user's app explored (`lab explore
//!   --target`): each smaller plan tried a few times, the last confirmed.
//! - [`cli`]: `lab explore`.
//! - [`workers`]: the pinned worker threads (see [`crate::cores`]) the
//!   loop's runs go to with `lab explore --jobs N`.

pub mod cli;
pub mod plan;
pub mod search;
pub mod search_loop;
pub mod target;
pub mod target_plan;
pub mod workers;

pub use plan::{plans, safe_expect, scenarios, Plan};
pub use search::{explore, Counterexample, Exploration, ExploreError, ExploreOptions, Progress};
pub use target::{explore_target, TargetExploration, TargetExploreOptions};
