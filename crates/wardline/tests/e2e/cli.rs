//! Command-line tests: `--help` everywhere, and `import` of good and bad files.

use std::process::{Command, Output};

fn wardline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wardline"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run wardline")
}

#[test]
fn help_on_every_subcommand() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["import", "--help"],
        vec!["export", "--help"],
        vec!["generate", "--help"],
        vec!["hl7", "--help"],
        vec!["hl7", "parse", "--help"],
        vec!["hl7", "send", "--help"],
        vec!["hl7", "reprocess", "--help"],
        vec!["hl7", "retry", "--help"],
        vec!["hl7", "list", "--help"],
        vec!["audit", "--help"],
        vec!["audit", "verify", "--help"],
        vec!["audit", "purge", "--help"],
    ] {
        let out = wardline(&args);
        assert!(out.status.success(), "{args:?} failed");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage:"), "{args:?}: {text}");
    }
    let top = String::from_utf8_lossy(&wardline(&["--help"]).stdout).into_owned();
    for sub in ["serve", "import", "export", "generate", "hl7"] {
        assert!(top.contains(sub), "{top}");
    }
    // The benchmarks are `wardline-bench`, not part of the shipped binary.
    assert!(
        !top.lines().any(|l| l.trim_start().starts_with("bench")),
        "{top}"
    );
    assert!(!wardline(&["bench", "--help"]).status.success());
    let serve = String::from_utf8_lossy(&wardline(&["serve", "--help"]).stdout).into_owned();
    for flag in [
        "--data-dir",
        "--listen",
        "--database",
        "--demo",
        "--mllp-listen",
        "--hl7-destination",
        "--hl7-unsupported",
    ] {
        assert!(serve.contains(flag), "{serve}");
    }
}

/// The clinical clock moves only on a demonstration store: a real one's
/// clock is the system's.
#[test]
fn the_clock_offset_file_needs_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("offset");
    let out = wardline(&[
        "serve",
        "--data-dir",
        data.to_str().unwrap(),
        "--clock-offset-file",
        file.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--demo"), "{err}");
    assert!(
        !data.exists(),
        "nothing is created when the command is refused"
    );
}

fn exists(data_dir: &std::path::Path, rt: &str, id: &str) -> bool {
    use wardline_store::Reader;
    let store = wardline_store_sqlite::SqliteStore::open(&data_dir.join("wardline.db")).unwrap();
    store.read(rt, id).unwrap().is_some()
}

#[test]
fn import_good_and_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let input = dir.path().join("in");
    std::fs::create_dir_all(input.join("sub")).unwrap();
    std::fs::write(
        input.join("good.json"),
        r#"{"resourceType":"Patient","id":"good-1","gender":"female"}"#,
    )
    .unwrap();
    std::fs::write(
        input.join("sub/bad.json"),
        r#"{"resourceType":"Patient","id":"bad-1","gender":"female","colour":"blue"}"#,
    )
    .unwrap();
    let out = wardline(&[
        "import",
        input.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("loaded 1 resource from 2 files; rejected 1"),
        "{stdout}"
    );
    assert!(stdout.contains("bad.json"), "{stdout}");
    assert!(!stdout.contains("good.json"), "{stdout}");
    // The refusal reads as the element and the reason, not an HTTP status.
    assert!(
        stdout.contains("bad.json: Patient.colour: unknown element 'colour'"),
        "{stdout}"
    );
    assert!(!stdout.contains("HTTP 4"), "{stdout}");
    assert!(exists(&data, "Patient", "good-1"));
    assert!(!exists(&data, "Patient", "bad-1"));
}

#[test]
fn ndjson_bad_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("patients.ndjson");
    std::fs::write(
        &file,
        concat!(
            r#"{"resourceType":"Patient","id":"n1"}"#,
            "\n",
            r#"{"resourceType":"Patient","id":"n2","birthDate":"not-a-date"}"#,
            "\n",
            r#"{"resourceType":"Patient","id":"n3"}"#,
            "\n"
        ),
    )
    .unwrap();
    let out = wardline(&[
        "import",
        file.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("patients.ndjson (line 2): Patient.birthDate: "),
        "{stdout}"
    );
    assert!(stdout.contains("loaded 2 resources"), "{stdout}");
    assert!(exists(&data, "Patient", "n1"));
    assert!(!exists(&data, "Patient", "n2"));
    assert!(exists(&data, "Patient", "n3"));
}

#[test]
fn import_gzip_and_transaction_bundle() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("tx.json.gz");
    let bundle = serde_json::json!({
        "resourceType": "Bundle", "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:6f1c0a52-1111-4c3e-9d55-0a4f4b1c2d3e",
             "resource": {"resourceType": "Patient", "gender": "male"},
             "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "Observation", "status": "final",
                "code": {"text": "pulse"},
                "subject": {"reference": "urn:uuid:6f1c0a52-1111-4c3e-9d55-0a4f4b1c2d3e"}},
             "request": {"method": "POST", "url": "Observation"}}
        ]
    });
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bundle.to_string().as_bytes()).unwrap();
    std::fs::write(&file, enc.finish().unwrap()).unwrap();
    let out = wardline(&[
        "import",
        file.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("loaded 2 resources from 1 file; rejected 0"),
        "{stdout}"
    );
}

