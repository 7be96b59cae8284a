//! `POST /reset` gives the memory back: the `fake-services` process, loaded
//! with records, returns to within 50 MB of what it held fresh. (Before,
//! a reset cleared the ledgers but the process kept every byte.)
//!
//! One test in a binary of its own, against the binary as its own process,
//! so that the memory measured is the server's alone. Linux only (it reads
//! `/proc/PID/statm`); elsewhere it says so and passes.

use std::time::Duration;

use fake_services_test_support::process::SpawnedFakes;
use serde_json::json;

/// The server's resident memory, in MB.
fn resident_mb(server: &SpawnedFakes) -> f64 {
    server.resident().expect("the server's /proc/PID/statm") as f64 / 1e6
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_returns_the_memory_of_the_records() {
    if !std::path::Path::new("/proc/self/statm").exists() {
        eprintln!("skipped: this test reads /proc/PID/statm (Linux)");
        return;
    }
    let server = SpawnedFakes::start(env!("CARGO_BIN_EXE_fake-services").as_ref()).unwrap();
    let base = server.base();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let status = client
        .get(format!("{base}/payments/status"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let fresh = resident_mb(&server);
    // Many small records, as a load test makes them, and some large ones
    // so that the load is well above the 50 MB allowed after.
    let note = "n".repeat(16 * 1024);
    let mut tasks = Vec::new();
    for connection in 0..8u64 {
        let client = client.clone();
        let base = base.clone();
        let note = note.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..3_000u64 {
                let order = connection * 1_000_000 + i;
                let mut body = json!({"customer_id": "cus_1", "payment_method_id": "pm_1",
                    "amount_cents": 1200,
                    "metadata": {"order_id": order, "idempotency_key": format!("charge-order-{order}")}});
                if i % 5 == 0 {
                    body["note"] = json!(note);
                }
                let response = client
                    .post(format!("{base}/payments/charge"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 201);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let loaded = resident_mb(&server);
    assert!(
        loaded - fresh >= 70.0,
        "the load should hold well over 50 MB: fresh {fresh:.1} MB, loaded {loaded:.1} MB"
    );
    let reset = client.post(format!("{base}/reset")).send().await.unwrap();
    assert_eq!(reset.status(), 200);
    let ledger: Vec<serde_json::Value> = client
        .get(format!("{base}/payments/ledger"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(ledger.is_empty());
    let after = resident_mb(&server);
    assert!(
        after - fresh <= 50.0,
        "after a reset: {after:.1} MB resident, {fresh:.1} MB fresh (loaded: {loaded:.1} MB)"
    );
}
