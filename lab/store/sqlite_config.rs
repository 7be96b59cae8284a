//! SQLite's process-wide settings, made before its first connection.
//!
//! The SQLite that sqlx bundles keeps memory statistics by default
//! (`SQLITE_DEFAULT_MEMSTATUS`): every allocation takes one global lock to
//! count it. The simulator runs a scenario's statements on a SQLite thread
//! per worker, so with `lab explore --jobs 2` or `lab check` the workers'
//! SQLite threads queued on that one lock, and two threads running
//! scenarios ran 1.0–1.2 times as fast as one; without the statistics,
//! which nothing here reads, 1.5–1.7 times. What is still shared is the
//! page cache (one for the process, under one lock, as the bundled SQLite
//! is built with `SQLITE_ENABLE_MEMORY_MANAGEMENT`): see README, "The
//! simulator".

use std::sync::Once;

static CONFIGURED: Once = Once::new();

/// Turns SQLite's memory statistics off, once, before any connection.
/// Best effort: if SQLite is already initialised (something opened a
/// connection first), it refuses and keeps them on.
pub(crate) fn before_first_connection() {
    CONFIGURED.call_once(|| {
        // SAFETY: `sqlite3_config` is called before `sqlite3_initialize`
        // (no connection has been opened by this store yet, and `Once` keeps
        // two threads from calling it together); with
        // SQLITE_CONFIG_MEMSTATUS it takes one int. Called later, it only
        // returns SQLITE_MISUSE.
        let rc = unsafe {
            libsqlite3_sys::sqlite3_config(
                libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS,
                std::ffi::c_int::from(0u8),
            )
        };
        if rc != libsqlite3_sys::SQLITE_OK {
            tracing::debug!("SQLite kept its memory statistics on (sqlite3_config: {rc})");
        }
    });
}

#[cfg(test)]
mod tests {
    /// After the first store, the statistics are off: SQLite's allocations
    /// no longer count towards `sqlite3_memory_used`.
    #[tokio::test]
    async fn memory_statistics_are_off_after_the_first_store() {
        let _store = crate::store::Store::simulation().await.unwrap();
        // SAFETY: a plain read of a counter.
        let used = unsafe { libsqlite3_sys::sqlite3_memory_used() };
        assert_eq!(used, 0, "SQLite still counts its memory");
    }
}
