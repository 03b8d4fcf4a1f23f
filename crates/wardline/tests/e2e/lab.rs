//! The pathology laboratory through the web UI over real HTTP: the demo
//! catalogue and a requisition (a U&E request with its tube, in the
//! contract's shape) are written through the FHIR REST API; `bms.lab`
//! receives the tube by its barcode (a second scan is refused), enters
//! results with a critical potassium and validates them; the same person
//! cannot authorise; `cs.lab` authorises, and the requester's inbox holds a
//! `stat` result-review Task for the report.

use crate::common;
use crate::ui::{browser, csrf, sign_in};

use common::Env;
use serde_json::{Value, json};

const SNOMED: &str = "http://snomed.info/sct";

/// The practitioner id of a demo user, from `wardline user list`.
fn practitioner(env: &Env, user: &str) -> String {
    let list = env.cli(&["user", "list"]);
    let line = list
        .lines()
        .find(|l| l.starts_with(&format!("{user} ")) || l.starts_with(&format!("{user}  ")))
        .unwrap_or_else(|| panic!("no {user} in {list}"));
    line.split("Practitioner/")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned()
}

/// The catalogue, a patient, a U&E request by `requester` and its tube
/// `barcode`.
pub(crate) fn seed_requisition(
    s: &common::Server,
    requester: &str,
    barcode: &str,
    patient: &str,
    nhs: &str,
) {
    let catalogue = wardline_demo::order_catalogue();
    let r = s.client.post(&s.base).json(&catalogue).send().unwrap();
    assert!(r.status().is_success(), "catalogue: {}", r.text().unwrap());
    let ue = catalogue["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["id"] == "path-ue")
        .unwrap()
        .clone();
    let sr_id = format!("{patient}-ue");
    let put = |r: Value| {
        let url = format!(
            "{}/{}",
            r["resourceType"].as_str().unwrap(),
            r["id"].as_str().unwrap()
        );
        json!({"resource": r, "request": {"method": "PUT", "url": url}})
    };
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        put(json!({"resourceType": "Patient", "id": patient, "active": true,
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}],
            "name": [{"use": "official", "family": "Larkin", "given": ["Rose"]}],
            "gender": "female", "birthDate": "1948-07-21"})),
        put(json!({"resourceType": "ServiceRequest", "id": sr_id, "status": "active", "intent": "order",
            "priority": "urgent",
            "identifier": [{"system": "https://fhir.wardline.invalid/Id/placer-order", "value": format!("{}-1", barcode.split('-').next().unwrap())}],
            "requisition": {"system": "https://fhir.wardline.invalid/Id/requisition", "value": barcode.split('-').next().unwrap()},
            "category": [{"coding": [{"system": SNOMED, "code": "108252007", "display": "Laboratory procedure"}]}],
            "code": ue["code"].clone(),
            "instantiatesCanonical": [ue["url"].clone()],
            "subject": {"reference": format!("Patient/{patient}")},
            "requester": {"reference": format!("Practitioner/{requester}"), "display": "Sanjay Mehta"},
            "authoredOn": "2026-06-01T08:00:00Z",
            "note": [{"text": "Vomiting; on furosemide"}]})),
        put(json!({"resourceType": "Specimen", "id": format!("{patient}-tube"), "status": "available",
            "identifier": [{"system": "https://fhir.wardline.invalid/Id/specimen", "value": barcode}],
            "type": {"coding": [{"system": SNOMED, "code": "119364003", "display": "Serum specimen"}]},
            "container": [{"type": {"text": "Serum separator (gold top)"}}],
            "subject": {"reference": format!("Patient/{patient}")},
            "request": [{"reference": format!("ServiceRequest/{sr_id}")}]})),
    ]});
    let r = s.client.post(&s.base).json(&bundle).send().unwrap();
    assert!(
        r.status().is_success(),
        "requisition: {}",
        r.text().unwrap()
    );
}

