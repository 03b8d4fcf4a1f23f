//! UK Core through the service: a resource that claims a UK Core profile
//! (`meta.profile`) and does not conform is refused with 422 naming the
//! constraint, by every write path (create, update, transaction, `Tx`);
//! one that claims nothing is held to base R4 only. The CapabilityStatement
//! lists the profiles.

use std::sync::Arc;

use serde_json::{Value, json};
use wardline_core::{
    Body, FhirRequest, FhirService, Method, RequestHeaders, ServiceConfig, Trusted,
};

const PATIENT: &str = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient";
const ENCOUNTER: &str = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Encounter";
const NHS: &str = "https://fhir.nhs.uk/Id/nhs-number";
const TWO_NHS_NUMBERS: &str =
    "UKCore-Patient (Patient.identifier:nhsNumber): may appear at most once, found 2";

fn service() -> (FhirService, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = wardline_store_sqlite::SqliteStore::open(&dir.path().join("t.db")).unwrap();
    (
        FhirService::new(Arc::new(store), ServiceConfig::default()),
        dir,
    )
}

fn call(s: &FhirService, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let r = s.handle(
        FhirRequest {
            method,
            path: path
                .split('/')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
            query: vec![],
            headers: RequestHeaders::default(),
            body: body.map(|b| serde_json::to_vec(&b).unwrap()),
        },
        &Trusted::operator("test"),
    );
    let v = match r.body {
        Body::Json(v) => v,
        Body::Raw(s) => serde_json::from_str(&s).unwrap(),
        _ => Value::Null,
    };
    (r.status, v)
}

/// A Patient with two NHS numbers: valid R4, not UK Core (at most one).
fn two_nhs_numbers(claim: bool) -> Value {
    let mut p = json!({"resourceType": "Patient",
        "identifier": [{"system": NHS, "value": "9434765919"}, {"system": NHS, "value": "9000000009"}],
        "name": [{"family": "Twice"}]});
    if claim {
        p["meta"] = json!({"profile": [PATIENT]});
    }
    p
}

fn diagnostics(outcome: &Value) -> Vec<String> {
    outcome["issue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{} @ {}",
                i["diagnostics"].as_str().unwrap_or_default(),
                i["expression"][0].as_str().unwrap_or_default()
            )
        })
        .collect()
}

#[test]
fn a_claimed_profile_is_enforced_on_create_and_update() {
    let (s, _d) = service();
    let (st, oo) = call(&s, Method::Post, "Patient", Some(two_nhs_numbers(true)));
    assert_eq!(st, 422, "{oo}");
    assert_eq!(oo["resourceType"], "OperationOutcome");
    assert_eq!(
        diagnostics(&oo),
        vec![format!("{TWO_NHS_NUMBERS} @ Patient.identifier")]
    );

    // Without the claim it is valid R4 and stored as sent.
    let (st, created) = call(&s, Method::Post, "Patient", Some(two_nhs_numbers(false)));
    assert_eq!(st, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();

    // Claiming the profile in an update is held to it too.
    let mut update = two_nhs_numbers(true);
    update["id"] = json!(id);
    let (st, oo) = call(&s, Method::Put, &format!("Patient/{id}"), Some(update));
    assert_eq!(st, 422, "{oo}");
    assert!(diagnostics(&oo)[0].starts_with(TWO_NHS_NUMBERS));

    // A conforming claim is stored with its claim.
    let mut ok = two_nhs_numbers(true);
    ok["id"] = json!(id);
    ok["identifier"].as_array_mut().unwrap().pop();
    let (st, v) = call(&s, Method::Put, &format!("Patient/{id}"), Some(ok));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["meta"]["profile"][0], PATIENT);
}

#[test]
fn a_transaction_with_a_non_conforming_entry_writes_nothing() {
    let (s, _d) = service();
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:11111111-1111-1111-1111-111111111111",
         "resource": {"resourceType": "Patient", "meta": {"profile": [PATIENT]},
             "identifier": [{"system": NHS, "value": "9434765919"}]},
         "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": "urn:uuid:22222222-2222-2222-2222-222222222222",
         "resource": {"resourceType": "Encounter", "meta": {"profile": [ENCOUNTER]},
             "status": "finished", "class": {"code": "IMP"},
             "subject": {"reference": "urn:uuid:11111111-1111-1111-1111-111111111111"},
             "hospitalization": {"extension": [{
                 "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-DischargeMethod",
                 "valueCodeableConcept": {"coding": [{
                     "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-DischargeMethodEngland",
                     "code": "1"}]}}]}},
         "request": {"method": "POST", "url": "Encounter"}}
    ]});
    let (st, oo) = call(&s, Method::Post, "", Some(bundle));
    assert_eq!(st, 422, "{oo}");
    let d = diagnostics(&oo);
    assert!(
        d[0].contains(
            "Extension-UKCore-DischargeMethod may be used on Encounter, not on Encounter.hospitalization"
        ),
        "{d:?}"
    );
    assert!(
        d[0].contains("Bundle.entry[1]"),
        "the entry is named: {d:?}"
    );
    let (_, b) = call(&s, Method::Get, "Patient", None);
    assert!(
        b["entry"].as_array().is_none_or(Vec::is_empty),
        "nothing of the transaction is written: {b}"
    );
}

#[test]
fn the_workflow_transaction_refuses_a_non_conforming_save() {
    let (s, _d) = service();
    let access = Trusted::operator("test");
    let mut tx = s.begin(&access).unwrap();
    let err = tx.save(two_nhs_numbers(true)).unwrap_err();
    assert_eq!(err.status, 422);
    assert!(err.issues[0].diagnostics.starts_with(TWO_NHS_NUMBERS));
}

#[test]
fn the_capability_statement_lists_the_profiles() {
    let (s, _d) = service();
    let (st, cs) = call(&s, Method::Get, "metadata", None);
    assert_eq!(st, 200);
    let resource = |t: &str| {
        cs["rest"][0]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == t)
            .unwrap()
            .clone()
    };
    assert_eq!(resource("Patient")["supportedProfile"], json!([PATIENT]));
    assert_eq!(
        resource("Encounter")["supportedProfile"],
        json!([ENCOUNTER])
    );
    assert!(resource("Observation").get("supportedProfile").is_none());
    // Every resource is held to its base definition, whatever it claims.
    for t in ["Patient", "Encounter", "Observation"] {
        assert_eq!(
            resource(t)["profile"],
            json!(format!("http://hl7.org/fhir/StructureDefinition/{t}"))
        );
    }
}
