//! The schedule, retry and dead sets: order at one time, scheduled jobs
//! falling due, the dead set's limits.

use super::prelude::*;

on_each_backend!(
    jobs_at_the_same_time_keep_their_order_in_a_set,
    scheduled_jobs_are_enqueued_when_due,
    the_dead_set_drops_jobs_older_than_180_days,
    the_dead_set_keeps_the_newest_10000_jobs,
);

async fn jobs_at_the_same_time_keep_their_order_in_a_set(b: Backends) {
    let backend = b.fresh().await;
    // Classes in reverse byte order: a set ordered by member would flip them.
    for (n, class) in [(1, "C"), (2, "B"), (3, "A")] {
        backend
            .add_to_set(JobSet::Retry, job(class, n, "default", T0), T0 + 5_000)
            .await
            .unwrap();
    }
    backend
        .add_to_set(JobSet::Retry, job("Z", 4, "default", T0), T0 + 4_999)
        .await
        .unwrap();
    let entries = backend.set_entries(JobSet::Retry).await.unwrap();
    let seen: Vec<(u64, &str)> = entries
        .iter()
        .map(|e| (e.at_ms, e.job.class.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (T0 + 4_999, "Z"),
            (T0 + 5_000, "C"),
            (T0 + 5_000, "B"),
            (T0 + 5_000, "A")
        ]
    );
    assert_eq!(backend.next_due_ms().await.unwrap(), Some(T0 + 4_999));
    assert_eq!(backend.enqueue_due(T0 + 4_998).await.unwrap(), 0);
    assert_eq!(backend.enqueue_due(T0 + 5_000).await.unwrap(), 4);
    assert_eq!(backend.next_due_ms().await.unwrap(), None);
    let mut order = Vec::new();
    while let Some(job) = take(backend.as_ref(), FetchMode::Basic, "p").await {
        assert_eq!(job.enqueued_at, Some((T0 + 5_000) as f64 / 1000.0));
        order.push(job.class);
    }
    assert_eq!(order, ["Z", "C", "B", "A"], "due jobs keep their order");
}

async fn scheduled_jobs_are_enqueued_when_due(b: Backends) {
    let (registry, runs) = flaky(0, true);
    let lab = lab(&b, registry, config()).await;
    let jid = lab
        .runner
        .client()
        .push_in("FlakyJob", vec![json!(1)], "default", 60_000)
        .await
        .unwrap();
    let scheduled = lab.set(JobSet::Schedule).await;
    assert_eq!(scheduled.len(), 1);
    assert_eq!(scheduled[0].job.jid, jid);
    assert_eq!(scheduled[0].at_ms, T0 + 60_000);
    assert_eq!(lab.backend.enqueue_due(T0 + 59_999).await.unwrap(), 0);
    assert_eq!(lab.drain().await, 1);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(lab.clock.now_ms(), T0 + 60_000, "run when due, not before");
    assert!(lab.set(JobSet::Schedule).await.is_empty());
}

async fn the_dead_set_drops_jobs_older_than_180_days(b: Backends) {
    let backend = b.fresh().await;
    let old_at = T0 - DEAD_TIMEOUT_MS - 1;
    backend
        .add_to_set(JobSet::Dead, job("Old", 1, "default", old_at), old_at)
        .await
        .unwrap();
    // 180 days to the millisecond after it died: still kept.
    backend
        .add_to_set(JobSet::Dead, job("New", 2, "default", T0), T0 - 1)
        .await
        .unwrap();
    assert_eq!(backend.set_entries(JobSet::Dead).await.unwrap().len(), 2);
    // One millisecond more: gone.
    backend
        .add_to_set(JobSet::Dead, job("Newer", 3, "default", T0), T0)
        .await
        .unwrap();
    let dead = backend.set_entries(JobSet::Dead).await.unwrap();
    let classes: Vec<&str> = dead.iter().map(|e| e.job.class.as_str()).collect();
    assert_eq!(classes, ["New", "Newer"]);
    // The retry set has no such limit.
    backend
        .add_to_set(JobSet::Retry, job("Old", 4, "default", old_at), old_at)
        .await
        .unwrap();
    backend
        .add_to_set(JobSet::Retry, job("New", 5, "default", T0), T0)
        .await
        .unwrap();
    assert_eq!(backend.set_entries(JobSet::Retry).await.unwrap().len(), 2);
}

async fn the_dead_set_keeps_the_newest_10000_jobs(b: Backends) {
    let backend = b.fresh().await;
    let n = DEAD_MAX_JOBS as u64;
    // Each job at its own millisecond, so the order does not depend on
    // which of the concurrent adds lands first.
    let mut adds = tokio::task::JoinSet::new();
    for i in 0..n {
        let backend = backend.clone();
        adds.spawn(async move {
            let at = T0 + i;
            backend
                .add_to_set(JobSet::Dead, job("Dead", i, "default", at), at)
                .await
                .unwrap();
        });
    }
    while let Some(done) = adds.join_next().await {
        done.unwrap();
    }
    let dead = backend.set_entries(JobSet::Dead).await.unwrap();
    assert_eq!(dead.len(), DEAD_MAX_JOBS);
    assert_eq!(dead[0].job.jid, format!("{:024x}", 0));
    backend
        .add_to_set(JobSet::Dead, job("Dead", n, "default", T0 + n), T0 + n)
        .await
        .unwrap();
    let dead = backend.set_entries(JobSet::Dead).await.unwrap();
    assert_eq!(dead.len(), DEAD_MAX_JOBS, "one in, the oldest out");
    assert_eq!(dead[0].job.jid, format!("{:024x}", 1));
    assert_eq!(dead[DEAD_MAX_JOBS - 1].job.jid, format!("{n:024x}"));
    assert_eq!(dead[DEAD_MAX_JOBS - 1].at_ms, T0 + n);
}