fn report_link(html: &str) -> String {
    let at = html
        .find("/ui/lab/reports/")
        .unwrap_or_else(|| panic!("no report link in {html}"));
    let rest = &html[at + "/ui/lab/reports/".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

fn value_fields(html: &str) -> Vec<String> {
    html.match_indices("name=\"value:")
        .map(|(i, _)| {
            let rest = &html[i + 6..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

#[test]
fn the_laboratory_over_http() {
    let env = Env::sqlite();
    let s = env.start_with(&["--demo"]);
    let root = s.root.clone();
    let doc = practitioner(&env, "dr.watford");
    seed_requisition(&s, &doc, "R7000001-1", "lab-e2e", "9434765919");

    // --- reception, as bms.lab ---------------------------------------------
    let bms = browser();
    sign_in(&env, &root, &bms, "bms.lab");
    let page = bms
        .get(format!("{root}/ui/lab"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        page.contains("name=\"barcode\"") && page.contains("autofocus"),
        "{page}"
    );
    let token = csrf(&root, &bms);
    let r = bms
        .post(format!("{root}/ui/lab/receive"))
        .form(&[("csrf", token.as_str()), ("barcode", "R9999999-1")])
        .send()
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(
        r.text()
            .unwrap()
            .contains("No specimen has the barcode R9999999-1")
    );
    let r = bms
        .post(format!("{root}/ui/lab/receive"))
        .form(&[("csrf", token.as_str()), ("barcode", "R7000001-1\n")])
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    let next = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(next, "/ui/lab?received=R7000001-1");
    let page = bms
        .get(format!("{root}{next}"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        page.contains("LARKIN, Rose"),
        "the patient to check: {page}"
    );
    assert!(page.contains("943 476 5919"));
    let report = report_link(&page);
    let again = bms
        .post(format!("{root}/ui/lab/receive"))
        .form(&[("csrf", token.as_str()), ("barcode", "R7000001-1")])
        .send()
        .unwrap();
    assert_eq!(again.status(), 422, "received twice");
    assert!(again.text().unwrap().contains("already received"));

    // --- the bench ---------------------------------------------------------
    let page = bms
        .get(format!("{root}/ui/lab/reports/{report}"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let fields = value_fields(&page);
    assert_eq!(fields.len(), 5, "the U&E's analytes: {fields:?}");
    let value_of = |f: &str| match f {
        f if f.ends_with("|2951-2") => "138",
        f if f.ends_with("|2823-3") => "7.1",
        f if f.ends_with("|UREA") => "6.0",
        f if f.ends_with("|14682-9") => "85",
        _ => "70",
    };
    let mut form: Vec<(String, String)> = vec![("csrf".into(), token.clone())];
    form.extend(fields.iter().map(|f| (f.clone(), value_of(f).to_owned())));
    let r = bms
        .post(format!("{root}/ui/lab/reports/{report}/results"))
        .form(&form)
        .send()
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().unwrap());
    let page = bms
        .get(format!("{root}/ui/lab/reports/{report}"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        page.contains("Critical high"),
        "the potassium is flagged: {page}"
    );
    let r = bms
        .post(format!("{root}/ui/lab/reports/{report}/validate"))
        .form(&[("csrf", token.as_str())])
        .send()
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().unwrap());
    let r = bms
        .post(format!("{root}/ui/lab/reports/{report}/authorise"))
        .form(&[("csrf", token.as_str())])
        .send()
        .unwrap();
    assert_eq!(r.status(), 422, "the validator cannot authorise");
    assert!(
        r.text()
            .unwrap()
            .contains("a different person must authorise")
    );

    // --- authorisation, as cs.lab ----------------------------------------
    let cs = browser();
    sign_in(&env, &root, &cs, "cs.lab");
    let token = csrf(&root, &cs);
    let r = cs
        .post(format!("{root}/ui/lab/reports/{report}/authorise"))
        .form(&[("csrf", token.as_str())])
        .send()
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().unwrap());
    let page = cs
        .get(format!("{root}/ui/lab/reports/{report}"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(page.contains("authorised by cs.lab"), "{page}");
    assert!(page.contains("validated by bms.lab"));
    let twice = cs
        .post(format!("{root}/ui/lab/reports/{report}/authorise"))
        .form(&[("csrf", token.as_str())])
        .send()
        .unwrap();
    assert_eq!(twice.status(), 422, "authorised once");

    // --- released to the requester's inbox -----------------------------
    let found = s.search_all(&format!(
        "Task?code=https://fhir.wardline.invalid/CodeSystem/task|result-review&focus=DiagnosticReport/{report}"
    ));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0]["owner"]["reference"],
        format!("Practitioner/{doc}")
    );
    assert_eq!(found[0]["priority"], "stat");
    let dr = s.get(&format!("DiagnosticReport/{report}"));
    assert_eq!(dr.body["status"], "final");
    let sr = s.get("ServiceRequest/lab-e2e-ue");
    assert_eq!(sr.body["status"], "completed");
}
