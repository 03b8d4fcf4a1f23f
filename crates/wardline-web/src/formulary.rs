//! The formulary pages: `/ui/formulary` searches the medicines by name
//! (each with its VTM, VMP and AMPs, form, strength, routes,
//! controlled-drug schedule, high-risk and time-critical tags, classes,
//! and a *local code* tag where the code is the trust's own; withdrawn
//! entries only when asked for), `/ui/formulary/{id}` shows one, and
//! `/ui/formulary/import` lets a holder of ManageFormulary upload or paste a
//! formulary file — each problem listed by line. Every read and the import
//! are one call to `wardline_workflow::medicines::formulary`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use wardline_core::Op;
use wardline_workflow::medicines::formulary::{
    self, Entry, Formulary, ImportError, ImportReport, Reported,
};

use crate::layout::{self, Nav};
use crate::{Cx, Form, Req, St, enc};

const TITLE: &str = "Formulary";
const IMPORT_TITLE: &str = "Import a formulary file";

fn may_import(cx: &Cx) -> bool {
    cx.access()
        .check_type(Op::Update, Some("Medication"))
        .is_ok()
}

fn load(cx: &Cx) -> Result<Formulary, Response> {
    formulary::load_as(&cx.svc, cx.access())
        .map_err(|e| layout::refusal_page(e.status(), &e.message(), "formulary"))
}

fn get<'a>(f: &'a Form, k: &str) -> &'a str {
    f.get(k).map(|s| s.trim()).unwrap_or_default()
}

/// The tags of an entry: schedule, high risk, time critical, local code,
/// withdrawn.
fn tags(e: &Entry) -> Markup {
    html! {
        @if let Some(s) = &e.controlled_drug {
            strong class="nhsuk-tag nhsuk-tag--purple" data-testid="tag-cd" title={ "Controlled drug, schedule " (s) } { "CD" (s) }
            " "
        }
        @if e.high_risk {
            strong class="nhsuk-tag nhsuk-tag--red" data-testid="tag-high-risk" { "High risk" }
            " "
        }
        @if e.time_critical {
            strong class="nhsuk-tag nhsuk-tag--orange" data-testid="tag-time-critical" { "Time critical" }
            " "
        }
        @if e.is_local() {
            strong class="nhsuk-tag nhsuk-tag--yellow" data-testid="local-code" title="A local code of this trust, not a dm+d code" { "Local code" }
            " "
        }
        @if !e.active {
            strong class="nhsuk-tag nhsuk-tag--grey" data-testid="withdrawn" { "Withdrawn" }
        }
    }
}

