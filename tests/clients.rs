//! The provider clients against the fake services, every case twice: over
//! HTTP (a real server on 127.0.0.1) and in process. Both run on a manual
//! clock, so injected latency moves only when a test says so; a test waits
//! for things by polling with a deadline, never by sleeping a guessed time.

use idemlab_test_support as common;

use common::wait_until;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fake_services::http::{router, HttpOptions};
use fake_services::serve::RunningServer;
use fake_services::{FakeServices, ManualClock, Record, Service, Told};
use idemlab::clients::{
    BuildError, Charge, ChargeRequest, EmailRequest, FoundEmail, FulfillmentRequest,
    ProviderClients, ServiceError,
};
use serde_json::{json, Value};

/// Long enough that only a hung test reaches it.
const PATIENT: Duration = Duration::from_secs(30);
/// The client timeout of the timeout tests: real time over HTTP, virtual time
/// in process. Over HTTP the request must reach the server within it, which
/// takes milliseconds even on a loaded machine.
const IMPATIENT: Duration = Duration::from_secs(1);
/// How long a slow provider takes in the timeout tests (on the manual clock).
const VERY_SLOW_MS: u64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Http,
    InProcess,
}

/// The fake services on a manual clock and the clients talking to them.
struct Lab {
    kind: Kind,
    clock: ManualClock,
    fakes: FakeServices,
    clients: ProviderClients,
    _server: Option<RunningServer>,
}

impl Lab {
    async fn start(kind: Kind) -> Self {
        Self::with_timeout(kind, PATIENT).await
    }

    async fn with_timeout(kind: Kind, timeout: Duration) -> Self {
        let clock = ManualClock::default();
        let fakes = FakeServices::with_clock(Arc::new(clock.clone()), 42);
        let (clients, server) = match kind {
            Kind::Http => {
                let server = RunningServer::start(
                    local_any_port(),
                    router(fakes.clone(), HttpOptions::default()),
                )
                .await
                .expect("bind a free port");
                let clients = ProviderClients::http(&server.url(), timeout).unwrap();
                (clients, Some(server))
            }
            Kind::InProcess => (ProviderClients::in_process(fakes.clone(), timeout), None),
        };
        Lab {
            kind,
            clock,
            fakes,
            clients,
            _server: server,
        }
    }

    /// Sets `service`'s behaviour (the JSON of `PUT /{service}/behavior`).
    fn behave(&self, service: Service, behavior: Value) {
        self.fakes
            .set_behavior(service, serde_json::from_value(behavior).unwrap())
            .unwrap();
    }

    /// What a search finds of the order confirmations sent to `email(_)`'s
    /// recipient.
    async fn confirmations_found(&self) -> Vec<FoundEmail> {
        self.clients
            .email
            .search_emails("pat@example.com", "order-confirmation")
            .await
            .unwrap()
    }

    /// The error a fulfillment request for order 7 at `address` fails with.
    async fn fulfillment_refused(&self, address: &str) -> ServiceError {
        self.clients
            .fulfillment
            .request_fulfillment(&fulfillment(7, address))
            .await
            .unwrap_err()
    }

    /// Sends `request` twice and checks that both answers name one charge,
    /// and that the ledger holds only it: its id.
    async fn charge_twice_as_one(&self, request: &ChargeRequest) -> String {
        let first = success_id(self.clients.payments.charge(request).await.unwrap());
        let second = success_id(self.clients.payments.charge(request).await.unwrap());
        assert_eq!(first, second);
        assert_eq!(self.fakes.ledger(Service::Payments).len(), 1);
        first
    }

    /// Makes `rule` the only fault rule of `service`.
    fn one_rule(&self, service: Service, rule: Value) {
        self.behave(service, json!({ "faults": [rule] }));
    }

