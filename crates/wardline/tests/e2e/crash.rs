//! Crash safety: clients write (single creates and transaction Bundles) while the
//! server is killed with SIGKILL; after a restart on the same data directory /
//! database:
//! * every write that got a 2xx is readable;
//! * every transaction is all-or-nothing (its Patient and its three Observations
//!   are all there or none are), whether or not it was acknowledged;
//! * the store is consistent: search counts equal the resources found by paging,
//!   every resource found is readable, and every reference between them resolves;
//! * the server takes writes again.
//!
//! Two kill/restart rounds run on the same store.

use crate::common;

use common::{Env, Server, entries};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SINGLE_SYS: &str = "http://example.org/crash-single";
const TXN_SYS: &str = "http://example.org/crash-txn";
const OBS_PER_TXN: usize = 3;

#[derive(Default)]
struct Log {
    /// (server id, identifier value) of creates that got a 201.
    acked_creates: Vec<(String, String)>,
    /// Transaction tags that got a 200 with all entries 201.
    acked_txns: Vec<String>,
    /// Every transaction tag sent (acknowledged or not).
    sent_txns: Vec<String>,
}

fn created_id(r: &common::Resp) -> Option<String> {
    if let Some(id) = r.body["id"].as_str() {
        return Some(id.to_string());
    }
    // Location: {base}/Patient/{id}/_history/{v}
    let loc = r.header("location")?;
    let parts: Vec<&str> = loc.split('/').collect();
    let i = parts.iter().position(|p| *p == "Patient")?;
    parts.get(i + 1).map(|s| s.to_string())
}

fn txn_bundle(tag: &str) -> Value {
    let pat = format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let mut es = vec![json!({"fullUrl":pat,"resource":{"resourceType":"Patient",
        "identifier":[{"system":TXN_SYS,"value":tag}],"name":[{"family":"Crash","given":[tag]}]},
        "request":{"method":"POST","url":"Patient"}})];
    for i in 0..OBS_PER_TXN {
        es.push(
            json!({"fullUrl":format!("urn:uuid:{}", uuid::Uuid::new_v4()),
            "resource":{"resourceType":"Observation","status":"final",
                "identifier":[{"system":TXN_SYS,"value":tag}],
                "code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},
                "subject":{"reference":pat},"valueQuantity":{"value":60 + i,"unit":"/min",
                "system":"http://unitsofmeasure.org","code":"/min"}},
            "request":{"method":"POST","url":"Observation"}}),
        );
    }
    json!({"resourceType":"Bundle","type":"transaction","entry":es})
}

/// Run writers until the server is killed; returns once all writers stopped.
fn write_until_killed(server: &mut Server, round: usize, log: &Arc<Mutex<Log>>) {
    let base = server.base.clone();
    let token = server.token.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let creates = Arc::new(AtomicUsize::new(0));
    let txns = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for w in 0..2 {
        let (base, stop, creates, log) = (base.clone(), stop.clone(), creates.clone(), log.clone());
        let token = token.clone();
        handles.push(std::thread::spawn(move || {
            let client = common::authorised_client(&token);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let value = format!("r{round}-w{w}-{n}");
                let body = json!({"resourceType":"Patient","identifier":[{"system":SINGLE_SYS,"value":value}],
                    "name":[{"family":"Single","given":[value.clone()]}]});
                let r = client
                    .post(format!("{base}/Patient"))
                    .header("Content-Type", "application/fhir+json")
                    .body(body.to_string())
                    .send();
                let Ok(r) = r else { break };
                let r = common::Resp::from(r);
                if r.status == 201 {
                    let id = created_id(&r).expect("201 without id or Location");
                    log.lock().unwrap().acked_creates.push((id, value));
                    creates.fetch_add(1, Ordering::Relaxed);
                } else {
                    panic!("create refused before the kill: {}", r.brief());
                }
            }
        }));
    }
    {
        let (base, stop, txns, log) = (base.clone(), stop.clone(), txns.clone(), log.clone());
        let token = token.clone();
        handles.push(std::thread::spawn(move || {
            let client = common::authorised_client(&token);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let tag = format!("r{round}-t{n}");
                log.lock().unwrap().sent_txns.push(tag.clone());
                let r = client
                    .post(&base)
                    .header("Content-Type", "application/fhir+json")
                    .body(txn_bundle(&tag).to_string())
                    .send();
                let Ok(r) = r else { break };
                let r = common::Resp::from(r);
                let all_201 = entries(&r.body).iter().all(|e| {
                    e["response"]["status"]
                        .as_str()
                        .is_some_and(|s| s.starts_with("201"))
                });
                if r.status == 200 && all_201 && entries(&r.body).len() == OBS_PER_TXN + 1 {
                    log.lock().unwrap().acked_txns.push(tag);
                    txns.fetch_add(1, Ordering::Relaxed);
                } else if r.body.is_null() {
                    // The connection died while the response body was in flight.
                    break;
                } else {
                    panic!("transaction refused before the kill: {}", r.brief());
                }
            }
        }));
    }
    // Kill once there is a fair amount of acknowledged work (or after a time limit).
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(60) {
        if creates.load(Ordering::Relaxed) >= 150 && txns.load(Ordering::Relaxed) >= 25 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Kill mid-stream: the writers are still sending.
    server.kill();
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("writer thread panicked");
    }
    let l = log.lock().unwrap();
    println!(
        "round {round}: killed after {:.1}s; {} creates and {} transactions acknowledged so far ({} transactions sent)",
        t0.elapsed().as_secs_f64(),
        l.acked_creates.len(),
        l.acked_txns.len(),
        l.sent_txns.len()
    );
    assert!(
        !l.acked_creates.is_empty() && !l.acked_txns.is_empty(),
        "no writes were acknowledged before the kill"
    );
}

