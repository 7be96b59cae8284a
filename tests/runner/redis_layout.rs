//! Sidekiq's Redis layout, read with a plain connection: the keys and the
//! JSON exactly as Ruby Sidekiq writes and reads them.

use super::prelude::*;
use crate::harness::Raw;

on_redis!(
    jobs_and_keys_are_sidekiqs,
    failed_jobs_are_scored_in_epoch_seconds,
    the_process_set_is_sidekiqs,
    reliable_fetch_holds_the_job_in_an_in_progress_list,
    jobs_pushed_by_ruby_sidekiq_6_and_8_run_and_are_acknowledged,
    recover_expired_removes_the_dead_process_keys,
    a_payload_the_lab_cannot_read_goes_to_the_dead_set,
);

fn object_keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A lab on a fresh Redis backend, and the plain connection.
async fn redis_lab(b: &Backends, registry: Registry, config: RunnerConfig) -> (Lab, Raw) {
    let (backend, raw) = b.fresh_redis().await;
    (lab_on(backend, registry, config), raw)
}

async fn jobs_and_keys_are_sidekiqs(b: Backends) {
    let (lab, mut raw) = redis_lab(&b, Registry::new(), config()).await;
    let client = lab.runner.client();
    let first = client
        .push("CompleteOrderJob", vec![json!(7)], "default")
        .await
        .unwrap();
    lab.clock.advance(1_500);
    let second = client
        .push("CompleteOrderJob", vec![json!(8)], "default")
        .await
        .unwrap();
    client.push("R", vec![], "high").await.unwrap();

    let queues: BTreeSet<String> = raw.conn.smembers(raw.key("queues")).await.unwrap();
    assert_eq!(queues, set(&["default", "high"]));
    // LPUSH: the newest on the left; taken from the right.
    let listed: Vec<String> = raw
        .conn
        .lrange(raw.key("queue:default"), 0, -1)
        .await
        .unwrap();
    let listed: Vec<Value> = listed
        .iter()
        .map(|s| serde_json::from_str(s).unwrap())
        .collect();
    assert_eq!(listed[0]["jid"], json!(second));
    assert_eq!(listed[1]["jid"], json!(first));
    let job = &listed[1];
    assert_eq!(
        object_keys(job),
        set(&[
            "class",
            "args",
            "jid",
            "queue",
            "retry",
            "created_at",
            "enqueued_at"
        ])
    );
    assert_eq!(job["class"], "CompleteOrderJob");
    assert_eq!(job["args"], json!([7]));
    assert_eq!(job["queue"], "default");
    assert_eq!(job["retry"], json!(true));
    assert!(job["created_at"].is_f64(), "float seconds: {job}");
    assert_eq!(job["created_at"], json!(1_767_225_600.0));
    assert_eq!(job["enqueued_at"], json!(1_767_225_600.0));
    assert_eq!(listed[0]["enqueued_at"], json!(1_767_225_601.5));
    let jid = job["jid"].as_str().unwrap();
    assert!(jid.len() == 24 && jid.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        raw.keys().await,
        ["queue:default", "queue:high", "queues"],
        "nothing else"
    );
    // Taken first in, first out.
    let taken = take_from(&*lab.backend, "default", FetchMode::Basic, "p").await;
    assert_eq!(taken.jid, first);
}

