//! The Redis proxy of `lab check --target` (`target::redis_proxy`) between
//! the `redis` crate and a private `redis-server`: everything passes
//! through (RESP2 and RESP3, pipelines, transactions, inline commands),
//! `duplicate` doubles exactly the queue pushes, `down` closes and refuses
//! and then serves again, and a malformed frame closes only its own
//! connection. Each test has its own Redis, so none shares 6379.
//!
//! Needs `redis-server` on the PATH (skipped without it, failed under CI).

use std::net::SocketAddr;
use std::time::Duration;

use idemlab::target::redis_proxy::{ProxyEvent, ProxyOptions, RedisProxy};
use idemlab::target::redis_server::PrivateRedis;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedReceiver;

/// Far longer than anything here takes, so that only a hang reaches it.
const WITHIN: Duration = Duration::from_secs(30);

/// A private Redis and a proxy in front of it.
struct Setup {
    proxy: RedisProxy,
    redis: PrivateRedis,
    _dir: TempDir,
}

/// `None` (with the reason said) when there is no `redis-server`.
async fn setup(queue_prefix: &str) -> Option<Setup> {
    let found = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        idemlab_test_support::servers::unavailable(
            "redis-server on the PATH (apt-get install redis-server)",
        );
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = PrivateRedis::start(dir.path()).await.unwrap();
    let upstream: SocketAddr = ([127, 0, 0, 1], redis.port()).into();
    let proxy = RedisProxy::start(
        upstream,
        ProxyOptions {
            queue_prefix: queue_prefix.to_string(),
        },
    )
    .await
    .unwrap();
    Some(Setup {
        proxy,
        redis,
        _dir: dir,
    })
}

/// A connection to `url` with timeouts a loaded machine cannot reach (the
/// crate's default answer timeout is 500 ms).
async fn connect(url: &str) -> redis::RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(WITHIN))
        .set_response_timeout(Some(WITHIN));
    redis::Client::open(url)?
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

impl Setup {
    async fn through_proxy(&self) -> MultiplexedConnection {
        connect(&self.proxy.url()).await.unwrap()
    }

    /// A connection straight to Redis, to see what really landed.
    async fn direct(&self) -> MultiplexedConnection {
        connect(&self.redis.url()).await.unwrap()
    }

    async fn llen(&self, key: &str) -> i64 {
        redis::cmd("LLEN")
            .arg(key)
            .query_async(&mut self.direct().await)
            .await
            .unwrap()
    }
}

/// A Sidekiq payload.
fn job(jid: &str) -> String {
    format!(r#"{{"class":"ChargeJob","args":[1],"jid":"{jid}","queue":"default","retry":true}}"#)
}

/// Waits for the first event `wanted` picks, the others skipped.
async fn wait_for_event(
    events: &mut UnboundedReceiver<ProxyEvent>,
    what: &str,
    wanted: impl Fn(&ProxyEvent) -> bool,
) -> ProxyEvent {
    let found = tokio::time::timeout(WITHIN, async {
        while let Some(event) = events.recv().await {
            if wanted(&event) {
                return Some(event);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(event)) => event,
        Ok(None) => panic!("the proxy's events ended before {what}"),
        Err(_) => panic!("no {what} within {WITHIN:?}"),
    }
}

/// Reads from `stream` until it has `n` bytes or it is closed.
async fn read_at_least(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(WITHIN, async {
        let mut buf = [0; 1024];
        while got.len() < n {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(read) => got.extend_from_slice(&buf[..read]),
            }
        }
    })
    .await
    .expect("an answer in time");
    got
}

/// Whether `stream` is closed by the other side: a read gets 0 bytes (or
/// a reset) before the deadline.
async fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut buf = [0; 64];
    match tokio::time::timeout(WITHIN, stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) => false,
        Err(_) => panic!("the connection was not closed within {WITHIN:?}"),
    }
}

