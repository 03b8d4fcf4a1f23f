//! The patient's clinical alerts (issue 20): `/ui/patients/{id}/alerts`
//! lists and records allergies (verify, refute, entered in error, "no
//! known allergies"), the CP-IS flag, end-of-life preferences and Mental
//! Health Act detentions (regrade, renew, end) with their open reminders.
//! Every rule is `wardline_workflow::alerts`'; the banner strip every
//! patient page shows is [`strip`], drawn by `crate::chart::banner`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use maud::{Markup, html};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use wardline_workflow::alerts::allergies::{self, Change, NewAllergy, Substance};
use wardline_workflow::alerts::flags::{self, Cpis, EndOfLife, NewCpis, PlanType, RESUSCITATION};
use wardline_workflow::alerts::mha::{self, NewDetention, Section};
use wardline_workflow::alerts::{AlertsError, Banner, FlagKind};
use wardline_workflow::pmi::PatientSummary;

use crate::forms::Form;
use crate::layout::{self, Field, Nav};
use crate::{Cx, Req, St, enc, see_other};

fn v<'a>(f: &'a Form, k: &str) -> &'a str {
    f.get(k).map(|s| s.trim()).unwrap_or("")
}

fn opt(f: &Form, k: &str) -> Option<String> {
    Some(v(f, k).to_owned()).filter(|s| !s.is_empty())
}

/// "11 h 20 min", "45 min", "3 days 4 h".
fn left_text(ms: i64) -> String {
    let m = ms / 60_000;
    match m {
        m if m < 60 => format!("{m} min"),
        m if m < 48 * 60 => format!("{} h {} min", m / 60, m % 60),
        m => format!("{} days {} h", m / (24 * 60), (m / 60) % 24),
    }
}

/// The alerts strip of the patient banner (drawn by `chart::banner` on
/// every patient page).
pub(crate) fn strip(p: &PatientSummary) -> Markup {
    let Some(b) = &p.alerts else {
        return html! {};
    };
    let now = b.as_of_ms;
    html! {
        div class="wl-banner-alerts" data-testid="banner-alerts" aria-label="Clinical alerts" {
            (allergy_tag(b))
            @for c in &b.cpis {
                a class="nhsuk-tag nhsuk-tag--red" data-testid="banner-cpis" data-plan=(c.plan_code)
                    href={ "/ui/patients/" (enc(&p.id)) "/alerts#cpis" } {
                    "CP-IS: " (c.plan)
                    @if let Some(e) = &c.end { @if e.as_str() < &wardline_fhir::datetime::format_instant(now)[..10] { " (plan ended " (layout::long_date(e)) ")" } }
                    " – " (c.la_name) " " (c.la_phone)
                }
                " "
            }
            @if let Some(e) = &b.end_of_life {
                a class={ "nhsuk-tag " @if e.dnacpr { "nhsuk-tag--purple" } @else { "nhsuk-tag--blue" } } data-testid="banner-eol"
                    data-dnacpr=(e.dnacpr) href={ "/ui/patients/" (enc(&p.id)) "/alerts#end-of-life" } {
                    @if e.dnacpr { "DNACPR" } @else { "End of life: " (e.resuscitation) }
                    @if e.respect { " · ReSPECT" }
                    @if e.lpa { " · LPA health and welfare" }
                }
                " "
            }
            @for m in &b.mha {
                @let left = m.expiry_ms - now;
                a class={ "nhsuk-tag " @if left <= 0 { "nhsuk-tag--red" } @else { "nhsuk-tag--orange" } } data-testid="banner-mha"
                    data-section=(m.section) data-expiry=(wardline_fhir::datetime::format_instant(m.expiry_ms))
                    href={ "/ui/patients/" (enc(&p.id)) "/alerts#mha" } {
                    "MHA " (m.section) ": "
                    @if left <= 0 { "EXPIRED " (m.expiry_local) } @else { "expires " (m.expiry_local) " (in " (left_text(left)) ")" }
                }
                " "
            }
            @for t in &b.escalations {
                strong class="nhsuk-tag nhsuk-tag--red" data-testid="banner-news2" { "NEWS2: " (t) }
                " "
            }
            @for o in &b.other {
                strong class="nhsuk-tag nhsuk-tag--yellow" data-testid="banner-flag" { (o) }
                " "
            }
            @if b.flags_hidden {
                strong class="nhsuk-tag nhsuk-tag--grey" data-testid="banner-flags-hidden" { "Some alerts are hidden from you" }
            }
            " " a class="nhsuk-body-s" href={ "/ui/patients/" (enc(&p.id)) "/alerts" } data-testid="banner-alerts-link" { "Alerts and allergies" }
        }
    }
}

