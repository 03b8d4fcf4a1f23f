//! Tasks over a real store (SQLite always, PostgreSQL too when
//! `WARDLINE_TEST_PG_URL` is set): the lifecycle and who may close a task,
//! the rule on REST writes, the lists, overdue reminders and escalation
//! rules with the clock moved over the due time and the rules' edges.

mod support;

use std::cell::RefCell;

use serde_json::{Value, json};
use support::{AsRole, Backend, as_role, get, put, rest};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use wardline_auth::rbac::Role;
use wardline_core::{Method, Trusted};
use wardline_workflow::tasks::job::{Outbox, run};
use wardline_workflow::tasks::lists::{Filter, Scope, list, overdue_count};
use wardline_workflow::tasks::rules::{EscalationRule, Trigger, to_plan_definition};
use wardline_workflow::tasks::{
    self, ESCALATION_EXT, KIND_SYSTEM, LEAD_ROLE, SENIOR_NURSE_ROLE, Spec, TEAM_ROLE_SYSTEM,
    TEAM_WARD_EXT, TasksError, actions::Change,
};

const T0: OffsetDateTime = datetime!(2026-12-03 09:00 UTC);

fn backends(test: &str) -> Vec<Backend> {
    support::backends(
        &format!("tasks_{test}"),
        wardline_workflow::with_rules,
        seed,
    )
}

fn practitioner(id: &str, name: &str, email: Option<&str>) -> Value {
    let mut p = json!({"resourceType": "Practitioner", "id": id, "name": [{"text": name}]});
    if let Some(e) = email {
        p["telecom"] = json!([{"system": "email", "value": e}]);
    }
    p
}

fn member(r: &str, role: Option<&str>) -> Value {
    let mut p = json!({"member": {"reference": r}});
    if let Some(role) = role {
        p["role"] = json!([{"coding": [{"system": TEAM_ROLE_SYSTEM, "code": role}]}]);
    }
    p
}

fn seed(svc: &wardline_core::FhirService) {
    put(
        svc,
        json!({"resourceType": "Patient", "id": "p1", "name": [{"family": "Tasker", "given": ["Ann"]}]}),
    );
    put(
        svc,
        json!({"resourceType": "Location", "id": "site", "status": "active", "name": "Watford"}),
    );
    put(
        svc,
        json!({"resourceType": "Location", "id": "w1", "status": "active", "name": "Ward 1", "partOf": {"reference": "Location/site"}}),
    );
    put(
        svc,
        json!({"resourceType": "Location", "id": "w2", "status": "active", "name": "Ward 2", "partOf": {"reference": "Location/site"}}),
    );
    put(
        svc,
        practitioner("n1", "Grace Okafor", Some("grace@trust.nhs.net")),
    );
    put(svc, practitioner("n2", "Megan Lloyd", None));
    put(
        svc,
        practitioner("n3", "Cara Dunn", Some("cara@trust.nhs.net")),
    );
    put(
        svc,
        practitioner("lead", "Lena Lead", Some("lead@trust.nhs.net")),
    );
    put(
        svc,
        practitioner("sister", "Sam Sister", Some("sister@trust.nhs.net")),
    );
    put(
        svc,
        json!({"resourceType": "PractitionerRole", "id": "pr-n1", "practitioner": {"reference": "Practitioner/n1"}, "location": [{"reference": "Location/w1"}]}),
    );
    put(
        svc,
        json!({"resourceType": "PractitionerRole", "id": "pr-n3", "practitioner": {"reference": "Practitioner/n3"}, "location": [{"reference": "Location/w2"}]}),
    );
    put(
        svc,
        json!({"resourceType": "CareTeam", "id": "ct-w1", "status": "active", "name": "Ward 1 nursing team",
        "extension": [{"url": TEAM_WARD_EXT, "valueReference": {"reference": "Location/w1"}}],
        "participant": [member("Practitioner/n1", None), member("Practitioner/lead", Some(LEAD_ROLE)),
            member("Practitioner/sister", Some(SENIOR_NURSE_ROLE))]}),
    );
    put(
        svc,
        json!({"resourceType": "CareTeam", "id": "ct-community", "status": "active", "name": "Community nursing team",
        "participant": [{"member": {"identifier": {"system": wardline_auth::directory::USERNAME_SYSTEM, "value": "nurse.c"}}},
            member("Practitioner/lead", Some(LEAD_ROLE))]}),
    );
    put(
        svc,
        json!({"resourceType": "Observation", "id": "obs1", "status": "final", "code": {"text": "NEWS2"}, "subject": {"reference": "Patient/p1"}}),
    );
}

