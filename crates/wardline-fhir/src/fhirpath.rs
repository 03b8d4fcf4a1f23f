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
    /// `as(T)` / `ofType(T)` / `X as T`: nodes of type T.
    OfType(String),
    /// `extension('url')`.
    Extension(String),
    First,
    /// `[n]`.
    Index(usize),
    /// `exists()`: one boolean.
    Exists,
}

/// A literal on the right of `=` / `!=`.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Bool(bool),
    Str(String),
}

/// One alternative of a union.
#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    /// From the resource: its type name, then steps.
    Path(String, Vec<Step>),
    /// A parenthesised term followed by more steps:
    /// `(Observation.value as CodeableConcept).text`.
    Then(Box<Term>, Vec<Step>),
    /// Three-valued `and` of two singleton booleans.
    And(Box<Term>, Box<Term>),
    /// `term = literal` (`negate`: `!=`), a boolean.
    Cmp {
        left: Box<Term>,
        negate: bool,
        right: Literal,
    },
}

/// A compiled expression: a union of terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub terms: Vec<Term>,
}

/// A node reached by evaluation: the JSON value, its FHIR type name, and the
/// snapshot path its children are found under.
#[derive(Debug, Clone)]
pub struct Node<'a> {
    pub value: &'a Value,
    /// The FHIR type (`Quantity`, `dateTime`, the resource type for an embedded
    /// resource); empty where the model does not say.
    pub type_name: &'a str,
    /// The snapshot path (or type name) its children are looked up under; empty
    /// when unknown.
    context: &'a str,
}

static TRUE: Value = Value::Bool(true);
static FALSE: Value = Value::Bool(false);

fn boolean<'a>(b: bool) -> Node<'a> {
    Node {
        value: if b { &TRUE } else { &FALSE },
        type_name: "boolean",
        context: "boolean",
    }
}

/// Compiles `expr`, or `None` if it uses something outside the subset.
pub fn compile(expr: &str) -> Option<Expr> {
    let mut terms = Vec::new();
    for alt in crate::definitions::split_top_level(expr, '|') {
        terms.push(compile_term(alt.trim())?);
    }
    Some(Expr { terms })
}

/// Compiles an expression relative to an element (`code`, `value.as(Quantity)`),
/// for [`evaluate_from`]: each alternative becomes a path from a placeholder root.
pub fn compile_relative(expr: &str) -> Option<Expr> {
    let mut terms = Vec::new();
    for alt in crate::definitions::split_top_level(expr, '|') {
        terms.push(compile_term(&format!("Relative.{}", alt.trim()))?);
    }
    Some(Expr { terms })
}

/// The search parameters (`Type.code: expression`) whose expressions are
/// outside the subset, so are neither indexed nor advertised. Composite and
/// special parameters are left out (they are not evaluated this way at all).
pub fn unsupported_params(defs: &Definitions) -> Vec<String> {
    let mut out = Vec::new();
    for (t, ps) in &defs.search_params {
        for p in ps.values() {
            if matches!(
                p.kind,
                crate::definitions::SearchParamType::Composite
                    | crate::definitions::SearchParamType::Special
            ) {
                continue;
            }
            match &p.expression {
                Some(x) if compile(x).is_some() => {}
                Some(x) => out.push(format!("{t}.{}: {x}", p.code)),
                None => out.push(format!("{t}.{}: (no expression)", p.code)),
            }
        }
    }
    out.sort();
    out
}

