//! The Redis backend, in Sidekiq's layout, so that Sidekiq's own tools (Ruby
//! Sidekiq 6.4's API and web UI) read the lab's queues, sets, processes and
//! counters, and a job a Ruby client pushes runs here.
//!
//! - `keys`: the key layout (which key holds what) and namespaces;
//! - `wire`: values as Sidekiq writes them (scores, times, process hashes);
//! - `scripts`: the Lua scripts, one per move of a job between keys;
//! - here: the connection and the [`Backend`] operations.
//!
//! # Waiting for a job
//!
//! A blocking command (`BRPOP`, `BLMOVE`) would stall every other command on
//! the shared multiplexed connection, and `BLMOVE` takes one source list,
//! which cannot give strict priority across queues. So [`Backend::fetch`]
//! never blocks in Redis: it runs the non-blocking fetch script in the
//! runner's one wait loop (`runner::fetch`), and when every queue is empty
//! it sleeps (real time, 1 ms doubling to 20 ms, never past the fetch's
//! `wait`) and tries again. A push, due move or recovery made through
//! this backend wakes the waiting fetchers at once; a push by another
//! process is seen within 20 ms. Commands get a 5 s response timeout (the
//! crate's default is 500 ms), as none of them blocks.
//!
//! A worker's fetch also settles the job it last finished (drops it from the
//! in-progress list, adds to `stat:processed`), in the same script call
//! ([`Backend::settle_and_fetch`]): one round trip per job, as Sidekiq's
//! `BRPOP` loop pays, rather than three for fetching, acknowledging and
//! counting apart. The settle comes first: a job is acknowledged and
//! counted before its worker takes the next, as with separate calls.
//!
//! A fetch cancelled mid-call (a killed or stopped process) may still have
//! moved a job on the server: reliable fetch then holds it in the list of a
//! process that is gone, and the next [`Backend::recover_expired`] puts it
//! back; basic fetch loses it, as Sidekiq's `BRPOP` can. A fetch whose reply
//! is lost while its process lives on (Redis stopped between running the
//! script and answering: the job is in the list of a process that keeps
//! beating, which no recovery touches) is asked again by its fetcher as the
//! same [`FetchCall`](super::fetch::FetchCall), and the script answers with
//! the job that call took (`inprogress:<identity>:taken`).
//!
//! # Differences from the memory backend
//!
//! - Sorted-set members are unique: two byte-identical jobs added to one set
//!   are one entry (Sidekiq's layout; the memory backend keeps both).
//! - Jobs at one millisecond keep their insertion order for up to 1,000 of
//!   them; beyond that they share a score and Redis orders them by bytes.
//! - A payload the lab cannot read as a [`Job`] (written by hand, or by a
//!   Sidekiq feature the lab's type does not accept) is moved to the dead
//!   set when fetched or recovered, as Sidekiq does with a payload it cannot
//!   parse, and the fetch returns an error saying so; reading a set or queue
//!   that holds one is an error naming it.

mod keys;
mod scripts;
mod wire;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{AsyncCommands, Client, Pipeline, RedisError};
use async_trait::async_trait;
use tokio::sync::Notify;

use self::keys::Keys;
use self::scripts::Settle;
use self::wire::{
    decode_process, decode_work, encode_process, encode_work, epoch_to_ms, parse_job,
    payload_time_ms, score_bound_after, score_to_ms,
};
use super::backend::{
    Backend, BackendError, BackendResult, BusyJob, Finished, JobSet, ProcessInfo, SetEntry,
};
use super::fetch::{wait_for_job, Fetch, FetchMode, LookAgain};
use super::job::{ms_to_seconds, Job};
use crate::redact::redact_url;

/// Response timeout of every command: none of them blocks in Redis, but a
/// script over a large set (the dead set's 10,000 jobs) may take a while.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for a connection to open.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// The first and the longest pause between two looks at empty queues.
const POLL_MIN: Duration = Duration::from_millis(1);
const POLL_MAX: Duration = Duration::from_millis(20);

/// Queues and sets in Redis, laid out as Sidekiq lays them out.
pub struct RedisBackend {
    conn: ConnectionManager,
    /// The URL with any password hidden, for messages.
    url: String,
    keys: Keys,
    /// Wakes this backend's waiting fetchers when it enqueues something.
    pushed: Notify,
}

