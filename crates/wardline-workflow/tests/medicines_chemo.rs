//! Chemotherapy cycles over a real store: SQLite always, PostgreSQL too
//! when `WARDLINE_TEST_PG_URL` is set (each test in a fresh schema), with
//! the demo regimens imported and fixture formulary Medications.

mod support;

use serde_json::{Value, json};
use time::macros::{date, datetime};
use time::{Date, OffsetDateTime};
use wardline_core::{Agent, FhirService, Trusted};
use wardline_workflow::medicines::chemo::cycle::{self, Reduction, Request, VerifyAs};
use wardline_workflow::medicines::chemo::{ChemoConfig, regimen};
use wardline_workflow::medicines::formulary::{self, Formulary};
use wardline_workflow::medicines::{FORMULARY_EXT, LOCAL_MEDICINE_SYSTEM, MedicinesError};

const ROLE_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/role";
const T0: OffsetDateTime = datetime!(2026-12-01 09:00 UTC);
const DAY1: Date = date!(2026 - 12 - 02);

/// A backend and what the tests load from it once.
struct Backend {
    base: support::Backend,
    formulary: Formulary,
}

impl std::ops::Deref for Backend {
    type Target = support::Backend;
    fn deref(&self) -> &support::Backend {
        &self.base
    }
}

fn backends(test: &str) -> Vec<Backend> {
    support::backends(
        &format!("chemo_{test}"),
        wardline_workflow::with_rules,
        seed,
    )
    .into_iter()
    .map(|base| Backend {
        formulary: formulary::load(&base.svc).unwrap(),
        base,
    })
    .collect()
}

fn op() -> Trusted {
    Trusted::operator("chemo-test")
}

/// A user acting in their position (`PractitionerRole/pr-{who}`).
fn user(who: &str) -> Trusted {
    Trusted::new(Agent {
        name: who.into(),
        who: Some(format!("Practitioner/{who}")),
        position: Some(format!("PractitionerRole/pr-{who}")),
        ..Agent::operator(who)
    })
}

const DRUGS: [&str; 11] = [
    "Rituximab",
    "Cyclophosphamide",
    "Doxorubicin",
    "Vincristine",
    "Prednisolone",
    "Epirubicin",
    "Fluorouracil",
    "Docetaxel",
    "Paclitaxel",
    "Capecitabine",
    "Carboplatin",
];

fn save(svc: &FhirService, r: Value) {
    let access = op();
    let mut tx = svc.begin(&access).unwrap();
    tx.save(r).unwrap();
    tx.commit().unwrap();
}

fn seed(svc: &FhirService) {
    regimen::import(
        svc,
        &op(),
        &serde_json::from_str(wardline_demo::CHEMOTHERAPY_REGIMENS).unwrap(),
    )
    .unwrap();
    // Fixture formulary entries in the formulary's shape (local codes).
    for d in DRUGS {
        let code = d.to_uppercase();
        let oral = matches!(d, "Prednisolone" | "Capecitabine");
        let (route, display) = if oral {
            ("26643006", "Oral route")
        } else {
            ("47625008", "Intravenous route")
        };
        save(
            svc,
            json!({"resourceType": "Medication", "id": format!("med-LT-{code}"), "status": "active",
                "code": {"coding": [{"system": LOCAL_MEDICINE_SYSTEM, "code": format!("LT-{code}"), "display": format!("{d} (test)")}]},
                "form": {"text": if oral { "Tablet" } else { "Solution for infusion" }},
                "extension": [{"url": FORMULARY_EXT, "extension": [
                    {"url": "vtm", "valueCoding": {"system": LOCAL_MEDICINE_SYSTEM, "code": format!("LVT-{code}"), "display": d}},
                    {"url": "route", "valueCoding": {"system": "http://snomed.info/sct", "code": route, "display": display}},
                    {"url": "unitOfDose", "valueString": if oral { "tablet" } else { "mg" }}]}]}),
        );
    }
    for (who, role) in [
        ("dr", "consultant"),
        ("dr2", "doctor"),
        ("pharm", "pharmacist"),
        ("nurse", "staff-nurse"),
    ] {
        save(
            svc,
            json!({"resourceType": "Practitioner", "id": who, "name": [{"family": who}]}),
        );
        save(
            svc,
            json!({"resourceType": "PractitionerRole", "id": format!("pr-{who}"), "active": true,
                "practitioner": {"reference": format!("Practitioner/{who}")},
                "code": [{"coding": [{"system": ROLE_SYSTEM, "code": role}]}]}),
        );
    }
    for (id, gender, born) in [("p1", "male", "1966-06-01"), ("p2", "female", "1970-01-01")] {
        save(
            svc,
            json!({"resourceType": "Patient", "id": id, "active": true, "gender": gender, "birthDate": born,
                "name": [{"family": "Chemo", "given": [id]}]}),
        );
    }
}

