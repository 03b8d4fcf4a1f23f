//! Unit tests of the requesting rules.

use super::*;
use crate::orders::catalogue::Questionnaire;

fn tube(container: &str) -> Option<SpecimenRequirement> {
    Some(SpecimenRequirement {
        specimen_type: json!({"coding": [{"system": SNOMED, "code": "119297000", "display": "Blood specimen"}]}),
        container: container.into(),
        colour: None,
        minimum_volume_ml: None,
    })
}

fn test(id: &str, container: Option<&str>) -> Orderable {
    Orderable {
        id: id.into(),
        url: format!("https://fhir.wardline.invalid/ActivityDefinition/{id}"),
        title: id.to_uppercase(),
        code: json!({"text": id}),
        local_code: true,
        department: "haematology".into(),
        imaging: false,
        modality: None,
        ionising: false,
        specimen: container.and_then(tube),
        preparation: None,
        timing: None,
        retest_interval_hours: None,
        questionnaire: None,
        analytes: Vec::new(),
        active: true,
        description: None,
    }
}

fn xray() -> Orderable {
    let q = |id: &str, kind: &str, required: bool, options: &[(&str, &str)]| Question {
        link_id: id.into(),
        text: id.replace('-', " "),
        kind: kind.into(),
        required,
        options: options
            .iter()
            .map(|(a, b)| ((*a).into(), (*b).into()))
            .collect(),
    };
    Orderable {
        title: "Chest X-ray".into(),
        department: "radiology".into(),
        imaging: true,
        ionising: true,
        questionnaire: Some(Questionnaire {
            url: "q".into(),
            id: "q".into(),
            title: "Imaging".into(),
            items: vec![
                q("clinical-indication", "string", true, &[]),
                q(
                    "pregnancy",
                    "choice",
                    false,
                    &[
                        ("not-pregnant", "Not pregnant"),
                        ("possibly-pregnant", "Possibly pregnant"),
                        ("pregnant", "Pregnant"),
                        ("not-applicable", "Not applicable"),
                    ],
                ),
                q("contrast-allergy", "boolean", false, &[]),
                q("egfr", "decimal", false, &[]),
                q("irmer-justification", "text", false, &[]),
            ],
        }),
        ..test("rad-cxr", None)
    }
}

fn answers(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(a, b)| ((*a).into(), (*b).into()))
        .collect()
}

#[test]
fn requisition_numbers_are_r_and_seven_digits() {
    assert_eq!(requisition_number(1), "R0000001");
    assert_eq!(requisition_number(1234567), "R1234567");
    assert_eq!(requisition_number(12345678), "R12345678");
    assert_eq!(requisition_serial("R0000042"), Some(42));
    assert_eq!(requisition_serial("R42"), None);
    assert_eq!(requisition_serial("X0000042"), None);
    assert_eq!(requisition_serial("R00000-1"), None);
}

proptest::proptest! {
    #[test]
    fn requisition_numbers_round_trip_and_sort(a in 0u64..100_000_000, b in 0u64..100_000_000) {
        proptest::prop_assert_eq!(requisition_serial(&requisition_number(a)), Some(a));
        if a < b && b < 10_000_000 {
            proptest::prop_assert!(requisition_number(a) < requisition_number(b));
        }
    }

    /// The duplicate window is exactly the interval before now.
    #[test]
    fn the_retest_window(hours in 1u32..10_000, back in -100_000i64..100_000_000) {
        let now = 1_800_000_000_000i64;
        let within = within_retest_interval(now - back * 1000, now, hours);
        proptest::prop_assert_eq!(within, back * 1000 < i64::from(hours) * 3_600_000);
    }
}

#[test]
fn the_duplicate_window_edges() {
    let now = 1_800_000_000_000;
    let h = 3_600_000;
    assert!(within_retest_interval(now - 71 * h, now, 72));
    assert!(!within_retest_interval(now - 72 * h, now, 72));
    assert!(within_retest_interval(now + h, now, 72), "dated after now");
}

#[test]
fn specimens_are_one_per_container() {
    let fbc = test("fbc", Some("EDTA (purple top)"));
    let ue = test("ue", Some("Serum (gold top)"));
    let lft = test("lft", Some("serum (gold top) "));
    let esr = test("esr", Some("EDTA (purple top)"));
    let xr = xray();
    let none = test("note", None);
    let all = [&fbc, &ue, &xr, &lft, &none, &esr];
    let g = group_specimens(&all);
    assert_eq!(g.len(), 2, "{g:?}");
    assert_eq!(g[0].0.container, "EDTA (purple top)");
    assert_eq!(g[0].1, vec![0, 5]);
    assert_eq!(g[1].1, vec![1, 3]);
    // A different specimen type in the same kind of container is another tube.
    let mut urine = test("urine", Some("EDTA (purple top)"));
    urine.specimen.as_mut().unwrap().specimen_type = json!({"text": "Urine"});
    assert_eq!(group_specimens(&[&fbc, &urine]).len(), 2);
}

