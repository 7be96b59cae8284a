//! The README's walkthrough ("The web lab: watch a double charge appear") in
//! a real browser: headless Chromium driven through chromedriver (WebDriver,
//! the `fantoccini` client) against the real `lab serve` binary. It clicks
//! the links and buttons a user would, by their visible text, fills the
//! forms, and waits for each page to say what the README says it will: the
//! email crash rule in force, the order's second charge on its timeline and
//! in its Payment row, and the payments ledger marking the order. A
//! screenshot of each step goes to `browser-screenshots/` in the target
//! folder (the README's images come from there).
//!
//! Without chromium and chromedriver the test says so and passes, unless
//! `CI` is set: then it fails, so CI never skips it unseen.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use idemlab_test_support::lab_binary::{lab_serve, serve_urls, Running};
use idemlab_test_support::servers::unavailable;
use idemlab_test_support::wait_until_within;
use serde_json::json;

/// Long enough for a loaded 2-core machine; only a hang reaches it.
const PAGE_WAIT: Duration = Duration::from_secs(30);
/// The order's retry is a fraction of a second at `--time-scale 0.01`; this
/// is for a machine busy with other builds.
const ORDER_WAIT: Duration = Duration::from_secs(60);
/// The browser window: wide enough for the README's images.
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 1000;

/// A program from `env` or its Debian path, if it is there.
fn program(env: &str, debian: &str) -> Option<PathBuf> {
    let path = std::env::var_os(env).map_or_else(|| PathBuf::from(debian), PathBuf::from);
    path.is_file().then_some(path)
}

/// Where the screenshots go: `browser-screenshots/` in the target folder
/// (the parent of Cargo's `CARGO_TARGET_TMPDIR`, so it follows
/// `CARGO_TARGET_DIR`).
fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is inside the target folder")
        .join("browser-screenshots")
}

/// chromedriver on a port it chose (`--port=0`; it prints the port), in a
/// process group of its own so that the browser it starts is killed with it.
struct Chromedriver {
    child: Child,
    url: String,
}

impl Chromedriver {
    async fn start(binary: &Path) -> Self {
        let mut child = Command::new(binary)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", binary.display()));
        let stdout = child.stdout.take().expect("chromedriver's stdout");
        let mut driver = Chromedriver {
            child,
            url: String::new(),
        };
        // Its output is read to the end on a thread of its own, so that a
        // full pipe never blocks it; the test reads the lines it needs.
        let (lines, said) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let deadline = Instant::now() + PAGE_WAIT;
        let port = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = said.recv_timeout(left).unwrap_or_else(|_| {
                panic!("chromedriver did not say its port within {PAGE_WAIT:?}")
            });
            if let Some(port) = line
                .split("started successfully on port ")
                .nth(1)
                .and_then(|rest| rest.trim_end_matches('.').parse::<u16>().ok())
            {
                break port;
            }
        };
        driver.url = format!("http://127.0.0.1:{port}");
        let status = format!("{}/status", driver.url);
        let http = reqwest::Client::new();
        wait_until_within("chromedriver's /status says ready", PAGE_WAIT, || {
            let request = http.get(&status);
            async move {
                match request.send().await {
                    Ok(response) => response
                        .json::<serde_json::Value>()
                        .await
                        .is_ok_and(|s| s["value"]["ready"] == true),
                    Err(_) => false,
                }
            }
        })
        .await;
        driver
    }
}

impl Drop for Chromedriver {
    /// Kills its process group (chromedriver and any browser left from a
    /// session that was not closed) by its id, then reaps chromedriver.
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

/// A headless Chromium session through `driver`.
async fn browser(driver: &Chromedriver, chromium: &Path) -> Client {
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new",
                // Needed as root (CI and this lab's machines run as root).
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                format!("--window-size={WIDTH},{HEIGHT}"),
            ],
        },
    });
    let serde_json::Value::Object(capabilities) = capabilities else {
        unreachable!("an object")
    };
    // WebDriver on 127.0.0.1 over plain HTTP: no TLS connector.
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| panic!("no browser session from chromedriver: {e}"))
}

