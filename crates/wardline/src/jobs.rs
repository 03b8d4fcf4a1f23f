//! `wardline serve`'s periodic background jobs, each on a thread of its own:
//! audit retention (`--audit-retention-days`), the duplicate-patient scan
//! (`--duplicate-scan-minutes`) and the escalation of unacknowledged
//! critical results (`--critical-result-escalation-minutes`) and of late
//! time-critical doses (`--time-critical-dose-minutes`). A job runs once at start-up, then once per
//! period; a failed run is logged and the next one goes ahead.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wardline_core::{FhirService, Trusted};

/// Runs `run` now and then every `period`, on a thread named `name`.
fn every(name: &'static str, period: Duration, mut run: impl FnMut() + Send + 'static) {
    let spawned = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            loop {
                run();
                std::thread::sleep(period);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(job = name, error = %e, "cannot start a background job");
    }
}

/// `serve --audit-retention-days`: purge at start-up and then once a day
/// (a purge deletes in one transaction per call).
/// With the keyed anchor (`--audit-key`), each purge's new anchor is
/// checkpointed (issue 22: audit anchor).
pub fn spawn_audit_retention(
    service: Arc<FhirService>,
    days: u32,
    checkpoints: Option<Arc<wardline::anchor::Checkpointer>>,
) {
    every("audit-retention", Duration::from_secs(86_400), move || {
        match crate::audit::purge_older_than(&service, days) {
            Ok((n, before)) => {
                tracing::info!(
                    purged = n,
                    before = %wardline_fhir::datetime::format_instant(before),
                    "audit retention"
                );
                if let Some(cp) = &checkpoints
                    && n > 0
                    && let Err(e) = crate::audit::checkpoint_purge(&service, cp)
                {
                    tracing::error!(error = %format!("{e:#}"), "the purge anchor could not be checkpointed");
                }
            }
            Err(e) => tracing::error!(error = %format!("{e:#}"), "audit retention failed"),
        }
    });
}

/// `serve --audit-key --audit-checkpoints`: checkpoints the audit chain's
/// head at start-up and then every `seconds` (issue 22: audit anchor).
pub fn spawn_audit_checkpoints(
    service: Arc<FhirService>,
    checkpoints: Arc<wardline::anchor::Checkpointer>,
    seconds: u64,
) {
    every(
        "audit-checkpoint",
        Duration::from_secs(seconds.max(1)),
        move || {
            if let Err(e) = crate::audit::checkpoint_head(&service, &checkpoints) {
                tracing::error!(error = %format!("{e:#}"), "the audit chain head could not be checkpointed");
            }
        },
    );
}

/// `serve --duplicate-scan-minutes`: scores every active patient against
/// its look-alikes and queues a review `Task` for each new likely pair
/// (`wardline_workflow::pmi::scan_duplicates`), audited as the operator
/// `duplicate-scan`.
pub fn spawn_duplicate_scan(service: Arc<FhirService>, minutes: u64) {
    let access = Trusted::operator("duplicate-scan");
    every(
        "duplicate-scan",
        Duration::from_secs(minutes.max(1).saturating_mul(60)),
        move || {
            let t = Instant::now();
            match wardline_workflow::pmi::scan_duplicates_by(
                &service,
                &access,
                wardline_workflow::pmi::SCAN_BATCH,
            ) {
                Ok(r) => tracing::info!(
                    examined = r.examined,
                    opened = r.opened,
                    ms = t.elapsed().as_millis() as u64,
                    "duplicate scan"
                ),
                Err(e) => tracing::error!(error = %e, "duplicate scan failed"),
            }
        },
    );
}

/// `serve --critical-result-escalation-minutes`: every minute, escalates
/// each critical result not acknowledged within `minutes` of its
/// notification to the responsible consultant
/// (`wardline_workflow::results::escalate_due`, once per result), audited
/// as the operator `result-escalation`. The clock is the job's `now`
/// (`wardline results escalate --now …` runs the same step at a chosen
/// time).
pub fn spawn_result_escalation(service: Arc<FhirService>, minutes: u32) {
    let access = Trusted::operator("result-escalation");
    let limit = time::Duration::minutes(i64::from(minutes.max(1)));
    every("result-escalation", Duration::from_secs(60), move || {
        match wardline_workflow::results::escalate_due(&service, &access, service.now(), limit) {
            Ok(created) if created.is_empty() => {}
            Ok(created) => tracing::warn!(
                escalated = created.len(),
                "critical results not acknowledged in time were escalated"
            ),
            Err(e) => tracing::error!(error = %e, "result escalation failed"),
        }
    });
}

