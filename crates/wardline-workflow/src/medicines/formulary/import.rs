//! Importing a formulary file, and the write rule every formulary
//! `Medication` passes.

use serde::Serialize;
use serde_json::{Value, json};
use wardline_core::rules::{ProposedWrite, RuleTx, WriteRule};
use wardline_core::{Access, FhirService, Tx};
use wardline_fhir::FhirError;

use super::{Entry, FORMULARY_EXT, load_from, parse};
use crate::medicines::MedicinesError;

/// One medicine an import touched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reported {
    /// The `Medication` id.
    pub id: String,
    pub name: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// New to the formulary.
    pub added: Vec<Reported>,
    /// Already there and changed (or offered again after a withdrawal).
    pub changed: Vec<Reported>,
    /// No longer in the file: now `inactive` (kept for the charts that name
    /// them, no longer offered).
    pub withdrawn: Vec<Reported>,
    /// How many were already exactly so.
    pub unchanged: usize,
}

impl ImportReport {
    /// A line per medicine (`added: Paracetamol 500mg tablets (med-…)`) and
    /// a count of the unchanged: what the CLI prints.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (what, list) in [
            ("added", &self.added),
            ("changed", &self.changed),
            ("withdrawn", &self.withdrawn),
        ] {
            for r in list {
                out.push(format!("{what}: {} ({})", r.name, r.id));
            }
        }
        out.push(format!(
            "{} added, {} changed, {} withdrawn, {} unchanged",
            self.added.len(),
            self.changed.len(),
            self.withdrawn.len(),
            self.unchanged
        ));
        out
    }
}

/// Why an import was refused.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ImportError {
    /// The file is wrong: each problem as `{source} line N: column: what`
    /// (400). Nothing was written.
    File(Vec<String>),
    /// Anything else: not allowed, a store failure (nothing was written).
    Medicines(MedicinesError),
}

