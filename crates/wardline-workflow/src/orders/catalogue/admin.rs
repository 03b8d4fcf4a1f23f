//! Changing the catalogue: the write rule every channel passes, Bundle
//! import, and the administrator's edits.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Value, json};
use wardline_core::rules::{ProposedWrite, RuleTx, WriteRule};
use wardline_core::{Access, FhirService};
use wardline_fhir::FhirError;

use super::parse::ext;
use super::*;

// ---- errors ------------------------------------------------------------------

/// A refusal or failure of a catalogue change, with a sentence to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum CatalogueError {
    /// 400: the entry is wrong (the message names it and the element).
    Invalid(String),
    /// 404.
    NotFound(String),
    /// 403.
    Forbidden(String),
    /// 409: someone changed it at the same moment.
    Conflict(String),
    /// 500.
    Store(String),
}

impl CatalogueError {
    pub fn status(&self) -> u16 {
        match self {
            CatalogueError::Invalid(_) => 400,
            CatalogueError::NotFound(_) => 404,
            CatalogueError::Forbidden(_) => 403,
            CatalogueError::Conflict(_) => 409,
            CatalogueError::Store(_) => 500,
        }
    }
    pub fn message(&self) -> &str {
        match self {
            CatalogueError::Invalid(m)
            | CatalogueError::NotFound(m)
            | CatalogueError::Forbidden(m)
            | CatalogueError::Conflict(m)
            | CatalogueError::Store(m) => m,
        }
    }
}

impl std::fmt::Display for CatalogueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for CatalogueError {}

impl From<FhirError> for CatalogueError {
    fn from(e: FhirError) -> CatalogueError {
        let text = e
            .issues
            .iter()
            .map(|i| {
                let d = i.diagnostics.trim().trim_end_matches('.');
                match i.expression.first() {
                    Some(x) if !d.contains(x.as_str()) => format!("{x}: {d}"),
                    _ => d.to_owned(),
                }
            })
            .filter(|d| !d.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        match e.status {
            401 | 403 => CatalogueError::Forbidden(
                "You are not allowed to change the order catalogue.".to_owned(),
            ),
            404 | 410 => CatalogueError::NotFound(format!("{text}.")),
            409 | 412 => CatalogueError::Conflict(
                "Someone else changed the catalogue at the same moment. Reload the page and try again."
                    .to_owned(),
            ),
            400..=499 => CatalogueError::Invalid(format!("{text}.")),
            _ => CatalogueError::Store(format!(
                "Wardline could not complete this ({text}). Nothing was changed; try again, and report it if it happens again."
            )),
        }
    }
}

// ---- the write rule ------------------------------------------------------------

/// Every write of an `ActivityDefinition`, an order-set `PlanDefinition`
/// or a `Questionnaire` of the catalogue must parse (see the module
/// documentation) — on every channel: REST, a transaction Bundle, [`import`],
/// the admin screens.
pub struct CatalogueRule;

impl WriteRule for CatalogueRule {
    fn watches(&self, resource_type: &str) -> bool {
        matches!(
            resource_type,
            "ActivityDefinition" | "PlanDefinition" | "Questionnaire"
        )
    }

