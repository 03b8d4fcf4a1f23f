//! The CP-IS flag and end-of-life preferences (see the model in [`super`]).
//!
//! # CP-IS (Child Protection – Information Sharing)
//!
//! The national service (NHS England, on the Spine) shares that a child is
//! on a **child protection plan** (`CPP`), is a **looked-after child**
//! (`LAC`), or that a pregnant woman's unborn child has an **unborn child
//! protection plan** (`UCPP`, pre-birth), with the plan's start and end
//! dates and the responsible local authority (its ODS code, name and
//! contact numbers, in and out of hours). Wardline keeps it as a `Flag`
//! coded `cpis` (category `safety`), `period` the plan's dates, `author`
//! the local authority (`Organization`, by its ODS identifier and name),
//! and [`CPIS_EXT`] sub-extensions `planType` (`valueCoding`,
//! [`CPIS_PLAN_SYSTEM`]), `localAuthorityOds`, `localAuthorityName`,
//! `localAuthorityPhone`, `outOfHoursPhone` (`valueString`). A plan whose
//! end date has passed still shows (CP-IS keeps ended plans for twelve
//! months) until a professional ends the Flag; the banner says "ended".
//!
//! # End-of-life preferences
//!
//! One `Flag` coded `end-of-life` (category `clinical`) per patient, whose
//! [`EOL_EXT`] sub-extensions hold `preferredPlaceOfCare`,
//! `preferredPlaceOfDeath` (`valueString`), `resuscitation` (`valueCode`:
//! `dnacpr` — do not attempt CPR, `for-cpr`, or `not-recorded`),
//! `respect` (`valueBoolean`: a ReSPECT form is completed),
//! `decisionDate` (`valueDate`), `decidedBy` (`valueString`: the senior
//! clinician who made the resuscitation decision), `lpaName` and
//! `lpaContact` (`valueString`: the attorney under a lasting power of
//! attorney for health and welfare). Recording again replaces the
//! preferences (a new version of the same Flag: the history keeps the
//! earlier ones). A DNACPR decision without its date and who decided is
//! refused.

use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::{Access, FhirService, Tx};

use super::{
    AlertsError, CPIS_EXT, CPIS_PLAN_SYSTEM, EOL_EXT, FlagKind, active_flags_in, begin, end_flag,
    fhir_time, flag_in, new_flag, patient_in, sub, sub_text,
};

/// A CP-IS plan type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanType {
    ChildProtectionPlan,
    LookedAfterChild,
    UnbornChildProtectionPlan,
}

impl PlanType {
    pub const ALL: [PlanType; 3] = [
        PlanType::ChildProtectionPlan,
        PlanType::LookedAfterChild,
        PlanType::UnbornChildProtectionPlan,
    ];

    pub fn code(self) -> &'static str {
        match self {
            PlanType::ChildProtectionPlan => "CPP",
            PlanType::LookedAfterChild => "LAC",
            PlanType::UnbornChildProtectionPlan => "UCPP",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            PlanType::ChildProtectionPlan => "Child protection plan",
            PlanType::LookedAfterChild => "Looked-after child",
            PlanType::UnbornChildProtectionPlan => "Unborn child protection plan",
        }
    }

    pub fn parse(code: &str) -> Option<PlanType> {
        PlanType::ALL.into_iter().find(|p| p.code() == code.trim())
    }
}

/// What is recorded of a CP-IS flag.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewCpis {
    pub plan_type: String,
    /// `YYYY-MM-DD`.
    pub start: String,
    /// `YYYY-MM-DD`, when known.
    pub end: Option<String>,
    pub la_ods: String,
    pub la_name: String,
    pub la_phone: String,
    pub out_of_hours_phone: Option<String>,
}

fn date(s: &str, field: &'static str, what: &str) -> Result<String, AlertsError> {
    let s = s.trim();
    if s.len() == 10 && wardline_fhir::datetime::parse_range(s).is_some() {
        Ok(s.to_owned())
    } else {
        Err(AlertsError::Invalid(
            field,
            format!("Enter {what} as a date (YYYY-MM-DD)."),
        ))
    }
}

