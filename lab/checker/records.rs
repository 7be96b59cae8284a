//! Reading the fields the checker needs from a ledger record (the request a
//! provider was sent) and from a job's arguments.
//!
//! Every check reads records through these, so how a record names its
//! template, its reminder or its error, and how a job names its order, is
//! said once.

use fake_services::ledger::scalar_to_string;
use fake_services::Record;
use serde_json::Value;

use crate::pipeline::reminders::REMINDER_TEMPLATE;

/// What a death notification says (`<JobClass> won't be retried: <message>`).
pub const DEATH_MARK: &str = "won't be retried";

/// Whether the record names order `id` the way the lab's pipeline writes it
/// (`metadata.order_id`, or `template_data.order_id` for an email).
pub fn is_for_order(record: &Record, id: i64) -> bool {
    record.order_id() == Some(id.to_string())
}

/// An email's `template_id`.
pub fn template(record: &Record) -> Option<&str> {
    record.request.get("template_id").and_then(Value::as_str)
}

/// The text at a JSON pointer of the request (a number read as its digits).
pub fn request_text(record: &Record, pointer: &str) -> Option<String> {
    record.request.pointer(pointer).and_then(scalar_to_string)
}

/// Whether the record is a reminder email for reminder `id`.
pub fn is_reminder_email(record: &Record, id: i64) -> bool {
    template(record) == Some(REMINDER_TEMPLATE)
        && request_text(record, "/template_data/reminder_id") == Some(id.to_string())
}

/// Whether an error-catcher record notifies a job's death (not one of its
/// failed attempts).
pub fn is_death(record: &Record) -> bool {
    exception_message(record).is_some_and(|m| m.contains(DEATH_MARK))
}

/// An error-catcher record's `exception_message`.
pub fn exception_message(record: &Record) -> Option<&str> {
    record
        .request
        .get("exception_message")
        .and_then(Value::as_str)
}

/// An error-catcher record's `exception_class`.
pub fn exception_class(record: &Record) -> Option<&str> {
    record
        .request
        .get("exception_class")
        .and_then(Value::as_str)
}

/// Whether a job's first argument is `id` (as a number or as text).
pub fn first_arg_is(args: &[Value], id: i64) -> bool {
    args.first().and_then(scalar_to_string) == Some(id.to_string())
}

/// A job's first argument as an order id, when it is one.
pub fn first_arg(args: &[Value]) -> Option<i64> {
    args.first()
        .and_then(scalar_to_string)
        .and_then(|s| s.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::fixtures::{charge, email, notification, reminder_email, told_ok};
    use serde_json::json;

    #[test]
    fn a_death_is_a_notification_that_says_the_job_wont_be_retried() {
        let death = notification(
            "err_1",
            "Payments::ServerError",
            "CompleteOrderJob won't be retried: 503",
        );
        assert!(is_death(&death));
        // A failed attempt notified as itself is not a death.
        let failure = notification("err_2", "Payments::ServerError", "503");
        assert!(!is_death(&failure));
        // Nor is a record with no message at all.
        assert!(!is_death(&charge("ch_1", 1, told_ok(201))));
    }

    #[test]
    fn exception_fields_are_read_from_the_request() {
        let r = notification("err_1", "E", "boom");
        assert_eq!(exception_class(&r), Some("E"));
        assert_eq!(exception_message(&r), Some("boom"));
        let c = charge("ch_1", 1, told_ok(201));
        assert_eq!(exception_class(&c), None);
        assert_eq!(exception_message(&c), None);
    }

    #[test]
    fn records_name_their_order_or_reminder() {
        let c = charge("ch_1", 7, told_ok(201));
        assert!(is_for_order(&c, 7));
        assert!(!is_for_order(&c, 8));
        let e = email("em_1", 7, told_ok(202));
        assert!(is_for_order(&e, 7));
        assert!(!is_reminder_email(&e, 7), "a confirmation is no reminder");
        let r = reminder_email("em_r", 3);
        assert!(is_reminder_email(&r, 3));
        assert!(!is_reminder_email(&r, 4));
        assert!(!is_for_order(&r, 3), "a reminder names no order");
        assert_eq!(
            request_text(&r, "/template_data/reminder_id"),
            Some("3".into())
        );
    }

    #[test]
    fn a_jobs_first_argument_names_its_order_as_number_or_text() {
        assert!(first_arg_is(&[json!(4)], 4));
        assert!(first_arg_is(&[json!("4")], 4));
        assert!(!first_arg_is(&[json!(5)], 4));
        assert!(!first_arg_is(&[], 4));
        assert_eq!(first_arg(&[json!("12"), json!(1)]), Some(12));
        assert_eq!(first_arg(&[json!("x")]), None);
        assert_eq!(first_arg(&[json!(null)]), None);
    }
}
