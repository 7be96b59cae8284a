//! Both ways of placing an order (a command, an HTTP request) and every way
//! of reading the app's id (`n`, `stdout`, `location`, `json:PATH`): the id
//! shows in the timeline's "placed (order number N; the app's id is X)" moment, and
//! a violation names the order by it.

use crate::harness::*;

/// Two orders, each charged twice by the toy app (`TOY_CHARGES=2`).
const DOUBLE_CHARGE: &str = r#"
name = "the toy app charges twice"
orders = [{ count = 2 }]

[expect]
violation = "charges_per_order"
"#;

/// The inline toy target, its placing command and `id` edited.
fn inline(argv_id: &str, format: &str, id: &str) -> Target {
    Target::toy("inline")
        .edit(
            r#""ord-{n}", "plain"]"#,
            &format!(r#""{argv_id}", "{format}"]"#),
        )
        .edit(r#"id = "stdout""#, &format!(r#"id = "{id}""#))
}

fn assert_ids(target: &Target, want: [&str; 2]) {
    let scenario = target.scenario("double.toml", DOUBLE_CHARGE);
    let outcome = check_with_env(target, &[&scenario], &[], &[("TOY_CHARGES", "2")]);
    outcome.assert_passed();
    let run = outcome.only_run();
    assert_eq!(
        run.placed(),
        [(1, want[0].to_string()), (2, want[1].to_string())],
        "{}",
        run.story()
    );
    assert_eq!(
        run.violations(),
        want.map(|id| ("charges_per_order".to_string(), Some(id.to_string()))),
        "{}",
        outcome.explain()
    );
    for id in want {
        assert_eq!(run.performed("payments", id).len(), 2, "{}", run.story());
    }
}

#[test]
fn a_command_read_by_its_last_line() {
    assert_ids(&inline("ord-{n}", "plain", "stdout"), ["ord-1", "ord-2"]);
}

#[test]
fn a_command_is_not_read_by_a_json_field() {
    // `json:PATH` reads an HTTP answer; a command's output is read by
    // `stdout`. The file says so before anything starts.
    let target = inline("J{n}", "json", "json:order.id");
    let scenario = target.scenario("double.toml", DOUBLE_CHARGE);
    let outcome = check(&target, &[&scenario], &[]);
    assert_eq!(outcome.code, Some(2), "{}", outcome.explain());
    let text = std::fs::read_to_string(&target.path).unwrap();
    let line = text.lines().position(|l| l.starts_with("id = ")).unwrap() + 1;
    assert!(
        outcome.stderr.starts_with(&format!(
            "error: {}:{line}:6: `id = \"location\"` and `id = \"json:…\"` read an HTTP answer",
            target.path.display()
        )),
        "{}",
        outcome.stderr
    );
}

#[test]
fn a_command_that_prints_no_id_is_a_clear_failure() {
    let target = inline("ord-{n}", "none", "stdout");
    let scenario = target.scenario("double.toml", DOUBLE_CHARGE);
    let outcome = check(&target, &[&scenario], &[]);
    outcome.assert_failed();
    let run = outcome.only_run();
    let why = run.unfinished().expect("unfinished");
    assert!(
        why.starts_with("placing order 1: ") && why.contains("the command printed nothing"),
        "{why}"
    );
}

#[test]
fn an_http_json_answer_read_by_a_field_that_is_not_the_number() {
    // The "app" is a `lab fakes` of its own: the order's id is its charge's.
    let target = Target::toy("http");
    let scenario = target.scenario(
        "charge.toml",
        "name = \"ids from JSON\"\norders = [{ count = 2 }]\n[expect]\ncharges_per_order = 1\n",
    );
    let outcome = check(&target, &[&scenario], &[]);
    // The lab's own fakes saw no charge: both orders were never charged.
    outcome.assert_failed();
    let run = outcome.only_run();
    let placed = run.placed();
    assert_eq!(placed.len(), 2, "{}", run.story());
    for (_, id) in &placed {
        assert!(id.starts_with("ch_"), "{}", run.story());
    }
    assert_ne!(placed[0].1, placed[1].1);
    assert_eq!(
        run.violations(),
        placed
            .iter()
            .map(|(_, id)| ("charges_per_order".to_string(), Some(id.clone())))
            .collect::<Vec<_>>(),
        "{}",
        outcome.explain()
    );
}

#[test]
fn a_match_path_that_names_no_placed_order_is_pointed_out() {
    let target = Target::toy("inline").edit(
        "[settle]",
        "[match]\ncharge = \"metadata.order_ref\"\n\n[settle]",
    );
    let scenario = target.scenario(
        "match.toml",
        "name = \"wrong match\"\norders = [{ count = 1 }]\n[expect]\ncharges_per_order = 1\n",
    );
    let outcome = check(&target, &[&scenario], &[]);
    outcome.assert_failed();
    let json = outcome.json();
    let message = json["scenarios"][0]["runs"][0]["verdict"]["violations"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        message,
        "order ord-1 was never charged, but the payments ledger has 1 record and none names a placed order (no record has a value at /metadata/order_ref): check the target's `[match]`",
        "{}",
        outcome.explain()
    );
}

/// The email provider sends, then answers 503: the naive lab pipeline's
/// retried job charges again.
const EMAIL_SEND_THEN_CRASH: &str = r#"
name = "email sends, then answers 503"
orders = [{ count = 2 }]

[[faults]]
service = "email"
mode = "send-then-crash"
calls = 1

[expect]
violation = "charges_per_order"
"#;

#[test]
fn an_http_form_post_read_by_its_location() {
    let Some(target) = Target::lab_pipeline("naive") else {
        return;
    };
    let scenario = target.scenario("email.toml", EMAIL_SEND_THEN_CRASH);
    let outcome = check(&target, &[&scenario], &[]);
    outcome.assert_passed();
    let run = outcome.only_run();
    // `lab web` redirects to /orders/ID; its ids count from 1.
    assert_eq!(
        run.placed(),
        [(1, "1".to_string()), (2, "2".to_string())],
        "{}",
        run.story()
    );
    let violations = run.violations();
    assert_eq!(violations.len(), 1, "{}", outcome.explain());
    let (invariant, order) = &violations[0];
    assert_eq!(invariant, "charges_per_order");
    let order = order.as_deref().expect("the violation names its order");
    assert_eq!(run.performed("payments", order).len(), 2, "{}", run.story());
}

#[test]
fn an_http_json_post_read_by_a_field() {
    let Some(target) = Target::lab_pipeline("safe") else {
        return;
    };
    // Two charges are expected of an order the safe pipeline charges once:
    // the run fails, and the violation names the order by the id read from
    // the JSON answer.
    let scenario = target.scenario(
        "twice.toml",
        "name = \"two charges expected\"\norders = [{ count = 1 }]\n[expect]\ncharges_per_order = 2\n",
    );
    let outcome = check(&target, &[&scenario], &[]);
    outcome.assert_failed();
    let run = outcome.only_run();
    assert_eq!(run.placed(), [(1, "1".to_string())], "{}", run.story());
    assert_eq!(
        run.violations(),
        [("charges_per_order".to_string(), Some("1".to_string()))],
        "{}",
        outcome.explain()
    );
    assert_eq!(run.performed("payments", "1").len(), 1, "{}", run.story());
}