/// A nurse: `who` Practitioner, position (when given), user name.
fn nurse(who: &str, position: Option<&str>, username: &str) -> AsRole {
    let mut a = as_role(Role::StaffNurse, who);
    a.agent.position = position.map(|p| format!("PractitionerRole/{p}"));
    a.agent.name = username.to_owned();
    a
}

fn op() -> Trusted {
    Trusted::operator("tasks-test")
}

fn spec(
    code: &str,
    focus: &str,
    owner: Option<&str>,
    priority: &str,
    due: Option<OffsetDateTime>,
) -> Spec {
    let mut s = Spec::new(code, "Patient/p1", focus, &format!("Do the {code} thing."));
    s.owner = owner.map(|o| json!({"reference": o}));
    s.priority = priority.to_owned();
    s.due = due;
    s
}

fn raise(b: &Backend, s: &Spec) -> String {
    let r = tasks::raise(&b.svc, &op(), s, T0).unwrap();
    assert!(r.created, "{}", b.name);
    r.id
}

/// Records what the job sends (the e2e test drives the real SMTP sender).
#[derive(Default)]
struct Recorder {
    sent: RefCell<Vec<(String, String)>>,
    refuse: RefCell<bool>,
}

impl Outbox for Recorder {
    fn send(&self, to: &str, subject: &str, _body: &str) -> Result<(), String> {
        if *self.refuse.borrow() {
            return Err("mail server down".into());
        }
        self.sent
            .borrow_mut()
            .push((to.to_owned(), subject.to_owned()));
        Ok(())
    }
}

#[test]
fn a_task_is_claimed_completed_by_its_owner_and_never_reopened() {
    for b in backends("life") {
        let n = b.name;
        let s = spec(
            "news2-urgent",
            "Observation/obs1",
            Some("Location/w1"),
            "urgent",
            Some(T0 + Duration::hours(1)),
        );
        let id = raise(&b, &s);
        // Raised once: the same kind about the same focus is not raised twice.
        let again = tasks::raise(&b.svc, &op(), &s, T0).unwrap();
        assert_eq!(
            (again.id.as_str(), again.created),
            (id.as_str(), false),
            "{n}"
        );

        // A nurse of another ward may neither complete nor cancel it (H-282).
        let other = nurse("n3", Some("pr-n3"), "nurse.w2");
        let e = tasks::complete(&b.svc, &other, &id, "Done", T0).unwrap_err();
        assert!(matches!(e, TasksError::Forbidden(_)), "{n}: {e:?}");
        assert!(e.message().contains("Ward 1"), "{n}: {e}");
        assert_eq!(get(&b.svc, "Task", &id)["status"], "requested", "{n}");

        // She claims it: now it is hers, and the ward's nurse may not close it.
        tasks::claim(&b.svc, &other, &id, T0).unwrap();
        let t = get(&b.svc, "Task", &id);
        assert_eq!(
            (t["status"].as_str(), t["owner"]["reference"].as_str()),
            (Some("accepted"), Some("Practitioner/n3")),
            "{n}"
        );
        let ward = nurse("n1", Some("pr-n1"), "nurse.w1");
        assert!(
            matches!(
                tasks::complete(&b.svc, &ward, &id, "x", T0),
                Err(TasksError::Forbidden(_))
            ),
            "{n}"
        );
        // An outcome is required.
        let e = tasks::complete(&b.svc, &other, &id, "  ", T0).unwrap_err();
        assert_eq!(e.field(), Some("outcome"), "{n}");
        tasks::complete(
            &b.svc,
            &other,
            &id,
            "Reviewed, obs repeated",
            T0 + Duration::minutes(5),
        )
        .unwrap();
        let t = get(&b.svc, "Task", &id);
        assert_eq!(t["status"], "completed", "{n}");
        assert_eq!(
            t["output"][0]["valueString"], "Reviewed, obs repeated",
            "{n}"
        );
        let notes: Vec<&str> = t["note"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["text"].as_str().unwrap())
            .collect();
        assert_eq!(
            notes,
            ["Claimed.", "Completed: Reviewed, obs repeated"],
            "{n}"
        );
        // Closed is closed: not again, and not back to requested over REST.
        assert!(
            matches!(
                tasks::claim(&b.svc, &other, &id, T0),
                Err(TasksError::Conflict(_))
            ),
            "{n}"
        );
        let mut back = t.clone();
        back["status"] = json!("requested");
        let (status, oo) = rest(&b.svc, Method::Put, &["Task", &id], Some(back));
        assert_eq!(status, 422, "{n}: {oo}");
        assert!(oo.to_string().contains("Task.status"), "{n}: {oo}");
    }
}

