//! Small readers of FHIR values the workflows share (a concept's text, the
//! id in a reference, a quantity with its unit as people write it). Reading the record itself is the core's typed API:
//! [`wardline_core::FhirService::read_as`] / `search_as` for what a person
//! is shown (checked and audited like REST), a [`wardline_core::Tx`] for what
//! a workflow decides and writes. [`Refusal`] is what a core error means
//! to a person, which each domain's error type takes as its own.

use serde_json::Value;
use wardline_fhir::FhirError;
use wardline_fhir::search::Handling;
use wardline_store::{PageRequest, Reader, StoredResource};

/// What a core error means to the person who asked: its kind and a
/// sentence to show them. Every domain's error type converts from
/// `FhirError` through this, so a refusal reads the same in every module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Forbidden(String),
    NotFound(String),
    /// Someone else changed the record at the same moment (409/412).
    Concurrent(String),
    Invalid(String),
    Store(String),
}

impl Refusal {
    /// `e` as a person reads it; `what` names what was not saved ("record",
    /// "order", "result").
    pub fn of(e: &FhirError, what: &str) -> Refusal {
        let text = e
            .issues
            .iter()
            .map(|i| i.diagnostics.trim().trim_end_matches('.').to_owned())
            .filter(|d| !d.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        match e.status {
            401 | 403 => Refusal::Forbidden(if text.is_empty() {
                "You are not allowed to do this.".to_owned()
            } else {
                format!("You are not allowed to do this: {text}.")
            }),
            404 | 410 => Refusal::NotFound(format!("{text}.")),
            409 | 412 => Refusal::Concurrent(
                "Someone else changed this record at the same moment. Reload the page and try again."
                    .to_owned(),
            ),
            400..=499 => Refusal::Invalid(format!("The {what} was not saved: {text}.")),
            _ => Refusal::Store(format!(
                "Wardline could not complete this ({text}). Nothing was changed; try again, and report it if it happens again."
            )),
        }
    }
}

/// The display text of a CodeableConcept: its text, else the first coding's
/// display, else its code.
pub fn concept_text(c: &Value) -> Option<String> {
    c["text"]
        .as_str()
        .or_else(|| {
            c["coding"]
                .as_array()?
                .iter()
                .find_map(|x| x["display"].as_str().or_else(|| x["code"].as_str()))
        })
        .map(str::to_owned)
}

/// The id of a `Type/id` reference (relative, or absolute ending in
/// `Type/id`).
pub fn reference_id<'a>(r: &'a Value, resource_type: &str) -> Option<&'a str> {
    reference_text_id(r["reference"].as_str()?, resource_type)
}

/// [`reference_id`] of the reference's text itself (`Patient/p1`).
pub fn reference_text_id<'a>(r: &'a str, resource_type: &str) -> Option<&'a str> {
    let id = r
        .rsplit_once(&format!("{resource_type}/"))
        .map(|(_, id)| id)?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// The UCUM system URI.
pub const UCUM: &str = "http://unitsofmeasure.org";

