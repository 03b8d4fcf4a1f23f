//! End-to-end bad-input cases against the real server: each must get a 4xx with an
//! OperationOutcome (whose `expression` points at the offending element where
//! there is one), nothing may be written, and nothing may be a 5xx.

use crate::common;

use common::{Checks, Env, Resp, Server, entries};
use reqwest::Method;
use serde_json::{Value, json};

/// A 4xx with an OperationOutcome carrying an error issue; when `expr` is given,
/// some issue's `expression` must contain it.
fn bad(c: &mut Checks, label: &str, r: &Resp, status: Option<u16>, expr: Option<&str>) {
    if r.status >= 500 {
        c.failures
            .push(format!("{label}: server error {}", r.brief()));
        return;
    }
    if !(400..500).contains(&r.status) {
        c.failures
            .push(format!("{label}: expected a 4xx, got {}", r.brief()));
        return;
    }
    if let Some(s) = status {
        c.eq(&format!("{label}: status"), r.status, s);
    }
    if r.body["resourceType"] != "OperationOutcome" {
        c.failures.push(format!(
            "{label}: body is not an OperationOutcome: {}",
            r.brief()
        ));
        return;
    }
    let issues = r.body["issue"].as_array().cloned().unwrap_or_default();
    c.check(
        issues
            .iter()
            .any(|i| matches!(i["severity"].as_str(), Some("error" | "fatal"))),
        || format!("{label}: no error/fatal issue: {}", r.brief()),
    );
    c.check(
        issues.iter().all(|i| {
            i["code"].is_string() && i["diagnostics"].as_str().is_some_and(|d| !d.is_empty())
        }),
        || format!("{label}: an issue lacks code or diagnostics: {}", r.brief()),
    );
    if let Some(want) = expr {
        let exprs: Vec<String> = issues
            .iter()
            .flat_map(|i| i["expression"].as_array().cloned().unwrap_or_default())
            .filter_map(|e| e.as_str().map(str::to_string))
            .collect();
        c.check(exprs.iter().any(|e| e.contains(want)), || {
            format!(
                "{label}: no issue expression containing {want:?} (expressions {exprs:?}): {}",
                r.brief()
            )
        });
    }
}

fn ok(c: &mut Checks, label: &str, r: &Resp, status: u16) {
    c.check(r.status == status, || {
        format!("{label}: expected {status}, got {}", r.brief())
    });
}

fn raw_post(s: &Server, path: &str, body: &str) -> Resp {
    s.raw(
        Method::POST,
        path,
        "application/fhir+json",
        body.to_string(),
        &[],
    )
}

fn patient(family: &str) -> Value {
    json!({"resourceType":"Patient","name":[{"family":family}]})
}

