//! The call log: every call the services answered — effects, replays,
//! searches, and the faults that stood in for the provider — with the order
//! it was for, so that one order's story can be told.
//!
//! The ledgers hold effects only: a call refused by a crash rule, answered
//! from an idempotency key or by a search leaves no record there, yet it is
//! half of why an order was charged twice. The log keeps the newest
//! [`CAPACITY`] calls (a load test of millions of calls must not grow it
//! without bound) and an index by order, so one order's calls are one
//! lookup at any size.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::ledger::Told;
use crate::service::Service;

/// Calls kept, newest; older ones are forgotten first.
pub const CAPACITY: usize = 100_000;

/// The longest idempotency key or order id kept as it was sent.
const MAX_TEXT: usize = 200;

/// One answered call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedCall {
    /// 1 for the first call since the last reset, in the order calls ended.
    pub seq: u64,
    pub service: Service,
    /// `charge`, `send`, `request`, `notify`, `search` or `status`.
    pub operation: String,
    /// When the call arrived and when it was answered, in the services'
    /// clock's milliseconds (since the epoch, on the wall clock).
    pub started_ms: u64,
    pub answered_ms: u64,
    /// The client stopped waiting after this many milliseconds, before the
    /// answer (its `X-Client-Timeout-Ms`): it heard nothing of `told`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_gave_up_ms: Option<u64>,
    /// The `order_id` the body or the search named, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The fault that fired for it, in the rules' words
    /// (`crash (rule 1)`, `slow 3000 ms`, `X-Crash`), if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// What the provider did.
    pub provider: ProviderDid,
    /// What the client was told.
    pub told: Told,
}

impl LoggedCall {
    /// The call in words, for pages and reports: "payments charge without
    /// an idempotency key: performed ch_2a, told 201", "email send (key
    /// email-7): never reached the provider (crash (rule 0)), told 503".
    pub fn describe(&self) -> String {
        let key = match &self.idempotency_key {
            Some(key) => format!(" (key {key})"),
            None if self.operation == self.service.effect_name() => {
                " without an idempotency key".to_string()
            }
            None => String::new(),
        };
        let did = match &self.provider {
            ProviderDid::Performed { record } => format!("performed {record}"),
            ProviderDid::Replayed => "replayed an earlier answer, no new effect".to_string(),
            ProviderDid::Refused { status } => format!("refused it ({status}), no effect"),
            ProviderDid::Answered { status } => format!("answered ({status})"),
            ProviderDid::NotReached => "never reached the provider".to_string(),
        };
        let told = self.told.describe();
        let heard = match self.client_gave_up_ms {
            Some(ms) => format!("the client gave up after {ms} ms and heard nothing"),
            None => format!("told {told}"),
        };
        // The fault, unless what the client was told already names it.
        let fault = match &self.fault {
            Some(f) if self.client_gave_up_ms.is_some() || !told.contains(f.as_str()) => {
                format!(" (fault: {f})")
            }
            _ => String::new(),
        };
        format!(
            "{} {}{key}: {did}{fault}, {heard}",
            self.service.name(),
            self.operation
        )
    }
}

/// What the provider did with a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "did", rename_all = "kebab-case")]
pub enum ProviderDid {
    /// Performed the effect: this record is in its ledger.
    Performed { record: String },
    /// Answered an earlier result again (its `Idempotency-Key`, or a
    /// `metadata.idempotency_key` it had seen): no new effect.
    Replayed,
    /// Refused it without an effect (validation, a decline, a key in
    /// flight or reused with another body): this status.
    Refused { status: u16 },
    /// Answered a search or a status query.
    Answered { status: u16 },
    /// Never saw it: a fault answered first.
    NotReached,
}

impl ProviderDid {
    /// Its name, as in JSON's `did`: `performed`, `replayed`, `refused`,
    /// `answered` or `not-reached` (the metrics' `outcome` label).
    pub fn name(&self) -> &'static str {
        match self {
            ProviderDid::Performed { .. } => "performed",
            ProviderDid::Replayed => "replayed",
            ProviderDid::Refused { .. } => "refused",
            ProviderDid::Answered { .. } => "answered",
            ProviderDid::NotReached => "not-reached",
        }
    }
}

