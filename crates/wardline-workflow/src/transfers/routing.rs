//! Routing per GP practice: the practice `Organization.endpoint` list, in
//! order of preference, of `Endpoint`s whose `connectionType` is
//! [`super::CONNECTION_SYSTEM`] `mesh` (`address` `mesh://{mailbox id}`) or
//! `email` (`address` `mailto:{address}`). Endpoint ids are
//! `{organization id}-mesh` and `{organization id}-email`; a route taken off
//! the list is kept with `status` `off`. Administrators (`ManageDirectory`,
//! the RBAC table's activity for `Endpoint` and `Organization` writes) set
//! them ([`set_routes`], audit subtype `transfers-routing`).

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
