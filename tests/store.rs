//! The SQL store's tests. Every case is an async function taking a `Store`;
//! `on_each_database!` runs each one on an in-memory SQLite store (pooled, and
//! the simulator's one-connection store), on a SQLite file and on a fresh
//! Postgres database, so the two dialects cannot drift.
//!
//! Postgres: `IDEMLAB_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) names a server where the
//! tests may create databases; each test makes its own `idemlab_t_<random>`
//! and drops it afterwards, so they run in parallel. If the server is not
//! reachable the Postgres tests are skipped with a note on stderr — unless
//! `CI` is set, where they fail.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use idemlab::store::with_database;
use idemlab::store::{
    Dialect, NewOrder, Order, OrderState, Product, Reminder, Store, StoreError, User,
    SEED_PRODUCTS, SEED_USER_EMAIL,
};
use serde_json::json;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};
use tokio::sync::Barrier;

const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

// ---------------------------------------------------------------------------
// Harness

/// Runs `case` on the SQLite store just `opened` (`what`, if it failed).
async fn on_sqlite<F, Fut>(opened: Result<Store, StoreError>, what: &str, case: F)
where
    F: FnOnce(Store, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let store = opened.unwrap_or_else(|e| panic!("opening {what}: {e}"));
    let url = store.url().to_string();
    case(store, url).await;
}

/// Runs `case` on a fresh in-memory SQLite store.
async fn on_sqlite_memory<F, Fut>(case: F)
where
    F: FnOnce(Store, String) -> Fut,
    Fut: Future<Output = ()>,
{
    on_sqlite(Store::memory().await, "an in-memory SQLite store", case).await;
}

/// Runs `case` on a fresh simulation store (in memory, one held connection).
async fn on_sqlite_simulation<F, Fut>(case: F)
where
    F: FnOnce(Store, String) -> Fut,
    Fut: Future<Output = ()>,
{
    on_sqlite(Store::simulation().await, "a simulation store", case).await;
}

/// Runs `case` on a fresh temporary SQLite file (WAL), removed after.
async fn on_sqlite_file<F, Fut>(case: F)
where
    F: FnOnce(Store, String) -> Fut,
    Fut: Future<Output = ()>,
{
    on_sqlite(Store::temporary().await, "a temporary SQLite store", case).await;
}

/// Runs `case` on a new Postgres database, dropped afterwards (best effort).
async fn on_postgres<F, Fut>(case: F)
where
    F: FnOnce(Store, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let admin_url =
        std::env::var("IDEMLAB_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_POSTGRES.to_string());
    let connected =
        tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(&admin_url)).await;
    let mut admin = match connected {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return unreachable_postgres(&admin_url, &e.to_string()),
        Err(_) => return unreachable_postgres(&admin_url, "no answer within 5 s"),
    };
    let name = format!("idemlab_t_{:016x}", rand::random::<u64>());
    admin
        .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap_or_else(|e| panic!("creating database {name} at {admin_url}: {e}"));
    let url = with_database(&admin_url, &name);
    let store = Store::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("opening the store on {name}: {e}"));

    let result = tokio::spawn(case(store.clone(), url)).await;

    store.close().await;
    drop(store);
    if let Err(e) = admin
        .execute(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .await
    {
        eprintln!("note: could not drop test database {name}: {e}");
    }
    let _ = admin.close().await;
    rethrow(result);
}

/// The store keeps its connections between queries without sqlx's ping;
/// when Postgres closes them under it (a restart, an administrator), the
/// store notices and opens new ones: a few queries fail, then all succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_connections_closed_under_the_store_are_replaced() {
    on_postgres(|store, url| async move {
        // Several connections in use at once, then kept.
        let reads: Vec<_> = (0..8).map(|_| store.count_orders()).collect();
        for read in futures::future::join_all(reads).await {
            read.unwrap();
        }
        let mut admin = PgConnection::connect(&url).await.unwrap();
        let killed: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()) AS t",
        )
        .fetch_one(&mut admin)
        .await
        .unwrap();
        assert!(killed >= 1, "no store connection to terminate");
        admin.close().await.unwrap();

        let mut failures = 0;
        while let Err(err) = store.count_orders().await {
            failures += 1;
            assert!(
                failures <= 12,
                "the store still fails after {failures} queries: {err}"
            );
        }
        for _ in 0..20 {
            store.count_orders().await.unwrap();
        }
        let flux = store.products().await.unwrap()[0].id;
        store
            .create_order(&NewOrder {
                product_id: flux,
                quantity: 1,
                email: "after-restart@example.com".into(),
                address: "1 Main St".into(),
                amount_cents: None,
            })
            .await
            .unwrap();
    })
    .await;
}

fn unreachable_postgres(url: &str, error: &str) {
    if std::env::var_os("CI").is_some() {
        panic!(
            "Postgres is needed for the store tests (CI is set) but is not reachable at {url}: \
             {error}\nStart it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) \
             main start`, or point IDEMLAB_TEST_POSTGRES at a server where the tests may create \
             databases."
        );
    }
    // Straight to the process's stderr: the test harness captures `eprintln!`
    // of passing tests, and a skip should be seen.
    let line =
        format!("skipped: Postgres not reachable at {url} (set IDEMLAB_TEST_POSTGRES): {error}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
}

/// Re-raises a panic from the spawned case, after the cleanup ran.
fn rethrow(result: Result<(), tokio::task::JoinError>) {
    if let Err(e) = result {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("test case did not finish: {e}"),
        }
    }
}