    /// Waits until `n` client calls sit in the fakes' injected latency. In
    /// process, each such call also has its client's timeout waiting on the
    /// same clock.
    async fn wait_in_latency(&self, n: usize) {
        // Each call in its latency sleeps on the clock, over either transport
        // (in process, a call slower than the client adds the client's own
        // timeout sleep).
        let clock = &self.clock;
        wait_until("calls sit in their latency", || async move {
            clock.sleepers() >= n
        })
        .await;
    }

    /// Makes a call that is stuck in a long latency reach its client timeout:
    /// over HTTP that happens by itself in real time; in process, the clock
    /// must reach the timeout.
    async fn pass_client_timeout(&self, timeout: Duration) {
        if self.kind == Kind::InProcess {
            self.wait_in_latency(1).await;
            self.clock.advance(timeout.as_millis() as u64);
        }
    }

    /// Waits until `service`'s ledger has `n` records, and returns them.
    async fn wait_ledger(&self, service: Service, n: usize) -> Vec<Record> {
        let fakes = &self.fakes;
        wait_until("the ledger has the record", || async move {
            fakes.ledger(service).len() >= n
        })
        .await;
        self.fakes.ledger(service)
    }
}

fn local_any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Awaits a spawned call, failing (not hanging) if it never ends.
async fn finish<T>(task: tokio::task::JoinHandle<T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the call did not end within 10 s")
        .expect("the call panicked")
}

fn charge(order_id: i64) -> ChargeRequest {
    ChargeRequest {
        customer_id: "cus_1".into(),
        payment_method_id: "pm_1".into(),
        amount_cents: 12300,
        order_id,
        metadata_idempotency_key: None,
        idempotency_key: None,
    }
}

fn keyed_charge(order_id: i64) -> ChargeRequest {
    ChargeRequest {
        idempotency_key: Some(format!("idempotency_key-order-{order_id}")),
        ..charge(order_id)
    }
}

fn email(order_id: i64) -> EmailRequest {
    EmailRequest {
        to: "pat@example.com".into(),
        template_id: "order-confirmation".into(),
        template_data: json!({"order_id": order_id, "subject": "Your order has been received"}),
        idempotency_key: None,
    }
}

fn fulfillment(order_id: i64, address: &str) -> FulfillmentRequest {
    FulfillmentRequest {
        customer_id: "cus_1".into(),
        address: address.into(),
        product_id: 3,
        quantity: 2,
        order_id,
        metadata_idempotency_key: None,
        idempotency_key: None,
    }
}

fn success_id(charge: Charge) -> String {
    match charge {
        Charge::Success { charge_id } => charge_id,
        other => panic!("expected a successful charge, got {other:?}"),
    }
}

/// Runs each case over both transports: `http::case` and `in_process::case`.
macro_rules! both_transports {
    ($($case:ident),* $(,)?) => {
        mod http {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::Kind::Http).await
                }
            )*
        }
        mod in_process {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::Kind::InProcess).await
                }
            )*
        }
    };
}

both_transports!(
    charge_succeeds_and_search_finds_it,
    a_decline_is_an_answer_not_an_error,
    email_is_sent_and_found_by_search,
    fulfillment_is_requested_and_found_by_search,
    a_blank_address_is_a_permanent_rejection,
    the_error_catcher_returns_a_notification_id,
    blank_fields_are_rejected_with_the_providers_message,
    crash_is_a_transient_server_error,
    throttle_is_transient_with_retry_after,
    drop_before_is_a_transient_connection_error_without_effect,
    drop_after_is_a_transient_connection_error_with_the_effect,
    send_then_crash_is_transient_but_charged_and_the_keyed_retry_gets_it,
    email_send_then_crash_is_found_by_search,
    slower_than_the_client_timeout_is_a_timeout_but_the_effect_happens,
    slow_within_the_client_timeout_succeeds,
    the_idempotency_key_replays_the_same_charge,
    the_metadata_idempotency_key_replays_the_same_charge,
    a_quoted_key_is_the_same_key_and_a_bad_one_is_refused_before_sending,
    a_key_reused_with_another_body_is_rejected,
    a_key_still_in_flight_is_a_transient_409,
    search_lag_hides_new_records_until_the_clock_passes_it,
    faults_on_search_are_errors_too,
);