/// One order's calls, and whether the log still holds all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCalls {
    pub calls: Vec<LoggedCall>,
    /// Calls forgotten since the last reset (the log keeps [`CAPACITY`]).
    pub forgotten: u64,
    /// When the oldest call still kept was answered: an order older than
    /// that may have lost calls (`None`: nothing forgotten).
    pub kept_since_ms: Option<u64>,
}

/// `GET /calls?order_id=…`: one order's calls and its exact effect counts,
/// one type for the route that answers it and the web lab that reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCallsAnswer {
    pub order_id: String,
    /// Successful effects for the order in each service's ledger, by the
    /// service's name: kept as records are added, so exact whatever the
    /// log forgot.
    pub effects: BTreeMap<Service, u32>,
    #[serde(flatten)]
    pub log: OrderCalls,
}

/// The newest calls, indexed by order.
#[derive(Debug, Default)]
pub struct CallLog {
    calls: VecDeque<LoggedCall>,
    /// The `seq` of each order's kept calls, oldest first.
    by_order: HashMap<String, VecDeque<u64>>,
    /// Calls dropped from the front: the first kept call's `seq` is one more.
    forgotten: u64,
}

impl CallLog {
    /// Adds a finished call, numbered here (its `seq` is overwritten),
    /// forgetting the oldest past [`CAPACITY`].
    pub fn push(&mut self, call: LoggedCall) {
        self.push_bounded(call, CAPACITY);
    }

    fn push_bounded(&mut self, mut call: LoggedCall, capacity: usize) {
        call.seq = self.forgotten + self.calls.len() as u64 + 1;
        call.order_id = call.order_id.map(bounded);
        call.idempotency_key = call.idempotency_key.map(bounded);
        if let Some(order) = &call.order_id {
            self.by_order
                .entry(order.clone())
                .or_default()
                .push_back(call.seq);
        }
        self.calls.push_back(call);
        while self.calls.len() > capacity {
            let Some(old) = self.calls.pop_front() else {
                break;
            };
            self.forgotten += 1;
            if let Some(order) = old.order_id {
                if let Some(seqs) = self.by_order.get_mut(&order) {
                    // The oldest call of the log is its order's oldest.
                    seqs.pop_front();
                    if seqs.is_empty() {
                        self.by_order.remove(&order);
                    }
                }
            }
        }
    }

    /// The calls for `order`, oldest first.
    pub fn for_order(&self, order: &str) -> OrderCalls {
        let first = self.calls.front().map_or(0, |c| c.seq);
        let calls = self
            .by_order
            .get(order)
            .into_iter()
            .flatten()
            .filter_map(|seq| self.calls.get((seq - first) as usize).cloned())
            .collect();
        OrderCalls {
            calls,
            forgotten: self.forgotten,
            kept_since_ms: (self.forgotten > 0)
                .then(|| self.calls.front().map(|c| c.answered_ms))
                .flatten(),
        }
    }

    /// The newest `limit` calls, oldest first.
    pub fn newest(&self, limit: usize) -> Vec<LoggedCall> {
        let skip = self.calls.len().saturating_sub(limit);
        self.calls.iter().skip(skip).cloned().collect()
    }

