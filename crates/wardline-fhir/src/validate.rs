//! Structural validation of a resource against the R4 model
//! ([`Definitions::validate`]).
//!
//! Checked: the resource type; every property is a known element (choice
//! elements by their type suffix); `_prop` siblings of primitives; arrays where
//! the element repeats and single values where it does not; required elements;
//! primitive JSON types and formats; complex types and backbone elements
//! recursively; contained and nested resources by their own type; empty
//! objects, arrays and strings; strings free of control characters (below
//! U+0020 except tab, CR and LF, as FHIR's `string` requires); decimals an
//! `f64` can hold (what the search index keeps); codes of every element bound
//! `required` to a value set the server knows ([`Definitions::required_binding`]:
//! a `code` must be one of its codes, a Coding its system and code, a
//! CodeableConcept must carry such a Coding); the NHS number check digit.
//! FHIRPath invariants (`constraint`) are not evaluated.
//!
//! The whole resource is checked, `id` and `meta` included: the core
//! validates what the client sent before it stamps `id` and `meta`.
//!
//! Paths are built only when an issue is reported, so the happy path does not
//! allocate per element beyond the element-path lookups.

use serde_json::{Map, Value};

use crate::definitions::{Definitions, ElementDef, TypeKind, ValueSetCodes};
use crate::error::{FhirError, Issue};

impl Definitions {
    pub fn validate(&self, resource: &Value) -> Result<(), FhirError> {
        let mut issues = Vec::new();
        self.validate_resource(resource, "", &mut issues);
        if issues.is_empty() {
            Ok(())
        } else {
            Err(FhirError::from_issues(400, issues))
        }
    }

    fn validate_resource(&self, v: &Value, at: &str, issues: &mut Vec<Issue>) {
        let Some(obj) = v.as_object() else {
            issues.push(
                Issue::error("structure", "a resource must be a JSON object").at(or_root(at)),
            );
            return;
        };
        let Some(rt) = obj.get("resourceType").and_then(Value::as_str) else {
            issues.push(
                Issue::error("required", "resourceType is missing").at(join(at, "resourceType")),
            );
            return;
        };
        if !self.is_resource_type(rt) {
            issues.push(
                Issue::error("invalid", format!("'{rt}' is not a FHIR R4 resource type"))
                    .at(join(at, "resourceType")),
            );
            return;
        }
        let here = if at.is_empty() {
            rt.to_owned()
        } else {
            at.to_owned()
        };
        self.validate_object(obj, rt, rt, &here, true, issues);
    }