fn obs(svc: &FhirService, patient: &str, loinc: &str, value: f64, unit: &str, at: &str) {
    save(
        svc,
        json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
            "subject": {"reference": format!("Patient/{patient}")},
            "effectiveDateTime": at,
            "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}}),
    );
}

/// Height 170 cm, weight 70 kg (Mosteller 1.82 m²) and good counts.
fn measured(svc: &FhirService, patient: &str) {
    obs(svc, patient, "8302-2", 170.0, "cm", "2026-06-01T10:00:00Z");
    obs(svc, patient, "29463-7", 80.0, "kg", "2026-10-01T10:00:00Z");
    obs(svc, patient, "29463-7", 70.0, "kg", "2026-11-28T10:00:00Z");
    bloods(svc, patient, 2.1, 250.0, "2026-11-30T08:00:00Z");
}

fn bloods(svc: &FhirService, patient: &str, neut: f64, plt: f64, at: &str) {
    obs(svc, patient, "751-8", neut, "10*9/L", at);
    obs(svc, patient, "777-3", plt, "10*9/L", at);
}

fn request(patient: &str, regimen: &str, n: u32) -> Request {
    Request {
        patient: patient.into(),
        regimen: regimen.into(),
        cycle: n,
        start: DAY1,
        reductions: Vec::new(),
        cumulative_override: None,
    }
}

fn cfg() -> ChemoConfig {
    ChemoConfig::default()
}

fn read(svc: &FhirService, t: &str, id: &str) -> Value {
    serde_json::from_str(&svc.system_reader().read(t, id).unwrap().unwrap().json).unwrap()
}

fn prescribe(b: &Backend, req: &Request) -> Result<cycle::Prescribed, MedicinesError> {
    cycle::prescribe_cycle(&b.svc, &user("dr"), &b.formulary, &cfg(), req, T0)
}

fn verify_both(b: &Backend, cp: &str) {
    cycle::verify(&b.svc, &user("dr2"), cp, VerifyAs::Clinical, T0).unwrap();
    cycle::verify(&b.svc, &user("pharm"), cp, VerifyAs::Pharmacy, T0).unwrap();
}

fn status(b: &Backend, t: &str, id: &str) -> String {
    read(&b.svc, t, id)["status"].as_str().unwrap().to_owned()
}

#[test]
fn a_cycle_is_calculated_from_the_latest_height_and_weight() {
    for b in backends("calc") {
        measured(&b.svc, "p1");
        let p = prescribe(&b, &request("p1", "chemo-r-chop-21", 1)).unwrap();
        // The latest weight (70 kg), not the older 80 kg: √(170 × 70 / 3600) = 1.82.
        assert_eq!(p.plan.weight.value, 70.0, "{}", b.name);
        assert_eq!(p.plan.bsa.used, 1.82);
        assert_eq!(p.plan.bsa.dubois, 1.81);
        let dose = |n: &str| {
            p.plan
                .doses
                .iter()
                .find(|d| d.drug == n)
                .unwrap()
                .calc
                .clone()
        };
        assert_eq!(dose("Rituximab").final_dose, 682.5);
        assert_eq!(dose("Doxorubicin").final_dose, 91.0);
        // Vincristine 1.4 × 1.82 = 2.548 mg, capped at 2 mg, banded 2 mg.
        let vcr = dose("Vincristine");
        assert!(vcr.max_applied);
        assert_eq!((vcr.banded, vcr.final_dose), (Some(2.0), 2.0));
        assert_eq!(dose("Prednisolone").final_dose, 100.0);
        // Saved: a draft CarePlan and draft prescriptions based on it.
        let cp = read(&b.svc, "CarePlan", &p.careplan);
        assert_eq!(cp["status"], "draft");
        assert_eq!(
            cp["instantiatesCanonical"][0],
            "https://fhir.wardline.invalid/PlanDefinition/chemo-r-chop-21"
        );
        assert_eq!(p.prescriptions.len(), 5);
        for id in &p.prescriptions {
            let mr = read(&b.svc, "MedicationRequest", id);
            assert_eq!(mr["status"], "draft");
            assert_eq!(
                mr["basedOn"][0]["reference"],
                format!("CarePlan/{}", p.careplan)
            );
            assert_eq!(mr["category"][0]["coding"][0]["code"], "chemotherapy");
        }
        // The same cycle twice is refused.
        let again = prescribe(&b, &request("p1", "chemo-r-chop-21", 1)).unwrap_err();
        assert!(again.message().contains("already prescribed"), "{again}");
    }
}

