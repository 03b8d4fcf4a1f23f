//! Clinical notes over a real store: SQLite always, PostgreSQL too when
//! `WARDLINE_TEST_PG_URL` is set. The lifecycle, the amendment that keeps
//! the original, the REST write rule's refusals, only the author signs, and
//! coded diagnoses and procedures.

mod support;

use serde_json::{Value, json};
use support::Backend;
use time::OffsetDateTime;
use time::macros::datetime;
use wardline_auth::rbac::{Role, required_activity};
use wardline_core::access::{Operation, forbidden};
use wardline_core::{
    Access, Agent, Body, FhirRequest, FhirService, Method, Op, RequestHeaders, ResourceView,
    Trusted,
};
use wardline_fhir::FhirError;
use wardline_store::Reader;
use wardline_workflow::documents::notes::coding::{
    self, CodedInput, ICD10_SYSTEM, OPCS4_SYSTEM, add_entry, correct_classification, entries_of,
};
use wardline_workflow::documents::notes::{
    self, Draft, NoteKind, NotesError, STATUS_REASON_EXT, amend, edit, enter_in_error, list, sign,
    view, write,
};

const NOW: OffsetDateTime = datetime!(2026-12-03 09:00 UTC);

fn backends(test: &str) -> Vec<Backend> {
    support::backends(
        &format!("notes_{test}"),
        wardline_workflow::with_rules,
        seed,
    )
}

fn op() -> Trusted {
    Trusted::operator("notes-test")
}

/// A user whose position is `role`: the real RBAC table decides each type.
struct AsRole {
    agent: Agent,
    role: Role,
}

impl Access for AsRole {
    fn agent(&self) -> &Agent {
        &self.agent
    }
    fn check_type(&self, op: Op, t: Option<&str>) -> Result<(), FhirError> {
        match t {
            Some(t) if !self.role.permits(required_activity(t, op)) => {
                Err(forbidden(format!("{} may not {op:?} {t}", self.role)))
            }
            _ => Ok(()),
        }
    }
    fn check_resource(
        &self,
        op: Op,
        r: &ResourceView<'_>,
        _: &dyn Reader,
    ) -> Result<(), FhirError> {
        self.check_type(op, Some(r.resource_type))
    }
    fn check_operation(&self, _: Operation) -> Result<(), FhirError> {
        Ok(())
    }
}

fn as_role(role: Role, who: &str) -> AsRole {
    AsRole {
        agent: Agent {
            who: Some(format!("Practitioner/{who}")),
            ..Agent::operator(role.code())
        },
        role,
    }
}

fn doctor() -> AsRole {
    as_role(Role::Doctor, "dr1")
}

fn req(
    method: Method,
    path: Vec<String>,
    query: Vec<(String, String)>,
    body: Option<Value>,
) -> FhirRequest {
    FhirRequest {
        method,
        path,
        query,
        headers: RequestHeaders::default(),
        body: body.map(|b| b.to_string().into_bytes()),
    }
}

fn json_of(b: Body) -> Value {
    match b {
        Body::Json(v) => v,
        Body::Raw(s) => serde_json::from_str(&s).unwrap(),
        _ => panic!("no body"),
    }
}

fn put_as(svc: &FhirService, r: &Value, who: &dyn Access) -> (u16, Value) {
    let (t, id) = (
        r["resourceType"].as_str().unwrap().to_owned(),
        r["id"].as_str().unwrap().to_owned(),
    );
    let res = svc.handle(req(Method::Put, vec![t, id], vec![], Some(r.clone())), who);
    (res.status, json_of(res.body))
}

fn put(svc: &FhirService, r: Value) {
    let (s, body) = put_as(svc, &r, &op());
    assert!(s < 300, "{body}");
}

fn get(svc: &FhirService, t: &str, id: &str) -> Value {
    let r = svc.handle(
        req(Method::Get, vec![t.into(), id.into()], vec![], None),
        &op(),
    );
    assert_eq!(r.status, 200, "{t}/{id}");
    json_of(r.body)
}

