//! Runs a scenario: a fresh lab (in-memory SQLite store, memory queue,
//! in-process fake services, one virtual clock; see [`world`](super::world)),
//! the orders placed, the jobs run until nothing is left to do (the drive
//! loop, here), then the checker reads what happened.
//!
//! Jobs run in lockstep batches of up to `concurrency` jobs. Between batches
//! virtual time jumps to the next due retry (or past a dead process's
//! heartbeat timeout). Within a batch the clock is also the scheduler
//! ([`Turns`](super::turns::Turns)): one task runs at a time and the seed picks who goes next at
//! each call to a service, so a run is a function of its seed. A full retry
//! schedule of weeks takes milliseconds.

use std::time::Instant;

use fake_services::Clock;

use super::format::{Fault, Scenario};
use super::result::{Run, ScenarioResult};
pub use super::run_options::RunOptions;
use super::sweep_ticks::SweepTicks;
use super::timeline::Timeline;
use super::world::{place_orders, setup, World};
use crate::checker::{self, Snapshot, Verdict};
use crate::pipeline::{relay_outbox, Step};
use crate::runner::{Fetch, FetchMode, JobOutcome, JobSet, Runner};

/// Runs `scenario` (once, or once per step for `step = "every"`).
pub async fn run(scenario: &Scenario, options: &RunOptions) -> ScenarioResult {
    let started = Instant::now();
    let every = scenario
        .faults
        .iter()
        .any(|f| matches!(f, Fault::WorkerDies { step: None, .. }));
    let steps: Vec<Option<Step>> = if every {
        Step::ALL.iter().copied().map(Some).collect()
    } else {
        vec![None]
    };
    let mut runs = Vec::new();
    for step in steps {
        runs.push(run_once(scenario, options, step).await);
    }
    ScenarioResult {
        name: scenario.name.clone(),
        path: scenario.path.as_ref().map(|p| p.display().to_string()),
        runs,
        elapsed_ms: started.elapsed().as_millis() as u64,
    }
}

async fn run_once(scenario: &Scenario, options: &RunOptions, every_step: Option<Step>) -> Run {
    let world = match setup(scenario, options, every_step).await {
        Ok(world) => world,
        Err(err) => return failed_setup(every_step, err),
    };
    let start_ms = world.clock.now_ms();
    let ticks = place_orders(scenario, &world).await;
    let unfinished = drive(&world, ticks, start_ms + options.deadline_ms).await;
    let snapshot = Snapshot::capture(
        &world.shop.store,
        &world.fakes,
        world.backend.as_ref(),
        world.runners[0].history().attempts(),
    )
    .await;
    let verdict = checker::verdict(
        &scenario.expect,
        checker::check(&scenario.expect, &snapshot),
    );
    let virtual_ms = world.clock.now_ms() - start_ms;
    world.tear_down().await;
    Run {
        step: every_step,
        verdict,
        unfinished,
        virtual_ms,
        snapshot,
        timeline: Timeline::default(),
        logs: Vec::new(),
    }
}

fn failed_setup(step: Option<Step>, err: String) -> Run {
    Run {
        step,
        verdict: Verdict::failed(format!("the lab could not be set up: {err}")),
        unfinished: Some(err),
        virtual_ms: 0,
        snapshot: Snapshot::default(),
        timeline: Timeline::default(),
        logs: Vec::new(),
    }
}

