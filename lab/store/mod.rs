//! The SQL store: products, users, orders, the outbox and the reminders, on
//! SQLite or Postgres through one set of queries.
//!
//! The lab runs on SQLite with no server to install (a file, or memory in
//! tests) and on Postgres when `DATABASE_URL` says so; the scenarios must
//! behave the same on both, so there is a single implementation of every
//! query, written once against sqlx's `Any` driver:
//!
//! - only integers and text cross the driver: times are epoch milliseconds
//!   (`*_ms`), booleans 0/1, JSON is text;
//! - placeholders are `$1, $2, …`, numbered in order of first appearance,
//!   which SQLite and Postgres both read;
//! - no `query!` macros, so the build needs no database; SQL is `&'static str`
//!   as sqlx 0.9 requires.
//!
//! Every query lives in a function over `&mut AnyConnection`, so the same code
//! runs on a pooled connection ([`Store`]) or inside a caller's transaction
//! ([`StoreTx`]) — the pipeline's `in-transaction` and `outbox` enqueue
//! variants need the order written inside a transaction they control.
//!
//! For tests there are two throwaway SQLite stores: [`Store::memory`] (in
//! memory; a reader waits while a transaction is open) and
//! [`Store::temporary`] (a temp file; readers see the last commit, as on
//! Postgres).
//!
//! # Files
//!
//! - `schema.rs`: the migrations, one list per dialect.
//! - `seed.rs`: the book app's seed data, and [`Store::reset`].
//! - `catalog.rs`: [`Product`], [`User`], find-or-create by email.
//! - `orders.rs`: [`NewOrder`] validation, [`Order`] and its updates.
//! - `outbox.rs`: the transactional outbox and its relay's claim.
//! - `reminders.rs`: the periodic sweep's table, naive and claiming reads.
//! - `error.rs`: [`StoreError`], [`FieldError`].
//! - `single.rs`: [`Store::simulation`], every statement on one held connection.

mod catalog;
mod error;
mod orders;
mod outbox;
mod reminders;
mod schema;
mod scratch;
mod seed;
mod single;

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool, Connection, Executor};

pub use catalog::{Product, User};
pub use error::{FieldError, StoreError};
pub use orders::{NewOrder, Order, OrderState};
pub use outbox::OutboxEntry;
pub use reminders::Reminder;
pub use scratch::{with_database, ScratchDatabase};
pub use seed::{SeedProduct, SEED_PRODUCTS, SEED_USER_EMAIL};

use error::{redact, Context};
use single::{Conn, Single, Tx};

/// Which SQL database a [`Store`] talks to. Only the schema and the way a
/// transaction starts differ between them; the queries are shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// A file, or a named in-memory database shared by the pool.
    Sqlite,
    /// A Postgres server.
    Postgres,
}

impl Dialect {
    /// The URL's dialect, from its scheme.
    pub fn from_url(url: &str) -> Option<Dialect> {
        if url.starts_with("sqlite:") {
            Some(Dialect::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Dialect::Postgres)
        } else {
            None
        }
    }

    /// Human name for messages and the status page.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "SQLite",
            Dialect::Postgres => "Postgres",
        }
    }

    /// How a write transaction starts. SQLite's default `BEGIN` is deferred:
    /// a transaction that reads then writes must upgrade its lock and can fail
    /// with "database is locked" when another writer got there first, without
    /// waiting. `BEGIN IMMEDIATE` takes the write lock up front, so writers
    /// queue (up to the busy timeout) instead.
    fn begin_statement(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The store: a connection pool plus the dialect. Cheap to clone (the pool is
/// shared); every clone sees the same database.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// Where writes go. On SQLite, a pool of one connection: SQLite lets one
    /// writer in at a time, and a writer that finds the lock taken sleeps in
    /// SQLite's busy handler (1 ms, then 2, 5, 10 … ms) rather than waiting
    /// its turn, which under load costs more than the writes themselves. The
    /// process's writers queue here instead, in order, without sleeping;
    /// readers keep `pool` (WAL: they see the last commit meanwhile). On
    /// Postgres, `pool` itself.
    writer: AnyPool,
    dialect: Dialect,
    url: String,
    /// For an in-memory SQLite database: one connection held open for the
    /// store's life, because SQLite drops a memory database when its last
    /// connection closes, and a pool may close idle connections.
    _keeper: Option<Arc<Mutex<AnyConnection>>>,
    /// For [`Store::temporary`]: removes the database file when the last
    /// clone is dropped.
    _temp_file: Option<Arc<TempFile>>,
    /// For [`Store::simulation`]: the one connection every statement takes
    /// instead of `pool` and `writer` (see `single.rs`).
    single: Option<Single>,
}

/// A database file deleted (with its WAL and shared-memory files) on drop.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("dialect", &self.dialect)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Distinguishes the throwaway databases (memory, temporary) of one process.
static DB_SEQ: AtomicU64 = AtomicU64::new(0);

/// How long a query waits for a pooled connection before it fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A fresh, process-unique in-memory SQLite database that every connection of
/// one pool opens, so parallel tests don't share.
///
/// It lives in SQLite's `memdb` VFS (a name starting with `/` is shared by the
/// process's connections) rather than in a shared-cache `:memory:` database.
/// Neither gives readers a snapshot while a write transaction is open: with
/// memdb a reader gets "database is locked" after the busy timeout (5 s),
/// with shared cache it waits for the commit with no limit, which hangs a
/// task that reads while holding the transaction. The error is the lesser
/// evil; [`Store::temporary`] is the store with real isolation.
fn memory_url() -> String {
    let seq = DB_SEQ.fetch_add(1, Ordering::Relaxed);
    let nonce: u32 = rand::random();
    format!(
        "sqlite:/idemlab-mem-{}-{seq}-{nonce:08x}?mode=rwc&vfs=memdb",
        std::process::id()
    )
}

/// `sqlite::memory:` (and friends) name no database, so through the `Any`
/// driver every pooled connection would get its own empty one. Give it a name.
fn normalize_url(url: &str) -> String {
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return url.to_string();
    };
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let anonymous_memory =
        path == ":memory:" || (path.is_empty() && query.split('&').any(|kv| kv == "mode=memory"));
    if anonymous_memory {
        memory_url()
    } else {
        url.to_string()
    }
}

