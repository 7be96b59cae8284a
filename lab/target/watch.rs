//! What a target run watches of the fake services: the worker kills that
//! are due (the [`Killer`]), and every fault the rules fire, with its time
//! and the request it fired on — a crash leaves no ledger record, so this
//! is how the report can say when each one happened and to which order.

use std::sync::Mutex;
use std::time::Instant;

use fake_services::{EffectWatcher, FiredFault, Pause, Record, Service};
use serde_json::Value;

use super::kills::Killer;

/// One fault that fired.
#[derive(Debug, Clone)]
pub struct Fired {
    /// Milliseconds since the run started.
    pub at_ms: u64,
    pub service: Service,
    pub operation: &'static str,
    /// `crash (rule 0)`, `slow 3000 ms`.
    pub what: String,
    /// The request it fired on.
    pub request: Value,
}

/// The run's watcher on the fake services.
pub struct RunWatch {
    killer: Killer,
    started: Instant,
    fired: Mutex<Vec<Fired>>,
}

impl RunWatch {
    pub fn new(killer: Killer, started: Instant) -> RunWatch {
        RunWatch {
            killer,
            started,
            fired: Mutex::new(Vec::new()),
        }
    }

    /// Every fault fired so far, oldest first.
    pub fn fired(&self) -> Vec<Fired> {
        self.fired.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl EffectWatcher for RunWatch {
    fn performed(&self, record: &Record) -> Option<Pause> {
        self.killer.performed(record)
    }

    fn fault_fired(&self, fired: &FiredFault<'_>) {
        let entry = Fired {
            at_ms: self.started.elapsed().as_millis() as u64,
            service: fired.service,
            operation: fired.operation,
            what: fired.what.to_string(),
            request: fired.request.clone(),
        };
        self.fired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(entry);
    }
}
