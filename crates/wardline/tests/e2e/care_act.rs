//! Care Act notices through the real binary over HTTP, with a real session
//! of the demo trust, on both backends:
//!
//! * dr.watford opens an in-patient's social-care page; an assessment
//!   notice without a contact is refused with the NHS error summary linking
//!   to the field (422); the notice given to the demo's Hertfordshire
//!   County Council is a DocumentReference queued as a Care Act delivery to
//!   that Organization (read back over FHIR);
//! * with the peers (`scripts/with-peers.sh`), `wardline transfers send`
//!   delivers it to the council's MESH mailbox (X26ABC3), where the test,
//!   acting as the council, downloads the document (it carries the NHS
//!   number) and acknowledges it, and the next run records it acknowledged;
//! * a discharge notice for today is refused for want of a reason (short of
//!   the timescales), then given with one;
//! * `wardline transfers overdue` with the clock five hours on raises the
//!   unacknowledged discharge notice as a Task, and the ward's social-care
//!   worklist shows the admission and the Task.

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use wardline_workflow::transfers::mesh::auth_header;
use wardline_workflow::transfers::peers;

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

fn at(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

fn day(t: OffsetDateTime) -> String {
    let d = t.date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

fn scenario(env: &Env, mesh: Option<&(String, String)>) {
    let s = env.start_with(&["--demo"]);
    let root = s.root.clone();
    let doctor = browser();
    sign_in(env, &root, &doctor, "dr.watford");

    // An in-patient on watford-w1 and their admission.
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
    let enc = common::entries(
        &s.get(&format!(
            "Encounter?patient=Patient/{patient}&status=in-progress"
        ))
        .body,
    )
    .into_iter()
    .map(|e| e["resource"].clone())
    .find(|e| e["class"]["code"] == "IMP")
    .expect("the admission");
    let enc_id = enc["id"].as_str().unwrap().to_owned();
    let p = s.get(&format!("Patient/{patient}")).body;
    let nhs = p["identifier"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["system"] == "https://fhir.nhs.uk/Id/nhs-number")
        .and_then(|i| i["value"].as_str())
        .expect("a demo patient has an NHS number")
        .to_owned();
    let base = format!("/ui/encounters/{enc_id}/social-care");
    let html = page(&doctor, &format!("{root}{base}"));
    assert!(html.contains("Give the assessment notice"), "{}", env.name);
    assert!(html.contains("Hertfordshire County Council"), "{html}");

    let now = OffsetDateTime::now_utc();
    let in_three = day(now + time::Duration::days(3));
    let mut form = vec![
        ("local-authority", "la-hertfordshire"),
        ("discharge-day", in_three.as_str()),
        ("consulted", "yes"),
        ("objection", "none"),
        ("chc", "not-eligible"),
        ("contact-name", ""),
        ("contact-phone", "01923 217 000"),
    ];
    // Refused, naming the field.
    let r = post(&doctor, &root, &format!("{base}/assessment"), &form);
    assert_eq!(r.status(), 422, "{}", env.name);
    let body = r.text().unwrap();
    assert!(body.contains("nhsuk-error-summary"), "{body}");
    assert!(body.contains("href=\"#contact-name\""), "{body}");
    form[5].1 = "Jo Bloggs, discharge coordinator";
    let r = post(&doctor, &root, &format!("{base}/assessment"), &form);
    assert_eq!(r.status(), 303, "{}: {}", env.name, r.text().unwrap());
    let html = page(&doctor, &format!("{root}{base}?done=assessment"));
    assert!(html.contains("data-kind=\"assessment\""), "{html}");
    assert!(html.contains("Give the discharge notice"), "{html}");

    // Over FHIR: the notice and its delivery to the council.
    let drs = common::entries(
        &s.get(&format!(
            "DocumentReference?encounter=Encounter/{enc_id}&type=https://fhir.wardline.invalid/CodeSystem/care-act-notice|assessment"
        ))
        .body,
    );
    assert_eq!(drs.len(), 1, "{}", env.name);
    let dr_id = drs[0]["resource"]["id"].as_str().unwrap().to_owned();
    let comms = common::entries(
        &s.get(&format!(
            "Communication?encounter=Encounter/{enc_id}&category=https://fhir.wardline.invalid/CodeSystem/transfer-kind|care-act-assessment"
        ))
        .body,
    );
    assert_eq!(comms.len(), 1, "{}", env.name);
    let comm = &comms[0]["resource"];
    let comm_id = comm["id"].as_str().unwrap().to_owned();
    assert_eq!(
        comm["recipient"][0]["reference"],
        "Organization/la-hertfordshire"
    );
    assert_eq!(
        comm["payload"][0]["contentReference"]["reference"],
        format!("DocumentReference/{dr_id}")
    );

    if let Some((url, key)) = mesh {
        let send = |when: OffsetDateTime| {
            env.cli(&[
                "transfers",
                "send",
                "--now",
                &at(when),
                "--mesh-url",
                url,
                "--mesh-mailbox",
                "X26ABC1",
                "--mesh-password",
                "password",
                "--mesh-shared-key",
                key,
            ])
        };
        let out = send(now);
        assert!(
            out.contains(&format!("sent: Communication/{comm_id}")),
            "{}: {out}",
            env.name
        );
        let c = s.get(&format!("Communication/{comm_id}")).body;
        let mid = c["extension"][0]["extension"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["url"] == "meshMessageId")
            .and_then(|e| e["valueString"].as_str())
            .expect("the MESH message id is recorded")
            .to_owned();
        let http = reqwest::blocking::Client::new();
        let auth = || {
            auth_header(
                "X26ABC3",
                "password",
                key,
                &uuid::Uuid::new_v4().to_string(),
                1,
                OffsetDateTime::now_utc(),
            )
        };
        let got = http
            .get(format!("{url}/messageexchange/X26ABC3/inbox/{mid}"))
            .header("authorization", auth())
            .header("accept", "application/vnd.mesh.v2+json")
            .send()
            .unwrap();
        assert!(got.status().is_success(), "{}: {}", env.name, got.status());
        let doc: Value = got.json().unwrap();
        assert_eq!(doc["type"], "document");
        let text = doc["entry"][0]["resource"]["text"]["div"].as_str().unwrap();
        assert!(text.contains(&nhs), "{text}");
        assert!(text.contains("Hertfordshire County Council"), "{text}");
        let ack = http
            .put(format!(
                "{url}/messageexchange/X26ABC3/inbox/{mid}/status/acknowledged"
            ))
            .header("authorization", auth())
            .header("accept", "application/vnd.mesh.v2+json")
            .send()
            .unwrap();
        assert!(ack.status().is_success(), "{}", env.name);
        let out = send(now + time::Duration::minutes(1));
        assert!(
            out.contains(&format!("acknowledged: Communication/{comm_id}")),
            "{}: {out}",
            env.name
        );
        let html = page(&doctor, &format!("{root}{base}"));
        assert!(html.contains("Acknowledged"), "{}", env.name);
    }

    // A discharge notice for today is short of the timescales.
    let today = day(now);
    let mut dform = vec![
        ("local-authority", "la-hertfordshire"),
        ("discharge-day", today.as_str()),
        ("consulted", "yes"),
        ("contact-name", "Jo Bloggs"),
        ("contact-phone", "01923 217 000"),
    ];
    let r = post(&doctor, &root, &format!("{base}/discharge"), &dform);
    assert_eq!(r.status(), 422, "{}", env.name);
    let body = r.text().unwrap();
    assert!(body.contains("href=\"#override-reason\""), "{body}");
    dform.push((
        "override-reason",
        "Package of care restarts today; agreed with the council's hospital team.",
    ));
    let r = post(&doctor, &root, &format!("{base}/discharge"), &dform);
    assert_eq!(r.status(), 303, "{}: {}", env.name, r.text().unwrap());

    // Five hours on, the discharge notice (never sent) is overdue.
    let out = env.cli(&[
        "transfers",
        "overdue",
        "--now",
        &at(now + time::Duration::hours(5)),
    ]);
    assert!(
        out.contains("care act notice: Task/"),
        "{}: {out}",
        env.name
    );
    let list = page(&doctor, &format!("{root}/ui/social-care?ward=watford-w1"));
    assert!(
        list.contains(&format!("data-encounter=\"Encounter/{enc_id}\"")),
        "{}: {list}",
        env.name
    );
    assert!(
        list.contains("not been acknowledged"),
        "{}: {list}",
        env.name
    );
}

#[test]
fn care_act_notices_are_given_sent_to_the_local_authority_and_tracked() {
    let mesh = peers::mesh();
    scenario(&Env::sqlite(), mesh.as_ref());
    if let Some(pg) = Env::postgres() {
        scenario(&pg, mesh.as_ref());
    }
}