    fn check(&self, tx: &mut RuleTx<'_, '_>, write: &ProposedWrite<'_>) -> Result<(), FhirError> {
        let r = write.resource;
        if !in_catalogue(r) {
            return Ok(());
        }
        let refuse = |why: String| {
            FhirError::new(
                422,
                "business-rule",
                format!("{}/{}: {why}", write.resource_type, write.id),
            )
            .at(write.resource_type)
        };
        match write.resource_type {
            "Questionnaire" => parse_questionnaire(r).map(|_| ()).map_err(refuse),
            "ActivityDefinition" => {
                let mut qs = HashMap::new();
                if let Some(url) = ext(r, QUESTIONNAIRE).and_then(|e| e["valueCanonical"].as_str())
                {
                    let url = url.split('|').next().unwrap_or(url);
                    for q in json_all(tx.reader(), "Questionnaire")? {
                        if q["url"] == url
                            && let Ok(p) = parse_questionnaire(&q)
                        {
                            qs.insert(p.url.clone(), p);
                        }
                    }
                }
                parse_orderable(r, &qs).map(|_| ()).map_err(refuse)
            }
            _ => {
                let ads = json_all(tx.reader(), "ActivityDefinition")?;
                let lookup = |u: &str| {
                    ads.iter()
                        .filter(|a| in_catalogue(a))
                        .find(|a| a["url"] == u)
                        .and_then(|a| a["id"].as_str().map(str::to_owned))
                };
                parse_order_set(r, &lookup).map(|_| ()).map_err(refuse)
            }
        }
    }
}

// ---- import and edits ------------------------------------------------------------

/// What an import wrote.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImportReport {
    /// `Type/id` of what was created.
    pub created: Vec<String>,
    /// `Type/id` of what was updated (changed).
    pub updated: Vec<String>,
    /// `Type/id` of what was already exactly so.
    pub unchanged: Vec<String>,
}

const IMPORTABLE: [&str; 3] = ["Questionnaire", "ActivityDefinition", "PlanDefinition"];

/// Imports a catalogue Bundle (`transaction` of PUTs, or `collection`) of
/// `Questionnaire`s, `ActivityDefinition`s and order-set
/// `PlanDefinition`s. Every entry is checked first, against the Bundle and
/// the stored catalogue together; any wrong entry refuses the whole Bundle
/// with the entry named. Then all are written in one transaction for
/// `access` (which needs the catalogue-management permission), audited as
/// `catalogue-import`.
pub fn import(
    svc: &FhirService,
    access: &dyn Access,
    bundle: &Value,
) -> Result<ImportReport, CatalogueError> {
    let entries = check_bundle(svc, bundle)?;
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(
        wardline_core::audit::WARDLINE_SUBTYPE,
        "catalogue-import",
        "U",
    );
    let mut report = ImportReport::default();
    for (i, r) in entries {
        let t = r["resourceType"].as_str().unwrap_or_default().to_owned();
        let id = r["id"].as_str().unwrap_or_default().to_owned();
        let key = format!("{t}/{id}");
        let before = tx.get(&t, &id)?;
        if let Some(b) = &before
            && same_content(b, &r)
        {
            report.unchanged.push(key);
            continue;
        }
        tx.save(r).map_err(|e| match CatalogueError::from(e) {
            CatalogueError::Invalid(m) => {
                CatalogueError::Invalid(format!("Entry {i} ({key}): {m}"))
            }
            other => other,
        })?;
        if before.is_some() {
            report.updated.push(key);
        } else {
            report.created.push(key);
        }
    }
    tx.commit()?;
    Ok(report)
}

fn same_content(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("meta");
            m.remove("text");
        }
        v
    };
    strip(a) == strip(b)
}

