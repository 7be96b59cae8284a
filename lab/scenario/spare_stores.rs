//! The simulator's spare stores: an in-memory SQLite store kept per thread
//! between runs and rewound to its seed state, since making one (schema and
//! seed) costs more than a whole run and rewinding one a tenth.

use crate::store::{Store, StoreError};

thread_local! {
    /// In-memory stores kept for the next run on this thread: making one
    /// (schema and seed) costs more than a whole run, rewinding one a tenth.
    static SPARE_STORES: std::cell::RefCell<Vec<Spare>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A simulation store between runs.
pub struct Spare {
    pub store: Store,
    /// The product its last run placed orders for. Rewinding restores the
    /// seed products, ids and stock included, so the next run would pick
    /// the same one: it need not read the products again (a statement with
    /// a row per product, in a run of about twenty).
    pub product: Option<i64>,
}

/// A fresh in-memory store, or a rewound one (the same ids either way).
pub async fn simulation_store() -> Result<Spare, StoreError> {
    match SPARE_STORES.with(|spare| spare.borrow_mut().pop()) {
        Some(spare) => Ok(spare),
        None => Ok(Spare {
            store: Store::simulation().await?,
            product: None,
        }),
    }
}

/// Rewinds a store and keeps it for the next run on this thread (or drops
/// it, if it cannot be rewound).
pub async fn give_back(spare: Spare) {
    match spare.store.rewind().await {
        Ok(()) => SPARE_STORES.with(|spares| spares.borrow_mut().push(spare)),
        Err(err) => {
            tracing::warn!(%err, "a simulation store could not be rewound; dropping it");
            spare.store.close().await;
        }
    }
}
