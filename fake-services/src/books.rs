//! [`Books`]: one service's ledger as it is kept, compact and indexed, so
//! that an hour's load test fits in memory and a page of it renders at
//! once.
//!
//! A record is a fixed-size [`Slot`] (56 bytes) and its bodies and key,
//! packed ([`crate::compact_json`]) into one growing buffer shared by every
//! record: no allocation per record, so a reset gives the memory back to the
//! system. The public [`Record`] is built from a slot when someone looks.
//!
//! The indexes are kept as records are added, never rebuilt by a scan:
//! - per order (the `order_id` the book app writes): the newest record, the
//!   count of effects and of successful ones (the duplicate markers read the
//!   count, exact even for records `--keep` dropped), and a link from each
//!   record to the previous one of its order;
//! - per email recipient and template: the newest record and a link back,
//!   keyed by a hash and checked against the record on the way;
//! - per `metadata.idempotency_key`: the record whose answer it replays.
//!
//! Records are numbered from 0 in the order they were made (a number is
//! never reused, also when `--keep` drops the oldest), and each record's id
//! encodes its number ([`IdSequence`]), so a list's cursor is a lookup.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};

use serde_json::Value;

use crate::compact_json::{self, Dictionary};
use crate::ids::IdSequence;
use crate::ledger::{is_success, order_of, scalar_to_string, Record, Told};
use crate::service::Service;

/// No link: the record is the oldest of its order (or recipient).
const NO_LINK: u32 = 0;
/// A slot's `key_len` when the call had no `Idempotency-Key`.
const NO_KEY: u32 = u32::MAX;
/// Dropped records' bytes are given back once they are at least this many
/// and at least as many as the kept ones.
const COMPACT_AT_BYTES: usize = 1 << 20;

/// The order a record belongs to, as a map key: a number when `order_id` is
/// one (the book app's ids), else the text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OrderKey {
    Number(u64),
    Text(Box<str>),
}

impl OrderKey {
    /// `7` and `"7"` are the same order, as the checker reads them.
    pub fn of(text: &str) -> OrderKey {
        match text.parse::<u64>() {
            Ok(n) if n.to_string() == text => OrderKey::Number(n),
            _ => OrderKey::Text(text.into()),
        }
    }
}

impl std::fmt::Display for OrderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OrderKey::Number(n) => write!(f, "{n}"),
            OrderKey::Text(t) => f.write_str(t),
        }
    }
}

/// What the index keeps per order.
#[derive(Debug, Clone, Copy)]
struct OrderEntry {
    /// The newest record of the order.
    newest: u64,
    /// Records of the order, and those among them that succeeded.
    effects: u32,
    successes: u32,
}

/// One record, without its bodies.
#[derive(Debug, Clone)]
struct Slot {
    created_at_ms: u64,
    searchable_at_ms: u64,
    /// Where its request, response and key start in the buffer (counted
    /// from the buffer's first byte ever, so compacting moves nothing).
    at: u64,
    /// The number behind its id.
    n: u32,
    request_len: u32,
    response_len: u32,
    /// The `Idempotency-Key`'s length, or [`NO_KEY`].
    key_len: u32,
    /// How many records back the previous one of its order is ([`NO_LINK`]
    /// if none, or too far back to say).
    prev_order: u32,
    /// The same for its recipient and template (email).
    prev_recipient: u32,
    status: u16,
    /// The status the client was told; 0: the connection was dropped.
    told_status: u16,
    /// The fault that replaced the provider's answer: 0 none, else an index
    /// into [`Books::fault_names`] plus one.
    told_fault: u8,
}

/// A record to add.
pub struct NewRecord<'a> {
    pub n: u32,
    pub created_at_ms: u64,
    pub searchable_at_ms: u64,
    pub request: &'a Value,
    pub idempotency_key: Option<&'a str>,
    pub status: u16,
    pub response: &'a Value,
    pub told: Told,
}

/// Which records a list holds.
#[derive(Debug, Clone)]
pub enum Filter {
    All,
    Order(String),
    /// An email's `to` and `template_id`.
    Recipient {
        to: String,
        template_id: String,
    },
    /// An error-catcher notification's `exception_class` (not indexed: a
    /// ledger of errors is small).
    ExceptionClass(String),
}

