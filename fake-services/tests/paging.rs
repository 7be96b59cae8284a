//! Lists in pages, as Stripe's list API gives them: `limit`, a cursor
//! (`starting_after`, `ending_before`), newest first, `has_more`; the
//! routes v1.2.1 answers with a bare array keep that shape without the new
//! parameters; the ledger pages show one page with links to the others;
//! `--keep` drops the oldest records and keeps the counts.

use fake_services_test_support as common;

use common::{charge_body, email_body, error_mentions, send_json, spawn, TestFakes};
use fake_services::books::{Cursor, Filter};
use fake_services::Service;
use serde_json::Value;

/// Charges orders `orders` in turn; their charge ids, oldest first.
async fn charge_all(tf: &TestFakes, orders: impl IntoIterator<Item = u64>) -> Vec<String> {
    let mut ids = Vec::new();
    for order in orders {
        let (status, body) = send_json(tf.post_charge(&charge_body(order, 500))).await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["charge_id"].as_str().unwrap().to_string());
    }
    ids
}

/// A list answer's ids and `has_more`, checking its shape.
fn list(body: &Value) -> (Vec<String>, bool) {
    assert_eq!(body["object"], "list", "{body}");
    let ids = body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data: {body}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    (ids, body["has_more"].as_bool().expect("has_more"))
}

async fn get_list(tf: &TestFakes, path: &str) -> (Vec<String>, bool) {
    let (status, body) = tf.get_json(path).await;
    assert_eq!(status, 200, "{path}: {body}");
    list(&body)
}

fn newest_first(ids: &[String]) -> Vec<String> {
    ids.iter().rev().cloned().collect()
}

#[tokio::test]
async fn v1_2_1_routes_keep_their_bare_arrays_without_the_new_parameters() {
    let tf = spawn().await;
    let ids = charge_all(&tf, [5, 6, 5]).await;
    for (path, expect) in [
        ("/payments/charges", ids.clone()),
        (
            "/payments/charges?order_id=5",
            vec![ids[0].clone(), ids[2].clone()],
        ),
        ("/payments/charges?order_id=7", vec![]),
    ] {
        let (status, body) = tf.get_json(path).await;
        assert_eq!(status, 200, "{body}");
        let found: Vec<&str> = body
            .as_array()
            .unwrap_or_else(|| panic!("{path}: not a bare array: {body}"))
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert_eq!(found, expect, "{path}: oldest first, as v1.2.1");
    }
    let (status, body) = tf.get_json("/payments/ledger").await;
    assert_eq!(status, 200);
    assert_eq!(body.as_array().map(Vec::len), Some(3), "{body}");
    let (status, body) =
        send_json(tf.post_email(&email_body("a@example.com", "order-confirmation", 5))).await;
    assert_eq!(status, 202, "{body}");
    let (_, found) = tf
        .get_json("/email/emails?email=a@example.com&template_id=order-confirmation")
        .await;
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
}

#[tokio::test]
async fn pages_go_newest_first_and_cursors_walk_both_ways() {
    let tf = spawn().await;
    let ids = charge_all(&tf, 1..=25).await;
    let newest = newest_first(&ids);
    let (first, more) = get_list(&tf, "/payments/charges?limit=10").await;
    assert_eq!((&first[..], more), (&newest[..10], true));
    let (second, more) = get_list(
        &tf,
        &format!("/payments/charges?limit=10&starting_after={}", first[9]),
    )
    .await;
    assert_eq!((&second[..], more), (&newest[10..20], true));
    let (third, more) = get_list(
        &tf,
        &format!("/payments/charges?limit=10&starting_after={}", second[9]),
    )
    .await;
    assert_eq!((&third[..], more), (&newest[20..], false));
    // Back: the ten newer than the second page's first are the first page.
    let (back, more) = get_list(
        &tf,
        &format!("/payments/charges?limit=10&ending_before={}", second[0]),
    )
    .await;
    assert_eq!((&back[..], more), (&first[..], false));
    let (back, more) = get_list(
        &tf,
        &format!("/payments/charges?limit=3&ending_before={}", third[0]),
    )
    .await;
    assert_eq!((&back[..], more), (&newest[17..20], true));
    // A cursor alone: Stripe's default of 10.
    let (page, _) = get_list(
        &tf,
        &format!("/payments/charges?starting_after={}", newest[0]),
    )
    .await;
    assert_eq!(page, newest[1..11]);
    // The ledger route pages the same way, with whole records.
    let (status, body) = tf.get_json("/payments/ledger?limit=2").await;
    assert_eq!(status, 200);
    let (page, more) = list(&body);
    assert_eq!((&page[..], more), (&newest[..2], true));
    assert_eq!(body["data"][0]["told"]["status"], 201, "{body}");
}

