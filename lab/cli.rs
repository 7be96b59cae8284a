//! The `lab` command line.

use std::net::SocketAddr;

use clap::{Parser, Subcommand};
use fake_services::cli::FakesArgs;

/// idemlab: fake payments, email, fulfillment and error-catcher services that
/// misbehave on command, for testing idempotency in background-job pipelines.
#[derive(Debug, Parser)]
#[command(name = "lab", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the lab. Until the order pipeline lands, this serves the fake
    /// services on --fakes-bind.
    Serve(ServeArgs),
    /// Serve only the four fake services.
    Fakes(FakesArgs),
}

/// `lab serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Where the fake services listen.
    #[arg(long, default_value = "127.0.0.1:3001")]
    pub fakes_bind: SocketAddr,
    /// Require `Authorization: Bearer TOKEN` on the behaviour and reset routes.
    #[arg(long, env = "IDEMLAB_CONTROL_TOKEN", value_name = "TOKEN")]
    pub control_token: Option<String>,
    /// Seed for record ids and random choices (reproducible ledgers).
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> std::io::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            fake_services::cli::run(FakesArgs {
                bind: args.fakes_bind,
                control_token: args.control_token,
                seed: args.seed,
            })
            .await
        }
        Command::Fakes(args) => fake_services::cli::run(args).await,
    }
}
