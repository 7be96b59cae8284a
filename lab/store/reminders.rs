//! Reminders for the periodic sweep, with the naive read that lets two
//! overlapping sweeps send the same reminder, and the atomic claim that
//! does not.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{FromRow, Row};

use super::error::StoreError;
use super::trouble::Context;
use super::Store;

/// An email due at a time, sent by the sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reminder {
    pub id: i64,
    /// Who gets it.
    pub email: String,
    /// Not sent before this.
    pub due_at_ms: i64,
    /// The sweep that claimed it (safe sweep only).
    pub claimed_by: Option<String>,
    pub claimed_at_ms: Option<i64>,
    /// Set once sent.
    pub sent_at_ms: Option<i64>,
    /// The email service's id for the sent email.
    pub email_id: Option<String>,
}

impl FromRow<'_, AnyRow> for Reminder {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Reminder {
            id: row.try_get("id")?,
            email: row.try_get("email")?,
            due_at_ms: row.try_get("due_at_ms")?,
            claimed_by: row.try_get("claimed_by")?,
            claimed_at_ms: row.try_get("claimed_at_ms")?,
            sent_at_ms: row.try_get("sent_at_ms")?,
            email_id: row.try_get("email_id")?,
        })
    }
}

macro_rules! reminder_cols {
    () => {
        "id, email, due_at_ms, claimed_by, claimed_at_ms, sent_at_ms, email_id"
    };
}

impl Store {
    /// Schedules a reminder to `email` at `due_at_ms`.
    pub async fn add_reminder(&self, email: &str, due_at_ms: i64) -> Result<Reminder, StoreError> {
        sqlx::query_as::<_, Reminder>(concat!(
            "INSERT INTO reminders (email, due_at_ms) VALUES ($1, $2) RETURNING ",
            reminder_cols!()
        ))
        .bind(email)
        .bind(due_at_ms)
        .fetch_one(&mut *self.write_conn().await?)
        .await
        .ctx("adding a reminder")
    }

    /// Every reminder, by id (for the checker).
    pub async fn reminders(&self) -> Result<Vec<Reminder>, StoreError> {
        sqlx::query_as::<_, Reminder>(concat!(
            "SELECT ",
            reminder_cols!(),
            " FROM reminders ORDER BY id"
        ))
        .fetch_all(&mut *self.conn().await?)
        .await
        .ctx("listing reminders")
    }

    /// The naive sweep's read (`select-then-send`): unsent reminders due by
    /// `now_ms`, by id. It claims nothing, so a second sweep that runs before
    /// the first has marked them sent gets the same rows and sends them again
    /// — the bug the lab demonstrates.
    pub async fn due_reminders(&self, now_ms: i64) -> Result<Vec<Reminder>, StoreError> {
        sqlx::query_as::<_, Reminder>(concat!(
            "SELECT ",
            reminder_cols!(),
            " FROM reminders WHERE sent_at_ms IS NULL AND due_at_ms <= $1 ORDER BY id"
        ))
        .bind(now_ms)
        .fetch_all(&mut *self.conn().await?)
        .await
        .ctx("reading due reminders")
    }

    /// Records that a reminder was sent (both sweeps call it after sending).
    pub async fn mark_reminder_sent(
        &self,
        id: i64,
        email_id: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let result =
            sqlx::query("UPDATE reminders SET sent_at_ms = $1, email_id = $2 WHERE id = $3")
                .bind(now_ms)
                .bind(email_id)
                .bind(id)
                .execute(&mut *self.write_conn().await?)
                .await
                .ctx("marking a reminder sent")?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "reminder",
                id,
            });
        }
        Ok(())
    }

    /// The safe sweep's read (`atomic-claim`): claims every unclaimed, unsent
    /// reminder due by `now_ms` for `claimer` and returns them, by id. One
    /// `UPDATE … RETURNING` (SQLite ≥ 3.35, Postgres): a row is claimed by one
    /// statement only, so two overlapping sweeps never get the same reminder.
    ///
    /// A claimed reminder whose sweep dies before sending stays claimed; the
    /// lab treats that as a lost reminder rather than risk a duplicate.
    pub async fn claim_due_reminders(
        &self,
        now_ms: i64,
        claimer: &str,
    ) -> Result<Vec<Reminder>, StoreError> {
        let mut claimed = sqlx::query_as::<_, Reminder>(concat!(
            "UPDATE reminders SET claimed_by = $1, claimed_at_ms = $2 \
             WHERE claimed_by IS NULL AND sent_at_ms IS NULL AND due_at_ms <= $2 RETURNING ",
            reminder_cols!()
        ))
        .bind(claimer)
        .bind(now_ms)
        .fetch_all(&mut *self.write_conn().await?)
        .await
        .ctx("claiming due reminders")?;
        // RETURNING has no ORDER BY.
        claimed.sort_by_key(|r| r.id);
        Ok(claimed)
    }
}
