use super::parse::parse_analyte;
use super::*;
use proptest::prelude::*;

fn seed() -> Catalogue {
    let b = wardline_demo::order_catalogue();
    let of = |t: &str| -> Vec<Value> {
        b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"].clone())
            .filter(|r| r["resourceType"] == t)
            .collect()
    };
    from_resources(
        &of("ActivityDefinition"),
        &of("PlanDefinition"),
        &of("Questionnaire"),
    )
}

fn potassium() -> Analyte {
    Analyte {
        code: json!({"coding": [{"system": LOINC, "code": "2823-3"}]}),
        display: "Potassium".into(),
        unit: Some("mmol/L".into()),
        low: Some(3.5),
        high: Some(5.3),
        critical_low: Some(2.5),
        critical_high: Some(6.5),
        delta_absolute: Some(1.0),
        delta_percent: None,
        sex_ranges: vec![],
    }
}

#[test]
fn the_seed_catalogue_parses_whole() {
    let c = seed();
    assert_eq!(c.problems, Vec::<String>::new());
    let path = c.orderables.iter().filter(|o| !o.imaging).count();
    let rad = c.orderables.iter().filter(|o| o.imaging).count();
    assert!(path >= 20 && rad >= 8, "{path} pathology, {rad} radiology");
    assert!(c.sets.len() >= 3);
    for id in [
        "path-fbc",
        "path-ue",
        "path-lft",
        "path-crp",
        "path-hba1c",
        "path-coag",
        "path-troponin",
        "micro-blood-culture",
        "tx-group-save",
        "path-lactate",
        "rad-cxr",
        "rad-ct-head",
        "rad-mri-lumbar",
        "rad-us-abdo",
    ] {
        assert!(c.orderable(id).is_some(), "{id} is in the seed");
    }
    for set in ["chest-pain", "sepsis-screen"] {
        let s = c.set(set).unwrap();
        for o in &s.orderables {
            assert!(c.orderable(o).is_some(), "{set} names {o}");
        }
    }
    // Every pathology test has a specimen; every examination a modality and
    // its questions; ionising ones ask about pregnancy and justification.
    for o in &c.orderables {
        assert_eq!(o.imaging, o.department == "radiology");
        if o.imaging {
            assert!(o.modality.is_some(), "{}", o.id);
            let q = o.questionnaire.as_ref().expect("questions");
            let has = |l: &str| q.items.iter().any(|i| i.link_id == l && i.required);
            assert!(has("clinical-indication"), "{}", o.id);
            assert_eq!(has("pregnancy"), o.ionising, "{}", o.id);
            assert_eq!(has("irmer-justification"), o.ionising, "{}", o.id);
        } else {
            assert!(o.specimen.is_some(), "{}", o.id);
        }
        assert!(o.active);
        assert_eq!(o.url, format!("{BASE}/ActivityDefinition/{}", o.id));
    }
    // The contract's worked example.
    let k = c.analyte(&format!("{LOINC}|2823-3")).unwrap();
    assert_eq!((k.low, k.high), (Some(3.5), Some(5.3)));
    assert_eq!((k.critical_low, k.critical_high), (Some(2.5), Some(6.5)));
    assert_eq!(k.range_text().as_deref(), Some("3.5–5.3 mmol/L"));
    let fbc = c.orderable("path-fbc").unwrap();
    assert!(!fbc.local_code, "FBC has its SNOMED CT code");
    assert_eq!(
        fbc.specimen.as_ref().unwrap().colour.as_deref(),
        Some("Purple")
    );
    assert!(c.orderable("path-ue").unwrap().local_code);
    assert_eq!(
        c.orderable("path-hba1c").unwrap().retest_interval_hours,
        Some(90 * 24)
    );
    assert_eq!(
        c.orderable("path-tft").unwrap().retest_interval_hours,
        Some(42 * 24)
    );
    assert_eq!(
        c.by_url(&format!("{BASE}/ActivityDefinition/rad-cxr|1"))
            .unwrap()
            .id,
        "rad-cxr"
    );
    // Sorted by department then title.
    let ranks: Vec<usize> = c
        .orderables
        .iter()
        .map(|o| dept_rank(&o.department))
        .collect();
    assert!(ranks.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn interpret_flags_potassium_as_the_laboratory_does() {
    let k = potassium();
    let cases = [
        (2.4, "LL"),
        (2.5, "L"),
        (3.4, "L"),
        (3.5, "N"),
        (4.2, "N"),
        (5.3, "N"),
        (5.4, "H"),
        (6.5, "H"),
        (6.6, "HH"),
    ];
    for (v, code) in cases {
        assert_eq!(k.interpret(v).code(), code, "{v}");
    }
    assert!(k.interpret(f64::NAN).is_critical(), "NaN is never normal");
    assert_eq!(
        Interpretation::from_code("HH"),
        Some(Interpretation::CriticalHigh)
    );
    assert_eq!(
        Interpretation::CriticalLow.concept()["coding"][0]["code"],
        "LL"
    );
}

#[test]
fn sex_specific_ranges_and_the_widest_without_sex() {
    let c = seed();
    let hb = c.analyte("718-7").unwrap();
    assert_eq!((hb.low, hb.high), (Some(115.0), Some(180.0)));
    assert_eq!(
        hb.for_sex(Some("female")).interpret(120.0),
        Interpretation::Normal
    );
    assert_eq!(
        hb.for_sex(Some("male")).interpret(120.0),
        Interpretation::Low
    );
    assert_eq!(hb.interpret(120.0), Interpretation::Normal);
    assert_eq!(hb.for_sex(None), *hb);
    assert_eq!(hb.interpret(65.0), Interpretation::CriticalLow);
}

#[test]
fn values_are_parsed_strictly() {
    assert_eq!(Analyte::parse_value(" 5.3 "), Ok(5.3));
    assert_eq!(Analyte::parse_value("-1"), Ok(-1.0));
    for bad in ["NaN", "inf", "5,3", "", "five", "1e999"] {
        assert!(Analyte::parse_value(bad).is_err(), "{bad}");
    }
}

fn ad_with(mutate: impl FnOnce(&mut Value)) -> Value {
    let c = seed();
    let mut ad = c.orderable("path-ue").unwrap().to_resource(None);
    mutate(&mut ad);
    ad
}

#[test]
fn wrong_entries_are_refused_with_the_reason() {
    let qs = HashMap::new();
    let cases: Vec<(Value, &str)> = vec![
        (
            ad_with(|a| {
                a["contained"][2]["qualifiedInterval"][0]["range"]["low"]["value"] = json!(9.0)
            }),
            "low (9) is above its high (5.3)",
        ),
        (
            ad_with(|a| {
                a["contained"][2]["qualifiedInterval"][1]["range"]["low"]["value"] = json!(4.0)
            }),
            "critical low (4) is inside its reference range",
        ),
        (
            ad_with(|a| {
                a["contained"][2]["qualifiedInterval"][1]["range"]["high"]["value"] = json!(5.0)
            }),
            "critical high (5) is inside its reference range",
        ),
        (
            ad_with(|a| {
                a.as_object_mut().unwrap().remove("specimenRequirement");
            }),
            "needs its specimen",
        ),
        (
            ad_with(|a| a["status"] = json!("draft")),
            "active or retired",
        ),
        (
            ad_with(|a| a["topic"][0]["coding"][0]["code"] = json!("cardiology")),
            "not a department",
        ),
        (
            ad_with(|a| a["code"] = json!({"text": "U&E"})),
            "needs a coding",
        ),
        (
            ad_with(|a| a["id"] = json!("no spaces")),
            "not a catalogue id",
        ),
        (
            ad_with(|a| {
                a["contained"][1]["extension"][0]["extension"] =
                    json!([{"url": "absolute", "valueQuantity": {"value": -1}}])
            }),
            "must be positive",
        ),
    ];
    for (ad, why) in cases {
        let e = parse_orderable(&ad, &qs).unwrap_err();
        assert!(e.contains(why), "{e} ∌ {why}");
    }
    let c = seed();
    let mut cxr = c.orderable("rad-cxr").unwrap().clone();
    cxr.modality = None;
    let qs: HashMap<String, Questionnaire> = c
        .questionnaires
        .iter()
        .map(|q| (q.url.clone(), q.clone()))
        .collect();
    assert!(
        parse_orderable(&cxr.to_resource(None), &qs)
            .unwrap_err()
            .contains("modality")
    );
    let cxr = c.orderable("rad-cxr").unwrap();
    assert!(
        parse_orderable(&cxr.to_resource(None), &HashMap::new())
            .unwrap_err()
            .contains("does not exist")
    );
    let set = c.set("chest-pain").unwrap();
    let pd = set.to_resource(None, &|id| c.orderable(id).map(|o| o.url.clone()));
    assert!(
        parse_order_set(&pd, &|_| None)
            .unwrap_err()
            .contains("not in the catalogue")
    );
    assert_eq!(
        parse_order_set(&pd, &|u| c
            .orderables
            .iter()
            .find(|o| o.url == u)
            .map(|o| o.id.clone()))
        .unwrap(),
        *set
    );
}

#[test]
fn every_seed_entry_survives_a_round_trip() {
    let c = seed();
    let qs: HashMap<String, Questionnaire> = c
        .questionnaires
        .iter()
        .map(|q| (q.url.clone(), q.clone()))
        .collect();
    for o in &c.orderables {
        let back = parse_orderable(&o.to_resource(None), &qs).unwrap();
        assert_eq!(&back, o, "{}", o.id);
    }
}

fn bound() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        Just(None),
        (-1000i32..1000).prop_map(|v| Some(f64::from(v) / 10.0))
    ]
}

