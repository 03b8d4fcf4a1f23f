//! Issue 22: the downtime report as a printable page — one self-contained
//! HTML file per ward (its styles inline: it is opened from a disk when
//! Wardline itself may be down), in the NHS design system's type and
//! colours, with its generated-at time in the heading and in a running
//! footer on every printed page, so a stale report is never taken for a
//! current one.

use maud::{DOCTYPE, PreEscaped, html};
use wardline_workflow::downtime::WardReport;

const STYLE: &str = r#"
body { font-family: "Frutiger W01", Arial, sans-serif; color: #212b32; margin: 16px; font-size: 16px; }
h1 { font-size: 28px; margin: 0 0 8px; }
.wl-generated { background: #fff9c4; border-left: 8px solid #ffeb3b; padding: 8px 16px; font-weight: 600; }
table { border-collapse: collapse; width: 100%; margin-top: 16px; }
th, td { border-bottom: 1px solid #d8dde0; padding: 6px 8px; text-align: left; vertical-align: top; }
th { border-bottom: 2px solid #212b32; }
.wl-alert { color: #d5281b; font-weight: 600; display: block; }
.wl-critical { font-weight: 600; }
ul { margin: 0; padding-left: 18px; }
.wl-footer { display: none; }
@media print {
  @page { size: A4 landscape; margin: 12mm 10mm 16mm; }
  body { margin: 0; font-size: 11pt; }
  tr { break-inside: avoid; }
  thead { display: table-header-group; }
  .wl-footer { display: block; position: fixed; bottom: 0; left: 0; right: 0; font-size: 9pt; border-top: 1px solid #212b32; }
}
"#;

/// The printable HTML of one ward's report.
pub fn report_html(r: &WardReport) -> String {
    let generated = format!("Generated {} (local time)", r.generated_local);
    html! {
        (DOCTYPE)
        html lang="en-GB" {
            head {
                meta charset="utf-8";
                title { "Downtime report: " (r.ward) " — " (generated) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "Downtime report: " (r.ward) ", " (r.site) }
                p class="wl-generated" data-testid="generated-at" {
                    (generated) ". Anything recorded after this time is not shown: check the paper record."
                }
                p { "Medicines due up to " (r.due_until_local) ", and doses still outstanding." }
                @if r.withheld > 0 {
                    p { (r.withheld) " occupied bed(s) not shown: their patients are not visible to this report." }
                }
                table {
                    thead {
                        tr {
                            th { "Bed" } th { "Patient" } th { "NHS number" } th { "Age" }
                            th { "Consultant" } th { "Alerts" } th { "Medicines due" }
                        }
                    }
                    tbody {
                        @for p in &r.patients {
                            tr {
                                td { (p.bed) }
                                td { (p.name) }
                                td { (p.nhs_number.as_deref().map(nhs_spaced).unwrap_or_default()) }
                                td { (p.age.map(|a| a.to_string()).unwrap_or_default()) }
                                td { (p.consultant.as_deref().unwrap_or("")) }
                                td {
                                    @for a in &p.alerts { span class="wl-alert" { (a) } }
                                }
                                td {
                                    @if p.due.is_empty() { "None due" } @else {
                                        ul {
                                            @for d in &p.due {
                                                li class=[d.time_critical.then_some("wl-critical")] {
                                                    (d.at_local) " — " (d.medicine) " " (d.dose) " (" (d.state)
                                                    @if d.time_critical { ", time-critical" }
                                                    ")"
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        @if r.patients.is_empty() {
                            tr { td colspan="7" { "No patients in this ward's beds." } }
                        }
                    }
                }
                div class="wl-footer" { "Downtime report: " (r.ward) " — " (generated) }
            }
        }
    }
    .into_string()
}

/// "943 476 5919".
fn nhs_spaced(n: &str) -> String {
    if n.len() == 10 && n.is_ascii() {
        format!("{} {} {}", &n[..3], &n[3..6], &n[6..])
    } else {
        n.to_owned()
    }
}
