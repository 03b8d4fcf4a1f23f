//! The crash harness (issue 22): `kill -9` cycles during mixed REST and MLLP
//! ingest. Each cycle starts the server on the same store, runs four writers —
//! single creates, transaction Bundles (a Patient and three Observations) and
//! two MLLP connections streaming admissions — kills the server with SIGKILL
//! at a point that varies from cycle to cycle, restarts it and checks:
//! * every create that got a 201 and every transaction that got a 200 is there,
//!   and every transaction sent is all there or not there at all;
//! * every MLLP message that got an `AA` is recorded as applied, with its
//!   encounter; every message of the cycle resent with its control id is
//!   answered `AA` and recorded exactly once (nothing applied twice).
//!
//! The suite runs `WARDLINE_CRASH_CYCLES` cycles (default 3) on each backend;
//! `scripts/crash-harness.sh` runs 100 and prints the figures.

use crate::common;
use crate::hl7::{Client, adt, field, start};

use common::{Env, Server, entries, escape_uri};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const OBS: usize = 3;

#[derive(Default)]
struct Cycle {
    creates: Vec<(String, String)>,
    txns_sent: Vec<String>,
    txns_acked: Vec<String>,
    mllp_sent: Vec<(String, String)>,
    mllp_acked: BTreeSet<String>,
}

#[derive(Default)]
struct Totals {
    creates: usize,
    txns: usize,
    txns_sent: usize,
    messages: usize,
    messages_sent: usize,
}

fn cycles() -> usize {
    std::env::var("WARDLINE_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(3)
}

/// A kill point that differs from cycle to cycle: after this many
/// acknowledged writes of all kinds together.
fn kill_after(cycle: usize) -> usize {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as usize)
        .unwrap_or(0);
    10 + (nanos ^ cycle.wrapping_mul(2_654_435_761)) % 150
}

fn single_sys(cycle: usize) -> String {
    format!("http://example.org/crash-cycle-{cycle}/single")
}

fn txn_sys(cycle: usize) -> String {
    format!("http://example.org/crash-cycle-{cycle}/txn")
}

fn txn_bundle(sys: &str, tag: &str) -> Value {
    let pat = format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let mut es = vec![json!({"fullUrl":pat,"resource":{"resourceType":"Patient",
        "identifier":[{"system":sys,"value":tag}],"name":[{"family":"Cycle","given":[tag]}]},
        "request":{"method":"POST","url":"Patient"}})];
    for i in 0..OBS {
        es.push(
            json!({"fullUrl":format!("urn:uuid:{}", uuid::Uuid::new_v4()),
            "resource":{"resourceType":"Observation","status":"final",
                "identifier":[{"system":sys,"value":tag}],
                "code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},
                "subject":{"reference":pat},"valueQuantity":{"value":60 + i,"unit":"/min",
                "system":"http://unitsofmeasure.org","code":"/min"}},
            "request":{"method":"POST","url":"Observation"}}),
        );
    }
    json!({"resourceType":"Bundle","type":"transaction","entry":es})
}

/// Runs the four writers until the server is killed.
fn write_until_killed(server: &mut Server, mllp: u16, cycle: usize) -> Cycle {
    let log = Arc::new(Mutex::new(Cycle::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    {
        let (base, token) = (server.base.clone(), server.token.clone());
        let (log, stop, acked) = (log.clone(), stop.clone(), acked.clone());
        handles.push(std::thread::spawn(move || {
            let client = common::authorised_client(&token);
            let sys = single_sys(cycle);
            for n in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let value = format!("c{cycle}-s{n}");
                let body = json!({"resourceType":"Patient","identifier":[{"system":sys,"value":value}],
                    "name":[{"family":"Single","given":[value.clone()]}]});
                let Ok(r) = client
                    .post(format!("{base}/Patient"))
                    .header("Content-Type", "application/fhir+json")
                    .body(body.to_string())
                    .send()
                else {
                    break;
                };
                let r = common::Resp::from(r);
                if r.status == 201 {
                    let id = r.body["id"].as_str().expect("201 with a body").to_string();
                    log.lock().unwrap().creates.push((id, value));
                    acked.fetch_add(1, Ordering::Relaxed);
                } else if r.body.is_null() {
                    break;
                } else {
                    panic!("create refused before the kill: {}", r.brief());
                }
            }
        }));
    }
    {
        let (base, token) = (server.base.clone(), server.token.clone());
        let (log, stop, acked) = (log.clone(), stop.clone(), acked.clone());
        handles.push(std::thread::spawn(move || {
            let client = common::authorised_client(&token);
            let sys = txn_sys(cycle);
            for n in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let tag = format!("c{cycle}-t{n}");
                log.lock().unwrap().txns_sent.push(tag.clone());
                let Ok(r) = client
                    .post(&base)
                    .header("Content-Type", "application/fhir+json")
                    .body(txn_bundle(&sys, &tag).to_string())
                    .send()
                else {
                    break;
                };
                let r = common::Resp::from(r);
                let all_201 = entries(&r.body).iter().all(|e| {
                    e["response"]["status"]
                        .as_str()
                        .is_some_and(|s| s.starts_with("201"))
                });
                if r.status == 200 && all_201 && entries(&r.body).len() == OBS + 1 {
                    log.lock().unwrap().txns_acked.push(tag);
                    acked.fetch_add(1, Ordering::Relaxed);
                } else if r.body.is_null() {
                    break;
                } else {
                    panic!("transaction refused before the kill: {}", r.brief());
                }
            }
        }));
    }
    for conn in 0..2 {
        let (log, stop, acked) = (log.clone(), stop.clone(), acked.clone());
        handles.push(std::thread::spawn(move || {
            let Ok(mut client) = Client::connect(mllp) else {
                return;
            };
            for k in 0..5_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let i = 1_000_000 + cycle * 10_000 + conn * 5_000 + k;
                let nhs = wardline_demo::population::nhs_number(i);
                let ctrl = format!("C{cycle}X{conn}X{k}");
                let m = adt(
                    "A01",
                    &ctrl,
                    &nhs,
                    &format!("V{ctrl}"),
                    &format!("B{i}"),
                    "WARD9",
                );
                log.lock()
                    .unwrap()
                    .mllp_sent
                    .push((ctrl.clone(), m.clone()));
                match client.send(&m) {
                    Ok(ack) => {
                        assert_eq!(field(&ack, "MSA-1"), "AA", "{ack}");
                        log.lock().unwrap().mllp_acked.insert(ctrl);
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => break,
                }
            }
        }));
    }
    // Bounded: kill at the chosen point, or after 60 s whatever happened.
    let goal = kill_after(cycle);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(60) && acked.load(Ordering::Relaxed) < goal {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill();
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("writer thread panicked");
    }
    Arc::try_unwrap(log)
        .ok()
        .expect("writers stopped")
        .into_inner()
        .unwrap()
}

