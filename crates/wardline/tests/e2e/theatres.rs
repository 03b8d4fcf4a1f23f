//! Theatres over real HTTP with real sessions of the demo trust, on both
//! backends: dr.watford plans a session in a demo theatre (and is refused a
//! second, overlapping one in another theatre: H-241), adds an inpatient
//! entry to the list, records the day's steps — knife to skin is refused
//! until the WHO checklist's time out is complete (H-240), leaving theatre
//! until sign out is — records the operation as first definitive treatment
//! (the pathway's clock stops on the day: H-243) and sees it in the
//! utilisation figures; the ward clerk may not tick the checklist (403).

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::common::{self, Env};
use crate::ui::{browser, location, page, post_form as post, sign_in};

const PW_TYPE: &str = "https://fhir.wardline.invalid/CodeSystem/episode-type";

fn ids(html: &str, key: &str) -> Vec<String> {
    html.match_indices(key)
        .map(|(i, _)| {
            let rest = &html[i + key.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

fn scenario(env: &Env) {
    let s = env.start_with(&["--demo"]);
    let root = s.root.clone();
    let dr = browser();
    sign_in(env, &root, &dr, "dr.watford");
    let sess: Value = dr
        .get(format!("{root}/auth/session"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let role = s.get(&format!(
        "PractitionerRole/{}",
        sess["position"]
            .as_str()
            .unwrap()
            .trim_start_matches("PractitionerRole/")
    ));
    let surgeon = role.body["practitioner"]["reference"]
        .as_str()
        .unwrap()
        .trim_start_matches("Practitioner/")
        .to_owned();
    let patient = common::entries(&s.get("Patient?_count=1").body)[0]["resource"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The patient's RTT pathway (clock started on 1 October), then the
    // entry on the inpatient list through the waiting-list page.
    let r = s.put(
        "EpisodeOfCare/e2e-pw",
        &json!({"resourceType": "EpisodeOfCare", "id": "e2e-pw", "status": "active",
            "identifier": [{"system": "https://fhir.wardline.invalid/rtt-pathway", "value": "E2ETHEATRES1"}],
            "type": [{"coding": [{"system": PW_TYPE, "code": "rtt"}]}],
            "patient": {"reference": format!("Patient/{patient}")},
            "period": {"start": "2026-10-01"},
            "extension": [
                {"url": "https://fhir.wardline.invalid/StructureDefinition/treatment-function",
                 "valueCoding": {"system": "https://fhir.wardline.invalid/CodeSystem/treatment-function", "code": "110"}},
                {"url": "https://fhir.wardline.invalid/StructureDefinition/rtt-event", "extension": [
                    {"url": "status", "valueCoding": {"system": "https://fhir.wardline.invalid/CodeSystem/rtt-status", "code": "10"}},
                    {"url": "date", "valueDate": "2026-10-01"},
                    {"url": "source", "valueReference": {"reference": format!("Patient/{patient}")}}]}]}),
    );
    assert!(r.is_success(), "{}: {}", env.name, r.brief());
    let r = post(
        &dr,
        &root,
        &format!("/ui/patients/{patient}/waiting-lists"),
        &[
            ("list", "inpatient"),
            ("pathway", "e2e-pw"),
            ("specialty", "110"),
            ("consultant", &surgeon),
            ("priority", "P3"),
            ("procedure", "52734007"),
            ("procedure-name", "Primary hip replacement"),
            ("decided", "2026-11-02"),
            ("note", ""),
        ],
    );
    assert_eq!(
        r.status(),
        303,
        "{}: {}",
        env.name,
        r.text().unwrap_or_default()
    );
    let entry = common::entries(
        &s.get(&format!(
            "ServiceRequest?subject=Patient/{patient}&intent=plan"
        ))
        .body,
    )
    .into_iter()
    .map(|e| e["resource"].clone())
    .find(|e| e["status"] == "active")
    .expect("the entry");
    let entry = entry["id"].as_str().unwrap().to_owned();

    // A session today in Theatre 1; the same surgeon refused in Theatre 2.
    let today = OffsetDateTime::now_utc().date().to_string();
    let plan = |theatre: &str, start: &str, end: &str| {
        post(
            &dr,
            &root,
            "/ui/theatres",
            &[
                ("theatre", theatre),
                ("specialty", "110"),
                ("surgeon", &surgeon),
                ("anaesthetist", ""),
                ("day", &today),
                ("start", start),
                ("end", end),
            ],
        )
    };
    let r = plan("watford-th1", "08:00", "12:00");
    assert_eq!(r.status(), 303, "{}", env.name);
    let session_url = location(&r);
    let r = plan("watford-th2", "10:00", "13:00");
    assert_eq!(r.status(), 200, "{}", env.name);
    let html = r.text().unwrap();
    assert!(
        html.contains("nhsuk-error-summary") && html.contains("two theatres at once"),
        "{}: {html}",
        env.name
    );

    // Added from the admitted waiting list.
    let list = page(&dr, &format!("{root}{session_url}"));
    assert!(
        list.contains(&format!("value=\"{entry}\"")),
        "{}: {list}",
        env.name
    );
    let sid = session_url
        .trim_start_matches("/ui/theatres/sessions/")
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let r = post(
        &dr,
        &root,
        &format!("/ui/theatres/sessions/{sid}/add"),
        &[("entry", &entry)],
    );
    assert_eq!(r.status(), 303, "{}", env.name);
    let list = page(&dr, &format!("{root}/ui/theatres/sessions/{sid}"));
    let case = ids(&list, "data-case=\"").pop().expect("the case");
    assert!(list.contains("default: no past operations"), "{}", env.name);
    let base = format!("/ui/theatres/cases/{case}");
    let step = |name: &str| post(&dr, &root, &format!("{base}/step"), &[("step", name)]);
    let tick = |part: &str, items: &[&str]| {
        let keys: Vec<String> = items.iter().map(|i| format!("item-{i}")).collect();
        let mut form: Vec<(&str, &str)> = vec![("part", part)];
        form.extend(keys.iter().map(|k| (k.as_str(), "yes")));
        post(&dr, &root, &format!("{base}/checklist"), &form)
    };
    let part_items = |p: &str| -> Vec<&'static str> {
        wardline_items()
            .into_iter()
            .filter(|i| i.starts_with(p))
            .collect()
    };
    assert_eq!(step("sent-for").status(), 303);
    assert_eq!(step("anaesthetic-room").status(), 303);
    // The ward clerk may not tick the checklist.
    let clerk = browser();
    sign_in(env, &root, &clerk, "clerk.watford");
    let r = post(
        &clerk,
        &root,
        &format!("{base}/checklist"),
        &[("part", "sign-in"), ("item-sign-in.identity", "yes")],
    );
    assert_eq!(r.status(), 403, "{}", env.name);
    assert_eq!(tick("sign-in", &part_items("sign-in.")).status(), 303);
    // Knife to skin before time out: refused, shown, not recorded.
    let r = step("knife-to-skin");
    assert_eq!(r.status(), 200, "{}", env.name);
    let html = r.text().unwrap();
    assert!(
        html.contains("nhsuk-error-summary") && html.contains("time out is not complete"),
        "{}: {html}",
        env.name
    );
    let a = s.get(&format!("Appointment/{case}")).body;
    assert!(!a.to_string().contains("knife-to-skin"), "{}", env.name);
    assert_eq!(tick("time-out", &part_items("time-out.")).status(), 303);
    assert_eq!(step("knife-to-skin").status(), 303);
    assert_eq!(step("closed").status(), 303);
    let r = step("recovery");
    assert!(
        r.text().unwrap().contains("sign out is not complete"),
        "{}",
        env.name
    );
    assert_eq!(tick("sign-out", &part_items("sign-out.")).status(), 303);
    assert_eq!(step("recovery").status(), 303);
    let r = post(
        &dr,
        &root,
        &format!("{base}/operation"),
        &[("definitive", "yes")],
    );
    assert_eq!(r.status(), 303, "{}", env.name);
    let pw = s.get("EpisodeOfCare/e2e-pw").body;
    assert_eq!(pw["status"], "finished", "{}: {pw}", env.name);
    let a = s.get(&format!("Appointment/{case}")).body;
    let knife = a["extension"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["extension"].as_array().cloned().unwrap_or_default())
        .find(|e| e["url"] == "knife-to-skin")
        .expect("knife to skin recorded");
    let knife_day = &knife["valueDateTime"].as_str().unwrap()[..10];
    assert_eq!(pw["period"]["end"], knife_day, "{}", env.name);
    assert!(pw.to_string().contains("\"code\":\"30\""), "{}", env.name);
    assert_eq!(
        s.get(&format!("ServiceRequest/{entry}")).body["status"],
        "completed"
    );
    let c = page(&dr, &format!("{root}{base}"));
    assert!(c.contains("operation-recorded"), "{}", env.name);
    let u = page(&dr, &format!("{root}/ui/theatres/utilisation"));
    assert!(
        u.contains("data-testid=\"figure-row\"") && u.contains("data-testid=\"chart\""),
        "{}",
        env.name
    );
}

fn wardline_items() -> Vec<&'static str> {
    wardline_workflow::theatres::ITEMS
        .iter()
        .map(|i| i.1)
        .collect()
}

#[test]
fn theatre_list_who_checklist_and_operation_over_http() {
    scenario(&Env::sqlite());
    if let Some(pg) = Env::postgres() {
        scenario(&pg);
    }
}
