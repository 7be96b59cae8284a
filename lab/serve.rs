//! The lab's processes: `lab serve` (fake services, web lab and workers in
//! one process, on embedded defaults or on Redis and Postgres), and `lab web`
//! and `lab worker` (separate processes sharing Redis and Postgres).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;
use fake_services::cli::AllowedHostArgs;
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
    // Both servers, the fake services and the web pages, answer to these names.
    #[command(flatten)]
    pub hosts: AllowedHostArgs,
}

/// `lab web`: the web pages alone (orders are placed here; workers run elsewhere).
#[derive(Debug, Clone, Args)]
pub struct WebArgs {
    /// Where the web lab listens.
    #[arg(long, default_value = "127.0.0.1:4000")]
    pub bind: SocketAddr,
    #[command(flatten)]
    pub process: ProcessArgs,
    /// The fake services' control token, if they need one.
    #[arg(long, env = "IDEMLAB_CONTROL_TOKEN", value_name = "TOKEN")]
    pub control_token: Option<String>,
    #[command(flatten)]
    pub hosts: AllowedHostArgs,
}

/// `lab worker`: a worker process (several may share one Redis).
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Runtime threads for this process's jobs. One, as Sidekiq runs a
    /// process on one core under Ruby's lock: run one worker process per
    /// core rather than one process with a thread per core. On a small
    /// machine shared with Redis and Postgres a second thread costs more
    /// than it brings (every job wakes the other core).
    #[arg(
        long,
        env = "IDEMLAB_WORKER_THREADS",
        default_value_t = 1,
        value_parser = clap::value_parser!(u16).range(1..=256)
    )]
    pub threads: u16,
    #[command(flatten)]
    pub process: ProcessArgs,
}

/// What `lab web` and `lab worker`, the processes of a shared lab, are
/// both given: where the fake services answer, and the lab's own flags.
#[derive(Debug, Clone, Args)]
pub struct ProcessArgs {
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
                allowed_hosts: args.hosts.hosts(),
            },
        ),
    )
    .await
    .map_err(cannot_listen(args.fakes_bind))?;
    let lab = build_lab(&args.lab, fakes_server.url()).await?;
    let listener = listen(args.bind).await?;
    let web_url = format!("http://{}", listener.local_addr()?);
    let running = lab.start();
    say_started(
        &format!("web lab on {web_url}"),
        &format!("fake services on {}", fakes_server.url()),
        &lab,
        &args.lab,
    );
    fake_services::cli::say(&args.hosts.banner());
    serve_pages(
        listener,
        &lab,
        web_options(&args.control_token, &args.hosts),
        LETTING_JOBS_FINISH,
    )
    .await?;
    running.stop().await;
    fakes_server.shutdown().await?;
    lab.shop.store.close().await;
    Ok(())
}

/// Runs the web pages alone until Ctrl-C.
pub async fn run_web(args: WebArgs) -> io::Result<()> {
    args.process.lab.queue.require_shared("lab web")?;
    let lab = build_lab(&args.process.lab, args.process.fakes_url.clone()).await?;
    let listener = listen(args.bind).await?;
    say_started(
        &format!("web lab on http://{}", listener.local_addr()?),
        &format!("fake services at {}", args.process.fakes_url),
        &lab,
        &args.process.lab,
    );
    fake_services::cli::say(&args.hosts.banner());
    serve_pages(
        listener,
        &lab,
        web_options(&args.control_token, &args.hosts),
        "shutting down\n",
    )
    .await?;
    lab.shop.store.close().await;
    Ok(())
}

/// Runs a worker process (with the outbox relay and the reminder scheduler)
/// until Ctrl-C.
pub async fn run_worker(args: WorkerArgs) -> io::Result<()> {
    args.process.lab.queue.require_shared("lab worker")?;
    let lab = build_lab(&args.process.lab, args.process.fakes_url.clone()).await?;
    let config = lab.runner.config();
    // The runtime's own count, not the flag's: what the jobs really run on.
    let threads = match tokio::runtime::Handle::current().metrics().num_workers() {
        1 => "1 thread".to_string(),
        n => format!("{n} threads"),
    };
    say_started(
        &format!(
            "worker {} ({} jobs at once, {threads})",
            config.code_version, config.concurrency
        ),
        &format!("fake services at {}", args.process.fakes_url),
        &lab,
        &args.process.lab,
    );
    let running = lab.start();
    let _ = tokio::signal::ctrl_c().await;
    fake_services::cli::say(LETTING_JOBS_FINISH);
    running.stop().await;
    lab.shop.store.close().await;
    Ok(())
}

/// What a process with workers says on Ctrl-C.
const LETTING_JOBS_FINISH: &str = "shutting down: letting running jobs finish\n";

/// The error for an address that could not be listened on, naming it.
fn cannot_listen(addr: SocketAddr) -> impl FnOnce(io::Error) -> io::Error {
    move |e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"))
}

/// A listener on `addr`, or an error naming it.
async fn listen(addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(cannot_listen(addr))
}

/// Serves the web lab's pages on `listener` until Ctrl-C, then says
/// `stopping`.
async fn serve_pages(
    listener: tokio::net::TcpListener,
    lab: &Lab,
    options: WebOptions,
    stopping: &'static str,
) -> io::Result<()> {
    let app = web::router(lab.clone(), options);
    serve(listener, app, async {
        let _ = tokio::signal::ctrl_c().await;
        fake_services::cli::say(stopping);
    })
    .await
}

/// What the web pages are given: the fake services' token and the names
/// they answer to.
fn web_options(control_token: &Option<String>, hosts: &AllowedHostArgs) -> WebOptions {
    WebOptions {
        control_token: control_token.clone(),
        allowed_hosts: hosts.hosts(),
    }
}

/// The lines a process prints once it is up: what it is, where the fake
/// services are, and the store, queue and pipeline it runs.
fn say_started(what: &str, fakes: &str, lab: &Lab, args: &LabArgs) {
    fake_services::cli::say(&format!(
        "idemlab {what}\n  {fakes}\n  store: {}\n  queue: {}\n  pipeline: {}\n",
        lab.shop.store.url(),
        args.queue.kind(),
        lab.shop.knobs,
    ));
}

/// A lab over the chosen store and queue, calling the fake services at `fakes_url`.
async fn build_lab(args: &LabArgs, fakes_url: String) -> io::Result<Lab> {
    let clients =
        crate::clients::ProviderClients::http(&fakes_url, std::time::Duration::from_secs(5))
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