    /// Validates the properties of `obj` whose elements live under `ctx`
    /// (a type name or a backbone element path).
    fn validate_object(
        &self,
        obj: &Map<String, Value>,
        ctx: &str,
        type_name: &str,
        at: &str,
        is_resource: bool,
        issues: &mut Vec<Issue>,
    ) {
        if obj.is_empty() {
            issues
                .push(Issue::error("structure", "empty objects are not allowed").at(at.to_owned()));
            return;
        }
        let mut choices: Vec<&str> = Vec::new();
        for (key, value) in obj {
            if is_resource && key == "resourceType" {
                continue;
            }
            let (name, is_ext) = match key.strip_prefix('_') {
                Some(n) => (n, true),
                None => (key.as_str(), false),
            };
            let Some((el, type_code)) = self.find_element(ctx, name) else {
                issues.push(
                    Issue::error(
                        "structure",
                        format!("unknown element '{key}' in {type_name}"),
                    )
                    .at(join(at, key)),
                );
                continue;
            };
            let repeats = el.max != Some(1) && el.max != Some(0);
            if !is_ext && el.path.ends_with("[x]") {
                if choices.contains(&el.path.as_str()) {
                    issues.push(
                        Issue::error(
                            "structure",
                            format!(
                                "only one type of '{}' may be given",
                                el.path.rsplit('.').next().unwrap_or_default()
                            ),
                        )
                        .at(join(at, key)),
                    );
                    continue;
                }
                choices.push(el.path.as_str());
            }
            if is_ext {
                self.validate_primitive_ext(value, repeats, &join(at, key), issues);
                continue;
            }
            let path = |i: Option<usize>| match i {
                Some(i) => format!("{}[{i}]", join(at, key)),
                None => join(at, key),
            };
            match value {
                Value::Array(items) => {
                    if !repeats {
                        issues.push(
                            Issue::error(
                                "structure",
                                format!("'{key}' does not repeat, so it must not be an array"),
                            )
                            .at(path(None)),
                        );
                        continue;
                    }
                    if items.is_empty() {
                        issues.push(
                            Issue::error("structure", "empty arrays are not allowed")
                                .at(path(None)),
                        );
                    }
                    let has_ext = obj.contains_key(&format!("_{key}"));
                    for (i, item) in items.iter().enumerate() {
                        if item.is_null() && has_ext {
                            continue;
                        }
                        self.validate_value(item, el, &type_code, &path(Some(i)), issues);
                    }
                }
                other => {
                    if repeats {
                        issues.push(
                            Issue::error(
                                "structure",
                                format!("'{key}' repeats, so it must be an array"),
                            )
                            .at(path(None)),
                        );
                        continue;
                    }
                    self.validate_value(other, el, &type_code, &path(None), issues);
                }
            }
        }
        // Required elements.
        let prefix = format!("{ctx}.");
        if let Some(td) = self.types.get(ctx.split('.').next().unwrap_or(ctx)) {
            for el in &td.elements {
                if el.min == 0 {
                    continue;
                }
                let Some(rest) = el.path.strip_prefix(&prefix) else {
                    continue;
                };
                if rest.contains('.') {
                    continue;
                }
                let present = if let Some(base) = rest.strip_suffix("[x]") {
                    obj.keys().any(|k| {
                        k.starts_with(base)
                            && k.len() > base.len()
                            && k[base.len()..].starts_with(|c: char| c.is_ascii_uppercase())
                    })
                } else {
                    obj.contains_key(rest) || obj.contains_key(&format!("_{rest}"))
                };
                if !present {
                    issues.push(
                        Issue::error("required", format!("'{rest}' is required in {type_name}"))
                            .at(join(at, rest.trim_end_matches("[x]"))),
                    );
                }
            }
        }
    }

    /// Finds the element for property `name` under `ctx`, with the type of the
    /// value (resolved from the choice suffix for `[x]` elements).
    fn find_element(&self, ctx: &str, name: &str) -> Option<(&ElementDef, String)> {
        let path = format!("{ctx}.{name}");
        if let Some(el) = self.element(&path) {
            let mut t = el.types.first().cloned().unwrap_or_default();
            // Resource.id is typed System.String in the snapshot but is an `id`.
            if name == "id" && self.is_resource_type(ctx) {
                t = "id".into();
            }
            return Some((el, t));
        }
        // Choice: longest prefix of `name` that is a `[x]` element.
        for (i, c) in name.char_indices().skip(1) {
            if c.is_ascii_uppercase() {
                let base = &name[..i];
                if let Some(el) = self.element(&format!("{ctx}.{base}[x]")) {
                    let suffix = &name[i..];
                    let t = el.types.iter().find(|t| {
                        let mut cs = t.chars();
                        cs.next().is_some_and(|f| {
                            f.to_ascii_uppercase() == suffix.chars().next().unwrap_or(' ')
                        }) && cs.as_str() == &suffix[1..]
                    })?;
                    return Some((el, t.clone()));
                }
            }
        }
        None
    }