#[tokio::test]
async fn a_search_pages_within_its_matches() {
    let tf = spawn().await;
    let ids = charge_all(&tf, [5, 6, 5, 5, 7, 5]).await;
    let fives: Vec<String> = [5, 3, 2, 0].iter().map(|&i| ids[i].clone()).collect();
    let (page, more) = get_list(&tf, "/payments/charges?order_id=5&limit=3").await;
    assert_eq!((&page[..], more), (&fives[..3], true));
    let (page, more) = get_list(
        &tf,
        &format!(
            "/payments/charges?order_id=5&limit=3&starting_after={}",
            page[2]
        ),
    )
    .await;
    assert_eq!((&page[..], more), (&fives[3..], false));
    // A cursor of another order's record still places the page in time.
    let (page, _) = get_list(
        &tf,
        &format!("/payments/charges?order_id=5&starting_after={}", ids[4]),
    )
    .await;
    assert_eq!(page, vec![ids[3].clone(), ids[2].clone(), ids[0].clone()]);
}

#[tokio::test]
async fn bad_list_parameters_are_refused_with_what_was_wrong() {
    let tf = spawn().await;
    let ids = charge_all(&tf, [1]).await;
    let unknown = {
        // An id of this ledger's form that names no record.
        let mut id = ids[0].clone();
        let last = id.pop().unwrap();
        id.push(if last == '0' { '1' } else { '0' });
        id
    };
    for (query, word) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("limit=-1", "limit"),
        ("starting_after=nope", "nope"),
        (&format!("starting_after={unknown}") as &str, "charge"),
        ("ending_before=em_00000000", "em_00000000"),
        (
            &format!("starting_after={0}&ending_before={0}", ids[0]) as &str,
            "not both",
        ),
    ] {
        for route in ["/payments/charges", "/payments/ledger", "/payments/ui"] {
            let path = format!("{route}?{query}");
            let (status, body) = tf.get_json(&path).await;
            assert_eq!(status, 400, "{path}: {body}");
            assert!(error_mentions(&body, word), "{path}: {body}");
        }
    }
}

/// The ledger page at `path`: its rows' ids and the links it offers
/// (besides the navigation every page has).
async fn ledger_page(tf: &TestFakes, path: &str) -> (Vec<String>, Vec<String>) {
    let page = tf.page(path).await;
    let html = &page[page.find("</nav>").expect("the page's navigation")..];
    let rows = html
        .split("<tr")
        .skip(2)
        .filter_map(|row| {
            let start = row.find("ch_")?;
            Some(row[start..start + 11].to_string())
        })
        .collect();
    let links = html
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|href| href.starts_with("/payments/ui"))
        .map(|href| href.replace("&amp;", "&"))
        .collect();
    (rows, links)
}

