//! What a resource contributes to the search indexes.
//!
//! [`crate::definitions::Definitions::extract_index`] evaluates every search
//! parameter's FHIRPath expression over a resource and turns the nodes it finds
//! into [`IndexEntry`] values. The store writes them to its index tables in the
//! same transaction as the resource.

/// One indexed value of one search parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexEntry {
    /// The search parameter's code, e.g. `identifier`, `birthdate`, `subject`;
    /// for a component of a composite parameter, `code-value-quantity$1`.
    pub param: String,
    pub value: IndexValue,
    /// For composite components: which element (e.g. which
    /// `Observation.component`) the value came from, so that a composite
    /// search matches components of the same element only.
    pub group: Option<u32>,
}

impl IndexEntry {
    pub fn new(param: impl Into<String>, value: IndexValue) -> IndexEntry {
        IndexEntry {
            param: param.into(),
            value,
            group: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum IndexValue {
    /// From code, Coding, CodeableConcept (one per coding), Identifier,
    /// ContactPoint, boolean, id, string-typed token paths.
    /// `text` carries Coding.display / CodeableConcept.text / Identifier.type.text
    /// for the `:text` modifier.
    Token {
        system: Option<String>,
        code: Option<String>,
        text: Option<String>,
    },
    /// `norm` is lower-cased with accents and punctuation folded (for the default
    /// starts-with and `:contains` matches); `exact` is the value as written.
    String {
        norm: String,
        exact: String,
    },
    /// A half-open interval `[lo, hi)` in milliseconds since the Unix epoch (UTC).
    /// A date of `2013` is `[2013-01-01, 2014-01-01)`; an open Period end is `i64::MAX`.
    Date {
        lo: i64,
        hi: i64,
    },
    Number {
        value: f64,
    },
    Quantity {
        value: f64,
        system: Option<String>,
        code: Option<String>,
        unit: Option<String>,
    },
    /// A reference. Relative references are split into `target_type`/`target_id`;
    /// absolute references keep `url` only. A canonical (`url|version`) keeps
    /// its URL in `url` and its version, if any, in `version` (matched by URL,
    /// and by version when a search gives one).
    Reference {
        target_type: Option<String>,
        target_id: Option<String>,
        url: String,
        version: Option<String>,
    },
    Uri {
        value: String,
    },
}

/// Folds a string for the default FHIR string search: lower-case, accents removed,
/// runs of whitespace and punctuation collapsed to one space, trimmed.
pub fn normalise_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last_space = true;
    for c in s.chars() {
        let c = fold_accent(c);
        if c.is_alphanumeric() {
            for l in c.to_lowercase() {
                out.push(l);
            }
            last_space = false;
        } else if !last_space {
            out.push(' ');
            last_space = true;
        }
    }
    while out.ends_with(' ') {
        out.pop();
    }
    out
}

fn fold_accent(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => 'a',
        'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => 'A',
        'è' | 'é' | 'ê' | 'ë' => 'e',
        'È' | 'É' | 'Ê' | 'Ë' => 'E',
        'ì' | 'í' | 'î' | 'ï' => 'i',
        'Ì' | 'Í' | 'Î' | 'Ï' => 'I',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' => 'o',
        'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' => 'O',
        'ù' | 'ú' | 'û' | 'ü' => 'u',
        'Ù' | 'Ú' | 'Û' | 'Ü' => 'U',
        'ý' | 'ÿ' => 'y',
        'Ý' => 'Y',
        'ñ' => 'n',
        'Ñ' => 'N',
        'ç' => 'c',
        'Ç' => 'C',
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds() {
        assert_eq!(normalise_string("  O'Brien-Sмith  "), "o brien sмith");
        assert_eq!(normalise_string("Zoë"), "zoe");
        assert_eq!(normalise_string("PETER James"), "peter james");
    }
}
