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

/// The patient banner, the name as the page's heading (`h1`), with the
/// patient's clinical alerts (issue 20: `p.alerts`, filled by
/// `pmi::summary`).
pub(crate) fn banner(p: &PatientSummary, stay: Option<&adt::Stay>) -> Markup {
    banner_with(p, stay, true)
}

/// The banner for a page with a heading of its own (notes, letters,
/// referrals, pathways, …): read with the page's access (`pmi::summary`,
/// alerts included) and the current stay; nothing when the patient cannot
/// be read (the page answers for itself).
pub(crate) fn patient_banner(cx: &Cx, patient: &str) -> Markup {
    let id = patient.strip_prefix("Patient/").unwrap_or(patient);
    let Ok(Some(p)) = pmi::summary(&cx.svc, cx.access(), id) else {
        return html! {};
    };
    let stay = adt::current_stay(&cx.svc, cx.access(), id).ok().flatten();
    banner_with(&p, stay.as_ref(), false)
}

/// [`patient_banner`] for a patient already read (`pmi::summary`).
pub(crate) fn banner_of(cx: &Cx, p: &PatientSummary) -> Markup {
    let stay = adt::current_stay(&cx.svc, cx.access(), &p.id)
        .ok()
        .flatten();
    banner_with(p, stay.as_ref(), false)
}

