//! The web UI over real HTTP (the browser flows are in tests/browser):
//!
//! * every route of `wardline_web::ROUTES` refuses a request without a
//!   session (pages redirect to sign-in with `next`, posts answer 401, the
//!   event stream and Wardline's static files 401; the design system's
//!   files, which the sign-in pages use, are public) and every post refuses
//!   a session without its CSRF token (403);
//! * pages carry the security headers and a script-tight CSP;
//! * registration through the form: an invalid NHS number is refused with
//!   the reason, a valid one lands on the new record, and the IG officer
//!   finds both the registration and the clerk's reads in the audit trail.

use crate::common;

use common::Env;
use reqwest::blocking::Client;
use serde_json::Value;

const DEMO_PASSWORD: &str = "wardline-demo-only";

pub(crate) fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

fn field(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no field {name} in {html}"));
    let rest = &html[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_owned()
}

fn concrete(path: &str) -> String {
    path.replace("{*file}", "wardline.css")
        .replace("{id}", "x")
        .replace("{task}", "x")
        .replace("{ward}", "x")
        .replace("{bed}", "x")
        .replace("{consent}", "x")
        .replace("{requisition}", "R0000001")
}

/// Signs in through the form; the client then holds the session cookie.
pub(crate) fn sign_in(env: &Env, root: &str, c: &Client, user: &str) {
    let html = c
        .get(format!("{root}/auth/login"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let code = env.cli(&["user", "code", user]);
    let r = c
        .post(format!("{root}/auth/login"))
        .form(&[
            ("request", field(&html, "request").as_str()),
            ("csrf", field(&html, "csrf").as_str()),
            ("username", user),
            ("password", DEMO_PASSWORD),
            ("code", code.trim()),
            ("action", "sign-in"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 303, "sign-in of {user}: {}", r.text().unwrap());
}

/// The `Practitioner` id of the position `c` is signed in as.
pub(crate) fn practitioner_of(s: &common::Server, c: &Client) -> String {
    let sess: Value = c
        .get(format!("{}/auth/session", s.root))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let position = sess["position"].as_str().expect("a position").to_owned();
    let role = s.get(&format!(
        "PractitionerRole/{}",
        position.trim_start_matches("PractitionerRole/")
    ));
    role.body["practitioner"]["reference"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", role.text))
        .trim_start_matches("Practitioner/")
        .to_owned()
}

pub(crate) fn csrf(root: &str, c: &Client) -> String {
    let v: Value = c
        .get(format!("{root}/auth/session"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    v["csrf_token"].as_str().unwrap().to_owned()
}

/// A page's HTML, which must answer 200.
pub(crate) fn page(c: &Client, url: &str) -> String {
    let r = c.get(url).send().unwrap();
    assert_eq!(r.status(), 200, "GET {url}");
    r.text().unwrap()
}

/// Posts a form to `root` + `path` with the session's CSRF token.
pub(crate) fn post_form(
    c: &Client,
    root: &str,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::blocking::Response {
    let token = csrf(root, c);
    let mut f: Vec<(&str, &str)> = vec![("csrf", token.as_str())];
    f.extend_from_slice(form);
    c.post(format!("{root}{path}")).form(&f).send().unwrap()
}

/// A redirect's `Location`.
pub(crate) fn location(r: &reqwest::blocking::Response) -> String {
    r.headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn web_ui_over_http() {
    let env = Env::sqlite();
    let s = env.start_with(&["--demo"]);
    let root = s.root.clone();

    // --- without a session --------------------------------------------------
    let anon = browser();
    for r in wardline_web::ROUTES {
        let url = format!("{root}{}", concrete(r.path));
        let resp = match r.method {
            "GET" => anon.get(&url).send().unwrap(),
            _ => anon.post(&url).form(&[("csrf", "x")]).send().unwrap(),
        };
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = resp.text().unwrap();
        match (r.method, r.path) {
            ("GET", "/ui/events" | "/ui/static/{*file}") => {
                assert_eq!(status, 401, "{} {}", r.method, r.path)
            }
            ("GET", "/ui/") => assert_eq!(status, 303, "{} {}", r.method, r.path),
            ("GET", _) => {
                assert_eq!(status, 303, "{} {}: {body}", r.method, r.path);
                assert!(
                    location.starts_with("/auth/login?next=%2Fui%2F"),
                    "{} {} → {location}",
                    r.method,
                    r.path
                );
            }
            _ => {
                assert_eq!(status, 401, "{} {}: {body}", r.method, r.path);
                assert!(body.contains("Sign in again"), "{body}");
            }
        }
    }

    // The design system's files are public (the sign-in pages use them
    // before there is a session); Wardline's own need one (the sweep above).
    let css = anon
        .get(format!("{root}/ui/static/nhsuk/nhsuk-frontend.min.css"))
        .send()
        .unwrap();
    assert_eq!(css.status(), 200);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let login = anon
        .get(format!("{root}/auth/login"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        login.contains("href=\"/ui/static/nhsuk/nhsuk-frontend.min.css?v="),
        "the sign-in page uses the design system: {login}"
    );

    // --- signed in, posts without the CSRF token ------------------------------
    let clerk = browser();
    sign_in(&env, &root, &clerk, "clerk.watford");
    for r in wardline_web::ROUTES.iter().filter(|r| r.method == "POST") {
        let resp = clerk
            .post(format!("{root}{}", concrete(r.path)))
            .form(&[("csrf", "not-the-token")])
            .send()
            .unwrap();
        assert_eq!(resp.status(), 403, "{} {}", r.method, r.path);
    }

    // --- a page and its headers ----------------------------------------------
    let page = clerk.get(format!("{root}/ui/patients")).send().unwrap();
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["cache-control"], "no-store");
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    let css = clerk
        .get(format!("{root}/ui/static/nhsuk/nhsuk-frontend.min.css"))
        .send()
        .unwrap();
    assert_eq!(css.status(), 200);
    assert!(css.headers()["etag"].to_str().unwrap().starts_with('"'));

    // --- register through the form --------------------------------------------
    let token = csrf(&root, &clerk);
    let form = |nhs: &str| {
        vec![
            ("csrf", token.clone()),
            ("nhs_number", nhs.to_owned()),
            ("given", "Ivy".to_owned()),
            ("family", "Formtest".to_owned()),
            ("birth_date", "1948-02-29".to_owned()),
            ("gender", "female".to_owned()),
            ("address_line", "3 Church Lane".to_owned()),
            ("city", "Watford".to_owned()),
            ("postcode", "WD17 1AA".to_owned()),
            ("phone", String::new()),
        ]
    };
    let bad = clerk
        .post(format!("{root}/ui/patients/new"))
        .form(&form("943 476 5918"))
        .send()
        .unwrap();
    assert_eq!(bad.status(), 422);
    let text = bad.text().unwrap();
    assert!(text.contains("not a valid NHS number"), "{text}");
    assert!(text.contains("Formtest"), "the answers are kept: {text}");

    let ok = clerk
        .post(format!("{root}/ui/patients/new"))
        .form(&form("943 476 5919"))
        .send()
        .unwrap();
    assert_eq!(ok.status(), 303, "{}", ok.text().unwrap_or_default());
    let location = ok.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.ends_with("?done=registered"), "{location}");
    let id = location
        .trim_start_matches("/ui/patients/")
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let chart = clerk.get(format!("{root}{location}")).send().unwrap();
    assert_eq!(chart.status(), 200);
    let html = chart.text().unwrap();
    assert!(html.contains("943 476 5919"), "{html}");

    // --- the chart's duplicate check is loaded after the page --------------------
    // The same person again, without an NHS number, the clerk overriding
    // the warning.
    let mut again = form("");
    again.push(("confirm", "yes".to_owned()));
    let twin = clerk
        .post(format!("{root}/ui/patients/new"))
        .form(&again)
        .send()
        .unwrap();
    assert_eq!(twin.status(), 303, "{}", twin.text().unwrap_or_default());
    assert!(
        !html.contains(r#"data-testid="chart-duplicates""#),
        "not run inline: {html}"
    );
    let chart = clerk
        .get(format!("{root}/ui/patients/{id}"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        chart.contains(&format!(
            r#"data-fragment="/ui/patients/{id}?fragment=duplicates""#
        )),
        "{chart}"
    );
    assert!(
        chart.contains(&format!(r#"href="/ui/patients/{id}?check=duplicates""#)),
        "a link for browsers without the script: {chart}"
    );
    let panel = clerk
        .get(format!("{root}/ui/patients/{id}?fragment=duplicates"))
        .send()
        .unwrap();
    assert_eq!(panel.status(), 200);
    let panel = panel.text().unwrap();
    assert!(
        panel.contains(r#"data-testid="chart-duplicates""#),
        "{panel}"
    );
    assert!(
        panel.contains("Review and merge into this record"),
        "{panel}"
    );
    assert!(!panel.contains("<html"), "a fragment, not a page: {panel}");
    let inline = clerk
        .get(format!("{root}/ui/patients/{id}?check=duplicates"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        inline.contains(r#"data-testid="chart-duplicates""#),
        "{inline}"
    );
    assert!(!inline.contains("data-fragment="), "{inline}");
    let unknown = clerk
        .get(format!("{root}/ui/patients/{id}?fragment=nonsense"))
        .send()
        .unwrap();
    assert_eq!(unknown.status(), 404);

    // --- the IG officer sees it all in the audit trail ---------------------------
    let ig = env.cli(&[
        "token",
        "--user",
        "ig.officer",
        "--scope",
        "user/AuditEvent.rs",
    ]);
    let audit: Value = common::authorised_client(ig.trim())
        .get(s.url(&format!("AuditEvent?patient={id}&_count=100")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let events = common::entries(&audit);
    let actions: Vec<&str> = events
        .iter()
        .filter_map(|e| e["resource"]["action"].as_str())
        .collect();
    assert!(actions.contains(&"C"), "registration audited: {actions:?}");
    assert!(
        actions.contains(&"R") || actions.contains(&"E"),
        "{actions:?}"
    );
    assert!(
        events
            .iter()
            .all(|e| e["resource"]["agent"][0]["altId"] == "clerk.watford"),
        "every event names the clerk: {audit}"
    );
}
