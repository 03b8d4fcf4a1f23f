//! The drug round over real HTTP, with real sessions of the demo trust
//! (`serve --demo`, whose ward watford-w1 has a seeded drug round), on
//! both backends:
//!
//! * nurse.w1's `/ui/drug-round` is their ward's round: patients in its
//!   beds with doses due, and a late time-critical dose marked (H-120);
//! * a due dose recorded as not given with its reason shows on the
//!   patient's MAR with the reason (H-120); recording it again is refused
//!   (409, H-121);
//! * an as-required dose given an hour ago is refused with the time the
//!   next may be given (H-124);
//! * a controlled drug without a witness is refused; with nurse2.w1
//!   signing as witness it is recorded with both names (H-123);
//! * `wardline medicines escalate --now` (the clock moved) raises the late
//!   time-critical doses once (H-120).

use crate::common;
use crate::ui::{browser, csrf, sign_in};

use common::Env;
use reqwest::blocking::Client;

fn page(c: &Client, url: &str) -> String {
    let r = c.get(url).send().unwrap();
    assert_eq!(r.status(), 200, "GET {url}");
    r.text().unwrap()
}

fn post(c: &Client, root: &str, path: &str, form: &[(&str, &str)]) -> reqwest::blocking::Response {
    let token = csrf(root, c);
    let mut f: Vec<(&str, &str)> = vec![("csrf", token.as_str())];
    f.extend_from_slice(form);
    c.post(format!("{root}{path}")).form(&f).send().unwrap()
}

/// Every `href` of links with this `data-testid`.
fn links(html: &str, testid: &str) -> Vec<String> {
    let key = format!("data-testid=\"{testid}\"");
    html.match_indices(&key)
        .filter_map(|(i, _)| {
            let tag_start = html[..i].rfind('<')?;
            let tag = &html[tag_start..i];
            let h = tag.find("href=\"")?;
            let rest = &tag[h + 6..];
            Some(rest[..rest.find('"')?].replace("&amp;", "&"))
        })
        .collect()
}

fn hidden(html: &str, name: &str) -> String {
    let key = format!("name=\"{name}\" value=\"");
    let i = html.find(&key).unwrap_or_else(|| panic!("no {name}"));
    let rest = &html[i + key.len()..];
    rest[..rest.find('"').unwrap()].replace("&amp;", "&")
}

/// The form's action path for `/give` or `/omit` from a dose page URL.
fn action(dose_url: &str, what: &str) -> String {
    let path = dose_url.split('?').next().unwrap();
    path.replace("/dose", &format!("/{what}"))
}

