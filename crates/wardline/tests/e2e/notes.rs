//! Clinical notes over real HTTP, with real sessions of the demo trust, on
//! both backends:
//!
//! * dr.watford writes a ward round note for an in-patient on watford-w1
//!   from the chart's link; an empty note is refused with an error summary
//!   linking to the first heading (H-141);
//! * dr2.watford cannot sign it (only the author signs, H-142); dr.watford
//!   signs it; a plain FHIR `PUT` changing the signed content is refused
//!   with 422 naming `Composition.status` (H-140);
//! * dr.watford amends it with a reason: the page shows every version, the
//!   reason and what changed (H-140);
//! * a coded diagnosis from the picking list is a `Condition` of the
//!   encounter with SNOMED CT and ICD-10; a malformed correction is refused
//!   beside its field, a good one replaces the ICD-10 code (H-144);
//! * the ward clerk cannot read the notes; the privacy officer finds the
//!   signing and the viewing in the audit trail.

use serde_json::Value;

use crate::common::{self, Env};
use crate::ui::{browser, csrf, sign_in};
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

fn location(r: &reqwest::blocking::Response) -> String {
    r.headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn scenario(env: &Env) {
    let s = env.start_with(&["--demo"]);
    let root = s.root.clone();
    let doctor = browser();
    sign_in(env, &root, &doctor, "dr.watford");
    let other = browser();
    sign_in(env, &root, &other, "dr2.watford");
    let clerk = browser();
    sign_in(env, &root, &clerk, "clerk.watford");

    let board = page(&doctor, &format!("{root}/ui/beds/watford-w1"));
    let key = "href=\"/ui/patients/";
    let patient = board
        .match_indices(key)
        .map(|(i, _)| {
            let rest = &board[i + key.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .find(|id| id != "new" && !id.contains(['/', '?']))
        .unwrap_or_else(|| panic!("{}: no patient on the board", env.name));
    let chart = page(&doctor, &format!("{root}/ui/patients/{patient}"));
    assert!(
        chart.contains(&format!("/ui/patients/{patient}/notes")),
        "{}: no link to the notes",
        env.name
    );
    let form = page(
        &doctor,
        &format!("{root}/ui/patients/{patient}/notes/new?kind=ward-round"),
    );
    assert!(form.contains("Presenting complaint") && form.contains("Impression"));

    // An empty note is refused, the summary linking to the first heading.
    let r = post(
        &doctor,
        &root,
        &format!("/ui/patients/{patient}/notes"),
        &[("kind", "ward-round"), ("plan", "  ")],
    );
    assert_eq!(r.status(), 422, "{}", env.name);
    let body = r.text().unwrap();
    assert!(
        body.contains("href=\"#presenting-complaint\""),
        "{}: {body}",
        env.name
    );

    let r = post(
        &doctor,
        &root,
        &format!("/ui/patients/{patient}/notes"),
        &[
            ("kind", "ward-round"),
            ("presenting-complaint", "Productive cough for 4 days"),
            ("examination", "Right basal crackles"),
            ("plan", "IV co-amoxiclav\nChest X-ray"),
        ],
    );
    assert_eq!(r.status(), 303, "{}", env.name);
    let loc = location(&r);
    let id = loc
        .trim_start_matches("/ui/notes/")
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let note = s.get(&format!("Composition/{id}"));
    assert_eq!(
        note.body["status"], "preliminary",
        "{}: {}",
        env.name, note.text
    );
    assert_eq!(
        note.body["subject"]["reference"],
        format!("Patient/{patient}")
    );
    assert!(
        note.body["encounter"]["reference"].is_string(),
        "{}: the admission",
        env.name
    );

    // Only the author signs.
    let r = post(&other, &root, &format!("/ui/notes/{id}/sign"), &[]);
    assert_eq!(r.status(), 403, "{}", env.name);
    let r = post(&doctor, &root, &format!("/ui/notes/{id}/sign"), &[]);
    assert_eq!(r.status(), 303, "{}", env.name);
    let signed = s.get(&format!("Composition/{id}"));
    assert_eq!(signed.body["status"], "final");
    assert_eq!(signed.body["attester"][0]["mode"], "legal");

    // A plain FHIR write cannot change the signed note.
    let mut changed: Value = signed.body.clone();
    changed["section"][0]["text"]["div"] = serde_json::json!(
        "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Something else</p></div>"
    );
    let r = s.put(&format!("Composition/{id}"), &changed);
    assert_eq!(r.status, 422, "{}: {}", env.name, r.text);
    assert!(
        r.text.contains("Composition.status"),
        "{}: {}",
        env.name,
        r.text
    );

    // The author amends it: every version shown, with the reason.
    let r = post(
        &doctor,
        &root,
        &format!("/ui/notes/{id}/amend"),
        &[
            ("presenting-complaint", "Productive cough for 4 days"),
            ("examination", "Right basal crackles"),
            ("plan", "Oral amoxicillin\nChest X-ray"),
            ("reason", "Antibiotic changed after allergy check"),
        ],
    );
    assert_eq!(
        r.status(),
        303,
        "{}: {}",
        env.name,
        r.text().unwrap_or_default()
    );
    let p = page(&doctor, &format!("{root}/ui/notes/{id}"));
    assert!(p.contains(r#"data-status="amended""#), "{}", env.name);
    assert!(p.contains("Antibiotic changed after allergy check"));
    assert_eq!(
        p.matches(r#"data-testid="version""#).count(),
        3,
        "{}: {p}",
        env.name
    );
    assert!(
        p.contains("IV co-amoxiclav"),
        "{}: the original is shown",
        env.name
    );
    assert!(p.contains("Changed: </strong>Plan<"), "{}", env.name);
    let list = page(&doctor, &format!("{root}/ui/patients/{patient}/notes"));
    assert!(
        list.contains(&format!(r#"data-note="{id}""#)),
        "{}",
        env.name
    );

    // A coded diagnosis.
    let r = post(
        &doctor,
        &root,
        &format!("/ui/notes/{id}/entries"),
        &[
            ("snomed", "385093006"),
            ("category", "encounter-diagnosis"),
            ("verification", "confirmed"),
        ],
    );
    assert_eq!(r.status(), 303, "{}", env.name);
    let conds = common::entries(
        &s.get(&format!(
            "Condition?subject=Patient/{patient}&code=http://snomed.info/sct|385093006"
        ))
        .body,
    );
    assert_eq!(conds.len(), 1, "{}", env.name);
    let c = &conds[0]["resource"];
    assert_eq!(c["encounter"], note.body["encounter"]);
    assert_eq!(c["code"]["coding"][1]["code"], "J18.9");
    let cref = format!("Condition/{}", c["id"].as_str().unwrap());
    let field = format!("classification-{}", cref.replace('/', "-"));
    let r = post(
        &doctor,
        &root,
        &format!("/ui/notes/{id}/entries/correct"),
        &[("reference", cref.as_str()), (field.as_str(), "J18.")],
    );
    assert_eq!(r.status(), 422, "{}", env.name);
    assert!(r.text().unwrap().contains(&format!("href=\"#{field}\"")));
    let r = post(
        &doctor,
        &root,
        &format!("/ui/notes/{id}/entries/correct"),
        &[("reference", cref.as_str()), (field.as_str(), "J18.1")],
    );
    assert_eq!(r.status(), 303, "{}", env.name);
    let c = s.get(&cref);
    assert_eq!(c.body["code"]["coding"][1]["code"], "J18.1", "{}", env.name);

    // The ward clerk does not see clinical notes.
    let r = clerk
        .get(format!("{root}/ui/patients/{patient}/notes"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 403, "{}", env.name);

    // Signing and viewing are in the audit trail.
    let ig = env.privacy_officer();
    for subtype in ["notes-sign", "notes-view", "notes-amend", "notes-code"] {
        let r = ig
            .get(s.url(&format!("AuditEvent?subtype={subtype}")))
            .send()
            .unwrap();
        let b: Value = r.json().unwrap();
        assert!(
            !common::entries(&b).is_empty(),
            "{}: no {subtype} event: {b}",
            env.name
        );
    }
}

#[test]
fn clinical_notes_over_http() {
    scenario(&Env::sqlite());
    if let Some(pg) = Env::postgres() {
        scenario(&pg);
    }
}
