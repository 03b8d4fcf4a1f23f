//! The inpatient drug chart and prescribing: pages over
//! `wardline_workflow::medicines::prescribe`.
//!
//! * `/ui/patients/{id}/medicines` — the drug chart: current prescriptions
//!   by kind (regular, as required, once only, variable dose, infusions),
//!   drafts, then the ended ones; each with its dose, route, times,
//!   indication, prescriber and signature, dates (review due flagged),
//!   pharmacy screening, high-risk / time-critical / CD tags and TTO.
//! * `/ui/patients/{id}/medicines/new` — prescribe: search the formulary
//!   (`?q=`), choose a medicine (`?medicine=`) and the kind (`?kind=`), then
//!   the form for that kind with the formulary's defaults. When decision
//!   support raises alerts the form comes back with its values and the
//!   **alerts panel** (`#alerts`): each alert with its grade and message;
//!   an `override` alert has a required reason box `override.{key}`; a hard
//!   stop is shown as one that cannot be overridden, and the form has no
//!   submit button past it (only "Start again").
//! * `/ui/prescriptions/{id}` — one prescription: its details, its history
//!   of versions, the alerts gone past with their override reasons, and the
//!   change (`/change`) and discontinue (`/discontinue`) forms.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use time::OffsetDateTime;
use wardline_auth::rbac::Activity;
use wardline_workflow::medicines::checks::{Alert, Grade, Override};
use wardline_workflow::medicines::formulary::{Entry, Formulary, Qty};
use wardline_workflow::medicines::prescribe::{self, ChartLine, Prescription};
use wardline_workflow::medicines::{Kind, MedicinesError};
use wardline_workflow::pmi::PatientSummary;

use crate::layout::{self, Nav};
use crate::patients::patient_or_404;
use crate::{Cx, Form, Req, St, enc, see_other};

fn get<'a>(f: &'a Form, k: &str) -> &'a str {
    f.get(k).map(|s| s.trim()).unwrap_or_default()
}

fn refusal(e: &MedicinesError) -> Response {
    layout::refusal_page(e.status(), &e.message(), "medicines")
}

fn may_prescribe(cx: &Cx) -> bool {
    cx.role.is_some_and(|r| r.has(Activity::Prescribe))
}

fn load_formulary(cx: &Cx) -> Result<Formulary, Response> {
    prescribe::formulary_of(&cx.svc).map_err(|e| refusal(&e))
}

const KINDS: [(&str, &str); 5] = [
    ("regular", "Regular"),
    ("as-required", "As required (PRN)"),
    ("once-only", "Once only"),
    (
        "variable-dose",
        "Variable dose (e.g. warfarin, sliding scale insulin)",
    ),
    ("infusion", "Infusion"),
];

fn kind_of(code: &str) -> Option<Kind> {
    Some(match code {
        "regular" => Kind::Regular,
        "as-required" => Kind::AsRequired,
        "once-only" => Kind::OnceOnly,
        "variable-dose" => Kind::VariableDose,
        "infusion" => Kind::Infusion,
        _ => return None,
    })
}

fn kind_code(k: Kind) -> &'static str {
    match k {
        Kind::Regular => "regular",
        Kind::AsRequired => "as-required",
        Kind::OnceOnly => "once-only",
        Kind::VariableDose => "variable-dose",
        Kind::Infusion => "infusion",
    }
}

fn status_tag(status: &str) -> Markup {
    let (text, class) = match status {
        "active" => ("Active", "nhsuk-tag--green"),
        "on-hold" => ("On hold", "nhsuk-tag--yellow"),
        "draft" => ("Draft – not to be given", "nhsuk-tag--white"),
        "stopped" => ("Stopped", "nhsuk-tag--grey"),
        "completed" => ("Completed", "nhsuk-tag--grey"),
        "cancelled" => ("Cancelled", "nhsuk-tag--grey"),
        "entered-in-error" => ("Entered in error", "nhsuk-tag--red"),
        other => (other, "nhsuk-tag--grey"),
    };
    html! { strong class={ "nhsuk-tag " (class) } data-status=(status) { (text) } }
}

fn screening_tag(s: &str) -> Markup {
    let (text, class) = match s {
        "screened" => ("Screened", "nhsuk-tag--green"),
        "queried" => ("Pharmacy query", "nhsuk-tag--orange"),
        _ => ("Not screened", "nhsuk-tag--white"),
    };
    html! { strong class={ "nhsuk-tag " (class) } data-testid="screening" data-screening=(s) { (text) } }
}

fn flags(l: &ChartLine) -> Markup {
    html! {
        @if l.high_risk { " " strong class="nhsuk-tag nhsuk-tag--red" data-testid="high-risk" { "High risk" } }
        @if l.time_critical { " " strong class="nhsuk-tag nhsuk-tag--orange" data-testid="time-critical" { "Time critical" } }
        @if let Some(cd) = &l.controlled_drug { " " strong class="nhsuk-tag nhsuk-tag--purple" data-testid="cd" { "CD schedule " (cd) } }
        @if l.discharge { " " strong class="nhsuk-tag nhsuk-tag--blue" data-testid="tto" { "TTO" } }
    }
}

