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
    orders: HashMap<OrderKey, OrderEntry>,
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
            orders: HashMap::new(),
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
                let entry = self
                    .orders
                    .entry(OrderKey::of(&order))
                    .or_insert(OrderEntry {
                        newest: number,
                        effects: 0,
                        successes: 0,
                    });
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
        self.orders
            .get(&OrderKey::of(order))
            .map_or(0, |e| e.successes)
    }

    /// How many orders have more than one successful effect, and the first
    /// `at_most` of them with their counts.
    pub fn duplicated_orders(&self, at_most: usize) -> (usize, Vec<(String, u32)>) {
        let shown = self
            .duplicated
            .iter()
            .take(at_most)
            .map(|key| {
                let count = self.orders.get(key).map_or(0, |e| e.successes);
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
                let start = self.orders.get(&OrderKey::of(order)).map(|e| e.newest);
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