fn allergy_tag(b: &Banner) -> Markup {
    html! {
        @if b.allergies > 0 {
            strong class={ "nhsuk-tag " @if b.worst_criticality.as_deref() == Some("high") { "nhsuk-tag--red" } @else { "nhsuk-tag--orange" } }
                data-testid="banner-allergies" data-count=(b.allergies) data-criticality=[b.worst_criticality.as_deref()] {
                (b.allergies) @if b.allergies == 1 { " allergy" } @else { " allergies" }
                @if let Some(c) = &b.worst_criticality { " · " (c.replace('-', " ")) " criticality" }
                @if b.unconfirmed > 0 { " · " (b.unconfirmed) " unconfirmed" }
            }
        } @else if b.allergies_hidden {
            strong class="nhsuk-tag nhsuk-tag--grey" data-testid="banner-allergies" data-count="hidden" { "Allergies hidden from you" }
        } @else if b.no_known_allergies {
            strong class="nhsuk-tag nhsuk-tag--green" data-testid="banner-allergies" data-count="0" { "No known allergies" }
        } @else {
            strong class="nhsuk-tag nhsuk-tag--grey" data-testid="banner-allergies" data-count="unknown" { "Allergies not recorded" }
        }
        " "
    }
}

// ------------------------------------------------------------------ page

/// Which form failed, with what was typed and the error.
struct Failed<'a> {
    form: &'static str,
    values: &'a Form,
    field: String,
    message: String,
}

fn failed_value<'a>(fail: Option<&'a Failed>, form: &str, k: &str) -> &'a str {
    fail.filter(|x| x.form == form)
        .map(|x| v(x.values, k))
        .unwrap_or("")
}

fn failed_error<'a>(fail: Option<&'a Failed>, form: &str, k: &str) -> Option<&'a str> {
    fail.filter(|x| x.form == form && x.field == k)
        .map(|x| x.message.as_str())
}

fn done_message(d: &str) -> Option<&'static str> {
    Some(match d {
        "allergy" => "Allergy recorded",
        "nka" => "No known allergies recorded",
        "verified" => "Allergy verified",
        "refuted" => "Allergy refuted",
        "error" => "Allergy marked as entered in error",
        "cpis" => "CP-IS flag recorded",
        "eol" => "End-of-life preferences recorded",
        "mha" => "Detention recorded",
        "regraded" => "Detention regraded",
        "renewed" => "Detention renewed",
        "ended" => "Alert ended",
        _ => return None,
    })
}

