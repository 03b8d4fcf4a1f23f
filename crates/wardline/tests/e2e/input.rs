//! FHIR input handling through the real server, on both backends (issue 15):
//!
//! * decimals come back exactly as written from every read path (read,
//!   vread, history, search, `$everything`, Bulk export);
//! * a body with a key given twice is refused;
//! * a string holding a C0 control character is refused;
//! * a `meta` of the wrong shape is refused;
//! * a code outside a required binding is refused.
//!
//! A refusal is a 4xx OperationOutcome naming the element, on create, update
//! and in transactions, and nothing is written.

use crate::common;

use std::time::Duration;

use common::{Checks, Env, Resp, Server, entries, expect_outcome};
use reqwest::Method;
use serde_json::json;

/// Decimals as a client writes them: trailing zeros, more significant digits
/// than an f64 holds, a tiny value, an exponent.
const DECIMALS: [&str; 5] = [
    "1.50",
    "12345678901234567890.123",
    "0.000010",
    "-0.10",
    "1.0e-3",
];

fn raw(s: &Server, method: Method, path: &str, body: &str) -> Resp {
    s.raw(method, path, "application/fhir+json", body.to_owned(), &[])
}

/// A 4xx OperationOutcome with an issue whose expression is `expr`.
fn refused(c: &mut Checks, label: &str, r: &Resp, expr: &str) {
    if !(400..500).contains(&r.status) || r.body["resourceType"] != "OperationOutcome" {
        c.failures.push(format!(
            "{label}: expected a 4xx OperationOutcome, got {}",
            r.brief()
        ));
        return;
    }
    let exprs = expect_outcome(r, label);
    c.check(exprs.iter().any(|e| e == expr), || {
        format!(
            "{label}: no issue at {expr} (expressions {exprs:?}): {}",
            r.brief()
        )
    });
}

/// Each decimal must appear in `text` exactly as written, as the JSON
/// number (not a string, not rounded).
fn has_decimals(c: &mut Checks, label: &str, text: &str) {
    for d in DECIMALS {
        c.check(text.contains(&format!("\"value\":{d}")), || {
            format!("{label}: {d} not returned as written: {text:.1500}")
        });
    }
}

fn decimals(c: &mut Checks, s: &Server) {
    let r = s.post(
        "Patient",
        &json!({"resourceType":"Patient","name":[{"family":"Decimal"}]}),
    );
    assert_eq!(r.status, 201, "{}", r.brief());
    let pid = r.body["id"].as_str().unwrap().to_owned();
    let components: Vec<String> = DECIMALS
        .iter()
        .map(|d| {
            format!(r#"{{"code":{{"text":"c {d}"}},"valueQuantity":{{"value":{d},"unit":"mg"}}}}"#)
        })
        .collect();
    let body = format!(
        r#"{{"resourceType":"Observation","status":"final","code":{{"text":"dose"}},
        "subject":{{"reference":"Patient/{pid}"}},
        "valueQuantity":{{"value":1.50,"unit":"mg"}},
        "component":[{}]}}"#,
        components.join(",")
    );
    let r = raw(s, Method::POST, "Observation", &body);
    assert_eq!(r.status, 201, "{}", r.brief());
    has_decimals(c, "create response", &r.text);
    let oid = r.body["id"].as_str().unwrap().to_owned();

    // A second version, by an update that changes something (an identical
    // update makes no version), so that history holds two.
    let updated = body
        .replacen(
            r#""resourceType":"Observation","#,
            &format!(r#""resourceType":"Observation","id":"{oid}","#),
            1,
        )
        .replacen(r#""status":"final""#, r#""status":"amended""#, 1);
    let r = raw(s, Method::PUT, &format!("Observation/{oid}"), &updated);
    assert_eq!(r.status, 200, "{}", r.brief());
    has_decimals(c, "update response", &r.text);

    has_decimals(c, "read", &s.get(&format!("Observation/{oid}")).text);
    has_decimals(
        c,
        "vread",
        &s.get(&format!("Observation/{oid}/_history/1")).text,
    );
    let h = s.get(&format!("Observation/{oid}/_history"));
    c.eq("history entries", entries(&h.body).len(), 2);
    has_decimals(c, "history", &h.text);
    has_decimals(
        c,
        "search",
        &s.get(&format!("Observation?subject=Patient/{pid}")).text,
    );
    has_decimals(
        c,
        "$everything",
        &s.get(&format!("Patient/{pid}/$everything")).text,
    );
    match export_observations(s) {
        Ok(ndjson) => has_decimals(c, "Bulk export", &ndjson),
        Err(e) => c.failures.push(format!("Bulk export: {e}")),
    }

    // The index still reads the numbers: a quantity search finds the value
    // (1.50 lies in the implicit range of 1.5), and not another.
    let found = |q: &str| {
        let r = s.get(&format!("Observation?subject=Patient/{pid}&{q}"));
        entries(&r.body).len()
    };
    c.eq("value-quantity=1.5", found("value-quantity=1.5"), 1);
    c.eq("value-quantity=1.50", found("value-quantity=1.50"), 1);
    c.eq("value-quantity=1.6", found("value-quantity=1.6"), 0);
    c.eq(
        "component-value-quantity=12345678901234567890.123",
        found("component-value-quantity=12345678901234567890.123"),
        1,
    );

    // A decimal beyond what the index can hold is refused, not stored unindexed.
    let r = raw(
        s,
        Method::POST,
        "Observation",
        r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1e400}}"#,
    );
    refused(
        c,
        "decimal out of range",
        &r,
        "Observation.valueQuantity.value",
    );
}

