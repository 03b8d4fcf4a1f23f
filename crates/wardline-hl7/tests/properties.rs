//! Property tests: no input panics; every accepted input re-encodes byte for
//! byte; generated well-formed messages (random separators, random contents
//! with delimiters, CR and LF) round-trip and unescape back to the generated
//! text.

use proptest::prelude::*;
use wardline_hl7::{
    AckCode, ErrorDetail, Message, Separators, ack, ack_unparsed, escape, parse_file,
    parse_file_bytes,
};

const PUNCT: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// Exercises every accessor of an accepted message.
fn exercise(m: &Message<'_>) {
    let _ = m.to_json();
    let _ = (
        m.message_type(),
        m.trigger_event(),
        m.control_id(),
        m.version_parsed(),
    );
    for seg in m.segments() {
        for f in seg.fields() {
            let _ = f.text();
            for r in f.repetitions() {
                for c in r.components() {
                    let _ = c.text();
                    for (k, _) in c.subcomponents().enumerate() {
                        let _ = c.subcomponent_text(k + 1);
                    }
                }
            }
        }
    }
    let a = ack(m, AckCode::AE, &[ErrorDetail::new(207, "x|y^z\r\n")]);
    assert_eq!(a.separators(), m.separators());
    for p in ["MSH-9.1", "PID-3[2].4.2", "OBX[2]-5", "MSH-2"] {
        let _ = m.get(p).unwrap();
        let _ = m.text(p).unwrap();
    }
}

fn check_any(input: &[u8]) {
    match Message::parse_bytes(input) {
        Ok(m) => {
            assert_eq!(m.encode().as_bytes(), input);
            exercise(&m);
        }
        Err(e) => {
            assert!(e.line >= 1);
            let a = ack_unparsed(input, AckCode::AR, &e);
            assert_eq!(a.get("MSA-1").unwrap(), Some("AR"));
        }
    }
    match parse_file_bytes(input) {
        Ok(f) => {
            assert_eq!(f.encode().as_bytes(), input);
            for m in f.messages() {
                exercise(m);
            }
        }
        Err(e) => assert!(e.line >= 1),
    }
}

fn hl7ish() -> impl Strategy<Value = String> {
    let alphabet: Vec<char> = "MSHPIDOBXFBTZ0123|^~\\&#}\r\n x\u{feff}é".chars().collect();
    (
        prop_oneof![
            Just(""),
            Just("MSH|^~\\&|"),
            Just("FHS|^~\\&|"),
            Just("\u{feff}MSH|")
        ],
        proptest::collection::vec(proptest::sample::select(alphabet), 0..200),
    )
        .prop_map(|(p, cs)| format!("{p}{}", cs.into_iter().collect::<String>()))
}

fn separators() -> impl Strategy<Value = Separators> {
    let chars: Vec<char> = PUNCT.chars().collect();
    (Just(chars).prop_shuffle(), any::<bool>()).prop_map(|(c, trunc)| {
        let enc: String = c[1..if trunc { 6 } else { 5 }].iter().collect();
        Separators::new(c[0], &enc).unwrap()
    })
}

fn text() -> impl Strategy<Value = String> {
    let special: Vec<char> = PUNCT.chars().chain("\r\n ".chars()).collect();
    proptest::collection::vec(
        prop_oneof![
            3 => proptest::char::range('a', 'z'),
            3 => proptest::sample::select(special),
            1 => any::<char>(),
        ],
        0..6,
    )
    .prop_map(|v| v.into_iter().collect())
}

/// field → repetitions → components → subcomponents
type Fields = Vec<Vec<Vec<Vec<String>>>>;

fn fields() -> impl Strategy<Value = Fields> {
    let sub = proptest::collection::vec(text(), 1..3);
    let comp = proptest::collection::vec(sub, 1..3);
    let rep = proptest::collection::vec(comp, 1..3);
    proptest::collection::vec(rep, 0..5)
}

fn segment_id() -> impl Strategy<Value = String> {
    "[A-Z][A-Z0-9]{2}".prop_filter("not a header or envelope id", |s| {
        !["MSH", "FHS", "BHS", "BTS", "FTS"].contains(&s.as_str())
    })
}

fn terminator() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("\r"), Just("\n"), Just("\r\n")]
}

