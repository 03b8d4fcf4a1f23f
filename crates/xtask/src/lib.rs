//! Wardline's automation crate: no runtime code, only the checks in
//! `tests/tidy.rs` that turn ARCHITECTURE.md's invariants into failing tests
//! (the order of the crates, who may reach the store, each crate's opening
//! contract, the size of source files, the workspace lints), and the small
//! readers of the repository they share.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::path::{Path, PathBuf};

/// The repository root (two levels above this crate).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The crates under `crates/` (folder name = crate name), sorted.
pub fn crates(root: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root.join("crates"))? {
        let e = e?;
        if e.path().join("Cargo.toml").is_file() {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// The crates named in the code map's headings (`### \`name\`…`), in order;
/// a heading naming two crates gives both the same rank.
pub fn code_map(architecture: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut rank = 0;
    for line in architecture.lines() {
        let Some(h) = line.strip_prefix("### ") else {
            continue;
        };
        let title = h.split(" — ").next().unwrap_or(h);
        let names: Vec<&str> = title
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s)
            .collect();
        if names.is_empty() {
            continue;
        }
        for n in names {
            out.push((rank, n.to_owned()));
        }
        rank += 1;
    }
    out
}

/// The `wardline*` crates a manifest's `[dependencies]` name (not dev- or
/// build-dependencies).
pub fn internal_dependencies(manifest: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_deps = false;
    for line in manifest.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_deps = t == "[dependencies]";
            continue;
        }
        if !in_deps {
            continue;
        }
        let name = t
            .split(|c: char| c == '=' || c == '.' || c.is_whitespace())
            .next()
            .unwrap_or_default();
        if name.starts_with("wardline") {
            out.push(name.to_owned());
        }
    }
    out
}

/// Lines of production code in a Rust source file: the lines before its
/// first `#[cfg(test)]` item.
pub fn production_lines(source: &str) -> usize {
    source
        .lines()
        .take_while(|l| l.trim_start() != "#[cfg(test)]")
        .count()
}

/// Every `.rs` file under `dir`, recursively.
pub fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "target" && n != "fuzz") {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_map_is_read_in_order() {
        let md = "## Code map\n### `a` — x\ntext\n### `b`, `c` — y\n### `d` — z\n";
        assert_eq!(
            code_map(md),
            vec![
                (0, "a".to_owned()),
                (1, "b".to_owned()),
                (1, "c".to_owned()),
                (2, "d".to_owned())
            ]
        );
    }

    #[test]
    fn only_normal_internal_dependencies_count() {
        let m = "[package]\nname = \"x\"\n[dependencies]\nwardline-fhir.workspace = true\nserde = \"1\"\nwardline-core = { path = \"../c\" }\n[dev-dependencies]\nwardline-web.workspace = true\n";
        assert_eq!(internal_dependencies(m), ["wardline-fhir", "wardline-core"]);
    }

    #[test]
    fn production_lines_stop_at_the_tests() {
        assert_eq!(production_lines("a\nb\n#[cfg(test)]\nmod tests {}\n"), 2);
        assert_eq!(production_lines("a\nb\n"), 2);
    }
}
