//! Worker threads, each held to its own core ([`super::cores`]): the
//! [`Pool`] `lab explore --jobs N` starts its runs on, and [`map_pinned`],
//! which `lab check` runs its scenario files with.
//!
//! A worker builds what it runs with (a runtime, its stores) on its own
//! thread after it is pinned, so the SQLite threads sqlx starts inherit
//! the core, and nothing that is not `Send` crosses threads: only the
//! cases going in and the outcomes coming back.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;

use super::cores::Pinned;
use super::search_loop::{Attempt, ExploreError, RunOutcome, Runs};

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

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a run panicked".to_string())
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
    /// much as a run here (measured: with one run a worker, `--jobs 1` ran
    /// at half the rate of the loop on the calling thread).
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

/// `f` over `items` on `jobs` worker threads, worker `k` held to the
/// `k`-th allowed core; the results in the items' order, whichever ended
/// first, a panic as its message. `done` hears of each result as it comes
/// (a progress bar).
pub fn map_pinned<T, R>(
    items: Vec<T>,
    jobs: usize,
    f: impl Fn(T) -> R + Sync,
    done: impl Fn(&Result<R, String>) + Sync,
) -> Vec<Result<R, String>>
where
    T: Send,
    R: Send,
{
    let count = items.len();
    let jobs = jobs.clamp(1, count.max(1));
    let items: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let results: Vec<Mutex<Option<Result<R, String>>>> =
        (0..count).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for k in 0..jobs {
            let (items, results, next, f, done) = (&items, &results, &next, &f, &done);
            std::thread::Builder::new()
                .name(format!("check-{k}"))
                .spawn_scoped(scope, move || {
                    let _pinned = Pinned::worker(k);
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i).and_then(|m| m.lock().ok()?.take()) else {
                            return;
                        };
                        let result = catch_unwind(AssertUnwindSafe(|| f(item)))
                            .map_err(|panic| panic_message(&*panic));
                        done(&result);
                        if let Ok(mut slot) = results[i].lock() {
                            *slot = Some(result);
                        }
                    }
                })
                .expect("a worker thread starts");
        }
    });
    results
        .into_iter()
        .filter_map(|m| m.into_inner().ok().flatten())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_pinned_keeps_the_order_of_the_items() {
        let out = map_pinned((0..50u64).collect(), 3, |n| n * 2, |_| {});
        assert_eq!(out, (0..50u64).map(|n| Ok(n * 2)).collect::<Vec<_>>());
        let out = map_pinned(vec![1, 0, 2], 2, |n| 2 / n, |_| {});
        assert_eq!(out[0], Ok(2));
        assert!(
            out[1].as_ref().is_err_and(|e| e.contains("divide")),
            "{out:?}"
        );
        assert_eq!(out[2], Ok(1));
    }

    /// Each worker's thread (and any thread it starts, as sqlx does) is
    /// held to one core, worker k to the k-th allowed.
    #[cfg(target_os = "linux")]
    #[test]
    fn every_worker_is_held_to_its_own_core() {
        let allowed = super::super::cores::allowed();
        let jobs = allowed.len() + 1;
        // One item per worker, each waiting until every worker holds one,
        // so that each worker takes exactly one.
        let barrier = std::sync::Barrier::new(jobs);
        let seen = map_pinned(
            (0..jobs).collect(),
            jobs,
            |_| {
                barrier.wait();
                let own = super::super::cores::this_thread_cores();
                let child = std::thread::spawn(super::super::cores::this_thread_cores)
                    .join()
                    .unwrap();
                (
                    std::thread::current().name().map(str::to_string),
                    own,
                    child,
                )
            },
            |_| {},
        );
        for (name, own, child) in seen.into_iter().map(Result::unwrap) {
            let k: usize = name.unwrap().trim_start_matches("check-").parse().unwrap();
            assert_eq!(own, vec![allowed[k % allowed.len()]], "worker {k}");
            assert_eq!(child, own, "worker {k}'s child thread");
        }
    }

    /// The pool pins its workers too, before their run function is built.
    #[cfg(target_os = "linux")]
    #[test]
    fn pool_workers_are_pinned() {
        let allowed = super::super::cores::allowed();
        let jobs = allowed.len();
        let cores = Mutex::new(Vec::new());
        with_pool(
            jobs,
            |k| {
                cores
                    .lock()
                    .unwrap()
                    .push((k, super::super::cores::this_thread_cores()));
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