fn required<'a>(s: &'a str, field: &'static str, what: &str) -> Result<&'a str, AlertsError> {
    let s = s.trim();
    if s.is_empty() {
        Err(AlertsError::Invalid(field, format!("Enter {what}.")))
    } else {
        Ok(s)
    }
}

/// Whether a string is an ODS organisation code (letters and digits, 3 to
/// 6 of them: a local authority's is e.g. `E09000033`'s ODS twin `A31`…
/// — the national codes are short alphanumerics; anything else is refused).
fn ods(s: &str) -> bool {
    (3..=10).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Records a CP-IS flag (audited `alerts-cpis`); returns the Flag's id.
pub fn record_cpis(
    svc: &FhirService,
    access: &dyn Access,
    patient: &str,
    c: &NewCpis,
) -> Result<String, AlertsError> {
    let mut tx = begin(svc, access, "alerts-cpis", "C")?;
    let id = record_cpis_in(&mut tx, patient, c)?;
    tx.commit()?;
    Ok(id)
}

/// The rule of recording a CP-IS flag, in `tx`.
pub fn record_cpis_in(tx: &mut Tx<'_>, patient: &str, c: &NewCpis) -> Result<String, AlertsError> {
    let plan = PlanType::parse(&c.plan_type).ok_or_else(|| {
        AlertsError::Invalid(
            "plan_type",
            "Choose the plan type: child protection plan, looked-after child or unborn child protection plan.".into(),
        )
    })?;
    let start = date(&c.start, "start", "the plan's start date")?;
    let end = match c.end.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
        Some(e) => Some(date(e, "end", "the plan's end date")?),
        None => None,
    };
    if end.as_deref().is_some_and(|e| e < start.as_str()) {
        return Err(AlertsError::Invalid(
            "end",
            "The plan's end date is before its start.".into(),
        ));
    }
    let la_ods = required(&c.la_ods, "la_ods", "the local authority's ODS code")?.to_uppercase();
    if !ods(&la_ods) {
        return Err(AlertsError::Invalid(
            "la_ods",
            "The local authority's ODS code is letters and digits only.".into(),
        ));
    }
    let la_name = required(&c.la_name, "la_name", "the local authority's name")?;
    let la_phone = required(
        &c.la_phone,
        "la_phone",
        "the local authority's contact number",
    )?;
    tx.lock(&[format!("alerts-cpis/{patient}")])?;
    patient_in(tx, patient)?;
    let mut f = new_flag(
        FlagKind::Cpis,
        patient,
        &format!("CP-IS: {}", plan.label()),
        &start,
    );
    if let Some(e) = &end {
        f["period"]["end"] = json!(e);
    }
    f["author"] = json!({
        "identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": la_ods},
        "display": la_name,
    });
    let mut subs = vec![
        json!({"url": "planType", "valueCoding": {"system": CPIS_PLAN_SYSTEM, "code": plan.code(), "display": plan.label()}}),
        json!({"url": "localAuthorityOds", "valueString": la_ods}),
        json!({"url": "localAuthorityName", "valueString": la_name}),
        json!({"url": "localAuthorityPhone", "valueString": la_phone}),
    ];
    if let Some(o) = c
        .out_of_hours_phone
        .as_deref()
        .map(str::trim)
        .filter(|o| !o.is_empty())
    {
        subs.push(json!({"url": "outOfHoursPhone", "valueString": o}));
    }
    f["extension"] = json!([{"url": CPIS_EXT, "extension": subs}]);
    Ok(tx.save(f)?.id)
}

/// A CP-IS flag as the banner and the alerts page show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Cpis {
    pub flag: String,
    pub plan: String,
    pub plan_code: String,
    pub start: Option<String>,
    pub end: Option<String>,
    pub la_name: String,
    pub la_ods: String,
    pub la_phone: String,
    pub out_of_hours_phone: Option<String>,
    pub active: bool,
}

