//! [`Lab`]: one running lab — store, provider clients, runner and the
//! background loops (worker processes, outbox relay, reminder scheduler) —
//! as `lab serve` and the web pages use it.

use std::sync::Arc;
use std::time::Duration;

use fake_services::SharedClock;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clients::ProviderClients;
use crate::pipeline::{self, relay_outbox, reminders, Knobs, Shop, WorkerDeaths};
use crate::runner::{Backend, Runner, RunnerConfig};
use crate::store::Store;

/// How often the outbox relay looks for rows the immediate relay missed, in
/// the clock's milliseconds (before the time scale).
pub const OUTBOX_POLL_MS: u64 = 1_000;

/// What a lab is made of.
pub struct LabParts {
    pub store: Store,
    pub clients: ProviderClients,
    pub backend: Arc<dyn Backend>,
    pub clock: SharedClock,
    pub knobs: Knobs,
    pub runner: RunnerConfig,
    /// Where the fake services answer, for the status block and the links.
    pub fakes_url: String,
}

/// A lab: cheap to clone, every clone the same lab.
#[derive(Clone)]
pub struct Lab {
    pub shop: Arc<Shop>,
    pub runner: Runner,
    pub fakes_url: String,
}

/// The background loops of a started lab.
pub struct Running {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Lab {
    pub fn new(parts: LabParts) -> Self {
        let shop = Arc::new(Shop {
            store: parts.store,
            clients: parts.clients,
            knobs: parts.knobs,
            deaths: WorkerDeaths::none(),
            clock: parts.clock,
            sweep_overlap: None,
        });
        let runner = pipeline::runner(&shop, parts.backend, parts.runner);
        Self {
            shop,
            runner,
            fakes_url: parts.fakes_url,
        }
    }

    /// Starts the worker processes (restarted when one dies), the outbox
    /// relay and the reminder scheduler.
    pub fn start(&self) -> Running {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn({
            let runner = self.runner.clone();
            let mut stopped = stopped.clone();
            async move {
                runner
                    .supervise(async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    })
                    .await;
            }
        }));
        tasks.push(tokio::spawn(every(
            self.scaled_ms(OUTBOX_POLL_MS),
            stopped.clone(),
            self.clone(),
            |lab| async move {
                if let Err(err) = relay_outbox(&lab.shop, lab.runner.client()).await {
                    tracing::warn!(%err, "outbox relay failed");
                }
            },
        )));
        tasks.push(tokio::spawn(every(
            self.scaled_ms(reminders::SWEEP_EVERY_MS),
            stopped,
            self.clone(),
            |lab| async move {
                if let Err(err) = reminders::schedule_sweep(lab.runner.client()).await {
                    tracing::warn!(%err, "could not enqueue the reminder sweep");
                }
            },
        )));
        Running { stop, tasks }
    }

    /// `ms` of Sidekiq time in this lab's time (the runner's time scale).
    pub fn scaled_ms(&self, ms: u64) -> u64 {
        let scale = self.runner.config().retry.time_scale;
        ((ms as f64 * scale).round() as u64).max(1)
    }

    /// Forgets every order, job and reminder; the seed data comes back.
    pub async fn reset(&self) -> Result<(), crate::store::StoreError> {
        self.shop.store.reset().await?;
        if let Err(err) = self.runner.backend().clear().await {
            tracing::warn!(%err, "could not clear the queues");
        }
        self.runner.history().clear();
        Ok(())
    }
}

impl Running {
    /// Stops the loops; worker processes stop gracefully (running jobs get the
    /// shutdown timeout, then go back to their queues).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
    }
}

/// Runs `tick` every `period_ms` of the lab's clock until stopped.
async fn every<F, Fut>(period_ms: u64, mut stopped: watch::Receiver<bool>, lab: Lab, tick: F)
where
    F: Fn(Lab) -> Fut,
    Fut: std::future::Future<Output = ()> + Send,
{
    loop {
        let stop = tokio::select! {
            result = stopped.wait_for(|s| *s) => { drop(result); true }
            () = lab.shop.clock.sleep(period_ms) => false,
        };
        if stop {
            return;
        }
        tick(lab.clone()).await;
    }
}