fn seed(svc: &FhirService) {
    for r in [
        json!({"resourceType": "Patient", "id": "p1", "active": true, "gender": "female", "birthDate": "1950-05-01",
            "name": [{"use": "official", "family": "Smith", "given": ["Alice"]}]}),
        json!({"resourceType": "Practitioner", "id": "dr1", "name": [{"family": "Mehta", "given": ["Sanjay"], "prefix": ["Dr"]}]}),
        json!({"resourceType": "Practitioner", "id": "dr2", "name": [{"family": "Jones", "given": ["Ann"], "prefix": ["Dr"]}]}),
        json!({"resourceType": "Encounter", "id": "e1", "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": "Patient/p1"}, "period": {"start": "2026-12-01T10:00:00Z"}}),
    ] {
        put(svc, r);
    }
}

fn texts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(c, t)| ((*c).to_owned(), (*t).to_owned()))
        .collect()
}

fn ward_round(svc: &FhirService) -> String {
    write(
        svc,
        &doctor(),
        &Draft {
            patient: "p1".into(),
            encounter: None,
            kind: NoteKind::WardRound,
            texts: texts(&[
                ("plan", "Continue IV antibiotics.\nReview tomorrow."),
                ("presenting-complaint", "Cough and fever for 3 days"),
                ("examination", "Crackles at the right base; T 38.2 <high>"),
            ]),
        },
        NOW,
    )
    .unwrap()
}

fn audited(svc: &FhirService, subtype: &str) -> usize {
    let r = svc.handle(
        req(
            Method::Get,
            vec!["AuditEvent".into()],
            vec![("subtype".into(), subtype.into())],
            None,
        ),
        &op(),
    );
    json_of(r.body)["entry"].as_array().map_or(0, Vec::len)
}

#[test]
fn a_note_is_written_signed_amended_with_the_original_kept() {
    for b in backends("lifecycle") {
        let svc = &b.svc;
        let id = ward_round(svc);
        let n = get(svc, "Composition", &id);
        assert_eq!(n["status"], "preliminary", "{}", b.name);
        assert_eq!(n["encounter"]["reference"], "Encounter/e1");
        assert_eq!(n["author"][0]["reference"], "Practitioner/dr1");
        let titles: Vec<&str> = n["section"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["title"].as_str().unwrap())
            .collect();
        assert_eq!(titles, ["Presenting complaint", "Examination", "Plan"]);
        assert!(
            n["section"][1]["text"]["div"]
                .as_str()
                .unwrap()
                .contains("38.2 &lt;high&gt;")
        );

        // The author edits the draft; another doctor may not, nor sign it.
        edit(
            svc,
            &doctor(),
            &id,
            &texts(&[("plan", "Continue IV antibiotics.")]),
            NOW,
        )
        .unwrap();
        let other = as_role(Role::Doctor, "dr2");
        assert!(matches!(
            edit(svc, &other, &id, &texts(&[("plan", "x")]), NOW),
            Err(NotesError::Forbidden(_))
        ));
        assert!(matches!(
            sign(svc, &other, &id, NOW),
            Err(NotesError::Forbidden(_))
        ));
        sign(svc, &doctor(), &id, NOW).unwrap();
        let n = get(svc, "Composition", &id);
        assert_eq!(n["status"], "final");
        assert_eq!(n["attester"][0]["mode"], "legal");
        assert_eq!(n["attester"][0]["party"]["reference"], "Practitioner/dr1");
        assert_eq!(n["attester"][0]["time"], "2026-12-03T09:00:00Z");

        // A signed note is not edited as a draft, nor signed again.
        assert!(matches!(
            edit(svc, &doctor(), &id, &texts(&[("plan", "x")]), NOW),
            Err(NotesError::Conflict(_))
        ));
        assert!(matches!(
            sign(svc, &doctor(), &id, NOW),
            Err(NotesError::Conflict(_))
        ));
        // An amendment needs a reason and a change.
        let later = NOW + time::Duration::hours(2);
        let new = texts(&[
            ("presenting-complaint", "Cough and fever for 3 days"),
            ("plan", "Switch to oral antibiotics."),
        ]);
        assert!(matches!(
            amend(svc, &doctor(), &id, &new, " ", later),
            Err(NotesError::Invalid("reason", _))
        ));
        assert!(matches!(
            amend(svc, &other, &id, &new, "wrong plan", later),
            Err(NotesError::Forbidden(_))
        ));
        amend(
            svc,
            &doctor(),
            &id,
            &new,
            "Plan changed after microbiology advice",
            later,
        )
        .unwrap();
        let n = get(svc, "Composition", &id);
        assert_eq!(n["status"], "amended");
        assert_eq!(n["attester"][0]["time"], "2026-12-03T11:00:00Z");
        assert_eq!(
            notes::status_reason(&n),
            Some("Plan changed after microbiology advice")
        );

        // Every version is there, the original unchanged, with what changed.
        let v = view(svc, &doctor(), &id).unwrap();
        let statuses: Vec<&str> = v.versions.iter().map(|v| v.status.as_str()).collect();
        assert_eq!(
            statuses,
            ["preliminary", "preliminary", "final", "amended"],
            "{}",
            b.name
        );
        let signed = &v.versions[2];
        let plan = |h: &[notes::Heading]| h.iter().find(|h| h.code == "plan").unwrap().text.clone();
        assert_eq!(plan(&signed.headings), "Continue IV antibiotics.");
        assert_eq!(plan(&v.versions[3].headings), "Switch to oral antibiotics.");
        assert_eq!(v.versions[3].changed, ["Presenting complaint", "Plan"]);
        assert_eq!(
            plan(&v.versions[0].headings),
            "Continue IV antibiotics.\nReview tomorrow."
        );
        assert!(audited(svc, "notes-view") >= 1, "{}", b.name);
        assert!(audited(svc, "notes-sign") >= 1);
        assert!(audited(svc, "notes-amend") >= 1);
        assert!(audited(svc, "notes-write") >= 2);

        // Entered in error keeps the note, with its reason.
        assert!(matches!(
            enter_in_error(svc, &doctor(), &id, "", later),
            Err(NotesError::Invalid("reason", _))
        ));
        enter_in_error(svc, &doctor(), &id, "Wrong patient", later).unwrap();
        let n = get(svc, "Composition", &id);
        assert_eq!(n["status"], "entered-in-error");
        let (listed, _) = list(svc, &doctor(), "p1").unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].status, "entered-in-error");
        assert_eq!(listed[0].author_name.as_deref(), Some("Dr Sanjay Mehta"));
        assert!(matches!(
            amend(svc, &doctor(), &id, &new, "again", later),
            Err(NotesError::Conflict(_))
        ));
    }
}

