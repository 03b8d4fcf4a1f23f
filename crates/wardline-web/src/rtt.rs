//! Referral to treatment pages (issue 19): triage of a received referral
//! (`/ui/referrals/{id}/triage`: accept with a priority — the pathway's
//! clock starts on the date received and the patient goes on the
//! outpatient-new list — or redirect), a referral typed in from a letter
//! or made by another consultant (`/ui/patients/{id}/referrals/in/new`),
//! the triage worklist by consultant and specialty (shown on
//! `/ui/referrals/triage`), a patient's pathways and one pathway with its
//! events (`/ui/rtt/pathways/{id}`: record an event), and the PTL
//! (`/ui/rtt/ptl`, its CSV `/ui/rtt/ptl.csv`). Every rule is
//! `wardline_workflow::rtt`'s, `::referrals::triage`'s and `::waiting`'s.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde_json::Value;
use time::Date;
use wardline_workflow::referrals::triage::{self, Accept, Intake, Redirect, Source};
use wardline_workflow::referrals::{self, ReferralError};
use wardline_workflow::rtt::ptl::{self, BANDS, Filter, Ptl, Tally, band_label};
use wardline_workflow::rtt::{self, Pathway, RttError, SPECIALTIES, Status, specialty_name};
use wardline_workflow::waiting::Priority;

use crate::layout::{self, Nav};
use crate::referrals::patient_name;
use crate::{Cx, Form, Req, St, enc, see_other};

/// The trust's date now (its time zone, not UTC's).
pub(crate) fn today(svc: &wardline_core::FhirService) -> Date {
    svc.time_zone().date_of(svc.now())
}

fn rtt_refusal(e: &RttError) -> Response {
    layout::refusal_page(e.status(), &e.message(), "pathway")
}

fn referral_refusal(e: &ReferralError) -> Response {
    layout::refusal_page(e.status(), &e.message(), "referral")
}

/// The specialties as select options (a first empty "Choose" option).
pub(crate) fn specialty_options(first: &str) -> Vec<(String, String)> {
    let mut o = vec![(String::new(), first.to_owned())];
    o.extend(
        SPECIALTIES
            .iter()
            .map(|(c, n)| ((*c).to_owned(), format!("{n} ({c})"))),
    );
    o
}

/// The consultants (Practitioners) as select options.
pub(crate) fn consultant_options(cx: &Cx, first: &str) -> Vec<(String, String)> {
    let mut o = vec![(String::new(), first.to_owned())];
    if let Ok(found) = cx
        .svc
        .search_as(cx.access(), "Practitioner", &[("_count", "500")])
    {
        let mut ps: Vec<(String, String)> = found
            .resources
            .iter()
            .filter_map(|p| {
                Some((
                    p["id"].as_str()?.to_owned(),
                    wardline_workflow::orders::request::person_name(p)
                        .unwrap_or_else(|| p["id"].as_str().unwrap_or_default().to_owned()),
                ))
            })
            .collect();
        ps.sort_by(|a, b| a.1.cmp(&b.1));
        o.extend(ps);
    }
    o
}

pub(crate) fn consultant_name(cx: &Cx, id: Option<&str>) -> String {
    id.and_then(|id| {
        cx.svc
            .read_as(cx.access(), "Practitioner", id)
            .ok()
            .flatten()
    })
    .and_then(|p| wardline_workflow::orders::request::person_name(&p))
    .unwrap_or_else(|| "—".into())
}