/// Where a page starts, as in Stripe's list API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    Newest,
    /// The records older than this id.
    StartingAfter(String),
    /// The records newer than this id.
    EndingBefore(String),
}

/// A page: records newest first.
#[derive(Debug, Clone)]
pub struct Page {
    pub records: Vec<Record>,
    /// More records beyond this page in the direction it went (older for
    /// [`Cursor::Newest`] and [`Cursor::StartingAfter`], newer for
    /// [`Cursor::EndingBefore`]).
    pub has_more: bool,
}

/// A cursor that names no record of the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCursor(pub String);

/// One service's ledger.
#[derive(Debug, Clone)]
pub struct Books {
    service: Service,
    ids: IdSequence,
    slots: VecDeque<Slot>,
    /// The number of `slots[0]`: records before it were dropped by `keep`.
    first: u64,
    bytes: Vec<u8>,
    /// What `bytes[0]` is at (bytes before it were given back).
    bytes_base: u64,
    dictionary: Dictionary,
    fault_names: Vec<String>,
    /// Per order: numeric ids (the book app's) in a map of their own, 24
    /// bytes an entry instead of 40 for a key that could be text.
    orders_by_number: HashMap<u64, OrderEntry>,
    orders_by_text: HashMap<Box<str>, OrderEntry>,
    /// Orders with more than one successful effect, in the order they got
    /// their second.
    duplicated: Vec<OrderKey>,
    /// Hash of `(to, template_id)` → the newest email for it.
    recipients: HashMap<u64, u64>,
    /// Hash of `metadata.idempotency_key` → the record it replays; keys
    /// whose hash another key holds are in `metadata_key_collisions`.
    metadata_keys: HashMap<u64, u64>,
    metadata_key_collisions: HashMap<Box<str>, u64>,
    /// Keep only the newest this many records (`lab fakes --keep`).
    keep: Option<usize>,
}

impl Books {
    pub fn new(service: Service, seed: u64) -> Self {
        Self::starting(service, IdSequence::new(service.id_prefix(), seed), None)
    }

    fn starting(service: Service, ids: IdSequence, keep: Option<usize>) -> Self {
        Self {
            service,
            ids,
            slots: VecDeque::new(),
            first: 0,
            bytes: Vec::new(),
            bytes_base: 0,
            dictionary: Dictionary::default(),
            fault_names: Vec::new(),
            orders_by_number: HashMap::new(),
            orders_by_text: HashMap::new(),
            duplicated: Vec::new(),
            recipients: HashMap::new(),
            metadata_keys: HashMap::new(),
            metadata_key_collisions: HashMap::new(),
            keep,
        }
    }

    /// Forgets every record; ids go on from where they were, so an id is
    /// never handed out twice. Everything is dropped, not cleared, so that
    /// the memory goes back.
    pub fn clear(&mut self) {
        let ids = self.ids.clone();
        *self = Self::starting(self.service, ids, self.keep);
    }

    /// Keeps only the newest `keep` records from now on (`None`: all).
    pub fn set_keep(&mut self, keep: Option<usize>) {
        self.keep = keep.map(|k| k.max(1));
        self.drop_beyond_keep();
    }

    /// The next record's id number (a provider answers with the id before
    /// it records).
    pub fn next_number(&mut self) -> u32 {
        self.ids.next_number()
    }

    /// The id of number `n`.
    pub fn id_of(&self, n: u32) -> String {
        self.ids.id_of(n)
    }

    /// Records kept.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Records dropped by `keep` since the last reset.
    pub fn dropped(&self) -> u64 {
        self.first
    }

    /// Records made since the last reset, kept or dropped.
    pub fn made(&self) -> u64 {
        self.end()
    }

    /// The number the next record will have.
    fn end(&self) -> u64 {
        self.first + self.slots.len() as u64
    }

