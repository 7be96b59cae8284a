//! The embedded backend: Sidekiq's Redis layout kept in process memory, for
//! a lab with nothing to install and for the deterministic simulator.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::sync::Notify;

use super::backend::{
    Backend, BackendResult, BusyJob, JobSet, ProcessInfo, SetEntry, DEAD_MAX_JOBS, DEAD_TIMEOUT_MS,
};
use super::fetch::{wait_for_job, Fetch, FetchMode, LookAgain};
use super::job::{ms_to_seconds, Job};

/// A sorted set: (score, insertion number) → job, like a Redis ZSET whose
/// equal scores keep their order.
type SortedSet = BTreeMap<(u64, u64), Job>;

#[derive(Default)]
struct State {
    queues: HashMap<String, VecDeque<Job>>,
    sets: HashMap<JobSet, SortedSet>,
    in_progress: HashMap<String, Vec<Job>>,
    processes: HashMap<String, ProcessInfo>,
    busy: HashMap<String, Vec<BusyJob>>,
    processed: u64,
    failed: u64,
    sequence: u64,
}

impl State {
    fn set(&mut self, set: JobSet) -> &mut SortedSet {
        self.sets.entry(set).or_default()
    }

    /// Pushes at the front (`LPUSH`); jobs are taken from the back, so
    /// `next_in_line` puts a job where it is taken first (a recovered job).
    fn enqueue(&mut self, mut job: Job, now_ms: u64, next_in_line: bool) {
        job.enqueued_at = Some(ms_to_seconds(now_ms));
        let queue = self.queues.entry(job.queue.clone()).or_default();
        if next_in_line {
            queue.push_back(job);
        } else {
            queue.push_front(job);
        }
    }
}

/// Queues and sets in memory. Jobs are taken from the back of a queue and
/// pushed at the front, as Sidekiq does with `LPUSH` / `BRPOP`.
#[derive(Default)]
pub struct MemoryBackend {
    state: Mutex<State>,
    pushed: Notify,
}

