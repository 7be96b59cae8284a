//! Ruby Sidekiq 6.4 (Debian's `ruby-sidekiq`) and the lab on one Redis:
//! Sidekiq's own API reads the lab's queues, retries, dead set, processes
//! and counters as the lab's `/jobs` page shows them, and a job pushed with
//! `Sidekiq::Client.push` is run by the lab's worker.
//!
//! Needs `ruby` with the sidekiq gem and Redis (database 9, which this test
//! empties). Without them it says so and passes; with `CI` set it fails.

use idemlab_test_support as common;

use common::servers::unavailable;

use std::process::Command;
use std::sync::Arc;

use fake_services::{Clock, Service};
use idemlab::pipeline::Knobs;
use idemlab::runner::backend::ProcessInfo;
use idemlab::runner::{Backend, JobSet, RedisBackend};
use idemlab::store::NewOrder;
use serde_json::{json, Value};

const REDIS: &str = "redis://127.0.0.1:6379/9";

fn ruby(env: &[(&str, String)]) -> Value {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/sidekiq_state.rb"
    );
    let mut command = Command::new("ruby");
    command.arg(script).env("REDIS_URL", REDIS);
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().expect("ruby runs");
    assert!(
        output.status.success(),
        "ruby failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the script prints JSON")
}

#[tokio::test]
async fn ruby_sidekiq_reads_the_lab_and_the_lab_runs_what_ruby_pushes() {
    let has_sidekiq = Command::new("ruby")
        .args(["-e", "require 'sidekiq/api'"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_sidekiq {
        unavailable("ruby with the sidekiq gem (apt-get install ruby-sidekiq)");
        return;
    }
    let backend = match RedisBackend::connect(REDIS).await {
        Ok(backend) => Arc::new(backend),
        Err(err) => {
            unavailable(&format!("Redis at {REDIS}: {err}"));
            return;
        }
    };
    backend.clear().await.unwrap();
    let lab = common::lab_on(backend.clone(), Knobs::safe(), 25).await;
    let client = lab.runner.client();
    let now = lab.clock.now_ms();

    // The lab writes: queued jobs, a retry, a dead job, a process, counters.
    client
        .push("ReportJob", vec![json!(1)], "default")
        .await
        .unwrap();
    client
        .push("ReportJob", vec![json!(2)], "default")
        .await
        .unwrap();
    client
        .push("CompleteOrderJob", vec![json!(3)], "high")
        .await
        .unwrap();
    let mut failed = client.build("SendOrderNotificationEmailJob", vec![json!(4)], "default");
    failed.error_class = Some("Email::ServerError".into());
    failed.error_message = Some("email answered 503".into());
    failed.retry_count = Some(1);
    failed.failed_at = Some(now as f64 / 1000.0);
    backend
        .add_to_set(JobSet::Retry, failed.clone(), now + 60_000)
        .await
        .unwrap();
    let dead = client.build("RequestOrderFulfillmentJob", vec![json!(5)], "default");
    backend
        .add_to_set(JobSet::Dead, dead.clone(), now)
        .await
        .unwrap();
    backend
        .heartbeat(
            ProcessInfo {
                identity: "worker-a:1".into(),
                hostname: "worker-a".into(),
                started_at_ms: now,
                beat_ms: now,
                concurrency: 3,
                queues: vec!["high".into(), "default".into()],
                busy: 0,
                code_version: "v-interop".into(),
            },
            vec![],
        )
        .await
        .unwrap();
    backend.count(5, 2).await.unwrap();

    // Ruby reads it through Sidekiq's API, as the lab's /jobs page shows it.
    let seen = ruby(&[]);
    let mut sizes = backend.queue_sizes().await.unwrap();
    sizes.sort();
    for (queue, size) in &sizes {
        assert_eq!(seen["queues"][queue], json!(size), "queue {queue}: {seen}");
    }
    assert_eq!(seen["queues"]["default"], 2);
    assert_eq!(seen["queues"]["high"], 1);
    let retry = &seen["retries"][0];
    assert_eq!(retry["class"], "SendOrderNotificationEmailJob");
    assert_eq!(retry["args"], json!([4]));
    assert_eq!(retry["jid"], failed.jid.as_str());
    assert_eq!(retry["error_class"], "Email::ServerError");
    assert_eq!(retry["error_message"], "email answered 503");
    assert_eq!(retry["retry_count"], 1);
    assert_eq!(
        retry["at"].as_f64().unwrap(),
        (now + 60_000) as f64 / 1000.0
    );
    assert_eq!(seen["dead"][0]["jid"], dead.jid.as_str());
    let process = &seen["processes"][0];
    assert_eq!(process["identity"], "worker-a:1");
    assert_eq!(process["tag"], "v-interop");
    assert_eq!(process["concurrency"], 3);
    assert_eq!(seen["processed"], 5);
    assert_eq!(seen["failed"], 2);

    // Ruby pushes a CompleteOrderJob for a real order; the lab runs it.
    backend.clear().await.unwrap();
    let order = lab
        .shop
        .store
        .create_order_at(
            &NewOrder {
                product_id: 1,
                quantity: 1,
                email: "pat@example.com".into(),
                address: "1 Main St".into(),
                amount_cents: None,
            },
            now as i64,
        )
        .await
        .unwrap();
    let pushed = ruby(&[("PUSH_ORDER", order.id.to_string())]);
    assert!(pushed["pushed"].is_string());
    assert_eq!(lab.drain().await, 3, "the pushed job, then its chain");
    assert!(lab.reload(&order).await.is_complete());
    assert_eq!(lab.effects(Service::Payments, order.id), 1);
    backend.clear().await.unwrap();
}
