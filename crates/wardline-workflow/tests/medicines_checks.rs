//! Decision support at the point of prescribing over a real store — SQLite
//! always, PostgreSQL too when `WARDLINE_TEST_PG_URL` is set (each test in
//! a fresh schema): each check fires and does not fire, the alerts gone
//! past are kept as DetectedIssues with the reason, and a hard stop cannot
//! be gone past even with one.

mod support;

use serde_json::{Value, json};
use support::Backend;
use time::OffsetDateTime;
use time::macros::datetime;
use wardline_core::{Agent, FhirService, Trusted};
use wardline_workflow::medicines::checks::{
    self, Alert, AlertKind, Grade, Override, alerts_of, assess_in, gate, knowledge, record_in,
};
use wardline_workflow::medicines::formulary::{self, Formulary};
use wardline_workflow::medicines::{
    CLASS_SYSTEM, DMD_SYSTEM, FORMULARY_EXT, MIN_INTERVAL_EXT, MedicinesError, SNOMED_SYSTEM,
};

fn backends(test: &str) -> Vec<Backend> {
    support::backends(&format!("mchecks_{test}"), support::plain, seed)
}

fn op() -> Trusted {
    Trusted::operator("checks-test")
}

fn prescriber() -> Trusted {
    Trusted::new(Agent {
        name: "dr1".to_owned(),
        who: Some("Practitioner/dr1".to_owned()),
        ..Agent::default()
    })
}

const NOW: OffsetDateTime = datetime!(2026-12-02 10:00 UTC);

/// The VTM code the knowledge gives a substance (so the test follows the
/// formulary's codes).
fn vtm(name: &str) -> String {
    let k = knowledge::get().unwrap();
    k.maximum_doses
        .iter()
        .find(|m| m.name == name)
        .map(|m| m.vtm.clone())
        .or_else(|| {
            k.renal_rules
                .iter()
                .map(|r| &r.on)
                .chain(k.interactions.iter().flat_map(|i| [&i.a, &i.b]))
                .find(|t| t.name == name && t.vtm.is_some())
                .and_then(|t| t.vtm.clone())
        })
        .unwrap_or_else(|| format!("local-{name}"))
}

/// A formulary Medication: id, name, substance, classes, strength (mg per
/// unit of dose).
fn med(
    id: &str,
    name: &str,
    substance: &str,
    classes: &[&str],
    mg: f64,
    per: (f64, &str),
) -> Value {
    let v = vtm(substance);
    let mut subs = vec![
        json!({"url": "vtm", "valueCoding": {"system": DMD_SYSTEM, "code": v, "display": substance}}),
        json!({"url": "unitOfDose", "valueString": per.1}),
    ];
    for c in classes {
        subs.push(json!({"url": "class", "valueCoding": {"system": CLASS_SYSTEM, "code": c}}));
    }
    json!({"resourceType": "Medication", "id": id, "status": "active",
        "code": {"coding": [{"system": DMD_SYSTEM, "code": id.trim_start_matches("med-"), "display": name}]},
        "ingredient": [{"itemCodeableConcept": {"coding": [{"system": DMD_SYSTEM, "code": v, "display": substance}]},
            "strength": {"numerator": {"value": mg, "unit": "mg"}, "denominator": {"value": per.0, "unit": per.1}}}],
        "extension": [{"url": FORMULARY_EXT, "extension": subs}]})
}

fn patient(id: &str, gender: &str, birth: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "active": true, "gender": gender, "birthDate": birth,
        "name": [{"use": "official", "family": "Test", "given": [id]}]})
}

