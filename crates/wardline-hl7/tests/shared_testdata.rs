//! Every file under `<testdata>/hl7v2` parses and re-encodes byte for byte,
//! or — for the files listed in [`REJECTED`] — is rejected with exactly the
//! expected error.
//!
//! The test data root is `$WARDLINE_TESTDATA`, or `<workspace>/../shared/testdata`;
//! when it is absent the test prints `SKIPPED: ...` and passes. `.gz` files
//! are decompressed first. No normalisation is applied to any file before the
//! round-trip check (BOMs, terminators and blank lines are all kept by the
//! parser), with one documented exception: `hapi-hl7v2/util/messages.txt`
//! is a collection with C-style comment lines between the messages; it is
//! rejected as is, then parsed again with those comment lines removed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use wardline_hl7::{Hl7File, Message, Separators, escape, parse_file, unescape};

/// (path under hl7v2/, line, segment, field, message) of an expected rejection.
type Rejection = (
    &'static str,
    usize,
    Option<&'static str>,
    Option<usize>,
    &'static str,
);

/// Files rejected on purpose.
const REJECTED: &[Rejection] = &[
    (
        // The README calls it malformed: a space where the escape character belongs.
        "npm-hl7-standard/examples/data/input.hl7",
        1,
        Some("MSH"),
        Some(2),
        "MSH-2 encoding characters \"^~ &\" invalid: the escape character (character 3) is a space, not printable ASCII punctuation",
    ),
    (
        // An escaped ED payload (field content), not a message.
        "hapi-hl7v2/parser/uuencoded_escaped.txt",
        1,
        None,
        None,
        "segment 1 does not start with MSH, FHS or BHS",
    ),
    (
        // Starts with a `/*` comment line; parsed again below without comments.
        "hapi-hl7v2/util/messages.txt",
        1,
        None,
        None,
        "segment 1 does not start with MSH, FHS or BHS",
    ),
];

fn testdata_root() -> Option<PathBuf> {
    let root = match std::env::var_os("WARDLINE_TESTDATA") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata"),
    };
    root.join("hl7v2").is_dir().then_some(root)
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn read(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        bytes
    }
}

/// Checks the round trip of a file and of each message in it.
fn check_round_trip(name: &str, text: &str, file: &Hl7File<'_>) {
    assert_eq!(file.encode(), text, "{name}: file round trip");
    for m in file.messages() {
        let enc = m.encode();
        let again = Message::parse(&enc).unwrap_or_else(|e| panic!("{name}: re-parse: {e}"));
        assert_eq!(again.encode(), enc, "{name}: message round trip");
        assert_eq!(again.segments().len(), m.segments().len());
        // The JSON view exists for every message and serialises.
        serde_json::to_string(&m.to_json()).unwrap();
        // Every accessor on every element works.
        for seg in m.segments() {
            for f in seg.fields() {
                for r in f.repetitions() {
                    for c in r.components() {
                        let _ = c.text();
                    }
                }
            }
        }
    }
}

fn strip_comments(text: &str) -> String {
    text.split_inclusive('\n')
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with("//") || t.starts_with("/*") || t.starts_with('*'))
        })
        .collect()
}

fn nhs_number_valid(n: &str) -> bool {
    let d: Vec<u32> = n.chars().filter_map(|c| c.to_digit(10)).collect();
    if d.len() != 10 || n.len() != 10 {
        return false;
    }
    let sum: u32 = d[..9].iter().zip((2..=10).rev()).map(|(a, w)| a * w).sum();
    let check = 11 - sum % 11;
    let check = if check == 11 { 0 } else { check };
    check != 10 && check == d[9]
}