    /// Adds a record, keeping the indexes; its number.
    pub fn push(&mut self, new: NewRecord<'_>) -> u64 {
        let number = self.end();
        let at = self.bytes_base + self.bytes.len() as u64;
        compact_json::encode(new.request, &mut self.dictionary, &mut self.bytes);
        let request_len = (self.bytes_base + self.bytes.len() as u64 - at) as u32;
        compact_json::encode(new.response, &mut self.dictionary, &mut self.bytes);
        let response_len = (self.bytes_base + self.bytes.len() as u64 - at) as u32 - request_len;
        let key_len = match new.idempotency_key {
            Some(key) => {
                self.bytes.extend_from_slice(key.as_bytes());
                key.len() as u32
            }
            None => NO_KEY,
        };
        let success = is_success(self.service, new.response);
        let prev_order = match order_of(new.request) {
            Some(order) => {
                let fresh = OrderEntry {
                    newest: number,
                    effects: 0,
                    successes: 0,
                };
                let entry = match OrderKey::of(&order) {
                    OrderKey::Number(n) => self.orders_by_number.entry(n).or_insert(fresh),
                    OrderKey::Text(t) => self.orders_by_text.entry(t).or_insert(fresh),
                };
                let link = link_to(number, entry.newest, entry.effects > 0);
                entry.newest = number;
                entry.effects += 1;
                if success {
                    entry.successes += 1;
                    if entry.successes == 2 {
                        self.duplicated.push(OrderKey::of(&order));
                    }
                }
                link
            }
            None => NO_LINK,
        };
        let prev_recipient = match recipient_hash(self.service, new.request) {
            Some(hash) => {
                let previous = self.recipients.insert(hash, number);
                previous.map_or(NO_LINK, |p| link_to(number, p, true))
            }
            None => NO_LINK,
        };
        let (told_status, told_fault) = match &new.told {
            Told::Dropped => (0, 0),
            Told::Response { status, fault } => {
                (*status, fault.as_deref().map_or(0, |f| self.fault_code(f)))
            }
        };
        self.slots.push_back(Slot {
            created_at_ms: new.created_at_ms,
            searchable_at_ms: new.searchable_at_ms,
            at,
            n: new.n,
            request_len,
            response_len,
            key_len,
            prev_order,
            prev_recipient,
            status: new.status,
            told_status,
            told_fault,
        });
        self.drop_beyond_keep();
        number
    }

    fn fault_code(&mut self, fault: &str) -> u8 {
        let index = match self.fault_names.iter().position(|f| f == fault) {
            Some(i) => i,
            None => {
                self.fault_names.push(fault.to_string());
                self.fault_names.len() - 1
            }
        };
        u8::try_from(index + 1).unwrap_or(u8::MAX)
    }

    fn slot(&self, number: u64) -> Option<&Slot> {
        let index = usize::try_from(number.checked_sub(self.first)?).ok()?;
        self.slots.get(index)
    }

    fn slice(&self, at: u64, len: u32) -> &[u8] {
        let start = usize::try_from(at - self.bytes_base).unwrap_or(usize::MAX);
        let end = start.saturating_add(len as usize);
        self.bytes.get(start..end).unwrap_or(&[])
    }

    fn request_of(&self, slot: &Slot) -> Value {
        compact_json::decode(self.slice(slot.at, slot.request_len), &self.dictionary)
    }

    fn response_of(&self, slot: &Slot) -> Value {
        compact_json::decode(
            self.slice(slot.at + u64::from(slot.request_len), slot.response_len),
            &self.dictionary,
        )
    }

    /// The record numbered `number`, if it is kept.
    pub fn record(&self, number: u64) -> Option<Record> {
        let slot = self.slot(number)?;
        let key_at = slot.at + u64::from(slot.request_len) + u64::from(slot.response_len);
        let idempotency_key = (slot.key_len != NO_KEY)
            .then(|| String::from_utf8_lossy(self.slice(key_at, slot.key_len)).into_owned());
        let told = match (slot.told_status, slot.told_fault) {
            (0, _) => Told::Dropped,
            (status, 0) => Told::Response {
                status,
                fault: None,
            },
            (status, code) => Told::Response {
                status,
                fault: self.fault_names.get(usize::from(code) - 1).cloned(),
            },
        };
        Some(Record {
            id: self.ids.id_of(slot.n),
            service: self.service,
            created_at_ms: slot.created_at_ms,
            searchable_at_ms: slot.searchable_at_ms,
            request: self.request_of(slot),
            idempotency_key,
            status: slot.status,
            response: self.response_of(slot),
            told,
        })
    }

    /// Every kept record, oldest first.
    pub fn records(&self) -> Vec<Record> {
        (self.first..self.end())
            .filter_map(|n| self.record(n))
            .collect()
    }