fn page(cx: &Cx, id: &str, done: Option<&str>, fail: Option<&Failed>) -> Response {
    let p = match crate::patients::patient_or_404(cx, id) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let stay = wardline_workflow::adt::current_stay(&cx.svc, cx.access(), &p.id)
        .ok()
        .flatten();
    let all = allergies::of_patient(&cx.svc, cx.access(), &p.id);
    let detentions = mha::of_patient(&cx.svc, cx.access(), &p.id);
    let reminders = mha::open_reminders(&cx.svc, cx.access(), &p.id).unwrap_or_default();
    let alert_flags = cx
        .svc
        .search_as(
            cx.access(),
            "Flag",
            &[("patient", p.id.clone()), ("_count", "200".to_owned())],
        )
        .map(|f| f.resources)
        .unwrap_or_default();
    let cpis: Vec<Cpis> = alert_flags.iter().filter_map(Cpis::of).collect();
    let eol = alert_flags
        .iter()
        .filter_map(EndOfLife::of)
        .find(|(_, active, _)| *active);
    let base = format!("/ui/patients/{}/alerts", enc(&p.id));
    let ward_default = stay
        .as_ref()
        .and_then(|s| s.ward_id.as_ref().map(|w| format!("Location/{w}")))
        .unwrap_or_default();
    let body = html! {
        @if let Some(m) = done.and_then(done_message) { (layout::success(m)) }
        @if let Some(x) = fail {
            (layout::error_summary(&[(x.field.clone(), x.message.clone())]))
        }
        (crate::chart::banner(&p, stay.as_ref()))
        h2 class="nhsuk-heading-l" { "Alerts and allergies" }

        h3 class="nhsuk-heading-m" id="allergies" { "Allergies and adverse reactions" }
        @match &all {
            Err(e) => p class="nhsuk-body" data-testid="allergies-refused" { (e.message()) }
            Ok(list) if list.is_empty() => p class="nhsuk-body" data-testid="allergies-none" { "Nothing recorded: ask the patient and record their allergies, or that they have none." }
            Ok(list) => {
                table class="nhsuk-table" data-testid="allergy-list" {
                    thead class="nhsuk-table__head" { tr { th { "Substance" } th { "Reaction" } th { "Status" } th { "Actions" } } }
                    tbody class="nhsuk-table__body" {
                        @for a in list {
                            tr class="nhsuk-table__row" data-testid="allergy-row" data-allergy=(a.id) data-verification=(a.verification) data-in-force=(a.in_force) {
                                td class="nhsuk-table__cell" {
                                    strong { (a.substance) }
                                    @if a.free_text { " " strong class="nhsuk-tag nhsuk-tag--grey" data-testid="free-text" { "Free text" } }
                                    @if let Some(c) = &a.coded { br; span class="nhsuk-body-s" { (c) } }
                                }
                                td class="nhsuk-table__cell" {
                                    (a.reaction.clone().unwrap_or_default())
                                    @if let Some(s) = &a.severity { " (" (s) ")" }
                                    @if let Some(c) = &a.criticality { br; span class="nhsuk-body-s" { "Criticality: " (c) } }
                                }
                                td class="nhsuk-table__cell" {
                                    (a.verification.replace('-', " "))
                                    @if let Some(c) = &a.clinical { " · " (c) }
                                    @for n in &a.notes { br; span class="nhsuk-body-s" { (n) } }
                                }
                                td class="nhsuk-table__cell" {
                                    @if a.verification == "unconfirmed" && !a.no_known {
                                        (layout::action_button(cx, &format!("/ui/allergies/{}/verify", enc(&a.id)), "Verify", "nhsuk-button--secondary"))
                                    }
                                    @if a.in_force {
                                        @let rid = format!("reason-{}", a.id);
                                        form method="post" action={ "/ui/allergies/" (enc(&a.id)) "/refute" } novalidate {
                                            (layout::csrf(cx))
                                            input type="hidden" name="allergy" value=(a.id);
                                            (layout::input(&Field { error: failed_error(fail, "refute", &rid), ..Field::new(&rid, "Reason it is refuted") }))
                                            button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" { "Refute" }
                                        }
                                    }
                                    @if a.verification != "entered-in-error" {
                                        (layout::action_button(cx, &format!("/ui/allergies/{}/entered-in-error", enc(&a.id)), "Entered in error", "nhsuk-button--warning"))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        form method="post" action={ (base) "/allergies" } novalidate data-testid="allergy-form" {
            (layout::csrf(cx))
            h4 class="nhsuk-heading-s" { "Record an allergy" }
            (layout::input(&Field { value: failed_value(fail, "allergy", "substance"), error: failed_error(fail, "allergy", "substance"), hint: Some("A medicine by its name codes it from the formulary (dm+d); anything else is kept as free text"), ..Field::new("substance", "Substance") }))
            (layout::input(&Field { value: failed_value(fail, "allergy", "snomed"), error: failed_error(fail, "allergy", "snomed"), hint: Some("Optional: the SNOMED CT concept id of the substance"), width: "nhsuk-input--width-10", ..Field::new("snomed", "SNOMED CT code") }))
            (layout::radios("kind", "Type", &[("allergy", "Allergy"), ("intolerance", "Intolerance")], "allergy", failed_error(fail, "allergy", "kind")))
            (layout::input(&Field { value: failed_value(fail, "allergy", "reaction"), ..Field::new("reaction", "Reaction") }))
            (layout::select("severity", "Severity", &[("".into(), "Not recorded".into()), ("mild".into(), "Mild".into()), ("moderate".into(), "Moderate".into()), ("severe".into(), "Severe".into())], failed_value(fail, "allergy", "severity"), failed_error(fail, "allergy", "severity")))
            (layout::select("criticality", "Criticality", &[("".into(), "Not recorded".into()), ("low".into(), "Low".into()), ("high".into(), "High".into()), ("unable-to-assess".into(), "Unable to assess".into())], failed_value(fail, "allergy", "criticality"), failed_error(fail, "allergy", "criticality")))
            div class="nhsuk-checkboxes__item" {
                input class="nhsuk-checkboxes__input" id="confirmed" name="confirmed" type="checkbox" value="yes";
                label class="nhsuk-label nhsuk-checkboxes__label" for="confirmed" { "Confirmed (I have verified it)" }
            }
            button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="record-allergy" { "Record allergy" }
        }
        (layout::action_button(cx, &format!("{base}/nka"), "Record no known allergies", "nhsuk-button--secondary"))

        h3 class="nhsuk-heading-m" id="cpis" { "Child protection (CP-IS)" }
        @for c in &cpis {
            div class={ "nhsuk-card " @if c.active { "nhsuk-card--care nhsuk-card--care--urgent" } } data-testid="cpis-card" data-flag=(c.flag) data-active=(c.active) {
                div class="nhsuk-card__content" {
                    h4 class="nhsuk-card__heading" { (c.plan) @if !c.active { " (ended)" } }
                    p { "From " (c.start.as_deref().map(layout::long_date).unwrap_or_default())
                        @if let Some(e) = &c.end { " to " (layout::long_date(e)) } }
                    p { "Local authority: " (c.la_name) " (ODS " (c.la_ods) "), " (c.la_phone)
                        @if let Some(o) = &c.out_of_hours_phone { "; out of hours " (o) } }
                    @if c.active {
                        (layout::action_button(cx, &format!("/ui/alerts/{}/end", enc(&c.flag)), "End this flag", "nhsuk-button--secondary"))
                    }
                }
            }
        }
        form method="post" action={ (base) "/cpis" } novalidate data-testid="cpis-form" {
            (layout::csrf(cx))
            h4 class="nhsuk-heading-s" { "Record a CP-IS flag" }
            (layout::select("plan_type", "Plan type", &std::iter::once(("".to_owned(), "Choose".to_owned())).chain(PlanType::ALL.iter().map(|p| (p.code().to_owned(), p.label().to_owned()))).collect::<Vec<_>>(), failed_value(fail, "cpis", "plan_type"), failed_error(fail, "cpis", "plan_type")))
            (layout::input(&Field { kind: "date", value: failed_value(fail, "cpis", "start"), error: failed_error(fail, "cpis", "start"), ..Field::new("start", "Plan start date") }))
            (layout::input(&Field { kind: "date", value: failed_value(fail, "cpis", "end"), error: failed_error(fail, "cpis", "end"), ..Field::new("end", "Plan end date (if known)") }))
            (layout::input(&Field { value: failed_value(fail, "cpis", "la_name"), error: failed_error(fail, "cpis", "la_name"), ..Field::new("la_name", "Responsible local authority") }))
            (layout::input(&Field { value: failed_value(fail, "cpis", "la_ods"), error: failed_error(fail, "cpis", "la_ods"), width: "nhsuk-input--width-10", ..Field::new("la_ods", "Local authority ODS code") }))
            (layout::input(&Field { kind: "tel", value: failed_value(fail, "cpis", "la_phone"), error: failed_error(fail, "cpis", "la_phone"), width: "nhsuk-input--width-20", ..Field::new("la_phone", "Contact number") }))
            (layout::input(&Field { kind: "tel", value: failed_value(fail, "cpis", "ooh_phone"), width: "nhsuk-input--width-20", ..Field::new("ooh_phone", "Out-of-hours number") }))
            button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="record-cpis" { "Record CP-IS flag" }
        }

        h3 class="nhsuk-heading-m" id="end-of-life" { "End-of-life preferences" }
        @if let Some((flag, _, e)) = &eol {
            dl class="nhsuk-summary-list" data-testid="eol-summary" {
                div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Resuscitation" } dd class="nhsuk-summary-list__value" data-testid="eol-resuscitation" { (e.resuscitation_label())
                    @if let Some(d) = &e.decision_date { ", decided " (layout::long_date(d)) }
                    @if let Some(b) = &e.decided_by { " by " (b) } } }
                div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "ReSPECT form" } dd class="nhsuk-summary-list__value" { @if e.respect { "Completed" } @else { "None recorded" } } }
                div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Preferred place of care" } dd class="nhsuk-summary-list__value" { (e.preferred_place_of_care.clone().unwrap_or_else(|| "Not recorded".into())) } }
                div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Preferred place of death" } dd class="nhsuk-summary-list__value" { (e.preferred_place_of_death.clone().unwrap_or_else(|| "Not recorded".into())) } }
                div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Lasting power of attorney (health and welfare)" } dd class="nhsuk-summary-list__value" {
                    @match (&e.lpa_name, &e.lpa_contact) { (Some(n), c) => { (n) @if let Some(c) = c { ", " (c) } } _ => { "None recorded" } } } }
            }
            (layout::action_button(cx, &format!("/ui/alerts/{}/end", enc(flag)), "End these preferences", "nhsuk-button--secondary"))
        }
        form method="post" action={ (base) "/eol" } novalidate data-testid="eol-form" {
            (layout::csrf(cx))
            h4 class="nhsuk-heading-s" { "Record end-of-life preferences" }
            (layout::select("resuscitation", "Resuscitation decision", &RESUSCITATION.iter().map(|(c, l)| ((*c).to_owned(), (*l).to_owned())).collect::<Vec<_>>(), { let s = failed_value(fail, "eol", "resuscitation"); if s.is_empty() { "not-recorded" } else { s } }, failed_error(fail, "eol", "resuscitation")))
            (layout::input(&Field { kind: "date", value: failed_value(fail, "eol", "decision_date"), error: failed_error(fail, "eol", "decision_date"), ..Field::new("decision_date", "Date of the decision") }))
            (layout::input(&Field { value: failed_value(fail, "eol", "decided_by"), error: failed_error(fail, "eol", "decided_by"), ..Field::new("decided_by", "Decided by (name and role)") }))
            div class="nhsuk-checkboxes__item" {
                input class="nhsuk-checkboxes__input" id="respect" name="respect" type="checkbox" value="yes";
                label class="nhsuk-label nhsuk-checkboxes__label" for="respect" { "A ReSPECT form is completed" }
            }
            (layout::input(&Field { value: failed_value(fail, "eol", "place_of_care"), ..Field::new("place_of_care", "Preferred place of care") }))
            (layout::input(&Field { value: failed_value(fail, "eol", "place_of_death"), ..Field::new("place_of_death", "Preferred place of death") }))
            (layout::input(&Field { value: failed_value(fail, "eol", "lpa_name"), ..Field::new("lpa_name", "Attorney (lasting power of attorney for health and welfare)") }))
            (layout::input(&Field { value: failed_value(fail, "eol", "lpa_contact"), error: failed_error(fail, "eol", "lpa_contact"), ..Field::new("lpa_contact", "Attorney's contact") }))
            button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="record-eol" { "Record preferences" }
        }

        h3 class="nhsuk-heading-m" id="mha" { "Mental Health Act" }
        @if !reminders.is_empty() {
            div class="nhsuk-warning-callout" data-testid="mha-reminders" {
                h4 class="nhsuk-warning-callout__label" { span role="text" { span class="nhsuk-u-visually-hidden" { "Important: " } "Reminders" } }
                ul { @for t in &reminders {
                    li data-testid="mha-reminder" data-task=(t["id"].as_str().unwrap_or_default()) data-priority=(t["priority"].as_str().unwrap_or_default()) { (t["description"].as_str().unwrap_or_default()) }
                } }
            }
        }
        @match &detentions {
            Err(e) => p class="nhsuk-body" { (e.message()) }
            Ok(ds) => {
                @for d in ds {
                    div class="nhsuk-card" data-testid="mha-card" data-flag=(d.flag) data-section=(d.section.code()) data-active=(d.active)
                        data-expiry=(wardline_fhir::datetime::format_instant(d.expiry_ms)) {
                        div class="nhsuk-card__content" {
                            h4 class="nhsuk-card__heading" { (d.section.label()) ": " (d.section.what()) @if !d.active { " (ended)" } }
                            p { "From " (layout::long_date(&wardline_fhir::datetime::format_instant(d.start_ms)))
                                " · legal expiry " strong data-testid="mha-expiry" { (mha::local_text(d.expiry_ms, &mha::zone_of(cx.svc.time_zone()))) }
                                @if d.renewals > 0 { " · renewed " (d.renewals) " time(s)" } }
                            @if d.active {
                                form method="post" action={ "/ui/alerts/" (enc(&d.flag)) "/regrade" } novalidate {
                                    (layout::csrf(cx))
                                    (layout::select("section", "Regrade to", &Section::ALL.iter().filter(|s| mha::regrade(d.section, **s).is_some()).map(|s| (s.code().to_owned(), s.label())).collect::<Vec<_>>(), "", failed_error(fail, "regrade", "section")))
                                    button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" { "Regrade" }
                                }
                                @if d.section == Section::S3 {
                                    (layout::action_button(cx, &format!("/ui/alerts/{}/renew", enc(&d.flag)), "Renew", "nhsuk-button--secondary"))
                                }
                                (layout::action_button(cx, &format!("/ui/alerts/{}/end", enc(&d.flag)), "Discharge from the section", "nhsuk-button--secondary"))
                            }
                        }
                    }
                }
            }
        }
        form method="post" action={ (base) "/mha" } novalidate data-testid="mha-form" {
            (layout::csrf(cx))
            h4 class="nhsuk-heading-s" { "Record a detention" }
            (layout::select("section", "Section", &std::iter::once(("".to_owned(), "Choose".to_owned())).chain(Section::ALL.iter().map(|s| (s.code().to_owned(), format!("{} – {}", s.label(), s.what())))).collect::<Vec<_>>(), failed_value(fail, "mha", "section"), failed_error(fail, "mha", "section")))
            (layout::input(&Field { kind: "datetime-local", value: failed_value(fail, "mha", "start"), error: failed_error(fail, "mha", "start"), hint: Some("When the report was furnished, the patient admitted or arrived; leave empty for now"), ..Field::new("start", "Start") }))
            (layout::input(&Field { value: { let s = failed_value(fail, "mha", "ward"); if s.is_empty() { &ward_default } else { s } }, error: failed_error(fail, "mha", "ward"), hint: Some("Location/… of the ward whose team gets the reminders"), ..Field::new("ward", "Ward") }))
            (layout::input(&Field { value: failed_value(fail, "mha", "clinician"), hint: Some("Optional: Practitioner/… of the responsible clinician (the reminders go to them)"), ..Field::new("clinician", "Responsible clinician") }))
            button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="record-mha" { "Record detention" }
        }
    };
    layout::page(
        cx,
        &format!("Alerts – {}", p.display_name),
        Nav::Patients,
        body,
    )
}

/// `GET /ui/patients/{id}/alerts`.
async fn alerts_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        page(cx, &id, q.get("done").map(String::as_str), None)
    })
    .await
}

