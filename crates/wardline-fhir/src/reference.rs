//! Finding and rewriting the literal references of a resource.
//!
//! A reference is the string value of any `reference` key, at any depth of a
//! JSON value: `Reference.reference` wherever the type is used, so inside
//! arrays, backbone elements, extensions (`valueReference`) and contained
//! resources alike, whatever the element's name. This is the walk the layers
//! above share when they look for or repoint "the references of a resource";
//! it is not the search-parameter view ([`crate::extract`]), which goes
//! through the model.
//!
//! A `reference` key whose value is not a string is not a reference but an
//! element that happens to be called so (`Consent.provision.actor.reference`
//! is itself a `Reference`): the walk goes on inside it. A string under any
//! other key, or the value walked itself, is never a reference.
//!
//! The walk is depth first, in document order (object members in the order
//! of the document, as the workspace keeps it with serde_json's
//! `preserve_order`; array items in order), so [`references`],
//! [`references_with_pointers`] and the callbacks of [`rewrite_references`]
//! see the same references in the same order.
//!
//! Which references a caller cares about is the caller's to say, at the call
//! site: the rewriting functions take a closure that answers, for one
//! reference, what it becomes (or `None` to leave it), and [`is_reference_to`]
//! and [`unversioned`] are the usual matching rules, not the only ones.

use serde_json::Value;
use std::convert::Infallible;

/// Every reference in `v`, depth first in document order.
pub fn references(v: &Value) -> References<'_> {
    let mut stack = Vec::new();
    push(&mut stack, v);
    References { stack }
}

/// The iterator of [`references`].
pub struct References<'a> {
    stack: Vec<Frame<'a>>,
}

enum Frame<'a> {
    Object(serde_json::map::Iter<'a>),
    Array(std::slice::Iter<'a, Value>),
}

fn push<'a>(stack: &mut Vec<Frame<'a>>, v: &'a Value) {
    match v {
        Value::Object(m) => stack.push(Frame::Object(m.iter())),
        Value::Array(a) => stack.push(Frame::Array(a.iter())),
        _ => {}
    }
}

impl<'a> Iterator for References<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        loop {
            let child = match self.stack.last_mut()? {
                Frame::Object(it) => match it.next() {
                    Some((k, Value::String(s))) if k == "reference" => return Some(s),
                    Some((_, x)) => x,
                    None => {
                        self.stack.pop();
                        continue;
                    }
                },
                Frame::Array(it) => match it.next() {
                    Some(x) => x,
                    None => {
                        self.stack.pop();
                        continue;
                    }
                },
            };
            push(&mut self.stack, child);
        }
    }
}

/// Every reference in `v` with the JSON Pointer (RFC 6901) of its string,
/// e.g. `/performer/1/reference`, in the order of [`references`].
/// `v.pointer(p)` finds the string again, and `v.pointer_mut(p)` changes just
/// that one. Keys are escaped (`~` as `~0`, `/` as `~1`), so splitting a
/// pointer on `/` gives its keys and array indexes, in order.
pub fn references_with_pointers(v: &Value) -> Vec<(String, &str)> {
    fn walk<'a>(v: &'a Value, at: &mut String, out: &mut Vec<(String, &'a str)>) {
        let len = at.len();
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    at.push('/');
                    at.push_str(&k.replace('~', "~0").replace('/', "~1"));
                    match x {
                        Value::String(s) if k == "reference" => out.push((at.clone(), s)),
                        _ => walk(x, at, out),
                    }
                    at.truncate(len);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    at.push('/');
                    at.push_str(&i.to_string());
                    walk(x, at, out);
                    at.truncate(len);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut String::new(), &mut out);
    out
}

/// Rewrites references in place: `f` is called once for every reference, in
/// the order of [`references`], and returns what it becomes, or `None` to
/// leave it. Returns how many references changed (a replacement equal to the
/// old value is not a change). Nothing but reference strings is touched.
pub fn rewrite_references(v: &mut Value, mut f: impl FnMut(&str) -> Option<String>) -> usize {
    match try_rewrite_references(v, |s| Ok::<_, Infallible>(f(s))) {
        Ok(n) => n,
        Err(never) => match never {},
    }
}

