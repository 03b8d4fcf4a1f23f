//! The drug round and the medication administration record.
//!
//! * `/ui/drug-round` — the signed-in nurse's ward's round (their
//!   position's first ward);
//! * `/ui/wards/{ward}/drug-round` — every patient in the ward's beds with
//!   what is due, overdue (a late time-critical dose marked), given and not
//!   given, from 12 hours before now to 4 hours ahead, and the ward's
//!   escalated late doses;
//! * `/ui/patients/{id}/mar` — the patient's record: each prescription's
//!   doses by day and time, given or not given, by whom and when;
//! * `/ui/patients/{id}/mar/{request}/dose` — give or omit one dose: the
//!   give form (dose, route, site, batch, witness for a controlled drug; for
//!   an as-required medicine its interval, maximum and what is left) and
//!   the omit form (reason, note). A refusal (too soon, over the maximum,
//!   no witness, already recorded) is shown on the form in words.
//!
//! The witness of a controlled drug signs on the same form: username,
//! password and authenticator code, checked by the directory like a sign-in
//! (audited; failures count towards the lockout). Their access is then
//! built from their own position, and the workflow decides whether they may
//! witness. Rules are `wardline_workflow::medicines::mar`'s.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use time::{Duration, OffsetDateTime};
use wardline_auth::policy::Policy;
use wardline_auth::rbac::Activity;
use wardline_workflow::medicines::MedicinesError;
use wardline_workflow::medicines::mar::round::{
    Dose, DoseState, Prescription, Recorded, RoundPatient,
};
use wardline_workflow::medicines::mar::{
    self, Give, OMISSION_REASONS, Omit, drug_round, patient_mar,
};

use crate::layout::{self, Nav};
use crate::{Cx, Form, Req, St, enc, see_other};

fn mar_error(e: &MedicinesError) -> Response {
    layout::refusal_page(e.status(), &e.message(), "medicines")
}

fn state_tag(d: &Dose) -> Markup {
    let class = match d.state {
        DoseState::Given => "nhsuk-tag--green",
        DoseState::NotGiven => "nhsuk-tag--orange",
        DoseState::Due => "nhsuk-tag--blue",
        DoseState::Overdue => "nhsuk-tag--red",
        DoseState::NotYetDue | DoseState::NotDue => "nhsuk-tag--grey",
    };
    html! {
        strong class={ "nhsuk-tag " (class) } data-testid="dose-state" data-state=(d.state.code()) {
            (d.state.label())
            @if d.late_critical { " – late time-critical" }
        }
    }
}

fn flags(p: &Prescription) -> Markup {
    html! {
        @if p.time_critical { " " strong class="nhsuk-tag nhsuk-tag--purple" data-testid="time-critical" { "Time-critical" } }
        @if let Some(s) = &p.controlled_drug { " " strong class="nhsuk-tag nhsuk-tag--yellow" data-testid="controlled-drug" { "CD schedule " (s) } }
        @if p.high_risk { " " strong class="nhsuk-tag nhsuk-tag--orange" { "High risk" } }
        @if p.status == "on-hold" { " " strong class="nhsuk-tag nhsuk-tag--grey" data-testid="on-hold" { "On hold – not due" } }
        @else if p.status != "active" { " " strong class="nhsuk-tag nhsuk-tag--grey" { "Ended (" (p.status) ")" } }
    }
}

fn record_text(r: &Recorded) -> Markup {
    html! {
        span class="nhsuk-body-s" data-testid="record" {
            @if r.given {
                "Given " (r.at) " by " (r.by)
                @if let Some(d) = &r.dose { " – " (d) }
                @if let Some(w) = &r.witness { " (witness " (w) ")" }
            } @else {
                "Not given: " (r.reason.as_ref().map(|x| x.1.as_str()).unwrap_or("")) " – " (r.by) " " (r.at)
            }
            @if let Some(n) = &r.note { br; (n) }
        }
    }
}

fn dose_href(patient: &str, request: &str, instant: Option<&str>, back: &str) -> String {
    let mut s = format!(
        "/ui/patients/{}/mar/{}/dose?back={}",
        enc(patient),
        enc(request),
        enc(back)
    );
    if let Some(i) = instant {
        s.push_str(&format!("&slot={}", enc(i)));
    }
    s
}