#[test]
fn a_stale_weight_is_refused() {
    for b in backends("stale") {
        obs(&b.svc, "p1", "8302-2", 170.0, "cm", "2026-06-01T10:00:00Z");
        // 15 days before day 1 (the limit is 14).
        obs(&b.svc, "p1", "29463-7", 70.0, "kg", "2026-11-16T10:00:00Z");
        let e = prescribe(&b, &request("p1", "chemo-ac", 1)).unwrap_err();
        assert_eq!(e.status(), 409, "{}", b.name);
        assert!(e.message().contains("weigh the patient again"), "{e}");
        // 14 days before is still allowed.
        obs(&b.svc, "p1", "29463-7", 70.0, "kg", "2026-11-17T10:00:00Z");
        prescribe(&b, &request("p1", "chemo-ac", 1)).unwrap();
        // No height at all: refused, naming it.
        obs(&b.svc, "p2", "29463-7", 60.0, "kg", "2026-11-30T10:00:00Z");
        let e = prescribe(&b, &request("p2", "chemo-ac", 1)).unwrap_err();
        assert!(e.message().contains("No height"), "{e}");
    }
}

#[test]
fn carboplatin_is_dosed_by_calvert_from_cockcroft_gault() {
    for b in backends("calvert") {
        // Male, 60 at day 1, 72 kg, creatinine 88.4 µmol/L (1.0 mg/dL):
        // CrCl 80 mL/min; AUC 5 × (80 + 25) = 525 mg.
        obs(&b.svc, "p1", "8302-2", 175.0, "cm", "2026-06-01T10:00:00Z");
        obs(&b.svc, "p1", "29463-7", 72.0, "kg", "2026-11-30T10:00:00Z");
        let e = prescribe(&b, &request("p1", "chemo-carboplatin-auc5", 1)).unwrap_err();
        assert!(e.message().contains("creatinine"), "{e}");
        obs(
            &b.svc,
            "p1",
            "14682-9",
            88.4,
            "umol/L",
            "2026-11-30T08:00:00Z",
        );
        let p = prescribe(&b, &request("p1", "chemo-carboplatin-auc5", 1)).unwrap();
        let g = p.plan.gfr.clone().unwrap();
        assert_eq!((g.age, g.crcl, g.capped), (60, 80.0, false), "{}", b.name);
        assert_eq!(p.plan.doses[0].calc.final_dose, 525.0);
        // The creatinine is among the pre-cycle checks.
        bloods(&b.svc, "p1", 2.0, 200.0, "2026-11-30T08:00:00Z");
        let v = cycle::view(&b.svc, &user("dr"), &cfg(), &p.careplan).unwrap();
        assert!(
            v.checks
                .iter()
                .any(|c| c.name.starts_with("Creatinine") && c.passed)
        );
    }
}

#[test]
fn the_pre_cycle_checks_block_release() {
    for b in backends("checks") {
        measured(&b.svc, "p1");
        let p = prescribe(&b, &request("p1", "chemo-ac", 1)).unwrap();
        verify_both(&b, &p.careplan);
        // Low neutrophils the day before day 1.
        obs(&b.svc, "p1", "751-8", 0.8, "10*9/L", "2026-12-01T08:00:00Z");
        let rel = |b: &Backend| cycle::release(&b.svc, &user("dr"), &cfg(), &p.careplan, T0);
        let e = rel(&b).unwrap_err();
        assert_eq!(e.status(), 409, "{}", b.name);
        assert!(e.message().contains("Neutrophils"), "{e}");
        assert!(e.message().contains("0.8"), "{e}");
        assert!(e.message().contains("2026-12-01"), "{e}");
        // Still draft: nothing can be given.
        assert_eq!(status(&b, "CarePlan", &p.careplan), "draft");
        for id in &p.prescriptions {
            let s = status(&b, "MedicationRequest", id);
            assert_eq!(s, "draft");
            assert!(!wardline_workflow::medicines::administrable(&s));
        }
        // Recovered counts: every check passes.
        obs(&b.svc, "p1", "751-8", 1.5, "10*9/L", "2026-12-01T08:00:00Z");
        let v = cycle::view(&b.svc, &user("dr"), &cfg(), &p.careplan).unwrap();
        assert!(v.checks.iter().all(|c| c.passed), "{:?}", v.checks);
        // Move day 1 three weeks on: the bloods are now too old.
        cycle::delay(
            &b.svc,
            &user("dr"),
            &p.careplan,
            "Patient unwell",
            date!(2026 - 12 - 23),
            T0,
        )
        .unwrap();
        let e = rel(&b).unwrap_err();
        assert!(e.message().contains("counts as missing"), "{e}");
        bloods(&b.svc, "p1", 1.8, 180.0, "2026-12-22T08:00:00Z");
        rel(&b).unwrap();
        assert_eq!(status(&b, "CarePlan", &p.careplan), "active");
        for id in &p.prescriptions {
            assert_eq!(status(&b, "MedicationRequest", id), "active");
            let mr = read(&b.svc, "MedicationRequest", id);
            assert_eq!(
                mr["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"]["start"],
                "2026-12-23"
            );
        }
    }
}

