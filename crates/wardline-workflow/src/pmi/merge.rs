//! Merging two records of one person, and undoing it.
//!
//! `merge(source, target)` follows FHIR `Patient/$merge`: in one transaction
//! every resource that refers to the source (found through the reference
//! index: every reference search parameter of every resource type that may
//! point at a Patient, plus the source's compartment) is repointed to the
//! target; the source becomes `active: false` with a `replaced-by` link; the
//! target gains a `replaces` link; a `Provenance` (activity `merge`) lists
//! the new version of every repointed resource and of both patients, and
//! names the caller; open reviews of the pair are closed as "merged".
//! Patients, Provenance, AuditEvent and review Tasks are never repointed:
//! they record who was who.
//!
//! `unmerge(source)` reads that Provenance and, for each repointed resource,
//! puts back the references that pointed at the source before the merge
//! (and only those: resources recorded against the target since are not
//! touched), restores the source's `active` flag, removes both links, and
//! records its own Provenance (activity `unmerge`, entity = the merge's).
//!
//! **Who may merge.** Merging is registration work (the `register-patient`
//! activity): the caller must be allowed to update both Patient records.
//! The repointing that follows touches clinical resources the caller may not
//! read (a ward clerk has no clinical view); it is the system's consequence
//! of a permitted merge, like a write hook's writes, so inside the merge
//! transaction only Patient reads and writes are checked against the
//! caller's policy ([`MergeGate`]). The audit event of the transaction names
//! the caller and every resource touched.

use serde::Serialize;
use serde_json::{Value, json};
use wardline_core::access::{Agent, Operation};
use wardline_core::{Access, FhirService, Op, ResourceView, Tx};
use wardline_fhir::FhirError;
use wardline_fhir::datetime::{format_instant, now_ms};
use wardline_fhir::definitions::{SearchParamType, r4};
use wardline_fhir::reference;
use wardline_fhir::search::SearchQuery;
use wardline_store::{PageRequest, Reader};

use super::review::{close, find_all, pair_key};
use super::{DUPLICATE_PAIR_SYSTEM, DUPLICATE_REVIEW_CODE, PatientSummary, TASK_SYSTEM};

/// What a merge or unmerge did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MergeOutcome {
    pub source: String,
    pub target: String,
    /// Resources repointed (merge) or put back (unmerge).
    pub repointed: usize,
    /// The Provenance recording it.
    pub provenance: String,
}

pub const LIFECYCLE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle";

/// The caller's policy for Patient records; the merge's own consequences
/// otherwise (see the module documentation).
struct MergeGate<'a> {
    caller: &'a dyn Access,
}

impl Access for MergeGate<'_> {
    fn agent(&self) -> &Agent {
        self.caller.agent()
    }
    fn restricted(&self) -> bool {
        self.caller.restricted()
    }
    fn check_type(&self, op: Op, t: Option<&str>) -> Result<(), FhirError> {
        match t {
            Some("Patient") => self.caller.check_type(op, t),
            _ => Ok(()),
        }
    }
    fn check_resource(
        &self,
        op: Op,
        r: &ResourceView<'_>,
        reader: &dyn Reader,
    ) -> Result<(), FhirError> {
        if r.resource_type == "Patient" {
            self.caller.check_resource(op, r, reader)
        } else {
            Ok(())
        }
    }
    fn check_operation(&self, op: Operation) -> Result<(), FhirError> {
        self.caller.check_operation(op)
    }
    fn break_glass(&self, patient: &str) -> Option<String> {
        self.caller.break_glass(patient)
    }
}

/// Types whose references to a patient are never rewritten.
const NOT_REPOINTED: [&str; 3] = ["Patient", "Provenance", "AuditEvent"];

fn is_review_task(v: &Value) -> bool {
    v.get("resourceType").and_then(Value::as_str) == Some("Task")
        && v.pointer("/code/coding")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.get("system").and_then(Value::as_str) == Some(TASK_SYSTEM)
                        && c.get("code").and_then(Value::as_str) == Some(DUPLICATE_REVIEW_CODE)
                })
            })
}

/// Whether a reference string points at `Patient/{id}` (relative or
/// absolute). A versioned reference (`/_history/{version}`) does not count:
/// it cites that version of the source and is left as it is.
fn refers_to(s: &str, id: &str) -> bool {
    reference::unversioned(s) == s && reference::is_reference_to(s, "Patient", id)
}

