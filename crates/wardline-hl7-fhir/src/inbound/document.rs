//! MDM^T01–T11 → DocumentReference (see the rules in the module doc of
//! `inbound`).

use serde_json::{Value, json};
use wardline_hl7::Message;

use crate::{MapError, MappingConfig, Records};

use super::Applied;
use super::adt::find_encounter;
use super::orders::ed_attachment;
use super::patient::{self, Mode};
use super::util::{Seg, base64, formatted_text, id_of, practitioner, reference, table_concept};

pub(crate) fn apply(
    msg: &Message<'_>,
    records: &mut dyn Records,
    cfg: &MappingConfig,
    event: &str,
) -> Result<Applied, MapError> {
    let Some(txa) = Seg::first(msg, "TXA") else {
        return Err(MapError::content(
            101,
            Some("TXA-12"),
            format!("MDM^{event} has no TXA segment, so no document number (TXA-12)"),
        ));
    };
    let Some(number) = txa.v(12) else {
        return Err(MapError::content(
            101,
            Some("TXA-12"),
            format!("TXA-12 unique document number is empty ('{}')", txa.raw(12)),
        ));
    };
    let patient_id = patient::upsert(msg, records, cfg, Mode::FindOrCreate)?;
    let encounter = find_encounter(msg, records, cfg)?.map(|e| id_of(&e));
    let system = format!("{}/document", cfg.identifier_base);
    let ident = json!({"system": system, "value": number});
    let mut doc = records
        .find_by_identifier("DocumentReference", &system, &number)?
        .unwrap_or_else(|| {
            json!({"resourceType": "DocumentReference", "masterIdentifier": ident,
                   "identifier": [ident], "status": "current"})
        });

    // TXA-19 availability (table 0273) → status; T11 cancels.
    if let Some(a) = txa.v(19) {
        doc["status"] = json!(match a.to_ascii_uppercase().as_str() {
            "AV" | "UN" => "current",
            "CA" => "entered-in-error",
            "OB" => "superseded",
            other => {
                return Err(MapError::content(
                    103,
                    Some(&txa.loc(19)),
                    format!(
                        "{} document availability status '{other}' is not in HL7 table 0273 (AV, CA, OB, UN)",
                        txa.loc(19)
                    ),
                ));
            }
        });
    }
    if event == "T11" {
        doc["status"] = json!("entered-in-error");
    }
    // TXA-17 completion status (table 0271) → docStatus.
    if let Some(c) = txa.v(17) {
        doc["docStatus"] = json!(match c.to_ascii_uppercase().as_str() {
            "AU" | "LA" => "final",
            "DI" | "DO" | "IN" | "IP" | "PA" => "preliminary",
            other => {
                return Err(MapError::content(
                    103,
                    Some(&txa.loc(17)),
                    format!(
                        "{} document completion status '{other}' is not in HL7 table 0271 (AU, DI, DO, IN, IP, LA, PA)",
                        txa.loc(17)
                    ),
                ));
            }
        });
    }
    if let Some(t) = txa
        .reps(2)
        .first()
        .and_then(|r| table_concept(r, "http://terminology.hl7.org/CodeSystem/v2-0270"))
    {
        doc["type"] = t;
    }
    doc["subject"] = reference("Patient", &patient_id);
    let activity = txa.ts(4)?;
    let origination = txa.ts(6)?;
    if let Some(t) = origination.as_ref().or(activity.as_ref()) {
        doc["date"] = json!(t.instant());
    }
    let mut authors = Vec::new();
    for f in [9, 5] {
        for r in txa.reps(f) {
            if let Some(p) = practitioner(&r, records, cfg)?
                && !authors.contains(&p)
            {
                authors.push(p);
            }
        }
    }
    if !authors.is_empty() {
        doc["author"] = Value::Array(authors);
    }
    if let Some(e) = &encounter {
        doc["context"]["encounter"] = json!([reference("Encounter", e)]);
    }
    if let Some(t) = &activity {
        doc["context"]["period"] = json!({"start": t.date_time()});
    }
    // TXA-13 parent document: T06 addendum appends, T10 replacement replaces
    // (the parent becomes superseded).
    if let Some(parent) = txa.v(13)
        && matches!(event, "T05" | "T06" | "T09" | "T10")
        && let Some(mut p) = records.find_by_identifier("DocumentReference", &system, &parent)?
        && id_of(&p) != id_of(&doc)
    {
        let code = if matches!(event, "T09" | "T10") {
            "replaces"
        } else {
            "appends"
        };
        doc["relatesTo"] =
            json!([{"code": code, "target": reference("DocumentReference", &id_of(&p))}]);
        if code == "replaces" {
            p["status"] = json!("superseded");
            records.save(p)?;
        }
    }

    // Content: OBX text (TX/FT/ST…) joined by lines as text/plain; ED as its
    // own attachment.
    let mut lines = Vec::new();
    let mut attachments = Vec::new();
    for obx in Seg::all(msg).into_iter().filter(|s| s.id() == "OBX") {
        let ty = obx.v(2).unwrap_or_default().to_ascii_uppercase();
        if ty == "ED" {
            if let Some(a) = obx.reps(5).first().and_then(ed_attachment) {
                attachments.push(a);
            }
            continue;
        }
        for r in obx.reps(5) {
            lines.push(formatted_text(&r.text(), msg));
        }
    }
    if !lines.is_empty() {
        let text = lines.join("\n");
        attachments.insert(
            0,
            json!({"contentType": "text/plain", "data": base64(text.as_bytes())}),
        );
    }
    if !attachments.is_empty() {
        doc["content"] = Value::Array(
            attachments
                .into_iter()
                .map(|a| json!({"attachment": a}))
                .collect(),
        );
    } else if doc.get("content").is_none() {
        // Notification without content (T01, T03 …): content is required.
        let mut a = json!({"contentType": "text/plain"});
        if let Some(f) = txa.v(16) {
            a["title"] = json!(f);
        }
        doc["content"] = json!([{"attachment": a}]);
    }
    let status = doc["status"].as_str().unwrap_or_default().to_owned();
    let id = records.save(doc)?;
    Ok(Applied {
        summary: format!(
            "MDM^{event}: Patient/{patient_id}, DocumentReference/{id} ({number}) {status}"
        ),
        patient_id: Some(patient_id),
    })
}
