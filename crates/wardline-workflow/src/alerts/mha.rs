//! Mental Health Act 1983 detentions: the section, its legal clock and the
//! reminders before it expires.
//!
//! # The legal clock (one home: [`legal_expiry`])
//!
//! From the Act's text (legislation.gov.uk, Mental Health Act 1983 as
//! amended; the Code of Practice for England 2015 and the Reference Guide
//! repeat it). The quotations of s2(4), s5(2) and s5(4) were checked word for
//! word against published copies of the Act (mentalhealthlaw.co.uk's
//! consolidated text; a trust's s5(4) policy quoting the subsection); those of
//! s4(4), s20 and s135/s136 are the Act's periods as the Code of Practice
//! states them, not yet checked against the consolidated text — a trust's
//! Mental Health Act administrator confirms them before go-live (H-273):
//!
//! | Section | The Act | Expiry computed |
//! |---|---|---|
//! | 2 | s2(4): "a period not exceeding 28 days beginning with the day on which he is admitted" | the start of the local day 28 days after the day of admission (admitted 1 March at any hour: lapses at 00:00 on 29 March, the end of 28 March) |
//! | 3 | s20(1): "a period not exceeding six months beginning with the day on which he was admitted"; renewed (s20(2)) for six months, then a year at a time | the start of the local day six calendar months on (1 March → 00:00 on 1 September); each renewal runs on from the last expiry |
//! | 4 | s4(4): "72 hours from the time when he is so admitted" | start + 72 h |
//! | 5(2) | s5(2): "a period of 72 hours from the time when the report is so furnished" | start + 72 h (10:00 → 10:00 three days later) |
//! | 5(4) | s5(4): "a period of six hours from the time when that fact is so recorded" | start + 6 h |
//! | 135, 136 | s135(3ZA), s136(2A) (Policing and Crime Act 2017): 24 hours from arrival at the place of safety | start + 24 h (the 12-hour extension is a new record) |
//!
//! "Beginning with the day" counts the day of admission as the first day,
//! whatever the hour (the local day in the trust's time zone,
//! `Tx::time_zone`). Six months from a day the later month does not have
//! (31 August → "31 February") is clamped to the month's last day (28 or 29
//! February): never later than the Act allows.
//!
//! # Regrading and renewal
//!
//! * 5(4) → 5(2): the 72 hours run from when the nurse's holding power was
//!   recorded (s5(4)), so the start is carried over.
//! * 4 → 2 (the second medical recommendation, s4(4)(a)): the 28 days
//!   begin with the day of admission under section 4: start carried over.
//! * 5(2), 5(4), 135, 136 → 2 or 3; 2 → 3: a new detention starting at the
//!   regrade; the earlier Flag ends (`inactive`) and the new one names it
//!   in `previous`.
//! * Renewal (section 3 only): `renewals` + 1, the expiry recomputed.
//!
//! # Reminders (one home: [`reminder_lead`])
//!
//! A reminder `Task` is raised once the clock is within the lead time of
//! the expiry: sections 2 and 3 24 hours before, 4 and 5(2) 12 hours, 135
//! and 136 4 hours, 5(4) 2 hours — long enough for the assessment or
//! renewal to be arranged in working hours, short enough not to be noise.
//! [`raise_reminders`] runs every minute in `serve` and as `wardline
//! alerts remind --now …` (how a test moves the clock); it raises one Task
//! per detention and expiry, priority `urgent` (`asap` once the expiry has
//! passed), owner the responsible clinician when recorded, else the ward.
//!
//! The Flag's [`MHA_EXT`] sub-extensions: `section` (`valueCoding`,
//! [`MHA_SECTION_SYSTEM`]), `start` and `expiry` (`valueDateTime`),
//! `renewals` (`valueInteger`), `responsibleClinician` (Practitioner),
//! `ward` (Location), `previous` (the Flag it was regraded from). The
//! write rule ([`super::rule`]) refuses an expiry other than the computed
//! one on every channel (hazard H-273).

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::{Access, FhirService, Tx};

use super::{
    ALERT_SYSTEM, AlertsError, FlagKind, MHA_EXPIRY_TASK, MHA_EXT, MHA_SECTION_SYSTEM,
    TASK_KIND_SYSTEM, begin, end_flag, fhir_time, flag_in, instant, ms_of, new_flag, parse_ms,
    patient_in, sub, sub_text,
};

const HOUR_MS: i64 = 3_600_000;