fn banner_with(p: &PatientSummary, stay: Option<&adt::Stay>, heading: bool) -> Markup {
    html! {
        section class={ "wl-banner" @if !p.active { " wl-banner--retired" } } aria-label="Patient banner" data-testid="patient-banner" {
            @if heading { h1 class="nhsuk-heading-l" { (p.display_name) } }
            @else { p class="nhsuk-heading-l" data-testid="banner-name" { (p.display_name) } }
            dl {
                div class="wl-pair" { dt { "NHS number" } dd data-testid="banner-nhs" { (nhs(p)) } }
                div class="wl-pair" {
                    dt { "Born" }
                    dd {
                        (p.birth_date.as_deref().map(layout::long_date).unwrap_or_else(|| "Not known".into()))
                        @if let Some(a) = p.birth_date.as_deref().and_then(age) { " (" (a) " years)" }
                    }
                }
                div class="wl-pair" { dt { "Gender" } dd { (crate::patients::gender_label(p.gender.as_deref())) } }
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
            // Issue 20: the patient's clinical alerts, on every patient page.
            (crate::alerts::strip(p))
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
fn last_discharge(s: &chart::ChartSummary, now_ms: i64) -> Option<&chart::EncounterLine> {
    let since = wardline_fhir::datetime::format_instant(now_ms - 86_400_000);
    s.encounters
        .entries
        .iter()
        .find(|e| e.class_code == "IMP")
        .filter(|e| e.status == "finished")
        .filter(|e| e.end.as_deref().is_some_and(|end| end >= since.as_str()))
}

fn stay_panel(
    cx: &Cx,
    p: &PatientSummary,
    stay: Option<&adt::Stay>,
    summary: &chart::ChartSummary,
    now_ms: i64,
) -> Markup {
    let may_adt = cx.may(wardline_auth::rbac::Activity::Adt);
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
                    @if may_adt {
                        a class="nhsuk-button nhsuk-button--secondary" href={ "/ui/encounters/" (enc(&s.encounter_id)) "/transfer" } { "Transfer" }
                        a class="nhsuk-button" href={ "/ui/encounters/" (enc(&s.encounter_id)) "/discharge" } { "Discharge" }
                    }
                    a class="nhsuk-button nhsuk-button--secondary" href={ "/ui/encounters/" (enc(&s.encounter_id)) "/discharge-summary" } data-testid="discharge-summary" { "Discharge summary" }
                    a class="nhsuk-button nhsuk-button--secondary" href={ "/ui/encounters/" (enc(&s.encounter_id)) "/social-care" } data-testid="social-care" { "Social care notices" }
                    @let (what, label) = if s.movements.len() > 1 { ("transfer", "Cancel transfer") } else { ("admission", "Cancel admission") };
                    @if may_adt { form method="post" action={ "/ui/encounters/" (enc(&s.encounter_id)) "/cancel" } novalidate {
                        (layout::csrf(cx))
                        input type="hidden" name="what" value=(what);
                        button class="nhsuk-button nhsuk-button--warning" type="submit" { (label) }
                    } }
                }
            }
            None => {
                p { "Not currently admitted." }
                @if p.active && may_adt {
                    div class="wl-actions" {
                        a class="nhsuk-button" href={ "/ui/patients/" (enc(&p.id)) "/admit" } { "Admit" }
                        @if let Some(e) = last_discharge(summary, now_ms) {
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

/// One list of a section as its notices name it: how many it lists and
/// what it hid.
struct Part {
    /// Plural, lower case: "alerts", "encounters".
    many: &'static str,
    /// One entry: "alert", "encounter".
    one: &'static str,
    listed: usize,
    hidden: chart::Hidden,
}

fn part<T>(section: &chart::Section<T>, many: &'static str, one: &'static str) -> Part {
    Part {
        many,
        one,
        listed: section.entries.len(),
        hidden: section.hidden,
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// "a", "a and b", "a, b and c" (`last` = "and" or "or").
fn joined(words: &[&str], last: &str) -> String {
    match words {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., tail] => format!("{} {last} {tail}", init.join(", ")),
    }
}

/// What a section says about what it does not list, in place (H-050):
/// the lists the caller's position does not cover ("Alerts and allergies
/// are not shown to your position."), the entries withheld from them ("9
/// encounters are not shown to you."), and "No … recorded." — said of a
/// list only when it lists nothing and hid nothing.
fn notices(testid: &str, parts: &[Part]) -> Markup {
    let not_covered: Vec<&Part> = parts.iter().filter(|p| p.hidden.not_covered).collect();
    let uncovered_names: Vec<&str> = not_covered.iter().map(|p| p.many).collect();
    let some = not_covered.iter().any(|p| p.listed > 0);
    let clear: Vec<&str> = parts
        .iter()
        .filter(|p| p.listed == 0 && p.hidden.nothing())
        .map(|p| p.many)
        .collect();
    html! {
        @if !not_covered.is_empty() {
            div class="nhsuk-inset-text wl-hidden" data-testid={ (testid) "-not-covered" } {
                p {
                    @if some { "Some " (joined(&uncovered_names, "and")) } @else { (capitalised(&joined(&uncovered_names, "and"))) }
                    " are not shown to your position."
                }
            }
        }
        @for p in parts.iter().filter(|p| p.hidden.withheld > 0) {
            @let n = p.hidden.withheld;
            div class="nhsuk-inset-text wl-hidden" data-testid={ (testid) "-withheld" } {
                p {
                    @if p.hidden.at_least { "At least " }
                    (n) " " @if n == 1 { (p.one) " is" } @else { (p.many) " are" }
                    " not shown to you."
                }
            }
        }
        @if !clear.is_empty() {
            p data-testid={ (testid) "-none" } { "No " (joined(&clear, "or")) " recorded." }
        }
    }
}

/// A status as an NHS tag: current entries in blue, ended ones grey.
fn status_tag(text: &str, current: bool) -> Markup {
    html! {
        strong class={ "nhsuk-tag" @if !current { " nhsuk-tag--grey" } } { (text) }
    }
}

fn alerts_panel(s: &chart::ChartSummary) -> Markup {
    let alerts = part(&s.alerts, "alerts", "alert");
    let allergies = part(&s.allergies, "allergies", "allergy");
    html! {
        section aria-labelledby="alerts-heading" data-testid="alerts-section" {
            h2 id="alerts-heading" { "Alerts and allergies" }
            @if !(s.alerts.entries.is_empty() && s.allergies.entries.is_empty()) {
                ul class="nhsuk-list" data-testid="alerts" {
                    @for a in s.alerts.entries.iter().chain(&s.allergies.entries) {
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
            (notices("alerts", &[alerts, allergies]))
        }
    }
}

fn observations_panel(s: &chart::Section<chart::ObservationLine>) -> Markup {
    let list = part(s, "observations", "observation");
    html! {
        section aria-labelledby="observations-heading" data-testid="observations-section" {
            h2 id="observations-heading" { "Recent observations" }
            @if !s.entries.is_empty() {
                table class="nhsuk-table" data-testid="observations" {
                    thead class="nhsuk-table__head" { tr { th scope="col" { "Taken" } th scope="col" { "Observation" } th scope="col" { "Value" } } }
                    tbody class="nhsuk-table__body" {
                        @for o in &s.entries {
                            tr class={ "nhsuk-table__row" @if o.old { " wl-old" } } data-old=(o.old) {
                                td class="nhsuk-table__cell" {
                                    @match &o.when {
                                        Some(w) => { (layout::long_date(w)) }
                                        None => { "Date not recorded" }
                                    }
                                    @if let Some(a) = &o.age { br; span class="wl-age" data-testid="observation-age" { (a) } }
                                    @if o.old { br; strong class="nhsuk-tag nhsuk-tag--yellow" { "Not current" } }
                                }
                                td class="nhsuk-table__cell" { (o.name) }
                                td class="nhsuk-table__cell" data-testid="observation-value" { (o.value) }
                            }
                        }
                    }
                }
            }
            (notices("observations", &[list]))
        }
    }
}

fn problems_panel(s: &chart::Section<chart::ProblemLine>) -> Markup {
    let list = part(s, "problems", "problem");
    html! {
        section aria-labelledby="problems-heading" data-testid="problems-section" {
            h2 id="problems-heading" { "Problems" }
            @if !s.entries.is_empty() {
                table class="nhsuk-table" data-testid="problems" {
                    thead class="nhsuk-table__head" { tr { th scope="col" { "Problem" } th scope="col" { "Status" } th scope="col" { "Verification" } th scope="col" { "Onset" } } }
                    tbody class="nhsuk-table__body" {
                        @for p in &s.entries {
                            tr class={ "nhsuk-table__row" @if !p.current { " wl-ended" } } data-current=(p.current) {
                                td class="nhsuk-table__cell" { (p.text) }
                                td class="nhsuk-table__cell" {
                                    (status_tag(p.clinical_status.as_deref().unwrap_or("Status not recorded"), p.current))
                                    @if let Some(e) = &p.ended { br; "Ended " (layout::long_date(e)) }
                                }
                                td class="nhsuk-table__cell" { (p.verification.as_deref().unwrap_or("")) }
                                td class="nhsuk-table__cell" { (p.onset.as_deref().map(layout::long_date).unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
            @if s.more { p class="nhsuk-body-s" { "More than " (chart::CURRENT_MAX) " current problems are recorded; the first " (chart::CURRENT_MAX) " are listed." } }
            (notices("problems", &[list]))
        }
    }
}

fn medicines_panel(s: &chart::Section<chart::MedicineLine>) -> Markup {
    let list = part(s, "medicines", "medicine");
    html! {
        section aria-labelledby="medicines-heading" data-testid="medicines-section" {
            h2 id="medicines-heading" { "Medicines" }
            @if !s.entries.is_empty() {
                table class="nhsuk-table" data-testid="medicines" {
                    thead class="nhsuk-table__head" { tr { th scope="col" { "Medicine" } th scope="col" { "Dose" } th scope="col" { "Status" } th scope="col" { "Dates" } } }
                    tbody class="nhsuk-table__body" {
                        @for m in &s.entries {
                            tr class={ "nhsuk-table__row" @if !m.current { " wl-ended" } } data-current=(m.current) {
                                td class="nhsuk-table__cell" {
                                    (m.medication)
                                    br; span class="nhsuk-body-s" { @if m.kind == "MedicationStatement" { "Reported" } @else { "Prescribed" } }
                                }
                                td class="nhsuk-table__cell" { (m.dosage.as_deref().unwrap_or("")) }
                                td class="nhsuk-table__cell" { (status_tag(&m.status_text, m.current)) }
                                td class="nhsuk-table__cell" {
                                    @if let Some(f) = &m.start { "From " (layout::long_date(f)) }
                                    @if let Some(t) = &m.end { @if m.start.is_some() { br; } "To " (layout::long_date(t)) }
                                }
                            }
                        }
                    }
                }
            }
            @if s.more { p class="nhsuk-body-s" { "More than " (chart::CURRENT_MAX) " current medicines of one kind are recorded; the first " (chart::CURRENT_MAX) " are listed." } }
            (notices("medicines", &[list]))
        }
    }
}

fn results_panel(s: &chart::Section<chart::ResultLine>) -> Markup {
    let list = part(s, "results", "result");
    html! {
        section aria-labelledby="results-heading" data-testid="results-section" {
            h2 id="results-heading" { "Results" }
            @if !s.entries.is_empty() {
                table class="nhsuk-table" {
                    thead class="nhsuk-table__head" { tr { th scope="col" { "When" } th scope="col" { "Report" } th scope="col" { "Status" } th scope="col" { "Conclusion" } } }
                    tbody class="nhsuk-table__body" {
                        @for r in &s.entries {
                            tr class="nhsuk-table__row" {
                                td class="nhsuk-table__cell" {
                                    (r.when.as_deref().map(layout::long_date).unwrap_or_default())
                                    @if let Some(a) = &r.age { br; span class="wl-age" { (a) } }
                                }
                                td class="nhsuk-table__cell" { (r.name) }
                                td class="nhsuk-table__cell" { (r.status) }
                                td class="nhsuk-table__cell" { (r.conclusion.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
            (notices("results", &[list]))
        }
    }
}

fn encounters_panel(s: &chart::Section<chart::EncounterLine>) -> Markup {
    let list = part(s, "encounters", "encounter");
    html! {
        section aria-labelledby="encounters-heading" data-testid="encounters-section" {
            h2 id="encounters-heading" {
                "Encounters"
                @if let Some(t) = s.total { " " span class="nhsuk-caption-m nhsuk-u-display-inline" { "(" (t) " in all, newest first)" } }
            }
            @if !s.entries.is_empty() {
                table class="nhsuk-table" data-testid="encounters" {
                    thead class="nhsuk-table__head" { tr { th scope="col" { "Start" } th scope="col" { "End" } th scope="col" { "Type" } th scope="col" { "Status" } } }
                    tbody class="nhsuk-table__body" {
                        @for e in &s.entries {
                            tr class="nhsuk-table__row" {
                                td class="nhsuk-table__cell" { (e.start.as_deref().map(layout::long_date).unwrap_or_default()) }
                                td class="nhsuk-table__cell" { (e.end.as_deref().map(layout::long_date).unwrap_or_default()) }
                                td class="nhsuk-table__cell" { (e.class) @if let Some(k) = &e.kind { " – " (k) } }
                                td class="nhsuk-table__cell" {
                                    (chart::status_label(&e.status))
                                    @if e.class_code == "IMP" {
                                        br; a href={ "/ui/encounters/" (enc(&e.id)) "/discharge-summary" } data-testid="encounter-discharge-summary" { "Discharge summary" }
                                    }
                                    @if e.class_code == "AMB" {
                                        br; a href={ "/ui/encounters/" (enc(&e.id)) "/clinic-letter" } data-testid="encounter-clinic-letter" { "Clinic letter" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (notices("encounters", &[list]))
        }
    }
}

/// The chart's sections, each saying in place what it does not show.
/// Another section is one more panel function here.
fn summary_panels(s: &chart::ChartSummary) -> Markup {
    html! {
        div class="nhsuk-grid-row" {
            div class="nhsuk-grid-column-one-half" { (alerts_panel(s)) }
            div class="nhsuk-grid-column-one-half" { (observations_panel(&s.observations)) }
        }
        (problems_panel(&s.problems))
        (medicines_panel(&s.medicines))
        (results_panel(&s.results))
        (encounters_panel(&s.encounters))
        @if s.hides_anything() {
            div class="nhsuk-inset-text" data-testid="hidden-why" {
                p { "Entries not shown to you are held back because your position does not cover them, you have no care relationship with the patient, or the patient has not consented to sharing with your organisation." }
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
        // The one clock of the page: ages and "recent" are measured from it.
        let now = cx.svc.now_ms();
        let summary = match chart::summary(&cx.svc, cx.access(), &p.id, now) {
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
            (crate::access::chart_notice(cx, &p.id, summary.withheld()))
            (stay_panel(cx, &p, stay.as_ref(), &summary, now))
            p data-testid="drug-chart-link" { a href={ "/ui/patients/" (enc(&p.id)) "/medicines" } { "Drug chart" } ": prescriptions on the inpatient drug chart" }
            p data-testid="clinic-letters-link" { a href={ "/ui/patients/" (enc(&p.id)) "/clinic-letters" } { "Clinic letters" } ": letters to the GP and the patient after outpatient attendances" }
            p data-testid="notes-link" { a href={ "/ui/patients/" (enc(&p.id)) "/notes" } { "Clinical notes" } ": ward round and clinic notes, signed, with their versions" }
            p data-testid="results-link" { a href={ "/ui/patients/" (enc(&p.id)) "/results" } { "Results" } ": every result, as a table and trend charts" }
            p data-testid="observations-link" { a href={ "/ui/patients/" (enc(&p.id)) "/observations" } { "Observations and NEWS2" } ": vital signs, NEWS2 scores and escalations, charts with the NEWS2 bands" }
            // issue 18: referrals
            p data-testid="referrals-link" { a href={ "/ui/patients/" (enc(&p.id)) "/referrals" } { "Referrals" } ": e-Referrals to other providers, and their acceptance" }
            p data-testid="pathways-link" { a href={ "/ui/patients/" (enc(&p.id)) "/pathways" } { "Pathways and waiting lists" } ": referral to treatment clocks, waiting lists, a referral received" }
            // issue 20: forms
            p data-testid="forms-link" { a href={ "/ui/patients/" (enc(&p.id)) "/forms" } { "Forms" } ": assessments such as falls risk and VTE, completed and to complete" }
            (summary_panels(&summary))
            (crate::orders::section(cx, &p.id))
            (crate::consent::section(cx, &p.id))
        };
        layout::page(cx, &p.display_name, Nav::Patients, body)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    use wardline_workflow::chart::{ChartSummary, Hidden, ObservationLine, ProblemLine, Section};

    fn text(m: Markup) -> String {
        m.into_string()
    }

    #[test]
    fn a_list_the_position_does_not_cover_is_not_none_recorded() {
        // The ward clerk's chart: alerts and allergies not covered.
        let mut s = ChartSummary::default();
        s.alerts.hidden.not_covered = true;
        s.allergies.hidden.not_covered = true;
        let page = text(summary_panels(&s));
        assert!(
            page.contains("Alerts and allergies are not shown to your position."),
            "{page}"
        );
        assert!(!page.contains("No alerts"), "{page}");
        assert!(page.contains(r#"data-testid="hidden-why""#), "{page}");
        // Only allergies not covered (a social worker sees alerts).
        let mut s = ChartSummary::default();
        s.allergies.hidden.not_covered = true;
        let page = text(alerts_panel(&s));
        assert!(
            page.contains("Allergies are not shown to your position."),
            "{page}"
        );
        assert!(page.contains("No alerts recorded."), "{page}");
        assert!(!page.contains("or allergies recorded"), "{page}");
        // Nothing hidden, nothing listed: now, and only now, none recorded.
        let page = text(summary_panels(&ChartSummary::default()));
        assert!(page.contains("No alerts or allergies recorded."), "{page}");
        assert!(page.contains("No encounters recorded."), "{page}");
        assert!(page.contains("No problems recorded."), "{page}");
        assert!(page.contains("No medicines recorded."), "{page}");
        assert!(!page.contains("not shown"), "{page}");
    }

    #[test]
    fn withheld_entries_are_counted_in_place() {
        // The nurse after the discharge: every encounter withheld.
        let enc: Section<wardline_workflow::chart::EncounterLine> = Section {
            hidden: Hidden {
                withheld: 9,
                ..Hidden::default()
            },
            ..Section::default()
        };
        let page = text(encounters_panel(&enc));
        assert!(
            page.contains("9 encounters are not shown to you."),
            "{page}"
        );
        assert!(!page.contains("No encounters"), "{page}");
        // One withheld beside those shown, more beyond the page.
        let problems = Section {
            entries: vec![ProblemLine {
                text: "Asthma".into(),
                current: true,
                ..ProblemLine::default()
            }],
            hidden: Hidden {
                withheld: 1,
                at_least: true,
                ..Hidden::default()
            },
            ..Section::default()
        };
        let page = text(problems_panel(&problems));
        assert!(page.contains("Asthma"), "{page}");
        assert!(
            page.contains("At least 1 problem is not shown to you."),
            "{page}"
        );
        assert!(!page.contains("No problems"), "{page}");
    }

    #[test]
    fn old_observations_are_marked_with_their_age() {
        let obs = Section {
            entries: vec![
                ObservationLine {
                    name: "Body temperature".into(),
                    value: "37.8 °C".into(),
                    when: Some("2025-01-14T09:30:00Z".into()),
                    age: Some("1 year 10 months ago".into()),
                    old: true,
                    ..ObservationLine::default()
                },
                ObservationLine {
                    name: "Heart rate".into(),
                    value: "88 beats per minute".into(),
                    when: Some("2026-11-20T08:00:00Z".into()),
                    age: Some("2 hours ago".into()),
                    old: false,
                    ..ObservationLine::default()
                },
            ],
            ..Section::default()
        };
        let page = text(observations_panel(&obs));
        assert!(page.contains("14 January 2025 09:30"), "{page}");
        assert!(page.contains("1 year 10 months ago"), "{page}");
        assert!(page.contains("37.8 °C"), "{page}");
        assert_eq!(page.matches("Not current").count(), 1, "{page}");
        assert!(
            page.contains(r#"class="nhsuk-table__row wl-old" data-old="true""#),
            "{page}"
        );
        assert!(page.contains(r#"data-old="false""#), "{page}");
    }

    #[test]
    fn ages_are_whole_years() {
        assert_eq!(age("not a date"), None);
        let a = age("1950-01-01").unwrap();
        assert!((70..130).contains(&a), "{a}");
        assert_eq!(age("2999-01-01"), None);
    }
}
