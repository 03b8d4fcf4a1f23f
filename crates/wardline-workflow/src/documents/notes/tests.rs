use proptest::prelude::*;
use serde_json::json;
use time::macros::datetime;

use super::coding::{parse_icd10, parse_opcs4, picklist};
use super::*;

const NOW: OffsetDateTime = datetime!(2026-12-03 09:00 UTC);

fn draft() -> Value {
    json!({"resourceType": "Composition", "status": "preliminary",
        "type": NoteKind::WardRound.concept(), "title": "Ward round note",
        "author": [{"reference": "Practitioner/dr1"}], "date": "2026-12-03T08:00:00Z",
        "section": sections(&[("plan".into(), "Home tomorrow".into())], &Value::Null).unwrap()})
}

#[test]
fn lifecycle_moves_forward_only() {
    assert!(allowed("preliminary", "final"));
    assert!(allowed("final", "amended"));
    assert!(allowed("amended", "amended"));
    assert!(allowed("final", "entered-in-error"));
    assert!(!allowed("final", "preliminary"));
    assert!(!allowed("amended", "final"));
    assert!(!allowed("entered-in-error", "final"));
    assert!(!allowed("preliminary", "amended"));
    assert!(!allowed("final", "bogus"));
}

#[test]
fn only_the_author_signs_and_an_amendment_needs_a_reason() {
    let mut n = draft();
    assert!(matches!(
        transition(&mut n, "final", Some("Practitioner/dr2"), None, NOW),
        Err(NotesError::Forbidden(_))
    ));
    transition(&mut n, "final", Some("Practitioner/dr1"), None, NOW).unwrap();
    assert_eq!(
        signature(&n),
        Some(("Practitioner/dr1".into(), "2026-12-03T09:00:00Z".into()))
    );
    assert!(matches!(
        transition(&mut n, "amended", Some("Practitioner/dr1"), Some("  "), NOW),
        Err(NotesError::Invalid("reason", _))
    ));
    assert!(matches!(
        transition(&mut n, "final", Some("Practitioner/dr1"), None, NOW),
        Err(NotesError::Conflict(_))
    ));
}

#[test]
fn the_rule_refuses_what_the_lifecycle_forbids() {
    let d = draft();
    // An unsigned final.
    let mut f = d.clone();
    f["status"] = json!("final");
    assert_eq!(
        lifecycle_refusal(&f, Some(&d), Some("Practitioner/dr1")).map(|r| r.0),
        Some("Composition.attester")
    );
    // Signed as someone else.
    let mut other = d.clone();
    other["status"] = json!("final");
    other["attester"] = json!([{"mode": "legal", "time": "2026-12-03T09:00:00Z", "party": {"reference": "Practitioner/dr1"}}]);
    assert!(lifecycle_refusal(&other, Some(&d), Some("Practitioner/dr2")).is_some());
    assert!(lifecycle_refusal(&other, Some(&d), Some("Practitioner/dr1")).is_none());
    // A signed note's content changed without amending.
    let mut changed = other.clone();
    changed["section"][0]["text"]["div"] = json!(narrative("Stay in"));
    assert_eq!(
        lifecycle_refusal(&changed, Some(&other), Some("Practitioner/dr1")).map(|r| r.0),
        Some("Composition.status")
    );
    // Going to amended without a reason, or by someone else.
    changed["status"] = json!("amended");
    assert!(lifecycle_refusal(&changed, Some(&other), Some("Practitioner/dr1")).is_some());
    changed["extension"] = json!([{"url": STATUS_REASON_EXT, "valueString": "typo"}]);
    assert!(lifecycle_refusal(&changed, Some(&other), Some("Practitioner/dr1")).is_none());
    assert!(lifecycle_refusal(&changed, Some(&other), Some("Practitioner/dr2")).is_some());
    // Back to preliminary.
    let mut back = other.clone();
    back["status"] = json!("preliminary");
    assert!(lifecycle_refusal(&back, Some(&other), None).is_some());
    // Unchanged final stays final.
    assert!(lifecycle_refusal(&other, Some(&other), Some("Practitioner/dr3")).is_none());
}

