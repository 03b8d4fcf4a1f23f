//! Configurable forms (issue 20): forms defined and checked (linkIds,
//! enableWhen, choices from value sets), versions frozen once in use,
//! responses checked against their version on every channel (enableWhen,
//! required, repeats, types), answers extracted as Observations in the same
//! transaction, and KPI windows at their edges by the injected clock — on
//! SQLite and, with `WARDLINE_TEST_PG_URL`, PostgreSQL.

mod support;

use std::collections::HashMap;

use serde_json::{Value, json};
use support::{Backend, as_role, backends, get, put, rest};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use wardline_auth::rbac::Role;
use wardline_core::{FhirService, Method};
use wardline_workflow::forms::define::{self, NewItem};
use wardline_workflow::forms::respond::{self, Submission};
use wardline_workflow::forms::{FORMS_BASE, FormsError, KPI_EXT, kpi};

/// Admissions on Thursday 3 December 2026 at 08:00.
const ADMITTED: OffsetDateTime = datetime!(2026-12-03 08:00 UTC);

fn seed(svc: &FhirService) {
    for (w, name) in [("ward-a", "Ash Ward"), ("ward-b", "Birch Ward")] {
        put(
            svc,
            json!({"resourceType": "Location", "id": w, "name": name, "status": "active",
                "physicalType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": "wa"}]}}),
        );
        put(
            svc,
            json!({"resourceType": "Location", "id": format!("{w}-bed"), "name": "Bed 1", "status": "active",
                "physicalType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": "bd"}]},
                "partOf": {"reference": format!("Location/{w}")}}),
        );
    }
    for n in 1..=6 {
        put(
            svc,
            json!({"resourceType": "Patient", "id": format!("p{n}"),
                "name": [{"family": format!("Patient{n}"), "given": ["Test"]}]}),
        );
    }
    put(
        svc,
        json!({"resourceType": "ValueSet", "id": "mobility", "status": "active",
            "url": "https://fhir.wardline.invalid/ValueSet/mobility",
            "compose": {"include": [{"system": "https://fhir.wardline.invalid/CodeSystem/mobility",
                "concept": [{"code": "independent", "display": "Independent"},
                            {"code": "aid", "display": "Walks with an aid"},
                            {"code": "bed", "display": "Bed-bound"}]}]}}),
    );
}

fn stores() -> Vec<Backend> {
    backends(
        "forms",
        |s| wardline_workflow::with_rules(wardline_workflow::with_operations(s)),
        seed,
    )
}

fn admin() -> support::AsRole {
    as_role(Role::SystemAdmin, "admin1")
}

fn nurse() -> support::AsRole {
    as_role(Role::StaffNurse, "nurse1")
}

/// An inpatient admission as ADT writes it, on `ward` (`ward-a`, `ward-b`).
fn admit(svc: &FhirService, id: &str, patient: &str, ward: &str, at: OffsetDateTime, status: &str) {
    put(
        svc,
        json!({"resourceType": "Encounter", "id": id, "status": status,
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": format!("Patient/{patient}")},
            "period": {"start": wardline_workflow::orders::request::fhir_time(at)},
            "location": [{"location": {"reference": format!("Location/{ward}-bed")}, "status": "active"}]}),
    );
}

