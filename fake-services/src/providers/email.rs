//! Email: sends, and the search clients use to see whether an email already
//! went out.

use serde_json::{json, Map, Value};

use super::{blank, Desk, EffectOutcome};
use crate::books::Filter;

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
    let n = desk.next_number();
    let response = json!({"status": "queued", "email_id": desk.id_of(n)});
    desk.record(n, body, 202, &response);
    EffectOutcome::Executed {
        status: 202,
        body: response,
    }
}

/// The search of emails whose `to` and `template_id` both equal the
/// query's, as the book server matches them: a parameter left out matches
/// nothing (`None`).
pub(super) fn filter(email: Option<String>, template_id: Option<String>) -> Option<Filter> {
    Some(Filter::Recipient {
        to: email?,
        template_id: template_id?,
    })
}
