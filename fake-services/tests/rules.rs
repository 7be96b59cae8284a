//! One rule at a time, over real HTTP: adding, removing and moving a rule
//! (JSON and the behaviour page's forms) leaves every other rule's counters
//! alone; bad indexes and bad rules are refused saying what was wrong; the
//! page lists the rules in words with their buttons and says what each
//! field of the add-rule form means.

use fake_services_test_support as common;

use common::{error_mentions, send_json, spawn, spawn_with, TestFakes};
use fake_services::http::HttpOptions;
use fake_services::Service;
use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION};
use serde_json::{json, Value};

/// What a browser sends with a form submission.
const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Submits a form to `path` as a browser does, without following the
/// redirect.
async fn submit(tf: &TestFakes, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    no_redirects()
        .post(tf.url(path))
        .header(ACCEPT, BROWSER_ACCEPT)
        .form(form)
        .send()
        .await
        .unwrap()
}

/// Each payments rule's (mode, hits, remaining calls), in order.
async fn counters(tf: &TestFakes) -> Vec<(String, u64, Value)> {
    let behavior = tf.behavior(Service::Payments).await;
    behavior["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["mode"].as_str().unwrap().to_string(),
                r["state"]["hits"].as_u64().unwrap(),
                r["state"]["remaining_calls"].clone(),
            )
        })
        .collect()
}

fn rule(mode: &str, hits: u64, left: Value) -> (String, u64, Value) {
    (mode.to_string(), hits, left)
}

