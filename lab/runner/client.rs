//! Enqueuing jobs: Sidekiq's `Client.push`.

use std::sync::{Arc, Mutex};

use fake_services::SharedClock;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use super::backend::{Backend, BackendResult, JobSet};
use super::job::{new_jid, Job};

/// Pushes jobs to a backend. Cheap to clone; job ids come from a seeded
/// source so a simulated run is reproducible.
#[derive(Clone)]
pub struct Client {
    backend: Arc<dyn Backend>,
    clock: SharedClock,
    jids: Arc<Mutex<ChaCha8Rng>>,
}

impl Client {
    pub fn new(backend: Arc<dyn Backend>, clock: SharedClock, seed: u64) -> Self {
        Self {
            backend,
            clock,
            jids: Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(seed))),
        }
    }

    /// A new job (not yet pushed) with a fresh jid, created now.
    pub fn build(&self, class: &str, args: Vec<Value>, queue: &str) -> Job {
        let jid = new_jid(&mut *self.jids.lock().unwrap_or_else(|p| p.into_inner()));
        Job::new(class, args, queue, jid, self.clock.now_ms())
    }

    /// Enqueues `class` with `args` on `queue`; returns the jid.
    pub async fn push(&self, class: &str, args: Vec<Value>, queue: &str) -> BackendResult<String> {
        let job = self.build(class, args, queue);
        let jid = job.jid.clone();
        self.push_job(job).await?;
        Ok(jid)
    }

    /// Enqueues a job built elsewhere (a Ruby client's payload, a retry option).
    pub async fn push_job(&self, job: Job) -> BackendResult<()> {
        self.backend.push(job, self.clock.now_ms()).await
    }

    /// Schedules `class` to be enqueued `delay_ms` from now (`perform_in`).
    pub async fn push_in(
        &self,
        class: &str,
        args: Vec<Value>,
        queue: &str,
        delay_ms: u64,
    ) -> BackendResult<String> {
        let job = self.build(class, args, queue);
        let jid = job.jid.clone();
        let at = self.clock.now_ms() + delay_ms;
        self.backend.add_to_set(JobSet::Schedule, job, at).await?;
        Ok(jid)
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }
}
