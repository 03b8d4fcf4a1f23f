//! Issue 18, access after discharge, with the real access policy of
//! `wardline-auth` and its injected clock, over a real store (SQLite
//! always, PostgreSQL too when `WARDLINE_TEST_PG_URL` is set):
//!
//! * after the ADT discharge the treating doctor (the attending consultant
//!   named on the encounter) and the ward's staff still read the chart and
//!   write, sign and read the discharge summary (H-200);
//! * once the recent-encounter window has passed (the clock moved) they
//!   are refused (403), and a window of 0 days ends access at the
//!   discharge (H-201);
//! * a clinician unrelated to the patient is refused throughout;
//! * every view of a note and of the summary (HTML view, PDF, `$document`)
//!   is an audit event naming the viewer and the document (H-204).

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;
use wardline_auth::clock::ManualClock;
use wardline_auth::directory::{Directory, Position};
use wardline_auth::policy::{Policy, Principal};
use wardline_auth::rbac::Role;
use wardline_core::{
    Agent, Body, FhirRequest, FhirService, Method, RequestHeaders, ServiceConfig, Trusted,
};
use wardline_workflow::adt;
use wardline_workflow::documents::discharge::{self, DischargeError};
use wardline_workflow::documents::notes::{self, Draft, NoteKind};

const DAY_MS: i64 = 86_400_000;
const ADMITTED: &str = "2026-10-01T09:00:00Z";
const DISCHARGED: &str = "2026-10-05T11:00:00Z";
const AFTER: OffsetDateTime = datetime!(2026-10-05 15:00 UTC);

fn backends(test: &str) -> Vec<(&'static str, Arc<FhirService>, Option<tempfile::TempDir>)> {
    support::stores(&format!("access_{test}"))
        .into_iter()
        .map(|(n, store, d)| {
            let svc = Arc::new(wardline_workflow::with_operations(
                wardline_workflow::with_rules(FhirService::new(store, ServiceConfig::default())),
            ));
            seed(&svc);
            (n, svc, d)
        })
        .collect()
}

fn op() -> Trusted {
    Trusted::operator("access-test")
}

fn ms(s: &str) -> i64 {
    wardline_fhir::datetime::parse_range(s).unwrap().0
}

fn place(id: &str, name: &str, kind: &str, parent: Option<&str>) -> Value {
    let mut l = json!({"resourceType": "Location", "id": id, "status": "active", "name": name,
        "physicalType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": kind}]}});
    if let Some(p) = parent {
        l["partOf"] = json!({"reference": format!("Location/{p}")});
    }
    l
}

/// Two wards; the patient on a bed of ward 1 under Dr Mehta (`dr1`),
/// their GP practice; a second doctor (`dr2`) on ward 2.
fn seed(svc: &FhirService) {
    let rs = vec![
        json!({"resourceType": "Organization", "id": "trust", "name": "Wardline NHS Trust", "active": true}),
        json!({"resourceType": "Organization", "id": "gp1", "name": "Bridge Street Surgery", "active": true}),
        place("site", "Watford General", "si", None),
        place("w1", "Ward 1", "wa", Some("site")),
        place("b1", "Bed 1", "bd", Some("w1")),
        place("w2", "Ward 2", "wa", Some("site")),
        json!({"resourceType": "Patient", "id": "p1", "active": true, "birthDate": "1950-05-01",
            "name": [{"family": "Smith", "given": ["Alice"]}],
            "generalPractitioner": [{"reference": "Organization/gp1"}]}),
        json!({"resourceType": "Practitioner", "id": "dr1", "name": [{"family": "Mehta", "given": ["Sanjay"], "prefix": ["Dr"]}]}),
        json!({"resourceType": "Practitioner", "id": "dr2", "name": [{"family": "Green", "given": ["Jo"], "prefix": ["Dr"]}]}),
        json!({"resourceType": "Encounter", "id": "e1", "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": "Patient/p1"}, "period": {"start": ADMITTED},
            "participant": [{"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "ATND"}]}],
                "individual": {"reference": "Practitioner/dr1"}}],
            "location": [{"location": {"reference": "Location/b1"}, "status": "active", "period": {"start": ADMITTED}}]}),
        json!({"resourceType": "Condition", "id": "c1",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "code": {"text": "Community acquired pneumonia"},
            "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e1"}}),
    ];
    svc.transact(&op(), |tx| {
        for r in rs {
            tx.save(r)?;
        }
        Ok(())
    })
    .unwrap();
}

/// The real policy of a doctor (`who`) whose position (at the trust)
/// covers `locations`.
fn doctor(dir: &Arc<Directory>, who: &str, locations: &[&str]) -> Policy {
    user(dir, who, Role::Doctor, "trust", locations)
}