fn non_empty(f: &Form, k: &str) -> Option<String> {
    f.get(k)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn parse_day(s: &str) -> Option<Date> {
    rtt::parse_date(s.trim())
}

// ---------------------------------------------------------------- triage worklist

/// The referrals awaiting triage, filtered by consultant and specialty (on
/// `/ui/referrals/triage`).
pub(crate) fn triage_worklist(cx: &Cx, q: &Form) -> Markup {
    let consultant = non_empty(q, "consultant");
    let specialty = non_empty(q, "specialty");
    let rows = triage::awaiting(
        &cx.svc,
        cx.access(),
        consultant.as_deref(),
        specialty.as_deref(),
    );
    let today = today(&cx.svc);
    html! {
        form method="get" action="/ui/referrals/triage" class="nhsuk-u-margin-bottom-4" data-testid="triage-filter" {
            (layout::select("consultant", "Consultant", &consultant_options(cx, "All consultants"), consultant.as_deref().unwrap_or(""), None))
            (layout::select("specialty", "Specialty", &specialty_options("All specialties"), specialty.as_deref().unwrap_or(""), None))
            button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" { "Show" }
        }
        @match rows {
            Err(e) => p class="nhsuk-error-message" { (e.message()) },
            Ok(rows) if rows.is_empty() => p data-testid="triage-empty" { "No referral is waiting for triage." },
            Ok(rows) => table class="nhsuk-table" data-testid="triage" {
                thead class="nhsuk-table__head" { tr {
                    th scope="col" { "Received" } th scope="col" { "Waiting" } th scope="col" { "Patient" } th scope="col" { "From" }
                    th scope="col" { "Priority" } th scope="col" { "Specialty" } th scope="col" { "Reason" } th scope="col" { "" }
                } }
                tbody class="nhsuk-table__body" {
                    @for r in &rows {
                        tr class="nhsuk-table__row" data-testid="referral-row" data-referral=(r.id) {
                            td class="nhsuk-table__cell" { (r.received.map(|d| layout::long_date(&d.to_string())).unwrap_or_default()) }
                            td class="nhsuk-table__cell" { (r.received.map(|d| format!("{} days", (today - d).whole_days())).unwrap_or_default()) }
                            td class="nhsuk-table__cell" { (patient_name(cx, &r.patient)) }
                            td class="nhsuk-table__cell" { (r.from) }
                            td class="nhsuk-table__cell" { (r.priority) }
                            td class="nhsuk-table__cell" { (r.specialty.as_deref().map(specialty_name).unwrap_or_else(|| "—".into())) }
                            td class="nhsuk-table__cell" { a href={ "/ui/referrals/" (enc(&r.id)) } data-testid="open-referral" { (r.reason) } }
                            td class="nhsuk-table__cell" { a href={ "/ui/referrals/" (enc(&r.id)) "/triage" } data-testid="triage-open" { "Triage" } }
                        }
                    }
                }
            },
        }
    }
}

// ---------------------------------------------------------------- triage of one referral

fn triage_body(cx: &Cx, sr: &Value, f: &Form, error: Option<&ReferralError>) -> Markup {
    let id = sr["id"].as_str().unwrap_or_default();
    let base = format!("/ui/referrals/{}/triage", enc(id));
    let err = |field: &str| {
        error
            .filter(|e| e.field() == Some(field))
            .map(|e| e.message())
    };
    let val = |k: &str, d: &str| f.get(k).cloned().unwrap_or_else(|| d.to_owned());
    let me = cx
        .access()
        .agent()
        .who
        .clone()
        .and_then(|w| w.strip_prefix("Practitioner/").map(str::to_owned))
        .unwrap_or_default();
    let spec = triage::specialty(sr).unwrap_or("");
    let received = triage::received(sr)
        .map(|d| layout::long_date(&d.to_string()))
        .unwrap_or_default();
    let priorities: Vec<(&str, &str)> =
        [Priority::Routine, Priority::Urgent, Priority::TwoWeekWait]
            .iter()
            .map(|p| (p.code(), p.label()))
            .collect();
    html! {
        (layout::back_link("/ui/referrals/triage", "Back to the referrals to triage"))
        (crate::chart::patient_banner(cx, sr["subject"]["reference"].as_str().unwrap_or("")))
        span class="nhsuk-caption-l" { (patient_name(cx, sr["subject"]["reference"].as_str().unwrap_or(""))) }
        h1 { "Triage the referral" }
        @if let Some(e) = error { (layout::error_summary(&[(e.field().unwrap_or("priority").to_owned(), e.message())])) }
        dl class="nhsuk-summary-list" data-testid="triage-referral" {
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "From" } dd class="nhsuk-summary-list__value" { (sr["requester"]["display"].as_str().unwrap_or("—")) } }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Received" } dd class="nhsuk-summary-list__value" data-testid="received" { (received) } }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Reason" } dd class="nhsuk-summary-list__value" { (sr["reasonCode"][0]["text"].as_str().unwrap_or("")) } }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Full referral" } dd class="nhsuk-summary-list__value" { a href={ "/ui/referrals/" (enc(id)) } { "Open the referral and its attachments" } } }
        }
        h2 { "Accept" }
        p { "Accepting starts the 18-week clock on the date the referral was received (" (received) ") and puts the patient on the outpatient (new) waiting list." }
        form method="post" action={ (base) "/accept" } novalidate {
            (layout::csrf(cx))
            (layout::radios("priority", "Priority", &priorities, &val("priority", ""), err("priority").as_deref()))
            (layout::select("specialty", "Specialty", &specialty_options("Choose a specialty"), &val("specialty", spec), err("specialty").as_deref()))
            (layout::select("consultant", "Consultant", &consultant_options(cx, "Choose a consultant"), &val("consultant", &me), err("consultant").as_deref()))
            button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="accept" { "Accept referral" }
        }
        h2 { "Redirect" }
        form method="post" action={ (base) "/redirect" } novalidate {
            (layout::csrf(cx))
            (layout::select("to-specialty", "To the specialty", &specialty_options("Choose a specialty"), &val("to-specialty", ""), err("specialty").as_deref()))
            (layout::select("to-consultant", "To the consultant (optional)", &consultant_options(cx, "Any consultant"), &val("to-consultant", ""), err("consultant").as_deref()))
            (layout::input(&layout::Field { hint: Some("An Organization id; leave empty within the trust"), value: &val("provider", ""), error: err("provider").as_deref(), ..layout::Field::new("provider", "To another provider (optional)") }))
            (layout::input(&layout::Field { value: &val("reason", ""), error: err("reason").as_deref(), ..layout::Field::new("reason", "Why redirect it?") }))
            button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" data-testid="redirect" { "Redirect referral" }
        }
        h2 { "Reject" }
        form method="post" action={ "/ui/referrals/" (enc(id)) "/reject" } novalidate {
            (layout::csrf(cx))
            (layout::input(&layout::Field { ..layout::Field::new("reject-reason", "Why reject it? (sent to the referrer)") }))
            button class="nhsuk-button nhsuk-button--warning" data-module="nhsuk-button" type="submit" data-testid="reject" { "Reject referral" }
        }
    }
}