fn round_patient(p: &RoundPatient, back: &str) -> Markup {
    html! {
        section class="nhsuk-card" data-testid="round-patient" data-patient=(p.id) {
            div class="nhsuk-card__content" {
                h2 class="nhsuk-card__heading nhsuk-heading-m" {
                    (p.bed) ": " a href={ "/ui/patients/" (enc(&p.id)) "/mar" } data-testid="mar-link" { (p.name) }
                    @if let Some(n) = &p.nhs_number { span class="nhsuk-body-s" { " NHS " (n) } }
                }
                p class="nhsuk-body-s" data-testid="round-counts" {
                    (p.due) " due, " (p.overdue) " overdue"
                    @if p.late_critical > 0 { ", " strong class="nhsuk-tag nhsuk-tag--red" { (p.late_critical) " late time-critical" } }
                }
                @if p.prescriptions.is_empty() {
                    p { "No active prescriptions." }
                } @else {
                    table class="nhsuk-table" {
                        caption class="nhsuk-table__caption nhsuk-u-visually-hidden" { "Prescriptions of " (p.name) }
                        thead class="nhsuk-table__head" { tr {
                            th scope="col" { "Medicine" } th scope="col" { "Dose" } th scope="col" { "Doses" }
                        } }
                        tbody class="nhsuk-table__body" {
                            @for rx in &p.prescriptions {
                                tr class="nhsuk-table__row" data-testid="round-rx" data-request=(rx.id) data-medicine=(rx.medicine) {
                                    td class="nhsuk-table__cell" { strong { (rx.medicine) } br; span class="nhsuk-body-s" { (rx.kind.label()) } (flags(rx)) }
                                    td class="nhsuk-table__cell" { (rx.dose) @if let Some(i) = &rx.instructions { br; span class="nhsuk-body-s" { (i) } } }
                                    td class="nhsuk-table__cell" {
                                        @if let Some(prn) = &rx.prn {
                                            span class="nhsuk-body-s" data-testid="prn-status" {
                                                "Last: " (prn.last.as_deref().unwrap_or("none recorded"))
                                                @if let Some(r) = prn.remaining { " · " (mar::amount_text(r)) " " (prn.unit) " left of 24-hour maximum" }
                                                @if !prn.may_give_now { br; "Next from " (prn.next.as_deref().unwrap_or("—")) }
                                            }
                                            @if rx.status == "active" {
                                                br;
                                                a href=(dose_href(&p.id, &rx.id, None, back)) data-testid="give-prn" { "Give " (rx.medicine) }
                                            }
                                        }
                                        ul class="nhsuk-list" {
                                            @for d in &rx.doses {
                                                li data-testid="dose" data-slot=(d.slot_id) data-state=(d.state.code()) {
                                                    strong { (d.slot.time) } " "
                                                    @if !d.slot.day.is_empty() { span class="nhsuk-body-s" { (d.slot.day) " " } }
                                                    (state_tag(d))
                                                    @if d.escalated { " " strong class="nhsuk-tag nhsuk-tag--red" { "Escalated" } }
                                                    @if let Some(r) = &d.record { " " (record_text(r)) }
                                                    @if matches!(d.state, DoseState::Due | DoseState::Overdue) {
                                                        " " a href=(dose_href(&p.id, &rx.id, Some(&d.instant), back)) data-testid="record-dose" {
                                                            "Give or omit" span class="nhsuk-u-visually-hidden" { " " (rx.medicine) " at " (d.slot.time) }
                                                        }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /ui/drug-round`: the signed-in person's ward's round.
pub(crate) async fn my_round_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, _| {
        let ward = cx.principal.position.as_ref().and_then(|p| p.locations.first().cloned());
        match ward {
            Some(w) => see_other(&format!("/ui/wards/{}/drug-round", enc(&w))),
            None => layout::error_page(
                StatusCode::NOT_FOUND,
                "No ward",
                "Your position is not on a ward. Open a ward's drug round from its bed board address, /ui/wards/{ward}/drug-round.",
            ),
        }
    })
    .await
}

/// `GET /ui/wards/{ward}/drug-round`.
pub(crate) async fn round_page(State(ui): St, req: Req, Path(ward): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        let now = cx.svc.now();
        match drug_round(&cx.svc, cx.access(), &ward, now, Duration::hours(12), Duration::hours(4)) {
            Ok(r) => {
                let back = format!("/ui/wards/{}/drug-round", enc(&ward));
                let body = html! {
                    @match q.get("done").map(String::as_str) {
                        Some("given") => (layout::success("Dose recorded as given.")),
                        Some("omitted") => (layout::success("Dose recorded as not given.")),
                        _ => {}
                    }
                    span class="nhsuk-caption-l" { (r.site) }
                    h1 { "Drug round: " (r.ward) }
                    p data-testid="round-window" { "Now " (r.now) ". Doses from " (r.from) " to " (r.to) "." }
                    @if !r.escalations.is_empty() {
                        div class="nhsuk-warning-callout" data-testid="escalations" {
                            h2 class="nhsuk-warning-callout__label" { span role="text" { span class="nhsuk-u-visually-hidden" { "Important: " } "Late time-critical doses" } }
                            ul { @for (_, t) in &r.escalations { li { (t) } } }
                        }
                    }
                    @if r.patients.is_empty() { p data-testid="round-empty" { "No patients in this ward's beds." } }
                    @for p in &r.patients { (round_patient(p, &back)) }
                    @if r.withheld > 0 { p { (r.withheld) " occupied beds not shown: your access does not cover them." } }
                };
                layout::page(cx, &format!("Drug round: {}", r.ward), Nav::Beds, body)
            }
            Err(e) => mar_error(&e),
        }
    })
    .await
}

/// `GET /ui/patients/{id}/mar`.
pub(crate) async fn mar_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        let now = cx.svc.now();
        match patient_mar(&cx.svc, cx.access(), &id, now, 2) {
            Ok(m) => {
                let back = format!("/ui/patients/{}/mar", enc(&id));
                let body = html! {
                    (layout::back_link(&format!("/ui/patients/{}", enc(&id)), "Back to the chart"))
                    @match q.get("done").map(String::as_str) {
                        Some("given") => (layout::success("Dose recorded as given.")),
                        Some("omitted") => (layout::success("Dose recorded as not given.")),
                        _ => {}
                    }
                    (crate::chart::patient_banner(cx, &id))
                    h1 { "Medication administration record" }
                    p { "Now " (m.now) "." }
                    @if m.prescriptions.is_empty() { p data-testid="mar-empty" { "No prescriptions." } }
                    @else {
                        table class="nhsuk-table" data-testid="mar" {
                            caption class="nhsuk-table__caption" { "Doses by day" }
                            thead class="nhsuk-table__head" { tr {
                                th scope="col" { "Medicine" }
                                @for d in &m.days { th scope="col" { (layout::long_date(d)) } }
                            } }
                            tbody class="nhsuk-table__body" {
                                @for rx in &m.prescriptions {
                                    tr class="nhsuk-table__row" data-testid="mar-rx" data-request=(rx.id) {
                                        th scope="row" class="nhsuk-table__cell" {
                                            (rx.medicine) br; span class="nhsuk-body-s" { (rx.dose) " · " (rx.kind.label()) } (flags(rx))
                                            @if rx.prn.is_some() && rx.status == "active" {
                                                br; a href=(dose_href(&id, &rx.id, None, &back)) { "Give a dose" }
                                            }
                                        }
                                        @for day in &m.days {
                                            td class="nhsuk-table__cell" {
                                                ul class="nhsuk-list" {
                                                    @for d in rx.doses.iter().filter(|d| &d.slot.day == day) {
                                                        li data-testid="mar-dose" data-slot=(d.slot_id) data-state=(d.state.code()) {
                                                            strong { (d.slot.time) } " " (state_tag(d))
                                                            @if let Some(r) = &d.record { br; (record_text(r)) }
                                                            @if matches!(d.state, DoseState::Due | DoseState::Overdue) {
                                                                br; a href=(dose_href(&id, &rx.id, Some(&d.instant), &back)) { "Give or omit" }
                                                            }
                                                        }
                                                    }
                                                    @if let Some(prn) = &rx.prn {
                                                        @for r in prn.recent.iter().filter(|r| r.at.starts_with(day.as_str())) {
                                                            li { (record_text(r)) }
                                                        }
                                                    }
                                                    @for r in rx.other.iter().filter(|r| r.at.starts_with(day.as_str())) {
                                                        li { (record_text(r)) }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    @if m.withheld > 0 { p { (m.withheld) " prescriptions not shown: your access does not cover them." } }
                };
                layout::page(cx, "Medication administration record", Nav::Patients, body)
            }
            Err(e) => mar_error(&e),
        }
    })
    .await
}

/// Where to go back to: a page of the UI, else the patient's MAR.
fn back_of(f: &Form, patient: &str) -> String {
    f.get("back")
        .filter(|b| b.starts_with("/ui/") && !b.contains("//") && !b.contains(['\r', '\n']))
        .cloned()
        .unwrap_or_else(|| format!("/ui/patients/{}/mar", enc(patient)))
}

fn slot_of_form(f: &Form) -> Result<Option<OffsetDateTime>, String> {
    match f.get("slot").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map(Some)
            .map_err(|_| format!("'{s}' is not a dose time")),
    }
}

type Errors = Vec<(String, String)>;

fn dose_form(
    cx: &Cx,
    patient: &str,
    rx: &Prescription,
    dose: Option<&Dose>,
    f: &Form,
    errors: &Errors,
) -> Markup {
    let back = back_of(f, patient);
    let err = |k: &str| errors.iter().find(|(f, _)| f == k).map(|(_, m)| m.as_str());
    let val = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    let slot = dose.map(|d| d.instant.clone()).unwrap_or_default();
    let reasons: Vec<(String, String)> =
        std::iter::once((String::new(), "Choose a reason".to_owned()))
            .chain(
                OMISSION_REASONS
                    .iter()
                    .map(|(c, d)| ((*c).to_owned(), (*d).to_owned())),
            )
            .collect();
    let default_dose = rx.prescribed.map(mar::amount_text).unwrap_or_default();
    let dose_value = if f.contains_key("dose") {
        val("dose").to_owned()
    } else {
        default_dose
    };
    html! {
        (layout::back_link(&back, "Back"))
        span class="nhsuk-caption-l" { (rx.kind.label()) }
        h1 data-testid="dose-medicine" { (rx.medicine) }
        (layout::error_summary(errors))
        dl class="nhsuk-summary-list" {
            div class="nhsuk-summary-list__row" {
                dt class="nhsuk-summary-list__key" { "Prescribed" }
                dd class="nhsuk-summary-list__value" { (rx.dose) (flags(rx)) @if let Some(i) = &rx.instructions { br; (i) } }
            }
            @if let Some(d) = dose {
                div class="nhsuk-summary-list__row" {
                    dt class="nhsuk-summary-list__key" { "Dose time" }
                    dd class="nhsuk-summary-list__value" data-testid="dose-time" { (d.slot.day) " " (d.slot.time) " " (state_tag(d)) }
                }
            }
            @if let Some(prn) = &rx.prn {
                div class="nhsuk-summary-list__row" {
                    dt class="nhsuk-summary-list__key" { "As required" }
                    dd class="nhsuk-summary-list__value" data-testid="prn-limits" {
                        @if let Some(i) = &prn.interval { "At least " (i) " between doses. " }
                        @if let Some(m) = prn.max_24h { "At most " (mar::amount_text(m)) " " (prn.unit) " in 24 hours. " }
                        br;
                        "Last dose: " (prn.last.as_deref().unwrap_or("none recorded")) ". "
                        (mar::amount_text(prn.given_24h)) " " (prn.unit) " in the last 24 hours"
                        @if let Some(r) = prn.remaining { "; " (mar::amount_text(r)) " " (prn.unit) " left" } "."
                        br;
                        @if prn.may_give_now { strong { "May be given now." } }
                        @else { strong data-testid="prn-next" { "Next dose from " (prn.next.as_deref().unwrap_or("— (over the maximum)")) "." } }
                    }
                }
            }
        }
        h2 { "Give" }
        form method="post" action={ "/ui/patients/" (enc(patient)) "/mar/" (enc(&rx.id)) "/give" } novalidate data-testid="give-form" {
            (layout::csrf(cx))
            input type="hidden" name="slot" value=(slot);
            input type="hidden" name="back" value=(back);
            (layout::input(&layout::Field { value: &dose_value, error: err("dose"), width: "nhsuk-input--width-5",
                hint: Some(if rx.range.is_some() { "Within the prescribed range." } else { "The prescribed dose." }),
                ..layout::Field::new("dose", &format!("Dose ({})", rx.unit)) }))
            (layout::input(&layout::Field { value: val("route"), hint: Some("Leave blank for the prescribed route."), ..layout::Field::new("route", "Route") }))
            (layout::input(&layout::Field { value: val("site"), ..layout::Field::new("site", "Site (injections, patches)") }))
            (layout::input(&layout::Field { value: val("batch"), width: "nhsuk-input--width-10", ..layout::Field::new("batch", "Batch number (where relevant)") }))
            @if rx.needs_witness {
                fieldset class="nhsuk-fieldset" data-testid="witness" {
                    legend class="nhsuk-fieldset__legend nhsuk-fieldset__legend--s" { "Witness (controlled drug)" }
                    div class="nhsuk-hint" { "A second member of staff who may give medicines signs here with their own sign-in." }
                    (layout::input(&layout::Field { value: val("witness_username"), error: err("witness_username"), autocomplete: "off", ..layout::Field::new("witness_username", "Witness username") }))
                    (layout::input(&layout::Field { kind: "password", error: err("witness_password"), autocomplete: "off", ..layout::Field::new("witness_password", "Witness password") }))
                    (layout::input(&layout::Field { error: err("witness_code"), width: "nhsuk-input--width-5", autocomplete: "one-time-code", ..layout::Field::new("witness_code", "Witness authenticator code") }))
                }
            }
            (layout::input(&layout::Field { value: val("note"), ..layout::Field::new("note", "Comment (optional)") }))
            button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="give" { "Record as given" }
        }
        @if dose.is_some() {
            h2 { "Not given" }
            form method="post" action={ "/ui/patients/" (enc(patient)) "/mar/" (enc(&rx.id)) "/omit" } novalidate data-testid="omit-form" {
                (layout::csrf(cx))
                input type="hidden" name="slot" value=(slot);
                input type="hidden" name="back" value=(back);
                (layout::select("reason", "Reason", &reasons, val("reason"), err("reason")))
                (layout::input(&layout::Field { value: val("omit_note"), error: err("omit_note"), hint: Some("Needed for Other."), ..layout::Field::new("omit_note", "Note") }))
                button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" data-testid="omit" { "Record as not given" }
            }
        }
    }
}

/// The prescription and (for a scheduled dose) its slot, as the chart shows them.
fn find(
    cx: &Cx,
    patient: &str,
    request: &str,
    slot: Option<OffsetDateTime>,
) -> Result<(Prescription, Option<Dose>), Response> {
    let now = cx.svc.now();
    // Two days back: a late dose from yesterday evening is still on the form.
    let m = patient_mar(&cx.svc, cx.access(), patient, now, 2).map_err(|e| mar_error(&e))?;
    let rx = m
        .prescriptions
        .into_iter()
        .find(|p| p.id == request)
        .ok_or_else(|| {
            mar_error(&MedicinesError::NotFound(format!(
                "There is no prescription {request} on this patient's chart."
            )))
        })?;
    let dose = match slot {
        Some(s) => Some(
            rx.doses
                .iter()
                .find(|d| d.slot.at == s)
                .cloned()
                .ok_or_else(|| {
                    mar_error(&MedicinesError::Invalid(
                        "That is not one of this prescription's dose times.".into(),
                    ))
                })?,
        ),
        None => None,
    };
    Ok((rx, dose))
}

fn form_page(
    cx: &Cx,
    patient: &str,
    request: &str,
    f: &Form,
    errors: &Errors,
    status: StatusCode,
) -> Response {
    let slot = match slot_of_form(f) {
        Ok(s) => s,
        Err(m) => return mar_error(&MedicinesError::Invalid(m)),
    };
    match find(cx, patient, request, slot) {
        Ok((rx, dose)) => layout::page_with(
            status,
            cx,
            &rx.medicine.clone(),
            Nav::Patients,
            dose_form(cx, patient, &rx, dose.as_ref(), f, errors),
        ),
        Err(r) => r,
    }
}

/// `GET /ui/patients/{id}/mar/{request}/dose?slot=…`.
pub(crate) async fn dose_page(
    State(ui): St,
    req: Req,
    Path((id, request)): Path<(String, String)>,
) -> Response {
    ui.run(req, None, move |cx, q| {
        form_page(cx, &id, &request, &q, &Vec::new(), StatusCode::OK)
    })
    .await
}

/// The witness's access: their sign-in checked by the directory, then their
/// own position that may give medicines (else their first), as the policy
/// sees them.
fn witness_access(cx: &Cx, f: &Form) -> Result<Option<Policy>, Errors> {
    let user = f.get("witness_username").map(|s| s.trim()).unwrap_or("");
    let password = f.get("witness_password").map(String::as_str).unwrap_or("");
    let code = f.get("witness_code").map(|s| s.trim()).unwrap_or("");
    if user.is_empty() && password.is_empty() && code.is_empty() {
        return Ok(None);
    }
    let mut errors = Vec::new();
    if user.is_empty() {
        errors.push((
            "witness_username".to_owned(),
            "Enter the witness's username".to_owned(),
        ));
    }
    if password.is_empty() {
        errors.push((
            "witness_password".to_owned(),
            "Enter the witness's password".to_owned(),
        ));
    }
    if code.is_empty() {
        errors.push((
            "witness_code".to_owned(),
            "Enter the witness's authenticator code".to_owned(),
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let bad = |m: &str| vec![("witness_username".to_owned(), m.to_owned())];
    let acc = cx
        .dir
        .login(user, password, code, cx.principal.agent.address.as_deref())
        .map_err(|_| {
            bad("The witness's sign-in was not accepted: check the username, password and code")
        })?;
    let positions = cx
        .dir
        .positions(&acc.username)
        .map_err(|_| bad("The witness's positions could not be read"))?;
    let position = positions
        .iter()
        .filter(|p| p.active)
        .find(|p| p.role.has(Activity::AdministerMedication))
        .or_else(|| positions.iter().find(|p| p.active))
        .ok_or_else(|| bad("The witness holds no position"))?;
    let now = wardline_fhir::datetime::now_ms() / 1000;
    let claims = wardline_auth::token::Claims {
        iss: "wardline".into(),
        sub: acc.username.clone(),
        fhir_user: None,
        position: Some(position.id.clone()),
        scope: wardline_auth_server::SESSION_SCOPE.into(),
        patient: None,
        client_id: None,
        sid: None,
        iat: now,
        exp: now + 300,
        jti: String::new(),
    };
    let principal = cx
        .dir
        .principal(&claims, cx.principal.agent.address.as_deref())
        .map_err(|_| bad("The witness's position could not be used"))?;
    Ok(Some(Policy::new(principal, cx.dir.clone())))
}

/// Which field a workflow's sentence is about.
fn field_of(m: &str) -> &'static str {
    if m.contains("witness") || m.contains("controlled drug") || m.contains("second person") {
        "witness_username"
    } else {
        "dose"
    }
}

/// `POST /ui/patients/{id}/mar/{request}/give`.
pub(crate) async fn give_post(
    State(ui): St,
    req: Req,
    Path((id, request)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let slot = match slot_of_form(&f) {
            Ok(s) => s,
            Err(m) => return mar_error(&MedicinesError::Invalid(m)),
        };
        let dose_text = f.get("dose").map(|s| s.trim()).unwrap_or("");
        let dose = if dose_text.is_empty() {
            None
        } else {
            match dose_text.parse::<f64>() {
                Ok(d) => Some(d),
                Err(_) => {
                    let errors = vec![(
                        "dose".to_owned(),
                        "Enter the dose as a number, like 1 or 0.5".to_owned(),
                    )];
                    return form_page(cx, &id, &request, &f, &errors, StatusCode::BAD_REQUEST);
                }
            }
        };
        let witness = match witness_access(cx, &f) {
            Ok(w) => w,
            Err(errors) => {
                return form_page(cx, &id, &request, &f, &errors, StatusCode::BAD_REQUEST);
            }
        };
        let text = |k: &str| {
            f.get(k)
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        let g = Give {
            request: request.clone(),
            slot,
            dose,
            route: text("route"),
            site: text("site"),
            batch: text("batch"),
            given_at: None,
            note: text("note"),
        };
        let w = witness.as_ref().map(|p| p as &dyn wardline_core::Access);
        match mar::give(&cx.svc, cx.access(), &g, w, cx.svc.now()) {
            Ok(_) => see_other(&with_done(&back_of(&f, &id), "given")),
            Err(
                e @ (MedicinesError::Invalid(_)
                | MedicinesError::Conflict(_)
                | MedicinesError::Forbidden(_)),
            ) => {
                let m = e.message();
                let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
                let errors = vec![(field_of(&m).to_owned(), m)];
                form_page(cx, &id, &request, &f, &errors, status)
            }
            Err(e) => mar_error(&e),
        }
    })
    .await
}

fn with_done(back: &str, done: &str) -> String {
    let sep = if back.contains('?') { '&' } else { '?' };
    format!("{back}{sep}done={done}")
}

/// `POST /ui/patients/{id}/mar/{request}/omit`.
pub(crate) async fn omit_post(
    State(ui): St,
    req: Req,
    Path((id, request)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let slot = match slot_of_form(&f) {
            Ok(Some(s)) => s,
            Ok(None) => {
                return mar_error(&MedicinesError::Invalid(
                    "Only a scheduled dose can be recorded as not given.".into(),
                ));
            }
            Err(m) => return mar_error(&MedicinesError::Invalid(m)),
        };
        let reason = f
            .get("reason")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        if reason.is_empty() {
            let errors = vec![(
                "reason".to_owned(),
                "Choose why the dose was not given".to_owned(),
            )];
            return form_page(cx, &id, &request, &f, &errors, StatusCode::BAD_REQUEST);
        }
        let o = Omit {
            request: request.clone(),
            slot,
            reason,
            note: f
                .get("omit_note")
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
        };
        match mar::omit(&cx.svc, cx.access(), &o, cx.svc.now()) {
            Ok(_) => see_other(&with_done(&back_of(&f, &id), "omitted")),
            Err(e @ (MedicinesError::Invalid(_) | MedicinesError::Conflict(_))) => {
                let m = e.message();
                let field = if m.contains("Say why") {
                    "omit_note"
                } else {
                    "reason"
                };
                let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
                form_page(cx, &id, &request, &f, &vec![(field.to_owned(), m)], status)
            }
            Err(e) => mar_error(&e),
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_links_stay_in_the_ui() {
        let mut f = Form::new();
        f.insert("back".into(), "https://evil.example/".into());
        assert_eq!(back_of(&f, "p1"), "/ui/patients/p1/mar");
        f.insert("back".into(), "/ui/wards/w1/drug-round".into());
        assert_eq!(back_of(&f, "p1"), "/ui/wards/w1/drug-round");
        assert_eq!(with_done("/ui/x", "given"), "/ui/x?done=given");
        assert_eq!(with_done("/ui/x?a=1", "given"), "/ui/x?a=1&done=given");
    }

    #[test]
    fn refusals_land_on_their_field() {
        assert_eq!(
            field_of("Morphine is a controlled drug"),
            "witness_username"
        );
        assert_eq!(field_of("Too soon: a dose was given at 10:00"), "dose");
    }

    #[test]
    fn kinds_have_labels() {
        use wardline_workflow::medicines::Kind;
        assert_eq!(Kind::AsRequired.label(), "As required");
    }
}
