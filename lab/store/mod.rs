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
//! - `conns.rs`: pooled connections reused without sqlx's ping.
//! - `writer.rs`: where writes go (SQLite's one writer connection).

mod catalog;
mod conns;
mod error;
mod orders;
mod outbox;
mod reminders;
mod schema;
mod scratch;
mod seed;
mod sqlite_config;
mod trouble;
mod writer;

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, Connection, Executor};

pub use catalog::{Product, User};
pub use error::{FieldError, StoreError};
pub use orders::{NewOrder, Order, OrderState};
pub use outbox::OutboxEntry;
pub use reminders::Reminder;
pub use scratch::{with_database, ScratchDatabase};
pub use seed::{SeedProduct, SEED_PRODUCTS, SEED_USER_EMAIL};

use crate::redact::redact_url;
use conns::Conns;
use trouble::Context;
use writer::{Held, StoreConn, WriteTx, Writer};

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
    /// The connections for reads (and, on Postgres, writes): sqlx's pool,
    /// reused without its ping (see `conns.rs`).
    conns: Conns,
    /// Where writes go: on SQLite one connection taken in turn, on Postgres
    /// `pool` itself (see `writer.rs`).
    writer: Writer,
    /// Reads take the writers' connection too (a simulation store).
    reads_on_writer: bool,
    dialect: Dialect,
    url: String,
    /// For an in-memory SQLite database: one connection held open for the
    /// store's life, because SQLite drops a memory database when its last
    /// connection closes, and a pool may close idle connections.
    _keeper: Option<Arc<Mutex<AnyConnection>>>,
    /// For [`Store::temporary`]: removes the database file when the last
    /// clone is dropped.
    _temp_file: Option<Arc<TempFile>>,
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

/// How many connections a store opens at most (sqlx's default).
const POOL_SIZE: u32 = 10;

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

