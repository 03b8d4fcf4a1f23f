//! The medication administration record over a real store — SQLite
//! always, PostgreSQL too when `WARDLINE_TEST_PG_URL` is set (each test in
//! a fresh schema): no dose of a prescription that is not active, one
//! record per dose (a real race), controlled-drug witnesses, as-required
//! limits, omissions, late time-critical escalation, and the drug round.

mod support;

use std::sync::Barrier;

use serde_json::{Value, json};
use support::Backend;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use wardline_core::{Access, Agent, FhirService, Op, Operation, ResourceView, Trusted};
use wardline_fhir::FhirError;
use wardline_store::Reader;
use wardline_workflow::medicines::mar::round::DoseState;
use wardline_workflow::medicines::mar::{
    self, Give, LATE_DOSE_CODE, Omit, drug_round, escalate_late, give, omit, patient_mar,
};
use wardline_workflow::medicines::{
    DOSE_SLOT_SYSTEM, FORMULARY_EXT, LOCAL_MEDICINE_SYSTEM, MIN_INTERVAL_EXT, MedicinesError,
    OMISSION_SYSTEM, SIGNATURE_EXT, VARIABLE_DOSE_EXT,
};

fn backends(test: &str) -> Vec<Backend> {
    support::backends(&format!("mar_{test}"), wardline_workflow::with_rules, seed)
}

fn op() -> Trusted {
    Trusted::operator("mar-test")
}

fn nurse(id: &str) -> Trusted {
    Trusted::new(Agent {
        name: id.to_owned(),
        who: Some(format!("Practitioner/{id}")),
        ..Agent::default()
    })
}

/// A member of staff who may not give medicines (a clerk, say).
struct NoMedicines(Agent);

impl Access for NoMedicines {
    fn agent(&self) -> &Agent {
        &self.0
    }
    fn check_type(&self, op: Op, t: Option<&str>) -> Result<(), FhirError> {
        if op == Op::Create && t == Some("MedicationAdministration") {
            return Err(FhirError::new(403, "forbidden", "not a nurse"));
        }
        Ok(())
    }
    fn check_resource(&self, _: Op, _: &ResourceView<'_>, _: &dyn Reader) -> Result<(), FhirError> {
        Ok(())
    }
    fn check_operation(&self, _: Operation) -> Result<(), FhirError> {
        Ok(())
    }
}

/// 2 March 2026, GMT: the trust's clock reads UTC.
const DAY: OffsetDateTime = datetime!(2026-03-02 00:00 UTC);

fn at(h: i64, m: i64) -> OffsetDateTime {
    DAY + Duration::hours(h) + Duration::minutes(m)
}

fn medication(id: &str, name: &str, unit: &str, cd: Option<&str>, tc: bool) -> Value {
    let mut subs = vec![json!({"url": "unitOfDose", "valueString": unit})];
    if let Some(s) = cd {
        subs.push(json!({"url": "controlledDrug", "valueString": s}));
    }
    if tc {
        subs.push(json!({"url": "timeCritical", "valueBoolean": true}));
    }
    let code = id.trim_start_matches("med-");
    subs.push(json!({"url": "vtm", "valueCoding": {"system": LOCAL_MEDICINE_SYSTEM, "code": format!("{code}V"), "display": name}}));
    for (route, display) in [
        ("26643006", "Oral"),
        ("47625008", "Intravenous"),
        ("34206005", "Subcutaneous"),
        ("78421000", "Intramuscular"),
    ] {
        subs.push(json!({"url": "route", "valueCoding": {"system": "http://snomed.info/sct", "code": route, "display": display}}));
    }
    json!({"resourceType": "Medication", "id": id, "status": "active",
        "code": {"coding": [{"system": LOCAL_MEDICINE_SYSTEM, "code": code, "display": name}]},
        "form": {"text": "Tablet"},
        "extension": [{"url": FORMULARY_EXT, "extension": subs}]})
}

fn loc(id: &str, name: &str, kind: &str, part_of: Option<&str>) -> Value {
    let mut l = json!({"resourceType": "Location", "id": id, "status": "active", "name": name,
        "physicalType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": kind}]}});
    if let Some(p) = part_of {
        l["partOf"] = json!({"reference": format!("Location/{p}")});
    }
    l
}