fn show_triage(cx: &Cx, id: &str, f: &Form, error: Option<&ReferralError>) -> Response {
    match referrals::get(&cx.svc, cx.access(), id) {
        Ok(sr) => {
            let mut r = layout::page(cx, "Triage", Nav::None, triage_body(cx, &sr, f, error));
            if error.is_some() {
                *r.status_mut() = StatusCode::BAD_REQUEST;
            }
            r
        }
        Err(e) => referral_refusal(&e),
    }
}

/// `GET /ui/referrals/{id}/triage`.
pub(crate) async fn triage_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, _| {
        show_triage(cx, &id, &Form::new(), None)
    })
    .await
}

/// `POST /ui/referrals/{id}/triage/accept`.
pub(crate) async fn accept_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let Some(priority) = f.get("priority").and_then(|p| Priority::parse(p)) else {
            let e = ReferralError::Field("priority".into(), "Choose the priority.".into());
            return show_triage(cx, &id, &f, Some(&e));
        };
        let specialty = f.get("specialty").cloned().unwrap_or_default();
        let consultant = non_empty(&f, "consultant");
        let a = Accept {
            priority,
            specialty: &specialty,
            consultant: consultant.as_deref(),
            note: None,
        };
        match triage::accept(&cx.svc, cx.access(), &id, &a, cx.svc.now()) {
            Ok(done) => see_other(&format!(
                "/ui/rtt/pathways/{}?done=accepted",
                enc(&done.pathway)
            )),
            Err(e @ ReferralError::Field(..)) => show_triage(cx, &id, &f, Some(&e)),
            Err(e) => referral_refusal(&e),
        }
    })
    .await
}

/// `POST /ui/referrals/{id}/triage/redirect`.
pub(crate) async fn redirect_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let specialty = f.get("to-specialty").cloned().unwrap_or_default();
        let consultant = non_empty(&f, "to-consultant");
        let provider = non_empty(&f, "provider");
        let reason = f.get("reason").cloned().unwrap_or_default();
        let r = Redirect {
            specialty: &specialty,
            consultant: consultant.as_deref(),
            provider: provider.as_deref(),
            reason: &reason,
        };
        match triage::redirect(&cx.svc, cx.access(), &id, &r, cx.svc.now()) {
            Ok(_) => see_other("/ui/referrals/triage?done=redirected"),
            Err(e @ ReferralError::Field(..)) => show_triage(cx, &id, &f, Some(&e)),
            Err(e) => referral_refusal(&e),
        }
    })
    .await
}

// ---------------------------------------------------------------- referrals typed in

