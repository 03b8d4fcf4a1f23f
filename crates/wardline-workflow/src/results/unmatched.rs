//! The unmatched-results worklist: results that arrived without a patient
//! Wardline could identify with certainty, or without an order of that
//! patient, wait here for a person to match them — never filed to a best
//! guess.
//!
//! # The shape of an unmatched report (the contract with every channel)
//!
//! A channel that receives a result it cannot match (the HL7 v2 ORU^R01
//! mapping, `POST DiagnosticReport/$submit`) stores it through
//! `results::receive_in` as a `DiagnosticReport` with:
//!
//! * `meta.tag` containing
//!   `{system: "https://fhir.wardline.invalid/CodeSystem/result-match", code: "unmatched"}`
//!   ([`TAG_SYSTEM`], [`TAG_CODE`]);
//! * **no `subject`** and no `basedOn` (nothing points at a patient or an
//!   order that might be the wrong one). Its `Observation`s (in `result`)
//!   have no `subject` either;
//! * what the sender said about the patient, as a **contained `Patient`**
//!   with `id` `"reported-patient"` ([`REPORTED_PATIENT_ID`]), referenced
//!   from the report's extension
//!   `https://fhir.wardline.invalid/StructureDefinition/reported-patient`
//!   ([`REPORTED_PATIENT_EXT`]) as `valueReference: {"reference": "#reported-patient"}`.
//!   The contained Patient carries exactly what was sent: `identifier`s (NHS
//!   number as `https://fhir.nhs.uk/Id/nhs-number`, other numbers with the
//!   system the channel maps their assigner to, or with only `value` and
//!   `type.text` naming the assigner when it maps to none), `name`,
//!   `birthDate`, `gender`, `address` when sent. Nothing of it is a claim
//!   that such a patient exists in Wardline;
//! * the order numbers the sender quoted, when any, as the extension
//!   `https://fhir.wardline.invalid/StructureDefinition/reported-order`
//!   ([`REPORTED_ORDER_EXT`], repeatable) with `valueIdentifier`
//!   `{system: "https://fhir.wardline.invalid/Id/placer-order" | ".../Id/filler-order", value}`;
//! * why it was not matched, as the extension
//!   `https://fhir.wardline.invalid/StructureDefinition/unmatched-reason`
//!   ([`UNMATCHED_REASON_EXT`]) `valueString`, a sentence such as "no
//!   patient with NHS number 9434765919" or "placer order R0000007-1 is
//!   for another patient" (optional but expected);
//! * everything else as any result (`status`, `code`, `issued`,
//!   `identifier` filler number, `performer`, `result`).
//!
//! Example (abridged):
//!
//! ```json
//! {"resourceType": "DiagnosticReport", "status": "final",
//!  "meta": {"tag": [{"system": "https://fhir.wardline.invalid/CodeSystem/result-match", "code": "unmatched"}]},
//!  "contained": [{"resourceType": "Patient", "id": "reported-patient",
//!     "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}],
//!     "name": [{"family": "SMITH", "given": ["JOHN"]}], "birthDate": "1970-01-01", "gender": "male"}],
//!  "extension": [
//!     {"url": "https://fhir.wardline.invalid/StructureDefinition/reported-patient", "valueReference": {"reference": "#reported-patient"}},
//!     {"url": "https://fhir.wardline.invalid/StructureDefinition/reported-order", "valueIdentifier": {"system": "https://fhir.wardline.invalid/Id/placer-order", "value": "R0000007-1"}},
//!     {"url": "https://fhir.wardline.invalid/StructureDefinition/unmatched-reason", "valueString": "no patient with NHS number 9434765919"}],
//!  "code": {"text": "Urea and electrolytes"},
//!  "result": [{"reference": "Observation/…"}]}
//! ```
//!
//! # The worklist
//!
//! [`unmatched`] lists the tagged reports, newest first, [`PAGE_SIZE`] a
//! page (one search), with what the sender said about the patient, the
//! order numbers they quoted and why the report was not matched.
//! [`candidates`] is the matching screen of one report: the patients whose
//! identifiers equal one the sender gave (exactly, any system), the patients
//! of the orders the sender quoted, and a patient the person looks up;
//! each with their orders (newest first) to choose from. Nothing is
//! chosen for the person: the screen shows the sender's details beside
//! each candidate's, and the person decides.
//!
//! **Who**: the worklist is the laboratory's (`LabProcess`: biomedical
//! scientists, clinical scientists, laboratory managers). Resolving a
//! misidentified result means going back to the sender and the request
//! form, which is the laboratory's process; and an unmatched report holds
//! another person's identity, so the policy keeps reads of tagged reports
//! to `LabProcess` holders (`rbac::unmatched_result_permitted`), whatever
//! the caller's right to read results in general.
//!
//! # Matching ([`match_report`], [`match_report_in`])
//!
//! In one transaction, locking the report, the patient and the order:
//!
//! 1. the report must exist and still carry the tag — a report matched
//!    meanwhile by someone else is refused (409) naming the patient it was
//!    filed to, never matched twice;
//! 2. the patient must exist and be active (a merged record is refused,
//!    naming the record that replaced it);
//! 3. the order, when one is chosen, must be a `ServiceRequest` **of that
//!    patient** (an order of another patient is refused, 409: a result is
//!    never filed against another person's request) and not
//!    `entered-in-error`;
//! 4. the report gets `subject` (and `basedOn` the order), loses the tag
//!    and its `unmatched-reason`, keeps the contained `reported-patient`
//!    (what was sent stays beside what was decided) and records who matched
//!    it and when in the extension
//!    `https://fhir.wardline.invalid/StructureDefinition/result-matched`
//!    (`extension` `by` `valueReference`, `at` `valueDateTime`);
//!    each Observation in `result` gets the same `subject` (and `basedOn`);
//! 5. then the same notification as a result that arrived matched
//!    (`results::notify_in`): the requester's inbox, and everyone the
//!    status rules say, in the same transaction (if nobody can be told —
//!    an order with no requester and no responsible consultant — nothing
//!    is filed).
//!
//! An **order is required**: a result is filed against a request so that
//! someone is told (the results model treats a report nobody would be told
//! about as unmatched). A result with no request in Wardline (asked for on
//! paper, or by another organisation) stays on the worklist until the
//! laboratory has found who asked for it and the request is recorded;
//! `order` is an `Option` only so that leaving it out is refused with a
//! sentence (400) rather than by the type.

