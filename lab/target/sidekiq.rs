//! A Sidekiq app's Redis, as the lab reads it during a target run: what is
//! left to run (queues, `schedule`, `retry`, the jobs busy in live
//! processes), the dead set, and "Retry now" for every retry, so a job's 25
//! retries take seconds instead of three weeks.
//!
//! The lab's own Redis backend already speaks Sidekiq's layout (it is how
//! the lab's runner and Ruby Sidekiq share queues), so this is a view over
//! [`RedisBackend`], not a second reader.

use std::fmt::Write as _;

use crate::runner::backend::{BusyJob, SetEntry};
use crate::runner::{Backend, Job, JobSet, RedisBackend};

/// A connection to the app's Sidekiq Redis.
pub struct SidekiqView {
    backend: RedisBackend,
}

/// What is left to run.
#[derive(Debug, Clone, Default)]
pub struct Pending {
    /// Jobs on the queues.
    pub queued: Vec<Job>,
    /// `perform_in` jobs not due yet.
    pub scheduled: Vec<SetEntry>,
    /// Failed jobs waiting for their retry.
    pub retry: Vec<SetEntry>,
    /// Jobs running in live worker processes.
    pub busy: Vec<BusyJob>,
}

impl Pending {
    /// Nothing to run: the app's jobs are done (or dead, or lost).
    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
            && self.scheduled.is_empty()
            && self.retry.is_empty()
            && self.busy.is_empty()
    }

    /// Every job that may still run, for the checker.
    pub fn jobs(&self) -> Vec<Job> {
        self.queued
            .iter()
            .cloned()
            .chain(self.scheduled.iter().map(|e| e.job.clone()))
            .chain(self.retry.iter().map(|e| e.job.clone()))
            .chain(self.busy.iter().map(|b| b.job.clone()))
            .collect()
    }

    /// "1 job queued (ChargeOrderJob [3] on default); 1 retry (SendConfirmationJob [3], retry 2: Net::ReadTimeout)".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let list = |jobs: &mut dyn Iterator<Item = String>| jobs.collect::<Vec<_>>().join(", ");
        if !self.queued.is_empty() {
            parts.push(format!(
                "{} queued ({})",
                count(self.queued.len()),
                list(
                    &mut self
                        .queued
                        .iter()
                        .map(|j| format!("{} on {}", job_name(j), j.queue))
                )
            ));
        }
        if !self.busy.is_empty() {
            parts.push(format!(
                "{} running ({})",
                count(self.busy.len()),
                list(&mut self.busy.iter().map(|b| format!(
                    "{} in {}",
                    job_name(&b.job),
                    b.process
                )))
            ));
        }
        if !self.retry.is_empty() {
            parts.push(format!(
                "{} waiting to retry ({})",
                count(self.retry.len()),
                list(&mut self.retry.iter().map(|e| failed(&e.job)))
            ));
        }
        if !self.scheduled.is_empty() {
            parts.push(format!(
                "{} scheduled ({})",
                count(self.scheduled.len()),
                list(&mut self.scheduled.iter().map(|e| job_name(&e.job)))
            ));
        }
        if parts.is_empty() {
            "no Sidekiq job left".into()
        } else {
            parts.join("; ")
        }
    }
}

fn count(n: usize) -> String {
    if n == 1 {
        "1 job".into()
    } else {
        format!("{n} jobs")
    }
}

/// `ChargeOrderJob [3]`.
pub fn job_name(job: &Job) -> String {
    let args = serde_json::to_string(&job.args).unwrap_or_default();
    format!("{} {args}", job.class)
}

/// `SendConfirmationJob [3], retry 2: Net::ReadTimeout: execution expired`.
pub fn failed(job: &Job) -> String {
    let mut out = job_name(job);
    if let Some(n) = job.retry_count {
        let _ = write!(out, ", retry {n}");
    }
    match (&job.error_class, &job.error_message) {
        (Some(class), Some(message)) => {
            let _ = write!(out, ": {class}: {message}");
        }
        (Some(class), None) => {
            let _ = write!(out, ": {class}");
        }
        (None, Some(message)) => {
            let _ = write!(out, ": {message}");
        }
        (None, None) => {}
    }
    out
}

