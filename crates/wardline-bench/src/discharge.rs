//! `wardline-bench discharge`: discharge summary assembly (issue 18) for a
//! patient with a long history.
//!
//! Builds (in a fresh store: SQLite in a temporary directory, or
//! `--database`) one patient registered with a GP practice (ODS code, a
//! MESH route) with `--encounters` encounters: the current inpatient
//! admission, `--repeat` earlier inpatient admissions recorded the same way
//! (one per timed signing, see below), and the rest outpatient and
//! emergency attendances over fifteen years with their own diagnoses,
//! procedures and results. Each inpatient admission has what
//! `documents::discharge::prefill` reads: four Conditions and two
//! Procedures with `encounter` the admission (SNOMED CT with ICD-10 /
//! OPCS-4), six DiagnosticReports of five Observations each, ten inpatient
//! MedicationRequests and a TTO of eight discharge ones from the demo's
//! starter formulary (continued, one dose changed with its reason, one
//! started, three stopped); the patient has three AllergyIntolerances.
//!
//! It then times, as a doctor with a position, `--repeat` times each:
//! * **pre-fill**: `prefill` of the current admission (read-only, the page
//!   a clinician opens);
//! * **sign path**: on a fresh recorded admission each time (a summary is
//!   signed once; re-signing is an amendment, another path), what a
//!   clinician does: `start` (pre-fill, draft written), `save_draft` (the
//!   clinical summary and plan written; the record pre-filled again) and
//!   `sign` (Bundle, PDF, DocumentReference and the delivery queued, in one
//!   transaction) — the whole, and `sign` alone.
//!
//! It prints min, p50 and p99 of each.

use std::time::{Duration as StdDuration, Instant};

use anyhow::{Context, Result, anyhow};
use clap::Args;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use wardline::StoreArgs;
use wardline_core::{Agent, FhirService, ServiceConfig, Trusted};
use wardline_workflow::documents::discharge::{self, prefill::prefill};
use wardline_workflow::medicines::formulary;
use wardline_workflow::medicines::{CATEGORY_SYSTEM, SIGNATURE_EXT};
use wardline_workflow::transfers::routing::{Channel, Route, set_routes_in};

#[derive(Args)]
pub struct DischargeBenchArgs {
    /// A postgres://… URL; default: SQLite in a temporary directory.
    #[arg(long)]
    database: Option<String>,
    /// Encounters of the patient (the current admission included).
    #[arg(long, default_value_t = 600)]
    encounters: usize,
    /// Timed repetitions of each measurement (and earlier admissions
    /// recorded in full, one signed per repetition).
    #[arg(long, default_value_t = 20)]
    repeat: usize,
}

/// The patient, their practice and its MESH mailbox (a mesh-sandbox canned
/// mailbox).
pub const PATIENT: &str = "bench-patient";
pub const PRACTICE: &str = "bench-gp";
pub const PRACTICE_MAILBOX: &str = "X26ABC2";
/// The current admission.
pub const CURRENT: &str = "bench-adm-0";

/// What was seeded.
pub struct Seeded {
    pub encounters: usize,
    /// Recorded inpatient admissions (`bench-adm-{k}`), the current first.
    pub admissions: Vec<String>,
    pub now: OffsetDateTime,
}

const ACT: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const SNOMED: &str = "http://snomed.info/sct";
const ICD10: &str = "http://hl7.org/fhir/sid/icd-10";
const OPCS4: &str = "http://fhir.nhs.uk/CodeSystem/opcs-4";

fn text(t: OffsetDateTime) -> String {
    wardline_workflow::transfers::fhir_time(t)
}

fn loc(id: &str, name: &str, kind: &str, part_of: Option<&str>) -> Value {
    let mut l = json!({"resourceType": "Location", "id": id, "status": "active", "name": name,
        "physicalType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": kind}]}});
    if let Some(p) = part_of {
        l["partOf"] = json!({"reference": format!("Location/{p}")});
    }
    l
}

/// The doctor who writes and signs (a Practitioner with a position).
pub fn doctor() -> Trusted {
    Trusted::new(Agent {
        name: "bench-dr".into(),
        who: Some("Practitioner/bench-dr".into()),
        position: Some("PractitionerRole/bench-dr-role".into()),
        ..Agent::default()
    })
}

