//! The Redis backend, in Sidekiq's layout, so that Sidekiq's own tools (Ruby
//! Sidekiq 6.4's API and web UI) read the lab's queues, sets, processes and
//! counters, and a job a Ruby client pushes runs here.
//!
//! # Keys
//!
//! | key | type | what |
//! | --- | --- | --- |
//! | `queues` | SET | queue names |
//! | `queue:NAME` | LIST | jobs (JSON): pushed with `LPUSH`, taken from the right (first in, first out) |
//! | `schedule`, `retry`, `dead` | ZSET | job JSON scored by epoch seconds (float): when due, or when it died |
//! | `stat:processed`, `stat:failed` | STRING | counters |
//! | `processes` | SET | process identities |
//! | `<identity>` | HASH | `info` (JSON: `hostname`, `started_at`, `pid`, `tag`, `concurrency`, `queues`, `labels`, `identity`, `version`), `busy`, `beat` (epoch seconds), `quiet`, `rss`, `rtt_us` |
//! | `<identity>:work` | HASH | jid → `{"queue":…,"payload":"<job JSON>","run_at":<epoch s>}` (Sidekiq 7's name) |
//! | `<identity>:workers` | HASH | the same (Sidekiq 6's name, which 6.4's `Sidekiq::WorkSet` reads) |
//! | `inprogress:<identity>` | LIST | reliable fetch: the jobs a process holds, newest on the left |
//! | `inprogress` | SET | identities that have an in-progress list, so a list whose process is gone is found without `SCAN` |
//!
//! The code version goes in `info.tag` (the label Sidekiq 6's web UI shows
//! beside each process) and `info.version`; it is read back from `version`,
//! else `tag`. `inprogress*` are the lab's own (Sidekiq Pro keeps its private
//! queues under other names); Sidekiq's tools ignore them.
//!
//! No key gets an expiry: processes leave by [`Backend::remove_process`] or
//! [`Backend::recover_expired`], on the caller's clock, so virtual time works.
//! [`RedisBackend::connect_with_namespace`] puts `PREFIX:` before every key
//! (as the `redis-namespace` gem does); the tests use it to run in parallel.
//!
//! # Atomicity
//!
//! Every move between keys is one Lua script (`lab/runner/redis/*.lua`):
//! keys in `KEYS`, times in `ARGV`, never Redis's `TIME` or the system clock.
//! Where a job's JSON must change (`enqueued_at` when it goes back to a
//! queue), the backend reads the members, rewrites the JSON with the same
//! [`Job`] type that wrote it, and the script moves each one only if it is
//! still where it was read (`ZREM` / `LREM` returned 1): a concurrent poller
//! or Ruby client can never make a job move twice. Redis's `cjson` is not used
//! to rewrite payloads (it turns `[]` into `{}` and rounds numbers).
//!
//! # Waiting for a job
//!
//! A blocking command (`BRPOP`, `BLMOVE`) would stall every other command on
//! the shared multiplexed connection, and `BLMOVE` takes one source list,
//! which cannot give strict priority across queues. So [`Backend::fetch`]
//! never blocks in Redis: it runs the non-blocking fetch script, and when
//! every queue is empty it sleeps (real time, 1 ms doubling to 20 ms, never
//! past `wait`) and tries again. A push, due move or recovery made through
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
//! back; basic fetch loses it, as Sidekiq's `BRPOP` can.
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

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{AsyncCommands, Client, RedisError, Script};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::backend::{
    Backend, BackendError, BackendResult, BusyJob, FetchMode, Finished, JobSet, ProcessInfo,
    SetEntry, DEAD_MAX_JOBS, DEAD_TIMEOUT_MS,
};
use super::job::{ms_to_seconds, seconds_to_ms, Job};

static SETTLE_AND_FETCH: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("redis/settle_and_fetch.lua")));
static ADD_TO_SET: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("redis/add_to_set.lua")));
static MOVE_TO_QUEUES: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("redis/move_to_queues.lua")));
static RECOVER: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("redis/recover.lua")));

/// Response timeout of every command: none of them blocks in Redis, but a
/// script over a large set (the dead set's 10,000 jobs) may take a while.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for a connection to open.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// The first and the longest pause between two looks at empty queues.
const POLL_MIN: Duration = Duration::from_millis(1);
const POLL_MAX: Duration = Duration::from_millis(20);
/// Moves per script call when many jobs fall due at once.
const MOVE_BATCH: usize = 500;

