//! HTTP adapter: axum routes for the FHIR API, content negotiation, headers,
//! `/healthz`, `/metrics`.
//!
//! Thin by design: a request under `/fhir` becomes a [`FhirRequest`], runs on
//! tokio's blocking pool (the store is synchronous), and the [`FhirResponse`]
//! becomes HTTP. Nothing here knows FHIR semantics beyond media types.
//!
//! Contract: every request the server answers passes through here — it is
//! authenticated (an [`Authenticator`], by default [`BearerAuthenticator`])
//! unless its route is open, and every response carries the security
//! headers (`nosniff`, `X-Frame-Options`, `Referrer-Policy`, a strict
//! Content-Security-Policy, HSTS over TLS). The whole surface is one table,
//! [`ROUTES`]: the FHIR API, `/healthz` and `/metrics` are served here; the
//! authorization server (`wardline-auth-server`: discovery, `/auth/…`, web
//! sessions; it answers 503 when there is no directory) is mounted beside
//! them, and the web UI (`wardline-web`, given as a router) under `/ui`. Anything not open
//! answers 401 without credentials. [`serve_app`] serves it, over TLS when
//! asked, with the timeouts and connection limits of [`connections`] (issue
//! 21: no slow or idle client holds a connection for long, no client address
//! holds more than its share).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod bearer;
pub mod connections;

pub use bearer::BearerAuthenticator;
pub use connections::ConnectionConfig;
pub use wardline_auth_server::{
    DEFAULT_ATTEMPTS_PER_MINUTE, Peer, RouteInfo, SESSION_SCOPE, principal_for,
};

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method as HttpMethod, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, get};
use serde_json::{Value, json};
use wardline_auth::directory::Directory;
use wardline_core::{
    Access, Body as FhirBody, FhirRequest, FhirResponse, FhirService, Method, PreferReturn,
    RequestHeaders, Trusted,
};
use wardline_fhir::FhirError;
use wardline_fhir::search::Handling;

const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";
/// Largest accepted request body (transaction Bundles can be large).
pub const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// Request counters for `/metrics`.
#[derive(Default)]
pub struct Metrics {
    /// Request counts by method (see [`METHODS`]) and status class (1xx..5xx).
    by_class: [[AtomicU64; 6]; 7],
    /// Latency histogram buckets (seconds): 0.001, 0.005, 0.025, 0.1, 0.5, 2.5, +Inf.
    buckets: [AtomicU64; 7],
    sum_micros: AtomicU64,
}

const BUCKETS: [f64; 6] = [0.001, 0.005, 0.025, 0.1, 0.5, 2.5];
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OTHER"];