fn seed(svc: &FhirService) {
    let rs = vec![
        patient("p1", "male", "1956-06-01"),
        json!({"resourceType": "Practitioner", "id": "dr1", "name": [{"family": "Patel", "given": ["Ravi"]}]}),
        med(
            "med-para-tab",
            "Paracetamol 500mg tablets",
            "paracetamol",
            &[],
            500.0,
            (1.0, "tablet"),
        ),
        med(
            "med-para-iv",
            "Paracetamol 10mg/ml solution for infusion",
            "paracetamol",
            &[],
            10.0,
            (1.0, "mL"),
        ),
        med(
            "med-amox",
            "Amoxicillin 500mg capsules",
            "amoxicillin",
            &["penicillin"],
            500.0,
            (1.0, "capsule"),
        ),
        med(
            "med-fluclox",
            "Flucloxacillin 500mg capsules",
            "flucloxacillin",
            &["penicillin"],
            500.0,
            (1.0, "capsule"),
        ),
        med(
            "med-cefalexin",
            "Cefalexin 500mg capsules",
            "cefalexin",
            &["cephalosporin"],
            500.0,
            (1.0, "capsule"),
        ),
        med(
            "med-ibu",
            "Ibuprofen 400mg tablets",
            "ibuprofen",
            &["nsaid"],
            400.0,
            (1.0, "tablet"),
        ),
        med(
            "med-naproxen",
            "Naproxen 250mg tablets",
            "naproxen",
            &["nsaid"],
            250.0,
            (1.0, "tablet"),
        ),
        med(
            "med-warfarin",
            "Warfarin 1mg tablets",
            "warfarin",
            &["anticoagulant"],
            1.0,
            (1.0, "tablet"),
        ),
        med(
            "med-metformin",
            "Metformin 500mg tablets",
            "metformin",
            &["biguanide"],
            500.0,
            (1.0, "tablet"),
        ),
        med(
            "med-gent",
            "Gentamicin 80mg/2ml solution for injection",
            "gentamicin",
            &["aminoglycoside"],
            40.0,
            (1.0, "mL"),
        ),
        med(
            "med-clari",
            "Clarithromycin 500mg tablets",
            "clarithromycin",
            &["macrolide"],
            500.0,
            (1.0, "tablet"),
        ),
        med(
            "med-simva",
            "Simvastatin 40mg tablets",
            "simvastatin",
            &["statin"],
            40.0,
            (1.0, "tablet"),
        ),
        med(
            "med-morph",
            "Morphine 10mg/5ml oral solution",
            "morphine",
            &["opioid"],
            2.0,
            (1.0, "mL"),
        ),
        med(
            "med-diazepam",
            "Diazepam 2mg tablets",
            "diazepam",
            &["benzodiazepine"],
            2.0,
            (1.0, "tablet"),
        ),
        med(
            "med-clopi",
            "Clopidogrel 75mg tablets",
            "clopidogrel",
            &["antiplatelet"],
            75.0,
            (1.0, "tablet"),
        ),
        med(
            "med-omep",
            "Omeprazole 20mg capsules",
            "omeprazole",
            &["ppi"],
            20.0,
            (1.0, "capsule"),
        ),
    ];
    let a = op();
    let mut tx = svc.begin(&a).unwrap();
    for r in rs {
        tx.save(r).unwrap();
    }
    tx.commit().unwrap();
}

fn save(svc: &FhirService, r: Value) -> String {
    let a = op();
    let mut tx = svc.begin(&a).unwrap();
    let id = tx.save(r).unwrap().id;
    tx.commit().unwrap();
    id
}

const QDS: [&str; 4] = ["06:00:00", "12:00:00", "18:00:00", "22:00:00"];

/// A regular prescription: `dose` in `unit`, at `times`.
fn regular(m: &str, dose: f64, unit: &str, times: &[&str]) -> Value {
    json!({"resourceType": "MedicationRequest", "status": "active", "intent": "order",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category", "code": "inpatient"}]}],
        "medicationReference": {"reference": format!("Medication/{m}")},
        "subject": {"reference": "Patient/p1"},
        "requester": {"reference": "Practitioner/dr1"},
        "authoredOn": "2026-12-01T09:00:00Z",
        "dosageInstruction": [{"timing": {"repeat": {"timeOfDay": times, "frequency": times.len(), "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": dose, "unit": unit}}]}]})
}

/// An as-required prescription with its maximum in 24 hours.
fn prn(m: &str, dose: f64, unit: &str, max: f64, max_unit: &str) -> Value {
    let mut r = regular(m, dose, unit, &[]);
    r["dosageInstruction"] = json!([{"asNeededBoolean": true,
        "extension": [{"url": MIN_INTERVAL_EXT, "valueDuration": {"value": 4, "unit": "h", "system": "http://unitsofmeasure.org", "code": "h"}}],
        "maxDosePerPeriod": {"numerator": {"value": max, "unit": max_unit}, "denominator": {"value": 24, "unit": "h"}},
        "doseAndRate": [{"doseQuantity": {"value": dose, "unit": unit}}]}]);
    r
}

