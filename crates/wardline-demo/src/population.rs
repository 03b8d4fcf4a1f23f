//! A reproducible synthetic population for benchmarks (`wardline generate`).
//!
//! [`shared_resources`] gives what every patient refers to: the trust, its
//! three sites with wards, bays and beds, GP practices, medical staff and a
//! formulary of `Medication` resources. [`patient_resources`] gives everything
//! about one patient, derived from `(seed, index)` alone, so patients can be
//! generated in parallel or streamed in any order and still come out the same.
//!
//! The ids of shared resources depend only on the fixed shape of the trust
//! (never on the seed), so a patient can refer to them without generating them.
//! Every reference of a patient's resources resolves inside
//! `shared_resources(seed)` plus that patient's own resources.
//!
//! On average a patient has about 100 resources (most of them vital-sign
//! Observations). Patient `0` is a "heavy" patient on haemodialysis with well
//! over 550 Encounters, for benchmarking `$everything` and opening a chart.
//!
//! All data is invented. Codes are SNOMED CT (dm+d for medicines), LOINC and
//! UCUM as commonly used in UK records; they are not checked against a
//! terminology server.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use wardline_fhir::hospital_number::Scheme;

/// The most patients [`patient_resources`] gives distinct NHS numbers for.
pub const MAX_PATIENTS: usize = 10_000_000;

const SITES: [(&str, &str); 3] = [
    ("watford", "Watford General Hospital"),
    ("hemel", "Hemel Hempstead Hospital"),
    ("stalbans", "St Albans City Hospital"),
];
/// Wards of every site, by specialty.
const WARDS: [&str; 6] = [
    "Acute Medical Unit",
    "Cardiology",
    "Respiratory",
    "Elderly Care",
    "General Surgery",
    "Trauma and Orthopaedics",
];
const BAYS_PER_WARD: usize = 4;
const BEDS_PER_BAY: usize = 6;
const PRACTITIONERS: usize = 90;
const GP_PRACTICES: usize = 50;
const ODS_PREFIXES: [&str; 10] = [
    "E82", "F81", "A81", "B82", "C84", "J82", "K81", "M85", "N81", "P84",
];
const PRACTICE_SUFFIX: [&str; 5] = [
    "Medical Centre",
    "Surgery",
    "Health Centre",
    "Medical Practice",
    "Family Practice",
];

/// Towns: name, postcode districts, the site that serves them.
const TOWNS: [(&str, &[&str], usize); 10] = [
    ("Watford", &["WD17", "WD18", "WD19", "WD24", "WD25"], 0),
    ("Rickmansworth", &["WD3"], 0),
    ("Bushey", &["WD23"], 0),
    ("Hemel Hempstead", &["HP1", "HP2", "HP3"], 1),
    ("Berkhamsted", &["HP4"], 1),
    ("Tring", &["HP23"], 1),
    ("Kings Langley", &["WD4"], 1),
    ("St Albans", &["AL1", "AL3", "AL4"], 2),
    ("Harpenden", &["AL5"], 2),
    ("Redbourn", &["AL3"], 2),
];
const STREETS: [&str; 16] = [
    "High Street",
    "Station Road",
    "Church Lane",
    "Park Avenue",
    "Victoria Road",
    "Mill Lane",
    "The Green",
    "Manor Road",
    "Queens Road",
    "London Road",
    "Orchard Close",
    "Grange Road",
    "Kings Road",
    "Chestnut Avenue",
    "School Lane",
    "New Road",
];
const FAMILY: [&str; 40] = [
    "Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson", "Thomas",
    "Johnson", "Roberts", "Robinson", "Thompson", "Wright", "Walker", "White", "Edwards", "Hughes",
    "Green", "Patel", "Hall", "Lewis", "Harris", "Clarke", "Jackson", "Wood", "Turner", "Martin",
    "Cooper", "Hill", "Ward", "Morris", "Moore", "Khan", "Begum", "Ali", "Singh", "Shah",
    "O'Brien", "Murphy",
];
const GIVEN_F: [&str; 20] = [
    "Olivia", "Amelia", "Isla", "Ava", "Mia", "Grace", "Sophie", "Margaret", "Aisha", "Eleanor",
    "Susan", "Patricia", "Jean", "Emily", "Priya", "Fatima", "Joan", "Hannah", "Chloe", "Ruth",
];
const GIVEN_M: [&str; 20] = [
    "Oliver", "George", "Harry", "Noah", "Jack", "Arthur", "Mohammed", "William", "Thomas",
    "David", "John", "Peter", "Michael", "James", "Rajesh", "Ibrahim", "Kenneth", "Daniel",
    "Samuel", "Robert",
];
/// Letters used in the inward part of a postcode.
const POSTCODE_LETTERS: &[u8] = b"ABDEFGHJLNPQRSTUWXYZ";

const ROLES: [&str; 4] = [
    "Consultant",
    "Specialty Registrar",
    "Core Trainee",
    "Foundation Doctor",
];