/// Every (type, id) that refers to Patient `id`: the compartment, and each
/// reference parameter that may target a Patient, of every type.
fn referrers(tx: &Tx<'_>, id: &str) -> Result<Vec<(String, String)>, FhirError> {
    let defs = r4();
    let mut queries: Vec<SearchQuery> = vec![SearchQuery {
        compartment: Some(("Patient".into(), id.into())),
        ..SearchQuery::default()
    }];
    let mut types: Vec<&String> = defs.search_params.keys().collect();
    types.sort();
    for t in types {
        if NOT_REPOINTED.contains(&t.as_str()) {
            continue;
        }
        let mut codes: Vec<&String> = defs.search_params[t]
            .values()
            .filter(|p| {
                p.kind == SearchParamType::Reference
                    && (p.targets.is_empty() || p.targets.iter().any(|x| x == "Patient"))
                    && defs.is_indexed(t, &p.code)
            })
            .map(|p| &p.code)
            .collect();
        codes.sort();
        for code in codes {
            queries.push(wardline_fhir::search::parse(
                defs,
                Some(t),
                &[(code.clone(), format!("Patient/{id}"))],
                wardline_fhir::search::Handling::Strict,
            )?);
        }
    }
    let mut out: Vec<(String, String)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for q in queries {
        let mut after_rid = None;
        loop {
            let page = tx.search(
                &q,
                &PageRequest {
                    count: 1000,
                    after_rid,
                    ..PageRequest::default()
                },
            )?;
            after_rid = page.resources.last().map(|r| r.rid);
            for r in page.resources {
                if NOT_REPOINTED.contains(&r.resource_type.as_str()) {
                    continue;
                }
                let key = (r.resource_type, r.id);
                if seen.insert(key.clone()) {
                    out.push(key);
                }
            }
            if !page.has_more || after_rid.is_none() {
                break;
            }
        }
    }
    Ok(out)
}

/// Rewrites references to the source patient; returns whether anything changed.
fn repoint(v: &mut Value, source: &str, to: &str) -> bool {
    reference::rewrite_references(v, |s| refers_to(s, source).then(|| to.to_owned())) > 0
}

/// JSON pointers of the `reference`s in `v` that point at Patient `id`, with their text.
fn reference_paths(v: &Value, id: &str) -> Vec<(String, String)> {
    reference::references_with_pointers(v)
        .into_iter()
        .filter(|(_, s)| refers_to(s, id))
        .map(|(p, s)| (p, s.to_owned()))
        .collect()
}

fn links(p: &Value, kind: &str) -> Vec<String> {
    p.get("link")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|l| l.get("type").and_then(Value::as_str) == Some(kind))
        .filter_map(|l| l.pointer("/other/reference").and_then(Value::as_str))
        .map(|r| r.rsplit('/').next().unwrap_or(r).to_owned())
        .collect()
}

fn push_link(p: &mut Value, other: &str, kind: &str) {
    let link = json!({"other": {"reference": format!("Patient/{other}")}, "type": kind});
    match p.get_mut("link").and_then(Value::as_array_mut) {
        Some(a) => {
            if !a.contains(&link) {
                a.push(link);
            }
        }
        None => p["link"] = json!([link]),
    }
}

fn remove_link(p: &mut Value, other: &str, kind: &str) {
    if let Some(a) = p.get_mut("link").and_then(Value::as_array_mut) {
        a.retain(|l| {
            !(l.get("type").and_then(Value::as_str) == Some(kind)
                && l.pointer("/other/reference")
                    .and_then(Value::as_str)
                    .is_some_and(|r| refers_to(r, other)))
        });
        if a.is_empty()
            && let Some(o) = p.as_object_mut()
        {
            o.remove("link");
        }
    }
}

fn nhs(p: &Value) -> Option<String> {
    PatientSummary::from_resource(p).nhs_number
}

fn agent_json(access: &dyn Access) -> Value {
    let a = access.agent();
    let who = match &a.who {
        Some(w) => json!({"reference": w, "display": a.name}),
        None => json!({"display": a.name}),
    };
    let mut v = json!({
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                             "code": "author", "display": "Author"}]},
        "who": who
    });
    if let Some(p) = &a.position {
        v["onBehalfOf"] = json!({"reference": p});
    }
    v
}