async fn failed_jobs_are_scored_in_epoch_seconds(b: Backends) {
    let (registry, _) = flaky(100, true);
    let (lab, mut raw) = redis_lab(&b, registry, with_max_retries(1)).await;
    let jid = lab.push("FlakyJob", vec![json!("a")]).await;
    let job = take_from(&*lab.backend, "default", FetchMode::Reliable, "p").await;
    lab.runner.perform(job, "p").await;
    let retries: Vec<(String, f64)> = raw
        .conn
        .zrange_withscores(raw.key("retry"), 0, -1)
        .await
        .unwrap();
    assert_eq!(retries.len(), 1);
    let (member, score) = &retries[0];
    let now_s = T0 as f64 / 1000.0;
    // Retry 0 waits 15–24 s.
    assert!(
        (now_s + 15.0..=now_s + 25.0).contains(score),
        "score {score} is not epoch seconds 15–24 s after {now_s}"
    );
    let failed: Value = serde_json::from_str(member).unwrap();
    assert_eq!(failed["jid"], json!(jid));
    assert_eq!(failed["error_class"], "Payments::ServerError");
    assert_eq!(failed["error_message"], "503 from payments");
    assert_eq!(failed["failed_at"], json!(now_s));
    assert_eq!(failed["retry_count"], json!(0));
    assert!(failed.get("retried_at").is_none());
    let stats: (String, String) = ::redis::pipe()
        .get(raw.key("stat:processed"))
        .get(raw.key("stat:failed"))
        .query_async(&mut raw.conn)
        .await
        .unwrap();
    assert_eq!(stats, ("1".to_string(), "1".to_string()));
    // The retry runs, fails again and dies: the dead set, scored now.
    lab.drain().await;
    let dead: Vec<(String, f64)> = raw
        .conn
        .zrange_withscores(raw.key("dead"), 0, -1)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].1, lab.clock.now_ms() as f64 / 1000.0);
    let died: Value = serde_json::from_str(&dead[0].0).unwrap();
    assert_eq!(died["retry_count"], json!(1));
    assert!(died["retried_at"].is_f64());
    let retry_size: usize = raw.conn.zcard(raw.key("retry")).await.unwrap();
    assert_eq!(retry_size, 0);
}

async fn the_process_set_is_sidekiqs(b: Backends) {
    let (backend, mut raw) = b.fresh_redis().await;
    let identity = "lab:v7:0";
    let busy_job = Job::new(
        "CompleteOrderJob",
        vec![json!(1)],
        "high",
        "a".repeat(24),
        T0,
    );
    let info = ProcessInfo {
        identity: identity.into(),
        hostname: "worker-1".into(),
        started_at_ms: T0,
        beat_ms: T0 + 5_250,
        concurrency: 10,
        queues: vec!["high".into(), "default".into()],
        busy: 1,
        code_version: "v7".into(),
    };
    backend
        .heartbeat(
            info.clone(),
            vec![BusyJob {
                process: identity.into(),
                started_at_ms: T0 + 4_000,
                job: busy_job.clone(),
            }],
        )
        .await
        .unwrap();
    let members: BTreeSet<String> = raw.conn.smembers(raw.key("processes")).await.unwrap();
    assert_eq!(members, set(&[identity]));
    let hash: HashMap<String, String> = raw.conn.hgetall(raw.key(identity)).await.unwrap();
    assert_eq!(hash["busy"], "1");
    assert_eq!(hash["beat"], "1767225605.25");
    assert_eq!(hash["quiet"], "false");
    let info_json: Value = serde_json::from_str(&hash["info"]).unwrap();
    assert_eq!(info_json["hostname"], "worker-1");
    assert_eq!(info_json["started_at"], json!(1_767_225_600.0));
    assert_eq!(info_json["pid"], json!(std::process::id()));
    assert_eq!(info_json["tag"], "v7", "the label Sidekiq's web UI shows");
    assert_eq!(info_json["version"], "v7");
    assert_eq!(info_json["concurrency"], json!(10));
    assert_eq!(info_json["queues"], json!(["high", "default"]));
    assert_eq!(info_json["identity"], identity);
    // Sidekiq 7's `:work` and Sidekiq 6's `:workers`, jid → work.
    for key in ["work", "workers"] {
        let work: HashMap<String, String> = raw
            .conn
            .hgetall(raw.key(&format!("{identity}:{key}")))
            .await
            .unwrap();
        assert_eq!(work.len(), 1, "{key}");
        let entry: Value = serde_json::from_str(&work[&busy_job.jid]).unwrap();
        assert_eq!(object_keys(&entry), set(&["queue", "payload", "run_at"]));
        assert_eq!(entry["queue"], "high");
        assert_eq!(entry["run_at"], json!(1_767_225_604.0));
        let payload: Value = serde_json::from_str(entry["payload"].as_str().unwrap()).unwrap();
        assert_eq!(payload["jid"], json!(busy_job.jid));
    }
    // A tag-only process (Sidekiq 6 writes no version) shows its tag.
    let ruby_info = json!({
        "hostname": "ruby", "started_at": 1_767_225_600.5, "pid": 42, "tag": "app-v6",
        "concurrency": 10, "queues": ["default"], "labels": [], "identity": "ruby:42:abc"
    });
    let _: () = ::redis::pipe()
        .sadd(raw.key("processes"), "ruby:42:abc")
        .hset_multiple(
            raw.key("ruby:42:abc"),
            &[
                ("info", ruby_info.to_string()),
                ("busy", "0".into()),
                ("beat", "1767225610.123456".into()),
                ("quiet", "false".into()),
            ],
        )
        .query_async(&mut raw.conn)
        .await
        .unwrap();
    let processes = backend.processes().await.unwrap();
    assert_eq!(processes[0], info);
    assert_eq!(processes[1].code_version, "app-v6");
    assert_eq!(processes[1].beat_ms, T0 + 10_123);
    assert_eq!(processes[1].started_at_ms, T0 + 500);
    backend.remove_process(identity).await.unwrap();
    backend.remove_process("ruby:42:abc").await.unwrap();
    assert!(raw.keys().await.is_empty(), "{:?}", raw.keys().await);
}