    /// The newest record.
    pub fn newest(&self) -> Option<Record> {
        self.end().checked_sub(1).and_then(|n| self.record(n))
    }

    /// The response of the record `metadata.idempotency_key` = `key` names.
    pub fn by_metadata_key(&self, key: &str) -> Option<Value> {
        let number = match self.metadata_keys.get(&hash_of(key)) {
            Some(&n) if self.metadata_key_of(n).as_deref() == Some(key) => n,
            _ => *self.metadata_key_collisions.get(key)?,
        };
        Some(self.response_of(self.slot(number)?))
    }

    /// Remembers that `key` replays record `number`.
    pub fn remember_metadata_key(&mut self, key: &str, number: u64) {
        let hash = hash_of(key);
        match self.metadata_keys.get(&hash) {
            Some(&held) if held != number && self.metadata_key_of(held).as_deref() != Some(key) => {
                self.metadata_key_collisions.insert(key.into(), number);
            }
            _ => {
                self.metadata_keys.insert(hash, number);
            }
        }
    }

    fn metadata_key_of(&self, number: u64) -> Option<String> {
        let request = self.request_of(self.slot(number)?);
        request
            .pointer("/metadata/idempotency_key")
            .and_then(scalar_to_string)
    }

    /// Successful effects for `order` (kept or dropped).
    pub fn successes_for(&self, order: &str) -> u32 {
        self.order(&OrderKey::of(order)).map_or(0, |e| e.successes)
    }

    fn order(&self, key: &OrderKey) -> Option<&OrderEntry> {
        match key {
            OrderKey::Number(n) => self.orders_by_number.get(n),
            OrderKey::Text(t) => self.orders_by_text.get(t),
        }
    }

    /// How many orders have more than one successful effect, and the first
    /// `at_most` of them with their counts.
    pub fn duplicated_orders(&self, at_most: usize) -> (usize, Vec<(String, u32)>) {
        let shown = self
            .duplicated
            .iter()
            .take(at_most)
            .map(|key| {
                let count = self.order(key).map_or(0, |e| e.successes);
                (key.to_string(), count)
            })
            .collect();
        (self.duplicated.len(), shown)
    }

    /// The numbers of the records `filter` holds, newest first, each once.
    fn newest_first<'a>(&'a self, filter: &'a Filter) -> Box<dyn Iterator<Item = u64> + 'a> {
        match filter {
            Filter::All => Box::new((self.first..self.end()).rev()),
            Filter::ExceptionClass(class) => {
                Box::new((self.first..self.end()).rev().filter(move |&n| {
                    self.slot(n).is_some_and(|s| {
                        self.request_of(s)
                            .get("exception_class")
                            .and_then(scalar_to_string)
                            .as_deref()
                            == Some(class.as_str())
                    })
                }))
            }
            Filter::Order(order) => {
                let start = self.order(&OrderKey::of(order)).map(|e| e.newest);
                Box::new(self.chain(start, |s| s.prev_order))
            }
            Filter::Recipient { to, template_id } => {
                let start = self.recipients.get(&hash_pair(to, template_id)).copied();
                Box::new(self.chain(start, |s| s.prev_recipient).filter(move |&n| {
                    // The hash may be another recipient's too.
                    self.slot(n).is_some_and(|s| {
                        let request = self.request_of(s);
                        request.get("to").and_then(scalar_to_string).as_deref() == Some(to)
                            && request
                                .get("template_id")
                                .and_then(scalar_to_string)
                                .as_deref()
                                == Some(template_id)
                    })
                }))
            }
        }
    }

