//! How many attempts of each job class this runner finished, and how: the
//! web lab's `GET /metrics` counters. Counted where an attempt ends (the
//! processor records it into the [`History`](super::History)), per runner,
//! so that labs in one process (the tests) do not mix their counts, and
//! never reset: a Prometheus counter only goes up. A runner counts the jobs
//! its own processes ran; `lab worker` processes on the same Redis count
//! theirs, in their own process (the backend's `stat:processed` and
//! `stat:failed` are the totals of all).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::history::AttemptOutcome;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    class: String,
}

/// Attempts by job class. Cheap to clone; clones count together.
#[derive(Debug, Clone, Default)]
pub struct JobCounts {
    processed: Family<ClassLabels, Counter>,
    failed: Family<ClassLabels, Counter>,
    retried: Family<ClassLabels, Counter>,
    dead: Family<ClassLabels, Counter>,
}

impl JobCounts {
    /// Counts an attempt at a job of `class` that ended with `outcome`. As
    /// Sidekiq's `stat:processed`, processed is every attempt that finished
    /// (done or failed); one whose process died finished nothing.
    pub(super) fn count(&self, class: &str, outcome: &AttemptOutcome) {
        let then = match outcome {
            AttemptOutcome::Done => None,
            AttemptOutcome::Failed { then, .. } => Some(*then),
            AttemptOutcome::Died { .. } => return,
        };
        let labels = ClassLabels {
            class: class.to_string(),
        };
        self.processed.get_or_create(&labels).inc();
        let Some(then) = then else {
            return;
        };
        self.failed.get_or_create(&labels).inc();
        // `discarded`: failed, and neither retried nor buried.
        let went_to = match then {
            "retry" => &self.retried,
            "dead" => &self.dead,
            _ => return,
        };
        went_to.get_or_create(&labels).inc();
    }

    /// Registers the four families (`jobs_processed_total`, …) with
    /// `registry`, sharing these counts.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "jobs_processed",
            "Job attempts this lab's runner finished (done or failed), by job class",
            self.processed.clone(),
        );
        registry.register(
            "jobs_failed",
            "Job attempts that failed, by job class",
            self.failed.clone(),
        );
        registry.register(
            "jobs_retried",
            "Failed attempts whose job went to the retry set, by job class",
            self.retried.clone(),
        );
        registry.register(
            "jobs_dead",
            "Failed attempts whose job went to the dead set, by job class",
            self.dead.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(then: &'static str) -> AttemptOutcome {
        AttemptOutcome::Failed {
            error_class: "E".into(),
            error_message: "m".into(),
            transient: true,
            then,
        }
    }

    #[test]
    fn each_outcome_counts_where_it_belongs() {
        let counts = JobCounts::default();
        counts.count("A", &AttemptOutcome::Done);
        counts.count("A", &failed("retry"));
        counts.count("A", &failed("dead"));
        counts.count("A", &failed("discarded"));
        counts.count(
            "A",
            &AttemptOutcome::Died {
                error_message: "killed".into(),
            },
        );
        counts.count("B", &AttemptOutcome::Done);
        let get = |family: &Family<ClassLabels, Counter>, class: &str| {
            family
                .get(&ClassLabels {
                    class: class.into(),
                })
                .map_or(0, |c| c.get())
        };
        assert_eq!(get(&counts.processed, "A"), 4);
        assert_eq!(get(&counts.failed, "A"), 3);
        assert_eq!(get(&counts.retried, "A"), 1);
        assert_eq!(get(&counts.dead, "A"), 1);
        assert_eq!(get(&counts.processed, "B"), 1);
        assert_eq!(get(&counts.failed, "B"), 0);
    }
}
