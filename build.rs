//! Labels the build with its git commit, so that `lab worker`'s default
//! `--code-version` tells two deploys of the same crate version apart (the
//! history and `/jobs` show which code ran each attempt).
//!
//! `IDEMLAB_GIT_COMMIT` wins when set (a Docker build has no `.git`);
//! otherwise `git rev-parse`; without either the version is the crate's alone.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=IDEMLAB_GIT_COMMIT");
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        let dir = PathBuf::from(dir);
        // A new commit moves HEAD's branch ref (loose or packed).
        for file in ["HEAD", "packed-refs"] {
            println!("cargo:rerun-if-changed={}", dir.join(file).display());
        }
        if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={}", dir.join(reference).display());
        }
    }
    let commit = std::env::var("IDEMLAB_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=10", "HEAD"]));
    let version = env!("CARGO_PKG_VERSION");
    let code_version = match commit {
        Some(commit) => format!("{version}+{}", commit.trim()),
        None => version.to_string(),
    };
    println!("cargo:rustc-env=IDEMLAB_CODE_VERSION={code_version}");
}