impl Cpis {
    pub fn of(f: &Value) -> Option<Cpis> {
        if FlagKind::of(f) != Some(FlagKind::Cpis) {
            return None;
        }
        let s = |p: &str| sub_text(f, CPIS_EXT, p).map(str::to_owned);
        let plan_code = sub(f, CPIS_EXT, "planType")
            .and_then(|p| p["valueCoding"]["code"].as_str())
            .unwrap_or_default()
            .to_owned();
        Some(Cpis {
            flag: f["id"].as_str().unwrap_or_default().to_owned(),
            plan: PlanType::parse(&plan_code)
                .map(|p| p.label().to_owned())
                .unwrap_or_else(|| "Child protection".into()),
            plan_code,
            start: f["period"]["start"].as_str().map(str::to_owned),
            end: f["period"]["end"].as_str().map(str::to_owned),
            la_name: s("localAuthorityName")
                .or_else(|| f["author"]["display"].as_str().map(str::to_owned))
                .unwrap_or_default(),
            la_ods: s("localAuthorityOds").unwrap_or_default(),
            la_phone: s("localAuthorityPhone").unwrap_or_default(),
            out_of_hours_phone: s("outOfHoursPhone"),
            active: f["status"] == "active",
        })
    }
}

/// Ends an alert Flag of `kind` (CP-IS or end-of-life), or marks it entered
/// in error (audited `alerts-cpis` / `alerts-eol`).
pub fn end(
    svc: &FhirService,
    access: &dyn Access,
    kind: FlagKind,
    flag: &str,
    in_error: bool,
    now: OffsetDateTime,
) -> Result<(), AlertsError> {
    let what = if kind == FlagKind::Cpis {
        "alerts-cpis"
    } else {
        "alerts-eol"
    };
    let mut tx = begin(svc, access, what, "U")?;
    end_in(&mut tx, kind, flag, in_error, now)?;
    tx.commit()?;
    Ok(())
}

/// The rule of ending, in `tx` (MHA detentions end through `mha::end_in`,
/// which also cancels their reminders).
pub fn end_in(
    tx: &mut Tx<'_>,
    kind: FlagKind,
    flag: &str,
    in_error: bool,
    now: OffsetDateTime,
) -> Result<(), AlertsError> {
    if kind == FlagKind::Mha {
        return super::mha::end_in(tx, flag, in_error, now);
    }
    let mut f = flag_in(tx, flag, kind)?;
    if f["status"] != "active" {
        return Err(AlertsError::Conflict(
            "This alert has already ended.".into(),
        ));
    }
    let keep_end = kind == FlagKind::Cpis && f["period"]["end"].is_string();
    let plan_end = f["period"]["end"].clone();
    end_flag(&mut f, now, in_error);
    if keep_end && !in_error {
        // A CP-IS plan's own end date stays the period's end.
        f["period"]["end"] = plan_end;
    }
    tx.save(f)?;
    Ok(())
}

/// Resuscitation status (`resuscitation` of [`EOL_EXT`]).
pub const RESUSCITATION: [(&str, &str); 3] = [
    ("dnacpr", "Do not attempt CPR (DNACPR)"),
    ("for-cpr", "For CPR"),
    ("not-recorded", "No decision recorded"),
];

/// What is recorded of end-of-life preferences.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndOfLife {
    pub preferred_place_of_care: Option<String>,
    pub preferred_place_of_death: Option<String>,
    /// A code of [`RESUSCITATION`].
    pub resuscitation: String,
    pub respect: bool,
    /// `YYYY-MM-DD`.
    pub decision_date: Option<String>,
    pub decided_by: Option<String>,
    pub lpa_name: Option<String>,
    pub lpa_contact: Option<String>,
}

impl EndOfLife {
    /// The preferences a Flag holds.
    pub fn of(f: &Value) -> Option<(String, bool, EndOfLife)> {
        if FlagKind::of(f) != Some(FlagKind::EndOfLife) {
            return None;
        }
        let s = |p: &str| sub_text(f, EOL_EXT, p).map(str::to_owned);
        Some((
            f["id"].as_str().unwrap_or_default().to_owned(),
            f["status"] == "active",
            EndOfLife {
                preferred_place_of_care: s("preferredPlaceOfCare"),
                preferred_place_of_death: s("preferredPlaceOfDeath"),
                resuscitation: s("resuscitation").unwrap_or_else(|| "not-recorded".into()),
                respect: sub(f, EOL_EXT, "respect").is_some_and(|r| r["valueBoolean"] == true),
                decision_date: s("decisionDate"),
                decided_by: s("decidedBy"),
                lpa_name: s("lpaName"),
                lpa_contact: s("lpaContact"),
            },
        ))
    }

