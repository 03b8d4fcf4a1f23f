//! The CapabilityStatement, generated from what the service really supports:
//! its search parameters from the definitions, its operations from the
//! operations table (system ones under `rest.operation`, type and instance
//! ones under their resource type's `operation`; the implementation guides
//! they are part of in `instantiates`), and the profiles it checks: each
//! resource type's base definition as `profile`, the UK Core profiles
//! carried by `wardline_fhir::profile` as `supportedProfile`.

use serde_json::{Value, json};
use wardline_fhir::definitions::{Definitions, SearchParamType};

use crate::OAuthUris;
use crate::operation::{Level, Operations};

/// `{name, definition}` of each operation at a level that `want` accepts,
/// once per name and definition.
fn operations(ops: &Operations, want: impl Fn(&Level) -> bool) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for o in ops.iter().filter(|o| want(o.level())) {
        let v = json!({"name": o.name(), "definition": o.definition()});
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

pub(crate) fn statement(
    defs: &Definitions,
    base: &str,
    oauth: Option<&OAuthUris>,
    ops: &Operations,
) -> Value {
    let resources: Vec<Value> = defs
        .resource_types()
        .into_iter()
        .map(|t| {
            let mut params: Vec<Value> = defs
                .search_params
                .get(t)
                .map(|m| {
                    let mut v: Vec<_> = m
                        .values()
                        .filter(|p| {
                            !matches!(
                                p.kind,
                                SearchParamType::Composite | SearchParamType::Special
                            ) && defs.is_indexed(t, &p.code)
                        })
                        .map(|p| {
                            json!({
                                "name": p.code,
                                "type": format!("{:?}", p.kind).to_lowercase(),
                            })
                        })
                        .collect();
                    v.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
                    v
                })
                .unwrap_or_default();
            params.dedup();
            let interactions: Vec<Value> = [
                "read",
                "vread",
                "update",
                "patch",
                "delete",
                "history-instance",
                "history-type",
                "create",
                "search-type",
            ]
            .iter()
            .map(|c| json!({"code": c}))
            .collect();
            let ops = operations(ops, |l| l.resource_type() == Some(t));
            let mut r = json!({
                "type": t,
                "interaction": interactions,
                "versioning": "versioned-update",
                "readHistory": true,
                "updateCreate": true,
                "conditionalCreate": true,
                "conditionalRead": "not-supported",
                "conditionalUpdate": true,
                "conditionalDelete": "single",
                "searchInclude": [format!("{t}:*")],
                "searchRevInclude": ["*:*"],
                "searchParam": params,
            });
            if !ops.is_empty() {
                r["operation"] = Value::Array(ops);
            }
            // Every write is held to the base definition, and to the UK
            // Core profiles it claims in meta.profile.
            r["profile"] = json!(format!("http://hl7.org/fhir/StructureDefinition/{t}"));
            let profiles = wardline_fhir::profile::uk_core().profiles_for(t);
            if !profiles.is_empty() {
                r["supportedProfile"] = json!(profiles);
            }
            r
        })
        .collect();
    let mut rest = json!({
        "mode": "server",
        "resource": resources,
        "interaction": [
            {"code": "transaction"}, {"code": "batch"},
            {"code": "search-system"}, {"code": "history-system"}
        ],
        "compartment": ["http://hl7.org/fhir/CompartmentDefinition/patient"],
    });
    let system = operations(ops, |l| *l == Level::System);
    if !system.is_empty() {
        rest["operation"] = Value::Array(system);
    }
    if let Some(o) = oauth {
        rest["security"] = json!({
            "cors": false,
            "service": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                "code": "SMART-on-FHIR",
                "display": "SMART-on-FHIR",
            }]}],
            "description": "SMART App Launch v2 (authorization code with PKCE) and SMART Backend Services (client credentials with private_key_jwt); see .well-known/smart-configuration",
            "extension": [{
                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                "extension": [
                    {"url": "authorize", "valueUri": o.authorize},
                    {"url": "token", "valueUri": o.token},
                ],
            }],
        });
    }
    let mut instantiates: Vec<&str> = Vec::new();
    for i in ops.iter().filter_map(|o| o.instantiates()) {
        if !instantiates.contains(&i) {
            instantiates.push(i);
        }
    }
    let mut cs = json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-23",
        "publisher": "Wardline",
        "kind": "instance",
        "software": {"name": "Wardline", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "Wardline FHIR R4 server", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [rest],
    });
    if !instantiates.is_empty() {
        cs["instantiates"] = json!(instantiates);
    }
    cs
}
