
CREATE TABLE products (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    name               TEXT    NOT NULL UNIQUE,
    quantity_remaining INTEGER NOT NULL CHECK (quantity_remaining >= 0),
    price_cents        INTEGER NOT NULL
);

CREATE TABLE users (
    id                         INTEGER PRIMARY KEY AUTOINCREMENT,
    email                      TEXT NOT NULL UNIQUE,
    payments_customer_id       TEXT NOT NULL,
    payments_payment_method_id TEXT NOT NULL
);

CREATE TABLE orders (
    id                     INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id             INTEGER NOT NULL REFERENCES products (id),
    user_id                INTEGER NOT NULL REFERENCES users (id),
    quantity               INTEGER NOT NULL,
    address                TEXT    NOT NULL,
    email                  TEXT    NOT NULL,
    amount_cents           INTEGER NOT NULL,
    created_at_ms          INTEGER NOT NULL,
    charge_completed_at_ms INTEGER,
    charge_successful      INTEGER,
    charge_decline_reason  TEXT,
    charge_id              TEXT,
    email_id               TEXT,
    fulfillment_request_id TEXT
);
CREATE INDEX orders_user_id ON orders (user_id);

CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id      INTEGER NOT NULL,
    job_class     TEXT    NOT NULL,
    args          TEXT    NOT NULL,
    queue         TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    relayed_at_ms INTEGER
);
CREATE INDEX outbox_pending ON outbox (id) WHERE relayed_at_ms IS NULL;

CREATE TABLE reminders (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT    NOT NULL,
    due_at_ms     INTEGER NOT NULL,
    claimed_by    TEXT,
    claimed_at_ms INTEGER,
    sent_at_ms    INTEGER,
    email_id      TEXT
);
CREATE INDEX reminders_unsent ON reminders (due_at_ms) WHERE sent_at_ms IS NULL;