/// The page again with the error against its field, or the refusal page.
fn answer(
    cx: &Cx,
    id: &str,
    form: &'static str,
    f: &Form,
    r: Result<&str, AlertsError>,
) -> Response {
    match r {
        Ok(done) => see_other(&format!("/ui/patients/{}/alerts?done={done}", enc(id))),
        Err(e @ (AlertsError::Invalid(..) | AlertsError::Conflict(_))) => {
            let field = match e.field() {
                Some("reason") if form == "refute" => format!("reason-{}", v(f, "allergy")),
                other => other
                    .filter(|f| !f.is_empty())
                    .unwrap_or(match form {
                        "allergy" => "substance",
                        "cpis" => "plan_type",
                        "eol" => "resuscitation",
                        "refute" => "reason",
                        _ => "section",
                    })
                    .to_owned(),
            };
            let fail = Failed {
                form,
                values: f,
                field,
                message: e.message(),
            };
            let mut r = page(cx, id, None, Some(&fail));
            *r.status_mut() = axum::http::StatusCode::from_u16(e.status())
                .unwrap_or(axum::http::StatusCode::BAD_REQUEST);
            r
        }
        Err(e) => layout::refusal_page(e.status(), &e.message(), "alert"),
    }
}

/// `POST /ui/patients/{id}/alerts/allergies`.
async fn allergy_post(State(ui): St, req: Req, Path(id): Path<String>, body: Bytes) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let formulary = wardline_workflow::medicines::formulary::load_shared(&cx.svc);
        let substance = match &formulary {
            Ok(fm) => Substance::from_input(fm, v(&f, "substance"), v(&f, "snomed")),
            Err(_) => {
                Substance::from_input(&Default::default(), v(&f, "substance"), v(&f, "snomed"))
            }
        };
        let a = NewAllergy {
            substance,
            kind: v(&f, "kind").to_owned(),
            reaction: opt(&f, "reaction"),
            severity: opt(&f, "severity"),
            criticality: opt(&f, "criticality"),
            confirmed: v(&f, "confirmed") == "yes",
        };
        let r = allergies::record(&cx.svc, cx.access(), &id, &a, cx.svc.now()).map(|_| "allergy");
        answer(cx, &id, "allergy", &f, r)
    })
    .await
}

