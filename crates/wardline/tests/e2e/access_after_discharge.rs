//! Issue 18, access after discharge, through the real server on both
//! backends (`serve --demo`): dr.watford, whose position covers the
//! Watford site, discharges a Watford in-patient over the ADT form and
//! *then* starts, writes and signs the discharge summary and reads its PDF
//! (the recent-encounter relationship, default 14 days); the chart and the
//! summary still open for them after the discharge, and each view and PDF
//! is in the audit trail naming the summary. nurse.w1 (a ward the patient
//! was never on) is refused throughout. When the stay ended longer ago than
//! the window (the encounter's `period` moved back 20 days over FHIR: the
//! server's clock is the system's), dr.watford is refused too (403).
//!
//! Consent on the same server: a patient who dissented from sharing is
//! warned about on the draft summary, and after signing the send run
//! withholds the delivery (stopped, a review Task, the dashboard's
//! withheld list).

use reqwest::blocking::Client;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::common::{Env, Server};
use crate::transfers_chain::discharge_and_sign;
use crate::ui::{browser, sign_in};

fn status(c: &Client, url: &str) -> u16 {
    c.get(url).send().unwrap().status().as_u16()
}

/// Whether the chart opens with the record shown: refused (403, while a
/// stay is open) or shown with every entry withheld (the `no-access`
/// notice) is no access.
fn sees_chart(c: &Client, url: &str) -> bool {
    let r = c.get(url).send().unwrap();
    match r.status().as_u16() {
        200 => !r.text().unwrap().contains(r#"data-testid="no-access""#),
        403 => false,
        other => panic!("GET {url}: {other}"),
    }
}

/// A Watford in-patient on a ward other than ward 1 (nurse.w1's), with a
/// registered GP practice and no discharge summary yet, other than `not`:
/// (patient, encounter).
fn inpatient_off_ward_1(s: &Server, not: Option<&str>) -> (String, String) {
    s.search_all("Encounter?status=in-progress&class=IMP&_count=200")
        .into_iter()
        .find_map(|e| {
            let locs: Vec<&str> = e["location"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l["location"]["reference"].as_str())
                .collect();
            let ok = locs.iter().any(|l| l.starts_with("Location/watford-"))
                && !locs
                    .iter()
                    .any(|l| l.starts_with("Location/watford-w1-") || *l == "Location/watford-w1");
            let id = e["id"].as_str()?.to_owned();
            let patient = e["subject"]["reference"].as_str()?;
            let has_gp = s.get(patient).body["generalPractitioner"][0]["reference"]
                .as_str()
                .is_some_and(|r| r.starts_with("Organization/"));
            let ok = ok
                && has_gp
                && Some(id.as_str()) != not
                && s.count(&format!(
                    "Composition?encounter=Encounter/{id}&type=http://snomed.info/sct|373942005"
                )) == 0;
            ok.then(|| {
                (
                    e["subject"]["reference"]
                        .as_str()
                        .unwrap()
                        .trim_start_matches("Patient/")
                        .to_owned(),
                    id,
                )
            })
        })
        .expect("a Watford in-patient off ward 1")
}

/// The patient's audit events of `subtype` naming `entity`, read by a
/// privacy officer.
fn audited(s: &Server, ig: &Client, patient: &str, subtype: &str, entity: &str) -> usize {
    let b: Value = ig
        .get(format!(
            "{}/AuditEvent?patient={patient}&subtype={subtype}&_count=100",
            s.base
        ))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(b["resourceType"], "Bundle", "{b}");
    b["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            e["resource"]["entity"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|x| x["what"]["reference"] == entity)
        })
        .count()
}

/// Moves a finished stay back so that it ended `days` days ago (over FHIR,
/// as the test suite's client): the server's clock is the system's, so this
/// is how a test puts a discharge outside the recent-encounter window.
pub(crate) fn end_stay_days_ago(s: &Server, enc: &str, days: i64) {
    let fmt = |t: OffsetDateTime| t.format(&Rfc3339).unwrap();
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let (start, end) = (
        fmt(now - Duration::days(days + 5)),
        fmt(now - Duration::days(days)),
    );
    let mut e = s.get(&format!("Encounter/{enc}")).body;
    assert_eq!(e["status"], "finished", "{e}");
    e["period"] = json!({"start": start, "end": end});
    for l in e["location"].as_array_mut().into_iter().flatten() {
        l["period"] = json!({"start": start, "end": end});
    }
    let r = s.put(&format!("Encounter/{enc}"), &e);
    assert!(r.is_success(), "{}", r.brief());
}