fn allergy(id: &str, text: &str, code: Option<&str>, criticality: &str, kind: &str) -> Value {
    let mut c = json!({"text": text});
    if let Some(code) = code {
        c["coding"] = json!([{"system": SNOMED_SYSTEM, "code": code, "display": text}]);
    }
    json!({"resourceType": "AllergyIntolerance", "id": id,
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
        "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "code": "confirmed"}]},
        "type": kind, "category": ["medication"], "criticality": criticality,
        "code": c, "patient": {"reference": "Patient/p1"}})
}

fn obs(id: &str, code: &str, value: f64, unit: &str, at: &str) -> Value {
    json!({"resourceType": "Observation", "id": id, "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": "Patient/p1"}, "effectiveDateTime": at,
        "valueQuantity": {"value": value, "unit": unit}})
}

fn assess(svc: &FhirService, candidate: &Value) -> Vec<Alert> {
    let f = formulary::load(svc).unwrap();
    let a = prescriber();
    let mut tx = svc.begin(&a).unwrap();
    assess_in(&mut tx, &f, "p1", candidate, NOW).unwrap()
}

fn of(alerts: &[Alert], kind: AlertKind) -> Vec<&Alert> {
    alerts.iter().filter(|a| a.kind == kind).collect()
}

/// Every substance and class the knowledge names is one of the starter
/// formulary's (a knowledge entry keyed by a code no medicine has would
/// never fire).
#[test]
fn the_knowledge_is_keyed_by_the_starter_formularys_codes() {
    let entries = formulary::parse(wardline_demo::FORMULARY).unwrap();
    let k = knowledge::get().unwrap();
    let has_vtm = |v: &str| entries.iter().any(|e| e.vtm.code == v);
    let has_class = |c: &str| entries.iter().any(|e| e.classes.iter().any(|k| k == c));
    let targets = k
        .renal_rules
        .iter()
        .map(|r| &r.on)
        .chain(k.interactions.iter().flat_map(|i| [&i.a, &i.b]));
    for t in targets {
        if let Some(v) = &t.vtm {
            assert!(has_vtm(v), "{} ({v}) is not a VTM of the formulary", t.name);
        }
        if let Some(c) = &t.class {
            assert!(
                has_class(c),
                "{} ({c}) is not a class of the formulary",
                t.name
            );
        }
    }
    for m in &k.maximum_doses {
        assert!(
            has_vtm(&m.vtm),
            "{} ({}) is not a VTM of the formulary",
            m.name,
            m.vtm
        );
    }
    for d in &k.duplicate_classes {
        assert!(
            has_class(&d.class),
            "{} is not a class of the formulary",
            d.class
        );
    }
    for x in &k.cross_sensitivities {
        assert!(
            k.allergy_class(&x.allergy_class).is_some(),
            "{}",
            x.allergy_class
        );
        assert!(has_class(&x.medicine_class), "{}", x.medicine_class);
    }
    // Paracetamol is keyed by its real dm+d VTM.
    assert_eq!(vtm("paracetamol"), "90332006");
}

// ------------------------------------------------------------------ allergy

