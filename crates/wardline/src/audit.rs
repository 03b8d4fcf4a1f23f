//! `wardline audit …`: operator commands for the audit chain.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use wardline::anchor::{self, AuditKey, Checkpointer, Kind};
use wardline_core::FhirService;

/// Rows read per round trip by `verify`.
const PAGE: usize = 1_000;

const DAY_MS: i64 = 86_400_000;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the audit chain from the purge anchor (or its start) to the
    /// chain head: every row's hash must match its content and link to the
    /// row before it, with no seq missing, no row beyond the head, and each
    /// row's patient-index entries its own. With --audit-key and
    /// --audit-checkpoints, also against every keyed checkpoint (a chain
    /// rewritten and re-hashed, a head moved back, a forged purge anchor).
    /// Prints `audit chain intact: …` and exits 0, or prints each finding
    /// (what is wrong, and where) and exits 1.
    Verify(VerifyArgs),
    /// Delete the audit rows older than the retention period (the oldest run
    /// of rows; never the newest row) and move the purge anchor, from which
    /// `verify` then starts. Prints how many rows went. With --audit-key and
    /// --audit-checkpoints the new anchor is checkpointed (a keyed purge).
    Purge(PurgeArgs),
    /// Append the chain head now to the checkpoint file, sealed with the
    /// audit key (`serve` does so every --audit-checkpoint-seconds and at
    /// shutdown).
    Checkpoint(CheckpointArgs),
    /// The audit key, held outside the database.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Create a new audit key (32 random bytes) in a new file readable by
    /// its owner only. Keep it outside the data directory, where the
    /// database's administrators cannot read it, and back it up apart from
    /// the database.
    Init(KeyInitArgs),
}

#[derive(Args)]
pub struct KeyInitArgs {
    /// The file to create (never overwritten).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// The keyed anchor of the audit chain (issue 22): the audit key and the
/// checkpoint file, both outside the database.
#[derive(Args, Clone, Default)]
pub struct AnchorArgs {
    /// The audit key (`wardline audit key init`), kept outside the database.
    #[arg(
        long,
        env = "WARDLINE_AUDIT_KEY",
        value_name = "FILE",
        requires = "audit_checkpoints"
    )]
    pub audit_key: Option<PathBuf>,
    /// The file the chain head is checkpointed to, one keyed line each
    /// time, outside the data directory (where the database's
    /// administrators cannot write).
    #[arg(
        long,
        env = "WARDLINE_AUDIT_CHECKPOINTS",
        value_name = "FILE",
        requires = "audit_key"
    )]
    pub audit_checkpoints: Option<PathBuf>,
}

impl AnchorArgs {
    /// The checkpoint writer, when both files are given; refuses files in
    /// the SQLite data directory.
    pub fn checkpointer(&self, store: &crate::StoreArgs) -> Result<Option<Arc<Checkpointer>>> {
        let (Some(key), Some(file)) = (&self.audit_key, &self.audit_checkpoints) else {
            return Ok(None);
        };
        if store.database.is_none() {
            anchor::ensure_outside("the audit key", key, &store.data_dir)?;
            anchor::ensure_outside("the audit checkpoint file", file, &store.data_dir)?;
        }
        Ok(Some(Arc::new(Checkpointer::open(key, file)?)))
    }
}

#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    store: crate::StoreArgs,
    #[command(flatten)]
    anchor: AnchorArgs,
}

#[derive(Args)]
pub struct PurgeArgs {
    /// Delete rows recorded more than this many days ago.
    #[arg(long, value_name = "DAYS")]
    older_than_days: u32,
    #[command(flatten)]
    store: crate::StoreArgs,
    #[command(flatten)]
    anchor: AnchorArgs,
}

#[derive(Args)]
pub struct CheckpointArgs {
    #[command(flatten)]
    store: crate::StoreArgs,
    #[command(flatten)]
    anchor: AnchorArgs,
}

