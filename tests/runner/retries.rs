//! Retries on Sidekiq's schedule, the dead set and the handlers: what happens
//! after a job fails (and the seed that makes retry jitter and jids repeat).

use super::prelude::*;

on_each_backend!(
    a_failing_job_is_retried_on_sidekiqs_schedule_until_it_passes,
    the_time_scale_compresses_the_retry_schedule,
    exhausted_retries_bury_the_job_and_tell_the_death_handlers,
    permanent_errors_reach_the_error_handlers_at_once,
    retry_false_discards_and_retry_zero_buries_at_once,
    unknown_classes_and_panics_are_failures_not_crashes,
    retry_now_and_delete_work_on_the_sets,
    the_same_seed_gives_the_same_jids_and_history,
);

async fn a_failing_job_is_retried_on_sidekiqs_schedule_until_it_passes(b: Backends) {
    let (registry, runs) = flaky(2, true);
    let lab = lab(&b, registry, config()).await;
    let start = lab.clock.now_ms();
    lab.push("FlakyJob", vec![json!(1)]).await;
    assert_eq!(lab.drain().await, 3);
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    // Retry 0 waits 15–24 s, retry 1 waits 16–34 s.
    let waited = lab.clock.now_ms() - start;
    assert!((31_000..=58_000).contains(&waited), "waited {waited} ms");
    let attempts = lab.runner.history().attempts();
    assert_eq!(attempts.len(), 3);
    assert_eq!(
        attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(matches!(attempts[2].outcome, AttemptOutcome::Done));
    assert!(matches!(
        &attempts[0].outcome,
        AttemptOutcome::Failed {
            then: "retry",
            transient: true,
            ..
        }
    ));
    assert_eq!(lab.backend.stats().await.unwrap(), (3, 2));
    assert!(lab.set(JobSet::Retry).await.is_empty());
    // Transient errors are silenced: nobody was notified.
    assert!(lab.told.lines().is_empty(), "{:?}", lab.told.lines());
}

async fn the_time_scale_compresses_the_retry_schedule(b: Backends) {
    let (registry, runs) = flaky(3, true);
    let lab = lab(
        &b,
        registry,
        RunnerConfig {
            retry: RetryPolicy {
                max_retries: 25,
                time_scale: 0.001,
            },
            ..config()
        },
    )
    .await;
    let start = lab.clock.now_ms();
    lab.push("FlakyJob", vec![]).await;
    lab.drain().await;
    assert_eq!(runs.load(Ordering::SeqCst), 4);
    let waited = lab.clock.now_ms() - start;
    assert!(waited < 200, "three retries in {waited} ms of lab time");
}

async fn exhausted_retries_bury_the_job_and_tell_the_death_handlers(b: Backends) {
    let (lab, runs) = drained_flaky_job(&b, (100, true), with_max_retries(1), vec![json!(9)]).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2, "the run and one retry");
    let dead = lab.set(JobSet::Dead).await;
    assert_eq!(dead.len(), 1);
    let job = &dead[0].job;
    assert_eq!(job.error_class.as_deref(), Some("Payments::ServerError"));
    assert_eq!(job.error_message.as_deref(), Some("503 from payments"));
    assert_eq!(job.retry_count, Some(1));
    assert!(job.failed_at.is_some() && job.retried_at.is_some());
    assert_eq!(
        lab.told.lines(),
        vec!["FlakyJob won't be retried: 503 from payments".to_string()]
    );
}

async fn permanent_errors_reach_the_error_handlers_at_once(b: Backends) {
    let (lab, _) = drained_flaky_job(&b, (1, false), config(), vec![]).await;
    assert_eq!(
        lab.told.lines(),
        vec!["error FlakyJob: ArgumentError: bad order".to_string()]
    );
}

async fn retry_false_discards_and_retry_zero_buries_at_once(b: Backends) {
    let (registry, runs) = flaky(100, false);
    let lab = lab(&b, registry, config()).await;
    let client = lab.runner.client();
    let mut no_retry = client.build("FlakyJob", vec![], "default");
    no_retry.retry = idemlab::runner::job::RetryOption::Enabled(false);
    client.push_job(no_retry).await.unwrap();
    lab.drain().await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(lab.set(JobSet::Dead).await.is_empty());
    let mut zero = client.build("FlakyJob", vec![], "default");
    zero.retry = idemlab::runner::job::RetryOption::Count(0);
    client.push_job(zero).await.unwrap();
    lab.drain().await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(lab.set(JobSet::Dead).await.len(), 1);
}

async fn unknown_classes_and_panics_are_failures_not_crashes(b: Backends) {
    let mut registry = Registry::new();
    registry.register("Panics", Panics);
    let lab = lab(&b, registry, with_max_retries(0)).await;
    let client = lab.runner.client();
    client.push("Panics", vec![], "default").await.unwrap();
    client.push("NoSuchJob", vec![], "default").await.unwrap();
    assert_eq!(lab.drain().await, 2);
    let dead = lab.set(JobSet::Dead).await;
    let classes: Vec<_> = dead
        .iter()
        .map(|e| e.job.error_class.clone().unwrap())
        .collect();
    assert_eq!(classes, vec!["Panic".to_string(), "NameError".to_string()]);
    assert!(dead[0]
        .job
        .error_message
        .as_deref()
        .unwrap()
        .contains("boom in the job"));
    assert!(dead[1]
        .job
        .error_message
        .as_deref()
        .unwrap()
        .contains("NoSuchJob"));
}

async fn retry_now_and_delete_work_on_the_sets(b: Backends) {
    let (registry, runs) = flaky(1, true);
    let lab = lab(&b, registry, config()).await;
    let jid = lab.push("FlakyJob", vec![]).await;
    let job = take_from(&*lab.backend, "default", FetchMode::Basic, "p").await;
    lab.runner.perform(job, "p").await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let now = lab.clock.now_ms();
    assert!(lab
        .backend
        .requeue_from_set(JobSet::Retry, &jid, now)
        .await
        .unwrap());
    assert!(!lab
        .backend
        .requeue_from_set(JobSet::Retry, &jid, now)
        .await
        .unwrap());
    assert_eq!(lab.drain().await, 1);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    lab.backend
        .add_to_set(
            JobSet::Dead,
            lab.runner.client().build("X", vec![], "default"),
            now,
        )
        .await
        .unwrap();
    let dead_jid = lab.set(JobSet::Dead).await[0].job.jid.clone();
    assert!(lab
        .backend
        .delete_from_set(JobSet::Dead, &dead_jid)
        .await
        .unwrap());
    assert!(lab.set(JobSet::Dead).await.is_empty());
}

async fn the_same_seed_gives_the_same_jids_and_history(b: Backends) {
    let run = || async {
        let (registry, _) = flaky(2, true);
        let lab = lab(&b, registry, config()).await;
        for i in 0..3 {
            lab.push("FlakyJob", vec![json!(i)]).await;
        }
        lab.drain().await;
        serde_json::to_string(&lab.runner.history().attempts()).unwrap()
    };
    assert_eq!(run().await, run().await);
}
