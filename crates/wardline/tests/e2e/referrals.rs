//! e-Referrals between two real Wardline servers, each with its own store
//! (the referring trust A and the receiving provider B), on both backends:
//!
//! * each server's key pair (`wardline referrals keygen`) is registered at
//!   the other as a SMART Backend Services client: messages go with a
//!   token from the receiver's own `/auth/token`; a message without a token
//!   is refused (401);
//! * dr.watford on A makes a referral from the chart's link with a letter
//!   attached, checks the provider (name and ODS code) and sends it;
//!   `wardline referrals send` delivers it to B's `$process-message`
//!   (H-180, H-181, H-182);
//! * on B it is in the triage list with its letter; dr.watford on B accepts
//!   it; B's answer goes back; A's page shows it accepted (H-180);
//! * a second referral is rejected with a reason, which A shows (H-180);
//! * B down: a third is retried with back-off as the clock is moved, then
//!   a failure Task is raised and the page says it was not delivered
//!   (H-183); a referral with no answer is chased (H-184).

use std::path::Path;
use std::process::Command;

use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::common::{self, Env, Server};
use crate::ui::{browser, location, page, post_form as post, sign_in};
use reqwest::blocking::Client;

const ODS_B: &str = "RB2X0";
const SCOPE: &str = "system/ServiceRequest.crus system/Patient.crs system/DocumentReference.c system/Task.crus system/Organization.rs";

