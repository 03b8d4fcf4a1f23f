//! `wardline import` through the real binary (issue 23), SQLite and PostgreSQL:
//! files in the "wrong" order with conditional references across files load
//! in one run; a file that is not FHIR is skipped with a note; a bad NDJSON
//! line is rejected with its line number in the report file; progress lines
//! appear when stderr is not a terminal; a second run creates nothing; the
//! report's totals equal the store's counts. And over HTTP: an update with
//! identical content keeps the ETag and makes no history entry.

use crate::common;

use common::{Env, Server};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

/// Per type: [read, created, updated, unchanged, rejected].
pub type Table = BTreeMap<String, [u64; 5]>;

pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub fn import(env: &Env, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_wardline"))
        .arg("import")
        .args(args)
        .args(env.store_args())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run wardline import");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The reconciliation table of a report (printed or written).
pub fn table(report: &str) -> Table {
    let mut t = Table::new();
    let mut in_table = false;
    for line in report.lines() {
        if line.starts_with("resource type") {
            in_table = true;
            continue;
        }
        if !in_table {
            continue;
        }
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() != 6 {
            break;
        }
        let n: Vec<u64> = cols[1..].iter().map(|c| c.parse().unwrap()).collect();
        t.insert(cols[0].to_owned(), [n[0], n[1], n[2], n[3], n[4]]);
    }
    assert!(t.contains_key("total"), "no table in:\n{report}");
    t
}

/// The path after "report written to ".
pub fn report_path(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("report written to "))
        .unwrap_or_else(|| panic!("no report path in:\n{stdout}"))
        .to_owned()
}

/// Every type's created + updated + unchanged equals the store's count
/// (`_summary=count`) after a first import into an empty store.
pub fn check_counts(server: &Server, t: &Table, what: &str) {
    for (rt, n) in t {
        if rt == "total" || rt.starts_with('(') {
            continue;
        }
        let [read, created, updated, unchanged, rejected] = *n;
        assert_eq!(
            read,
            created + updated + unchanged + rejected,
            "{what}: {rt} read {read} is not the sum of the outcomes"
        );
        assert_eq!(
            server.count(rt),
            created,
            "{what}: {rt}: the store's count is not the report's created"
        );
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

const ODS: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
const GMC: &str = "https://fhir.hl7.org.uk/Id/gmc-number";

/// A folder whose files sort in the "wrong" order: the patients' transaction
/// refers to an Organization and a Practitioner (by identifier) that only the
/// last file (a batch) creates.
fn fixture(dir: &Path) {
    let patients = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:0b6f8a3e-7a55-4c55-9a8e-3f1f0e1d2c01",
         "resource": {"resourceType": "Patient", "id": "imp-p1", "gender": "female",
            "generalPractitioner": [{"reference": format!("Organization?identifier={ODS}|Y90001")}]},
         "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": "urn:uuid:0b6f8a3e-7a55-4c55-9a8e-3f1f0e1d2c02",
         "resource": {"resourceType": "Encounter", "id": "imp-e1", "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": "urn:uuid:0b6f8a3e-7a55-4c55-9a8e-3f1f0e1d2c01"},
            "participant": [{"individual": {"reference": format!("Practitioner?identifier={GMC}|7654321")}}]},
         "request": {"method": "POST", "url": "Encounter"}}
    ]});
    write(dir, "a-patients.json", &patients.to_string());
    write(dir, "b-notes.txt", "not FHIR at all\n");
    write(dir, "c-config.json", r#"{"name": "a settings file"}"#);
    let obs = |id: &str, status: &str| {
        json!({"resourceType": "Observation", "id": id, "status": status,
            "code": {"text": "pulse"}, "subject": {"reference": "Patient/imp-p1"}})
        .to_string()
    };
    write(
        dir,
        "d-observations.ndjson",
        &format!(
            "{}\n{}\n\n{}\n",
            obs("imp-o1", "final"),
            obs("imp-o2", "not-a-status"),
            obs("imp-o3", "final")
        ),
    );
    let support = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": {"resourceType": "Organization", "id": "src-org-1", "name": "Y Surgery",
            "identifier": [{"system": ODS, "value": "Y90001"}]},
         "request": {"method": "POST", "url": "Organization", "ifNoneExist": format!("identifier={ODS}|Y90001")}},
        {"resource": {"resourceType": "Practitioner", "name": [{"family": "Ahmed"}],
            "identifier": [{"system": GMC, "value": "7654321"}]},
         "request": {"method": "POST", "url": "Practitioner", "ifNoneExist": format!("identifier={GMC}|7654321")}},
        {"resource": {"resourceType": "PractitionerRole", "id": "src-role-1",
            "practitioner": {"identifier": {"system": GMC, "value": "7654321"}}},
         "request": {"method": "POST", "url": "PractitionerRole"}}
    ]});
    write(dir, "z-support.json", &support.to_string());
}

