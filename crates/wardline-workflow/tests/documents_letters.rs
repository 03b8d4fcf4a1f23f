//! Clinic letters over a real store: pre-fill from an outpatient
//! attendance, the lifecycle (draft, sign, amend with the original kept),
//! the GP's and the patient's copies queued on signing as the patient's
//! preference says (email, post on the print worklist, none), and plain
//! REST writes refused. SQLite always, PostgreSQL too when
//! `WARDLINE_TEST_PG_URL` is set.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;
use wardline_auth::rbac::Role;
use wardline_core::{FhirService, Method};
use wardline_workflow::documents::letters::{
    self, CLINIC_LETTER, LETTER, PRINT_CODE, mark_printed, print_worklist,
};
use wardline_workflow::transfers::routing::{
    Channel, CopyPreference, PatientCopy, patient_copy_in, recipient_routes_in, set_preference,
};

mod support;

use support::{Backend, as_role, doctor, get, op, put, rest};

fn backends(test: &str) -> Vec<Backend> {
    support::backends(
        &format!("letters_{test}"),
        |svc| wardline_workflow::with_operations(wardline_workflow::with_rules(svc)),
        seed,
    )
}

const NOW: OffsetDateTime = datetime!(2026-03-02 12:00 UTC);
const LATER: OffsetDateTime = datetime!(2026-03-03 09:30 UTC);

fn seed(svc: &FhirService) {
    let amb = |id: &str, patient: &str, status: &str| {
        json!({"resourceType": "Encounter", "id": id, "status": status,
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "serviceType": {"text": "Respiratory clinic"},
            "subject": {"reference": format!("Patient/{patient}")},
            "participant": [{"individual": {"reference": "Practitioner/dr1"}}],
            "period": {"start": "2026-03-02T10:00:00Z", "end": "2026-03-02T10:30:00Z"}})
    };
    let rs = [
        json!({"resourceType": "Organization", "id": "gp1", "active": true, "name": "Bridge Street Surgery",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "F81001"}]}),
        json!({"resourceType": "Patient", "id": "p1", "active": true, "gender": "female", "birthDate": "1950-05-01",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}],
            "name": [{"use": "official", "family": "Smith", "given": ["Alice"]}],
            "telecom": [{"system": "email", "value": "alice.smith@example.org", "use": "home"}],
            "address": [{"line": ["3 Mill Lane"], "city": "Watford", "postalCode": "WD1 2BB"}],
            "generalPractitioner": [{"reference": "Organization/gp1"}]}),
        json!({"resourceType": "Patient", "id": "p2", "active": true, "gender": "male", "birthDate": "1940-01-01",
            "name": [{"use": "official", "family": "Brown", "given": ["Carl"]}],
            "address": [{"line": ["9 High Street"], "city": "Watford", "postalCode": "WD1 3CC"}],
            "generalPractitioner": [{"reference": "Organization/gp1"}]}),
        json!({"resourceType": "Practitioner", "id": "dr1", "name": [{"family": "Mehta", "given": ["Sanjay"], "prefix": ["Dr"]}]}),
        json!({"resourceType": "PractitionerRole", "id": "pr1", "active": true, "practitioner": {"reference": "Practitioner/dr1"},
            "code": [{"text": "Consultant, respiratory medicine",
                "coding": [{"system": "https://fhir.wardline.invalid/CodeSystem/role", "code": "consultant"}]}]}),
        amb("op1", "p1", "finished"),
        amb("op2", "p2", "finished"),
        amb("op3", "p1", "planned"),
        json!({"resourceType": "Encounter", "id": "imp1", "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": "Patient/p1"}, "period": {"start": "2026-02-27T10:00:00Z"}}),
        json!({"resourceType": "Condition", "id": "c1",
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "13645005", "display": "Chronic obstructive lung disease"}]},
            "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/op1"}}),
        json!({"resourceType": "AllergyIntolerance", "id": "al1",
            "code": {"text": "Penicillin"}, "patient": {"reference": "Patient/p1"},
            "reaction": [{"manifestation": [{"text": "Rash"}]}]}),
        json!({"resourceType": "MedicationRequest", "id": "m1", "status": "active", "intent": "order",
            "medicationCodeableConcept": {"text": "Tiotropium 18 microgram inhalation capsules"},
            "subject": {"reference": "Patient/p1"},
            "dosageInstruction": [{"text": "One capsule inhaled once a day"}]}),
    ];
    for r in rs {
        put(svc, r);
    }
}