/// SQLite's writers' connection (see `writer.rs`).
async fn sqlite_writer(url: &str) -> Result<AnyConnection, sqlx::Error> {
    let mut conn = AnyConnection::connect(url).await?;
    // What Rails (7.1 on) sets beside WAL: a commit no longer waits for the
    // disk (an fsync each, which one writer at a time pays in turn). A commit
    // survives the process dying — the lab's worker deaths; only an OS crash
    // or power cut may lose the last ones, and the database stays consistent.
    conn.execute("PRAGMA synchronous = NORMAL").await?;
    Ok(conn)
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
        let dialect = Dialect::from_url(url).ok_or_else(|| StoreError::UnsupportedUrl {
            url: redact_url(url),
        })?;
        sqlite_config::before_first_connection();
        sqlx::any::install_default_drivers();
        let url = normalize_url(url);
        let shown = redact_url(&url);
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
        // No `min_connections`: the keeper holds an in-memory database's
        // data, and with it sqlx would need a runtime to drop a connection
        // (see `conns.rs`).
        let mut options = AnyPoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT);
        // No ping before each use: it would double every query's cost, and
        // sqlx pings each connection as it comes back to the pool anyway,
        // dropping one that broke in use. A SQLite connection cannot break
        // the way a server's can; a Postgres one that broke while idle (a
        // restart) fails one query, which a job retries like any store error.
        options = options.test_before_acquire(false);
        if dialect == Dialect::Postgres && !url.contains("synchronous_commit") {
            // Postgres's counterpart of SQLite's `synchronous = NORMAL` (see
            // `sqlite_writer`):
            // a commit returns without waiting for its WAL to reach the disk
            // (the WAL writer flushes within 0.6 s). A commit survives the
            // lab's processes dying and a clean Postgres restart; a crash of
            // Postgres itself or of the OS may lose the last ones, never
            // consistency. Waiting for the disk five times per order was a
            // quarter of the shared pipeline's time. A URL that sets it
            // (`?options=-c%20synchronous_commit%3Don`) keeps its setting.
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("SET synchronous_commit = off").await?;
                    Ok(())
                })
            });
        }
        let pool = options
            .max_connections(POOL_SIZE)
            .connect(&url)
            .await
            .map_err(connect_err)?;
        let conns = Conns::new(pool.clone(), POOL_SIZE);
        let writer = match dialect {
            Dialect::Sqlite => {
                let conn = sqlite_writer(&url).await.map_err(connect_err)?;
                Writer::Held(Held::new(conn, false))
            }
            Dialect::Postgres => Writer::Pool(conns.clone()),
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
            conns,
            writer,
            reads_on_writer: false,
            dialect,
            url: shown,
            _keeper: keeper,
            _temp_file: None,
        };
        schema::migrate(store.conns.pool(), dialect).await?;
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

    /// A fresh in-memory SQLite store for the simulator: like
    /// [`Store::memory`] (migrated, seeded, private to the caller), but every
    /// statement, read or write, takes one held connection (see `writer.rs`):
    /// no pool, no task spawned, usable from any runtime. Concurrent tasks
    /// take turns on it, so a task that reads while another's transaction is
    /// open waits for the commit (at most 5 s, then fails); the simulator
    /// runs one task at a time and never parks one inside a transaction.
    pub async fn simulation() -> Result<Store, StoreError> {
        sqlite_config::before_first_connection();
        sqlx::any::install_default_drivers();
        let url = memory_url();
        let shown = redact_url(&url);
        let connect_err = |source| StoreError::Connect {
            url: shown.clone(),
            source,
        };
        let mut conn = sqlite_writer(&url).await.map_err(connect_err)?;
        schema::migrate(&mut conn, Dialect::Sqlite).await?;
        // Never connected: every statement takes the held connection.
        let idle = AnyPoolOptions::new()
            .max_connections(1)
            .connect_lazy(&url)
            .map_err(connect_err)?;
        let store = Store {
            conns: Conns::new(idle, 1),
            writer: Writer::Held(Held::new(conn, true)),
            reads_on_writer: true,
            dialect: Dialect::Sqlite,
            url: shown,
            _keeper: None,
            _temp_file: None,
        };
        store.seed().await?;
        Ok(store)
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

    /// What a commit waits for, as the database reports it for the
    /// writers' sessions (`synchronous_commit = off` on Postgres,
    /// `synchronous = normal` on SQLite): a lab whose store may lose its last
    /// commits in a crash of the database says so on its status page.
    pub async fn commit_wait(&self) -> Result<String, StoreError> {
        let mut conn = self.write_conn().await?;
        match self.dialect {
            Dialect::Postgres => {
                let value: String =
                    sqlx::query_scalar("SELECT current_setting('synchronous_commit')")
                        .fetch_one(&mut *conn)
                        .await
                        .ctx("reading synchronous_commit")?;
                Ok(format!("synchronous_commit = {value}"))
            }
            Dialect::Sqlite => {
                let level: i64 = sqlx::query_scalar("PRAGMA synchronous")
                    .fetch_one(&mut *conn)
                    .await
                    .ctx("reading PRAGMA synchronous")?;
                let name = match level {
                    0 => "off",
                    1 => "normal",
                    2 => "full",
                    3 => "extra",
                    _ => "unknown",
                };
                Ok(format!("synchronous = {name}"))
            }
        }
    }

    /// Closes the pool, waiting for connections in use to be returned. Other
    /// clones of this store can no longer query afterwards.
    pub async fn close(&self) {
        self.writer.close().await;
        self.conns.close().await;
    }

    /// Starts a transaction the caller controls: write an order, an outbox
    /// row, …, then [`StoreTx::commit`] or [`StoreTx::rollback`]. Dropping
    /// it without committing rolls back.
    pub async fn begin(&self) -> Result<StoreTx, StoreError> {
        let tx = self.writer.begin(self.dialect.begin_statement()).await?;
        Ok(StoreTx { tx })
    }

    /// A pooled connection, for the single-statement operations.
    async fn conn(&self) -> Result<StoreConn, StoreError> {
        if self.reads_on_writer {
            return self.writer.acquire().await;
        }
        self.conns.acquire().await.map(StoreConn::Pooled)
    }

    /// The writers' connection, for the single-statement writes (see
    /// `Store::writer`). A statement that writes through [`Store::conn`]
    /// instead is still correct, only slower under load.
    async fn write_conn(&self) -> Result<StoreConn, StoreError> {
        self.writer.acquire().await
    }
}

/// A transaction on the store. The writes it makes are seen by nobody else
/// until [`StoreTx::commit`]; [`StoreTx::rollback`] (or dropping it) undoes
/// them all — the stock decrement and a newly created user included.
pub struct StoreTx {
    tx: WriteTx,
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