    /// The resuscitation status in words.
    pub fn resuscitation_label(&self) -> &'static str {
        RESUSCITATION
            .iter()
            .find(|(c, _)| *c == self.resuscitation)
            .map_or("No decision recorded", |(_, l)| l)
    }
}

/// Records (or replaces) the patient's end-of-life preferences (audited
/// `alerts-eol`); returns the Flag's id.
pub fn record_end_of_life(
    svc: &FhirService,
    access: &dyn Access,
    patient: &str,
    e: &EndOfLife,
    now: OffsetDateTime,
) -> Result<String, AlertsError> {
    let mut tx = begin(svc, access, "alerts-eol", "U")?;
    let id = record_end_of_life_in(&mut tx, patient, e, now)?;
    tx.commit()?;
    Ok(id)
}

/// The rule of recording end-of-life preferences, in `tx`.
pub fn record_end_of_life_in(
    tx: &mut Tx<'_>,
    patient: &str,
    e: &EndOfLife,
    now: OffsetDateTime,
) -> Result<String, AlertsError> {
    let text = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    if !RESUSCITATION.iter().any(|(c, _)| *c == e.resuscitation) {
        return Err(AlertsError::Invalid(
            "resuscitation",
            "Choose the resuscitation decision.".into(),
        ));
    }
    let decision_date = match text(&e.decision_date) {
        Some(d) => Some(date(&d, "decision_date", "the date of the decision")?),
        None => None,
    };
    let decided_by = text(&e.decided_by);
    if e.resuscitation == "dnacpr" {
        if decision_date.is_none() {
            return Err(AlertsError::Invalid(
                "decision_date",
                "Enter the date of the DNACPR decision.".into(),
            ));
        }
        if decided_by.is_none() {
            return Err(AlertsError::Invalid(
                "decided_by",
                "Enter who made the DNACPR decision.".into(),
            ));
        }
    }
    let lpa_name = text(&e.lpa_name);
    let lpa_contact = text(&e.lpa_contact);
    if lpa_name.is_some() && lpa_contact.is_none() {
        return Err(AlertsError::Invalid(
            "lpa_contact",
            "Enter how to contact the attorney.".into(),
        ));
    }
    tx.lock(&[format!("alerts-eol/{patient}")])?;
    patient_in(tx, patient)?;
    let mut f = match active_flags_in(tx, patient, FlagKind::EndOfLife)?
        .into_iter()
        .next()
    {
        Some(f) => f,
        None => new_flag(
            FlagKind::EndOfLife,
            patient,
            "End-of-life care preferences",
            &fhir_time(now),
        ),
    };
    let mut subs = vec![
        json!({"url": "resuscitation", "valueCode": e.resuscitation}),
        json!({"url": "respect", "valueBoolean": e.respect}),
    ];
    let mut push = |url: &str, v: Option<String>, kind: &str| {
        if let Some(v) = v {
            subs.push(json!({"url": url, kind: v}));
        }
    };
    push(
        "preferredPlaceOfCare",
        text(&e.preferred_place_of_care),
        "valueString",
    );
    push(
        "preferredPlaceOfDeath",
        text(&e.preferred_place_of_death),
        "valueString",
    );
    push("decisionDate", decision_date, "valueDate");
    push("decidedBy", decided_by, "valueString");
    push("lpaName", lpa_name, "valueString");
    push("lpaContact", lpa_contact, "valueString");
    f["extension"] = json!([{"url": EOL_EXT, "extension": subs}]);
    let display = if e.resuscitation == "dnacpr" {
        "End of life: DNACPR"
    } else {
        "End-of-life care preferences"
    };
    f["code"]["text"] = json!(display);
    if let Some(who) = tx.access().agent().who.clone() {
        f["author"] = json!({"reference": who});
    }
    Ok(tx.save(f)?.id)
}
