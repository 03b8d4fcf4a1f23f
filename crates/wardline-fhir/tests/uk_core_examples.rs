//! The official UK Core examples (XML, read from the shared test data and
//! converted to JSON with the R4 model) conform to the UK Core profiles, and
//! copies of them broken one constraint at a time are refused, naming the
//! constraint. The NHS England API payloads that claim a UK Core profile are
//! reported. Without the shared test data the tests say SKIPPED.

use std::path::PathBuf;

use serde_json::{Map, Value, json};
use wardline_fhir::definitions::{Definitions, TypeKind, r4};
use wardline_fhir::profile::uk_core;

fn testdata() -> PathBuf {
    std::env::var("WARDLINE_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/testdata"
            ))
        })
}

/// An official UK Core example as FHIR JSON, or `None` when the shared test
/// data is absent.
fn example(name: &str) -> Option<Value> {
    let path = testdata().join("uk-core-r4/examples").join(name);
    let Ok(xml) = std::fs::read_to_string(&path) else {
        eprintln!("SKIPPED: {} is absent", path.display());
        return None;
    };
    Some(xml_to_json(r4(), &xml))
}

// ---- FHIR XML → JSON, by the R4 model ----

fn xml_to_json(defs: &Definitions, xml: &str) -> Value {
    let doc = roxmltree::Document::parse(xml).unwrap();
    resource(defs, xml, doc.root_element())
}

fn resource(defs: &Definitions, xml: &str, node: roxmltree::Node<'_, '_>) -> Value {
    let rt = node.tag_name().name();
    let mut obj = Map::new();
    obj.insert("resourceType".into(), json!(rt));
    fill(defs, xml, node, rt, &mut obj);
    Value::Object(obj)
}

/// The element definition of child `name` under `ctx` and its type.
fn element(defs: &Definitions, ctx: &str, name: &str) -> (String, Option<u32>, String, bool) {
    if let Some(el) = defs.element(&format!("{ctx}.{name}")) {
        if let Some(cr) = &el.content_reference {
            return (
                cr.trim_start_matches('#').to_owned(),
                el.max,
                "BackboneElement".into(),
                false,
            );
        }
        let t = el.types.first().cloned().unwrap_or_default();
        return (el.path.clone(), el.max, t, false);
    }
    for (i, c) in name.char_indices().skip(1) {
        if c.is_ascii_uppercase()
            && let Some(el) = defs.element(&format!("{ctx}.{}[x]", &name[..i]))
        {
            let t = el
                .types
                .iter()
                .find(|t| {
                    let mut cs = t.chars();
                    cs.next().is_some_and(|f| {
                        f.to_ascii_uppercase().to_string() + cs.as_str() == name[i..]
                    })
                })
                .unwrap_or_else(|| panic!("no type for {ctx}.{name}"))
                .clone();
            return (el.path.clone(), el.max, t, true);
        }
    }
    panic!("unknown element {ctx}.{name}")
}

fn primitive(defs: &Definitions, t: &str) -> bool {
    t == "xhtml"
        || defs
            .types
            .get(t)
            .is_none_or(|d| d.kind == TypeKind::PrimitiveType)
}

fn fill(
    defs: &Definitions,
    xml: &str,
    node: roxmltree::Node<'_, '_>,
    ctx: &str,
    obj: &mut Map<String, Value>,
) {
    if let Some(url) = node.attribute("url") {
        obj.insert("url".into(), json!(url));
    }
    if let Some(id) = node.attribute("id") {
        obj.insert("id".into(), json!(id));
    }
    // Primitive values and their `_name` siblings, gathered per name.
    let mut prims: Vec<(String, bool, Vec<Value>, Vec<Value>)> = Vec::new();
    for child in node.children().filter(|c| c.is_element()) {
        let name = child.tag_name().name();
        let (path, max, t, _) = element(defs, ctx, name);
        let repeats = max != Some(1);
        if t == "xhtml" {
            obj.insert(name.into(), json!(&xml[child.range()]));
            continue;
        }
        if primitive(defs, &t) {
            let v = match child.attribute("value") {
                None => Value::Null,
                Some(s) => match t.as_str() {
                    "boolean" => json!(s == "true"),
                    "integer" | "positiveInt" | "unsignedInt" => json!(s.parse::<i64>().unwrap()),
                    "decimal" => serde_json::from_str(s).unwrap(),
                    _ => json!(s),
                },
            };
            let mut ext = Map::new();
            fill(defs, xml, child, "Element", &mut ext);
            let ext = if ext.is_empty() {
                Value::Null
            } else {
                Value::Object(ext)
            };
            match prims.iter_mut().find(|p| p.0 == name) {
                Some(p) => {
                    p.2.push(v);
                    p.3.push(ext);
                }
                None => prims.push((name.into(), repeats, vec![v], vec![ext])),
            }
            continue;
        }
        let value = if t == "Resource"
            || defs
                .types
                .get(&t)
                .is_some_and(|d| d.kind == TypeKind::Resource)
        {
            let inner = child.children().find(|c| c.is_element()).unwrap();
            resource(defs, xml, inner)
        } else {
            let sub_ctx = if t == "BackboneElement" || t == "Element" {
                path
            } else {
                t
            };
            let mut sub = Map::new();
            fill(defs, xml, child, &sub_ctx, &mut sub);
            Value::Object(sub)
        };
        if repeats {
            obj.entry(name)
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .unwrap()
                .push(value);
        } else {
            obj.insert(name.into(), value);
        }
    }
    for (name, repeats, values, exts) in prims {
        let any_ext = exts.iter().any(|e| !e.is_null());
        let any_value = values.iter().any(|v| !v.is_null());
        if repeats {
            if any_value {
                obj.insert(name.clone(), Value::Array(values));
            }
            if any_ext {
                obj.insert(format!("_{name}"), Value::Array(exts));
            }
        } else {
            if any_value {
                obj.insert(name.clone(), values[0].clone());
            }
            if any_ext {
                obj.insert(format!("_{name}"), exts[0].clone());
            }
        }
    }
}

