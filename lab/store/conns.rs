//! The store's pooled connections, reused without sqlx's ping on return.
//!
//! sqlx's pool pings every connection handed back to it before anyone may
//! take it again: on Postgres a round trip to the server, on SQLite one to
//! the connection's worker thread, after every statement. For a job that
//! reads its order and records a step, that is four round trips instead of
//! two, and on the two cores the lab shares with its database it was a
//! third of the order pipeline's cost.
//!
//! So the store keeps the connections it took from sqlx's pool and hands
//! them out again itself, limited to the pool's size by a semaphore (taken
//! in turn, with the pool's acquire timeout). What the ping was for is
//! covered otherwise:
//!
//! - A query cancelled half-way leaves nothing behind: sqlx's Postgres
//!   driver drains what is pending before its next query, and SQLite's runs
//!   each statement to its end on its thread.
//! - A broken connection (the server restarted) fails its query; every
//!   connection error bumps a process-wide count (`trouble.rs`), the
//!   connection that saw it goes back to sqlx (whose ping closes it), and
//!   every kept connection is pinged before its next use. So is one kept
//!   idle longer than [`QUIET`], which may have died unnoticed.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Connection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::StoreError;
use super::trouble::{self, Context};
use super::ACQUIRE_TIMEOUT;

/// How long a kept connection may sit unused and still be handed out
/// without a ping.
pub(super) const QUIET: Duration = Duration::from_secs(1);

/// sqlx's pool plus the connections taken from it and kept. Cheap to clone.
#[derive(Clone)]
pub(super) struct Conns {
    inner: Arc<Inner>,
}

struct Inner {
    pool: AnyPool,
    /// One permit per connection the pool may open.
    permits: Arc<Semaphore>,
    /// Kept connections, the most recently used last.
    idle: Mutex<Vec<Kept>>,
}

struct Kept {
    conn: PoolConnection<Any>,
    since: Instant,
    trouble: u64,
}

impl Conns {
    pub(super) fn new(pool: AnyPool, size: u32) -> Conns {
        Conns {
            inner: Arc::new(Inner {
                pool,
                permits: Arc::new(Semaphore::new(size as usize)),
                idle: Mutex::new(Vec::new()),
            }),
        }
    }

    /// sqlx's pool itself, for migrations before any connection is kept.
    pub(super) fn pool(&self) -> &AnyPool {
        &self.inner.pool
    }

    /// A connection: a kept one if there is one (checked first if there
    /// was trouble since, or it sat idle), else a new one from the pool.
    pub(super) async fn acquire(&self) -> Result<Conn, StoreError> {
        let permit =
            tokio::time::timeout(ACQUIRE_TIMEOUT, self.inner.permits.clone().acquire_owned())
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)
                .and_then(|permit| permit.map_err(|_| sqlx::Error::PoolClosed))
                .ctx("acquiring a connection from the pool")?;
        loop {
            let kept = self
                .inner
                .idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop();
            let Some(kept) = kept else {
                let conn = self
                    .inner
                    .pool
                    .acquire()
                    .await
                    .ctx("acquiring a connection from the pool")?;
                return Ok(self.hand_out(conn, permit));
            };
            let mut conn = kept.conn;
            if kept.trouble != trouble::seen() || kept.since.elapsed() > QUIET {
                if let Err(err) = conn.ping().await {
                    // Back to sqlx, which closes it; try the next one.
                    tracing::debug!(%err, "a kept connection failed its check");
                    continue;
                }
            }
            return Ok(self.hand_out(conn, permit));
        }
    }

    fn hand_out(&self, conn: PoolConnection<Any>, permit: OwnedSemaphorePermit) -> Conn {
        Conn {
            conn: Some(conn),
            permit: Some(permit),
            trouble: trouble::seen(),
            home: self.inner.clone(),
        }
    }

    /// Drops the kept connections and closes the pool.
    pub(super) async fn close(&self) {
        let kept = std::mem::take(&mut *self.inner.idle.lock().unwrap_or_else(|e| e.into_inner()));
        for kept in kept {
            drop(kept.conn.detach());
        }
        self.inner.permits.close();
        self.inner.pool.close().await;
    }
}

impl Drop for Inner {
    /// The pool goes with its last store: the kept connections are closed
    /// here and now, without sqlx's hand-back (which needs a runtime, and a
    /// store may be dropped after its runtime, as the simulator's spare
    /// stores are, at thread exit).
    fn drop(&mut self) {
        let kept = std::mem::take(self.idle.get_mut().unwrap_or_else(|e| e.into_inner()));
        for kept in kept {
            drop(kept.conn.detach());
        }
    }
}

/// A connection in use. Dropped, it is kept for the next user, unless
/// connection trouble was noted while it was out.
pub(super) struct Conn {
    /// Both `Some` until dropped or taken apart.
    conn: Option<PoolConnection<Any>>,
    /// Released after the connection is back among the kept ones, so the
    /// next in line finds it there.
    permit: Option<OwnedSemaphorePermit>,
    /// [`trouble::seen`] when it was handed out.
    trouble: u64,
    home: Arc<Inner>,
}

impl Conn {
    /// The pool's connection and the permit, for a sqlx transaction that
    /// owns its connection (it goes back to sqlx's pool when done).
    pub(super) fn into_parts(mut self) -> (PoolConnection<Any>, OwnedSemaphorePermit) {
        match (self.conn.take(), self.permit.take()) {
            (Some(conn), Some(permit)) => (conn, permit),
            _ => unreachable!("a connection in use has its connection and permit"),
        }
    }
}

impl Deref for Conn {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        self.conn.as_ref().expect("a connection in use is present")
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        self.conn.as_mut().expect("a connection in use is present")
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if self.trouble != trouble::seen() || self.home.permits.is_closed() {
            // Back to sqlx: its ping closes a broken connection.
            return;
        }
        self.home
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Kept {
                conn,
                since: Instant::now(),
                trouble: self.trouble,
            });
    }
}