impl Metrics {
    fn observe(&self, method: &HttpMethod, status: u16, secs: f64) {
        let class = usize::from(status / 100).min(5);
        let m = METHODS
            .iter()
            .position(|m| *m == method.as_str())
            .unwrap_or(METHODS.len() - 1);
        self.by_class[m][class].fetch_add(1, Ordering::Relaxed);
        let i = BUCKETS.iter().position(|b| secs <= *b).unwrap_or(6);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, backend: &str) -> String {
        let mut s = String::new();
        s.push_str(
            "# HELP wardline_build_info Build information.\n# TYPE wardline_build_info gauge\n",
        );
        s.push_str(&format!(
            "wardline_build_info{{version=\"{}\",backend=\"{backend}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        ));
        s.push_str("# HELP wardline_http_requests_total HTTP requests by method and status class.\n# TYPE wardline_http_requests_total counter\n");
        for (m, row) in METHODS.iter().zip(&self.by_class) {
            for (i, c) in row.iter().enumerate().skip(1) {
                let n = c.load(Ordering::Relaxed);
                if n > 0 {
                    s.push_str(&format!(
                        "wardline_http_requests_total{{method=\"{m}\",class=\"{i}xx\"}} {n}\n"
                    ));
                }
            }
        }
        s.push_str("# HELP wardline_http_request_duration_seconds Request latency.\n# TYPE wardline_http_request_duration_seconds histogram\n");
        let mut cum = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cum += self.buckets[i].load(Ordering::Relaxed);
            s.push_str(&format!(
                "wardline_http_request_duration_seconds_bucket{{le=\"{b}\"}} {cum}\n"
            ));
        }
        cum += self.buckets[6].load(Ordering::Relaxed);
        s.push_str(&format!(
            "wardline_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {cum}\n"
        ));
        s.push_str(&format!(
            "wardline_http_request_duration_seconds_sum {}\n",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        ));
        s.push_str(&format!(
            "wardline_http_request_duration_seconds_count {cum}\n"
        ));
        s
    }
}

/// More Prometheus text appended to `/metrics` (other subsystems' counters,
/// e.g. the HL7 engine's).
pub type ExtraMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// Who is calling: turns a request's credentials into the [`Access`] the
/// FHIR service checks and audits with. A request it refuses gets its error
/// (401 with `WWW-Authenticate: Bearer` when there are no valid credentials).
pub trait Authenticator: Send + Sync {
    /// Credentials of a request whose method is not known: treated as
    /// state-changing (a session cookie then needs its CSRF token).
    fn authenticate(
        &self,
        headers: &HeaderMap,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Box<dyn Access>, FhirError>;

    /// Credentials of a request with this method (GET and HEAD are safe).
    fn authenticate_request(
        &self,
        method: &HttpMethod,
        headers: &HeaderMap,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Box<dyn Access>, FhirError> {
        let _ = method;
        self.authenticate(headers, peer)
    }
}

const fn route(
    method: &'static str,
    path: &'static str,
    open: bool,
    what: &'static str,
) -> RouteInfo {
    RouteInfo::new(method, path, open, what)
}

/// The routes served here (the FHIR API, health and metrics).
const OWN_ROUTES: &[RouteInfo] = &[
    route("GET", "/healthz", true, "liveness and store check"),
    route(
        "GET",
        "/metrics",
        false,
        "Prometheus metrics; any valid credentials, or open with `serve --metrics-open`",
    ),
    route(
        "GET",
        "/fhir/metadata",
        true,
        "CapabilityStatement (the rest of /fhir needs credentials)",
    ),
    route("ANY", "/fhir", false, "FHIR API: system interactions"),
    route("ANY", "/fhir/", false, "FHIR API: system interactions"),
    route("ANY", "/fhir/{*rest}", false, "FHIR API"),
];

/// `a` then `b`, as one array (so [`ROUTES`] stays one constant table).
const fn concat<const N: usize>(a: &[RouteInfo], b: &[RouteInfo]) -> [RouteInfo; N] {
    let mut out = [route("", "", false, ""); N];
    let mut i = 0;
    while i < a.len() {
        out[i] = a[i];
        i += 1;
    }
    let mut j = 0;
    while j < b.len() {
        out[i + j] = b[j];
        j += 1;
    }
    out
}

const ALL_ROUTES: [RouteInfo; OWN_ROUTES.len() + wardline_auth_server::ROUTES.len()] =
    concat(OWN_ROUTES, wardline_auth_server::ROUTES);

/// Every route the router serves (apart from the UI's, which
/// `wardline_web::ROUTES` lists): the FHIR API, health and metrics, then
/// the authorization server's ([`wardline_auth_server::ROUTES`]). Paths not
/// listed answer 401 without credentials and 404 with them.
pub const ROUTES: &[RouteInfo] = &ALL_ROUTES;

fn method_router(r: &RouteInfo) -> Option<MethodRouter<AppState>> {
    Some(match (r.method, r.path) {
        ("GET", "/healthz") => get(healthz),
        ("GET", "/metrics") => get(metrics),
        // Served by the FHIR handler, which leaves it open.
        ("GET", "/fhir/metadata") => any(fhir),
        ("ANY", "/fhir" | "/fhir/" | "/fhir/{*rest}") => any(fhir),
        _ => return None,
    })
}

/// How the HTTP surface is set up.
#[derive(Clone)]
pub struct Options {
    /// More Prometheus text on `/metrics`.
    pub extra: Option<ExtraMetrics>,
    /// The directory of users and clients: the authorization server
    /// (`wardline-auth-server`: the `/auth` routes and the
    /// smart-configuration documents) signs in against it (503 without it).
    pub directory: Option<Arc<Directory>>,
    /// `/metrics` without credentials.
    pub metrics_open: bool,
    /// Served over TLS: cookies are `Secure`, responses carry HSTS.
    pub tls: bool,
    /// Sign-in attempts (`/auth/login`, `/auth/authorize` POST,
    /// `/auth/token`) per client address per minute.
    pub attempts_per_minute: u32,
    /// The web UI (`wardline-web`), mounted under `/ui`; `/` then redirects
    /// there. Its routes are listed by the UI crate itself.
    pub ui: Option<Router>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            extra: None,
            directory: None,
            metrics_open: false,
            tls: false,
            attempts_per_minute: DEFAULT_ATTEMPTS_PER_MINUTE,
            ui: None,
        }
    }
}

#[derive(Clone)]
pub(crate) struct AppState {
    service: Arc<FhirService>,
    metrics: Arc<Metrics>,
    extra: Option<ExtraMetrics>,
    auth: Arc<dyn Authenticator>,
    metrics_open: bool,
}

/// The whole HTTP surface of Wardline.
pub fn router(service: Arc<FhirService>, auth: Arc<dyn Authenticator>) -> Router {
    router_with(service, None, auth)
}

/// [`router`] with more counters on `/metrics`.
pub fn router_with(
    service: Arc<FhirService>,
    extra: Option<ExtraMetrics>,
    auth: Arc<dyn Authenticator>,
) -> Router {
    app(
        service,
        auth,
        Options {
            extra,
            ..Options::default()
        },
    )
}

/// The whole HTTP surface, built from [`ROUTES`].
pub fn app(service: Arc<FhirService>, auth: Arc<dyn Authenticator>, opts: Options) -> Router {
    let tls = opts.tls;
    let state = AppState {
        service,
        metrics: Arc::new(Metrics::default()),
        extra: opts.extra,
        auth,
        metrics_open: opts.metrics_open,
    };
    let auth_server = wardline_auth_server::router(
        opts.directory,
        wardline_auth_server::Options {
            tls,
            attempts_per_minute: opts.attempts_per_minute,
        },
    );
    let mut paths: Vec<&str> = Vec::new();
    for r in OWN_ROUTES {
        if !paths.contains(&r.path) {
            paths.push(r.path);
        }
    }
    let mut router: Router<AppState> = Router::new();
    for path in paths {
        let mut mr: Option<MethodRouter<AppState>> = None;
        for r in OWN_ROUTES.iter().filter(|r| r.path == path) {
            if let Some(m) = method_router(r) {
                mr = Some(match mr {
                    Some(prev) if r.method != "ANY" => prev.merge(m),
                    _ => m,
                });
            }
        }
        if let Some(mr) = mr {
            router = router.route(path, mr);
        }
    }
    if let Some(ui) = opts.ui {
        router = router
            .nest_service("/ui", ui)
            .route("/", get(|| async { redirect_to("/ui/") }))
            // Browsers ask for it at the root whatever the page links: the
            // design system's icon, which anyone may fetch.
            .route(
                "/favicon.ico",
                get(|| async { redirect_to("/ui/static/nhsuk/images/favicon.ico") }),
            );
    }
    router
        .fallback(fallback)
        .with_state(state)
        .merge(auth_server)
        .layer(DefaultBodyLimit::disable())
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .layer(tower_http::decompression::RequestDecompressionLayer::new())
        // Outside the decompression, which removes the header: what the
        // client said it sent, so a body that is not what it claims is
        // reported so (`read_body`).
        .layer(axum::middleware::map_request(note_encoding))
        // Fastest deflate: most of the win of gzip on FHIR JSON for a fraction
        // of the CPU of the default level.
        .layer(
            tower_http::compression::CompressionLayer::new()
                .quality(tower_http::CompressionLevel::Fastest),
        )
        .layer(axum::middleware::map_response(move |r: Response| {
            security_headers(r, tls)
        }))
}

/// The `Content-Encoding` a request was sent with (before decompression).
#[derive(Clone)]
struct SentEncoding(String);

async fn note_encoding(mut req: Request) -> Request {
    if let Some(e) = req
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty() && v != "identity")
    {
        req.extensions_mut().insert(SentEncoding(e));
    }
    req
}