async fn charge_status(tf: &TestFakes, order_id: u64) -> u16 {
    tf.charge(order_id).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn adding_moving_and_removing_a_rule_keeps_the_other_rules_counters() {
    let tf = spawn().await;
    tf.set_behavior(
        Service::Payments,
        json!({"faults": [{"mode": "crash", "calls": 3, "operations": ["charge"]}]}),
    )
    .await;
    assert_eq!(charge_status(&tf, 1).await, 503);
    assert_eq!(counters(&tf).await, [rule("crash", 1, json!(2))]);

    let (status, view) = send_json(
        tf.client
            .post(tf.url("/payments/behavior/rules"))
            .json(&json!({"mode": "throttle", "operations": ["search"]})),
    )
    .await;
    assert_eq!(status, 201, "{view}");
    assert_eq!(view["faults"][1]["mode"], "throttle");
    assert_eq!(
        counters(&tf).await,
        [rule("crash", 1, json!(2)), rule("throttle", 0, Value::Null)]
    );

    // The throttle above the crash: the crash still has 2 calls left.
    let (status, view) = send_json(
        tf.client
            .post(tf.url("/payments/behavior/rules/1/move"))
            .json(&json!({"to": 0})),
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        counters(&tf).await,
        [rule("throttle", 0, Value::Null), rule("crash", 1, json!(2))]
    );
    assert_eq!(
        charge_status(&tf, 2).await,
        503,
        "charges pass the throttle"
    );
    assert_eq!(counters(&tf).await[1], rule("crash", 2, json!(1)));

    let (status, _) = send_json(tf.client.delete(tf.url("/payments/behavior/rules/0"))).await;
    assert_eq!(status, 200);
    assert_eq!(counters(&tf).await, [rule("crash", 2, json!(1))]);
    assert_eq!(charge_status(&tf, 3).await, 503, "the last of its 3 calls");
    assert_eq!(charge_status(&tf, 4).await, 201, "spent");

    // The search lag alone: the rule stays as it was.
    let (status, view) = send_json(
        tf.client
            .post(tf.url("/payments/behavior/search_lag"))
            .json(&json!({"search_lag_ms": 40})),
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["search_lag_ms"], 40);
    assert_eq!(counters(&tf).await, [rule("crash", 3, json!(0))]);
}

#[tokio::test]
async fn bad_indexes_and_bad_rules_are_refused_saying_what_was_wrong() {
    let tf = spawn().await;
    tf.set_behavior(
        Service::Payments,
        json!({"faults": [{"mode": "crash", "calls": 2}]}),
    )
    .await;
    assert_eq!(charge_status(&tf, 1).await, 503);

    let (status, body) = send_json(tf.client.delete(tf.url("/payments/behavior/rules/5"))).await;
    assert_eq!(status, 404);
    assert!(
        error_mentions(&body, "no rule 5: the rules are numbered 0 to 0"),
        "{body}"
    );
    let (status, body) =
        send_json(tf.client.delete(tf.url("/payments/behavior/rules/first"))).await;
    assert_eq!(status, 400);
    assert!(error_mentions(&body, "whole number"), "{body}");
    assert!(error_mentions(&body, "`first`"), "{body}");

    let moves = [
        (json!({"to": 1}), "to", "from 0 to 0, got 1"),
        (json!({"to": -1}), "to", "invalid value"),
        (json!({}), "body", "missing field `to`"),
        (json!({"to": 0, "by": 1}), "by", "unknown field"),
    ];
    for (body, field, words) in moves {
        let (status, answer) = send_json(
            tf.client
                .post(tf.url("/payments/behavior/rules/0/move"))
                .json(&body),
        )
        .await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert_eq!(answer["field"], field, "{body}: {answer}");
        assert!(error_mentions(&answer, words), "{body}: {answer}");
    }
    let (status, answer) = send_json(
        tf.client
            .post(tf.url("/payments/behavior/rules/3/move"))
            .json(&json!({"to": 0})),
    )
    .await;
    assert_eq!(status, 404, "{answer}");

    let adds = [
        (
            json!({"mode": "crash", "sleep_ms": 5}),
            "faults[1].sleep_ms",
        ),
        (json!({"mode": "explode"}), "faults[1].mode"),
        (json!({"mode": "crash", "calls": 0}), "faults[1].calls"),
        (json!({"calls": 1}), "faults[1]"),
    ];
    for (body, field) in adds {
        let (status, answer) = send_json(
            tf.client
                .post(tf.url("/payments/behavior/rules"))
                .json(&body),
        )
        .await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert_eq!(answer["field"], field, "{body}: {answer}");
    }
    let (status, answer) = send_json(
        tf.client
            .post(tf.url("/payments/behavior/rules"))
            .header(CONTENT_TYPE, "application/json")
            .body("{\"mode\":"),
    )
    .await;
    assert_eq!(
        (status, &answer["field"]),
        (422, &json!("body")),
        "{answer}"
    );
    let (status, answer) = send_json(
        tf.client
            .post(tf.url("/payments/behavior/search_lag"))
            .json(&json!({"search_lag_ms": -5})),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["field"], "search_lag_ms");

    // None of that changed the rule or its counters.
    assert_eq!(counters(&tf).await, [rule("crash", 1, json!(1))]);
    assert_eq!(tf.behavior(Service::Payments).await["search_lag_ms"], 0);
}

#[tokio::test]
async fn the_rule_routes_need_the_control_token() {
    let tf = spawn_with(HttpOptions {
        control_token: Some("s3cret".into()),
        ..HttpOptions::default()
    })
    .await;
    let crash = json!({"mode": "crash"});
    let refused = [
        tf.client
            .post(tf.url("/payments/behavior/rules"))
            .json(&crash),
        tf.client.delete(tf.url("/payments/behavior/rules/0")),
        tf.client
            .post(tf.url("/payments/behavior/rules/0/move"))
            .json(&json!({"to": 0})),
        tf.client
            .post(tf.url("/payments/behavior/search_lag"))
            .json(&json!({"search_lag_ms": 1})),
        tf.client
            .post(tf.url("/payments/behavior/rules"))
            .form(&[("token", "wrong"), ("mode_0", "crash")]),
    ];
    for request in refused {
        let (status, body) = send_json(request).await;
        assert_eq!(status, 401, "{body}");
        assert!(error_mentions(&body, "token"), "{body}");
    }
    let (status, _) = send_json(
        tf.client
            .post(tf.url("/payments/behavior/rules"))
            .bearer_auth("s3cret")
            .json(&crash),
    )
    .await;
    assert_eq!(status, 201);
    let response = submit(
        &tf,
        "/payments/behavior/rules/0/remove",
        &[("token", "s3cret")],
    )
    .await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()[LOCATION],
        "/payments/behavior?token=s3cret",
        "the token is carried back to the page"
    );
    let (_, behavior) = send_json(
        tf.client
            .get(tf.url("/payments/behavior"))
            .bearer_auth("s3cret"),
    )
    .await;
    assert_eq!(behavior["faults"], json!([]));
}

