//! Throughput and latency of `POST /payments/charge` over loopback, for a
//! few seconds or as a soak of many minutes.
//!
//! ```text
//! cargo bench -p fake-services --bench charge -- [--seconds 10] [--connections 64]
//!     [--url http://127.0.0.1:3001 [--pid PID] | --spawn] [--report-every 60]
//! cargo bench -p fake-services --bench charge -- --spawn --seconds 600 --report-every 60
//! ```
//!
//! Where the server is: by default the fake services in this process (two
//! worker threads) driven from a client thread of its own; with `--url` a
//! server started elsewhere (`lab fakes`); with `--spawn` this package's
//! `fake-services` binary, started on a free port and stopped at the end,
//! whose resident memory the reports then show (for a server of your own,
//! `--pid` names its process). Each connection is
//! HTTP/1.1 keep-alive and sends one request at a time, as a job worker
//! would; every request is a new charge for a new order with the body the
//! book's app sends (`metadata.idempotency_key` included), so the ledger
//! grows as it would under load. With `--report-every S` it prints, every S
//! seconds, that window's charges/s, p99 and errors, and the server's
//! resident memory and bytes per record. The run stops by itself after
//! `--seconds` (at most an hour).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fake_services_test_support::process::{resident, SpawnedFakes};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

struct Options {
    seconds: u64,
    connections: usize,
    url: Option<String>,
    spawn: bool,
    pid: Option<u32>,
    report_every: Option<u64>,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        seconds: 10,
        connections: 64,
        url: None,
        spawn: false,
        pid: None,
        report_every: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        let number = |name: &str, text: String| -> Result<u64, String> {
            text.parse().map_err(|e| format!("{name}: `{text}`: {e}"))
        };
        match arg.as_str() {
            "--seconds" => options.seconds = number("--seconds", value("--seconds")?)?,
            "--connections" => {
                options.connections = number("--connections", value("--connections")?)? as usize
            }
            "--url" => options.url = Some(value("--url")?),
            "--spawn" => options.spawn = true,
            "--pid" => options.pid = Some(number("--pid", value("--pid")?)? as u32),
            "--report-every" => {
                options.report_every = Some(number("--report-every", value("--report-every")?)?)
            }
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if options.seconds == 0 || options.seconds > 3600 || options.connections == 0 {
        return Err("--seconds must be 1..=3600 and --connections at least 1".into());
    }
    if options.report_every == Some(0) {
        return Err("--report-every must be at least 1 second".into());
    }
    if options.spawn && options.url.is_some() {
        return Err("--spawn starts its own server: give it or --url, not both".into());
    }
    if options.pid.is_some() && options.url.is_none() {
        return Err("--pid names the process of the server at --url".into());
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
    let mut spawned = None;
    let mut in_process = None;
    let addr = match &options.url {
        Some(url) => {
            let host = url.trim_start_matches("http://").trim_end_matches('/');
            host.parse().unwrap_or_else(|e| {
                eprintln!("error: --url must be http://IP:PORT ({e})");
                std::process::exit(2)
            })
        }
        None if options.spawn => {
            match SpawnedFakes::start(env!("CARGO_BIN_EXE_fake-services").as_ref()) {
                Ok(server) => {
                    let addr = server.addr;
                    spawned = Some(server);
                    addr
                }
                Err(why) => {
                    eprintln!("error: {why}");
                    std::process::exit(1)
                }
            }
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
            let addr = server.addr;
            in_process = Some((runtime, server));
            addr
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
        if in_process.is_some() {
            " (server in process)"
        } else if spawned.is_some() {
            " (fake-services started by the bench)"
        } else {
            ""
        }
    );
    let pid = spawned.as_ref().map(|s| s.child.id()).or(options.pid);
    let fresh = pid.and_then(resident);
    let windows = Arc::new(Mutex::new(Vec::new()));
    let (latencies, errors, elapsed, windowed) = client.block_on(async {
        let reporter = options.report_every.map(|every| {
            tokio::spawn(report_windows(
                Arc::clone(&windows),
                every,
                options.seconds,
                pid,
                fresh,
            ))
        });
        let (latencies, errors, elapsed) = load(addr, &options, &windows).await;
        let windowed = match reporter {
            Some(reporter) => reporter.await.ok(),
            None => None,
        };
        (latencies, errors, elapsed, windowed)
    });
    match windowed {
        // Each window's part went to its report.
        Some((charges, errors)) => {
            println!(
                "{charges} charges in {:.0} s: {:.0} charges/s; {errors} errors",
                elapsed.as_secs_f64(),
                charges as f64 / elapsed.as_secs_f64()
            );
            if errors > 0 {
                std::process::exit(1);
            }
        }
        None => report(latencies, errors, elapsed),
    }
    if let (Some(pid), Some(fresh)) = (pid, fresh) {
        if let Some(now) = resident(pid) {
            println!(
                "server resident: {:.1} MB at the start, {:.1} MB now",
                fresh as f64 / 1e6,
                now as f64 / 1e6
            );
        }
    }
    drop(spawned);
    if let Some((runtime, server)) = in_process {
        runtime.block_on(async {
            let _ = server.shutdown().await;
        });
    }
}

/// What the connections did in one reporting window.
#[derive(Default)]
struct Window {
    latencies: Vec<u32>,
    errors: u64,
}

/// Windows by index; each connection adds its share when it crosses into
/// the next.
type Windows = Arc<Mutex<Vec<Window>>>;

fn add_to_window(windows: &Windows, index: usize, latencies: &mut Vec<u32>, errors: &mut u64) {
    let mut windows = windows.lock().unwrap_or_else(|p| p.into_inner());
    if windows.len() <= index {
        windows.resize_with(index + 1, Window::default);
    }
    windows[index].latencies.append(latencies);
    windows[index].errors += std::mem::take(errors);
}

/// Prints each window once it is over (and the connections had a moment to
/// hand in their part), with the spawned server's memory.
/// Returns the charges and errors of every window.
async fn report_windows(
    windows: Windows,
    every: u64,
    seconds: u64,
    pid: Option<u32>,
    fresh: Option<u64>,
) -> (u64, u64) {
    let started = Instant::now();
    let mut total = 0u64;
    let mut total_errors = 0u64;
    let count = seconds.div_ceil(every);
    for index in 0..count as usize {
        let end = Duration::from_secs(((index as u64 + 1) * every).min(seconds));
        // The connections hand in at their first answer after the end.
        tokio::time::sleep_until((started + end + Duration::from_millis(250)).into()).await;
        let window = {
            let mut windows = windows.lock().unwrap_or_else(|p| p.into_inner());
            windows
                .get_mut(index)
                .map(std::mem::take)
                .unwrap_or_default()
        };
        let mut latencies = window.latencies;
        latencies.sort_unstable();
        total += latencies.len() as u64;
        total_errors += window.errors;
        let span = end.as_secs_f64() - (index as u64 * every) as f64;
        let p99 = latencies
            .get(((latencies.len() as f64 * 0.99) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |&us| us as f64 / 1000.0);
        let memory = pid
            .and_then(resident)
            .map(|rss| {
                let per_record = fresh.map_or(String::new(), |f| {
                    format!(
                        ", {:.0} bytes a record",
                        rss.saturating_sub(f) as f64 / total.max(1) as f64
                    )
                });
                format!("; server {:.0} MB resident{per_record}", rss as f64 / 1e6)
            })
            .unwrap_or_default();
        println!(
            "  {:>5} s: {:>7.0} charges/s, p99 {:.2} ms, {} errors; {total} records{memory}",
            end.as_secs(),
            latencies.len() as f64 / span,
            p99,
            window.errors,
        );
    }
    (total, total_errors)
}

async fn load(addr: SocketAddr, options: &Options, windows: &Windows) -> (Vec<u32>, u64, Duration) {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(options.seconds);
    let every = options.report_every.map(Duration::from_secs);
    let mut tasks = Vec::new();
    for connection in 0..options.connections {
        tasks.push(tokio::spawn(one_connection(
            addr,
            connection,
            started,
            deadline,
            every,
            Arc::clone(windows),
        )));
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
/// deadline; returns latencies in microseconds and the error count, and
/// with `every`, hands in each window's part to `windows` as it goes.
async fn one_connection(
    addr: SocketAddr,
    connection: usize,
    started: Instant,
    deadline: Instant,
    every: Option<Duration>,
    windows: Windows,
) -> (Vec<u32>, u64) {
    let mut latencies = Vec::with_capacity(64 * 1024);
    let mut errors = 0;
    // With windows, this window's part (the totals are then not kept).
    let mut window = 0usize;
    let window_of = |at: Instant| {
        every.map_or(0, |e| {
            (at - started).as_nanos() as usize / e.as_nanos() as usize
        })
    };
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
                r#"{{"customer_id":"cus_{connection}","payment_method_id":"pm_card_visa","amount_cents":12300,"metadata":{{"order_id":{order},"idempotency_key":"charge-order-{order}"}}}}"#
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
            if every.is_some() {
                let now = window_of(Instant::now());
                if now != window {
                    add_to_window(&windows, window, &mut latencies, &mut errors);
                    window = now;
                }
            }
        }
    }
    if every.is_some() {
        add_to_window(&windows, window, &mut latencies, &mut errors);
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