fn scenario(env: &Env) {
    let s = env.start_with(&["--demo"]);
    let root = s.root.clone();
    let nurse = browser();
    sign_in(env, &root, &nurse, "nurse.w1");

    let r = nurse.get(format!("{root}/ui/drug-round")).send().unwrap();
    assert_eq!(r.status(), 303, "{}", env.name);
    assert_eq!(
        location(&r),
        "/ui/wards/watford-w1/drug-round",
        "{}",
        env.name
    );
    let round = page(&nurse, &format!("{root}/ui/wards/watford-w1/drug-round"));
    assert!(
        round.contains(r#"data-testid="round-patient""#),
        "{}: {round}",
        env.name
    );
    assert!(
        round.contains("late time-critical"),
        "{}: no late dose marked",
        env.name
    );

    // A due (or overdue) dose recorded as not given, with its reason.
    let dose_links = links(&round, "record-dose");
    let regular = dose_links
        .iter()
        .find(|l| l.contains("-reg/"))
        .unwrap_or_else(|| panic!("{}: no due regular dose: {dose_links:?}", env.name))
        .clone();
    let form = page(&nurse, &format!("{root}{regular}"));
    assert!(form.contains(r#"data-testid="omit-form""#));
    let slot = hidden(&form, "slot");
    let omit = action(&regular, "omit");
    let r = post(
        &nurse,
        &root,
        &omit,
        &[("slot", &slot), ("reason", ""), ("back", "/ui/drug-round")],
    );
    assert_eq!(r.status(), 400, "{}: a reason is needed", env.name);
    let r = post(
        &nurse,
        &root,
        &omit,
        &[
            ("slot", &slot),
            ("reason", "away"),
            ("omit_note", "In X-ray"),
            ("back", "/ui/wards/watford-w1/drug-round"),
        ],
    );
    assert_eq!(r.status(), 303, "{}", env.name);
    assert!(location(&r).contains("done=omitted"), "{}", env.name);
    let patient = regular.split('/').nth(3).unwrap().to_owned();
    let chart = page(&nurse, &format!("{root}/ui/patients/{patient}/mar"));
    assert!(
        chart.contains("Patient away from ward") && chart.contains("In X-ray"),
        "{}: {chart}",
        env.name
    );
    // The same dose again: one record per dose.
    let r = post(&nurse, &root, &action(&regular, "give"), &[("slot", &slot)]);
    assert_eq!(r.status(), 409, "{}", env.name);
    assert!(r.text().unwrap().contains("already recorded"));

    // As required, given an hour ago: refused, with the next time.
    let prn = links(&round, "give-prn")
        .into_iter()
        .find(|l| l.contains("-prn/"))
        .unwrap_or_else(|| panic!("{}: no as-required medicine", env.name));
    let form = page(&nurse, &format!("{root}{prn}"));
    assert!(
        form.contains(r#"data-testid="prn-next""#),
        "{}: {form}",
        env.name
    );
    let r = post(
        &nurse,
        &root,
        &action(&prn, "give"),
        &[("slot", ""), ("dose", &hidden_dose(&form))],
    );
    assert_eq!(r.status(), 409, "{}", env.name);
    let html = r.text().unwrap();
    assert!(
        html.contains("Too soon") && html.contains("The next dose may be given from"),
        "{}: {html}",
        env.name
    );

    // A controlled drug: no witness, then nurse2.w1 as witness.
    let cd = dose_links
        .iter()
        .find(|l| l.contains("-cd/"))
        .unwrap_or_else(|| panic!("{}: no controlled drug due: {dose_links:?}", env.name))
        .clone();
    let form = page(&nurse, &format!("{root}{cd}"));
    assert!(form.contains(r#"data-testid="witness""#));
    let slot = hidden(&form, "slot");
    let give = action(&cd, "give");
    let r = post(&nurse, &root, &give, &[("slot", &slot), ("batch", "CD-42")]);
    assert_eq!(r.status(), 400, "{}", env.name);
    assert!(r.text().unwrap().contains("controlled drug"));
    let code = env.cli(&["user", "code", "nurse2.w1"]);
    let r = post(
        &nurse,
        &root,
        &give,
        &[
            ("slot", &slot),
            ("batch", "CD-42"),
            ("witness_username", "nurse2.w1"),
            ("witness_password", "wardline-demo-only"),
            ("witness_code", code.trim()),
        ],
    );
    assert_eq!(
        r.status(),
        303,
        "{}: {}",
        env.name,
        r.text().unwrap_or_default()
    );
    let cd_patient = cd.split('/').nth(3).unwrap().to_owned();
    let chart = page(&nurse, &format!("{root}/ui/patients/{cd_patient}/mar"));
    assert!(chart.contains("(witness "), "{}: {chart}", env.name);

    // The clock moved a day on: every time-critical dose since is late, once.
    let later = (time::OffsetDateTime::now_utc() + time::Duration::hours(6))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let out = env.cli(&["medicines", "escalate", "--now", &later]);
    assert!(out.contains("escalated: Task/"), "{}: {out}", env.name);
    let again = env.cli(&["medicines", "escalate", "--now", &later]);
    assert!(
        again.contains("nothing to escalate"),
        "{}: {again}",
        env.name
    );
}

fn location(r: &reqwest::blocking::Response) -> String {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn hidden_dose(form: &str) -> String {
    let key = "id=\"dose\" name=\"dose\" type=\"text\" value=\"";
    form.find(key)
        .map(|i| {
            let rest = &form[i + key.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .unwrap_or_default()
}

#[test]
fn the_drug_round_over_http_sqlite() {
    scenario(&Env::sqlite());
}

#[test]
fn the_drug_round_over_http_postgres() {
    let Some(env) = Env::postgres() else {
        eprintln!("skipped: WARDLINE_TEST_PG_URL is not set");
        return;
    };
    scenario(&env);
}
