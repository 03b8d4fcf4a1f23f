//! End-to-end: load every non-Bundle resource of the official R4 examples
//! (`fhir-r4-examples/`) into the real server with `PUT Type/id`, then read each
//! back and compare it with the input.
//!
//! Create-on-update (`PUT` with the client's id) keeps the examples' ids, so their
//! cross-references line up wherever the target is part of the set. References
//! whose target is not in this half of the example set are left dangling on
//! purpose: Wardline does not enforce referential integrity on plain writes (only
//! transaction Bundles resolve `urn:uuid:` and conditional references), so such
//! resources are stored as written and must be accepted like the rest.

use crate::common;

use common::{Env, Server, json_diff, strip_meta};
use serde_json::Value;
use std::collections::BTreeMap;

/// Examples the server is expected to refuse, with the reason. Each must get a
/// 4xx with an OperationOutcome; everything else must be stored.
const EXPECTED_REJECTIONS: &[(&str, &str)] = &[];

fn load_examples() -> Option<Vec<(String, Value)>> {
    let dir = common::testdata_dir("fhir-r4-examples")?;
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("read fhir-r4-examples")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read example");
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", f.display()));
        if v["resourceType"] == "Bundle" {
            continue;
        }
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        out.push((name, v));
    }
    Some(out)
}

fn run(env: Env) {
    let Some(examples) = load_examples() else {
        return;
    };
    assert!(
        examples.len() > 250,
        "expected the ~298 non-Bundle examples, found {}",
        examples.len()
    );
    let server = env.start();
    let started = std::time::Instant::now();
    let mut failures = Vec::new();
    let mut stored = Vec::new();
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    let mut rejected_as_expected = 0;
    let mut audit_refused = 0;

    for (file, res) in &examples {
        let rt = res["resourceType"].as_str().expect("resourceType");
        let id = res["id"].as_str().expect("every example has an id");
        let r = server.put(&format!("{rt}/{id}"), res);
        *by_status.entry(r.status).or_default() += 1;
        if rt == "AuditEvent" {
            // The audit trail is written by the server only.
            if r.status != 405 || r.body["resourceType"] != "OperationOutcome" {
                failures.push(format!(
                    "{file}: an AuditEvent write must be refused with 405, got {}",
                    r.brief()
                ));
            }
            audit_refused += 1;
            continue;
        }
        let expected_rejection = EXPECTED_REJECTIONS.iter().find(|(f, _)| f == file);
        match (expected_rejection, r.status) {
            (None, 200 | 201) => {
                if r.header("etag").as_deref() != Some("W/\"1\"") {
                    failures.push(format!(
                        "{file}: first PUT ETag is {:?}, expected W/\"1\"",
                        r.header("etag")
                    ));
                }
                stored.push((file, rt, id, res));
            }
            (None, _) => failures.push(format!("{file}: PUT {rt}/{id} refused: {}", r.brief())),
            (Some((_, why)), 400..=499) => {
                if r.body["resourceType"] != "OperationOutcome" {
                    failures.push(format!(
                        "{file}: rejected ({why}) without an OperationOutcome: {}",
                        r.brief()
                    ));
                }
                rejected_as_expected += 1;
            }
            (Some((_, why)), _) => {
                failures.push(format!("{file}: expected a 4xx ({why}), got {}", r.brief()))
            }
        }
    }
    let write_secs = started.elapsed().as_secs_f64();

    let mut equal = 0;
    for (file, rt, id, input) in &stored {
        let r = server.get(&format!("{rt}/{id}"));
        if r.status != 200 {
            failures.push(format!("{file}: GET {rt}/{id}: {}", r.brief()));
            continue;
        }
        let got = r.body.clone();
        if got["meta"]["versionId"] != "1" || !got["meta"]["lastUpdated"].is_string() {
            failures.push(format!(
                "{file}: meta.versionId/lastUpdated not set by the server: {}",
                got["meta"]
            ));
        }
        let mut want = (*input).clone();
        let mut got = got;
        strip_meta(&mut want);
        strip_meta(&mut got);
        if want == got {
            equal += 1;
        } else {
            let mut diffs = Vec::new();
            json_diff(&want, &got, rt, &mut diffs, 5);
            if diffs.is_empty() {
                // Only numeric spelling differences (e.g. 1.0 vs 1).
                equal += 1;
            } else {
                failures.push(format!("{file}: read-back differs: {}", diffs.join("; ")));
            }
        }
    }

    println!(
        "[{}] examples: {} resources sent ({} expected rejections), status counts {:?}, \
         {} stored, {} read back equal, {} failures; writes took {:.1}s",
        env.name,
        examples.len(),
        EXPECTED_REJECTIONS.len(),
        by_status,
        stored.len(),
        equal,
        failures.len(),
        write_secs
    );
    check_type_counts(&server, &stored, &mut failures);
    assert_eq!(rejected_as_expected, EXPECTED_REJECTIONS.len());
    assert!(audit_refused > 0, "the shared examples include AuditEvents");
    assert!(
        failures.is_empty(),
        "[{}] {} example failures:\n  {}",
        env.name,
        failures.len(),
        failures.join("\n  ")
    );
}

/// The number of stored resources per type equals the number written.
fn check_type_counts(
    server: &Server,
    stored: &[(&String, &str, &str, &Value)],
    f: &mut Vec<String>,
) {
    let mut want: BTreeMap<&str, u64> = BTreeMap::new();
    for (_, rt, _, _) in stored {
        *want.entry(rt).or_default() += 1;
    }
    for (rt, n) in want {
        let r = server.get(&format!("{rt}?_summary=count"));
        if r.status != 200 || r.body["total"].as_u64() != Some(n) {
            f.push(format!(
                "{rt}?_summary=count: expected total {n}, got {}",
                r.brief()
            ));
        }
    }
}

#[test]
fn examples_roundtrip_sqlite() {
    run(Env::sqlite());
}

#[test]
fn examples_roundtrip_postgres() {
    if let Some(env) = Env::postgres() {
        run(env);
    }
}
