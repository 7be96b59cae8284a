//! A process of the app that dies by itself during a run: the run stops at
//! once and says which process, how it ended and what it last wrote, instead
//! of waiting for a settle that a dead app may never reach.

use std::time::Duration;

use crate::harness::*;

#[test]
fn a_process_that_dies_during_the_run_fails_it_with_its_status_and_log() {
    let target = Target::toy("dies");
    let scenario = target.scenario(
        "dies.toml",
        "name = \"the mailer dies\"\norders = [{ count = 1 }]\n[expect]\ncharges_per_order = 1\n",
    );
    let outcome = check(&target, &[&scenario], &[]);
    outcome.assert_failed();
    // quiet_ms is 5 s: a run that ended sooner did not wait to settle.
    assert!(
        outcome.took < Duration::from_secs(5),
        "took {:?}",
        outcome.took
    );
    let run = outcome.only_run();
    let why = run.unfinished().expect("unfinished");
    assert!(
        why.starts_with("process mailer exited with status 7 by itself during the run"),
        "{why}"
    );
    assert!(why.contains("toy: booting"), "{why}");
    assert!(
        why.contains("toy: fatal: cannot open config/database.yml"),
        "{why}"
    );
    // Its log is kept, with the lab's own lines around the process's.
    let log = run.log("mailer");
    assert!(log.contains("== started mailer (pid "), "{log}");
    assert!(log.contains("toy: fatal"), "{log}");
}

#[test]
fn a_process_whose_program_is_missing_fails_the_run_naming_it() {
    let target = Target::toy("dies").edit(
        r#"command = ["sh", "{dir}/toy.sh", "die", "7"]"#,
        r#"command = ["idemlab-no-such-mailer", "--queue", "mail"]"#,
    );
    let scenario = target.scenario(
        "missing.toml",
        "name = \"no mailer\"\norders = [{ count = 1 }]\n[expect]\ncharges_per_order = 1\n",
    );
    let outcome = check(&target, &[&scenario], &[]);
    outcome.assert_failed();
    let run = outcome.only_run();
    let why = run.unfinished().expect("unfinished");
    assert_eq!(
        why,
        "cannot start mailer: `idemlab-no-such-mailer` not found on PATH",
        "{}",
        outcome.explain()
    );
    assert!(run.placed().is_empty(), "{}", run.story());
}

#[test]
fn a_process_that_ignores_sigterm_is_killed_after_the_grace() {
    let target = Target::toy("dies")
        .edit(
            r#"["sh", "{dir}/toy.sh", "die", "7"]"#,
            r#"["sh", "{dir}/toy.sh", "stubborn"]"#,
        )
        .edit("quiet_ms = 5000", "quiet_ms = 300");
    // Two charges expected of one: the run fails, so its logs are kept.
    let scenario = target.scenario(
        "stubborn.toml",
        "name = \"stubborn\"\norders = [{ count = 1 }]\n[expect]\ncharges_per_order = 2\n",
    );
    let outcome = check(&target, &[&scenario], &[]);
    outcome.assert_failed();
    // 5 s of grace after SIGTERM, then SIGKILL: the check still ends.
    assert!(
        outcome.took >= Duration::from_secs(5) && outcome.took < Duration::from_secs(15),
        "took {:?}",
        outcome.took
    );
    let log = outcome.only_run().log("mailer");
    assert!(
        log.contains("killed, still running 5 s after SIGTERM"),
        "{log}"
    );
}
