//! Clinic templates (`Schedule`) and their slots (`Slot`).
//!
//! A template says when a clinic runs (weekdays, session start and end in
//! the trust's local time, slot length, valid from/to) and what it offers
//! (specialty, new or follow-up, face to face or virtual); see the model in
//! [`super`]. [`generate_in`] makes its slots for a date range: one per
//! slot length that fits wholly in the session, on each of its weekdays
//! within both the range and the template's validity. Each slot carries the
//! identifier `{schedule}/{start}` ([`super::SLOT_ID_SYSTEM`]), and
//! generation locks the Schedule and skips the starts that already have a
//! slot: generating twice creates nothing the second time, and two people
//! generating at once make one set.
//!
//! Only a holder of `ManageAppointments` writes `Schedule` and `Slot` (the
//! RBAC table); audit subtype `outpatients-template`.

use serde::Serialize;
use serde_json::{Value, json};
use time::{Date, Time, Weekday};
use wardline_core::{Access, FhirService, Tx};

use super::{
    Kind, MODE_EXT, Mode, OutpatientsError, SLOT_ID_SYSTEM, SPECIALTY_SYSTEM, TEMPLATE_EXT, begin,
    ext, sub,
};
use crate::fhir::{concept_text, reference_id};

/// A clinic template, as the pages edit it.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// The Schedule's id (none before it is saved).
    pub id: Option<String>,
    pub name: String,
    /// `Practitioner` id of the consultant.
    pub consultant: String,
    /// `Location` id of the clinic.
    pub location: String,
    /// Treatment function code and its name.
    pub specialty: String,
    pub specialty_name: String,
    pub weekdays: Vec<Weekday>,
    pub start: Time,
    pub end: Time,
    pub slot_minutes: u16,
    pub kind: Kind,
    pub mode: Mode,
    pub valid_from: Date,
    pub valid_to: Option<Date>,
}

const DAYS: [(Weekday, &str); 7] = [
    (Weekday::Monday, "mon"),
    (Weekday::Tuesday, "tue"),
    (Weekday::Wednesday, "wed"),
    (Weekday::Thursday, "thu"),
    (Weekday::Friday, "fri"),
    (Weekday::Saturday, "sat"),
    (Weekday::Sunday, "sun"),
];

/// The code of a weekday (`mon` … `sun`).
pub fn day_code(d: Weekday) -> &'static str {
    DAYS.iter().find(|(w, _)| *w == d).map_or("mon", |(_, c)| c)
}

/// The weekday of a code.
pub fn day_of(code: &str) -> Option<Weekday> {
    DAYS.iter().find(|(_, c)| *c == code).map(|(w, _)| *w)
}

/// `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<Date> {
    Date::parse(
        s.trim(),
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()
}

/// `HH:MM` or `HH:MM:SS`.
pub fn parse_time(s: &str) -> Option<Time> {
    let s = s.trim();
    Time::parse(
        s,
        time::macros::format_description!("[hour]:[minute]:[second]"),
    )
    .or_else(|_| Time::parse(s, time::macros::format_description!("[hour]:[minute]")))
    .ok()
}

fn time_text(t: Time) -> String {
    format!("{:02}:{:02}:00", t.hour(), t.minute())
}