async fn charge_succeeds_and_search_finds_it(kind: Kind) {
    let lab = Lab::start(kind).await;
    let id = success_id(lab.clients.payments.charge(&charge(7)).await.unwrap());
    assert!(id.starts_with("ch_") && id.len() == 11, "{id}");
    let ledger = lab.fakes.ledger(Service::Payments);
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].id, id);
    assert_eq!(
        ledger[0].request,
        json!({"customer_id": "cus_1", "payment_method_id": "pm_1", "amount_cents": 12300,
               "metadata": {"order_id": 7}})
    );

    let found = lab.clients.payments.search_charges(7).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].charge_id, id);
    assert_eq!(found[0].status, "success");
    assert!(found[0].is_success());
    assert_eq!(found[0].order_id, Some(7));
    assert_eq!(found[0].amount_cents, Some(12300));
    assert!(lab
        .clients
        .payments
        .search_charges(8)
        .await
        .unwrap()
        .is_empty());
}

async fn a_decline_is_an_answer_not_an_error(kind: Kind) {
    let lab = Lab::start(kind).await;
    let request = ChargeRequest {
        amount_cents: 9999,
        ..charge(9)
    };
    let result = lab.clients.payments.charge(&request).await.unwrap();
    assert_eq!(
        result,
        Charge::Declined {
            explanation: "Insufficient funds".into()
        }
    );
    assert_eq!(result.charge_id(), None);
    let found = lab.clients.payments.search_charges(9).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].status, "declined");
    assert!(!found[0].is_success());
}

async fn email_is_sent_and_found_by_search(kind: Kind) {
    let lab = Lab::start(kind).await;
    let id = lab.clients.email.send_email(&email(7)).await.unwrap();
    assert!(id.starts_with("em_"), "{id}");
    let found = lab.confirmations_found().await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].email_id, id);
    assert_eq!(found[0].to, "pat@example.com");
    assert_eq!(found[0].template_id, "order-confirmation");
    assert_eq!(found[0].template_data["order_id"], json!(7));
    let other = lab
        .clients
        .email
        .search_emails("pat@example.com", "reminder")
        .await
        .unwrap();
    assert!(other.is_empty());
}

async fn fulfillment_is_requested_and_found_by_search(kind: Kind) {
    let lab = Lab::start(kind).await;
    let request = FulfillmentRequest {
        metadata_idempotency_key: Some("idempotency_key-order-7".into()),
        ..fulfillment(7, "1 Main St")
    };
    let id = lab
        .clients
        .fulfillment
        .request_fulfillment(&request)
        .await
        .unwrap();
    assert!(id.starts_with("fr_"), "{id}");
    let found = lab
        .clients
        .fulfillment
        .search_fulfillments(7)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].request_id, id);
    assert_eq!(found[0].order_id, Some(7));
    assert_eq!(found[0].address.as_deref(), Some("1 Main St"));
    assert_eq!(found[0].quantity, Some(2));
    assert_eq!(
        found[0].metadata_idempotency_key.as_deref(),
        Some("idempotency_key-order-7")
    );
    // The book server's metadata key: the same request again, nothing new.
    let again = lab
        .clients
        .fulfillment
        .request_fulfillment(&request)
        .await
        .unwrap();
    assert_eq!(again, id);
    assert_eq!(lab.fakes.ledger(Service::Fulfillment).len(), 1);
}

async fn a_blank_address_is_a_permanent_rejection(kind: Kind) {
    let lab = Lab::start(kind).await;
    let err = lab.fulfillment_refused("  ").await;
    assert_eq!(
        err,
        ServiceError::Rejected {
            service: Service::Fulfillment,
            status: 422,
            message: "Missing address".into()
        }
    );
    assert!(!err.is_transient());
    assert_eq!(err.class_name(), "Fulfillment::Rejected");
    assert_eq!(err.service(), Service::Fulfillment);
    assert_eq!(
        err.to_string(),
        "fulfillment rejected the request (422): Missing address"
    );
    assert!(lab.fakes.ledger(Service::Fulfillment).is_empty());
}

