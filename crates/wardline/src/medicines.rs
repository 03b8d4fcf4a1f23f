//! `wardline medicines …`: operator commands of the drug round.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use wardline_core::{ServiceConfig, Trusted};

#[derive(Subcommand)]
pub enum MedicinesCommand {
    /// Escalate every late dose of a time-critical medicine to its ward's
    /// nurse in charge (what `serve` does every minute), as at `--now`.
    /// Prints one line per Task created.
    Escalate(EscalateArgs),
}

#[derive(Args)]
pub struct EscalateArgs {
    /// The time to escalate as at (RFC 3339, e.g. 2026-03-02T08:31:00Z);
    /// default: now. A later time is how a test moves the clock.
    #[arg(long, value_parser = parse_now)]
    now: Option<OffsetDateTime>,
    /// Minutes after its time that a time-critical dose with nothing
    /// recorded is late (as `serve --time-critical-dose-minutes`).
    #[arg(
        long,
        env = "WARDLINE_TIME_CRITICAL_DOSE_MINUTES",
        value_name = "MINUTES",
        default_value_t = 30,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    time_critical_dose_minutes: u32,
    #[command(flatten)]
    store: crate::StoreArgs,
}

fn parse_now(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("'{s}' is not an RFC 3339 date-time with an offset ({e})"))
}

pub fn run(cmd: MedicinesCommand) -> Result<ExitCode> {
    match cmd {
        MedicinesCommand::Escalate(a) => {
            let svc = a.store.existing_service(ServiceConfig::default())?;
            let now = a.now.unwrap_or_else(OffsetDateTime::now_utc);
            let created = wardline_workflow::medicines::mar::escalate_late(
                &svc,
                &Trusted::operator("late-dose-escalation"),
                now,
                time::Duration::minutes(i64::from(a.time_critical_dose_minutes)),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            for t in &created {
                println!("escalated: Task/{t}");
            }
            if created.is_empty() {
                println!("nothing to escalate");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
