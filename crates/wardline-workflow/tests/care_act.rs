//! Care Act notices to the local authority over a real store (SQLite
//! always, PostgreSQL too when `WARDLINE_TEST_PG_URL` is set): the
//! assessment, discharge and withdrawal notices as documents queued to the
//! local authority's routes, the timescales refusal and its override, the
//! ward's Tasks with the clock moved, the worklist, and — with the real
//! peers (`scripts/with-peers.sh`) — delivery into the local authority's
//! MESH mailbox (acknowledged there) and by email to an email-only one.

mod support;

use serde_json::{Value, json};
use support::Backend;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use wardline_core::{Body, FhirRequest, FhirService, Method, RequestHeaders, Trusted};
use wardline_workflow::pmi::TASK_SYSTEM;
use wardline_workflow::transfers::care_act::timescales::Timescales;
use wardline_workflow::transfers::care_act::{
    self, CareActError, DISCHARGE_NOTICE_DUE_CODE, NOTICE_EXT, NoticeInput, NoticeKind,
    ORG_KIND_SYSTEM, UNACKNOWLEDGED_CODE,
};
use wardline_workflow::transfers::email::{Mailer, SmtpConfig, SmtpSecurity};
use wardline_workflow::transfers::mesh::{MeshClient, MeshConfig, auth_header};
use wardline_workflow::transfers::routing::{Channel, Route, set_routes};
use wardline_workflow::transfers::send::{Policy, Transports, run};
use wardline_workflow::transfers::{delivery_text, kind_of, peers};

fn backends(test: &str) -> Vec<Backend> {
    support::backends(
        &format!("careact_{test}"),
        wardline_workflow::with_rules,
        seed,
    )
}

fn op() -> Trusted {
    Trusted::operator("care-act-test")
}

/// Monday 30 November 2026, 09:00 (GMT: local time is UTC).
const T0: OffsetDateTime = datetime!(2026-11-30 09:00 UTC);
const NHS: &str = "9434765919";

fn put(svc: &FhirService, r: Value) {
    let access = op();
    let mut tx = svc.begin(&access).unwrap();
    tx.save(r).unwrap();
    tx.commit().unwrap();
}

fn get(svc: &FhirService, t: &str, id: &str) -> Value {
    let access = op();
    let mut tx = svc.begin(&access).unwrap();
    let v = tx.get(t, id).unwrap().unwrap();
    tx.commit().unwrap();
    v
}

fn find(svc: &FhirService, t: &str, q: &str) -> Vec<Value> {
    let access = op();
    let mut tx = svc.begin(&access).unwrap();
    let v = tx.find(t, q).unwrap();
    tx.commit().unwrap();
    v
}

/// The AuditEvents of a Wardline subtype, read over the FHIR API.
fn audited(svc: &FhirService, subtype: &str) -> usize {
    let r = svc.handle(
        FhirRequest {
            method: Method::Get,
            path: vec!["AuditEvent".into()],
            query: vec![("subtype".into(), subtype.into())],
            headers: RequestHeaders::default(),
            body: None,
        },
        &op(),
    );
    let body = match r.body {
        Body::Json(v) => v,
        Body::Raw(s) => serde_json::from_str(&s).unwrap(),
        _ => panic!("no body"),
    };
    body["entry"].as_array().map_or(0, Vec::len)
}

fn tasks(svc: &FhirService, code: &str) -> Vec<Value> {
    find(svc, "Task", &format!("code={TASK_SYSTEM}|{code}"))
}

fn place(svc: &FhirService, id: &str, name: &str, kind: &str, parent: Option<&str>) {
    let mut l = json!({"resourceType": "Location", "id": id, "name": name, "status": "active",
        "physicalType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": kind}]}});
    if let Some(p) = parent {
        l["partOf"] = json!({"reference": format!("Location/{p}")});
    }
    put(svc, l);
}

