//! HL7 v2 over MLLP against the real binary, on SQLite and PostgreSQL:
//! * an admit → transfer → discharge feed over several concurrent
//!   connections, every ACK `AA` and correlated, the mapped Patient and
//!   Encounter (with its location history) then read back over FHIR, and the
//!   message records searchable;
//! * resends acknowledged again and not applied twice; bad content `AE`
//!   naming the field; bytes outside frames tolerated; an oversize frame `AR`;
//!   enhanced mode (MSH-15/16): commit ACK then application ACK on the one
//!   connection, none when not asked for (A21/A22 leave of absence);
//! * crash safety: the server is SIGKILLed while four connections stream
//!   admissions; after a restart every ACKed message and its effects are
//!   there, and resending every message (ACKed or not) duplicates nothing.

use crate::common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Env, Server, escape_uri, free_port};
use wardline_hl7::Message;
use wardline_hl7::mllp::{FrameDecoder, encode_frame};

/// One MLLP connection of a test client.
pub(crate) struct Client {
    stream: TcpStream,
    decoder: FrameDecoder,
}

impl Client {
    pub(crate) fn connect(port: u16) -> std::io::Result<Client> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Client {
            stream,
            decoder: FrameDecoder::new(1 << 20),
        })
    }

    /// Sends raw bytes and waits for one frame back.
    fn exchange_raw(&mut self, bytes: &[u8]) -> std::io::Result<String> {
        self.stream.write_all(bytes)?;
        let mut buf = [0u8; 8192];
        loop {
            if let Some(f) = self.decoder.next_frame() {
                return Ok(String::from_utf8(f).expect("ACK is UTF-8"));
            }
            let n = self.stream.read(&mut buf)?;
            if n == 0 {
                return Err(std::io::Error::other("closed"));
            }
            let _ = self.decoder.push(&buf[..n]);
        }
    }

    pub(crate) fn send(&mut self, msg: &str) -> std::io::Result<String> {
        self.exchange_raw(&encode_frame(msg.as_bytes()))
    }
}

pub(crate) fn field(ack: &str, path: &str) -> String {
    Message::parse(ack)
        .unwrap_or_else(|e| panic!("ACK does not parse ({e}): {ack:?}"))
        .text(path)
        .unwrap()
        .unwrap_or_default()
        .into_owned()
}

fn nhs(i: usize) -> String {
    wardline_demo::population::nhs_number(i)
}

fn resources(bundle: &serde_json::Value) -> Vec<serde_json::Value> {
    common::entries(bundle)
        .into_iter()
        .map(|e| e["resource"].clone())
        .collect()
}

pub(crate) fn adt(
    event: &str,
    ctrl: &str,
    nhs: &str,
    visit: &str,
    bed: &str,
    ward: &str,
) -> String {
    let structure = match event {
        "A01" | "A02" | "A03" => format!("ADT_{event}"),
        _ => "ADT_A01".into(),
    };
    let discharge = if event == "A03" { "20261123170000" } else { "" };
    format!(
        "MSH|^~\\&|PAS|RWG|WARDLINE|RWG|20261123090000||ADT^{event}^{structure}|{ctrl}|P|2.4\r\
         EVN|{event}|20261123090000\r\
         PID|1||{nhs}^^^NHS^NH~H{nhs}^^^RWG^MR||PATIENT^{nhs}^^^MR||19700101|F|||1 HIGH ST^^WATFORD^^WD18 0HB\r\
         PV1|1|I|{ward}^BAY1^{bed}^RWG||||C1234567^JONES^ALAN|||GEN|||||||||{visit}|||||||||||||||||||||||||20261123090000|{discharge}\r"
    )
}

pub(crate) fn start(env: &Env) -> (Server, u16) {
    let mllp = free_port();
    let server = env.start_with(&["--mllp-listen", &format!("127.0.0.1:{mllp}")]);
    (server, mllp)
}

fn patient_by_nhs(s: &Server, nhs: &str) -> serde_json::Value {
    let r = s.get(&escape_uri(&format!(
        "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}"
    )));
    assert_eq!(r.status, 200);
    let e = resources(&r.body);
    assert_eq!(e.len(), 1, "one patient with NHS number {nhs}: {}", r.body);
    e[0].clone()
}