/// `serve --time-critical-dose-minutes`: every minute, escalates each dose
/// of a time-critical medicine with nothing recorded `minutes` after its
/// time (or not given for want of the medicine) to its ward's nurse in
/// charge (`wardline_workflow::medicines::mar::escalate_late`, once per
/// dose), audited as the operator `late-dose-escalation`. The clock is the
/// job's `now` (`wardline medicines escalate --now …` runs the same step
/// at a chosen time).
pub fn spawn_late_dose_escalation(service: Arc<FhirService>, minutes: u32) {
    let access = Trusted::operator("late-dose-escalation");
    let grace = time::Duration::minutes(i64::from(minutes.max(1)));
    every("late-dose-escalation", Duration::from_secs(60), move || {
        match wardline_workflow::medicines::mar::escalate_late(
            &service,
            &access,
            service.now(),
            grace,
        ) {
            Ok(created) if created.is_empty() => {}
            Ok(created) => tracing::warn!(
                escalated = created.len(),
                "late time-critical doses were escalated to their wards"
            ),
            Err(e) => tracing::error!(error = %e, "late dose escalation failed"),
        }
    });
}

/// Clinical alerts (issue 20): every minute, raises the reminder Task for
/// each Mental Health Act detention within its lead time of expiry
/// (`wardline_workflow::alerts::mha::raise_reminders`, once per detention
/// and expiry), audited as the operator `mha-reminders`. The clock is the
/// job's `now` (`wardline alerts remind --now …` runs the same step at a
/// chosen time).
pub fn spawn_mha_reminders(service: Arc<FhirService>) {
    let access = Trusted::operator("mha-reminders");
    every("mha-reminders", Duration::from_secs(60), move || {
        match wardline_workflow::alerts::mha::raise_reminders(&service, &access, service.now()) {
            Ok(created) if created.is_empty() => {}
            Ok(created) => tracing::warn!(
                reminders = created.len(),
                "Mental Health Act detentions nearing expiry"
            ),
            Err(e) => tracing::error!(error = %e, "Mental Health Act reminders failed"),
        }
    });
}

/// Transfers of care (issue 18): every minute, delivers the documents due
/// to GP practices and follows up those waiting for acknowledgement
/// (`wardline_workflow::transfers::send::run`, MESH and SMTP as `serve
/// --mesh-*`/`--smtp-*` configure), then raises overdue discharge summary
/// Tasks (`transfers::standard::raise_overdue`) and the Care Act notices'
/// Tasks (`transfers::care_act::raise_overdue`), audited as the operator
/// `transfers`. The clock is the job's `now` (`wardline transfers send` and
/// `wardline transfers overdue --now …` run the same steps at a chosen time).
pub fn spawn_transfers(
    service: Arc<FhirService>,
    transports: wardline_workflow::transfers::send::Transports,
    policy: wardline_workflow::transfers::send::Policy,
) {
    let access = Trusted::operator("transfers");
    every("transfers", Duration::from_secs(60), move || {
        let now = service.now();
        match wardline_workflow::transfers::send::run(&service, &access, &transports, policy, now) {
            Ok(r) => {
                if !r.sent.is_empty() || !r.acknowledged.is_empty() {
                    tracing::info!(
                        sent = r.sent.len(),
                        acknowledged = r.acknowledged.len(),
                        "documents delivered to GP practices"
                    );
                }
                if !r.withheld.is_empty() {
                    tracing::warn!(
                        withheld = r.withheld.len(),
                        "deliveries withheld: the patient dissented from sharing with the recipient"
                    );
                }
                if !r.retrying.is_empty() || !r.failed.is_empty() {
                    tracing::warn!(
                        retrying = r.retrying.len(),
                        failed = r.failed.len(),
                        "deliveries to GP practices failed"
                    );
                }
            }
            Err(e) => tracing::error!(error = %e, "delivery to GP practices failed"),
        }
        match wardline_workflow::transfers::standard::raise_overdue(&service, &access, now) {
            Ok(created) if created.is_empty() => {}
            Ok(created) => tracing::warn!(
                overdue = created.len(),
                "discharge summaries not sent within 24 hours"
            ),
            Err(e) => tracing::error!(error = %e, "overdue discharge summary check failed"),
        }
        // Issue 18, social care: Care Act notices not acknowledged in time,
        // discharge notices due and not given (Tasks on the ward's worklist).
        let timescales = wardline_workflow::transfers::care_act::timescales::Timescales::default();
        match wardline_workflow::transfers::care_act::raise_overdue(
            &service,
            &access,
            &timescales,
            now,
        ) {
            Ok(created) if created.is_empty() => {}
            Ok(created) => {
                tracing::warn!(overdue = created.len(), "Care Act notices overdue or due")
            }
            Err(e) => tracing::error!(error = %e, "Care Act notice check failed"),
        }
    });
}

