//! Sidekiq's key layout in Redis, under an optional namespace: the name of
//! every key the backend reads or writes, and the `KEYS` list of a script
//! call.
//!
//! # The keys
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
//! | `inprogress:<identity>:taken` | HASH | reliable fetch: fetcher slot → `<call>:<job JSON>`, the job each fetcher took last, so a call asked again after its reply was lost gets that job back |
//! | `inprogress` | SET | identities that have an in-progress list, so a list whose process is gone is found without `SCAN` |
//!
//! The code version goes in `info.tag` (the label Sidekiq 6's web UI shows
//! beside each process) and `info.version`; it is read back from `version`,
//! else `tag`. `inprogress*` are the lab's own (Sidekiq Pro keeps its private
//! queues under other names); Sidekiq's tools ignore them.
//!
//! No key gets an expiry: processes leave by [`Backend::remove_process`] or
//! [`Backend::recover_expired`], on the caller's clock, so virtual time
//! works. [`RedisBackend::connect_with_namespace`] puts `PREFIX:` before
//! every key (as the `redis-namespace` gem does); the tests use it to run in
//! parallel.
//!
//! [`Backend::remove_process`]: crate::runner::Backend::remove_process
//! [`Backend::recover_expired`]: crate::runner::Backend::recover_expired
//! [`RedisBackend::connect_with_namespace`]: super::RedisBackend::connect_with_namespace

use std::collections::HashMap;

use crate::runner::backend::JobSet;

/// Key names, with the optional namespace. The fixed ones are made once: a
/// busy worker names several keys per job.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    pub(super) prefix: String,
    pub(super) queues: String,
    pub(super) processes: String,
    pub(super) in_progress_index: String,
    pub(super) processed: String,
    pub(super) failed: String,
}

impl Keys {
    pub(super) fn new(prefix: String) -> Self {
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
    pub(super) fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
    pub(super) fn queues(&self) -> String {
        self.queues.clone()
    }
    pub(super) fn queue(&self, name: &str) -> String {
        format!("{}queue:{name}", self.prefix)
    }
    pub(super) fn set(&self, set: JobSet) -> String {
        self.key(set.key())
    }
    pub(super) fn processes(&self) -> String {
        self.processes.clone()
    }
    pub(super) fn process(&self, identity: &str) -> String {
        self.key(identity)
    }
    pub(super) fn work(&self, identity: &str) -> String {
        format!("{}{identity}:work", self.prefix)
    }
    pub(super) fn workers(&self, identity: &str) -> String {
        format!("{}{identity}:workers", self.prefix)
    }
    pub(super) fn in_progress(&self, identity: &str) -> String {
        format!("{}inprogress:{identity}", self.prefix)
    }
    pub(super) fn taken(&self, identity: &str) -> String {
        format!("{}inprogress:{identity}:taken", self.prefix)
    }
    pub(super) fn in_progress_index(&self) -> String {
        self.in_progress_index.clone()
    }
    pub(super) fn processed(&self) -> String {
        self.processed.clone()
    }
    pub(super) fn failed(&self) -> String {
        self.failed.clone()
    }
}

/// The `KEYS` of a script call: fixed ones at the positions the script
/// expects, then the rest, each once, addressed by its 1-based index.
pub(super) struct KeyList {
    pub(super) keys: Vec<String>,
    at: HashMap<String, usize>,
}

impl KeyList {
    pub(super) fn fixed(keys: Vec<String>) -> Self {
        let mut at = HashMap::new();
        for (i, key) in keys.iter().enumerate() {
            at.entry(key.clone()).or_insert(i + 1);
        }
        Self { keys, at }
    }

    pub(super) fn index(&mut self, key: String) -> usize {
        if let Some(&i) = self.at.get(&key) {
            return i;
        }
        self.keys.push(key.clone());
        self.at.insert(key, self.keys.len());
        self.keys.len()
    }
}