#[tokio::test]
async fn rule_forms_from_another_site_are_refused() {
    let tf = spawn().await;
    let response = no_redirects()
        .post(tf.url("/payments/behavior/rules"))
        .header("origin", "https://evil.example")
        .form(&[("mode_0", "crash")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(tf.behavior(Service::Payments).await["faults"], json!([]));
}

/// The `action` of the page's form that holds the field `name`.
fn action_of_form_with(page: &str, name: &str) -> String {
    let field = page
        .find(&format!("name=\"{name}\""))
        .unwrap_or_else(|| panic!("no field {name}: {page}"));
    let form = page[..field].rfind("<form ").unwrap();
    let form = &page[form..field];
    assert!(!form.contains("</form>"), "{name} is in a form");
    let start = form.find("action=\"").unwrap() + "action=\"".len();
    form[start..][..form[start..].find('"').unwrap()].to_string()
}

#[tokio::test]
async fn the_walkthroughs_form_adds_a_crash_rule_for_one_call() {
    let tf = spawn().await;
    let page = tf.page("/email/behavior").await;
    // Choose mode crash, calls 1, and Save.
    assert!(
        page.contains("<select id=\"mode_0\" name=\"mode_0\">"),
        "{page}"
    );
    assert!(
        page.contains("<option value=\"crash\">crash</option>"),
        "{page}"
    );
    assert!(page.contains("name=\"calls_0\""), "{page}");
    assert!(page.contains("<button>Save</button>"), "{page}");
    let action = action_of_form_with(&page, "calls_0");
    assert_eq!(action, action_of_form_with(&page, "mode_0"));
    let save = page[page.find("name=\"calls_0\"").unwrap()..]
        .find("<button>Save</button>")
        .unwrap();
    assert!(
        !page[page.find("name=\"calls_0\"").unwrap()..][..save].contains("</form>"),
        "Save submits the rule's form"
    );
    // Every operation ticked, as a browser would send them.
    let response = submit(
        &tf,
        &action,
        &[
            ("mode_0", "crash"),
            ("calls_0", "1"),
            ("probability_0", ""),
            ("operations_0", "send"),
            ("operations_0", "search"),
        ],
    )
    .await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()[LOCATION], "/email/behavior");
    let behavior = tf.behavior(Service::Email).await;
    assert_eq!(
        behavior["faults"],
        json!([{"mode": "crash", "calls": 1, "state": {
            "hits": 0, "remaining_calls": 1, "expires_at_ms": null, "seed": null, "spent": false
        }}])
    );
    let page = tf.page("/email/behavior").await;
    assert!(
        page.contains(
            "crash: answer 503 with no effect on the next 1 call (send, search) — 1 left"
        ),
        "{page}"
    );
}

#[tokio::test]
async fn the_page_lists_the_rules_in_order_in_words_with_their_buttons() {
    let tf = spawn().await;
    let page = tf.page("/payments/behavior").await;
    assert!(page.contains("No rules: every call is answered"), "{page}");
    assert!(
        page.contains(fake_services::style::STYLE),
        "the one stylesheet"
    );
    assert!(
        page.contains("<nav><a href=\"/\">idemlab fake services</a>"),
        "{page}"
    );
    assert!(page.contains("<a href=\"/email/ui\">Email</a>"), "{page}");

    tf.set_behavior(
        Service::Payments,
        json!({"faults": [
            {"mode": "crash", "calls": 3, "operations": ["charge"]},
            {"mode": "slow", "sleep_ms": 250, "for_ms": 60000},
            {"mode": "throttle", "calls": 1, "retry_after_s": 9},
        ]}),
    )
    .await;
    assert_eq!(charge_status(&tf, 1).await, 503);
    let page = tf.page("/payments/behavior").await;
    let row = |i: usize| {
        let start = page.find(&format!("<tr id=\"rule-{i}\"")).unwrap();
        let rest = &page[start..];
        rest[..rest.find("</tr>").unwrap()].to_string()
    };
    let first = row(0);
    assert!(
        first.contains("crash: answer 503 with no effect on the next 3 calls (charge) — 2 left"),
        "{first}"
    );
    assert!(first.contains("<td>2 of 3</td>"), "{first}");
    assert!(first.contains("<td>never</td>"), "{first}");
    assert!(first.contains("/payments/behavior/rules/0/move"), "{first}");
    assert!(
        first.contains("Move down") && !first.contains("Move up"),
        "{first}"
    );
    assert!(
        first.contains("/payments/behavior/rules/0/remove"),
        "{first}"
    );
    let second = row(1);
    assert!(
        second.contains("slow: hold each call 250 ms, then let the next rule decide, on every call (charge, search), within 60000 ms of being set"),
        "{second}"
    );
    assert!(second.contains("<td>in 1.0 min</td>"), "{second}");
    assert!(
        second.contains("Move up") && second.contains("Move down"),
        "{second}"
    );
    let third = row(2);
    assert!(
        third.contains("throttle: answer 429 with Retry-After: 9 s and no effect on the next 1 call (charge, search) — 1 left"),
        "{third}"
    );
    assert!(
        third.contains("Move up") && !third.contains("Move down"),
        "{third}"
    );

    // Spent rules stay listed, greyed.
    tf.clock.advance(60_000);
    let page = tf.page("/payments/behavior").await;
    assert!(
        page.contains("<tr id=\"rule-1\" class=\"spent\">"),
        "{page}"
    );
    assert!(
        page.contains("spent: its 60000 ms window closed after 0 calls"),
        "{page}"
    );
}

#[tokio::test]
async fn the_page_buttons_move_and_remove_one_rule_and_keep_the_counters() {
    let tf = spawn().await;
    tf.set_behavior(
        Service::Payments,
        json!({"faults": [{"mode": "crash", "calls": 3, "operations": ["charge"]}]}),
    )
    .await;
    assert_eq!(charge_status(&tf, 1).await, 503);
    let response = submit(
        &tf,
        "/payments/behavior/rules",
        &[("mode_1", "drop-before"), ("operations_1", "search")],
    )
    .await;
    assert_eq!(response.status(), 303);
    let response = submit(&tf, "/payments/behavior/rules/1/move", &[("to", "0")]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()[LOCATION], "/payments/behavior");
    assert_eq!(
        counters(&tf).await,
        [
            rule("drop-before", 0, Value::Null),
            rule("crash", 1, json!(2))
        ]
    );
    let response = submit(&tf, "/payments/behavior/rules/0/remove", &[]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(counters(&tf).await, [rule("crash", 1, json!(2))]);

    let response = submit(
        &tf,
        "/payments/behavior/search_lag",
        &[("search_lag_ms", "40")],
    )
    .await;
    assert_eq!(response.status(), 303);
    assert_eq!(tf.behavior(Service::Payments).await["search_lag_ms"], 40);
    assert_eq!(counters(&tf).await, [rule("crash", 1, json!(2))]);

    // Bad buttons: the page again, saying what was wrong.
    let response = submit(&tf, "/payments/behavior/rules/4/remove", &[]).await;
    assert_eq!(response.status(), 404);
    let html = response.text().await.unwrap();
    assert!(html.contains("Not saved: there is no rule 4"), "{html}");
    let response = submit(&tf, "/payments/behavior/rules/0/move", &[("to", "up")]).await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("<code>to</code>: must be a whole number from 0, got `up`"),
        "{html}"
    );
    let response = submit(
        &tf,
        "/payments/behavior/search_lag",
        &[("search_lag_ms", "soon")],
    )
    .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("value=\"soon\""),
        "what was typed is kept: {html}"
    );
    assert_eq!(counters(&tf).await, [rule("crash", 1, json!(2))]);
}

