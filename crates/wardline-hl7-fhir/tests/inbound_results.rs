//! Issue 16 on the inbound side, against a real store:
//! * ORU^R01 strict matching — a result is filed to a patient only when
//!   PID-3 names one with certainty and its order is that patient's;
//!   otherwise it is kept unmatched (the worklist's shape), never to a best
//!   guess, and no Patient is ever made from a result;
//! * ORL^O22 / ORR^O02 — the filler's replies to Wardline's orders.

use serde_json::{Value, json};
use wardline_core::Trusted;
use wardline_hl7::{Message, MessageBuilder, Separators};
use wardline_hl7_fhir::inbound::Applied;
use wardline_hl7_fhir::{MapError, MappingConfig};
use wardline_workflow::results::unmatched;

mod support;
use support::TestRecord;

const NHS_A: &str = "9434765919";
const NHS_B: &str = "9434765870";
const WL: &str = "https://fhir.wardline.invalid";

fn apply(r: &TestRecord, text: &str) -> Result<Applied, MapError> {
    let m = Message::parse(text).expect("test message parses");
    r.apply(&m, &MappingConfig::default())
}

fn ok(r: &TestRecord, text: &str) -> Applied {
    apply(r, text).unwrap_or_else(|e| panic!("{e:?} for\n{}", text.replace('\r', "\n")))
}

fn save(r: &TestRecord, v: Value) -> String {
    r.svc
        .transact(&Trusted::operator("test"), |tx| tx.save(v).map(|s| s.id))
        .expect("fixture saves")
}

fn patient(r: &TestRecord, nhs: &str, hospital: &str, dob: &str) -> String {
    save(
        r,
        json!({"resourceType": "Patient",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs},
                           {"system": format!("{WL}/Id/rwg-mr"), "value": hospital}],
            "name": [{"family": "SMITH", "given": ["Jane"]}], "birthDate": dob}),
    )
}

fn order(r: &TestRecord, patient: &str, placer: &str) -> String {
    save(
        r,
        json!({"resourceType": "Practitioner", "id": "doc",
            "name": [{"family": "House", "given": ["Gregory"]}]}),
    );
    save(
        r,
        json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
            "identifier": [{"system": format!("{WL}/Id/placer-order"), "value": placer}],
            "requisition": {"system": format!("{WL}/Id/requisition"), "value": "R0000001"},
            "code": {"text": "Full blood count"},
            "requester": {"reference": "Practitioner/doc"},
            "subject": {"reference": format!("Patient/{patient}")}}),
    )
}

fn oru(ctrl: &str, pid3: &str, dob: &str, placer: &str, filler: &str, status: &str) -> String {
    [
        format!("MSH|^~\\&|LAB|RWG|WARDLINE|RWG|20261123120000||ORU^R01^ORU_R01|{ctrl}|P|2.5.1"),
        format!("PID|1||{pid3}||SMITH^Jane||{dob}|F"),
        format!("ORC|RE|{placer}|{filler}"),
        format!("OBR|1|{placer}|{filler}|26604007^Full blood count^SCT|||20261123110000|||||||||||||||20261123115000||HM|{status}"),
        "OBX|1|NM|718-7^Haemoglobin^LN||62|g/L^g/L^UCUM|115-165|LL|||F".into(),
    ]
    .join("\r")
        + "\r"
}

fn report(r: &TestRecord) -> Value {
    let all = r.all("DiagnosticReport");
    assert_eq!(all.len(), 1, "{all:#?}");
    all.into_iter().next().expect("one")
}

fn is_unmatched(dr: &Value) -> bool {
    dr["meta"]["tag"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t["system"] == unmatched::TAG_SYSTEM))
}

fn ext<'a>(dr: &'a Value, url: &str) -> Vec<&'a Value> {
    dr["extension"]
        .as_array()
        .map(|e| e.iter().filter(|e| e["url"] == url).collect())
        .unwrap_or_default()
}

