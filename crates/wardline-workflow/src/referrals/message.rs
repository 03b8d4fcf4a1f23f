//! The BaRS `$process-message` message Bundles: building a referral's
//! request (ours) or response (a received one's) from the store, as the
//! Booking and Referral Standard's examples have them — `type` `message`,
//! the `MessageHeader` first (`eventCoding` [`EVENT_SYSTEM`], `destination`
//! endpoint and receiver, `sender`, `source` with its endpoint, `reason`,
//! `focus` the ServiceRequest, `definition`), then the ServiceRequest, the
//! Patient, the Organisations, the Practitioner, the Encounter and the
//! attachments, every reference between them a `urn:uuid:` `fullUrl`.
//! Attachments travel whole: content stored as a `Binary` or a `Bundle`
//! is inlined as `data`, so the receiver needs nothing else of ours.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wardline_core::Tx;

use super::{REFERRAL_EXT, ReferralError, is_inbound, part, set_part};
use crate::transfers::{DELIVERY_EXT, fhir_time};

/// BaRS message events.
pub const EVENT_SYSTEM: &str = "https://fhir.nhs.uk/CodeSystem/message-events-bars";
/// A new referral.
pub const EVENT_REQUEST: &str = "servicerequest-request";
/// The receiver's answer (accepted or rejected).
pub const EVENT_RESPONSE: &str = "servicerequest-response";
/// BaRS message reasons.
pub const REASON_SYSTEM: &str = "https://fhir.nhs.uk/CodeSystem/message-reason-bars";

/// Who this server is on the wire: its own organisation (an `Organization`
/// id in its store) and the URL of its own `$process-message`, where
/// responses are sent back.
#[derive(Debug, Clone, Default)]
pub struct Local {
    pub organization: Option<String>,
    pub endpoint: String,
    /// A telephone number for the sending service (`source.contact`).
    pub phone: Option<String>,
}

fn strip(mut r: Value) -> Value {
    if let Some(o) = r.as_object_mut() {
        o.remove("meta");
        o.remove("text");
    }
    r
}

/// `att` with its content inlined (`data`) when it is stored here.
fn inline(tx: &mut Tx<'_>, att: &Value) -> Result<Value, ReferralError> {
    let mut att = att.clone();
    let url = att["url"].as_str().map(str::to_owned);
    if att["data"].is_string() {
        return Ok(att);
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let data = match url.as_deref().and_then(|u| u.split_once('/')) {
        Some(("Binary", id)) => tx
            .get("Binary", id)?
            .and_then(|b| b["data"].as_str().map(str::to_owned)),
        Some(("Bundle", id)) => tx
            .get("Bundle", id)?
            .map(|b| b64.encode(serde_json::to_vec(&b).unwrap_or_default())),
        _ => None,
    };
    match data {
        Some(d) => {
            att["data"] = json!(d);
            if let Some(o) = att.as_object_mut() {
                o.remove("url");
            }
            Ok(att)
        }
        None => Err(ReferralError::Conflict(format!(
            "An attachment's content ({}) is not stored here.",
            url.unwrap_or_default()
        ))),
    }
}

/// Rewrites every `reference` found in `map` (`Type/id` → `urn:uuid:`).
fn rewrite(v: &mut Value, map: &BTreeMap<String, String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                if k == "reference"
                    && let Some(r) = x.as_str()
                    && let Some(u) = map.get(r)
                {
                    *x = json!(u);
                } else {
                    rewrite(x, map);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite(x, map)),
        _ => {}
    }
}

