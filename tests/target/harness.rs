//! Running `lab check --target` as a user does, and reading what it says.
//!
//! A [`Target`] is a target file copied into a folder of the test's own
//! (with the toy app beside it when it is one of `tests/data/targets/`), so
//! that `{dir}` is that folder, a test may edit the file, and nothing a run
//! writes lands in the repository. [`check`] runs the real binary with a
//! deadline and a `--logs` folder of the test's own; an [`Outcome`] is its
//! exit code, stderr and JSON report.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// The longest any one `lab check` of these tests may take: far more than
/// any scenario here needs, so only a hang reaches it.
const CHECK_WITHIN: Duration = Duration::from_secs(90);

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The lab binary under test.
pub fn lab_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lab"))
}

/// Whether `program` runs (`--version`), for the tests that need it.
pub fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// `redis-server` on the PATH, or the test is skipped (failed under CI).
pub fn need_redis() -> bool {
    if have("redis-server") && have("redis-cli") {
        return true;
    }
    idemlab_test_support::servers::unavailable(
        "redis-server and redis-cli on the PATH (apt-get install redis-server)",
    );
    false
}

/// Ruby with Sinatra, Sidekiq and puma (the sidekiq-shop example), and
/// redis-server, or the test is skipped (failed under CI).
pub fn need_sidekiq_shop() -> bool {
    if !need_redis() {
        return false;
    }
    let ruby = Command::new("ruby")
        .args(["-e", "require 'sinatra/base'; require 'sidekiq'"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ruby && have("sidekiq") && have("puma") {
        return true;
    }
    idemlab_test_support::servers::unavailable(
        "ruby with sinatra and sidekiq, and puma (apt-get install ruby-sinatra ruby-sidekiq puma)",
    );
    false
}

/// A target file in a folder of the test's own.
pub struct Target {
    pub dir: TempDir,
    pub path: PathBuf,
}

impl Target {
    /// `tests/data/targets/NAME.toml`, with the toy app beside it.
    pub fn toy(name: &str) -> Target {
        assert!(
            have("curl"),
            "the toy app (tests/data/targets/toy.sh) calls the fake services with curl: install curl"
        );
        let data = repo().join("tests/data/targets");
        let target = Target::copy(&data.join(format!("{name}.toml")));
        std::fs::copy(data.join("toy.sh"), target.dir.path().join("toy.sh")).unwrap();
        target
    }

    /// The target file at `path` (relative to the repository) where it is,
    /// with a folder of the test's own for scenarios.
    pub fn at(path: &Path) -> Target {
        Target {
            dir: tempfile::tempdir().unwrap(),
            path: repo().join(path),
        }
    }

    /// A copy of `examples/lab-pipeline/EXAMPLE.toml` (the lab's own `lab
    /// web` and `lab worker` on a private Redis), or `None`, said, when
    /// there is no `redis-server`.
    pub fn lab_pipeline(example: &str) -> Option<Target> {
        need_redis().then(|| Target::copy(format!("examples/lab-pipeline/{example}.toml").as_ref()))
    }

    /// A copy of the target file at `path` (relative to the repository).
    pub fn copy(path: &Path) -> Target {
        let source = repo().join(path);
        let text = std::fs::read_to_string(&source)
            .unwrap_or_else(|e| panic!("reading {}: {e}", source.display()));
        Target::write(source.file_name().unwrap().to_str().unwrap(), &text)
    }

    /// A target file of this text.
    pub fn write(file_name: &str, text: &str) -> Target {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name);
        std::fs::write(&path, text).unwrap();
        Target { dir, path }
    }

    /// The file with `from` replaced by `to` (which must be in it: an
    /// edit that no longer applies must fail the test, not pass silently).
    pub fn edit(self, from: &str, to: &str) -> Target {
        let text = std::fs::read_to_string(&self.path).unwrap();
        assert!(
            text.contains(from),
            "{} has no {from:?} to edit",
            self.path.display()
        );
        std::fs::write(&self.path, text.replacen(from, to, 1)).unwrap();
        self
    }

    /// A scenario file of this text in the target's folder.
    pub fn scenario(&self, file_name: &str, text: &str) -> PathBuf {
        let folder = self.dir.path().join("scenarios");
        std::fs::create_dir_all(&folder).unwrap();
        let path = folder.join(file_name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Its folder (`{dir}`).
    pub fn folder(&self) -> &Path {
        self.dir.path()
    }
}

/// What one `lab check` said.
pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The `--logs` folder.
    pub logs: TempDir,
    /// How long the command took.
    pub took: Duration,
}

/// `lab check --target TARGET SCENARIOS… --format json --logs DIR`, plus
/// `extra` arguments.
pub fn check(target: &Target, scenarios: &[&Path], extra: &[&str]) -> Outcome {
    check_with_env(target, scenarios, extra, &[])
}

/// [`check`] with variables added to the lab's environment (which its
/// processes inherit).
pub fn check_with_env(
    target: &Target,
    scenarios: &[&Path],
    extra: &[&str],
    env: &[(&str, &str)],
) -> Outcome {
    let logs = tempfile::tempdir().unwrap();
    let out = logs.path().join(".stdout");
    let err = logs.path().join(".stderr");
    let mut command = Command::new(lab_binary());
    command
        .arg("check")
        .arg("--target")
        .arg(&target.path)
        .args(scenarios)
        .args(["--format", "json", "--logs"])
        .arg(logs.path())
        .args(extra)
        .envs(env.iter().copied())
        .current_dir(target.folder())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    let began = Instant::now();
    let mut child = command.spawn().expect("running the lab binary");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if began.elapsed() > CHECK_WITHIN {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "lab check did not end within {CHECK_WITHIN:?}; stderr:\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = began.elapsed();
    let outcome = Outcome {
        code: status.code(),
        stdout: std::fs::read_to_string(&out).unwrap(),
        stderr: std::fs::read_to_string(&err).unwrap(),
        logs,
        took,
    };
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(&err);
    outcome
}

impl Outcome {
    /// The JSON report.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// Exit code 0, or the whole report in the panic.
    pub fn assert_passed(&self) -> &Self {
        assert_eq!(self.code, Some(0), "{}", self.explain());
        self
    }

    /// Exit code 1 (a scenario did not end as expected).
    pub fn assert_failed(&self) -> &Self {
        assert_eq!(self.code, Some(1), "{}", self.explain());
        self
    }

    /// The report and stderr, for an assertion's message.
    pub fn explain(&self) -> String {
        format!(
            "exit {:?} after {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.took, self.stdout, self.stderr
        )
    }

    /// Run `run` of the report's only scenario.
    pub fn run(&self, run: usize) -> Run {
        let json = self.json();
        let scenarios = json["scenarios"].as_array().expect("scenarios");
        assert_eq!(scenarios.len(), 1, "{}", self.explain());
        Run(scenarios[0]["runs"][run].clone())
    }

    /// The report's only scenario's only run.
    pub fn only_run(&self) -> Run {
        let json = self.json();
        let runs = json["scenarios"][0]["runs"].as_array().expect("runs").len();
        assert_eq!(runs, 1, "{}", self.explain());
        self.run(0)
    }
}

/// One run of a scenario, from the JSON report.
#[derive(Debug, Clone)]
pub struct Run(pub Value);

/// One moment of a run's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Moment {
    pub at_ms: u64,
    pub order: Option<String>,
    pub what: String,
}

impl Run {
    /// Why it did not finish, if it did not.
    pub fn unfinished(&self) -> Option<String> {
        self.0["unfinished"].as_str().map(str::to_string)
    }

    pub fn timeline(&self) -> Vec<Moment> {
        self.0["timeline"]
            .as_array()
            .expect("timeline")
            .iter()
            .map(|m| Moment {
                at_ms: m["at_ms"].as_u64().unwrap(),
                order: m["order"].as_str().map(str::to_string),
                what: m["what"].as_str().unwrap().to_string(),
            })
            .collect()
    }

    /// The timeline as lines, for assertion messages.
    pub fn story(&self) -> String {
        self.timeline()
            .iter()
            .map(|m| format!("+{:>5} ms  {:?}  {}", m.at_ms, m.order, m.what))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The first moment whose text contains `text`.
    pub fn moment(&self, text: &str) -> Moment {
        self.moments(text)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no moment with {text:?} in:\n{}", self.story()))
    }

    /// Every moment whose text contains `text`, in time order.
    pub fn moments(&self, text: &str) -> Vec<Moment> {
        self.timeline()
            .into_iter()
            .filter(|m| m.what.contains(text))
            .collect()
    }

    /// The app's ids of the placed orders, from the "placed (order number
    /// N; the app's id is X)" moments, in N order.
    pub fn placed(&self) -> Vec<(u32, String)> {
        let mut placed: Vec<(u32, String)> = self
            .moments("placed (order number ")
            .iter()
            .map(|m| {
                let rest = m.what.strip_prefix("placed (order number ").unwrap();
                let rest = rest.strip_suffix(')').unwrap();
                let (n, id) = rest.split_once("; the app's id is ").unwrap();
                assert_eq!(m.order.as_deref(), Some(id), "{m:?}");
                (n.parse().unwrap(), id.to_string())
            })
            .collect();
        placed.sort();
        placed
    }

    /// The violations found: (invariant, order id as text).
    pub fn violations(&self) -> Vec<(String, Option<String>)> {
        self.0["verdict"]["violations"]
            .as_array()
            .expect("violations")
            .iter()
            .map(|v| {
                (
                    v["invariant"].as_str().unwrap().to_string(),
                    text(&v["order_id"]),
                )
            })
            .collect()
    }

    /// The successful effect records of `service` for `order` (performed,
    /// whatever the client was told), from the timeline.
    pub fn performed(&self, service: &str, order: &str) -> Vec<Moment> {
        self.timeline()
            .into_iter()
            .filter(|m| m.order.as_deref() == Some(order))
            .filter(|m| m.what.starts_with(&format!("{service} ")) && m.what.contains(" performed"))
            .collect()
    }

    /// The kept log files: (process, path).
    pub fn logs(&self) -> Vec<(String, PathBuf)> {
        self.0["logs"]
            .as_array()
            .expect("logs")
            .iter()
            .map(|l| {
                (
                    l["process"].as_str().unwrap().to_string(),
                    PathBuf::from(l["path"].as_str().unwrap()),
                )
            })
            .collect()
    }

    /// The kept log of `process`, read.
    pub fn log(&self, process: &str) -> String {
        let (_, path) = self
            .logs()
            .into_iter()
            .find(|(p, _)| p == process)
            .unwrap_or_else(|| panic!("no log of {process} in {:?}", self.logs()));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

/// A JSON string or number as text.
pub fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The `key=value` lines of a file a toy process recorded.
pub fn recorded(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The value of `key` in recorded lines.
pub fn value<'a>(lines: &'a [(String, String)], key: &str) -> &'a str {
    lines
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key}= in {lines:?}"))
}

/// The files in `dir` whose names start with `prefix`, sorted.
pub fn files_starting(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(prefix) && !n.ends_with(".tmp"))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// Whether process `pid` is gone (or a zombie waiting to be reaped), waited
/// for up to 5 s: the lab kills its processes' groups as it ends, and init
/// may take a moment to reap what was reparented to it.
pub fn gone(pid: &str) -> bool {
    let stat = format!("/proc/{pid}/stat");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let alive = std::fs::read_to_string(&stat)
            .is_ok_and(|s| !s.rsplit(") ").next().unwrap_or("").starts_with('Z'));
        if !alive {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
