//! `wardline-bench mar`: the ward drug round at its design size.
//!
//! Builds (in a fresh store: SQLite in a temporary directory, or
//! `--database`) one ward of `--patients` beds (five bays), each bed's
//! patient admitted with `--prescriptions` active prescriptions from a
//! formulary of 15 medicines (from the demo's starter formulary) — regular one to four times a day (one
//! time-critical, one controlled drug), as required (with interval and
//! maximum), once only and variable dose — and two days of doses recorded
//! (given, a few omitted) through `medicines::mar::give_in` / `omit_in`.
//! Then it times `medicines::mar::drug_round` (the page's one workflow
//! call: the ward's board, the prescriptions, administrations and
//! escalations, slot states and as-required arithmetic) `--repeat` times,
//! sequentially, as a nurse, and prints min, p50 and p99.

use std::time::{Duration as StdDuration, Instant};

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use wardline::StoreArgs;
use wardline_core::{Agent, ServiceConfig, Trusted};
use wardline_workflow::medicines::formulary;
use wardline_workflow::medicines::mar::{self, Give, Omit};
use wardline_workflow::medicines::{MIN_INTERVAL_EXT, SIGNATURE_EXT, VARIABLE_DOSE_EXT};

#[derive(Args)]
pub struct MarBenchArgs {
    /// A postgres://… URL; default: SQLite in a temporary directory.
    #[arg(long)]
    database: Option<String>,
    /// Patients on the ward (one a bed).
    #[arg(long, default_value_t = 30)]
    patients: usize,
    /// Active prescriptions per patient.
    #[arg(long, default_value_t = 15)]
    prescriptions: usize,
    /// Timed repetitions.
    #[arg(long, default_value_t = 100)]
    repeat: usize,
}

fn loc(id: &str, name: &str, kind: &str, part_of: Option<&str>) -> Value {
    let mut l = json!({"resourceType": "Location", "id": id, "status": "active", "name": name,
        "physicalType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": kind}]}});
    if let Some(p) = part_of {
        l["partOf"] = json!({"reference": format!("Location/{p}")});
    }
    l
}

const TIMES: [&[&str]; 4] = [
    &["08:00:00"],
    &["08:00:00", "20:00:00"],
    &["08:00:00", "14:00:00", "22:00:00"],
    &["06:00:00", "12:00:00", "18:00:00", "22:00:00"],
];

