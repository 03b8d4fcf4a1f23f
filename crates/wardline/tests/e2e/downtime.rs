//! Issue 22: read-only downtime, the downtime report and live pages across
//! servers, through the real binary:
//!
//! * `wardline downtime on` (audited) turns a running server read-only
//!   within a second: a REST write is 503 with an OperationOutcome saying
//!   downtime and nothing stored, and `Retry-After`; an HL7 v2 admission is
//!   `AR` "not stored, downtime" and creates nothing; the bed board still
//!   shows, with the downtime banner, and a form post is refused with a
//!   page saying nothing was saved; reads go on. `off` restores writes.
//!   Both backends (H-335).
//! * `wardline downtime report --out DIR` writes, per ward, printable HTML
//!   and CSV with the generated-at time, the ward's patients, an allergy
//!   alert and a medicine due; `serve --downtime-dir` writes it at start-up
//!   (H-336, H-337).
//! * Two `wardline serve` on one PostgreSQL database: an admission through
//!   server A reaches server B's live event stream and B's bed board (H-338).

use std::io::Read;
use std::time::{Duration, Instant};

use crate::common;
use crate::ui::{browser, csrf, page, sign_in};

use common::{Env, Server, free_port};
use reqwest::blocking::Client;
use serde_json::{Value, json};

fn post_form(
    c: &Client,
    root: &str,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::blocking::Response {
    let token = csrf(root, c);
    let mut f: Vec<(&str, &str)> = vec![("csrf", token.as_str())];
    f.extend_from_slice(form);
    c.post(format!("{root}{path}")).form(&f).send().unwrap()
}

/// The value of the first option of the select `id` starting with `prefix`.
fn option(html: &str, id: &str, prefix: &str) -> String {
    let at = html
        .find(&format!(r#"id="{id}""#))
        .unwrap_or_else(|| panic!("no select {id} in {html}"));
    let select = &html[at..html[at..].find("</select>").map_or(html.len(), |e| at + e)];
    select
        .split(r#"<option value=""#)
        .skip(1)
        .filter_map(|o| o.split('"').next())
        .find(|v| !v.is_empty() && v.starts_with(prefix))
        .unwrap_or_else(|| panic!("no option {prefix}… in select {id}: {select}"))
        .to_owned()
}

fn nhs(i: usize) -> String {
    wardline_demo::population::nhs_number(i)
}

fn patient(id: &str, family: &str, nhs: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "active": true,
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}],
        "name": [{"family": family, "given": ["Dora"]}],
        "gender": "female", "birthDate": "1950-06-15"})
}

/// Polls `f` (a few times a second, at most ~20 s) until it returns true:
/// the switch is read by each server at most once a second.
fn until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("never happened: {what}");
}

fn adt_a01(ctrl: &str, nhs: &str) -> String {
    format!(
        "MSH|^~\\&|PAS|RWG|WARDLINE|RWG|20261123090000||ADT^A01^ADT_A01|{ctrl}|P|2.4\r\
         EVN|A01|20261123090000\r\
         PID|1||{nhs}^^^NHS^NH||DOWNTIME^HL7^^^MR||19700101|F|||1 HIGH ST^^WATFORD^^WD18 0HB\r\
         PV1|1|I|WARD7^BAY1^BED1^RWG||||C1234567^JONES^ALAN|||GEN|||||||||V{ctrl}|||||||||||||||||||||||||20261123090000|\r"
    )
}