#[test]
fn headings_keep_their_fixed_order() {
    let s = sections(
        &[
            ("plan".into(), "P".into()),
            ("presenting-complaint".into(), "C".into()),
        ],
        &Value::Null,
    )
    .unwrap();
    assert_eq!(s[0]["title"], "Presenting complaint");
    assert_eq!(s[1]["title"], "Plan");
    assert!(sections(&[("plan".into(), "  ".into())], &Value::Null).is_err());
    assert!(sections(&[("nonsense".into(), "x".into())], &Value::Null).is_err());
}

#[test]
fn the_picking_list_loads_and_its_codes_parse() {
    let list = picklist();
    assert!(list.len() >= 10);
    for p in list {
        let parsed = match p.kind {
            coding::EntryKind::Diagnosis => parse_icd10(&p.code),
            coding::EntryKind::Procedure => parse_opcs4(&p.code),
        };
        assert_eq!(parsed.as_deref(), Ok(p.code.as_str()), "{}", p.display);
    }
}

#[test]
fn code_formats() {
    assert_eq!(parse_icd10("j189").as_deref(), Ok("J18.9"));
    assert_eq!(parse_icd10(" I64 ").as_deref(), Ok("I64"));
    assert_eq!(parse_icd10("I10X").as_deref(), Ok("I10.X"));
    assert!(parse_icd10("J18.").is_err());
    assert!(parse_icd10("18.9").is_err());
    assert!(parse_icd10("J1.9").is_err());
    assert_eq!(parse_opcs4("h019").as_deref(), Ok("H01.9"));
    assert!(parse_opcs4("I01.1").is_err());
    assert!(parse_opcs4("H01.19").is_err());
}

proptest! {
    #[test]
    fn any_well_formed_icd10_parses_to_itself(l in "[A-Z]", d in 0u8..100, f in proptest::option::of("[0-9X]")) {
        let code = match &f { Some(f) => format!("{l}{d:02}.{f}"), None => format!("{l}{d:02}") };
        prop_assert_eq!(parse_icd10(&code), Ok(code.clone()));
        prop_assert_eq!(parse_icd10(&code.to_lowercase().replace('.', "")), Ok(code));
    }

    #[test]
    fn any_well_formed_opcs4_parses_to_itself(l in "[A-HJ-NP-Z]", d in 0u8..100, f in proptest::option::of(0u8..10)) {
        let code = match f { Some(f) => format!("{l}{d:02}.{f}"), None => format!("{l}{d:02}") };
        prop_assert_eq!(parse_opcs4(&code), Ok(code));
    }

    #[test]
    fn parsers_never_panic_and_accept_only_the_format(s in "\\PC{0,12}") {
        if let Ok(c) = parse_icd10(&s) { prop_assert_eq!(parse_icd10(&c), Ok(c.clone())); prop_assert!(c.len() <= 7); }
        if let Ok(c) = parse_opcs4(&s) { prop_assert_eq!(parse_opcs4(&c), Ok(c.clone())); prop_assert!(c.len() <= 5); }
    }

    #[test]
    fn free_text_survives_the_narrative(paras in proptest::collection::vec("[a-zA-Z0-9<>&\"' .,;:-]{1,30}(\n[a-zA-Z0-9<>& .]{1,20})?", 1..4)) {
        let paras: Vec<String> = paras.iter().map(|p| p.trim().to_owned()).filter(|p| !p.is_empty() && p.lines().all(|l| !l.trim().is_empty())).collect();
        prop_assume!(!paras.is_empty());
        let text = paras.join("\n\n");
        prop_assert_eq!(free_text(&narrative(&text)), text);
    }
}
