//! The drug chart and a prescription's detail, as the caller may see them.

use super::*;

// ---------------------------------------------------------------- reading

/// One prescription as the drug chart shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChartLine {
    pub id: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub kind: Kind,
    pub medicine: String,
    /// The formulary `Medication` id.
    pub medicine_id: String,
    /// "1 g", "1–10 mg", "125 mL/h, 1000 mL over 8 h".
    pub dose: String,
    pub route: String,
    /// "08:00, 14:00, 22:00", "as required for pain, at least 4 h apart, at most 8 tablet in 24 h", "once at …".
    pub timing: String,
    pub instructions: Option<String>,
    pub indication: String,
    pub prescriber: Option<String>,
    pub signed_at: Option<String>,
    pub start: Option<String>,
    pub stop: Option<String>,
    pub review: Option<String>,
    /// The review date has come (today or before).
    pub review_due: bool,
    /// `unscreened`, `screened`, `queried` ([`super::screening_status`]).
    pub screening: String,
    pub high_risk: bool,
    pub time_critical: bool,
    /// The controlled-drug schedule.
    pub controlled_drug: Option<String>,
    /// A discharge prescription (TTO).
    pub discharge: bool,
    /// The prescription this one replaced.
    pub prior: Option<String>,
}

impl ChartLine {
    /// The line of a MedicationRequest, with the formulary's flags.
    pub fn of(mr: &Value, formulary: &Formulary, today: Date) -> ChartLine {
        let d = &mr["dosageInstruction"][0];
        let dr = &d["doseAndRate"][0];
        let k = super::super::kind(mr);
        let entry = mr["medicationReference"]["reference"]
            .as_str()
            .and_then(|r| formulary.entry(r));
        let medicine_id = crate::fhir::reference_id(&mr["medicationReference"], "Medication")
            .unwrap_or_default()
            .to_owned();
        let medicine = mr["medicationReference"]["display"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| entry.map(|e| e.name().to_owned()))
            .or_else(|| crate::fhir::concept_text(&mr["medicationCodeableConcept"]))
            .unwrap_or_else(|| "Unnamed medicine".to_owned());
        let dose = match k {
            Kind::VariableDose => match (
                qty_of(&dr["doseRange"]["low"]),
                qty_of(&dr["doseRange"]["high"]),
            ) {
                (Some(lo), Some(hi)) => format!("{}–{} {}", num(lo.value), num(hi.value), hi.unit),
                _ => "Variable".to_owned(),
            },
            Kind::Infusion => {
                let rate = dr["rateQuantity"]["value"].as_f64().unwrap_or(0.0);
                let vol = ext_of(d, INFUSION_VOLUME_EXT)
                    .and_then(|e| e["valueQuantity"]["value"].as_f64());
                let hours = d["timing"]["repeat"]["duration"].as_f64();
                let mut s = String::new();
                if let Some(q) = qty_of(&dr["doseQuantity"]) {
                    s.push_str(&format!("{} in ", qty_text(&q)));
                }
                if let Some(v) = vol {
                    s.push_str(&format!("{} mL ", num(v)));
                }
                s.push_str(&format!("at {} mL/h", num(rate)));
                if let Some(h) = hours {
                    s.push_str(&format!(" over {} h", num(h)));
                }
                s
            }
            _ => qty_of(&dr["doseQuantity"])
                .map(|q| qty_text(&q))
                .or_else(|| d["text"].as_str().map(str::to_owned))
                .unwrap_or_default(),
        };
        let route = crate::fhir::concept_text(&d["route"]).unwrap_or_default();
        let repeat = &d["timing"]["repeat"];
        let times: Vec<&str> = repeat["timeOfDay"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|t| t.get(..5).unwrap_or(t))
            .collect();
        let every = repeat["period"].as_f64().unwrap_or(1.0);
        let times_text = |times: &[&str]| {
            let mut t = times.join(", ");
            if every > 1.0 {
                t.push_str(&format!(" every {} days", num(every)));
            }
            t
        };
        let timing = match k {
            Kind::Regular => times_text(&times),
            Kind::VariableDose => {
                if times.is_empty() {
                    "As directed".to_owned()
                } else {
                    times_text(&times)
                }
            }
            Kind::AsRequired => {
                let mut t = match d["asNeededCodeableConcept"]["text"].as_str() {
                    Some(r) => format!("As required for {r}"),
                    None => "As required".to_owned(),
                };
                if let Some(h) =
                    ext_of(d, MIN_INTERVAL_EXT).and_then(|e| e["valueDuration"]["value"].as_f64())
                {
                    t.push_str(&format!(", at least {} h apart", num(h)));
                }
                if let Some(m) = qty_of(&d["maxDosePerPeriod"]["numerator"]) {
                    t.push_str(&format!(", at most {} in 24 h", qty_text(&m)));
                }
                t
            }
            Kind::OnceOnly => match d["timing"]["event"][0].as_str() {
                Some(at) => format!("Once at {}", when_text(at)),
                None => "Once".to_owned(),
            },
            Kind::Infusion => "Infusion".to_owned(),
        };
        let validity = &mr["dispenseRequest"]["validityPeriod"];
        let review = ext_of(mr, REVIEW_EXT)
            .and_then(|e| e["valueDate"].as_str())
            .map(str::to_owned);
        let status = mr["status"].as_str().unwrap_or("unknown").to_owned();
        let review_due = (status == "active" || status == "on-hold")
            && review
                .as_deref()
                .and_then(parse_date)
                .is_some_and(|r| r <= today);
        let sig = signed(mr);
        ChartLine {
            id: mr["id"].as_str().unwrap_or_default().to_owned(),
            status_reason: crate::fhir::concept_text(&mr["statusReason"]),
            status,
            kind: k,
            medicine,
            medicine_id,
            dose,
            route,
            timing,
            instructions: d["text"].as_str().map(str::to_owned),
            indication: crate::fhir::concept_text(&mr["reasonCode"][0]).unwrap_or_default(),
            prescriber: mr["requester"]["display"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| sig.as_ref().map(|s| s.1.clone())),
            signed_at: sig.map(|s| s.2),
            start: validity["start"].as_str().map(str::to_owned),
            stop: validity["end"].as_str().map(str::to_owned),
            review,
            review_due,
            screening: super::super::screening_status(mr).to_owned(),
            high_risk: entry.is_some_and(|e| e.high_risk),
            time_critical: entry.is_some_and(|e| e.time_critical),
            controlled_drug: entry.and_then(|e| e.controlled_drug.clone()),
            discharge: is_discharge(mr),
            prior: crate::fhir::reference_id(&mr["priorPrescription"], "MedicationRequest")
                .map(str::to_owned),
        }
    }
}