fn versioned(t: &str, id: &str, version: i64) -> Value {
    json!({"reference": format!("{t}/{id}/_history/{version}")})
}

/// A merge or unmerge the record's state does not allow: 422 `business-rule`.
fn refused(diagnostics: impl Into<String>) -> FhirError {
    FhirError::new(422, "business-rule", diagnostics)
}

fn get_patient(tx: &mut Tx<'_>, id: &str) -> Result<Value, FhirError> {
    tx.get("Patient", id)?
        .ok_or_else(|| FhirError::not_found(format!("There is no patient record {id}")))
}

fn describe(p: &Value) -> String {
    let s = PatientSummary::from_resource(p);
    match &s.hospital_number {
        Some(h) => format!("{} ({h})", s.display_name),
        None => format!("{} ({})", s.display_name, s.id),
    }
}

/// Retires `source_id` into `target_id` (see the module documentation).
pub fn merge(
    svc: &FhirService,
    access: &dyn Access,
    source_id: &str,
    target_id: &str,
) -> Result<MergeOutcome, FhirError> {
    run_merge(svc, access, source_id, target_id, false).map(|(out, _)| out)
}

/// [`merge`], returning the target as it now is. With `preview` it writes
/// nothing: the same checks and refusals, how many resources would be
/// repointed and the target as it would be, with an empty `provenance`
/// (only the audit event of the records read is recorded).
pub(crate) fn run_merge(
    svc: &FhirService,
    access: &dyn Access,
    source_id: &str,
    target_id: &str,
    preview: bool,
) -> Result<(MergeOutcome, Value), FhirError> {
    // Merging is updating both Patient records: the caller must be allowed to.
    access.check_type(Op::Update, Some("Patient"))?;
    let gate = MergeGate { caller: access };
    svc.transact(&gate, |tx| {
        if preview {
            tx.set_audit_subtype(
                wardline_core::audit::WARDLINE_SUBTYPE,
                "pmi-merge-preview",
                "R",
            );
            // It writes nothing, but a person is shown both records.
            tx.audit_reads();
        } else {
            tx.set_audit_subtype(wardline_core::audit::WARDLINE_SUBTYPE, "pmi-merge", "U");
        }
        merge_in(tx, source_id, target_id, preview)
    })
}

/// The merge itself, inside the caller's transaction: what every channel
/// runs (the REST operation and the UI through [`merge`], an HL7 v2 A40
/// through the inbound mapping, in the message's own transaction). Locks
/// both records first. The Provenance names the transaction's requester.
/// With `preview` it writes nothing (see [`run_merge`]).
pub fn merge_in(
    tx: &mut Tx<'_>,
    source_id: &str,
    target_id: &str,
    preview: bool,
) -> Result<(MergeOutcome, Value), FhirError> {
    if source_id == target_id {
        return Err(refused("A patient record cannot be merged into itself"));
    }
    tx.lock(&[
        format!("Patient/{source_id}"),
        format!("Patient/{target_id}"),
    ])?;
    {
        let source = get_patient(tx, source_id)?;
        let target = get_patient(tx, target_id)?;
        if let Some(t) = links(&target, "replaced-by").first() {
            return Err(refused(format!(
                "{} has been retired: it was merged into record {t}; merge into that record instead",
                describe(&target)
            )));
        }
        if target.get("active").and_then(Value::as_bool) == Some(false) {
            return Err(refused(format!(
                "{} is not active; a record cannot be merged into a retired record",
                describe(&target)
            )));
        }
        if let Some(t) = links(&source, "replaced-by").first() {
            return Err(refused(format!(
                "{} was already merged into record {t}",
                describe(&source)
            )));
        }
        if let (Some(a), Some(b)) = (nhs(&source), nhs(&target))
            && a != b
        {
            return Err(refused(format!(
                "{} has NHS number {a} and {} has NHS number {b}: records with different NHS numbers belong to different people and cannot be merged",
                describe(&source),
                describe(&target)
            )));
        }
        let source_version_before = tx
            .read("Patient", source_id)?
            .map(|r| r.version)
            .unwrap_or_default();
        let to = format!("Patient/{target_id}");
        let mut targets: Vec<Value> = Vec::new();
        let mut repointed = 0;
        for (t, id) in referrers(tx, source_id)? {
            let Some(mut v) = tx.get(&t, &id)? else {
                continue;
            };
            if is_review_task(&v) {
                continue;
            }
            if repoint(&mut v, source_id, &to) {
                repointed += 1;
                if !preview {
                    let saved = tx.save(v)?;
                    targets.push(versioned(&t, &id, saved.version));
                }
            }
        }
        let mut target = target;
        push_link(&mut target, source_id, "replaces");
        if preview {
            let out = MergeOutcome {
                source: source_id.to_owned(),
                target: target_id.to_owned(),
                repointed,
                provenance: String::new(),
            };
            return Ok((out, target));
        }
        let mut source = source;
        source["active"] = json!(false);
        push_link(&mut source, target_id, "replaced-by");
        let s = tx.save(source)?;
        let t = tx.save(target)?;
        let target = t.resource.clone();
        targets.push(versioned("Patient", source_id, s.version));
        targets.push(versioned("Patient", target_id, t.version));
        let prov = tx.save(json!({
            "resourceType": "Provenance",
            "target": targets,
            "recorded": format_instant(now_ms()),
            "activity": {"coding": [{"system": LIFECYCLE_SYSTEM, "code": "merge", "display": "Merge Record Lifecycle Event"}],
                         "text": format!("Patient/{source_id} merged into Patient/{target_id}")},
            "agent": [agent_json(tx.access())],
            "entity": [{"role": "revision", "what": versioned("Patient", source_id, source_version_before)}],
        }))?;
        // The pair's open reviews are answered.
        let key = pair_key(source_id, target_id);
        let mut open = Vec::new();
        find_all(
            tx,
            "Task",
            &[("identifier", format!("{DUPLICATE_PAIR_SYSTEM}|{key}"))],
            |_, task| {
                if task.get("status").and_then(Value::as_str) != Some("completed") {
                    open.push(task);
                }
                Ok(())
            },
        )?;
        for task in open {
            close(tx, task, "merged")?;
        }
        let out = MergeOutcome {
            source: source_id.to_owned(),
            target: target_id.to_owned(),
            repointed,
            provenance: prov.id,
        };
        Ok((out, target))
    }
}

