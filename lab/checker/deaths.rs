//! The dead set and the error catcher: `dead_jobs` and `notified`. Which
//! death notification belongs to which dead job (the one thing that makes a
//! dead order settled) is matched once, in [`indexed`](super::indexed).

use fake_services::Service;

use super::expect::Invariant;
use super::indexed::Indexed;
use super::records::{exception_class, exception_message, first_arg};
use super::violation::Violation;
use super::wording::{amount, listed, single};
use crate::runner::{Attempt, AttemptOutcome};

impl Indexed<'_> {
    pub(super) fn dead_jobs(&self, want: u32) -> Vec<Violation> {
        let dead = &self.snapshot.dead;
        if dead.len() == want as usize {
            return Vec::new();
        }
        let counted = ("dead job", "dead jobs");
        let jobs: Vec<String> = dead
            .iter()
            .map(|entry| {
                let job = &entry.job;
                let whose =
                    first_arg(&job.args).map_or_else(String::new, |id| format!(" for order {id}"));
                let why = job
                    .error_message
                    .as_deref()
                    .map_or_else(String::new, |m| format!(" ({m})"));
                format!("{}{whose}{why}", job.class)
            })
            .collect();
        let message = if dead.is_empty() {
            "no job is in the dead set".to_string()
        } else {
            format!(
                "{} in the dead set: {}",
                amount(dead.len(), ("job is", "jobs are")),
                listed(&jobs)
            )
        };
        let jids: Vec<&str> = dead.iter().map(|e| e.job.jid.as_str()).collect();
        Vec::from([Violation {
            invariant: Invariant::DeadJobs,
            order_id: single(dead.iter().filter_map(|e| first_arg(&e.job.args))).map(Into::into),
            reminder_id: None,
            expected: amount(want as usize, counted),
            found: amount(dead.len(), counted),
            message,
            records: self
                .death_notices
                .iter()
                .flatten()
                .map(|r| (*r).clone())
                .collect(),
            attempts: self
                .snapshot
                .history
                .iter()
                .filter(|a| jids.contains(&a.jid.as_str()))
                .cloned()
                .collect(),
        }])
    }

    pub(super) fn notified(&self, want: u32) -> Vec<Violation> {
        let ledger = self.snapshot.ledger(Service::ErrorCatcher);
        if ledger.len() == want as usize {
            return Vec::new();
        }
        let counted = ("notification", "notifications");
        let what: Vec<String> = ledger
            .iter()
            .map(|r| {
                format!(
                    "{}: {}",
                    exception_class(r).unwrap_or("?"),
                    exception_message(r).unwrap_or("?")
                )
            })
            .collect();
        let message = match ledger.len() {
            0 => "the error catcher was never notified".to_string(),
            1 => format!("the error catcher was notified once: {}", what[0]),
            n => format!(
                "the error catcher was notified {n} times: {}",
                what.join("; ")
            ),
        };
        // The failed attempts whose error was notified (as itself, or as a death).
        let attempts: Vec<Attempt> = self
            .snapshot
            .history
            .iter()
            .filter(|a| match &a.outcome {
                AttemptOutcome::Failed {
                    error_class,
                    error_message,
                    ..
                } => ledger.iter().any(|r| {
                    exception_class(r) == Some(error_class.as_str())
                        && exception_message(r).is_some_and(|m| {
                            m == error_message || m.ends_with(&format!(": {error_message}"))
                        })
                }),
                _ => false,
            })
            .cloned()
            .collect();
        Vec::from([Violation {
            invariant: Invariant::Notified,
            order_id: single(attempts.iter().filter_map(|a| first_arg(&a.args))).map(Into::into),
            reminder_id: None,
            expected: amount(want as usize, counted),
            found: amount(ledger.len(), counted),
            message,
            records: ledger.to_vec(),
            attempts,
        }])
    }
}

#[cfg(test)]
mod tests {
    use crate::checker::check;
    use crate::checker::expect::Invariant;
    use crate::checker::fixtures::*;
    use crate::checker::indexed::match_deaths;
    use crate::runner::AttemptOutcome;

