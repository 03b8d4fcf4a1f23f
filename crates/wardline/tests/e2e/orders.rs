//! Requesting from the chart over real HTTP, with real sessions of the
//! demo trust (`serve --demo`, whose order catalogue is the seed), on both
//! backends:
//!
//! * the consultant orders FBC, U&E and a chest X-ray (answering the
//!   imaging questions) for a patient on a Watford ward; the requisition
//!   page lists three tests and two tubes (EDTA, SST);
//! * the labels page has one label per tube, each with the patient's NHS
//!   number and a Code 128 barcode whose bars — read back here from the
//!   SVG with the symbology's own table — are the specimen identifier shown
//!   (H-074);
//! * a second CRP within its 24-hour retest interval comes back as a
//!   duplicate warning naming the earlier order (409) and goes through with
//!   a reason (H-075); a missing imaging answer is refused naming the
//!   question (H-076);
//! * a ward clerk is not offered ordering and cannot post an order (403).

use crate::common;
use crate::ui::{browser, csrf, sign_in};

use common::Env;
use reqwest::blocking::Client;

fn page(c: &Client, url: &str) -> String {
    let r = c.get(url).send().unwrap();
    assert_eq!(r.status(), 200, "GET {url}");
    r.text().unwrap()
}

fn post(c: &Client, root: &str, path: &str, form: &[(&str, &str)]) -> reqwest::blocking::Response {
    let token = csrf(root, c);
    let mut f: Vec<(&str, &str)> = vec![("csrf", token.as_str())];
    f.extend_from_slice(form);
    c.post(format!("{root}{path}")).form(&f).send().unwrap()
}

