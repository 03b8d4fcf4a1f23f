//! Routing per GP practice: the practice `Organization.endpoint` list, in
//! order of preference, of `Endpoint`s whose `connectionType` is
//! [`super::CONNECTION_SYSTEM`] `mesh` (`address` `mesh://{mailbox id}`) or
//! `email` (`address` `mailto:{address}`). Endpoint ids are
//! `{organization id}-mesh` and `{organization id}-email`; a route taken off
//! the list is kept with `status` `off`. Administrators (`ManageDirectory`,
//! the RBAC table's activity for `Endpoint` and `Organization` writes) set
//! them ([`set_routes`], audit subtype `transfers-routing`).
//!
//! A delivery to a *patient* (their copy of a clinic letter) is routed to
//! their email address only ([`recipient_routes_in`], [`patient_copy_in`],
//! honouring their [`CopyPreference`]).

use serde::Serialize;
use serde_json::{Value, json};
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, Tx};

use super::{CONNECTION_SYSTEM, TransfersError};
use crate::fhir::reference_id;

/// A route's channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Channel {
    Mesh,
    Email,
}

impl Channel {
    pub fn code(self) -> &'static str {
        match self {
            Channel::Mesh => "mesh",
            Channel::Email => "email",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Channel::Mesh => "MESH",
            Channel::Email => "Email",
        }
    }
    pub fn of_code(s: &str) -> Option<Channel> {
        match s {
            "mesh" => Some(Channel::Mesh),
            "email" => Some(Channel::Email),
            _ => None,
        }
    }
    fn scheme(self) -> &'static str {
        match self {
            Channel::Mesh => "mesh://",
            Channel::Email => "mailto:",
        }
    }
}

/// One way to reach a practice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub channel: Channel,
    /// The MESH mailbox id or the email address (without the URI scheme).
    pub address: String,
}

/// Checks a route's address: a MESH mailbox id is 1–20 letters and digits
/// (upper case); an email address must parse as one. The error names the field.
pub fn validate(channel: Channel, address: &str) -> Result<String, TransfersError> {
    let a = address.trim();
    match channel {
        Channel::Mesh => {
            let up = a.to_ascii_uppercase();
            if up.is_empty()
                || up.len() > 20
                || !up.chars().all(|c| c.is_ascii_alphanumeric())
            {
                return Err(TransfersError::Invalid(format!(
                    "mesh: the MESH mailbox id must be 1 to 20 letters and digits, e.g. X26ABC2, not {a:?}."
                )));
            }
            Ok(up)
        }
        Channel::Email => a
            .parse::<lettre::Address>()
            .map(|_| a.to_owned())
            .map_err(|_| {
                TransfersError::Invalid(format!(
                    "email: enter the practice's email address, e.g. gp.practice@nhs.net, not {a:?}."
                ))
            }),
    }
}

fn route_of(endpoint: &Value) -> Option<Route> {
    if endpoint["status"] != "active" {
        return None;
    }
    let ct = &endpoint["connectionType"];
    if ct["system"] != CONNECTION_SYSTEM {
        return None;
    }
    let channel = Channel::of_code(ct["code"].as_str()?)?;
    let address = endpoint["address"]
        .as_str()?
        .strip_prefix(channel.scheme())?;
    Some(Route {
        channel,
        address: address.to_owned(),
    })
}

/// The practice's routes in order of preference (active Endpoints only).
pub fn routes_in(tx: &mut Tx<'_>, organization: &str) -> Result<Vec<Route>, TransfersError> {
    let Some(org) = tx.get("Organization", organization)? else {
        return Err(TransfersError::NotFound(format!(
            "There is no organisation Organization/{organization}."
        )));
    };
    let mut out = Vec::new();
    for r in org["endpoint"].as_array().into_iter().flatten() {
        if let Some(id) = reference_id(r, "Endpoint")
            && let Some(ep) = tx.get("Endpoint", id)?
            && let Some(route) = route_of(&ep)
        {
            out.push(route);
        }
    }
    Ok(out)
}

