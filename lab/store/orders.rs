//! Orders: validated and written with the stock decrement and the user in
//! one transaction, then updated by the pipeline's jobs step by step.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, FromRow, Row};

use super::catalog::{find_or_create_user, product, Product, User};
use super::error::{FieldError, StoreError};
use super::trouble::Context;
use super::{wall_clock_ms, Store, StoreTx};

/// An order as submitted by the form (the book app's `order[...]` fields).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOrder {
    pub product_id: i64,
    pub quantity: i64,
    pub email: String,
    pub address: String,
    /// Overrides the amount charged; `None` charges price × quantity. The
    /// scenarios use it to price an order at 9999 cents, which the fake
    /// payments service declines.
    #[serde(default)]
    pub amount_cents: Option<i64>,
}

impl NewOrder {
    /// The checks that need no database: blank email or address (blank means
    /// empty or only whitespace, as Rails' `presence`), quantity not above 0,
    /// a negative amount override.
    pub fn check_fields(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.quantity <= 0 {
            errors.push(FieldError::new("quantity", "must be greater than 0"));
        }
        if self.email.trim().is_empty() {
            errors.push(FieldError::new("email", "can't be blank"));
        }
        if self.address.trim().is_empty() {
            errors.push(FieldError::new("address", "can't be blank"));
        }
        if matches!(self.amount_cents, Some(cents) if cents < 0) {
            errors.push(FieldError::new(
                "amount_cents",
                "must be greater than or equal to 0",
            ));
        }
        errors
    }
}

/// How far an order got, from its columns: the furthest step recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderState {
    /// Saved; no charge recorded yet.
    Placed,
    /// The charge succeeded; no email recorded yet.
    Charged,
    /// The charge was declined; the pipeline stops here.
    Declined,
    /// The confirmation email was recorded; fulfillment not yet.
    Emailed,
    /// The fulfillment request was recorded: the order is complete.
    Fulfilled,
}

impl OrderState {
    /// Every state, in the pipeline's order.
    pub const ALL: [OrderState; 5] = [
        OrderState::Placed,
        OrderState::Charged,
        OrderState::Declined,
        OrderState::Emailed,
        OrderState::Fulfilled,
    ];

    /// The furthest step recorded: the charge's outcome (`None`: none yet),
    /// whether an email and a fulfillment request were recorded.
    pub fn of(charge_successful: Option<bool>, emailed: bool, fulfilled: bool) -> Self {
        if fulfilled {
            OrderState::Fulfilled
        } else if emailed {
            OrderState::Emailed
        } else {
            match charge_successful {
                Some(true) => OrderState::Charged,
                Some(false) => OrderState::Declined,
                None => OrderState::Placed,
            }
        }
    }

    /// `placed`, `charged`, …, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Placed => "placed",
            OrderState::Charged => "charged",
            OrderState::Declined => "declined",
            OrderState::Emailed => "emailed",
            OrderState::Fulfilled => "fulfilled",
        }
    }
}

impl std::fmt::Display for OrderState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An order row. The `charge_*`, `email_id` and `fulfillment_request_id`
/// columns are what the jobs recorded; the checker compares them with the
/// providers' ledgers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Order {
    pub id: i64,
    pub product_id: i64,
    pub user_id: i64,
    pub quantity: i64,
    pub address: String,
    pub email: String,
    pub amount_cents: i64,
    pub created_at_ms: i64,
    pub charge_completed_at_ms: Option<i64>,
    /// `None` until a charge is recorded; then whether it succeeded.
    pub charge_successful: Option<bool>,
    pub charge_decline_reason: Option<String>,
    pub charge_id: Option<String>,
    pub email_id: Option<String>,
    pub fulfillment_request_id: Option<String>,
}

impl Order {
    /// The furthest step recorded on the order.
    pub fn state(&self) -> OrderState {
        OrderState::of(
            self.charge_successful,
            self.email_id.is_some(),
            self.fulfillment_request_id.is_some(),
        )
    }

    /// Charged, emailed and fulfilled: nothing left to do.
    pub fn is_complete(&self) -> bool {
        self.charge_successful == Some(true)
            && self.email_id.is_some()
            && self.fulfillment_request_id.is_some()
    }

    /// The charge was declined: no email or fulfillment may follow.
    pub fn is_declined(&self) -> bool {
        self.charge_successful == Some(false)
    }
}

