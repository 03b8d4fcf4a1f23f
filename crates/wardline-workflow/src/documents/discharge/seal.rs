//! Sealing a signed summary (or letter): the signed Composition version,
//! its PDF `Binary`, its FHIR document `Bundle` and its `DocumentReference`,
//! written together in the signing transaction.

use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::Tx;

use super::{
    DOCUMENT_EXT, DOCUMENT_ID_SYSTEM, DischargeError, Form, Patient, ROLE_EXT, Section, Signature,
    Signed, now_text, pdf, prefill, section_json_of, summary_of,
};
use crate::fhir::reference_id;

/// Writes the signed version, its PDF, document Bundle and
/// DocumentReference (superseding `earlier`).
#[allow(clippy::too_many_arguments)]
pub(super) fn seal_in(
    tx: &mut Tx<'_>,
    form: &Form,
    mut c: Value,
    sections: Vec<Section>,
    status: &str,
    signer: &Signature,
    earlier: Option<Value>,
    now: OffsetDateTime,
) -> Result<Signed, DischargeError> {
    let id = c["id"].as_str().unwrap_or_default().to_owned();
    let patient_id = reference_id(&c["subject"], "Patient")
        .unwrap_or_default()
        .to_owned();
    let encounter_id = reference_id(&c["encounter"], "Encounter")
        .unwrap_or_default()
        .to_owned();
    let at = now_text(now);
    c["status"] = json!(status);
    c["date"] = json!(at);
    c["section"] = json!(
        sections
            .iter()
            .map(|s| section_json_of(form.heading_system, s))
            .collect::<Vec<_>>()
    );
    let mut attester = json!({"mode": "legal", "time": at,
        "party": {"reference": signer.by, "display": signer.name}});
    if let Some(r) = &signer.role {
        attester["extension"] = json!([{"url": ROLE_EXT, "valueString": r}]);
    }
    c["attester"] = json!([attester]);
    let bundle_id = uuid::Uuid::new_v4().to_string();
    let binary_id = uuid::Uuid::new_v4().to_string();
    set_document(&mut c, &bundle_id);
    let patient = tx
        .get("Patient", &patient_id)?
        .ok_or_else(|| DischargeError::NotFound(format!("There is no patient {patient_id}.")))?;
    let gp_practice = prefill::gp_practice_id(&patient);
    let summary = summary_of(&c, Patient::of(&patient, &patient_id));
    let pdf_bytes = pdf::render(&summary);
    // The document: the Composition first, then everything it references.
    let mut refs: Vec<String> = vec![format!("Patient/{patient_id}")];
    refs.push(format!("Encounter/{encounter_id}"));
    for r in c["author"].as_array().into_iter().flatten() {
        refs.extend(r["reference"].as_str().map(str::to_owned));
    }
    refs.push(signer.by.clone());
    for s in &sections {
        refs.extend(s.entries.iter().cloned());
    }
    let mut seen = std::collections::HashSet::new();
    refs.retain(|r| seen.insert(r.clone()));
    let mut entries = vec![
        json!({"fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()), "resource": without_meta(&c)}),
    ];
    for r in &refs {
        let Some((t, rid)) = r.split_once('/') else {
            continue;
        };
        if let Some(res) = tx.get(t, rid)? {
            entries.push(
                json!({"fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()), "resource": res}),
            );
        }
    }
    // Within the document, references are to the entries' fullUrls.
    let map: Vec<(String, String)> = entries
        .iter()
        .skip(1)
        .filter_map(|e| {
            let t = e["resource"]["resourceType"].as_str()?;
            let i = e["resource"]["id"].as_str()?;
            Some((format!("{t}/{i}"), e["fullUrl"].as_str()?.to_owned()))
        })
        .collect();
    let comp_full = entries[0]["fullUrl"].clone();
    for e in entries.iter_mut() {
        relink(&mut e["resource"], &map);
    }
    let bundle = json!({
        "resourceType": "Bundle",
        "id": bundle_id,
        "identifier": {"system": DOCUMENT_ID_SYSTEM, "value": comp_full},
        "type": "document",
        "timestamp": at,
        "entry": entries,
    });
    use base64::Engine as _;
    let binary = json!({
        "resourceType": "Binary",
        "id": binary_id,
        "contentType": "application/pdf",
        "securityContext": {"reference": format!("Patient/{patient_id}")},
        "data": base64::engine::general_purpose::STANDARD.encode(&pdf_bytes),
    });
    tx.save(bundle)?;
    tx.save(binary)?;
    tx.save(c)?;
    let mut dr = json!({
        "resourceType": "DocumentReference",
        "masterIdentifier": {"system": DOCUMENT_ID_SYSTEM, "value": comp_full},
        "status": "current",
        "docStatus": status,
        "type": form.type_concept(),
        "subject": {"reference": format!("Patient/{patient_id}")},
        "date": at,
        "author": [{"reference": signer.by, "display": signer.name}],
        "authenticator": {"reference": signer.by, "display": signer.name},
        "description": form.display,
        "content": [
            {"attachment": {"contentType": "application/fhir+json", "url": format!("Bundle/{bundle_id}"),
                "title": format!("{} (FHIR document)", form.display), "creation": at}},
            {"attachment": {"contentType": "application/pdf", "url": format!("Binary/{binary_id}"),
                "title": format!("{} (PDF)", form.display), "size": pdf_bytes.len(), "creation": at}}
        ],
        "context": {"encounter": [{"reference": format!("Encounter/{encounter_id}")}],
            "related": [{"reference": format!("Composition/{id}")}]},
    });
    if let Some(mut old) = earlier {
        dr["relatesTo"] = json!([{"code": "replaces", "target": {"reference": format!("DocumentReference/{}", old["id"].as_str().unwrap_or_default())}}]);
        old["status"] = json!("superseded");
        tx.save(old)?;
    }
    let dr = tx.save(dr)?;
    Ok(Signed {
        composition: id,
        patient: patient_id,
        encounter: encounter_id,
        bundle: bundle_id,
        binary: binary_id,
        document_reference: dr.id,
        gp_practice,
    })
}

/// The Composition of a document Bundle, its references to the other
/// entries written back as `Type/id` (as stored).
pub fn composition_in_document(bundle: &Value) -> Value {
    let map: Vec<(String, String)> = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .skip(1)
        .filter_map(|e| {
            let t = e["resource"]["resourceType"].as_str()?;
            let i = e["resource"]["id"].as_str()?;
            Some((e["fullUrl"].as_str()?.to_owned(), format!("{t}/{i}")))
        })
        .collect();
    let mut c = bundle["entry"][0]["resource"].clone();
    relink(&mut c, &map);
    c
}

fn set_document(c: &mut Value, bundle: &str) {
    let ext =
        json!({"url": DOCUMENT_EXT, "valueReference": {"reference": format!("Bundle/{bundle}")}});
    match c.get_mut("extension").and_then(Value::as_array_mut) {
        Some(es) => {
            es.retain(|e| e["url"] != DOCUMENT_EXT);
            es.push(ext);
        }
        None => c["extension"] = json!([ext]),
    }
}

fn without_meta(c: &Value) -> Value {
    let mut c = c.clone();
    if let Some(o) = c.as_object_mut() {
        o.remove("meta");
    }
    c
}

/// Rewrites `reference`s to resources in the document to their fullUrls.
fn relink(v: &mut Value, map: &[(String, String)]) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get_mut("reference")
                && let Some((_, full)) = map.iter().find(|(k, _)| k == r)
            {
                *r = full.clone();
            }
            for (k, x) in o.iter_mut() {
                if k != "reference" {
                    relink(x, map);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| relink(x, map)),
        _ => {}
    }
}
