//! One process of the user's app (a `[[process]]` of the target file):
//! started in a process group of its own with one log file, waited for,
//! killed as a crash would kill it, restarted, and stopped.
//!
//! Why a process group: an app's command is rarely the process that does
//! the work — `bundle exec sidekiq`, `foreman start` or a shell script fork
//! the real workers. A worker fault must kill all of them at once (a
//! `SIGKILL` to the group, as the kernel's OOM killer or a lost machine
//! would), and no run may leave a process behind for the next scenario to
//! meet, so every signal here goes to the whole group, and [`Drop`] kills
//! the group too.
//!
//! Why one log file for stdout and stderr: the interleaving is what a user
//! reads when a job misbehaves, and the file is written by the process
//! itself (not copied by the lab), so nothing is lost when the lab kills it.
//! The lab adds `== started`, `== killed`, `== restarted` and `== stopped`
//! lines so that a log tells where each life of the process begins and ends.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long [`AppProcess::stop`] gives a process to end after `SIGTERM`
/// (Sidekiq's own default shutdown timeout is 25 s, but a test lab's jobs
/// are short; 5 s is what a user waits for without wondering).
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// How often a stopping process is looked at.
const EXIT_POLL: Duration = Duration::from_millis(20);

/// How often a `ready` URL is asked.
const READY_POLL: Duration = Duration::from_millis(50);

/// The longest one readiness request may take: a server that accepts but
/// does not answer is not ready yet, and must not eat the whole wait.
const READY_ATTEMPT: Duration = Duration::from_secs(1);

/// How many of its log's last lines an error about a process quotes.
const QUOTED_LINES: usize = 8;

/// How much of a log's end [`AppProcess::last_log_lines`] reads: enough for
/// any sensible number of lines, without reading a long log whole.
const LOG_TAIL_BYTES: u64 = 64 * 1024;

/// What the lab needs to start one of the app's processes, with every
/// template already filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessConfig {
    /// Its `name` in the target file (`web`, `worker`), for messages.
    pub name: String,
    /// The program and its arguments, run without a shell.
    pub argv: Vec<String>,
    /// Added to the lab's own environment.
    pub env: Vec<(String, String)>,
    /// Its working folder (the target file's folder).
    pub cwd: PathBuf,
    /// The file its stdout and stderr are appended to.
    pub log: PathBuf,
}

/// A running (or ended) process of the app, the leader of its own process
/// group. Dropping it kills the group.
#[derive(Debug)]
pub struct AppProcess {
    config: ProcessConfig,
    child: Child,
    /// Its exit status, once reaped.
    status: Option<ExitStatus>,
    /// Whether the lab ended this life of it ([`kill`](Self::kill) or
    /// [`stop`](Self::stop)): its end is then no crash, and its group has
    /// already had its `SIGKILL`.
    ended_by_lab: bool,
}

impl AppProcess {
    /// Starts it: no shell, its own process group, stdin from `/dev/null`,
    /// stdout and stderr appended to its log after a `== started` line.
    pub fn start(config: ProcessConfig) -> Result<AppProcess, String> {
        let child = spawn(&config, "started")?;
        Ok(AppProcess {
            config,
            child,
            status: None,
            ended_by_lab: false,
        })
    }

    /// Its name in the target file.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The pid of its current life (also its process group's id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log file.
    pub fn log_path(&self) -> &Path {
        &self.config.log
    }

    /// Whether it has died by itself, without waiting: `Some("exited with
    /// status 1")` then. `None` while it runs, and after the lab has killed
    /// or stopped it (that is no crash).
    pub fn exited(&mut self) -> Option<String> {
        if self.ended_by_lab {
            return None;
        }
        self.reap().map(describe)
    }

