//! KPIs over forms: e.g. "falls risk assessed within 6 hours of admission".
//!
//! * **A KPI** is a `Measure` (`status` `active`, `url`, `title`) with
//!   [`KPI_EXT`]: what counts — `form` (a form's url, any version: a
//!   completed or amended response to it) or `code` (an Observation with
//!   that code, e.g. one extracted from a form) — the `anchor` (`admission`)
//!   and the `window` (a `Duration` in hours).
//! * **The admissions** of a period are the inpatient `Encounter`s (ADT's
//!   classes) whose `period.start` is in `[from, to)`, not
//!   `entered-in-error`, `cancelled` or `planned`; each belongs to the ward
//!   it was admitted to (the ward of its first bed).
//! * **Met**: the patient has what counts, made (`authored`, or the
//!   Observation's `effective`) from the admission to the end of the window,
//!   inclusive, and about this admission when it names one. **Pending**: not
//!   met and the window is still open at `now`. The rate is met over
//!   admissions whose window has closed or which were met.
//! * The figures are the trust's: read as the operator `forms-kpis`
//!   (audited as such), since a rate must count every admission, not those
//!   the viewer may see; the caller must be allowed to search encounters.
//!   No patient is named.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, Tx};

use super::{FormsError, KPI_EXT};
use crate::orders::request::fhir_time;

/// A KPI, read from its Measure.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Kpi {
    pub id: String,
    pub title: String,
    /// The form's url (any version counts).
    pub form: Option<String>,
    /// `(system, code)` of an Observation that counts.
    pub code: Option<(String, String)>,
    pub window_hours: i64,
}

fn part<'a>(m: &'a Value, name: &str) -> Option<&'a Value> {
    m["extension"]
        .as_array()?
        .iter()
        .find(|e| e["url"] == KPI_EXT)?["extension"]
        .as_array()?
        .iter()
        .find(|s| s["url"] == name)
}

/// The KPI a Measure defines, if it is one.
pub fn kpi_of(m: &Value) -> Option<Kpi> {
    let window = part(m, "window")?["valueDuration"].clone();
    let value = window["value"].as_f64()?;
    let hours = match window["code"].as_str().or(window["unit"].as_str()) {
        Some("h") => value,
        Some("min") => value / 60.0,
        Some("d") => value * 24.0,
        _ => return None,
    };
    if part(m, "anchor").and_then(|a| a["valueCode"].as_str()) != Some("admission") {
        return None;
    }
    let form = part(m, "form")
        .and_then(|f| f["valueCanonical"].as_str())
        .map(|u| u.split('|').next().unwrap_or(u).to_owned());
    let code = part(m, "code").and_then(|c| {
        let c = &c["valueCoding"];
        Some((
            c["system"].as_str().unwrap_or_default().to_owned(),
            c["code"].as_str()?.to_owned(),
        ))
    });
    if form.is_none() && code.is_none() {
        return None;
    }
    Some(Kpi {
        id: m["id"].as_str().unwrap_or_default().to_owned(),
        title: m["title"].as_str().unwrap_or("KPI").to_owned(),
        form,
        code,
        window_hours: hours.round() as i64,
    })
}

/// One ward's figures (or the trust's).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Figure {
    pub ward_id: String,
    pub ward: String,
    pub admissions: usize,
    pub met: usize,
    /// Not met, window still open.
    pub pending: usize,
}

impl Figure {
    /// Admissions whose window has closed, or which were met.
    pub fn due(&self) -> usize {
        self.admissions - self.pending
    }

    /// The completion rate, percent (`None` when none is due).
    pub fn percent(&self) -> Option<u32> {
        let due = self.due();
        (due > 0).then(|| ((self.met * 100 + due / 2) / due) as u32)
    }
}

/// A KPI's figures for a period.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub kpi: Kpi,
    pub total: Figure,
    pub wards: Vec<Figure>,
}

/// The active KPIs, by title.
pub fn kpis_in(tx: &mut Tx<'_>) -> Result<Vec<Kpi>, FormsError> {
    let mut out: Vec<Kpi> = tx
        .find("Measure", "status=active&_count=1000")?
        .iter()
        .filter_map(kpi_of)
        .collect();
    out.sort_by(|a, b| a.title.cmp(&b.title));
    Ok(out)
}

fn ms(s: &str) -> Option<i64> {
    wardline_fhir::datetime::parse_range(s).map(|r| r.0)
}