fn keygen(dir: &Path, who: &str) -> (String, String) {
    let key = dir.join(format!("{who}.der"));
    let jwks = dir.join(format!("{who}.jwks.json"));
    let out = Command::new(env!("CARGO_BIN_EXE_wardline"))
        .args(["referrals", "keygen", "--kid", who, "--key-out"])
        .arg(&key)
        .arg("--jwks-out")
        .arg(&jwks)
        .output()
        .expect("run wardline");
    assert!(
        out.status.success(),
        "keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (key.display().to_string(), jwks.display().to_string())
}

fn at(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

/// `wardline referrals send` on `env`'s store, as the server `s` at `now`.
fn deliver(
    env: &Env,
    s: &Server,
    client_id: &str,
    key: &str,
    kid: &str,
    now: OffsetDateTime,
) -> String {
    env.cli(&[
        "referrals",
        "send",
        "--bars-endpoint",
        &format!("{}/$process-message", s.base),
        "--bars-client-id",
        client_id,
        "--bars-key",
        key,
        "--bars-kid",
        kid,
        "--bars-scope",
        SCOPE,
        "--now",
        &at(now),
    ])
}

fn first_patient(c: &Client, root: &str) -> String {
    let board = page(c, &format!("{root}/ui/beds/watford-w1"));
    let k = "href=\"/ui/patients/";
    board
        .match_indices(k)
        .map(|(i, _)| {
            let rest = &board[i + k.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .find(|id| id != "new" && !id.contains(['/', '?']))
        .expect("a patient on the board")
}

fn attr_after<'a>(html: &'a str, marker: &str, attr: &str) -> Option<&'a str> {
    let i = html.find(marker)?;
    let rest = &html[i..];
    let j = rest.find(&format!("{attr}=\""))? + attr.len() + 2;
    let rest = &rest[j..];
    Some(&rest[..rest.find('"')?])
}

fn make_referral(doctor: &Client, root: &str, patient: &str, doc: &str, reason: &str) -> String {
    let r = post(
        doctor,
        root,
        &format!("/ui/patients/{patient}/referrals"),
        &[
            ("receiver", "prov-b"),
            ("priority", "urgent"),
            ("reason", reason),
            (&format!("attach-{doc}"), "yes"),
        ],
    );
    assert_eq!(r.status(), 303, "draft: {}", r.text().unwrap_or_default());
    let loc = location(&r);
    let id = loc.trim_start_matches("/ui/referrals/").to_owned();
    let view = page(doctor, &format!("{root}{loc}"));
    assert!(
        view.contains("Southdale Community Services") && view.contains(&format!("ODS {ODS_B}")),
        "the provider is named before sending"
    );
    let r = post(doctor, root, &format!("{loc}/send"), &[]);
    assert_eq!(r.status(), 303, "send");
    id
}

fn scenario(a_env: &Env, b_env: &Env) {
    let n = a_env.name;
    let keys = tempfile::tempdir().unwrap();
    let (key_a, jwks_a) = keygen(keys.path(), "trust-a");
    let (key_b, jwks_b) = keygen(keys.path(), "provider-b");
    let off = ["--demo", "--referral-job-seconds", "0"];
    let mut sb = b_env.start_with(&off);
    let sa = a_env.start_with(&off);
    // Each registers the other as a backend client (on its running
    // database: operator commands do not create one).
    b_env.cli(&[
        "client",
        "add",
        "trust-a",
        "--name",
        "Northgate (A)",
        "--scope",
        SCOPE,
        "--jwks-file",
        &jwks_a,
    ]);
    a_env.cli(&[
        "client",
        "add",
        "provider-b",
        "--name",
        "Southdale (B)",
        "--scope",
        SCOPE,
        "--jwks-file",
        &jwks_b,
    ]);

    // B is the provider ODS_B; A knows B and its $process-message.
    let r = sb.put(
        "Organization/b-self",
        &json!({"resourceType": "Organization", "id": "b-self", "active": true, "name": "Southdale Community Services",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": ODS_B}]}),
    );
    assert!(r.is_success(), "{}", r.brief());
    let r = sa.put(
        "Endpoint/prov-b-bars",
        &json!({"resourceType": "Endpoint", "id": "prov-b-bars", "status": "active",
            "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7-fhir-msg"},
            "payloadType": [{"text": "BaRS"}], "address": format!("{}/$process-message", sb.base)}),
    );
    assert!(r.is_success(), "{}", r.brief());
    let r = sa.put(
        "Organization/prov-b",
        &json!({"resourceType": "Organization", "id": "prov-b", "active": true, "name": "Southdale Community Services",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": ODS_B}],
            "endpoint": [{"reference": "Endpoint/prov-b-bars"}]}),
    );
    assert!(r.is_success(), "{}", r.brief());

    // Without a token, B takes nothing.
    let anon = common::client()
        .post(format!("{}/$process-message", sb.base))
        .header("Content-Type", "application/fhir+json")
        .body(json!({"resourceType": "Bundle", "type": "message"}).to_string())
        .send()
        .unwrap();
    assert_eq!(anon.status(), 401, "{n}: an unauthenticated message");
    // A person's token is not a provider's system: refused.
    let user = b_env.cli(&[
        "token",
        "--user",
        "dr.watford",
        "--scope",
        "user/*.cruds",
        "--minutes",
        "60",
    ]);
    let r = common::authorised_client(user.trim())
        .post(format!("{}/$process-message", sb.base))
        .header("Content-Type", "application/fhir+json")
        .body(json!({"resourceType": "Bundle", "type": "message"}).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 403, "{n}: a message with a user's token");

    let doctor = browser();
    sign_in(a_env, &sa.root, &doctor, "dr.watford");
    let patient = first_patient(&doctor, &sa.root);
    let chart = page(&doctor, &format!("{}/ui/patients/{patient}", sa.root));
    assert!(
        chart.contains(&format!("/ui/patients/{patient}/referrals")),
        "{n}: the chart links to referrals"
    );
    let r = sa.post(
        "DocumentReference",
        &json!({"resourceType": "DocumentReference", "status": "current", "type": {"text": "Clinic letter"},
            "subject": {"reference": format!("Patient/{patient}")},
            "content": [{"attachment": {"contentType": "application/pdf", "data": "JVBERi0xLjQKJSVFT0YK", "title": "Clinic letter"}}]}),
    );
    assert_eq!(r.status, 201, "{}", r.brief());
    let doc = r.body["id"].as_str().unwrap().to_owned();
    let form = page(
        &doctor,
        &format!("{}/ui/patients/{patient}/referrals/new", sa.root),
    );
    assert!(
        form.contains("Southdale Community Services") && form.contains(&format!("attach-{doc}")),
        "{n}: the form offers the provider and the letter"
    );
    // No reason: refused beside the field.
    let r = post(
        &doctor,
        &sa.root,
        &format!("/ui/patients/{patient}/referrals"),
        &[
            ("receiver", "prov-b"),
            ("priority", "routine"),
            ("reason", ""),
        ],
    );
    assert_eq!(r.status(), 400, "{n}");
    let html = r.text().unwrap();
    assert!(
        html.contains("nhsuk-error-summary") && html.contains("href=\"#reason\""),
        "{n}: error summary links to the reason"
    );

    // 1. Sent, received, accepted. (`soon()`: the clock a little after the
    // pages' sending, so what was sent is due.)
    let soon = || OffsetDateTime::now_utc() + time::Duration::minutes(1);
    let id1 = make_referral(
        &doctor,
        &sa.root,
        &patient,
        &doc,
        "Community rehabilitation after a fall",
    );
    let out = deliver(a_env, &sa, "trust-a", &key_a, "trust-a", soon());
    assert!(
        out.contains(&format!("delivered: ServiceRequest/{id1}")),
        "{n}: {out}"
    );
    let doctor_b = browser();
    sign_in(b_env, &sb.root, &doctor_b, "dr.watford");
    let triage = page(&doctor_b, &format!("{}/ui/referrals/triage", sb.root));
    assert!(
        triage.contains("Community rehabilitation after a fall"),
        "{n}: B's triage list"
    );
    let rid1 = attr_after(&triage, "Community rehabilitation", "data-referral")
        .map(str::to_owned)
        .or_else(|| {
            let i = triage.find("Community rehabilitation")?;
            let before = &triage[..i];
            let j = before.rfind("data-referral=\"")? + "data-referral=\"".len();
            Some(before[j..j + before[j..].find('"')?].to_owned())
        })
        .unwrap();
    let view = page(&doctor_b, &format!("{}/ui/referrals/{rid1}", sb.root));
    assert!(
        view.contains("Clinic letter"),
        "{n}: the letter came with it"
    );
    let tasks = sb.search_all(
        "Task?code=https://fhir.wardline.invalid/CodeSystem/task|referral-triage&status=requested",
    );
    assert_eq!(tasks.len(), 1, "{n}: one triage task on B");
    // No bare accept (issue 19, H-211): accepting is triage, which opens
    // the RTT pathway.
    let r = post(
        &doctor_b,
        &sb.root,
        &format!("/ui/referrals/{rid1}/accept"),
        &[("reason", "")],
    );
    assert_eq!(r.status(), 404, "{n}: no accept without triage");
    let r = post(
        &doctor_b,
        &sb.root,
        &format!("/ui/referrals/{rid1}/triage/accept"),
        &[
            ("priority", "routine"),
            ("specialty", "300"),
            ("consultant", ""),
        ],
    );
    assert_eq!(r.status(), 303, "{n}: accepted at triage");
    let out = deliver(b_env, &sb, "provider-b", &key_b, "provider-b", soon());
    assert!(
        out.contains(&format!("delivered: ServiceRequest/{rid1}")),
        "{n}: {out}"
    );
    let view = page(&doctor, &format!("{}/ui/referrals/{id1}", sa.root));
    assert!(
        view.contains("data-state=\"accepted\""),
        "{n}: A shows it accepted"
    );
    assert_eq!(
        sa.get(&format!("ServiceRequest/{id1}")).body["status"],
        "active"
    );

    // 2. Rejected with a reason.
    let id2 = make_referral(
        &doctor,
        &sa.root,
        &patient,
        &doc,
        "Memory clinic assessment",
    );
    deliver(a_env, &sa, "trust-a", &key_a, "trust-a", soon());
    let triage = page(&doctor_b, &format!("{}/ui/referrals/triage", sb.root));
    let i = triage
        .find("Memory clinic assessment")
        .expect("the second referral at B");
    let before = &triage[..i];
    let j = before.rfind("data-referral=\"").unwrap() + "data-referral=\"".len();
    let rid2 = before[j..j + before[j..].find('"').unwrap()].to_owned();
    let r = post(
        &doctor_b,
        &sb.root,
        &format!("/ui/referrals/{rid2}/reject"),
        &[("reason", "")],
    );
    assert_eq!(r.status(), 400, "{n}: a rejection needs its reason");
    let r = post(
        &doctor_b,
        &sb.root,
        &format!("/ui/referrals/{rid2}/reject"),
        &[("reason", "Not in our catchment area")],
    );
    assert_eq!(r.status(), 303, "{n}: reject");
    deliver(b_env, &sb, "provider-b", &key_b, "provider-b", soon());
    let view = page(&doctor, &format!("{}/ui/referrals/{id2}", sa.root));
    assert!(
        view.contains("data-state=\"rejected\"") && view.contains("Not in our catchment area"),
        "{n}: A shows the rejection and its reason"
    );
    let list = page(&doctor, &format!("{}/ui/referrals", sa.root));
    assert!(
        list.contains(&format!("data-referral=\"{id1}\""))
            && list.contains(&format!("data-referral=\"{id2}\"")),
        "{n}: the sent list"
    );

    // A fourth, delivered and never answered (chased below).
    let id4 = make_referral(&doctor, &sa.root, &patient, &doc, "Dietetics review");
    deliver(a_env, &sa, "trust-a", &key_a, "trust-a", soon());

    // 3. B down: retried with back-off, then a failure Task.
    sb.terminate();
    let id3 = make_referral(&doctor, &sa.root, &patient, &doc, "Podiatry");
    let m = time::Duration::minutes;
    let now = soon();
    for (t, want) in [
        (now, "retrying"),
        (now + m(5), "retrying"),
        (now + m(15), "failed"),
    ] {
        let out = deliver(a_env, &sa, "trust-a", &key_a, "trust-a", t);
        assert!(
            out.contains(&format!("{want}: ServiceRequest/{id3}")),
            "{n}: at +{}: {out}",
            (t - now).whole_minutes()
        );
    }
    let failures = sa.search_all(&format!("Task?code=https://fhir.wardline.invalid/CodeSystem/task|referral-failure&focus=ServiceRequest/{id3}"));
    assert_eq!(failures.len(), 1, "{n}: a failure task");
    let view = page(&doctor, &format!("{}/ui/referrals/{id3}", sa.root));
    assert!(
        view.contains("Not delivered"),
        "{n}: the page says it was not delivered"
    );

    // A referral with no answer is chased after the period.
    let out = a_env.cli(&[
        "referrals",
        "chase",
        "--referral-chase-days",
        "14",
        "--now",
        &at(now + time::Duration::days(15)),
    ]);
    assert!(
        out.contains(&format!("chase: ServiceRequest/{id4}")),
        "{n}: the unanswered one is chased: {out}"
    );
    assert!(
        !out.contains(&id1) && !out.contains(&id3),
        "{n}: answered or undelivered ones are not chased: {out}"
    );
}

#[test]
fn referrals_between_two_servers_sqlite() {
    scenario(&Env::sqlite(), &Env::sqlite());
}

#[test]
fn referrals_between_two_servers_postgres() {
    let (Some(a), Some(b)) = (Env::postgres(), Env::postgres()) else {
        return;
    };
    scenario(&a, &b);
}
