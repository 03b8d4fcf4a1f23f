//! `wardline transfers …` and `serve`'s delivery settings: documents to GP
//! practices over MESH and email, and the 24-hour discharge summary
//! standard (`wardline_workflow::transfers`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use wardline_core::{ServiceConfig, Trusted};
use wardline_workflow::transfers::email::{Mailer, SmtpConfig, SmtpSecurity};
use wardline_workflow::transfers::mesh::{MeshClient, MeshConfig};
use wardline_workflow::transfers::send::{Policy, Transports};

/// How delivery to GP practices is configured (`serve` and `wardline
/// transfers send` take the same flags). A route not configured here fails
/// at once and the practice's next route is tried.
#[derive(Args, Clone)]
pub struct DeliveryArgs {
    /// The MESH API base URL (e.g. https://msg.intspineservices.nhs.uk).
    /// Unset: no MESH.
    #[arg(long, env = "WARDLINE_MESH_URL")]
    mesh_url: Option<String>,
    /// The trust's MESH mailbox id.
    #[arg(long, env = "WARDLINE_MESH_MAILBOX", requires = "mesh_url")]
    mesh_mailbox: Option<String>,
    /// The MESH mailbox password.
    #[arg(long, env = "WARDLINE_MESH_PASSWORD", hide_env_values = true)]
    mesh_password: Option<String>,
    /// The MESH environment's shared key (for the authorisation HMAC).
    #[arg(long, env = "WARDLINE_MESH_SHARED_KEY", hide_env_values = true)]
    mesh_shared_key: Option<String>,
    /// The MESH client certificate and its key, PEM in one file (the real
    /// MESH requires it; a sandbox does not).
    #[arg(long, env = "WARDLINE_MESH_CLIENT_CERT")]
    mesh_client_cert: Option<PathBuf>,
    /// The SMTP server for email to practices (the fallback route). Unset: no email.
    #[arg(long, env = "WARDLINE_SMTP_HOST")]
    smtp_host: Option<String>,
    /// The SMTP server's port.
    #[arg(long, env = "WARDLINE_SMTP_PORT", default_value_t = 587)]
    smtp_port: u16,
    /// How the SMTP connection is secured.
    #[arg(long, env = "WARDLINE_SMTP_SECURITY", value_enum, default_value_t = Security::Starttls)]
    smtp_security: Security,
    /// The sender address of email to practices.
    #[arg(long, env = "WARDLINE_SMTP_FROM", requires = "smtp_host")]
    smtp_from: Option<String>,
    /// SMTP user name (with --smtp-password).
    #[arg(long, env = "WARDLINE_SMTP_USERNAME", requires = "smtp_password")]
    smtp_username: Option<String>,
    /// SMTP password.
    #[arg(long, env = "WARDLINE_SMTP_PASSWORD", hide_env_values = true)]
    smtp_password: Option<String>,
    /// Attempts on one route before the practice's next route is tried.
    #[arg(long, env = "WARDLINE_TRANSFER_ATTEMPTS", default_value_t = 3,
        value_parser = clap::value_parser!(u32).range(1..))]
    transfer_attempts: u32,
    /// Minutes to wait after a failed attempt (doubling after each further one).
    #[arg(long, env = "WARDLINE_TRANSFER_BACKOFF_MINUTES", default_value_t = 5,
        value_parser = clap::value_parser!(u32).range(1..))]
    transfer_backoff_minutes: u32,
}

#[derive(Clone, Copy, ValueEnum)]
enum Security {
    None,
    Starttls,
    Tls,
}

impl DeliveryArgs {
    /// The connections configured (MESH, SMTP).
    pub fn transports(&self) -> Result<Transports> {
        let mesh = match &self.mesh_url {
            Some(url) => {
                let mailbox = self
                    .mesh_mailbox
                    .clone()
                    .context("--mesh-mailbox is required with --mesh-url")?;
                let identity_pem = match &self.mesh_client_cert {
                    Some(p) => Some(
                        std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?,
                    ),
                    None => None,
                };
                Some(
                    MeshClient::new(MeshConfig {
                        url: url.clone(),
                        mailbox,
                        password: self
                            .mesh_password
                            .clone()
                            .context("--mesh-password is required with --mesh-url")?,
                        shared_key: self
                            .mesh_shared_key
                            .clone()
                            .context("--mesh-shared-key is required with --mesh-url")?,
                        identity_pem,
                    })
                    .map_err(|e| anyhow::anyhow!("--mesh-*: {e}"))?,
                )
            }
            None => None,
        };
        let email = match &self.smtp_host {
            Some(host) => Some(
                Mailer::new(&SmtpConfig {
                    host: host.clone(),
                    port: self.smtp_port,
                    from: self
                        .smtp_from
                        .clone()
                        .context("--smtp-from is required with --smtp-host")?,
                    security: match self.smtp_security {
                        Security::None => SmtpSecurity::None,
                        Security::Starttls => SmtpSecurity::StartTls,
                        Security::Tls => SmtpSecurity::Tls,
                    },
                    credentials: self.smtp_username.clone().zip(self.smtp_password.clone()),
                })
                .map_err(|e| anyhow::anyhow!("--smtp-*: {e}"))?,
            ),
            None => None,
        };
        Ok(Transports { mesh, email })
    }

    pub fn policy(&self) -> Policy {
        Policy {
            attempts_per_route: self.transfer_attempts,
            backoff: time::Duration::minutes(i64::from(self.transfer_backoff_minutes)),
        }
    }
}

