//! Clinical notes pages (issue 18): a patient's notes, newest first
//! (`/ui/patients/{id}/notes`), a new ward round or clinic note by heading
//! (`/ui/patients/{id}/notes/new`), and one note (`/ui/notes/{id}`) with
//! every version and what changed, signing, amending, entering in error,
//! its coded diagnoses and procedures and the coders' corrections. Every
//! rule is `wardline_workflow::documents::notes`'s.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use wardline_workflow::documents::notes::coding::{self, Coded, CodedInput, EntryKind};
use wardline_workflow::documents::notes::{
    self, Draft, HEADINGS, NoteKind, NoteSummary, NoteView, NotesError,
};
use wardline_workflow::orders::request::person_name;

use crate::layout::{self, Nav};
use crate::{Cx, Form, Req, St, enc, see_other};

fn refusal(e: &NotesError) -> Response {
    layout::refusal_page(e.status(), &e.message(), "notes")
}

fn me(cx: &Cx) -> Option<String> {
    cx.access()
        .agent()
        .who
        .clone()
        .filter(|w| w.starts_with("Practitioner/"))
}

fn status_tag(status: &str) -> Markup {
    let (class, text) = match status {
        "preliminary" => ("nhsuk-tag nhsuk-tag--grey", "Draft"),
        "final" => ("nhsuk-tag nhsuk-tag--green", "Signed"),
        "amended" => ("nhsuk-tag nhsuk-tag--orange", "Amended"),
        "entered-in-error" => ("nhsuk-tag nhsuk-tag--red", "Entered in error"),
        _ => ("nhsuk-tag", "Unknown"),
    };
    html! { strong class=(class) data-testid="note-status" data-status=(status) { (text) } }
}

fn textarea(id: &str, label: &str, value: &str, rows: u8, error: Option<&str>) -> Markup {
    html! {
        div class={ "nhsuk-form-group" @if error.is_some() { " nhsuk-form-group--error" } } {
            label class="nhsuk-label nhsuk-label--s" for=(id) { (label) }
            @if let Some(e) = error {
                span class="nhsuk-error-message" id={ (id) "-error" } { span class="nhsuk-u-visually-hidden" { "Error: " } (e) }
            }
            textarea class={ "nhsuk-textarea" @if error.is_some() { " nhsuk-textarea--error" } } id=(id) name=(id) rows=(rows)
                aria-describedby=[error.map(|_| format!("{id}-error"))] { (value) }
        }
    }
}

/// The heading textareas, filled with `values` (by heading code).
fn heading_fields(values: &[(String, String)], error: Option<&(String, String)>) -> Markup {
    html! {
        @for (code, title) in HEADINGS {
            (textarea(code, title,
                values.iter().find(|(c, _)| c == code).map_or("", |(_, t)| t.as_str()),
                4,
                error.filter(|(f, _)| f == code).map(|(_, m)| m.as_str())))
        }
    }
}

fn texts_of(f: &Form) -> Vec<(String, String)> {
    HEADINGS
        .iter()
        .map(|(c, _)| ((*c).to_owned(), f.get(*c).cloned().unwrap_or_default()))
        .collect()
}

fn patient_name(cx: &Cx, id: &str) -> String {
    cx.svc
        .read_as(cx.access(), "Patient", id)
        .ok()
        .flatten()
        .and_then(|p| person_name(&p))
        .unwrap_or_else(|| "Unnamed patient".into())
}

// ---------------------------------------------------------------- the list