async fn the_error_catcher_returns_a_notification_id(kind: Kind) {
    let lab = Lab::start(kind).await;
    let id = lab
        .clients
        .error_catcher
        .notify(
            "CompleteOrderJob::Error",
            "CompleteOrderJob won't be retried: boom",
        )
        .await
        .unwrap();
    assert!(id.starts_with("err_"), "{id}");
    let ledger = lab.fakes.ledger(Service::ErrorCatcher);
    assert_eq!(ledger.len(), 1);
    assert_eq!(
        ledger[0].request,
        json!({"exception_class": "CompleteOrderJob::Error",
               "exception_message": "CompleteOrderJob won't be retried: boom"})
    );
}

async fn blank_fields_are_rejected_with_the_providers_message(kind: Kind) {
    let lab = Lab::start(kind).await;
    let err = lab
        .clients
        .email
        .send_email(&EmailRequest {
            to: String::new(),
            ..email(7)
        })
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ServiceError::Rejected {
            service: Service::Email,
            status: 422,
            message: "to required".into()
        }
    );
    assert_eq!(err.class_name(), "Email::Rejected");
    let err = lab
        .clients
        .error_catcher
        .notify("", "message")
        .await
        .unwrap_err();
    assert!(!err.is_transient());
    assert_eq!(err.class_name(), "ErrorCatcher::Rejected");
    assert!(
        err.to_string()
            .contains("exception class or message is missing"),
        "{err}"
    );
}

async fn crash_is_a_transient_server_error(kind: Kind) {
    let lab = Lab::start(kind).await;
    lab.one_rule(Service::Payments, json!({"mode": "crash", "calls": 1}));
    let err = lab.clients.payments.charge(&charge(7)).await.unwrap_err();
    assert!(
        matches!(&err, ServiceError::ServerError { status: 503, message, .. }
            if message.contains("injected fault")),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert_eq!(err.class_name(), "Payments::ServerError");
    assert_eq!(err.status(), Some(503));
    assert!(
        err.to_string().starts_with("payments answered 503: "),
        "{err}"
    );
    assert!(lab.fakes.ledger(Service::Payments).is_empty());
    // The rule is spent: the retry goes through.
    lab.clients.payments.charge(&charge(7)).await.unwrap();

    lab.one_rule(Service::Payments, json!({"mode": "crash", "status": 504}));
    let err = lab.clients.payments.charge(&charge(8)).await.unwrap_err();
    assert!(
        matches!(err, ServiceError::ServerError { status: 504, .. }),
        "{err:?}"
    );
}

async fn throttle_is_transient_with_retry_after(kind: Kind) {
    let lab = Lab::start(kind).await;
    lab.one_rule(
        Service::Email,
        json!({"mode": "throttle", "retry_after_s": 7}),
    );
    let err = lab.clients.email.send_email(&email(7)).await.unwrap_err();
    assert_eq!(
        err,
        ServiceError::Throttled {
            service: Service::Email,
            retry_after: Some(Duration::from_secs(7))
        }
    );
    assert!(err.is_transient());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert_eq!(err.class_name(), "Email::Throttled");
    assert!(lab.fakes.ledger(Service::Email).is_empty());
}

async fn drop_before_is_a_transient_connection_error_without_effect(kind: Kind) {
    let lab = Lab::start(kind).await;
    lab.one_rule(
        Service::Fulfillment,
        json!({"mode": "drop-before", "calls": 1}),
    );
    let err = lab.fulfillment_refused("1 Main St").await;
    assert!(matches!(err, ServiceError::Connection { .. }), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(err.class_name(), "Fulfillment::ConnectionError");
    assert_eq!(err.status(), None);
    assert!(lab.fakes.ledger(Service::Fulfillment).is_empty());
    // The next call works (over HTTP, on a fresh connection).
    lab.clients
        .fulfillment
        .request_fulfillment(&fulfillment(7, "1 Main St"))
        .await
        .unwrap();
}

async fn drop_after_is_a_transient_connection_error_with_the_effect(kind: Kind) {
    let lab = Lab::start(kind).await;
    lab.one_rule(Service::Payments, json!({"mode": "drop-after", "calls": 1}));
    let err = lab.clients.payments.charge(&charge(7)).await.unwrap_err();
    assert!(matches!(err, ServiceError::Connection { .. }), "{err:?}");
    assert!(err.is_transient());
    let ledger = lab.wait_ledger(Service::Payments, 1).await;
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].told, Told::Dropped);
}