/// Checks a catalogue Bundle (see [`import`]) and returns its resources in
/// the order they can be written (questionnaires, orderables, sets), each
/// with its entry number (from 1).
pub fn check_bundle(
    svc: &FhirService,
    bundle: &Value,
) -> Result<Vec<(usize, Value)>, CatalogueError> {
    let invalid = |m: String| CatalogueError::Invalid(m);
    if bundle["resourceType"] != "Bundle" {
        return Err(invalid(
            "The file is not a FHIR Bundle (resourceType must be Bundle).".to_owned(),
        ));
    }
    if !matches!(
        bundle["type"].as_str(),
        Some("transaction" | "collection" | "batch")
    ) {
        return Err(invalid(
            "The Bundle's type must be transaction (of PUTs) or collection.".to_owned(),
        ));
    }
    let entries = bundle["entry"].as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        return Err(invalid("The Bundle has no entries.".to_owned()));
    }
    let mut seen = HashMap::new();
    let mut resources = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let r = &e["resource"];
        let t = r["resourceType"].as_str().unwrap_or("(no resourceType)");
        let id = r["id"].as_str().unwrap_or("");
        let name = format!("Entry {} ({t}/{id})", i + 1);
        if !IMPORTABLE.contains(&t) {
            return Err(invalid(format!(
                "{name}: a catalogue Bundle holds only Questionnaire, ActivityDefinition and PlanDefinition resources."
            )));
        }
        if !valid_id(id) {
            return Err(invalid(format!(
                "{name}: the resource needs an id (letters, digits and hyphens, up to 64)."
            )));
        }
        if let Some(m) = e["request"]["method"].as_str() {
            let url = e["request"]["url"].as_str().unwrap_or("");
            if m != "PUT" || url != format!("{t}/{id}") {
                return Err(invalid(format!(
                    "{name}: the request must be PUT {t}/{id} (a catalogue entry keeps its id)."
                )));
            }
        }
        if let Some(j) = seen.insert(format!("{t}/{id}"), i + 1) {
            return Err(invalid(format!("{name}: the same resource as entry {j}.")));
        }
        resources.push((i + 1, r.clone()));
    }
    let stored = load(svc)?;
    // Questionnaires: the Bundle's, over the stored ones.
    let mut qs: HashMap<String, Questionnaire> = stored
        .questionnaires
        .iter()
        .map(|q| (q.url.clone(), q.clone()))
        .collect();
    let mut q_out = Vec::new();
    let mut ad_out = Vec::new();
    let mut pd_out = Vec::new();
    for (i, r) in &resources {
        let name = format!(
            "Entry {i} ({}/{})",
            r["resourceType"].as_str().unwrap_or(""),
            r["id"].as_str().unwrap_or("")
        );
        if r["resourceType"] == "Questionnaire" {
            let q = parse_questionnaire(r).map_err(|e| invalid(format!("{name}: {e}.")))?;
            qs.insert(q.url.clone(), q);
            q_out.push((*i, r.clone()));
        }
    }
    let mut urls: HashMap<String, String> = stored
        .orderables
        .iter()
        .map(|o| (o.url.clone(), o.id.clone()))
        .collect();
    for (i, r) in &resources {
        let name = format!(
            "Entry {i} ({}/{})",
            r["resourceType"].as_str().unwrap_or(""),
            r["id"].as_str().unwrap_or("")
        );
        if r["resourceType"] == "ActivityDefinition" {
            let o = parse_orderable(r, &qs).map_err(|e| invalid(format!("{name}: {e}.")))?;
            if let Some(other) = urls.get(&o.url).filter(|x| **x != o.id) {
                return Err(invalid(format!(
                    "{name}: the url {} is already ActivityDefinition/{other}'s.",
                    o.url
                )));
            }
            urls.insert(o.url.clone(), o.id.clone());
            ad_out.push((*i, r.clone()));
        }
    }
    for (i, r) in &resources {
        let name = format!(
            "Entry {i} ({}/{})",
            r["resourceType"].as_str().unwrap_or(""),
            r["id"].as_str().unwrap_or("")
        );
        if r["resourceType"] == "PlanDefinition" {
            parse_order_set(r, &|u| urls.get(u).cloned())
                .map_err(|e| invalid(format!("{name}: {e}.")))?;
            pd_out.push((*i, r.clone()));
        }
    }
    q_out.extend(ad_out);
    q_out.extend(pd_out);
    Ok(q_out)
}

/// Creates or replaces an orderable (the admin screens). Elements the
/// catalogue does not model are kept from the stored version. `expected`
/// is `None` to create one (refused if the id is taken).
pub fn save_orderable(
    svc: &FhirService,
    access: &dyn Access,
    o: &Orderable,
    create: bool,
) -> Result<(), CatalogueError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(
        wardline_core::audit::WARDLINE_SUBTYPE,
        if create {
            "catalogue-add"
        } else {
            "catalogue-edit"
        },
        if create { "C" } else { "U" },
    );
    tx.lock(&[format!("catalogue:ActivityDefinition/{}", o.id)])?;
    let before = tx.get("ActivityDefinition", &o.id)?;
    if create && before.is_some() {
        return Err(CatalogueError::Invalid(format!(
            "The id {} is already used by another test or examination: choose another.",
            o.id
        )));
    }
    if !create && before.is_none() {
        return Err(CatalogueError::NotFound(format!(
            "There is no test or examination with id {}.",
            o.id
        )));
    }
    tx.save(o.to_resource(before.as_ref()))?;
    tx.commit()?;
    Ok(())
}

