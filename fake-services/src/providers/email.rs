//! Email: sends, and the search clients use to see whether an email already
//! went out.

use serde_json::{json, Map, Value};

use super::{blank, Answer, Desk};
use crate::ledger::{scalar_to_string, Record};

pub(super) fn send(desk: &mut Desk<'_>, body: &Value, fields: &Map<String, Value>) -> Answer {
    for required in ["to", "template_id"] {
        if blank(fields.get(required)) {
            return Answer::Rejected {
                status: 422,
                body: json!({"status": "not-queued", "errorMessage": format!("{required} required")}),
            };
        }
    }
    let id = desk.next_id();
    let response = json!({"status": "queued", "email_id": id});
    desk.record(id, body, 202, &response);
    Answer::Executed {
        status: 202,
        body: response,
    }
}

/// Emails whose `to` and `template_id` both equal the query's, as the book
/// server matches them: a parameter left out matches nothing.
pub(super) fn search<'a>(
    records: impl Iterator<Item = &'a Record>,
    email: Option<String>,
    template_id: Option<String>,
) -> Vec<Value> {
    let (Some(email), Some(template_id)) = (email, template_id) else {
        return Vec::new();
    };
    records
        .filter(|r| {
            r.request.get("to").and_then(scalar_to_string).as_ref() == Some(&email)
                && r.request
                    .get("template_id")
                    .and_then(scalar_to_string)
                    .as_ref()
                    == Some(&template_id)
        })
        .map(Record::search_view)
        .collect()
}
