//! [`Turns`]: the simulator's clock and scheduler in one, so that a run is
//! a function of its seed.
//!
//! Concurrent jobs on a real runtime interleave however threads and the
//! database happen to answer; two runs of one scenario could then differ.
//! Here every task the engine runs is in one of three states: running,
//! parked (asleep until a virtual time, or at an interleaving point — each
//! call to a service is one), or finished. Only when nothing is running does
//! the scheduler act: it lets one parked task go whose time has come, picked
//! by a seeded RNG, or, when none is due, moves time to the earliest
//! deadline. At most one task runs at a time, so the store and the services
//! see the same sequence of operations on every run with the same seed.
//!
//! Tasks are counted, not named: a job waiting on a task that waits on the
//! clock (a spawned job body, a request to a server task) is blocked as long
//! as that task is parked, so nested tasks need no registration.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use fake_services::clock::Sleep;
use fake_services::Clock;
use futures::stream::{FuturesUnordered, StreamExt};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::oneshot;

/// The simulator's clock: cheap to clone, every clone the same clock.
#[derive(Clone)]
pub struct Turns {
    inner: Arc<Inner>,
}

struct Inner {
    now: AtomicU64,
    state: Mutex<State>,
    /// Detached tasks, polled by whichever run is scheduling.
    detached: Mutex<FuturesUnordered<Sleep>>,
}

struct State {
    /// Parked tasks, in the order they parked.
    parked: Vec<Parked>,
    /// Tasks started under [`Turns::run_all`] or detached, not yet finished.
    tasks: usize,
    /// Detached work waiting to be polled by the scheduler.
    detached: Vec<Sleep>,
    next_id: u64,
    rng: ChaCha8Rng,
    /// The scheduler, woken when a task parks or finishes.
    waker: Option<Waker>,
}

struct Parked {
    id: u64,
    at_ms: u64,
    go: oneshot::Sender<()>,
}

impl Turns {
    /// A clock reading `start_ms`, whose choices follow from `seed`.
    pub fn new(start_ms: u64, seed: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                now: AtomicU64::new(start_ms),
                state: Mutex::new(State {
                    parked: Vec::new(),
                    tasks: 0,
                    detached: Vec::new(),
                    next_id: 0,
                    rng: ChaCha8Rng::seed_from_u64(seed),
                    waker: None,
                }),
                detached: Mutex::new(FuturesUnordered::new()),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Each change is one push or pop: a poisoned lock is still sound.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Parks the calling task until `at_ms` and until the scheduler picks it.
    fn park(&self, at_ms: u64) -> Sleep {
        let (go, wait) = oneshot::channel();
        let id = {
            let mut state = self.state();
            let id = state.next_id;
            state.next_id += 1;
            state.parked.push(Parked { id, at_ms, go });
            if let Some(waker) = &state.waker {
                waker.wake_by_ref();
            }
            id
        };
        // A sleep dropped before its turn (a select that went the other way)
        // must not stay counted as a parked task.
        let guard = Unpark {
            turns: self.clone(),
            id,
        };
        Box::pin(async move {
            let _ = wait.await;
            drop(guard);
        })
    }

    /// Runs `work` to completion, each one a task, scheduling every task of
    /// the simulation (detached ones too) until the work is done; returns
    /// the outputs in order. Detached work still waiting for its time stays
    /// parked for the next run.
    pub async fn run_all<F>(&self, work: Vec<F>) -> Vec<F::Output>
    where
        F: Future,
    {
        self.state().tasks += work.len();
        // Each task starts parked: the scheduler picks who goes first, so
        // no two tasks ever run at once, not even at the start.
        let counted = work.into_iter().map(|task| {
            let turns = self.clone();
            let start = self.interleave();
            async move {
                start.await;
                let out = task.await;
                turns.finished();
                out
            }
        });
        let mut all = std::pin::pin!(futures::future::join_all(counted));
        std::future::poll_fn(|cx| self.schedule(cx, all.as_mut())).await
    }

    /// Runs one piece of work as a task (see [`Turns::run_all`]).
    pub async fn run<F: Future>(&self, work: F) -> F::Output {
        let mut outs = self.run_all(vec![work]).await;
        outs.pop().expect("one output for one task")
    }

    /// Lets virtual time pass until `at_ms`, running whatever comes due on
    /// the way (the effects of calls whose clients gave up).
    pub async fn advance_to(&self, at_ms: u64) {
        let now = self.now_ms();
        if at_ms > now {
            self.run(self.sleep(at_ms - now)).await;
        }
    }

    fn finished(&self) {
        let mut state = self.state();
        state.tasks -= 1;
        if let Some(waker) = &state.waker {
            waker.wake_by_ref();
        }
    }

    /// The scheduler: polls the work and the detached tasks; whenever
    /// nothing runs, lets one parked task go (or moves time) and polls again.
    fn schedule<T>(
        &self,
        cx: &mut Context<'_>,
        mut work: Pin<&mut impl Future<Output = T>>,
    ) -> Poll<T> {
        loop {
            {
                let mut detached = self
                    .inner
                    .detached
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                let newly = std::mem::take(&mut self.state().detached);
                detached.extend(newly);
                while let Poll::Ready(Some(())) = detached.poll_next_unpin(cx) {}
            }
            if let Poll::Ready(out) = work.as_mut().poll(cx) {
                return Poll::Ready(out);
            }
            if !self.step(cx) {
                return Poll::Pending;
            }
        }
    }

    /// If every task is parked, lets one go, or moves time to the earliest
    /// deadline when none is due, and returns true; otherwise registers to
    /// be woken when a task parks or finishes.
    fn step(&self, cx: &mut Context<'_>) -> bool {
        let mut state = self.state();
        state.waker = Some(cx.waker().clone());
        if !state.detached.is_empty() {
            return true;
        }
        if state.parked.is_empty() || state.tasks > state.parked.len() {
            return false;
        }
        let now = self.now_ms();
        let due: Vec<usize> = (0..state.parked.len())
            .filter(|i| state.parked[*i].at_ms <= now)
            .collect();
        if due.is_empty() {
            let earliest = state.parked.iter().map(|p| p.at_ms).min().unwrap_or(now);
            self.inner.now.store(earliest, Ordering::SeqCst);
            return true;
        }
        let pick = due[state.rng.random_range(0..due.len())];
        let parked = state.parked.remove(pick);
        let _ = parked.go.send(());
        true
    }
}

/// Removes a parked entry whose sleep was dropped before its turn.
struct Unpark {
    turns: Turns,
    id: u64,
}

impl Drop for Unpark {
    fn drop(&mut self) {
        let mut state = self.turns.state();
        state.parked.retain(|p| p.id != self.id);
        if let Some(waker) = &state.waker {
            waker.wake_by_ref();
        }
    }
}

impl Clock for Turns {
    fn now_ms(&self) -> u64 {
        self.inner.now.load(Ordering::SeqCst)
    }

    fn sleep(&self, ms: u64) -> Sleep {
        self.park(self.now_ms() + ms)
    }

    fn interleave(&self) -> Sleep {
        self.park(self.now_ms())
    }

    fn detach(&self, work: Sleep) {
        let turns = self.clone();
        let mut state = self.state();
        state.tasks += 1;
        state.detached.push(Box::pin(async move {
            work.await;
            turns.finished();
        }));
        if let Some(waker) = &state.waker {
            waker.wake_by_ref();
        }
    }
}