#[test]
fn allergy_by_substance_class_and_cross_sensitivity() {
    for b in backends("allergy") {
        let svc = &b.svc;
        let n = b.name;
        // Nothing recorded: no allergy alert.
        assert!(
            of(
                &assess(svc, &regular("med-amox", 1.0, "capsule", &QDS)),
                AlertKind::Allergy
            )
            .is_empty(),
            "{n}"
        );

        // A high-criticality penicillin (class) allergy: amoxicillin is a hard stop.
        save(
            svc,
            allergy("a1", "Penicillins", Some("373270004"), "high", "allergy"),
        );
        let alerts = assess(svc, &regular("med-amox", 1.0, "capsule", &QDS));
        let al = of(&alerts, AlertKind::Allergy);
        assert_eq!(al.len(), 1, "{n}: {alerts:?}");
        assert_eq!(al[0].grade, Grade::HardStop, "{n}");
        assert_eq!(al[0].key, "allergy:AllergyIntolerance/a1", "{n}");
        assert_eq!(al[0].implicated, vec!["AllergyIntolerance/a1".to_owned()]);
        // A cephalosporin after an immediate penicillin reaction needs a reason.
        let alerts = assess(svc, &regular("med-cefalexin", 1.0, "capsule", &QDS));
        assert_eq!(
            of(&alerts, AlertKind::Allergy)[0].grade,
            Grade::Override,
            "{n}"
        );
        // Paracetamol is untouched.
        assert!(
            of(
                &assess(svc, &regular("med-para-tab", 1.0, "tablet", &QDS)),
                AlertKind::Allergy
            )
            .is_empty()
        );

        // Refuted: no longer counts.
        let mut a1 = allergy("a1", "Penicillins", Some("373270004"), "high", "allergy");
        a1["verificationStatus"]["coding"][0]["code"] = json!("refuted");
        save(svc, a1);
        assert!(
            of(
                &assess(svc, &regular("med-amox", 1.0, "capsule", &QDS)),
                AlertKind::Allergy
            )
            .is_empty(),
            "{n}"
        );

        // A low-criticality amoxicillin allergy (by name): amoxicillin
        // itself needs a reason, flucloxacillin (same class) too, cefalexin
        // is advisory.
        save(svc, allergy("a2", "Amoxicillin", None, "low", "allergy"));
        let g = |m: &str| {
            of(
                &assess(svc, &regular(m, 1.0, "capsule", &QDS)),
                AlertKind::Allergy,
            )
            .first()
            .map(|a| a.grade)
        };
        assert_eq!(g("med-amox"), Some(Grade::Override), "{n}");
        assert_eq!(g("med-fluclox"), Some(Grade::Override), "{n}");
        assert_eq!(g("med-cefalexin"), Some(Grade::Advisory), "{n}");

        // An intolerance is advisory.
        save(svc, allergy("a3", "Ibuprofen", None, "low", "intolerance"));
        let alerts = assess(svc, &regular("med-ibu", 1.0, "tablet", &QDS));
        assert_eq!(
            of(&alerts, AlertKind::Allergy)[0].grade,
            Grade::Advisory,
            "{n}"
        );
        // ... and so is one of its class (naproxen, an NSAID).
        let alerts = assess(svc, &regular("med-naproxen", 1.0, "tablet", &["08:00:00"]));
        assert_eq!(
            of(&alerts, AlertKind::Allergy)[0].grade,
            Grade::Advisory,
            "{n}"
        );

        // Anaphylaxis recorded as the reaction makes it severe.
        let mut a4 = allergy("a4", "Clarithromycin", None, "unable-to-assess", "allergy");
        a4["reaction"] = json!([{"manifestation": [{"coding": [{"system": SNOMED_SYSTEM, "code": "39579001", "display": "Anaphylaxis"}]}]}]);
        save(svc, a4);
        let alerts = assess(
            svc,
            &regular("med-clari", 1.0, "tablet", &["08:00:00", "20:00:00"]),
        );
        assert_eq!(
            of(&alerts, AlertKind::Allergy)[0].grade,
            Grade::HardStop,
            "{n}"
        );
    }
}

/// The demo's (and many systems') shape: a SNOMED CT finding "Allergy to
/// penicillin", no text.
#[test]
fn an_allergy_recorded_as_a_finding_matches_its_substance() {
    for b in backends("finding") {
        let svc = &b.svc;
        let n = b.name;
        let mut a = allergy("f1", "x", Some("91936005"), "low", "allergy");
        a["code"] = json!({"coding": [{"system": SNOMED_SYSTEM, "code": "91936005", "display": "Allergy to penicillin"}]});
        save(svc, a);
        let g = |m: &str| {
            of(
                &assess(svc, &regular(m, 1.0, "capsule", &QDS)),
                AlertKind::Allergy,
            )
            .first()
            .map(|a| a.grade)
        };
        assert_eq!(g("med-amox"), Some(Grade::Override), "{n}");
        assert_eq!(g("med-cefalexin"), Some(Grade::Advisory), "{n}");
        assert_eq!(g("med-para-tab"), None, "{n}");
        let mut b2 = allergy("f2", "x", None, "low", "allergy");
        b2["code"] = json!({"coding": [{"system": SNOMED_SYSTEM, "code": "294505008", "display": "Allergy to amoxicillin"}]});
        b2["patient"] = json!({"reference": "Patient/p1"});
        save(svc, b2);
        let alerts = assess(svc, &regular("med-fluclox", 1.0, "capsule", &QDS));
        let al = of(&alerts, AlertKind::Allergy);
        // The penicillin group (f1) directly, amoxicillin (f2) by class.
        assert_eq!(al.len(), 2, "{n}: {alerts:?}");
        assert!(al.iter().all(|a| a.grade == Grade::Override));
    }
}