/// dm+d medicines (VMPs): code, name.
const MEDICATIONS: [(&str, &str); 20] = [
    ("322236009", "Paracetamol 500mg tablets"),
    ("325072002", "Amoxicillin 500mg capsules"),
    ("317896006", "Metformin 500mg tablets"),
    ("318420003", "Amlodipine 5mg tablets"),
    ("320000009", "Salbutamol 100micrograms/dose inhaler"),
    ("319740004", "Aspirin 75mg dispersible tablets"),
    ("320029002", "Atorvastatin 20mg tablets"),
    ("318135000", "Ramipril 5mg capsules"),
    ("317972000", "Bisoprolol 2.5mg tablets"),
    ("317335000", "Furosemide 40mg tablets"),
    ("376556008", "Apixaban 5mg tablets"),
    ("317249006", "Omeprazole 20mg gastro-resistant capsules"),
    ("321197006", "Sertraline 50mg tablets"),
    ("322280009", "Codeine 30mg tablets"),
    ("326169004", "Levothyroxine 50microgram tablets"),
    ("330227003", "Beclometasone 100micrograms/dose inhaler"),
    ("323509006", "Co-amoxiclav 500mg/125mg tablets"),
    ("324095003", "Doxycycline 100mg capsules"),
    ("333892008", "Enoxaparin 40mg/0.4ml solution for injection"),
    ("322348001", "Morphine 10mg/5ml oral solution"),
];

/// Long-term conditions: SNOMED code, name, the medicine usually prescribed
/// for it (index into [`MEDICATIONS`]).
const CHRONIC: [(&str, &str, usize); 12] = [
    ("44054006", "Diabetes mellitus type 2", 2),
    ("38341003", "Hypertensive disorder", 3),
    ("195967001", "Asthma", 4),
    ("13645005", "Chronic obstructive lung disease", 15),
    ("49436004", "Atrial fibrillation", 10),
    ("84114007", "Heart failure", 9),
    ("709044004", "Chronic kidney disease", 9),
    ("35489007", "Depressive disorder", 12),
    ("396275006", "Osteoarthritis", 0),
    ("40930008", "Hypothyroidism", 14),
    ("414545008", "Ischaemic heart disease", 5),
    ("55822004", "Hyperlipidaemia", 6),
];
/// Reasons for admission: SNOMED code, name, medicine given on the ward.
const ACUTE: [(&str, &str, usize); 8] = [
    ("233604007", "Pneumonia", 16),
    ("68566005", "Urinary tract infectious disease", 1),
    ("22298006", "Myocardial infarction", 5),
    ("230690007", "Cerebrovascular accident", 5),
    ("128045006", "Cellulitis", 17),
    ("71620000", "Fracture of femur", 18),
    ("25374005", "Gastroenteritis", 0),
    (
        "195951007",
        "Acute exacerbation of chronic obstructive airways disease",
        16,
    ),
];
/// Allergies: SNOMED code, name, category.
const ALLERGIES: [(&str, &str, &str); 6] = [
    ("91936005", "Allergy to penicillin", "medication"),
    ("294505008", "Allergy to amoxicillin", "medication"),
    ("293586001", "Allergy to aspirin", "medication"),
    ("91935009", "Allergy to peanut", "food"),
    ("91930004", "Allergy to eggs", "food"),
    ("300916003", "Latex allergy", "environment"),
];

const SNOMED: &str = "http://snomed.info/sct";
const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";
const ODS: &str = "https://fhir.nhs.uk/Id/ods-organization-code";

/// 2016-01-01T00:00:00Z and 2026-01-01T00:00:00Z: the period encounters fall in.
const START: i64 = 1_451_606_400;
const END: i64 = 1_767_225_600;
const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn patient_rng(seed: u64, index: usize) -> StdRng {
    StdRng::seed_from_u64(splitmix64(
        splitmix64(seed) ^ splitmix64(index as u64 ^ 0x5EED_0FBA_7C4E),
    ))
}

/// Days since 1970-01-01 to (year, month, day) (proleptic Gregorian).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn date(ts: i64) -> String {
    let (y, m, d) = civil(ts.div_euclid(DAY));
    format!("{y:04}-{m:02}-{d:02}")
}

fn date_time(ts: i64) -> String {
    let s = ts.rem_euclid(DAY);
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        date(ts),
        s / HOUR,
        (s % HOUR) / 60,
        s % 60
    )
}

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({"coding": [{"system": system, "code": code, "display": display}]})
}

fn reference(rt: &str, id: &str) -> Value {
    json!({"reference": format!("{rt}/{id}")})
}

fn site_location(id: &str, name: &str, kind: (&str, &str), part_of: Option<&str>) -> Value {
    let mut l = json!({
        "resourceType": "Location", "id": id, "status": "active", "name": name, "mode": "instance",
        "physicalType": coding("http://terminology.hl7.org/CodeSystem/location-physical-type", kind.0, kind.1),
        "managingOrganization": reference("Organization", "trust"),
    });
    if let Some(p) = part_of {
        l["partOf"] = reference("Location", p);
    }
    l
}

