//! Placing an order through the app — a command or an HTTP request — and
//! reading the app's id for it from what came back.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::AsyncReadExt;

use super::processes::{
    describe, http_failure, innermost, seconds, signal_group, spawn_failure, GroupSignal,
};

/// Where the app's id for a placed order is (`id = "…"` in `[place_order]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdKind {
    /// `"n"`: the order's number itself (1, 2, …).
    N,
    /// `"stdout"`: the last non-empty line the command printed.
    Stdout,
    /// `"location"`: the last path segment of the answer's `Location` header.
    Location,
    /// `"json:PATH"`: a field of the JSON answer (`json:order.id`, dotted,
    /// array indices as numbers), kept as a JSON pointer (`/order/id`).
    Json(String),
}

impl IdKind {
    /// Reads an `id` value; the error says which values there are.
    pub fn parse(text: &str) -> Result<IdKind, String> {
        match text {
            "n" => Ok(IdKind::N),
            "stdout" => Ok(IdKind::Stdout),
            "location" => Ok(IdKind::Location),
            _ => match text.strip_prefix("json:") {
                Some(path) if !path.is_empty() => Ok(IdKind::Json(
                    path.split('.').fold(String::new(), |p, s| p + "/" + s),
                )),
                _ => Err(format!(
                    "unknown `id` {text:?}: use \"n\", \"stdout\", \"location\" or \"json:PATH\" (e.g. \"json:order.id\")"
                )),
            },
        }
    }
}

/// How the lab places one order (`[place_order]`), with every template,
/// `{n}` included, already filled in.
#[derive(Debug, Clone, PartialEq)]
pub enum OrderRequest {
    /// `command = [...]`: a program run to completion, without a shell.
    Command {
        argv: Vec<String>,
        /// Added to the lab's own environment.
        env: Vec<(String, String)>,
        cwd: PathBuf,
    },
    /// `http = { ... }`: one request; redirects are not followed (the
    /// redirect is the answer: a Rails or Sinatra app answers a placed
    /// order with `303 See Other` to its page).
    Http {
        method: String,
        url: String,
        /// Sent as `application/x-www-form-urlencoded` when not empty.
        form: Vec<(String, String)>,
        /// Sent as `application/json`; not together with `form`.
        json: Option<Value>,
        headers: Vec<(String, String)>,
    },
}

/// What came back from placing an order, for reading the id from.
enum Answer {
    Http {
        status: reqwest::StatusCode,
        location: Option<String>,
        body: String,
    },
    Command {
        stdout: String,
    },
}

/// What the app made of an order the lab placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// It took the order: the app's id for it, read as `id` says.
    Accepted(String),
    /// It refused the order: it answered an error status (4xx, 5xx), or the
    /// command exited with a failure. `why` quotes the answer, starting
    /// `placing order N:`. `id` is set when the refusal names the order
    /// anyway — a `Location` header, or the `json:PATH` field in an error
    /// body — for an app that saved the order before it failed (the
    /// dual-write of an enqueue after the commit, with the queue down).
    Refused { why: String, id: Option<String> },
}

/// How much of an answer's body or output an error quotes.
const QUOTED_CHARS: usize = 300;

/// How many lines of a failed command's output an error quotes.
const QUOTED_LINES: usize = 5;

/// Places order number `n` and tells what the app made of it: accepted
/// (with its id, read as `id` says) or refused. Takes at most `within` (a
/// command still running then is killed with its whole process group). An
/// error — nothing answered, the answer has no id — starts with
/// `placing order N:`.
pub async fn place(
    request: &OrderRequest,
    id: &IdKind,
    n: u32,
    within: Duration,
) -> Result<Placement, String> {
    let answer = match request {
        OrderRequest::Command { argv, env, cwd } => run(argv, env, cwd, within).await,
        OrderRequest::Http {
            method,
            url,
            form,
            json,
            headers,
        } => send(method, url, form, json.as_ref(), headers, within).await,
    };
    let label = |e: String| format!("placing order {n}: {e}");
    match answer.map_err(label)? {
        (answer, None) => read_id(&answer, id, n)
            .map(Placement::Accepted)
            .map_err(label),
        (answer, Some(why)) => Ok(Placement::Refused {
            why: label(why),
            id: named_in_refusal(&answer, id),
        }),
    }
}

