//! One scenario against a target, start to finish: fresh fake services (and
//! a private Redis when a template asks for one), the app's processes
//! started and waited for, the faults applied, the orders placed, worker
//! processes killed and restarted when the fakes say, Sidekiq's retries
//! moved at once, the run settled, the ledgers checked, everything stopped.
//!
//! The loop that owns the processes is one task: kills, restarts, fast
//! retries, the check for a process that died by itself and the settle
//! check all happen in it, between short naps, so none races another.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_services::http::HttpOptions;
use fake_services::serve::RunningServer;
use fake_services::{BehaviorSpec, FakeServices, Service, SystemClock};

use super::file::{Effect, PlaceOrder, Role, Target};
use super::kills::{KillOrder, Killer, PlannedKill};
use super::place::{self, OrderRequest, Placement};
use super::processes::{free_port, AppProcess, ProcessConfig};
use super::redis_proxy::{ProxyEvent, ProxyOptions, RedisProxy};
use super::redis_server::PrivateRedis;
use super::scenario_rules::{Death, TargetPlan};
use super::settle;
use super::sidekiq::{failed, SidekiqView};
use super::story;
use super::template::Vars;
use super::watch::RunWatch;
use crate::checker::effects::{CHARGES, EMAILS, FULFILLMENTS};
use crate::checker::{self, Snapshot, TargetEffect, TargetRun, Verdict};
use crate::pipeline::Step;
use crate::scenario::result::{Run, ScenarioResult};
use crate::scenario::timeline::Timeline;
use crate::scenario::{Fault, Scenario};

/// How often the loop looks at the processes, the retries and the quiet.
const TICK: Duration = Duration::from_millis(25);
/// How long a process's `ready` URL is polled.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How long one order's placement may take.
const PLACE_WITHIN: Duration = Duration::from_secs(30);
/// Log lines quoted when a process fails.
const LOG_LINES: usize = 12;

/// How target runs go, beyond the target and the scenario.
#[derive(Debug, Clone, Default)]
pub struct TargetOptions {
    /// Where the logs of runs that did not end as expected are kept (each
    /// run in a folder of its own); default: the system's temporary folder.
    pub logs: Option<PathBuf>,
    /// The fake services' seed (their ids, their random faults) for the
    /// scenarios that do not set their own.
    pub seed: u64,
}

/// Runs a scenario against a target: once, or once per effect for
/// `step = "every"`.
pub async fn run(
    target: &Target,
    scenario: &Scenario,
    plan: &TargetPlan,
    options: &TargetOptions,
) -> ScenarioResult {
    let started = Instant::now();
    let every = scenario
        .faults
        .iter()
        .any(|f| matches!(f, Fault::WorkerDies { step: None, .. }));
    let mut runs = Vec::new();
    for deaths in &plan.runs {
        let step = every
            .then(|| deaths.first().map(|d| step_of(d.effect)))
            .flatten();
        runs.push(run_once(target, scenario, plan, deaths, step, options).await);
    }
    ScenarioResult {
        name: scenario.name.clone(),
        path: scenario.path.as_ref().map(|p| p.display().to_string()),
        runs,
        elapsed_ms: started.elapsed().as_millis() as u64,
    }
}

fn step_of(effect: Effect) -> Step {
    match effect {
        Effect::Charge => Step::Charge,
        Effect::Email => Step::Email,
        Effect::Fulfillment => Step::Fulfillment,
    }
}

/// The effects of a target, with its `[match]`, for the checker.
pub fn target_effects(target: &Target) -> Vec<TargetEffect> {
    [
        (Effect::Charge, &CHARGES, &target.matches.charge),
        (Effect::Email, &EMAILS, &target.matches.email),
        (
            Effect::Fulfillment,
            &FULFILLMENTS,
            &target.matches.fulfillment,
        ),
    ]
    .into_iter()
    .map(|(effect, counted, at)| TargetEffect {
        effect: counted,
        order_at: at.clone(),
        required: target.effects.contains(&effect),
    })
    .collect()
}