/// Every value of `attr="…"` in `html`, in order.
fn attrs(html: &str, attr: &str) -> Vec<String> {
    let key = format!("{attr}=\"");
    html.match_indices(&key)
        .map(|(i, _)| {
            let rest = &html[i + key.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

/// Reads a Code 128 (set B) barcode back from the SVG's bars: the module
/// pattern from the rectangles' x and width, then the symbology's table.
fn read_barcode(svg: &str) -> String {
    const TABLE: &str = "212222 222122 222221 121223 121322 131222 122213 122312 132212 221213 \
        221312 231212 112232 122132 122231 113222 123122 123221 223211 221132 221231 213212 \
        223112 312131 311222 321122 321221 312212 322112 322211 212123 212321 232121 111323 \
        131123 131321 112313 132113 132311 211313 231113 231311 112133 112331 132131 113123 \
        113321 133121 313121 211331 231131 213113 213311 213131 311123 311321 331121 312113 \
        312311 332111 314111 221411 431111 111224 111422 121124 121421 141122 141221 112214 \
        112412 122114 122411 142112 142211 241211 221114 413111 241112 134111 111242 121142 \
        121241 114212 124112 124211 411212 421112 421211 212141 214121 412121 111143 111341 \
        131141 114113 114311 411113 411311 113141 114131 311141 411131 211412 211214 211232";
    let table: Vec<&str> = TABLE.split_whitespace().collect();
    let bars = &svg[svg.find("<g").unwrap()..svg.find("</g>").unwrap()];
    let xs: Vec<usize> = attrs(bars, "x")
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    let ws: Vec<usize> = attrs(bars, "width")
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    let unit = *ws.iter().min().unwrap();
    // Runs: bar, space, bar, … in modules.
    let mut runs = Vec::new();
    for i in 0..xs.len() {
        runs.push(ws[i] / unit);
        if i + 1 < xs.len() {
            runs.push((xs[i + 1] - xs[i] - ws[i]) / unit);
        }
    }
    let mut values = Vec::new();
    for sym in runs.chunks(6) {
        let s: String = sym.iter().map(|w| w.to_string()).collect();
        if s.starts_with("233111") {
            break;
        }
        values.push(
            table
                .iter()
                .position(|p| *p == s)
                .unwrap_or_else(|| panic!("no Code 128 symbol {s}")),
        );
    }
    assert_eq!(values[0], 104, "start B");
    let (data, check) = (&values[1..values.len() - 1], values[values.len() - 1]);
    let sum: usize = 104
        + data
            .iter()
            .enumerate()
            .map(|(i, v)| (i + 1) * v)
            .sum::<usize>();
    assert_eq!(sum % 103, check, "check symbol");
    data.iter().map(|v| char::from((v + 32) as u8)).collect()
}

fn scenario(env: &Env) {
    let s = env.start_with(&["--demo"]);
    let root = s.root.clone();
    let doctor = browser();
    sign_in(env, &root, &doctor, "dr.watford");

    // A patient in a bed on a Watford ward: in the consultant's care.
    let board = page(&doctor, &format!("{root}/ui/beds/watford-w2"));
    let patient = attrs(&board, "href")
        .into_iter()
        .filter_map(|h| h.strip_prefix("/ui/patients/").map(str::to_owned))
        .find(|id| id != "new" && !id.contains(['/', '?']))
        .unwrap_or_else(|| panic!("{}: no patient on the board: {board}", env.name));
    let chart_url = format!("{root}/ui/patients/{patient}");
    let chart = page(&doctor, &chart_url);
    assert!(
        chart.contains(r#"data-testid="orders-section""#),
        "{}",
        env.name
    );
    assert!(
        chart.contains(r#"data-testid="order-tests""#),
        "{}",
        env.name
    );

    let form = page(&doctor, &format!("{chart_url}/order"));
    for name in [
        "t:path-fbc",
        "t:path-ue",
        "t:rad-cxr",
        "q:rad-cxr:clinical-indication",
    ] {
        assert!(
            form.contains(&format!(r#"name="{name}""#)),
            "{}: no {name}",
            env.name
        );
    }
    // An order set ticks its tests.
    let set = page(&doctor, &format!("{chart_url}/order?set=sepsis-screen"));
    assert!(
        set.contains(r#"id="t-micro-blood-culture" name="t:micro-blood-culture" type="checkbox" value="yes" checked"#),
        "{}: the sepsis screen does not tick blood cultures",
        env.name
    );

    let order_path = format!("/ui/patients/{patient}/order");
    let base = [
        ("t:path-fbc", "yes"),
        ("t:path-ue", "yes"),
        ("t:rad-cxr", "yes"),
        ("q:rad-cxr:pregnancy", "not-applicable"),
        (
            "q:rad-cxr:irmer-justification",
            "Suspected pneumonia: changes antibiotics",
        ),
        ("priority", "urgent"),
        ("details", "Fever and productive cough for five days"),
    ];
    // The X-ray without its clinical indication: refused, naming it.
    let r = post(&doctor, &root, &order_path, &base);
    assert_eq!(r.status(), 422, "{}", env.name);
    let html = r.text().unwrap();
    assert!(html.contains("Clinical indication"), "{}: {html}", env.name);
    assert!(
        html.contains(r#"name="t:path-fbc" type="checkbox" value="yes" checked"#),
        "the ticks are kept"
    );

    let mut full = base.to_vec();
    full.push((
        "q:rad-cxr:clinical-indication",
        "Right basal crackles, SpO2 91%",
    ));
    let r = post(&doctor, &root, &order_path, &full);
    assert_eq!(r.status(), 303, "{}: {}", env.name, r.text().unwrap());
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with("/ui/requisitions/R"), "{to}");
    let requisition = to
        .trim_start_matches("/ui/requisitions/")
        .split('?')
        .next()
        .unwrap()
        .to_owned();

    let rq = page(&doctor, &format!("{root}{to}"));
    assert_eq!(
        rq.matches(r#"data-testid="request""#).count(),
        3,
        "{}",
        env.name
    );
    assert!(rq.contains("Right basal crackles"), "the answers are shown");
    let shown: Vec<String> = rq
        .split(r#"data-testid="specimen-id">"#)
        .skip(1)
        .map(|t| t[..t.find('<').unwrap()].to_owned())
        .collect();
    assert_eq!(
        shown,
        vec![format!("{requisition}-1"), format!("{requisition}-2")],
        "{}",
        env.name
    );

    // The labels: one per tube; each barcode reads back as its specimen.
    let labels = page(
        &doctor,
        &format!("{root}/ui/requisitions/{requisition}/labels"),
    );
    let svgs: Vec<&str> = labels
        .split("<svg")
        .skip(1)
        .filter(|s| s.contains("data-barcode"))
        .map(|s| &s[..s.find("</svg>").unwrap()])
        .collect();
    assert_eq!(svgs.len(), 2, "{}", env.name);
    for (svg, want) in svgs.iter().zip(&shown) {
        assert_eq!(&read_barcode(svg), want, "{}", env.name);
    }
    assert!(labels.contains(r#"data-testid="label-nhs""#));
    assert!(labels.contains("/ui/static/orders.css"));
    let css = doctor
        .get(format!("{root}/ui/static/orders.css"))
        .send()
        .unwrap();
    assert_eq!(css.status(), 200);
    assert!(css.text().unwrap().contains("@media print"));

    // CRP twice within 24 hours: a duplicate, then with a reason.
    let crp = [
        ("t:path-crp", "yes"),
        ("priority", "routine"),
        ("details", "Monitoring response to antibiotics"),
    ];
    let r = post(&doctor, &root, &order_path, &crp);
    assert_eq!(r.status(), 303, "{}", env.name);
    let r = post(&doctor, &root, &order_path, &crp);
    assert_eq!(r.status(), 409, "{}", env.name);
    let html = r.text().unwrap();
    assert!(
        html.contains(r#"data-testid="duplicate-warning""#),
        "{html}"
    );
    assert!(html.contains("C-reactive protein"), "{html}");
    assert!(html.contains("Sanjay Mehta"), "who ordered it: {html}");
    let mut again = crp.to_vec();
    again.push((
        "override",
        "Deteriorating: repeat before the evening review",
    ));
    let r = post(&doctor, &root, &order_path, &again);
    assert_eq!(r.status(), 303, "{}: {}", env.name, r.text().unwrap());
    let chart = page(&doctor, &chart_url);
    assert!(
        chart.contains(&requisition),
        "{}: the chart lists the requisition",
        env.name
    );
    assert!(
        chart.matches("C-reactive protein").count() >= 2,
        "{}",
        env.name
    );

    // A ward clerk orders nothing.
    let clerk = browser();
    sign_in(env, &root, &clerk, "clerk.watford");
    let r = clerk
        .get(format!("{root}/ui/patients/{patient}/order"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 403, "{}", env.name);
    let r = post(&clerk, &root, &order_path, &crp);
    assert_eq!(r.status(), 403, "{}", env.name);
}

#[test]
fn ordering_from_the_chart_on_sqlite() {
    scenario(&Env::sqlite());
}

#[test]
fn ordering_from_the_chart_on_postgres() {
    let Some(env) = Env::postgres() else {
        return;
    };
    scenario(&env);
}