// ------------------------------------------------------- duplicate therapy

#[test]
fn duplicate_therapy_by_substance_and_class() {
    for b in backends("duplicate") {
        let svc = &b.svc;
        let n = b.name;
        assert!(
            of(
                &assess(svc, &regular("med-naproxen", 1.0, "tablet", &["08:00:00"])),
                AlertKind::DuplicateTherapy
            )
            .is_empty(),
            "{n}"
        );
        let ibu = save(
            svc,
            regular(
                "med-ibu",
                1.0,
                "tablet",
                &["08:00:00", "14:00:00", "20:00:00"],
            ),
        );
        // Same class.
        let alerts = assess(svc, &regular("med-naproxen", 1.0, "tablet", &["08:00:00"]));
        let d = of(&alerts, AlertKind::DuplicateTherapy);
        assert_eq!(d.len(), 1, "{n}: {alerts:?}");
        assert_eq!(d[0].grade, Grade::Override);
        assert_eq!(
            d[0].key,
            format!("duplicate-therapy:MedicationRequest/{ibu}")
        );
        // Same substance.
        let alerts = assess(svc, &regular("med-ibu", 1.0, "tablet", &["08:00:00"]));
        assert_eq!(of(&alerts, AlertKind::DuplicateTherapy).len(), 1, "{n}");
        // A change of the same prescription does not count it.
        let mut change = regular("med-ibu", 1.0, "tablet", &["08:00:00"]);
        change["priorPrescription"] = json!({"reference": format!("MedicationRequest/{ibu}")});
        assert!(
            of(&assess(svc, &change), AlertKind::DuplicateTherapy).is_empty(),
            "{n}"
        );
        // Another class: nothing.
        assert!(
            of(
                &assess(svc, &regular("med-para-tab", 1.0, "tablet", &QDS)),
                AlertKind::DuplicateTherapy
            )
            .is_empty()
        );
        // Once stopped, no longer current.
        let mut stopped = regular(
            "med-ibu",
            1.0,
            "tablet",
            &["08:00:00", "14:00:00", "20:00:00"],
        );
        stopped["id"] = json!(ibu);
        stopped["status"] = json!("stopped");
        save(svc, stopped);
        assert!(
            of(
                &assess(svc, &regular("med-naproxen", 1.0, "tablet", &["08:00:00"])),
                AlertKind::DuplicateTherapy
            )
            .is_empty(),
            "{n}"
        );
    }
}

// ------------------------------------------------------------ maximum dose

#[test]
fn paracetamol_maximum_across_routes_and_by_weight() {
    for b in backends("maxdose") {
        let svc = &b.svc;
        let n = b.name;
        // No weight: the < 50 kg rule cannot be checked, an advisory says so.
        let alerts = assess(svc, &regular("med-para-tab", 2.0, "tablet", &QDS));
        let m = of(&alerts, AlertKind::MaximumDose);
        assert_eq!(m.len(), 1, "{n}");
        assert_eq!(m[0].grade, Grade::Advisory);
        assert!(m[0].message.contains("No body weight"), "{}", m[0].message);

        save(
            svc,
            obs("w1", "29463-7", 70.0, "kg", "2026-12-01T08:00:00Z"),
        );
        // 2 × 500 mg QDS = 4 g exactly: not over.
        assert!(
            of(
                &assess(svc, &regular("med-para-tab", 2.0, "tablet", &QDS)),
                AlertKind::MaximumDose
            )
            .is_empty(),
            "{n}"
        );
        // 1 g QDS oral on the chart + 1 g PRN IV up to 4 g in 24 h: over.
        let oral = save(svc, regular("med-para-tab", 2.0, "tablet", &QDS));
        let alerts = assess(svc, &prn("med-para-iv", 100.0, "mL", 4.0, "g"));
        let m = of(&alerts, AlertKind::MaximumDose);
        assert_eq!(m.len(), 1, "{n}: {alerts:?}");
        assert_eq!(m[0].grade, Grade::Override);
        assert!(
            m[0].message.contains("8 g") && m[0].message.contains("4 g"),
            "{}",
            m[0].message
        );
        assert!(
            m[0].implicated
                .contains(&format!("MedicationRequest/{oral}"))
        );
        // Replacing the oral prescription with the IV one: within the maximum.
        let mut change = prn("med-para-iv", 100.0, "mL", 4.0, "g");
        change["priorPrescription"] = json!({"reference": format!("MedicationRequest/{oral}")});
        assert!(
            of(&assess(svc, &change), AlertKind::MaximumDose).is_empty(),
            "{n}"
        );

        // At 45 kg the maximum is 60 mg/kg = 2.7 g: the 4 g already
        // prescribed plus 500 mg more is over, and so is 4 g on its own.
        save(
            svc,
            obs("w2", "29463-7", 45.0, "kg", "2026-12-02T08:00:00Z"),
        );
        let alerts = assess(svc, &change);
        let m = of(&alerts, AlertKind::MaximumDose);
        assert_eq!(m.len(), 1, "{n}");
        assert!(
            m[0].message.contains("2.7 g") && m[0].message.contains("45 kg"),
            "{}",
            m[0].message
        );
        assert!(m[0].implicated.contains(&"Observation/w2".to_owned()));
        // 500 mg QDS (2 g) as a change of the oral one: within 2.7 g.
        let mut small = regular("med-para-tab", 1.0, "tablet", &QDS);
        small["priorPrescription"] = json!({"reference": format!("MedicationRequest/{oral}")});
        assert!(
            of(&assess(svc, &small), AlertKind::MaximumDose).is_empty(),
            "{n}"
        );
    }
}

