//! The book server's contract (v1.2.1), route by route, over real HTTP: an
//! app written against that server must work unchanged against these fakes.

use fake_services_test_support as common;

use common::{
    charge_body, email_body, fulfillment_body, send_json, spawn, status_and_json, TestFakes,
};
use fake_services::{Clock, Service};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Whether `id` is `prefix` followed by exactly 8 hex digits.
fn has_id_format(id: &Value, prefix: &str) -> bool {
    let Some(id) = id.as_str() else {
        return false;
    };
    id.strip_prefix(prefix)
        .is_some_and(|hex| hex.len() == 8 && hex.chars().all(|c| c.is_ascii_hexdigit()))
}

/// `body` with `metadata.idempotency_key` set to `key`.
fn with_key(mut body: Value, key: &str) -> Value {
    body["metadata"]["idempotency_key"] = json!(key);
    body
}

/// A request written by hand on a raw socket, for what reqwest cannot send
/// (it always adds `Accept: */*`). Returns the status code and the body.
async fn raw_request(tf: &TestFakes, head: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(tf.server.addr)
        .await
        .unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.unwrap();
    let text = String::from_utf8_lossy(&bytes).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

// ---------------------------------------------------------------- payments

#[tokio::test]
async fn payments_status_is_ok() {
    let tf = spawn().await;
    assert_eq!(tf.get_status("/payments/status").await, 200);
}

#[tokio::test]
async fn a_charge_succeeds_with_a_charge_id_and_lands_in_the_ledger() {
    let tf = spawn().await;
    let response = tf.charge(1).send().await.unwrap();
    assert_eq!(response.status(), 201);
    assert!(response.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let (_, body) = status_and_json(response).await;
    assert_eq!(body["status"], "success", "{body}");
    assert!(has_id_format(&body["charge_id"], "ch_"), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");

    let ledger = tf.ledger(Service::Payments).await;
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0]["id"], body["charge_id"]);
    assert_eq!(ledger[0]["request"]["metadata"]["order_id"], 1);
    assert_eq!(
        ledger[0]["told"],
        json!({"outcome": "response", "status": 201})
    );

    // A second charge gets a new id.
    let (status, second) = send_json(tf.charge(2)).await;
    assert_eq!(status, 201);
    assert_ne!(second["charge_id"], body["charge_id"]);
    assert_eq!(tf.ledger(Service::Payments).await.len(), 2);
}

#[tokio::test]
async fn amount_9999_is_declined_and_recorded() {
    let tf = spawn().await;
    let (status, body) = send_json(tf.post_charge(&charge_body(5, 9999))).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"status": "declined", "explanation": "Insufficient funds"})
    );
    let ledger = tf.ledger(Service::Payments).await;
    assert_eq!(ledger.len(), 1, "the decline is in the ledger");
    assert_eq!(ledger[0]["response"]["status"], "declined");
    assert_eq!(ledger[0]["status"], 200);
}

#[tokio::test]
async fn metadata_idempotency_key_replays_a_successful_charge() {
    let tf = spawn().await;
    let charge = |order| tf.post_charge(&with_key(charge_body(order, 12300), "order-7-charge"));
    let (status, first) = send_json(charge(7)).await;
    assert_eq!(status, 201);
    assert_eq!(first["status"], "success");

    let (status, again) = send_json(charge(7)).await;
    assert_eq!(status, 201);
    assert_eq!(again, first, "the stored response is answered again");
    let ledger = tf.ledger(Service::Payments).await;
    assert_eq!(ledger.len(), 1, "no new charge: {ledger:?}");

    // Another key charges anew.
    let (status, other) =
        send_json(tf.post_charge(&with_key(charge_body(7, 12300), "order-7-charge-b"))).await;
    assert_eq!(status, 201);
    assert_ne!(other["charge_id"], first["charge_id"]);
    assert_eq!(tf.ledger(Service::Payments).await.len(), 2);
}

