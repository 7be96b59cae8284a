//! [`RunOptions`]: how every scenario of a `lab check` or an exploration
//! runs — its seed, the virtual deadline, the clients' timeout, and whether
//! the queues, the store and the fake services are the embedded ones or
//! Redis, Postgres and HTTP. Both the world a run is set up in and the drive
//! loop read them.

/// How scenarios run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Seeds the fake services and the runner: the same seed, the same run.
    pub seed: u64,
    /// Virtual time after which a run that has not settled is a failure.
    pub deadline_ms: u64,
    /// The jobs' provider clients give up after this long (virtual).
    pub client_timeout_ms: u64,
    /// Run the queues on this Redis (each run in a namespace of its own,
    /// removed afterwards) instead of in memory.
    pub redis: Option<String>,
    /// Run the store on a fresh database of this Postgres server (dropped
    /// afterwards) instead of an in-memory SQLite database.
    pub database: Option<String>,
    /// Call the fake services over HTTP (a server on a free 127.0.0.1 port,
    /// on the run's virtual time) instead of in process: the web lab's way,
    /// to check that both give the same outcome.
    pub over_http: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            seed: 1,
            // Sidekiq's 25 retries take about three weeks.
            deadline_ms: 60 * 24 * 3600 * 1000,
            client_timeout_ms: 5_000,
            redis: None,
            database: None,
            over_http: false,
        }
    }
}
