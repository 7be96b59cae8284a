//! Input the services must refuse, and refuse well: oversized bodies, unknown
//! services and routes, invalid fault rules, bad `Idempotency-Key` headers,
//! missing control tokens, and the behaviour form's mistakes.

use fake_services_test_support as common;

use common::{charge_body, error_mentions, send_json, spawn, spawn_with, TestFakes};
use fake_services::http::HttpOptions;
use fake_services::Service;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use serde_json::{json, Value};

const TOKEN: &str = "s3cret";

/// What a browser sends with a form submission or a page load.
const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// A charge body, as text, whose `customer_id` is `len` characters of padding.
fn padded_charge(len: usize) -> String {
    let mut body = charge_body(1, 100);
    body["customer_id"] = json!("x".repeat(len));
    body.to_string()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Submits the payments behaviour form as a browser does, without following
/// the redirect.
async fn submit_behavior_form(tf: &TestFakes, form: &[(&str, &str)]) -> reqwest::Response {
    no_redirects()
        .post(tf.url("/payments/behavior"))
        .header(ACCEPT, BROWSER_ACCEPT)
        .form(form)
        .send()
        .await
        .unwrap()
}

/// `GET /payments/behavior` with the token as a bearer: status and JSON body.
async fn behavior_with_token(tf: &TestFakes) -> (u16, Value) {
    send_json(
        tf.client
            .get(tf.url("/payments/behavior"))
            .bearer_auth(TOKEN),
    )
    .await
}

async fn spawn_with_token() -> TestFakes {
    spawn_with(HttpOptions {
        control_token: Some(TOKEN.into()),
        ..HttpOptions::default()
    })
    .await
}

// ------------------------------------------------------------ sizes, routes

#[tokio::test]
async fn bodies_over_one_mebibyte_are_413() {
    let tf = spawn().await;
    let body = padded_charge((1 << 20) + 16);
    let (status, answer) = send_json(
        tf.client
            .post(tf.url("/payments/charge"))
            .header(CONTENT_TYPE, "application/json")
            .body(body.clone()),
    )
    .await;
    assert_eq!(status, 413);
    assert!(error_mentions(&answer, "larger than"), "{answer}");
    assert!(tf.ledger(Service::Payments).await.is_empty());

    let (status, answer) = send_json(
        tf.client
            .put(tf.url("/payments/behavior"))
            .header(CONTENT_TYPE, "application/json")
            .body(format!(
                r#"{{"faults":[],"search_lag_ms":1{}}}"#,
                "0".repeat(1 << 20)
            )),
    )
    .await;
    assert_eq!(status, 413);
    assert!(answer["error"].is_string(), "{answer}");

    // A body just under the limit is read (and charged).
    let small = padded_charge((1 << 20) - 200);
    assert!(small.len() < 1 << 20);
    let response = tf
        .client
        .post(tf.url("/payments/charge"))
        .header(CONTENT_TYPE, "application/json")
        .body(small)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(tf.ledger(Service::Payments).await.len(), 1);
}

#[tokio::test]
async fn unknown_services_are_404_naming_the_known_ones() {
    let tf = spawn().await;
    let requests = [
        tf.client.get(tf.url("/bank/behavior")),
        tf.client
            .put(tf.url("/bank/behavior"))
            .json(&json!({"faults": []})),
        tf.client
            .post(tf.url("/bank/behavior"))
            .form(&[("mode_0", "crash")]),
        tf.client.get(tf.url("/bank/ledger")),
        tf.client
            .get(tf.url("/bank/ui"))
            .header(ACCEPT, "text/html"),
        tf.client.get(tf.url("/bank/ui")),
    ];
    for request in requests {
        let (status, body) = send_json(request).await;
        assert_eq!(status, 404, "{body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains("bank"), "{error}");
        for known in ["payments", "email", "fulfillment", "error-catcher"] {
            assert!(error.contains(known), "{error} does not name {known}");
        }
    }
}

#[tokio::test]
async fn unknown_routes_are_404_json() {
    let tf = spawn().await;
    for (method, path) in [
        (reqwest::Method::GET, "/nowhere"),
        (reqwest::Method::POST, "/payments/refund"),
        (reqwest::Method::GET, "/payments/charge/extra"),
        (reqwest::Method::GET, "/bank/status"),
    ] {
        let response = tf
            .client
            .request(method.clone(), tf.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{method} {path}");
        assert!(response.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
        let body: Value = response.json().await.unwrap();
        assert!(error_mentions(&body, path), "{body}");
    }
}

// ------------------------------------------------------------- fault rules

#[tokio::test]
async fn invalid_fault_rules_are_422_and_change_nothing() {
    let tf = spawn().await;
    let previous = tf
        .set_behavior(
            Service::Payments,
            json!({
                "faults": [{"mode": "crash", "status": 502, "operations": ["search"]}],
                "search_lag_ms": 250,
            }),
        )
        .await;
    let (status, first_charge) = send_json(tf.charge(1)).await;
    assert_eq!(status, 201);

    let cases: [(&str, &str, Option<&str>); 10] = [
        (
            r#"{"faults":[{"mode":"explode"}]}"#,
            "faults[0].mode",
            Some("explode"),
        ),
        (
            r#"{"faults":[{"mode":"crash","probability":1.5}]}"#,
            "faults[0].probability",
            Some("1.5"),
        ),
        (
            r#"{"faults":[{"mode":"crash","calls":-1}]}"#,
            "faults[0].calls",
            None,
        ),
        (
            r#"{"faults":[{"mode":"crash","calls":0}]}"#,
            "faults[0].calls",
            None,
        ),
        (
            r#"{"faults":[{"mode":"crash","operations":["send"]}]}"#,
            "faults[0].operations[0]",
            Some("send"),
        ),
        (
            r#"{"faults":[{"mode":"crash","colour":"red"}]}"#,
            "faults[0].colour",
            Some("colour"),
        ),
        (r#"{"faults":[],"lag":5}"#, "lag", Some("lag")),
        (
            r#"{"faults":[{"mode":"crash""#,
            "body",
            Some("line 1 column"),
        ),
        (
            r#"{"faults":[{"mode":"crash",}]}"#,
            "body",
            Some("trailing comma"),
        ),
        (
            r#"{"faults":[]} and more"#,
            "body",
            Some("trailing characters"),
        ),
    ];
    for (body, field, mentions) in cases {
        let (status, answer) = send_json(
            tf.client
                .put(tf.url("/payments/behavior"))
                .header(CONTENT_TYPE, "application/json")
                .body(body),
        )
        .await;
        assert_eq!(status, 422, "{body}");
        let got = answer["field"]
            .as_str()
            .unwrap_or_else(|| panic!("{answer}"));
        assert_eq!(got, field, "{body}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(got), "{body}: {error}");
        if let Some(word) = mentions {
            assert!(error.contains(word), "{body}: {error}");
        }
    }

    // The behaviour in force is the one set before.
    let now = tf.behavior(Service::Payments).await;
    assert_eq!(now, previous);
    assert_eq!(now["search_lag_ms"], 250);
    assert_eq!(now["faults"].as_array().unwrap().len(), 1);
    // ... and still acts: searches crash with its status, charges go through.
    assert_eq!(tf.get_status("/payments/charges").await, 502);
    let (status, second_charge) = send_json(tf.charge(2)).await;
    assert_eq!(status, 201);

    let ledger = tf.ledger(Service::Payments).await;
    let ids: Vec<&Value> = ledger.iter().map(|r| &r["id"]).collect();
    assert_eq!(
        ids,
        [&first_charge["charge_id"], &second_charge["charge_id"]]
    );
}

#[tokio::test]
async fn the_behavior_form_shows_its_errors() {
    let tf = spawn().await;
    let response = submit_behavior_form(&tf, &[("mode_0", "crash"), ("calls_0", "abc")]).await;
    assert_eq!(response.status(), 422);
    assert!(response.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = response.text().await.unwrap();
    assert!(html.contains("Not saved"), "{html}");
    assert!(html.contains("faults[0].calls"), "{html}");
    let (_, behavior) = tf.get_json("/payments/behavior").await;
    assert_eq!(behavior["faults"], json!([]), "nothing was saved");

    let response = submit_behavior_form(
        &tf,
        &[
            ("mode_0", "crash"),
            ("calls_0", "2"),
            ("status_0", "504"),
            ("operations_0", "charge"),
            ("mode_1", ""),
            ("search_lag_ms", "40"),
        ],
    )
    .await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()[LOCATION], "/payments/behavior");

    let behavior = tf.behavior(Service::Payments).await;
    let faults = behavior["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 1, "{behavior}");
    assert_eq!(faults[0]["mode"], "crash");
    assert_eq!(faults[0]["calls"], 2);
    assert_eq!(faults[0]["status"], 504);
    assert_eq!(faults[0]["operations"], json!(["charge"]));
    assert_eq!(faults[0]["state"]["remaining_calls"], 2);
    assert_eq!(behavior["search_lag_ms"], 40);

    // The rule acts on the next charge.
    let response = tf.charge(1).send().await.unwrap();
    assert_eq!(response.status(), 504);
    assert!(tf.ledger(Service::Payments).await.is_empty());
}

// --------------------------------------------------------- Idempotency-Key

#[tokio::test]
async fn bad_idempotency_keys_are_400() {
    let tf = spawn().await;
    for key in [
        String::new(),
        "  ".into(),
        "\"\"".into(),
        "k".repeat(256),
        "k".repeat(1000),
    ] {
        let (status, body) = send_json(tf.charge(1).header("Idempotency-Key", key.as_str())).await;
        assert_eq!(status, 400, "key of {} chars", key.len());
        assert!(error_mentions(&body, "Idempotency-Key"), "{body}");
    }
    assert!(tf.ledger(Service::Payments).await.is_empty());

    // 255 characters is still a key.
    let key = "k".repeat(255);
    let response = tf
        .charge(1)
        .header("Idempotency-Key", key.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let ledger = tf.ledger(Service::Payments).await;
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0]["idempotency_key"], key.as_str());
}

/// The server's side of the one key rule the clients share
/// (`fake_services::idempotency_key`): printable ASCII only, and the limit
/// counts the key inside the draft's quotes.
#[tokio::test]
async fn idempotency_keys_must_be_printable_ascii_and_quotes_do_not_count() {
    let tf = spawn().await;
    for key in [&b"a\tb"[..], "ключ".as_bytes(), b"caf\xe9"] {
        let value = reqwest::header::HeaderValue::from_bytes(key).unwrap();
        let (status, body) = send_json(tf.charge(1).header("Idempotency-Key", value)).await;
        assert_eq!(status, 400, "{key:?}");
        assert!(error_mentions(&body, "printable ASCII"), "{body}");
    }
    assert!(tf.ledger(Service::Payments).await.is_empty());

    let key = "k".repeat(fake_services::idempotency_key::MAX_LEN);
    let (status, _) = send_json(tf.charge(1).header("Idempotency-Key", format!("\"{key}\""))).await;
    assert_eq!(status, 201);
    let ledger = tf.ledger(Service::Payments).await;
    assert_eq!(ledger[0]["idempotency_key"], key.as_str());
    let (status, body) = send_json(
        tf.charge(1)
            .header("Idempotency-Key", format!("\"{key}k\"")),
    )
    .await;
    assert_eq!(status, 400);
    assert!(error_mentions(&body, "at most 255"), "{body}");
}

// ------------------------------------------------------------ control token

#[tokio::test]
async fn control_routes_need_the_token() {
    let tf = spawn_with_token().await;
    let rule = json!({"faults": [{"mode": "crash", "calls": 1}]});
    let unauthorized = [
        tf.client.get(tf.url("/payments/behavior")),
        tf.client.put(tf.url("/payments/behavior")).json(&rule),
        tf.client.post(tf.url("/reset")),
        tf.client
            .get(tf.url("/payments/behavior"))
            .header(AUTHORIZATION, "Bearer wrong"),
        tf.client
            .put(tf.url("/payments/behavior"))
            .header(AUTHORIZATION, "Bearer s3cre")
            .json(&rule),
        tf.client
            .post(tf.url("/reset"))
            .header(AUTHORIZATION, "Bearer s3cret-and-more"),
        tf.client.get(tf.url("/payments/behavior?token=nope")),
        tf.client
            .get(tf.url("/payments/behavior"))
            .header(AUTHORIZATION, format!("Basic {TOKEN}")),
        tf.client
            .post(tf.url("/payments/behavior"))
            .form(&[("mode_0", "crash"), ("calls_0", "1")]),
        tf.client.post(tf.url("/payments/behavior")).form(&[
            ("token", "wrong"),
            ("mode_0", "crash"),
            ("calls_0", "1"),
        ]),
    ];
    for request in unauthorized {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()[WWW_AUTHENTICATE], "Bearer");
        let body: Value = response.json().await.unwrap();
        assert!(error_mentions(&body, "token"), "{body}");
    }
    // None of those changed anything.
    let (status, behavior) = behavior_with_token(&tf).await;
    assert_eq!(status, 200);
    assert_eq!(behavior["faults"], json!([]));
}

#[tokio::test]
async fn the_token_opens_the_control_routes() {
    let tf = spawn_with_token().await;
    let (status, set) = send_json(
        tf.client
            .put(tf.url("/payments/behavior"))
            .bearer_auth(TOKEN)
            .json(&json!({"faults": [{"mode": "throttle", "operations": ["search"]}]})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(set["faults"][0]["mode"], "throttle");

    let (status, got) = behavior_with_token(&tf).await;
    assert_eq!(status, 200);
    assert_eq!(got, set);

    let (status, by_query) = send_json(
        tf.client
            .get(tf.url(&format!("/payments/behavior?token={TOKEN}"))),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(by_query, set);

    // The book routes need no token.
    assert_eq!(tf.charge(1).send().await.unwrap().status(), 201);
    assert_eq!(tf.ledger(Service::Payments).await.len(), 1);

    let (status, reset) = send_json(tf.client.post(tf.url("/reset")).bearer_auth(TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(reset, json!({"status": "reset"}));
    assert!(tf.ledger(Service::Payments).await.is_empty());
    let (_, got) = behavior_with_token(&tf).await;
    assert_eq!(got["faults"], json!([]));
}

#[tokio::test]
async fn book_routes_need_no_token() {
    let tf = spawn_with_token().await;
    let (status, charge) = send_json(tf.charge(1)).await;
    assert_eq!(status, 201, "{charge}");
    assert_eq!(tf.get_status("/payments/status").await, 200);
    let (status, _) = send_json(tf.post_email(&json!({"to": "a@b.c", "template_id": "t"}))).await;
    assert_eq!(status, 202);
    assert_eq!(tf.delete_status("/payments/charges").await, 200);
    assert!(tf.ledger(Service::Payments).await.is_empty());
    assert_eq!(tf.delete_status("/email/emails").await, 200);
    assert!(tf.ledger(Service::Email).await.is_empty());
}

#[tokio::test]
async fn the_form_with_the_token_field_saves() {
    let tf = spawn_with_token().await;
    let client = no_redirects();
    let response = submit_behavior_form(
        &tf,
        &[("token", TOKEN), ("mode_0", "crash"), ("calls_0", "1")],
    )
    .await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()[LOCATION],
        format!("/payments/behavior?token={TOKEN}").as_str()
    );

    let (status, behavior) = behavior_with_token(&tf).await;
    assert_eq!(status, 200);
    assert_eq!(behavior["faults"][0]["mode"], "crash");
    assert_eq!(behavior["faults"][0]["calls"], 1);

    // The page the redirect leads to opens with the token in the address and
    // carries it in its form.
    let response = client
        .get(tf.url(&format!("/payments/behavior?token={TOKEN}")))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(
        html.contains(&format!("name=\"token\" value=\"{TOKEN}\"")),
        "{html}"
    );

    // The rule crashes one charge, then is spent.
    let response = tf.charge(1).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(tf.charge(1).send().await.unwrap().status(), 201);
    assert_eq!(tf.ledger(Service::Payments).await.len(), 1);
}

#[tokio::test]
async fn the_index_page_carries_the_token_to_its_forms_and_links() {
    let tf = spawn_with_token().await;
    // Given the token in the address: a hidden field and links that carry it.
    let with = tf.page("/?token=s3cret").await;
    assert!(
        with.contains(r#"<input type="hidden" name="token" value="s3cret">"#),
        "{with}"
    );
    assert!(with.contains("/payments/behavior?token=s3cret"), "{with}");
    // Without it: a field to type it in, and no token anywhere in the page.
    let without = tf.page("/").await;
    assert!(
        without.contains(r#"type="password" name="token""#),
        "{without}"
    );
    assert!(!without.contains("s3cret"));
    // The reset form's submission, with the field filled in, resets.
    tf.charge(1).send().await.unwrap();
    let reset = no_redirects()
        .post(tf.url("/reset"))
        .header("accept", "text/html,*/*;q=0.8")
        .form(&[("token", "s3cret")])
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 303);
    assert!(tf.ledger(fake_services::Service::Payments).await.is_empty());
}