fn intake_body(cx: &Cx, patient: &str, f: &Form, error: Option<&ReferralError>) -> Markup {
    let err = |field: &str| {
        error
            .filter(|e| e.field() == Some(field))
            .map(|e| e.message())
    };
    let val = |k: &str| f.get(k).cloned().unwrap_or_default();
    let source = f.get("source").map_or("letter", String::as_str);
    let priority = f.get("priority").map_or("routine", String::as_str);
    html! {
        (layout::back_link(&format!("/ui/patients/{}/pathways", enc(patient)), "Back to the patient's pathways"))
        (crate::chart::patient_banner(cx, patient))
        span class="nhsuk-caption-l" { (patient_name(cx, &format!("Patient/{patient}"))) }
        h1 { "Record a referral received" }
        @if let Some(e) = error { (layout::error_summary(&[(e.field().unwrap_or("reason").to_owned(), e.message())])) }
        form method="post" action={ "/ui/patients/" (enc(patient)) "/referrals/in" } enctype="multipart/form-data" novalidate {
            (layout::csrf(cx))
            (layout::radios("source", "Where it came from", &[("letter", "A letter (typed in)"), ("consultant", "Another consultant of the trust")], source, None))
            (layout::input(&layout::Field { hint: Some("For a letter: the GP and practice; for a consultant referral leave empty: it is you"), value: &val("from"), error: err("from").as_deref(), ..layout::Field::new("from", "Referred by") }))
            (layout::select("specialty", "To the specialty", &specialty_options("Choose a specialty"), &val("specialty"), err("specialty").as_deref()))
            (layout::select("consultant", "To the consultant (optional)", &consultant_options(cx, "Any consultant"), &val("consultant"), err("consultant").as_deref()))
            (layout::radios("priority", "Priority", &referrals::PRIORITIES, priority, err("priority").as_deref()))
            (layout::input(&layout::Field { value: &val("reason"), error: err("reason").as_deref(), ..layout::Field::new("reason", "Reason for referral") }))
            (layout::input(&layout::Field { kind: "date", value: &val("received"), error: err("received").as_deref(), hint: Some("The date the trust received the referral: the 18-week clock starts then"), ..layout::Field::new("received", "Date received") }))
            div class={ "nhsuk-form-group" @if err("pdf").is_some() { " nhsuk-form-group--error" } } {
                label class="nhsuk-label" for="pdf" { "The letter, scanned (PDF, optional)" }
                @if let Some(e) = err("pdf") { span class="nhsuk-error-message" id="pdf-error" { (e) } }
                input class="nhsuk-file-upload" id="pdf" name="pdf" type="file" accept="application/pdf";
            }
            button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="record-referral" { "Record referral" }
        }
    }
}

/// `GET /ui/patients/{id}/referrals/in/new`.
pub(crate) async fn intake_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        layout::page(
            cx,
            "Record a referral",
            Nav::Patients,
            intake_body(cx, &id, &q, None),
        )
    })
    .await
}

/// `POST /ui/patients/{id}/referrals/in` (multipart, the letter's PDF
/// optional).
pub(crate) async fn intake_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    multipart: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let (fields, problem) = crate::multipart_fields(multipart, referrals::MAX_UPLOAD).await;
    let form = crate::csrf_form(&fields);
    ui.run(req, Some(&form), move |cx, _| {
        let text = |k: &str| {
            String::from_utf8_lossy(fields.get(k).map_or(&[][..], Vec::as_slice))
                .trim()
                .to_owned()
        };
        let mut f = Form::new();
        for k in [
            "source",
            "from",
            "specialty",
            "consultant",
            "priority",
            "reason",
        ] {
            f.insert(k.to_owned(), text(k));
        }
        let d = |p: &str| text(&format!("received-{p}"));
        f.insert(
            "received".into(),
            format!("{}-{:0>2}-{:0>2}", d("year"), d("month"), d("day")),
        );
        let fail = |e: ReferralError| {
            let mut r = layout::page(
                cx,
                "Record a referral",
                Nav::Patients,
                intake_body(cx, &id, &f, Some(&e)),
            );
            *r.status_mut() = StatusCode::BAD_REQUEST;
            r
        };
        if problem.is_some() {
            return fail(ReferralError::Field(
                "pdf".into(),
                "The upload could not be read (a PDF of at most 10 MB). Choose the file again."
                    .into(),
            ));
        }
        let Some(received) = parse_day(&f["received"]) else {
            return fail(ReferralError::Field(
                "received".into(),
                "Enter the date received as day, month and year.".into(),
            ));
        };
        let me = cx
            .access()
            .agent()
            .who
            .clone()
            .and_then(|w| w.strip_prefix("Practitioner/").map(str::to_owned));
        let source = if f["source"] == "consultant" {
            Source::Consultant
        } else {
            Source::Letter
        };
        let consultant = non_empty(&f, "consultant");
        let intake = Intake {
            patient: &id,
            source,
            from: &f["from"],
            requester: if source == Source::Consultant {
                me.as_deref()
            } else {
                None
            },
            specialty: &f["specialty"],
            consultant: consultant.as_deref(),
            priority: &f["priority"],
            reason: &f["reason"],
            received,
            attachments: &[],
        };
        let pdf = fields.get("pdf").filter(|p| !p.is_empty());
        let letter = pdf.map(|p| ("Referral letter", p.as_slice()));
        match triage::intake_with_letter(&cx.svc, cx.access(), &intake, letter, cx.svc.now()) {
            Ok(r) => see_other(&format!("/ui/referrals/{}", enc(&r))),
            Err(e @ ReferralError::Field(..)) => fail(e),
            Err(e) => referral_refusal(&e),
        }
    })
    .await
}