async fn send_then_crash_is_transient_but_charged_and_the_keyed_retry_gets_it(kind: Kind) {
    let lab = Lab::start(kind).await;
    lab.one_rule(
        Service::Payments,
        json!({"mode": "send-then-crash", "calls": 1}),
    );
    let request = keyed_charge(7);
    let err = lab.clients.payments.charge(&request).await.unwrap_err();
    assert!(
        matches!(err, ServiceError::ServerError { status: 503, .. }),
        "{err:?}"
    );
    assert!(err.is_transient());
    let ledger = lab.fakes.ledger(Service::Payments);
    assert_eq!(ledger.len(), 1, "the charge happened");
    assert!(ledger[0].is_success());
    assert_eq!(
        ledger[0].told,
        Told::Response {
            status: 503,
            fault: Some("send-then-crash".into())
        }
    );
    // The retry with the same Idempotency-Key gets the original charge.
    let id = success_id(lab.clients.payments.charge(&request).await.unwrap());
    assert_eq!(id, ledger[0].id);
    assert_eq!(lab.fakes.ledger(Service::Payments).len(), 1);
}

async fn email_send_then_crash_is_found_by_search(kind: Kind) {
    let lab = Lab::start(kind).await;
    lab.one_rule(
        Service::Email,
        json!({"mode": "send-then-crash", "calls": 1, "operations": ["send"]}),
    );
    let err = lab.clients.email.send_email(&email(7)).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(err.class_name(), "Email::ServerError");
    let found = lab.confirmations_found().await;
    assert_eq!(
        found.len(),
        1,
        "the email went out although the client got 503"
    );
    assert_eq!(found[0].template_data["order_id"], json!(7));
}

async fn slower_than_the_client_timeout_is_a_timeout_but_the_effect_happens(kind: Kind) {
    let lab = Lab::with_timeout(kind, IMPATIENT).await;
    lab.one_rule(
        Service::Payments,
        json!({"mode": "slow", "sleep_ms": VERY_SLOW_MS}),
    );
    let payments = lab.clients.payments.clone();
    let call = tokio::spawn(async move { payments.charge(&charge(7)).await });
    lab.pass_client_timeout(IMPATIENT).await;
    let err = finish(call).await.unwrap_err();
    assert_eq!(
        err,
        ServiceError::Timeout {
            service: Service::Payments,
            after: IMPATIENT
        }
    );
    assert!(err.is_transient());
    assert_eq!(err.class_name(), "Payments::Timeout");
    assert_eq!(err.to_string(), "payments did not answer within 1 s");

    // The provider is still working on it: nothing yet.
    let clock = &lab.clock;
    wait_until("the provider sits in its latency", || async move {
        clock.sleepers() >= 1
    })
    .await;
    assert!(lab.fakes.ledger(Service::Payments).is_empty());
    // Once its latency has passed, the charge is made, unheard.
    lab.clock.advance(VERY_SLOW_MS);
    let ledger = lab.wait_ledger(Service::Payments, 1).await;
    assert_eq!(ledger.len(), 1);
    assert!(ledger[0].is_success());
}

