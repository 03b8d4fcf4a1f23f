//! Requesting tests and imaging, the requisition, and printable specimen
//! labels: forms and pages over `wardline_workflow::orders`.
//!
//! * `/ui/patients/{id}/order` — choose tests by department (or start from
//!   an order set: `?set=ID` ticks its tests), the priority, the clinical
//!   details and, for imaging, the department's questions (revealed under
//!   the ticked examination by `orders.js`; all shown without it). A duplicate within a test's retest interval
//!   is shown with who ordered it and when; the form comes back with the
//!   tests still ticked and asks for a reason to order again.
//! * `/ui/requisitions/{r}` — the requisition: its tests with status and
//!   answers, its tubes, cancelling a test with a reason.
//! * `/ui/requisitions/{r}/labels` — one label per tube (name, NHS number,
//!   date of birth, hospital number, requisition, tube and cap, tests,
//!   priority, the Code 128 barcode of the specimen identifier), with a
//!   print stylesheet sized for a 76 × 51 mm label (`orders.css`) and a
//!   print button (`orders.js`).
//! * The chart's "Orders" section ([`section`]): the patient's orders with
//!   their status, and "Order tests" for those who may.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, PreEscaped, html};
use wardline_auth::rbac::Activity;
use wardline_workflow::orders::catalogue::{self, Catalogue, Orderable, Question};
use wardline_workflow::orders::request::PRIORITIES;
use wardline_workflow::orders::{self, OrderRequest, OrdersError, label};
use wardline_workflow::pmi::PatientSummary;

use crate::layout::{self, Nav};
use crate::patients::patient_or_404;
use crate::{Cx, Form, Req, St, enc, see_other};

fn get<'a>(f: &'a Form, k: &str) -> &'a str {
    f.get(k).map(|s| s.trim()).unwrap_or_default()
}

/// A workflow refusal as a page.
fn orders_error(e: &OrdersError) -> Response {
    layout::refusal_page(e.status(), &e.message(), "orders")
}

fn priority_label(p: &str) -> &str {
    PRIORITIES
        .iter()
        .find(|(c, _)| *c == p)
        .map(|(_, l)| *l)
        .unwrap_or(p)
}

/// A ServiceRequest status in words, with the tag colour.
fn status_tag(status: &str) -> Markup {
    let (text, class) = match status {
        "active" => ("Requested", "nhsuk-tag--blue"),
        "completed" => ("Completed", "nhsuk-tag--green"),
        "revoked" => ("Cancelled", "nhsuk-tag--grey"),
        "on-hold" => ("On hold", "nhsuk-tag--yellow"),
        "draft" => ("Draft", "nhsuk-tag--white"),
        "entered-in-error" => ("Entered in error", "nhsuk-tag--red"),
        other => (other, "nhsuk-tag--grey"),
    };
    html! { strong class={ "nhsuk-tag " (class) } data-status=(status) { (text) } }
}

fn load_catalogue(cx: &Cx) -> Result<Catalogue, Response> {
    catalogue::load(&cx.svc).map_err(|e| crate::fhir_error(&e))
}

/// The page's own stylesheet and script (`orders.css`, `orders.js`).
fn assets() -> Markup {
    html! {
        link rel="stylesheet" href={ "/ui/static/orders.css?v=" (crate::assets::version("orders.css")) };
        script type="module" src={ "/ui/static/orders.js?v=" (crate::assets::version("orders.js")) } {}
    }
}

// ---------------------------------------------------------------- the form

fn checkbox_name(o: &Orderable) -> String {
    format!("t:{}", o.id)
}

fn answer_name(o: &Orderable, q: &Question) -> String {
    format!("q:{}:{}", o.id, q.link_id)
}

