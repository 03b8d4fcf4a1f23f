//! A feed admission (HL7 v2 A01 through the engine) racing a UI admission
//! (`adt::admit_at`) for the same bed, on SQLite and, when
//! `WARDLINE_TEST_PG_URL` is set, on PostgreSQL: both go through the one
//! bed rule (`wardline_workflow::adt::beds`) under the bed's database lock,
//! so a bed never silently gets two patients.
//!
//! * Wardline master of its beds (the default): exactly one wins; a losing
//!   message is answered `AE` naming the bed at PV1-3, a losing person is
//!   refused, and the store has one current encounter in the bed.
//! * An external PAS master: its message always stands; when it came
//!   second the clash is a `bed-clash` Task on the bed manager's list — two
//!   patients in the bed exactly when there is such a Task.

use std::sync::{Arc, Barrier};

use serde_json::{Value, json};
use wardline_core::{FhirService, ServiceConfig, Trusted};
use wardline_hl7::{AckCode, Message};
use wardline_hl7_fhir::MappingConfig;
use wardline_integration::{Engine, EngineConfig};
use wardline_workflow::adt::{self, Admission, AdmissionKind, AdtErrorKind, BedMaster, BedState};

const ROUNDS: usize = 6;
const PHYS: &str = "http://terminology.hl7.org/CodeSystem/location-physical-type";

struct Backend {
    name: &'static str,
    svc: Arc<FhirService>,
    _dir: Option<tempfile::TempDir>,
}

fn backends(test: &str) -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = wardline_store_sqlite::SqliteStore::open(&dir.path().join("w.db")).unwrap();
    let mut out = vec![Backend {
        name: "sqlite",
        svc: Arc::new(FhirService::new(Arc::new(sqlite), ServiceConfig::default())),
        _dir: Some(dir),
    }];
    if let Some((pg, _, _)) = wardline_store_postgres::testenv::store(&format!("race_{test}")) {
        out.push(Backend {
            name: "postgres",
            svc: Arc::new(FhirService::new(Arc::new(pg), ServiceConfig::default())),
            _dir: None,
        });
    }
    for b in &out {
        seed(&b.svc);
    }
    out
}

fn op() -> Trusted {
    Trusted::operator("race-test")
}

/// A valid NHS number (Modulus 11) from a nine-digit stem.
fn nhs(stem: u64) -> Option<String> {
    let digits: Vec<u64> = format!("{stem:09}")
        .bytes()
        .map(|b| u64::from(b - b'0'))
        .collect();
    let sum: u64 = digits
        .iter()
        .enumerate()
        .map(|(i, d)| d * (10 - i as u64))
        .sum();
    let check = (11 - sum % 11) % 11;
    (check != 10).then(|| format!("{stem:09}{check}"))
}

fn nhs_numbers(n: usize) -> Vec<String> {
    (943_476_500..).filter_map(nhs).take(n).collect()
}

/// The beds as the feed names them: `{base}/location|RWG/WARD7/BAY2/BEDn`,
/// so PV1-3 `WARD7^BAY2^BEDn^RWG` and the UI's `bedn` are the same bed.
fn seed(svc: &FhirService) {
    let base = format!("{}/location", MappingConfig::default().identifier_base);
    let loc = |id: &str, path: &str, name: &str, kind: &str, part_of: Option<&str>| {
        let mut l = json!({"resourceType": "Location", "id": id, "status": "active", "name": name,
            "identifier": [{"system": base, "value": path}],
            "physicalType": {"coding": [{"system": PHYS, "code": kind}]}});
        if let Some(p) = part_of {
            l["partOf"] = json!({"reference": format!("Location/{p}")});
        }
        if kind == "bd" {
            l["operationalStatus"] = BedState::Available.coding();
        }
        l
    };
    let mut rs = vec![
        loc("site", "RWG", "RWG", "si", None),
        loc("ward", "RWG/WARD7", "Ward 7", "wa", Some("site")),
        loc("bay", "RWG/WARD7/BAY2", "Bay 2", "ro", Some("ward")),
    ];
    for i in 0..=ROUNDS {
        rs.push(loc(
            &format!("bed{i}"),
            &format!("RWG/WARD7/BAY2/BED{i}"),
            &format!("Bed {i}"),
            "bd",
            Some("bay"),
        ));
    }
    let mut numbers = nhs_numbers(ROUNDS);
    numbers.push(sequential_numbers().0);
    for (i, n) in numbers.into_iter().enumerate() {
        rs.push(
            json!({"resourceType": "Patient", "id": format!("ui{i}"), "active": true,
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": n}],
            "name": [{"family": "Ward", "given": [format!("Person{i}")]}], "gender": "female"}),
        );
    }
    svc.transact(&op(), |tx| {
        for r in rs {
            tx.save(r)?;
        }
        Ok(())
    })
    .unwrap();
}

