//! A job runner with Sidekiq's semantics: at-least-once delivery, named
//! queues in strict priority, retries on Sidekiq's schedule (scaled by a
//! time factor), a dead set, error and death handlers, server middleware, a
//! process set with heartbeats, and basic or reliable fetch.
//!
//! The lab's failures live in these semantics — a retried job runs its side
//! effects again; a job held by a dying worker is lost or comes back — so the
//! runner is the lab's own code, not a wrapper around a queue library.
//!
//! The file names follow Sidekiq's own (`processor.rb`, `launcher.rb`, …):
//!
//! - [`job`]: Sidekiq's JSON payload; [`retry`]: when a failure runs again.
//! - [`backend`]: the storage trait; [`fetch`]: taking a job off the queues
//!   and waiting for one; [`memory`]: the embedded backend; [`redis`]:
//!   Sidekiq's Redis layout (key layout, wire format, Lua scripts).
//! - [`worker`]: job classes, errors, middleware, handlers.
//! - [`client`]: enqueuing; [`processor`]: one job run (the [`Runner`] and
//!   its configuration); [`launcher`]: worker processes (their fetch loops,
//!   heartbeat and poller), the supervisor and `drain_all`; [`history`]:
//!   every attempt; [`job_counts`]: attempts by class, for `GET /metrics`.

pub mod backend;
pub mod client;
pub mod fetch;
pub mod history;
pub mod job;
pub mod job_counts;
pub mod launcher;
pub mod memory;
pub mod processor;
pub mod redis;
pub mod retry;
pub mod worker;

pub use self::redis::RedisBackend;
pub use backend::{Backend, BackendError, Finished, JobSet};
pub use client::Client;
pub use fetch::{Fetch, FetchCall, FetchMode};
pub use history::{Attempt, AttemptOutcome, History};
pub use job::Job;
pub use job_counts::JobCounts;
pub use launcher::Process;
pub use memory::MemoryBackend;
pub use processor::{JobOutcome, Runner, RunnerBuilder, RunnerConfig};
pub use retry::{AfterFailure, RetryPolicy};
pub use worker::{
    DeathHandler, ErrorHandler, ErrorKind, JobContext, JobError, Next, Registry, ServerMiddleware,
    TransientErrorSilencer, Worker,
};
