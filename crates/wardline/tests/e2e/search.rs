//! End-to-end search correctness against the real server. Every test writes its
//! own small set of resources to a fresh store and compares search results with
//! sets worked out by hand from the FHIR R4 search rules (ranges for dates by
//! precision, implicit ranges for numbers, starts-with/accent-insensitive strings,
//! token system|code forms, ...). Each check is listed with its expected ids.

use crate::common;

use common::{Checks, Env, Server, entries, next_link};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Percent-encode a query component (everything but RFC 3986 unreserved characters).
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn qs(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The ids a search returns, in order, following `next` links.
fn search_ids(server: &Server, path: &str) -> Result<Vec<String>, String> {
    let mut url = server.url(path);
    let mut out = Vec::new();
    for _ in 0..1000 {
        let r = server.get(&url);
        if r.status != 200 {
            return Err(r.brief());
        }
        if r.body["resourceType"] != "Bundle" || r.body["type"] != "searchset" {
            return Err(format!("not a searchset Bundle: {}", r.brief()));
        }
        for e in entries(&r.body) {
            if e.pointer("/search/mode").and_then(Value::as_str) == Some("outcome") {
                continue;
            }
            out.push(e["resource"]["id"].as_str().unwrap_or("?").to_string());
        }
        match next_link(&r.body) {
            Some(n) => url = n,
            None => return Ok(out),
        }
    }
    Err("paging did not end".into())
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// Check `rtype?pairs` returns exactly `want` (as a set, without duplicates).
fn expect(c: &mut Checks, s: &Server, rtype: &str, pairs: &[(&str, &str)], want: &[&str]) {
    let path = format!("{rtype}?{}", qs(pairs));
    let label = format!(
        "{rtype}?{}",
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    );
    match search_ids(s, &path) {
        Ok(got) => {
            let got_set: BTreeSet<String> = got.iter().cloned().collect();
            if got_set.len() != got.len() {
                c.failures
                    .push(format!("{label}: duplicate entries {got:?}"));
            } else {
                c.eq(&label, got_set, set(want));
            }
        }
        Err(e) => c.failures.push(format!("{label}: {e}")),
    }
}

/// Check `rtype?pairs` returns exactly `want` in this order.
fn expect_order(c: &mut Checks, s: &Server, rtype: &str, pairs: &[(&str, &str)], want: &[&str]) {
    let path = format!("{rtype}?{}", qs(pairs));
    let label = format!(
        "{rtype}?{} (order)",
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    );
    match search_ids(s, &path) {
        Ok(got) => c.eq(&label, got, want.iter().map(|s| s.to_string()).collect()),
        Err(e) => c.failures.push(format!("{label}: {e}")),
    }
}

fn put_all(s: &Server, resources: &[Value]) {
    for r in resources {
        let path = format!(
            "{}/{}",
            r["resourceType"].as_str().unwrap(),
            r["id"].as_str().unwrap()
        );
        let resp = s.put(&path, r);
        assert!(resp.is_success(), "PUT {path}: {}", resp.brief());
    }
}

const MRN: &str = "http://example.org/mrn";
const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";

fn patients() -> Vec<Value> {
    vec![
        json!({"resourceType":"Patient","id":"p1","active":true,
            "identifier":[{"system":MRN,"value":"MRN001"}],
            "name":[{"family":"Smith","given":["John"]}],"gender":"male","birthDate":"1970-06-15",
            "address":[{"city":"Leeds"}]}),
        json!({"resourceType":"Patient","id":"p2","active":false,
            "identifier":[{"system":MRN,"value":"MRN002"}],
            "name":[{"family":"Smythe","given":["Jane"]}],"gender":"female","birthDate":"1980-01-01",
            "address":[{"city":"London"}]}),
        json!({"resourceType":"Patient","id":"p3",
            "identifier":[{"value":"NOSYS3"}],
            "name":[{"family":"Ödegaard","given":["Åse"]}],"gender":"female","birthDate":"1980-12-31",
            "address":[{"city":"Leeds"}]}),
        json!({"resourceType":"Patient","id":"p4",
            "identifier":[{"system":"http://other.org/id","value":"MRN001"}],
            "name":[{"family":"SMITHSON","given":["Jon"]}],"gender":"male","birthDate":"1981-03",
            "address":[{"city":"York"}]}),
        json!({"resourceType":"Patient","id":"p5",
            "name":[{"family":"van Dijk","given":["Eva"]}],"gender":"female","birthDate":"1990",
            "address":[{"city":"Harrogate"}]}),
        json!({"resourceType":"Patient","id":"p6","name":[{"given":["Anon"]}]}),
    ]
}

fn qty(v: f64, code: &str) -> Value {
    json!({"value": v, "unit": code, "system": UCUM, "code": code})
}

fn observations() -> Vec<Value> {
    let code = |system: &str, c: &str| json!({"coding":[{"system":system,"code":c}]});
    vec![
        json!({"resourceType":"Observation","id":"o1","status":"final","code":code(LOINC,"2339-0"),
            "subject":{"reference":"Patient/p1"},"effectiveDateTime":"2020-01-01T09:00:00Z",
            "valueQuantity":qty(5.4,"mmol/L")}),
        json!({"resourceType":"Observation","id":"o2","status":"final","code":code(LOINC,"8480-6"),
            "subject":{"reference":"Patient/p1"},"effectiveDateTime":"2020-01-01T11:30:00+01:00",
            "valueQuantity":qty(120.0,"mm[Hg]")}),
        json!({"resourceType":"Observation","id":"o3","status":"preliminary","code":code(LOINC,"2339-0"),
            "subject":{"reference":"Patient/p2"},
            "effectivePeriod":{"start":"2020-01-02T00:00:00Z","end":"2020-01-05T00:00:00Z"},
            "valueQuantity":qty(7.0,"mmol/L")}),
        json!({"resourceType":"Observation","id":"o4","status":"final","code":code(LOINC,"8480-6"),
            "subject":{"reference":"Patient/p2"},"effectiveDateTime":"2020-02",
            "dataAbsentReason":{"text":"not measured"}}),
        json!({"resourceType":"Observation","id":"o5","status":"final",
            "code":code("http://snomed.info/sct","271649006"),
            "subject":{"reference":"Patient/p3"},"effectiveDateTime":"2021-06-01",
            "valueQuantity":qty(130.0,"mm[Hg]")}),
        json!({"resourceType":"Observation","id":"o6","status":"final","code":code(LOINC,"29463-7")}),
    ]
}

fn risk_assessments() -> Vec<Value> {
    let ra = |id: &str, p: Option<f64>| {
        let mut v = json!({"resourceType":"RiskAssessment","id":id,"status":"final",
            "subject":{"reference":"Patient/p1"}});
        match p {
            Some(p) => v["prediction"] = json!([{"probabilityDecimal": p}]),
            None => v["prediction"] = json!([{"qualitativeRisk":{"text":"low"}}]),
        }
        v
    };
    vec![
        ra("ra1", Some(0.1)),
        ra("ra2", Some(0.25)),
        ra("ra3", Some(0.5)),
        ra("ra4", Some(0.8)),
        ra("ra5", None),
    ]
}

fn questionnaires() -> Vec<Value> {
    let q = |id: &str, url: Option<&str>| {
        let mut v = json!({"resourceType":"Questionnaire","id":id,"status":"active"});
        if let Some(u) = url {
            v["url"] = json!(u);
        }
        v
    };
    vec![
        q("q1", Some("http://example.org/fhir/Questionnaire/intake")),
        q(
            "q2",
            Some("http://example.org/fhir/Questionnaire/intake-v2"),
        ),
        q("q3", Some("http://other.org/q")),
        q("q4", None),
    ]
}

fn load_fixture(s: &Server) {
    put_all(s, &patients());
    put_all(s, &observations());
    put_all(s, &risk_assessments());
    put_all(s, &questionnaires());
}

fn token_string_checks(c: &mut Checks, s: &Server) {
    // token
    expect(
        c,
        s,
        "Patient",
        &[("identifier", "http://example.org/mrn|MRN001")],
        &["p1"],
    );
    expect(c, s, "Patient", &[("identifier", "MRN001")], &["p1", "p4"]);
    expect(
        c,
        s,
        "Patient",
        &[("identifier", "http://example.org/mrn|")],
        &["p1", "p2"],
    );
    expect(c, s, "Patient", &[("identifier", "|NOSYS3")], &["p3"]);
    expect(c, s, "Patient", &[("identifier", "|MRN001")], &[]);
    expect(
        c,
        s,
        "Patient",
        &[("identifier", "http://example.org/mrn|MRN001,|NOSYS3")],
        &["p1", "p3"],
    );
    expect(
        c,
        s,
        "Patient",
        &[("gender", "female")],
        &["p2", "p3", "p5"],
    );
    expect(
        c,
        s,
        "Patient",
        &[("gender", "male,female")],
        &["p1", "p2", "p3", "p4", "p5"],
    );
    expect(
        c,
        s,
        "Patient",
        &[("gender:not", "female")],
        &["p1", "p4", "p6"],
    );
    expect(c, s, "Patient", &[("gender:missing", "true")], &["p6"]);
    expect(
        c,
        s,
        "Patient",
        &[("gender:missing", "false")],
        &["p1", "p2", "p3", "p4", "p5"],
    );
    expect(c, s, "Patient", &[("active", "true")], &["p1"]);
    expect(c, s, "Patient", &[("active", "false")], &["p2"]);
    expect(
        c,
        s,
        "Patient",
        &[("gender", "female"), ("address-city", "Leeds")],
        &["p3"],
    );
    expect(
        c,
        s,
        "Observation",
        &[("code", "http://loinc.org|2339-0")],
        &["o1", "o3"],
    );
    expect(c, s, "Observation", &[("code", "8480-6")], &["o2", "o4"]);
    expect(
        c,
        s,
        "Observation",
        &[("code:not", "http://loinc.org|2339-0")],
        &["o2", "o4", "o5", "o6"],
    );
    expect(
        c,
        s,
        "Observation",
        &[("status", "final")],
        &["o1", "o2", "o4", "o5", "o6"],
    );
    expect(c, s, "Observation", &[("status:not", "final")], &["o3"]);
    // string: default is case- and accent-insensitive starts-with
    expect(c, s, "Patient", &[("family", "smith")], &["p1", "p4"]);
    expect(c, s, "Patient", &[("family", "sm")], &["p1", "p2", "p4"]);
    expect(
        c,
        s,
        "Patient",
        &[("family", "smith,van")],
        &["p1", "p4", "p5"],
    );
    expect(c, s, "Patient", &[("family", "odegaard")], &["p3"]);
    expect(c, s, "Patient", &[("family", "dijk")], &[]);
    expect(c, s, "Patient", &[("family:exact", "Smith")], &["p1"]);
    expect(c, s, "Patient", &[("family:exact", "smith")], &[]);
    expect(c, s, "Patient", &[("family:exact", "SMITHSON")], &["p4"]);
    expect(c, s, "Patient", &[("family:exact", "Ödegaard")], &["p3"]);
    expect(
        c,
        s,
        "Patient",
        &[("family:contains", "mit")],
        &["p1", "p4"],
    );
    expect(c, s, "Patient", &[("family:contains", "THE")], &["p2"]);
    expect(c, s, "Patient", &[("family:contains", "dijk")], &["p5"]);
    expect(c, s, "Patient", &[("family:missing", "true")], &["p6"]);
    expect(c, s, "Patient", &[("given", "ase")], &["p3"]);
    expect(c, s, "Patient", &[("name", "jo")], &["p1", "p4"]);
    expect(c, s, "Patient", &[("address-city", "leeds")], &["p1", "p3"]);
    expect(c, s, "Patient", &[("address", "leeds")], &["p1", "p3"]);
    // _id
    expect(c, s, "Patient", &[("_id", "p1,p3")], &["p1", "p3"]);
    expect(c, s, "Patient", &[("_id", "nope")], &[]);
    expect(
        c,
        s,
        "Patient",
        &[("_id", "p1,p2"), ("gender", "female")],
        &["p2"],
    );
}

fn date_checks(c: &mut Checks, s: &Server) {
    // Patient.birthDate: p1 1970-06-15, p2 1980-01-01, p3 1980-12-31, p4 1981-03, p5 1990, p6 none.
    let b =
        |c: &mut Checks, v: &str, want: &[&str]| expect(c, s, "Patient", &[("birthdate", v)], want);
    b(c, "1980", &["p2", "p3"]);
    b(c, "1980-01-01", &["p2"]);
    b(c, "eq1980-01-01", &["p2"]);
    b(c, "1981", &["p4"]);
    b(c, "1981-03", &["p4"]);
    b(c, "1981-03-10", &[]); // the search day does not contain all of March
    b(c, "1990-06", &[]); // June does not contain all of 1990
    b(c, "ne1980", &["p1", "p4", "p5"]);
    b(c, "gt1980", &["p4", "p5"]);
    b(c, "lt1980", &["p1"]);
    b(c, "gt1981-03-10", &["p4", "p5"]); // March 1981 extends past the 10th
    b(c, "sa1981-03-10", &["p5"]); // ... but does not start after it
    b(c, "lt1981-03-10", &["p1", "p2", "p3", "p4"]);
    b(c, "eb1981-03-10", &["p1", "p2", "p3"]);
    b(c, "ge1980-12-31", &["p3", "p4", "p5"]);
    b(c, "le1980-01-01", &["p1", "p2"]);
    b(c, "gt1980-06-01T12:00:00Z", &["p3", "p4", "p5"]);
    expect(
        c,
        s,
        "Patient",
        &[("birthdate", "ge1980"), ("birthdate", "le1980")],
        &["p2", "p3"],
    );
    expect(
        c,
        s,
        "Patient",
        &[("birthdate", "1970-06-15,1990")],
        &["p1", "p5"],
    );
    expect(c, s, "Patient", &[("birthdate:missing", "true")], &["p6"]);
    // ap: implementation-defined width, but the exact day must match and decades away must not.
    match search_ids(
        s,
        &format!("Patient?{}", qs(&[("birthdate", "ap1980-01-01")])),
    ) {
        Ok(got) => c.check(
            got.contains(&"p2".to_string())
                && !got.contains(&"p1".to_string())
                && !got.contains(&"p5".to_string()),
            || {
                format!(
                    "Patient?birthdate=ap1980-01-01: got {got:?}, want p2 and neither p1 nor p5"
                )
            },
        ),
        Err(e) => c.failures.push(format!("birthdate=ap: {e}")),
    }
    // Observation.effective: o1 2020-01-01T09:00Z, o2 2020-01-01T10:30Z (written +01:00),
    // o3 period 2020-01-02..2020-01-05, o4 2020-02, o5 2021-06-01, o6 none.
    let d =
        |c: &mut Checks, v: &str, want: &[&str]| expect(c, s, "Observation", &[("date", v)], want);
    d(c, "2020-01-01", &["o1", "o2"]);
    d(c, "2020-01", &["o1", "o2", "o3"]);
    d(c, "2020-01-03", &[]);
    d(c, "2020-01-01T10:30:00Z", &["o2"]);
    d(c, "2020-01-01T11:30:00+01:00", &["o2"]);
    d(c, "gt2020-01-01T10:00:00Z", &["o2", "o3", "o4", "o5"]);
    d(c, "lt2020-01-01T10:00:00Z", &["o1"]);
    d(c, "ge2020-01-03", &["o3", "o4", "o5"]);
    d(c, "le2020-01-01T09:00:00Z", &["o1"]);
    d(c, "eb2020-01-02", &["o1", "o2"]);
    d(c, "sa2020-01-04", &["o4", "o5"]);
    d(c, "ne2020-01", &["o4", "o5"]);
    d(c, "gt2020", &["o5"]);
    d(c, "lt2020", &[]);
    expect(c, s, "Observation", &[("date:missing", "true")], &["o6"]);
}

fn number_quantity_reference_uri_checks(c: &mut Checks, s: &Server) {
    // number: RiskAssessment.prediction.probability 0.1, 0.25, 0.5, 0.8, ra5 none
    let n = |c: &mut Checks, v: &str, want: &[&str]| {
        expect(c, s, "RiskAssessment", &[("probability", v)], want)
    };
    n(c, "0.5", &["ra3"]);
    n(c, "0.50", &["ra3"]);
    n(c, "0.8", &["ra4"]);
    n(c, "0.9", &[]);
    n(c, "gt0.5", &["ra4"]);
    n(c, "ge0.5", &["ra3", "ra4"]);
    n(c, "lt0.25", &["ra1"]);
    n(c, "le0.25", &["ra1", "ra2"]);
    n(c, "ne0.5", &["ra1", "ra2", "ra4"]);
    expect(
        c,
        s,
        "RiskAssessment",
        &[("probability:missing", "true")],
        &["ra5"],
    );
    // quantity: o1 5.4 mmol/L, o2 120 mm[Hg], o3 7.0 mmol/L, o5 130 mm[Hg]; o4, o6 none
    let q = |c: &mut Checks, v: &str, want: &[&str]| {
        expect(c, s, "Observation", &[("value-quantity", v)], want)
    };
    q(c, "5.4", &["o1"]);
    q(c, "5.4|http://unitsofmeasure.org|mmol/L", &["o1"]);
    q(c, "5.4||mmol/L", &["o1"]);
    q(c, "5.4|http://unitsofmeasure.org|mg", &[]);
    q(c, "120", &["o2"]);
    q(c, "gt6", &["o2", "o3", "o5"]);
    q(c, "ge120", &["o2", "o5"]);
    q(c, "le7", &["o1", "o3"]);
    q(c, "ne120", &["o1", "o3", "o5"]);
    q(c, "lt100|http://unitsofmeasure.org|mmol/L", &["o1", "o3"]);
    q(c, "gt100|http://unitsofmeasure.org|mm[Hg]", &["o2", "o5"]);
    expect(
        c,
        s,
        "Observation",
        &[("value-quantity:missing", "true")],
        &["o4", "o6"],
    );
    expect(
        c,
        s,
        "Observation",
        &[
            ("code", "http://loinc.org|8480-6"),
            ("value-quantity", "gt100"),
        ],
        &["o2"],
    );
    // reference
    let r = |c: &mut Checks, k: &str, v: &str, want: &[&str]| {
        expect(c, s, "Observation", &[(k, v)], want)
    };
    r(c, "subject", "Patient/p1", &["o1", "o2"]);
    r(c, "subject", "p1", &["o1", "o2"]);
    r(c, "subject:Patient", "p2", &["o3", "o4"]);
    r(c, "patient", "p1", &["o1", "o2"]);
    r(c, "patient", "Patient/p3", &["o5"]);
    r(c, "subject", "Patient/p1,Patient/p3", &["o1", "o2", "o5"]);
    r(c, "subject", "Patient/none", &[]);
    r(c, "subject:missing", "true", &["o6"]);
    // uri
    let u = |c: &mut Checks, k: &str, v: &str, want: &[&str]| {
        expect(c, s, "Questionnaire", &[(k, v)], want)
    };
    u(
        c,
        "url",
        "http://example.org/fhir/Questionnaire/intake",
        &["q1"],
    );
    u(c, "url", "http://example.org/fhir", &[]);
    u(c, "url:below", "http://example.org/fhir", &["q1", "q2"]);
    u(
        c,
        "url:above",
        "http://example.org/fhir/Questionnaire/intake/extra",
        &["q1"],
    );
    u(c, "url:missing", "true", &["q4"]);
}

fn sort_summary_compartment_checks(c: &mut Checks, s: &Server) {
    expect_order(
        c,
        s,
        "Patient",
        &[("birthdate:missing", "false"), ("_sort", "birthdate")],
        &["p1", "p2", "p3", "p4", "p5"],
    );
    expect_order(
        c,
        s,
        "Patient",
        &[("birthdate:missing", "false"), ("_sort", "-birthdate")],
        &["p5", "p4", "p3", "p2", "p1"],
    );
    expect_order(
        c,
        s,
        "Patient",
        &[("_id", "p1,p2,p5"), ("_sort", "family")],
        &["p1", "p2", "p5"],
    );
    expect_order(
        c,
        s,
        "Patient",
        &[("_id", "p1,p2,p5"), ("_sort", "-family")],
        &["p5", "p2", "p1"],
    );
    expect_order(
        c,
        s,
        "Patient",
        &[("_sort", "_id")],
        &["p1", "p2", "p3", "p4", "p5", "p6"],
    );
    expect_order(
        c,
        s,
        "Patient",
        &[("_sort", "-_id")],
        &["p6", "p5", "p4", "p3", "p2", "p1"],
    );
    expect_order(
        c,
        s,
        "Patient",
        &[("_id", "p1,p2,p3,p4,p5"), ("_sort", "gender,-birthdate")],
        &["p5", "p3", "p2", "p4", "p1"],
    );
    expect_order(
        c,
        s,
        "Observation",
        &[("date:missing", "false"), ("_sort", "date")],
        &["o1", "o2", "o3", "o4", "o5"],
    );
    expect_order(
        c,
        s,
        "RiskAssessment",
        &[("probability:missing", "false"), ("_sort", "-probability")],
        &["ra4", "ra3", "ra2", "ra1"],
    );
    expect_order(
        c,
        s,
        "Patient",
        &[
            ("gender", "female"),
            ("_sort", "birthdate"),
            ("_count", "1"),
        ],
        &["p2", "p3", "p5"],
    );

    // _summary=count: a total and no entries
    let r = s.get(&format!(
        "Patient?{}",
        qs(&[("gender", "female"), ("_summary", "count")])
    ));
    c.eq("_summary=count status", r.status, 200);
    c.eq("_summary=count total", r.body["total"].as_u64(), Some(3));
    c.eq("_summary=count entries", entries(&r.body).len(), 0);
    // No _total asked: a complete first page carries its total (issue 23),
    // a partial one does not (that would cost a count).
    let r = s.get(&format!("Patient?{}", qs(&[("gender", "female")])));
    c.eq("complete page total", r.body["total"].as_u64(), Some(3));
    let r = s.get(&format!(
        "Patient?{}",
        qs(&[("gender", "female"), ("_count", "1")])
    ));
    c.eq("partial page: no total", r.body["total"].as_u64(), None);
    // _total=accurate with a small page
    let r = s.get(&format!(
        "Patient?{}",
        qs(&[
            ("gender", "female"),
            ("_total", "accurate"),
            ("_count", "1")
        ])
    ));
    c.eq("_total=accurate status", r.status, 200);
    c.eq("_total=accurate total", r.body["total"].as_u64(), Some(3));
    c.eq("_count=1 page size", entries(&r.body).len(), 1);
    c.check(next_link(&r.body).is_some(), || {
        "_count=1 of 3: no next link".into()
    });
    c.check(
        r.body["link"]
            .as_array()
            .is_some_and(|l| l.iter().any(|l| l["relation"] == "self")),
        || "searchset has no self link".into(),
    );
    // compartment search
    expect(c, s, "Patient/p1/Observation", &[], &["o1", "o2"]);
    expect(
        c,
        s,
        "Patient/p2/Observation",
        &[("code", "8480-6")],
        &["o4"],
    );
    expect(c, s, "Patient/p3/Observation", &[], &["o5"]);
    expect(
        c,
        s,
        "Patient/p1/RiskAssessment",
        &[("probability", "gt0.3")],
        &["ra3", "ra4"],
    );

    // POST _search with a form body; paging links of the result work with GET
    let post = |body: &str| {
        s.raw(
            reqwest::Method::POST,
            "Patient/_search",
            "application/x-www-form-urlencoded",
            body.to_string(),
            &[],
        )
    };
    let r = post(&qs(&[("family", "smith")]));
    c.eq("POST Patient/_search status", r.status, 200);
    c.eq(
        "POST Patient/_search family=smith",
        common::page_ids(&r.body),
        vec!["p1".to_string(), "p4".to_string()],
    );
    let r = post(&qs(&[("birthdate", "ge1980-12-31"), ("_count", "1")]));
    let mut got = common::page_ids(&r.body);
    let mut next = next_link(&r.body);
    while let Some(n) = next {
        let r = s.get(&n);
        got.extend(common::page_ids(&r.body));
        next = next_link(&r.body);
    }
    got.sort();
    c.eq(
        "POST _search paged birthdate=ge1980-12-31",
        got,
        vec!["p3".into(), "p4".into(), "p5".into()],
    );
}

/// `_lastUpdated` and `_sort=_lastUpdated`, on Organizations written in two
/// groups more than a second apart.
fn last_updated_checks(c: &mut Checks, s: &Server) {
    let mut stamps = Vec::new();
    for (i, id) in ["org1", "org2", "org3", "org4", "org5"].iter().enumerate() {
        if i == 3 {
            std::thread::sleep(std::time::Duration::from_millis(1100));
        }
        let r = s.put(
            &format!("Organization/{id}"),
            &json!({"resourceType":"Organization","id":id,"name":id}),
        );
        assert!(r.is_success(), "PUT Organization/{id}: {}", r.brief());
        let r = s.get(&format!("Organization/{id}"));
        let lu = r.body["meta"]["lastUpdated"]
            .as_str()
            .unwrap_or_else(|| panic!("no lastUpdated: {}", r.brief()))
            .to_string();
        stamps.push(lu);
    }
    let a_last = stamps[2].clone();
    let b_first = stamps[3].clone();
    let l = |c: &mut Checks, v: &str, want: &[&str]| {
        expect(c, s, "Organization", &[("_lastUpdated", v)], want)
    };
    l(c, &format!("gt{a_last}"), &["org4", "org5"]);
    l(c, &format!("le{a_last}"), &["org1", "org2", "org3"]);
    l(c, &format!("lt{b_first}"), &["org1", "org2", "org3"]);
    l(c, &format!("ge{b_first}"), &["org4", "org5"]);
    l(c, "gt2000-01-01", &["org1", "org2", "org3", "org4", "org5"]);
    l(c, "lt2000-01-01", &[]);
    match search_ids(s, "Organization?_sort=-_lastUpdated") {
        Ok(got) => {
            c.check(got.len() == 5, || {
                format!("_sort=-_lastUpdated returned {got:?}")
            });
            let first_two: BTreeSet<String> = got.iter().take(2).cloned().collect();
            c.eq(
                "_sort=-_lastUpdated newest first",
                first_two,
                set(&["org4", "org5"]),
            );
        }
        Err(e) => c.failures.push(format!("_sort=-_lastUpdated: {e}")),
    }
}

/// `_count` paging is stable while resources are created between pages: the
/// pages hold exactly the resources that matched when the search started.
fn paging_checks(c: &mut Checks, s: &Server, sort: Option<&str>) {
    // FHIR ids allow [A-Za-z0-9.-] only, so the sort key is sanitised.
    let tag = format!(
        "paging-{}",
        sort.unwrap_or("default").replace(['_', ','], ".")
    );
    let basic = |id: &str| {
        json!({"resourceType":"Basic","id":id,"code":{"text":"paging"},
            "identifier":[{"system":"http://example.org/paging","value":tag}]})
    };
    let ident = format!("http://example.org/paging|{tag}");
    let original: Vec<String> = (0..25).map(|i| format!("{tag}-{i:02}")).collect();
    for id in &original {
        let r = s.put(&format!("Basic/{id}"), &basic(id));
        assert!(r.is_success(), "PUT Basic/{id}: {}", r.brief());
    }
    let mut pairs = vec![
        ("identifier", ident.as_str()),
        ("_count", "10"),
        ("_total", "accurate"),
    ];
    if let Some(sort) = sort {
        pairs.push(("_sort", sort));
    }
    let r = s.get(&format!("Basic?{}", qs(&pairs)));
    if r.status != 200 {
        c.failures.push(format!("paging first page: {}", r.brief()));
        return;
    }
    c.eq(&format!("{tag}: total"), r.body["total"].as_u64(), Some(25));
    let mut pages = vec![common::page_ids(&r.body)];
    let mut next = next_link(&r.body);
    let mut extra = 0;
    while let Some(n) = next {
        for _ in 0..5 {
            let id = format!("{tag}-new{extra:02}");
            extra += 1;
            let w = s.put(&format!("Basic/{id}"), &basic(&id));
            assert!(w.is_success(), "PUT Basic/{id}: {}", w.brief());
        }
        let r = s.get(&n);
        if r.status != 200 {
            c.failures
                .push(format!("{tag}: next page {n}: {}", r.brief()));
            return;
        }
        pages.push(common::page_ids(&r.body));
        next = next_link(&r.body);
        if pages.len() > 10 {
            break;
        }
    }
    c.eq(
        &format!("{tag}: page sizes"),
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![10, 10, 5],
    );
    let all: Vec<String> = pages.concat();
    let uniq: BTreeSet<String> = all.iter().cloned().collect();
    c.eq(
        &format!("{tag}: no duplicates across pages"),
        uniq.len(),
        all.len(),
    );
    c.eq(
        &format!("{tag}: pages hold the original set"),
        uniq,
        original.iter().cloned().collect(),
    );
    // And a fresh search sees the new ones.
    match search_ids(
        s,
        &format!(
            "Basic?{}",
            qs(&[("identifier", ident.as_str()), ("_count", "7")])
        ),
    ) {
        Ok(got) => c.eq(&format!("{tag}: fresh search count"), got.len(), 25 + extra),
        Err(e) => c.failures.push(format!("{tag}: fresh search: {e}")),
    }
}

fn run(env: Env) {
    let s = env.start();
    load_fixture(&s);
    let mut c = Checks::default();
    token_string_checks(&mut c, &s);
    date_checks(&mut c, &s);
    number_quantity_reference_uri_checks(&mut c, &s);
    sort_summary_compartment_checks(&mut c, &s);
    last_updated_checks(&mut c, &s);
    paging_checks(&mut c, &s, None);
    paging_checks(&mut c, &s, Some("_id"));
    paging_checks(&mut c, &s, Some("-_lastUpdated"));
    c.finish(&format!("[{}] search", env.name));
}

#[test]
fn search_sqlite() {
    run(Env::sqlite());
}

#[test]
fn search_postgres() {
    if let Some(env) = Env::postgres() {
        run(env);
    }
}
