//! [`FakeServices`]: the four services' state and the one path every call
//! takes through it — client fault headers, fault rules, idempotency key,
//! latency, provider, and the fault that may replace the provider's answer.
//!
//! The HTTP routes and the in-process API (the simulator's, no sockets) both
//! call [`FakeServices::call`], so the rules cannot drift apart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::books::{Books, Cursor, Filter, Page, UnknownCursor};
use crate::call_log::{CallLog, LoggedCall, OrderCalls, ProviderDid};
use crate::clock::{SharedClock, SystemClock};
use crate::fault_rules::{
    Action, Behavior, BehaviorSpec, BehaviorView, Decision, FaultSpec, InvalidBehavior, Mode,
    RuleError,
};
use crate::idempotency::{Begin, IdempotencyStore, StoredResponse};
use crate::ledger::{self, Record, Told};
use crate::metrics::Metrics;
use crate::providers::{self, Desk, EffectOutcome, MAX_LIMIT};
use crate::service::{Operation, Service};
use crate::watch::{Activity, Counters, EffectWatcher, FiredFault, InFlight, Pause};

/// The longest `X-Be-Slow` a client can ask for, so a typo cannot hang a
/// connection for a day.
pub const MAX_CLIENT_SLOW_MS: u64 = 600_000;

/// The book server's per-request fault headers, as a call carries them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientFaults {
    /// `X-Be-Slow`.
    pub slow: Option<ClientSlow>,
    /// `X-Throttle: true`: answer 429.
    pub throttle: bool,
    /// `X-Crash: true`: answer 503 or 504 (email: send, then 503).
    pub crash: bool,
}

/// How slow `X-Be-Slow` asks the service to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientSlow {
    /// `true`: a random 1 to 10 seconds.
    Random,
    /// A number of seconds, here in milliseconds.
    Millis(u64),
}

/// One call to a service.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub service: Service,
    pub operation: Operation,
    /// The JSON body for an effect; the query parameters, as an object, for a
    /// search.
    pub body: Value,
    /// The `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
    pub client_faults: ClientFaults,
}

impl Call {
    /// A plain call with no key and no fault headers.
    pub fn new(service: Service, operation: Operation, body: Value) -> Self {
        Self {
            service,
            operation,
            body,
            idempotency_key: None,
            client_faults: ClientFaults::default(),
        }
    }

    /// The same call with an `Idempotency-Key`.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

/// How a call ended, as the client experiences it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Response(Response),
    /// The connection was closed without a response.
    Dropped,
}

impl Reply {
    /// The response, if there was one.
    pub fn response(&self) -> Option<&Response> {
        match self {
            Reply::Response(r) => Some(r),
            Reply::Dropped => None,
        }
    }
}

/// A response: status, JSON body (or empty), and the headers that matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// JSON, or empty where the book server answers with no body.
    pub body: Bytes,
    /// `Retry-After` seconds, on a 429.
    pub retry_after_s: Option<u64>,
    /// `Idempotent-Replayed: true`: an earlier result, answered again.
    pub replayed: bool,
}

impl Response {
    fn json(status: u16, body: &Value) -> Self {
        Self {
            status,
            body: Bytes::from(serde_json::to_vec(body).expect("a Value always serializes")),
            retry_after_s: None,
            replayed: false,
        }
    }

    fn empty(status: u16) -> Self {
        Self {
            status,
            body: Bytes::new(),
            retry_after_s: None,
            replayed: false,
        }
    }

    /// Whether there is a (JSON) body; the book server's faults answer none.
    pub fn body_is_json(&self) -> bool {
        !self.body.is_empty()
    }

