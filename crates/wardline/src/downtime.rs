//! `wardline downtime …` and `serve --read-only / --downtime-dir` (issue 22:
//! business continuity).
//!
//! * `downtime on [--reason TEXT]` / `off` / `status`: the operator's switch
//!   (`wardline_core::downtime`), in the database, so every server on it
//!   turns read-only within a second; switching is audited.
//! * `downtime report --out DIR`: the downtime report now; `serve
//!   --downtime-dir DIR --downtime-every 15m` writes it at start-up and then
//!   on that period. Per ward, `WARD.html` (printable) and `WARD.csv`, and an
//!   `index.html`, each written to a temporary file, synced and renamed over
//!   the last, so a reader never sees half a report. Read as the system
//!   agent `downtime-report` (allowed, every read audited under that name).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use wardline_core::{Agent, AgentKind, FhirService, ServiceConfig, Trusted};
use wardline_workflow::downtime::WardReport;

#[derive(Subcommand)]
pub enum DowntimeCommand {
    /// Turn read-only downtime on for every server on this database: pages
    /// say so, every write (UI, FHIR REST, HL7 v2) is refused. Audited.
    On(OnArgs),
    /// Turn the operator's downtime off. Audited.
    Off(StoreOnly),
    /// Say whether downtime is on, since when and why.
    Status(StoreOnly),
    /// Write the downtime report (per ward: patients, alerts, medicines
    /// due) to a directory now, as `serve --downtime-dir` does on a
    /// schedule.
    Report(ReportArgs),
}

#[derive(Args)]
pub struct OnArgs {
    /// Why (shown in the audit trail), e.g. "planned upgrade".
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    store: wardline::StoreArgs,
}

#[derive(Args)]
pub struct StoreOnly {
    #[command(flatten)]
    store: wardline::StoreArgs,
}

#[derive(Args)]
pub struct ReportArgs {
    /// The directory to write to (outside the database; created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Medicines due in this many hours are listed.
    #[arg(long, default_value_t = DEFAULT_HOURS, value_parser = clap::value_parser!(i64).range(1..=72))]
    hours: i64,
    /// The time to report as at (RFC 3339); default: now on the clinical clock.
    #[arg(long, value_parser = parse_now)]
    now: Option<OffsetDateTime>,
    #[command(flatten)]
    store: wardline::StoreArgs,
}

/// Medicines due in the next this many hours, by default.
pub const DEFAULT_HOURS: i64 = 4;

fn parse_now(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("'{s}' is not an RFC 3339 date-time with an offset ({e})"))
}

/// `15m`, `1h`, `90s`, or plain seconds: the period of `--downtime-every`.
pub fn parse_period(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a period (e.g. 15m, 1h, 90s)"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("'{s}': the unit must be s, m or h (e.g. 15m)")),
    };
    if secs == 0 {
        return Err("the period must be more than 0".into());
    }
    Ok(Duration::from_secs(secs))
}

/// The system agent the report reads as.
pub fn report_access() -> Trusted {
    Trusted::new(Agent {
        kind: AgentKind::System,
        name: "downtime-report".into(),
        ..Agent::default()
    })
}