fn strip_parens(s: &str) -> &str {
    let s = s.trim();
    if s.starts_with('(') && s.ends_with(')') {
        // Only if the parens enclose the whole expression.
        let mut depth = 0;
        let mut quote = false;
        for (i, c) in s.char_indices() {
            match c {
                '\'' => quote = !quote,
                '(' if !quote => depth += 1,
                ')' if !quote => {
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

fn compile_term(s: &str) -> Option<Term> {
    let s = strip_parens(s);
    let words: Vec<&str> = crate::definitions::split_top_level(s, ' ')
        .into_iter()
        .filter(|w| !w.is_empty())
        .collect();
    if let Some(i) = words.iter().position(|w| *w == "and") {
        let left = compile_term(&words[..i].join(" "))?;
        let right = compile_term(&words[i + 1..].join(" "))?;
        return Some(Term::And(Box::new(left), Box::new(right)));
    }
    if words.len() == 3 && (words[1] == "=" || words[1] == "!=") {
        let right = match words[2] {
            "true" => Literal::Bool(true),
            "false" => Literal::Bool(false),
            w => Literal::Str(quoted(w)?.to_owned()),
        };
        return Some(Term::Cmp {
            left: Box::new(compile_term(words[0])?),
            negate: words[1] == "!=",
            right,
        });
    }
    if words.len() == 3 && words[1] == "as" {
        let t = words[2];
        if !is_identifier(t) {
            return None;
        }
        return Some(with_steps(
            compile_term(words[0])?,
            vec![Step::OfType(t.to_owned())],
        ));
    }
    if words.len() != 1 {
        return None;
    }
    let parts = crate::definitions::split_top_level(s, '.');
    let (first, first_index) = split_index(parts.first()?.trim())?;
    let mut steps = Vec::new();
    let head = if first.starts_with('(') {
        let inner = compile_term(first)?;
        steps.extend(first_index.map(Step::Index));
        Some(inner)
    } else {
        if !first.chars().next()?.is_ascii_uppercase() || !is_identifier(first) {
            return None;
        }
        steps.extend(first_index.map(Step::Index));
        None
    };
    for p in &parts[1..] {
        let (p, index) = split_index(p.trim())?;
        steps.push(compile_step(p)?);
        steps.extend(index.map(Step::Index));
    }
    Some(match head {
        Some(inner) => with_steps(inner, steps),
        None => Term::Path(first.to_owned(), steps),
    })
}

fn compile_step(p: &str) -> Option<Step> {
    if let Some(arg) = call(p, "where") {
        let arg = arg.trim();
        if let Some(t) = arg.strip_prefix("resolve() is ") {
            let t = t.trim();
            return is_identifier(t).then(|| Step::ResolveIs(t.to_owned()));
        }
        let (f, v) = arg.split_once('=')?;
        let f = f.trim();
        if !is_identifier(f) {
            return None;
        }
        return Some(Step::WhereEq(f.to_owned(), quoted(v.trim())?.to_owned()));
    }
    if let Some(t) = call(p, "as").or_else(|| call(p, "ofType")) {
        let t = t.trim();
        return is_identifier(t).then(|| Step::OfType(t.to_owned()));
    }
    if let Some(u) = call(p, "extension") {
        return Some(Step::Extension(quoted(u.trim())?.to_owned()));
    }
    match p {
        "first()" => Some(Step::First),
        "exists()" => Some(Step::Exists),
        p if is_identifier(p) => Some(Step::Member(p.to_owned())),
        _ => None,
    }
}

fn with_steps(term: Term, mut more: Vec<Step>) -> Term {
    match term {
        Term::Path(root, mut steps) => {
            steps.append(&mut more);
            Term::Path(root, steps)
        }
        Term::Then(inner, mut steps) => {
            steps.append(&mut more);
            Term::Then(inner, steps)
        }
        other => Term::Then(Box::new(other), more),
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `'text'` → `text` (no escapes or inner quotes).
fn quoted(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('\'')?.strip_suffix('\'')?;
    (!inner.contains('\'') && !inner.contains('\\')).then_some(inner)
}

/// `entry[0]` → (`entry`, Some(0)).
fn split_index(p: &str) -> Option<(&str, Option<usize>)> {
    match p.strip_suffix(']') {
        Some(rest) => {
            let (name, n) = rest.rsplit_once('[')?;
            Some((name, Some(n.parse().ok()?)))
        }
        None => Some((p, None)),
    }
}

fn call<'a>(s: &'a str, name: &str) -> Option<&'a str> {
    s.strip_prefix(name)?.strip_prefix('(')?.strip_suffix(')')
}

/// Evaluates `expr` over `resource`.
pub fn evaluate<'a>(defs: &'a Definitions, expr: &Expr, resource: &'a Value) -> Vec<Node<'a>> {
    let mut out = Vec::new();
    for t in &expr.terms {
        out.extend(eval_term(defs, t, resource));
    }
    out
}

/// Evaluates `expr` (from [`compile_relative`]) relative to `start` (a composite parameter's component
/// expressions, such as `value.as(Quantity)`, are relative to the element the
/// base expression selected). Only paths are relative; other terms are empty.
pub fn evaluate_from<'a>(defs: &'a Definitions, expr: &Expr, start: &Node<'a>) -> Vec<Node<'a>> {
    let mut out = Vec::new();
    for t in &expr.terms {
        out.extend(eval_term_from(defs, t, start));
    }
    out
}

fn eval_term_from<'a>(defs: &'a Definitions, term: &Term, start: &Node<'a>) -> Vec<Node<'a>> {
    match term {
        // The root is the placeholder of [`compile_relative`].
        Term::Path(_, steps) => apply_all(defs, steps, vec![start.clone()]),
        Term::Then(inner, steps) => apply_all(defs, steps, eval_term_from(defs, inner, start)),
        Term::And(..) | Term::Cmp { .. } => Vec::new(),
    }
}

fn eval_term<'a>(defs: &'a Definitions, term: &Term, resource: &'a Value) -> Vec<Node<'a>> {
    match term {
        Term::Path(root, steps) => {
            let rt = resource
                .get("resourceType")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if root != rt {
                return Vec::new();
            }
            let start = vec![Node {
                value: resource,
                type_name: rt,
                context: rt,
            }];
            apply_all(defs, steps, start)
        }
        Term::Then(inner, steps) => apply_all(defs, steps, eval_term(defs, inner, resource)),
        Term::And(l, r) => {
            let l = singleton_bool(&eval_term(defs, l, resource));
            let r = singleton_bool(&eval_term(defs, r, resource));
            match (l, r) {
                (Some(false), _) | (_, Some(false)) => vec![boolean(false)],
                (Some(true), Some(true)) => vec![boolean(true)],
                _ => Vec::new(),
            }
        }
        Term::Cmp {
            left,
            negate,
            right,
        } => {
            let l = eval_term(defs, left, resource);
            if l.is_empty() {
                return Vec::new();
            }
            let equal = l.len() == 1
                && match (l[0].value, right) {
                    (Value::Bool(a), Literal::Bool(b)) => a == b,
                    (Value::String(a), Literal::Str(b)) => a == b,
                    _ => false,
                };
            vec![boolean(equal != *negate)]
        }
    }
}

/// FHIRPath singleton evaluation of a collection as a boolean.
fn singleton_bool(nodes: &[Node<'_>]) -> Option<bool> {
    match nodes {
        [] => None,
        [n] => Some(n.value.as_bool().unwrap_or(true)),
        _ => None,
    }
}

fn apply_all<'a>(defs: &'a Definitions, steps: &[Step], mut nodes: Vec<Node<'a>>) -> Vec<Node<'a>> {
    for step in steps {
        if nodes.is_empty() && *step != Step::Exists {
            break;
        }
        nodes = apply(defs, step, nodes);
    }
    nodes
}

fn apply<'a>(defs: &'a Definitions, step: &Step, nodes: Vec<Node<'a>>) -> Vec<Node<'a>> {
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
            match n.value.get("reference").and_then(Value::as_str) {
                Some(r) => reference_type(r) == Some(t.as_str()),
                // A logical reference: its declared type.
                None => n.value.get("type").and_then(Value::as_str) == Some(t.as_str()),
            }
        })),
        Step::WhereEq(f, v) => out.extend(
            nodes
                .into_iter()
                .filter(|n| n.value.get(f).and_then(Value::as_str) == Some(v.as_str())),
        ),
        Step::OfType(t) => out.extend(
            nodes
                .into_iter()
                .filter(|n| n.type_name == *t || types_compatible(n.type_name, t)),
        ),
        Step::First => out.extend(nodes.into_iter().take(1)),
        Step::Index(i) => out.extend(nodes.into_iter().nth(*i)),
        Step::Exists => out.push(boolean(!nodes.is_empty())),
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

fn member<'a>(defs: &'a Definitions, n: &Node<'a>, name: &str, out: &mut Vec<Node<'a>>) {
    let Value::Object(obj) = n.value else { return };
    // Most expressions name elements the resource does not have: leave before
    // any lookup unless a key is `name` or a choice `nameXxx`.
    let direct = obj.get(name);
    if direct.is_none() && !obj.keys().any(|k| is_choice_key(k, name)) {
        return;
    }
    let push = |v: &'a Value, t: &'a str, out: &mut Vec<Node<'a>>, elem_path: &'a str| {
        let context = child_context(defs, t, elem_path);
        let node = |x: &'a Value| match x.get("resourceType").and_then(Value::as_str) {
            // An embedded resource (`Bundle.entry.resource`, `contained`): its own type.
            Some(rt) if t == "Resource" || t == "DomainResource" || defs.is_resource_type(t) => {
                Node {
                    value: x,
                    type_name: rt,
                    context: rt,
                }
            }
            _ => Node {
                value: x,
                type_name: t,
                context,
            },
        };
        match v {
            Value::Array(a) => out.extend(a.iter().map(node)),
            v => out.push(node(v)),
        }
    };
    if n.context.is_empty() {
        // Below something the model does not describe: go by shape alone.
        if let Some(v) = direct {
            push(v, "", out, "");
        }
        return;
    }
    let mut path = String::with_capacity(n.context.len() + name.len() + 4);
    path.push_str(n.context);
    path.push('.');
    path.push_str(name);
    if let Some(el) = defs.element(&path) {
        let t = match (el.types.first(), &el.content_reference) {
            (Some(t), _) => t.as_str(),
            (None, Some(_)) => "BackboneElement",
            (None, None) => "",
        };
        let elem_path = match &el.content_reference {
            Some(cr) => cr.trim_start_matches('#'),
            None => el.path.as_str(),
        };
        if let Some(v) = direct {
            push(v, t, out, elem_path);
        }
        return;
    }
    // A choice element: `value` → `valueQuantity` etc.
    path.push_str("[x]");
    if let Some(el) = defs.element(&path) {
        for (k, v) in obj {
            if !is_choice_key(k, name) {
                continue;
            }
            let suffix = &k[name.len()..];
            if let Some(t) = el.types.iter().find(|t| choice_suffix_is(suffix, t)) {
                push(v, t.as_str(), out, el.path.as_str());
            }
        }
        return;
    }
    // Unknown to the model (e.g. inside an extension): fall back to shape.
    if let Some(v) = direct {
        push(v, "", out, "");
    }
}

/// `key` is `name` followed by a capitalised type suffix (`valueQuantity`).
fn is_choice_key(key: &str, name: &str) -> bool {
    key.strip_prefix(name)
        .and_then(|rest| rest.chars().next())
        .is_some_and(|c| c.is_ascii_uppercase())
}

/// `Quantity` for `Quantity`, `DateTime` for `dateTime`.
fn choice_suffix_is(suffix: &str, type_name: &str) -> bool {
    let (Some(a), Some(b)) = (suffix.chars().next(), type_name.chars().next()) else {
        return false;
    };
    a == b.to_ascii_uppercase() && suffix[a.len_utf8()..] == type_name[b.len_utf8()..]
}

/// Children of a node of type `t` at `elem_path` are found under the type's own
/// definition for complex types, under the element path for backbone elements.
fn child_context<'a>(defs: &'a Definitions, t: &'a str, elem_path: &'a str) -> &'a str {
    match t {
        "BackboneElement" | "Element" | "" => elem_path,
        other => match defs.types.get(other) {
            Some(td) if td.kind != TypeKind::Resource => other,
            _ => elem_path,
        },
    }
}

