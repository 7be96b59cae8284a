//! The `lab` command line.

use clap::{Parser, Subcommand};
use fake_services::cli::FakesArgs;

use crate::serve::ServeArgs;

/// idemlab: a test lab for idempotency in background-job pipelines — fake
/// payments, email, fulfillment and error-catcher services that misbehave on
/// command, and an order pipeline in naive and safe variants.
#[derive(Debug, Parser)]
#[command(name = "lab", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web lab: fake services, web pages and workers in one process.
    Serve(Box<ServeArgs>),
    /// Serve only the four fake services.
    Fakes(FakesArgs),
    /// Run the web pages alone, against shared Redis and SQL (workers run
    /// as `lab worker`).
    Web(Box<crate::serve::WebArgs>),
    /// Run a worker process against shared Redis and SQL; several may run
    /// at once, each labelled with its --code-version.
    Worker(Box<crate::serve::WorkerArgs>),
    /// Run scenario files and check what must be true: the CI gate. Exits 0
    /// when every scenario ended as it expected, 1 when any did not, 2 on
    /// invalid input.
    Check(crate::suite::CheckArgs),
    /// Search fault plans for one that breaks a pipeline variant and print
    /// the smallest as a scenario file. Exits 0 when none did, 1 with a
    /// counterexample, 2 on invalid input.
    Explore(crate::explore::cli::ExploreArgs),
    /// Clear a running lab: orders, queues, job history and the fake
    /// services' ledgers and fault rules (the seed data comes back).
    Reset(ResetArgs),
}

/// `lab reset`.
#[derive(Debug, clap::Args)]
pub struct ResetArgs {
    /// The web lab to reset.
    #[arg(long, default_value = "http://127.0.0.1:4000")]
    pub url: String,
}

/// Runs a parsed command line; returns the process's exit code.
pub async fn run(cli: Cli) -> std::io::Result<u8> {
    match cli.command {
        Command::Serve(args) => crate::serve::run(*args).await.map(|()| 0),
        Command::Fakes(args) => fake_services::cli::run(args).await.map(|()| 0),
        Command::Web(args) => crate::serve::run_web(*args).await.map(|()| 0),
        Command::Worker(args) => crate::serve::run_worker(*args).await.map(|()| 0),
        Command::Check(args) => Ok(crate::suite::run(args).await),
        // The engine runs on a runtime of its own, off this one's threads.
        Command::Explore(args) => {
            tokio::task::spawn_blocking(move || crate::explore::cli::run(args))
                .await
                .map_err(std::io::Error::other)
        }
        Command::Reset(args) => reset(&args.url).await.map(|()| 0),
    }
}

async fn reset(url: &str) -> std::io::Result<()> {
    let url = format!("{}/reset", url.trim_end_matches('/'));
    let response = reqwest::Client::new()
        .post(&url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|err| {
            std::io::Error::other(format!(
                "no lab answers at {url} ({err}); is `lab serve` running there?"
            ))
        })?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        return Err(std::io::Error::other(format!(
            "{url} answered {status}: {body}"
        )));
    }
    fake_services::cli::say("reset: no orders, jobs or ledger records left\n");
    Ok(())
}