/// A section of the Mental Health Act 1983 that detains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Section {
    S2,
    S3,
    S4,
    S5_2,
    S5_4,
    S135,
    S136,
}

impl Section {
    pub const ALL: [Section; 7] = [
        Section::S2,
        Section::S3,
        Section::S4,
        Section::S5_2,
        Section::S5_4,
        Section::S135,
        Section::S136,
    ];

    /// The code ([`MHA_SECTION_SYSTEM`]).
    pub fn code(self) -> &'static str {
        match self {
            Section::S2 => "2",
            Section::S3 => "3",
            Section::S4 => "4",
            Section::S5_2 => "5(2)",
            Section::S5_4 => "5(4)",
            Section::S135 => "135",
            Section::S136 => "136",
        }
    }

    pub fn parse(code: &str) -> Option<Section> {
        Section::ALL.into_iter().find(|s| s.code() == code.trim())
    }

    /// "Section 5(2)".
    pub fn label(self) -> String {
        format!("Section {}", self.code())
    }

    /// What the section is, in words.
    pub fn what(self) -> &'static str {
        match self {
            Section::S2 => "admission for assessment (28 days)",
            Section::S3 => "admission for treatment (6 months)",
            Section::S4 => "emergency admission (72 hours)",
            Section::S5_2 => "doctor's holding power (72 hours)",
            Section::S5_4 => "nurse's holding power (6 hours)",
            Section::S135 => "warrant to a place of safety (24 hours)",
            Section::S136 => "removal to a place of safety (24 hours)",
        }
    }
}

/// The trust's zone as jiff reads it (UTC if the name is unknown to it,
/// which `LocalZone::named` already refuses).
pub fn zone_of(z: &wardline_fhir::datetime::LocalZone) -> jiff::tz::TimeZone {
    jiff::tz::db()
        .get(z.name())
        .unwrap_or(jiff::tz::TimeZone::UTC)
}

/// An instant on the trust's wall clock: "5 March 2026 10:00".
pub fn local_text(ms: i64, zone: &jiff::tz::TimeZone) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => zone.to_datetime(ts).strftime("%-d %B %Y %H:%M").to_string(),
        Err(_) => instant(ms),
    }
}

/// The start (ms) of the local day `months` calendar months after the
/// local day of `ms`, or `days` days after it (see the module table).
fn day_after(ms: i64, zone: &jiff::tz::TimeZone, months: i32, days: i32) -> Option<i64> {
    let ts = jiff::Timestamp::from_millisecond(ms).ok()?;
    let date = zone.to_datetime(ts).date();
    let later = date
        .checked_add(jiff::Span::new().months(months))
        .ok()?
        .checked_add(jiff::Span::new().days(days))
        .ok()?;
    // The day's first instant (a gap at midnight: the instant after it).
    let midnight = later.to_datetime(jiff::civil::Time::midnight());
    Some(
        zone.to_ambiguous_timestamp(midnight)
            .compatible()
            .ok()?
            .as_millisecond(),
    )
}

/// The legal expiry (ms) of a detention under `section` that started at
/// `start_ms`, renewed `renewals` times (section 3 only; ignored for the
/// others), with days counted in `zone`. The one home of the rule (see the
/// module documentation); `None` only for an instant out of range.
pub fn legal_expiry(
    section: Section,
    start_ms: i64,
    renewals: u32,
    zone: &jiff::tz::TimeZone,
) -> Option<i64> {
    match section {
        Section::S2 => day_after(start_ms, zone, 0, 28),
        Section::S3 => {
            let mut e = day_after(start_ms, zone, 6, 0)?;
            for n in 0..renewals {
                // The first renewal is for six months, each later one a year,
                // beginning with the day after the last period ended: the
                // day the last expiry instant falls on.
                e = day_after(e, zone, if n == 0 { 6 } else { 12 }, 0)?;
            }
            Some(e)
        }
        Section::S4 | Section::S5_2 => start_ms.checked_add(72 * HOUR_MS),
        Section::S5_4 => start_ms.checked_add(6 * HOUR_MS),
        Section::S135 | Section::S136 => start_ms.checked_add(24 * HOUR_MS),
    }
}

/// How long before the expiry the reminder is raised (ms).
pub fn reminder_lead(section: Section) -> i64 {
    HOUR_MS
        * match section {
            Section::S2 | Section::S3 => 24,
            Section::S4 | Section::S5_2 => 12,
            Section::S135 | Section::S136 => 4,
            Section::S5_4 => 2,
        }
}

