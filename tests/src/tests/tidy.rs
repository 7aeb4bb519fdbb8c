//! Tidy: house rules checked over every file in the workspace (rust-analyzer
//! `xtask/src/tidy.rs`). Every `.rs` file opens with a `//!` comment; no
//! source file has debugging leftovers or trailing whitespace; each proto
//! file's `package` matches its directory.

use std::path::{Path, PathBuf};

/// Directories never checked.
const SKIPPED_DIRS: &[&str] = &["target", ".git", "demo"];
/// File extensions checked for whitespace and leftovers.
const TEXT_EXTENSIONS: &[&str] = &["rs", "proto", "toml", "md"];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the workspace").to_owned()
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy();
        if path.is_dir() {
            if !SKIPPED_DIRS.contains(&name.as_ref()) && !name.starts_with('.') {
                files(&path, out);
            }
        } else {
            out.push(path);
        }
    }
}

fn extension(path: &Path) -> &str {
    path.extension().and_then(|e| e.to_str()).unwrap_or_default()
}

#[test]
fn tidy() {
    let root = workspace_root();
    let mut all = Vec::new();
    files(&root, &mut all);
    // Spelled in pieces so this file does not trip its own check.
    let leftovers = [concat!("dbg", "!("), concat!("todo", "!(")];
    let mut problems = Vec::new();
    let mut n_rust = 0;
    for path in all.iter().filter(|p| TEXT_EXTENSIONS.contains(&extension(p))) {
        let text = std::fs::read_to_string(path).unwrap();
        let shown = path.strip_prefix(&root).unwrap().display();
        if extension(path) == "rs" {
            n_rust += 1;
            if !text.starts_with("//!") {
                problems.push(format!("{shown}: does not start with a `//!` comment"));
            }
            for leftover in leftovers {
                if text.contains(leftover) {
                    problems.push(format!("{shown}: contains {leftover}"));
                }
            }
        }
        for (idx, line) in text.lines().enumerate() {
            if line.ends_with(' ') || line.ends_with('\t') {
                problems.push(format!("{shown}:{}: trailing whitespace", idx + 1));
            }
        }
    }
    let proto_root = root.join("proto/proto");
    let mut n_proto = 0;
    for path in all.iter().filter(|p| extension(p) == "proto") {
        n_proto += 1;
        let shown = path.strip_prefix(&root).unwrap().display();
        let Ok(relative) = path.parent().unwrap().strip_prefix(&proto_root) else {
            problems.push(format!("{shown}: proto files belong under proto/proto/"));
            continue;
        };
        let expected = relative.to_string_lossy().replace('/', ".");
        let text = std::fs::read_to_string(path).unwrap();
        let declared: Vec<&str> = text
            .lines()
            .filter_map(|line| line.trim().strip_prefix("package "))
            .map(|rest| rest.trim_end_matches(';').trim())
            .collect();
        if declared != [expected.as_str()] {
            problems.push(format!("{shown}: package {declared:?} does not match its directory ({expected})"));
        }
    }
    assert!(n_rust > 20 && n_proto > 0, "tidy found too few files under {}", root.display());
    assert!(problems.is_empty(), "tidy found {} problem(s):\n{}", problems.len(), problems.join("\n"));
}