#[tokio::test]
async fn the_ledger_page_shows_the_newest_page_and_links_to_the_others() {
    let tf = spawn().await;
    let ids = charge_all(&tf, 1..=120).await;
    let newest = newest_first(&ids);
    let (rows, links) = ledger_page(&tf, "/payments/ui").await;
    assert_eq!(rows, newest[..50]);
    let older = format!("/payments/ui?starting_after={}", newest[49]);
    assert_eq!(links, vec![older.clone()]);
    let (rows, links) = ledger_page(&tf, &older).await;
    assert_eq!(rows, newest[50..100]);
    let newer = format!("/payments/ui?ending_before={}", newest[50]);
    let oldest = format!("/payments/ui?starting_after={}", newest[99]);
    assert_eq!(
        links,
        vec!["/payments/ui".to_string(), newer.clone(), oldest.clone()]
    );
    let (rows, links) = ledger_page(&tf, &oldest).await;
    assert_eq!(rows, newest[100..]);
    assert_eq!(links.len(), 2, "no older page: {links:?}");
    let (rows, _) = ledger_page(&tf, &newer).await;
    assert_eq!(rows, newest[..50]);
    let (rows, links) = ledger_page(&tf, "/payments/ui?limit=7").await;
    assert_eq!(rows, newest[..7]);
    assert_eq!(
        links,
        vec![format!("/payments/ui?starting_after={}&limit=7", newest[6])]
    );
}

#[tokio::test]
async fn duplicate_markers_count_every_record_not_only_the_page() {
    let tf = spawn().await;
    // Order 1's first charge is far back, beyond the first page.
    let mut orders = vec![1];
    orders.extend(100..160);
    orders.push(1);
    let ids = charge_all(&tf, orders).await;
    let html = tf.page("/payments/ui").await;
    assert!(html.contains("order 1 (2×)"), "{html}");
    let newest_row = html
        .split("<tr")
        .find(|row| row.contains(ids.last().unwrap().as_str()))
        .unwrap();
    assert!(newest_row.starts_with(" class=\"dup\""), "{newest_row}");
    assert_eq!(tf.fakes.successes_for(Service::Payments, "1"), 2);
    assert_eq!(tf.fakes.duplicated_orders(Service::Payments, 5).0, 1);
}

#[tokio::test]
async fn keep_drops_the_oldest_records_and_keeps_the_counts() {
    let tf = spawn().await;
    tf.fakes.set_keep(Some(3));
    let ids = charge_all(&tf, [1, 1, 2, 3, 4, 1]).await;
    let kept: Vec<String> = tf
        .fakes
        .ledger(Service::Payments)
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(kept, ids[3..]);
    assert_eq!(tf.fakes.ledger_size(Service::Payments), (3, 3));
    // Every charge of order 1 counts, the two dropped ones too.
    assert_eq!(tf.fakes.successes_for(Service::Payments, "1"), 3);
    let html = tf.page("/payments/ui").await;
    assert!(html.contains("order 1 (3×)"), "{html}");
    assert!(html.contains("the 3 oldest were dropped"), "{html}");
    // Search shows only what is kept.
    let (status, body) = tf.get_json("/payments/charges?order_id=1").await;
    assert_eq!(status, 200);
    assert_eq!(body.as_array().map(Vec::len), Some(1), "{body}");
    let (status, body) = tf
        .get_json(&format!("/payments/charges?starting_after={}", ids[0]))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(error_mentions(&body, "dropped by --keep"), "{body}");
    // In-process, the same page.
    let page = tf
        .fakes
        .ledger_page(Service::Payments, &Filter::All, &Cursor::Newest, 2)
        .unwrap();
    assert_eq!(
        page.records
            .iter()
            .map(|r| r.id.clone())
            .collect::<Vec<_>>(),
        vec![ids[5].clone(), ids[4].clone()]
    );
    assert!(page.has_more);
    // A reset keeps `--keep`.
    tf.fakes.reset();
    charge_all(&tf, [1, 2, 3, 4]).await;
    assert_eq!(tf.fakes.ledger_size(Service::Payments), (3, 1));
}
