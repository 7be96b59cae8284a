//! Holds a thread to one core while it runs.
//!
//! The simulator is one thread, but sqlx runs each SQLite connection on a
//! thread of its own, and every statement is a hand-over between the two.
//! On one core a hand-over is a context switch; across two it wakes the
//! other core, and a run takes three to four times as long (measured with
//! `cargo bench --bench explore`, pinned and not). The connection threads
//! inherit the affinity of the thread that opens them, so pinning a thread
//! before its first run is enough.
//!
//! With several workers (`lab explore --jobs N`, `lab check`: [`map_pinned`]
//! and `explore::workers`), worker `k`
//! is held to the `k`-th core the process may use ([`allowed`]: so a
//! `taskset` restriction is honoured), round robin when there are more
//! workers than cores: each worker and its SQLite threads then share one
//! core and never wake another.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// A thread held to one core; its earlier affinity comes back on drop.
/// Best effort: where the system refuses (or is not Linux), the thread runs
/// unpinned, only slower.
pub struct Pinned {
    #[cfg(target_os = "linux")]
    previous: Option<nix::sched::CpuSet>,
}

/// The cores this process may run on, in order (from
/// `sched_getaffinity`). Empty where that cannot be known (not Linux, or
/// refused).
pub fn allowed() -> Vec<usize> {
    #[cfg(target_os = "linux")]
    {
        use nix::sched::{sched_getaffinity, CpuSet};
        use nix::unistd::Pid;
        // The process's mask, not this thread's: a thread pinned earlier
        // (a worker of a previous exploration) must not narrow the next one.
        let Ok(set) = sched_getaffinity(Pid::this()) else {
            return Vec::new();
        };
        (0..CpuSet::count())
            .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
            .collect()
    }
    #[cfg(not(target_os = "linux"))]
    Vec::new()
}

/// Workers to run by default: the cores this process may use (at least 1).
pub fn default_jobs() -> usize {
    let allowed = allowed().len();
    if allowed > 0 {
        allowed
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// The core worker `k` of any number is held to: the `k`-th allowed one,
/// round robin. `None` where the allowed cores cannot be known.
pub fn core_for_worker(k: usize) -> Option<usize> {
    let allowed = allowed();
    (!allowed.is_empty()).then(|| allowed[k % allowed.len()])
}

impl Pinned {
    /// The calling thread held to the core it is on now.
    #[cfg(target_os = "linux")]
    pub fn here() -> Self {
        match nix::sched::sched_getcpu() {
            Ok(cpu) => Self::to(cpu),
            Err(_) => Self { previous: None },
        }
    }

    /// The calling thread held to `cpu`.
    #[cfg(target_os = "linux")]
    pub fn to(cpu: usize) -> Self {
        use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
        use nix::unistd::Pid;

        let this_thread = Pid::from_raw(0);
        let previous = (|| {
            let previous = sched_getaffinity(this_thread).ok()?;
            let mut one = CpuSet::new();
            one.set(cpu).ok()?;
            sched_setaffinity(this_thread, &one).ok()?;
            Some(previous)
        })();
        if previous.is_none() {
            tracing::debug!("could not pin a thread to core {cpu}; it runs unpinned");
        }
        Self { previous }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn here() -> Self {
        Self {}
    }

    #[cfg(not(target_os = "linux"))]
    pub fn to(_cpu: usize) -> Self {
        Self {}
    }

    /// The calling thread, worker `k`, held to its core
    /// ([`core_for_worker`]); unpinned where that is not known.
    pub fn worker(k: usize) -> Self {
        match core_for_worker(k) {
            Some(cpu) => Self::to(cpu),
            None => Self::unpinned(),
        }
    }

    fn unpinned() -> Self {
        Self {
            #[cfg(target_os = "linux")]
            previous: None,
        }
    }

    /// Whether the thread is held to one core.
    pub fn pinned(&self) -> bool {
        #[cfg(target_os = "linux")]
        return self.previous.is_some();
        #[cfg(not(target_os = "linux"))]
        return false;
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(previous) = &self.previous {
            let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), previous);
        }
    }
}

/// The cores the calling thread may run on now (for tests: a pinned
/// worker's is one).
#[cfg(target_os = "linux")]
pub fn this_thread_cores() -> Vec<usize> {
    use nix::sched::{sched_getaffinity, CpuSet};
    use nix::unistd::Pid;
    let Ok(set) = sched_getaffinity(Pid::from_raw(0)) else {
        return Vec::new();
    };
    (0..CpuSet::count())
        .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
        .collect()
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

/// A panic's message, for a report.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a run panicked".to_string())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn pins_to_one_core_and_gives_the_rest_back() {
        let before = this_thread_cores();
        {
            let pinned = Pinned::here();
            assert!(pinned.pinned());
            assert_eq!(this_thread_cores().len(), 1);
            // A thread started now (as sqlx starts a connection's) inherits it.
            let inherited = std::thread::spawn(this_thread_cores).join().unwrap();
            assert_eq!(inherited.len(), 1);
        }
        assert_eq!(this_thread_cores(), before);
    }

    /// Worker k takes the k-th allowed core, round robin past the last.
    #[test]
    fn workers_take_the_allowed_cores_in_turn() {
        let allowed = allowed();
        assert!(!allowed.is_empty());
        for k in 0..allowed.len() * 2 + 1 {
            let cores = std::thread::spawn(move || {
                let pinned = Pinned::worker(k);
                assert!(pinned.pinned());
                this_thread_cores()
            })
            .join()
            .unwrap();
            assert_eq!(cores, vec![allowed[k % allowed.len()]], "worker {k}");
        }
        assert_eq!(default_jobs(), allowed.len());
    }
}

#[cfg(test)]
mod map_tests {
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
        let allowed = super::allowed();
        let jobs = allowed.len() + 1;
        // One item per worker, each waiting until every worker holds one,
        // so that each worker takes exactly one.
        let barrier = std::sync::Barrier::new(jobs);
        let seen = map_pinned(
            (0..jobs).collect(),
            jobs,
            |_| {
                barrier.wait();
                let own = super::this_thread_cores();
                let child = std::thread::spawn(super::this_thread_cores).join().unwrap();
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
}
