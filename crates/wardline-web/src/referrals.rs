//! e-Referral pages (issue 18): a patient's referrals and a new one from
//! the chart (`/ui/patients/{id}/referrals`: receiving provider, priority,
//! reason, documents to attach, a PDF uploaded), one referral (`/ui/referrals/{id}`: the
//! provider named with its ODS code before sending; send, cancel, send
//! again after a failed delivery; on a received one accept or reject), the
//! referrals sent with their states (`/ui/referrals`) and the received
//! referrals to triage (`/ui/referrals/triage`). Every rule is
//! `wardline_workflow::referrals`'.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use maud::{Markup, html};
use wardline_workflow::orders::request::person_name;
use wardline_workflow::referrals::{
    self, Draft, PRIORITIES, ReferralError, State as Referral, Summary, delivery_label, part,
};

use crate::layout::{self, Nav};
use crate::{Cx, Form, Req, St, enc, see_other};

fn refusal(e: &ReferralError) -> Response {
    layout::refusal_page(e.status(), &e.message(), "referral")
}

fn state_tag(s: Referral, inbound: bool) -> Markup {
    let class = match s {
        Referral::Draft => "nhsuk-tag nhsuk-tag--grey",
        Referral::Sent => "nhsuk-tag nhsuk-tag--blue",
        Referral::Accepted => "nhsuk-tag nhsuk-tag--green",
        Referral::Rejected => "nhsuk-tag nhsuk-tag--red",
        Referral::Cancelled => "nhsuk-tag nhsuk-tag--orange",
    };
    html! { strong class=(class) data-testid="referral-state" data-state=(s.code()) { (if inbound { s.inbound_label() } else { s.label() }) } }
}

fn priority_label(p: &str) -> &str {
    PRIORITIES
        .iter()
        .find(|(c, _)| *c == p)
        .map_or(p, |(_, l)| l)
}

pub(crate) fn patient_name(cx: &Cx, reference: &str) -> String {
    let id = reference.trim_start_matches("Patient/");
    cx.svc
        .read_as(cx.access(), "Patient", id)
        .ok()
        .flatten()
        .and_then(|p| person_name(&p))
        .unwrap_or_else(|| "Unnamed patient".into())
}