const DIAGNOSES: [(&str, &str, &str); 8] = [
    ("385093006", "J18.9", "Community acquired pneumonia"),
    ("195967001", "J45.9", "Asthma"),
    ("44054006", "E11.9", "Type 2 diabetes mellitus"),
    ("38341003", "I10", "Hypertensive disorder"),
    ("49436004", "I48.9", "Atrial fibrillation"),
    ("68566005", "N39.0", "Urinary tract infection"),
    ("13645005", "J44.9", "Chronic obstructive lung disease"),
    ("431855005", "N18.3", "Chronic kidney disease stage 3"),
];
const PROCEDURES: [(&str, &str, &str); 4] = [
    ("40701008", "U20.1", "Echocardiography"),
    ("399208008", "U07.1", "Plain chest X-ray"),
    ("73761001", "H22.9", "Colonoscopy"),
    ("76164006", "G45.1", "Biopsy of stomach"),
];
const ANALYTES: [(&str, &str, f64); 5] = [
    ("Haemoglobin", "g/L", 128.0),
    ("White cell count", "10*9/L", 11.2),
    ("Sodium", "mmol/L", 137.0),
    ("Potassium", "mmol/L", 4.4),
    ("C-reactive protein", "mg/L", 42.0),
];

fn condition(id: &str, enc: &str, k: usize, onset: OffsetDateTime) -> Value {
    let (sct, icd, name) = DIAGNOSES[k % DIAGNOSES.len()];
    json!({"resourceType": "Condition", "id": id,
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
        "code": {"coding": [{"system": SNOMED, "code": sct, "display": name}, {"system": ICD10, "code": icd}], "text": name},
        "subject": {"reference": format!("Patient/{PATIENT}")}, "encounter": {"reference": format!("Encounter/{enc}")},
        "onsetDateTime": text(onset), "recordedDate": text(onset)})
}

fn procedure(id: &str, enc: &str, k: usize, at: OffsetDateTime) -> Value {
    let (sct, opcs, name) = PROCEDURES[k % PROCEDURES.len()];
    json!({"resourceType": "Procedure", "id": id, "status": "completed",
        "code": {"coding": [{"system": SNOMED, "code": sct, "display": name}, {"system": OPCS4, "code": opcs}], "text": name},
        "subject": {"reference": format!("Patient/{PATIENT}")}, "encounter": {"reference": format!("Encounter/{enc}")},
        "performedDateTime": text(at)})
}

/// A full blood count / chemistry report with `n` observations.
fn report(
    tx: &mut wardline_core::Tx<'_>,
    id: &str,
    enc: &str,
    n: usize,
    at: OffsetDateTime,
) -> Result<()> {
    let mut results = Vec::new();
    for (i, (name, unit, v)) in ANALYTES.iter().take(n).enumerate() {
        let oid = format!("{id}-o{i}");
        tx.save(json!({"resourceType": "Observation", "id": oid, "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
            "code": {"text": name}, "subject": {"reference": format!("Patient/{PATIENT}")},
            "encounter": {"reference": format!("Encounter/{enc}")}, "effectiveDateTime": text(at),
            "valueQuantity": {"value": v, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}}))?;
        results.push(json!({"reference": format!("Observation/{oid}")}));
    }
    tx.save(json!({"resourceType": "DiagnosticReport", "id": id, "status": "final",
        "code": {"text": "Full blood count and renal profile"}, "subject": {"reference": format!("Patient/{PATIENT}")},
        "encounter": {"reference": format!("Encounter/{enc}")}, "effectiveDateTime": text(at),
        "issued": text(at + Duration::hours(1)), "result": results,
        "conclusion": "Raised inflammatory markers."}))?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn prescription(
    id: &str,
    enc: &str,
    med: &str,
    dose: u32,
    category: &str,
    status: &str,
    at: &str,
    note: Option<&str>,
) -> Value {
    let mut mr = json!({"resourceType": "MedicationRequest", "id": id, "status": status, "intent": "order",
        "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": category}]}],
        "medicationReference": {"reference": format!("Medication/{med}")},
        "subject": {"reference": format!("Patient/{PATIENT}")},
        "encounter": {"reference": format!("Encounter/{enc}")},
        "requester": {"reference": "Practitioner/bench-dr"},
        "authoredOn": at,
        "extension": [{"url": SIGNATURE_EXT, "extension": [
            {"url": "by", "valueReference": {"reference": "Practitioner/bench-dr"}},
            {"url": "at", "valueDateTime": at}]}],
        "dispenseRequest": {"validityPeriod": {"start": at}},
        "dosageInstruction": [{"timing": {"repeat": {"timeOfDay": ["08:00:00"], "period": 1, "periodUnit": "d"}},
            "route": {"text": "Oral"},
            "doseAndRate": [{"doseQuantity": {"value": dose, "unit": "tablet"}}]}]});
    if let Some(n) = note {
        mr["note"] = json!([{"text": n}]);
    }
    mr
}

