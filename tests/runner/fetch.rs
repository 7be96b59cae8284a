//! Taking jobs off the queues: strict priority, acknowledging and settling,
//! what is waiting or held, and the wait for a job (woken by a push, given up
//! at its deadline, and on Redis also a push by another client).

use super::prelude::*;

on_each_backend!(
    queues_are_served_in_strict_priority_order,
    acknowledge_drops_only_that_job,
    settle_and_fetch_settles_the_finished_job_then_takes_the_next,
    waiting_jobs_are_queued_and_held_jobs,
    a_fetch_waits_for_a_push,
    a_fetch_gives_up_after_its_wait,
    a_push_wakes_a_waiting_fetch_before_its_deadline,
    a_fetch_with_nothing_to_take_returns_none_at_its_deadline,
);

on_redis!(
    a_waiting_fetch_sees_a_push_from_another_client,
    a_waiting_fetch_does_not_stall_other_commands,
    a_fetch_asked_again_after_its_reply_was_lost_gets_the_job_it_took,
);

async fn queues_are_served_in_strict_priority_order(b: Backends) {
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut registry = Registry::new();
    registry.register("R", Recorder(order.clone()));
    let lab = lab(&b, registry, config()).await;
    let client = lab.runner.client();
    client
        .push("R", vec![json!("d1")], "default")
        .await
        .unwrap();
    client.push("R", vec![json!("h1")], "high").await.unwrap();
    client
        .push("R", vec![json!("d2")], "default")
        .await
        .unwrap();
    client.push("R", vec![json!("h2")], "high").await.unwrap();
    assert_eq!(lab.drain().await, 4);
    assert_eq!(
        *order.lock().unwrap(),
        vec![json!("h1"), json!("h2"), json!("d1"), json!("d2")],
        "high before default, first in first out within a queue"
    );
}

async fn acknowledge_drops_only_that_job(b: Backends) {
    let backend = b.fresh().await;
    for n in 1..=3 {
        backend.push(job("J", n, "default", T0), T0).await.unwrap();
    }
    let one = take(backend.as_ref(), FetchMode::Reliable, "p")
        .await
        .unwrap();
    let two = take(backend.as_ref(), FetchMode::Reliable, "p")
        .await
        .unwrap();
    backend.acknowledge("p", &one).await.unwrap();
    // Twice, or by another process: nothing more happens.
    backend.acknowledge("p", &one).await.unwrap();
    backend.acknowledge("q", &two).await.unwrap();
    let mut waiting = jids(&backend.waiting_jobs().await.unwrap());
    waiting.sort();
    assert_eq!(waiting, [two.jid.clone(), format!("{:024x}", 3)]);
    // Basic fetch holds nothing: acknowledging is a no-op.
    let three = take(backend.as_ref(), FetchMode::Basic, "p").await.unwrap();
    backend.acknowledge("p", &three).await.unwrap();
    backend.acknowledge("p", &two).await.unwrap();
    assert!(backend.waiting_jobs().await.unwrap().is_empty());
    assert_nothing_held(backend.as_ref()).await;
}

/// What a worker does between two jobs: the finished one is dropped
/// from the in-progress list and counted before the next is taken, and
/// a settle with nothing to take still happens.
async fn settle_and_fetch_settles_the_finished_job_then_takes_the_next(b: Backends) {
    let backend = b.fresh().await;
    let queues = ["high".to_string(), "default".to_string()];
    for n in 1..=2 {
        backend.push(job("J", n, "default", T0), T0).await.unwrap();
    }
    let one = take(backend.as_ref(), FetchMode::Reliable, "p")
        .await
        .unwrap();
    let finished = Finished {
        job: one.clone(),
        processed: 1,
        failed: 0,
    };
    let two = backend
        .settle_and_fetch(
            Some(finished),
            &Fetch::new(&queues, FetchMode::Reliable, "p"),
        )
        .await
        .unwrap()
        .expect("the second job");
    assert_eq!(two.jid, format!("{:024x}", 2));
    assert_eq!(
        jids(&backend.waiting_jobs().await.unwrap()),
        [two.jid.as_str()]
    );
    assert_eq!(backend.stats().await.unwrap(), (1, 0));

    // A failed job, and nothing left to take: settled all the same.
    let failed = Finished {
        job: two,
        processed: 1,
        failed: 1,
    };
    let none = backend
        .settle_and_fetch(Some(failed), &Fetch::new(&queues, FetchMode::Reliable, "p"))
        .await
        .unwrap();
    assert_eq!(none, None);
    assert!(backend.waiting_jobs().await.unwrap().is_empty());
    assert_eq!(backend.stats().await.unwrap(), (2, 1));
    assert_nothing_held(backend.as_ref()).await;
}

