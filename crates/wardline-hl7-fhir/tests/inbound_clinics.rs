//! SIU in obeys the outpatient clinics' booking rules (issue 19, one path
//! for both): an `SIU^S12` at a clinic's place and time is booked into
//! that slot, and an S12 onto a slot already booked is refused `AE` naming
//! the field its start was read from — the same write rule
//! (`wardline_workflow::outpatients::SlotRule`) a booking on the pages and
//! a REST `POST Appointment` meet. A real service with the workflows' rules
//! over a file SQLite store, each message in one transaction as the engine
//! applies it.

use std::sync::Arc;

use serde_json::Value;
use time::macros::{date, time};
use wardline_core::{FhirService, ServiceConfig, Trusted};
use wardline_hl7::Message;
use wardline_hl7_fhir::inbound::{self, Applied};
use wardline_hl7_fhir::records::TxRecords;
use wardline_hl7_fhir::{MapError, MapErrorKind, MappingConfig};
use wardline_workflow::outpatients::clinics::{Template, generate, save_template, slots_on};
use wardline_workflow::outpatients::{Kind, Mode};

struct Record {
    svc: FhirService,
    access: Trusted,
    _dir: tempfile::TempDir,
}

impl Record {
    fn new() -> Record {
        let dir = tempfile::tempdir().unwrap();
        let store = wardline_store_sqlite::SqliteStore::open(&dir.path().join("w.db")).unwrap();
        Record {
            svc: wardline_workflow::with_rules(FhirService::new(
                Arc::new(store),
                ServiceConfig::default(),
            )),
            access: Trusted::operator("hl7-clinics-test"),
            _dir: dir,
        }
    }

    fn apply(&self, text: &str) -> Result<Applied, MapError> {
        let msg = Message::parse(text).unwrap();
        let mut tx = self.svc.begin(&self.access).unwrap();
        let out = inbound::apply(
            &msg,
            &mut TxRecords::inbound(&mut tx),
            &MappingConfig::default(),
        );
        if out.is_ok() {
            tx.commit().unwrap();
        }
        out
    }

    fn all(&self, t: &str) -> Vec<Value> {
        self.svc
            .transact(&self.access, |tx| tx.find(t, "_count=1000"))
            .unwrap()
    }
}

fn siu(id: &str, nhs: &str, start: &str) -> String {
    [
        format!("MSH|^~\\&|PAS|RWG|WARDLINE|RWG|20261201093000||SIU^S12^SIU_S12|{id}|P|2.4"),
        format!("SCH|{id}|F-{id}||||ROUTINE^Routine^L|NEW^New^L"),
        format!("PID|1||{nhs}^^^NHS^NH||TAYLOR^Sam||19900101|M"),
        "RGS|1".to_owned(),
        format!("AIS|1||GSURG^General surgery clinic^L|{start}|||20|min"),
        "AIP|1||C1234^LISTER^Joseph^^^Mr|CON^Consultant^L|||".to_owned(),
        "AIL|1||OPDA^ROOM1^^RWG|||".to_owned(),
    ]
    .join("\r")
        + "\r"
}

#[test]
fn an_siu_s12_onto_a_booked_clinic_slot_is_refused_naming_the_field() {
    let r = Record::new();
    // A first message, at a time with no clinic, brings the clinic's room
    // and consultant into the record (and is booked outside any clinic).
    r.apply(&siu("A0", "9434765919", "20261130090000")).unwrap();
    let first = r.all("Appointment").pop().unwrap();
    assert!(first.get("slot").is_none(), "{first}");
    let id_of = |t: &str| {
        first["participant"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|p| {
                p["actor"]["reference"]
                    .as_str()?
                    .strip_prefix(&format!("{t}/"))
                    .map(str::to_owned)
            })
            .unwrap()
    };
    let (room, consultant) = (id_of("Location"), id_of("Practitioner"));
    let op = Trusted::operator("clinic-admin");
    let s = save_template(
        &r.svc,
        &op,
        &Template {
            id: None,
            name: "Mr Lister new patients".into(),
            consultant,
            location: room,
            specialty: "100".into(),
            specialty_name: "General Surgery".into(),
            weekdays: vec![time::Weekday::Monday],
            start: time!(09:00),
            end: time!(10:00),
            slot_minutes: 20,
            kind: Kind::New,
            mode: Mode::FaceToFace,
            valid_from: date!(2026 - 12 - 01),
            valid_to: None,
        },
    )
    .unwrap();
    generate(
        &r.svc,
        &op,
        &s,
        date!(2026 - 12 - 07),
        date!(2026 - 12 - 07),
    )
    .unwrap();
    let slot = slots_on(&r.svc, &op, &s, date!(2026 - 12 - 07)).unwrap()[0]
        .id
        .clone();

    // 09:00 on Monday 7 December is the clinic's first slot: booked into it.
    r.apply(&siu("A1", "9434765870", "20261207090000")).unwrap();
    let booked = r
        .all("Appointment")
        .into_iter()
        .find(|a| a["identifier"][0]["value"] == "A1")
        .unwrap();
    assert_eq!(booked["slot"][0]["reference"], format!("Slot/{slot}"));
    let slot_now = r
        .all("Slot")
        .into_iter()
        .find(|x| x["id"] == slot.as_str())
        .unwrap();
    assert_eq!(slot_now["status"], "busy");

    // Another patient's S12 onto the same slot: AE, 205, at AIS-4.
    let e = r
        .apply(&siu("A2", "9434765838", "20261207090000"))
        .unwrap_err();
    assert_eq!(e.kind, MapErrorKind::Content, "{e:?}");
    assert_eq!(e.code, 205, "{e:?}");
    assert_eq!(e.location.as_deref(), Some("AIS-4"), "{e:?}");
    assert!(e.text.contains("already booked"), "{e:?}");
    assert_eq!(
        r.all("Appointment")
            .iter()
            .filter(|a| a["identifier"][0]["value"] == "A2")
            .count(),
        0
    );

    // Cancelling A1 by SIU^S15 frees the slot; A2 is then booked into it.
    let cancel = siu("A1", "9434765870", "20261207090000").replace("SIU^S12", "SIU^S15");
    r.apply(&cancel).unwrap();
    let slot_now = r
        .all("Slot")
        .into_iter()
        .find(|x| x["id"] == slot.as_str())
        .unwrap();
    assert_eq!(slot_now["status"], "free");
    r.apply(&siu("A2", "9434765838", "20261207090000")).unwrap();
}
