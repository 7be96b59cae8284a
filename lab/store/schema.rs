//! The schema, as embedded SQL migrations (`migrations/sqlite/`,
//! `migrations/postgres/`): one list per dialect, side by side, so a column
//! added to one is visibly missing from the other (a test compares them).
//!
//! Both dialects keep to what sqlx's `Any` driver can carry: integers, text,
//! nothing else. Times are epoch milliseconds (`*_ms`), booleans are 0/1
//! integers, JSON is text. Ids are never reused (SQLite `AUTOINCREMENT`,
//! Postgres identity columns), because the pipeline's idempotency keys contain
//! the order id: a reused id after `reset` would replay an old charge.
//!
//! Migrations are applied by sqlx's migrator (table `_sqlx_migrations`, a
//! Postgres advisory lock so two processes starting together don't race).
//! Never edit an applied migration: sqlx checks their checksums and refuses to
//! start. Add a new version to both lists instead.

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Acquire, Any, SqlSafeStr};

use super::error::StoreError;
use super::Dialect;

const SQLITE_V1: &str = include_str!("migrations/sqlite/0001_schema.sql");

const POSTGRES_V1: &str = include_str!("migrations/postgres/0001_schema.sql");

/// `(version, description, sql)` for each dialect, oldest first.
const SQLITE: &[(i64, &str, &str)] = &[(1, "schema", SQLITE_V1)];
const POSTGRES: &[(i64, &str, &str)] = &[(1, "schema", POSTGRES_V1)];

/// The migrator for one dialect.
pub(crate) fn migrator(dialect: Dialect) -> Migrator {
    let list = match dialect {
        Dialect::Sqlite => SQLITE,
        Dialect::Postgres => POSTGRES,
    };
    Migrator::with_migrations(
        list.iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// Applies whatever migrations the database lacks; a no-op on an up-to-date
/// database, so every `Store::connect` can call it. On a pool, or on one
/// connection (`Store::simulation`).
pub(crate) async fn migrate<'a>(
    on: impl Acquire<'a, Database = Any>,
    dialect: Dialect,
) -> Result<(), StoreError> {
    migrator(dialect)
        .run(on)
        .await
        .map_err(|source| StoreError::Migrate {
            dialect: dialect.name(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two dialects must describe the same tables and columns.
    #[test]
    fn dialects_have_the_same_columns() {
        fn columns(sql: &str) -> Vec<String> {
            sql.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with(')'))
                .map(|l| l.split_whitespace().next().unwrap().to_string())
                .collect()
        }
        assert_eq!(SQLITE.len(), POSTGRES.len());
        for (s, p) in SQLITE.iter().zip(POSTGRES) {
            assert_eq!(s.0, p.0);
            assert_eq!(columns(s.2), columns(p.2));
        }
    }
}
