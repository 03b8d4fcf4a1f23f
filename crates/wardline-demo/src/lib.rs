//! Generates Wardline's demo trust as a FHIR transaction Bundle: a trust with
//! sites, wards, bays and beds, GP practices, staff, and patients with
//! histories (encounters, conditions, vital signs, allergies, medications).
//!
//! Everything is derived from a seed, so the same seed gives the same trust.
//! Every reference points inside the Bundle. Patients carry distinct NHS
//! numbers and hospital numbers of the trust's scheme
//! ([`wardline_fhir::hospital_number::Scheme`], the one registration
//! allocates from), patient `p` the serial `p + 1`.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod population;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use wardline_fhir::hospital_number::Scheme;

const FAMILY: [&str; 20] = [
    "Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson", "Thomas",
    "Johnson", "Roberts", "Robinson", "Thompson", "Wright", "Walker", "White", "Edwards", "Hughes",
    "Green", "Patel",
];
const GIVEN_F: [&str; 10] = [
    "Olivia", "Amelia", "Isla", "Ava", "Mia", "Grace", "Sophie", "Margaret", "Aisha", "Eleanor",
];
const GIVEN_M: [&str; 10] = [
    "Oliver", "George", "Harry", "Noah", "Jack", "Arthur", "Mohammed", "William", "Thomas", "David",
];
const TOWNS: [(&str, &str); 3] = [
    ("Watford", "WD18"),
    ("Hemel Hempstead", "HP2"),
    ("St Albans", "AL1"),
];
const STREETS: [&str; 6] = [
    "High Street",
    "Station Road",
    "Church Lane",
    "Park Avenue",
    "Victoria Road",
    "Mill Lane",
];
const CONDITIONS: [(&str, &str); 6] = [
    ("44054006", "Diabetes mellitus type 2"),
    ("38341003", "Hypertensive disorder"),
    ("195967001", "Asthma"),
    ("13645005", "Chronic obstructive lung disease"),
    ("49436004", "Atrial fibrillation"),
    ("233604007", "Pneumonia"),
];
const MEDS: [(&str, &str); 5] = [
    ("322236009", "Paracetamol 500mg tablets"),
    ("325072002", "Amoxicillin 500mg capsules"),
    ("317896006", "Metformin 500mg tablets"),
    ("318420003", "Amlodipine 5mg tablets"),
    ("320000009", "Salbutamol 100micrograms/dose inhaler"),
];

/// The structured dosage of each of [`MEDS`] as the GP prescribed it:
/// text, dose, times a day (0 for as required) and, as required, the most
/// doses in 24 hours.
const MED_DOSES: [(&str, f64, &str, u32, u32); 5] = [
    (
        "Two tablets up to four times a day when required for pain",
        2.0,
        "tablet",
        0,
        4,
    ),
    (
        "One capsule three times a day for 5 days",
        1.0,
        "capsule",
        3,
        0,
    ),
    ("One tablet twice a day with meals", 1.0, "tablet", 2, 0),
    ("One tablet once a day", 1.0, "tablet", 1, 0),
    (
        "Two puffs when required for breathlessness, up to four times a day",
        2.0,
        "puff",
        0,
        4,
    ),
];

