//! Worker processes: a job held by a dying worker (lost with basic fetch,
//! back with reliable fetch), concurrency, kill and graceful stop; the
//! process set, heartbeats and the recovery of dead processes' jobs.

use super::prelude::*;

on_each_backend!(
    basic_fetch_loses_the_job_of_a_dying_worker,
    reliable_fetch_brings_the_job_back_after_the_heartbeat_expires,
    a_process_runs_concurrency_jobs_at_once_and_shows_them_busy,
    a_killed_process_leaves_its_job_for_the_next_one_to_recover,
    a_graceful_stop_puts_unfinished_jobs_back,
    recover_expired_puts_back_only_dead_processes_jobs,
    the_process_set_round_trips,
);

async fn basic_fetch_loses_the_job_of_a_dying_worker(b: Backends) {
    let runs = Arc::new(AtomicU32::new(0));
    let mut registry = Registry::new();
    registry.register("DiesOnce", DiesOnce(runs.clone()));
    let lab = lab(
        &b,
        registry,
        RunnerConfig {
            fetch: FetchMode::Basic,
            ..config()
        },
    )
    .await;
    lab.push("DiesOnce", vec![json!(1)]).await;
    lab.drain().await;
    assert_eq!(runs.load(Ordering::SeqCst), 1, "never run again: lost");
    let attempts = lab.runner.history().attempts();
    assert!(matches!(attempts[..], [ref a] if matches!(a.outcome, AttemptOutcome::Died { .. })));
    for set in [JobSet::Retry, JobSet::Dead, JobSet::Schedule] {
        assert!(lab.set(set).await.is_empty());
    }
    assert_eq!(lab.backend.stats().await.unwrap(), (0, 0));
}

async fn reliable_fetch_brings_the_job_back_after_the_heartbeat_expires(b: Backends) {
    let runs = Arc::new(AtomicU32::new(0));
    let mut registry = Registry::new();
    registry.register("DiesOnce", DiesOnce(runs.clone()));
    let lab = lab(&b, registry, config()).await;
    lab.push("DiesOnce", vec![json!(1)]).await;
    let start = lab.clock.now_ms();
    lab.drain().await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let attempts = lab.runner.history().attempts();
    assert_eq!(attempts.len(), 2);
    assert!(matches!(attempts[0].outcome, AttemptOutcome::Died { .. }));
    assert!(matches!(attempts[1].outcome, AttemptOutcome::Done));
    assert_ne!(
        attempts[0].process, attempts[1].process,
        "a new process ran it"
    );
    assert!(lab.clock.now_ms() - start > config().process_ttl_ms);
}

async fn a_process_runs_concurrency_jobs_at_once_and_shows_them_busy(b: Backends) {
    let (lab, waiting, release) = blocking_lab(
        &b,
        RunnerConfig {
            concurrency: 3,
            code_version: "v-test".into(),
            ..config()
        },
    )
    .await;
    for i in 0..5 {
        lab.push("Blocks", vec![json!(i)]).await;
    }
    let process = lab.runner.start().await;
    wait_until("three jobs run at once", || async {
        waiting.load(Ordering::SeqCst) == 3
    })
    .await;
    // A heartbeat (on the virtual clock) reports them busy. Time moves a
    // heartbeat period per look: a beat that was still under way when
    // time first moved sleeps from the new time.
    wait_until("the heartbeat shows three busy", || async {
        lab.clock.advance(config().heartbeat_ms);
        lab.backend.busy().await.unwrap().len() == 3
    })
    .await;
    let processes = lab.backend.processes().await.unwrap();
    assert_eq!(processes.len(), 1);
    assert_eq!(processes[0].code_version, "v-test");
    assert_eq!(processes[0].concurrency, 3);
    release.add_permits(5);
    wait_until("all five jobs done", || async {
        lab.backend.stats().await.unwrap().0 == 5
    })
    .await;
    process.stop().await;
    assert!(
        lab.backend.processes().await.unwrap().is_empty(),
        "a stopped process leaves the set"
    );
}

async fn a_killed_process_leaves_its_job_for_the_next_one_to_recover(b: Backends) {
    let (lab, waiting, release, first) = one_running_job(&b, config()).await;
    first.kill();
    assert_eq!(
        lab.backend.queue_sizes().await.unwrap()[0].1,
        0,
        "not back yet"
    );
    let second = lab.runner.start().await;
    release.add_permits(10);
    // Past the dead process's heartbeat TTL, the next poll brings the job
    // back. Then time moves a poll period per look: the new process's
    // first poll may still be under way (it reads the clock before it
    // goes to Redis), and its sleep then starts from the new time.
    lab.clock.advance(config().process_ttl_ms + 1);
    wait_until("the job runs again", || async {
        lab.clock.advance(config().poll_ms);
        waiting.load(Ordering::SeqCst) == 2
    })
    .await;
    wait_until("the recovered job finishes", || async {
        lab.backend.stats().await.unwrap().0 >= 1
    })
    .await;
    second.stop().await;
}

