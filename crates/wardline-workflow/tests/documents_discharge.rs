//! Discharge summaries over a real store: pre-fill with and without
//! recorded data, the lifecycle (draft, sign, amend), the document Bundle,
//! the DocumentReference and PDF, and plain REST writes refused.
//! SQLite always, PostgreSQL too when `WARDLINE_TEST_PG_URL` is set.

mod support;

use std::sync::Arc;

use serde_json::{Value, json};
use support::{Backend, as_role, doctor, get, json_of, op, put, rest};
use time::OffsetDateTime;
use time::macros::datetime;
use wardline_auth::rbac::Role;
use wardline_core::{FhirRequest, FhirService, Method, RequestHeaders, ServiceConfig};
use wardline_workflow::documents::discharge::{
    self, DischargeError, HEADINGS, LINE_EXT, amend, composition_in_document, document, pdf_of,
    prefill, save_draft, sign, start, view,
};
use wardline_workflow::medicines::prescribe::{Prescriber, signature};
use wardline_workflow::medicines::screening::screen;
use wardline_workflow::medicines::{CATEGORY_SYSTEM, FORMULARY_EXT};

fn backends(test: &str) -> Vec<Backend> {
    support::backends(
        &format!("discharge_{test}"),
        |svc| wardline_workflow::with_operations(wardline_workflow::with_rules(svc)),
        seed,
    )
}

fn location(id: &str, name: &str, kind: &str, parent: Option<&str>) -> Value {
    let mut l = json!({"resourceType": "Location", "id": id, "status": "active", "name": name,
        "physicalType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": kind}]}});
    if let Some(p) = parent {
        l["partOf"] = json!({"reference": format!("Location/{p}")});
    }
    l
}

fn medication(id: &str, name: &str, vtm: &str, high_risk: bool) -> Value {
    let code = id.trim_start_matches("med-");
    json!({"resourceType": "Medication", "id": id, "status": "active",
        "code": {"coding": [{"system": "https://fhir.wardline.invalid/CodeSystem/local-medicine", "code": code, "display": name}]},
        "form": {"text": "Tablet"},
        "extension": [{"url": FORMULARY_EXT, "extension": [
            {"url": "vtm", "valueCoding": {"system": "https://fhir.wardline.invalid/CodeSystem/local-medicine", "code": format!("L{}", vtm.to_uppercase()), "display": vtm}},
            {"url": "route", "valueCoding": {"system": "http://snomed.info/sct", "code": "26643006", "display": "Oral"}},
            {"url": "route", "valueCoding": {"system": "http://snomed.info/sct", "code": "34206005", "display": "Subcutaneous"}},
            {"url": "unitOfDose", "valueString": "tablet"},
            {"url": "highRisk", "valueBoolean": high_risk}]}]})
}

const NOW: OffsetDateTime = datetime!(2026-03-02 12:00 UTC);
const LATER: OffsetDateTime = datetime!(2026-03-03 09:30 UTC);

fn seed(svc: &FhirService) {
    let rs = [
        location("site", "Watford General", "si", None),
        location("w1", "Ward 1", "wa", Some("site")),
        location("b1", "Bed 1", "bd", Some("w1")),
        json!({"resourceType": "Organization", "id": "gp1", "active": true, "name": "Bridge Street Surgery",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "F81001"}],
            "address": [{"line": ["1 Bridge Street"], "city": "Watford", "postalCode": "WD1 1AA"}]}),
        json!({"resourceType": "Patient", "id": "p1", "active": true, "gender": "female", "birthDate": "1950-05-01",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}],
            "name": [{"use": "official", "family": "Smith", "given": ["Alice"]}],
            "generalPractitioner": [{"reference": "Organization/gp1"}]}),
        json!({"resourceType": "Patient", "id": "p2", "active": true, "gender": "male", "birthDate": "1940-01-01",
            "name": [{"use": "official", "family": "Brown", "given": ["Carl"]}]}),
        json!({"resourceType": "Practitioner", "id": "dr1", "name": [{"family": "Mehta", "given": ["Sanjay"], "prefix": ["Dr"]}]}),
        json!({"resourceType": "PractitionerRole", "id": "pr1", "active": true, "practitioner": {"reference": "Practitioner/dr1"},
            "code": [{"text": "Specialty registrar, respiratory medicine",
                "coding": [{"system": "https://fhir.wardline.invalid/CodeSystem/role", "code": "doctor"}]}]}),
        json!({"resourceType": "Practitioner", "id": "ph1", "name": [{"family": "Okafor", "given": ["Ada"]}]}),
        json!({"resourceType": "Practitioner", "id": "hca1", "name": [{"family": "Reed", "given": ["Sam"]}]}),
        json!({"resourceType": "PractitionerRole", "id": "hca1-pos", "active": true, "practitioner": {"reference": "Practitioner/hca1"},
            "code": [{"coding": [{"system": "https://fhir.wardline.invalid/CodeSystem/role", "code": "healthcare-assistant"}]}]}),
        json!({"resourceType": "Encounter", "id": "e1", "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": "Patient/p1"}, "period": {"start": "2026-02-27T10:00:00Z"},
            "hospitalization": {"admitSource": {"text": "Emergency department"}},
            "location": [{"location": {"reference": "Location/b1"}, "status": "active", "period": {"start": "2026-02-27T10:00:00Z"}}]}),
        json!({"resourceType": "Encounter", "id": "e2", "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": "Patient/p2"}, "period": {"start": "2026-02-28T10:00:00Z"}}),
        medication("med-LAML5", "Amlodipine 5mg tablets", "amlodipine", false),
        medication("med-LAML10", "Amlodipine 10mg tablets", "amlodipine", false),
    ];
    for r in rs {
        put(svc, r);
    }
}

