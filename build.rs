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
    // A new commit moves HEAD (detached) or HEAD's branch ref, loose or
    // packed. Only paths that exist are watched: cargo reruns a build script
    // on every build while a file it watches is missing (a clone has no
    // `packed-refs` until git packs something). In a worktree, HEAD is the
    // worktree's own and the refs are the repository's.
    let git_dir = git(&["rev-parse", "--git-dir"]).map(PathBuf::from);
    let common_dir = git(&["rev-parse", "--git-common-dir"]).map(PathBuf::from);
    if let (Some(git_dir), Some(common_dir)) = (git_dir, common_dir) {
        let mut watched = vec![git_dir.join("HEAD"), common_dir.join("packed-refs")];
        if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
            // The ref's folder, not the ref: a branch that lives only in
            // `packed-refs` gets its loose file back with the next commit.
            if let Some(folder) = common_dir.join(reference).parent() {
                watched.push(folder.to_path_buf());
            }
        }
        for file in watched.iter().filter(|file| file.exists()) {
            println!("cargo:rerun-if-changed={}", file.display());
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