// ---------------------------------------------------------------- pathways

fn clock_tag(p: &Pathway) -> Markup {
    let (class, text) = match p.clock {
        rtt::Clock::Running => ("nhsuk-tag nhsuk-tag--blue", "Clock running"),
        rtt::Clock::Stopped => ("nhsuk-tag nhsuk-tag--green", "Clock stopped"),
        rtt::Clock::Nullified => ("nhsuk-tag nhsuk-tag--grey", "Clock nullified"),
    };
    html! { strong class=(class) data-testid="clock" data-clock=(format!("{:?}", p.clock).to_lowercase()) { (text) } }
}

fn pathway_body(cx: &Cx, p: &Pathway, error: Option<&RttError>, done: Option<&str>) -> Markup {
    let today = today(&cx.svc);
    let statuses: Vec<(String, String)> = Status::ALL
        .iter()
        .map(|s| (s.code().to_owned(), format!("{} – {}", s.code(), s.label())))
        .collect();
    let err = |field: &str| {
        error
            .filter(|e| e.field() == Some(field))
            .map(|e| e.message())
    };
    html! {
        (layout::back_link(&format!("/ui/patients/{}/pathways", enc(&p.patient)), "Back to the patient's pathways"))
        (crate::chart::patient_banner(cx, &p.patient))
        span class="nhsuk-caption-l" { (patient_name(cx, &format!("Patient/{}", p.patient))) }
        h1 { "Referral to treatment pathway" }
        @if let Some(d) = done { (layout::success(match d { "accepted" => "Referral accepted: the clock started and the patient is on the outpatient (new) list.", _ => "Event recorded." })) }
        @if let Some(e) = error { (layout::error_summary(&[(e.field().unwrap_or("status").to_owned(), e.message())])) }
        dl class="nhsuk-summary-list" data-testid="pathway" data-pathway=(p.id) {
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Clock" } dd class="nhsuk-summary-list__value" { (clock_tag(p)) } }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Weeks waited" } dd class="nhsuk-summary-list__value" data-testid="weeks" { @match p.weeks_waited(today) { Some(w) => (w), None => "—" } } }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Clock start" } dd class="nhsuk-summary-list__value" data-testid="clock-start" { (layout::long_date(&p.start.to_string())) } }
            @if let Some(s) = p.stop {
                div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Clock stop" } dd class="nhsuk-summary-list__value" data-testid="clock-stop" { (layout::long_date(&s.to_string())) } }
            }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Specialty" } dd class="nhsuk-summary-list__value" { (specialty_name(&p.specialty)) } }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Consultant" } dd class="nhsuk-summary-list__value" { (consultant_name(cx, p.consultant.as_deref())) } }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Pathway identifier" } dd class="nhsuk-summary-list__value" { (p.ppid) } }
        }
        table class="nhsuk-table" data-testid="events" {
            caption class="nhsuk-table__caption" { "Events" }
            thead class="nhsuk-table__head" { tr { th scope="col" { "Date" } th scope="col" { "RTT status" } th scope="col" { "What" } } }
            tbody class="nhsuk-table__body" {
                @for e in &p.events {
                    tr class="nhsuk-table__row" data-testid="event" data-status=(e.status.code()) {
                        td class="nhsuk-table__cell" { (layout::long_date(&e.date.to_string())) }
                        td class="nhsuk-table__cell" { (e.status.code()) " – " (e.status.label()) }
                        td class="nhsuk-table__cell" { (e.source) }
                    }
                }
            }
        }
        h2 { "Record an event" }
        form method="post" action={ "/ui/rtt/pathways/" (enc(&p.id)) "/events" } novalidate {
            (layout::csrf(cx))
            (layout::select("status", "RTT status", &statuses, "", err("status").as_deref()))
            (layout::input(&layout::Field { kind: "date", error: err("date").as_deref(), ..layout::Field::new("date", "Date") }))
            (layout::input(&layout::Field { hint: Some("The record that is the event, e.g. Encounter/123 or Procedure/9"), error: err("source").as_deref(), ..layout::Field::new("source", "Event") }))
            button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="record-event" { "Record event" }
        }
    }
}

