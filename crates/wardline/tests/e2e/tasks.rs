//! Tasks (issue 20) through the real server on both backends:
//!
//! * a ward's task raised over FHIR is on nurse.w1's ward list and her
//!   teams' list, overdue first and counted in the header's badge; she
//!   claims it; completing it without an outcome is refused with the error
//!   summary linking to the field; with one it is completed;
//! * an urgent task POSTed without an owner is refused (422, `Task.owner`);
//! * `wardline tasks run --now` past a task's due time emails its owner
//!   through the SMTP sink, once (with `scripts/with-peers.sh`).

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use wardline_workflow::transfers::peers;

use crate::common::{Env, Server};
use crate::ui::{browser, csrf, sign_in};

const KIND: &str = "https://fhir.wardline.invalid/CodeSystem/task-kind";

fn at(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

fn task(owner: &str, priority: &str, due: OffsetDateTime, what: &str) -> Value {
    json!({"resourceType": "Task", "status": "requested", "intent": "order", "priority": priority,
        "code": {"coding": [{"system": KIND, "code": "e2e-check", "display": "E2E check"}]},
        "description": what, "owner": {"reference": owner},
        "authoredOn": at(OffsetDateTime::now_utc()),
        "restriction": {"period": {"end": at(due)}}})
}

fn created(s: &Server, body: &Value) -> String {
    let r = s.post("Task", body);
    assert_eq!(r.status, 201, "{}", r.brief());
    r.body["id"].as_str().unwrap().to_owned()
}

fn scenario(env: &Env, smtp: Option<&(String, u16, std::path::PathBuf)>) {
    let s = env.start_with(&["--demo"]);
    let root = s.root.clone();
    let now = OffsetDateTime::now_utc();
    let hour = time::Duration::hours(1);

    // Urgent work is always someone's, on REST too.
    let mut unowned = task("Location/watford-w1", "urgent", now, "x");
    unowned.as_object_mut().unwrap().remove("owner");
    let r = s.post("Task", &unowned);
    assert_eq!(r.status, 422, "{}: {}", env.name, r.brief());
    assert!(r.body.to_string().contains("Task.owner"), "{}", r.brief());

    // Two ward tasks: one overdue, one not.
    let late = created(
        &s,
        &task(
            "Location/watford-w1",
            "routine",
            now - hour,
            "Check the fluid balance chart",
        ),
    );
    let soon = created(
        &s,
        &task(
            "Location/watford-w1",
            "stat",
            now + hour,
            "Repeat the observations",
        ),
    );
    let nurse = browser();
    sign_in(env, &root, &nurse, "nurse.w1");
    let list = nurse
        .get(format!("{root}/ui/tasks?list=ward&ward=watford-w1"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let (a, b) = (
        list.find(&format!("data-task=\"{late}\""))
            .expect("the overdue task is listed"),
        list.find(&format!("data-task=\"{soon}\""))
            .expect("the stat task is listed"),
    );
    assert!(a < b, "{}: overdue first", env.name);
    assert!(list.contains("data-testid=\"overdue\""), "{}", env.name);
    assert!(list.contains("data-testid=\"tasks-badge\""), "{}", env.name);
    assert!(
        list.contains(" overdue)"),
        "{}: the header counts it",
        env.name
    );
    let teams = nurse
        .get(format!("{root}/ui/tasks?list=teams"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        teams.contains(&format!("data-task=\"{late}\"")),
        "{}",
        env.name
    );

    // Claim, then complete: the outcome is required.
    let post = |path: &str, form: &[(&str, &str)]| {
        let token = csrf(&root, &nurse);
        let mut f = vec![("csrf", token.as_str())];
        f.extend_from_slice(form);
        nurse.post(format!("{root}{path}")).form(&f).send().unwrap()
    };
    let r = post(&format!("/ui/tasks/{late}/claim"), &[]);
    assert_eq!(r.status(), 303, "{}", env.name);
    let t = s.get(&format!("Task/{late}")).body;
    assert_eq!(t["status"], "accepted", "{}: {t}", env.name);
    let r = post(&format!("/ui/tasks/{late}/complete"), &[("outcome", "")]);
    assert_eq!(r.status(), 400, "{}", env.name);
    let html = r.text().unwrap();
    assert!(
        html.contains("nhsuk-error-summary") && html.contains("href=\"#outcome\""),
        "{}",
        env.name
    );
    let r = post(
        &format!("/ui/tasks/{late}/complete"),
        &[("outcome", "Chart reviewed, balance +300 mL")],
    );
    assert_eq!(r.status(), 303, "{}", env.name);
    let t = s.get(&format!("Task/{late}")).body;
    assert_eq!(t["status"], "completed", "{}: {t}", env.name);
    assert_eq!(
        t["output"][0]["valueString"],
        "Chart reviewed, balance +300 mL"
    );

    // The reminder by email, once, to the owner.
    let Some((host, port, dir)) = smtp else {
        return;
    };
    let r = s.put(
        "Practitioner/e2e-owner",
        &json!({"resourceType": "Practitioner", "id": "e2e-owner", "name": [{"text": "Ed Owner"}],
            "telecom": [{"system": "email", "value": "ed.owner@trust.nhs.net"}]}),
    );
    assert!(r.is_success(), "{}", r.brief());
    let mine = created(
        &s,
        &task(
            "Practitioner/e2e-owner",
            "routine",
            now + hour,
            "Call the patient's daughter",
        ),
    );
    let port = port.to_string();
    let run = |when: OffsetDateTime| {
        env.cli(&[
            "tasks",
            "run",
            "--now",
            &at(when),
            "--smtp-host",
            host,
            "--smtp-port",
            &port,
            "--smtp-security",
            "none",
            "--smtp-from",
            "wardline@watford-trust.nhs.net",
        ])
    };
    let out = run(now + hour - time::Duration::seconds(1));
    assert!(
        !out.contains(&format!("reminded: Task/{mine}")),
        "{}: {out}",
        env.name
    );
    let out = run(now + 2 * hour);
    assert!(
        out.contains(&format!("reminded: Task/{mine}")),
        "{}: {out}",
        env.name
    );
    let out = run(now + 2 * hour + time::Duration::minutes(1));
    assert!(
        !out.contains(&format!("reminded: Task/{mine}")),
        "{}: {out}",
        env.name
    );
    let marker = format!("/ui/tasks/{mine}");
    let mails: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .filter(|m| m.contains(&marker))
        .collect();
    assert_eq!(mails.len(), 1, "{}: one reminder", env.name);
    assert!(
        mails[0].contains("X-Envelope-To: ed.owner@trust.nhs.net"),
        "{}",
        mails[0]
    );
    let comms = s.get("Communication?recipient=Practitioner/e2e-owner").body;
    assert_eq!(
        comms["entry"][0]["resource"]["status"], "completed",
        "{}: {comms}",
        env.name
    );
}

#[test]
fn ward_tasks_are_claimed_and_completed_and_an_overdue_owner_is_emailed() {
    let smtp = peers::smtp();
    scenario(&Env::sqlite(), smtp.as_ref());
    if let Some(pg) = Env::postgres() {
        scenario(&pg, smtp.as_ref());
    }
}