fn ms_of(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// An admission of the period.
#[derive(Debug, Clone)]
struct Admission {
    encounter: String,
    patient: String,
    start: i64,
    ward_id: String,
    ward: String,
}

fn admissions_in(
    tx: &mut Tx<'_>,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Vec<Admission>, FormsError> {
    let found = crate::adt::search_all(
        &*tx,
        "Encounter",
        &[
            ("date", format!("ge{}", fhir_time(from))),
            ("date", format!("lt{}", fhir_time(to))),
        ],
    )
    .map_err(|e| FormsError::Store(e.message))?;
    let (from_ms, to_ms) = (ms_of(from), ms_of(to));
    let mut wards: HashMap<String, Option<(String, String)>> = HashMap::new();
    let mut out = Vec::new();
    for r in &found {
        let enc = crate::adt::json_of(r).map_err(|e| FormsError::Store(e.message))?;
        if !crate::adt::is_inpatient(&enc)
            || matches!(
                enc["status"].as_str(),
                Some("entered-in-error" | "cancelled" | "planned") | None
            )
        {
            continue;
        }
        let Some(start) = enc["period"]["start"].as_str().and_then(ms) else {
            continue;
        };
        if start < from_ms || start >= to_ms {
            continue;
        }
        let first = enc["location"].as_array().and_then(|l| l.first());
        let loc = first
            .and_then(|l| crate::fhir::reference_id(&l["location"], "Location"))
            .map(str::to_owned);
        let ward = match &loc {
            Some(id) => match wards.get(id) {
                Some(w) => w.clone(),
                None => {
                    let w =
                        crate::adt::ward_of(&*tx, id).map_err(|e| FormsError::Store(e.message))?;
                    wards.insert(id.clone(), w.clone());
                    w
                }
            },
            None => None,
        };
        let (ward_id, ward) = ward.unwrap_or_else(|| {
            (
                String::new(),
                first
                    .and_then(|l| l["location"]["display"].as_str())
                    .unwrap_or("No ward recorded")
                    .to_owned(),
            )
        });
        out.push(Admission {
            encounter: format!("Encounter/{}", r.id),
            patient: enc["subject"]["reference"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            start,
            ward_id,
            ward,
        });
    }
    Ok(out)
}

/// Whether what `kpi` counts was done for `a` within its window.
fn met(tx: &mut Tx<'_>, kpi: &Kpi, a: &Admission) -> Result<bool, FormsError> {
    let end = a.start + kpi.window_hours * 3_600_000;
    let about_this = |r: &Value| {
        r["encounter"]["reference"]
            .as_str()
            .is_none_or(|e| e == a.encounter)
    };
    let within = |t: Option<&str>| t.and_then(ms).is_some_and(|t| t >= a.start && t <= end);
    if let Some(url) = &kpi.form {
        let qrs = tx.find(
            "QuestionnaireResponse",
            &format!("subject={}&status=completed,amended&_count=1000", a.patient),
        )?;
        if qrs.iter().any(|qr| {
            let c = qr["questionnaire"].as_str().unwrap_or_default();
            (c == url
                || c.strip_prefix(url.as_str())
                    .is_some_and(|v| v.starts_with('|')))
                && about_this(qr)
                && within(qr["authored"].as_str())
        }) {
            return Ok(true);
        }
    }
    if let Some((system, code)) = &kpi.code {
        let token = if system.is_empty() {
            code.clone()
        } else {
            format!("{system}|{code}")
        };
        let obs = tx.find(
            "Observation",
            &format!(
                "subject={}&code={token}&status=final,amended,corrected&_count=1000",
                a.patient
            ),
        )?;
        if obs.iter().any(|o| {
            about_this(o)
                && within(
                    o["effectiveDateTime"]
                        .as_str()
                        .or(o["effectivePeriod"]["start"].as_str()),
                )
        }) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The figures of every active KPI for admissions in `[from, to)`, as at
/// `now`, in `tx`.
pub fn report_in(
    tx: &mut Tx<'_>,
    from: OffsetDateTime,
    to: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<Vec<Report>, FormsError> {
    let kpis = kpis_in(tx)?;
    let admissions = admissions_in(tx, from, to)?;
    let now_ms = ms_of(now);
    let mut out = Vec::new();
    for kpi in kpis {
        let mut by_ward: BTreeMap<(String, String), Figure> = BTreeMap::new();
        for a in &admissions {
            let done = met(tx, &kpi, a)?;
            let open = now_ms <= a.start + kpi.window_hours * 3_600_000;
            let f = by_ward
                .entry((a.ward.clone(), a.ward_id.clone()))
                .or_insert_with(|| Figure {
                    ward_id: a.ward_id.clone(),
                    ward: a.ward.clone(),
                    ..Figure::default()
                });
            f.admissions += 1;
            if done {
                f.met += 1;
            } else if open {
                f.pending += 1;
            }
        }
        let wards: Vec<Figure> = by_ward.into_values().collect();
        let total = Figure {
            ward_id: String::new(),
            ward: "All wards".into(),
            admissions: wards.iter().map(|w| w.admissions).sum(),
            met: wards.iter().map(|w| w.met).sum(),
            pending: wards.iter().map(|w| w.pending).sum(),
        };
        out.push(Report { kpi, total, wards });
    }
    Ok(out)
}

/// [`report_in`] as the trust's figures (see the module documentation).
pub fn report(
    svc: &FhirService,
    access: &dyn Access,
    from: OffsetDateTime,
    to: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<Vec<Report>, FormsError> {
    access.check_type(wardline_core::Op::Search, Some("Encounter"))?;
    let system = wardline_core::Trusted::operator("forms-kpis");
    let mut tx = svc.begin(&system)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "forms-kpis", "R");
    let out = report_in(&mut tx, from, to, now)?;
    tx.commit()?;
    Ok(out)
}

/// A KPI as an administrator defines it on the KPI page.
#[derive(Debug, Clone, Default)]
pub struct KpiDraft {
    pub title: String,
    /// The form's canonical url (any version of it counts).
    pub form: String,
    /// The window after admission, in hours (1 to 720).
    pub window_hours: String,
}

/// Defines a KPI: an active `Measure` with [`KPI_EXT`] (anchored at
/// admission), as the caller, who must be allowed to write it (the
/// trust's catalogue and forms managers: `wardline-auth`'s rule for
/// `Measure`). Refused, naming the field: no title, a form that is not an
/// active form, a window that is not a whole number of hours from 1 to 720,
/// or an active KPI with the same title. Returns its id.
pub fn define(
    svc: &FhirService,
    access: &dyn Access,
    d: &KpiDraft,
    now: OffsetDateTime,
) -> Result<String, FormsError> {
    let title = d.title.trim();
    if title.is_empty() {
        return Err(FormsError::Item(
            "title".into(),
            "Enter what the KPI measures.".into(),
        ));
    }
    let hours = d
        .window_hours
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|h| (1..=720).contains(h))
        .ok_or_else(|| {
            FormsError::Item(
                "window".into(),
                "Enter the window as a whole number of hours from 1 to 720.".into(),
            )
        })?;
    let form = d.form.trim();
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "forms-kpi-define", "C");
    tx.lock(&["forms-kpi"])?;
    let active_form = !form.is_empty()
        && tx
            .find("Questionnaire", &format!("url={form}&status=active"))?
            .iter()
            .any(super::is_form);
    if !active_form {
        return Err(FormsError::Item(
            "form".into(),
            "Choose the active form whose completion the KPI counts.".into(),
        ));
    }
    if kpis_in(&mut tx)?.iter().any(|k| k.title == title) {
        return Err(FormsError::Item(
            "title".into(),
            format!("A KPI called \"{title}\" is defined already."),
        ));
    }
    let saved = tx.save(serde_json::json!({
        "resourceType": "Measure",
        "status": "active",
        "title": title,
        "date": fhir_time(now),
        "extension": [{"url": KPI_EXT, "extension": [
            {"url": "form", "valueCanonical": form},
            {"url": "anchor", "valueCode": "admission"},
            {"url": "window", "valueDuration": {"value": hours, "unit": "h",
                "system": "http://unitsofmeasure.org", "code": "h"}},
        ]}],
    }))?;
    tx.commit()?;
    Ok(saved.id)
}

/// Retires a KPI (`Measure.status` `retired`): no longer reported; its
/// history stays.
pub fn retire(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    now: OffsetDateTime,
) -> Result<(), FormsError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "forms-kpi-retire", "U");
    tx.lock(&["forms-kpi"])?;
    let mut m = tx
        .get("Measure", id)?
        .filter(|m| kpi_of(m).is_some())
        .ok_or_else(|| FormsError::NotFound(format!("There is no KPI {id}.")))?;
    if m["status"] != "active" {
        return Err(FormsError::Conflict("This KPI is retired already.".into()));
    }
    m["status"] = serde_json::json!("retired");
    m["date"] = serde_json::json!(fhir_time(now));
    tx.save(m)?;
    tx.commit()?;
    Ok(())
}

/// The active KPIs (their definitions, without figures), for those who may
/// read `Measure` (every member of staff).
pub fn list(svc: &FhirService, access: &dyn Access) -> Result<Vec<Kpi>, FormsError> {
    let mut tx = svc.begin(access)?;
    let out = kpis_in(&mut tx)?;
    tx.commit()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_measure_reads_as_a_kpi() {
        let m = json!({"id": "k", "title": "Falls", "extension": [{"url": KPI_EXT, "extension": [
            {"url": "form", "valueCanonical": "https://x/forms/falls|2"},
            {"url": "anchor", "valueCode": "admission"},
            {"url": "window", "valueDuration": {"value": 6, "unit": "h", "code": "h"}}]}]});
        let k = kpi_of(&m).unwrap();
        assert_eq!(k.form.as_deref(), Some("https://x/forms/falls"));
        assert_eq!(k.window_hours, 6);
        assert!(kpi_of(&json!({"id": "m"})).is_none());
        let f = Figure {
            admissions: 4,
            met: 2,
            pending: 1,
            ..Figure::default()
        };
        assert_eq!(f.percent(), Some(67));
    }
}
