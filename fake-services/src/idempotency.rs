//! The `Idempotency-Key` request header, as the IETF httpapi draft describes
//! it and as Stripe-like providers implement it.
//!
//! The first request with a key reserves it; when the provider has executed
//! it, its response is stored. A later request with the same key and the same
//! body gets that response again (`Idempotent-Replayed: true`) and causes no
//! new effect; with a different body it is refused (422); while the first is
//! still in flight it is refused too (409). A request the provider rejected
//! before executing (a validation error) stores nothing, so a corrected retry
//! may reuse the key.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use bytes::Bytes;
use serde_json::Value;

/// A provider's answer, kept to be replayed byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: Bytes,
}

/// What a new request with a key may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// First use: the key is now reserved for this request.
    Proceed,
    /// Already executed with the same body: answer this again.
    Replay(StoredResponse),
    /// Reserved by a request that has not finished.
    InFlight,
    /// Used before with a different body.
    Mismatch,
}

#[derive(Debug, Clone)]
enum State {
    InFlight,
    Done(StoredResponse),
}

#[derive(Debug, Clone)]
struct Entry {
    /// The first request's body, as [`fingerprint`] of it: eight bytes
    /// instead of a copy of the body, for stores of millions of keys.
    fingerprint: u64,
    state: State,
}

/// One service's keys. Keys are scoped by operation, as a provider scopes
/// them by endpoint.
#[derive(Debug, Default, Clone)]
pub struct IdempotencyStore {
    entries: HashMap<(&'static str, String), Entry>,
}

impl IdempotencyStore {
    /// Looks the key up and, if it is new, reserves it. The caller holds the
    /// service's lock, so two concurrent requests cannot both proceed.
    pub fn begin(&mut self, operation: &'static str, key: &str, body: &Value) -> Begin {
        let print = fingerprint(body);
        match self.entries.get(&(operation, key.to_string())) {
            None => {
                self.entries.insert(
                    (operation, key.to_string()),
                    Entry {
                        fingerprint: print,
                        state: State::InFlight,
                    },
                );
                Begin::Proceed
            }
            Some(entry) if entry.fingerprint != print => Begin::Mismatch,
            Some(Entry {
                state: State::InFlight,
                ..
            }) => Begin::InFlight,
            Some(Entry {
                state: State::Done(stored),
                ..
            }) => Begin::Replay(stored.clone()),
        }
    }

    /// Ends a reservation: stores the response when the provider executed the
    /// request, frees the key when it did not.
    pub fn finish(&mut self, operation: &'static str, key: &str, stored: Option<StoredResponse>) {
        let id = (operation, key.to_string());
        match stored {
            Some(stored) => {
                if let Some(entry) = self.entries.get_mut(&id) {
                    entry.state = State::Done(stored);
                }
            }
            None => {
                self.entries.remove(&id);
            }
        }
    }

    /// Forgets every key, giving the memory back.
    pub fn clear(&mut self) {
        self.entries = HashMap::new();
    }
}

/// A hash of `body` that two bodies share exactly when they are equal as
/// JSON values: object keys in any order, numbers by kind and value.
fn fingerprint(body: &Value) -> u64 {
    fn feed(value: &Value, hasher: &mut DefaultHasher) {
        match value {
            Value::Null => 0u8.hash(hasher),
            Value::Bool(b) => (1u8, b).hash(hasher),
            Value::Number(n) => {
                // `1` and `1.0` differ, as `Value`'s equality has it.
                let kind: u8 = if n.is_u64() {
                    2
                } else if n.is_i64() {
                    3
                } else {
                    4
                };
                (kind, n.to_string()).hash(hasher)
            }
            Value::String(s) => (5u8, s).hash(hasher),
            Value::Array(items) => {
                (6u8, items.len()).hash(hasher);
                for item in items {
                    feed(item, hasher);
                }
            }
            Value::Object(fields) => {
                (7u8, fields.len()).hash(hasher);
                let mut sorted: Vec<_> = fields.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(b.0));
                for (key, item) in sorted {
                    key.hash(hasher);
                    feed(item, hasher);
                }
            }
        }
    }
    let mut hasher = DefaultHasher::new();
    feed(body, &mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_key_lifecycle() {
        let mut store = IdempotencyStore::default();
        let body = json!({"amount_cents": 100});
        assert_eq!(store.begin("charge", "k", &body), Begin::Proceed);
        assert_eq!(store.begin("charge", "k", &body), Begin::InFlight);
        assert_eq!(
            store.begin("charge", "k", &json!({"amount_cents": 200})),
            Begin::Mismatch
        );
        // Another operation has its own keys.
        assert_eq!(store.begin("search", "k", &body), Begin::Proceed);
        let stored = StoredResponse {
            status: 201,
            body: Bytes::from_static(b"{}"),
        };
        store.finish("charge", "k", Some(stored.clone()));
        assert_eq!(store.begin("charge", "k", &body), Begin::Replay(stored));
    }

    #[test]
    fn the_same_body_in_another_key_order_is_the_same_request() {
        let mut store = IdempotencyStore::default();
        let body = json!({"amount_cents": 100, "metadata": {"a": 1, "b": [1, 2]}});
        let reordered = json!({"metadata": {"b": [1, 2], "a": 1}, "amount_cents": 100});
        assert_eq!(body, reordered);
        assert_eq!(store.begin("charge", "k", &body), Begin::Proceed);
        assert_eq!(store.begin("charge", "k", &reordered), Begin::InFlight);
        for different in [
            json!({"amount_cents": 100.0, "metadata": {"a": 1, "b": [1, 2]}}),
            json!({"amount_cents": 100, "metadata": {"a": 1, "b": [2, 1]}}),
            json!({"amount_cents": "100", "metadata": {"a": 1, "b": [1, 2]}}),
            json!({"amount_cents": 100, "metadata": {"a": 1, "b": [1, 2]}, "x": null}),
        ] {
            assert_ne!(body, different);
            assert_eq!(
                store.begin("charge", "k", &different),
                Begin::Mismatch,
                "{different}"
            );
        }
    }

    #[test]
    fn a_request_the_provider_rejected_frees_the_key() {
        let mut store = IdempotencyStore::default();
        let body = json!({});
        assert_eq!(store.begin("request", "k", &body), Begin::Proceed);
        store.finish("request", "k", None);
        assert_eq!(store.begin("request", "k", &body), Begin::Proceed);
    }
}