    /// Calls kept.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Forgets every call (and gives the memory back).
    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

/// A client's text as kept: at most [`MAX_TEXT`] bytes (on a char boundary).
fn bounded(mut text: String) -> String {
    if text.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(order: Option<&str>, at: u64) -> LoggedCall {
        LoggedCall {
            seq: 0,
            service: Service::Payments,
            operation: "charge".into(),
            started_ms: at,
            answered_ms: at + 1,
            client_gave_up_ms: None,
            order_id: order.map(str::to_string),
            idempotency_key: None,
            fault: None,
            provider: ProviderDid::Performed {
                record: format!("ch_{at}"),
            },
            told: Told::Response {
                status: 201,
                fault: None,
            },
        }
    }

    #[test]
    fn an_orders_calls_come_back_oldest_first_and_others_stay_out() {
        let mut log = CallLog::default();
        log.push(entry(Some("5"), 10));
        log.push(entry(Some("6"), 11));
        log.push(entry(None, 12));
        log.push(entry(Some("5"), 13));
        let five = log.for_order("5");
        let starts: Vec<u64> = five.calls.iter().map(|c| c.started_ms).collect();
        assert_eq!(starts, [10, 13]);
        assert_eq!(five.forgotten, 0);
        assert_eq!(five.kept_since_ms, None);
        assert!(log.for_order("7").calls.is_empty());
    }

    #[test]
    fn past_capacity_the_oldest_calls_go_and_the_index_follows() {
        let mut log = CallLog::default();
        for at in 0..10 {
            let order = if at % 2 == 0 { "even" } else { "odd" };
            log.push_bounded(entry(Some(order), at * 10), 4);
        }
        assert_eq!(log.len(), 4);
        let even = log.for_order("even");
        let starts: Vec<u64> = even.calls.iter().map(|c| c.started_ms).collect();
        assert_eq!(starts, [60, 80], "the index must match what is kept");
        assert_eq!(even.forgotten, 6);
        assert_eq!(even.kept_since_ms, Some(61));
        // An order whose every call went is no longer indexed.
        log.push_bounded(entry(Some("early"), 100), 4);
        for at in 11..15 {
            log.push_bounded(entry(Some("late"), at * 10), 4);
        }
        assert!(log.for_order("early").calls.is_empty());
        assert!(!log.by_order.contains_key("early"));
        assert_eq!(log.by_order.len(), 1);
    }

    #[test]
    fn a_name_is_the_json_did() {
        for did in [
            ProviderDid::Performed { record: "r".into() },
            ProviderDid::Replayed,
            ProviderDid::Refused { status: 409 },
            ProviderDid::Answered { status: 200 },
            ProviderDid::NotReached,
        ] {
            let json = serde_json::to_value(&did).unwrap();
            assert_eq!(json["did"], did.name(), "{json}");
        }
    }

    #[test]
    fn long_texts_are_cut_on_a_character_boundary() {
        let mut log = CallLog::default();
        let mut e = entry(Some(&"é".repeat(300)), 1);
        e.idempotency_key = Some("k".repeat(1_000));
        log.push(e);
        let call = &log.newest(1)[0];
        assert!(call.order_id.as_ref().unwrap().len() <= MAX_TEXT + '…'.len_utf8());
        assert!(call.idempotency_key.as_ref().unwrap().ends_with('…'));
    }

    #[test]
    fn a_call_in_words_names_a_fault_once() {
        let mut call = entry(Some("1"), 5);
        assert_eq!(
            call.describe(),
            "payments charge without an idempotency key: performed ch_5, told 201"
        );
        call.idempotency_key = Some("order-1".into());
        call.fault = Some("send-then-crash (rule 0)".into());
        call.told = Told::Response {
            status: 503,
            fault: Some("send-then-crash (rule 0)".into()),
        };
        assert_eq!(
            call.describe(),
            "payments charge (key order-1): performed ch_5, told 503 (send-then-crash (rule 0))"
        );
        call.provider = ProviderDid::NotReached;
        call.fault = Some("slow 3000 ms".into());
        call.client_gave_up_ms = Some(1_000);
        assert_eq!(
            call.describe(),
            "payments charge (key order-1): never reached the provider (fault: slow 3000 ms), \
             the client gave up after 1000 ms and heard nothing"
        );
        call.operation = "search".into();
        call.idempotency_key = None;
        call.client_gave_up_ms = None;
        call.fault = None;
        call.provider = ProviderDid::Answered { status: 200 };
        call.told = Told::Response {
            status: 200,
            fault: None,
        };
        assert_eq!(call.describe(), "payments search: answered (200), told 200");
    }
}
