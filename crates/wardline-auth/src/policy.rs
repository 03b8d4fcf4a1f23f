//! The access policy: who may see and change what, for one request.
//!
//! A [`Policy`] is the [`Access`] of one authenticated request. Its decision
//! for a resource, in order (the first refusal wins):
//!
//! 1. **Scopes** (SMART v2): the token's scopes must permit the interaction on
//!    the type, in the token's context (`patient/`, `user/`, `system/`).
//! 2. **Activities** (users): the position acted in must grant the activity
//!    [`rbac::required_activity`] names for the type and interaction.
//!    Administrators have no clinical activities, so no clinical access.
//! 3. **Patient context** (`patient/` scopes): the resource must be in the
//!    launch patient's compartment.
//! 4. **Legitimate relationship** (users, clinical data): the position must
//!    have a care relationship with the patient ([`relationship`]), or the
//!    user must hold an unexpired break-glass grant for them.
//!    **Demographics** (the Patient resource itself) have a sharing
//!    boundary instead: staff of the trust (its organisation or a
//!    department of it) need no relationship — finding a patient comes
//!    before caring for them; staff of a partner organisation (a GP
//!    practice, the council) see a patient's demographics only when the
//!    patient has a relationship with them (registered practice, referral,
//!    shared care: [`relationship`]), under a break-glass grant, or when
//!    the patient is a match of an exact trace (NHS number and date of
//!    birth, `wardline_core::access::is_trace`), so a partner cannot list
//!    the Patient Master Index. Registering a new patient (create) needs
//!    only the activity.
//! 5. **Consent**: staff of an organisation outside the trust never see the
//!    record of a patient who dissented from sharing with it (break-glass
//!    does not override a patient's dissent).
//!
//! Backend services (`system/` scopes) are trusted systems: scopes only. The
//! national data opt-out is applied by exports themselves (`wardline-core`'s
//! `consent`), whoever asks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use wardline_core::access::{Access, Agent, Op, Operation, ResourceView, forbidden};
use wardline_fhir::FhirError;
use wardline_fhir::reference;
use wardline_store::Reader;

use crate::directory::{Directory, Position};
use crate::rbac::{self, Activity, Requirement};
use crate::scopes::{Context, Perm, ScopeSet};

/// Who made the request, as the token (or session) says.
#[derive(Clone, Debug)]
pub struct Principal {
    pub agent: Agent,
    pub scopes: ScopeSet,
    /// The context the token's resource scopes are in (the widest granted).
    pub position: Option<Position>,
    /// SMART launch context.
    pub patient: Option<String>,
    /// Break-glass grants in force: patient id → reason.
    pub break_glass: HashMap<String, String>,
    /// A backend service (client credentials).
    pub system: bool,
}

/// The [`Access`] of one request.
pub struct Policy {
    principal: Principal,
    directory: Arc<Directory>,
    relationships: Mutex<HashMap<String, bool>>,
    consents: Mutex<HashMap<String, wardline_core::consent::Sharing>>,
}

impl Policy {
    pub fn new(principal: Principal, directory: Arc<Directory>) -> Policy {
        Policy {
            principal,
            directory,
            relationships: Mutex::new(HashMap::new()),
            consents: Mutex::new(HashMap::new()),
        }
    }

    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    fn scope_ok(&self, op: Op, t: &str) -> bool {
        let p = Perm::of(op);
        let s = &self.principal.scopes;
        if self.principal.system {
            return s.permits(Context::System, t, p);
        }
        s.permits(Context::User, t, p) || s.permits(Context::Patient, t, p)
    }

    fn activity_ok(&self, op: Op, t: &str) -> Result<(), FhirError> {
        if self.principal.system {
            return Ok(());
        }
        let Some(pos) = &self.principal.position else {
            return Err(forbidden(
                "you act in no position: choose one of your positions to sign in with",
            ));
        };
        let req = rbac::required_activity(t, op);
        if pos.role.permits(req) {
            Ok(())
        } else {
            Err(forbidden(format!(
                "your position ({}) does not include {} {t}",
                pos.role.display(),
                describe(op, &req)
            )))
        }
    }

    fn related(&self, reader: &dyn Reader, patient: &str) -> Result<bool, FhirError> {
        if let Some(&r) = self
            .relationships
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(patient)
        {
            return Ok(r);
        }
        let r = match &self.principal.position {
            Some(pos) => relationship(&self.directory, reader, pos, patient)?,
            None => false,
        };
        self.relationships
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(patient.to_owned(), r);
        Ok(r)
    }

