//! The periodic reminder sweep run late, so that two sweeps overlap: the
//! naive select-then-send sends each reminder twice, the atomic claim once.
//! Two sweeps really run at once here (a worker process with concurrency 5),
//! and a slow email provider on the virtual clock holds both mid-send. And a
//! sweep retried after the provider sent and then failed: the naive one
//! sends again, the atomic claim's key has the provider replay.

use idemlab_test_support as common;

use common::{lab, wait_until, Lab};
use fake_services::{Clock, Service};
use idemlab::pipeline::reminders::{schedule_sweep, REMINDER_TEMPLATE};
use idemlab::pipeline::{Knobs, Sweep};
use serde_json::json;

fn slow_rule_hits(lab: &Lab) -> u64 {
    lab.fakes.behavior(Service::Email).faults[0].state.hits
}

/// A lab on the `sweep` variant, with one reminder due now.
async fn lab_with_a_due_reminder(sweep: Sweep) -> Lab {
    let lab = lab(Knobs {
        sweep,
        ..Knobs::safe()
    })
    .await;
    lab.remind_now("pat@example.com").await;
    lab
}

/// Two overlapping sweeps over one due reminder; returns the reminder emails sent.
async fn overlapping_sweeps(sweep: Sweep) -> usize {
    let lab = lab_with_a_due_reminder(sweep).await;
    lab.fault(
        Service::Email,
        json!({"faults": [{"mode": "slow", "sleep_ms": 500}]}),
    );
    // The scheduler ran late: two sweeps are enqueued at once.
    schedule_sweep(lab.runner.client()).await.unwrap();
    schedule_sweep(lab.runner.client()).await.unwrap();
    // The lab's runner runs five jobs at once: both sweeps run together.
    let runner = lab.runner.clone();
    let process = runner.start().await;
    let expected_sends = if sweep == Sweep::SelectThenSend { 2 } else { 1 };
    wait_until("the sweeps are sending", || async {
        slow_rule_hits(&lab) >= expected_sends
    })
    .await;
    // With the atomic claim, the second sweep found nothing and is done.
    wait_until("the sweeps hold still", || async {
        let (processed, _) = runner.backend().stats().await.unwrap();
        processed + slow_rule_hits(&lab) >= 2
    })
    .await;
    lab.clock.advance(500);
    wait_until("both sweeps finished", || async {
        runner.backend().stats().await.unwrap().0 == 2
    })
    .await;
    process.stop().await;
    assert_eq!(slow_rule_hits(&lab), expected_sends, "no third send");
    lab.fakes
        .ledger(Service::Email)
        .iter()
        .filter(|r| r.request["template_id"] == REMINDER_TEMPLATE)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_select_then_send_sweeps_send_twice() {
    assert_eq!(overlapping_sweeps(Sweep::SelectThenSend).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_atomic_claim_sweeps_send_once() {
    assert_eq!(overlapping_sweeps(Sweep::AtomicClaim).await, 1);
}

#[tokio::test]
async fn a_sweep_sends_due_reminders_and_leaves_the_rest() {
    let lab = lab(Knobs::safe()).await;
    let now = lab.clock.now_ms() as i64;
    lab.shop
        .store
        .add_reminder("due@example.com", now - 1)
        .await
        .unwrap();
    lab.shop
        .store
        .add_reminder("later@example.com", now + 60_000)
        .await
        .unwrap();
    schedule_sweep(lab.runner.client()).await.unwrap();
    lab.drain().await;
    let sent: Vec<String> = lab
        .fakes
        .ledger(Service::Email)
        .iter()
        .map(|r| r.request["to"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sent, vec!["due@example.com".to_string()]);
    let reminders = lab.shop.store.reminders().await.unwrap();
    let due = reminders
        .iter()
        .find(|r| r.email == "due@example.com")
        .unwrap();
    assert!(due.sent_at_ms.is_some());
    assert_eq!(
        due.email_id.as_deref(),
        Some(lab.fakes.ledger(Service::Email)[0].id.as_str())
    );
    let later = reminders
        .iter()
        .find(|r| r.email == "later@example.com")
        .unwrap();
    assert!(later.sent_at_ms.is_none());
}

/// A sweep retried after the provider sent its reminder and answered 503:
/// returns the reminder emails the provider sent.
async fn sweep_retried_after_send_then_crash(sweep: Sweep) -> usize {
    let lab = lab_with_a_due_reminder(sweep).await;
    lab.fault(
        Service::Email,
        json!({"faults": [{"mode": "send-then-crash", "calls": 1}]}),
    );
    schedule_sweep(lab.runner.client()).await.unwrap();
    lab.drain().await;
    let reminder = &lab.shop.store.reminders().await.unwrap()[0];
    assert!(reminder.sent_at_ms.is_some(), "the retry marked it sent");
    lab.fakes
        .ledger(Service::Email)
        .iter()
        .filter(|r| r.request["template_id"] == REMINDER_TEMPLATE)
        .count()
}

#[tokio::test]
async fn a_retried_select_then_send_sweep_sends_again() {
    assert_eq!(
        sweep_retried_after_send_then_crash(Sweep::SelectThenSend).await,
        2
    );
}

#[tokio::test]
async fn a_retried_atomic_claim_sweep_has_the_provider_replay() {
    assert_eq!(
        sweep_retried_after_send_then_crash(Sweep::AtomicClaim).await,
        1
    );
}
