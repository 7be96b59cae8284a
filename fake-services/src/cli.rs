//! The `fake-services` command line, shared by the crate's own binary and by
//! `lab fakes`.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::clock::SystemClock;
use crate::fakes::FakeServices;
use crate::http::{router, HttpOptions};
use crate::serve::serve;
use crate::service::Service;

/// Serve the four fake services (payments, email, fulfillment, error catcher).
#[derive(Debug, Clone, clap::Args)]
pub struct FakesArgs {
    /// Address to listen on; use 0.0.0.0:PORT to serve other machines.
    #[arg(long, default_value = "127.0.0.1:3001")]
    pub bind: SocketAddr,
    /// Require `Authorization: Bearer TOKEN` on the behaviour and reset routes.
    #[arg(long, env = "IDEMLAB_CONTROL_TOKEN", value_name = "TOKEN")]
    pub control_token: Option<String>,
    /// Seed for record ids and random choices (reproducible ledgers).
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Serves until Ctrl-C, then lets in-flight requests finish.
pub async fn run(args: FakesArgs) -> std::io::Result<()> {
    let fakes = match args.seed {
        Some(seed) => FakeServices::with_clock(Arc::new(SystemClock), seed),
        None => FakeServices::new(),
    };
    let app = router(
        fakes,
        HttpOptions {
            control_token: args.control_token.clone(),
        },
    );
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot listen on {}: {e}", args.bind))
        })?;
    let addr = listener.local_addr()?;
    let mut banner = format!("fake services listening on http://{addr}\n");
    for service in Service::ALL {
        banner += &format!(
            "  {:<14} http://{addr}/{}/ui\n",
            service.title(),
            service.name()
        );
    }
    if args.control_token.is_some() {
        banner += "  behaviour and reset routes need the control token\n";
    }
    say(&banner);
    serve(listener, app, async {
        let _ = tokio::signal::ctrl_c().await;
        say("shutting down\n");
    })
    .await
}

/// Prints to stdout, ignoring a closed stdout (`lab fakes | head -1`): a
/// server must not die because nobody reads its banner.
pub fn say(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}
