//! Outpatient clinics (issue 19) over real HTTP and MLLP, on SQLite and
//! PostgreSQL, with the demo trust's consultant signed in:
//!
//! * a clinic template is defined and its slots generated on the pages;
//! * sixteen patients waiting on the outpatient list are booked into the
//!   same slot by sixteen concurrent form posts: exactly one is booked (303
//!   to the appointment), the fifteen others are shown the form again (422)
//!   saying the slot was taken; one Appointment holds the slot;
//! * the booking made on the pages leaves as an SIU^S12 to the PAS (a
//!   listener run by the test) for the right patient;
//! * an SIU^S12 from the PAS onto the booked slot is refused `AE` naming
//!   AIS-4 — the same rule as the pages — and nothing is written.

use std::sync::Barrier;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{self, Env, free_port};
use crate::hl7::{Client as Mllp, field};
use crate::ui::{browser, csrf, sign_in};

const WL: &str = "https://fhir.wardline.invalid";

/// A valid NHS number from nine digits (modulus 11), or none.
fn nhs_number(base: u64) -> Option<String> {
    let digits: Vec<u64> = format!("{base:09}")
        .bytes()
        .map(|b| u64::from(b - b'0'))
        .collect();
    let sum: u64 = digits
        .iter()
        .enumerate()
        .map(|(i, d)| d * (10 - i as u64))
        .sum();
    let check = (11 - sum % 11) % 11;
    (check != 10).then(|| format!("{base:09}{check}"))
}

fn entry(n: usize, patient: &str, consultant: &str) -> Value {
    json!({"resourceType": "ServiceRequest", "id": format!("e2e-entry-{n}"), "status": "active", "intent": "plan",
        "category": [{"coding": [{"system": format!("{WL}/CodeSystem/waiting-list"), "code": "outpatient-new"}]}],
        "subject": {"reference": format!("Patient/{patient}")},
        "performer": [{"reference": format!("Practitioner/{consultant}")}],
        "authoredOn": "2026-11-20",
        "extension": [{"url": format!("{WL}/StructureDefinition/treatment-function"),
            "valueCoding": {"system": format!("{WL}/CodeSystem/treatment-function"), "code": "100"}}]})
}