/// The date as FHIR writes it.
pub fn date_text(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

impl Template {
    /// Refuses a template that makes no sense, naming the field.
    pub fn check(&self) -> Result<(), OutpatientsError> {
        let bad = |f: &str, m: &str| Err(OutpatientsError::invalid(f, m));
        if self.name.trim().is_empty() {
            return bad("name", "Enter the clinic's name.");
        }
        if self.consultant.trim().is_empty() {
            return bad("consultant", "Choose the consultant.");
        }
        if self.location.trim().is_empty() {
            return bad("location", "Choose where the clinic is held.");
        }
        if self.specialty.trim().is_empty() {
            return bad(
                "specialty",
                "Enter the specialty (treatment function code).",
            );
        }
        if self.weekdays.is_empty() {
            return bad("weekdays", "Choose at least one day of the week.");
        }
        if self.end <= self.start {
            return bad("end", "The session must end after it starts.");
        }
        if !(5..=240).contains(&self.slot_minutes) {
            return bad(
                "slot-minutes",
                "Slot length must be between 5 and 240 minutes.",
            );
        }
        if (self.end - self.start).whole_minutes() < i64::from(self.slot_minutes) {
            return bad("slot-minutes", "The session is shorter than one slot.");
        }
        if self.valid_to.is_some_and(|t| t < self.valid_from) {
            return bad(
                "valid-to",
                "The template must end on or after its first day.",
            );
        }
        Ok(())
    }

    /// The template as a `Schedule`.
    pub fn to_schedule(&self) -> Value {
        let mut subs: Vec<Value> = self
            .weekdays
            .iter()
            .map(|d| json!({"url": "weekday", "valueCode": day_code(*d)}))
            .collect();
        subs.extend([
            json!({"url": "sessionStart", "valueTime": time_text(self.start)}),
            json!({"url": "sessionEnd", "valueTime": time_text(self.end)}),
            json!({"url": "slotMinutes", "valueInteger": self.slot_minutes}),
            json!({"url": "kind", "valueCode": self.kind.code()}),
            json!({"url": "mode", "valueCode": self.mode.code()}),
        ]);
        let mut horizon = json!({"start": date_text(self.valid_from)});
        if let Some(t) = self.valid_to {
            horizon["end"] = json!(date_text(t));
        }
        let mut s = json!({
            "resourceType": "Schedule",
            "active": true,
            "comment": self.name.trim(),
            "serviceType": [self.service_type()],
            "actor": [
                {"reference": format!("Practitioner/{}", self.consultant.trim())},
                {"reference": format!("Location/{}", self.location.trim())}
            ],
            "planningHorizon": horizon,
            "extension": [{"url": TEMPLATE_EXT, "extension": subs}],
        });
        if let Some(id) = &self.id {
            s["id"] = json!(id);
        }
        s
    }

    fn service_type(&self) -> Value {
        let name = if self.specialty_name.trim().is_empty() {
            self.specialty.trim()
        } else {
            self.specialty_name.trim()
        };
        json!({"coding": [{"system": SPECIALTY_SYSTEM, "code": self.specialty.trim(),
            "display": name}], "text": name})
    }

    /// The template a `Schedule` holds; `None` for a Schedule that is not one.
    pub fn of(s: &Value) -> Option<Template> {
        ext(s, TEMPLATE_EXT)?;
        let part = |p: &str| sub(s, TEMPLATE_EXT, p);
        let actor = |t: &str| {
            s["actor"]
                .as_array()?
                .iter()
                .find_map(|a| reference_id(a, t))
                .map(str::to_owned)
        };
        let st = &s["serviceType"][0];
        let coding = st["coding"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["system"] == SPECIALTY_SYSTEM));
        Some(Template {
            id: s["id"].as_str().map(str::to_owned),
            name: s["comment"].as_str().unwrap_or_default().to_owned(),
            consultant: actor("Practitioner").unwrap_or_default(),
            location: actor("Location").unwrap_or_default(),
            specialty: coding
                .and_then(|c| c["code"].as_str())
                .unwrap_or_default()
                .to_owned(),
            specialty_name: concept_text(st).unwrap_or_default(),
            weekdays: ext(s, TEMPLATE_EXT)?["extension"]
                .as_array()?
                .iter()
                .filter(|e| e["url"] == "weekday")
                .filter_map(|e| day_of(e["valueCode"].as_str()?))
                .collect(),
            start: parse_time(part("sessionStart")?["valueTime"].as_str()?)?,
            end: parse_time(part("sessionEnd")?["valueTime"].as_str()?)?,
            slot_minutes: u16::try_from(part("slotMinutes")?["valueInteger"].as_u64()?).ok()?,
            kind: Kind::parse(part("kind")?["valueCode"].as_str()?)?,
            mode: Mode::parse(part("mode")?["valueCode"].as_str()?)?,
            valid_from: parse_date(s["planningHorizon"]["start"].as_str()?)?,
            valid_to: s["planningHorizon"]["end"].as_str().and_then(parse_date),
        })
    }
}

/// Saves (creates, or replaces by id) a template; returns the Schedule id.
pub fn save_template(
    svc: &FhirService,
    access: &dyn Access,
    t: &Template,
) -> Result<String, OutpatientsError> {
    let mut tx = begin(svc, access, "outpatients-template", "U")?;
    let id = save_template_in(&mut tx, t)?;
    tx.commit()?;
    Ok(id)
}