#[test]
fn roles_without_record_clinical_cannot_write_notes() {
    for b in backends("roles") {
        let svc = &b.svc;
        for role in [Role::WardClerk, Role::SocialWorker] {
            let e = write(
                svc,
                &as_role(role, "dr1"),
                &Draft {
                    patient: "p1".into(),
                    encounter: Some("e1".into()),
                    kind: NoteKind::Clinic,
                    texts: texts(&[("history", "x")]),
                },
                NOW,
            )
            .unwrap_err();
            assert!(
                matches!(e, NotesError::Forbidden(_)),
                "{} {role:?}: {e:?}",
                b.name
            );
        }
        // A user with no practitioner record writes no notes.
        let nobody = AsRole {
            agent: Agent::operator("doctor"),
            role: Role::Doctor,
        };
        assert!(matches!(
            sign(svc, &nobody, "x", NOW),
            Err(NotesError::Forbidden(_))
        ));
        // Newest first.
        let a = ward_round(svc);
        let c = write(
            svc,
            &doctor(),
            &Draft {
                patient: "p1".into(),
                encounter: Some("e1".into()),
                kind: NoteKind::Clinic,
                texts: texts(&[("history", "Seen in clinic")]),
            },
            NOW + time::Duration::days(1),
        )
        .unwrap();
        let (l, withheld) = list(svc, &doctor(), "p1").unwrap();
        let ids: Vec<&str> = l.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, [c.as_str(), a.as_str()], "{}", b.name);
        assert_eq!(withheld, 0);
        assert_eq!(l[0].kind, NoteKind::Clinic);
        let note = get(svc, "Composition", &c);
        assert!(
            note["type"]["coding"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["code"] == "371530004")
        );
        // An empty note is refused, naming the first heading.
        let e = write(
            svc,
            &doctor(),
            &Draft {
                patient: "p1".into(),
                encounter: None,
                kind: NoteKind::WardRound,
                texts: texts(&[("plan", "   ")]),
            },
            NOW,
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("presenting-complaint"));
    }
}