/// The tag system marking an unmatched result.
pub const TAG_SYSTEM: &str = super::RESULT_MATCH_SYSTEM;
/// The tag code marking an unmatched result.
pub const TAG_CODE: &str = super::UNMATCHED;
/// The extension pointing at what the sender said about the patient.
pub const REPORTED_PATIENT_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/reported-patient";
/// The id of the contained Patient holding what the sender said.
pub const REPORTED_PATIENT_ID: &str = "reported-patient";
/// The extension holding an order number the sender quoted.
pub const REPORTED_ORDER_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/reported-order";
/// The extension saying why a result was not matched.
pub const UNMATCHED_REASON_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/unmatched-reason";

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, Tx};

use super::{Received, ResultsError};
use crate::fhir::{concept_text, reference_id};
use crate::pmi::PatientSummary;

/// The worklist's page size.
pub const PAGE_SIZE: usize = 50;
/// The extension recording who matched a report and when.
pub const MATCHED_EXT: &str = "https://fhir.wardline.invalid/StructureDefinition/result-matched";
/// How many orders of each candidate patient the matching screen lists.
pub const ORDERS_PER_CANDIDATE: usize = 20;

/// One report waiting to be matched.
#[derive(Debug, Clone, Serialize)]
pub struct UnmatchedItem {
    pub report: String,
    /// The report's name (`Urea and electrolytes`).
    pub title: String,
    pub status: String,
    /// When the laboratory issued it (else when the specimen was taken).
    pub issued: Option<String>,
    /// What the sender said about the patient (name, NHS number, date of
    /// birth…), as a summary; `None` when they said nothing.
    pub reported: Option<PatientSummary>,
    /// Every identifier the sender gave, as `(system or assigner, value)`.
    pub identifiers: Vec<(String, String)>,
    /// The order numbers the sender quoted, as `(system, value)`.
    pub orders: Vec<(String, String)>,
    /// Why it was not matched.
    pub reason: Option<String>,
    /// How many values the report carries.
    pub values: usize,
}