    fn consent_ok(&self, reader: &dyn Reader, patient: &str) -> Result<(), FhirError> {
        let Some(pos) = &self.principal.position else {
            return Ok(());
        };
        let in_trust = self
            .directory
            .is_trust_organisation(reader, &pos.organization)?;
        if in_trust {
            return Ok(());
        }
        let cached = self
            .consents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(patient)
            .cloned();
        let sharing = match cached {
            Some(s) => s,
            None => {
                let s = wardline_core::consent::sharing(
                    wardline_fhir::definitions::r4(),
                    reader,
                    patient,
                    self.directory.now_ms(),
                )?;
                self.consents
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(patient.to_owned(), s.clone());
                s
            }
        };
        if sharing.allows(&pos.organization, false) {
            Ok(())
        } else {
            Err(forbidden(
                "the patient has not consented to their record being shared with your organisation",
            ))
        }
    }
}

impl Policy {
    /// The sharing boundary of demographics (see the module documentation):
    /// trust staff see every patient's; partner staff only those related to
    /// them, under break-glass, or found by an exact trace. A new patient
    /// (create) cannot have a relationship yet.
    fn demographics_ok(
        &self,
        op: Op,
        r: &ResourceView<'_>,
        reader: &dyn Reader,
        patient: &str,
    ) -> Result<(), FhirError> {
        let Some(pos) = &self.principal.position else {
            return Ok(());
        };
        if op == Op::Create
            || self
                .directory
                .is_trust_organisation(reader, &pos.organization)?
            || (op == Op::Search && r.traced)
            || self.principal.break_glass.contains_key(patient)
            || self.related(reader, patient)?
        {
            return Ok(());
        }
        Err(forbidden(
            "this patient has no relationship with your organisation (registered practice, referral or shared care); staff outside the trust find other patients by an exact trace: NHS number and date of birth",
        ))
    }
}