#[tokio::test]
async fn a_key_used_on_a_decline_does_not_replay() {
    let tf = spawn().await;
    let key = "order-8-charge";
    let (status, declined) = send_json(tf.post_charge(&with_key(charge_body(8, 9999), key))).await;
    assert_eq!(status, 200);
    assert_eq!(declined["status"], "declined");

    // The retry with a good card charges for real.
    let (status, charged) = send_json(tf.post_charge(&with_key(charge_body(8, 12300), key))).await;
    assert_eq!(status, 201, "{charged}");
    assert_eq!(charged["status"], "success");
    assert!(has_id_format(&charged["charge_id"], "ch_"));
    assert_eq!(tf.ledger(Service::Payments).await.len(), 2);

    // And from then on the key replays that success.
    let (status, replayed) = send_json(tf.post_charge(&with_key(charge_body(8, 12300), key))).await;
    assert_eq!(status, 201);
    assert_eq!(replayed, charged);
    assert_eq!(tf.ledger(Service::Payments).await.len(), 2);
}

#[tokio::test]
async fn delete_charges_clears_the_ledger_and_the_keys() {
    let tf = spawn().await;
    let keyed = || tf.post_charge(&with_key(charge_body(3, 12300), "k-3"));
    let (_, first) = send_json(keyed()).await;
    assert_eq!(send_json(tf.charge(4)).await.0, 201);
    assert_eq!(tf.ledger(Service::Payments).await.len(), 2);

    assert_eq!(tf.delete_status("/payments/charges").await, 200);
    assert!(tf.ledger(Service::Payments).await.is_empty());

    // The cleared key charges again, as on a fresh server.
    let (status, after) = send_json(keyed()).await;
    assert_eq!(status, 201);
    assert_ne!(after["charge_id"], first["charge_id"]);
    assert_eq!(tf.ledger(Service::Payments).await.len(), 1);
}

// ------------------------------------------------------------- fulfillment

#[tokio::test]
async fn fulfillment_request_is_accepted_and_counted() {
    let tf = spawn().await;
    let (status, body) = tf.get_json("/fulfillment/status").await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"num_requests": 0}));

    let (status, body) =
        send_json(tf.put_fulfillment(&fulfillment_body(1, Some("1 Main St")))).await;
    assert_eq!(status, 202);
    assert_eq!(body["status"], "accepted");
    assert!(has_id_format(&body["request_id"], "fr_"), "{body}");

    let (_, status_body) = tf.get_json("/fulfillment/status").await;
    assert_eq!(status_body, json!({"num_requests": 1}));
    let ledger = tf.ledger(Service::Fulfillment).await;
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0]["id"], body["request_id"]);
    assert_eq!(ledger[0]["request"]["address"], "1 Main St");
}

#[tokio::test]
async fn fulfillment_without_an_address_is_rejected() {
    let tf = spawn().await;
    for address in [None, Some(""), Some("   ")] {
        let (status, body) = send_json(tf.put_fulfillment(&fulfillment_body(1, address))).await;
        assert_eq!(status, 422, "address {address:?}");
        assert_eq!(
            body,
            json!({"status": "rejected", "error": "Missing address"}),
            "address {address:?}"
        );
    }
    assert!(tf.ledger(Service::Fulfillment).await.is_empty());
    let (_, status_body) = tf.get_json("/fulfillment/status").await;
    assert_eq!(status_body, json!({"num_requests": 0}));
}

#[tokio::test]
async fn fulfillment_metadata_key_replays_the_stored_response() {
    let tf = spawn().await;
    let request = || tf.put_fulfillment(&with_key(fulfillment_body(9, Some("9 Elm St")), "ship-9"));
    let (status, first) = send_json(request()).await;
    assert_eq!(status, 202);
    let (status, again) = send_json(request()).await;
    assert_eq!(status, 202);
    assert_eq!(again, first);
    assert_eq!(tf.ledger(Service::Fulfillment).await.len(), 1);
    let (_, status_body) = tf.get_json("/fulfillment/status").await;
    assert_eq!(status_body, json!({"num_requests": 1}));

    // Without a key, every request is a new one.
    let plain = || tf.put_fulfillment(&fulfillment_body(9, Some("9 Elm St")));
    let (_, a) = send_json(plain()).await;
    let (_, b) = send_json(plain()).await;
    assert_ne!(a["request_id"], b["request_id"]);
    assert_eq!(tf.ledger(Service::Fulfillment).await.len(), 3);
}

