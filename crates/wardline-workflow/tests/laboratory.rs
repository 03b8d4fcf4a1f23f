//! The pathology laboratory's workflow over a real store: SQLite always,
//! PostgreSQL when `WARDLINE_TEST_PG_URL` is set (a fresh schema, dropped
//! afterwards), with the real access policy of `wardline-auth`:
//!
//! * a tube is received once (H-089): a second scan is refused naming when
//!   and by whom; an unknown barcode is a 404, never a guess;
//! * a tube whose request names another patient is refused (H-088);
//! * validation needs every failed delta check confirmed with a reason
//!   (H-090);
//! * the person who validated cannot authorise; a biomedical scientist
//!   cannot authorise at all, nor a doctor finalise a bench result by a
//!   plain write (H-091);
//! * no result is authorised twice (H-092); authorisation releases the
//!   report and completes the request;
//! * an analyser file enters results through the same rules, all or none;
//! * turnaround times per test; radiology's IR(ME)R justification.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;
use wardline_auth::directory::{Directory, Position};
use wardline_auth::policy::{Policy, Principal};
use wardline_auth::rbac::Role;
use wardline_core::{Agent, FhirService, ServiceConfig, Trusted};
use wardline_workflow::laboratory::{self, LabErrorKind, radiology};
use wardline_workflow::orders::catalogue::{Analyte, Catalogue, Orderable};

// ------------------------------------------------------------------ setup

struct PgSchema {
    url: String,
    schema: String,
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.url, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        }
    }
}

enum Guard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Pg(#[allow(dead_code)] PgSchema),
}

struct Lab {
    name: &'static str,
    svc: Arc<FhirService>,
    dir: Arc<Directory>,
    _guard: Guard,
}

fn backends(test: &str) -> Vec<Lab> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = wardline_store_sqlite::SqliteStore::open(&dir.path().join("lab.db")).unwrap();
    let mut out = vec![(
        "sqlite",
        Arc::new(FhirService::new(Arc::new(sqlite), ServiceConfig::default())),
        Guard::Sqlite(dir),
    )];
    if let Some((pg, url, schema)) = wardline_store_postgres::testenv::store(&format!("lab_{test}"))
    {
        out.push((
            "postgres",
            Arc::new(FhirService::new(Arc::new(pg), ServiceConfig::default())),
            Guard::Pg(PgSchema { url, schema }),
        ));
    } else {
        eprintln!("{test}: PostgreSQL skipped (WARDLINE_TEST_PG_URL is not set)");
    }
    out.into_iter()
        .map(|(name, svc, guard)| {
            seed(&svc);
            let dir = Arc::new(Directory::open(svc.clone(), "trust").unwrap());
            Lab {
                name,
                svc,
                dir,
                _guard: guard,
            }
        })
        .collect()
}

fn op() -> Trusted {
    Trusted::operator("lab-test")
}

/// The real policy of a user `who` (Practitioner id) in `role`.
fn user(lab: &Lab, who: &str, name: &str, role: Role) -> Policy {
    let principal = Principal {
        agent: Agent {
            name: name.into(),
            who: Some(format!("Practitioner/{who}")),
            position: Some(format!("PractitionerRole/pos-{who}")),
            ..Agent::default()
        },
        scopes: wardline_auth::scopes::ScopeSet::parse("user/*.cruds").unwrap(),
        position: Some(Position {
            id: format!("pos-{who}"),
            practitioner: who.into(),
            role,
            organization: "trust".into(),
            locations: vec!["watford".into()],
            active: true,
        }),
        patient: None,
        break_glass: HashMap::new(),
        system: false,
    };
    Policy::new(principal, lab.dir.clone())
}

fn bms(lab: &Lab) -> Policy {
    user(lab, "bms1", "Priya Nair", Role::BiomedicalScientist)
}
fn cs(lab: &Lab) -> Policy {
    user(lab, "cs1", "Owen Price", Role::ClinicalScientist)
}

