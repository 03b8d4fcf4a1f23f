//! `serve --duplicate-scan-minutes`: the background job finds a duplicate
//! written over the REST API (never seen by the registration form's check)
//! and queues one review `Task` for the pair, audited as the operator
//! `duplicate-scan`; a restart does not queue the pair again.

use std::time::{Duration, Instant};

use crate::common::{Env, Server, entries};
use serde_json::{Value, json};

const REVIEWS: &str = "Task?code=https://fhir.wardline.invalid/CodeSystem/task|duplicate-review";

fn patient(id: &str, given: &str, postcode: &str) -> Value {
    json!({
        "resourceType": "Patient", "id": id, "active": true,
        "name": [{"use": "official", "family": "Fairweather", "given": [given]}],
        "gender": "female", "birthDate": "1961-07-14",
        "address": [{"use": "home", "postalCode": postcode}],
    })
}

/// The review Tasks, waiting (bounded) until `n` are there.
fn reviews_when(server: &Server, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = server.get(REVIEWS);
        assert_eq!(r.status, 200, "{}", r.text);
        let found = entries(&r.body);
        if found.len() >= n || Instant::now() > deadline {
            return found.into_iter().map(|e| e["resource"].clone()).collect();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn run(env: Env) {
    {
        let s = env.start();
        let trust = json!({"resourceType": "Organization", "id": "trust", "name": "The trust"});
        assert!(s.put("Organization/trust", &trust).is_success());
        for p in [
            patient("dup-a", "Imogen", "WD18 0HB"),
            patient("dup-b", "Imogen", "WD18 0HB"),
            json!({"resourceType": "Patient", "id": "dup-other", "active": true,
                   "name": [{"family": "Okonkwo", "given": ["Chidi"]}],
                   "gender": "male", "birthDate": "1990-02-01"}),
        ] {
            let id = p["id"].as_str().unwrap().to_owned();
            let r = s.put(&format!("Patient/{id}"), &p);
            assert!(r.is_success(), "{}", r.brief());
        }
        // This server scans nothing (the harness turns the job off).
        assert!(entries(&s.get(REVIEWS).body).is_empty());
    }
    let s = env.start_with(&["--duplicate-scan-minutes", "60"]);
    let found = reviews_when(&s, 1);
    assert_eq!(found.len(), 1, "one review for the one pair: {found:?}");
    let task = &found[0];
    assert_eq!(task["status"], "requested");
    let text = task.to_string();
    assert!(
        text.contains("Patient/dup-a") && text.contains("Patient/dup-b"),
        "{task}"
    );
    assert!(!text.contains("dup-other"), "{task}");
    // Audited under the job's own name, as the privacy officer sees it.
    let ig = env.privacy_officer();
    let scans = |s: &Server| -> Vec<Value> {
        let r: Value = ig
            .get(s.url("AuditEvent?subtype=pmi-duplicate-scan&_count=100"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        entries(&r)
            .into_iter()
            .map(|e| e["resource"].clone())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = scans(&s);
        if !events.is_empty() {
            assert!(
                events[0].to_string().contains("duplicate-scan"),
                "{}",
                events[0]
            );
            break;
        }
        assert!(Instant::now() < deadline, "no audit event for the scan");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(s);
    // Restarted, it scans again at start-up: the pair is not queued twice.
    let s = env.start_with(&["--duplicate-scan-minutes", "60"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while scans(&s).len() < 2 {
        assert!(Instant::now() < deadline, "the second scan did not run");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The scan's last batch writes its audit event, so it has finished.
    assert_eq!(entries(&s.get(REVIEWS).body).len(), 1, "queued once, ever");
}

#[test]
fn duplicate_scan_sqlite() {
    run(Env::sqlite());
}

#[test]
fn duplicate_scan_postgres() {
    let Some(env) = Env::postgres() else { return };
    run(env);
}
