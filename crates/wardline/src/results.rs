//! `wardline results …`: operator commands of the results inbox.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use wardline_core::{ServiceConfig, Trusted};

#[derive(Subcommand)]
pub enum ResultsCommand {
    /// Escalate every critical result not acknowledged within the limit to
    /// the responsible consultant (what `serve` does every minute), as at
    /// `--now`. Prints one line per escalation Task created.
    Escalate(EscalateArgs),
}

#[derive(Args)]
pub struct EscalateArgs {
    /// The time to escalate as at (RFC 3339, e.g. 2026-03-02T11:00:00Z);
    /// default: now. A later time is how a test moves the clock.
    #[arg(long, value_parser = parse_now)]
    now: Option<OffsetDateTime>,
    /// Minutes after notification that an unacknowledged critical result
    /// is escalated (as `serve --critical-result-escalation-minutes`).
    #[arg(
        long,
        env = "WARDLINE_CRITICAL_RESULT_ESCALATION_MINUTES",
        value_name = "MINUTES",
        default_value_t = 60,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    critical_result_escalation_minutes: u32,
    #[command(flatten)]
    store: crate::StoreArgs,
}

pub(crate) fn parse_now(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("'{s}' is not an RFC 3339 date-time with an offset ({e})"))
}

pub fn run(cmd: ResultsCommand) -> Result<ExitCode> {
    match cmd {
        ResultsCommand::Escalate(a) => {
            let svc = a.store.existing_service(ServiceConfig::default())?;
            let now = a.now.unwrap_or_else(OffsetDateTime::now_utc);
            let created = wardline_workflow::results::escalate_due(
                &svc,
                &Trusted::operator("result-escalation"),
                now,
                time::Duration::minutes(i64::from(a.critical_result_escalation_minutes)),
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