#[tokio::test]
async fn a_refused_new_rule_shows_why_with_what_was_typed() {
    let tf = spawn().await;
    let response = submit(
        &tf,
        "/payments/behavior/rules",
        &[
            ("mode_0", "throttle"),
            ("calls_0", "two"),
            ("retry_after_s_0", "5"),
        ],
    )
    .await;
    assert_eq!(response.status(), 422);
    assert!(response.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = response.text().await.unwrap();
    assert!(
        html.contains("Not saved: <code>faults[0].calls</code>"),
        "{html}"
    );
    assert!(html.contains("name=\"calls_0\" value=\"two\""), "{html}");
    assert!(
        html.contains("name=\"retry_after_s_0\" value=\"5\""),
        "{html}"
    );
    assert!(
        html.contains("<option value=\"throttle\" selected>"),
        "{html}"
    );

    let response = submit(
        &tf,
        "/payments/behavior/rules",
        &[("mode_0", ""), ("calls_0", "1")],
    )
    .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("<code>faults[0].mode</code>: choose a mode for the new rule"),
        "{html}"
    );
    assert_eq!(tf.behavior(Service::Payments).await["faults"], json!([]));
}

#[tokio::test]
async fn the_add_form_says_what_each_field_means_for_the_chosen_mode() {
    let tf = spawn().await;
    // Every field, with the modes that use it.
    let page = tf.page("/payments/behavior").await;
    for name in [
        "calls_0",
        "probability_0",
        "seed_0",
        "for_ms_0",
        "sleep_ms_0",
        "status_0",
        "retry_after_s_0",
    ] {
        assert!(page.contains(&format!("name=\"{name}\"")), "{name}: {page}");
    }
    assert!(page.contains("slow only: how long each call is held, in ms, before the next rule decides (default 1000)"), "{page}");
    assert!(
        page.contains(
            "throttle only: the Retry-After header&#x27;s seconds on the 429 (default 1)"
        ),
        "{page}"
    );
    assert!(
        page.contains("every mode: which calls it applies to: charge, search"),
        "{page}"
    );
    assert!(
        page.contains("<option value=\"\" selected>(choose one)</option>"),
        "{page}"
    );

    // One mode: its fields only, said for it.
    let page = tf.page("/payments/behavior?mode=throttle").await;
    assert!(
        page.contains("<option value=\"throttle\" selected>"),
        "{page}"
    );
    assert!(page.contains("name=\"retry_after_s_0\""), "{page}");
    assert!(!page.contains("name=\"sleep_ms_0\""), "{page}");
    assert!(!page.contains("name=\"status_0\""), "{page}");
    assert!(
        page.contains("Not used by <code>throttle</code>: sleep_ms, status."),
        "{page}"
    );
    assert!(
        page.contains("how many of the next matching calls it throttles"),
        "{page}"
    );
    let page = tf.page("/payments/behavior?mode=send-then-crash").await;
    assert!(
        page.contains("the 5xx status answered after the charge happened (default 503)"),
        "{page}"
    );

    let response = tf
        .client
        .get(tf.url("/payments/behavior?mode=explode"))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        error_mentions(
            &body,
            "`explode` is not a mode; the modes are crash, throttle"
        ),
        "{body}"
    );
}
