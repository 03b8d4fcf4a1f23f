//! Parsing FHIR JSON text ([`parse`]): what `serde_json` accepts, less a
//! property given twice in one object, which JSON leaves undefined and
//! `serde_json` resolves silently (the last one wins). Every body a client
//! sends, and every file `wardline import` reads, is parsed here.
//!
//! Numbers keep the text they were written in (the workspace's `serde_json`
//! has `arbitrary_precision`), so a decimal keeps its precision: `1.50` is
//! stored and returned as `1.50`, not `1.5`, and every digit of
//! `12345678901234567890.123` is kept (only an exponent is spelt `e+N` or
//! `e-N`: `1E2` comes back as `1e+2`).
//!
//! The duplicate check is a second pass over the text with a visitor that
//! builds nothing, so the common case costs one more scan and no allocation
//! beyond each object's set of keys.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::error::{FhirError, Issue};

/// At most this many duplicate keys are reported.
const MAX_REPORTED: usize = 20;

/// Parses `text` as JSON, refusing malformed JSON and any object holding a
/// key twice (a 400 `OperationOutcome` whose expressions name the keys, e.g.
/// `Patient.name[0].family`; the root is the body's `resourceType`).
pub fn parse(text: &[u8]) -> Result<Value, FhirError> {
    let value: Value = serde_json::from_slice(text)
        .map_err(|e| FhirError::structure(format!("the body is not valid JSON: {e}")))?;
    let root = value
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let duplicates = duplicate_keys(text, root);
    if duplicates.is_empty() {
        return Ok(value);
    }
    Err(FhirError::from_issues(
        400,
        duplicates
            .into_iter()
            .map(|(path, key)| {
                Issue::error(
                    "structure",
                    format!("'{key}' is given more than once in one object; a JSON property may appear only once"),
                )
                .at(path)
            })
            .collect(),
    ))
}

/// The (path, key) of every repeated key in `text`, which must be valid JSON.
fn duplicate_keys(text: &[u8], root: &str) -> Vec<(String, String)> {
    let state = RefCell::new(State {
        root,
        path: Vec::new(),
        found: Vec::new(),
    });
    let mut de = serde_json::Deserializer::from_slice(text);
    // The text parsed once already, so this pass cannot fail; if it did, what
    // was found so far is still reported.
    let _ = Check { state: &state }.deserialize(&mut de);
    state.into_inner().found
}

enum Seg {
    Key(String),
    Index(usize),
}

struct State<'r> {
    root: &'r str,
    path: Vec<Seg>,
    found: Vec<(String, String)>,
}

impl State<'_> {
    fn path_to(&self, key: &str) -> String {
        let mut s = self.root.to_owned();
        for seg in &self.path {
            match seg {
                Seg::Key(k) => {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    s.push_str(k);
                }
                Seg::Index(i) => s.push_str(&format!("[{i}]")),
            }
        }
        if !s.is_empty() {
            s.push('.');
        }
        s.push_str(key);
        s
    }
}

#[derive(Clone, Copy)]
struct Check<'a, 'r> {
    state: &'a RefCell<State<'r>>,
}

