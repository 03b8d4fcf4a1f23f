//! End-to-end: (1) `wardline import` of the Synthea folder as it is (see
//! [`import_folder`]); (2) load the Synthea support Bundles (batch; Organizations, Locations,
//! Practitioners, PractitionerRoles, with conditional creates) and then every
//! patient transaction Bundle (`urn:uuid:` fullUrls, conditional references such
//! as `Practitioner?identifier=...`) into the real server over HTTP. Then check:
//! * every Bundle response has the right type and a 201 for every entry;
//! * the number of stored resources of each type equals the number computed
//!   from the input Bundles (both `_summary=count` and by paging with `_count`);
//! * every relative reference (`Type/id`) in every stored resource resolves
//!   (checked with batched `_id` searches plus a direct GET for a sample);
//!   no `urn:uuid:` or conditional reference is left unresolved.

use crate::common;

use common::{Env, Server, entries, rid, rtype};
use flate2::read::GzDecoder;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

const SUPPORT_PREFIXES: &[&str] = &["hospitalInformation", "practitionerInformation"];

fn read_gz(p: &Path) -> Value {
    let f = std::fs::File::open(p).expect("open bundle");
    let mut s = String::new();
    GzDecoder::new(f)
        .read_to_string(&mut s)
        .unwrap_or_else(|e| panic!("gunzip {}: {e}", p.display()));
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()))
}

/// Support Bundles first (hospitals before practitioners), then patients by name.
fn bundle_files() -> Option<Vec<PathBuf>> {
    let dir = common::testdata_dir("synthea-r4/bundles")?;
    let mut support = Vec::new();
    let mut patients = Vec::new();
    for e in std::fs::read_dir(&dir).expect("read bundles dir") {
        let p = e.expect("dir entry").path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".json.gz") {
            continue;
        }
        match SUPPORT_PREFIXES.iter().position(|s| name.starts_with(s)) {
            Some(i) => support.push((i, p)),
            None => patients.push(p),
        }
    }
    support.sort();
    patients.sort();
    assert_eq!(support.len(), 2, "expected the two Synthea support Bundles");
    assert!(!patients.is_empty(), "no patient Bundles found");
    Some(
        support
            .into_iter()
            .map(|(_, p)| p)
            .chain(patients)
            .collect(),
    )
}

/// Resources the input should leave in the store, per type: every POST creates
/// one resource, except a conditional create (`ifNoneExist`) whose criteria
/// repeat an earlier one; a PUT creates or replaces `Type/id`.
#[derive(Default)]
struct Expected {
    plain_posts: BTreeMap<String, u64>,
    conditional: BTreeSet<(String, String)>,
    puts: BTreeSet<(String, String)>,
}

impl Expected {
    fn add(&mut self, bundle: &Value) {
        for e in entries(bundle) {
            let rt = rtype(&e["resource"]).to_string();
            let req = &e["request"];
            match req["method"].as_str() {
                Some("POST") => match req["ifNoneExist"].as_str() {
                    Some(c) => {
                        self.conditional.insert((rt, c.to_string()));
                    }
                    None => *self.plain_posts.entry(rt).or_default() += 1,
                },
                Some("PUT") => {
                    let url = req["url"].as_str().expect("PUT url");
                    self.puts.insert((rt, url.to_string()));
                }
                other => panic!("unexpected request method {other:?} in a Synthea Bundle"),
            }
        }
    }

    fn per_type(&self) -> BTreeMap<String, u64> {
        let mut m = self.plain_posts.clone();
        for (rt, _) in self.conditional.iter().chain(&self.puts) {
            *m.entry(rt.clone()).or_default() += 1;
        }
        m
    }
}

