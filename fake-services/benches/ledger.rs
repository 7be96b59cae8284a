//! The ledgers at load-test size: memory per record, indexed search, page
//! rendering and the memory a reset gives back.
//!
//! ```text
//! cargo bench -p fake-services --bench ledger -- [--records 10000000] [--keep N]
//! ```
//!
//! In this process it makes `--records` charges, as many emails and as
//! many fulfillment requests with the bodies the book's app sends (each for
//! an order of its own, with a `metadata.idempotency_key` on the charge and
//! the request), through [`FakeServices::call`], the path the HTTP routes
//! take. It prints the resident memory (`/proc/self/statm`) each ledger
//! added per record, then serves the services on a free port and times,
//! over HTTP: 1,000 searches by `order_id` and by email and template
//! (random orders), the ledger page and the JSON list at the newest, a
//! middle and the oldest page; then `POST /reset`, and the resident memory
//! after it against a fresh process's. Linux only (it reads `/proc`).

use std::time::{Duration, Instant};

use fake_services::http::{router, HttpOptions};
use fake_services::serve::RunningServer;
use fake_services::{Call, FakeServices, Operation, Service};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

struct Options {
    records: u64,
    keep: Option<usize>,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        records: 10_000_000,
        keep: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            let text = args.next().ok_or(format!("{name} needs a value"))?;
            match text.parse::<u64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("{name}: `{text}` is not a whole number above 0")),
            }
        };
        match arg.as_str() {
            "--records" => options.records = value("--records")?,
            "--keep" => options.keep = Some(value("--keep")? as usize),
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(options)
}

