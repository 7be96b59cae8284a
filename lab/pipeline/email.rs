//! The emails the pipeline sends (an order's confirmation, a reminder) and
//! the one way it sends them: deduplicated by search, by idempotency key, or
//! not at all, as a knob says. The confirmation job and the reminder sweep
//! share it, so the two cannot drift in how they avoid a second email.

use serde_json::json;

use super::job_errors::service_error;
use super::keys::{idempotency_key, reminder_key};
use super::knobs::EmailDedup;
use super::Shop;
use crate::clients::EmailRequest;
use crate::runner::JobError;
use crate::store::{Order, Reminder};

/// The confirmation email's template, as in the book app.
pub const CONFIRMATION_TEMPLATE: &str = "order-confirmation";
/// A due reminder's template.
pub const REMINDER_TEMPLATE: &str = "order-reminder";

/// An email the pipeline sends: an order's confirmation, a reminder.
pub(super) struct Email<'a> {
    pub to: &'a str,
    pub template_id: &'a str,
    /// The template data field that names what the email is about, and its
    /// value: how a search tells this email from the others to `to`.
    pub about: (&'a str, i64),
    pub subject: &'a str,
    /// The idempotency key it carries when the knob says so.
    pub key: String,
}

impl<'a> Email<'a> {
    /// The order's confirmation, keyed by the order.
    pub(super) fn confirmation(order: &'a Order) -> Email<'a> {
        Email {
            to: &order.email,
            template_id: CONFIRMATION_TEMPLATE,
            about: ("order_id", order.id),
            subject: "Your order has been received",
            key: idempotency_key(order.id),
        }
    }

    /// A due reminder, keyed by the reminder.
    pub(super) fn reminder(reminder: &'a Reminder) -> Email<'a> {
        Email {
            to: &reminder.email,
            template_id: REMINDER_TEMPLATE,
            about: ("reminder_id", reminder.id),
            subject: "A reminder about your order",
            key: reminder_key(reminder.id),
        }
    }
}

/// Sends `email`, deduplicated as `dedup` says: searched for first
/// (`search`), sent with its key (`idempotency-key`), or just sent (`none`).
/// Returns the provider's id for it.
pub(super) async fn send_once(
    shop: &Shop,
    email: Email<'_>,
    dedup: EmailDedup,
) -> Result<String, JobError> {
    let client = &shop.clients.email;
    let (field, id) = email.about;
    if dedup == EmailDedup::Search {
        let found = client
            .search_emails(email.to, email.template_id)
            .await
            .map_err(service_error)?;
        if let Some(sent) = found
            .into_iter()
            .find(|e| e.template_data.get(field) == Some(&json!(id)))
        {
            return Ok(sent.email_id);
        }
    }
    client
        .send_email(&EmailRequest {
            to: email.to.to_string(),
            template_id: email.template_id.to_string(),
            template_data: json!({ field: id, "subject": email.subject }),
            idempotency_key: (dedup == EmailDedup::IdempotencyKey).then_some(email.key),
        })
        .await
        .map_err(service_error)
}