    /// Polls `url` until it answers with any HTTP status (a connection
    /// error, or no answer within a second, is "not yet"), for at most
    /// `within`. Fails at once when the process dies meanwhile, with its
    /// exit status and the end of its log, since a process that has exited
    /// will never answer.
    pub async fn wait_ready(&mut self, url: &str, within: Duration) -> Result<(), String> {
        let name = self.config.name.clone();
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot wait for {name}: {e}"))?;
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.reap() {
                let how = if self.ended_by_lab {
                    "was stopped by the lab".to_string()
                } else {
                    describe(status)
                };
                return Err(format!(
                    "{name} {how} before {url} answered{}",
                    self.quoted_log()
                ));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let attempt = client
                .get(url)
                .timeout(left.clamp(Duration::from_millis(10), READY_ATTEMPT))
                .send()
                .await;
            let failure = match attempt {
                Ok(_) => return Ok(()),
                Err(e) if e.is_builder() => {
                    return Err(format!(
                        "{name}: its `ready` URL {url:?} is not a valid URL"
                    ))
                }
                Err(e) => http_failure(&e),
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "{name} did not answer at {url} within {} ({failure}){}",
                    seconds(within),
                    self.quoted_log()
                ));
            }
            tokio::time::sleep(READY_POLL.min(left)).await;
        }
    }

    /// Kills it as a crash would: `SIGKILL` to its whole group, then reaps
    /// the leader (at once: nothing survives `SIGKILL`). Writes `== killed`
    /// to its log. Does nothing to a process the lab has already ended.
    pub fn kill(&mut self) {
        if self.ended_by_lab {
            return;
        }
        self.end_group();
        self.note(&format!("killed {}", self.config.name), None);
    }

    /// Starts it again with the same command, environment and log, as a
    /// supervisor would after a crash; kills the current life first if it
    /// still runs, so that there are never two.
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        self.child = spawn(&self.config, "restarted")?;
        self.status = None;
        self.ended_by_lab = false;
        Ok(())
    }

    /// Stops it as a supervisor would: `SIGTERM` to its group, up to
    /// [`STOP_GRACE`] for the leader to exit, then `SIGKILL` to whatever of
    /// the group is left.
    pub async fn stop(&mut self) {
        self.stop_within(STOP_GRACE).await
    }

    /// [`stop`](Self::stop) with a grace of `grace` instead of 5 s.
    pub async fn stop_within(&mut self, grace: Duration) {
        if self.ended_by_lab {
            return;
        }
        let mut forced = false;
        if self.reap().is_none() {
            signal_group(self.pid(), GroupSignal::Term);
            let deadline = Instant::now() + grace;
            while self.reap().is_none() {
                if Instant::now() >= deadline {
                    forced = true;
                    break;
                }
                tokio::time::sleep(EXIT_POLL).await;
            }
        }
        // Also when the leader ended in time: its children may not have.
        self.end_group();
        let what = format!("stopped {}", self.config.name);
        if forced {
            let why = format!("killed, still running {} after SIGTERM", seconds(grace));
            self.note(&what, Some(&why));
        } else {
            self.note(&what, None);
        }
    }

    /// The last `n` lines of its log (fewer when it has fewer), for error
    /// messages; none when the log cannot be read.
    pub fn last_log_lines(&self, n: usize) -> Vec<String> {
        last_lines(&self.config.log, n)
    }

    /// `SIGKILL` to the group and the leader reaped; this life is over.
    fn end_group(&mut self) {
        signal_group(self.pid(), GroupSignal::Kill);
        if self.status.is_none() {
            self.status = self.child.wait().ok();
        }
        self.ended_by_lab = true;
    }

    /// Its exit status if it has ended, reaping it without waiting.
    fn reap(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// A `== WHAT (pid N) at TIME[: WHY]` line in its log (best effort: a
    /// log that cannot be written to must not stop the run).
    fn note(&self, what: &str, why: Option<&str>) {
        if let Ok(mut log) = OpenOptions::new().append(true).open(&self.config.log) {
            let why = why.map(|why| format!(": {why}")).unwrap_or_default();
            let _ = writeln!(log, "== {what} (pid {}) at {}{why}", self.pid(), clock());
        }
    }

    /// The end of its log, for an error message.
    fn quoted_log(&self) -> String {
        let path = self.config.log.display();
        let lines = self.last_log_lines(QUOTED_LINES);
        if lines.is_empty() {
            return format!("; its log {path} is empty");
        }
        let quoted: String = lines.iter().map(|l| format!("\n    {l}")).collect();
        format!("; the last lines of its log {path}:{quoted}")
    }
}

impl Drop for AppProcess {
    /// Never leaves a process behind, even when a run panics.
    fn drop(&mut self) {
        if !self.ended_by_lab {
            self.end_group();
        }
    }
}

