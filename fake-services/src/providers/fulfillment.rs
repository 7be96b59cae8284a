//! Fulfillment: shipping requests, replayed by `metadata.idempotency_key`.

use serde_json::{json, Map, Value};

use super::{blank, metadata_key, Desk, EffectOutcome};

pub(super) fn request(
    desk: &mut Desk<'_>,
    body: &Value,
    fields: &Map<String, Value>,
) -> EffectOutcome {
    let key = metadata_key(body);
    if let Some(earlier) = key.as_deref().and_then(|k| desk.by_metadata_key(k)) {
        return EffectOutcome::Executed {
            status: 202,
            body: earlier,
        };
    }
    if blank(fields.get("address")) {
        return EffectOutcome::Rejected {
            status: 422,
            body: json!({"status": "rejected", "error": "Missing address"}),
        };
    }
    let n = desk.next_number();
    let response = json!({"status": "accepted", "request_id": desk.id_of(n)});
    let number = desk.record(n, body, 202, &response);
    if let Some(key) = key {
        desk.remember_metadata_key(&key, number);
    }
    EffectOutcome::Executed {
        status: 202,
        body: response,
    }
}
