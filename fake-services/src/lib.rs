//! Fake third-party services — payments, email, fulfillment and an error
//! catcher — that a job pipeline talks to, and that can be told to fail the
//! way real providers fail: crash, throttle, slow down, perform the effect and
//! then crash, or drop the connection. Their HTTP API is a superset of the fake
//! API server from "Ruby on Rails Background Jobs with Sidekiq" (v1.2.1).
//!
//! # Layout
//!
//! - [`fakes`]: [`FakeServices`], the state of all four and the one path every
//!   call takes; also the in-process API (no sockets) for the simulator.
//! - [`fault_rules`]: server-side fault rules and their limits;
//!   [`rule_words`]: a rule, and what each of its fields means, in words.
//! - [`idempotency`]: the `Idempotency-Key` header's store;
//!   [`idempotency_key`]: what the header may hold (server and clients).
//! - [`ledger`]: the records of effects, with what the client was told;
//!   [`call_log`]: every answered call (replays and faults too), by order;
//!   [`metrics`]: `GET /metrics`' counters and gauges (Prometheus text);
//!   [`books`]: a service's ledger as it is kept (compact, indexed, paged,
//!   optionally bounded), its bodies packed by [`compact_json`].
//! - `providers`: each provider's own business rules (charge, send, …).
//! - [`negotiation`]: what a request's `Accept` and `Content-Type` say, for
//!   every front door (this crate's and the web lab's).
//! - [`cross_site`]: no state change from another site's pages and no answer
//!   to a rebound name, for every front door too.
//! - [`routes`]: the method and path of each operation (router and clients).
//! - [`http`]: the axum routes and HTML pages; [`serve`]: the server loop that
//!   can drop a connection unanswered; [`style`]: the one stylesheet and page
//!   shell (this crate's pages and the web lab's).
//! - [`clock`]: wall or manual time; [`ids`]: `ch_1a2b3c4d`-style ids.
//! - `memory`: freed memory given back to the system after a reset.
//! - [`cli`]: `fake-services` / `lab fakes`.

pub mod books;
pub mod call_log;
pub mod cli;
pub mod clock;
pub mod compact_json;
pub mod cross_site;
pub mod fakes;
pub mod fault_rules;
pub mod http;
pub mod idempotency;
pub mod idempotency_key;
pub mod ids;
pub mod ledger;
mod memory;
pub mod metrics;
pub mod negotiation;
mod providers;
pub mod routes;
pub mod rule_words;
pub mod serve;
pub mod service;
pub mod style;
pub mod watch;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use fakes::{Call, ClientFaults, ClientSlow, FakeServices, Reply, Response};
pub use fault_rules::{BehaviorSpec, FaultSpec, Mode};
pub use ledger::{Record, Told};
pub use routes::Route;
pub use service::{Operation, Service};
pub use watch::{Activity, EffectWatcher, FiredFault, Pause};

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    init_tracing_at("info");
}

/// Logs to stderr, filtered by `RUST_LOG`, else by `default` (`warn`, …).
pub fn init_tracing_at(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