/// Creates or replaces an order set (the admin screens).
pub fn save_order_set(
    svc: &FhirService,
    access: &dyn Access,
    set: &OrderSet,
    create: bool,
) -> Result<(), CatalogueError> {
    let catalogue = load(svc)?;
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(
        wardline_core::audit::WARDLINE_SUBTYPE,
        if create {
            "order-set-add"
        } else {
            "order-set-edit"
        },
        if create { "C" } else { "U" },
    );
    tx.lock(&[format!("catalogue:PlanDefinition/{}", set.id)])?;
    let before = tx.get("PlanDefinition", &set.id)?;
    if create && before.is_some() {
        return Err(CatalogueError::Invalid(format!(
            "The id {} is already used by another order set: choose another.",
            set.id
        )));
    }
    if !create && before.is_none() {
        return Err(CatalogueError::NotFound(format!(
            "There is no order set with id {}.",
            set.id
        )));
    }
    let url_of = |id: &str| catalogue.orderable(id).map(|o| o.url.clone());
    tx.save(set.to_resource(before.as_ref(), &url_of))?;
    tx.commit()?;
    Ok(())
}

/// Retires (`active` false) or reinstates an orderable
/// (`ActivityDefinition`) or order set (`PlanDefinition`). Nothing is
/// deleted: orders placed from it still name it.
pub fn set_active(
    svc: &FhirService,
    access: &dyn Access,
    resource_type: &str,
    id: &str,
    active: bool,
) -> Result<(), CatalogueError> {
    if !matches!(resource_type, "ActivityDefinition" | "PlanDefinition") {
        return Err(CatalogueError::Invalid(format!(
            "{resource_type} is not part of the order catalogue."
        )));
    }
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(
        wardline_core::audit::WARDLINE_SUBTYPE,
        if active {
            "catalogue-reinstate"
        } else {
            "catalogue-retire"
        },
        "U",
    );
    tx.lock(&[format!("catalogue:{resource_type}/{id}")])?;
    let mut r = tx.get(resource_type, id)?.ok_or_else(|| {
        CatalogueError::NotFound(format!(
            "There is no {resource_type}/{id} in the catalogue."
        ))
    })?;
    let to = if active { "active" } else { "retired" };
    if r["status"] == to {
        return Ok(());
    }
    r["status"] = json!(to);
    tx.save(r)?;
    tx.commit()?;
    Ok(())
}

/// The stored resource behind an orderable or order set, read for
/// `access` (audited): what the admin screens show as FHIR.
pub fn resource_as(
    svc: &FhirService,
    access: &dyn Access,
    resource_type: &str,
    id: &str,
) -> Result<Value, CatalogueError> {
    svc.read_as(access, resource_type, id)?
        .ok_or_else(|| CatalogueError::NotFound(format!("There is no {resource_type}/{id}.")))
}

/// The catalogue as `access` may read it (checked and audited like REST
/// searches): what the admin screens show a person. Every member of staff
/// may read it; more than the service's page size of one type is reported
/// in `problems`.
pub fn load_as(svc: &FhirService, access: &dyn Access) -> Result<Catalogue, CatalogueError> {
    let max = svc.config().max_count.to_string();
    let mut lists = Vec::new();
    for t in ["ActivityDefinition", "PlanDefinition", "Questionnaire"] {
        let found = svc.search_as(access, t, &[("_count", max.as_str())])?;
        lists.push((t, found));
    }
    let mut c = from_resources(
        &lists[0].1.resources,
        &lists[1].1.resources,
        &lists[2].1.resources,
    );
    for (t, f) in &lists {
        if f.more {
            c.problems.push(format!(
                "There are more {t} resources than one page ({max}); not all are shown."
            ));
        }
    }
    Ok(c)
}
