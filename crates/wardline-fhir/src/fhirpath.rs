//! The subset of FHIRPath that the R4 search-parameter expressions use.
//!
//! An expression is a `|` union of paths. A path starts at the resource type
//! and continues with member steps and these functions: `where(resolve() is T)`,
//! `where(field = 'value')`, `as(T)` / `(path as T)`, `ofType(T)`,
//! `extension('url')`, `first()`. Expressions using anything else
//! ([`compile`] returns `None`) are not evaluated and their parameters are left
//! out of the index and the CapabilityStatement, never half-evaluated.
//!
//! Navigation is type-aware: the element definitions tell which member is a
//! choice (`value[x]` → `valueQuantity`, typed `Quantity`) and the type of each
//! node, which [`crate::extract`] uses to turn nodes into index values.

use serde_json::Value;

use crate::definitions::{Definitions, TypeKind};

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Member(String),
    /// `where(resolve() is T)`: References whose target type is T.
    ResolveIs(String),
    /// `where(field = 'value')`.
    WhereEq(String, String),
    /// `as(T)` / `ofType(T)`: nodes of type T.
    OfType(String),
    /// `extension('url')`.
    Extension(String),
    First,
}

/// A compiled expression: a union of paths, each from a resource type.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub paths: Vec<(String, Vec<Step>)>,
}

/// A node reached by evaluation: the JSON value, its FHIR type name, and the
/// snapshot path its children are found under.
#[derive(Debug, Clone)]
pub struct Node<'a> {
    pub value: &'a Value,
    pub type_name: String,
    context: String,
}

/// Compiles `expr`, or `None` if it uses something outside the subset.
pub fn compile(expr: &str) -> Option<Expr> {
    let mut paths = Vec::new();
    for alt in crate::definitions::split_top_level(expr, '|') {
        paths.push(compile_path(alt.trim())?);
    }
    Some(Expr { paths })
}

fn strip_parens(s: &str) -> &str {
    let s = s.trim();
    if s.starts_with('(') && s.ends_with(')') {
        // Only if the parens enclose the whole expression.
        let mut depth = 0;
        for (i, c) in s.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 && i != s.len() - 1 {
                        return s;
                    }
                }
                _ => {}
            }
        }
        return strip_parens(&s[1..s.len() - 1]);
    }
    s
}

fn compile_path(s: &str) -> Option<(String, Vec<Step>)> {
    let s = strip_parens(s);
    // `X as T` at the top level.
    let words = crate::definitions::split_top_level(s, ' ');
    if words.len() == 3 && words[1] == "as" {
        let (root, mut steps) = compile_path(words[0])?;
        steps.push(Step::OfType(words[2].to_owned()));
        return Some((root, steps));
    }
    if words.len() != 1 {
        return None;
    }
    let parts = crate::definitions::split_top_level(s, '.');
    let root = strip_parens(parts.first()?);
    if !root.chars().next()?.is_ascii_uppercase()
        || !root.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return None;
    }
    let mut steps = Vec::new();
    for p in &parts[1..] {
        let p = p.trim();
        if let Some(arg) = call(p, "where") {
            let arg = arg.trim();
            if let Some(t) = arg.strip_prefix("resolve() is ") {
                steps.push(Step::ResolveIs(t.trim().to_owned()));
            } else if let Some((f, v)) = arg.split_once('=') {
                let v = v.trim().trim_matches('\'');
                steps.push(Step::WhereEq(f.trim().to_owned(), v.to_owned()));
            } else {
                return None;
            }
        } else if let Some(t) = call(p, "as").or_else(|| call(p, "ofType")) {
            steps.push(Step::OfType(t.trim().to_owned()));
        } else if let Some(u) = call(p, "extension") {
            steps.push(Step::Extension(u.trim().trim_matches('\'').to_owned()));
        } else if p == "first()" {
            steps.push(Step::First);
        } else if p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !p.is_empty() {
            steps.push(Step::Member(p.to_owned()));
        } else {
            return None;
        }
    }
    Some((root.to_owned(), steps))
}

fn call<'a>(s: &'a str, name: &str) -> Option<&'a str> {
    s.strip_prefix(name)?.strip_prefix('(')?.strip_suffix(')')
}

/// Evaluates `expr` over `resource`.
pub fn evaluate<'a>(defs: &Definitions, expr: &Expr, resource: &'a Value) -> Vec<Node<'a>> {
    let rt = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut out = Vec::new();
    for (root, steps) in &expr.paths {
        if root != rt {
            continue;
        }
        let mut nodes = vec![Node {
            value: resource,
            type_name: rt.to_owned(),
            context: rt.to_owned(),
        }];
        for step in steps {
            nodes = apply(defs, step, nodes);
            if nodes.is_empty() {
                break;
            }
        }
        out.extend(nodes);
    }
    out
}

fn apply<'a>(defs: &Definitions, step: &Step, nodes: Vec<Node<'a>>) -> Vec<Node<'a>> {
    let mut out = Vec::new();
    match step {
        Step::Member(name) => {
            for n in &nodes {
                member(defs, n, name, &mut out);
            }
        }
        Step::Extension(url) => {
            for n in &nodes {
                let mut ext = Vec::new();
                member(defs, n, "extension", &mut ext);
                out.extend(
                    ext.into_iter()
                        .filter(|e| e.value.get("url").and_then(Value::as_str) == Some(url)),
                );
            }
        }
        Step::ResolveIs(t) => out.extend(nodes.into_iter().filter(|n| {
            n.value
                .get("reference")
                .and_then(Value::as_str)
                .is_some_and(|r| reference_type(r) == Some(t.as_str()))
        })),
        Step::WhereEq(f, v) => out.extend(
            nodes
                .into_iter()
                .filter(|n| n.value.get(f).and_then(Value::as_str) == Some(v.as_str())),
        ),
        Step::OfType(t) => out.extend(nodes.into_iter().filter(|n| {
            n.type_name == *t
                || (t == "Age" && n.type_name == "Quantity")
                || types_compatible(&n.type_name, t)
        })),
        Step::First => out.extend(nodes.into_iter().take(1)),
    }
    out
}

