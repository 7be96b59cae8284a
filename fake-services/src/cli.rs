//! The `fake-services` command line, shared by the crate's own binary and by
//! `lab fakes`.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::clock::SystemClock;
use crate::cross_site::{AllowedHost, AllowedHosts};
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
    /// Keep only the newest N records of each ledger, for load tests longer
    /// than memory allows. The per-order counts (the duplicate markers)
    /// still count every record; a dropped record no longer answers
    /// searches, lists or `metadata.idempotency_key` replays.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub keep: Option<u64>,
    #[command(flatten)]
    pub hosts: AllowedHostArgs,
}

/// `--allowed-host`, for every server (`lab fakes`, `lab serve`, `lab web`,
/// `fake-services`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AllowedHostArgs {
    /// Also answer requests addressed to NAME (repeatable, or comma
    /// separated): the name other machines or containers reach this server
    /// by. IP addresses and localhost always work; any other name is refused,
    /// so that a web page cannot point its own name at this server (DNS
    /// rebinding) and read it.
    #[arg(
        long = "allowed-host",
        env = "IDEMLAB_ALLOWED_HOSTS",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<AllowedHost>,
}

impl AllowedHostArgs {
    pub fn hosts(&self) -> AllowedHosts {
        self.allowed_hosts.iter().cloned().collect()
    }

    /// The banner's line for the names, when any were given.
    pub fn banner(&self) -> String {
        let hosts = self.hosts();
        let names: Vec<&str> = hosts.names().collect();
        if names.is_empty() {
            String::new()
        } else {
            format!("  also answers as: {} (--allowed-host)\n", names.join(", "))
        }
    }
}

/// Serves until Ctrl-C, then lets in-flight requests finish.
pub async fn run(args: FakesArgs) -> std::io::Result<()> {
    let fakes = match args.seed {
        Some(seed) => FakeServices::with_clock(Arc::new(SystemClock), seed),
        None => FakeServices::new(),
    };
    let keep = args.keep.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    fakes.set_keep(keep);
    let app = router(
        fakes,
        HttpOptions {
            control_token: args.control_token.clone(),
            allowed_hosts: args.hosts.hosts(),
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
    banner += &args.hosts.banner();
    if let Some(keep) = args.keep {
        banner += &format!("  each ledger keeps its newest {keep} records (--keep)\n");
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