/// One of the app's processes, as the run keeps it.
struct Running {
    name: String,
    /// `role = "worker"`: killed by worker faults, and restarted.
    worker: bool,
    process: AppProcess,
    /// Its `ready` URL, filled in, waited for again after a restart.
    ready: Option<String>,
}

/// Everything a run started, so it can all be stopped.
struct Lab {
    started: Instant,
    /// Epoch ms of `started`, to put ledger times on the run's axis.
    started_epoch_ms: u64,
    fakes: FakeServices,
    server: Option<RunningServer>,
    redis: Option<PrivateRedis>,
    /// Between the app and `redis`: the queue faults happen in it.
    proxy: Option<RedisProxy>,
    proxy_events: Option<tokio::sync::mpsc::UnboundedReceiver<ProxyEvent>>,
    /// The Redis's log, kept when the Redis is gone.
    redis_log: Option<PathBuf>,
    processes: Vec<Running>,
    sidekiq: Option<SidekiqView>,
    timeline: Timeline,
    logs_dir: PathBuf,
}

impl Lab {
    fn at_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn log_files(&self) -> Vec<(String, String)> {
        let mut logs: Vec<(String, String)> = self
            .processes
            .iter()
            .map(|r| (r.name.clone(), r.process.log_path().display().to_string()))
            .collect();
        if let Some(path) = &self.redis_log {
            logs.push(("redis".into(), path.display().to_string()));
        }
        logs
    }