/// The falls risk form: a required history question, a follow-up enabled
/// by it, mobility from a value set (extracted), repeating risk factors, a
/// score extracted, and a question enabled by either of two answers.
fn falls_form() -> Value {
    json!({"resourceType": "Questionnaire", "url": format!("{FORMS_BASE}/falls-risk-test"),
    "version": "1", "status": "draft", "title": "Falls risk (test)",
    "item": [
        {"linkId": "fallen", "text": "Has the patient fallen in the last year?", "type": "boolean", "required": true},
        {"linkId": "falls", "text": "How many falls?", "type": "integer", "required": true,
         "enableWhen": [{"question": "fallen", "operator": "=", "answerBoolean": true}]},
        {"linkId": "mobility", "text": "Mobility", "type": "choice", "required": true,
         "answerValueSet": "https://fhir.wardline.invalid/ValueSet/mobility",
         "code": [{"system": "http://snomed.info/sct", "code": "301438001", "display": "Ability to mobilise"}],
         "extension": [{"url": "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-observationExtract", "valueBoolean": true}]},
        {"linkId": "aid", "text": "Which aid?", "type": "string", "required": true,
         "enableWhen": [{"question": "mobility", "operator": "=", "answerCoding": {"code": "aid"}},
                        {"question": "falls", "operator": ">=", "answerInteger": 3}],
         "enableBehavior": "any"},
        {"linkId": "factors", "text": "Risk factors", "type": "string", "repeats": true},
        {"linkId": "score", "text": "Falls risk score", "type": "integer", "required": true,
         "code": [{"system": "https://fhir.wardline.invalid/CodeSystem/forms", "code": "falls-score", "display": "Falls risk score"}],
         "extension": [{"url": "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-observationExtract", "valueBoolean": true}]}
    ]})
}

/// Imports and activates the falls form; returns its id.
fn active_falls(svc: &FhirService) -> String {
    let id = define::import(svc, &admin(), &falls_form().to_string(), ADMITTED).unwrap();
    define::activate(svc, &admin(), &id, ADMITTED).unwrap();
    id
}

fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn submit(
    svc: &FhirService,
    form: &str,
    patient: &str,
    pairs: &[(&str, &str)],
    complete: bool,
    at: OffsetDateTime,
) -> Result<String, FormsError> {
    respond::save(
        svc,
        &nurse(),
        &Submission {
            form: form.into(),
            patient: patient.into(),
            response: None,
            fields: fields(pairs),
            complete,
        },
        at,
    )
}

fn derived(svc: &FhirService, qr: &str) -> Vec<Value> {
    svc.search_as(
        &support::op(),
        "Observation",
        &[("derived-from", format!("QuestionnaireResponse/{qr}"))],
    )
    .unwrap()
    .resources
}