impl ImportError {
    pub fn status(&self) -> u16 {
        match self {
            ImportError::File(_) => 400,
            ImportError::Medicines(e) => e.status(),
        }
    }
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImportError::File(lines) => f.write_str(&lines.join("\n")),
            ImportError::Medicines(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ImportError {}

impl From<FhirError> for ImportError {
    fn from(e: FhirError) -> ImportError {
        ImportError::Medicines(e.into())
    }
}

impl From<MedicinesError> for ImportError {
    fn from(e: MedicinesError) -> ImportError {
        ImportError::Medicines(e)
    }
}

/// The lock every formulary import takes (two imports take turns).
const LOCK: &str = "medicines:formulary";

/// Imports a formulary file (`docs/formulary-format.md`) on `tx`: the whole
/// file is checked first ([`parse()`]) and a wrong one refused with every
/// problem named `{source} line N: column: …`, before anything is written.
/// Then each row becomes `Medication/med-{vmp_code}` (created, or updated
/// when it differs; a withdrawn one is offered again), and each formulary
/// `Medication` not in the file is marked `inactive` — never deleted.
/// `Medication`s that are not formulary entries are left alone.
pub fn import_in(tx: &mut Tx<'_>, text: &str, source: &str) -> Result<ImportReport, ImportError> {
    let entries = parse(text).map_err(|errs| {
        ImportError::File(errs.iter().map(|e| format!("{source} {e}")).collect())
    })?;
    tx.lock(&[LOCK])?;
    let stored = load_from(&*tx)?;
    let mut report = ImportReport::default();
    let mut in_file = std::collections::HashSet::new();
    for e in &entries {
        in_file.insert(e.id.clone());
        let new = e.to_medication();
        let reported = Reported {
            id: e.id.clone(),
            name: e.name().to_owned(),
        };
        let before = tx.get("Medication", &e.id)?;
        match before {
            Some(b) if same_content(&b, &new) => {
                report.unchanged += 1;
                continue;
            }
            Some(b) => {
                tx.save(merged(&b, new))
                    .map_err(|x| at_entry(x, source, e))?;
                report.changed.push(reported);
            }
            None => {
                tx.save(new).map_err(|x| at_entry(x, source, e))?;
                report.added.push(reported);
            }
        }
    }
    for old in stored.entries.iter().filter(|o| o.active) {
        if in_file.contains(&old.id) {
            continue;
        }
        let Some(mut m) = tx.get("Medication", &old.id)? else {
            continue;
        };
        m["status"] = json!("inactive");
        tx.save(m)?;
        report.withdrawn.push(Reported {
            id: old.id.clone(),
            name: old.name().to_owned(),
        });
    }
    Ok(report)
}

/// A write refused while importing (by a rule), named by the row's VMP.
fn at_entry(e: FhirError, source: &str, entry: &Entry) -> ImportError {
    match MedicinesError::from(e) {
        MedicinesError::Invalid(m) => ImportError::File(vec![format!(
            "{source}: {} ({}): {m}",
            entry.name(),
            entry.vmp.code
        )]),
        other => ImportError::Medicines(other),
    }
}

/// The new resource over the stored one: elements the formulary does not
/// model (another module's extensions, a narrative) are kept.
fn merged(before: &Value, new: Value) -> Value {
    let mut out = before.clone();
    if let (Some(o), Some(n)) = (out.as_object_mut(), new.as_object()) {
        o.remove("meta");
        for (k, v) in n {
            if k == "extension" {
                let others: Vec<Value> = before["extension"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|x| x["url"] != FORMULARY_EXT)
                    .cloned()
                    .collect();
                let mut all = v.as_array().cloned().unwrap_or_default();
                all.extend(others);
                o.insert(k.clone(), Value::Array(all));
            } else {
                o.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

/// Whether the stored resource already says what the file says.
fn same_content(stored: &Value, new: &Value) -> bool {
    let mut s = merged(stored, new.clone());
    let mut b = stored.clone();
    for v in [&mut s, &mut b] {
        if let Some(m) = v.as_object_mut() {
            m.remove("meta");
        }
    }
    s == b
}

/// [`import_in`] for a person (who needs ManageFormulary) or an operator:
/// one transaction, audited as `medicines-formulary-import`.
pub fn import(
    svc: &FhirService,
    access: &dyn Access,
    text: &str,
    source: &str,
) -> Result<ImportReport, ImportError> {
    // A wrong file is refused before a transaction is opened.
    parse(text).map_err(|errs| {
        ImportError::File(errs.iter().map(|e| format!("{source} {e}")).collect())
    })?;
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(
        wardline_core::audit::WARDLINE_SUBTYPE,
        "medicines-formulary-import",
        "U",
    );
    let report = import_in(&mut tx, text, source)?;
    tx.commit()?;
    Ok(report)
}

/// Every write of a `Medication` carrying [`FORMULARY_EXT`] must be a
/// well-formed formulary entry (the checks of the file's columns: a VMP
/// code of dm+d or local shape matching its system and the id
/// `med-{code}`, a VTM, known SNOMED CT routes, a schedule of 2–5, known
/// classes, positive strengths) — on every channel. Other `Medication`s
/// (a GP record's, a contained one) pass untouched.
pub struct FormularyRule;

impl WriteRule for FormularyRule {
    fn watches(&self, resource_type: &str) -> bool {
        resource_type == "Medication"
    }

    fn check(&self, _tx: &mut RuleTx<'_, '_>, write: &ProposedWrite<'_>) -> Result<(), FhirError> {
        let m = write.resource;
        let has_ext = m["extension"]
            .as_array()
            .is_some_and(|es| es.iter().any(|e| e["url"] == FORMULARY_EXT));
        if !has_ext {
            return Ok(());
        }
        let refuse = |element: &str, why: String| {
            let at = match element {
                "code" => "Medication.code".to_owned(),
                "id" => "Medication.id".to_owned(),
                "form" => "Medication.form".to_owned(),
                "status" => "Medication.status".to_owned(),
                "strength" => "Medication.ingredient.strength".to_owned(),
                other => format!("Medication.extension('{FORMULARY_EXT}').extension('{other}')"),
            };
            Err(FhirError::new(
                422,
                "business-rule",
                format!("Medication/{}: {at}: {why}", write.id),
            )
            .at(&at))
        };
        let Some(entry) = Entry::from_medication(m) else {
            return refuse(
                "code",
                "a formulary entry needs its VMP as a dm+d or local code".to_owned(),
            );
        };
        if !matches!(m["status"].as_str(), Some("active" | "inactive") | None) {
            return refuse(
                "status",
                "a formulary entry is active or inactive".to_owned(),
            );
        }
        match parse::check_entry(&entry) {
            Ok(()) => Ok(()),
            Err((element, why)) => refuse(element, why),
        }
    }
}
