//! The Patient Master Index's invariants through the real server, on SQLite
//! and PostgreSQL:
//!
//! * **one active record per NHS number, on every channel**: a second
//!   record holding a number is refused (422, issue `duplicate`, naming the
//!   record that holds it and the element) whether it comes by POST, PUT,
//!   PATCH, a transaction or a batch Bundle or `wardline import`; HL7 v2
//!   files the message on the record that holds the number; a conditional
//!   create (`If-None-Exist`) still answers with the existing record; of
//!   simultaneous creates exactly one wins; a retired (merged) record's
//!   number stands for the record it was merged into, which may take it;
//! * **hospital numbers**: one system and one scheme per trust (the default,
//!   or `--hospital-number-system/-prefix/-digits`): the demo's patients
//!   carry them and are found by them (REST and the UI search, whose results
//!   show them, as the banner does); registration allocates the next number nobody holds,
//!   also when records already hold numbers of the scheme and when clerks
//!   register at the same moment.

use crate::common;

use std::collections::BTreeSet;

use common::{Env, Resp, Server, escape_uri};
use serde_json::{Value, json};

const NHS: &str = "https://fhir.nhs.uk/Id/nhs-number";
const DEFAULT_HN_SYSTEM: &str = "https://fhir.wardline.invalid/Id/hospital-number";

fn nhs(i: usize) -> String {
    wardline_demo::population::nhs_number(900_000 + i)
}

fn patient(nhs: &str, family: &str) -> Value {
    json!({"resourceType": "Patient", "identifier": [{"system": NHS, "value": nhs}],
           "name": [{"family": family, "given": ["Pat"]}], "gender": "female", "birthDate": "1960-01-01"})
}

fn id_of(r: &Resp) -> String {
    r.body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id: {}", r.brief()))
        .to_owned()
}

