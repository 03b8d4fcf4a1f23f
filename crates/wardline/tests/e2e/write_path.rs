//! Issue 21, a cheaper write path, against the real binary on SQLite and
//! PostgreSQL: the narrowed index rows (a relative reference stores no URL
//! text; SQLite's index rows carry no `patient_key`) still find every match
//! over HTTP — by `Type/id`, by id with a type modifier, by the compartment
//! parameter, by an absolute URL, through `_include` and `_revinclude` and a
//! chain — and reads by id from many clients at once each leave their
//! `AuditEvent` in a chain that still verifies.

use crate::common;

use common::{Env, Server, page_ids};
use serde_json::{Value, json};

fn create(s: &Server, body: Value) -> String {
    let r = s.post(common::rtype(&body).to_owned().as_str(), &body);
    assert_eq!(r.status, 201, "{}: create: {}", s.backend, r.brief());
    r.body["id"].as_str().expect("id").to_owned()
}

fn ids(s: &Server, query: &str) -> Vec<String> {
    let r = s.get(query);
    assert_eq!(r.status, 200, "{}: {query}: {}", s.backend, r.brief());
    let mut v = page_ids(&r.body);
    v.sort();
    v
}

fn observation(subject: &str, code: &str) -> Value {
    json!({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": subject}, "valueQuantity": {"value": 72, "unit": "/min",
        "system": "http://unitsofmeasure.org", "code": "/min"}})
}

fn run(env: &Env) {
    let s = env.start();
    let p = create(
        &s,
        json!({"resourceType": "Patient", "name": [{"family": "Narrow"}]}),
    );
    let other = create(
        &s,
        json!({"resourceType": "Patient", "name": [{"family": "Other"}]}),
    );
    let rel = create(&s, observation(&format!("Patient/{p}"), "8867-4"));
    let _elsewhere = create(&s, observation(&format!("Patient/{other}"), "8867-4"));
    let abs_url = "https://other.example/fhir/Patient/x1";
    let abs = create(&s, observation(abs_url, "8867-4"));

    let b = s.backend;
    assert_eq!(
        ids(&s, &format!("Observation?subject=Patient/{p}")),
        vec![rel.clone()],
        "{b}"
    );
    assert_eq!(
        ids(&s, &format!("Observation?subject:Patient={p}")),
        vec![rel.clone()],
        "{b}"
    );
    assert_eq!(
        ids(&s, &format!("Observation?patient={p}")),
        vec![rel.clone()],
        "{b}"
    );
    assert_eq!(
        ids(
            &s,
            &format!("Observation?patient={p}&code=http://loinc.org|8867-4")
        ),
        vec![rel.clone()],
        "{b}"
    );
    assert_eq!(
        ids(
            &s,
            &format!("Observation?subject={}", common::escape_uri(abs_url))
        ),
        vec![abs.clone()],
        "{b}: an absolute URL keeps its text"
    );
    assert_eq!(
        ids(&s, "Observation?subject:Patient.family=Narrow"),
        vec![rel.clone()],
        "{b}: chain"
    );
    let inc = s.get(&format!(
        "Observation?_id={rel}&_include=Observation:subject"
    ));
    let mut got: Vec<String> = common::entries(&inc.body)
        .iter()
        .map(|e| {
            format!(
                "{}/{}",
                common::rtype(&e["resource"]),
                common::rid(&e["resource"])
            )
        })
        .collect();
    got.sort();
    let mut want = vec![format!("Observation/{rel}"), format!("Patient/{p}")];
    want.sort();
    assert_eq!(got, want, "{b}: _include");
    let rev = s.get(&format!("Patient?_id={p}&_revinclude=Observation:subject"));
    let mut got: Vec<String> = common::entries(&rev.body)
        .iter()
        .map(|e| {
            format!(
                "{}/{}",
                common::rtype(&e["resource"]),
                common::rid(&e["resource"])
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, want, "{b}: _revinclude");
    // Compartment search reads the resource's own patient key.
    assert_eq!(
        ids(&s, &format!("Patient/{p}/Observation")),
        vec![rel.clone()],
        "{b}"
    );
    // An update replaces the narrowed rows: the old subject no longer matches.
    let mut moved = observation(&format!("Patient/{other}"), "8867-4");
    moved["id"] = json!(rel);
    let r = s.put(&format!("Observation/{rel}"), &moved);
    assert_eq!(r.status, 200, "{b}: update: {}", r.brief());
    assert!(
        ids(&s, &format!("Observation?subject=Patient/{p}")).is_empty(),
        "{b}"
    );
    assert_eq!(
        ids(&s, &format!("Observation?subject=Patient/{other}")).len(),
        2,
        "{b}"
    );

    // Reads by id from eight clients at once: every one answered 200 has its
    // AuditEvent, and the chain verifies.
    const CLIENTS: usize = 8;
    const READS: usize = 25;
    let url = s.url(&format!("Patient/{p}"));
    let handles: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let c = common::authorised_client(&s.token);
            let url = url.clone();
            std::thread::spawn(move || {
                (0..READS)
                    .filter(|_| c.get(&url).send().is_ok_and(|r| r.status().as_u16() == 200))
                    .count()
            })
        })
        .collect();
    let ok: usize = handles.into_iter().map(|h| h.join().expect("reader")).sum();
    assert_eq!(ok, CLIENTS * READS, "{b}: every read answered");
    s.put(
        "Organization/trust",
        &json!({"resourceType": "Organization", "id": "trust", "name": "Trust"}),
    );
    let ig = env.privacy_officer();
    let mut audited = 0;
    let mut next = Some(format!(
        "{}/AuditEvent?patient={p}&subtype=read&_count=100",
        s.base
    ));
    // Bounded: at most 20 pages.
    for _ in 0..20 {
        let Some(u) = next.take() else { break };
        let page: Value = ig
            .get(u)
            .send()
            .expect("audit search")
            .json()
            .expect("json");
        assert_eq!(page["resourceType"], "Bundle", "{b}: {page}");
        audited += common::entries(&page).len();
        next = common::next_link(&page);
    }
    assert!(
        audited >= CLIENTS * READS,
        "{b}: {audited} read events for {} reads",
        CLIENTS * READS
    );
    let out = env.cli(&["audit", "verify"]);
    assert!(out.contains("audit chain intact"), "{b}: {out}");
}

#[test]
fn narrow_index_rows_and_audited_reads_sqlite() {
    run(&Env::sqlite());
}

#[test]
fn narrow_index_rows_and_audited_reads_postgres() {
    if let Some(env) = Env::postgres() {
        run(&env);
    }
}