fn reason(dr: &Value) -> String {
    ext(dr, unmatched::UNMATCHED_REASON_EXT)
        .first()
        .and_then(|e| e["valueString"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_result_for_a_known_patient_and_their_order_is_filed_to_both() {
    let r = TestRecord::new();
    let p = patient(&r, NHS_A, "H1", "1980-02-14");
    let sr = order(&r, &p, "R0000001-1");
    let a = ok(
        &r,
        &oru(
            "1",
            &format!("{NHS_A}^^^NHS^NH"),
            "19800214",
            "R0000001-1",
            "L1",
            "F",
        ),
    );
    assert_eq!(a.patient_id.as_deref(), Some(p.as_str()));
    let dr = report(&r);
    assert!(!is_unmatched(&dr), "{dr}");
    assert_eq!(dr["subject"]["reference"], format!("Patient/{p}"));
    assert_eq!(
        dr["basedOn"][0]["reference"],
        format!("ServiceRequest/{sr}")
    );
    assert!(dr.get("contained").is_none() && dr.get("extension").is_none());
    let obs = &r.all("Observation")[0];
    assert_eq!(obs["subject"]["reference"], format!("Patient/{p}"));
    assert_eq!(obs["interpretation"][0]["coding"][0]["code"], "LL");
    assert_eq!(r.count("Patient"), 1);
}

#[test]
fn an_unknown_patient_is_never_created_and_the_result_waits_unmatched() {
    let r = TestRecord::new();
    let a = ok(
        &r,
        &oru(
            "1",
            &format!("{NHS_A}^^^NHS^NH~H77^^^RWG^MR"),
            "19800214",
            "R0000001-1",
            "L1",
            "F",
        ),
    );
    assert_eq!(a.patient_id, None);
    assert_eq!(r.count("Patient"), 0, "no Patient from a result");
    let dr = report(&r);
    assert!(is_unmatched(&dr), "{dr}");
    assert!(dr.get("subject").is_none() && dr.get("basedOn").is_none());
    assert!(reason(&dr).contains(&format!("no patient with NHS number {NHS_A}")));
    // What the sender said, kept.
    let c = &dr["contained"][0];
    assert_eq!(c["id"], unmatched::REPORTED_PATIENT_ID);
    assert_eq!(c["identifier"][0]["value"], NHS_A);
    assert_eq!(c["identifier"][1]["value"], "H77");
    assert_eq!(c["birthDate"], "1980-02-14");
    assert_eq!(c["name"][0]["family"], "SMITH");
    assert_eq!(
        ext(&dr, unmatched::REPORTED_PATIENT_EXT)[0]["valueReference"]["reference"],
        "#reported-patient"
    );
    let orders: Vec<&str> = ext(&dr, unmatched::REPORTED_ORDER_EXT)
        .iter()
        .map(|e| e["valueIdentifier"]["value"].as_str().unwrap())
        .collect();
    assert_eq!(orders, ["R0000001-1", "L1"]);
    let obs = &r.all("Observation")[0];
    assert!(obs.get("subject").is_none(), "{obs}");
}

#[test]
fn uncertain_patients_and_wrong_orders_are_not_guessed() {
    // (pid3, dob, placer, words of the reason)
    let r = TestRecord::new();
    let a = patient(&r, NHS_A, "H1", "1980-02-14");
    let b = patient(&r, NHS_B, "H2", "1975-05-05");
    order(&r, &a, "R0000001-1");
    order(&r, &b, "R0000002-1");
    // A third record carrying A's hospital number (a keying error).
    patient(&r, "9434765838", "H1", "1990-12-31");
    let cases = [
        // A number two patients carry.
        (
            "H1^^^RWG^MR".to_owned(),
            "19800214",
            "R0000001-1",
            "carried by more than one patient",
        ),
        // B's order with A's numbers.
        (
            format!("{NHS_A}^^^NHS^NH"),
            "19800214",
            "R0000002-1",
            "is not an order of",
        ),
        // A's NHS number but B's hospital number.
        (
            format!("{NHS_A}^^^NHS^NH~H2^^^RWG^MR"),
            "19800214",
            "R0000001-1",
            "different patients",
        ),
        // The right number, another date of birth.
        (
            format!("{NHS_A}^^^NHS^NH"),
            "19800215",
            "R0000001-1",
            "date of birth",
        ),
        // A number without an assigning authority identifies no one.
        (
            "H1^^^^MR".to_owned(),
            "19800214",
            "R0000001-1",
            "no NHS number and no number of a named",
        ),
        // A known patient, no such order.
        (
            format!("{NHS_A}^^^NHS^NH"),
            "19800214",
            "R9999999-1",
            "no order with placer number R9999999-1",
        ),
    ];
    for (i, (pid3, dob, placer, words)) in cases.iter().enumerate() {
        let filler = format!("F{i}");
        let a = ok(&r, &oru(&format!("c{i}"), pid3, dob, placer, &filler, "F"));
        assert_eq!(a.patient_id, None, "case {i}");
        let dr = r
            .all("DiagnosticReport")
            .into_iter()
            .find(|d| d["identifier"][0]["value"] == filler.as_str())
            .expect("stored");
        assert!(is_unmatched(&dr), "case {i}: {dr}");
        assert!(dr.get("subject").is_none(), "case {i}");
        assert!(reason(&dr).contains(words), "case {i}: {}", reason(&dr));
    }
    assert_eq!(r.count("Patient"), 3);
}

#[test]
fn an_unmatched_result_is_filed_when_a_later_message_can_be_matched() {
    let r = TestRecord::new();
    let pid3 = format!("{NHS_A}^^^NHS^NH");
    ok(&r, &oru("1", &pid3, "19800214", "R0000001-1", "L1", "P"));
    assert!(is_unmatched(&report(&r)));
    let p = patient(&r, NHS_A, "H1", "1980-02-14");
    let sr = order(&r, &p, "R0000001-1");
    ok(&r, &oru("2", &pid3, "19800214", "R0000001-1", "L1", "F"));
    let dr = report(&r);
    assert!(!is_unmatched(&dr), "{dr}");
    assert_eq!(dr["status"], "final");
    assert_eq!(
        dr["basedOn"][0]["reference"],
        format!("ServiceRequest/{sr}")
    );
    assert!(dr.get("contained").is_none() && dr.get("extension").is_none());
    assert!(dr["meta"].get("tag").is_none(), "{dr}");
}

#[test]
fn a_filed_result_stays_filed_and_another_patient_named_is_refused() {
    let r = TestRecord::new();
    let a = patient(&r, NHS_A, "H1", "1980-02-14");
    patient(&r, NHS_B, "H2", "1975-05-05");
    order(&r, &a, "R0000001-1");
    ok(
        &r,
        &oru(
            "1",
            &format!("{NHS_A}^^^NHS^NH"),
            "19800214",
            "R0000001-1",
            "L1",
            "P",
        ),
    );
    // The final names no number Wardline knows: the filing stands.
    ok(
        &r,
        &oru("2", "X1^^^^PI", "19800214", "R0000001-1", "L1", "F"),
    );
    let dr = report(&r);
    assert_eq!(dr["subject"]["reference"], format!("Patient/{a}"));
    assert_eq!(dr["status"], "final");
    // A correction naming patient B is refused with the reason.
    let e = apply(
        &r,
        &oru(
            "3",
            &format!("{NHS_B}^^^NHS^NH"),
            "19750505",
            "R0000001-1",
            "L1",
            "C",
        ),
    )
    .unwrap_err();
    assert_eq!(
        (e.code, e.location.as_deref()),
        (207, Some("PID-3")),
        "{e:?}"
    );
    assert!(
        e.text.contains(&format!("filed to Patient/{a}")),
        "{}",
        e.text
    );
    assert_eq!(report(&r)["status"], "final", "nothing changed");
}

#[test]
fn a_filed_result_reaches_the_requesters_inbox_and_the_status_rules_refuse_naming_obr_25() {
    let r = TestRecord::new();
    let p = patient(&r, NHS_A, "H1", "1980-02-14");
    order(&r, &p, "R0000001-1");
    let pid3 = format!("{NHS_A}^^^NHS^NH");
    ok(&r, &oru("1", &pid3, "19800214", "R0000001-1", "L1", "F"));
    let dr = report(&r);
    let inbox = wardline_workflow::results::inbox(
        &r.svc,
        &Trusted::operator("test"),
        "Practitioner/doc",
        1,
    )
    .expect("inbox");
    assert_eq!(inbox.items.len(), 1, "{:?}", inbox.items);
    let item = &inbox.items[0];
    assert_eq!(item.report, dr["id"].as_str().unwrap());
    assert_eq!(item.patient, p);
    assert_eq!(
        item.flag,
        wardline_workflow::results::Flag::Critical,
        "LL is critical"
    );
    // The same message again: no change, nobody told twice.
    ok(&r, &oru("2", &pid3, "19800214", "R0000001-1", "L1", "F"));
    assert_eq!(r.count("Task"), 1);
    // Final again with another value: refused, naming OBR-25.
    let changed = oru("3", &pid3, "19800214", "R0000001-1", "L1", "F").replace("||62|", "||64|");
    let e = apply(&r, &changed).unwrap_err();
    assert_eq!(
        (e.code, e.location.as_deref()),
        (207, Some("OBR-25")),
        "{e:?}"
    );
    assert!(e.text.contains("correction"), "{}", e.text);
    // Sent as a correction it is accepted, and the requester is told again.
    let corrected = oru("4", &pid3, "19800214", "R0000001-1", "L1", "C").replace("||62|", "||64|");
    ok(&r, &corrected);
    assert_eq!(report(&r)["status"], "corrected");
    let open_tasks = r
        .all("Task")
        .into_iter()
        .filter(|t| t["status"] == "requested")
        .count();
    assert_eq!(open_tasks, 1, "one open inbox item per report");
    // A final never goes back to preliminary.
    let e = apply(&r, &oru("5", &pid3, "19800214", "R0000001-1", "L1", "P")).unwrap_err();
    assert_eq!(e.location.as_deref(), Some("OBR-25"), "{e:?}");
}

// ---------------------------------------------------------------- replies

fn reply(ty: &str, ctrl: &str, orcs: &[String]) -> String {
    let (structure, msa) = if ty == "ORL^O22" {
        ("ORL_O22", "AA")
    } else {
        ("ORR_O02", "AA")
    };
    let mut s = vec![
        format!(
            "MSH|^~\\&|LABSYS|RWG|WARDLINE|RWG|20261123120000||{ty}^{structure}|{ctrl}|P|2.5.1"
        ),
        format!("MSA|{msa}|W1"),
    ];
    s.extend(orcs.iter().cloned());
    s.join("\r") + "\r"
}

fn sr(r: &TestRecord, id: &str) -> Value {
    r.get("ServiceRequest", id).expect("order")
}

#[test]
fn an_accepted_order_gets_the_filler_number_and_stays_active() {
    let r = TestRecord::new();
    let p = patient(&r, NHS_A, "H1", "1980-02-14");
    let id = order(&r, &p, "R0000001-1");
    let a = ok(
        &r,
        &reply("ORL^O22", "1", &["ORC|OK|R0000001-1|L123".into()]),
    );
    assert_eq!(a.patient_id.as_deref(), Some(p.as_str()));
    let s = sr(&r, &id);
    assert_eq!(s["status"], "active");
    assert!(
        s["identifier"]
            .as_array()
            .unwrap()
            .iter()
            .any(
                |i| i["system"] == format!("{WL}/Id/filler-order").as_str() && i["value"] == "L123"
            ),
        "{s}"
    );
    let version = s["meta"]["versionId"].clone();
    ok(
        &r,
        &reply("ORL^O22", "2", &["ORC|OK|R0000001-1|L123".into()]),
    );
    assert_eq!(
        sr(&r, &id)["meta"]["versionId"],
        version,
        "a resend changes nothing"
    );
    // The result that follows finds the order by the filler number alone.
    ok(
        &r,
        &oru(
            "9",
            &format!("{NHS_A}^^^NHS^NH"),
            "19800214",
            "",
            "L123",
            "F",
        ),
    );
    assert_eq!(
        report(&r)["basedOn"][0]["reference"],
        format!("ServiceRequest/{id}")
    );
}

#[test]
fn refused_and_cancelled_orders_follow_the_lifecycle_with_the_reason() {
    let r = TestRecord::new();
    let p = patient(&r, NHS_A, "H1", "1980-02-14");
    let a = order(&r, &p, "R0000001-1");
    let b = order(&r, &p, "R0000001-2");
    let c = order(&r, &p, "R0000001-3");
    ok(
        &r,
        &reply(
            "ORR^O02",
            "1",
            &[
                "ORC|UA|R0000001-1||||||||||||||^Sample haemolysed".into(),
                "ORC|OC|R0000001-2".into(),
                "NTE|1||Test withdrawn from the repertoire".into(),
                "ORC|UC|R0000001-3".into(),
            ],
        ),
    );
    let sa = sr(&r, &a);
    assert_eq!(sa["status"], "revoked");
    let note = sa["note"][0]["text"].as_str().unwrap();
    assert!(
        note.contains("LABSYS could not accept the order (UA): Sample haemolysed"),
        "{note}"
    );
    let sb = sr(&r, &b);
    assert_eq!(sb["status"], "revoked");
    assert!(
        sb["note"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Test withdrawn")
    );
    let sc = sr(&r, &c);
    assert_eq!(sc["status"], "active", "UC changes no status");
    assert!(
        sc["note"][0]["text"]
            .as_str()
            .unwrap()
            .contains("could not cancel")
    );
    // Cancelled as requested, again: no change, no second note.
    ok(&r, &reply("ORR^O02", "2", &["ORC|CR|R0000001-2".into()]));
    assert_eq!(sr(&r, &b)["note"].as_array().unwrap().len(), 1);
}

#[test]
fn replies_that_cannot_apply_are_refused_naming_the_field() {
    let r = TestRecord::new();
    let p = patient(&r, NHS_A, "H1", "1980-02-14");
    let id = order(&r, &p, "R0000001-1");
    let e = apply(&r, &reply("ORL^O22", "1", &["ORC|OK|NOPE-1".into()])).unwrap_err();
    assert_eq!(
        (e.code, e.location.as_deref()),
        (204, Some("ORC-2")),
        "{e:?}"
    );
    let e = apply(&r, &reply("ORL^O22", "2", &["ORC|ZZ|R0000001-1".into()])).unwrap_err();
    assert_eq!(
        (e.code, e.location.as_deref()),
        (103, Some("ORC-1")),
        "{e:?}"
    );
    let e = apply(&r, &reply("ORL^O22", "3", &[])).unwrap_err();
    assert_eq!(e.code, 101, "{e:?}");
    // A completed order is not cancelled by a late refusal: the lifecycle.
    let mut s = sr(&r, &id);
    s["status"] = json!("completed");
    save(&r, s);
    let e = apply(&r, &reply("ORL^O22", "4", &["ORC|UA|R0000001-1".into()])).unwrap_err();
    assert_eq!(
        (e.code, e.location.as_deref()),
        (207, Some("ORC-1")),
        "{e:?}"
    );
    assert!(e.text.contains("completed"), "{}", e.text);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
    /// Whatever the filler writes as its reason (delimiters, escapes,
    /// non-ASCII), it reaches the order's note unchanged, and whatever
    /// ORC-1 says, only OK/NA/UA/CR/OC/UC apply.
    #[test]
    fn reply_reasons_and_codes(reason in "[ -~é£]{1,40}", code in "[A-Za-z]{2}") {
        let reason = reason.trim().to_owned();
        proptest::prop_assume!(!reason.is_empty());
        let r = TestRecord::new();
        let p = patient(&r, NHS_A, "H1", "1980-02-14");
        let id = order(&r, &p, "R0000001-1");
        let mut b = MessageBuilder::new(Separators::default());
        b.msh().set(3, "LABSYS").set(7, "20261123120000").set_component(9, 1, "ORL")
            .set_component(9, 2, "O22").set(10, "P1").set(11, "P").set(12, "2.5.1");
        b.segment("MSA").set(1, "AA").set(2, "W1");
        b.segment("ORC").set(1, &code).set(2, "R0000001-1").set_component(16, 2, &reason);
        let out = apply(&r, &b.encode());
        let known = ["OK", "NA", "UA", "CR", "OC", "UC"].contains(&code.to_ascii_uppercase().as_str());
        proptest::prop_assert_eq!(out.is_ok(), known, "{:?}", out);
        let s = sr(&r, &id);
        match code.to_ascii_uppercase().as_str() {
            "UA" | "CR" | "OC" | "UC" => {
                let note = s["note"][0]["text"].as_str().unwrap_or_default().to_owned();
                proptest::prop_assert!(note.ends_with(&format!(": {reason}")), "{}", note);
            }
            _ => proptest::prop_assert!(s.get("note").is_none()),
        }
    }
}
