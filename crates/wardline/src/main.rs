//! The `wardline` binary: `serve`, `import`, `export` and the other
//! operator commands.
//!
//! This is the only crate of the shipped system that reads configuration
//! (flags and `WARDLINE_*` environment variables) and chooses the storage
//! backend. The benchmarks are a binary of their own, `wardline-bench`.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod alerts;
mod audit;
// issue 22: backup
mod backup;
// issue 21: timeouts
mod connections;
mod demo_drugs;
// issue 22: downtime
mod downtime;
mod export;
mod formulary;
mod generate;
mod hl7;
mod import;
mod jobs;
// issue 22: encryption at rest
mod keys;
// issue 21: bounded work
mod limits;
mod medicines;
// issue 22: PostgreSQL backup, PITR and replica
mod pgbackup;
// issue 18: referrals
mod referrals;
mod results;
// issue 20: tasks
mod tasks;
mod transfers;
mod user;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};

// glibc malloc spent a fifth of the CPU of a search benchmark in
// allocation and consolidation; mimalloc is built for many short-lived
// allocations across threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use clap::{Args, Parser, Subcommand};
use wardline::StoreArgs;
use wardline_core::{FhirService, ServiceConfig};

#[derive(Parser)]
#[command(
    name = "wardline",
    version,
    about = "Wardline: an open-source electronic patient record (FHIR R4)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    hospital_numbers: HospitalNumberArgs,
}

/// The trust's hospital numbers: one identifier system and one scheme
/// (prefix, serial digits, Luhn check digit), used by registration, the demo
/// and the generator, search, display and the uniqueness rule. Every
/// command takes them (set them once in the environment).
#[derive(Args)]
struct HospitalNumberArgs {
    /// The identifier system of the trust's hospital numbers.
    #[arg(
        long,
        global = true,
        env = "WARDLINE_HOSPITAL_NUMBER_SYSTEM",
        default_value = wardline_fhir::hospital_number::DEFAULT_SYSTEM
    )]
    hospital_number_system: String,
    /// The letters a hospital number starts with (1 to 6).
    #[arg(
        long,
        global = true,
        env = "WARDLINE_HOSPITAL_NUMBER_PREFIX",
        default_value = "W"
    )]
    hospital_number_prefix: String,
    /// How many digits follow the prefix, before the check digit (4 to 12).
    #[arg(
        long,
        global = true,
        env = "WARDLINE_HOSPITAL_NUMBER_DIGITS",
        default_value_t = 7
    )]
    hospital_number_digits: usize,
}

