//! `wardline audit …`: operator commands for the audit chain.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use wardline_core::FhirService;

/// Rows read per round trip by `verify`.
const PAGE: usize = 1_000;

const DAY_MS: i64 = 86_400_000;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the audit chain from the purge anchor (or its start) to the
    /// chain head: every row's hash must match its content and link to the
    /// row before it, with no seq missing. Prints `audit chain intact: …` and
    /// exits 0, or prints each finding (altered, reordered, deleted or
    /// truncated rows, by seq) and exits 1.
    Verify(VerifyArgs),
    /// Delete the audit rows older than the retention period (the oldest run
    /// of rows; never the newest row) and move the purge anchor, from which
    /// `verify` then starts. Prints how many rows went.
    Purge(PurgeArgs),
}

#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    store: crate::StoreArgs,
}

#[derive(Args)]
pub struct PurgeArgs {
    /// Delete rows recorded more than this many days ago.
    #[arg(long, value_name = "DAYS")]
    older_than_days: u32,
    #[command(flatten)]
    store: crate::StoreArgs,
}

pub fn run(cmd: AuditCommand) -> Result<ExitCode> {
    match cmd {
        AuditCommand::Verify(a) => verify(&a),
        AuditCommand::Purge(a) => purge(&a),
    }
}

fn verify(a: &VerifyArgs) -> Result<ExitCode> {
    let store = a.store.open_existing()?;
    let v = wardline_store::audit::verify(store.as_ref(), PAGE)
        .context("cannot read the audit chain")?;
    let range = match (v.first_seq, v.last_seq) {
        (Some(first), Some(last)) => format!(" (seq {first}..{last})"),
        _ => String::new(),
    };
    if v.findings.is_empty() {
        println!("audit chain intact: {} rows{range}", v.rows);
        if let Some(anchor) = &v.anchor {
            println!("verified from the purge anchor at seq {}", anchor.seq);
        }
        return Ok(ExitCode::SUCCESS);
    }
    for f in &v.findings {
        println!("{f}");
    }
    println!(
        "audit chain BROKEN: {} finding{} in {} rows{range}; the chain head is seq {}",
        v.findings.len(),
        if v.findings.len() == 1 { "" } else { "s" },
        v.rows,
        v.head.seq
    );
    Ok(ExitCode::FAILURE)
}

/// Purges audit rows recorded more than `days` days ago; returns how many
/// went and the cut-off instant.
pub fn purge_older_than(service: &FhirService, days: u32) -> Result<(u64, i64)> {
    let before = wardline_fhir::datetime::now_ms() - i64::from(days) * DAY_MS;
    let n = service.purge_audit_before(before).map_err(|e| {
        anyhow::anyhow!(
            "cannot purge the audit chain: {}",
            wardline::load::plain(&e)
        )
    })?;
    Ok((n, before))
}

fn purge(a: &PurgeArgs) -> Result<ExitCode> {
    let store = a.store.open_existing()?;
    let service = FhirService::new(store.clone(), wardline_core::ServiceConfig::default());
    let (n, before) = purge_older_than(&service, a.older_than_days)?;
    println!(
        "purged {n} audit rows recorded before {}",
        wardline_fhir::datetime::format_instant(before)
    );
    if let Some(anchor) = store.audit_anchor()? {
        println!("the chain now starts after seq {}", anchor.seq);
    }
    Ok(ExitCode::SUCCESS)
}
