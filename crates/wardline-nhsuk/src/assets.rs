//! Static files embedded at build time, served with a content hash as the
//! ETag (and as `?v=` in links, so a new build's files are fetched at once)
//! and a day's caching.

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// One embedded file.
pub struct Asset {
    /// Relative to the set's base URL.
    pub path: &'static str,
    pub mime: &'static str,
    pub bytes: &'static [u8],
}

/// A set of embedded files.
pub struct Assets {
    list: &'static [Asset],
    etags: OnceLock<Vec<String>>,
}

impl Assets {
    pub const fn new(list: &'static [Asset]) -> Assets {
        Assets {
            list,
            etags: OnceLock::new(),
        }
    }

    pub fn files(&self) -> &'static [Asset] {
        self.list
    }

    fn etags(&self) -> &Vec<String> {
        self.etags.get_or_init(|| {
            self.list
                .iter()
                .map(|a| {
                    let h = Sha256::digest(a.bytes);
                    format!("\"{}\"", data_encoding::HEXLOWER.encode(&h[..12]))
                })
                .collect()
        })
    }

    /// `?v=` for a file's URL (`0` for an unknown one).
    pub fn version(&self, path: &str) -> &str {
        self.list
            .iter()
            .position(|a| a.path == path)
            .map(|i| self.etags()[i].trim_matches('"'))
            .unwrap_or("0")
    }

    /// The file at `path`: 200 with ETag and caching, 304 when the
    /// request's `If-None-Match` has it, 404 when there is no such file.
    pub fn respond(&self, path: &str, headers: &HeaderMap) -> Response {
        let Some(i) = self.list.iter().position(|a| a.path == path) else {
            return StatusCode::NOT_FOUND.into_response();
        };
        let etag = &self.etags()[i];
        if headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
        {
            return StatusCode::NOT_MODIFIED.into_response();
        }
        let a = &self.list[i];
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
}

macro_rules! nhsuk {
    ($path:literal, $mime:literal) => {
        Asset {
            path: $path,
            mime: $mime,
            bytes: include_bytes!(concat!("../assets/nhsuk/", $path)),
        }
    };
}

/// The vendored `nhsuk-frontend`: its stylesheet, script module, favicon and
/// the icons the stylesheet refers to. Public code, holding no data.
pub static DESIGN_SYSTEM: Assets = Assets::new(&[
    nhsuk!("nhsuk-frontend.min.css", "text/css; charset=utf-8"),
    nhsuk!("nhsuk-frontend.min.js", "text/javascript; charset=utf-8"),
    nhsuk!("images/favicon.ico", "image/x-icon"),
    nhsuk!("images/favicon.svg", "image/svg+xml"),
    nhsuk!("images/nhsuk-icon-arrow-down.svg", "image/svg+xml"),
    nhsuk!("images/nhsuk-icon-arrow-up-down.svg", "image/svg+xml"),
    nhsuk!("images/nhsuk-icon-arrow-up.svg", "image/svg+xml"),
    nhsuk!("images/nhsuk-icon-cross.svg", "image/svg+xml"),
]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stylesheet_loads_nothing_from_elsewhere() {
        let files = DESIGN_SYSTEM.files();
        let css = std::str::from_utf8(files[0].bytes).unwrap();
        assert!(css.contains(".nhsuk-header"));
        assert!(!css.contains("https://"), "external URL in the stylesheet");
        for a in files {
            if a.mime.starts_with("text/css") {
                let css = std::str::from_utf8(a.bytes).unwrap();
                for url in css.split("url(").skip(1) {
                    let target = url.split(')').next().unwrap_or_default();
                    let local =
                        format!("{}/{}", a.path.rsplit_once('/').map_or("", |x| x.0), target);
                    assert!(
                        files
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
    fn versions_and_answers() {
        assert_ne!(
            DESIGN_SYSTEM.version("nhsuk-frontend.min.css"),
            DESIGN_SYSTEM.version("nhsuk-frontend.min.js")
        );
        assert_eq!(DESIGN_SYSTEM.version("missing"), "0");
        let r = DESIGN_SYSTEM.respond("nhsuk-frontend.min.css", &HeaderMap::new());
        assert_eq!(r.status(), StatusCode::OK);
        let etag = r.headers()[header::ETAG].clone();
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(
            DESIGN_SYSTEM.respond("nhsuk-frontend.min.css", &h).status(),
            StatusCode::NOT_MODIFIED
        );
        assert_eq!(
            DESIGN_SYSTEM
                .respond("../Cargo.toml", &HeaderMap::new())
                .status(),
            StatusCode::NOT_FOUND
        );
    }
}