const LOINC: &str = "http://loinc.org";
const LOCAL: &str = "https://fhir.wardline.invalid/CodeSystem/local-orderable";
const SNOMED: &str = "http://snomed.info/sct";

#[allow(clippy::too_many_arguments)]
fn analyte(
    code: &str,
    display: &str,
    unit: &str,
    range: (f64, f64),
    critical: (Option<f64>, Option<f64>),
    delta_absolute: Option<f64>,
    delta_percent: Option<f64>,
) -> Analyte {
    Analyte {
        code: json!({"coding": [{"system": LOINC, "code": code, "display": display}]}),
        display: display.into(),
        unit: Some(unit.into()),
        low: Some(range.0),
        high: Some(range.1),
        critical_low: critical.0,
        critical_high: critical.1,
        delta_absolute,
        delta_percent,
        sex_ranges: Vec::new(),
    }
}

fn orderable(id: &str, title: &str, code: Value, analytes: Vec<Analyte>) -> Orderable {
    Orderable {
        id: id.into(),
        url: format!("https://fhir.wardline.invalid/ActivityDefinition/{id}"),
        title: title.into(),
        code,
        local_code: false,
        department: "biochemistry".into(),
        imaging: false,
        modality: None,
        ionising: false,
        retest_interval_hours: None,
        analytes,
        active: true,
        specimen: None,
        preparation: None,
        timing: None,
        questionnaire: None,
        description: None,
    }
}

/// U&E (sodium, potassium with critical limits and a ±1.0 delta,
/// creatinine with a ±50% delta) and CRP.
fn catalogue() -> Catalogue {
    Catalogue {
        orderables: vec![
            orderable(
                "path-ue",
                "Urea and electrolytes",
                json!({"coding": [{"system": LOCAL, "code": "UE", "display": "Urea and electrolytes"}]}),
                vec![
                    analyte(
                        "2951-2",
                        "Sodium",
                        "mmol/L",
                        (133.0, 146.0),
                        (Some(120.0), Some(160.0)),
                        Some(8.0),
                        None,
                    ),
                    analyte(
                        "2823-3",
                        "Potassium",
                        "mmol/L",
                        (3.5, 5.3),
                        (Some(2.5), Some(6.5)),
                        Some(1.0),
                        None,
                    ),
                    analyte(
                        "14682-9",
                        "Creatinine",
                        "umol/L",
                        (59.0, 104.0),
                        (None, Some(354.0)),
                        None,
                        Some(50.0),
                    ),
                ],
            ),
            orderable(
                "path-crp",
                "C-reactive protein",
                json!({"coding": [{"system": SNOMED, "code": "55235003", "display": "C-reactive protein measurement"}]}),
                vec![analyte(
                    "1988-5",
                    "CRP",
                    "mg/L",
                    (0.0, 5.0),
                    (None, None),
                    None,
                    None,
                )],
            ),
        ],
        ..Catalogue::default()
    }
}

fn save_all(svc: &FhirService, resources: Vec<Value>) {
    svc.transact(&op(), |tx| {
        for r in resources {
            tx.save(r)?;
        }
        Ok(())
    })
    .unwrap();
}

fn patient(id: &str, family: &str, nhs: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "active": true,
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}],
        "name": [{"family": family, "given": ["Ann"]}], "birthDate": "1950-02-03"})
}

fn sr(
    id: &str,
    patient: &str,
    orderable: &str,
    code: Value,
    category: &str,
    placer: &str,
) -> Value {
    json!({"resourceType": "ServiceRequest", "id": id, "status": "active", "intent": "order",
        "priority": "urgent",
        "identifier": [{"system": "https://fhir.wardline.invalid/Id/placer-order", "value": placer}],
        "category": [{"coding": [{"system": SNOMED, "code": category}]}],
        "code": code,
        "instantiatesCanonical": [format!("https://fhir.wardline.invalid/ActivityDefinition/{orderable}")],
        "subject": {"reference": format!("Patient/{patient}")},
        "requester": {"reference": "Practitioner/doc", "display": "Dr Sanjay Mehta"},
        "authoredOn": "2026-06-01T08:00:00Z",
        "note": [{"text": "Vomiting, on diuretics"}]})
}