/// How people write the common clinical UCUM units: `Cel` is °C, `mm[Hg]`
/// mmHg. A small table, not a UCUM implementation: the Rust UCUM crates
/// parse and convert units but carry no print symbols, and the chart only
/// needs the units clinical records use. A code not listed is shown as it
/// is (an annotation's braces dropped).
const UCUM_PRINT: &[(&str, &str)] = &[
    ("Cel", "°C"),
    ("[degF]", "°F"),
    ("mm[Hg]", "mmHg"),
    ("cm[H2O]", "cmH₂O"),
    ("/min", "/min"),
    ("1/min", "/min"),
    ("{beats}/min", "beats/min"),
    ("{breaths}/min", "breaths/min"),
    ("/h", "/hour"),
    ("%", "%"),
    ("kg", "kg"),
    ("g", "g"),
    ("mg", "mg"),
    ("ug", "µg"),
    ("cm", "cm"),
    ("m", "m"),
    ("m2", "m²"),
    ("kg/m2", "kg/m²"),
    ("[lb_av]", "lb"),
    ("[oz_av]", "oz"),
    ("[stone_av]", "st"),
    ("[in_i]", "in"),
    ("[ft_i]", "ft"),
    ("L", "L"),
    ("mL", "mL"),
    ("L/min", "L/min"),
    ("mL/min", "mL/min"),
    ("mL/h", "mL/hour"),
    ("mmol/L", "mmol/L"),
    ("umol/L", "µmol/L"),
    ("nmol/L", "nmol/L"),
    ("mmol/mol", "mmol/mol"),
    ("mg/L", "mg/L"),
    ("mg/dL", "mg/dL"),
    ("ug/L", "µg/L"),
    ("ng/mL", "ng/mL"),
    ("ng/L", "ng/L"),
    ("g/L", "g/L"),
    ("g/dL", "g/dL"),
    ("10*9/L", "×10⁹/L"),
    ("10*12/L", "×10¹²/L"),
    ("U/L", "U/L"),
    ("[iU]/L", "IU/L"),
    ("[IU]/L", "IU/L"),
    ("meq/L", "mEq/L"),
    ("mosm/kg", "mOsm/kg"),
    ("fL", "fL"),
    ("pg", "pg"),
    ("mm/h", "mm/hour"),
    ("s", "seconds"),
    ("min", "minutes"),
    ("h", "hours"),
    ("d", "days"),
    ("wk", "weeks"),
    ("mo", "months"),
    ("a", "years"),
    ("{score}", ""),
    ("1", ""),
];

/// A UCUM unit code as people write it: `Cel` → `°C`, `mm[Hg]` → `mmHg`,
/// `{beats}/min` → `beats/min`; a code not in the table as it is.
pub fn ucum_print(code: &str) -> String {
    if let Some((_, print)) = UCUM_PRINT.iter().find(|(c, _)| *c == code) {
        return (*print).to_owned();
    }
    // An annotation ({tablets}) is a word in braces: the word is the unit.
    code.replace(['{', '}'], "")
}

/// The unit of a Quantity as it is shown: `unit` when present (itself
/// printed as UCUM prints it when it is a UCUM code in the table, as
/// `Cel` often is), otherwise the print form of a UCUM `code`, otherwise
/// the code of another system as it is. `None` when there is no unit.
pub fn unit_text(q: &Value) -> Option<String> {
    let unit = q["unit"].as_str().map(str::trim).filter(|s| !s.is_empty());
    let code = q["code"].as_str().map(str::trim).filter(|s| !s.is_empty());
    let ucum = q["system"].as_str().is_none_or(|s| s == UCUM);
    let text = match (unit, code) {
        (Some(u), _) => match UCUM_PRINT.iter().find(|(c, _)| *c == u) {
            Some((_, print)) => (*print).to_owned(),
            None => u.to_owned(),
        },
        (None, Some(c)) if ucum => ucum_print(c),
        (None, Some(c)) => c.to_owned(),
        (None, None) => return None,
    };
    (!text.is_empty()).then_some(text)
}

/// A Quantity as people read it: `37.2 °C`, `120 mmHg`, `7` (a score);
/// `None` without a value. A comparator (`<`, `>=`) comes first.
pub fn quantity_text(q: &Value) -> Option<String> {
    let v = q["value"].as_f64()?;
    let num = if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    };
    let comparator = q["comparator"].as_str().unwrap_or("");
    Some(match unit_text(q) {
        // °C and % sit close to the number as people write them.
        Some(u) if u == "%" => format!("{comparator}{num}%"),
        Some(u) => format!("{comparator}{num} {u}"),
        None => format!("{comparator}{num}"),
    })
}

/// Every current resource of type `t` the reader sees (paged through, 1000 at
/// a time): for small, non-patient sets such as the catalogue or the formulary.
pub fn all_of<Rd: Reader + ?Sized>(r: &Rd, t: &str) -> Result<Vec<StoredResource>, FhirError> {
    matching(r, t, &[])
}

/// How many resources [`matching`] asks the store for at a time. The
/// store's page query materialises its driving filter's matches once per
/// page (an `IN` list of every match, then `rid > cursor`), so small pages
/// over a long list are quadratic; reading 100,000 open RTT pathways for the
/// PTL by 1,000 did it 100 times over (`wardline-bench ptl`, BENCHMARKS.md).
/// A page of stored JSON (~1.5 KB a pathway) is what [`each_matching`]
/// holds at once: ~75 MB at this size.
pub const MATCHING_PAGE: usize = 50_000;