/// A community prescription's `dosageInstruction` for `MEDS[i]`.
fn med_dosage(i: usize) -> Value {
    let (text, dose, unit, per_day, max) = MED_DOSES[i];
    let mut d: Value = json!({"text": text, "route": {"coding": [{"system": "http://snomed.info/sct",
        "code": if unit == "puff" { "18679011000001101" } else { "26643006" },
        "display": if unit == "puff" { "Inhalation" } else { "Oral" }}]},
        "doseAndRate": [{"doseQuantity": {"value": dose, "unit": unit}}]});
    if per_day == 0 {
        d["asNeededBoolean"] = json!(true);
        d["maxDosePerPeriod"] = json!({"numerator": {"value": dose * f64::from(max), "unit": unit},
            "denominator": {"value": 24, "unit": "hours", "system": "http://unitsofmeasure.org", "code": "h"}});
    } else {
        d["timing"] = json!({"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}});
    }
    d
}

/// The demo trust's order catalogue: a FHIR `transaction` Bundle of PUTs
/// (`Questionnaire`s, `ActivityDefinition`s, order-set `PlanDefinition`s;
/// see `wardline_workflow::orders::catalogue` for the shape). Its reference
/// and critical ranges are demonstration values that a trust replaces with
/// its own laboratory's.
pub fn order_catalogue() -> Value {
    // The file is checked by this crate's tests and the catalogue's.
    serde_json::from_str(ORDER_CATALOGUE).unwrap_or_else(|_| json!({}))
}

/// The text of [`order_catalogue`] (`data/order-catalogue.json`).
pub const ORDER_CATALOGUE: &str = include_str!("../data/order-catalogue.json");

/// The demo trust's chemotherapy regimens: a FHIR `transaction` Bundle of
/// PUTs of protocol `PlanDefinition`s (see
/// `wardline_workflow::medicines::chemo::regimen` for the shape). The doses
/// are those of widely published protocol summaries, for demonstration: a
/// trust's own approved protocols replace them.
pub const CHEMOTHERAPY_REGIMENS: &str = include_str!("../data/chemotherapy-regimens.json");

/// [`CHEMOTHERAPY_REGIMENS`] parsed.
pub fn chemotherapy_regimens() -> Value {
    serde_json::from_str(CHEMOTHERAPY_REGIMENS).unwrap_or_else(|_| json!({}))
}

/// The demo trust's forms and their KPIs (issue 20): a FHIR `transaction`
/// Bundle of PUTs of a mobility `ValueSet`, two active forms (falls risk,
/// VTE risk assessment; `Questionnaire`s with an extracted answer each, see
/// `wardline_workflow::forms`) and two KPIs (`Measure`s: falls risk within
/// 6 hours of admission, VTE assessment within 14 hours). Demonstration
/// content: a trust's own assessments replace it.
pub const FORMS: &str = include_str!("../data/forms.json");

/// [`FORMS`] parsed.
pub fn forms() -> Value {
    serde_json::from_str(FORMS).unwrap_or_else(|_| json!({}))
}

/// The demo trust's starter formulary (`data/formulary.csv`): over 150
/// common inpatient medicines, one row per VMP, in the format of
/// `docs/formulary-format.md` (read by
/// `wardline_workflow::medicines::formulary::parse`, which its tests check
/// it with). Demonstration data: local codes except paracetamol's dm+d
/// codes; doses and flags are examples.
pub const FORMULARY: &str = include_str!("../data/formulary.csv");

/// A patient's hospital number, as registration records one.
pub fn hospital_number(numbers: &Scheme, serial: u64) -> Value {
    numbers.identifier(&numbers.format(serial))
}

/// Pushes `org` with its delivery routes (issue 18, transfers of care):
/// `Endpoint`s `{id}-mesh` (when a MESH mailbox is given) then
/// `{id}-email`, listed in that order of preference on the Organization.
fn push_routed(entries: &mut Vec<Value>, mut org: Value, mesh: Option<&str>, email: &str) {
    let id = org["id"].as_str().unwrap_or_default().to_owned();
    let name = org["name"].as_str().unwrap_or_default().to_owned();
    let mut routes = Vec::new();
    if let Some(mb) = mesh {
        routes.push(("mesh", "MESH", format!("mesh://{mb}")));
    }
    routes.push(("email", "Email", format!("mailto:{email}")));
    let mut refs = Vec::new();
    for (code, label, address) in routes {
        let ep = format!("{id}-{code}");
        entries.push(entry(json!({
            "resourceType": "Endpoint", "id": ep, "status": "active",
            "connectionType": {"system": "https://fhir.wardline.invalid/CodeSystem/endpoint-connection-type", "code": code, "display": label},
            "name": format!("{label} to {name}"),
            "managingOrganization": {"reference": format!("Organization/{id}")},
            "payloadType": [{"text": "Transfer of care documents (FHIR document Bundle, PDF)"}],
            "payloadMimeType": ["application/fhir+json", "application/pdf"],
            "address": address,
        })));
        refs.push(json!({"reference": format!("Endpoint/{ep}")}));
    }
    org["endpoint"] = json!(refs);
    entries.push(entry(org));
}

/// Issue 20: the demo trust's CareTeams (see `wardline_workflow::tasks`):
/// each ward's nursing team (Ward 1 at Watford: Grace Okafor, and Megan
/// Lloyd its lead and senior nurse) and the community nursing team.
fn care_teams(entries: &mut Vec<Value>, sites: &[(&str, &str)]) {
    let user = |name: &str, roles: &[&str]| {
        let mut p = json!({"member": {"identifier": {
            "system": "https://fhir.wardline.invalid/Id/username", "value": name}}});
        if !roles.is_empty() {
            p["role"] = json!(
                roles
                    .iter()
                    .map(|r| json!({"coding": [{
                "system": "https://fhir.wardline.invalid/CodeSystem/team-role", "code": r}]}))
                    .collect::<Vec<_>>()
            );
        }
        p
    };
    for (s, sname) in sites {
        for w in 1..=2 {
            let ward = format!("{s}-w{w}");
            let mut team = json!({
                "resourceType": "CareTeam", "id": format!("ct-{ward}"), "status": "active",
                "name": format!("Ward {w} nursing team, {sname}"),
                "managingOrganization": [{"reference": "Organization/trust"}],
                "extension": [{"url": "https://fhir.wardline.invalid/StructureDefinition/team-ward",
                    "valueReference": {"reference": format!("Location/{ward}")}}],
            });
            if ward == "watford-w1" {
                team["participant"] = json!([
                    user("nurse.w1", &[]),
                    user("nurse2.w1", &["lead"]),
                    user("nurse2.w1", &["senior-nurse"])
                ]);
            }
            entries.push(entry(team));
        }
    }
    entries.push(entry(json!({
        "resourceType": "CareTeam", "id": "ct-community", "status": "active",
        "name": "Community nursing team",
        "managingOrganization": [{"reference": "Organization/trust"}],
        "participant": [user("nurse2.w1", &["lead"])],
    })));
}

fn entry(resource: Value) -> Value {
    let t = resource["resourceType"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let id = resource["id"].as_str().unwrap_or_default().to_owned();
    json!({
        "fullUrl": format!("{t}/{id}"),
        "resource": resource,
        "request": {"method": "PUT", "url": format!("{t}/{id}")},
    })
}

fn location(
    id: &str,
    name: &str,
    kind: (&str, &str),
    part_of: Option<&str>,
    status: Option<&str>,
) -> Value {
    let mut l = json!({
        "resourceType": "Location", "id": id, "status": "active", "name": name,
        "physicalType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": kind.0, "display": kind.1}]},
        "managingOrganization": {"reference": "Organization/trust"},
    });
    if let Some(p) = part_of {
        l["partOf"] = json!({"reference": format!("Location/{p}")});
    }
    if let Some(s) = status {
        l["operationalStatus"] = bed_status(s);
    }
    l
}