fn get_message<'p>(parsed: &'p BTreeMap<String, (String, usize)>, name: &str) -> Message<'p> {
    Message::parse(&parsed[name].0).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn shared_hl7v2_files() {
    let Some(root) = testdata_root() else {
        println!(
            "SKIPPED: no shared test data (set WARDLINE_TESTDATA or provide <workspace>/../shared/testdata/hl7v2)"
        );
        return;
    };
    let base = root.join("hl7v2");
    let mut all = Vec::new();
    files(&base, &mut all);
    assert!(!all.is_empty());

    let mut parsed: BTreeMap<String, (String, usize)> = BTreeMap::new();
    let mut rejected_seen = BTreeSet::new();
    let mut versions = BTreeSet::new();
    let mut boms = 0;
    for path in &all {
        let name = path
            .strip_prefix(&base)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let name = name.strip_suffix(".gz").unwrap_or(&name).to_string();
        let bytes = read(path);
        let result = wardline_hl7::parse_file_bytes(&bytes);
        if let Some(&(_, line, seg, field, msg)) = REJECTED.iter().find(|r| r.0 == name) {
            let e = result.expect_err(&format!("{name} should be rejected"));
            assert_eq!(
                (e.line, e.segment.as_deref(), e.field, e.message.as_str()),
                (line, seg, field, msg),
                "{name}"
            );
            rejected_seen.insert(name);
            continue;
        }
        let file = result.unwrap_or_else(|e| panic!("{name}: {e}"));
        let text = std::str::from_utf8(&bytes).unwrap();
        check_round_trip(&name, text, &file);
        if file.has_bom() {
            boms += 1;
        }
        let count = file.messages().count();
        assert!(count >= 1, "{name}: no message");
        for m in file.messages() {
            versions.insert(m.version().unwrap_or_default().into_owned());
        }
        // A single message without envelopes also parses on its own.
        if count == 1 && file.envelopes().count() == 0 {
            let m = Message::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(m.encode(), text, "{name}");
            assert!(
                m.version_parsed().is_some_and(|v| v.is_supported()),
                "{name}"
            );
        }
        parsed.insert(name, (text.to_string(), count));
    }
    let expected_rejected: BTreeSet<String> = REJECTED.iter().map(|r| r.0.to_string()).collect();
    assert_eq!(
        rejected_seen, expected_rejected,
        "every listed rejection is present"
    );
    assert_eq!(boms, 13, "files with a UTF-8 BOM");

    let get = |name: &str| get_message(&parsed, name);

    // Misnamed upstream files: MSH-9 is what counts.
    let m = get("fhir-converter/MDM_01.hl7");
    assert_eq!(
        (m.message_type().unwrap(), m.trigger_event().unwrap()),
        ("ADT".into(), "A01".into())
    );
    let m = get("fhir-converter/SIU_12.hl7");
    assert_eq!(
        (m.message_type().unwrap(), m.trigger_event().unwrap()),
        ("ADT".into(), "A60".into())
    );

    // Z-segment.
    let m = get("hapi-hl7v2/parser/cv.04_001_chem.hl7");
    assert!(m.segment("ZNT").is_some());

    // Non-standard delimiters: field ^, component ~, repetition |.
    let m = get("hapi-hl7v2/util/segmentfinder_a24.hl7");
    assert_eq!(m.separators().to_string(), "^~|\\&");
    assert_eq!(m.segments_with_id("PID").count(), 2);
    assert_eq!(m.text("PID[2]-1").unwrap().unwrap(), "2");
    assert_eq!(m.message_type().unwrap(), "ADT");
    assert_eq!(m.trigger_event().unwrap(), "A24");

    // CR-only terminators, repetitions and subcomponents.
    let m = get("hapi-hl7v2/parser/omd_o03_rep.txt");
    assert_eq!(m.get("PID-3[1].9.3").unwrap(), Some("ES-EX"));
    assert_eq!(m.get("PID-3[1].9.2").unwrap(), Some(""));
    assert_eq!(m.get("PID-3[2]").unwrap(), Some("CIPTWO"));
    let m = get("npm-simple-hl7/test/samples/oru.hl7");
    assert!(
        m.segments()
            .iter()
            .all(|s| s.terminator() == "\r" || s.terminator().is_empty())
    );
    assert_eq!(m.message_type().unwrap(), "ORU");

    // ACK with AR and ERR, ending CR CR LF.
    let m = get("npm-hl7-standard/tests/data/message2.hl7");
    assert_eq!(m.message_type().unwrap(), "ACK");
    assert_eq!(m.get("MSA-1").unwrap(), Some("AR"));
    assert!(m.segment("ERR").is_some());
    assert_eq!(m.segments().last().unwrap().terminator(), "\r\r\n");

    // Batch: two messages, MSH inside OBX fields does not split.
    let text = &parsed["npm-hl7-standard/tests/data/batch.hl7"].0;
    let f = parse_file(text).unwrap();
    let env: Vec<_> = f.envelopes().map(|s| s.id().to_string()).collect();
    assert_eq!(env, ["FHS", "BHS", "BTS", "FTS"]);
    let ms: Vec<_> = f.messages().collect();
    assert_eq!(ms.len(), 2);
    assert_eq!(ms[0].message_type().unwrap(), "ADT");
    assert_eq!(ms[1].message_structure().unwrap(), "RSP_K11");
    assert_eq!(ms[1].get("OBX[3]-4").unwrap(), Some("MSH"));
    assert_eq!(ms[1].segments_with_id("OBX").count(), 3);

    // Simulated Hospital: 508 messages, NHS numbers in PID-3.
    let text = &parsed["simhospital/messages.out.part1"].0;
    let f = parse_file(text).unwrap();
    let mut types: BTreeMap<String, usize> = BTreeMap::new();
    let mut nhs = BTreeSet::new();
    for m in f.messages() {
        let t = format!(
            "{}^{}",
            m.message_type().unwrap(),
            m.trigger_event().unwrap()
        );
        *types.entry(t).or_default() += 1;
        let pid3 = m.segment("PID").unwrap().field(3).unwrap();
        for r in pid3.repetitions() {
            if r.component(4).map(|c| c.raw()) == Some("NHSNBR") {
                let n = r.component(1).unwrap().text().into_owned();
                assert!(nhs_number_valid(&n), "NHS number {n}");
                nhs.insert(n);
            }
        }
    }
    assert_eq!(f.messages().count(), 508);
    assert_eq!(types["ADT^A01"], 207);
    assert_eq!(types["ORU^R01"], 299);
    assert_eq!(types["ADT^A34"], 1);
    assert_eq!(types["MDM^T02"], 1);
    assert_eq!(nhs.len(), 209, "distinct NHS numbers");

    // messages.txt without its comment lines: 18 messages, odd encoding characters.
    let raw = String::from_utf8(read(&base.join("hapi-hl7v2/util/messages.txt"))).unwrap();
    let stripped = strip_comments(&raw);
    let f = parse_file(&stripped).unwrap_or_else(|e| panic!("messages.txt without comments: {e}"));
    check_round_trip("messages.txt (comments removed)", &stripped, &f);
    let ms: Vec<_> = f.messages().collect();
    assert_eq!(ms.len(), 18);
    for m in &ms {
        versions.insert(m.version().unwrap_or_default().into_owned());
    }
    let seps: BTreeSet<String> = ms.iter().map(|m| m.separators().to_string()).collect();
    assert!(
        seps.contains("|^~\\}") && seps.contains("|^~}") && seps.contains("|^~\\&"),
        "{seps:?}"
    );
    let empty_ack = ms
        .iter()
        .find(|m| m.get("MSH-9").unwrap() == Some("ACK^"))
        .unwrap();
    assert_eq!(empty_ack.trigger_event().unwrap(), "");
    let short = ms
        .iter()
        .find(|m| m.separators().to_string() == "|^~}")
        .unwrap();
    assert_eq!(short.separators().escape, Some('}'));
    assert_eq!(short.separators().subcomponent, None);

    // The escaped ED payload, read as field content with the default separators.
    let payload =
        String::from_utf8(read(&base.join("hapi-hl7v2/parser/uuencoded_escaped.txt"))).unwrap();
    let seps = Separators::default();
    let decoded = unescape(&payload, &seps);
    assert!(
        decoded.starts_with("begin 644 WAV.DAT\r\nM"),
        "{}",
        &decoded[..40]
    );
    assert!(!decoded.contains("\\X0D\\"));
    assert_eq!(escape(&decoded, &seps), payload);

    // Versions 2.1 to 2.8 all present.
    for v in [
        "2.1", "2.2", "2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.8",
    ] {
        assert!(
            versions.contains(v),
            "version {v} missing from {versions:?}"
        );
    }
    println!(
        "parsed {} files ({} messages), rejected {} as listed; versions {versions:?}",
        parsed.len(),
        parsed.values().map(|p| p.1).sum::<usize>(),
        REJECTED.len()
    );
}