fn ward_id(site: usize, ward: usize) -> String {
    format!("{}-w{}", SITES[site].0, ward + 1)
}

fn bed_id(site: usize, ward: usize, bay: usize, bed: usize) -> String {
    format!("{}-b{}-{}", ward_id(site, ward), bay + 1, bed + 1)
}

fn practice_ods(k: usize) -> String {
    format!("{}{:03}", ODS_PREFIXES[k / 5], 1 + k % 5)
}

fn practice_id(k: usize) -> String {
    format!("gp-{}", practice_ods(k).to_lowercase())
}

/// The practices in town `t` are those with `k % TOWNS.len() == t`.
fn practice_town(k: usize) -> usize {
    k % TOWNS.len()
}

/// Practitioner `i` works at site `i % 3` on ward `(i / 3) % 6`.
fn practitioner_id(i: usize) -> String {
    format!("prac-{i}")
}

fn practitioner_at(rng: &mut StdRng, site: usize) -> String {
    let per_site = PRACTITIONERS / SITES.len();
    practitioner_id(rng.gen_range(0..per_site) * SITES.len() + site)
}

fn medication_id(m: usize) -> String {
    format!("med-{}", MEDICATIONS[m].0)
}

/// The trust, its sites, wards, bays and beds, emergency departments and
/// outpatient areas, GP practices, practitioners with their roles, and the
/// formulary of Medications. Ids do not depend on `seed`; names and bed
/// states do.
pub fn shared_resources(seed: u64) -> Vec<Value> {
    let mut rng = StdRng::seed_from_u64(splitmix64(seed ^ 0x0005_4A4E_D000));
    let mut out = vec![json!({
        "resourceType": "Organization", "id": "trust", "active": true,
        "identifier": [{"system": ODS, "value": "RWG"}],
        "type": [coding("https://fhir.nhs.uk/CodeSystem/organisation-role", "197", "NHS TRUST")],
        "name": "West Hertfordshire Demo Hospitals NHS Trust",
        "telecom": [{"system": "phone", "value": "01923 244366", "use": "work"}],
        "address": [{"line": ["Vicarage Road"], "city": "Watford", "postalCode": "WD18 0HB"}],
    })];
    for (s, (sid, sname)) in SITES.iter().enumerate() {
        out.push(site_location(sid, sname, ("si", "Site"), None));
        out.push(site_location(
            &format!("{sid}-ed"),
            &format!("Emergency Department, {sname}"),
            ("area", "Area"),
            Some(sid),
        ));
        out.push(site_location(
            &format!("{sid}-opd"),
            &format!("Outpatients, {sname}"),
            ("area", "Area"),
            Some(sid),
        ));
        for (w, wname) in WARDS.iter().enumerate() {
            let ward = ward_id(s, w);
            out.push(site_location(
                &ward,
                &format!("{wname} Ward, {sname}"),
                ("wa", "Ward"),
                Some(sid),
            ));
            for b in 0..BAYS_PER_WARD {
                let bay = format!("{ward}-b{}", b + 1);
                out.push(site_location(
                    &bay,
                    &format!("Bay {}, {wname} Ward", (b'A' + b as u8) as char),
                    ("ro", "Room"),
                    Some(&ward),
                ));
                for n in 0..BEDS_PER_BAY {
                    let mut bed = site_location(
                        &bed_id(s, w, b, n),
                        &format!("Bed {}", n + 1),
                        ("bd", "Bed"),
                        Some(&bay),
                    );
                    let status = ["O", "O", "O", "U", "H", "C", "K"][rng.gen_range(0..7)];
                    bed["operationalStatus"] = json!({"system": "http://terminology.hl7.org/CodeSystem/v2-0116", "code": status});
                    out.push(bed);
                }
            }
        }
    }
    for k in 0..GP_PRACTICES {
        let (town, districts, _) = TOWNS[practice_town(k)];
        let district = districts[rng.gen_range(0..districts.len())];
        out.push(json!({
            "resourceType": "Organization", "id": practice_id(k), "active": true,
            "identifier": [{"system": ODS, "value": practice_ods(k)}],
            "type": [coding("https://fhir.nhs.uk/CodeSystem/organisation-role", "76", "GP PRACTICE")],
            "name": format!("{} {}", if k < TOWNS.len() { town.to_owned() } else { format!("{} {town}", STREETS[k % STREETS.len()].split(' ').next().unwrap_or("North")) }, PRACTICE_SUFFIX[k % PRACTICE_SUFFIX.len()]),
            "address": [{"line": [format!("{} {}", rng.gen_range(1..120), STREETS[rng.gen_range(0..STREETS.len())])], "city": town, "postalCode": postcode(&mut rng, district)}],
        }));
    }
    for i in 0..PRACTITIONERS {
        let id = practitioner_id(i);
        let female = rng.gen_bool(0.5);
        let given = if female {
            GIVEN_F[rng.gen_range(0..GIVEN_F.len())]
        } else {
            GIVEN_M[rng.gen_range(0..GIVEN_M.len())]
        };
        out.push(json!({
            "resourceType": "Practitioner", "id": id, "active": true,
            "identifier": [{"system": "https://fhir.hl7.org.uk/Id/gmc-number", "value": format!("{}", 4_100_000 + i * 7919)}],
            "name": [{"use": "official", "family": FAMILY[rng.gen_range(0..FAMILY.len())], "given": [given], "prefix": ["Dr"]}],
            "gender": if female { "female" } else { "male" },
        }));
        let (site, ward) = (i % SITES.len(), (i / SITES.len()) % WARDS.len());
        out.push(json!({
            "resourceType": "PractitionerRole", "id": format!("role-{i}"), "active": true,
            "practitioner": reference("Practitioner", &id),
            "organization": reference("Organization", "trust"),
            "location": [reference("Location", &ward_id(site, ward))],
            "code": [{"text": ROLES[(i / (SITES.len() * WARDS.len())) % ROLES.len()]}],
            "specialty": [{"text": WARDS[ward]}],
        }));
    }
    for (m, (code, name)) in MEDICATIONS.iter().enumerate() {
        out.push(json!({
            "resourceType": "Medication", "id": medication_id(m), "status": "active",
            "code": coding(SNOMED, code, name),
        }));
    }
    out
}

