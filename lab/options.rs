//! Command-line options shared by `lab serve`, `lab web`, `lab worker` and
//! `lab check`: the pipeline variant, the runner's timings, the store and the
//! queue backend.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use crate::pipeline::{
    ChargeDedup, EmailDedup, Enqueue, FulfillmentDedup, Knobs, Structure, Sweep,
};
use crate::runner::{Backend, FetchMode, MemoryBackend, RetryPolicy, RunnerConfig};
use crate::store::Store;

/// The pipeline variant, one flag per knob (default: the safe pipeline).
#[derive(Debug, Clone, Args)]
pub struct KnobArgs {
    /// How the provider calls are split into jobs.
    #[arg(long, value_enum, default_value_t)]
    pub structure: Structure,
    /// How the charge avoids charging twice.
    #[arg(long, value_enum, default_value_t)]
    pub charge: ChargeDedup,
    /// How the confirmation email avoids going out twice.
    #[arg(long, value_enum, default_value_t)]
    pub email: EmailDedup,
    /// How the fulfillment request avoids shipping twice.
    #[arg(long, value_enum, default_value_t)]
    pub fulfillment: FulfillmentDedup,
    /// How placing an order starts its first job.
    #[arg(long, value_enum, default_value_t)]
    pub enqueue: Enqueue,
    /// How the periodic reminder sweep avoids sending a reminder twice.
    #[arg(long, value_enum, default_value_t)]
    pub sweep: Sweep,
    /// How workers take jobs: basic loses a dying worker's job, reliable brings it back.
    #[arg(long, value_enum, default_value_t)]
    pub fetch: FetchMode,
}

impl KnobArgs {
    pub fn knobs(&self) -> Knobs {
        Knobs {
            structure: self.structure,
            charge: self.charge,
            email: self.email,
            fulfillment: self.fulfillment,
            enqueue: self.enqueue,
            sweep: self.sweep,
            fetch: self.fetch,
        }
    }
}

/// What a lab process runs: the pipeline variant, the runner, the store and
/// the queue.
#[derive(Debug, Clone, Args)]
pub struct LabArgs {
    #[command(flatten)]
    pub knobs: KnobArgs,
    #[command(flatten)]
    pub runner: RunnerArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub queue: QueueArgs,
}

/// The runner's settings.
#[derive(Debug, Clone, Args)]
pub struct RunnerArgs {
    /// Multiplies Sidekiq's retry schedule (and heartbeats): 0.01 makes the
    /// first retry come after 0.15–0.24 s instead of 15–24 s.
    #[arg(long, default_value_t = 0.01, value_parser = parse_time_scale)]
    pub time_scale: f64,
    /// Jobs run at once.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub concurrency: u16,
    /// Retries before a job goes to the dead set.
    #[arg(long, default_value_t = 25)]
    pub max_retries: u32,
    /// Seed for ids and random choices.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Labels this worker in the process set and the job history; the
    /// default is the crate version and the git commit it was built from.
    #[arg(long, default_value = env!("IDEMLAB_CODE_VERSION"))]
    pub code_version: String,
}

impl RunnerArgs {
    pub fn config(&self) -> RunnerConfig {
        runner_config(self)
    }
}

/// Where orders live.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// The SQL store: sqlite://PATH?mode=rwc or postgres://…; default: a
    /// SQLite file in --data-dir.
    #[arg(long, env = "DATABASE_URL")]
    pub database: Option<String>,
    /// Where the default SQLite file lives.
    #[arg(long, default_value = ".idemlab")]
    pub data_dir: PathBuf,
}

impl StoreArgs {
    /// Connects (and migrates); a SQLite file's folder is created first.
    pub async fn open(&self) -> io::Result<Store> {
        let url = match &self.database {
            Some(url) => url.clone(),
            None => {
                std::fs::create_dir_all(&self.data_dir).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot create {}: {e}", self.data_dir.display()),
                    )
                })?;
                format!(
                    "sqlite://{}?mode=rwc",
                    self.data_dir.join("lab.db").display()
                )
            }
        };
        Store::connect(&url)
            .await
            .map_err(|e| io::Error::other(e.to_string()))
    }
}

/// Where jobs wait.
#[derive(Debug, Clone, Args)]
pub struct QueueArgs {
    /// Run the queues on Redis (Sidekiq's layout) instead of in memory.
    #[arg(long, env = "REDIS_URL", value_name = "URL")]
    pub redis: Option<String>,
}

impl QueueArgs {
    pub async fn open(&self) -> io::Result<Arc<dyn Backend>> {
        match &self.redis {
            None => Ok(Arc::new(MemoryBackend::new())),
            Some(url) => crate::runner::RedisBackend::connect(url)
                .await
                .map(|b| Arc::new(b) as Arc<dyn Backend>)
                .map_err(|e| io::Error::other(e.to_string())),
        }
    }

    /// `memory` or `redis`, for banners.
    pub fn kind(&self) -> &'static str {
        if self.redis.is_some() {
            "redis"
        } else {
            "memory"
        }
    }

    /// A process that shares its queues with others needs Redis.
    pub fn require_shared(&self, command: &str) -> io::Result<()> {
        if self.redis.is_none() {
            return Err(io::Error::other(format!(
                "{command} needs --redis URL (or REDIS_URL): the memory queue lives in one process; run `lab serve` for everything in one"
            )));
        }
        Ok(())
    }
}

fn parse_time_scale(text: &str) -> Result<f64, String> {
    let scale: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if scale.is_finite() && scale > 0.0 && scale <= 1.0 {
        Ok(scale)
    } else {
        Err(format!("must be above 0 and at most 1, got {text}"))
    }
}

/// The runner's timings in this lab's time: Sidekiq's heartbeat (5 s),
/// heartbeat timeout (60 s) and poll interval (1 s) scaled like the retry
/// schedule, with floors that keep a tiny scale from spinning.
fn runner_config(args: &RunnerArgs) -> RunnerConfig {
    let scaled = |ms: f64, floor: u64| ((ms * args.time_scale) as u64).max(floor);
    RunnerConfig {
        concurrency: usize::from(args.concurrency),
        retry: RetryPolicy {
            max_retries: args.max_retries,
            time_scale: args.time_scale,
        },
        code_version: args.code_version.clone(),
        heartbeat_ms: scaled(5_000.0, 20),
        process_ttl_ms: scaled(60_000.0, 200),
        poll_ms: scaled(1_000.0, 10),
        seed: args.seed.unwrap_or_else(rand::random),
        // Sidekiq's identity has the pid in it: two `lab worker` processes
        // of one code version must not share a record in the process set,
        // nor a restarted one take over the in-progress list of the one
        // that was killed (which would then never be recovered).
        hostname: format!("lab:{}", std::process::id()),
        ..RunnerConfig::default()
    }
}

/// Worker threads at most for `--jobs`: more than any machine's cores, and
/// few enough threads to start.
pub const MAX_JOBS: usize = 1_024;

/// `--jobs N`: a whole number from 1 to [`MAX_JOBS`].
pub fn parse_jobs(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let n: usize = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of jobs (a whole number, 1 or more)"))?;
    match n {
        0 => Err("0 jobs would run nothing: give 1 or more".into()),
        n if n > MAX_JOBS => Err(format!("{n} is more than {MAX_JOBS} jobs")),
        n => Ok(n),
    }
}