/// An instant as the chart shows it (`2026-12-02 10:00 UTC`), in the text given
/// when it is not one.
pub fn when_text(at: &str) -> String {
    match parse_instant(at) {
        Some(t) => {
            let t = t.to_offset(time::UtcOffset::UTC);
            format!(
                "{} {:02}:{:02} UTC",
                date_text(t.date()),
                t.hour(),
                t.minute()
            )
        }
        None => at.to_owned(),
    }
}

/// The patient's drug chart: current prescriptions by kind, drafts, then
/// the ended ones, as the caller may see them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DrugChart {
    pub regular: Vec<ChartLine>,
    pub as_required: Vec<ChartLine>,
    pub once_only: Vec<ChartLine>,
    pub variable: Vec<ChartLine>,
    pub infusions: Vec<ChartLine>,
    /// Not signed or not released: never given.
    pub drafts: Vec<ChartLine>,
    /// Stopped, completed, cancelled, entered in error (newest first).
    pub ended: Vec<ChartLine>,
    /// Prescriptions the caller may not see (counted, not shown).
    pub withheld: usize,
}

impl DrugChart {
    /// The current sections with their titles, in chart order.
    pub fn sections(&self) -> [(&'static str, &[ChartLine]); 5] {
        [
            (Kind::Regular.label(), &self.regular),
            (Kind::AsRequired.label(), &self.as_required),
            (Kind::OnceOnly.label(), &self.once_only),
            (Kind::VariableDose.label(), &self.variable),
            ("Infusions", &self.infusions),
        ]
    }

    pub fn current(&self) -> impl Iterator<Item = &ChartLine> {
        self.regular
            .iter()
            .chain(&self.as_required)
            .chain(&self.once_only)
            .chain(&self.variable)
            .chain(&self.infusions)
    }
}

/// The patient's drug chart (see [`DrugChart`]), read as the caller
/// (`search_as`, audited).
pub fn drug_chart(
    svc: &FhirService,
    access: &dyn Access,
    patient: &str,
    now: OffsetDateTime,
) -> Result<DrugChart, MedicinesError> {
    let formulary = formulary::load(svc)?;
    let mut found = svc.search_as(
        access,
        "MedicationRequest",
        &[
            ("subject", format!("Patient/{patient}")),
            ("_sort", "-authoredon".to_owned()),
            ("_count", "1000".to_owned()),
        ],
    )?;
    let mut chart = DrugChart {
        withheld: found.withheld,
        ..DrugChart::default()
    };
    let today = now.date();
    found.resources.retain(on_drug_chart);
    for mr in &found.resources {
        let line = ChartLine::of(mr, &formulary, today);
        match line.status.as_str() {
            "active" | "on-hold" => match line.kind {
                Kind::Regular => chart.regular.push(line),
                Kind::AsRequired => chart.as_required.push(line),
                Kind::OnceOnly => chart.once_only.push(line),
                Kind::VariableDose => chart.variable.push(line),
                Kind::Infusion => chart.infusions.push(line),
            },
            "draft" => chart.drafts.push(line),
            _ => chart.ended.push(line),
        }
    }
    for v in [
        &mut chart.regular,
        &mut chart.as_required,
        &mut chart.once_only,
        &mut chart.variable,
        &mut chart.infusions,
    ] {
        v.sort_by_key(|l| l.medicine.to_lowercase());
    }
    Ok(chart)
}

/// One version of a prescription (its history).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Version {
    pub version: i64,
    pub status: String,
    pub status_reason: Option<String>,
    pub at: String,
    pub screening: String,
}