#[tokio::test]
async fn get_set_and_incr_go_through_unchanged() {
    let Some(setup) = setup("queue:").await else {
        return;
    };
    let mut con = setup.through_proxy().await;
    // The crate says who it is when it connects; only what follows counts.
    let before = setup.proxy.stats().commands_forwarded;
    let () = redis::cmd("SET")
        .arg("greeting")
        .arg("hello")
        .query_async(&mut con)
        .await
        .unwrap();
    let got: String = redis::cmd("GET")
        .arg("greeting")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(got, "hello");
    for expected in 1..=3 {
        let n: i64 = redis::cmd("INCR")
            .arg("counter")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(n, expected);
    }
    // A value larger than any one read, so its frame is split.
    let big: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let () = redis::cmd("SET")
        .arg("big")
        .arg(&big)
        .query_async(&mut con)
        .await
        .unwrap();
    let back: Vec<u8> = redis::cmd("GET")
        .arg("big")
        .query_async(&mut setup.direct().await)
        .await
        .unwrap();
    assert!(back == big, "the 3 MiB value came back changed");
    let stats = setup.proxy.stats();
    assert_eq!(stats.commands_forwarded - before, 6, "{stats:?}");
    assert_eq!(stats.connections_accepted, 1);
    assert_eq!(stats.jobs_duplicated, 0);
}

#[tokio::test]
async fn a_pipeline_of_a_thousand_commands_keeps_its_order() {
    let Some(setup) = setup("queue:").await else {
        return;
    };
    let mut con = setup.through_proxy().await;
    let mut pipe = redis::pipe();
    for i in 0..1000 {
        if i % 2 == 0 {
            pipe.cmd("RPUSH").arg("numbers").arg(i);
        } else {
            pipe.cmd("INCR").arg("n");
        }
    }
    let replies: Vec<i64> = pipe.query_async(&mut con).await.unwrap();
    let expected: Vec<i64> = (0..1000).map(|i| i / 2 + 1).collect();
    assert_eq!(replies, expected);
    let numbers: Vec<i64> = redis::cmd("LRANGE")
        .arg("numbers")
        .arg(0)
        .arg(-1)
        .query_async(&mut setup.direct().await)
        .await
        .unwrap();
    assert_eq!(numbers, (0..1000).step_by(2).collect::<Vec<i64>>());
}

#[tokio::test]
async fn multi_exec_goes_through() {
    let Some(setup) = setup("queue:").await else {
        return;
    };
    let mut con = setup.through_proxy().await;
    let (a, b): (i64, i64) = redis::pipe()
        .atomic()
        .cmd("INCRBY")
        .arg("x")
        .arg(5)
        .cmd("INCRBY")
        .arg("x")
        .arg(7)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!((a, b), (5, 12));
}

#[tokio::test]
async fn resp3_hello_and_map_replies_are_copied_as_they_are() {
    let Some(setup) = setup("queue:").await else {
        return;
    };
    let url = format!("{}?protocol=resp3", setup.proxy.url());
    let mut con = connect(&url).await.unwrap();
    let hello: Value = redis::cmd("HELLO")
        .arg(3)
        .query_async(&mut con)
        .await
        .unwrap();
    let Value::Map(fields) = hello else {
        panic!("HELLO 3 answered {hello:?}, not a map");
    };
    assert!(
        fields
            .iter()
            .any(|(k, v)| *k == Value::BulkString(b"proto".to_vec()) && *v == Value::Int(3)),
        "{fields:?}"
    );
    let _: i64 = redis::cmd("HSET")
        .arg("order:1")
        .arg("status")
        .arg("paid")
        .arg("total")
        .arg("42")
        .query_async(&mut con)
        .await
        .unwrap();
    let all: Value = redis::cmd("HGETALL")
        .arg("order:1")
        .query_async(&mut con)
        .await
        .unwrap();
    let Value::Map(pairs) = all else {
        panic!("HGETALL over RESP3 answered {all:?}, not a map");
    };
    assert_eq!(pairs.len(), 2, "{pairs:?}");
}

