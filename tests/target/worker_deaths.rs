//! `worker = "die-after"`: the target's worker processes are killed the
//! moment a fake service has performed the effect, before the app hears the
//! answer, and started again after `restart_after_ms`. With basic fetch (the
//! naive lab pipeline) the job dies with the process: the order keeps the
//! effect and gets nothing after it. With reliable fetch and keys (the safe
//! pipeline) the restarted worker finishes the order, exactly once.

use crate::harness::*;

/// One kill of a run, read from its timeline moment.
struct Kill {
    at_ms: u64,
    /// The record whose effect it came after.
    record: String,
    what: String,
}

fn kills(run: &Run) -> Vec<Kill> {
    run.moments("killed (SIGKILL) after ")
        .into_iter()
        .map(|m| {
            let after = m.what.split_once(" after ").unwrap().1;
            let record = after.split(' ').nth(1).unwrap().to_string();
            Kill {
                at_ms: m.at_ms,
                record,
                what: m.what,
            }
        })
        .collect()
}

/// The record id of a "SERVICE ID performed…" moment.
fn record_id(moment: &Moment) -> String {
    moment.what.split(' ').nth(1).unwrap().to_string()
}

fn die_after(step: &str, extra: &str, orders: u32, expect: &str) -> String {
    format!(
        "name = \"the worker dies after {step}\"\norders = [{{ count = {orders} }}]\n\n[[faults]]\nworker = \"die-after\"\nstep = \"{step}\"\n{extra}\n\n[expect]\n{expect}\n"
    )
}

fn against(example: &str, file: &str, text: &str) -> Option<Outcome> {
    let target = Target::lab_pipeline(example)?;
    let scenario = target.scenario(file, text);
    Some(check(&target, &[&scenario], &[]))
}

/// The kill came after `service`'s record for order 1 and before anything
/// later of that order: the record is on the timeline no later than the
/// kill, and the kill names it.
fn assert_killed_after(run: &Run, service: &str) -> Kill {
    let kills = kills(run);
    assert_eq!(kills.len(), 1, "{}", run.story());
    let kill = kills.into_iter().next().unwrap();
    let records = run.performed(service, "1");
    assert_eq!(records.len(), 1, "{}", run.story());
    assert_eq!(kill.record, record_id(&records[0]), "{}", run.story());
    assert!(records[0].at_ms <= kill.at_ms, "{}", run.story());
    assert!(
        kill.what.starts_with("worker killed (SIGKILL)") && kill.what.contains("(the first time)"),
        "{}",
        kill.what
    );
    kill
}

#[test]
fn killed_after_the_charge_basic_fetch_loses_the_job() {
    let Some(outcome) = against(
        "naive",
        "charge.toml",
        &die_after("charge", "", 1, "violation = \"lost_jobs\""),
    ) else {
        return;
    };
    outcome.assert_passed();
    let run = outcome.only_run();
    assert_killed_after(&run, "payments");
    assert!(run.performed("email", "1").is_empty(), "{}", run.story());
    assert!(
        run.performed("fulfillment", "1").is_empty(),
        "{}",
        run.story()
    );
    assert_eq!(
        run.violations(),
        [("lost_jobs".to_string(), Some("1".to_string()))]
    );
}

#[test]
fn killed_after_the_email_the_order_is_charged_and_emailed_only() {
    let Some(outcome) = against(
        "naive",
        "email.toml",
        &die_after("email", "", 1, "violation = \"lost_jobs\""),
    ) else {
        return;
    };
    outcome.assert_passed();
    let run = outcome.only_run();
    let kill = assert_killed_after(&run, "email");
    let charges = run.performed("payments", "1");
    assert_eq!(charges.len(), 1, "never charged again:\n{}", run.story());
    assert!(charges[0].at_ms <= kill.at_ms);
    assert!(
        run.performed("fulfillment", "1").is_empty(),
        "{}",
        run.story()
    );
}

#[test]
fn killed_after_the_fulfillment_the_order_has_every_effect_once() {
    let Some(outcome) = against(
        "naive",
        "fulfillment.toml",
        &die_after(
            "fulfillment",
            "",
            1,
            "charges_per_order = 1\nemails_per_order = 1\nfulfillments_per_order = 1\nlost_jobs = 0",
        ),
    ) else {
        return;
    };
    outcome.assert_passed();
    let run = outcome.only_run();
    assert_killed_after(&run, "fulfillment");
}