/// The ids of the current records holding NHS number `n` (not marked `old`).
fn holders(s: &Server, n: &str) -> Vec<String> {
    s.search_all(&escape_uri(&format!("Patient?identifier={NHS}|{n}")))
        .iter()
        .filter(|p| {
            p["identifier"].as_array().unwrap().iter().any(|i| {
                i["system"] == NHS && i["value"] == n && i.get("use") != Some(&json!("old"))
            })
        })
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A 422 `duplicate` at `at` naming `Patient/{holder}`.
fn refused(r: &Resp, holder: &str, at: &str) {
    assert_eq!(r.status, 422, "{}", r.brief());
    let issue = &r.body["issue"][0];
    assert_eq!(issue["code"], "duplicate", "{}", r.brief());
    assert_eq!(issue["expression"][0], at, "{}", r.brief());
    let said = issue["diagnostics"].as_str().unwrap_or_default();
    assert!(said.contains(&format!("Patient/{holder}")), "{said}");
}

fn nhs_numbers(env: Env) {
    let mllp = common::free_port();
    let s = env.start_with(&["--mllp-listen", &format!("127.0.0.1:{mllp}")]);
    let (x, y, z) = (nhs(1), nhs(2), nhs(3));

    // ---- POST, and a conditional create ----------------------------------------
    let a = s.post("Patient", &patient(&x, "First"));
    assert_eq!(a.status, 201, "{}", a.brief());
    let a_id = id_of(&a);
    refused(
        &s.post("Patient", &patient(&x, "Second")),
        &a_id,
        "Patient.identifier[0]",
    );
    assert_eq!(holders(&s, &x), vec![a_id.clone()]);
    let cond = s.post_with(
        "Patient",
        &patient(&x, "Second"),
        &[("If-None-Exist", &format!("identifier={NHS}|{x}"))],
    );
    assert_eq!(cond.status, 200, "{}", cond.brief());
    assert_eq!(id_of(&cond), a_id);
    // The record holding the number is updated as ever.
    let mut a_body = a.body.clone();
    a_body["name"][0]["family"] = json!("Firstly");
    let r = s.put(&format!("Patient/{a_id}"), &a_body);
    assert_eq!(r.status, 200, "{}", r.brief());

    // ---- PUT and PATCH giving another record the number ---------------------------
    let c = s.post("Patient", &patient(&y, "Other"));
    assert_eq!(c.status, 201, "{}", c.brief());
    let c_id = id_of(&c);
    let mut c_body = c.body.clone();
    c_body["identifier"] = json!([{"system": "https://example.org/mrn", "value": "M1"},
                                  {"system": NHS, "value": x}]);
    refused(
        &s.put(&format!("Patient/{c_id}"), &c_body),
        &a_id,
        "Patient.identifier[1]",
    );
    let mut new_id = patient(&x, "Created");
    new_id["id"] = json!("pmi-put-create");
    refused(
        &s.put("Patient/pmi-put-create", &new_id),
        &a_id,
        "Patient.identifier[0]",
    );
    let patch = json!([{"op": "replace", "path": "/identifier/0/value", "value": x}]);
    refused(
        &s.raw(
            reqwest::Method::PATCH,
            &format!("Patient/{c_id}"),
            "application/json-patch+json",
            serde_json::to_vec(&patch).unwrap(),
            &[],
        ),
        &a_id,
        "Patient.identifier[0]",
    );
    assert_eq!(holders(&s, &y), vec![c_id.clone()]);
    assert_eq!(holders(&s, &x), vec![a_id.clone()]);

    // ---- transaction and batch Bundles ------------------------------------------
    let entry = |p: Value| json!({"resource": p, "request": {"method": "POST", "url": "Patient"}});
    let r = s.post(
        "",
        &json!({"resourceType": "Bundle", "type": "transaction",
                "entry": [entry(patient(&z, "Twin")), entry(patient(&z, "Twin"))]}),
    );
    assert_eq!(r.status, 422, "{}", r.brief());
    assert_eq!(r.body["issue"][0]["code"], "duplicate");
    assert_eq!(
        r.body["issue"][0]["expression"][0],
        "Bundle.entry[1].resource.identifier[0]"
    );
    assert!(
        holders(&s, &z).is_empty(),
        "nothing of the transaction is written"
    );
    refused(
        &s.post(
            "",
            &json!({"resourceType": "Bundle", "type": "transaction",
                    "entry": [entry(patient(&z, "Fine")), entry(patient(&x, "Clash"))]}),
        ),
        &a_id,
        "Bundle.entry[1].resource.identifier[0]",
    );
    assert!(holders(&s, &z).is_empty());
    let r = s.post(
        "",
        &json!({"resourceType": "Bundle", "type": "batch",
                "entry": [entry(patient(&x, "Clash")), entry(patient(&z, "Fine"))]}),
    );
    assert_eq!(r.status, 200, "{}", r.brief());
    let out = &r.body["entry"];
    assert_eq!(
        out[0]["response"]["status"],
        "422 Unprocessable Entity",
        "{r:?}",
        r = r.body
    );
    let oo = &out[0]["response"]["outcome"]["issue"][0];
    assert_eq!(oo["code"], "duplicate");
    assert!(
        oo["diagnostics"]
            .as_str()
            .unwrap()
            .contains(&format!("Patient/{a_id}")),
        "{oo}"
    );
    assert_eq!(out[1]["response"]["status"], "201 Created");
    assert_eq!(holders(&s, &z).len(), 1);

    // ---- wardline import -----------------------------------------------------------
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clash.json");
    std::fs::write(&file, serde_json::to_vec(&patient(&x, "Imported")).unwrap()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wardline"))
        .arg("import")
        .arg(&file)
        .args(env.store_args())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "the import is refused: {text}");
    assert!(
        text.contains("Patient.identifier")
            && !text.contains("HTTP 4")
            && text.contains(&format!("Patient/{a_id}")),
        "{text}"
    );
    assert_eq!(holders(&s, &x), vec![a_id.clone()]);

    // ---- HL7 v2: the message is filed on the record holding the number -------------
    let mut hl7 = crate::hl7::Client::connect(mllp).unwrap();
    let ack = hl7
        .send(&format!(
            "MSH|^~\\&|PAS|RWG|WARDLINE|RWG|20261123090000||ADT^A28^ADT_A05|PMI1|P|2.4\r\
             EVN|A28|20261123090000\r\
             PID|1||{x}^^^NHS^NH~RWG777001^^^RWG^MR||FIRSTLY^Pat||19600101|F\r"
        ))
        .unwrap();
    assert_eq!(crate::hl7::field(&ack, "MSA-1"), "AA", "{ack}");
    assert_eq!(holders(&s, &x), vec![a_id.clone()]);

    // ---- a retired record's number ----------------------------------------------
    let v = nhs(4);
    let retired = id_of(&s.post("Patient", &patient(&v, "Merged")));
    let survivor = s.post(
        "Patient",
        &json!({"resourceType": "Patient", "name": [{"family": "Merged", "given": ["Pat"]}],
                "gender": "female", "birthDate": "1960-01-01"}),
    );
    let survivor_id = id_of(&survivor);
    let r = s.post(
        "Patient/$merge",
        &json!({"resourceType": "Parameters", "parameter": [
            {"name": "source-patient", "valueReference": {"reference": format!("Patient/{retired}")}},
            {"name": "target-patient", "valueReference": {"reference": format!("Patient/{survivor_id}")}}]}),
    );
    assert_eq!(r.status, 200, "{}", r.brief());
    // A new record would duplicate the person the number was merged into...
    refused(
        &s.post("Patient", &patient(&v, "Again")),
        &survivor_id,
        "Patient.identifier[0]",
    );
    // ...who may take it.
    let mut kept = s.get(&format!("Patient/{survivor_id}")).body;
    kept["identifier"] = json!([{"system": NHS, "value": v}]);
    let r = s.put(&format!("Patient/{survivor_id}"), &kept);
    assert_eq!(r.status, 200, "{}", r.brief());

    // ---- simultaneous creates: exactly one wins ---------------------------------------
    let race = nhs(5);
    let statuses: Vec<u16> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (s, race) = (&s, &race);
                sc.spawn(move || {
                    s.post("Patient", &patient(race, &format!("Racer{i}")))
                        .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 422),
        "{statuses:?}"
    );
    assert_eq!(holders(&s, &race).len(), 1);

    // ---- a number marked old no longer identifies a record ----------------------
    c_body["identifier"][1]["use"] = json!("old");
    let r = s.put(&format!("Patient/{c_id}"), &c_body);
    assert_eq!(r.status, 200, "{}", r.brief());
}

#[test]
fn nhs_number_unique_on_every_channel_sqlite() {
    nhs_numbers(Env::sqlite());
}

#[test]
fn nhs_number_unique_on_every_channel_postgres() {
    let Some(env) = Env::postgres() else { return };
    nhs_numbers(env);
}

// ---- hospital numbers ----------------------------------------------------------

/// A trust's hospital-number scheme: system, prefix, digits (before the
/// Luhn check digit).
struct Scheme {
    system: &'static str,
    prefix: &'static str,
    digits: usize,
}

impl Scheme {
    fn number(&self, n: u64) -> String {
        let body = format!("{n:0width$}", width = self.digits);
        let mut sum = 0;
        for (i, c) in body.bytes().rev().enumerate() {
            let mut d = u32::from(c - b'0');
            if i % 2 == 0 {
                d *= 2;
                if d > 9 {
                    d -= 9;
                }
            }
            sum += d;
        }
        format!("{}{body}{}", self.prefix, (10 - sum % 10) % 10)
    }

    /// The serial number of a value of this scheme (its check digit right).
    fn serial(&self, value: &str) -> Option<u64> {
        let rest = value.strip_prefix(self.prefix)?;
        if rest.len() != self.digits + 1 || !rest.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: u64 = rest[..self.digits].parse().ok()?;
        (self.number(n) == value).then_some(n)
    }

    fn of(&self, p: &Value) -> Option<String> {
        p["identifier"]
            .as_array()?
            .iter()
            .find(|i| i["system"] == self.system)
            .and_then(|i| i["value"].as_str())
            .map(str::to_owned)
    }
}

/// Registers a person through the form (the clerk confirming they are new);
/// the new record's id.
fn register(root: &str, clerk: &reqwest::blocking::Client, token: &str, family: &str) -> String {
    let r = clerk
        .post(format!("{root}/ui/patients/new"))
        .form(&[
            ("csrf", token),
            ("nhs_number", ""),
            ("given", "Hana"),
            ("family", family),
            ("birth_date", "1977-05-06"),
            ("gender", "female"),
            ("address_line", "9 Mill Lane"),
            ("city", "Watford"),
            ("postcode", "WD17 2AA"),
            ("phone", ""),
            ("confirm", "yes"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().unwrap_or_default());
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    location
        .trim_start_matches("/ui/patients/")
        .split('?')
        .next()
        .unwrap()
        .to_owned()
}

fn hospital_numbers(env: Env, scheme: Scheme, flags: &[&str]) {
    use crate::ui::{browser, csrf, sign_in};
    let mut args = vec!["--demo"];
    args.extend_from_slice(flags);
    let s = env.start_with(&args);
    let root = s.root.clone();

    // ---- every demo patient carries one, in the trust's system and scheme ----------
    let demo = s.search_all("Patient?_count=500");
    assert!(demo.len() >= 100, "{}", demo.len());
    let mut serials = BTreeSet::new();
    for p in &demo {
        let hn = scheme
            .of(p)
            .unwrap_or_else(|| panic!("no hospital number in {}: {p}", scheme.system));
        let n = scheme
            .serial(&hn)
            .unwrap_or_else(|| panic!("{hn} is not of the trust's scheme"));
        assert!(serials.insert(n), "{hn} given twice");
    }
    // Found by it over REST...
    for p in demo.iter().step_by(37) {
        let hn = scheme.of(p).unwrap();
        let found = s.search_all(&escape_uri(&format!(
            "Patient?identifier={}|{hn}",
            scheme.system
        )));
        assert_eq!(found.len(), 1, "{hn}");
        assert_eq!(found[0]["id"], p["id"]);
    }
    // ...and in the UI, whose results and banner show it.
    let clerk = browser();
    sign_in(&env, &root, &clerk, "clerk.watford");
    let p = &demo[3];
    let hn = scheme.of(p).unwrap();
    let page = clerk
        .get(format!("{root}/ui/patients"))
        .query(&[("q", hn.to_lowercase())])
        .send()
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().unwrap();
    let family = p["name"][0]["family"].as_str().unwrap().to_uppercase();
    assert!(
        html.contains(r#"data-testid="patient-results""#) && html.contains(&family),
        "{hn} finds {family}: {html}"
    );
    assert!(
        html.contains(&format!("Hospital number </span>{hn}")),
        "{html}"
    );

    // ---- registration allocates the next number nobody holds ---------------------
    let token = csrf(&root, &clerk);
    let top = *serials.last().unwrap();
    let first = register(&root, &clerk, &token, "Allocone");
    let got = scheme
        .of(&s.get(&format!("Patient/{first}")).body)
        .expect("a hospital number");
    assert_eq!(got, scheme.number(top + 1));
    // The banner of the new record shows it.
    let chart = clerk
        .get(format!("{root}/ui/patients/{first}"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(chart.contains(&format!("<dd>{got}</dd>")), "{chart}");
    // Numbers of the scheme already held (a legacy record, one marked old)
    // are skipped.
    let legacy = s.post(
        "Patient",
        &json!({"resourceType": "Patient", "name": [{"family": "Legacy"}],
                "identifier": [{"system": scheme.system, "value": scheme.number(top + 2)},
                               {"system": scheme.system, "value": scheme.number(top + 3), "use": "old"}]}),
    );
    assert_eq!(legacy.status, 201, "{}", legacy.brief());
    let second = register(&root, &clerk, &token, "Alloctwo");
    let got = scheme
        .of(&s.get(&format!("Patient/{second}")).body)
        .unwrap();
    assert_eq!(got, scheme.number(top + 4));
    // A number already held is refused on every channel.
    let r = s.post(
        "Patient",
        &json!({"resourceType": "Patient", "name": [{"family": "Copy"}],
                "identifier": [{"system": scheme.system, "value": got}]}),
    );
    refused(&r, &second, "Patient.identifier[0]");

    // Clerks registering at the same moment get distinct numbers.
    let ids: Vec<String> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let (root, clerk, token) = (&root, &clerk, &token);
                sc.spawn(move || {
                    register(root, clerk, token, &format!("Concur{}", (b'a' + i) as char))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut numbers = BTreeSet::new();
    for id in &ids {
        let hn = scheme.of(&s.get(&format!("Patient/{id}")).body).unwrap();
        let n = scheme.serial(&hn).expect("of the scheme");
        assert!(n > top + 4, "{hn}");
        assert!(numbers.insert(n), "{hn} allocated twice");
    }
    assert_eq!(numbers.len(), 6);
}

#[test]
fn hospital_numbers_sqlite() {
    hospital_numbers(
        Env::sqlite(),
        Scheme {
            system: DEFAULT_HN_SYSTEM,
            prefix: "W",
            digits: 7,
        },
        &[],
    );
}

/// On PostgreSQL with a trust's own scheme.
#[test]
fn hospital_numbers_postgres() {
    let Some(env) = Env::postgres() else { return };
    hospital_numbers(
        env,
        Scheme {
            system: "https://fhir.example-trust.nhs.uk/Id/mrn",
            prefix: "RWG",
            digits: 6,
        },
        &[
            "--hospital-number-system",
            "https://fhir.example-trust.nhs.uk/Id/mrn",
            "--hospital-number-prefix",
            "RWG",
            "--hospital-number-digits",
            "6",
        ],
    );
}
