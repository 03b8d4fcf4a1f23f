//! Find a patient; register a patient (with the duplicate check).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use wardline_workflow::pmi::{self, NewPatient, PatientQuery, PatientSummary, RegisterError};

use crate::layout::{self, Field, Nav};
use crate::{Cx, Form, Req, St, enc, see_other};

/// How many matches a search lists.
const LIMIT: usize = 50;

fn get<'a>(f: &'a Form, k: &str) -> &'a str {
    f.get(k).map(|s| s.trim()).unwrap_or_default()
}

pub(crate) fn nhs(p: &PatientSummary) -> String {
    nhs_text(p.nhs_number.as_deref())
}

/// An NHS number the way staff read it ("943 476 5919").
pub(crate) fn nhs_text(n: Option<&str>) -> String {
    n.map(pmi::format_nhs_number)
        .unwrap_or_else(|| "NHS number not known".into())
}

/// The patient with this id, or the page to answer instead (not found, or
/// refused: "You do not have access", with break-glass where the position
/// may use it).
pub(crate) fn patient_or_404(cx: &Cx, id: &str) -> Result<pmi::PatientSummary, Response> {
    match pmi::summary(&cx.svc, cx.access(), id) {
        Ok(Some(p)) => Ok(p),
        Ok(None) => Err(layout::error_page(
            StatusCode::NOT_FOUND,
            "Patient not found",
            "There is no patient record with this id.",
        )),
        Err(e) if e.status == 403 => Err(crate::access::no_access_page(cx, id, &e)),
        Err(e) => Err(crate::fhir_error(&e)),
    }
}

pub(crate) fn gender_label(g: Option<&str>) -> &'static str {
    match g {
        Some("male") => "Male",
        Some("female") => "Female",
        Some("other") => "Other",
        Some("unknown") => "Not known",
        _ => "Not recorded",
    }
}

