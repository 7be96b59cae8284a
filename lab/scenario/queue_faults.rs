//! The queue misbehaving, as a scenario's `queue = "duplicate"` and
//! `queue = "down"` faults ask: a [`Backend`] around the real one that
//! delivers every job twice, or fails every enqueue until a time.
//!
//! Only pushing misbehaves; everything else is a plain forward to the inner
//! backend — `settle` and `settle_and_fetch` included, so a Redis run with
//! queue faults keeps its one-round-trip path.

use std::sync::Arc;

use async_trait::async_trait;
use fake_services::SharedClock;

use crate::runner::backend::{BusyJob, Finished, ProcessInfo, SetEntry};
use crate::runner::{Backend, BackendError, Fetch, Job, JobSet};

/// The queue misbehaving: every job delivered twice, or enqueues failing
/// for a while.
pub struct FaultyBackend {
    inner: Arc<dyn Backend>,
    clock: SharedClock,
    duplicate: bool,
    down_until_ms: u64,
}

impl FaultyBackend {
    /// Every job pushed is delivered twice.
    pub fn duplicating(inner: Arc<dyn Backend>, clock: SharedClock) -> Self {
        Self {
            inner,
            clock,
            duplicate: true,
            down_until_ms: 0,
        }
    }

    /// Every push fails until `down_until_ms` (the clock's time).
    pub fn down_until(inner: Arc<dyn Backend>, clock: SharedClock, down_until_ms: u64) -> Self {
        Self {
            inner,
            clock,
            duplicate: false,
            down_until_ms,
        }
    }
}

#[async_trait]
impl Backend for FaultyBackend {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn push(&self, job: Job, now_ms: u64) -> Result<(), BackendError> {
        if self.clock.now_ms() < self.down_until_ms {
            return Err(BackendError(
                "Redis::CannotConnectError: the queue is down (injected)".into(),
            ));
        }
        if self.duplicate {
            self.inner.push(job.clone(), now_ms).await?;
        }
        self.inner.push(job, now_ms).await
    }

    async fn fetch(&self, fetch: &Fetch<'_>) -> Result<Option<Job>, BackendError> {
        self.inner.fetch(fetch).await
    }

    async fn acknowledge(&self, process: &str, job: &Job) -> Result<(), BackendError> {
        self.inner.acknowledge(process, job).await
    }

    async fn settle(&self, process: &str, finished: &Finished) -> Result<(), BackendError> {
        self.inner.settle(process, finished).await
    }

    async fn settle_and_fetch(
        &self,
        finished: Option<Finished>,
        fetch: &Fetch<'_>,
    ) -> Result<Option<Job>, BackendError> {
        self.inner.settle_and_fetch(finished, fetch).await
    }

    async fn add_to_set(&self, set: JobSet, job: Job, at_ms: u64) -> Result<(), BackendError> {
        self.inner.add_to_set(set, job, at_ms).await
    }

    async fn enqueue_due(&self, now_ms: u64) -> Result<usize, BackendError> {
        self.inner.enqueue_due(now_ms).await
    }

    async fn next_due_ms(&self) -> Result<Option<u64>, BackendError> {
        self.inner.next_due_ms().await
    }

    async fn set_entries(&self, set: JobSet) -> Result<Vec<SetEntry>, BackendError> {
        self.inner.set_entries(set).await
    }

    async fn delete_from_set(&self, set: JobSet, jid: &str) -> Result<bool, BackendError> {
        self.inner.delete_from_set(set, jid).await
    }

    async fn requeue_from_set(
        &self,
        set: JobSet,
        jid: &str,
        now_ms: u64,
    ) -> Result<bool, BackendError> {
        self.inner.requeue_from_set(set, jid, now_ms).await
    }

    async fn queue_sizes(&self) -> Result<Vec<(String, usize)>, BackendError> {
        self.inner.queue_sizes().await
    }

    async fn heartbeat(
        &self,
        process: ProcessInfo,
        busy: Vec<BusyJob>,
    ) -> Result<(), BackendError> {
        self.inner.heartbeat(process, busy).await
    }

    async fn remove_process(&self, identity: &str) -> Result<(), BackendError> {
        self.inner.remove_process(identity).await
    }

    async fn processes(&self) -> Result<Vec<ProcessInfo>, BackendError> {
        self.inner.processes().await
    }

    async fn busy(&self) -> Result<Vec<BusyJob>, BackendError> {
        self.inner.busy().await
    }

    async fn recover_expired(&self, now_ms: u64, ttl_ms: u64) -> Result<Vec<Job>, BackendError> {
        self.inner.recover_expired(now_ms, ttl_ms).await
    }

    async fn waiting_jobs(&self) -> Result<Vec<Job>, BackendError> {
        self.inner.waiting_jobs().await
    }

    async fn count(&self, processed: u64, failed: u64) -> Result<(), BackendError> {
        self.inner.count(processed, failed).await
    }

    async fn stats(&self) -> Result<(u64, u64), BackendError> {
        self.inner.stats().await
    }

    async fn clear(&self) -> Result<(), BackendError> {
        self.inner.clear().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use fake_services::ManualClock;

    use super::*;
    use crate::runner::FetchMode;

    /// A backend that only writes down which of its methods were called.
    #[derive(Default)]
    struct Recorder {
        calls: Mutex<Vec<&'static str>>,
    }

    impl Recorder {
        /// Writes the call down; every call succeeds.
        fn called(&self, name: &'static str) -> Result<(), BackendError> {
            self.calls.lock().unwrap().push(name);
            Ok(())
        }

        fn calls(&self) -> Vec<&'static str> {
            std::mem::take(&mut *self.calls.lock().unwrap())
        }
    }