/// The FHIR types the nodes of `expr` can have, found from the element
/// definitions alone (no resource): what [`evaluate`] would give each node
/// as its `type_name`, for every resource. A member the model does not
/// describe gives `""`. Used to tell which reference parameters hold
/// canonical URLs rather than literal references.
pub fn result_types(defs: &Definitions, expr: &Expr) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in &expr.terms {
        for (ty, _) in term_types(defs, t) {
            if !out.contains(&ty) {
                out.push(ty);
            }
        }
    }
    out
}

/// (type, context) pairs a term can produce (see [`result_types`]).
fn term_types(defs: &Definitions, term: &Term) -> Vec<(String, String)> {
    match term {
        Term::Path(root, steps) => steps_types(defs, steps, vec![(root.clone(), root.clone())]),
        Term::Then(inner, steps) => steps_types(defs, steps, term_types(defs, inner)),
        Term::And(..) | Term::Cmp { .. } => vec![("boolean".into(), "boolean".into())],
    }
}

fn steps_types(
    defs: &Definitions,
    steps: &[Step],
    mut nodes: Vec<(String, String)>,
) -> Vec<(String, String)> {
    for step in steps {
        let mut next: Vec<(String, String)> = Vec::new();
        let mut add = |t: &str, context: &str| {
            let n = (t.to_owned(), context.to_owned());
            if !next.contains(&n) {
                next.push(n);
            }
        };
        match step {
            Step::Member(name) | Step::Extension(name) => {
                let name = if matches!(step, Step::Extension(_)) {
                    "extension"
                } else {
                    name.as_str()
                };
                for (_, context) in &nodes {
                    if context.is_empty() {
                        add("", "");
                        continue;
                    }
                    let path = format!("{context}.{name}");
                    if let Some(el) = defs.element(&path) {
                        let t = match (el.types.first(), &el.content_reference) {
                            (Some(t), _) => t.as_str(),
                            (None, Some(_)) => "BackboneElement",
                            (None, None) => "",
                        };
                        let elem_path = match &el.content_reference {
                            Some(cr) => cr.trim_start_matches('#'),
                            None => el.path.as_str(),
                        };
                        add(t, child_context(defs, t, elem_path));
                    } else if let Some(el) = defs.element(&format!("{path}[x]")) {
                        for t in &el.types {
                            add(t, child_context(defs, t, &el.path));
                        }
                    } else {
                        add("", "");
                    }
                }
            }
            Step::OfType(t) => {
                for (ty, context) in &nodes {
                    if ty == t || types_compatible(ty, t) || ty.is_empty() {
                        add(if ty.is_empty() { t } else { ty }, context);
                    }
                }
            }
            Step::Exists => add("boolean", "boolean"),
            Step::ResolveIs(_) | Step::WhereEq(..) | Step::First | Step::Index(_) => {
                for (t, context) in &nodes {
                    add(t, context);
                }
            }
        }
        nodes = next;
    }
    nodes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definitions::{SearchParamType, r4};

    #[test]
    fn compiles_most_official_expressions() {
        let d = r4();
        let total = d
            .search_params
            .values()
            .flat_map(|ps| ps.values())
            .filter(|p| {
                !matches!(
                    p.kind,
                    SearchParamType::Composite | SearchParamType::Special
                )
            })
            .count();
        let bad = unsupported_params(d);
        eprintln!(
            "{} of {total} compile; {} do not:\n{}",
            total - bad.len(),
            bad.len(),
            bad.join("\n")
        );
        assert!(total > 2000);
        // `_text`, `_content` and `_query` have no expression (full-text and
        // named queries); of the rest, nearly all must compile.
        let no_expr = bad
            .iter()
            .filter(|b| b.ends_with("(no expression)"))
            .count();
        let with_expr = total - no_expr;
        let failed = bad.len() - no_expr;
        assert!(
            (with_expr - failed) * 100 / with_expr >= 95,
            "{failed} of {with_expr} expressions unsupported"
        );
    }

    #[test]
    fn compiles_the_harder_forms() {
        for x in [
            "Patient.deceased.exists() and Patient.deceased != false",
            "(Observation.value as string) | (Observation.value as CodeableConcept).text",
            "Bundle.entry[0].resource",
            "Patient.telecom.where(system='phone')",
            "Patient.extension('http://ex.org/x').value",
            "Patient.extension.where(url = 'http://ex.org/x').value",
            "Observation.effective.as(dateTime).first()",
        ] {
            assert!(compile(x).is_some(), "{x}");
        }
        for x in [
            "Patient.name.where(given.exists())",
            "Patient.telecom.where(system != 'phone')",
            "Patient.name.select(family)",
            "Patient.x is Quantity",
            "patient.name",
            "Patient.name.where(family = unquoted)",
            "Patient.deceased or Patient.active",
            "Patient.entry[x]",
        ] {
            assert!(compile(x).is_none(), "{x} should be refused");
        }
    }

    #[test]
    fn evaluates_booleans_indexes_extensions_and_embedded_resources() {
        let d = r4();
        let eval = |x: &str, r: &Value| -> Vec<Value> {
            evaluate(d, &compile(x).unwrap(), r)
                .into_iter()
                .map(|n| n.value.clone())
                .collect()
        };
        let deceased = "Patient.deceased.exists() and Patient.deceased != false";
        let p = |extra: Value| {
            let mut p = serde_json::json!({"resourceType": "Patient"});
            if let Value::Object(m) = extra {
                p.as_object_mut().unwrap().extend(m);
            }
            p
        };
        use serde_json::json;
        assert_eq!(eval(deceased, &p(json!({}))), vec![json!(false)]);
        assert_eq!(
            eval(deceased, &p(json!({"deceasedBoolean": false}))),
            vec![json!(false)]
        );
        assert_eq!(
            eval(deceased, &p(json!({"deceasedBoolean": true}))),
            vec![json!(true)]
        );
        assert_eq!(
            eval(deceased, &p(json!({"deceasedDateTime": "2020-01-01"}))),
            vec![json!(true)]
        );
        let with_ext = p(json!({"extension": [
            {"url": "http://ex.org/a", "valueString": "A"},
            {"url": "http://ex.org/b", "valueCode": "B"}
        ]}));
        assert_eq!(
            eval("Patient.extension('http://ex.org/b').value", &with_ext),
            vec![json!("B")]
        );
        let n = evaluate(
            d,
            &compile("Patient.extension.where(url = 'http://ex.org/a').value").unwrap(),
            &with_ext,
        );
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].type_name, "string");
        let bundle = json!({"resourceType": "Bundle", "type": "document", "entry": [
            {"resource": {"resourceType": "Composition", "id": "c1", "status": "final"}},
            {"resource": {"resourceType": "Patient", "id": "p1"}}
        ]});
        let n = evaluate(d, &compile("Bundle.entry[0].resource").unwrap(), &bundle);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].type_name, "Composition");
        assert_eq!(
            eval("Bundle.entry[0].resource.status", &bundle),
            vec![json!("final")]
        );
        let obs = json!({"resourceType": "Observation",
            "valueCodeableConcept": {"text": "positive"}});
        let x = "(Observation.value as string) | (Observation.value as CodeableConcept).text";
        assert_eq!(eval(x, &obs), vec![json!("positive")]);
        // A logical reference with only a type still passes `resolve() is`.
        let obs = json!({"resourceType": "Observation",
            "subject": {"type": "Patient", "identifier": {"value": "1"}}});
        assert_eq!(
            eval("Observation.subject.where(resolve() is Patient)", &obs).len(),
            1
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
