//! Commands per second through the Redis proxy of `lab check --target`
//! (`target::redis_proxy`) against the same Redis directly, in one run.
//!
//! ```text
//! cargo bench --bench redis_proxy -- [--commands 200000] [--pipeline 100]
//!     [--round-trips 20000] [--connections 8] [--rounds 5]
//! ```
//!
//! It starts its own `redis-server` (on a free port, in a temporary folder,
//! stopped at the end) and a proxy in front of it, and drives both with the
//! `redis` crate the way an app's Redis client does:
//!
//! - **pipelined**: `--commands` commands on one connection, in pipelines of
//!   `--pipeline` (half `SET key value`, half `GET key`), as Sidekiq's
//!   client pushes and its fetch pops in bulk: the proxy's parsing and
//!   copying cost, with the network round trip amortised;
//! - **round trips**: `--round-trips` `PING`s one after another on one
//!   connection, each waiting for its answer: the latency the proxy adds;
//! - **concurrent**: `--connections` connections doing `--round-trips` /
//!   `--connections` `PING`s each at once: many app threads;
//! - **queue pushes**: `LPUSH queue:default` of a Sidekiq-sized job payload,
//!   pipelined, with `duplicate` off and then on (then each push is two, and
//!   the count is the app's pushes).
//!
//! Each workload runs `--rounds` times, direct and proxied alternately so
//! that neither gets a warmer machine, and the best round of each is
//! reported. The proxy, the client and their tokio runtime share this
//! process; `redis-server` is its own.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use idemlab::target::redis_proxy::{ProxyOptions, RedisProxy};
use idemlab::target::redis_server::PrivateRedis;
use redis::aio::MultiplexedConnection;

/// What to run, from the command line.
struct Options {
    commands: usize,
    pipeline: usize,
    round_trips: usize,
    connections: usize,
    rounds: usize,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        commands: 200_000,
        pipeline: 100,
        round_trips: 20_000,
        connections: 8,
        rounds: 5,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> Result<usize, String> {
            let text = args.next().ok_or(format!("{name} needs a value"))?;
            let n: usize = text.parse().map_err(|e| format!("{name}: `{text}`: {e}"))?;
            if n == 0 {
                return Err(format!("{name} must be at least 1"));
            }
            Ok(n)
        };
        match arg.as_str() {
            "--commands" => options.commands = value("--commands")?,
            "--pipeline" => options.pipeline = value("--pipeline")?,
            "--round-trips" => options.round_trips = value("--round-trips")?,
            "--connections" => options.connections = value("--connections")?,
            "--rounds" => options.rounds = value("--rounds")?,
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(options)
}

/// A Sidekiq 6.4 job as its client pushes it (about 230 bytes).
const JOB: &str = r#"{"retry":true,"queue":"default","class":"ChargeJob","args":[{"order_id":12345}],"jid":"b4a577edbccf1d805744efa9","created_at":1764684000.123456,"enqueued_at":1764684000.123789}"#;

/// The workloads, in the order they are reported.
#[derive(Clone, Copy, PartialEq)]
enum Workload {
    Pipelined,
    RoundTrips,
    Concurrent,
    Pushes,
    PushesDuplicated,
}

impl Workload {
    const ALL: [Workload; 5] = [
        Workload::Pipelined,
        Workload::RoundTrips,
        Workload::Concurrent,
        Workload::Pushes,
        Workload::PushesDuplicated,
    ];

    fn describe(self, o: &Options) -> String {
        match self {
            Workload::Pipelined => format!(
                "pipelined SET/GET, {} commands in pipelines of {}",
                o.commands, o.pipeline
            ),
            Workload::RoundTrips => {
                format!("PING round trips, {} on one connection", o.round_trips)
            }
            Workload::Concurrent => format!(
                "PING round trips, {} over {} connections at once",
                o.round_trips, o.connections
            ),
            Workload::Pushes => format!(
                "LPUSH queue:default, {} jobs in pipelines of {}",
                o.commands, o.pipeline
            ),
            Workload::PushesDuplicated => format!(
                "LPUSH queue:default with `duplicate` on (each pushed twice), {} jobs",
                o.commands
            ),
        }
    }

    /// The commands one run of it sends (the app's, before any doubling).
    fn count(self, o: &Options) -> usize {
        match self {
            Workload::Pipelined | Workload::Pushes | Workload::PushesDuplicated => {
                o.commands / o.pipeline * o.pipeline
            }
            Workload::RoundTrips | Workload::Concurrent => {
                o.round_trips / o.connections_for(self) * o.connections_for(self)
            }
        }
    }
}

impl Options {
    fn connections_for(&self, workload: Workload) -> usize {
        if workload == Workload::Concurrent {
            self.connections
        } else {
            1
        }
    }
}

async fn connect(url: &str) -> Result<MultiplexedConnection, String> {
    let client = redis::Client::open(url).map_err(|e| format!("{url}: {e}"))?;
    client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))
}

