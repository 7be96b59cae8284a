//! Connection trouble, counted process-wide.
//!
//! The store reuses its connections without sqlx's ping on every return
//! (see `conns.rs`), so something else must notice a connection that broke
//! under it (a server restart, a terminated backend). Every query error is
//! looked at here on its way out of the store ([`Context::ctx`]); one that
//! may mean a broken connection bumps a count, and a kept connection whose
//! count is stale is pinged before its next use.

use std::sync::atomic::{AtomicU64, Ordering};

use super::error::StoreError;

/// Connection errors seen in this process so far.
static TROUBLE: AtomicU64 = AtomicU64::new(0);

/// Whether `err` may mean its connection is broken. Database errors proper
/// (a constraint, a syntax error) leave the connection as it was.
fn is_connection_trouble(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        // Postgres's own word that it is closing the connection: class 08
        // (connection exception) and 57P (shutdown, terminated backend).
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

/// Counts `err` if it may mean its connection is broken.
fn note(err: &sqlx::Error) {
    if is_connection_trouble(err) {
        TROUBLE.fetch_add(1, Ordering::AcqRel);
    }
}

/// How many connection errors this process has seen: a connection handed
/// out when the count was lower may be broken.
pub(super) fn seen() -> u64 {
    TROUBLE.load(Ordering::Acquire)
}

/// A sqlx result on its way out of the store: the error is noted, then
/// wrapped with the operation it failed, so a log line says what failed.
pub(super) trait Context<T> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError>;
}

impl<T> Context<T> for Result<T, sqlx::Error> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| {
            note(&source);
            StoreError::Database { context, source }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_trouble_and_query_errors_are_not() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(is_connection_trouble(&io));
        assert!(is_connection_trouble(&sqlx::Error::WorkerCrashed));
        assert!(!is_connection_trouble(&sqlx::Error::RowNotFound));
        assert!(!is_connection_trouble(&sqlx::Error::ColumnNotFound(
            "x".into()
        )));
    }

    #[test]
    fn noting_trouble_moves_the_count() {
        let before = seen();
        let failed: Result<(), _> = Err(sqlx::Error::WorkerCrashed);
        let err = failed.ctx("doing a test").unwrap_err();
        assert!(seen() > before);
        assert!(err.to_string().contains("while doing a test"), "{err}");
    }
}