/// Resident memory of this process, in bytes.
fn resident() -> u64 {
    fake_services_test_support::process::resident(std::process::id()).unwrap_or(0)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// The body the book's app sends for `order` at `service`.
fn body(service: Service, order: u64) -> Value {
    match service {
        Service::Payments => json!({
            "customer_id": format!("cus_{}", order % 50_000),
            "payment_method_id": "pm_card_visa",
            "amount_cents": 1_000 + order % 8_000,
            "metadata": {"order_id": order, "idempotency_key": format!("charge-order-{order}")},
        }),
        Service::Email => json!({
            "to": format!("customer{order}@example.com"),
            "template_id": "order-confirmation",
            "template_data": {"order_id": order, "subject": "Your order is confirmed"},
        }),
        Service::Fulfillment => json!({
            "customer_id": format!("cus_{}", order % 50_000),
            "address": format!("{} Main Street, Springfield", order % 10_000),
            "product_id": format!("prod_{}", order % 200),
            "quantity": 1 + order % 3,
            "metadata": {"order_id": order, "idempotency_key": format!("fulfillment-order-{order}")},
        }),
        Service::ErrorCatcher => json!({}),
    }
}

const LEDGERS: [Service; 3] = [Service::Payments, Service::Email, Service::Fulfillment];

fn main() {
    let options = match parse_options() {
        Ok(o) => o,
        Err(why) => {
            eprintln!("error: {why}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(bench(&options));
}

async fn bench(options: &Options) {
    let fakes = FakeServices::new();
    fakes.set_keep(options.keep);
    let fresh = resident();
    println!(
        "fresh process: {:.1} MB resident; {} records per ledger{}",
        mb(fresh),
        options.records,
        options
            .keep
            .map(|k| format!(", --keep {k}"))
            .unwrap_or_default()
    );
    let first_kept = options.records
        - options
            .records
            .min(options.keep.map_or(u64::MAX, |k| k as u64));
    let middle = first_kept + (options.records - first_kept) / 2;
    // The ids of the oldest kept and the middle record, for the cursors.
    let mut marks: Vec<(Service, String, String)> = Vec::new();
    for service in LEDGERS {
        let before = resident();
        let started = Instant::now();
        let (mut oldest_id, mut middle_id) = (String::new(), String::new());
        for order in 0..options.records {
            let reply = fakes
                .call(Call::new(service, Operation::Effect, body(service, order)))
                .await;
            let response = reply.response();
            let status = response.map(|r| r.status);
            assert!(
                matches!(status, Some(201 | 202)),
                "{service} order {order}: {status:?}"
            );
            if order == first_kept || order == middle {
                let answer = response.map(|r| r.json_body()).unwrap_or_default();
                let id = ["charge_id", "email_id", "request_id"]
                    .iter()
                    .find_map(|f| answer[f].as_str())
                    .unwrap_or_default()
                    .to_string();
                if order == first_kept {
                    oldest_id = id.clone();
                }
                if order == middle {
                    middle_id = id;
                }
            }
        }
        marks.push((service, oldest_id, middle_id));
        let took = started.elapsed();
        let added = resident().saturating_sub(before);
        let (kept, _) = fakes.ledger_size(service);
        println!(
            "{:<12} {} records in {:.1} s ({:.0}/s): {:.0} MB more resident, {:.0} bytes a record",
            service.name(),
            options.records,
            took.as_secs_f64(),
            options.records as f64 / took.as_secs_f64(),
            mb(added),
            added as f64 / kept.max(1) as f64,
        );
    }
    let loaded = resident();
    println!(
        "all three ledgers: {:.0} MB resident, {:.0} bytes a record over the fresh process",
        mb(loaded),
        (loaded - fresh) as f64 / (3 * (options.records - first_kept)) as f64
    );

    let server = RunningServer::start(
        "127.0.0.1:0".parse().unwrap(),
        router(fakes.clone(), HttpOptions::default()),
    )
    .await
    .expect("bind a free port");
    let base = server.url();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut searches: Vec<(&str, Vec<String>)> = Vec::new();
    for (what, make) in [
        (
            "charges by order_id",
            (|o: u64| format!("/payments/charges?order_id={o}")) as fn(u64) -> String,
        ),
        ("fulfillment requests by order_id", |o| {
            format!("/fulfillment/requests?order_id={o}")
        }),
        ("emails by email and template_id", |o| {
            format!("/email/emails?email=customer{o}@example.com&template_id=order-confirmation")
        }),
    ] {
        let paths = (0..1_000)
            .map(|_| make(rng.random_range(first_kept..options.records)))
            .collect();
        searches.push((what, paths));
    }
    // Connections opened and the server warm before anything is timed.
    for _ in 0..50 {
        get(&client, &format!("{base}/payments/status")).await;
    }
    println!("over HTTP, one request at a time (median / p99 / slowest):");
    for (what, paths) in &searches {
        let mut times = Vec::new();
        for path in paths {
            let (took, body) = get(&client, &format!("{base}{path}")).await;
            assert_eq!(
                body.matches("\"id\"").count(),
                1,
                "{path}: one record per order: {body}"
            );
            times.push(took);
        }
        report(what, times);
    }
    for (service, oldest_id, middle_id) in &marks {
        let n = service.name();
        for (what, path) in [
            ("newest page", format!("/{n}/ui")),
            (
                "a middle page",
                format!("/{n}/ui?starting_after={middle_id}"),
            ),
            (
                "the oldest page",
                format!("/{n}/ui?ending_before={oldest_id}&limit=50"),
            ),
            ("JSON list, newest 100", format!("/{n}/ledger?limit=100")),
            (
                "JSON list, middle 100",
                format!("/{n}/ledger?limit=100&starting_after={middle_id}"),
            ),
        ] {
            let mut times = Vec::new();
            for _ in 0..20 {
                let (took, body) = get(&client, &format!("{base}{path}")).await;
                assert!(body.len() > 1_000, "{path}: {body}");
                times.push(took);
            }
            report(&format!("{n}: {what}"), times);
        }
    }
    let reset = client
        .post(format!("{base}/reset"))
        .send()
        .await
        .expect("POST /reset");
    assert!(
        reset.status().is_success(),
        "POST /reset: {}",
        reset.status()
    );
    drop(client);
    let _ = server.shutdown().await;
    let after = resident();
    println!(
        "after reset: {:.1} MB resident ({:+.1} MB against the fresh process)",
        mb(after),
        mb(after) - mb(fresh)
    );
}

async fn get(client: &reqwest::Client, url: &str) -> (Duration, String) {
    let started = Instant::now();
    let response = client
        .get(url)
        .header(
            "Accept",
            if url.contains("/ui") {
                "text/html"
            } else {
                "application/json"
            },
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let took = started.elapsed();
    assert!(status.is_success(), "GET {url}: {status}: {body}");
    (took, body)
}

fn report(what: &str, mut times: Vec<Duration>) {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    println!(
        "  {what:<40} {:>8.3} ms {:>8.3} ms {:>8.3} ms",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3
    );
}
