//! The bed board: sites and wards with their occupancy, a ward's bays and
//! beds with who is in them, and the beds free to admit to.
//!
//! Cost: a board is a fixed number of statements whatever the ward's size —
//! the ward and its ancestors (one read per level), its bays and beds (two
//! searches), the current encounters in those beds (one search per 200
//! beds), the patients' sex for the mixed-sex check (one read), and two
//! searches through the service with the caller's access (the encounters
//! with their patients included, the patients' isolation flags). The trust
//! overview ([`sites`]) is one paged search of Locations and one of current
//! Encounters.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;
use wardline_core::{Access, FhirService, Op};
use wardline_fhir::FhirError;
use wardline_store::Reader;

use super::codes::EXPECTED_DISCHARGE_EXT;
use super::read::{self, Occupant, Place, Places, natural_cmp, ref_id};
use super::{AdtError, BedState};

/// Bed counts by state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Occupancy {
    pub beds: usize,
    pub occupied: usize,
    pub available: usize,
    pub cleaning: usize,
    pub closed: usize,
    pub blocked: usize,
}

impl Occupancy {
    /// Occupied beds as a percentage of open beds (all beds but the closed
    /// and blocked ones); 0 when none is open.
    pub fn percent(&self) -> f64 {
        let open = self.beds.saturating_sub(self.closed + self.blocked);
        if open == 0 {
            0.0
        } else {
            self.occupied as f64 * 100.0 / open as f64
        }
    }

    /// Beds that are open (not closed or blocked).
    pub fn open(&self) -> usize {
        self.beds.saturating_sub(self.closed + self.blocked)
    }

    pub(crate) fn count(&mut self, s: BedState) {
        self.beds += 1;
        match s {
            BedState::Occupied => self.occupied += 1,
            BedState::Available => self.available += 1,
            BedState::Cleaning => self.cleaning += 1,
            BedState::Closed => self.closed += 1,
            BedState::Blocked => self.blocked += 1,
        }
    }

