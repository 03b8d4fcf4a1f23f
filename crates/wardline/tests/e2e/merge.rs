//! `POST Patient/$merge` over FHIR REST: listed in the CapabilityStatement;
//! a preview changes nothing; the merge repoints references, retires the
//! source with `replaced-by`, and leaves one audit event; every bad request
//! is a 4xx OperationOutcome that says what is wrong.

use serde_json::{Value, json};

use crate::common::{self, Env, Server, entries};

const NHS: &str = "https://fhir.nhs.uk/Id/nhs-number";

fn patient(id: &str, nhs: Option<&str>) -> Value {
    let mut p = json!({
        "resourceType": "Patient", "id": id, "active": true,
        "name": [{"use": "official", "family": "Merriweather", "given": ["Ada"]}],
        "gender": "female", "birthDate": "1961-07-14",
    });
    if let Some(n) = nhs {
        p["identifier"] = json!([{"system": NHS, "value": n}]);
    }
    p
}

fn parameters(ps: Value) -> Value {
    json!({"resourceType": "Parameters", "parameter": ps})
}

fn reference(name: &str, id: &str) -> Value {
    json!({"name": name, "valueReference": {"reference": format!("Patient/{id}")}})
}

fn out<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["parameter"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .map(|p| &p["resource"])
        .unwrap_or_else(|| panic!("no '{name}' in {r}"))
}

