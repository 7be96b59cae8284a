//! Where the store's writes go: on Postgres the pool, on SQLite one
//! connection the process's writers take in turn.
//!
//! SQLite lets one writer in at a time, and a writer that finds the lock
//! taken sleeps in SQLite's busy handler (1 ms, then 2, 5, 10 … ms) rather
//! than waiting its turn, which under load costs more than the writes
//! themselves. So writers queue for one connection in the process instead,
//! first come first served, without sleeping; readers keep the pool (WAL:
//! they see the last commit meanwhile).
//!
//! That connection is held behind a mutex rather than in a pool of one:
//! sqlx's pool pings every connection handed back to it, which for SQLite
//! is a round trip to the connection's worker thread after every write, as
//! long as the write itself. A local SQLite connection cannot break the way
//! a server's can, so there is nothing for the ping to find.
//!
//! The simulator's stores ([`Store::simulation`](super::Store::simulation))
//! send reads through that connection too: it runs one task at a time, so a
//! pool buys it nothing, and a store that spawns nothing works from any
//! runtime (the simulator keeps its stores for the next run, which may be
//! driven by another runtime while the first is alive but idle; a task left
//! on the idle one would hold the connection for good).
//!
//! A transaction dropped open is rolled back before anyone else uses the
//! connection: at once, by a task that holds it, where readers on other
//! connections would otherwise wait for the write lock; by the next holder,
//! before its own statement, on a simulation store.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sqlx::{Any, AnyConnection, Executor, SqlSafeStr, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard, OwnedSemaphorePermit};

use super::conns::{Conn, Conns};

use super::error::StoreError;
use super::trouble::Context;
use super::ACQUIRE_TIMEOUT;

/// The writers' connection(s). Cheap to clone.
#[derive(Clone)]
pub(super) enum Writer {
    Pool(Conns),
    Held(Held),
}

/// SQLite's single writer connection.
#[derive(Clone)]
pub(super) struct Held {
    conn: Arc<Mutex<AnyConnection>>,
    /// A transaction was dropped without commit or rollback: the next
    /// holder rolls it back first.
    open_tx: Arc<AtomicBool>,
    /// Set by `Store::close`: later statements fail, as on a closed pool.
    closed: Arc<AtomicBool>,
    /// Every statement of the store takes this connection (a simulation
    /// store): nothing is spawned, a dropped transaction waits for the next
    /// holder.
    only: bool,
}

impl Held {
    pub(super) fn new(conn: AnyConnection, only: bool) -> Held {
        Held {
            conn: Arc::new(Mutex::new(conn)),
            open_tx: Arc::new(AtomicBool::new(false)),
            closed: Arc::new(AtomicBool::new(false)),
            only,
        }
    }

    /// Takes the connection: at once when free (always, in the simulator),
    /// else in arrival order, at most as long as a pool would wait; and
    /// rolls back what a dropped transaction left open.
    async fn lock(&self) -> Result<OwnedMutexGuard<AnyConnection>, StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(sqlx::Error::PoolClosed).ctx("acquiring the writers' connection");
        }
        let mut conn = match self.conn.clone().try_lock_owned() {
            Ok(conn) => conn,
            Err(_) => tokio::time::timeout(ACQUIRE_TIMEOUT, self.conn.clone().lock_owned())
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)
                .ctx("acquiring the writers' connection")?,
        };
        if self.open_tx.swap(false, Ordering::AcqRel) {
            // Fails only if nothing was open (BEGIN itself never ran).
            if let Err(err) = conn.execute("ROLLBACK").await {
                tracing::debug!(%err, "rolling back a dropped transaction");
            }
        }
        Ok(conn)
    }
}

/// A connection for a single statement: a pooled one, or the held one.
pub(super) enum StoreConn {
    Pooled(Conn),
    Held(OwnedMutexGuard<AnyConnection>),
}

impl Deref for StoreConn {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        match self {
            StoreConn::Pooled(conn) => conn,
            StoreConn::Held(conn) => conn,
        }
    }
}

impl DerefMut for StoreConn {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            StoreConn::Pooled(conn) => conn,
            StoreConn::Held(conn) => conn,
        }
    }
}