async fn reliable_fetch_holds_the_job_in_an_in_progress_list(b: Backends) {
    let (backend, mut raw) = b.fresh_redis().await;
    let job = Job::new("J", vec![], "default", "b".repeat(24), T0);
    backend.push(job, T0).await.unwrap();
    let pushed: Vec<String> = raw
        .conn
        .lrange(raw.key("queue:default"), 0, -1)
        .await
        .unwrap();
    let taken = take_from(&*backend, "default", FetchMode::Reliable, "w:1").await;
    let held: Vec<String> = raw
        .conn
        .lrange(raw.key("inprogress:w:1"), 0, -1)
        .await
        .unwrap();
    assert_eq!(held, pushed, "moved as it was");
    let holders: BTreeSet<String> = raw.conn.smembers(raw.key("inprogress")).await.unwrap();
    assert_eq!(holders, set(&["w:1"]));
    let size: usize = raw.conn.llen(raw.key("queue:default")).await.unwrap();
    assert_eq!(size, 0);
    backend.acknowledge("w:1", &taken).await.unwrap();
    // The emptied lists are gone (Redis drops empty lists).
    assert_eq!(raw.keys().await, ["queues"]);
}

async fn jobs_pushed_by_ruby_sidekiq_6_and_8_run_and_are_acknowledged(b: Backends) {
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut registry = Registry::new();
    registry.register("HardJob", Recorder(order.clone()));
    let (lab, mut raw) = redis_lab(&b, registry, config()).await;
    // As Sidekiq 8 writes it: integer milliseconds, its own key order,
    // keys the lab does not know.
    let sidekiq8 = r#"{"retry":true,"queue":"default","args":["eight"],"class":"HardJob","jid":"8a8a8a8a8a8a8a8a8a8a8a8a","created_at":1767225600123,"enqueued_at":1767225600456,"tags":["vip"]}"#;
    // As Sidekiq 6 writes it: float seconds.
    let sidekiq6 = r#"{"class":"HardJob","args":["six"],"retry":3,"queue":"default","jid":"6b6b6b6b6b6b6b6b6b6b6b6b","created_at":1767225600.5,"enqueued_at":1767225600.75}"#;
    let _: () = ::redis::pipe()
        .sadd(raw.key("queues"), "default")
        .lpush(raw.key("queue:default"), sidekiq8)
        .lpush(raw.key("queue:default"), sidekiq6)
        .query_async(&mut raw.conn)
        .await
        .unwrap();
    // Read as it is.
    let job = take_from(&*lab.backend, "default", FetchMode::Reliable, "w").await;
    assert_eq!(job.jid, "8a8a8a8a8a8a8a8a8a8a8a8a");
    assert_eq!(job.created_at, 1_767_225_600.123);
    assert_eq!(job.enqueued_at, Some(1_767_225_600.456));
    assert_eq!(job.extra["tags"], json!(["vip"]));
    let held: Vec<String> = raw
        .conn
        .lrange(raw.key("inprogress:w"), 0, -1)
        .await
        .unwrap();
    assert_eq!(held, [sidekiq8], "held byte for byte");
    // The lab would write it differently; acknowledging still finds it.
    assert_ne!(job.to_json(), sidekiq8);
    lab.backend.acknowledge("w", &job).await.unwrap();
    let held: usize = raw.conn.llen(raw.key("inprogress:w")).await.unwrap();
    assert_eq!(held, 0);
    // Put it back and let the runner run both.
    let _: () = raw
        .conn
        .rpush(raw.key("queue:default"), sidekiq8)
        .await
        .unwrap();
    assert_eq!(lab.drain().await, 2);
    assert_eq!(*order.lock().unwrap(), [json!("eight"), json!("six")]);
    assert_eq!(lab.backend.stats().await.unwrap(), (2, 0));
    assert!(lab.backend.waiting_jobs().await.unwrap().is_empty());
    let keys = raw.keys().await;
    assert!(
        !keys.iter().any(|k| k.starts_with("inprogress")),
        "nothing held: {keys:?}"
    );
}

