//! Issue 21, bounded work per request, against the real binary on SQLite and
//! PostgreSQL: while one client sends what used to hold the writer for
//! seconds (a Patient with 12,000 names, a 50 MB string, PID-5 repeated
//! 12,000 times over MLLP), a second client's small write made every second
//! completes within a second each; each of those is refused with a 4xx (or
//! `AE`) naming the element and the limit. Searches past the limits (999
//! parameters, 3,000 OR values) are a 400 saying what was too many, and the
//! largest searches within them answer on both backends; a body sent as gzip
//! that is not gzip (or is cut short) is a 400 saying so.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Env, Server, expect_outcome, free_port};
use serde_json::{Value, json};

use crate::hl7::{Client, field};

fn name(i: usize) -> Value {
    json!({"text": format!("Dr Jo{i} Ann Sue Bloggs{i} PhD"), "family": format!("Bloggs{i}"),
        "given": [format!("Jo{i}"), "Ann", "Sue"], "prefix": ["Dr"], "suffix": ["PhD"]})
}

fn diagnostics(r: &common::Resp) -> String {
    r.body["issue"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["diagnostics"].as_str())
        .collect::<Vec<_>>()
        .join(" / ")
}

/// A second client: a small Patient write every second until `stop`; the
/// time each took (and its status).
fn small_writes(
    s: &Server,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<(u16, Duration)>> {
    let client = common::authorised_client(&s.token);
    let url = s.url("Patient");
    std::thread::spawn(move || {
        let mut out = Vec::new();
        // Bounded: at most ten minutes of writes, whatever happens.
        for i in 0..600 {
            if stop.load(Ordering::Acquire) && out.len() >= 3 {
                break;
            }
            let started = Instant::now();
            let status = client
                .post(&url)
                .header("Content-Type", "application/fhir+json")
                .body(
                    json!({"resourceType": "Patient", "name": [{"family": format!("Small{i}")}]})
                        .to_string(),
                )
                .send()
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            let took = started.elapsed();
            out.push((status, took));
            if let Some(rest) = Duration::from_secs(1).checked_sub(took) {
                std::thread::sleep(rest);
            }
        }
        out
    })
}

fn adt_with_names(ctrl: &str, names: usize) -> String {
    let pid5 = (0..names)
        .map(|i| format!("PATIENT{i}^JO^ANN^^DR"))
        .collect::<Vec<_>>()
        .join("~");
    format!(
        "MSH|^~\\&|PAS|RWG|WARDLINE|RWG|20261123090000||ADT^A28^ADT_A05|{ctrl}|P|2.4\r\
         EVN|A28|20261123090000\r\
         PID|1||9434765919^^^NHS^NH||{pid5}||19700101|F\r"
    )
}

fn abuse(env: &Env) {
    let mllp = free_port();
    let s = env.start_with(&["--mllp-listen", &format!("127.0.0.1:{mllp}")]);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = small_writes(&s, stop.clone());

    // A Patient with 12,000 names (text, family, three given, prefix,
    // suffix): refused at once, naming the element and the limit.
    let big = json!({"resourceType": "Patient", "name": (0..12_000).map(name).collect::<Vec<_>>()});
    let started = Instant::now();
    let r = s.post("Patient", &big);
    let took = started.elapsed();
    let at = expect_outcome(&r, "12,000 names");
    assert_eq!(r.status, 422, "{}", r.brief());
    assert_eq!(at, vec!["Patient.name"], "{}", r.brief());
    let d = diagnostics(&r);
    assert!(d.contains("12000") && d.contains("10000"), "{d}");
    assert!(took < Duration::from_secs(30), "refused in {took:?}");
    // The same in a transaction names the entry.
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "name": [{"family": "Fine"}]},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": big, "request": {"method": "POST", "url": "Patient"}}]});
    let r = s.post("", &tx);
    assert_eq!(r.status, 422, "{}", r.brief());
    assert_eq!(
        expect_outcome(&r, "in a transaction"),
        vec!["Bundle.entry[1].resource.name"]
    );

    // A 50 MB string: refused quickly, naming it.
    let huge = json!({"resourceType": "Patient", "name": [{"text": "x".repeat(50_000_000)}]});
    let started = Instant::now();
    let r = s.post("Patient", &huge);
    let took = started.elapsed();
    assert_eq!(r.status, 422, "{}", r.brief());
    assert_eq!(
        expect_outcome(&r, "50 MB string"),
        vec!["Patient.name[0].text"]
    );
    assert!(diagnostics(&r).contains("1048576"), "{}", r.brief());
    assert!(took < Duration::from_secs(30), "refused in {took:?}");

    // PID-5 repeated 12,000 times over MLLP: AE naming PID-5, nothing applied.
    let mut c = Client::connect(mllp).expect("MLLP connect");
    let ack = c.send(&adt_with_names("BIG-1", 12_000)).expect("ACK");
    assert_eq!(field(&ack, "MSA-1"), "AE", "{ack}");
    assert!(ack.contains("\rERR|PID^1^5"), "ERR names PID-5: {ack}");
    assert!(ack.contains("PID-5 repeats 12000 times"), "{ack}");
    assert_eq!(
        s.count("Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919"),
        0
    );
    // The refusal is recorded (not-done), as any content error.
    assert_eq!(
        s.count("Communication?status=not-done&_summary=count"),
        1,
        "the refused message is recorded"
    );
    // Within the limit, the same message is applied.
    let ack = c.send(&adt_with_names("SMALL-1", 3)).expect("ACK");
    assert_eq!(field(&ack, "MSA-1"), "AA", "{ack}");

    // Searches past the limits: 400 naming what was too many.
    let many_params = vec!["given=a"; 999].join("&");
    let r = s.get(&format!("Patient?{many_params}"));
    assert_eq!(r.status, 400, "{}", r.brief());
    assert!(diagnostics(&r).contains("999 parameters"), "{}", r.brief());
    let or_values = (0..3000)
        .map(|i| format!("n{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let r = s.get(&format!("Patient?name={or_values}"));
    assert_eq!(r.status, 400, "{}", r.brief());
    assert_eq!(expect_outcome(&r, "3,000 OR values"), vec!["name"]);
    assert!(diagnostics(&r).contains("3000 values"), "{}", r.brief());
    // The same through POST _search and as conditional-create criteria.
    let r = s.raw(
        reqwest::Method::POST,
        "Patient/_search",
        "application/x-www-form-urlencoded",
        format!("name={or_values}"),
        &[],
    );
    assert_eq!(r.status, 400, "{}", r.brief());
    let r = s.post_with(
        "Patient",
        &json!({"resourceType": "Patient"}),
        &[("If-None-Exist", &format!("name={or_values}"))],
    );
    assert_eq!(r.status, 400, "{}", r.brief());

    // The largest searches within the limits answer on this backend: 100
    // parameters; 10 parameters of 100 OR values (1,000 values); 10,000 ids.
    let r = s.get(&format!("Patient?{}", vec!["given=a"; 100].join("&")));
    assert_eq!(r.status, 200, "{}", r.brief());
    let hundred = (0..100)
        .map(|i| format!("n{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let q = (0..10)
        .map(|_| format!("name={hundred}"))
        .collect::<Vec<_>>()
        .join("&");
    let r = s.get(&format!("Patient?{q}"));
    assert_eq!(r.status, 200, "{}", r.brief());
    let ids = (0..10_000)
        .map(|i| format!("id-{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let r = s.raw(
        reqwest::Method::POST,
        "Patient/_search",
        "application/x-www-form-urlencoded",
        format!("_id={ids}"),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.brief());
    let r = s.raw(
        reqwest::Method::POST,
        "Patient/_search",
        "application/x-www-form-urlencoded",
        format!("_id={ids},one-more"),
        &[],
    );
    assert_eq!(r.status, 400, "{}", r.brief());

    // A body sent as gzip that is not gzip.
    let r = s.raw(
        reqwest::Method::POST,
        "Patient",
        "application/fhir+json",
        json!({"resourceType": "Patient"}).to_string(),
        &[("Content-Encoding", "gzip")],
    );
    assert_eq!(r.status, 400, "{}", r.brief());
    assert!(diagnostics(&r).contains("not valid gzip"), "{}", r.brief());
    // A real gzip body is still read.
    let gz = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(json!({"resourceType": "Patient"}).to_string().as_bytes())
            .unwrap();
        e.finish().unwrap()
    };
    let r = s.raw(
        reqwest::Method::POST,
        "Patient",
        "application/fhir+json",
        gz.clone(),
        &[("Content-Encoding", "gzip")],
    );
    assert_eq!(r.status, 201, "{}", r.brief());
    // A gzip body cut short is refused whole, never written in part.
    let r = s.raw(
        reqwest::Method::POST,
        "Patient",
        "application/fhir+json",
        gz[..gz.len() - 12].to_vec(),
        &[("Content-Encoding", "gzip")],
    );
    assert_eq!(r.status, 400, "{}", r.brief());
    assert!(diagnostics(&r).contains("not valid gzip"), "{}", r.brief());

    stop.store(true, Ordering::Release);
    let writes = writer.join().expect("the small writer");
    assert!(writes.len() >= 3, "{writes:?}");
    for (i, (status, took)) in writes.iter().enumerate() {
        assert_eq!(*status, 201, "small write {i}: {writes:?}");
        assert!(
            *took < Duration::from_secs(1),
            "small write {i} took {took:?} ({}): {writes:?}",
            env.name
        );
    }
}

#[test]
fn bounded_work_per_request_sqlite() {
    abuse(&Env::sqlite());
}

#[test]
fn bounded_work_per_request_postgres() {
    if let Some(env) = Env::postgres() {
        abuse(&env);
    }
}
