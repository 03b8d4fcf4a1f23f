use super::*;
use crate::medicines::{FORMULARY_EXT, kind};

fn medication(id: &str, name: &str, unit: &str, strength_mg: Option<f64>, routes: &[(&str, &str)]) -> Value {
    let mut subs = vec![
        json!({"url": "unitOfDose", "valueString": unit}),
        json!({"url": "vtm", "valueCoding": {"system": crate::medicines::DMD_SYSTEM, "code": format!("vtm-{id}"), "display": name}}),
    ];
    for (code, display) in routes {
        subs.push(json!({"url": "route", "valueCoding": {"system": SNOMED_SYSTEM, "code": code, "display": display}}));
    }
    let mut m = json!({"resourceType": "Medication", "id": id, "status": "active",
        "code": {"coding": [{"system": crate::medicines::LOCAL_MEDICINE_SYSTEM, "code": id, "display": name}]},
        "extension": [{"url": FORMULARY_EXT, "extension": subs}]});
    if let Some(s) = strength_mg {
        m["ingredient"] = json!([{"itemCodeableConcept": {"text": name}, "strength": {
            "numerator": {"value": s, "unit": "mg"}, "denominator": {"value": 1, "unit": unit}}}]);
    }
    m
}

fn formulary() -> Formulary {
    Formulary::from_medications(&[
        medication("med-para", "Paracetamol 500mg tablets", "tablet", Some(500.0), &[("26643006", "Oral")]),
        medication("med-warf", "Warfarin 1mg tablets", "tablet", Some(1.0), &[("26643006", "Oral")]),
        medication("med-saline", "Sodium chloride 0.9% infusion 1000mL", "mL", None, &[("47625008", "Intravenous")]),
    ])
}

fn now() -> OffsetDateTime {
    time::macros::datetime!(2026-12-02 10:00 UTC)
}

fn who() -> Prescriber {
    Prescriber { reference: "Practitioner/dr".into(), display: "Dr Test".into() }
}

fn q(v: f64, u: &str) -> Qty {
    Qty { value: v, unit: u.into() }
}

fn each_kind() -> Vec<Prescription> {
    let mut reg = Prescription::new("p1", "med-para", Kind::Regular);
    reg.dose = Some(q(1000.0, "mg"));
    reg.route = "26643006".into();
    reg.times = vec!["08:00".into(), "14:00".into(), "22:00".into()];
    reg.indication = "pain".into();
    reg.review = Some(time::macros::date!(2026-12-09));
    reg.stop = Some(time::macros::date!(2026-12-16));
    let mut prn = Prescription::new("p1", "med-para", Kind::AsRequired);
    prn.dose = Some(q(1.0, "tablet"));
    prn.route = "26643006".into();
    prn.prn_reason = Some("pain".into());
    prn.min_interval_hours = Some(4.0);
    prn.max_per_24h = Some(q(8.0, "tablet"));
    prn.indication = "pain".into();
    let mut once = Prescription::new("p1", "med-para", Kind::OnceOnly);
    once.dose = Some(q(1.0, "g").clone());
    once.dose = Some(q(2.0, "tablet"));
    once.route = "26643006".into();
    once.once_at = Some(time::macros::datetime!(2026-12-02 12:00 UTC));
    once.indication = "fever".into();
    let mut var = Prescription::new("p1", "med-warf", Kind::VariableDose);
    var.dose_range = Some((q(1.0, "mg"), q(10.0, "mg")));
    var.route = "26643006".into();
    var.times = vec!["18:00".into()];
    var.instructions = Some("Dose by INR, see anticoagulation chart".into());
    var.indication = "atrial fibrillation".into();
    let mut inf = Prescription::new("p1", "med-saline", Kind::Infusion);
    inf.route = "47625008".into();
    inf.rate_ml_h = Some(125.0);
    inf.volume_ml = Some(1000.0);
    inf.duration_hours = Some(8.0);
    inf.indication = "maintenance fluids".into();
    inf.discharge = false;
    vec![reg, prn, once, var, inf]
}

#[test]
fn every_kind_round_trips_through_kind() {
    let f = formulary();
    for mut p in each_kind() {
        let e = validate(&f, &p, now()).unwrap_or_else(|e| panic!("{:?}: {e}", p.kind));
        let mr = build(e, &who(), &p, "active", true, now());
        assert_eq!(kind(&mr), p.kind, "{mr:#}");
        assert!(on_drug_chart(&mr));
        assert!(signed(&mr).is_some());
        let back = read_prescription(&mr).unwrap();
        // What building fills in: the start (now).
        p.start = Some(now());
        if p.kind == Kind::Infusion || p.kind == Kind::OnceOnly || p.kind == Kind::AsRequired {
            p.every_days = back.every_days;
        }
        assert_eq!(back, p, "{:?}", p.kind);
    }
}