/// The message about referral `sr`: its request when it is ours, its
/// response when it was received. Read in `tx`.
pub fn build_in(
    tx: &mut Tx<'_>,
    sr: &Value,
    local: &Local,
    now: OffsetDateTime,
) -> Result<Value, ReferralError> {
    let inbound = is_inbound(sr);
    let sr_id = sr["id"].as_str().unwrap_or_default();
    // The resources, in the examples' order.
    let mut refs: Vec<String> = vec![format!("ServiceRequest/{sr_id}")];
    let mut push = |r: Option<&str>| {
        if let Some(r) = r
            && r.contains('/')
            && !r.starts_with("urn:")
            && !refs.iter().any(|x| x == r)
        {
            refs.push(r.to_owned());
        }
    };
    push(sr["subject"]["reference"].as_str());
    for p in sr["performer"].as_array().into_iter().flatten() {
        push(p["reference"].as_str());
    }
    let sender_org = if inbound {
        sr["performer"][0]["reference"].as_str().map(str::to_owned)
    } else {
        local
            .organization
            .as_ref()
            .map(|o| format!("Organization/{o}"))
    };
    push(sender_org.as_deref());
    if !inbound {
        push(sr["requester"]["reference"].as_str());
        push(sr["encounter"]["reference"].as_str());
        for s in sr["supportingInfo"].as_array().into_iter().flatten() {
            push(s["reference"].as_str());
        }
    }
    let map: BTreeMap<String, String> = refs
        .iter()
        .map(|r| (r.clone(), format!("urn:uuid:{}", uuid::Uuid::new_v4())))
        .collect();
    let mut entries = Vec::new();
    for r in &refs {
        let Some((t, id)) = r.split_once('/') else {
            continue;
        };
        let Some(mut res) = tx.get(t, id)? else {
            if t == "DocumentReference" {
                return Err(ReferralError::Conflict(format!(
                    "The attachment {r} is no longer in the record."
                )));
            }
            continue;
        };
        if t == "ServiceRequest" {
            let state = part(&res, "state").unwrap_or("sent").to_owned();
            let reason = part(&res, "reason").map(str::to_owned);
            if let Some(o) = res.as_object_mut() {
                o.remove("extension");
                o.remove("id");
            }
            if inbound {
                set_part(&mut res, "state", Some(("valueCode", &state)));
                if let Some(why) = &reason {
                    set_part(&mut res, "reason", Some(("valueString", why)));
                }
            }
            debug_assert!(
                res["extension"]
                    .as_array()
                    .is_none_or(|e| e.iter().all(|x| x["url"] != DELIVERY_EXT))
            );
        } else if let Some(o) = res.as_object_mut() {
            o.remove("id");
        }
        if t == "DocumentReference" {
            let mut content = Vec::new();
            for c in res["content"].as_array().cloned().unwrap_or_default() {
                let mut c = c;
                c["attachment"] = inline(tx, &c["attachment"])?;
                content.push(c);
            }
            res["content"] = json!(content);
        }
        if t == "Patient" {
            // Only the NHS number travels: local numbers mean nothing there.
            let ids: Vec<Value> = res["identifier"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|i| i["system"] == crate::pmi::NHS_NUMBER_SYSTEM)
                .cloned()
                .collect();
            res["identifier"] = json!(ids);
            if let Some(o) = res.as_object_mut() {
                o.remove("generalPractitioner");
                o.remove("managingOrganization");
                o.remove("link");
            }
        }
        let mut res = strip(res);
        rewrite(&mut res, &map);
        entries.push(json!({"fullUrl": map[r], "resource": res}));
    }
    let (event, definition) = if inbound {
        (
            EVENT_RESPONSE,
            "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-response-referral",
        )
    } else {
        (
            EVENT_REQUEST,
            "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-request-referral",
        )
    };
    let destination_endpoint = crate::transfers::delivery_text(sr, "address")
        .unwrap_or_default()
        .to_owned();
    let receiver_ref = if inbound {
        None
    } else {
        sr["performer"][0]["reference"].as_str()
    };
    let mut destination = json!({"endpoint": destination_endpoint});
    if let Some(r) = receiver_ref.and_then(|r| map.get(r)) {
        destination["receiver"] = json!({"reference": r});
    }
    let sender = sender_org
        .as_deref()
        .or_else(|| sr["requester"]["reference"].as_str())
        .and_then(|r| map.get(r));
    let header_id = uuid::Uuid::new_v4().to_string();
    let mut header = json!({
        "resourceType": "MessageHeader",
        "id": header_id,
        "meta": {"profile": [format!("https://fhir.nhs.uk/StructureDefinition/BARSMessageHeader-{event}")]},
        "eventCoding": {"system": EVENT_SYSTEM, "code": event},
        "destination": [destination],
        "source": {"name": "Wardline", "software": "Wardline", "version": env!("CARGO_PKG_VERSION"), "endpoint": local.endpoint},
        "reason": {"coding": [{"system": REASON_SYSTEM, "code": if inbound { "update" } else { "new" }}]},
        "focus": [{"reference": map[&refs[0]]}],
        "definition": definition,
    });
    if let Some(p) = &local.phone {
        header["source"]["contact"] = json!({"system": "phone", "value": p});
    }
    if let Some(s) = sender {
        header["sender"] = json!({"reference": s});
    }
    if inbound && let Some(m) = part(sr, "messageId") {
        header["response"] = json!({"identifier": m, "code": "ok"});
    }
    let mut all = vec![json!({"fullUrl": format!("urn:uuid:{header_id}"), "resource": header})];
    all.extend(entries);
    Ok(json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "meta": {"profile": ["https://fhir.nhs.uk/StructureDefinition/BARSBundleMessage"]},
        "type": "message",
        "timestamp": fhir_time(now),
        "entry": all,
    }))
}

