//! Clinical alerts (issue 20) over real HTTP, with real sessions of the
//! demo trust, on both backends:
//!
//! * dr.watford records a CP-IS flag for an in-patient through the alerts
//!   page; it is in the banner of the chart, the drug chart, the notes and
//!   the clinic letters pages; a form without the local authority's ODS
//!   code comes back 400 with an error summary linking to the field;
//! * the ward clerk's banner says alerts are hidden from them, never none;
//! * a section 5(2) recorded now is in the banner with its expiry; `wardline
//!   alerts remind --now` 59 hours on raises nothing, 61 hours on raises the
//!   reminder Task (owner the ward, due the expiry), shown on the alerts page;
//! * a REST write of a detention with a wrong expiry is refused (422).

use serde_json::Value;

use crate::common::{self, Env};
use crate::ui::{browser, page, post_form, sign_in};

fn first_inpatient(doctor: &reqwest::blocking::Client, root: &str, env: &Env) -> String {
    let board = page(doctor, &format!("{root}/ui/beds/watford-w1"));
    let key = "href=\"/ui/patients/";
    board
        .match_indices(key)
        .map(|(i, _)| {
            let rest = &board[i + key.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .find(|id| id != "new" && !id.contains(['/', '?']))
        .unwrap_or_else(|| panic!("{}: no patient on the board", env.name))
}

fn scenario(env: &Env) {
    let s = env.start_with(&["--demo"]);
    let root = s.root.clone();
    let doctor = browser();
    sign_in(env, &root, &doctor, "dr.watford");
    let patient = first_inpatient(&doctor, &root, env);
    let base = format!("/ui/patients/{patient}/alerts");

    // A CP-IS flag without the ODS code: the error summary links to the field.
    let r = post_form(
        &doctor,
        &root,
        &format!("{base}/cpis"),
        &[
            ("plan_type", "CPP"),
            ("start", "2026-01-10"),
            ("la_name", "Hertfordshire County Council"),
            ("la_phone", "0300 123 4043"),
        ],
    );
    assert_eq!(r.status(), 400, "{}", env.name);
    let html = r.text().unwrap();
    assert!(
        html.contains("nhsuk-error-summary") && html.contains("href=\"#la_ods\""),
        "{}: {html}",
        env.name
    );

    let r = post_form(
        &doctor,
        &root,
        &format!("{base}/cpis"),
        &[
            ("plan_type", "CPP"),
            ("start", "2026-01-10"),
            ("la_name", "Hertfordshire County Council"),
            ("la_ods", "A1B2C"),
            ("la_phone", "0300 123 4043"),
        ],
    );
    assert_eq!(
        r.status(),
        303,
        "{}: {}",
        env.name,
        r.text().unwrap_or_default()
    );
    for path in [
        format!("/ui/patients/{patient}"),
        format!("/ui/patients/{patient}/medicines"),
        format!("/ui/patients/{patient}/notes"),
        format!("/ui/patients/{patient}/clinic-letters"),
        format!("/ui/patients/{patient}/referrals"),
        format!("/ui/patients/{patient}/pathways"),
        base.clone(),
    ] {
        let html = page(&doctor, &format!("{root}{path}"));
        assert!(
            html.contains("data-testid=\"banner-cpis\"") && html.contains("Child protection plan"),
            "{}: no CP-IS flag in the banner of {path}",
            env.name
        );
    }
    let clerk = browser();
    sign_in(env, &root, &clerk, "clerk.watford");
    let html = page(&clerk, &format!("{root}/ui/patients/{patient}"));
    assert!(html.contains("banner-flags-hidden"), "{}: {html}", env.name);
    assert!(!html.contains("banner-cpis"), "{}", env.name);

    // Section 5(2) from now; the reminder when the clock passes 60 hours.
    let r = post_form(
        &doctor,
        &root,
        &format!("{base}/mha"),
        &[
            ("section", "5(2)"),
            ("start", ""),
            ("ward", "Location/watford-w1"),
        ],
    );
    assert_eq!(
        r.status(),
        303,
        "{}: {}",
        env.name,
        r.text().unwrap_or_default()
    );
    let html = page(&doctor, &format!("{root}/ui/patients/{patient}"));
    assert!(
        html.contains("data-section=\"Section 5(2)\""),
        "{}",
        env.name
    );
    let flags = common::entries(&s.get(&format!("Flag?patient=Patient/{patient}")).body);
    let mha: Value = flags
        .into_iter()
        .map(|e| e["resource"].clone())
        .find(|f| f["code"]["coding"][0]["code"] == "mha" && f["status"] == "active")
        .expect("the detention");
    let start = mha["period"]["start"].as_str().unwrap().to_owned();
    let start_ms = wardline_fhir::datetime::parse_range(&start).unwrap().0;
    let at = |h: i64| wardline_fhir::datetime::format_instant(start_ms + h * 3_600_000);
    let mut args = vec!["alerts", "remind", "--now"];
    let t59 = at(59);
    args.push(&t59);
    let out = env.cli(&args);
    assert!(out.contains("no reminders due"), "{}: {out}", env.name);
    let t61 = at(61);
    let out = env.cli(&["alerts", "remind", "--now", &t61]);
    let task = out
        .lines()
        .find_map(|l| l.strip_prefix("reminder: Task/"))
        .unwrap_or_else(|| panic!("{}: {out}", env.name))
        .trim()
        .to_owned();
    let t = s.get(&format!("Task/{task}")).body;
    assert_eq!(
        t["owner"]["reference"], "Location/watford-w1",
        "{}",
        env.name
    );
    assert_eq!(t["code"]["coding"][0]["code"], "mha-expiry");
    assert_eq!(
        wardline_fhir::datetime::parse_range(t["restriction"]["period"]["end"].as_str().unwrap())
            .unwrap()
            .0,
        start_ms + 72 * 3_600_000,
        "{}",
        env.name
    );
    let html = page(&doctor, &format!("{root}{base}"));
    assert!(
        html.contains(&format!("data-task=\"{task}\"")),
        "{}",
        env.name
    );

    // A REST write with a wrong expiry is refused.
    let mut wrong = mha.clone();
    for sub in wrong["extension"][0]["extension"].as_array_mut().unwrap() {
        if sub["url"] == "expiry" {
            sub["valueDateTime"] = Value::String(at(96));
        }
    }
    let r = s.put(&format!("Flag/{}", mha["id"].as_str().unwrap()), &wrong);
    assert_eq!(r.status, 422, "{}: {}", env.name, r.brief());
}

#[test]
fn cpis_in_every_banner_and_mha_reminders_over_http() {
    scenario(&Env::sqlite());
    if let Some(pg) = Env::postgres() {
        scenario(&pg);
    }
}