#[test]
fn urgent_work_always_has_an_owner_on_every_channel() {
    for b in backends("owner") {
        let n = b.name;
        // Raised without an owner: refused, naming the field (H-280).
        let e = tasks::raise(
            &b.svc,
            &op(),
            &spec(
                "ed-specialty-review",
                "Observation/obs1",
                None,
                "urgent",
                None,
            ),
            T0,
        )
        .unwrap_err();
        assert!(e.message().contains("owner"), "{n}: {e}");
        let posted = json!({"resourceType": "Task", "status": "requested", "intent": "order", "priority": "stat",
            "code": {"coding": [{"system": KIND_SYSTEM, "code": "news2-emergency"}]}, "for": {"reference": "Patient/p1"}});
        let (status, oo) = rest(&b.svc, Method::Post, &["Task"], Some(posted.clone()));
        assert_eq!(status, 422, "{n}: {oo}");
        assert!(oo.to_string().contains("Task.owner"), "{n}: {oo}");
        // With an owner it goes in; the owner cannot then be taken away.
        let mut owned = posted;
        owned["owner"] = json!({"reference": "CareTeam/ct-w1"});
        let (status, t) = rest(&b.svc, Method::Post, &["Task"], Some(owned));
        assert_eq!(status, 201, "{n}: {t}");
        let mut unowned = t.clone();
        unowned.as_object_mut().unwrap().remove("owner");
        let (status, oo) = rest(
            &b.svc,
            Method::Put,
            &["Task", t["id"].as_str().unwrap()],
            Some(unowned),
        );
        assert_eq!(status, 422, "{n}: {oo}");
        // A routine task may wait for someone to take it.
        raise(
            &b,
            &spec("falls-review", "Observation/obs1", None, "routine", None),
        );
        // Assigning to something that is not a person, team or ward is refused.
        let id = raise(
            &b,
            &spec(
                "mha-expiry",
                "Observation/obs1",
                Some("Location/w1"),
                "urgent",
                None,
            ),
        );
        let e = tasks::assign(&b.svc, &op(), &id, "Patient/p1", T0).unwrap_err();
        assert_eq!(e.field(), Some("owner"), "{n}");
        let e = tasks::assign(&b.svc, &op(), &id, "CareTeam/nope", T0).unwrap_err();
        assert_eq!(e.field(), Some("owner"), "{n}");
    }
}

