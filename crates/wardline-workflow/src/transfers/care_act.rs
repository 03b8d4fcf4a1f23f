//! Social care (issue 18): the Care Act assessment and discharge notices to
//! the local authority, sent over the transfers routes and tracked against
//! their statutory timescales.
//!
//! # The law, and what it is today
//!
//! Schedule 3 to the Care Act 2014 and the Care and Support (Discharge of
//! Hospital Patients) Regulations 2014 required an NHS body to give the
//! local authority an **assessment notice** for a patient not likely to be
//! safe to discharge without care and support, then a **discharge notice**
//! of the proposed discharge day, and to withdraw either when it no longer
//! stood. The Health and Care Act 2022 (s. 91) omitted Schedule 3 from
//! 1 July 2022 and the regulations went with it: in England the notices
//! are no longer statutory (discharge follows the "discharge to assess"
//! guidance). Wardline builds them as issue 18 asks, for trusts and local
//! authorities that still exchange them by agreement, with the timescales
//! in one table the trust sets ([`timescales::Timescales`]).
//!
//! # The model (FHIR R4; no second schema)
//!
//! * **A notice** is a `DocumentReference` of `type` [`NOTICE_SYSTEM`]
//!   `assessment` | `discharge` | `withdrawal`, `subject` the patient,
//!   `context.encounter` the admission, `date` when given, one attachment:
//!   a FHIR document `Bundle` (`Bundle/{id}`) whose `Composition` carries
//!   the statutory content as narrative (patient, NHS number, hospital and
//!   ward, the expected discharge day, consultation and objection,
//!   NHS continuing healthcare considered, the hospital's contact). The
//!   same facts are sub-extensions of [`NOTICE_EXT`] for the worklist:
//!   `localAuthority`, `ward`, `dischargeDay`, `givenDay`, `earliestDischarge`,
//!   `latestDischargeNotice`, `consulted`, `objection`, `chc`, `contact`,
//!   `overrideReason`, `withdraws`.
//! * **Its delivery** is the transfers delivery ([`super::queue_in`],
//!   [`super::Kind::CareActAssessment`] / [`super::Kind::CareActDischarge`]; a
//!   withdrawal goes as the kind of the notice it withdraws) to the local
//!   authority's `Organization` (type [`ORG_KIND_SYSTEM`] `local-authority`)
//!   over its `Endpoint`s, MESH or email ([`super::routing`]).
//! * **Tracking** ([`raise_overdue_in`], the clock injected, run by the
//!   transfers job): a notice whose delivery is not `completed` within
//!   [`timescales::Timescales::acknowledge_within`] raises a Task
//!   [`UNACKNOWLEDGED_CODE`]; an assessment notice in force with an
//!   expected discharge day and no discharge notice raises a Task
//!   [`DISCHARGE_NOTICE_DUE_CODE`] from `discharge_notice_warning` before
//!   the latest time. Both carry `location` the ward (the ward's social-care
//!   worklist, [`worklist`]) and close themselves when resolved.

pub mod timescales;
pub mod tracking;

use tracking::close_tasks_in;
pub use tracking::{Case, Row, case, raise_overdue, raise_overdue_in, worklist};

use jiff::civil::Date;
use serde::Serialize;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, Tx};
use wardline_fhir::FhirError;

use self::timescales::{Timescales, parse_day};
use super::{KIND_SYSTEM, Kind, Outgoing, TransfersError, fhir_time, kind_of, parse_ms};
use crate::documents::discharge::Patient;
use crate::fhir::reference_id;

/// `DocumentReference.type` of the notices.
pub const NOTICE_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/care-act-notice";
/// A notice's facts (sub-extensions, see the module documentation).
pub const NOTICE_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/care-act-notice";
/// `Organization.type` system of the kinds of organisation Wardline sends
/// to beyond GP practices (`local-authority`).
pub const ORG_KIND_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/organisation-kind";
/// `Task.code` (system `pmi::TASK_SYSTEM`): a notice not acknowledged in time.
pub const UNACKNOWLEDGED_CODE: &str = "care-act-notice-unacknowledged";
/// `Task.code`: a discharge notice due and not given.
pub const DISCHARGE_NOTICE_DUE_CODE: &str = "care-act-discharge-notice-due";
/// How far back the job and the worklist look.
pub const LOOKBACK: Duration = Duration::days(60);

const OPEN_TASK: &str = "requested,received,accepted,ready,in-progress,on-hold";

/// Which notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoticeKind {
    Assessment,
    Discharge,
    Withdrawal,
}