fn is_memory(url: &str) -> bool {
    url.starts_with("sqlite:") && (url.contains("vfs=memdb") || url.contains("mode=memory"))
}

/// Wall-clock epoch milliseconds, for rows stamped without a caller's clock.
pub(crate) fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Opens the database at `url`, applies missing migrations and the seed
    /// data (both idempotent: connecting to an existing database keeps its
    /// orders and stock).
    ///
    /// `sqlite://PATH?mode=rwc` (a file, created if missing), `sqlite::memory:`
    /// (a fresh in-memory database), `postgres://…` / `postgresql://…`.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let dialect = Dialect::from_url(url)
            .ok_or_else(|| StoreError::UnsupportedUrl { url: redact(url) })?;
        sqlx::any::install_default_drivers();
        let url = normalize_url(url);
        let shown = redact(&url);
        let connect_err = |source| StoreError::Connect {
            url: shown.clone(),
            source,
        };

        let keeper = if is_memory(&url) {
            let conn = AnyConnection::connect(&url).await.map_err(connect_err)?;
            Some(Arc::new(Mutex::new(conn)))
        } else {
            None
        };
        // A job waits at most this long for a connection, then fails and is
        // retried, as with ActiveRecord's checkout timeout: with the database
        // down, jobs show errors and back off instead of hanging (sqlx's
        // default is 30 s).
        let mut options = AnyPoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT);
        if keeper.is_some() {
            // Idle connections may come and go; the keeper holds the data.
            options = options.min_connections(1);
        }
        // No ping before each use: it would double every query's cost, and
        // sqlx pings each connection as it comes back to the pool anyway,
        // dropping one that broke in use. A SQLite connection cannot break
        // the way a server's can; a Postgres one that broke while idle (a
        // restart) fails one query, which a job retries like any store error.
        options = options.test_before_acquire(false);
        let pool = options.connect(&url).await.map_err(connect_err)?;
        let writer = match dialect {
            Dialect::Sqlite => AnyPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .test_before_acquire(false)
                // What Rails (7.1 on) sets beside WAL: a commit no longer
                // waits for the disk (an fsync each, which one writer at a
                // time pays in turn). A commit survives the process dying —
                // the lab's worker deaths; only an OS crash or power cut may
                // lose the last ones, and the database stays consistent.
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        Ok(())
                    })
                })
                .connect(&url)
                .await
                .map_err(connect_err)?,
            Dialect::Postgres => pool.clone(),
        };

        if dialect == Dialect::Sqlite && keeper.is_none() {
            // Readers don't wait for a committing writer, and the setting
            // sticks to the file. (memdb has no WAL; it keeps its journal.)
            sqlx::query("PRAGMA journal_mode = WAL")
                .fetch_optional(&pool)
                .await
                .ctx("switching SQLite to write-ahead logging")?;
        }
        let store = Store {
            pool,
            writer,
            dialect,
            url: shown,
            _keeper: keeper,
            _temp_file: None,
            single: None,
        };
        schema::migrate(&store.pool, dialect).await?;
        store.seed().await?;
        tracing::debug!(dialect = %dialect, url = %store.url, "store ready");
        Ok(store)
    }

    /// A fresh in-memory SQLite store, shared by all its pool's connections
    /// and by its clones, and by nothing else: each call gets its own
    /// database, so tests can run in parallel.
    ///
    /// One limit: while a [`StoreTx`] is open, other connections cannot
    /// read (they wait, then fail with "database is locked" after 5 s; see
    /// `memory_url`). Tests of what a worker sees before the
    /// commit (the `in-transaction` and `outbox` enqueue variants) need
    /// [`Store::temporary`] or Postgres.
    pub async fn memory() -> Result<Store, StoreError> {
        Store::connect(&memory_url()).await
    }

    /// A fresh SQLite database in a file under the temp directory, in WAL
    /// mode, deleted when the last clone of the store is dropped. Unlike
    /// [`Store::memory`], a reader sees the last committed data while a
    /// transaction is open — the same isolation as a SQLite file or Postgres
    /// in production — at the cost of a file.
    pub async fn temporary() -> Result<Store, StoreError> {
        let seq = DB_SEQ.fetch_add(1, Ordering::Relaxed);
        let nonce: u32 = rand::random();
        let path = std::env::temp_dir().join(format!(
            "idemlab-{}-{seq}-{nonce:08x}.db",
            std::process::id()
        ));
        // Created first, so it is removed even if connecting fails half-way.
        let file = Arc::new(TempFile(path));
        let mut store = Store::connect(&format!("sqlite://{}?mode=rwc", file.0.display())).await?;
        store._temp_file = Some(file);
        Ok(store)
    }

    /// Which database this is.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The URL it was opened with, password removed (for the status page).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A round trip to the database, for the web lab's status block.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&mut *self.conn().await?)
            .await
            .ctx("pinging the database")?;
        Ok(())
    }

    /// Closes the pool, waiting for connections in use to be returned. Other
    /// clones of this store can no longer query afterwards.
    pub async fn close(&self) {
        if let Some(single) = &self.single {
            single.close();
        }
        self.writer.close().await;
        self.pool.close().await;
    }

    /// Starts a transaction the caller controls: write an order, an outbox
    /// row, …, then [`StoreTx::commit`] or [`StoreTx::rollback`]. Dropping
    /// it without committing rolls back.
    pub async fn begin(&self) -> Result<StoreTx, StoreError> {
        let begin = self.dialect.begin_statement();
        let tx = match &self.single {
            Some(single) => Tx::Single(single.begin(begin).await?),
            None => Tx::Pooled(
                self.writer
                    .begin_with(begin)
                    .await
                    .ctx("starting a transaction")?,
            ),
        };
        Ok(StoreTx { tx })
    }

    /// A connection for the single-statement operations: pooled, or the
    /// simulation store's held one.
    async fn conn(&self) -> Result<Conn, StoreError> {
        if let Some(single) = &self.single {
            return single.lock().await.map(Conn::Single);
        }
        self.pool
            .acquire()
            .await
            .map(Conn::Pooled)
            .ctx("acquiring a connection from the pool")
    }

    /// The writers' connection, for the single-statement writes (see
    /// `Store::writer`). A statement that writes through [`Store::conn`]
    /// instead is still correct, only slower under load.
    async fn write_conn(&self) -> Result<Conn, StoreError> {
        if let Some(single) = &self.single {
            return single.lock().await.map(Conn::Single);
        }
        self.writer
            .acquire()
            .await
            .map(Conn::Pooled)
            .ctx("acquiring the writers' connection")
    }
}