#[tokio::test]
async fn delete_fulfillment_requests_clears() {
    let tf = spawn().await;
    for order in 1..=2 {
        let (status, _) = send_json(tf.put_fulfillment(&fulfillment_body(order, Some("x")))).await;
        assert_eq!(status, 202);
    }
    let (_, status_body) = tf.get_json("/fulfillment/status").await;
    assert_eq!(status_body, json!({"num_requests": 2}));
    assert_eq!(tf.delete_status("/fulfillment/requests").await, 200);
    let (_, status_body) = tf.get_json("/fulfillment/status").await;
    assert_eq!(status_body, json!({"num_requests": 0}));
    assert!(tf.ledger(Service::Fulfillment).await.is_empty());
}

// ------------------------------------------------------------------- email

#[tokio::test]
async fn an_email_is_queued() {
    let tf = spawn().await;
    let (status, body) =
        send_json(tf.post_email(&email_body("pat@example.com", "order-confirmation", 1))).await;
    assert_eq!(status, 202);
    assert_eq!(body["status"], "queued");
    assert!(has_id_format(&body["email_id"], "em_"), "{body}");
    let ledger = tf.ledger(Service::Email).await;
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0]["id"], body["email_id"]);
}

#[tokio::test]
async fn an_email_needs_to_and_template_id() {
    let tf = spawn().await;
    let cases = [
        (
            json!({"template_id": "t", "template_data": {}}),
            "to required",
        ),
        (json!({"to": "", "template_id": "t"}), "to required"),
        (json!({"to": "  ", "template_id": "t"}), "to required"),
        (json!({"to": "a@b.c"}), "template_id required"),
        (
            json!({"to": "a@b.c", "template_id": ""}),
            "template_id required",
        ),
        (
            json!({"to": "a@b.c", "template_id": null}),
            "template_id required",
        ),
    ];
    for (body, message) in cases {
        let (status, answer) = send_json(tf.post_email(&body)).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(
            answer,
            json!({"status": "not-queued", "errorMessage": message}),
            "{body}"
        );
    }
    assert!(tf.ledger(Service::Email).await.is_empty());
}

#[tokio::test]
async fn email_search_matches_address_and_template_exactly() {
    let tf = spawn().await;
    let mut ids = Vec::new();
    for (to, template, order) in [
        ("pat@example.com", "order-confirmation", 1),
        ("pat@example.com", "order-shipped", 1),
        ("sam@example.com", "order-confirmation", 2),
        ("pat@example.com", "order-confirmation", 3),
    ] {
        let (status, body) = send_json(tf.post_email(&email_body(to, template, order))).await;
        assert_eq!(status, 202);
        ids.push(body["email_id"].clone());
    }

    let search = |query: &'static [(&'static str, &'static str)]| {
        tf.client.get(tf.url("/email/emails")).query(query)
    };
    let (status, found) = send_json(search(&[
        ("email", "pat@example.com"),
        ("template_id", "order-confirmation"),
    ]))
    .await;
    assert_eq!(status, 200);
    let found = found.as_array().expect("an array").clone();
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0]["to"], "pat@example.com");
    assert_eq!(found[0]["template_id"], "order-confirmation");
    assert_eq!(found[0]["template_data"], json!({"order_id": 1}));
    assert_eq!(found[0]["email_id"], ids[0]);
    assert_eq!(found[1]["template_data"], json!({"order_id": 3}));
    assert_eq!(found[1]["email_id"], ids[3]);

    let (_, shipped) = send_json(search(&[
        ("email", "pat@example.com"),
        ("template_id", "order-shipped"),
    ]))
    .await;
    assert_eq!(shipped.as_array().unwrap().len(), 1);
    assert_eq!(shipped[0]["email_id"], ids[1]);

    // Exact matches only.
    let (_, none) = send_json(search(&[
        ("email", "PAT@example.com"),
        ("template_id", "order-confirmation"),
    ]))
    .await;
    assert_eq!(none, json!([]));
    let (_, none) = send_json(search(&[
        ("email", "pat@example"),
        ("template_id", "order-confirmation"),
    ]))
    .await;
    assert_eq!(none, json!([]));

    // A parameter left out matches nothing.
    for query in [
        &[("email", "pat@example.com")][..],
        &[("template_id", "order-confirmation")][..],
        &[][..],
    ] {
        let (status, none) = send_json(search(query)).await;
        assert_eq!(status, 200);
        assert_eq!(none, json!([]), "{query:?}");
    }
}

