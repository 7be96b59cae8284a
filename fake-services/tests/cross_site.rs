//! Cross-site safety over real HTTP: a page on another site cannot make the
//! developer's browser reset the ledgers or change the fault rules, nor read
//! the services through a rebound name; the services' own forms, scripts and
//! `curl` keep working.

use fake_services_test_support as common;

use common::{charge_body, error_mentions, spawn, spawn_with, status_and_json, TestFakes};
use fake_services::http::HttpOptions;
use fake_services::Service;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HOST, LOCATION, ORIGIN};
use reqwest::StatusCode;
use serde_json::json;

/// What a browser sends with a form submission.
const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// A fake services server with one charge in its payments ledger.
async fn with_a_charge() -> TestFakes {
    let tf = spawn().await;
    let response = tf.charge(1).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(tf.ledger(Service::Payments).await.len(), 1);
    tf
}

/// The reset form's submission as a browser sends it, with `headers` added
/// (the redirect is not followed).
async fn reset_form(tf: &TestFakes, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(tf.url("/reset"))
        .header(ACCEPT, BROWSER_ACCEPT)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// `host:port` of the test server.
fn port(tf: &TestFakes) -> u16 {
    tf.server.addr.port()
}

#[tokio::test]
async fn a_reset_from_another_site_is_refused_and_the_ledger_kept() {
    let tf = with_a_charge().await;
    let response = reset_form(&tf, &[("origin", "https://evil.example")]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let (_, body) = status_and_json(response).await;
    assert!(error_mentions(&body, "https://evil.example"), "{body}");
    assert!(error_mentions(&body, "may not change"), "{body}");
    assert_eq!(tf.ledger(Service::Payments).await.len(), 1);
    // Another port on the same machine is another origin too.
    let other_port = format!("http://127.0.0.1:{}", port(&tf).wrapping_add(1));
    let response = reset_form(&tf, &[("origin", &other_port)]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(tf.ledger(Service::Payments).await.len(), 1);
}

#[tokio::test]
async fn a_reset_with_a_null_origin_or_a_cross_site_fetch_is_refused() {
    let tf = with_a_charge().await;
    for headers in [
        &[("origin", "null")][..],
        &[("sec-fetch-site", "cross-site")][..],
        &[("sec-fetch-site", "same-site")][..],
    ] {
        let response = reset_form(&tf, headers).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{headers:?}");
    }
    assert_eq!(tf.ledger(Service::Payments).await.len(), 1);
}

#[tokio::test]
async fn the_reset_form_on_the_services_own_page_still_resets() {
    let tf = with_a_charge().await;
    let response = reset_form(
        &tf,
        &[("origin", &tf.base), ("sec-fetch-site", "same-origin")],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/");
    assert!(tf.ledger(Service::Payments).await.is_empty());
}

#[tokio::test]
async fn a_script_without_an_origin_still_resets() {
    let tf = with_a_charge().await;
    let response = tf.client.post(tf.url("/reset")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(tf.ledger(Service::Payments).await.is_empty());
}

#[tokio::test]
async fn fault_rules_from_another_site_are_refused_and_the_rules_unchanged() {
    let tf = spawn().await;
    let before = tf.behavior(Service::Payments).await;
    let rules = json!({"faults": [{"mode": "crash", "calls": 1}]});
    let response = tf
        .client
        .put(tf.url("/payments/behavior"))
        .header(ORIGIN, "https://evil.example")
        .json(&rules)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let form = tf
        .client
        .post(tf.url("/payments/behavior"))
        .header(ACCEPT, BROWSER_ACCEPT)
        .header("sec-fetch-site", "cross-site")
        .form(&[("mode_0", "crash")])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::FORBIDDEN);
    assert_eq!(tf.behavior(Service::Payments).await, before);
    // The same rules from a script take.
    tf.set_behavior(Service::Payments, rules).await;
    assert_ne!(tf.behavior(Service::Payments).await, before);
}

#[tokio::test]
async fn the_providers_routes_refuse_other_sites_too() {
    let tf = spawn().await;
    let response = tf
        .post_charge(&charge_body(1, 100))
        .header(ORIGIN, "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(tf.ledger(Service::Payments).await.is_empty());
}

#[tokio::test]
async fn a_rebound_name_is_refused_even_for_reads() {
    let tf = with_a_charge().await;
    let host = format!("evil.example:{}", port(&tf));
    for path in ["/payments/ledger", "/", "/no/such/route"] {
        let response = tf
            .client
            .get(tf.url(path))
            .header(HOST, &host)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        let (_, body) = status_and_json(response).await;
        let expected = format!(
            "Host `{host}` is not this server's address; \
             start it with --allowed-host evil.example to allow it"
        );
        assert!(error_mentions(&body, &expected), "{body}");
    }
}

#[tokio::test]
async fn ip_addresses_localhost_and_allowed_names_are_answered() {
    let tf = spawn_with(HttpOptions {
        allowed_hosts: ["Evil.Example".parse().unwrap()].into_iter().collect(),
        ..HttpOptions::default()
    })
    .await;
    let port = port(&tf);
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("LOCALHOST:{port}"),
        format!("evil.example:{port}"),
        "EVIL.EXAMPLE".to_string(),
    ] {
        let response = tf
            .client
            .get(tf.url("/payments/ledger"))
            .header(HOST, &host)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{host}");
    }
    let response = tf
        .client
        .get(tf.url("/payments/ledger"))
        .header(HOST, format!("other.example:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // Same origin under the allowed name: the form works.
    let response = reset_form(
        &tf,
        &[
            ("host", &format!("evil.example:{port}")),
            ("origin", &format!("http://evil.example:{port}")),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_malformed_host_is_a_bad_request_that_names_it() {
    let tf = spawn().await;
    let response = tf
        .client
        .get(tf.url("/payments/ledger"))
        .header(HOST, "127.0.0.1:port")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let (_, body) = status_and_json(response).await;
    assert!(error_mentions(&body, "`127.0.0.1:port`"), "{body}");
}