#[test]
fn lists_per_person_team_and_ward_sorted_overdue_first_then_priority_then_due() {
    for b in backends("lists") {
        let n = b.name;
        let h = Duration::hours(1);
        let late = raise(
            &b,
            &spec(
                "k-late",
                "Observation/obs1",
                Some("Location/w1"),
                "routine",
                Some(T0 - h),
            ),
        );
        let stat = raise(
            &b,
            &spec(
                "k-stat",
                "Observation/obs1",
                Some("Location/w1"),
                "stat",
                Some(T0 + 3 * h),
            ),
        );
        let soon = raise(
            &b,
            &spec(
                "k-soon",
                "Observation/obs1",
                Some("CareTeam/ct-w1"),
                "urgent",
                Some(T0 + h),
            ),
        );
        let later = raise(
            &b,
            &spec(
                "k-later",
                "Observation/obs1",
                Some("CareTeam/ct-w1"),
                "urgent",
                Some(T0 + 2 * h),
            ),
        );
        let mine = raise(
            &b,
            &spec(
                "k-mine",
                "Observation/obs1",
                Some("Practitioner/n1"),
                "routine",
                None,
            ),
        );
        let elsewhere = raise(
            &b,
            &spec(
                "k-w2",
                "Observation/obs1",
                Some("Location/w2"),
                "stat",
                None,
            ),
        );
        let ward = nurse("n1", Some("pr-n1"), "nurse.w1");
        let ids = |p: &wardline_workflow::tasks::lists::Page| {
            p.rows.iter().map(|r| r.id.clone()).collect::<Vec<_>>()
        };

        let p = list(
            &b.svc,
            &ward,
            &Scope::Ward("w1".into()),
            &Filter::default(),
            1,
            T0,
        )
        .unwrap();
        assert_eq!(
            ids(&p),
            [late.as_str(), stat.as_str(), soon.as_str(), later.as_str()],
            "{n}"
        );
        assert!(p.rows[0].overdue && !p.rows[1].overdue, "{n}");
        assert_eq!(
            p.rows[0].patient_name.as_deref(),
            Some("TASKER, Ann"),
            "{n}"
        );
        assert_eq!(p.rows[0].focus.as_deref(), Some("Observation/obs1"), "{n}");
        let p = list(&b.svc, &ward, &Scope::Teams, &Filter::default(), 1, T0).unwrap();
        assert_eq!(
            ids(&p),
            [late.as_str(), stat.as_str(), soon.as_str(), later.as_str()],
            "{n}: the ward's team and the ward"
        );
        let p = list(&b.svc, &ward, &Scope::Mine, &Filter::default(), 1, T0).unwrap();
        assert_eq!(ids(&p), [mine.as_str()], "{n}");
        assert!(
            !ids(&list(&b.svc, &ward, &Scope::Teams, &Filter::default(), 1, T0).unwrap())
                .contains(&elsewhere)
        );
        // Filters.
        let f = Filter {
            priority: Some("urgent".into()),
            ..Filter::default()
        };
        assert_eq!(
            ids(&list(&b.svc, &ward, &Scope::Teams, &f, 1, T0).unwrap()),
            [soon.as_str(), later.as_str()],
            "{n}"
        );
        let f = Filter {
            overdue_only: true,
            ..Filter::default()
        };
        assert_eq!(
            ids(&list(&b.svc, &ward, &Scope::Teams, &f, 1, T0).unwrap()),
            [late.as_str()],
            "{n}"
        );
        let f = Filter {
            kind: Some("k-stat".into()),
            ..Filter::default()
        };
        assert_eq!(
            ids(&list(&b.svc, &ward, &Scope::Teams, &f, 1, T0).unwrap()),
            [stat.as_str()],
            "{n}"
        );
        // The header's count; the clock moved past two more due times.
        assert_eq!(overdue_count(&b.svc, &ward, T0).unwrap(), 1, "{n}");
        assert_eq!(
            overdue_count(&b.svc, &ward, T0 + h + Duration::seconds(1)).unwrap(),
            2,
            "{n}"
        );
        // A member of a team by user name sees its tasks.
        let community = raise(
            &b,
            &spec(
                "k-home",
                "Observation/obs1",
                Some("CareTeam/ct-community"),
                "urgent",
                None,
            ),
        );
        let c = nurse("n2", None, "nurse.c");
        assert_eq!(
            ids(&list(&b.svc, &c, &Scope::Teams, &Filter::default(), 1, T0).unwrap()),
            [community.as_str()],
            "{n}"
        );
        // Paging: 30 more routine tasks on the ward, 25 to a page.
        for i in 0..30 {
            raise(
                &b,
                &spec(
                    &format!("bulk-{i}"),
                    "Observation/obs1",
                    Some("Location/w1"),
                    "routine",
                    None,
                ),
            );
        }
        let p1 = list(
            &b.svc,
            &ward,
            &Scope::Ward("w1".into()),
            &Filter::default(),
            1,
            T0,
        )
        .unwrap();
        let p2 = list(
            &b.svc,
            &ward,
            &Scope::Ward("w1".into()),
            &Filter::default(),
            2,
            T0,
        )
        .unwrap();
        assert_eq!(
            (p1.total, p1.pages, p1.rows.len(), p2.rows.len()),
            (34, 2, 25, 9),
            "{n}"
        );
        assert_eq!(p1.rows[0].id, late, "{n}");
    }
}