/// A received message, read: its header and its entries by `fullUrl`.
pub struct Parsed<'a> {
    pub header: &'a Value,
    pub event: &'a str,
    by_url: BTreeMap<&'a str, &'a Value>,
}

impl<'a> Parsed<'a> {
    /// The resource a reference (`urn:uuid:` or as given) points at.
    pub fn resolve(&self, r: &Value) -> Option<&'a Value> {
        self.by_url.get(r["reference"].as_str()?).copied()
    }
}

/// Reads a `$process-message` Bundle; a wrong one is a 400 naming the
/// field.
pub fn parse(bundle: &Value) -> Result<Parsed<'_>, ReferralError> {
    let bad = |f: &str, m: &str| ReferralError::Field(f.into(), m.into());
    if bundle["resourceType"] != "Bundle" || bundle["type"] != "message" {
        return Err(bad(
            "Bundle.type",
            "A $process-message body is a message Bundle.",
        ));
    }
    let entries = bundle["entry"]
        .as_array()
        .ok_or_else(|| bad("Bundle.entry", "The message has no entries."))?;
    let header = &entries
        .first()
        .ok_or_else(|| bad("Bundle.entry", "The message has no entries."))?["resource"];
    if header["resourceType"] != "MessageHeader" {
        return Err(bad(
            "Bundle.entry[0]",
            "A message's first entry is its MessageHeader.",
        ));
    }
    if header["eventCoding"]["system"] != EVENT_SYSTEM {
        return Err(bad(
            "MessageHeader.eventCoding",
            "Only BaRS messages (message-events-bars) are taken here.",
        ));
    }
    let event = header["eventCoding"]["code"].as_str().unwrap_or_default();
    let by_url = entries
        .iter()
        .filter_map(|e| Some((e["fullUrl"].as_str()?, &e["resource"])))
        .collect();
    Ok(Parsed {
        header,
        event,
        by_url,
    })
}

/// The referral's state a response carries (`REFERRAL_EXT` on its focus).
pub fn response_state(sr: &Value) -> Option<(&str, Option<&str>)> {
    sr["extension"]
        .as_array()?
        .iter()
        .any(|e| e["url"] == REFERRAL_EXT)
        .then(|| (part(sr, "state").unwrap_or_default(), part(sr, "reason")))
}