/// A sorted set's members with their scores.
type Members = Vec<(String, f64)>;

/// Every job that waits, read at one instant ([`RedisBackend::snapshot_waiting`]).
#[derive(Debug, Clone, Default)]
pub struct Waiting {
    /// On a queue or in an in-progress list.
    pub queued: Vec<Job>,
    pub retry: Vec<SetEntry>,
    pub schedule: Vec<SetEntry>,
}

impl RedisBackend {
    /// Connects to `url` (`redis://host:port/db`), keys without a prefix:
    /// where Sidekiq's tools look.
    pub async fn connect(url: &str) -> BackendResult<Self> {
        Self::open(url, "").await
    }

    /// Connects with every key under `namespace:` (none when empty), so that
    /// several labs (or parallel tests) share one Redis without colliding.
    pub async fn connect_with_namespace(url: &str, namespace: &str) -> BackendResult<Self> {
        Self::open(url, namespace).await
    }

    /// The lists jobs wait in: every queue, and every in-progress list.
    async fn waiting_places(&self, conn: &mut ConnectionManager) -> BackendResult<Vec<String>> {
        let (queues, holders): (Vec<String>, Vec<String>) = ::redis::pipe()
            .smembers(self.keys.queues())
            .smembers(self.keys.in_progress_index())
            .query_async(conn)
            .await
            .map_err(|e| self.error("reading the queue names", e))?;
        Ok(queues
            .iter()
            .map(|q| self.keys.queue(q))
            .chain(holders.iter().map(|id| self.keys.in_progress(id)))
            .collect())
    }

    /// Every job that waits — on a queue, in an in-progress list, in the
    /// retry and schedule sets — read in one MULTI, so a job moving between
    /// them (a retry put back on its queue) is seen exactly once, in one
    /// place or the other. (`waiting_jobs` and `set_entries` are separate
    /// reads, which is enough for pages but not for deciding that nothing is
    /// left.)
    pub async fn snapshot_waiting(&self) -> BackendResult<Waiting> {
        let mut conn = self.conn();
        let places = self.waiting_places(&mut conn).await?;
        let mut pipe = ::redis::pipe();
        pipe.atomic();
        for key in &places {
            pipe.lrange(key, 0, -1);
        }
        pipe.zrange_withscores(self.keys.set(JobSet::Retry), 0, -1)
            .zrange_withscores(self.keys.set(JobSet::Schedule), 0, -1);
        let (lists, sets): (Vec<Vec<String>>, Vec<Members>) = {
            let mut all: Vec<::redis::Value> = pipe
                .query_async(&mut conn)
                .await
                .map_err(|e| self.error("reading what waits", e))?;
            let sets = all.split_off(places.len());
            let lists = all
                .into_iter()
                .map(::redis::from_redis_value::<Vec<String>>)
                .collect::<Result<_, _>>()
                .map_err(|e| self.error("reading queues", e.into()))?;
            let sets = sets
                .into_iter()
                .map(::redis::from_redis_value::<Members>)
                .collect::<Result<_, _>>()
                .map_err(|e| self.error("reading the retry and schedule sets", e.into()))?;
            (lists, sets)
        };
        let mut jobs = Vec::new();
        for (place, list) in places.iter().zip(lists) {
            for payload in list {
                jobs.push(parse_job(&payload, place)?);
            }
        }
        let mut sets =
            sets.into_iter()
                .zip([JobSet::Retry, JobSet::Schedule])
                .map(|(members, set)| {
                    let place = format!("the {} set", set.key());
                    members
                        .into_iter()
                        .map(|(member, score)| {
                            Ok(SetEntry {
                                at_ms: score_to_ms(score),
                                job: parse_job(&member, &place)?,
                            })
                        })
                        .collect::<BackendResult<Vec<SetEntry>>>()
                });
        Ok(Waiting {
            queued: jobs,
            retry: sets.next().transpose()?.unwrap_or_default(),
            schedule: sets.next().transpose()?.unwrap_or_default(),
        })
    }