/// Ward `w1` (bay `a`, bed `a1`) with patient `p1` admitted (`e1`); nurses
/// `n1`, `n2`; a clerk `c1`; medicines: paracetamol 500 mg tablets,
/// insulin (time-critical), morphine (schedule 2), warfarin.
fn seed(svc: &FhirService) {
    let rs = vec![
        json!({"resourceType": "Patient", "id": "p1", "active": true,
            "name": [{"use": "official", "family": "Smith", "given": ["Alice"]}], "gender": "female"}),
        json!({"resourceType": "Practitioner", "id": "n1", "name": [{"family": "Ward", "given": ["Nina"]}]}),
        json!({"resourceType": "Practitioner", "id": "n2", "name": [{"family": "Bell", "given": ["Noah"]}]}),
        json!({"resourceType": "Practitioner", "id": "c1", "name": [{"family": "Clerk", "given": ["Cal"]}]}),
        loc("s", "Site", "si", None),
        loc("w1", "Ward One", "wa", Some("s")),
        loc("a", "Bay A", "ro", Some("w1")),
        loc("a1", "Bed 1", "bd", Some("a")),
        json!({"resourceType": "Encounter", "id": "e1", "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": "Patient/p1"},
            "period": {"start": "2026-03-01T10:00:00Z"},
            "location": [{"location": {"reference": "Location/a1"}, "status": "active",
                "period": {"start": "2026-03-01T10:00:00Z"}}]}),
        medication(
            "med-LPARA",
            "Paracetamol 500mg tablets",
            "tablet",
            None,
            false,
        ),
        medication(
            "med-LINS",
            "Insulin glargine 100units/ml",
            "unit",
            None,
            true,
        ),
        medication(
            "med-LMOR",
            "Morphine sulfate 10mg/1ml injection",
            "mg",
            Some("2"),
            false,
        ),
        medication("med-LWAR", "Warfarin 1mg tablets", "mg", None, true),
    ];
    let a = op();
    let mut tx = svc.begin(&a).unwrap();
    for r in rs {
        tx.save(r).unwrap();
    }
    tx.commit().unwrap();
}

fn request(id: &str, med: &str, status: &str, dosage: Value) -> Value {
    json!({"resourceType": "MedicationRequest", "id": id, "status": status, "intent": "order",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category", "code": "inpatient"}]}],
        "medicationReference": {"reference": format!("Medication/{med}")},
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e1"},
        "authoredOn": "2026-03-01T09:00:00Z",
        "extension": [{"url": SIGNATURE_EXT, "extension": [
            {"url": "by", "valueReference": {"reference": "Practitioner/dr1"}},
            {"url": "at", "valueDateTime": "2026-03-01T09:00:00Z"}]}],
        "dispenseRequest": {"validityPeriod": {"start": "2026-03-01T09:00:00Z"}},
        "dosageInstruction": [dosage]})
}

fn regular(times: &[&str], dose: f64, unit: &str) -> Value {
    json!({"timing": {"repeat": {"timeOfDay": times, "frequency": times.len(), "period": 1, "periodUnit": "d"}},
        "route": {"text": "Oral"},
        "doseAndRate": [{"doseQuantity": {"value": dose, "unit": unit}}]})
}

fn prn(dose: f64, unit: &str, hours: i64, max: f64) -> Value {
    json!({"asNeededBoolean": true, "route": {"text": "Oral"},
        "extension": [{"url": MIN_INTERVAL_EXT, "valueDuration": {"value": hours, "unit": "hours", "system": "http://unitsofmeasure.org", "code": "h"}}],
        "doseAndRate": [{"doseQuantity": {"value": dose, "unit": unit}}],
        "maxDosePerPeriod": {"numerator": {"value": max, "unit": unit}, "denominator": {"value": 24, "unit": "hours", "system": "http://unitsofmeasure.org", "code": "h"}}})
}

fn put(svc: &FhirService, r: Value) {
    let a = op();
    let mut tx = svc.begin(&a).unwrap();
    tx.save(r).unwrap();
    tx.commit().unwrap();
}