/// The system-level export's Observation file.
fn export_observations(s: &Server) -> Result<String, String> {
    let r = s.get_with("$export?_type=Observation", &[("Prefer", "respond-async")]);
    if r.status != 202 {
        return Err(format!("kick-off: {}", r.brief()));
    }
    let status = r.header("content-location").ok_or("no Content-Location")?;
    for _ in 0..600 {
        let r = s.get(&status);
        match r.status {
            202 => std::thread::sleep(Duration::from_millis(50)),
            200 => {
                let mut text = String::new();
                for o in r.body["output"].as_array().ok_or("no output")? {
                    let url = o["url"].as_str().ok_or("no url")?;
                    let f = s
                        .client
                        .get(url)
                        .header("Accept", "application/fhir+ndjson")
                        .send()
                        .map_err(|e| e.to_string())?;
                    text.push_str(&f.text().map_err(|e| e.to_string())?);
                }
                return Ok(text);
            }
            _ => return Err(format!("status: {}", r.brief())),
        }
    }
    Err("the export did not finish in 30 s".into())
}

fn control_characters(c: &mut Checks, s: &Server) {
    let before = s.count("Patient");
    for (name, ch) in [("NUL", "\\u0000"), ("BEL", "\\u0007"), ("ESC", "\\u001b")] {
        let r = raw(
            s,
            Method::POST,
            "Patient",
            &format!(r#"{{"resourceType":"Patient","name":[{{"family":"Smi{ch}th"}}]}}"#),
        );
        refused(
            c,
            &format!("{name} in a name"),
            &r,
            "Patient.name[0].family",
        );
    }
    let r = raw(
        s,
        Method::PUT,
        "Patient/ctl1",
        r#"{"resourceType":"Patient","id":"ctl1","identifier":[{"system":"urn:x","value":"a\u0001b"}]}"#,
    );
    refused(c, "SOH in an update", &r, "Patient.identifier[0].value");
    let r = raw(
        s,
        Method::POST,
        "",
        r#"{"resourceType":"Bundle","type":"transaction","entry":[
            {"resource":{"resourceType":"Patient","name":[{"family":"Ok"}]},"request":{"method":"POST","url":"Patient"}},
            {"resource":{"resourceType":"Patient","name":[{"text":"line\u000bfeed"}]},"request":{"method":"POST","url":"Patient"}}]}"#,
    );
    refused(
        c,
        "VT in a transaction",
        &r,
        "Bundle.entry[1].resource.name[0].text",
    );
    c.eq("no Patient written", s.count("Patient"), before);
    // Tab, carriage return and line feed are allowed.
    let r = raw(
        s,
        Method::POST,
        "Patient",
        r#"{"resourceType":"Patient","name":[{"text":"a\tb\r\nc"}]}"#,
    );
    c.eq("tab, CR, LF accepted", r.status, 201);
}

