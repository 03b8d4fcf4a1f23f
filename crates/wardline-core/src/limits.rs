//! Bounded work per request: how big one resource may be, and how much one
//! search may ask for ([`Limits`], in [`crate::ServiceConfig::limits`], set by
//! `wardline serve --max-*`).
//!
//! A resource is checked by [`check_resource`]: one pass over its JSON that
//! counts elements (every JSON value: object, array item, primitive), the
//! items of each array (repeats of one element) and the bytes of each string.
//! It runs before the write transaction (and so before the writer's lock) on
//! every REST body ([`check_body`], from `FhirService::parse_body`), and again
//! at the top of `prepare_write`, the one write path, so nothing written by
//! any channel (REST, a transaction entry, a workflow's or the HL7 engine's
//! `Tx::save`) escapes it. Over a limit is a 422 OperationOutcome naming the
//! element and the limit: validating, indexing and storing an oversized
//! resource would hold every other writer for seconds (a Patient with 12,000
//! names) and is never a real record.
//!
//! Strings of base64Binary (`data` — `Attachment.data`, `Binary.data`,
//! `Signature.data`, and `SampledData.data`, the waveform — and any
//! `…Base64Binary` choice) are documents and signal data, not text: they are
//! not held to the string limit, only to the body limit of the channel
//! (64 MiB over HTTP, the frame limit over MLLP), and no index is built from
//! them.
//!
//! A search is checked by [`check_search`] on the query's pairs before they
//! are parsed: how many parameters, how many OR values in one parameter
//! (comma-separated), how many values in all, and how many ids `_id` names.
//! Over a limit is a 400 naming the parameter and the limit (a query of
//! 999 parameters or 3,000 OR values reached SQLite's limits and was a 500).

use serde_json::Value;
use wardline_fhir::FhirError;

/// The bounds; [`Limits::default`] is what `serve` uses unless told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// JSON values in one resource (contained resources count toward it).
    pub max_elements: usize,
    /// Items of one array (repeats of one element, e.g. `Patient.name`).
    pub max_repeats: usize,
    /// Bytes (UTF-8) of one string, base64Binary data apart.
    pub max_string_bytes: usize,
    /// Search parameters in one query (`_count`, `_sort` … included).
    pub max_search_params: usize,
    /// Comma-separated (OR) values of one search parameter.
    pub max_search_or: usize,
    /// Values of all parameters of one query together (`_id` apart).
    pub max_search_values: usize,
    /// Ids named by `_id` in one query.
    pub max_search_ids: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_elements: 100_000,
            max_repeats: 10_000,
            max_string_bytes: 1 << 20,
            max_search_params: 100,
            max_search_or: 100,
            max_search_values: 1_000,
            max_search_ids: 10_000,
        }
    }
}

/// Whether a string under property `key` is base64Binary data (or
/// `SampledData.data`), which the string limit does not hold.
fn is_binary(key: &str) -> bool {
    key == "data" || key.ends_with("Base64Binary")
}

/// Checks one resource against `limits`; errors name the element as a FHIR
/// path from the resource type (`Patient.name`, `Patient.name[3].text`).
pub fn check_resource(resource: &Value, limits: &Limits) -> Result<(), FhirError> {
    let root = root_name(resource);
    Walk::new(limits, root).value(resource, None)
}

/// Checks a request body: a resource, or a `transaction` / `batch` Bundle
/// whose entries' resources are checked one by one (each is written as a
/// resource of its own; the Bundle around them is bounded by the body limit).
pub fn check_body(body: &Value, limits: &Limits) -> Result<(), FhirError> {
    let is_tx_bundle = body.get("resourceType").and_then(Value::as_str) == Some("Bundle")
        && matches!(
            body.get("type").and_then(Value::as_str),
            Some("transaction" | "batch")
        );
    let (true, Some(Value::Array(entries)), Some(obj)) =
        (is_tx_bundle, body.get("entry"), body.as_object())
    else {
        return check_resource(body, limits);
    };
    // The envelope without its entries, then each entry's resource.
    let mut w = Walk::new(limits, "Bundle");
    for (k, v) in obj.iter().filter(|(k, _)| *k != "entry") {
        w.path.push(Seg::Key(k));
        w.value(v, Some(k))?;
        w.path.pop();
    }
    for (i, e) in entries.iter().enumerate() {
        let Some(entry) = e.as_object() else {
            continue;
        };
        for (k, v) in entry {
            let at = format!("Bundle.entry[{i}].{k}");
            let mut w = Walk::new(limits, &at);
            w.value(v, Some(k))?;
        }
    }
    Ok(())
}

