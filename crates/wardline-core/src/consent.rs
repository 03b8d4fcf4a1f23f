//! Patients' consent decisions, read from FHIR `Consent` resources.
//!
//! Two decisions are honoured (the reference for how they are recorded):
//!
//! * **Dissent from sharing with partner organisations** — an active Consent
//!   with scope `patient-privacy`
//!   (`http://terminology.hl7.org/CodeSystem/consentscope`) whose
//!   `provision.type` is `deny`. With `provision.actor` references to
//!   Organizations, sharing with those organisations is refused; without any
//!   actor, sharing with every organisation outside the trust is refused.
//!   Staff of the trust itself are not affected (the treating team still
//!   sees the record). The access policy (`wardline-auth`) applies this on
//!   every read.
//! * **National data opt-out** (secondary use) — an active Consent with scope
//!   `research` whose `provision.type` is `deny`. Such patients, and every
//!   resource in their compartment, are left out of bulk exports and
//!   pseudonymised extracts ([`secondary_use_opt_outs`]).
//!
//! A Consent is in force when its status is `active` and `provision.period`
//! (if any) contains now.
//!
//! [`resource`] writes a [`Decision`] as the Consent that [`apply`] reads
//! (what the workflows record), and [`decision_of`] reads one back (what
//! the chart shows), so recording and honouring cannot drift apart.

use std::collections::HashSet;

use serde_json::Value;
use wardline_fhir::FhirError;
use wardline_fhir::definitions::Definitions;
use wardline_store::{PageRequest, Reader};

const SCOPE: &str = "http://terminology.hl7.org/CodeSystem/consentscope";

/// What a patient's Consents say about sharing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sharing {
    /// Sharing with every organisation outside the trust is refused.
    pub deny_all_partners: bool,
    /// Sharing with these organisations (ids) is refused.
    pub deny_organisations: Vec<String>,
    /// The national data opt-out applies.
    pub secondary_use_opt_out: bool,
}

impl Sharing {
    /// May staff of organisation `org` (an id) see the record, given whether
    /// that organisation is part of the trust?
    pub fn allows(&self, org: &str, org_is_trust: bool) -> bool {
        if org_is_trust {
            return true;
        }
        !self.deny_all_partners && !self.deny_organisations.iter().any(|o| o == org)
    }
}

/// A decision a patient can make about their record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Dissent from sharing with organisations outside the trust: with
    /// these (Organization ids), or with every one when empty.
    NoSharing(Vec<String>),
    /// The national data opt-out: no use for research or planning.
    NationalOptOut,
}

/// The Consent that records `decision` for `patient`, made at `now_ms`:
/// scope `patient-privacy` or `research`, `provision.type` `deny`, the
/// organisations as `provision.actor` (role `IRCP`, information recipient).
pub fn resource(patient: &str, decision: &Decision, now_ms: i64) -> Value {
    let scope = match decision {
        Decision::NoSharing(_) => ("patient-privacy", "Privacy Consent"),
        Decision::NationalOptOut => ("research", "Research"),
    };
    let mut c = serde_json::json!({
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": SCOPE, "code": scope.0, "display": scope.1}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"}]}],
        "patient": {"reference": format!("Patient/{patient}")},
        "dateTime": wardline_fhir::datetime::format_instant(now_ms),
        "performer": [{"reference": format!("Patient/{patient}")}],
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTOUT", "display": "opt-out"}]},
        "provision": {"type": "deny"},
    });
    if let Decision::NoSharing(orgs) = decision
        && !orgs.is_empty()
    {
        c["provision"]["actor"] = orgs
            .iter()
            .map(|o| serde_json::json!({
                "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP", "display": "information recipient"}]},
                "reference": {"reference": format!("Organization/{o}")},
            }))
            .collect();
    }
    c
}

