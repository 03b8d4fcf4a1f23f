//! Clinic letter pages (issue 18): a patient's outpatient attendances with
//! their letters and the patient's preference for copies
//! (`/ui/patients/{id}/clinic-letters`), from an attendance
//! (`/ui/encounters/{id}/clinic-letter`: open its letter or start one), the
//! letter (`/ui/clinic-letters/{id}`: every PRSB outpatient heading, sign,
//! PDF, where its copies went), edit, amend and PDF — the discharge
//! summary's pages ([`crate::discharge::Doc`]) with the letter's form — and
//! the print-and-post worklist (`/ui/letter-printing`). Every rule is
//! `wardline_workflow::documents::letters`'s (and, for the preference,
//! `transfers::routing`'s).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use wardline_workflow::documents::discharge::Summary;
use wardline_workflow::documents::letters::{self, LETTER};
use wardline_workflow::transfers::routing::{self, CopyPreference, PatientCopy};

use crate::discharge::{Doc, Pages, refusal, writes};
use crate::layout::{self, Nav};
use crate::{Cx, Form, Req, St, enc, see_other};

fn letter_actions(_: &Cx, s: &Summary) -> Markup {
    html! {
        a class="nhsuk-button nhsuk-button--secondary" href={ "/ui/patients/" (enc(&s.patient_id)) "/clinic-letters" } data-testid="all-letters" { "All clinic letters" }
    }
}

fn copy_text(c: &PatientCopy) -> String {
    match c {
        PatientCopy::Email(a) => format!("by email to {a}"),
        PatientCopy::Post => "printed and posted (on the print worklist)".into(),
        PatientCopy::NoCopy => "not sent: the patient asked for no copy".into(),
    }
}

fn preference_form(
    cx: &Cx,
    patient: &str,
    back: &str,
    current: Option<CopyPreference>,
    copy: &PatientCopy,
    error: Option<&str>,
) -> Markup {
    let options: Vec<(&str, &str)> = CopyPreference::ALL
        .iter()
        .map(|p| (p.code(), p.label()))
        .collect();
    let selected = current.map_or("", CopyPreference::code);
    html! {
        section data-testid="letter-preference" {
            h2 class="nhsuk-heading-m" { "The patient's copy" }
            p data-testid="patient-copy" { "The patient's copy of a signed letter is " (copy_text(copy)) "."
                @if current.is_none() { " No preference is recorded: email when they have an address, otherwise post." } }
            @if writes(cx) {
                form method="post" action={ "/ui/patients/" (enc(patient)) "/letter-preference" } novalidate {
                    (layout::csrf(cx))
                    input type="hidden" name="back" value=(back);
                    (layout::radios("preference", "How does the patient want their copies of letters?", &options, selected, error))
                    button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" data-testid="save-preference" { "Save the preference" }
                }
            }
        }
    }
}

fn letter_more(cx: &Cx, s: &Summary) -> Markup {
    let copies = letters::copies(&cx.svc, cx.access(), &s.encounter_id).unwrap_or_default();
    let pref = letters::patient_copy(&cx.svc, cx.access(), &s.patient_id).ok();
    html! {
        @if !copies.is_empty() {
            h2 class="nhsuk-heading-m" { "Where the letter went" }
            table class="nhsuk-table" data-testid="copies" {
                thead class="nhsuk-table__head" { tr { th scope="col" { "To" } th scope="col" { "How" } th scope="col" { "Status" } th scope="col" { "Version" } } }
                tbody class="nhsuk-table__body" {
                    @for c in &copies {
                        tr class="nhsuk-table__row" data-testid="copy" data-to=(c.recipient) data-how=(c.how) data-status=(c.status) {
                            td class="nhsuk-table__cell" { @if c.recipient.starts_with("Patient/") { "The patient" } @else { "GP practice" } }
                            td class="nhsuk-table__cell" { (c.how) }
                            td class="nhsuk-table__cell" { (c.status) }
                            td class="nhsuk-table__cell" { (c.document) }
                        }
                    }
                }
            }
        }
        @if let Some((p, copy)) = pref {
            (preference_form(cx, &s.patient_id, &format!("/ui/clinic-letters/{}", enc(&s.id)), p, &copy, None))
        }
    }
}

/// The clinic letter's pages.
pub(crate) static LETTER_DOC: Doc = Doc {
    form: &LETTER,
    base: "/ui/clinic-letters",
    from_encounter: "clinic-letter",
    start_hint: "This attendance has no clinic letter yet. Starting one fills in every heading Wardline can read from the record (GP practice, the attendance, diagnoses, procedures, results, current medicines, allergies); you then write the clinical summary, any medication changes, the information given and the plan, and sign it. Signing sends it to the GP practice and copies it to the patient.",
    actions: letter_actions,
    more: letter_more,
};

/// The clinic letter's routes (`crate::discharge`'s handlers over it).
pub(crate) struct Letters;

impl Pages for Letters {
    const DOC: &'static Doc = &LETTER_DOC;
}

// ---------------------------------------------------------------- the patient's letters