/// Every current resource of type `t` matching the search `pairs`, paged
/// through [`MATCHING_PAGE`] at a time, read past any access: for deciding a
/// rule, never shown as it is.
pub fn matching<Rd: Reader + ?Sized>(
    r: &Rd,
    t: &str,
    pairs: &[(&str, String)],
) -> Result<Vec<StoredResource>, FhirError> {
    let mut out = Vec::new();
    each_matching(r, t, pairs, |s| out.push(s))?;
    Ok(out)
}

/// [`matching`], handing each resource to `f` as its page is read, so a long
/// list (the PTL's 100,000 pathways) is never held whole.
pub fn each_matching<Rd: Reader + ?Sized>(
    r: &Rd,
    t: &str,
    pairs: &[(&str, String)],
    mut f: impl FnMut(StoredResource),
) -> Result<(), FhirError> {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let q = wardline_fhir::search::parse(
        wardline_fhir::definitions::r4(),
        Some(t),
        &pairs,
        Handling::Strict,
    )?;
    let mut page = PageRequest {
        count: MATCHING_PAGE,
        ..PageRequest::default()
    };
    loop {
        let p = r.search(&q, &page)?;
        page.snapshot_rid = Some(p.snapshot_rid);
        page.after_rid = p.resources.last().map(|r| r.rid);
        let more = p.has_more && page.after_rid.is_some();
        p.resources.into_iter().for_each(&mut f);
        if !more {
            return Ok(());
        }
    }
}

/// [`all_of`] as JSON values.
pub fn json_all<Rd: Reader + ?Sized>(r: &Rd, t: &str) -> Result<Vec<Value>, FhirError> {
    search_all(r, t, &[])
}

/// [`matching`] as JSON values.
pub fn search_all<Rd: Reader + ?Sized>(
    r: &Rd,
    t: &str,
    pairs: &[(&str, String)],
) -> Result<Vec<Value>, FhirError> {
    matching(r, t, pairs)?
        .into_iter()
        .map(|s| {
            serde_json::from_str(&s.json)
                .map_err(|e| FhirError::internal(format!("stored {t}/{} is unreadable: {e}", s.id)))
        })
        .collect()
}

/// Every page of `GET [t]?params` as `access` may read it
/// ([`wardline_core::FhirService::search_as`], each page checked and
/// audited): the matches, their includes (each once) and how many were
/// withheld, in `_id` order. For what a person is shown in full — a
/// worklist, a summary's headings — where a page cut short would silently
/// leave something out.
pub fn search_as_all(
    svc: &wardline_core::FhirService,
    access: &dyn wardline_core::Access,
    t: &str,
    params: &[(&str, String)],
) -> Result<wardline_core::Found, FhirError> {
    let size = svc.config().max_count.clamp(1, 1000);
    let mut all = wardline_core::Found::default();
    let mut seen = std::collections::HashSet::new();
    // Pages follow the core's own next links: the offset moves by the page
    // size asked for (matches withheld from the caller count in it too).
    let mut offset = 0usize;
    loop {
        let mut p: Vec<(&str, String)> = params.to_vec();
        p.push(("_sort", "_id".to_owned()));
        p.push(("_count", size.to_string()));
        if offset > 0 {
            p.push(("_offset", offset.to_string()));
        }
        let found = svc.search_as(access, t, &p)?;
        offset += size;
        all.withheld += found.withheld;
        all.resources.extend(found.resources);
        for i in found.included {
            let key = format!(
                "{}/{}",
                i["resourceType"].as_str().unwrap_or_default(),
                i["id"].as_str().unwrap_or_default()
            );
            if seen.insert(key) {
                all.included.push(i);
            }
        }
        if !found.more {
            return Ok(all);
        }
    }
}

/// The role (Wardline's RBAC role) of the position the caller acts in, read
/// in `tx` from its `PractitionerRole` (the coding in
/// `wardline_auth::directory::ROLE_SYSTEM`); `None` for a caller without a
/// position or a position without a Wardline role.
pub fn caller_role_in(
    tx: &mut wardline_core::Tx<'_>,
) -> Result<Option<wardline_auth::rbac::Role>, FhirError> {
    let Some(pos) = tx.access().agent().position.clone() else {
        return Ok(None);
    };
    let id = pos.strip_prefix("PractitionerRole/").unwrap_or(&pos);
    Ok(tx
        .get("PractitionerRole", id)?
        .as_ref()
        .and_then(role_of_position))
}

