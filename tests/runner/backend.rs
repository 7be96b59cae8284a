//! The backend as a whole: its name, clearing it, Redis namespaces and an
//! unreachable Redis.

use super::prelude::*;

on_each_backend!(the_backend_says_its_name, clear_forgets_everything,);

on_redis!(namespaces_keep_labs_apart_and_clear_leaves_nothing,);

async fn the_backend_says_its_name(b: Backends) {
    let expected = match b.kind {
        Kind::Memory => "memory",
        Kind::Redis => "redis",
    };
    assert_eq!(b.fresh().await.name(), expected);
}

async fn clear_forgets_everything(b: Backends) {
    let backend = b.fresh().await;
    backend.push(job("J", 1, "default", T0), T0).await.unwrap();
    backend.push(job("J", 2, "high", T0), T0).await.unwrap();
    take(backend.as_ref(), FetchMode::Reliable, "p")
        .await
        .unwrap();
    for set in [JobSet::Schedule, JobSet::Retry, JobSet::Dead] {
        backend
            .add_to_set(set, job("J", 3, "default", T0), T0)
            .await
            .unwrap();
    }
    backend.count(3, 1).await.unwrap();
    let busy = BusyJob {
        process: "p".into(),
        started_at_ms: T0,
        job: job("J", 2, "high", T0),
    };
    backend
        .heartbeat(process("p", T0), vec![busy])
        .await
        .unwrap();
    backend.clear().await.unwrap();
    assert!(backend.queue_sizes().await.unwrap().is_empty());
    for set in [JobSet::Schedule, JobSet::Retry, JobSet::Dead] {
        assert!(backend.set_entries(set).await.unwrap().is_empty());
    }
    assert_eq!(backend.stats().await.unwrap(), (0, 0));
    assert!(backend.processes().await.unwrap().is_empty());
    assert!(backend.busy().await.unwrap().is_empty());
    assert!(backend.waiting_jobs().await.unwrap().is_empty());
    assert_eq!(backend.next_due_ms().await.unwrap(), None);
    assert_nothing_held(backend.as_ref()).await;
}

async fn namespaces_keep_labs_apart_and_clear_leaves_nothing(b: Backends) {
    let (one, mut raw_one) = b.fresh_redis().await;
    let (two, mut raw_two) = b.fresh_redis().await;
    let job = |n: u64| Job::new("J", vec![json!(n)], "default", format!("{n:024x}"), T0);
    one.push(job(1), T0).await.unwrap();
    two.push(job(2), T0).await.unwrap();
    one.add_to_set(JobSet::Retry, job(3), T0).await.unwrap();
    one.count(1, 1).await.unwrap();
    one.heartbeat(
        ProcessInfo {
            identity: "p".into(),
            hostname: "lab".into(),
            started_at_ms: T0,
            beat_ms: T0,
            concurrency: 1,
            queues: vec!["default".into()],
            busy: 1,
            code_version: "v1".into(),
        },
        vec![BusyJob {
            process: "p".into(),
            started_at_ms: T0,
            job: job(4),
        }],
    )
    .await
    .unwrap();
    take_from(&*one, "default", FetchMode::Reliable, "p").await;
    assert_eq!(two.stats().await.unwrap(), (0, 0));
    assert_eq!(
        jids(&two.waiting_jobs().await.unwrap()),
        [format!("{:024x}", 2)]
    );
    assert!(!raw_one.keys().await.is_empty());
    one.clear().await.unwrap();
    assert!(
        raw_one.keys().await.is_empty(),
        "clear leaves no key behind: {:?}",
        raw_one.keys().await
    );
    assert_eq!(raw_two.keys().await, ["queue:default", "queues"]);
}

/// No server needed: a Redis that does not answer is an error naming it.
#[tokio::test]
async fn an_unreachable_redis_is_an_error_that_says_so() {
    let err = RedisBackend::connect("redis://127.0.0.1:1")
        .await
        .err()
        .expect("nothing listens on port 1");
    assert!(
        err.to_string()
            .contains("cannot reach Redis at redis://127.0.0.1:1"),
        "{err}"
    );
    let err = RedisBackend::connect("http://:hunter2@example.com")
        .await
        .err()
        .expect("not a Redis URL");
    assert!(err.to_string().contains("invalid Redis URL"), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}