/// A transaction on the store. The writes it makes are seen by nobody else
/// until [`StoreTx::commit`]; [`StoreTx::rollback`] (or dropping it) undoes
/// them all — the stock decrement and a newly created user included.
pub struct StoreTx {
    tx: Tx,
}

impl fmt::Debug for StoreTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreTx").finish_non_exhaustive()
    }
}

impl StoreTx {
    /// Makes the transaction's writes permanent and visible.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await
    }

    /// Undoes every write made in the transaction.
    pub async fn rollback(self) -> Result<(), StoreError> {
        self.tx.rollback().await
    }

    fn conn(&mut self) -> &mut AnyConnection {
        self.tx.conn()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_memory_urls_get_a_name() {
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://?mode=memory",
        ] {
            let named = normalize_url(url);
            assert!(named.starts_with("sqlite:/idemlab-mem-"), "{named}");
            assert!(is_memory(&named));
        }
        assert_ne!(
            normalize_url("sqlite::memory:"),
            normalize_url("sqlite::memory:")
        );
        assert_eq!(
            normalize_url("sqlite://data/lab.db?mode=rwc"),
            "sqlite://data/lab.db?mode=rwc"
        );
        assert_eq!(normalize_url("postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn dialect_from_url() {
        assert_eq!(Dialect::from_url("sqlite::memory:"), Some(Dialect::Sqlite));
        assert_eq!(
            Dialect::from_url("postgresql://h/d"),
            Some(Dialect::Postgres)
        );
        assert_eq!(Dialect::from_url("mysql://h/d"), None);
    }
}