/// The request the form describes.
fn request_of(cat: &Catalogue, patient: &str, f: &Form) -> OrderRequest {
    let chosen: Vec<&Orderable> = cat
        .orderables
        .iter()
        .filter(|o| f.contains_key(&checkbox_name(o)))
        .collect();
    let mut answers = std::collections::BTreeMap::new();
    for o in &chosen {
        if let Some(qn) = &o.questionnaire {
            let given: std::collections::BTreeMap<String, String> = qn
                .items
                .iter()
                .filter_map(|q| {
                    let v = get(f, &answer_name(o, q));
                    (!v.is_empty()).then(|| (q.link_id.clone(), v.to_owned()))
                })
                .collect();
            if !given.is_empty() {
                answers.insert(o.id.clone(), given);
            }
        }
    }
    OrderRequest {
        patient: patient.to_owned(),
        orderables: chosen.iter().map(|o| o.id.clone()).collect(),
        priority: get(f, "priority").to_owned(),
        clinical_details: get(f, "details").to_owned(),
        answers,
        duplicate_override: Some(get(f, "override").to_owned()).filter(|s| !s.is_empty()),
    }
}

fn question_field(o: &Orderable, q: &Question, f: &Form) -> Markup {
    let name = answer_name(o, q);
    let id = name.replace(':', "-");
    let value = get(f, &name);
    let label = if q.required {
        q.text.clone()
    } else {
        format!("{} (optional)", q.text)
    };
    html! {
        @match q.kind.as_str() {
            "choice" | "boolean" => {
                @let options: Vec<(String, String)> = if q.kind == "boolean" {
                    vec![("yes".into(), "Yes".into()), ("no".into(), "No".into())]
                } else {
                    q.options.clone()
                };
                div class="nhsuk-form-group" {
                    fieldset class="nhsuk-fieldset" {
                        legend class="nhsuk-fieldset__legend nhsuk-fieldset__legend--s" { (label) }
                        div class="nhsuk-radios nhsuk-radios--small" data-module="nhsuk-radios" {
                            @for (i, (code, text)) in options.iter().enumerate() {
                                @let rid = format!("{id}-{i}");
                                div class="nhsuk-radios__item" {
                                    input class="nhsuk-radios__input" id=(rid) name=(name) type="radio" value=(code) checked[value == code];
                                    label class="nhsuk-label nhsuk-radios__label" for=(rid) { (text) }
                                }
                            }
                        }
                    }
                }
            }
            "text" => {
                div class="nhsuk-form-group" {
                    label class="nhsuk-label" for=(id) { (label) }
                    textarea class="nhsuk-textarea" id=(id) name=(name) rows="2" { (value) }
                }
            }
            kind => {
                div class="nhsuk-form-group" {
                    label class="nhsuk-label" for=(id) { (label) }
                    input class={ "nhsuk-input" @if kind == "decimal" { " nhsuk-input--width-5" } }
                        id=(id) name=(name) type="text" value=(value) autocomplete="off"
                        inputmode=[(kind == "decimal").then_some("decimal")];
                }
            }
        }
    }
}

fn orderable_hint(o: &Orderable) -> String {
    let mut parts = Vec::new();
    if let Some(s) = &o.specimen {
        parts.push(match &s.colour {
            Some(c) if !s.container.to_lowercase().contains(&c.to_lowercase()) => {
                format!("{} ({c})", s.container)
            }
            _ => s.container.clone(),
        });
    }
    if let Some(m) = &o.modality {
        parts.push(format!("Modality {m}"));
    }
    if o.ionising {
        parts.push("Ionising radiation".into());
    }
    if let Some(p) = &o.preparation {
        parts.push(p.clone());
    }
    if let Some(t) = &o.timing {
        parts.push(t.clone());
    }
    if let Some(h) = o.retest_interval_hours {
        parts.push(format!(
            "Not repeated within {}",
            match h {
                h if h % 24 == 0 && h >= 48 => format!("{} days", h / 24),
                h => format!("{h} hours"),
            }
        ));
    }
    parts.join(" · ")
}

