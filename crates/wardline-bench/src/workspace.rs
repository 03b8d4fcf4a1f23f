//! `wardline-bench workspace`: the clinical workspace at trust scale.
//!
//! Builds (or reuses, in `--data-dir`) a store holding:
//! * a bed model of `--beds` beds ([`wardline_demo::bed_model`]), about 85 %
//!   of them occupied by patients admitted through `wardline_workflow::adt`;
//! * generated patient 0 of `wardline_demo::population` (600+ encounters,
//!   with their observations, conditions and medicines), admitted to a bed;
//! * `--patients` further Patients for the Patient Master Index, with a long
//!   tail of surnames (a few very common, most rare), dates of birth over a
//!   century, and postcodes.
//!
//! Then, as a consultant positioned at every site, signed in through the
//! real sign-in form, it times each operation `--repeat` times, sequentially
//! (one user's latency, not throughput): the workflow call alone (the
//! service time, with the same access policy) and the whole page over HTTP
//! (`/ui/...`, rendered HTML, session checked). It prints min, p50 and p99.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use wardline_auth::directory::Directory;
use wardline_core::{Access, FhirService, ServiceConfig, Trusted};
use wardline_workflow::{adt, chart, pmi};

use crate::StoreArgs;

#[derive(Args)]
pub struct WorkspaceBenchArgs {
    /// Where the store is: reused when it already holds the data (loading a
    /// million patients takes minutes), built when not.
    #[command(flatten)]
    store: StoreArgs,
    /// Beds in the trust.
    #[arg(long, default_value_t = 1000)]
    beds: usize,
    /// Patients in the Patient Master Index besides the admitted ones.
    #[arg(long, default_value_t = 1_000_000)]
    patients: usize,
    /// Timed repetitions of each operation.
    #[arg(long, default_value_t = 50)]
    repeat: usize,
}

/// The generated patient with 600+ encounters.
const HEAVY: &str = "pat-0";
pub(crate) const BENCH_USER: &str = "bench.consultant";
const BENCH_PASSWORD: &str = "bench-only-password";
/// The part of the index the PMI patients take (see `population::nhs_number`).
const PMI_NHS_OFFSET: usize = 100_000;
const PMI_CHUNK: usize = 1000;

pub fn run(a: WorkspaceBenchArgs) -> Result<()> {
    let service = Arc::new(a.store.service(ServiceConfig {
        base_url: "http://127.0.0.1/fhir".into(),
        ..ServiceConfig::default()
    })?);
    let backend = service.backend();
    let op = Trusted::operator("bench");
    let wards = load_trust(&service, &op, a.beds)?;
    let sites = ids_of_kind(&wardline_demo::bed_model(a.beds), "si");
    load_pmi(&service, a.patients)?;
    let dir =
        Arc::new(Directory::open(service.clone(), "trust").map_err(|e| anyhow::anyhow!("{e}"))?);
    ensure_user(&dir, &sites)?;

    let probes = pmi_probes(a.patients);
    let rt = tokio::runtime::Runtime::new()?;
    let results = rt.block_on(measure(service.clone(), dir, wards, probes, a.repeat))?;
    println!(
        "workspace [{backend}]: {} beds, {} PMI patients, {} repetitions, one signed-in consultant",
        a.beds, a.patients, a.repeat
    );
    print_timings(&results);
    Ok(())
}

/// Prints each operation's service and page times: min, p50, p99.
pub(crate) fn print_timings(results: &Timings) {
    println!(
        "{:<44} {:>9} {:>9} {:>9}   {:>9} {:>9} {:>9}",
        "operation", "svc min", "svc p50", "svc p99", "page min", "page p50", "page p99"
    );
    for (label, (svc, page)) in results {
        let f = |d: &[Duration]| {
            let mut d = d.to_vec();
            d.sort();
            let ms = |p: f64| format!("{:.2}", crate::bench::percentile(&d, p));
            (ms(0.0), ms(0.5), ms(0.99))
        };
        let (s0, s1, s2) = f(svc);
        let (p0, p1, p2) = f(page);
        println!("{label:<44} {s0:>9} {s1:>9} {s2:>9}   {p0:>9} {p1:>9} {p2:>9}");
    }
    println!("(milliseconds; svc = the workflow call alone, page = GET over HTTP)");
}

