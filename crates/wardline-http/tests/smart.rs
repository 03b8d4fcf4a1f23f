//! SMART on FHIR and sign-in: the real router on 127.0.0.1 over a real SQLite
//! store in a temp dir, with the real directory, driven with reqwest.

use std::sync::Arc;

use reqwest::blocking::{Client, Response};
use reqwest::redirect::Policy;
use serde_json::{Value, json};
use wardline_auth::directory::{Client as SmartClient, Directory};
use wardline_auth::rbac::Role;
use wardline_auth::{pkce, testkit, totp};
use wardline_core::{FhirService, OAuthUris, ServiceConfig, Trusted};

const PASSWORD: &str = "correct horse battery staple 42";
const REDIRECT: &str = "http://app.example/callback";
const NHS: &str = "9434765919";

struct Server {
    base: String,
    dir: Arc<Directory>,
    /// TOTP secret of `nurse`.
    secret: Vec<u8>,
    nurse_pos: String,
    clerk_pos: String,
    /// Signs client assertions of backend client `svc`.
    sign: testkit::Signer,
    _dir: tempfile::TempDir,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

fn op() -> Trusted {
    Trusted::operator("test")
}

fn put(svc: &FhirService, v: Value) {
    let path = vec![
        v["resourceType"].as_str().unwrap().to_owned(),
        v["id"].as_str().unwrap().to_owned(),
    ];
    let r = svc.handle(
        wardline_core::FhirRequest {
            method: wardline_core::Method::Put,
            path,
            query: vec![],
            headers: wardline_core::RequestHeaders {
                content_type: Some("application/fhir+json".into()),
                ..Default::default()
            },
            body: Some(v.to_string().into_bytes()),
        },
        &op(),
    );
    assert!(r.status < 300, "{} {:?}", r.status, r.body);
}

fn start() -> Server {
    let tmp = tempfile::tempdir().unwrap();
    let store = wardline_store_sqlite::SqliteStore::open(&tmp.path().join("w.db")).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let service = Arc::new(FhirService::new(
        Arc::new(store),
        ServiceConfig {
            base_url: format!("{base}/fhir"),
            oauth: Some(OAuthUris {
                authorize: format!("{base}/auth/authorize"),
                token: format!("{base}/auth/token"),
            }),
            ..ServiceConfig::default()
        },
    ));
    put(
        &service,
        json!({"resourceType": "Organization", "id": "trust", "name": "Test Trust"}),
    );
    put(
        &service,
        json!({"resourceType": "Location", "id": "ward1", "name": "Ward 1", "managingOrganization": {"reference": "Organization/trust"}}),
    );
    put(
        &service,
        json!({"resourceType": "Patient", "id": "pat1", "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": NHS}], "name": [{"family": "Jones"}]}),
    );
    let dir = Arc::new(Directory::open(service.clone(), "trust").unwrap());
    let (_, secret) = dir
        .add_user(&op(), "nurse", "Nora Nurse", PASSWORD)
        .unwrap();
    let nurse_pos = dir
        .grant(&op(), "nurse", Role::StaffNurse, "trust", &["ward1".into()])
        .unwrap();
    let clerk_pos = dir
        .grant(&op(), "nurse", Role::WardClerk, "trust", &["ward1".into()])
        .unwrap();
    dir.add_user(&op(), "solo", "Sam Solo", PASSWORD).unwrap();
    dir.grant(&op(), "solo", Role::WardClerk, "trust", &["ward1".into()])
        .unwrap();
    dir.register_client(
        &op(),
        &SmartClient {
            client_id: "app".into(),
            name: "Test App".into(),
            redirect_uris: vec![REDIRECT.into()],
            scope: "launch/patient patient/*.rs user/*.rs".into(),
            jwks: None,
        },
    )
    .unwrap();
    let (jwks, sign) = testkit::es384_test_client("k1");
    dir.register_client(
        &op(),
        &SmartClient {
            client_id: "svc".into(),
            name: "Backend".into(),
            redirect_uris: vec![],
            scope: "system/*.rs".into(),
            jwks: Some(jwks),
        },
    )
    .unwrap();
    let (tx_stop, rx_stop) = tokio::sync::oneshot::channel::<()>();
    let d = dir.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let auth = Arc::new(wardline_http::BearerAuthenticator::new(d.clone()));
            let app = wardline_http::app(
                service,
                auth,
                wardline_http::Options {
                    directory: Some(d),
                    ..wardline_http::Options::default()
                },
            );
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            wardline_http::serve_app(listener, app, None, async {
                let _ = rx_stop.await;
            })
            .await
            .unwrap();
        });
    });
    Server {
        base,
        dir,
        secret: totp::base32_decode(&secret).unwrap(),
        nurse_pos,
        clerk_pos,
        sign,
        _dir: tmp,
        _shutdown: tx_stop,
    }
}

fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap()
}

fn now() -> i64 {
    wardline_fhir::datetime::now_ms() / 1000
}

/// The value of the first `name="NAME" value="…"` in a page.
fn field(html: &str, name: &str) -> String {
    let pat = format!("name=\"{name}\" value=\"");
    let i = html
        .find(&pat)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + pat.len();
    html[i..].split('"').next().unwrap().to_owned()
}

fn location(r: &Response) -> String {
    r.headers()["location"].to_str().unwrap().to_owned()
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    form_urlencoded_pairs(q)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn form_urlencoded_pairs(q: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{q}"))
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

const VERIFIER: &str = "a-very-long-code-verifier-with-enough-entropy-0123456789";

fn authorize_url(s: &Server, redirect: &str, scope: &str) -> String {
    let mut u = reqwest::Url::parse(&format!("{}/auth/authorize", s.base)).unwrap();
    u.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "app")
        .append_pair("redirect_uri", redirect)
        .append_pair("scope", scope)
        .append_pair("state", "xyz")
        .append_pair("aud", &format!("{}/fhir", s.base))
        .append_pair("code_challenge", &pkce::challenge_s256(VERIFIER))
        .append_pair("code_challenge_method", "S256");
    u.to_string()
}

/// Signs in through /auth/authorize as `nurse` in the ward-clerk position
/// with patient `pat1`; returns the redirect location.
fn get_code(s: &Server, c: &Client, totp_at: i64) -> String {
    let r = c
        .get(authorize_url(s, REDIRECT, "launch/patient patient/*.rs"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().unwrap();
    assert!(html.contains("autocomplete=\"one-time-code\""), "{html}");
    let (rid, csrf) = (field(&html, "request"), field(&html, "csrf"));
    let code = totp::code_at(&s.secret, totp_at, 6);
    let r = c
        .post(format!("{}/auth/authorize", s.base))
        .form(&[
            ("request", rid.as_str()),
            ("csrf", csrf.as_str()),
            ("username", "nurse"),
            ("password", PASSWORD),
            ("code", code.as_str()),
            ("action", "sign-in"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().unwrap();
    assert!(html.contains("type=\"radio\""), "{html}");
    assert!(html.contains("name=\"patient\""), "{html}");
    let r = c
        .post(format!("{}/auth/authorize", s.base))
        .form(&[
            ("request", rid.as_str()),
            ("csrf", csrf.as_str()),
            ("position", s.clerk_pos.as_str()),
            ("patient", NHS),
            ("action", "continue"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 302, "{}", r.text().unwrap());
    location(&r)
}

fn exchange(s: &Server, code: &str, verifier: &str) -> Response {
    Client::new()
        .post(format!("{}/auth/token", s.base))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", "app"),
            ("code_verifier", verifier),
        ])
        .send()
        .unwrap()
}

#[test]
fn authorization_code_with_pkce() {
    let s = start();
    let c = browser();
    let loc = get_code(&s, &c, now());
    assert!(loc.starts_with(REDIRECT), "{loc}");
    assert_eq!(query_param(&loc, "state").as_deref(), Some("xyz"));
    let code = query_param(&loc, "code").unwrap();

    // A wrong verifier fails, and burns the code.
    let r = exchange(&s, &code, "another-verifier-that-is-long-enough-0123456789");
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["error"], "invalid_grant");
    let r = exchange(&s, &code, VERIFIER);
    assert_eq!(r.status(), 400);

    // A fresh code (next TOTP step) exchanges once.
    let loc = get_code(&s, &c, now() + 30);
    let code = query_param(&loc, "code").unwrap();
    let r = exchange(&s, &code, VERIFIER);
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let t: Value = r.json().unwrap();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 3600);
    assert_eq!(t["patient"], "pat1");
    assert!(t["scope"].as_str().unwrap().contains("patient/*.rs"), "{t}");
    let token = t["access_token"].as_str().unwrap();
    let r = exchange(&s, &code, VERIFIER);
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["error"], "invalid_grant");

    let r = Client::new()
        .get(format!("{}/fhir/Patient/pat1", s.base))
        .bearer_auth(token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
}

#[test]
fn authorize_refusals() {
    let s = start();
    let c = browser();
    // An unregistered redirect URI: an error page, never a redirect.
    let r = c
        .get(authorize_url(&s, "http://evil.example/cb", "patient/*.rs"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    // Without PKCE: redirected with invalid_request.
    let url = authorize_url(&s, REDIRECT, "patient/*.rs").replace("code_challenge_method=S256", "");
    let r = c.get(url).send().unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(
        query_param(&location(&r), "error").as_deref(),
        Some("invalid_request")
    );
    // Bad CSRF token: refused.
    let html = c
        .get(authorize_url(&s, REDIRECT, "patient/*.rs"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let rid = field(&html, "request");
    let r = c
        .post(format!("{}/auth/authorize", s.base))
        .form(&[
            ("request", rid.as_str()),
            ("csrf", "forged"),
            ("username", "nurse"),
            ("password", PASSWORD),
            ("code", &totp::code_at(&s.secret, now(), 6)),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    // The right token without the pre-auth cookie: refused too.
    let r = Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/auth/authorize", s.base))
        .form(&[("request", rid.as_str()), ("csrf", &field(&html, "csrf"))])
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    // Cancel: access_denied to the app.
    let r = c
        .post(format!("{}/auth/authorize", s.base))
        .form(&[
            ("request", rid.as_str()),
            ("csrf", &field(&html, "csrf")),
            ("action", "cancel"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 302);
    let loc = location(&r);
    assert_eq!(query_param(&loc, "error").as_deref(), Some("access_denied"));
    assert_eq!(query_param(&loc, "state").as_deref(), Some("xyz"));
}

/// Opens /auth/login; returns (request id, csrf).
fn login_form(s: &Server, c: &Client) -> (String, String) {
    let html = c
        .get(format!("{}/auth/login", s.base))
        .send()
        .unwrap()
        .text()
        .unwrap();
    (field(&html, "request"), field(&html, "csrf"))
}

#[test]
fn wrong_password_and_lockout() {
    let s = start();
    let c = browser();
    let (rid, csrf) = login_form(&s, &c);
    for _ in 0..5 {
        let r = c
            .post(format!("{}/auth/login", s.base))
            .form(&[
                ("request", rid.as_str()),
                ("csrf", csrf.as_str()),
                ("username", "nurse"),
                ("password", "wrong password entirely"),
                ("code", "000000"),
            ])
            .send()
            .unwrap();
        assert_eq!(r.status(), 401);
        assert!(r.text().unwrap().contains("not right"));
    }
    let r = c
        .post(format!("{}/auth/login", s.base))
        .form(&[
            ("request", rid.as_str()),
            ("csrf", csrf.as_str()),
            ("username", "nurse"),
            ("password", PASSWORD),
            ("code", &totp::code_at(&s.secret, now(), 6)),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().unwrap().contains("locked"));
}

/// Issue 23: a code signs in once; used again (with the right password) the
/// page says so at the code field, instead of the generic failure.
#[test]
fn a_used_code_is_refused_saying_so() {
    let s = start();
    let c = browser();
    let code = totp::code_at(&s.secret, now(), 6);
    let attempt = |code: &str| {
        let (rid, csrf) = login_form(&s, &c);
        c.post(format!("{}/auth/login", s.base))
            .form(&[
                ("request", rid.as_str()),
                ("csrf", csrf.as_str()),
                ("username", "nurse"),
                ("password", PASSWORD),
                ("code", code),
                ("action", "sign-in"),
            ])
            .send()
            .unwrap()
    };
    let first = attempt(&code);
    assert!(
        first.status().is_success() || first.status().is_redirection(),
        "{}",
        first.status()
    );
    let again = attempt(&code);
    assert_eq!(again.status(), 401);
    let html = again.text().unwrap();
    assert!(
        html.contains(
            "<a href=\"#code\">This security code has already been used; wait for the next one"
        ),
        "{html}"
    );
    assert!(html.contains("id=\"code-error\""), "{html}");
    // A wrong password with the same code stays the generic failure: the
    // page never says which part was right to someone without the password.
    let (rid, csrf) = login_form(&s, &c);
    let r = c
        .post(format!("{}/auth/login", s.base))
        .form(&[
            ("request", rid.as_str()),
            ("csrf", csrf.as_str()),
            ("username", "nurse"),
            ("password", "not the password"),
            ("code", code.as_str()),
            ("action", "sign-in"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().unwrap().contains("not right"));
}

#[test]
fn sign_in_attempts_are_rate_limited() {
    let s = start();
    let c = Client::new();
    for i in 0..11 {
        let r = c
            .post(format!("{}/auth/token", s.base))
            .form(&[("grant_type", "password")])
            .send()
            .unwrap();
        if i < 10 {
            assert_eq!(r.status(), 400);
            assert_eq!(
                r.json::<Value>().unwrap()["error"],
                "unsupported_grant_type"
            );
        } else {
            assert_eq!(r.status(), 429);
            assert!(r.headers().contains_key("retry-after"));
        }
    }
}

fn client_credentials(s: &Server, claims: &Value, scope: &str) -> Response {
    Client::new()
        .post(format!("{}/auth/token", s.base))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &(s.sign)(claims)),
        ])
        .send()
        .unwrap()
}

#[test]
fn client_credentials_with_es384_assertion() {
    let s = start();
    let token_url = format!("{}/auth/token", s.base);
    let claims = testkit::assertion_claims("svc", &token_url, now());
    let r = client_credentials(&s, &claims, "system/Patient.rs system/*.cruds user/*.rs");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let t: Value = r.json().unwrap();
    assert_eq!(t["scope"], "system/Patient.rs system/*.rs", "{t}");
    let token = t["access_token"].as_str().unwrap().to_owned();
    // The same assertion again: replayed jti.
    let r = client_credentials(&s, &claims, "system/*.rs");
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().unwrap()["error"], "invalid_client");
    // Wrong audience.
    let claims = testkit::assertion_claims("svc", "http://elsewhere/token", now());
    let r = client_credentials(&s, &claims, "system/*.rs");
    assert_eq!(r.status(), 401);
    // No system scope the client may have.
    let claims = testkit::assertion_claims("svc", &token_url, now());
    let r = client_credentials(&s, &claims, "user/*.rs");
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["error"], "invalid_scope");

    let r = Client::new()
        .get(format!("{}/fhir/Patient?identifier={NHS}", s.base))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let bundle: Value = r.json().unwrap();
    assert_eq!(
        bundle["entry"].as_array().map(Vec::len),
        Some(1),
        "{bundle}"
    );
}

/// Signs `nurse` in to a web session in `position`; returns the CSRF token.
fn session_login(s: &Server, c: &Client, position: &str, totp_at: i64) -> String {
    let (rid, csrf) = login_form(s, c);
    let r = c
        .post(format!("{}/auth/login", s.base))
        .form(&[
            ("request", rid.as_str()),
            ("csrf", csrf.as_str()),
            ("username", "nurse"),
            ("password", PASSWORD),
            ("code", &totp::code_at(&s.secret, totp_at, 6)),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(format!("{}/auth/login", s.base))
        .form(&[
            ("request", rid.as_str()),
            ("csrf", csrf.as_str()),
            ("position", position),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("wardline_session="))
        .unwrap();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/"),
        "{cookie}"
    );
    let info: Value = c
        .get(format!("{}/auth/session", s.base))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(info["username"], "nurse");
    assert_eq!(info["position"], position);
    info["csrf_token"].as_str().unwrap().to_owned()
}

#[test]
fn web_session_cookie_and_csrf() {
    let s = start();
    let c = browser();
    let csrf = session_login(&s, &c, &s.clerk_pos, now());
    let r = c
        .get(format!("{}/fhir/Patient/pat1", s.base))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let new_patient = json!({"resourceType": "Patient", "name": [{"family": "New"}]}).to_string();
    let r = c
        .post(format!("{}/fhir/Patient", s.base))
        .header("content-type", "application/fhir+json")
        .body(new_patient.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .post(format!("{}/fhir/Patient", s.base))
        .header("content-type", "application/fhir+json")
        .header("x-csrf-token", &csrf)
        .body(new_patient)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    // Sign-out needs the token; afterwards the cookie is worthless.
    let r = c.post(format!("{}/auth/logout", s.base)).send().unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .post(format!("{}/auth/logout", s.base))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = c
        .get(format!("{}/fhir/Patient/pat1", s.base))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[test]
fn break_glass_endpoint() {
    let s = start();
    let c = browser();
    let csrf = session_login(&s, &c, &s.nurse_pos, now());
    let url = format!("{}/auth/break-glass", s.base);
    let r = Client::new()
        .post(&url)
        .json(&json!({"patient": "pat1", "reason": "Collapsed in the car park", "minutes": 30}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .post(&url)
        .json(&json!({"patient": "pat1", "reason": "Collapsed in the car park", "minutes": 30}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 403, "the session needs its CSRF token");
    let r = c
        .post(&url)
        .header("x-csrf-token", &csrf)
        .json(&json!({"patient": "pat1", "reason": "short", "minutes": 30}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().unwrap()["resourceType"],
        "OperationOutcome"
    );
    let r = c
        .post(&url)
        .header("x-csrf-token", &csrf)
        .json(&json!({"patient": "pat1", "reason": "Collapsed in the car park", "minutes": 30}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().unwrap();
    assert_eq!(v["patient"], "pat1");
    assert!(v["expires"].as_str().unwrap().ends_with('Z'));

    // A ward clerk may not (bearer token, form body).
    let token = s
        .dir
        .issue_user_token(
            "nurse",
            &s.clerk_pos,
            &"user/*.rs".parse().unwrap(),
            None,
            None,
            300,
        )
        .unwrap();
    let r = Client::new()
        .post(&url)
        .bearer_auth(token)
        .form(&[("patient", "pat1"), ("reason", "Collapsed in the car park")])
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[test]
fn single_position_goes_straight_through() {
    let s = start();
    let c = browser();
    let (rid, csrf) = login_form(&s, &c);
    let secret = s.dir.account("solo").unwrap().unwrap().totp_secret;
    let code = totp::code_at(&totp::base32_decode(&secret).unwrap(), now(), 6);
    let r = c
        .post(format!("{}/auth/login", s.base))
        .form(&[
            ("request", rid.as_str()),
            ("csrf", csrf.as_str()),
            ("username", "solo"),
            ("password", PASSWORD),
            ("code", code.as_str()),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    let html = c
        .get(format!("{}/auth/login", s.base))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        html.contains("signed in as <strong>solo</strong>"),
        "{html}"
    );
}

#[test]
fn sign_in_pages_are_in_the_nhs_design_system() {
    let s = start();
    let c = browser();
    let r = c.get(format!("{}/auth/login", s.base)).send().unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("style-src 'self';") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = r.text().unwrap();
    // The design system's stylesheet, linked (never inline), and its shell.
    assert!(
        html.contains("<link rel=\"stylesheet\" href=\"/ui/static/nhsuk/nhsuk-frontend.min.css?v="),
        "{html}"
    );
    assert!(html.contains("<header class=\"nhsuk-header\""), "{html}");
    assert!(html.contains("nhsuk-header__service-name"), "{html}");
    assert!(html.contains("<footer class=\"nhsuk-footer\""), "{html}");
    assert!(
        html.contains("href=\"#maincontent\""),
        "a skip link: {html}"
    );
    assert!(
        !html.contains("<style") && !html.contains("style=\""),
        "{html}"
    );
    assert!(!html.contains("nhsuk-error-summary"), "{html}");
    for id in ["username", "password", "code"] {
        assert!(
            html.contains(&format!("<label class=\"nhsuk-label\" for=\"{id}\">")),
            "a label for {id}: {html}"
        );
    }
    let (rid, csrf) = (field(&html, "request"), field(&html, "csrf"));

    // A wrong password: the form again, with the error summary linking to
    // the password field and the message beside it.
    let r = c
        .post(format!("{}/auth/login", s.base))
        .form(&[
            ("request", rid.as_str()),
            ("csrf", csrf.as_str()),
            ("username", "nurse"),
            ("password", "not the password"),
            ("code", "123456"),
            ("action", "sign-in"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let html = r.text().unwrap();
    assert!(
        html.contains("<title>Error: Sign in – Wardline</title>"),
        "{html}"
    );
    assert!(html.contains("class=\"nhsuk-error-summary\""), "{html}");
    assert!(html.contains("There is a problem"), "{html}");
    assert!(
        html.contains(
            "<a href=\"#password\">The user name, password or security code is not right."
        ),
        "the summary names the field: {html}"
    );
    assert!(html.contains("id=\"password-error\""), "{html}");
    assert!(
        html.contains("aria-describedby=\"password-error\""),
        "the message is tied to the field: {html}"
    );
    assert!(html.contains("nhsuk-form-group--error"), "{html}");
    assert!(
        html.contains("value=\"nurse\""),
        "the user name is kept: {html}"
    );

    // Nothing entered: each field says what it needs.
    let r = c
        .post(format!("{}/auth/login", s.base))
        .form(&[
            ("request", rid.as_str()),
            ("csrf", csrf.as_str()),
            ("action", "sign-in"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let html = r.text().unwrap();
    for (id, says) in [
        ("username", "Enter your user name"),
        ("password", "Enter your password"),
        ("code", "Enter the 6-digit security code"),
    ] {
        assert!(
            html.contains(&format!("<a href=\"#{id}\">{says}")),
            "{id}: {html}"
        );
        assert!(html.contains(&format!("id=\"{id}-error\"")), "{id}: {html}");
    }
}

#[test]
fn discovery_security_headers_and_protected_routes() {
    let s = start();
    let c = browser();
    for path in [
        "/.well-known/smart-configuration",
        "/fhir/.well-known/smart-configuration",
    ] {
        let r = c.get(format!("{}{path}", s.base)).send().unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().unwrap();
        assert_eq!(
            v["authorization_endpoint"],
            format!("{}/auth/authorize", s.base)
        );
        assert_eq!(v["token_endpoint"], format!("{}/auth/token", s.base));
        assert_eq!(v["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(v["response_types_supported"], json!(["code"]));
        assert_eq!(
            v["token_endpoint_auth_signing_alg_values_supported"],
            json!(["RS384", "ES384"])
        );
        let caps = v["capabilities"].as_array().unwrap();
        for cap in [
            "launch-standalone",
            "client-public",
            "client-confidential-asymmetric",
            "context-standalone-patient",
            "permission-v2",
        ] {
            assert!(caps.contains(&json!(cap)), "{cap}");
        }
        assert!(!caps.contains(&json!("sso-openid-connect")));
    }
    let meta: Value = c
        .get(format!("{}/fhir/metadata", s.base))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let sec = &meta["rest"][0]["security"];
    assert_eq!(sec["service"][0]["coding"][0]["code"], "SMART-on-FHIR");
    assert_eq!(
        sec["extension"][0]["extension"][1]["valueUri"],
        format!("{}/auth/token", s.base)
    );

    let r = c.get(format!("{}/healthz", s.base)).send().unwrap();
    let h = r.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(h.contains_key("content-security-policy"));
    assert!(!h.contains_key("strict-transport-security"));
    let r = c.get(format!("{}/auth/login", s.base)).send().unwrap();
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    // Scripts and styles from this origin only (the design system's and the
    // UI's files); nothing inline, not even by hash; nothing external.
    assert!(
        csp.contains("style-src 'self';")
            && csp.contains("script-src 'self';")
            && !csp.contains("unsafe-inline")
            && !csp.contains("sha256-")
            && !csp.contains("http"),
        "{csp}"
    );

    for (method, path) in wardline_http::ROUTES
        .iter()
        .filter(|r| !r.open)
        .map(|r| (r.method, r.path.replace("{*rest}", "Patient")))
        .chain([("GET", "/no/such/thing".to_owned())])
    {
        let url = format!("{}{path}", s.base);
        let r = match method {
            "POST" => Client::new().post(url),
            _ => Client::new().get(url),
        }
        .send()
        .unwrap();
        assert_eq!(r.status(), 401, "{method} {path}");
    }
}

#[test]
fn tls() {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let cert_pem = cert.cert.pem();
    std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
    let store = wardline_store_sqlite::SqliteStore::open(&dir.path().join("w.db")).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx_stop, rx_stop) = tokio::sync::oneshot::channel::<()>();
    let paths = dir.path().to_owned();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let service = Arc::new(FhirService::new(
                Arc::new(store),
                ServiceConfig {
                    base_url: format!("https://{addr}/fhir"),
                    ..ServiceConfig::default()
                },
            ));
            let dir = Arc::new(Directory::open(service.clone(), "trust").unwrap());
            let auth = Arc::new(wardline_http::BearerAuthenticator::new(dir.clone()));
            let app = wardline_http::app(
                service,
                auth,
                wardline_http::Options {
                    directory: Some(dir),
                    tls: true,
                    ..wardline_http::Options::default()
                },
            );
            let tls = wardline_http::tls_config(&paths.join("cert.pem"), &paths.join("key.pem"))
                .await
                .unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            wardline_http::serve_app(listener, app, Some(tls), async {
                let _ = rx_stop.await;
            })
            .await
            .unwrap();
        });
    });
    let c = Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let mut last = None;
    for _ in 0..50 {
        match c.get(format!("https://{addr}/healthz")).send() {
            Ok(r) => {
                last = Some(r);
                break;
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
    let r = last.expect("the TLS server answers");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age=")
    );
    // Plain HTTP to the TLS port does not get an answer.
    assert!(
        Client::new()
            .get(format!("http://{addr}/healthz"))
            .send()
            .map(|r| r.status() != 200)
            .unwrap_or(true)
    );
    drop(tx_stop);
}