/// `POST /ui/patients/{id}/alerts/nka`.
async fn nka_post(State(ui): St, req: Req, Path(id): Path<String>, body: Bytes) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let r =
            allergies::no_known_allergies(&cx.svc, cx.access(), &id, cx.svc.now()).map(|_| "nka");
        answer(cx, &id, "allergy", &f, r)
    })
    .await
}

/// The patient a record is about (`patient` or `subject`), as the caller
/// may read it.
fn patient_of(cx: &Cx, resource_type: &str, id: &str) -> Option<String> {
    let r = cx
        .svc
        .read_as(cx.access(), resource_type, id)
        .ok()
        .flatten()?;
    let p = r["patient"]["reference"]
        .as_str()
        .or_else(|| r["subject"]["reference"].as_str())?;
    p.strip_prefix("Patient/").map(str::to_owned)
}

/// `POST /ui/allergies/{id}/{action}` (`verify`, `refute`,
/// `entered-in-error`).
async fn allergy_change_post(
    State(ui): St,
    req: Req,
    Path((allergy, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let Some(id) = patient_of(cx, "AllergyIntolerance", &allergy) else {
            return layout::refusal_page(404, "There is no such allergy record.", "alert");
        };
        let (c, done) = match action.as_str() {
            "verify" => (Change::Verify, "verified"),
            "refute" => (Change::Refute(v(&f, "reason").to_owned()), "refuted"),
            "entered-in-error" => (Change::EnteredInError(opt(&f, "reason")), "error"),
            _ => {
                return layout::refusal_page(
                    404,
                    "There is no such action on an allergy.",
                    "alert",
                );
            }
        };
        let c = match c {
            // The reason's field is named after the allergy (one form a row).
            Change::Refute(_) => Change::Refute(v(&f, &format!("reason-{allergy}")).to_owned()),
            other => other,
        };
        let r = allergies::change(&cx.svc, cx.access(), &allergy, &c, cx.svc.now()).map(|_| done);
        answer(cx, &id, "refute", &f, r)
    })
    .await
}