fn read_pathway(cx: &Cx, id: &str) -> Result<Pathway, RttError> {
    cx.svc
        .read_as(cx.access(), "EpisodeOfCare", id)?
        .as_ref()
        .and_then(Pathway::of)
        .ok_or_else(|| RttError::NotFound(format!("There is no pathway {id}.")))
}

/// `GET /ui/rtt/pathways/{id}`.
pub(crate) async fn pathway_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| match read_pathway(cx, &id) {
        Ok(p) => layout::page(
            cx,
            "Pathway",
            Nav::Patients,
            pathway_body(cx, &p, None, q.get("done").map(String::as_str)),
        ),
        Err(e) => rtt_refusal(&e),
    })
    .await
}

/// `POST /ui/rtt/pathways/{id}/events`.
pub(crate) async fn event_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let status = f.get("status").and_then(|s| Status::parse(s));
        let date = f.get("date").and_then(|d| parse_day(d));
        let source = f
            .get("source")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let r = match (status, date) {
            (None, _) => Err(RttError::Field("status", "Choose the RTT status.".into())),
            (_, None) => Err(RttError::Field(
                "date",
                "Enter the date as day, month and year.".into(),
            )),
            (Some(s), Some(d)) => {
                rtt::record(&cx.svc, cx.access(), &id, s, d, &source, today(&cx.svc))
            }
        };
        match r {
            Ok(()) => see_other(&format!("/ui/rtt/pathways/{}?done=recorded", enc(&id))),
            Err(e @ (RttError::Field(..) | RttError::Clock(_))) => match read_pathway(cx, &id) {
                Ok(p) => {
                    let e = match e {
                        RttError::Clock(m) => RttError::Field("status", m),
                        e => e,
                    };
                    let mut r = layout::page(
                        cx,
                        "Pathway",
                        Nav::Patients,
                        pathway_body(cx, &p, Some(&e), None),
                    );
                    *r.status_mut() = StatusCode::BAD_REQUEST;
                    r
                }
                Err(e) => rtt_refusal(&e),
            },
            Err(e) => rtt_refusal(&e),
        }
    })
    .await
}