fn list_body(patient: &str, name: &str, notes: &[NoteSummary], withheld: usize) -> Markup {
    let base = format!("/ui/patients/{}/notes", enc(patient));
    html! {
        (layout::back_link(&format!("/ui/patients/{}", enc(patient)), "Back to the patient"))
        span class="nhsuk-caption-l" { (name) }
        h1 { "Clinical notes" }
        p {
            a class="nhsuk-button" href={ (base) "/new?kind=ward-round" } data-testid="new-ward-round" { "Write a ward round note" }
            " "
            a class="nhsuk-button nhsuk-button--secondary" href={ (base) "/new?kind=clinic" } data-testid="new-clinic" { "Write a clinic note" }
        }
        @if notes.is_empty() {
            p data-testid="notes-empty" { "No clinical notes yet." }
        } @else {
            table class="nhsuk-table" data-testid="notes" {
                caption class="nhsuk-table__caption" { "Newest first" }
                thead class="nhsuk-table__head" {
                    tr { th scope="col" { "Date" } th scope="col" { "Note" } th scope="col" { "Author" } th scope="col" { "Status" } th scope="col" { "Version" } }
                }
                tbody class="nhsuk-table__body" {
                    @for n in notes {
                        tr class="nhsuk-table__row" data-testid="note-row" data-note=(n.id) {
                            td class="nhsuk-table__cell" { (layout::long_date(&n.date)) }
                            td class="nhsuk-table__cell" { a href={ "/ui/notes/" (enc(&n.id)) } data-testid="open-note" { (n.kind.label()) } }
                            td class="nhsuk-table__cell" { (n.author_name.as_deref().or(n.author.as_deref()).unwrap_or("—")) }
                            td class="nhsuk-table__cell" { (status_tag(&n.status)) }
                            td class="nhsuk-table__cell" { (n.version) }
                        }
                    }
                }
            }
        }
        @if withheld > 0 { p { (withheld) " more not shown: your access does not cover them." } }
    }
}

/// `GET /ui/patients/{id}/notes`.
pub(crate) async fn list_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, _| {
        match notes::list(&cx.svc, cx.access(), &id) {
            Ok((ns, withheld)) => layout::page(
                cx,
                "Clinical notes",
                Nav::Patients,
                html! { (crate::chart::patient_banner(cx, &id)) (list_body(&id, &patient_name(cx, &id), &ns, withheld)) },
            ),
            Err(e) => refusal(&e),
        }
    })
    .await
}

// ---------------------------------------------------------------- a new note

fn new_body(
    cx: &Cx,
    patient: &str,
    kind: NoteKind,
    values: &[(String, String)],
    error: Option<(String, String)>,
) -> Markup {
    html! {
        (layout::back_link(&format!("/ui/patients/{}/notes", enc(patient)), "Back to the notes"))
        (crate::chart::patient_banner(cx, patient))
        span class="nhsuk-caption-l" { (patient_name(cx, patient)) }
        h1 { "New " (kind.label().to_lowercase()) }
        @if let Some((f, m)) = &error { (layout::error_summary(&[(f.clone(), m.clone())])) }
        form method="post" action={ "/ui/patients/" (enc(patient)) "/notes" } novalidate {
            (layout::csrf(cx))
            input type="hidden" name="kind" value=(kind.code());
            (heading_fields(values, error.as_ref()))
            button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="save-draft" { "Save as draft" }
        }
    }
}

/// `GET /ui/patients/{id}/notes/new?kind=ward-round|clinic`.
pub(crate) async fn new_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        let kind = q
            .get("kind")
            .and_then(|k| NoteKind::parse(k))
            .unwrap_or(NoteKind::WardRound);
        layout::page(
            cx,
            kind.label(),
            Nav::Patients,
            new_body(cx, &id, kind, &[], None),
        )
    })
    .await
}

/// `POST /ui/patients/{id}/notes`: saves the draft.
pub(crate) async fn create_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let kind = f
            .get("kind")
            .and_then(|k| NoteKind::parse(k))
            .unwrap_or(NoteKind::WardRound);
        let texts = texts_of(&f);
        let draft = Draft {
            patient: id.clone(),
            encounter: None,
            kind,
            texts: texts.clone(),
        };
        match notes::write(&cx.svc, cx.access(), &draft, cx.svc.now()) {
            Ok(n) => see_other(&format!("/ui/notes/{}?done=saved", enc(&n))),
            Err(e @ NotesError::Invalid(..)) => layout::page_with(
                StatusCode::UNPROCESSABLE_ENTITY,
                cx,
                kind.label(),
                Nav::Patients,
                new_body(
                    cx,
                    &id,
                    kind,
                    &texts,
                    Some((e.field().unwrap_or(HEADINGS[0].0).to_owned(), e.message())),
                ),
            ),
            Err(e) => refusal(&e),
        }
    })
    .await
}