#[test]
fn every_step_is_one_run_per_effect_each_killed_after_it() {
    let Some(outcome) = against(
        "naive",
        "every.toml",
        &die_after("every", "", 1, "charges_per_order = 1"),
    ) else {
        return;
    };
    outcome.assert_passed();
    let json = outcome.json();
    let runs = json["scenarios"][0]["runs"].as_array().unwrap();
    let steps: Vec<&str> = runs.iter().map(|r| r["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["charge", "email", "fulfillment"]);
    for (i, service) in ["payments", "email", "fulfillment"].iter().enumerate() {
        let run = outcome.run(i);
        assert_killed_after(&run, service);
        // Each effect up to the one killed after, none after it.
        let order = ["payments", "email", "fulfillment"];
        for (j, other) in order.iter().enumerate() {
            let n = run.performed(other, "1").len();
            assert_eq!(
                n,
                usize::from(j <= i),
                "{other} in run {i}:\n{}",
                run.story()
            );
        }
    }
}

#[test]
fn calls_two_kills_after_the_second_charge() {
    let Some(outcome) = against(
        "naive",
        "second.toml",
        &die_after("charge", "calls = 2", 2, "charges_per_order = 1"),
    ) else {
        return;
    };
    outcome.assert_passed();
    let run = outcome.only_run();
    let kills = kills(&run);
    assert_eq!(kills.len(), 1, "{}", run.story());
    assert!(
        kills[0].what.contains("(the second time)"),
        "{}",
        kills[0].what
    );
    // The timeline's charges in time order are the ledger's order (a
    // record is timed and its watcher told under the ledger's lock; equal
    // times keep the ledger's order), which is what the kill counts by.
    let charges: Vec<Moment> = run
        .timeline()
        .into_iter()
        .filter(|m| m.what.starts_with("payments ") && m.what.contains(" performed"))
        .collect();
    assert_eq!(charges.len(), 2, "{}", run.story());
    assert_eq!(kills[0].record, record_id(&charges[1]), "{}", run.story());
    assert!(charges[1].at_ms <= kills[0].at_ms, "{}", run.story());
}

#[test]
fn the_killed_worker_restarts_after_restart_after_ms_and_finishes_exactly_once() {
    let Some(outcome) = against(
        "safe",
        "restart.toml",
        &die_after(
            "charge",
            "restart_after_ms = 700",
            1,
            "charges_per_order = 1\nemails_per_order = 1\nfulfillments_per_order = 1\norders = \"all-complete\"\nlost_jobs = 0",
        ),
    ) else {
        return;
    };
    outcome.assert_passed();
    let run = outcome.only_run();
    let kill = assert_killed_after(&run, "payments");
    let restarted = run.moment("worker restarted");
    assert!(
        restarted.at_ms >= kill.at_ms + 700,
        "restarted {} ms after the kill:\n{}",
        restarted.at_ms - kill.at_ms,
        run.story()
    );
    // The job came back and the rest of the order happened after the restart.
    for service in ["email", "fulfillment"] {
        let records = run.performed(service, "1");
        assert_eq!(records.len(), 1, "{}", run.story());
        assert!(records[0].at_ms >= restarted.at_ms, "{}", run.story());
    }
}

#[test]
fn a_toy_worker_is_killed_after_the_charge_restarted_and_leaves_nothing_behind() {
    // The toy worker removes a job from its queue when it takes it, as
    // basic fetch does: killed after the charge, the order is lost.
    let target = Target::toy("queued");
    let scenario = target.scenario(
        "toy.toml",
        &die_after(
            "charge",
            "restart_after_ms = 200",
            1,
            "violation = \"lost_jobs\"",
        ),
    );
    let outcome = check(&target, &[&scenario], &[]);
    outcome.assert_passed();
    let run = outcome.only_run();
    let kill = run.moment("worker killed (SIGKILL) after charge ch_");
    let charges = run.performed("payments", "ord-1");
    assert_eq!(charges.len(), 1, "{}", run.story());
    assert!(charges[0].at_ms <= kill.at_ms, "{}", run.story());
    assert!(
        run.performed("email", "ord-1").is_empty(),
        "{}",
        run.story()
    );
    let restarted = run.moment("worker restarted");
    assert!(restarted.at_ms >= kill.at_ms + 200, "{}", run.story());
    // Two lives of the worker, both gone once the check is over.
    let pids = std::fs::read_to_string(target.folder().join("out/worker.pids")).unwrap();
    let pids: Vec<&str> = pids.lines().collect();
    assert_eq!(pids.len(), 2, "{pids:?}");
    for pid in pids {
        assert!(gone(pid), "worker {pid} outlived the run");
    }
}

#[test]
fn every_worker_process_is_killed_and_restarted_and_no_other() {
    let target = Target::toy("queued");
    let mut text = std::fs::read_to_string(&target.path).unwrap();
    text.push_str(
        "\n[[process]]\nname = \"sidecar\"\ncommand = [\"sh\", \"{dir}/toy.sh\", \"record\", \"sidecar\"]\nrole = \"worker\"\n\n[[process]]\nname = \"web\"\ncommand = [\"sh\", \"{dir}/toy.sh\", \"record\", \"web\"]\n",
    );
    std::fs::write(&target.path, text).unwrap();
    let scenario = target.scenario(
        "two.toml",
        &die_after(
            "charge",
            "restart_after_ms = 100",
            1,
            "violation = \"lost_jobs\"",
        ),
    );
    let outcome = check(&target, &[&scenario], &[]);
    outcome.assert_passed();
    let run = outcome.only_run();
    run.moment("worker, sidecar killed (SIGKILL) after charge ch_");
    run.moment("worker, sidecar restarted");
    let out = target.folder().join("out");
    let sidecar = files_starting(&out, "sidecar-");
    assert_eq!(sidecar.len(), 2, "two lives of the sidecar: {sidecar:?}");
    let web = files_starting(&out, "web-");
    assert_eq!(web.len(), 1, "the web process is no worker: {web:?}");
    for file in sidecar.iter().chain(&web) {
        let seen = recorded(file);
        for pid in ["pid", "child_pid"] {
            assert!(gone(value(&seen, pid)), "{pid} of {}", file.display());
        }
    }
}

#[test]
fn a_killed_workers_log_tells_each_life() {
    // The lost order fails `all-complete`, so the run keeps its logs.
    let target = Target::toy("queued");
    let scenario = target.scenario(
        "lives.toml",
        &die_after(
            "charge",
            "restart_after_ms = 100",
            1,
            "orders = \"all-complete\"",
        ),
    );
    let outcome = check(&target, &[&scenario], &[]);
    outcome.assert_failed();
    let log = outcome.only_run().log("worker");
    let lines = [
        "== started worker (pid ",
        "toy worker: took order ord-1",
        "== killed worker (pid ",
        "== restarted worker (pid ",
        "== stopped worker (pid ",
    ];
    let mut from = 0;
    for line in lines {
        let at = log[from..]
            .find(line)
            .unwrap_or_else(|| panic!("no {line:?} after byte {from} of:\n{log}"));
        from += at + line.len();
    }
    // Killed before the charge's answer reached it, so it never said so.
    assert!(
        !log.contains("toy: charged ord-1"),
        "the worker heard the answer:\n{log}"
    );
}

#[test]
fn a_restarted_worker_with_a_ready_url_is_waited_for_again() {
    // The worker answers its `ready` URL a second after it starts; the
    // placing command charges, which kills it.
    let target = Target::write(
        "ready.toml",
        r#"
name = "a worker that is slow to start"
effects = ["charge"]

[env]
FAKE_API_URL = "{fakes}"

[[process]]
name = "worker"
command = ["sh", "{dir}/toy.sh", "late", "{lab}", "{port}"]
ready = "http://127.0.0.1:{port}/"
role = "worker"

[place_order]
command = ["sh", "{dir}/toy.sh", "place", "ord-{n}", "plain"]
id = "stdout"

[settle]
quiet_ms = 200
timeout_s = 20
"#,
    );
    std::fs::copy(
        repo().join("tests/data/targets/toy.sh"),
        target.folder().join("toy.sh"),
    )
    .unwrap();
    let scenario = target.scenario(
        "ready.toml",
        &die_after(
            "charge",
            "restart_after_ms = 100",
            1,
            "charges_per_order = 1",
        ),
    );
    let outcome = check(&target, &[&scenario], &[]);
    outcome.assert_passed();
    let run = outcome.only_run();
    let kill = run.moment("worker killed (SIGKILL) after charge ch_");
    let restarted = run.moment("worker restarted");
    assert!(
        restarted.at_ms >= kill.at_ms + 100 + 1000,
        "restarted {} ms after the kill, before it could answer:\n{}",
        restarted.at_ms - kill.at_ms,
        run.story()
    );
}