/// A cycle revoked with its reason: its draft prescriptions cancelled, its
/// released ones stopped, none administrable; it cannot be verified,
/// released or revoked again, and the cycle may be prescribed anew.
#[test]
fn a_revoked_cycle_cancels_or_stops_every_prescription() {
    use wardline_workflow::medicines::chemo::revoke;
    for b in backends("revoke") {
        measured(&b.svc, "p1");
        // A draft cycle.
        let p = prescribe(&b, &request("p1", "chemo-ac", 1)).unwrap();
        let e = revoke::revoke(&b.svc, &user("dr"), &p.careplan, "  ", T0).unwrap_err();
        assert_eq!(e.status(), 400, "{}: {e}", b.name);
        let e = revoke::revoke(&b.svc, &user("nurse"), &p.careplan, "Unwell", T0).unwrap_err();
        assert_eq!(e.status(), 403, "{}: {e}", b.name);
        revoke::revoke(&b.svc, &user("dr"), &p.careplan, "Patient declined", T0).unwrap();
        assert_eq!(status(&b, "CarePlan", &p.careplan), "revoked");
        let cp = read(&b.svc, "CarePlan", &p.careplan);
        let ext = cp["extension"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["url"] == revoke::REVOKE_EXT)
            .unwrap();
        assert_eq!(ext["extension"][0]["valueString"], "Patient declined");
        for id in &p.prescriptions {
            let s = status(&b, "MedicationRequest", id);
            assert_eq!(s, "cancelled", "{}", b.name);
            assert!(!wardline_workflow::medicines::administrable(&s));
        }
        let e =
            cycle::verify(&b.svc, &user("dr2"), &p.careplan, VerifyAs::Clinical, T0).unwrap_err();
        assert_eq!(e.status(), 409, "{e}");
        let e = revoke::revoke(&b.svc, &user("dr"), &p.careplan, "Again", T0).unwrap_err();
        assert_eq!(e.status(), 409, "{e}");
        // The same cycle number may be prescribed again, released, then revoked.
        let again = prescribe(&b, &request("p1", "chemo-ac", 1)).unwrap();
        verify_both(&b, &again.careplan);
        cycle::release(&b.svc, &user("dr"), &cfg(), &again.careplan, T0).unwrap();
        revoke::revoke(&b.svc, &user("dr"), &again.careplan, "Progression", T0).unwrap();
        for id in &again.prescriptions {
            assert_eq!(status(&b, "MedicationRequest", id), "stopped", "{}", b.name);
        }
        let e = cycle::release(&b.svc, &user("dr"), &cfg(), &again.careplan, T0).unwrap_err();
        assert_eq!(e.status(), 409, "{e}");
    }
}