#[test]
fn a_tto_is_category_discharge() {
    let f = formulary();
    let mut p = each_kind().remove(0);
    p.discharge = true;
    let mr = build(validate(&f, &p, now()).unwrap(), &who(), &p, "active", true, now());
    assert!(is_discharge(&mr));
    assert!(read_prescription(&mr).unwrap().discharge);
}

fn refusal(p: &Prescription) -> String {
    match validate(&formulary(), p, now()) {
        Err(MedicinesError::Invalid(m)) => m,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn refusals_name_the_field() {
    let base = each_kind();
    let mut p = base[0].clone();
    p.route = "47625008".into();
    assert!(refusal(&p).starts_with("Route:"), "{}", refusal(&p));
    let mut p = base[0].clone();
    p.dose = Some(q(1.0, "mL"));
    assert!(refusal(&p).contains("unit 'mL'"));
    let mut p = base[0].clone();
    p.dose = Some(q(0.0, "mg"));
    assert!(refusal(&p).contains("greater than zero"));
    let mut p = base[0].clone();
    p.indication = " ".into();
    assert!(refusal(&p).starts_with("Indication:"));
    let mut p = base[0].clone();
    p.times = vec!["25:00".into()];
    assert!(refusal(&p).starts_with("Times:"));
    let mut p = base[0].clone();
    p.times.clear();
    assert!(refusal(&p).starts_with("Times:"));
    let mut p = base[0].clone();
    p.medicine = "med-nothing".into();
    assert!(refusal(&p).starts_with("Medicine:"));
    let mut p = base[0].clone();
    p.review = Some(time::macros::date!(2026-11-01));
    assert!(refusal(&p).starts_with("Review date:"));
    let mut p = base[1].clone();
    p.min_interval_hours = None;
    assert!(refusal(&p).contains("minimum interval"));
    let mut p = base[1].clone();
    p.max_per_24h = Some(q(0.5, "tablet"));
    assert!(refusal(&p).starts_with("Maximum in 24 hours"));
    let mut p = base[2].clone();
    p.once_at = None;
    assert!(refusal(&p).starts_with("Time:"));
    let mut p = base[3].clone();
    p.dose_range = Some((q(10.0, "mg"), q(1.0, "mg")));
    assert!(refusal(&p).starts_with("Dose range:"));
    let mut p = base[3].clone();
    p.instructions = None;
    assert!(refusal(&p).starts_with("Instructions:"));
    let mut p = base[4].clone();
    p.rate_ml_h = Some(100.0);
    assert!(refusal(&p).starts_with("Rate:"), "{}", refusal(&p));
}

#[test]
fn time_of_day() {
    assert_eq!(parse_time_of_day("8:00").as_deref(), Some("08:00:00"));
    assert_eq!(parse_time_of_day("22:30").as_deref(), Some("22:30:00"));
    assert_eq!(parse_time_of_day("24:00"), None);
    assert_eq!(parse_time_of_day("noon"), None);
}

#[test]
fn the_rule_keeps_the_lifecycle() {
    let f = formulary();
    let p = each_kind().remove(0);
    let signed_mr = build(validate(&f, &p, now()).unwrap(), &who(), &p, "active", true, now());
    let unsigned = build(validate(&f, &p, now()).unwrap(), &who(), &p, "active", false, now());
    assert_eq!(lifecycle_refusal(&signed_mr, None), None);
    assert!(lifecycle_refusal(&unsigned, None).unwrap().contains("signed"));
    let mut stopped = signed_mr.clone();
    stopped["status"] = json!("stopped");
    assert!(lifecycle_refusal(&signed_mr, Some(&stopped)).unwrap().contains("stopped"));
    assert_eq!(lifecycle_refusal(&stopped, Some(&signed_mr)), None);
    // A draft made active by a plain write needs the signature.
    let mut draft = unsigned.clone();
    draft["status"] = json!("draft");
    assert!(lifecycle_refusal(&unsigned, Some(&draft)).is_some());
    // Not on the drug chart (a medication list): no signature needed.
    let mut list = unsigned.clone();
    list.as_object_mut().unwrap().remove("category");
    assert_eq!(lifecycle_refusal(&list, None), None);
}

proptest::proptest! {
    /// An infusion's rate, volume and duration are accepted exactly when
    /// rate × duration is within 1 % of the volume.
    #[test]
    fn infusion_arithmetic(rate in 1u32..500, hours in 1u32..24, off in -50i32..50) {
        let mut p = each_kind().remove(4);
        let exact = f64::from(rate * hours);
        let volume = exact * (1.0 + f64::from(off) / 1000.0);
        p.rate_ml_h = Some(f64::from(rate));
        p.duration_hours = Some(f64::from(hours));
        p.volume_ml = Some(volume);
        let ok = validate(&formulary(), &p, now()).is_ok();
        proptest::prop_assert_eq!(ok, (exact - volume).abs() <= volume * 0.01);
    }
}
