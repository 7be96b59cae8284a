//! Worker deaths against a target: `worker = "die-after"`, `step =
//! "charge"`. The moment the fake service has performed the effect (the
//! first time, or the `calls`-th), and before the app hears the answer, the
//! lab kills every `role = "worker"` process — the window in which a real
//! crash leaves an effect done that the app does not know of.
//!
//! [`Killer`] is the fake services' [`EffectWatcher`]: it counts performed
//! effects, and when a planned death is due it asks the run loop (which
//! owns the processes) to kill, and holds the provider's answer until the
//! kill is done.

use std::sync::Mutex;
use std::time::Duration;

use fake_services::{EffectWatcher, Pause, Record, Service};
use tokio::sync::{mpsc, oneshot};

/// One planned death.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedKill {
    /// The service whose effect it follows.
    pub service: Service,
    /// After the effect's `calls`-th performance (1: the first).
    pub calls: u64,
    /// The workers come back this long after the kill.
    pub restart_after_ms: u64,
}

/// A kill the run loop is asked for; it answers on `done` once every
/// worker process is dead.
#[derive(Debug)]
pub struct KillOrder {
    pub kill: PlannedKill,
    /// The record of the effect that triggered it (`ch_…`).
    pub record_id: String,
    pub done: oneshot::Sender<()>,
}

/// The longest the provider's answer waits for a kill: a run loop that is
/// gone must not hang the fake services.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// Counts performed effects and sends the planned kills when they are due.
pub struct Killer {
    state: Mutex<State>,
    orders: mpsc::UnboundedSender<KillOrder>,
}

struct State {
    /// Each planned kill, and whether it has fired.
    plan: Vec<(PlannedKill, bool)>,
    /// Effects performed so far, per service: the services tell them under
    /// the ledger's lock, so the `calls`-th is the ledger's `calls`-th.
    performed: Vec<(Service, u64)>,
}

impl Killer {
    /// A killer for `plan`, and the receiving end the run loop reads.
    pub fn new(plan: Vec<PlannedKill>) -> (Killer, mpsc::UnboundedReceiver<KillOrder>) {
        let (orders, receiver) = mpsc::unbounded_channel();
        let killer = Killer {
            state: Mutex::new(State {
                plan: plan.into_iter().map(|k| (k, false)).collect(),
                performed: Vec::new(),
            }),
            orders,
        };
        (killer, receiver)
    }
}

impl EffectWatcher for Killer {
    fn performed(&self, record: &Record) -> Option<Pause> {
        if !record.is_success() {
            return None;
        }
        let due = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let n = match state
                .performed
                .iter_mut()
                .find(|(s, _)| *s == record.service)
            {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    state.performed.push((record.service, 1));
                    1
                }
            };
            let due = state
                .plan
                .iter_mut()
                .find(|(kill, fired)| !*fired && kill.service == record.service && kill.calls == n);
            due.map(|(kill, fired)| {
                *fired = true;
                *kill
            })
        }?;
        let (done, killed) = oneshot::channel();
        let order = KillOrder {
            kill: due,
            record_id: record.id.clone(),
            done,
        };
        if self.orders.send(order).is_err() {
            return None;
        }
        Some(Box::pin(async move {
            let _ = tokio::time::timeout(KILL_WAIT, killed).await;
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fake_services::{Call, FakeServices, Operation};
    use serde_json::json;
    use std::sync::Arc;

    fn charge(order: u32) -> Call {
        Call::new(
            Service::Payments,
            Operation::Effect,
            json!({"amount_cents": 500, "metadata": {"order_id": order}}),
        )
    }

    #[tokio::test]
    async fn the_kill_comes_after_the_nth_effect_and_before_its_answer() {
        let fakes = FakeServices::new();
        let (killer, mut orders) = Killer::new(vec![PlannedKill {
            service: Service::Payments,
            calls: 2,
            restart_after_ms: 500,
        }]);
        let killer = Arc::new(killer);
        fakes.watch_effects(killer.clone());

        // The first charge is answered at once: the kill is for the second.
        let first = fakes.call(charge(1)).await;
        assert_eq!(first.response().map(|r| r.status), Some(201));
        assert!(orders.try_recv().is_err());
        // A declined charge is no effect performed.
        let declined = Call::new(
            Service::Payments,
            Operation::Effect,
            json!({"amount_cents": 9999, "metadata": {"order_id": 9}}),
        );
        fakes.call(declined).await;
        assert!(orders.try_recv().is_err());

        let second = tokio::spawn({
            let fakes = fakes.clone();
            async move { fakes.call(charge(2)).await }
        });
        let order = orders.recv().await.expect("a kill order");
        assert_eq!(order.kill.calls, 2);
        assert_eq!(
            fakes.ledger(Service::Payments).last().map(|r| r.id.clone()),
            Some(order.record_id.clone()),
            "the effect is in the ledger before the kill"
        );
        assert!(!second.is_finished(), "the answer waits for the kill");
        order.done.send(()).unwrap();
        let answer = second.await.unwrap();
        assert_eq!(answer.response().map(|r| r.status), Some(201));

        // Fired once: a third charge is answered without a kill.
        fakes.call(charge(3)).await;
        assert!(orders.try_recv().is_err());
    }
}
