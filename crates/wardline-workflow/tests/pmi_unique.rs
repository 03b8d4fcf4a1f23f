//! The PMI's uniqueness rule and hospital numbers over a real store (SQLite
//! always, PostgreSQL when `WARDLINE_TEST_PG_URL` is set), with two services
//! on one database standing for two servers:
//!
//! * with `wardline_workflow::with_rules`, no path gives a second active
//!   record an NHS number (a workflow's `Tx::save`, the HL7 v2 engine's
//!   transaction, registration), also when clerks on two servers register
//!   one number at the same moment, and also when the holder is a record
//!   the caller cannot see;
//! * retired records: their number stands for the survivor, which may take
//!   it; an unmerge that would leave two active records with one NHS number
//!   is refused, and goes through once the number is corrected; records that
//!   shared a number before the rule can still be updated;
//! * hospital numbers: consecutive in the default scheme, numbers already
//!   held are skipped, racing registrations on two servers get distinct
//!   numbers, and search checks a typed number's check digit.

use std::sync::Arc;

use serde_json::{Value, json};
use wardline_core::{FhirService, ServiceConfig, Trusted};
use wardline_workflow::pmi::{self, NewPatient, RegisterError};

/// Opens the database again (another server's connection).
type Opener = Box<dyn Fn() -> Arc<dyn wardline_store::Store> + Send + Sync>;

/// A server's service: with the workflows' rules, as the binary composes it.
fn compose(open: &Opener) -> Arc<FhirService> {
    Arc::new(wardline_workflow::with_rules(FhirService::new(
        open(),
        ServiceConfig::default(),
    )))
}

fn sqlite(dir: &tempfile::TempDir) -> Opener {
    let path = dir.path().join("unique.db");
    Box::new(move || Arc::new(wardline_store_sqlite::SqliteStore::open(&path).unwrap()))
}

struct PgSchema {
    url: String,
    schema: String,
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.url, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        }
    }
}

fn postgres() -> Option<(Opener, PgSchema)> {
    let url = wardline_store_postgres::testenv::url()?;
    let schema = wardline_store_postgres::testenv::fresh_schema("pmi_unique");
    let (u, s) = (url.clone(), schema.clone());
    let open: Opener = Box::new(move || {
        Arc::new(
            wardline_store_postgres::PostgresStore::connect_with_schema(&u, &s)
                .expect("connect to WARDLINE_TEST_PG_URL"),
        )
    });
    Some((open, PgSchema { url, schema }))
}

fn op() -> Trusted {
    Trusted::operator("pmi-unique-test")
}

fn form(nhs: &str, family: &str, given: &str) -> NewPatient {
    NewPatient {
        nhs_number: nhs.into(),
        family: family.into(),
        given: given.into(),
        birth_date: "1966-06-06".into(),
        gender: "female".into(),
        address_line: "2 Mill Lane".into(),
        city: "Watford".into(),
        postcode: "WD17 1AA".into(),
        phone: String::new(),
        ethnic_category: String::new(),
    }
}

fn nhs(i: usize) -> String {
    wardline_demo::population::nhs_number(800_000 + i)
}

fn patient(nhs: &str, family: &str) -> Value {
    json!({"resourceType": "Patient", "name": [{"family": family}],
           "identifier": [{"system": pmi::NHS_NUMBER_SYSTEM, "value": nhs}]})
}

fn save(svc: &FhirService, v: Value) -> Result<String, wardline_fhir::FhirError> {
    svc.transact(&op(), |tx| tx.save(v)).map(|s| s.id)
}

fn read(svc: &FhirService, id: &str) -> Value {
    svc.transact(&op(), |tx| tx.get("Patient", id))
        .unwrap()
        .unwrap()
}

fn duplicate(e: wardline_fhir::FhirError, holder: &str) {
    assert_eq!(e.status, 422, "{e:?}");
    assert_eq!(e.issues[0].code, "duplicate", "{e:?}");
    assert!(
        e.issues[0]
            .diagnostics
            .contains(&format!("Patient/{holder}")),
        "{e:?}"
    );
}

