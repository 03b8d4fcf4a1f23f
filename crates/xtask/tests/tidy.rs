//! Tidy checks: ARCHITECTURE.md's invariants that a test can hold.
//!
//! * Every crate is in the code map, and a crate's `[dependencies]` are only
//!   crates listed above it (dev-dependencies may reach lower, for tests).
//! * Only the core and the `wardline-bench` tool (its `explain` benchmark
//!   prints the store's query plans) call `FhirService::store()`.
//! * Each crate's `lib.rs` (or `main.rs`) opens with a doc comment stating
//!   its contract, denies `clippy::unwrap_used` outside tests, and takes the
//!   workspace lints (`unsafe_code` forbidden).
//! * No source file holds more than 1,500 lines of production code.
//! * The HL7 v2 mapping never writes a bed's state: beds have one home,
//!   `wardline-workflow`'s `adt::beds`.

use std::collections::HashMap;
use std::path::Path;

use xtask::{code_map, crates, internal_dependencies, production_lines, root, rust_files};

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Composition roots: they build the system and may hold the whole store.
const MAY_USE_STORE: [&str; 2] = ["wardline-core", "wardline-bench"];
const MAX_PRODUCTION_LINES: usize = 1_500;

#[test]
fn crates_depend_only_on_crates_above_them_in_the_code_map() {
    let root = root();
    let map = code_map(&read(&root.join("ARCHITECTURE.md")));
    let rank: HashMap<&str, usize> = map.iter().map(|(r, n)| (n.as_str(), *r)).collect();
    let mut problems = Vec::new();
    for c in crates(&root).unwrap() {
        let Some(&mine) = rank.get(c.as_str()) else {
            problems.push(format!("{c} is not in ARCHITECTURE.md's code map"));
            continue;
        };
        for d in internal_dependencies(&read(&root.join("crates").join(&c).join("Cargo.toml"))) {
            match rank.get(d.as_str()) {
                Some(&theirs) if theirs < mine => {}
                Some(_) => problems.push(format!(
                    "{c} depends on {d}, which ARCHITECTURE.md lists at or below it"
                )),
                None => problems.push(format!("{c} depends on {d}, which is not in the code map")),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn only_the_core_and_the_composition_roots_reach_the_store() {
    let root = root();
    let needle = [".store", "()"].concat();
    let mut problems = Vec::new();
    for c in crates(&root).unwrap() {
        if MAY_USE_STORE.contains(&c.as_str()) {
            continue;
        }
        for f in rust_files(&root.join("crates").join(&c)) {
            for (i, line) in read(&f).lines().enumerate() {
                if line.contains(&needle) && !line.trim_start().starts_with("//") {
                    problems.push(format!("{}:{}: {}", f.display(), i + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "FhirService::store() is for the core and the bench tool; use read_as / search_as, a Tx, system_data or system_reader:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_crate_opens_with_its_contract_and_takes_the_lints() {
    let root = root();
    let workspace = read(&root.join("Cargo.toml"));
    assert!(
        workspace.contains("[workspace.lints.rust]")
            && workspace.contains("unsafe_code = \"forbid\""),
        "the workspace forbids unsafe code"
    );
    let mut problems = Vec::new();
    for c in crates(&root).unwrap() {
        let dir = root.join("crates").join(&c);
        let manifest = read(&dir.join("Cargo.toml"));
        if !manifest.contains("[lints]\nworkspace = true") {
            problems.push(format!("{c}/Cargo.toml: no [lints] workspace = true"));
        }
        let entry = ["src/lib.rs", "src/main.rs"]
            .iter()
            .map(|f| dir.join(f))
            .find(|p| p.is_file());
        let Some(entry) = entry else {
            problems.push(format!("{c}: no src/lib.rs or src/main.rs"));
            continue;
        };
        let text = read(&entry);
        if !text.trim_start().starts_with("//!") {
            problems.push(format!(
                "{}: does not open with a //! contract",
                entry.display()
            ));
        }
        if !text.contains("#![cfg_attr(not(test), deny(clippy::unwrap_used))]") {
            problems.push(format!(
                "{}: does not deny clippy::unwrap_used outside tests",
                entry.display()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn no_source_file_holds_more_than_1500_lines_of_production_code() {
    let root = root();
    let mut big = Vec::new();
    for c in crates(&root).unwrap() {
        for f in rust_files(&root.join("crates").join(&c).join("src")) {
            let n = production_lines(&read(&f));
            if n > MAX_PRODUCTION_LINES {
                big.push(format!("{}: {n} lines", f.display()));
            }
        }
    }
    assert!(
        big.is_empty(),
        "split these along their seams:\n{}",
        big.join("\n")
    );
}

#[test]
fn the_hl7_mapping_never_writes_a_beds_state() {
    let root = root();
    let mut problems = Vec::new();
    for f in rust_files(&root.join("crates/wardline-hl7-fhir/src/inbound")) {
        for (i, line) in read(&f).lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            if line.contains("[\"operationalStatus\"] =") || line.contains("v2-0116") {
                problems.push(format!("{}:{}: {}", f.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "bed state has one home (wardline-workflow adt::beds):\n{}",
        problems.join("\n")
    );
}