async fn recover_expired_removes_the_dead_process_keys(b: Backends) {
    let (backend, mut raw) = b.fresh_redis().await;
    let ttl = 60_000;
    let info = |identity: &str, beat_ms| ProcessInfo {
        identity: identity.into(),
        hostname: "lab".into(),
        started_at_ms: T0,
        beat_ms,
        concurrency: 1,
        queues: vec!["default".into()],
        busy: 1,
        code_version: "v1".into(),
    };
    let job = Job::new("J", vec![], "default", "c".repeat(24), T0);
    backend.push(job.clone(), T0).await.unwrap();
    backend.heartbeat(info("dead", T0), vec![]).await.unwrap();
    let taken = take_from(&*backend, "default", FetchMode::Reliable, "dead").await;
    backend
        .heartbeat(
            info("dead", T0),
            vec![BusyJob {
                process: "dead".into(),
                started_at_ms: T0,
                job: taken,
            }],
        )
        .await
        .unwrap();
    backend
        .heartbeat(info("alive", T0 + ttl), vec![])
        .await
        .unwrap();
    let mut before = raw.keys().await;
    before.sort();
    assert_eq!(
        before,
        [
            "alive",
            "dead",
            "dead:work",
            "dead:workers",
            "inprogress",
            "inprogress:dead",
            "processes",
            "queues"
        ]
    );
    let now = T0 + ttl + 1;
    let recovered = backend.recover_expired(now, ttl).await.unwrap();
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].jid, job.jid);
    assert_eq!(
        raw.keys().await,
        ["alive", "processes", "queue:default", "queues"],
        "the dead process, its busy jobs and its in-progress list are gone"
    );
    let members: BTreeSet<String> = raw.conn.smembers(raw.key("processes")).await.unwrap();
    assert_eq!(members, set(&["alive"]));
    let queued: Vec<String> = raw
        .conn
        .lrange(raw.key("queue:default"), 0, -1)
        .await
        .unwrap();
    let queued: Value = serde_json::from_str(&queued[0]).unwrap();
    assert_eq!(queued["jid"], json!(job.jid));
    assert_eq!(queued["enqueued_at"], json!(now as f64 / 1000.0));
}

async fn a_payload_the_lab_cannot_read_goes_to_the_dead_set(b: Backends) {
    let (backend, mut raw) = b.fresh_redis().await;
    let unreadable = [
        r#"{"class":"X","args":[],"jid":"f00","queue":"default","created_at":1767225600.5,"enqueued_at":1767225601.25,"retry_count":"many"}"#,
        "not json at all",
    ];
    for payload in unreadable {
        raw.push_as_another_client("default", payload).await;
    }
    for mode in [FetchMode::Reliable, FetchMode::Basic] {
        let err = look(&*backend, "default", mode, "w")
            .await
            .expect_err("not a job");
        let message = err.to_string();
        assert!(
            message.contains("cannot read as a job")
                && message.contains("moved it to the dead set"),
            "{message}"
        );
    }
    let dead: Vec<(String, f64)> = raw
        .conn
        .zrange_withscores(raw.key("dead"), 0, -1)
        .await
        .unwrap();
    // Scored by the payload's own latest time (fetch is given none).
    assert_eq!(
        dead,
        [
            ("not json at all".to_string(), 0.0),
            (unreadable[0].to_string(), 1_767_225_601.25)
        ]
    );
    assert_eq!(raw.keys().await, ["dead", "queues"], "nothing held");
}