#[test]
fn a_form_is_checked_when_it_is_defined() {
    for b in stores() {
        let svc = &b.svc;
        // enableWhen pointing forward, at a missing item, with the wrong type.
        let mut bad = falls_form();
        bad["item"][1]["enableWhen"][0]["question"] = json!("score");
        let e = define::import(svc, &admin(), &bad.to_string(), ADMITTED).unwrap_err();
        assert_eq!(e.field(), Some("file"), "{}", b.name);
        assert!(
            e.message().contains("falls") && e.message().contains("not a question before it"),
            "{}: {e}",
            b.name
        );
        let mut bad = falls_form();
        bad["item"][1]["enableWhen"][0] =
            json!({"question": "fallen", "operator": "=", "answerInteger": 1});
        let e = define::import(svc, &admin(), &bad.to_string(), ADMITTED).unwrap_err();
        assert!(e.message().contains("does not fit"), "{}: {e}", b.name);
        // Duplicate linkIds; a choice without options; a value set not in the store.
        let mut bad = falls_form();
        bad["item"][5]["linkId"] = json!("fallen");
        let e = define::import(svc, &admin(), &bad.to_string(), ADMITTED).unwrap_err();
        assert!(e.message().contains("used twice"), "{}: {e}", b.name);
        let mut bad = falls_form();
        bad["item"][2]["answerValueSet"] = json!("https://fhir.wardline.invalid/ValueSet/none");
        let e = define::import(svc, &admin(), &bad.to_string(), ADMITTED).unwrap_err();
        assert!(
            e.message().contains("mobility") && e.message().contains("no ValueSet"),
            "{}: {e}",
            b.name
        );
        // The same checks on plain REST: 422 naming the item.
        let mut bad = falls_form();
        bad["item"][2]
            .as_object_mut()
            .unwrap()
            .remove("answerValueSet");
        let (s, oo) = rest(svc, Method::Post, &["Questionnaire"], Some(bad));
        assert_eq!(s, 422, "{}: {oo}", b.name);
        assert!(oo.to_string().contains("mobility"), "{}: {oo}", b.name);
        // A good one over REST; a nurse may not define forms.
        let (s, _) = rest(svc, Method::Post, &["Questionnaire"], Some(falls_form()));
        assert_eq!(s, 201, "{}", b.name);
        let e = define::create(svc, &nurse(), "Nurse's form", ADMITTED).unwrap_err();
        assert_eq!(e.status(), 403, "{}", b.name);
        // Defined item by item in the UI's way.
        let id = define::create(svc, &admin(), "Pressure ulcer check", ADMITTED).unwrap();
        define::add_item(
            svc,
            &admin(),
            &id,
            &NewItem {
                link_id: "skin".into(),
                text: "Skin intact?".into(),
                kind: "boolean".into(),
                required: true,
                ..NewItem::default()
            },
        )
        .unwrap();
        let e = define::add_item(
            svc,
            &admin(),
            &id,
            &NewItem {
                link_id: "where".into(),
                text: "Where?".into(),
                kind: "string".into(),
                enable_question: Some("nowhere".into()),
                enable_answer: "no".into(),
                ..NewItem::default()
            },
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("enable_question"), "{}: {e}", b.name);
        define::add_item(
            svc,
            &admin(),
            &id,
            &NewItem {
                link_id: "where".into(),
                text: "Where?".into(),
                kind: "string".into(),
                enable_question: Some("skin".into()),
                enable_answer: "no".into(),
                ..NewItem::default()
            },
        )
        .unwrap();
        let e = define::add_item(
            svc,
            &admin(),
            &id,
            &NewItem {
                link_id: "grade".into(),
                text: "Grade".into(),
                kind: "choice".into(),
                ..NewItem::default()
            },
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("grade"), "{}: {e}", b.name);
        assert!(e.message().contains("without options"), "{}: {e}", b.name);
        define::activate(svc, &admin(), &id, ADMITTED).unwrap();
        let listed = define::list(svc, &nurse(), true).unwrap();
        assert!(
            listed.iter().any(|f| f.id == id && f.status == "active"),
            "{}",
            b.name
        );
    }
}

