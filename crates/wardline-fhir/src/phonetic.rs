//! Phonetic codes of personal names, for the `phonetic` search parameter
//! (R4: `Patient.name`, `Person.name`, `Practitioner.name`,
//! `RelatedPerson.name`, type string) and for patient matching.
//!
//! The encoding is Double Metaphone (Lawrence Philips; the Apache
//! commons-codec port in the `rphonetic` crate), primary and alternate code,
//! four characters at most. It copes with the spelling variants an NHS
//! patient index meets (Smith/Smyth, Thompson/Tomson, Catherine/Kathryn,
//! Jon/John) better than Soundex, which keeps the first letter.
//!
//! **One encoding, both sides.** Index extraction stores, for every name part
//! of a `HumanName` (the family name, each given name), its codes
//! ([`word_codes`]); a `phonetic=` search value is encoded the same way and
//! matches when any of its codes equals a stored code (exact equality on the
//! index's normalised column). A name part is folded first ([`fold_name`]):
//! accents removed, case ignored, and anything that is not a letter dropped,
//! so `O'Brien`, `OBRIEN` and `o brien` are one word. A family name of
//! several words (`Van der Berg`) is indexed both whole and word by word.
//!
//! Stores written before this encoding hold the plain normalised name under
//! `phonetic`; they need a reindex for old rows to be found phonetically.

use rphonetic::DoubleMetaphone;
use serde_json::Value;

/// The longest code kept (Double Metaphone's customary four).
const CODE_LENGTH: usize = 4;