fn post_bundle(server: &Server, file: &Path, bundle: &Value, failures: &mut Vec<String>) {
    let name = file.file_name().unwrap().to_string_lossy();
    let btype = bundle["type"].as_str().unwrap_or("");
    let n = entries(bundle).len();
    let r = server.post("", bundle);
    if r.status != 200 {
        failures.push(format!("{name}: POST {btype} Bundle: {}", r.brief()));
        return;
    }
    let want_type = format!("{btype}-response");
    if r.body["type"] != want_type.as_str() {
        failures.push(format!(
            "{name}: response Bundle type {} (expected {want_type})",
            r.body["type"]
        ));
    }
    let resp = entries(&r.body);
    if resp.len() != n {
        failures.push(format!(
            "{name}: {} response entries for {n} request entries",
            resp.len()
        ));
    }
    let bad: Vec<String> = resp
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            !e["response"]["status"]
                .as_str()
                .unwrap_or("")
                .starts_with("201")
        })
        .take(5)
        .map(|(i, e)| format!("entry {i}: {}", e["response"]))
        .collect();
    if !bad.is_empty() {
        failures.push(format!("{name}: entries not 201: {}", bad.join("; ")));
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    out.extend(wardline_fhir::reference::references(v).map(str::to_owned));
}

fn run(env: Env) {
    let Some(files) = bundle_files() else {
        return;
    };
    let server = env.start();
    let mut failures = Vec::new();
    let mut expected = Expected::default();
    let mut total_entries = 0usize;
    let t0 = Instant::now();
    for f in &files {
        let b = read_gz(f);
        total_entries += entries(&b).len();
        expected.add(&b);
        post_bundle(&server, f, &b, &mut failures);
    }
    let load_secs = t0.elapsed().as_secs_f64();
    println!(
        "[{}] synthea: {} Bundles, {} entries loaded in {:.1}s ({:.0} resources/s over HTTP)",
        env.name,
        files.len(),
        total_entries,
        load_secs,
        total_entries as f64 / load_secs
    );
    assert!(
        failures.is_empty(),
        "[{}] Bundle failures:\n  {}",
        env.name,
        failures.join("\n  ")
    );

    // Counts per type, and the full set of stored ids by paging.
    let want = expected.per_type();
    let t1 = Instant::now();
    let mut stored: HashMap<String, HashSet<String>> = HashMap::new();
    let mut refs: Vec<(String, String)> = Vec::new(); // (from, reference)
    for (rt, n) in &want {
        let c = server.count(rt);
        if c != *n {
            failures.push(format!("{rt}: _summary=count total {c}, expected {n}"));
        }
        let all = server.search_all(&format!("{rt}?_count=500"));
        if all.len() as u64 != *n {
            failures.push(format!("{rt}: paging returned {}, expected {n}", all.len()));
        }
        let ids = stored.entry(rt.clone()).or_default();
        for res in &all {
            ids.insert(rid(res).to_string());
            let mut rs = Vec::new();
            collect_refs(res, &mut rs);
            let from = format!("{rt}/{}", rid(res));
            refs.extend(rs.into_iter().map(|r| (from.clone(), r)));
        }
    }
    println!(
        "[{}] synthea: counted and paged {} types ({} resources) in {:.1}s",
        env.name,
        want.len(),
        want.values().sum::<u64>(),
        t1.elapsed().as_secs_f64()
    );

    // Classify references; relative ones must resolve.
    let mut targets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let (mut contained, mut absolute, mut relative) = (0usize, 0usize, 0usize);
    for (from, r) in &refs {
        if r.starts_with('#') {
            contained += 1;
        } else if r.starts_with("http://") || r.starts_with("https://") {
            absolute += 1;
        } else if r.starts_with("urn:") || r.contains('?') {
            failures.push(format!(
                "{from}: unresolved reference {r} left in the store"
            ));
        } else {
            let parts: Vec<&str> = r.split('/').collect();
            if parts.len() == 2 || (parts.len() == 4 && parts[2] == "_history") {
                relative += 1;
                targets
                    .entry(parts[0].to_string())
                    .or_default()
                    .insert(parts[1].to_string());
            } else {
                failures.push(format!("{from}: malformed reference {r}"));
            }
        }
    }
    let t2 = Instant::now();
    let mut unique = 0usize;
    let mut sampled = 0usize;
    for (rt, ids) in &targets {
        unique += ids.len();
        let ids: Vec<&String> = ids.iter().collect();
        for chunk in ids.chunks(100) {
            let list: Vec<&str> = chunk.iter().map(|s| s.as_str()).collect();
            let r = server.get(&format!("{rt}?_id={}&_count=100", list.join(",")));
            if r.status != 200 {
                failures.push(format!("{rt}?_id=...: {}", r.brief()));
                continue;
            }
            let found: HashSet<String> = common::page_ids(&r.body).into_iter().collect();
            for id in chunk {
                if !found.contains(*id) {
                    failures.push(format!("reference target {rt}/{id} not found"));
                }
            }
        }
        // A direct read for a sample of each type's targets.
        for id in ids.iter().take(25) {
            sampled += 1;
            let r = server.get(&format!("{rt}/{id}"));
            if r.status != 200 || rid(&r.body) != id.as_str() {
                failures.push(format!("GET {rt}/{id}: {}", r.brief()));
            }
        }
        // Targets of a type we loaded must be among the resources we paged.
        if let Some(have) = stored.get(rt) {
            for id in &ids {
                if !have.contains(*id) {
                    failures.push(format!("{rt}/{id} resolves but was not in the paged set"));
                }
            }
        }
    }
    println!(
        "[{}] synthea: {} references ({relative} relative to {unique} distinct targets, \
         {contained} contained, {absolute} absolute) checked in {:.1}s ({sampled} direct reads)",
        env.name,
        refs.len(),
        t2.elapsed().as_secs_f64()
    );
    assert!(
        relative > 0,
        "no relative references found: the check would be vacuous"
    );
    failures.truncate(50);
    assert!(
        failures.is_empty(),
        "[{}] synthea failures (first 50):\n  {}",
        env.name,
        failures.join("\n  ")
    );
}