/// The patient banner with where the patient is now (the page still
/// shows if the stay cannot be read).
fn banner(cx: &Cx, p: &PatientSummary) -> Markup {
    let stay = wardline_workflow::adt::current_stay(&cx.svc, cx.access(), &p.id)
        .ok()
        .flatten();
    crate::chart::banner(p, stay.as_ref())
}

fn date_of(s: &str) -> String {
    layout::long_date(s.get(..10).unwrap_or(s))
}

// ---------------------------------------------------------------- the chart

fn chart_table(lines: &[ChartLine], testid: &str) -> Markup {
    html! {
        table class="nhsuk-table" data-testid=(testid) {
            thead class="nhsuk-table__head" {
                tr {
                    th scope="col" { "Medicine" }
                    th scope="col" { "Dose, route and when" }
                    th scope="col" { "Indication" }
                    th scope="col" { "Prescribed" }
                    th scope="col" { "Dates" }
                    th scope="col" { "Status" }
                }
            }
            tbody class="nhsuk-table__body" {
                @for l in lines {
                    tr class="nhsuk-table__row" data-testid="prescription" data-id=(l.id) data-kind=(kind_code(l.kind)) data-status=(l.status) {
                        td class="nhsuk-table__cell" {
                            a href={ "/ui/prescriptions/" (enc(&l.id)) } data-testid="medicine" { (l.medicine) }
                            (flags(l))
                        }
                        td class="nhsuk-table__cell" {
                            span data-testid="dose" { (l.dose) } " " (l.route)
                            br; span class="nhsuk-body-s" data-testid="timing" { (l.timing) }
                            @if let Some(i) = &l.instructions { br; span class="nhsuk-body-s" { (i) } }
                        }
                        td class="nhsuk-table__cell" data-testid="indication" { (l.indication) }
                        td class="nhsuk-table__cell" {
                            (l.prescriber.as_deref().unwrap_or("–"))
                            @if let Some(s) = &l.signed_at { br; span class="nhsuk-body-s" { "Signed " (prescribe::when_text(s)) } }
                            @else { br; span class="nhsuk-body-s" { "Not signed" } }
                        }
                        td class="nhsuk-table__cell" {
                            @if let Some(s) = &l.start { "From " (date_of(s)) }
                            @if let Some(s) = &l.stop { br; "Until " (date_of(s)) }
                            @if let Some(r) = &l.review {
                                br;
                                @if l.review_due { strong class="nhsuk-tag nhsuk-tag--red" data-testid="review-due" { "Review due " (date_of(r)) } }
                                @else { "Review " (date_of(r)) }
                            }
                        }
                        td class="nhsuk-table__cell" {
                            (status_tag(&l.status))
                            @if let Some(r) = &l.status_reason { br; span class="nhsuk-body-s" data-testid="status-reason" { (r) } }
                            br; (screening_tag(&l.screening))
                        }
                    }
                }
            }
        }
    }
}

pub(crate) async fn chart_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        let p = match patient_or_404(cx, &id) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let now = cx.svc.now();
        let chart = match prescribe::drug_chart(&cx.svc, cx.access(), &p.id, now) {
            Ok(c) => c,
            Err(e) => return refusal(&e),
        };
        let body = html! {
            @match get(&q, "done") {
                "prescribed" => (layout::success("Prescribed and signed.")),
                "discontinued" => (layout::success("The prescription was discontinued.")),
                "changed" => (layout::success("The prescription was changed: the old one is stopped and the new one signed.")),
                _ => {}
            }
            (layout::back_link(&format!("/ui/patients/{}", enc(&p.id)), "Back to the record"))
            (banner(cx, &p))
            h2 { "Drug chart" }
            @if may_prescribe(cx) {
                a class="nhsuk-button" href={ "/ui/patients/" (enc(&p.id)) "/medicines/new" } data-testid="prescribe" { "Prescribe" }
            }
            @if chart.current().next().is_none() && chart.drafts.is_empty() {
                p data-testid="chart-empty" { "No current prescriptions." }
            }
            @for (title, lines) in chart.sections() {
                @if !lines.is_empty() {
                    h3 { (title) }
                    (chart_table(lines, &format!("section-{}", title.to_lowercase().replace(' ', "-"))))
                }
            }
            @if !chart.drafts.is_empty() {
                h3 { "Drafts – not to be given" }
                p class="nhsuk-body-s" { "Not yet signed or released (e.g. a chemotherapy cycle waiting for verification)." }
                (chart_table(&chart.drafts, "section-drafts"))
            }
            @if !chart.ended.is_empty() {
                details class="nhsuk-details" data-testid="ended" {
                    summary class="nhsuk-details__summary" { span class="nhsuk-details__summary-text" { "Stopped and completed (" (chart.ended.len()) ")" } }
                    div class="nhsuk-details__text" { (chart_table(&chart.ended, "section-ended")) }
                }
            }
            @if chart.withheld > 0 {
                div class="nhsuk-inset-text" data-testid="withheld" {
                    p { (chart.withheld) " prescription(s) are not shown to your position." }
                }
            }
        };
        layout::page(cx, &format!("Drug chart – {}", p.display_name), Nav::Patients, body)
    })
    .await
}