#[test]
fn an_overdue_task_reminds_its_owner_once_per_overdue_period() {
    for b in backends("remind") {
        let n = b.name;
        let due = T0 + Duration::hours(2);
        let id = raise(
            &b,
            &spec(
                "k-remind",
                "Observation/obs1",
                Some("PractitionerRole/pr-n1"),
                "routine",
                Some(due),
            ),
        );
        let team = raise(
            &b,
            &spec(
                "k-team",
                "Observation/obs1",
                Some("Location/w1"),
                "routine",
                Some(due),
            ),
        );
        // An older worklist's task (its own chases): not the job's.
        let mut legacy = spec(
            "k-legacy",
            "Observation/obs1",
            Some("PractitionerRole/pr-n1"),
            "urgent",
            Some(due),
        );
        legacy.system = wardline_workflow::pmi::TASK_SYSTEM.to_owned();
        let legacy = raise(&b, &legacy);
        let out = Recorder::default();
        // At the due time exactly: not yet overdue.
        let r = run(&b.svc, &op(), Some(&out), due).unwrap();
        assert!(
            r.reminded.is_empty() && out.sent.borrow().is_empty(),
            "{n}: {r:?}"
        );
        // A second past: the owner (through her position) is emailed once (H-283).
        let r = run(&b.svc, &op(), Some(&out), due + Duration::seconds(1)).unwrap();
        assert_eq!(r.reminded, [id.as_str()], "{n}");
        assert_eq!(r.unreachable, [team.as_str()], "{n}: a ward has no email");
        assert_eq!(out.sent.borrow()[0].0, "grace@trust.nhs.net", "{n}");
        assert!(
            !out.sent.borrow()[0].1.contains("Tasker"),
            "{n}: no patient named"
        );
        run(&b.svc, &op(), Some(&out), due + Duration::minutes(10)).unwrap();
        assert_eq!(out.sent.borrow().len(), 1, "{n}: never twice in one period");
        let l = get(&b.svc, "Task", &legacy);
        assert!(
            l.get("extension").is_none() && l.get("note").is_none(),
            "{n}: {l}"
        );
        let comms = rest(&b.svc, Method::Get, &["Communication"], None).1;
        assert_eq!(comms["entry"][0]["resource"]["status"], "completed", "{n}");
        // A new due time is a new period; while the mail server is down the
        // reminder is retried, and sent once when it is back.
        tasks::change(
            &b.svc,
            &op(),
            &id,
            &Change {
                due: Some(due + Duration::hours(1)),
                priority: None,
            },
            due,
        )
        .unwrap();
        *out.refuse.borrow_mut() = true;
        let r = run(&b.svc, &op(), Some(&out), due + Duration::minutes(61)).unwrap();
        assert_eq!(r.failed, [id.as_str()], "{n}");
        *out.refuse.borrow_mut() = false;
        let r = run(&b.svc, &op(), Some(&out), due + Duration::minutes(62)).unwrap();
        assert_eq!(r.reminded, [id.as_str()], "{n}");
        run(&b.svc, &op(), Some(&out), due + Duration::minutes(63)).unwrap();
        assert_eq!(out.sent.borrow().len(), 2, "{n}");
        // Reassigned to someone else: they are told, not the first owner.
        tasks::assign(&b.svc, &op(), &id, "Practitioner/n3", due).unwrap();
        run(&b.svc, &op(), Some(&out), due + Duration::minutes(64)).unwrap();
        assert_eq!(out.sent.borrow()[2].0, "cara@trust.nhs.net", "{n}");
        // A completed task is never reminded.
        let n3 = nurse("n3", Some("pr-n3"), "nurse.w2");
        tasks::complete(&b.svc, &n3, &id, "done", due).unwrap();
        tasks::change(
            &b.svc,
            &op(),
            &team,
            &Change {
                due: Some(due + Duration::hours(6)),
                priority: None,
            },
            due,
        )
        .unwrap();
        run(&b.svc, &op(), Some(&out), due + Duration::hours(9)).unwrap();
        assert_eq!(out.sent.borrow().len(), 3, "{n}");
    }
}

