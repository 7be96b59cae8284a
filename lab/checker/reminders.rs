//! `reminders_per_reminder`: each due reminder sent as many times as
//! expected, counted in the email ledger, and the email id its row recorded
//! one of those sent.

use fake_services::{Record, Service};

use super::expect::Invariant;
use super::indexed::Indexed;
use super::records::is_reminder_email;
use super::violation::Violation;
use super::wording::{amount, ids};
use crate::pipeline::reminders::SWEEP_REMINDERS;
use crate::runner::Attempt;
use crate::store::Reminder;

impl Indexed<'_> {
    pub(super) fn reminders(&self, per_reminder: u32) -> Vec<Violation> {
        let ledger = self.snapshot.ledger(Service::Email);
        let sweeps: Vec<Attempt> = self
            .snapshot
            .history
            .iter()
            .filter(|a| a.class == SWEEP_REMINDERS)
            .cloned()
            .collect();
        let mut reminders: Vec<&Reminder> = self.snapshot.reminders.iter().collect();
        reminders.sort_by_key(|r| r.id);
        let counted = ("reminder email", "reminder emails");
        let mut found = Vec::new();
        for reminder in reminders {
            let sent: Vec<&Record> = ledger
                .iter()
                .filter(|r| is_reminder_email(r, reminder.id))
                .collect();
            let want = per_reminder as usize;
            let who = format!("reminder {}", reminder.id);
            if sent.len() != want {
                found.push(Violation {
                    invariant: Invariant::RemindersPerReminder,
                    order_id: None,
                    reminder_id: Some(reminder.id),
                    expected: amount(want, counted),
                    found: amount(sent.len(), counted),
                    message: match sent.len() {
                        0 => format!("{who} was never sent"),
                        1 => format!("{who} was sent once"),
                        n => format!("{who} was sent {n} times"),
                    },
                    records: sent.iter().map(|r| (*r).clone()).collect(),
                    attempts: sweeps.clone(),
                });
            }
            if let Some(recorded) = reminder.email_id.as_deref() {
                if !sent.iter().any(|r| r.id == recorded) {
                    found.push(Violation {
                        invariant: Invariant::RemindersPerReminder,
                        order_id: None,
                        reminder_id: Some(reminder.id),
                        expected: if sent.is_empty() {
                            format!("no email_id (the email ledger has none for {who})")
                        } else {
                            format!("email_id = one of {}", ids(&sent))
                        },
                        found: format!("email_id = {recorded}"),
                        message: format!(
                            "{who} records email {recorded}, which is not one of its reminder emails in the email ledger"
                        ),
                        records: sent.iter().map(|r| (*r).clone()).collect(),
                        attempts: sweeps.clone(),
                    });
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use crate::checker::check;
    use crate::checker::fixtures::*;
    use crate::pipeline::reminders::SWEEP_REMINDERS;
    use crate::runner::AttemptOutcome;
    use crate::store::Reminder;

    fn reminder(id: i64, email_id: Option<&str>) -> Reminder {
        Reminder {
            id,
            email: "a@example.com".into(),
            due_at_ms: 0,
            claimed_by: None,
            claimed_at_ms: None,
            sent_at_ms: email_id.map(|_| 1),
            email_id: email_id.map(Into::into),
        }
    }

    #[test]
    fn reminders_are_counted_per_reminder() {
        let records = vec![
            reminder_email("em_a", 1),
            reminder_email("em_b", 2),
            reminder_email("em_c", 2),
            // A confirmation email for order 1 is not a reminder.
            email("em_x", 1, told_ok(202)),
        ];
        let mut snap = snapshot(vec![], records);
        snap.reminders = vec![
            reminder(1, Some("em_a")),
            reminder(2, Some("em_c")),
            reminder(3, None),
        ];
        snap.history = vec![attempt(
            SWEEP_REMINDERS,
            0,
            1,
            "w1",
            "v1",
            AttemptOutcome::Done,
        )];
        let e = expect(|e| e.reminders_per_reminder = Some(1));
        let found = check(&e, &snap);
        let which: Vec<Option<i64>> = found.iter().map(|v| v.reminder_id).collect();
        assert_eq!(which, [Some(2), Some(3)]);
        assert_eq!(found[0].message, "reminder 2 was sent 2 times");
        assert_eq!(found[1].message, "reminder 3 was never sent");
        assert_eq!(found[0].attempts.len(), 1, "the sweeps are the history");

        // A recorded id that is not one of its emails.
        snap.reminders = vec![reminder(1, Some("em_b"))];
        let found = check(&e, &snap);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].found, "email_id = em_b");
    }
}