/// Posts `$merge`, expecting `status`; the diagnostics of an error.
fn merge(s: &Server, body: &Value, status: u16) -> (Value, String) {
    let r = s.post("Patient/$merge", body);
    assert_eq!(r.status, status, "{}", r.brief());
    let text = if r.is_success() {
        String::new()
    } else {
        assert_eq!(r.body["resourceType"], "OperationOutcome", "{}", r.brief());
        r.body["issue"][0]["diagnostics"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    (r.body, text)
}

fn run(env: Env) {
    let s = env.start();
    let cs = s.get("metadata").body;
    let pat = cs["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Patient")
        .unwrap()
        .clone();
    assert!(
        pat["operation"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["name"] == "merge"
                && o["definition"] == "http://hl7.org/fhir/OperationDefinition/Patient-merge"),
        "{pat}"
    );

    // The trust, where the privacy officer (below) holds a position.
    let trust = json!({"resourceType": "Organization", "id": "trust", "name": "The trust"});
    assert!(s.put("Organization/trust", &trust).is_success());
    for p in [
        patient("keep", Some("9434765919")),
        patient("dupe", None),
        patient("other", Some("9434765870")),
    ] {
        let r = s.put(&format!("Patient/{}", p["id"].as_str().unwrap()), &p);
        assert!(r.is_success(), "{}", r.brief());
    }
    for (id, body) in [
        (
            "Observation/obs-1",
            json!({"resourceType": "Observation", "id": "obs-1", "status": "final",
                   "code": {"text": "Weight"}, "subject": {"reference": "Patient/dupe"}}),
        ),
        (
            "Encounter/enc-1",
            json!({"resourceType": "Encounter", "id": "enc-1", "status": "finished",
                   "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                   "subject": {"reference": "Patient/dupe"}}),
        ),
    ] {
        let r = s.put(id, &body);
        assert!(r.is_success(), "{}", r.brief());
    }

    // ---- a preview changes nothing ----------------------------------------------
    let (r, _) = merge(
        &s,
        &parameters(json!([
            reference("source-patient", "dupe"),
            {"name": "target-patient-identifier", "valueIdentifier": {"system": NHS, "value": "9434765919"}},
            {"name": "preview", "valueBoolean": true},
        ])),
        200,
    );
    let said = out(&r, "outcome")["issue"][0]["diagnostics"].to_string();
    assert!(
        said.contains("would be") && said.contains("2 resource"),
        "{said}"
    );
    assert_eq!(out(&r, "result")["link"][0]["type"], "replaces");
    assert_eq!(out(&r, "input")["resourceType"], "Parameters");
    assert_eq!(s.get("Patient/dupe").body["active"], true);
    assert_eq!(s.get("Patient/keep").body.get("link"), None);
    assert_eq!(
        s.get("Observation/obs-1").body["subject"]["reference"],
        "Patient/dupe"
    );

    // ---- the merge ------------------------------------------------------------
    let (r, _) = merge(
        &s,
        &parameters(json!([
            reference("source-patient", "dupe"),
            reference("target-patient", "keep")
        ])),
        200,
    );
    let said = out(&r, "outcome")["issue"][0]["diagnostics"].to_string();
    assert!(said.contains("2 resource(s) were repointed"), "{said}");
    let result = out(&r, "result");
    assert_eq!(result["id"], "keep");
    assert_eq!(result["link"][0]["other"]["reference"], "Patient/dupe");
    let source = s.get("Patient/dupe").body;
    assert_eq!(source["active"], false);
    assert_eq!(source["link"][0]["type"], "replaced-by");
    for r in ["Observation/obs-1", "Encounter/enc-1"] {
        assert_eq!(
            s.get(r).body["subject"]["reference"],
            "Patient/keep",
            "{r} repointed"
        );
    }
    let prov = entries(&s.get("Provenance?target=Patient/keep").body);
    assert_eq!(prov.len(), 1, "one Provenance");
    // One audit event for the merge (the interaction's own is not doubled),
    // and one for the preview's reads.
    let ig = env.privacy_officer();
    let audit = |subtype: &str| -> Vec<Value> {
        let b: Value = ig
            .get(s.url(&format!("AuditEvent?subtype={subtype}&_count=50")))
            .send()
            .unwrap()
            .json()
            .unwrap();
        entries(&b)
    };
    let merges = audit("pmi-merge");
    assert_eq!(merges.len(), 1, "{merges:?}");
    let text = merges[0].to_string();
    assert!(
        text.contains("Patient/dupe") && text.contains("Observation/obs-1"),
        "{text}"
    );
    assert_eq!(audit("pmi-merge-preview").len(), 1);

    // ---- refusals, each with words --------------------------------------------
    let (_, m) = merge(
        &s,
        &parameters(json!([
            reference("source-patient", "other"),
            reference("target-patient", "keep")
        ])),
        422,
    );
    assert!(m.contains("different NHS numbers"), "{m}");
    let (_, m) = merge(
        &s,
        &parameters(json!([
            reference("source-patient", "dupe"),
            reference("target-patient", "keep")
        ])),
        422,
    );
    assert!(m.contains("already merged"), "{m}");
    let (_, m) = merge(
        &s,
        &parameters(json!([reference("target-patient", "keep")])),
        400,
    );
    assert!(m.contains("name the source patient"), "{m}");
    let (_, m) = merge(
        &s,
        &parameters(json!([
            {"name": "source-patient-identifier", "valueIdentifier": {"system": NHS, "value": "9999999999"}},
            reference("target-patient", "keep"),
        ])),
        422,
    );
    assert!(m.contains("no patient record has"), "{m}");
    let (_, m) = merge(
        &s,
        &parameters(json!([
            reference("source-patient", "nobody"),
            reference("target-patient", "keep")
        ])),
        404,
    );
    assert!(m.contains("nobody"), "{m}");
    let (_, m) = merge(
        &s,
        &parameters(json!([{"name": "survivor", "valueString": "keep"}])),
        400,
    );
    assert!(m.contains("'survivor' is not a parameter"), "{m}");
    let (_, m) = merge(
        &s,
        &parameters(
            json!([reference("source-patient", "other"), reference("target-patient", "keep"),
                           {"name": "result-patient", "resource": patient("keep", None)}]),
        ),
        422,
    );
    assert!(m.contains("result-patient"), "{m}");
    let (_, m) = merge(&s, &patient("x", None), 400);
    assert!(m.contains("Parameters"), "{m}");
    let r = s.get("Patient/$merge");
    assert_eq!(r.status, 405, "{}", r.brief());
    let r = s.post("Patient/$nothing", &parameters(json!([])));
    assert_eq!(r.status, 404, "{}", r.brief());
    assert!(r.text.contains("no operation $nothing"), "{}", r.brief());
    // Read-only access may not merge.
    let reader = common::authorised_client(&env.system_token("system/Patient.rs"));
    let r = reader
        .post(s.url("Patient/$merge"))
        .header("Content-Type", "application/fhir+json")
        .body(
            parameters(json!([
                reference("source-patient", "other"),
                reference("target-patient", "keep")
            ]))
            .to_string(),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(s.get("Patient/other").body["active"], true);
}

#[test]
fn merge_operation_sqlite() {
    run(Env::sqlite());
}

#[test]
fn merge_operation_postgres() {
    let Some(env) = Env::postgres() else { return };
    run(env);
}

// ---------------------------------------------------------------------------
// An HL7 v2 A40 is the PMI's merge: undone from the UI, both records are
// exactly as they were.

/// The resource without `meta` (versions and times change; content must not).
fn content(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("meta");
    }
    v
}

fn one_by(s: &Server, query: &str) -> Value {
    let found = s.search_all(&common::escape_uri(query));
    assert_eq!(found.len(), 1, "{query}: {found:?}");
    found[0].clone()
}

fn a40_then_unmerge(env: Env) {
    use crate::hl7::{Client, field};
    use crate::ui::{browser, csrf, sign_in};

    let mllp = common::free_port();
    let s = env.start_with(&["--demo", "--mllp-listen", &format!("127.0.0.1:{mllp}")]);
    let mut c = Client::connect(mllp).unwrap();
    let msh = |ty: &str, ctrl: &str| {
        format!("MSH|^~\\&|PAS|RWG|WARDLINE|RWG|20261123090000||{ty}|{ctrl}|P|2.4\r")
    };
    // The record to retire: registered by the PAS under its hospital number,
    // with a visit; the survivor: registered with an NHS number.
    let admit = format!(
        "{}EVN|A01|20261123090000\rPID|1||RWG900001^^^RWG^MR||MERGEABLE^Ann||19610714|F\r\
         PV1|1|I|WARD7^BAY1^BED9^RWG||||||||||||||||VM1|||||||||||||||||||||||||20261123090000\r",
        msh("ADT^A01^ADT_A01", "M1")
    );
    let register = format!(
        "{}EVN|A28|20261123091000\rPID|1||9434765919^^^NHS^NH~RWG900002^^^RWG^MR||MERGEABLE^Ann||19610714|F\r",
        msh("ADT^A28^ADT_A05", "M2")
    );
    for m in [&admit, &register] {
        let ack = c.send(m).unwrap();
        assert_eq!(field(&ack, "MSA-1"), "AA", "{ack}");
    }
    let local = "https://fhir.wardline.invalid/Id/rwg-mr";
    let source = one_by(&s, &format!("Patient?identifier={local}|RWG900001"));
    let target = one_by(&s, &format!("Patient?identifier={local}|RWG900002"));
    let sid = source["id"].as_str().unwrap().to_owned();
    let tid = target["id"].as_str().unwrap().to_owned();
    let visit = one_by(&s, &format!("Encounter?patient=Patient/{sid}"));
    let eid = visit["id"].as_str().unwrap().to_owned();

    // A40: the survivor in PID, the retired record's number in MRG-1.
    let merge = format!(
        "{}EVN|A40|20261123100000\rPID|1||9434765919^^^NHS^NH~RWG900002^^^RWG^MR||MERGEABLE^Ann||19610714|F\r\
         MRG|RWG900001^^^RWG^MR\r",
        msh("ADT^A40^ADT_A39", "M3")
    );
    let ack = c.send(&merge).unwrap();
    assert_eq!(field(&ack, "MSA-1"), "AA", "{ack}");
    let merged = s.get(&format!("Patient/{sid}")).body;
    assert_eq!(merged["active"], false, "{merged}");
    assert_eq!(merged["link"][0]["type"], "replaced-by");
    let moved = s.get(&format!("Encounter/{eid}")).body;
    assert_eq!(moved["subject"]["reference"], format!("Patient/{tid}"));
    // The merge is recorded as the PMI records it (so it can be undone).
    let prov = s.search_all(&format!("Provenance?target=Patient/{sid}"));
    assert_eq!(prov.len(), 1, "{prov:?}");
    assert_eq!(prov[0]["activity"]["coding"][0]["code"], "merge");

    // The clerk undoes it from the retired record's chart.
    let root = s.root.clone();
    let clerk = browser();
    sign_in(&env, &root, &clerk, "clerk.watford");
    let token = csrf(&root, &clerk);
    let r = clerk
        .post(format!("{root}/ui/patients/{sid}/unmerge"))
        .form(&[("csrf", token)])
        .send()
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().unwrap());

    // Both records, and the visit, exactly as before the A40.
    assert_eq!(
        content(s.get(&format!("Patient/{sid}")).body),
        content(source)
    );
    assert_eq!(
        content(s.get(&format!("Patient/{tid}")).body),
        content(target)
    );
    assert_eq!(
        content(s.get(&format!("Encounter/{eid}")).body),
        content(visit)
    );
}

#[test]
fn hl7_a40_then_ui_unmerge_sqlite() {
    a40_then_unmerge(Env::sqlite());
}

#[test]
fn hl7_a40_then_ui_unmerge_postgres() {
    let Some(env) = Env::postgres() else { return };
    a40_then_unmerge(env);
}