/// The admission's clinical record: a diagnosis, a procedure, a result, a
/// changed medicine and an allergy.
fn record(svc: &FhirService) {
    put(
        svc,
        json!({"resourceType": "Condition", "id": "c1",
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "385093006", "display": "Community acquired pneumonia"},
            {"system": "http://hl7.org/fhir/sid/icd-10", "code": "J18.9"}]},
        "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e1"},
        "onsetDateTime": "2026-02-26"}),
    );
    put(
        svc,
        json!({"resourceType": "Procedure", "id": "proc1", "status": "completed",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "40701008", "display": "Echocardiography"}]},
        "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e1"},
        "performedDateTime": "2026-02-28T11:00:00Z"}),
    );
    put(
        svc,
        json!({"resourceType": "Observation", "id": "o1", "status": "final",
        "code": {"text": "CRP"}, "subject": {"reference": "Patient/p1"},
        "valueQuantity": {"value": 85, "unit": "mg/L", "system": "http://unitsofmeasure.org", "code": "mg/L"},
        "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "H"}]}]}),
    );
    put(
        svc,
        json!({"resourceType": "DiagnosticReport", "id": "r1", "status": "final",
        "code": {"text": "C-reactive protein"}, "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e1"}, "effectiveDateTime": "2026-02-27T12:00:00Z",
        "issued": "2026-02-27T13:00:00Z", "result": [{"reference": "Observation/o1"}]}),
    );
    put(
        svc,
        json!({"resourceType": "AllergyIntolerance", "id": "al1",
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
        "code": {"text": "Penicillin"}, "patient": {"reference": "Patient/p1"}, "criticality": "high",
        "reaction": [{"manifestation": [{"text": "Rash"}]}]}),
    );
    let rx = |id: &str, med: &str, dose: u32, unit: &str, status: &str, category: &str| {
        json!({
        "resourceType": "MedicationRequest", "id": id, "status": status, "intent": "order",
        "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": category}]}],
        "medicationReference": {"reference": format!("Medication/{med}")},
        "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e1"},
        "requester": {"reference": "Practitioner/dr1"}, "authoredOn": "2026-02-28T08:00:00Z",
        "extension": [signature(&Prescriber { reference: "Practitioner/dr1".into(), display: "Dr Sanjay Mehta".into() }, NOW)],
        "dosageInstruction": [{"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d", "timeOfDay": ["08:00:00"]}},
            "route": {"text": "Oral"}, "doseAndRate": [{"doseQuantity": {"value": dose, "unit": unit}}]}]})
    };
    put(
        svc,
        rx("in-aml", "med-LAML5", 5, "mg", "active", "inpatient"),
    );
    let mut tto = rx("t-aml", "med-LAML10", 10, "mg", "draft", "discharge");
    tto["note"] = json!([{"text": "BP above target on 5 mg"}]);
    put(svc, tto);
    screen(svc, &as_role(Role::Pharmacist, "ph1"), "t-aml", None, NOW).unwrap();
}