impl FromRow<'_, AnyRow> for Order {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        let successful: Option<i64> = row.try_get("charge_successful")?;
        Ok(Order {
            id: row.try_get("id")?,
            product_id: row.try_get("product_id")?,
            user_id: row.try_get("user_id")?,
            quantity: row.try_get("quantity")?,
            address: row.try_get("address")?,
            email: row.try_get("email")?,
            amount_cents: row.try_get("amount_cents")?,
            created_at_ms: row.try_get("created_at_ms")?,
            charge_completed_at_ms: row.try_get("charge_completed_at_ms")?,
            charge_successful: successful.map(|v| v != 0),
            charge_decline_reason: row.try_get("charge_decline_reason")?,
            charge_id: row.try_get("charge_id")?,
            email_id: row.try_get("email_id")?,
            fulfillment_request_id: row.try_get("fulfillment_request_id")?,
        })
    }
}

/// The order columns, for `concat!` into `&'static str` queries.
macro_rules! order_cols {
    () => {
        "id, product_id, user_id, quantity, address, email, amount_cents, created_at_ms, \
         charge_completed_at_ms, charge_successful, charge_decline_reason, charge_id, \
         email_id, fulfillment_request_id"
    };
}

const STOCK: &str = "is more than what is in stock";

/// Validates, decrements the stock, finds or creates the user and inserts the
/// order, all on `conn` (the caller's transaction). On a validation error
/// nothing has been written.
///
/// The usual order, valid and in stock, costs three statements: take the
/// stock (reading the price in the same statement), the user, the order.
/// Only a refused one reads the product to say why.
async fn create_order(
    conn: &mut AnyConnection,
    new: &NewOrder,
    now_ms: i64,
) -> Result<Order, StoreError> {
    let mut errors = new.check_fields();
    let taken = if errors.is_empty() {
        take_stock(&mut *conn, new).await?
    } else {
        None
    };
    let Some(product) = taken else {
        match product(&mut *conn, new.product_id).await? {
            None => errors.insert(0, FieldError::new("product_id", "must exist")),
            Some(p) if new.quantity > 0 && new.quantity > p.quantity_remaining => {
                errors.push(FieldError::new("quantity", STOCK))
            }
            // Enough stock now, but not when the decrement ran: someone
            // restocked in between. The order was still refused.
            Some(_) if errors.is_empty() => errors.push(FieldError::new("quantity", STOCK)),
            Some(_) => {}
        }
        return Err(StoreError::Invalid(errors));
    };

    let user = find_or_create_user(&mut *conn, &new.email).await?;
    let amount = new
        .amount_cents
        .unwrap_or(product.price_cents.saturating_mul(new.quantity));
    sqlx::query_as::<_, Order>(concat!(
        "INSERT INTO orders (product_id, user_id, quantity, address, email, amount_cents, \
         created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
        order_cols!()
    ))
    .bind(product.id)
    .bind(user.id)
    .bind(new.quantity)
    .bind(&new.address)
    .bind(&new.email)
    .bind(amount)
    .bind(now_ms)
    .fetch_one(conn)
    .await
    .ctx("inserting an order")
}

/// Takes the order's quantity from its product's stock if there is enough,
/// and returns the product (its stock after the decrement); `None` if the
/// product is missing or short. Conditional on the stock in one statement,
/// so a concurrent order cannot take it below 0.
async fn take_stock(
    conn: &mut AnyConnection,
    new: &NewOrder,
) -> Result<Option<Product>, StoreError> {
    sqlx::query_as::<_, Product>(
        "UPDATE products SET quantity_remaining = quantity_remaining - $1 \
         WHERE id = $2 AND quantity_remaining >= $1 \
         RETURNING id, name, quantity_remaining, price_cents",
    )
    .bind(new.quantity)
    .bind(new.product_id)
    .fetch_optional(conn)
    .await
    .ctx("decrementing the stock")
}

