//! Giving freed memory back to the system after a reset.
//!
//! A ledger's big buffers are freed to the system at once (the allocator
//! maps large blocks on their own), but everything else a load test
//! allocated — request buffers, small maps, connection state — goes back
//! to glibc's arenas, which keep it for the process. After `POST /reset`
//! a user expects the process to shrink back to what a fresh one holds, so
//! the arenas are asked to return their free pages.

/// Returns free heap pages to the system, where the allocator can
/// (glibc's `malloc_trim`); elsewhere nothing to do.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only releases memory the allocator holds free;
    // it touches no memory the program uses and is safe to call at any time
    // from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}