fn postcode(rng: &mut StdRng, district: &str) -> String {
    let l = |rng: &mut StdRng| POSTCODE_LETTERS[rng.gen_range(0..POSTCODE_LETTERS.len())] as char;
    let digit = rng.gen_range(0..10);
    let (a, b) = (l(rng), l(rng));
    format!("{district} {digit}{a}{b}")
}

/// A valid NHS number distinct for every `index < MAX_PATIENTS`: `9`, seven
/// digits from a bijection of the index, and the first ninth digit (0 or 1,
/// one of them always works) that admits a Modulus 11 check digit.
pub fn nhs_number(index: usize) -> String {
    assert!(index < MAX_PATIENTS, "at most {MAX_PATIENTS} patients");
    // 7_654_321 is coprime to 10^7, so this permutes 0..10^7.
    let p = (index as u64 * 7_654_321 + 1_234_567) % MAX_PATIENTS as u64;
    let mut d = [9u8, 0, 0, 0, 0, 0, 0, 0, 0];
    for (k, x) in d[1..8].iter_mut().enumerate() {
        *x = ((p / 10u64.pow(6 - k as u32)) % 10) as u8;
    }
    (0..10)
        .find_map(|last| {
            d[8] = last;
            wardline_fhir::nhs_number::complete(d)
        })
        .expect("the ninth digit can always be chosen")
}

/// Builds one patient's resources.
struct Chart {
    index: usize,
    pid: String,
    site: usize,
    out: Vec<Value>,
    encounters: usize,
    observations: usize,
    conditions: usize,
    meds: usize,
}

impl Chart {
    fn subject(&self) -> Value {
        reference("Patient", &self.pid)
    }

    fn encounter(
        &mut self,
        rng: &mut StdRng,
        class: (&str, &str),
        start: i64,
        end: Option<i64>,
        location: String,
    ) -> String {
        let eid = format!("enc-{}-{}", self.index, self.encounters);
        self.encounters += 1;
        let mut period = json!({"start": date_time(start)});
        if let Some(end) = end {
            period["end"] = json!(date_time(end));
        }
        self.out.push(json!({
            "resourceType": "Encounter", "id": eid,
            "meta": {"profile": [crate::UK_CORE_ENCOUNTER]},
            "status": if end.is_some() { "finished" } else { "in-progress" },
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": class.0, "display": class.1},
            "subject": self.subject(),
            "participant": [{"individual": reference("Practitioner", &practitioner_at(rng, self.site))}],
            "period": period,
            "location": [{"location": reference("Location", &location), "status": if end.is_some() { "completed" } else { "active" }}],
            "serviceProvider": reference("Organization", "trust"),
        }));
        eid
    }

