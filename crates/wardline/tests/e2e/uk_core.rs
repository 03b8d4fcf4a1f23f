//! UK Core through the real server: the CapabilityStatement lists the
//! profiles and instantiates Bulk Data; a Patient claiming UK Core with two
//! NHS numbers is a 422 OperationOutcome naming the constraint and is not
//! stored; a conforming one is stored with its claim.

use serde_json::json;

use crate::common::Env;

const PATIENT: &str = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient";
const NHS: &str = "https://fhir.nhs.uk/Id/nhs-number";

fn run(env: Env) {
    let s = env.start();
    let cs = s.get("metadata").body;
    let patient = cs["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Patient")
        .unwrap()
        .clone();
    assert_eq!(patient["supportedProfile"], json!([PATIENT]));
    assert_eq!(
        cs["instantiates"],
        json!(["http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"])
    );

    let mut p = json!({"resourceType": "Patient", "id": "uk1",
        "meta": {"profile": [PATIENT]},
        "identifier": [{"system": NHS, "value": "9434765919"}, {"system": NHS, "value": "9434765870"}],
        "name": [{"family": "Twice"}]});
    let r = s.put("Patient/uk1", &p);
    assert_eq!(r.status, 422, "{}", r.brief());
    assert_eq!(r.body["resourceType"], "OperationOutcome");
    assert_eq!(
        r.body["issue"][0]["diagnostics"],
        "UKCore-Patient (Patient.identifier:nhsNumber): may appear at most once, found 2"
    );
    assert_eq!(r.body["issue"][0]["expression"][0], "Patient.identifier");
    assert_eq!(s.get("Patient/uk1").status, 404, "nothing stored");

    p["identifier"].as_array_mut().unwrap().pop();
    let r = s.put("Patient/uk1", &p);
    assert_eq!(r.status, 201, "{}", r.brief());
    assert_eq!(s.get("Patient/uk1").body["meta"]["profile"][0], PATIENT);
}

#[test]
fn uk_core_sqlite() {
    run(Env::sqlite());
}

#[test]
fn uk_core_postgres() {
    let Some(env) = Env::postgres() else { return };
    run(env);
}