/// Loads the bed model, fills about 85 % of its beds and admits the heavy
/// patient, unless done before. Returns the ward ids.
fn load_trust(service: &FhirService, op: &dyn Access, beds: usize) -> Result<Vec<String>> {
    let model = wardline_demo::bed_model(beds);
    let wards = ids_of_kind(&model, "wa");
    let bed_ids = ids_of_kind(&model, "bd");
    if service.system_reader().read("Patient", HEAVY)?.is_some() {
        println!("trust already loaded ({} wards)", wards.len());
        return Ok(wards);
    }
    let t = Instant::now();
    crate::load::load_value(service, model).map_err(|e| anyhow::anyhow!(e))?;
    let occupied: Vec<&String> = bed_ids
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 20 >= 3) // 17 in 20: 85 %
        .map(|(_, b)| b)
        .collect();
    let bar = progress(occupied.len() as u64 + 1, "admitting");
    for (k, bed) in occupied.iter().enumerate() {
        let id = format!("inpatient-{k}");
        let mut p = pmi_patient(k, wardline_demo::population::nhs_number(1 + k), 2 + k);
        p["id"] = json!(id);
        crate::load::load_value(service, p).map_err(|e| anyhow::anyhow!(e))?;
        admit(service, op, &id, bed, k)?;
        bar.inc(1);
    }
    // The heavy patient's record (its references to the demo's practices,
    // staff and medicines are left dangling: only the chart is measured).
    let resources = wardline_demo::population::patient_resources(7, 0, pmi::hospital_numbers());
    let n = resources.len();
    crate::load::load_value(service, crate::load::transaction(resources))
        .map_err(|e| anyhow::anyhow!(e))?;
    let free = bed_ids
        .iter()
        .find(|b| !occupied.contains(b))
        .context("no free bed for the heavy patient")?;
    admit(service, op, HEAVY, free, 0)?;
    bar.finish_and_clear();
    println!(
        "loaded {} beds, {} admissions and {HEAVY} ({n} resources) in {:.1} s",
        bed_ids.len(),
        occupied.len() + 1,
        t.elapsed().as_secs_f64()
    );
    Ok(wards)
}

