//! What a harness outside the services sees of the calls: the moment each
//! effect is performed, and whether the services are quiet.
//!
//! `lab check --target` kills an app's worker processes "after the charge":
//! after the provider has performed the effect and before the client hears
//! the answer, the window in which a real crash makes a retry charge again.
//! Only the services know that moment, so they offer it: an
//! [`EffectWatcher`] is called with each performed effect's record and may
//! hold the answer back (a [`Pause`]) while it acts. And a target run has
//! settled when no call has been in flight for a while, which
//! [`Activity`] says.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::clock::SharedClock;
use crate::ledger::Record;

/// A wait the answer to a call is held back by.
pub type Pause = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Told of each effect the moment the provider has performed it (its record
/// is in the ledger), before the client is answered; and of each fault the
/// service's rules fire, as it is decided.
pub trait EffectWatcher: Send + Sync {
    /// The record just written, told while the service's ledger is still
    /// locked: a watcher hears of one service's effects in its ledger's
    /// order (its second is the ledger's second), even when calls run
    /// concurrently. So it must be quick and must not call the services
    /// (that would wait on the lock it is told under); a returned pause is
    /// awaited, with the lock let go, before the answer goes out.
    fn performed(&self, record: &Record) -> Option<Pause>;

    /// A rule fired on a call (a crash leaves no record, so this is the
    /// only trace of it).
    fn fault_fired(&self, fired: &FiredFault<'_>) {
        let _ = fired;
    }
}

/// A fault a rule fired on one call.
#[derive(Debug, Clone, Copy)]
pub struct FiredFault<'a> {
    pub service: crate::Service,
    /// The call's operation name (`charge`, `send`, `search`, …).
    pub operation: &'static str,
    /// The mode and rule, as the rule's error body names them: `crash (rule
    /// 0)`; or `slow 3000 ms` for the rules' added latency.
    pub what: &'a str,
    /// The request body, for the order it names.
    pub request: &'a serde_json::Value,
}

/// Whether calls are under way, and when the last one ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    /// Calls started and not yet answered.
    pub in_flight: usize,
    /// The services' clock when a call last started or ended (0: never).
    pub last_call_ms: u64,
    /// Calls started since the services were made or reset.
    pub calls: u64,
}

/// The counters behind [`Activity`], shared by every call.
#[derive(Default)]
pub(crate) struct Counters {
    in_flight: AtomicUsize,
    last_call_ms: AtomicU64,
    calls: AtomicU64,
}

impl Counters {
    /// A call starts; the guard ends it when dropped (answered or abandoned).
    pub(crate) fn begin(self: &Arc<Self>, clock: &SharedClock) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.last_call_ms
            .fetch_max(clock.now_ms(), Ordering::SeqCst);
        InFlight {
            counters: self.clone(),
            clock: clock.clone(),
        }
    }

    pub(crate) fn view(&self) -> Activity {
        Activity {
            in_flight: self.in_flight.load(Ordering::SeqCst),
            last_call_ms: self.last_call_ms.load(Ordering::SeqCst),
            calls: self.calls.load(Ordering::SeqCst),
        }
    }

    pub(crate) fn reset(&self) {
        self.calls.store(0, Ordering::SeqCst);
    }
}

/// One call under way.
pub(crate) struct InFlight {
    counters: Arc<Counters>,
    clock: SharedClock,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.counters
            .last_call_ms
            .fetch_max(self.clock.now_ms(), Ordering::SeqCst);
        self.counters.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}