/// One inpatient admission's record (see the module documentation).
fn admission(
    svc: &FhirService,
    op: &Trusted,
    k: usize,
    start: OffsetDateTime,
    end: Option<OffsetDateTime>,
    meds: &[String],
) -> Result<()> {
    let enc = format!("bench-adm-{k}");
    let mut tx = svc.begin(op)?;
    let mut e = json!({"resourceType": "Encounter", "id": enc,
        "status": if end.is_some() { "finished" } else { "in-progress" },
        "class": {"system": ACT, "code": "IMP"},
        "subject": {"reference": format!("Patient/{PATIENT}")},
        "serviceType": {"coding": [{"system": "https://fhir.nhs.uk/CodeSystem/UKCore-TreatmentFunction", "code": "300", "display": "General Internal Medicine"}]},
        "participant": [{"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "ATND"}]}],
            "individual": {"reference": "Practitioner/bench-cons"}}],
        "hospitalization": {"admitSource": {"text": "Emergency department"}},
        "period": {"start": text(start)},
        "location": [{"location": {"reference": "Location/bench-bed"}, "status": if end.is_some() { "completed" } else { "active" },
            "period": {"start": text(start)}}]});
    if let Some(end) = end {
        e["period"]["end"] = json!(text(end));
        e["location"][0]["period"]["end"] = json!(text(end));
        e["hospitalization"]["dischargeDisposition"] = json!({"text": "Usual place of residence"});
    }
    tx.save(e)?;
    for c in 0..4 {
        tx.save(condition(&format!("{enc}-c{c}"), &enc, k + c, start))?;
    }
    for p in 0..2 {
        tx.save(procedure(
            &format!("{enc}-p{p}"),
            &enc,
            k + p,
            start + Duration::days(1),
        ))?;
    }
    for r in 0..6 {
        report(
            &mut tx,
            &format!("{enc}-r{r}"),
            &enc,
            5,
            start + Duration::hours(6 + 12 * r as i64),
        )?;
    }
    let at = text(start + Duration::hours(2));
    let tto_at = text(start + Duration::days(3));
    // Ten on the inpatient chart; the TTO continues six, changes one's
    // dose, starts one, and three are stopped.
    for (m, med) in meds.iter().enumerate().take(10) {
        tx.save(prescription(
            &format!("{enc}-ip{m}"),
            &enc,
            med,
            1,
            "inpatient",
            "active",
            &at,
            None,
        ))?;
    }
    for (m, med) in meds.iter().enumerate().take(7) {
        let (dose, note) = if m == 6 {
            (2, Some("Dose increased: symptoms not controlled."))
        } else {
            (1, None)
        };
        tx.save(prescription(
            &format!("{enc}-tto{m}"),
            &enc,
            med,
            dose,
            "discharge",
            "active",
            &tto_at,
            note,
        ))?;
    }
    tx.save(prescription(
        &format!("{enc}-tto7"),
        &enc,
        &meds[10],
        1,
        "discharge",
        "active",
        &tto_at,
        None,
    ))?;
    tx.commit()?;
    Ok(())
}

