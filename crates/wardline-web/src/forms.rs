//! Form bodies, queries and multipart uploads as the pages read them, and
//! the small helpers that put values back into URLs (split out of `lib.rs`
//! along this seam to keep it within the tidy limit).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::response::Response;
use wardline_fhir::FhirError;

use crate::layout;

/// Why a multipart upload could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UploadProblem {
    /// The body is not multipart.
    NotMultipart,
    /// A part is larger than allowed.
    TooLarge,
    /// A part did not arrive whole.
    Cut,
    /// The multipart body is malformed.
    Unreadable,
}

/// A multipart form's parts as name → bytes, each at most `max` bytes; the
/// CSRF token travels in the body as the `csrf` part, re-encoded by
/// [`csrf_form`] for [`Ui::run`] to check.
pub(crate) async fn multipart_fields(
    multipart: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
    max: usize,
) -> (HashMap<String, Vec<u8>>, Option<UploadProblem>) {
    let mut fields = HashMap::new();
    let mut mp = match multipart {
        Ok(m) => m,
        Err(_) => return (fields, Some(UploadProblem::NotMultipart)),
    };
    // Every part is read (the CSRF token may follow a part that failed).
    let mut problem = None;
    loop {
        match mp.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_owned();
                match field.bytes().await {
                    Ok(b) if b.len() <= max => {
                        fields.insert(name, b.to_vec());
                    }
                    Ok(_) => problem = Some(UploadProblem::TooLarge),
                    Err(_) => problem = Some(UploadProblem::Cut),
                }
            }
            Ok(None) => return (fields, problem),
            Err(_) => return (fields, Some(UploadProblem::Unreadable)),
        }
    }
}

/// The `csrf` part of a multipart form as a url-encoded body for [`Ui::run`].
pub(crate) fn csrf_form(fields: &HashMap<String, Vec<u8>>) -> Bytes {
    let csrf =
        String::from_utf8_lossy(fields.get("csrf").map_or(&[][..], Vec::as_slice)).into_owned();
    Bytes::from(
        form_urlencoded::Serializer::new(String::new())
            .append_pair("csrf", &csrf)
            .finish(),
    )
}

/// A form body as name → value (the last of repeated names wins).
pub(crate) type Form = HashMap<String, String>;

pub(crate) fn parse_form(body: &[u8]) -> Form {
    let mut f = form_urlencoded::parse(body).into_owned().collect();
    fold_dates(&mut f);
    f
}

/// The NHS date input's three fields (`{id}-day`, `{id}-month`,
/// `{id}-year`, as [`layout::input`] draws a `date` field) read as the one
/// value `{id}` every handler reads: `YYYY-MM-DD` when the three are
/// numbers (a date that is not in the calendar is then refused by the
/// domain's own check, naming the field), the parts as typed otherwise, ""
/// when all three are empty. A form that sends `{id}` itself (a script, the
/// end-to-end tests) is read as it is.
fn fold_dates(f: &mut Form) {
    let bases: Vec<String> = f
        .keys()
        .filter_map(|k| k.strip_suffix("-day"))
        .filter(|b| f.get(*b).is_none_or(|v| v.trim().is_empty()))
        .map(str::to_owned)
        .collect();
    for base in bases {
        let part = |p: &str| {
            f.get(&format!("{base}-{p}"))
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        let (d, m, y) = (part("day"), part("month"), part("year"));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let value = if d.is_empty() && m.is_empty() && y.is_empty() {
            String::new()
        } else if digits(&d)
            && digits(&m)
            && y.len() == 4
            && digits(&y)
            && d.len() <= 2
            && m.len() <= 2
        {
            format!("{y}-{m:0>2}-{d:0>2}")
        } else {
            format!("{y}-{m}-{d}")
        };
        f.insert(base, value);
    }
}

pub(crate) fn query_of(target: &str) -> Form {
    target
        .split_once('?')
        .map(|(_, q)| parse_form(q.as_bytes()))
        .unwrap_or_default()
}

/// An error from a workflow as a page.
pub(crate) fn fhir_error(e: &FhirError) -> Response {
    layout::fhir_error_page(e)
}

/// A path segment or id from the URL, safe to put back into one.
pub(crate) fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