/// A port on 127.0.0.1 that was free a moment ago (bound and released), for
/// `{port}`. The process that gets it binds it a little later, so another
/// program could take it first; the process then fails to start, and says so.
///
/// It is drawn below the system's ephemeral range (Linux's
/// `ip_local_port_range`), where the ports of `bind(0)` and of outgoing
/// connections come from: a worker's port, free while the lab restarts it,
/// is then not handed to whatever else binds port 0 meanwhile (which would
/// answer its `ready` URL in its place). Where that range cannot be read or
/// leaves no room, any free port.
pub fn free_port() -> u16 {
    use rand::Rng;
    if let Some(low) = ephemeral_low() {
        let mut rng = rand::rng();
        for _ in 0..64 {
            let port = rng.random_range(BELOW_EPHEMERAL_FROM..low);
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("binding a port on 127.0.0.1 (is there no loopback interface?)")
}

/// The lowest port `free_port` draws from below the ephemeral range: above
/// the ports services are usually configured on.
const BELOW_EPHEMERAL_FROM: u16 = 20_000;

/// The first port of the ephemeral range, when there is room below it.
fn ephemeral_low() -> Option<u16> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let low: u16 = range.split_whitespace().next()?.parse().ok()?;
    (low > BELOW_EPHEMERAL_FROM + 1_000).then_some(low)
}

/// Starts one life of the process, with a `== WORD` line in its log.
fn spawn(config: &ProcessConfig, word: &str) -> Result<Child, String> {
    let name = &config.name;
    let Some((program, args)) = config.argv.split_first() else {
        return Err(format!("cannot start {name}: its command is empty"));
    };
    if !config.cwd.is_dir() {
        return Err(format!(
            "cannot start {name}: its folder {} is not a directory",
            config.cwd.display()
        ));
    }
    let log_error =
        |e: std::io::Error| format!("cannot start {name}: its log {}: {e}", config.log.display());
    if let Some(folder) = config.log.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder).map_err(log_error)?;
    }
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&config.log)
        .map_err(log_error)?;
    let stdout = log.try_clone().map_err(log_error)?;
    let stderr = log.try_clone().map_err(log_error)?;
    let header = Header {
        log: log.try_clone().map_err(log_error)?,
        before_pid: format!("== {word} {name} (pid ").into_bytes(),
        after_pid: format!(") at {}\n", clock()).into_bytes(),
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(config.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&config.cwd)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0);
    // SAFETY: the closure runs in the child between fork and exec, where
    // only async-signal-safe calls are sound; `Header::write` makes only
    // getpid(2) and write(2) calls, on bytes formatted before the fork, and
    // allocates nothing.
    unsafe {
        command.pre_exec(move || {
            header.write();
            Ok(())
        });
    }
    command.spawn().map_err(|e| {
        let why = spawn_failure(program, &config.cwd, &e);
        let _ = writeln!(log, "== {name} did not start: {why}");
        format!("cannot start {name}: {why}")
    })
}

/// The `== started NAME (pid N) at TIME` line, written by the child itself
/// just before it runs the program, so that it comes before anything the
/// program prints (written by the lab after the spawn, it raced the
/// program's first lines).
struct Header {
    log: std::fs::File,
    before_pid: Vec<u8>,
    after_pid: Vec<u8>,
}

impl Header {
    /// Writes the line; safe between fork and exec (see `spawn`).
    fn write(&self) {
        let mut digits = [0u8; 10];
        let mut pid = std::process::id();
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (pid % 10) as u8;
            pid /= 10;
            if pid == 0 || start == 0 {
                break;
            }
        }
        let mut log = &self.log;
        let _ = log.write_all(&self.before_pid);
        let _ = log.write_all(&digits[start..]);
        let _ = log.write_all(&self.after_pid);
    }
}

/// Why a program could not be started, in the user's terms.
pub(crate) fn spawn_failure(program: &str, cwd: &Path, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound if program.contains('/') => {
            format!("`{program}` not found (in {})", cwd.display())
        }
        std::io::ErrorKind::NotFound => format!("`{program}` not found on PATH"),
        std::io::ErrorKind::PermissionDenied => {
            format!("`{program}` is not executable (permission denied)")
        }
        _ => format!("`{program}`: {e}"),
    }
}

/// The signals the lab sends to a process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupSignal {
    Term,
    Kill,
}