#[tokio::test]
async fn delete_emails_clears() {
    let tf = spawn().await;
    let (status, _) = send_json(tf.post_email(&email_body("a@b.c", "t", 1))).await;
    assert_eq!(status, 202);
    assert_eq!(tf.delete_status("/email/emails").await, 200);
    assert!(tf.ledger(Service::Email).await.is_empty());
    let (_, found) = send_json(
        tf.client
            .get(tf.url("/email/emails"))
            .query(&[("email", "a@b.c"), ("template_id", "t")]),
    )
    .await;
    assert_eq!(found, json!([]));
}

// ----------------------------------------------------------- error catcher

#[tokio::test]
async fn a_notification_is_accepted() {
    let tf = spawn().await;
    let (status, body) = send_json(tf.put_notification(
        &json!({"exception_class": "RuntimeError", "exception_message": "boom"}),
    ))
    .await;
    assert_eq!(status, 202);
    assert!(has_id_format(&body["notification_id"], "err_"), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    let ledger = tf.ledger(Service::ErrorCatcher).await;
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0]["id"], body["notification_id"]);
}

#[tokio::test]
async fn a_notification_needs_class_and_message() {
    let tf = spawn().await;
    for body in [
        json!({"exception_message": "boom"}),
        json!({"exception_class": "", "exception_message": "boom"}),
        json!({"exception_class": "RuntimeError"}),
        json!({"exception_class": "RuntimeError", "exception_message": " "}),
        json!({}),
    ] {
        let (status, _) = send_json(tf.put_notification(&body)).await;
        assert_eq!(status, 422, "{body}");
    }
    assert!(tf.ledger(Service::ErrorCatcher).await.is_empty());
}

#[tokio::test]
async fn delete_notifications_clears() {
    let tf = spawn().await;
    let (status, _) =
        send_json(tf.put_notification(&json!({"exception_class": "E", "exception_message": "m"})))
            .await;
    assert_eq!(status, 202);
    assert_eq!(tf.ledger(Service::ErrorCatcher).await.len(), 1);
    assert_eq!(tf.delete_status("/error-catcher/notifications").await, 200);
    assert!(tf.ledger(Service::ErrorCatcher).await.is_empty());
}

// ------------------------------------------------------------------ Accept