    async fn open(url: &str, namespace: &str) -> BackendResult<Self> {
        let shown = redact_url(url);
        let client = Client::open(url)
            .map_err(|e| BackendError(format!("invalid Redis URL {shown}: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_number_of_retries(3)
            .set_max_delay(Duration::from_secs(1));
        let mut conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| BackendError(format!("cannot reach Redis at {shown}: {e}")))?;
        let _: String = ::redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|e| BackendError(format!("cannot reach Redis at {shown}: {e}")))?;
        Ok(Self {
            conn,
            url: shown,
            keys: Keys::new(if namespace.is_empty() {
                String::new()
            } else {
                format!("{namespace}:")
            }),
            pushed: Notify::new(),
        })
    }

    /// The server's URL, password hidden.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What comes before every key (`"ns:"`, or nothing).
    pub fn key_prefix(&self) -> &str {
        &self.keys.prefix
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// A Redis error as a backend error that says what failed.
    fn error(&self, what: &str, e: RedisError) -> BackendError {
        if e.is_io_error()
            || e.is_connection_refusal()
            || e.is_connection_dropped()
            || e.is_timeout()
        {
            BackendError(format!("cannot reach Redis at {} ({what}): {e}", self.url))
        } else {
            BackendError(format!("Redis at {}: {what}: {e}", self.url))
        }
    }

    /// Wakes the fetchers waiting on this backend (each registered its
    /// interest before looking, so none misses this).
    fn woke(&self) {
        self.pushed.notify_waiters();
    }

    /// One look at the queues, in priority order, settling `finished` first
    /// in the same round trip.
    async fn try_fetch(
        &self,
        fetch: &Fetch<'_>,
        finished: Option<&Finished>,
    ) -> BackendResult<Option<Job>> {
        let Fetch {
            queues,
            mode,
            process,
            ..
        } = *fetch;
        if queues.is_empty() && finished.is_none() {
            return Ok(None);
        }
        let payload = match finished {
            None => self
                .settle_and_take(None, fetch)
                .await
                .map_err(|e| self.error("fetch", e))?,
            Some(f) => {
                let json = f.job.to_json();
                let settle = Settle {
                    payload: &json,
                    jid: &f.job.jid,
                    processed: f.processed,
                    failed: f.failed,
                };
                self.settle_and_take(Some(settle), fetch)
                    .await
                    .map_err(|e| {
                        self.error("acknowledging a finished job and fetching the next", e)
                    })?
            }
        };
        let Some(payload) = payload else {
            return Ok(None);
        };
        match Job::from_json(&payload) {
            Ok(job) => Ok(Some(job)),
            Err(err) => {
                // The lab cannot run it, and left where it is it would come
                // back forever: to the dead set, as Sidekiq does with a
                // payload it cannot parse, where Sidekiq's tools show it.
                // Fetch is given no time: the job's own last time stands in.
                let at_ms = payload_time_ms(&payload).unwrap_or(0);
                let held = (mode == FetchMode::Reliable).then_some(process);
                let outcome = match self.kill_unreadable(&payload, at_ms, held).await {
                    Ok(()) => "moved it to the dead set".to_string(),
                    Err(e) => format!("could not move it to the dead set: {e}"),
                };
                Err(BackendError(format!(
                    "took a payload from {queues:?} that the lab cannot read as a job ({err}); \
                     {outcome}: {payload}"
                )))
            }
        }
    }

    /// The members of a sorted set with their scores, earliest first.
    async fn members(&self, set: JobSet) -> BackendResult<Vec<(String, f64)>> {
        self.conn()
            .zrange_withscores(self.keys.set(set), 0, -1)
            .await
            .map_err(|e| self.error(&format!("reading the {} set", set.key()), e))
    }

    /// The first member of a set (score order) whose jid is `jid`.
    async fn find_in_set(&self, set: JobSet, jid: &str) -> BackendResult<Option<(String, Job)>> {
        let needle = format!("\"{jid}\"");
        for (member, _) in self.members(set).await? {
            if !member.contains(&needle) {
                continue;
            }
            if let Ok(job) = Job::from_json(&member) {
                if job.jid == jid {
                    return Ok(Some((member, job)));
                }
            }
        }
        Ok(None)
    }

    /// The members of the SET at `key`, each with the replies of the
    /// commands `per_member` adds to one pipeline for it (`commands` of them).
    /// `listing` and `reading` say what failed, for the two round trips.
    async fn for_each_member<T: ::redis::FromRedisValue>(
        &self,
        key: String,
        [listing, reading]: [&str; 2],
        commands: usize,
        per_member: impl Fn(&mut Pipeline, &str),
    ) -> BackendResult<Vec<(String, Vec<T>)>> {
        let mut conn = self.conn();
        let members: Vec<String> = conn
            .smembers(key)
            .await
            .map_err(|e| self.error(listing, e))?;
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for member in &members {
            per_member(&mut pipe, member);
        }
        let replies: Vec<T> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error(reading, e))?;
        let mut replies = replies.into_iter();
        Ok(members
            .into_iter()
            .map(|member| (member, replies.by_ref().take(commands).collect()))
            .collect())
    }

    /// Identities in the process set, with their beat (None: no hash).
    async fn process_beats(&self) -> BackendResult<Vec<(String, Option<f64>)>> {
        let beats = self
            .for_each_member::<Option<f64>>(
                self.keys.processes(),
                ["reading the process set", "reading heartbeats"],
                1,
                |pipe, identity| {
                    pipe.hget(self.keys.process(identity), "beat");
                },
            )
            .await?;
        Ok(beats
            .into_iter()
            .map(|(identity, beat)| (identity, beat.into_iter().next().flatten()))
            .collect())
    }
}

#[async_trait]
impl Backend for RedisBackend {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn push(&self, mut job: Job, now_ms: u64) -> BackendResult<()> {
        job.enqueued_at = Some(ms_to_seconds(now_ms));
        // Sidekiq's client: SADD queues, LPUSH queue:NAME, in one MULTI.
        let _: () = ::redis::pipe()
            .atomic()
            .sadd(self.keys.queues(), &job.queue)
            .ignore()
            .lpush(self.keys.queue(&job.queue), job.to_json())
            .ignore()
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error(&format!("pushing to queue:{}", job.queue), e))?;
        self.woke();
        Ok(())
    }