fn verify(server: &Server, log: &Log, failures: &mut Vec<String>) {
    // 1. Every acknowledged create is readable and is what was written.
    for (id, value) in &log.acked_creates {
        let r = server.get(&format!("Patient/{id}"));
        if r.status != 200 || r.body["identifier"][0]["value"] != value.as_str() {
            failures.push(format!(
                "acknowledged Patient/{id} ({value}) lost: {}",
                r.brief()
            ));
        }
    }
    // 2. Transactions: group stored resources by tag.
    let pats = server.search_all(&format!("Patient?identifier={TXN_SYS}|&_count=500"));
    let obs = server.search_all(&format!("Observation?identifier={TXN_SYS}|&_count=500"));
    let mut by_tag: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut pat_ids = BTreeMap::new();
    for p in &pats {
        let tag = p["identifier"][0]["value"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        by_tag.entry(tag.clone()).or_default().0 += 1;
        pat_ids.insert(tag, p["id"].as_str().unwrap_or("").to_string());
    }
    for o in &obs {
        let tag = o["identifier"][0]["value"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        by_tag.entry(tag.clone()).or_default().1 += 1;
        // The Observation's subject is its own transaction's Patient.
        let want = pat_ids.get(&tag).map(|id| format!("Patient/{id}"));
        if o["subject"]["reference"].as_str().map(str::to_string) != want {
            failures.push(format!(
                "Observation {} of {tag}: subject {} (expected {want:?})",
                o["id"], o["subject"]
            ));
        }
    }
    let sent: BTreeSet<&String> = log.sent_txns.iter().collect();
    for (tag, (p, o)) in &by_tag {
        if !sent.contains(tag) {
            failures.push(format!("unknown transaction tag {tag} in the store"));
        }
        if !((*p == 1 && *o == OBS_PER_TXN) || (*p == 0 && *o == 0)) {
            failures.push(format!(
                "transaction {tag} half-written: {p} Patient, {o} Observations"
            ));
        }
    }
    for tag in &log.acked_txns {
        if by_tag.get(tag) != Some(&(1, OBS_PER_TXN)) {
            failures.push(format!(
                "acknowledged transaction {tag} lost: {:?}",
                by_tag.get(tag)
            ));
        }
    }
    // 3. Consistency: counts equal paging; every paged resource is readable.
    for rt in ["Patient", "Observation"] {
        let all = server.search_all(&format!("{rt}?_count=500"));
        let c = server.count(rt);
        if c != all.len() as u64 {
            failures.push(format!(
                "{rt}: _summary=count {c} but paging found {}",
                all.len()
            ));
        }
        for res in &all {
            let id = res["id"].as_str().unwrap_or("");
            let r = server.get(&format!("{rt}/{id}"));
            if r.status != 200 || r.body != *res {
                failures.push(format!(
                    "{rt}/{id}: search result and read differ: {}",
                    r.brief()
                ));
            }
        }
    }
    let singles = server.count(&format!("Patient?identifier={SINGLE_SYS}|"));
    if singles < log.acked_creates.len() as u64 {
        failures.push(format!(
            "{singles} single creates stored, {} acknowledged",
            log.acked_creates.len()
        ));
    }
    println!(
        "verified: {} acknowledged creates, {} acknowledged of {} sent transactions, {} transactions stored, {} single Patients stored",
        log.acked_creates.len(),
        log.acked_txns.len(),
        log.sent_txns.len(),
        by_tag.len(),
        singles
    );
}

fn run(env: Env) {
    let log = Arc::new(Mutex::new(Log::default()));
    let mut failures = Vec::new();
    for round in 1..=2 {
        let mut server = env.start();
        write_until_killed(&mut server, round, &log);
        drop(server);
        let server = env.start();
        verify(&server, &log.lock().unwrap(), &mut failures);
        // The restarted server takes writes.
        let r = server.post(
            "Patient",
            &json!({"resourceType":"Patient","name":[{"family":"After"}]}),
        );
        if r.status != 201 {
            failures.push(format!("create after restart: {}", r.brief()));
        }
        failures.truncate(50);
        assert!(
            failures.is_empty(),
            "[{}] crash round {round} failures:\n  {}",
            env.name,
            failures.join("\n  ")
        );
    }
}

#[test]
fn crash_safety_sqlite() {
    run(Env::sqlite());
}

#[test]
fn crash_safety_postgres() {
    if let Some(env) = Env::postgres() {
        run(env);
    }
}