/// The whole request body (decompressed), at most `limit` bytes: 413 past
/// it; a body that cannot be decoded as the `Content-Encoding` it was sent
/// with (`encoding`) is a 400 saying so, not a size error.
async fn read_body(
    mut body: Body,
    limit: usize,
    encoding: Option<&str>,
) -> Result<Bytes, FhirError> {
    use axum::body::HttpBody;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let frame = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await;
        match frame {
            None => return Ok(Bytes::from(buf)),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if buf.len() + data.len() > limit {
                        return Err(FhirError::new(
                            413,
                            "too-costly",
                            format!("the request body exceeds {limit} bytes"),
                        ));
                    }
                    buf.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => {
                return Err(match encoding {
                    Some(enc) => FhirError::new(
                        400,
                        "structure",
                        format!(
                            "the request body is not valid {enc} (Content-Encoding: {enc}): {e}"
                        ),
                    ),
                    None => FhirError::new(
                        400,
                        "structure",
                        format!("the request body could not be read: {e}"),
                    ),
                });
            }
        }
    }
}

fn redirect_to(location: &'static str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, location)],
        String::new(),
    )
        .into_response()
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    outcome_response(&FhirError::internal("internal error"), false)
}

/// How long `/healthz` waits for the store before answering 503: a probe is
/// answered within a second whatever the database does.
const HEALTH_WAIT: std::time::Duration = std::time::Duration::from_millis(800);