/// Whether a detention under `from` may be regraded to `to`, and whether
/// the start is carried over (see the module documentation).
pub fn regrade(from: Section, to: Section) -> Option<bool> {
    use Section as S;
    match (from, to) {
        (S::S5_4, S::S5_2) | (S::S4, S::S2) => Some(true),
        (S::S5_2 | S::S5_4 | S::S135 | S::S136 | S::S4, S::S2 | S::S3) | (S::S2, S::S3) => {
            Some(false)
        }
        _ => None,
    }
}

/// A detention as pages show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detention {
    pub flag: String,
    pub patient: String,
    pub section: Section,
    pub start_ms: i64,
    pub expiry_ms: i64,
    pub renewals: u32,
    pub responsible_clinician: Option<String>,
    pub ward: Option<String>,
    pub active: bool,
}

impl Detention {
    /// A Flag read as a detention (`None` if it is not a well-formed MHA
    /// Flag).
    pub fn of(f: &Value) -> Option<Detention> {
        if FlagKind::of(f) != Some(FlagKind::Mha) {
            return None;
        }
        let section = sub(f, MHA_EXT, "section")
            .and_then(|s| s["valueCoding"]["code"].as_str())
            .and_then(Section::parse)?;
        Some(Detention {
            flag: f["id"].as_str().unwrap_or_default().to_owned(),
            patient: f["subject"]["reference"]
                .as_str()
                .and_then(|r| r.strip_prefix("Patient/"))
                .unwrap_or_default()
                .to_owned(),
            section,
            start_ms: sub_text(f, MHA_EXT, "start").and_then(parse_ms)?,
            expiry_ms: sub_text(f, MHA_EXT, "expiry").and_then(parse_ms)?,
            renewals: sub(f, MHA_EXT, "renewals")
                .and_then(|r| r["valueInteger"].as_u64())
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
            responsible_clinician: sub_text(f, MHA_EXT, "responsibleClinician").map(str::to_owned),
            ward: sub_text(f, MHA_EXT, "ward").map(str::to_owned),
            active: f["status"] == "active",
        })
    }
}

/// What is recorded of a detention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDetention {
    pub section: Section,
    /// When it began (the report furnished, the admission, the arrival).
    pub start: OffsetDateTime,
    /// `Practitioner/…`.
    pub responsible_clinician: Option<String>,
    /// `Location/…` (the ward).
    pub ward: Option<String>,
}

fn mha_ext(
    d: &NewDetention,
    start_ms: i64,
    expiry_ms: i64,
    renewals: u32,
    previous: Option<&str>,
) -> Value {
    let mut subs = vec![
        json!({"url": "section", "valueCoding": {"system": MHA_SECTION_SYSTEM, "code": d.section.code(), "display": d.section.label()}}),
        json!({"url": "start", "valueDateTime": instant(start_ms)}),
        json!({"url": "expiry", "valueDateTime": instant(expiry_ms)}),
        json!({"url": "renewals", "valueInteger": renewals}),
    ];
    if let Some(rc) = &d.responsible_clinician {
        subs.push(json!({"url": "responsibleClinician", "valueReference": {"reference": rc}}));
    }
    if let Some(w) = &d.ward {
        subs.push(json!({"url": "ward", "valueReference": {"reference": w}}));
    }
    if let Some(p) = previous {
        subs.push(json!({"url": "previous", "valueReference": {"reference": format!("Flag/{p}")}}));
    }
    json!({"url": MHA_EXT, "extension": subs})
}

fn check_new(d: &NewDetention, now: OffsetDateTime) -> Result<(), AlertsError> {
    if d.start > now {
        return Err(AlertsError::Invalid(
            "start",
            "The detention cannot start in the future.".into(),
        ));
    }
    if d.responsible_clinician.is_none() && d.ward.is_none() {
        return Err(AlertsError::Invalid(
            "ward",
            "Give the ward (or the responsible clinician): reminders before expiry go to them."
                .into(),
        ));
    }
    Ok(())
}

/// Records a detention for the patient (audited `alerts-mha`); returns the
/// Flag's id.
pub fn record(
    svc: &FhirService,
    access: &dyn Access,
    patient: &str,
    d: &NewDetention,
    now: OffsetDateTime,
) -> Result<String, AlertsError> {
    let mut tx = begin(svc, access, "alerts-mha", "C")?;
    let id = record_in(&mut tx, patient, d, now)?;
    tx.commit()?;
    Ok(id)
}

