//! The transactional outbox: the job to enqueue is written in the same
//! transaction as the order, so a crash between commit and enqueue loses
//! nothing (the dual-write bug); a relay later moves rows to the queue.
//!
//! `order_id` is not a foreign key: the outbox is a message log, and the lab
//! must be able to relay a job for an order that does not exist (the job then
//! fails permanently, which is a scenario of its own).

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, FromRow, Row};

use super::error::StoreError;
use super::trouble::Context;
use super::{wall_clock_ms, Dialect, Store, StoreTx};

// The limits below are written `LIMIT $n + 0`, not `LIMIT $n`: SQLite (built
// with SQLITE_ENABLE_STAT4, as sqlx's bundled one is) lets the value of a bare
// LIMIT parameter shape the plan, so binding it throws the prepared statement
// away and the next run parses and plans it again — every relay, tripling the
// claim's cost (12 -> 38 us). An expression is evaluated when the statement
// runs instead. Postgres reads both the same.

/// One job waiting to be (or already) relayed to the queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxEntry {
    pub id: i64,
    pub order_id: i64,
    /// The job class to enqueue, e.g. `CompleteOrderJob`.
    pub job_class: String,
    /// The job's arguments (stored as JSON text).
    pub args: serde_json::Value,
    /// The queue to enqueue on (`high`, `default`).
    pub queue: String,
    pub created_at_ms: i64,
    /// When a relay claimed it; `None` while pending.
    pub relayed_at_ms: Option<i64>,
}

impl FromRow<'_, AnyRow> for OutboxEntry {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        let args: String = row.try_get("args")?;
        let args = serde_json::from_str(&args).map_err(|e| sqlx::Error::ColumnDecode {
            index: "args".into(),
            source: format!("outbox args are not JSON: {e}").into(),
        })?;
        Ok(OutboxEntry {
            id: row.try_get("id")?,
            order_id: row.try_get("order_id")?,
            job_class: row.try_get("job_class")?,
            args,
            queue: row.try_get("queue")?,
            created_at_ms: row.try_get("created_at_ms")?,
            relayed_at_ms: row.try_get("relayed_at_ms")?,
        })
    }
}

macro_rules! outbox_cols {
    () => {
        "id, order_id, job_class, args, queue, created_at_ms, relayed_at_ms"
    };
}

async fn add_outbox(
    conn: &mut AnyConnection,
    order_id: i64,
    job_class: &str,
    args: &serde_json::Value,
    queue: &str,
    now_ms: i64,
) -> Result<OutboxEntry, StoreError> {
    sqlx::query_as::<_, OutboxEntry>(concat!(
        "INSERT INTO outbox (order_id, job_class, args, queue, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5) RETURNING ",
        outbox_cols!()
    ))
    .bind(order_id)
    .bind(job_class)
    .bind(args.to_string())
    .bind(queue)
    .bind(now_ms)
    .fetch_one(conn)
    .await
    .ctx("adding an outbox row")
}

impl StoreTx {
    /// Adds an outbox row in this transaction: it exists if and only if the
    /// transaction (with its order) commits.
    pub async fn add_outbox(
        &mut self,
        order_id: i64,
        job_class: &str,
        args: &serde_json::Value,
        queue: &str,
    ) -> Result<OutboxEntry, StoreError> {
        add_outbox(
            self.conn(),
            order_id,
            job_class,
            args,
            queue,
            wall_clock_ms(),
        )
        .await
    }
}

impl Store {
    /// Adds an outbox row on its own (outside any order transaction).
    pub async fn add_outbox(
        &self,
        order_id: i64,
        job_class: &str,
        args: &serde_json::Value,
        queue: &str,
    ) -> Result<OutboxEntry, StoreError> {
        let mut conn = self.write_conn().await?;
        add_outbox(&mut conn, order_id, job_class, args, queue, wall_clock_ms()).await
    }