async fn slow_within_the_client_timeout_succeeds(kind: Kind) {
    let lab = Lab::start(kind).await;
    lab.one_rule(Service::Payments, json!({"mode": "slow", "sleep_ms": 500}));
    let payments = lab.clients.payments.clone();
    let call = tokio::spawn(async move { payments.charge(&charge(7)).await });
    lab.wait_in_latency(1).await;
    assert!(!call.is_finished());
    lab.clock.advance(500);
    let id = success_id(finish(call).await.unwrap());
    assert_eq!(lab.fakes.ledger(Service::Payments)[0].id, id);
}

async fn the_idempotency_key_replays_the_same_charge(kind: Kind) {
    let lab = Lab::start(kind).await;
    let request = keyed_charge(7);
    let first = lab.charge_twice_as_one(&request).await;
    let ledger = lab.fakes.ledger(Service::Payments);
    assert_eq!(
        ledger[0].idempotency_key.as_deref(),
        Some("idempotency_key-order-7")
    );
    // Without a key, a second charge is a second charge.
    let third = success_id(lab.clients.payments.charge(&charge(7)).await.unwrap());
    assert_ne!(third, first);
}

/// One key rule (`fake_services::idempotency_key`) on both transports: the
/// draft's quoted form names the bare key, and a key the server would refuse
/// never leaves the client.
async fn a_quoted_key_is_the_same_key_and_a_bad_one_is_refused_before_sending(kind: Kind) {
    let lab = Lab::start(kind).await;
    let bare = keyed_charge(7);
    let quoted = ChargeRequest {
        idempotency_key: bare.idempotency_key.as_ref().map(|k| format!("\"{k}\"")),
        ..bare.clone()
    };
    let first = success_id(lab.clients.payments.charge(&quoted).await.unwrap());
    let second = success_id(lab.clients.payments.charge(&bare).await.unwrap());
    assert_eq!(first, second);
    let ledger = lab.fakes.ledger(Service::Payments);
    assert_eq!(ledger.len(), 1);
    assert_eq!(
        ledger[0].idempotency_key.as_deref(),
        Some("idempotency_key-order-7")
    );
    for key in ["\"\"".to_string(), "k".repeat(256), "a\tb".into()] {
        let request = ChargeRequest {
            idempotency_key: Some(key.clone()),
            ..charge(8)
        };
        let err = lab.clients.payments.charge(&request).await.unwrap_err();
        assert!(
            matches!(err, ServiceError::InvalidRequest { .. }),
            "{key:?}: {err:?}"
        );
    }
    assert_eq!(lab.fakes.ledger(Service::Payments).len(), 1);
}

async fn the_metadata_idempotency_key_replays_the_same_charge(kind: Kind) {
    let lab = Lab::start(kind).await;
    let request = ChargeRequest {
        metadata_idempotency_key: Some("idempotency_key-order-7".into()),
        ..charge(7)
    };
    lab.charge_twice_as_one(&request).await;
    let ledger = lab.fakes.ledger(Service::Payments);
    assert_eq!(
        ledger[0].request["metadata"],
        json!({"order_id": 7, "idempotency_key": "idempotency_key-order-7"})
    );
    let found = lab.clients.payments.search_charges(7).await.unwrap();
    assert_eq!(
        found[0].metadata_idempotency_key.as_deref(),
        Some("idempotency_key-order-7")
    );
}

async fn a_key_reused_with_another_body_is_rejected(kind: Kind) {
    let lab = Lab::start(kind).await;
    lab.clients.payments.charge(&keyed_charge(7)).await.unwrap();
    let other = ChargeRequest {
        amount_cents: 1,
        ..keyed_charge(7)
    };
    let err = lab.clients.payments.charge(&other).await.unwrap_err();
    assert!(
        matches!(&err, ServiceError::Rejected { status: 422, message, .. }
            if message.contains("different request body")),
        "{err:?}"
    );
    assert!(!err.is_transient());
}