/// `GET /ui/patients/{id}/pathways`: the patient's pathways and waiting-list entries.
pub(crate) async fn patient_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, _| {
        let found = cx.svc.search_as(
            cx.access(),
            "EpisodeOfCare",
            &[("patient", format!("Patient/{id}")), ("type", format!("{}|{}", rtt::EPISODE_TYPE_SYSTEM, rtt::EPISODE_TYPE_RTT))],
        );
        let pathways: Vec<Pathway> = match found {
            Ok(f) => f.resources.iter().filter_map(Pathway::of).collect(),
            Err(e) => return layout::fhir_error_page(&e),
        };
        let today = today(&cx.svc);
        let entries = crate::waiting::patient_entries(cx, &id);
        layout::page(cx, "Pathways", Nav::Patients, html! {
            (layout::back_link(&format!("/ui/patients/{}", enc(&id)), "Back to the patient"))
            (crate::chart::patient_banner(cx, &id))
            span class="nhsuk-caption-l" { (patient_name(cx, &format!("Patient/{id}"))) }
            h1 { "Pathways and waiting lists" }
            p {
                a class="nhsuk-button nhsuk-button--secondary" href={ "/ui/patients/" (enc(&id)) "/referrals/in/new" } data-testid="record-referral-link" { "Record a referral received" }
                " "
                a class="nhsuk-button nhsuk-button--secondary" href={ "/ui/patients/" (enc(&id)) "/waiting-lists/new" } data-testid="add-entry-link" { "Add to a waiting list" }
            }
            @if pathways.is_empty() { p data-testid="pathways-empty" { "No referral to treatment pathway." } } @else {
                table class="nhsuk-table" data-testid="pathways" {
                    thead class="nhsuk-table__head" { tr { th scope="col" { "Specialty" } th scope="col" { "Clock start" } th scope="col" { "Clock" } th scope="col" { "Weeks" } } }
                    tbody class="nhsuk-table__body" {
                        @for p in &pathways {
                            tr class="nhsuk-table__row" data-testid="pathway-row" data-pathway=(p.id) {
                                td class="nhsuk-table__cell" { a href={ "/ui/rtt/pathways/" (enc(&p.id)) } { (specialty_name(&p.specialty)) } }
                                td class="nhsuk-table__cell" { (layout::long_date(&p.start.to_string())) }
                                td class="nhsuk-table__cell" { (clock_tag(p)) }
                                td class="nhsuk-table__cell" { @match p.weeks_waited(today) { Some(w) => (w), None => "—" } }
                            }
                        }
                    }
                }
            }
            h2 { "Waiting lists" }
            (entries)
        })
    })
    .await
}

// ---------------------------------------------------------------- the PTL

fn bar_chart(t: &Tally) -> Markup {
    let max = t.bands.iter().copied().max().unwrap_or(0).max(1);
    let row = 26;
    let height = row * BANDS.len() + 8;
    html! {
        figure class="nhsuk-u-margin-bottom-5" data-testid="ptl-chart" {
            figcaption class="nhsuk-heading-s" { "Open pathways by weeks waited" }
            svg xmlns="http://www.w3.org/2000/svg" width="640" height=(height) role="img" aria-label="Open pathways by weeks waited" {
                @for (i, b) in BANDS.iter().enumerate() {
                    @let y = i * row + 4;
                    @let n = t.bands[i];
                    @let w = n * 300 / max;
                    text x="0" y=(y + 16) font-size="14" { (band_label(*b)) }
                    rect x="200" y=(y) width="300" height="18" fill="#e8edee" {}
                    rect x="200" y=(y) width=(w) height="18" fill=(if b.0 >= 52 { "#d5281b" } else if b.0 >= 18 { "#ffb81c" } else { "#007f3b" }) {}
                    text x="510" y=(y + 16) font-size="14" data-testid="band-count" { (n) }
                }
            }
        }
    }
}

fn tally_table(cx: &Cx, caption: &str, testid: &str, rows: &[Tally], consultants: bool) -> Markup {
    html! {
        table class="nhsuk-table" data-testid=(testid) {
            caption class="nhsuk-table__caption" { (caption) }
            thead class="nhsuk-table__head" { tr {
                th scope="col" { "Name" } th scope="col" { "Open pathways" } th scope="col" { "Under 18 weeks" }
                th scope="col" { "18 to 52 weeks" } th scope="col" { "52 weeks and over" } th scope="col" { "18-week performance" }
            } }
            tbody class="nhsuk-table__body" {
                @for t in rows {
                    tr class="nhsuk-table__row" data-key=(t.key) {
                        td class="nhsuk-table__cell" { @if consultants { (consultant_name(cx, (!t.key.is_empty()).then_some(t.key.as_str()))) } @else { (specialty_name(&t.key)) } }
                        td class="nhsuk-table__cell" { (t.total) }
                        td class="nhsuk-table__cell" { (t.under_18) }
                        td class="nhsuk-table__cell" { (t.from_18_to_52) }
                        td class="nhsuk-table__cell" data-testid="breaches" { (t.over_52) }
                        td class="nhsuk-table__cell" { (format!("{:.1}%", t.performance())) }
                    }
                }
            }
        }
    }
}