fn a01(round: usize, nhs: &str) -> String {
    format!(
        "MSH|^~\\&|PAS|RWG|WARDLINE|RWG|20261123090000||ADT^A01^ADT_A01|R{round}|P|2.4\r\
         EVN|A01|20261123090000\r\
         PID|1||{nhs}^^^NHS^NH||FEED^PATIENT{round}||19700101|M\r\
         PV1|1|I|WARD7^BAY2^BED{round}^RWG||||||||||||||||VR{round}\r"
    )
}

fn current_in_bed(svc: &FhirService, bed: &str) -> usize {
    svc.transact(&op(), |tx| {
        tx.find(
            "Encounter",
            &format!("location=Location/{bed}&status=in-progress"),
        )
    })
    .unwrap()
    .len()
}

fn clash_tasks(svc: &FhirService, bed: &str) -> Vec<Value> {
    svc.transact(&op(), |tx| {
        tx.find(
            "Task",
            &format!(
                "code={}|{}&focus=Location/{bed}&status=requested",
                wardline_workflow::pmi::TASK_SYSTEM,
                adt::BED_CLASH_CODE
            ),
        )
    })
    .unwrap()
}

/// The clash shown on the ward's board for the bed, if any.
fn board_clash(svc: &FhirService, bed: &str) -> Option<String> {
    adt::ward_board(svc, &op(), "ward")
        .unwrap()
        .bays
        .iter()
        .flat_map(|b| &b.beds)
        .find(|b| b.id == bed)
        .and_then(|b| b.clash.clone())
}

/// Round `i`: the feed's A01 and a clerk's admission to `bed{i}` at once.
fn race(
    engine: &Engine,
    svc: &FhirService,
    i: usize,
    feed_nhs: &str,
) -> (wardline_integration::Receipt, Result<String, adt::AdtError>) {
    let gate = Barrier::new(2);
    let msg = a01(i, feed_nhs);
    std::thread::scope(|s| {
        let feed = s.spawn(|| {
            gate.wait();
            engine.receive(msg.as_bytes())
        });
        let ui = s.spawn(|| {
            gate.wait();
            adt::admit_at(
                svc,
                &op(),
                &Admission {
                    patient_id: format!("ui{}", i - 1),
                    bed_id: format!("bed{i}"),
                    kind: AdmissionKind::Emergency,
                    consultant_id: None,
                    specialty: None,
                    expected_discharge: None,
                    placement_reason: Some("Every bed of this test is in one bay".into()),
                },
                "2026-11-23T09:00:00Z",
            )
        });
        (feed.join().unwrap(), ui.join().unwrap())
    })
}

/// The clerk's and the feed's patients of the sequential case (bed 0; the
/// clerk's is seeded as `ui{ROUNDS}`).
fn sequential_numbers() -> (String, String) {
    let mut n = nhs_numbers(2 * ROUNDS + 2);
    let feed = n.pop().unwrap();
    (n.pop().unwrap(), feed)
}

fn feed_numbers() -> Vec<String> {
    nhs_numbers(2 * ROUNDS).split_off(ROUNDS)
}

#[test]
fn where_wardline_is_bed_master_exactly_one_admission_wins() {
    for b in backends("wardline") {
        let engine = Engine::new(b.svc.clone(), EngineConfig::default());
        let mut winners = (0, 0);
        for (i, n) in (1..=ROUNDS).zip(feed_numbers()) {
            let (feed, ui) = race(&engine, &b.svc, i, &n);
            let bed = format!("bed{i}");
            match (&feed.code, &ui) {
                (AckCode::AA, Err(e)) => {
                    winners.0 += 1;
                    assert_eq!(e.kind, AdtErrorKind::Conflict, "{}: {e}", b.name);
                    assert!(e.message.contains("is occupied"), "{}: {e}", b.name);
                }
                (AckCode::AE, Ok(_)) => {
                    winners.1 += 1;
                    // v2.4: ERR-1 is segment^sequence^field^code&text.
                    let ack = Message::parse(&feed.ack).unwrap();
                    assert_eq!(
                        ack.text("ERR-1.1").unwrap().unwrap_or_default(),
                        "PV1",
                        "{}: {}",
                        b.name,
                        feed.ack
                    );
                    assert!(feed.ack.contains("ERR|PV1^1^3^207&"), "{}", feed.ack);
                    assert!(
                        feed.ack.contains(&format!("Bed {i}")) && feed.ack.contains("occupied"),
                        "{}: the AE names the bed: {}",
                        b.name,
                        feed.ack
                    );
                }
                other => panic!("{} round {i}: not exactly one winner: {other:?}", b.name),
            }
            assert_eq!(current_in_bed(&b.svc, &bed), 1, "{} {bed}", b.name);
            assert!(clash_tasks(&b.svc, &bed).is_empty(), "{} {bed}", b.name);
        }
        println!("{}: feed won {}, UI won {}", b.name, winners.0, winners.1);
    }
}

