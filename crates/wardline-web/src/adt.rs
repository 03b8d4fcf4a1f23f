//! Admit, transfer, discharge and cancel: forms over `wardline_workflow::adt`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use wardline_workflow::adt::{self, Admission, AdmissionKind, AdtError, AdtErrorKind, Concern};
use wardline_workflow::pmi;

use crate::layout::{self, Field, Nav};
use crate::patients::patient_or_404;
use crate::{Cx, Form, Req, St, enc, see_other};

fn get<'a>(f: &'a Form, k: &str) -> &'a str {
    f.get(k).map(|s| s.trim()).unwrap_or_default()
}

/// A workflow refusal as a page: the rule that stopped it, in words.
pub(crate) fn adt_error(e: &AdtError) -> Response {
    layout::refusal_page(e.status(), &e.message, "ADT")
}

fn bed_options(cx: &Cx) -> Result<Vec<(String, String)>, AdtError> {
    let mut v = vec![(String::new(), "Choose a bed".to_owned())];
    v.extend(adt::available_beds(&cx.svc, cx.access(), None)?);
    Ok(v)
}

/// The placement concerns of the chosen bed, shown before the patient goes
/// there, with the reason to go ahead (the workflow refuses without one).
/// `bed` is the bed they were found for: a reason counts only for it.
fn placement_panel(concerns: &[Concern], bed: &str, reason: &str, error: Option<&str>) -> Markup {
    html! {
        @if !concerns.is_empty() {
            div class="nhsuk-warning-callout" data-testid="placement-concerns" {
                h3 class="nhsuk-warning-callout__label" {
                    span role="text" { span class="nhsuk-u-visually-hidden" { "Important: " } "Check before placing the patient" }
                }
                ul {
                    @for c in concerns { li { (c.message) } }
                }
                p { "Choose another bed, or say why the patient must go to this one. The reason is kept with the admission." }
            }
            input type="hidden" name="placement_bed" value=(bed);
            div class={ "nhsuk-form-group" @if error.is_some() { " nhsuk-form-group--error" } } {
                label class="nhsuk-label" for="placement_reason" { "Reason for placing the patient in this bed" }
                @if let Some(e) = error {
                    span class="nhsuk-error-message" id="placement_reason-error" {
                        span class="nhsuk-u-visually-hidden" { "Error: " } (e)
                    }
                }
                textarea class={ "nhsuk-textarea" @if error.is_some() { " nhsuk-textarea--error" } }
                    id="placement_reason" name="placement_reason" rows="3"
                    aria-describedby=[error.is_some().then_some("placement_reason-error")] { (reason) }
            }
        }
    }
}

/// The reason given on the form, when it was given for this bed.
fn placement_reason(f: &Form) -> Option<String> {
    let bed = get(f, "bed");
    (!bed.is_empty() && get(f, "placement_bed") == bed)
        .then(|| get(f, "placement_reason").to_owned())
        .filter(|r| !r.is_empty())
}

const NEEDS_REASON: &str =
    "This bed raises concerns: give a reason to place the patient here, or choose another bed";

fn consultant_options(cx: &Cx) -> Result<Vec<(String, String)>, AdtError> {
    let mut v = vec![(String::new(), "Choose a consultant (optional)".to_owned())];
    v.extend(adt::consultants(&cx.svc, cx.access())?);
    Ok(v)
}

fn pairs(xs: &[(&str, &str)], blank: &str) -> Vec<(String, String)> {
    let mut v = vec![(String::new(), blank.to_owned())];
    v.extend(xs.iter().map(|(c, l)| ((*c).to_owned(), (*l).to_owned())));
    v
}

fn admit_form(
    cx: &Cx,
    patient: &pmi::PatientSummary,
    f: &Form,
    error: Option<(&str, &str)>,
    concerns: &[Concern],
) -> Result<Markup, AdtError> {
    let err = |k: &str| error.filter(|(f, _)| *f == k).map(|(_, m)| m);
    let beds = bed_options(cx)?;
    let consultants = consultant_options(cx)?;
    Ok(html! {
        (layout::back_link(&format!("/ui/patients/{}", enc(&patient.id)), "Back to the record"))
        (crate::chart::banner(patient, None))
        h2 { "Admit" }
        @if let Some((field, msg)) = error { (layout::error_summary(&[(field.to_owned(), msg.to_owned())])) }
        form method="post" action={ "/ui/patients/" (enc(&patient.id)) "/admit" } novalidate {
            (layout::csrf(cx))
            (layout::radios("kind", "Type of admission", &[("emergency", "Emergency"), ("elective", "Elective"), ("transfer-in", "Transfer in")], match get(f, "kind") { "" => "emergency", k => k }, err("kind")))
            (layout::select("bed", "Bed", &beds, get(f, "bed"), err("bed")))
            (placement_panel(concerns, get(f, "bed"), get(f, "placement_reason"), err("placement_reason")))
            (layout::select("specialty", "Specialty", &pairs(adt::specialties(), "Choose a specialty"), get(f, "specialty"), err("specialty")))
            (layout::select("consultant", "Admitting consultant", &consultants, get(f, "consultant"), err("consultant")))
            (layout::input(&Field {
                value: get(f, "expected_discharge"),
                error: err("expected_discharge"),
                kind: "date",
                width: "nhsuk-input--width-10",
                ..Field::new("expected_discharge", "Expected discharge date (optional)")
            }))
            button class="nhsuk-button" data-module="nhsuk-button" type="submit" { "Admit patient" }
        }
    })
}