/// e-Referrals (issue 18): every `seconds`, delivers the BaRS messages due
/// (`wardline_workflow::referrals::send::run`) and raises chase Tasks for
/// referrals not accepted within `chase` (`send::chase`), audited as the
/// operator `referrals`. The clock is the job's `now` (`wardline referrals
/// send|chase --now …` run the same steps at a chosen time).
pub fn spawn_referrals(
    service: Arc<FhirService>,
    transport: wardline_workflow::referrals::send::HttpTransport,
    local: wardline_workflow::referrals::message::Local,
    policy: wardline_workflow::referrals::send::Policy,
    chase: time::Duration,
    seconds: u64,
) {
    let access = Trusted::operator("referrals");
    every(
        "referrals",
        Duration::from_secs(seconds.max(1)),
        move || {
            let now = service.now();
            use wardline_workflow::referrals::send;
            match send::run(&service, &access, &transport, &local, policy, now) {
                Ok(r) => {
                    if !r.retrying.is_empty() || !r.failed.is_empty() {
                        tracing::warn!(
                            retrying = r.retrying.len(),
                            failed = r.failed.len(),
                            "referral messages not delivered"
                        );
                    }
                }
                Err(e) => tracing::error!(error = %e, "referral delivery failed"),
            }
            if let Err(e) = send::chase(&service, &access, chase, now) {
                tracing::error!(error = %e, "referral chase failed");
            }
        },
    );
}

/// Tasks (issue 20): every minute, fires the escalation rules that are due
/// and reminds the owners of newly overdue tasks by email
/// (`wardline_workflow::tasks::job::run`, SMTP as `serve --smtp-*`
/// configures), audited as the operator `tasks`. The clock is the job's
/// `now` (`wardline tasks run --now …` runs the same step at a chosen time).
pub fn spawn_tasks(
    service: Arc<FhirService>,
    mailer: Option<wardline_workflow::transfers::email::Mailer>,
) {
    use wardline_workflow::tasks::job::{Outbox, run};
    let access = Trusted::operator("tasks");
    every("tasks", Duration::from_secs(60), move || {
        let outbox = mailer.as_ref().map(|m| m as &dyn Outbox);
        match run(&service, &access, outbox, service.now()) {
            Ok(r) => {
                if !r.escalated.is_empty() || !r.reminded.is_empty() {
                    tracing::info!(
                        escalated = r.escalated.len(),
                        reminded = r.reminded.len(),
                        "tasks escalated and overdue owners reminded"
                    );
                }
                if !r.failed.is_empty() {
                    tracing::warn!(
                        failed = r.failed.len(),
                        "task reminders not accepted by the mail server"
                    );
                }
            }
            Err(e) => tracing::error!(error = %e, "the tasks job failed"),
        }
    });
}

/// `serve --downtime-dir DIR --downtime-every 15m` (issue 22): the downtime
/// report, written at start-up and then every period, as at the clinical
/// clock's now (`crate::downtime::write_reports` is the run-once entry
/// point the command and the tests use).
pub fn spawn_downtime_reports(
    service: Arc<FhirService>,
    dir: std::path::PathBuf,
    period: Duration,
    hours: i64,
) {
    every(
        "downtime-report",
        period,
        move || match crate::downtime::write_reports(&service, &dir, service.now(), hours) {
            Ok(files) => {
                tracing::info!(files = files.len(), dir = %dir.display(), "downtime report written")
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "the downtime report could not be written")
            }
        },
    );
}