/// The rule of recording, in `tx`: one detention in force per patient (a
/// change of section is [`regrade_in`]); the expiry computed.
pub fn record_in(
    tx: &mut Tx<'_>,
    patient: &str,
    d: &NewDetention,
    now: OffsetDateTime,
) -> Result<String, AlertsError> {
    check_new(d, now)?;
    tx.lock(&[format!("alerts-mha/{patient}")])?;
    patient_in(tx, patient)?;
    if let Some(f) = super::active_flags_in(tx, patient, FlagKind::Mha)?.first() {
        return Err(AlertsError::Conflict(format!(
            "A detention is already in force (Flag/{}): regrade or end it instead.",
            f["id"].as_str().unwrap_or_default()
        )));
    }
    save_new(tx, patient, d, ms_of(d.start), 0, None)
}

fn save_new(
    tx: &mut Tx<'_>,
    patient: &str,
    d: &NewDetention,
    start_ms: i64,
    renewals: u32,
    previous: Option<&str>,
) -> Result<String, AlertsError> {
    let zone = zone_of(tx.time_zone());
    let expiry = legal_expiry(d.section, start_ms, renewals, &zone)
        .ok_or_else(|| AlertsError::Invalid("start", "The start is out of range.".into()))?;
    let mut f = new_flag(
        FlagKind::Mha,
        patient,
        &format!(
            "Detained: Mental Health Act {}",
            d.section.label().to_lowercase()
        ),
        &instant(start_ms),
    );
    f["extension"] = json!([mha_ext(d, start_ms, expiry, renewals, previous)]);
    if let Some(who) = tx.access().agent().who.clone() {
        f["author"] = json!({"reference": who});
    }
    Ok(tx.save(f)?.id)
}

