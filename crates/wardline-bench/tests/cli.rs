//! `wardline-bench --help` on every subcommand, with the flags the
//! documented commands use.

use std::process::{Command, Output};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wardline-bench"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run wardline-bench")
}

#[test]
fn help_on_every_subcommand() {
    let subcommands = [
        "ingest",
        "read",
        "search",
        "chart",
        "everything",
        "export",
        "explain",
        "mllp",
        "workspace",
    ];
    let top = bench(&["--help"]);
    assert!(top.status.success());
    let top = String::from_utf8_lossy(&top.stdout).into_owned();
    for sub in subcommands {
        assert!(top.contains(sub), "{top}");
        let out = bench(&[sub, "--help"]);
        assert!(out.status.success(), "{sub} --help failed");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage:"), "{sub}: {text}");
    }
    let help = |sub: &str| String::from_utf8_lossy(&bench(&[sub, "--help"]).stdout).into_owned();
    for (sub, flags) in [
        ("ingest", &["--database", "--data", "--audit"][..]),
        ("read", &["--clients", "--requests", "--audit"][..]),
        (
            "chart",
            &["--data-dir", "--database", "--clients", "--requests"][..],
        ),
        ("everything", &["--patient", "--repeat"][..]),
        ("export", &["--data-dir"][..]),
        ("mllp", &["--connections", "--messages", "--database"][..]),
        (
            "workspace",
            &["--data-dir", "--beds", "--patients", "--repeat"][..],
        ),
    ] {
        let text = help(sub);
        for flag in flags {
            assert!(text.contains(flag), "{sub}: {flag}: {text}");
        }
    }
}
