//! idemlab: a test lab for the failures of at-least-once background jobs —
//! double charges, duplicate emails, lost orders — with fake services that
//! misbehave on command.
//!
//! # Layout
//!
//! - [`cli`]: the `lab` command line (`serve`, `fakes`).
//! - [`runner`]: the Sidekiq-style job runner (memory backend).
//! - The fake services are their own crate, [`fake_services`], re-exported here.
//!
//! The order pipeline, the job runner, the scenario engine and the checker
//! arrive with their issues (see DESIGN.md).

pub mod cli;
pub mod runner;

pub use fake_services;