fn table(cx: &Cx, rows: &[Summary], inbound: bool, testid: &str) -> Markup {
    html! {
        @if rows.is_empty() {
            p data-testid={ (testid) "-empty" } { "None." }
        } @else {
            table class="nhsuk-table" data-testid=(testid) {
                thead class="nhsuk-table__head" {
                    tr {
                        th scope="col" { "Date" } th scope="col" { "Patient" }
                        th scope="col" { @if inbound { "From" } @else { "To" } }
                        th scope="col" { "Priority" } th scope="col" { "Reason" } th scope="col" { "State" }
                        @if !inbound { th scope="col" { "Delivery" } }
                    }
                }
                tbody class="nhsuk-table__body" {
                    @for r in rows {
                        tr class="nhsuk-table__row" data-testid="referral-row" data-referral=(r.id) {
                            td class="nhsuk-table__cell" { (layout::long_date(&r.authored)) }
                            td class="nhsuk-table__cell" { (patient_name(cx, &r.patient)) }
                            td class="nhsuk-table__cell" { (r.receiver) }
                            td class="nhsuk-table__cell" { (priority_label(&r.priority)) }
                            td class="nhsuk-table__cell" { a href={ "/ui/referrals/" (enc(&r.id)) } data-testid="open-referral" { (r.reason) } }
                            td class="nhsuk-table__cell" { (state_tag(r.state, inbound)) }
                            @if !inbound { td class="nhsuk-table__cell" data-testid="delivery" { (r.delivery.as_deref().unwrap_or("—")) } }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /ui/referrals`: the referrals sent, newest first.
pub(crate) async fn out_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, _| {
        match referrals::list(&cx.svc, cx.access(), false, None) {
            Ok(rows) => layout::page(
                cx,
                "Referrals sent",
                Nav::None,
                html! {
                    h1 { "Referrals sent" }
                    p { a href="/ui/referrals/triage" { "Referrals received to triage" } }
                    (table(cx, &rows, false, "referrals-out"))
                },
            ),
            Err(e) => refusal(&e),
        }
    })
    .await
}

/// `GET /ui/referrals/triage`: the referrals received, newest first.
pub(crate) async fn triage_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, q| {
        // issue 19: the worklist is shown even when an answered referral
        // cannot be listed for this user.
        let done = referrals::list(&cx.svc, cx.access(), true, None).map(|rows| {
            rows.into_iter()
                .filter(|r| r.state != Referral::Sent)
                .collect::<Vec<Summary>>()
        });
        layout::page(
            cx,
            "Referrals received",
            Nav::None,
            html! {
                h1 { "Referrals received" }
                p { a href="/ui/waiting-lists" { "Waiting lists" } " · " a href="/ui/rtt/ptl" { "Patient-targeted list (PTL)" } }
                h2 { "To triage" }
                // issue 19: by consultant and specialty, oldest received first.
                (crate::rtt::triage_worklist(cx, &q))
                h2 { "Answered" }
                @match &done {
                    Ok(done) => (table(cx, done, true, "answered")),
                    Err(e) => p class="nhsuk-error-message" data-testid="answered-refused" { (e.message()) },
                }
            },
        )
    })
    .await
}

/// `GET /ui/patients/{id}/referrals`: the patient's referrals.
pub(crate) async fn patient_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, _| {
        let p = format!("Patient/{id}");
        match referrals::list(&cx.svc, cx.access(), false, Some(&p)) {
            Ok(rows) => layout::page(
                cx,
                "Referrals",
                Nav::Patients,
                html! {
                    (layout::back_link(&format!("/ui/patients/{}", enc(&id)), "Back to the patient"))
                    (crate::chart::patient_banner(cx, &p))
                    span class="nhsuk-caption-l" { (patient_name(cx, &p)) }
                    h1 { "Referrals" }
                    p { a class="nhsuk-button" href={ "/ui/patients/" (enc(&id)) "/referrals/new" } data-testid="new-referral" { "Make a referral" } }
                    (table(cx, &rows, false, "referrals-out"))
                },
            ),
            Err(e) => refusal(&e),
        }
    })
    .await
}

fn new_body(cx: &Cx, patient: &str, f: &Form, error: Option<&ReferralError>) -> Response {
    let providers = match referrals::providers(&cx.svc, cx.access()) {
        Ok(p) => p,
        Err(e) => return refusal(&e),
    };
    let docs = match referrals::documents(&cx.svc, cx.access(), patient) {
        Ok(d) => d,
        Err(e) => return refusal(&e),
    };
    let err = |field: &str| {
        error
            .filter(|e| e.field() == Some(field))
            .map(|e| e.message())
    };
    let mut options = vec![(String::new(), "Choose a provider".to_owned())];
    options.extend(providers.iter().map(|p| {
        (
            p.id.clone(),
            match &p.ods {
                Some(o) => format!("{} ({o})", p.name),
                None => p.name.clone(),
            },
        )
    }));
    let val = |k: &str| f.get(k).cloned().unwrap_or_default();
    let priority = f.get("priority").map_or("routine", String::as_str);
    let reason_err = err("reason");
    let body = html! {
        (layout::back_link(&format!("/ui/patients/{}/referrals", enc(patient)), "Back to the referrals"))
        (crate::chart::patient_banner(cx, patient))
        span class="nhsuk-caption-l" { (patient_name(cx, &format!("Patient/{patient}"))) }
        h1 { "Make a referral" }
        @if let Some(e) = error {
            (layout::error_summary(&[(e.field().unwrap_or("receiver").to_owned(), e.message())]))
        }
        form method="post" action={ "/ui/patients/" (enc(patient)) "/referrals" } novalidate {
            (layout::csrf(cx))
            (layout::select("receiver", "Refer to", &options, &val("receiver"), err("receiver").as_deref()))
            (layout::radios("priority", "Priority", &PRIORITIES, priority, err("priority").as_deref()))
            div class={ "nhsuk-form-group" @if reason_err.is_some() { " nhsuk-form-group--error" } } {
                label class="nhsuk-label" for="reason" { "Reason for referral" }
                @if let Some(e) = &reason_err {
                    span class="nhsuk-error-message" id="reason-error" { span class="nhsuk-u-visually-hidden" { "Error: " } (e) }
                }
                textarea class={ "nhsuk-textarea" @if reason_err.is_some() { " nhsuk-textarea--error" } } id="reason" name="reason" rows="4"
                    aria-describedby=[reason_err.as_ref().map(|_| "reason-error")] { (val("reason")) }
            }
            div class={ "nhsuk-form-group" @if err("attachments").is_some() { " nhsuk-form-group--error" } } {
                fieldset class="nhsuk-fieldset" id="attachments" {
                    legend class="nhsuk-fieldset__legend nhsuk-fieldset__legend--s" { "Documents to send with it" }
                    @if let Some(e) = err("attachments") {
                        span class="nhsuk-error-message" id="attachments-error" { span class="nhsuk-u-visually-hidden" { "Error: " } (e) }
                    }
                    @if docs.is_empty() { p class="nhsuk-hint" { "The patient has no documents to attach." } }
                    div class="nhsuk-checkboxes" {
                        @for (id, title, date) in &docs {
                            @let name = format!("attach-{id}");
                            div class="nhsuk-checkboxes__item" {
                                input class="nhsuk-checkboxes__input" id=(name) name=(name) type="checkbox" value="yes" checked[f.contains_key(&name)];
                                label class="nhsuk-label nhsuk-checkboxes__label" for=(name) {
                                    (title) @if !date.is_empty() { " (" (layout::long_date(date)) ")" }
                                }
                            }
                        }
                    }
                }
            }
            button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="save-referral" { "Save as draft" }
        }
        h2 { "Attach a PDF from your computer" }
        form method="post" action={ "/ui/patients/" (enc(patient)) "/referrals/upload" } enctype="multipart/form-data" novalidate data-testid="upload-form" {
            (layout::csrf(cx))
            (layout::input(&layout::Field { value: "", ..layout::Field::new("title", "Document title") }))
            div class={ "nhsuk-form-group" @if err("pdf").is_some() { " nhsuk-form-group--error" } } {
                label class="nhsuk-label" for="pdf" { "PDF file" }
                @if let Some(e) = err("pdf") {
                    span class="nhsuk-error-message" id="pdf-error" { span class="nhsuk-u-visually-hidden" { "Error: " } (e) }
                }
                input class="nhsuk-file-upload" id="pdf" name="pdf" type="file" accept="application/pdf"
                    aria-describedby=[err("pdf").map(|_| "pdf-error")];
            }
            button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" data-testid="upload" { "Upload and attach" }
        }
    };
    layout::page(cx, "Make a referral", Nav::Patients, body)
}

/// `GET /ui/patients/{id}/referrals/new`.
pub(crate) async fn new_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, f| new_body(cx, &id, &f, None))
        .await
}

/// `POST /ui/patients/{id}/referrals`: saves the draft.
pub(crate) async fn create_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let mut attachments: Vec<String> = f
            .keys()
            .filter_map(|k| k.strip_prefix("attach-"))
            .map(|d| format!("DocumentReference/{d}"))
            .collect();
        attachments.sort();
        let receiver = f.get("receiver").cloned().unwrap_or_default();
        let d = Draft {
            patient: format!("Patient/{id}"),
            encounter: None,
            receiver: if receiver.is_empty() {
                String::new()
            } else {
                format!("Organization/{receiver}")
            },
            service: None,
            priority: f.get("priority").cloned().unwrap_or_default(),
            reason: f.get("reason").cloned().unwrap_or_default(),
            attachments,
        };
        let d = if d.receiver.is_empty() {
            Err(ReferralError::Field(
                "receiver".into(),
                "Choose the provider to refer to.".into(),
            ))
        } else {
            Ok(d)
        };
        match d.and_then(|d| referrals::draft(&cx.svc, cx.access(), &d, cx.svc.now())) {
            Ok(rid) => see_other(&format!("/ui/referrals/{}", enc(&rid))),
            Err(e @ (ReferralError::Field(..) | ReferralError::Invalid(_))) => {
                let mut r = new_body(cx, &id, &f, Some(&e));
                *r.status_mut() = axum::http::StatusCode::BAD_REQUEST;
                r
            }
            Err(e) => refusal(&e),
        }
    })
    .await
}

/// `POST /ui/patients/{id}/referrals/upload` (multipart: `csrf`, `title`,
/// the file `pdf`): stores the PDF as the patient's document and returns to
/// the new referral with it ticked.
pub(crate) async fn upload_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    multipart: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let (fields, problem) = crate::multipart_fields(multipart, referrals::MAX_UPLOAD).await;
    let form = crate::csrf_form(&fields);
    ui.run(req, Some(&form), move |cx, _| {
        let title = String::from_utf8_lossy(fields.get("title").map_or(&[][..], Vec::as_slice))
            .into_owned();
        let pdf = fields.get("pdf").map_or(&[][..], Vec::as_slice);
        let r = match problem {
            Some(crate::UploadProblem::TooLarge) => Err(ReferralError::Field(
                "pdf".into(),
                "The PDF is larger than 10 MB.".into(),
            )),
            Some(_) => Err(ReferralError::Field(
                "pdf".into(),
                "The upload could not be read. Choose the file again.".into(),
            )),
            None => referrals::upload(&cx.svc, cx.access(), &id, &title, pdf, cx.svc.now()),
        };
        match r {
            Ok(doc) => see_other(&format!(
                "/ui/patients/{}/referrals/new?attach-{}=yes",
                enc(&id),
                enc(&doc)
            )),
            Err(e @ ReferralError::Field(..)) => {
                let mut r = new_body(cx, &id, &Form::new(), Some(&e));
                *r.status_mut() = axum::http::StatusCode::BAD_REQUEST;
                r
            }
            Err(e) => refusal(&e),
        }
    })
    .await
}

fn reason_form(
    cx: &Cx,
    action: &str,
    label: &str,
    button: &str,
    class: &str,
    testid: &str,
) -> Markup {
    let field = format!("{testid}-reason");
    html! {
        form method="post" action=(action) novalidate {
            (layout::csrf(cx))
            div class="nhsuk-form-group" {
                label class="nhsuk-label" for=(field) { (label) }
                input class="nhsuk-input" id=(field) name="reason" type="text";
            }
            button class={ "nhsuk-button " (class) } data-module="nhsuk-button" type="submit" data-testid=(testid) { (button) }
        }
    }
}

fn referral_body(cx: &Cx, sr: &serde_json::Value, error: Option<&ReferralError>) -> Markup {
    let id = sr["id"].as_str().unwrap_or_default();
    let state = referrals::state_of(sr).unwrap_or(Referral::Draft);
    let inbound = referrals::is_inbound(sr);
    let base = format!("/ui/referrals/{}", enc(id));
    let patient = sr["subject"]["reference"].as_str().unwrap_or_default();
    let receiver = sr["performer"][0]["reference"].as_str().unwrap_or_default();
    let org = cx
        .svc
        .read_as(
            cx.access(),
            "Organization",
            receiver.trim_start_matches("Organization/"),
        )
        .ok()
        .flatten();
    let org_name = org
        .as_ref()
        .and_then(|o| o["name"].as_str())
        .unwrap_or(receiver);
    let ods = org
        .as_ref()
        .and_then(referrals::ods_code)
        .map(str::to_owned);
    let delivery = delivery_label(sr);
    let failed = delivery
        .as_deref()
        .is_some_and(|d| d.starts_with("Not delivered"));
    html! {
        (layout::back_link(if inbound { "/ui/referrals/triage" } else { "/ui/referrals" }, "Back to the referrals"))
        (crate::chart::patient_banner(cx, patient))
        span class="nhsuk-caption-l" { (patient_name(cx, patient)) }
        h1 { @if inbound { "Referral received" } @else { "Referral" } }
        @if let Some(e) = error { (layout::error_summary(&[(e.field().unwrap_or("reason").to_owned(), e.message())])) }
        dl class="nhsuk-summary-list" data-testid="referral" data-referral=(id) {
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "State" } dd class="nhsuk-summary-list__value" { (state_tag(state, inbound)) } }
            @if let Some(why) = part(sr, "reason") {
                div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Reason given" } dd class="nhsuk-summary-list__value" data-testid="state-reason" { (why) } }
            }
            @if inbound {
                div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "From" } dd class="nhsuk-summary-list__value" { (sr["requester"]["display"].as_str().unwrap_or("—")) } }
            } @else {
                div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "To" }
                    dd class="nhsuk-summary-list__value" data-testid="receiver" { strong { (org_name) } @if let Some(o) = &ods { " (ODS " (o) ")" } } }
            }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Priority" } dd class="nhsuk-summary-list__value" { (priority_label(sr["priority"].as_str().unwrap_or("routine"))) } }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Reason for referral" } dd class="nhsuk-summary-list__value" { (sr["reasonCode"][0]["text"].as_str().unwrap_or("")) } }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Attachments" }
                dd class="nhsuk-summary-list__value" data-testid="attachments" {
                    @let atts = sr["supportingInfo"].as_array().cloned().unwrap_or_default();
                    @if atts.is_empty() { "None" }
                    ul class="nhsuk-list" { @for a in &atts { li { (a["display"].as_str().or_else(|| a["reference"].as_str()).unwrap_or("")) } } }
                } }
            @if let Some(d) = &delivery {
                div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Delivery" } dd class="nhsuk-summary-list__value" data-testid="delivery" { (d) } }
            }
        }
        @if !inbound && state == Referral::Draft {
            p { "Check the provider before sending: the referral and its attachments go to " strong { (org_name) } @if let Some(o) = &ods { " (ODS " (o) ")" } "." }
            (layout::action_button(cx, &format!("{base}/send"), "Send referral", ""))
        }
        @if !inbound && failed {
            (layout::action_button(cx, &format!("{base}/retry"), "Send again", "nhsuk-button--secondary"))
        }
        @if !inbound && matches!(state, Referral::Draft | Referral::Sent) {
            (reason_form(cx, &format!("{base}/cancel"), "Why cancel it?", "Cancel referral", "nhsuk-button--warning", "cancel"))
        }
        @if inbound && state == Referral::Sent {
            // issue 19: accepting starts the RTT clock: through triage only.
            p { a class="nhsuk-button" href={ (base) "/triage" } data-testid="triage" { "Triage: accept or redirect" } }
            (reason_form(cx, &format!("{base}/reject"), "Why reject it? (sent to the referrer)", "Reject referral", "nhsuk-button--warning", "reject"))
        }
    }
}

/// `GET /ui/referrals/{id}`.
pub(crate) async fn referral_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, _| {
        match referrals::get(&cx.svc, cx.access(), &id) {
            Ok(sr) => layout::page(cx, "Referral", Nav::None, referral_body(cx, &sr, None)),
            Err(e) => refusal(&e),
        }
    })
    .await
}

enum Action {
    Send,
    Retry,
    Cancel,
    Reject,
}

async fn act(ui: St, req: Req, id: String, body: Bytes, action: Action) -> Response {
    let State(ui) = ui;
    ui.run(req, Some(&body), move |cx, f| {
        let now = cx.svc.now();
        let reason = f.get("reason").cloned().unwrap_or_default();
        let (svc, access) = (&cx.svc, cx.access());
        let r = match action {
            Action::Send => referrals::send(svc, access, &id, now),
            Action::Retry => referrals::send::retry(svc, access, &id, now),
            Action::Cancel => referrals::cancel(svc, access, &id, &reason),
            Action::Reject => referrals::reject(svc, access, &id, &reason, now),
        };
        match r {
            Ok(()) => see_other(&format!("/ui/referrals/{}", enc(&id))),
            Err(e @ ReferralError::Field(..)) => match referrals::get(svc, access, &id) {
                Ok(sr) => {
                    let mut r =
                        layout::page(cx, "Referral", Nav::None, referral_body(cx, &sr, Some(&e)));
                    *r.status_mut() = axum::http::StatusCode::BAD_REQUEST;
                    r
                }
                Err(e) => refusal(&e),
            },
            Err(e) => refusal(&e),
        }
    })
    .await
}

/// `POST /ui/referrals/{id}/send`.
pub(crate) async fn send_post(ui: St, req: Req, Path(id): Path<String>, body: Bytes) -> Response {
    act(ui, req, id, body, Action::Send).await
}

/// `POST /ui/referrals/{id}/retry`.
pub(crate) async fn retry_post(ui: St, req: Req, Path(id): Path<String>, body: Bytes) -> Response {
    act(ui, req, id, body, Action::Retry).await
}

/// `POST /ui/referrals/{id}/cancel`.
pub(crate) async fn cancel_post(ui: St, req: Req, Path(id): Path<String>, body: Bytes) -> Response {
    act(ui, req, id, body, Action::Cancel).await
}

/// `POST /ui/referrals/{id}/reject`.
pub(crate) async fn reject_post(ui: St, req: Req, Path(id): Path<String>, body: Bytes) -> Response {
    act(ui, req, id, body, Action::Reject).await
}
