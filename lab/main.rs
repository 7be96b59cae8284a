use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    idemlab::fake_services::init_tracing();
    let cli = idemlab::cli::Cli::parse();
    match idemlab::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