prop_compose! {
    /// A consistent analyte: critical low ≤ low ≤ high ≤ critical high.
    fn analyte()(mut b in proptest::collection::vec(-1000i32..1000, 4), has in proptest::collection::vec(any::<bool>(), 4)) -> Analyte {
        b.sort_unstable();
        let at = |i: usize| has[i].then(|| f64::from(b[i]) / 10.0);
        Analyte { low: at(1), high: at(2), critical_low: at(0), critical_high: at(3), ..potassium() }
    }
}

proptest! {
    /// Bands are monotone in the value: a higher value never has a lower
    /// flag (LL < L < N < H < HH), and a critical flag is always abnormal.
    #[test]
    fn interpret_is_monotone_and_critical_is_abnormal(a in analyte(), x in -2000i32..2000, y in -2000i32..2000) {
        let (lo, hi) = (f64::from(x.min(y)) / 10.0, f64::from(x.max(y)) / 10.0);
        let (f, g) = (a.interpret(lo), a.interpret(hi));
        prop_assert!(f <= g, "{lo} → {f:?}, {hi} → {g:?} ({a:?})");
        for i in [f, g] {
            prop_assert!(!i.is_critical() || i.is_abnormal());
        }
        // Inside the reference range is normal; outside a critical limit
        // is critical.
        if a.low.is_some_and(|l| lo >= l) && a.high.is_some_and(|h| lo <= h) {
            prop_assert_eq!(f, Interpretation::Normal);
        }
        if a.critical_high.is_some_and(|c| hi > c) {
            prop_assert_eq!(g, Interpretation::CriticalHigh);
        }
    }

    /// What the catalogue writes it reads back the same.
    #[test]
    fn analytes_round_trip(a in analyte(), pct in bound()) {
        let a = Analyte { delta_percent: pct.map(f64::abs).filter(|p| *p > 0.0), ..a };
        let back = parse_analyte(&a.to_resource("x")).unwrap();
        prop_assert_eq!(back, a);
    }
}
