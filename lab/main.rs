use clap::Parser;

use idemlab::cli::{Cli, Command};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // A CI gate's output is its report: job logs only when asked (RUST_LOG).
    let quiet = matches!(cli.command, Command::Check(_) | Command::Explore(_));
    idemlab::fake_services::init_tracing_at(if quiet { "error" } else { "info" });
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Command::Worker(args) = &cli.command {
        runtime.worker_threads(usize::from(args.threads));
    }
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(idemlab::cli::run(cli)) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