impl<'de> DeserializeSeed<'de> for Check<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Check<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            self.state.borrow_mut().path.push(Seg::Index(i));
            let more = seq.next_element_seed(self);
            self.state.borrow_mut().path.pop();
            if more?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    // A number arrives here too, as serde_json's one-entry map holding its
    // text (`arbitrary_precision`); it has no duplicate.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen: HashSet<String> = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                let mut st = self.state.borrow_mut();
                if st.found.len() < MAX_REPORTED {
                    let path = st.path_to(&key);
                    st.found.push((path, key.clone()));
                }
            }
            self.state.borrow_mut().path.push(Seg::Key(key));
            let value = map.next_value_seed(self);
            let popped = self.state.borrow_mut().path.pop();
            value?;
            if let Some(Seg::Key(key)) = popped {
                seen.insert(key);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn dup_paths(text: &str) -> Vec<String> {
        match parse(text.as_bytes()) {
            Ok(_) => vec![],
            Err(e) => {
                assert_eq!(e.status, 400);
                e.issues.into_iter().flat_map(|i| i.expression).collect()
            }
        }
    }

    #[test]
    fn refuses_duplicate_keys_naming_them() {
        assert_eq!(
            dup_paths(r#"{"resourceType":"Patient","gender":"male","gender":"female"}"#),
            vec!["Patient.gender"]
        );
        assert_eq!(
            dup_paths(
                r#"{"resourceType":"Patient","name":[{"family":"A"},{"family":"B","given":["x"],"family":"C"}]}"#
            ),
            vec!["Patient.name[1].family"]
        );
        assert_eq!(
            dup_paths(
                r#"{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient","birthDate":"1970","birthDate":"1971"}}]}"#
            ),
            vec!["Bundle.entry[0].resource.birthDate"]
        );
        // The same key after JSON escapes is the same key.
        assert_eq!(
            dup_paths(r#"{"resourceType":"Patient","active":true,"\u0061ctive":false}"#),
            vec!["Patient.active"]
        );
        // Not a resource (a JSON Patch document): paths from the root.
        assert_eq!(
            dup_paths(r#"[{"op":"add","op":"remove","path":"/x"}]"#),
            vec!["[0].op"]
        );
        // Every duplicate, not just the first.
        assert_eq!(
            dup_paths(r#"{"resourceType":"Patient","a":1,"a":2,"a":3,"b":{"c":1,"c":1}}"#),
            vec!["Patient.a", "Patient.a", "Patient.b.c"]
        );
    }

    #[test]
    fn accepts_the_same_key_in_different_objects() {
        let v = parse(br#"{"resourceType":"Patient","name":[{"family":"A"},{"family":"B"}],"contact":[{"name":{"family":"C"}}]}"#).unwrap();
        assert_eq!(v["name"][1]["family"], "B");
    }

    #[test]
    fn malformed_json_is_a_structure_error() {
        for bad in [r#"{"resourceType":"Patient","#, "", "[1,]", r#"{"a":1} x"#] {
            let e = parse(bad.as_bytes()).unwrap_err();
            assert_eq!((e.status, e.issues[0].code), (400, "structure"), "{bad}");
        }
    }

    #[test]
    fn numbers_keep_their_text() {
        for n in [
            "1.50",
            "12345678901234567890.123",
            "0.000010",
            "-0.10",
            "1.0e-3",
            "1e+2",
            "-0",
        ] {
            let text = format!(r#"{{"value":{n}}}"#);
            let v = parse(text.as_bytes()).unwrap();
            assert_eq!(serde_json::to_string(&v).unwrap(), text);
        }
        // The one normalisation: an exponent is spelt `e`, with its sign.
        let v = parse(br#"{"a":1.0E-3,"b":1.50e2}"#).unwrap();
        assert_eq!(v.to_string(), r#"{"a":1.0e-3,"b":1.50e+2}"#);
        // Numbers are not mistaken for objects with a duplicate key.
        assert!(parse(br#"{"a":[1,2.5,{"b":3}],"c":4}"#).is_ok());
    }

    /// A JSON value with no object holding a key twice.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|i| json!(i)),
            "[a-z \\\\\"\u{7}\u{e9}]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_]{1,4}", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Any JSON without duplicate keys parses to what serde_json parses.
        #[test]
        fn accepts_json_without_duplicates(v in json_value()) {
            let text = serde_json::to_string(&v).unwrap();
            prop_assert_eq!(parse(text.as_bytes()).unwrap(), v);
        }

        /// Repeating any one key of any object is refused, naming that key
        /// where it is.
        #[test]
        fn refuses_any_repeated_key(v in json_value(), pick in any::<prop::sample::Index>()) {
            let root = json!({"resourceType": "Basic", "x": v});
            // Every (path, key, its text) of an object member.
            let mut members = Vec::new();
            collect_members(&root, "Basic", &mut members);
            let (path, key, value) = &members[pick.index(members.len())];
            // Insert `"key":value,` again right after the object's opening
            // brace: rebuild the text with the member duplicated.
            let text = with_duplicate(&root, "Basic", path, key, value);
            let err = parse(text.as_bytes()).unwrap_err();
            let at: Vec<String> = err.issues.iter().flat_map(|i| i.expression.clone()).collect();
            let want = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
            prop_assert_eq!(at, vec![want]);
        }
    }

    fn collect_members(v: &Value, path: &str, out: &mut Vec<(String, String, Value)>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    out.push((path.to_owned(), k.clone(), x.clone()));
                    collect_members(x, &format!("{path}.{k}"), out);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    collect_members(x, &format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }

    /// `v` as JSON text with the member `key` of the object at `target`
    /// written twice.
    fn with_duplicate(v: &Value, path: &str, target: &str, key: &str, value: &Value) -> String {
        match v {
            Value::Object(m) => {
                let mut parts: Vec<String> = m
                    .iter()
                    .map(|(k, x)| {
                        format!(
                            "{}:{}",
                            serde_json::to_string(k).unwrap(),
                            with_duplicate(x, &format!("{path}.{k}"), target, key, value)
                        )
                    })
                    .collect();
                if path == target {
                    parts.push(format!(
                        "{}:{}",
                        serde_json::to_string(key).unwrap(),
                        serde_json::to_string(value).unwrap()
                    ));
                }
                format!("{{{}}}", parts.join(","))
            }
            Value::Array(a) => {
                let parts: Vec<String> = a
                    .iter()
                    .enumerate()
                    .map(|(i, x)| with_duplicate(x, &format!("{path}[{i}]"), target, key, value))
                    .collect();
                format!("[{}]", parts.join(","))
            }
            other => serde_json::to_string(other).unwrap(),
        }
    }
}