/// A bed's `operationalStatus`: HL7 v2 table 0116, plus Wardline's
/// `blocked` (see `wardline_workflow::adt`).
fn bed_status(code: &str) -> Value {
    match code {
        "blocked" => json!({"system": "https://fhir.wardline.invalid/CodeSystem/bed-status",
            "code": "blocked", "display": "Blocked"}),
        c => json!({"system": "http://terminology.hl7.org/CodeSystem/v2-0116", "code": c,
        "display": match c {
            "O" => "Occupied",
            "U" => "Unoccupied",
            "H" => "Housekeeping",
            "C" => "Closed",
            _ => "Contaminated",
        }}),
    }
}

/// The day `days` after `day` (`YYYY-MM-DD`; negative: before).
fn shift_day(day: &str, days: i64) -> String {
    let (lo, _) = wardline_fhir::datetime::parse_range(day).unwrap_or((0, 0));
    wardline_fhir::datetime::format_instant(lo + days * 86_400_000)[..10].to_owned()
}

/// Beds to a bay, bays to a ward and wards to a site in [`bed_model`].
pub const MODEL_BEDS_PER_BAY: usize = 6;
pub const MODEL_BAYS_PER_WARD: usize = 4;
pub const MODEL_WARDS_PER_SITE: usize = 10;

