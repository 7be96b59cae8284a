//! The lab's processes: `lab serve` (fake services, web lab and workers in
//! one process, on embedded defaults or on Redis and Postgres), and `lab web`
//! and `lab worker` (separate processes sharing Redis and Postgres).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;
use fake_services::http::HttpOptions;
use fake_services::serve::{serve, RunningServer};
use fake_services::{FakeServices, SharedClock, SystemClock};

use crate::app::{Lab, LabParts};
use crate::options::LabArgs;
use crate::web::{self, WebOptions};

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
    pub lab: LabArgs,
    /// Require `Authorization: Bearer TOKEN` on the fake services' behaviour
    /// and reset routes.
    #[arg(long, env = "IDEMLAB_CONTROL_TOKEN", value_name = "TOKEN")]
    pub control_token: Option<String>,
}

/// `lab web`: the web pages alone (orders are placed here; workers run elsewhere).
#[derive(Debug, Clone, Args)]
pub struct WebArgs {
    /// Where the web lab listens.
    #[arg(long, default_value = "127.0.0.1:4000")]
    pub bind: SocketAddr,
    /// Where the fake services answer (`lab fakes`).
    #[arg(
        long,
        env = "IDEMLAB_FAKES_URL",
        default_value = "http://127.0.0.1:3001"
    )]
    pub fakes_url: String,
    #[command(flatten)]
    pub lab: LabArgs,
    /// The fake services' control token, if they need one.
    #[arg(long, env = "IDEMLAB_CONTROL_TOKEN", value_name = "TOKEN")]
    pub control_token: Option<String>,
}

/// `lab worker`: a worker process (several may share one Redis).
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Where the fake services answer (`lab fakes`).
    #[arg(
        long,
        env = "IDEMLAB_FAKES_URL",
        default_value = "http://127.0.0.1:3001"
    )]
    pub fakes_url: String,
    #[command(flatten)]
    pub lab: LabArgs,
}

/// Runs the lab until Ctrl-C.
pub async fn run(args: ServeArgs) -> io::Result<()> {
    let fakes = match args.lab.runner.seed {
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
    let lab = build_lab(&args.lab, fakes_server.url()).await?;
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {}: {e}", args.bind)))?;
    let web_url = format!("http://{}", listener.local_addr()?);
    let running = lab.start();
    fake_services::cli::say(&format!(
        "idemlab web lab on {web_url}\n  fake services on {}\n  store: {}\n  queue: {}\n  pipeline: {}\n",
        fakes_server.url(),
        lab.shop.store.url(),
        args.lab.queue.kind(),
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

/// Runs the web pages alone until Ctrl-C.
pub async fn run_web(args: WebArgs) -> io::Result<()> {
    args.lab.queue.require_shared("lab web")?;
    let lab = build_lab(&args.lab, args.fakes_url.clone()).await?;
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {}: {e}", args.bind)))?;
    fake_services::cli::say(&format!(
        "idemlab web lab on http://{}\n  fake services at {}\n  store: {}\n  queue: {}\n  pipeline: {}\n",
        listener.local_addr()?,
        args.fakes_url,
        lab.shop.store.url(),
        args.lab.queue.kind(),
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
    })
    .await?;
    lab.shop.store.close().await;
    Ok(())
}

/// Runs a worker process (with the outbox relay and the reminder scheduler)
/// until Ctrl-C.
pub async fn run_worker(args: WorkerArgs) -> io::Result<()> {
    args.lab.queue.require_shared("lab worker")?;
    let lab = build_lab(&args.lab, args.fakes_url.clone()).await?;
    fake_services::cli::say(&format!(
        "idemlab worker {} ({} jobs at once)\n  fake services at {}\n  store: {}\n  queue: {}\n  pipeline: {}\n",
        lab.runner.config().code_version,
        lab.runner.config().concurrency,
        args.fakes_url,
        lab.shop.store.url(),
        args.lab.queue.kind(),
        lab.shop.knobs,
    ));
    let running = lab.start();
    let _ = tokio::signal::ctrl_c().await;
    fake_services::cli::say("shutting down: letting running jobs finish\n");
    running.stop().await;
    lab.shop.store.close().await;
    Ok(())
}

/// A lab over the chosen store and queue, calling the fake services at `fakes_url`.
async fn build_lab(args: &LabArgs, fakes_url: String) -> io::Result<Lab> {
    let clients = crate::clients::Clients::http(&fakes_url, std::time::Duration::from_secs(5))
        .map_err(|e| io::Error::other(e.to_string()))?;
    let clock: SharedClock = Arc::new(SystemClock);
    Ok(Lab::new(LabParts {
        store: args.store.open().await?,
        clients,
        backend: args.queue.open().await?,
        clock,
        knobs: args.knobs.knobs(),
        runner: args.runner.config(),
        fakes_url,
    }))
}
