//! End-to-end tests of the searches that follow references: chained
//! parameters, `_has`, `_include`/`_revinclude` (with `:iterate`) and
//! `Patient/$everything` (with its `start`/`end` care dates), on the real
//! server and both backends.
//!
//! The data is the generated demo trust; every expected result is worked out
//! here by walking the generated JSON (its references and codes), never by
//! asking the server.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Checks, Env, Server, entries, next_link};
use serde_json::Value;

const NHS: &str = "https://fhir.nhs.uk/Id/nhs-number";

/// The generated trust, indexed for the expectations.
struct Data {
    /// "Type/id" → resource.
    all: BTreeMap<String, Value>,
}

impl Data {
    fn new(bundle: &Value) -> Data {
        let mut all = BTreeMap::new();
        for e in bundle["entry"].as_array().unwrap() {
            let r = &e["resource"];
            all.insert(key(r), r.clone());
        }
        Data { all }
    }

    fn of_type<'a>(&'a self, t: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.all.values().filter(move |r| r["resourceType"] == t)
    }

    /// "Type/id" keys of `t` resources whose JSON pointer `ptr` (a reference)
    /// is `target`.
    fn referring(&self, t: &str, ptr: &str, target: &str) -> BTreeSet<String> {
        self.of_type(t)
            .filter(|r| r.pointer(ptr).and_then(Value::as_str) == Some(target))
            .map(key)
            .collect()
    }
}

fn key(r: &Value) -> String {
    format!(
        "{}/{}",
        r["resourceType"].as_str().unwrap(),
        r["id"].as_str().unwrap()
    )
}

/// Every `reference` string anywhere in `v`.
fn references(v: &Value, out: &mut Vec<String>) {
    out.extend(wardline_fhir::reference::references(v).map(str::to_owned));
}

fn has_code(r: &Value, ptr: &str, code: &str) -> bool {
    r.pointer(ptr)
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c["code"] == code))
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// (matches, includes) of a search, following `next` links.
fn collect(s: &Server, path: &str) -> Result<(BTreeSet<String>, BTreeSet<String>), String> {
    let mut url = s.url(path);
    let (mut m, mut inc) = (BTreeSet::new(), BTreeSet::new());
    for _ in 0..1000 {
        let r = s.get(&url);
        if r.status != 200 {
            return Err(r.brief());
        }
        for e in entries(&r.body) {
            match e.pointer("/search/mode").and_then(Value::as_str) {
                Some("match") => {
                    if !m.insert(key(&e["resource"])) {
                        return Err(format!("{} matched twice", key(&e["resource"])));
                    }
                }
                Some("include") => {
                    inc.insert(key(&e["resource"]));
                }
                other => return Err(format!("unexpected entry mode {other:?}")),
            }
        }
        match next_link(&r.body) {
            Some(n) => url = n,
            None => return Ok((m, inc)),
        }
    }
    Err("paging did not end".into())
}

fn matches(c: &mut Checks, s: &Server, path: &str, want: &BTreeSet<String>) {
    match collect(s, path) {
        Ok((m, _)) => c.eq(path, &m, want),
        Err(e) => c.check(false, || format!("{path}: {e}")),
    }
}