/// The process hash's `info` field, as Sidekiq's launcher writes it.
#[derive(Debug, Serialize, Deserialize)]
struct SidekiqInfo {
    #[serde(default)]
    hostname: String,
    #[serde(default)]
    started_at: f64,
    #[serde(default)]
    pid: u32,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    concurrency: usize,
    #[serde(default)]
    queues: Vec<String>,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    identity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
}

/// A value of `<identity>:work`: one job being run.
#[derive(Debug, Serialize, Deserialize)]
struct Work {
    queue: String,
    /// The job's JSON, as a string (Sidekiq's format since 6.0).
    payload: String,
    /// Epoch seconds.
    run_at: f64,
}

/// Key names, with the optional namespace. The fixed ones are made once: a
/// busy worker names several keys per job.
#[derive(Debug, Clone)]
struct Keys {
    prefix: String,
    queues: String,
    processes: String,
    in_progress_index: String,
    processed: String,
    failed: String,
}

impl Keys {
    fn new(prefix: String) -> Self {
        let key = |name: &str| format!("{prefix}{name}");
        Self {
            queues: key("queues"),
            processes: key("processes"),
            in_progress_index: key("inprogress"),
            processed: key("stat:processed"),
            failed: key("stat:failed"),
            prefix,
        }
    }
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
    fn queues(&self) -> String {
        self.queues.clone()
    }
    fn queue(&self, name: &str) -> String {
        format!("{}queue:{name}", self.prefix)
    }
    fn set(&self, set: JobSet) -> String {
        self.key(set.key())
    }
    fn processes(&self) -> String {
        self.processes.clone()
    }
    fn process(&self, identity: &str) -> String {
        self.key(identity)
    }
    fn work(&self, identity: &str) -> String {
        format!("{}{identity}:work", self.prefix)
    }
    fn workers(&self, identity: &str) -> String {
        format!("{}{identity}:workers", self.prefix)
    }
    fn in_progress(&self, identity: &str) -> String {
        format!("{}inprogress:{identity}", self.prefix)
    }
    fn in_progress_index(&self) -> String {
        self.in_progress_index.clone()
    }
    fn processed(&self) -> String {
        self.processed.clone()
    }
    fn failed(&self) -> String {
        self.failed.clone()
    }
}

/// Queues and sets in Redis, laid out as Sidekiq lays them out.
pub struct RedisBackend {
    conn: ConnectionManager,
    /// The URL with any password hidden, for messages.
    url: String,
    keys: Keys,
    /// Wakes this backend's waiting fetchers when it enqueues something.
    pushed: Notify,
}

impl RedisBackend {
    /// The members of the process set.
    async fn process_identities(&self) -> BackendResult<Vec<String>> {
        self.conn()
            .smembers(self.keys.processes())
            .await
            .map_err(|e| self.error("reading the process set", e))
    }

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