// ------------------------------------------------------------------- renal

#[test]
fn renal_rules_from_egfr_and_cockcroft_gault() {
    for b in backends("renal") {
        let svc = &b.svc;
        let n = b.name;
        let metformin = regular("med-metformin", 2.0, "tablet", &["08:00:00", "18:00:00"]);
        // No result at all: an advisory that renal function is unknown.
        let alerts = assess(svc, &metformin);
        let r = of(&alerts, AlertKind::Renal);
        assert_eq!(
            (r.len(), r[0].grade, r[0].key.as_str()),
            (1, Grade::Advisory, "renal:no-result"),
            "{n}"
        );
        // Paracetamol has no renal rule: no alert.
        assert!(
            of(
                &assess(svc, &regular("med-para-tab", 2.0, "tablet", &QDS)),
                AlertKind::Renal
            )
            .is_empty()
        );

        // An old normal eGFR: stale, an advisory to recheck.
        save(
            svc,
            obs(
                "eg-old",
                "62238-1",
                85.0,
                "mL/min/{1.73_m2}",
                "2026-11-20T08:00:00Z",
            ),
        );
        let r = assess(svc, &metformin);
        let r = of(&r, AlertKind::Renal);
        assert_eq!(
            (r.len(), r[0].grade, r[0].key.as_str()),
            (1, Grade::Advisory, "renal:stale"),
            "{n}"
        );
        // A recent normal eGFR: nothing.
        save(
            svc,
            obs(
                "eg-ok",
                "33914-3",
                85.0,
                "mL/min/{1.73_m2}",
                "2026-12-01T08:00:00Z",
            ),
        );
        assert!(
            of(&assess(svc, &metformin), AlertKind::Renal).is_empty(),
            "{n}"
        );
        // eGFR 50: 2 g a day is the band's most (advisory); 3 g is over (override).
        save(
            svc,
            obs(
                "eg-50",
                "62238-1",
                50.0,
                "mL/min/{1.73_m2}",
                "2026-12-02T06:00:00Z",
            ),
        );
        let r = assess(svc, &metformin);
        assert_eq!(of(&r, AlertKind::Renal)[0].grade, Grade::Advisory, "{n}");
        let r = assess(
            svc,
            &regular(
                "med-metformin",
                2.0,
                "tablet",
                &["08:00:00", "13:00:00", "18:00:00"],
            ),
        );
        let r = of(&r, AlertKind::Renal);
        assert_eq!(r[0].grade, Grade::Override, "{n}");
        assert_eq!(r[0].key, "renal:Observation/eg-50");
        // eGFR 25: avoid (override), even a small dose.
        save(
            svc,
            obs(
                "eg-25",
                "62238-1",
                25.0,
                "mL/min/{1.73_m2}",
                "2026-12-02T07:00:00Z",
            ),
        );
        let r = assess(svc, &regular("med-metformin", 1.0, "tablet", &["08:00:00"]));
        let r = of(&r, AlertKind::Renal);
        assert_eq!(r[0].grade, Grade::Override, "{n}");
        assert!(r[0].message.contains("avoid"), "{}", r[0].message);

        // Gentamicin is by creatinine clearance: the 70-year-old man, 75 kg,
        // creatinine 110 µmol/L → 58.7 mL/min: monitor (advisory).
        let gent = regular("med-gent", 6.0, "mL", &["18:00:00"]);
        save(
            svc,
            obs("wt", "29463-7", 75.0, "kg", "2026-12-02T06:00:00Z"),
        );
        save(
            svc,
            obs("cr1", "14682-9", 110.0, "umol/L", "2026-12-02T06:00:00Z"),
        );
        let r = assess(svc, &gent);
        let r = of(&r, AlertKind::Renal);
        assert_eq!(r.len(), 1, "{n}");
        assert_eq!(
            (r[0].grade, r[0].key.as_str()),
            (Grade::Advisory, "renal:Observation/cr1"),
            "{n}"
        );
        assert!(
            r[0].message.contains("creatinine clearance 59 mL/min"),
            "{}",
            r[0].message
        );
        // Creatinine 90: 71.8 mL/min, above every band.
        save(
            svc,
            obs("cr2", "14682-9", 90.0, "umol/L", "2026-12-02T08:00:00Z"),
        );
        assert!(of(&assess(svc, &gent), AlertKind::Renal).is_empty(), "{n}");
    }
}