/// A module per case with one `#[tokio::test]` per database: `sqlite_memory`
/// (`Store::memory`), `sqlite_simulation` (`Store::simulation`),
/// `sqlite_file` (`Store::temporary`) and `postgres`, so
/// `cargo test postgres` runs one database's share. `url` cases also get the
/// URL the store was opened with; `isolated` cases look at what other
/// connections see during an open transaction, which the in-memory store
/// cannot show (readers wait for the writer there), so they skip it.
macro_rules! on_each_database {
    ($($case:ident $(($kind:ident))?),* $(,)?) => {
        $(on_each_database!(@case $case $($kind)?);)*
    };
    (@case $case:ident) => {
        on_each_database!(@tests $case, |store, _url| crate::cases::$case(store),
            sqlite_memory on_sqlite_memory, sqlite_simulation on_sqlite_simulation,
            sqlite_file on_sqlite_file, postgres on_postgres);
    };
    (@case $case:ident url) => {
        on_each_database!(@tests $case, crate::cases::$case,
            sqlite_memory on_sqlite_memory, sqlite_simulation on_sqlite_simulation,
            sqlite_file on_sqlite_file, postgres on_postgres);
    };
    (@case $case:ident isolated) => {
        on_each_database!(@tests $case, |store, _url| crate::cases::$case(store),
            sqlite_file on_sqlite_file, postgres on_postgres);
    };
    (@tests $case:ident, $body:expr, $($db:ident $runner:ident),*) => {
        mod $case {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $db() {
                    crate::$runner($body).await;
                }
            )*
        }
    };
}

on_each_database!(
    seed_data,
    reconnect_keeps_data(url),
    validation_blank_email_and_address,
    validation_quantity_must_be_positive,
    validation_quantity_more_than_stock,
    validation_unknown_product,
    validation_reports_every_field,
    invalid_orders_write_nothing,
    create_decrements_stock_and_prices,
    create_finds_or_creates_user,
    concurrent_orders_never_oversell,
    rollback_leaves_no_order_and_no_stock_change,
    uncommitted_order_is_invisible_to_others(isolated),
    outbox_row_committed_with_the_order,
    outbox_row_invisible_until_commit(isolated),
    concurrent_claim_outbox_has_one_winner,
    concurrent_batch_claims_split_the_outbox,
    naive_due_reminders_give_two_sweeps_the_same_reminders,
    concurrent_claim_due_reminders_never_overlap,
    record_updates,
    order_counts_by_state,
    order_and_user_in_one_read,
    reset_restores_the_seed,
    commits_do_not_wait_for_the_disk(url),
    rewind_restarts_ids,
);

// ---------------------------------------------------------------------------
// Cases

mod cases {
    use super::*;

    fn new_order(product_id: i64, quantity: i64) -> NewOrder {
        NewOrder {
            product_id,
            quantity,
            email: "buyer@example.com".into(),
            address: "1 Main St, Springfield".into(),
            amount_cents: None,
        }
    }

    async fn product(store: &Store, name: &str) -> Product {
        store
            .products()
            .await
            .unwrap()
            .into_iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no product {name}"))
    }