impl NoticeKind {
    pub const ALL: [NoticeKind; 3] = [
        NoticeKind::Assessment,
        NoticeKind::Discharge,
        NoticeKind::Withdrawal,
    ];
    pub fn code(self) -> &'static str {
        match self {
            NoticeKind::Assessment => "assessment",
            NoticeKind::Discharge => "discharge",
            NoticeKind::Withdrawal => "withdrawal",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            NoticeKind::Assessment => "Assessment notice",
            NoticeKind::Discharge => "Discharge notice",
            NoticeKind::Withdrawal => "Withdrawal notice",
        }
    }
    pub fn of_code(s: &str) -> Option<NoticeKind> {
        NoticeKind::ALL.into_iter().find(|k| k.code() == s)
    }
}

/// The answers to "has the patient or carer objected to the notice?".
pub const OBJECTIONS: [(&str, &str); 3] = [
    ("none", "Neither the patient nor their carer objected"),
    ("patient", "The patient objected"),
    ("carer", "The patient's carer objected"),
];

/// The results of considering NHS continuing healthcare.
pub const CHC: [(&str, &str); 3] = [
    (
        "not-eligible",
        "Considered: NHS continuing healthcare is not to be provided",
    ),
    (
        "assessment",
        "Considered: a full assessment for NHS continuing healthcare is under way",
    ),
    (
        "eligible",
        "Considered: NHS continuing healthcare is to be provided",
    ),
];

fn label_of(table: &[(&str, &'static str)], code: &str) -> Option<&'static str> {
    table.iter().find(|(c, _)| *c == code).map(|(_, l)| *l)
}

/// What the form gives for an assessment or discharge notice.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NoticeInput {
    /// `Organization/{id}` id of the local authority.
    pub local_authority: String,
    /// `YYYY-MM-DD`: the expected (assessment, optional) or proposed
    /// (discharge) discharge day.
    pub discharge_day: String,
    /// Assessment: the patient (and carer where feasible) was consulted.
    /// Discharge: the patient (and carer) was told the proposed day.
    pub consulted: bool,
    /// One of [`OBJECTIONS`] (assessment).
    pub objection: String,
    /// One of [`CHC`] (assessment).
    pub chc: String,
    pub contact_name: String,
    pub contact_phone: String,
    pub contact_email: String,
    /// Required to give a discharge notice that falls short of the
    /// timescales.
    pub override_reason: String,
}

/// What went wrong, with the HTTP status that fits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum CareActError {
    /// A form field is wrong (400): (field, message).
    Field(String, String),
    NotFound(String),
    Forbidden(String),
    /// The record's state does not allow it (409).
    Conflict(String),
    Store(String),
}

impl CareActError {
    pub fn status(&self) -> u16 {
        match self {
            CareActError::Field(..) => 400,
            CareActError::NotFound(_) => 404,
            CareActError::Forbidden(_) => 403,
            CareActError::Conflict(_) => 409,
            CareActError::Store(_) => 500,
        }
    }
    pub fn message(&self) -> String {
        match self {
            CareActError::Field(_, m)
            | CareActError::NotFound(m)
            | CareActError::Forbidden(m)
            | CareActError::Conflict(m)
            | CareActError::Store(m) => m.clone(),
        }
    }
}

impl std::fmt::Display for CareActError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for CareActError {}

impl From<TransfersError> for CareActError {
    fn from(e: TransfersError) -> CareActError {
        match e {
            TransfersError::Invalid(m) => CareActError::Field("local-authority".into(), m),
            TransfersError::NotFound(m) => CareActError::NotFound(m),
            TransfersError::Forbidden(m) => CareActError::Forbidden(m),
            TransfersError::Conflict(m) => CareActError::Conflict(m),
            TransfersError::Store(m) => CareActError::Store(m),
        }
    }
}

impl From<FhirError> for CareActError {
    fn from(e: FhirError) -> CareActError {
        TransfersError::from(e).into()
    }
}

fn field(f: &str, m: impl Into<String>) -> CareActError {
    CareActError::Field(f.to_owned(), m.into())
}

/// A notice as the pages, the job and the tests read it.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    /// DocumentReference id.
    pub id: String,
    pub kind: NoticeKind,
    pub encounter: String,
    pub patient: String,
    pub given_at: String,
    pub given_day: Option<String>,
    pub local_authority: String,
    pub local_authority_name: String,
    pub ward: Option<String>,
    pub ward_name: Option<String>,
    pub discharge_day: Option<String>,
    pub earliest_discharge: Option<String>,
    pub latest_discharge_notice: Option<String>,
    pub override_reason: Option<String>,
    /// The notice this withdraws (DocumentReference id).
    pub withdraws: Option<String>,
    /// The withdrawal of this notice (DocumentReference id).
    pub withdrawn_by: Option<String>,
    /// The delivery (Communication id, status, sent, received, route).
    pub delivery: Option<Delivery>,
}

/// A notice's delivery as the transfers delivery records it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Delivery {
    pub id: String,
    pub status: String,
    pub sent: Option<String>,
    pub received: Option<String>,
    pub route: Option<String>,
    pub last_error: Option<String>,
}