#[test]
fn verification_needs_two_other_people_and_release_needs_both() {
    for b in backends("verify") {
        measured(&b.svc, "p1");
        let p = prescribe(&b, &request("p1", "chemo-docetaxel-21", 1)).unwrap();
        let cp = p.careplan.as_str();
        // The prescriber cannot verify their own cycle.
        let e = cycle::verify(&b.svc, &user("dr"), cp, VerifyAs::Clinical, T0).unwrap_err();
        assert!(e.message().contains("You prescribed"), "{}: {e}", b.name);
        // A nurse is no second clinician; a doctor is no pharmacist.
        let e = cycle::verify(&b.svc, &user("nurse"), cp, VerifyAs::Clinical, T0).unwrap_err();
        assert_eq!(e.status(), 403);
        let e = cycle::verify(&b.svc, &user("dr2"), cp, VerifyAs::Pharmacy, T0).unwrap_err();
        assert_eq!(e.status(), 403);
        // Release with one verification is refused.
        cycle::verify(&b.svc, &user("pharm"), cp, VerifyAs::Pharmacy, T0).unwrap();
        let e = cycle::release(&b.svc, &user("dr"), &cfg(), cp, T0).unwrap_err();
        assert!(e.message().contains("a second clinician"), "{e}");
        assert!(!e.message().contains("a pharmacist"), "{e}");
        for id in &p.prescriptions {
            assert_eq!(status(&b, "MedicationRequest", id), "draft");
        }
        // Once each, and not both by one person.
        let e = cycle::verify(&b.svc, &user("pharm"), cp, VerifyAs::Pharmacy, T0).unwrap_err();
        assert!(e.message().contains("already recorded"), "{e}");
        let e = cycle::verify(&b.svc, &user("pharm"), cp, VerifyAs::Clinical, T0).unwrap_err();
        assert!(e.message().contains("someone else"), "{e}");
        cycle::verify(&b.svc, &user("dr2"), cp, VerifyAs::Clinical, T0).unwrap();
        let v = cycle::view(&b.svc, &user("dr"), &cfg(), cp).unwrap();
        assert_eq!(v.verifications.len(), 2);
        assert!(v.verifications.iter().any(|v| v.by == "Practitioner/dr2"));
        cycle::release(&b.svc, &user("dr"), &cfg(), cp, T0).unwrap();
        for id in &p.prescriptions {
            assert_eq!(status(&b, "MedicationRequest", id), "active");
        }
        // Released: no more verification or release.
        let e = cycle::verify(&b.svc, &user("dr2"), cp, VerifyAs::Clinical, T0).unwrap_err();
        assert_eq!(e.status(), 409);
        assert!(cycle::release(&b.svc, &user("dr"), &cfg(), cp, T0).is_err());
    }
}

#[test]
fn the_cumulative_limit_is_warned_then_refused_unless_a_consultant_overrides() {
    use wardline_workflow::medicines::chemo::dose::Standing;
    for b in backends("cumulative") {
        measured(&b.svc, "p1");
        // Six cycles of R-CHOP: 6 × 50 = 300 mg/m² of doxorubicin, released.
        for n in 1..=6 {
            let p = prescribe(&b, &request("p1", "chemo-r-chop-21", n)).unwrap();
            verify_both(&b, &p.careplan);
            cycle::release(&b.svc, &user("dr"), &cfg(), &p.careplan, T0).unwrap();
        }
        // AC 1: 360 (80 %), within. AC 2: 420 (93 %): warned.
        let p1 = prescribe(&b, &request("p1", "chemo-ac", 1)).unwrap();
        assert_eq!(
            p1.plan.cumulative[0].standing,
            Standing::Within,
            "{}",
            b.name
        );
        verify_both(&b, &p1.careplan);
        cycle::release(&b.svc, &user("dr"), &cfg(), &p1.careplan, T0).unwrap();
        let p2 = prescribe(&b, &request("p1", "chemo-ac", 2)).unwrap();
        assert_eq!(p2.plan.cumulative[0].standing, Standing::Warning);
        assert_eq!(p2.plan.cumulative[0].total(), 420.0);
        verify_both(&b, &p2.careplan);
        cycle::release(&b.svc, &user("dr"), &cfg(), &p2.careplan, T0).unwrap();
        // AC 3: 480 > 450: refused for a doctor even with a reason…
        let mut r3 = request("p1", "chemo-ac", 3);
        r3.cumulative_override = Some("Curative intent, cardiology review".into());
        let e = cycle::prescribe_cycle(&b.svc, &user("dr2"), &b.formulary, &cfg(), &r3, T0)
            .unwrap_err();
        assert!(e.message().contains("only a consultant"), "{e}");
        // …and for the consultant without one.
        let e = prescribe(&b, &request("p1", "chemo-ac", 3)).unwrap_err();
        assert!(e.message().contains("beyond the limit"), "{e}");
        // The consultant with a reason: prescribed, the override kept.
        let p3 = prescribe(&b, &r3).unwrap();
        let v = cycle::view(&b.svc, &user("dr"), &cfg(), &p3.careplan).unwrap();
        assert_eq!(v.overrides.len(), 1);
        verify_both(&b, &p3.careplan);
        cycle::release(&b.svc, &user("dr"), &cfg(), &p3.careplan, T0).unwrap();
    }
}

