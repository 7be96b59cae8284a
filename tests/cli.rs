//! The `lab` binary as a user runs it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use idemlab_test_support::lab_binary::{lab_serve, serve_urls, Running};

fn lab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lab"))
}

#[test]
fn help_lists_the_commands() {
    let output = lab().arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for command in ["serve", "fakes", "reset"] {
        assert!(help.contains(command), "`{command}` missing from:\n{help}");
    }
}

#[test]
fn a_bad_bind_address_is_a_clear_error() {
    let output = lab()
        .args(["fakes", "--bind", "localhost"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("--bind"), "{stderr}");
    assert!(stderr.contains("localhost"), "{stderr}");
}

#[tokio::test]
async fn fakes_serves_on_the_address_it_prints() {
    let mut child = lab()
        .args(["fakes", "--bind", "127.0.0.1:0", "--seed", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _running = Running(Some(child));
    // The first line names the address; reading it waits for the server to
    // bind. The rest of the banner is left unread: the server must live on
    // even when nobody reads its output.
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().unwrap().unwrap();
    drop(lines);
    let url = first
        .strip_prefix("fake services listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let charge: serde_json::Value = reqwest::Client::new()
        .post(format!("{url}/payments/charge"))
        .header("accept", "application/json")
        .body(r#"{"amount_cents": 500, "metadata": {"order_id": 1}}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(charge["status"], "success");
    assert!(charge["charge_id"].as_str().unwrap().starts_with("ch_"));
}

#[test]
fn a_bad_allowed_host_is_a_clear_error() {
    for (value, says) in [
        ("fakes:3001", "without a port"),
        ("ev il", "not a host name"),
    ] {
        let output = lab()
            .args(["fakes", "--allowed-host", value])
            .env_remove("IDEMLAB_ALLOWED_HOSTS")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{value}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains("--allowed-host"), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
}

/// `GET url` with `Host: host`: its status.
async fn status_as(url: &str, host: &str) -> u16 {
    reqwest::Client::new()
        .get(url)
        .header("host", host)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// `lab serve` gives `--allowed-host` (and `IDEMLAB_ALLOWED_HOSTS`) to both
/// of its servers, and both refuse any other name.
#[tokio::test]
async fn serve_answers_to_its_allowed_hosts_on_both_servers() {
    let data_dir = std::env::temp_dir().join(format!("idemlab-hosts-{}", std::process::id()));
    let mut child = lab_serve(env!("CARGO_BIN_EXE_lab"), &data_dir)
        .args(["--allowed-host", "lab.test"])
        .env("IDEMLAB_ALLOWED_HOSTS", "ignored.test")
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let running = Running(Some(child));
    let (web, fakes) = serve_urls(&mut lines);
    let banner: Vec<String> = lines.by_ref().take(4).map(Result::unwrap).collect();
    assert!(
        banner
            .iter()
            .any(|l| l.contains("also answers as: lab.test")),
        "{banner:?}"
    );
    for base in [&web, &fakes] {
        let port = base.rsplit(':').next().unwrap();
        let url = format!("{base}/");
        assert_eq!(
            status_as(&url, &format!("lab.test:{port}")).await,
            200,
            "{base}"
        );
        assert_eq!(
            status_as(&url, &format!("localhost:{port}")).await,
            200,
            "{base}"
        );
        assert_eq!(
            status_as(&url, &format!("evil.example:{port}")).await,
            403,
            "{base}"
        );
        // The flag replaces the environment's list, as clap's env does.
        assert_eq!(
            status_as(&url, &format!("ignored.test:{port}")).await,
            403,
            "{base}"
        );
    }
    drop(running);
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[tokio::test]
async fn fakes_take_their_allowed_hosts_from_the_environment() {
    let mut child = lab()
        .args(["fakes", "--bind", "127.0.0.1:0"])
        .env("IDEMLAB_ALLOWED_HOSTS", "one.test, Two.Test")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _running = Running(Some(child));
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first
        .strip_prefix("fake services listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_string();
    let port = url.rsplit(':').next().unwrap();
    let ledger = format!("{url}/payments/ledger");
    for host in ["one.test", "two.test"] {
        assert_eq!(
            status_as(&ledger, &format!("{host}:{port}")).await,
            200,
            "{host}"
        );
    }
    assert_eq!(status_as(&ledger, &format!("three.test:{port}")).await, 403);
}

/// The README's demonstration, through the real binary: a monolithic job
/// without a charge key, an email provider that crashes once, and the order
/// is charged twice. Then `lab reset`, then Ctrl-C.
#[tokio::test]
async fn serve_shows_a_double_charge_then_resets_and_stops_on_ctrl_c() {
    let data_dir = std::env::temp_dir().join(format!("idemlab-cli-{}", std::process::id()));
    let mut child = lab_serve(env!("CARGO_BIN_EXE_lab"), &data_dir)
        .args(["--structure", "monolithic", "--charge", "none"])
        .args(["--time-scale", "0.001"])
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let running = Running(Some(child));
    let (web, fakes) = serve_urls(&mut lines);
    let http = reqwest::Client::new();
    let json = |request: reqwest::RequestBuilder| async move {
        let response = request
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json::<serde_json::Value>().await.unwrap())
    };
    let (status, _) = json(
        http.put(format!("{fakes}/email/behavior"))
            .body(r#"{"faults":[{"mode":"crash","calls":1}]}"#),
    )
    .await;
    assert_eq!(status, 200);
    let (status, order) = json(http.post(format!("{web}/orders")).json(&serde_json::json!({
        "product_id": 1, "quantity": 1, "email": "pat@example.com", "address": "1 Main St"
    })))
    .await;
    assert_eq!(status, 201, "{order}");
    let id = order["id"].as_i64().unwrap();
    // Wait (with a deadline) for the order to complete through its retry.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, order) = json(http.get(format!("{web}/orders/{id}"))).await;
        if order["state"] == "fulfilled" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order stuck: {order}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (_, charges) = json(http.get(format!("{fakes}/payments/charges?order_id={id}"))).await;
    assert_eq!(
        charges.as_array().unwrap().len(),
        2,
        "the double charge: {charges}"
    );

    let reset = lab().args(["reset", "--url", &web]).output().unwrap();
    assert!(
        reset.status.success(),
        "{}",
        String::from_utf8_lossy(&reset.stderr)
    );
    let (_, orders) = json(http.get(format!("{web}/orders"))).await;
    assert_eq!(orders["orders"].as_array().unwrap().len(), 0, "{orders}");
    let (_, ledger) = json(http.get(format!("{fakes}/payments/ledger"))).await;
    assert_eq!(ledger.as_array().unwrap().len(), 0);

    let mut child = running.take();
    let interrupted = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(interrupted.success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "a clean exit after Ctrl-C: {status}");
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// A scratch directory for one test, removed at the end.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("idemlab-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, name: &str, text: &str) -> std::path::PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const SAFE: &str = r#"
name = "safe"
orders = [{ count = 1 }]
[expect]
charges_per_order = 1
"#;

const WRONG: &str = include_str!("data/monolithic-claimed-safe.toml");

#[test]
fn check_passes_the_suite_and_prints_its_time() {
    let root = env!("CARGO_MANIFEST_DIR");
    let output = lab()
        .args(["check", &format!("{root}/scenarios")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.contains("as expected, 0 not, in"), "{last}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("01-happy-path.toml"), "{stdout}");
}

/// `lab check`'s table without its time column, which is the one thing
/// allowed to differ between runs.
fn without_times(table: &str) -> String {
    table
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [name, result, _time, rest @ ..] => format!("{name} {result} {}", rest.join(" ")),
                _ => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The suite's results in the files' order, whatever `--jobs` (and more
/// jobs than cores).
#[test]
fn check_gives_the_same_results_at_any_jobs() {
    let root = env!("CARGO_MANIFEST_DIR");
    let run = |jobs: &str| {
        let output = lab()
            .args(["check", &format!("{root}/scenarios"), "--jobs", jobs])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(0), "--jobs {jobs}: {stderr}");
        without_times(&String::from_utf8_lossy(&output.stdout))
    };
    let one = run("1");
    assert!(one.lines().count() > 30, "{one}");
    assert_eq!(run("2"), one, "--jobs 2");
    assert_eq!(run("5"), one, "--jobs 5");
}

#[test]
fn check_refuses_a_bad_jobs() {
    for (jobs, needle) in [("0", "0 jobs"), ("many", "not a number of jobs")] {
        let output = lab().args(["check", "--jobs", jobs]).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "--jobs {jobs}: {stderr}");
        assert!(stderr.contains(needle), "--jobs {jobs}: {stderr}");
    }
}

#[test]
fn check_exits_1_with_a_report_when_a_scenario_does_not_end_as_expected() {
    let scratch = Scratch::new("check-fail");
    let safe = scratch.write("safe.toml", SAFE);
    let wrong = scratch.write("wrong.toml", WRONG);
    let junit = scratch.0.join("report.xml");
    let output = lab()
        .arg("check")
        .args([&safe, &wrong])
        .args(["--format", "junit", "--output"])
        .arg(&junit)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains(r#"tests="2" failures="1""#), "{xml}");
    assert!(
        xml.contains(r#"<testcase classname="scenarios" name="safe.toml""#),
        "{xml}"
    );
    assert!(
        xml.contains("<failure message=\"expected no violation"),
        "{xml}"
    );
    assert!(xml.contains("order 1 was charged 2 times"), "{xml}");

    let output = lab()
        .arg("check")
        .arg(&wrong)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["failed"], 1);
    let violation = &report["scenarios"][0]["runs"][0]["verdict"]["violations"][0];
    assert_eq!(violation["invariant"], "charges_per_order");
    assert_eq!(violation["order_id"], 1);
}

#[test]
fn check_exits_2_naming_file_line_and_column_of_a_bad_scenario() {
    let scratch = Scratch::new("check-bad");
    let bad = scratch.write(
        "bad.toml",
        "name = \"bad\"\norders = [{ count = 1 }]\n[expect]\ncharges_per_order = 1\nsparkle = true\n",
    );
    let output = lab().arg("check").arg(&bad).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.toml:5:1"), "{stderr}");
    assert!(stderr.contains("sparkle"), "{stderr}");
    let missing = lab().args(["check", "no/such/dir"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn a_workers_default_code_version_names_the_git_commit() {
    let output = lab().args(["worker", "--help"]).output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=10", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8(o.stdout).unwrap().trim().to_string());
    let expected = match (std::env::var("IDEMLAB_GIT_COMMIT"), head) {
        (Ok(commit), _) if !commit.trim().is_empty() => format!("{version}+{}", commit.trim()),
        (_, Some(commit)) => format!("{version}+{commit}"),
        // Built outside a git checkout: the crate version alone.
        _ => version.to_string(),
    };
    assert!(
        help.contains(&format!("[default: {expected}]")),
        "expected the default code version {expected} in:\n{help}"
    );
}

/// The banner line of a `lab worker` started with `threads_flag`, read from
/// the worker itself (it reports its runtime's own count), then the worker
/// is stopped.
fn worker_banner(redis_url: &str, scratch: &Scratch, threads_flag: &[&str]) -> String {
    let database = format!("sqlite://{}/worker.db?mode=rwc", scratch.0.display());
    let child = lab()
        .args(["worker", "--redis", redis_url, "--database", &database])
        .args(["--fakes-url", "http://127.0.0.1:9"])
        .args(threads_flag)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("lab worker starts");
    let mut running = Running(Some(child));
    let stdout = running.0.as_mut().unwrap().stdout.take().unwrap();
    let first = BufReader::new(stdout)
        .lines()
        .next()
        .expect("the worker prints its banner")
        .unwrap();
    drop(running);
    first
}

#[test]
fn a_worker_runs_on_one_thread_unless_told_otherwise() {
    let Some(redis) = idemlab_test_support::servers::PrivateRedis::start(false) else {
        return;
    };
    let scratch = Scratch::new("worker-threads");
    let default = worker_banner(&redis.url(), &scratch, &[]);
    assert!(default.contains("jobs at once, 1 thread)"), "{default}");
    let three = worker_banner(&redis.url(), &scratch, &["--threads", "3"]);
    assert!(three.contains("jobs at once, 3 threads)"), "{three}");
    let refused = lab().args(["worker", "--threads", "0"]).output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--threads"), "{stderr}");
}

/// `lab explore --target`'s flags: each mistake exits 2 with a message that
/// names it, before anything runs.
#[test]
fn explore_target_refuses_bad_flags() {
    let root = env!("CARGO_MANIFEST_DIR");
    let target = format!("{root}/examples/sidekiq-shop/naive.toml");
    let scratch = Scratch::new("explore-target-flags");
    let broken = scratch.write(
        "broken.toml",
        "name = \"x\"\neffects = [\"charge\"]\n[[process]]\nname = \"web\"\ncommand = [\"web\"]\nrole = \"boss\"\n[place_order]\ncommand = [\"o\"]\n",
    );
    let broken = broken.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--target", &target, "--charge", "none"],
            "cannot be used with",
        ),
        (
            vec!["--target", &target, "--fetch", "basic"],
            "cannot be used with",
        ),
        (vec!["--tries", "3"], "--target"),
        (vec!["--confirm", "2"], "--target"),
        (vec!["--target", &target, "--max-time", "600"], "no unit"),
        (
            vec!["--target", &target, "--max-time", "10 parsecs"],
            "unknown unit",
        ),
        (vec!["--target", &target, "--tries", "0"], "--tries"),
        (
            vec!["--target", &target, "--out", "/nonexistent/dir/found.toml"],
            "does not exist",
        ),
        (
            vec!["--target", "/nonexistent/target.toml"],
            "/nonexistent/target.toml",
        ),
        (vec!["--target", broken], "broken.toml:6:"),
        (
            vec!["--target", &target, "--jobs", "2"],
            "cannot be used with",
        ),
    ];
    for (args, needle) in cases {
        let output = lab().arg("explore").args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

/// `--max-time` is a duration with its unit, for the pipeline too.
#[test]
fn explore_takes_max_time_with_a_unit() {
    let output = lab()
        .args([
            "explore",
            "--cases",
            "5",
            "--seed",
            "5",
            "--max-time",
            "10m",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("no violation in 5 cases"), "{stdout}");
}
