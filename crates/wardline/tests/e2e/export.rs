//! Bulk Data `$export` end to end on both backends: kick-off, status polling,
//! manifest, NDJSON download; `_type`, `_since`, `_typeFilter`; system,
//! Patient and Group levels; cancellation; a job that survives a SIGKILL of
//! the server; and `wardline export` writing the same files.
//!
//! Expected contents are worked out from the generated trust, not from the
//! server.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{Checks, Env, Server};
use serde_json::{Value, json};

const ASYNC: (&str, &str) = ("Prefer", "respond-async");

fn key(r: &Value) -> String {
    format!(
        "{}/{}",
        r["resourceType"].as_str().unwrap(),
        r["id"].as_str().unwrap()
    )
}

/// Kicks off `path`, returning the status URL.
fn kickoff(s: &Server, path: &str) -> Result<String, String> {
    let r = s.get_with(path, &[ASYNC]);
    if r.status != 202 {
        return Err(format!("kick-off {path}: {}", r.brief()));
    }
    r.header("content-location")
        .ok_or_else(|| "no Content-Location".to_owned())
}

/// Polls until the manifest arrives (bounded).
fn poll(s: &Server, status_url: &str) -> Result<Value, String> {
    for _ in 0..600 {
        let r = s.get(status_url);
        match r.status {
            202 => {
                if r.header("x-progress").is_none() {
                    return Err("202 without X-Progress".into());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            200 => {
                let ct = r.header("content-type").unwrap_or_default();
                if !ct.starts_with("application/json") {
                    return Err(format!("manifest content type {ct}"));
                }
                return Ok(r.body);
            }
            _ => return Err(format!("status: {}", r.brief())),
        }
    }
    Err("the export did not finish in 30 s".into())
}

/// Downloads every output file: type → resources (checking each line's type
/// and the manifest's count).
fn download(s: &Server, manifest: &Value) -> Result<BTreeMap<String, Vec<Value>>, String> {
    let mut out = BTreeMap::new();
    for o in manifest["output"].as_array().ok_or("no output array")? {
        let url = o["url"].as_str().ok_or("no url")?;
        let r = s
            .client
            .get(url)
            .header("Accept", "application/fhir+ndjson")
            .send()
            .map_err(|e| e.to_string())?;
        if r.status() != 200 {
            return Err(format!("GET {url}: {}", r.status()));
        }
        let text = r.text().map_err(|e| e.to_string())?;
        let t = o["type"].as_str().unwrap().to_owned();
        let mut rs = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let v: Value =
                serde_json::from_str(line).map_err(|e| format!("{url} line {}: {e}", i + 1))?;
            if v["resourceType"] != t.as_str() {
                return Err(format!("{url} line {}: a {}", i + 1, v["resourceType"]));
            }
            rs.push(v);
        }
        if o["count"].as_u64() != Some(rs.len() as u64) {
            return Err(format!(
                "{url}: count {} but {} lines",
                o["count"],
                rs.len()
            ));
        }
        out.insert(t, rs);
    }
    Ok(out)
}

fn keys(files: &BTreeMap<String, Vec<Value>>) -> BTreeSet<String> {
    files.values().flatten().map(key).collect()
}

fn export(s: &Server, path: &str) -> Result<BTreeMap<String, Vec<Value>>, String> {
    let url = kickoff(s, path)?;
    download(s, &poll(s, &url)?)
}

fn check_export(c: &mut Checks, s: &Server, path: &str, want: &BTreeSet<String>) {
    match export(s, path) {
        Ok(files) => c.eq(path, &keys(&files), want),
        Err(e) => c.check(false, || format!("{path}: {e}")),
    }
}

fn run(env: Env) {
    let mut s = env.start();
    let bundle = wardline_demo::generate(11, 12);
    let r = s.post("", &bundle);
    assert_eq!(r.status, 200, "{}", r.brief());
    let all: BTreeMap<String, Value> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (key(&e["resource"]), e["resource"].clone()))
        .collect();
    let of = |pred: &dyn Fn(&Value) -> bool| -> BTreeSet<String> {
        all.iter()
            .filter(|(_, r)| pred(r))
            .map(|(k, _)| k.clone())
            .collect()
    };
    let mut c = Checks::default();

    // Errors at kick-off.
    c.eq("kick-off without Prefer", s.get("$export").status, 400);
    for bad in [
        "$export?_type=Nope",
        "$export?_since=notadate",
        "$export?_outputFormat=text/csv",
        "$export?_typeFilter=Observation",
        "$export?_typeFilter=Observation%3Fnope%3D1",
        "$export?_type=Patient&_typeFilter=Observation%3Fcode%3Dx",
        "$export?frobnicate=1",
    ] {
        c.eq(bad, s.get_with(bad, &[ASYNC]).status, 400);
    }
    c.eq(
        "Group export of an unknown group",
        s.get_with("Group/nope/$export", &[ASYNC]).status,
        404,
    );
    c.eq(
        "status of an unknown job",
        s.get("$export-poll-status?_jobId=nope").status,
        404,
    );

    // System level: everything, with identical content.
    match export(&s, "$export") {
        Ok(files) => {
            c.eq(
                "system export",
                &keys(&files),
                &all.keys().cloned().collect(),
            );
            let mut differ = 0;
            for r in files.values().flatten() {
                let mut got = r.clone();
                got.as_object_mut().unwrap().remove("meta");
                let mut want = all[&key(r)].clone();
                want.as_object_mut().unwrap().remove("meta");
                if got != want {
                    differ += 1;
                }
            }
            c.eq("system export: resources as written", differ, 0);
        }
        Err(e) => c.check(false, || format!("system export: {e}")),
    }
    check_export(
        &mut c,
        &s,
        "$export?_type=Patient,Condition",
        &of(&|r| r["resourceType"] == "Patient" || r["resourceType"] == "Condition"),
    );
    check_export(
        &mut c,
        &s,
        "$export?_since=2999-01-01T00:00:00Z",
        &BTreeSet::new(),
    );
    // _typeFilter: heart rates only, plus all Patients.
    check_export(
        &mut c,
        &s,
        "$export?_type=Observation,Patient&_typeFilter=Observation%3Fcode%3Dhttp%3A%2F%2Floinc.org%7C8867-4",
        &of(&|r| {
            r["resourceType"] == "Patient"
                || (r["resourceType"] == "Observation"
                    && r["code"]["coding"][0]["code"] == "8867-4")
        }),
    );
    // Two filters on one type are OR-ed, without duplicates.
    check_export(
        &mut c,
        &s,
        "$export?_type=Observation&_typeFilter=Observation%3Fcode%3D8867-4,Observation%3Fcode%3D8867-4,Observation%3Fcode%3D9279-1",
        &of(&|r| {
            r["resourceType"] == "Observation"
                && ["8867-4", "9279-1"].contains(&r["code"]["coding"][0]["code"].as_str().unwrap())
        }),
    );

    // Patient level: only resources in patient compartments.
    let compartment_types = [
        "Patient",
        "Encounter",
        "Observation",
        "Condition",
        "AllergyIntolerance",
        "MedicationRequest",
        "Flag",
    ];
    check_export(
        &mut c,
        &s,
        "Patient/$export",
        &of(&|r| compartment_types.contains(&r["resourceType"].as_str().unwrap())),
    );

    // Group level: the members' compartments only.
    let members: Vec<String> = all
        .keys()
        .filter(|k| k.starts_with("Patient/"))
        .take(3)
        .cloned()
        .collect();
    let group = json!({
        "resourceType": "Group", "id": "cohort", "type": "person", "actual": true,
        "member": members.iter().map(|m| json!({"entity": {"reference": m}})).collect::<Vec<_>>(),
    });
    assert_eq!(s.put("Group/cohort", &group).status, 201);
    let in_group = |r: &Value| -> bool {
        let k = key(r);
        members.contains(&k)
            || ["subject", "patient"].iter().any(|f| {
                r[f]["reference"]
                    .as_str()
                    .is_some_and(|x| members.iter().any(|m| m == x))
            })
    };
    // The Group itself is in its members' compartment too (Group.member).
    let mut want = of(&in_group);
    want.insert("Group/cohort".into());
    check_export(&mut c, &s, "Group/cohort/$export", &want);
    // POST kick-off with a Parameters body.
    let params = json!({"resourceType": "Parameters", "parameter": [
        {"name": "_type", "valueString": "Patient"}
    ]});
    let r = s.post_with("Group/cohort/$export", &params, &[ASYNC]);
    match r.header("content-location").filter(|_| r.status == 202) {
        Some(url) => match poll(&s, &url).and_then(|m| download(&s, &m)) {
            Ok(files) => c.eq(
                "POST Group $export _type=Patient",
                keys(&files),
                members.iter().cloned().collect(),
            ),
            Err(e) => c.check(false, || format!("POST kick-off: {e}")),
        },
        None => c.check(false, || format!("POST kick-off: {}", r.brief())),
    }

    // Cancellation: DELETE answers 202, then the job is gone.
    match kickoff(&s, "$export") {
        Ok(url) => {
            c.eq("DELETE status URL", s.delete(&url).status, 202);
            c.eq("status after DELETE", s.get(&url).status, 404);
        }
        Err(e) => c.check(false, || e),
    }

    // A job survives a SIGKILL right after its kick-off: after restart it is
    // (re-)run to completion with the full content.
    let url = kickoff(&s, "$export?_type=Observation").expect("kick-off");
    s.kill();
    let s2 = env.start();
    let url2 = url.replace(&s.base, &s2.base);
    match poll(&s2, &url2).and_then(|m| download(&s2, &m)) {
        Ok(files) => c.eq(
            "export after SIGKILL and restart",
            keys(&files),
            of(&|r| r["resourceType"] == "Observation"),
        ),
        Err(e) => c.check(false, || format!("export after restart: {e}")),
    }
    drop(s2);

    // `wardline export` writes the same files.
    let out = tempfile::tempdir().unwrap();
    let mut args = vec!["export".to_owned(), "--out".to_owned()];
    args.push(out.path().display().to_string());
    args.extend(["--type".to_owned(), "Patient,Encounter".to_owned()]);
    args.extend(env.store_args());
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_wardline"))
        .args(&args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    c.check(o.status.success(), || {
        format!(
            "wardline export failed: {stdout} {}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    let mut got = BTreeSet::new();
    for f in std::fs::read_dir(out.path()).unwrap().flatten() {
        for line in std::fs::read_to_string(f.path()).unwrap().lines() {
            got.insert(key(&serde_json::from_str(line).unwrap()));
        }
    }
    c.eq(
        "wardline export --type Patient,Encounter",
        got,
        of(&|r| r["resourceType"] == "Patient" || r["resourceType"] == "Encounter"),
    );
    c.check(stdout.contains("exported"), || format!("summary: {stdout}"));
    // A second export into the same directory is refused, naming it.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_wardline"))
        .args(&args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    c.check(
        !o.status.success() && stderr.contains(&out.path().display().to_string()),
        || format!("second export into a full directory: {stderr}"),
    );

    c.finish(&format!("[{}] bulk export", env.name));
}

#[test]
fn export_sqlite() {
    run(Env::sqlite());
}

#[test]
fn export_postgres() {
    if let Some(env) = Env::postgres() {
        run(env);
    }
}