    /// The field errors of a validation failure, as `(field, message)`.
    fn field_errors(
        result: Result<impl std::fmt::Debug, StoreError>,
    ) -> Vec<(&'static str, String)> {
        match result {
            Err(StoreError::Invalid(errors)) => {
                errors.into_iter().map(|e| (e.field, e.message)).collect()
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    fn fe(field: &'static str, message: &str) -> (&'static str, String) {
        (field, message.to_string())
    }

    pub async fn seed_data(store: Store) {
        let products = store.products().await.unwrap();
        let got: Vec<_> = products
            .iter()
            .map(|p| (p.name.as_str(), p.quantity_remaining, p.price_cents))
            .collect();
        assert_eq!(
            got,
            [
                ("Flux Capacitor", 100, 12300),
                ("Self-sealing Stembolt", 4, 567800),
                ("Graviton Emitter", 32, 76599),
                ("Thopter Cleaning Fluid", 1000, 1244),
            ]
        );
        assert_eq!(SEED_PRODUCTS.len(), 4);
        assert_eq!(
            store.product(products[1].id).await.unwrap().as_ref(),
            Some(&products[1])
        );
        assert_eq!(store.product(999_999).await.unwrap(), None);

        let pat = store
            .user_by_email(SEED_USER_EMAIL)
            .await
            .unwrap()
            .expect("pat@example.com is seeded");
        assert_eq!(pat.email, "pat@example.com");
        assert_eq!(pat.payments_customer_id, "cus_pat");
        assert_eq!(pat.payments_payment_method_id, "pm_pat");
        assert_eq!(store.user(pat.id).await.unwrap(), Some(pat));
        assert_eq!(
            store.user_by_email("nobody@example.com").await.unwrap(),
            None
        );

        assert_eq!(store.count_orders().await.unwrap(), 0);
        assert!(store.orders().await.unwrap().is_empty());
        assert!(store.outbox().await.unwrap().is_empty());
        assert!(store.reminders().await.unwrap().is_empty());
        store.ping().await.unwrap();
    }

    pub async fn validation_blank_email_and_address(store: Store) {
        let flux = product(&store, "Flux Capacitor").await;
        let mut order = new_order(flux.id, 1);
        order.email = String::new();
        order.address = "  \t".into();
        let result = store.create_order(&order).await;
        let message = result.as_ref().unwrap_err().to_string();
        assert_eq!(
            field_errors(result),
            [
                fe("email", "can't be blank"),
                fe("address", "can't be blank")
            ]
        );
        assert_eq!(
            message,
            "invalid order: Email can't be blank, Address can't be blank"
        );
    }

    pub async fn validation_quantity_must_be_positive(store: Store) {
        let flux = product(&store, "Flux Capacitor").await;
        for quantity in [0, -3] {
            assert_eq!(
                field_errors(store.create_order(&new_order(flux.id, quantity)).await),
                [fe("quantity", "must be greater than 0")],
                "quantity {quantity}"
            );
        }
    }

    pub async fn validation_quantity_more_than_stock(store: Store) {
        let stembolt = product(&store, "Self-sealing Stembolt").await;
        assert_eq!(stembolt.quantity_remaining, 4);
        assert_eq!(
            field_errors(store.create_order(&new_order(stembolt.id, 5)).await),
            [fe("quantity", "is more than what is in stock")]
        );
        // Exactly the stock is fine, and then there is none left.
        store
            .create_order(&new_order(stembolt.id, 4))
            .await
            .unwrap();
        assert_eq!(
            product(&store, "Self-sealing Stembolt")
                .await
                .quantity_remaining,
            0
        );
        assert_eq!(
            field_errors(store.create_order(&new_order(stembolt.id, 1)).await),
            [fe("quantity", "is more than what is in stock")]
        );
    }

    pub async fn validation_unknown_product(store: Store) {
        assert_eq!(
            field_errors(store.create_order(&new_order(999_999, 1)).await),
            [fe("product_id", "must exist")]
        );
    }

    pub async fn validation_reports_every_field(store: Store) {
        let order = NewOrder {
            product_id: 999_999,
            quantity: 0,
            email: " ".into(),
            address: String::new(),
            amount_cents: Some(-5),
        };
        let result = store.create_order(&order).await;
        let full: Vec<String> = result
            .as_ref()
            .unwrap_err()
            .field_errors()
            .unwrap()
            .iter()
            .map(|e| e.full_message())
            .collect();
        assert_eq!(
            full,
            [
                "Product must exist",
                "Quantity must be greater than 0",
                "Email can't be blank",
                "Address can't be blank",
                "Amount cents must be greater than or equal to 0",
            ]
        );
    }

    pub async fn invalid_orders_write_nothing(store: Store) {
        let before = store.products().await.unwrap();
        let stembolt = product(&store, "Self-sealing Stembolt").await;
        let mut blank = new_order(stembolt.id, 1);
        blank.address.clear();
        blank.email = "first-time@example.com".into();
        let mut too_many = new_order(stembolt.id, 99);
        too_many.email = "first-time@example.com".into();
        for order in [blank, too_many, new_order(999_999, 1)] {
            assert!(matches!(
                store.create_order(&order).await,
                Err(StoreError::Invalid(_))
            ));
        }
        // Inside a caller's transaction too, which stays usable afterwards.
        let mut tx = store.begin().await.unwrap();
        assert!(matches!(
            tx.create_order(&new_order(stembolt.id, 99)).await,
            Err(StoreError::Invalid(_))
        ));
        let ok = tx.create_order(&new_order(stembolt.id, 1)).await.unwrap();
        tx.rollback().await.unwrap();

        assert_eq!(store.products().await.unwrap(), before);
        assert_eq!(store.count_orders().await.unwrap(), 0);
        assert_eq!(store.order(ok.id).await.unwrap(), None);
        assert_eq!(
            store.user_by_email("first-time@example.com").await.unwrap(),
            None
        );
    }

    pub async fn create_decrements_stock_and_prices(store: Store) {
        let flux = product(&store, "Flux Capacitor").await;
        let first = store.create_order(&new_order(flux.id, 3)).await.unwrap();
        assert_eq!(first.product_id, flux.id);
        assert_eq!(first.quantity, 3);
        assert_eq!(first.amount_cents, 3 * 12300);
        assert_eq!(first.email, "buyer@example.com");
        assert_eq!(first.address, "1 Main St, Springfield");
        assert!(first.created_at_ms > 1_600_000_000_000, "epoch ms");
        assert_eq!(first.charge_successful, None);
        assert_eq!(first.charge_id, None);
        assert_eq!(first.state(), OrderState::Placed);
        assert_eq!(store.order(first.id).await.unwrap().as_ref(), Some(&first));
        assert_eq!(
            product(&store, "Flux Capacitor").await.quantity_remaining,
            97
        );

        // The amount override (the scenarios' declined orders), and a given clock.
        let mut declined = new_order(flux.id, 1);
        declined.amount_cents = Some(9999);
        let second = store.create_order_at(&declined, 42).await.unwrap();
        assert_eq!(second.amount_cents, 9999);
        assert_eq!(second.created_at_ms, 42);
        assert!(second.id > first.id);
        assert_eq!(
            product(&store, "Flux Capacitor").await.quantity_remaining,
            96
        );

        assert_eq!(store.count_orders().await.unwrap(), 2);
        let ids: Vec<i64> = store.orders().await.unwrap().iter().map(|o| o.id).collect();
        assert_eq!(ids, [second.id, first.id], "newest first");
    }

    pub async fn create_finds_or_creates_user(store: Store) {
        let fluid = product(&store, "Thopter Cleaning Fluid").await;
        let pat = store.user_by_email(SEED_USER_EMAIL).await.unwrap().unwrap();
        let mut by_pat = new_order(fluid.id, 1);
        by_pat.email = SEED_USER_EMAIL.into();
        assert_eq!(store.create_order(&by_pat).await.unwrap().user_id, pat.id);

        let mut by_new = new_order(fluid.id, 1);
        by_new.email = "new@example.com".into();
        let first = store.create_order(&by_new).await.unwrap();
        let user = store
            .user_by_email("new@example.com")
            .await
            .unwrap()
            .expect("the user was created");
        assert_eq!(first.user_id, user.id);
        assert_ne!(user.id, pat.id);
        assert!(user.payments_customer_id.starts_with("cus_"));
        assert!(user.payments_payment_method_id.starts_with("pm_"));
        assert_ne!(user.payments_customer_id, pat.payments_customer_id);

        let second = store.create_order(&by_new).await.unwrap();
        assert_eq!(second.user_id, user.id, "found, not created again");

        let mut by_other = new_order(fluid.id, 1);
        by_other.email = "other@example.com".into();
        let other = store.create_order(&by_other).await.unwrap();
        let other = store.user(other.user_id).await.unwrap().unwrap();
        assert_ne!(other.payments_customer_id, user.payments_customer_id);
    }

    pub async fn concurrent_orders_never_oversell(store: Store) {
        let stembolt = product(&store, "Self-sealing Stembolt").await;
        let barrier = Arc::new(Barrier::new(8));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    let mut order = new_order(stembolt.id, 1);
                    order.email = format!("racer{i}@example.com");
                    barrier.wait().await;
                    store.create_order(&order).await
                })
            })
            .collect();
        let (mut ok, mut out_of_stock) = (0, 0);
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => ok += 1,
                Err(e) => {
                    assert_eq!(
                        field_errors(Err::<(), _>(e)),
                        [fe("quantity", "is more than what is in stock")]
                    );
                    out_of_stock += 1;
                }
            }
        }
        assert_eq!((ok, out_of_stock), (4, 4));
        assert_eq!(
            product(&store, "Self-sealing Stembolt")
                .await
                .quantity_remaining,
            0
        );
        assert_eq!(store.count_orders().await.unwrap(), 4);
    }

    pub async fn rollback_leaves_no_order_and_no_stock_change(store: Store) {
        let graviton = product(&store, "Graviton Emitter").await;
        let mut order = new_order(graviton.id, 2);
        order.email = "rolled-back@example.com".into();

        // Explicit rollback, after the enqueue the variant does in the transaction.
        let mut tx = store.begin().await.unwrap();
        let created = tx.create_order(&order).await.unwrap();
        assert_eq!(tx.order(created.id).await.unwrap().as_ref(), Some(&created));
        tx.add_outbox(created.id, "CompleteOrderJob", &json!([created.id]), "high")
            .await
            .unwrap();
        tx.rollback().await.unwrap();

        // Dropping the transaction without commit rolls back too.
        {
            let mut tx = store.begin().await.unwrap();
            tx.create_order(&order).await.unwrap();
        }

        assert_eq!(store.order(created.id).await.unwrap(), None);
        assert_eq!(store.count_orders().await.unwrap(), 0);
        assert_eq!(product(&store, "Graviton Emitter").await, graviton);
        assert_eq!(
            store
                .user_by_email("rolled-back@example.com")
                .await
                .unwrap(),
            None
        );
        assert!(store.outbox().await.unwrap().is_empty());

        // The writers' connection is free again, with nothing left open.
        let after = store.create_order(&order).await.unwrap();
        assert_eq!(store.count_orders().await.unwrap(), 1);
        assert_eq!(store.order(after.id).await.unwrap(), Some(after));
    }

    pub async fn uncommitted_order_is_invisible_to_others(store: Store) {
        // What a worker sees when a job is enqueued inside the transaction
        // and runs before the commit: no order yet — and it must not block.
        let flux = product(&store, "Flux Capacitor").await;
        let mut tx = store.begin().await.unwrap();
        let created = tx.create_order(&new_order(flux.id, 1)).await.unwrap();
        let seen = tokio::time::timeout(Duration::from_secs(10), async {
            (
                store.order(created.id).await.unwrap(),
                store.count_orders().await.unwrap(),
                product(&store, "Flux Capacitor").await.quantity_remaining,
            )
        })
        .await
        .expect("a reader must not wait for an open transaction");
        assert_eq!(seen, (None, 0, 100));
        tx.commit().await.unwrap();
        assert_eq!(store.order(created.id).await.unwrap(), Some(created));
        assert_eq!(
            product(&store, "Flux Capacitor").await.quantity_remaining,
            99
        );
    }

    pub async fn outbox_row_committed_with_the_order(store: Store) {
        let flux = product(&store, "Flux Capacitor").await;
        let mut tx = store.begin().await.unwrap();
        let order = tx.create_order(&new_order(flux.id, 1)).await.unwrap();
        let args = json!([order.id, {"note": "first"}]);
        let added = tx
            .add_outbox(order.id, "CompleteOrderJob", &args, "high")
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let pending = store.pending_outbox(10).await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0], added);
        let entry = &pending[0];
        assert_eq!(entry.order_id, order.id);
        assert_eq!(entry.job_class, "CompleteOrderJob");
        assert_eq!(entry.args, args);
        assert_eq!(entry.queue, "high");
        assert_eq!(entry.relayed_at_ms, None);
        assert!(store.order(order.id).await.unwrap().is_some());

        // Outside a transaction as well; pending is oldest first and limited.
        let second = store
            .add_outbox(
                order.id,
                "SendOrderNotificationEmailJob",
                &json!([order.id]),
                "default",
            )
            .await
            .unwrap();
        let ids: Vec<i64> = store
            .pending_outbox(10)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, [added.id, second.id]);
        assert_eq!(store.pending_outbox(1).await.unwrap(), [added]);
    }

    pub async fn outbox_row_invisible_until_commit(store: Store) {
        // The relay must not see (and enqueue) a job whose order may still be
        // rolled back.
        let flux = product(&store, "Flux Capacitor").await;
        let mut tx = store.begin().await.unwrap();
        let order = tx.create_order(&new_order(flux.id, 1)).await.unwrap();
        tx.add_outbox(order.id, "CompleteOrderJob", &json!([order.id]), "high")
            .await
            .unwrap();
        let pending = tokio::time::timeout(Duration::from_secs(10), store.pending_outbox(10))
            .await
            .expect("the relay must not wait for an open transaction")
            .unwrap();
        assert!(pending.is_empty(), "not before commit: {pending:?}");
        tx.commit().await.unwrap();
        assert_eq!(store.pending_outbox(10).await.unwrap().len(), 1);
    }

    pub async fn concurrent_claim_outbox_has_one_winner(store: Store) {
        let flux = product(&store, "Flux Capacitor").await;
        let order = store.create_order(&new_order(flux.id, 1)).await.unwrap();
        for round in 0..5 {
            let entry = store
                .add_outbox(order.id, "CompleteOrderJob", &json!([order.id]), "high")
                .await
                .unwrap();
            let relays = 8;
            let barrier = Arc::new(Barrier::new(relays));
            let tasks: Vec<_> = (0..relays)
                .map(|i| {
                    let store = store.clone();
                    let barrier = barrier.clone();
                    tokio::spawn(async move {
                        barrier.wait().await;
                        store
                            .claim_outbox(entry.id, 1_000 + i as i64)
                            .await
                            .unwrap()
                    })
                })
                .collect();
            let mut winners = 0;
            for task in tasks {
                winners += usize::from(task.await.unwrap());
            }
            assert_eq!(winners, 1, "round {round}: exactly one relay wins");
            assert!(!store.claim_outbox(entry.id, 5_000).await.unwrap());
        }
        assert!(store.pending_outbox(100).await.unwrap().is_empty());
        assert!(store
            .outbox()
            .await
            .unwrap()
            .iter()
            .all(|e| matches!(e.relayed_at_ms, Some(1_000..=1_007))));
        assert!(!store.claim_outbox(999_999, 1).await.unwrap());

        // A relay whose enqueue failed releases its claim: pending again,
        // and claimable once more.
        let first = store.outbox().await.unwrap()[0].id;
        store.release_outbox(first).await.unwrap();
        let pending = store.pending_outbox(100).await.unwrap();
        assert_eq!(pending.iter().map(|e| e.id).collect::<Vec<_>>(), [first]);
        assert!(store.claim_outbox(first, 9_000).await.unwrap());
        assert_eq!(
            store.release_outbox(999_999).await.unwrap_err().to_string(),
            "outbox row 999999 not found"
        );
    }

    /// Relays racing with `claim_pending_outbox` (one statement for many
    /// rows): every row goes to exactly one of them, none waits for another
    /// (on Postgres, overlapping claims that waited could deadlock), and a
    /// claim takes the oldest rows first.
    pub async fn concurrent_batch_claims_split_the_outbox(store: Store) {
        let flux = product(&store, "Flux Capacitor").await;
        let order = store.create_order(&new_order(flux.id, 1)).await.unwrap();
        for _ in 0..60 {
            store
                .add_outbox(order.id, "CompleteOrderJob", &json!([order.id]), "high")
                .await
                .unwrap();
        }
        let all: Vec<i64> = store.outbox().await.unwrap().iter().map(|e| e.id).collect();
        let first = store.claim_pending_outbox(5, 500).await.unwrap();
        assert_eq!(
            first.iter().map(|e| e.id).collect::<Vec<_>>(),
            all[..5],
            "the oldest first, in order"
        );

        let relays = 8;
        let barrier = Arc::new(Barrier::new(relays));
        let tasks: Vec<_> = (0..relays)
            .map(|i| {
                let store = store.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    let mut claimed = Vec::new();
                    loop {
                        let batch = store
                            .claim_pending_outbox(4, 1_000 + i as i64)
                            .await
                            .unwrap();
                        if batch.is_empty() {
                            return claimed;
                        }
                        claimed.extend(batch.into_iter().map(|e| e.id));
                    }
                })
            })
            .collect();
        let mut claimed: Vec<i64> = first.iter().map(|e| e.id).collect();
        for task in tasks {
            claimed.extend(task.await.unwrap());
        }
        claimed.sort_unstable();
        assert_eq!(claimed, all, "each row claimed once");
        assert!(store.pending_outbox(100).await.unwrap().is_empty());
        assert!(store
            .claim_pending_outbox(10, 2_000)
            .await
            .unwrap()
            .is_empty());
    }

    async fn add_reminders(store: &Store, count: usize, due_at_ms: i64) -> Vec<Reminder> {
        let mut added = Vec::new();
        for i in 0..count {
            added.push(
                store
                    .add_reminder(&format!("r{i}@example.com"), due_at_ms)
                    .await
                    .unwrap(),
            );
        }
        added
    }

    pub async fn naive_due_reminders_give_two_sweeps_the_same_reminders(store: Store) {
        let due = add_reminders(&store, 3, 1_000).await;
        let later = store
            .add_reminder("later@example.com", 9_000)
            .await
            .unwrap();
        assert_eq!(due[0].sent_at_ms, None);
        assert_eq!(due[0].claimed_by, None);

        // Two overlapping sweeps each read before either marks anything sent:
        // both get every due reminder, so each would be sent twice.
        let (a, b) = tokio::join!(store.due_reminders(2_000), store.due_reminders(2_000));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a, due);
        assert_eq!(a, b, "the naive sweep hands both sweeps the same reminders");

        for (i, r) in a.iter().enumerate() {
            store
                .mark_reminder_sent(r.id, &format!("em_{i}"), 2_500)
                .await
                .unwrap();
        }
        assert!(store.due_reminders(2_000).await.unwrap().is_empty());
        assert_eq!(store.due_reminders(9_000).await.unwrap(), [later]);
        let first = &store.reminders().await.unwrap()[0];
        assert_eq!(first.sent_at_ms, Some(2_500));
        assert_eq!(first.email_id.as_deref(), Some("em_0"));

        let missing = store.mark_reminder_sent(999_999, "em_x", 1).await;
        assert_eq!(
            missing.unwrap_err().to_string(),
            "reminder 999999 not found"
        );
    }

    pub async fn concurrent_claim_due_reminders_never_overlap(store: Store) {
        for round in 0..5i64 {
            let now = 10_000 * (round + 1);
            let due: HashSet<i64> = add_reminders(&store, 20, now - 1)
                .await
                .iter()
                .map(|r| r.id)
                .collect();
            let not_yet = store
                .add_reminder("future@example.com", now + 1)
                .await
                .unwrap();

            let barrier = Arc::new(Barrier::new(2));
            let sweep = |claimer: &'static str| {
                let store = store.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.claim_due_reminders(now, claimer).await.unwrap()
                })
            };
            let (a, b) = (sweep("sweep-a"), sweep("sweep-b"));
            let (a, b) = (a.await.unwrap(), b.await.unwrap());

            let ids = |claimed: &[Reminder]| claimed.iter().map(|r| r.id).collect::<HashSet<_>>();
            let (ids_a, ids_b) = (ids(&a), ids(&b));
            assert!(
                ids_a.is_disjoint(&ids_b),
                "round {round}: both sweeps claimed {:?}",
                ids_a.intersection(&ids_b).collect::<Vec<_>>()
            );
            let all: HashSet<i64> = ids_a.union(&ids_b).copied().collect();
            assert_eq!(all, due, "round {round}: every due reminder claimed once");
            assert!(a.iter().all(
                |r| r.claimed_by.as_deref() == Some("sweep-a") && r.claimed_at_ms == Some(now)
            ));
            assert!(b.iter().all(|r| r.claimed_by.as_deref() == Some("sweep-b")));
            assert!(a.windows(2).all(|w| w[0].id < w[1].id), "sorted by id");

            // Nothing left to claim until the future one falls due.
            assert!(store
                .claim_due_reminders(now, "sweep-c")
                .await
                .unwrap()
                .is_empty());
            let claimed = store.claim_due_reminders(now + 1, "sweep-c").await.unwrap();
            assert_eq!(claimed.len(), 1);
            assert_eq!(claimed[0].id, not_yet.id);
        }
        // Claimed is not sent: the naive read still lists them until marked.
        assert_eq!(store.due_reminders(i64::MAX).await.unwrap().len(), 5 * 21);
    }

    pub async fn record_updates(store: Store) {
        let flux = product(&store, "Flux Capacitor").await;
        let order = store.create_order(&new_order(flux.id, 1)).await.unwrap();

        store
            .record_charge(order.id, true, Some("ch_0000abcd"), None, 5_000)
            .await
            .unwrap();
        let charged = store.order(order.id).await.unwrap().unwrap();
        assert_eq!(charged.charge_successful, Some(true));
        assert_eq!(charged.charge_id.as_deref(), Some("ch_0000abcd"));
        assert_eq!(charged.charge_completed_at_ms, Some(5_000));
        assert_eq!(charged.charge_decline_reason, None);
        assert_eq!(charged.state(), OrderState::Charged);

        store.record_email(order.id, "em_0000abcd").await.unwrap();
        let emailed = store.order(order.id).await.unwrap().unwrap();
        assert_eq!(emailed.email_id.as_deref(), Some("em_0000abcd"));
        assert_eq!(emailed.state(), OrderState::Emailed);
        assert!(!emailed.is_complete());

        store
            .record_fulfillment(order.id, "fr_0000abcd")
            .await
            .unwrap();
        let fulfilled = store.order(order.id).await.unwrap().unwrap();
        assert_eq!(
            fulfilled.fulfillment_request_id.as_deref(),
            Some("fr_0000abcd")
        );
        assert_eq!(fulfilled.state(), OrderState::Fulfilled);
        assert!(fulfilled.is_complete());

        // A second charge overwrites the first (what a naive retry leaves).
        store
            .record_charge(order.id, true, Some("ch_0000ffff"), None, 6_000)
            .await
            .unwrap();
        let recharged = store.order(order.id).await.unwrap().unwrap();
        assert_eq!(recharged.charge_id.as_deref(), Some("ch_0000ffff"));

        let mut pricey = new_order(flux.id, 1);
        pricey.amount_cents = Some(9999);
        let declined = store.create_order(&pricey).await.unwrap();
        store
            .record_charge(declined.id, false, None, Some("Insufficient funds"), 7_000)
            .await
            .unwrap();
        let declined = store.order(declined.id).await.unwrap().unwrap();
        assert_eq!(declined.charge_successful, Some(false));
        assert_eq!(declined.charge_id, None);
        assert_eq!(
            declined.charge_decline_reason.as_deref(),
            Some("Insufficient funds")
        );
        assert_eq!(declined.state(), OrderState::Declined);
        assert!(declined.is_declined());

        let json = serde_json::to_value(&declined).unwrap();
        assert_eq!(json["charge_successful"], json!(false));
        assert_eq!(json["amount_cents"], json!(9999));

        for result in [
            store
                .record_charge(999_999, true, Some("ch_x"), None, 1)
                .await,
            store.record_email(999_999, "em_x").await,
            store.record_fulfillment(999_999, "fr_x").await,
        ] {
            let err = result.unwrap_err();
            assert!(matches!(
                err,
                StoreError::NotFound {
                    what: "order",
                    id: 999_999
                }
            ));
            assert_eq!(err.to_string(), "order 999999 not found");
        }
    }

    /// The database's count by state agrees with each order's own state.
    pub async fn order_counts_by_state(store: Store) {
        let zero: Vec<(OrderState, i64)> = OrderState::ALL.iter().map(|&s| (s, 0)).collect();
        assert_eq!(store.order_counts().await.unwrap(), zero, "no orders yet");
        let flux = product(&store, "Flux Capacitor").await;
        let mut ids = Vec::new();
        for _ in 0..7 {
            ids.push(store.create_order(&new_order(flux.id, 1)).await.unwrap().id);
        }
        // 2 placed, 1 declined, 1 charged, 1 emailed, 2 fulfilled.
        store
            .record_charge(ids[2], false, None, Some("Insufficient funds"), 1)
            .await
            .unwrap();
        for &id in &ids[3..] {
            store
                .record_charge(id, true, Some("ch_1"), None, 1)
                .await
                .unwrap();
        }
        for &id in &ids[4..] {
            store.record_email(id, "em_1").await.unwrap();
        }
        for &id in &ids[5..] {
            store.record_fulfillment(id, "fr_1").await.unwrap();
        }
        let counts = store.order_counts().await.unwrap();
        assert_eq!(
            counts,
            [
                (OrderState::Placed, 2),
                (OrderState::Charged, 1),
                (OrderState::Declined, 1),
                (OrderState::Emailed, 1),
                (OrderState::Fulfilled, 2),
            ]
        );
        let orders = store.orders().await.unwrap();
        for (state, n) in counts {
            let by_row = orders.iter().filter(|o| o.state() == state).count();
            assert_eq!(by_row as i64, n, "{state}");
        }
    }

    pub async fn order_and_user_in_one_read(store: Store) {
        let flux = product(&store, "Flux Capacitor").await;
        let order = store.create_order(&new_order(flux.id, 2)).await.unwrap();
        store
            .record_charge(order.id, true, Some("ch_0000abcd"), None, 5_000)
            .await
            .unwrap();
        let (read, user) = store.order_and_user(order.id).await.unwrap().unwrap();
        assert_eq!(Some(&read), store.order(order.id).await.unwrap().as_ref());
        assert_eq!(read.charge_id.as_deref(), Some("ch_0000abcd"));
        let user = user.expect("the order's user");
        assert_eq!(user.id, order.user_id);
        assert_eq!(Some(user), store.user(order.user_id).await.unwrap());
        assert_eq!(store.order_and_user(999_999).await.unwrap(), None);
    }

    /// The lab's commits wait for the OS, not the disk (SQLite `NORMAL`,
    /// Postgres `synchronous_commit = off`), unless a Postgres URL sets it.
    pub async fn commits_do_not_wait_for_the_disk(store: Store, url: String) {
        let wait = store.commit_wait().await.unwrap();
        match store.dialect() {
            Dialect::Sqlite => assert_eq!(wait, "synchronous = normal"),
            Dialect::Postgres => {
                assert_eq!(wait, "synchronous_commit = off");
                let separator = if url.contains('?') { '&' } else { '?' };
                let durable = format!("{url}{separator}options=-c%20synchronous_commit%3Don");
                let durable = Store::connect(&durable)
                    .await
                    .unwrap_or_else(|e| panic!("connecting with options: {e}"));
                assert_eq!(
                    durable.commit_wait().await.unwrap(),
                    "synchronous_commit = on"
                );
                durable.close().await;
            }
        }
    }

    pub async fn reset_restores_the_seed(store: Store) {
        let seed = Seed::read(&store).await;
        let (order, before) = leave_a_trail(&store).await;
        store.claim_due_reminders(1, "sweep").await.unwrap();

        store.reset().await.unwrap();

        seed.assert_back(&store).await;

        // Ids are not reused: an idempotency key naming an old order must not
        // match a new one.
        let after = store.create_order(&order).await.unwrap();
        assert!(after.id > before.id);
        // Reset twice is fine.
        store.reset().await.unwrap();
        store.reset().await.unwrap();
        assert_eq!(store.products().await.unwrap(), seed.products);
    }

    /// The seed state, read before a test changes it.
    struct Seed {
        products: Vec<Product>,
        pat: User,
    }

    impl Seed {
        async fn read(store: &Store) -> Seed {
            Seed {
                products: store.products().await.unwrap(),
                pat: store.user_by_email(SEED_USER_EMAIL).await.unwrap().unwrap(),
            }
        }

        /// What `reset` and `rewind` leave: the seed products and user, and
        /// no order, outbox row, reminder or other user.
        async fn assert_back(&self, store: &Store) {
            assert_eq!(store.products().await.unwrap(), self.products);
            assert_eq!(store.count_orders().await.unwrap(), 0);
            assert!(store.outbox().await.unwrap().is_empty());
            assert!(store.reminders().await.unwrap().is_empty());
            assert_eq!(
                store.user_by_email(SEED_USER_EMAIL).await.unwrap().as_ref(),
                Some(&self.pat)
            );
            assert_eq!(
                store.user_by_email("someone@example.com").await.unwrap(),
                None
            );
        }
    }

    /// An order from a new customer, its outbox row and two due reminders:
    /// what `reset` and `rewind` must clear. Returns the form and the order.
    async fn leave_a_trail(store: &Store) -> (NewOrder, Order) {
        let stembolt = product(store, "Self-sealing Stembolt").await;
        let mut order = new_order(stembolt.id, 3);
        order.email = "someone@example.com".into();
        let placed = store.create_order(&order).await.unwrap();
        store
            .add_outbox(placed.id, "CompleteOrderJob", &json!([placed.id]), "high")
            .await
            .unwrap();
        add_reminders(store, 2, 0).await;
        (order, placed)
    }

    pub async fn rewind_restarts_ids(store: Store) {
        if store.dialect() == Dialect::Postgres {
            assert!(matches!(
                store.rewind().await,
                Err(StoreError::Unsupported(_))
            ));
            return;
        }
        let seed = Seed::read(&store).await;
        let (order, first) = leave_a_trail(&store).await;

        store.rewind().await.unwrap();

        seed.assert_back(&store).await;
        // Unlike `reset`, the ids start again: the same run on a rewound
        // store gives the same ids (and idempotency keys) as on a fresh one.
        let again = store.create_order(&order).await.unwrap();
        assert_eq!(again.id, first.id);
        assert_eq!(again.user_id, first.user_id);
        let outbox = store
            .add_outbox(again.id, "CompleteOrderJob", &json!([again.id]), "high")
            .await
            .unwrap();
        assert_eq!(outbox.id, 1);
    }

    pub async fn reconnect_keeps_data(store: Store, url: String) {
        let flux = product(&store, "Flux Capacitor").await;
        let order = store.create_order(&new_order(flux.id, 5)).await.unwrap();

        // Migrations and seeding run again, and change nothing.
        let again = Store::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("reconnecting: {e}"));
        assert_eq!(again.order(order.id).await.unwrap(), Some(order));
        assert_eq!(again.products().await.unwrap().len(), 4);
        assert_eq!(
            product(&again, "Flux Capacitor").await.quantity_remaining,
            95
        );
        again.close().await;
    }
}