impl Delivery {
    /// A plain statement of where the delivery stands.
    pub fn label(&self) -> &'static str {
        match self.status.as_str() {
            "preparation" if self.last_error.is_some() => "Retrying",
            "preparation" => "Queued",
            "in-progress" => "Sent, not acknowledged",
            "completed" if self.route.as_deref() == Some("email") => "Emailed",
            "completed" => "Acknowledged",
            "stopped" => "Failed",
            _ => "Unknown",
        }
    }
}

fn part<'a>(dr: &'a Value, name: &str) -> Option<&'a Value> {
    dr["extension"]
        .as_array()?
        .iter()
        .find(|e| e["url"] == NOTICE_EXT)?["extension"]
        .as_array()?
        .iter()
        .find(|s| s["url"] == name)
}

fn part_text(dr: &Value, name: &str) -> Option<String> {
    let p = part(dr, name)?;
    ["valueString", "valueCode", "valueDate", "valueDateTime"]
        .iter()
        .find_map(|k| p[*k].as_str())
        .map(str::to_owned)
}

fn part_ref(dr: &Value, name: &str) -> Option<(String, Option<String>)> {
    let p = part(dr, name)?;
    Some((
        p["valueReference"]["reference"].as_str()?.to_owned(),
        p["valueReference"]["display"].as_str().map(str::to_owned),
    ))
}

/// The notice kind of a DocumentReference, when it is one.
pub fn notice_kind(dr: &Value) -> Option<NoticeKind> {
    dr["type"]["coding"]
        .as_array()?
        .iter()
        .find(|c| c["system"] == NOTICE_SYSTEM)
        .and_then(|c| NoticeKind::of_code(c["code"].as_str()?))
}