/// Seeds the store (see the module documentation): `encounters` in all,
/// `recorded` of them inpatient admissions recorded in full.
pub fn seed(svc: &FhirService, encounters: usize, recorded: usize) -> Result<Seeded> {
    anyhow::ensure!(
        recorded >= 1 && encounters >= recorded,
        "the patient needs at least as many encounters ({encounters}) as recorded admissions ({recorded})"
    );
    let op = Trusted::operator("bench-loader");
    let now = OffsetDateTime::now_utc();
    let mut tx = svc.begin(&op)?;
    for r in [
        loc("bench-site", "Bench General Hospital", "si", None),
        loc("bench-ward", "Bench ward", "wa", Some("bench-site")),
        loc("bench-bed", "Bed 1", "bd", Some("bench-ward")),
        json!({"resourceType": "Practitioner", "id": "bench-dr", "name": [{"family": "Mehta", "given": ["Sanjay"], "prefix": ["Dr"]}]}),
        json!({"resourceType": "PractitionerRole", "id": "bench-dr-role", "active": true,
            "practitioner": {"reference": "Practitioner/bench-dr"}, "code": [{"text": "Specialty registrar, general medicine",
                "coding": [{"system": "https://fhir.wardline.invalid/CodeSystem/role", "code": "doctor"}]}]}),
        json!({"resourceType": "Practitioner", "id": "bench-cons", "name": [{"family": "Jones", "given": ["Huw"], "prefix": ["Dr"]}]}),
        json!({"resourceType": "Organization", "id": PRACTICE, "active": true, "name": "Bridge Street Surgery",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "F81001"}],
            "address": [{"line": ["1 Bridge Street"], "city": "Watford", "postalCode": "WD1 1AA"}]}),
        json!({"resourceType": "Patient", "id": PATIENT, "active": true, "gender": "female", "birthDate": "1948-05-01",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}],
            "name": [{"use": "official", "family": "Longstay", "given": ["Alice"]}],
            "address": [{"line": ["12 High Street"], "city": "Watford", "postalCode": "WD17 2AB"}],
            "generalPractitioner": [{"reference": format!("Organization/{PRACTICE}")}]}),
    ] {
        tx.save(r)?;
    }
    set_routes_in(
        &mut tx,
        PRACTICE,
        &[Route {
            channel: Channel::Mesh,
            address: PRACTICE_MAILBOX.to_lowercase(),
        }],
    )
    .map_err(|e| anyhow!("{e}"))?;
    for (i, (name, reaction)) in [
        ("Penicillin", "Rash"),
        ("Codeine", "Vomiting"),
        ("Latex", "Urticaria"),
    ]
    .into_iter()
    .enumerate()
    {
        tx.save(json!({"resourceType": "AllergyIntolerance", "id": format!("bench-al{i}"),
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
            "code": {"text": name}, "patient": {"reference": format!("Patient/{PATIENT}")}, "criticality": "high",
            "reaction": [{"manifestation": [{"text": reaction}]}]}))?;
    }
    tx.commit()?;
    formulary::import(svc, &op, wardline_demo::FORMULARY, "formulary.csv")
        .map_err(|e| anyhow!("{e}"))?;
    let f = formulary::load(svc)?;
    // Eleven medicines of distinct substances (the TTO compares by
    // substance).
    let mut vtms = Vec::new();
    let meds: Vec<String> = f
        .entries
        .iter()
        .filter(|e| e.active && e.controlled_drug.is_none())
        .filter(|e| {
            let new = !vtms.contains(&e.vtm.code);
            vtms.push(e.vtm.code.clone());
            new
        })
        .map(|e| e.id.clone())
        .take(11)
        .collect();
    anyhow::ensure!(
        meds.len() == 11,
        "the starter formulary has too few medicines"
    );

    // The current admission (four days in), then `recorded - 1` earlier
    // ones, a quarter of a year apart.
    let mut admissions = Vec::new();
    for k in 0..recorded {
        let start = now - Duration::days(4 + 91 * k as i64);
        let end = (k > 0).then(|| start + Duration::days(5));
        admission(svc, &op, k, start, end, &meds)?;
        admissions.push(format!("bench-adm-{k}"));
    }
    // The rest: outpatient and emergency attendances over fifteen years,
    // in transactions of 50.
    let rest = encounters - recorded;
    let span = Duration::days(15 * 365);
    for chunk in (0..rest).collect::<Vec<_>>().chunks(50) {
        let mut tx = svc.begin(&op)?;
        for &h in chunk {
            let id = format!("bench-enc-{h}");
            let at = now - Duration::days(7) - span * (h as f64 / rest.max(1) as f64);
            let ed = h % 3 == 2;
            tx.save(json!({"resourceType": "Encounter", "id": id, "status": "finished",
                "class": {"system": ACT, "code": if ed { "EMER" } else { "AMB" }},
                "subject": {"reference": format!("Patient/{PATIENT}")},
                "period": {"start": text(at), "end": text(at + Duration::hours(if ed { 5 } else { 1 }))}}))?;
            if ed || h % 2 == 0 {
                tx.save(condition(&format!("{id}-c"), &id, h, at))?;
            }
            if h % 5 == 0 {
                tx.save(procedure(&format!("{id}-p"), &id, h, at))?;
            }
            if h % 3 == 0 {
                report(&mut tx, &format!("{id}-r"), &id, 3, at)?;
            }
        }
        tx.commit()?;
    }
    Ok(Seeded {
        encounters,
        admissions,
        now,
    })
}

