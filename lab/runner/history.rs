//! Every attempt at every job: which process and code version ran it, and
//! how it ended. The checker's violation reports quote it, so that "order 7
//! was charged twice" comes with "attempt 1 on worker-a (v1) failed with
//! Email::ServerError, attempt 2 on worker-b (v2) charged again".

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;

/// The most attempts kept; older ones are forgotten first, so a long-running
/// web lab does not grow without bound.
pub const MAX_ATTEMPTS: usize = 100_000;

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum AttemptOutcome {
    Done,
    Failed {
        error_class: String,
        error_message: String,
        transient: bool,
        /// `retry`, `dead` or `discarded`.
        then: &'static str,
    },
    /// The process died during it.
    Died {
        error_message: String,
    },
}

/// One run of a job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    pub jid: String,
    pub class: String,
    pub args: Vec<Value>,
    /// 1 for the first run, 2 for the first retry, …
    pub attempt: u32,
    pub process: String,
    pub code_version: String,
    pub started_ms: u64,
    pub finished_ms: u64,
    #[serde(flatten)]
    pub outcome: AttemptOutcome,
}

/// The attempts of one lab, shared by all its processes (and by an old
/// worker sharing the queues), oldest first.
#[derive(Debug, Clone, Default)]
pub struct History {
    attempts: Arc<Mutex<VecDeque<Attempt>>>,
}

impl History {
    pub fn new() -> Self {
        Self::default()
    }

    pub(super) fn record(&self, attempt: Attempt) {
        let mut attempts = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        if attempts.len() == MAX_ATTEMPTS {
            attempts.pop_front();
        }
        attempts.push_back(attempt);
    }

    /// Every attempt kept, oldest first.
    pub fn attempts(&self) -> Vec<Attempt> {
        let attempts = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        attempts.iter().cloned().collect()
    }

    /// The attempts at jobs whose first argument is `arg` (an order id).
    pub fn for_first_arg(&self, arg: &Value) -> Vec<Attempt> {
        let attempts = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        attempts
            .iter()
            .filter(|a| a.args.first() == Some(arg))
            .cloned()
            .collect()
    }

    pub fn clear(&self) {
        self.attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}
