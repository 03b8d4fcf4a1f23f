//! The Emergency Department over real HTTP with real sessions of the demo
//! trust, on both backends: the ward clerk records an ambulance arrival
//! (refused without its incident reference: 422 naming the field) and an
//! unknown male registered on arrival; the clerk may not triage (403);
//! dr.watford triages (a missing category is a 422 error summary),
//! streams, refers to cardiology and admits through ADT — the patient
//! leaves the board (H-262); a plain REST write removing the triage
//! category is refused (H-263); the ECDS CSV extract holds the attendance.

use serde_json::Value;

use crate::common::{self, Env};
use crate::ui::{browser, location, page, post_form as post, sign_in};

fn scenario(env: &Env) {
    let s = env.start_with(&["--demo"]);
    let root = s.root.clone();
    let clerk = browser();
    sign_in(env, &root, &clerk, "clerk.watford");
    let dr = browser();
    sign_in(env, &root, &dr, "dr.watford");
    let r = s.post(
        "Patient",
        &serde_json::json!({"resourceType": "Patient", "name": [{"family": "Edwards", "given": ["Eve"]}],
            "gender": "female", "birthDate": "1970-05-05"}),
    );
    assert!(r.is_success(), "{}: {}", env.name, r.brief());
    let patient = r.body["id"].as_str().unwrap().to_owned();

    let arrive = |extra: &[(&str, &str)]| {
        let mut f = vec![
            ("site", "watford"),
            ("mode", "1048031000000100"),
            ("arrived", ""),
            ("handover", ""),
            ("complaint", "29857009"),
        ];
        f.extend_from_slice(extra);
        post(&clerk, &root, "/ui/ed/arrive", &f)
    };
    let r = arrive(&[("patient", &patient), ("ambulance_incident", "")]);
    assert_eq!(r.status(), 422, "{}", env.name);
    let html = r.text().unwrap();
    assert!(html.contains("href=\"#ambulance_incident\""), "{html}");
    let r = arrive(&[("patient", &patient), ("ambulance_incident", "INC-77")]);
    assert_eq!(
        r.status(),
        303,
        "{}: {}",
        env.name,
        r.text().unwrap_or_default()
    );
    let at = location(&r);
    let id = at
        .trim_start_matches("/ui/ed/attendances/")
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    // An unknown male, registered on arrival with an estimated age.
    let r = post(
        &clerk,
        &root,
        "/ui/ed/arrive",
        &[
            ("site", "watford"),
            ("patient", ""),
            ("unknown_gender", "male"),
            ("estimated_age", "40"),
            ("mode", "1048061000000105"),
            ("arrived", ""),
            ("handover", ""),
            ("ambulance_incident", ""),
            ("complaint", ""),
        ],
    );
    assert_eq!(
        r.status(),
        303,
        "{}: {}",
        env.name,
        r.text().unwrap_or_default()
    );

    let base = format!("/ui/ed/attendances/{id}");
    let r = post(
        &clerk,
        &root,
        &format!("{base}/triage"),
        &[("category", "2"), ("discriminator", "Pain")],
    );
    assert_eq!(r.status(), 403, "{}", env.name);
    let r = post(
        &dr,
        &root,
        &format!("{base}/triage"),
        &[("discriminator", "Pain")],
    );
    assert_eq!(r.status(), 422, "{}", env.name);
    assert!(r.text().unwrap().contains("href=\"#category\""));
    for (action, form) in [
        (
            "triage",
            vec![("category", "2"), ("discriminator", "Cardiac pain")],
        ),
        ("stream", vec![("stream", "majors")]),
        ("see", vec![]),
        ("refer", vec![("specialty", "320"), ("note", "")]),
    ] {
        let r = post(&dr, &root, &format!("{base}/{action}"), &form);
        assert_eq!(
            r.status(),
            303,
            "{} {action}: {}",
            env.name,
            r.text().unwrap_or_default()
        );
    }
    let board = page(&dr, &format!("{root}/ui/ed?site=watford"));
    assert!(
        board.contains(&format!("data-attendance=\"{id}\"")),
        "{}",
        env.name
    );
    assert!(
        board.contains("EDWARDS, Eve") && board.contains("Cardiology"),
        "{board}"
    );
    let live = page(&dr, &format!("{root}/ui/ed?site=watford&fragment=board"));
    assert!(live.contains(&format!("data-attendance=\"{id}\"")) && !live.contains("<html"));

    // REST: the triage category cannot be removed.
    let mut enc: Value = s.get(&format!("Encounter/{id}")).body;
    enc.as_object_mut().unwrap().remove("priority");
    let r = s.put(&format!("Encounter/{id}"), &enc);
    assert_eq!(r.status, 422, "{}: {}", env.name, r.brief());
    assert!(
        r.body.to_string().contains("Encounter.priority"),
        "{}",
        r.brief()
    );

    // Decision to admit into a free bed.
    let detail = page(&dr, &format!("{root}{base}"));
    let i = detail
        .find("<select class=\"nhsuk-select\" id=\"bed\"")
        .expect("bed list");
    let opts = &detail[i..];
    let k = opts.find("<option value=\"").unwrap();
    let rest = &opts[k + 15..];
    let rest = &rest[rest.find("<option value=\"").unwrap() + 15..];
    let bed = &rest[..rest.find('"').unwrap()];
    let r = post(
        &dr,
        &root,
        &format!("{base}/admit"),
        &[
            ("bed", bed),
            ("admit_specialty", "320"),
            ("placement_reason", "Only bed"),
        ],
    );
    assert_eq!(
        r.status(),
        303,
        "{}: {}",
        env.name,
        r.text().unwrap_or_default()
    );
    let board = page(&dr, &format!("{root}/ui/ed?site=watford"));
    assert!(
        !board.contains(&format!("data-attendance=\"{id}\"")),
        "{}",
        env.name
    );
    let enc = s.get(&format!("Encounter/{id}")).body;
    assert_eq!(enc["status"], "finished");
    let adm = common::entries(
        &s.get(&format!(
            "Encounter?patient=Patient/{patient}&class=IMP&status=in-progress"
        ))
        .body,
    );
    assert_eq!(adm.len(), 1, "{}", env.name);

    let csv = page(&dr, &format!("{root}/ui/ed/export?format=csv"));
    assert!(
        csv.starts_with("attendance_id,nhs_number,site,arrival,arrival_mode"),
        "{csv}"
    );
    let line = csv
        .lines()
        .find(|l| l.starts_with(&id))
        .expect("the attendance");
    assert!(
        line.contains("1048031000000100") && line.contains("INC-77") && line.contains("306706006"),
        "{line}"
    );
}

#[test]
fn ed_arrival_triage_referral_and_admission_over_http() {
    scenario(&Env::sqlite());
    if let Some(pg) = Env::postgres() {
        scenario(&pg);
    }
}