async fn healthz(State(s): State<AppState>) -> Response {
    let svc = s.service.clone();
    let check = tokio::task::spawn_blocking(move || svc.health_check().is_ok());
    let ok = matches!(tokio::time::timeout(HEALTH_WAIT, check).await, Ok(Ok(true)));
    let backend = s.service.backend();
    let (code, status) = if ok {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"status": status, "backend": backend}).to_string(),
    )
        .into_response()
}

/// The security headers of every response.
async fn security_headers(mut r: Response, tls: bool) -> Response {
    let html = r
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/html"));
    let h = r.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    let csp = if html {
        HeaderValue::from_static(HTML_CSP)
    } else {
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'")
    };
    h.insert(header::CONTENT_SECURITY_POLICY, csp);
    if tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    r
}

/// The Content-Security-Policy of the server-rendered pages (the sign-in
/// pages and the UI, all in the NHS design system): stylesheets, scripts,
/// images and the event stream from this origin only; nothing inline (no
/// `'unsafe-inline'`, no hashes), nothing external. No `form-action`:
/// browsers apply it to the redirect after the sign-in POST, which goes to
/// the app's redirect URI.
const HTML_CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Unknown paths: 401 without credentials (so nothing about the surface
/// leaks), 404 with them.
async fn fallback(State(s): State<AppState>, Peer(peer): Peer, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let auth = s.auth.clone();
    let method = req.method().clone();
    let headers = req.headers().clone();
    let r = tokio::task::spawn_blocking(move || {
        auth.authenticate_request(&method, &headers, peer)
            .map(|_| ())
    })
    .await
    .unwrap_or_else(|_| Err(FhirError::internal("internal error")));
    if let Err(e) = r {
        return unauthorised(&e, false);
    }
    outcome_response(
        &FhirError::not_found(format!(
            "no resource at {path}; the FHIR API is under /fhir"
        )),
        false,
    )
}

async fn metrics(State(s): State<AppState>, Peer(peer): Peer, headers: HeaderMap) -> Response {
    if !s.metrics_open {
        let auth = s.auth.clone();
        let r = tokio::task::spawn_blocking(move || {
            auth.authenticate_request(&HttpMethod::GET, &headers, peer)
                .map(|_| ())
        })
        .await
        .unwrap_or_else(|_| Err(FhirError::internal("internal error")));
        if let Err(e) = r {
            return unauthorised(&e, false);
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], {
        let mut text = s.metrics.render(s.service.backend());
        if let Some(extra) = &s.extra {
            text.push_str(&extra());
        }
        text
    })
        .into_response()
}

fn unauthorised(e: &FhirError, pretty: bool) -> Response {
    let mut r = outcome_response(e, pretty);
    if e.status == 401 {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"wardline\""),
        );
    }
    r
}

