//! The worker threads `lab explore --jobs N` starts its runs on, each held
//! to its own core ([`crate::cores`]): the search loop's [`Pool`].
//!
//! A worker builds what it runs with (a runtime, its stores) on its own
//! thread after it is pinned, so the SQLite threads sqlx starts inherit
//! the core, and nothing that is not `Send` crosses threads: only the
//! cases going in and the outcomes coming back.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;

use super::search_loop::{Attempt, ExploreError, RunOutcome, Runs};
use crate::cores::{panic_message, Pinned};

/// Runs started at once per worker ([`Pool`]'s width).
const RUNS_A_WORKER: usize = 2;

/// A run for a worker.
struct Job<V> {
    id: u64,
    value: V,
    attempt: Attempt,
}

/// `jobs` worker threads, worker `k` held to the `k`-th allowed core, each
/// running cases with the run function `make(k)` builds on its thread (an
/// error there, such as a runtime that cannot start, ends the search).
/// `body` gets the pool as [`Runs`]; the workers end when it returns (a
/// run under way is finished first, its outcome dropped).
pub fn with_pool<V, W, T>(
    jobs: usize,
    make: impl Fn(usize) -> std::io::Result<W> + Sync,
    body: impl FnOnce(&mut Pool<V>) -> T,
) -> T
where
    V: Send,
    W: FnMut(&V, Attempt) -> RunOutcome,
{
    let jobs = jobs.max(1);
    let (job_tx, job_rx) = channel::<Job<V>>();
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = channel();
    std::thread::scope(|scope| {
        for k in 0..jobs {
            let (job_rx, done_tx, make) = (&job_rx, done_tx.clone(), &make);
            std::thread::Builder::new()
                .name(format!("explore-{k}"))
                .spawn_scoped(scope, move || worker(k, make, job_rx, done_tx))
                .expect("a worker thread starts");
        }
        drop(done_tx);
        let mut pool = Pool {
            jobs,
            tx: Some(job_tx),
            rx: done_rx,
        };
        let result = body(&mut pool);
        // No more jobs: each worker ends after the run it is on.
        pool.tx = None;
        result
    })
}

fn worker<V, W>(
    k: usize,
    make: &(impl Fn(usize) -> std::io::Result<W> + Sync),
    jobs: &Mutex<Receiver<Job<V>>>,
    done: Sender<Message>,
) where
    W: FnMut(&V, Attempt) -> RunOutcome,
{
    // Before the first run, so its runtime and SQLite threads are pinned.
    let _pinned = Pinned::worker(k);
    let mut run = match make(k) {
        Ok(run) => run,
        Err(err) => {
            let _ = done.send(Message::Broken(err));
            return;
        }
    };
    loop {
        let job = {
            let Ok(jobs) = jobs.lock() else { return };
            jobs.recv()
        };
        let Ok(job) = job else { return };
        // proptest's runner makes a panicking case a failing one; so does
        // the pool, and the worker goes on.
        let outcome = catch_unwind(AssertUnwindSafe(|| run(&job.value, job.attempt)))
            .map_err(|panic| panic_message(&*panic));
        if done.send(Message::Done(job.id, outcome)).is_err() {
            return;
        }
    }
}

/// What a worker sends back.
enum Message {
    /// A run's outcome, or its panic's message.
    Done(u64, Result<RunOutcome, String>),
    /// The worker could not build its run function, and ended.
    Broken(std::io::Error),
}

/// The workers of [`with_pool`], as the search loop's [`Runs`].
pub struct Pool<V> {
    jobs: usize,
    tx: Option<Sender<Job<V>>>,
    rx: Receiver<Message>,
}

impl<V: Clone + Send> Runs<V> for Pool<V> {
    /// Two runs a worker: one under way and the next already waiting, so
    /// a worker never sleeps between runs until the loop has taken the last
    /// outcome and started another. A wake-up across cores costs about as
    /// much as a run here (measured: with one run a worker, a pool of one
    /// ran at half the rate of the same runs on the calling thread).
    fn width(&self) -> usize {
        self.jobs * RUNS_A_WORKER
    }

    fn start(&mut self, id: u64, value: &V, attempt: Attempt) {
        if let Some(tx) = &self.tx {
            // A send fails only once every worker has ended; `next` says so.
            let _ = tx.send(Job {
                id,
                value: value.clone(),
                attempt,
            });
        }
    }

    fn next(&mut self) -> Result<(u64, RunOutcome), ExploreError> {
        match self.rx.recv() {
            Ok(Message::Done(id, Ok(outcome))) => Ok((id, outcome)),
            Ok(Message::Done(id, Err(panic))) => {
                Ok((id, RunOutcome::Failed(format!("the run panicked: {panic}"))))
            }
            Ok(Message::Broken(err)) => Err(ExploreError::Runtime(err)),
            Err(_) => Err(ExploreError::Aborted("every worker thread ended".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pool pins its workers too, before their run function is built.
    #[cfg(target_os = "linux")]
    #[test]
    fn pool_workers_are_pinned() {
        let allowed = crate::cores::allowed();
        let jobs = allowed.len();
        let cores = Mutex::new(Vec::new());
        with_pool(
            jobs,
            |k| {
                cores
                    .lock()
                    .unwrap()
                    .push((k, crate::cores::this_thread_cores()));
                Ok(|_: &u32, _| RunOutcome::Passed)
            },
            |pool: &mut Pool<u32>| {
                pool.start(
                    0,
                    &1,
                    Attempt {
                        shrinking: false,
                        try_index: 0,
                    },
                );
                pool.next().unwrap();
            },
        );
        let cores = cores.into_inner().unwrap();
        assert_eq!(cores.len(), jobs);
        for (k, own) in cores {
            assert_eq!(own, vec![allowed[k]], "worker {k}");
        }
    }
}