fn millis(times: &mut [StdDuration]) -> String {
    times.sort();
    format!(
        "min {:.1} ms, p50 {:.1} ms, p99 {:.1} ms",
        crate::bench::percentile(times, 0.0),
        crate::bench::percentile(times, 0.5),
        crate::bench::percentile(times, 0.99),
    )
}

/// The clinician's text under the headings a summary is not signed
/// without.
pub fn written() -> Vec<(String, String)> {
    vec![
        (
            "clinical-summary".into(),
            "Admitted with community acquired pneumonia; treated with intravenous then oral antibiotics, \
             oxygen weaned by day 3. Diabetes control reviewed; dose of one medicine increased."
                .into(),
        ),
        (
            "plan".into(),
            "GP: please check renal function and CRP in one week and review the increased dose.".into(),
        ),
    ]
}

pub fn service(database: Option<String>) -> Result<(FhirService, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let svc = StoreArgs {
        data_dir: dir.path().to_owned(),
        database,
        time_zone: None,
        db_key_file: None,
    }
    .service(ServiceConfig::default())?;
    Ok((svc, dir))
}

pub fn run(a: DischargeBenchArgs) -> Result<()> {
    anyhow::ensure!(a.repeat >= 1, "--repeat must be at least 1");
    let (svc, _dir) = service(a.database.clone())?;
    let loading = Instant::now();
    let s = seed(&svc, a.encounters, a.repeat + 1)?;
    println!(
        "discharge [{}]: one patient with {} encounters ({} inpatient admissions recorded in full) loaded in {:.1} s",
        svc.backend(),
        s.encounters,
        s.admissions.len(),
        loading.elapsed().as_secs_f64()
    );
    let dr = doctor();
    // Warm up, and check the pre-fill reads what was seeded.
    let p = prefill(&svc, &dr, CURRENT, s.now).map_err(|e| anyhow!("{e}"))?;
    let lines = |k: &str| p.section(k).map_or(0, |x| x.entries.len());
    anyhow::ensure!(
        lines("diagnoses") == 4
            && lines("procedures") == 2
            && lines("investigation-results") == 6
            && lines("allergies") == 3
            && lines("medications") == 11,
        "the pre-fill did not read the seeded admission: {} diagnoses, {} procedures, {} results, {} allergies, {} medicines",
        lines("diagnoses"),
        lines("procedures"),
        lines("investigation-results"),
        lines("allergies"),
        lines("medications")
    );
    let mut times = Vec::with_capacity(a.repeat);
    for _ in 0..a.repeat {
        let t = Instant::now();
        let p = prefill(&svc, &dr, CURRENT, s.now).map_err(|e| anyhow!("{e}"))?;
        times.push(t.elapsed());
        std::hint::black_box(p);
    }
    println!(
        "discharge [{}]: pre-fill ({} encounters, {} runs): {}",
        svc.backend(),
        s.encounters,
        a.repeat,
        millis(&mut times)
    );
    let w = written();
    let (mut whole, mut sign) = (Vec::new(), Vec::new());
    let mut pdf_bytes = 0;
    for enc in &s.admissions[1..] {
        let t = Instant::now();
        let id = discharge::start(&svc, &dr, enc, s.now).map_err(|e| anyhow!("{e}"))?;
        discharge::save_draft(&svc, &dr, &id, &w, s.now).map_err(|e| anyhow!("{e}"))?;
        let t_sign = Instant::now();
        let signed = discharge::sign(&svc, &dr, &id, s.now).map_err(|e| anyhow!("{e}"))?;
        sign.push(t_sign.elapsed());
        whole.push(t.elapsed());
        anyhow::ensure!(
            signed.gp_practice.as_deref() == Some(PRACTICE),
            "the signed summary names no GP practice"
        );
        if pdf_bytes == 0 {
            pdf_bytes = pdf_size(&svc, &signed.binary)?;
        }
    }
    println!(
        "discharge [{}]: sign path: start + save draft + sign ({} runs, PDF {} KiB): {}",
        svc.backend(),
        a.repeat,
        pdf_bytes / 1024,
        millis(&mut whole)
    );
    // Not timed: does every recorded admission's pre-fill find its own six
    // reports, however many the patient has?
    let mut short = Vec::new();
    for enc in &s.admissions {
        let p = prefill(&svc, &dr, enc, s.now).map_err(|e| anyhow!("{e}"))?;
        let n = p
            .section("investigation-results")
            .map_or(0, |x| x.entries.len());
        if n != 6 {
            short.push(format!("{enc}: {n}"));
        }
    }
    if !short.is_empty() {
        println!(
            "discharge [{}]: WARNING: the pre-fill missed results of {} of {} admissions ({})",
            svc.backend(),
            short.len(),
            s.admissions.len(),
            short.join(", ")
        );
    }
    println!(
        "discharge [{}]: sign alone (Bundle, PDF, DocumentReference, delivery queued): {}",
        svc.backend(),
        millis(&mut sign)
    );
    Ok(())
}