pub(crate) async fn admit_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        let p = match patient_or_404(cx, &id) {
            Ok(p) => p,
            Err(r) => return r,
        };
        match admit_form(cx, &p, &q, None, &[]) {
            Ok(body) => layout::page(cx, "Admit", Nav::Patients, body),
            Err(e) => adt_error(&e),
        }
    })
    .await
}

pub(crate) async fn admit_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let p = match patient_or_404(cx, &id) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let again = |field: &str, msg: &str, concerns: &[Concern]| match admit_form(
            cx,
            &p,
            &f,
            Some((field, msg)),
            concerns,
        ) {
            Ok(body) => layout::page_with(
                StatusCode::UNPROCESSABLE_ENTITY,
                cx,
                "Admit",
                Nav::Patients,
                body,
            ),
            Err(e) => adt_error(&e),
        };
        let kind: AdmissionKind = match get(&f, "kind").parse() {
            Ok(k) => k,
            Err(_) => return again("kind", "Choose the type of admission", &[]),
        };
        if get(&f, "bed").is_empty() {
            return again("bed", "Choose a bed", &[]);
        }
        let a = Admission {
            patient_id: p.id.clone(),
            bed_id: get(&f, "bed").to_owned(),
            kind,
            consultant_id: Some(get(&f, "consultant").to_owned()).filter(|s| !s.is_empty()),
            specialty: Some(get(&f, "specialty").to_owned()).filter(|s| !s.is_empty()),
            expected_discharge: Some(get(&f, "expected_discharge").to_owned())
                .filter(|s| !s.is_empty()),
            placement_reason: placement_reason(&f),
        };
        match adt::admit(&cx.svc, cx.access(), &a) {
            Ok(_) => see_other(&format!("/ui/patients/{}?done=admitted", enc(&p.id))),
            Err(e) if e.kind == AdtErrorKind::NeedsReason => {
                again("placement_reason", NEEDS_REASON, &e.concerns)
            }
            Err(e) if e.status() == 400 || e.status() == 409 || e.status() == 422 => {
                again("bed", &layout::sentence(&e.message), &[])
            }
            Err(e) => adt_error(&e),
        }
    })
    .await
}

fn stay_or_error(cx: &Cx, encounter: &str) -> Result<(adt::Stay, pmi::PatientSummary), Response> {
    let stay = adt::stay(&cx.svc, cx.access(), encounter).map_err(|e| adt_error(&e))?;
    let p = patient_or_404(cx, &stay.patient_id)?;
    Ok((stay, p))
}

fn transfer_form(
    cx: &Cx,
    stay: &adt::Stay,
    p: &pmi::PatientSummary,
    f: &Form,
    error: Option<(&str, &str)>,
    concerns: &[Concern],
) -> Result<Markup, AdtError> {
    let err = |k: &str| error.filter(|(f, _)| *f == k).map(|(_, m)| m);
    let beds = bed_options(cx)?;
    Ok(html! {
        (layout::back_link(&format!("/ui/patients/{}", enc(&p.id)), "Back to the record"))
        (crate::chart::banner(p, Some(stay)))
        h2 { "Transfer" }
        @if let Some((field, msg)) = error { (layout::error_summary(&[(field.to_owned(), msg.to_owned())])) }
        form method="post" action={ "/ui/encounters/" (enc(&stay.encounter_id)) "/transfer" } novalidate {
            (layout::csrf(cx))
            (layout::select("bed", "Move to bed", &beds, get(f, "bed"), err("bed")))
            (placement_panel(concerns, get(f, "bed"), get(f, "placement_reason"), err("placement_reason")))
            button class="nhsuk-button" data-module="nhsuk-button" type="submit" { "Transfer patient" }
        }
    })
}

pub(crate) async fn transfer_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, _| {
        let (stay, p) = match stay_or_error(cx, &id) {
            Ok(x) => x,
            Err(r) => return r,
        };
        match transfer_form(cx, &stay, &p, &Form::default(), None, &[]) {
            Ok(b) => layout::page(cx, "Transfer", Nav::Patients, b),
            Err(e) => adt_error(&e),
        }
    })
    .await
}

