//! Every template of a target file becomes what it names: a toy process
//! records its arguments and environment, the placing command's id carries
//! `{n}` and `{quantity}`, and the test holds each value to what it must be.

use crate::harness::*;

const SCENARIO: &str = r#"
name = "every template"
orders = [{ count = 2, quantity = 3 }]

[expect]
charges_per_order = 1
orders = "all-complete"
"#;

#[test]
fn every_template_is_filled_with_what_it_names() {
    if !need_redis() {
        return;
    }
    let target = Target::toy("templates");
    let scenario = target.scenario("templates.toml", SCENARIO);
    let outcome = check(&target, &[&scenario], &[]);
    outcome.assert_passed();
    let run = outcome.only_run();

    // {n} and {quantity}, in [place_order]: the app's ids are built of them.
    assert_eq!(
        run.placed(),
        [(1, "ord-1-q3".to_string()), (2, "ord-2-q3".to_string())],
        "{}",
        run.story()
    );

    let files = files_starting(&target.folder().join("out"), "recorder-");
    assert_eq!(files.len(), 1, "one recorder life: {files:?}");
    let seen = recorded(&files[0]);

    // {fakes}: the fake services whose ledgers the run was checked against
    // (the orders' charges are there), the same in [env] and in argv.
    let fakes = value(&seen, "fakes");
    assert!(fakes.starts_with("http://127.0.0.1:"), "{fakes}");
    assert_eq!(value(&seen, "env_fakes"), fakes);
    assert_eq!(run.performed("payments", "ord-1-q3").len(), 1);

    // {redis}: a private redis-server, up while the processes run.
    let redis = value(&seen, "redis");
    assert!(redis.starts_with("redis://127.0.0.1:"), "{redis}");
    assert_eq!(value(&seen, "redis_ping"), "PONG");

    // {port} is the process's own, {port.web} the web process's, where it
    // answers.
    let own: u16 = value(&seen, "port").parse().unwrap();
    let web: u16 = value(&seen, "web").parse().unwrap();
    assert_ne!(own, web);
    assert_ne!(fakes, format!("http://127.0.0.1:{web}"));
    assert_eq!(value(&seen, "web_answers"), "200");

    // {dir}: the target file's folder, which is also every process's cwd.
    let dir = target.folder().display().to_string();
    assert_eq!(value(&seen, "dir"), dir);
    assert_eq!(value(&seen, "cwd"), dir);

    // {run_dir}: a fresh folder of the run's own under --logs, named for
    // the scenario, removed once the run passed.
    let run_dir = value(&seen, "run_dir");
    assert_eq!(value(&seen, "env_run_dir"), run_dir);
    let logs = outcome.logs.path().display().to_string();
    assert!(
        run_dir.starts_with(&format!("{logs}/templates-")),
        "{run_dir} under {logs}"
    );
    assert!(
        !std::path::Path::new(run_dir).exists(),
        "{run_dir} outlived a passing run"
    );

    // {lab}: the lab binary that runs the check.
    assert_eq!(value(&seen, "lab"), lab_binary().display().to_string());

    // `{{` and `}}` are braces; a process's own `env` wins over `[env]`.
    assert_eq!(value(&seen, "braces"), "{not a template}");
    assert_eq!(value(&seen, "env_whose"), "the recorder's own");

    // Nothing the run started outlives it: the recorder, nor its child.
    for pid in ["pid", "child_pid"] {
        assert!(
            gone(value(&seen, pid)),
            "the recorder's {pid} outlived the run"
        );
    }
}

#[test]
fn a_failing_run_keeps_its_run_dir_and_lists_every_log_in_it() {
    if !need_redis() {
        return;
    }
    let target = Target::toy("templates");
    // Two charges per order are expected, so the run fails and keeps its logs.
    let scenario = target.scenario(
        "kept.toml",
        &SCENARIO.replace("charges_per_order = 1", "charges_per_order = 2"),
    );
    let outcome = check(&target, &[&scenario], &[]);
    outcome.assert_failed();
    let run = outcome.only_run();
    let seen = recorded(&files_starting(&target.folder().join("out"), "recorder-")[0]);
    let run_dir = std::path::PathBuf::from(value(&seen, "run_dir"));
    assert!(run_dir.is_dir(), "{} was not kept", run_dir.display());
    assert!(
        run_dir.join("redis-server.log").is_file(),
        "the private Redis logs in the run's folder too"
    );
    let logs = run.logs();
    for process in ["web", "recorder"] {
        let (_, path) = logs
            .iter()
            .find(|(p, _)| p == process)
            .unwrap_or_else(|| panic!("no {process} log in {logs:?}"));
        assert_eq!(path.parent(), Some(run_dir.as_path()), "{logs:?}");
    }
    let recorder = run.log("recorder");
    assert!(recorder.contains("== started recorder (pid "), "{recorder}");
    assert!(recorder.contains("== stopped recorder"), "{recorder}");
    // The report lists the private Redis's log too, though the Redis is
    // gone by the time the report is written.
    let redis = run.log("redis");
    assert!(redis.contains("Ready to accept connections"), "{redis}");
}
