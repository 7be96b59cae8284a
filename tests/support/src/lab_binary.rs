//! The `lab` binary as a user runs it, as a process of its own: `lab serve`
//! on free ports, the addresses its banner names, and a guard that kills a
//! child by its pid when the test ends, pass or fail. Shared by the CLI
//! tests and the browser test, which drive the same real binary.

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// `lab serve` (`binary`: the test's `env!("CARGO_BIN_EXE_lab")`) on free
/// ports with its data in `data_dir`, its stdout piped for the banner
/// ([`serve_urls`]); the caller adds its own flags.
pub fn lab_serve(binary: &str, data_dir: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .args(["serve", "--bind", "127.0.0.1:0"])
        .args(["--fakes-bind", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    command
}

/// Reads `lab serve`'s banner: the web lab's URL and the fake services'.
/// Reading it waits for both servers to bind.
pub fn serve_urls(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> (String, String) {
    let web = lines.next().unwrap().unwrap();
    let web = web
        .strip_prefix("idemlab web lab on ")
        .unwrap_or_else(|| panic!("unexpected banner: {web}"))
        .to_string();
    let fakes = lines.next().unwrap().unwrap();
    let fakes = fakes
        .trim()
        .strip_prefix("fake services on ")
        .unwrap_or_else(|| panic!("unexpected banner: {fakes}"))
        .to_string();
    (web, fakes)
}

/// Kills the child (by its pid) and reaps it when the test ends, pass or
/// fail.
pub struct Running(pub Option<Child>);

impl Running {
    /// The child, no longer killed on drop.
    pub fn take(mut self) -> Child {
        self.0.take().expect("still running")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