fn root_name(v: &Value) -> &str {
    v.get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or("Resource")
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

struct Walk<'a, 'l> {
    limits: &'l Limits,
    root: &'l str,
    path: Vec<Seg<'a>>,
    elements: usize,
}

impl<'a, 'l> Walk<'a, 'l> {
    fn new(limits: &'l Limits, root: &'l str) -> Walk<'a, 'l> {
        Walk {
            limits,
            root,
            path: Vec::new(),
            elements: 0,
        }
    }

    /// The path so far: `Patient.name[3].text` (`Patient.name` for the
    /// array itself, when its repeats are counted).
    fn here(&self) -> String {
        let mut s = self.root.to_owned();
        for seg in &self.path {
            match seg {
                Seg::Key(k) => {
                    s.push('.');
                    s.push_str(k);
                }
                Seg::Index(i) => s.push_str(&format!("[{i}]")),
            }
        }
        s
    }

    fn value(&mut self, v: &'a Value, key: Option<&'a str>) -> Result<(), FhirError> {
        self.elements += 1;
        if self.elements > self.limits.max_elements {
            let at = self.here();
            return Err(FhirError::new(
                422,
                "too-costly",
                format!(
                    "{} has more than {} elements (JSON values), the most one resource may have; the count passed it at {at}",
                    self.root, self.limits.max_elements
                ),
            )
            .at(at));
        }
        match v {
            Value::String(s)
                if s.len() > self.limits.max_string_bytes && !key.is_some_and(is_binary) =>
            {
                let at = self.here();
                Err(FhirError::new(
                    422,
                    "too-long",
                    format!(
                        "{at} is {} bytes long; at most {} bytes are accepted in one string",
                        s.len(),
                        self.limits.max_string_bytes
                    ),
                )
                .at(at))
            }
            Value::Array(items) => {
                if items.len() > self.limits.max_repeats {
                    let at = self.here();
                    return Err(FhirError::new(
                        422,
                        "too-long",
                        format!(
                            "{at} repeats {} times; at most {} repeats of one element are accepted",
                            items.len(),
                            self.limits.max_repeats
                        ),
                    )
                    .at(at));
                }
                for (i, item) in items.iter().enumerate() {
                    self.path.push(Seg::Index(i));
                    // Items of an array keep its key (`given`, `data`).
                    self.value(item, key)?;
                    self.path.pop();
                }
                Ok(())
            }
            Value::Object(map) => {
                for (k, item) in map {
                    self.path.push(Seg::Key(k));
                    self.value(item, Some(k))?;
                    self.path.pop();
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Checks the pairs of a search query (before parsing) against `limits`: a
/// 400 naming what was too many.
pub fn check_search(params: &[(String, String)], limits: &Limits) -> Result<(), FhirError> {
    if params.len() > limits.max_search_params {
        return Err(FhirError::new(
            400,
            "too-costly",
            format!(
                "the search has {} parameters; at most {} are accepted in one search",
                params.len(),
                limits.max_search_params
            ),
        ));
    }
    let mut total = 0usize;
    let mut ids = 0usize;
    for (k, v) in params {
        let n = or_values(v);
        if k == "_id" {
            ids += n;
            if ids > limits.max_search_ids {
                return Err(FhirError::new(
                    400,
                    "too-costly",
                    format!(
                        "_id names more than {} ids; at most {} are accepted in one search",
                        limits.max_search_ids, limits.max_search_ids
                    ),
                )
                .at("_id"));
            }
            continue;
        }
        if n > limits.max_search_or {
            return Err(FhirError::new(
                400,
                "too-costly",
                format!(
                    "{k} has {n} values (OR-ed, comma-separated); at most {} are accepted for one parameter",
                    limits.max_search_or
                ),
            )
            .at(k.clone()));
        }
        total += n;
        if total > limits.max_search_values {
            return Err(FhirError::new(
                400,
                "too-costly",
                format!(
                    "the search has more than {} values in all (counted up to {k}); at most {} are accepted in one search",
                    limits.max_search_values, limits.max_search_values
                ),
            )
            .at(k.clone()));
        }
    }
    Ok(())
}

/// How many comma-separated values `v` holds (`\,` is an escaped comma).
fn or_values(v: &str) -> usize {
    let b = v.as_bytes();
    let mut n = 1;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b',' => n += 1,
            _ => {}
        }
        i += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn small() -> Limits {
        Limits {
            max_elements: 50,
            max_repeats: 5,
            max_string_bytes: 20,
            max_search_params: 4,
            max_search_or: 3,
            max_search_values: 5,
            max_search_ids: 6,
        }
    }

    fn diag(e: &FhirError) -> (u16, String, Vec<String>) {
        (e.status, e.to_string(), e.issues[0].expression.clone())
    }

    #[test]
    fn a_resource_within_the_limits_passes() {
        let p = json!({"resourceType": "Patient", "name": [{"family": "Bloggs", "given": ["Jo", "Al"]}]});
        assert!(check_resource(&p, &small()).is_ok());
        assert!(check_resource(&p, &Limits::default()).is_ok());
    }

    #[test]
    fn too_many_repeats_name_the_element_and_the_limit() {
        let names: Vec<_> = (0..6).map(|i| json!({"family": format!("F{i}")})).collect();
        let p = json!({"resourceType": "Patient", "name": names});
        let (status, text, at) = diag(&check_resource(&p, &small()).unwrap_err());
        assert_eq!(status, 422);
        assert_eq!(at, vec!["Patient.name"]);
        assert!(
            text.contains("repeats 6 times") && text.contains("at most 5"),
            "{text}"
        );
        // Nested: the index of the parent is named.
        let p = json!({"resourceType": "Patient", "name": [{"given": ["a","b","c","d","e","f"]}]});
        let (_, _, at) = diag(&check_resource(&p, &small()).unwrap_err());
        assert_eq!(at, vec!["Patient.name[0].given"]);
    }

    #[test]
    fn a_long_string_is_refused_but_binary_data_is_not() {
        let p = json!({"resourceType": "Patient", "name": [{"text": "x".repeat(21)}]});
        let (status, text, at) = diag(&check_resource(&p, &small()).unwrap_err());
        assert_eq!(status, 422);
        assert_eq!(at, vec!["Patient.name[0].text"]);
        assert!(
            text.contains("21 bytes") && text.contains("at most 20"),
            "{text}"
        );
        let b = json!({"resourceType": "Binary", "contentType": "application/pdf", "data": "QUJD".repeat(100)});
        assert!(check_resource(&b, &small()).is_ok());
        let e = json!({"resourceType": "Basic", "extension": [{"url": "u", "valueBase64Binary": "QUJD".repeat(100)}]});
        assert!(check_resource(&e, &small()).is_ok());
        let e = json!({"resourceType": "Basic", "extension": [{"url": "u", "valueString": "x".repeat(21)}]});
        let (_, _, at) = diag(&check_resource(&e, &small()).unwrap_err());
        assert_eq!(at, vec!["Basic.extension[0].valueString"]);
    }

    #[test]
    fn too_many_elements_name_where_the_count_passed() {
        let names: Vec<_> = (0..5)
            .map(|i| json!({"family": format!("F{i}"), "given": ["a", "b", "c", "d"], "prefix": ["Dr"], "suffix": ["X"]}))
            .collect();
        let p = json!({"resourceType": "Patient", "name": names, "id": "x"});
        let (status, text, at) = diag(&check_resource(&p, &small()).unwrap_err());
        assert_eq!(status, 422);
        assert!(at[0].starts_with("Patient.name[4]"), "{at:?}");
        assert!(text.contains("more than 50 elements"), "{text}");
    }

    #[test]
    fn a_transaction_is_checked_entry_by_entry() {
        let entry = |n: usize| {
            let names: Vec<Value> = (0..n).map(|_| json!({"family": "F"})).collect();
            json!({"resource": {"resourceType": "Patient", "name": names},
                   "request": {"method": "POST", "url": "Patient"}})
        };
        // Eight entries (more than max_repeats) of small resources: fine.
        let b = json!({"resourceType": "Bundle", "type": "transaction",
            "entry": (0..8).map(|_| entry(1)).collect::<Vec<_>>()});
        assert!(check_body(&b, &small()).is_ok());
        // One entry over the limit is named.
        let mut entries: Vec<_> = (0..3).map(|_| entry(1)).collect();
        entries.push(entry(6));
        let b = json!({"resourceType": "Bundle", "type": "batch", "entry": entries});
        let (status, _, at) = diag(&check_body(&b, &small()).unwrap_err());
        assert_eq!(status, 422);
        assert_eq!(at, vec!["Bundle.entry[3].resource.name"]);
        // A collection is a resource as a whole.
        let b = json!({"resourceType": "Bundle", "type": "collection",
            "entry": (0..8).map(|_| entry(1)).collect::<Vec<_>>()});
        let (_, _, at) = diag(&check_body(&b, &small()).unwrap_err());
        assert_eq!(at, vec!["Bundle.entry"]);
    }

    /// (elements, longest array, longest non-binary string) of `v`.
    fn measure(v: &Value, key: Option<&str>, m: &mut (usize, usize, usize)) {
        m.0 += 1;
        match v {
            Value::String(s) if !key.is_some_and(is_binary) => m.2 = m.2.max(s.len()),
            Value::Array(a) => {
                m.1 = m.1.max(a.len());
                a.iter().for_each(|x| measure(x, key, m));
            }
            Value::Object(o) => o.iter().for_each(|(k, x)| measure(x, Some(k), m)),
            _ => {}
        }
    }

    /// Real records are far inside the default limits: every official R4
    /// example and every Synthea bundle and its entries (hazard H-300).
    #[test]
    fn real_records_are_within_the_default_limits() {
        let root = std::env::var("WARDLINE_TESTDATA").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata").to_owned()
        });
        let root = std::path::PathBuf::from(root);
        let limits = Limits::default();
        let (mut checked, mut most) = (0usize, (0usize, 0usize, 0usize));
        for sub in ["fhir-r4-examples", "synthea-r4/bundles"] {
            let Ok(dir) = std::fs::read_dir(root.join(sub)) else {
                eprintln!("SKIPPED: no test data at {}", root.join(sub).display());
                continue;
            };
            for f in dir.flatten() {
                let path = f.path();
                let name = path.to_string_lossy();
                let text = if name.ends_with(".json") {
                    std::fs::read_to_string(&path).unwrap()
                } else if name.ends_with(".json.gz") {
                    let out = std::process::Command::new("gzip")
                        .arg("-dc")
                        .arg(&path)
                        .output()
                        .expect("gzip");
                    String::from_utf8(out.stdout).unwrap()
                } else {
                    continue;
                };
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                check_body(&v, &limits).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let resources: Vec<&Value> = match v["entry"].as_array() {
                    Some(es) if v["resourceType"] == "Bundle" => {
                        es.iter().filter_map(|e| e.get("resource")).collect()
                    }
                    _ => vec![&v],
                };
                for r in resources {
                    check_resource(r, &limits)
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    let mut m = (0, 0, 0);
                    measure(r, None, &mut m);
                    most = (most.0.max(m.0), most.1.max(m.1), most.2.max(m.2));
                    checked += 1;
                }
            }
        }
        eprintln!(
            "{checked} resources within the limits; the most: {} elements, {} repeats, a string of {} bytes",
            most.0, most.1, most.2
        );
    }

    #[test]
    fn searches_are_bounded_by_parameters_and_values() {
        let p = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let l = small();
        assert!(check_search(&p(&[("name", "a,b,c"), ("_id", "1,2,3,4,5,6")]), &l).is_ok());
        let e = check_search(&p(&[("a", "1"); 5]), &l).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.to_string().contains("5 parameters"), "{e}");
        let e = check_search(&p(&[("name", "a,b,c,d")]), &l).unwrap_err();
        assert_eq!(
            (e.status, e.issues[0].expression.clone()),
            (400, vec!["name".to_owned()])
        );
        assert!(e.to_string().contains("4 values"), "{e}");
        // An escaped comma is part of a value.
        assert!(check_search(&p(&[("name", r"a\,b\,c\,d")]), &l).is_ok());
        let e = check_search(&p(&[("name", "a,b,c"), ("family", "x,y,z")]), &l).unwrap_err();
        assert!(e.to_string().contains("values in all"), "{e}");
        let e = check_search(&p(&[("_id", "1,2,3,4"), ("_id", "5,6,7")]), &l).unwrap_err();
        assert!(e.to_string().contains("_id names more than 6"), "{e}");
    }
}