/// The order's id in a refusal, when the answer names one: the `Location`
/// header or the `json:PATH` field (`n` and `stdout` name nothing the app
/// said about the order).
fn named_in_refusal(answer: &Answer, id: &IdKind) -> Option<String> {
    match (id, answer) {
        (IdKind::Location | IdKind::Json(_), _) => read_id(answer, id, 0).ok(),
        (IdKind::N | IdKind::Stdout, _) => None,
    }
}

/// Sends the request; the answer, and why it is a refusal when its status
/// is not 2xx or 3xx.
async fn send(
    method: &str,
    url: &str,
    form: &[(String, String)],
    json: Option<&Value>,
    headers: &[(String, String)],
    within: Duration,
) -> Result<(Answer, Option<String>), String> {
    let verb = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("{method:?} is not an HTTP method"))?;
    if json.is_some() && !form.is_empty() {
        return Err("the request has both `form` and `json`; give one of them".to_string());
    }
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(within)
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
    let mut request = client.request(verb.clone(), url);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    if let Some(json) = json {
        request = request.json(json);
    } else if !form.is_empty() {
        request = request
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form_body(form));
    }
    let what = format!("{verb} {url}");
    let failed = |e: reqwest::Error| {
        if e.is_builder() {
            format!("{what} cannot be sent: {}", innermost(&e))
        } else if e.is_timeout() {
            format!("{what} did not answer within {}", seconds(within))
        } else {
            format!("{what} failed: {}", http_failure(&e))
        }
    };
    let response = request.send().await.map_err(failed)?;
    let status = response.status();
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let body = response.text().await.map_err(failed)?;
    let refused = (!(status.is_success() || status.is_redirection()))
        .then(|| format!("{what} answered {status}: {}", start_of(&body)));
    Ok((
        Answer::Http {
            status,
            location,
            body,
        },
        refused,
    ))
}

/// Runs the command to its end; a failed exit is a refusal quoting the
/// end of its stderr.
async fn run(
    argv: &[String],
    env: &[(String, String)],
    cwd: &std::path::Path,
    within: Duration,
) -> Result<(Answer, Option<String>), String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("its command is empty".to_string());
    };
    let shown = shown(argv);
    let deadline = Instant::now() + within;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| spawn_failure(program, cwd, &e))?;
    // Killed with its group even when this future is dropped half-way
    // (`kill_on_drop` alone would kill only the leader).
    let group = GroupGuard(child.id().unwrap_or(0));
    let stdout = tokio::spawn(read_all(child.stdout.take()));
    let stderr = tokio::spawn(read_all(child.stderr.take()));
    let ended = tokio::time::timeout(within, child.wait()).await;
    // Whatever it left in its group goes too: nothing placed for one order
    // may outlive it (or hold its output open).
    drop(group);
    let status = match ended {
        Ok(Ok(status)) => Some(status),
        Ok(Err(e)) => return Err(format!("`{shown}`: cannot wait for it: {e}")),
        Err(_) => {
            let _ = child.wait().await;
            None
        }
    };
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1));
    let outputs = tokio::time::timeout(left, async { (stdout.await, stderr.await) }).await;
    let (stdout, stderr) = match outputs {
        Ok((Ok(stdout), Ok(stderr))) => (stdout, stderr),
        _ => (String::new(), String::new()),
    };
    let Some(status) = status else {
        return Err(format!(
            "`{shown}` did not finish within {} (killed){}",
            seconds(within),
            quoted_output(&stdout, &stderr)
        ));
    };
    let refused = (!status.success()).then(|| {
        format!(
            "`{shown}` {}{}",
            describe(status),
            quoted_output(&stdout, &stderr)
        )
    });
    Ok((Answer::Command { stdout }, refused))
}

/// `SIGKILL` to a command's process group when dropped.
struct GroupGuard(u32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        signal_group(self.0, GroupSignal::Kill);
    }
}