async fn a_key_still_in_flight_is_a_transient_409(kind: Kind) {
    let lab = Lab::start(kind).await;
    lab.one_rule(
        Service::Payments,
        json!({"mode": "slow", "sleep_ms": 5000, "calls": 1}),
    );
    let payments = lab.clients.payments.clone();
    let first = tokio::spawn(async move { payments.charge(&keyed_charge(7)).await });
    lab.wait_in_latency(1).await;

    let err = lab
        .clients
        .payments
        .charge(&keyed_charge(7))
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::InFlight { .. }), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(err.status(), Some(409));
    assert_eq!(err.class_name(), "Payments::InFlight");

    lab.clock.advance(5000);
    let id = success_id(finish(first).await.unwrap());
    // Retrying later gets the first request's charge.
    let retried = success_id(lab.clients.payments.charge(&keyed_charge(7)).await.unwrap());
    assert_eq!(retried, id);
    assert_eq!(lab.fakes.ledger(Service::Payments).len(), 1);
}

async fn search_lag_hides_new_records_until_the_clock_passes_it(kind: Kind) {
    let lab = Lab::start(kind).await;
    lab.behave(Service::Payments, json!({"search_lag_ms": 1000}));
    let id = success_id(lab.clients.payments.charge(&charge(7)).await.unwrap());
    assert!(lab
        .clients
        .payments
        .search_charges(7)
        .await
        .unwrap()
        .is_empty());
    lab.clock.advance(1000);
    let found = lab.clients.payments.search_charges(7).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].charge_id, id);
}

async fn faults_on_search_are_errors_too(kind: Kind) {
    let lab = Lab::start(kind).await;
    lab.one_rule(
        Service::Fulfillment,
        json!({"mode": "crash", "operations": ["search"]}),
    );
    let err = lab
        .clients
        .fulfillment
        .search_fulfillments(7)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ServiceError::ServerError { status: 503, .. }),
        "{err:?}"
    );
    // The effect itself is not affected.
    lab.clients
        .fulfillment
        .request_fulfillment(&fulfillment(7, "1 Main St"))
        .await
        .unwrap();
}

// ---- In process only --------------------------------------------------------

/// On the virtual clock, a call that finishes at the very instant its client
/// gives up counts as answered.
#[tokio::test]
async fn in_process_latency_equal_to_the_timeout_is_answered() {
    let lab = Lab::with_timeout(Kind::InProcess, IMPATIENT).await;
    lab.one_rule(Service::Payments, json!({"mode": "slow", "sleep_ms": 1000}));
    let payments = lab.clients.payments.clone();
    let call = tokio::spawn(async move { payments.charge(&charge(7)).await });
    lab.wait_in_latency(1).await;
    lab.clock.advance(1000);
    success_id(finish(call).await.unwrap());
}

/// Two clients of the same transport are cheap clones of one another.
#[tokio::test]
async fn in_process_clients_share_the_fakes() {
    let lab = Lab::start(Kind::InProcess).await;
    let clone = lab.clients.clone();
    clone.payments.charge(&charge(1)).await.unwrap();
    lab.clients.payments.charge(&charge(2)).await.unwrap();
    assert_eq!(lab.fakes.ledger(Service::Payments).len(), 2);
    assert_eq!(lab.clients.transport().timeout(), PATIENT);
}

// ---- Over HTTP only ---------------------------------------------------------

/// A server that answers everything the same wrong way: under `/text/` 200
/// with plain text, under `/shape/` 200 with JSON of the wrong shape, under
/// `/html/` 503 with an HTML page.
async fn garbage_server() -> RunningServer {
    use axum::http::{StatusCode, Uri};
    use axum::response::IntoResponse;

    let app = axum::Router::new().fallback(|uri: Uri| async move {
        let path = uri.path();
        if path.starts_with("/text/") {
            (StatusCode::OK, "this is not JSON").into_response()
        } else if path.starts_with("/shape/") {
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                r#"{"status": "maybe", "id": 7}"#,
            )
                .into_response()
        } else {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "<html><body>Bad gateway, try later</body></html>",
            )
                .into_response()
        }
    });
    RunningServer::start(local_any_port(), app).await.unwrap()
}