#[test]
fn enable_when_required_and_repeats_are_enforced_on_every_channel() {
    for b in stores() {
        let svc = &b.svc;
        let form = active_falls(svc);
        let at = ADMITTED + Duration::hours(1);
        // Required: "fallen" unanswered, named.
        let e = submit(
            svc,
            &form,
            "p1",
            &[("mobility", "independent"), ("score", "2")],
            true,
            at,
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("fallen"), "{}: {e}", b.name);
        // Enabled by yes: "falls" is then required.
        let e = submit(
            svc,
            &form,
            "p1",
            &[
                ("fallen", "yes"),
                ("mobility", "independent"),
                ("score", "2"),
            ],
            true,
            at,
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("falls"), "{}: {e}", b.name);
        // enableBehavior any: 3 falls (not the aid) enables "aid".
        let e = submit(
            svc,
            &form,
            "p1",
            &[
                ("fallen", "yes"),
                ("falls", "3"),
                ("mobility", "independent"),
                ("score", "2"),
            ],
            true,
            at,
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("aid"), "{}: {e}", b.name);
        // Not enabled: an answer to "falls" given with "no" is dropped by the page.
        let qr = submit(
            svc,
            &form,
            "p1",
            &[
                ("fallen", "no"),
                ("falls", "4"),
                ("mobility", "independent"),
                ("score", "1"),
            ],
            true,
            at,
        )
        .unwrap();
        let saved = get(svc, "QuestionnaireResponse", &qr);
        assert!(
            !saved.to_string().contains("\"falls\""),
            "{}: {saved}",
            b.name
        );
        assert_eq!(
            saved["questionnaire"],
            format!("{FORMS_BASE}/falls-risk-test|1")
        );
        assert_eq!(saved["author"]["reference"], "Practitioner/nurse1");
        // A draft may leave required questions; types are still checked.
        submit(svc, &form, "p2", &[("fallen", "yes")], false, at).unwrap();
        let e = submit(
            svc,
            &form,
            "p2",
            &[("fallen", "yes"), ("falls", "two")],
            false,
            at,
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("falls"), "{}: {e}", b.name);
        // Repeats: several risk factors kept.
        let qr = submit(
            svc,
            &form,
            "p3",
            &[
                ("fallen", "no"),
                ("mobility", "aid"),
                ("aid", "Frame"),
                ("factors", "Sedation"),
                ("factors.1", "Poor eyesight"),
                ("score", "3"),
            ],
            true,
            at,
        )
        .unwrap();
        let saved = get(svc, "QuestionnaireResponse", &qr);
        let factors = saved["item"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["linkId"] == "factors")
            .unwrap();
        assert_eq!(factors["answer"].as_array().unwrap().len(), 2, "{}", b.name);
        // Plain REST: the rule refuses naming the item.
        let base = json!({"resourceType": "QuestionnaireResponse", "status": "completed",
            "questionnaire": format!("{FORMS_BASE}/falls-risk-test|1"),
            "subject": {"reference": "Patient/p4"}, "authored": "2026-12-03T09:00:00Z"});
        let mut r = base.clone();
        r["item"] = json!([{"linkId": "fallen", "answer": [{"valueBoolean": false}]},
            {"linkId": "mobility", "answer": [{"valueCoding": {"system": "https://fhir.wardline.invalid/CodeSystem/mobility", "code": "independent"}}]}]);
        let (s, oo) = rest(svc, Method::Post, &["QuestionnaireResponse"], Some(r));
        assert_eq!(s, 422, "{}: {oo}", b.name);
        assert!(oo.to_string().contains("score"), "{}: {oo}", b.name);
        // Two answers to a question that does not repeat.
        let mut r = base.clone();
        r["item"] = json!([{"linkId": "fallen", "answer": [{"valueBoolean": false}, {"valueBoolean": true}]}]);
        r["status"] = json!("in-progress");
        let (s, oo) = rest(svc, Method::Post, &["QuestionnaireResponse"], Some(r));
        assert_eq!(s, 422, "{}: {oo}", b.name);
        assert!(
            oo.to_string().contains("takes one answer"),
            "{}: {oo}",
            b.name
        );
        // An answer to a question not enabled; a choice not in the value set.
        let mut r = base.clone();
        r["status"] = json!("in-progress");
        r["item"] = json!([{"linkId": "fallen", "answer": [{"valueBoolean": false}]},
            {"linkId": "falls", "answer": [{"valueInteger": 2}]}]);
        let (s, oo) = rest(svc, Method::Post, &["QuestionnaireResponse"], Some(r));
        assert_eq!(s, 422, "{}: {oo}", b.name);
        assert!(oo.to_string().contains("not asked"), "{}: {oo}", b.name);
        let mut r = base.clone();
        r["status"] = json!("in-progress");
        r["item"] =
            json!([{"linkId": "mobility", "answer": [{"valueCoding": {"code": "flying"}}]}]);
        let (s, oo) = rest(svc, Method::Post, &["QuestionnaireResponse"], Some(r));
        assert_eq!(s, 422, "{}: {oo}", b.name);
        // A complete, valid one over REST is accepted.
        let mut r = base.clone();
        r["item"] = json!([{"linkId": "fallen", "answer": [{"valueBoolean": false}]},
            {"linkId": "mobility", "answer": [{"valueCoding": {"system": "https://fhir.wardline.invalid/CodeSystem/mobility", "code": "independent"}}]},
            {"linkId": "score", "answer": [{"valueInteger": 0}]}]);
        let (s, oo) = rest(svc, Method::Post, &["QuestionnaireResponse"], Some(r));
        assert_eq!(s, 201, "{}: {oo}", b.name);
    }
}

