//! The web lab: server-rendered pages (no JavaScript needed) to place orders,
//! watch their jobs and see which services are misbehaving. Every page that
//! shows data also answers JSON when the request's `Accept` prefers
//! `application/json`, so scripts and tests need no HTML scraping. Every
//! route is behind the fake services' [`Guard`]: no state change from
//! another site's pages, no answer to a name that is not this server's.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /` | order count, the pipeline variant, the status of the store, the queues and the four services |
//! | `GET /orders/new`, `POST /orders` | the order form (the book app's `order[...]` fields; JSON accepted too) |
//! | `GET /orders`, `GET /orders/{id}` | orders, and one order's steps and job history |
//! | `GET /jobs` | like Sidekiq's web UI: counts, queues, busy, scheduled, retries, dead, processes |
//! | `POST /jobs/{set}/{jid}/retry`, `…/delete` | "Retry now" and "Delete" for a job of the retry, dead or schedule set |
//! | `GET /metrics` | Prometheus text: jobs processed, failed, retried and dead by class; queue and set sizes; orders by state |
//! | `POST /reset` | no orders, jobs or history; the seed data back; the fake services' ledgers and rules cleared (`lab reset`) |
//!
//! # Files
//!
//! - `layout.rs`: the page shell (the one stylesheet and shell of
//!   `fake_services::style`, with the lab's navigation), money and time formatting.
//! - `pages.rs`: HTML-or-JSON answers and the error pages.
//! - `status.rs`: `/` and the Service Status blocks.
//! - `order_form.rs`: the order form, its parsing and its errors.
//! - `orders.rs`: placing, listing and showing orders.
//! - `order_page.rs`: one order's steps, waiting retries and job history.
//! - `timeline.rs`: one order's attempts and provider calls on one time axis.
//! - `jobs.rs`: `/jobs` and its buttons.
//! - `metrics.rs`: `/metrics`.
//! - `reset.rs`: `/reset`.

mod jobs;
mod layout;
mod metrics;
mod order_form;
mod order_page;
mod orders;
mod pages;
mod reset;
mod status;
mod timeline;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use fake_services::cross_site::{AllowedHosts, Guard, Refusal};

use crate::app::Lab;

/// How the web lab reaches what it shows.
#[derive(Debug, Clone, Default)]
pub struct WebOptions {
    /// The fake services' control token, when they were started with one:
    /// sent as `Authorization: Bearer …` to read each service's fault rules.
    pub control_token: Option<String>,
    /// The host names, besides IP addresses and `localhost`, that requests
    /// may name in `Host` (`--allowed-host`); requests from other sites'
    /// pages are refused as the fake services refuse them.
    pub allowed_hosts: AllowedHosts,
}

/// How long the status block waits for a fake service.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// The most post-placement problems remembered (oldest forgotten first).
const MAX_PROBLEMS: usize = 1_000;

/// What every handler gets.
struct Web {
    lab: Lab,
    options: WebOptions,
    http: reqwest::Client,
    /// What went wrong after an order was saved (`enqueue = inline`: the job
    /// body failed in the request), shown on the order's page.
    problems: Mutex<Problems>,
}

#[derive(Default)]
struct Problems {
    by_order: HashMap<i64, String>,
    order: VecDeque<i64>,
}

impl Web {
    fn remember_problem(&self, order_id: i64, problem: String) {
        let mut problems = self.problems.lock().unwrap_or_else(|p| p.into_inner());
        if problems.by_order.insert(order_id, problem).is_none() {
            problems.order.push_back(order_id);
        }
        while problems.order.len() > MAX_PROBLEMS {
            if let Some(old) = problems.order.pop_front() {
                problems.by_order.remove(&old);
            }
        }
    }

    fn problem(&self, order_id: i64) -> Option<String> {
        let problems = self.problems.lock().unwrap_or_else(|p| p.into_inner());
        problems.by_order.get(&order_id).cloned()
    }
}

type WebState = Arc<Web>;

/// The web lab's routes over `lab`.
pub fn router(lab: Lab, options: WebOptions) -> Router {
    let http = reqwest::Client::builder()
        .timeout(STATUS_TIMEOUT)
        .build()
        .unwrap_or_else(|err| {
            tracing::warn!(%err, "could not configure the status client; using the defaults");
            reqwest::Client::new()
        });
    let hosts = options.allowed_hosts.clone();
    let state = Arc::new(Web {
        lab,
        options,
        http,
        problems: Mutex::default(),
    });
    let app = Router::new()
        .route("/", get(status::index))
        .route("/orders", get(orders::list).post(orders::create))
        .route("/orders/new", get(orders::new_form))
        .route("/orders/{id}", get(orders::show))
        .route("/jobs", get(jobs::index))
        .route("/jobs/{set}/{jid}/retry", post(jobs::retry))
        .route("/jobs/{set}/{jid}/delete", post(jobs::delete))
        .route("/metrics", get(metrics::metrics))
        .route("/reset", post(reset::reset))
        .fallback(pages::no_route)
        .with_state(state);
    Guard::new(hosts, refuse).around(app)
}

/// A cross-site refusal ([`fake_services::cross_site`]) as the lab's other
/// errors are: a page, or JSON for a client that prefers it.
fn refuse(headers: &HeaderMap, refusal: Refusal) -> Response {
    let title = if refusal.status == StatusCode::BAD_REQUEST {
        "Bad Request"
    } else {
        "Forbidden"
    };
    pages::error(
        headers,
        refusal.status,
        title,
        &refusal.message,
        serde_json::Value::Null,
        "",
    )
}