/// A results table of patients, each linking to their chart.
pub(crate) fn patient_table(caption: &str, patients: &[PatientSummary]) -> Markup {
    html! {
        table class="nhsuk-table-responsive" data-testid="patient-results" {
            caption class="nhsuk-table__caption" { (caption) }
            thead class="nhsuk-table__head" {
                tr role="row" {
                    th scope="col" { "Name" }
                    th scope="col" { "NHS number" }
                    th scope="col" { "Date of birth" }
                    th scope="col" { "Gender" }
                    th scope="col" { "Postcode" }
                    th scope="col" { "Hospital number" }
                }
            }
            tbody class="nhsuk-table__body" {
                @for p in patients {
                    tr role="row" class="nhsuk-table__row" {
                        td class="nhsuk-table__cell" {
                            span class="nhsuk-table-responsive__heading" { "Name " }
                            a href={ "/ui/patients/" (enc(&p.id)) } { (p.display_name) }
                            @if !p.active {
                                " " strong class="nhsuk-tag nhsuk-tag--grey" { "Merged" }
                            }
                        }
                        td class="nhsuk-table__cell" { span class="nhsuk-table-responsive__heading" { "NHS number " } (nhs(p)) }
                        td class="nhsuk-table__cell" { span class="nhsuk-table-responsive__heading" { "Date of birth " } (p.birth_date.as_deref().map(layout::long_date).unwrap_or_default()) }
                        td class="nhsuk-table__cell" { span class="nhsuk-table-responsive__heading" { "Gender " } (gender_label(p.gender.as_deref())) }
                        td class="nhsuk-table__cell" { span class="nhsuk-table-responsive__heading" { "Postcode " } (p.postcode.as_deref().unwrap_or("")) }
                        td class="nhsuk-table__cell" { span class="nhsuk-table-responsive__heading" { "Hospital number " } (p.hospital_number.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
    }
}

pub(crate) async fn search_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, |cx, q| {
        let query = PatientQuery {
            text: get(&q, "q").to_owned(),
            birth_date: Some(get(&q, "dob").to_owned()).filter(|s| !s.is_empty()),
            postcode: Some(get(&q, "postcode").to_owned()).filter(|s| !s.is_empty()),
            gender: None,
        };
        let searched = !query.text.is_empty() || query.birth_date.is_some() || query.postcode.is_some();
        let (results, error) = if searched {
            match pmi::search_counted(&cx.svc, cx.access(), &query, LIMIT) {
                Ok(r) => (Some(r), None),
                Err(e) if e.status == 400 => (None, Some(layout::sentence(&layout::what_happened(&e)))),
                Err(e) => return crate::fhir_error(&e),
            }
        } else {
            (None, None)
        };
        let form = html! {
            h1 { "Find a patient" }
            @if let Some(e) = &error {
                (layout::error_summary(&[("q".into(), e.clone())]))
            }
            form method="get" action="/ui/patients" novalidate {
                (layout::input(&Field {
                    hint: Some("NHS number, hospital number or name (part of a name, or how it sounds, finds it too)"),
                    value: &query.text,
                    error: error.as_deref(),
                    width: "nhsuk-u-width-two-thirds",
                    ..Field::new("q", "Search")
                }))
                (layout::input(&Field {
                    hint: Some("For example, 15 3 1984"),
                    value: query.birth_date.as_deref().unwrap_or(""),
                    kind: "date",
                    width: "nhsuk-input--width-10",
                    ..Field::new("dob", "Date of birth (optional)")
                }))
                (layout::input(&Field {
                    value: query.postcode.as_deref().unwrap_or(""),
                    width: "nhsuk-input--width-10",
                    autocomplete: "postal-code",
                    ..Field::new("postcode", "Postcode (optional)")
                }))
                button class="nhsuk-button" data-module="nhsuk-button" type="submit" { "Search" }
            }
        };
        let body = html! {
            (form)
            @if let Some(found) = &results {
                @let results = &found.patients;
                @if found.withheld > 0 {
                    div class="nhsuk-inset-text" data-testid="search-withheld" {
                        p {
                            (found.withheld) " matching patient" (if found.withheld == 1 { " is" } else { "s are" })
                            " not shown: your organisation has no relationship with them. To find a patient outside your organisation's care, search by their NHS number and date of birth together."
                        }
                    }
                }
                @if results.is_empty() && found.withheld > 0 {
                    h2 data-testid="no-results" { "No patients shown" }
                } @else if results.is_empty() {
                    h2 data-testid="no-results" { "No patients found" }
                    p { "Check the spelling or the NHS number, or search by date of birth and postcode." }
                    @if cx.may(wardline_auth::rbac::Activity::RegisterPatient) {
                        p { a href="/ui/patients/new" { "Register a new patient" } }
                    }
                } @else {
                    (patient_table(&format!("{} patient{} found", results.len(), if results.len() == 1 { "" } else { "s" }), results))
                }
            }
        };
        layout::page(cx, "Find a patient", Nav::Patients, body)
    })
    .await
}

fn new_patient(f: &Form) -> NewPatient {
    NewPatient {
        nhs_number: get(f, "nhs_number").to_owned(),
        family: get(f, "family").to_owned(),
        given: get(f, "given").to_owned(),
        birth_date: get(f, "birth_date").to_owned(),
        gender: get(f, "gender").to_owned(),
        address_line: get(f, "address_line").to_owned(),
        city: get(f, "city").to_owned(),
        postcode: get(f, "postcode").to_owned(),
        phone: get(f, "phone").to_owned(),
        ethnic_category: get(f, "ethnic_category").to_owned(),
    }
}

/// The NHS ethnic categories, after "not asked".
fn ethnic_categories() -> Vec<(String, String)> {
    let mut v = vec![(String::new(), "Not asked".to_owned())];
    v.extend(
        pmi::ETHNIC_CATEGORIES
            .iter()
            .map(|(c, l)| ((*c).to_owned(), (*l).to_owned())),
    );
    v
}

fn register_form(
    cx: &Cx,
    p: &NewPatient,
    errors: &[(String, String)],
    duplicates: &[pmi::Candidate],
) -> Markup {
    let err = |f: &str| errors.iter().find(|(k, _)| k == f).map(|(_, m)| m.as_str());
    html! {
        h1 { "Register a patient" }
        (layout::error_summary(errors))
        @if !duplicates.is_empty() {
            div class="nhsuk-warning-callout" data-testid="possible-duplicates" {
                h2 class="nhsuk-warning-callout__label" { span role="text" { span class="nhsuk-u-visually-hidden" { "Important: " } "This patient may already be registered" } }
                p { "These records look like the same person. Open one to use it, or confirm below that this is a different person." }
                ul {
                    @for c in duplicates {
                        li {
                            a href={ "/ui/patients/" (enc(&c.patient.id)) } { (c.patient.display_name) }
                            " – NHS number " (nhs(&c.patient))
                            ", born " (c.patient.birth_date.as_deref().map(layout::long_date).unwrap_or_default())
                            " (match " (format!("{:.0}", c.score * 100.0)) "%: " (c.reasons.join(", ")) ")"
                        }
                    }
                }
            }
        }
        form method="post" action="/ui/patients/new" novalidate {
            (layout::csrf(cx))
            (layout::input(&Field {
                hint: Some("10 digits, for example 943 476 5919. Leave blank if not known."),
                value: &p.nhs_number,
                error: err("nhs_number"),
                width: "nhsuk-input--width-10",
                ..Field::new("nhs_number", "NHS number")
            }))
            (layout::input(&Field { value: &p.given, error: err("given"), autocomplete: "given-name", ..Field::new("given", "First name") }))
            (layout::input(&Field { value: &p.family, error: err("family"), autocomplete: "family-name", ..Field::new("family", "Surname") }))
            (layout::input(&Field {
                hint: Some("For example, 15 3 1984"),
                value: &p.birth_date,
                error: err("birth_date"),
                kind: "date",
                autocomplete: "bday",
                width: "nhsuk-input--width-10",
                ..Field::new("birth_date", "Date of birth")
            }))
            (layout::radios("gender", "Gender", &[("female", "Female"), ("male", "Male"), ("other", "Other"), ("unknown", "Not known")], &p.gender, err("gender")))
            (layout::select("ethnic_category", "Ethnic category (as the patient describes it)", &ethnic_categories(), &p.ethnic_category, err("ethnic_category")))
            (layout::input(&Field { value: &p.address_line, error: err("address_line"), autocomplete: "address-line1", ..Field::new("address_line", "Address") }))
            (layout::input(&Field { value: &p.city, error: err("city"), autocomplete: "address-level2", width: "nhsuk-u-width-two-thirds", ..Field::new("city", "Town or city") }))
            (layout::input(&Field { value: &p.postcode, error: err("postcode"), autocomplete: "postal-code", width: "nhsuk-input--width-10", ..Field::new("postcode", "Postcode") }))
            (layout::input(&Field { value: &p.phone, error: err("phone"), kind: "tel", autocomplete: "tel", width: "nhsuk-input--width-20", ..Field::new("phone", "Phone number (optional)") }))
            @if !duplicates.is_empty() {
                div class="nhsuk-form-group" {
                    div class="nhsuk-checkboxes" {
                        div class="nhsuk-checkboxes__item" {
                            input class="nhsuk-checkboxes__input" id="confirm" name="confirm" type="checkbox" value="yes";
                            label class="nhsuk-label nhsuk-checkboxes__label" for="confirm" { "I have checked: this is a different person" }
                        }
                    }
                }
            }
            button class="nhsuk-button" data-module="nhsuk-button" type="submit" { "Register patient" }
        }
    }
}

pub(crate) async fn register_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, |cx, _| {
        let blank = new_patient(&Form::new());
        layout::page(
            cx,
            "Register a patient",
            Nav::Register,
            register_form(cx, &blank, &[], &[]),
        )
    })
    .await
}

pub(crate) async fn register_post(State(ui): St, req: Req, body: Bytes) -> Response {
    ui.run(req, Some(&body), |cx, f| {
        let p = new_patient(&f);
        let confirmed = get(&f, "confirm") == "yes";
        match pmi::register(&cx.svc, cx.access(), &p, confirmed) {
            Ok(done) => see_other(&format!("/ui/patients/{}?done=registered", enc(&done.id))),
            Err(RegisterError::Invalid(errors)) => {
                let errors: Vec<(String, String)> = errors
                    .into_iter()
                    .map(|e| (e.field.to_owned(), e.message))
                    .collect();
                layout::page_with(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    cx,
                    "Register a patient",
                    Nav::Register,
                    register_form(cx, &p, &errors, &[]),
                )
            }
            Err(RegisterError::PossibleDuplicates(c)) => layout::page_with(
                StatusCode::CONFLICT,
                cx,
                "Register a patient",
                Nav::Register,
                register_form(cx, &p, &[], &c),
            ),
            Err(RegisterError::Fhir(e)) => crate::fhir_error(&e),
        }
    })
    .await
}
