//! Group commit (issue 21) through the real binary: concurrent writes share
//! durable commits (counted on /metrics), `--group-commit off` commits each
//! alone, and a crash between a group's durable commit and its ACKs loses
//! nothing acknowledged and applies nothing twice.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use crate::common::{Env, Server, free_port};
use crate::hl7::{Client, field};

/// An admission of patient `i` (control id `G{i}`, visit `VG{i}`).
fn a01(i: usize) -> String {
    let nhs = wardline_demo::population::nhs_number(i + 700_000);
    format!(
        "MSH|^~\\&|PAS|RWG|WARDLINE|RWG|20261123090000||ADT^A01^ADT_A01|G{i}|P|2.4\r\
         EVN|A01|20261123090000\r\
         PID|1||{nhs}^^^NHS^NH~H{nhs}^^^RWG^MR||PATIENT^{nhs}^^^MR||19700101|F|||1 HIGH ST^^WATFORD^^WD18 0HB\r\
         PV1|1|I|WARD7^BAY1^G{i}^RWG||||C1234567^JONES^ALAN|||GEN|||||||||VG{i}|||||||||||||||||||||||||20261123090000|\r"
    )
}

fn metric(s: &Server, name: &str) -> u64 {
    let m = s
        .client
        .get(format!("{}/metrics", s.root))
        .send()
        .unwrap()
        .text()
        .unwrap();
    m.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} is not on /metrics: {m}"))
        .trim()
        .parse()
        .unwrap()
}

/// Eight clients create patients at once: all 201, all readable, and with
/// group commit on the commits were shared (fewer groups than members);
/// off, none is counted.
fn concurrent_rest_writes(env: &Env, on: bool) {
    let s = env.start_with(&["--group-commit", if on { "on" } else { "off" }]);
    let before = metric(&s, "wardline_store_group_commit_members_sum");
    let ids = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for t in 0..8 {
            let (s, ids) = (&s, &ids);
            scope.spawn(move || {
                for k in 0..15 {
                    let p = serde_json::json!({"resourceType": "Patient",
                        "name": [{"family": format!("GROUP{t}X{k}"), "given": ["Gail"]}],
                        "birthDate": "1980-02-29"});
                    let r = s.post("Patient", &p);
                    assert_eq!(r.status, 201, "{}", r.brief());
                    ids.lock()
                        .unwrap()
                        .push(r.body["id"].as_str().unwrap().to_owned());
                }
            });
        }
    });
    for id in ids.into_inner().unwrap() {
        assert_eq!(s.get(&format!("Patient/{id}")).status, 200, "{id}");
    }
    let members = metric(&s, "wardline_store_group_commit_members_sum") - before;
    let groups = metric(&s, "wardline_store_group_commit_members_count");
    if on && s.backend == "sqlite" {
        assert!(members >= 120, "{members} transactions in groups");
        assert!(
            groups < members,
            "{groups} groups for {members} transactions"
        );
    } else {
        assert_eq!(
            members, 0,
            "group commit off (or PostgreSQL): nothing grouped"
        );
    }
}

#[test]
fn group_commit_rest_sqlite() {
    concurrent_rest_writes(&Env::sqlite(), true);
}

#[test]
fn group_commit_off_sqlite() {
    concurrent_rest_writes(&Env::sqlite(), false);
}

#[test]
fn group_commit_rest_postgres() {
    if let Some(env) = Env::postgres() {
        concurrent_rest_writes(&env, true);
    }
}

/// The server aborts right after the durable commit of the first group of
/// twelve or more transactions (more than a server's start-up jobs ever
/// commit together: eleven transactions in all), before any of them is
/// acknowledged; 24 connections sending at once make such a group. After a
/// restart: every acknowledged message is stored once; the group's
/// messages are stored though unacknowledged; resending everything with
/// the same control ids answers AA for each, the same ACK as before for
/// those acknowledged, and applies nothing twice.
fn crash_between_commit_and_acks(env: &Env) {
    const CONNS: usize = 24;
    const EACH: usize = 20;
    let mllp = free_port();
    let mut s = env.start_with(&[
        "--mllp-listen",
        &format!("127.0.0.1:{mllp}"),
        "--test-crash-after-group-commit",
        "12",
    ]);
    let sent = Arc::new(Mutex::new(Vec::new()));
    let acked = Arc::new(Mutex::new(BTreeMap::new()));
    std::thread::scope(|scope| {
        for c in 0..CONNS {
            let (sent, acked) = (sent.clone(), acked.clone());
            scope.spawn(move || {
                let Ok(mut client) = Client::connect(mllp) else {
                    return;
                };
                for k in 0..EACH {
                    let i = c * EACH + k;
                    let m = a01(i);
                    sent.lock().unwrap().push((format!("G{i}"), m.clone()));
                    match client.send(&m) {
                        Ok(ack) => {
                            assert_eq!(field(&ack, "MSA-1"), "AA", "{ack}");
                            acked.lock().unwrap().insert(format!("G{i}"), ack);
                        }
                        // The server died: this connection's last message
                        // was not acknowledged.
                        Err(_) => return,
                    }
                }
            });
        }
    });
    let sent = sent.lock().unwrap().clone();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() < sent.len(),
        "the server never formed a group of twelve: all {} acknowledged",
        sent.len()
    );
    {
        use std::os::unix::process::ExitStatusExt;
        let status = s.terminate().expect("the server exited");
        assert_eq!(
            status.signal(),
            Some(6),
            "aborted by the test hook: {status:?}"
        );
    }
    let mllp = free_port();
    let s = env.start_with(&["--mllp-listen", &format!("127.0.0.1:{mllp}")]);
    let stored: BTreeSet<String> = s
        .search_all("Communication?status=completed&_count=500")
        .iter()
        .flat_map(|r| r["identifier"].as_array().cloned().unwrap_or_default())
        .filter_map(|i| i["value"].as_str().map(str::to_owned))
        .collect();
    for ctrl in acked.keys() {
        assert!(stored.contains(ctrl), "{ctrl} was acknowledged but is lost");
    }
    // The aborted group was durable: stored, never acknowledged.
    let unacked_stored = stored.iter().filter(|c| !acked.contains_key(*c)).count();
    assert!(
        unacked_stored > 0,
        "nothing committed but unacknowledged: the crash was not after a commit"
    );
    // Resend everything sent: AA for each, the very same ACK where one
    // was given, nothing applied twice.
    let mut client = Client::connect(mllp).unwrap();
    for (ctrl, m) in &sent {
        let ack = client.send(m).unwrap();
        assert_eq!(field(&ack, "MSA-1"), "AA", "{ack}");
        assert_eq!(&field(&ack, "MSA-2"), ctrl, "{ack}");
        if let Some(first) = acked.get(ctrl) {
            assert_eq!(&ack, first, "a second, different ACK for {ctrl}");
        }
    }
    let n = sent.len() as u64;
    assert_eq!(s.count("Encounter"), n);
    assert_eq!(s.count("Patient"), n);
    assert_eq!(s.count("Communication?status=completed"), n);
}

#[test]
fn group_commit_crash_between_commit_and_acks_sqlite() {
    crash_between_commit_and_acks(&Env::sqlite());
}
