//! The patient banner and chart summary, with the ADT actions for the
//! current stay and the record's possible duplicates.

use axum::extract::{Path, State};
use axum::response::Response;
use maud::{Markup, html};
use wardline_workflow::pmi::PatientSummary;
use wardline_workflow::{adt, chart, pmi};

use crate::layout::{self, Nav};
use crate::patients::nhs;
use crate::{Cx, Req, St, enc};

/// Whole years between a `YYYY-MM-DD` birth date and today.
fn age(birth: &str) -> Option<i64> {
    let today = wardline_fhir::datetime::format_instant(wardline_fhir::datetime::now_ms());
    let parse = |s: &str| -> Option<(i64, i64, i64)> {
        let mut it = s.get(..10)?.split('-');
        Some((
            it.next()?.parse().ok()?,
            it.next()?.parse().ok()?,
            it.next()?.parse().ok()?,
        ))
    };
    let (by, bm, bd) = parse(birth)?;
    let (ty, tm, td) = parse(&today)?;
    let mut years = ty - by;
    if (tm, td) < (bm, bd) {
        years -= 1;
    }
    (years >= 0).then_some(years)
}

pub(crate) fn banner(p: &PatientSummary, stay: Option<&adt::Stay>) -> Markup {
    html! {
        section class={ "wl-banner" @if !p.active { " wl-banner--retired" } } aria-label="Patient banner" data-testid="patient-banner" {
            h1 class="nhsuk-heading-l" { (p.display_name) }
            dl {
                div class="wl-pair" { dt { "NHS number" } dd data-testid="banner-nhs" { (nhs(p)) } }
                div class="wl-pair" {
                    dt { "Born" }
                    dd {
                        (p.birth_date.as_deref().map(layout::long_date).unwrap_or_else(|| "Not known".into()))
                        @if let Some(a) = p.birth_date.as_deref().and_then(age) { " (" (a) " years)" }
                    }
                }
                div class="wl-pair" { dt { "Gender" } dd { (p.gender.as_deref().unwrap_or("not recorded")) } }
                @if let Some(h) = &p.hospital_number { div class="wl-pair" { dt { "Hospital number" } dd { (h) } } }
                @if let Some(a) = &p.address { div class="wl-pair" { dt { "Address" } dd { (a) } } }
                div class="wl-pair" {
                    dt { "Location" }
                    dd data-testid="banner-location" {
                        @match stay {
                            Some(s) => {
                                (s.place()) @if s.bed.is_none() { " · no bed" }
                            }
                            None => { "Not admitted" }
                        }
                    }
                }
            }
        }
    }
}

fn done_message(code: &str) -> Option<&'static str> {
    Some(match code {
        "registered" => "Patient registered.",
        "admitted" => "Patient admitted.",
        "transferred" => "Patient transferred.",
        "discharged" => "Patient discharged.",
        "cancelled" => "The last event was cancelled.",
        "merged" => "Records merged. This is now the record to use.",
        "unmerged" => "The merge was undone.",
        "break-glass" => "Emergency access granted. It is recorded and will be reviewed.",
        "consent" => "Consent decision recorded.",
        "consent-withdrawn" => "Consent decision withdrawn.",
        _ => return None,
    })
}

/// The most recent inpatient stay, when it ended in the last day and there
/// is no current one: its discharge can be cancelled (recorded in error).
fn last_discharge(s: &chart::ChartSummary) -> Option<&chart::EncounterLine> {
    use wardline_fhir::datetime::{format_instant, now_ms};
    let since = format_instant(now_ms() - 86_400_000);
    s.encounters
        .iter()
        .find(|e| e.class == "Inpatient")
        .filter(|e| e.status == "finished")
        .filter(|e| e.end.as_deref().is_some_and(|end| end >= since.as_str()))
}