/// Reads the id out of the answer.
fn read_id(answer: &Answer, id: &IdKind, n: u32) -> Result<String, String> {
    let found = match (id, answer) {
        (IdKind::N, _) => return Ok(n.to_string()),
        (IdKind::Stdout, Answer::Command { stdout }) => last_line(stdout).ok_or_else(|| {
            "the command printed nothing, and with id = \"stdout\" its last line is the order's id"
                .to_string()
        })?,
        (IdKind::Stdout, Answer::Http { .. }) => {
            return Err(
                "id = \"stdout\" needs a `command` to place orders (for an HTTP request use \"location\" or \"json:PATH\")"
                    .to_string(),
            )
        }
        (IdKind::Location, Answer::Http {
            status, location, ..
        }) => {
            let location = location.as_deref().ok_or_else(|| {
                format!("the answer ({status}) has no Location header, which id = \"location\" reads")
            })?;
            last_segment(location).ok_or_else(|| {
                format!("the Location header {location:?} has no path segment to read the id from")
            })?
        }
        (IdKind::Location, Answer::Command { .. }) => {
            return Err(
                "id = \"location\" needs an `http` request to place orders (for a command use \"stdout\" or \"json:PATH\")"
                    .to_string(),
            )
        }
        (IdKind::Json(pointer), Answer::Http { body, .. }) => json_field(body, pointer)?,
        (IdKind::Json(pointer), Answer::Command { stdout }) => json_field(stdout, pointer)?,
    };
    if found.is_empty() {
        return Err(format!("the order's id ({}) is empty", id_name(id)));
    }
    Ok(found)
}

/// The field at `pointer` (`/order/id`) of a JSON text, as text.
fn json_field(text: &str, pointer: &str) -> Result<String, String> {
    let path = pointer.trim_start_matches('/').replace('/', ".");
    let value: Value = serde_json::from_str(text.trim())
        .or_else(|e| {
            // A command may print other lines before its JSON.
            last_line(text)
                .and_then(|line| serde_json::from_str(&line).ok())
                .ok_or(e)
        })
        .map_err(|e| {
            format!(
                "the answer is not JSON ({e}), so it has no {path}: {}",
                start_of(text)
            )
        })?;
    match value.pointer(pointer) {
        Some(Value::String(text)) => Ok(text.clone()),
        Some(Value::Number(number)) => Ok(number.to_string()),
        Some(other) => Err(format!(
            "{path} in the answer is {other}, not a string or a number: {}",
            start_of(text)
        )),
        None => Err(format!("the answer has no {path}: {}", start_of(text))),
    }
}

/// `json:order.id` for messages.
fn id_name(id: &IdKind) -> String {
    match id {
        IdKind::N => "n".to_string(),
        IdKind::Stdout => "stdout".to_string(),
        IdKind::Location => "location".to_string(),
        IdKind::Json(pointer) => {
            format!("json:{}", pointer.trim_start_matches('/').replace('/', "."))
        }
    }
}

/// The last non-empty path segment of a `Location` (absolute or relative;
/// query and fragment dropped): `/orders/42?tab=1` → `42`.
fn last_segment(location: &str) -> Option<String> {
    let without_query = location.split(['?', '#']).next().unwrap_or("");
    let path = match without_query.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map_or("", |(_, path)| path),
        None => without_query,
    };
    path.split('/')
        .rfind(|segment| !segment.is_empty())
        .map(str::to_string)
}

/// The last non-empty line, trimmed.
fn last_line(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .map(str::to_string)
}

/// `application/x-www-form-urlencoded`, as browsers encode a form (every
/// byte but `A-Z a-z 0-9 * - . _` percent-encoded, a space as `+`).
fn form_body(form: &[(String, String)]) -> String {
    fn encode(text: &str, into: &mut String) {
        for byte in text.bytes() {
            match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                    into.push(char::from(byte))
                }
                b' ' => into.push('+'),
                _ => into.push_str(&format!("%{byte:02X}")),
            }
        }
    }
    let mut body = String::new();
    for (i, (name, value)) in form.iter().enumerate() {
        if i > 0 {
            body.push('&');
        }
        encode(name, &mut body);
        body.push('=');
        encode(value, &mut body);
    }
    body
}