#[test]
fn generate_then_import_and_refuse_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("gen");
    let data = dir.path().join("data");
    let out = wardline(&[
        "generate",
        "--patients",
        "3",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = format!("for 3 patients in {}", out_dir.display());
    assert!(
        stdout.starts_with("generated ") && stdout.contains(&summary),
        "{stdout}"
    );
    let total: usize = stdout["generated ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let lines: usize = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| {
            std::fs::read_to_string(e.unwrap().path())
                .unwrap()
                .lines()
                .count()
        })
        .sum();
    assert_eq!(total, lines);
    for rt in [
        "Patient",
        "Encounter",
        "Observation",
        "Location",
        "Medication",
    ] {
        assert!(
            out_dir.join(format!("{rt}.ndjson")).is_file(),
            "no {rt}.ndjson"
        );
    }

    let out = wardline(&[
        "import",
        out_dir.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("loaded {total} resources")),
        "{stdout}"
    );
    assert!(stdout.contains("rejected 0"), "{stdout}");
    assert!(exists(&data, "Patient", "pat-0"));
    assert!(exists(&data, "Encounter", "enc-0-599"));

    let again = wardline(&[
        "generate",
        "--patients",
        "3",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success());
    assert!(stderr.contains(out_dir.to_str().unwrap()), "{stderr}");
}

/// `wardline hl7 parse`: separators from MSH-2 (here `#` for components),
/// escapes decoded, CRLF terminators; a bad file is exit 1 naming the file
/// and the segment line.
#[test]
fn hl7_parse_prints_a_tree_or_json_and_names_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("adt.hl7");
    std::fs::write(
        &good,
        "MSH|#~\\&|PAS|RWG|EPR|RWG|20261123090000||ADT#A01|MSG001|P|2.4\r\n\
         PID|1||9434765919#####NHS~RWG0000001#####PAS||SMITH#JANE||19700101|F\r\n\
         NTE|1||Ward 7 \\T\\ bay 2\r\n",
    )
    .unwrap();
    // By default a tree a person reads: segment, field, component, value.
    let out = wardline(&["hl7", "parse", good.to_str().unwrap()]);
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{tree}");
    for line in [
        "Message 1",
        "MSH (line 1)",
        "  MSH-9.1        ADT",
        "  PID-3[1].1     9434765919",
        "  PID-3[2].1     RWG0000001",
        "  PID-5.1        SMITH",
        "  NTE-3          Ward 7 & bay 2",
    ] {
        assert!(tree.lines().any(|l| l == line), "{line:?} in\n{tree}");
    }
    // The JSON behind a flag.
    let out = wardline(&["hl7", "parse", "--json", good.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let msg = &v["messages"][0];
    assert_eq!(msg["segments"].as_array().unwrap().len(), 3);
    let flat = msg.to_string();
    assert!(
        flat.contains("9434765919") && flat.contains("RWG0000001"),
        "{flat}"
    );
    assert!(flat.contains("Ward 7 & bay 2"), "escape decoded: {flat}");

    let bad = dir.path().join("bad.hl7");
    std::fs::write(&bad, "PID|1||123\r").unwrap();
    let out = wardline(&["hl7", "parse", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("bad.hl7") && err.contains("MSH"), "{err}");

    // A message cut off inside its header: exit 1, saying where.
    let cut = dir.path().join("cut.hl7");
    std::fs::write(&cut, "MSH|^~\\&|PAS|RWG|EPR").unwrap();
    let out = wardline(&["hl7", "parse", cut.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "cut.hl7: message 1 (line 1): the header ends at MSH-5, without MSH-9 (message type)"
        ),
        "{err}"
    );
}

/// `wardline hl7 send`: every message of a file goes out MLLP-framed, one at a
/// time; each ACK is printed; exit 1 when any is not AA. The listener here is
/// a minimal one written in the test (Wardline's own is tested in e2e/hl7.rs).
#[test]
fn hl7_send_prints_each_ack_and_fails_on_ae() {
    use std::io::{Read, Write};
    use wardline_hl7::mllp::{FrameDecoder, encode_frame};
    use wardline_hl7::{AckCode, ErrorDetail, Message, ack};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        let mut dec = FrameDecoder::new(1 << 20);
        let mut buf = [0u8; 4096];
        let mut received = Vec::new();
        while received.len() < 3 {
            while let Some(frame) = dec.next_frame() {
                let text = String::from_utf8(frame.to_vec()).unwrap();
                let msg = Message::parse(&text).unwrap();
                let id = msg.control_id().unwrap().into_owned();
                // The second message is refused, naming the field at fault.
                let reply = if id == "M2" {
                    ack(
                        &msg,
                        AckCode::AE,
                        &[ErrorDetail::new(101, "PID-3 has no NHS number")],
                    )
                } else {
                    ack(&msg, AckCode::AA, &[])
                };
                conn.write_all(&encode_frame(reply.encode().as_bytes()))
                    .unwrap();
                received.push(id);
            }
            if received.len() == 3 {
                break;
            }
            let n = conn.read(&mut buf).unwrap();
            assert!(n > 0, "client closed early");
            dec.push(&buf[..n]).unwrap();
        }
        received
    });

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("feed.hl7");
    let mut text = String::new();
    for id in ["M1", "M2", "M3"] {
        text.push_str(&format!(
            "MSH|^~\\&|PAS|RWG|EPR|RWG|20261123090000||ADT^A01|{id}|P|2.4\r\
             PID|1||9434765919^^^NHS^NH||SMITH^JANE\r"
        ));
    }
    std::fs::write(&file, text).unwrap();
    let out = wardline(&["hl7", "send", file.to_str().unwrap(), "--to", &addr]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[0].starts_with("M1\tAA"), "{stdout}");
    assert!(
        lines[1].starts_with("M2\tAE") && lines[1].contains("PID-3 has no NHS number"),
        "{stdout}"
    );
    assert!(lines[2].starts_with("M3\tAA"), "{stdout}");
    assert_eq!(server.join().unwrap(), ["M1", "M2", "M3"]);

    // Nothing listening: a clear error naming the address, not a panic.
    drop(std::net::TcpListener::bind("127.0.0.1:0"));
    let out = wardline(&["hl7", "send", file.to_str().unwrap(), "--to", "127.0.0.1:1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("127.0.0.1:1"), "{err}");
}

/// Issue 23: the operator commands work on an existing database; on a
/// directory without one they refuse, naming it, and create nothing. Only
/// `serve` and `import` create a database. An unknown user is "no such
/// user". `user code` works on a demo database only (issue 22).
#[test]
fn operator_commands_never_create_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nothing-here");
    let d = data.to_str().unwrap();
    for args in [
        vec!["user", "list"],
        vec!["user", "code", "someone"],
        vec!["token", "--user", "someone", "--scope", "user/*.rs"],
        vec![
            "client",
            "add",
            "c1",
            "--name",
            "C",
            "--scope",
            "system/*.rs",
        ],
        vec!["audit", "verify"],
        vec!["hl7", "list"],
        vec!["transfers", "overdue"],
        vec!["results", "escalate"],
    ] {
        let mut full = args.clone();
        full.extend(["--data-dir", d]);
        let out = wardline(&full);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must refuse: {err}");
        assert!(
            err.contains("there is no Wardline database in") && err.contains("nothing-here"),
            "{args:?}: {err}"
        );
        assert!(
            !data.join(wardline::SQLITE_FILE).exists(),
            "{args:?} created a database"
        );
    }

    // With a database (made by import), an unknown user is named as such.
    let fixture = dir.path().join("p.json");
    std::fs::write(
        &fixture,
        r#"{"resourceType":"Patient","id":"cli-p1","name":[{"family":"Cli"}]}"#,
    )
    .unwrap();
    let out = wardline(&["import", fixture.to_str().unwrap(), "--data-dir", d]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(data.join(wardline::SQLITE_FILE).exists());
    let args = [
        "token",
        "--user",
        "nobody.here",
        "--scope",
        "user/*.rs",
        "--data-dir",
        d,
    ];
    let out = wardline(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?}");
    assert!(
        err.contains("no such user 'nobody.here'"),
        "{args:?}: {err}"
    );

    // `user code` prints the code alone on standard output (for scripts)
    // and says on standard error when the next one starts.
    let out = Command::new(env!("CARGO_BIN_EXE_wardline"))
        .args([
            "user",
            "add",
            "cli.user",
            "--name",
            "Cli User",
            "--data-dir",
            d,
        ])
        .env("WARDLINE_NEW_PASSWORD", "a-test-password-1")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Issue 22: `user code` works on a demo database only (`serve --demo`
    // marks it; here the mark is set by hand).
    let out = wardline(&["user", "code", "cli.user", "--data-dir", d]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("works only on a demo database"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    rusqlite::Connection::open(data.join(wardline::SQLITE_FILE))
        .unwrap()
        .execute_batch(
            "INSERT INTO system_kv (namespace, key, value) VALUES ('deployment', 'demo', 'test')",
        )
        .unwrap();
    let out = wardline(&["user", "code", "nobody.here", "--data-dir", d]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no such user 'nobody.here'"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = wardline(&["user", "code", "cli.user", "--data-dir", d]);
    let code = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        code.trim().len() == 6 && code.trim().bytes().all(|b| b.is_ascii_digit()),
        "{code}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the next code starts at "), "{err}");
}