fn describe(op: Op, req: &Requirement) -> String {
    let verb = match op {
        Op::Create => "creating",
        Op::Read => "reading",
        Op::Update => "updating",
        Op::Delete => "deleting",
        Op::Search => "searching",
    };
    match req {
        Requirement::Never => format!("{verb} (nobody may)"),
        Requirement::AnyStaff => verb.to_owned(),
        Requirement::Activity(a) => format!("{verb} (needs the activity {a})"),
        Requirement::AnyOf(list) => format!(
            "{verb} (needs one of the activities {})",
            list.iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

impl Access for Policy {
    fn agent(&self) -> &Agent {
        &self.principal.agent
    }

    fn check_type(&self, op: Op, t: Option<&str>) -> Result<(), FhirError> {
        let Some(t) = t else {
            // Across all types: some scope must allow this kind of
            // interaction at all (each resource is still checked).
            let p = Perm::of(op);
            if self
                .principal
                .scopes
                .resources
                .iter()
                .any(|s| s.query.is_empty() && s.perms.contains(p))
            {
                return Ok(());
            }
            return Err(forbidden(format!(
                "the access token's scopes allow no {} interaction (scope: {})",
                op.letter(),
                self.principal.scopes
            )));
        };
        if !self.scope_ok(op, t) {
            return Err(forbidden(format!(
                "the access token's scopes do not allow {} on {t} (scope: {})",
                op.letter(),
                self.principal.scopes
            )));
        }
        self.activity_ok(op, t)
    }

    fn check_resource(
        &self,
        op: Op,
        r: &ResourceView<'_>,
        reader: &dyn Reader,
    ) -> Result<(), FhirError> {
        self.check_type(op, Some(r.resource_type))?;
        if r.resource_type == "Task"
            && !self.principal.system
            && let Some(pos) = &self.principal.position
            && !rbac::task_permitted(pos.role, op, r.json)
        {
            return Err(forbidden(format!(
                "your position ({}) does not include this kind of task",
                pos.role.display()
            )));
        }
        if r.resource_type == "ServiceRequest"
            && !self.principal.system
            && let Some(pos) = &self.principal.position
            && !rbac::service_request_permitted(pos.role, op, r.json)
        {
            return Err(forbidden(format!(
                "your position ({}) may complete laboratory requests, but not change other requests",
                pos.role.display()
            )));
        }
        if matches!(r.resource_type, "DiagnosticReport" | "Observation")
            && !self.principal.system
            && let Some(pos) = &self.principal.position
            && let Err(missing) = rbac::laboratory_record_permitted(pos.role, op, r.json)
        {
            return Err(forbidden(format!(
                "this is a record the pathology laboratory keeps: changing it needs {missing}, which your position ({}) does not include",
                pos.role.display()
            )));
        }
        if r.resource_type == "MedicationRequest"
            && op.is_write()
            && !r.json.is_empty()
            && !self.principal.system
            && let Some(pos) = &self.principal.position
        {
            let current = reader
                .read("MedicationRequest", r.id)?
                .filter(|c| !c.deleted)
                .map(|c| c.json);
            if !rbac::screening_permitted(pos.role, r.json, current.as_deref()) {
                return Err(forbidden(format!(
                    "only a pharmacist screens a prescription; your position ({}) does not include screening",
                    pos.role.display()
                )));
            }
        }
        if r.resource_type == "Location"
            && !self.principal.system
            && let Some(pos) = &self.principal.position
            && !rbac::location_permitted(pos.role, op, r.json)
        {
            return Err(forbidden(format!(
                "your position ({}) may change the state of a bed, but not other locations",
                pos.role.display()
            )));
        }
        if r.resource_type == "DiagnosticReport"
            && !self.principal.system
            && let Some(pos) = &self.principal.position
            && !rbac::diagnostic_report_permitted(pos.role, op, r.json)
        {
            return Err(forbidden(format!(
                "an unmatched result is seen by the laboratory only, to match it to its patient; your position ({}) does not include it",
                pos.role.display()
            )));
        }
        let Some(patient) = r.patient else {
            return Ok(());
        };
        if self.principal.system {
            return Ok(());
        }
        // patient/ scopes: only the launch patient's compartment.
        let p = Perm::of(op);
        let via_user = self
            .principal
            .scopes
            .permits(Context::User, r.resource_type, p);
        if !via_user {
            match &self.principal.patient {
                Some(ctx) if ctx == patient => {}
                _ => {
                    return Err(forbidden(
                        "the access token is limited to another patient's record",
                    ));
                }
            }
        }
        self.consent_ok(reader, patient)?;
        if r.resource_type == "Patient" {
            return self.demographics_ok(op, r, reader, patient);
        }
        if self.principal.break_glass.contains_key(patient) {
            return Ok(());
        }
        if self.related(reader, patient)? {
            return Ok(());
        }
        // A write that itself puts the patient in the position's care (an
        // admission to the ward, a booking in the clinic) is the relationship.
        if matches!(op, Op::Create | Op::Update)
            && let Some(pos) = &self.principal.position
            && !r.json.is_empty()
            && let Ok(v) = serde_json::from_str::<Value>(r.json)
            && involves(&self.directory, reader, pos, &v)?
        {
            return Ok(());
        }
        let bg = self
            .principal
            .position
            .as_ref()
            .is_some_and(|p| p.role.has(Activity::BreakGlass));
        Err(forbidden(if bg {
            format!(
                "you have no legitimate relationship with this patient; if this is an emergency, use break-glass (POST /auth/break-glass with patient={patient} and your reason) — it is audited and reported to the privacy officer"
            )
        } else {
            "you have no legitimate relationship with this patient".to_owned()
        }))
    }

    fn check_operation(&self, op: Operation) -> Result<(), FhirError> {
        let ok = match op {
            Operation::Export => {
                if self.principal.system {
                    self.principal.scopes.permits(Context::System, "*", Perm::R)
                        || self.principal.scopes.permits(Context::System, "*", Perm::S)
                } else {
                    self.principal
                        .position
                        .as_ref()
                        .is_some_and(|p| p.role.has(Activity::Export))
                }
            }
            Operation::SystemWide => {
                self.principal.system
                    || self
                        .principal
                        .position
                        .as_ref()
                        .is_some_and(|p| p.role.has(Activity::ViewClinical))
            }
            Operation::AuditTrail => self
                .principal
                .position
                .as_ref()
                .is_some_and(|p| p.role.has(Activity::IgAudit)),
        };
        if ok {
            Ok(())
        } else {
            Err(forbidden(match op {
                Operation::Export => {
                    "bulk export needs the export activity (or system/*.rs for a backend service)"
                }
                Operation::SystemWide => {
                    "searching across every resource type is not allowed for you"
                }
                Operation::AuditTrail => {
                    "the audit trail is open to information governance officers only"
                }
            }))
        }
    }

    fn break_glass(&self, patient: &str) -> Option<String> {
        self.principal.break_glass.get(patient).cloned()
    }
}

fn reference_id<'a>(v: &'a Value, t: &str) -> Option<&'a str> {
    v.get("reference")
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit_once(&format!("{t}/")).map(|(_, id)| id))
}