async fn order(conn: &mut AnyConnection, id: i64) -> Result<Option<Order>, StoreError> {
    sqlx::query_as::<_, Order>(concat!(
        "SELECT ",
        order_cols!(),
        " FROM orders WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
    .ctx("reading an order")
}

fn found(result: sqlx::any::AnyQueryResult, id: i64) -> Result<(), StoreError> {
    if result.rows_affected() == 0 {
        Err(StoreError::NotFound { what: "order", id })
    } else {
        Ok(())
    }
}

impl StoreTx {
    /// Creates an order inside this transaction (stamped with the wall
    /// clock). Invisible to others, stock decrement included, until commit.
    pub async fn create_order(&mut self, new: &NewOrder) -> Result<Order, StoreError> {
        create_order(self.conn(), new, wall_clock_ms()).await
    }

    /// [`StoreTx::create_order`] with the creation time given, for the
    /// simulator's virtual clock.
    pub async fn create_order_at(
        &mut self,
        new: &NewOrder,
        now_ms: i64,
    ) -> Result<Order, StoreError> {
        create_order(self.conn(), new, now_ms).await
    }

    /// Reads an order as this transaction sees it.
    pub async fn order(&mut self, id: i64) -> Result<Option<Order>, StoreError> {
        order(self.conn(), id).await
    }
}

impl Store {
    /// Creates an order in its own transaction: committed when this returns
    /// `Ok`, nothing written when it returns an error.
    pub async fn create_order(&self, new: &NewOrder) -> Result<Order, StoreError> {
        self.create_order_at(new, wall_clock_ms()).await
    }

    /// [`Store::create_order`] with the creation time given.
    pub async fn create_order_at(&self, new: &NewOrder, now_ms: i64) -> Result<Order, StoreError> {
        let mut tx = self.begin().await?;
        let order = tx.create_order_at(new, now_ms).await?;
        tx.commit().await?;
        Ok(order)
    }

    /// One order, or `None` (the web lab's 404, the job's permanent failure).
    pub async fn order(&self, id: i64) -> Result<Option<Order>, StoreError> {
        order(&mut *self.conn().await?, id).await
    }

    /// An order and the user who placed it (`None` if that user is gone),
    /// in one query: every job step reads its order, and the charge and
    /// fulfillment steps also need the user's payments ids.
    pub async fn order_and_user(
        &self,
        id: i64,
    ) -> Result<Option<(Order, Option<User>)>, StoreError> {
        let row = sqlx::query(
            "SELECT o.id AS id, o.product_id AS product_id, o.user_id AS user_id, \
             o.quantity AS quantity, o.address AS address, o.email AS email, \
             o.amount_cents AS amount_cents, o.created_at_ms AS created_at_ms, \
             o.charge_completed_at_ms AS charge_completed_at_ms, \
             o.charge_successful AS charge_successful, \
             o.charge_decline_reason AS charge_decline_reason, o.charge_id AS charge_id, \
             o.email_id AS email_id, o.fulfillment_request_id AS fulfillment_request_id, \
             u.id AS u_id, u.email AS u_email, \
             u.payments_customer_id AS u_customer_id, \
             u.payments_payment_method_id AS u_payment_method_id \
             FROM orders o LEFT JOIN users u ON u.id = o.user_id WHERE o.id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *self.conn().await?)
        .await
        .ctx("reading an order and its user")?;
        let Some(row) = row else {
            return Ok(None);
        };
        let decode = |row: &AnyRow| -> Result<(Order, Option<User>), sqlx::Error> {
            let order = Order::from_row(row)?;
            let user = match row.try_get::<Option<i64>, _>("u_id")? {
                None => None,
                Some(id) => Some(User {
                    id,
                    email: row.try_get("u_email")?,
                    payments_customer_id: row.try_get("u_customer_id")?,
                    payments_payment_method_id: row.try_get("u_payment_method_id")?,
                }),
            };
            Ok((order, user))
        };
        decode(&row).map(Some).ctx("reading an order and its user")
    }

    /// Every order, newest first.
    pub async fn orders(&self) -> Result<Vec<Order>, StoreError> {
        sqlx::query_as::<_, Order>(concat!(
            "SELECT ",
            order_cols!(),
            " FROM orders ORDER BY id DESC"
        ))
        .fetch_all(&mut *self.conn().await?)
        .await
        .ctx("listing orders")
    }

    /// How many orders there are (the web lab's front page).
    pub async fn count_orders(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM orders")
            .fetch_one(&mut *self.conn().await?)
            .await
            .ctx("counting orders")
    }

    /// How many orders are in each state (every state, zeros too), counted
    /// by the database: one row per combination of the columns a state is
    /// read from ([`OrderState::of`]).
    pub async fn order_counts(&self) -> Result<Vec<(OrderState, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT charge_successful, \
             CAST(CASE WHEN email_id IS NULL THEN 0 ELSE 1 END AS BIGINT) AS emailed, \
             CAST(CASE WHEN fulfillment_request_id IS NULL THEN 0 ELSE 1 END AS BIGINT) AS fulfilled, \
             COUNT(*) AS n FROM orders GROUP BY 1, 2, 3",
        )
        .fetch_all(&mut *self.conn().await?)
        .await
        .ctx("counting orders by state")?;
        let mut counts: Vec<(OrderState, i64)> =
            OrderState::ALL.iter().map(|&state| (state, 0)).collect();
        for row in rows {
            let decode = || -> Result<(OrderState, i64), sqlx::Error> {
                let charged: Option<i64> = row.try_get("charge_successful")?;
                let emailed: i64 = row.try_get("emailed")?;
                let fulfilled: i64 = row.try_get("fulfilled")?;
                let state = OrderState::of(charged.map(|v| v != 0), emailed != 0, fulfilled != 0);
                Ok((state, row.try_get("n")?))
            };
            let (state, n) = decode().ctx("counting orders by state")?;
            if let Some((_, count)) = counts.iter_mut().find(|(s, _)| *s == state) {
                *count += n;
            }
        }
        Ok(counts)
    }

    /// Records the charge's outcome. Unconditional: a naive pipeline that
    /// charges twice overwrites the first charge id, which is how the checker
    /// then sees a ledger charge the order does not know about.
    pub async fn record_charge(
        &self,
        order_id: i64,
        successful: bool,
        charge_id: Option<&str>,
        decline_reason: Option<&str>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let result = sqlx::query(
            "UPDATE orders SET charge_successful = $1, charge_id = $2, \
             charge_decline_reason = $3, charge_completed_at_ms = $4 WHERE id = $5",
        )
        .bind(i64::from(successful))
        .bind(charge_id)
        .bind(decline_reason)
        .bind(now_ms)
        .bind(order_id)
        .execute(&mut *self.write_conn().await?)
        .await
        .ctx("recording a charge")?;
        found(result, order_id)
    }

    /// Records the confirmation email's id.
    pub async fn record_email(&self, order_id: i64, email_id: &str) -> Result<(), StoreError> {
        let result = sqlx::query("UPDATE orders SET email_id = $1 WHERE id = $2")
            .bind(email_id)
            .bind(order_id)
            .execute(&mut *self.write_conn().await?)
            .await
            .ctx("recording an email")?;
        found(result, order_id)
    }

    /// Records the fulfillment request's id.
    pub async fn record_fulfillment(
        &self,
        order_id: i64,
        request_id: &str,
    ) -> Result<(), StoreError> {
        let result = sqlx::query("UPDATE orders SET fulfillment_request_id = $1 WHERE id = $2")
            .bind(request_id)
            .bind(order_id)
            .execute(&mut *self.write_conn().await?)
            .await
            .ctx("recording a fulfillment")?;
        found(result, order_id)
    }
}

#[cfg(test)]
impl Order {
    /// An order placed and nothing more (the store's and the checker's tests).
    pub(crate) fn placed(id: i64) -> Order {
        Order {
            id,
            product_id: 1,
            user_id: 1,
            quantity: 1,
            address: "1 Main St".into(),
            email: "a@example.com".into(),
            amount_cents: 1000,
            created_at_ms: 0,
            charge_completed_at_ms: None,
            charge_successful: None,
            charge_decline_reason: None,
            charge_id: None,
            email_id: None,
            fulfillment_request_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_the_furthest_step() {
        let mut o = Order::placed(1);
        assert_eq!(o.state(), OrderState::Placed);
        o.charge_successful = Some(false);
        assert_eq!(o.state(), OrderState::Declined);
        assert!(o.is_declined());
        o.charge_successful = Some(true);
        assert_eq!(o.state(), OrderState::Charged);
        o.email_id = Some("em".into());
        assert_eq!(o.state(), OrderState::Emailed);
        o.fulfillment_request_id = Some("fr".into());
        assert_eq!(o.state(), OrderState::Fulfilled);
        assert!(o.is_complete());
    }

    #[test]
    fn blank_means_whitespace_too() {
        let errors = NewOrder {
            product_id: 1,
            quantity: 0,
            email: "  ".into(),
            address: "\t".into(),
            amount_cents: Some(-1),
        }
        .check_fields();
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["quantity", "email", "address", "amount_cents"]);
    }
}