/// A transaction Bundle of a trust's bed model alone, for measuring at
/// hospital scale: the trust, and at least `beds` beds (whole bays of
/// [`MODEL_BEDS_PER_BAY`], [`MODEL_BAYS_PER_WARD`] bays to a ward,
/// [`MODEL_WARDS_PER_SITE`] wards to a site), every bed available. 1,000
/// beds is 42 wards (1,008 beds) on 5 sites. Ids: site `scale-s1`, ward
/// `scale-s1-w1`, bay `scale-s1-w1-b1`, bed `scale-s1-w1-b1-1`.
pub fn bed_model(beds: usize) -> Value {
    let per_ward = MODEL_BEDS_PER_BAY * MODEL_BAYS_PER_WARD;
    let wards = beds.div_ceil(per_ward).max(1);
    let mut entries = vec![entry(json!({
        "resourceType": "Organization", "id": "trust", "active": true,
        "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "RWG"}],
        "name": "West Hertfordshire Demo Hospitals NHS Trust",
    }))];
    for w in 0..wards {
        let (s, wn) = (w / MODEL_WARDS_PER_SITE + 1, w % MODEL_WARDS_PER_SITE + 1);
        let site = format!("scale-s{s}");
        if wn == 1 {
            entries.push(entry(location(
                &site,
                &format!("Site {s}"),
                ("si", "Site"),
                None,
                None,
            )));
        }
        let ward = format!("{site}-w{wn}");
        entries.push(entry(location(
            &ward,
            &format!("Ward {wn}, Site {s}"),
            ("wa", "Ward"),
            Some(&site),
            None,
        )));
        for b in 1..=MODEL_BAYS_PER_WARD {
            let bay = format!("{ward}-b{b}");
            entries.push(entry(location(
                &bay,
                &format!("Bay {b}"),
                ("ro", "Room"),
                Some(&ward),
                None,
            )));
            for n in 1..=MODEL_BEDS_PER_BAY {
                entries.push(entry(location(
                    &format!("{bay}-{n}"),
                    &format!("Bed {n}"),
                    ("bd", "Bed"),
                    Some(&bay),
                    Some("U"),
                )));
            }
        }
    }
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

/// The UK Core profiles every demo Patient and Encounter claims (and the
/// core holds them to when they are loaded).
pub const UK_CORE_PATIENT: &str = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient";
pub const UK_CORE_ENCOUNTER: &str = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Encounter";

/// The UK Core NHS number verification status "01 Number present and
/// verified" (the demo's numbers are in the 999 test range).
pub(crate) fn verified() -> Value {
    json!({
        "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus",
        "valueCodeableConcept": {"coding": [{
            "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland",
            "code": "01", "display": "Number present and verified"}]}
    })
}

/// The day current admissions are relative to in [`generate`].
pub const DEFAULT_TODAY: &str = "2025-12-31";

/// A transaction Bundle holding the whole demo trust, its current
/// admissions relative to [`DEFAULT_TODAY`].
/// Hospital numbers are of the default scheme.
pub fn generate(seed: u64, patients: usize) -> Value {
    generate_on(seed, patients, DEFAULT_TODAY, &Scheme::default())
}

/// [`generate`], with the current admissions (and their expected discharge
/// dates) around `today` (`YYYY-MM-DD`), so that a demo server shows a
/// bed board of this week, and the patients' hospital numbers of `numbers`.
///
/// Bed board content: beds occupied by an in-progress inpatient Encounter
/// (bed as its active location, consultant, specialty, expected discharge
/// date for most), beds being cleaned, closed and one blocked; bays are
/// single-sex (bay 1 women, bay 2 men) except one deliberate mixed-sex
/// breach; one admitted patient has an isolation Flag.
pub fn generate_on(seed: u64, patients: usize, today: &str, numbers: &Scheme) -> Value {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut entries = Vec::new();
    entries.push(entry(json!({
        "resourceType": "Organization", "id": "trust", "active": true,
        "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "RWG"}],
        "name": "West Hertfordshire Demo Hospitals NHS Trust",
    })));
    let mut beds = Vec::new();
    // (entry index, bed id, bay number): beds drawn occupied.
    let mut occupied: Vec<(usize, String, u32)> = Vec::new();
    let mut blocked_one = false;
    let sites = [
        ("watford", "Watford General Hospital"),
        ("hemel", "Hemel Hempstead Hospital"),
        ("stalbans", "St Albans City Hospital"),
    ];
    for (s, sname) in sites {
        entries.push(entry(location(s, sname, ("si", "Site"), None, None)));
        // issue 19: two operating theatres per site (the kind the theatre
        // pages find: `wardline_workflow::theatres::LOCATION_KIND_SYSTEM`).
        for t in 1..=2 {
            let mut th = location(
                &format!("{s}-th{t}"),
                &format!("Theatre {t}, {sname}"),
                ("ro", "Room"),
                Some(s),
                None,
            );
            th["type"] = json!([{"coding": [{"system": "https://fhir.wardline.invalid/CodeSystem/location-kind",
                "code": "theatre", "display": "Operating theatre"}]}]);
            entries.push(entry(th));
        }
        // issue 20: ed — each site's Emergency Department and its areas
        // (the kinds `wardline_workflow::ed` finds: location-kind `ed`,
        // `ed-area` with the stream's code in its identifier).
        let mut ed = location(
            &format!("{s}-ed"),
            &format!("Emergency Department, {sname}"),
            ("area", "Area"),
            Some(s),
            None,
        );
        ed["type"] = json!([{"coding": [{"system": "https://fhir.wardline.invalid/CodeSystem/location-kind",
            "code": "ed", "display": "Emergency Department"}]}]);
        entries.push(entry(ed));
        for (code, name) in [
            ("resus", "Resus"),
            ("majors", "Majors"),
            ("minors", "Minors"),
            ("paediatrics", "Paediatrics"),
            ("utc", "Urgent treatment centre"),
        ] {
            let mut area = location(
                &format!("{s}-ed-{code}"),
                name,
                ("area", "Area"),
                Some(&format!("{s}-ed")),
                None,
            );
            area["type"] = json!([{"coding": [{"system": "https://fhir.wardline.invalid/CodeSystem/location-kind",
                "code": "ed-area", "display": "Emergency Department area"}]}]);
            area["identifier"] = json!([{"system": "https://fhir.wardline.invalid/CodeSystem/ed-area", "value": code}]);
            entries.push(entry(area));
        }
        // end of issue 20: ed
        for w in 1..=2 {
            let ward = format!("{s}-w{w}");
            entries.push(entry(location(
                &ward,
                &format!("Ward {w}, {sname}"),
                ("wa", "Ward"),
                Some(s),
                None,
            )));
            for b in 1..=2 {
                let bay = format!("{ward}-b{b}");
                entries.push(entry(location(
                    &bay,
                    &format!("Bay {b}"),
                    ("ro", "Room"),
                    Some(&ward),
                    None,
                )));
                for n in 1..=4 {
                    let bed = format!("{bay}-{n}");
                    let mut status = ["O", "U", "H", "C"][rng.gen_range(0..4)];
                    if status == "O" {
                        occupied.push((entries.len(), bed.clone(), b));
                    } else if status == "U" && w == 2 && !blocked_one {
                        status = "blocked";
                        blocked_one = true;
                    }
                    entries.push(entry(location(
                        &bed,
                        &format!("Bed {n}"),
                        ("bd", "Bed"),
                        Some(&bay),
                        Some(status),
                    )));
                    beds.push(bed);
                }
            }
        }
    }
    // Issue 20: tasks — each ward's nursing team and a community nursing
    // team (`wardline_workflow::tasks`: a ward's team names its ward; staff
    // by user name, since the demo staff are created at start-up).
    care_teams(&mut entries, &sites);
    let practices = ["E82001", "E82002", "E82003"];
    // Issue 18: each practice's delivery routes (transfers of care), in
    // order of preference — a MESH mailbox (the sandbox's canned practice
    // mailboxes) then nhs.net email; the third practice has email only.
    let mesh_mailboxes = [Some("X26ABC2"), Some("X26ABC3"), None];
    for (i, ods) in practices.iter().enumerate() {
        let org = format!("gp-{}", ods.to_lowercase());
        let name = format!("{} Medical Centre", TOWNS[i].0);
        push_routed(
            &mut entries,
            json!({
                "resourceType": "Organization", "id": org, "active": true,
                "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": ods}],
                "name": name,
                "type": [{"coding": [{"system": "https://fhir.nhs.uk/CodeSystem/organisation-role", "code": "76", "display": "GP PRACTICE"}]}],
            }),
            mesh_mailboxes[i],
            &format!("{}.gp@nhs.net", ods.to_lowercase()),
        );
    }
    // Issue 18, social care: the local authorities Care Act notices go to,
    // with their routes — one on MESH (the sandbox's canned mailbox
    // X26ABC3, shared in the demo with the second practice) then email, one
    // on email only.
    for (la, name, mesh, email) in [
        (
            "la-hertfordshire",
            "Hertfordshire County Council (Adult Care Services)",
            Some("X26ABC3"),
            "hospital.discharge@hertfordshire.gov.uk",
        ),
        (
            "la-buckinghamshire",
            "Buckinghamshire Council (Adult Social Care)",
            None,
            "asc.hospital.team@buckinghamshire.gov.uk",
        ),
    ] {
        push_routed(
            &mut entries,
            json!({
                "resourceType": "Organization", "id": la, "active": true,
                "name": name,
                "type": [{"coding": [{"system": "https://fhir.wardline.invalid/CodeSystem/organisation-kind", "code": "local-authority", "display": "Local authority"}]}],
            }),
            mesh,
            email,
        );
    }
    let mut staff = Vec::new();
    for i in 0..8 {
        let id = format!("prac-{i}");
        let consultant = i < 4;
        entries.push(entry(json!({
            "resourceType": "Practitioner", "id": id, "active": true,
            "identifier": [if consultant {
                json!({"system": "https://fhir.hl7.org.uk/Id/gmc-number", "value": format!("{}", 4_000_000 + i)})
            } else {
                json!({"system": "https://fhir.hl7.org.uk/Id/nmc-number", "value": format!("{:02}A{:04}E", 10 + i, 1000 + i)})
            }],
            "name": [{"family": FAMILY[(i * 3) % 20], "given": [if i % 2 == 0 { GIVEN_M[i % 10] } else { GIVEN_F[i % 10] }], "prefix": [if consultant { "Dr" } else if i % 2 == 0 { "Mr" } else { "Ms" }]}],
        })));
        entries.push(entry(json!({
            "resourceType": "PractitionerRole", "id": format!("role-{i}"), "active": true,
            "practitioner": {"reference": format!("Practitioner/{id}")},
            "organization": {"reference": "Organization/trust"},
            "location": [{"reference": format!("Location/{}", sites[i % 3].0)}],
            "code": [{"text": if consultant { "Consultant" } else { "Staff Nurse" }}],
        })));
        staff.push(id);
    }
    let mut people: Vec<(String, bool)> = Vec::new();
    let mut nhs_numbers = std::collections::HashSet::new();
    for p in 0..patients {
        let pid = format!("pat-{p:04}");
        let female = rng.gen_bool(0.5);
        let given = if female {
            GIVEN_F[rng.gen_range(0..10)]
        } else {
            GIVEN_M[rng.gen_range(0..10)]
        };
        let family = FAMILY[rng.gen_range(0..20)];
        let nhs = loop {
            let mut d = [9u8, 9, 9, 0, 0, 0, 0, 0, 0];
            for x in d.iter_mut().skip(3) {
                *x = rng.gen_range(0..10);
            }
            if let Some(n) = wardline_fhir::nhs_number::complete(d)
                && nhs_numbers.insert(n.clone())
            {
                break n;
            }
        };
        people.push((pid.clone(), female));
        let town = rng.gen_range(0..3);
        let year = rng.gen_range(1930..2020);
        let mut patient = json!({
            "resourceType": "Patient", "id": pid, "active": true,
            "meta": {"profile": [UK_CORE_PATIENT]},
            "identifier": [
                {"extension": [verified()], "system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs},
                hospital_number(numbers, p as u64 + 1),
            ],
            "name": [{"use": "official", "family": family, "given": [given]}],
            "gender": if female { "female" } else { "male" },
            "birthDate": format!("{year}-{:02}-{:02}", rng.gen_range(1..13), rng.gen_range(1..29)),
            "address": [{"use": "home", "line": [format!("{} {}", rng.gen_range(1..200), STREETS[rng.gen_range(0..6)])],
                "city": TOWNS[town].0, "postalCode": format!("{} {}{}{}", TOWNS[town].1, rng.gen_range(1..10), (b'A' + rng.gen_range(0..26u8)) as char, (b'A' + rng.gen_range(0..26u8)) as char)}],
            "generalPractitioner": [{"reference": format!("Organization/gp-{}", practices[town].to_lowercase())}],
        });
        // Every third patient gives an email address (their clinic letters'
        // copies go by email; the others' are printed and posted).
        if p % 3 == 0 {
            patient["telecom"] = json!([{"system": "email", "use": "home",
                "value": format!("{}.{}@example.org", given, family).to_lowercase()}]);
        }
        entries.push(entry(patient));
        let n_enc = rng.gen_range(1..4);
        for e in 0..n_enc {
            let eid = format!("{pid}-enc{e}");
            let day = rng.gen_range(1..28);
            let month = rng.gen_range(1..13);
            let kind = rng.gen_range(0..10);
            let inpatient = kind < 4;
            let class = match kind {
                0..=3 => ("IMP", "inpatient encounter"),
                4..=5 => ("EMER", "emergency"),
                _ => ("AMB", "ambulatory"),
            };
            let bed = &beds[rng.gen_range(0..beds.len())];
            let mut enc = json!({
                "resourceType": "Encounter", "id": eid, "status": "finished",
                "meta": {"profile": [UK_CORE_ENCOUNTER]},
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": class.0, "display": class.1},
                "subject": {"reference": format!("Patient/{pid}")},
                "participant": [{"individual": {"reference": format!("Practitioner/{}", staff[rng.gen_range(0..4)])}}],
                "period": {"start": format!("2025-{month:02}-{day:02}T09:00:00Z"), "end": format!("2025-{month:02}-{day:02}T{}:00:00Z", if inpatient { 17 } else { 10 })},
                "serviceProvider": {"reference": "Organization/trust"},
            });
            if inpatient {
                enc["location"] = json!([{"location": {"reference": format!("Location/{bed}")}, "status": "completed"}]);
            }
            entries.push(entry(enc));
            for (k, (code, display, unit, lo, hi)) in [
                ("8867-4", "Heart rate", "/min", 55.0, 110.0),
                ("8310-5", "Body temperature", "Cel", 36.0, 38.5),
                ("59408-5", "Oxygen saturation", "%", 90.0, 100.0),
            ]
            .into_iter()
            .enumerate()
            {
                let v: f64 = rng.gen_range(lo..hi);
                entries.push(entry(json!({
                    "resourceType": "Observation", "id": format!("{eid}-obs{k}"), "status": "final",
                    "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
                    "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}]},
                    "subject": {"reference": format!("Patient/{pid}")},
                    "encounter": {"reference": format!("Encounter/{eid}")},
                    "effectiveDateTime": format!("2025-{month:02}-{day:02}T09:30:00Z"),
                    "valueQuantity": {"value": (v * 10.0).round() / 10.0, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
                })));
            }
        }
        if rng.gen_bool(0.5) {
            let (code, display) = CONDITIONS[rng.gen_range(0..CONDITIONS.len())];
            entries.push(entry(json!({
                "resourceType": "Condition", "id": format!("{pid}-cond"),
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": code, "display": display}]},
                "subject": {"reference": format!("Patient/{pid}")},
                "encounter": {"reference": format!("Encounter/{pid}-enc0")},
                "recordedDate": "2025-01-01",
            })));
        }
        if rng.gen_bool(0.2) {
            entries.push(entry(json!({
                "resourceType": "AllergyIntolerance", "id": format!("{pid}-allergy"),
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "91936005", "display": "Allergy to penicillin"}]},
                "patient": {"reference": format!("Patient/{pid}")},
            })));
        }
        if rng.gen_bool(0.5) {
            let m = rng.gen_range(0..MEDS.len());
            let (code, display) = MEDS[m];
            entries.push(entry(json!({
                "resourceType": "MedicationRequest", "id": format!("{pid}-med"), "status": "active", "intent": "order",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category", "code": "community", "display": "Community"}]}],
                "medicationCodeableConcept": {"coding": [{"system": "https://dmd.nhs.uk", "code": code, "display": display}]},
                "subject": {"reference": format!("Patient/{pid}")},
                "requester": {"reference": format!("Practitioner/{}", staff[rng.gen_range(0..4)])},
                "dosageInstruction": [med_dosage(m)],
            })));
        }
    }
    admissions(&mut entries, seed, today, &occupied, &people, &staff);
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