/// The ids of the bed model's Locations of physical type `code` (`si`,
/// `wa`, `ro`, `bd`).
fn ids_of_kind(model: &Value, code: &str) -> Vec<String> {
    model["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| &e["resource"])
        .filter(|r| r["physicalType"]["coding"][0]["code"] == code)
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect()
}

fn admit(service: &FhirService, op: &dyn Access, patient: &str, bed: &str, k: usize) -> Result<()> {
    adt::admit(
        service,
        op,
        &adt::Admission {
            patient_id: patient.into(),
            bed_id: bed.into(),
            kind: if k.is_multiple_of(3) {
                adt::AdmissionKind::Elective
            } else {
                adt::AdmissionKind::Emergency
            },
            consultant_id: None,
            specialty: Some("300".into()),
            expected_discharge: Some(format!("2027-01-{:02}", k % 28 + 1)),
            // Random patients into random beds: a bay may become mixed-sex.
            placement_reason: Some("Benchmark load".into()),
        },
    )
    .map_err(|e| anyhow::anyhow!("admitting {patient} to {bed}: {}", e.message))?;
    Ok(())
}

/// Loads PMI patients `pmi-0 … pmi-(n-1)` in transactions of
/// [`PMI_CHUNK`], after the last chunk already there.
pub(crate) fn load_pmi(service: &FhirService, n: usize) -> Result<()> {
    let has = |i: usize| -> Result<bool> {
        Ok(service
            .system_reader()
            .read("Patient", &format!("pmi-{i}"))?
            .is_some())
    };
    // Chunks commit whole and in order: find the first chunk missing.
    let chunks = n.div_ceil(PMI_CHUNK);
    let (mut lo, mut hi) = (0, chunks);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if has(mid * PMI_CHUNK)? {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if lo == chunks {
        println!("{n} PMI patients already loaded");
        return Ok(());
    }
    let t = Instant::now();
    let bar = progress(n as u64, "loading PMI patients");
    bar.set_position((lo * PMI_CHUNK) as u64);
    for c in lo..chunks {
        let patients: Vec<Value> = (c * PMI_CHUNK..((c + 1) * PMI_CHUNK).min(n))
            .map(|i| {
                let mut p = pmi_patient(
                    i,
                    wardline_demo::population::nhs_number(PMI_NHS_OFFSET + i),
                    pmi_serial(i),
                );
                p["id"] = json!(format!("pmi-{i}"));
                p
            })
            .collect();
        let k = patients.len();
        crate::load::load_value(service, crate::load::transaction(patients))
            .map_err(|e| anyhow::anyhow!(e))?;
        bar.inc(k as u64);
    }
    bar.finish_and_clear();
    let loaded = n - lo * PMI_CHUNK;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "loaded {loaded} PMI patients in {secs:.0} s ({:.0}/s)",
        loaded as f64 / secs
    );
    Ok(())
}

pub(crate) fn progress(n: u64, what: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(n);
    bar.set_style(
        ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what);
    bar
}

// ---- the PMI population ---------------------------------------------------

/// The commonest surnames of England and Wales, most common first; drawn
/// for 6 % of patients with weight 1/rank, so that Smith is about 1.4 % of
/// the index (it is about 1.3 % of the population).
const COMMON: [&str; 40] = [
    "Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson", "Thomas",
    "Johnson", "Roberts", "Robinson", "Thompson", "Wright", "Walker", "White", "Edwards", "Hughes",
    "Green", "Hall", "Lewis", "Harris", "Clarke", "Patel", "Jackson", "Wood", "Turner", "Martin",
    "Cooper", "Hill", "Ward", "Morris", "Moore", "Clark", "Lee", "King", "Baker", "Harrison",
    "Morgan", "Allen",
];
/// The rest: three parts put together, 48 × 12 × 40 = 23,040 rarer surnames
/// (about 40 patients each in a million).
const HEAD: [&str; 48] = [
    "Ash", "Black", "Brad", "Brook", "Cald", "Chad", "Cran", "Dal", "Dun", "East", "Fair", "Fen",
    "Gold", "Grims", "Hal", "Hart", "Hay", "Hol", "Kings", "Lang", "Lock", "Marsh", "Mil", "Nor",
    "Oak", "Pen", "Pres", "Rad", "Red", "Roth", "Sal", "Shel", "Stan", "Stock", "Sud", "Thorn",
    "Tre", "Up", "Wal", "Wes", "Whit", "Wick", "Win", "Wor", "Yar", "Bel", "Cot", "Dray",
];
const MID: [&str; 12] = [
    "", "a", "e", "i", "o", "en", "er", "ing", "s", "el", "ow", "y",
];
const TAIL: [&str; 40] = [
    "ford", "ley", "ton", "wood", "field", "well", "bury", "by", "combe", "dale", "den", "ham",
    "hurst", "ington", "land", "low", "mere", "more", "stead", "stone", "thorpe", "wick", "worth",
    "cott", "bridge", "brook", "burn", "cliffe", "croft", "er", "ing", "man", "ridge", "shaw",
    "ster", "ward", "win", "hill", "gate", "son",
];
const GIVEN_F: [&str; 24] = [
    "Olivia", "Amelia", "Isla", "Ava", "Mia", "Grace", "Sophie", "Margaret", "Aisha", "Eleanor",
    "Fatima", "Joan", "Susan", "Emily", "Hannah", "Zara", "Priya", "Ruth", "Jean", "Chloe", "Lily",
    "Ellie", "Freya", "Ivy",
];
const GIVEN_M: [&str; 24] = [
    "Oliver", "George", "Harry", "Noah", "Jack", "Arthur", "Mohammed", "William", "Thomas",
    "David", "John", "Peter", "James", "Daniel", "Ali", "Arjun", "Leo", "Oscar", "Kwame",
    "Michael", "Paul", "Robert", "Samuel", "Edward",
];
const DISTRICTS: [&str; 24] = [
    "WD17", "WD18", "WD19", "WD23", "WD24", "WD25", "HP1", "HP2", "HP3", "HP4", "AL1", "AL2",
    "AL3", "AL4", "AL5", "AL10", "SG1", "SG2", "LU1", "LU2", "EN6", "NW9", "HA1", "HA8",
];
const LETTERS: &[u8] = b"ABDEFGHJLNPQRSTUWXYZ";

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Patient `i` of the PMI population: a UK Core Patient (no id).
fn pmi_patient(i: usize, nhs: String, serial: usize) -> Value {
    let r = |k: u64| mix((i as u64) << 8 | k);
    let surname = if r(1) % 100 < 6 {
        // weight 1/rank over COMMON
        let h: f64 = (1..=COMMON.len()).map(|k| 1.0 / k as f64).sum();
        let mut x = (r(2) % 1_000_000) as f64 / 1_000_000.0 * h;
        let mut pick = COMMON[COMMON.len() - 1].to_owned();
        for (k, s) in COMMON.iter().enumerate() {
            x -= 1.0 / (k + 1) as f64;
            if x <= 0.0 {
                pick = (*s).to_owned();
                break;
            }
        }
        pick
    } else {
        format!(
            "{}{}{}",
            HEAD[(r(3) % HEAD.len() as u64) as usize],
            MID[(r(13) % MID.len() as u64) as usize],
            TAIL[(r(4) % TAIL.len() as u64) as usize]
        )
    };
    let female = r(5).is_multiple_of(2);
    let given = if female {
        GIVEN_F[(r(6) % GIVEN_F.len() as u64) as usize]
    } else {
        GIVEN_M[(r(6) % GIVEN_M.len() as u64) as usize]
    };
    let birth = birth_date(r(7));
    let letter = |k: u64| LETTERS[(r(k) % LETTERS.len() as u64) as usize] as char;
    let postcode = format!(
        "{} {}{}{}",
        DISTRICTS[(r(8) % DISTRICTS.len() as u64) as usize],
        r(9) % 10,
        letter(10),
        letter(11)
    );
    json!({
        "resourceType": "Patient", "active": true,
        "meta": {"profile": [pmi::UK_CORE_PATIENT]},
        "identifier": [
            {"system": pmi::NHS_NUMBER_SYSTEM, "value": nhs},
            {"system": pmi::hospital_numbers().system(), "value": pmi::hospital_numbers().format(serial as u64)},
        ],
        "name": [{"use": "official", "family": surname, "given": [given]}],
        "gender": if female { "female" } else { "male" },
        "birthDate": birth,
        "address": [{"use": "home", "line": [format!("{} High Street", r(12) % 200 + 1)],
                     "postalCode": postcode}],
    })
}

/// The hospital-number serial of PMI patient `i` (the heavy patient has 1,
/// admitted patient `k` has `2 + k`: the trust's scheme, no number twice).
fn pmi_serial(i: usize) -> usize {
    PMI_NHS_OFFSET + 1 + i
}

/// A date between 1920-01-01 and 2024-12-31.
fn birth_date(r: u64) -> String {
    let days = (r % 38_350) as i64; // 1920-01-01 + up to ~105 years
    let ms = (-1_577_923_200_000_i64) + days * 86_400_000;
    wardline_fhir::datetime::format_instant(ms)[..10].to_owned()
}

/// The searches timed: (label, query), on patients spread over the index.
fn pmi_probes(n: usize) -> Vec<(String, pmi::PatientQuery)> {
    let q = |text: &str, dob: Option<String>, postcode: Option<String>| pmi::PatientQuery {
        text: text.to_owned(),
        birth_date: dob,
        postcode,
        gender: None,
    };
    let mut out = Vec::new();
    let i = n.saturating_sub(1) * 7 / 10;
    let p = pmi_patient(
        i,
        wardline_demo::population::nhs_number(PMI_NHS_OFFSET + i),
        pmi_serial(i),
    );
    let family = p["name"][0]["family"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let given = p["name"][0]["given"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let nhs = p["identifier"][0]["value"].as_str().unwrap_or_default();
    out.push((
        "PMI: NHS number".into(),
        q(&pmi::format_nhs_number(nhs), None, None),
    ));
    out.push((
        "PMI: hospital number".into(),
        q(
            &pmi::hospital_numbers().format(pmi_serial(i) as u64),
            None,
            None,
        ),
    ));
    out.push((
        "PMI: surname + date of birth".into(),
        q(&family, p["birthDate"].as_str().map(str::to_owned), None),
    ));
    out.push((
        "PMI: given name + surname".into(),
        q(&format!("{given} {family}"), None, None),
    ));
    out.push((
        "PMI: rare surname prefix".into(),
        q(&family[..4.min(family.len())], None, None),
    ));
    out.push((
        "PMI: common surname 'Smith' (first 50)".into(),
        q("Smith", None, None),
    ));
    out.push((
        "PMI: sounds like 'Smyth' (first 50)".into(),
        q("Smyth", None, None),
    ));
    out.push((
        "PMI: postcode".into(),
        q(
            "",
            None,
            p["address"][0]["postalCode"].as_str().map(str::to_owned),
        ),
    ));
    out
}

// ---- signing in and timing ----------------------------------------------------

pub(crate) fn ensure_user(dir: &Directory, sites: &[String]) -> Result<()> {
    let op = Trusted::operator("bench");
    if dir
        .account(BENCH_USER)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .is_some()
    {
        return Ok(());
    }
    dir.add_user(&op, BENCH_USER, "Bench Consultant", BENCH_PASSWORD)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let role = wardline_auth::rbac::Role::parse("consultant").context("consultant role")?;
    dir.grant(&op, BENCH_USER, role, "trust", sites)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

fn hidden(html: &str, name: &str) -> Result<String> {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .with_context(|| format!("no {name} field on the sign-in page"))?;
    let rest = &html[at + name.len() + 15..];
    Ok(rest[..rest.find('"').unwrap_or(0)].to_owned())
}

/// Signs in through the form; returns the `Cookie` header to send.
async fn sign_in(client: &reqwest::Client, root: &str, dir: Arc<Directory>) -> Result<String> {
    let form = client.get(format!("{root}/auth/login")).send().await?;
    // The form's CSRF check is tied to a cookie set with it.
    let pre = set_cookies(&form);
    let html = form.text().await?;
    // The store is read on a blocking thread (the PostgreSQL client blocks).
    let acc = tokio::task::spawn_blocking(move || dir.account(BENCH_USER))
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .context("bench user")?;
    let secret = wardline_auth::totp::base32_decode(&acc.totp_secret).context("TOTP secret")?;
    let code = wardline_auth::totp::code_at(&secret, wardline_fhir::datetime::now_ms() / 1000, 6);
    let r = client
        .post(format!("{root}/auth/login"))
        .header(reqwest::header::COOKIE, pre)
        .form(&[
            ("request", hidden(&html, "request")?.as_str()),
            ("csrf", hidden(&html, "csrf")?.as_str()),
            ("username", BENCH_USER),
            ("password", BENCH_PASSWORD),
            ("code", code.as_str()),
            ("action", "sign-in"),
        ])
        .send()
        .await?;
    if r.status().as_u16() != 303 {
        bail!("sign-in failed: {} {}", r.status(), r.text().await?);
    }
    let cookies = set_cookies(&r);
    if cookies.is_empty() {
        bail!("sign-in set no cookie");
    }
    Ok(cookies)
}

/// The `name=value` pairs a response sets, as a `Cookie` header value.
fn set_cookies(r: &reqwest::Response) -> String {
    r.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next().map(str::to_owned))
        .collect::<Vec<_>>()
        .join("; ")
}

pub(crate) type Timings = BTreeMap<String, (Vec<Duration>, Vec<Duration>)>;

/// The HTTP server with the UI, and one signed-in bench consultant.
pub(crate) struct Server {
    root: String,
    client: reqwest::Client,
    cookie: String,
    /// The policy the pages run under, for the service-time figures.
    pub access: Arc<dyn Access + Send + Sync>,
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    pub(crate) async fn start(service: Arc<FhirService>, dir: Arc<Directory>) -> Result<Server> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let root = format!("http://{}", listener.local_addr()?);
        let auth: Arc<dyn wardline_http::Authenticator> =
            Arc::new(wardline_http::BearerAuthenticator::new(dir.clone()));
        let app = wardline_http::app(
            service.clone(),
            auth,
            wardline_http::Options {
                ui: Some(wardline_web::router(service.clone(), dir.clone())),
                directory: Some(dir.clone()),
                ..wardline_http::Options::default()
            },
        );
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(wardline_http::serve_app(listener, app, None, async {
            let _ = stop_rx.await;
        }));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_gzip()
            .build()?;
        let cookie = sign_in(&client, &root, dir.clone()).await?;
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(axum::http::header::COOKIE, cookie.parse()?);
        let d = dir.clone();
        let principal = tokio::task::spawn_blocking(move || {
            wardline_http::principal_for(&d, Some(&axum::http::Method::GET), &headers, None)
        })
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let access: Arc<dyn Access + Send + Sync> =
            Arc::new(wardline_auth::policy::Policy::new(principal, dir.clone()));
        Ok(Server {
            root,
            client,
            cookie,
            access,
            stop,
            handle,
        })
    }

    /// GET `path`, expecting 200 and `marker` in the HTML: the time taken.
    pub(crate) async fn page(&self, path: String, marker: &'static str) -> Result<Duration> {
        let url = format!("{}{path}", self.root);
        let t = Instant::now();
        let r = self
            .client
            .get(&url)
            .header(reqwest::header::COOKIE, self.cookie.clone())
            .send()
            .await?;
        let status = r.status();
        let body = r.text().await?;
        let d = t.elapsed();
        if !status.is_success() || !body.contains(marker) {
            bail!("GET {url}: {status}, no '{marker}' in the page");
        }
        Ok(d)
    }

    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.handle.await;
    }
}

/// Runs `f` on a blocking thread, timed there.
pub(crate) async fn svc_time<F>(f: F) -> Result<Duration>
where
    F: FnOnce() -> Result<()> + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        f()?;
        Ok(t.elapsed())
    })
    .await?
}

