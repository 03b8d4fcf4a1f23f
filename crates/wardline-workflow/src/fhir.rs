//! Small readers of FHIR values the workflows share (a concept's text, the
//! id in a reference). Reading the record itself is the core's typed API:
//! [`wardline_core::FhirService::read_as`] / `search_as` for what a person
//! is shown (checked and audited like REST), a [`wardline_core::Tx`] for what
//! a workflow decides and writes.

use serde_json::Value;

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
    let r = r["reference"].as_str()?;
    let id = r
        .rsplit_once(&format!("{resource_type}/"))
        .map(|(_, id)| id)?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
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
}