const SPECIALTIES: [(&str, &str); 5] = [
    ("300", "General Internal Medicine"),
    ("430", "Elderly Medicine"),
    ("100", "General Surgery"),
    ("340", "Respiratory Medicine"),
    ("320", "Cardiology"),
];

/// Puts a patient in every bed drawn occupied (an in-progress Encounter
/// with the bed as its active location), or marks the bed unoccupied when
/// no patient of the bay's sex is left. Uses its own random stream, so the
/// rest of the trust is the same as without it.
fn admissions(
    entries: &mut Vec<Value>,
    seed: u64,
    today: &str,
    occupied: &[(usize, String, u32)],
    people: &[(String, bool)],
    staff: &[String],
) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xAD7_B0A2D);
    let mut used = std::collections::HashSet::new();
    let mut in_bay: std::collections::HashMap<String, usize> = Default::default();
    let mut breach_done = false;
    let mut isolation_done = false;
    let mut extra = Vec::new();
    for (index, bed, bay) in occupied {
        let bay_key = bed
            .rsplit_once('-')
            .map_or(bed.as_str(), |(b, _)| b)
            .to_owned();
        let n = in_bay.entry(bay_key).or_default();
        let mut female = *bay == 1;
        if *n == 1 && !breach_done {
            // One mixed-sex bay, for the bed board's warning.
            female = !female;
            breach_done = true;
        }
        let Some((pid, _)) = people
            .iter()
            .find(|(p, f)| *f == female && !used.contains(p))
        else {
            entries[*index]["resource"]["operationalStatus"] = bed_status("U");
            continue;
        };
        used.insert(pid.clone());
        *n += 1;
        // Admitted one to eight days before today: never at a time of day
        // still to come when the demo is loaded (a stay must be able to
        // end now).
        let days_in = rng.gen_range(0..8) + 1;
        let start = format!(
            "{}T{:02}:{:02}:00Z",
            shift_day(today, -days_in),
            rng.gen_range(8..20),
            5 * rng.gen_range(0..12)
        );
        let (method, method_display, source, source_display, kind) = if rng.gen_bool(0.7) {
            (
                "21",
                "Emergency admission: emergency care department",
                "emd",
                "From accident/emergency department",
                "Emergency",
            )
        } else {
            (
                "11",
                "Elective admission: waiting list",
                "outp",
                "From outpatient department",
                "Elective",
            )
        };
        let (spec, spec_display) = SPECIALTIES[rng.gen_range(0..SPECIALTIES.len())];
        let consultant = &staff[rng.gen_range(0..4)];
        let mut enc = json!({
            "resourceType": "Encounter", "id": format!("{pid}-adm"), "status": "in-progress",
            "meta": {"profile": [UK_CORE_ENCOUNTER]},
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP", "display": "inpatient encounter"},
            "subject": {"reference": format!("Patient/{pid}")},
            "participant": [{"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "ATND", "display": "attender"}]}],
                "individual": {"reference": format!("Practitioner/{consultant}")}}],
            "serviceType": {"coding": [{"system": "https://fhir.nhs.uk/CodeSystem/NHSDataModelAndDictionary-treatment-function", "code": spec, "display": spec_display}]},
            "period": {"start": start},
            "hospitalization": {
                "extension": [{"url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-AdmissionMethod",
                    "valueCodeableConcept": {"coding": [
                        {"system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-AdmissionMethodEngland", "code": method, "display": method_display}]}}],
                "admitSource": {"coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/admit-source", "code": source, "display": source_display}],
                    "text": kind}},
            "location": [{"location": {"reference": format!("Location/{bed}")}, "status": "active", "period": {"start": start}}],
            "serviceProvider": {"reference": "Organization/trust"},
        });
        if rng.gen_bool(0.8) {
            enc["extension"] = json!([{"url": "https://fhir.wardline.invalid/StructureDefinition/expected-discharge-date",
                "valueDate": shift_day(today, rng.gen_range(0..6))}]);
        }
        extra.push(entry(enc));
        if !isolation_done {
            isolation_done = true;
            extra.push(entry(json!({
                "resourceType": "Flag", "id": format!("{pid}-isolation"), "status": "active",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/flag-category", "code": "clinical", "display": "Clinical"}]}],
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "40174006", "display": "Isolation procedure"}],
                    "text": "Isolation: MRSA, side room or bay end only"},
                "subject": {"reference": format!("Patient/{pid}")},
                "period": {"start": start},
            })));
        }
    }
    entries.extend(extra);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn the_order_catalogue_is_a_transaction_of_puts() {
        let parsed: Value = serde_json::from_str(ORDER_CATALOGUE).unwrap();
        assert_eq!(order_catalogue(), parsed);
        assert_eq!(parsed["type"], "transaction");
        let entries = parsed["entry"].as_array().unwrap();
        let count = |t: &str| {
            entries
                .iter()
                .filter(|e| e["resource"]["resourceType"] == t)
                .count()
        };
        assert!(
            count("ActivityDefinition") >= 28,
            "{}",
            count("ActivityDefinition")
        );
        assert!(count("PlanDefinition") >= 3);
        for e in entries {
            let r = &e["resource"];
            let url = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            );
            assert_eq!(e["request"]["method"], "PUT");
            assert_eq!(e["request"]["url"], url.as_str());
        }
    }

    /// Every stay the demo opens began before the demo's day: none lies
    /// ahead of the clock when the demo is loaded, so any can end now.
    #[test]
    fn every_admission_began_before_the_demo_day() {
        let scheme = Scheme::new("https://fhir.example.nhs.uk/Id/mrn", "RWG", 6).unwrap();
        let b = generate_on(20_261_123, 100, DEFAULT_TODAY, &scheme);
        let starts: Vec<String> = b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["resource"])
            .filter(|r| r["resourceType"] == "Encounter" && r["status"] == "in-progress")
            .filter_map(|r| r["period"]["start"].as_str().map(str::to_owned))
            .collect();
        assert!(starts.len() >= 10, "{}", starts.len());
        for s in &starts {
            assert!(
                s.as_str() < DEFAULT_TODAY,
                "{s} is not before {DEFAULT_TODAY}"
            );
        }
    }

    #[test]
    fn patients_carry_distinct_numbers_of_the_trusts_scheme() {
        let scheme = Scheme::new("https://fhir.example.nhs.uk/Id/mrn", "RWG", 6).unwrap();
        let b = generate_on(20_261_123, 100, DEFAULT_TODAY, &scheme);
        let patients: Vec<&Value> = b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["resource"])
            .filter(|r| r["resourceType"] == "Patient")
            .collect();
        assert_eq!(patients.len(), 100);
        let (mut nhs, mut serials) = (HashSet::new(), HashSet::new());
        for p in patients {
            let ids = p["identifier"].as_array().unwrap();
            assert!(nhs.insert(ids[0]["value"].as_str().unwrap().to_owned()));
            let hn = ids
                .iter()
                .find(|i| i["system"] == scheme.system())
                .unwrap_or_else(|| panic!("no hospital number: {p}"));
            let serial = scheme.serial(hn["value"].as_str().unwrap()).unwrap();
            assert!(serials.insert(serial));
        }
        assert_eq!(serials, (1..=100).collect());
        // The population generator uses the same scheme and numbering.
        let p = population::patient_resources(3, 41, &scheme);
        let hn = p[0]["identifier"][1]["value"].as_str().unwrap();
        assert_eq!(hn, scheme.format(42));
    }

    #[test]
    fn bed_model_has_the_beds_asked_for_in_whole_bays() {
        let b = bed_model(1000);
        let kinds = |code: &str| {
            b["entry"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["resource"]["physicalType"]["coding"][0]["code"] == code)
                .count()
        };
        assert_eq!(kinds("bd"), 1008);
        assert_eq!(kinds("ro"), 168);
        assert_eq!(kinds("wa"), 42);
        assert_eq!(kinds("si"), 5);
        let mut ids = HashSet::new();
        let mut all_refs = Vec::new();
        for e in b["entry"].as_array().unwrap() {
            assert!(ids.insert(format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap(),
                e["resource"]["id"].as_str().unwrap()
            )));
            refs(&e["resource"], &mut all_refs);
        }
        for r in all_refs {
            assert!(ids.contains(&r), "dangling {r}");
        }
    }

    /// The references of `v`; every `reference` key must hold one (a string).
    fn refs(v: &Value, out: &mut Vec<String>) {
        let found: Vec<String> = wardline_fhir::reference::references(v)
            .map(str::to_owned)
            .collect();
        assert_eq!(
            found.len(),
            v.to_string().matches("\"reference\":").count(),
            "a reference that is not a string in {v}"
        );
        out.extend(found);
    }

    #[test]
    fn deterministic_valid_and_closed() {
        let a = generate(7, 30);
        assert_eq!(a, generate(7, 30));
        assert_ne!(a, generate(8, 30));
        let entries = a["entry"].as_array().unwrap();
        let ids: HashSet<String> = entries
            .iter()
            .map(|e| e["request"]["url"].as_str().unwrap().to_owned())
            .collect();
        let defs = wardline_fhir::definitions::r4();
        let mut all = Vec::new();
        for e in entries {
            let r = &e["resource"];
            defs.validate(r).unwrap_or_else(|err| panic!("{r}: {err}"));
            if r["resourceType"] == "Patient" {
                let nhs = r["identifier"][0]["value"].as_str().unwrap();
                assert!(wardline_fhir::nhs_number::is_valid(nhs));
            }
            refs(r, &mut all);
        }
        for r in all {
            assert!(ids.contains(&r), "dangling reference {r}");
        }
        assert_eq!(
            entries
                .iter()
                .filter(|e| e["resource"]["resourceType"] == "Patient")
                .count(),
            30
        );
        let classes: HashSet<&str> = entries
            .iter()
            .filter_map(|e| e["resource"]["class"]["code"].as_str())
            .collect();
        for c in ["IMP", "EMER", "AMB"] {
            assert!(classes.contains(c), "no {c} encounter in {classes:?}");
        }
        let beds = entries
            .iter()
            .filter(|e| e["resource"]["physicalType"]["coding"][0]["code"] == "bd")
            .filter(|e| e["resource"]["partOf"]["reference"].is_string())
            .count();
        assert!(beds >= 24, "{beds} beds");
    }

    #[test]
    fn the_bed_board_has_patients_in_beds_and_beds_in_every_state() {
        let a = generate_on(20_261_123, 100, "2026-03-10", &Scheme::default());
        assert_eq!(
            a,
            generate_on(20_261_123, 100, "2026-03-10", &Scheme::default())
        );
        let res: Vec<&Value> = a["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["resource"])
            .collect();
        let beds: Vec<&Value> = res
            .iter()
            .copied()
            .filter(|r| r["physicalType"]["coding"][0]["code"] == "bd")
            .collect();
        let current: Vec<&Value> = res
            .iter()
            .copied()
            .filter(|r| r["resourceType"] == "Encounter" && r["status"] == "in-progress")
            .collect();
        // Every bed marked occupied has exactly one current admission in it,
        // and no admission is in a bed not marked occupied.
        let mut in_bed = std::collections::HashMap::new();
        for e in &current {
            let bed = e["location"][0]["location"]["reference"].as_str().unwrap();
            assert_eq!(e["location"][0]["status"], "active");
            assert!(
                in_bed
                    .insert(bed.to_owned(), e["subject"].clone())
                    .is_none(),
                "two in {bed}"
            );
            let start = e["period"]["start"].as_str().unwrap();
            assert!(start < "2026-03-11" && start > "2026-03-01", "{start}");
        }
        for b in &beds {
            let key = format!("Location/{}", b["id"].as_str().unwrap());
            assert_eq!(
                b["operationalStatus"]["code"] == "O",
                in_bed.contains_key(&key),
                "{key}"
            );
        }
        let codes: HashSet<&str> = beds
            .iter()
            .filter_map(|b| b["operationalStatus"]["code"].as_str())
            .collect();
        for c in ["O", "U", "H", "C", "blocked"] {
            assert!(codes.contains(c), "no bed {c}: {codes:?}");
        }
        assert!(current.len() >= 8, "{} admissions", current.len());
        assert!(
            current
                .iter()
                .any(|e| e["extension"][0]["valueDate"].is_string())
        );
        assert_eq!(
            res.iter()
                .filter(
                    |r| r["resourceType"] == "Flag" && r["code"]["coding"][0]["code"] == "40174006"
                )
                .count(),
            1
        );
    }
}