// ---- the tests ----

const PATIENT: &str = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient";
const ENCOUNTER: &str = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Encounter";

fn claim(mut v: Value, profile: &str) -> Value {
    v["meta"] = json!({"profile": [profile]});
    v
}

/// The diagnostics of each issue with its location.
fn problems(v: &Value) -> Vec<String> {
    uk_core()
        .issues(r4(), v)
        .into_iter()
        .map(|i| format!("{} @ {}", i.diagnostics, i.expression.join(",")))
        .collect()
}

#[test]
fn the_official_patient_and_encounter_conform() {
    for (file, profile) in [
        ("UKCore-Patient-RichardSmith-Example.xml", PATIENT),
        ("UKCore-Encounter-InpatientEncounter-Example.xml", ENCOUNTER),
    ] {
        let Some(v) = example(file) else { return };
        let v = claim(v, profile);
        r4().validate(&v).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(problems(&v), Vec::<String>::new(), "{file}");
        uk_core().validate(r4(), &v).unwrap();
    }
}

#[test]
fn broken_copies_of_the_official_patient_are_refused_naming_the_constraint() {
    let Some(good) = example("UKCore-Patient-RichardSmith-Example.xml") else {
        return;
    };
    let good = claim(good, PATIENT);
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation, &str)> = vec![
        (
            "a second NHS number",
            Box::new(|p| {
                let copy =
                    json!({"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"});
                p["identifier"].as_array_mut().unwrap().push(copy);
            }),
            "UKCore-Patient (Patient.identifier:nhsNumber): may appear at most once, found 2 @ Patient.identifier",
        ),
        (
            "an NHS number without its value",
            Box::new(|p| {
                p["identifier"][0].as_object_mut().unwrap().remove("value");
            }),
            "UKCore-Patient (Patient.identifier:nhsNumber.value): is required (at least 1), but is missing @ Patient.identifier[0].value",
        ),
        (
            "a verification status outside the value set",
            Box::new(|p| {
                p["identifier"][0]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] =
                    json!("09");
            }),
            "Extension-UKCore-NHSNumberVerificationStatus (Extension.value[x]): the code must come from the required value set UKCore-NHSNumberVerificationStatus (https://fhir.hl7.org.uk/ValueSet/UKCore-NHSNumberVerificationStatus); found https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland#09 @ Patient.identifier[0].extension[0].valueCodeableConcept",
        ),
        (
            "two verification statuses",
            Box::new(|p| {
                let e = p["identifier"][0]["extension"][0].clone();
                p["identifier"][0]["extension"]
                    .as_array_mut()
                    .unwrap()
                    .push(e);
            }),
            "UKCore-Patient (Patient.identifier:nhsNumber.extension:nhsNumberVerificationStatus): may appear at most once, found 2 @ Patient.identifier[0].extension",
        ),
        (
            "an ethnic category given as text",
            Box::new(|p| {
                let e = p["extension"][0].as_object_mut().unwrap();
                e.remove("valueCodeableConcept");
                e.insert("valueString".into(), json!("Mixed"));
            }),
            "Extension-UKCore-EthnicCategory (Extension.value[x]): valueString is not allowed here: the value must be valueCodeableConcept @ Patient.extension[0].valueString",
        ),
        (
            "two ethnic categories",
            Box::new(|p| {
                let e = p["extension"][0].clone();
                p["extension"].as_array_mut().unwrap().push(e);
            }),
            "UKCore-Patient (Patient.extension:ethnicCategory): may appear at most once, found 2 @ Patient.extension",
        ),
        (
            "the verification status on the patient instead of the NHS number",
            Box::new(|p| {
                let e = p["identifier"][0]["extension"][0].clone();
                p["extension"].as_array_mut().unwrap().push(e);
            }),
            "Extension-UKCore-NHSNumberVerificationStatus may be used on Patient.identifier, not on Patient @ Patient.extension[4]",
        ),
        (
            "a death notification status without its status",
            Box::new(|p| {
                p["extension"][2]["extension"]
                    .as_array_mut()
                    .unwrap()
                    .remove(0);
            }),
            "Extension-UKCore-DeathNotificationStatus (Extension.extension:deathNotificationStatus): is required (at least 1), but is missing @ Patient.extension[2].extension",
        ),
        (
            "a contact rank of zero",
            Box::new(|p| {
                let e = p["contact"][0]["extension"][0].as_object_mut().unwrap();
                e.remove("valuePositiveInt");
                e.insert("valueInteger".into(), json!(0));
            }),
            "Extension-UKCore-ContactRank (Extension.value[x]): valueInteger is not allowed here: the value must be valuePositiveInt @ Patient.contact[0].extension[0].valueInteger",
        ),
        (
            "a language that is not a BCP 47 tag",
            Box::new(|p| {
                p["communication"][0]["language"]["coding"][0]["code"] =
                    json!("British Sign Language");
            }),
            "UKCore-Patient (Patient.communication.language): the code must come from the required value set all-languages (http://hl7.org/fhir/ValueSet/all-languages); found urn:ietf:bcp:47#British Sign Language, http://snomed.info/sct#703963007 @ Patient.communication[0].language",
        ),
    ];
    for (what, mutate, want) in cases {
        let mut p = good.clone();
        mutate(&mut p);
        r4().validate(&p)
            .unwrap_or_else(|e| panic!("{what}: the mutation must stay valid R4: {e}"));
        let got = problems(&p);
        assert!(
            got.iter().any(|g| g == want),
            "{what}: expected\n  {want}\ngot\n  {got:#?}"
        );
        let err = uk_core().validate(r4(), &p).unwrap_err();
        assert_eq!(err.status, 422, "{what}");
    }
}

