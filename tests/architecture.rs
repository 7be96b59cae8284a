//! ARCHITECTURE.md's code map matches the tree: every file under `lab/` and
//! `fake-services/src/` is named in it (by its path from the repository's
//! root), and every such path it names exists. A new file without its line
//! in the map fails here, so the map a newcomer reads is never behind.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The folders whose every file the code map names.
const MAPPED: [&str; 2] = ["lab", "fake-services/src"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file below `dir`, as a path from the repository's root with `/`.
fn files_below(dir: &Path, out: &mut BTreeSet<String>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_below(&path, out);
        } else {
            let relative = path.strip_prefix(root()).unwrap();
            out.insert(relative.to_string_lossy().replace('\\', "/"));
        }
    }
}

fn tree() -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    for dir in MAPPED {
        files_below(&root().join(dir), &mut files);
    }
    files
}

/// The "## Code map" section of ARCHITECTURE.md.
fn code_map() -> String {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md"))
        .expect("ARCHITECTURE.md at the repository's root");
    let start = text
        .find("\n## Code map")
        .expect("ARCHITECTURE.md has a '## Code map' section");
    let rest = &text[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    rest[..end].to_string()
}

/// Every `backticked` word of `text` that is a path under a mapped folder.
fn named_paths(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| {
            MAPPED
                .iter()
                .any(|dir| word.starts_with(&format!("{dir}/")))
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn every_file_is_in_the_code_map() {
    let named = named_paths(&code_map());
    let missing: Vec<_> = tree().into_iter().filter(|f| !named.contains(f)).collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's code map does not name these files (add a row for each, \
         with the concept it holds):\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn the_code_map_names_no_file_that_is_gone() {
    let files = tree();
    let gone: Vec<_> = named_paths(&code_map())
        .into_iter()
        .filter(|path| !files.contains(path) && !root().join(path).is_dir())
        .collect();
    assert!(
        gone.is_empty(),
        "ARCHITECTURE.md's code map names paths that do not exist:\n  {}",
        gone.join("\n  ")
    );
}

#[test]
fn backticked_paths_are_found() {
    let text = "| `lab/store/mod.rs` | the store | `fake-services/src/ids.rs` and `tests/x.rs`";
    let named = named_paths(text);
    assert!(named.contains("lab/store/mod.rs"));
    assert!(named.contains("fake-services/src/ids.rs"));
    assert!(!named.contains("tests/x.rs"));
}