    /// Up to `limit` rows not yet relayed, oldest first. Reading is not
    /// claiming: a relay must [`Store::claim_outbox`] each row before it
    /// enqueues it.
    pub async fn pending_outbox(&self, limit: i64) -> Result<Vec<OutboxEntry>, StoreError> {
        sqlx::query_as::<_, OutboxEntry>(concat!(
            "SELECT ",
            outbox_cols!(),
            " FROM outbox WHERE relayed_at_ms IS NULL ORDER BY id LIMIT $1 + 0"
        ))
        .bind(limit)
        .fetch_all(&mut *self.conn().await?)
        .await
        .ctx("reading the pending outbox")
    }

    /// Every outbox row, relayed or not, oldest first (for the checker and UI).
    pub async fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        sqlx::query_as::<_, OutboxEntry>(concat!(
            "SELECT ",
            outbox_cols!(),
            " FROM outbox ORDER BY id"
        ))
        .fetch_all(&mut *self.conn().await?)
        .await
        .ctx("listing the outbox")
    }

    /// Marks a row relayed if nobody has yet; `true` means this caller won
    /// and must enqueue the job. One conditional UPDATE, so of two relays
    /// racing for the same row exactly one gets `true`.
    pub async fn claim_outbox(&self, id: i64, now_ms: i64) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE outbox SET relayed_at_ms = $1 WHERE id = $2 AND relayed_at_ms IS NULL",
        )
        .bind(now_ms)
        .bind(id)
        .execute(&mut *self.write_conn().await?)
        .await
        .ctx("claiming an outbox row")?;
        Ok(result.rows_affected() == 1)
    }

    /// Claims up to `limit` pending rows at once and returns them, oldest
    /// first: what [`Store::claim_outbox`] does for one row, in one statement
    /// for all, so a relay pays one write per call rather than one per row
    /// (and, when several relays race, one per row each). A row goes to one
    /// caller only. On Postgres a racing relay skips the rows another is
    /// claiming (`SKIP LOCKED`): waiting for them instead could deadlock two
    /// relays that lock overlapping rows in different orders. SQLite has one
    /// writer at a time.
    pub async fn claim_pending_outbox(
        &self,
        limit: i64,
        now_ms: i64,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let sql = match self.dialect {
            Dialect::Postgres => concat!(
                "UPDATE outbox SET relayed_at_ms = $1 WHERE relayed_at_ms IS NULL AND id IN \
                 (SELECT id FROM outbox WHERE relayed_at_ms IS NULL ORDER BY id LIMIT $2 + 0 \
                 FOR UPDATE SKIP LOCKED) RETURNING ",
                outbox_cols!()
            ),
            Dialect::Sqlite => concat!(
                "UPDATE outbox SET relayed_at_ms = $1 WHERE relayed_at_ms IS NULL AND id IN \
                 (SELECT id FROM outbox WHERE relayed_at_ms IS NULL ORDER BY id LIMIT $2 + 0) \
                 RETURNING ",
                outbox_cols!()
            ),
        };
        let mut claimed = sqlx::query_as::<_, OutboxEntry>(sql)
            .bind(now_ms)
            .bind(limit)
            .fetch_all(&mut *self.write_conn().await?)
            .await
            .ctx("claiming pending outbox rows")?;
        // RETURNING has no ORDER BY.
        claimed.sort_by_key(|e| e.id);
        Ok(claimed)
    }

    /// Undoes a claim: the row is pending again. For a relay whose enqueue
    /// failed after it won the claim, so the job is retried, not lost.
    pub async fn release_outbox(&self, id: i64) -> Result<(), StoreError> {
        let result = sqlx::query("UPDATE outbox SET relayed_at_ms = NULL WHERE id = $1")
            .bind(id)
            .execute(&mut *self.write_conn().await?)
            .await
            .ctx("releasing an outbox row")?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "outbox row",
                id,
            });
        }
        Ok(())
    }
}