#[test]
fn versions_are_frozen_and_responses_keep_theirs() {
    for b in stores() {
        let svc = &b.svc;
        let v1 = active_falls(svc);
        let at = ADMITTED + Duration::hours(1);
        let qr = submit(
            svc,
            &v1,
            "p1",
            &[("fallen", "no"), ("mobility", "bed"), ("score", "4")],
            true,
            at,
        )
        .unwrap();
        // The active version cannot be edited, in the UI or over REST.
        let e = define::add_item(
            svc,
            &admin(),
            &v1,
            &NewItem {
                link_id: "x".into(),
                text: "X".into(),
                kind: "string".into(),
                ..NewItem::default()
            },
        )
        .unwrap_err();
        assert_eq!(e.status(), 409, "{}: {e}", b.name);
        let mut changed = get(svc, "Questionnaire", &v1);
        changed["item"][0]["required"] = json!(false);
        let (s, oo) = rest(svc, Method::Put, &["Questionnaire", &v1], Some(changed));
        assert_eq!(s, 409, "{}: {oo}", b.name);
        // A new version: edited, activated; v1 retired, the response still v1.
        let v2 = define::new_version(svc, &admin(), &v1, at).unwrap();
        define::remove_item(svc, &admin(), &v2, "factors").unwrap();
        define::activate(svc, &admin(), &v2, at).unwrap();
        assert_eq!(get(svc, "Questionnaire", &v1)["status"], "retired");
        assert_eq!(get(svc, "Questionnaire", &v2)["version"], "2");
        let saved = get(svc, "QuestionnaireResponse", &qr);
        assert_eq!(
            saved["questionnaire"],
            format!("{FORMS_BASE}/falls-risk-test|1")
        );
        let (form, _) = respond::view(svc, &nurse(), &qr).unwrap();
        assert!(
            form.all().iter().any(|i| i.link_id == "factors"),
            "{}: read with v1",
            b.name
        );
        // The response's version cannot be swapped; a new one to v1 is refused.
        let mut moved = saved.clone();
        moved["questionnaire"] = json!(format!("{FORMS_BASE}/falls-risk-test|2"));
        let (s, oo) = rest(
            svc,
            Method::Put,
            &["QuestionnaireResponse", &qr],
            Some(moved),
        );
        assert_eq!(s, 409, "{}: {oo}", b.name);
        let e = submit(svc, &v1, "p2", &[("fallen", "no")], false, at).unwrap_err();
        assert_eq!(e.status(), 409, "{}: {e}", b.name);
        // A completed response does not go back to draft.
        let mut back = saved.clone();
        back["status"] = json!("in-progress");
        let (s, _) = rest(
            svc,
            Method::Put,
            &["QuestionnaireResponse", &qr],
            Some(back),
        );
        assert_eq!(s, 409, "{}", b.name);
    }
}

