//! The `lab` binary as a user runs it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

fn lab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lab"))
}

/// Kills the child when the test ends, pass or fail.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn help_lists_the_commands() {
    let output = lab().arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for command in ["serve", "fakes"] {
        assert!(help.contains(command), "`{command}` missing from:\n{help}");
    }
}

#[test]
fn a_bad_bind_address_is_a_clear_error() {
    let output = lab()
        .args(["fakes", "--bind", "localhost"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("--bind"), "{stderr}");
    assert!(stderr.contains("localhost"), "{stderr}");
}

#[tokio::test]
async fn fakes_serves_on_the_address_it_prints() {
    let mut child = lab()
        .args(["fakes", "--bind", "127.0.0.1:0", "--seed", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _running = Running(child);
    // The first line names the address; reading it waits for the server to
    // bind. The rest of the banner is left unread: the server must live on
    // even when nobody reads its output.
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().unwrap().unwrap();
    drop(lines);
    let url = first
        .strip_prefix("fake services listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let charge: serde_json::Value = reqwest::Client::new()
        .post(format!("{url}/payments/charge"))
        .header("accept", "application/json")
        .body(r#"{"amount_cents": 500, "metadata": {"order_id": 1}}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(charge["status"], "success");
    assert!(charge["charge_id"].as_str().unwrap().starts_with("ch_"));
}