    fn add(&mut self, o: &Occupancy) {
        self.beds += o.beds;
        self.occupied += o.occupied;
        self.available += o.available;
        self.cleaning += o.cleaning;
        self.closed += o.closed;
        self.blocked += o.blocked;
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct WardSummary {
    pub id: String,
    pub name: String,
    pub occupancy: Occupancy,
}

#[derive(Debug, Clone, Serialize)]
pub struct SiteSummary {
    pub id: String,
    pub name: String,
    pub occupancy: Occupancy,
    pub wards: Vec<WardSummary>,
}

/// The patient in a bed, as far as the caller may see them.
#[derive(Debug, Clone, Serialize)]
pub struct BoardPatient {
    pub id: String,
    /// "SMITH, John".
    pub name: String,
    /// The ten digits, unformatted.
    pub nhs_number: Option<String>,
    pub gender: Option<String>,
    pub encounter_id: String,
    /// `YYYY-MM-DD`.
    pub expected_discharge: Option<String>,
    /// Why the patient is isolated (the active isolation Flag's text), if
    /// they are.
    pub isolation: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bed {
    pub id: String,
    pub name: String,
    pub state: BedState,
    pub patient: Option<BoardPatient>,
    /// Occupied, but the caller may not see by whom.
    pub withheld: bool,
    /// An open bed clash on this bed (the text of its task: an external
    /// PAS put a second patient here), for the bed manager to resolve.
    pub clash: Option<String>,
    /// Why a closed or blocked bed is so.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bay {
    pub id: String,
    pub name: String,
    pub beds: Vec<Bed>,
    /// Both male and female patients are in this bay (a same-sex
    /// accommodation breach to act on). Counted over every patient in the
    /// bay, including those whose details are withheld from the caller.
    pub mixed_sex: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct WardBoard {
    pub id: String,
    pub name: String,
    pub site_id: String,
    pub site: String,
    pub bays: Vec<Bay>,
    pub occupancy: Occupancy,
}

fn may_see_locations(access: &dyn Access) -> Result<(), AdtError> {
    access
        .check_type(Op::Search, Some("Location"))
        .map_err(|_| AdtError::forbidden("You are not allowed to see the bed board."))
}

fn state_of(place: &Place, occupied: bool) -> BedState {
    if occupied {
        BedState::Occupied
    } else {
        BedState::of_status(place.status.as_ref().map(|(s, c)| (s.as_str(), c.as_str())))
    }
}

/// Every site with its wards and their occupancy.
pub fn sites(svc: &FhirService, access: &dyn Access) -> Result<Vec<SiteSummary>, AdtError> {
    may_see_locations(access)?;
    let store = svc.system_reader();
    let (places, occ) = whole_trust(store)?;
    let mut wards: HashMap<String, WardSummary> = HashMap::new();
    for p in places.map.values().filter(|p| p.is_bed() && p.active) {
        let Some(w) = places.ancestor(&p.id, "wa") else {
            continue;
        };
        wards
            .entry(w.id.clone())
            .or_insert_with(|| WardSummary {
                id: w.id.clone(),
                name: w.name.clone(),
                occupancy: Occupancy::default(),
            })
            .occupancy
            .count(state_of(p, occ.contains_key(&p.id)));
    }
    // Wards without beds are listed too (a ward just set up).
    for w in places.map.values().filter(|p| p.kind == "wa" && p.active) {
        wards.entry(w.id.clone()).or_insert_with(|| WardSummary {
            id: w.id.clone(),
            name: w.name.clone(),
            occupancy: Occupancy::default(),
        });
    }
    let mut out: HashMap<String, SiteSummary> = HashMap::new();
    for s in places.map.values().filter(|p| p.kind == "si" && p.active) {
        out.insert(
            s.id.clone(),
            SiteSummary {
                id: s.id.clone(),
                name: s.name.clone(),
                occupancy: Occupancy::default(),
                wards: Vec::new(),
            },
        );
    }
    for (_, w) in wards {
        let (sid, sname) = match places.ancestor(&w.id, "si") {
            Some(s) => (s.id.clone(), s.name.clone()),
            None => (String::new(), "No site recorded".to_owned()),
        };
        let site = out.entry(sid.clone()).or_insert_with(|| SiteSummary {
            id: sid,
            name: sname,
            occupancy: Occupancy::default(),
            wards: Vec::new(),
        });
        site.occupancy.add(&w.occupancy);
        site.wards.push(w);
    }
    let mut out: Vec<SiteSummary> = out.into_values().collect();
    for s in &mut out {
        s.wards.sort_by(|a, b| natural_cmp(&a.name, &b.name));
    }
    out.sort_by(|a, b| natural_cmp(&a.name, &b.name));
    Ok(out)
}

/// All locations and the current encounters by location.
fn whole_trust<R: Reader + ?Sized>(r: &R) -> Result<(Places, HashMap<String, Occupant>), AdtError> {
    let mut places = Places::default();
    places.add_stored(&read::search_all(r, "Location", &[])?)?;
    let occ = read::occupants(r, None, None)?;
    Ok((places, occ))
}

/// A ward's bays (with their beds, sorted) and the ward's places.
struct WardTree {
    places: Places,
    /// (bay id, bay name, bed ids)
    bays: Vec<(String, String, Vec<String>)>,
}

fn ward_tree<R: Reader + ?Sized>(r: &R, ward_id: &str) -> Result<WardTree, AdtError> {
    let mut places = Places::default();
    let ward = r
        .read("Location", ward_id)
        .map_err(FhirError::from)?
        .filter(|w| !w.deleted)
        .ok_or_else(|| AdtError::not_found(format!("There is no ward with id {ward_id}.")))?;
    places.add_stored(std::slice::from_ref(&ward))?;
    if places.get(ward_id).is_some_and(Place::is_bed) {
        return Err(AdtError::invalid(format!(
            "{} is a bed, not a ward.",
            places.label(ward_id)
        )));
    }
    places.load_ancestors(r)?;
    let children = read::search_all(r, "Location", &[("partof", format!("Location/{ward_id}"))])?;
    places.add_stored(&children)?;
    let child_places: Vec<Place> = children
        .iter()
        .filter_map(|c| places.get(&c.id).cloned())
        .filter(|p| p.active)
        .collect();
    let bay_ids: Vec<String> = child_places
        .iter()
        .filter(|p| !p.is_bed())
        .map(|p| p.id.clone())
        .collect();
    for chunk in bay_ids.chunks(200) {
        let refs = chunk
            .iter()
            .map(|b| format!("Location/{b}"))
            .collect::<Vec<_>>()
            .join(",");
        places.add_stored(&read::search_all(r, "Location", &[("partof", refs)])?)?;
    }
    let mut bays: Vec<(String, String, Vec<String>)> = Vec::new();
    let direct: Vec<String> = child_places
        .iter()
        .filter(|p| p.is_bed())
        .map(|p| p.id.clone())
        .collect();
    if !direct.is_empty() {
        let name = places
            .get(ward_id)
            .map(|w| w.name.clone())
            .unwrap_or_default();
        bays.push((ward_id.to_owned(), name, direct));
    }
    for b in child_places.iter().filter(|p| !p.is_bed()) {
        let beds: Vec<String> = places
            .map
            .values()
            .filter(|p| p.is_bed() && p.active && p.parent.as_deref() == Some(&b.id))
            .map(|p| p.id.clone())
            .collect();
        bays.push((b.id.clone(), b.name.clone(), beds));
    }
    for (_, _, beds) in &mut bays {
        beds.sort_by(|a, b| {
            let (na, nb) = (&places.map[a].name, &places.map[b].name);
            natural_cmp(na, nb).then_with(|| a.cmp(b))
        });
    }
    bays.sort_by(|a, b| natural_cmp(&a.1, &b.1));
    Ok(WardTree { places, bays })
}

/// A ward's bays and beds, who is in them (as far as the caller may see),
/// mixed-sex bays, and the ward's occupancy.
pub fn ward_board(
    svc: &FhirService,
    access: &dyn Access,
    ward_id: &str,
) -> Result<WardBoard, AdtError> {
    may_see_locations(access)?;
    let store = svc.system_reader();
    let tree = ward_tree(store, ward_id)?;
    let bed_ids: Vec<String> = tree.bays.iter().flat_map(|b| b.2.iter().cloned()).collect();
    let occ = read::occupants(store, Some(&bed_ids), None)?;

    // What the caller may see: the encounters with their patients.
    let mut visible: HashMap<String, (Value, Value)> = HashMap::new();
    if !occ.is_empty() {
        let ids: Vec<&str> = occ.values().map(|o| o.encounter_id.as_str()).collect();
        let found = read::search_as(
            svc,
            access,
            "Encounter",
            &[
                ("_id", ids.join(",")),
                ("_include", "Encounter:subject".to_owned()),
                ("_count", ids.len().max(1).to_string()),
            ],
        )?;
        let patients: HashMap<&str, &Value> = found
            .included
            .iter()
            .filter(|p| p["resourceType"] == "Patient")
            .filter_map(|p| Some((p["id"].as_str()?, p)))
            .collect();
        for e in &found.matches {
            let (Some(eid), Some(pid)) = (e["id"].as_str(), ref_id(&e["subject"], "Patient"))
            else {
                continue;
            };
            if let Some(p) = patients.get(pid) {
                visible.insert(eid.to_owned(), (e.clone(), (*p).clone()));
            }
        }
    }
    let isolation = isolation_of(
        svc,
        access,
        visible.values().filter_map(|(_, p)| p["id"].as_str()),
    )?;
    // Sex of every occupant, for the mixed-sex check (no identity leaves).
    let keys: Vec<(String, String)> = occ
        .values()
        .filter_map(|o| o.patient_id.clone())
        .map(|p| ("Patient".to_owned(), p))
        .collect();
    let genders: HashMap<String, String> = if keys.is_empty() {
        HashMap::new()
    } else {
        store
            .read_many(&keys)
            .map_err(FhirError::from)?
            .iter()
            .filter(|r| !r.deleted)
            .filter_map(|r| {
                let v = read::json_of(r).ok()?;
                Some((r.id.clone(), v["gender"].as_str()?.to_owned()))
            })
            .collect()
    };

    let clashes = super::beds::open_clashes(store, &bed_ids)?;
    let places = &tree.places;
    let mut occupancy = Occupancy::default();
    let mut bays = Vec::new();
    for (bay_id, bay_name, beds) in &tree.bays {
        let mut sexes = HashSet::new();
        let mut out_beds = Vec::new();
        for id in beds {
            let place = &places.map[id];
            let who = occ.get(id);
            let state = state_of(place, who.is_some());
            occupancy.count(state);
            if let Some(g) = who
                .and_then(|o| o.patient_id.as_ref())
                .and_then(|p| genders.get(p))
                .filter(|g| *g == "male" || *g == "female")
            {
                sexes.insert(g.clone());
            }
            let patient = who.and_then(|o| {
                let (enc, p) = visible.get(&o.encounter_id)?;
                let pid = p["id"].as_str()?.to_owned();
                Some(BoardPatient {
                    name: patient_name(p),
                    nhs_number: nhs_number(p),
                    gender: p["gender"].as_str().map(str::to_owned),
                    encounter_id: o.encounter_id.clone(),
                    expected_discharge: expected_discharge(enc),
                    isolation: isolation.get(&pid).cloned(),
                    id: pid,
                })
            });
            out_beds.push(Bed {
                id: id.clone(),
                name: place.name.clone(),
                state,
                withheld: who.is_some() && patient.is_none(),
                patient,
                clash: clashes.get(id).cloned(),
                reason: matches!(state, BedState::Closed | BedState::Blocked)
                    .then(|| place.status_reason.clone())
                    .flatten(),
            });
        }
        bays.push(Bay {
            id: bay_id.clone(),
            name: bay_name.clone(),
            beds: out_beds,
            mixed_sex: sexes.len() > 1,
        });
    }
    let ward = places
        .get(ward_id)
        .ok_or_else(|| AdtError::store(format!("Location/{ward_id} vanished")))?;
    let site = places.ancestor(ward_id, "si");
    Ok(WardBoard {
        id: ward.id.clone(),
        name: ward.name.clone(),
        site_id: site.map(|s| s.id.clone()).unwrap_or_default(),
        site: site.map(|s| s.name.clone()).unwrap_or_default(),
        bays,
        occupancy,
    })
}

/// Beds free to admit to, in one ward or the whole trust, as (bed id,
/// "Site · Ward · Bay · Bed"), in site, ward, bay and bed order.
pub fn available_beds(
    svc: &FhirService,
    access: &dyn Access,
    ward_id: Option<&str>,
) -> Result<Vec<(String, String)>, AdtError> {
    may_see_locations(access)?;
    let store = svc.system_reader();
    let (places, occ) = match ward_id {
        Some(w) => {
            let tree = ward_tree(store, w)?;
            let beds: Vec<String> = tree.bays.iter().flat_map(|b| b.2.iter().cloned()).collect();
            let occ = read::occupants(store, Some(&beds), None)?;
            let mut places = tree.places;
            let keep: HashSet<String> = beds.into_iter().collect();
            // Only this ward's beds (keep the ancestors for the labels).
            for p in places.map.values_mut() {
                if p.is_bed() && !keep.contains(&p.id) {
                    p.active = false;
                }
            }
            (places, occ)
        }
        None => whole_trust(store)?,
    };
    let mut out: Vec<(String, String)> = places
        .map
        .values()
        .filter(|p| p.is_bed() && p.active)
        .filter(|p| state_of(p, occ.contains_key(&p.id)) == BedState::Available)
        .map(|p| (p.id.clone(), places.label(&p.id)))
        .collect();
    out.sort_by(|a, b| natural_cmp(&a.1, &b.1).then_with(|| a.0.cmp(&b.0)));
    Ok(out)
}

/// Active isolation flags of the patients, by patient id (one search; the
/// reading of a flag is [`super::placement::isolation_by_patient`]).
fn isolation_of<'a>(
    svc: &FhirService,
    access: &dyn Access,
    patients: impl Iterator<Item = &'a str>,
) -> Result<HashMap<String, String>, AdtError> {
    let ids: Vec<String> = patients.map(|p| format!("Patient/{p}")).collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let found = read::search_as(
        svc,
        access,
        "Flag",
        &[("patient", ids.join(",")), ("_count", "1000".to_owned())],
    )?;
    Ok(super::placement::isolation_by_patient(
        &found.matches,
        svc.now_ms(),
    ))
}

/// The expected discharge date of an Encounter.
pub(crate) fn expected_discharge(enc: &Value) -> Option<String> {
    enc["extension"]
        .as_array()?
        .iter()
        .find(|e| e["url"] == EXPECTED_DISCHARGE_EXT)
        .and_then(|e| {
            e["valueDate"]
                .as_str()
                .or_else(|| e["valueDateTime"].as_str())
        })
        .map(|d| d.chars().take(10).collect())
}

fn official_name(v: &Value) -> Option<&Value> {
    let names = v["name"].as_array()?;
    names
        .iter()
        .find(|n| n["use"] == "official")
        .or_else(|| names.iter().find(|n| n["use"] != "old"))
        .or(names.first())
}

/// "SMITH, John".
pub(crate) fn patient_name(p: &Value) -> String {
    let Some(n) = official_name(p) else {
        return "(no name)".to_owned();
    };
    let family = n["family"].as_str().unwrap_or_default().to_uppercase();
    let given = n["given"]
        .as_array()
        .map(|g| {
            g.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    match (family.is_empty(), given.is_empty()) {
        (false, false) => format!("{family}, {given}"),
        (false, true) => family,
        (true, false) => given,
        (true, true) => n["text"].as_str().unwrap_or("(no name)").to_owned(),
    }
}

/// "Dr Jane Smith".
pub(crate) fn person_name(p: &Value) -> String {
    let Some(n) = official_name(p) else {
        return String::new();
    };
    if let Some(t) = n["text"].as_str() {
        return t.to_owned();
    }
    let mut parts: Vec<&str> = Vec::new();
    for k in ["prefix", "given"] {
        parts.extend(
            n[k].as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str),
        );
    }
    parts.extend(n["family"].as_str());
    parts.join(" ")
}

fn nhs_number(p: &Value) -> Option<String> {
    p["identifier"]
        .as_array()?
        .iter()
        .find(|i| i["system"] == "https://fhir.nhs.uk/Id/nhs-number" && i["use"] != "old")
        .and_then(|i| i["value"].as_str())
        .map(str::to_owned)
}

/// The consultant of an Encounter: the attender (PV1-7), else the admitter,
/// else the first participant; the reference's display, else the
/// Practitioner's name.
pub(crate) fn consultant_of(svc: &FhirService, enc: &Value) -> Result<Option<String>, AdtError> {
    let parts: Vec<&Value> = enc["participant"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let of_type = |code: &str| {
        parts.iter().copied().find(|p| {
            p["type"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|t| t["coding"].as_array().into_iter().flatten())
                .any(|c| c["code"] == code)
        })
    };
    let Some(p) = of_type("ATND")
        .or_else(|| of_type("ADM"))
        .or_else(|| parts.first().copied())
    else {
        return Ok(None);
    };
    if let Some(d) = p["individual"]["display"].as_str() {
        return Ok(Some(d.to_owned()));
    }
    let Some(id) = ref_id(&p["individual"], "Practitioner") else {
        return Ok(None);
    };
    let found = svc
        .system_reader()
        .read("Practitioner", id)
        .map_err(FhirError::from)?
        .filter(|r| !r.deleted);
    Ok(match found {
        Some(r) => Some(person_name(&read::json_of(&r)?)).filter(|n| !n.is_empty()),
        None => None,
    })
}

/// Whether a PractitionerRole is a consultant's: its `code` says
/// "Consultant" (text or a coding's display), as the demo trust and most
/// staff directories record the job role.
fn is_consultant_role(role: &Value) -> bool {
    role["code"].as_array().into_iter().flatten().any(|c| {
        let said = |v: &Value| {
            v.as_str()
                .is_some_and(|t| t.to_ascii_lowercase().contains("consultant"))
        };
        said(&c["text"])
            || c["coding"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|cd| said(&cd["display"]))
    })
}

/// The consultants a patient can be admitted under, as (Practitioner id,
/// name), by name: the practitioners of active consultant
/// PractitionerRoles (read with the caller's access).
pub fn consultants(
    svc: &FhirService,
    access: &dyn Access,
) -> Result<Vec<(String, String)>, AdtError> {
    let found = read::search_as(
        svc,
        access,
        "PractitionerRole",
        &[
            ("active", "true".to_owned()),
            ("_include", "PractitionerRole:practitioner".to_owned()),
            ("_count", "1000".to_owned()),
        ],
    )?;
    let people: HashMap<&str, &Value> = found
        .included
        .iter()
        .filter(|p| p["resourceType"] == "Practitioner" && p["active"] != false)
        .filter_map(|p| Some((p["id"].as_str()?, p)))
        .collect();
    let mut out: Vec<(String, String)> = found
        .matches
        .iter()
        .filter(|r| is_consultant_role(r))
        .filter_map(|r| ref_id(&r["practitioner"], "Practitioner"))
        .filter_map(|id| Some((id.to_owned(), person_name(people.get(id)?))))
        .filter(|(_, name)| !name.is_empty())
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    out.dedup_by(|a, b| a.0 == b.0);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn percent_is_of_open_beds() {
        let mut o = Occupancy::default();
        for s in [
            BedState::Occupied,
            BedState::Occupied,
            BedState::Available,
            BedState::Cleaning,
            BedState::Closed,
            BedState::Blocked,
        ] {
            o.count(s);
        }
        assert_eq!((o.beds, o.open()), (6, 4));
        assert!((o.percent() - 50.0).abs() < 1e-9);
        assert_eq!(Occupancy::default().percent(), 0.0);
    }

    #[test]
    fn consultant_roles_are_recognised_by_their_code() {
        assert!(is_consultant_role(
            &json!({"code": [{"text": "Consultant"}]})
        ));
        assert!(is_consultant_role(
            &json!({"code": [{"coding": [{"display": "Consultant Physician"}]}]})
        ));
        assert!(!is_consultant_role(
            &json!({"code": [{"text": "Staff Nurse"}]})
        ));
        assert!(!is_consultant_role(&json!({})));
    }

    #[test]
    fn names() {
        let p = json!({"name": [{"use": "old", "family": "Brown"},
            {"use": "official", "family": "Smith", "given": ["John", "Paul"], "prefix": ["Mr"]}]});
        assert_eq!(patient_name(&p), "SMITH, John Paul");
        assert_eq!(person_name(&p), "Mr John Paul Smith");
        assert_eq!(patient_name(&json!({})), "(no name)");
    }

    #[test]
    fn expected_discharge_reads_the_extension() {
        let e = json!({"extension": [{"url": EXPECTED_DISCHARGE_EXT, "valueDate": "2026-03-05"}]});
        assert_eq!(expected_discharge(&e).as_deref(), Some("2026-03-05"));
        assert_eq!(expected_discharge(&json!({})), None);
    }
}
