//! idemlab: a test lab for the failures of at-least-once background jobs —
//! double charges, duplicate emails, lost orders — with fake services that
//! misbehave on command.
//!
//! # Layout
//!
//! `ARCHITECTURE.md`, at the repository's root, is the map: how a scenario
//! flows through these modules, every file with the concept it holds, and
//! the invariants the code keeps. In brief:
//!
//! - [`cli`]: the `lab` command line; [`serve`]: `lab serve`, `lab web` and
//!   `lab worker`; [`options`]: their shared flags.
//! - [`store`]: the SQL store (orders, products, users, outbox, reminders) on SQLite or Postgres.
//! - [`clients`]: the provider clients (payments, email, fulfillment, error catcher) over HTTP or in process.
//! - [`runner`]: the Sidekiq-style job runner (memory or Redis backend).
//! - [`pipeline`]: the order pipeline's jobs, in every naive and safe variant.
//! - [`scenario`]: scenario files and the engine that runs them; [`suite`]:
//!   `lab check`, the CI gate.
//! - [`target`]: the user's own app under the same scenarios (`lab check --target`).
//! - [`checker`]: invariants from the ledgers and order rows; the verdict and report on a run.
//! - [`explore`]: `lab explore` and the property tests — fault plans searched
//!   with proptest, a breaking plan shrunk and written as a scenario file.
//! - [`app`]: a running lab (store, clients, runner, background loops).
//! - [`redact`]: URLs with their secrets hidden, for messages and pages;
//!   [`progress`]: the progress bar of `lab check` and `lab explore`;
//!   [`cores`]: threads held to a core each, for their workers.
//! - [`web`]: the web lab's pages (HTML, or JSON when asked): orders, jobs, service status.
//! - The fake services are their own crate, [`fake_services`], re-exported here.

pub mod app;
pub mod checker;
pub mod cli;
pub mod clients;
pub mod cores;
pub mod explore;
pub mod options;
pub mod pipeline;
pub mod progress;
pub mod redact;
pub mod runner;
pub mod scenario;
pub mod serve;
pub mod store;
pub mod suite;
pub mod target;
pub mod web;

pub use fake_services;