impl HospitalNumberArgs {
    /// Sets this process's scheme (before anything reads it).
    fn configure(&self) -> Result<()> {
        let scheme = wardline_fhir::hospital_number::Scheme::new(
            &self.hospital_number_system,
            &self.hospital_number_prefix,
            self.hospital_number_digits,
        )
        .map_err(|e| anyhow::anyhow!("--hospital-number-*: {e}"))?;
        wardline_workflow::pmi::configure_hospital_numbers(scheme).map_err(|e| anyhow::anyhow!(e))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the FHIR server.
    Serve(Box<ServeArgs>),
    /// Load FHIR JSON resources, Bundles and NDJSON files into the store.
    Import(ImportArgs),
    /// Write a Bulk Data export (NDJSON per type) of the store to a directory.
    Export(export::ExportArgs),
    /// Write a reproducible synthetic population (NDJSON per type) for benchmarks.
    Generate(generate::GenerateArgs),
    /// HL7 v2 tools.
    #[command(subcommand)]
    Hl7(hl7::Hl7Command),
    /// Audit trail tools: verify the hash chain, purge old rows.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Online backup of the SQLite database (a consistent snapshot while the
    /// server serves) with a manifest beside it; PostgreSQL: a base backup
    /// with pg_basebackup (point-in-time restore also needs WAL archiving:
    /// `wardline wal-archive`).
    Backup(backup::BackupArgs),
    /// Restore a backup into a new data directory and verify it against its
    /// manifest (counts per type, the audit chain, checksums); `restore
    /// drill` restores to a scratch directory, verifies and removes it.
    /// PostgreSQL: `--to-time` restores to an instant from the WAL archive.
    Restore(backup::RestoreArgs),
    /// PostgreSQL's archive_command (issue 22): copy a WAL segment into the
    /// archive directory, synced, never overwriting one there:
    /// `archive_command = 'wardline wal-archive --to /ARCHIVE %p %f'`.
    WalArchive(pgbackup::WalArchiveArgs),
    /// Issue 22: the database key (encryption at rest): `key init --out FILE`.
    #[command(subcommand)]
    Key(keys::KeyCommand),
    /// Issue 22: write an encrypted copy (SQLCipher) of a plaintext SQLite
    /// database into a new data directory, checked against the source.
    EncryptDb(keys::EncryptDbArgs),
    /// Manage users and their positions (roles at organisations and wards).
    #[command(subcommand)]
    User(user::UserCommand),
    /// Print a short-lived access token for a user or a backend client (for
    /// scripts and automated clients; operator command on the data directory).
    Token(user::TokenArgs),
    /// Register SMART on FHIR clients (apps and backend services).
    #[command(subcommand)]
    Client(user::ClientCommand),
    /// Results inbox tools: escalate unacknowledged critical results.
    #[command(subcommand)]
    Results(results::ResultsCommand),
    /// Clinical alerts (issue 20): Mental Health Act expiry reminders.
    #[command(subcommand)]
    Alerts(alerts::AlertsCommand),
    /// The medicines formulary: import a formulary file.
    #[command(subcommand)]
    Formulary(formulary::FormularyCommand),
    /// Drug round tools: escalate late time-critical doses.
    #[command(subcommand)]
    Medicines(medicines::MedicinesCommand),
    /// Transfers of care: deliver documents to GP practices (MESH, email),
    /// raise overdue discharge summaries.
    #[command(subcommand)]
    Transfers(transfers::TransfersCommand),
    /// e-Referrals (issue 18): deliver BaRS messages to other providers,
    /// chase referrals not accepted, make this server's key pair.
    #[command(subcommand)]
    Referrals(referrals::ReferralsCommand),
    /// Tasks (issue 20): escalate and remind overdue tasks, as at a time.
    #[command(subcommand)]
    Tasks(tasks::TasksCommand),
    /// Read-only downtime (issue 22): switch it on or off for every server
    /// on the database, and write the downtime report.
    #[command(subcommand)]
    Downtime(downtime::DowntimeCommand),
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Issue 22: a read replica of the --database primary (a postgres://…
    /// URL of a streaming hot standby): searches and the workspace's list
    /// pages are served by it once it has replayed this server's latest
    /// write; writes, reads by id and everything else go to the primary;
    /// a replica that lags or fails falls back to the primary.
    #[arg(long, env = "WARDLINE_REPLICA", value_name = "URL")]
    replica: Option<String>,
    /// Address to listen on.
    #[arg(long, env = "WARDLINE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Public base URL of the FHIR API (defaults to http://LISTEN/fhir).
    #[arg(long, env = "WARDLINE_BASE_URL")]
    base_url: Option<String>,
    /// Load the demo trust when the store is empty.
    #[arg(long)]
    demo: bool,
    /// Demonstration and training only (with --demo): the clinical clock runs
    /// the whole number of seconds written in FILE ahead of the system clock
    /// (negative: behind), read at each use, so a trainer or a test moves the
    /// time of a running server (the ED's 4-hour clock, MHA expiries, due
    /// tasks). The audit trail and credentials keep the system clock.
    #[arg(long, value_name = "FILE", requires = "demo")]
    clock_offset_file: Option<PathBuf>,
    #[command(flatten)]
    trust: user::TrustArgs,
    /// Also accept HL7 v2 over MLLP on this address (e.g. 127.0.0.1:2575).
    #[arg(long, env = "WARDLINE_MLLP_LISTEN")]
    mllp_listen: Option<SocketAddr>,
    #[command(flatten)]
    hl7: hl7::EngineArgs,
    /// Issue 21: timeouts and connection limits, HTTP and MLLP.
    #[command(flatten)]
    connections: connections::ConnectionArgs,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, env = "WARDLINE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "WARDLINE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve /metrics without credentials (by default it needs a valid token).
    #[arg(long)]
    metrics_open: bool,
    /// Keep audit events this many days: older ones are purged at start-up
    /// and daily after (as `wardline audit purge --older-than-days`). Unset
    /// keeps them for ever.
    #[arg(long, env = "WARDLINE_AUDIT_RETENTION_DAYS", value_name = "DAYS")]
    audit_retention_days: Option<u32>,
    /// Issue 22: the audit chain's keyed anchor (--audit-key,
    /// --audit-checkpoints): the head is checkpointed at start-up, every
    /// --audit-checkpoint-seconds and at shutdown.
    #[command(flatten)]
    audit_anchor: audit::AnchorArgs,
    /// Seconds between checkpoints of the audit chain head (with --audit-key).
    #[arg(
        long,
        env = "WARDLINE_AUDIT_CHECKPOINT_SECONDS",
        value_name = "SECONDS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    audit_checkpoint_seconds: u64,
    /// Look for duplicate patient records at start-up and then every this
    /// many minutes; likely pairs go to the review queue (/ui/duplicates).
    /// 0 turns the scan off.
    #[arg(
        long,
        env = "WARDLINE_DUPLICATE_SCAN_MINUTES",
        value_name = "MINUTES",
        default_value_t = 60
    )]
    duplicate_scan_minutes: u64,
    /// Escalate a critical result nobody has acknowledged this many minutes
    /// after it reached the inbox to the responsible consultant (checked
    /// every minute; `wardline results escalate` runs the same check).
    #[arg(
        long,
        env = "WARDLINE_CRITICAL_RESULT_ESCALATION_MINUTES",
        value_name = "MINUTES",
        default_value_t = 60,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    critical_result_escalation_minutes: u32,
    /// Escalate a dose of a time-critical medicine with nothing recorded
    /// this many minutes after its time to the ward's nurse in charge
    /// (checked every minute; `wardline medicines escalate` runs the same check).
    #[arg(
        long,
        env = "WARDLINE_TIME_CRITICAL_DOSE_MINUTES",
        value_name = "MINUTES",
        default_value_t = 30,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    time_critical_dose_minutes: u32,
    /// Issue 18 (access): how many days after an encounter finished (its
    /// `period.end`) the staff it involved — its ward, its clinicians —
    /// keep access to the patient's record, e.g. to write and sign the
    /// discharge summary. 0: access ends with the encounter.
    #[arg(
        long,
        env = "WARDLINE_RECENT_ENCOUNTER_DAYS",
        value_name = "DAYS",
        default_value_t = wardline_auth::directory::DEFAULT_RECENT_ENCOUNTER_DAYS
    )]
    recent_encounter_days: u32,
    /// Delivery to GP practices (issue 18): MESH and SMTP settings.
    #[command(flatten)]
    delivery: transfers::DeliveryArgs,
    /// e-Referrals to other providers (issue 18).
    #[command(flatten)]
    referrals: referrals::ReferralArgs,
    /// Seconds between runs of the e-Referral delivery and chase job; 0
    /// turns it off (`wardline referrals send|chase` run the same steps).
    #[arg(long, env = "WARDLINE_REFERRAL_JOB_SECONDS", default_value_t = 60)]
    referral_job_seconds: u64,
    /// Bounded work per request (issue 21): resource and search limits.
    #[command(flatten)]
    limits: limits::LimitArgs,
    /// Issue 22: serve read-only (downtime): pages say so, every write is
    /// refused (this server only; `wardline downtime on` is for all). Not
    /// with --demo, which loads the demo by writing it.
    #[arg(long, env = "WARDLINE_READ_ONLY", conflicts_with = "demo")]
    read_only: bool,
    /// Issue 22: write the downtime report (per ward: patients, alerts,
    /// medicines due; HTML and CSV) to this directory, outside the
    /// database, at start-up and every --downtime-every.
    #[arg(long, env = "WARDLINE_DOWNTIME_DIR", value_name = "DIR")]
    downtime_dir: Option<PathBuf>,
    /// How often the downtime report is written (15m, 1h, 90s).
    #[arg(long, env = "WARDLINE_DOWNTIME_EVERY", default_value = "15m", value_parser = downtime::parse_period)]
    downtime_every: std::time::Duration,
    /// Medicines due in this many hours are in the downtime report.
    #[arg(long, default_value_t = downtime::DEFAULT_HOURS, value_parser = clap::value_parser!(i64).range(1..=72))]
    downtime_hours: i64,
    /// Issue 21: group commit. `on`: concurrent writes (REST, bundles, HL7
    /// messages, workflows) share one durable commit, each answered only
    /// once the commit holding it is durable; `off`: one durable commit per
    /// transaction. (SQLite; PostgreSQL already shares WAL flushes between
    /// concurrent commits.)
    #[arg(long, env = "WARDLINE_GROUP_COMMIT", value_name = "on|off", default_value = "on", value_parser = wardline::parse_on_off, action = clap::ArgAction::Set)]
    group_commit: bool,
    /// Tests only: abort the process right after the durable COMMIT of the
    /// first group of at least N transactions, before any of them is
    /// answered (a crash between a batch's commit and its ACKs).
    #[arg(long, value_name = "N", hide = true)]
    test_crash_after_group_commit: Option<usize>,
}