fn resource_errors(c: &mut Checks, s: &Server) {
    bad(
        c,
        "malformed JSON",
        &raw_post(s, "Patient", r#"{"resourceType": "Patient","#),
        Some(400),
        None,
    );
    bad(
        c,
        "JSON with trailing garbage",
        &raw_post(s, "Patient", r#"{"resourceType":"Patient"} x"#),
        Some(400),
        None,
    );
    bad(
        c,
        "JSON array body",
        &raw_post(s, "Patient", "[]"),
        Some(400),
        None,
    );
    bad(
        c,
        "empty body",
        &raw_post(s, "Patient", ""),
        Some(400),
        None,
    );
    bad(
        c,
        "no resourceType",
        &s.post("Patient", &json!({"name":[{"family":"X"}]})),
        Some(400),
        None,
    );
    bad(
        c,
        "resourceType differs from URL (POST)",
        &s.post(
            "Patient",
            &json!({"resourceType":"Observation","status":"final","code":{"text":"x"}}),
        ),
        Some(400),
        Some("resourceType"),
    );
    bad(
        c,
        "resourceType differs from URL (PUT)",
        &s.put(
            "Patient/rt1",
            &json!({"resourceType":"Observation","id":"rt1","status":"final","code":{"text":"x"}}),
        ),
        Some(400),
        Some("resourceType"),
    );
    bad(
        c,
        "unknown resourceType",
        &s.post("Wombat", &json!({"resourceType":"Wombat"})),
        None,
        None,
    );
    bad(
        c,
        "PUT body id differs from URL",
        &s.put("Patient/a1", &json!({"resourceType":"Patient","id":"b1"})),
        Some(400),
        Some("id"),
    );
    bad(
        c,
        "PUT without id in body",
        &s.put("Patient/a2", &json!({"resourceType":"Patient"})),
        Some(400),
        None,
    );
    bad(
        c,
        "invalid id in URL",
        &s.put(
            "Patient/bad$id",
            &json!({"resourceType":"Patient","id":"bad$id"}),
        ),
        Some(400),
        None,
    );
    bad(
        c,
        "unknown top-level element",
        &s.post("Patient", &json!({"resourceType":"Patient","foo":1})),
        Some(400),
        Some("Patient.foo"),
    );
    bad(
        c,
        "unknown nested element",
        &s.post(
            "Patient",
            &json!({"resourceType":"Patient","name":[{"family":"X","bogus":true}]}),
        ),
        Some(400),
        Some("bogus"),
    );
    bad(
        c,
        "invalid date",
        &s.post(
            "Patient",
            &json!({"resourceType":"Patient","birthDate":"1980-13-45"}),
        ),
        Some(400),
        Some("Patient.birthDate"),
    );
    bad(
        c,
        "wrong primitive type",
        &s.post("Patient", &json!({"resourceType":"Patient","active":"yes"})),
        Some(400),
        Some("Patient.active"),
    );
    bad(
        c,
        "array for a single element",
        &s.post(
            "Patient",
            &json!({"resourceType":"Patient","gender":["male"]}),
        ),
        Some(400),
        Some("Patient.gender"),
    );
    bad(
        c,
        "object for a primitive",
        &s.post(
            "Patient",
            &json!({"resourceType":"Patient","birthDate":{"value":"1980"}}),
        ),
        Some(400),
        Some("Patient.birthDate"),
    );
    bad(
        c,
        "single value for an array",
        &s.post(
            "Patient",
            &json!({"resourceType":"Patient","name":{"family":"X"}}),
        ),
        Some(400),
        Some("Patient.name"),
    );
    bad(
        c,
        "missing required element",
        &s.post(
            "Observation",
            &json!({"resourceType":"Observation","code":{"text":"x"}}),
        ),
        Some(400),
        Some("status"),
    );
    bad(c, "two choices of one [x]", &s.post("Observation", &json!({"resourceType":"Observation","status":"final","code":{"text":"x"},"valueString":"a","valueBoolean":true})), Some(400), Some("value"));
    bad(c, "invalid NHS number", &s.post("Patient", &json!({"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000015"}]})), Some(400), Some("identifier"));
    bad(c, "NHS number with letters", &s.post("Patient", &json!({"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"90000000X9"}]})), Some(400), Some("identifier"));
    ok(c, "valid NHS number", &s.post("Patient", &json!({"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}]})), 201);
    bad(
        c,
        "unsupported content type",
        &s.raw(
            Method::POST,
            "Patient",
            "text/plain",
            r#"{"resourceType":"Patient"}"#,
            &[],
        ),
        None,
        None,
    );
    // Nothing from the rejected writes may exist: one Patient (the valid NHS number) and no Observation.
    c.eq("Patients after rejected writes", s.count("Patient"), 1);
    c.eq(
        "Observations after rejected writes",
        s.count("Observation"),
        0,
    );
    for id in ["rt1", "a1", "a2", "b1"] {
        let r = s.get(&format!("Patient/{id}"));
        c.check(r.status == 404, || {
            format!("Patient/{id} exists after a rejected PUT: {}", r.brief())
        });
    }
}

fn read_and_search_errors(c: &mut Checks, s: &Server) {
    bad(
        c,
        "read of a missing resource",
        &s.get("Patient/does-not-exist"),
        Some(404),
        None,
    );
    bad(c, "read of an unknown type", &s.get("Wombat/1"), None, None);
    let created = s.post("Patient", &patient("Gone"));
    assert_eq!(created.status, 201, "create: {}", created.brief());
    let id = created.body["id"].as_str().expect("created id").to_string();
    bad(
        c,
        "vread of a missing version",
        &s.get(&format!("Patient/{id}/_history/99")),
        Some(404),
        None,
    );
    let r = s.delete(&format!("Patient/{id}"));
    c.check(matches!(r.status, 200 | 204), || {
        format!("delete: {}", r.brief())
    });
    let r = s.get(&format!("Patient/{id}"));
    c.check(r.status == 410, || {
        format!(
            "read of a deleted resource: expected 410, got {}",
            r.brief()
        )
    });

    let strict = [("Prefer", "handling=strict")];
    let lenient = [("Prefer", "handling=lenient")];
    bad(
        c,
        "unknown search parameter (strict)",
        &s.get_with("Patient?foo=bar", &strict),
        Some(400),
        None,
    );
    let r = s.get_with("Patient?foo=bar", &lenient);
    c.check(r.status == 200 && r.body["type"] == "searchset", || {
        format!(
            "unknown search parameter (lenient): expected a 200 searchset, got {}",
            r.brief()
        )
    });
    bad(
        c,
        "unknown modifier (strict)",
        &s.get_with("Patient?family:sounds=x", &strict),
        Some(400),
        None,
    );
    bad(
        c,
        "unknown _sort parameter (strict)",
        &s.get_with("Patient?_sort=nonsense", &strict),
        Some(400),
        None,
    );
    bad(
        c,
        "bad date value",
        &s.get_with("Patient?birthdate=notadate", &strict),
        Some(400),
        None,
    );
    bad(
        c,
        "bad date prefix",
        &s.get_with("Patient?birthdate=xx2020", &strict),
        Some(400),
        None,
    );
    bad(
        c,
        "bad number value",
        &s.get_with("RiskAssessment?probability=abc", &strict),
        Some(400),
        None,
    );
    bad(
        c,
        "bad _count",
        &s.get_with("Patient?_count=abc", &strict),
        Some(400),
        None,
    );
    bad(
        c,
        "bad :missing value",
        &s.get_with("Patient?gender:missing=maybe", &strict),
        Some(400),
        None,
    );
    bad(
        c,
        "search on an unknown type",
        &s.get("Wombat?name=x"),
        None,
        None,
    );
}

fn version_errors(c: &mut Checks, s: &Server) {
    let mut p = patient("Locking");
    p["id"] = json!("lock1");
    ok(c, "create lock1", &s.put("Patient/lock1", &p), 201);
    p["name"][0]["family"] = json!("Locking2");
    let r = s.put_with("Patient/lock1", &p, &[("If-Match", "W/\"1\"")]);
    ok(c, "If-Match current version", &r, 200);
    c.eq(
        "ETag after update",
        r.header("etag"),
        Some("W/\"2\"".to_string()),
    );
    p["name"][0]["family"] = json!("Locking3");
    bad(
        c,
        "If-Match stale version",
        &s.put_with("Patient/lock1", &p, &[("If-Match", "W/\"1\"")]),
        Some(412),
        None,
    );
    let r = s.get("Patient/lock1");
    c.eq(
        "after 412: version",
        r.body["meta"]["versionId"].as_str(),
        Some("2"),
    );
    c.eq(
        "after 412: content",
        r.body["name"][0]["family"].as_str(),
        Some("Locking2"),
    );

    // JSON Patch failures leave the resource unchanged.
    let patch = |body: Value| {
        s.raw(
            Method::PATCH,
            "Patient/lock1",
            "application/json-patch+json",
            body.to_string(),
            &[],
        )
    };
    bad(
        c,
        "JSON Patch test op fails",
        &patch(json!([{"op":"test","path":"/active","value":true}])),
        None,
        None,
    );
    bad(
        c,
        "JSON Patch path missing",
        &patch(json!([{"op":"replace","path":"/birthDate/x","value":"1"}])),
        None,
        None,
    );
    bad(
        c,
        "JSON Patch makes resource invalid",
        &patch(json!([{"op":"add","path":"/foo","value":1}])),
        Some(400),
        Some("foo"),
    );
    bad(
        c,
        "JSON Patch body not an array",
        &patch(json!({"op":"add"})),
        Some(400),
        None,
    );
    let r = s.get("Patient/lock1");
    c.eq(
        "after failed patches: version",
        r.body["meta"]["versionId"].as_str(),
        Some("2"),
    );

    // Conditional interactions with more than one match.
    for fam in ["Twin", "Twin"] {
        let mut t = patient(fam);
        t["identifier"] = json!([{"system":"http://example.org/twins","value":"t"}]);
        ok(c, "create twin", &s.post("Patient", &t), 201);
    }
    let mut t = patient("Third");
    t["identifier"] = json!([{"system":"http://example.org/twins","value":"t"}]);
    bad(
        c,
        "conditional create, several matches",
        &s.post_with(
            "Patient",
            &t,
            &[("If-None-Exist", "identifier=http://example.org/twins|t")],
        ),
        Some(412),
        None,
    );
    bad(
        c,
        "conditional update, several matches",
        &s.put("Patient?identifier=http://example.org/twins|t", &t),
        Some(412),
        None,
    );
    c.eq(
        "twins after failed conditionals",
        s.count("Patient?identifier=http://example.org/twins|t"),
        2,
    );
}

fn bundle_errors(c: &mut Checks, s: &Server) {
    let before_p = s.count("Patient");
    let before_o = s.count("Observation");
    let obs = |subject: &str| json!({"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":subject}});
    let entry = |full: &str, res: Value, method: &str, url: &str| json!({"fullUrl":full,"resource":res,"request":{"method":method,"url":url}});
    let txn =
        |entries: Vec<Value>| json!({"resourceType":"Bundle","type":"transaction","entry":entries});

    // An invalid resource in the third entry.
    let t = txn(vec![
        entry(
            "urn:uuid:11111111-1111-4111-8111-111111111111",
            patient("TxnGood"),
            "POST",
            "Patient",
        ),
        entry(
            "urn:uuid:22222222-2222-4222-8222-222222222222",
            obs("urn:uuid:11111111-1111-4111-8111-111111111111"),
            "POST",
            "Observation",
        ),
        entry(
            "urn:uuid:33333333-3333-4333-8333-333333333333",
            json!({"resourceType":"Patient","foo":true}),
            "POST",
            "Patient",
        ),
    ]);
    bad(
        c,
        "transaction with an invalid entry",
        &s.post("", &t),
        Some(400),
        Some("foo"),
    );
    // A stale If-Match in the second entry.
    let mut lock = s.get("Patient/lock1").body;
    lock["active"] = json!(true);
    let mut e2 = entry("Patient/lock1", lock, "PUT", "Patient/lock1");
    e2["request"]["ifMatch"] = json!("W/\"1\"");
    let t = txn(vec![
        entry(
            "urn:uuid:44444444-4444-4444-8444-444444444444",
            patient("TxnGood2"),
            "POST",
            "Patient",
        ),
        e2,
    ]);
    bad(
        c,
        "transaction with a version conflict",
        &s.post("", &t),
        None,
        None,
    );
    // A conditional reference that matches nothing.
    let t = txn(vec![
        entry(
            "urn:uuid:55555555-5555-4555-8555-555555555555",
            patient("TxnGood3"),
            "POST",
            "Patient",
        ),
        entry(
            "urn:uuid:66666666-6666-4666-8666-666666666666",
            obs("Patient?identifier=http://example.org/none|0"),
            "POST",
            "Observation",
        ),
    ]);
    bad(
        c,
        "transaction with an unresolvable conditional reference",
        &s.post("", &t),
        None,
        None,
    );
    // A malformed entry (no request).
    let t = json!({"resourceType":"Bundle","type":"transaction","entry":[
        entry("urn:uuid:77777777-7777-4777-8777-777777777777", patient("TxnGood4"), "POST", "Patient"),
        {"fullUrl":"urn:uuid:88888888-8888-4888-8888-888888888888","resource":patient("NoRequest")}]});
    bad(
        c,
        "transaction entry without request",
        &s.post("", &t),
        Some(400),
        None,
    );
    bad(
        c,
        "Bundle of an unprocessable type",
        &s.post(
            "",
            &json!({"resourceType":"Bundle","type":"collection","entry":[]}),
        ),
        None,
        None,
    );
    bad(
        c,
        "non-Bundle at the system endpoint",
        &s.post("", &patient("x")),
        None,
        None,
    );
    c.eq(
        "Patients after failed transactions",
        s.count("Patient"),
        before_p,
    );
    c.eq(
        "Observations after failed transactions",
        s.count("Observation"),
        before_o,
    );
    c.eq(
        "lock1 untouched by failed transaction",
        s.get("Patient/lock1").body["meta"]["versionId"].as_str(),
        Some("2"),
    );

    // A batch: entries are independent, the bad one fails alone.
    let b = json!({"resourceType":"Bundle","type":"batch","entry":[
        entry("urn:uuid:99999999-9999-4999-8999-999999999999", patient("BatchGood"), "POST", "Patient"),
        entry("urn:uuid:aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa", json!({"resourceType":"Patient","foo":1}), "POST", "Patient"),
        {"request":{"method":"GET","url":"Patient/does-not-exist"}}]});
    let r = s.post("", &b);
    ok(c, "batch with a bad entry", &r, 200);
    let es = entries(&r.body);
    let status = |i: usize| {
        es.get(i)
            .and_then(|e| e["response"]["status"].as_str())
            .unwrap_or("")
            .to_string()
    };
    c.check(status(0).starts_with("201"), || {
        format!("batch entry 0: {:?}", es.first())
    });
    c.check(status(1).starts_with("400"), || {
        format!("batch entry 1: {:?}", es.get(1))
    });
    c.check(
        es.get(1)
            .is_some_and(|e| e["response"]["outcome"]["resourceType"] == "OperationOutcome"),
        || format!("batch entry 1 has no OperationOutcome: {:?}", es.get(1)),
    );
    c.check(status(2).starts_with("404"), || {
        format!("batch entry 2: {:?}", es.get(2))
    });
    c.eq("Patients after batch", s.count("Patient"), before_p + 1);
}

fn run(env: Env) {
    let s = env.start();
    let mut c = Checks::default();
    resource_errors(&mut c, &s);
    read_and_search_errors(&mut c, &s);
    version_errors(&mut c, &s);
    bundle_errors(&mut c, &s);
    c.finish(&format!("[{}] errors", env.name));
}

#[test]
fn errors_sqlite() {
    run(Env::sqlite());
}

#[test]
fn errors_postgres() {
    if let Some(env) = Env::postgres() {
        run(env);
    }
}