fn outcome_response(e: &FhirError, pretty: bool) -> Response {
    let mut r = json_response(
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.to_operation_outcome(),
        pretty,
    );
    if e.status == 503 {
        // The database is away (or the outcome unknown): say when to try.
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    r
}

fn json_response(status: StatusCode, v: &Value, pretty: bool) -> Response {
    let text = if pretty {
        serde_json::to_string_pretty(v)
    } else {
        serde_json::to_string(v)
    }
    .unwrap_or_default();
    (status, [(header::CONTENT_TYPE, FHIR_JSON)], text).into_response()
}

/// Accepts FHIR JSON (and plain JSON / anything); refuses XML and other types.
///
/// An unencoded `+` in `?_format=application/fhir+json` arrives form-decoded
/// as a space, so `application/fhir json` counts as FHIR JSON too.
fn acceptable_format(f: &str) -> bool {
    let f = f.split(';').next().unwrap_or("").trim().replace(' ', "+");
    matches!(
        f.as_str(),
        "json"
            | "application/json"
            | "application/fhir+json"
            | "application/fhir+ndjson"
            | "application/ndjson"
            | "*/*"
            | "application/*"
            | ""
            | "text/html"
    )
}

async fn fhir(State(s): State<AppState>, Peer(peer): Peer, req: Request) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let resp = fhir_inner(&s, req, peer).await;
    let status = resp.status().as_u16();
    let secs = start.elapsed().as_secs_f64();
    s.metrics.observe(&method, status, secs);
    tracing::info!(method = %method, path = %path, status, micros = (secs * 1e6) as u64, "fhir request");
    resp
}