#[test]
fn escalation_rules_fire_at_their_edges_once_each() {
    for b in backends("escalate") {
        let n = b.name;
        let out = Recorder::default();
        let urgent = raise(
            &b,
            &spec(
                "k-urgent",
                "Observation/obs1",
                Some("CareTeam/ct-w1"),
                "urgent",
                None,
            ),
        );
        let routine = raise(
            &b,
            &spec(
                "k-routine",
                "Observation/obs1",
                Some("Location/w1"),
                "routine",
                Some(T0 + Duration::hours(1)),
            ),
        );
        // 29 minutes: nothing; 30: the team's lead is told (H-281).
        let r = run(&b.svc, &op(), Some(&out), T0 + Duration::minutes(29)).unwrap();
        assert!(r.escalated.is_empty(), "{n}: {r:?}");
        let r = run(&b.svc, &op(), Some(&out), T0 + Duration::minutes(30)).unwrap();
        assert_eq!(
            r.escalated,
            [(
                urgent.clone(),
                "Urgent task not accepted within 30 minutes".to_owned()
            )],
            "{n}"
        );
        assert_eq!(
            out.sent.borrow().as_slice(),
            [(
                "lead@trust.nhs.net".to_owned(),
                "Wardline: A task has been escalated to you (k-urgent)".to_owned()
            )],
            "{n}"
        );
        let t = get(&b.svc, "Task", &urgent);
        let e = t["extension"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["url"] == ESCALATION_EXT)
            .unwrap();
        assert!(e.to_string().contains("Practitioner/lead"), "{n}: {e}");
        assert!(
            t["note"][0]["text"]
                .as_str()
                .unwrap()
                .contains("Lena Lead told"),
            "{n}: {t}"
        );
        run(&b.svc, &op(), Some(&out), T0 + Duration::minutes(45)).unwrap();
        assert_eq!(out.sent.borrow().len(), 1, "{n}: once per rule");
        // Overdue by 4 hours less a second: nothing; at 4 hours: raised to
        // urgent and the ward's senior nurse named.
        let r = run(
            &b.svc,
            &op(),
            Some(&out),
            T0 + Duration::hours(5) - Duration::seconds(1),
        )
        .unwrap();
        assert!(r.escalated.is_empty(), "{n}: {r:?}");
        let r = run(&b.svc, &op(), Some(&out), T0 + Duration::hours(5)).unwrap();
        assert_eq!(
            r.escalated,
            [(routine.clone(), "Overdue by 4 hours".to_owned())],
            "{n}"
        );
        let t = get(&b.svc, "Task", &routine);
        assert_eq!(t["priority"], "urgent", "{n}");
        assert!(t.to_string().contains("Practitioner/sister"), "{n}");
        // A claimed urgent task is not escalated as unaccepted.
        let claimed = raise(
            &b,
            &spec(
                "k-claimed",
                "Observation/obs1",
                Some("CareTeam/ct-w1"),
                "urgent",
                None,
            ),
        );
        tasks::claim(
            &b.svc,
            &nurse("n1", Some("pr-n1"), "nurse.w1"),
            &claimed,
            T0,
        )
        .unwrap();
        let r = run(&b.svc, &op(), Some(&out), T0 + Duration::hours(6)).unwrap();
        assert!(r.escalated.iter().all(|(t, _)| *t != claimed), "{n}: {r:?}");

        // The trust's own table (a PlanDefinition): stat news2 tasks not
        // accepted in 10 minutes are reassigned to the ward's senior nurse.
        let table = to_plan_definition(&[EscalationRule {
            name: "Stat NEWS2 to the nurse in charge".into(),
            kind: Some("news2-emergency".into()),
            min_priority: Some("stat".into()),
            trigger: Trigger::NotAccepted,
            after: Duration::minutes(10),
            target: SENIOR_NURSE_ROLE.into(),
            reassign: true,
            raise_to: None,
        }]);
        put(&b.svc, table);
        let t0 = T0 + Duration::hours(7);
        let stat = tasks::raise(
            &b.svc,
            &op(),
            &spec(
                "news2-emergency",
                "Observation/obs1",
                Some("Location/w1"),
                "stat",
                None,
            ),
            t0,
        )
        .unwrap()
        .id;
        let other = tasks::raise(
            &b.svc,
            &op(),
            &spec(
                "k-other",
                "Observation/obs1",
                Some("Location/w1"),
                "stat",
                None,
            ),
            t0,
        )
        .unwrap()
        .id;
        let r = run(&b.svc, &op(), Some(&out), t0 + Duration::minutes(10)).unwrap();
        assert_eq!(
            r.escalated,
            [(stat.clone(), "Stat NEWS2 to the nurse in charge".to_owned())],
            "{n}: only its kind ({other})"
        );
        let t = get(&b.svc, "Task", &stat);
        assert_eq!(t["owner"]["reference"], "Practitioner/sister", "{n}");
        // A broken table is reported, not half applied.
        let (status, _) = rest(
            &b.svc,
            Method::Put,
            &["PlanDefinition", "task-escalation"],
            Some(json!({
            "resourceType": "PlanDefinition", "id": "task-escalation", "status": "active",
            "action": [{"title": "x", "trigger": [{"type": "named-event", "name": "soon"}]}]})),
        );
        assert_eq!(status, 200, "{n}");
        assert!(
            matches!(
                run(&b.svc, &op(), Some(&out), t0).unwrap_err(),
                TasksError::Invalid(_)
            ),
            "{n}"
        );
    }
}