fn run(env: Env) {
    let s = env.start();
    let bundle = wardline_demo::generate(7, 24);
    let r = s.post("", &bundle);
    assert_eq!(r.status, 200, "{}", r.brief());
    let d = Data::new(&bundle);
    let mut c = Checks::default();
    let patients: Vec<&Value> = d.of_type("Patient").collect();
    assert!(patients.len() >= 20);

    // ---- chained parameters -------------------------------------------------
    for p in patients.iter().take(4) {
        let pk = key(p);
        let nhs = p["identifier"][0]["value"].as_str().unwrap();
        let want = d.referring("Observation", "/subject/reference", &pk);
        assert!(!want.is_empty() || pk.is_empty());
        let q = format!("{NHS}|{nhs}");
        matches(
            &mut c,
            &s,
            &format!("Observation?subject:Patient.identifier={}", enc(&q)),
            &want,
        );
        // Without the type: every target type of `subject` that has `identifier`.
        matches(
            &mut c,
            &s,
            &format!("Observation?subject.identifier={}", enc(&q)),
            &want,
        );
    }
    // Two links: encounters of the patients registered with one GP practice.
    let practice = d
        .of_type("Organization")
        .find(|o| o["id"] != "trust")
        .unwrap();
    let ods = practice["identifier"][0]["value"].as_str().unwrap();
    let registered = d.referring(
        "Patient",
        "/generalPractitioner/0/reference",
        &key(practice),
    );
    assert!(
        !registered.is_empty(),
        "the demo registers patients with {ods}"
    );
    let want: BTreeSet<String> = d
        .of_type("Encounter")
        .filter(|e| registered.contains(e["subject"]["reference"].as_str().unwrap()))
        .map(key)
        .collect();
    matches(
        &mut c,
        &s,
        &format!(
            "Encounter?subject:Patient.general-practitioner:Organization.identifier={}",
            enc(&format!(
                "https://fhir.nhs.uk/Id/ods-organization-code|{ods}"
            ))
        ),
        &want,
    );
    // A chain combined with an ordinary parameter.
    let want: BTreeSet<String> = d
        .of_type("Observation")
        .filter(|o| registered.contains(o["subject"]["reference"].as_str().unwrap()))
        .filter(|o| has_code(o, "/code/coding", "8867-4"))
        .map(key)
        .collect();
    matches(
        &mut c,
        &s,
        &format!(
            "Observation?code=http://loinc.org|8867-4&subject:Patient.general-practitioner:Organization.identifier={}",
            enc(&format!(
                "https://fhir.nhs.uk/Id/ods-organization-code|{ods}"
            ))
        ),
        &want,
    );

    // ---- _has ---------------------------------------------------------------
    let conditions: Vec<&Value> = d.of_type("Condition").collect();
    let code = conditions[0]["code"]["coding"][0]["code"].as_str().unwrap();
    let with_cond: BTreeSet<String> = conditions
        .iter()
        .filter(|x| has_code(x, "/code/coding", code))
        .map(|x| x["subject"]["reference"].as_str().unwrap().to_owned())
        .collect();
    matches(
        &mut c,
        &s,
        &format!("Patient?_has:Condition:patient:code={code}"),
        &with_cond,
    );
    // Nested: GP practices with a patient who has that condition.
    let want: BTreeSet<String> = with_cond
        .iter()
        .map(|p| {
            d.all[p]["generalPractitioner"][0]["reference"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    matches(
        &mut c,
        &s,
        &format!(
            "Organization?_has:Patient:general-practitioner:_has:Condition:patient:code={code}"
        ),
        &want,
    );
    // _has AND an ordinary parameter AND a second _has.
    let female: BTreeSet<String> = d
        .of_type("Patient")
        .filter(|p| p["gender"] == "female")
        .map(key)
        .collect();
    let allergic: BTreeSet<String> = d
        .of_type("AllergyIntolerance")
        .map(|a| a["patient"]["reference"].as_str().unwrap().to_owned())
        .collect();
    let want: BTreeSet<String> = with_cond
        .iter()
        .filter(|p| female.contains(*p) && allergic.contains(*p))
        .cloned()
        .collect();
    matches(
        &mut c,
        &s,
        &format!(
            "Patient?gender=female&_has:Condition:patient:code={code}&_has:AllergyIntolerance:patient:code=91936005"
        ),
        &want,
    );

    // ---- _include / _revinclude ----------------------------------------------
    let p0 = key(patients[0]);
    let p0_id = patients[0]["id"].as_str().unwrap();
    let path = format!(
        "Encounter?patient={p0_id}&_sort=-date&_count=3&_include=Encounter:location&_include=Encounter:participant"
    );
    match collect(&s, &path) {
        Ok((m, inc)) => {
            let mut want = BTreeSet::new();
            for e in &m {
                let mut refs = Vec::new();
                references(&d.all[e]["location"], &mut refs);
                references(&d.all[e]["participant"], &mut refs);
                want.extend(refs);
            }
            c.eq(&format!("{path} (includes)"), &inc, &want);
            c.eq(
                &format!("{path} (matches)"),
                &m,
                &d.referring("Encounter", "/subject/reference", &p0),
            );
        }
        Err(e) => c.check(false, || format!("{path}: {e}")),
    }
    // Reverse include plus a forward include in one search.
    let path = format!(
        "Patient?_id={p0_id}&_revinclude=Encounter:patient&_revinclude=Condition:patient&_include=Patient:general-practitioner"
    );
    match collect(&s, &path) {
        Ok((_, inc)) => {
            let mut want = d.referring("Encounter", "/subject/reference", &p0);
            want.extend(d.referring("Condition", "/subject/reference", &p0));
            want.insert(
                patients[0]["generalPractitioner"][0]["reference"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
            c.eq(&path, &inc, &want);
        }
        Err(e) => c.check(false, || format!("{path}: {e}")),
    }
    // :iterate climbs the location hierarchy bed → bay → ward → site.
    let inpatient = d
        .of_type("Encounter")
        .find(|e| e.get("location").is_some())
        .unwrap();
    let mut want = BTreeSet::new();
    let mut loc = inpatient["location"][0]["location"]["reference"]
        .as_str()
        .map(str::to_owned);
    while let Some(l) = loc {
        loc = d.all[&l]
            .pointer("/partOf/reference")
            .and_then(Value::as_str)
            .map(str::to_owned);
        want.insert(l);
    }
    assert!(want.len() >= 3, "bed, bay or ward, site: {want:?}");
    let path = format!(
        "Encounter?_id={}&_include=Encounter:location&_include:iterate=Location:partof",
        inpatient["id"].as_str().unwrap()
    );
    match collect(&s, &path) {
        Ok((_, inc)) => c.eq(&path, &inc, &want),
        Err(e) => c.check(false, || format!("{path}: {e}")),
    }
    // Without :iterate only the first hop.
    let path = format!(
        "Encounter?_id={}&_include=Encounter:location&_include=Location:partof",
        inpatient["id"].as_str().unwrap()
    );
    match collect(&s, &path) {
        Ok((_, inc)) => c.eq(&format!("{path} (no iterate)"), inc.len(), 1),
        Err(e) => c.check(false, || format!("{path}: {e}")),
    }

    // ---- $everything --------------------------------------------------------
    let compartment: BTreeSet<String> = d
        .all
        .iter()
        .filter(|(k, r)| {
            *k == &p0 || {
                let mut refs = Vec::new();
                for f in ["subject", "patient"] {
                    references(&r[f], &mut refs);
                }
                refs.contains(&p0)
            }
        })
        .map(|(k, _)| k.clone())
        .collect();
    let mut referenced = BTreeSet::new();
    for k in &compartment {
        let mut refs = Vec::new();
        references(&d.all[k], &mut refs);
        for r in refs {
            let t = r.split('/').next().unwrap();
            if [
                "Location",
                "Organization",
                "Practitioner",
                "PractitionerRole",
                "Medication",
            ]
            .contains(&t)
            {
                referenced.insert(r);
            }
        }
    }
    let path = format!("Patient/{p0_id}/$everything");
    match collect(&s, &path) {
        Ok((m, inc)) => {
            c.eq(&format!("{path} (compartment)"), &m, &compartment);
            c.eq(&format!("{path} (referenced)"), &inc, &referenced);
        }
        Err(e) => c.check(false, || format!("{path}: {e}")),
    }
    // Paged: the same compartment in pages of 7.
    let path = format!("Patient/{p0_id}/$everything?_count=7");
    match collect(&s, &path) {
        Ok((m, _)) => c.eq(&path, &m, &compartment),
        Err(e) => c.check(false, || format!("{path}: {e}")),
    }
    let want: BTreeSet<String> = compartment
        .iter()
        .filter(|k| k.starts_with("Condition/") || k.starts_with("AllergyIntolerance/"))
        .cloned()
        .collect();
    matches(
        &mut c,
        &s,
        &format!("Patient/{p0_id}/$everything?_type=Condition,AllergyIntolerance"),
        &want,
    );
    matches(
        &mut c,
        &s,
        &format!("Patient/{p0_id}/$everything?_since=2999-01-01T00:00:00Z"),
        &BTreeSet::new(),
    );
    let r = s.get("Patient/no-such-patient/$everything");
    c.eq("$everything of an unknown patient", r.status, 404);
    let r = s.get(&format!("Patient/{p0_id}/$everything?_since=yesterday"));
    c.eq("$everything with a bad _since", r.status, 400);

    // ---- _sort on several keys --------------------------------------------------
    // The patient with the most encounters.
    let busiest = patients
        .iter()
        .map(|p| key(p))
        .max_by_key(|k| d.referring("Encounter", "/subject/reference", k).len())
        .unwrap();
    let mut encs: Vec<&Value> = d
        .of_type("Encounter")
        .filter(|e| e["subject"]["reference"] == busiest.as_str())
        .collect();
    let classes: BTreeSet<&str> = encs
        .iter()
        .map(|e| e["class"]["code"].as_str().unwrap())
        .collect();
    assert!(
        encs.len() >= 3 && classes.len() >= 2,
        "{busiest}: {} encounters, classes {classes:?}",
        encs.len()
    );
    encs.sort_by(|a, b| {
        let ka = a["class"]["code"].as_str().unwrap();
        let kb = b["class"]["code"].as_str().unwrap();
        // Instants in one format, so text order is time order.
        let da = a["period"]["start"].as_str().unwrap();
        let db = b["period"]["start"].as_str().unwrap();
        ka.cmp(kb).then(db.cmp(da))
    });
    let want: Vec<String> = encs.iter().map(|e| key(e)).collect();
    let path = format!(
        "Encounter?patient={}&_sort=class,-date&_count=3",
        busiest.trim_start_matches("Patient/")
    );
    let mut got = Vec::new();
    let mut url = s.url(&path);
    for _ in 0..100 {
        let r = s.get(&url);
        got.extend(
            entries(&r.body)
                .iter()
                .filter(|e| e["search"]["mode"] == "match")
                .map(|e| key(&e["resource"])),
        );
        match next_link(&r.body) {
            Some(n) => url = n,
            None => break,
        }
    }
    c.eq(&format!("{path} (order, paged)"), got, want);

    // ---- _summary -------------------------------------------------------------
    // Patient's summary elements in R4 (isSummary in the specification).
    let summary: BTreeSet<&str> = [
        "resourceType",
        "id",
        "meta",
        "identifier",
        "active",
        "name",
        "telecom",
        "gender",
        "birthDate",
        "deceasedBoolean",
        "deceasedDateTime",
        "address",
        "managingOrganization",
        "link",
    ]
    .into();
    let keys_of = |path: &str| -> Vec<BTreeSet<String>> {
        let r = s.get(path);
        common::entries(&r.body)
            .iter()
            .map(|e| e["resource"].as_object().unwrap().keys().cloned().collect())
            .collect()
    };
    let got = keys_of(&format!("Patient?_id={p0_id}&_summary=true"));
    c.check(got.len() == 1, || format!("_summary=true: {got:?}"));
    for k in got.first().into_iter().flatten() {
        c.check(summary.contains(k.as_str()), || {
            format!("_summary=true kept {k}")
        });
    }
    c.check(
        got.first().is_some_and(|k| {
            k.contains("identifier")
                && k.contains("birthDate")
                && !k.contains("generalPractitioner")
        }),
        || format!("_summary=true: {got:?}"),
    );
    let r = s.get(&format!("Patient?_id={p0_id}&_summary=true"));
    c.check(r.text.contains("SUBSETTED"), || {
        "a summarised resource is tagged SUBSETTED".to_owned()
    });
    // _summary=text: text, id, meta and mandatory elements (Observation.status, .code).
    let got = keys_of("Observation?_count=1&_summary=text");
    c.eq(
        "_summary=text on Observation",
        got.first().cloned().unwrap_or_default(),
        ["resourceType", "id", "meta", "status", "code"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    );
    let got = keys_of(&format!("Patient?_id={p0_id}&_summary=data"));
    c.check(
        got.first()
            .is_some_and(|k| !k.contains("text") && k.contains("generalPractitioner")),
        || format!("_summary=data: {got:?}"),
    );
    let r = s.get("Patient?_summary=count");
    c.check(
        r.body["total"].as_u64() == Some(patients.len() as u64) && r.body.get("entry").is_none(),
        || format!("_summary=count: {}", r.brief()),
    );

    // ---- composite parameters ----------------------------------------------
    // Blood pressures whose components tempt a search that does not keep
    // components together: bp2 has a normal systolic and a high diastolic.
    let bp = |id: &str, sys: f64, dia: f64| {
        serde_json::json!({
            "resourceType": "Observation", "id": id, "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
            "subject": {"reference": format!("Patient/{p0_id}")},
            "component": [
                {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                 "valueQuantity": {"value": sys, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
                {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                 "valueQuantity": {"value": dia, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}
            ]
        })
    };
    for (id, sys, dia) in [
        ("bp1", 150.0, 80.0),
        ("bp2", 120.0, 150.0),
        ("bp3", 145.0, 95.0),
    ] {
        assert_eq!(
            s.put(&format!("Observation/{id}"), &bp(id, sys, dia))
                .status,
            201
        );
    }
    let obs = |ids: &[&str]| -> BTreeSet<String> {
        ids.iter().map(|i| format!("Observation/{i}")).collect()
    };
    let cvq = "Observation?component-code-value-quantity=";
    matches(
        &mut c,
        &s,
        &format!("{cvq}{}", enc("http://loinc.org|8480-6$gt140")),
        &obs(&["bp1", "bp3"]),
    );
    matches(
        &mut c,
        &s,
        &format!("{cvq}{}", enc("8462-4$ge90")),
        &obs(&["bp2", "bp3"]),
    );
    matches(
        &mut c,
        &s,
        &format!(
            "{cvq}{}",
            enc("8480-6$gt149|http://unitsofmeasure.org|mm[Hg],8462-4$gt149")
        ),
        &obs(&["bp1", "bp2"]),
    );
    matches(
        &mut c,
        &s,
        &format!(
            "{cvq}{}&component-code-value-quantity={}",
            enc("8480-6$gt140"),
            enc("8462-4$ge90")
        ),
        &obs(&["bp3"]),
    );
    matches(
        &mut c,
        &s,
        &format!("{cvq}{}", enc("8480-6$lt100")),
        &BTreeSet::new(),
    );
    // code-value-quantity on the Observation's own code and value, from the generated data.
    let want: BTreeSet<String> = d
        .of_type("Observation")
        .filter(|o| has_code(o, "/code/coding", "8867-4"))
        .filter(|o| {
            o["valueQuantity"]["value"]
                .as_f64()
                .is_some_and(|v| v > 90.0)
        })
        .map(key)
        .collect();
    matches(
        &mut c,
        &s,
        &format!(
            "Observation?code-value-quantity={}",
            enc("http://loinc.org|8867-4$gt90")
        ),
        &want,
    );
    let r = s.get(&format!("{cvq}{}", enc("8480-6")));
    c.eq("composite without all its parts", r.status, 400);

    care_dates(&mut c, &s);

    // A graceful stop (SIGTERM) exits 0 on either backend.
    let mut s = s;
    let status = s.terminate();
    c.check(status.is_some_and(|st| st.success()), || {
        format!("SIGTERM: exit {status:?}; log: {}", s.log_tail(3000))
    });

    c.finish(&format!("[{}] graph searches", env.name));
}

/// `Patient/[id]/$everything` with `start`/`end`: a patient of their own
/// whose resources have known care dates (and some none).
fn care_dates(c: &mut Checks, s: &Server) {
    use serde_json::json;
    let p = "range-p";
    let subject = json!({"reference": format!("Patient/{p}")});
    let code = json!({"coding": [{"system": "http://loinc.org", "code": "8867-4"}]});
    let obs = |id: &str, when: Option<&str>, by: &str| {
        let mut o = json!({
            "resourceType": "Observation", "id": id, "status": "final",
            "code": code, "subject": subject,
            "performer": [{"reference": format!("Practitioner/{by}")}],
        });
        if let Some(w) = when {
            o["effectiveDateTime"] = json!(w);
        }
        o
    };
    let condition = |id: &str, onset: &str, recorded: &str| {
        json!({"resourceType": "Condition", "id": id, "subject": subject,
               "code": {"text": "asthma"},
               "onsetDateTime": onset, "recordedDate": recorded})
    };
    let encounter = |id: &str, period: Value| {
        json!({"resourceType": "Encounter", "id": id, "status": "finished",
               "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
               "subject": subject, "period": period})
    };
    let resources = [
        json!({"resourceType": "Patient", "id": p, "birthDate": "1950-01-01"}),
        json!({"resourceType": "Practitioner", "id": "range-pr-early"}),
        json!({"resourceType": "Practitioner", "id": "range-pr-late"}),
        obs(
            "range-obs-2020",
            Some("2020-06-01T10:00:00Z"),
            "range-pr-early",
        ),
        obs(
            "range-obs-2023",
            Some("2023-03-15T10:00:00Z"),
            "range-pr-late",
        ),
        // No care date at all: kept whatever the range.
        obs("range-obs-undated", None, "range-pr-late"),
        condition("range-cond-2021", "2021-05-01", "2021-05-02"),
        // Began before the records, recorded in 2022: either date counts.
        condition("range-cond-2022", "2019-07-01", "2022-02-01"),
        encounter(
            "range-enc-2019",
            json!({"start": "2019-01-01T09:00:00Z", "end": "2019-01-03T12:00:00Z"}),
        ),
        // Still open: it reaches every later date.
        encounter("range-enc-open", json!({"start": "2021-12-01T09:00:00Z"})),
    ];
    for r in &resources {
        let path = format!(
            "{}/{}",
            r["resourceType"].as_str().unwrap(),
            r["id"].as_str().unwrap()
        );
        let got = s.put(&path, r);
        assert!(got.is_success(), "{path}: {}", got.brief());
    }
    let set = |keys: &[&str]| -> BTreeSet<String> { keys.iter().map(|k| k.to_string()).collect() };
    let in_2022_2023 = set(&[
        "Patient/range-p",
        "Observation/range-obs-2023",
        "Observation/range-obs-undated",
        "Condition/range-cond-2022",
        "Encounter/range-enc-open",
    ]);
    let everything = format!("Patient/{p}/$everything");
    for (query, want, want_inc) in [
        (
            "start=2022-01-01&end=2023-12-31",
            &in_2022_2023,
            set(&["Practitioner/range-pr-late"]),
        ),
        // Paged: the links carry the range.
        (
            "start=2022-01-01&end=2023-12-31&_count=2",
            &in_2022_2023,
            set(&["Practitioner/range-pr-late"]),
        ),
        // Without an end, everything after the start.
        (
            "start=2022",
            &in_2022_2023,
            set(&["Practitioner/range-pr-late"]),
        ),
        // Without a start, everything before the end (inclusive of 2020).
        (
            "end=2020",
            &set(&[
                "Patient/range-p",
                "Observation/range-obs-2020",
                "Observation/range-obs-undated",
                "Condition/range-cond-2022",
                "Encounter/range-enc-2019",
            ]),
            set(&["Practitioner/range-pr-early", "Practitioner/range-pr-late"]),
        ),
        (
            "start=2021-05-02&end=2021-05-02",
            &set(&[
                "Patient/range-p",
                "Observation/range-obs-undated",
                "Condition/range-cond-2021",
            ]),
            set(&["Practitioner/range-pr-late"]),
        ),
    ] {
        let path = format!("{everything}?{query}");
        match collect(s, &path) {
            Ok((m, inc)) => {
                c.eq(&format!("{path} (matches)"), &m, want);
                c.eq(&format!("{path} (referenced)"), &inc, &want_inc);
            }
            Err(e) => c.check(false, || format!("{path}: {e}")),
        }
    }
    // The same by POST, with the dates in a Parameters body.
    let r = s.post(
        &everything,
        &json!({"resourceType": "Parameters", "parameter": [
            {"name": "start", "valueDate": "2022-01-01"},
            {"name": "end", "valueDate": "2023-12-31"}]}),
    );
    let got: BTreeSet<String> = entries(&r.body)
        .iter()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| key(&e["resource"]))
        .collect();
    c.eq(
        "$everything by POST with start and end",
        &got,
        &in_2022_2023,
    );
    // A date that cannot be read is 400 naming the parameter.
    for (query, name) in [
        ("start=yesterday", "start"),
        ("start=2022-01-01&end=2023-13-01", "end"),
        ("start=2024-01-01&end=2023-12-31", "start"),
    ] {
        let r = s.get(&format!("{everything}?{query}"));
        c.check(
            r.status == 400
                && r.body["resourceType"] == "OperationOutcome"
                && r.body["issue"][0]["expression"][0] == name
                && r.body["issue"][0]["diagnostics"]
                    .as_str()
                    .is_some_and(|d| d.contains(name)),
            || format!("$everything?{query}: want 400 naming {name}: {}", r.brief()),
        );
    }
}

#[test]
fn graph_sqlite() {
    run(Env::sqlite());
}

#[test]
fn graph_postgres() {
    if let Some(env) = Env::postgres() {
        run(env);
    }
}