async fn fhir_inner(s: &AppState, req: Request, peer: Option<IpAddr>) -> Response {
    let (parts, body) = req.into_parts();
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let pretty = query.iter().any(|(k, v)| k == "_pretty" && v == "true");
    // Content negotiation.
    if let Some((_, f)) = query.iter().find(|(k, _)| k == "_format") {
        if !acceptable_format(f) {
            return outcome_response(
                &FhirError::new(
                    406,
                    "not-supported",
                    format!(
                        "_format '{f}' is not supported; Wardline speaks application/fhir+json"
                    ),
                ),
                pretty,
            );
        }
    } else if let Some(accept) = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        && !accept.split(',').any(acceptable_format)
    {
        return outcome_response(
            &FhirError::new(
                406,
                "not-supported",
                format!(
                    "Accept '{accept}' is not supported; Wardline speaks application/fhir+json"
                ),
            ),
            pretty,
        );
    }
    let method = match parts.method {
        HttpMethod::GET => Method::Get,
        HttpMethod::HEAD => Method::Head,
        HttpMethod::POST => Method::Post,
        HttpMethod::PUT => Method::Put,
        HttpMethod::PATCH => Method::Patch,
        HttpMethod::DELETE => Method::Delete,
        _ => {
            return outcome_response(
                &FhirError::new(405, "not-supported", "method not allowed"),
                pretty,
            );
        }
    };
    let content_type = header_str(&parts.headers, header::CONTENT_TYPE.as_str()).map(|c| {
        c.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    let sent_encoding = parts.extensions.get::<SentEncoding>().map(|e| e.0.clone());
    let bytes: Bytes = match read_body(body, BODY_LIMIT, sent_encoding.as_deref()).await {
        Ok(b) => b,
        Err(e) => return outcome_response(&e, pretty),
    };
    let path: Vec<String> = parts
        .uri
        .path()
        .trim_start_matches("/fhir")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let mut query = query;
    let is_form = content_type.as_deref() == Some("application/x-www-form-urlencoded");
    let body = if is_form && method == Method::Post {
        query.extend(form_urlencoded::parse(&bytes).into_owned());
        None
    } else if bytes.is_empty() {
        None
    } else {
        match content_type.as_deref() {
            Some("application/fhir+json" | "application/json" | "application/json-patch+json")
            | None => {}
            Some(other) => {
                return outcome_response(
                    &FhirError::new(
                        415,
                        "not-supported",
                        format!(
                            "Content-Type '{other}' is not supported; send application/fhir+json"
                        ),
                    ),
                    pretty,
                );
            }
        }
        Some(bytes.to_vec())
    };
    let prefer = header_str(&parts.headers, "prefer").unwrap_or_default();
    let mut headers = RequestHeaders {
        if_match: header_str(&parts.headers, "if-match"),
        if_none_match: header_str(&parts.headers, "if-none-match"),
        if_none_exist: header_str(&parts.headers, "if-none-exist"),
        if_modified_since: header_str(&parts.headers, "if-modified-since"),
        content_type,
        ..RequestHeaders::default()
    };
    for p in prefer.split([',', ';']) {
        match p.trim() {
            "return=minimal" => headers.prefer_return = Some(PreferReturn::Minimal),
            "return=representation" => headers.prefer_return = Some(PreferReturn::Representation),
            "return=OperationOutcome" => {
                headers.prefer_return = Some(PreferReturn::OperationOutcome)
            }
            "handling=strict" => headers.prefer_handling = Handling::Strict,
            "handling=lenient" => headers.prefer_handling = Handling::Lenient,
            "respond-async" => headers.prefer_async = true,
            _ => {}
        }
    }
    let freq = FhirRequest {
        method,
        path,
        query,
        headers,
        body,
    };
    // Only the CapabilityStatement is open; everything else needs credentials.
    let open = matches!(method, Method::Get | Method::Head)
        && freq.path.len() == 1
        && freq.path[0] == "metadata";
    // Authentication reads the store too, so it runs with the request off the
    // async worker (the PostgreSQL client must not run inside the runtime).
    let auth = s.auth.clone();
    let svc = s.service.clone();
    let http_method = parts.method.clone();
    let http_headers = parts.headers.clone();
    let work = move || -> Result<FhirResponse, FhirError> {
        let access: Box<dyn Access> = if open {
            Box::new(Trusted::operator("anonymous"))
        } else {
            auth.authenticate_request(&http_method, &http_headers, peer)?
        };
        Ok(svc.handle(freq, &*access))
    };
    // The store is synchronous. `block_in_place` runs the request on this
    // worker thread (tokio moves the worker's other tasks elsewhere) instead of
    // handing it to the blocking pool and back: two context switches fewer per
    // request, which was a sixth of the CPU of a search benchmark. A panic
    // unwinds to the catch-panic layer and becomes a 500 OperationOutcome.
    let result = if tokio::runtime::Handle::current().runtime_flavor()
        == tokio::runtime::RuntimeFlavor::MultiThread
    {
        tokio::task::block_in_place(work)
    } else {
        match tokio::task::spawn_blocking(work).await {
            Ok(r) => r,
            Err(_) => return outcome_response(&FhirError::internal("internal error"), pretty),
        }
    };
    let resp = match result {
        Ok(r) => r,
        Err(e) => return unauthorised(&e, pretty),
    };
    to_http(resp, pretty, method == Method::Head).await
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn header_str(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

async fn to_http(r: FhirResponse, pretty: bool, head: bool) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = Response::builder().status(status);
    for (k, v) in &r.headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            builder = builder.header(*k, v);
        }
    }
    let text = match r.body {
        FhirBody::File { path, content_type } => {
            // Streamed from disk: an export file can be far larger than memory.
            return match tokio::fs::File::open(&path).await {
                Ok(f) => {
                    let len = f.metadata().await.map(|m| m.len()).ok();
                    builder = builder.header(header::CONTENT_TYPE, content_type);
                    if let Some(len) = len {
                        builder = builder.header(header::CONTENT_LENGTH, len);
                    }
                    let body = if head {
                        Body::empty()
                    } else {
                        Body::from_stream(tokio_util::io::ReaderStream::with_capacity(f, 1 << 16))
                    };
                    builder
                        .body(body)
                        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
                }
                Err(e) => outcome_response(
                    &FhirError::internal(format!("cannot open the export file: {e}")),
                    pretty,
                ),
            };
        }
        FhirBody::None => None,
        FhirBody::Json(v) => Some(
            if pretty {
                serde_json::to_string_pretty(&v)
            } else {
                serde_json::to_string(&v)
            }
            .unwrap_or_default(),
        ),
        FhirBody::Raw(s) => Some(if pretty {
            serde_json::from_str::<Value>(&s)
                .and_then(|v| serde_json::to_string_pretty(&v))
                .unwrap_or(s)
        } else {
            s
        }),
    };
    if text.is_some() && !r.headers.iter().any(|(k, _)| *k == "content-type") {
        builder = builder.header(header::CONTENT_TYPE, FHIR_JSON);
    }
    if let Some(e) = r.etag
        && let Ok(v) = HeaderValue::from_str(&e)
    {
        builder = builder.header(header::ETAG, v);
    }
    if let Some(ms) = r.last_modified_ms {
        builder = builder.header(header::LAST_MODIFIED, http_date(ms));
    }
    if let Some(l) = r.location
        && let Ok(v) = HeaderValue::from_str(&l)
    {
        builder = builder.header(header::LOCATION, v);
    }
    if let Some(l) = r.content_location
        && let Ok(v) = HeaderValue::from_str(&l)
    {
        builder = builder.header(header::CONTENT_LOCATION, v);
    }
    let body = match (text, head) {
        (Some(t), false) => Body::from(t),
        _ => Body::empty(),
    };
    builder
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// RFC 7231 IMF-fixdate.
pub fn http_date(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[t.weekday().number_days_from_monday() as usize],
        t.day(),
        MONTHS[u8::from(t.month()) as usize - 1],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: Arc<FhirService>,
    auth: Arc<dyn Authenticator>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, service, None, auth, shutdown).await
}

/// [`serve`] with more counters on `/metrics`.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    service: Arc<FhirService>,
    extra: Option<ExtraMetrics>,
    auth: Arc<dyn Authenticator>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_app(listener, router_with(service, extra, auth), None, shutdown).await
}

