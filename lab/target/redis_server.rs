//! A private `redis-server` for one scenario run against a target (the
//! `{redis}` template): on a free port of 127.0.0.1, with nothing saved to
//! disk, and gone when the run is.
//!
//! Why private: a Sidekiq app's queues, retries and dead set are in Redis,
//! and a scenario's checks count them; a shared or leftover Redis would
//! mix one run's jobs into another's. Why no persistence: a run is thrown
//! away after it is checked, and an `fsync` per write would only slow it.
//!
//! It runs as an [`AppProcess`], so it gets the same process group, log
//! file (`redis-server.log` in the run's folder) and kill-on-drop as the
//! app's own processes.

use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant};

use super::processes::{free_port, AppProcess, ProcessConfig};

/// How long a started `redis-server` has to answer (it takes milliseconds;
/// the rest is for a loaded machine).
const READY_WITHIN: Duration = Duration::from_secs(10);

/// How many free ports are tried: another program may take a port between
/// the lab finding it free and Redis binding it.
const PORT_TRIES: usize = 5;

/// How often a starting Redis is asked.
const POLL: Duration = Duration::from_millis(20);

/// What Redis logs when its port is taken.
const PORT_TAKEN: &str = "Address already in use";

/// A running private `redis-server`; dropping it kills it.
#[derive(Debug)]
pub struct PrivateRedis {
    process: AppProcess,
    port: u16,
}

impl PrivateRedis {
    /// Starts one with its files and log in `dir` (created if missing) and
    /// waits until it answers as itself (another Redis that holds the port
    /// does not count), trying another port when the first is taken.
    pub async fn start(dir: &Path) -> Result<PrivateRedis, String> {
        Self::start_on(dir, free_port).await
    }

    /// [`start`](Self::start), with the ports to try from `next_port`.
    async fn start_on(dir: &Path, mut next_port: impl FnMut() -> u16) -> Result<Self, String> {
        installed(&std::env::var_os("PATH").unwrap_or_default())?;
        std::fs::create_dir_all(dir).map_err(|e| {
            format!(
                "cannot make a folder for redis-server at {}: {e}",
                dir.display()
            )
        })?;
        let mut taken = Vec::new();
        for _ in 0..PORT_TRIES {
            let port = next_port();
            let mut process = AppProcess::start(config(dir, port))?;
            match answers(&mut process, port).await {
                Ok(()) => return Ok(PrivateRedis { process, port }),
                Err(Failure::PortTaken) => {
                    process.kill();
                    taken.push(port.to_string());
                }
                Err(Failure::Other(why)) => return Err(why),
            }
        }
        Err(format!(
            "cannot start redis-server: the ports {} were all taken by the time it bound them",
            taken.join(", ")
        ))
    }

    /// `redis://127.0.0.1:PORT`, for `{redis}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its log (`redis-server.log` in its folder).
    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Stops it (`SIGTERM`; Redis exits at once, saving nothing).
    pub async fn stop(&mut self) {
        self.process.stop().await
    }
}

/// Why a started Redis is not serving.
enum Failure {
    /// Its port was taken: worth another port.
    PortTaken,
    Other(String),
}

/// The `redis-server` command for `port`, logging to its folder.
fn config(dir: &Path, port: u16) -> ProcessConfig {
    ProcessConfig {
        name: "redis-server".to_string(),
        argv: [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            &dir.to_string_lossy(),
        ]
        .map(str::to_string)
        .to_vec(),
        env: Vec::new(),
        cwd: dir.to_path_buf(),
        log: dir.join("redis-server.log"),
    }
}