// ---------------------------------------------------------------- one note

struct Page {
    view: NoteView,
    patient: String,
    author: Option<String>,
    entries: Vec<Coded>,
}

fn load(cx: &Cx, id: &str) -> Result<Page, NotesError> {
    let view = notes::view(&cx.svc, cx.access(), id)?;
    let patient = wardline_workflow::fhir::reference_id(&view.note["subject"], "Patient")
        .unwrap_or_default()
        .to_owned();
    let author = notes::author(&view.note).and_then(|a| {
        let pid = a.strip_prefix("Practitioner/")?;
        cx.svc
            .read_as(cx.access(), "Practitioner", pid)
            .ok()
            .flatten()
            .and_then(|p| person_name(&p))
    });
    let entries = coding::entries_of(&cx.svc, cx.access(), &view.note)?;
    Ok(Page {
        view,
        patient,
        author,
        entries,
    })
}

fn headings_list(hs: &[notes::Heading], testid: &str) -> Markup {
    html! {
        dl class="nhsuk-summary-list" data-testid=(testid) {
            @for h in hs.iter().filter(|h| !h.text.is_empty()) {
                div class="nhsuk-summary-list__row" data-heading=(h.code) {
                    dt class="nhsuk-summary-list__key" { (h.title) }
                    dd class="nhsuk-summary-list__value" style="white-space: pre-wrap" { (h.text) }
                }
            }
        }
    }
}

