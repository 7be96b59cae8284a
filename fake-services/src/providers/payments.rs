//! Payments: charges, declines, and the book server's
//! `metadata.idempotency_key` replay of successful charges.

use serde_json::{json, Map, Value};

use super::{metadata_key, Desk, EffectOutcome};

/// The amount the book server declines, so a lab can show a decline on demand.
pub const DECLINED_AMOUNT_CENTS: u64 = 9999;

pub(super) fn charge(
    desk: &mut Desk<'_>,
    body: &Value,
    fields: &Map<String, Value>,
) -> EffectOutcome {
    let amount = match fields.get("amount_cents") {
        None | Some(Value::Null) => None,
        Some(value) => match value.as_u64() {
            Some(cents) => Some(cents),
            None => {
                return EffectOutcome::Rejected {
                    status: 422,
                    body: json!({
                        "status": "error",
                        "error": format!("amount_cents must be a whole number of cents, got {value}"),
                    }),
                }
            }
        },
    };
    let key = metadata_key(body);
    // Only a successful charge is replayed: a decline may be retried and
    // charge for real, as with the book server.
    if let Some(earlier) = key.as_deref().and_then(|k| desk.by_metadata_key(k)) {
        return EffectOutcome::Executed {
            status: 201,
            body: earlier,
        };
    }
    if amount == Some(DECLINED_AMOUNT_CENTS) {
        let response = json!({"status": "declined", "explanation": "Insufficient funds"});
        let n = desk.next_number();
        desk.record(n, body, 200, &response);
        return EffectOutcome::Executed {
            status: 200,
            body: response,
        };
    }
    let n = desk.next_number();
    let response = json!({"status": "success", "charge_id": desk.id_of(n)});
    let number = desk.record(n, body, 201, &response);
    if let Some(key) = key {
        desk.remember_metadata_key(&key, number);
    }
    EffectOutcome::Executed {
        status: 201,
        body: response,
    }
}