fn user(dir: &Arc<Directory>, who: &str, role: Role, org: &str, locations: &[&str]) -> Policy {
    // The position as the directory keeps it (the domain reads its role).
    dir.service()
        .transact(&op(), |tx| {
            tx.save(json!({"resourceType": "PractitionerRole", "id": format!("pos-{who}"), "active": true,
                "practitioner": {"reference": format!("Practitioner/{who}")},
                "organization": {"reference": format!("Organization/{org}")},
                "code": [{"coding": [{"system": wardline_auth::directory::ROLE_SYSTEM, "code": role.code()}]}]}))?;
            Ok(())
        })
        .unwrap();
    Policy::new(
        Principal {
            agent: Agent {
                name: format!("{who}-user"),
                who: Some(format!("Practitioner/{who}")),
                position: Some(format!("PractitionerRole/pos-{who}")),
                ..Agent::default()
            },
            scopes: wardline_auth::scopes::ScopeSet::parse("user/*.cruds").unwrap(),
            position: Some(Position {
                id: format!("pos-{who}"),
                practitioner: who.into(),
                role,
                organization: org.into(),
                locations: locations.iter().map(|l| (*l).to_owned()).collect(),
                active: true,
            }),
            patient: None,
            break_glass: HashMap::new(),
            system: false,
        },
        dir.clone(),
    )
}

fn can_read_chart(svc: &FhirService, p: &Policy) -> bool {
    match svc.read_as(p, "Condition", "c1") {
        Ok(Some(_)) => true,
        Ok(None) => panic!("Condition/c1 is missing"),
        Err(e) => {
            assert_eq!(e.status, 403, "{e:?}");
            false
        }
    }
}

