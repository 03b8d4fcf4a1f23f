//! Static files under `/ui/static/`: the NHS design system (`nhsuk/…`, from
//! `wardline-nhsuk`) and Wardline's own small stylesheet and script, all
//! embedded at build time and served with a content hash as the ETag and a
//! day's caching.
//!
//! The design system's files are public code holding no data, and the
//! sign-in pages (shown before there is a session) use them, so they are
//! served to anyone; Wardline's own files, like every other UI route, need
//! a session.

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use wardline_nhsuk::assets::{Asset, Assets, DESIGN_SYSTEM};

macro_rules! asset {
    ($path:literal, $mime:literal) => {
        Asset {
            path: $path,
            mime: $mime,
            bytes: include_bytes!(concat!("../assets/", $path)),
        }
    };
}

static OWN: Assets = Assets::new(&[
    asset!("wardline.css", "text/css; charset=utf-8"),
    asset!("wardline.js", "text/javascript; charset=utf-8"),
    // Specimen labels (issue 16): the print stylesheet and print button.
    asset!("orders.css", "text/css; charset=utf-8"),
    asset!("orders.js", "text/javascript; charset=utf-8"),
]);

/// `?v=` for a static URL, so a new build's files are fetched at once.
pub(crate) fn version(path: &str) -> &'static str {
    match path.strip_prefix("nhsuk/") {
        Some(p) => DESIGN_SYSTEM.version(p),
        None => OWN.version(path),
    }
}

pub(crate) async fn serve(
    _: crate::Req,
    axum::extract::State(ui): crate::St,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(p) = file.strip_prefix("nhsuk/") {
        return DESIGN_SYSTEM.respond(p, &headers);
    }
    let signed_in = tokio::task::spawn_blocking(move || {
        wardline_auth_server::session_user(&ui.dir, &headers).map(|s| (s.is_some(), headers))
    })
    .await;
    let headers = match signed_in {
        Ok(Ok((true, h))) => h,
        Ok(Ok((false, _))) => return StatusCode::UNAUTHORIZED.into_response(),
        _ => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    };
    OWN.respond(&file, &headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_stylesheets_load_nothing_from_elsewhere() {
        for a in OWN.files() {
            if a.mime.starts_with("text/css") {
                let css = std::str::from_utf8(a.bytes).unwrap();
                assert!(!css.contains("url("), "{} loads a file", a.path);
                assert!(!css.contains("https://"), "external URL in {}", a.path);
            }
        }
    }

    #[test]
    fn versions_differ_per_file() {
        assert_ne!(version("wardline.css"), version("wardline.js"));
        assert_ne!(version("nhsuk/nhsuk-frontend.min.css"), "0");
        assert_eq!(version("missing"), "0");
    }
}