/// The references of a resource that may name a position: every reference
/// except those under a `subject` or `patient` element (the patient's own)
/// and those inside a `reference` element that is itself a Reference
/// (`Consent.provision.actor.reference`).
fn naming_refs(v: &Value) -> impl Iterator<Item = &str> {
    reference::references_with_pointers(v)
        .into_iter()
        .filter(|(pointer, _)| {
            let mut keys: Vec<&str> = pointer.split('/').collect();
            keys.pop();
            !keys
                .iter()
                .any(|k| matches!(*k, "subject" | "patient" | "reference"))
        })
        .map(|(_, r)| r)
}

/// Whether a resource names the position: its practitioner, the position
/// itself, its organisation, or a location within its locations.
fn involves(
    dir: &Directory,
    reader: &dyn Reader,
    pos: &Position,
    v: &Value,
) -> Result<bool, FhirError> {
    for r in naming_refs(v) {
        if let Some((t, id)) = r.rsplit_once('/').and_then(|(head, id)| {
            head.rsplit('/')
                .next()
                .map(|t| (t.to_owned(), id.to_owned()))
        }) {
            match t.as_str() {
                "Practitioner" if id == pos.practitioner => return Ok(true),
                "PractitionerRole" if id == pos.id => return Ok(true),
                "Organization"
                    if id == pos.organization
                        && !pos.organization.is_empty()
                        && !dir.is_trust_root(&id) =>
                {
                    return Ok(true);
                }
                "Location" if dir.location_within(reader, &id, &pos.locations)? => {
                    return Ok(true);
                }
                _ => {}
            }
        }
    }
    Ok(false)
}

/// Whether a finished encounter ended no more than `days` days before
/// `now_ms` (an end after `now_ms`, e.g. a clock a little behind, counts as
/// recent): its `period.end` is read as the latest
/// instant it may denote (a date ends at its day's end), so a day-precision
/// end is never cut short. An encounter without an end is not recent.
pub fn recently_finished(encounter: &Value, now_ms: i64, days: u32) -> bool {
    let Some(end) = encounter
        .pointer("/period/end")
        .and_then(Value::as_str)
        .and_then(wardline_fhir::datetime::parse_range)
    else {
        return false;
    };
    let window = i64::from(days) * 86_400_000;
    now_ms < end.1.saturating_add(window)
}