    /// A chain of records from `start` back along `link`, while they are kept.
    fn chain(&self, start: Option<u64>, link: fn(&Slot) -> u32) -> impl Iterator<Item = u64> + '_ {
        std::iter::successors(start.filter(|&n| self.slot(n).is_some()), move |&n| {
            let back = link(self.slot(n)?);
            if back == NO_LINK {
                return None;
            }
            let previous = n.checked_sub(u64::from(back))?;
            self.slot(previous).map(|_| previous)
        })
    }

    /// Every record `filter` holds that search shows at `now_ms`, oldest
    /// first: the book server's bare-array answer.
    pub fn search_all(&self, filter: &Filter, now_ms: u64) -> Vec<Record> {
        let mut found: Vec<Record> = self
            .newest_first(filter)
            .filter(|&n| self.slot(n).is_some_and(|s| s.searchable_at_ms <= now_ms))
            .filter_map(|n| self.record(n))
            .collect();
        found.reverse();
        found
    }

    /// The number of the record `id` names, if kept.
    fn number_of(&self, id: &str) -> Result<u64, UnknownCursor> {
        let unknown = || UnknownCursor(id.to_string());
        let n = self.ids.number_of(id).ok_or_else(unknown)?;
        let oldest = self.slots.front().ok_or_else(unknown)?;
        // Each record takes the next number, so the place is arithmetic;
        // the search is for a ledger where that ever stopped holding.
        let number = self.first + u64::from(n.wrapping_sub(oldest.n));
        match self.slot(number) {
            Some(slot) if slot.n == n => Ok(number),
            _ => self
                .slots
                .binary_search_by_key(&n, |s| s.n)
                .map(|i| self.first + i as u64)
                .map_err(|_| unknown()),
        }
    }

    /// A page of at most `limit` records `filter` holds, newest first, from
    /// `cursor`; with `visible_at`, only those search shows then.
    pub fn page(
        &self,
        filter: &Filter,
        cursor: &Cursor,
        limit: usize,
        visible_at: Option<u64>,
    ) -> Result<Page, UnknownCursor> {
        let limit = limit.max(1);
        let shown = |n: &u64| {
            visible_at.is_none_or(|now| self.slot(*n).is_some_and(|s| s.searchable_at_ms <= now))
        };
        let (numbers, has_more) = match cursor {
            Cursor::Newest | Cursor::StartingAfter(_) => {
                let before = match cursor {
                    Cursor::StartingAfter(id) => self.number_of(id)?,
                    _ => u64::MAX,
                };
                let mut numbers: Vec<u64> = match filter {
                    // Straight to the place, not a walk from the newest.
                    Filter::All => (self.first..before.min(self.end()))
                        .rev()
                        .filter(shown)
                        .take(limit + 1)
                        .collect(),
                    _ => self
                        .newest_first(filter)
                        .filter(|&n| n < before)
                        .filter(shown)
                        .take(limit + 1)
                        .collect(),
                };
                let has_more = numbers.len() > limit;
                numbers.truncate(limit);
                (numbers, has_more)
            }
            Cursor::EndingBefore(id) => {
                let after = self.number_of(id)?;
                // The `limit` records just newer than `after`, oldest first.
                let mut numbers: Vec<u64> = match filter {
                    Filter::All => (after + 1..self.end())
                        .filter(shown)
                        .take(limit + 1)
                        .collect(),
                    _ => {
                        let mut newer: Vec<u64> = self
                            .newest_first(filter)
                            .take_while(|&n| n > after)
                            .filter(shown)
                            .collect();
                        newer.reverse();
                        newer.truncate(limit + 1);
                        newer
                    }
                };
                let has_more = numbers.len() > limit;
                numbers.truncate(limit);
                numbers.reverse();
                (numbers, has_more)
            }
        };
        Ok(Page {
            records: numbers.into_iter().filter_map(|n| self.record(n)).collect(),
            has_more,
        })
    }

    /// Drops the oldest records beyond `keep`, and gives back their bytes
    /// once they are many.
    fn drop_beyond_keep(&mut self) {
        let Some(keep) = self.keep else { return };
        while self.slots.len() > keep {
            let number = self.first;
            let Some(slot) = self.slots.front().cloned() else {
                break;
            };
            self.forget_links_to(number, &slot);
            self.slots.pop_front();
            self.first += 1;
        }
        let live_from = self
            .slots
            .front()
            .map_or(self.bytes_base + self.bytes.len() as u64, |s| s.at);
        let dead = usize::try_from(live_from - self.bytes_base).unwrap_or(0);
        if dead >= COMPACT_AT_BYTES && dead >= self.bytes.len() - dead {
            self.bytes.drain(..dead);
            self.bytes.shrink_to(self.bytes.len() * 2);
            self.bytes_base = live_from;
        }
    }

    /// Removes the lookups that would lead to record `number`, about to be
    /// dropped, so that they do not outgrow the kept records. Its order's
    /// counts stay.
    fn forget_links_to(&mut self, number: u64, slot: &Slot) {
        let request = self.request_of(slot);
        if let Some(hash) = recipient_hash(self.service, &request) {
            if self.recipients.get(&hash) == Some(&number) {
                self.recipients.remove(&hash);
            }
        }
        if let Some(key) = request
            .pointer("/metadata/idempotency_key")
            .and_then(scalar_to_string)
        {
            if self.metadata_keys.get(&hash_of(&key)) == Some(&number) {
                self.metadata_keys.remove(&hash_of(&key));
            }
            if self.metadata_key_collisions.get(key.as_str()) == Some(&number) {
                self.metadata_key_collisions.remove(key.as_str());
            }
        }
    }
}

