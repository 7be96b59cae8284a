//! The idempotency keys the pipeline sends. Each names what it must not do
//! twice (an order's step, a reminder), so every retry of that step sends
//! the same key and the provider replays its first answer.

/// The key every provider call for an order carries when the knob says so.
/// It names the order, so a retry of the same step sends the same key.
pub fn idempotency_key(order_id: i64) -> String {
    format!("idempotency_key-order-{order_id}")
}

/// The key a reminder's email carries on the safe sweep.
pub fn reminder_key(reminder_id: i64) -> String {
    format!("idempotency_key-reminder-{reminder_id}")
}