fn dose_at(request: &str, slot: OffsetDateTime) -> Give {
    Give {
        request: request.to_owned(),
        slot: Some(slot),
        ..Give::default()
    }
}

fn read(svc: &FhirService, t: &str, id: &str) -> Value {
    svc.read_as(&op(), t, id).unwrap().unwrap()
}

fn administrations(svc: &FhirService, request: &str) -> Vec<Value> {
    svc.search_as(
        &op(),
        "MedicationAdministration",
        &[("request", format!("MedicationRequest/{request}"))],
    )
    .unwrap()
    .resources
}

#[test]
fn no_dose_of_a_discontinued_or_unreleased_prescription() {
    for b in backends("status") {
        let svc = &b.svc;
        for (id, status) in [
            ("mr-stop", "stopped"),
            ("mr-draft", "draft"),
            ("mr-hold", "on-hold"),
            ("mr-done", "completed"),
        ] {
            put(
                svc,
                request(
                    id,
                    "med-LPARA",
                    status,
                    regular(&["08:00:00"], 1.0, "tablet"),
                ),
            );
            let e = give(svc, &nurse("n1"), &dose_at(id, at(8, 0)), None, at(8, 5)).unwrap_err();
            assert!(
                matches!(e, MedicinesError::Conflict(_)),
                "{}: {status}: {e:?}",
                b.name
            );
            assert!(
                e.message().contains("only an active prescription"),
                "{}",
                e.message()
            );
            let e = omit(
                svc,
                &nurse("n1"),
                &Omit {
                    request: id.into(),
                    slot: at(8, 0),
                    reason: "refused".into(),
                    note: None,
                },
                at(8, 5),
            )
            .unwrap_err();
            assert!(
                matches!(e, MedicinesError::Conflict(_)),
                "{}: {e:?}",
                b.name
            );
            // Nor by a plain write on any channel: the write rule.
            let a = op();
            let mut tx = svc.begin(&a).unwrap();
            let e = tx
                .save(
                    json!({"resourceType": "MedicationAdministration", "status": "completed",
                    "medicationReference": {"reference": "Medication/med-LPARA"},
                    "subject": {"reference": "Patient/p1"},
                    "request": {"reference": format!("MedicationRequest/{id}")},
                    "effectiveDateTime": "2026-03-02T08:00:00Z"}),
                )
                .unwrap_err();
            assert_eq!(e.status, 422, "{}: {e:?}", b.name);
            drop(tx);
            assert!(administrations(svc, id).is_empty());
        }
        // The same prescription once active may be given.
        put(
            svc,
            request(
                "mr-ok",
                "med-LPARA",
                "active",
                regular(&["08:00:00"], 1.0, "tablet"),
            ),
        );
        give(
            svc,
            &nurse("n1"),
            &dose_at("mr-ok", at(8, 0)),
            None,
            at(8, 5),
        )
        .unwrap();
    }
}