    /// Every process's last log lines, for a failure the app may explain.
    fn last_lines(&self) -> String {
        self.processes
            .iter()
            .map(|r| {
                format!(
                    "  the last log lines of {}:\n{}",
                    r.name,
                    quote(&r.process.last_log_lines(LOG_LINES))
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A process that exited by itself, with its last log lines.
    fn exited(&mut self) -> Option<String> {
        for r in &mut self.processes {
            if let Some(status) = r.process.exited() {
                return Some(format!(
                    "process {} {status} by itself during the run; its last log lines:\n{}",
                    r.name,
                    quote(&r.process.last_log_lines(LOG_LINES))
                ));
            }
        }
        None
    }

    /// Stops every process at once (SIGTERM, SIGKILL 5 s later), then the
    /// Redis and the fakes: a Sidekiq that is idle takes its fetch's 2 s to
    /// go, and nothing is gained by waiting for one process after another.
    async fn stop(&mut self) {
        futures::future::join_all(self.processes.iter_mut().map(|r| r.process.stop())).await;
        if let Some(proxy) = self.proxy.take() {
            proxy.stop().await;
        }
        if let Some(mut redis) = self.redis.take() {
            redis.stop().await;
        }
        if let Some(server) = self.server.take() {
            let _ = server.shutdown().await;
        }
    }
}

fn quote(lines: &[String]) -> String {
    if lines.is_empty() {
        return "    (nothing)".into();
    }
    lines
        .iter()
        .map(|l| format!("    | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn run_once(
    target: &Target,
    scenario: &Scenario,
    plan: &TargetPlan,
    deaths: &[Death],
    step: Option<Step>,
    options: &TargetOptions,
) -> Run {
    let logs_dir = match logs_folder(options, scenario, step) {
        Ok(dir) => dir,
        Err(err) => return failed_run(step, err),
    };
    let seed = scenario.seed.unwrap_or(options.seed);
    let fakes = FakeServices::with_clock(Arc::new(SystemClock), seed);
    let (killer, kill_orders) = Killer::new(
        deaths
            .iter()
            .map(|d| PlannedKill {
                service: d.effect.service(),
                calls: d.calls,
                restart_after_ms: d.restart_after_ms,
            })
            .collect(),
    );
    let started = Instant::now();
    let watch = Arc::new(RunWatch::new(killer, started));
    fakes.watch_effects(watch.clone());
    let mut lab = Lab {
        started,
        started_epoch_ms: settle::now_epoch_ms(),
        fakes: fakes.clone(),
        server: None,
        redis: None,
        proxy: None,
        proxy_events: None,
        redis_log: None,
        processes: Vec::new(),
        sidekiq: None,
        timeline: Timeline::default(),
        logs_dir: logs_dir.clone(),
    };
    let (placed, unfinished) = match drive(&mut lab, target, plan, kill_orders).await {
        Ok(outcome) => outcome,
        Err(why) => (Vec::new(), Some(why)),
    };
    let snapshot = capture(&lab).await;
    lab.stop().await;
    let end_ms = lab.at_ms();
    story::add_what_happened(
        &mut lab.timeline,
        &story::Axis {
            started_epoch_ms: lab.started_epoch_ms,
            end_ms,
        },
        &target_effects(target),
        &snapshot,
        &watch.fired(),
        &lab.fakes,
    );
    let effects = target_effects(target);
    let mut verdict = match &unfinished {
        Some(why) if placed.is_empty() => Verdict::failed(why.clone()),
        _ => {
            let run = TargetRun {
                snapshot: &snapshot,
                placed: &placed,
                effects: &effects,
            };
            checker::verdict(
                &scenario.expect,
                checker::check_target(&scenario.expect, &run),
            )
        }
    };
    verdict.job_history = false;
    let passed = unfinished.is_none() && verdict.passed;
    let logs = if passed {
        let _ = std::fs::remove_dir_all(&logs_dir);
        Vec::new()
    } else {
        lab.log_files()
    };
    Run {
        step,
        verdict,
        unfinished,
        virtual_ms: lab.at_ms(),
        snapshot,
        timeline: lab.timeline,
        logs,
    }
}

/// A run that could not even begin (no folder for its logs).
fn failed_run(step: Option<Step>, err: String) -> Run {
    Run {
        step,
        verdict: Verdict::failed(err.clone()),
        unfinished: Some(err),
        virtual_ms: 0,
        snapshot: Snapshot::default(),
        timeline: Timeline::default(),
        logs: Vec::new(),
    }
}

/// A fresh folder for the run's logs: `<logs>/<scenario file>[-<step>]-<n>`.
fn logs_folder(
    options: &TargetOptions,
    scenario: &Scenario,
    step: Option<Step>,
) -> Result<PathBuf, String> {
    let base = options
        .logs
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("idemlab-target-logs"));
    std::fs::create_dir_all(&base)
        .map_err(|e| format!("cannot make the log folder {}: {e}", base.display()))?;
    let stem = scenario
        .path
        .as_deref()
        .and_then(Path::file_stem)
        .map_or_else(
            || "scenario".to_string(),
            |s| s.to_string_lossy().into_owned(),
        );
    let prefix = match step {
        Some(step) => format!("{stem}-{}-", step.name()),
        None => format!("{stem}-"),
    };
    tempfile::Builder::new()
        .prefix(&prefix)
        .tempdir_in(&base)
        .map(|dir| dir.keep())
        .map_err(|e| format!("cannot make a log folder in {}: {e}", base.display()))
}

/// Starts everything, places the orders and waits until the run settles.
/// Returns the placed orders' ids and, when it did not settle, why; an
/// error when the run could not go on (a process failed, an order could
/// not be placed).
async fn drive(
    lab: &mut Lab,
    target: &Target,
    plan: &TargetPlan,
    mut kill_orders: tokio::sync::mpsc::UnboundedReceiver<KillOrder>,
) -> Result<(Vec<String>, Option<String>), String> {
    let server = RunningServer::start(
        ([127, 0, 0, 1], 0).into(),
        fake_services::http::router(lab.fakes.clone(), HttpOptions::default()),
    )
    .await
    .map_err(|e| format!("cannot start the fake services: {e}"))?;
    let fakes_url = server.url();
    lab.server = Some(server);
    if target.uses_redis() {
        let redis = PrivateRedis::start(&lab.logs_dir).await?;
        lab.redis_log = Some(redis.log_path().to_path_buf());
        let upstream = ([127, 0, 0, 1], redis.port()).into();
        lab.redis = Some(redis);
        let queue_prefix = match target.sidekiq.as_ref().and_then(|s| s.namespace.as_deref()) {
            Some(namespace) => format!("{namespace}:queue:"),
            None => "queue:".to_string(),
        };
        let proxy = RedisProxy::start(upstream, ProxyOptions { queue_prefix })
            .await
            .map_err(|e| format!("cannot start the lab's Redis proxy: {e}"))?;
        proxy.set_duplicate(plan.queue.duplicate);
        lab.proxy_events = Some(proxy.events());
        lab.proxy = Some(proxy);
    }
    // The app reaches its Redis through the proxy; the lab's own reads
    // (settling, fast retries) go to the Redis itself, so a queue fault
    // never blinds the lab.
    let redis_url = lab.proxy.as_ref().map(RedisProxy::url);
    let direct_redis_url = lab.redis.as_ref().map(PrivateRedis::url);
    let ports: Vec<(String, u16)> = target
        .processes
        .iter()
        .map(|p| (p.name.clone(), free_port()))
        .collect();
    let dir = target.dir_text();
    let run_dir = lab.logs_dir.display().to_string();
    let lab_binary = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "lab".into());
    let base = Vars {
        fakes: &fakes_url,
        redis: redis_url.as_deref(),
        ports: &ports,
        own: None,
        dir: &dir,
        run_dir: &run_dir,
        lab: &lab_binary,
        n: None,
        quantity: None,
    };
    let common_env: Vec<(String, String)> = target
        .env
        .iter()
        .map(|(k, t)| (k.clone(), t.fill(&base)))
        .collect();

    // The app's processes, in file order, each waited for.
    for spec in &target.processes {
        let own = Vars {
            own: Some(&spec.name),
            ..base
        };
        let mut env = common_env.clone();
        env.extend(spec.env.iter().map(|(k, t)| (k.clone(), t.fill(&own))));
        let config = ProcessConfig {
            name: spec.name.clone(),
            argv: spec.command.iter().map(|t| t.fill(&own)).collect(),
            env,
            cwd: target.dir.clone(),
            log: lab.logs_dir.join(format!("{}.log", spec.name)),
        };
        let mut process = AppProcess::start(config)?;
        let ready = spec.ready.as_ref().map(|t| t.fill(&own));
        if let Some(url) = &ready {
            process.wait_ready(url, READY_WITHIN).await?;
        }
        let at = lab.at_ms();
        lab.timeline.add(
            at,
            None,
            format!("process {} up (pid {})", spec.name, process.pid()),
        );
        lab.processes.push(Running {
            name: spec.name.clone(),
            worker: spec.role == Some(Role::Worker),
            process,
            ready,
        });
    }
    if let Some(sidekiq) = &target.sidekiq {
        let url = sidekiq.redis.fill(&Vars {
            redis: direct_redis_url.as_deref(),
            ..base
        });
        lab.sidekiq = Some(SidekiqView::connect(&url, sidekiq.namespace.as_deref()).await?);
    }

    // The faults, per service in file order.
    let mut behaviors: BTreeMap<Service, BehaviorSpec> = BTreeMap::new();
    for (service, rule, lag) in &plan.service_faults {
        let spec = behaviors.entry(*service).or_default();
        if let Some(rule) = rule {
            spec.faults.push(rule.clone());
        }
        if let Some(lag) = lag {
            spec.search_lag_ms = *lag;
        }
    }
    for (service, spec) in behaviors {
        lab.fakes
            .set_behavior(service, spec)
            .map_err(|e| format!("the {service} fault rules were refused: {}", e.error))?;
    }

    // The orders, placed one after another on a task of their own while
    // this loop handles kills (a web process may charge inline).
    let requests: Vec<(u32, OrderRequest)> = plan
        .orders
        .iter()
        .map(|&(n, quantity)| {
            let filled = Vars {
                n: Some(n),
                quantity: Some(quantity),
                ..base
            };
            (n, order_request(target, &filled, &common_env))
        })
        .collect();
    let id_kind = target.id.clone();
    if let Some(for_ms) = plan.queue.down_for_ms {
        // The outage is for the orders and the jobs, not the app's boot: a
        // worker that cannot reach Redis as it starts may just exit.
        workers_connected(lab, target).await;
        if let Some(proxy) = &lab.proxy {
            proxy.down_for(Duration::from_millis(for_ms)).await;
        }
    }
    let mut placing = tokio::spawn(async move {
        let mut placements = Vec::new();
        for (n, request) in requests {
            let placement = place::place(&request, &id_kind, n, PLACE_WITHIN).await?;
            placements.push((n, placement, Instant::now()));
        }
        Ok::<_, String>(placements)
    });
    // With the queue down, the app may refuse an order (its web request
    // fails): that is what the scenario shows, not a broken run.
    let refusals_expected = plan.queue.down_for_ms.is_some();

    let fast_retries = target.sidekiq.as_ref().is_some_and(|s| s.fast_retries);
    let quiet = Duration::from_millis(target.settle.quiet_ms);
    let deadline = Instant::now() + Duration::from_secs(target.settle.timeout_s);
    let mut placed: Option<Vec<String>> = None;
    let mut placed_at = Instant::now();
    // When the lab last saw work under way (a call in flight, a job
    // waiting, running or moved): one look can miss a job Sidekiq has just
    // popped, so settling wants none seen for all of `quiet_ms`.
    let mut last_busy = Instant::now();
    let mut restarts: Vec<Instant> = Vec::new();
    loop {
        if let Some(why) = lab.exited() {
            placing.abort();
            return Err(why);
        }
        note_proxy_events(lab);
        if placed.is_none() && placing.is_finished() {
            let placements = (&mut placing)
                .await
                .map_err(|e| format!("placing the orders failed: {e}"))?
                .map_err(|e| format!("{e}\n{}", lab.last_lines()))?;
            placed = Some(note_placements(lab, placements, refusals_expected)?);
            placed_at = Instant::now();
        }
        if restarts.first().is_some_and(|at| *at <= Instant::now()) {
            restarts.remove(0);
            restart_workers(lab).await?;
        }
        let moved = if fast_retries {
            move_retries(lab, plan.queue.duplicate).await
        } else {
            0
        };
        let outage = lab.proxy.as_ref().is_some_and(RedisProxy::is_down);
        if moved > 0 || outage || settle::busy(&lab.fakes, lab.sidekiq.as_ref()).await? {
            last_busy = Instant::now();
        }
        if let Some(ids) = &placed {
            let quiet_since = placed_at.max(last_busy);
            if restarts.is_empty()
                && quiet_since.elapsed() >= quiet
                && settle::idle(&lab.fakes, quiet)
            {
                return Ok((ids.clone(), None));
            }
        }
        if Instant::now() >= deadline {
            placing.abort();
            let why = settle::unsettled(
                &lab.fakes,
                lab.sidekiq.as_ref(),
                target.settle.timeout_s,
                placed.is_some(),
                lab.started_epoch_ms,
            )
            .await;
            return Ok((placed.unwrap_or_default(), Some(why)));
        }
        tokio::select! {
            order = kill_orders.recv() => {
                if let Some(order) = order {
                    let after = order.kill.restart_after_ms;
                    kill_workers(lab, order).await;
                    restarts.push(Instant::now() + Duration::from_millis(after));
                }
            }
            () = tokio::time::sleep(TICK) => {}
        }
    }
}

/// Waits (at most [`READY_WITHIN`]) until every `role = "worker"` process
/// — and at least one process, for a target that marks none — is in
/// Sidekiq's process set, i.e. up and connected to its Redis; without
/// `[sidekiq]` there is nothing to wait on.
async fn workers_connected(lab: &mut Lab, target: &Target) {
    let Some(sidekiq) = &lab.sidekiq else {
        return;
    };
    let workers = target.workers().count().max(1);
    let deadline = Instant::now() + READY_WITHIN;
    while Instant::now() < deadline {
        if sidekiq.process_count().await.is_ok_and(|n| n >= workers) {
            return;
        }
        tokio::time::sleep(TICK).await;
    }
    let at = lab.at_ms();
    lab.timeline.add(
        at,
        None,
        format!(
            "the worker processes were not all in Sidekiq's process set after {} s; the queue goes down anyway",
            READY_WITHIN.as_secs()
        ),
    );
}

/// The placements on the timeline; returns the ids of the orders the
/// checker holds to the invariants: those the app accepted, and those it
/// refused but named (it saved them before failing). A refusal is an error
/// unless the scenario expects them (`refusals_expected`).
fn note_placements(
    lab: &mut Lab,
    placements: Vec<(u32, Placement, Instant)>,
    refusals_expected: bool,
) -> Result<Vec<String>, String> {
    let mut ids = Vec::new();
    for (n, placement, at) in placements {
        let at_ms = at.duration_since(lab.started).as_millis() as u64;
        match placement {
            Placement::Accepted(id) => {
                lab.timeline.add(
                    at_ms,
                    Some(id.clone()),
                    format!("placed (order number {n}; the app's id is {id})"),
                );
                ids.push(id);
            }
            Placement::Refused { why, .. } if !refusals_expected => {
                return Err(format!("{why}\n{}", lab.last_lines()));
            }
            Placement::Refused { why, id: Some(id) } => {
                lab.timeline.add(
                    at_ms,
                    Some(id.clone()),
                    format!(
                        "refused by the app, which named it as its order {id} all the same (saved before failing?), so it must still complete: {why}"
                    ),
                );
                ids.push(id);
            }
            Placement::Refused { why, id: None } => {
                lab.timeline.add(
                    at_ms,
                    None,
                    format!(
                        "order number {n} refused by the app, naming no order: not held to the invariants (the lab cannot see whether the app saved it): {why}"
                    ),
                );
            }
        }
    }
    Ok(ids)
}

/// What the Redis proxy did since the last look, on the timeline.
fn note_proxy_events(lab: &mut Lab) {
    let Some(events) = lab.proxy_events.as_mut() else {
        return;
    };
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    let at = lab.at_ms();
    for event in seen {
        match event {
            ProxyEvent::Duplicated { key, jobs } => {
                for (jid, class) in jobs {
                    lab.timeline.add(
                        at,
                        None,
                        format!(
                            "{} (jid {}) pushed twice onto {key} (queue = \"duplicate\")",
                            class.as_deref().unwrap_or("a job"),
                            jid.as_deref().unwrap_or("unknown"),
                        ),
                    );
                }
            }
            ProxyEvent::DownStarted { closed_connections } => lab.timeline.add(
                at,
                None,
                format!(
                    "the app's Redis is down (queue = \"down\"): {closed_connections} open connection(s) closed, new ones refused"
                ),
            ),
            ProxyEvent::DownEnded => {
                lab.timeline
                    .add(at, None, "the app's Redis is back".to_string());
            }
            ProxyEvent::Malformed { peer, reason } => lab.timeline.add(
                at,
                None,
                format!("the lab's Redis proxy closed a connection from {peer}: {reason}"),
            ),
        }
    }
}

/// The `[place_order]` request with the order's number filled in.
fn order_request(target: &Target, vars: &Vars, env: &[(String, String)]) -> OrderRequest {
    match &target.place_order {
        PlaceOrder::Command(argv) => OrderRequest::Command {
            argv: argv.iter().map(|t| t.fill(vars)).collect(),
            env: env.to_vec(),
            cwd: target.dir.clone(),
        },
        PlaceOrder::Http(http) => OrderRequest::Http {
            method: http.method.as_str().to_string(),
            url: http.url.fill(vars),
            form: http
                .form
                .iter()
                .map(|(k, t)| (k.clone(), t.fill(vars)))
                .collect(),
            json: http.json.as_ref().map(|j| j.fill(vars)),
            headers: http
                .headers
                .iter()
                .map(|(k, t)| (k.clone(), t.fill(vars)))
                .collect(),
        },
    }
}

/// SIGKILL to every worker process's group, then the fakes may answer.
async fn kill_workers(lab: &mut Lab, order: KillOrder) {
    let mut names = Vec::new();
    for r in lab.processes.iter_mut().filter(|r| r.worker) {
        r.process.kill();
        names.push(r.name.clone());
    }
    if let Some(sidekiq) = &lab.sidekiq {
        if let Err(err) = sidekiq.forget_killed_processes().await {
            tracing::warn!(%err, "could not remove the killed processes' records");
        }
    }
    let _ = order.done.send(());
    let at = lab.at_ms();
    lab.timeline.add(
        at,
        None,
        format!(
            "{} killed (SIGKILL) after {} {} (the {} time), before the app heard the answer",
            names.join(", "),
            order.kill.service.effect_name(),
            order.record_id,
            ordinal(order.kill.calls),
        ),
    );
}

/// "first", "second", "third", then "4th", "11th", "21st", "22nd", …
fn ordinal(n: u64) -> String {
    match (n, n % 10, n % 100) {
        (1, _, _) => "first".into(),
        (2, _, _) => "second".into(),
        (3, _, _) => "third".into(),
        (_, _, 11..=13) => format!("{n}th"),
        (_, 1, _) => format!("{n}st"),
        (_, 2, _) => format!("{n}nd"),
        (_, 3, _) => format!("{n}rd"),
        _ => format!("{n}th"),
    }
}

/// Starts the killed workers again, as a supervisor would.
async fn restart_workers(lab: &mut Lab) -> Result<(), String> {
    let mut names = Vec::new();
    for r in lab.processes.iter_mut().filter(|r| r.worker) {
        r.process.restart()?;
        if let Some(url) = r.ready.as_deref() {
            r.process.wait_ready(url, READY_WITHIN).await?;
        }
        names.push(r.name.clone());
    }
    let at = lab.at_ms();
    lab.timeline
        .add(at, None, format!("{} restarted", names.join(", ")));
    Ok(())
}

/// Sidekiq's "Retry now" for every retry that has appeared, each noted on
/// the timeline with the error that sent it there.
async fn move_retries(lab: &mut Lab, duplicate: bool) -> usize {
    let Some(sidekiq) = &lab.sidekiq else {
        return 0;
    };
    let entries = sidekiq
        .retry_now(settle::now_epoch_ms(), duplicate)
        .await
        .unwrap_or_default();
    let moved = entries.len();
    let at = lab.at_ms();
    for entry in entries {
        let order = story::job_order(&entry.job);
        lab.timeline.add(
            at,
            order,
            format!(
                "Sidekiq retry moved to its queue at once: {}",
                failed(&entry.job)
            ),
        );
    }
    moved
}

/// The ledgers, and Sidekiq's dead set and jobs still to run.
async fn capture(lab: &Lab) -> Snapshot {
    let mut snapshot = Snapshot {
        ledgers: Service::ALL
            .iter()
            .map(|s| (*s, lab.fakes.ledger(*s)))
            .collect(),
        ..Snapshot::default()
    };
    if let Some(sidekiq) = &lab.sidekiq {
        snapshot.dead = sidekiq.dead().await.unwrap_or_default();
        snapshot.pending = sidekiq
            .pending()
            .await
            .map(|p| p.jobs())
            .unwrap_or_default();
    }
    snapshot
}