/// Sends `signal` to the process group `pgid` (a leader's pid). Errors are
/// ignored: the only one that can happen to the lab's own group is that
/// nothing of it is left.
pub(crate) fn signal_group(pgid: u32, signal: GroupSignal) {
    // Never 0 or 1: `killpg(0)` would signal the lab's own group.
    let Some(pgid) = i32::try_from(pgid).ok().filter(|&p| p > 1) else {
        return;
    };
    #[cfg(target_os = "linux")]
    {
        use nix::sys::signal::{killpg, Signal};
        let signal = match signal {
            GroupSignal::Term => Signal::SIGTERM,
            GroupSignal::Kill => Signal::SIGKILL,
        };
        let _ = killpg(nix::unistd::Pid::from_raw(pgid), signal);
    }
    #[cfg(not(target_os = "linux"))]
    {
        let name = match signal {
            GroupSignal::Term => "-TERM",
            GroupSignal::Kill => "-KILL",
        };
        let _ = Command::new("kill")
            .args([name, "--", &format!("-{pgid}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `exited with status 1`, `was killed by signal 9 (SIGKILL)`.
pub(crate) fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    match status.signal() {
        Some(signal) => format!("was killed by signal {signal}{}", signal_name(signal)),
        None => format!("ended ({status})"),
    }
}

/// ` (SIGKILL)`, where the name is known.
fn signal_name(signal: i32) -> String {
    #[cfg(target_os = "linux")]
    if let Ok(signal) = nix::sys::signal::Signal::try_from(signal) {
        return format!(" ({})", signal.as_str());
    }
    let _ = signal;
    String::new()
}

/// The last `n` lines of a file, read from its last 64 KiB.
fn last_lines(path: &Path, n: usize) -> Vec<String> {
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let length = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = length.saturating_sub(LOG_TAIL_BYTES);
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // cut in the middle
    }
    let keep = lines.len().saturating_sub(n);
    lines[keep..].iter().map(|l| l.to_string()).collect()
}

/// Why an HTTP request got no answer, in a few words: `cannot connect
/// (Connection refused (os error 111))` rather than reqwest's outermost
/// "error sending request".
pub(crate) fn http_failure(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer in time".to_string()
    } else if e.is_connect() {
        format!("cannot connect ({})", innermost(e))
    } else {
        innermost(e)
    }
}

/// The innermost cause of an error, which names what actually happened.
pub(crate) fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// `2.5 s`, `30 s`.
pub(crate) fn seconds(duration: Duration) -> String {
    format!("{} s", duration.as_millis() as f64 / 1000.0)
}

/// The time of day in UTC with milliseconds (`02:45:01.234 UTC`), to line
/// a log up with the fake services' ledgers.
fn clock() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let of_day = ms % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03} UTC",
        of_day / 3_600_000,
        of_day / 60_000 % 60,
        of_day / 1000 % 60,
        of_day % 1000
    )
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A `sh -c SCRIPT` process logging into `dir/NAME.log`.
    fn sh(dir: &Path, name: &str, script: &str) -> ProcessConfig {
        ProcessConfig {
            name: name.to_string(),
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: Vec::new(),
            cwd: dir.to_path_buf(),
            log: dir.join(format!("{name}.log")),
        }
    }

    fn log_of(process: &AppProcess) -> String {
        std::fs::read_to_string(process.log_path()).unwrap_or_default()
    }

    /// Polls `ready` until it holds, for at most 10 s.
    async fn until(what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Whether a process exists and is not a zombie (a killed process is
    /// a zombie until its parent reaps it, and `kill(pid, 0)` still finds
    /// it then).
    fn alive(pid: u32) -> bool {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        let state = stat.rsplit(") ").next().and_then(|s| s.chars().next());
        state.is_some_and(|s| s != 'Z' && s != 'X')
    }

    /// A process that starts a grandchild `sleep` and writes its pid to
    /// `grandchild.pid`; returns the process and the grandchild's pid.
    async fn with_grandchild(dir: &Path, extra: &str) -> (AppProcess, u32) {
        let script = format!("{extra} sleep 300 & echo $! > grandchild.pid; echo ready; wait");
        let process = AppProcess::start(sh(dir, "family", &script)).unwrap();
        let pid_file = dir.join("grandchild.pid");
        until("the grandchild's pid", || {
            std::fs::read_to_string(&pid_file).is_ok_and(|s| s.ends_with('\n'))
        })
        .await;
        let grandchild: u32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(alive(grandchild));
        (process, grandchild)
    }

    #[tokio::test]
    async fn the_log_holds_both_streams_after_a_started_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut process = AppProcess::start(sh(
            dir.path(),
            "web",
            "echo to-stdout; echo to-stderr >&2; exit 0",
        ))
        .unwrap();
        until("the process to end", || process.exited().is_some()).await;
        let log = log_of(&process);
        let first = log.lines().next().unwrap();
        assert!(
            first.starts_with(&format!("== started web (pid {}) at ", process.pid())),
            "{log}"
        );
        assert!(log.contains("to-stdout\n"), "{log}");
        assert!(log.contains("to-stderr\n"), "{log}");
        assert_eq!(process.last_log_lines(1).len(), 1);
    }

    #[tokio::test]
    async fn the_env_is_added_to_the_labs_own() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = sh(
            dir.path(),
            "web",
            "echo \"x=$IDEMLAB_X pwd=$(pwd)\"; echo \"path=$PATH\"",
        );
        config.env = vec![("IDEMLAB_X".into(), "hello".into())];
        let mut process = AppProcess::start(config).unwrap();
        until("the process to end", || process.exited().is_some()).await;
        let log = log_of(&process);
        let cwd = dir.path().canonicalize().unwrap();
        assert!(
            log.contains(&format!("x=hello pwd={}\n", cwd.display())),
            "{log}"
        );
        let path = std::env::var("PATH").unwrap();
        assert!(log.contains(&format!("path={path}\n")), "{log}");
    }

    #[tokio::test]
    async fn kill_takes_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let (mut process, grandchild) = with_grandchild(dir.path(), "").await;
        let leader = process.pid();
        process.kill();
        assert!(!alive(leader));
        until("the grandchild to die", || !alive(grandchild)).await;
        assert_eq!(process.exited(), None, "a kill by the lab is no crash");
        let log = log_of(&process);
        assert!(
            log.contains(&format!("== killed family (pid {leader}) at ")),
            "{log}"
        );
    }

    #[tokio::test]
    async fn drop_kills_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let (process, grandchild) = with_grandchild(dir.path(), "").await;
        let leader = process.pid();
        drop(process);
        assert!(!alive(leader));
        until("the grandchild to die", || !alive(grandchild)).await;
    }

    #[tokio::test]
    async fn restart_starts_a_new_life_with_the_same_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut process =
            AppProcess::start(sh(dir.path(), "worker", "echo life; sleep 300")).unwrap();
        let first = process.pid();
        until("the first life's output", || {
            log_of(&process).contains("life\n")
        })
        .await;
        process.kill();
        process.restart().unwrap();
        let second = process.pid();
        assert_ne!(first, second);
        assert!(alive(second));
        assert_eq!(process.exited(), None);
        until("the second life's output", || {
            log_of(&process).matches("life\n").count() == 2
        })
        .await;
        let log = log_of(&process);
        assert!(
            log.contains(&format!("== restarted worker (pid {second}) at ")),
            "{log}"
        );
        // Restarting a running process kills it first: never two.
        process.restart().unwrap();
        assert!(!alive(second));
        assert!(alive(process.pid()));
    }

    #[tokio::test]
    async fn stop_sends_term_first() {
        let dir = tempfile::tempdir().unwrap();
        let script = "trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.05; done";
        let mut process = AppProcess::start(sh(dir.path(), "web", script)).unwrap();
        until("the trap to be set", || {
            log_of(&process).contains("ready\n")
        })
        .await;
        let began = Instant::now();
        process.stop_within(Duration::from_secs(5)).await;
        assert!(began.elapsed() < Duration::from_secs(4), "it ended on TERM");
        let log = log_of(&process);
        assert!(log.contains("got TERM\n"), "{log}");
        assert!(log.contains("== stopped web (pid "), "{log}");
        assert!(!log.contains("killed, still running"), "{log}");
        assert_eq!(process.exited(), None);
    }

    #[tokio::test]
    async fn stop_kills_a_process_that_ignores_term_after_the_grace() {
        let dir = tempfile::tempdir().unwrap();
        let (mut process, grandchild) = with_grandchild(dir.path(), "trap '' TERM;").await;
        let leader = process.pid();
        let began = Instant::now();
        process.stop_within(Duration::from_millis(300)).await;
        assert!(began.elapsed() >= Duration::from_millis(300));
        assert!(!alive(leader));
        until("the grandchild to die", || !alive(grandchild)).await;
        let log = log_of(&process);
        assert!(
            log.contains(" UTC: killed, still running 0.3 s after SIGTERM\n"),
            "{log}"
        );
    }

    #[tokio::test]
    async fn exited_reports_a_crash_with_its_status() {
        let dir = tempfile::tempdir().unwrap();
        let mut running = AppProcess::start(sh(dir.path(), "web", "sleep 300")).unwrap();
        let mut crashing = AppProcess::start(sh(dir.path(), "worker", "exit 3")).unwrap();
        until("the crash", || crashing.exited().is_some()).await;
        assert_eq!(crashing.exited().as_deref(), Some("exited with status 3"));
        assert_eq!(running.exited(), None);
        signal_group(running.pid(), GroupSignal::Term);
        until("the signal's death", || running.exited().is_some()).await;
        assert_eq!(
            running.exited().as_deref(),
            Some("was killed by signal 15 (SIGTERM)")
        );
    }

    #[test]
    fn free_ports_are_below_the_ephemeral_range_and_free() {
        for _ in 0..20 {
            let port = free_port();
            if let Some(low) = ephemeral_low() {
                assert!((BELOW_EPHEMERAL_FROM..low).contains(&port), "{port}");
            }
            std::net::TcpListener::bind(("127.0.0.1", port)).expect("free");
        }
    }

    #[tokio::test]
    async fn wait_ready_fails_at_once_when_the_process_exits() {
        let dir = tempfile::tempdir().unwrap();
        let script = "echo booting; echo 'cannot load config.ru' >&2; exit 1";
        let mut process = AppProcess::start(sh(dir.path(), "web", script)).unwrap();
        let url = format!("http://127.0.0.1:{}/", free_port());
        let began = Instant::now();
        let error = process
            .wait_ready(&url, Duration::from_secs(30))
            .await
            .unwrap_err();
        assert!(began.elapsed() < Duration::from_secs(10), "{error}");
        assert!(
            error.starts_with(&format!("web exited with status 1 before {url} answered")),
            "{error}"
        );
        assert!(error.ends_with("\n    cannot load config.ru"), "{error}");
    }

    #[tokio::test]
    async fn wait_ready_gives_up_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let mut process =
            AppProcess::start(sh(dir.path(), "web", "echo listening; sleep 300")).unwrap();
        until("its output", || log_of(&process).contains("listening\n")).await;
        let url = format!("http://127.0.0.1:{}/", free_port());
        let began = Instant::now();
        let error = process
            .wait_ready(&url, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(began.elapsed() >= Duration::from_millis(300));
        assert!(
            error.starts_with(&format!("web did not answer at {url} within 0.3 s (")),
            "{error}"
        );
        assert!(error.ends_with("\n    listening"), "{error}");
    }

    /// A server that hangs up on its first two connections (not ready),
    /// then answers 503: any status is ready.
    #[tokio::test]
    async fn wait_ready_polls_until_the_server_answers_with_any_status() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                if counted.fetch_add(1, Ordering::SeqCst) < 2 {
                    continue; // dropped: the connection closes unanswered
                }
                let mut buffer = [0u8; 1024];
                let _ = stream.read(&mut buffer).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let mut process = AppProcess::start(sh(dir.path(), "web", "sleep 300")).unwrap();
        process
            .wait_ready(&url, Duration::from_secs(10))
            .await
            .unwrap();
        assert!(connections.load(Ordering::SeqCst) >= 3);
    }

    #[tokio::test]
    async fn bad_commands_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = sh(dir.path(), "web", "");
        config.argv = vec!["idemlab-no-such-program".into(), "-b".into()];
        assert_eq!(
            AppProcess::start(config.clone()).unwrap_err(),
            "cannot start web: `idemlab-no-such-program` not found on PATH"
        );
        let log = std::fs::read_to_string(&config.log).unwrap();
        assert!(
            log.ends_with("\n== web did not start: `idemlab-no-such-program` not found on PATH\n"),
            "{log}"
        );
        config.argv = vec!["./bin/puma".into()];
        let error = AppProcess::start(config.clone()).unwrap_err();
        assert!(
            error.starts_with("cannot start web: `./bin/puma` not found (in "),
            "{error}"
        );
        config.argv = Vec::new();
        assert_eq!(
            AppProcess::start(config.clone()).unwrap_err(),
            "cannot start web: its command is empty"
        );
        config.argv = vec!["sh".into()];
        config.cwd = dir.path().join("missing");
        let error = AppProcess::start(config).unwrap_err();
        assert!(error.ends_with("missing is not a directory"), "{error}");
    }

    #[test]
    fn last_log_lines_reads_only_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("long.log");
        let text: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, text).unwrap();
        assert_eq!(last_lines(&path, 2), vec!["line 19998", "line 19999"]);
        assert_eq!(
            last_lines(&dir.path().join("none.log"), 2),
            Vec::<String>::new()
        );
        let short = dir.path().join("short.log");
        std::fs::write(&short, "only\n").unwrap();
        assert_eq!(last_lines(&short, 5), vec!["only"]);
    }
}
