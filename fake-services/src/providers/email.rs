//! Email: sends, and the search clients use to see whether an email already
//! went out.

use serde_json::{json, Map, Value};

use super::{blank, Books, Desk, EffectOutcome};
use crate::ledger::{scalar_to_string, Record};

pub(super) fn send(
    desk: &mut Desk<'_>,
    body: &Value,
    fields: &Map<String, Value>,
) -> EffectOutcome {
    for required in ["to", "template_id"] {
        if blank(fields.get(required)) {
            return EffectOutcome::Rejected {
                status: 422,
                body: json!({"status": "not-queued", "errorMessage": format!("{required} required")}),
            };
        }
    }
    let id = desk.next_id();
    let response = json!({"status": "queued", "email_id": id});
    desk.record(id, body, 202, &response);
    EffectOutcome::Executed {
        status: 202,
        body: response,
    }
}

/// Emails whose `to` and `template_id` both equal the query's, as the book
/// server matches them (a parameter left out matches nothing), that the
/// search index shows at `now_ms`; oldest first.
pub(super) fn search(
    books: &Books,
    email: Option<String>,
    template_id: Option<String>,
    now_ms: u64,
) -> Vec<Value> {
    let (Some(email), Some(template_id)) = (email, template_id) else {
        return Vec::new();
    };
    let Some(indexes) = books.by_recipient.get(&(email, template_id)) else {
        return Vec::new();
    };
    indexes
        .iter()
        .map(|&i| &books.records[i])
        .filter(|r| r.searchable_at_ms <= now_ms)
        .map(Record::search_view)
        .collect()
}

/// A sent email's `(to, template_id)`, as search compares them: both
/// scalars, as text.
pub(super) fn recipient(request: &Value) -> Option<(String, String)> {
    let to = request.get("to").and_then(scalar_to_string)?;
    let template_id = request.get("template_id").and_then(scalar_to_string)?;
    Some((to, template_id))
}