/// A transaction on the writers' connection: sqlx's on a pooled one, or
/// BEGIN … COMMIT on the held one.
pub(super) enum WriteTx {
    /// The permit stays taken until the transaction is done.
    Pooled(Transaction<'static, Any>, OwnedSemaphorePermit),
    Held(HeldTx),
}

pub(super) struct HeldTx {
    /// Always `Some` until dropped.
    conn: Option<OwnedMutexGuard<AnyConnection>>,
    open_tx: Arc<AtomicBool>,
    /// [`Held::only`]: leave the rollback to the next holder.
    defer_rollback: bool,
    /// Begun and not yet committed or rolled back.
    open: bool,
}

impl Drop for HeldTx {
    /// Rolls back a transaction dropped open, still holding the connection
    /// so no writer gets in first, in a task as sqlx does (and, without a
    /// runtime or on a simulation store, through the next holder).
    /// Promptly: while it is open, an in-memory database's readers on other
    /// connections wait for it.
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        self.open_tx.store(true, Ordering::Release);
        if self.defer_rollback {
            return;
        }
        let (Some(mut conn), Ok(runtime)) =
            (self.conn.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let open_tx = self.open_tx.clone();
        runtime.spawn(async move {
            if conn.execute("ROLLBACK").await.is_ok() {
                open_tx.store(false, Ordering::Release);
            }
        });
    }
}

impl Writer {
    /// A connection for one write statement.
    pub(super) async fn acquire(&self) -> Result<StoreConn, StoreError> {
        match self {
            Writer::Pool(conns) => conns.acquire().await.map(StoreConn::Pooled),
            Writer::Held(held) => held.lock().await.map(StoreConn::Held),
        }
    }

    /// Starts a transaction with `begin` (`BEGIN IMMEDIATE` on SQLite).
    pub(super) async fn begin(&self, begin: &'static str) -> Result<WriteTx, StoreError> {
        match self {
            Writer::Pool(conns) => {
                let (conn, permit) = conns.acquire().await?.into_parts();
                Transaction::begin(conn, Some(begin.into_sql_str()))
                    .await
                    .map(|tx| WriteTx::Pooled(tx, permit))
                    .ctx("starting a transaction")
            }
            Writer::Held(held) => {
                // Open from before BEGIN is sent: if this future is dropped
                // half-way, the next writer rolls back whatever started.
                let mut tx = HeldTx {
                    conn: Some(held.lock().await?),
                    open_tx: held.open_tx.clone(),
                    defer_rollback: held.only,
                    open: true,
                };
                tx.conn_mut()
                    .execute(begin)
                    .await
                    .ctx("starting a transaction")?;
                Ok(WriteTx::Held(tx))
            }
        }
    }

    pub(super) async fn close(&self) {
        match self {
            Writer::Pool(conns) => conns.close().await,
            Writer::Held(held) => held.closed.store(true, Ordering::Release),
        }
    }
}

impl WriteTx {
    pub(super) async fn commit(self) -> Result<(), StoreError> {
        match self {
            WriteTx::Pooled(tx, _permit) => tx.commit().await,
            WriteTx::Held(tx) => tx.finish("COMMIT").await,
        }
        .ctx("committing a transaction")
    }

    pub(super) async fn rollback(self) -> Result<(), StoreError> {
        match self {
            WriteTx::Pooled(tx, _permit) => tx.rollback().await,
            WriteTx::Held(tx) => tx.finish("ROLLBACK").await,
        }
        .ctx("rolling back a transaction")
    }

    pub(super) fn conn(&mut self) -> &mut AnyConnection {
        match self {
            WriteTx::Pooled(tx, _) => tx,
            WriteTx::Held(tx) => tx.conn_mut(),
        }
    }
}

impl HeldTx {
    fn conn_mut(&mut self) -> &mut AnyConnection {
        self.conn
            .as_mut()
            .expect("a transaction's connection is held until it is dropped")
    }

    /// Ends the transaction with `statement`; if that fails, it still
    /// counts as open and the next writer rolls it back.
    async fn finish(mut self, statement: &'static str) -> Result<(), sqlx::Error> {
        self.conn_mut().execute(statement).await?;
        self.open = false;
        Ok(())
    }
}
