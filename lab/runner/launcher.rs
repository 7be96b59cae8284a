//! Worker processes, as Sidekiq's launcher (and its manager) runs them: a
//! [`Process`] starts, beats into the process set, runs `concurrency` fetch
//! loops that hand each job to the processor ([`Runner::perform`]), polls
//! for due retries and the jobs of dead processes, and stops or is killed.
//! Also the supervisor that restarts a process that died, and `drain_all`,
//! Sidekiq's fake test mode.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use fake_services::ManualClock;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::backend::{BusyJob, Finished, ProcessInfo};
use super::fetch::{Fetch, FetchCall, FetchMode};
use super::processor::{JobOutcome, Runner, Settle};
use super::{Job, JobSet};

type Busy = Arc<Mutex<HashMap<String, BusyJob>>>;

/// A running worker process.
pub struct Process {
    pub identity: String,
    runner: Runner,
    stop: watch::Sender<bool>,
    fetchers: Vec<JoinHandle<()>>,
    background: Vec<JoinHandle<()>>,
    busy: Busy,
    died: mpsc::Receiver<()>,
}

impl Runner {
    /// Starts a process: it beats, then fetches with `concurrency` workers.
    pub async fn start(&self) -> Process {
        let identity = self.new_identity();
        let busy: Busy = Arc::default();
        let (stop, stopped) = watch::channel(false);
        let (died_tx, died) = mpsc::channel(1);
        let started_at_ms = self.clock().now_ms();
        beat(self, &identity, started_at_ms, &busy).await;
        let mut background = Vec::new();
        // Heartbeat.
        background.push(tokio::spawn({
            let (runner, identity, busy) = (self.clone(), identity.clone(), busy.clone());
            async move {
                loop {
                    runner.clock().sleep(runner.config().heartbeat_ms).await;
                    beat(&runner, &identity, started_at_ms, &busy).await;
                }
            }
        }));
        // Poller: due retries and scheduled jobs; jobs of dead processes. It
        // beats first, so that a jump of virtual time past the TTL never makes
        // this live process look dead to itself.
        background.push(tokio::spawn({
            let (runner, identity, busy) = (self.clone(), identity.clone(), busy.clone());
            async move {
                loop {
                    beat(&runner, &identity, started_at_ms, &busy).await;
                    poll(&runner).await;
                    runner.clock().sleep(runner.config().poll_ms).await;
                }
            }
        }));
        let fetchers = (0..self.config().concurrency.max(1))
            .map(|slot| {
                tokio::spawn(fetch_loop(
                    slot,
                    self.clone(),
                    identity.clone(),
                    busy.clone(),
                    stopped.clone(),
                    died_tx.clone(),
                ))
            })
            .collect();
        tracing::info!(%identity, "worker process started");
        Process {
            identity,
            runner: self.clone(),
            stop,
            fetchers,
            background,
            busy,
            died,
        }
    }

    /// Runs processes until `shutdown` completes, starting a new one whenever
    /// one dies (as systemd restarts a crashed Sidekiq).
    pub async fn supervise(&self, shutdown: impl std::future::Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let mut process = self.start().await;
            tokio::select! {
                () = &mut shutdown => {
                    process.stop().await;
                    return;
                }
                () = process.wait_died() => {
                    tracing::warn!(identity = %process.identity, "worker process died; starting a new one");
                    process.kill();
                }
            }
        }
    }

    /// Sidekiq's fake mode: runs every enqueued job, one at a time, until
    /// nothing is left, moving the virtual clock to each retry as it falls
    /// due and past the heartbeat timeout when a dead process holds jobs.
    /// Returns how many jobs were run.
    pub async fn drain_all(&self, clock: &ManualClock) -> usize {
        let backend = self.backend().clone();
        let config = self.config().clone();
        let busy: Busy = Arc::default();
        let mut identity = self.new_identity();
        let mut dead_holding_jobs = false;
        let mut ran = 0;
        loop {
            let now = self.clock().now_ms();
            beat(self, &identity, now, &busy).await;
            poll(self).await;
            let fetched = backend
                .fetch(&Fetch::new(&config.queues, config.fetch, &identity))
                .await;
            match fetched {
                Ok(Some(job)) => {
                    ran += 1;
                    if self.perform(job, &identity).await == JobOutcome::Died {
                        dead_holding_jobs |= config.fetch == FetchMode::Reliable;
                        identity = self.new_identity();
                    }
                    continue;
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::error!(%err, "drain: fetch failed");
                    break;
                }
            }
            match backend.next_due_ms().await {
                Ok(Some(at)) => clock.advance(at.saturating_sub(now).max(1)),
                _ if dead_holding_jobs => {
                    dead_holding_jobs = false;
                    clock.advance(config.process_ttl_ms + 1);
                }
                _ => break,
            }
        }
        let _ = backend.remove_process(&identity).await;
        ran
    }
}

impl Process {
    /// Completes when a job reports that this process died.
    pub async fn wait_died(&mut self) {
        if self.died.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
    }

    /// `kill -9`: every task stops where it is. Jobs being run stay in the
    /// in-progress list (reliable fetch) or are lost (basic), and the process
    /// stays in the process set until its heartbeat expires.
    pub fn kill(self) {
        for task in self.fetchers.iter().chain(&self.background) {
            task.abort();
        }
        tracing::warn!(identity = %self.identity, "worker process killed");
    }