pub fn run(cmd: DowntimeCommand) -> Result<ExitCode> {
    match cmd {
        DowntimeCommand::On(a) => {
            let svc = a.store.existing_service(ServiceConfig::default())?;
            let d = svc
                .set_downtime(
                    &Trusted::operator("cli:downtime"),
                    true,
                    a.reason.as_deref(),
                )
                .map_err(wardline::load::fhir_err)?;
            if let Some(d) = d {
                println!(
                    "downtime on since {} (every server on this database is read-only within a second)",
                    svc.time_zone().local_minute(d.since_ms).unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DowntimeCommand::Off(a) => {
            let svc = a.store.existing_service(ServiceConfig::default())?;
            svc.set_downtime(&Trusted::operator("cli:downtime"), false, None)
                .map_err(wardline::load::fhir_err)?;
            println!("downtime off: writes are accepted again");
            Ok(ExitCode::SUCCESS)
        }
        DowntimeCommand::Status(a) => {
            let svc = a.store.existing_service(ServiceConfig::default())?;
            match svc.refresh_downtime().map_err(wardline::load::fhir_err)? {
                Some(d) => println!(
                    "downtime on since {}{}",
                    svc.time_zone().local_minute(d.since_ms).unwrap_or_default(),
                    d.reason.map(|r| format!(": {r}")).unwrap_or_default()
                ),
                None => println!("downtime off"),
            }
            Ok(ExitCode::SUCCESS)
        }
        DowntimeCommand::Report(a) => {
            let svc = a.store.existing_service(ServiceConfig::default())?;
            let now = a.now.unwrap_or_else(|| svc.now());
            let written = write_reports(&svc, &a.out, now, a.hours)?;
            for f in &written {
                println!("{}", f.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes every ward's report to `dir` as at `now` (the run-once entry
/// point of the schedule); returns the files written.
pub fn write_reports(
    svc: &FhirService,
    dir: &Path,
    now: OffsetDateTime,
    hours: i64,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the downtime directory {}", dir.display()))?;
    let reports = wardline_workflow::downtime::all_wards(svc, &report_access(), now, hours)
        .map_err(|e| anyhow::anyhow!("the downtime report could not be read: {e}"))?;
    let mut written = Vec::new();
    for r in &reports {
        let stem = file_stem(&r.ward_id);
        let html = dir.join(format!("{stem}.html"));
        write_atomic(
            &html,
            wardline_web::downtime_report::report_html(r).as_bytes(),
        )?;
        let csv = dir.join(format!("{stem}.csv"));
        write_atomic(&csv, report_csv(r).as_bytes())?;
        written.push(html);
        written.push(csv);
    }
    let index = dir.join("index.html");
    write_atomic(&index, index_html(&reports, now, svc).as_bytes())?;
    written.push(index);
    sync_dir(dir);
    Ok(written)
}

/// A ward id as a file name (ids are `[A-Za-z0-9-.]`; anything else is `_`).
fn file_stem(id: &str) -> String {
    let s: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("ward-{s}")
}

/// Temporary file beside the target, synced, renamed over it.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// One CSV field: quoted when needed; a leading `=`, `+`, `-` or `@` is
/// prefixed with `'` so a spreadsheet never runs it as a formula.
fn field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The ward's report as CSV: one row per patient, the generated-at time in
/// every row (a printout of any part of it carries it).
pub fn report_csv(r: &WardReport) -> String {
    let mut out = String::from(
        "generated_at,ward,bed,name,nhs_number,age,consultant,alerts,medicines_due\r\n",
    );
    let generated = format!("{} (local)", r.generated_local);
    for p in &r.patients {
        let due: Vec<String> = p
            .due
            .iter()
            .map(|d| {
                format!(
                    "{} {} {} ({}{})",
                    d.at_local,
                    d.medicine,
                    d.dose,
                    d.state,
                    if d.time_critical {
                        ", time-critical"
                    } else {
                        ""
                    }
                )
            })
            .collect();
        let row = [
            generated.clone(),
            r.ward.clone(),
            p.bed.clone(),
            p.name.clone(),
            p.nhs_number.clone().unwrap_or_default(),
            p.age.map(|a| a.to_string()).unwrap_or_default(),
            p.consultant.clone().unwrap_or_default(),
            p.alerts.join("; "),
            due.join("; "),
        ];
        let fields: Vec<String> = row.iter().map(|f| field(f)).collect();
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    if r.patients.is_empty() {
        out.push_str(&format!(
            "{},{},,,,,,,\r\n",
            field(&generated),
            field(&r.ward)
        ));
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn index_html(reports: &[WardReport], now: OffsetDateTime, svc: &FhirService) -> String {
    let ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or_default();
    let at = svc.time_zone().local_minute(ms).unwrap_or_default();
    let mut rows = String::new();
    for r in reports {
        let stem = file_stem(&r.ward_id);
        rows.push_str(&format!(
            "<li><a href=\"{stem}.html\">{}, {}</a> ({} patients) · <a href=\"{stem}.csv\">CSV</a></li>\n",
            esc(&r.ward),
            esc(&r.site),
            r.patients.len()
        ));
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en-GB\"><head><meta charset=\"utf-8\"><title>Downtime reports — generated {at}</title>\
         <style>body{{font-family:Arial,sans-serif;color:#212b32;margin:16px}}.wl-generated{{background:#fff9c4;border-left:8px solid #ffeb3b;padding:8px 16px;font-weight:600}}</style></head>\
         <body><h1>Downtime reports</h1><p class=\"wl-generated\">Generated {at} (local time). Anything recorded after this time is not shown.</p><ul>\n{rows}</ul></body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_read_as_an_operator_writes_them() {
        assert_eq!(parse_period("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_period("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_period("90"), Ok(Duration::from_secs(90)));
        assert!(parse_period("0m").is_err());
        assert!(parse_period("5d").is_err());
        assert!(parse_period("m").is_err());
    }

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(field("SMITH, John"), "\"SMITH, John\"");
        assert_eq!(field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(field("say \"x\""), "\"say \"\"x\"\"\"");
        assert_eq!(field("plain"), "plain");
    }
}