/// An alert gone past at prescribing (a `DetectedIssue`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IssueLine {
    pub id: String,
    pub kind: String,
    pub grade: String,
    pub detail: String,
    pub override_reason: Option<String>,
    pub date: Option<String>,
}

/// A prescription with its history, its alerts and the prescriptions it
/// replaced or was replaced by.
#[derive(Debug, Clone, Serialize)]
pub struct Detail {
    pub patient: String,
    pub line: ChartLine,
    pub versions: Vec<Version>,
    pub issues: Vec<IssueLine>,
    /// Prescriptions that replaced this one (`priorPrescription` → it).
    pub replaced_by: Vec<String>,
    /// The resource itself (for a change form's defaults).
    pub resource: Value,
}

/// A prescription's detail, read as the caller (audited).
pub fn detail(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    now: OffsetDateTime,
) -> Result<Detail, MedicinesError> {
    let formulary = formulary::load(svc)?;
    let mut tx = begin(svc, access, "medicines-prescription", "R")?;
    let mr = tx
        .get("MedicationRequest", id)?
        .ok_or_else(|| MedicinesError::NotFound(format!("There is no prescription {id}.")))?;
    let latest: i64 = mr["meta"]["versionId"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut versions = Vec::new();
    for v in (1..=latest).rev() {
        if let Some(r) = tx.vread("MedicationRequest", id, v)? {
            versions.push(Version {
                version: v,
                status: r["status"].as_str().unwrap_or_default().to_owned(),
                status_reason: crate::fhir::concept_text(&r["statusReason"]),
                at: r["meta"]["lastUpdated"]
                    .as_str()
                    .map(when_text)
                    .unwrap_or_default(),
                screening: super::super::screening_status(&r).to_owned(),
            });
        }
    }
    let issues = tx.find(
        "DetectedIssue",
        &format!("implicated=MedicationRequest/{id}&_count=100"),
    )?;
    let issues = super::super::checks::alerts_among(&issues, id)
        .into_iter()
        .map(|a| IssueLine {
            id: a.id,
            kind: a.kind,
            grade: a.grade,
            detail: a.message,
            override_reason: a.reason,
            date: a.at.as_deref().map(when_text),
        })
        .collect();
    let mut replaced: Vec<String> = Vec::new();
    let patient = crate::fhir::reference_id(&mr["subject"], "Patient")
        .unwrap_or_default()
        .to_owned();
    for other in tx.find(
        "MedicationRequest",
        &format!("subject=Patient/{patient}&_count=1000"),
    )? {
        if crate::fhir::reference_id(&other["priorPrescription"], "MedicationRequest") == Some(id)
            && let Some(o) = other["id"].as_str()
        {
            replaced.push(o.to_owned());
        }
    }
    tx.commit()?;
    Ok(Detail {
        patient,
        line: ChartLine::of(&mr, &formulary, now.date()),
        versions,
        issues,
        replaced_by: replaced,
        resource: mr,
    })
}