async fn measure(
    service: Arc<FhirService>,
    dir: Arc<Directory>,
    wards: Vec<String>,
    probes: Vec<(String, pmi::PatientQuery)>,
    repeat: usize,
) -> Result<Timings> {
    let server = Server::start(service.clone(), dir).await?;
    let access = server.access.clone();
    let mut out: Timings = BTreeMap::new();
    let page = |path: String, marker: &'static str| server.page(path, marker);

    for k in 0..repeat {
        // Trust-wide bed board (every site and ward with occupancy).
        let (s, a) = (service.clone(), access.clone());
        let d = svc_time(move || {
            let sites = adt::sites(&s, &*a).map_err(|e| anyhow::anyhow!(e.message))?;
            anyhow::ensure!(!sites.is_empty(), "no sites");
            Ok(())
        })
        .await?;
        let p = page("/ui/beds".into(), "Bed board").await?;
        push(&mut out, "bed board: whole trust (/ui/beds)", d, p);

        // One ward's board, a different ward each time.
        let ward = wards[k % wards.len()].clone();
        let (s, a, w) = (service.clone(), access.clone(), ward.clone());
        let d = svc_time(move || {
            let b = adt::ward_board(&s, &*a, &w).map_err(|e| anyhow::anyhow!(e.message))?;
            anyhow::ensure!(b.occupancy.beds > 0, "empty ward");
            Ok(())
        })
        .await?;
        let p = page(format!("/ui/beds/{ward}"), "Bay 1").await?;
        push(&mut out, "bed board: one ward (/ui/beds/WARD)", d, p);

        // The chart of the 600-encounter patient.
        let (s, a) = (service.clone(), access.clone());
        let d = svc_time(move || {
            let now = wardline_fhir::datetime::now_ms();
            let c = chart::summary(&s, &*a, HEAVY, now).map_err(|e| anyhow::anyhow!("{e}"))?;
            let n = c.encounters.total.unwrap_or(0);
            anyhow::ensure!(n >= 500, "{n} encounters");
            Ok(())
        })
        .await?;
        let p = page(format!("/ui/patients/{HEAVY}"), "Encounters").await?;
        push(&mut out, "chart: patient with 600+ encounters", d, p);

        // Its possible-duplicates check, which the page loads after itself.
        let (s, a) = (service.clone(), access.clone());
        let d = svc_time(move || {
            pmi::duplicates_of(&s, &*a, HEAVY).map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(())
        })
        .await?;
        let p = page(
            format!("/ui/patients/{HEAVY}?fragment=duplicates"),
            "ossible duplicate records",
        )
        .await?;
        push(&mut out, "chart: possible duplicates (loaded after)", d, p);

        for (label, q) in &probes {
            let (s, a, qq) = (service.clone(), access.clone(), q.clone());
            let d = svc_time(move || {
                let found = pmi::search(&s, &*a, &qq, 50).map_err(|e| anyhow::anyhow!("{e}"))?;
                anyhow::ensure!(!found.is_empty(), "nothing found for {:?}", qq.text);
                Ok(())
            })
            .await?;
            let mut qs = form_urlencoded::Serializer::new(String::new());
            qs.append_pair("q", &q.text);
            if let Some(dob) = &q.birth_date {
                qs.append_pair("dob", dob);
            }
            if let Some(pc) = &q.postcode {
                qs.append_pair("postcode", pc);
            }
            let p = page(
                format!("/ui/patients?{}", qs.finish()),
                "data-testid=\"patient-results\"",
            )
            .await?;
            push(&mut out, label, d, p);
        }
    }
    server.stop().await;
    Ok(out)
}

pub(crate) fn push(out: &mut Timings, label: &str, svc: Duration, page: Duration) {
    let e = out.entry(label.to_owned()).or_default();
    e.0.push(svc);
    e.1.push(page);
}