/// The rule of saving a template, in `tx`: it must make sense
/// ([`Template::check`]) and name a consultant and a clinic that exist.
pub fn save_template_in(tx: &mut Tx<'_>, t: &Template) -> Result<String, OutpatientsError> {
    t.check()?;
    if tx.get("Practitioner", t.consultant.trim())?.is_none() {
        return Err(OutpatientsError::invalid(
            "consultant",
            format!("There is no consultant Practitioner/{}.", t.consultant),
        ));
    }
    if tx.get("Location", t.location.trim())?.is_none() {
        return Err(OutpatientsError::invalid(
            "location",
            format!("There is no clinic Location/{}.", t.location),
        ));
    }
    if let Some(id) = &t.id {
        tx.lock(&[format!("Schedule/{id}")])?;
    }
    Ok(tx.save(t.to_schedule())?.id)
}

/// The slots' starts and ends (UTC ms) of `t` on `day`, in the trust's zone.
fn day_slots(
    t: &Template,
    day: Date,
    zone: &wardline_fhir::datetime::LocalZone,
) -> Vec<(i64, i64)> {
    let mins = |tm: Time| i64::from(tm.hour()) * 60 + i64::from(tm.minute());
    let (first, last, len) = (mins(t.start), mins(t.end), i64::from(t.slot_minutes));
    let local = |m: i64| {
        wardline_fhir::datetime::parse_range_in(
            &format!("{}T{:02}:{:02}:00", date_text(day), m / 60, m % 60),
            zone,
        )
        .map(|r| r.0)
    };
    let mut out = Vec::new();
    let mut at = first;
    while len > 0 && at + len <= last {
        if let (Some(a), Some(b)) = (local(at), local(at + len)) {
            out.push((a, b));
        }
        at += len;
    }
    out
}

/// Generates the slots of template `schedule` for the days `from..=to`;
/// returns how many were created (none for days that already have them).
pub fn generate(
    svc: &FhirService,
    access: &dyn Access,
    schedule: &str,
    from: Date,
    to: Date,
) -> Result<usize, OutpatientsError> {
    let mut tx = begin(svc, access, "outpatients-template", "C")?;
    let n = generate_in(&mut tx, schedule, from, to)?;
    tx.commit()?;
    Ok(n)
}

/// The rule of generating slots, in `tx` (see the module documentation).
pub fn generate_in(
    tx: &mut Tx<'_>,
    schedule: &str,
    from: Date,
    to: Date,
) -> Result<usize, OutpatientsError> {
    if to < from {
        return Err(OutpatientsError::invalid(
            "to",
            "The last day must be on or after the first.",
        ));
    }
    if (to - from).whole_days() > 366 {
        return Err(OutpatientsError::invalid(
            "to",
            "Generate at most a year of slots at a time.",
        ));
    }
    tx.lock(&[format!("Schedule/{schedule}")])?;
    let s = tx
        .get("Schedule", schedule)?
        .ok_or_else(|| OutpatientsError::NotFound(format!("There is no clinic {schedule}.")))?;
    let t = Template::of(&s).ok_or_else(|| {
        OutpatientsError::Conflict(format!(
            "Schedule/{schedule} is not a clinic template: it has no session times."
        ))
    })?;
    let zone = tx.time_zone().clone();
    let first = from.max(t.valid_from);
    let last = t.valid_to.map_or(to, |v| v.min(to));
    if last < first {
        return Ok(0);
    }
    let existing: std::collections::HashSet<String> = crate::fhir::search_all(
        &*tx,
        "Slot",
        &[("schedule", format!("Schedule/{schedule}"))],
    )?
    .iter()
    .filter_map(|sl| {
        sl["identifier"]
            .as_array()?
            .iter()
            .find(|i| i["system"] == SLOT_ID_SYSTEM)?["value"]
            .as_str()
            .map(str::to_owned)
    })
    .collect();
    let mut made = 0;
    let mut day = first;
    while day <= last {
        if t.weekdays.contains(&day.weekday()) {
            for (a, b) in day_slots(&t, day, &zone) {
                let start = super::instant_of(a);
                let key = format!("{schedule}/{start}");
                if existing.contains(&key) {
                    continue;
                }
                tx.save(json!({
                    "resourceType": "Slot",
                    "identifier": [
                        {"system": SLOT_ID_SYSTEM, "value": key},
                        {"system": super::SLOT_AT_SYSTEM, "value": format!("{}/{start}", t.location)}
                    ],
                    "schedule": {"reference": format!("Schedule/{schedule}")},
                    "status": "free",
                    "start": start,
                    "end": super::instant_of(b),
                    "serviceType": s["serviceType"].clone(),
                    "appointmentType": t.kind.concept(),
                    "extension": [{"url": MODE_EXT, "valueCode": t.mode.code()}],
                }))?;
                made += 1;
            }
        }
        let Some(next) = day.next_day() else { break };
        day = next;
    }
    Ok(made)
}