fn one(s: &Server, path: &str) -> Vec<Value> {
    let r = s.get(&escape_uri(path));
    assert_eq!(r.status, 200, "{path}: {}", r.brief());
    entries(&r.body)
        .into_iter()
        .map(|e| e["resource"].clone())
        .collect()
}

fn verify(s: &Server, mllp: u16, cycle: usize, c: &Cycle, failures: &mut Vec<String>) {
    for (id, value) in &c.creates {
        let r = s.get(&format!("Patient/{id}"));
        if r.status != 200 || r.body["identifier"][0]["value"] != value.as_str() {
            failures.push(format!(
                "cycle {cycle}: acknowledged Patient/{id} ({value}) lost: {}",
                r.brief()
            ));
        }
    }
    let sys = txn_sys(cycle);
    let pats = s.search_all(&format!("Patient?identifier={sys}|&_count=500"));
    let obs = s.search_all(&format!("Observation?identifier={sys}|&_count=500"));
    let tag = |r: &Value| {
        r["identifier"][0]["value"]
            .as_str()
            .unwrap_or("?")
            .to_string()
    };
    for t in &c.txns_sent {
        let p = pats.iter().filter(|r| tag(r) == *t).count();
        let o = obs.iter().filter(|r| tag(r) == *t).count();
        if !((p == 1 && o == OBS) || (p == 0 && o == 0)) {
            failures.push(format!(
                "cycle {cycle}: transaction {t} half-written: {p} Patient, {o} Observations"
            ));
        }
        if c.txns_acked.contains(t) && p != 1 {
            failures.push(format!("cycle {cycle}: acknowledged transaction {t} lost"));
        }
    }
    for ctrl in &c.mllp_acked {
        let comms = one(s, &format!("Communication?identifier={ctrl}"));
        let encs = one(s, &format!("Encounter?identifier=V{ctrl}"));
        if comms.len() != 1 || comms[0]["status"] != "completed" || encs.len() != 1 {
            failures.push(format!(
                "cycle {cycle}: acknowledged message {ctrl}: {} records, {} encounters",
                comms.len(),
                encs.len()
            ));
        }
    }
    // Resend the cycle's messages that got no ACK: each is answered AA and
    // recorded once, whether or not it had been applied before the kill.
    let mut client = Client::connect(mllp).expect("MLLP after restart");
    for (ctrl, m) in c
        .mllp_sent
        .iter()
        .filter(|(k, _)| !c.mllp_acked.contains(k))
    {
        let ack = client.send(m).expect("ACK after restart");
        if field(&ack, "MSA-1") != "AA" {
            failures.push(format!("cycle {cycle}: resent {ctrl}: {ack}"));
        }
        let comms = one(s, &format!("Communication?identifier={ctrl}"));
        let encs = one(s, &format!("Encounter?identifier=V{ctrl}"));
        if comms.len() != 1 || encs.len() != 1 {
            failures.push(format!(
                "cycle {cycle}: resent {ctrl}: {} records, {} encounters (one each expected)",
                comms.len(),
                encs.len()
            ));
        }
    }
}

fn run(env: Env) {
    let n = cycles();
    let t0 = Instant::now();
    let mut totals = Totals::default();
    let mut failures = Vec::new();
    for cycle in 1..=n {
        let (mut server, mllp) = start(&env);
        let c = write_until_killed(&mut server, mllp, cycle);
        drop(server);
        let (server, mllp) = start(&env);
        verify(&server, mllp, cycle, &c, &mut failures);
        totals.creates += c.creates.len();
        totals.txns += c.txns_acked.len();
        totals.txns_sent += c.txns_sent.len();
        totals.messages += c.mllp_acked.len();
        totals.messages_sent += c.mllp_sent.len();
        failures.truncate(50);
        assert!(
            failures.is_empty(),
            "[{}] crash cycle {cycle} of {n}:\n  {}",
            env.name,
            failures.join("\n  ")
        );
    }
    println!(
        "crash harness [{}]: {n} kill -9 cycles in {:.0} s; acknowledged before the kills: {} creates, {} of {} transactions, {} of {} MLLP messages; lost: 0; applied twice: 0",
        env.name,
        t0.elapsed().as_secs_f64(),
        totals.creates,
        totals.txns,
        totals.txns_sent,
        totals.messages,
        totals.messages_sent
    );
}

#[test]
fn crash_cycles_sqlite() {
    run(Env::sqlite());
}

#[test]
fn crash_cycles_postgres() {
    if let Some(env) = Env::postgres() {
        run(env);
    }
}