/// Reads a child's pipe to its end (lossy: an app may print anything).
async fn read_all<R: tokio::io::AsyncRead + Unpin>(pipe: Option<R>) -> String {
    let mut bytes = Vec::new();
    if let Some(mut pipe) = pipe {
        let _ = pipe.read_to_end(&mut bytes).await;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `; the last lines of its stderr:` and them, or of its stdout when
/// stderr is empty.
fn quoted_output(stdout: &str, stderr: &str) -> String {
    let (which, text) = if stderr.trim().is_empty() {
        ("stdout", stdout)
    } else {
        ("stderr", stderr)
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return ", printing nothing".to_string();
    }
    let quoted: String = lines[lines.len().saturating_sub(QUOTED_LINES)..]
        .iter()
        .map(|line| format!("\n    {line}"))
        .collect();
    format!("; the last lines of its {which}:{quoted}")
}

/// The start of a body or output, on one line, for an error.
fn start_of(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        return "(nothing)".to_string();
    }
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(QUOTED_CHARS) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

/// A command line as a user would type it.
fn shown(argv: &[String]) -> String {
    argv.iter()
        .map(|arg| {
            if arg.is_empty() || arg.contains(char::is_whitespace) {
                format!("{arg:?}")
            } else {
                arg.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    use axum::response::{IntoResponse, Response};

    /// One request the test app saw.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        path: String,
        content_type: String,
        marker: String,
        body: String,
    }

    type Log = Arc<Mutex<Vec<Seen>>>;

    /// A tiny app with one route per answer a real app might give.
    async fn answer(
        axum::extract::State(log): axum::extract::State<Log>,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: String,
    ) -> Response {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        log.lock().unwrap().push(Seen {
            method: method.to_string(),
            path: uri.path().to_string(),
            content_type: header("content-type"),
            marker: header("x-idemlab"),
            body,
        });
        let redirect =
            |to: &str| (StatusCode::SEE_OTHER, [("location", to.to_string())], "").into_response();
        match uri.path() {
            "/orders" => redirect("/orders/42?tab=steps#top"),
            "/absolute" => redirect("http://shop.example/orders/abc-7/"),
            "/bare-host" => redirect("http://shop.example"),
            "/api/orders" => (
                StatusCode::CREATED,
                r#"{"order": {"id": 77, "ref": "A-1", "none": null}, "items": [{"sku": "b"}]}"#,
            )
                .into_response(),
            "/not-json" => "<html>thanks for your order</html>".into_response(),
            "/invalid" => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "quantity must be positive\n\nand more",
            )
                .into_response(),
            "/saved-not-enqueued" => (
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"error": "saved, not enqueued", "id": 9}"#,
            )
                .into_response(),
            "/slow" => std::future::pending().await,
            _ => "ok".into_response(),
        }
    }

    async fn app() -> (String, Log) {
        let log = Log::default();
        let router = axum::Router::new().fallback(answer).with_state(log.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        (base, log)
    }

    fn post(url: String) -> OrderRequest {
        OrderRequest::Http {
            method: "post".into(),
            url,
            form: Vec::new(),
            json: None,
            headers: Vec::new(),
        }
    }

    fn sh(script: &str) -> OrderRequest {
        OrderRequest::Command {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: Vec::new(),
            cwd: std::env::temp_dir(),
        }
    }

    const SECOND: Duration = Duration::from_secs(5);

    /// [`place`], with a refusal as an error (most tests want an id).
    async fn placed(
        request: &OrderRequest,
        id: &IdKind,
        n: u32,
        within: Duration,
    ) -> Result<String, String> {
        match place(request, id, n, within).await? {
            Placement::Accepted(id) => Ok(id),
            Placement::Refused { why, .. } => Err(why),
        }
    }

    #[tokio::test]
    async fn a_refusal_is_told_apart_and_keeps_an_id_the_app_named() {
        let (base, _) = app().await;
        let json_id = IdKind::parse("json:id").unwrap();
        let saved = place(
            &post(format!("{base}/saved-not-enqueued")),
            &json_id,
            3,
            SECOND,
        )
        .await
        .unwrap();
        assert_eq!(
            saved,
            Placement::Refused {
                why: format!(
                    "placing order 3: POST {base}/saved-not-enqueued answered 500 Internal Server Error: {{\"error\": \"saved, not enqueued\", \"id\": 9}}"
                ),
                id: Some("9".into()),
            }
        );
        // A refusal that names no order has no id, whatever `id` says.
        for kind in [IdKind::N, IdKind::Location, json_id] {
            let refused = place(&post(format!("{base}/invalid")), &kind, 5, SECOND)
                .await
                .unwrap();
            assert!(
                matches!(&refused, Placement::Refused { id: None, why } if why.contains("answered 422")),
                "{kind:?}: {refused:?}"
            );
        }
        let failed = place(&sh("echo 12; exit 3"), &IdKind::Stdout, 4, SECOND)
            .await
            .unwrap();
        assert!(
            matches!(&failed, Placement::Refused { id: None, why } if why.starts_with("placing order 4: `sh -c")),
            "{failed:?}"
        );
    }

    #[tokio::test]
    async fn a_form_post_is_read_by_its_location() {
        let (base, log) = app().await;
        let request = OrderRequest::Http {
            method: "POST".into(),
            url: format!("{base}/orders"),
            form: vec![
                ("order[quantity]".into(), "1".into()),
                ("order[email]".into(), "buyer 1@example.com".into()),
            ],
            json: None,
            headers: vec![("X-Idemlab".into(), "order-1".into())],
        };
        let id = placed(&request, &IdKind::Location, 1, SECOND)
            .await
            .unwrap();
        assert_eq!(id, "42");
        let seen = log.lock().unwrap()[0].clone();
        assert_eq!(seen.method, "POST");
        assert_eq!(seen.path, "/orders");
        assert_eq!(seen.content_type, "application/x-www-form-urlencoded");
        assert_eq!(
            seen.body,
            "order%5Bquantity%5D=1&order%5Bemail%5D=buyer+1%40example.com"
        );
        assert_eq!(seen.marker, "order-1");
    }

    #[tokio::test]
    async fn an_absolute_location_gives_its_last_segment() {
        let (base, _) = app().await;
        let id = placed(
            &post(format!("{base}/absolute")),
            &IdKind::Location,
            1,
            SECOND,
        )
        .await;
        assert_eq!(id.unwrap(), "abc-7");
        let error = placed(
            &post(format!("{base}/bare-host")),
            &IdKind::Location,
            2,
            SECOND,
        )
        .await
        .unwrap_err();
        assert_eq!(
            error,
            "placing order 2: the Location header \"http://shop.example\" has no path segment to read the id from"
        );
    }

    #[tokio::test]
    async fn a_json_post_is_read_by_a_field() {
        let (base, log) = app().await;
        let request = OrderRequest::Http {
            method: "POST".into(),
            url: format!("{base}/api/orders"),
            form: Vec::new(),
            json: Some(serde_json::json!({"quantity": 1, "email": "buyer3@example.com"})),
            headers: Vec::new(),
        };
        let read = |path: &str| IdKind::parse(&format!("json:{path}")).unwrap();
        assert_eq!(
            placed(&request, &read("order.id"), 3, SECOND)
                .await
                .unwrap(),
            "77"
        );
        assert_eq!(
            placed(&request, &read("order.ref"), 3, SECOND)
                .await
                .unwrap(),
            "A-1"
        );
        assert_eq!(
            placed(&request, &read("items.0.sku"), 3, SECOND)
                .await
                .unwrap(),
            "b"
        );
        let seen = log.lock().unwrap()[0].clone();
        assert_eq!(seen.content_type, "application/json");
        let body: Value = serde_json::from_str(&seen.body).unwrap();
        assert_eq!(body["email"], "buyer3@example.com");

        let missing = placed(&request, &read("order.number"), 3, SECOND)
            .await
            .unwrap_err();
        assert!(
            missing.starts_with(
                "placing order 3: the answer has no order.number: {\"order\": {\"id\": 77"
            ),
            "{missing}"
        );
        let null = placed(&request, &read("order.none"), 3, SECOND)
            .await
            .unwrap_err();
        assert!(
            null.starts_with(
                "placing order 3: order.none in the answer is null, not a string or a number"
            ),
            "{null}"
        );
        let html = placed(&post(format!("{base}/not-json")), &read("id"), 4, SECOND)
            .await
            .unwrap_err();
        assert!(
            html.starts_with("placing order 4: the answer is not JSON ("),
            "{html}"
        );
        assert!(
            html.ends_with("so it has no id: <html>thanks for your order</html>"),
            "{html}"
        );
    }

    #[tokio::test]
    async fn n_is_the_number_once_the_request_succeeds() {
        let (base, log) = app().await;
        let request = OrderRequest::Http {
            method: "GET".into(),
            url: format!("{base}/plain"),
            form: Vec::new(),
            json: None,
            headers: Vec::new(),
        };
        assert_eq!(
            placed(&request, &IdKind::N, 12, SECOND).await.unwrap(),
            "12"
        );
        assert_eq!(log.lock().unwrap()[0].method, "GET");
        let error = placed(&post(format!("{base}/invalid")), &IdKind::N, 5, SECOND)
            .await
            .unwrap_err();
        assert_eq!(
            error,
            format!("placing order 5: POST {base}/invalid answered 422 Unprocessable Entity: quantity must be positive and more")
        );
    }

    #[tokio::test]
    async fn http_errors_say_what_happened() {
        let (base, _) = app().await;
        let no_location = placed(&post(format!("{base}/plain")), &IdKind::Location, 1, SECOND)
            .await
            .unwrap_err();
        assert_eq!(
            no_location,
            "placing order 1: the answer (200 OK) has no Location header, which id = \"location\" reads"
        );
        let stdout = placed(&post(format!("{base}/plain")), &IdKind::Stdout, 1, SECOND)
            .await
            .unwrap_err();
        assert!(
            stdout.contains("id = \"stdout\" needs a `command`"),
            "{stdout}"
        );

        let nobody = format!(
            "http://127.0.0.1:{}/orders",
            super::super::processes::free_port()
        );
        let refused = placed(&post(nobody.clone()), &IdKind::N, 1, SECOND)
            .await
            .unwrap_err();
        assert!(
            refused.starts_with(&format!(
                "placing order 1: POST {nobody} failed: cannot connect ("
            )),
            "{refused}"
        );

        let began = Instant::now();
        let slow = placed(
            &post(format!("{base}/slow")),
            &IdKind::N,
            1,
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
        assert!(began.elapsed() < Duration::from_secs(3));
        assert_eq!(
            slow,
            format!("placing order 1: POST {base}/slow did not answer within 0.3 s")
        );

        let mut bad = post(format!("{base}/orders"));
        if let OrderRequest::Http { method, .. } = &mut bad {
            *method = "PO ST".into();
        }
        let method = placed(&bad, &IdKind::N, 1, SECOND).await.unwrap_err();
        assert_eq!(method, "placing order 1: \"PO ST\" is not an HTTP method");

        let both = OrderRequest::Http {
            method: "POST".into(),
            url: format!("{base}/orders"),
            form: vec![("a".into(), "1".into())],
            json: Some(serde_json::json!({})),
            headers: Vec::new(),
        };
        let both = placed(&both, &IdKind::N, 1, SECOND).await.unwrap_err();
        assert!(both.contains("both `form` and `json`"), "{both}");
    }

    #[tokio::test]
    async fn a_command_is_read_by_its_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let request = OrderRequest::Command {
            argv: vec![
                "sh".into(),
                "-c".into(),
                "echo 'Loading app...'; echo \"$PREFIX-$(basename \"$(pwd)\")\"; echo".into(),
            ],
            env: vec![("PREFIX".into(), "order".into())],
            cwd: dir.path().to_path_buf(),
        };
        let folder = dir.path().file_name().unwrap().to_string_lossy();
        assert_eq!(
            placed(&request, &IdKind::Stdout, 1, SECOND).await.unwrap(),
            format!("order-{folder}")
        );
        assert_eq!(placed(&request, &IdKind::N, 9, SECOND).await.unwrap(), "9");
        let json = sh("echo 'warming up'; echo '{\"id\": \"ord_5\"}'");
        let id = IdKind::parse("json:id").unwrap();
        assert_eq!(placed(&json, &id, 1, SECOND).await.unwrap(), "ord_5");
    }

    #[tokio::test]
    async fn command_errors_say_what_happened() {
        let failed = sh(
            "echo starting; echo 'NameError: uninitialized constant CompleteOrderJob' >&2; exit 1",
        );
        let error = placed(&failed, &IdKind::N, 2, SECOND).await.unwrap_err();
        assert!(
            error.starts_with("placing order 2: `sh -c \"echo starting;"),
            "{error}"
        );
        assert!(
            error.ends_with("exited with status 1; the last lines of its stderr:\n    NameError: uninitialized constant CompleteOrderJob"),
            "{error}"
        );

        let silent = placed(&sh("true"), &IdKind::Stdout, 1, SECOND)
            .await
            .unwrap_err();
        assert!(silent.contains("the command printed nothing"), "{silent}");
        let location = placed(&sh("echo 1"), &IdKind::Location, 1, SECOND)
            .await
            .unwrap_err();
        assert!(
            location.contains("id = \"location\" needs an `http` request"),
            "{location}"
        );

        let missing = OrderRequest::Command {
            argv: vec!["idemlab-no-such-program".into()],
            env: Vec::new(),
            cwd: std::env::temp_dir(),
        };
        assert_eq!(
            placed(&missing, &IdKind::N, 1, SECOND).await.unwrap_err(),
            "placing order 1: `idemlab-no-such-program` not found on PATH"
        );
    }

    #[tokio::test]
    async fn a_command_past_its_time_is_killed_with_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let request = OrderRequest::Command {
            argv: vec![
                "sh".into(),
                "-c".into(),
                "sleep 300 & echo $! > grandchild.pid; echo 'waiting for redis' >&2; wait".into(),
            ],
            env: Vec::new(),
            cwd: dir.path().to_path_buf(),
        };
        let began = Instant::now();
        let error = placed(&request, &IdKind::Stdout, 1, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(began.elapsed() < Duration::from_secs(3), "{error}");
        assert!(
            error.ends_with("did not finish within 0.3 s (killed); the last lines of its stderr:\n    waiting for redis"),
            "{error}"
        );
        until_gone(&dir.path().join("grandchild.pid")).await;
    }

    #[tokio::test]
    async fn a_dropped_placing_kills_the_commands_group() {
        let dir = tempfile::tempdir().unwrap();
        let request = OrderRequest::Command {
            argv: vec![
                "sh".into(),
                "-c".into(),
                "sleep 300 & echo $! > grandchild.pid; wait".into(),
            ],
            env: Vec::new(),
            cwd: dir.path().to_path_buf(),
        };
        let pid_file = dir.path().join("grandchild.pid");
        let written = async {
            while !std::fs::read_to_string(&pid_file).is_ok_and(|s| s.ends_with('\n')) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::select! {
            placed = placed(&request, &IdKind::N, 1, Duration::from_secs(60)) => {
                panic!("the command ended: {placed:?}")
            }
            _ = tokio::time::timeout(Duration::from_secs(10), written) => {}
        }
        until_gone(&pid_file).await;
    }

    /// Waits until the process whose pid is in `pid_file` is gone (or a
    /// zombie waiting for init to reap it), for at most 10 s.
    async fn until_gone(pid_file: &std::path::Path) {
        let pid = std::fs::read_to_string(pid_file).unwrap();
        let stat = format!("/proc/{}/stat", pid.trim());
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&stat)
            .is_ok_and(|s| !s.rsplit(") ").next().unwrap_or("").starts_with('Z'))
        {
            assert!(
                Instant::now() < deadline,
                "the grandchild outlived the order"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[test]
    fn location_segments() {
        assert_eq!(last_segment("/orders/42").as_deref(), Some("42"));
        assert_eq!(last_segment("orders/42/?x=/9").as_deref(), Some("42"));
        assert_eq!(last_segment("https://h:3000/o/7#f").as_deref(), Some("7"));
        assert_eq!(last_segment("/"), None);
        assert_eq!(last_segment("https://h/"), None);
    }
}