    async fn fetch(&self, fetch: &Fetch<'_>) -> BackendResult<Option<Job>> {
        self.settle_and_fetch(None, fetch).await
    }

    async fn settle(&self, process: &str, finished: &Finished) -> BackendResult<()> {
        let settle_only = Fetch::new(&[], FetchMode::Reliable, process);
        self.try_fetch(&settle_only, Some(finished))
            .await
            .map(|_| ())
    }

    async fn settle_and_fetch(
        &self,
        finished: Option<Finished>,
        fetch: &Fetch<'_>,
    ) -> BackendResult<Option<Job>> {
        // Another process may push without waking this one: look again after
        // a short pause, too.
        let look_again = LookAgain::WhenWokenOrAfter {
            first: POLL_MIN,
            longest: POLL_MAX,
        };
        // Settled with the first look only.
        let mut finished = finished;
        wait_for_job(&self.pushed, fetch.wait, look_again, || {
            let settle = finished.take();
            async move { self.try_fetch(fetch, settle.as_ref()).await }
        })
        .await
    }

    async fn acknowledge(&self, process: &str, job: &Job) -> BackendResult<()> {
        let json = job.to_json();
        let settle_only = Fetch::new(&[], FetchMode::Reliable, process);
        self.settle_and_take(Some(Settle::drop_only(&json, &job.jid)), &settle_only)
            .await
            .map_err(|e| self.error("acknowledging a job", e))?;
        Ok(())
    }

    async fn add_to_set(&self, set: JobSet, job: Job, at_ms: u64) -> BackendResult<()> {
        self.add_member(set, &job.to_json(), at_ms).await
    }