#[derive(Subcommand)]
pub enum TransfersCommand {
    /// Deliver the queued documents that are due and follow up those waiting
    /// for acknowledgement (what `serve` does every minute), as at `--now`.
    /// Prints one line per delivery that moved.
    Send(SendArgs),
    /// Queue a signed document for delivery to the patient's GP practice
    /// (what signing a discharge summary does); prints the delivery.
    Queue(QueueArgs),
    /// Raise an overdue-summary Task for each discharge past 24 hours
    /// without a sent summary, and the Care Act notices' Tasks (not
    /// acknowledged, discharge notice due), as `serve` does every minute, as at `--now`.
    Overdue(OverdueArgs),
}

#[derive(Args)]
pub struct SendArgs {
    /// The time to act as at (RFC 3339); default: now. A later time is how a
    /// test moves the clock.
    #[arg(long, value_parser = parse_now)]
    now: Option<OffsetDateTime>,
    #[command(flatten)]
    delivery: DeliveryArgs,
    #[command(flatten)]
    store: crate::StoreArgs,
}

#[derive(Args)]
pub struct QueueArgs {
    /// The document: DocumentReference/{id} (its subject and
    /// context.encounter say the patient and the encounter).
    #[arg(long)]
    document: String,
    /// The practice: Organization/{id}; default: the patient's registered
    /// GP practice (Patient.generalPractitioner).
    #[arg(long)]
    recipient: Option<String>,
    /// The time to queue at (RFC 3339); default: now.
    #[arg(long, value_parser = parse_now)]
    now: Option<OffsetDateTime>,
    #[command(flatten)]
    store: crate::StoreArgs,
}

#[derive(Args)]
pub struct OverdueArgs {
    /// The time to act as at (RFC 3339); default: now.
    #[arg(long, value_parser = parse_now)]
    now: Option<OffsetDateTime>,
    #[command(flatten)]
    store: crate::StoreArgs,
}

fn parse_now(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("'{s}' is not an RFC 3339 date-time with an offset ({e})"))
}

pub fn run(cmd: TransfersCommand) -> Result<ExitCode> {
    match cmd {
        TransfersCommand::Send(a) => {
            let svc = a.store.existing_service(ServiceConfig::default())?;
            let now = a.now.unwrap_or_else(OffsetDateTime::now_utc);
            let r = wardline_workflow::transfers::send::run(
                &svc,
                &Trusted::operator("transfers"),
                &a.delivery.transports()?,
                a.delivery.policy(),
                now,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            for (what, ids) in [
                ("sent", &r.sent),
                ("acknowledged", &r.acknowledged),
                ("retrying", &r.retrying),
                ("failed", &r.failed),
                ("withheld (patient dissented from sharing)", &r.withheld),
            ] {
                for id in ids {
                    println!("{what}: Communication/{id}");
                }
            }
            if r == Default::default() {
                println!("nothing to send");
            }
            Ok(ExitCode::SUCCESS)
        }
        TransfersCommand::Queue(a) => {
            let svc = a.store.existing_service(ServiceConfig::default())?;
            let now = a.now.unwrap_or_else(OffsetDateTime::now_utc);
            let access = Trusted::operator("transfers");
            let id = a
                .document
                .strip_prefix("DocumentReference/")
                .context("--document must be DocumentReference/{id}")?;
            let doc = svc
                .read_as(&access, "DocumentReference", id)
                .map_err(wardline::load::fhir_err)?
                .with_context(|| format!("there is no {}", a.document))?;
            let patient = doc["subject"]["reference"]
                .as_str()
                .context("the document has no subject")?
                .to_owned();
            let encounter = doc["context"]["encounter"][0]["reference"]
                .as_str()
                .context("the document has no context.encounter")?
                .to_owned();
            let recipient = match a.recipient {
                Some(r) => r,
                None => {
                    let pid = patient.trim_start_matches("Patient/");
                    let p = svc
                        .read_as(&access, "Patient", pid)
                        .map_err(wardline::load::fhir_err)?
                        .with_context(|| format!("there is no {patient}"))?;
                    p["generalPractitioner"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|g| g["reference"].as_str())
                        .find(|r| r.starts_with("Organization/"))
                        .context("the patient has no registered GP practice: give --recipient")?
                        .to_owned()
                }
            };
            let id = wardline_workflow::transfers::queue(
                &svc,
                &access,
                &wardline_workflow::transfers::Outgoing {
                    kind: wardline_workflow::transfers::Kind::DischargeSummary,
                    patient,
                    encounter,
                    document: a.document.clone(),
                    recipient,
                },
                now,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("queued: Communication/{id}");
            Ok(ExitCode::SUCCESS)
        }
        TransfersCommand::Overdue(a) => {
            let svc = a.store.existing_service(ServiceConfig::default())?;
            let now = a.now.unwrap_or_else(OffsetDateTime::now_utc);
            let created = wardline_workflow::transfers::standard::raise_overdue(
                &svc,
                &Trusted::operator("transfers"),
                now,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            for t in &created {
                println!("overdue: Task/{t}");
            }
            let care_act = wardline_workflow::transfers::care_act::raise_overdue(
                &svc,
                &Trusted::operator("transfers"),
                &wardline_workflow::transfers::care_act::timescales::Timescales::default(),
                now,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            for t in &care_act {
                println!("care act notice: Task/{t}");
            }
            if created.is_empty() && care_act.is_empty() {
                println!("nothing overdue");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
