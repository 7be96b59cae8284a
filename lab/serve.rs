//! `lab serve`: the fake services, the web lab and the workers in one
//! process, on embedded defaults (a SQLite file, the memory queue).

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use fake_services::http::HttpOptions;
use fake_services::serve::{serve, RunningServer};
use fake_services::{FakeServices, SharedClock, SystemClock};

use crate::app::{Lab, LabParts};
use crate::clients::Clients;
use crate::pipeline::{
    ChargeDedup, EmailDedup, Enqueue, FulfillmentDedup, Knobs, Structure, Sweep,
};
use crate::runner::{FetchMode, MemoryBackend, RetryPolicy, RunnerConfig};
use crate::store::Store;
use crate::web::{self, WebOptions};

/// The pipeline variant, one flag per knob (default: the safe pipeline).
#[derive(Debug, Clone, Args)]
pub struct KnobArgs {
    /// How the provider calls are split into jobs.
    #[arg(long, value_enum, default_value_t)]
    pub structure: Structure,
    /// How the charge avoids charging twice.
    #[arg(long, value_enum, default_value_t)]
    pub charge: ChargeDedup,
    /// How the confirmation email avoids going out twice.
    #[arg(long, value_enum, default_value_t)]
    pub email: EmailDedup,
    /// How the fulfillment request avoids shipping twice.
    #[arg(long, value_enum, default_value_t)]
    pub fulfillment: FulfillmentDedup,
    /// How placing an order starts its first job.
    #[arg(long, value_enum, default_value_t)]
    pub enqueue: Enqueue,
    /// How the periodic reminder sweep claims due reminders.
    #[arg(long, value_enum, default_value_t)]
    pub sweep: Sweep,
    /// How workers take jobs: basic loses a dying worker's job, reliable brings it back.
    #[arg(long, value_enum, default_value_t)]
    pub fetch: FetchMode,
}

impl KnobArgs {
    pub fn knobs(&self) -> Knobs {
        Knobs {
            structure: self.structure,
            charge: self.charge,
            email: self.email,
            fulfillment: self.fulfillment,
            enqueue: self.enqueue,
            sweep: self.sweep,
            fetch: self.fetch,
        }
    }
}

/// `lab serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Where the web lab listens.
    #[arg(long, default_value = "127.0.0.1:4000")]
    pub bind: SocketAddr,
    /// Where the fake services listen.
    #[arg(long, default_value = "127.0.0.1:3001")]
    pub fakes_bind: SocketAddr,
    #[command(flatten)]
    pub knobs: KnobArgs,
    /// Multiplies Sidekiq's retry schedule (and heartbeats): 0.01 makes the
    /// first retry come after 0.15–0.24 s instead of 15–24 s.
    #[arg(long, default_value_t = 0.01, value_parser = parse_time_scale)]
    pub time_scale: f64,
    /// Jobs run at once.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub concurrency: u16,
    /// Retries before a job goes to the dead set.
    #[arg(long, default_value_t = 25)]
    pub max_retries: u32,
    /// The SQL store: sqlite://PATH?mode=rwc or postgres://…; default: a
    /// SQLite file in --data-dir.
    #[arg(long, env = "DATABASE_URL")]
    pub database: Option<String>,
    /// Where the default SQLite file lives.
    #[arg(long, default_value = ".idemlab")]
    pub data_dir: PathBuf,
    /// Require `Authorization: Bearer TOKEN` on the fake services' behaviour
    /// and reset routes.
    #[arg(long, env = "IDEMLAB_CONTROL_TOKEN", value_name = "TOKEN")]
    pub control_token: Option<String>,
    /// Seed for ids and random choices.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Labels this worker in the process set and the job history.
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    pub code_version: String,
}

fn parse_time_scale(text: &str) -> Result<f64, String> {
    let scale: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if scale.is_finite() && scale > 0.0 && scale <= 1.0 {
        Ok(scale)
    } else {
        Err(format!("must be above 0 and at most 1, got {text}"))
    }
}

/// The runner's timings in this lab's time: Sidekiq's heartbeat (5 s),
/// heartbeat timeout (60 s) and poll interval (1 s) scaled like the retry
/// schedule, with floors that keep a tiny scale from spinning.
pub fn runner_config(args: &ServeArgs) -> RunnerConfig {
    let scaled = |ms: f64, floor: u64| ((ms * args.time_scale) as u64).max(floor);
    RunnerConfig {
        concurrency: usize::from(args.concurrency),
        retry: RetryPolicy {
            max_retries: args.max_retries,
            time_scale: args.time_scale,
        },
        code_version: args.code_version.clone(),
        heartbeat_ms: scaled(5_000.0, 20),
        process_ttl_ms: scaled(60_000.0, 200),
        poll_ms: scaled(1_000.0, 10),
        seed: args.seed.unwrap_or_else(rand::random),
        ..RunnerConfig::default()
    }
}

/// Runs the lab until Ctrl-C.
pub async fn run(args: ServeArgs) -> io::Result<()> {
    let other = |e: String| io::Error::other(e);
    let fakes = match args.seed {
        Some(seed) => FakeServices::with_clock(Arc::new(SystemClock), seed),
        None => FakeServices::new(),
    };
    let fakes_server = RunningServer::start(
        args.fakes_bind,
        fake_services::http::router(
            fakes,
            HttpOptions {
                control_token: args.control_token.clone(),
            },
        ),
    )
    .await
    .map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot listen on {}: {e}", args.fakes_bind),
        )
    })?;
    let database = match &args.database {
        Some(url) => url.clone(),
        None => {
            std::fs::create_dir_all(&args.data_dir).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot create {}: {e}", args.data_dir.display()),
                )
            })?;
            format!(
                "sqlite://{}?mode=rwc",
                args.data_dir.join("lab.db").display()
            )
        }
    };
    let store = Store::connect(&database)
        .await
        .map_err(|e| other(e.to_string()))?;
    let clients = Clients::http(&fakes_server.url(), Duration::from_secs(5))
        .map_err(|e| other(e.to_string()))?;
    let clock: SharedClock = Arc::new(SystemClock);
    let lab = Lab::new(LabParts {
        store,
        clients,
        backend: Arc::new(MemoryBackend::new()),
        clock,
        knobs: args.knobs.knobs(),
        runner: runner_config(&args),
        fakes_url: fakes_server.url(),
    });
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {}: {e}", args.bind)))?;
    let web_url = format!("http://{}", listener.local_addr()?);
    let running = lab.start();
    fake_services::cli::say(&format!(
        "idemlab web lab on {web_url}\n  fake services on {}\n  store: {}\n  pipeline: {}\n",
        fakes_server.url(),
        lab.shop.store.url(),
        lab.shop.knobs,
    ));
    let app = web::router(
        lab.clone(),
        WebOptions {
            control_token: args.control_token.clone(),
        },
    );
    serve(listener, app, async {
        let _ = tokio::signal::ctrl_c().await;
        fake_services::cli::say("shutting down: letting running jobs finish\n");
    })
    .await?;
    running.stop().await;
    fakes_server.shutdown().await?;
    lab.shop.store.close().await;
    Ok(())
}