    /// Graceful stop: no new jobs; running ones get the shutdown timeout to
    /// finish, then are put back on their queues. The process leaves the set.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        let timeout = self.runner.config().shutdown_timeout;
        let fetchers = &mut self.fetchers;
        let all_done = async {
            for fetcher in fetchers.iter_mut() {
                let _ = fetcher.await;
            }
        };
        let finished = tokio::time::timeout(timeout, all_done).await.is_ok();
        for task in self.fetchers.iter().chain(&self.background) {
            task.abort();
        }
        let backend = self.runner.backend();
        if !finished {
            let leftovers: Vec<BusyJob> = self
                .busy
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .drain()
                .map(|(_, b)| b)
                .collect();
            for busy in leftovers {
                tracing::warn!(jid = %busy.job.jid, "not finished in time; back to its queue");
                let _ = backend.acknowledge(&self.identity, &busy.job).await;
                let _ = backend.push(busy.job, self.runner.clock().now_ms()).await;
            }
        }
        let _ = backend.remove_process(&self.identity).await;
        tracing::info!(identity = %self.identity, "worker process stopped");
    }
}

impl Runner {
    /// The process-set record of this runner's process `identity`, started
    /// at `started_at_ms`, beating at `beat_ms` with `busy` jobs running: what
    /// every heartbeat of a process of this runner records.
    pub fn process_info(
        &self,
        identity: &str,
        started_at_ms: u64,
        beat_ms: u64,
        busy: usize,
    ) -> ProcessInfo {
        let config = self.config();
        ProcessInfo {
            identity: identity.to_string(),
            hostname: config.hostname.clone(),
            started_at_ms,
            beat_ms,
            concurrency: config.concurrency,
            queues: config.queues.clone(),
            busy,
            code_version: config.code_version.clone(),
        }
    }
}

async fn beat(runner: &Runner, identity: &str, started_at_ms: u64, busy: &Busy) {
    let busy: Vec<BusyJob> = busy
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .cloned()
        .collect();
    let info = runner.process_info(identity, started_at_ms, runner.clock().now_ms(), busy.len());
    if let Err(err) = runner.backend().heartbeat(info, busy).await {
        tracing::warn!(%err, "heartbeat failed");
    }
}

async fn poll(runner: &Runner) {
    let now = runner.clock().now_ms();
    let backend = runner.backend();
    if let Err(err) = backend.enqueue_due(now).await {
        tracing::warn!(%err, "could not enqueue due jobs");
    }
    match backend
        .recover_expired(now, runner.config().process_ttl_ms)
        .await
    {
        Ok(jobs) if !jobs.is_empty() => {
            tracing::warn!(count = jobs.len(), "recovered the jobs of a dead process");
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(%err, "could not recover jobs of dead processes"),
    }
}

async fn fetch_loop(
    slot: usize,
    runner: Runner,
    identity: String,
    busy: Busy,
    stopped: watch::Receiver<bool>,
    died: mpsc::Sender<()>,
) {
    let config = runner.config().clone();
    let fetch = Fetch::new(&config.queues, config.fetch, &identity).waiting(config.fetch_wait);
    // Moves on once a call is answered: a failed call is asked again as the
    // same one, so a job it took before its reply was lost comes back.
    let mut call = FetchCall { slot, n: 0 };
    // The last job run, settled by the next fetch in the same round trip;
    // kept until a round trip succeeds, so a job finished while the backend
    // was unreachable is acknowledged once it is back, not held for good.
    let mut finished: Option<Finished> = None;
    // A failed job whose retry (or death) could not be stored yet.
    let mut unstored: Option<(JobSet, Job, u64, Finished)> = None;
    while !*stopped.borrow() {
        if let Some((set, job, at_ms, done)) = unstored.take() {
            match runner.backend().add_to_set(set, job.clone(), at_ms).await {
                Ok(()) => finished = Some(done),
                Err(err) => {
                    tracing::warn!(jid = %done.job.jid, %err, "still cannot store the failed job");
                    unstored = Some((set, job, at_ms, done));
                    tokio::time::sleep(config.fetch_wait).await;
                    continue;
                }
            }
        }
        let fetched = runner
            .backend()
            .settle_and_fetch(finished.clone(), &fetch.as_call(call))
            .await;
        if fetched.is_ok() {
            call.n += 1;
        }
        let job = match fetched {
            Ok(Some(job)) => {
                finished = None;
                job
            }
            Ok(None) => {
                finished = None;
                continue;
            }
            Err(err) => {
                tracing::warn!(%err, "fetch failed");
                tokio::time::sleep(config.fetch_wait).await;
                continue;
            }
        };
        let jid = job.jid.clone();
        busy.lock().unwrap_or_else(|p| p.into_inner()).insert(
            jid.clone(),
            BusyJob {
                process: identity.clone(),
                started_at_ms: runner.clock().now_ms(),
                job: job.clone(),
            },
        );
        let (outcome, settle) = runner.perform_unsettled(job, &identity).await;
        busy.lock().unwrap_or_else(|p| p.into_inner()).remove(&jid);
        match settle {
            Settle::Finished(done) => finished = Some(done),
            Settle::Store {
                set,
                job,
                at_ms,
                finished: done,
            } => unstored = Some((set, job, at_ms, done)),
            Settle::Nothing => {}
        }
        if outcome == JobOutcome::Died {
            let _ = died.send(()).await;
            return;
        }
    }
    if let Some(finished) = finished {
        runner.settle(&identity, &finished).await;
    }
}