/// Saves the whole page (the window made as tall as the page, up to a
/// limit, then put back) as `{name}.png` in [`screenshot_dir`].
async fn screenshot(client: &Client, name: &str) {
    let height = client
        .execute(
            "return document.documentElement.scrollHeight + window.outerHeight - window.innerHeight;",
            vec![],
        )
        .await
        .ok()
        .and_then(|h| h.as_u64())
        .map_or(HEIGHT, |h| u32::try_from(h).unwrap_or(HEIGHT).clamp(HEIGHT, 4000));
    client.set_window_size(WIDTH, height).await.unwrap();
    let png = client.screenshot().await.unwrap();
    client.set_window_size(WIDTH, HEIGHT).await.unwrap();
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// The visible text of the first element `css` finds, or `None` when there
/// is none (yet), or the page went away while it was read (a reload).
async fn text(client: &Client, css: &str) -> Option<String> {
    client.find(Locator::Css(css)).await.ok()?.text().await.ok()
}

/// How many elements `css` finds (none while the page reloads).
async fn count(client: &Client, css: &str) -> usize {
    client
        .find_all(Locator::Css(css))
        .await
        .map_or(0, |found| found.len())
}

/// Waits until the first element `css` finds says `words`.
async fn wait_for_text(client: &Client, css: &str, words: &str, limit: Duration) {
    wait_until_within(&format!("`{css}` says {words:?}"), limit, || async {
        text(client, css).await.is_some_and(|t| t.contains(words))
    })
    .await;
}

/// The second charge on the order's timeline: the payments provider
/// performed the charge twice.
const PERFORMED_CHARGES: &str = "#timeline li.call[data-service=\"payments\"][data-operation=\"charge\"][data-provider=\"performed\"]";

/// The README's steps, as a user does them; returns the order's id.
async fn walkthrough(client: &Client, web: &str) -> i64 {
    // 1. The lab's front page: the unsafe variant, every service fine.
    client.goto(&format!("{web}/")).await.unwrap();
    wait_for_text(client, "#status-email h3", "✅", PAGE_WAIT).await;
    screenshot(client, "01-lab-index").await;

    // 2. Email → Manage…: the fake email service's "Make it behave badly"
    // form. Add a rule: mode crash, calls 1, Save.
    client
        .find(Locator::Css("#status-email"))
        .await
        .unwrap()
        .find(Locator::LinkText("Manage…"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let add_rule = "//h2[normalize-space()='Add a rule']/following-sibling::form[1]";
    wait_until_within("the email behaviour form", PAGE_WAIT, || async {
        client.find(Locator::XPath(add_rule)).await.is_ok()
    })
    .await;
    let blank = client.find(Locator::XPath(add_rule)).await.unwrap();
    blank
        .find(Locator::XPath(".//select[starts-with(@name, 'mode_')]"))
        .await
        .unwrap()
        .select_by_label("crash")
        .await
        .unwrap();
    let calls = blank
        .find(Locator::XPath(".//input[starts-with(@name, 'calls_')]"))
        .await
        .unwrap();
    calls.clear().await.unwrap();
    calls.send_keys("1").await.unwrap();
    client
        .find(Locator::XPath("//button[normalize-space()='Save']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let saved =
        "//table[@id='rules']//tr[starts-with(@id, 'rule-')]/td[2][normalize-space()='crash']";
    wait_until_within("the crash rule saved", PAGE_WAIT, || async {
        client.find(Locator::XPath(saved)).await.is_ok()
    })
    .await;
    screenshot(client, "02-email-rule").await;

    // Back on the lab: Email is 🛑 with the rule listed.
    client.goto(&format!("{web}/")).await.unwrap();
    wait_for_text(client, "#status-email h3", "🛑", PAGE_WAIT).await;
    let rules = text(client, "#status-email ul").await.unwrap_or_default();
    assert!(rules.contains("crash"), "the rule listed: {rules:?}");

    // 3. Place an order: a shipping address, Place Order.
    client
        .find(Locator::LinkText("Place an order"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until_within("the order form", PAGE_WAIT, || async {
        client.find(Locator::Id("order_address")).await.is_ok()
    })
    .await;
    let address = client.find(Locator::Id("order_address")).await.unwrap();
    address.clear().await.unwrap();
    address.send_keys("1 Main St, Springfield").await.unwrap();
    screenshot(client, "03-order-form").await;
    client
        .find(Locator::XPath("//button[normalize-space()='Place Order']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let order_id = || async {
        let url = client.current_url().await.ok()?;
        url.path().strip_prefix("/orders/")?.parse::<i64>().ok()
    };
    wait_until_within("the order's page", PAGE_WAIT, || async {
        order_id().await.is_some()
    })
    .await;
    let id = order_id().await.expect("an order id in the URL");

    // The page reloads itself (meta refresh) while the job runs, is retried
    // and charges again; when it stops, the Payment row reads the payments
    // ledger: two charges. Every read finds the elements afresh.
    wait_until_within(
        "the order is done and its Payment row says 2 × charge",
        ORDER_WAIT,
        || async {
            count(client, "meta[http-equiv=\"refresh\"]").await == 0
                && text(client, "#step-payment")
                    .await
                    .is_some_and(|t| t.contains("⚠ 2 × charge for this order"))
        },
    )
    .await;
    assert_eq!(
        count(client, PERFORMED_CHARGES).await,
        2,
        "the order's timeline shows both charges the provider performed"
    );
    let mut outcomes = Vec::new();
    for attempt in client
        .find_all(Locator::Css("#timeline li.attempt"))
        .await
        .unwrap()
    {
        outcomes.push(
            attempt
                .attr("data-outcome")
                .await
                .unwrap()
                .unwrap_or_default(),
        );
    }
    assert_eq!(
        outcomes,
        ["failed", "done"],
        "the job failed on the email, then its retry was done"
    );
    screenshot(client, "04-order-page-timeline").await;

    // 4. The Payments ledger (the lab's Payments block → Ledger): the order's
    // charges marked.
    client.goto(&format!("{web}/")).await.unwrap();
    client
        .find(Locator::Css("#status-payments"))
        .await
        .unwrap()
        .find(Locator::LinkText("Ledger"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let warning = format!("More than one effect for order {id} (2×)");
    wait_for_text(client, "p.warn", &warning, PAGE_WAIT).await;
    assert_eq!(
        count(client, "tr.dup").await,
        2,
        "both of the order's charges are marked"
    );
    screenshot(client, "05-payments-ledger").await;
    id
}

/// Saves what the browser shows when a step failed: `failure.png` and the
/// page's address and text on stderr.
async fn report_failure(client: &Client) {
    let url = client.current_url().await.map(|u| u.to_string());
    let body = text(client, "body").await;
    eprintln!(
        "the browser was at {url:?}, showing:\n{}",
        body.unwrap_or_default()
    );
    if let Ok(png) = client.screenshot().await {
        let dir = screenshot_dir();
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join("failure.png"), png);
        eprintln!("screenshot: {}", dir.join("failure.png").display());
    }
}

#[tokio::test]
async fn the_readme_walkthrough_shows_a_double_charge_in_chromium() {
    let (Some(chromedriver), Some(chromium)) = (
        program("CHROMEDRIVER", "/usr/bin/chromedriver"),
        program("CHROMIUM", "/usr/bin/chromium"),
    ) else {
        unavailable("chromium and chromedriver (apt-get install chromium chromium-driver)");
        return;
    };
    // This run's screenshots only: no failure.png left from an earlier one.
    let _ = std::fs::remove_dir_all(screenshot_dir());
    let data_dir = tempfile::tempdir().unwrap();
    let mut child = lab_serve(env!("CARGO_BIN_EXE_lab"), data_dir.path())
        .args(["--structure", "monolithic", "--charge", "none"])
        .spawn()
        .unwrap();
    let mut banner = BufReader::new(child.stdout.take().unwrap()).lines();
    let _lab = Running(Some(child));
    let (web, _fakes) = serve_urls(&mut banner);

    let driver = Chromedriver::start(&chromedriver).await;
    let client = browser(&driver, &chromium).await;
    let walked = std::panic::AssertUnwindSafe(walkthrough(&client, &web))
        .catch_unwind()
        .await;
    if walked.is_err() {
        report_failure(&client).await;
    }
    // Ends the session, and with it the browser.
    let closed = client.close().await;
    if let Err(panic) = walked {
        std::panic::resume_unwind(panic);
    }
    closed.expect("the browser session closes");
    drop(driver);
}