#[test]
fn synthea_bundles_sqlite() {
    run(Env::sqlite());
}

#[test]
fn synthea_bundles_postgres() {
    if let Some(env) = Env::postgres() {
        run(env);
    }
}

/// `wardline import` of the whole Synthea folder as it is (patient Bundles
/// sort before the hospital and practitioner Bundles they refer to) into a
/// fresh store: all 41 files, 0 rejections; the report's totals equal the
/// store's counts; a second run creates nothing (all unchanged).
fn import_folder(env: Env) {
    use crate::import::{check_counts, import, report_path, table};
    let Some(dir) = common::testdata_dir("synthea-r4/bundles") else {
        return;
    };
    let files = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".json.gz")
        })
        .count();
    assert_eq!(files, 41, "the Synthea folder changed");
    let who = env.name;
    let t0 = Instant::now();
    let first = import(&env, &[dir.to_str().unwrap()]);
    println!(
        "[{who}] synthea import: first run {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(
        first.code,
        Some(0),
        "[{who}] {}{}",
        first.stdout,
        first.stderr
    );
    assert!(
        first.stdout.contains("from 41 files; rejected 0;"),
        "[{who}] {}",
        first.stdout
    );
    let written = std::fs::read_to_string(report_path(&first.stdout)).unwrap();
    let t = table(&written);
    let [read, created, updated, unchanged, rejected] = t["total"];
    assert_eq!(
        (updated, unchanged, rejected),
        (0, 0, 0),
        "[{who}] {written}"
    );
    assert_eq!(read, created, "[{who}] {written}");
    // PractitionerRoles were duplicated by a second run before (plain POSTs).
    assert!(t["PractitionerRole"][1] > 0, "[{who}] {written}");
    let server = env.start();
    check_counts(&server, &t, who);
    drop(server);

    let t1 = Instant::now();
    let second = import(&env, &[dir.to_str().unwrap()]);
    println!(
        "[{who}] synthea import: second run {:.1}s",
        t1.elapsed().as_secs_f64()
    );
    assert_eq!(second.code, Some(0), "[{who}] {}", second.stdout);
    let t2 = table(&second.stdout);
    assert_eq!(
        t2["total"],
        [read, 0, 0, read, 0],
        "[{who}] {}",
        second.stdout
    );
    let server = env.start();
    for (rt, n) in &t {
        if rt != "total" {
            assert_eq!(server.count(rt), n[1], "[{who}] {rt} after the second run");
        }
    }
}

#[test]
fn synthea_import_folder_sqlite() {
    import_folder(Env::sqlite());
}

#[test]
fn synthea_import_folder_postgres() {
    if let Some(env) = Env::postgres() {
        import_folder(env);
    }
}