    #[test]
    fn dead_jobs_and_notifications_are_counted() {
        let class = "CompleteOrderJob";
        let death = format!("{class} won't be retried: boom");
        let mut snap = snapshot(
            vec![placed(2)],
            vec![
                notification("err_1", "E", "boom"),
                notification("err_2", "E", &death),
            ],
        );
        snap.dead = vec![dead(class, 2, "boom")];
        snap.history = vec![
            attempt(class, 2, 1, "w1", "v1", failed("E", "boom", "retry")),
            attempt(class, 2, 2, "w1", "v1", failed("E", "boom", "dead")),
            attempt(class, 7, 1, "w1", "v1", AttemptOutcome::Done),
        ];
        snap.history[2].jid = "other".into();
        assert_eq!(
            check(
                &expect(|e| {
                    e.dead_jobs = Some(1);
                    e.notified = Some(2);
                }),
                &snap
            ),
            vec![]
        );

        let found = check(
            &expect(|e| {
                e.dead_jobs = Some(0);
                e.notified = Some(0);
            }),
            &snap,
        );
        assert_eq!(
            invariants(&found),
            vec![
                (Invariant::DeadJobs, Some(2)),
                (Invariant::Notified, Some(2))
            ]
        );
        assert_eq!(found[0].expected, "0 dead jobs");
        assert_eq!(found[0].found, "1 dead job");
        assert_eq!(
            found[0].message,
            "1 job is in the dead set: CompleteOrderJob for order 2 (boom)"
        );
        assert_eq!(found[0].attempts.len(), 2, "the dead job's attempts");
        assert_eq!(found[1].records.len(), 2);
        assert!(found[1]
            .message
            .starts_with("the error catcher was notified 2 times: E: boom"));
        assert_eq!(found[1].attempts.len(), 2, "the notified failures");

        let found = check(&expect(|e| e.dead_jobs = Some(2)), &snap);
        assert_eq!(found[0].found, "1 dead job");
    }

    /// A `notified` violation quotes the attempts whose error the catcher
    /// heard, class and message both: not another failure of the same class,
    /// nor one with the same message from another class.
    #[test]
    fn a_notified_violation_quotes_only_the_notified_attempts() {
        let class = "SendOrderNotificationEmailJob";
        let mut snap = snapshot(
            vec![placed(1), placed(2)],
            vec![notification("err_1", "E", "boom")],
        );
        snap.history = vec![
            attempt(class, 1, 1, "w1", "v1", failed("E", "boom", "retry")),
            attempt(class, 2, 1, "w1", "v1", failed("E", "other", "retry")),
            attempt(class, 2, 2, "w1", "v1", failed("F", "boom", "retry")),
        ];
        for (i, a) in snap.history.iter_mut().enumerate() {
            a.jid = format!("jid{i}");
        }
        let found = check(&expect(|e| e.notified = Some(0)), &snap);
        assert_eq!(invariants(&found), vec![(Invariant::Notified, Some(1))]);
        assert_eq!(found[0].attempts.len(), 1, "{:?}", found[0].attempts);
        assert_eq!(found[0].attempts[0].args, vec![serde_json::json!(1)]);
    }

    #[test]
    fn each_dead_job_takes_its_own_notification_before_any_of_its_class() {
        let class = "CompleteOrderJob";
        let mut first = dead(class, 1, "a");
        first.at_ms = 1;
        let mut second = dead(class, 2, "b");
        second.at_ms = 2;
        let notices = [
            notification("err_b", "E", &format!("{class} won't be retried: b")),
            notification(
                "err_x",
                "E",
                &format!("{class} won't be retried: truncated"),
            ),
            // A failed attempt notified as itself is no death notice.
            notification("err_a", "E", "a"),
        ];
        let matched = match_deaths(&[first, second], notices.iter().collect());
        let ids: Vec<Option<&str>> = matched.iter().map(|n| n.map(|r| r.id.as_str())).collect();
        // The earlier death does not take the later one's exact notice: it
        // gets the vague one, of its class.
        assert_eq!(ids, [Some("err_x"), Some("err_b")]);

        // A notice for another class fits neither.
        let other = [notification("err_o", "E", "OtherJob won't be retried: a")];
        let matched = match_deaths(&[dead(class, 1, "a")], other.iter().collect());
        assert_eq!(matched, [None]);
    }
}