// ---------------------------------------------------------------- the form

/// Administration times for a default frequency written the usual ways
/// ("BD", "twice a day", "once daily at 18:00"); empty when not known.
fn default_times(freq: &str) -> String {
    let f = freq.trim().to_lowercase();
    if let Some(at) = f.split_whitespace().find_map(prescribe::parse_time_of_day) {
        return at[..5].to_owned();
    }
    let by_word = [
        (["qds", "four times"], "08:00, 12:00, 18:00, 22:00"),
        (["tds", "three times"], "08:00, 14:00, 22:00"),
        (["bd", "twice"], "08:00, 20:00"),
        (["on", "at night"], "22:00"),
        (["od", "once"], "08:00"),
    ];
    for (words, times) in by_word {
        if words
            .iter()
            .any(|w| f == *w || (w.len() > 3 && f.contains(w)))
        {
            return times.to_owned();
        }
    }
    String::new()
}

fn units(e: &Entry) -> Vec<String> {
    let mut u = Vec::new();
    if !e.unit_of_dose.is_empty() {
        u.push(e.unit_of_dose.clone());
    }
    if let Some((n, _)) = &e.strength
        && !u.contains(&n.unit)
    {
        u.push(n.unit.clone());
    }
    u
}

fn number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok()
}

fn parse_date(s: &str) -> Option<time::Date> {
    let f = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s.trim(), f).ok()
}

/// A `datetime-local` value read in the trust's time zone.
fn parse_local(cx: &Cx, s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let full = if s.len() == 16 {
        format!("{s}:00")
    } else {
        s.to_owned()
    };
    let (ms, _) = wardline_fhir::datetime::parse_range_in(&full, cx.svc.time_zone())?;
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// The prescription the form describes; a sentence naming the field when a
/// value is not a number or date.
fn prescription_of(
    cx: &Cx,
    patient: &str,
    kind: Kind,
    f: &Form,
) -> Result<(Prescription, Vec<Override>), String> {
    let mut p = Prescription::new(patient, get(f, "medicine"), kind);
    let unit = get(f, "dose_unit").to_owned();
    let num = |k: &str, label: &str| -> Result<Option<f64>, String> {
        match get(f, k) {
            "" => Ok(None),
            v => number(v)
                .map(Some)
                .ok_or_else(|| format!("{label}: '{v}' is not a number.")),
        }
    };
    p.dose = num("dose", "Dose")?.map(|value| Qty {
        value,
        unit: unit.clone(),
    });
    if kind == Kind::VariableDose {
        p.dose = None;
        if let (Some(lo), Some(hi)) = (
            num("dose_low", "Lowest dose")?,
            num("dose_high", "Highest dose")?,
        ) {
            p.dose_range = Some((
                Qty {
                    value: lo,
                    unit: unit.clone(),
                },
                Qty {
                    value: hi,
                    unit: unit.clone(),
                },
            ));
        }
    }
    p.route = get(f, "route").to_owned();
    p.times = get(f, "times")
        .split([',', ' '])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    p.every_days = match get(f, "every_days") {
        "" => 1,
        v => v
            .parse()
            .map_err(|_| format!("Every how many days: '{v}' is not a whole number."))?,
    };
    p.prn_reason = Some(get(f, "prn_reason").to_owned()).filter(|s| !s.is_empty());
    p.min_interval_hours = num("min_interval", "Minimum interval")?;
    p.max_per_24h = num("max_24h", "Maximum in 24 hours")?.map(|value| Qty {
        value,
        unit: unit.clone(),
    });
    p.once_at = match get(f, "once_at") {
        "" => None,
        v => {
            Some(parse_local(cx, v).ok_or_else(|| format!("Time: '{v}' is not a date and time."))?)
        }
    };
    p.rate_ml_h = num("rate", "Rate")?;
    p.volume_ml = num("volume", "Volume")?;
    p.duration_hours = num("duration", "Duration")?;
    p.indication = get(f, "indication").to_owned();
    let date = |k: &str, label: &str| -> Result<Option<time::Date>, String> {
        match get(f, k) {
            "" => Ok(None),
            v => parse_date(v)
                .map(Some)
                .ok_or_else(|| format!("{label}: '{v}' is not a date.")),
        }
    };
    p.start = date("start", "Start date")?.and_then(|d| {
        let today = cx.svc.now();
        (d > today.date()).then(|| d.midnight().assume_utc())
    });
    p.stop = date("stop", "Stop date")?;
    p.review = date("review", "Review date")?;
    p.instructions = Some(get(f, "instructions").to_owned()).filter(|s| !s.is_empty());
    p.discharge = get(f, "discharge") == "yes";
    let overrides = f
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("override.").map(|key| Override {
                key: key.to_owned(),
                reason: v.trim().to_owned(),
            })
        })
        .collect();
    Ok((p, overrides))
}

