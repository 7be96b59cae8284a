//! The providers' own business rules, one module each, behind one dispatch.
//!
//! A provider sees a call only when no fault stopped it in front. It
//! validates, performs the effect by writing a ledger record through its
//! [`Desk`], and answers; it knows nothing of faults, HTTP or idempotency keys
//! in headers (the book server's `metadata.idempotency_key` rules are its own,
//! so they live here).

mod email;
mod error_catcher;
mod fulfillment;
mod payments;

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::ids::IdSequence;
use crate::ledger::{scalar_to_string, Record, Told};
use crate::service::Service;

/// What a provider did with an effect call: refused it or executed it (which
/// decides whether its `Idempotency-Key` keeps the answer).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum EffectOutcome {
    /// Refused before doing anything (validation): nothing to replay later.
    Rejected { status: u16, body: Value },
    /// Executed: either a new effect or the book server's replay of an
    /// earlier one by `metadata.idempotency_key`.
    Executed { status: u16, body: Value },
}

/// A provider's records and the means to add one.
#[derive(Debug, Clone)]
pub(crate) struct Books {
    pub records: Vec<Record>,
    ids: IdSequence,
    /// `metadata.idempotency_key` → index of the record whose response it replays.
    metadata_keys: HashMap<String, usize>,
    /// Email: `(to, template_id)` → indexes of its records, oldest first. A
    /// search by recipient then costs what that recipient received, not
    /// every email sent, as with a real provider's search index; the
    /// default pipeline searches once per order.
    by_recipient: HashMap<(String, String), Vec<usize>>,
}

impl Books {
    pub fn new(service: Service, seed: u64) -> Self {
        Self {
            records: Vec::new(),
            ids: IdSequence::new(service.id_prefix(), seed),
            metadata_keys: HashMap::new(),
            by_recipient: HashMap::new(),
        }
    }

    pub fn clear(&mut self) {
        self.records.clear();
        self.metadata_keys.clear();
        self.by_recipient.clear();
    }

    /// Adds a record, keeping the indexes.
    fn push(&mut self, record: Record) -> usize {
        let index = self.records.len();
        if record.service == Service::Email {
            if let Some(key) = email::recipient(&record.request) {
                self.by_recipient.entry(key).or_default().push(index);
            }
        }
        self.records.push(record);
        index
    }
}

/// What an effect call brings to the provider besides its body.
pub(crate) struct Desk<'a> {
    pub service: Service,
    pub books: &'a mut Books,
    pub now_ms: u64,
    pub search_lag_ms: u64,
    pub idempotency_key: Option<&'a str>,
    /// What the client will be told when a fault replaces the provider's
    /// answer (known before the effect: faults are decided in front of the
    /// provider); `None` when the client hears the provider itself.
    pub told: Option<Told>,
}

impl Desk<'_> {
    fn next_id(&mut self) -> String {
        self.books.ids.next_id()
    }

    /// Writes the effect to the ledger.
    fn record(&mut self, id: String, request: &Value, status: u16, response: &Value) -> usize {
        self.books.push(Record {
            id,
            service: self.service,
            created_at_ms: self.now_ms,
            searchable_at_ms: self.now_ms + self.search_lag_ms,
            request: request.clone(),
            idempotency_key: self.idempotency_key.map(str::to_string),
            status,
            response: response.clone(),
            told: self.told.clone().unwrap_or(Told::Response {
                status,
                fault: None,
            }),
        })
    }

    /// The earlier record with this `metadata.idempotency_key`, if any.
    fn by_metadata_key(&self, key: &str) -> Option<&Record> {
        let index = *self.books.metadata_keys.get(key)?;
        self.books.records.get(index)
    }

    fn remember_metadata_key(&mut self, key: String, index: usize) {
        self.books.metadata_keys.insert(key, index);
    }
}

/// Runs the effect operation of `desk.service`.
pub(crate) fn perform(desk: &mut Desk<'_>, body: &Value) -> EffectOutcome {
    let Some(fields) = body.as_object() else {
        return EffectOutcome::Rejected {
            status: 422,
            body: json!({"error": "the request body must be a JSON object"}),
        };
    };
    match desk.service {
        Service::Payments => payments::charge(desk, body, fields),
        Service::Email => email::send(desk, body, fields),
        Service::Fulfillment => fulfillment::request(desk, body, fields),
        Service::ErrorCatcher => error_catcher::notify(desk, body, fields),
    }
}

/// Answers a search: the records the query matches that the search index
/// already shows at `now_ms`.
pub(crate) fn search(service: Service, books: &Books, query: &Value, now_ms: u64) -> Value {
    let param = |name: &str| query.get(name).and_then(scalar_to_string);
    let records = &books.records;
    let visible = records.iter().filter(|r| r.searchable_at_ms <= now_ms);
    let found: Vec<Value> = match service {
        Service::Email => email::search(books, param("email"), param("template_id"), now_ms),
        Service::Payments | Service::Fulfillment => {
            let order = param("order_id");
            visible
                .filter(|r| order.is_none() || r.order_id() == order)
                .map(Record::search_view)
                .collect()
        }
        Service::ErrorCatcher => {
            let class = param("exception_class");
            visible
                .filter(|r| {
                    class.is_none()
                        || r.request.get("exception_class").and_then(scalar_to_string) == class
                })
                .map(Record::search_view)
                .collect()
        }
    };
    Value::Array(found)
}

/// The body of `GET /{service}/status`.
pub(crate) fn status(service: Service, records: &[Record]) -> Value {
    match service {
        // The book server's field, which clients read.
        Service::Fulfillment => json!({"num_requests": records.len()}),
        _ => json!({"status": "ok", "records": records.len()}),
    }
}

/// Blank as the book server means it: missing, null, or only white space.
fn blank(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        Some(_) => false,
    }
}

/// `metadata.idempotency_key`, as text.
fn metadata_key(body: &Value) -> Option<String> {
    body.pointer("/metadata/idempotency_key")
        .and_then(scalar_to_string)
}