#[test]
fn release_rechecks_the_limit_against_cycles_released_since() {
    for b in backends("recheck") {
        measured(&b.svc, "p1");
        // Two AC cycles prescribed as drafts while 300 mg/m² is released:
        // each alone is within, but releasing both would pass 450.
        for n in 1..=6 {
            let p = prescribe(&b, &request("p1", "chemo-r-chop-21", n)).unwrap();
            verify_both(&b, &p.careplan);
            cycle::release(&b.svc, &user("dr"), &cfg(), &p.careplan, T0).unwrap();
        }
        let a = prescribe(&b, &request("p1", "chemo-ac", 2)).unwrap();
        let c = prescribe(&b, &request("p1", "chemo-ac", 3)).unwrap();
        let first = prescribe(&b, &request("p1", "chemo-ac", 1)).unwrap();
        for cp in [&a.careplan, &c.careplan, &first.careplan] {
            verify_both(&b, cp);
        }
        cycle::release(&b.svc, &user("dr"), &cfg(), &a.careplan, T0).unwrap();
        cycle::release(&b.svc, &user("dr"), &cfg(), &c.careplan, T0).unwrap();
        // 300 + 60 + 60 = 420 released; a third (480) is refused at release.
        let e = cycle::release(&b.svc, &user("dr"), &cfg(), &first.careplan, T0).unwrap_err();
        assert!(e.message().contains("past the limit"), "{}: {e}", b.name);
        assert_eq!(status(&b, "CarePlan", &first.careplan), "draft");
    }
}

#[test]
fn reductions_carry_their_reason() {
    for b in backends("reduce") {
        measured(&b.svc, "p1");
        let mut r = request("p1", "chemo-ac", 1);
        r.reductions = vec![Reduction {
            drug: "Doxorubicin".into(),
            percent: 25.0,
            reason: String::new(),
        }];
        let e = prescribe(&b, &r).unwrap_err();
        assert!(e.message().contains("needs its reason"), "{}: {e}", b.name);
        r.reductions[0].reason = "Grade 3 mucositis after cycle 1".into();
        let p = prescribe(&b, &r).unwrap();
        let dox = p
            .plan
            .doses
            .iter()
            .find(|d| d.drug == "Doxorubicin")
            .unwrap();
        // 60 × 1.82 = 109.2 mg, less 25 % = 81.9 mg.
        assert_eq!(dox.calc.final_dose, 81.9);
        let v = cycle::view(&b.svc, &user("dr"), &cfg(), &p.careplan).unwrap();
        let d = v.doses.iter().find(|d| d.dose_mg == 81.9).unwrap();
        assert_eq!(
            d.reduction.clone().unwrap().1,
            "Grade 3 mucositis after cycle 1"
        );
        r.reductions[0].drug = "Docetaxel".into();
        assert!(prescribe(&b, &r).is_err());
    }
}

#[test]
fn the_cycle_is_shared_as_a_valid_bundle() {
    for b in backends("share") {
        measured(&b.svc, "p1");
        let p = prescribe(&b, &request("p1", "chemo-fec-t", 1)).unwrap();
        let bundle =
            cycle::share_bundle(&b.svc, &user("dr"), &p.careplan, "https://w.example/fhir")
                .unwrap();
        wardline_fhir::definitions::r4()
            .validate(&bundle)
            .unwrap_or_else(|e| panic!("{}: {e:?}", b.name));
        let types: Vec<&str> = bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"]["resourceType"].as_str().unwrap())
            .collect();
        for t in [
            "Patient",
            "CarePlan",
            "PlanDefinition",
            "MedicationRequest",
            "Medication",
            "Observation",
        ] {
            assert!(types.contains(&t), "{t} in {types:?}");
        }
        assert_eq!(
            types.iter().filter(|t| **t == "MedicationRequest").count(),
            3
        );
        // Round trip: every entry is the stored resource, as it was stored.
        for e in bundle["entry"].as_array().unwrap() {
            let r = &e["resource"];
            let (t, id) = (
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap(),
            );
            assert_eq!(r, &read(&b.svc, t, id));
            assert_eq!(e["fullUrl"], format!("https://w.example/fhir/{t}/{id}"));
        }
    }
}