fn scenarios(open: &Opener) {
    let svc = compose(open);
    let other_server = compose(open);
    let op = op();

    // ---- a workflow's Tx::save, and the HL7 v2 engine's transaction --------------
    let x = nhs(1);
    let a = save(&svc, patient(&x, "Holder")).unwrap();
    duplicate(save(&svc, patient(&x, "Second")).unwrap_err(), &a);
    let engine = wardline_integration::Engine::new(
        other_server.clone(),
        wardline_integration::EngineConfig::default(),
    );
    // An A28 naming the number and a new local number is filed on the holder.
    let receipt = engine.receive(
        format!(
            "MSH|^~\\&|PAS|RWG|WARDLINE|RWG|20261123090000||ADT^A28^ADT_A05|U1|P|2.4\r\
             EVN|A28|20261123090000\rPID|1||{x}^^^NHS^NH~RWG555001^^^RWG^MR||HOLDER^Pat||19660606|F\r"
        )
        .as_bytes(),
    );
    assert!(receipt.ack.contains("MSA|AA"), "{}", receipt.ack);
    let found = svc
        .search_as(
            &op,
            "Patient",
            &[(
                "identifier".to_owned(),
                format!("{}|{x}", pmi::NHS_NUMBER_SYSTEM),
            )],
        )
        .unwrap();
    assert_eq!(found.resources.len(), 1);
    assert_eq!(found.resources[0]["id"], a.as_str());

    // ---- registration: refused in the transaction too --------------------------------
    // The pre-check searches as the clerk; inside the transaction the number
    // is checked under its lock, whoever may see the holder.
    match pmi::register(&svc, &op, &form(&x, "Again", "Pat"), true) {
        Err(RegisterError::Invalid(errs)) => assert_eq!(errs[0].field, "nhs_number"),
        other => panic!("{other:?}"),
    }
    // Two clerks on two servers register one number at the same moment.
    let y = nhs(2);
    let results: Vec<Result<pmi::PatientSummary, RegisterError>> = std::thread::scope(|s| {
        let hs: Vec<_> = [&svc, &other_server, &svc, &other_server]
            .into_iter()
            .enumerate()
            .map(|(i, server)| {
                let (op, y) = (&op, &y);
                s.spawn(move || {
                    let family = ["Racea", "Raceb", "Racec", "Raced"][i];
                    pmi::register(server, op, &form(y, family, "Pat"), true)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    for r in results.iter().filter(|r| r.is_err()) {
        match r {
            Err(RegisterError::Invalid(errs)) => assert_eq!(errs[0].field, "nhs_number"),
            other => panic!("{other:?}"),
        }
    }

    // ---- retired records ------------------------------------------------------------
    let v = nhs(3);
    let retired = save(&svc, patient(&v, "Merged")).unwrap();
    let survivor = save(
        &svc,
        json!({"resourceType": "Patient", "name": [{"family": "Merged"}]}),
    )
    .unwrap();
    pmi::merge(&svc, &op, &retired, &survivor).unwrap();
    // The retired record's number stands for the survivor...
    duplicate(save(&svc, patient(&v, "New")).unwrap_err(), &survivor);
    // ...which may take it.
    let mut s = read(&svc, &survivor);
    s["identifier"] = json!([{"system": pmi::NHS_NUMBER_SYSTEM, "value": v}]);
    save(&svc, s).unwrap();
    // Unmerging would now leave two active records with the number: refused,
    let e = pmi::unmerge(&svc, &op, &retired).unwrap_err();
    duplicate(e, &survivor);
    assert_eq!(read(&svc, &retired)["active"], false, "nothing written");
    // and done once the survivor's number is corrected.
    let mut s = read(&svc, &survivor);
    s["identifier"][0]["use"] = json!("old");
    save(&svc, s).unwrap();
    pmi::unmerge(&svc, &op, &retired).unwrap();
    assert_ne!(read(&svc, &retired)["active"], false, "active again");

    // ---- legacy duplicates stay editable --------------------------------------------
    // Two records holding one number, written before the rule existed.
    let legacy = nhs(4);
    let plain = FhirService::new(open(), ServiceConfig::default());
    let l1 = save(&plain, patient(&legacy, "Legacy")).unwrap();
    let l2 = save(&plain, patient(&legacy, "Legacy")).unwrap();
    let mut p = read(&svc, &l1);
    p["name"][0]["given"] = json!(["Lee"]);
    save(&svc, p).unwrap();
    pmi::merge(&svc, &op, &l2, &l1).unwrap();

    // ---- hospital numbers ---------------------------------------------------------
    let scheme = pmi::hospital_numbers();
    assert_eq!(scheme.system(), pmi::HOSPITAL_NUMBER_SYSTEM);
    let hn = |s: &pmi::PatientSummary| {
        scheme
            .serial(s.hospital_number.as_deref().unwrap())
            .unwrap()
    };
    let first = pmi::register(&svc, &op, &form("", "Numbered", "One"), true).unwrap();
    let one = hn(&first);
    // A record already holding the next numbers (an import, the demo).
    save(
        &svc,
        json!({"resourceType": "Patient", "name": [{"family": "Imported"}],
               "identifier": [{"system": scheme.system(), "value": scheme.format(one + 1)},
                              {"system": scheme.system(), "value": scheme.format(one + 2), "use": "old"}]}),
    )
    .unwrap();
    let second = pmi::register(&other_server, &op, &form("", "Numbered", "Two"), true).unwrap();
    assert_eq!(hn(&second), one + 3);
    // Nobody else may hold it.
    duplicate(
        save(
            &svc,
            json!({"resourceType": "Patient", "name": [{"family": "Copy"}],
                   "identifier": [{"system": scheme.system(), "value": second.hospital_number}]}),
        )
        .unwrap_err(),
        &second.id,
    );
    // Registrations racing on two servers get distinct numbers.
    let numbers: Vec<u64> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..6)
            .map(|i| {
                let server = if i % 2 == 0 { &svc } else { &other_server };
                let op = &op;
                s.spawn(move || {
                    let given = ["Ann", "Bea", "Cat", "Di", "Eve", "Flo"][i];
                    hn(&pmi::register(server, op, &form("", "Concurrent", given), true).unwrap())
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let distinct: std::collections::BTreeSet<u64> = numbers.iter().copied().collect();
    assert_eq!(distinct.len(), 6, "{numbers:?}");
    assert!(distinct.iter().all(|n| *n > one + 3), "{numbers:?}");
    // Found by it; a typed number with a wrong check digit is refused, not a silent miss.
    let q = |text: &str| pmi::PatientQuery {
        text: text.into(),
        ..pmi::PatientQuery::default()
    };
    let found = pmi::search(&svc, &op, &q(second.hospital_number.as_deref().unwrap()), 5).unwrap();
    assert_eq!(found[0].id, second.id);
    let mut typo = second.hospital_number.clone().unwrap();
    let last = typo.pop().unwrap();
    typo.push(if last == '0' { '1' } else { '0' });
    let e = pmi::search(&svc, &op, &q(&typo), 5).unwrap_err();
    assert!(e.issues[0].diagnostics.contains("check digit"), "{e:?}");
}

#[test]
fn uniqueness_and_hospital_numbers_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    scenarios(&sqlite(&dir));
}

#[test]
fn uniqueness_and_hospital_numbers_on_postgres() {
    let Some((open, _schema)) = postgres() else {
        return;
    };
    scenarios(&open);
}