fn feed(env: &Env) {
    let (s, port) = start(env);
    // Four patients, one connection each, concurrently: admit, transfer, discharge.
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let nhs = nhs(i);
            std::thread::spawn(move || {
                let mut c = Client::connect(port).unwrap();
                let visit = format!("V{i}");
                let steps = [
                    adt(
                        "A01",
                        &format!("C{i}-1"),
                        &nhs,
                        &visit,
                        &format!("BED{i}"),
                        "WARD7",
                    ),
                    adt(
                        "A02",
                        &format!("C{i}-2"),
                        &nhs,
                        &visit,
                        &format!("BED{i}"),
                        "WARD9",
                    ),
                    adt(
                        "A03",
                        &format!("C{i}-3"),
                        &nhs,
                        &visit,
                        &format!("BED{i}"),
                        "WARD9",
                    ),
                ];
                let mut acks = Vec::new();
                for (k, m) in steps.iter().enumerate() {
                    let ack = c.send(m).unwrap();
                    assert_eq!(field(&ack, "MSA-1"), "AA", "{ack}");
                    assert_eq!(field(&ack, "MSA-2"), format!("C{i}-{}", k + 1));
                    acks.push(ack);
                }
                acks
            })
        })
        .collect();
    let acks: Vec<Vec<String>> = handles.into_iter().map(|h| h.join().unwrap()).collect();

    for i in 0..4 {
        let p = patient_by_nhs(&s, &nhs(i));
        let pid = p["id"].as_str().unwrap();
        assert_eq!(p["name"][0]["family"], "PATIENT");
        let encs = resources(&s.get(&format!("Encounter?patient={pid}")).body);
        assert_eq!(encs.len(), 1, "{encs:?}");
        let e = &encs[0];
        assert_eq!(e["status"], "finished", "{e}");
        let locs = e["location"].as_array().unwrap();
        assert!(
            locs.len() >= 2,
            "admission and transfer in the history: {e}"
        );
        assert!(locs.iter().all(|l| l["status"] != "active"), "{e}");
        // The bed the patient left is being cleaned.
        let bed_ref = locs.last().unwrap()["location"]["reference"]
            .as_str()
            .unwrap();
        let bed = s.get(bed_ref).body;
        assert_eq!(bed["operationalStatus"]["code"], "H", "{bed}");
        assert_eq!(
            bed["name"].as_str().map(|n| n.contains(&format!("BED{i}"))),
            Some(true),
            "{bed}"
        );
        // The three records, searchable by patient.
        let recs = resources(
            &s.get(&format!("Communication?patient={pid}&status=completed"))
                .body,
        );
        assert_eq!(recs.len(), 3, "{recs:?}");
    }

    // A resend: the same ACK, nothing applied again.
    let mut c = Client::connect(port).unwrap();
    let enc_before = s.get("Encounter?_summary=count").body["total"].clone();
    let again = c
        .send(&adt("A01", "C0-1", &nhs(0), "V0", "BED0", "WARD7"))
        .unwrap();
    assert_eq!(again, acks[0][0], "the stored ACK is sent again");
    let p = patient_by_nhs(&s, &nhs(0));
    let e = &resources(
        &s.get(&format!("Encounter?patient={}", p["id"].as_str().unwrap()))
            .body,
    )[0];
    assert_eq!(
        e["status"], "finished",
        "the resent admission was not applied: {e}"
    );
    assert_eq!(s.get("Encounter?_summary=count").body["total"], enc_before);

    // Bad content: AE naming the field, recorded, nothing applied.
    let bad = adt("A01", "BAD-1", "9434765918", "VBAD", "BED9", "WARD7");
    let ack = c.send(&bad).unwrap();
    assert_eq!(field(&ack, "MSA-1"), "AE", "{ack}");
    assert!(ack.contains("PID") && ack.contains("9434765918"), "{ack}");
    let refused = resources(&s.get("Communication?status=not-done").body);
    assert_eq!(refused.len(), 1);
    let rec_id = refused[0]["id"].as_str().unwrap().to_owned();

    // The operator lists the failure and reprocesses a corrected text.
    let wardline = |args: &[&str]| {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(env.store_args());
        std::process::Command::new(env!("CARGO_BIN_EXE_wardline"))
            .args(&all)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let out = wardline(&["hl7", "list", "--status", "not-done"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{listed}");
    assert!(
        listed.contains(&rec_id) && listed.contains("BAD-1") && listed.contains("9434765918"),
        "{listed}"
    );
    let fixed = env.data_dir().join("fixed.hl7");
    std::fs::write(
        &fixed,
        adt("A01", "BAD-1", &nhs(7), "VBAD", "BED9", "WARD7"),
    )
    .unwrap();
    let out = wardline(&[
        "hl7",
        "reprocess",
        &rec_id,
        "--with",
        fixed.to_str().unwrap(),
    ]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("\tAA"), "{said}");
    patient_by_nhs(&s, &nhs(7));
    let out = wardline(&["hl7", "reprocess", &rec_id]);
    assert!(
        !out.status.success(),
        "applied messages are not reprocessed"
    );

    // A type Wardline does not map (an immunisation record) is refused,
    // never AA: AR, error 200 at MSH-9, and kept for reprocessing, listed
    // with the refused messages (issue 15).
    let vxu = "MSH|^~\\&|CHIS|RWG|WARDLINE|RWG|20261123090000||VXU^V04^VXU_V04|RX-1|P|2.5\r\
               PID|1||9434765919^^^NHS^NH||SMITH^JANE\r\
               ORC|RE|VX1\r";
    let ack = c.send(vxu).unwrap();
    assert_eq!(field(&ack, "MSA-1"), "AR", "{ack}");
    assert!(ack.contains("ERR||MSH^1^9|200^"), "{ack}");
    let out = wardline(&["hl7", "list", "--status", "not-done"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("RX-1") && listed.contains("VXU"),
        "{listed}"
    );
    // Reprocessing it while the type is not mapped refuses it again and
    // keeps it (never marked done, never lost); once a module maps it, the
    // same command applies it.
    let rx_id = listed
        .lines()
        .find(|l| l.contains("RX-1"))
        .and_then(|l| l.split('\t').next())
        .unwrap()
        .to_owned();
    let out = wardline(&["hl7", "reprocess", &rx_id]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("\tAR"), "{said}");
    let out = wardline(&["hl7", "list", "--status", "not-done"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&rx_id));

    // Bytes outside a frame are dropped; the next frame is served.
    let mut bytes = b"junk before the frame".to_vec();
    bytes.extend(encode_frame(
        adt("A08", "C0-4", &nhs(0), "V0", "BED0", "WARD9").as_bytes(),
    ));
    let ack = c.exchange_raw(&bytes).unwrap();
    assert_eq!(field(&ack, "MSA-1"), "AA", "{ack}");
    assert_eq!(field(&ack, "MSA-2"), "C0-4");

    // An oversize frame (over 16 MiB) is refused with AR, and the
    // connection goes on.
    let mut huge = adt("A08", "HUGE-1", &nhs(0), "V0", "BED0", "WARD9");
    huge.push_str("NTE|1||");
    huge.push_str(&"x".repeat(17 << 20));
    huge.push('\r');
    let ack = c.send(&huge).unwrap();
    assert_eq!(field(&ack, "MSA-1"), "AR", "{ack}");
    assert_eq!(field(&ack, "MSA-2"), "HUGE-1");
    let ack = c
        .send(&adt("A08", "C0-5", &nhs(0), "V0", "BED0", "WARD9"))
        .unwrap();
    assert_eq!(field(&ack, "MSA-1"), "AA", "{ack}");

    // The engine's counters are on /metrics.
    let m = s
        .client
        .get(format!("{}/metrics", s.root))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        m.contains("wardline_hl7_inbound_total{ack=\"AA\"} 15"),
        "{m}"
    );
    assert!(m.contains("wardline_hl7_inbound_duplicates_total 1"), "{m}");

    // Enhanced mode (MSH-15/MSH-16) on the same connection: the commit ACK
    // (CA, sent after commit) then the application ACK, each a frame; with
    // ER/NE a success is not acknowledged at all. A leave of absence (A21)
    // and the return (A22) round the stay off.
    let enhanced = |m: String, accept: &str, app: &str| {
        m.replacen("|P|2.4\r", &format!("|P|2.4|||{accept}|{app}\r"), 1)
    };
    let (pe, ve) = (nhs(10), "VE1");
    let ack = c
        .send(&adt("A01", "E-1", &pe, ve, "BED8", "WARD7"))
        .unwrap();
    assert_eq!(field(&ack, "MSA-1"), "AA", "{ack}");
    let commit = c
        .send(&enhanced(
            adt("A21", "E-2", &pe, ve, "BED8", "WARD7"),
            "AL",
            "AL",
        ))
        .unwrap();
    assert_eq!(field(&commit, "MSA-1"), "CA", "{commit}");
    assert_eq!(field(&commit, "MSA-2"), "E-2");
    let app = c.exchange_raw(&[]).unwrap();
    assert_eq!(field(&app, "MSA-1"), "AA", "{app}");
    assert_eq!(field(&app, "MSA-2"), "E-2");
    assert_ne!(field(&commit, "MSH-10"), field(&app, "MSH-10"));
    // ER/NE on success: nothing comes back; the next message's ACK is next.
    c.stream
        .write_all(&encode_frame(
            enhanced(adt("A22", "E-3", &pe, ve, "BED8", "WARD7"), "ER", "NE").as_bytes(),
        ))
        .unwrap();
    let bad = adt("A22", "E-4", &pe, "VE-NOPE", "BED8", "WARD7");
    let err = c.send(&enhanced(bad, "AL", "NE")).unwrap();
    assert_eq!(field(&err, "MSA-2"), "E-4", "{err}");
    assert_eq!(field(&err, "MSA-1"), "CE", "{err}");
    let r = s.get(&escape_uri(&format!(
        "Encounter?identifier=https://fhir.wardline.invalid/Id/visit|{ve}"
    )));
    assert_eq!(r.status, 200);
    let e = resources(&r.body);
    assert_eq!(e.len(), 1, "{}", r.body);
    assert_eq!(e[0]["status"], "in-progress", "back from leave: {}", e[0]);
}

#[test]
fn mllp_feed_sqlite() {
    feed(&Env::sqlite());
}

#[test]
fn mllp_feed_postgres() {
    if let Some(env) = Env::postgres() {
        feed(&env);
    }
}

/// Streams admissions of distinct patients over four connections until the
/// server is killed; returns (every message sent, the control ids ACKed AA).
fn stream_until_killed(
    port: u16,
    total: usize,
    kill_after: usize,
    s: &mut Server,
) -> (Vec<String>, BTreeSet<String>) {
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let sent = Arc::new(Mutex::new(Vec::new()));
    let per = total / 4;
    let handles: Vec<_> = (0..4)
        .map(|c| {
            let acked = acked.clone();
            let sent = sent.clone();
            std::thread::spawn(move || {
                let Ok(mut client) = Client::connect(port) else {
                    return;
                };
                for k in 0..per {
                    let i = c * per + k;
                    let nhs = wardline_demo::population::nhs_number(i + 500_000);
                    let ctrl = format!("K{i}");
                    let m = adt(
                        "A01",
                        &ctrl,
                        &nhs,
                        &format!("VK{i}"),
                        &format!("B{i}"),
                        "WARD7",
                    );
                    sent.lock().unwrap().push(m.clone());
                    match client.send(&m) {
                        Ok(ack) => {
                            assert_eq!(field(&ack, "MSA-1"), "AA", "{ack}");
                            acked.lock().unwrap().insert(ctrl);
                        }
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    // Kill once enough are acknowledged (bounded wait).
    for _ in 0..6000 {
        if acked.lock().unwrap().len() >= kill_after {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    s.kill();
    for h in handles {
        h.join().unwrap();
    }
    let sent = sent.lock().unwrap().clone();
    let acked = acked.lock().unwrap().clone();
    (sent, acked)
}

fn crash(env: &Env) {
    let (mut s, port) = start(env);
    let (sent, acked) = stream_until_killed(port, 400, 60, &mut s);
    assert!(acked.len() >= 60, "{} acknowledged", acked.len());
    assert!(acked.len() < sent.len() + 1);
    let (s, port) = start(env);
    // Every ACKed message is recorded as applied, with its encounter.
    for ctrl in &acked {
        let recs = resources(&s.get(&format!("Communication?identifier={ctrl}")).body);
        assert_eq!(recs.len(), 1, "{ctrl}");
        assert_eq!(recs[0]["status"], "completed", "{ctrl}");
        let visit = format!("V{ctrl}");
        let encs = resources(
            &s.get(&escape_uri(&format!("Encounter?identifier={visit}")))
                .body,
        );
        assert_eq!(encs.len(), 1, "encounter of {ctrl}");
    }
    // Resend everything that was sent (ACKed or not): all AA, nothing twice.
    let mut c = Client::connect(port).unwrap();
    for m in &sent {
        let ack = c.send(m).unwrap();
        assert_eq!(field(&ack, "MSA-1"), "AA", "{ack}");
    }
    let n = sent.len() as u64;
    assert_eq!(
        s.get("Encounter?_summary=count").body["total"].as_u64(),
        Some(n)
    );
    assert_eq!(
        s.get("Patient?_summary=count").body["total"].as_u64(),
        Some(n)
    );
    assert_eq!(
        s.get("Communication?status=completed&_summary=count").body["total"].as_u64(),
        Some(n)
    );
}

#[test]
fn mllp_crash_sqlite() {
    crash(&Env::sqlite());
}

#[test]
fn mllp_crash_postgres() {
    if let Some(env) = Env::postgres() {
        crash(&env);
    }
}

/// The outbound feed through the real binary: a FHIR write and an inbound
/// admission reach a downstream MLLP system as v2 messages, and the records
/// show them delivered.
fn outbound(env: &Env) {
    use wardline_hl7::{AckCode, ack};
    let downstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = downstream.local_addr().unwrap();
    let received = Arc::new(Mutex::new(Vec::<String>::new()));
    let got = received.clone();
    std::thread::spawn(move || {
        for conn in downstream.incoming() {
            let Ok(mut conn) = conn else { return };
            let got = got.clone();
            std::thread::spawn(move || {
                let mut dec = FrameDecoder::new(1 << 20);
                let mut buf = [0u8; 8192];
                loop {
                    while let Some(f) = dec.next_frame() {
                        let text = String::from_utf8(f).unwrap();
                        let m = Message::parse(&text).unwrap();
                        let reply = ack(&m, AckCode::AA, &[]).encode();
                        conn.write_all(&encode_frame(reply.as_bytes())).unwrap();
                        got.lock().unwrap().push(text);
                    }
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            let _ = dec.push(&buf[..n]);
                        }
                    }
                }
            });
        }
    });
    let mllp = free_port();
    let s = env.start_with(&[
        "--mllp-listen",
        &format!("127.0.0.1:{mllp}"),
        "--hl7-destination",
        &format!("RIS={addr}/RADIS^RWG"),
    ]);
    // A FHIR write.
    let p = serde_json::json!({"resourceType": "Patient",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs(20)}],
        "name": [{"family": "OUTBOUND", "given": ["Olive"]}], "birthDate": "1980-02-29"});
    assert_eq!(s.post("Patient", &p).status, 201);
    // An admission from the PAS.
    let mut c = Client::connect(mllp).unwrap();
    let ack = c
        .send(&adt("A01", "OUT-1", &nhs(21), "VOUT", "BED1", "WARD7"))
        .unwrap();
    assert_eq!(field(&ack, "MSA-1"), "AA", "{ack}");
    // Bounded wait for delivery.
    for _ in 0..200 {
        if received.lock().unwrap().len() >= 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = received.lock().unwrap().clone();
    let events: Vec<String> = got
        .iter()
        .map(|m| {
            let msg = Message::parse(m).unwrap();
            format!(
                "{} {} {}",
                msg.get("MSH-9.2").unwrap().unwrap_or(""),
                msg.get("MSH-5").unwrap().unwrap_or(""),
                msg.text("PID-5.1").unwrap().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            "A28 RADIS OUTBOUND",
            "A28 RADIS PATIENT",
            "A01 RADIS PATIENT"
        ],
        "{got:?}"
    );
    assert!(got[0].contains(&nhs(20)));
    // The records say delivered.
    for _ in 0..100 {
        let left = s
            .get("Communication?status=preparation&_summary=count")
            .body["total"]
            .as_u64();
        if left == Some(0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let done = resources(&s.get(&escape_uri(
        "Communication?category=https://fhir.wardline.invalid/CodeSystem/hl7v2-destination|RIS&status=completed",
    )).body);
    assert_eq!(done.len(), 3);
}

#[test]
fn mllp_outbound_sqlite() {
    outbound(&Env::sqlite());
}

#[test]
fn mllp_outbound_postgres() {
    if let Some(env) = Env::postgres() {
        outbound(&env);
    }
}