fn written() -> Vec<(String, String)> {
    vec![
        (
            "clinical-summary".into(),
            "Seen in clinic: breathless on exertion, no exacerbations.".into(),
        ),
        (
            "plan".into(),
            "GP: please review inhaler technique. Clinic again in 6 months.".into(),
        ),
    ]
}

fn lines(s: &wardline_workflow::documents::discharge::Summary, key: &str) -> Vec<String> {
    s.section(key).map(|s| s.lines.clone()).unwrap_or_default()
}

fn find(svc: &FhirService, t: &str, q: &[(&str, &str)]) -> Vec<Value> {
    let o = op();
    let mut tx = svc.begin(&o).unwrap();
    let q = q
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let out = tx.find(t, &q).unwrap();
    tx.commit().unwrap();
    out
}

#[test]
fn prefill_reads_the_attendance_and_says_what_is_absent() {
    for b in backends("prefill") {
        let svc = &b.svc;
        let id = LETTER.start(svc, &doctor(), "op1", NOW).unwrap();
        let s = LETTER.view(svc, &doctor(), &id).unwrap();
        assert_eq!(s.status, "preliminary", "{}", b.name);
        assert_eq!(s.title, "Clinic letter");
        let keys: Vec<&str> = s.sections.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(
            keys,
            letters::HEADINGS.map(|h| h.key).to_vec(),
            "{}",
            b.name
        );
        assert!(
            lines(&s, "gp-practice")
                .iter()
                .any(|l| l.contains("Bridge Street Surgery"))
        );
        let att = lines(&s, "attendance-details");
        assert!(
            att.iter().any(|l| l == "Clinic: Respiratory clinic"),
            "{att:?}"
        );
        assert!(att.iter().any(|l| l.contains("Sanjay Mehta")), "{att:?}");
        assert!(lines(&s, "diagnoses")[0].contains("Chronic obstructive lung disease"));
        assert!(
            lines(&s, "medications")[0].contains("Tiotropium"),
            "{}",
            b.name
        );
        assert!(lines(&s, "allergies")[0].contains("Penicillin"));
        let proc = s.section("procedures").unwrap();
        assert_eq!(
            proc.empty.as_deref(),
            Some("No procedures are recorded for this attendance.")
        );
        // Starting again returns the same letter.
        assert_eq!(LETTER.start(svc, &doctor(), "op1", NOW).unwrap(), id);
        // A patient with nothing recorded: said plainly.
        let id2 = LETTER.start(svc, &doctor(), "op2", NOW).unwrap();
        let s2 = LETTER.view(svc, &doctor(), &id2).unwrap();
        assert!(
            s2.section("diagnoses")
                .unwrap()
                .empty
                .as_deref()
                .unwrap()
                .contains("No diagnoses")
        );
        assert!(s2.section("medications").unwrap().empty.is_some());
        // Not an outpatient attendance, or not attended: refused.
        let e = LETTER.start(svc, &doctor(), "imp1", NOW).unwrap_err();
        assert_eq!(e.status(), 409, "{e}");
        assert!(e.message().contains("class AMB"), "{e}");
        let e = LETTER.start(svc, &doctor(), "op3", NOW).unwrap_err();
        assert!(e.message().contains("planned"), "{e}");
        // A discharge summary is not started on an attendance's letter id.
        assert_eq!(
            wardline_workflow::documents::discharge::view(svc, &doctor(), &id, "x")
                .unwrap_err()
                .status(),
            404
        );
    }
}

