//! `wardline alerts …`: operator commands of the clinical alerts (issue 20).

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use time::OffsetDateTime;
use wardline_core::{ServiceConfig, Trusted};

#[derive(Subcommand)]
pub enum AlertsCommand {
    /// Raise the reminder Task for each Mental Health Act detention within
    /// its lead time of expiry (what `serve` does every minute), as at
    /// `--now`. Prints one line per reminder Task created.
    Remind(RemindArgs),
}

#[derive(Args)]
pub struct RemindArgs {
    /// The time to check as at (RFC 3339, e.g. 2026-03-02T11:00:00Z);
    /// default: now. A later time is how a test moves the clock.
    #[arg(long, value_parser = crate::results::parse_now)]
    now: Option<OffsetDateTime>,
    #[command(flatten)]
    store: crate::StoreArgs,
}

pub fn run(cmd: AlertsCommand) -> Result<ExitCode> {
    match cmd {
        AlertsCommand::Remind(a) => {
            let svc = a.store.existing_service(ServiceConfig::default())?;
            let now = a.now.unwrap_or_else(OffsetDateTime::now_utc);
            let created = wardline_workflow::alerts::mha::raise_reminders(
                &svc,
                &Trusted::operator("mha-reminders"),
                now,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            for t in &created {
                println!("reminder: Task/{t}");
            }
            if created.is_empty() {
                println!("no reminders due");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