/// `POST /ui/patients/{id}/alerts/cpis`.
async fn cpis_post(State(ui): St, req: Req, Path(id): Path<String>, body: Bytes) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let c = NewCpis {
            plan_type: v(&f, "plan_type").to_owned(),
            start: v(&f, "start").to_owned(),
            end: opt(&f, "end"),
            la_ods: v(&f, "la_ods").to_owned(),
            la_name: v(&f, "la_name").to_owned(),
            la_phone: v(&f, "la_phone").to_owned(),
            out_of_hours_phone: opt(&f, "ooh_phone"),
        };
        let r = flags::record_cpis(&cx.svc, cx.access(), &id, &c).map(|_| "cpis");
        answer(cx, &id, "cpis", &f, r)
    })
    .await
}

/// `POST /ui/patients/{id}/alerts/eol`.
async fn eol_post(State(ui): St, req: Req, Path(id): Path<String>, body: Bytes) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let e = EndOfLife {
            preferred_place_of_care: opt(&f, "place_of_care"),
            preferred_place_of_death: opt(&f, "place_of_death"),
            resuscitation: v(&f, "resuscitation").to_owned(),
            respect: v(&f, "respect") == "yes",
            decision_date: opt(&f, "decision_date"),
            decided_by: opt(&f, "decided_by"),
            lpa_name: opt(&f, "lpa_name"),
            lpa_contact: opt(&f, "lpa_contact"),
        };
        let r =
            flags::record_end_of_life(&cx.svc, cx.access(), &id, &e, cx.svc.now()).map(|_| "eol");
        answer(cx, &id, "eol", &f, r)
    })
    .await
}