fn duplicate_keys(c: &mut Checks, s: &Server) {
    let before = s.count("Patient");
    let r = raw(
        s,
        Method::POST,
        "Patient",
        r#"{"resourceType":"Patient","gender":"male","gender":"female"}"#,
    );
    refused(c, "duplicate top-level key", &r, "Patient.gender");
    let r = raw(
        s,
        Method::PUT,
        "Patient/dup1",
        r#"{"resourceType":"Patient","id":"dup1","name":[{"family":"A","given":["B"],"family":"C"}]}"#,
    );
    refused(c, "duplicate nested key", &r, "Patient.name[0].family");
    let r = raw(
        s,
        Method::POST,
        "",
        r#"{"resourceType":"Bundle","type":"transaction","entry":[
            {"resource":{"resourceType":"Patient","birthDate":"1970-01-01","birthDate":"1971-01-01"},
             "request":{"method":"POST","url":"Patient"}}]}"#,
    );
    refused(
        c,
        "duplicate key in a transaction",
        &r,
        "Bundle.entry[0].resource.birthDate",
    );
    // The same key in two different objects is no duplicate.
    let r = raw(
        s,
        Method::POST,
        "Patient",
        r#"{"resourceType":"Patient","name":[{"family":"A"},{"family":"B"}]}"#,
    );
    c.eq("same key in sibling objects", r.status, 201);
    c.eq("no duplicate written", s.count("Patient"), before + 1);
}

fn meta(c: &mut Checks, s: &Server) {
    let before = s.count("Patient");
    let cases = [
        (json!({"versionId": {"a": 1}}), "Patient.meta.versionId"),
        (json!({"versionId": 7}), "Patient.meta.versionId"),
        (
            json!({"lastUpdated": "yesterday"}),
            "Patient.meta.lastUpdated",
        ),
        (
            json!({"lastUpdated": ["2020-01-01T00:00:00Z"]}),
            "Patient.meta.lastUpdated",
        ),
        (json!({"profile": "http://x"}), "Patient.meta.profile"),
        (
            json!({"tag": [{"code": {"c": 1}}]}),
            "Patient.meta.tag[0].code",
        ),
        (json!({"colour": "blue"}), "Patient.meta.colour"),
    ];
    for (m, at) in &cases {
        let r = s.post("Patient", &json!({"resourceType":"Patient","meta": m}));
        refused(c, &format!("create with meta {m}"), &r, at);
        let r = s.put(
            "Patient/meta1",
            &json!({"resourceType":"Patient","id":"meta1","meta": m}),
        );
        refused(c, &format!("update with meta {m}"), &r, at);
    }
    c.eq("no Patient written", s.count("Patient"), before);
    // A well-formed meta is kept (tags, profiles), its version and time stamped.
    let r = s.post(
        "Patient",
        &json!({"resourceType":"Patient","meta":{"versionId":"99","lastUpdated":"2001-01-01T00:00:00Z",
            "tag":[{"system":"urn:x","code":"t"}]}}),
    );
    c.eq("good meta accepted", r.status, 201);
    c.eq(
        "versionId stamped",
        r.body["meta"]["versionId"].as_str(),
        Some("1"),
    );
    c.eq(
        "tag kept",
        r.body["meta"]["tag"][0]["code"].as_str(),
        Some("t"),
    );
}