#[test]
fn with_database_replaces_only_the_name() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://u:p@h/db?sslmode=disable", "x"),
        "postgres://u:p@h/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
}

#[tokio::test]
async fn temporary_store_removes_its_file() {
    let store = Store::temporary().await.unwrap();
    let url = store.url().to_string();
    let path = url
        .strip_prefix("sqlite://")
        .and_then(|rest| rest.split('?').next())
        .expect("a sqlite:// URL")
        .to_string();
    assert!(std::path::Path::new(&path).exists(), "{path}");
    let copy = store.clone();
    drop(store);
    assert!(
        std::path::Path::new(&path).exists(),
        "a clone still uses it"
    );
    drop(copy);
    assert!(!std::path::Path::new(&path).exists(), "{path} removed");
}

fn an_order(product_id: i64, quantity: i64) -> NewOrder {
    NewOrder {
        product_id,
        quantity,
        email: "buyer@example.com".into(),
        address: "1 Main St, Springfield".into(),
        amount_cents: None,
    }
}

/// The simulator keeps its stores from run to run, and a run may be on
/// another runtime than the last while that one is still alive but no longer
/// driven (a bench's runtime, then `lab explore`'s). A pooled store gave its
/// connections back in tasks on the runtime of their last statement, so the
/// writers' connection could stay stuck there; the simulation store spawns
/// nothing and works from any runtime.
#[test]
fn a_simulation_store_moves_between_runtimes() {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let first = runtime();
    let store = first.block_on(async {
        let store = Store::simulation().await.unwrap();
        let flux = store.products().await.unwrap()[0].id;
        let order = store.create_order(&an_order(flux, 1)).await.unwrap();
        store.record_email(order.id, "em_1").await.unwrap();
        store.rewind().await.unwrap();
        store
    });
    // `first` stays alive, and idle.
    for _ in 0..3 {
        let store = store.clone();
        runtime().block_on(async move {
            let flux = store.products().await.unwrap()[0].id;
            let order = store.create_order(&an_order(flux, 1)).await.unwrap();
            assert_eq!(order.id, 1, "rewound");
            store.record_email(order.id, "em_1").await.unwrap();
            store.rewind().await.unwrap();
        });
    }
    drop(first);
}