fn entries_body(cx: &Cx, id: &str, es: &[Coded], error: Option<&(String, String)>) -> Markup {
    html! {
        h2 { "Diagnoses and procedures" }
        @if es.is_empty() { p data-testid="no-entries" { "None coded." } }
        @else {
            table class="nhsuk-table" data-testid="entries" {
                thead class="nhsuk-table__head" { tr {
                    th scope="col" { "Entry" } th scope="col" { "SNOMED CT" } th scope="col" { "ICD-10 / OPCS-4" } th scope="col" { "Correct the classification" }
                } }
                tbody class="nhsuk-table__body" {
                    @for e in es {
                        @let field = format!("classification-{}", e.reference.replace('/', "-"));
                        tr class="nhsuk-table__row" data-testid="entry" data-reference=(e.reference) {
                            td class="nhsuk-table__cell" {
                                (e.display)
                                @if e.kind == EntryKind::Diagnosis {
                                    br; span class="nhsuk-body-s" {
                                        (if e.category.as_deref() == Some("problem-list-item") { "Problem list" } else { "Diagnosis this encounter" })
                                        @if let Some(v) = &e.verification { ", " (v) }
                                    }
                                } @else { br; span class="nhsuk-body-s" { "Procedure" } }
                                @for c in &e.corrections { br; span class="nhsuk-body-s" data-testid="correction" { (c) } }
                            }
                            td class="nhsuk-table__cell" { (e.snomed.as_deref().unwrap_or("—")) }
                            td class="nhsuk-table__cell" data-testid="classification" { (e.classification.as_deref().unwrap_or("—")) }
                            td class="nhsuk-table__cell" {
                                form method="post" action={ "/ui/notes/" (enc(id)) "/entries/correct" } novalidate {
                                    (layout::csrf(cx))
                                    input type="hidden" name="reference" value=(e.reference);
                                    (layout::input(&layout::Field {
                                        width: "nhsuk-input--width-5",
                                        error: error.filter(|(f, _)| *f == field).map(|(_, m)| m.as_str()),
                                        ..layout::Field::new(&field, "New code")
                                    }))
                                    button class="nhsuk-button nhsuk-button--secondary nhsuk-u-margin-bottom-0" data-module="nhsuk-button" type="submit" data-testid="correct" { "Correct" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn add_entry_form(cx: &Cx, id: &str, error: Option<&(String, String)>) -> Markup {
    let err = |k: &str| error.filter(|(f, _)| f == k).map(|(_, m)| m.as_str());
    let mut options = vec![(String::new(), "Choose…".to_owned())];
    for p in coding::picklist() {
        let kind = match p.kind {
            EntryKind::Diagnosis => "Diagnosis",
            EntryKind::Procedure => "Procedure",
        };
        let flag = if p.verified { "" } else { " (local list)" };
        options.push((
            p.snomed.clone(),
            format!(
                "{kind}: {} — {} {}{flag}",
                p.display, p.code, p.code_display
            ),
        ));
    }
    html! {
        h2 { "Add a coded diagnosis or procedure" }
        form method="post" action={ "/ui/notes/" (enc(id)) "/entries" } novalidate {
            (layout::csrf(cx))
            (layout::select("snomed", "Diagnosis or procedure", &options, "", err("snomed")))
            (layout::radios("category", "For a diagnosis: where it belongs",
                &[("encounter-diagnosis", "This encounter's diagnosis"), ("problem-list-item", "Problem list")],
                "encounter-diagnosis", err("category")))
            (layout::radios("verification", "For a diagnosis: how certain",
                &[("confirmed", "Confirmed"), ("provisional", "Provisional")], "confirmed", err("verification")))
            (layout::input(&layout::Field {
                hint: Some("Leave blank to use the list's ICD-10 or OPCS-4 code."),
                width: "nhsuk-input--width-5",
                error: err("classification"),
                ..layout::Field::new("classification", "ICD-10 or OPCS-4 code (optional)")
            }))
            button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" data-testid="add-entry" { "Add to the note" }
        }
    }
}

fn versions_body(view: &NoteView) -> Markup {
    html! {
        h2 { "Versions" }
        p { "Every version of this note is kept. The newest is first." }
        @for v in view.versions.iter().rev() {
            details class="nhsuk-details" data-testid="version" data-version=(v.version) data-status=(v.status) {
                summary class="nhsuk-details__summary" {
                    span class="nhsuk-details__summary-text" {
                        "Version " (v.version) ": " (match v.status.as_str() { "preliminary" => "draft", "final" => "signed", "amended" => "amended", s => s })
                        " — " (layout::long_date(&v.date))
                    }
                }
                div class="nhsuk-details__text" {
                    @if let Some((by, at)) = &v.signed { p class="nhsuk-body-s" { "Signed by " (by) " at " (layout::long_date(at)) } }
                    @if let Some(r) = &v.reason { p data-testid="version-reason" { strong { "Reason: " } (r) } }
                    @if !v.changed.is_empty() { p data-testid="version-changed" { strong { "Changed: " } (v.changed.join(", ")) } }
                    (headings_list(&v.headings, "version-text"))
                }
            }
        }
    }
}

fn note_body(
    cx: &Cx,
    id: &str,
    p: &Page,
    error: Option<(String, String)>,
    done: Option<&str>,
) -> Markup {
    let n = &p.view.note;
    let status = n["status"].as_str().unwrap_or("unknown");
    let kind = NoteKind::of(n).map_or("Clinical note", NoteKind::label);
    let mine = me(cx)
        .as_deref()
        .is_some_and(|w| notes::author(n) == Some(w));
    let current = p.view.versions.last();
    let values: Vec<(String, String)> = current
        .map(|v| {
            v.headings
                .iter()
                .map(|h| (h.code.clone(), h.text.clone()))
                .collect()
        })
        .unwrap_or_default();
    let base = format!("/ui/notes/{}", enc(id));
    let err = |k: &str| {
        error
            .as_ref()
            .filter(|(f, _)| f == k)
            .map(|(_, m)| m.as_str())
    };
    html! {
        @if let Some(d) = done { (layout::success(d)) }
        (layout::back_link(&format!("/ui/patients/{}/notes", enc(&p.patient)), "Back to the notes"))
        (crate::chart::patient_banner(cx, &p.patient))
        span class="nhsuk-caption-l" { (patient_name(cx, &p.patient)) }
        h1 { (kind) " " (status_tag(status)) }
        @if let Some((f, m)) = &error { (layout::error_summary(&[(f.clone(), m.clone())])) }
        dl class="nhsuk-summary-list" {
            div class="nhsuk-summary-list__row" {
                dt class="nhsuk-summary-list__key" { "Author" }
                dd class="nhsuk-summary-list__value" data-testid="note-author" { (p.author.as_deref().or(notes::author(n)).unwrap_or("—")) }
            }
            div class="nhsuk-summary-list__row" {
                dt class="nhsuk-summary-list__key" { "Written" }
                dd class="nhsuk-summary-list__value" { (layout::long_date(n["date"].as_str().unwrap_or(""))) }
            }
            @if let Some((_, at)) = notes::signature(n) {
                div class="nhsuk-summary-list__row" {
                    dt class="nhsuk-summary-list__key" { "Signed" }
                    dd class="nhsuk-summary-list__value" data-testid="note-signed" { (layout::long_date(&at)) }
                }
            }
            @if let Some(r) = notes::status_reason(n) {
                div class="nhsuk-summary-list__row" {
                    dt class="nhsuk-summary-list__key" { "Reason" }
                    dd class="nhsuk-summary-list__value" data-testid="note-reason" { (r) }
                }
            }
        }
        @if let Some(v) = current { (headings_list(&v.headings, "note-text")) }
        (entries_body(cx, id, &p.entries, error.as_ref()))
        @if mine && status == "preliminary" {
            form method="post" action={ (base) "/sign" } novalidate {
                (layout::csrf(cx))
                button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="sign" { "Sign the note" }
            }
            h2 { "Edit the draft" }
            form method="post" action={ (base) "/edit" } novalidate {
                (layout::csrf(cx))
                (heading_fields(&values, error.as_ref()))
                button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" data-testid="save-draft" { "Save the draft" }
            }
        }
        @if mine && matches!(status, "final" | "amended") {
            details class="nhsuk-details" open[error.as_ref().is_some_and(|(f, _)| f == "reason" || HEADINGS.iter().any(|(c, _)| c == f))] {
                summary class="nhsuk-details__summary" data-testid="amend-open" { span class="nhsuk-details__summary-text" { "Amend this note" } }
                div class="nhsuk-details__text" {
                    p { "The signed version is kept and shown with the amendment." }
                    form method="post" action={ (base) "/amend" } novalidate {
                        (layout::csrf(cx))
                        (heading_fields(&values, error.as_ref()))
                        (textarea("reason", "Reason for the amendment", "", 2, err("reason")))
                        button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="amend" { "Amend and sign" }
                    }
                }
            }
        }
        @if mine && status != "entered-in-error" {
            (add_entry_form(cx, id, error.as_ref()))
            details class="nhsuk-details" open[err("error-reason").is_some()] {
                summary class="nhsuk-details__summary" { span class="nhsuk-details__summary-text" { "Mark as entered in error" } }
                div class="nhsuk-details__text" {
                    form method="post" action={ (base) "/error" } novalidate {
                        (layout::csrf(cx))
                        (textarea("error-reason", "Why was this note entered in error?", "", 2, err("error-reason")))
                        button class="nhsuk-button nhsuk-button--warning" data-module="nhsuk-button" type="submit" data-testid="enter-in-error" { "Mark as entered in error" }
                    }
                }
            }
        }
        (versions_body(&p.view))
    }
}

fn done_text(d: &str) -> Option<&'static str> {
    Some(match d {
        "saved" => "Draft saved.",
        "signed" => "Note signed.",
        "amended" => "Amendment signed. The earlier version is kept below.",
        "error" => "Note marked as entered in error.",
        "entry" => "Coded entry added.",
        "corrected" => "Classification code corrected.",
        _ => return None,
    })
}

/// `GET /ui/notes/{id}`.
pub(crate) async fn note_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| match load(cx, &id) {
        Ok(p) => {
            let done = q.get("done").and_then(|d| done_text(d));
            let title = NoteKind::of(&p.view.note).map_or("Clinical note", NoteKind::label);
            layout::page(cx, title, Nav::Patients, note_body(cx, &id, &p, None, done))
        }
        Err(e) => refusal(&e),
    })
    .await
}

/// The note page again with the error beside `field`.
fn shown_again(cx: &Cx, id: &str, field: String, message: String) -> Response {
    match load(cx, id) {
        Ok(p) => layout::page_with(
            StatusCode::UNPROCESSABLE_ENTITY,
            cx,
            "Clinical note",
            Nav::Patients,
            note_body(cx, id, &p, Some((field, message)), None),
        ),
        Err(e) => refusal(&e),
    }
}

fn outcome(cx: &Cx, id: &str, r: Result<(), NotesError>, done: &str, field: &str) -> Response {
    match r {
        Ok(()) => see_other(&format!("/ui/notes/{}?done={done}", enc(id))),
        Err(e @ NotesError::Invalid(..)) => {
            let f = match e.field() {
                Some("reason") if field == "error-reason" => "error-reason".to_owned(),
                Some(f) => f.to_owned(),
                None => field.to_owned(),
            };
            shown_again(cx, id, f, e.message())
        }
        Err(e) => refusal(&e),
    }
}

/// `POST /ui/notes/{id}/edit`.
pub(crate) async fn edit_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let r = notes::edit(&cx.svc, cx.access(), &id, &texts_of(&f), cx.svc.now());
        outcome(cx, &id, r, "saved", HEADINGS[0].0)
    })
    .await
}

/// `POST /ui/notes/{id}/sign`.
pub(crate) async fn sign_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, _| {
        let r = notes::sign(&cx.svc, cx.access(), &id, cx.svc.now());
        outcome(cx, &id, r, "signed", "sign")
    })
    .await
}

/// `POST /ui/notes/{id}/amend`.
pub(crate) async fn amend_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let reason = f.get("reason").map(String::as_str).unwrap_or("");
        let r = notes::amend(
            &cx.svc,
            cx.access(),
            &id,
            &texts_of(&f),
            reason,
            cx.svc.now(),
        );
        outcome(cx, &id, r, "amended", "reason")
    })
    .await
}