/// The form's values for an entry's defaults (nothing posted yet).
fn defaults(e: &Entry, kind: Kind) -> Form {
    let mut f = Form::new();
    f.insert("medicine".into(), e.id.clone());
    if let Some(d) = &e.default_dose {
        f.insert("dose".into(), format!("{}", d.value));
        f.insert("dose_unit".into(), d.unit.clone());
    }
    if let Some(r) = e.routes.first() {
        f.insert("route".into(), r.code.clone());
    }
    if matches!(kind, Kind::Regular | Kind::VariableDose)
        && let Some(fr) = &e.default_frequency
    {
        f.insert("times".into(), default_times(fr));
    }
    f
}

fn text_field(
    id: &str,
    label: &str,
    hint: Option<&str>,
    f: &Form,
    width: &str,
    kind: &str,
) -> Markup {
    let field = layout::Field {
        hint,
        value: get(f, id),
        width,
        kind,
        ..layout::Field::new(id, label)
    };
    layout::input(&field)
}

fn alerts_panel(alerts: &[Alert], f: &Form) -> Markup {
    let hard = alerts.iter().any(|a| a.grade == Grade::HardStop);
    html! {
        div class="nhsuk-warning-callout" id="alerts" data-testid="alerts" data-hard-stop=(hard) {
            h2 class="nhsuk-warning-callout__label" {
                span role="text" { span class="nhsuk-u-visually-hidden" { "Important: " }
                    @if hard { "This cannot be prescribed" } @else { "Prescribing alerts" } }
            }
            @if hard {
                p { "A hard stop cannot be overridden. Change the prescription, or choose another medicine." }
            } @else {
                p { "Give a reason to go past each alert that needs one. Your reasons are kept with the prescription." }
            }
            ul class="nhsuk-list" {
                @for a in alerts {
                    li data-testid="alert" data-key=(a.key) data-grade=(a.grade.code()) {
                        @match a.grade {
                            Grade::HardStop => strong class="nhsuk-tag nhsuk-tag--red" { "Hard stop – cannot be overridden" },
                            Grade::Override => strong class="nhsuk-tag nhsuk-tag--orange" { "Needs a reason" },
                            Grade::Advisory => strong class="nhsuk-tag nhsuk-tag--blue" { "Advisory" },
                        }
                        " " span data-testid="alert-message" { (a.message) }
                        @if a.grade == Grade::Override && !hard {
                            @let name = format!("override.{}", a.key);
                            div class="nhsuk-form-group" {
                                label class="nhsuk-label" for=(name) { "Reason to override: " (a.message) }
                                textarea class="nhsuk-textarea" id=(name) name=(name) form="prescription" rows="2" required { (get(f, &name)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

struct FormCx<'a> {
    patient: &'a PatientSummary,
    entry: &'a Entry,
    kind: Kind,
    /// Where it posts.
    action: String,
    /// For a change: the prescription changed.
    change_of: Option<&'a str>,
}

fn prescription_form(
    cx: &Cx,
    fc: &FormCx,
    f: &Form,
    error: Option<&str>,
    alerts: &[Alert],
) -> Markup {
    let e = fc.entry;
    let hard = alerts.iter().any(|a| a.grade == Grade::HardStop);
    let unit_options: Vec<(String, String)> =
        units(e).into_iter().map(|u| (u.clone(), u)).collect();
    let route_options: Vec<(String, String)> = e
        .routes
        .iter()
        .map(|r| {
            (
                r.code.clone(),
                if r.display.is_empty() {
                    r.code.clone()
                } else {
                    r.display.clone()
                },
            )
        })
        .collect();
    let unit = match get(f, "dose_unit") {
        "" => unit_options.first().map(|(u, _)| u.as_str()).unwrap_or(""),
        u => u,
    };
    let restart = format!(
        "/ui/patients/{}/medicines/new?medicine={}&kind={}",
        enc(&fc.patient.id),
        enc(&e.id),
        kind_code(fc.kind)
    );
    html! {
        @if let Some(msg) = error { (layout::error_summary(&[("prescription".to_owned(), msg.to_owned())])) }
        @if !alerts.is_empty() { (alerts_panel(alerts, f)) }
        dl class="nhsuk-summary-list" data-testid="chosen" {
            div class="nhsuk-summary-list__row" {
                dt class="nhsuk-summary-list__key" { "Medicine" }
                dd class="nhsuk-summary-list__value" data-testid="chosen-medicine" {
                    (e.name())
                    @if e.is_local() { " " strong class="nhsuk-tag nhsuk-tag--grey" title="A local code, not dm+d" { "Local code" } }
                    @if e.high_risk { " " strong class="nhsuk-tag nhsuk-tag--red" { "High risk" } }
                    @if e.time_critical { " " strong class="nhsuk-tag nhsuk-tag--orange" { "Time critical" } }
                    @if let Some(cd) = &e.controlled_drug { " " strong class="nhsuk-tag nhsuk-tag--purple" { "CD schedule " (cd) } }
                }
            }
            div class="nhsuk-summary-list__row" {
                dt class="nhsuk-summary-list__key" { "Kind" }
                dd class="nhsuk-summary-list__value" data-testid="chosen-kind" { (fc.kind.label()) }
            }
        }
        form method="post" action=(fc.action) novalidate id="prescription" {
            (layout::csrf(cx))
            input type="hidden" name="medicine" value=(e.id);
            input type="hidden" name="kind" value=(kind_code(fc.kind));
            @if fc.kind == Kind::VariableDose {
                (text_field("dose_low", "Lowest dose", None, f, "nhsuk-input--width-5", "text"))
                (text_field("dose_high", "Highest dose", None, f, "nhsuk-input--width-5", "text"))
            } @else {
                (text_field("dose", if fc.kind == Kind::Infusion { "Dose in the bag (optional)" } else { "Dose" }, None, f, "nhsuk-input--width-5", "text"))
            }
            (layout::select("dose_unit", "Dose unit", &unit_options, unit, None))
            (layout::select("route", "Route", &route_options, get(f, "route"), None))
            @match fc.kind {
                Kind::Regular | Kind::VariableDose => {
                    (text_field("times", "Administration times", Some("24-hour clock, separated by commas, e.g. 08:00, 20:00"), f, "nhsuk-input--width-20", "text"))
                    (text_field("every_days", "Every how many days (optional)", Some("1 for daily (the default), 7 for weekly"), f, "nhsuk-input--width-3", "text"))
                }
                Kind::AsRequired => {
                    (text_field("prn_reason", "As required for (optional)", Some("e.g. pain, nausea"), f, "nhsuk-input--width-20", "text"))
                    (text_field("min_interval", "Minimum interval between doses (hours)", None, f, "nhsuk-input--width-3", "text"))
                    (text_field("max_24h", "Maximum in 24 hours (in the dose unit)", None, f, "nhsuk-input--width-5", "text"))
                }
                Kind::OnceOnly => {
                    (text_field("once_at", "When", Some("Date and time (the trust's local time)"), f, "nhsuk-input--width-20", "datetime-local"))
                }
                Kind::Infusion => {
                    (text_field("rate", "Rate (mL/h)", None, f, "nhsuk-input--width-5", "text"))
                    (text_field("volume", "Volume (mL)", None, f, "nhsuk-input--width-5", "text"))
                    (text_field("duration", "Duration (hours)", None, f, "nhsuk-input--width-5", "text"))
                }
            }
            (text_field("indication", "Indication", Some("What the medicine is for"), f, "", "text"))
            (text_field("start", "Start date (optional)", Some("Leave empty to start now"), f, "nhsuk-input--width-10", "date"))
            (text_field("stop", "Stop date (optional)", None, f, "nhsuk-input--width-10", "date"))
            (text_field("review", "Review date (optional)", None, f, "nhsuk-input--width-10", "date"))
            div class="nhsuk-form-group" {
                label class="nhsuk-label" for="instructions" {
                    @if fc.kind == Kind::VariableDose { "Scale or instructions" } @else { "Further instructions (optional)" }
                }
                textarea class="nhsuk-textarea" id="instructions" name="instructions" rows="2" { (get(f, "instructions")) }
            }
            div class="nhsuk-form-group" {
                div class="nhsuk-checkboxes" {
                    div class="nhsuk-checkboxes__item" {
                        input class="nhsuk-checkboxes__input" id="discharge" name="discharge" type="checkbox" value="yes" checked[get(f, "discharge") == "yes"];
                        label class="nhsuk-label nhsuk-checkboxes__label" for="discharge" { "Discharge prescription (TTO)" }
                    }
                }
            }
            @if fc.change_of.is_some() {
                (text_field("reason", "Reason for the change", None, f, "", "text"))
            }
            @if hard {
                a class="nhsuk-button nhsuk-button--secondary" href=(restart) data-testid="start-again" { "Start again" }
            } @else {
                button class="nhsuk-button" data-module="nhsuk-button" type="submit" id="sign" data-testid="sign" {
                    @if fc.change_of.is_some() { "Sign the changed prescription" } @else { "Sign and prescribe" }
                }
            }
        }
    }
}

fn search_step(cx: &Cx, p: &PatientSummary, formulary: &Formulary, q: &Form) -> Markup {
    let text = get(q, "q");
    let found: Vec<&Entry> = if text.is_empty() {
        Vec::new()
    } else {
        formulary.search(text)
    };
    let _ = cx;
    html! {
        form method="get" action={ "/ui/patients/" (enc(&p.id)) "/medicines/new" } novalidate {
            div class="nhsuk-form-group" {
                label class="nhsuk-label" for="medicine-search" { "Search the formulary" }
                div class="nhsuk-hint" id="medicine-search-hint" { "A medicine's name, substance or code" }
                input class="nhsuk-input nhsuk-input--width-20" id="medicine-search" name="q" type="search" value=(text) aria-describedby="medicine-search-hint" autocomplete="off";
            }
            button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" id="medicine-search-button" { "Search" }
        }
        @if !text.is_empty() {
            @if found.is_empty() {
                p data-testid="no-medicines" { "No formulary medicine matches '" (text) "'." }
            } @else {
                ul class="nhsuk-list nhsuk-list--border" data-testid="medicines-found" {
                    @for e in found.iter().take(50) {
                        li {
                            a href={ "/ui/patients/" (enc(&p.id)) "/medicines/new?medicine=" (enc(&e.id)) } data-testid="choose-medicine" data-id=(e.id) { (e.name()) }
                            @if e.is_local() { " " strong class="nhsuk-tag nhsuk-tag--grey" { "Local code" } }
                            @if e.high_risk { " " strong class="nhsuk-tag nhsuk-tag--red" { "High risk" } }
                            @if let Some(cd) = &e.controlled_drug { " " strong class="nhsuk-tag nhsuk-tag--purple" { "CD " (cd) } }
                        }
                    }
                }
            }
        }
    }
}

fn kind_step(p: &PatientSummary, e: &Entry) -> Markup {
    html! {
        p { "Medicine: " strong data-testid="chosen-medicine" { (e.name()) } }
        form method="get" action={ "/ui/patients/" (enc(&p.id)) "/medicines/new" } novalidate {
            input type="hidden" name="medicine" value=(e.id);
            (layout::radios("kind", "What kind of prescription?", &KINDS, "regular", None))
            button class="nhsuk-button" data-module="nhsuk-button" type="submit" id="choose-kind" { "Continue" }
        }
    }
}

fn new_page_body(cx: &Cx, p: &PatientSummary, formulary: &Formulary, q: &Form) -> Markup {
    let back = format!("/ui/patients/{}/medicines", enc(&p.id));
    let entry = formulary.entry(get(q, "medicine")).filter(|e| e.active);
    let kind = kind_of(get(q, "kind"));
    html! {
        (layout::back_link(&back, "Back to the drug chart"))
        (banner(cx, p))
        h2 { "Prescribe" }
        @match (entry, kind) {
            (Some(e), Some(k)) => {
                @let fc = FormCx { patient: p, entry: e, kind: k,
                    action: format!("/ui/patients/{}/medicines/new", enc(&p.id)), change_of: None };
                (prescription_form(cx, &fc, &defaults(e, k), None, &[]))
            }
            (Some(e), None) => (kind_step(p, e)),
            _ => (search_step(cx, p, formulary, q)),
        }
    }
}

fn forbidden_to_prescribe() -> Response {
    layout::error_page(
        StatusCode::FORBIDDEN,
        "You do not have access",
        "Your position does not include prescribing.",
    )
}

pub(crate) async fn new_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        if !may_prescribe(cx) {
            return forbidden_to_prescribe();
        }
        let p = match patient_or_404(cx, &id) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let formulary = match load_formulary(cx) {
            Ok(f) => f,
            Err(r) => return r,
        };
        layout::page(
            cx,
            "Prescribe",
            Nav::Patients,
            new_page_body(cx, &p, &formulary, &q),
        )
    })
    .await
}

/// Posts the form: prescribe (or change `change_of`), and on a refusal the
/// form again with its values, the error or the alerts.
fn submit(cx: &Cx, p: &PatientSummary, f: &Form, change_of: Option<&str>) -> Response {
    let formulary = match load_formulary(cx) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let Some(entry) = formulary.entry(get(f, "medicine")) else {
        return layout::refusal_page(400, "Choose a medicine from the formulary.", "medicines");
    };
    let Some(kind) = kind_of(get(f, "kind")) else {
        return layout::refusal_page(400, "Choose the kind of prescription.", "medicines");
    };
    let action = match change_of {
        Some(old) => format!("/ui/prescriptions/{}/change", enc(old)),
        None => format!("/ui/patients/{}/medicines/new", enc(&p.id)),
    };
    let fc = FormCx {
        patient: p,
        entry,
        kind,
        action,
        change_of,
    };
    let again = |status: StatusCode, error: Option<&str>, alerts: &[Alert]| {
        let body = html! {
            (layout::back_link(&format!("/ui/patients/{}/medicines", enc(&p.id)), "Back to the drug chart"))
            (banner(cx, p))
            h2 { @if change_of.is_some() { "Change a prescription" } @else { "Prescribe" } }
            (prescription_form(cx, &fc, f, error, alerts))
        };
        layout::page_with(status, cx, "Prescribe", Nav::Patients, body)
    };
    let (rx, overrides) = match prescription_of(cx, &p.id, kind, f) {
        Ok(x) => x,
        Err(m) => return again(StatusCode::UNPROCESSABLE_ENTITY, Some(&m), &[]),
    };
    let now = cx.svc.now();
    let done = match change_of {
        Some(old) => prescribe::change(
            &cx.svc,
            cx.access(),
            &formulary,
            old,
            &rx,
            get(f, "reason"),
            &overrides,
            now,
        ),
        None => prescribe::prescribe(&cx.svc, cx.access(), &formulary, &rx, &overrides, now),
    };
    match done {
        Ok(_) => see_other(&format!(
            "/ui/patients/{}/medicines?done={}",
            enc(&p.id),
            if change_of.is_some() {
                "changed"
            } else {
                "prescribed"
            }
        )),
        Err(MedicinesError::Alerts(alerts)) => again(StatusCode::CONFLICT, None, &alerts),
        Err(e @ (MedicinesError::Invalid(_) | MedicinesError::Conflict(_))) => again(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(&layout::sentence(&e.message())),
            &[],
        ),
        Err(e) => refusal(&e),
    }
}

pub(crate) async fn new_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        if !may_prescribe(cx) {
            return forbidden_to_prescribe();
        }
        let p = match patient_or_404(cx, &id) {
            Ok(p) => p,
            Err(r) => return r,
        };
        submit(cx, &p, &f, None)
    })
    .await
}

// ---------------------------------------------------------------- one prescription

fn row(key: &str, value: Markup) -> Markup {
    html! {
        div class="nhsuk-summary-list__row" {
            dt class="nhsuk-summary-list__key" { (key) }
            dd class="nhsuk-summary-list__value" { (value) }
        }
    }
}

pub(crate) async fn detail_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        let now = cx.svc.now();
        let d = match prescribe::detail(&cx.svc, cx.access(), &id, now) {
            Ok(d) => d,
            Err(e) => return refusal(&e),
        };
        let p = match patient_or_404(cx, &d.patient) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let l = &d.line;
        let current = l.status == "active" || l.status == "on-hold";
        let body = html! {
            @if get(&q, "done") == "discontinued" { (layout::success("The prescription was discontinued.")) }
            (layout::back_link(&format!("/ui/patients/{}/medicines", enc(&p.id)), "Back to the drug chart"))
            (banner(cx, &p))
            h2 data-testid="prescription-title" { (l.medicine) (flags(l)) }
            dl class="nhsuk-summary-list" {
                (row("Status", html! { (status_tag(&l.status)) @if let Some(r) = &l.status_reason { " " span data-testid="status-reason" { (r) } } }))
                (row("Kind", html! { (l.kind.label()) }))
                (row("Dose", html! { span data-testid="dose" { (l.dose) } }))
                (row("Route", html! { (l.route) }))
                (row("When", html! { span data-testid="timing" { (l.timing) } }))
                @if let Some(i) = &l.instructions { (row("Instructions", html! { (i) })) }
                (row("Indication", html! { (l.indication) }))
                (row("Prescriber", html! {
                    (l.prescriber.as_deref().unwrap_or("–"))
                    @if let Some(s) = &l.signed_at { ", signed " (prescribe::when_text(s)) } @else { ", not signed" }
                }))
                (row("Dates", html! {
                    @if let Some(s) = &l.start { "From " (date_of(s)) }
                    @if let Some(s) = &l.stop { br; "Until " (date_of(s)) }
                    @if let Some(r) = &l.review { br; @if l.review_due { strong class="nhsuk-tag nhsuk-tag--red" { "Review due " (date_of(r)) } } @else { "Review " (date_of(r)) } }
                }))
                (row("Pharmacy screening", screening_tag(&l.screening)))
                @if let Some(prior) = &l.prior {
                    (row("Replaces", html! { a href={ "/ui/prescriptions/" (enc(prior)) } data-testid="prior" { "the earlier prescription" } }))
                }
                @for r in &d.replaced_by {
                    (row("Replaced by", html! { a href={ "/ui/prescriptions/" (enc(r)) } data-testid="replaced-by" { "the changed prescription" } }))
                }
            }
            h3 { "Alerts at prescribing" }
            @if d.issues.is_empty() {
                p data-testid="no-issues" { "No alerts were raised." }
            } @else {
                table class="nhsuk-table" data-testid="issues" {
                    thead class="nhsuk-table__head" { tr { th scope="col" { "Alert" } th scope="col" { "Grade" } th scope="col" { "Override reason" } } }
                    tbody class="nhsuk-table__body" {
                        @for i in &d.issues {
                            tr class="nhsuk-table__row" data-testid="issue" {
                                td class="nhsuk-table__cell" { (i.detail) br; span class="nhsuk-body-s" { (i.kind) } }
                                td class="nhsuk-table__cell" { (i.grade) }
                                td class="nhsuk-table__cell" data-testid="override-reason" {
                                    (i.override_reason.as_deref().unwrap_or("–"))
                                    @if let Some(t) = &i.date { br; span class="nhsuk-body-s" { (t) } }
                                }
                            }
                        }
                    }
                }
            }
            h3 { "History" }
            table class="nhsuk-table" data-testid="versions" {
                thead class="nhsuk-table__head" { tr { th scope="col" { "Version" } th scope="col" { "When" } th scope="col" { "Status" } th scope="col" { "Screening" } } }
                tbody class="nhsuk-table__body" {
                    @for v in &d.versions {
                        tr class="nhsuk-table__row" data-testid="version" {
                            td class="nhsuk-table__cell" { (v.version) }
                            td class="nhsuk-table__cell" { (v.at) }
                            td class="nhsuk-table__cell" { (status_tag(&v.status)) @if let Some(r) = &v.status_reason { " " (r) } }
                            td class="nhsuk-table__cell" { (v.screening) }
                        }
                    }
                }
            }
            @if current && may_prescribe(cx) {
                a class="nhsuk-button nhsuk-button--secondary" href={ "/ui/prescriptions/" (enc(&l.id)) "/change" } data-testid="change" { "Change this prescription" }
                h3 { "Discontinue" }
                form method="post" action={ "/ui/prescriptions/" (enc(&l.id)) "/discontinue" } novalidate data-testid="discontinue-form" {
                    (layout::csrf(cx))
                    div class="nhsuk-form-group" {
                        label class="nhsuk-label" for="discontinue-reason" { "Reason for discontinuing" }
                        input class="nhsuk-input" id="discontinue-reason" name="reason" type="text" autocomplete="off";
                    }
                    button class="nhsuk-button nhsuk-button--warning" data-module="nhsuk-button" type="submit" id="discontinue" { "Discontinue" }
                }
            }
        };
        layout::page(cx, &l.medicine, Nav::Patients, body)
    })
    .await
}