fn scenario(env: &Env) {
    let (pas_addr, received) = crate::orders_hl7::laboratory();
    let mllp = free_port();
    let s = env.start_with(&[
        "--demo",
        "--mllp-listen",
        &format!("127.0.0.1:{mllp}"),
        "--hl7-destination",
        &format!("PAS={pas_addr}/PAS^RWG"),
    ]);
    let root = s.root.clone();
    // The consultant: dr.watford, signed in (the entries name them, which
    // is their relationship with the patients).
    let c = browser();
    sign_in(env, &root, &c, "dr.watford");
    let dr = crate::ui::practitioner_of(&s, &c);
    // The clinic's room, as the PAS names it in AIL-3.
    assert!(s.put("Location/e2e-opd", &json!({"resourceType": "Location", "id": "e2e-opd", "status": "active",
        "name": "Outpatients A", "identifier": [{"system": format!("{WL}/Id/location"), "value": "RWG/OPDA"}]})).is_success());
    let mut nhs = (943_476_500..).filter_map(nhs_number);
    let mut numbers = Vec::new();
    for n in 0..17 {
        let number = nhs.next().unwrap();
        let p = format!("e2e-op-{n}");
        let r = s.put(
            &format!("Patient/{p}"),
            &json!({"resourceType": "Patient", "id": p,
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": number}],
            "name": [{"family": format!("Outpatient{n}"), "given": ["Test"]}],
            "gender": "female", "birthDate": "1970-01-01"}),
        );
        assert!(r.is_success(), "{}", r.brief());
        numbers.push(number);
        if n < 16 {
            let r = s.put(&format!("ServiceRequest/e2e-entry-{n}"), &entry(n, &p, &dr));
            assert!(r.is_success(), "{}", r.brief());
        }
    }

    let post = |c: &reqwest::blocking::Client, path: &str, form: &[(&str, &str)]| {
        let token = csrf(&root, c);
        let mut f: Vec<(&str, &str)> = vec![("csrf", token.as_str())];
        f.extend_from_slice(form);
        c.post(format!("{root}{path}")).form(&f).send().unwrap()
    };
    // A Monday clinic a few weeks ahead, in the trust's local time.
    let today = time::OffsetDateTime::now_utc().date();
    let mut monday = today + time::Duration::days(21);
    while monday.weekday() != time::Weekday::Monday {
        monday = monday.next_day().unwrap();
    }
    let day = format!(
        "{:04}-{:02}-{:02}",
        monday.year(),
        u8::from(monday.month()),
        monday.day()
    );
    let r = post(
        &c,
        "/ui/clinics",
        &[
            ("name", "Mr Lister new patients"),
            ("consultant", &dr),
            ("location", "e2e-opd"),
            ("specialty", "100"),
            ("specialty-name", "General Surgery"),
            ("day-mon", "yes"),
            ("start", "14:00"),
            ("end", "15:00"),
            ("slot-minutes", "20"),
            ("kind", "new"),
            ("mode", "face-to-face"),
            ("valid-from", &day),
        ],
    );
    assert_eq!(r.status(), 303, "{}", r.text().unwrap());
    let clinic = r.headers()["location"].to_str().unwrap().to_owned();
    let clinic = clinic
        .trim_start_matches("/ui/clinics?clinic=")
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let r = post(
        &c,
        "/ui/clinics",
        &[("clinic", &clinic), ("from", &day), ("to", &day)],
    );
    assert_eq!(r.status(), 303, "{}", r.text().unwrap());
    let slots = s.search_all(&common::escape_uri(&format!(
        "Slot?schedule=Schedule/{clinic}&_sort=start"
    )));
    assert_eq!(slots.len(), 3, "{slots:?}");
    let slot = slots[0]["id"].as_str().unwrap().to_owned();
    let slot_start = slots[0]["start"].as_str().unwrap().to_owned();

    // Sixteen bookers, one slot.
    let barrier = Barrier::new(16);
    let outcomes: Vec<(u16, String)> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..16)
            .map(|n| {
                let (barrier, slot, c, root) = (&barrier, &slot, &c, &root);
                sc.spawn(move || {
                    let token = csrf(root, c);
                    barrier.wait();
                    let entry = format!("e2e-entry-{n}");
                    let r = c
                        .post(format!("{root}/ui/outpatients"))
                        .form(&[
                            ("csrf", token.as_str()),
                            ("entry", entry.as_str()),
                            ("slot", slot.as_str()),
                        ])
                        .send()
                        .unwrap();
                    let status = r.status().as_u16();
                    let loc = r
                        .headers()
                        .get("location")
                        .map(|l| l.to_str().unwrap().to_owned());
                    (status, loc.unwrap_or_else(|| r.text().unwrap()))
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let won: Vec<&(u16, String)> = outcomes.iter().filter(|(st, _)| *st == 303).collect();
    assert_eq!(
        won.len(),
        1,
        "{:?}",
        outcomes
            .iter()
            .map(|o| (
                o.0,
                o.1.split("<main")
                    .nth(1)
                    .unwrap_or(&o.1)
                    .chars()
                    .take(600)
                    .collect::<String>()
            ))
            .take(2)
            .collect::<Vec<_>>()
    );
    assert!(won[0].1.starts_with("/ui/appointments/"), "{}", won[0].1);
    for (st, body) in outcomes.iter().filter(|(st, _)| *st != 303) {
        assert_eq!(*st, 422, "{body}");
        assert!(
            body.contains("taken") || body.contains("already booked"),
            "{body}"
        );
    }
    let held = s.search_all(&format!("Appointment?slot=Slot/{slot}&status=booked"));
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(s.get(&format!("Slot/{slot}")).body["status"], "busy");
    let winner = held[0]["participant"][0]["actor"]["reference"]
        .as_str()
        .unwrap()
        .to_owned();
    let n: usize = winner
        .trim_start_matches("Patient/e2e-op-")
        .parse()
        .unwrap();

    // The booking leaves for the PAS as SIU^S12 (bounded wait for delivery).
    let mut sius = Vec::new();
    for _ in 0..400 {
        sius = received
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.contains("|SIU^S12"))
            .cloned()
            .collect();
        if !sius.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(sius.len(), 1, "{:?}", received.lock().unwrap());
    assert!(
        sius[0].contains(&numbers[n]),
        "the winner's NHS number: {}",
        sius[0]
    );

    // The PAS books another patient into the same slot: refused at AIS-4.
    let start_hl7: String = slot_start
        .chars()
        .filter(char::is_ascii_digit)
        .take(14)
        .collect();
    let msg = [
        "MSH|^~\\&|PAS|RWG|WARDLINE|RWG|20261201093000||SIU^S12^SIU_S12|PAS-1|P|2.4".to_owned(),
        "SCH|PAS-APT-1|F-PAS-APT-1||||ROUTINE^Routine^L|NEW^New^L".to_owned(),
        format!(
            "PID|1||{}^^^NHS^NH||OUTPATIENT16^Test||19700101|F",
            numbers[16]
        ),
        "RGS|1".to_owned(),
        // The slot's start in UTC (+0000), as an HL7 timestamp.
        format!("AIS|1||GSURG^General surgery^L|{start_hl7}+0000|||20|min"),
        "AIL|1||OPDA^^^RWG|||".to_owned(),
    ]
    .join("\r")
        + "\r";
    let mut m = Mllp::connect(mllp).unwrap();
    let reply = m.send(&msg).unwrap();
    assert_eq!(field(&reply, "MSA-1"), "AE", "{reply}");
    assert!(
        reply.contains("AIS^1^4") || reply.contains("AIS-4") || reply.contains("AIS"),
        "{reply}"
    );
    assert!(reply.contains("already booked"), "{reply}");
    assert_eq!(
        s.search_all(&format!("Appointment?slot=Slot/{slot}")).len(),
        1
    );
}

#[test]
fn outpatients_over_http_and_mllp_sqlite() {
    scenario(&Env::sqlite());
}

#[test]
fn outpatients_over_http_and_mllp_postgres() {
    if let Some(env) = Env::postgres() {
        scenario(&env);
    }
}