/// Sets the practice's routes, in order of preference (at most one per
/// channel), in `tx`.
pub fn set_routes_in(
    tx: &mut Tx<'_>,
    organization: &str,
    routes: &[Route],
) -> Result<(), TransfersError> {
    tx.lock(&[format!("Organization/{organization}")])?;
    let Some(mut org) = tx.get("Organization", organization)? else {
        return Err(TransfersError::NotFound(format!(
            "There is no organisation Organization/{organization}."
        )));
    };
    let mut seen = Vec::new();
    let mut refs = Vec::new();
    for r in routes {
        if seen.contains(&r.channel) {
            return Err(TransfersError::Invalid(format!(
                "{}: give each route once.",
                r.channel.code()
            )));
        }
        seen.push(r.channel);
        let address = validate(r.channel, &r.address)?;
        let id = format!("{organization}-{}", r.channel.code());
        tx.save(json!({
            "resourceType": "Endpoint",
            "id": id,
            "status": "active",
            "connectionType": {"system": CONNECTION_SYSTEM, "code": r.channel.code(), "display": r.channel.label()},
            "name": format!("{} to {}", r.channel.label(), org["name"].as_str().unwrap_or(organization)),
            "managingOrganization": {"reference": format!("Organization/{organization}")},
            "payloadType": [{"text": "Transfer of care documents (FHIR document Bundle, PDF)"}],
            "payloadMimeType": ["application/fhir+json", "application/pdf"],
            "address": format!("{}{address}", r.channel.scheme()),
        }))?;
        refs.push(json!({"reference": format!("Endpoint/{id}")}));
    }
    for ch in [Channel::Mesh, Channel::Email] {
        let id = format!("{organization}-{}", ch.code());
        if !seen.contains(&ch)
            && let Some(mut ep) = tx.get("Endpoint", &id)?
            && ep["status"] != "off"
        {
            ep["status"] = json!("off");
            tx.save(ep)?;
        }
    }
    // Endpoints of other kinds the practice lists are kept, after ours.
    for r in org["endpoint"].as_array().into_iter().flatten() {
        let ours = reference_id(r, "Endpoint").is_some_and(|id| {
            id == format!("{organization}-mesh") || id == format!("{organization}-email")
        });
        if !ours {
            refs.push(r.clone());
        }
    }
    if refs.is_empty() {
        if let Some(o) = org.as_object_mut() {
            o.remove("endpoint");
        }
    } else {
        org["endpoint"] = json!(refs);
    }
    tx.save(org)?;
    Ok(())
}

/// [`set_routes_in`] as one audited transaction.
pub fn set_routes(
    svc: &FhirService,
    access: &dyn Access,
    organization: &str,
    routes: &[Route],
) -> Result<(), TransfersError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "transfers-routing", "U");
    set_routes_in(&mut tx, organization, routes)?;
    tx.commit()?;
    Ok(())
}

/// A GP practice with its routes, for the routing page.
#[derive(Debug, Clone, Serialize)]
pub struct Practice {
    pub id: String,
    pub name: String,
    pub ods: Option<String>,
    pub routes: Vec<Route>,
}