fn audit_events(svc: &FhirService, subtype: &str) -> Vec<Value> {
    let r = svc.handle(
        FhirRequest {
            method: Method::Get,
            path: vec!["AuditEvent".into()],
            query: vec![
                ("subtype".into(), subtype.into()),
                ("_count".into(), "200".into()),
            ],
            headers: RequestHeaders::default(),
            body: None,
        },
        &op(),
    );
    let v = match r.body {
        Body::Json(v) => v,
        Body::Raw(s) => serde_json::from_str(&s).unwrap(),
        _ => panic!("no body"),
    };
    v["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["resource"].clone())
        .collect()
}

/// The events of `subtype` by `who` naming `entity`.
fn audited(svc: &FhirService, subtype: &str, who: &str, entity: &str) -> usize {
    audit_events(svc, subtype)
        .iter()
        .filter(|e| {
            e["agent"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| a["who"]["reference"] == who)
                && e["entity"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|x| x["what"]["reference"] == entity)
        })
        .count()
}

/// What the clinician writes in the summary.
fn written() -> Vec<(String, String)> {
    [
        (
            "clinical-summary",
            "Treated for pneumonia with oral antibiotics; recovered.",
        ),
        ("information-given", "Told to return if breathless."),
        ("plan", "GP: please repeat the chest X-ray in six weeks."),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

fn directory(svc: &Arc<FhirService>, clock: &ManualClock, days: Option<u32>) -> Arc<Directory> {
    let d = Directory::open(svc.clone(), "trust")
        .unwrap()
        .with_clock(clock.clock());
    Arc::new(match days {
        Some(n) => d.with_recent_encounter_days(n),
        None => d,
    })
}

#[test]
fn the_treating_team_writes_and_signs_the_summary_after_discharge_then_access_ends() {
    for (name, svc, _guard) in backends("window") {
        let svc = &svc;
        let clock = ManualClock::at(ms(DISCHARGED) - 3_600_000);
        let dir = directory(svc, &clock, None);
        assert_eq!(
            dir.recent_encounter_days(),
            wardline_auth::directory::DEFAULT_RECENT_ENCOUNTER_DAYS
        );
        // On the ward: the ward's doctor and the attending consultant (named,
        // position elsewhere) may read; the doctor of ward 2 may not.
        assert!(can_read_chart(svc, &doctor(&dir, "dr1", &["w2"])), "{name}");
        assert!(can_read_chart(svc, &doctor(&dir, "dr3", &["w1"])), "{name}");
        assert!(
            !can_read_chart(svc, &doctor(&dir, "dr2", &["w2"])),
            "{name}"
        );

        adt::discharge_at(svc, &op(), "e1", "19", "1", DISCHARGED).unwrap();
        clock.set(ms(DISCHARGED) + 4 * 3_600_000);

        // After the discharge: the attending consultant and the ward still
        // read the chart; the unrelated doctor still cannot.
        let dr1 = doctor(&dir, "dr1", &["w2"]);
        assert!(
            can_read_chart(svc, &dr1),
            "{name}: consultant after discharge"
        );
        assert!(
            can_read_chart(svc, &doctor(&dir, "dr3", &["w1"])),
            "{name}: the ward after discharge"
        );
        let dr2 = doctor(&dir, "dr2", &["w2"]);
        assert!(!can_read_chart(svc, &dr2), "{name}: unrelated doctor");

        // The consultant writes, signs and reads the summary after discharge.
        let id = discharge::start(svc, &dr1, "e1", AFTER).unwrap();
        discharge::save_draft(svc, &dr1, &id, &written(), AFTER).unwrap();
        let signed = discharge::sign(svc, &dr1, &id, AFTER).unwrap();
        assert!(!signed.document_reference.is_empty(), "{name}");
        let s = discharge::view(svc, &dr1, &id, "discharge-summary-view").unwrap();
        assert!(s.signed.is_some(), "{name}");
        // The unrelated doctor can neither read nor start one.
        assert!(
            matches!(
                discharge::view(svc, &dr2, &id, "discharge-summary-view"),
                Err(DischargeError::Forbidden(_))
            ),
            "{name}"
        );

        // Fourteen days on, to the minute before the end: still in.
        clock.set(ms(DISCHARGED) + 14 * DAY_MS - 60_000);
        assert!(can_read_chart(svc, &doctor(&dir, "dr1", &["w2"])), "{name}");
        // The window has passed: 403, for the consultant and the ward.
        clock.set(ms(DISCHARGED) + 14 * DAY_MS + 60_000);
        let dr1 = doctor(&dir, "dr1", &["w2"]);
        assert!(!can_read_chart(svc, &dr1), "{name}: after the window");
        assert!(
            !can_read_chart(svc, &doctor(&dir, "dr3", &["w1"])),
            "{name}: the ward after the window"
        );
        match discharge::view(svc, &dr1, &id, "discharge-summary-view") {
            Err(DischargeError::Forbidden(m)) => {
                assert!(m.contains("relationship"), "{name}: {m}")
            }
            other => panic!("{name}: {other:?}"),
        }

        // A window of 0 days (`--recent-encounter-days 0`): access ends
        // with the encounter.
        clock.set(ms(DISCHARGED) + 60_000);
        let none = directory(svc, &clock, Some(0));
        assert!(
            !can_read_chart(svc, &doctor(&none, "dr1", &["w2"])),
            "{name}: 0 days"
        );
    }
}

#[test]
fn a_consent_period_is_read_by_the_policys_clock() {
    for (name, svc, _guard) in backends("consent_clock") {
        let svc = &svc;
        // The patient dissented from sharing with their practice until
        // 1 November; the practice's GP is related (registered practice).
        let mut c = wardline_core::consent::resource(
            "p1",
            &wardline_core::consent::Decision::NoSharing(vec!["gp1".into()]),
            ms("2026-10-01T00:00:00Z"),
        );
        c["provision"]["period"] =
            json!({"start": "2026-10-01T00:00:00Z", "end": "2026-11-01T00:00:00Z"});
        svc.transact(&op(), |tx| tx.save(c.clone()).map(|_| ()))
            .unwrap();
        let clock = ManualClock::at(ms("2026-10-20T12:00:00Z"));
        let dir = directory(svc, &clock, None);
        let gp = || user(&dir, "gpdoc", Role::Gp, "gp1", &[]);
        assert!(!can_read_chart(svc, &gp()), "{name}: within the dissent");
        clock.set(ms("2026-11-02T12:00:00Z"));
        assert!(can_read_chart(svc, &gp()), "{name}: the dissent has lapsed");
    }
}

#[test]
fn every_view_of_a_note_or_summary_is_audited_with_the_viewer() {
    for (name, svc, _guard) in backends("views") {
        let svc = &svc;
        let clock = ManualClock::at(ms(DISCHARGED) - 3_600_000);
        let dir = directory(svc, &clock, None);
        let dr1 = doctor(&dir, "dr1", &["w1"]);
        let note = notes::write(
            svc,
            &dr1,
            &Draft {
                patient: "p1".into(),
                encounter: Some("e1".into()),
                kind: NoteKind::WardRound,
                texts: vec![("plan".into(), "Home tomorrow.".into())],
            },
            AFTER,
        )
        .unwrap();
        let note_ref = format!("Composition/{note}");
        assert_eq!(
            audited(svc, "notes-view", "Practitioner/dr1", &note_ref),
            0,
            "{name}"
        );
        notes::view(svc, &dr1, &note).unwrap();
        assert_eq!(
            audited(svc, "notes-view", "Practitioner/dr1", &note_ref),
            1,
            "{name}: viewing a note"
        );

        adt::discharge_at(svc, &op(), "e1", "19", "1", DISCHARGED).unwrap();
        clock.set(ms(DISCHARGED) + 3_600_000);
        let id = discharge::start(svc, &dr1, "e1", AFTER).unwrap();
        discharge::save_draft(svc, &dr1, &id, &written(), AFTER).unwrap();
        discharge::sign(svc, &dr1, &id, AFTER).unwrap();
        let summary = format!("Composition/{id}");
        let view = |what| audited(svc, what, "Practitioner/dr1", &summary);
        let before = view("discharge-summary-view");
        discharge::view(svc, &dr1, &id, "discharge-summary-view").unwrap();
        assert_eq!(
            view("discharge-summary-view"),
            before + 1,
            "{name}: HTML view"
        );
        let pdf_before = view("discharge-summary-pdf");
        let pdf = discharge::pdf_of(svc, &dr1, &id).unwrap();
        assert!(pdf.starts_with(b"%PDF"), "{name}");
        assert!(
            view("discharge-summary-pdf") > pdf_before,
            "{name}: the PDF"
        );
        let doc = discharge::document(svc, &dr1, &id).unwrap();
        assert_eq!(doc["type"], "document");
        assert_eq!(
            view("discharge-summary-view"),
            before + 2,
            "{name}: $document"
        );
    }
}