fn types_compatible(actual: &str, wanted: &str) -> bool {
    // `SimpleQuantity`, `Age`, `Duration` ... are Quantity profiles.
    wanted == "Quantity"
        && matches!(
            actual,
            "SimpleQuantity" | "Age" | "Duration" | "Distance" | "Count" | "MoneyQuantity"
        )
}

/// The resource type a reference string points at (`Patient/1`, `http://x/fhir/Patient/1`).
pub fn reference_type(r: &str) -> Option<&str> {
    let parts: Vec<&str> = r.split('/').collect();
    let n = parts.len();
    if n >= 4 && parts[n - 2] == "_history" {
        return Some(parts[n - 4]);
    }
    if n >= 2 {
        let t = parts[n - 2];
        if t.chars().next().is_some_and(|c| c.is_ascii_uppercase()) {
            return Some(t);
        }
    }
    None
}

fn member<'a>(defs: &Definitions, n: &Node<'a>, name: &str, out: &mut Vec<Node<'a>>) {
    let Value::Object(obj) = n.value else { return };
    let path = format!("{}.{}", n.context, name);
    let push = |v: &'a Value, t: &str, out: &mut Vec<Node<'a>>, elem_path: &str| {
        let context = child_context(defs, t, elem_path);
        match v {
            Value::Array(a) => out.extend(a.iter().map(|x| Node {
                value: x,
                type_name: t.to_owned(),
                context: context.clone(),
            })),
            v => out.push(Node {
                value: v,
                type_name: t.to_owned(),
                context,
            }),
        }
    };
    if let Some(el) = defs.element(&path) {
        let t = el
            .types
            .first()
            .cloned()
            .or_else(|| {
                el.content_reference
                    .as_ref()
                    .map(|_| "BackboneElement".to_owned())
            })
            .unwrap_or_default();
        let elem_path = match &el.content_reference {
            Some(cr) => cr.trim_start_matches('#').to_owned(),
            None => path.clone(),
        };
        if let Some(v) = obj.get(name) {
            push(v, &t, out, &elem_path);
        }
        return;
    }
    // A choice element: `value` → `valueQuantity` etc.
    let choice = format!("{path}[x]");
    if let Some(el) = defs.element(&choice) {
        for t in &el.types {
            let mut key = String::from(name);
            let mut cs = t.chars();
            if let Some(f) = cs.next() {
                key.push(f.to_ascii_uppercase());
                key.push_str(cs.as_str());
            }
            if let Some(v) = obj.get(&key) {
                push(v, t, out, &choice);
            }
        }
        return;
    }
    // Unknown to the model (e.g. inside an extension): fall back to shape.
    if let Some(v) = obj.get(name) {
        push(v, "", out, &path);
    }
}

/// Children of a node of type `t` at `elem_path` are found under the type's own
/// definition for complex types, under the element path for backbone elements.
fn child_context(defs: &Definitions, t: &str, elem_path: &str) -> String {
    match t {
        "BackboneElement" | "Element" | "" => elem_path.to_owned(),
        other => match defs.types.get(other) {
            Some(td) if td.kind != TypeKind::Resource => other.to_owned(),
            _ => elem_path.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definitions::{SearchParamType, r4};

    #[test]
    fn compiles_most_official_expressions() {
        let d = r4();
        let (mut ok, mut bad) = (0, Vec::new());
        for (t, ps) in &d.search_params {
            for p in ps.values() {
                if matches!(
                    p.kind,
                    SearchParamType::Composite | SearchParamType::Special
                ) {
                    continue;
                }
                let Some(x) = &p.expression else { continue };
                if compile(x).is_some() {
                    ok += 1;
                } else {
                    bad.push(format!("{t}.{}: {x}", p.code));
                }
            }
        }
        bad.sort();
        eprintln!("{ok} compile; {} do not:\n{}", bad.len(), bad.join("\n"));
        assert!(
            ok * 100 / (ok + bad.len()) >= 95,
            "{} unsupported",
            bad.len()
        );
    }

    #[test]
    fn navigates_choices_and_references() {
        let d = r4();
        let obs = serde_json::json!({
            "resourceType": "Observation",
            "subject": {"reference": "Patient/p1"},
            "valueQuantity": {"value": 5, "unit": "mg"},
            "component": [{"code": {"text": "a"}, "valueString": "x"}]
        });
        let e = compile("(Observation.value as Quantity) | (Observation.value as SampledData)")
            .unwrap();
        let n = evaluate(d, &e, &obs);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].type_name, "Quantity");
        let e = compile("Observation.subject.where(resolve() is Patient)").unwrap();
        assert_eq!(evaluate(d, &e, &obs).len(), 1);
        let e = compile("Observation.subject.where(resolve() is Group)").unwrap();
        assert_eq!(evaluate(d, &e, &obs).len(), 0);
        let e = compile("Observation.component.code").unwrap();
        let n = evaluate(d, &e, &obs);
        assert_eq!(n[0].type_name, "CodeableConcept");
    }
}