pub fn run(cmd: AuditCommand) -> Result<ExitCode> {
    match cmd {
        AuditCommand::Verify(a) => verify(&a),
        AuditCommand::Purge(a) => purge(&a),
        AuditCommand::Checkpoint(a) => checkpoint(&a),
        AuditCommand::Key(KeyCommand::Init(a)) => {
            AuditKey::create(&a.out)?;
            println!(
                "audit key written to {} (readable by its owner only); give it to `wardline serve` \
                 and `wardline audit verify` with --audit-key, keep it outside the data directory \
                 and back it up apart from the database",
                a.out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn verify(a: &VerifyArgs) -> Result<ExitCode> {
    let store = a.store.open_existing()?;
    let file = match (&a.anchor.audit_key, &a.anchor.audit_checkpoints) {
        (Some(k), Some(f)) => {
            let key = AuditKey::load(k)?;
            let text = std::fs::read_to_string(f).with_context(|| {
                format!("cannot read the audit checkpoint file {}", f.display())
            })?;
            Some(anchor::check_file(&key, &text))
        }
        _ => None,
    };
    let wanted = file.as_ref().map(anchor::wanted).unwrap_or_default();
    let v = wardline_store::audit::verify_with(store.as_ref(), PAGE, &wanted)
        .context("cannot read the audit chain")?;
    let mut findings: Vec<String> = v.findings.iter().map(ToString::to_string).collect();
    if let Some(f) = &file {
        findings.extend(f.problems.iter().cloned());
        findings.extend(anchor::compare(f, &v));
    }
    let range = match (v.first_seq, v.last_seq) {
        (Some(first), Some(last)) => format!(" (seq {first}..{last})"),
        _ => String::new(),
    };
    for f in &findings {
        println!("{f}");
    }
    // How far the result can be trusted.
    match &file {
        None => println!(
            "anchor: none (no --audit-key and --audit-checkpoints): the chain is not anchored, \
             so a chain rewritten and re-hashed in the database would pass this check"
        ),
        Some(f) => match f
            .checkpoints
            .iter()
            .rev()
            .find(|(_, c)| c.kind == Kind::Head)
        {
            Some((n, c)) => println!(
                "anchor: checked against {} keyed checkpoint{}, the newest (line {n}) at seq {} ({})",
                f.checkpoints.len(),
                if f.checkpoints.len() == 1 { "" } else { "s" },
                c.seq,
                c.at()
            ),
            None => println!(
                "anchor: the checkpoint file holds no checkpoint of the chain head sealed by this key yet"
            ),
        },
    }
    if findings.is_empty() {
        println!("audit chain intact: {} rows{range}", v.rows);
        if let Some(anchor) = &v.anchor {
            println!("verified from the purge anchor at seq {}", anchor.seq);
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "audit chain BROKEN: {} finding{} in {} rows{range}; the chain head is seq {}",
        findings.len(),
        if findings.len() == 1 { "" } else { "s" },
        v.rows,
        v.head.seq
    );
    Ok(ExitCode::FAILURE)
}

/// Checkpoints the chain head now (nothing when the file's last line
/// already records it); returns the line written.
pub fn checkpoint_head(
    service: &FhirService,
    cp: &Checkpointer,
) -> Result<Option<anchor::Checkpoint>> {
    let (head, _) = service
        .audit_head()
        .map_err(|e| anyhow::anyhow!("cannot read the audit chain head: {e}"))?;
    cp.record(Kind::Head, &head)
}

/// Checkpoints the purge anchor, after a purge.
pub fn checkpoint_purge(service: &FhirService, cp: &Checkpointer) -> Result<()> {
    let (_, anchor) = service
        .audit_head()
        .map_err(|e| anyhow::anyhow!("cannot read the audit chain's purge anchor: {e}"))?;
    if let Some(a) = anchor {
        cp.record(Kind::Purge, &a)?;
    }
    Ok(())
}

/// At `serve` start-up: the chain head must not be behind, or differ
/// from, the newest checkpoint (the full check is `wardline audit verify`).
/// Logged, not refused: the record stays available.
pub fn check_head_at_start(service: &FhirService, cp: &Checkpointer) -> Result<()> {
    let (head, _) = service
        .audit_head()
        .map_err(|e| anyhow::anyhow!("cannot read the audit chain head: {e}"))?;
    let Some(last) = cp.last()?.filter(|c| c.kind == Kind::Head) else {
        return Ok(());
    };
    if head.seq < last.seq || (head.seq == last.seq && head.hash != last.hash) {
        tracing::error!(
            head = head.seq,
            checkpoint = last.seq,
            at = %last.at(),
            "the audit chain does not match its newest keyed checkpoint: rows were deleted or \
             rewritten in the database; run `wardline audit verify --audit-key … --audit-checkpoints …`"
        );
    }
    Ok(())
}

fn checkpoint(a: &CheckpointArgs) -> Result<ExitCode> {
    let Some(cp) = a.anchor.checkpointer(&a.store)? else {
        anyhow::bail!("give --audit-key and --audit-checkpoints");
    };
    let service = FhirService::new(
        a.store.open_existing()?,
        wardline_core::ServiceConfig::default(),
    );
    match checkpoint_head(&service, &cp)? {
        Some(c) => println!(
            "checkpointed the audit chain head at seq {} ({})",
            c.seq,
            c.at()
        ),
        None => println!("the newest checkpoint already records the chain head"),
    }
    Ok(ExitCode::SUCCESS)
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
    let cp = a.anchor.checkpointer(&a.store)?;
    let store = a.store.open_existing()?;
    let service = FhirService::new(store.clone(), wardline_core::ServiceConfig::default());
    let (n, before) = purge_older_than(&service, a.older_than_days)?;
    if let Some(cp) = &cp
        && n > 0
    {
        checkpoint_purge(&service, cp)?;
    }
    println!(
        "purged {n} audit rows recorded before {}",
        wardline_fhir::datetime::format_instant(before)
    );
    if let Some(anchor) = store.audit_anchor()? {
        println!("the chain now starts after seq {}", anchor.seq);
    }
    Ok(ExitCode::SUCCESS)
}