/// The link from record `number` back to `previous`: their distance, or
/// none if there is no previous record or it is too far back for 32 bits.
fn link_to(number: u64, previous: u64, exists: bool) -> u32 {
    if !exists {
        return NO_LINK;
    }
    u32::try_from(number - previous).unwrap_or(NO_LINK)
}

fn hash_of(text: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

fn hash_pair(a: &str, b: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    a.hash(&mut hasher);
    b.hash(&mut hasher);
    hasher.finish()
}

/// An email's `(to, template_id)` hash, the key of its search.
fn recipient_hash(service: Service, request: &Value) -> Option<u64> {
    if service != Service::Email {
        return None;
    }
    let to = request.get("to").and_then(scalar_to_string)?;
    let template_id = request.get("template_id").and_then(scalar_to_string)?;
    Some(hash_pair(&to, &template_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// One record to add: its order (if any), recipient, whether it is a
    /// decline, and its search lag.
    #[derive(Debug, Clone)]
    struct Made {
        order: Option<u8>,
        recipient: u8,
        declined: bool,
        lag_ms: u64,
        numeric: bool,
    }

    fn made() -> impl Strategy<Value = Made> {
        (
            prop::option::of(0u8..6),
            0u8..4,
            prop::bool::weighted(0.2),
            prop::sample::select(vec![0u64, 0, 5, 50]),
            any::<bool>(),
        )
            .prop_map(|(order, recipient, declined, lag_ms, numeric)| Made {
                order,
                recipient,
                declined,
                lag_ms,
                numeric,
            })
    }

    /// Adds `made` to `books` at `now_ms` as `service` would record it.
    fn add(books: &mut Books, service: Service, made: &Made, now_ms: u64) {
        let order = made.order.map(|o| {
            if made.numeric {
                json!(o)
            } else {
                json!(o.to_string())
            }
        });
        let mut request = match service {
            Service::Email => json!({"to": format!("r{}@example.com", made.recipient),
                "template_id": if made.recipient.is_multiple_of(2) { "confirm" } else { "remind" },
                "template_data": {}}),
            _ => json!({"customer_id": "cus_1", "amount_cents": 100, "metadata": {}}),
        };
        if let Some(order) = order {
            let at = if service == Service::Email {
                "template_data"
            } else {
                "metadata"
            };
            request[at]["order_id"] = order;
        }
        let n = books.next_number();
        let response = if made.declined && service == Service::Payments {
            json!({"status": "declined"})
        } else {
            json!({"status": "success", "charge_id": books.id_of(n)})
        };
        books.push(NewRecord {
            n,
            created_at_ms: now_ms,
            searchable_at_ms: now_ms + made.lag_ms,
            request: &request,
            idempotency_key: made.declined.then_some("k"),
            status: 201,
            response: &response,
            told: Told::Response {
                status: 201,
                fault: None,
            },
        });
    }

    /// What a scan of `records` finds for `filter` at `now_ms`, oldest first.
    fn scan(records: &[Record], filter: &Filter, now_ms: Option<u64>) -> Vec<String> {
        records
            .iter()
            .filter(|r| now_ms.is_none_or(|now| r.searchable_at_ms <= now))
            .filter(|r| match filter {
                Filter::All => true,
                Filter::Order(order) => r.order_id().as_deref() == Some(order.as_str()),
                Filter::Recipient { to, template_id } => {
                    r.request.get("to").and_then(scalar_to_string).as_deref() == Some(to)
                        && r.request
                            .get("template_id")
                            .and_then(scalar_to_string)
                            .as_deref()
                            == Some(template_id)
                }
                Filter::ExceptionClass(_) => unreachable!(),
            })
            .map(|r| r.id.clone())
            .collect()
    }

    /// Every page of `filter` from the newest, following `starting_after`.
    fn walk_older(books: &Books, filter: &Filter, limit: usize, now: Option<u64>) -> Vec<String> {
        let mut ids = Vec::new();
        let mut cursor = Cursor::Newest;
        loop {
            let page = books.page(filter, &cursor, limit, now).unwrap();
            assert!(page.records.len() <= limit);
            ids.extend(page.records.iter().map(|r| r.id.clone()));
            match (page.has_more, page.records.last()) {
                (true, Some(last)) => cursor = Cursor::StartingAfter(last.id.clone()),
                (true, None) => panic!("has_more with an empty page"),
                (false, _) => return ids,
            }
        }
    }

    /// The same, from the oldest, following `ending_before`.
    fn walk_newer(books: &Books, filter: &Filter, limit: usize, oldest: &str) -> Vec<String> {
        let mut ids = vec![oldest.to_string()];
        let mut cursor = Cursor::EndingBefore(oldest.to_string());
        loop {
            let page = books.page(filter, &cursor, limit, None).unwrap();
            // Newest first within the page: walking newer, prepend reversed.
            ids.extend(page.records.iter().rev().map(|r| r.id.clone()));
            match (page.has_more, page.records.first()) {
                (true, Some(newest)) => cursor = Cursor::EndingBefore(newest.id.clone()),
                _ => return ids,
            }
        }
    }

    fn filters(service: Service) -> Vec<Filter> {
        let mut filters = vec![Filter::All];
        filters.extend((0..7u8).map(|o| Filter::Order(o.to_string())));
        if service == Service::Email {
            for r in 0..5u8 {
                for template in ["confirm", "remind"] {
                    filters.push(Filter::Recipient {
                        to: format!("r{r}@example.com"),
                        template_id: template.into(),
                    });
                }
            }
        }
        filters
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Searches and pages through the indexes find what a scan of every
        /// record finds, and the duplicate counts are a recount's, with and
        /// without `keep`.
        #[test]
        fn indexes_answer_as_a_scan_does(
            mades in prop::collection::vec(made(), 0..120),
            email in any::<bool>(),
            keep in prop::option::of(1usize..40),
            limit in 1usize..7,
        ) {
            let service = if email { Service::Email } else { Service::Payments };
            let mut books = Books::new(service, 7);
            books.set_keep(keep);
            let mut everything = Books::new(service, 7);
            for (t, made) in mades.iter().enumerate() {
                add(&mut books, service, made, t as u64);
                add(&mut everything, service, made, t as u64);
            }
            let all = everything.records();
            let kept: Vec<Record> = books.records();
            let expect_kept = all.len().min(keep.unwrap_or(usize::MAX));
            prop_assert_eq!(kept.len(), expect_kept);
            prop_assert_eq!(&kept[..], &all[all.len() - expect_kept..]);
            prop_assert_eq!(books.dropped(), (all.len() - expect_kept) as u64);
            let now = mades.len() as u64 + 10;
            for filter in filters(service) {
                for at in [now, mades.len() as u64 / 2] {
                    let found: Vec<String> =
                        books.search_all(&filter, at).iter().map(|r| r.id.clone()).collect();
                    prop_assert_eq!(&found, &scan(&kept, &filter, Some(at)), "{:?} at {}", filter, at);
                }
                let mut newest_first = scan(&kept, &filter, None);
                newest_first.reverse();
                let walked = walk_older(&books, &filter, limit, None);
                prop_assert_eq!(&walked, &newest_first, "{:?}", filter);
                let visible: Vec<String> = {
                    let mut v = scan(&kept, &filter, Some(now / 2));
                    v.reverse();
                    v
                };
                prop_assert_eq!(walk_older(&books, &filter, limit, Some(now / 2)), visible);
                if let Some(oldest) = newest_first.last() {
                    let mut oldest_first = newest_first.clone();
                    oldest_first.reverse();
                    prop_assert_eq!(walk_newer(&books, &filter, limit, oldest), oldest_first);
                }
            }
            // Exact counts over every record ever made, kept or dropped.
            for order in 0..7u8 {
                let order = order.to_string();
                let recount = all
                    .iter()
                    .filter(|r| r.is_success() && r.order_id().as_deref() == Some(order.as_str()))
                    .count() as u32;
                prop_assert_eq!(books.successes_for(&order), recount);
            }
            let (duplicated, named) = books.duplicated_orders(usize::MAX);
            let mut expected: Vec<(String, u32)> = (0..7u8)
                .map(|o| (o.to_string(), books.successes_for(&o.to_string())))
                .filter(|(_, n)| *n > 1)
                .collect();
            let mut named_sorted = named.clone();
            named_sorted.sort();
            expected.sort();
            prop_assert_eq!(duplicated, expected.len());
            prop_assert_eq!(named_sorted, expected);
        }
    }

    #[test]
    fn a_record_comes_back_as_it_was_made() {
        let mut books = Books::new(Service::Payments, 3);
        let request = json!({"customer_id": "cus_1", "amount_cents": 12300,
            "metadata": {"order_id": 5, "idempotency_key": "charge-5"}});
        let n = books.next_number();
        let response = json!({"status": "success", "charge_id": books.id_of(n)});
        let number = books.push(NewRecord {
            n,
            created_at_ms: 1_000,
            searchable_at_ms: 1_500,
            request: &request,
            idempotency_key: Some("header-key"),
            status: 201,
            response: &response,
            told: Told::Response {
                status: 503,
                fault: Some("send-then-crash".into()),
            },
        });
        books.remember_metadata_key("charge-5", number);
        let record = books.record(number).unwrap();
        assert_eq!(record.id, books.id_of(n));
        assert_eq!(record.request, request);
        assert_eq!(record.response, response);
        assert_eq!(record.idempotency_key.as_deref(), Some("header-key"));
        assert_eq!(
            (record.created_at_ms, record.searchable_at_ms, record.status),
            (1_000, 1_500, 201)
        );
        assert_eq!(
            record.told,
            Told::Response {
                status: 503,
                fault: Some("send-then-crash".into())
            }
        );
        assert_eq!(books.by_metadata_key("charge-5"), Some(response));
        assert_eq!(books.by_metadata_key("charge-6"), None);
    }

    #[test]
    fn a_cursor_that_names_no_kept_record_is_refused() {
        let mut books = Books::new(Service::Payments, 3);
        for made in 0..5 {
            add(
                &mut books,
                Service::Payments,
                &Made {
                    order: Some(made),
                    recipient: 0,
                    declined: false,
                    lag_ms: 0,
                    numeric: true,
                },
                0,
            );
        }
        let first = books.records()[0].id.clone();
        books.set_keep(Some(2));
        for id in [first.as_str(), "ch_zzzzzzzz", "em_00000000", ""] {
            assert_eq!(
                books
                    .page(&Filter::All, &Cursor::StartingAfter(id.into()), 2, None)
                    .unwrap_err(),
                UnknownCursor(id.into())
            );
        }
        let kept = books.records()[0].id.clone();
        let older = books
            .page(&Filter::All, &Cursor::StartingAfter(kept), 2, None)
            .unwrap();
        assert!(older.records.is_empty() && !older.has_more);
    }

    #[test]
    fn dropped_records_give_their_bytes_back() {
        let mut books = Books::new(Service::Payments, 3);
        books.set_keep(Some(100));
        let big = "x".repeat(1_000);
        for order in 0..20_000u32 {
            let request = json!({"metadata": {"order_id": order, "idempotency_key": format!("k{order}")}, "note": big});
            let n = books.next_number();
            let response = json!({"status": "success"});
            let number = books.push(NewRecord {
                n,
                created_at_ms: 0,
                searchable_at_ms: 0,
                request: &request,
                idempotency_key: None,
                status: 201,
                response: &response,
                told: Told::Dropped,
            });
            books.remember_metadata_key(&format!("k{order}"), number);
        }
        assert_eq!(books.len(), 100);
        // 100 records of about 1 KB, and a buffer that gave back the rest.
        assert!(
            books.bytes.len() < 4 * COMPACT_AT_BYTES,
            "{} bytes",
            books.bytes.len()
        );
        assert!(
            books.metadata_keys.len() <= 100,
            "{}",
            books.metadata_keys.len()
        );
        assert_eq!(books.by_metadata_key("k0"), None);
        assert!(books.by_metadata_key("k19999").is_some());
        assert_eq!(
            books.records()[99].request["metadata"]["order_id"],
            json!(19_999)
        );
    }
}