    /// The body parsed as JSON (`Null` when empty or not JSON).
    pub fn json_body(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// The fake services: cheap to clone, every clone the same services.
#[derive(Clone)]
pub struct FakeServices {
    inner: Arc<Inner>,
}

struct Inner {
    clock: SharedClock,
    services: Vec<Mutex<ServiceState>>,
    /// Told of each performed effect before its answer (`lab check --target`'s kills).
    watcher: RwLock<Option<Arc<dyn EffectWatcher>>>,
    counters: Arc<Counters>,
    /// Every answered call, for one order's story (the ledgers hold
    /// effects only).
    calls: Mutex<CallLog>,
    /// `GET /metrics`' counters, counted as calls go into the log.
    metrics: Metrics,
}

struct ServiceState {
    service: Service,
    behavior: Behavior,
    books: Books,
    keys: IdempotencyStore,
    /// For `X-Crash`'s 503-or-504, `X-Be-Slow: true` and rule seeds.
    rng: ChaCha8Rng,
}

impl ServiceState {
    fn new(service: Service, seed: u64) -> Self {
        let seed = seed.wrapping_add((service.index() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        Self {
            service,
            behavior: Behavior::default(),
            books: Books::new(service, seed),
            keys: IdempotencyStore::default(),
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The fault for one call: the client's headers first (the book server
    /// checks slow, then throttle, then crash), then the service's rules.
    fn decide(&mut self, call: &Call, now_ms: u64) -> Decision {
        let client = call.client_faults;
        let client_latency = match client.slow {
            None => 0,
            Some(ClientSlow::Millis(ms)) => ms.min(MAX_CLIENT_SLOW_MS),
            Some(ClientSlow::Random) => self.rng.random_range(1..=10) * 1_000,
        };
        let header = |action| Decision {
            latency_ms: client_latency,
            action,
            rule: None,
        };
        if client.throttle {
            return header(Action::Throttle { retry_after_s: 1 });
        }
        if client.crash {
            // The book server's email crash still queues the email.
            return header(
                if self.service == Service::Email && call.operation == Operation::Effect {
                    Action::SendThenCrash { status: 503 }
                } else {
                    Action::Crash {
                        status: if self.rng.random_bool(0.5) { 503 } else { 504 },
                    }
                },
            );
        }
        let mut decision = if call.operation.faultable() {
            self.behavior
                .decide(call.operation.name(self.service), now_ms)
        } else {
            Decision::FORWARD
        };
        decision.latency_ms += client_latency;
        decision
    }
}

impl Default for FakeServices {
    fn default() -> Self {
        Self::new()
    }
}

static NEXT_SEED: AtomicU64 = AtomicU64::new(0);

impl FakeServices {
    /// Services on the wall clock with a fresh random seed.
    pub fn new() -> Self {
        let seed = rand::rng().random::<u64>() ^ NEXT_SEED.fetch_add(1, Ordering::Relaxed);
        Self::with_clock(Arc::new(SystemClock), seed)
    }

    /// Services on `clock` whose ids and random choices follow from `seed`:
    /// the same calls give the same ledgers.
    pub fn with_clock(clock: SharedClock, seed: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                clock,
                services: Service::ALL
                    .into_iter()
                    .map(|s| Mutex::new(ServiceState::new(s, seed)))
                    .collect(),
                watcher: RwLock::new(None),
                counters: Arc::default(),
                calls: Mutex::default(),
                metrics: Metrics::default(),
            }),
        }
    }

    /// The clock the services read.
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    fn state(&self, service: Service) -> MutexGuard<'_, ServiceState> {
        // A panic while holding the lock cannot leave a half-written record
        // (each change is one push), so a poisoned lock is still sound.
        self.inner.services[service.index()]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes one call, as a client would over HTTP.
    ///
    /// Dropping the returned future early is safe: an idempotency key it
    /// reserved is released. The HTTP routes run it to completion even when
    /// the client hangs up, so an effect that started always lands in the
    /// ledger.
    pub async fn call(&self, call: Call) -> Reply {
        self.inner.clock.interleave().await;
        let started = self.start(call);
        self.finish(started).await
    }

    /// A call by a client that gives up after `timeout_ms` of this clock,
    /// as the in-process front door for simulations. Whether the call is
    /// slower than the client is decided up front (the latency is part of
    /// the fault decision), so the only sleep on the clock is a real wait:
    /// a simulation can move time whenever every task sleeps. A call slower
    /// than the client still completes — and performs its effect — detached
    /// from it ([`Clock::detach`](crate::Clock::detach)), as it would behind a server.
    pub async fn call_within(&self, call: Call, timeout_ms: u64) -> Result<Reply, TimedOut> {
        self.inner.clock.interleave().await;
        let mut started = self.start(call);
        if started.decision.latency_ms > timeout_ms {
            started.client_gave_up_ms = Some(timeout_ms);
            let fakes = self.clone();
            self.inner.clock.detach(Box::pin(async move {
                fakes.finish(started).await;
            }));
            self.inner.clock.sleep(timeout_ms).await;
            return Err(TimedOut);
        }
        Ok(self.finish(started).await)
    }

    /// The first half of a call, at once and under the service's lock: the
    /// fault decision and, for a keyed effect, the key's reservation.
    fn start(&self, call: Call) -> Started {
        let service = call.service;
        let operation_name = call.operation.name(service);
        let mut state = self.state(service);
        let in_flight = self.inner.counters.begin(&self.inner.clock);
        let started_ms = self.inner.clock.now_ms();
        let decision = state.decide(&call, started_ms);
        let begin = match &call.idempotency_key {
            Some(key)
                if call.operation == Operation::Effect && decision.action.reaches_provider() =>
            {
                Some(state.keys.begin(operation_name, key, &call.body))
            }
            _ => None,
        };
        drop(state);
        let rule_fault = rule_fault(&call, &decision);
        if let Some(fault) = &rule_fault {
            self.tell_fault(&call, operation_name, &fault.words);
        }
        let fault = rule_fault.or_else(|| client_fault(&call, &decision));
        let reservation = match (&begin, &call.idempotency_key) {
            (Some(Begin::Proceed), Some(key)) => Some(Reservation {
                fakes: self.clone(),
                service,
                operation: operation_name,
                key: key.clone(),
                settled: false,
            }),
            _ => None,
        };
        Started {
            call,
            started_ms,
            client_gave_up_ms: None,
            decision,
            fault,
            begin,
            reservation,
            _in_flight: in_flight,
        }
    }

    /// The second half: the latency, then the gateway's fault or the
    /// provider; the call goes into the log as it is answered.
    async fn finish(&self, started: Started) -> Reply {
        let Started {
            call,
            started_ms,
            client_gave_up_ms,
            decision,
            fault,
            begin,
            reservation,
            _in_flight,
        } = started;
        let service = call.service;
        if decision.latency_ms > 0 {
            self.inner.clock.sleep(decision.latency_ms).await;
        }
        let (reply, provider) = match decision.action {
            Action::Crash { status } => (
                Reply::Response(fault_response(status, service, decision)),
                ProviderDid::NotReached,
            ),
            Action::Throttle { retry_after_s } => {
                let mut response = fault_response(429, service, decision);
                response.retry_after_s = Some(retry_after_s);
                (Reply::Response(response), ProviderDid::NotReached)
            }
            Action::DropBefore => (Reply::Dropped, ProviderDid::NotReached),
            Action::Forward | Action::SendThenCrash { .. } | Action::DropAfter => {
                let (provided, did) = self
                    .reach_provider(&call, decision, begin, reservation)
                    .await;
                let reply = match decision.action {
                    Action::SendThenCrash { status } => {
                        Reply::Response(fault_response(status, service, decision))
                    }
                    Action::DropAfter => Reply::Dropped,
                    _ => Reply::Response(provided),
                };
                (reply, did)
            }
        };
        let told = match &reply {
            Reply::Dropped => Told::Dropped,
            Reply::Response(response) => Told::Response {
                status: response.status,
                // Named when a fault answered instead of the provider.
                fault: match decision.action {
                    Action::Crash { .. }
                    | Action::Throttle { .. }
                    | Action::SendThenCrash { .. } => fault.as_ref().map(|f| f.words.clone()),
                    _ => None,
                },
            },
        };
        let operation = call.operation.name(service);
        self.inner.metrics.count_call(
            service,
            operation,
            &provider,
            &told,
            fault.as_ref().map(|f| f.mode),
        );
        self.call_log().push(LoggedCall {
            seq: 0,
            service,
            operation: operation.to_string(),
            started_ms,
            answered_ms: self.inner.clock.now_ms(),
            client_gave_up_ms,
            order_id: match call.operation {
                Operation::Effect => ledger::order_of(&call.body),
                _ => call.body.get("order_id").and_then(ledger::scalar_to_string),
            },
            idempotency_key: call.idempotency_key,
            fault: fault.map(|f| f.words),
            provider,
            told,
        });
        reply
    }

    /// The provider's part of a call that got past the gateway's faults:
    /// an idempotent replay or refusal, or the provider itself.
    async fn reach_provider(
        &self,
        call: &Call,
        decision: Decision,
        begin: Option<Begin>,
        reservation: Option<Reservation>,
    ) -> (Response, ProviderDid) {
        let told = match decision.action {
            Action::SendThenCrash { status } => Some(Told::Response {
                status,
                fault: Some("send-then-crash".into()),
            }),
            Action::DropAfter => Some(Told::Dropped),
            _ => None,
        };
        match begin {
            Some(Begin::Replay(stored)) => (
                Response {
                    status: stored.status,
                    body: stored.body,
                    retry_after_s: None,
                    replayed: true,
                },
                ProviderDid::Replayed,
            ),
            Some(Begin::InFlight) => (
                Response::json(
                    409,
                    &json!({"error": "a request with this Idempotency-Key is still in flight; retry later"}),
                ),
                ProviderDid::Refused { status: 409 },
            ),
            Some(Begin::Mismatch) => (
                Response::json(
                    422,
                    &json!({"error": "this Idempotency-Key was already used with a different request body"}),
                ),
                ProviderDid::Refused { status: 422 },
            ),
            Some(Begin::Proceed) | None => {
                let Provided {
                    response,
                    performed,
                    pause,
                } = self.provide(call, told, reservation);
                let did = match &performed {
                    Some(record) => ProviderDid::Performed {
                        record: record.id.clone(),
                    },
                    None if call.operation != Operation::Effect => ProviderDid::Answered {
                        status: response.status,
                    },
                    // An effect answered 2xx without a new record was
                    // answered from a `metadata.idempotency_key`.
                    None if (200..300).contains(&response.status) => ProviderDid::Replayed,
                    None => ProviderDid::Refused {
                        status: response.status,
                    },
                };
                if let Some(pause) = pause {
                    pause.await;
                }
                (response, did)
            }
        }
    }

    /// Tells the watcher of a fault the rules decided for a call (`what`).
    fn tell_fault(&self, call: &Call, operation: &'static str, what: &str) {
        let watcher = self.watcher();
        if let Some(watcher) = watcher {
            watcher.fault_fired(&FiredFault {
                service: call.service,
                operation,
                what,
                request: &call.body,
            });
        }
    }

    fn watcher(&self) -> Option<Arc<dyn EffectWatcher>> {
        self.inner
            .watcher
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The provider's part of a call, under the service's lock: its
    /// answer, and the effect it performed, if it did, with the watcher
    /// already told of it.
    fn provide(
        &self,
        call: &Call,
        told: Option<Told>,
        reservation: Option<Reservation>,
    ) -> Provided {
        let mut state = self.state(call.service);
        let state = &mut *state;
        // Read under the lock: a record's time is never earlier than the
        // one recorded before it, so time order is the ledger's order.
        let now_ms = self.inner.clock.now_ms();
        match call.operation {
            Operation::Status => Provided::answer(Response::json(
                200,
                &providers::status(call.service, state.books.len()),
            )),
            Operation::Search => Provided::answer(
                match providers::search(call.service, &state.books, &call.body, now_ms) {
                    Ok(found) => Response::json(200, &found),
                    Err((status, error)) => Response::json(status, &error),
                },
            ),
            Operation::Clear => {
                state.books.clear();
                state.keys.clear();
                crate::memory::give_back();
                Provided::answer(Response::empty(200))
            }
            Operation::Effect => {
                let mut desk = Desk {
                    service: call.service,
                    books: &mut state.books,
                    now_ms,
                    search_lag_ms: state.behavior.search_lag_ms(),
                    idempotency_key: call.idempotency_key.as_deref(),
                    told,
                };
                let made_before = desk.books.made();
                let answer = providers::perform(&mut desk, &call.body);
                let (response, executed) = match answer {
                    EffectOutcome::Executed { status, body } => {
                        (Response::json(status, &body), true)
                    }
                    EffectOutcome::Rejected { status, body } => {
                        (Response::json(status, &body), false)
                    }
                };
                if let Some(mut reservation) = reservation {
                    let stored = executed.then(|| StoredResponse {
                        status: response.status,
                        body: response.body.clone(),
                    });
                    state
                        .keys
                        .finish(reservation.operation, &reservation.key, stored);
                    reservation.settled = true;
                }
                // A replay by `metadata.idempotency_key` executes without
                // a new record: then there is nothing to tell the watcher.
                let performed = (executed && state.books.made() > made_before)
                    .then(|| state.books.newest())
                    .flatten();
                // Told before the lock is let go, so that the watcher hears
                // of a service's effects in its ledger's order: the lab's
                // "kill after the second charge" is the ledger's second.
                let pause = performed
                    .as_ref()
                    .and_then(|record| self.watcher().and_then(|w| w.performed(record)));
                Provided {
                    response,
                    performed,
                    pause,
                }
            }
        }
    }

    /// The service's rules with their state.
    pub fn behavior(&self, service: Service) -> BehaviorView {
        self.state(service).behavior.view(self.inner.clock.now_ms())
    }

    /// Replaces the service's rules (counters and windows start afresh).
    pub fn set_behavior(
        &self,
        service: Service,
        spec: BehaviorSpec,
    ) -> Result<BehaviorView, InvalidBehavior> {
        spec.validate(service)?;
        let now_ms = self.inner.clock.now_ms();
        let mut state = self.state(service);
        let state = &mut *state;
        let rng = &mut state.rng;
        state.behavior = Behavior::from_spec(spec, now_ms, || rng.random());
        Ok(state.behavior.view(now_ms))
    }

    /// Appends one rule; the rules already in force keep their counters.
    pub fn add_rule(&self, service: Service, spec: FaultSpec) -> Result<BehaviorView, RuleError> {
        self.edit_behavior(service, |behavior, now_ms, rng| {
            behavior.add_rule(service, spec, now_ms, || rng.random())
        })
    }

    /// Removes rule `index`; the others keep their counters.
    pub fn remove_rule(&self, service: Service, index: usize) -> Result<BehaviorView, RuleError> {
        self.edit_behavior(service, |behavior, _, _| behavior.remove_rule(index))
    }

    /// Moves rule `from` to position `to`; every rule keeps its counters.
    pub fn move_rule(
        &self,
        service: Service,
        from: usize,
        to: usize,
    ) -> Result<BehaviorView, RuleError> {
        self.edit_behavior(service, |behavior, _, _| behavior.move_rule(from, to))
    }

    /// Sets the search lag and leaves the rules as they are.
    pub fn set_search_lag(&self, service: Service, ms: u64) -> BehaviorView {
        let Ok(view) = self.edit_behavior(service, |behavior, _, _| {
            behavior.set_search_lag_ms(ms);
            Ok::<(), std::convert::Infallible>(())
        });
        view
    }

    /// Changes the service's behaviour in place, under its lock, and shows
    /// the result.
    fn edit_behavior<E>(
        &self,
        service: Service,
        edit: impl FnOnce(&mut Behavior, u64, &mut ChaCha8Rng) -> Result<(), E>,
    ) -> Result<BehaviorView, E> {
        let now_ms = self.inner.clock.now_ms();
        let mut state = self.state(service);
        let state = &mut *state;
        edit(&mut state.behavior, now_ms, &mut state.rng)?;
        Ok(state.behavior.view(now_ms))
    }

    /// Whether the service has a rule that can still fire.
    pub fn has_active_faults(&self, service: Service) -> bool {
        self.state(service)
            .behavior
            .has_active_faults(self.inner.clock.now_ms())
    }

    /// Every effect the service performed, searchable or not, oldest
    /// first (with `--keep`, the records kept).
    pub fn ledger(&self, service: Service) -> Vec<Record> {
        self.state(service).books.records()
    }

    /// How many records the service keeps, and how many `--keep` dropped.
    pub fn ledger_size(&self, service: Service) -> (usize, u64) {
        let state = self.state(service);
        (state.books.len(), state.books.dropped())
    }

    /// A page of the service's ledger, newest first: `filter`'s records
    /// from `cursor`, at most `limit` (1 to [`MAX_LIMIT`]).
    pub fn ledger_page(
        &self,
        service: Service,
        filter: &Filter,
        cursor: &Cursor,
        limit: usize,
    ) -> Result<Page, UnknownCursor> {
        self.state(service)
            .books
            .page(filter, cursor, limit.clamp(1, MAX_LIMIT), None)
    }

    /// Orders with more than one successful effect at the service: how
    /// many, and the first `at_most` with their counts. Kept as records are
    /// added, so exact at any size (and for records `--keep` dropped).
    pub fn duplicated_orders(
        &self,
        service: Service,
        at_most: usize,
    ) -> (usize, Vec<(String, u32)>) {
        self.state(service).books.duplicated_orders(at_most)
    }

    /// Successful effects at the service for `order` (`--keep` dropped or not).
    pub fn successes_for(&self, service: Service, order: &str) -> u32 {
        self.state(service).books.successes_for(order)
    }

    /// Every call the services answered for `order` (its `order_id`),
    /// oldest first, as far as the call log still holds them.
    pub fn calls_for(&self, order: &str) -> OrderCalls {
        self.call_log().for_order(order)
    }

    /// The newest `limit` calls of every service, oldest first.
    pub fn newest_calls(&self, limit: usize) -> Vec<crate::call_log::LoggedCall> {
        self.call_log().newest(limit)
    }

    fn call_log(&self) -> MutexGuard<'_, CallLog> {
        self.inner
            .calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keeps only the newest `keep` records of every ledger (`None`: all);
    /// the per-order counts go on counting every record.
    pub fn set_keep(&self, keep: Option<usize>) {
        for service in Service::ALL {
            self.state(service).books.set_keep(keep);
        }
    }

    /// Tells `watcher` of every effect performed from now on, before its
    /// answer goes out (replacing any watcher before it).
    pub fn watch_effects(&self, watcher: Arc<dyn EffectWatcher>) {
        *self
            .inner
            .watcher
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(watcher);
    }

    /// `GET /metrics`: the call, fault and replay counters (never reset) and
    /// the ledgers' sizes now, in the Prometheus text format.
    pub fn metrics_text(&self) -> String {
        self.inner
            .metrics
            .render(|service| self.ledger_size(service))
    }

    /// Whether calls are under way and when the last one ended: a harness
    /// waits for the services to go quiet.
    pub fn activity(&self) -> Activity {
        self.inner.counters.view()
    }

    /// Forgets every record, key and rule of every service.
    pub fn reset(&self) {
        self.inner.counters.reset();
        self.call_log().clear();
        for service in Service::ALL {
            let mut state = self.state(service);
            state.books.clear();
            state.keys.clear();
            state.behavior = Behavior::default();
        }
        crate::memory::give_back();
    }
}

/// The answer of an injected fault. The book server's header faults answer
/// with no body; a rule's fault says which rule it was, so a puzzled user can
/// find it.
fn fault_response(status: u16, service: Service, decision: Decision) -> Response {
    match decision.rule {
        None => Response::empty(status),
        Some(rule) => Response::json(
            status,
            &json!({"error": format!("injected fault: {service} rule {rule} ({})", action_name(decision.action))}),
        ),
    }
}

/// A fault that acted on a call: its mode (the metrics' label) and its
/// words (the call log's and the watcher's).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fault {
    mode: &'static str,
    words: String,
}

/// The fault a service's rules decided for a call (`crash (rule 1)`,
/// `slow 3000 ms`), if they decided one.
fn rule_fault(call: &Call, decision: &Decision) -> Option<Fault> {
    match decision.rule {
        Some(rule) => {
            let mode = action_name(decision.action);
            Some(Fault {
                mode,
                words: format!("{mode} (rule {rule})"),
            })
        }
        // Only a slow rule adds latency without deciding the call; the
        // client's own `X-Be-Slow` is its choice, not the service's rule.
        None if decision.latency_ms > 0 && call.client_faults.slow.is_none() => Some(Fault {
            mode: Mode::Slow.name(),
            words: format!("slow {} ms", decision.latency_ms),
        }),
        None => None,
    }
}

/// The fault the client's own headers asked for (the book's `X-Crash`,
/// `X-Throttle`, `X-Be-Slow`), if they asked for one.
fn client_fault(call: &Call, decision: &Decision) -> Option<Fault> {
    let client = call.client_faults;
    let (mode, words) = if client.throttle {
        (
            Mode::Throttle.name(),
            "throttle (X-Throttle header)".to_string(),
        )
    } else if client.crash {
        let mode = action_name(decision.action);
        (mode, format!("{mode} (X-Crash header)"))
    } else if client.slow.is_some() {
        (
            Mode::Slow.name(),
            format!("slow {} ms (X-Be-Slow header)", decision.latency_ms),
        )
    } else {
        return None;
    };
    Some(Fault { mode, words })
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Forward => "none",
        Action::Crash { .. } => "crash",
        Action::Throttle { .. } => "throttle",
        Action::SendThenCrash { .. } => "send-then-crash",
        Action::DropBefore => "drop-before",
        Action::DropAfter => "drop-after",
    }
}

/// What the provider did with a call.
struct Provided {
    response: Response,
    /// The record of the effect it performed, if it did.
    performed: Option<Record>,
    /// The watcher's hold on the answer, awaited once the lock is let go.
    pause: Option<Pause>,
}

impl Provided {
    /// An answer that performed nothing.
    fn answer(response: Response) -> Self {
        Self {
            response,
            performed: None,
            pause: None,
        }
    }
}

/// The client gave up before the provider answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut;

/// A call whose fault is decided and whose key is reserved.
struct Started {
    call: Call,
    started_ms: u64,
    /// Set when the client stopped waiting after this long, before the answer.
    client_gave_up_ms: Option<u64>,
    decision: Decision,
    /// The fault that fired, for the call log and the metrics.
    fault: Option<Fault>,
    begin: Option<Begin>,
    reservation: Option<Reservation>,
    /// Counts the call as under way until it is answered or abandoned.
    _in_flight: InFlight,
}

/// An idempotency key reserved by a call that has not reached the provider
/// yet. If the call is abandoned (its future dropped during the latency), the
/// key is freed so that a retry is not refused with 409 for ever.
struct Reservation {
    fakes: FakeServices,
    service: Service,
    operation: &'static str,
    key: String,
    /// Set once the provider's result is stored (under the lock already held).
    settled: bool,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        self.fakes
            .state(self.service)
            .keys
            .finish(self.operation, &self.key, None);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{OnceLock, TryLockError};
    use std::time::Duration;

    use super::*;
    use crate::clock::{Clock, Sleep};

    /// The services' clock and their effect watcher at once, noting at each
    /// reading and each telling whether the payments ledger was locked:
    /// whether another call could have recorded a charge in between.
    #[derive(Default)]
    struct Probe {
        fakes: OnceLock<FakeServices>,
        now_ms: AtomicU64,
        /// (the time read, the ledger locked then), each reading distinct.
        readings: Mutex<Vec<(u64, bool)>>,
        /// (the record told of, the ledger locked then).
        told: Mutex<Vec<(String, bool)>>,
    }

    impl Probe {
        fn ledger_locked(&self) -> bool {
            self.fakes.get().is_some_and(|fakes| {
                matches!(
                    fakes.inner.services[Service::Payments.index()].try_lock(),
                    Err(TryLockError::WouldBlock)
                )
            })
        }
    }

    impl Clock for Probe {
        fn now_ms(&self) -> u64 {
            let now = self.now_ms.fetch_add(1, Ordering::SeqCst) + 1;
            let locked = self.ledger_locked();
            self.readings.lock().unwrap().push((now, locked));
            now
        }

        fn sleep(&self, ms: u64) -> Sleep {
            Box::pin(tokio::time::sleep(Duration::from_millis(ms)))
        }
    }

    impl EffectWatcher for Probe {
        fn performed(&self, record: &Record) -> Option<Pause> {
            let locked = self.ledger_locked();
            self.told.lock().unwrap().push((record.id.clone(), locked));
            None
        }
    }

    /// "The Nth charge" must mean the ledger's Nth record everywhere: to
    /// the watcher (the lab's worker kills count what it is told) and on a
    /// timeline sorted by `created_at_ms`. Both hold only if no other call
    /// can record a charge between a record's time being read and the
    /// record, nor between the record and the watcher hearing of it.
    #[tokio::test]
    async fn a_charge_is_timed_and_told_while_no_other_charge_can_be_recorded() {
        let probe = Arc::new(Probe::default());
        let fakes = FakeServices::with_clock(probe.clone(), 7);
        let _ = probe.fakes.set(fakes.clone());
        fakes.watch_effects(probe.clone());
        for order in 1..=2 {
            let charge = json!({"amount_cents": 500, "metadata": {"order_id": order}});
            let reply = fakes
                .call(Call::new(Service::Payments, Operation::Effect, charge))
                .await;
            assert_eq!(reply.response().map(|r| r.status), Some(201));
        }
        let ledger = fakes.ledger(Service::Payments);
        assert_eq!(ledger.len(), 2);
        let readings = probe.readings.lock().unwrap().clone();
        for record in &ledger {
            let reading = readings.iter().find(|(at, _)| *at == record.created_at_ms);
            assert_eq!(
                reading.map(|(_, locked)| *locked),
                Some(true),
                "{}'s time was read with the ledger open to another charge",
                record.id
            );
        }
        let told = probe.told.lock().unwrap().clone();
        let expected: Vec<(String, bool)> = ledger.iter().map(|r| (r.id.clone(), true)).collect();
        assert_eq!(
            told, expected,
            "each charge told of, in ledger order, before another could be recorded"
        );
    }
}
