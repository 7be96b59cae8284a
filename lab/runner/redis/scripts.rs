//! The Redis backend's Lua scripts (`lab/runner/redis/*.lua`) and the
//! calls that run them: every move of a job between keys.
//!
//! Every move between keys is one Lua script (`lab/runner/redis/*.lua`):
//! keys in `KEYS`, times in `ARGV`, never Redis's `TIME` or the system clock.
//! Where a job's JSON must change (`enqueued_at` when it goes back to a
//! queue), the backend reads the members, rewrites the JSON with the same
//! [`Job`] type that wrote it, and the script moves each one only if it is
//! still where it was read (`ZREM` / `LREM` returned 1): a concurrent poller
//! or Ruby client can never make a job move twice. Redis's `cjson` is not used
//! to rewrite payloads (it turns `[]` into `{}` and rounds numbers).

use std::sync::LazyLock;

use ::redis::{AsyncCommands, RedisError, Script};

use super::keys::KeyList;
use super::wire::mode_arg;
use super::RedisBackend;
use crate::runner::backend::{BackendResult, JobSet, DEAD_MAX_JOBS, DEAD_TIMEOUT_MS};
use crate::runner::fetch::{Fetch, FetchMode};
use crate::runner::job::{ms_to_seconds, Job};

static SETTLE_AND_FETCH: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("settle_and_fetch.lua")));
static ADD_TO_SET: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("add_to_set.lua")));
static MOVE_TO_QUEUES: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("move_to_queues.lua")));
static RECOVER: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("recover.lua")));

/// Moves per script call when many jobs fall due at once.
const MOVE_BATCH: usize = 500;

/// The job a settle-and-fetch call settles: the payload to drop from the
/// in-progress list (found by its jid when another client wrote it), and
/// what to add to the counters.
#[derive(Debug, Clone, Copy)]
pub(super) struct Settle<'a> {
    pub payload: &'a str,
    pub jid: &'a str,
    pub processed: u64,
    pub failed: u64,
}

impl<'a> Settle<'a> {
    /// Drops `payload` from the in-progress list, counting nothing.
    pub fn drop_only(payload: &'a str, jid: &'a str) -> Self {
        Self {
            payload,
            jid,
            processed: 0,
            failed: 0,
        }
    }
}

impl RedisBackend {
    /// One call of the settle-and-fetch script: settles `settle` if given,
    /// then takes a job from the first non-empty of the fetch's queues (none:
    /// settle only).
    pub(super) async fn settle_and_take(
        &self,
        settle: Option<Settle<'_>>,
        fetch: &Fetch<'_>,
    ) -> Result<Option<String>, RedisError> {
        let mut invocation = SETTLE_AND_FETCH.prepare_invoke();
        for name in fetch.queues {
            invocation.key(self.keys.queue(name));
        }
        let settle = settle.unwrap_or(Settle::drop_only("", ""));
        invocation
            .key(self.keys.in_progress(fetch.process))
            .key(&self.keys.in_progress_index)
            .key(&self.keys.processed)
            .key(&self.keys.failed)
            .key(self.keys.taken(fetch.process))
            .arg(mode_arg(fetch.mode))
            .arg(fetch.process)
            .arg(settle.payload)
            .arg(settle.jid)
            .arg(settle.processed)
            .arg(settle.failed);
        match fetch.call {
            Some(call) => invocation.arg(call.slot).arg(call.n),
            None => invocation.arg("").arg(""),
        };
        invocation.invoke_async(&mut self.conn()).await
    }

