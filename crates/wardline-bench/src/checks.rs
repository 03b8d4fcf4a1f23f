//! `wardline-bench checks`: decision support at the point of prescribing
//! for a patient on 20 medicines (target < 20 ms).
//!
//! Builds (or reuses, in `--data-dir`) a store holding the starter
//! formulary (`wardline_demo::FORMULARY`) and a patient (`chk-heavy`)
//! admitted under the bench consultant, with 20 active prescriptions, three
//! allergies, `--history` past results each of body weight, eGFR and
//! creatinine, and the latest ones recent. Then, signed in as the
//! consultant through the real sign-in form (so the access policy is the
//! one prescribing runs under), it times `checks::assess_in` — in a
//! transaction opened for it and dropped — `--repeat` times for each of
//! three candidates: IV paracetamol as required (the maximum dose summed
//! across routes), clarithromycin (interactions) and gentamicin (renal,
//! Cockcroft–Gault). It prints min, p50 and p99.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use clap::Args;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_auth::directory::Directory;
use wardline_core::{Access, FhirService, ServiceConfig, Trusted};
use wardline_workflow::medicines::checks;
use wardline_workflow::medicines::formulary::{self, Formulary};

use crate::StoreArgs;

#[derive(Args)]
pub struct ChecksBenchArgs {
    /// Where the store is: reused when it already holds the data, built
    /// when not.
    #[command(flatten)]
    store: StoreArgs,
    /// Timed repetitions of each candidate.
    #[arg(long, default_value_t = 500)]
    repeat: usize,
    /// Past results of each of weight, eGFR and creatinine.
    #[arg(long, default_value_t = 200)]
    history: usize,
}

const PATIENT: &str = "chk-heavy";
const LOINC: &str = "http://loinc.org";

/// The 20 medicines on the chart: (VTM name, dose in units of dose, times);
/// paracetamol as tablets.
const CHART: [(&str, f64, &[&str]); 20] = [
    (
        "Paracetamol",
        2.0,
        &["06:00:00", "12:00:00", "18:00:00", "22:00:00"],
    ),
    ("Morphine", 1.0, &["08:00:00", "20:00:00"]),
    ("Diazepam", 1.0, &["22:00:00"]),
    ("Warfarin", 3.0, &["18:00:00"]),
    ("Simvastatin", 1.0, &["22:00:00"]),
    ("Metformin hydrochloride", 1.0, &["08:00:00", "18:00:00"]),
    ("Lisinopril", 1.0, &["08:00:00"]),
    ("Spironolactone", 1.0, &["08:00:00"]),
    ("Omeprazole", 1.0, &["08:00:00"]),
    ("Clopidogrel", 1.0, &["08:00:00"]),
    ("Furosemide", 1.0, &["08:00:00", "14:00:00"]),
    ("Amlodipine", 1.0, &["08:00:00"]),
    ("Levothyroxine sodium", 1.0, &["06:00:00"]),
    ("Sertraline", 1.0, &["08:00:00"]),
    ("Lactulose", 10.0, &["08:00:00", "20:00:00"]),
    ("Senna", 2.0, &["22:00:00"]),
    ("Bisoprolol fumarate", 1.0, &["08:00:00"]),
    ("Gliclazide", 1.0, &["08:00:00"]),
    ("Amitriptyline", 1.0, &["22:00:00"]),
    ("Folic acid", 1.0, &["08:00:00"]),
];

pub fn run(a: ChecksBenchArgs) -> Result<()> {
    let service = Arc::new(a.store.service(ServiceConfig {
        base_url: "http://127.0.0.1/fhir".into(),
        ..ServiceConfig::default()
    })?);
    let backend = service.backend();
    let op = Trusted::operator("bench");
    if service
        .system_reader()
        .read("Organization", "trust")?
        .is_none()
    {
        crate::load::load_value(
            &service,
            json!({"resourceType": "Organization", "id": "trust", "active": true,
                "name": "Wardline NHS Trust (bench)"}),
        )
        .map_err(|e| anyhow!(e))?;
    }
    let mut f = formulary::load(&service)?;
    if f.entries.is_empty() {
        formulary::import(&service, &op, wardline_demo::FORMULARY, "starter formulary")
            .map_err(|e| anyhow!("{e:?}"))?;
        f = formulary::load(&service)?;
    }
    let dir = Arc::new(Directory::open(service.clone(), "trust").map_err(|e| anyhow!("{e}"))?);
    crate::workspace::ensure_user(&dir, &[])?;
    let practitioner = dir
        .account(crate::workspace::BENCH_USER)
        .map_err(|e| anyhow!("{e}"))?
        .context("bench user")?
        .practitioner;
    let now = OffsetDateTime::now_utc();
    if service.system_reader().read("Patient", PATIENT)?.is_none() {
        load_patient(&service, &op, &f, &practitioner, a.history, now)?;
    }
    let candidates = [
        (
            "paracetamol IV as required (maximum dose)",
            candidate(&f, "Paracetamol", "infusion", &practitioner, true)?,
        ),
        (
            "clarithromycin (interactions)",
            candidate(&f, "Clarithromycin", "", &practitioner, false)?,
        ),
        (
            "gentamicin (renal, Cockcroft-Gault)",
            candidate(&f, "Gentamicin", "", &practitioner, false)?,
        ),
    ];

    let rt = tokio::runtime::Runtime::new()?;
    let server = rt.block_on(crate::workspace::Server::start(service.clone(), dir))?;
    let access: Arc<dyn Access + Send + Sync> = server.access.clone();
    println!(
        "checks [{backend}]: a patient on {} medicines with {} allergies and {} past results of each renal test, {} repetitions",
        CHART.len(),
        3,
        a.history,
        a.repeat
    );
    println!(
        "{:<44} {:>7} {:>9} {:>9} {:>9}",
        "candidate", "alerts", "min", "p50", "p99"
    );
    for (label, c) in &candidates {
        let mut times: Vec<Duration> = Vec::with_capacity(a.repeat);
        let mut alerts = 0;
        for _ in 0..a.repeat {
            let t = Instant::now();
            let mut tx = service.begin(&*access)?;
            let found = checks::assess_in(&mut tx, &f, PATIENT, c, now)
                .map_err(|e| anyhow!("{label}: {e}"))?;
            drop(tx);
            times.push(t.elapsed());
            alerts = found.len();
        }
        times.sort();
        let ms = |p: f64| crate::bench::percentile(&times, p);
        println!(
            "{label:<44} {alerts:>7} {:>9.2} {:>9.2} {:>9.2}",
            ms(0.0),
            ms(0.5),
            ms(0.99)
        );
    }
    println!("(milliseconds: a transaction opened, checks::assess_in, the transaction dropped)");
    rt.block_on(server.stop());
    Ok(())
}

