//! The error catcher: a Bugsnag-like inbox of exception notifications.

use serde_json::{json, Map, Value};

use super::{blank, Desk, EffectOutcome};

pub(super) fn notify(
    desk: &mut Desk<'_>,
    body: &Value,
    fields: &Map<String, Value>,
) -> EffectOutcome {
    if blank(fields.get("exception_class")) || blank(fields.get("exception_message")) {
        return EffectOutcome::Rejected {
            status: 422,
            body: json!({"error": "exception class or message is missing"}),
        };
    }
    let n = desk.next_number();
    let response = json!({"notification_id": desk.id_of(n)});
    desk.record(n, body, 202, &response);
    EffectOutcome::Executed {
        status: 202,
        body: response,
    }
}
