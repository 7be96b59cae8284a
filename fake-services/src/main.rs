//! `fake-services`: the four fake services on their own, for apps in any
//! language. `lab fakes` is the same command.

use clap::Parser;

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    args: fake_services::cli::FakesArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    fake_services::init_tracing();
    let cli = Cli::parse();
    match fake_services::cli::run(cli.args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
