//! The job runner's Sidekiq semantics, on a virtual clock, on both queue
//! backends: `on_each_backend!` makes every case of a module a
//! `<module>::memory::<case>` and a `<module>::redis::<case>` test, so the
//! two cannot drift (`cargo test redis::` runs the Redis share);
//! `on_redis!` makes a Redis-only case `<module>::redis_only::<case>`.
//! `redis_layout` reads the Redis backend's keys with a plain connection:
//! Sidekiq's layout and JSON, exactly.
//!
//! Redis: `IDEMLAB_TEST_REDIS` (default `redis://127.0.0.1:6379`). Every
//! backend a test makes gets its own random key namespace, deleted at the end,
//! so the tests run in parallel on one server. If the server is not
//! reachable the Redis tests are skipped with a note on stderr — unless `CI`
//! is set, where they fail.
//!
//! No test waits on real time except where real time is the subject (the
//! graceful-stop timeout, a fetch's wait), and then only for a short, bounded
//! while.
//!
//! The cases, by behaviour: [`fetch`], [`retries`], [`sets`], [`processes`],
//! [`backend`], [`redis_layout`]. The shared parts: [`harness`] (backends,
//! the Redis test server, the macros), [`lab`] (a runner with test workers
//! and handlers), [`fixtures`] (jobs, process records, fetches).

mod fixtures;
mod harness;
mod lab;

mod backend;
mod fetch;
mod processes;
mod redis_layout;
mod retries;
mod sets;

/// What every case module uses.
mod prelude {
    pub use std::collections::{BTreeSet, HashMap};
    pub use std::sync::atomic::{AtomicU32, Ordering};
    pub use std::sync::{Arc, Mutex};
    pub use std::time::Duration;

    pub use ::redis::AsyncCommands;
    pub use fake_services::Clock;
    pub use idemlab::runner::backend::{BusyJob, ProcessInfo, DEAD_MAX_JOBS, DEAD_TIMEOUT_MS};
    pub use idemlab::runner::{
        AttemptOutcome, Backend, Fetch, FetchCall, FetchMode, Finished, Job, JobSet, RedisBackend,
        Registry, RetryPolicy, RunnerConfig,
    };
    pub use idemlab_test_support::wait_until;
    pub use serde_json::{json, Value};

    pub use crate::fixtures::*;
    pub(crate) use crate::harness::{on_each_backend, on_redis};
    pub use crate::harness::{Backends, Kind};
    pub use crate::lab::*;
}