/// The TLS configuration of `serve --tls-cert FILE --tls-key FILE` (PEM
/// certificate chain and private key; rustls with the ring provider).
pub async fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> std::io::Result<axum_server::tls_rustls::RustlsConfig> {
    // The process-wide provider; an error only means one is installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key).await
}

/// Serves `app` on `listener` (with each connection's peer address, for the
/// audit trail) until `shutdown` resolves; over TLS when `tls` is given;
/// with the default [`ConnectionConfig`].
pub async fn serve_app(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_app_with(listener, app, tls, ConnectionConfig::default(), shutdown).await
}

/// [`serve_app`] with these timeouts and connection limits
/// ([`connections`]).
pub async fn serve_app_with(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    cfg: ConnectionConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    connections::serve(listener, app, tls, cfg, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_decoding() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(percent_decode("a%7Cb"), "a|b");
        assert_eq!(percent_decode("a%7"), "a%7");
        assert!(acceptable_format("application/fhir+json;q=0.9"));
        assert!(!acceptable_format("application/fhir+xml"));
        assert!(!acceptable_format("xml"));
        assert!(acceptable_format("application/fhir json"));
    }

    #[test]
    fn every_route_has_a_handler() {
        for r in OWN_ROUTES {
            assert!(method_router(r).is_some(), "{r:?}");
        }
        assert_eq!(
            ROUTES.len(),
            OWN_ROUTES.len() + wardline_auth_server::ROUTES.len()
        );
        for r in wardline_auth_server::ROUTES {
            assert_eq!(ROUTES.iter().filter(|x| *x == r).count(), 1, "{r:?}");
        }
        let open: Vec<_> = ROUTES.iter().filter(|r| r.open).map(|r| r.path).collect();
        assert!(open.contains(&"/auth/token") && !open.contains(&"/auth/break-glass"));
    }
}
