//! The order catalogue through the real server (`serve --demo`): the demo
//! loads the seed catalogue; the administrator's pages over HTTP list it by
//! department with local codes marked, add a test, refuse a wrong one with
//! the reason, retire one, and import a Bundle file (multipart upload) —
//! all or nothing; a clinician reads but cannot change it; a REST
//! transaction passes the same rule.

use crate::common;
use crate::ui::{browser, csrf, sign_in};

use common::Env;
use serde_json::{Value, json};

fn multipart(token: &str, file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "wardline-test-boundary-7MA4YWxk";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{token}\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"bundle\"; filename=\"catalogue.json\"\r\nContent-Type: application/json\r\n\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn zinc(token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("csrf", token.to_owned()),
        ("id", "path-zinc".into()),
        ("title", "Zinc".into()),
        ("department", "biochemistry".into()),
        ("code_system", "local".into()),
        ("code", "ZN".into()),
        ("code_display", "Serum zinc".into()),
        ("specimen_type", "119364003".into()),
        ("container", "Trace element tube (royal blue top)".into()),
        ("colour", "Royal blue".into()),
        ("retest", "168".into()),
        ("a0_system", "loinc".into()),
        ("a0_code", "5763-9".into()),
        ("a0_name", "Zinc".into()),
        ("a0_unit", "umol/L".into()),
        ("a0_low", "11".into()),
        ("a0_high", "24".into()),
    ]
}

#[test]
fn catalogue_admin_over_http() {
    let env = Env::sqlite();
    let s = env.start_with(&["--demo"]);
    let root = s.root.clone();

    // The demo loaded the seed: the REST API has it.
    let fbc: Value = s.get("ActivityDefinition/path-fbc").body;
    assert_eq!(fbc["title"], "Full blood count (FBC)");

    let admin = browser();
    sign_in(&env, &root, &admin, "admin");
    let list = admin.get(format!("{root}/ui/catalogue")).send().unwrap();
    assert_eq!(list.status(), 200);
    let html = list.text().unwrap();
    for dept in [
        "haematology",
        "biochemistry",
        "microbiology",
        "transfusion",
        "radiology",
    ] {
        assert!(
            html.contains(&format!("data-testid=\"department-{dept}\"")),
            "{dept}"
        );
    }
    let row = |html: &str, id: &str| {
        let at = html
            .find(&format!("data-testid=\"orderable-{id}\""))
            .unwrap();
        html[at..at + html[at..].find("</tr>").unwrap()].to_owned()
    };
    assert!(
        row(&html, "path-ue").contains("Local code"),
        "U&E has a local code"
    );
    assert!(
        !row(&html, "path-fbc").contains("Local code"),
        "FBC is SNOMED CT"
    );
    assert!(row(&html, "path-fbc").contains("26604007"));
    assert!(html.contains("data-testid=\"set-sepsis-screen\""));

    // Add a test: a wrong range is refused with the reason, then fixed.
    let token = csrf(&root, &admin);
    let mut bad = zinc(&token);
    bad.push(("a0_clow", "15".into()));
    let r = admin
        .post(format!("{root}/ui/catalogue/new"))
        .form(&bad)
        .send()
        .unwrap();
    assert_eq!(r.status(), 422);
    let text = r.text().unwrap();
    assert!(
        text.contains("critical low (15) is inside its reference range"),
        "{text}"
    );
    let r = admin
        .post(format!("{root}/ui/catalogue/new"))
        .form(&zinc(&token))
        .send()
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().unwrap());
    let view = admin
        .get(format!("{root}/ui/catalogue/path-zinc"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(view.contains("11–24 µmol/L"), "{view}");
    assert!(view.contains("1 week<"), "{view}");
    let ad: Value = s.get("ActivityDefinition/path-zinc").body;
    assert_eq!(ad["status"], "active");
    assert_eq!(
        ad["code"]["coding"][0]["system"],
        "https://fhir.wardline.invalid/CodeSystem/local-orderable"
    );

    // Retire one: kept, marked retired.
    let r = admin
        .post(format!("{root}/ui/catalogue/rad-axr/retire"))
        .form(&[("csrf", token.as_str())])
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    let ad: Value = s.get("ActivityDefinition/rad-axr").body;
    assert_eq!(ad["status"], "retired");
    let html = admin
        .get(format!("{root}/ui/catalogue"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(row(&html, "rad-axr").contains("Retired"));

    // Import: a wrong file is refused whole, naming the entry; a right one
    // is reported.
    let mut bundle = wardline_demo::order_catalogue();
    let entries = bundle["entry"].as_array_mut().unwrap();
    let i = entries
        .iter()
        .position(|e| e["resource"]["id"] == "path-crp")
        .unwrap();
    entries[i]["resource"]["title"] = json!("CRP");
    let j = entries
        .iter()
        .position(|e| e["resource"]["id"] == "rad-cxr")
        .unwrap();
    entries[j]["resource"]["extension"] = json!([]);
    let (ct, body) = multipart(&token, &serde_json::to_vec(&bundle).unwrap());
    let r = admin
        .post(format!("{root}/ui/catalogue/import"))
        .header("content-type", ct)
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 422);
    let text = r.text().unwrap();
    assert!(
        text.contains(&format!("Entry {} (ActivityDefinition/rad-cxr)", j + 1))
            && text.contains("modality"),
        "{text}"
    );
    let crp: Value = s.get("ActivityDefinition/path-crp").body;
    assert_ne!(crp["title"], "CRP", "nothing of a refused file is imported");
    let mut bundle = wardline_demo::order_catalogue();
    bundle["entry"][i]["resource"]["title"] = json!("CRP");
    let (ct, body) = multipart(&token, &serde_json::to_vec(&bundle).unwrap());
    let r = admin
        .post(format!("{root}/ui/catalogue/import"))
        .header("content-type", ct)
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    // CRP changed; rad-axr is reinstated by the file (it says active).
    assert!(location.contains("updated=2"), "{location}");
    let crp: Value = s.get("ActivityDefinition/path-crp").body;
    assert_eq!(crp["title"], "CRP");
    // Not a multipart upload, or no token: refused before anything is read.
    let r = admin
        .post(format!("{root}/ui/catalogue/import"))
        .form(&[("csrf", token.as_str())])
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);

    // A clinician reads the catalogue but cannot change it.
    let doctor = browser();
    sign_in(&env, &root, &doctor, "dr.watford");
    let r = doctor
        .get(format!("{root}/ui/catalogue/path-fbc"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let view = r.text().unwrap();
    assert!(
        view.contains("Haemoglobin") && !view.contains("/retire"),
        "no retire button"
    );
    assert_eq!(
        doctor
            .get(format!("{root}/ui/catalogue/new"))
            .send()
            .unwrap()
            .status(),
        403
    );
    let dtoken = csrf(&root, &doctor);
    let r = doctor
        .post(format!("{root}/ui/catalogue/path-fbc/retire"))
        .form(&[("csrf", dtoken.as_str())])
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    let fbc: Value = s.get("ActivityDefinition/path-fbc").body;
    assert_eq!(fbc["status"], "active");

    // REST: the same rule refuses a wrong orderable.
    let mut wrong = fbc.clone();
    wrong.as_object_mut().unwrap().remove("specimenRequirement");
    let r = s.put("ActivityDefinition/path-fbc", &wrong);
    assert_eq!(r.status, 422, "{}", r.brief());
    assert!(r.brief().contains("needs its specimen"), "{}", r.brief());
}