    fn validate_value(
        &self,
        v: &Value,
        el: &ElementDef,
        type_code: &str,
        at: &str,
        issues: &mut Vec<Issue>,
    ) {
        if let Some(cr) = &el.content_reference {
            let target = cr.trim_start_matches('#');
            match v.as_object() {
                Some(o) => self.validate_object(o, target, target, at, false, issues),
                None => {
                    issues.push(Issue::error("structure", "expected an object").at(at.to_owned()))
                }
            }
            return;
        }
        match type_code {
            "BackboneElement" | "Element" => match v.as_object() {
                Some(o) => self.validate_object(o, &el.path, &el.path, at, false, issues),
                None => {
                    issues.push(Issue::error("structure", "expected an object").at(at.to_owned()))
                }
            },
            "Resource" => self.validate_resource(v, at, issues),
            t => match self.types.get(t) {
                Some(td) if td.kind == TypeKind::PrimitiveType => {
                    self.validate_primitive(v, t, at, issues)
                }
                Some(td) if td.kind == TypeKind::Resource => self.validate_resource(v, at, issues),
                Some(_) => match v.as_object() {
                    Some(o) => {
                        self.validate_object(o, t, t, at, false, issues);
                        if t == "Identifier" {
                            self.check_nhs_number(o, at, issues);
                        }
                        if t == "Extension" && !o.contains_key("url") {
                            issues.push(
                                Issue::error("required", "an extension needs a url")
                                    .at(join(at, "url")),
                            );
                        }
                    }
                    None => issues.push(
                        Issue::error("structure", format!("expected a {t} object"))
                            .at(at.to_owned()),
                    ),
                },
                // FHIRPath system types (e.g. the `value` of a primitive) and
                // `xhtml` are checked as primitives.
                None => self.validate_primitive(v, t, at, issues),
            },
        }
        if matches!(type_code, "code" | "Coding" | "CodeableConcept")
            && let Some(vs) = self.required_binding(&el.path)
        {
            check_binding(v, vs, type_code, at, issues);
        }
    }

    fn check_nhs_number(&self, o: &Map<String, Value>, at: &str, issues: &mut Vec<Issue>) {
        if o.get("system").and_then(Value::as_str) == Some(crate::NHS_NUMBER_SYSTEM)
            && let Some(value) = o.get("value").and_then(Value::as_str)
            && !crate::nhs_number::is_valid(value)
        {
            issues.push(
                Issue::error(
                    "value",
                    format!("'{value}' is not a valid NHS number (Modulus 11 check failed)"),
                )
                .at(join(at, "value")),
            );
        }
    }

    fn validate_primitive_ext(&self, v: &Value, repeats: bool, at: &str, issues: &mut Vec<Issue>) {
        let check = |x: &Value, at: String, issues: &mut Vec<Issue>| match x.as_object() {
            Some(o) => self.validate_object(o, "Element", "Element", &at, false, issues),
            None => issues
                .push(Issue::error("structure", "expected an object with id/extension").at(at)),
        };
        match (v, repeats) {
            (Value::Array(a), true) => {
                for (i, x) in a.iter().enumerate() {
                    if !x.is_null() {
                        check(x, format!("{at}[{i}]"), issues);
                    }
                }
            }
            (x, false) => check(x, at.to_owned(), issues),
            _ => issues.push(Issue::error("structure", "expected an array").at(at.to_owned())),
        }
    }