/// A `datetime-local` value (`2026-03-02T10:00`) on the trust's wall clock,
/// or an RFC 3339 instant; empty is now.
fn start_of(cx: &Cx, s: &str) -> Result<OffsetDateTime, AlertsError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(cx.svc.now());
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    let padded = if s.len() == 16 {
        format!("{s}:00")
    } else {
        s.to_owned()
    };
    wardline_fhir::datetime::parse_range_in(&padded, cx.svc.time_zone())
        .and_then(|(ms, _)| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
        })
        .ok_or_else(|| AlertsError::Invalid("start", "Enter the start as a date and time.".into()))
}

/// `POST /ui/patients/{id}/alerts/mha`.
async fn mha_post(State(ui): St, req: Req, Path(id): Path<String>, body: Bytes) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let r = (|| {
            let section = Section::parse(v(&f, "section")).ok_or_else(|| {
                AlertsError::Invalid(
                    "section",
                    "Choose the section of the Mental Health Act.".into(),
                )
            })?;
            let d = NewDetention {
                section,
                start: start_of(cx, v(&f, "start"))?,
                responsible_clinician: opt(&f, "clinician"),
                ward: opt(&f, "ward"),
            };
            mha::record(&cx.svc, cx.access(), &id, &d, cx.svc.now()).map(|_| "mha")
        })();
        answer(cx, &id, "mha", &f, r)
    })
    .await
}