    /// Adds `member` to `set` at `at_ms` (the dead set: trimmed to its limits).
    pub(super) async fn add_member(
        &self,
        set: JobSet,
        member: &str,
        at_ms: u64,
    ) -> BackendResult<()> {
        let _: i64 = ADD_TO_SET
            .key(self.keys.set(set))
            .arg(at_ms)
            .arg(member)
            .arg(if set == JobSet::Dead { "1" } else { "0" })
            .arg(DEAD_MAX_JOBS)
            .arg(DEAD_TIMEOUT_MS)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.error(&format!("adding to the {} set", set.key()), e))?;
        Ok(())
    }

    /// Puts a payload the lab cannot read into the dead set (trimmed as
    /// usual), then takes it out of the in-progress list of the process that
    /// held it.
    pub(super) async fn kill_unreadable(
        &self,
        payload: &str,
        at_ms: u64,
        held_by: Option<&str>,
    ) -> BackendResult<()> {
        self.add_member(JobSet::Dead, payload, at_ms).await?;
        if let Some(process) = held_by {
            let settle_only = Fetch::new(&[], FetchMode::Reliable, process);
            self.settle_and_take(Some(Settle::drop_only(payload, "")), &settle_only)
                .await
                .map_err(|e| self.error("dropping from an in-progress list", e))?;
        }
        Ok(())
    }

    /// Moves `(set, member, job)` to the jobs' queues with `enqueued_at` set
    /// to `now_ms`, each only if still in its set; returns how many moved.
    pub(super) async fn move_to_queues(
        &self,
        moves: Vec<(JobSet, String, Job)>,
        now_ms: u64,
    ) -> BackendResult<usize> {
        let mut moved = 0;
        for batch in moves.chunks(MOVE_BATCH) {
            let mut keys = KeyList::fixed(vec![self.keys.queues()]);
            let mut invocation = MOVE_TO_QUEUES.prepare_invoke();
            let mut args: Vec<String> = Vec::with_capacity(batch.len() * 5);
            for (set, member, job) in batch {
                let mut job = job.clone();
                job.enqueued_at = Some(ms_to_seconds(now_ms));
                args.push(keys.index(self.keys.set(*set)).to_string());
                args.push(member.clone());
                args.push(job.to_json());
                args.push(keys.index(self.keys.queue(&job.queue)).to_string());
                args.push(job.queue.clone());
            }
            for key in keys.keys {
                invocation.key(key);
            }
            invocation.arg(args);
            let n: usize = invocation
                .invoke_async(&mut self.conn())
                .await
                .map_err(|e| self.error("moving jobs to their queues", e))?;
            moved += n;
        }
        if moved > 0 {
            self.woke();
        }
        Ok(moved)
    }

    /// Recovers one dead process's in-progress jobs and removes it.
    pub(super) async fn recover_process(
        &self,
        identity: &str,
        now_ms: u64,
        ttl_ms: u64,
    ) -> BackendResult<Vec<Job>> {
        let mut conn = self.conn();
        let list = self.keys.in_progress(identity);
        // Newest first in the list; the oldest fetch goes back first, so the
        // newest ends up next in line, as in the memory backend.
        let mut held: Vec<String> = conn
            .lrange(&list, 0, -1)
            .await
            .map_err(|e| self.error("reading an in-progress list", e))?;
        held.reverse();
        let mut keys = KeyList::fixed(vec![
            self.keys.processes(),
            self.keys.process(identity),
            self.keys.work(identity),
            self.keys.workers(identity),
            list.clone(),
            self.keys.in_progress_index(),
            self.keys.queues(),
            self.keys.taken(identity),
        ]);
        let mut args = vec![identity.to_string(), now_ms.to_string(), ttl_ms.to_string()];
        let mut jobs = Vec::new();
        for payload in held {
            let mut job = match Job::from_json(&payload) {
                Ok(job) => job,
                Err(err) => {
                    tracing::error!(%identity, %err, %payload,
                        "an in-progress entry the lab cannot read as a job; to the dead set");
                    self.kill_unreadable(&payload, now_ms, Some(identity))
                        .await?;
                    continue;
                }
            };
            job.enqueued_at = Some(ms_to_seconds(now_ms));
            args.push(payload);
            args.push(job.to_json());
            args.push(keys.index(self.keys.queue(&job.queue)).to_string());
            args.push(job.queue.clone());
            jobs.push(job);
        }
        let mut invocation = RECOVER.prepare_invoke();
        for key in keys.keys {
            invocation.key(key);
        }
        invocation.arg(args);
        let moved: Option<Vec<usize>> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.error("recovering a dead process's jobs", e))?;
        Ok(moved
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| jobs.get(i).cloned())
            .collect())
    }
}