fn scenario(env: &Env) {
    let s = env.start_with(&["--demo"]);
    let root = s.root.clone();
    let (patient, enc) = inpatient_off_ward_1(&s, None);
    let chart = format!("{root}/ui/patients/{patient}");
    let doctor = browser();
    sign_in(env, &root, &doctor, "dr.watford");
    let nurse = browser();
    sign_in(env, &root, &nurse, "nurse.w1");
    assert!(sees_chart(&doctor, &chart), "{}: on the ward", env.name);
    assert!(!sees_chart(&nurse, &chart), "{}: unrelated nurse", env.name);

    // Discharged first, then the summary: written, signed, its PDF read.
    let (id, pdf) = discharge_and_sign(&s, env, &doctor, &enc);
    assert!(pdf.starts_with(b"%PDF"), "{}", env.name);
    assert_eq!(
        s.get(&format!("Encounter/{enc}")).body["status"],
        "finished",
        "{}",
        env.name
    );
    let summary = format!("{root}/ui/discharge-summaries/{id}");
    assert!(sees_chart(&doctor, &chart), "{}: chart after", env.name);
    assert_eq!(status(&doctor, &summary), 200, "{}: summary", env.name);
    assert_eq!(
        status(&doctor, &format!("{summary}/pdf")),
        200,
        "{}: PDF",
        env.name
    );
    assert!(!sees_chart(&nurse, &chart), "{}", env.name);
    assert_eq!(status(&nurse, &summary), 403, "{}", env.name);
    // Each view and PDF is audited, naming the summary.
    let what = format!("Composition/{id}");
    let ig = env.privacy_officer();
    assert!(
        audited(&s, &ig, &patient, "discharge-summary-view", &what) >= 1,
        "{}: view audited",
        env.name
    );
    assert!(
        audited(&s, &ig, &patient, "discharge-summary-pdf", &what) >= 2,
        "{}: both PDF reads audited",
        env.name
    );

    consent_is_honoured(&s, env, &doctor, &enc);

    // The stay ended 20 days ago: past the window, access has ended.
    end_stay_days_ago(&s, &enc, 20);
    assert!(
        !sees_chart(&doctor, &chart),
        "{}: after the window",
        env.name
    );
    assert_eq!(status(&doctor, &summary), 403, "{}", env.name);
}

/// A second in-patient dissented from sharing their record outside the
/// trust (a Consent written over FHIR): the summary page warns before
/// signing; after signing, the send run (`wardline transfers send`)
/// withholds the delivery — stopped with the reason, a review Task — and
/// the transfers dashboard shows it as withheld.
fn consent_is_honoured(s: &Server, env: &Env, doctor: &Client, not: &str) {
    let root = s.root.as_str();
    let (patient, enc) = inpatient_off_ward_1(s, Some(not));
    let consent = wardline_core::consent::resource(
        &patient,
        &wardline_core::consent::Decision::NoSharing(Vec::new()),
        OffsetDateTime::now_utc().unix_timestamp() * 1000 - 60_000,
    );
    let r = s.post("Consent", &consent);
    assert!(r.is_success(), "{}: {}", env.name, r.brief());
    // Started (before the discharge), the draft warns.
    let r = crate::transfers_chain::post(
        doctor,
        root,
        &format!("/ui/encounters/{enc}/discharge-summary"),
        &[],
    );
    assert_eq!(r.status(), 303, "{}: start", env.name);
    let id = r.headers()["location"]
        .to_str()
        .unwrap()
        .trim_start_matches("/ui/discharge-summaries/")
        .trim_end_matches("/edit")
        .to_owned();
    let html = crate::transfers_chain::page(doctor, &format!("{root}/ui/discharge-summaries/{id}"));
    assert!(
        html.contains(r#"data-testid="consent-warning""#)
            && html.contains("dissented from sharing"),
        "{}: no consent warning: {html}",
        env.name
    );
    let (signed, _) = discharge_and_sign(s, env, doctor, &enc);
    assert_eq!(signed, id, "{}", env.name);
    let now = OffsetDateTime::now_utc().format(&Rfc3339).unwrap();
    env.cli(&["transfers", "send", "--now", &now]);
    let comms = s.search_all(&format!("Communication?encounter=Encounter/{enc}"));
    let c = comms
        .iter()
        .find(|c| c["payload"][0]["contentReference"]["reference"].is_string())
        .expect("the delivery");
    assert_eq!(c["status"], "stopped", "{}: {c}", env.name);
    assert!(
        c["statusReason"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("dissented from sharing")),
        "{}: {c}",
        env.name
    );
    assert!(c.get("sent").is_none(), "{}: {c}", env.name);
    let tasks = s.search_all(&format!(
        "Task?patient=Patient/{patient}&code=https://fhir.wardline.invalid/CodeSystem/task|delivery-withheld"
    ));
    assert_eq!(tasks.len(), 1, "{}: {tasks:?}", env.name);
    let dash = crate::transfers_chain::page(doctor, &format!("{root}/ui/transfers"));
    assert!(
        dash.contains(r#"data-testid="withheld-count""#),
        "{}: the dashboard shows no withheld delivery: {dash}",
        env.name
    );
}

#[test]
fn the_treating_doctor_signs_after_discharge_until_the_window_closes() {
    scenario(&Env::sqlite());
    if let Some(pg) = Env::postgres() {
        scenario(&pg);
    }
}