/// [`caller_role_in`] for a write rule (in the writing transaction).
pub fn caller_role_of(
    tx: &wardline_core::RuleTx<'_, '_>,
) -> Result<Option<wardline_auth::rbac::Role>, FhirError> {
    let Some(pos) = tx.access().agent().position.clone() else {
        return Ok(None);
    };
    let id = pos.strip_prefix("PractitionerRole/").unwrap_or(&pos);
    Ok(tx
        .get("PractitionerRole", id)?
        .as_ref()
        .and_then(role_of_position))
}

/// The Wardline RBAC role a `PractitionerRole` holds (its coding in
/// `wardline_auth::directory::ROLE_SYSTEM`): the one reading, for
/// workflows ([`caller_role_in`]) and write rules alike.
pub fn role_of_position(pr: &Value) -> Option<wardline_auth::rbac::Role> {
    pr["code"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["coding"].as_array().into_iter().flatten())
        .filter(|c| c["system"] == wardline_auth::directory::ROLE_SYSTEM)
        .find_map(|c| {
            c["code"]
                .as_str()
                .and_then(wardline_auth::rbac::Role::parse)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn concept_text_prefers_text_then_display_then_code() {
        assert_eq!(
            concept_text(&json!({"text": "T", "coding": [{"display": "D"}]})).as_deref(),
            Some("T")
        );
        assert_eq!(
            concept_text(&json!({"coding": [{"code": "c"}, {"display": "D"}]})).as_deref(),
            Some("c")
        );
        assert_eq!(concept_text(&json!({})), None);
    }

    #[test]
    fn reference_ids() {
        let r = json!({"reference": "Patient/p1"});
        assert_eq!(reference_id(&r, "Patient"), Some("p1"));
        assert_eq!(reference_id(&r, "Pat"), None);
        assert_eq!(reference_id(&json!({}), "Patient"), None);
        let abs = json!({"reference": "https://x.example/fhir/Patient/p2"});
        assert_eq!(reference_id(&abs, "Patient"), Some("p2"));
        assert_eq!(
            reference_id(&json!({"reference": "Patient/"}), "Patient"),
            None
        );
    }

    #[test]
    fn units_read_as_people_write_them() {
        // The UCUM code in `unit` (as the demo trust and many feeds send it).
        let t = json!({"value": 37.2, "unit": "Cel", "system": UCUM, "code": "Cel"});
        assert_eq!(quantity_text(&t).as_deref(), Some("37.2 °C"));
        // No unit: the code's print form.
        let bp = json!({"value": 120, "system": UCUM, "code": "mm[Hg]"});
        assert_eq!(quantity_text(&bp).as_deref(), Some("120 mmHg"));
        // A unit written for people is kept as it is.
        let hr = json!({"value": 72, "unit": "beats per minute", "system": UCUM, "code": "/min"});
        assert_eq!(quantity_text(&hr).as_deref(), Some("72 beats per minute"));
        // Annotations lose their braces; a score has no unit.
        assert_eq!(ucum_print("{breaths}/min"), "breaths/min");
        assert_eq!(ucum_print("{tablets}"), "tablets");
        assert_eq!(
            quantity_text(&json!({"value": 3, "system": UCUM, "code": "{score}"})).as_deref(),
            Some("3")
        );
        // Another system's code is not read as UCUM.
        let other = json!({"value": 2, "system": "http://example.org/units", "code": "a"});
        assert_eq!(quantity_text(&other).as_deref(), Some("2 a"));
        assert_eq!(
            quantity_text(&json!({"value": 2, "system": UCUM, "code": "a"})).as_deref(),
            Some("2 years")
        );
        assert_eq!(
            quantity_text(&json!({"value": 97, "unit": "%"})).as_deref(),
            Some("97%")
        );
        assert_eq!(
            quantity_text(&json!({"value": 5.5, "comparator": "<", "code": "mmol/L"})).as_deref(),
            Some("<5.5 mmol/L")
        );
        assert_eq!(quantity_text(&json!({"unit": "Cel"})), None);
    }
}