#[test]
fn completed_answers_marked_for_extraction_become_observations() {
    for b in stores() {
        let svc = &b.svc;
        let form = active_falls(svc);
        admit(svc, "e1", "p1", "ward-a", ADMITTED, "in-progress");
        let at = ADMITTED + Duration::hours(2);
        // A draft extracts nothing.
        let draft = submit(
            svc,
            &form,
            "p1",
            &[("fallen", "no"), ("mobility", "aid"), ("aid", "Stick")],
            false,
            at,
        )
        .unwrap();
        assert!(derived(svc, &draft).is_empty(), "{}", b.name);
        let qr = submit(
            svc,
            &form,
            "p1",
            &[
                ("fallen", "no"),
                ("mobility", "aid"),
                ("aid", "Stick"),
                ("score", "7"),
            ],
            true,
            at,
        )
        .unwrap();
        let obs = derived(svc, &qr);
        assert_eq!(obs.len(), 2, "{}: {obs:?}", b.name);
        let score = obs
            .iter()
            .find(|o| o["code"]["coding"][0]["code"] == "falls-score")
            .unwrap();
        assert_eq!(score["valueInteger"], 7, "{}", b.name);
        assert_eq!(score["effectiveDateTime"], "2026-12-03T10:00:00Z");
        assert_eq!(score["subject"]["reference"], "Patient/p1");
        assert_eq!(
            score["encounter"]["reference"], "Encounter/e1",
            "{}: the admission",
            b.name
        );
        let mob = obs
            .iter()
            .find(|o| o["code"]["coding"][0]["code"] == "301438001")
            .unwrap();
        assert_eq!(mob["valueCodeableConcept"]["coding"][0]["code"], "aid");
        assert_eq!(mob["status"], "final");
        // Over REST too, in the same transaction; entered-in-error withdraws them.
        let r = json!({"resourceType": "QuestionnaireResponse", "status": "completed",
            "questionnaire": format!("{FORMS_BASE}/falls-risk-test|1"),
            "subject": {"reference": "Patient/p2"}, "authored": "2026-12-03T09:00:00Z",
            "item": [{"linkId": "fallen", "answer": [{"valueBoolean": false}]},
                {"linkId": "mobility", "answer": [{"valueCoding": {"system": "https://fhir.wardline.invalid/CodeSystem/mobility", "code": "bed"}}]},
                {"linkId": "score", "answer": [{"valueInteger": 5}]}]});
        let (s, created) = rest(svc, Method::Post, &["QuestionnaireResponse"], Some(r));
        assert_eq!(s, 201, "{}: {created}", b.name);
        let id = created["id"].as_str().unwrap().to_owned();
        assert_eq!(derived(svc, &id).len(), 2, "{}", b.name);
        let mut wrong = get(svc, "QuestionnaireResponse", &id);
        wrong["status"] = json!("entered-in-error");
        let (s, _) = rest(
            svc,
            Method::Put,
            &["QuestionnaireResponse", &id],
            Some(wrong),
        );
        assert_eq!(s, 200, "{}", b.name);
        assert!(
            derived(svc, &id)
                .iter()
                .all(|o| o["status"] == "entered-in-error"),
            "{}",
            b.name
        );
        // Amended with a new score: the old observation withdrawn, the new one final.
        let mut amended = get(svc, "QuestionnaireResponse", &qr);
        amended["status"] = json!("amended");
        let items = amended["item"].as_array_mut().unwrap();
        let score_item = items.iter_mut().find(|i| i["linkId"] == "score").unwrap();
        score_item["answer"] = json!([{"valueInteger": 8}]);
        let (s, oo) = rest(
            svc,
            Method::Put,
            &["QuestionnaireResponse", &qr],
            Some(amended),
        );
        assert_eq!(s, 200, "{}: {oo}", b.name);
        let now: Vec<Value> = derived(svc, &qr)
            .into_iter()
            .filter(|o| o["status"] == "final")
            .collect();
        assert_eq!(now.len(), 2, "{}", b.name);
        assert!(now.iter().any(|o| o["valueInteger"] == 8), "{}", b.name);
    }
}

fn falls_kpi(svc: &FhirService) {
    put(
        svc,
        json!({"resourceType": "Measure", "id": "kpi-falls", "status": "active",
            "title": "Falls risk assessed within 6 hours of admission",
            "extension": [{"url": KPI_EXT, "extension": [
                {"url": "form", "valueCanonical": format!("{FORMS_BASE}/falls-risk-test")},
                {"url": "anchor", "valueCode": "admission"},
                {"url": "window", "valueDuration": {"value": 6, "unit": "h", "system": "http://unitsofmeasure.org", "code": "h"}}]}]}),
    );
    put(
        svc,
        json!({"resourceType": "Measure", "id": "kpi-score", "status": "active",
            "title": "Falls score recorded within 14 hours of admission",
            "extension": [{"url": KPI_EXT, "extension": [
                {"url": "code", "valueCoding": {"system": "https://fhir.wardline.invalid/CodeSystem/forms", "code": "falls-score"}},
                {"url": "anchor", "valueCode": "admission"},
                {"url": "window", "valueDuration": {"value": 14, "unit": "h", "system": "http://unitsofmeasure.org", "code": "h"}}]}]}),
    );
}