fn bindings(c: &mut Checks, s: &Server) {
    let before = (s.count("Patient"), s.count("Observation"));
    for g in ["m", "banana", "Male", ""] {
        let r = s.post("Patient", &json!({"resourceType":"Patient","gender": g}));
        refused(c, &format!("Patient.gender {g:?}"), &r, "Patient.gender");
    }
    let r = s.post(
        "Observation",
        &json!({"resourceType":"Observation","status":"banana","code":{"text":"x"}}),
    );
    refused(c, "Observation.status banana", &r, "Observation.status");
    let r = s.put(
        "Patient/bind1",
        &json!({"resourceType":"Patient","id":"bind1","contact":[{"gender":"f"}]}),
    );
    refused(
        c,
        "contact gender on update",
        &r,
        "Patient.contact[0].gender",
    );
    let r = s.post(
        "Patient",
        &json!({"resourceType":"Patient","name":[{"use":"nickname","family":"X"},{"use":"alias"}]}),
    );
    refused(c, "HumanName.use (a data type)", &r, "Patient.name[1].use");
    let r = s.post(
        "Condition",
        &json!({"resourceType":"Condition","subject":{"reference":"Patient/x"},
            "clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"gone"}]}}),
    );
    refused(
        c,
        "Condition.clinicalStatus (CodeableConcept)",
        &r,
        "Condition.clinicalStatus",
    );
    let r = s.post(
        "",
        &json!({"resourceType":"Bundle","type":"transaction","entry":[
            {"resource":{"resourceType":"Patient","gender":"female"},"request":{"method":"POST","url":"Patient"}},
            {"resource":{"resourceType":"Observation","status":"done","code":{"text":"x"}},
             "request":{"method":"POST","url":"Observation"}}]}),
    );
    refused(
        c,
        "binding in a transaction",
        &r,
        "Bundle.entry[1].resource.status",
    );
    c.eq(
        "nothing written",
        (s.count("Patient"), s.count("Observation")),
        before,
    );
    for g in ["male", "female", "other", "unknown"] {
        let r = s.post("Patient", &json!({"resourceType":"Patient","gender": g}));
        c.eq(&format!("Patient.gender {g}"), r.status, 201);
    }
}

fn run(env: Env) {
    let s = env.start();
    let mut c = Checks::default();
    decimals(&mut c, &s);
    duplicate_keys(&mut c, &s);
    control_characters(&mut c, &s);
    meta(&mut c, &s);
    bindings(&mut c, &s);
    c.finish(&format!("[{}] input", env.name));
}

#[test]
fn input_sqlite() {
    run(Env::sqlite());
}

#[test]
fn input_postgres() {
    if let Some(env) = Env::postgres() {
        run(env);
    }
}

/// `wardline import` refuses what the REST API refuses, naming file and
/// element: a key given twice, a control character, a wrong `meta`, a code
/// outside a required binding.
#[test]
fn input_import_refuses_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let files = [
        (
            "good.json",
            r#"{"resourceType":"Patient","id":"good","gender":"female"}"#,
        ),
        (
            "gender.json",
            r#"{"resourceType":"Patient","id":"g","gender":"banana"}"#,
        ),
        (
            "dup.json",
            r#"{"resourceType":"Patient","id":"d","gender":"male","gender":"female"}"#,
        ),
        (
            "ctl.json",
            r#"{"resourceType":"Patient","id":"c","name":[{"family":"a\u0000"}]}"#,
        ),
        (
            "meta.json",
            r#"{"resourceType":"Patient","id":"m","meta":{"versionId":{"a":1}}}"#,
        ),
    ];
    for (name, text) in files {
        std::fs::write(input.join(name), text).unwrap();
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wardline"))
        .args(["import", input.to_str().unwrap(), "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("loaded 1 resource from 5 files; rejected 4"),
        "{stdout}"
    );
    for (file, at) in [
        ("gender.json", "Patient.gender"),
        ("dup.json", "Patient.gender"),
        ("ctl.json", "Patient.name[0].family"),
        ("meta.json", "Patient.meta.versionId"),
    ] {
        assert!(
            stdout.lines().any(|l| l.contains(file) && l.contains(at)),
            "{file} not refused at {at}: {stdout}"
        );
    }
}