/// Cancels the discharge prescription (as if never written).
fn screen_free_tto(svc: &FhirService) {
    let mut t = get(svc, "MedicationRequest", "t-aml");
    t["status"] = json!("cancelled");
    put(svc, t);
}

fn lines(s: &discharge::Summary, key: &str) -> Vec<String> {
    s.section(key).unwrap().lines.clone()
}

fn empty(s: &discharge::Summary, key: &str) -> Option<String> {
    s.section(key).unwrap().empty.clone()
}

#[test]
fn prefill_reads_the_record_and_says_what_is_absent() {
    for b in backends("prefill") {
        let svc = &b.svc;
        record(svc);
        let id = start(svc, &doctor(), "e1", NOW).unwrap();
        let s = view(svc, &doctor(), &id, "discharge-summary-view").unwrap();
        assert_eq!(s.status, "preliminary", "{}", b.name);
        let keys: Vec<&str> = s.sections.iter().map(|s| s.key.as_str()).collect();
        let want: Vec<&str> = HEADINGS.iter().map(|h| h.key).collect();
        assert_eq!(keys, want, "every heading, in the PRSB order");
        assert_eq!(s.patient.nhs_number.as_deref(), Some("9434765919"));
        assert_eq!(
            lines(&s, "gp-practice")[..2],
            [
                "Practice: Bridge Street Surgery".to_owned(),
                "ODS code: F81001".to_owned()
            ]
        );
        let adm = lines(&s, "admission-details").join("\n");
        assert!(adm.contains("Admitted: 2026-02-27 10:00 UTC"), "{adm}");
        assert!(
            adm.contains("Source of admission: Emergency department"),
            "{adm}"
        );
        assert!(adm.contains("Wards: Ward 1"), "{adm}");
        assert_eq!(
            lines(&s, "diagnoses"),
            [
                "Community acquired pneumonia (SNOMED CT 385093006; ICD-10 J18.9): active, confirmed, from 2026-02-26"
            ]
        );
        assert_eq!(s.section("diagnoses").unwrap().entries, ["Condition/c1"]);
        assert_eq!(
            lines(&s, "procedures"),
            ["Echocardiography (SNOMED CT 40701008): 2026-02-28"]
        );
        let res = lines(&s, "investigation-results").join("\n");
        assert!(
            res.contains("C-reactive protein (2026-02-27, final): CRP 85 mg/L (H)"),
            "{res}"
        );
        let meds = lines(&s, "medications");
        assert_eq!(
            meds,
            [
                "Dose changed: Amlodipine 10mg tablets, 10 mg Oral at 08:00 (was 5 mg Oral at 08:00). Reason: BP above target on 5 mg"
            ]
        );
        assert_eq!(
            lines(&s, "allergies"),
            ["Penicillin: Rash (criticality high)"]
        );
        assert_eq!(
            empty(&s, "clinical-summary").as_deref(),
            Some("Nothing written yet.")
        );
        assert!(
            empty(&s, "person-completing-record")
                .unwrap()
                .contains("Not yet signed")
        );

        // Before the TTO is written nothing reads as stopped.
        screen_free_tto(svc);
        save_draft(svc, &doctor(), &id, &[], NOW).unwrap();
        let s = view(svc, &doctor(), &id, "discharge-summary-view").unwrap();
        assert_eq!(
            lines(&s, "medications"),
            [
                "No discharge prescription (TTO) is recorded yet: nothing below is decided for discharge.",
                "On the inpatient chart: Amlodipine 5mg tablets, 5 mg Oral at 08:00"
            ],
            "{}",
            b.name
        );

        // Nothing recorded: each heading says so.
        let id2 = start(svc, &doctor(), "e2", NOW).unwrap();
        let s2 = view(svc, &doctor(), &id2, "discharge-summary-view").unwrap();
        for (k, says) in [
            ("gp-practice", "No GP practice is recorded"),
            ("diagnoses", "No diagnoses are recorded for this admission."),
            ("procedures", "No procedures are recorded"),
            (
                "investigation-results",
                "No investigation results are recorded",
            ),
            ("medications", "No medicines are recorded"),
            ("allergies", "this is not a record of no known allergies"),
        ] {
            assert!(
                empty(&s2, k).is_some_and(|e| e.contains(says)),
                "{}: {k}: {:?}",
                b.name,
                s2.section(k)
            );
        }
        assert!(lines(&s2, "person-demographics").contains(&"NHS number: Not recorded".to_owned()));
        // The stored section says it too (emptyReason).
        let c = get(svc, "Composition", &id2);
        let d = c["section"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["code"]["coding"][0]["code"] == "diagnoses")
            .unwrap();
        assert_eq!(d["emptyReason"]["coding"][0]["code"], "nilknown");
        // Starting again returns the same summary: one per admission.
        assert_eq!(start(svc, &doctor(), "e1", NOW).unwrap(), id);
        // A clerk may not read the clinical record to pre-fill one.
        assert!(matches!(
            prefill(svc, &as_role(Role::WardClerk, "clerk"), "e1", NOW),
            Err(DischargeError::Forbidden(_))
        ));
    }
}