fn department_fieldset(dept: &str, list: &[&Orderable], f: &Form, set: &[String]) -> Markup {
    html! {
        div class="nhsuk-form-group" {
            fieldset class="nhsuk-fieldset" data-testid={ "department-" (dept) } {
                legend class="nhsuk-fieldset__legend nhsuk-fieldset__legend--m" { (catalogue::department_name(dept)) }
                div class="nhsuk-checkboxes nhsuk-checkboxes--small" data-module="nhsuk-checkboxes" {
                    @for o in list {
                        @let name = checkbox_name(o);
                        @let id = format!("t-{}", o.id);
                        @let checked = f.contains_key(&name) || set.contains(&o.id);
                        @let hint = orderable_hint(o);
                        div class="nhsuk-checkboxes__item" {
                            input class="nhsuk-checkboxes__input" id=(id) name=(name) type="checkbox" value="yes"
                                checked[checked]
                                aria-describedby=[(!hint.is_empty()).then(|| format!("{id}-hint"))]
                                data-reveal=[o.questionnaire.as_ref().map(|_| format!("conditional-{id}"))];
                            label class="nhsuk-label nhsuk-checkboxes__label" for=(id) {
                                (o.title)
                                @if o.local_code { " " strong class="nhsuk-tag nhsuk-tag--grey" title="A local code, not SNOMED CT" { "Local code" } }
                            }
                            @if !hint.is_empty() {
                                div class="nhsuk-hint nhsuk-checkboxes__hint" id={ (id) "-hint" } { (hint) }
                            }
                        }
                        @if let Some(qn) = &o.questionnaire {
                            div class="nhsuk-checkboxes__conditional" id={ "conditional-" (id) } data-testid={ "questions-" (o.id) } {
                                @for q in &qn.items { (question_field(o, q, f)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn order_form(
    cx: &Cx,
    p: &PatientSummary,
    cat: &Catalogue,
    f: &Form,
    error: Option<&str>,
    duplicates: &[orders::DuplicateWarning],
) -> Markup {
    let set: Vec<String> = cat
        .set(get(f, "set"))
        .map(|s| s.orderables.clone())
        .unwrap_or_default();
    let mut departments: Vec<(&str, Vec<&Orderable>)> = Vec::new();
    for o in cat.orderables.iter().filter(|o| o.active) {
        match departments.iter_mut().find(|(d, _)| *d == o.department) {
            Some((_, v)) => v.push(o),
            None => departments.push((o.department.as_str(), vec![o])),
        }
    }
    let priority = match get(f, "priority") {
        "" => "routine",
        p => p,
    };
    let action = format!("/ui/patients/{}/order", enc(&p.id));
    html! {
        (assets())
        (layout::back_link(&format!("/ui/patients/{}", enc(&p.id)), "Back to the record"))
        (crate::chart::banner(p, None))
        h2 { "Order tests" }
        @if let Some(e) = error { (layout::error_summary(&[("tests".to_owned(), e.to_owned())])) }
        @let sets: Vec<_> = cat.sets.iter().filter(|s| s.active).collect();
        @if !sets.is_empty() {
            details class="nhsuk-details" open[!set.is_empty()] data-testid="order-sets" {
                summary class="nhsuk-details__summary" { span class="nhsuk-details__summary-text" { "Start from an order set" } }
                div class="nhsuk-details__text" {
                    ul class="nhsuk-list" {
                        @for s in &sets {
                            li {
                                a href={ (action) "?set=" (enc(&s.id)) } { (s.title) }
                                " – "
                                (s.orderables.iter().filter_map(|id| cat.orderable(id)).map(|o| o.title.as_str()).collect::<Vec<_>>().join(", "))
                            }
                        }
                    }
                }
            }
        }
        form method="post" action=(action) novalidate {
            (layout::csrf(cx))
            @if !duplicates.is_empty() {
                div class="nhsuk-warning-callout" data-testid="duplicate-warning" {
                    h2 class="nhsuk-warning-callout__label" {
                        span role="text" { span class="nhsuk-u-visually-hidden" { "Important: " } "Possible duplicate order" }
                    }
                    ul {
                        @for w in duplicates {
                            li {
                                (w.message()) " "
                                @if let Some(r) = &w.requisition { a href={ "/ui/requisitions/" (enc(r)) } { "See requisition " (r) } }
                            }
                        }
                    }
                    p { "Untick the test, or say why it must be repeated now. The reason is kept with the order." }
                    div class="nhsuk-form-group" {
                        label class="nhsuk-label" for="override" { "Reason to order again" }
                        textarea class="nhsuk-textarea" id="override" name="override" rows="2" { (get(f, "override")) }
                    }
                }
            }
            div id="tests" {
                @for (d, list) in &departments { (department_fieldset(d, list, f, &set)) }
            }
            (layout::radios("priority", "Priority", &PRIORITIES, priority, None))
            div class="nhsuk-form-group" {
                label class="nhsuk-label" for="details" { "Clinical details" }
                div class="nhsuk-hint" id="details-hint" { "What the laboratory or radiology department should know: the working diagnosis, relevant treatment, why it is needed." }
                textarea class="nhsuk-textarea" id="details" name="details" rows="3" aria-describedby="details-hint" { (get(f, "details")) }
            }
            button class="nhsuk-button" data-module="nhsuk-button" type="submit" { "Place order" }
        }
    }
}

pub(crate) async fn order_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        if !cx.role.is_some_and(|r| r.has(Activity::OrderTests)) {
            return layout::error_page(
                StatusCode::FORBIDDEN,
                "You do not have access",
                "Your position does not include ordering tests or imaging.",
            );
        }
        let p = match patient_or_404(cx, &id) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let cat = match load_catalogue(cx) {
            Ok(c) => c,
            Err(r) => return r,
        };
        layout::page(
            cx,
            "Order tests",
            Nav::Patients,
            order_form(cx, &p, &cat, &q, None, &[]),
        )
    })
    .await
}

pub(crate) async fn order_post(
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
        let cat = match load_catalogue(cx) {
            Ok(c) => c,
            Err(r) => return r,
        };
        let request = request_of(&cat, &p.id, &f);
        match orders::place(&cx.svc, cx.access(), &cat, &request) {
            Ok(placed) => see_other(&format!(
                "/ui/requisitions/{}?done=placed",
                enc(&placed.requisition)
            )),
            Err(OrdersError::Duplicate(ws)) => layout::page_with(
                StatusCode::CONFLICT,
                cx,
                "Order tests",
                Nav::Patients,
                order_form(cx, &p, &cat, &f, None, &ws),
            ),
            Err(e @ (OrdersError::Invalid(_) | OrdersError::Conflict(_))) => layout::page_with(
                StatusCode::UNPROCESSABLE_ENTITY,
                cx,
                "Order tests",
                Nav::Patients,
                order_form(cx, &p, &cat, &f, Some(&layout::sentence(&e.message())), &[]),
            ),
            Err(e) => orders_error(&e),
        }
    })
    .await
}

// ---------------------------------------------------------------- the requisition

pub(crate) async fn requisition_page(State(ui): St, req: Req, Path(r): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        let rq = match orders::requisition(&cx.svc, cx.access(), &r) {
            Ok(x) => x,
            Err(e) => return orders_error(&e),
        };
        let may_cancel = cx.role.is_some_and(|r| r.has(Activity::OrderTests));
        let body = html! {
            @match get(&q, "done") {
                "placed" => (layout::success(&format!("Order placed: requisition {}.", rq.requisition))),
                "cancelled" => (layout::success("The test was cancelled.")),
                _ => {}
            }
            (layout::back_link(&format!("/ui/patients/{}", enc(&rq.patient.id)), "Back to the record"))
            (crate::chart::banner(&rq.patient, None))
            h2 { "Requisition " span data-testid="requisition" { (rq.requisition) } }
            dl class="nhsuk-summary-list" {
                div class="nhsuk-summary-list__row" {
                    dt class="nhsuk-summary-list__key" { "Requested" }
                    dd class="nhsuk-summary-list__value" {
                        (layout::long_date(&rq.authored_on))
                        @if let Some(w) = &rq.requester { " by " (w) }
                    }
                }
                div class="nhsuk-summary-list__row" {
                    dt class="nhsuk-summary-list__key" { "Priority" }
                    dd class="nhsuk-summary-list__value" data-testid="priority" { (priority_label(&rq.priority)) }
                }
                div class="nhsuk-summary-list__row" {
                    dt class="nhsuk-summary-list__key" { "Clinical details" }
                    dd class="nhsuk-summary-list__value" { (rq.clinical_details) }
                }
            }
            h2 { "Tests" }
            table class="nhsuk-table" data-testid="requests" {
                thead class="nhsuk-table__head" {
                    tr { th scope="col" { "Order number" } th scope="col" { "Test" } th scope="col" { "Status" } th scope="col" { "Tube" } }
                }
                tbody class="nhsuk-table__body" {
                    @for l in &rq.requests {
                        tr class="nhsuk-table__row" data-testid="request" {
                            td class="nhsuk-table__cell" { (l.placer) }
                            td class="nhsuk-table__cell" {
                                (l.title)
                                @if !l.answers.is_empty() {
                                    dl class="wl-answers" {
                                        @for (question, answer) in &l.answers { dt { (question) } dd { (answer) } }
                                    }
                                }
                                @if let Some(o) = &l.duplicate_override {
                                    p class="nhsuk-body-s" data-testid="override" { "Ordered again within its retest interval: " (o) }
                                }
                                @for n in &l.notes { p class="nhsuk-body-s" { (n) } }
                            }
                            td class="nhsuk-table__cell" { (status_tag(&l.status)) }
                            td class="nhsuk-table__cell" {
                                (l.specimen.as_deref().unwrap_or("–"))
                                @if may_cancel && (l.status == "active" || l.status == "on-hold" || l.status == "draft") {
                                    details class="nhsuk-details wl-cancel" {
                                        summary class="nhsuk-details__summary" { span class="nhsuk-details__summary-text" { "Cancel this test" } }
                                        div class="nhsuk-details__text" {
                                            form method="post" action={ "/ui/requisitions/" (enc(&rq.requisition)) "/cancel" } novalidate {
                                                (layout::csrf(cx))
                                                input type="hidden" name="request" value=(l.id);
                                                div class="nhsuk-form-group" {
                                                    label class="nhsuk-label" for={ "reason-" (l.id) } { "Reason" }
                                                    input class="nhsuk-input" id={ "reason-" (l.id) } name="reason" type="text" autocomplete="off";
                                                }
                                                button class="nhsuk-button nhsuk-button--secondary nhsuk-button--small" data-module="nhsuk-button" type="submit" { "Cancel test" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if !rq.specimens.is_empty() {
                h2 { "Specimens" }
                table class="nhsuk-table" data-testid="specimens" {
                    thead class="nhsuk-table__head" {
                        tr { th scope="col" { "Specimen" } th scope="col" { "Tube" } th scope="col" { "Tests" } th scope="col" { "Laboratory" } }
                    }
                    tbody class="nhsuk-table__body" {
                        @for s in &rq.specimens {
                            tr class="nhsuk-table__row" {
                                td class="nhsuk-table__cell" data-testid="specimen-id" { (s.identifier) }
                                td class="nhsuk-table__cell" { (s.container) @if let Some(c) = &s.colour { " (" (c) ")" } }
                                td class="nhsuk-table__cell" { (s.tests.join(", ")) }
                                td class="nhsuk-table__cell" {
                                    @match &s.received {
                                        Some(t) => { "Received " (layout::long_date(t)) }
                                        None => { "Not yet received" }
                                    }
                                }
                            }
                        }
                    }
                }
                a class="nhsuk-button" href={ "/ui/requisitions/" (enc(&rq.requisition)) "/labels" } data-testid="print-labels" { "Print specimen labels" }
            }
        };
        layout::page(cx, &format!("Requisition {}", rq.requisition), Nav::Patients, body)
    })
    .await
}

pub(crate) async fn cancel_post(
    State(ui): St,
    req: Req,
    Path(r): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        match orders::cancel(&cx.svc, cx.access(), get(&f, "request"), get(&f, "reason")) {
            Ok(()) => see_other(&format!("/ui/requisitions/{}?done=cancelled", enc(&r))),
            Err(e) => orders_error(&e),
        }
    })
    .await
}

// ---------------------------------------------------------------- labels

fn label_markup(l: &label::Label) -> Markup {
    html! {
        div class="wl-label" data-testid="label" data-specimen=(l.specimen) {
            p class="wl-label__name" { strong { (l.patient_name) } }
            p class="wl-label__line" {
                "NHS " span data-testid="label-nhs" { (l.nhs_number.as_deref().unwrap_or("not recorded")) }
                " · DOB " (l.birth_date.as_deref().map(layout::long_date).unwrap_or_else(|| "not recorded".into()))
            }
            @if let Some(h) = &l.hospital_number { p class="wl-label__line" { "Hospital no. " (h) } }
            p class="wl-label__line" {
                "Req " span data-testid="label-requisition" { (l.requisition) }
                " · " (layout::long_date(&l.requested))
                @if l.priority != "routine" { " · " strong { (priority_label(&l.priority).to_uppercase()) } }
            }
            p class="wl-label__line" data-testid="label-tube" {
                (l.container)
                @if let Some(c) = l.colour.as_ref().filter(|c| !l.container.to_lowercase().contains(&c.to_lowercase())) { " – " (c) }
            }
            p class="wl-label__line" data-testid="label-tests" { (l.tests.join(", ")) }
            div class="wl-label__barcode" data-testid="label-barcode" { (PreEscaped(&l.barcode)) }
        }
    }
}

pub(crate) async fn labels_page(State(ui): St, req: Req, Path(r): Path<String>) -> Response {
    ui.run(req, None, move |cx, _| {
        let rq = match orders::requisition(&cx.svc, cx.access(), &r) {
            Ok(x) => x,
            Err(e) => return orders_error(&e),
        };
        let labels = match label::labels(&rq) {
            Ok(l) => l,
            Err(e) => return orders_error(&e),
        };
        let body = html! {
            (assets())
            div class="wl-no-print" {
                (layout::back_link(&format!("/ui/requisitions/{}", enc(&rq.requisition)), "Back to the requisition"))
                h1 { "Specimen labels" }
                p { "Requisition " (rq.requisition) " for " (rq.patient.display_name) ": "
                    (labels.len()) @if labels.len() == 1 { " label" } @else { " labels" }
                    ", one for each tube. Check the patient's identity against their wristband before labelling." }
                @if labels.is_empty() {
                    p data-testid="no-labels" { "This requisition has no specimens to label (imaging only)." }
                } @else {
                    button class="nhsuk-button" data-module="nhsuk-button" type="button" data-print="" { "Print labels" }
                }
            }
            div class="wl-labels" data-testid="labels" {
                @for l in &labels { (label_markup(l)) }
            }
        };
        layout::page(
            cx,
            &format!("Labels for {}", rq.requisition),
            Nav::Patients,
            body,
        )
    })
    .await
}

// ---------------------------------------------------------------- the chart

/// The chart's "Orders" section: the patient's latest orders with their
/// status, and "Order tests" for those whose position orders.
pub(crate) fn section(cx: &Cx, patient: &str) -> Markup {
    let may_order = cx.role.is_some_and(|r| r.has(Activity::OrderTests));
    let found = orders::patient_orders(&cx.svc, cx.access(), patient, 20);
    if let Err(e) = &found
        && e.status() != 403
    {
        tracing::warn!(error = %e, patient = %patient, "orders could not be read");
    }
    html! {
        section aria-labelledby="orders-heading" data-testid="orders-section" {
            h2 id="orders-heading" { "Orders" }
            @match &found {
                Err(e) if e.status() == 403 => p { "Orders are not shown to your position." },
                Err(_) => {
                    p data-testid="orders-failed" { "Wardline could not read this patient's orders. Try again later." }
                },
                Ok((lines, withheld)) => {
                    @if lines.is_empty() && *withheld == 0 {
                        p data-testid="orders-none" { "No tests or imaging ordered." }
                    }
                    @if !lines.is_empty() {
                        table class="nhsuk-table" data-testid="orders" {
                            thead class="nhsuk-table__head" {
                                tr { th scope="col" { "Requested" } th scope="col" { "Test" } th scope="col" { "Priority" } th scope="col" { "Status" } }
                            }
                            tbody class="nhsuk-table__body" {
                                @for l in lines {
                                    tr class="nhsuk-table__row" {
                                        td class="nhsuk-table__cell" {
                                            (layout::long_date(&l.authored_on))
                                            @if let Some(w) = &l.requester { br; span class="nhsuk-body-s" { (w) } }
                                        }
                                        td class="nhsuk-table__cell" {
                                            (l.title)
                                            @if let Some(r) = &l.requisition {
                                                br; a href={ "/ui/requisitions/" (enc(r)) } { (r) }
                                            }
                                        }
                                        td class="nhsuk-table__cell" { (priority_label(&l.priority)) }
                                        td class="nhsuk-table__cell" { (status_tag(&l.status)) }
                                    }
                                }
                            }
                        }
                    }
                    @if *withheld > 0 {
                        div class="nhsuk-inset-text wl-hidden" data-testid="orders-withheld" {
                            p { (withheld) @if *withheld == 1 { " order is" } @else { " orders are" } " not shown to you." }
                        }
                    }
                }
            }
            @if may_order {
                a class="nhsuk-button nhsuk-button--secondary" href={ "/ui/patients/" (enc(patient)) "/order" } data-testid="order-tests" { "Order tests" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wardline_workflow::orders::catalogue::Questionnaire;

    fn orderable(id: &str, questions: Option<Questionnaire>) -> Orderable {
        Orderable {
            id: id.into(),
            url: format!("https://fhir.wardline.invalid/ActivityDefinition/{id}"),
            title: id.into(),
            code: serde_json::json!({"text": id}),
            local_code: false,
            department: "haematology".into(),
            imaging: questions.is_some(),
            modality: None,
            ionising: false,
            specimen: None,
            preparation: None,
            timing: None,
            retest_interval_hours: None,
            questionnaire: questions,
            analytes: Vec::new(),
            active: true,
            description: None,
        }
    }

    fn questions() -> Questionnaire {
        Questionnaire {
            url: "q".into(),
            id: "q".into(),
            title: "q".into(),
            items: vec![Question {
                link_id: "clinical-indication".into(),
                text: "Clinical indication".into(),
                kind: "string".into(),
                required: true,
                options: Vec::new(),
            }],
        }
    }

    #[test]
    fn the_form_becomes_a_request_of_the_ticked_tests_and_their_answers() {
        let cat = Catalogue {
            orderables: vec![
                orderable("path-fbc", None),
                orderable("rad-cxr", Some(questions())),
                orderable("rad-ct-head", Some(questions())),
            ],
            ..Catalogue::default()
        };
        let mut f = Form::new();
        f.insert("t:path-fbc".into(), "yes".into());
        f.insert("t:rad-cxr".into(), "yes".into());
        f.insert("q:rad-cxr:clinical-indication".into(), "Cough".into());
        f.insert(
            "q:rad-ct-head:clinical-indication".into(),
            "Not ticked".into(),
        );
        f.insert("priority".into(), "urgent".into());
        f.insert("details".into(), " ?pneumonia ".into());
        let r = request_of(&cat, "p1", &f);
        assert_eq!(
            r.orderables,
            vec!["path-fbc".to_owned(), "rad-cxr".to_owned()]
        );
        assert_eq!(r.answers.len(), 1, "only the ticked test's answers");
        assert_eq!(r.answers["rad-cxr"]["clinical-indication"], "Cough");
        assert_eq!(r.clinical_details, "?pneumonia");
        assert_eq!(r.priority, "urgent");
        assert_eq!(r.duplicate_override, None);
        f.insert("override".into(), "Trend".into());
        assert_eq!(
            request_of(&cat, "p1", &f).duplicate_override.as_deref(),
            Some("Trend")
        );
    }

    #[test]
    fn a_ticked_imaging_test_reveals_its_questions() {
        let o = orderable("rad-cxr", Some(questions()));
        let m = department_fieldset("radiology", &[&o], &Form::new(), &["rad-cxr".to_owned()])
            .into_string();
        assert!(m.contains(r#"data-reveal="conditional-t-rad-cxr""#), "{m}");
        assert!(m.contains(r#"id="conditional-t-rad-cxr""#), "{m}");
        assert!(m.contains(r#"name="q:rad-cxr:clinical-indication""#), "{m}");
        assert!(m.contains("checked"), "an order set ticks its tests: {m}");
    }
}