#[test]
fn plain_rest_writes_obey_the_lifecycle() {
    for b in backends("rest") {
        let svc = &b.svc;
        let id = ward_round(svc);
        let draft = get(svc, "Composition", &id);
        let refused = |r: &Value, who: &dyn Access, at: &str| {
            let (s, body) = put_as(svc, r, who);
            assert_eq!(s, 422, "{}: {body}", b.name);
            assert!(body.to_string().contains(at), "{}: {body}", b.name);
        };
        // No unsigned final.
        let mut f = draft.clone();
        f["status"] = json!("final");
        refused(&f, &doctor(), "Composition.attester");
        // No signing as someone else: dr2 writes dr1's attestation.
        f["attester"] = json!([{"mode": "legal", "time": "2026-12-03T09:00:00Z", "party": {"reference": "Practitioner/dr1"}}]);
        refused(&f, &as_role(Role::Doctor, "dr2"), "Composition.attester");
        // No attestation by anyone but the author.
        let mut g = f.clone();
        g["attester"][0]["party"]["reference"] = json!("Practitioner/dr2");
        refused(&g, &as_role(Role::Doctor, "dr2"), "Composition.attester");
        // The author signing by REST is the same as signing.
        let (s, body) = put_as(svc, &f, &doctor());
        assert_eq!(s, 200, "{}: {body}", b.name);
        // A signed note's content is not changed without amending…
        let signed = get(svc, "Composition", &id);
        let mut c = signed.clone();
        c["section"][0]["text"]["div"] = json!(notes::narrative("Something else"));
        refused(&c, &doctor(), "Composition.status");
        // …nor amended without a new signature and a reason…
        c["status"] = json!("amended");
        refused(&c, &doctor(), "Composition.extension");
        c["extension"] = json!([{"url": STATUS_REASON_EXT, "valueString": "typo"}]);
        // Another doctor amending it under the author's signature…
        refused(&c, &as_role(Role::Doctor, "dr2"), "Composition.attester");
        // …or a signature dated before the one it follows.
        c["attester"][0]["time"] = json!("2026-12-03T08:00:00Z");
        refused(&c, &doctor(), "Composition.attester");
        c["attester"][0]["time"] = json!("2026-12-03T10:00:00Z");
        let (s, body) = put_as(svc, &c, &doctor());
        assert_eq!(s, 200, "{}: {body}", b.name);
        // …and never goes back to a draft.
        let mut back = get(svc, "Composition", &id);
        back["status"] = json!("preliminary");
        refused(&back, &doctor(), "Composition.status");
        // A new note is never created amended.
        let mut fresh = draft.clone();
        fresh["id"] = json!("n-new");
        fresh["status"] = json!("amended");
        refused(&fresh, &doctor(), "Composition.status");
        // A Composition that is not a note is not this rule's.
        let other = json!({"resourceType": "Composition", "id": "letter", "status": "final",
            "type": {"text": "Letter"}, "date": "2026-12-03", "title": "Letter",
            "author": [{"reference": "Practitioner/dr1"}]});
        let (s, body) = put_as(svc, &other, &doctor());
        assert_eq!(s, 201, "{}: {body}", b.name);
    }
}