#[test]
fn two_nurses_cannot_record_the_same_dose() {
    for b in backends("race") {
        let svc = &b.svc;
        put(
            svc,
            request(
                "mr1",
                "med-LPARA",
                "active",
                regular(&["08:00:00", "20:00:00"], 2.0, "tablet"),
            ),
        );
        // Two nurses on two threads, at the same moment: exactly one is saved.
        for round in 0..3 {
            let slot = at(8, 0) + Duration::days(round);
            let barrier = Barrier::new(2);
            let results: Vec<Result<String, MedicinesError>> = std::thread::scope(|s| {
                let hs: Vec<_> = ["n1", "n2"]
                    .into_iter()
                    .map(|n| {
                        let barrier = &barrier;
                        s.spawn(move || {
                            barrier.wait();
                            give(
                                svc,
                                &nurse(n),
                                &dose_at("mr1", slot),
                                None,
                                slot + Duration::minutes(5),
                            )
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert_eq!(
                results.iter().filter(|r| r.is_ok()).count(),
                1,
                "{}: {results:?}",
                b.name
            );
            let loser = results.iter().find_map(|r| r.as_ref().err()).unwrap();
            assert!(
                loser.message().contains("already recorded")
                    || matches!(loser, MedicinesError::Conflict(_)),
                "{loser:?}"
            );
        }
        assert_eq!(administrations(svc, "mr1").len(), 3);
        // An omission of a dose already given is refused too.
        let e = omit(
            svc,
            &nurse("n2"),
            &Omit {
                request: "mr1".into(),
                slot: at(8, 0),
                reason: "refused".into(),
                note: None,
            },
            at(8, 30),
        )
        .unwrap_err();
        assert!(e.message().contains("already recorded"), "{e:?}");

        // The write rule on its own: two plain writes of the same slot, racing.
        let slot = mar::slot_id("mr1", at(20, 0));
        let ma = json!({"resourceType": "MedicationAdministration", "status": "completed",
            "identifier": [{"system": DOSE_SLOT_SYSTEM, "value": slot}],
            "medicationReference": {"reference": "Medication/med-LPARA"},
            "subject": {"reference": "Patient/p1"},
            "request": {"reference": "MedicationRequest/mr1"},
            "effectiveDateTime": "2026-03-02T20:00:00Z"});
        let barrier = Barrier::new(2);
        let results: Vec<Result<(), FhirError>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    let (barrier, ma) = (&barrier, ma.clone());
                    s.spawn(move || {
                        let a = op();
                        // (SQLite's transaction takes the database's write
                        // lock at its start: both start after the barrier.)
                        barrier.wait();
                        let mut tx = svc.begin(&a)?;
                        tx.save(ma)?;
                        tx.commit()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{}: {results:?}",
            b.name
        );
        let e = results.into_iter().find_map(Result::err).unwrap();
        assert_eq!(e.status, 422, "{e:?}");
        assert!(
            format!("{e:?}").contains("MedicationAdministration.identifier[0]"),
            "{e:?}"
        );
        // Once one is entered in error, the dose may be recorded again.
        let first = administrations(svc, "mr1")
            .into_iter()
            .find(|m| mar::slot_of(m) == Some(slot.as_str()))
            .unwrap();
        let mut wrong = first.clone();
        wrong["status"] = json!("entered-in-error");
        put(svc, wrong);
        give(
            svc,
            &nurse("n1"),
            &dose_at("mr1", at(20, 0)),
            None,
            at(20, 10),
        )
        .unwrap();
    }
}

#[test]
fn a_controlled_drug_needs_a_witness_who_may_give_medicines() {
    for b in backends("cd") {
        let svc = &b.svc;
        let mut d = regular(&["10:00:00"], 5.0, "mg");
        d["route"] = json!({"text": "Subcutaneous"});
        put(svc, request("mr-cd", "med-LMOR", "active", d));
        let g = Give {
            batch: Some("B123".into()),
            site: Some("Left abdomen".into()),
            ..dose_at("mr-cd", at(10, 0))
        };
        let e = give(svc, &nurse("n1"), &g, None, at(10, 2)).unwrap_err();
        assert!(
            matches!(e, MedicinesError::Invalid(_)) && e.message().contains("controlled drug"),
            "{}: {e:?}",
            b.name
        );
        let e = give(svc, &nurse("n1"), &g, Some(&nurse("n1")), at(10, 2)).unwrap_err();
        assert!(e.message().contains("second person"), "{e:?}");
        let clerk = NoMedicines(Agent {
            name: "c1".into(),
            who: Some("Practitioner/c1".into()),
            ..Agent::default()
        });
        let e = give(svc, &nurse("n1"), &g, Some(&clerk), at(10, 2)).unwrap_err();
        assert!(matches!(e, MedicinesError::Forbidden(_)), "{e:?}");
        assert!(administrations(svc, "mr-cd").is_empty());
        let id = give(svc, &nurse("n1"), &g, Some(&nurse("n2")), at(10, 2)).unwrap();
        let ma = read(svc, "MedicationAdministration", &id);
        assert_eq!(ma["performer"][0]["actor"]["reference"], "Practitioner/n1");
        assert_eq!(
            ma["performer"][1]["function"]["coding"][0]["code"],
            "witness"
        );
        assert_eq!(ma["performer"][1]["actor"]["reference"], "Practitioner/n2");
        assert_eq!(ma["performer"][1]["actor"]["display"], "Noah Bell");
        assert_eq!(ma["dosage"]["dose"]["value"], 5.0);
        assert_eq!(ma["dosage"]["site"]["text"], "Left abdomen");
        assert_eq!(ma["extension"][0]["valueString"], "B123");
        assert_eq!(mar::slot_of(&ma), Some("mr-cd/2026-03-02T10:00:00Z"));
    }
}

#[test]
fn as_required_doses_keep_their_interval_and_maximum() {
    for b in backends("prn") {
        let svc = &b.svc;
        // Paracetamol 1 g (2 tablets) 4-hourly when required, at most 8 tablets in 24 hours.
        put(
            svc,
            request("mr-prn", "med-LPARA", "active", prn(2.0, "tablet", 4, 8.0)),
        );
        let g = |t: OffsetDateTime| Give {
            request: "mr-prn".into(),
            given_at: Some(t),
            ..Give::default()
        };
        give(svc, &nurse("n1"), &g(at(6, 0)), None, at(6, 0)).unwrap();
        let e = give(svc, &nurse("n2"), &g(at(8, 0)), None, at(8, 0)).unwrap_err();
        assert!(
            matches!(e, MedicinesError::Conflict(_)),
            "{}: {e:?}",
            b.name
        );
        assert!(
            e.message().contains("Too soon") && e.message().contains("2026-03-02 10:00"),
            "{}",
            e.message()
        );
        for h in [10, 14, 18] {
            give(svc, &nurse("n1"), &g(at(h, 0)), None, at(h, 0)).unwrap();
        }
        let e = give(svc, &nurse("n1"), &g(at(22, 30)), None, at(22, 30)).unwrap_err();
        assert!(
            e.message().contains("24-hour maximum") && e.message().contains("8 tablet"),
            "{}",
            e.message()
        );
        assert!(
            e.message()
                .contains("The next dose may be given from 2026-03-03 06:00"),
            "{}",
            e.message()
        );
        // A scheduled time makes no sense for it; a dose over the maximum alone neither.
        assert!(
            give(
                svc,
                &nurse("n1"),
                &Give {
                    slot: Some(at(22, 0)),
                    ..g(at(22, 30))
                },
                None,
                at(22, 30)
            )
            .is_err()
        );
        assert_eq!(administrations(svc, "mr-prn").len(), 4);
        // Next morning it may be given again; the round says so.
        let r = drug_round(
            svc,
            &nurse("n1"),
            "w1",
            at(22, 30),
            Duration::hours(12),
            Duration::hours(4),
        )
        .unwrap();
        let p = r.patients[0]
            .prescriptions
            .iter()
            .find(|p| p.id == "mr-prn")
            .unwrap();
        let prn = p.prn.as_ref().unwrap();
        assert_eq!(prn.last.as_deref(), Some("2026-03-02 18:00"));
        assert_eq!(prn.next.as_deref(), Some("2026-03-03 06:00"));
        assert_eq!(prn.remaining, Some(0.0));
        assert!(!prn.may_give_now);
        give(svc, &nurse("n1"), &g(at(30, 0)), None, at(30, 0)).unwrap();
    }
}

/// A write that is not the drug round's (REST create, a Bundle, an import)
/// gets the same witness and as-required rules: a witness named in the
/// record proves nothing, and the limits are read the same way.
#[test]
fn plain_writes_obey_the_witness_and_as_required_rules() {
    for b in backends("plain") {
        let svc = &b.svc;
        put(
            svc,
            request(
                "mr-cd2",
                "med-LMOR",
                "active",
                regular(&["10:00:00"], 5.0, "mg"),
            ),
        );
        put(
            svc,
            request("mr-prn2", "med-LPARA", "active", prn(2.0, "tablet", 4, 8.0)),
        );
        let performer = |who: &str, f: &str| {
            json!({"function": {"coding": [{"system": mar::PERFORM_FUNCTION_SYSTEM, "code": f}]},
                "actor": {"reference": format!("Practitioner/{who}")}})
        };
        let written = |mr: &str, t: OffsetDateTime, dose: f64, unit: &str, performers: Value| {
            let mut ma = json!({"resourceType": "MedicationAdministration", "status": "completed",
                "subject": {"reference": "Patient/p1"},
                "request": {"reference": format!("MedicationRequest/{mr}")},
                "effectiveDateTime": mar::instant_text(t),
                "performer": performers,
                "dosage": {"dose": {"value": dose, "unit": unit}}});
            if mr == "mr-cd2" {
                ma["medicationReference"] = json!({"reference": "Medication/med-LMOR"});
                ma["identifier"] = json!([{"system": DOSE_SLOT_SYSTEM,
                    "value": mar::slot_id("mr-cd2", at(10, 0))}]);
            } else {
                ma["medicationReference"] = json!({"reference": "Medication/med-LPARA"});
            }
            ma
        };
        let save = |ma: Value| -> Result<String, FhirError> {
            let n = nurse("n1");
            let mut tx = svc.begin(&n)?;
            let id = tx.save(ma)?.id;
            tx.commit()?;
            Ok(id)
        };
        // A controlled drug with a witness merely named: refused.
        let e = save(written(
            "mr-cd2",
            at(10, 1),
            5.0,
            "mg",
            json!([performer("n1", "performer"), performer("n2", "witness")]),
        ))
        .unwrap_err();
        assert_eq!(e.status, 422, "{}: {e:?}", b.name);
        assert!(e.to_string().contains("controlled drug"), "{e}");
        assert!(
            e.to_string().contains("MedicationAdministration.performer"),
            "{e}"
        );
        assert!(administrations(svc, "mr-cd2").is_empty());
        // The drug round, with the witness signed in, records it.
        give(
            svc,
            &nurse("n1"),
            &dose_at("mr-cd2", at(10, 0)),
            Some(&nurse("n2")),
            at(10, 2),
        )
        .unwrap();
        // As required: a plain write within the interval is refused, saying when.
        let paracetamol = |t| {
            written(
                "mr-prn2",
                t,
                2.0,
                "tablet",
                json!([performer("n1", "performer")]),
            )
        };
        let first = save(paracetamol(at(6, 0))).unwrap();
        let e = save(paracetamol(at(8, 0))).unwrap_err();
        assert_eq!(e.status, 422, "{}: {e:?}", b.name);
        assert!(
            e.to_string().contains("Too soon") && e.to_string().contains("2026-03-02 10:00"),
            "{e}"
        );
        // Moving a recorded dose into another's interval is refused too.
        for h in [10, 14, 18] {
            save(paracetamol(at(h, 0))).unwrap();
        }
        let e = save(paracetamol(at(22, 30))).unwrap_err();
        assert!(e.to_string().contains("24-hour maximum"), "{e}");
        let mut moved = read(svc, "MedicationAdministration", &first);
        moved["effectiveDateTime"] = json!(mar::instant_text(at(12, 0)));
        let e = save(moved).unwrap_err();
        assert!(e.to_string().contains("Too soon"), "{e}");
        // A dose without an amount cannot be checked, so it is refused.
        let mut no_amount = paracetamol(at(30, 0));
        no_amount.as_object_mut().unwrap().remove("dosage");
        let e = save(no_amount).unwrap_err();
        assert!(e.to_string().contains("dosage.dose"), "{e}");
        assert_eq!(administrations(svc, "mr-prn2").len(), 4);
    }
}

#[test]
fn an_omission_is_kept_with_its_reason() {
    for b in backends("omit") {
        let svc = &b.svc;
        put(
            svc,
            request(
                "mr1",
                "med-LPARA",
                "active",
                regular(&["08:00:00", "12:00:00"], 2.0, "tablet"),
            ),
        );
        let o = |reason: &str, note: Option<&str>| Omit {
            request: "mr1".into(),
            slot: at(8, 0),
            reason: reason.into(),
            note: note.map(str::to_owned),
        };
        assert!(matches!(
            omit(svc, &nurse("n1"), &o("bogus", None), at(8, 10)),
            Err(MedicinesError::Invalid(_))
        ));
        assert!(matches!(
            omit(svc, &nurse("n1"), &o("other", None), at(8, 10)),
            Err(MedicinesError::Invalid(_))
        ));
        // Not a dose time of the prescription; not yet due.
        assert!(
            omit(
                svc,
                &nurse("n1"),
                &Omit {
                    slot: at(9, 0),
                    ..o("refused", None)
                },
                at(9, 0)
            )
            .is_err()
        );
        let e = omit(
            svc,
            &nurse("n1"),
            &Omit {
                slot: at(12, 0),
                ..o("refused", None)
            },
            at(8, 10),
        )
        .unwrap_err();
        assert!(e.message().contains("not due yet"), "{e:?}");
        let id = omit(
            svc,
            &nurse("n1"),
            &o("refused", Some("Says it upsets her stomach")),
            at(8, 10),
        )
        .unwrap();
        let ma = read(svc, "MedicationAdministration", &id);
        assert_eq!(ma["status"], "not-done", "{}", b.name);
        assert_eq!(
            ma["statusReason"][0]["coding"][0]["system"],
            OMISSION_SYSTEM
        );
        assert_eq!(ma["statusReason"][0]["coding"][0]["code"], "refused");
        assert_eq!(ma["statusReason"][0]["text"], "Says it upsets her stomach");
        let m = patient_mar(svc, &nurse("n1"), "p1", at(13, 30), 1).unwrap();
        let p = m.prescriptions.iter().find(|p| p.id == "mr1").unwrap();
        let d8 = p
            .doses
            .iter()
            .find(|d| d.slot.day == "2026-03-02" && d.slot.time == "08:00")
            .unwrap();
        assert_eq!(d8.state, DoseState::NotGiven);
        let rec = d8.record.as_ref().unwrap();
        assert_eq!(rec.reason.as_ref().unwrap().1, "Patient refused");
        assert_eq!(rec.by, "Nina Ward");
        let d12 = p
            .doses
            .iter()
            .find(|d| d.slot.day == "2026-03-02" && d.slot.time == "12:00")
            .unwrap();
        assert_eq!(d12.state, DoseState::Overdue);
        assert_eq!(m.days, vec!["2026-03-01", "2026-03-02"]);
    }
}

#[test]
fn late_time_critical_doses_are_escalated_once() {
    for b in backends("late") {
        let svc = &b.svc;
        let mut d = regular(&["08:00:00", "18:00:00"], 10.0, "unit");
        d["route"] = json!({"text": "Subcutaneous"});
        // Started this morning (yesterday's doses are not this test's).
        let today = |mut mr: Value| {
            mr["dispenseRequest"]["validityPeriod"]["start"] = json!("2026-03-02T00:00:00Z");
            mr
        };
        put(svc, today(request("mr-ins", "med-LINS", "active", d)));
        put(
            svc,
            today(request(
                "mr-para",
                "med-LPARA",
                "active",
                regular(&["08:00:00"], 2.0, "tablet"),
            )),
        );
        let grace = Duration::minutes(30);
        assert!(
            escalate_late(svc, &op(), at(8, 29), grace)
                .unwrap()
                .is_empty(),
            "{}",
            b.name
        );
        let tasks = escalate_late(svc, &op(), at(8, 31), grace).unwrap();
        assert_eq!(
            tasks.len(),
            1,
            "{}: only the time-critical medicine",
            b.name
        );
        assert!(
            escalate_late(svc, &op(), at(8, 45), grace)
                .unwrap()
                .is_empty(),
            "once"
        );
        let t = read(svc, "Task", &tasks[0]);
        assert_eq!(t["code"]["coding"][0]["code"], LATE_DOSE_CODE);
        assert_eq!(t["location"]["reference"], "Location/w1");
        assert_eq!(t["focus"]["reference"], "MedicationRequest/mr-ins");
        assert_eq!(t["identifier"][0]["value"], "mr-ins/2026-03-02T08:00:00Z");
        assert!(
            t["description"]
                .as_str()
                .unwrap()
                .contains("Insulin glargine"),
            "{t}"
        );
        // The round marks it late and escalated; the paracetamol is only due.
        let r = drug_round(
            svc,
            &nurse("n1"),
            "w1",
            at(8, 45),
            Duration::hours(12),
            Duration::hours(4),
        )
        .unwrap();
        let p = &r.patients[0];
        assert_eq!(
            (p.bed.as_str(), p.late_critical, p.due),
            ("Bay A · Bed 1", 1, 1)
        );
        let ins = p.prescriptions.iter().find(|x| x.id == "mr-ins").unwrap();
        let d8 = ins.doses.iter().find(|d| d.slot.time == "08:00").unwrap();
        assert!(d8.late_critical && d8.escalated && d8.state == DoseState::Overdue);
        assert_eq!(r.escalations.len(), 1);
        // Given late, it is still recorded; an unavailable evening dose escalates at once.
        give(
            svc,
            &nurse("n1"),
            &dose_at("mr-ins", at(8, 0)),
            None,
            at(8, 50),
        )
        .unwrap();
        omit(
            svc,
            &nurse("n1"),
            &Omit {
                request: "mr-ins".into(),
                slot: at(18, 0),
                reason: "unavailable".into(),
                note: None,
            },
            at(17, 30),
        )
        .unwrap();
        assert_eq!(
            escalate_late(svc, &op(), at(17, 31), grace).unwrap().len(),
            1
        );
        assert!(
            escalate_late(svc, &op(), at(18, 45), grace)
                .unwrap()
                .is_empty()
        );
    }
}

#[test]
fn once_only_and_variable_doses() {
    for b in backends("once") {
        let svc = &b.svc;
        let once = json!({"timing": {"event": ["2026-03-02T14:00:00Z"], "repeat": {"count": 1}},
            "doseAndRate": [{"doseQuantity": {"value": 2, "unit": "tablet"}}]});
        put(svc, request("mr-once", "med-LPARA", "active", once));
        let e = give(
            svc,
            &nurse("n1"),
            &Give {
                dose: Some(3.0),
                ..dose_at("mr-once", at(14, 0))
            },
            None,
            at(14, 0),
        )
        .unwrap_err();
        assert!(e.message().contains("prescribed dose is 2 tablet"), "{e:?}");
        give(
            svc,
            &nurse("n1"),
            &dose_at("mr-once", at(14, 0)),
            None,
            at(14, 0),
        )
        .unwrap();
        assert_eq!(
            read(svc, "MedicationRequest", "mr-once")["status"],
            "completed",
            "{}",
            b.name
        );

        let mut var = json!({"timing": {"repeat": {"timeOfDay": ["18:00:00"], "period": 1, "periodUnit": "d"}},
            "text": "Dose by INR",
            "doseAndRate": [{"doseRange": {"low": {"value": 1, "unit": "mg"}, "high": {"value": 10, "unit": "mg"}}}]});
        var["route"] = json!({"text": "Oral"});
        let mut mr = request("mr-war", "med-LWAR", "active", var);
        mr["extension"]
            .as_array_mut()
            .unwrap()
            .push(json!({"url": VARIABLE_DOSE_EXT, "valueBoolean": true}));
        put(svc, mr);
        let e = give(
            svc,
            &nurse("n1"),
            &dose_at("mr-war", at(18, 0)),
            None,
            at(18, 0),
        )
        .unwrap_err();
        assert!(e.message().contains("variable-dose"), "{e:?}");
        let e = give(
            svc,
            &nurse("n1"),
            &Give {
                dose: Some(12.0),
                ..dose_at("mr-war", at(18, 0))
            },
            None,
            at(18, 0),
        )
        .unwrap_err();
        assert!(
            e.message().contains("outside the prescribed range"),
            "{e:?}"
        );
        let id = give(
            svc,
            &nurse("n1"),
            &Give {
                dose: Some(3.0),
                ..dose_at("mr-war", at(18, 0))
            },
            None,
            at(18, 0),
        )
        .unwrap();
        assert_eq!(
            read(svc, "MedicationAdministration", &id)["dosage"]["dose"]["value"],
            3.0
        );
    }
}