/// The clinic templates the caller may see, by name.
pub fn templates(
    svc: &FhirService,
    access: &dyn Access,
) -> Result<Vec<Template>, OutpatientsError> {
    let found = crate::fhir::search_as_all(svc, access, "Schedule", &[("active", "true".into())])?;
    let mut out: Vec<Template> = found.resources.iter().filter_map(Template::of).collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// One slot of a clinic, as its page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SlotView {
    pub id: String,
    pub start: String,
    pub end: String,
    pub status: String,
    pub kind: Option<Kind>,
    pub mode: Mode,
}

impl SlotView {
    pub fn of(s: &Value) -> SlotView {
        SlotView {
            id: s["id"].as_str().unwrap_or_default().to_owned(),
            start: s["start"].as_str().unwrap_or_default().to_owned(),
            end: s["end"].as_str().unwrap_or_default().to_owned(),
            status: s["status"].as_str().unwrap_or_default().to_owned(),
            kind: Kind::of(s),
            mode: Mode::of(s),
        }
    }
}

/// The slots of clinic `schedule` starting on local day `day`, in time order.
pub fn slots_on(
    svc: &FhirService,
    access: &dyn Access,
    schedule: &str,
    day: Date,
) -> Result<Vec<SlotView>, OutpatientsError> {
    let found = crate::fhir::search_as_all(
        svc,
        access,
        "Slot",
        &[
            ("schedule", format!("Schedule/{schedule}")),
            ("start", date_text(day)),
        ],
    )?;
    let mut v: Vec<SlotView> = found.resources.iter().map(SlotView::of).collect();
    v.sort_by(|a, b| a.start.cmp(&b.start));
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, time};

    fn t() -> Template {
        Template {
            id: None,
            name: "Mr Lister's new patient clinic".into(),
            consultant: "c1".into(),
            location: "opd".into(),
            specialty: "100".into(),
            specialty_name: "General Surgery".into(),
            weekdays: vec![Weekday::Monday, Weekday::Thursday],
            start: time!(09:00),
            end: time!(10:10),
            slot_minutes: 20,
            kind: Kind::New,
            mode: Mode::FaceToFace,
            valid_from: date!(2026 - 12 - 01),
            valid_to: Some(date!(2027 - 03 - 31)),
        }
    }

    #[test]
    fn a_template_round_trips_through_its_schedule() {
        let mut s = t().to_schedule();
        s["id"] = json!("s1");
        let back = Template::of(&s).unwrap();
        assert_eq!(
            back,
            Template {
                id: Some("s1".into()),
                ..t()
            }
        );
    }

    #[test]
    fn only_whole_slots_fit_in_the_session_in_local_time() {
        // 7 December 2026 is a Monday in GMT; 6 July 2026 in BST.
        let z = wardline_fhir::datetime::LocalZone::london();
        let w = day_slots(&t(), date!(2026 - 12 - 07), &z);
        assert_eq!(
            w.len(),
            3,
            "09:00, 09:20, 09:40; 10:00–10:20 overruns 10:10"
        );
        assert_eq!(
            crate::outpatients::instant_of(w[0].0),
            "2026-12-07T09:00:00Z"
        );
        let s = day_slots(&t(), date!(2026 - 07 - 06), &z);
        assert_eq!(
            crate::outpatients::instant_of(s[0].0),
            "2026-07-06T08:00:00Z"
        );
    }

    #[test]
    fn a_senseless_template_names_its_field() {
        let e = Template {
            end: time!(08:00),
            ..t()
        }
        .check()
        .unwrap_err();
        assert_eq!(e.field(), Some("end"));
        let e = Template {
            weekdays: vec![],
            ..t()
        }
        .check()
        .unwrap_err();
        assert_eq!(e.field(), Some("weekdays"));
        assert!(t().check().is_ok());
    }
}