    fn validate_primitive(&self, v: &Value, t: &str, at: &str, issues: &mut Vec<Issue>) {
        let bad = |issues: &mut Vec<Issue>, msg: String| {
            issues.push(Issue::error("value", msg).at(at.to_owned()))
        };
        match t {
            "boolean" | "Boolean" => {
                if !v.is_boolean() {
                    bad(issues, format!("expected a boolean, found {}", kind(v)));
                }
            }
            "integer" | "Integer" => match v.as_i64() {
                Some(i) if i32::try_from(i).is_ok() => {}
                _ => bad(
                    issues,
                    format!("expected a 32-bit integer, found {}", kind(v)),
                ),
            },
            "positiveInt" => match v.as_i64() {
                Some(i) if i > 0 && i32::try_from(i).is_ok() => {}
                _ => bad(
                    issues,
                    format!("expected a positive integer, found {}", kind(v)),
                ),
            },
            "unsignedInt" => match v.as_i64() {
                Some(i) if i >= 0 && i32::try_from(i).is_ok() => {}
                _ => bad(
                    issues,
                    format!("expected a non-negative integer, found {}", kind(v)),
                ),
            },
            "decimal" | "Decimal" => match v {
                // Kept as written; the index holds it as an f64, so a value
                // beyond one's range would be stored but never found.
                Value::Number(n) if n.as_f64().is_none() => bad(
                    issues,
                    format!("{n} is out of the range of decimals Wardline can search"),
                ),
                Value::Number(_) => {}
                _ => bad(issues, format!("expected a number, found {}", kind(v))),
            },
            _ => {
                let Some(s) = v.as_str() else {
                    bad(
                        issues,
                        format!("expected a string ({t}), found {}", kind(v)),
                    );
                    return;
                };
                if let Some(c) = s
                    .chars()
                    .find(|c| *c < ' ' && !matches!(c, '\t' | '\r' | '\n'))
                {
                    bad(
                        issues,
                        format!(
                            "contains the control character U+{:04X}; FHIR strings may hold none but tab, carriage return and line feed",
                            c as u32
                        ),
                    );
                    return;
                }
                if s.is_empty() {
                    bad(issues, "empty strings are not allowed".into());
                    return;
                }
                if s.trim().is_empty() && t != "string" && t != "markdown" {
                    bad(issues, format!("'{s}' is not a valid {t}"));
                    return;
                }
                let ok = match t {
                    "id" => {
                        s.len() <= 64
                            && s.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                    }
                    "code" => s.trim() == s && !s.contains("  "),
                    "uri" | "url" | "canonical" | "oid" | "uuid" => {
                        !s.chars().any(char::is_whitespace)
                    }
                    "date" => valid_date(s, false),
                    "dateTime" | "DateTime" => valid_date(s, true),
                    "instant" => {
                        valid_date(s, true)
                            && s.contains('T')
                            && (s.ends_with('Z')
                                || s[s.len().saturating_sub(6)..].starts_with(['+', '-']))
                            && s.split_once('T').is_some_and(|(_, t)| {
                                t.len() >= 8 && t[..8].matches(':').count() == 2
                            })
                    }
                    "time" | "Time" => valid_time(s),
                    "base64Binary" => s.bytes().all(|b| {
                        b.is_ascii_alphanumeric()
                            || matches!(b, b'+' | b'/' | b'=' | b' ' | b'\n' | b'\r')
                    }),
                    "xhtml" => s.trim_start().starts_with("<div"),
                    _ => true,
                };
                if !ok {
                    bad(issues, format!("'{s}' is not a valid {t}"));
                }
            }
        }
    }
}

/// A value of an element bound `required` to `vs` must be from it.
fn check_binding(
    v: &Value,
    vs: &ValueSetCodes,
    type_code: &str,
    at: &str,
    issues: &mut Vec<Issue>,
) {
    let in_set = |c: &Value| match (
        c.get("system").and_then(Value::as_str),
        c.get("code").and_then(Value::as_str),
    ) {
        (Some(system), Some(code)) => vs.has(system, code),
        _ => false,
    };
    let (ok, found) = match type_code {
        // Not a string: already reported as the wrong type.
        "code" => match v.as_str() {
            Some(code) => (code.is_empty() || vs.has_code(code), format!("'{code}'")),
            None => (true, String::new()),
        },
        "Coding" => (
            !v.is_object() || in_set(v),
            format!(
                "'{}|{}' is not",
                v.get("system").and_then(Value::as_str).unwrap_or_default(),
                v.get("code").and_then(Value::as_str).unwrap_or_default()
            ),
        ),
        _ => (
            !v.is_object()
                || v.get("coding")
                    .and_then(Value::as_array)
                    .is_some_and(|cs| cs.iter().any(in_set)),
            "it needs a coding".into(),
        ),
    };
    if ok {
        return;
    }
    let mut listed: Vec<&str> = vs.codes().take(13).collect();
    let more = if listed.len() > 12 {
        listed.truncate(12);
        ", …"
    } else {
        ""
    };
    let systems: Vec<&str> = vs.systems.iter().map(|(s, _)| s.as_str()).collect();
    let codes = listed.join(", ");
    let diagnostics = match type_code {
        "code" => format!(
            "{found} is not a code of the required value set {} ({codes}{more})",
            vs.url
        ),
        _ => format!(
            "{found} from the required value set {} (system {}; codes {codes}{more})",
            vs.url,
            systems.join(" or ")
        ),
    };
    issues.push(Issue::error("code-invalid", diagnostics).at(at.to_owned()));
}

