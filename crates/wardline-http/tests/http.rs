//! Integration tests: the real router on 127.0.0.1:0 over a real SQLite store
//! in a temp dir, driven with reqwest.

use std::io::{Read, Write};
use std::sync::Arc;

use reqwest::blocking::Client;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE};
use serde_json::{Value, json};
use wardline_core::{FhirService, ServiceConfig};

struct Server {
    base: String,
    _dir: tempfile::TempDir,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = wardline_store_sqlite::SqliteStore::open(&dir.path().join("w.db")).unwrap();
    let (tx_addr, rx_addr) = std::sync::mpsc::channel();
    let (tx_stop, rx_stop) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let service = Arc::new(FhirService::new(
                Arc::new(store),
                ServiceConfig {
                    base_url: format!("http://{addr}/fhir"),
                    ..ServiceConfig::default()
                },
            ));
            tx_addr.send(addr).unwrap();
            wardline_http::serve(listener, service, Arc::new(Open), async {
                let _ = rx_stop.await;
            })
            .await
            .unwrap();
        });
    });
    let addr = rx_addr.recv().unwrap();
    Server {
        base: format!("http://{addr}"),
        _dir: dir,
        _shutdown: tx_stop,
    }
}

fn client() -> Client {
    Client::builder().no_gzip().build().unwrap()
}

fn patient() -> Value {
    json!({"resourceType": "Patient", "name": [{"family": "Smith", "given": ["Ann"]}], "gender": "female"})
}

fn outcome(resp: reqwest::blocking::Response) -> Value {
    let v: Value = resp.json().unwrap();
    assert_eq!(v["resourceType"], "OperationOutcome", "{v}");
    v
}

#[test]
fn create_read_headers_and_if_match() {
    let s = start();
    let c = client();
    let r = c
        .post(format!("{}/fhir/Patient", s.base))
        .header(CONTENT_TYPE, "application/fhir+json")
        .body(patient().to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        loc.starts_with(&format!("{}/fhir/Patient/", s.base)) && loc.ends_with("/_history/1"),
        "{loc}"
    );
    assert_eq!(r.headers()["etag"], "W/\"1\"");
    assert!(
        r.headers()["last-modified"]
            .to_str()
            .unwrap()
            .ends_with(" GMT")
    );
    let created: Value = r.json().unwrap();
    let id = created["id"].as_str().unwrap().to_owned();

    let r = c
        .get(format!("{}/fhir/Patient/{id}", s.base))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()[CONTENT_TYPE],
        "application/fhir+json; charset=utf-8"
    );
    assert_eq!(r.headers()["etag"], "W/\"1\"");
    let read: Value = r.json().unwrap();
    assert_eq!(read["name"], patient()["name"]);

    // HEAD: headers, no body.
    let r = c
        .head(format!("{}/fhir/Patient/{id}", s.base))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], "W/\"1\"");
    assert!(r.bytes().unwrap().is_empty());

    // Update with the wrong version → 412; with the right one → 200, version 2.
    let mut upd = read.clone();
    upd["gender"] = json!("other");
    let r = c
        .put(format!("{}/fhir/Patient/{id}", s.base))
        .header(CONTENT_TYPE, "application/fhir+json")
        .header("If-Match", "W/\"7\"")
        .body(upd.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 412);
    outcome(r);
    let r = c
        .put(format!("{}/fhir/Patient/{id}", s.base))
        .header(CONTENT_TYPE, "application/fhir+json")
        .header("If-Match", "W/\"1\"")
        .header("Prefer", "return=minimal")
        .body(upd.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], "W/\"2\"");
    assert!(
        r.bytes().unwrap().is_empty(),
        "return=minimal sends no body"
    );

    // Pretty printing.
    let r = c
        .get(format!("{}/fhir/Patient/{id}?_pretty=true", s.base))
        .send()
        .unwrap();
    assert!(r.text().unwrap().contains("\n  \"resourceType\""));
}

