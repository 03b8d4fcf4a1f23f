//! `wardline-bench mesh`: discharge summaries sent over MESH (issue 18).
//!
//! Seeds a fresh store (SQLite in a temporary directory, or `--database`)
//! as `wardline-bench discharge` does (a patient with `--encounters`
//! encounters, the practice's route a MESH mailbox of the sandbox), signs
//! one real discharge summary through `documents::discharge` (so the
//! document Bundle and PDF are of a real summary's size; signing queues its
//! delivery), and queues `--count - 1` more deliveries of copies of its
//! DocumentReference (the same Bundle and PDF) with `transfers::queue`.
//! Then it times one `transfers::send::run` at the sandbox (`--mesh-url`,
//! `--shared-key`, mailbox X26ABC1 to X26ABC2) sending them all, as it does
//! today (one after another, each claimed, sent and recorded in its own
//! transactions), and prints sends per minute. Then it times `--count`
//! bare `MeshClient::send`s of the same Bundle (the MESH round trip per
//! message, without the store) and prints min, p50 and p99.

use std::time::{Duration as StdDuration, Instant};

use anyhow::{Context, Result, anyhow};
use clap::Args;
use wardline_core::Trusted;
use wardline_workflow::documents::discharge;
use wardline_workflow::transfers::mesh::{MeshClient, MeshConfig, MeshMessage};
use wardline_workflow::transfers::send::{Policy, Transports, run as send_run};
use wardline_workflow::transfers::{Kind, Outgoing, queue};

use crate::discharge::{
    PATIENT, PRACTICE, PRACTICE_MAILBOX, doctor, pdf_size, seed, service, written,
};

#[derive(Args)]
pub struct MeshBenchArgs {
    /// A postgres://… URL; default: SQLite in a temporary directory.
    #[arg(long)]
    database: Option<String>,
    /// The MESH (sandbox) base URL, e.g. `http://127.0.0.1:PORT`.
    #[arg(long, env = "WARDLINE_TEST_MESH_URL")]
    mesh_url: String,
    /// The MESH environment's shared key.
    #[arg(long, env = "WARDLINE_TEST_MESH_SHARED_KEY")]
    shared_key: String,
    /// The trust's mailbox (a sandbox canned mailbox).
    #[arg(long, default_value = "X26ABC1")]
    mailbox: String,
    #[arg(long, default_value = "password")]
    password: String,
    /// Deliveries queued and sent.
    #[arg(long, default_value_t = 200)]
    count: usize,
    /// Encounters of the patient whose summary is sent.
    #[arg(long, default_value_t = 600)]
    encounters: usize,
}

pub fn run(a: MeshBenchArgs) -> Result<()> {
    anyhow::ensure!(a.count >= 1, "--count must be at least 1");
    let (svc, _dir) = service(a.database.clone())?;
    let s = seed(&svc, a.encounters, 2)?;
    let dr = doctor();
    let enc = &s.admissions[1];
    let id = discharge::start(&svc, &dr, enc, s.now).map_err(|e| anyhow!("{e}"))?;
    discharge::save_draft(&svc, &dr, &id, &written(), s.now).map_err(|e| anyhow!("{e}"))?;
    let signed = discharge::sign(&svc, &dr, &id, s.now).map_err(|e| anyhow!("{e}"))?;
    let op = Trusted::operator("bench-loader");
    let (doc, bundle) = {
        let mut tx = svc.begin(&op)?;
        let d = tx
            .get("DocumentReference", &signed.document_reference)?
            .context("the signed DocumentReference is not stored")?;
        let b = tx
            .get("Bundle", &signed.bundle)?
            .context("the signed Bundle is not stored")?;
        tx.commit()?;
        (d, serde_json::to_vec(&b)?)
    };
    let pdf = pdf_size(&svc, &signed.binary)?;
    // Copies of the signed DocumentReference (same Bundle and PDF), each
    // queued for the practice.
    for i in 1..a.count {
        let mut d = doc.clone();
        d["id"] = serde_json::json!(format!("bench-doc-{i}"));
        let mut tx = svc.begin(&op)?;
        tx.save(d)?;
        tx.commit()?;
        queue(
            &svc,
            &op,
            &Outgoing {
                kind: Kind::DischargeSummary,
                patient: format!("Patient/{PATIENT}"),
                encounter: format!("Encounter/{enc}"),
                document: format!("DocumentReference/bench-doc-{i}"),
                recipient: format!("Organization/{PRACTICE}"),
            },
            s.now,
        )
        .map_err(|e| anyhow!("{e}"))?;
    }
    let client = || {
        MeshClient::new(MeshConfig {
            url: a.mesh_url.trim_end_matches('/').to_owned(),
            mailbox: a.mailbox.clone(),
            password: a.password.clone(),
            shared_key: a.shared_key.clone(),
            identity_pem: None,
        })
        .map_err(|e| anyhow!("{e}"))
    };
    let transports = Transports {
        mesh: Some(client()?),
        email: None,
    };
    let t = Instant::now();
    let r =
        send_run(&svc, &op, &transports, Policy::default(), s.now).map_err(|e| anyhow!("{e}"))?;
    let wall = t.elapsed();
    anyhow::ensure!(
        r.sent.len() == a.count && r.failed.is_empty() && r.retrying.is_empty(),
        "send::run sent {} of {} ({} retrying, {} failed)",
        r.sent.len(),
        a.count,
        r.retrying.len(),
        r.failed.len()
    );
    println!(
        "mesh [{}]: send::run sent {} discharge summaries (Bundle {} KiB + PDF {} KiB stored; the Bundle is sent) in {:.2} s: {:.0} sends per minute",
        svc.backend(),
        r.sent.len(),
        bundle.len() / 1024,
        pdf / 1024,
        wall.as_secs_f64(),
        r.sent.len() as f64 * 60.0 / wall.as_secs_f64()
    );
    // The MESH round trip alone, per message.
    let mesh = client()?;
    let mut times: Vec<StdDuration> = Vec::with_capacity(a.count);
    for i in 0..a.count {
        let local = format!("bench-rtt-{i}");
        let name = format!("{local}.json");
        let t = Instant::now();
        mesh.send(&MeshMessage {
            to: &PRACTICE_MAILBOX.to_lowercase(),
            workflow: Kind::DischargeSummary.mesh_workflow(),
            local_id: &local,
            subject: Kind::DischargeSummary.label(),
            filename: &name,
            content_type: "application/fhir+json",
            body: bundle.clone(),
        })
        .map_err(|e| anyhow!("{e}"))?;
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "mesh: MESH send round trip ({} messages): min {:.1} ms, p50 {:.1} ms, p99 {:.1} ms",
        a.count,
        crate::bench::percentile(&times, 0.0),
        crate::bench::percentile(&times, 0.5),
        crate::bench::percentile(&times, 0.99),
    );
    Ok(())
}
