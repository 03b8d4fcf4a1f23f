//! Property test: whatever JSON a trigger resource holds (right or wrong
//! shapes, delimiters and line breaks in text, dangling references),
//! `message_for` does not panic, and every message it returns parses,
//! keeps MSH-5/MSH-6 empty and names its type in MSH-9.

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use wardline_hl7::Message;
use wardline_hl7_fhir::MappingConfig;
use wardline_hl7_fhir::memory::MemoryRecords;
use wardline_hl7_fhir::outbound::{Change, TRIGGER_TYPES, message_for};

/// Element names the mappings read, so that generated objects hit them.
const KEYS: &[&str] = &[
    "id",
    "status",
    "identifier",
    "system",
    "value",
    "use",
    "name",
    "family",
    "given",
    "prefix",
    "text",
    "birthDate",
    "gender",
    "address",
    "line",
    "postalCode",
    "telecom",
    "deceasedDateTime",
    "deceasedBoolean",
    "generalPractitioner",
    "reference",
    "type",
    "link",
    "other",
    "active",
    "class",
    "code",
    "coding",
    "display",
    "subject",
    "location",
    "partOf",
    "physicalType",
    "participant",
    "individual",
    "actor",
    "period",
    "start",
    "end",
    "serviceType",
    "hospitalization",
    "priority",
    "requester",
    "authoredOn",
    "note",
    "basedOn",
    "result",
    "effectiveDateTime",
    "issued",
    "valueQuantity",
    "valueString",
    "valueRange",
    "low",
    "high",
    "referenceRange",
    "interpretation",
    "component",
    "contained",
    "encounter",
    "occurrenceDateTime",
    "minutesDuration",
    "comment",
    "reasonCode",
    "cancelationReason",
    "appointmentType",
    "category",
    "conclusion",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-zA-Z0-9 |^~\\\\&\r\n:+./#-]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("Patient/p1"),
            Just("Patient/zz"),
            Just("Location/bed"),
            Just("Location/loop"),
            Just("Practitioner/pr"),
            Just("Observation/o1"),
            Just("#c1"),
            Just("2026-11-23"),
            Just("2026-11-23T10:15:00+01:00"),
            Just("in-progress"),
            Just("finished"),
            Just("final"),
            Just("booked"),
            Just("cancelled"),
            Just("IMP"),
            Just("replaced-by"),
            Just("https://fhir.nhs.uk/Id/nhs-number"),
            Just("9434765919"),
            Just("official"),
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

fn resource(resource_type: &'static str) -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(KEYS), value()), 0..10).prop_map(move |kv| {
        let mut m: Map<String, Value> = kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        m.insert("resourceType".into(), json!(resource_type));
        Value::Object(m)
    })
}

fn records() -> MemoryRecords {
    let mut r = MemoryRecords::new();
    r.insert(json!({"resourceType": "Patient", "id": "p1",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}],
        "generalPractitioner": [{"reference": "Practitioner/pr"}]}));
    r.insert(json!({"resourceType": "Practitioner", "id": "pr", "name": [{"family": "A|B"}]}));
    r.insert(
        json!({"resourceType": "Location", "id": "bed", "partOf": {"reference": "Location/loop"}}),
    );
    // A partOf cycle must not hang the location walk.
    r.insert(
        json!({"resourceType": "Location", "id": "loop", "partOf": {"reference": "Location/bed"}}),
    );
    r.insert(json!({"resourceType": "Observation", "id": "o1", "valueQuantity": {"value": 1e300}}));
    r
}

fn check(
    resource_type: &str,
    before: Option<&Value>,
    after: Option<&Value>,
) -> Result<(), TestCaseError> {
    let mut r = records();
    let change = Change {
        resource_type,
        before,
        after,
    };
    let Ok(Some(out)) = message_for(
        &change,
        &mut r,
        &MappingConfig::default(),
        "C1",
        "20261123101500+0000",
    ) else {
        return Ok(());
    };
    let msg = Message::parse(&out.text)
        .map_err(|e| TestCaseError::fail(format!("{e}: {:?}", out.text)))?;
    prop_assert_eq!(msg.encode(), out.text.clone());
    prop_assert_eq!(msg.receiving_application(), Some(""));
    prop_assert_eq!(msg.receiving_facility(), Some(""));
    let msh9 = format!(
        "{}^{}",
        msg.message_type().unwrap_or_default(),
        msg.trigger_event().unwrap_or_default()
    );
    prop_assert_eq!(msh9, out.message_type);
    let control_id = msg.control_id();
    prop_assert_eq!(control_id.as_deref(), Some("C1"));
    Ok(())
}

/// Statuses of the trigger types, so that generated changes reach the
/// message-building paths.
const STATUSES: &[&str] = &[
    "planned",
    "arrived",
    "in-progress",
    "onleave",
    "finished",
    "cancelled",
    "entered-in-error",
    "draft",
    "active",
    "on-hold",
    "revoked",
    "completed",
    "registered",
    "partial",
    "preliminary",
    "final",
    "amended",
    "corrected",
    "proposed",
    "pending",
    "booked",
    "noshow",
    "waitlist",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_change_maps_without_panicking(
        which in 0..TRIGGER_TYPES.len(),
        has_before in any::<bool>(),
        statuses in (prop::sample::select(STATUSES), prop::sample::select(STATUSES)),
        with_patient in any::<bool>(),
        seed_a in resource("X"),
        seed_b in resource("X"),
    ) {
        let rt = TRIGGER_TYPES[which];
        let shape = |mut v: Value, status: &str| {
            v["resourceType"] = json!(rt);
            if !v.get("status").is_some_and(Value::is_object) {
                v["status"] = json!(status);
            }
            if with_patient {
                v["subject"] = json!({"reference": "Patient/p1"});
                v["participant"] = json!([{"actor": {"reference": "Patient/p1"}}]);
            }
            v
        };
        let after = shape(seed_a, statuses.0);
        let before = has_before.then(|| shape(seed_b, statuses.1));
        check(rt, before.as_ref(), Some(&after))?;
    }
}