pub(crate) async fn discontinue_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let now = cx.svc.now();
        match prescribe::discontinue(&cx.svc, cx.access(), &id, get(&f, "reason"), now) {
            Ok(()) => see_other(&format!("/ui/prescriptions/{}?done=discontinued", enc(&id))),
            Err(e) => refusal(&e),
        }
    })
    .await
}

/// The form's values of a saved prescription (for a change).
fn form_of(cx: &Cx, p: &Prescription) -> Form {
    let mut f = Form::new();
    let n = |v: f64| format!("{v}");
    f.insert("medicine".into(), p.medicine.clone());
    if let Some(d) = &p.dose {
        f.insert("dose".into(), n(d.value));
        f.insert("dose_unit".into(), d.unit.clone());
    }
    if let Some((lo, hi)) = &p.dose_range {
        f.insert("dose_low".into(), n(lo.value));
        f.insert("dose_high".into(), n(hi.value));
        f.insert("dose_unit".into(), lo.unit.clone());
    }
    f.insert("route".into(), p.route.clone());
    f.insert("times".into(), p.times.join(", "));
    if p.every_days > 1 {
        f.insert("every_days".into(), p.every_days.to_string());
    }
    if let Some(r) = &p.prn_reason {
        f.insert("prn_reason".into(), r.clone());
    }
    if let Some(h) = p.min_interval_hours {
        f.insert("min_interval".into(), n(h));
    }
    if let Some(m) = &p.max_per_24h {
        f.insert("max_24h".into(), n(m.value));
    }
    if let Some(t) = p.once_at {
        // The trust's local clock at that instant: the offset is what
        // reading the UTC clock's figures as local time moves them by.
        let t = t.to_offset(time::UtcOffset::UTC);
        let naive = format!("{}T{:02}:{:02}", t.date(), t.hour(), t.minute());
        let local = parse_local(cx, &naive)
            .map(|as_local| t + (t - as_local))
            .unwrap_or(t);
        f.insert(
            "once_at".into(),
            format!("{}T{:02}:{:02}", local.date(), local.hour(), local.minute()),
        );
    }
    for (k, v) in [
        ("rate", p.rate_ml_h),
        ("volume", p.volume_ml),
        ("duration", p.duration_hours),
    ] {
        if let Some(v) = v {
            f.insert(k.into(), n(v));
        }
    }
    f.insert("indication".into(), p.indication.clone());
    if let Some(d) = p.stop {
        f.insert("stop".into(), d.to_string());
    }
    if let Some(d) = p.review {
        f.insert("review".into(), d.to_string());
    }
    if let Some(i) = &p.instructions {
        f.insert("instructions".into(), i.clone());
    }
    if p.discharge {
        f.insert("discharge".into(), "yes".into());
    }
    f
}