/// The GP practices (Organizations of type GP PRACTICE, ODS role 76) and
/// their routes, by name.
pub fn practices(svc: &FhirService, access: &dyn Access) -> Result<Vec<Practice>, TransfersError> {
    let mut tx = svc.begin(access)?;
    let orgs = tx.find(
        "Organization",
        "type=https://fhir.nhs.uk/CodeSystem/organisation-role|76&_count=1000",
    )?;
    let mut out = Vec::new();
    for o in orgs {
        let Some(id) = o["id"].as_str() else { continue };
        let routes = routes_in(&mut tx, id)?;
        out.push(Practice {
            id: id.to_owned(),
            name: o["name"].as_str().unwrap_or(id).to_owned(),
            ods: o["identifier"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|i| i["system"] == "https://fhir.nhs.uk/Id/ods-organization-code")
                .and_then(|i| i["value"].as_str())
                .map(str::to_owned),
            routes,
        });
    }
    tx.commit()?;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

// ------------------------------------------------------- to a patient

/// `Basic.code` system of Wardline's small records that FHIR has no
/// resource for.
pub const BASIC_KIND_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/basic-kind";
/// `Basic.code` of a patient's preference for copies of their letters.
pub const COPY_PREFERENCE_CODE: &str = "letter-copy-preference";
/// The preference itself (`valueCode` `email` | `post` | `none`, on the Basic).
pub const COPY_PREFERENCE_EXT: &str =
    "https://fhir.wardline.invalid/StructureDefinition/letter-copy-preference";

/// How a patient wants their copies of letters. Kept as one `Basic` per
/// patient (id `letter-copy-{patient id}`, `subject` the Patient, `code`
/// [`COPY_PREFERENCE_CODE`], the choice in [`COPY_PREFERENCE_EXT`],
/// `author` and `created` who recorded it and when; its history is the
/// resource's versions). Clinicians record it in clinic (`RecordClinical`,
/// the table's activity for `Basic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CopyPreference {
    /// By email (to the address on the Patient).
    Email,
    /// By post: the patient declined email.
    Post,
    /// No copy.
    None,
}

impl CopyPreference {
    pub const ALL: [CopyPreference; 3] = [
        CopyPreference::Email,
        CopyPreference::Post,
        CopyPreference::None,
    ];
    pub fn code(self) -> &'static str {
        match self {
            CopyPreference::Email => "email",
            CopyPreference::Post => "post",
            CopyPreference::None => "none",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            CopyPreference::Email => "By email",
            CopyPreference::Post => "By post (no email)",
            CopyPreference::None => "No copy",
        }
    }
    pub fn of_code(s: &str) -> Option<CopyPreference> {
        CopyPreference::ALL.into_iter().find(|p| p.code() == s)
    }
}

fn preference_id(patient: &str) -> String {
    format!("letter-copy-{patient}")
}

/// The patient's recorded preference, if any, read in `tx`.
pub fn preference_in(
    tx: &mut Tx<'_>,
    patient: &str,
) -> Result<Option<CopyPreference>, TransfersError> {
    Ok(tx
        .get("Basic", &preference_id(patient))?
        .filter(|b| reference_id(&b["subject"], "Patient") == Some(patient))
        .and_then(|b| {
            b["extension"]
                .as_array()?
                .iter()
                .find(|e| e["url"] == COPY_PREFERENCE_EXT)?["valueCode"]
                .as_str()
                .and_then(CopyPreference::of_code)
        }))
}

/// Records the patient's preference in `tx` (a new version of their Basic).
pub fn set_preference_in(
    tx: &mut Tx<'_>,
    patient: &str,
    pref: CopyPreference,
    now: time::OffsetDateTime,
) -> Result<(), TransfersError> {
    if tx.get("Patient", patient)?.is_none() {
        return Err(TransfersError::NotFound(format!(
            "There is no patient Patient/{patient}."
        )));
    }
    let id = preference_id(patient);
    tx.lock(&[format!("Basic/{id}")])?;
    let mut b = json!({
        "resourceType": "Basic",
        "id": id,
        "code": {"coding": [{"system": BASIC_KIND_SYSTEM, "code": COPY_PREFERENCE_CODE,
            "display": "Preference for copies of letters"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "created": super::fhir_time(now).get(..10).unwrap_or_default(),
        "extension": [{"url": COPY_PREFERENCE_EXT, "valueCode": pref.code()}],
    });
    if let Some(who) = tx.access().agent().who.clone() {
        b["author"] = json!({"reference": who});
    }
    tx.save(b)?;
    Ok(())
}

/// [`set_preference_in`] as one audited transaction
/// (`transfers-patient-preference`).
pub fn set_preference(
    svc: &FhirService,
    access: &dyn Access,
    patient: &str,
    pref: CopyPreference,
    now: time::OffsetDateTime,
) -> Result<(), TransfersError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "transfers-patient-preference", "U");
    set_preference_in(&mut tx, patient, pref, now)?;
    tx.commit()?;
    Ok(())
}

/// The patient's email address (`Patient.telecom` `system` `email`, not
/// ended; `home` first), when it is a valid one.
pub fn patient_email(p: &Value) -> Option<String> {
    let mut emails: Vec<&Value> = p["telecom"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["system"] == "email" && t["period"]["end"].is_null())
        .collect();
    emails.sort_by_key(|t| (t["use"] != "home", t["rank"].as_u64().unwrap_or(u64::MAX)));
    emails
        .into_iter()
        .find_map(|t| validate(Channel::Email, t["value"].as_str()?).ok())
}

/// Where a patient's copy goes: the one home of the choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PatientCopy {
    /// To this email address.
    Email(String),
    /// Printed and posted (no email address, or email declined).
    Post,
    /// The patient wants no copy.
    NoCopy,
}