#[test]
fn coded_diagnoses_and_procedures_from_the_note() {
    for b in backends("coding") {
        let svc = &b.svc;
        let id = ward_round(svc);
        let pneumonia = CodedInput {
            snomed: "385093006".into(),
            category: "encounter-diagnosis".into(),
            verification: "confirmed".into(),
            classification: None,
        };
        let cond = add_entry(svc, &doctor(), &id, &pneumonia, NOW).unwrap();
        let c = get(svc, "Condition", cond.trim_start_matches("Condition/"));
        assert_eq!(c["encounter"]["reference"], "Encounter/e1", "{}", b.name);
        assert_eq!(c["subject"]["reference"], "Patient/p1");
        assert_eq!(c["code"]["coding"][0]["system"], "http://snomed.info/sct");
        assert_eq!(c["code"]["coding"][0]["code"], "385093006");
        assert_eq!(c["code"]["coding"][1]["system"], ICD10_SYSTEM);
        assert_eq!(c["code"]["coding"][1]["code"], "J18.9");
        assert_eq!(c["category"][0]["coding"][0]["code"], "encounter-diagnosis");
        assert_eq!(c["clinicalStatus"]["coding"][0]["code"], "active");
        assert_eq!(c["verificationStatus"]["coding"][0]["code"], "confirmed");
        assert_eq!(c["recorder"]["reference"], "Practitioner/dr1");
        // Referenced from the impression, a draft staying a draft.
        let n = get(svc, "Composition", &id);
        assert_eq!(n["status"], "preliminary");
        let imp = n["section"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["title"] == "Impression")
            .unwrap();
        assert_eq!(imp["entry"][0]["reference"], cond);

        // A bad classification code is refused, naming the field.
        let e = add_entry(
            svc,
            &doctor(),
            &id,
            &CodedInput {
                classification: Some("J18.".into()),
                ..pneumonia.clone()
            },
            NOW,
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("classification"), "{}", b.name);
        assert!(matches!(
            add_entry(
                svc,
                &doctor(),
                &id,
                &CodedInput {
                    snomed: "1".into(),
                    ..pneumonia.clone()
                },
                NOW
            ),
            Err(NotesError::Invalid("snomed", _))
        ));

        // On a signed note a coded entry is an amendment.
        sign(svc, &doctor(), &id, NOW).unwrap();
        let later = NOW + time::Duration::hours(1);
        let proc = add_entry(
            svc,
            &doctor(),
            &id,
            &CodedInput {
                snomed: "277762005".into(),
                category: String::new(),
                verification: String::new(),
                classification: None,
            },
            later,
        )
        .unwrap();
        let p = get(svc, "Procedure", proc.trim_start_matches("Procedure/"));
        assert_eq!(p["status"], "completed");
        assert_eq!(p["encounter"]["reference"], "Encounter/e1");
        assert_eq!(p["code"]["coding"][1]["system"], OPCS4_SYSTEM);
        assert_eq!(p["code"]["coding"][1]["code"], "A55.9");
        assert_eq!(p["performedDateTime"], "2026-12-03T10:00:00Z");
        let n = get(svc, "Composition", &id);
        assert_eq!(n["status"], "amended");
        assert_eq!(
            notes::status_reason(&n),
            Some("Coded entry added: Lumbar puncture")
        );
        // Only the author adds to their note.
        assert!(matches!(
            add_entry(svc, &as_role(Role::Doctor, "dr2"), &id, &pneumonia, later),
            Err(NotesError::Forbidden(_))
        ));

        // A coder corrects the ICD-10 code; the SNOMED CT concept stays.
        let coder = as_role(Role::Doctor, "dr2");
        assert!(matches!(
            correct_classification(svc, &coder, &cond, "pneumonia", later),
            Err(NotesError::Invalid("classification", _))
        ));
        correct_classification(svc, &coder, &cond, "j181", later).unwrap();
        let c = get(svc, "Condition", cond.trim_start_matches("Condition/"));
        assert_eq!(c["code"]["coding"][0]["code"], "385093006");
        assert_eq!(c["code"]["coding"][1]["code"], "J18.1");
        assert!(
            c["note"][0]["text"]
                .as_str()
                .unwrap()
                .contains("from J18.9 to J18.1")
        );
        let entries = entries_of(svc, &doctor(), &n).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].classification.as_deref(), Some("J18.1"));
        assert_eq!(entries[1].kind, coding::EntryKind::Procedure);
        assert!(audited(svc, "notes-code") >= 3, "{}", b.name);
        // A ward clerk corrects nothing.
        assert!(matches!(
            correct_classification(svc, &as_role(Role::WardClerk, "dr2"), &cond, "J18.0", later),
            Err(NotesError::Forbidden(_))
        ));
    }
}