// ------------------------------------------------------------ interactions

#[test]
fn interactions_with_current_prescriptions() {
    for b in backends("interact") {
        let svc = &b.svc;
        let n = b.name;
        assert!(
            of(
                &assess(svc, &regular("med-ibu", 1.0, "tablet", &["08:00:00"])),
                AlertKind::Interaction
            )
            .is_empty(),
            "{n}"
        );
        let w = save(svc, regular("med-warfarin", 3.0, "tablet", &["18:00:00"]));
        let alerts = assess(svc, &regular("med-ibu", 1.0, "tablet", &["08:00:00"]));
        let i = of(&alerts, AlertKind::Interaction);
        assert_eq!(i.len(), 1, "{n}: {alerts:?}");
        assert_eq!(i[0].grade, Grade::Override);
        assert_eq!(i[0].key, format!("interaction:MedicationRequest/{w}"));
        assert!(i[0].message.contains("bleeding"));

        save(svc, regular("med-simva", 1.0, "tablet", &["22:00:00"]));
        let i = assess(
            svc,
            &regular("med-clari", 1.0, "tablet", &["08:00:00", "20:00:00"]),
        );
        assert_eq!(
            of(&i, AlertKind::Interaction)[0].grade,
            Grade::Override,
            "{n}"
        );

        save(
            svc,
            regular("med-morph", 5.0, "mL", &["08:00:00", "20:00:00"]),
        );
        let i = assess(svc, &regular("med-diazepam", 1.0, "tablet", &["22:00:00"]));
        assert_eq!(
            of(&i, AlertKind::Interaction)[0].grade,
            Grade::Override,
            "{n}"
        );
        // Moderate: advisory.
        save(svc, regular("med-clopi", 1.0, "tablet", &["08:00:00"]));
        let i = assess(svc, &regular("med-omep", 1.0, "capsule", &["08:00:00"]));
        assert_eq!(
            of(&i, AlertKind::Interaction)[0].grade,
            Grade::Advisory,
            "{n}"
        );
        // Paracetamol interacts with none of them.
        save(svc, obs("w", "29463-7", 70.0, "kg", "2026-12-02T06:00:00Z"));
        assert!(
            assess(svc, &regular("med-para-tab", 2.0, "tablet", &QDS)).is_empty(),
            "{n}"
        );
    }
}

// ------------------------------------------------------------- the record

/// Assesses, gates, saves and records `candidate` as prescribing does.
fn prescribe(
    svc: &FhirService,
    candidate: Value,
    overrides: &[Override],
) -> Result<String, MedicinesError> {
    let f: Formulary = formulary::load(svc).unwrap();
    let a = prescriber();
    let mut tx = svc.begin(&a).unwrap();
    let alerts = assess_in(&mut tx, &f, "p1", &candidate, NOW)?;
    gate(&alerts, overrides)?;
    let id = tx.save(candidate).unwrap().id;
    record_in(&mut tx, "p1", &id, &alerts, overrides, NOW)?;
    tx.commit().unwrap();
    Ok(id)
}