#[test]
fn kpis_count_admissions_at_the_window_edges() {
    for b in stores() {
        let svc = &b.svc;
        let form = active_falls(svc);
        falls_kpi(svc);
        let done = [
            ("fallen", "no"),
            ("mobility", "independent"),
            ("score", "1"),
        ];
        // p1: exactly 6 h after admission (met); p2: 6 h and 1 s (missed);
        // p3: nothing yet (pending until 14:00, then missed); p4 on Birch
        // Ward at once (met); p5 admitted in error; p6 before the period.
        admit(svc, "e1", "p1", "ward-a", ADMITTED, "in-progress");
        admit(svc, "e2", "p2", "ward-a", ADMITTED, "in-progress");
        admit(svc, "e3", "p3", "ward-a", ADMITTED, "in-progress");
        admit(
            svc,
            "e4",
            "p4",
            "ward-b",
            ADMITTED + Duration::minutes(30),
            "in-progress",
        );
        admit(svc, "e5", "p5", "ward-b", ADMITTED, "entered-in-error");
        admit(
            svc,
            "e6",
            "p6",
            "ward-b",
            ADMITTED - Duration::days(2),
            "in-progress",
        );
        submit(svc, &form, "p1", &done, true, ADMITTED + Duration::hours(6)).unwrap();
        submit(
            svc,
            &form,
            "p2",
            &done,
            true,
            ADMITTED + Duration::hours(6) + Duration::seconds(1),
        )
        .unwrap();
        submit(svc, &form, "p4", &done, true, ADMITTED + Duration::hours(1)).unwrap();
        submit(svc, &form, "p5", &done, true, ADMITTED + Duration::hours(1)).unwrap();
        submit(svc, &form, "p6", &done, true, ADMITTED + Duration::hours(1)).unwrap();
        let from = datetime!(2026-12-03 00:00 UTC);
        let to = datetime!(2026-12-04 00:00 UTC);
        let figures = |now: OffsetDateTime| kpi::report(svc, &nurse(), from, to, now).unwrap();
        // At 13:59:59 p3's window is open: pending, not missed.
        let r = figures(ADMITTED + Duration::hours(6) - Duration::seconds(1));
        let falls = r.iter().find(|k| k.kpi.id == "kpi-falls").unwrap();
        assert_eq!(
            (falls.total.admissions, falls.total.met, falls.total.pending),
            (4, 2, 2),
            "{}: {:?}",
            b.name,
            falls.total
        );
        // At 14:00 (the edge) p2's and p3's windows are still open; a
        // second later both are missed.
        let r = figures(ADMITTED + Duration::hours(6));
        let falls = r.iter().find(|k| k.kpi.id == "kpi-falls").unwrap();
        assert_eq!((falls.total.met, falls.total.pending), (2, 2), "{}", b.name);
        let r = figures(ADMITTED + Duration::hours(6) + Duration::seconds(1));
        let falls = r.iter().find(|k| k.kpi.id == "kpi-falls").unwrap();
        assert_eq!(
            (falls.total.admissions, falls.total.met, falls.total.pending),
            (4, 2, 0),
            "{}",
            b.name
        );
        let ash = falls.wards.iter().find(|w| w.ward == "Ash Ward").unwrap();
        assert_eq!(
            (ash.admissions, ash.met, ash.percent()),
            (3, 1, Some(33)),
            "{}",
            b.name
        );
        let birch = falls.wards.iter().find(|w| w.ward == "Birch Ward").unwrap();
        assert_eq!(
            (birch.admissions, birch.met, birch.percent()),
            (1, 1, Some(100)),
            "{}: the admission in error and the earlier one not counted",
            b.name
        );
        // The extracted-code KPI (14 h) counts p2's late form too.
        let score = r.iter().find(|k| k.kpi.id == "kpi-score").unwrap();
        assert_eq!((score.total.met, score.total.pending), (3, 1), "{}", b.name);
        // A period that ends at 08:00 excludes the 08:00 admissions.
        let early =
            kpi::report(svc, &nurse(), from, ADMITTED, ADMITTED + Duration::days(1)).unwrap();
        let falls = early.iter().find(|k| k.kpi.id == "kpi-falls").unwrap();
        assert_eq!(falls.total.admissions, 0, "{}", b.name);
        // Someone who may not see encounters gets no figures.
        let e = kpi::report(svc, &as_role(Role::DataAnalyst, "x"), from, to, ADMITTED).unwrap_err();
        assert_eq!(e.status(), 403, "{}", b.name);
    }
}