async fn waiting_jobs_are_queued_and_held_jobs(b: Backends) {
    let backend = b.fresh().await;
    backend.push(job("J", 1, "high", T0), T0).await.unwrap();
    backend.push(job("J", 2, "default", T0), T0).await.unwrap();
    backend.push(job("J", 3, "default", T0), T0).await.unwrap();
    backend
        .add_to_set(JobSet::Retry, job("J", 4, "default", T0), T0)
        .await
        .unwrap();
    let held = take(backend.as_ref(), FetchMode::Reliable, "p")
        .await
        .unwrap();
    assert_eq!(held.queue, "high", "strict priority");
    let lost = take(backend.as_ref(), FetchMode::Basic, "p").await.unwrap();
    assert_eq!(lost.jid, format!("{:024x}", 2), "first in, first out");
    let mut waiting = jids(&backend.waiting_jobs().await.unwrap());
    waiting.sort();
    assert_eq!(waiting, [format!("{:024x}", 1), format!("{:024x}", 3)]);
    let mut sizes = backend.queue_sizes().await.unwrap();
    sizes.sort();
    assert_eq!(sizes, [("default".to_string(), 1), ("high".to_string(), 0)]);
}

async fn a_fetch_waits_for_a_push(b: Backends) {
    let backend = b.fresh().await;
    let waiting = spawn_fetch(
        backend.clone(),
        FetchMode::Reliable,
        Duration::from_secs(30),
    );
    backend.push(job("J", 1, "default", T0), T0).await.unwrap();
    let fetched = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the push ends the wait")
        .unwrap()
        .unwrap();
    assert_eq!(fetched.map(|j| j.jid), Some(format!("{:024x}", 1)));
}

async fn a_fetch_gives_up_after_its_wait(b: Backends) {
    let backend = b.fresh().await;
    let started = tokio::time::Instant::now();
    let wait = Duration::from_millis(30);
    let fetched = backend
        .fetch(&Fetch::new(&["default".into()], FetchMode::Reliable, "p").waiting(wait))
        .await
        .unwrap();
    assert!(fetched.is_none());
    assert!(started.elapsed() >= wait);
    let none = backend
        .fetch(&Fetch::new(&[], FetchMode::Basic, "p"))
        .await
        .unwrap();
    assert!(none.is_none(), "no queues, no job");
}

async fn a_waiting_fetch_sees_a_push_from_another_client(b: Backends) {
    let (backend, mut raw) = b.fresh_redis().await;
    let waiting = spawn_fetch(backend.clone(), FetchMode::Basic, Duration::from_secs(30));
    // Not through the backend: no wake-up, only its polling sees it.
    let job = Job::new("J", vec![], "default", "d".repeat(24), T0);
    raw.push_as_another_client("default", &job.to_json()).await;
    let fetched = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("polling finds the job")
        .unwrap()
        .unwrap();
    assert_eq!(fetched, Some(job));
}

async fn a_waiting_fetch_does_not_stall_other_commands(b: Backends) {
    let (backend, _raw) = b.fresh_redis().await;
    let waiting = spawn_fetch(
        backend.clone(),
        FetchMode::Reliable,
        Duration::from_secs(30),
    );
    // Commands on the same backend (one multiplexed connection) are
    // answered while the fetch waits.
    for _ in 0..50 {
        assert_eq!(backend.stats().await.unwrap(), (0, 0));
    }
    assert!(!waiting.is_finished(), "the fetch is still waiting");
    backend
        .push(Job::new("J", vec![], "default", "e".repeat(24), T0), T0)
        .await
        .unwrap();
    let fetched = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(fetched.is_some());
}

