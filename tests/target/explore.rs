//! `lab explore --target` over real processes: the naive sidekiq-shop's
//! double charge found, shrunk and written as a file `lab check --target`
//! replays, and the safe variant holding over a small search.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

/// The longest one exploration here may take: far more than it needs (the
/// bench finds and shrinks the double charge in about a minute), so only a
/// hang reaches it.
const EXPLORE_WITHIN: Duration = Duration::from_secs(600);

/// What one `lab explore --target` said.
struct Explored {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Explored {
    fn explain(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// `lab explore --target TARGET --logs DIR` plus `extra`, with a deadline.
fn explore(target: &Target, extra: &[&str]) -> Explored {
    let logs = tempfile::tempdir().unwrap();
    let out = logs.path().join(".stdout");
    let err = logs.path().join(".stderr");
    let mut child = Command::new(lab_binary())
        .arg("explore")
        .arg("--target")
        .arg(&target.path)
        .arg("--logs")
        .arg(logs.path())
        .args(extra)
        .current_dir(target.folder())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("running the lab binary");
    let began = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if began.elapsed() > EXPLORE_WITHIN {
            // SIGINT: the lab stops the app's processes on its way out.
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let _ = child.wait();
            panic!(
                "lab explore did not end within {EXPLORE_WITHIN:?}; stderr:\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Explored {
        code: status.code(),
        stdout: std::fs::read_to_string(&out).unwrap(),
        stderr: std::fs::read_to_string(&err).unwrap(),
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}

#[test]
fn the_naive_shops_double_charge_is_found_shrunk_and_replayed() {
    if !need_sidekiq_shop() {
        return;
    }
    let target = Target::at("examples/sidekiq-shop/naive.toml".as_ref());
    let found = target.folder().join("found.toml");
    let explored = explore(&target, &["--seed", "1", "--out", path_str(&found)]);
    assert_eq!(explored.code, Some(1), "{}", explored.explain());
    let written = std::fs::read_to_string(&found).unwrap();
    assert!(
        explored.stdout.contains(&written),
        "the file is printed too:\n{}",
        explored.explain()
    );
    assert!(
        written.contains("violation = \"charges_per_order\""),
        "{written}"
    );
    assert!(written.contains("orders = [{ count = 1 }]"), "{written}");
    let faults = written.matches("[[faults]]").count();
    assert!((1..=2).contains(&faults), "{faults} faults:\n{written}");
    assert!(written.contains(" of 3 runs"), "{written}");
    for lab_only in ["pipeline", "concurrency", "reminders", "seed ="] {
        assert!(
            !written.lines().any(|l| l.starts_with(lab_only)),
            "{lab_only}:\n{written}"
        );
    }
    assert!(
        explored.stdout.contains("was charged 2 times"),
        "the report:\n{}",
        explored.explain()
    );

    // The file documents the bug: `lab check --target` passes on it.
    let outcome = check(&target, &[&found], &[]);
    outcome.assert_passed();
}

/// The safe shop holds over a small search. Its worker deaths are left out
/// (the target's worker is not `role = "worker"` here): open-source
/// Sidekiq's basic fetch loses a killed worker's job even in the safe
/// variant (`scenarios/safe/08-…`), which the search would find at once.
#[test]
fn the_safe_shop_holds_over_a_small_search() {
    if !need_sidekiq_shop() {
        return;
    }
    let target = safe_target_without_worker_deaths();
    let explored = explore(&target, &["--cases", "3", "--seed", "7"]);
    assert_eq!(explored.code, Some(0), "{}", explored.explain());
    assert!(
        explored.stdout.contains("no violation in 3 cases"),
        "{}",
        explored.explain()
    );
}

/// The safe shop's target file, its worker deaths left out (see
/// [`the_safe_shop_holds_over_a_small_search`]).
fn safe_target_without_worker_deaths() -> Target {
    let dir = repo().join("examples/sidekiq-shop");
    let text = std::fs::read_to_string(dir.join("safe.toml")).unwrap();
    assert!(text.contains("role = \"worker\"\n") && text.contains("{dir}"));
    let text = text
        .replace("role = \"worker\"\n", "")
        .replace("{dir}", path_str(&dir));
    Target::write("safe.toml", &text)
}

/// `--max-time` ends a search that would run far longer (20 cases of
/// seconds each) with fewer cases tried, says so, and still exits 0.
#[test]
fn max_time_cuts_a_long_search_short() {
    if !need_sidekiq_shop() {
        return;
    }
    let target = safe_target_without_worker_deaths();
    let explored = explore(
        &target,
        &["--cases", "20", "--seed", "7", "--max-time", "20s"],
    );
    assert_eq!(explored.code, Some(0), "{}", explored.explain());
    let line = explored
        .stdout
        .lines()
        .find(|l| l.starts_with("no violation in "))
        .unwrap_or_else(|| panic!("no summary: {}", explored.explain()));
    let tried: u32 = line["no violation in ".len()..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no case count in {line:?}"));
    assert!((1..20).contains(&tried), "{line}");
    assert!(
        line.ends_with(&format!(": --max-time ran out after {tried} of 20 cases")),
        "{line}"
    );
}

/// The naive shop's target file with `{dir}` filled in (so that a copy
/// runs the example where it is) and `[env]` marking its processes with
/// `mark`.
fn marked_naive_target(mark: &str) -> Target {
    let dir = repo().join("examples/sidekiq-shop");
    let text = std::fs::read_to_string(dir.join("naive.toml")).unwrap();
    assert!(text.contains("[env]\n") && text.contains("{dir}"));
    let text = text.replace("{dir}", path_str(&dir)).replace(
        "[env]\n",
        &format!("[env]\nIDEMLAB_TEST_MARK = \"{mark}\"\n"),
    );
    Target::write("naive.toml", &text)
}

/// The pids of the processes whose environment holds `mark`.
fn marked_processes(mark: &str) -> Vec<u32> {
    let needle = format!("IDEMLAB_TEST_MARK={mark}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|var| var == needle.as_bytes()))
        })
        .collect()
}

/// Waits for `what` to hold, up to `within`.
fn wait_until(within: Duration, mut what: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if what() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    what()
}

#[test]
fn ctrl_c_stops_the_apps_processes_and_exits_130() {
    if !need_sidekiq_shop() || !std::path::Path::new("/proc/self/environ").exists() {
        return;
    }
    let mark = format!("explore-ctrl-c-{}", std::process::id());
    let target = marked_naive_target(&mark);
    let mut child = Command::new(lab_binary())
        .args(["explore", "--target"])
        .arg(&target.path)
        .args(["--seed", "1"])
        .current_dir(target.folder())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running the lab binary");
    let up = wait_until(Duration::from_secs(120), || {
        marked_processes(&mark).len() >= 2
    });
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let exited = wait_until(Duration::from_secs(60), || {
        child.try_wait().ok().flatten().is_some()
    });
    if !exited {
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    assert!(up, "the app's processes never came up: {stderr}");
    assert!(exited, "lab explore did not end after Ctrl-C: {stderr}");
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let gone = wait_until(Duration::from_secs(30), || {
        marked_processes(&mark).is_empty()
    });
    assert!(
        gone,
        "left running: {:?}\n{stderr}",
        marked_processes(&mark)
    );
}