fn valid_date(s: &str, allow_time: bool) -> bool {
    if !allow_time && s.contains('T') {
        return false;
    }
    crate::datetime::parse_range(s).is_some() && (!s.contains('T') || s.len() >= 16)
}

fn valid_time(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 3
        && parts[0].len() == 2
        && parts[1].len() == 2
        && parts[0].parse::<u8>().is_ok_and(|h| h < 24)
        && parts[1].parse::<u8>().is_ok_and(|m| m < 60)
        && parts[2]
            .split('.')
            .next()
            .is_some_and(|x| x.len() == 2 && x.parse::<u8>().is_ok_and(|s| s < 61))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

fn or_root(at: &str) -> String {
    if at.is_empty() {
        "Resource".into()
    } else {
        at.into()
    }
}

#[cfg(test)]
mod tests {
    use crate::definitions::r4;
    use proptest::prelude::*;
    use serde_json::json;

    fn errs(v: serde_json::Value) -> Vec<(String, String)> {
        match r4().validate(&v) {
            Ok(()) => vec![],
            Err(e) => e
                .issues
                .into_iter()
                .map(|i| (i.expression.join(","), i.diagnostics))
                .collect(),
        }
    }

    #[test]
    fn accepts_a_good_patient() {
        let e = errs(
            json!({"resourceType": "Patient", "id": "a", "name": [{"family": "X", "given": ["Y"]}],
            "birthDate": "1970-01-01", "deceasedBoolean": false,
            "_birthDate": {"extension": [{"url": "http://x", "valueString": "y"}]},
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}]}),
        );
        assert!(e.is_empty(), "{e:?}");
    }

    #[test]
    fn rejects_with_paths() {
        let cases = [
            (
                json!({"resourceType": "Patient", "nmae": []}),
                "Patient.nmae",
            ),
            (
                json!({"resourceType": "Patient", "active": "yes"}),
                "Patient.active",
            ),
            (
                json!({"resourceType": "Patient", "birthDate": "1970-13-01"}),
                "Patient.birthDate",
            ),
            (
                json!({"resourceType": "Patient", "name": {"family": "x"}}),
                "Patient.name",
            ),
            (
                json!({"resourceType": "Patient", "gender": ["male"]}),
                "Patient.gender",
            ),
            (
                json!({"resourceType": "Observation", "code": {"text": "x"}}),
                "Observation.status",
            ),
            (
                json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "valueFoo": 1}),
                "Observation.valueFoo",
            ),
            (
                json!({"resourceType": "Patient", "name": [{"family": ""}]}),
                "Patient.name[0].family",
            ),
            (
                json!({"resourceType": "Patient", "id": "a b"}),
                "Patient.id",
            ),
            (
                json!({"resourceType": "Patient", "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765918"}]}),
                "Patient.identifier[0].value",
            ),
            (
                json!({"resourceType": "Patient", "contained": [{"resourceType": "Organization", "nmae": "x"}]}),
                "Patient.contained[0].nmae",
            ),
            (json!({"resourceType": "Nope"}), "resourceType"),
            (
                json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "valueString": "a", "valueBoolean": true}),
                "Observation.valueBoolean",
            ),
        ];
        for (v, path) in cases {
            let e = errs(v.clone());
            assert!(
                e.iter().any(|(p, _)| p == path),
                "{v}: expected an issue at {path}, got {e:?}"
            );
        }
    }

    #[test]
    fn refuses_control_characters_in_any_string() {
        for c in [
            '\u{0}', '\u{1}', '\u{7}', '\u{b}', '\u{c}', '\u{1b}', '\u{1f}',
        ] {
            let cases = [
                (
                    json!({"resourceType": "Patient", "name": [{"family": format!("a{c}b")}]}),
                    "Patient.name[0].family",
                ),
                (
                    json!({"resourceType": "Patient", "id": format!("a{c}")}),
                    "Patient.id",
                ),
                (
                    json!({"resourceType": "Patient", "gender": format!("male{c}")}),
                    "Patient.gender",
                ),
                (
                    json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                        "valueString": format!("{c}")}),
                    "Observation.valueString",
                ),
                (
                    json!({"resourceType": "Patient", "extension": [{"url": format!("http://x/{c}"), "valueBoolean": true}]}),
                    "Patient.extension[0].url",
                ),
                (
                    json!({"resourceType": "Patient", "meta": {"source": format!("{c}")}}),
                    "Patient.meta.source",
                ),
                (
                    json!({"resourceType": "Patient", "text": {"status": "generated",
                        "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{c}</div>")}}),
                    "Patient.text.div",
                ),
            ];
            for (v, path) in cases {
                let e = errs(v.clone());
                assert!(
                    e.iter()
                        .any(|(p, d)| p == path && d.contains("control character")),
                    "{v}: expected a control-character issue at {path}, got {e:?}"
                );
            }
        }
        let e = errs(json!({"resourceType": "Patient", "name": [{"text": "a\tb\r\nc"}]}));
        assert!(e.is_empty(), "{e:?}");
    }

    #[test]
    fn validates_meta_like_any_element() {
        for (meta, path) in [
            (json!({"versionId": {"a": 1}}), "Patient.meta.versionId"),
            (json!({"versionId": "a b"}), "Patient.meta.versionId"),
            (
                json!({"lastUpdated": "2020-01-01"}),
                "Patient.meta.lastUpdated",
            ),
            (json!({"tag": {"code": "x"}}), "Patient.meta.tag"),
            (json!({"colour": 1}), "Patient.meta.colour"),
            (json!("x"), "Patient.meta"),
        ] {
            let e = errs(json!({"resourceType": "Patient", "meta": meta}));
            assert!(e.iter().any(|(p, _)| p == path), "{meta}: {e:?}");
        }
        let e = errs(json!({"resourceType": "Patient", "meta": {"versionId": "3",
            "lastUpdated": "2020-01-01T00:00:00Z", "profile": ["http://x"]}}));
        assert!(e.is_empty(), "{e:?}");
    }

    #[test]
    fn refuses_decimals_beyond_an_f64() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1e400}}"#,
        )
        .unwrap();
        let e = errs(v);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].0, "Observation.valueQuantity.value");
        let v: serde_json::Value = serde_json::from_str(
            r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":12345678901234567890.123}}"#,
        )
        .unwrap();
        assert!(errs(v).is_empty());
    }

    #[test]
    fn checks_required_bindings() {
        let bad = [
            (
                json!({"resourceType": "Patient", "gender": "m"}),
                "Patient.gender",
            ),
            (
                json!({"resourceType": "Patient", "gender": "banana"}),
                "Patient.gender",
            ),
            (
                json!({"resourceType": "Patient", "contact": [{"gender": "F"}]}),
                "Patient.contact[0].gender",
            ),
            (
                json!({"resourceType": "Observation", "status": "banana", "code": {"text": "x"}}),
                "Observation.status",
            ),
            // In a data type, at any depth.
            (
                json!({"resourceType": "Patient", "name": [{"use": "nick"}]}),
                "Patient.name[0].use",
            ),
            (
                json!({"resourceType": "Patient", "telecom": [{"system": "pager", "value": "1"}, {"system": "carrier-pigeon", "value": "2"}]}),
                "Patient.telecom[1].system",
            ),
            // A repeating code.
            (
                json!({"resourceType": "CapabilityStatement", "status": "active", "date": "2020", "kind": "instance",
                "fhirVersion": "4.0.1", "format": ["json"], "implementation": {"description": "x"},
                "patchFormat": ["application/json-patch+json"], "instantiates": ["http://x"],
                "rest": [{"mode": "server", "interaction": [{"code": "transaction"}, {"code": "teleport"}]}]}),
                "CapabilityStatement.rest[0].interaction[1].code",
            ),
            // In a contained resource and in a Bundle entry.
            (
                json!({"resourceType": "Patient", "contained": [{"resourceType": "Patient", "id": "c", "gender": "x"}]}),
                "Patient.contained[0].gender",
            ),
            (
                json!({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Patient", "gender": "x"}}]}),
                "Bundle.entry[0].resource.gender",
            ),
            (
                json!({"resourceType": "Bundle", "type": "banana"}),
                "Bundle.type",
            ),
            // CodeableConcept: a coding of the value set, by system and code.
            (
                json!({"resourceType": "Condition", "subject": {"reference": "Patient/p"},
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "gone"}]}}),
                "Condition.clinicalStatus",
            ),
            (
                json!({"resourceType": "Condition", "subject": {"reference": "Patient/p"},
                "clinicalStatus": {"coding": [{"system": "http://example.org", "code": "active"}]}}),
                "Condition.clinicalStatus",
            ),
            (
                json!({"resourceType": "Condition", "subject": {"reference": "Patient/p"},
                "clinicalStatus": {"text": "active"}}),
                "Condition.clinicalStatus",
            ),
            // Choice of type, backbone elements reused by contentReference.
            (
                json!({"resourceType": "Questionnaire", "status": "draft",
                "item": [{"linkId": "1", "type": "group", "item": [{"linkId": "1.1", "type": "essay"}]}]}),
                "Questionnaire.item[0].item[0].type",
            ),
        ];
        for (v, path) in bad {
            let e = errs(v.clone());
            assert!(
                e.iter().any(|(p, _)| p == path),
                "{v}: expected an issue at {path}, got {e:?}"
            );
        }
        let e = errs(json!({"resourceType": "Patient", "gender": "banana"}));
        assert!(
            e[0].1.contains("administrative-gender")
                && e[0].1.contains("female, male, other, unknown"),
            "{e:?}"
        );
        let good = [
            json!({"resourceType": "Patient", "gender": "unknown", "contact": [{"gender": "female"}],
                "name": [{"use": "maiden", "family": "x"}], "telecom": [{"system": "phone", "value": "1"}]}),
            // An element with only an extension, no code.
            json!({"resourceType": "Patient", "_gender": {"extension": [{"url": "http://x", "valueBoolean": true}]}}),
            json!({"resourceType": "Condition", "subject": {"reference": "Patient/p"},
                "clinicalStatus": {"coding": [{"system": "http://example.org", "code": "x"},
                    {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "remission"}],
                    "text": "in remission"}}),
            // Observation.status: a code nested under another in its code system.
            json!({"resourceType": "Observation", "status": "corrected", "code": {"text": "x"}}),
            // Extensible and preferred bindings are not enforced.
            json!({"resourceType": "Patient", "maritalStatus": {"coding": [{"system": "http://example.org", "code": "x"}]}}),
        ];
        for v in good {
            let e = errs(v.clone());
            assert!(e.is_empty(), "{v}: {e:?}");
        }
    }

    proptest! {
        /// A string holding a C0 control character other than tab, CR or LF
        /// is refused wherever it is; one without is accepted.
        #[test]
        fn control_characters_are_refused(
            before in "[a-zA-Z \t\r\n\u{e9}\u{7f}]{0,10}",
            after in "[a-zA-Z \t\r\n\u{e9}]{0,10}",
            c in (0u32..0x20).prop_filter("not tab, CR, LF", |c| ![9, 10, 13].contains(c)),
            with in any::<bool>(),
            where_ in 0usize..3,
        ) {
            let s = if with {
                format!("{before}{}{after}", char::from_u32(c).unwrap())
            } else {
                format!("x{before}{after}")
            };
            let (v, path) = match where_ {
                0 => (json!({"resourceType": "Patient", "name": [{"given": ["a", s]}]}), "Patient.name[0].given[1]"),
                1 => (json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                        "note": [{"text": s}]}), "Observation.note[0].text"),
                _ => (json!({"resourceType": "Patient", "address": [{"line": [s]}]}), "Patient.address[0].line[0]"),
            };
            let e = errs(v);
            if with {
                prop_assert!(e.iter().any(|(p, d)| p == path && d.contains("control character")), "{:?}", e);
            } else {
                prop_assert!(e.is_empty(), "{:?}", e);
            }
        }
    }
}