#[tokio::test]
async fn http_garbage_answers_are_errors_not_panics() {
    let server = garbage_server().await;
    for prefix in ["text", "shape"] {
        let clients =
            ProviderClients::http(&format!("{}/{prefix}", server.url()), PATIENT).unwrap();
        let errors = [
            clients.payments.charge(&charge(7)).await.unwrap_err(),
            clients.payments.search_charges(7).await.unwrap_err(),
            clients.email.send_email(&email(7)).await.unwrap_err(),
            clients.email.search_emails("a@b", "t").await.unwrap_err(),
            clients
                .fulfillment
                .request_fulfillment(&fulfillment(7, "1 Main St"))
                .await
                .unwrap_err(),
            clients
                .fulfillment
                .search_fulfillments(7)
                .await
                .unwrap_err(),
            clients.error_catcher.notify("A", "b").await.unwrap_err(),
        ];
        for err in errors {
            assert!(
                matches!(err, ServiceError::BadResponse { status: 200, .. }),
                "{prefix}: {err:?}"
            );
            assert!(!err.is_transient());
            assert!(err.class_name().ends_with("::BadResponse"), "{err:?}");
            assert!(err.to_string().contains("not the JSON expected"), "{err}");
        }
    }
    let clients = ProviderClients::http(&format!("{}/html", server.url()), PATIENT).unwrap();
    let err = clients.payments.charge(&charge(7)).await.unwrap_err();
    assert!(
        matches!(&err, ServiceError::ServerError { status: 503, message, .. }
            if message.contains("Bad gateway")),
        "{err:?}"
    );
    assert!(err.is_transient());
}

#[tokio::test]
async fn http_sends_accept_and_the_idempotency_key() {
    use axum::http::HeaderMap;

    let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap| {
        let record = record.clone();
        async move {
            record.lock().unwrap().push(headers);
            axum::Json(json!({"status": "success", "charge_id": "ch_00000001"}))
        }
    });
    let server = RunningServer::start(local_any_port(), app).await.unwrap();
    let clients = ProviderClients::http(&server.url(), PATIENT).unwrap();
    clients.payments.charge(&keyed_charge(7)).await.unwrap();
    clients.payments.charge(&charge(8)).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0]["accept"], "application/json");
    assert_eq!(seen[0]["idempotency-key"], "idempotency_key-order-7");
    assert_eq!(seen[1]["accept"], "application/json");
    assert!(seen[1].get("idempotency-key").is_none());
}

#[tokio::test]
async fn http_connection_refused_is_transient() {
    // A port that was free a moment ago and has no listener now.
    let addr = std::net::TcpListener::bind(local_any_port())
        .unwrap()
        .local_addr()
        .unwrap();
    let clients = ProviderClients::http(&format!("http://{addr}"), PATIENT).unwrap();
    let err = clients.payments.charge(&charge(7)).await.unwrap_err();
    assert!(matches!(err, ServiceError::Connection { .. }), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(err.class_name(), "Payments::ConnectionError");
}

#[test]
fn http_base_urls_are_checked() {
    for bad in ["localhost:3001", "https://127.0.0.1:3001", "not a url"] {
        let err = ProviderClients::http(bad, PATIENT).unwrap_err();
        assert!(matches!(err, BuildError::BadUrl { .. }), "{bad}: {err:?}");
    }
}

#[tokio::test]
async fn invalid_idempotency_keys_are_refused_before_sending() {
    for kind in [Kind::Http, Kind::InProcess] {
        let lab = Lab::start(kind).await;
        let request = ChargeRequest {
            idempotency_key: Some("line\nbreak".into()),
            ..charge(7)
        };
        let err = lab.clients.payments.charge(&request).await.unwrap_err();
        assert!(
            matches!(err, ServiceError::InvalidRequest { .. }),
            "{kind:?}: {err:?}"
        );
        assert!(!err.is_transient());
        assert!(lab.fakes.ledger(Service::Payments).is_empty());
    }
}