/// `POST /ui/alerts/{flag}/{action}`: `regrade` or `renew` a detention;
/// `end` a CP-IS flag, end-of-life preferences or a detention.
async fn flag_change_post(
    State(ui): St,
    req: Req,
    Path((flag, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let found = cx.svc.read_as(cx.access(), "Flag", &flag).ok().flatten();
        let (Some(id), Some(kind)) = (
            patient_of(cx, "Flag", &flag),
            found.as_ref().and_then(FlagKind::of),
        ) else {
            return layout::refusal_page(404, "There is no such alert.", "alert");
        };
        let r = match (action.as_str(), kind) {
            ("regrade", FlagKind::Mha) => match Section::parse(v(&f, "section")) {
                Some(to) => {
                    mha::regrade_to(&cx.svc, cx.access(), &flag, to, cx.svc.now(), cx.svc.now())
                        .map(|_| "regraded")
                }
                None => Err(AlertsError::Invalid(
                    "section",
                    "Choose the section to regrade to.".into(),
                )),
            },
            ("renew", FlagKind::Mha) => {
                mha::renew(&cx.svc, cx.access(), &flag, cx.svc.now()).map(|_| "renewed")
            }
            ("end", FlagKind::Mha) => {
                mha::end(&cx.svc, cx.access(), &flag, false, cx.svc.now()).map(|_| "ended")
            }
            ("end", k) => {
                flags::end(&cx.svc, cx.access(), k, &flag, false, cx.svc.now()).map(|_| "ended")
            }
            _ => {
                return layout::refusal_page(
                    404,
                    "There is no such action on this alert.",
                    "alert",
                );
            }
        };
        answer(cx, &id, "regrade", &f, r)
    })
    .await
}

/// The alerts pages' routes (listed in `crate::ROUTES`).
pub(crate) fn routes() -> axum::Router<crate::Ui> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/patients/{id}/alerts", get(alerts_page))
        .route("/patients/{id}/alerts/allergies", post(allergy_post))
        .route("/patients/{id}/alerts/nka", post(nka_post))
        .route("/patients/{id}/alerts/cpis", post(cpis_post))
        .route("/patients/{id}/alerts/eol", post(eol_post))
        .route("/patients/{id}/alerts/mha", post(mha_post))
        .route("/allergies/{id}/{action}", post(allergy_change_post))
        .route("/alerts/{flag}/{action}", post(flag_change_post))
}