/// Every result of the admission reaches the summary however many the
/// patient has: the pre-fill reads every page, by encounter and by date
/// within the admission — never a first page only (the benchmark found a
/// first page of 500 leaving an admission's results out). A page of 3 here
/// stands for the server's page size.
#[test]
fn every_result_of_the_admission_is_read_past_one_page() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = wardline_store_sqlite::SqliteStore::open(&dir.path().join("w.db")).unwrap();
    let config = ServiceConfig {
        max_count: 3,
        ..ServiceConfig::default()
    };
    let svc = wardline_workflow::with_operations(wardline_workflow::with_rules(FhirService::new(
        Arc::new(sqlite),
        config,
    )));
    seed(&svc);
    record(&svc);
    // Reports of another time (before the admission), then more of this
    // admission: some recorded against it, some only dated within it.
    for n in 0..7 {
        put(
            &svc,
            json!({"resourceType": "DiagnosticReport", "id": format!("old{n}"), "status": "final",
            "code": {"text": format!("Old test {n}")}, "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": format!("2025-0{}-01T09:00:00Z", n + 1)}),
        );
    }
    for n in 0..5 {
        let mut r = json!({"resourceType": "DiagnosticReport", "id": format!("adm{n}"), "status": "final",
            "code": {"text": format!("Admission test {n}")}, "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": format!("2026-02-28T0{n}:00:00Z")});
        if n % 2 == 0 {
            r["encounter"] = json!({"reference": "Encounter/e1"});
        }
        put(&svc, r);
    }
    let id = start(&svc, &doctor(), "e1", NOW).unwrap();
    let s = view(&svc, &doctor(), &id, "discharge-summary-view").unwrap();
    let res = lines(&s, "investigation-results").join("\n");
    for n in 0..5 {
        assert!(res.contains(&format!("Admission test {n}")), "{res}");
    }
    assert!(res.contains("C-reactive protein"), "{res}");
    assert!(!res.contains("Old test"), "{res}");
    assert_eq!(
        s.section("investigation-results").unwrap().entries.len(),
        6,
        "{res}"
    );
}