/// How the patient's copy goes, read in `tx`: no copy when they asked for
/// none; post when they declined email or have no valid email address;
/// otherwise email. Read again when it is sent, so a change of mind
/// after signing is honoured.
pub fn patient_copy_in(tx: &mut Tx<'_>, patient: &str) -> Result<PatientCopy, TransfersError> {
    let pref = preference_in(tx, patient)?;
    if pref == Some(CopyPreference::None) {
        return Ok(PatientCopy::NoCopy);
    }
    let Some(p) = tx.get("Patient", patient)? else {
        return Err(TransfersError::NotFound(format!(
            "There is no patient Patient/{patient}."
        )));
    };
    Ok(match (pref, patient_email(&p)) {
        (Some(CopyPreference::Post), _) | (_, None) => PatientCopy::Post,
        (_, Some(a)) => PatientCopy::Email(a),
    })
}

/// The routes of a delivery's recipient (`Communication.recipient[0]`): a
/// practice's routes ([`routes_in`]); for a patient, their email when
/// [`patient_copy_in`] says email, else none (the delivery then stops on
/// the failures worklist). A recipient that names nothing that exists has
/// none; a store error is an error, never read as "no route".
pub fn recipient_routes_in(
    tx: &mut Tx<'_>,
    recipient: &Value,
) -> Result<Vec<Route>, TransfersError> {
    if let Some(org) = reference_id(recipient, "Organization") {
        return match routes_in(tx, org) {
            Err(TransfersError::NotFound(_)) => Ok(Vec::new()),
            other => other,
        };
    }
    if let Some(patient) = reference_id(recipient, "Patient") {
        return match patient_copy_in(tx, patient) {
            Ok(PatientCopy::Email(address)) => Ok(vec![Route {
                channel: Channel::Email,
                address,
            }]),
            Ok(_) | Err(TransfersError::NotFound(_)) => Ok(Vec::new()),
            Err(e) => Err(e),
        };
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked() {
        assert_eq!(validate(Channel::Mesh, " x26abc2 ").unwrap(), "X26ABC2");
        assert!(validate(Channel::Mesh, "X26 ABC2").is_err());
        assert!(validate(Channel::Mesh, "").is_err());
        assert!(validate(Channel::Email, "gp.e82001@nhs.net").is_ok());
        let e = validate(Channel::Email, "not an address").unwrap_err();
        assert!(e.message().starts_with("email:"));
    }

    #[test]
    fn only_active_known_endpoints_are_routes() {
        let ep = json!({"status": "active", "connectionType": {"system": CONNECTION_SYSTEM, "code": "mesh"}, "address": "mesh://X26ABC2"});
        assert_eq!(
            route_of(&ep),
            Some(Route {
                channel: Channel::Mesh,
                address: "X26ABC2".into()
            })
        );
        let mut off = ep.clone();
        off["status"] = json!("off");
        assert_eq!(route_of(&off), None);
    }
}