/// Folds a name part for encoding: accents removed (see
/// [`crate::index::normalise_string`]), upper-cased, and only the ASCII
/// letters kept. Empty when nothing encodable remains.
pub fn fold_name(s: &str) -> String {
    crate::index::normalise_string(s)
        .chars()
        .filter(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// The words of a name part, each folded ([`fold_name`]); empty words dropped.
pub fn fold_words(s: &str) -> Vec<String> {
    crate::index::normalise_string(s)
        .split(' ')
        .map(fold_name)
        .filter(|w| !w.is_empty())
        .collect()
}

/// The Double Metaphone codes of one word: the primary code, then the
/// alternate when it differs. Empty for a word with no letters.
pub fn word_codes(word: &str) -> Vec<String> {
    let folded = fold_name(word);
    if folded.is_empty() {
        return Vec::new();
    }
    // Only ASCII reaches the encoder (it slices by byte offsets).
    let r = DoubleMetaphone::new(Some(CODE_LENGTH)).double_metaphone(&folded);
    let mut out = Vec::with_capacity(2);
    for c in [r.primary(), r.alternate()] {
        // The encoder writes a space for "silent here" in the alternate.
        let c: String = c.chars().filter(char::is_ascii_alphanumeric).collect();
        if !c.is_empty() && !out.contains(&c) {
            out.push(c);
        }
    }
    // A word of letters the encoder ignores entirely (e.g. "H"): keep it
    // findable by its own spelling.
    if out.is_empty() {
        out.push(folded);
    }
    out
}

/// Whether two words sound alike: some code of one equals some code of the other.
pub fn sounds_alike(a: &str, b: &str) -> bool {
    let ca = word_codes(a);
    let cb = word_codes(b);
    ca.iter().any(|c| cb.contains(c))
}

/// The codes a search value asks for: the value as one word (spaces and
/// punctuation removed) — so `Van der Berg` finds what was indexed whole.
pub fn query_codes(value: &str) -> Vec<String> {
    word_codes(value)
}

/// The codes of one name part as indexed: the whole part as one word, and
/// each of its words when it has several. De-duplicated, in order.
pub fn part_codes(part: &str) -> Vec<String> {
    let mut out = word_codes(part);
    let words = fold_words(part);
    if words.len() > 1 {
        for w in words {
            for c in word_codes(&w) {
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
    }
    out
}

/// The codes of a `HumanName` (family, then each given name) or of a plain
/// string, de-duplicated, in order.
pub fn name_codes(name: &Value) -> Vec<String> {
    let mut parts: Vec<&str> = Vec::new();
    match name {
        Value::String(s) => parts.push(s),
        Value::Object(o) => {
            if let Some(f) = o.get("family").and_then(Value::as_str) {
                parts.push(f);
            }
            for g in o
                .get("given")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                parts.push(g);
            }
            // A name given only as text: its words.
            if parts.is_empty()
                && let Some(t) = o.get("text").and_then(Value::as_str)
            {
                parts.extend(t.split_whitespace());
            }
        }
        _ => {}
    }
    let mut out = Vec::new();
    for p in parts {
        for c in part_codes(p) {
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn spelling_variants_sound_alike() {
        for (a, b) in [
            ("Smith", "Smyth"),
            ("Smith", "SMITH"),
            ("Thomson", "Tomson"),
            ("Catherine", "Kathryn"),
            ("Jon", "John"),
            ("Stephen", "Steven"),
            ("Philips", "Phillips"),
            ("O'Brien", "OBrien"),
            ("Zoë", "Zoe"),
            ("Mohammed", "Muhammad"),
        ] {
            assert!(
                sounds_alike(a, b),
                "{a} ~ {b}: {:?} {:?}",
                word_codes(a),
                word_codes(b)
            );
        }
        for (a, b) in [("Smith", "Jones"), ("Patel", "Brown"), ("Anne", "Mary")] {
            assert!(!sounds_alike(a, b), "{a} !~ {b}");
        }
    }

    #[test]
    fn codes_of_names() {
        assert_eq!(word_codes("Smith"), vec!["SM0", "XMT"]);
        assert!(word_codes("").is_empty());
        assert!(word_codes("-- '' 123").is_empty());
        let n = json!({"family": "Van der Berg", "given": ["Anna", "Maria"]});
        let codes = name_codes(&n);
        assert!(codes.contains(&word_codes("Vanderberg")[0]));
        assert!(codes.contains(&word_codes("Berg")[0]));
        assert!(codes.contains(&word_codes("Maria")[0]));
        assert_eq!(name_codes(&json!({"text": "Ann Smith"})), {
            let mut v = word_codes("Ann");
            v.extend(word_codes("Smith"));
            v
        });
    }

    proptest! {
        /// Any input at all: no panic, and codes are short upper-case ASCII.
        #[test]
        fn encoder_never_panics(s in "\\PC{0,40}") {
            for c in word_codes(&s).iter().chain(&part_codes(&s)) {
                prop_assert!(!c.is_empty() && c.len() <= 40);
                prop_assert!(c.chars().all(|ch| ch.is_ascii_uppercase() || ch == '0'));
            }
            let _ = name_codes(&json!({"family": s, "given": [s]}));
            let _ = name_codes(&json!({"text": s}));
        }

        /// Names (Latin letters with accents, apostrophes, hyphens, spaces):
        /// the codes do not depend on case or on whitespace.
        #[test]
        fn stable_under_case_and_whitespace(s in "[A-Za-zàáâäçèéêëìíîïñòóôöùúûüÀÁÂÄÇÈÉÊËÌÍÎÏÑÒÓÔÖÙÚÛÜ' .-]{0,30}") {
            let codes = word_codes(&s);
            prop_assert_eq!(&word_codes(&s.to_uppercase()), &codes);
            prop_assert_eq!(&word_codes(&s.to_lowercase()), &codes);
            prop_assert_eq!(&word_codes(&format!("  {s}\t ")), &codes);
            prop_assert_eq!(&word_codes(&s.replace(' ', "   ")), &codes);
            prop_assert_eq!(&part_codes(&s.to_uppercase()), &part_codes(&s));
        }

        #[test]
        fn fold_is_idempotent(s in "\\PC{0,40}") {
            let f = fold_name(&s);
            prop_assert_eq!(fold_name(&f), f.clone());
            prop_assert!(f.chars().all(|c| c.is_ascii_uppercase()));
        }
    }
}