/// Parses `Type/id/_history/v`.
fn parse_versioned(r: &str) -> Option<(String, String, i64)> {
    let parts: Vec<&str> = r.split('/').collect();
    let n = parts.len();
    if n >= 4 && parts[n - 2] == "_history" {
        Some((
            parts[n - 4].to_owned(),
            parts[n - 3].to_owned(),
            parts[n - 1].parse().ok()?,
        ))
    } else {
        None
    }
}

fn coded(p: &Value, code: &str) -> bool {
    p.pointer("/activity/coding")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("system").and_then(Value::as_str) == Some(LIFECYCLE_SYSTEM)
                    && c.get("code").and_then(Value::as_str) == Some(code)
            })
        })
}

/// Undoes the merge of `source_id` (see the module documentation).
pub fn unmerge(
    svc: &FhirService,
    access: &dyn Access,
    source_id: &str,
) -> Result<MergeOutcome, FhirError> {
    access.check_type(Op::Update, Some("Patient"))?;
    let gate = MergeGate { caller: access };
    svc.transact(&gate, |tx| {
        tx.set_audit_subtype(wardline_core::audit::WARDLINE_SUBTYPE, "pmi-unmerge", "U");
        let mut source = get_patient(tx, source_id)?;
        let Some(target_id) = links(&source, "replaced-by").into_iter().next() else {
            return Err(refused(format!(
                "{} is not merged into another record, so there is nothing to unmerge",
                describe(&source)
            )));
        };
        // The newest merge of this pair not undone yet.
        let mut merges: Vec<Value> = Vec::new();
        let mut undone: Vec<String> = Vec::new();
        find_all(
            tx,
            "Provenance",
            &[("target", format!("Patient/{source_id}"))],
            |_, p| {
                if coded(&p, "unmerge") {
                    for e in p.get("entity").and_then(Value::as_array).into_iter().flatten() {
                        if let Some(r) = e.pointer("/what/reference").and_then(Value::as_str) {
                            undone.push(r.trim_start_matches("Provenance/").to_owned());
                        }
                    }
                } else if coded(&p, "merge") {
                    merges.push(p);
                }
                Ok(())
            },
        )?;
        let names_target = |p: &Value| {
            p.get("target")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|t| t.get("reference").and_then(Value::as_str))
                .filter_map(parse_versioned)
                .any(|(t, id, _)| t == "Patient" && id == target_id)
        };
        let Some(prov) = merges
            .into_iter()
            .rev()
            .find(|p| {
                let id = p.get("id").and_then(Value::as_str).unwrap_or_default();
                !undone.iter().any(|u| u == id) && names_target(p)
            })
        else {
            return Err(refused(format!(
                "No record of how {} was merged was found, so it cannot be unmerged automatically",
                describe(&source)
            )));
        };
        let prov_id = prov
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let to = format!("Patient/{target_id}");
        let mut restored: Vec<Value> = Vec::new();
        let recorded: Vec<(String, String, i64)> = prov
            .get("target")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| t.get("reference").and_then(Value::as_str))
            .filter_map(parse_versioned)
            .filter(|(t, _, _)| t != "Patient")
            .collect();
        for (t, id, version) in recorded {
            let Some(mut current) = tx.get(&t, &id)? else {
                continue;
            };
            // The references that pointed at the source before the merge.
            let Some(before) = tx.vread(&t, &id, version - 1)? else {
                continue;
            };
            let mut changed = false;
            for (path, original) in reference_paths(&before, source_id) {
                if let Some(Value::String(s)) = current.pointer_mut(&path)
                    && (*s == to || refers_to(s, &target_id))
                {
                    *s = original;
                    changed = true;
                }
            }
            if changed {
                let saved = tx.save(current)?;
                restored.push(versioned(&t, &id, saved.version));
            }
        }
        let n = restored.len();
        // The source as it was: its `active` flag back, no link.
        let before_active = prov
            .get("entity")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| e.pointer("/what/reference").and_then(Value::as_str))
            .filter_map(parse_versioned)
            .find(|(t, id, _)| t == "Patient" && id == source_id)
            .map(|(_, _, v)| v)
            .map(|v| tx.vread("Patient", source_id, v))
            .transpose()?
            .flatten()
            .map(|p| p.get("active").cloned());
        match before_active {
            Some(Some(a)) => source["active"] = a,
            Some(None) => {
                if let Some(o) = source.as_object_mut() {
                    o.remove("active");
                }
            }
            None => source["active"] = json!(true),
        }
        remove_link(&mut source, &target_id, "replaced-by");
        let s = tx.save(source)?;
        let mut target = get_patient(tx, &target_id)?;
        remove_link(&mut target, source_id, "replaces");
        let t = tx.save(target)?;
        restored.push(versioned("Patient", source_id, s.version));
        restored.push(versioned("Patient", &target_id, t.version));
        let un = tx.save(json!({
            "resourceType": "Provenance",
            "target": restored,
            "recorded": format_instant(now_ms()),
            "activity": {"coding": [{"system": LIFECYCLE_SYSTEM, "code": "unmerge", "display": "Unmerge Record Lifecycle Event"}],
                         "text": format!("Patient/{source_id} unmerged from Patient/{target_id}")},
            "agent": [agent_json(access)],
            "entity": [{"role": "revision", "what": {"reference": format!("Provenance/{prov_id}")}}],
        }))?;
        Ok(MergeOutcome {
            source: source_id.to_owned(),
            target: target_id,
            repointed: n,
            provenance: un.id,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repointing_and_paths() {
        let mut v = json!({"subject": {"reference": "Patient/a"},
            "performer": [{"reference": "Practitioner/x"}, {"reference": "https://h/fhir/Patient/a"}],
            "note": [{"text": "Patient/a"}]});
        assert_eq!(
            reference_paths(&v, "a"),
            vec![
                ("/subject/reference".to_owned(), "Patient/a".to_owned()),
                (
                    "/performer/1/reference".to_owned(),
                    "https://h/fhir/Patient/a".to_owned()
                )
            ]
        );
        assert!(repoint(&mut v, "a", "Patient/b"));
        assert_eq!(v["subject"]["reference"], "Patient/b");
        assert_eq!(v["performer"][1]["reference"], "Patient/b");
        assert_eq!(v["note"][0]["text"], "Patient/a");
        assert!(!repoint(&mut v, "a", "Patient/b"));
        assert!(!refers_to("Patient/ab", "a"));
        assert_eq!(
            parse_versioned("Encounter/e1/_history/3"),
            Some(("Encounter".into(), "e1".into(), 3))
        );
    }
}