    async fn enqueue_due(&self, now_ms: u64) -> BackendResult<usize> {
        const SETS: [JobSet; 2] = [JobSet::Schedule, JobSet::Retry];
        let mut pipe = ::redis::pipe();
        for set in SETS {
            pipe.zrangebyscore(self.keys.set(set), "-inf", score_bound_after(now_ms));
        }
        let due: Vec<Vec<String>> = pipe
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error("reading the schedule and retry sets", e))?;
        let mut moves = Vec::new();
        for (set, due) in SETS.into_iter().zip(due) {
            for member in due {
                match Job::from_json(&member) {
                    Ok(job) => moves.push((set, member, job)),
                    // Left where it is: Sidekiq's tools can show and delete it.
                    Err(err) => tracing::error!(set = set.key(), %err, %member,
                        "a due entry is not a job; left in its set"),
                }
            }
        }
        if moves.is_empty() {
            return Ok(0);
        }
        self.move_to_queues(moves, now_ms).await
    }

    async fn next_due_ms(&self) -> BackendResult<Option<u64>> {
        let mut pipe = ::redis::pipe();
        for set in [JobSet::Schedule, JobSet::Retry] {
            pipe.zrange_withscores(self.keys.set(set), 0, 0);
        }
        let firsts: Vec<Vec<(String, f64)>> = pipe
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error("reading the schedule and retry sets", e))?;
        Ok(firsts
            .into_iter()
            .flatten()
            .map(|(_, score)| score_to_ms(score))
            .min())
    }

    async fn set_entries(&self, set: JobSet) -> BackendResult<Vec<SetEntry>> {
        let place = format!("the {} set", set.key());
        self.members(set)
            .await?
            .into_iter()
            .map(|(member, score)| {
                Ok(SetEntry {
                    at_ms: score_to_ms(score),
                    job: parse_job(&member, &place)?,
                })
            })
            .collect()
    }

    async fn delete_from_set(&self, set: JobSet, jid: &str) -> BackendResult<bool> {
        let Some((member, _)) = self.find_in_set(set, jid).await? else {
            return Ok(false);
        };
        let removed: i64 = self
            .conn()
            .zrem(self.keys.set(set), member)
            .await
            .map_err(|e| self.error(&format!("deleting from the {} set", set.key()), e))?;
        Ok(removed == 1)
    }

    async fn requeue_from_set(&self, set: JobSet, jid: &str, now_ms: u64) -> BackendResult<bool> {
        let Some((member, job)) = self.find_in_set(set, jid).await? else {
            return Ok(false);
        };
        Ok(self
            .move_to_queues(vec![(set, member, job)], now_ms)
            .await?
            == 1)
    }

    async fn queue_sizes(&self) -> BackendResult<Vec<(String, usize)>> {
        let sizes = self
            .for_each_member::<usize>(
                self.keys.queues(),
                ["reading the queue names", "reading queue sizes"],
                1,
                |pipe, name| {
                    pipe.llen(self.keys.queue(name));
                },
            )
            .await?;
        Ok(sizes
            .into_iter()
            .map(|(name, size)| (name, size.into_iter().sum()))
            .collect())
    }

    async fn heartbeat(&self, process: ProcessInfo, busy: Vec<BusyJob>) -> BackendResult<()> {
        let identity = &process.identity;
        let work = encode_work(&busy);
        let mut pipe = ::redis::pipe();
        pipe.atomic()
            .sadd(self.keys.processes(), identity)
            .ignore()
            .hset_multiple(self.keys.process(identity), &encode_process(&process))
            .ignore()
            .del(&[self.keys.work(identity), self.keys.workers(identity)])
            .ignore();
        if !work.is_empty() {
            pipe.hset_multiple(self.keys.work(identity), &work)
                .ignore()
                .hset_multiple(self.keys.workers(identity), &work)
                .ignore();
        }
        let _: () = pipe
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error("recording a heartbeat", e))?;
        Ok(())
    }

    async fn remove_process(&self, identity: &str) -> BackendResult<()> {
        let _: () = ::redis::pipe()
            .atomic()
            .srem(self.keys.processes(), identity)
            .ignore()
            .del(&[
                self.keys.process(identity),
                self.keys.work(identity),
                self.keys.workers(identity),
                self.keys.taken(identity),
            ])
            .ignore()
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error("removing a process", e))?;
        Ok(())
    }

    async fn processes(&self) -> BackendResult<Vec<ProcessInfo>> {
        type Fields = (Option<String>, Option<usize>, Option<f64>);
        let rows = self
            .for_each_member::<Fields>(
                self.keys.processes(),
                ["reading the process set", "reading processes"],
                1,
                |pipe, identity| {
                    pipe.hmget(self.keys.process(identity), &["info", "busy", "beat"]);
                },
            )
            .await?;
        let mut list = Vec::new();
        for (identity, row) in rows {
            // A process stopped between the two reads: gone.
            let Some((Some(info), busy, beat)) = row.into_iter().next() else {
                continue;
            };
            list.push(decode_process(identity, &info, busy, beat)?);
        }
        list.sort_by(|a, b| a.identity.cmp(&b.identity));
        Ok(list)
    }

    async fn busy(&self) -> BackendResult<Vec<BusyJob>> {
        let works = self
            .for_each_member::<HashMap<String, String>>(
                self.keys.processes(),
                ["reading the process set", "reading busy jobs"],
                2,
                |pipe, identity| {
                    pipe.hgetall(self.keys.work(identity))
                        .hgetall(self.keys.workers(identity));
                },
            )
            .await?;
        let mut busy = Vec::new();
        for (identity, pair) in works {
            // The lab writes both; a Ruby Sidekiq 7 process only `:work`, a
            // Sidekiq 6 one only `:workers`.
            let (place, work) = if pair[0].is_empty() {
                (format!("{identity}:workers"), &pair[1])
            } else {
                (format!("{identity}:work"), &pair[0])
            };
            for value in work.values() {
                busy.push(decode_work(&identity, &place, value)?);
            }
        }
        Ok(busy)
    }

    async fn recover_expired(&self, now_ms: u64, ttl_ms: u64) -> BackendResult<Vec<Job>> {
        let beats = self.process_beats().await?;
        let listed: HashSet<&str> = beats.iter().map(|(id, _)| id.as_str()).collect();
        let holders: Vec<String> = self
            .conn()
            .smembers(self.keys.in_progress_index())
            .await
            .map_err(|e| self.error("reading the in-progress index", e))?;
        let expired = beats
            .iter()
            .filter(|(_, beat)| {
                let beat_ms = beat.map_or(0, epoch_to_ms);
                now_ms.saturating_sub(beat_ms) > ttl_ms
            })
            .map(|(id, _)| id.clone());
        // In-progress lists of processes that never beat (or were
        // forgotten) are orphans too.
        let orphans = holders
            .iter()
            .filter(|id| !listed.contains(id.as_str()))
            .cloned();
        let dead: Vec<String> = expired.chain(orphans).collect();
        let mut recovered = Vec::new();
        for identity in dead {
            recovered.extend(self.recover_process(&identity, now_ms, ttl_ms).await?);
        }
        if !recovered.is_empty() {
            self.woke();
        }
        Ok(recovered)
    }

    async fn waiting_jobs(&self) -> BackendResult<Vec<Job>> {
        let mut conn = self.conn();
        let places = self.waiting_places(&mut conn).await?;
        if places.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for key in &places {
            pipe.lrange(key, 0, -1);
        }
        let lists: Vec<Vec<String>> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error("reading queues", e))?;
        let mut jobs = Vec::new();
        for (place, list) in places.iter().zip(lists) {
            for payload in list {
                jobs.push(parse_job(&payload, place)?);
            }
        }
        Ok(jobs)
    }

    async fn count(&self, processed: u64, failed: u64) -> BackendResult<()> {
        let _: () = ::redis::pipe()
            .incr(self.keys.processed(), processed)
            .ignore()
            .incr(self.keys.failed(), failed)
            .ignore()
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error("counting", e))?;
        Ok(())
    }

    async fn stats(&self) -> BackendResult<(u64, u64)> {
        let (processed, failed): (Option<u64>, Option<u64>) = ::redis::pipe()
            .get(self.keys.processed())
            .get(self.keys.failed())
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error("reading the counters", e))?;
        Ok((processed.unwrap_or(0), failed.unwrap_or(0)))
    }

    async fn clear(&self) -> BackendResult<()> {
        let mut conn = self.conn();
        let (queues, processes, holders): (Vec<String>, Vec<String>, Vec<String>) = ::redis::pipe()
            .smembers(self.keys.queues())
            .smembers(self.keys.processes())
            .smembers(self.keys.in_progress_index())
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error("reading what to clear", e))?;
        // Only the keys this layout names: without a namespace the database
        // may hold other applications' keys.
        let mut keys = vec![
            self.keys.queues(),
            self.keys.set(JobSet::Schedule),
            self.keys.set(JobSet::Retry),
            self.keys.set(JobSet::Dead),
            self.keys.processed(),
            self.keys.failed(),
            self.keys.processes(),
            self.keys.in_progress_index(),
        ];
        keys.extend(queues.iter().map(|q| self.keys.queue(q)));
        for identity in &processes {
            keys.push(self.keys.process(identity));
            keys.push(self.keys.work(identity));
            keys.push(self.keys.workers(identity));
        }
        keys.extend(holders.iter().map(|id| self.keys.in_progress(id)));
        keys.extend(holders.iter().map(|id| self.keys.taken(id)));
        let _: () = ::redis::pipe()
            .atomic()
            .del(keys)
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error("clearing", e))?;
        Ok(())
    }
}