async fn a_graceful_stop_puts_unfinished_jobs_back(b: Backends) {
    let (lab, _waiting, _release, process) = one_running_job(
        &b,
        RunnerConfig {
            // Real time: the subject of this test.
            shutdown_timeout: Duration::from_millis(50),
            ..config()
        },
    )
    .await;
    process.stop().await;
    let sizes = lab.backend.queue_sizes().await.unwrap();
    assert_eq!(sizes, vec![("default".to_string(), 1)], "back on its queue");
    assert!(lab.backend.processes().await.unwrap().is_empty());
    // And it is not also in an in-progress list to be recovered twice.
    assert_nothing_held(lab.backend.as_ref()).await;
}

async fn recover_expired_puts_back_only_dead_processes_jobs(b: Backends) {
    let backend = b.fresh().await;
    let ttl = 60_000;
    for n in 1..=4 {
        backend.push(job("J", n, "default", T0), T0).await.unwrap();
    }
    backend
        .heartbeat(process("dead", T0), vec![])
        .await
        .unwrap();
    backend
        .heartbeat(process("alive", T0), vec![])
        .await
        .unwrap();
    // "dead" holds jobs 1 and 2, "alive" job 3; "ghost" (no heartbeat
    // ever) job 4.
    let one = take(backend.as_ref(), FetchMode::Reliable, "dead")
        .await
        .unwrap();
    let two = take(backend.as_ref(), FetchMode::Reliable, "dead")
        .await
        .unwrap();
    let three = take(backend.as_ref(), FetchMode::Reliable, "alive")
        .await
        .unwrap();
    let four = take(backend.as_ref(), FetchMode::Reliable, "ghost")
        .await
        .unwrap();
    assert_eq!(
        jids(&[one, two.clone(), three, four.clone()]),
        jids(&[
            job("J", 1, "default", T0),
            job("J", 2, "default", T0),
            job("J", 3, "default", T0),
            job("J", 4, "default", T0),
        ])
    );
    backend
        .heartbeat(process("alive", T0 + ttl), vec![])
        .await
        .unwrap();
    // Exactly the TTL since "dead" beat: not dead yet; but the ghost's
    // list has no process at all.
    let recovered = backend.recover_expired(T0 + ttl, ttl).await.unwrap();
    assert_eq!(jids(&recovered), [four.jid.as_str()]);
    let later = T0 + ttl + 1;
    let mut recovered = backend.recover_expired(later, ttl).await.unwrap();
    recovered.sort_by(|a, b| a.jid.cmp(&b.jid));
    assert_eq!(
        jids(&recovered),
        [format!("{:024x}", 1), format!("{:024x}", 2)]
    );
    let identities: Vec<String> = backend
        .processes()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.identity)
        .collect();
    assert_eq!(identities, ["alive"]);
    // Back at the taking end: the newest fetch first, then the older one,
    // then the ghost's (recovered earlier).
    let next: Vec<Job> = [
        take(backend.as_ref(), FetchMode::Basic, "p").await.unwrap(),
        take(backend.as_ref(), FetchMode::Basic, "p").await.unwrap(),
        take(backend.as_ref(), FetchMode::Basic, "p").await.unwrap(),
    ]
    .into();
    assert_eq!(
        jids(&next),
        [two.jid.clone(), format!("{:024x}", 1), four.jid.clone()]
    );
    assert_eq!(next[0].enqueued_at, Some(later as f64 / 1000.0));
    assert!(take(backend.as_ref(), FetchMode::Basic, "p")
        .await
        .is_none());
    // Nothing left to recover; "alive" still holds job 3.
    assert!(backend
        .recover_expired(later, ttl)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        jids(&backend.waiting_jobs().await.unwrap()),
        [format!("{:024x}", 3)]
    );
}

async fn the_process_set_round_trips(b: Backends) {
    let backend = b.fresh().await;
    let mut info = process("lab:v1:0", T0 + 5_123);
    info.busy = 2;
    let busy: Vec<BusyJob> = (1..=2)
        .map(|n| BusyJob {
            process: "lab:v1:0".into(),
            started_at_ms: T0 + n * 1_001,
            job: job("J", n, "default", T0),
        })
        .collect();
    backend.heartbeat(info.clone(), busy.clone()).await.unwrap();
    backend
        .heartbeat(process("lab:v0:0", T0), vec![])
        .await
        .unwrap();
    let processes = backend.processes().await.unwrap();
    assert_eq!(processes, [process("lab:v0:0", T0), info.clone()]);
    let mut shown = backend.busy().await.unwrap();
    shown.sort_by_key(|b| b.started_at_ms);
    assert_eq!(shown, busy);
    // The next beat replaces the busy list.
    info.busy = 0;
    backend.heartbeat(info, vec![]).await.unwrap();
    assert!(backend.busy().await.unwrap().is_empty());
    backend.remove_process("lab:v1:0").await.unwrap();
    backend.remove_process("lab:v0:0").await.unwrap();
    assert!(backend.processes().await.unwrap().is_empty());
}