fn specimen(id: &str, barcode: &str, patient: &str, requests: &[&str]) -> Value {
    json!({"resourceType": "Specimen", "id": id, "status": "available",
        "identifier": [{"system": laboratory::SPECIMEN_ID, "value": barcode}],
        "type": {"coding": [{"system": SNOMED, "code": "119364003", "display": "Serum specimen"}]},
        "container": [{"type": {"text": "Serum separator (gold top)"}}],
        "subject": {"reference": format!("Patient/{patient}")},
        "collection": {"collectedDateTime": "2026-06-01T08:30:00Z"},
        "request": requests.iter().map(|r| json!({"reference": format!("ServiceRequest/{r}")})).collect::<Vec<_>>()})
}

/// Patients p1, p2; requisition R0000001 for p1: U&E + CRP in one tube
/// (R0000001-1); R0000002 for p1: U&E alone (R0000002-1); a tube labelled
/// for p2 holding p1's request (R0000003-1); p1's potassium of last month.
fn seed(svc: &FhirService) {
    let ue = catalogue().orderables[0].code.clone();
    let crp = catalogue().orderables[1].code.clone();
    save_all(
        svc,
        vec![
            patient("p1", "Hart", "9434765919"),
            patient("p2", "Lowe", "9434765870"),
            json!({"resourceType": "Practitioner", "id": "doc", "name": [{"family": "Mehta", "given": ["Sanjay"]}]}),
            sr(
                "sr-ue",
                "p1",
                "path-ue",
                ue.clone(),
                "108252007",
                "R0000001-1",
            ),
            sr("sr-crp", "p1", "path-crp", crp, "108252007", "R0000001-2"),
            sr(
                "sr-ue2",
                "p1",
                "path-ue",
                ue.clone(),
                "108252007",
                "R0000002-1",
            ),
            sr("sr-ue3", "p1", "path-ue", ue, "108252007", "R0000003-1"),
            specimen("sp1", "R0000001-1", "p1", &["sr-ue", "sr-crp"]),
            specimen("sp2", "R0000002-1", "p1", &["sr-ue2"]),
            specimen("sp3", "R0000003-1", "p2", &["sr-ue3"]),
            json!({"resourceType": "Observation", "id": "k-before", "status": "final",
                "code": {"coding": [{"system": LOINC, "code": "2823-3"}]},
                "subject": {"reference": "Patient/p1"},
                "effectiveDateTime": "2026-05-01T09:00:00Z",
                "valueQuantity": {"value": 4.1, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"}}),
        ],
    );
}

fn at(min: i64) -> OffsetDateTime {
    datetime!(2026-06-01 09:00 UTC) + time::Duration::minutes(min)
}

fn values(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

fn report_for(recv: &laboratory::Reception, title: &str) -> String {
    recv.reports
        .iter()
        .find(|r| r.title == title)
        .unwrap_or_else(|| panic!("no {title} report in {:?}", recv.reports))
        .report
        .clone()
}

// ------------------------------------------------------------------ reception

#[test]
fn a_tube_is_received_once() {
    for lab in backends("receive") {
        let n = lab.name;
        let r =
            laboratory::receive_specimen_at(&lab.svc, &bms(&lab), " R0000001-1\n", at(0)).unwrap();
        assert_eq!(r.barcode, "R0000001-1");
        assert_eq!(
            r.patient.id, "p1",
            "{n}: the patient to check against the tube"
        );
        assert_eq!(r.patient.nhs_number.as_deref(), Some("943 476 5919"));
        assert_eq!(
            r.reports.len(),
            2,
            "{n}: one report per request in the tube"
        );
        assert!(
            r.reports
                .iter()
                .all(|x| x.accession.starts_with('L') && x.accession.len() == 8)
        );
        assert_ne!(r.reports[0].accession, r.reports[1].accession);
        let spec = lab.svc.read_as(&op(), "Specimen", "sp1").unwrap().unwrap();
        assert_eq!(spec["receivedTime"], "2026-06-01T09:00:00Z", "{n}");
        let dr = lab
            .svc
            .read_as(&op(), "DiagnosticReport", &r.reports[0].report)
            .unwrap()
            .unwrap();
        assert_eq!(dr["status"], "registered");
        assert_eq!(dr["specimen"][0]["reference"], "Specimen/sp1");
        let sr = lab
            .svc
            .read_as(&op(), "ServiceRequest", "sr-ue")
            .unwrap()
            .unwrap();
        assert_eq!(sr["status"], "active", "{n}: the request stays active");

        let again =
            laboratory::receive_specimen_at(&lab.svc, &cs(&lab), "R0000001-1", at(5)).unwrap_err();
        assert_eq!(again.status(), 409, "{n}: {again}");
        assert!(
            again
                .message
                .contains("already received at 2026-06-01T09:00:00Z by Priya Nair"),
            "{n}: {again}"
        );
        let found = lab
            .svc
            .search_as(&op(), "DiagnosticReport", &[("specimen", "Specimen/sp1")])
            .unwrap();
        assert_eq!(found.resources.len(), 2, "{n}: nothing registered twice");
    }
}

#[test]
fn unknown_and_wrong_patient_tubes_are_refused() {
    for lab in backends("unknown") {
        let n = lab.name;
        let e =
            laboratory::receive_specimen_at(&lab.svc, &bms(&lab), "R9999999-1", at(0)).unwrap_err();
        assert_eq!(
            (e.kind, e.status()),
            (LabErrorKind::NotFound, 404),
            "{n}: {e}"
        );
        assert!(e.message.contains("R9999999-1"), "{e}");
        let e = laboratory::receive_specimen_at(&lab.svc, &bms(&lab), "  ", at(0)).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.message.starts_with("Barcode"), "{e}");
        // Labelled for p2, holding p1's request: never resulted.
        let e = laboratory::receive_specimen_at(&lab.svc, &op(), "R0000003-1", at(0)).unwrap_err();
        assert_eq!(e.status(), 409, "{n}: {e}");
        assert!(e.message.contains("different patients"), "{e}");
        let spec = lab.svc.read_as(&op(), "Specimen", "sp3").unwrap().unwrap();
        assert!(spec.get("receivedTime").is_none(), "{n}: nothing saved");
    }
}

// ------------------------------------------------------------------ the bench

#[test]
fn validation_needs_delta_confirmation_and_another_person_authorises() {
    for lab in backends("validate") {
        let n = lab.name;
        let cat = catalogue();
        let recv =
            laboratory::receive_specimen_at(&lab.svc, &bms(&lab), "R0000002-1", at(0)).unwrap();
        let ue = report_for(&recv, "Urea and electrolytes");

        // Not everything entered yet: partial, and not validated.
        let e = laboratory::enter_results_at(
            &lab.svc,
            &bms(&lab),
            &cat,
            &ue,
            &values(&[("2951-2", "139")]),
            at(10),
        )
        .unwrap();
        assert_eq!(e.status, "partial", "{n}");
        let v = laboratory::validate_at(&lab.svc, &bms(&lab), &cat, &ue, &BTreeMap::new(), at(11))
            .unwrap_err();
        assert_eq!(v.status(), 409, "{n}: {v}");
        let bad = laboratory::enter_results_at(
            &lab.svc,
            &bms(&lab),
            &cat,
            &ue,
            &values(&[("2823-3", "high")]),
            at(12),
        )
        .unwrap_err();
        assert_eq!(bad.status(), 400);
        assert!(
            bad.message.contains("Potassium") && bad.message.contains("not a number"),
            "{bad}"
        );
        let bad = laboratory::enter_results_at(
            &lab.svc,
            &bms(&lab),
            &cat,
            &ue,
            &values(&[("9999-9", "1")]),
            at(12),
        )
        .unwrap_err();
        assert!(bad.message.contains("9999-9"), "{bad}");

        // Potassium 6.9 (critical, and 2.8 above last month's 4.1).
        let e = laboratory::enter_results_at(
            &lab.svc,
            &bms(&lab),
            &cat,
            &ue,
            &values(&[("2823-3", "6.9"), ("http://loinc.org|14682-9", "88")]),
            at(20),
        )
        .unwrap();
        assert_eq!(e.status, "preliminary", "{n}");
        let view = laboratory::report(&lab.svc, &bms(&lab), &cat, &ue).unwrap();
        let k = view.rows.iter().find(|r| r.display == "Potassium").unwrap();
        assert_eq!(
            (k.value.as_deref(), k.flag.as_deref(), k.critical),
            (Some("6.9"), Some("HH"), true),
            "{n}"
        );
        let na = view.rows.iter().find(|r| r.display == "Sodium").unwrap();
        assert_eq!(na.flag.as_deref(), Some("N"));
        assert_eq!(view.deltas.len(), 1, "{n}: {:?}", view.deltas);

        let e = laboratory::validate_at(&lab.svc, &bms(&lab), &cat, &ue, &BTreeMap::new(), at(30))
            .unwrap_err();
        assert_eq!(
            (e.kind, e.status()),
            (LabErrorKind::DeltaUnconfirmed, 409),
            "{n}: {e}"
        );
        assert_eq!(e.deltas.len(), 1);
        assert_eq!(e.deltas[0].display, "Potassium");
        assert_eq!(e.deltas[0].previous_observation, "k-before");
        assert!(
            e.message.contains("6.9") && e.message.contains("4.1"),
            "{e}"
        );
        // A blank reason is no confirmation.
        let blank = BTreeMap::from([("2823-3".to_owned(), "  ".to_owned())]);
        assert!(laboratory::validate_at(&lab.svc, &bms(&lab), &cat, &ue, &blank, at(31)).is_err());

        let reason = BTreeMap::from([(
            "2823-3".to_owned(),
            "Repeat on the same sample agrees; not haemolysed".to_owned(),
        )]);
        let v = laboratory::validate_at(&lab.svc, &bms(&lab), &cat, &ue, &reason, at(32)).unwrap();
        assert_eq!(v.confirmed.len(), 1, "{n}");
        let view = laboratory::report(&lab.svc, &bms(&lab), &cat, &ue).unwrap();
        assert_eq!(view.validated.as_ref().unwrap().name, "Priya Nair");
        let k = view.rows.iter().find(|r| r.display == "Potassium").unwrap();
        assert_eq!(
            k.delta_confirmed.as_deref(),
            Some("Repeat on the same sample agrees; not haemolysed")
        );
        let twice =
            laboratory::validate_at(&lab.svc, &bms(&lab), &cat, &ue, &reason, at(33)).unwrap_err();
        assert!(
            twice.message.contains("already validated by Priya Nair"),
            "{twice}"
        );

        // The one who validated cannot authorise; another biomedical
        // scientist cannot either: the policy refuses it.
        let e = laboratory::authorise_at(&lab.svc, &bms(&lab), &cat, &ue, at(40)).unwrap_err();
        assert_eq!(e.status(), 409, "{n}: {e}");
        let bms2 = user(&lab, "bms2", "Tom Reed", Role::BiomedicalScientist);
        let e = laboratory::authorise_at(&lab.svc, &bms2, &cat, &ue, at(40)).unwrap_err();
        assert_eq!(e.status(), 403, "{n}: {e}");
        // A doctor cannot make the bench result final with a plain write.
        let doctor = user(&lab, "doc", "Sanjay Mehta", Role::Consultant);
        let mut dr = lab
            .svc
            .read_as(&op(), "DiagnosticReport", &ue)
            .unwrap()
            .unwrap();
        dr["status"] = json!("final");
        let e = lab
            .svc
            .transact(&doctor, |tx| tx.save(dr.clone()).map(|_| ()))
            .unwrap_err();
        assert_eq!(e.status, 403, "{n}: {e:?}");

        let a = laboratory::authorise_at(&lab.svc, &cs(&lab), &cat, &ue, at(50)).unwrap();
        assert_eq!(a.report, ue);
        let dr = lab
            .svc
            .read_as(&op(), "DiagnosticReport", &ue)
            .unwrap()
            .unwrap();
        assert_eq!(dr["status"], "final", "{n}");
        assert_eq!(dr["issued"], "2026-06-01T09:50:00Z");
        assert_eq!(dr["resultsInterpreter"][0]["reference"], "Practitioner/cs1");
        for r in dr["result"].as_array().unwrap() {
            let id = r["reference"]
                .as_str()
                .unwrap()
                .trim_start_matches("Observation/");
            let o = lab.svc.read_as(&op(), "Observation", id).unwrap().unwrap();
            assert_eq!(o["status"], "final", "{n}");
        }
        let sr = lab
            .svc
            .read_as(&op(), "ServiceRequest", "sr-ue2")
            .unwrap()
            .unwrap();
        assert_eq!(sr["status"], "completed", "{n}: the request is done");
        // Released to the requester's inbox, critical first (H-093).
        assert_eq!(a.notified.len(), 1, "{n}: {a:?}");
        let task = lab
            .svc
            .read_as(&op(), "Task", &a.notified[0])
            .unwrap()
            .unwrap();
        assert_eq!(task["owner"]["reference"], "Practitioner/doc", "{n}");
        assert_eq!(task["focus"]["reference"], format!("DiagnosticReport/{ue}"));
        assert_eq!(task["priority"], "stat", "{n}: a critical potassium");
        assert_eq!(task["status"], "requested");

        // No result is authorised twice.
        let e = laboratory::authorise_at(
            &lab.svc,
            &user(&lab, "cs2", "Ada Lamb", Role::ClinicalScientist),
            &cat,
            &ue,
            at(55),
        )
        .unwrap_err();
        assert_eq!(e.status(), 409, "{n}: {e}");
        assert!(
            e.message.contains("authorised once") && e.message.contains("Owen Price"),
            "{e}"
        );
        // Nor is it changed on the bench afterwards.
        let e = laboratory::enter_results_at(
            &lab.svc,
            &cs(&lab),
            &cat,
            &ue,
            &values(&[("2823-3", "4.0")]),
            at(56),
        )
        .unwrap_err();
        assert_eq!(e.status(), 409, "{n}: {e}");
    }
}

#[test]
fn the_validator_cannot_authorise() {
    for lab in backends("separation") {
        let n = lab.name;
        let cat = catalogue();
        let recv =
            laboratory::receive_specimen_at(&lab.svc, &cs(&lab), "R0000001-1", at(0)).unwrap();
        let crp = report_for(&recv, "C-reactive protein measurement");
        laboratory::enter_results_at(
            &lab.svc,
            &cs(&lab),
            &cat,
            &crp,
            &values(&[("1988-5", "3")]),
            at(5),
        )
        .unwrap();
        // A clinical scientist may validate (they hold the bench activity) …
        laboratory::validate_at(&lab.svc, &cs(&lab), &cat, &crp, &BTreeMap::new(), at(6)).unwrap();
        // … but then someone else authorises.
        let e = laboratory::authorise_at(&lab.svc, &cs(&lab), &cat, &crp, at(7)).unwrap_err();
        assert_eq!(e.status(), 409, "{n}: {e}");
        assert!(
            e.message.contains("a different person must authorise"),
            "{e}"
        );
        // Entering again withdraws the validation: authorising now needs it again.
        laboratory::enter_results_at(
            &lab.svc,
            &bms(&lab),
            &cat,
            &crp,
            &values(&[("1988-5", "4")]),
            at(8),
        )
        .unwrap();
        let e = laboratory::authorise_at(
            &lab.svc,
            &user(&lab, "cs2", "Ada Lamb", Role::ClinicalScientist),
            &cat,
            &crp,
            at(9),
        )
        .unwrap_err();
        assert!(e.message.contains("technically validated"), "{n}: {e}");
    }
}

#[test]
fn an_analyser_file_enters_all_or_nothing() {
    for lab in backends("analyser") {
        let n = lab.name;
        let cat = catalogue();
        let recv =
            laboratory::receive_specimen_at(&lab.svc, &bms(&lab), "R0000001-1", at(0)).unwrap();
        let ue = report_for(&recv, "Urea and electrolytes");
        let crp = report_for(&recv, "C-reactive protein measurement");
        // A unit the analyte is not reported in: the whole file is refused.
        let bad = "specimen barcode,analyte code,value,unit\nR0000001-1,2951-2,140,mmol/L\nR0000001-1,1988-5,12,mg/dL\n";
        let e = laboratory::import_csv_at(&lab.svc, &bms(&lab), &cat, bad, at(5)).unwrap_err();
        assert_eq!(e.status(), 400, "{n}: {e}");
        assert!(
            e.message.contains("line 3") && e.message.contains("mg/dL"),
            "{e}"
        );
        let dr = lab
            .svc
            .read_as(&op(), "DiagnosticReport", &ue)
            .unwrap()
            .unwrap();
        assert_eq!(dr["status"], "registered", "{n}: nothing entered");
        let e = laboratory::import_csv_at(
            &lab.svc,
            &bms(&lab),
            &cat,
            "R0000002-1,2951-2,140,mmol/L\n",
            at(5),
        )
        .unwrap_err();
        assert!(e.message.contains("not been received"), "{n}: {e}");

        let good = "R0000001-1,2951-2,140,mmol/L\nR0000001-1,2823-3,4.4,mmol/L\nR0000001-1,14682-9,90,\nR0000001-1,1988-5,120,mg/L\n";
        let r = laboratory::import_csv_at(&lab.svc, &bms(&lab), &cat, good, at(6)).unwrap();
        assert_eq!(r.rows, 4);
        assert_eq!(r.reports.len(), 2, "{n}");
        let v = laboratory::report(&lab.svc, &bms(&lab), &cat, &crp).unwrap();
        assert_eq!(v.status, "preliminary");
        assert_eq!(
            v.rows[0].flag.as_deref(),
            Some("H"),
            "{n}: flagged by the catalogue's range"
        );
        let v = laboratory::report(&lab.svc, &bms(&lab), &cat, &ue).unwrap();
        assert_eq!(v.status, "preliminary", "{n}");
    }
}

#[test]
fn turnaround_per_test() {
    for lab in backends("turnaround") {
        let n = lab.name;
        let cat = catalogue();
        // R0000001-1 received at 0, CRP authorised at +40, U&E at +90;
        // R0000002-1 received at +10, U&E authorised at +70.
        let r1 =
            laboratory::receive_specimen_at(&lab.svc, &bms(&lab), "R0000001-1", at(0)).unwrap();
        let r2 =
            laboratory::receive_specimen_at(&lab.svc, &bms(&lab), "R0000002-1", at(10)).unwrap();
        let ue1 = report_for(&r1, "Urea and electrolytes");
        let crp = report_for(&r1, "C-reactive protein measurement");
        let ue2 = report_for(&r2, "Urea and electrolytes");
        let ue_vals = values(&[("2951-2", "140"), ("2823-3", "4.3"), ("14682-9", "80")]);
        for (rep, vals, done) in [
            (&crp, values(&[("1988-5", "2")]), 40),
            (&ue2, ue_vals.clone(), 70),
            (&ue1, ue_vals.clone(), 90),
        ] {
            laboratory::enter_results_at(&lab.svc, &bms(&lab), &cat, rep, &vals, at(done - 5))
                .unwrap();
            laboratory::validate_at(
                &lab.svc,
                &bms(&lab),
                &cat,
                rep,
                &BTreeMap::new(),
                at(done - 2),
            )
            .unwrap();
            laboratory::authorise_at(&lab.svc, &cs(&lab), &cat, rep, at(done)).unwrap();
        }
        let manager = user(&lab, "mgr", "Nadia Begum", Role::LaboratoryManager);
        let rows = laboratory::turnaround(&lab.svc, &manager, at(-60), at(120)).unwrap();
        assert_eq!(rows.len(), 2, "{n}: {rows:?}");
        let ue = rows
            .iter()
            .find(|r| r.test == "Urea and electrolytes")
            .unwrap();
        // 60 and 90 minutes: nearest-rank median is 60, 90th 90.
        assert_eq!(
            (ue.count, ue.median_minutes, ue.p90_minutes),
            (2, 60.0, 90.0),
            "{n}"
        );
        let c = rows.iter().find(|r| r.code.ends_with("55235003")).unwrap();
        assert_eq!((c.count, c.median_minutes), (1, 40.0));
        assert_eq!(rows[0].test, "Urea and electrolytes", "slowest first");
        // The period bounds by authorisation time.
        let early = laboratory::turnaround(&lab.svc, &manager, at(-60), at(60)).unwrap();
        assert_eq!(early.len(), 1, "{n}: {early:?}");
        assert!(laboratory::turnaround(&lab.svc, &manager, at(60), at(0)).is_err());
    }
}

// ------------------------------------------------------------------ radiology

#[test]
fn radiology_justifies_once() {
    for lab in backends("irmer") {
        let n = lab.name;
        let mut cxr = sr(
            "sr-cxr",
            "p1",
            "rad-cxr",
            json!({"coding": [{"system": SNOMED, "code": "399208008", "display": "Plain chest X-ray"}]}),
            "363679005",
            "R0000004-1",
        );
        cxr["supportingInfo"] = json!([{"reference": "QuestionnaireResponse/qr1"}]);
        save_all(
            &lab.svc,
            vec![
                cxr,
                json!({"resourceType": "QuestionnaireResponse", "id": "qr1", "status": "completed",
                "subject": {"reference": "Patient/p1"},
                "item": [{"linkId": "clinical-indication", "text": "Clinical indication", "answer": [{"valueString": "Productive cough, crackles right base"}]},
                         {"linkId": "irmer-justification", "text": "Clinical question", "answer": [{"valueString": "Consolidation?"}]}]}),
            ],
        );
        let rad = user(&lab, "rad1", "Liam Brennan", Role::Radiographer);
        let (list, withheld) = radiology::worklist(&lab.svc, &rad).unwrap();
        assert_eq!(withheld, 0, "{n}");
        assert_eq!(list.len(), 1, "{n}: only imaging requests");
        assert_eq!(list[0].patient_name, "HART, Ann");
        assert!(
            list[0]
                .answers
                .contains(&("Clinical question".into(), "Consolidation?".into()))
        );
        assert!(list[0].justification.is_none());

        let e =
            radiology::justify_at(&lab.svc, &rad, "sr-cxr", false, Some(" "), at(0)).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.message.starts_with("Reason"), "{e}");
        let e = radiology::justify_at(&lab.svc, &rad, "sr-ue", true, None, at(0)).unwrap_err();
        assert_eq!(
            e.status(),
            409,
            "{n}: a laboratory request is not justified: {e}"
        );
        // A biomedical scientist has no part in it.
        assert_eq!(
            radiology::justify_at(&lab.svc, &bms(&lab), "sr-cxr", true, None, at(0))
                .unwrap_err()
                .status(),
            403
        );

        let j = radiology::justify_at(&lab.svc, &rad, "sr-cxr", true, None, at(1)).unwrap();
        assert!(j.justified);
        let t = lab.svc.read_as(&op(), "Task", &j.task).unwrap().unwrap();
        assert_eq!(t["status"], "completed");
        assert_eq!(t["focus"]["reference"], "ServiceRequest/sr-cxr");
        let e =
            radiology::justify_at(&lab.svc, &rad, "sr-cxr", false, Some("no"), at(2)).unwrap_err();
        assert_eq!(e.status(), 409, "{n}: {e}");
        assert!(
            e.message.contains("already justified by Liam Brennan"),
            "{e}"
        );
        let (list, _) = radiology::worklist(&lab.svc, &rad).unwrap();
        assert!(
            list[0].justification.as_ref().is_some_and(|j| j.justified),
            "{n}"
        );
    }
}
