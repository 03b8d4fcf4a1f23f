//! `serve --demo`: a drug round on ward watford-w1 (issue 17, the MAR).
//!
//! For each patient in the ward's beds: a few signed prescriptions from the
//! demo formulary (a regular medicine due this hour, a time-critical one
//! due two hours ago — late —, a controlled drug due this hour, an
//! as-required one given an hour ago, and for some a once-only dose), with
//! yesterday's doses recorded (given, one omission). Times are relative to
//! when the demo is loaded, so the round always has something due,
//! overdue and refused. The prescriptions are written in the medicines
//! model's shape and the doses through `medicines::mar::give_in` /
//! `omit_in`, so they obey the drug round's own rules. This lives in the
//! binary, not `wardline-demo`, because it needs the medicines model and
//! the formulary the demo loads first.

use anyhow::Result;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use wardline_core::{Agent, FhirService, Trusted};
use wardline_workflow::medicines::formulary::{self, Entry, Formulary};
use wardline_workflow::medicines::mar::{self, Give, Omit};
use wardline_workflow::medicines::{
    CATEGORY_SYSTEM, MIN_INTERVAL_EXT, SIGNATURE_EXT, SNOMED_SYSTEM,
};

const WARD: &str = "watford-w1";

fn pick<'a>(f: &'a Formulary, want: impl Fn(&Entry) -> bool, prefer: &[&str]) -> Option<&'a Entry> {
    let ok: Vec<&Entry> = f.entries.iter().filter(|e| e.active && want(e)).collect();
    prefer
        .iter()
        .find_map(|p| {
            ok.iter()
                .find(|e| e.name().to_lowercase().contains(p))
                .copied()
        })
        .or_else(|| ok.first().copied())
}

fn dose_of(e: &Entry) -> (f64, String) {
    match &e.default_dose {
        Some(q) if q.value > 0.0 => (q.value, q.unit.clone()),
        _ => (
            1.0,
            if e.unit_of_dose.is_empty() {
                "dose".to_owned()
            } else {
                e.unit_of_dose.clone()
            },
        ),
    }
}

fn route_of(e: &Entry) -> Value {
    match e.routes.first() {
        Some(r) => {
            json!({"coding": [{"system": SNOMED_SYSTEM, "code": r.code, "display": r.display}], "text": r.display})
        }
        None => json!({"text": "Oral"}),
    }
}

fn hhmm(zone: &wardline_fhir::datetime::LocalZone, t: OffsetDateTime) -> String {
    let (_, hm) = mar::schedule::local(zone, t);
    format!("{hm}:00")
}

#[allow(clippy::too_many_arguments)]
fn prescription(
    id: &str,
    patient: &str,
    encounter: &str,
    prescriber: &str,
    start: &str,
    e: &Entry,
    dosage: Value,
    indication: &str,
) -> Value {
    json!({
        "resourceType": "MedicationRequest", "id": id, "status": "active", "intent": "order",
        "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": "inpatient", "display": "Inpatient"}]}],
        "medicationReference": {"reference": format!("Medication/{}", e.id), "display": e.name()},
        "subject": {"reference": format!("Patient/{patient}")},
        "encounter": {"reference": format!("Encounter/{encounter}")},
        "requester": {"reference": format!("Practitioner/{prescriber}")},
        "authoredOn": start,
        "reasonCode": [{"text": indication}],
        "extension": [{"url": SIGNATURE_EXT, "extension": [
            {"url": "by", "valueReference": {"reference": format!("Practitioner/{prescriber}")}},
            {"url": "at", "valueDateTime": start}]}],
        "dispenseRequest": {"validityPeriod": {"start": start}},
        "dosageInstruction": [dosage],
    })
}

fn regular(e: &Entry, times: &[String]) -> Value {
    let (v, u) = dose_of(e);
    json!({"timing": {"repeat": {"timeOfDay": times, "frequency": times.len(), "period": 1, "periodUnit": "d"}},
        "route": route_of(e), "doseAndRate": [{"doseQuantity": {"value": v, "unit": u}}]})
}

fn seeded_dose(r: Result<String, wardline_workflow::medicines::MedicinesError>) {
    if let Err(e) = r {
        tracing::warn!(error = %e, "a demo dose was not recorded");
    }
}

