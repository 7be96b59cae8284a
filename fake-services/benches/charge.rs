//! Throughput and latency of `POST /payments/charge` over loopback.
//!
//! ```text
//! cargo bench -p fake-services --bench charge -- [--seconds 10] [--connections 64] [--url http://127.0.0.1:3001]
//! ```
//!
//! Without `--url` it serves the fake services in this process (two worker
//! threads) and drives them from a client thread of its own; with `--url` it
//! loads a server started elsewhere (`lab fakes`). Each connection is HTTP/1.1
//! keep-alive and sends one request at a time, as a job worker would; every
//! request is a new charge (a distinct order), so the ledger grows as it would
//! under load. The run stops by itself after `--seconds`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

struct Options {
    seconds: u64,
    connections: usize,
    url: Option<String>,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        seconds: 10,
        connections: 64,
        url: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--seconds" => {
                options.seconds = value("--seconds")?
                    .parse()
                    .map_err(|e| format!("--seconds: {e}"))?
            }
            "--connections" => {
                options.connections = value("--connections")?
                    .parse()
                    .map_err(|e| format!("--connections: {e}"))?
            }
            "--url" => options.url = Some(value("--url")?),
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if options.seconds == 0 || options.seconds > 600 || options.connections == 0 {
        return Err("--seconds must be 1..=600 and --connections at least 1".into());
    }
    Ok(options)
}

fn main() {
    let options = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let (addr, server) = match &options.url {
        Some(url) => {
            let host = url.trim_start_matches("http://").trim_end_matches('/');
            let addr: SocketAddr = host.parse().unwrap_or_else(|e| {
                eprintln!("error: --url must be http://IP:PORT ({e})");
                std::process::exit(2)
            });
            (addr, None)
        }
        None => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("server runtime");
            let server = runtime.block_on(async {
                let app = fake_services::http::router(
                    fake_services::FakeServices::new(),
                    Default::default(),
                );
                fake_services::serve::RunningServer::start("127.0.0.1:0".parse().unwrap(), app)
                    .await
                    .expect("bind")
            });
            (server.addr, Some((runtime, server)))
        }
    };
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    println!(
        "POST /payments/charge on {addr}: {} connections, {} s{}",
        options.connections,
        options.seconds,
        if server.is_some() {
            " (server in process)"
        } else {
            ""
        }
    );
    let (latencies, errors, elapsed) = client.block_on(load(addr, &options));
    report(latencies, errors, elapsed);
    if let Some((runtime, server)) = server {
        runtime.block_on(async {
            let _ = server.shutdown().await;
        });
    }
}

async fn load(addr: SocketAddr, options: &Options) -> (Vec<u32>, u64, Duration) {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(options.seconds);
    let mut tasks = Vec::new();
    for connection in 0..options.connections {
        tasks.push(tokio::spawn(one_connection(addr, connection, deadline)));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (mut l, e) = task.await.expect("connection task");
        latencies.append(&mut l);
        errors += e;
    }
    (latencies, errors, started.elapsed())
}

/// Sends charges one after the other on one keep-alive connection until the
/// deadline; returns latencies in microseconds and the error count.
async fn one_connection(addr: SocketAddr, connection: usize, deadline: Instant) -> (Vec<u32>, u64) {
    let mut latencies = Vec::with_capacity(64 * 1024);
    let mut errors = 0;
    let mut order = connection as u64 * 1_000_000_000;
    while Instant::now() < deadline {
        let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
            errors += 1;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Ok((mut sender, conn)) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
        else {
            errors += 1;
            continue;
        };
        tokio::spawn(conn);
        while Instant::now() < deadline {
            order += 1;
            let body = format!(
                r#"{{"customer_id":"cus_{connection}","payment_method_id":"pm_1","amount_cents":12300,"metadata":{{"order_id":{order}}}}}"#
            );
            let request = hyper::Request::post("/payments/charge")
                .header("host", "127.0.0.1")
                .header("content-type", "application/json")
                .header("accept", "application/json")
                .body(Full::new(Bytes::from(body)))
                .expect("request");
            let sent = Instant::now();
            match sender.send_request(request).await {
                Ok(response) => {
                    let ok = response.status() == 201;
                    let _ = response.into_body().collect().await;
                    if ok {
                        latencies.push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    } else {
                        errors += 1;
                    }
                }
                Err(_) => {
                    errors += 1;
                    break;
                }
            }
        }
    }
    (latencies, errors)
}

fn report(mut latencies: Vec<u32>, errors: u64, elapsed: Duration) {
    latencies.sort_unstable();
    let n = latencies.len();
    if n == 0 {
        println!("no successful requests ({errors} errors)");
        std::process::exit(1);
    }
    let pct = |p: f64| latencies[((n as f64 * p) as usize).min(n - 1)] as f64 / 1000.0;
    println!(
        "{n} charges in {:.2} s: {:.0} charges/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {errors} errors",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        *latencies.last().unwrap() as f64 / 1000.0,
    );
}