    #[async_trait]
    impl Backend for Recorder {
        fn name(&self) -> &'static str {
            "recorder"
        }
        async fn push(&self, _: Job, _: u64) -> Result<(), BackendError> {
            self.called("push")
        }
        async fn fetch(&self, _: &Fetch<'_>) -> Result<Option<Job>, BackendError> {
            self.called("fetch").map(|()| None)
        }
        async fn acknowledge(&self, _: &str, _: &Job) -> Result<(), BackendError> {
            self.called("acknowledge")
        }
        async fn settle(&self, _: &str, _: &Finished) -> Result<(), BackendError> {
            self.called("settle")
        }
        async fn settle_and_fetch(
            &self,
            _: Option<Finished>,
            _: &Fetch<'_>,
        ) -> Result<Option<Job>, BackendError> {
            self.called("settle_and_fetch").map(|()| None)
        }
        async fn add_to_set(&self, _: JobSet, _: Job, _: u64) -> Result<(), BackendError> {
            self.called("add_to_set")
        }
        async fn enqueue_due(&self, _: u64) -> Result<usize, BackendError> {
            Ok(0)
        }
        async fn next_due_ms(&self) -> Result<Option<u64>, BackendError> {
            Ok(None)
        }
        async fn set_entries(&self, _: JobSet) -> Result<Vec<SetEntry>, BackendError> {
            Ok(Vec::new())
        }
        async fn delete_from_set(&self, _: JobSet, _: &str) -> Result<bool, BackendError> {
            Ok(false)
        }
        async fn requeue_from_set(&self, _: JobSet, _: &str, _: u64) -> Result<bool, BackendError> {
            Ok(false)
        }
        async fn queue_sizes(&self) -> Result<Vec<(String, usize)>, BackendError> {
            Ok(Vec::new())
        }
        async fn heartbeat(&self, _: ProcessInfo, _: Vec<BusyJob>) -> Result<(), BackendError> {
            Ok(())
        }
        async fn remove_process(&self, _: &str) -> Result<(), BackendError> {
            Ok(())
        }
        async fn processes(&self) -> Result<Vec<ProcessInfo>, BackendError> {
            Ok(Vec::new())
        }
        async fn busy(&self) -> Result<Vec<BusyJob>, BackendError> {
            Ok(Vec::new())
        }
        async fn recover_expired(&self, _: u64, _: u64) -> Result<Vec<Job>, BackendError> {
            Ok(Vec::new())
        }
        async fn waiting_jobs(&self) -> Result<Vec<Job>, BackendError> {
            Ok(Vec::new())
        }
        async fn count(&self, _: u64, _: u64) -> Result<(), BackendError> {
            self.called("count")
        }
        async fn stats(&self) -> Result<(u64, u64), BackendError> {
            Ok((0, 0))
        }
        async fn clear(&self) -> Result<(), BackendError> {
            Ok(())
        }
    }

    fn finished() -> Finished {
        Finished {
            job: Job::new("CompleteOrderJob", vec![], "high", "jid1".into(), 0),
            processed: 1,
            failed: 0,
        }
    }

    /// Settles the job and fetches the next the way a worker does.
    async fn settle_then_fetch(backend: &FaultyBackend) {
        let queues = ["high".to_string()];
        backend.settle("w1", &finished()).await.unwrap();
        let next = backend
            .settle_and_fetch(
                Some(finished()),
                &Fetch::new(&queues, FetchMode::Reliable, "w1"),
            )
            .await
            .unwrap();
        assert_eq!(next, None);
    }

    #[tokio::test]
    async fn settling_reaches_the_inner_backend_as_one_call() {
        let clock: SharedClock = Arc::new(ManualClock::new(0));
        let inner = Arc::new(Recorder::default());
        for faulty in [
            FaultyBackend::duplicating(inner.clone(), clock.clone()),
            FaultyBackend::down_until(inner.clone(), clock.clone(), 1_000),
        ] {
            settle_then_fetch(&faulty).await;
            // Not the trait's defaults (acknowledge + count, then fetch),
            // which would lose the inner backend's one round trip.
            assert_eq!(inner.calls(), ["settle", "settle_and_fetch"]);
        }
    }

    #[tokio::test]
    async fn only_pushing_misbehaves() {
        let clock = Arc::new(ManualClock::new(0));
        let shared: SharedClock = clock.clone();
        let inner = Arc::new(Recorder::default());
        let job = finished().job;

        let twice = FaultyBackend::duplicating(inner.clone(), shared.clone());
        twice.push(job.clone(), 0).await.unwrap();
        assert_eq!(inner.calls(), ["push", "push"]);

        let down = FaultyBackend::down_until(inner.clone(), shared, 1_000);
        let err = down.push(job.clone(), 0).await.unwrap_err();
        assert!(err.0.contains("the queue is down"), "{err}");
        down.add_to_set(JobSet::Retry, job.clone(), 5)
            .await
            .unwrap();
        assert_eq!(
            inner.calls(),
            ["add_to_set"],
            "a refused push never arrives"
        );
        clock.advance_to(1_000);
        down.push(job, 0).await.unwrap();
        assert_eq!(inner.calls(), ["push"], "up again at its time");
    }
}
