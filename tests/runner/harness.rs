//! The harness: fresh backends of each kind for a case, the Redis test
//! server (skipped with a note when it is down, unless `CI` is set), a plain
//! connection to read the Redis backend's keys, and the macros that make a
//! case one test per backend.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::AsyncCommands;
use idemlab::runner::{Backend, MemoryBackend, RedisBackend};

const DEFAULT_REDIS: &str = "redis://127.0.0.1:6379";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Memory,
    Redis,
}

/// What a case gets: fresh, empty backends of one kind, as many as it wants.
#[derive(Clone)]
pub struct Backends {
    pub kind: Kind,
    redis_url: String,
    /// The namespaces handed out, to delete afterwards.
    namespaces: Arc<Mutex<Vec<String>>>,
}

impl Backends {
    pub async fn fresh(&self) -> Arc<dyn Backend> {
        match self.kind {
            Kind::Memory => Arc::new(MemoryBackend::new()),
            Kind::Redis => self.fresh_redis().await.0,
        }
    }

    /// A Redis backend in a new namespace, and a plain connection to look
    /// at its keys with.
    pub async fn fresh_redis(&self) -> (Arc<RedisBackend>, Raw) {
        assert_eq!(self.kind, Kind::Redis);
        let namespace = format!("idemlab-test-{:016x}", rand::random::<u64>());
        self.namespaces.lock().unwrap().push(namespace.clone());
        let backend = RedisBackend::connect_with_namespace(&self.redis_url, &namespace)
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.redis_url));
        assert_eq!(backend.key_prefix(), format!("{namespace}:"));
        let raw = Raw {
            conn: raw_connection(&self.redis_url).await.unwrap(),
            prefix: format!("{namespace}:"),
        };
        (Arc::new(backend), raw)
    }

    /// Deletes every key of every namespace handed out.
    pub async fn clean_up(&self) {
        if self.kind != Kind::Redis {
            return;
        }
        let namespaces = self.namespaces.lock().unwrap().clone();
        let Ok(mut conn) = raw_connection(&self.redis_url).await else {
            eprintln!("note: could not connect to delete the test keys");
            return;
        };
        for namespace in namespaces {
            let keys = scan(&mut conn, &format!("{namespace}:*")).await;
            if !keys.is_empty() {
                let _: Result<(), _> = conn.del(keys).await;
            }
        }
    }
}

/// A plain connection to the test server, and the namespace's prefix.
pub struct Raw {
    pub conn: MultiplexedConnection,
    prefix: String,
}

impl Raw {
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Pushes `payload` to `queue` as another client would (Sidekiq's
    /// `SADD queues` + `LPUSH`): not through the backend, so nobody is woken.
    pub async fn push_as_another_client(&mut self, queue: &str, payload: &str) {
        let _: () = ::redis::pipe()
            .sadd(self.key("queues"), queue)
            .lpush(self.key(&format!("queue:{queue}")), payload)
            .query_async(&mut self.conn)
            .await
            .unwrap();
    }

    /// Every key of the namespace, prefix stripped, sorted.
    pub async fn keys(&mut self) -> Vec<String> {
        let pattern = format!("{}*", self.prefix);
        let mut keys: Vec<String> = scan(&mut self.conn, &pattern)
            .await
            .into_iter()
            .map(|k| k[self.prefix.len()..].to_string())
            .collect();
        keys.sort();
        keys
    }
}

pub async fn raw_connection(url: &str) -> ::redis::RedisResult<MultiplexedConnection> {
    let client = ::redis::Client::open(url)?;
    client.get_multiplexed_async_connection().await
}

pub async fn scan(conn: &mut MultiplexedConnection, pattern: &str) -> Vec<String> {
    let mut cursor = 0u64;
    let mut keys = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = ::redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .expect("SCAN");
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

/// The test server's URL if it answers; otherwise a skip note (or, in CI, a
/// failure).
pub async fn redis_url() -> Option<String> {
    let url = std::env::var("IDEMLAB_TEST_REDIS").unwrap_or_else(|_| DEFAULT_REDIS.to_string());
    let ping = async {
        let mut conn = raw_connection(&url).await?;
        ::redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(Duration::from_secs(5), ping).await {
        Ok(Ok(_)) => Some(url),
        Ok(Err(e)) => unreachable_redis(&url, &e.to_string()),
        Err(_) => unreachable_redis(&url, "no answer within 5 s"),
    }
}

pub fn unreachable_redis(url: &str, error: &str) -> Option<String> {
    if std::env::var_os("CI").is_some() {
        panic!(
            "Redis is needed for the runner tests (CI is set) but is not reachable at {url}: \
             {error}\nStart it with `redis-server --daemonize yes --bind 127.0.0.1 --port 6379 \
             --save \"\" --appendonly no`, or point IDEMLAB_TEST_REDIS at a server the tests may \
             write to."
        );
    }
    // Straight to the process's stderr: the test harness captures `eprintln!`
    // of passing tests, and a skip should be seen.
    let line = format!("skipped: Redis not reachable at {url} (set IDEMLAB_TEST_REDIS): {error}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    None
}

/// Runs `case` on `kind`, then deletes its Redis keys (even if it panicked),
/// then re-raises its panic.
pub async fn run<F, Fut>(kind: Kind, case: F)
where
    F: FnOnce(Backends) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let redis_url = match kind {
        Kind::Memory => String::new(),
        Kind::Redis => match redis_url().await {
            Some(url) => url,
            None => return,
        },
    };
    let backends = Backends {
        kind,
        redis_url,
        namespaces: Arc::default(),
    };
    let result = tokio::spawn(case(backends.clone())).await;
    backends.clean_up().await;
    if let Err(e) = result {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("test case did not finish: {e}"),
        }
    }
}

/// One `#[tokio::test]` per case and backend, in the module that calls it:
/// `memory::<case>` and `redis::<case>`, so the two backends cannot drift.
macro_rules! on_each_backend {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    $crate::harness::run($crate::harness::Kind::Memory, super::$case).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    $crate::harness::run($crate::harness::Kind::Redis, super::$case).await;
                }
            )*
        }
    };
}
pub(crate) use on_each_backend;

/// Redis-only tests (a plain connection reads the keys, or another client
/// pushes): `redis_only::<case>`.
macro_rules! on_redis {
    ($($case:ident),* $(,)?) => {
        mod redis_only {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    $crate::harness::run($crate::harness::Kind::Redis, super::$case).await;
                }
            )*
        }
    };
}
pub(crate) use on_redis;