pub(crate) async fn transfer_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let (stay, p) = match stay_or_error(cx, &id) {
            Ok(x) => x,
            Err(r) => return r,
        };
        let bed = get(&f, "bed");
        let result = if bed.is_empty() {
            Err(("bed", "Choose a bed".to_owned(), Vec::new()))
        } else {
            let reason = placement_reason(&f);
            match adt::transfer(&cx.svc, cx.access(), &id, bed, reason.as_deref()) {
                Ok(()) => Ok(()),
                Err(e) if e.kind == AdtErrorKind::NeedsReason => {
                    Err(("placement_reason", NEEDS_REASON.to_owned(), e.concerns))
                }
                Err(e) if e.status() < 500 && e.status() != 403 => {
                    Err(("bed", layout::sentence(&e.message), Vec::new()))
                }
                Err(e) => return adt_error(&e),
            }
        };
        match result {
            Ok(()) => see_other(&format!("/ui/patients/{}?done=transferred", enc(&p.id))),
            Err((field, msg, concerns)) => {
                match transfer_form(cx, &stay, &p, &f, Some((field, &msg)), &concerns) {
                    Ok(b) => layout::page_with(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        cx,
                        "Transfer",
                        Nav::Patients,
                        b,
                    ),
                    Err(e) => adt_error(&e),
                }
            }
        }
    })
    .await
}

fn discharge_form(
    cx: &Cx,
    stay: &adt::Stay,
    p: &pmi::PatientSummary,
    f: &Form,
    error: Option<(&str, &str)>,
) -> Markup {
    let err = |k: &str| error.filter(|(f, _)| *f == k).map(|(_, m)| m);
    html! {
        (layout::back_link(&format!("/ui/patients/{}", enc(&p.id)), "Back to the record"))
        (crate::chart::banner(p, Some(stay)))
        h2 { "Discharge" }
        @if let Some((field, msg)) = error { (layout::error_summary(&[(field.to_owned(), msg.to_owned())])) }
        form method="post" action={ "/ui/encounters/" (enc(&stay.encounter_id)) "/discharge" } novalidate {
            (layout::csrf(cx))
            (layout::select("destination", "Discharge destination", &pairs(adt::discharge_destinations(), "Choose a destination"), get(f, "destination"), err("destination")))
            (layout::select("method", "Discharge method", &pairs(adt::discharge_methods(), "Choose a method"), get(f, "method"), err("method")))
            button class="nhsuk-button" data-module="nhsuk-button" type="submit" { "Discharge patient" }
        }
    }
}

pub(crate) async fn discharge_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        let (stay, p) = match stay_or_error(cx, &id) {
            Ok(x) => x,
            Err(r) => return r,
        };
        layout::page(
            cx,
            "Discharge",
            Nav::Patients,
            discharge_form(cx, &stay, &p, &q, None),
        )
    })
    .await
}

pub(crate) async fn discharge_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let (stay, p) = match stay_or_error(cx, &id) {
            Ok(x) => x,
            Err(r) => return r,
        };
        let again = |field: &str, msg: &str| {
            layout::page_with(
                StatusCode::UNPROCESSABLE_ENTITY,
                cx,
                "Discharge",
                Nav::Patients,
                discharge_form(cx, &stay, &p, &f, Some((field, msg))),
            )
        };
        if get(&f, "destination").is_empty() {
            return again("destination", "Choose where the patient is going");
        }
        if get(&f, "method").is_empty() {
            return again("method", "Choose the discharge method");
        }
        match adt::discharge(
            &cx.svc,
            cx.access(),
            &id,
            get(&f, "destination"),
            get(&f, "method"),
        ) {
            Ok(()) => see_other(&format!("/ui/patients/{}?done=discharged", enc(&p.id))),
            Err(e) if e.status() < 500 && e.status() != 403 && e.status() != 404 => {
                again("destination", &layout::sentence(&e.message))
            }
            Err(e) => adt_error(&e),
        }
    })
    .await
}

/// `what` = admission | transfer | discharge.
pub(crate) async fn cancel_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let stay = match adt::stay(&cx.svc, cx.access(), &id) {
            Ok(s) => s,
            Err(e) => return adt_error(&e),
        };
        let what = match get(&f, "what") {
            "" if stay.discharged.is_some() => "discharge",
            "" if stay.movements.len() > 1 => "transfer",
            "" => "admission",
            w => w,
        };
        let r = match what {
            "admission" => adt::cancel_admission(&cx.svc, cx.access(), &id),
            "transfer" => adt::cancel_transfer(&cx.svc, cx.access(), &id),
            "discharge" => adt::cancel_discharge(&cx.svc, cx.access(), &id),
            _ => {
                return layout::error_page(
                    StatusCode::BAD_REQUEST,
                    "That could not be done",
                    "Say what to cancel: the admission, the transfer or the discharge.",
                );
            }
        };
        match r {
            Ok(()) => see_other(&format!(
                "/ui/patients/{}?done=cancelled",
                enc(&stay.patient_id)
            )),
            Err(e) => adt_error(&e),
        }
    })
    .await
}