#[test]
fn edit_sign_and_amend_keep_every_signed_document() {
    for b in backends("sign") {
        let svc = &b.svc;
        record(svc);
        let id = start(svc, &doctor(), "e1", NOW).unwrap();
        let written = vec![
            (
                "clinical-summary".to_owned(),
                "Admitted with pneumonia; treated with antibiotics.".to_owned(),
            ),
            (
                "plan".to_owned(),
                "GP: please check blood pressure in 2 weeks.".to_owned(),
            ),
        ];
        // Not signed without a clinical summary and a plan.
        save_draft(svc, &doctor(), &id, &written[..1], NOW).unwrap();
        assert_eq!(
            sign(svc, &doctor(), &id, NOW),
            Err(DischargeError::Field(
                "plan".into(),
                "Write the plan and requested actions before signing.".into()
            ))
        );
        save_draft(svc, &doctor(), &id, &written, NOW).unwrap();
        assert!(matches!(
            save_draft(svc, &doctor(), &id, &[("plan".into(), "x".repeat(20_001))], NOW),
            Err(DischargeError::Field(k, _)) if k == "plan"
        ));
        assert!(matches!(
            save_draft(
                svc,
                &doctor(),
                &id,
                &[("diagnoses".into(), "x".into())],
                NOW
            ),
            Err(DischargeError::Invalid(_))
        ));
        // A clerk cannot sign; nor can a healthcare assistant, who may write
        // clinical entries but not sign what leaves the trust (H-151).
        assert!(matches!(
            sign(svc, &as_role(Role::WardClerk, "clerk"), &id, NOW),
            Err(DischargeError::Forbidden(_))
        ));
        let mut hca = as_role(Role::HealthcareAssistant, "hca1");
        hca.agent.position = Some("PractitionerRole/hca1-pos".into());
        match sign(svc, &hca, &id, NOW) {
            Err(DischargeError::Forbidden(m)) => {
                assert!(
                    m.contains("Only a doctor or a registered nurse signs"),
                    "{m}"
                )
            }
            other => panic!("a healthcare assistant signed: {other:?}"),
        }
        assert!(matches!(
            document(svc, &doctor(), &id),
            Err(DischargeError::Conflict(_))
        ));

        let signed = sign(svc, &doctor(), &id, NOW).unwrap();
        assert_eq!(signed.patient, "p1", "{}", b.name);
        assert_eq!(signed.encounter, "e1");
        assert_eq!(signed.gp_practice.as_deref(), Some("gp1"));
        let c = get(svc, "Composition", &id);
        assert_eq!(c["status"], "final");
        assert_eq!(c["attester"][0]["mode"], "legal");
        assert_eq!(c["attester"][0]["party"]["reference"], "Practitioner/dr1");
        let s = view(svc, &doctor(), &id, "discharge-summary-view").unwrap();
        assert_eq!(
            lines(&s, "person-completing-record"),
            [
                "Name: Dr Sanjay Mehta",
                "Role: Specialty registrar, respiratory medicine",
                "Date: 2026-03-02 12:00 UTC"
            ]
        );
        assert_eq!(
            s.section("plan").unwrap().written.as_deref(),
            Some("GP: please check blood pressure in 2 weeks.")
        );

        // The document Bundle.
        let bundle = document(svc, &doctor(), &id).unwrap();
        assert_eq!(bundle["id"], signed.bundle);
        assert_eq!(bundle["type"], "document");
        assert_eq!(bundle["timestamp"], "2026-03-02T12:00:00Z");
        assert!(
            bundle["identifier"]["value"]
                .as_str()
                .unwrap()
                .starts_with("urn:uuid:")
        );
        let entries = bundle["entry"].as_array().unwrap();
        assert_eq!(entries[0]["resource"]["resourceType"], "Composition");
        assert_eq!(entries[0]["resource"]["status"], "final");
        let held: Vec<String> = entries[1..]
            .iter()
            .map(|e| {
                format!(
                    "{}/{}",
                    e["resource"]["resourceType"].as_str().unwrap(),
                    e["resource"]["id"].as_str().unwrap()
                )
            })
            .collect();
        for r in [
            "Patient/p1",
            "Encounter/e1",
            "Practitioner/dr1",
            "Organization/gp1",
            "Condition/c1",
            "Procedure/proc1",
            "DiagnosticReport/r1",
            "MedicationRequest/t-aml",
            "AllergyIntolerance/al1",
        ] {
            assert!(
                held.contains(&r.to_owned()),
                "{}: {r} not in the document: {held:?}",
                b.name
            );
        }
        // Every reference in the Composition resolves to an entry's fullUrl.
        let fulls: Vec<&str> = entries
            .iter()
            .filter_map(|e| e["fullUrl"].as_str())
            .collect();
        assert!(
            fulls.contains(
                &entries[0]["resource"]["subject"]["reference"]
                    .as_str()
                    .unwrap()
            )
        );
        let comp = composition_in_document(&bundle);
        assert_eq!(comp["section"], c["section"]);

        // The DocumentReference: the Bundle and the PDF.
        let dr = get(svc, "DocumentReference", &signed.document_reference);
        assert_eq!(dr["type"]["coding"][0]["code"], "373942005");
        assert_eq!(dr["context"]["encounter"][0]["reference"], "Encounter/e1");
        assert_eq!(
            dr["content"][0]["attachment"]["url"],
            format!("Bundle/{}", signed.bundle)
        );
        assert_eq!(
            dr["content"][1]["attachment"]["contentType"],
            "application/pdf"
        );
        let bin = get(svc, "Binary", &signed.binary);
        assert_eq!(bin["contentType"], "application/pdf");
        let pdf = pdf_of(svc, &doctor(), &id).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
        // The PDF of a signed summary is the one stored when it was signed.
        use base64::Engine as _;
        let stored = base64::engine::general_purpose::STANDARD
            .decode(bin["data"].as_str().unwrap())
            .unwrap();
        assert_eq!(pdf, stored);

        // Signed: no more drafting, no signing twice.
        assert!(matches!(
            save_draft(svc, &doctor(), &id, &written, NOW),
            Err(DischargeError::Conflict(_))
        ));
        assert!(matches!(
            sign(svc, &doctor(), &id, NOW),
            Err(DischargeError::Conflict(_))
        ));

        // Amending: a new version, a new document; the old stays.
        let mut w2 = written.clone();
        w2[1].1 = "GP: please check blood pressure in 1 week.".into();
        // A diagnosis recorded after signing is read into the amendment.
        put(
            svc,
            json!({"resourceType": "Condition", "id": "c2",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "49436004", "display": "Atrial fibrillation"}]},
            "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e1"}}),
        );
        let again = amend(svc, &doctor(), &id, &w2, LATER).unwrap();
        let amended = view(svc, &doctor(), &id, "discharge-summary-view").unwrap();
        assert!(
            lines(&amended, "diagnoses")
                .iter()
                .any(|l| l.starts_with("Atrial fibrillation")),
            "{}",
            b.name
        );
        assert!(
            lines(&amended, "person-completing-record")
                .contains(&"Date: 2026-03-03 09:30 UTC".to_owned())
        );
        assert_ne!(again.bundle, signed.bundle);
        let c2 = get(svc, "Composition", &id);
        assert_eq!(c2["status"], "amended", "{}", b.name);
        let old = get(svc, "Bundle", &signed.bundle);
        assert_eq!(old["entry"][0]["resource"]["status"], "final");
        let new = document(svc, &doctor(), &id).unwrap();
        assert_eq!(new["id"], again.bundle);
        assert!(new.to_string().contains("1 week"));
        let old_dr = get(svc, "DocumentReference", &signed.document_reference);
        assert_eq!(old_dr["status"], "superseded");
        let new_dr = get(svc, "DocumentReference", &again.document_reference);
        assert_eq!(
            new_dr["relatesTo"][0]["target"]["reference"],
            format!("DocumentReference/{}", signed.document_reference)
        );
        assert_eq!(new_dr["docStatus"], "amended");

        // Signing and amending each queued the document for the GP
        // practice, in their own transactions (transfers::queue_in).
        let r = svc.handle(
            FhirRequest {
                method: Method::Get,
                path: vec!["Communication".into()],
                query: vec![("encounter".into(), "Encounter/e1".into())],
                headers: RequestHeaders::default(),
                body: None,
            },
            &op(),
        );
        assert_eq!(r.status, 200, "{}", b.name);
        let found = json_of(r.body);
        let queued: Vec<String> = found["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["resource"]["resourceType"] == "Communication")
            .map(|e| {
                assert_eq!(
                    e["resource"]["recipient"][0]["reference"],
                    "Organization/gp1"
                );
                assert_eq!(e["resource"]["status"], "preparation");
                e["resource"]["payload"][0]["contentReference"]["reference"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        let mut want = vec![
            format!("DocumentReference/{}", signed.document_reference),
            format!("DocumentReference/{}", again.document_reference),
        ];
        let mut got = queued.clone();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{}", b.name);

        // Each action is in the audit trail under its own subtype.
        for sub in [
            "discharge-summary-draft",
            "discharge-summary-sign",
            "discharge-summary-amend",
            "discharge-summary-view",
            "discharge-summary-pdf",
        ] {
            let r = svc.handle(
                FhirRequest {
                    method: Method::Get,
                    path: vec!["AuditEvent".into()],
                    query: vec![("subtype".into(), sub.into())],
                    headers: RequestHeaders::default(),
                    body: None,
                },
                &op(),
            );
            let found = json_of(r.body);
            assert!(
                found["entry"].as_array().is_some_and(|e| !e.is_empty()),
                "{}: no audit event {sub}: {found}",
                b.name
            );
        }
    }
}

#[test]
fn plain_rest_writes_obey_the_lifecycle() {
    for b in backends("rest") {
        let svc = &b.svc;
        let id = start(svc, &doctor(), "e1", NOW).unwrap();
        save_draft(
            svc,
            &doctor(),
            &id,
            &[
                ("clinical-summary".into(), "Pneumonia.".into()),
                ("plan".into(), "None.".into()),
            ],
            NOW,
        )
        .unwrap();
        let c = get(svc, "Composition", &id);
        // Made final by a plain update: refused.
        let mut fin = c.clone();
        fin["status"] = json!("final");
        fin["attester"] = json!([{"mode": "legal", "time": "2026-03-02T12:00:00Z", "party": {"reference": "Practitioner/dr1"}}]);
        let (st, oo) = rest(svc, Method::Put, &["Composition", &id], Some(fin));
        assert_eq!(st, 422, "{}: {oo}", b.name);
        assert!(oo.to_string().contains("only by signing"), "{oo}");
        // Created final: refused.
        let mut new = c.clone();
        new.as_object_mut().unwrap().remove("id");
        new["status"] = json!("final");
        new["encounter"] = json!({"reference": "Encounter/e2"});
        new["subject"] = json!({"reference": "Patient/p2"});
        let (st, _) = rest(svc, Method::Post, &["Composition"], Some(new.clone()));
        assert_eq!(st, 422);
        // A second summary of the same admission: refused.
        let mut dup = c.clone();
        dup.as_object_mut().unwrap().remove("id");
        let (st, oo) = rest(svc, Method::Post, &["Composition"], Some(dup));
        assert_eq!(st, 409, "{}: {oo}", b.name);
        assert!(
            oo.to_string().contains("already has a discharge summary"),
            "{oo}"
        );
        // Composition/{id}/$document: none before signing, the stored Bundle after.
        let (st, _) = rest(svc, Method::Get, &["Composition", &id, "$document"], None);
        assert_eq!(st, 409, "{}", b.name);
        // Signed: changed in place, or back to preliminary: refused.
        let signed_out = sign(svc, &doctor(), &id, NOW).unwrap();
        let (st, doc) = rest(svc, Method::Get, &["Composition", &id, "$document"], None);
        assert_eq!(st, 200, "{}: {doc}", b.name);
        assert_eq!(doc["type"], "document");
        assert_eq!(doc["id"], signed_out.bundle);
        let signed = get(svc, "Composition", &id);
        let mut edit = signed.clone();
        edit["section"][5]["extension"] = json!([{"url": LINE_EXT, "valueString": "changed"}]);
        let (st, _) = rest(svc, Method::Put, &["Composition", &id], Some(edit.clone()));
        assert_eq!(st, 422, "{}", b.name);
        edit["status"] = json!("amended");
        let (st, _) = rest(svc, Method::Put, &["Composition", &id], Some(edit));
        assert_eq!(st, 422, "{}: amended without signing", b.name);
        // Written again unchanged (as a patient merge re-points it): allowed.
        let (st, oo) = rest(
            svc,
            Method::Put,
            &["Composition", &id],
            Some(signed.clone()),
        );
        assert_eq!(st, 200, "{}: {oo}", b.name);
        let mut back = signed.clone();
        back["status"] = json!("preliminary");
        let (st, _) = rest(svc, Method::Put, &["Composition", &id], Some(back));
        assert_eq!(st, 422);
        // Entered in error is allowed; it stays as it was.
        let mut eie = signed.clone();
        eie["status"] = json!("entered-in-error");
        let (st, oo) = rest(svc, Method::Put, &["Composition", &id], Some(eie));
        assert_eq!(st, 200, "{}: {oo}", b.name);
        // A Composition that is not a discharge summary is not held to it.
        let (st, _) = rest(
            svc,
            Method::Post,
            &["Composition"],
            Some(json!({"resourceType": "Composition",
            "status": "final", "type": {"text": "Letter"}, "subject": {"reference": "Patient/p1"},
            "date": "2026-03-02", "author": [{"reference": "Practitioner/dr1"}], "title": "Letter"})),
        );
        assert_eq!(st, 201);
    }
}

#[test]
fn a_patient_merge_repoints_a_signed_summary() {
    for b in backends("merge") {
        let svc = &b.svc;
        let id = start(svc, &doctor(), "e2", NOW).unwrap();
        save_draft(
            svc,
            &doctor(),
            &id,
            &[
                ("clinical-summary".into(), "Fall at home.".into()),
                ("plan".into(), "None.".into()),
            ],
            NOW,
        )
        .unwrap();
        sign(svc, &doctor(), &id, NOW).unwrap();
        // p2 turns out to be p1's duplicate: merged into p1.
        let out = wardline_workflow::pmi::merge(svc, &op(), "p2", "p1");
        assert!(out.is_ok(), "{}: {:?}", b.name, out.err());
        let c = get(svc, "Composition", &id);
        assert_eq!(c["subject"]["reference"], "Patient/p1", "{}", b.name);
        assert_eq!(c["status"], "final");
    }
}