    fn observation(
        &mut self,
        eid: &str,
        at: i64,
        code: (&str, &str),
        value: Option<Value>,
        components: Option<Value>,
    ) {
        let mut o = json!({
            "resourceType": "Observation", "id": format!("obs-{}-{}", self.index, self.observations),
            "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs", "display": "Vital Signs"}]}],
            "code": coding(LOINC, code.0, code.1),
            "subject": self.subject(),
            "encounter": reference("Encounter", eid),
            "effectiveDateTime": date_time(at),
        });
        self.observations += 1;
        if let Some(v) = value {
            o["valueQuantity"] = v;
        }
        if let Some(c) = components {
            o["component"] = c;
        }
        self.out.push(o);
    }

    /// One set of vital signs; `full` adds respiratory rate, temperature and
    /// SpO2 to heart rate and blood pressure.
    fn vitals(&mut self, rng: &mut StdRng, eid: &str, at: i64, full: bool, unwell: bool) {
        let q = |value: Value, unit: &str, code: &str| json!({"value": value, "unit": unit, "system": UCUM, "code": code});
        let shift = if unwell { 15 } else { 0 };
        self.observation(
            eid,
            at,
            ("8867-4", "Heart rate"),
            Some(q(
                json!(rng.gen_range(55..95) + shift),
                "beats/minute",
                "/min",
            )),
            None,
        );
        let sys: i64 = rng.gen_range(100..165);
        let dia: i64 = rng.gen_range(55..sys.min(100) - 10);
        self.observation(
            eid,
            at,
            ("85354-9", "Blood pressure panel with all children optional"),
            None,
            Some(json!([
                {"code": coding(LOINC, "8480-6", "Systolic blood pressure"), "valueQuantity": q(json!(sys), "mmHg", "mm[Hg]")},
                {"code": coding(LOINC, "8462-4", "Diastolic blood pressure"), "valueQuantity": q(json!(dia), "mmHg", "mm[Hg]")},
            ])),
        );
        if !full {
            return;
        }
        self.observation(
            eid,
            at,
            ("9279-1", "Respiratory rate"),
            Some(q(
                json!(rng.gen_range(12..20) + shift / 3),
                "breaths/minute",
                "/min",
            )),
            None,
        );
        let tenths: i64 = rng.gen_range(358..375) + if unwell { rng.gen_range(0..20) } else { 0 };
        self.observation(
            eid,
            at,
            ("8310-5", "Body temperature"),
            Some(q(json!(tenths as f64 / 10.0), "Cel", "Cel")),
            None,
        );
        self.observation(
            eid,
            at,
            (
                "59408-5",
                "Oxygen saturation in Arterial blood by Pulse oximetry",
            ),
            Some(q(
                json!(rng.gen_range(94..100) - if unwell { rng.gen_range(0..6) } else { 0 }),
                "%",
                "%",
            )),
            None,
        );
    }

    fn condition(
        &mut self,
        (code, name): (&str, &str),
        chronic: bool,
        onset: i64,
        abated: Option<i64>,
        eid: &str,
        recorder: &str,
    ) {
        let mut c = json!({
            "resourceType": "Condition", "id": format!("cond-{}-{}", self.index, self.conditions),
            "clinicalStatus": coding("http://terminology.hl7.org/CodeSystem/condition-clinical",
                if abated.is_some() { "resolved" } else { "active" }, if abated.is_some() { "Resolved" } else { "Active" }),
            "verificationStatus": coding("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed", "Confirmed"),
            "category": [if chronic {
                coding("http://terminology.hl7.org/CodeSystem/condition-category", "problem-list-item", "Problem List Item")
            } else {
                coding("http://terminology.hl7.org/CodeSystem/condition-category", "encounter-diagnosis", "Encounter Diagnosis")
            }],
            "code": coding(SNOMED, code, name),
            "subject": self.subject(),
            "encounter": reference("Encounter", eid),
            "onsetDateTime": date_time(onset),
            "recordedDate": date_time(onset),
            "recorder": reference("Practitioner", recorder),
        });
        if let Some(a) = abated {
            c["abatementDateTime"] = json!(date_time(a));
        }
        self.conditions += 1;
        self.out.push(c);
    }

    fn medication_request(
        &mut self,
        m: usize,
        status: &str,
        authored: i64,
        eid: &str,
        requester: &str,
        dose: &str,
    ) {
        self.out.push(json!({
            "resourceType": "MedicationRequest", "id": format!("medreq-{}-{}", self.index, self.meds),
            "status": status, "intent": "order",
            "medicationReference": {"reference": format!("Medication/{}", medication_id(m)), "display": MEDICATIONS[m].1},
            "subject": self.subject(),
            "encounter": reference("Encounter", eid),
            "authoredOn": date_time(authored),
            "requester": reference("Practitioner", requester),
            "dosageInstruction": [{"text": dose}],
        }));
        self.meds += 1;
    }
}

/// One encounter to be written; class 3 is a haemodialysis session.
struct Visit {
    class: u8,
    start: i64,
    end: Option<i64>,
}

const IMP: u8 = 0;
const EMER: u8 = 1;
const AMB: u8 = 2;