/// The wait loop's promise, on each backend: a push through the backend
/// ends a waiting fetch at once, whenever it lands — before the fetch's
/// first look, between a look and the nap, or during the nap (the rounds
/// push after more and more yields, to land in each).
async fn a_push_wakes_a_waiting_fetch_before_its_deadline(b: Backends) {
    let backend = b.fresh().await;
    let wait = Duration::from_secs(30);
    let started = tokio::time::Instant::now();
    for n in 1..=20 {
        let waiting = spawn_fetch(backend.clone(), FetchMode::Reliable, wait);
        for _ in 0..n {
            tokio::task::yield_now().await;
        }
        backend.push(job("J", n, "default", T0), T0).await.unwrap();
        let fetched = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("the push ends the wait")
            .unwrap()
            .unwrap();
        assert_eq!(fetched.map(|j| j.jid), Some(format!("{n:024x}")));
    }
    assert!(
        started.elapsed() < wait,
        "no fetch waited out its deadline: {:?}",
        started.elapsed()
    );
}

/// ...and a fetch with nothing to take returns None at its deadline: not
/// before, and not long after, in either fetch mode.
async fn a_fetch_with_nothing_to_take_returns_none_at_its_deadline(b: Backends) {
    let backend = b.fresh().await;
    // A job on another queue is not this fetch's to take.
    backend.push(job("J", 1, "low", T0), T0).await.unwrap();
    let wait = Duration::from_millis(50);
    for mode in [FetchMode::Reliable, FetchMode::Basic] {
        let started = tokio::time::Instant::now();
        let fetched = spawn_fetch(backend.clone(), mode, wait).await.unwrap();
        let elapsed = started.elapsed();
        assert_eq!(fetched, Ok(None), "{mode:?}");
        assert!(elapsed >= wait, "{mode:?}: gave up after {elapsed:?}");
        assert!(
            elapsed < wait + Duration::from_secs(5),
            "{mode:?}: returned {elapsed:?} after a {wait:?} wait"
        );
    }
    assert_eq!(
        jids(&backend.waiting_jobs().await.unwrap()),
        [format!("{:024x}", 1)]
    );
}

/// Redis stopped between running a fetch and answering it: the job is in the
/// in-progress list of a process that lives on, and its fetcher asks again
/// with the same call. It must get that job back, not take the next one and
/// leave the first where no recovery ever finds it (a process that beats
/// keeps its list).
async fn a_fetch_asked_again_after_its_reply_was_lost_gets_the_job_it_took(b: Backends) {
    let (backend, _raw) = b.fresh_redis().await;
    for n in 1..=2 {
        backend.push(job("J", n, "default", T0), T0).await.unwrap();
    }
    let queues = ["default".to_string()];
    let fetch =
        |slot, n| Fetch::new(&queues, FetchMode::Reliable, "p").as_call(FetchCall { slot, n });
    let first = backend.fetch(&fetch(0, 7)).await.unwrap().unwrap();
    // The reply to that call was lost: the same call again.
    let again = backend.fetch(&fetch(0, 7)).await.unwrap();
    assert_eq!(again.as_ref().map(|j| &j.jid), Some(&first.jid));
    assert_eq!(
        backend.queue_sizes().await.unwrap(),
        vec![("default".to_string(), 1)],
        "the second job still waits"
    );
    // Another fetcher, or the next call, takes the second job.
    let second = backend.fetch(&fetch(1, 7)).await.unwrap().unwrap();
    assert_ne!(second.jid, first.jid);
    assert_eq!(backend.fetch(&fetch(0, 8)).await.unwrap(), None);
    // Once acknowledged, the first job is not handed out again.
    backend.acknowledge("p", &first).await.unwrap();
    assert_eq!(backend.fetch(&fetch(0, 7)).await.unwrap(), None);
    let held = backend.waiting_jobs().await.unwrap();
    assert_eq!(
        jids(&held),
        vec![second.jid.clone()],
        "only the second is held"
    );
}
