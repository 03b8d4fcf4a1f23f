//! Static files, embedded at build time: the vendored NHS design system and
//! Wardline's own small stylesheet and script. Served with a content hash as
//! the ETag and a day's caching.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

struct Asset {
    path: &'static str,
    mime: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $mime:literal) => {
        Asset {
            path: $path,
            mime: $mime,
            bytes: include_bytes!(concat!("../assets/", $path)),
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("nhsuk/nhsuk-frontend.min.css", "text/css; charset=utf-8"),
    asset!(
        "nhsuk/nhsuk-frontend.min.js",
        "text/javascript; charset=utf-8"
    ),
    asset!("nhsuk/images/favicon.ico", "image/x-icon"),
    asset!("nhsuk/images/favicon.svg", "image/svg+xml"),
    asset!("nhsuk/images/nhsuk-icon-arrow-down.svg", "image/svg+xml"),
    asset!("nhsuk/images/nhsuk-icon-arrow-up-down.svg", "image/svg+xml"),
    asset!("nhsuk/images/nhsuk-icon-arrow-up.svg", "image/svg+xml"),
    asset!("nhsuk/images/nhsuk-icon-cross.svg", "image/svg+xml"),
    asset!("wardline.css", "text/css; charset=utf-8"),
    asset!("wardline.js", "text/javascript; charset=utf-8"),
];

fn etags() -> &'static Vec<String> {
    static E: OnceLock<Vec<String>> = OnceLock::new();
    E.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let h = Sha256::digest(a.bytes);
                format!("\"{}\"", data_encoding::HEXLOWER.encode(&h[..12]))
            })
            .collect()
    })
}

/// `?v=` for a static URL, so a new build's files are fetched at once.
pub(crate) fn version(path: &str) -> &'static str {
    ASSETS
        .iter()
        .position(|a| a.path == path)
        .map(|i| etags()[i].trim_matches('"'))
        .unwrap_or("0")
}

pub(crate) async fn serve(
    _: crate::Req,
    axum::extract::State(ui): crate::St,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    // The files are public design-system code, but the UI's rule holds for
    // them too: nothing is served without a session.
    let signed_in = tokio::task::spawn_blocking(move || {
        wardline_http::session_user(&ui.dir, &headers).map(|s| (s.is_some(), headers))
    })
    .await;
    let headers = match signed_in {
        Ok(Ok((true, h))) => h,
        Ok(Ok((false, _))) => return StatusCode::UNAUTHORIZED.into_response(),
        _ => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    };
    let Some(i) = ASSETS.iter().position(|a| a.path == file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let etag = &etags()[i];
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let a = &ASSETS[i];
    let mut r = a.bytes.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.mime));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400"),
    );
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stylesheet_loads_nothing_from_elsewhere() {
        let css = std::str::from_utf8(ASSETS[0].bytes).unwrap();
        assert!(css.contains(".nhsuk-header"));
        assert!(!css.contains("https://"), "external URL in the stylesheet");
        for a in ASSETS {
            if a.mime.starts_with("text/css") {
                let css = std::str::from_utf8(a.bytes).unwrap();
                for url in css.split("url(").skip(1) {
                    let target = url.split(')').next().unwrap_or_default();
                    let local =
                        format!("{}/{}", a.path.rsplit_once('/').map_or("", |x| x.0), target);
                    assert!(
                        ASSETS
                            .iter()
                            .any(|b| b.path == local.trim_start_matches('/')),
                        "{} refers to {target}, which is not served",
                        a.path
                    );
                }
            }
        }
    }

    #[test]
    fn versions_differ_per_file() {
        assert_ne!(version("wardline.css"), version("wardline.js"));
        assert_eq!(version("missing"), "0");
    }
}