/// The stored PDF's size in bytes.
pub fn pdf_size(svc: &FhirService, binary: &str) -> Result<usize> {
    let op = Trusted::operator("bench-loader");
    let mut tx = svc.begin(&op)?;
    let b = tx
        .get("Binary", binary)?
        .context("the signed PDF is not stored")?;
    tx.commit()?;
    Ok(b["data"].as_str().map_or(0, |d| d.len() * 3 / 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite, and PostgreSQL when `WARDLINE_TEST_PG_URL` is set.
    fn backends() -> Vec<(FhirService, Option<tempfile::TempDir>)> {
        let (svc, dir) = service(None).unwrap();
        let mut out = vec![(svc, Some(dir))];
        if let Some((pg, _, _)) = wardline_store_postgres::testenv::store("bench_discharge") {
            out.push((
                wardline_workflow::with_rules(FhirService::new(
                    std::sync::Arc::new(pg),
                    ServiceConfig::default(),
                )),
                None,
            ));
        }
        out
    }

    #[test]
    fn the_patient_has_every_encounter_and_the_prefill_reads_the_admission() {
        for (svc, _dir) in backends() {
            check_seed(&svc);
        }
    }

    fn check_seed(svc: &FhirService) {
        let s = seed(svc, 60, 3).unwrap();
        let op = Trusted::operator("bench-test");
        let mut tx = svc.begin(&op).unwrap();
        let encs = tx
            .find(
                "Encounter",
                &format!("subject=Patient/{PATIENT}&_count=1000"),
            )
            .unwrap();
        tx.commit().unwrap();
        assert_eq!(encs.len(), 60);
        assert_eq!(
            encs.iter().filter(|e| e["class"]["code"] == "IMP").count(),
            3
        );
        assert_eq!(s.admissions, ["bench-adm-0", "bench-adm-1", "bench-adm-2"]);
        let p = prefill(svc, &doctor(), CURRENT, s.now).unwrap();
        let d = p.section("diagnoses").unwrap();
        assert_eq!(d.lines.len(), 4, "{:?}", d.lines);
        assert!(d.lines[0].contains("ICD-10"), "{:?}", d.lines);
        assert_eq!(p.section("investigation-results").unwrap().lines.len(), 6);
        let m = &p.section("medications").unwrap().lines;
        assert_eq!(
            m.iter().filter(|l| l.starts_with("Stopped")).count(),
            3,
            "{m:?}"
        );
        assert_eq!(
            m.iter().filter(|l| l.starts_with("Dose changed")).count(),
            1,
            "{m:?}"
        );
        assert_eq!(p.gp_practice.as_deref(), Some(PRACTICE));
    }
}