/// A page of the worklist.
#[derive(Debug, Clone, Serialize)]
pub struct UnmatchedPage {
    pub items: Vec<UnmatchedItem>,
    /// The page (0-based).
    pub page: usize,
    /// More pages follow.
    pub more: bool,
    /// Reports withheld from the caller.
    pub withheld: usize,
}

/// An order a report could be matched to.
#[derive(Debug, Clone, Serialize)]
pub struct CandidateOrder {
    /// The ServiceRequest's id.
    pub id: String,
    pub title: String,
    /// Its placer order number.
    pub placer: Option<String>,
    pub status: String,
    pub authored: Option<String>,
    /// The sender quoted this order's number.
    pub quoted: bool,
}

/// A patient a report could be matched to, and why they are offered.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub patient: PatientSummary,
    /// Why: "NHS number matches", "order R0000007-1 is theirs",
    /// "looked up".
    pub why: Vec<String>,
    pub orders: Vec<CandidateOrder>,
}

/// The matching screen of one report.
#[derive(Debug, Clone, Serialize)]
pub struct MatchView {
    pub item: UnmatchedItem,
    pub candidates: Vec<Candidate>,
}

fn invalid(m: impl Into<String>) -> ResultsError {
    ResultsError::Invalid(m.into())
}
fn conflict(m: impl Into<String>) -> ResultsError {
    ResultsError::Conflict(m.into())
}
fn not_found(m: impl Into<String>) -> ResultsError {
    ResultsError::NotFound(m.into())
}

pub use super::is_unmatched;

