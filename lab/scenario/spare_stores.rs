//! The simulator's spare stores: an in-memory SQLite store kept per thread
//! between runs and rewound to its seed state, since making one (schema and
//! seed) costs more than a whole run and rewinding one a tenth.
//!
//! A store's SQLite thread keeps the cores it was started on (it inherits
//! the affinity of the thread that opened the store), so a spare is handed
//! out only to a thread on the same cores: a thread held to core 1 given a
//! store whose SQLite thread is held to core 0 would wake the other core at
//! every statement, three to four times slower (`lab/cores.rs`).
//! That happened when one thread explored on one core, then on another.

use crate::store::{Store, StoreError};

thread_local! {
    /// In-memory stores kept for the next run on this thread: making one
    /// (schema and seed) costs more than a whole run, rewinding one a tenth.
    /// Each with the cores it was given back on (see above).
    static SPARE_STORES: std::cell::RefCell<Vec<(Vec<usize>, Spare)>> = const { std::cell::RefCell::new(Vec::new()) };
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

/// The cores the calling thread may run on now (empty where unknown).
fn cores_here() -> Vec<usize> {
    #[cfg(target_os = "linux")]
    return crate::cores::this_thread_cores();
    #[cfg(not(target_os = "linux"))]
    return Vec::new();
}

/// A fresh in-memory store, or a rewound one made on the same cores (the
/// same ids either way).
pub async fn simulation_store() -> Result<Spare, StoreError> {
    let here = cores_here();
    let spare = SPARE_STORES.with(|spares| {
        let mut spares = spares.borrow_mut();
        let at = spares.iter().rposition(|(cores, _)| *cores == here)?;
        Some(spares.remove(at).1)
    });
    match spare {
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
        Ok(()) => SPARE_STORES.with(|spares| spares.borrow_mut().push((cores_here(), spare))),
        Err(err) => {
            tracing::warn!(%err, "a simulation store could not be rewound; dropping it");
            spare.store.close().await;
        }
    }
}