#[test]
fn broken_copies_of_the_official_encounter_are_refused_naming_the_constraint() {
    let Some(good) = example("UKCore-Encounter-InpatientEncounter-Example.xml") else {
        return;
    };
    let good = claim(good, ENCOUNTER);
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation, &str)> = vec![
        (
            "the discharge method on the hospitalisation",
            Box::new(|e| {
                let m = e["extension"][0].clone();
                e["hospitalization"]["extension"]
                    .as_array_mut()
                    .unwrap()
                    .push(m);
            }),
            "Extension-UKCore-DischargeMethod may be used on Encounter, not on Encounter.hospitalization @ Encounter.hospitalization.extension[1]",
        ),
        (
            "the admission method on the encounter",
            Box::new(|e| {
                let m = e["hospitalization"]["extension"][0].clone();
                e["extension"].as_array_mut().unwrap().push(m);
            }),
            "Extension-UKCore-AdmissionMethod may be used on Encounter.hospitalization, not on Encounter @ Encounter.extension[1]",
        ),
        (
            "two discharge methods",
            Box::new(|e| {
                let m = e["extension"][0].clone();
                e["extension"].as_array_mut().unwrap().push(m);
            }),
            "Extension-UKCore-DischargeMethod may appear at most once on Encounter, found 2 @ Encounter.extension",
        ),
        (
            "an admission method without a value",
            Box::new(|e| {
                e["hospitalization"]["extension"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("valueCodeableConcept");
                e["hospitalization"]["extension"][0]["extension"] =
                    json!([{"url": "note", "valueString": "elective"}]);
            }),
            "Extension-UKCore-AdmissionMethod (Extension.value[x]): is required (at least 1), but is missing @ Encounter.hospitalization.extension[0].value",
        ),
    ];
    for (what, mutate, want) in cases {
        let mut e = good.clone();
        mutate(&mut e);
        r4().validate(&e)
            .unwrap_or_else(|err| panic!("{what}: the mutation must stay valid R4: {err}"));
        let got = problems(&e);
        assert!(
            got.iter().any(|g| g == want),
            "{what}: expected\n  {want}\ngot\n  {got:#?}"
        );
    }
}