#[tokio::test]
async fn duplicate_doubles_queue_pushes_and_nothing_else() {
    let Some(setup) = setup("queue:").await else {
        return;
    };
    let mut events = setup.proxy.events();
    let mut con = setup.through_proxy().await;
    setup.proxy.set_duplicate(true);

    // A plain LPUSH of two jobs: one reply, four entries.
    let n: i64 = redis::cmd("LPUSH")
        .arg("queue:default")
        .arg(job("a1"))
        .arg(job("b2"))
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(n, 4, "the app's one reply counts the copies");
    assert_eq!(setup.llen("queue:default").await, 4);
    let event = wait_for_event(&mut events, "a Duplicated event", |e| {
        matches!(e, ProxyEvent::Duplicated { .. })
    })
    .await;
    let class = Some("ChargeJob".to_string());
    assert_eq!(
        event,
        ProxyEvent::Duplicated {
            key: "queue:default".to_string(),
            jobs: vec![
                (Some("a1".to_string()), class.clone()),
                (Some("b2".to_string()), class.clone())
            ],
        }
    );
    let entries: Vec<String> = redis::cmd("LRANGE")
        .arg("queue:default")
        .arg(0)
        .arg(-1)
        .query_async(&mut setup.direct().await)
        .await
        .unwrap();
    assert_eq!(entries, [job("b2"), job("b2"), job("a1"), job("a1")]);

    // As Sidekiq's client pushes: MULTI, SADD queues, LPUSH, EXEC.
    let (added, length): (i64, i64) = redis::pipe()
        .atomic()
        .cmd("SADD")
        .arg("queues")
        .arg("mailers")
        .cmd("LPUSH")
        .arg("queue:mailers")
        .arg(job("c3"))
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!((added, length), (1, 2));
    assert_eq!(setup.llen("queue:mailers").await, 2);
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg("queues")
        .query_async(&mut setup.direct().await)
        .await
        .unwrap();
    assert_eq!(members, ["mailers"], "SADD is not doubled");

    // RPUSH too; a non-JSON payload is still doubled, named by nothing.
    let n: i64 = redis::cmd("RPUSH")
        .arg("queue:low")
        .arg("not json")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(n, 2);
    let event = wait_for_event(
        &mut events,
        "the RPUSH's event",
        |e| matches!(e, ProxyEvent::Duplicated { key, .. } if key == "queue:low"),
    )
    .await;
    assert_eq!(
        event,
        ProxyEvent::Duplicated {
            key: "queue:low".to_string(),
            jobs: vec![(None, None)]
        }
    );

    // Other keys are not queues.
    let _: i64 = redis::cmd("LPUSH")
        .arg("orders:1")
        .arg(job("d4"))
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(setup.llen("orders:1").await, 1);
    assert_eq!(setup.proxy.stats().jobs_duplicated, 4);

    // Off again: single.
    setup.proxy.set_duplicate(false);
    let n: i64 = redis::cmd("LPUSH")
        .arg("queue:default")
        .arg(job("e5"))
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(n, 5);
    assert_eq!(setup.proxy.stats().jobs_duplicated, 4);
}

#[tokio::test]
async fn with_a_namespace_only_its_queues_are_doubled() {
    let Some(setup) = setup("ns:queue:").await else {
        return;
    };
    setup.proxy.set_duplicate(true);
    let mut con = setup.through_proxy().await;
    for key in ["ns:queue:x", "queue:x", "other:queue:x"] {
        let _: i64 = redis::cmd("LPUSH")
            .arg(key)
            .arg(job("j1"))
            .query_async(&mut con)
            .await
            .unwrap();
    }
    assert_eq!(setup.llen("ns:queue:x").await, 2);
    assert_eq!(setup.llen("queue:x").await, 1);
    assert_eq!(setup.llen("other:queue:x").await, 1);
}