/// One run of `workload` against `url`: its wall time. `doubled`: the
/// proxy is in the way with `duplicate` on, so each push lands twice.
async fn run(
    workload: Workload,
    url: &str,
    doubled: bool,
    o: &Options,
) -> Result<Duration, String> {
    let connections = o.connections_for(workload);
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        conns.push(connect(url).await?);
    }
    let mut first = conns[0].clone();
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut first)
        .await
        .map_err(|e| format!("FLUSHALL: {e}"))?;
    let started = Instant::now();
    match workload {
        Workload::Pipelined => {
            for batch in 0..o.commands / o.pipeline {
                let mut pipe = redis::pipe();
                for i in 0..o.pipeline {
                    let key = format!("k{}", (batch * o.pipeline + i) / 2);
                    if i % 2 == 0 {
                        pipe.cmd("SET").arg(&key).arg("value-of-some-length");
                    } else {
                        pipe.cmd("GET").arg(&key);
                    }
                }
                let _: Vec<redis::Value> = pipe
                    .query_async(&mut first)
                    .await
                    .map_err(|e| format!("pipeline: {e}"))?;
            }
        }
        Workload::Pushes | Workload::PushesDuplicated => {
            for _ in 0..o.commands / o.pipeline {
                let mut pipe = redis::pipe();
                for _ in 0..o.pipeline {
                    pipe.cmd("LPUSH").arg("queue:default").arg(JOB);
                }
                let _: Vec<redis::Value> = pipe
                    .query_async(&mut first)
                    .await
                    .map_err(|e| format!("LPUSH: {e}"))?;
            }
        }
        Workload::RoundTrips | Workload::Concurrent => {
            let each = o.round_trips / connections;
            let mut tasks = Vec::new();
            for mut conn in conns.drain(..) {
                tasks.push(tokio::spawn(async move {
                    for _ in 0..each {
                        let _: String = redis::cmd("PING")
                            .query_async(&mut conn)
                            .await
                            .map_err(|e| format!("PING: {e}"))?;
                    }
                    Ok::<(), String>(())
                }));
            }
            for task in tasks {
                task.await
                    .map_err(|e| format!("a client task failed: {e}"))??;
            }
        }
    }
    let took = started.elapsed();
    if matches!(workload, Workload::Pushes | Workload::PushesDuplicated) {
        let len: usize = redis::cmd("LLEN")
            .arg("queue:default")
            .query_async(&mut first)
            .await
            .map_err(|e| format!("LLEN: {e}"))?;
        let pushes = workload.count(o);
        let expected = if doubled { 2 * pushes } else { pushes };
        if len != expected {
            return Err(format!(
                "queue:default holds {len} jobs after {pushes} pushes, not {expected}"
            ));
        }
    }
    Ok(took)
}

#[tokio::main]
async fn main() {
    let options = match parse_options() {
        Ok(o) => o,
        Err(why) => {
            eprintln!("redis_proxy bench: {why}");
            std::process::exit(2);
        }
    };
    if let Err(why) = bench(&options).await {
        eprintln!("redis_proxy bench: {why}");
        std::process::exit(1);
    }
}

async fn bench(o: &Options) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("a temporary folder: {e}"))?;
    let mut redis = PrivateRedis::start(dir.path()).await?;
    let upstream: SocketAddr = ([127, 0, 0, 1], redis.port()).into();
    let proxy = RedisProxy::start(
        upstream,
        ProxyOptions {
            queue_prefix: "queue:".into(),
        },
    )
    .await
    .map_err(|e| format!("cannot start the proxy: {e}"))?;
    // A run of `lab check --target` reads the events for its timeline as
    // they come; so does the bench, so that they cost what they cost there.
    let mut events = proxy.events();
    let drained = tokio::spawn(async move {
        let mut seen = 0u64;
        while events.recv().await.is_some() {
            seen += 1;
        }
        seen
    });
    let result = measure(o, &redis.url(), &proxy).await;
    proxy.stop().await;
    redis.stop().await;
    // The stopped proxy drops its sender; the wait is bounded all the same.
    match tokio::time::timeout(Duration::from_secs(10), drained).await {
        Ok(Ok(events)) if result.is_ok() => {
            println!("the timeline would have shown {events} proxy events")
        }
        _ => {}
    }
    result
}

async fn measure(o: &Options, direct: &str, proxy: &RedisProxy) -> Result<(), String> {
    println!(
        "Redis proxy: commands/s direct and through the proxy, best of {} rounds",
        o.rounds
    );
    println!(
        "{:<72} {:>12} {:>12} {:>9}",
        "workload", "direct/s", "proxy/s", "proxy %"
    );
    let proxied = proxy.url();
    for workload in Workload::ALL {
        let mut best = [Duration::MAX; 2];
        for _ in 0..o.rounds {
            for (side, url) in [direct, proxied.as_str()].into_iter().enumerate() {
                let duplicate = workload == Workload::PushesDuplicated;
                proxy.set_duplicate(duplicate);
                let took = run(workload, url, duplicate && side == 1, o).await?;
                best[side] = best[side].min(took);
            }
        }
        proxy.set_duplicate(false);
        let count = workload.count(o) as f64;
        let [direct_rate, proxy_rate] = best.map(|d| count / d.as_secs_f64());
        println!(
            "{:<72} {:>12.0} {:>12.0} {:>8.0}%",
            workload.describe(o),
            direct_rate,
            proxy_rate,
            100.0 * proxy_rate / direct_rate
        );
    }
    let stats = proxy.stats();
    println!(
        "the proxy forwarded {} commands over {} connections and duplicated {} jobs",
        stats.commands_forwarded, stats.connections_accepted, stats.jobs_duplicated
    );
    Ok(())
}