/// The decision a Consent records, if it is one Wardline honours (a `deny`
/// of scope `patient-privacy` or `research`), whether or not it is in
/// force now ([`is_in_force`]).
pub fn decision_of(c: &Value) -> Option<Decision> {
    if !denies(c) {
        return None;
    }
    if scope_is(c, "research") {
        return Some(Decision::NationalOptOut);
    }
    if scope_is(c, "patient-privacy") {
        return Some(Decision::NoSharing(actors(c)));
    }
    None
}

/// Whether a Consent is in force at `now_ms` (status `active`, and
/// `provision.period`, if any, contains it).
pub fn is_in_force(c: &Value, now_ms: i64) -> bool {
    in_force(c, now_ms)
}

fn actors(c: &Value) -> Vec<String> {
    c.pointer("/provision/actor")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| a.pointer("/reference/reference").and_then(Value::as_str))
        .filter_map(|r| r.rsplit_once("Organization/").map(|(_, id)| id.to_owned()))
        .collect()
}

fn in_force(c: &Value, now_ms: i64) -> bool {
    if c.get("status").and_then(Value::as_str) != Some("active") {
        return false;
    }
    if let Some(p) = c.pointer("/provision/period") {
        let bound = |k: &str, upper: bool| {
            p.get(k)
                .and_then(Value::as_str)
                .and_then(wardline_fhir::datetime::parse_range)
                .map(|(lo, hi)| if upper { hi } else { lo })
        };
        if bound("start", false).is_some_and(|s| now_ms < s) {
            return false;
        }
        if bound("end", true).is_some_and(|e| now_ms >= e) {
            return false;
        }
    }
    true
}

fn scope_is(c: &Value, code: &str) -> bool {
    c.pointer("/scope/coding")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|x| {
                x.get("system").and_then(Value::as_str) == Some(SCOPE)
                    && x.get("code").and_then(Value::as_str) == Some(code)
            })
        })
}

fn denies(c: &Value) -> bool {
    c.pointer("/provision/type").and_then(Value::as_str) == Some("deny")
}

/// Folds one Consent into `s`.
pub fn apply(s: &mut Sharing, c: &Value, now_ms: i64) {
    if !in_force(c, now_ms) || !denies(c) {
        return;
    }
    if scope_is(c, "research") {
        s.secondary_use_opt_out = true;
    }
    if scope_is(c, "patient-privacy") {
        let orgs = actors(c);
        if orgs.is_empty() {
            s.deny_all_partners = true;
        } else {
            s.deny_organisations.extend(orgs);
        }
    }
}

/// A patient's sharing decisions.
pub fn sharing(
    defs: &Definitions,
    reader: &dyn Reader,
    patient: &str,
    now_ms: i64,
) -> Result<Sharing, FhirError> {
    let q = wardline_fhir::search::parse(
        defs,
        Some("Consent"),
        &[
            ("patient".into(), format!("Patient/{patient}")),
            ("status".into(), "active".into()),
        ],
        wardline_fhir::search::Handling::Strict,
    )?;
    let page = reader.search(
        &q,
        &PageRequest {
            count: 100,
            ..PageRequest::default()
        },
    )?;
    let mut s = Sharing::default();
    for r in page.resources {
        if let Ok(v) = serde_json::from_str::<Value>(&r.json) {
            apply(&mut s, &v, now_ms);
        }
    }
    Ok(s)
}

/// A patient's sharing decisions read inside a transaction, folded by the
/// same [`apply`] as [`sharing`] (what a delivery checks before anything
/// leaves the trust: `wardline_workflow::transfers::send`).
pub fn sharing_in(
    tx: &mut crate::Tx<'_>,
    patient: &str,
    now_ms: i64,
) -> Result<Sharing, FhirError> {
    let mut s = Sharing::default();
    for c in tx.find(
        "Consent",
        &format!("patient=Patient/{patient}&status=active&_count=100"),
    )? {
        apply(&mut s, &c, now_ms);
    }
    Ok(s)
}

