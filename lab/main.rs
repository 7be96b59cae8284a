use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = idemlab::cli::Cli::parse();
    // A CI gate's output is its report: job logs only when asked (RUST_LOG).
    let quiet = matches!(
        cli.command,
        idemlab::cli::Command::Check(_) | idemlab::cli::Command::Explore(_)
    );
    idemlab::fake_services::init_tracing_at(if quiet { "error" } else { "info" });
    match idemlab::cli::run(cli).await {
        Ok(code) => std::process::ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