#[test]
fn where_an_external_pas_is_bed_master_its_admission_stands_and_a_clash_is_a_task() {
    for b in backends("external") {
        let cfg = EngineConfig {
            mapping: MappingConfig {
                bed_master: BedMaster::External,
                ..MappingConfig::default()
            },
            ..EngineConfig::default()
        };
        let engine = Engine::new(b.svc.clone(), cfg);
        // In turn: the clerk admits to bed 0, then the PAS puts another
        // patient there.
        let enc = adt::admit_at(
            &b.svc,
            &op(),
            &Admission {
                patient_id: format!("ui{ROUNDS}"),
                bed_id: "bed0".into(),
                kind: AdmissionKind::Elective,
                consultant_id: None,
                specialty: None,
                expected_discharge: None,
                placement_reason: Some("Every bed of this test is in one bay".into()),
            },
            "2026-11-23T08:00:00Z",
        )
        .unwrap();
        let r = engine.receive(a01(0, &sequential_numbers().1).as_bytes());
        assert_eq!(r.code, AckCode::AA, "{}: {}", b.name, r.ack);
        assert_eq!(current_in_bed(&b.svc, "bed0"), 2, "{}", b.name);
        assert_eq!(clash_tasks(&b.svc, "bed0").len(), 1, "{}", b.name);
        assert!(board_clash(&b.svc, "bed0").unwrap().contains("Bed 0"));
        adt::discharge_at(&b.svc, &op(), &enc, "19", "1", "2026-11-23T10:00:00Z").unwrap();
        assert!(clash_tasks(&b.svc, "bed0").is_empty(), "{}", b.name);
        assert_eq!(board_clash(&b.svc, "bed0"), None);
        // Racing: whichever comes first, never a silent double occupancy.
        for (i, n) in (1..=ROUNDS).zip(feed_numbers()) {
            let (feed, ui) = race(&engine, &b.svc, i, &n);
            let bed = format!("bed{i}");
            assert_eq!(feed.code, AckCode::AA, "{}: {}", b.name, feed.ack);
            let tasks = clash_tasks(&b.svc, &bed);
            let in_bed = current_in_bed(&b.svc, &bed);
            match ui {
                // The clerk came first: the PAS's admission stands, and the
                // bed manager is told.
                Ok(enc) => {
                    assert_eq!((in_bed, tasks.len()), (2, 1), "{} {bed}", b.name);
                    assert_eq!(tasks[0]["status"], "requested");
                    assert!(
                        tasks[0]["description"]
                            .as_str()
                            .unwrap()
                            .contains(&format!("Bed {i}")),
                        "{}",
                        tasks[0]
                    );
                    // The ward's board shows it on the bed ...
                    assert!(board_clash(&b.svc, &bed).is_some(), "{} {bed}", b.name);
                    // ... until the bed holds one patient again.
                    adt::discharge_at(&b.svc, &op(), &enc, "19", "1", "2026-11-23T10:00:00Z")
                        .unwrap();
                    assert!(clash_tasks(&b.svc, &bed).is_empty(), "{} {bed}", b.name);
                    assert_eq!(board_clash(&b.svc, &bed), None, "{} {bed}", b.name);
                    assert_eq!(current_in_bed(&b.svc, &bed), 1, "{} {bed}", b.name);
                }
                // The PAS came first: a person is still refused.
                Err(e) => {
                    assert_eq!(e.kind, AdtErrorKind::Conflict, "{}: {e}", b.name);
                    assert_eq!((in_bed, tasks.len()), (1, 0), "{} {bed}", b.name);
                }
            }
        }
    }
}
