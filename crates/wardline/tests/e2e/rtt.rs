//! Referrals in, triage, the waiting list and the PTL over real HTTP with
//! real sessions of the demo trust, on both backends:
//!
//! * a GP system POSTs an e-Referral-shaped `ServiceRequest` over the FHIR
//!   API (a system client); it is on dr.watford's triage list (H-210);
//! * the ward clerk may not triage it (403, nothing changes; H-217);
//! * dr.watford accepts it urgent: the pathway's clock starts on the date
//!   received with status 10 (H-211), and the ward clerk finds the patient
//!   on the outpatient (new) list as urgent;
//! * the PTL counts one more open pathway under 18 weeks, and its CSV has
//!   the pathway's row;
//! * the clerk cannot remove the entry without a reason (H-213).

use serde_json::{Value, json};

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

/// The number shown in the element with `data-testid="{testid}"`.
fn shown_number(html: &str, testid: &str) -> usize {
    let m = format!("data-testid=\"{testid}\">");
    let i = html.find(&m).unwrap_or_else(|| panic!("no {testid}")) + m.len();
    html[i..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

fn scenario(env: &Env) {
    let n = env.name;
    let s = env.start_with(&["--demo"]);
    let root = s.root.clone();
    let doctor = browser();
    sign_in(env, &root, &doctor, "dr.watford");
    let clerk = browser();
    sign_in(env, &root, &clerk, "clerk.watford");

    let r = s.put(
        "Patient/e2e-rtt-1",
        &json!({"resourceType": "Patient", "id": "e2e-rtt-1", "name": [{"family": "Referral", "given": ["Rita"]}],
            "birthDate": "1960-05-01", "gender": "female"}),
    );
    assert!(r.is_success(), "{n}: {}", r.brief());
    // dr.watford's Practitioner, through the position they are signed in as:
    // the GP refers to the named consultant.
    let sess: Value = doctor
        .get(format!("{root}/auth/session"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let position = sess["position"].as_str().expect("a position").to_owned();
    let role = s.get(&format!(
        "PractitionerRole/{}",
        position.trim_start_matches("PractitionerRole/")
    ));
    let dr = role.body["practitioner"]["reference"]
        .as_str()
        .unwrap_or_else(|| panic!("{n}: {}", role.text))
        .to_owned();
    let before = shown_number(&page(&doctor, &format!("{root}/ui/rtt/ptl")), "open-total");

    // 1. The GP's referral over FHIR.
    let r = s.post(
        "ServiceRequest",
        &json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
            "category": [{"coding": [{"system": "https://fhir.nhs.uk/CodeSystem/message-category-servicerequest", "code": "referral", "display": "Transfer of Care"}]}],
            "priority": "urgent",
            "subject": {"reference": "Patient/e2e-rtt-1"},
            "requester": {"display": "Dr A Green, Riverside Surgery (E82001)"},
            "performer": [{"reference": dr}],
            "reasonCode": [{"text": "Locking right knee after a twisting injury"}],
            "authoredOn": "2026-01-05T09:00:00Z"}),
    );
    assert_eq!(r.status, 201, "{n}: {}", r.brief());
    let id = r.body["id"].as_str().unwrap().to_owned();
    let triage = page(&doctor, &format!("{root}/ui/referrals/triage"));
    assert!(
        triage.contains(&format!("data-referral=\"{id}\"")),
        "{n}: on the triage list"
    );

    // 2. The ward clerk may not triage.
    let r = post(
        &clerk,
        &root,
        &format!("/ui/referrals/{id}/triage/accept"),
        &[("priority", "urgent"), ("specialty", "110")],
    );
    assert_eq!(r.status(), 403, "{n}: a clerk does not triage");

    // 3. dr.watford accepts it urgent.
    let r = post(
        &doctor,
        &root,
        &format!("/ui/referrals/{id}/triage/accept"),
        &[
            ("priority", "urgent"),
            ("specialty", "110"),
            ("consultant", ""),
        ],
    );
    assert_eq!(r.status(), 303, "{n}: accept");
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    let pw = to
        .trim_start_matches("/ui/rtt/pathways/")
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let eoc = s.get(&format!("EpisodeOfCare/{pw}")).body;
    assert_eq!(eoc["status"], "active", "{n}");
    let received = s.get(&format!("ServiceRequest/{id}")).body["meta"]["lastUpdated"]
        .as_str()
        .map(|d| d[..10].to_owned());
    assert_eq!(
        eoc["period"]["start"].as_str().map(str::to_owned),
        received,
        "{n}: clock start = received"
    );
    let event = &eoc["extension"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["url"] == "https://fhir.wardline.invalid/StructureDefinition/rtt-event")
        .unwrap()["extension"];
    assert_eq!(event[0]["valueCoding"]["code"], "10", "{n}");
    let view = page(&doctor, &format!("{root}{to}"));
    assert!(view.contains("data-clock=\"running\""), "{n}: {view}");

    // 4. On the outpatient (new) list, urgent.
    let list = page(
        &clerk,
        &format!("{root}/ui/waiting-lists?list=outpatient-new"),
    );
    let entry = common::entries(
        &s.get("ServiceRequest?subject=Patient/e2e-rtt-1&intent=plan")
            .body,
    )
    .into_iter()
    .map(|e| e["resource"].clone())
    .next()
    .expect("the entry");
    let entry_id = entry["id"].as_str().unwrap();
    assert!(
        list.contains(&format!(
            "data-entry=\"{entry_id}\" data-priority=\"urgent\""
        )),
        "{n}: {list}"
    );

    // 5. The PTL counts it; the CSV has its row.
    let ptl = page(&doctor, &format!("{root}/ui/rtt/ptl"));
    assert_eq!(shown_number(&ptl, "open-total"), before + 1, "{n}");
    assert!(ptl.contains(&format!("data-pathway=\"{pw}\"")), "{n}");
    let csv = doctor.get(format!("{root}/ui/rtt/ptl.csv")).send().unwrap();
    assert_eq!(csv.status(), 200);
    let csv = csv.text().unwrap();
    assert!(
        csv.lines()
            .any(|l| l.contains(&pw) && l.contains("Referral")),
        "{n}: {csv}"
    );

    // 6. Not removed without a reason.
    let r = post(
        &clerk,
        &root,
        &format!("/ui/waiting-lists/entries/{entry_id}/remove"),
        &[("remove-reason", " ")],
    );
    assert_eq!(r.status(), 400, "{n}");
    let view = r.text().unwrap();
    assert!(
        view.contains("href=\"#remove-reason\"") && view.contains("Give the reason"),
        "{n}: the error names the field: {view}"
    );
    let still: Value = s.get(&format!("ServiceRequest/{entry_id}")).body;
    assert_eq!(still["status"], "active", "{n}");
}

#[test]
fn a_gp_referral_triaged_onto_the_list_and_the_ptl_over_http() {
    scenario(&Env::sqlite());
    if let Some(pg) = Env::postgres() {
        scenario(&pg);
    }
}