/// Every patient under the national data opt-out (for exports).
pub fn secondary_use_opt_outs(
    defs: &Definitions,
    reader: &dyn Reader,
    now_ms: i64,
) -> Result<HashSet<String>, FhirError> {
    let q = wardline_fhir::search::parse(
        defs,
        Some("Consent"),
        &[
            ("status".into(), "active".into()),
            ("scope".into(), format!("{SCOPE}|research")),
        ],
        wardline_fhir::search::Handling::Strict,
    )?;
    let mut out = HashSet::new();
    let mut after = None;
    loop {
        let page = reader.search(
            &q,
            &PageRequest {
                count: 1000,
                after_rid: after,
                ..PageRequest::default()
            },
        )?;
        for r in &page.resources {
            if let Ok(v) = serde_json::from_str::<Value>(&r.json) {
                let mut s = Sharing::default();
                apply(&mut s, &v, now_ms);
                if s.secondary_use_opt_out
                    && let Some(p) = &r.patient_key
                {
                    out.insert(p.clone());
                }
            }
        }
        match (page.has_more, page.resources.last()) {
            (true, Some(l)) => after = Some(l.rid),
            _ => break,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn consent(scope: &str, actors: &[&str]) -> Value {
        let mut c = json!({
            "resourceType": "Consent",
            "status": "active",
            "scope": {"coding": [{"system": SCOPE, "code": scope}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": "Patient/p1"},
            "provision": {"type": "deny"},
        });
        if !actors.is_empty() {
            c["provision"]["actor"] = Value::Array(
                actors
                    .iter()
                    .map(|a| json!({"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]}, "reference": {"reference": format!("Organization/{a}")}}))
                    .collect(),
            );
        }
        c
    }

    #[test]
    fn what_is_recorded_is_what_is_honoured() {
        let defs = wardline_fhir::definitions::r4();
        let now = wardline_fhir::datetime::now_ms();
        for (d, all, council, opt_out) in [
            (Decision::NoSharing(vec![]), true, true, false),
            (
                Decision::NoSharing(vec!["council".into()]),
                false,
                true,
                false,
            ),
            (Decision::NationalOptOut, false, false, true),
        ] {
            let c = resource("p1", &d, now);
            defs.validate(&c).unwrap();
            assert_eq!(decision_of(&c), Some(d.clone()));
            assert!(is_in_force(&c, now));
            let mut s = Sharing::default();
            apply(&mut s, &c, now);
            assert_eq!(s.deny_all_partners, all, "{d:?}");
            assert_eq!(!s.allows("council", false), council, "{d:?}");
            assert_eq!(s.secondary_use_opt_out, opt_out, "{d:?}");
            assert!(s.allows("trust", true));
        }
        let mut permit = resource("p1", &Decision::NationalOptOut, now);
        permit["provision"]["type"] = json!("permit");
        assert_eq!(decision_of(&permit), None);
    }

    #[test]
    fn decisions() {
        let defs = wardline_fhir::definitions::r4();
        let mut s = Sharing::default();
        let c = consent("patient-privacy", &[]);
        defs.validate(&c).unwrap();
        apply(&mut s, &c, 0);
        assert!(s.deny_all_partners);
        assert!(s.allows("trust", true));
        assert!(!s.allows("gp-practice", false));

        let mut s = Sharing::default();
        apply(&mut s, &consent("patient-privacy", &["council"]), 0);
        assert!(s.allows("gp-practice", false));
        assert!(!s.allows("council", false));

        let mut s = Sharing::default();
        apply(&mut s, &consent("research", &[]), 0);
        assert!(s.secondary_use_opt_out && !s.deny_all_partners);

        let mut inactive = consent("research", &[]);
        inactive["status"] = json!("inactive");
        let mut s = Sharing::default();
        apply(&mut s, &inactive, 0);
        assert!(!s.secondary_use_opt_out);

        let mut expired = consent("research", &[]);
        expired["provision"]["period"] = json!({"end": "2020-01-01"});
        let mut s = Sharing::default();
        apply(&mut s, &expired, wardline_fhir::datetime::now_ms());
        assert!(!s.secondary_use_opt_out);
    }
}