/// [`rewrite_references`] with a closure that may fail: the walk stops at the
/// first error, which is returned; the references already rewritten by then
/// stay rewritten.
pub fn try_rewrite_references<E>(
    v: &mut Value,
    mut f: impl FnMut(&str) -> Result<Option<String>, E>,
) -> Result<usize, E> {
    fn walk<E>(
        v: &mut Value,
        f: &mut impl FnMut(&str) -> Result<Option<String>, E>,
        changed: &mut usize,
    ) -> Result<(), E> {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    match x {
                        Value::String(s) if k == "reference" => {
                            if let Some(to) = f(s)?
                                && to != *s
                            {
                                *s = to;
                                *changed += 1;
                            }
                        }
                        _ => walk(x, f, changed)?,
                    }
                }
            }
            Value::Array(a) => {
                for x in a {
                    walk(x, f, changed)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
    let mut changed = 0;
    walk(v, &mut f, &mut changed)?;
    Ok(changed)
}

/// The reference without a trailing `/_history/{version}`:
/// `Patient/1/_history/2` → `Patient/1`. Anything else is returned as it is.
pub fn unversioned(reference: &str) -> &str {
    match reference.rfind("/_history/") {
        Some(i) => {
            let version = &reference[i + "/_history/".len()..];
            if version.is_empty() || version.contains('/') {
                reference
            } else {
                &reference[..i]
            }
        }
        None => reference,
    }
}

/// Whether `reference` points at the resource `resource_type/id`: relative
/// (`Patient/123`) or absolute (`https://host/fhir/Patient/123`), with or
/// without `/_history/{version}`. Contained (`#p1`), `urn:uuid:` and
/// conditional (`Patient?identifier=…`) references point at no `Type/id`,
/// and the match is exact: `Patient/1` is not a reference to `Patient/12`.
pub fn is_reference_to(reference: &str, resource_type: &str, id: &str) -> bool {
    if resource_type.is_empty() || id.is_empty() {
        return false;
    }
    unversioned(reference)
        .strip_suffix(id)
        .and_then(|r| r.strip_suffix('/'))
        .and_then(|r| r.strip_suffix(resource_type))
        .is_some_and(|base| base.is_empty() || base.ends_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn all(v: &Value) -> Vec<&str> {
        references(v).collect()
    }

    #[test]
    fn finds_references_at_any_depth_in_document_order() {
        let v = json!({
            "resourceType": "Observation",
            "contained": [{"resourceType": "Patient", "id": "p",
                           "generalPractitioner": [{"reference": "Organization/gp"}]}],
            "extension": [{"url": "https://example.org/x",
                           "valueReference": {"reference": "Practitioner/x"}},
                          {"url": "https://example.org/outer",
                           "extension": [{"url": "inner", "valueReference": {"reference": "#p"}}]}],
            "subject": {"reference": "Patient/1", "display": "Patient/2"},
            "performer": [[{"reference": "Practitioner/a"}], [], [{"reference": "https://h/fhir/Practitioner/b"}]],
            "note": [{"text": "see Patient/3"}],
            "component": [{"valueString": "reference"}]
        });
        assert_eq!(
            all(&v),
            vec![
                "Organization/gp",
                "Practitioner/x",
                "#p",
                "Patient/1",
                "Practitioner/a",
                "https://h/fhir/Practitioner/b"
            ]
        );
        assert_eq!(
            references_with_pointers(&v),
            vec![
                (
                    "/contained/0/generalPractitioner/0/reference".to_owned(),
                    "Organization/gp"
                ),
                (
                    "/extension/0/valueReference/reference".to_owned(),
                    "Practitioner/x"
                ),
                (
                    "/extension/1/extension/0/valueReference/reference".to_owned(),
                    "#p"
                ),
                ("/subject/reference".to_owned(), "Patient/1"),
                ("/performer/0/0/reference".to_owned(), "Practitioner/a"),
                (
                    "/performer/2/0/reference".to_owned(),
                    "https://h/fhir/Practitioner/b"
                ),
            ]
        );
    }

    #[test]
    fn a_reference_key_that_is_not_a_string_is_walked_into() {
        // Consent.provision.actor.reference is a Reference.
        let mut v = json!({"provision": {"actor": [
            {"role": {"text": "recipient"}, "reference": {"reference": "Organization/a"}}]},
            "other": {"reference": 7}, "list": {"reference": [{"reference": "Group/g"}]}});
        assert_eq!(all(&v), vec!["Organization/a", "Group/g"]);
        assert_eq!(
            references_with_pointers(&v)[0].0,
            "/provision/actor/0/reference/reference"
        );
        let n = rewrite_references(&mut v, |s| Some(s.to_lowercase()));
        assert_eq!(n, 2);
        assert_eq!(
            v["provision"]["actor"][0]["reference"]["reference"],
            "organization/a"
        );
        assert_eq!(v["other"]["reference"], 7);
        assert!(all(&json!("Patient/1")).is_empty());
        assert!(all(&json!([{"reference": null}, 1, "x"])).is_empty());
    }

    #[test]
    fn pointers_escape_keys() {
        let v = json!({"a/b": {"c~d": {"reference": "Patient/1"}}});
        let found = references_with_pointers(&v);
        assert_eq!(
            found,
            vec![("/a~1b/c~0d/reference".to_owned(), "Patient/1")]
        );
        assert_eq!(v.pointer(&found[0].0), Some(&json!("Patient/1")));
    }

    #[test]
    fn rewriting_counts_changes_and_can_fail() {
        let mut v = json!({"subject": {"reference": "Patient/a"},
            "performer": [{"reference": "Practitioner/x"}, {"reference": "https://h/fhir/Patient/a"}],
            "basedOn": [{"reference": "Patient/a/_history/2"}]});
        let n = rewrite_references(&mut v, |s| match s {
            "Patient/a" => Some("Patient/b".to_owned()),
            "Practitioner/x" => Some(s.to_owned()),
            _ => None,
        });
        assert_eq!(n, 1, "an unchanged replacement is not counted");
        assert_eq!(v["subject"]["reference"], "Patient/b");
        assert_eq!(v["performer"][1]["reference"], "https://h/fhir/Patient/a");

        let mut seen = Vec::new();
        let r = try_rewrite_references(&mut v, |s| {
            seen.push(s.to_owned());
            if s.starts_with("https:") {
                Err(format!("absolute {s}"))
            } else {
                Ok(Some(format!("{s}!")))
            }
        });
        assert_eq!(r, Err("absolute https://h/fhir/Patient/a".to_owned()));
        assert_eq!(seen.len(), 3, "the walk stops at the first error");
        assert_eq!(v["performer"][0]["reference"], "Practitioner/x!");
        assert_eq!(v["basedOn"][0]["reference"], "Patient/a/_history/2");
    }

    #[test]
    fn matching_type_and_id() {
        for r in [
            "Patient/123",
            "https://host/fhir/Patient/123",
            "Patient/123/_history/4",
            "http://h/Patient/123/_history/1",
        ] {
            assert!(is_reference_to(r, "Patient", "123"), "{r}");
        }
        for r in [
            "Patient/1234",
            "Patient/12",
            "XPatient/123",
            "https://host/fhir/XPatient/123",
            "Group/123",
            "#123",
            "urn:uuid:123",
            "Patient?identifier=123",
            "Patient/123/_history/",
            "Patient/",
            "123",
        ] {
            assert!(!is_reference_to(r, "Patient", "123"), "{r}");
        }
        assert!(!is_reference_to("Patient/", "Patient", ""));
        assert_eq!(unversioned("Patient/1/_history/2"), "Patient/1");
        assert_eq!(
            unversioned("https://h/Patient/1/_history/x"),
            "https://h/Patient/1"
        );
        assert_eq!(unversioned("Patient/1"), "Patient/1");
        assert_eq!(unversioned("Patient/1/_history/"), "Patient/1/_history/");
        assert_eq!(
            unversioned("Patient/1/_history/2/x"),
            "Patient/1/_history/2/x"
        );
    }

    /// JSON values with plenty of `reference` keys, some of them not strings.
    fn json_value() -> impl Strategy<Value = Value> {
        let reference = prop_oneof![
            "(Patient|Practitioner|Location)/[a-z0-9]{1,3}",
            "https://h/fhir/Patient/[a-z0-9]{1,3}(/_history/[0-9])?",
            "urn:uuid:[0-9a-f]{4}",
            "#[a-z]{1,2}",
            "\\PC{0,6}",
        ]
        .prop_map(Value::String);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(Value::from),
            "\\PC{0,6}".prop_map(Value::String),
            reference.clone(),
        ];
        leaf.prop_recursive(5, 64, 6, move |inner| {
            let key = prop_oneof![
                3 => Just("reference".to_owned()),
                1 => Just("subject".to_owned()),
                1 => Just("valueReference".to_owned()),
                1 => Just("extension".to_owned()),
                1 => Just("contained".to_owned()),
                2 => "[a-z~/]{1,4}",
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((key, prop_oneof![reference.clone(), inner]), 0..5)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    /// `v` with every reference found in `of` replaced by null.
    fn without_references(v: &Value, of: &Value) -> Value {
        let mut v = v.clone();
        for (p, _) in references_with_pointers(of) {
            *v.pointer_mut(&p)
                .expect("a pointer of `of` resolves in `v`") = Value::Null;
        }
        v
    }

    proptest! {
        #[test]
        fn identity_changes_nothing(v in json_value()) {
            let mut w = v.clone();
            prop_assert_eq!(rewrite_references(&mut w, |s| Some(s.to_owned())), 0);
            prop_assert_eq!(&w, &v);
            prop_assert_eq!(rewrite_references(&mut w, |_| None), 0);
            prop_assert_eq!(&w, &v);
        }

        #[test]
        fn every_reference_is_rewritten_exactly_once(v in json_value()) {
            let found: Vec<String> = references(&v).map(str::to_owned).collect();
            let mut seen = Vec::new();
            let mut w = v.clone();
            let n = rewrite_references(&mut w, |s| {
                seen.push(s.to_owned());
                Some(format!("{s}|{}", seen.len()))
            });
            prop_assert_eq!(&seen, &found);
            prop_assert_eq!(n, found.len());
            let expected: Vec<String> =
                found.iter().enumerate().map(|(i, s)| format!("{s}|{}", i + 1)).collect();
            prop_assert_eq!(references(&w).map(str::to_owned).collect::<Vec<_>>(), expected);
        }

        #[test]
        fn pointers_find_the_references(v in json_value()) {
            let found = references_with_pointers(&v);
            prop_assert_eq!(found.iter().map(|(_, s)| *s).collect::<Vec<_>>(), all(&v));
            for (p, s) in &found {
                prop_assert_eq!(v.pointer(p).and_then(Value::as_str), Some(*s));
                prop_assert!(p.ends_with("/reference"));
            }
        }

        #[test]
        fn a_rewrite_touches_only_references(v in json_value(), to in "\\PC{0,6}") {
            let mut w = v.clone();
            rewrite_references(&mut w, |_| Some(to.clone()));
            prop_assert_eq!(without_references(&w, &v), without_references(&v, &v));
            prop_assert!(references(&w).all(|s| s == to));
            let n = references(&w).count();
            prop_assert_eq!(n, references(&v).count());
        }

        #[test]
        fn matching_agrees_with_its_definition(
            base in "(https://h/fhir/)?",
            t in "(Patient|Group)",
            id in "[a-z0-9.-]{1,4}",
            other in "[a-z0-9.-]{1,4}",
            version in "(/_history/[0-9]{1,2})?",
        ) {
            let r = format!("{base}{t}/{id}{version}");
            prop_assert!(is_reference_to(&r, &t, &id));
            prop_assert_eq!(is_reference_to(&r, &t, &other), id == other);
            prop_assert!(!is_reference_to(&r, "Location", &id));
            prop_assert_eq!(unversioned(&r), format!("{base}{t}/{id}"));
        }
    }
}