pub(crate) async fn change_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, _| {
        if !may_prescribe(cx) {
            return forbidden_to_prescribe();
        }
        let d = match prescribe::detail(&cx.svc, cx.access(), &id, cx.svc.now()) {
            Ok(d) => d,
            Err(e) => return refusal(&e),
        };
        let p = match patient_or_404(cx, &d.patient) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let formulary = match load_formulary(cx) {
            Ok(f) => f,
            Err(r) => return r,
        };
        let rx = match prescribe::read_prescription(&d.resource) {
            Ok(r) => r,
            Err(e) => return refusal(&e),
        };
        let Some(entry) = formulary.entry(&rx.medicine) else {
            return layout::refusal_page(409, "The prescription's medicine is no longer in the formulary: prescribe another.", "medicines");
        };
        let fc = FormCx {
            patient: &p,
            entry,
            kind: rx.kind,
            action: format!("/ui/prescriptions/{}/change", enc(&id)),
            change_of: Some(&id),
        };
        let body = html! {
            (layout::back_link(&format!("/ui/prescriptions/{}", enc(&id)), "Back to the prescription"))
            (banner(cx, &p))
            h2 { "Change a prescription" }
            p { "The current prescription is stopped and the changed one signed in its place." }
            (prescription_form(cx, &fc, &form_of(cx, &rx), None, &[]))
        };
        layout::page(cx, "Change a prescription", Nav::Patients, body)
    })
    .await
}

pub(crate) async fn change_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        if !may_prescribe(cx) {
            return forbidden_to_prescribe();
        }
        let d = match prescribe::detail(&cx.svc, cx.access(), &id, cx.svc.now()) {
            Ok(d) => d,
            Err(e) => return refusal(&e),
        };
        let p = match patient_or_404(cx, &d.patient) {
            Ok(p) => p,
            Err(r) => return r,
        };
        submit(cx, &p, &f, Some(&id))
    })
    .await
}