/// The worklist item of an unmatched report (what the screens show).
pub fn item(report: &Value) -> UnmatchedItem {
    let ext = |url: &str| -> Vec<&Value> {
        report["extension"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["url"] == url)
            .collect()
    };
    let reported_ref = ext(REPORTED_PATIENT_EXT)
        .first()
        .and_then(|e| e["valueReference"]["reference"].as_str())
        .map(|r| r.trim_start_matches('#').to_owned())
        .unwrap_or_else(|| REPORTED_PATIENT_ID.to_owned());
    let contained = report["contained"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["resourceType"] == "Patient" && c["id"] == reported_ref.as_str());
    let identifiers = contained
        .and_then(|p| p["identifier"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|i| {
            let v = i["value"].as_str()?.to_owned();
            let s = i["system"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| concept_text(&i["type"]))
                .or_else(|| i["assigner"]["display"].as_str().map(str::to_owned))
                .unwrap_or_default();
            Some((s, v))
        })
        .collect();
    UnmatchedItem {
        report: report["id"].as_str().unwrap_or_default().to_owned(),
        title: concept_text(&report["code"]).unwrap_or_else(|| "Report".into()),
        status: report["status"].as_str().unwrap_or_default().to_owned(),
        issued: report["issued"]
            .as_str()
            .or_else(|| report["effectiveDateTime"].as_str())
            .map(str::to_owned),
        reported: contained.map(PatientSummary::from_resource),
        identifiers,
        orders: ext(REPORTED_ORDER_EXT)
            .iter()
            .filter_map(|e| {
                let i = &e["valueIdentifier"];
                Some((
                    i["system"].as_str().unwrap_or_default().to_owned(),
                    i["value"].as_str()?.to_owned(),
                ))
            })
            .collect(),
        reason: ext(UNMATCHED_REASON_EXT)
            .first()
            .and_then(|e| e["valueString"].as_str())
            .map(str::to_owned),
        values: report["result"].as_array().map_or(0, Vec::len),
    }
}

/// Page `page` (0-based) of the worklist: unmatched reports, newest first.
pub fn unmatched(
    svc: &FhirService,
    access: &dyn Access,
    page: usize,
) -> Result<UnmatchedPage, ResultsError> {
    let found = svc.search_as(
        access,
        "DiagnosticReport",
        &[
            ("_tag", format!("{TAG_SYSTEM}|{TAG_CODE}")),
            ("_sort", "-_lastUpdated".into()),
            ("_count", PAGE_SIZE.to_string()),
            ("_offset", (page * PAGE_SIZE).to_string()),
        ],
    )?;
    Ok(UnmatchedPage {
        items: found.resources.iter().map(item).collect(),
        page,
        more: found.more,
        withheld: found.withheld,
    })
}

/// The matching screen of `report`: the report as sent and the candidate
/// patients with their orders; `lookup` adds the patients whose
/// identifier (NHS number, hospital number: any system) is that value.
pub fn candidates(
    svc: &FhirService,
    access: &dyn Access,
    report: &str,
    lookup: Option<&str>,
) -> Result<MatchView, ResultsError> {
    let r = svc
        .read_as(access, "DiagnosticReport", report)?
        .ok_or_else(|| not_found(format!("There is no report with id {report}.")))?;
    if !is_unmatched(&r) {
        return Err(conflict(already_matched(&r)));
    }
    let it = item(&r);
    let mut cands: Vec<Candidate> = Vec::new();
    let mut add = |p: &Value, why: String| {
        let id = p["id"].as_str().unwrap_or_default();
        match cands.iter_mut().find(|c| c.patient.id == id) {
            Some(c) => {
                if !c.why.contains(&why) {
                    c.why.push(why)
                }
            }
            None => cands.push(Candidate {
                patient: PatientSummary::from_resource(p),
                why: vec![why],
                orders: Vec::new(),
            }),
        }
    };
    let esc = wardline_fhir::search::escape_value;
    for (system, value) in &it.identifiers {
        let q = if system.contains("://") {
            format!("{}|{}", esc(system), esc(value))
        } else {
            esc(value)
        };
        for p in svc
            .search_as(access, "Patient", &[("identifier", q)])?
            .resources
        {
            let what = if system == crate::pmi::NHS_NUMBER_SYSTEM {
                "NHS number".to_owned()
            } else {
                format!("identifier {value}")
            };
            add(&p, format!("{what} matches"));
        }
    }
    let mut quoted: Vec<String> = Vec::new();
    for (system, value) in &it.orders {
        let q = if system.is_empty() {
            esc(value)
        } else {
            format!("{}|{}", esc(system), esc(value))
        };
        for sr in svc
            .search_as(
                access,
                "ServiceRequest",
                &[
                    ("identifier", q),
                    ("_include", "ServiceRequest:subject".into()),
                ],
            )
            .map(|f| {
                f.resources
                    .into_iter()
                    .chain(f.included)
                    .collect::<Vec<_>>()
            })?
        {
            match sr["resourceType"].as_str() {
                Some("ServiceRequest") => quoted.extend(sr["id"].as_str().map(str::to_owned)),
                Some("Patient") => add(&sr, format!("order {value} is theirs")),
                _ => {}
            }
        }
    }
    if let Some(v) = lookup.map(str::trim).filter(|v| !v.is_empty()) {
        let compact: String = v.chars().filter(|c| !c.is_whitespace()).collect();
        let mut found = svc
            .search_as(access, "Patient", &[("identifier", esc(&compact))])?
            .resources;
        if found.is_empty()
            && let Some(p) = svc.read_as(access, "Patient", &compact).ok().flatten()
        {
            found.push(p);
        }
        for p in found {
            add(&p, "looked up".into());
        }
    }
    for c in &mut cands {
        let f = svc.search_as(
            access,
            "ServiceRequest",
            &[
                ("subject", format!("Patient/{}", c.patient.id)),
                ("status:not", "entered-in-error".into()),
                ("_sort", "-authored".into()),
                ("_count", ORDERS_PER_CANDIDATE.to_string()),
            ],
        )?;
        c.orders = f
            .resources
            .iter()
            .map(|sr| {
                let id = sr["id"].as_str().unwrap_or_default().to_owned();
                CandidateOrder {
                    quoted: quoted.contains(&id),
                    title: concept_text(&sr["code"]).unwrap_or_else(|| "Order".into()),
                    placer: placer_number(sr),
                    status: sr["status"].as_str().unwrap_or_default().to_owned(),
                    authored: sr["authoredOn"].as_str().map(str::to_owned),
                    id,
                }
            })
            .collect();
        c.orders.sort_by_key(|o| !o.quoted);
    }
    Ok(MatchView {
        item: it,
        candidates: cands,
    })
}

/// The placer order number of a ServiceRequest.
fn placer_number(sr: &Value) -> Option<String> {
    sr["identifier"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["system"] == "https://fhir.wardline.invalid/Id/placer-order")
        .and_then(|i| i["value"].as_str())
        .map(str::to_owned)
}

fn already_matched(r: &Value) -> String {
    match reference_id(&r["subject"], "Patient") {
        Some(p) => format!("This report is not waiting to be matched: it is filed to patient {p}."),
        None => "This report is not waiting to be matched.".to_owned(),
    }
}

/// Matches unmatched `report` to `patient` (ids), and to `order` (a
/// ServiceRequest id of that patient) when given, then notifies as a result
/// that arrived matched. See the module documentation for the rules.
pub fn match_report(
    svc: &FhirService,
    access: &dyn Access,
    report: &str,
    patient: &str,
    order: Option<&str>,
    now: OffsetDateTime,
) -> Result<Received, ResultsError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "results-match", "U");
    let matcher = access.agent().who.clone();
    let r = match_report_in(&mut tx, report, patient, order, matcher.as_deref(), now)?;
    tx.commit()?;
    Ok(r)
}