fn patient_letters(cx: &Cx, patient: &str, error: Option<&str>, done: bool) -> Response {
    let list = match letters::attendances(&cx.svc, cx.access(), patient) {
        Ok(l) => l,
        Err(e) => return refusal(&LETTER_DOC, &e),
    };
    let pref = letters::patient_copy(&cx.svc, cx.access(), patient);
    let back = format!("/ui/patients/{}/clinic-letters", enc(patient));
    let body = html! {
        (layout::back_link(&format!("/ui/patients/{}", enc(patient)), "Back to the patient"))
        @if let Some(e) = error {
            (layout::error_summary(&[("preference".to_owned(), e.to_owned())]))
        }
        @if done { (layout::success("The patient's preference for copies of letters is saved.")) }
        (crate::chart::patient_banner(cx, patient))
        h1 { "Clinic letters" }
        @if list.is_empty() {
            p data-testid="no-attendances" { "This patient has no outpatient attendances on record." }
        } @else {
            table class="nhsuk-table" data-testid="attendances" {
                thead class="nhsuk-table__head" { tr { th scope="col" { "Attendance" } th scope="col" { "Clinic" } th scope="col" { "Letter" } } }
                tbody class="nhsuk-table__body" {
                    @for a in &list {
                        tr class="nhsuk-table__row" data-testid="attendance" data-encounter=(a.encounter) {
                            td class="nhsuk-table__cell" { (layout::long_date(&a.date)) " (" (wardline_workflow::chart::status_label(&a.status).to_lowercase()) ")" }
                            td class="nhsuk-table__cell" { (a.clinic) }
                            td class="nhsuk-table__cell" {
                                @match &a.letter {
                                    Some((id, status)) => {
                                        a href={ "/ui/clinic-letters/" (enc(id)) } data-testid="open-letter" { "Clinic letter" }
                                        " (" (match status.as_str() { "preliminary" => "draft", "final" => "signed", "amended" => "amended", s => s }) ")"
                                    },
                                    None => {
                                        a href={ "/ui/encounters/" (enc(&a.encounter)) "/clinic-letter" } data-testid="write-letter" { "Write clinic letter" }
                                    },
                                }
                            }
                        }
                    }
                }
            }
        }
        @match &pref {
            Ok((p, copy)) => (preference_form(cx, patient, &back, *p, copy, error)),
            Err(e) => p { (e.message()) },
        }
    };
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    layout::page_with(status, cx, "Clinic letters", Nav::None, body)
}

/// `GET /ui/patients/{id}/clinic-letters`.
pub(crate) async fn patient_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        patient_letters(cx, &id, None, q.contains_key("done"))
    })
    .await
}

/// `POST /ui/patients/{id}/letter-preference`: record how the patient
/// wants their copies; back to the page it was set on.
pub(crate) async fn preference_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f: Form| {
        let Some(pref) = f.get("preference").and_then(|p| CopyPreference::of_code(p)) else {
            return patient_letters(
                cx,
                &id,
                Some("Choose how the patient wants their copies: by email, by post or no copy."),
                false,
            );
        };
        match routing::set_preference(&cx.svc, cx.access(), &id, pref, cx.svc.now()) {
            Ok(()) => {
                let back = f
                    .get("back")
                    .filter(|b| b.starts_with("/ui/") && !b.starts_with("//"))
                    .cloned()
                    .unwrap_or_else(|| format!("/ui/patients/{}/clinic-letters", enc(&id)));
                let sep = if back.contains('?') { '&' } else { '?' };
                see_other(&format!("{back}{sep}done=preference"))
            }
            Err(e) => layout::refusal_page(e.status(), &e.message(), "letter preference"),
        }
    })
    .await
}

// ---------------------------------------------------------------- printing

/// `GET /ui/letter-printing`: the patients' copies to print and post.
pub(crate) async fn print_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, q| {
        let list = match letters::print_worklist(&cx.svc, cx.access()) {
            Ok(l) => l,
            Err(e) => return refusal(&LETTER_DOC, &e),
        };
        let done = q.contains_key("done");
        layout::page(
            cx,
            "Clinic letters to print and post",
            Nav::None,
            html! {
                @if done { (layout::success("Marked as printed and posted.")) }
                h1 { "Clinic letters to print and post" }
                p { "Patients who have no email address, or who asked for their letters by post. Print the letter (PDF), post it to the address shown, then mark it done." }
                @if list.is_empty() {
                    p data-testid="nothing-to-print" { "Nothing to print." }
                } @else {
                    table class="nhsuk-table" data-testid="to-print" {
                        thead class="nhsuk-table__head" { tr { th scope="col" { "Patient" } th scope="col" { "Post to" } th scope="col" { "Since" } th scope="col" { "Action" } } }
                        tbody class="nhsuk-table__body" {
                            @for t in &list {
                                tr class="nhsuk-table__row" data-testid="print-item" data-task=(t.task) {
                                    td class="nhsuk-table__cell" { (t.patient) br; "NHS number " (t.nhs_number.as_deref().unwrap_or("not recorded")) }
                                    td class="nhsuk-table__cell" { (t.instruction) }
                                    td class="nhsuk-table__cell" { (layout::long_date(&t.since)) }
                                    td class="nhsuk-table__cell" {
                                        @if let Some(l) = &t.letter {
                                            a href={ "/ui/clinic-letters/" (enc(l)) "/pdf" } data-testid="print-pdf" { "Letter (PDF)" }
                                        }
                                        @if writes(cx) {
                                            form method="post" action={ "/ui/letter-printing/" (enc(&t.task)) "/done" } novalidate {
                                                (layout::csrf(cx))
                                                button class="nhsuk-button nhsuk-button--secondary nhsuk-u-margin-bottom-0" data-module="nhsuk-button" type="submit" data-testid="mark-printed" { "Printed and posted" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            },
        )
    })
    .await
}

/// `POST /ui/letter-printing/{task}/done`.
pub(crate) async fn printed_post(
    State(ui): St,
    req: Req,
    Path(task): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, _| {
        match letters::mark_printed(&cx.svc, cx.access(), &task, cx.svc.now()) {
            Ok(()) => see_other("/ui/letter-printing?done=1"),
            Err(e) => refusal(&LETTER_DOC, &e),
        }
    })
    .await
}
