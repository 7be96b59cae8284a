//! The book app's seed data, and the reset that returns a store to it.

use serde::Serialize;
use std::sync::OnceLock;

use sqlx::{AnyConnection, Executor};

use super::error::StoreError;
use super::trouble::Context;
use super::{Dialect, Store};

/// A product the store starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SeedProduct {
    pub name: &'static str,
    pub quantity_remaining: i64,
    pub price_cents: i64,
}

/// The book app's products, with their starting stock and price.
pub const SEED_PRODUCTS: [SeedProduct; 4] = [
    SeedProduct {
        name: "Flux Capacitor",
        quantity_remaining: 100,
        price_cents: 12300,
    },
    SeedProduct {
        name: "Self-sealing Stembolt",
        quantity_remaining: 4,
        price_cents: 567800,
    },
    SeedProduct {
        name: "Graviton Emitter",
        quantity_remaining: 32,
        price_cents: 76599,
    },
    SeedProduct {
        name: "Thopter Cleaning Fluid",
        quantity_remaining: 1000,
        price_cents: 1244,
    },
];

/// The book app's one seeded user.
pub const SEED_USER_EMAIL: &str = "pat@example.com";
const SEED_USER_CUSTOMER: &str = "cus_pat";
const SEED_USER_METHOD: &str = "pm_pat";

/// Inserts the seeds that are missing; leaves existing rows (and their
/// stock) alone, so reconnecting does not undo orders.
async fn insert_missing(conn: &mut AnyConnection) -> Result<(), StoreError> {
    for p in SEED_PRODUCTS {
        sqlx::query(
            "INSERT INTO products (name, quantity_remaining, price_cents) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(p.name)
        .bind(p.quantity_remaining)
        .bind(p.price_cents)
        .execute(&mut *conn)
        .await
        .ctx("seeding products")?;
    }
    super::catalog::insert_user(conn, SEED_USER_EMAIL, SEED_USER_CUSTOMER, SEED_USER_METHOD)
        .await
        .ctx("seeding users")?;
    Ok(())
}

impl Store {
    /// Adds the seed rows that are missing (run by `connect`).
    pub(super) async fn seed(&self) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        insert_missing(tx.conn()).await?;
        tx.commit().await
    }

    /// Back to the seed state, in one transaction: deletes every order,
    /// outbox row, reminder, non-seed user and non-seed product, and restores
    /// the seed products' stock and prices and the seed user's payments ids.
    /// Ids keep counting up (they are never reused; see `schema.rs`).
    pub async fn reset(&self) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let conn = tx.conn();
        for (sql, what) in [
            ("DELETE FROM outbox", "clearing the outbox"),
            ("DELETE FROM reminders", "clearing reminders"),
            ("DELETE FROM orders", "clearing orders"),
        ] {
            sqlx::query(sql).execute(&mut *conn).await.ctx(what)?;
        }
        sqlx::query("DELETE FROM users WHERE email <> $1")
            .bind(SEED_USER_EMAIL)
            .execute(&mut *conn)
            .await
            .ctx("clearing users")?;
        sqlx::query("DELETE FROM products WHERE name NOT IN ($1, $2, $3, $4)")
            .bind(SEED_PRODUCTS[0].name)
            .bind(SEED_PRODUCTS[1].name)
            .bind(SEED_PRODUCTS[2].name)
            .bind(SEED_PRODUCTS[3].name)
            .execute(&mut *conn)
            .await
            .ctx("clearing products")?;
        for p in SEED_PRODUCTS {
            sqlx::query(
                "UPDATE products SET quantity_remaining = $1, price_cents = $2 WHERE name = $3",
            )
            .bind(p.quantity_remaining)
            .bind(p.price_cents)
            .bind(p.name)
            .execute(&mut *conn)
            .await
            .ctx("restoring product stock")?;
        }
        sqlx::query(
            "UPDATE users SET payments_customer_id = $1, payments_payment_method_id = $2 \
             WHERE email = $3",
        )
        .bind(SEED_USER_CUSTOMER)
        .bind(SEED_USER_METHOD)
        .bind(SEED_USER_EMAIL)
        .execute(&mut *conn)
        .await
        .ctx("restoring the seed user")?;
        insert_missing(conn).await?;
        tx.commit().await?;
        tracing::info!("store reset to its seed data");
        Ok(())
    }

    /// Resets the store and restarts its ids, so that a store reused for
    /// another simulated run gives the same ids as a fresh one (the same
    /// seed, the same ledgers). SQLite only: the web lab's reset keeps ids
    /// growing on purpose, so that an old link never shows a new order.
    ///
    /// What [`Store::reset`] does, then `DELETE FROM sqlite_sequence`, as one
    /// script in one transaction (see `rewind_script`): the simulator
    /// rewinds after every run, and as some twenty statements sent one by
    /// one to SQLite's thread the rewind cost a fifth of a one-order run.
    pub async fn rewind(&self) -> Result<(), StoreError> {
        if self.dialect() != Dialect::Sqlite {
            return Err(StoreError::Unsupported(
                "rewinding ids is for SQLite simulation stores",
            ));
        }
        let mut conn = self.write_conn().await?;
        // `query`, not `raw_sql`: the script's statements are prepared once
        // per connection and kept, instead of parsed on every rewind.
        let rewound = sqlx::query(rewind_script())
            .execute(&mut *conn)
            .await
            .ctx("rewinding to the seed data");
        if rewound.is_err() {
            // A statement failed half-way: the script's transaction is
            // still open on this connection.
            let _ = conn.execute("ROLLBACK").await;
        }
        rewound.map(drop)
    }
}

/// `s` as an SQL string literal.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// [`Store::rewind`]'s script, the seed values written in (they are
/// constants): what [`Store::reset`] does in fewer statements — an upsert
/// restores the seed products' stock and prices and puts back any that is
/// missing, another the seed user — then the id counters cleared.
fn rewind_script() -> &'static str {
    static SCRIPT: OnceLock<String> = OnceLock::new();
    SCRIPT.get_or_init(|| {
        let names: Vec<String> = SEED_PRODUCTS.iter().map(|p| quoted(p.name)).collect();
        let products: Vec<String> = SEED_PRODUCTS
            .iter()
            .zip(&names)
            .map(|(p, name)| format!("({name}, {}, {})", p.quantity_remaining, p.price_cents))
            .collect();
        let user = quoted(SEED_USER_EMAIL);
        let customer = quoted(SEED_USER_CUSTOMER);
        let method = quoted(SEED_USER_METHOD);
        format!(
            "BEGIN IMMEDIATE;\n\
             DELETE FROM outbox;\n\
             DELETE FROM reminders;\n\
             DELETE FROM orders;\n\
             DELETE FROM users WHERE email <> {user};\n\
             DELETE FROM products WHERE name NOT IN ({names});\n\
             INSERT INTO products (name, quantity_remaining, price_cents) VALUES {products} \
             ON CONFLICT (name) DO UPDATE SET quantity_remaining = excluded.quantity_remaining, \
             price_cents = excluded.price_cents;\n\
             INSERT INTO users (email, payments_customer_id, payments_payment_method_id) \
             VALUES ({user}, {customer}, {method}) ON CONFLICT (email) DO UPDATE SET \
             payments_customer_id = excluded.payments_customer_id, \
             payments_payment_method_id = excluded.payments_payment_method_id;\n\
             DELETE FROM sqlite_sequence;\n\
             COMMIT;\n",
            names = names.join(", "),
            products = products.join(", "),
        )
    })
}