#[test]
fn signing_queues_the_gp_copy_and_the_patients_email_copy() {
    for b in backends("sign") {
        let svc = &b.svc;
        let id = LETTER.start(svc, &doctor(), "op1", NOW).unwrap();
        // Not signed without the required headings.
        let e = LETTER.sign(svc, &doctor(), &id, NOW).unwrap_err();
        assert_eq!(e.status(), 400, "{e}");
        LETTER
            .save_draft(svc, &doctor(), &id, &written(), NOW)
            .unwrap();
        let signed = LETTER.sign(svc, &doctor(), &id, NOW).unwrap();
        let s = LETTER.view(svc, &doctor(), &id).unwrap();
        assert_eq!(s.status, "final", "{}", b.name);
        assert!(
            lines(&s, "person-completing-record")
                .iter()
                .any(|l| l.contains("Mehta"))
        );
        let dr = get(svc, "DocumentReference", &signed.document_reference);
        assert_eq!(dr["type"]["coding"][0]["code"], CLINIC_LETTER);
        let comms = find(svc, "Communication", &[("encounter", "Encounter/op1")]);
        let mut to: Vec<String> = comms
            .iter()
            .map(|c| c["recipient"][0]["reference"].as_str().unwrap().to_owned())
            .collect();
        to.sort();
        assert_eq!(to, vec!["Organization/gp1", "Patient/p1"], "{}", b.name);
        for c in &comms {
            assert_eq!(c["category"][0]["coding"][0]["code"], "clinic-letter");
            assert_eq!(c["status"], "preparation");
            assert_eq!(
                c["payload"][0]["contentReference"]["reference"],
                format!("DocumentReference/{}", signed.document_reference)
            );
        }
        // The patient's delivery is routed to their email, and only there.
        let o = op();
        let mut tx = svc.begin(&o).unwrap();
        let routes = recipient_routes_in(&mut tx, &json!({"reference": "Patient/p1"})).unwrap();
        tx.commit().unwrap();
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].channel, Channel::Email);
        assert_eq!(routes[0].address, "alice.smith@example.org");
        // No print Task for an emailed copy.
        assert!(
            find(
                svc,
                "Task",
                &[(
                    "code",
                    &format!("https://fhir.wardline.invalid/CodeSystem/task|{PRINT_CODE}")
                )]
            )
            .is_empty()
        );
        // The PDF of the signed letter is the one stored.
        let pdf = LETTER.pdf_of(svc, &doctor(), &id).unwrap();
        assert!(pdf.starts_with(b"%PDF"));
        // Signing twice: refused.
        assert_eq!(
            LETTER.sign(svc, &doctor(), &id, NOW).unwrap_err().status(),
            409
        );
    }
}