fn refusals(env: &Env) {
    let mllp = free_port();
    let s = env.start_with(&["--demo", "--mllp-listen", &format!("127.0.0.1:{mllp}")]);
    let root = s.root.clone();
    let before = s.put(
        "Patient/dt-before",
        &patient("dt-before", "Beforehand", &nhs(900_001)),
    );
    assert!(before.is_success(), "{}: {}", env.name, before.brief());

    let out = env.cli(&["downtime", "on", "--reason", "planned upgrade"]);
    assert!(out.contains("downtime on since"), "{out}");
    assert!(env.cli(&["downtime", "status"]).contains("planned upgrade"));

    // --- REST: 503, an OperationOutcome saying downtime, Retry-After ---------
    let mut refused = None;
    until("a REST write refused for downtime", || {
        let r = s.put(
            "Patient/dt-during",
            &patient("dt-during", "Duringly", &nhs(900_002)),
        );
        let done = r.status == 503;
        if done {
            refused = Some(r);
        } else {
            // Accepted before the server read the switch: undo nothing,
            // the check below is on a fresh id.
        }
        done
    });
    let r = refused.unwrap();
    let text = r.body["issue"][0]["diagnostics"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(r.body["resourceType"], "OperationOutcome", "{}", r.text);
    assert!(
        text.starts_with("Read-only: downtime since "),
        "{}: {text}",
        env.name
    );
    assert!(text.contains("nothing was stored"), "{text}");
    assert!(
        r.header("retry-after").is_some(),
        "{}: no Retry-After",
        env.name
    );
    let created = s.post(
        "Patient",
        &patient("ignored", "Createdindowntime", &nhs(900_003)),
    );
    assert_eq!(created.status, 503, "{}: {}", env.name, created.brief());
    assert_eq!(
        s.count("Patient?family=Createdindowntime"),
        0,
        "{}: nothing stored",
        env.name
    );

    // --- reads go on ------------------------------------------------------------
    assert_eq!(s.get("Patient/dt-before").status, 200, "{}", env.name);
    assert_eq!(s.count("Patient?family=Beforehand"), 1, "{}", env.name);

    // --- HL7 v2: AR "not stored, downtime", nothing created --------------------
    let mut c = crate::hl7::Client::connect(mllp).unwrap();
    let ack = c.send(&adt_a01("DT-1", &nhs(900_006))).unwrap();
    assert_eq!(
        crate::hl7::field(&ack, "MSA-1"),
        "AR",
        "{}: {ack}",
        env.name
    );
    assert!(ack.contains("not stored, downtime"), "{}: {ack}", env.name);
    assert_eq!(
        s.count(&format!(
            "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number%7C{}",
            nhs(900_006)
        )),
        0,
        "{}: the refused message created a patient",
        env.name
    );

    // --- the workspace: banner on the bed board, write forms hidden, posts refused
    let clerk = browser();
    sign_in(env, &root, &clerk, "clerk.watford");
    let board = page(&clerk, &format!("{root}/ui/beds/watford-w1"));
    assert!(
        board.contains(r#"data-testid="downtime-banner""#),
        "{}: {board}",
        env.name
    );
    assert!(board.contains("Read-only: downtime since "), "{board}");
    assert!(board.contains("record on paper"), "{board}");
    assert!(board.contains(r#"class="wl-downtime""#), "{board}");
    let admit = page(&clerk, &format!("{root}/ui/patients/dt-before/admit"));
    assert!(
        admit.contains(r#"data-testid="downtime-banner""#),
        "{admit}"
    );
    let bed = option(&admit, "bed", "watford-w1-");
    let r = post_form(
        &clerk,
        &root,
        "/ui/patients/dt-before/admit",
        &[
            ("kind", "emergency"),
            ("bed", &bed),
            ("placement_bed", &bed),
            ("placement_reason", "x"),
        ],
    );
    assert_eq!(r.status(), 503, "{}", env.name);
    let body = r.text().unwrap();
    assert!(body.contains("Nothing was saved"), "{}: {body}", env.name);
    assert_eq!(
        s.count("Encounter?subject=Patient/dt-before"),
        0,
        "{}: the refused admission wrote an Encounter",
        env.name
    );

    // --- off again: writes are accepted ------------------------------------------
    env.cli(&["downtime", "off"]);
    until("writes accepted after downtime off", || {
        s.put(
            "Patient/dt-after",
            &patient("dt-after", "Afterwards", &nhs(900_004)),
        )
        .is_success()
    });
    let board = page(&clerk, &format!("{root}/ui/beds/watford-w1"));
    assert!(
        !board.contains("downtime-banner"),
        "{}: banner after off",
        env.name
    );

    // --- both switches are in the audit trail ------------------------------------
    let po = env.privacy_officer();
    for code in ["downtime-on", "downtime-off"] {
        let b: Value = po
            .get(s.url(&format!("AuditEvent?subtype={code}")))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let n = b["entry"].as_array().map_or(0, Vec::len);
        assert!(n >= 1, "{}: no audit event {code}: {b}", env.name);
    }
}

#[test]
fn downtime_refuses_every_write_sqlite() {
    refusals(&Env::sqlite());
}

#[test]
fn downtime_refuses_every_write_postgres() {
    if let Some(env) = Env::postgres() {
        refusals(&env);
    }
}

fn put_ok(s: &Server, body: Value) {
    let path = format!(
        "{}/{}",
        body["resourceType"].as_str().unwrap(),
        body["id"].as_str().unwrap()
    );
    let r = s.put(&path, &body);
    assert!(r.is_success(), "PUT {path}: {}", r.brief());
}

#[test]
fn downtime_report_per_ward() {
    let env = Env::sqlite();
    let scheduled = tempfile::tempdir().unwrap();
    let s = env.start_with(&[
        "--demo",
        "--downtime-dir",
        scheduled.path().to_str().unwrap(),
        "--downtime-every",
        "1h",
    ]);
    // A patient of the demo's drug round on watford-w1, with an allergy.
    let rx = s.get("MedicationRequest?status=active&_count=1");
    let subject = rx.body["entry"][0]["resource"]["subject"]["reference"]
        .as_str()
        .unwrap_or_else(|| panic!("a demo prescription: {}", rx.text))
        .to_owned();
    let pid = subject.trim_start_matches("Patient/").to_owned();
    put_ok(
        &s,
        json!({"resourceType": "AllergyIntolerance", "id": "dt-allergy", "patient": {"reference": subject},
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "91936005", "display": "Allergy to penicillin"}]},
            "criticality": "high"}),
    );
    let nhs = s.get(&format!("Patient/{pid}")).body["identifier"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["system"] == "https://fhir.nhs.uk/Id/nhs-number")
        .and_then(|i| i["value"].as_str())
        .unwrap()
        .to_owned();

    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("reports");
    let listed = env.cli(&[
        "downtime",
        "report",
        "--out",
        dir.to_str().unwrap(),
        "--hours",
        "4",
    ]);
    assert!(listed.contains("ward-watford-w1.csv"), "{listed}");
    let csv = std::fs::read_to_string(dir.join("ward-watford-w1.csv")).unwrap();
    let html = std::fs::read_to_string(dir.join("ward-watford-w1.html")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "generated_at,ward,bed,name,nhs_number,age,consultant,alerts,medicines_due"
    );
    let rows: Vec<&str> = lines.collect();
    assert!(!rows.is_empty(), "the ward's patients: {csv}");
    assert!(
        rows.iter().all(|r| r.contains("(local)")),
        "generated-at on every row: {csv}"
    );
    let row = rows
        .iter()
        .find(|r| r.contains(&nhs))
        .unwrap_or_else(|| panic!("patient {nhs} in the report: {csv}"));
    assert!(row.contains("Allergies: 1 (high criticality)"), "{row}");
    assert!(
        row.contains("Overdue") || row.contains("Due"),
        "a medicine due: {row}"
    );
    assert!(html.contains(r#"data-testid="generated-at""#), "{html}");
    assert!(html.contains("Generated "), "{html}");
    assert!(html.contains("@media print"), "print styles: {html}");
    assert!(html.contains("Allergies: 1 (high criticality)"), "{html}");
    assert!(
        html.contains(&format!("{} {} {}", &nhs[..3], &nhs[3..6], &nhs[6..])),
        "{html}"
    );
    assert!(dir.join("index.html").is_file());
    // Written atomically: no temporary file left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The server's schedule wrote it at start-up too (to its own directory).
    until("the scheduled report at start-up", || {
        scheduled.path().join("index.html").is_file()
            && scheduled.path().join("ward-watford-w1.csv").is_file()
    });
    // Every read of the report is audited under the system agent.
    let po = env.privacy_officer();
    let b: Value = po
        .get(s.url("AuditEvent?agent=downtime-report&_count=1"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        b["entry"].as_array().is_some_and(|e| !e.is_empty()),
        "the report's reads are audited: {b}"
    );
}

/// Reads the SSE stream until a `change` event; gives up after 30 s (the
/// server sends a keep-alive every 15 s, so a read returns at least that
/// often and the wait is bounded).
fn saw_change(resp: &mut reqwest::blocking::Response) -> bool {
    let mut buf = [0u8; 4096];
    let mut seen = String::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        match resp.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => {
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
                if seen.contains("event: change") {
                    return true;
                }
            }
        }
    }
    false
}

#[test]
fn live_pages_across_servers_postgres() {
    let Some(env) = Env::postgres() else {
        return;
    };
    let a = env.start_with(&["--demo"]);
    let b = env.start_with(&["--demo"]);
    put_ok(&a, patient("dt-live", "Livewire", &nhs(900_005)));

    // A nurse on server B watches the live stream of the ward.
    let nurse = browser();
    sign_in(&env, &b.root, &nurse, "nurse.w1");
    let board = page(&nurse, &format!("{}/ui/beds/watford-w1", b.root));
    assert!(!board.to_uppercase().contains("LIVEWIRE"));
    let stream_client = Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()
        .unwrap();
    sign_in(&env, &b.root, &stream_client, "nurse2.w1");
    let mut events = stream_client
        .get(format!("{}/ui/events", b.root))
        .send()
        .unwrap();
    assert_eq!(events.status(), 200);

    // The clerk admits through server A.
    let clerk = browser();
    sign_in(&env, &a.root, &clerk, "clerk.watford");
    let admit = page(&clerk, &format!("{}/ui/patients/dt-live/admit", a.root));
    let bed = option(&admit, "bed", "watford-w1-");
    let r = post_form(
        &clerk,
        &a.root,
        "/ui/patients/dt-live/admit",
        &[
            ("kind", "emergency"),
            ("bed", &bed),
            ("placement_bed", &bed),
            ("placement_reason", "Only bed on the ward"),
        ],
    );
    assert_eq!(r.status(), 303, "admit on A: {}", r.text().unwrap());

    assert!(
        saw_change(&mut events),
        "server B's live stream never heard of server A's admission"
    );
    let board = page(&nurse, &format!("{}/ui/beds/watford-w1", b.root));
    assert!(
        board.to_uppercase().contains("LIVEWIRE"),
        "B's bed board shows A's admission: {board}"
    );
}