#[derive(Debug, Clone)]
struct Generated {
    seps: Separators,
    bom: bool,
    segments: Vec<(String, Fields, &'static str)>,
    trailer: &'static str,
}

fn generated() -> impl Strategy<Value = Generated> {
    (
        separators(),
        any::<bool>(),
        fields(),
        terminator(),
        proptest::collection::vec((segment_id(), fields(), terminator()), 0..5),
        prop_oneof![Just(""), Just("\r\n"), Just("\n\n"), Just("\r\r\n")],
    )
        .prop_map(|(seps, bom, msh, t, rest, trailer)| {
            let mut segments = vec![("MSH".to_string(), msh, t)];
            segments.extend(rest);
            Generated {
                seps,
                bom,
                segments,
                trailer,
            }
        })
}

fn encode_fields(fields: &Fields, seps: &Separators) -> Vec<String> {
    let (rep, sub) = (seps.repetition.unwrap(), seps.subcomponent.unwrap());
    fields
        .iter()
        .map(|reps| {
            reps.iter()
                .map(|comps| {
                    comps
                        .iter()
                        .map(|subs| {
                            subs.iter()
                                .map(|t| escape(t, seps).into_owned())
                                .collect::<Vec<_>>()
                                .join(&sub.to_string())
                        })
                        .collect::<Vec<_>>()
                        .join(&seps.component.to_string())
                })
                .collect::<Vec<_>>()
                .join(&rep.to_string())
        })
        .collect()
}

fn encode(g: &Generated) -> String {
    let s = &g.seps;
    let mut out = String::new();
    if g.bom {
        out.push('\u{feff}');
    }
    for (k, (id, fields, term)) in g.segments.iter().enumerate() {
        out.push_str(id);
        if k == 0 {
            out.push(s.field);
            out.push_str(&s.encoding_characters());
        }
        for f in encode_fields(fields, s) {
            out.push(s.field);
            out.push_str(&f);
        }
        out.push_str(term);
    }
    out.push_str(g.trailer);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..512)) {
        check_any(&input);
    }

    #[test]
    fn hl7ish_text_never_panics(input in hl7ish()) {
        check_any(input.as_bytes());
    }

    #[test]
    fn generated_messages_round_trip(g in generated()) {
        let input = encode(&g);
        let m = Message::parse(&input).unwrap();
        prop_assert_eq!(m.encode(), input.clone());
        prop_assert_eq!(m.separators(), &g.seps);
        prop_assert_eq!(m.has_bom(), g.bom);
        prop_assert_eq!(m.segments().len(), g.segments.len());
        for (k, (id, fields, _)) in g.segments.iter().enumerate() {
            let seg = &m.segments()[k];
            prop_assert_eq!(seg.id(), id.as_str());
            let first = if k == 0 { 3 } else { 1 };
            prop_assert_eq!(seg.field_count(), fields.len() + first - 1);
            for (fi, reps) in fields.iter().enumerate() {
                let field = seg.field(fi + first).unwrap();
                prop_assert_eq!(field.repetitions().count(), reps.len());
                for (ri, comps) in reps.iter().enumerate() {
                    let rep = field.repetition(ri + 1).unwrap();
                    prop_assert_eq!(rep.components().count(), comps.len());
                    for (ci, subs) in comps.iter().enumerate() {
                        let comp = rep.component(ci + 1).unwrap();
                        prop_assert_eq!(comp.subcomponents().count(), subs.len());
                        for (si, t) in subs.iter().enumerate() {
                            let got = comp.subcomponent_text(si + 1).unwrap();
                            prop_assert_eq!(got.as_ref(), t.as_str());
                        }
                    }
                }
            }
        }
        // Path access agrees with the views (first occurrence of each id).
        let (id, fields, _) = &g.segments[g.segments.len() - 1];
        let unique = g.segments.iter().filter(|s| &s.0 == id).count() == 1 && id != "MSH";
        let first = fields.first().map(|f| &f[0][0][0]).filter(|_| unique);
        if let Some(t) = first {
            let path = format!("{id}-1[1].1.1");
            let got = m.text(&path).unwrap().unwrap();
            prop_assert_eq!(got.as_ref(), t.as_str());
        }
        // The same message inside a file with others round-trips too.
        let sep = if input.ends_with(['\r', '\n']) { "" } else { "\r" };
        let doubled = format!("{input}{sep}{}", input.trim_start_matches('\u{feff}'));
        let f = parse_file(&doubled).unwrap();
        prop_assert_eq!(&f.encode(), &doubled);
        prop_assert_eq!(f.messages().count(), 2);
        // The ACK keeps the separators and echoes MSH-10.
        let a = ack(&m, AckCode::AA, &[]);
        prop_assert_eq!(a.separators(), m.separators());
        prop_assert_eq!(
            a.text("MSA-2").unwrap().unwrap_or_default().into_owned(),
            m.control_id().unwrap_or_default().into_owned()
        );
    }
}