/// `POST /ui/notes/{id}/error`.
pub(crate) async fn error_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let reason = f.get("error-reason").map(String::as_str).unwrap_or("");
        let r = notes::enter_in_error(&cx.svc, cx.access(), &id, reason, cx.svc.now());
        outcome(cx, &id, r, "error", "error-reason")
    })
    .await
}

/// `POST /ui/notes/{id}/entries`: a coded diagnosis or procedure.
pub(crate) async fn entry_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let get = |k: &str| f.get(k).cloned().unwrap_or_default();
        let input = CodedInput {
            snomed: get("snomed"),
            category: get("category"),
            verification: get("verification"),
            classification: f
                .get("classification")
                .cloned()
                .filter(|c| !c.trim().is_empty()),
        };
        let r = coding::add_entry(&cx.svc, cx.access(), &id, &input, cx.svc.now()).map(|_| ());
        outcome(cx, &id, r, "entry", "snomed")
    })
    .await
}

/// `POST /ui/notes/{id}/entries/correct`: a coder's correction of an
/// entry's ICD-10 / OPCS-4 code.
pub(crate) async fn correct_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let reference = f.get("reference").cloned().unwrap_or_default();
        let field = format!("classification-{}", reference.replace('/', "-"));
        let code = f.get(&field).map(String::as_str).unwrap_or("");
        match coding::correct_classification(&cx.svc, cx.access(), &reference, code, cx.svc.now()) {
            Ok(()) => see_other(&format!("/ui/notes/{}?done=corrected", enc(&id))),
            Err(e @ NotesError::Invalid(..)) => shown_again(cx, &id, field, e.message()),
            Err(e) => refusal(&e),
        }
    })
    .await
}