fn notice_of(dr: &Value) -> Option<Notice> {
    let kind = notice_kind(dr)?;
    let (la, la_name) = part_ref(dr, "localAuthority").unwrap_or_default();
    let ward = part_ref(dr, "ward");
    Some(Notice {
        id: dr["id"].as_str()?.to_owned(),
        kind,
        encounter: dr["context"]["encounter"][0]["reference"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        patient: dr["subject"]["reference"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        given_at: dr["date"].as_str().unwrap_or_default().to_owned(),
        given_day: part_text(dr, "givenDay"),
        local_authority_name: la_name.unwrap_or_else(|| la.clone()),
        local_authority: la,
        ward: ward.as_ref().map(|w| w.0.clone()),
        ward_name: ward.and_then(|w| w.1),
        discharge_day: part_text(dr, "dischargeDay"),
        earliest_discharge: part_text(dr, "earliestDischarge"),
        latest_discharge_notice: part_text(dr, "latestDischargeNotice"),
        override_reason: part_text(dr, "overrideReason"),
        withdraws: part_ref(dr, "withdraws")
            .and_then(|w| w.0.strip_prefix("DocumentReference/").map(str::to_owned)),
        withdrawn_by: None,
        delivery: None,
    })
}

fn type_query() -> String {
    NoticeKind::ALL
        .iter()
        .map(|k| format!("{NOTICE_SYSTEM}|{}", k.code()))
        .collect::<Vec<_>>()
        .join(",")
}

fn delivery_kinds() -> String {
    [Kind::CareActAssessment, Kind::CareActDischarge]
        .iter()
        .map(|k| format!("{KIND_SYSTEM}|{}", k.code()))
        .collect::<Vec<_>>()
        .join(",")
}

fn delivery_of(c: &Value) -> Delivery {
    Delivery {
        id: c["id"].as_str().unwrap_or_default().to_owned(),
        status: c["status"].as_str().unwrap_or("unknown").to_owned(),
        sent: c["sent"].as_str().map(str::to_owned),
        received: c["received"].as_str().map(str::to_owned),
        route: super::delivery_text(c, "route").map(str::to_owned),
        last_error: super::delivery_text(c, "lastError").map(str::to_owned),
    }
}

/// The notices of an encounter (`Encounter/{id}`), oldest first, each
/// with its delivery and its withdrawal.
pub fn notices_in(tx: &mut Tx<'_>, encounter: &str) -> Result<Vec<Notice>, CareActError> {
    let docs = tx.find(
        "DocumentReference",
        &format!("encounter={encounter}&type={}&_count=1000", type_query()),
    )?;
    let comms = tx.find(
        "Communication",
        &format!(
            "encounter={encounter}&category={}&_count=1000",
            delivery_kinds()
        ),
    )?;
    Ok(assemble(&docs, &comms))
}

fn assemble(docs: &[Value], comms: &[Value]) -> Vec<Notice> {
    let mut out: Vec<Notice> = docs
        .iter()
        .filter(|d| d["status"] == "current")
        .filter_map(notice_of)
        .collect();
    let withdrawals: Vec<(String, String)> = out
        .iter()
        .filter_map(|n| Some((n.withdraws.clone()?, n.id.clone())))
        .collect();
    for n in &mut out {
        n.withdrawn_by = withdrawals
            .iter()
            .find(|(w, _)| *w == n.id)
            .map(|(_, by)| by.clone());
        let doc_ref = format!("DocumentReference/{}", n.id);
        n.delivery = comms
            .iter()
            .filter(|c| kind_of(c).is_some() && c["status"] != "entered-in-error")
            .find(|c| {
                c["payload"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["contentReference"]["reference"] == doc_ref.as_str())
            })
            .map(delivery_of);
    }
    out.sort_by(|a, b| a.given_at.cmp(&b.given_at));
    out
}

/// The assessment notice in force among `notices`: the latest not
/// withdrawn.
pub fn in_force(notices: &[Notice], kind: NoticeKind) -> Option<&Notice> {
    notices
        .iter()
        .rev()
        .find(|n| n.kind == kind && n.withdrawn_by.is_none())
}

/// A local authority (for the form's choice).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LocalAuthority {
    pub id: String,
    pub name: String,
    pub routes: Vec<super::routing::Route>,
}

fn is_local_authority(org: &Value) -> bool {
    org["type"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t["coding"].as_array().into_iter().flatten())
        .any(|c| c["system"] == ORG_KIND_SYSTEM && c["code"] == "local-authority")
}

/// The local authorities, by name, with their routes.
pub fn local_authorities_in(tx: &mut Tx<'_>) -> Result<Vec<LocalAuthority>, CareActError> {
    let orgs = tx.find(
        "Organization",
        &format!("type={ORG_KIND_SYSTEM}|local-authority&_count=1000"),
    )?;
    let mut out = Vec::new();
    for o in orgs {
        let Some(id) = o["id"].as_str() else { continue };
        out.push(LocalAuthority {
            id: id.to_owned(),
            name: o["name"].as_str().unwrap_or(id).to_owned(),
            routes: super::routing::routes_in(tx, id)?,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The local authority a new notice for `patient` (`Patient/{id}`)
/// defaults to: the one of the patient's latest notice.
pub fn previous_local_authority_in(
    tx: &mut Tx<'_>,
    patient: &str,
) -> Result<Option<String>, CareActError> {
    let docs = tx.find(
        "DocumentReference",
        &format!("subject={patient}&type={}&_count=200", type_query()),
    )?;
    let mut found: Vec<(String, String)> = docs
        .iter()
        .filter_map(|d| {
            let (la, _) = part_ref(d, "localAuthority")?;
            Some((
                d["date"].as_str().unwrap_or_default().to_owned(),
                la.strip_prefix("Organization/")?.to_owned(),
            ))
        })
        .collect();
    found.sort();
    Ok(found.pop().map(|f| f.1))
}

/// What giving a notice did.
#[derive(Debug, Clone, Serialize)]
pub struct Given {
    /// DocumentReference id.
    pub document: String,
    /// The delivery's Communication id.
    pub delivery: String,
    pub earliest_discharge: Option<String>,
    pub latest_discharge_notice: Option<String>,
}

struct Admission {
    encounter: Value,
    patient_id: String,
    patient: Patient,
    ward: Option<(String, String)>,
    hospital: String,
}

fn admission_in(tx: &mut Tx<'_>, encounter: &str) -> Result<Admission, CareActError> {
    let enc = tx.get("Encounter", encounter)?.ok_or_else(|| {
        CareActError::NotFound(format!("There is no admission Encounter/{encounter}."))
    })?;
    if enc["status"] != "in-progress" || enc["class"]["code"] != "IMP" {
        return Err(CareActError::Conflict(
            "Care Act notices are given for a patient who is in hospital (an admission in progress)."
                .into(),
        ));
    }
    let patient_id = reference_id(&enc["subject"], "Patient")
        .ok_or_else(|| CareActError::Conflict("The admission names no patient.".into()))?
        .to_owned();
    let p = tx
        .get("Patient", &patient_id)?
        .ok_or_else(|| CareActError::NotFound(format!("There is no patient {patient_id}.")))?;
    let loc = enc["location"]
        .as_array()
        .and_then(|l| l.last())
        .and_then(|l| reference_id(&l["location"], "Location"))
        .map(str::to_owned);
    let ward = match loc {
        Some(l) => crate::adt::ward_of(&*tx, &l).map_err(|e| CareActError::Store(e.to_string()))?,
        None => None,
    };
    let provider = &enc["serviceProvider"];
    let hospital = match (
        provider["display"].as_str(),
        reference_id(provider, "Organization"),
    ) {
        (Some(d), _) => d.to_owned(),
        (None, Some(o)) => tx
            .get("Organization", o)?
            .and_then(|o| o["name"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "The trust's hospital".into()),
        (None, None) => "The trust's hospital".into(),
    };
    Ok(Admission {
        hospital,
        patient: Patient::of(&p, &patient_id),
        patient_id,
        encounter: enc,
        ward,
    })
}

fn local_authority_in(tx: &mut Tx<'_>, id: &str) -> Result<Value, CareActError> {
    let id = id.trim();
    if id.is_empty() {
        return Err(field(
            "local-authority",
            "Choose the local authority the notice goes to.",
        ));
    }
    match tx.get("Organization", id)? {
        Some(o) if is_local_authority(&o) => Ok(o),
        _ => Err(field(
            "local-authority",
            format!("{id:?} is not a local authority Wardline knows."),
        )),
    }
}

fn check_contact(input: &NoticeInput) -> Result<(), CareActError> {
    if input.contact_name.trim().is_empty() {
        return Err(field(
            "contact-name",
            "Enter the name of the person at the hospital the local authority should contact.",
        ));
    }
    let phone = input.contact_phone.trim();
    let email = input.contact_email.trim();
    if phone.is_empty() && email.is_empty() {
        return Err(field(
            "contact-phone",
            "Enter the contact's telephone number or email address (or both).",
        ));
    }
    if !phone.is_empty()
        && (phone.chars().filter(char::is_ascii_digit).count() < 6
            || !phone
                .chars()
                .all(|c| c.is_ascii_digit() || " +()-".contains(c)))
    {
        return Err(field(
            "contact-phone",
            format!("Enter a telephone number, e.g. 01632 960 123, not {phone:?}."),
        ));
    }
    if !email.is_empty() && email.parse::<lettre::Address>().is_err() {
        return Err(field(
            "contact-email",
            format!("Enter an email address, e.g. discharge.team@nhs.net, not {email:?}."),
        ));
    }
    Ok(())
}

fn day_field(s: &str, required: bool, today: Date) -> Result<Option<Date>, CareActError> {
    if s.trim().is_empty() {
        return if required {
            Err(field(
                "discharge-day",
                "Enter the proposed discharge day, e.g. 2026-12-04.",
            ))
        } else {
            Ok(None)
        };
    }
    let d = parse_day(s).ok_or_else(|| {
        field(
            "discharge-day",
            format!("Enter the discharge day as a date, e.g. 2026-12-04, not {s:?}."),
        )
    })?;
    if d < today {
        return Err(field(
            "discharge-day",
            format!("The discharge day {d} has passed."),
        ));
    }
    Ok(Some(d))
}

fn sub(url: &str, key: &str, v: Value) -> Value {
    let mut s = json!({"url": url});
    s[key] = v;
    s
}

/// The statutory content as narrative lines, for the Composition.
fn narrative(kind: NoticeKind, lines: &[(String, String)]) -> Value {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let rows: String = lines
        .iter()
        .map(|(k, v)| format!("<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v)))
        .collect();
    json!({"status": "generated", "div": format!(
        "<div xmlns=\"http://www.w3.org/1999/xhtml\"><h1>{}</h1><table>{rows}</table></div>",
        esc(kind.label())
    )})
}

struct Draft<'a> {
    kind: NoticeKind,
    delivery_kind: Kind,
    adm: &'a Admission,
    la: &'a Value,
    lines: Vec<(String, String)>,
    parts: Vec<Value>,
}

/// Writes the notice's document Bundle and DocumentReference and queues
/// its delivery.
fn write_in(
    tx: &mut Tx<'_>,
    d: Draft<'_>,
    now: OffsetDateTime,
) -> Result<(String, String), CareActError> {
    let at = fhir_time(now);
    let enc_id = d.adm.encounter["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let la_id = d.la["id"].as_str().unwrap_or_default().to_owned();
    let la_name = d.la["name"].as_str().unwrap_or(&la_id).to_owned();
    let urn = |_: ()| format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let (comp_url, pat_url, enc_url, la_url) = (urn(()), urn(()), urn(()), urn(()));
    let patient = tx.get("Patient", &d.adm.patient_id)?.unwrap_or(Value::Null);
    let composition = json!({
        "resourceType": "Composition",
        "status": "final",
        "type": {"coding": [{"system": NOTICE_SYSTEM, "code": d.kind.code(), "display": d.kind.label()}]},
        "subject": {"reference": pat_url},
        "encounter": {"reference": enc_url},
        "date": at,
        "author": [{"display": "Wardline (on behalf of the trust)"}],
        "title": d.kind.label(),
        "text": narrative(d.kind, &d.lines),
        "section": [{"title": d.kind.label(), "text": narrative(d.kind, &d.lines)}],
    });
    let mut la = d.la.clone();
    if let Some(o) = la.as_object_mut() {
        o.remove("meta");
        o.remove("endpoint");
    }
    let bundle_id = uuid::Uuid::new_v4().to_string();
    let bundle = json!({
        "resourceType": "Bundle",
        "id": bundle_id,
        "identifier": {"system": "urn:ietf:rfc:3986", "value": comp_url},
        "type": "document",
        "timestamp": at,
        "entry": [
            {"fullUrl": comp_url, "resource": composition},
            {"fullUrl": pat_url, "resource": patient},
            {"fullUrl": enc_url, "resource": d.adm.encounter},
            {"fullUrl": la_url, "resource": la},
        ],
    });
    tx.save(bundle)?;
    let mut parts = vec![sub(
        "localAuthority",
        "valueReference",
        json!({"reference": format!("Organization/{la_id}"), "display": la_name}),
    )];
    if let Some((wid, wname)) = &d.adm.ward {
        parts.push(sub(
            "ward",
            "valueReference",
            json!({"reference": format!("Location/{wid}"), "display": wname}),
        ));
    }
    parts.extend(d.parts);
    let dr = json!({
        "resourceType": "DocumentReference",
        "status": "current",
        "docStatus": "final",
        "type": {"coding": [{"system": NOTICE_SYSTEM, "code": d.kind.code(), "display": d.kind.label()}]},
        "category": [{"text": "Care Act notice to the local authority"}],
        "subject": {"reference": format!("Patient/{}", d.adm.patient_id)},
        "date": at,
        "description": format!("{} to {la_name}", d.kind.label()),
        "extension": [{"url": NOTICE_EXT, "extension": parts}],
        "content": [{"attachment": {"contentType": "application/fhir+json", "url": format!("Bundle/{bundle_id}"),
            "title": format!("{} (FHIR document)", d.kind.label()), "creation": at}}],
        "context": {"encounter": [{"reference": format!("Encounter/{enc_id}")}]},
    });
    let dr = tx.save(dr)?;
    let delivery = super::queue_in(
        tx,
        &Outgoing {
            kind: d.delivery_kind,
            patient: format!("Patient/{}", d.adm.patient_id),
            encounter: format!("Encounter/{enc_id}"),
            document: format!("DocumentReference/{}", dr.id),
            recipient: format!("Organization/{la_id}"),
        },
        now,
    )?;
    Ok((dr.id, delivery))
}

fn common_lines(adm: &Admission, la_name: &str) -> Vec<(String, String)> {
    vec![
        ("Patient".into(), adm.patient.name.clone()),
        (
            "NHS number".into(),
            adm.patient
                .nhs_number
                .clone()
                .unwrap_or_else(|| "Not recorded".into()),
        ),
        ("Hospital".into(), adm.hospital.clone()),
        (
            "Ward".into(),
            adm.ward
                .as_ref()
                .map_or("Not recorded".to_owned(), |w| w.1.clone()),
        ),
        ("To".into(), la_name.to_owned()),
    ]
}

fn contact_lines(input: &NoticeInput) -> (String, Value) {
    let mut c = input.contact_name.trim().to_owned();
    for extra in [input.contact_phone.trim(), input.contact_email.trim()] {
        if !extra.is_empty() {
            c.push_str(", ");
            c.push_str(extra);
        }
    }
    (c.clone(), sub("contact", "valueString", json!(c)))
}

/// Gives an assessment notice for the admission `encounter` (id), in `tx`.
pub fn give_assessment_in(
    tx: &mut Tx<'_>,
    encounter: &str,
    input: &NoticeInput,
    t: &Timescales,
    now: OffsetDateTime,
) -> Result<Given, CareActError> {
    tx.lock(&[format!("Encounter/{encounter}/care-act")])?;
    let adm = admission_in(tx, encounter)?;
    let la = local_authority_in(tx, &input.local_authority)?;
    let day = day_field(&input.discharge_day, false, t.local_date(now))?;
    if !input.consulted {
        return Err(field(
            "consulted",
            "Consult the patient (and their carer, where feasible) before giving an assessment notice, then confirm it.",
        ));
    }
    let objection = label_of(&OBJECTIONS, input.objection.trim()).ok_or_else(|| {
        field(
            "objection",
            "Say whether the patient or their carer objected to the notice.",
        )
    })?;
    let chc = label_of(&CHC, input.chc.trim()).ok_or_else(|| {
        field(
            "chc",
            "Say what was decided when NHS continuing healthcare was considered.",
        )
    })?;
    check_contact(input)?;
    let earliest = t.earliest_discharge(now);
    let la_name = la["name"].as_str().unwrap_or_default().to_owned();
    let mut lines = common_lines(&adm, &la_name);
    lines.push((
        "Likely discharge day".into(),
        day.map_or("Not known yet".into(), |d| d.to_string()),
    ));
    lines.push((
        "Consultation".into(),
        "The patient (and their carer, where feasible) was consulted before this notice.".into(),
    ));
    lines.push(("Objection".into(), objection.into()));
    lines.push(("NHS continuing healthcare".into(), chc.into()));
    let (contact, contact_part) = contact_lines(input);
    lines.push(("Contact at the hospital".into(), contact));
    lines.push(("Counts as given on".into(), t.given_day(now).to_string()));
    lines.push(("Earliest discharge day".into(), earliest.to_string()));
    let mut parts = vec![
        sub("givenDay", "valueDate", json!(t.given_day(now).to_string())),
        sub(
            "earliestDischarge",
            "valueDate",
            json!(earliest.to_string()),
        ),
        sub("consulted", "valueBoolean", json!(true)),
        sub("objection", "valueCode", json!(input.objection.trim())),
        sub("chc", "valueCode", json!(input.chc.trim())),
        contact_part,
    ];
    let latest = day.map(|d| fhir_time(t.latest_discharge_notice(d)));
    if let Some(d) = day {
        parts.push(sub("dischargeDay", "valueDate", json!(d.to_string())));
    }
    if let Some(l) = &latest {
        parts.push(sub("latestDischargeNotice", "valueDateTime", json!(l)));
    }
    let (document, delivery) = write_in(
        tx,
        Draft {
            kind: NoticeKind::Assessment,
            delivery_kind: Kind::CareActAssessment,
            adm: &adm,
            la: &la,
            lines,
            parts,
        },
        now,
    )?;
    Ok(Given {
        document,
        delivery,
        earliest_discharge: Some(earliest.to_string()),
        latest_discharge_notice: latest,
    })
}

/// Gives a discharge notice for the admission `encounter` (id), in `tx`:
/// refused without an assessment notice in force, and refused when it
/// falls short of the timescales unless `override_reason` is given.
pub fn give_discharge_in(
    tx: &mut Tx<'_>,
    encounter: &str,
    input: &NoticeInput,
    t: &Timescales,
    now: OffsetDateTime,
) -> Result<Given, CareActError> {
    tx.lock(&[format!("Encounter/{encounter}/care-act")])?;
    let adm = admission_in(tx, encounter)?;
    let notices = notices_in(tx, &format!("Encounter/{encounter}"))?;
    let Some(assessment) = in_force(&notices, NoticeKind::Assessment).cloned() else {
        return Err(CareActError::Conflict(
            "Give the assessment notice first: a discharge notice follows an assessment notice in force."
                .into(),
        ));
    };
    let la_id = if input.local_authority.trim().is_empty() {
        assessment
            .local_authority
            .trim_start_matches("Organization/")
            .to_owned()
    } else {
        input.local_authority.trim().to_owned()
    };
    if format!("Organization/{la_id}") != assessment.local_authority {
        return Err(field(
            "local-authority",
            format!(
                "The discharge notice goes to the authority that had the assessment notice ({}).",
                assessment.local_authority_name
            ),
        ));
    }
    let la = local_authority_in(tx, &la_id)?;
    let day = day_field(&input.discharge_day, true, t.local_date(now))?
        .ok_or_else(|| field("discharge-day", "Enter the proposed discharge day."))?;
    if !input.consulted {
        return Err(field(
            "consulted",
            "Tell the patient (and their carer, where appropriate) the proposed discharge day, then confirm it.",
        ));
    }
    check_contact(input)?;
    let assessed_at = parse_ms(&assessment.given_at)
        .and_then(|ms| OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).ok());
    let shortfalls = t.discharge_shortfalls(now, day, assessed_at);
    let reason = input.override_reason.trim();
    if !shortfalls.is_empty() && reason.is_empty() {
        return Err(field(
            "override-reason",
            format!("{} To give it anyway, record why.", shortfalls.join(" ")),
        ));
    }
    let la_name = la["name"].as_str().unwrap_or_default().to_owned();
    let latest = t.latest_discharge_notice(day);
    let mut lines = common_lines(&adm, &la_name);
    lines.push(("Proposed discharge day".into(), day.to_string()));
    lines.push((
        "Patient informed".into(),
        "The patient (and their carer, where appropriate) has been told the proposed discharge day."
            .into(),
    ));
    let (contact, contact_part) = contact_lines(input);
    lines.push(("Contact at the hospital".into(), contact));
    lines.push((
        "Assessment notice".into(),
        format!("Given {}", timescales::local_text(t, &assessment.given_at)),
    ));
    let mut parts = vec![
        sub("givenDay", "valueDate", json!(t.given_day(now).to_string())),
        sub("dischargeDay", "valueDate", json!(day.to_string())),
        sub(
            "latestDischargeNotice",
            "valueDateTime",
            json!(fhir_time(latest)),
        ),
        sub("consulted", "valueBoolean", json!(true)),
        contact_part,
    ];
    if let Some(e) = &assessment.earliest_discharge {
        parts.push(sub("earliestDischarge", "valueDate", json!(e)));
    }
    if !shortfalls.is_empty() {
        lines.push((
            "Given short of the timescales".into(),
            format!("{} Reason: {reason}", shortfalls.join(" ")),
        ));
        parts.push(sub("overrideReason", "valueString", json!(reason)));
    }
    let (document, delivery) = write_in(
        tx,
        Draft {
            kind: NoticeKind::Discharge,
            delivery_kind: Kind::CareActDischarge,
            adm: &adm,
            la: &la,
            lines,
            parts,
        },
        now,
    )?;
    close_tasks_in(
        tx,
        &format!("DocumentReference/{}", assessment.id),
        DISCHARGE_NOTICE_DUE_CODE,
        "Discharge notice given.",
        now,
    )?;
    Ok(Given {
        document,
        delivery,
        earliest_discharge: assessment.earliest_discharge.clone(),
        latest_discharge_notice: Some(fhir_time(latest)),
    })
}

/// Withdraws the notice `document` (DocumentReference id) with `reason`:
/// a withdrawal notice to the same local authority, in `tx`.
pub fn withdraw_in(
    tx: &mut Tx<'_>,
    document: &str,
    reason: &str,
    now: OffsetDateTime,
) -> Result<Given, CareActError> {
    let dr = tx.get("DocumentReference", document)?.ok_or_else(|| {
        CareActError::NotFound(format!("There is no notice DocumentReference/{document}."))
    })?;
    let Some(notice) = notice_of(&dr) else {
        return Err(CareActError::NotFound(format!(
            "DocumentReference/{document} is not a Care Act notice."
        )));
    };
    let encounter = notice
        .encounter
        .strip_prefix("Encounter/")
        .unwrap_or_default()
        .to_owned();
    tx.lock(&[format!("Encounter/{encounter}/care-act")])?;
    if notice.kind == NoticeKind::Withdrawal {
        return Err(CareActError::Conflict(
            "A withdrawal notice cannot itself be withdrawn.".into(),
        ));
    }
    let notices = notices_in(tx, &notice.encounter)?;
    if notices
        .iter()
        .any(|n| n.id == document && n.withdrawn_by.is_some())
    {
        return Err(CareActError::Conflict(
            "This notice has already been withdrawn.".into(),
        ));
    }
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(field(
            "reason",
            "Say why the notice is withdrawn (e.g. no longer safe to discharge on that day).",
        ));
    }
    let adm = admission_in(tx, &encounter)?;
    let la_id = notice.local_authority.trim_start_matches("Organization/");
    let la = local_authority_in(tx, la_id)?;
    let la_name = la["name"].as_str().unwrap_or_default().to_owned();
    let mut lines = common_lines(&adm, &la_name);
    lines.push((
        "Withdraws".into(),
        format!(
            "The {} given {}",
            notice.kind.label().to_lowercase(),
            notice.given_at
        ),
    ));
    lines.push(("Reason".into(), reason.to_owned()));
    let parts = vec![
        sub(
            "withdraws",
            "valueReference",
            json!({"reference": format!("DocumentReference/{document}")}),
        ),
        sub("reason", "valueString", json!(reason)),
    ];
    let delivery_kind = match notice.kind {
        NoticeKind::Discharge => Kind::CareActDischarge,
        _ => Kind::CareActAssessment,
    };
    let (doc, delivery) = write_in(
        tx,
        Draft {
            kind: NoticeKind::Withdrawal,
            delivery_kind,
            adm: &adm,
            la: &la,
            lines,
            parts,
        },
        now,
    )?;
    if notice.kind == NoticeKind::Assessment {
        close_tasks_in(
            tx,
            &format!("DocumentReference/{document}"),
            DISCHARGE_NOTICE_DUE_CODE,
            "Assessment notice withdrawn.",
            now,
        )?;
    }
    Ok(Given {
        document: doc,
        delivery,
        earliest_discharge: None,
        latest_discharge_notice: None,
    })
}

fn audited<T>(
    svc: &FhirService,
    access: &dyn Access,
    action: &'static str,
    f: impl FnOnce(&mut Tx<'_>) -> Result<T, CareActError>,
) -> Result<T, CareActError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "care-act-notice", action);
    let out = f(&mut tx)?;
    tx.commit()?;
    Ok(out)
}

/// Gives an assessment or discharge notice ([`give_assessment_in`],
/// [`give_discharge_in`]) as one audited transaction (`care-act-notice`);
/// a withdrawal is [`withdraw`].
pub fn give(
    svc: &FhirService,
    access: &dyn Access,
    kind: NoticeKind,
    encounter: &str,
    input: &NoticeInput,
    t: &Timescales,
    now: OffsetDateTime,
) -> Result<Given, CareActError> {
    audited(svc, access, "C", |tx| match kind {
        NoticeKind::Assessment => give_assessment_in(tx, encounter, input, t, now),
        NoticeKind::Discharge => give_discharge_in(tx, encounter, input, t, now),
        NoticeKind::Withdrawal => Err(CareActError::Conflict(
            "A withdrawal is given by withdrawing a notice.".into(),
        )),
    })
}

/// [`withdraw_in`] as one audited transaction (`care-act-notice`).
pub fn withdraw(
    svc: &FhirService,
    access: &dyn Access,
    document: &str,
    reason: &str,
    now: OffsetDateTime,
) -> Result<Given, CareActError> {
    audited(svc, access, "C", |tx| {
        withdraw_in(tx, document, reason, now)
    })
}