fn prescription(
    id: &str,
    patient: &str,
    encounter: &str,
    med: usize,
    med_id: &str,
    start: &str,
    event: &str,
) -> Value {
    let dosage = match med {
        12 | 13 => json!({"asNeededBoolean": true,
            "extension": [{"url": MIN_INTERVAL_EXT, "valueDuration": {"value": 4, "unit": "hours", "code": "h"}}],
            "doseAndRate": [{"doseQuantity": {"value": 2, "unit": "tablet"}}],
            "maxDosePerPeriod": {"numerator": {"value": 8, "unit": "tablet"}, "denominator": {"value": 24, "unit": "hours", "code": "h"}}}),
        14 => json!({"timing": {"event": [event], "repeat": {"count": 1}},
            "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}]}),
        _ => {
            json!({"timing": {"repeat": {"timeOfDay": TIMES[med % 4], "period": 1, "periodUnit": "d"}},
            "route": {"text": "Oral"},
            "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}]})
        }
    };
    let mut mr = json!({"resourceType": "MedicationRequest", "id": id, "status": "active", "intent": "order",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category", "code": "inpatient"}]}],
        "medicationReference": {"reference": format!("Medication/{med_id}")},
        "subject": {"reference": format!("Patient/{patient}")},
        "encounter": {"reference": format!("Encounter/{encounter}")},
        "authoredOn": start,
        "extension": [{"url": SIGNATURE_EXT, "extension": [
            {"url": "by", "valueReference": {"reference": "Practitioner/bench-dr"}},
            {"url": "at", "valueDateTime": start}]}],
        "dispenseRequest": {"validityPeriod": {"start": start}},
        "dosageInstruction": [dosage]});
    if med == 11 {
        if let Some(e) = mr["extension"].as_array_mut() {
            e.push(json!({"url": VARIABLE_DOSE_EXT, "valueBoolean": true}));
        }
        mr["dosageInstruction"][0]["doseAndRate"] = json!([{"doseRange": {"low": {"value": 1, "unit": "tablet"}, "high": {"value": 4, "unit": "tablet"}}}]);
    }
    mr
}

pub fn run(a: MarBenchArgs) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let svc = StoreArgs {
        data_dir: dir.path().to_owned(),
        database: a.database.clone(),
        time_zone: None,
        db_key_file: None,
    }
    .service(ServiceConfig::default())?;
    let op = Trusted::operator("bench-loader");
    let now = OffsetDateTime::now_utc();
    let start = mar::instant_text(now - Duration::days(2));
    // The once-only dose is later today: it stays on the round.
    let event = mar::instant_text(now + Duration::hours(2));
    let mut base = vec![
        loc("bench-site", "Bench site", "si", None),
        loc("bench-ward", "Bench ward", "wa", Some("bench-site")),
        json!({"resourceType": "Practitioner", "id": "bench-dr", "name": [{"family": "Prescriber"}]}),
        json!({"resourceType": "Practitioner", "id": "bench-n1", "name": [{"family": "Nurse", "given": ["One"]}]}),
        json!({"resourceType": "Practitioner", "id": "bench-n2", "name": [{"family": "Nurse", "given": ["Two"]}]}),
    ];
    for b in 0..5 {
        base.push(loc(
            &format!("bench-bay-{b}"),
            &format!("Bay {b}"),
            "ro",
            Some("bench-ward"),
        ));
    }
    let mut tx = svc.begin(&op)?;
    for r in base {
        tx.save(r)?;
    }
    tx.commit()?;
    // The demo's starter formulary; 15 of its medicines, the second
    // time-critical and the third a controlled drug.
    formulary::import(&svc, &op, wardline_demo::FORMULARY, "formulary.csv")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let f = formulary::load(&svc)?;
    let plain: Vec<&str> = f
        .entries
        .iter()
        .filter(|e| e.active && !e.time_critical && e.controlled_drug.is_none())
        .map(|e| e.id.as_str())
        .take(13)
        .collect();
    let tc = f
        .entries
        .iter()
        .find(|e| e.time_critical)
        .map(|e| e.id.as_str());
    let cd = f
        .entries
        .iter()
        .find(|e| e.needs_witness())
        .map(|e| e.id.as_str());
    let (Some(tc), Some(cd), true) = (tc, cd, plain.len() == 13) else {
        anyhow::bail!("the starter formulary lacks the medicines the bench needs");
    };
    let meds: Vec<&str> = [plain[0], tc, cd]
        .into_iter()
        .chain(plain[1..].iter().copied())
        .collect();
    let loading = Instant::now();
    for p in 0..a.patients {
        let (pid, eid, bed) = (
            format!("bench-p{p}"),
            format!("bench-e{p}"),
            format!("bench-bed-{p}"),
        );
        let mut tx = svc.begin(&op)?;
        tx.save(loc(
            &bed,
            &format!("Bed {p}"),
            "bd",
            Some(&format!("bench-bay-{}", p % 5)),
        ))?;
        tx.save(json!({"resourceType": "Patient", "id": pid, "active": true,
            "name": [{"use": "official", "family": format!("Bench{p}"), "given": ["Pat"]}], "gender": if p % 2 == 0 { "female" } else { "male" }}))?;
        tx.save(json!({"resourceType": "Encounter", "id": eid, "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": format!("Patient/{pid}")}, "period": {"start": start},
            "location": [{"location": {"reference": format!("Location/{bed}")}, "status": "active", "period": {"start": start}}]}))?;
        for m in 0..a.prescriptions {
            tx.save(prescription(
                &format!("bench-mr-{p}-{m}"),
                &pid,
                &eid,
                m % 15,
                meds[m % 15],
                &start,
                &event,
            ))?;
        }
        tx.commit()?;
        // Two days of doses: every scheduled dose before now given (one in
        // ten omitted), and as-required doses twice a day.
        let nurse = Trusted::new(Agent {
            name: "bench-n1".into(),
            who: Some("Practitioner/bench-n1".into()),
            ..Agent::default()
        });
        let witness = Trusted::new(Agent {
            name: "bench-n2".into(),
            who: Some("Practitioner/bench-n2".into()),
            ..Agent::default()
        });
        let mut tx = svc.begin(&nurse)?;
        for m in 0..a.prescriptions {
            let id = format!("bench-mr-{p}-{m}");
            let Some(mr) = tx.get("MedicationRequest", &id)? else {
                continue;
            };
            let slots = mar::schedule::slots(
                &mr,
                svc.time_zone(),
                now - Duration::days(2),
                now - Duration::hours(1),
            );
            for (k, s) in slots.iter().enumerate() {
                let r = if (k + m) % 10 == 9 {
                    mar::omit_in(
                        &mut tx,
                        &Omit {
                            request: id.clone(),
                            slot: s.at,
                            reason: "refused".into(),
                            note: None,
                        },
                        s.at,
                    )
                } else {
                    let g = Give {
                        request: id.clone(),
                        slot: Some(s.at),
                        dose: (m % 15 == 11).then_some(2.0),
                        given_at: Some(s.at + Duration::minutes(5)),
                        ..Give::default()
                    };
                    let w = (m % 15 == 2).then_some(&witness as &dyn wardline_core::Access);
                    mar::give_in(&mut tx, &g, w, s.at + Duration::minutes(5))
                };
                r.map_err(|e| anyhow::anyhow!("{id}: {e}"))?;
            }
            if matches!(m % 15, 12 | 13) {
                for h in [30, 18, 6] {
                    let t = now - Duration::hours(h);
                    mar::give_in(
                        &mut tx,
                        &Give {
                            request: id.clone(),
                            given_at: Some(t),
                            ..Give::default()
                        },
                        None,
                        t,
                    )
                    .map_err(|e| anyhow::anyhow!("{id}: {e}"))?;
                }
            }
        }
        tx.commit()?;
    }
    println!(
        "mar [{}]: ward of {} patients × {} prescriptions loaded in {:.1} s",
        svc.backend(),
        a.patients,
        a.prescriptions,
        loading.elapsed().as_secs_f64()
    );
    let nurse = Trusted::new(Agent {
        name: "bench-n1".into(),
        who: Some("Practitioner/bench-n1".into()),
        ..Agent::default()
    });
    // Warm up, and check the page is whole.
    let r = mar::drug_round(
        &svc,
        &nurse,
        "bench-ward",
        now,
        Duration::hours(12),
        Duration::hours(4),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let rxs: usize = r.patients.iter().map(|p| p.prescriptions.len()).sum();
    anyhow::ensure!(
        r.patients.len() == a.patients && rxs == a.patients * a.prescriptions,
        "the round shows {} patients, {rxs} prescriptions",
        r.patients.len()
    );
    let mut times: Vec<StdDuration> = Vec::with_capacity(a.repeat);
    for _ in 0..a.repeat {
        let t = Instant::now();
        let r = mar::drug_round(
            &svc,
            &nurse,
            "bench-ward",
            now,
            Duration::hours(12),
            Duration::hours(4),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        times.push(t.elapsed());
        std::hint::black_box(r);
    }
    times.sort();
    println!(
        "mar [{}]: drug round ({} patients × {} prescriptions, {} runs): min {:.1} ms, p50 {:.1} ms, p99 {:.1} ms",
        svc.backend(),
        a.patients,
        a.prescriptions,
        a.repeat,
        crate::bench::percentile(&times, 0.0),
        crate::bench::percentile(&times, 0.5),
        crate::bench::percentile(&times, 0.99),
    );
    Ok(())
}
