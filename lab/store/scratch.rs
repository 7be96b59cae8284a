//! A throwaway Postgres database: created on a server for one run (a
//! scenario on the real engines, a test), dropped afterwards.

use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

use super::{Store, StoreError};

/// A database this process created; [`ScratchDatabase::drop_now`] removes it.
pub struct ScratchDatabase {
    admin: PgConnection,
    name: String,
}

impl ScratchDatabase {
    /// Creates `idemlab_<prefix>_<random>` on the server `server_url` names
    /// (any database on it the user may connect to) and opens a store on it.
    pub async fn create(server_url: &str, prefix: &str) -> Result<(Store, Self), StoreError> {
        let connect = |source| StoreError::Connect {
            url: server_url.to_string(),
            source,
        };
        let mut admin = PgConnection::connect(server_url).await.map_err(connect)?;
        let name = format!("idemlab_{prefix}_{:016x}", rand::random::<u64>());
        admin
            .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .map_err(|source| StoreError::Database {
                context: "creating a scratch database",
                source,
            })?;
        let store = Store::connect(&with_database(server_url, &name)).await?;
        Ok((store, Self { admin, name }))
    }

    /// Drops the database (closing what is still connected to it).
    pub async fn drop_now(mut self) {
        if let Err(err) = self
            .admin
            .execute(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .await
        {
            tracing::warn!(%err, database = %self.name, "could not drop a scratch database");
        }
        let _ = self.admin.close().await;
    }
}

/// `url` with its database name replaced by `name`, query string kept.
pub fn with_database(url: &str, name: &str) -> String {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[authority_start..];
    let query_at = rest.find('?').unwrap_or(rest.len());
    let path_at = rest[..query_at].find('/').unwrap_or(query_at);
    format!(
        "{}{}/{name}{}",
        &url[..authority_start],
        &rest[..path_at],
        &rest[query_at..]
    )
}