/// NHS England API payloads (PDS, BaRS) that claim UK Core Patient or
/// Encounter: the BaRS examples' Patients do not conform to UK Core STU2 in
/// two ways, which must be found (and nothing else): the language is coded
/// in `UKCore-HumanLanguage` where the binding requires a BCP 47 tag, and
/// the NHS number verification status in a code system outside the value
/// set (`…/UKCore-NHSNumberVerificationStatus#number-present-and-verified`).
#[test]
fn nhs_api_payloads_that_claim_uk_core() {
    let dir = testdata().join("nhs-api-examples");
    let mut files = Vec::new();
    json_files(&dir, &mut files);
    if files.is_empty() {
        eprintln!("SKIPPED: no NHS API examples under {}", dir.display());
        return;
    }
    const LANGUAGE: &str = "UKCore-Patient (Patient.communication.language): the code must come from the required value set all-languages (http://hl7.org/fhir/ValueSet/all-languages); found https://fhir.hl7.org.uk/CodeSystem/UKCore-HumanLanguage#en @ ";
    const VERIFICATION: &str = "Extension-UKCore-NHSNumberVerificationStatus (Extension.value[x]): the code must come from the required value set UKCore-NHSNumberVerificationStatus (https://fhir.hl7.org.uk/ValueSet/UKCore-NHSNumberVerificationStatus); found https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatus#number-present-and-verified @ ";
    let (mut claiming, mut language, mut verification, mut others) = (0, 0, 0, Vec::new());
    for f in &files {
        let Ok(v) = serde_json::from_slice::<Value>(&std::fs::read(f).unwrap()) else {
            continue;
        };
        if v.get("resourceType").is_none() || r4().validate(&v).is_err() {
            continue;
        }
        let text = v.to_string();
        if !text.contains(PATIENT) && !text.contains(ENCOUNTER) {
            continue;
        }
        claiming += 1;
        for g in problems(&v) {
            if g.starts_with(LANGUAGE) {
                language += 1;
            } else if g.starts_with(VERIFICATION) {
                verification += 1;
            } else {
                others.push(format!("{}: {g}", f.display()));
            }
        }
    }
    eprintln!(
        "{claiming} payloads claim UK Core Patient or Encounter: {language} languages not BCP 47, {verification} verification statuses outside the value set"
    );
    assert!(claiming > 0, "the BaRS examples claim UKCore-Patient");
    assert!(
        language > 0 && verification > 0,
        "the known faults are found"
    );
    assert!(others.is_empty(), "{}", others.join("\n"));
}

fn json_files(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            json_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
}

/// PDS's Patients (which claim no profile, and are accepted as they are)
/// held to UK Core Patient STU2: PDS still writes three shapes of earlier
/// UK Core releases, which are found, and nothing else is: the verification
/// status in the retired code system `…/UKCore-NHSNumberVerificationStatus`,
/// the address key's type as a `valueCoding`, and the other contact system
/// as a `valueCoding` on the ContactPoint rather than on its `system`.
#[test]
fn pds_patients_held_to_uk_core_differ_only_by_older_uk_core_shapes() {
    let dir = testdata().join("nhs-api-examples/pds");
    let mut files = Vec::new();
    json_files(&dir, &mut files);
    if files.is_empty() {
        eprintln!("SKIPPED: no PDS examples under {}", dir.display());
        return;
    }
    fn patients(v: &Value, out: &mut Vec<Value>) {
        match v {
            Value::Object(o) => {
                if o.get("resourceType") == Some(&json!("Patient")) {
                    out.push(v.clone());
                }
                o.values().for_each(|x| patients(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| patients(x, out)),
            _ => {}
        }
    }
    let older = [
        "found https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatus#",
        "Extension-UKCore-AddressKey (Extension.extension:type.value[x]): valueCoding is not allowed here",
        "Extension-UKCore-OtherContactSystem may be used on ContactPoint.system, not on Patient.telecom",
        "Extension-UKCore-OtherContactSystem (Extension.value[x]): valueCoding is not allowed here",
    ];
    let (mut checked, mut seen, mut others) = (0, [0; 4], Vec::new());
    for f in &files {
        let Ok(v) = serde_json::from_slice::<Value>(&std::fs::read(f).unwrap()) else {
            continue;
        };
        let mut found = Vec::new();
        patients(&v, &mut found);
        for p in found {
            if r4().validate(&p).is_err() {
                continue;
            }
            checked += 1;
            for g in problems(&claim(p, PATIENT)) {
                match older.iter().position(|o| g.contains(o)) {
                    Some(i) => seen[i] += 1,
                    None => others.push(format!("{}: {g}", f.display())),
                }
            }
        }
    }
    eprintln!("{checked} PDS patients held to UK Core STU2; older shapes found: {seen:?}");
    assert!(checked > 0);
    assert!(
        seen.iter().all(|n| *n > 0),
        "each older shape is found: {seen:?}"
    );
    assert!(others.is_empty(), "{}", others.join("\n"));
}