/// Regrades the detention `flag` to `to` at `at` (audited `alerts-mha`);
/// returns the new Flag's id.
pub fn regrade_to(
    svc: &FhirService,
    access: &dyn Access,
    flag: &str,
    to: Section,
    at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<String, AlertsError> {
    let mut tx = begin(svc, access, "alerts-mha", "U")?;
    let id = regrade_in(&mut tx, flag, to, at, now)?;
    tx.commit()?;
    Ok(id)
}

/// The rule of regrading, in `tx` (see the module documentation).
pub fn regrade_in(
    tx: &mut Tx<'_>,
    flag: &str,
    to: Section,
    at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<String, AlertsError> {
    let mut f = flag_in(tx, flag, FlagKind::Mha)?;
    let d = Detention::of(&f)
        .filter(|d| d.active)
        .ok_or_else(|| AlertsError::Conflict("This detention is no longer in force.".into()))?;
    let carried = regrade(d.section, to).ok_or_else(|| {
        AlertsError::Invalid(
            "section",
            format!(
                "{} cannot be regraded to {}.",
                d.section.label(),
                to.label().to_lowercase()
            ),
        )
    })?;
    if at > now || ms_of(at) < d.start_ms {
        return Err(AlertsError::Invalid(
            "start",
            "The regrade is between the detention's start and now.".into(),
        ));
    }
    tx.lock(&[format!("alerts-mha/{}", d.patient)])?;
    end_flag(&mut f, at, false);
    tx.save(f)?;
    cancel_reminders_in(tx, flag, now)?;
    let nd = NewDetention {
        section: to,
        start: at,
        responsible_clinician: d.responsible_clinician.clone(),
        ward: d.ward.clone(),
    };
    let start = if carried { d.start_ms } else { ms_of(at) };
    save_new(tx, &d.patient, &nd, start, 0, Some(flag))
}

/// Renews a section 3 detention (audited `alerts-mha`).
pub fn renew(
    svc: &FhirService,
    access: &dyn Access,
    flag: &str,
    now: OffsetDateTime,
) -> Result<(), AlertsError> {
    let mut tx = begin(svc, access, "alerts-mha", "U")?;
    renew_in(&mut tx, flag, now)?;
    tx.commit()?;
    Ok(())
}

/// The rule of renewal, in `tx`: section 3 only, before it lapses.
pub fn renew_in(tx: &mut Tx<'_>, flag: &str, now: OffsetDateTime) -> Result<(), AlertsError> {
    let mut f = flag_in(tx, flag, FlagKind::Mha)?;
    let d = Detention::of(&f)
        .filter(|d| d.active)
        .ok_or_else(|| AlertsError::Conflict("This detention is no longer in force.".into()))?;
    if d.section != Section::S3 {
        return Err(AlertsError::Conflict(
            "Only a section 3 detention is renewed.".into(),
        ));
    }
    if ms_of(now) >= d.expiry_ms {
        return Err(AlertsError::Conflict(
            "This detention has lapsed: it cannot be renewed.".into(),
        ));
    }
    let zone = zone_of(tx.time_zone());
    let renewals = d.renewals + 1;
    let expiry = legal_expiry(d.section, d.start_ms, renewals, &zone)
        .ok_or_else(|| AlertsError::Store("The expiry is out of range.".into()))?;
    let nd = NewDetention {
        section: d.section,
        start: now,
        responsible_clinician: d.responsible_clinician,
        ward: d.ward,
    };
    let previous = sub_text(&f, MHA_EXT, "previous")
        .and_then(|p| p.strip_prefix("Flag/"))
        .map(str::to_owned);
    f["extension"] = json!([mha_ext(
        &nd,
        d.start_ms,
        expiry,
        renewals,
        previous.as_deref()
    )]);
    tx.save(f)?;
    cancel_reminders_in(tx, flag, now)?;
    Ok(())
}

/// Ends a detention (discharged from the section, or entered in error);
/// audited `alerts-mha`.
pub fn end(
    svc: &FhirService,
    access: &dyn Access,
    flag: &str,
    in_error: bool,
    now: OffsetDateTime,
) -> Result<(), AlertsError> {
    let mut tx = begin(svc, access, "alerts-mha", "U")?;
    end_in(&mut tx, flag, in_error, now)?;
    tx.commit()?;
    Ok(())
}

/// The rule of ending, in `tx`: the Flag ends, its open reminders are
/// cancelled.
pub fn end_in(
    tx: &mut Tx<'_>,
    flag: &str,
    in_error: bool,
    now: OffsetDateTime,
) -> Result<(), AlertsError> {
    let mut f = flag_in(tx, flag, FlagKind::Mha)?;
    if f["status"] != "active" {
        return Err(AlertsError::Conflict(
            "This detention has already ended.".into(),
        ));
    }
    end_flag(&mut f, now, in_error);
    tx.save(f)?;
    cancel_reminders_in(tx, flag, now)
}

const OPEN_TASK: &str = "requested,received,accepted,ready,in-progress,on-hold";

fn reminders_in(tx: &mut Tx<'_>, flag: &str, open: bool) -> Result<Vec<Value>, AlertsError> {
    let mut q = format!("focus=Flag/{flag}&code={TASK_KIND_SYSTEM}|{MHA_EXPIRY_TASK}");
    if open {
        q.push_str(&format!("&status={OPEN_TASK}"));
    }
    Ok(tx.find("Task", &q)?)
}

fn cancel_reminders_in(
    tx: &mut Tx<'_>,
    flag: &str,
    now: OffsetDateTime,
) -> Result<(), AlertsError> {
    for mut t in reminders_in(tx, flag, true)? {
        t["status"] = json!("cancelled");
        t["statusReason"] = json!({"text": "The detention was ended, regraded or renewed."});
        t["lastModified"] = json!(fhir_time(now));
        tx.save(t)?;
    }
    Ok(())
}

/// How many active detentions one run of [`raise_reminders`] reads.
pub const SCAN_MAX: usize = 1000;

/// Raises the reminder `Task` for each detention in force whose expiry is
/// within its [`reminder_lead`] of `now` and has none yet for that expiry
/// (audited `alerts-reminder`, one transaction per reminder, the Flag
/// locked so two servers raise it once). Returns the Tasks' ids.
pub fn raise_reminders(
    svc: &FhirService,
    access: &dyn Access,
    now: OffsetDateTime,
) -> Result<Vec<String>, AlertsError> {
    let now_ms = ms_of(now);
    let due: Vec<Detention> = {
        let mut tx = begin(svc, access, "alerts-reminder", "R")?;
        let flags = tx.find(
            "Flag",
            &format!("_tag={ALERT_SYSTEM}|mha&_count={SCAN_MAX}"),
        )?;
        tx.commit()?;
        flags
            .iter()
            .filter_map(Detention::of)
            .filter(|d| d.active && now_ms >= d.expiry_ms - reminder_lead(d.section))
            .collect()
    };
    let mut raised = Vec::new();
    for d in due {
        let mut tx = begin(svc, access, "alerts-reminder", "C")?;
        if let Some(id) = remind_in(&mut tx, &d.flag, now)? {
            tx.commit()?;
            raised.push(id);
        }
    }
    Ok(raised)
}

/// The reminder for one detention, in `tx`, if it is due and not yet
/// raised for its current expiry.
pub fn remind_in(
    tx: &mut Tx<'_>,
    flag: &str,
    now: OffsetDateTime,
) -> Result<Option<String>, AlertsError> {
    let f = flag_in(tx, flag, FlagKind::Mha)?;
    let Some(d) = Detention::of(&f).filter(|d| d.active) else {
        return Ok(None);
    };
    let now_ms = ms_of(now);
    if now_ms < d.expiry_ms - reminder_lead(d.section) {
        return Ok(None);
    }
    let expiry = instant(d.expiry_ms);
    let already = reminders_in(tx, flag, false)?.iter().any(|t| {
        t["restriction"]["period"]["end"]
            .as_str()
            .and_then(parse_ms)
            == Some(d.expiry_ms)
    });
    if already {
        return Ok(None);
    }
    let lapsed = now_ms >= d.expiry_ms;
    let owner = d
        .responsible_clinician
        .clone()
        .or_else(|| d.ward.clone())
        .unwrap_or_default();
    let description = if lapsed {
        format!(
            "Mental Health Act {} has expired ({}): the legal authority to detain has lapsed; review the patient now.",
            d.section.label().to_lowercase(),
            expiry
        )
    } else {
        format!(
            "Mental Health Act {} expires at {}: arrange the assessment, regrade or renewal before then.",
            d.section.label().to_lowercase(),
            expiry
        )
    };
    let mut task = json!({
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "priority": if lapsed { "asap" } else { "urgent" },
        "code": {"coding": [{"system": TASK_KIND_SYSTEM, "code": MHA_EXPIRY_TASK, "display": "Mental Health Act section expiring"}]},
        "description": description,
        "focus": {"reference": format!("Flag/{flag}")},
        "for": {"reference": format!("Patient/{}", d.patient)},
        "authoredOn": fhir_time(now),
        "requester": {"display": "Wardline Mental Health Act reminders"},
        "restriction": {"period": {"end": expiry}},
    });
    if !owner.is_empty() {
        task["owner"] = json!({"reference": owner});
    }
    Ok(Some(tx.save(task)?.id))
}

/// The patient's detentions (in force first, then ended, newest first), as
/// `access` may see them.
pub fn of_patient(
    svc: &FhirService,
    access: &dyn Access,
    patient: &str,
) -> Result<Vec<Detention>, AlertsError> {
    let found = svc.search_as(
        access,
        "Flag",
        &[
            ("patient", patient.to_owned()),
            ("_tag", format!("{ALERT_SYSTEM}|mha")),
            ("_count", "200".to_owned()),
        ],
    )?;
    let mut ds: Vec<Detention> = found.resources.iter().filter_map(Detention::of).collect();
    ds.sort_by_key(|d| (!d.active, -d.start_ms));
    Ok(ds)
}

/// The open reminders for the patient's detentions, as `access` may see
/// them.
pub fn open_reminders(
    svc: &FhirService,
    access: &dyn Access,
    patient: &str,
) -> Result<Vec<Value>, AlertsError> {
    Ok(svc
        .search_as(
            access,
            "Task",
            &[
                ("patient", patient.to_owned()),
                ("code", format!("{TASK_KIND_SYSTEM}|{MHA_EXPIRY_TASK}")),
                ("status", OPEN_TASK.to_owned()),
            ],
        )?
        .resources)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn london() -> jiff::tz::TimeZone {
        jiff::tz::db().get("Europe/London").unwrap()
    }

    fn ms(s: &str) -> i64 {
        parse_ms(s).unwrap()
    }

    #[test]
    fn section_5_2_from_10_00_expires_10_00_three_days_later() {
        let z = london();
        assert_eq!(
            legal_expiry(Section::S5_2, ms("2026-03-02T10:00:00Z"), 0, &z),
            Some(ms("2026-03-05T10:00:00Z"))
        );
        // Across the clocks going forward (29 March 2026): 72 real hours.
        assert_eq!(
            legal_expiry(Section::S5_2, ms("2026-03-28T10:00:00Z"), 0, &z),
            Some(ms("2026-03-31T10:00:00Z"))
        );
    }

    #[test]
    fn section_2_is_28_days_beginning_with_the_day_of_admission() {
        let z = london();
        // Admitted at 23:59 or at 00:00 on 1 March: lapses at midnight ending 28 March.
        for t in ["2026-03-01T00:00:00Z", "2026-03-01T23:59:59Z"] {
            assert_eq!(
                legal_expiry(Section::S2, ms(t), 0, &z),
                Some(ms("2026-03-29T00:00:00Z")),
                "{t}"
            );
        }
        // In British Summer Time the local day begins at 23:00 UTC.
        assert_eq!(
            legal_expiry(Section::S2, ms("2026-06-01T00:30:00+01:00"), 0, &z),
            Some(ms("2026-06-29T00:00:00+01:00"))
        );
    }

    #[test]
    fn section_3_is_six_calendar_months_then_renewals() {
        let z = jiff::tz::TimeZone::UTC;
        assert_eq!(
            legal_expiry(Section::S3, ms("2026-03-01T15:00:00Z"), 0, &z),
            Some(ms("2026-09-01T00:00:00Z"))
        );
        // No 31 February: clamped to the month's last day, never later.
        assert_eq!(
            legal_expiry(Section::S3, ms("2026-08-31T09:00:00Z"), 0, &z),
            Some(ms("2027-02-28T00:00:00Z"))
        );
        assert_eq!(
            legal_expiry(Section::S3, ms("2026-03-01T15:00:00Z"), 1, &z),
            Some(ms("2027-03-01T00:00:00Z"))
        );
        assert_eq!(
            legal_expiry(Section::S3, ms("2026-03-01T15:00:00Z"), 2, &z),
            Some(ms("2028-03-01T00:00:00Z"))
        );
    }

    #[test]
    fn hours_sections() {
        let z = london();
        let s = ms("2026-12-01T22:15:00Z");
        assert_eq!(legal_expiry(Section::S4, s, 0, &z), Some(s + 72 * HOUR_MS));
        assert_eq!(legal_expiry(Section::S5_4, s, 0, &z), Some(s + 6 * HOUR_MS));
        assert_eq!(
            legal_expiry(Section::S136, s, 0, &z),
            Some(s + 24 * HOUR_MS)
        );
        assert_eq!(
            legal_expiry(Section::S135, s, 0, &z),
            Some(s + 24 * HOUR_MS)
        );
    }

    #[test]
    fn regrades() {
        assert_eq!(regrade(Section::S5_2, Section::S3), Some(false));
        assert_eq!(regrade(Section::S5_4, Section::S5_2), Some(true));
        assert_eq!(regrade(Section::S4, Section::S2), Some(true));
        assert_eq!(regrade(Section::S2, Section::S3), Some(false));
        assert_eq!(regrade(Section::S3, Section::S2), None);
        assert_eq!(regrade(Section::S5_2, Section::S136), None);
    }

    proptest::proptest! {
        /// Hour-based sections expire exactly their hours after the start;
        /// day-based ones at a local midnight, after the start, and never
        /// later than the Act's last day allows.
        #[test]
        fn expiry_properties(start in 1_600_000_000_000i64..2_000_000_000_000i64) {
            let z = london();
            let e = legal_expiry(Section::S5_2, start, 0, &z).unwrap();
            proptest::prop_assert_eq!(e - start, 72 * HOUR_MS);
            let e2 = legal_expiry(Section::S2, start, 0, &z).unwrap();
            // 27 whole days and part of the first at least; at most 28 days
            // (an hour either way for a clock change).
            proptest::prop_assert!(e2 > start + 27 * 24 * HOUR_MS - HOUR_MS);
            proptest::prop_assert!(e2 <= start + 28 * 24 * HOUR_MS + HOUR_MS);
            let local = z.to_datetime(jiff::Timestamp::from_millisecond(e2).unwrap());
            proptest::prop_assert_eq!(local.time(), jiff::civil::Time::midnight());
            // Six months are 181 to 184 days; less the part of the first
            // day before the start, and an hour for a clock change.
            let e3 = legal_expiry(Section::S3, start, 0, &z).unwrap();
            proptest::prop_assert!(e3 > start + 179 * 24 * HOUR_MS);
            proptest::prop_assert!(e3 <= start + 184 * 24 * HOUR_MS + HOUR_MS);
        }
    }
}