/// [`match_report`] in the caller's transaction; `matcher` is the person
/// (`Practitioner/…`) who matched it, recorded on the report.
pub fn match_report_in(
    tx: &mut Tx<'_>,
    report: &str,
    patient: &str,
    order: Option<&str>,
    matcher: Option<&str>,
    now: OffsetDateTime,
) -> Result<Received, ResultsError> {
    let (report, patient) = (report.trim(), patient.trim());
    let order = order.map(str::trim).filter(|o| !o.is_empty());
    if report.is_empty() {
        return Err(invalid("Choose the report to match."));
    }
    if patient.is_empty() {
        return Err(invalid("Choose the patient the report is for."));
    }
    let mut keys = vec![
        format!("DiagnosticReport/{report}"),
        format!("Patient/{patient}"),
    ];
    keys.extend(order.map(|o| format!("ServiceRequest/{o}")));
    // The results module's own lock on the report (which `notify_in` and
    // `receive_in` take), here with the others in one sorted set.
    keys.push(super::report_lock(report));
    tx.lock(&keys)?;
    let mut r = tx
        .get("DiagnosticReport", report)?
        .ok_or_else(|| not_found(format!("There is no report with id {report}.")))?;
    if !is_unmatched(&r) {
        return Err(conflict(already_matched(&r)));
    }
    let p = tx
        .get("Patient", patient)?
        .ok_or_else(|| not_found(format!("There is no patient with id {patient}.")))?;
    let ps = PatientSummary::from_resource(&p);
    if !ps.active {
        return Err(conflict(match &ps.replaced_by {
            Some(t) => format!(
                "Patient {patient}'s record was merged into {t}: match the report to the record that replaced it."
            ),
            None => format!(
                "Patient {patient}'s record is inactive: match the report to the patient's current record."
            ),
        }));
    }
    let subject = json!({"reference": format!("Patient/{patient}"), "display": ps.display_name});
    let Some(o) = order else {
        return Err(invalid(
            "Choose the order the result answers: a result is filed against a request so that its requester is told. If the request is not in Wardline, find out who asked for it and record the request first.",
        ));
    };
    let based_on = {
        {
            let sr = tx
                .get("ServiceRequest", o)?
                .ok_or_else(|| not_found(format!("There is no order with id {o}.")))?;
            if reference_id(&sr["subject"], "Patient") != Some(patient) {
                return Err(conflict(format!(
                    "Order {} is for another patient, not {}: a result is never filed against another patient's order.",
                    placer_number(&sr).unwrap_or_else(|| o.to_owned()),
                    ps.display_name
                )));
            }
            if sr["status"] == "entered-in-error" {
                return Err(conflict(format!(
                    "Order {} was entered in error: choose the order the result answers.",
                    placer_number(&sr).unwrap_or_else(|| o.to_owned())
                )));
            }
            json!([{"reference": format!("ServiceRequest/{o}")}])
        }
    };
    let at = now
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| invalid(format!("The time of matching is not valid: {e}.")))?;
    // The report.
    if let Some(meta) = r["meta"].as_object_mut()
        && let Some(tags) = meta.get_mut("tag").and_then(Value::as_array_mut)
    {
        tags.retain(|t| !(t["system"] == TAG_SYSTEM && t["code"] == TAG_CODE));
        if tags.is_empty() {
            meta.remove("tag");
        }
    }
    if let Some(exts) = r["extension"].as_array_mut() {
        exts.retain(|e| e["url"] != UNMATCHED_REASON_EXT && e["url"] != MATCHED_EXT);
    }
    let mut by = json!({"url": "by", "valueReference": {"display": "Wardline"}});
    if let Some(m) = matcher {
        by["valueReference"] = json!({"reference": m});
    }
    let matched =
        json!({"url": MATCHED_EXT, "extension": [by, {"url": "at", "valueDateTime": at}]});
    match r["extension"].as_array_mut() {
        Some(e) => e.push(matched),
        None => r["extension"] = json!([matched]),
    }
    r["subject"] = subject.clone();
    r["basedOn"] = based_on.clone();
    let results: Vec<String> = r["result"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| reference_id(x, "Observation").map(str::to_owned))
        .collect();
    tx.save(r)?;
    // Its values.
    for id in results {
        let Some(mut o) = tx.get("Observation", &id)? else {
            continue;
        };
        o["subject"] = subject.clone();
        o["basedOn"] = based_on.clone();
        tx.save(o)?;
    }
    let notified = super::notify_in(tx, report, now)?;
    Ok(Received {
        report: report.to_owned(),
        matched: true,
        notified,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_sender_said_is_read_from_the_contained_patient() {
        let r = json!({"resourceType": "DiagnosticReport", "id": "u1", "status": "final",
            "meta": {"tag": [{"system": TAG_SYSTEM, "code": TAG_CODE}]},
            "code": {"text": "Full blood count"}, "issued": "2026-05-31T11:00:00Z",
            "contained": [
                {"resourceType": "Patient", "id": "other", "name": [{"family": "WRONG"}]},
                {"resourceType": "Patient", "id": "reported-patient",
                 "identifier": [
                    {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"},
                    {"type": {"text": "RWG MRN"}, "value": "H123"}],
                 "name": [{"family": "SMITH", "given": ["JOHN"]}], "birthDate": "1970-01-01"}],
            "extension": [
                {"url": REPORTED_PATIENT_EXT, "valueReference": {"reference": "#reported-patient"}},
                {"url": REPORTED_ORDER_EXT, "valueIdentifier": {"system": "https://fhir.wardline.invalid/Id/placer-order", "value": "R0000007-1"}},
                {"url": UNMATCHED_REASON_EXT, "valueString": "no patient with NHS number 9434765919"}],
            "result": [{"reference": "Observation/a"}, {"reference": "Observation/b"}]});
        assert!(is_unmatched(&r));
        let it = item(&r);
        let p = it.reported.expect("reported patient");
        assert_eq!(p.display_name, "SMITH, JOHN");
        assert_eq!(p.birth_date.as_deref(), Some("1970-01-01"));
        assert_eq!(
            it.identifiers,
            [
                (
                    "https://fhir.nhs.uk/Id/nhs-number".to_owned(),
                    "9434765919".to_owned()
                ),
                ("RWG MRN".to_owned(), "H123".to_owned())
            ]
        );
        assert_eq!(it.orders[0].1, "R0000007-1");
        assert_eq!(
            it.reason.as_deref(),
            Some("no patient with NHS number 9434765919")
        );
        assert_eq!((it.title.as_str(), it.values), ("Full blood count", 2));
        // Nothing said: no reported patient, not an error.
        let bare = item(&json!({"resourceType": "DiagnosticReport", "id": "u2"}));
        assert!(bare.reported.is_none() && bare.identifiers.is_empty());
        assert!(!is_unmatched(
            &json!({"meta": {"tag": [{"system": TAG_SYSTEM, "code": "matched"}]}})
        ));
    }
}
