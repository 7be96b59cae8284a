//! Products and users: what an order is for and who pays for it.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, FromRow, Row};

use super::error::StoreError;
use super::trouble::Context;
use super::Store;

/// Something the shop sells, with its stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Product {
    pub id: i64,
    /// Unique.
    pub name: String,
    /// Decremented by every order; an order for more than this is refused.
    pub quantity_remaining: i64,
    /// The unit price; an order's amount is this times its quantity.
    pub price_cents: i64,
}

impl FromRow<'_, AnyRow> for Product {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Product {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            quantity_remaining: row.try_get("quantity_remaining")?,
            price_cents: row.try_get("price_cents")?,
        })
    }
}

/// A customer, found or created by email when they order. The payments ids
/// are what the charge job sends to the payments service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: i64,
    /// Unique; the key orders find their user by.
    pub email: String,
    pub payments_customer_id: String,
    pub payments_payment_method_id: String,
}

impl FromRow<'_, AnyRow> for User {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(User {
            id: row.try_get("id")?,
            email: row.try_get("email")?,
            payments_customer_id: row.try_get("payments_customer_id")?,
            payments_payment_method_id: row.try_get("payments_payment_method_id")?,
        })
    }
}

/// The user columns, for `concat!` into `&'static str` queries.
macro_rules! user_cols {
    () => {
        "id, email, payments_customer_id, payments_payment_method_id"
    };
}

pub(crate) async fn product(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<Option<Product>, StoreError> {
    sqlx::query_as::<_, Product>(
        "SELECT id, name, quantity_remaining, price_cents FROM products WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
    .ctx("reading a product")
}

/// The payments ids a new user gets: derived from the email (FNV-1a), so a
/// re-run of the same scenario produces the same ids, and distinct per email.
pub(crate) fn payments_ids(email: &str) -> (String, String) {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in email.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (format!("cus_{hash:016x}"), format!("pm_{hash:016x}"))
}

/// The user with this email, created if there is none. Insert-or-ignore
/// first: a new customer costs that one statement, a returning one a select
/// after it; two orders for a new email at once end with one user, not a
/// unique-constraint error.
pub(crate) async fn find_or_create_user(
    conn: &mut AnyConnection,
    email: &str,
) -> Result<User, StoreError> {
    let (customer, method) = payments_ids(email);
    let created = sqlx::query_as::<_, User>(concat!(
        "INSERT INTO users (email, payments_customer_id, payments_payment_method_id) \
         VALUES ($1, $2, $3) ON CONFLICT (email) DO NOTHING RETURNING ",
        user_cols!()
    ))
    .bind(email)
    .bind(&customer)
    .bind(&method)
    .fetch_optional(&mut *conn)
    .await
    .ctx("creating a user")?;
    if let Some(user) = created {
        return Ok(user);
    }
    user_by_email(conn, email)
        .await?
        .ok_or(StoreError::Database {
            context: "finding the user with this email",
            source: sqlx::Error::RowNotFound,
        })
}

pub(crate) async fn user_by_email(
    conn: &mut AnyConnection,
    email: &str,
) -> Result<Option<User>, StoreError> {
    sqlx::query_as::<_, User>(concat!(
        "SELECT ",
        user_cols!(),
        " FROM users WHERE email = $1"
    ))
    .bind(email)
    .fetch_optional(conn)
    .await
    .ctx("reading a user")
}

impl Store {
    /// Every product, by id.
    pub async fn products(&self) -> Result<Vec<Product>, StoreError> {
        sqlx::query_as::<_, Product>(
            "SELECT id, name, quantity_remaining, price_cents FROM products ORDER BY id",
        )
        .fetch_all(&mut *self.conn().await?)
        .await
        .ctx("listing products")
    }

    /// One product, or `None` if no product has this id.
    pub async fn product(&self, id: i64) -> Result<Option<Product>, StoreError> {
        product(&mut *self.conn().await?, id).await
    }

    /// One user by id (an order's `user_id`).
    pub async fn user(&self, id: i64) -> Result<Option<User>, StoreError> {
        sqlx::query_as::<_, User>(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *self.conn().await?)
        .await
        .ctx("reading a user")
    }

    /// One user by email.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        user_by_email(&mut *self.conn().await?, email).await
    }

    /// Sets a product's stock. The seed stock (1,000 at most) caps how many
    /// orders a load test such as `benches/runner.rs` can place.
    pub async fn restock(
        &self,
        product_id: i64,
        quantity_remaining: i64,
    ) -> Result<(), StoreError> {
        let result = sqlx::query("UPDATE products SET quantity_remaining = $1 WHERE id = $2")
            .bind(quantity_remaining)
            .bind(product_id)
            .execute(&mut *self.write_conn().await?)
            .await
            .ctx("restocking a product")?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "product",
                id: product_id,
            });
        }
        Ok(())
    }
}

/// Adds a user unless one with this email exists.
pub(super) async fn insert_user(
    conn: &mut AnyConnection,
    email: &str,
    customer: &str,
    method: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO users (email, payments_customer_id, payments_payment_method_id) \
         VALUES ($1, $2, $3) ON CONFLICT (email) DO NOTHING",
    )
    .bind(email)
    .bind(customer)
    .bind(method)
    .execute(&mut *conn)
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    #[test]
    fn payments_ids_are_stable_and_distinct() {
        let a = super::payments_ids("a@example.com");
        assert_eq!(a, super::payments_ids("a@example.com"));
        assert_ne!(a, super::payments_ids("b@example.com"));
        assert!(a.0.starts_with("cus_") && a.1.starts_with("pm_"));
    }
}