fn ptl_body(cx: &Cx, p: &Ptl, q: &Form) -> Markup {
    let consultant = q.get("consultant").cloned().unwrap_or_default();
    let specialty = q.get("specialty").cloned().unwrap_or_default();
    let csv = format!(
        "/ui/rtt/ptl.csv?specialty={}&consultant={}",
        enc(&specialty),
        enc(&consultant)
    );
    html! {
        h1 { "Patient-targeted list (PTL)" }
        p { "Open referral to treatment pathways on " (layout::long_date(&p.today.to_string())) ", longest wait first." }
        form method="get" action="/ui/rtt/ptl" class="nhsuk-u-margin-bottom-4" {
            (layout::select("specialty", "Specialty", &specialty_options("All specialties"), &specialty, None))
            (layout::select("consultant", "Consultant", &consultant_options(cx, "All consultants"), &consultant, None))
            button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" { "Show" }
        }
        div class="nhsuk-card" { div class="nhsuk-card__content" data-testid="ptl-summary" {
            h2 class="nhsuk-card__heading" data-testid="performance" { (format!("{:.1}%", p.all.performance())) " of incomplete pathways under 18 weeks" }
            p class="nhsuk-card__description" {
                span data-testid="open-total" { (p.all.total) } " open pathways: " (p.all.under_18) " under 18 weeks, " (p.all.from_18_to_52) " 18 to 52 weeks, "
                strong data-testid="breaches-52" { (p.all.over_52) } strong { " waiting 52 weeks or more" } "."
            }
        } }
        (bar_chart(&p.all))
        p { a href=(csv) data-testid="ptl-csv" download { "Download the PTL (CSV)" } }
        (tally_table(cx, "By specialty", "by-specialty", &p.by_specialty, false))
        (tally_table(cx, "By consultant", "by-consultant", &p.by_consultant, true))
        table class="nhsuk-table" data-testid="ptl-rows" {
            caption class="nhsuk-table__caption" { "Longest waits (the first 200)" }
            thead class="nhsuk-table__head" { tr { th scope="col" { "Weeks" } th scope="col" { "Patient" } th scope="col" { "Specialty" } th scope="col" { "Consultant" } th scope="col" { "Clock start" } th scope="col" { "Last status" } } }
            tbody class="nhsuk-table__body" {
                @for r in p.rows.iter().take(200) {
                    tr class="nhsuk-table__row" data-testid="ptl-row" data-pathway=(r.pathway) {
                        td class="nhsuk-table__cell" data-testid="ptl-weeks" { (r.weeks) }
                        td class="nhsuk-table__cell" { a href={ "/ui/rtt/pathways/" (enc(&r.pathway)) } { (patient_name(cx, &format!("Patient/{}", r.patient))) } }
                        td class="nhsuk-table__cell" { (specialty_name(&r.specialty)) }
                        td class="nhsuk-table__cell" { (consultant_name(cx, r.consultant.as_deref())) }
                        td class="nhsuk-table__cell" { (layout::long_date(&r.start.to_string())) }
                        td class="nhsuk-table__cell" { (r.last.map_or("", Status::code)) }
                    }
                }
            }
        }
    }
}

/// The PTL narrowed as the query asks (`specialty`, `consultant`).
fn read_ptl(cx: &Cx, q: &Form) -> Result<Ptl, RttError> {
    let (s, c) = (non_empty(q, "specialty"), non_empty(q, "consultant"));
    let f = Filter {
        specialty: s.as_deref(),
        consultant: c.as_deref(),
    };
    ptl::ptl(&cx.svc, cx.access(), today(&cx.svc), f)
}

/// `GET /ui/rtt/ptl`.
pub(crate) async fn ptl_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, q| match read_ptl(cx, &q) {
        Ok(p) => layout::page(cx, "PTL", Nav::None, ptl_body(cx, &p, &q)),
        Err(e) => rtt_refusal(&e),
    })
    .await
}

/// `GET /ui/rtt/ptl.csv`.
pub(crate) async fn ptl_csv(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, q| match read_ptl(cx, &q) {
        Ok(p) => {
            let body = ptl::csv(&p, |id| {
                let pt = cx.svc.read_as(cx.access(), "Patient", id).ok().flatten();
                let name = pt
                    .as_ref()
                    .and_then(wardline_workflow::orders::request::person_name)
                    .unwrap_or_default();
                let nhs = pt
                    .as_ref()
                    .and_then(|p| p["identifier"].as_array().cloned())
                    .into_iter()
                    .flatten()
                    .find(|i| i["system"] == wardline_workflow::pmi::NHS_NUMBER_SYSTEM)
                    .and_then(|i| i["value"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                (name, nhs)
            });
            (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"ptl-{}.csv\"", p.today),
                    ),
                ],
                body,
            )
                .into_response()
        }
        Err(e) => rtt_refusal(&e),
    })
    .await
}
