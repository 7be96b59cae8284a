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

use serde_json::{json, Value};

use crate::books::{Books, Cursor, Filter, NewRecord, Page, UnknownCursor};
use crate::ledger::{scalar_to_string, Told};
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
    /// The number of the id the next record gets.
    fn next_number(&mut self) -> u32 {
        self.books.next_number()
    }

    fn id_of(&self, n: u32) -> String {
        self.books.id_of(n)
    }

    /// Writes the effect to the ledger; its record number.
    fn record(&mut self, n: u32, request: &Value, status: u16, response: &Value) -> u64 {
        self.books.push(NewRecord {
            n,
            created_at_ms: self.now_ms,
            searchable_at_ms: self.now_ms.saturating_add(self.search_lag_ms),
            request,
            idempotency_key: self.idempotency_key,
            status,
            response,
            told: self.told.clone().unwrap_or(Told::Response {
                status,
                fault: None,
            }),
        })
    }

    /// The answer of the earlier record with this `metadata.idempotency_key`.
    fn by_metadata_key(&self, key: &str) -> Option<Value> {
        self.books.by_metadata_key(key)
    }

    fn remember_metadata_key(&mut self, key: &str, number: u64) {
        self.books.remember_metadata_key(key, number);
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

/// The largest page a list gives (Stripe's bound too).
pub const MAX_LIMIT: usize = 100;
/// A page's size when only a cursor is given (Stripe's default too).
pub const DEFAULT_LIMIT: usize = 10;

/// A list query that cannot be answered: the status and the error body.
pub(crate) type ListError = (u16, Value);

/// How a list is asked for: `limit`, and one of `starting_after` and
/// `ending_before`; `None` without any of them (the book server's bare
/// array).
pub(crate) fn paging(query: &Value) -> Result<Option<(Cursor, usize)>, ListError> {
    let param = |name: &str| query.get(name).and_then(scalar_to_string);
    let (limit, after, before) = (
        param("limit"),
        param("starting_after"),
        param("ending_before"),
    );
    if limit.is_none() && after.is_none() && before.is_none() {
        return Ok(None);
    }
    let bad = |message: String| (400, json!({"error": message}));
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(text) => match text.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(bad(format!(
                    "limit must be a whole number from 1 to {MAX_LIMIT}, got {text:?}"
                )))
            }
        },
    };
    let cursor = match (after, before) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "give starting_after or ending_before, not both".to_string()
            ))
        }
        (Some(id), None) => Cursor::StartingAfter(id),
        (None, Some(id)) => Cursor::EndingBefore(id),
        (None, None) => Cursor::Newest,
    };
    Ok(Some((cursor, limit)))
}

/// The error for a cursor that names no kept record.
pub(crate) fn unknown_cursor(service: Service, UnknownCursor(id): UnknownCursor) -> ListError {
    (
        400,
        json!({"error": format!(
            "no {} with id {id:?} in this ledger (ids look like {}1a2b3c4d; it may have been reset, or dropped by --keep)",
            service.record_name(),
            service.id_prefix()
        )}),
    )
}

/// A page as Stripe's list API answers it.
pub(crate) fn list_body(page: Page, view: impl Fn(&crate::ledger::Record) -> Value) -> Value {
    json!({
        "object": "list",
        "data": page.records.iter().map(view).collect::<Vec<_>>(),
        "has_more": page.has_more,
    })
}

/// Answers a search: the records the query matches that the search index
/// already shows at `now_ms`; a bare array, oldest first, as the book
/// server answers, or with `limit` / `starting_after` / `ending_before` a
/// page, newest first.
pub(crate) fn search(
    service: Service,
    books: &Books,
    query: &Value,
    now_ms: u64,
) -> Result<Value, ListError> {
    let param = |name: &str| query.get(name).and_then(scalar_to_string);
    let filter = match service {
        Service::Email => match email::filter(param("email"), param("template_id")) {
            Some(filter) => filter,
            // The book server finds nothing without both.
            None => {
                return Ok(match paging(query)? {
                    None => Value::Array(Vec::new()),
                    Some(_) => json!({"object": "list", "data": [], "has_more": false}),
                })
            }
        },
        Service::Payments | Service::Fulfillment => match param("order_id") {
            Some(order) => Filter::Order(order),
            None => Filter::All,
        },
        Service::ErrorCatcher => match param("exception_class") {
            Some(class) => Filter::ExceptionClass(class),
            None => Filter::All,
        },
    };
    let view = crate::ledger::Record::search_view;
    match paging(query)? {
        None => Ok(Value::Array(
            books.search_all(&filter, now_ms).iter().map(view).collect(),
        )),
        Some((cursor, limit)) => {
            let page = books
                .page(&filter, &cursor, limit, Some(now_ms))
                .map_err(|e| unknown_cursor(service, e))?;
            Ok(list_body(page, view))
        }
    }
}

/// The body of `GET /{service}/status`.
pub(crate) fn status(service: Service, records: usize) -> Value {
    match service {
        // The book server's field, which clients read.
        Service::Fulfillment => json!({"num_requests": records}),
        _ => json!({"status": "ok", "records": records}),
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