#[test]
fn form_search_and_unknown_paths() {
    let s = start();
    let c = client();
    for fam in ["Smith", "Jones"] {
        let mut p = patient();
        p["name"][0]["family"] = json!(fam);
        let r = c
            .post(format!("{}/fhir/Patient", s.base))
            .header(CONTENT_TYPE, "application/fhir+json")
            .body(p.to_string())
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let r = c
        .post(format!("{}/fhir/Patient/_search", s.base))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("family=Jones")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let b: Value = r.json().unwrap();
    assert_eq!(b["type"], "searchset");
    assert_eq!(b["entry"].as_array().unwrap().len(), 1, "{b}");
    assert_eq!(b["entry"][0]["resource"]["name"][0]["family"], "Jones");

    let r = c.get(format!("{}/nowhere", s.base)).send().unwrap();
    assert_eq!(r.status(), 404);
    outcome(r);
}

#[test]
fn xml_is_not_acceptable() {
    let s = start();
    let c = client();
    let r = c
        .get(format!("{}/fhir/metadata?_format=xml", s.base))
        .send()
        .unwrap();
    assert_eq!(r.status(), 406);
    let oo = outcome(r);
    assert!(oo.to_string().contains("json"), "{oo}");
    let r = c
        .get(format!("{}/fhir/metadata", s.base))
        .header("Accept", "application/fhir+xml")
        .send()
        .unwrap();
    assert_eq!(r.status(), 406);
    for ok in ["json", "application/fhir+json", "application/json"] {
        let r = c
            .get(format!("{}/fhir/metadata?_format={ok}", s.base))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{ok}");
    }
    let r = c
        .get(format!("{}/fhir/metadata", s.base))
        .header("Accept", "*/*")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn wrong_content_type_is_415() {
    let s = start();
    let r = client()
        .post(format!("{}/fhir/Patient", s.base))
        .header(CONTENT_TYPE, "application/fhir+xml")
        .body("<Patient/>")
        .send()
        .unwrap();
    assert_eq!(r.status(), 415);
    outcome(r);
}

#[test]
fn gzip_both_ways() {
    let s = start();
    let c = client();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(patient().to_string().as_bytes()).unwrap();
    let gz = enc.finish().unwrap();
    let r = c
        .post(format!("{}/fhir/Patient", s.base))
        .header(CONTENT_TYPE, "application/fhir+json")
        .header(CONTENT_ENCODING, "gzip")
        .body(gz)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);

    let r = c
        .get(format!("{}/fhir/metadata", s.base))
        .header("Accept-Encoding", "gzip")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()[CONTENT_ENCODING], "gzip");
    let bytes = r.bytes().unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["resourceType"], "CapabilityStatement");
}

#[test]
fn healthz_and_metrics() {
    let s = start();
    let c = client();
    let r = c.get(format!("{}/healthz", s.base)).send().unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().unwrap();
    assert_eq!(v, json!({"status": "ok", "backend": "sqlite"}));
    c.get(format!("{}/fhir/Patient/missing", s.base))
        .send()
        .unwrap();
    c.get(format!("{}/fhir/metadata", s.base)).send().unwrap();
    let text = c
        .get(format!("{}/metrics", s.base))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(text.contains("wardline_build_info{"), "{text}");
    assert!(
        text.contains("wardline_http_requests_total{method=\"GET\",class=\"4xx\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("wardline_http_requests_total{method=\"GET\",class=\"2xx\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("wardline_http_request_duration_seconds_count 2"),
        "{text}"
    );
}

/// These tests are about HTTP, not access: every request is the operator's.
struct Open;

impl wardline_http::Authenticator for Open {
    fn authenticate(
        &self,
        _: &axum::http::HeaderMap,
        _: Option<std::net::IpAddr>,
    ) -> Result<Box<dyn wardline_core::Access>, wardline_fhir::FhirError> {
        Ok(Box::new(wardline_core::Trusted::operator("test")))
    }
}