fn fixture_run(env: Env) {
    let input = tempfile::tempdir().unwrap();
    fixture(input.path());
    let report_file = env.data_dir().join("first-report.txt");
    let first = import(
        &env,
        &[
            input.path().to_str().unwrap(),
            "--report",
            report_file.to_str().unwrap(),
        ],
    );
    let who = env.name;
    assert_eq!(
        first.code,
        Some(1),
        "[{who}] a rejected line fails the run: {}{}",
        first.stdout,
        first.stderr
    );
    // Progress without a terminal: lines on stderr.
    assert!(
        first.stderr.contains("imported 3/3 files"),
        "[{who}] {}",
        first.stderr
    );
    let written = std::fs::read_to_string(&report_file).unwrap();
    assert_eq!(
        report_path(&first.stdout),
        report_file.display().to_string()
    );
    assert!(
        first.stdout.starts_with(&written),
        "[{who}] {}",
        first.stdout
    );
    assert!(
        written.contains("d-observations.ndjson (line 2): "),
        "[{who}] {written}"
    );
    assert!(
        written.contains("loaded 7 resources from 3 files; rejected 1; skipped 2 files"),
        "[{who}] {written}"
    );
    let rejected = written.split("\nrejected:").nth(1).unwrap_or_default();
    assert_eq!(rejected.trim().lines().count(), 1, "[{who}] {written}");
    for skipped in ["b-notes.txt", "c-config.json"] {
        let note = written
            .lines()
            .find(|l| l.contains(skipped))
            .unwrap_or_else(|| panic!("[{who}] no note for {skipped}: {written}"));
        assert!(!rejected.contains(skipped), "[{who}] {written}");
        assert!(note.starts_with("  "), "[{who}] {note}");
    }
    let t = table(&written);
    assert_eq!(t["Observation"], [3, 2, 0, 0, 1], "[{who}] {written}");
    assert_eq!(t["Patient"], [1, 1, 0, 0, 0], "[{who}] {written}");
    assert_eq!(t["total"], [8, 7, 0, 0, 1], "[{who}] {written}");

    let server = env.start();
    check_counts(&server, &t, who);
    // The cross-file conditional references resolved; source ids kept.
    let p = server.get("Patient/imp-p1");
    assert_eq!(p.status, 200, "[{who}] {}", p.text);
    let gp = p.body["generalPractitioner"][0]["reference"]
        .as_str()
        .unwrap();
    let org = server.get(gp);
    assert_eq!(org.body["name"], "Y Surgery", "[{who}] {gp}");
    let e = server.get("Encounter/imp-e1");
    let doc = e.body["participant"][0]["individual"]["reference"]
        .as_str()
        .unwrap();
    assert!(doc.starts_with("Practitioner/"), "[{who}] {doc}");
    assert_eq!(server.get("PractitionerRole/src-role-1").status, 200);
    drop(server);

    // A second run: nothing new, the same line rejected again; the report
    // goes to the data directory by default.
    let second = import(&env, &[input.path().to_str().unwrap()]);
    assert_eq!(second.code, Some(1), "[{who}] {}", second.stdout);
    let path = report_path(&second.stdout);
    assert!(
        Path::new(&path).starts_with(env.data_dir().join("import-reports")),
        "[{who}] {path}"
    );
    let t2 = table(&std::fs::read_to_string(&path).unwrap());
    assert_eq!(t2["total"], [8, 0, 0, 7, 1], "[{who}] {}", second.stdout);
    let server = env.start();
    for (rt, n) in &t {
        if rt != "total" && !rt.starts_with('(') {
            assert_eq!(server.count(rt), n[1], "[{who}] {rt} after the second run");
        }
    }
    let h = server.get("Patient/imp-p1/_history");
    assert_eq!(h.body["entry"].as_array().map(Vec::len), Some(1), "[{who}]");
}

#[test]
fn import_in_any_order_with_a_report_sqlite() {
    fixture_run(Env::sqlite());
}

#[test]
fn import_in_any_order_with_a_report_postgres() {
    if let Some(env) = Env::postgres() {
        fixture_run(env);
    }
}

fn identical_update(env: Env) {
    let server = env.start();
    let who = env.name;
    let body = json!({"resourceType": "Patient", "id": "same-1", "gender": "male",
        "name": [{"family": "Same", "given": ["Sam"]}]});
    let r = server.put("Patient/same-1", &body);
    assert_eq!(r.status, 201, "[{who}] {}", r.text);
    let etag = r.header("etag");
    // The same content, members reordered, stale stamps.
    let again = json!({"name": [{"given": ["Sam"], "family": "Same"}], "gender": "male",
        "meta": {"versionId": "9", "lastUpdated": "2020-01-01T00:00:00Z"},
        "id": "same-1", "resourceType": "Patient"});
    let r = server.put("Patient/same-1", &again);
    assert_eq!(r.status, 200, "[{who}] {}", r.text);
    assert_eq!(r.header("etag"), etag, "[{who}]");
    assert_eq!(r.body["meta"]["versionId"], "1", "[{who}] {}", r.text);
    let h = server.get("Patient/same-1/_history");
    let n = |v: &Value| v["entry"].as_array().map_or(0, Vec::len);
    assert_eq!(n(&h.body), 1, "[{who}] {}", h.text);
    // A change still makes a version.
    let mut changed = body;
    changed["gender"] = json!("female");
    let r = server.put("Patient/same-1", &changed);
    assert_eq!(r.header("etag").as_deref(), Some("W/\"2\""), "[{who}]");
    assert_eq!(n(&server.get("Patient/same-1/_history").body), 2);
}

#[test]
fn an_identical_update_keeps_the_etag_sqlite() {
    identical_update(Env::sqlite());
}

#[test]
fn an_identical_update_keeps_the_etag_postgres() {
    if let Some(env) = Env::postgres() {
        identical_update(env);
    }
}
