//! The formulary through the real binary: `wardline formulary import`
//! refuses a file with a bad line (exit status non-zero, file and line
//! named, nothing written) and prints what a good one added, changed and
//! withdrew; `serve --demo` loads the starter formulary, whose pages over
//! HTTP list a medicine with its flags and local-code tag, and whose import
//! page (pharmacists only) lists a bad file's problems by line and imports
//! a good one.

use std::process::{Command, Stdio};

use crate::common;
use crate::ui::{browser, csrf, sign_in};

use common::Env;

const STARTER: &str = wardline_demo::FORMULARY;

fn run(env: &Env, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wardline"))
        .args(args)
        .args(env.store_args())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run wardline");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The starter file with the row naming `name` changed by `edit`, and the
/// line number of that row.
fn edited(name: &str, edit: impl Fn(&str) -> String) -> (String, usize) {
    let mut at = 0;
    let text = STARTER
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if l.contains(name) {
                at = i + 1;
                edit(l) + "\n"
            } else {
                l.to_owned() + "\n"
            }
        })
        .collect();
    (text, at)
}

#[test]
fn formulary_import_on_the_command_line() {
    let env = Env::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let (bad, line) = edited("Ibuprofen 400mg tablets", |l| {
        l.replace(",26643006,", ",1234,")
    });
    let bad_path = dir.path().join("bad.csv");
    std::fs::write(&bad_path, bad).unwrap();
    let bad_path = bad_path.to_str().unwrap();
    let (ok, _, err) = run(&env, &["formulary", "import", bad_path]);
    assert!(!ok, "a bad file must fail");
    assert!(
        err.contains(&format!(
            "{bad_path} line {line}: routes: '1234' is not a known route code"
        )),
        "{err}"
    );
    assert!(err.contains("nothing was changed"), "{err}");

    // The good file: everything added.
    let good = dir.path().join("formulary.csv");
    std::fs::write(&good, STARTER).unwrap();
    let out = env.cli(&["formulary", "import", good.to_str().unwrap()]);
    assert!(
        out.contains("added: Paracetamol 500mg tablets (med-42109611000001109)"),
        "{out}"
    );
    assert!(out.contains("0 changed, 0 withdrawn, 0 unchanged"), "{out}");

    // Without warfarin 5mg: withdrawn (and the bad file had changed nothing).
    let v2: String = STARTER
        .lines()
        .filter(|l| !l.contains("Warfarin 5mg tablets"))
        .map(|l| l.to_owned() + "\n")
        .collect();
    let v2_path = dir.path().join("v2.csv");
    std::fs::write(&v2_path, v2).unwrap();
    let out = env.cli(&["formulary", "import", v2_path.to_str().unwrap()]);
    assert!(out.contains("withdrawn: Warfarin 5mg tablets"), "{out}");
    assert!(out.contains("0 added, 0 changed, 1 withdrawn"), "{out}");

    // A file that is not there: named.
    let (ok, _, err) = run(&env, &["formulary", "import", "/nonexistent/f.csv"]);
    assert!(!ok);
    assert!(err.contains("/nonexistent/f.csv"), "{err}");

    let help = env.cli(&["formulary", "import", "--help"]);
    assert!(help.contains("docs/formulary-format.md"), "{help}");
}

fn multipart(token: &str, file: Option<&str>, text: &str) -> (String, Vec<u8>) {
    let boundary = "wardline-test-boundary-F0rmu1ary";
    let mut body = String::new();
    body.push_str(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{token}\r\n"
    ));
    if let Some(f) = file {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"upload.csv\"\r\nContent-Type: text/csv\r\n\r\n{f}\r\n"
        ));
    }
    body.push_str(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n{text}\r\n--{boundary}--\r\n"
    ));
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.into_bytes(),
    )
}

#[test]
fn formulary_pages_over_http() {
    let env = Env::sqlite();
    let s = env.start_with(&["--demo"]);
    let root = s.root.clone();

    // The demo loaded the starter formulary: REST has it.
    let m = s.get("Medication/med-42109611000001109").body;
    assert_eq!(m["code"]["coding"][0]["system"], "https://dmd.nhs.uk");

    let nurse = browser();
    sign_in(&env, &root, &nurse, "nurse.w1");
    let html = nurse
        .get(format!("{root}/ui/formulary?q=morphine"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let row = |html: &str, name: &str| {
        let at = html
            .find(name)
            .unwrap_or_else(|| panic!("{name} in {html}"));
        let start = html[..at].rfind("<tr").unwrap();
        html[start..at + html[at..].find("</tr>").unwrap()].to_owned()
    };
    let inj = row(
        &html,
        "Morphine sulfate 10mg/1ml solution for injection ampoules",
    );
    assert!(inj.contains("CD2") && inj.contains("High risk"), "{inj}");
    assert!(inj.contains("Local code"), "{inj}");
    assert!(inj.contains("Intravenous"), "{inj}");
    assert!(!html.contains("Paracetamol"), "the search narrows the list");
    let html = nurse
        .get(format!("{root}/ui/formulary?q=paracetamol"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(!row(&html, "Paracetamol 500mg tablets<").contains("Local code"));
    let html = nurse
        .get(format!("{root}/ui/formulary?q=insulin+glargine"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(html.contains("Time critical"), "{html}");
    let view = nurse
        .get(format!("{root}/ui/formulary/med-42109611000001109"))
        .send()
        .unwrap();
    assert_eq!(view.status(), 200);
    let view = view.text().unwrap();
    assert!(view.contains("90332006") && view.contains("dm+d"), "{view}");
    assert!(
        view.contains("Paracetamol 1g suppositories"),
        "siblings: {view}"
    );
    // A nurse reads the formulary but may not import one.
    let r = nurse
        .get(format!("{root}/ui/formulary/import"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);

    let pharm = browser();
    sign_in(&env, &root, &pharm, "pharm.watford");
    let page = pharm
        .get(format!("{root}/ui/formulary/import"))
        .send()
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().unwrap().contains("formulary-import-form"));
    let token = csrf(&root, &pharm);
    // A bad file (pasted): each problem by line, nothing imported.
    let (bad, line) = edited("Cefalexin 500mg capsules", |l| {
        l.replace(",no,no,", ",maybe,no,")
    });
    let (ct, body) = multipart(&token, None, &bad);
    let r = pharm
        .post(format!("{root}/ui/formulary/import"))
        .header("content-type", ct)
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 422);
    let text = r.text().unwrap();
    assert!(
        text.contains(&format!(
            "the pasted file line {line}: high_risk: &#39;maybe&#39; is neither yes nor no"
        )) || text.contains(&format!(
            "the pasted file line {line}: high_risk: 'maybe' is neither yes nor no"
        )),
        "{text}"
    );
    // A good file (uploaded) without cefalexin: it is withdrawn.
    let v2: String = STARTER
        .lines()
        .filter(|l| !l.contains("Cefalexin 500mg capsules"))
        .map(|l| l.to_owned() + "\n")
        .collect();
    let (ct, body) = multipart(&token, Some(&v2), "");
    let r = pharm
        .post(format!("{root}/ui/formulary/import"))
        .header("content-type", ct)
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().unwrap();
    assert!(text.contains("0 added, 0 changed, 1 withdrawn"), "{text}");
    assert!(text.contains("Cefalexin 500mg capsules"), "{text}");
    let list = pharm
        .get(format!("{root}/ui/formulary?q=cefalexin"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(list.contains("formulary-empty"), "withdrawn is not offered");
    let list = pharm
        .get(format!("{root}/ui/formulary?q=cefalexin&withdrawn=yes"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(list.contains("Withdrawn"), "{list}");
}