/// Seeds the drug round once (a store where it was seeded is left alone).
pub fn load(service: &FhirService) -> Result<()> {
    let op = Trusted::operator("demo-loader");
    if service
        .system_reader()
        .read("MedicationRequest", "demo-mar-0-reg")?
        .is_some()
    {
        return Ok(());
    }
    let f = formulary::load(service)?;
    let (Some(prn), Some(tc), Some(cd), Some(reg)) = (
        pick(
            &f,
            |e| !e.time_critical && e.controlled_drug.is_none(),
            &["paracetamol 500mg tablet", "paracetamol"],
        ),
        pick(
            &f,
            |e| e.time_critical,
            &["co-careldopa", "levodopa", "insulin"],
        ),
        pick(&f, Entry::needs_witness, &["morphine", "oxycodone"]),
        pick(
            &f,
            |e| !e.time_critical && e.controlled_drug.is_none() && !e.high_risk,
            &["amlodipine", "omeprazole", "lansoprazole"],
        ),
    ) else {
        tracing::warn!("the demo formulary has no medicines to seed the drug round with");
        return Ok(());
    };
    let board = wardline_workflow::adt::ward_board(service, &op, WARD)
        .map_err(|e| anyhow::anyhow!("demo drug round: {e}"))?;
    let zone = service.time_zone().clone();
    let now = OffsetDateTime::now_utc();
    let hour = now
        .replace_minute(0)?
        .replace_second(0)?
        .replace_nanosecond(0)?;
    let start = mar::instant_text(now - Duration::days(2));
    let nurse = Trusted::new(Agent {
        name: "demo-nurse".into(),
        who: Some("Practitioner/prac-5".into()),
        ..Agent::default()
    });
    let witness = Trusted::new(Agent {
        name: "demo-nurse-2".into(),
        who: Some("Practitioner/prac-7".into()),
        ..Agent::default()
    });
    let mut seeded = 0;
    for (n, (patient, encounter)) in board
        .bays
        .iter()
        .flat_map(|b| &b.beds)
        .filter_map(|b| {
            b.patient
                .as_ref()
                .map(|p| (p.id.clone(), p.encounter_id.clone()))
        })
        .enumerate()
    {
        let id = |k: &str| format!("demo-mar-{n}-{k}");
        let mut rs = vec![
            prescription(
                &id("reg"),
                &patient,
                &encounter,
                "prac-0",
                &start,
                reg,
                regular(
                    reg,
                    &[hhmm(&zone, hour), hhmm(&zone, hour + Duration::hours(12))],
                ),
                "Long-term medicine",
            ),
            prescription(
                &id("tc"),
                &patient,
                &encounter,
                "prac-0",
                &start,
                tc,
                regular(
                    tc,
                    &[
                        hhmm(&zone, hour - Duration::hours(2)),
                        hhmm(&zone, hour + Duration::hours(4)),
                    ],
                ),
                "Time-critical: give on time",
            ),
            {
                let (v, u) = dose_of(prn);
                let mut d = json!({"asNeededCodeableConcept": {"text": "Pain or fever"}, "route": route_of(prn),
                    "extension": [{"url": MIN_INTERVAL_EXT, "valueDuration": {"value": 4, "unit": "hours", "system": "http://unitsofmeasure.org", "code": "h"}}],
                    "doseAndRate": [{"doseQuantity": {"value": v, "unit": u}}],
                    "maxDosePerPeriod": {"numerator": {"value": v * 4.0, "unit": u}, "denominator": {"value": 24, "unit": "hours", "system": "http://unitsofmeasure.org", "code": "h"}}});
                d["text"] = json!("Every 4 hours when required, at most 4 doses in 24 hours");
                prescription(
                    &id("prn"),
                    &patient,
                    &encounter,
                    "prac-0",
                    &start,
                    prn,
                    d,
                    "Pain or fever",
                )
            },
        ];
        if n % 2 == 0 {
            rs.push(prescription(
                &id("cd"),
                &patient,
                &encounter,
                "prac-0",
                &start,
                cd,
                regular(cd, &[hhmm(&zone, hour)]),
                "Pain (controlled drug: witnessed)",
            ));
        }
        let mut tx = service.begin(&op)?;
        tx.set_audit_subtype(
            wardline_core::audit::WARDLINE_SUBTYPE,
            "demo-drug-round",
            "C",
        );
        for r in rs {
            tx.save(r)?;
        }
        tx.commit()?;
        // Yesterday's doses, and an as-required dose an hour ago.
        let at_y = |t: OffsetDateTime| t - Duration::days(1);
        let y_reg = at_y(hour);
        seeded_dose(mar::give(
            service,
            &nurse,
            &Give {
                request: id("reg"),
                slot: Some(y_reg),
                given_at: Some(y_reg + Duration::minutes(10)),
                ..Give::default()
            },
            None,
            y_reg + Duration::minutes(10),
        ));
        let y_tc = at_y(hour - Duration::hours(2));
        if n % 3 == 0 {
            seeded_dose(mar::omit(
                service,
                &nurse,
                &Omit {
                    request: id("tc"),
                    slot: y_tc,
                    reason: "nil-by-mouth".into(),
                    note: Some("Nil by mouth for theatre".into()),
                },
                y_tc + Duration::minutes(5),
            ));
        } else {
            seeded_dose(mar::give(
                service,
                &nurse,
                &Give {
                    request: id("tc"),
                    slot: Some(y_tc),
                    given_at: Some(y_tc + Duration::minutes(5)),
                    ..Give::default()
                },
                None,
                y_tc + Duration::minutes(5),
            ));
        }
        if n % 2 == 0 {
            seeded_dose(mar::give(
                service,
                &nurse,
                &Give {
                    request: id("cd"),
                    slot: Some(y_reg),
                    batch: Some("DEMO-CD-01".into()),
                    given_at: Some(y_reg + Duration::minutes(15)),
                    ..Give::default()
                },
                Some(&witness),
                y_reg + Duration::minutes(15),
            ));
        }
        seeded_dose(mar::give(
            service,
            &nurse,
            &Give {
                request: id("prn"),
                given_at: Some(now - Duration::hours(1)),
                ..Give::default()
            },
            None,
            now,
        ));
        seeded += 1;
    }
    tracing::info!(patients = seeded, ward = WARD, "demo drug round seeded");
    Ok(())
}
