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

/// A module's name from its file: `lab/store/conns.rs` is `store::conns`,
/// `lab/store/mod.rs` is `store`, in the crate rooted at `src`.
fn module_of(src: &str, file: &str) -> Option<Vec<String>> {
    let path = file
        .strip_prefix(src)?
        .strip_prefix('/')?
        .strip_suffix(".rs")?;
    let mut parts: Vec<String> = path.split('/').map(str::to_string).collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    Some(parts)
}

/// The `crate::…`, `super::…` and `self::…` paths a module's code names
/// (comments and the unit tests at the file's end left out; one level of
/// `{…}` groups expanded), resolved to paths from the crate's root.
fn paths_named(module: &[String], source: &str) -> Vec<Vec<String>> {
    let lines: Vec<&str> = source.lines().collect();
    let tests_start = lines
        .windows(2)
        .position(|w| w[0].trim() == "#[cfg(test)]" && w[1].trim_start().starts_with("mod tests"))
        .unwrap_or(lines.len());
    let code: String = lines[..tests_start]
        .iter()
        .filter(|line| !line.trim_start().starts_with("//"))
        .copied()
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if !code.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let at_word_start = i == 0 || !(is_ident(bytes[i - 1]) || bytes[i - 1] == b':');
        let rest = &code[i..];
        let head = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|h| rest.starts_with(h));
        let (Some(head), true) = (head, at_word_start) else {
            i += 1;
            continue;
        };
        // The module the path starts from.
        let mut base: Vec<String> = match head {
            "crate::" => Vec::new(),
            "self::" => module.to_vec(),
            _ => module[..module.len().saturating_sub(1)].to_vec(),
        };
        let mut j = i + head.len();
        // More `super::`.
        while code[j..].starts_with("super::") {
            base.pop();
            j += "super::".len();
        }
        let mut tails: Vec<Vec<String>> = vec![Vec::new()];
        loop {
            let start = j;
            while j < bytes.len() && is_ident(bytes[j]) {
                j += 1;
            }
            if j > start {
                for tail in &mut tails {
                    tail.push(code[start..j].to_string());
                }
            } else if j < bytes.len() && bytes[j] == b'{' {
                let close = code[j..].find('}').map_or(code.len(), |k| j + k);
                let group = &code[j + 1..close];
                let prefix = tails.pop().unwrap_or_default();
                tails = group
                    .split(',')
                    .map(|item| {
                        let mut t = prefix.clone();
                        t.extend(
                            item.trim()
                                .split("::")
                                .map(|s| s.trim().to_string())
                                .filter(|s| {
                                    !s.is_empty()
                                        && s.chars().all(|c| c.is_alphanumeric() || c == '_')
                                }),
                        );
                        t
                    })
                    .collect();
                j = close;
                break;
            }
            if code[j..].starts_with("::") {
                j += 2;
            } else {
                break;
            }
        }
        for tail in tails {
            let mut path = base.clone();
            path.extend(tail);
            found.push(path);
        }
        i = j.max(i + 1);
    }
    found
}

/// No two modules of a crate use each other, directly or round a longer
/// loop (a module and the modules inside it excepted: a folder's `mod.rs`
/// declares its children and they may use what it defines).
fn cycles_in(src: &str) -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    files_below(&root().join(src), &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().filter_map(|f| module_of(src, f)).collect();
    let resolve = |path: &[String]| -> Option<Vec<String>> {
        (0..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|prefix| modules.contains(prefix))
    };
    let related = |a: &[String], b: &[String]| a.starts_with(b) || b.starts_with(a);
    let mut edges: std::collections::BTreeMap<Vec<String>, BTreeSet<Vec<String>>> =
        Default::default();
    for file in &files {
        let Some(module) = module_of(src, file) else {
            continue;
        };
        let source = std::fs::read_to_string(root().join(file)).unwrap();
        for path in paths_named(&module, &source) {
            if let Some(target) = resolve(&path) {
                if !related(&module, &target) {
                    edges.entry(module.clone()).or_default().insert(target);
                }
            }
        }
    }
    // Lift edges to siblings: `a::x -> b::y` is also `a -> b` under their
    // common parent, which is how a reader meets the loop.
    let mut lifted: std::collections::BTreeMap<Vec<String>, BTreeSet<Vec<String>>> =
        Default::default();
    for (from, tos) in &edges {
        for to in tos {
            let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
            let (a, b) = (from[..=common].to_vec(), to[..=common].to_vec());
            lifted.entry(a).or_default().insert(b);
        }
    }
    let mut cycles = BTreeSet::new();
    for (a, tos) in &lifted {
        for b in tos {
            // Is there a way back from b to a?
            let mut seen = BTreeSet::new();
            let mut stack = vec![b.clone()];
            while let Some(m) = stack.pop() {
                if &m == a {
                    let (first, second) = if a < b { (a, b) } else { (b, a) };
                    cycles.insert(format!("{} <-> {}", first.join("::"), second.join("::")));
                    break;
                }
                if seen.insert(m.clone()) {
                    stack.extend(lifted.get(&m).into_iter().flatten().cloned());
                }
            }
        }
    }
    cycles
}

#[test]
fn no_import_cycles() {
    for src in MAPPED {
        let cycles = cycles_in(src);
        assert!(
            cycles.is_empty(),
            "modules of {src} that use each other (directly or round a loop):\n  {}",
            cycles.into_iter().collect::<Vec<_>>().join("\n  ")
        );
    }
}

/// The project's docs stand alone: nothing sends a reader to a design file
/// that a clone of the repository does not have.
#[test]
fn no_doc_points_outside_the_repository() {
    let design = ["DESIGN", ".md"].concat();
    let shared = ["shared", " folder"].concat();
    let mut files = tree();
    for dir in [
        "tests",
        "benches",
        "fake-services/tests",
        "fake-services/benches",
    ] {
        files_below(&root().join(dir), &mut files);
    }
    files.insert("README.md".into());
    files.insert("ARCHITECTURE.md".into());
    let pointing: Vec<_> = files
        .iter()
        .filter(|file| {
            let text = std::fs::read_to_string(root().join(file)).unwrap_or_default();
            text.contains(&design) || text.contains(&shared)
        })
        .collect();
    assert!(
        pointing.is_empty(),
        "these files point at a design file outside the repository (point at \
         ARCHITECTURE.md or README.md instead): {pointing:?}"
    );
}