/// Whether the position has a care relationship with the patient:
/// * an open encounter (planned, arrived, triaged, in progress, on leave)
///   at one of its locations (or a bed, bay or ward within them), or naming
///   its practitioner or the position as a participant;
/// * a **recently finished** encounter, by the same test: `finished` with
///   `period.end` no more than [`Directory::recent_encounter_days`] before
///   the directory's clock ([`recently_finished`]) — the treating team
///   writes and signs the discharge summary after the patient has left;
/// * an active episode of care, care team or referral (ServiceRequest)
///   naming its practitioner, the position, or its organisation (when that is
///   a team or partner, not the whole trust); for laboratory and radiology
///   staff, an open request of their department ([`rbac::request_relates`]),
///   and for laboratory staff a completed laboratory request too (the
///   laboratory keeps the patient's results history);
/// * a booked or arrived appointment naming its practitioner, the position
///   or one of its locations;
/// * an open results task for the patient owned by its practitioner or the
///   position (a result to review in their inbox, an escalation, a
///   follow-up of one; [`rbac::RESULT_TASK_CODES`]);
/// * the patient's registered GP practice or GP (`generalPractitioner`, or
///   `managingOrganization` when that is a partner organisation).
pub fn relationship(
    dir: &Directory,
    reader: &dyn Reader,
    pos: &Position,
    patient: &str,
) -> Result<bool, FhirError> {
    let checks: [(&str, &str); 5] = [
        ("Encounter", "planned,arrived,triaged,in-progress,onleave"),
        ("EpisodeOfCare", "active,waitlist"),
        ("CareTeam", "active"),
        ("ServiceRequest", "active,draft,on-hold"),
        ("Appointment", "booked,arrived,checked-in,pending"),
    ];
    let recent = dir.search(
        reader,
        "Encounter",
        &[
            ("patient", format!("Patient/{patient}")),
            ("status", "finished".to_owned()),
        ],
    )?;
    for v in recent {
        if recently_finished(&v, dir.now_ms(), dir.recent_encounter_days())
            && involves(dir, reader, pos, &v)?
        {
            return Ok(true);
        }
    }
    for (t, statuses) in checks {
        for v in dir.search(
            reader,
            t,
            &[
                ("patient", format!("Patient/{patient}")),
                ("status", statuses.to_owned()),
            ],
        )? {
            if involves(dir, reader, pos, &v)?
                || (t == "ServiceRequest" && rbac::request_relates(pos.role, &v))
            {
                return Ok(true);
            }
        }
    }
    // A result in their inbox (which outlives the request: the laboratory
    // completes it when it releases the result), an escalation or a
    // follow-up of one: an open results Task for the patient *owned* by
    // the practitioner or the position. Only these codes and only the
    // owner: other tasks name people for other reasons (the requester of a
    // break-glass review must not keep access through it).
    for v in dir.search(
        reader,
        "Task",
        &[
            ("patient", format!("Patient/{patient}")),
            (
                "status",
                "requested,received,accepted,ready,in-progress,on-hold".to_owned(),
            ),
            (
                "code",
                rbac::RESULT_TASK_CODES
                    .iter()
                    .map(|c| format!("{}|{c}", crate::directory::TASK_SYSTEM))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ],
    )? {
        let owner = v.get("owner").and_then(|o| {
            reference_id(o, "Practitioner")
                .filter(|id| *id == pos.practitioner)
                .or_else(|| reference_id(o, "PractitionerRole").filter(|id| *id == pos.id))
        });
        if owner.is_some() {
            return Ok(true);
        }
    }
    // The laboratory keeps a patient's results history (delta checks,
    // cumulative results, corrections): its staff's relationship goes on
    // through the patient's completed laboratory requests too.
    if pos.role.has(Activity::LabProcess) {
        for v in dir.search(
            reader,
            "ServiceRequest",
            &[
                ("patient", format!("Patient/{patient}")),
                ("status", "completed".to_owned()),
            ],
        )? {
            if rbac::request_relates(pos.role, &v) {
                return Ok(true);
            }
        }
    }
    if let Some(p) = reader.read("Patient", patient)?.filter(|r| !r.deleted)
        && let Ok(v) = serde_json::from_str::<Value>(&p.json)
    {
        for gp in v
            .get("generalPractitioner")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if reference_id(gp, "Organization").is_some_and(|o| o == pos.organization)
                || reference_id(gp, "Practitioner").is_some_and(|o| o == pos.practitioner)
                || reference_id(gp, "PractitionerRole").is_some_and(|o| o == pos.id)
            {
                return Ok(true);
            }
        }
        // The organisation that keeps the patient's record, when it is a
        // partner (a GP practice's own registered list); the trust keeping
        // a record is no relationship with every one of its positions.
        if let Some(m) = v
            .get("managingOrganization")
            .and_then(|m| reference_id(m, "Organization"))
            && m == pos.organization
            && !dir.is_trust_organisation(reader, m)?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_finished_encounter_is_recent_for_its_window_only() {
        let day = 86_400_000;
        let e = json!({"status": "finished", "period": {"end": "2026-01-10T12:00:00Z"}});
        let end = wardline_fhir::datetime::parse_range("2026-01-10T12:00:00Z")
            .unwrap()
            .0;
        assert!(recently_finished(&e, end, 14));
        assert!(recently_finished(&e, end - day, 14));
        assert!(recently_finished(&e, end + 14 * day - 1, 14));
        assert!(!recently_finished(&e, end + 14 * day + 1_000, 14));
        assert!(!recently_finished(&e, end + 1_000, 0));
        let date_only = json!({"period": {"end": "2026-01-10"}});
        assert!(recently_finished(&date_only, end + 11 * 3_600_000, 0));
        assert!(!recently_finished(&json!({"period": {}}), end, 14));
    }

    #[test]
    fn the_patients_own_references_do_not_name_a_position() {
        let v = json!({
            "resourceType": "Encounter",
            "subject": {"reference": "Patient/p"},
            "participant": [{"individual": {"reference": "Practitioner/x"}},
                            {"individual": {"reference": "https://h/fhir/PractitionerRole/r"}}],
            "location": [{"location": {"reference": "Location/w"}}],
            "contained": [{"resourceType": "Observation", "subject": {"reference": "Group/g"},
                           "performer": [{"reference": "Organization/o"}]}],
            "extension": [{"url": "https://example.org/x", "valueReference": {"reference": "Practitioner/e"}},
                          {"url": "https://example.org/y", "extension": [
                              {"url": "patient", "valueReference": {"reference": "Practitioner/in-ext"}}]}],
            "hospitalization": {"origin": {"reference": "Location/o"}},
            "patient": [{"link": {"reference": "Practitioner/under-patient"}}],
            "provision": {"actor": [{"reference": {"reference": "Organization/actor"}}]}
        });
        assert_eq!(
            naming_refs(&v).collect::<Vec<_>>(),
            vec![
                "Practitioner/x",
                "https://h/fhir/PractitionerRole/r",
                "Location/w",
                "Organization/o",
                "Practitioner/e",
                "Practitioner/in-ext",
                "Location/o"
            ]
        );
    }
}
