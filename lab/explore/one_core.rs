//! Keeps an exploration on one core while it runs.
//!
//! The simulator is one thread, but sqlx runs each SQLite connection on a
//! thread of its own, and every statement is a hand-over between the two.
//! On one core a hand-over is a context switch; across two it wakes the
//! other core, and a run takes three to four times as long (measured with
//! `cargo bench --bench explore`, pinned and not). The connection threads
//! inherit the affinity of the thread that opens them, so pinning the
//! exploring thread before its first run is enough.

/// The calling thread held to the core it is on; its earlier affinity
/// comes back on drop. Best effort: where the system refuses (or is not
/// Linux), the exploration runs unpinned, only slower.
pub struct OneCore {
    #[cfg(target_os = "linux")]
    previous: Option<nix::sched::CpuSet>,
}

impl OneCore {
    #[cfg(target_os = "linux")]
    pub fn pin() -> Self {
        use nix::sched::{sched_getaffinity, sched_getcpu, sched_setaffinity, CpuSet};
        use nix::unistd::Pid;

        let this_thread = Pid::from_raw(0);
        let previous = (|| {
            let previous = sched_getaffinity(this_thread).ok()?;
            let mut one = CpuSet::new();
            one.set(sched_getcpu().ok()?).ok()?;
            sched_setaffinity(this_thread, &one).ok()?;
            Some(previous)
        })();
        if previous.is_none() {
            tracing::debug!("could not pin the exploration to one core; it runs unpinned");
        }
        Self { previous }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn pin() -> Self {
        Self {}
    }

    /// Whether the thread is held to one core.
    pub fn pinned(&self) -> bool {
        #[cfg(target_os = "linux")]
        return self.previous.is_some();
        #[cfg(not(target_os = "linux"))]
        return false;
    }
}

impl Drop for OneCore {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(previous) = &self.previous {
            let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), previous);
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use nix::sched::sched_getaffinity;
    use nix::unistd::Pid;

    use super::*;

    fn cores_allowed() -> usize {
        let set = sched_getaffinity(Pid::from_raw(0)).unwrap();
        (0..nix::sched::CpuSet::count())
            .filter(|&i| set.is_set(i).unwrap_or(false))
            .count()
    }

    #[test]
    fn pins_to_one_core_and_gives_the_rest_back() {
        let before = cores_allowed();
        {
            let pinned = OneCore::pin();
            assert!(pinned.pinned());
            assert_eq!(cores_allowed(), 1);
            // A thread started now (as sqlx starts a connection's) inherits it.
            let inherited = std::thread::spawn(cores_allowed).join().unwrap();
            assert_eq!(inherited, 1);
        }
        assert_eq!(cores_allowed(), before);
    }
}