#[test]
fn the_patients_preference_is_honoured_post_prints_and_none_sends_nothing() {
    for b in backends("pref") {
        let svc = &b.svc;
        // Declined email: a print-and-post Task, no email delivery.
        set_preference(svc, &doctor(), "p1", CopyPreference::Post, NOW).unwrap();
        let o = op();
        let mut tx = svc.begin(&o).unwrap();
        assert_eq!(patient_copy_in(&mut tx, "p1").unwrap(), PatientCopy::Post);
        let routes = recipient_routes_in(&mut tx, &json!({"reference": "Patient/p1"})).unwrap();
        tx.commit().unwrap();
        assert!(routes.is_empty(), "email declined: no email route");
        let id = LETTER.start(svc, &doctor(), "op1", NOW).unwrap();
        LETTER
            .save_draft(svc, &doctor(), &id, &written(), NOW)
            .unwrap();
        LETTER.sign(svc, &doctor(), &id, NOW).unwrap();
        let comms = find(svc, "Communication", &[("encounter", "Encounter/op1")]);
        assert_eq!(comms.len(), 1, "{}: the GP's only", b.name);
        assert_eq!(comms[0]["recipient"][0]["reference"], "Organization/gp1");
        let list = print_worklist(svc, &doctor()).unwrap();
        assert_eq!(list.len(), 1, "{}", b.name);
        assert_eq!(list[0].patient, "Alice Smith");
        assert!(
            list[0].instruction.contains("3 Mill Lane"),
            "{}",
            list[0].instruction
        );
        assert_eq!(list[0].letter.as_deref(), Some(id.as_str()));
        mark_printed(svc, &doctor(), &list[0].task, LATER).unwrap();
        assert!(print_worklist(svc, &doctor()).unwrap().is_empty());
        let e = mark_printed(svc, &doctor(), &list[0].task, LATER).unwrap_err();
        assert_eq!(e.status(), 409);
        // No email address at all: post.
        let id2 = LETTER.start(svc, &doctor(), "op2", NOW).unwrap();
        LETTER
            .save_draft(svc, &doctor(), &id2, &written(), NOW)
            .unwrap();
        LETTER.sign(svc, &doctor(), &id2, NOW).unwrap();
        let list = print_worklist(svc, &doctor()).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].patient_id, "p2");
        // No copy: nothing for the patient.
        set_preference(svc, &doctor(), "p2", CopyPreference::None, NOW).unwrap();
        LETTER
            .amend(svc, &doctor(), &id2, &written(), LATER)
            .unwrap();
        assert!(
            print_worklist(svc, &doctor()).unwrap().is_empty(),
            "{}: the earlier copy is cancelled and none is made",
            b.name
        );
        let comms = find(svc, "Communication", &[("encounter", "Encounter/op2")]);
        assert!(
            comms
                .iter()
                .all(|c| c["recipient"][0]["reference"] == "Organization/gp1")
        );
        // A preference is read back, and only a patient's.
        assert!(set_preference(svc, &doctor(), "nobody", CopyPreference::Post, NOW).is_err());
        // A receptionist may not record it (it is clinical record).
        assert_eq!(
            set_preference(
                svc,
                &as_role(Role::Receptionist, "rc1"),
                "p1",
                CopyPreference::Email,
                NOW
            )
            .unwrap_err()
            .status(),
            403
        );
    }
}

#[test]
fn amending_keeps_the_original_and_sends_the_amended_letter() {
    for b in backends("amend") {
        let svc = &b.svc;
        let id = LETTER.start(svc, &doctor(), "op1", NOW).unwrap();
        LETTER
            .save_draft(svc, &doctor(), &id, &written(), NOW)
            .unwrap();
        let first = LETTER.sign(svc, &doctor(), &id, NOW).unwrap();
        let signed_version = LETTER.view(svc, &doctor(), &id).unwrap().version;
        // A draft is not amended; a signed letter is not saved as a draft.
        assert_eq!(
            LETTER
                .save_draft(svc, &doctor(), &id, &written(), NOW)
                .unwrap_err()
                .status(),
            409
        );
        let mut w = written();
        w[0].1 = "Seen in clinic: breathless on exertion; spirometry FEV1 55%.".into();
        let second = LETTER.amend(svc, &doctor(), &id, &w, LATER).unwrap();
        let s = LETTER.view(svc, &doctor(), &id).unwrap();
        assert_eq!(s.status, "amended", "{}", b.name);
        assert!(
            s.section("clinical-summary")
                .unwrap()
                .written
                .as_deref()
                .unwrap()
                .contains("FEV1")
        );
        // The original version is kept, as it was signed.
        let (st, old) = rest(
            svc,
            Method::Get,
            &["Composition", &id, "_history", &signed_version],
            None,
        );
        assert_eq!(st, 200, "{}", b.name);
        assert_eq!(old["status"], "final");
        assert!(!old.to_string().contains("FEV1"));
        let old_dr = get(svc, "DocumentReference", &first.document_reference);
        assert_eq!(old_dr["status"], "superseded");
        let new_dr = get(svc, "DocumentReference", &second.document_reference);
        assert_eq!(
            new_dr["relatesTo"][0]["target"]["reference"],
            format!("DocumentReference/{}", first.document_reference)
        );
        // The amended letter goes to the GP and the patient again.
        let comms = find(svc, "Communication", &[("encounter", "Encounter/op1")]);
        assert_eq!(comms.len(), 4, "{}", b.name);
        let copies = letters::copies(svc, &doctor(), "op1").unwrap();
        assert_eq!(copies.len(), 4);
        // The first version's unsent email copy is stopped, not sent.
        let stopped: Vec<&Value> = comms.iter().filter(|c| c["status"] == "stopped").collect();
        assert_eq!(stopped.len(), 1, "{}", b.name);
        assert_eq!(stopped[0]["recipient"][0]["reference"], "Patient/p1");
        assert_eq!(
            stopped[0]["payload"][0]["contentReference"]["reference"],
            format!("DocumentReference/{}", first.document_reference)
        );
        assert!(
            stopped[0]["statusReason"]["text"]
                .as_str()
                .unwrap()
                .contains("amended")
        );
    }
}