#[test]
fn questions_are_checked_and_name_the_question() {
    let x = xray();
    let ok = check_answers(
        &x,
        Some(&answers(&[
            ("clinical-indication", "Cough, fever"),
            ("pregnancy", "not-pregnant"),
            ("contrast-allergy", "no"),
            ("egfr", "58.5"),
        ])),
        true,
    )
    .unwrap();
    assert_eq!(ok.len(), 4);
    assert_eq!(ok[1]["answer"][0]["valueCoding"]["code"], "not-pregnant");
    assert_eq!(ok[2]["answer"][0]["valueBoolean"], false);
    assert_eq!(ok[3]["answer"][0]["valueDecimal"].to_string(), "58.5");

    let e = check_answers(&x, Some(&answers(&[("pregnancy", "not-pregnant")])), true).unwrap_err();
    assert!(e.message().contains("clinical indication"), "{e}");
    assert_eq!(e.status(), 400);
    // Pregnancy must be answered for someone who may be pregnant …
    let e = check_answers(&x, Some(&answers(&[("clinical-indication", "x")])), true).unwrap_err();
    assert!(e.message().contains("pregnancy"), "{e}");
    // … but not for a man.
    check_answers(&x, Some(&answers(&[("clinical-indication", "x")])), false).unwrap();
    for (k, v, why) in [
        ("pregnancy", "maybe", "choose one of"),
        ("contrast-allergy", "perhaps", "yes or no"),
        ("egfr", "lots", "number"),
        ("egfr", "-3", "number"),
        ("colour", "red", "not one of the questions"),
    ] {
        let e = check_answers(
            &x,
            Some(&answers(&[
                ("clinical-indication", "x"),
                ("pregnancy", "not-applicable"),
                (k, v),
            ])),
            true,
        )
        .unwrap_err();
        assert!(e.message().contains(why), "{k}={v}: {e}");
    }
    // Possibly pregnant: the justification is needed.
    let e = check_answers(
        &x,
        Some(&answers(&[
            ("clinical-indication", "x"),
            ("pregnancy", "possibly-pregnant"),
        ])),
        true,
    )
    .unwrap_err();
    assert!(e.message().contains("irmer justification"), "{e}");
    // No questions, no answers.
    assert!(
        check_answers(
            &test("fbc", Some("EDTA")),
            Some(&answers(&[("a", "b")])),
            true
        )
        .is_err()
    );
}

#[test]
fn who_may_be_pregnant() {
    let today = time::macros::date!(2026 - 03 - 01);
    assert!(may_be_pregnant(Some("female"), Some("1990-05-01"), today));
    assert!(!may_be_pregnant(Some("male"), Some("1990-05-01"), today));
    assert!(!may_be_pregnant(Some("female"), Some("1940-05-01"), today));
    assert!(!may_be_pregnant(Some("female"), Some("2016-05-01"), today));
    assert!(
        may_be_pregnant(Some("female"), Some("2014-02-28"), today),
        "12 today"
    );
    assert!(may_be_pregnant(None, None, today));
    assert!(may_be_pregnant(Some("unknown"), Some("1990"), today));
}

#[test]
fn times_are_utc_to_the_second() {
    let t = time::macros::datetime!(2026-03-01 09:05:07.9 +01:00);
    assert_eq!(fhir_time(t), "2026-03-01T08:05:07Z");
}

#[test]
fn warnings_say_what_when_and_who() {
    let w = DuplicateWarning {
        orderable: "path-fbc".into(),
        title: "Full blood count".into(),
        service_request: "x".into(),
        requisition: Some("R0000001".into()),
        status: "active".into(),
        authored_on: "2026-03-01T09:00:00Z".into(),
        requester: Some("Dr Sanjay Mehta".into()),
        retest_interval_hours: 72,
        hours_ago: 5,
    };
    let m = OrdersError::Duplicate(vec![w]).message();
    assert!(
        m.contains("Full blood count was requested 5 hours ago"),
        "{m}"
    );
    assert!(m.contains("by Dr Sanjay Mehta"), "{m}");
    assert!(m.contains("3 days"), "{m}");
}