/// Everything about patient `index`: the Patient (hospital number serial
/// `index + 1` of `numbers`), then Encounters with their vital signs,
/// Conditions, AllergyIntolerances and MedicationRequests. Depends on
/// `(seed, index)` and the scheme only.
pub fn patient_resources(seed: u64, index: usize, numbers: &Scheme) -> Vec<Value> {
    let mut rng = patient_rng(seed, index);
    let heavy = index == 0;
    let pid = format!("pat-{index}");
    let town = rng.gen_range(0..TOWNS.len());
    let (town_name, districts, site) = TOWNS[town];
    let female = rng.gen_bool(0.5);
    let given = |rng: &mut StdRng| {
        if female {
            GIVEN_F[rng.gen_range(0..GIVEN_F.len())]
        } else {
            GIVEN_M[rng.gen_range(0..GIVEN_M.len())]
        }
    };
    let mut names = vec![given(&mut rng)];
    if rng.gen_bool(0.4) {
        names.push(given(&mut rng));
    }
    // Ages skew old, as hospital patients do.
    let age_years: i64 = if heavy {
        67
    } else {
        let a: f64 = rng.r#gen();
        (a.sqrt() * 98.0) as i64
    };
    let birth = END - age_years * 365 * DAY - rng.gen_range(0..365) * DAY;
    let elderly = age_years >= 65;
    let practices: Vec<usize> = (0..GP_PRACTICES)
        .filter(|k| practice_town(*k) == town)
        .collect();
    let practice = practices[rng.gen_range(0..practices.len())];
    let prefix = match (female, age_years >= 18, rng.gen_bool(0.5)) {
        (_, false, _) => None,
        (false, true, _) => Some("Mr"),
        (true, true, true) => Some("Mrs"),
        (true, true, false) => Some("Ms"),
    };
    let mut name = json!({"use": "official", "family": FAMILY[rng.gen_range(0..FAMILY.len())], "given": names});
    if let Some(p) = prefix {
        name["prefix"] = json!([p]);
    }
    let district = districts[rng.gen_range(0..districts.len())];
    let address = json!({
        "use": "home",
        "line": [format!("{} {}", rng.gen_range(1..240), STREETS[rng.gen_range(0..STREETS.len())])],
        "city": town_name, "district": "Hertfordshire", "postalCode": postcode(&mut rng, district),
        "country": "GB",
    });
    let mut chart = Chart {
        index,
        pid: pid.clone(),
        site,
        out: Vec::new(),
        encounters: 0,
        observations: 0,
        conditions: 0,
        meds: 0,
    };
    chart.out.push(json!({
        "resourceType": "Patient", "id": pid, "active": true,
        "meta": {"profile": [crate::UK_CORE_PATIENT]},
        "identifier": [
            {
                "extension": [crate::verified()],
                "system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs_number(index),
            },
            crate::hospital_number(numbers, index as u64 + 1),
        ],
        "name": [name],
        "telecom": [{"system": "phone", "value": format!("07700 9{:05}", rng.gen_range(0..100_000)), "use": "mobile"}],
        "gender": if female { "female" } else { "male" },
        "birthDate": date(birth),
        "address": [address],
        "generalPractitioner": [reference("Organization", &practice_id(practice))],
        "managingOrganization": reference("Organization", "trust"),
    }));

    // When the encounters happen.
    let first = birth.max(START);
    let mut visits: Vec<Visit> = Vec::new();
    let n = rng.gen_range(1..=7)
        + if elderly { rng.gen_range(0..=8) } else { 0 }
        + if rng.gen_bool(0.12) {
            rng.gen_range(5..=25)
        } else {
            0
        };
    for _ in 0..n {
        let r = rng.gen_range(0..100);
        let class = match r {
            0..=24 => IMP,
            25..=44 => EMER,
            _ => AMB,
        };
        let start = rng.gen_range(first..END - 2 * DAY) / 60 * 60;
        visits.push(Visit {
            class,
            start,
            end: None,
        });
    }
    if heavy {
        // Haemodialysis three times a week, Monday/Wednesday/Friday from 2022-01-03.
        let monday = 1_641_168_000 + 8 * HOUR;
        for k in 0..600i64 {
            visits.push(Visit {
                class: 3,
                start: monday + (k / 3) * 7 * DAY + (k % 3) * 2 * DAY,
                end: None,
            });
        }
    }
    visits.sort_by_key(|v| v.start);
    for i in 0..visits.len() {
        let next = visits.get(i + 1).map_or(END, |v| v.start);
        let want = match visits[i].class {
            IMP => rng.gen_range(1..15) * DAY + rng.gen_range(0..12) * HOUR,
            EMER => rng.gen_range(2..8) * HOUR,
            AMB => rng.gen_range(1..3) * HOUR / 2,
            _ => 4 * HOUR,
        };
        let end = (visits[i].start + want).min(next - 60);
        // A few patients are in hospital now: their last admission is open.
        let open = i + 1 == visits.len() && visits[i].class == IMP && rng.gen_bool(0.3);
        visits[i].end = if open {
            None
        } else {
            Some(end.max(visits[i].start + 60))
        };
    }

    // Long-term conditions, each with its usual medicine.
    let n_chronic = if heavy {
        0
    } else if elderly {
        rng.gen_range(0..=4)
    } else {
        rng.gen_range(0..=2)
    };
    let mut chronic: Vec<usize> = if heavy { vec![0, 1, 6] } else { Vec::new() };
    while chronic.len() < n_chronic {
        let c = rng.gen_range(0..CHRONIC.len());
        if !chronic.contains(&c) {
            chronic.push(c);
        }
    }

    let mut enc_ids = Vec::with_capacity(visits.len());
    for v in &visits {
        let loc = match v.class {
            IMP => bed_id(
                site,
                rng.gen_range(0..WARDS.len()),
                rng.gen_range(0..BAYS_PER_WARD),
                rng.gen_range(0..BEDS_PER_BAY),
            ),
            EMER => format!("{}-ed", SITES[site].0),
            _ => format!("{}-opd", SITES[site].0),
        };
        let class = match v.class {
            IMP => ("IMP", "inpatient encounter"),
            EMER => ("EMER", "emergency"),
            _ => ("AMB", "ambulatory"),
        };
        let eid = chart.encounter(&mut rng, class, v.start, v.end, loc);
        let stop = v.end.unwrap_or(v.start + 3 * DAY);
        let sets = match v.class {
            IMP => rng.gen_range(2..=10),
            EMER => rng.gen_range(1..=3),
            AMB => rng.gen_range(0..=1),
            _ => 1,
        };
        let unwell = v.class != AMB && v.class != 3;
        for s in 0..sets {
            let at = v.start + (stop - v.start) * s / sets.max(1) + 5 * 60;
            chart.vitals(&mut rng, &eid, at.min(stop), v.class != 3, unwell && s == 0);
        }
        if v.class == IMP {
            let doctor = practitioner_at(&mut rng, site);
            if rng.gen_bool(0.7) {
                let (code, name, med) = ACUTE[rng.gen_range(0..ACUTE.len())];
                chart.condition((code, name), false, v.start, v.end, &eid, &doctor);
                chart.medication_request(
                    med,
                    if v.end.is_some() {
                        "completed"
                    } else {
                        "active"
                    },
                    v.start + HOUR,
                    &eid,
                    &doctor,
                    "As directed by the ward team",
                );
            }
            for _ in 0..rng.gen_range(0..=2) {
                let status = match (v.end.is_some(), rng.gen_bool(0.2)) {
                    (false, _) => "active",
                    (true, true) => "stopped",
                    (true, false) => "completed",
                };
                chart.medication_request(
                    [0, 18, 13, 11][rng.gen_range(0..4)],
                    status,
                    v.start + 2 * HOUR,
                    &eid,
                    &doctor,
                    "As prescribed on the drug chart",
                );
            }
        }
        enc_ids.push((eid, v.start));
    }

    for &c in &chronic {
        let (code, name, med) = CHRONIC[c];
        let (eid, at) = enc_ids[rng.gen_range(0..enc_ids.len())].clone();
        let doctor = practitioner_at(&mut rng, site);
        chart.condition((code, name), true, at, None, &eid, &doctor);
        let status = if rng.gen_bool(0.85) {
            "active"
        } else {
            "stopped"
        };
        chart.medication_request(med, status, at + HOUR, &eid, &doctor, "One daily");
    }

    let n_allergies = match rng.gen_range(0..100) {
        0..=69 => 0,
        70..=91 => 1,
        _ => 2,
    };
    let first_allergy = rng.gen_range(0..ALLERGIES.len());
    for a in 0..n_allergies {
        let (code, name, category) = ALLERGIES[(first_allergy + a) % ALLERGIES.len()];
        let (_, at) = enc_ids[rng.gen_range(0..enc_ids.len())];
        chart.out.push(json!({
            "resourceType": "AllergyIntolerance", "id": format!("alg-{index}-{a}"),
            "clinicalStatus": coding("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active", "Active"),
            "verificationStatus": coding("http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed", "Confirmed"),
            "type": "allergy",
            "category": [category],
            "criticality": if rng.gen_bool(0.2) { "high" } else { "low" },
            "code": coding(SNOMED, code, name),
            "patient": reference("Patient", &pid),
            "recordedDate": date_time(at),
            "recorder": reference("Practitioner", &practitioner_at(&mut rng, site)),
            "reaction": [{"manifestation": [coding(SNOMED, "271807003", "Eruption of skin")], "severity": "mild"}],
        }));
    }
    chart.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

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

    fn key(r: &Value) -> String {
        format!(
            "{}/{}",
            r["resourceType"].as_str().unwrap(),
            r["id"].as_str().unwrap()
        )
    }

    #[test]
    fn deterministic_per_seed_and_index() {
        assert_eq!(shared_resources(5), shared_resources(5));
        assert_ne!(shared_resources(5), shared_resources(6));
        for i in [0, 1, 17, 199] {
            assert_eq!(
                patient_resources(5, i, &Scheme::default()),
                patient_resources(5, i, &Scheme::default())
            );
            assert_ne!(
                patient_resources(5, i, &Scheme::default()),
                patient_resources(6, i, &Scheme::default())
            );
        }
        assert_ne!(
            patient_resources(5, 1, &Scheme::default()),
            patient_resources(5, 2, &Scheme::default())
        );
        // Shared ids do not depend on the seed.
        let ids = |s| shared_resources(s).iter().map(key).collect::<Vec<_>>();
        assert_eq!(ids(1), ids(2));
    }

    #[test]
    fn valid_closed_and_unique() {
        let defs = wardline_fhir::definitions::r4();
        let shared = shared_resources(1);
        let mut shared_ids = HashSet::new();
        for r in &shared {
            defs.validate(r).unwrap_or_else(|e| panic!("{r}: {e}"));
            assert!(shared_ids.insert(key(r)), "duplicate {}", key(r));
        }
        let mut all_ids = shared_ids.clone();
        let mut nhs = HashSet::new();
        let mut types = HashSet::new();
        let mut total = 0usize;
        for i in 0..200 {
            let mine = patient_resources(1, i, &Scheme::default());
            total += mine.len();
            let mut ids = shared_ids.clone();
            for r in &mine {
                defs.validate(r).unwrap_or_else(|e| panic!("{r}: {e}"));
                ids.insert(key(r));
                assert!(all_ids.insert(key(r)), "duplicate {}", key(r));
                types.insert(r["resourceType"].as_str().unwrap().to_owned());
            }
            for r in &mine {
                let mut out = Vec::new();
                refs(r, &mut out);
                for x in out {
                    assert!(ids.contains(&x), "{}: dangling reference {x}", key(r));
                }
            }
            let p = &mine[0];
            assert_eq!(p["id"], format!("pat-{i}"));
            assert_eq!(
                p["identifier"][0]["system"],
                "https://fhir.nhs.uk/Id/nhs-number"
            );
            let n = p["identifier"][0]["value"].as_str().unwrap();
            assert!(wardline_fhir::nhs_number::is_valid(n), "{n}");
            assert!(nhs.insert(n.to_owned()), "NHS number {n} repeated");
        }
        for t in [
            "Patient",
            "Encounter",
            "Observation",
            "Condition",
            "AllergyIntolerance",
            "MedicationRequest",
        ] {
            assert!(types.contains(t), "no {t}");
        }
        let avg = total as f64 / 200.0;
        assert!((80.0..=130.0).contains(&avg), "{avg} resources per patient");
    }

    #[test]
    fn heavy_patient_zero() {
        let p = patient_resources(1, 0, &Scheme::default());
        let encounters = p
            .iter()
            .filter(|r| r["resourceType"] == "Encounter")
            .count();
        assert!(encounters >= 550, "{encounters} encounters");
        let classes: HashSet<&str> = p
            .iter()
            .filter_map(|r| r["class"]["code"].as_str())
            .collect();
        assert!(classes.contains("AMB"), "{classes:?}");
    }

    #[test]
    fn shared_shape() {
        let s = shared_resources(1);
        let count = |f: &dyn Fn(&Value) -> bool| s.iter().filter(|r| f(r)).count();
        assert_eq!(
            count(&|r| r["type"][0]["coding"][0]["code"] == "76"),
            GP_PRACTICES
        );
        assert_eq!(
            count(&|r| r["physicalType"]["coding"][0]["code"] == "si"),
            3
        );
        assert!(count(&|r| r["physicalType"]["coding"][0]["code"] == "bd") >= 100);
        assert_eq!(
            count(&|r| r["resourceType"] == "Medication"),
            MEDICATIONS.len()
        );
        let ods: HashSet<&str> = s
            .iter()
            .filter(|r| r["type"][0]["coding"][0]["code"] == "76")
            .map(|r| r["identifier"][0]["value"].as_str().unwrap())
            .collect();
        assert!(ods.contains("F81001"));
        assert_eq!(ods.len(), GP_PRACTICES);
    }

    #[test]
    fn nhs_numbers_distinct_and_valid() {
        let mut seen = HashSet::new();
        for i in (0..MAX_PATIENTS).step_by(997).chain(0..20_000) {
            let n = nhs_number(i);
            assert!(wardline_fhir::nhs_number::is_valid(&n), "{n}");
            if i < 20_000 || i % 997 == 0 {
                seen.insert((i, n));
            }
        }
        let numbers: HashSet<&String> = seen.iter().map(|(_, n)| n).collect();
        let indexes: HashSet<usize> = seen.iter().map(|(i, _)| *i).collect();
        assert_eq!(numbers.len(), indexes.len());
    }

    #[test]
    fn dates() {
        assert_eq!(date_time(START), "2016-01-01T00:00:00Z");
        assert_eq!(date_time(END), "2026-01-01T00:00:00Z");
        assert_eq!(date_time(1_641_168_000 + 8 * HOUR), "2022-01-03T08:00:00Z");
        assert_eq!(date(-DAY), "1969-12-31");
        assert_eq!(date(951_782_400), "2000-02-29");
    }
}
