//! `wardline tasks run` (issue 20: tasks): one run of the tasks job —
//! escalation rules and overdue reminders (`wardline_workflow::tasks::job`)
//! — as `serve` does every minute, as at `--now`, emailing through the
//! SMTP server the `--smtp-*` flags name (the transfers' settings).

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use time::OffsetDateTime;
use wardline_core::{ServiceConfig, Trusted};
use wardline_workflow::tasks::job::Outbox;

#[derive(Subcommand)]
pub enum TasksCommand {
    /// Escalate and remind, as `serve` does every minute, as at `--now`.
    Run(RunArgs),
}

#[derive(Args)]
pub struct RunArgs {
    /// The time to act as at (RFC 3339); default: now. A later time is how a
    /// test moves the clock.
    #[arg(long, value_parser = crate::transfers::parse_now)]
    now: Option<OffsetDateTime>,
    #[command(flatten)]
    delivery: crate::transfers::DeliveryArgs,
    #[command(flatten)]
    store: crate::StoreArgs,
}

pub fn run(cmd: TasksCommand) -> Result<ExitCode> {
    match cmd {
        TasksCommand::Run(a) => {
            let svc = a.store.existing_service(ServiceConfig::default())?;
            let now = a.now.unwrap_or_else(OffsetDateTime::now_utc);
            let mailer = a.delivery.transports()?.email;
            let r = wardline_workflow::tasks::job::run(
                &svc,
                &Trusted::operator("tasks"),
                mailer.as_ref().map(|m| m as &dyn Outbox),
                now,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            for (task, rule) in &r.escalated {
                println!("escalated: Task/{task} ({rule})");
            }
            for (what, ids) in [
                ("reminded", &r.reminded),
                ("overdue, nobody to email", &r.unreachable),
                ("reminder failed", &r.failed),
            ] {
                for id in ids {
                    println!("{what}: Task/{id}");
                }
            }
            if r == Default::default() {
                println!("nothing due");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