impl MemoryBackend {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One look at the queues, in priority order.
    fn try_fetch(&self, fetch: &Fetch<'_>) -> Option<Job> {
        let mut state = self.state();
        let job = fetch
            .queues
            .iter()
            .find_map(|name| state.queues.get_mut(name).and_then(VecDeque::pop_back))?;
        if fetch.mode == FetchMode::Reliable {
            state
                .in_progress
                .entry(fetch.process.to_string())
                .or_default()
                .push(job.clone());
        }
        Some(job)
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn push(&self, job: Job, now_ms: u64) -> BackendResult<()> {
        self.state().enqueue(job, now_ms, false);
        self.pushed.notify_waiters();
        self.pushed.notify_one();
        Ok(())
    }

    async fn fetch(&self, fetch: &Fetch<'_>) -> BackendResult<Option<Job>> {
        // Every push goes through this backend and wakes the waiters.
        wait_for_job(&self.pushed, fetch.wait, LookAgain::WhenWoken, || {
            std::future::ready(Ok(self.try_fetch(fetch)))
        })
        .await
    }

    async fn acknowledge(&self, process: &str, job: &Job) -> BackendResult<()> {
        let mut state = self.state();
        if let Some(list) = state.in_progress.get_mut(process) {
            if let Some(i) = list.iter().position(|j| j.jid == job.jid) {
                list.remove(i);
            }
        }
        Ok(())
    }

    async fn add_to_set(&self, set: JobSet, job: Job, at_ms: u64) -> BackendResult<()> {
        let mut state = self.state();
        state.sequence += 1;
        let seq = state.sequence;
        let entries = state.set(set);
        entries.insert((at_ms, seq), job);
        if set == JobSet::Dead {
            let cutoff = at_ms.saturating_sub(DEAD_TIMEOUT_MS);
            entries.retain(|(score, _), _| *score >= cutoff);
            while entries.len() > DEAD_MAX_JOBS {
                entries.pop_first();
            }
        }
        Ok(())
    }

    async fn enqueue_due(&self, now_ms: u64) -> BackendResult<usize> {
        let mut moved = 0;
        {
            let mut state = self.state();
            for set in [JobSet::Schedule, JobSet::Retry] {
                let due: Vec<(u64, u64)> = state
                    .set(set)
                    .range(..(now_ms + 1, 0))
                    .map(|(k, _)| *k)
                    .collect();
                for key in due {
                    if let Some(job) = state.set(set).remove(&key) {
                        state.enqueue(job, now_ms, false);
                        moved += 1;
                    }
                }
            }
        }
        if moved > 0 {
            self.pushed.notify_waiters();
        }
        Ok(moved)
    }

    async fn next_due_ms(&self) -> BackendResult<Option<u64>> {
        let mut state = self.state();
        let first = |s: &SortedSet| s.keys().next().map(|(at, _)| *at);
        let schedule = first(state.set(JobSet::Schedule));
        let retry = first(state.set(JobSet::Retry));
        Ok(schedule.into_iter().chain(retry).min())
    }

    async fn set_entries(&self, set: JobSet) -> BackendResult<Vec<SetEntry>> {
        Ok(self
            .state()
            .set(set)
            .iter()
            .map(|((at_ms, _), job)| SetEntry {
                at_ms: *at_ms,
                job: job.clone(),
            })
            .collect())
    }

    async fn delete_from_set(&self, set: JobSet, jid: &str) -> BackendResult<bool> {
        let mut state = self.state();
        let entries = state.set(set);
        let key = entries.iter().find(|(_, j)| j.jid == jid).map(|(k, _)| *k);
        Ok(key.and_then(|k| entries.remove(&k)).is_some())
    }

    async fn requeue_from_set(&self, set: JobSet, jid: &str, now_ms: u64) -> BackendResult<bool> {
        let job = {
            let mut state = self.state();
            let entries = state.set(set);
            let key = entries.iter().find(|(_, j)| j.jid == jid).map(|(k, _)| *k);
            let job = key.and_then(|k| entries.remove(&k));
            if let Some(job) = &job {
                state.enqueue(job.clone(), now_ms, false);
            }
            job
        };
        if job.is_some() {
            self.pushed.notify_waiters();
        }
        Ok(job.is_some())
    }

    async fn queue_sizes(&self) -> BackendResult<Vec<(String, usize)>> {
        Ok(self
            .state()
            .queues
            .iter()
            .map(|(name, q)| (name.clone(), q.len()))
            .collect())
    }

    async fn heartbeat(&self, process: ProcessInfo, busy: Vec<BusyJob>) -> BackendResult<()> {
        let mut state = self.state();
        state.busy.insert(process.identity.clone(), busy);
        state.processes.insert(process.identity.clone(), process);
        Ok(())
    }

    async fn remove_process(&self, identity: &str) -> BackendResult<()> {
        let mut state = self.state();
        state.processes.remove(identity);
        state.busy.remove(identity);
        Ok(())
    }

    async fn processes(&self) -> BackendResult<Vec<ProcessInfo>> {
        let mut list: Vec<ProcessInfo> = self.state().processes.values().cloned().collect();
        list.sort_by(|a, b| a.identity.cmp(&b.identity));
        Ok(list)
    }

    async fn busy(&self) -> BackendResult<Vec<BusyJob>> {
        Ok(self.state().busy.values().flatten().cloned().collect())
    }

    async fn recover_expired(&self, now_ms: u64, ttl_ms: u64) -> BackendResult<Vec<Job>> {
        let recovered = {
            let mut state = self.state();
            let expired: Vec<String> = state
                .processes
                .values()
                .filter(|p| now_ms.saturating_sub(p.beat_ms) > ttl_ms)
                .map(|p| p.identity.clone())
                .collect();
            // In-progress lists of processes that never beat (or were
            // forgotten) are orphans too.
            let orphans: Vec<String> = state
                .in_progress
                .keys()
                .filter(|id| !state.processes.contains_key(*id))
                .cloned()
                .collect();
            let mut recovered = Vec::new();
            for identity in expired.into_iter().chain(orphans) {
                state.processes.remove(&identity);
                state.busy.remove(&identity);
                for job in state.in_progress.remove(&identity).unwrap_or_default() {
                    recovered.push(job.clone());
                    state.enqueue(job, now_ms, true);
                }
            }
            recovered
        };
        if !recovered.is_empty() {
            self.pushed.notify_waiters();
        }
        Ok(recovered)
    }

    async fn waiting_jobs(&self) -> BackendResult<Vec<Job>> {
        let state = self.state();
        Ok(state
            .queues
            .values()
            .flatten()
            .chain(state.in_progress.values().flatten())
            .cloned()
            .collect())
    }

    async fn count(&self, processed: u64, failed: u64) -> BackendResult<()> {
        let mut state = self.state();
        state.processed += processed;
        state.failed += failed;
        Ok(())
    }

    async fn stats(&self) -> BackendResult<(u64, u64)> {
        let state = self.state();
        Ok((state.processed, state.failed))
    }

    async fn clear(&self) -> BackendResult<()> {
        *self.state() = State::default();
        Ok(())
    }
}