/// A transaction dropped open on the simulation store (no task to roll it
/// back) is rolled back before the next statement, whatever it is.
#[tokio::test]
async fn a_simulation_store_rolls_back_a_dropped_transaction_first() {
    let store = Store::simulation().await.unwrap();
    let flux = store.products().await.unwrap()[0].clone();
    {
        let mut tx = store.begin().await.unwrap();
        tx.create_order(&an_order(flux.id, 3)).await.unwrap();
    }
    assert_eq!(store.count_orders().await.unwrap(), 0);
    assert_eq!(store.products().await.unwrap()[0], flux);
    // And a transaction can start again at once.
    let mut tx = store.begin().await.unwrap();
    let order = tx.create_order(&an_order(flux.id, 3)).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.order(order.id).await.unwrap(), Some(order));
    store.close().await;
    assert!(store.count_orders().await.is_err(), "closed");
}

#[tokio::test]
async fn memory_stores_are_separate() {
    let a = Store::memory().await.unwrap();
    let b = Store::memory().await.unwrap();
    let flux = a.products().await.unwrap()[0].id;
    a.create_order(&NewOrder {
        product_id: flux,
        quantity: 1,
        email: "a@example.com".into(),
        address: "x".into(),
        amount_cents: None,
    })
    .await
    .unwrap();
    assert_eq!(a.count_orders().await.unwrap(), 1);
    assert_eq!(b.count_orders().await.unwrap(), 0);
    // `sqlite::memory:` gets a fresh database too, shared by its pool.
    let c = Store::connect("sqlite::memory:").await.unwrap();
    assert_eq!(c.count_orders().await.unwrap(), 0);
    assert_eq!(c.products().await.unwrap().len(), 4);
}

#[tokio::test]
async fn unsupported_urls_are_refused_with_a_clear_message() {
    let err = Store::connect("mysql://h/db").await.unwrap_err();
    assert!(
        err.to_string().contains("unsupported database URL"),
        "{err}"
    );
    let err = Store::connect("sqlite:///nonexistent-dir/x/y.db?mode=rwc")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot connect"), "{err}");
}