#[test]
fn an_administrator_defines_and_retires_a_kpi() {
    for b in stores() {
        let svc = &b.svc;
        let form = active_falls(svc);
        let url = format!("{FORMS_BASE}/falls-risk-test");
        let now = ADMITTED + Duration::hours(2);
        let draft = |title: &str, form: &str, window: &str| kpi::KpiDraft {
            title: title.into(),
            form: form.into(),
            window_hours: window.into(),
        };
        // Each wrong field is named.
        for (d, field) in [
            (draft(" ", &url, "6"), "title"),
            (draft("Falls in 6 h", &url, "0"), "window"),
            (draft("Falls in 6 h", &url, "721"), "window"),
            (draft("Falls in 6 h", &url, "six"), "window"),
            (
                draft("Falls in 6 h", "https://elsewhere.invalid/form", "6"),
                "form",
            ),
            (draft("Falls in 6 h", "", "6"), "form"),
        ] {
            match kpi::define(svc, &admin(), &d, now) {
                Err(FormsError::Item(f, _)) => assert_eq!(f, field, "{}: {d:?}", b.name),
                other => panic!("{}: {d:?} gave {other:?}", b.name),
            }
        }
        // A nurse may not define one.
        let e = kpi::define(svc, &nurse(), &draft("Falls in 6 h", &url, "6"), now).unwrap_err();
        assert_eq!(e.status(), 403, "{}", b.name);
        let id = kpi::define(svc, &admin(), &draft("Falls in 6 h", &url, "6"), now).unwrap();
        // The same title twice is refused.
        match kpi::define(svc, &admin(), &draft("Falls in 6 h", &url, "8"), now) {
            Err(FormsError::Item(f, _)) => assert_eq!(f, "title", "{}", b.name),
            other => panic!("{}: {other:?}", b.name),
        }
        // It is reported, and counts a completion within its window.
        admit(svc, "e1", "p1", "ward-a", ADMITTED, "in-progress");
        submit(
            svc,
            &form,
            "p1",
            &[
                ("fallen", "no"),
                ("mobility", "independent"),
                ("score", "1"),
            ],
            true,
            ADMITTED + Duration::hours(1),
        )
        .unwrap();
        let from = datetime!(2026-12-03 00:00 UTC);
        let to = datetime!(2026-12-04 00:00 UTC);
        let r = kpi::report(svc, &nurse(), from, to, now).unwrap();
        let k = r
            .iter()
            .find(|k| k.kpi.id == id)
            .expect("the new KPI is reported");
        assert_eq!(k.kpi.window_hours, 6, "{}", b.name);
        assert_eq!((k.total.admissions, k.total.met), (1, 1), "{}", b.name);
        assert!(kpi::list(svc, &admin()).unwrap().iter().any(|k| k.id == id));
        // A nurse may not retire it; the administrator does, once.
        assert_eq!(
            kpi::retire(svc, &nurse(), &id, now).unwrap_err().status(),
            403
        );
        kpi::retire(svc, &admin(), &id, now).unwrap();
        assert_eq!(
            kpi::retire(svc, &admin(), &id, now).unwrap_err().status(),
            409
        );
        assert_eq!(
            kpi::retire(svc, &admin(), "nothing", now)
                .unwrap_err()
                .status(),
            404
        );
        let r = kpi::report(svc, &nurse(), from, to, now).unwrap();
        assert!(
            r.iter().all(|k| k.kpi.id != id),
            "{}: a retired KPI is not reported",
            b.name
        );
        assert_eq!(get(svc, "Measure", &id)["status"], "retired", "{}", b.name);
    }
}