#[derive(Args)]
struct ImportArgs {
    /// Files or directories (searched recursively) of .json, .ndjson and .gz
    /// files, in any order: a file that others refer to is loaded first, and
    /// what is refused is retried after the rest. Other files are skipped
    /// with a note. Running the same import again creates nothing new.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Where to write the reconciliation report (per resource type: read,
    /// created, updated, unchanged, rejected, and each rejection's file and
    /// line or Bundle entry); by default
    /// DATA_DIR/import-reports/import-<start time>.txt. The exit status is 1
    /// when anything was rejected.
    #[arg(long, value_name = "PATH")]
    report: Option<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("WARDLINE_LOG_FORMAT").is_ok_and(|v| v == "json");
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging();
    if let Err(e) = cli.hospital_numbers.configure() {
        eprintln!("error: {e:#}");
        return std::process::ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Serve(a) => serve(*a),
        Command::Import(a) => import::run(&a.paths, a.report.as_deref(), &a.store),
        Command::Export(a) => export::run(a),
        Command::Hl7(c) => hl7::run(c),
        Command::Audit(c) => audit::run(c),
        Command::Backup(a) => backup::backup(&a),
        Command::Restore(a) => backup::restore(&a),
        Command::WalArchive(a) => pgbackup::wal_archive(&a),
        Command::Generate(a) => generate::run(&a),
        Command::Key(c) => keys::run_key(c),
        Command::EncryptDb(a) => keys::encrypt_db(&a),
        Command::User(c) => user::run_user(c),
        Command::Token(a) => user::run_token(a),
        Command::Client(c) => user::run_client(c),
        Command::Results(c) => results::run(c),
        Command::Alerts(c) => alerts::run(c),
        Command::Formulary(c) => formulary::run(c),
        Command::Medicines(c) => medicines::run(c),
        Command::Transfers(c) => transfers::run(c),
        Command::Referrals(c) => referrals::run(c),
        Command::Tasks(c) => tasks::run(c),
        Command::Downtime(c) => downtime::run(c),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn serve(a: ServeArgs) -> Result<std::process::ExitCode> {
    let scheme = if a.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let base = a
        .base_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{}/fhir", a.listen));
    let base = base.trim_end_matches('/').to_owned();
    let origin = base.strip_suffix("/fhir").unwrap_or(&base).to_owned();
    let export_dir = a.store.data_dir.join("exports");
    let destinations = a.hl7.destinations()?;
    let clock = match &a.clock_offset_file {
        Some(f) => {
            tracing::warn!(file = %f.display(), "the clinical clock is moved by the offset in this file (demonstration and training)");
            wardline_core::clock::Clock::offset_file(f.clone())
        }
        None => wardline_core::clock::Clock::system(),
    };
    // issue 21: group commit
    wardline::set_group_commit(wardline_store::group_commit::GroupCommit {
        enabled: a.group_commit,
        crash_after_group_of: a.test_crash_after_group_commit,
        ..Default::default()
    });
    if a.test_crash_after_group_commit.is_some() {
        tracing::warn!(
            "--test-crash-after-group-commit: this server aborts after a group commit (tests only)"
        );
    }
    // issue 22: PostgreSQL backup, PITR and replica
    let (store, replica_stats) = match (&a.replica, &a.store.database) {
        (None, _) => (a.store.open()?, None),
        (Some(_), None) => anyhow::bail!(
            "--replica needs --database postgres://… (the primary the replica streams from)"
        ),
        (Some(replica), Some(primary)) => {
            if !replica.starts_with("postgres://") && !replica.starts_with("postgresql://") {
                anyhow::bail!("--replica must be a postgres:// URL, not '{replica}'");
            }
            let s = wardline_store_postgres::replica::ReplicatedStore::connect(primary, replica)
                .map_err(|e| anyhow::anyhow!("cannot connect to PostgreSQL: {e}"))?;
            let stats = s.stats();
            tracing::info!(
                "searches go to the read replica once it has replayed this server's writes"
            );
            (Arc::new(s) as Arc<dyn wardline_store::Store>, Some(stats))
        }
    };
    let service = Arc::new(
        a.hl7.service(wardline_workflow::with_operations(
            wardline_export::with_exports(
                a.store
                    .service_over(
                        store,
                        ServiceConfig {
                            base_url: base.clone(),
                            oauth: Some(wardline_core::OAuthUris {
                                authorize: format!("{origin}/auth/authorize"),
                                token: format!("{origin}/auth/token"),
                            }),
                            limits: a.limits.limits(),
                            ..ServiceConfig::default()
                        },
                    )?
                    .with_clock(clock.clone())
                    .with_trust_organization(a.trust.trust_organization.clone())
                    .with_read_only_if(a.read_only),
                export_dir.clone(),
            )
            .with_context(|| format!("cannot use the export directory {}", export_dir.display()))?,
        ))?,
    );
    if a.demo {
        load_demo(&service)?;
        load_demo_catalogue(&service)?;
        load_demo_regimens(&service)?;
        load_demo_formulary(&service)?;
        // issue 20: forms
        load_demo_forms(&service)?;
        // Issue 17, the MAR: after the demo formulary is loaded.
        demo_drugs::load(&service)?;
    }
    let directory = Arc::new(
        wardline_auth::directory::Directory::open(service.clone(), &a.trust.trust_organization)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .with_recent_encounter_days(a.recent_encounter_days)
            .with_clock(clock),
    );
    if a.demo {
        // issue 22: `wardline user code` works on a demo database only.
        user::mark_demo(&service)?;
        user::seed_demo_users(&directory)?;
        println!(
            "Demo users (password '{}'; `wardline user code NAME` prints the security code):",
            user::DEMO_PASSWORD
        );
        for u in user::DEMO_USERS {
            let position = directory
                .positions(u.name)
                .ok()
                .and_then(|p| p.into_iter().next())
                .map(|p| directory.position_label(&p))
                .unwrap_or_default();
            println!("  {:<14} {position}", u.name);
        }
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // issue 22: audit anchor
    let checkpoints = a.audit_anchor.checkpointer(&a.store)?;
    if let Some(cp) = &checkpoints {
        audit::check_head_at_start(&service, cp)?;
        jobs::spawn_audit_checkpoints(service.clone(), cp.clone(), a.audit_checkpoint_seconds);
    }
    if let Some(days) = a.audit_retention_days {
        jobs::spawn_audit_retention(service.clone(), days, checkpoints.clone());
    }
    if a.duplicate_scan_minutes > 0 {
        jobs::spawn_duplicate_scan(service.clone(), a.duplicate_scan_minutes);
    }
    jobs::spawn_result_escalation(service.clone(), a.critical_result_escalation_minutes);
    jobs::spawn_late_dose_escalation(service.clone(), a.time_critical_dose_minutes);
    // issue 20: alerts: Mental Health Act expiry reminders, every minute.
    jobs::spawn_mha_reminders(service.clone());
    jobs::spawn_transfers(
        service.clone(),
        a.delivery.transports()?,
        a.delivery.policy(),
    );
    // issue 22: downtime: other servers' commits reach the live pages
    // (PostgreSQL), and the downtime report is written on a schedule.
    if service
        .follow_other_servers()
        .map_err(|e| anyhow::anyhow!("cannot follow other servers' changes: {e}"))?
    {
        tracing::info!("live pages follow every server on this database");
    }
    if let Some(dir) = &a.downtime_dir {
        jobs::spawn_downtime_reports(
            service.clone(),
            dir.clone(),
            a.downtime_every,
            a.downtime_hours,
        );
    }
    // issue 20: tasks: escalations and overdue reminders every minute.
    jobs::spawn_tasks(service.clone(), a.delivery.transports()?.email);
    // issue 18: referrals
    if a.referral_job_seconds > 0 {
        jobs::spawn_referrals(
            service.clone(),
            a.referrals.transport()?,
            referrals::local(
                format!("{base}/$process-message"),
                &a.trust.trust_organization,
            ),
            a.referrals.policy(),
            a.referrals.chase_period(),
            a.referral_job_seconds,
        );
    }
    for d in destinations {
        tracing::info!(
            destination = d.name,
            address = d.address,
            "HL7 v2 outbound feed"
        );
        wardline_integration::Dispatcher::new(
            service.clone(),
            d,
            wardline_integration::DispatchConfig::default(),
            stop.clone(),
        )
        .with_mapping(a.hl7.mapping())
        .spawn();
    }
    let engine = Arc::new(wardline_integration::Engine::new(
        service.clone(),
        a.hl7.engine(),
    ));
    let at_shutdown = service.clone();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(a.listen)
            .await
            .with_context(|| format!("cannot listen on {}", a.listen))?;
        let addr = listener.local_addr()?;
        let tls = match (&a.tls_cert, &a.tls_key) {
            (Some(cert), Some(key)) => Some(
                wardline_http::tls_config(cert, key)
                    .await
                    .with_context(|| {
                        format!(
                            "cannot load the TLS certificate {} and key {}",
                            cert.display(),
                            key.display()
                        )
                    })?,
            ),
            _ => None,
        };
        tracing::info!(
            backend = service.backend(),
            "listening on {scheme}://{addr} (FHIR base {base})"
        );
        // What a newcomer needs next (the README shows these lines).
        let shown = a.base_url.as_deref().map_or_else(
            || format!("{scheme}://{addr}"),
            |b| b.trim_end_matches('/').trim_end_matches("/fhir").to_owned(),
        );
        println!("Wardline is running.");
        println!("  Workspace  {shown}/ui/");
        println!("  FHIR API   {shown}/fhir");
        println!("  Data       {}", a.store.location());
        if let Some(mllp) = a.mllp_listen {
            let l = tokio::net::TcpListener::bind(mllp)
                .await
                .with_context(|| format!("cannot listen for MLLP on {mllp}"))?;
            let mllp_addr = l.local_addr()?;
            tracing::info!("HL7 v2 MLLP listening on {mllp_addr}");
            println!("MLLP is listening on {mllp_addr}");
            tokio::spawn(wardline_integration::serve(l, engine, a.connections.mllp()));
        }
        let extra: wardline_http::ExtraMetrics = Arc::new(move || {
            let mut m = wardline_integration::metrics::METRICS.render();
            if let Some(r) = &replica_stats {
                m.push_str(&r.render());
            }
            // issue 21: group commit
            m.push_str(&wardline_store::group_commit::METRICS.render());
            m
        });
        let auth: Arc<dyn wardline_http::Authenticator> =
            Arc::new(wardline_http::BearerAuthenticator::new(directory.clone()));
        let app = wardline_http::app(
            service.clone(),
            auth,
            wardline_http::Options {
                extra: Some(extra),
                ui: Some(wardline_web::router(service.clone(), directory.clone())),
                directory: Some(directory),
                metrics_open: a.metrics_open,
                tls: tls.is_some(),
                ..wardline_http::Options::default()
            },
        );
        wardline_http::serve_app_with(listener, app, tls, a.connections.http(), shutdown_signal())
            .await?;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok::<_, anyhow::Error>(())
    })?;
    // issue 22: audit anchor: the head as the server leaves it.
    if let Some(cp) = &checkpoints {
        audit::checkpoint_head(&at_shutdown, cp)?;
    }
    Ok(std::process::ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

/// Loads the demo order catalogue (`wardline-demo`'s
/// `data/order-catalogue.json`) through the catalogue's import — checked
/// whole, then written in one audited transaction — unless the store already
/// has a catalogue (an administrator's changes are never overwritten).
fn load_demo_catalogue(service: &FhirService) -> Result<()> {
    use wardline_workflow::orders::catalogue;
    if !catalogue::load(service)?.orderables.is_empty() {
        return Ok(());
    }
    let report = catalogue::import(
        service,
        &wardline_core::Trusted::operator("demo-loader"),
        &wardline_demo::order_catalogue(),
    )
    .map_err(|e| anyhow::anyhow!("loading the demo order catalogue failed: {e}"))?;
    tracing::info!(
        resources = report.created.len(),
        "demo order catalogue loaded"
    );
    Ok(())
}

/// Loads the demo chemotherapy regimens (`wardline-demo`'s
/// `data/chemotherapy-regimens.json`, protocol `PlanDefinition`s) through
/// the regimens' import unless the store already has regimens (a trust's
/// own protocols are never overwritten).
fn load_demo_regimens(service: &FhirService) -> Result<()> {
    use wardline_workflow::medicines::chemo::regimen;
    if !regimen::load(service)
        .map_err(|e| anyhow::anyhow!("reading the chemotherapy regimens failed: {e}"))?
        .is_empty()
    {
        return Ok(());
    }
    let ids = regimen::import(
        service,
        &wardline_core::Trusted::operator("demo-loader"),
        &wardline_demo::chemotherapy_regimens(),
    )
    .map_err(|e| anyhow::anyhow!("loading the demo chemotherapy regimens failed: {e}"))?;
    tracing::info!(regimens = ids.len(), "demo chemotherapy regimens loaded");
    Ok(())
}

/// Loads the demo starter formulary (`wardline-demo`'s
/// `data/formulary.csv`) through the formulary's import, unless the store
/// already has a formulary (a pharmacist's imports are never overwritten).
fn load_demo_formulary(service: &FhirService) -> Result<()> {
    use wardline_workflow::medicines::formulary;
    if !formulary::load(service)?.entries.is_empty() {
        return Ok(());
    }
    let report = formulary::import(
        service,
        &wardline_core::Trusted::operator("demo-loader"),
        wardline_demo::FORMULARY,
        "formulary.csv",
    )
    .map_err(|e| anyhow::anyhow!("loading the demo formulary failed: {e}"))?;
    tracing::info!(medicines = report.added.len(), "demo formulary loaded");
    Ok(())
}

/// Loads the demo forms and KPIs (`wardline-demo`'s `data/forms.json`) as
/// one transaction Bundle through the core (the forms' write rules check
/// each), unless the demo falls risk form is there already.
fn load_demo_forms(service: &FhirService) -> Result<()> {
    use wardline_core::{FhirRequest, Method, RequestHeaders};
    if service
        .system_reader()
        .read("Questionnaire", "demo-falls-risk")?
        .is_some()
    {
        return Ok(());
    }
    let res = service.handle(
        FhirRequest {
            method: Method::Post,
            path: vec![],
            query: vec![],
            headers: RequestHeaders::default(),
            body: Some(wardline_demo::FORMS.as_bytes().to_vec()),
        },
        &wardline_core::Trusted::operator("demo-loader"),
    );
    if res.status >= 300 {
        anyhow::bail!("loading the demo forms failed: {:?}", res.body);
    }
    tracing::info!("demo forms and KPIs loaded");
    Ok(())
}

/// Loads the demo trust through the core (validated and indexed) if the store
/// has no Patient yet.
fn load_demo(service: &FhirService) -> Result<()> {
    use wardline_core::{FhirRequest, Method, RequestHeaders};
    if service
        .system_reader()
        .read("Organization", "trust")?
        .is_some()
    {
        tracing::info!("demo trust already loaded");
        return Ok(());
    }
    // Current admissions around today, so the bed board looks like this week.
    let today = wardline_fhir::datetime::format_instant(wardline_fhir::datetime::now_ms());
    let bundle = wardline_demo::generate_on(
        20_261_123,
        100,
        &today[..10],
        wardline_workflow::pmi::hospital_numbers(),
    );
    let resp = service.handle(
        FhirRequest {
            method: Method::Post,
            path: vec![],
            query: vec![],
            headers: RequestHeaders::default(),
            body: Some(serde_json::to_vec(&bundle)?),
        },
        &wardline_core::Trusted::operator("demo-loader"),
    );
    if resp.status != 200 {
        let why = match &resp.body {
            wardline_core::Body::Json(oo) => wardline::load::outcome_text(oo),
            other => format!("{other:?}"),
        };
        anyhow::bail!("loading the demo trust failed: {why}");
    }
    tracing::info!(
        resources = bundle["entry"].as_array().map_or(0, Vec::len),
        "demo trust loaded"
    );
    Ok(())
}