/// A patient in hospital on Ash Ward (e1), another on Birch Ward (e2), a
/// local authority with MESH then email, one with email only, and a GP
/// practice (not a local authority).
fn seed(svc: &FhirService) {
    put(
        svc,
        json!({"resourceType": "Patient", "id": "p1", "name": [{"family": "Smith", "given": ["Ann"]}],
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": NHS}]}),
    );
    put(
        svc,
        json!({"resourceType": "Patient", "id": "p2", "name": [{"family": "Brown", "given": ["Tom"]}]}),
    );
    place(svc, "ward-a", "Ash Ward", "wa", None);
    place(svc, "bed-a1", "Bed 1", "bd", Some("ward-a"));
    place(svc, "ward-b", "Birch Ward", "wa", None);
    place(svc, "bed-b1", "Bed 1", "bd", Some("ward-b"));
    for (enc, pat, bed) in [("e1", "p1", "bed-a1"), ("e2", "p2", "bed-b1")] {
        put(
            svc,
            json!({"resourceType": "Encounter", "id": enc, "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": format!("Patient/{pat}")},
            "serviceProvider": {"reference": "Organization/trust", "display": "Wardline General Hospital"},
            "period": {"start": "2026-11-27T09:00:00Z"},
            "location": [{"location": {"reference": format!("Location/{bed}"), "display": "Bed 1"}, "status": "active"}]}),
        );
    }
    for (id, name) in [
        ("la-north", "Northshire County Council"),
        ("la-south", "Southborough Council"),
    ] {
        put(
            svc,
            json!({"resourceType": "Organization", "id": id, "name": name, "active": true,
            "type": [{"coding": [{"system": ORG_KIND_SYSTEM, "code": "local-authority", "display": "Local authority"}]}]}),
        );
    }
    put(
        svc,
        json!({"resourceType": "Organization", "id": "gp-x1", "name": "Riverside Medical Centre", "active": true,
        "type": [{"coding": [{"system": "https://fhir.nhs.uk/CodeSystem/organisation-role", "code": "76"}]}]}),
    );
    set_routes(
        svc,
        &op(),
        "la-north",
        &[
            Route {
                channel: Channel::Mesh,
                address: "X26ABC3".into(),
            },
            Route {
                channel: Channel::Email,
                address: "hospital.discharges@northshire.gov.uk".into(),
            },
        ],
    )
    .unwrap();
    set_routes(
        svc,
        &op(),
        "la-south",
        &[Route {
            channel: Channel::Email,
            address: "adult.social.care@southborough.gov.uk".into(),
        }],
    )
    .unwrap();
}

fn assessment(la: &str, day: &str) -> NoticeInput {
    NoticeInput {
        local_authority: la.into(),
        discharge_day: day.into(),
        consulted: true,
        objection: "none".into(),
        chc: "not-eligible".into(),
        contact_name: "Sam Patel, discharge coordinator".into(),
        contact_phone: "01632 960 123".into(),
        contact_email: String::new(),
        override_reason: String::new(),
    }
}

fn field_of(e: CareActError) -> String {
    match e {
        CareActError::Field(f, _) => f,
        other => panic!("expected a field error, got {other:?}"),
    }
}

fn ext(dr: &Value, name: &str) -> Value {
    dr["extension"][0]["extension"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["url"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn an_assessment_notice_is_a_document_queued_to_the_local_authority() {
    let t = Timescales::default();
    for b in backends("assess") {
        let svc = &b.svc;
        // Refusals name the field.
        let mut bad = assessment("", "2026-12-03");
        assert_eq!(
            field_of(
                care_act::give(svc, &op(), NoticeKind::Assessment, "e1", &bad, &t, T0).unwrap_err()
            ),
            "local-authority"
        );
        bad.local_authority = "gp-x1".into();
        assert_eq!(
            field_of(
                care_act::give(svc, &op(), NoticeKind::Assessment, "e1", &bad, &t, T0).unwrap_err()
            ),
            "local-authority",
            "a GP practice is not a local authority"
        );
        bad = assessment("la-north", "2026-12-03");
        bad.consulted = false;
        assert_eq!(
            field_of(
                care_act::give(svc, &op(), NoticeKind::Assessment, "e1", &bad, &t, T0).unwrap_err()
            ),
            "consulted"
        );
        bad = assessment("la-north", "2026-12-03");
        bad.chc = String::new();
        assert_eq!(
            field_of(
                care_act::give(svc, &op(), NoticeKind::Assessment, "e1", &bad, &t, T0).unwrap_err()
            ),
            "chc"
        );
        bad = assessment("la-north", "2026-12-03");
        bad.contact_phone = "call me".into();
        assert_eq!(
            field_of(
                care_act::give(svc, &op(), NoticeKind::Assessment, "e1", &bad, &t, T0).unwrap_err()
            ),
            "contact-phone"
        );
        bad = assessment("la-north", "2026-11-29");
        assert_eq!(
            field_of(
                care_act::give(svc, &op(), NoticeKind::Assessment, "e1", &bad, &t, T0).unwrap_err()
            ),
            "discharge-day"
        );
        assert!(
            find(svc, "DocumentReference", "subject=Patient/p1").is_empty(),
            "{}: nothing written on a refusal",
            b.name
        );

        let g = care_act::give(
            svc,
            &op(),
            NoticeKind::Assessment,
            "e1",
            &assessment("la-north", "2026-12-03"),
            &t,
            T0,
        )
        .unwrap();
        assert_eq!(g.earliest_discharge.as_deref(), Some("2026-12-02"));
        assert_eq!(
            g.latest_discharge_notice.as_deref(),
            Some("2026-12-02T14:00:00Z")
        );
        let dr = get(svc, "DocumentReference", &g.document);
        assert_eq!(dr["type"]["coding"][0]["code"], "assessment");
        assert_eq!(dr["subject"]["reference"], "Patient/p1");
        assert_eq!(dr["context"]["encounter"][0]["reference"], "Encounter/e1");
        assert_eq!(dr["extension"][0]["url"], NOTICE_EXT);
        assert_eq!(
            ext(&dr, "localAuthority")["valueReference"]["reference"],
            "Organization/la-north"
        );
        assert_eq!(
            ext(&dr, "ward")["valueReference"]["reference"],
            "Location/ward-a"
        );
        assert_eq!(ext(&dr, "dischargeDay")["valueDate"], "2026-12-03");
        assert_eq!(ext(&dr, "chc")["valueCode"], "not-eligible");
        // The document: the Composition first, the statutory content in it.
        let url = dr["content"][0]["attachment"]["url"].as_str().unwrap();
        let bundle = get(svc, "Bundle", url.strip_prefix("Bundle/").unwrap());
        assert_eq!(bundle["type"], "document");
        let comp = &bundle["entry"][0]["resource"];
        assert_eq!(comp["resourceType"], "Composition");
        let text = comp["text"]["div"].as_str().unwrap();
        for want in [
            "Assessment notice",
            "SMITH",
            NHS,
            "Wardline General Hospital",
            "Ash Ward",
            "2026-12-03",
            "consulted",
            "continuing healthcare",
            "Sam Patel",
            "01632 960 123",
        ] {
            assert!(
                text.to_lowercase().contains(&want.to_lowercase()),
                "{}: {want} in {text}",
                b.name
            );
        }
        assert_eq!(bundle["entry"][1]["resource"]["resourceType"], "Patient");
        // Queued to the local authority as a Care Act assessment delivery.
        let c = get(svc, "Communication", &g.delivery);
        assert_eq!(c["status"], "preparation");
        assert_eq!(
            kind_of(&c),
            Some(wardline_workflow::transfers::Kind::CareActAssessment)
        );
        assert_eq!(c["recipient"][0]["reference"], "Organization/la-north");
        assert_eq!(
            c["payload"][0]["contentReference"]["reference"],
            format!("DocumentReference/{}", g.document)
        );
        // The admission's page: the notice, and the local authority the
        // next form offers.
        let case = care_act::case(svc, &op(), "e1").unwrap();
        assert_eq!(case.notices.len(), 1);
        assert_eq!(case.notices[0].kind, NoticeKind::Assessment);
        assert_eq!(case.notices[0].delivery.as_ref().unwrap().label(), "Queued");
        assert_eq!(case.default_local_authority.as_deref(), Some("la-north"));
        assert_eq!(case.local_authorities.len(), 2);
        assert_eq!(case.ward.as_deref(), Some("Ash Ward"));
        // Giving and viewing are audited under their own subtypes.
        for subtype in ["care-act-notice", "care-act-view"] {
            assert!(audited(svc, subtype) > 0, "{}: {subtype} audited", b.name);
        }
    }
}

#[test]
fn a_discharge_notice_short_of_the_timescales_needs_a_recorded_reason() {
    let t = Timescales::default();
    for b in backends("discharge") {
        let svc = &b.svc;
        let mut d = assessment("la-north", "2026-12-01");
        // No assessment notice in force yet.
        let e = care_act::give(svc, &op(), NoticeKind::Discharge, "e1", &d, &t, T0).unwrap_err();
        assert!(matches!(e, CareActError::Conflict(_)), "{e:?}");
        let a = care_act::give(
            svc,
            &op(),
            NoticeKind::Assessment,
            "e1",
            &assessment("la-north", "2026-12-03"),
            &t,
            T0,
        )
        .unwrap();
        // Discharge on Tuesday 1 December, given Monday 10:00: before the
        // earliest discharge day (Wednesday) — refused, naming the field.
        let at = T0 + Duration::hours(1);
        let e = care_act::give(svc, &op(), NoticeKind::Discharge, "e1", &d, &t, at).unwrap_err();
        let CareActError::Field(f, m) = e else {
            panic!("{e:?}")
        };
        assert_eq!(f, "override-reason");
        assert!(m.contains("2026-12-02"), "{m}");
        // To another authority than the assessment's: refused.
        let mut other = d.clone();
        other.local_authority = "la-south".into();
        other.override_reason = "x".into();
        assert_eq!(
            field_of(
                care_act::give(svc, &op(), NoticeKind::Discharge, "e1", &other, &t, at)
                    .unwrap_err()
            ),
            "local-authority"
        );
        // With a reason recorded it is given, and the reason kept.
        d.override_reason =
            "Patient's own home care package restarts; agreed by phone with the social worker."
                .into();
        let g = care_act::give(svc, &op(), NoticeKind::Discharge, "e1", &d, &t, at).unwrap();
        let dr = get(svc, "DocumentReference", &g.document);
        assert_eq!(dr["type"]["coding"][0]["code"], "discharge");
        assert!(
            ext(&dr, "overrideReason")["valueString"]
                .as_str()
                .unwrap()
                .contains("home care package")
        );
        let c = get(svc, "Communication", &g.delivery);
        assert_eq!(
            kind_of(&c),
            Some(wardline_workflow::transfers::Kind::CareActDischarge)
        );
        // A discharge notice in time needs no reason: Thursday's discharge
        // given Wednesday 13:59.
        let mut ok = assessment("la-north", "2026-12-03");
        ok.local_authority = String::new(); // defaults to the assessment's
        care_act::give(
            svc,
            &op(),
            NoticeKind::Discharge,
            "e1",
            &ok,
            &t,
            datetime!(2026-12-02 13:59 UTC),
        )
        .unwrap();
        // Withdrawal: a reason is required, it goes to the same authority,
        // and a notice is withdrawn once.
        assert_eq!(
            field_of(care_act::withdraw(svc, &op(), &a.document, " ", at).unwrap_err()),
            "reason"
        );
        let w = care_act::withdraw(
            svc,
            &op(),
            &a.document,
            "No longer likely to need care and support.",
            at,
        )
        .unwrap();
        let wdr = get(svc, "DocumentReference", &w.document);
        assert_eq!(wdr["type"]["coding"][0]["code"], "withdrawal");
        assert_eq!(
            get(svc, "Communication", &w.delivery)["recipient"][0]["reference"],
            "Organization/la-north"
        );
        assert!(matches!(
            care_act::withdraw(svc, &op(), &a.document, "again", at).unwrap_err(),
            CareActError::Conflict(_)
        ));
        let case = care_act::case(svc, &op(), "e1").unwrap();
        let assess = case.notices.iter().find(|n| n.id == a.document).unwrap();
        assert_eq!(assess.withdrawn_by.as_deref(), Some(w.document.as_str()));
        // With none in force, the form offers the patient's previous
        // authority; a patient with no notice has no default.
        assert_eq!(case.default_local_authority.as_deref(), Some("la-north"));
        let other = care_act::case(svc, &op(), "e2").unwrap();
        assert_eq!(other.default_local_authority, None);
        // With the assessment withdrawn, no discharge notice can follow.
        assert!(matches!(
            care_act::give(svc, &op(), NoticeKind::Discharge, "e1", &ok, &t, at).unwrap_err(),
            CareActError::Conflict(_)
        ));
    }
}

#[test]
fn a_lost_notice_and_a_missing_discharge_notice_raise_tasks_on_the_ward_worklist() {
    let t = Timescales::default();
    for b in backends("overdue") {
        let svc = &b.svc;
        let a = care_act::give(
            svc,
            &op(),
            NoticeKind::Assessment,
            "e1",
            &assessment("la-north", "2026-12-03"),
            &t,
            T0,
        )
        .unwrap();
        // Within four hours: nothing.
        let created = care_act::raise_overdue(svc, &op(), &t, T0 + Duration::hours(3)).unwrap();
        assert!(created.is_empty(), "{}: {created:?}", b.name);
        // Four hours on, not delivered: one Task on Ash Ward's worklist.
        let created = care_act::raise_overdue(svc, &op(), &t, T0 + Duration::hours(4)).unwrap();
        assert_eq!(created.len(), 1, "{}", b.name);
        let task = &tasks(svc, UNACKNOWLEDGED_CODE)[0];
        assert_eq!(task["location"]["reference"], "Location/ward-a");
        assert_eq!(
            task["focus"]["reference"],
            format!("DocumentReference/{}", a.document)
        );
        assert_eq!(task["status"], "requested");
        // Never twice.
        assert!(
            care_act::raise_overdue(svc, &op(), &t, T0 + Duration::hours(5))
                .unwrap()
                .is_empty()
        );
        // The worklist of Ash Ward shows it; Birch Ward's does not.
        let rows = care_act::worklist(svc, &op(), Some("ward-a"), T0 + Duration::hours(5)).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].encounter, "Encounter/e1");
        assert_eq!(rows[0].tasks.len(), 1);
        assert!(audited(svc, "care-act-worklist") > 0, "{}", b.name);
        assert!(audited(svc, "care-act-overdue") > 0, "{}", b.name);
        assert!(
            care_act::worklist(svc, &op(), Some("ward-b"), T0)
                .unwrap()
                .is_empty()
        );
        // Delivered (the local authority acknowledged): the Task closes.
        let mut c = get(svc, "Communication", &a.delivery);
        c["status"] = json!("completed");
        c["sent"] = json!("2026-11-30T14:00:00Z");
        c["received"] = json!("2026-11-30T14:30:00Z");
        put(svc, c);
        care_act::raise_overdue(svc, &op(), &t, T0 + Duration::hours(6)).unwrap();
        assert_eq!(tasks(svc, UNACKNOWLEDGED_CODE)[0]["status"], "completed");
        // The discharge notice for Thursday is due by Wednesday 14:00: from
        // 10:00 (four hours before) it is on the worklist.
        let before = datetime!(2026-12-02 09:59 UTC);
        assert!(
            care_act::raise_overdue(svc, &op(), &t, before)
                .unwrap()
                .is_empty()
        );
        let created =
            care_act::raise_overdue(svc, &op(), &t, datetime!(2026-12-02 10:00 UTC)).unwrap();
        assert_eq!(created.len(), 1, "{}", b.name);
        let due = &tasks(svc, DISCHARGE_NOTICE_DUE_CODE)[0];
        assert_eq!(due["location"]["reference"], "Location/ward-a");
        assert_eq!(due["restriction"]["period"]["end"], "2026-12-02T14:00:00Z");
        // Giving the discharge notice closes it.
        let mut d = assessment("la-north", "2026-12-03");
        d.local_authority = String::new();
        care_act::give(
            svc,
            &op(),
            NoticeKind::Discharge,
            "e1",
            &d,
            &t,
            datetime!(2026-12-02 11:00 UTC),
        )
        .unwrap();
        assert_eq!(
            tasks(svc, DISCHARGE_NOTICE_DUE_CODE)[0]["status"],
            "completed"
        );
    }
}

fn la_mailbox_takes(url: &str, key: &str, id: &str) -> Vec<u8> {
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
    let inbox: Value = http
        .get(format!("{url}/messageexchange/X26ABC3/inbox"))
        .header("authorization", auth())
        .header("accept", "application/vnd.mesh.v2+json")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        inbox["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|x| x == id)),
        "the notice is in the local authority's inbox: {inbox}"
    );
    let body = http
        .get(format!("{url}/messageexchange/X26ABC3/inbox/{id}"))
        .header("authorization", auth())
        .header("accept", "application/vnd.mesh.v2+json")
        .send()
        .unwrap();
    assert!(body.status().is_success(), "download: {}", body.status());
    let bytes = body.bytes().unwrap().to_vec();
    let ack = http
        .put(format!(
            "{url}/messageexchange/X26ABC3/inbox/{id}/status/acknowledged"
        ))
        .header("authorization", auth())
        .header("accept", "application/vnd.mesh.v2+json")
        .send()
        .unwrap();
    assert!(ack.status().is_success(), "acknowledge: {}", ack.status());
    bytes
}

#[test]
fn the_assessment_notice_arrives_in_the_local_authority_mesh_mailbox() {
    let Some((url, key)) = peers::mesh() else {
        return;
    };
    let t = Timescales::default();
    for b in backends("mesh") {
        let svc = &b.svc;
        let g = care_act::give(
            svc,
            &op(),
            NoticeKind::Assessment,
            "e1",
            &assessment("la-north", "2026-12-03"),
            &t,
            T0,
        )
        .unwrap();
        let transports = Transports {
            mesh: Some(
                MeshClient::new(MeshConfig {
                    url: url.clone(),
                    mailbox: "X26ABC1".into(),
                    password: "password".into(),
                    shared_key: key.clone(),
                    identity_pem: None,
                })
                .unwrap(),
            ),
            email: None,
        };
        let r = run(svc, &op(), &transports, Policy::default(), T0).unwrap();
        assert_eq!(r.sent, vec![g.delivery.clone()], "{}", b.name);
        let c = get(svc, "Communication", &g.delivery);
        assert_eq!(c["status"], "in-progress");
        assert_eq!(delivery_text(&c, "address"), Some("X26ABC3"));
        let mid = delivery_text(&c, "meshMessageId").unwrap().to_owned();
        let got: Value = serde_json::from_slice(&la_mailbox_takes(&url, &key, &mid)).unwrap();
        assert_eq!(got["type"], "document");
        let comp = &got["entry"][0]["resource"];
        assert_eq!(comp["type"]["coding"][0]["code"], "assessment");
        assert!(comp["text"]["div"].as_str().unwrap().contains(NHS));
        let r = run(
            svc,
            &op(),
            &transports,
            Policy::default(),
            T0 + Duration::minutes(1),
        )
        .unwrap();
        assert_eq!(r.acknowledged, vec![g.delivery.clone()], "{}", b.name);
        let case = care_act::case(svc, &op(), "e1").unwrap();
        assert_eq!(
            case.notices[0].delivery.as_ref().unwrap().label(),
            "Acknowledged"
        );
        // Acknowledged in time: no Task when the four hours pass.
        assert!(
            care_act::raise_overdue(svc, &op(), &t, T0 + Duration::hours(5))
                .unwrap()
                .is_empty()
        );
    }
}

#[test]
fn an_email_only_local_authority_gets_the_notice_by_email() {
    let Some((host, port, dir)) = peers::smtp() else {
        return;
    };
    let t = Timescales::default();
    for b in backends("email") {
        let svc = &b.svc;
        let g = care_act::give(
            svc,
            &op(),
            NoticeKind::Assessment,
            "e2",
            &assessment("la-south", ""),
            &t,
            T0,
        )
        .unwrap();
        let mailer = Mailer::new(&SmtpConfig {
            host: host.clone(),
            port,
            from: "discharges@wardline-trust.nhs.net".into(),
            security: SmtpSecurity::None,
            credentials: None,
        })
        .unwrap();
        let transports = Transports {
            mesh: None,
            email: Some(mailer),
        };
        let r = run(svc, &op(), &transports, Policy::default(), T0).unwrap();
        assert_eq!(r.sent, vec![g.delivery.clone()], "{}", b.name);
        let c = get(svc, "Communication", &g.delivery);
        assert_eq!(c["status"], "completed");
        assert_eq!(
            delivery_text(&c, "address"),
            Some("adult.social.care@southborough.gov.uk")
        );
        let marker = format!("Communication/{}", g.delivery);
        let found = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
            .find(|m| m.contains(&marker))
            .expect("the email arrived at the SMTP server");
        assert!(
            found.contains("X-Envelope-To: adult.social.care@southborough.gov.uk"),
            "{found}"
        );
        assert!(found.contains("Care Act assessment notice"), "{found}");
        assert!(found.contains("application/fhir+json"), "{found}");
        assert!(found.contains("care-act-assessment.fhir.json"), "{found}");
        // Handed to the mail server: delivered, no Task.
        assert!(
            care_act::raise_overdue(svc, &op(), &t, T0 + Duration::hours(5))
                .unwrap()
                .is_empty()
        );
    }
}