#[test]
fn plain_rest_writes_obey_the_lifecycle() {
    for b in backends("rest") {
        let svc = &b.svc;
        let id = LETTER.start(svc, &doctor(), "op1", NOW).unwrap();
        LETTER
            .save_draft(svc, &doctor(), &id, &written(), NOW)
            .unwrap();
        let c = get(svc, "Composition", &id);
        // Made final by a plain write: refused.
        let mut fin = c.clone();
        fin["status"] = json!("final");
        let (st, oo) = rest(svc, Method::Put, &["Composition", &id], Some(fin));
        assert_eq!(st, 422, "{}: {oo}", b.name);
        assert!(oo.to_string().contains("clinic letter"), "{oo}");
        // A second letter for the same attendance: refused.
        let mut dup = c.clone();
        dup.as_object_mut().unwrap().remove("id");
        let (st, oo) = rest(svc, Method::Post, &["Composition"], Some(dup));
        assert_eq!(st, 409, "{}: {oo}", b.name);
        assert!(
            oo.to_string().contains("already has a clinic letter"),
            "{oo}"
        );
        // Signed: changed in place, or turned into another document: refused.
        LETTER.sign(svc, &doctor(), &id, NOW).unwrap();
        let signed = get(svc, "Composition", &id);
        let mut edit = signed.clone();
        edit["section"][4]["extension"] = json!([{"url": wardline_workflow::documents::discharge::WRITTEN_EXT, "valueString": "Changed after signing"}]);
        let (st, _) = rest(svc, Method::Put, &["Composition", &id], Some(edit));
        assert_eq!(st, 422, "{}: changed after signing", b.name);
        let mut back = signed.clone();
        back["status"] = json!("preliminary");
        let (st, _) = rest(svc, Method::Put, &["Composition", &id], Some(back));
        assert_eq!(st, 422);
        let mut retype = signed.clone();
        retype["type"]["coding"][0]["code"] = json!("373942005");
        let (st, _) = rest(svc, Method::Put, &["Composition", &id], Some(retype));
        assert_eq!(st, 422);
        // Composition/{id}/$document works for a letter too.
        let (st, doc) = rest(svc, Method::Get, &["Composition", &id, "$document"], None);
        assert_eq!(st, 200, "{}", b.name);
        assert_eq!(doc["type"], "document");
    }
}

#[test]
fn a_patients_copy_goes_only_to_that_patient() {
    use wardline_workflow::transfers::{Kind, Outgoing, queue};
    for b in backends("recipient") {
        let svc = &b.svc;
        let id = LETTER.start(svc, &doctor(), "op1", NOW).unwrap();
        LETTER
            .save_draft(svc, &doctor(), &id, &written(), NOW)
            .unwrap();
        let signed = LETTER.sign(svc, &doctor(), &id, NOW).unwrap();
        let out = |recipient: &str| Outgoing {
            kind: Kind::ClinicLetter,
            patient: "Patient/p1".into(),
            encounter: "Encounter/op1".into(),
            document: format!("DocumentReference/{}", signed.document_reference),
            recipient: recipient.into(),
        };
        let e = queue(svc, &op(), &out("Patient/p2"), NOW).unwrap_err();
        assert_eq!(e.status(), 400, "{}: {e}", b.name);
        assert!(e.message().starts_with("recipient:"), "{e}");
        // Queued again to the patient: the same delivery, not a second.
        let before = find(svc, "Communication", &[("encounter", "Encounter/op1")]).len();
        queue(svc, &op(), &out("Patient/p1"), NOW).unwrap();
        assert_eq!(
            find(svc, "Communication", &[("encounter", "Encounter/op1")]).len(),
            before
        );
    }
}