fn routes(e: &Entry) -> String {
    e.routes
        .iter()
        .map(|r| r.display.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn list(cx: &Cx, f: &Formulary, form: &Form) -> Markup {
    let q = get(form, "q");
    let withdrawn = get(form, "withdrawn") == "yes";
    let found: Vec<&Entry> = if q.is_empty() {
        f.entries
            .iter()
            .filter(|e| e.active || withdrawn)
            .collect()
    } else {
        f.search_all(q, withdrawn)
    };
    let active = f.entries.iter().filter(|e| e.active).count();
    html! {
        h1 { (TITLE) }
        p {
            "The medicines the trust stocks, one line per product (dm+d VMP). "
            (active) " in use"
            @let gone = f.entries.len() - active;
            @if gone > 0 { ", " (gone) " withdrawn" }
            ". Codes are dm+d unless marked as a local code."
        }
        @if may_import(cx) {
            div class="nhsuk-action-link" {
                a class="nhsuk-button nhsuk-button--secondary" href="/ui/formulary/import" data-testid="import-link" { (IMPORT_TITLE) }
            }
        }
        form method="get" action="/ui/formulary" novalidate data-testid="formulary-search" {
            div class="nhsuk-form-group" {
                label class="nhsuk-label" for="q" { "Find a medicine" }
                div class="nhsuk-hint" id="q-hint" { "By name, substance, brand or class — the start of a word is enough (amox, insulin, penicillin)." }
                input class="nhsuk-input nhsuk-input--width-30" id="q" name="q" type="search" value=(q) aria-describedby="q-hint" autocomplete="off";
            }
            div class="nhsuk-form-group" {
                div class="nhsuk-checkboxes nhsuk-checkboxes--small" {
                    div class="nhsuk-checkboxes__item" {
                        input class="nhsuk-checkboxes__input" id="withdrawn" name="withdrawn" type="checkbox" value="yes" checked[withdrawn];
                        label class="nhsuk-label nhsuk-checkboxes__label" for="withdrawn" { "Include withdrawn medicines" }
                    }
                }
            }
            button class="nhsuk-button" data-module="nhsuk-button" type="submit" { "Search" }
        }
        @if found.is_empty() {
            p data-testid="formulary-empty" {
                @if q.is_empty() { "The formulary is empty." } @else { "No medicine matches ‘" (q) "’." }
            }
        } @else {
            table class="nhsuk-table" data-testid="formulary-table" {
                caption class="nhsuk-table__caption nhsuk-u-visually-hidden" { "Medicines" }
                thead class="nhsuk-table__head" {
                    tr {
                        th scope="col" { "Medicine (VMP)" }
                        th scope="col" { "Substance (VTM)" }
                        th scope="col" { "Strength" }
                        th scope="col" { "Routes" }
                        th scope="col" { "Classes" }
                        th scope="col" { "Flags" }
                    }
                }
                tbody class="nhsuk-table__body" {
                    @for e in &found {
                        tr class="nhsuk-table__row" data-testid={ "medicine-" (e.id) } {
                            td class="nhsuk-table__cell" {
                                a href={ "/ui/formulary/" (enc(&e.id)) } { (e.name()) }
                                br;
                                span class="nhsuk-body-s" { (e.form) }
                            }
                            td class="nhsuk-table__cell" { (e.vtm.display) }
                            td class="nhsuk-table__cell" { (e.strength_text().unwrap_or_default()) }
                            td class="nhsuk-table__cell" { (routes(e)) }
                            td class="nhsuk-table__cell" { (e.classes.join(", ")) }
                            td class="nhsuk-table__cell" { (tags(e)) }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /ui/formulary` (`q`: the search; `withdrawn=yes` includes withdrawn
/// medicines).
pub(crate) async fn list_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, form| match load(cx) {
        Ok(f) => layout::page(cx, TITLE, Nav::None, list(cx, &f, &form)),
        Err(r) => r,
    })
    .await
}

fn code_line(c: &formulary::Code) -> Markup {
    html! {
        (c.display) " "
        span class="nhsuk-body-s" { "(" (c.code) ")" }
        " "
        @if c.is_local() {
            strong class="nhsuk-tag nhsuk-tag--yellow" data-testid="local-code" { "Local code" }
        } @else {
            span class="nhsuk-tag nhsuk-tag--blue" { "dm+d" }
        }
    }
}

fn view(e: &Entry, siblings: &[&Entry]) -> Markup {
    let row = |k: &str, v: Markup| {
        html! {
            div class="nhsuk-summary-list__row" {
                dt class="nhsuk-summary-list__key" { (k) }
                dd class="nhsuk-summary-list__value" { (v) }
            }
        }
    };
    let yes = |b: bool| if b { "Yes" } else { "No" };
    html! {
        (layout::back_link("/ui/formulary", "Back to the formulary"))
        span class="nhsuk-caption-l" { (e.vtm.display) }
        h1 data-testid="medicine-name" { (e.name()) }
        p data-testid="medicine-tags" { (tags(e)) }
        dl class="nhsuk-summary-list" data-testid="medicine-details" {
            (row("Product (VMP)", code_line(&e.vmp)))
            (row("Substance (VTM)", code_line(&e.vtm)))
            (row("Brands (AMPs)", html! {
                @if e.amps.is_empty() { "None listed" }
                @else { ul class="nhsuk-list" { @for a in &e.amps { li { (code_line(a)) } } } }
            }))
            (row("Form", html! { (e.form) }))
            (row("Strength", html! { (e.strength_text().unwrap_or_else(|| "As in the name".to_owned())) }))
            (row("Routes", html! { (routes(e)) }))
            (row("Unit of dose", html! { (e.unit_of_dose) }))
            (row("Controlled drug", html! {
                @match &e.controlled_drug {
                    Some(s) => { "Schedule " (s) @if e.needs_witness() { " – a second person witnesses each dose" } }
                    None => "No",
                }
            }))
            (row("High risk", html! { (yes(e.high_risk)) }))
            (row("Time critical", html! { (yes(e.time_critical)) }))
            (row("Classes", html! { (e.classes.join(", ")) }))
            (row("Usual dose", html! {
                @if let Some(q) = &e.default_dose { (formulary::parse::qty_text(q)) }
                @if let Some(fq) = &e.default_frequency { " " (fq) }
            }))
            (row("Status", html! { @if e.active { "In use" } @else { "Withdrawn: no longer offered for prescribing" } }))
        }
        @if !siblings.is_empty() {
            h2 { "Other products of " (e.vtm.display) }
            ul class="nhsuk-list" data-testid="siblings" {
                @for s in siblings {
                    li { a href={ "/ui/formulary/" (enc(&s.id)) } { (s.name()) } " " (tags(s)) }
                }
            }
        }
    }
}

/// `GET /ui/formulary/{id}`.
pub(crate) async fn view_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, _| {
        let f = match load(cx) {
            Ok(f) => f,
            Err(r) => return r,
        };
        match f.entry(&id) {
            Some(e) => {
                let siblings: Vec<&Entry> = f.of_vtm(&e.vtm.code).filter(|s| s.id != e.id).collect();
                layout::page(cx, e.name(), Nav::None, view(e, &siblings))
            }
            None => layout::refusal_page(404, &format!("There is no medicine {id} in the formulary."), "formulary"),
        }
    })
    .await
}

// ---- import ----------------------------------------------------------------------

fn import_form(cx: &Cx, text: &str, errors: &[String]) -> Markup {
    let summary: Vec<(String, String)> = errors
        .iter()
        .map(|e| ("file".to_owned(), e.clone()))
        .collect();
    html! {
        (layout::back_link("/ui/formulary", "Back to the formulary"))
        h1 { (IMPORT_TITLE) }
        p { "A CSV file with one row per product (dm+d VMP), in the format of docs/formulary-format.md. The whole file is checked first: if any line is wrong, nothing is imported and each problem is listed by line. Medicines no longer in the file are withdrawn (kept for the charts that name them, no longer offered)." }
        (layout::error_summary(&summary))
        form method="post" action="/ui/formulary/import" enctype="multipart/form-data" novalidate data-testid="formulary-import-form" {
            (layout::csrf(cx))
            div class={ "nhsuk-form-group" @if !errors.is_empty() { " nhsuk-form-group--error" } } {
                label class="nhsuk-label" for="file" { "Formulary file (.csv)" }
                @if !errors.is_empty() {
                    span class="nhsuk-error-message" id="file-error" { span class="nhsuk-u-visually-hidden" { "Error: " } "The file was not imported: see the problems above." }
                }
                input class="nhsuk-file-upload" id="file" name="file" type="file" accept=".csv,text/csv"
                    aria-describedby=[(!errors.is_empty()).then_some("file-error")];
            }
            div class="nhsuk-form-group" {
                label class="nhsuk-label" for="text" { "Or paste the file" }
                textarea class="nhsuk-textarea" id="text" name="text" rows="8" spellcheck="false" { (text) }
            }
            button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="formulary-import-submit" { "Import" }
        }
    }
}

fn reported(title: &str, id: &str, list: &[Reported]) -> Markup {
    html! {
        @if !list.is_empty() {
            h2 { (title) " (" (list.len()) ")" }
            ul class="nhsuk-list nhsuk-list--bullet" data-testid=(id) {
                @for r in list { li { a href={ "/ui/formulary/" (enc(&r.id)) } { (r.name) } } }
            }
        }
    }
}

fn report_page(r: &ImportReport) -> Markup {
    html! {
        (layout::back_link("/ui/formulary", "Back to the formulary"))
        (layout::success("The formulary file was imported."))
        h1 { "Formulary imported" }
        p data-testid="import-report" {
            (r.added.len()) " added, " (r.changed.len()) " changed, " (r.withdrawn.len()) " withdrawn, " (r.unchanged) " unchanged."
        }
        (reported("Added", "added", &r.added))
        (reported("Changed", "changed", &r.changed))
        (reported("Withdrawn", "withdrawn-list", &r.withdrawn))
    }
}

/// `GET /ui/formulary/import`.
pub(crate) async fn import_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, _| {
        if !may_import(cx) {
            return layout::error_page(
                StatusCode::FORBIDDEN,
                "You do not have access",
                "Only the formulary's managers (pharmacists) can import it.",
            );
        }
        layout::page(cx, IMPORT_TITLE, Nav::None, import_form(cx, "", &[]))
    })
    .await
}

/// The largest formulary file accepted.
const MAX_FILE: usize = 16 * 1024 * 1024;

/// `POST /ui/formulary/import` (multipart: `csrf`, the uploaded `file`
/// and/or the pasted `text`; an uploaded file wins).
pub(crate) async fn import_post(
    State(ui): St,
    req: Req,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let mut fields: HashMap<String, (Option<String>, Vec<u8>)> = HashMap::new();
    let mut failure = None;
    match multipart {
        Err(_) => failure = Some("Send the file with the form (a multipart upload)."),
        Ok(mut multipart) => loop {
            match multipart.next_field().await {
                Ok(Some(field)) => {
                    let name = field.name().unwrap_or_default().to_owned();
                    let file_name = field.file_name().map(str::to_owned);
                    match field.bytes().await {
                        Ok(b) if b.len() <= MAX_FILE => {
                            fields.insert(name, (file_name, b.to_vec()));
                        }
                        Ok(_) => failure = Some("The file is larger than 16 MB: that is not a formulary."),
                        Err(_) => failure = Some("The upload did not arrive whole. Try again."),
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    failure = Some("The upload could not be read. Choose the file again.");
                    break;
                }
            }
        },
    }
    let csrf = fields
        .get("csrf")
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("csrf", &csrf)
        .finish();
    let (file_name, file) = fields.remove("file").unwrap_or_default();
    let pasted = fields
        .remove("text")
        .map(|(_, b)| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    ui.run(req, Some(&Bytes::from(form)), move |cx, _| {
        if !may_import(cx) {
            return layout::error_page(
                StatusCode::FORBIDDEN,
                "You do not have access",
                "Only the formulary's managers (pharmacists) can import it.",
            );
        }
        let again = |text: &str, errors: Vec<String>| {
            layout::page_with(
                StatusCode::UNPROCESSABLE_ENTITY,
                cx,
                IMPORT_TITLE,
                Nav::None,
                import_form(cx, text, &errors),
            )
        };
        if let Some(m) = failure {
            return again(&pasted, vec![m.to_owned()]);
        }
        let (source, text) = if !file.is_empty() {
            match String::from_utf8(file.clone()) {
                Ok(t) => (
                    file_name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "the file".to_owned()),
                    t,
                ),
                Err(_) => return again(&pasted, vec!["The file is not UTF-8 text (save it as CSV UTF-8).".to_owned()]),
            }
        } else if !pasted.trim().is_empty() {
            ("the pasted file".to_owned(), pasted.clone())
        } else {
            return again("", vec!["Choose the formulary file, or paste it.".to_owned()]);
        };
        match formulary::import(&cx.svc, cx.access(), &text, &source) {
            Ok(r) => layout::page(cx, "Formulary imported", Nav::None, report_page(&r)),
            Err(ImportError::File(problems)) => again(&pasted, problems),
            Err(ImportError::Medicines(e)) => layout::refusal_page(e.status(), &e.message(), "formulary"),
        }
    })
    .await
}