#[tokio::test]
async fn no_accept_header_is_not_acceptable() {
    let tf = spawn().await;
    let (status, _) = raw_request(
        &tf,
        "GET /payments/status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 406);

    let body = charge_body(1, 12300).to_string();
    let (status, _) = raw_request(
        &tf,
        &format!(
            "POST /payments/charge HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert_eq!(status, 406);
    assert!(tf.ledger(Service::Payments).await.is_empty());

    // The same raw request with an Accept header goes through, so the 406
    // above is the header's doing.
    let (status, body) = raw_request(
        &tf,
        "GET /payments/status HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn accept_rules() {
    let tf = spawn().await;
    let get = |accept: &str| {
        tf.client
            .get(tf.url("/payments/status"))
            .header(ACCEPT, accept)
    };
    let post = |accept: &str| tf.charge(1).header(ACCEPT, accept);
    let cases = [
        ("text/plain", 406, 406),
        ("application/json", 200, 201),
        ("*/*", 200, 201),
        ("text/html", 200, 406),
        ("application/json; q=0.9", 200, 201),
        ("text/plain, application/json;q=0.5", 200, 201),
        ("image/png", 406, 406),
    ];
    for (accept, get_status, post_status) in cases {
        let response = get(accept).send().await.unwrap();
        assert_eq!(response.status(), get_status, "GET with Accept: {accept}");
        let response = post(accept).send().await.unwrap();
        assert_eq!(response.status(), post_status, "POST with Accept: {accept}");
    }
    let successes = cases.iter().filter(|c| c.2 == 201).count();
    assert_eq!(tf.ledger(Service::Payments).await.len(), successes);

    // Other methods follow POST: a browser's Accept is not enough.
    let response = tf
        .client
        .delete(tf.url("/payments/charges"))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 406);
    assert_eq!(tf.ledger(Service::Payments).await.len(), successes);
}

// ------------------------------------------------------------ bad bodies

#[tokio::test]
async fn bad_json_is_422_with_an_explanation() {
    let tf = spawn().await;
    for (path, put) in [
        ("/payments/charge", false),
        ("/email/send", false),
        ("/fulfillment/request", true),
        ("/error-catcher/notification", true),
    ] {
        let request = if put {
            tf.client.put(tf.url(path))
        } else {
            tf.client.post(tf.url(path))
        };
        let (status, body) = send_json(
            request
                .header(CONTENT_TYPE, "application/json")
                .body("{\"to\": \"a@b.c\",\n \"template_id\": }"),
        )
        .await;
        assert_eq!(status, 422, "{path}");
        let error = body["error"].as_str().unwrap_or_else(|| panic!("{body}"));
        assert!(
            error.contains("line 2") && error.contains("column"),
            "{path}: {error}"
        );
    }
    for service in Service::ALL {
        assert!(tf.ledger(service).await.is_empty(), "{service}");
    }
}

#[tokio::test]
async fn an_empty_body_counts_as_an_empty_object() {
    let tf = spawn().await;
    let (status, body) = send_json(tf.client.post(tf.url("/email/send"))).await;
    assert_eq!(status, 422);
    assert_eq!(
        body,
        json!({"status": "not-queued", "errorMessage": "to required"})
    );
    let (status, body) = send_json(
        tf.client
            .put(tf.url("/fulfillment/request"))
            .header(CONTENT_TYPE, "application/json")
            .body(" \n"),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"], "Missing address");
}

#[tokio::test]
async fn a_json_body_that_is_not_an_object_is_refused() {
    let tf = spawn().await;
    let (status, body) = send_json(
        tf.client
            .post(tf.url("/payments/charge"))
            .json(&json!([1, 2])),
    )
    .await;
    assert_eq!(status, 422);
    assert!(body["error"].is_string(), "{body}");
    assert!(tf.ledger(Service::Payments).await.is_empty());
}

// ------------------------------------------------------- per-request headers

#[tokio::test]
async fn x_throttle_answers_429_with_no_body_and_no_effect() {
    let tf = spawn().await;
    for (service, request) in [
        (Service::Payments, tf.charge(1)),
        (Service::Email, tf.post_email(&email_body("a@b.c", "t", 1))),
    ] {
        let response = request.header("X-Throttle", "true").send().await.unwrap();
        assert_eq!(response.status(), 429, "{service}");
        assert!(response.bytes().await.unwrap().is_empty(), "{service}");
        assert!(tf.ledger(service).await.is_empty(), "{service}");
    }

    // `false` asks for nothing.
    let (status, _) = send_json(tf.charge(1).header("X-Throttle", "false")).await;
    assert_eq!(status, 201);
    assert_eq!(tf.ledger(Service::Payments).await.len(), 1);
}

#[tokio::test]
async fn x_crash_on_a_charge_is_5xx_and_charges_nothing() {
    let tf = spawn().await;
    for _ in 0..8 {
        let response = tf.charge(1).header("X-Crash", "true").send().await.unwrap();
        let status = response.status().as_u16();
        assert!(status == 503 || status == 504, "got {status}");
        assert!(response.bytes().await.unwrap().is_empty());
    }
    assert!(tf.ledger(Service::Payments).await.is_empty());

    // The crash is per request: the next plain charge works.
    assert_eq!(tf.charge(1).send().await.unwrap().status(), 201);
}

#[tokio::test]
async fn x_crash_on_an_email_sends_it_and_answers_503() {
    let tf = spawn().await;
    let response = tf
        .post_email(&email_body("pat@example.com", "order-confirmation", 1))
        .header("X-Crash", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let ledger = tf.ledger(Service::Email).await;
    assert_eq!(ledger.len(), 1, "the email is stored all the same");
    assert_eq!(ledger[0]["request"]["to"], "pat@example.com");
    assert_eq!(
        ledger[0]["told"],
        json!({"outcome": "response", "status": 503, "fault": "send-then-crash"})
    );
    assert!(has_id_format(&ledger[0]["id"], "em_"));

    // And the search finds it, as the book app's dedup-by-search expects.
    let (_, found) = send_json(tf.client.get(tf.url("/email/emails")).query(&[
        ("email", "pat@example.com"),
        ("template_id", "order-confirmation"),
    ]))
    .await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["email_id"], ledger[0]["id"]);
}

#[tokio::test]
async fn x_be_slow_with_seconds_waits_for_the_clock() {
    let tf = spawn().await;
    let start = tf.clock.now_ms();
    let task = tokio::spawn(tf.charge(1).header("X-Be-Slow", "2").send());
    tf.wait_for_sleepers(1).await;
    assert!(!task.is_finished());

    tf.clock.advance(1_999);
    // Not yet: nothing is charged until the latency has passed.
    assert!(tf.ledger(Service::Payments).await.is_empty());
    assert!(!task.is_finished());

    tf.clock.advance(1);
    let response = task.await.unwrap().unwrap();
    assert_eq!(response.status(), 201);
    let ledger = tf.ledger(Service::Payments).await;
    assert_eq!(ledger.len(), 1);
    assert_eq!(
        ledger[0]["created_at_ms"],
        start + 2_000,
        "the effect happens after the latency"
    );
    assert_eq!(tf.clock.sleepers(), 0);
}

#[tokio::test]
async fn x_be_slow_true_waits_at_most_ten_seconds() {
    let tf = spawn().await;
    let task = tokio::spawn(tf.charge(1).header("X-Be-Slow", "true").send());
    tf.wait_for_sleepers(1).await;
    assert!(!task.is_finished());
    tf.clock.advance(10_000);
    let response = task.await.unwrap().unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(tf.ledger(Service::Payments).await.len(), 1);
}

// -------------------------------------------------------------------- HTML

#[tokio::test]
async fn the_index_links_every_ledger_page() {
    let tf = spawn().await;
    let html = tf.page("/").await;
    for service in ["payments", "fulfillment", "email", "error-catcher"] {
        let link = format!("href=\"/{service}/ui\"");
        assert!(html.contains(&link), "no {link} in {html}");
    }
}

#[tokio::test]
async fn ledger_pages_say_none_yet_when_empty() {
    let tf = spawn().await;
    for service in Service::ALL {
        let html = tf.page(&format!("/{}/ui", service.name())).await;
        assert!(html.contains("NONE YET"), "{service}: {html}");
        assert!(html.contains("Client was told"), "{service}");
    }
}

#[tokio::test]
async fn ledger_pages_show_a_row_per_record() {
    let tf = spawn().await;
    let (_, charge) = send_json(tf.charge(1)).await;
    let (_, email) =
        send_json(tf.post_email(&email_body("pat@example.com", "order-confirmation", 1))).await;
    let response = tf
        .post_email(&email_body("sam@example.com", "order-confirmation", 2))
        .header("X-Crash", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let (_, request) = send_json(tf.put_fulfillment(&fulfillment_body(1, Some("1 Main St")))).await;
    let (_, notification) = send_json(tf.put_notification(
        &json!({"exception_class": "RuntimeError", "exception_message": "boom"}),
    ))
    .await;

    let payments = tf.page("/payments/ui").await;
    assert!(!payments.contains("NONE YET"));
    assert!(payments.contains(charge["charge_id"].as_str().unwrap()));
    assert!(payments.contains("<td>201</td>"), "{payments}");

    let emails = tf.page("/email/ui").await;
    assert!(emails.contains(email["email_id"].as_str().unwrap()));
    assert!(emails.contains("sam@example.com"));
    assert!(emails.contains("<td>202</td>"), "{emails}");
    assert!(emails.contains("503 (send-then-crash)"), "{emails}");
    assert_eq!(emails.matches("<tr><td class=\"mono\">em_").count(), 2);

    let fulfillment = tf.page("/fulfillment/ui").await;
    assert!(fulfillment.contains(request["request_id"].as_str().unwrap()));
    assert!(fulfillment.contains("1 Main St"));
    assert!(fulfillment.contains("<td>202</td>"));

    let errors = tf.page("/error-catcher/ui").await;
    assert!(errors.contains(notification["notification_id"].as_str().unwrap()));
    assert!(errors.contains("RuntimeError"));
    assert!(errors.contains("<td>202</td>"));
    for html in [&payments, &emails, &fulfillment, &errors] {
        assert!(html.contains("Client was told"));
        assert!(!html.contains("NONE YET"));
    }
}

#[tokio::test]
async fn two_charges_for_one_order_are_marked() {
    let tf = spawn().await;
    let html = tf.page("/payments/ui").await;
    assert!(!html.contains("More than one effect"));

    let (_, first) = send_json(tf.charge(7)).await;
    let (_, second) = send_json(tf.charge(7)).await;
    let (_, other) = send_json(tf.charge(8)).await;
    // A decline for order 8 is not a second effect.
    let (status, _) = send_json(tf.post_charge(&charge_body(8, 9999))).await;
    assert_eq!(status, 200);

    let html = tf.page("/payments/ui").await;
    assert!(html.contains("More than one effect"), "{html}");
    assert!(html.contains("order 7 (2×)"), "{html}");
    assert!(!html.contains("order 8"), "{html}");
    assert_eq!(html.matches("<tr class=\"dup\">").count(), 2, "{html}");
    for (charge, dup) in [(&first, true), (&second, true), (&other, false)] {
        let id = charge["charge_id"].as_str().unwrap();
        let row_start = html.find(id).expect("a row per charge");
        let row_open = html[..row_start].rfind("<tr").unwrap();
        let marked = html[row_open..].starts_with("<tr class=\"dup\">");
        assert_eq!(marked, dup, "row of {id}");
    }
}

/// The index and the ledger pages answer JSON to a client that prefers it,
/// with what the page shows: sizes, faults in force, the duplicate marks.
#[tokio::test]
async fn the_pages_answer_json_too() {
    let tf = spawn().await;
    let (_, first) = send_json(tf.charge(7)).await;
    send_json(tf.charge(7)).await;
    let (_, other) = send_json(tf.charge(8)).await;
    let get_json = |path: &str| {
        let request = tf
            .client
            .get(tf.url(path))
            .header("accept", "application/json");
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            assert!(response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"));
            response.json::<Value>().await.unwrap()
        }
    };
    let index = get_json("/").await;
    let payments = &index["services"][0];
    assert_eq!(payments["service"], "payments");
    assert_eq!(payments["records"], 3);
    assert_eq!(payments["faults_in_force"], false);
    assert_eq!(payments["links"]["page"], "/payments/ui");
    assert_eq!(index["services"].as_array().unwrap().len(), 4);

    let page = get_json("/payments/ui?limit=2").await;
    assert_eq!(page["object"], "list");
    assert_eq!(page["records"], 3);
    assert_eq!(page["has_more"], true);
    assert_eq!(page["duplicated_orders"], 1);
    assert_eq!(page["duplicates"], json!([{"order_id": "7", "effects": 2}]));
    let data = page["data"].as_array().unwrap();
    // Newest first: order 8's charge, then order 7's second.
    assert_eq!(data[0]["id"], other["charge_id"]);
    assert_eq!(data[0]["duplicate"], false);
    assert_eq!(data[1]["duplicate"], true);
    let older = get_json(&format!(
        "/payments/ui?limit=2&starting_after={}",
        data[1]["id"].as_str().unwrap()
    ))
    .await;
    assert_eq!(older["data"][0]["id"], first["charge_id"]);
    assert_eq!(older["has_more"], false);
    // A browser still gets the page.
    assert!(tf.page("/payments/ui").await.contains("<table"));
}