/// Runs jobs until nothing is left to do or the deadline passes; returns
/// what was still pending at the deadline.
async fn drive(world: &World, mut ticks: SweepTicks, deadline_ms: u64) -> Option<String> {
    let config = world.runners[0].config().clone();
    let mut identities = world.identities.clone();
    // When the jobs of a reliable process that died can be recovered: once
    // its heartbeat has expired.
    let mut recover_at: Option<u64> = None;
    // Whether the outbox may hold rows to relay: placing the orders may
    // have left some (a queue outage), and only placing writes the outbox,
    // so once a relay has found it empty the store is not asked again, each
    // turn or before the run ends (a one-order run made 6 such statements
    // of its 30). Relaying an empty outbox changes nothing, so the run is
    // the same either way. Were a job ever to write the outbox, its rows
    // would not be lost silently: the snapshot reads the pending outbox and
    // the checker reports each order whose job is still there.
    let mut outbox_dirty = true;
    let mut turn = 0;
    loop {
        let now = world.clock.now_ms();
        if now > deadline_ms {
            return Some(pending_summary(world).await);
        }
        for (runner, identity) in world.runners.iter().zip(&identities) {
            beat(runner, identity, now).await;
        }
        // While the queue is down a relay only claims its rows and gives
        // them back (every push fails): skipped, it changes nothing.
        let queue_up = now >= world.queue_up_at_ms;
        if outbox_dirty && queue_up {
            let relayed = relay_outbox(&world.shop, world.runners[0].client()).await;
            // A relay that found nothing to move: nothing is left.
            outbox_dirty = !matches!(relayed, Ok(0));
        }
        ticks.tick(&world.runners[0], now).await;
        let _ = world.backend.enqueue_due(now).await;
        let _ = world
            .backend
            .recover_expired(now, config.process_ttl_ms)
            .await;
        if recover_at.is_some_and(|at| now >= at) {
            recover_at = None;
        }
        // A batch: up to `concurrency` jobs, the runners taking turns.
        let mut batch = Vec::new();
        for slot in 0..world.concurrency {
            let which = (turn + slot) % world.runners.len();
            let runner = &world.runners[which];
            let fetched = world
                .backend
                .fetch(&Fetch::new(
                    &config.queues,
                    runner.config().fetch,
                    &identities[which],
                ))
                .await;
            if let Ok(Some(job)) = fetched {
                batch.push((which, job));
            }
        }
        turn += 1;
        if batch.is_empty() {
            // The first of: a retry or scheduled job due, a dead process's
            // jobs recoverable, the outbox relayable, the scheduler's tick.
            let due = world.backend.next_due_ms().await.ok().flatten();
            let relay = match (outbox_dirty, queue_up) {
                (true, true) => outbox_retry_at(world, now).await,
                (true, false) => Some(world.queue_up_at_ms),
                (false, _) => None,
            };
            let next = [due, recover_at, relay, ticks.next_ms()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(at) => world.clock.advance_to(at.max(now + 1)).await,
                None => return None,
            }
            continue;
        }
        let runs = batch
            .iter()
            .map(|(which, job)| world.runners[*which].perform(job.clone(), &identities[*which]));
        let outcomes = world.clock.run_all(runs.collect()).await;
        for ((which, _), outcome) in batch.iter().zip(outcomes) {
            if outcome == JobOutcome::Died {
                // The process is gone; a new one takes its place.
                if world.runners[*which].config().fetch == FetchMode::Reliable {
                    recover_at = Some(world.clock.now_ms() + config.process_ttl_ms + 1);
                }
                identities[*which] = world.runners[*which].new_identity();
            }
        }
    }
}

/// When pending outbox rows could next be relayed: after the queue outage.
async fn outbox_retry_at(world: &World, now: u64) -> Option<u64> {
    let pending = world.shop.store.pending_outbox(1).await.ok()?;
    (!pending.is_empty()).then_some(now + 1_000)
}

/// What is still pending, for a run that hit its deadline.
async fn pending_summary(world: &World) -> String {
    let count = |set| async move {
        world
            .backend
            .set_entries(set)
            .await
            .map_or(0, |entries| entries.len())
    };
    let waiting = world.backend.waiting_jobs().await.map_or(0, |j| j.len());
    format!(
        "the run did not settle before the deadline: {waiting} job(s) queued or in progress, {} waiting to retry, {} scheduled",
        count(JobSet::Retry).await,
        count(JobSet::Schedule).await,
    )
}

async fn beat(runner: &Runner, identity: &str, now: u64) {
    let info = runner.process_info(identity, now, now, 0);
    let _ = runner.backend().heartbeat(info, Vec::new()).await;
}