#[tokio::test]
async fn down_closes_connections_refuses_new_ones_then_serves_again() {
    let Some(setup) = setup("queue:").await else {
        return;
    };
    let mut events = setup.proxy.events();
    let mut con = setup.through_proxy().await;
    let () = redis::cmd("SET")
        .arg("kept")
        .arg("yes")
        .query_async(&mut con)
        .await
        .unwrap();
    let mut raw = TcpStream::connect(setup.proxy.addr()).await.unwrap();
    // The raw client is served (so counted open) once it has an answer.
    raw.write_all(b"PING\r\n").await.unwrap();
    assert_eq!(read_at_least(&mut raw, 7).await, b"+PONG\r\n");

    // Long enough for the checks below on a loaded machine.
    setup.proxy.down_for(Duration::from_secs(3)).await;
    assert!(setup.proxy.is_down());
    let started = wait_for_event(&mut events, "DownStarted", |e| {
        matches!(e, ProxyEvent::DownStarted { .. })
    })
    .await;
    assert_eq!(
        started,
        ProxyEvent::DownStarted {
            closed_connections: 2
        }
    );
    assert!(
        closed_by_peer(&mut raw).await,
        "an open connection is closed"
    );
    let after: redis::RedisResult<String> =
        redis::cmd("GET").arg("kept").query_async(&mut con).await;
    assert!(
        after.is_err(),
        "a command on a closed connection: {after:?}"
    );
    let refused = TcpStream::connect(setup.proxy.addr()).await;
    assert_eq!(
        refused.map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );

    wait_for_event(&mut events, "DownEnded", |e| *e == ProxyEvent::DownEnded).await;
    assert!(!setup.proxy.is_down());
    let mut again = connect(&setup.proxy.url()).await.unwrap();
    let kept: String = redis::cmd("GET")
        .arg("kept")
        .query_async(&mut again)
        .await
        .unwrap();
    assert_eq!(kept, "yes", "Redis itself kept its data");
    let stats = setup.proxy.stats();
    assert_eq!(stats.connections_accepted, 3, "{stats:?}");
    assert_eq!(stats.connections_closed, 2, "{stats:?}");
}

#[tokio::test]
async fn a_malformed_frame_closes_only_its_own_connection() {
    let Some(setup) = setup("queue:").await else {
        return;
    };
    let mut events = setup.proxy.events();
    let mut other = setup.through_proxy().await;
    for (bytes, reason) in [
        (&b"*x\r\n"[..], "invalid array length \"x\""),
        (&b"*1\r\n$-5\r\n"[..], "a negative bulk length (-5)"),
    ] {
        let mut bad = TcpStream::connect(setup.proxy.addr()).await.unwrap();
        let peer = bad.local_addr().unwrap();
        bad.write_all(bytes).await.unwrap();
        assert!(closed_by_peer(&mut bad).await);
        let event = wait_for_event(&mut events, "a Malformed event", |e| {
            matches!(e, ProxyEvent::Malformed { .. })
        })
        .await;
        assert_eq!(
            event,
            ProxyEvent::Malformed {
                peer,
                reason: reason.to_string()
            }
        );
        let pong: String = redis::cmd("PING").query_async(&mut other).await.unwrap();
        assert_eq!(pong, "PONG");
    }
}

#[tokio::test]
async fn inline_commands_and_raw_pipelines_split_anywhere_pass_through() {
    let Some(setup) = setup("queue:").await else {
        return;
    };
    let mut raw = TcpStream::connect(setup.proxy.addr()).await.unwrap();
    raw.write_all(b"PING\r\n").await.unwrap();
    assert_eq!(read_at_least(&mut raw, 7).await, b"+PONG\r\n");
    // Three commands sent in pieces that cut frames in the middle.
    let bytes =
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\nECHO hi\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
    for piece in bytes.chunks(5) {
        raw.write_all(piece).await.unwrap();
        raw.flush().await.unwrap();
    }
    let expected = b"+OK\r\n$2\r\nhi\r\n$2\r\nv1\r\n";
    assert_eq!(read_at_least(&mut raw, expected.len()).await, expected);
}

#[tokio::test]
async fn stopping_closes_the_port_and_every_connection() {
    let Some(setup) = setup("queue:").await else {
        return;
    };
    let addr = setup.proxy.addr();
    let mut raw = TcpStream::connect(addr).await.unwrap();
    raw.write_all(b"PING\r\n").await.unwrap();
    assert_eq!(read_at_least(&mut raw, 7).await, b"+PONG\r\n");
    setup.proxy.stop().await;
    assert!(closed_by_peer(&mut raw).await);
    let refused = TcpStream::connect(addr).await;
    assert_eq!(
        refused.map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );
}