    async fn open(url: &str, namespace: &str) -> BackendResult<Self> {
        let shown = redact(url);
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

    /// One call of the settle-and-fetch script: settles `settle` (a payload
    /// and jid, and the counts to add) if given, then takes a job from the
    /// first non-empty of `queues` (none: settle only).
    async fn settle_and_take(
        &self,
        settle: Option<(&str, &str, u64, u64)>,
        queues: &[String],
        mode: FetchMode,
        process: &str,
    ) -> Result<Option<String>, RedisError> {
        let mut invocation = SETTLE_AND_FETCH.prepare_invoke();
        for name in queues {
            invocation.key(self.keys.queue(name));
        }
        let (payload, jid, processed, failed) = settle.unwrap_or(("", "", 0, 0));
        invocation
            .key(self.keys.in_progress(process))
            .key(&self.keys.in_progress_index)
            .key(&self.keys.processed)
            .key(&self.keys.failed)
            .arg(match mode {
                FetchMode::Reliable => "reliable",
                FetchMode::Basic => "basic",
            })
            .arg(process)
            .arg(payload)
            .arg(jid)
            .arg(processed)
            .arg(failed);
        invocation.invoke_async(&mut self.conn()).await
    }

    /// One look at the queues, in priority order, settling `finished` first
    /// in the same round trip.
    async fn try_fetch(
        &self,
        queues: &[String],
        mode: FetchMode,
        process: &str,
        finished: Option<&Finished>,
    ) -> BackendResult<Option<Job>> {
        if queues.is_empty() && finished.is_none() {
            return Ok(None);
        }
        let payload = match finished {
            None => self
                .settle_and_take(None, queues, mode, process)
                .await
                .map_err(|e| self.error("fetch", e))?,
            Some(f) => {
                let json = f.job.to_json();
                let settle = (json.as_str(), f.job.jid.as_str(), f.processed, f.failed);
                self.settle_and_take(Some(settle), queues, mode, process)
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

    /// Puts a payload the lab cannot read into the dead set (trimmed as
    /// usual), then takes it out of the in-progress list of the process that
    /// held it.
    async fn kill_unreadable(
        &self,
        payload: &str,
        at_ms: u64,
        held_by: Option<&str>,
    ) -> BackendResult<()> {
        let _: i64 = ADD_TO_SET
            .key(self.keys.set(JobSet::Dead))
            .arg(at_ms)
            .arg(payload)
            .arg("1")
            .arg(DEAD_MAX_JOBS)
            .arg(DEAD_TIMEOUT_MS)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.error("adding to the dead set", e))?;
        if let Some(process) = held_by {
            self.settle_and_take(Some((payload, "", 0, 0)), &[], FetchMode::Reliable, process)
                .await
                .map_err(|e| self.error("dropping from an in-progress list", e))?;
        }
        Ok(())
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

    /// Moves `(set, member, job)` to the jobs' queues with `enqueued_at` set
    /// to `now_ms`, each only if still in its set; returns how many moved.
    async fn move_to_queues(
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

    /// Identities in the process set, with their beat (None: no hash).
    async fn process_beats(&self) -> BackendResult<Vec<(String, Option<f64>)>> {
        let mut conn = self.conn();
        let identities: Vec<String> = conn
            .smembers(self.keys.processes())
            .await
            .map_err(|e| self.error("reading the process set", e))?;
        if identities.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for identity in &identities {
            pipe.hget(self.keys.process(identity), "beat");
        }
        let beats: Vec<Option<f64>> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error("reading heartbeats", e))?;
        Ok(identities.into_iter().zip(beats).collect())
    }

    /// Recovers one dead process's in-progress jobs and removes it.
    async fn recover_process(
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

/// The `KEYS` of a script call: fixed ones at the positions the script
/// expects, then the rest, each once, addressed by its 1-based index.
struct KeyList {
    keys: Vec<String>,
    at: HashMap<String, usize>,
}

impl KeyList {
    fn fixed(keys: Vec<String>) -> Self {
        let mut at = HashMap::new();
        for (i, key) in keys.iter().enumerate() {
            at.entry(key.clone()).or_insert(i + 1);
        }
        Self { keys, at }
    }

    fn index(&mut self, key: String) -> usize {
        if let Some(&i) = self.at.get(&key) {
            return i;
        }
        self.keys.push(key.clone());
        self.at.insert(key, self.keys.len());
        self.keys.len()
    }
}

/// A ZSET score (epoch seconds) back to the caller's milliseconds: the
/// microseconds the lab adds to keep insertion order are dropped.
fn score_to_ms(score: f64) -> u64 {
    ((score * 1e6).round().max(0.0) as u64) / 1000
}

/// A time Sidekiq wrote: float epoch seconds (6, 7), or integer epoch
/// milliseconds (8; the same rule as [`Job`]'s times).
fn epoch_to_ms(value: f64) -> u64 {
    if value > 100_000_000_000.0 {
        value.round() as u64
    } else {
        seconds_to_ms(value)
    }
}

/// The latest of a payload's `enqueued_at`, `failed_at`, `retried_at` and
/// `created_at`, if it is JSON with any of them.
fn payload_time_ms(payload: &str) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_str(payload).ok()?;
    ["enqueued_at", "failed_at", "retried_at", "created_at"]
        .iter()
        .filter_map(|key| value.get(*key)?.as_f64())
        .map(epoch_to_ms)
        .max()
}

/// The exclusive upper bound of the scores of times up to `ms`.
fn score_bound_after(ms: u64) -> String {
    let micros = ms.saturating_add(1).saturating_mul(1000);
    format!("({}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// `url` with the password (if any) replaced by `***`.
fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let hidden = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                "***".to_string()
            };
            format!("{}{hidden}{}", &url[..scheme_end], &rest[at..])
        }
        None => url.to_string(),
    }
}

fn parse_job(payload: &str, place: &str) -> BackendResult<Job> {
    Job::from_json(payload).map_err(|e| {
        BackendError(format!(
            "{place} holds a payload that is not a job ({e}): {payload}"
        ))
    })
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

    async fn fetch(
        &self,
        queues: &[String],
        mode: FetchMode,
        process: &str,
        wait: Duration,
    ) -> BackendResult<Option<Job>> {
        self.settle_and_fetch(None, queues, mode, process, wait)
            .await
    }

    async fn settle(&self, process: &str, finished: &Finished) -> BackendResult<()> {
        self.try_fetch(&[], FetchMode::Reliable, process, Some(finished))
            .await
            .map(|_| ())
    }

    async fn settle_and_fetch(
        &self,
        finished: Option<Finished>,
        queues: &[String],
        mode: FetchMode,
        process: &str,
        wait: Duration,
    ) -> BackendResult<Option<Job>> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut pause = POLL_MIN;
        // Settled with the first look only.
        let mut finished = finished;
        loop {
            // Register interest before looking, so a push in between is not missed.
            let pushed = self.pushed.notified();
            let settle = finished.take();
            if let Some(job) = self
                .try_fetch(queues, mode, process, settle.as_ref())
                .await?
            {
                return Ok(Some(job));
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let nap = pause.min(deadline - now);
            tokio::select! {
                () = pushed => {}
                () = tokio::time::sleep(nap) => pause = (pause * 2).min(POLL_MAX),
            }
        }
    }

    async fn acknowledge(&self, process: &str, job: &Job) -> BackendResult<()> {
        let json = job.to_json();
        self.settle_and_take(
            Some((json.as_str(), job.jid.as_str(), 0, 0)),
            &[],
            FetchMode::Reliable,
            process,
        )
        .await
        .map_err(|e| self.error("acknowledging a job", e))?;
        Ok(())
    }

    async fn add_to_set(&self, set: JobSet, job: Job, at_ms: u64) -> BackendResult<()> {
        let _: i64 = ADD_TO_SET
            .key(self.keys.set(set))
            .arg(at_ms)
            .arg(job.to_json())
            .arg(if set == JobSet::Dead { "1" } else { "0" })
            .arg(DEAD_MAX_JOBS)
            .arg(DEAD_TIMEOUT_MS)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.error(&format!("adding to the {} set", set.key()), e))?;
        Ok(())
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
        let mut conn = self.conn();
        let names: Vec<String> = conn
            .smembers(self.keys.queues())
            .await
            .map_err(|e| self.error("reading the queue names", e))?;
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for name in &names {
            pipe.llen(self.keys.queue(name));
        }
        let sizes: Vec<usize> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error("reading queue sizes", e))?;
        Ok(names.into_iter().zip(sizes).collect())
    }

    async fn heartbeat(&self, process: ProcessInfo, busy: Vec<BusyJob>) -> BackendResult<()> {
        let identity = &process.identity;
        let info = SidekiqInfo {
            hostname: process.hostname.clone(),
            started_at: ms_to_seconds(process.started_at_ms),
            pid: std::process::id(),
            tag: process.code_version.clone(),
            concurrency: process.concurrency,
            queues: process.queues.clone(),
            labels: Vec::new(),
            identity: identity.clone(),
            version: Some(process.code_version.clone()),
        };
        let info = serde_json::to_string(&info).expect("process info serializes");
        let work: Vec<(String, String)> = busy
            .iter()
            .map(|b| {
                let work = Work {
                    queue: b.job.queue.clone(),
                    payload: b.job.to_json(),
                    run_at: ms_to_seconds(b.started_at_ms),
                };
                let json = serde_json::to_string(&work).expect("work serializes");
                (b.job.jid.clone(), json)
            })
            .collect();
        let mut pipe = ::redis::pipe();
        pipe.atomic()
            .sadd(self.keys.processes(), identity)
            .ignore()
            .hset_multiple(
                self.keys.process(identity),
                &[
                    ("info", info),
                    ("busy", process.busy.to_string()),
                    ("beat", ms_to_seconds(process.beat_ms).to_string()),
                    ("quiet", "false".to_string()),
                    ("rss", "0".to_string()),
                    ("rtt_us", "0".to_string()),
                ],
            )
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
            ])
            .ignore()
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error("removing a process", e))?;
        Ok(())
    }

    async fn processes(&self) -> BackendResult<Vec<ProcessInfo>> {
        let mut conn = self.conn();
        let identities = self.process_identities().await?;
        if identities.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for identity in &identities {
            pipe.hmget(self.keys.process(identity), &["info", "busy", "beat"]);
        }
        type Fields = (Option<String>, Option<usize>, Option<f64>);
        let rows: Vec<Fields> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error("reading processes", e))?;
        let mut list = Vec::new();
        for (identity, (info, busy, beat)) in identities.into_iter().zip(rows) {
            // A process stopped between the two reads: gone.
            let Some(info) = info else { continue };
            let info: SidekiqInfo = serde_json::from_str(&info).map_err(|e| {
                BackendError(format!(
                    "process {identity} has an unreadable info field: {e}"
                ))
            })?;
            list.push(ProcessInfo {
                identity,
                hostname: info.hostname,
                started_at_ms: epoch_to_ms(info.started_at),
                beat_ms: beat.map_or(0, epoch_to_ms),
                concurrency: info.concurrency,
                queues: info.queues,
                busy: busy.unwrap_or(0),
                code_version: info.version.filter(|v| !v.is_empty()).unwrap_or(info.tag),
            });
        }
        list.sort_by(|a, b| a.identity.cmp(&b.identity));
        Ok(list)
    }

    async fn busy(&self) -> BackendResult<Vec<BusyJob>> {
        let mut conn = self.conn();
        let identities = self.process_identities().await?;
        if identities.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for identity in &identities {
            pipe.hgetall(self.keys.work(identity))
                .hgetall(self.keys.workers(identity));
        }
        let works: Vec<HashMap<String, String>> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error("reading busy jobs", e))?;
        let mut busy = Vec::new();
        for (identity, pair) in identities.into_iter().zip(works.chunks(2)) {
            // The lab writes both; a Ruby Sidekiq 7 process only `:work`, a
            // Sidekiq 6 one only `:workers`.
            let (place, work) = if pair[0].is_empty() {
                (format!("{identity}:workers"), &pair[1])
            } else {
                (format!("{identity}:work"), &pair[0])
            };
            for value in work.values() {
                let work: Work = serde_json::from_str(value).map_err(|e| {
                    BackendError(format!("{place} holds an unreadable entry ({e}): {value}"))
                })?;
                busy.push(BusyJob {
                    process: identity.clone(),
                    started_at_ms: epoch_to_ms(work.run_at),
                    job: parse_job(&work.payload, &place)?,
                });
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
        let (queues, holders): (Vec<String>, Vec<String>) = ::redis::pipe()
            .smembers(self.keys.queues())
            .smembers(self.keys.in_progress_index())
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error("reading the queue names", e))?;
        let places: Vec<String> = queues
            .iter()
            .map(|q| self.keys.queue(q))
            .chain(holders.iter().map(|id| self.keys.in_progress(id)))
            .collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_round_trip_to_milliseconds() {
        for ms in [
            0,
            1,
            999,
            1_767_225_600_000,
            1_767_225_600_123,
            1_767_225_600_999,
        ] {
            let seconds: f64 = format!("{}.{:03}", ms / 1000, ms % 1000).parse().unwrap();
            assert_eq!(score_to_ms(seconds), ms);
            // With the microseconds that keep insertion order.
            let tie: f64 = format!("{}.{:03}999", ms / 1000, ms % 1000)
                .parse()
                .unwrap();
            assert_eq!(score_to_ms(tie), ms);
        }
        assert_eq!(score_bound_after(1_767_225_600_123), "(1767225600.124000");
        assert_eq!(score_bound_after(999), "(1.000000");
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(
            redact("redis://:secret@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        assert_eq!(
            redact("redis://user:secret@host/1"),
            "redis://user:***@host/1"
        );
        assert_eq!(redact("redis://token@host"), "redis://***@host");
    }
}