fn entry_of<'a>(f: &'a Formulary, vtm: &str, form: &str) -> Result<&'a formulary::Entry> {
    f.entries
        .iter()
        .find(|e| e.vtm.display.eq_ignore_ascii_case(vtm) && e.form.to_lowercase().contains(form))
        .with_context(|| format!("{vtm} ({form}) is not in the formulary"))
}

fn prescription(e: &formulary::Entry, dose: f64, times: &[&str], practitioner: &str) -> Value {
    json!({"resourceType": "MedicationRequest", "status": "active", "intent": "order",
        "category": [{"coding": [{"system": wardline_workflow::medicines::CATEGORY_SYSTEM, "code": "inpatient"}]}],
        "medicationReference": {"reference": format!("Medication/{}", e.id)},
        "subject": {"reference": format!("Patient/{PATIENT}")},
        "requester": {"reference": format!("Practitioner/{practitioner}")},
        "extension": [{"url": wardline_workflow::medicines::SIGNATURE_EXT, "extension": [
            {"url": "by", "valueReference": {"reference": format!("Practitioner/{practitioner}")}},
            {"url": "at", "valueDateTime": "2026-12-01T09:00:00Z"}]}],
        "dosageInstruction": [{"timing": {"repeat": {"timeOfDay": times, "frequency": times.len(), "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": dose, "unit": e.unit_of_dose}}]}]})
}

fn candidate(f: &Formulary, vtm: &str, form: &str, practitioner: &str, prn: bool) -> Result<Value> {
    let e = entry_of(f, vtm, form)?;
    let mut mr = prescription(e, 1.0, &["08:00:00", "20:00:00"], practitioner);
    if prn {
        mr["dosageInstruction"] = json!([{"asNeededBoolean": true,
            "maxDosePerPeriod": {"numerator": {"value": 4, "unit": "g"}, "denominator": {"value": 24, "unit": "h"}},
            "doseAndRate": [{"doseQuantity": {"value": 100, "unit": "mL"}}]}]);
    }
    Ok(mr)
}

fn observation(code: &str, value: f64, unit: &str, at: OffsetDateTime) -> Result<Value> {
    let at = at.format(&time::format_description::well_known::Rfc3339)?;
    Ok(json!({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": format!("Patient/{PATIENT}")}, "effectiveDateTime": at,
        "valueQuantity": {"value": value, "unit": unit}}))
}

fn load_patient(
    service: &FhirService,
    op: &Trusted,
    f: &Formulary,
    practitioner: &str,
    history: usize,
    now: OffsetDateTime,
) -> Result<()> {
    let t = Instant::now();
    let mut tx = service.begin(op)?;
    tx.save(
        json!({"resourceType": "Patient", "id": PATIENT, "active": true,
        "gender": "male", "birthDate": "1950-03-14",
        "name": [{"use": "official", "family": "Heavy", "given": ["Checks"]}]}),
    )?;
    tx.save(json!({"resourceType": "Encounter", "status": "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": format!("Patient/{PATIENT}")},
        "participant": [{"individual": {"reference": format!("Practitioner/{practitioner}")}}]}))?;
    for (vtm, dose, times) in CHART {
        let e = entry_of(f, vtm, if vtm == "Paracetamol" { "tablet" } else { "" })?;
        tx.save(prescription(e, dose, times, practitioner))?;
    }
    for (text, kind, criticality) in [
        ("Penicillins", "allergy", "high"),
        ("Ibuprofen", "intolerance", "low"),
        ("Latex", "allergy", "low"),
    ] {
        tx.save(json!({"resourceType": "AllergyIntolerance",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
            "type": kind, "criticality": criticality, "code": {"text": text},
            "patient": {"reference": format!("Patient/{PATIENT}")}}))?;
    }
    for k in 0..history {
        let at = now - time::Duration::hours(12 + 24 * k as i64);
        tx.save(observation("29463-7", 70.0 + (k % 5) as f64, "kg", at)?)?;
        tx.save(observation(
            "62238-1",
            55.0 + (k % 20) as f64,
            "mL/min/{1.73_m2}",
            at,
        )?)?;
        tx.save(observation(
            "14682-9",
            95.0 + (k % 30) as f64,
            "umol/L",
            at,
        )?)?;
    }
    tx.commit()?;
    println!(
        "loaded {PATIENT}: {} prescriptions, {} results in {:.1} s",
        CHART.len(),
        history * 3,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