fn stay_panel(
    cx: &Cx,
    p: &PatientSummary,
    stay: Option<&adt::Stay>,
    summary: &chart::ChartSummary,
) -> Markup {
    html! {
        h2 { "Current stay" }
        @match stay {
            Some(s) => {
                dl class="nhsuk-summary-list" data-testid="current-stay" {
                    div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Bed" } dd class="nhsuk-summary-list__value" { (s.place()) } }
                    div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Admitted" } dd class="nhsuk-summary-list__value" { (layout::long_date(&s.admitted)) " (" (s.kind.label()) ")" } }
                    @if let Some(c) = &s.consultant { div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Consultant" } dd class="nhsuk-summary-list__value" { (c) } } }
                    @if let Some(sp) = &s.specialty { div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Specialty" } dd class="nhsuk-summary-list__value" { (sp) } } }
                    @if let Some(d) = &s.expected_discharge { div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Expected discharge" } dd class="nhsuk-summary-list__value" { (layout::long_date(d)) } } }
                }
                @if s.movements.len() > 1 {
                    h3 { "Moves during this stay" }
                    ol {
                        @for m in &s.movements {
                            li { (m.place()) ": " (layout::long_date(&m.from)) @if let Some(t) = &m.to { " to " (layout::long_date(t)) } }
                        }
                    }
                }
                div class="wl-actions" {
                    a class="nhsuk-button nhsuk-button--secondary" href={ "/ui/encounters/" (enc(&s.encounter_id)) "/transfer" } { "Transfer" }
                    a class="nhsuk-button" href={ "/ui/encounters/" (enc(&s.encounter_id)) "/discharge" } { "Discharge" }
                    @let (what, label) = if s.movements.len() > 1 { ("transfer", "Cancel transfer") } else { ("admission", "Cancel admission") };
                    form method="post" action={ "/ui/encounters/" (enc(&s.encounter_id)) "/cancel" } novalidate {
                        (layout::csrf(cx))
                        input type="hidden" name="what" value=(what);
                        button class="nhsuk-button nhsuk-button--warning" type="submit" { (label) }
                    }
                }
            }
            None => {
                p { "Not currently admitted." }
                @if p.active {
                    div class="wl-actions" {
                        a class="nhsuk-button" href={ "/ui/patients/" (enc(&p.id)) "/admit" } { "Admit" }
                        @if let Some(e) = last_discharge(summary) {
                            form method="post" action={ "/ui/encounters/" (enc(&e.id)) "/cancel" } novalidate {
                                (layout::csrf(cx))
                                input type="hidden" name="what" value="discharge";
                                button class="nhsuk-button nhsuk-button--secondary" type="submit" {
                                    "Cancel the discharge of " (e.end.as_deref().map(layout::long_date).unwrap_or_default())
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn summary_panels(s: &chart::ChartSummary) -> Markup {
    html! {
        div class="nhsuk-grid-row" {
            div class="nhsuk-grid-column-one-half" {
                h2 { "Alerts and allergies" }
                @if s.alerts.is_empty() && s.allergies.is_empty() {
                    p data-testid="no-alerts" { "No alerts or allergies recorded." }
                } @else {
                    ul class="nhsuk-list" data-testid="alerts" {
                        @for a in s.alerts.iter().chain(&s.allergies) {
                            li {
                                strong class={ "nhsuk-tag " @if a.kind == "Flag" { "nhsuk-tag--red" } @else { "nhsuk-tag--orange" } } {
                                    @if a.kind == "Flag" { "Alert" } @else { "Allergy" }
                                }
                                " " (a.text)
                                @if let Some(d) = &a.detail { " (" (d) ")" }
                            }
                        }
                    }
                }
            }
            div class="nhsuk-grid-column-one-half" {
                h2 { "Recent observations" }
                @if s.observations.is_empty() {
                    p { "None recorded." }
                } @else {
                    table class="nhsuk-table" {
                        thead class="nhsuk-table__head" { tr { th scope="col" { "When" } th scope="col" { "Observation" } th scope="col" { "Value" } } }
                        tbody class="nhsuk-table__body" {
                            @for o in &s.observations {
                                tr class="nhsuk-table__row" {
                                    td class="nhsuk-table__cell" { (o.when.as_deref().map(layout::long_date).unwrap_or_default()) }
                                    td class="nhsuk-table__cell" { (o.name) }
                                    td class="nhsuk-table__cell" { (o.value) }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Results" }
        @if s.results.is_empty() {
            p { "None recorded." }
        } @else {
            table class="nhsuk-table" {
                thead class="nhsuk-table__head" { tr { th scope="col" { "When" } th scope="col" { "Report" } th scope="col" { "Status" } th scope="col" { "Conclusion" } } }
                tbody class="nhsuk-table__body" {
                    @for r in &s.results {
                        tr class="nhsuk-table__row" {
                            td class="nhsuk-table__cell" { (r.when.as_deref().map(layout::long_date).unwrap_or_default()) }
                            td class="nhsuk-table__cell" { (r.name) }
                            td class="nhsuk-table__cell" { (r.status) }
                            td class="nhsuk-table__cell" { (r.conclusion.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
        h2 {
            "Encounters"
            @if let Some(t) = s.encounter_total { " " span class="nhsuk-caption-m nhsuk-u-display-inline" { "(" (t) " in all, newest first)" } }
        }
        @if s.encounters.is_empty() {
            p { "None recorded." }
        } @else {
            table class="nhsuk-table" data-testid="encounters" {
                thead class="nhsuk-table__head" { tr { th scope="col" { "Start" } th scope="col" { "End" } th scope="col" { "Type" } th scope="col" { "Status" } } }
                tbody class="nhsuk-table__body" {
                    @for e in &s.encounters {
                        tr class="nhsuk-table__row" {
                            td class="nhsuk-table__cell" { (e.start.as_deref().map(layout::long_date).unwrap_or_default()) }
                            td class="nhsuk-table__cell" { (e.end.as_deref().map(layout::long_date).unwrap_or_default()) }
                            td class="nhsuk-table__cell" { (e.class) @if let Some(k) = &e.kind { " – " (k) } }
                            td class="nhsuk-table__cell" { (e.status) }
                        }
                    }
                }
            }
        }
        @if !s.not_permitted.is_empty() {
            div class="nhsuk-inset-text" data-testid="not-permitted" {
                p { "Your position does not cover: " (s.not_permitted.join(", ")) "." }
            }
        }
        @if s.withheld > 0 {
            div class="nhsuk-inset-text" {
                p { (s.withheld) " entr" (if s.withheld == 1 { "y is" } else { "ies are" }) " not shown: the patient has not consented to sharing with your organisation, or your access does not cover them." }
            }
        }
    }
}

/// The possible duplicates of an active record, found live: a warning with
/// a link to review and merge each, or a line saying none were found. A
/// caller who may not search for them sees nothing.
fn duplicates_panel(cx: &Cx, p: &PatientSummary) -> Markup {
    if !p.active {
        return html! {};
    }
    let duplicates = match pmi::duplicates_of(&cx.svc, cx.access(), &p.id) {
        Ok(d) => d,
        Err(e) if e.status == 401 || e.status == 403 => return html! {},
        Err(e) => {
            // The chart is still worth showing; the failure is logged and said.
            tracing::warn!(error = %e, patient = %p.id, "duplicate check failed");
            return html! {
                p class="nhsuk-body-s" data-testid="duplicates-failed" {
                    "Wardline could not check whether this record has duplicates. Try again later."
                }
            };
        }
    };
    if duplicates.is_empty() {
        return html! {
            p class="nhsuk-body-s" data-testid="no-duplicates" { "No possible duplicate records found." }
        };
    }
    html! {
        div class="nhsuk-warning-callout" data-testid="chart-duplicates" {
            h2 class="nhsuk-warning-callout__label" { span role="text" { "Possible duplicate records" } }
            ul {
                @for c in &duplicates {
                    li {
                        a href={ "/ui/patients/" (enc(&c.patient.id)) } { (c.patient.display_name) } " – " (nhs(&c.patient))
                        " (match " (format!("{:.0}", c.score * 100.0)) "%: " (c.reasons.join(", ")) ") "
                        a href={ "/ui/merge?source=" (enc(&c.patient.id)) "&target=" (enc(&p.id)) } { "Review and merge into this record" }
                    }
                }
            }
        }
    }
}

pub(crate) async fn chart_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        let p = match crate::patients::patient_or_404(cx, &id) {
            Ok(p) => p,
            Err(r) => return r,
        };
        // The possible-duplicates check searches the whole index (about
        // 80 ms at a million patients), so it is not run inline: the page
        // carries a placeholder that the script fills from
        // `?fragment=duplicates`, and without the script a link reruns the
        // page with `?check=duplicates`, the check inline.
        match q.get("fragment").map(String::as_str) {
            Some("duplicates") => return layout::fragment(duplicates_panel(cx, &p)),
            Some(other) => {
                return layout::error_page(
                    axum::http::StatusCode::NOT_FOUND,
                    "Page not found",
                    &format!("There is no part of the chart called '{other}'."),
                );
            }
            None => {}
        }
        let inline_check = q.get("check").map(String::as_str) == Some("duplicates");
        let stay = match adt::current_stay(&cx.svc, cx.access(), &p.id) {
            Ok(s) => s,
            Err(e) => return crate::adt::adt_error(&e),
        };
        let summary = match chart::summary(&cx.svc, cx.access(), &p.id) {
            Ok(s) => s,
            Err(e) => return crate::fhir_error(&e),
        };
        let body = html! {
            @if let Some(m) = q.get("done").and_then(|d| done_message(d)) { (layout::success(m)) }
            (banner(&p, stay.as_ref()))
            @if let Some(t) = &p.replaced_by {
                div class="nhsuk-warning-callout" data-testid="merged-notice" {
                    h2 class="nhsuk-warning-callout__label" { span role="text" { span class="nhsuk-u-visually-hidden" { "Important: " } "This record was merged" } }
                    p { "This record is no longer used. " a href={ "/ui/patients/" (enc(t)) } { "Go to the record that replaced it" } "." }
                    (layout::action_button(cx, &format!("/ui/patients/{}/unmerge", enc(&p.id)), "Undo the merge", "nhsuk-button--secondary"))
                }
            }
            @if p.active {
                div data-fragment=[(!inline_check).then(|| format!("/ui/patients/{}?fragment=duplicates", enc(&p.id)))]
                    aria-live="polite" data-testid="duplicates" {
                    @if inline_check {
                        (duplicates_panel(cx, &p))
                    } @else {
                        p class="nhsuk-body-s" {
                            a href={ "/ui/patients/" (enc(&p.id)) "?check=duplicates" } { "Check for possible duplicate records" }
                        }
                    }
                }
            }
            (crate::access::chart_notice(cx, &p.id, summary.withheld))
            (stay_panel(cx, &p, stay.as_ref(), &summary))
            (summary_panels(&summary))
            (crate::consent::section(cx, &p.id))
        };
        layout::page(cx, &p.display_name, Nav::Patients, body)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_whole_years() {
        assert_eq!(age("not a date"), None);
        let a = age("1950-01-01").unwrap();
        assert!((70..130).contains(&a), "{a}");
        assert_eq!(age("2999-01-01"), None);
    }
}