impl SidekiqView {
    /// Connects to the app's Redis (and its namespace, if it uses one).
    pub async fn connect(url: &str, namespace: Option<&str>) -> Result<SidekiqView, String> {
        let backend = match namespace {
            Some(ns) => RedisBackend::connect_with_namespace(url, ns).await,
            None => RedisBackend::connect(url).await,
        }
        .map_err(|e| format!("cannot reach the app's Sidekiq Redis: {e}"))?;
        Ok(SidekiqView { backend })
    }

    /// What is left to run. Busy jobs are those of the processes in the
    /// process set: a killed process's are not (see
    /// [`SidekiqView::forget_killed_processes`]).
    pub async fn pending(&self) -> Result<Pending, String> {
        let b = &self.backend;
        let err = |e: crate::runner::BackendError| format!("reading Sidekiq's Redis: {e}");
        // One MULTI for the queues and the sets, so a retry moving to its
        // queue is not missed between two reads; the busy jobs after it (a
        // job popped since is busy, or — until Sidekiq's next heartbeat —
        // seen by nobody, which settling's quiet window covers).
        let waiting = b.snapshot_waiting().await.map_err(err)?;
        let busy = b.busy().await.map_err(err)?;
        Ok(Pending {
            queued: waiting.queued,
            scheduled: waiting.schedule,
            retry: waiting.retry,
            busy,
        })
    }

    /// The dead set.
    pub async fn dead(&self) -> Result<Vec<SetEntry>, String> {
        self.backend
            .set_entries(JobSet::Dead)
            .await
            .map_err(|e| format!("reading Sidekiq's dead set: {e}"))
    }

    /// The retry set, for the report.
    pub async fn retries(&self) -> Result<Vec<SetEntry>, String> {
        self.backend
            .set_entries(JobSet::Retry)
            .await
            .map_err(|e| format!("reading Sidekiq's retry set: {e}"))
    }

    /// "Retry now" for every job in the retry set: each goes back onto its
    /// queue at once, its payload unchanged (Sidekiq's own "Retry now"
    /// lowers `retry_count`, so a job moved that way would never die).
    /// Returns the entries moved, for the timeline. With `twice` (the
    /// scenario's `queue = "duplicate"`), each is pushed a second time, as
    /// the proxy doubles the pushes of Sidekiq's own scheduler, which this
    /// move stands in for.
    pub async fn retry_now(&self, now_ms: u64, twice: bool) -> Result<Vec<SetEntry>, String> {
        let entries = self.retries().await?;
        let mut moved = Vec::new();
        for entry in entries {
            let requeued = self
                .backend
                .requeue_from_set(JobSet::Retry, &entry.job.jid, now_ms)
                .await
                .map_err(|e| format!("moving a retry to its queue: {e}"))?;
            if requeued {
                if twice {
                    self.backend
                        .push(entry.job.clone(), now_ms)
                        .await
                        .map_err(|e| format!("pushing a retry's second copy: {e}"))?;
                }
                moved.push(entry);
            }
        }
        Ok(moved)
    }

    /// How many processes are in Sidekiq's process set: the workers that
    /// are up and have reached their Redis (each writes its heartbeat there
    /// once started).
    pub async fn process_count(&self) -> Result<usize, String> {
        self.backend
            .processes()
            .await
            .map(|p| p.len())
            .map_err(|e| format!("reading Sidekiq's process set: {e}"))
    }

    /// Called right after the lab killed the worker processes: every
    /// process in Sidekiq's process set is one of them (their records would
    /// linger until the heartbeat expires). They are removed, as Sidekiq's
    /// own cleanup would do a minute later, and their busy jobs stop
    /// counting as left to run (with basic fetch they are lost; with a
    /// reliable fetch they wait in an in-progress list, which is queued).
    pub async fn forget_killed_processes(&self) -> Result<Vec<String>, String> {
        let processes = self
            .backend
            .processes()
            .await
            .map_err(|e| format!("reading Sidekiq's process set: {e}"))?;
        let mut gone = Vec::new();
        for process in processes {
            self.backend
                .remove_process(&process.identity)
                .await
                .map_err(|e| format!("removing a killed process's record: {e}"))?;
            gone.push(process.identity);
        }
        Ok(gone)
    }
}