#[test]
fn alerts_gone_past_are_kept_with_the_reason_and_a_hard_stop_is_not() {
    for b in backends("record") {
        let svc = &b.svc;
        let n = b.name;
        save(svc, allergy("a2", "Amoxicillin", None, "low", "allergy"));
        let fluclox = || regular("med-fluclox", 1.0, "capsule", &QDS);
        // Without a reason: refused, with the alert.
        let e = prescribe(svc, fluclox(), &[]).unwrap_err();
        let MedicinesError::Alerts(alerts) = &e else {
            panic!("{n}: {e:?}")
        };
        assert_eq!(alerts[0].key, "allergy:AllergyIntolerance/a2");
        assert_eq!(e.status(), 409);
        // A blank reason is no reason.
        let blank = [Override {
            key: "allergy:AllergyIntolerance/a2".into(),
            reason: "  ".into(),
        }];
        assert!(prescribe(svc, fluclox(), &blank).is_err(), "{n}");
        // With a reason: saved, and the alert kept.
        let reason = "Tolerated flucloxacillin in 2025 without reaction";
        let ov = [Override {
            key: "allergy:AllergyIntolerance/a2".into(),
            reason: reason.into(),
        }];
        let id = prescribe(svc, fluclox(), &ov).unwrap();
        let kept = alerts_of(svc, &prescriber(), &id).unwrap();
        assert_eq!(kept.len(), 1, "{n}: {kept:?}");
        let k = &kept[0];
        assert_eq!((k.kind.as_str(), k.grade.as_str()), ("allergy", "override"));
        assert_eq!(k.key, "allergy:AllergyIntolerance/a2");
        assert_eq!(k.reason.as_deref(), Some(reason));
        assert_eq!(k.author.as_deref(), Some("Practitioner/dr1"));
        assert_eq!(k.implicated, vec!["AllergyIntolerance/a2".to_owned()]);
        // As FHIR: final, severity, patient, implicated, mitigation.
        let di = svc
            .system_reader()
            .read("DetectedIssue", &k.id)
            .unwrap()
            .unwrap();
        let di: Value = serde_json::from_str(&di.json).unwrap();
        assert_eq!(di["status"], "final");
        assert_eq!(di["severity"], "moderate");
        assert_eq!(di["patient"]["reference"], "Patient/p1");
        assert_eq!(
            di["implicated"][0]["reference"],
            format!("MedicationRequest/{id}")
        );
        assert_eq!(di["mitigation"][0]["action"]["text"], reason);
        assert_eq!(di["identifiedDateTime"], "2026-12-02T10:00:00Z");

        // An advisory needs no reason and is kept too.
        let id = prescribe(svc, regular("med-cefalexin", 1.0, "capsule", &QDS), &[]).unwrap();
        let kept = alerts_of(svc, &prescriber(), &id).unwrap();
        assert_eq!(kept.len(), 1, "{n}");
        assert_eq!(
            (kept[0].grade.as_str(), kept[0].reason.as_deref()),
            ("advisory", None)
        );

        // A hard stop: refused with and without a reason, and nothing kept.
        save(
            svc,
            allergy("a1", "Penicillins", Some("373270004"), "high", "allergy"),
        );
        let amox = || regular("med-amox", 1.0, "capsule", &QDS);
        let alerts = assess(svc, &amox());
        assert!(alerts.iter().any(|a| a.grade == Grade::HardStop));
        let all: Vec<Override> = alerts
            .iter()
            .map(|a| Override {
                key: a.key.clone(),
                reason: "Consultant says so".into(),
            })
            .collect();
        let e = prescribe(svc, amox(), &all).unwrap_err();
        assert!(matches!(e, MedicinesError::Alerts(_)), "{n}");
        assert!(
            e.message().starts_with("This cannot be prescribed"),
            "{}",
            e.message()
        );
        assert!(gate(&alerts, &all).is_err());
        // record_in refuses on its own too.
        let a = prescriber();
        let mut tx = svc.begin(&a).unwrap();
        let mr = tx.save(amox()).unwrap().id;
        assert!(
            record_in(&mut tx, "p1", &mr, &alerts, &all, NOW).is_err(),
            "{n}"
        );
        drop(tx);
        let amox_rx = svc
            .search_as(
                &prescriber(),
                "MedicationRequest",
                &[("medication", "Medication/med-amox")],
            )
            .unwrap();
        assert!(amox_rx.resources.is_empty(), "{n}: nothing saved");
        let _ = checks::summary(&alerts);
    }
}