/// Waits until the Redis on `port` answers and is `process` (its
/// `process_id`), or `process` exits, or [`READY_WITHIN`] passes.
async fn answers(process: &mut AppProcess, port: u16) -> Result<(), Failure> {
    let deadline = Instant::now() + READY_WITHIN;
    let url = format!("redis://127.0.0.1:{port}");
    loop {
        if let Some(how) = process.exited() {
            let log = process.last_log_lines(5);
            if log.iter().any(|line| line.contains(PORT_TAKEN)) {
                return Err(Failure::PortTaken);
            }
            let quoted: String = log.iter().map(|l| format!("\n    {l}")).collect();
            return Err(Failure::Other(format!(
                "redis-server {how}; the last lines of its log {}:{quoted}",
                process.log_path().display()
            )));
        }
        match server_pid(&url).await {
            Some(pid) if pid == process.pid() => return Ok(()),
            // Another Redis holds the port; ours is about to exit for it.
            Some(_) => return Err(Failure::PortTaken),
            None => {}
        }
        if Instant::now() >= deadline {
            return Err(Failure::Other(format!(
                "redis-server did not answer on port {port} within {} s; its log is {}",
                READY_WITHIN.as_secs(),
                process.log_path().display()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The `process_id` of the Redis at `url`, if one answers within a second.
async fn server_pid(url: &str) -> Option<u32> {
    let asked = async {
        let client = redis::Client::open(url).ok()?;
        let mut connection = client.get_multiplexed_async_connection().await.ok()?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut connection)
            .await
            .ok()?;
        info.lines()
            .find_map(|line| line.strip_prefix("process_id:"))
            .and_then(|pid| pid.trim().parse().ok())
    };
    tokio::time::timeout(Duration::from_secs(1), asked)
        .await
        .ok()
        .flatten()
}

/// Whether `redis-server` is in one of the folders of `path` (a `PATH`
/// value), so that a missing one is named before anything starts.
fn installed(path: &OsStr) -> Result<(), String> {
    if std::env::split_paths(path).any(|folder| folder.join("redis-server").is_file()) {
        Ok(())
    } else {
        Err(
            "`{redis}` needs redis-server on the PATH (Debian: apt-get install redis-server)"
                .to_string(),
        )
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Whether the tests can run: `redis-server` on the PATH (required
    /// when CI is set).
    fn have_redis() -> bool {
        let found = installed(&std::env::var_os("PATH").unwrap_or_default()).is_ok();
        if !found {
            assert!(
                std::env::var_os("CI").is_none(),
                "these tests need redis-server on the PATH"
            );
            eprintln!("skipped: no redis-server on the PATH");
        }
        found
    }

    async fn ping(url: &str) -> Result<String, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async(&mut connection).await
    }

    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| !stat.rsplit(") ").next().unwrap_or("").starts_with('Z'))
    }

    #[tokio::test]
    async fn starts_answers_and_stops() {
        if !have_redis() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("run-1");
        let mut redis = PrivateRedis::start(&folder).await.unwrap();
        assert_eq!(redis.url(), format!("redis://127.0.0.1:{}", redis.port()));
        assert_eq!(ping(&redis.url()).await.unwrap(), "PONG");
        assert_eq!(server_pid(&redis.url()).await, Some(redis.pid()));
        let log = std::fs::read_to_string(redis.log_path()).unwrap();
        assert!(log.starts_with("== started redis-server (pid "), "{log}");
        assert_eq!(redis.log_path(), folder.join("redis-server.log"));
        let pid = redis.pid();
        redis.stop().await;
        assert!(!alive(pid));
        assert!(ping(&redis.url()).await.is_err());
    }

    #[tokio::test]
    async fn two_runs_get_two_servers_and_drop_kills_them() {
        if !have_redis() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let one = PrivateRedis::start(&dir.path().join("1")).await.unwrap();
        let two = PrivateRedis::start(&dir.path().join("2")).await.unwrap();
        assert_ne!(one.port(), two.port());
        let pids = [one.pid(), two.pid()];
        drop(one);
        drop(two);
        assert!(!pids.into_iter().any(alive));
    }

    #[tokio::test]
    async fn a_taken_port_is_retried_on_another() {
        if !have_redis() {
            return;
        }
        let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = holder.local_addr().unwrap().port();
        let mut ports = vec![free_port(), taken];
        let dir = tempfile::tempdir().unwrap();
        let redis = PrivateRedis::start_on(dir.path(), || ports.pop().unwrap())
            .await
            .unwrap();
        assert_ne!(redis.port(), taken);
        assert_eq!(ping(&redis.url()).await.unwrap(), "PONG");
        let log = std::fs::read_to_string(redis.log_path()).unwrap();
        assert_eq!(log.matches("== started redis-server").count(), 2, "{log}");
        assert!(log.contains(PORT_TAKEN), "{log}");
    }

    #[tokio::test]
    async fn a_port_served_by_another_redis_is_not_taken_for_ours() {
        if !have_redis() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let other = PrivateRedis::start(&dir.path().join("other"))
            .await
            .unwrap();
        let mut ports = vec![free_port(), other.port()];
        let ours = PrivateRedis::start_on(&dir.path().join("ours"), || ports.pop().unwrap())
            .await
            .unwrap();
        assert_ne!(ours.port(), other.port());
        assert_eq!(server_pid(&ours.url()).await, Some(ours.pid()));
    }

    #[test]
    fn a_missing_redis_server_is_named() {
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            installed(empty.path().as_os_str()).unwrap_err(),
            "`{redis}` needs redis-server on the PATH (Debian: apt-get install redis-server)"
        );
        let with_one = tempfile::tempdir().unwrap();
        std::fs::write(with_one.path().join("redis-server"), "").unwrap();
        let path = std::env::join_paths([empty.path(), with_one.path()]).unwrap();
        assert!(installed(&path).is_ok());
    }
}
