//! [`Store::simulation`]: an in-memory SQLite store whose every statement,
//! read or write, goes through one connection the store holds.
//!
//! The simulator runs one task at a time, so a pool buys it nothing, and a
//! pooled statement costs about two of its own: sqlx gives a connection back
//! to its pool from a task spawned on the current tokio runtime, which first
//! pings it — a second round trip to the connection's SQLite worker thread.
//!
//! Those give-back tasks also tied a pooled store to the runtime its last
//! statement ran on. The simulator keeps its stores for the next run on the
//! same thread, and the next run may be on another runtime while the first
//! is still alive but no longer driven (`benches/explore.rs`: its own
//! runtime, then `explore`'s). A connection whose give-back task had not
//! finished when `block_on` returned stayed on the idle runtime for good:
//! for the writers' pool of one, every later write waited out the 5 s
//! acquire timeout, and closing the store, after its rewind failed, waited
//! forever — the bench hung. Unpinned the give-back task usually finished in
//! time (its ping answered from the other core); pinned to one core
//! (`taskset -c 0`) it usually did not, which is why the simulator looked
//! unusable pinned. A held connection spawns nothing: its worker thread
//! answers through channels that wake whichever runtime is waiting.
//!
//! The pools of such a store are never connected ([`Store::ping`] and the
//! rest go through the held connection too).

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sqlx::any::AnyPoolOptions;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::error::{redact, Context, StoreError};
use super::{memory_url, schema, Dialect, Store, ACQUIRE_TIMEOUT};

/// The one connection of a [`Store::simulation`] store. Cheap to clone.
#[derive(Clone)]
pub(super) struct Single {
    conn: Arc<Mutex<AnyConnection>>,
    /// A transaction was dropped without commit or rollback: the next holder
    /// rolls it back before its own statement. Nobody else can see the
    /// open transaction meanwhile — every statement takes this connection.
    dropped_open: Arc<AtomicBool>,
    /// Set by [`Store::close`]: later statements fail, as on a closed pool.
    closed: Arc<AtomicBool>,
}

impl Single {
    /// Takes the connection: at once when free (always, in the simulator),
    /// else waiting in arrival order at most as long as a pool would.
    pub(super) async fn lock(&self) -> Result<OwnedMutexGuard<AnyConnection>, StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(sqlx::Error::PoolClosed).ctx("acquiring the store's connection");
        }
        let mut conn = match self.conn.clone().try_lock_owned() {
            Ok(conn) => conn,
            Err(_) => tokio::time::timeout(ACQUIRE_TIMEOUT, self.conn.clone().lock_owned())
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)
                .ctx("acquiring the store's connection")?,
        };
        if self.dropped_open.swap(false, Ordering::AcqRel) {
            // Fails only if nothing was open (BEGIN itself never ran).
            if let Err(err) = conn.execute("ROLLBACK").await {
                tracing::debug!(%err, "rolling back a dropped transaction");
            }
        }
        Ok(conn)
    }

    /// Starts a transaction with `begin` on the held connection.
    pub(super) async fn begin(&self, begin: &'static str) -> Result<SingleTx, StoreError> {
        // Open from before BEGIN is sent: if this future is dropped half-way,
        // the next holder rolls back whatever started.
        let mut tx = SingleTx {
            conn: self.lock().await?,
            dropped_open: self.dropped_open.clone(),
            open: true,
        };
        tx.conn.execute(begin).await.ctx("starting a transaction")?;
        Ok(tx)
    }

    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }
}

/// A connection for one statement: pooled, or the held one.
pub(super) enum Conn {
    Pooled(PoolConnection<Any>),
    Single(OwnedMutexGuard<AnyConnection>),
}

impl Deref for Conn {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        match self {
            Conn::Pooled(conn) => conn,
            Conn::Single(conn) => conn,
        }
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            Conn::Pooled(conn) => conn,
            Conn::Single(conn) => conn,
        }
    }
}

/// A transaction: sqlx's on a pooled connection, or BEGIN … COMMIT on the
/// held one.
pub(super) enum Tx {
    Pooled(Transaction<'static, Any>),
    Single(SingleTx),
}

impl Tx {
    pub(super) async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Pooled(tx) => tx.commit().await,
            Tx::Single(tx) => tx.finish("COMMIT").await,
        }
        .ctx("committing a transaction")
    }

    pub(super) async fn rollback(self) -> Result<(), StoreError> {
        match self {
            Tx::Pooled(tx) => tx.rollback().await,
            Tx::Single(tx) => tx.finish("ROLLBACK").await,
        }
        .ctx("rolling back a transaction")
    }

    pub(super) fn conn(&mut self) -> &mut AnyConnection {
        match self {
            Tx::Pooled(tx) => tx,
            Tx::Single(tx) => &mut tx.conn,
        }
    }
}

pub(super) struct SingleTx {
    conn: OwnedMutexGuard<AnyConnection>,
    dropped_open: Arc<AtomicBool>,
    /// Begun and not yet committed or rolled back.
    open: bool,
}

impl SingleTx {
    /// Ends the transaction with `statement`; if that fails, it still counts
    /// as open and the next holder rolls it back.
    async fn finish(mut self, statement: &'static str) -> Result<(), sqlx::Error> {
        self.conn.execute(statement).await?;
        self.open = false;
        Ok(())
    }
}

impl Drop for SingleTx {
    /// Leaves the rollback to the next holder rather than to a spawned task
    /// (see the module's doc): it runs before anyone can read or write.
    fn drop(&mut self) {
        if self.open {
            self.dropped_open.store(true, Ordering::Release);
        }
    }
}

/// A pool that never opens a connection unless asked (nobody asks: every
/// statement of a simulation store takes the held connection) and spawns
/// no maintenance task.
fn idle_pool(url: &str) -> Result<AnyPool, sqlx::Error> {
    AnyPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_lazy(url)
}

impl Store {
    /// A fresh in-memory SQLite store for the simulator: like
    /// [`Store::memory`] (migrated, seeded, private to the caller), but every
    /// statement goes through one held connection instead of a pool (see
    /// `single.rs`). Concurrent tasks take turns on it, so a task that reads
    /// while another's transaction is open waits for the commit (at most
    /// 5 s, then fails) — the simulator runs one task at a time and never
    /// parks one inside a transaction.
    pub async fn simulation() -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let url = memory_url();
        let shown = redact(&url);
        let connect_err = |source| StoreError::Connect {
            url: shown.clone(),
            source,
        };
        let mut conn = AnyConnection::connect(&url).await.map_err(connect_err)?;
        schema::migrate(&mut conn, Dialect::Sqlite).await?;
        let store = Store {
            pool: idle_pool(&url).map_err(connect_err)?,
            writer: idle_pool(&url).map_err(connect_err)?,
            dialect: Dialect::Sqlite,
            url: shown.clone(),
            _keeper: None,
            _temp_file: None,
            single: Some(Single {
                conn: Arc::new(Mutex::new(conn)),
                dropped_open: Arc::new(AtomicBool::new(false)),
                closed: Arc::new(AtomicBool::new(false)),
            }),
        };
        store.seed().await?;
        Ok(store)
    }
}
