//! The outpatient clinic pages (issue 19): clinic templates and their slots
//! (`/ui/clinics`), a clinic's list for the day (`/ui/clinics?clinic=…&date=`),
//! booking from the outpatient waiting list (`/ui/outpatients`, and
//! `?entry=…` for an entry's free slots) and one appointment with its
//! actions — check in, did not attend, outcome, cancel, rebook
//! (`/ui/appointments/{id}`, posted to `/ui/appointments/{id}/{action}`).
//! Six routes in the UI's list ([`routes`]). Every rule is
//! `wardline_workflow::outpatients`'s.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;
use time::Date;
use wardline_auth::rbac::Activity;
use wardline_workflow::fhir::reference_id;
use wardline_workflow::orders::request::person_name;
use wardline_workflow::outpatients::attendance::{self, Outcome};
use wardline_workflow::outpatients::booking::{self, CancelledBy, Offerable};
use wardline_workflow::outpatients::clinics::{self, Template, date_text, parse_date, parse_time};
use wardline_workflow::outpatients::list::clinic_list;
use wardline_workflow::outpatients::{Kind, Mode, OUTCOME_EXT, OutpatientsError};
use wardline_workflow::waiting::Priority;

use crate::layout::{self, Field, Nav};
use crate::{Cx, Form, Req, St, Ui, enc, see_other};

fn refusal(e: &OutpatientsError) -> Response {
    layout::refusal_page(e.status(), &e.message(), "outpatients")
}

/// "2026-07-06T08:20:00Z" → "09:20", the trust's wall clock: the instant
/// moved by the zone's offset then (the offset read back from the zone:
/// the instant at which the local clock reads what the UTC clock reads).
pub(crate) fn clock(cx: &Cx, instant: &str) -> String {
    use wardline_fhir::datetime::{format_instant, parse_range, parse_range_in};
    let local = parse_range(instant).and_then(|(t, _)| {
        let naive = format_instant(t);
        let (at, _) = parse_range_in(naive.get(..19)?, cx.svc.time_zone())?;
        Some(format_instant(t + (t - at)))
    });
    local
        .as_deref()
        .unwrap_or(instant)
        .get(11..16)
        .unwrap_or(instant)
        .to_owned()
}

/// "2026-12-07T09:20:00Z" → "7 December 2026 at 09:20".
fn when(cx: &Cx, instant: &str) -> String {
    format!(
        "{} at {}",
        layout::long_date(instant.get(..10).unwrap_or(instant)),
        clock(cx, instant)
    )
}

pub(crate) fn f<'a>(form: &'a Form, k: &str) -> &'a str {
    form.get(k).map(String::as_str).unwrap_or("")
}

pub(crate) fn error_for<'a>(error: &'a Option<(String, String)>, k: &str) -> Option<&'a str> {
    error
        .as_ref()
        .filter(|(f, _)| f == k)
        .map(|(_, m)| m.as_str())
}

pub(crate) fn summary(error: &Option<(String, String)>) -> Markup {
    match error {
        Some((f, m)) => layout::error_summary(&[(f.clone(), m.clone())]),
        None => html! {},
    }
}

pub(crate) fn options(cx: &Cx, t: &str) -> Vec<(String, String)> {
    let found = cx
        .svc
        .search_as(cx.access(), t, &[("_count", "200".to_owned())])
        .map(|f| f.resources)
        .unwrap_or_default();
    let mut out: Vec<(String, String)> = found
        .iter()
        .filter_map(|r| {
            let id = r["id"].as_str()?.to_owned();
            let name = person_name(r)
                .or_else(|| r["name"].as_str().map(str::to_owned))
                .unwrap_or_else(|| id.clone());
            Some((id, name))
        })
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out.insert(0, (String::new(), "Choose…".to_owned()));
    out
}

// ---------------------------------------------------------------- templates

fn templates_body(
    cx: &Cx,
    list: &[Template],
    form: &Form,
    error: &Option<(String, String)>,
) -> Markup {
    let days = [
        ("mon", "Monday"),
        ("tue", "Tuesday"),
        ("wed", "Wednesday"),
        ("thu", "Thursday"),
        ("fri", "Friday"),
        ("sat", "Saturday"),
        ("sun", "Sunday"),
    ];
    let field = |id: &'static str, label: &'static str| Field {
        value: f(form, id),
        error: error_for(error, id),
        ..Field::new(id, label)
    };
    html! {
        h1 { "Outpatient clinics" }
        p { a href="/ui/outpatients" data-testid="to-waiting" { "Outpatient waiting list: book appointments" } }
        @if list.is_empty() {
            p data-testid="no-clinics" { "No clinic templates yet." }
        } @else {
            table class="nhsuk-table" data-testid="clinics" {
                thead class="nhsuk-table__head" { tr {
                    th scope="col" { "Clinic" } th scope="col" { "Specialty" } th scope="col" { "Days and times" } th scope="col" { "Slots" }
                } }
                tbody class="nhsuk-table__body" {
                    @for t in list {
                        tr class="nhsuk-table__row" data-testid="clinic-row" {
                            td class="nhsuk-table__cell" {
                                a href={ "/ui/clinics?clinic=" (enc(t.id.as_deref().unwrap_or(""))) } data-testid="open-clinic" { (t.name) }
                            }
                            td class="nhsuk-table__cell" { (t.specialty_name) " (" (t.specialty) ")" }
                            td class="nhsuk-table__cell" {
                                (t.weekdays.iter().map(|d| clinics::day_code(*d)).collect::<Vec<_>>().join(", "))
                                " " (format!("{:02}:{:02}", t.start.hour(), t.start.minute())) "–" (format!("{:02}:{:02}", t.end.hour(), t.end.minute()))
                            }
                            td class="nhsuk-table__cell" { (t.slot_minutes) " min, " (t.kind.label().to_lowercase()) ", " (t.mode.label().to_lowercase()) }
                        }
                    }
                }
            }
        }
        @if cx.may(Activity::ManageAppointments) {
            h2 id="new" { "Define a clinic template" }
            (summary(error))
            form method="post" action="/ui/clinics" novalidate {
                (layout::csrf(cx))
                (layout::input(&field("name", "Clinic name")))
                (layout::select("consultant", "Consultant", &options(cx, "Practitioner"), f(form, "consultant"), error_for(error, "consultant")))
                (layout::select("location", "Where the clinic is held", &options(cx, "Location"), f(form, "location"), error_for(error, "location")))
                (layout::input(&Field { hint: Some("The treatment function code, for example 100 for general surgery"), width: "nhsuk-input--width-4", ..field("specialty", "Specialty code") }))
                (layout::input(&field("specialty-name", "Specialty name")))
                div class={ "nhsuk-form-group" @if error_for(error, "weekdays").is_some() { " nhsuk-form-group--error" } } {
                    fieldset class="nhsuk-fieldset" {
                        legend class="nhsuk-fieldset__legend nhsuk-fieldset__legend--s" { "Days of the week" }
                        @if let Some(e) = error_for(error, "weekdays") {
                            span class="nhsuk-error-message" id="weekdays-error" { span class="nhsuk-u-visually-hidden" { "Error: " } (e) }
                        }
                        div class="nhsuk-checkboxes" id="weekdays" {
                            @for (code, name) in days {
                                div class="nhsuk-checkboxes__item" {
                                    input class="nhsuk-checkboxes__input" id={ "day-" (code) } name={ "day-" (code) } type="checkbox" value="yes" checked[form.contains_key(&format!("day-{code}"))];
                                    label class="nhsuk-label nhsuk-checkboxes__label" for={ "day-" (code) } { (name) }
                                }
                            }
                        }
                    }
                }
                (layout::input(&Field { hint: Some("24-hour clock, for example 09:00"), width: "nhsuk-input--width-5", ..field("start", "Session starts") }))
                (layout::input(&Field { width: "nhsuk-input--width-5", ..field("end", "Session ends") }))
                (layout::input(&Field { width: "nhsuk-input--width-3", ..field("slot-minutes", "Slot length in minutes") }))
                (layout::radios("kind", "Slots for", &[("new", "New patients"), ("follow-up", "Follow-up patients")], f(form, "kind"), error_for(error, "kind")))
                (layout::radios("mode", "Mode", &[("face-to-face", "Face to face"), ("virtual", "Virtual")], f(form, "mode"), error_for(error, "mode")))
                (layout::input(&Field { kind: "date", ..field("valid-from", "Valid from") }))
                (layout::input(&Field { kind: "date", hint: Some("Leave empty if it runs until further notice"), ..field("valid-to", "Valid to") }))
                button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="save-template" { "Save clinic template" }
            }
        }
    }
}

/// `GET /ui/clinics`.
async fn clinics_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, _| {
        match clinics::templates(&cx.svc, cx.access()) {
            Ok(list) => layout::page(
                cx,
                "Outpatient clinics",
                Nav::None,
                templates_body(cx, &list, &Form::new(), &None),
            ),
            Err(e) => refusal(&e),
        }
    })
    .await
}

fn template_of(form: &Form) -> Result<Template, OutpatientsError> {
    let bad = |k: &str, m: &str| OutpatientsError::invalid(k, m);
    let time_of = |k: &str, what: &str| {
        parse_time(f(form, k)).ok_or_else(|| {
            bad(
                k,
                &format!("Enter when the session {what} as hh:mm, for example 09:00."),
            )
        })
    };
    let date_of = |k: &str| -> Result<Option<Date>, OutpatientsError> {
        let v = f(form, k).trim();
        if v.is_empty() {
            return Ok(None);
        }
        parse_date(v)
            .map(Some)
            .ok_or_else(|| bad(k, "Enter a real date."))
    };
    Ok(Template {
        id: None,
        name: f(form, "name").trim().to_owned(),
        consultant: f(form, "consultant").trim().to_owned(),
        location: f(form, "location").trim().to_owned(),
        specialty: f(form, "specialty").trim().to_owned(),
        specialty_name: f(form, "specialty-name").trim().to_owned(),
        weekdays: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            .into_iter()
            .filter(|d| form.contains_key(&format!("day-{d}")))
            .filter_map(clinics::day_of)
            .collect(),
        start: time_of("start", "starts")?,
        end: time_of("end", "ends")?,
        slot_minutes: f(form, "slot-minutes")
            .trim()
            .parse()
            .map_err(|_| bad("slot-minutes", "Enter the slot length in whole minutes."))?,
        kind: Kind::parse(f(form, "kind"))
            .ok_or_else(|| bad("kind", "Choose new or follow-up patients."))?,
        mode: Mode::parse(f(form, "mode"))
            .ok_or_else(|| bad("mode", "Choose face to face or virtual."))?,
        valid_from: date_of("valid-from")?
            .ok_or_else(|| bad("valid-from", "Enter the date the clinic starts."))?,
        valid_to: date_of("valid-to")?,
    })
}

/// `POST /ui/clinics`: saves a template and shows its clinic.
async fn clinics_post(State(ui): St, req: Req, body: Bytes) -> Response {
    ui.run(req, Some(&body), move |cx, form| {
        match template_of(&form).and_then(|t| clinics::save_template(&cx.svc, cx.access(), &t)) {
            Ok(id) => see_other(&format!("/ui/clinics?clinic={}&done=saved", enc(&id))),
            Err(OutpatientsError::Invalid(field, m)) => {
                let list = clinics::templates(&cx.svc, cx.access()).unwrap_or_default();
                let err = Some((
                    if field.is_empty() {
                        "name".to_owned()
                    } else {
                        field
                    },
                    m,
                ));
                layout::page_with(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    cx,
                    "Outpatient clinics",
                    Nav::None,
                    templates_body(cx, &list, &form, &err),
                )
            }
            Err(e) => refusal(&e),
        }
    })
    .await
}

// ---------------------------------------------------------------- one clinic and its list

fn outcome_text(row: &wardline_workflow::outpatients::list::Row) -> String {
    row.outcome.clone().unwrap_or_else(|| "—".to_owned())
}

fn status_tag(status: Option<&str>) -> Markup {
    let (class, text) = match status {
        Some("booked") => ("nhsuk-tag nhsuk-tag--blue", "Booked"),
        Some("arrived") => ("nhsuk-tag nhsuk-tag--green", "Arrived"),
        Some("fulfilled") => ("nhsuk-tag nhsuk-tag--grey", "Seen"),
        Some("noshow") => ("nhsuk-tag nhsuk-tag--red", "Did not attend"),
        Some(_) => ("nhsuk-tag nhsuk-tag--grey", "Other"),
        None => ("nhsuk-tag nhsuk-tag--white", "Free"),
    };
    html! { strong class=(class) data-testid="appt-status" data-status=(status.unwrap_or("free")) { (text) } }
}

/// `GET /ui/clinics?clinic={id}&date=YYYY-MM-DD`: the clinic list for the day.
async fn clinic_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        let day = q
            .get("date")
            .and_then(|d| parse_date(d))
            .unwrap_or_else(|| cx.svc.now().date());
        let done = match q.get("done").map(String::as_str) {
            Some("saved") => Some("Clinic template saved. Generate its slots below.".to_owned()),
            Some("slots") => Some(format!("{} slots made.", q.get("n").map_or("0", String::as_str))),
            _ => None,
        };
        match clinic_list(&cx.svc, cx.access(), &id, day) {
            Ok(l) => {
                let body = html! {
                    (layout::back_link("/ui/clinics", "All clinics"))
                    @if let Some(d) = &done { (layout::success(d)) }
                    span class="nhsuk-caption-l" { (l.clinic.specialty_name) " · " (l.clinic.kind.label()) " · " (l.clinic.mode.label()) }
                    h1 data-testid="clinic-name" { (l.clinic.name) }
                    form method="get" action="/ui/clinics" class="nhsuk-u-margin-bottom-4" {
                        input type="hidden" name="clinic" value=(id);
                        (layout::input(&Field { kind: "date", value: &l.day, ..Field::new("date", "Clinic date") }))
                        button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" data-testid="show-day" { "Show" }
                    }
                    h2 { "Clinic list for " (layout::long_date(&l.day)) }
                    @if l.rows.is_empty() {
                        p data-testid="no-slots" { "No slots on this day." }
                    } @else {
                        table class="nhsuk-table" data-testid="clinic-list" {
                            thead class="nhsuk-table__head" { tr {
                                th scope="col" { "Time" } th scope="col" { "Patient" } th scope="col" { "New or follow-up" }
                                th scope="col" { "Status" } th scope="col" { "Arrived" } th scope="col" { "Outcome" }
                            } }
                            tbody class="nhsuk-table__body" {
                                @for r in &l.rows {
                                    tr class="nhsuk-table__row" data-testid="list-row" data-slot=(r.slot.id) data-appointment=[r.appointment.as_deref()] {
                                        td class="nhsuk-table__cell" { (clock(cx, &r.slot.start)) }
                                        td class="nhsuk-table__cell" {
                                            @if let Some(a) = &r.appointment {
                                                a href={ "/ui/appointments/" (enc(a)) } data-testid="open-appointment" { (r.patient.as_deref().unwrap_or("Patient")) }
                                                @if let Some(n) = &r.nhs_number { br; span class="nhsuk-body-s" { "NHS " (n) } }
                                            } @else { "—" }
                                        }
                                        td class="nhsuk-table__cell" { (r.kind.map_or("—", |k| k.label())) }
                                        td class="nhsuk-table__cell" { (status_tag(r.status.as_deref())) }
                                        td class="nhsuk-table__cell" data-testid="arrived" { (r.arrived.as_deref().map(|a| clock(cx, a)).unwrap_or_else(|| "—".into())) }
                                        td class="nhsuk-table__cell" data-testid="outcome" { (outcome_text(r)) }
                                    }
                                }
                            }
                        }
                    }
                    @if l.withheld > 0 { p { (l.withheld) " appointments not shown: your access does not cover them." } }
                    @if cx.may(Activity::ManageAppointments) {
                        h2 { "Generate slots" }
                        form method="post" action="/ui/clinics" novalidate {
                            (layout::csrf(cx))
                            input type="hidden" name="clinic" value=(id);
                            (layout::input(&Field { kind: "date", ..Field::new("from", "From") }))
                            (layout::input(&Field { kind: "date", ..Field::new("to", "To") }))
                            button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" data-testid="generate" { "Generate slots" }
                        }
                    }
                };
                layout::page(cx, &l.clinic.name, Nav::None, body)
            }
            Err(e) => refusal(&e),
        }
    })
    .await
}

/// `POST /ui/clinics` with `clinic`: generates the clinic's slots.
async fn slots_post(State(ui): St, req: Req, Path(id): Path<String>, body: Bytes) -> Response {
    ui.run(req, Some(&body), move |cx, form| {
        let (from, to) = (parse_date(f(&form, "from")), parse_date(f(&form, "to")));
        let (Some(from), Some(to)) = (from, to) else {
            return refusal(&OutpatientsError::invalid(
                "from",
                "Enter the first and last day as real dates.",
            ));
        };
        match clinics::generate(&cx.svc, cx.access(), &id, from, to) {
            Ok(n) => see_other(&format!(
                "/ui/clinics?clinic={}&date={}&done=slots&n={n}",
                enc(&id),
                date_text(from)
            )),
            Err(e) => refusal(&e),
        }
    })
    .await
}

// ---------------------------------------------------------------- the waiting list and booking

/// `GET /ui/outpatients`: the outpatient entries waiting to be booked.
async fn waiting_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, q| match booking::waiting_to_book(&cx.svc, cx.access()) {
        Ok((list, withheld)) => {
            let body = html! {
                @if q.contains_key("done") { (layout::success("Appointment booked.")) }
                h1 { "Outpatients waiting to be booked" }
                p { a href="/ui/clinics" { "Outpatient clinics" } }
                @if list.is_empty() {
                    p data-testid="nobody-waiting" { "Nobody is waiting to be booked." }
                } @else {
                    table class="nhsuk-table" data-testid="waiting" {
                        thead class="nhsuk-table__head" { tr {
                            th scope="col" { "Patient" } th scope="col" { "List" } th scope="col" { "Specialty" } th scope="col" { "Waiting since" } th scope="col" { "" }
                        } }
                        tbody class="nhsuk-table__body" {
                            @for w in &list {
                                tr class="nhsuk-table__row" data-testid="waiting-row" data-entry=(w.entry.id) data-patient=(w.entry.patient) {
                                    td class="nhsuk-table__cell" { (w.patient) @if let Some(n) = &w.nhs_number { br; span class="nhsuk-body-s" { "NHS " (n) } } }
                                    td class="nhsuk-table__cell" { (w.entry.kind.label()) }
                                    td class="nhsuk-table__cell" { (w.entry.specialty.as_deref().unwrap_or("—")) }
                                    td class="nhsuk-table__cell" { (layout::long_date(w.since.get(..10).unwrap_or(""))) }
                                    td class="nhsuk-table__cell" { a href={ "/ui/outpatients?entry=" (enc(&w.entry.id)) } data-testid="book" { "Book" } }
                                }
                            }
                        }
                    }
                }
                @if withheld > 0 { p { (withheld) " more not shown: your access does not cover them." } }
            };
            layout::page(cx, "Outpatients waiting to be booked", Nav::None, body)
        }
        Err(e) => refusal(&e),
    })
    .await
}

fn slot_radios(cx: &Cx, free: &[Offerable], error: Option<&str>) -> Markup {
    html! {
        div class={ "nhsuk-form-group" @if error.is_some() { " nhsuk-form-group--error" } } {
            fieldset class="nhsuk-fieldset" {
                legend class="nhsuk-fieldset__legend nhsuk-fieldset__legend--s" { "Choose a slot" }
                @if let Some(e) = error {
                    span class="nhsuk-error-message" id="slot-error" { span class="nhsuk-u-visually-hidden" { "Error: " } (e) }
                }
                @if free.is_empty() { p data-testid="no-free-slots" { "No free slots of this specialty and kind." } }
                div class="nhsuk-radios" {
                    @for (i, o) in free.iter().enumerate() {
                        @let id = if i == 0 { "slot".to_owned() } else { format!("slot-{}", i + 1) };
                        div class="nhsuk-radios__item" {
                            input class="nhsuk-radios__input" id=(id) name="slot" type="radio" value=(o.slot.id) data-testid="slot-choice" data-start=(o.slot.start);
                            label class="nhsuk-label nhsuk-radios__label" for=(id) { (when(cx, &o.slot.start)) ", " (o.clinic) " (" (o.slot.mode.label().to_lowercase()) ")" }
                        }
                    }
                }
            }
        }
    }
}

/// What the booking page shows besides the form's error.
struct Booking {
    /// Free slots from now: to book straight away.
    free: Vec<Offerable>,
    /// Free slots from [`booking::NOTICE_DAYS`] on: to offer.
    later: Vec<Offerable>,
    offers: Vec<booking::OfferView>,
    /// Reasonable offers the patient declined.
    declined: usize,
}

/// At most six slots a day over at most ten days: a reasonable offer is a
/// choice of dates, so the list to offer from spans several.
fn spread(slots: Vec<Offerable>) -> Vec<Offerable> {
    let mut out: Vec<Offerable> = Vec::new();
    for o in slots {
        let day = o.slot.start.get(..10).unwrap_or_default().to_owned();
        let that_day = out
            .iter()
            .filter(|x| x.slot.start.starts_with(&day))
            .count();
        let days = out
            .iter()
            .map(|x| x.slot.start.get(..10).unwrap_or_default())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        if that_day < 6 && (that_day > 0 || days < 10) {
            out.push(o);
        }
    }
    out
}

fn booking_of(cx: &Cx, entry: &str) -> Result<Booking, OutpatientsError> {
    let (offers, declined) = booking::offers(&cx.svc, cx.access(), entry)?;
    Ok(Booking {
        free: booking::free_slots(&cx.svc, cx.access(), entry, cx.svc.now(), 60)?,
        later: spread(booking::free_slots(
            &cx.svc,
            cx.access(),
            entry,
            cx.svc.now() + time::Duration::days(booking::NOTICE_DAYS),
            500,
        )?),
        offers,
        declined,
    })
}

fn offers_body(cx: &Cx, entry: &str, b: &Booking, error: &Option<(String, String)>) -> Markup {
    html! {
        h2 { "Offer dates" }
        p { "An offer is reasonable when it gives at least " (booking::NOTICE_DAYS) " days' notice and a choice of at least two dates. If the patient declines two reasonable offers, their consultant is asked to review them: nobody is discharged for declining." }
        @if b.declined > 0 {
            p data-testid="declined-count" { strong { (b.declined) } " reasonable " @if b.declined == 1 { "offer" } @else { "offers" } " declined." }
        }
        @if !b.offers.is_empty() {
            table class="nhsuk-table" data-testid="offers" {
                caption class="nhsuk-table__caption" { "Offers made" }
                thead class="nhsuk-table__head" { tr {
                    th class="nhsuk-table__header" { "Made" }
                    th class="nhsuk-table__header" { "Dates offered" }
                    th class="nhsuk-table__header" { "Reasonable" }
                    th class="nhsuk-table__header" { "Answer" }
                } }
                tbody class="nhsuk-table__body" {
                    @for o in &b.offers {
                        tr class="nhsuk-table__row" data-testid="offer" data-offer=(o.id) {
                            td class="nhsuk-table__cell" { (when(cx, &o.sent)) }
                            td class="nhsuk-table__cell" { ul class="nhsuk-list" { @for (_, d) in &o.dates { li { (when(cx, d)) } } } }
                            td class="nhsuk-table__cell" data-testid="offer-reasonable" {
                                @if o.reasonable { strong class="nhsuk-tag nhsuk-tag--green" { "Reasonable" } }
                                @else { strong class="nhsuk-tag nhsuk-tag--grey" { "Not reasonable" } }
                            }
                            td class="nhsuk-table__cell" data-testid="offer-answer" {
                                @match o.answer.as_deref() {
                                    Some("accepted") => { "Accepted" }
                                    Some(_) => { "Declined" }
                                    None => {
                                        form method="post" action={ "/ui/outpatients/offers/" (enc(&o.id)) } novalidate {
                                            (layout::csrf(cx))
                                            input type="hidden" name="entry" value=(entry);
                                            div class="nhsuk-form-group" {
                                                div class="nhsuk-radios nhsuk-radios--small" {
                                                    @for (i, (slot, d)) in o.dates.iter().enumerate() {
                                                        @let id = format!("accept-{}-{i}", o.id);
                                                        div class="nhsuk-radios__item" {
                                                            input class="nhsuk-radios__input" id=(id) name="slot" type="radio" value=(slot) data-testid="offer-date";
                                                            label class="nhsuk-label nhsuk-radios__label" for=(id) { (when(cx, d)) }
                                                        }
                                                    }
                                                }
                                            }
                                            button class="nhsuk-button nhsuk-button--small" data-module="nhsuk-button" type="submit" name="answer" value="accepted" data-testid="offer-accept" { "The patient accepts this date" }
                                            " "
                                            button class="nhsuk-button nhsuk-button--secondary nhsuk-button--small" data-module="nhsuk-button" type="submit" name="answer" value="declined" data-testid="offer-decline" { "The patient declines" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        form method="post" action="/ui/outpatients/offers" novalidate {
            (layout::csrf(cx))
            input type="hidden" name="entry" value=(entry);
            @let err = error_for(error, "slots");
            div class={ "nhsuk-form-group" @if err.is_some() { " nhsuk-form-group--error" } } {
                fieldset class="nhsuk-fieldset" {
                    legend class="nhsuk-fieldset__legend nhsuk-fieldset__legend--s" { "Dates to offer (from " (booking::NOTICE_DAYS) " days ahead)" }
                    @if let Some(e) = err {
                        span class="nhsuk-error-message" id="slots-error" { span class="nhsuk-u-visually-hidden" { "Error: " } (e) }
                    }
                    @if b.later.is_empty() { p data-testid="no-later-slots" { "No free slots of this specialty and kind so far ahead." } }
                    div class="nhsuk-checkboxes" {
                        @for (i, o) in b.later.iter().enumerate() {
                            @let id = if i == 0 { "slots".to_owned() } else { format!("slots-{}", i + 1) };
                            div class="nhsuk-checkboxes__item" {
                                input class="nhsuk-checkboxes__input" id=(id) name={ "offer-" (o.slot.id) } type="checkbox" value="on" data-testid="offer-choice";
                                label class="nhsuk-label nhsuk-checkboxes__label" for=(id) { (when(cx, &o.slot.start)) ", " (o.clinic) }
                            }
                        }
                    }
                }
            }
            button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" data-testid="make-offer" { "Record the offer" }
        }
    }
}

fn book_body(
    cx: &Cx,
    entry: &str,
    b: &Booking,
    error: &Option<(String, String)>,
    done: Option<&str>,
) -> Markup {
    html! {
        (layout::back_link("/ui/outpatients", "Back to the waiting list"))
        @if let Some(d) = done { (layout::success(d)) }
        h1 { "Book an appointment" }
        (summary(error))
        form method="post" action="/ui/outpatients" novalidate {
            (layout::csrf(cx))
            input type="hidden" name="entry" value=(entry);
            (slot_radios(cx, &b.free, error_for(error, "slot")))
            button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="confirm-book" { "Book this slot" }
        }
        (offers_body(cx, entry, b, error))
    }
}

/// The booking page of `entry`, with an error on a field or a done note.
fn show_booking(
    cx: &Cx,
    entry: &str,
    error: Option<(String, String)>,
    done: Option<&str>,
) -> Response {
    match booking_of(cx, entry) {
        Ok(b) => layout::page_with(
            if error.is_some() {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::OK
            },
            cx,
            "Book an appointment",
            Nav::None,
            book_body(cx, entry, &b, &error, done),
        ),
        Err(e) => refusal(&e),
    }
}

/// `GET /ui/outpatients?entry={id}`: free slots of the entry's specialty
/// and kind, to book or to offer, and the offers made.
async fn book_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        let done = match q.get("done").map(String::as_str) {
            Some("offered") => Some("Offer recorded."),
            Some("declined") => Some("The patient declined the offer."),
            Some("review") => Some("The patient declined a second reasonable offer: their consultant is asked to review them."),
            _ => None,
        };
        show_booking(cx, &id, None, done)
    })
    .await
}

/// `POST /ui/outpatients` (`entry`, `slot`).
async fn book_post(State(ui): St, req: Req, Path(id): Path<String>, body: Bytes) -> Response {
    ui.run(req, Some(&body), move |cx, form| {
        let slot = f(&form, "slot").trim().to_owned();
        let result = if slot.is_empty() {
            Err(OutpatientsError::invalid("slot", "Choose a slot."))
        } else {
            booking::book(&cx.svc, cx.access(), &id, &slot, cx.svc.now())
        };
        match result {
            Ok(a) => see_other(&format!("/ui/appointments/{}?done=booked", enc(&a))),
            Err(e @ (OutpatientsError::Invalid(..) | OutpatientsError::Conflict(_))) => {
                show_booking(cx, &id, Some(("slot".to_owned(), e.message())), None)
            }
            Err(e) => refusal(&e),
        }
    })
    .await
}

/// `POST /ui/outpatients/offers` (`entry`, `offer-{slot}`): records an
/// offer of the dates ticked.
async fn offer_post(State(ui): St, req: Req, body: Bytes) -> Response {
    ui.run(req, Some(&body), move |cx, form| {
        let entry = f(&form, "entry").to_owned();
        let mut slots: Vec<String> = form
            .iter()
            .filter(|(_, v)| v.as_str() == "on")
            .filter_map(|(k, _)| k.strip_prefix("offer-").map(str::to_owned))
            .collect();
        slots.sort();
        match booking::offer(&cx.svc, cx.access(), &entry, &slots, cx.svc.now()) {
            Ok(_) => see_other(&format!(
                "/ui/outpatients?entry={}&done=offered",
                enc(&entry)
            )),
            Err(e @ (OutpatientsError::Invalid(..) | OutpatientsError::Conflict(_))) => {
                show_booking(cx, &entry, Some(("slots".to_owned(), e.message())), None)
            }
            Err(e) => refusal(&e),
        }
    })
    .await
}

/// `POST /ui/outpatients/offers/{id}` (`answer` accepted with `slot`, or
/// declined): the patient's answer to an offer.
async fn answer_post(State(ui): St, req: Req, Path(id): Path<String>, body: Bytes) -> Response {
    ui.run(req, Some(&body), move |cx, form| {
        let entry = f(&form, "entry").to_owned();
        let answer = match (f(&form, "answer"), f(&form, "slot").trim()) {
            ("declined", _) => Ok(booking::Answer::Declined),
            ("accepted", "") => Err(OutpatientsError::invalid(
                "slot",
                "Choose the date the patient accepts.",
            )),
            ("accepted", slot) => Ok(booking::Answer::Accepted(slot.to_owned())),
            _ => Err(OutpatientsError::invalid(
                "slot",
                "Choose accept or decline.",
            )),
        };
        match answer.and_then(|a| booking::answer(&cx.svc, cx.access(), &id, &a, cx.svc.now())) {
            Ok(booking::Answered {
                appointment: Some(a),
                ..
            }) => see_other(&format!("/ui/appointments/{}?done=booked", enc(&a))),
            Ok(booking::Answered {
                review_task: Some(_),
                ..
            }) => see_other(&format!(
                "/ui/outpatients?entry={}&done=review",
                enc(&entry)
            )),
            Ok(_) => see_other(&format!(
                "/ui/outpatients?entry={}&done=declined",
                enc(&entry)
            )),
            Err(e @ (OutpatientsError::Invalid(..) | OutpatientsError::Conflict(_))) => {
                show_booking(cx, &entry, Some(("slot".to_owned(), e.message())), None)
            }
            Err(e) => refusal(&e),
        }
    })
    .await
}

// ---------------------------------------------------------------- one appointment

fn outcome_of(a: &Value) -> Option<String> {
    a["extension"]
        .as_array()?
        .iter()
        .find(|e| e["url"] == OUTCOME_EXT)?["extension"]
        .as_array()?
        .iter()
        .find(|s| s["url"] == "label")?["valueString"]
        .as_str()
        .map(str::to_owned)
}

fn appointment_body(
    cx: &Cx,
    id: &str,
    a: &Value,
    free: &[Offerable],
    form: &Form,
    error: &Option<(String, String)>,
    done: Option<&str>,
) -> Markup {
    let status = a["status"].as_str().unwrap_or("unknown");
    let base = format!("/ui/appointments/{}", enc(id));
    let patient = reference_id(&a["participant"][0]["actor"], "Patient")
        .and_then(|p| cx.svc.read_as(cx.access(), "Patient", p).ok().flatten())
        .and_then(|p| person_name(&p))
        .unwrap_or_else(|| "Patient".to_owned());
    let clinic = a["slot"][0]["reference"].as_str().and_then(|s| {
        let slot = cx
            .svc
            .read_as(cx.access(), "Slot", s.trim_start_matches("Slot/"))
            .ok()
            .flatten()?;
        reference_id(&slot["schedule"], "Schedule").map(str::to_owned)
    });
    let may = cx.may(Activity::ManageAppointments);
    let priorities: Vec<(&str, &str)> = Priority::ALL
        .iter()
        .filter(|p| p.admitted())
        .map(|p| (p.code(), p.label()))
        .collect();
    html! {
        @if let Some(c) = &clinic {
            (layout::back_link(&format!("/ui/clinics?clinic={}&date={}", enc(c), a["start"].as_str().and_then(|s| s.get(..10)).unwrap_or("")), "Back to the clinic list"))
        }
        @if let Some(d) = done { (layout::success(d)) }
        @if let Some(pid) = reference_id(&a["participant"][0]["actor"], "Patient") { (crate::chart::patient_banner(cx, pid)) }
        span class="nhsuk-caption-l" data-testid="appt-patient" { (patient) }
        h1 { (a["description"].as_str().unwrap_or("Appointment")) " " (status_tag(Some(status))) }
        (summary(error))
        dl class="nhsuk-summary-list" {
            div class="nhsuk-summary-list__row" {
                dt class="nhsuk-summary-list__key" { "When" }
                dd class="nhsuk-summary-list__value" data-testid="appt-when" { (a["start"].as_str().map(|s| when(cx, s)).unwrap_or_default()) }
            }
            div class="nhsuk-summary-list__row" {
                dt class="nhsuk-summary-list__key" { "New or follow-up" }
                dd class="nhsuk-summary-list__value" { (Kind::of(a).map_or("—", |k| k.label())) " · " (Mode::of(a).label()) }
            }
            @if let Some(o) = outcome_of(a) {
                div class="nhsuk-summary-list__row" {
                    dt class="nhsuk-summary-list__key" { "Outcome" }
                    dd class="nhsuk-summary-list__value" data-testid="appt-outcome" { (o) }
                }
            }
            @if let Some(r) = a["cancelationReason"]["text"].as_str() {
                div class="nhsuk-summary-list__row" {
                    dt class="nhsuk-summary-list__key" { "Cancelled" }
                    dd class="nhsuk-summary-list__value" data-testid="appt-cancelled" { (r) }
                }
            }
        }
        @if may && status == "booked" {
            (layout::action_button(cx, &format!("{base}/arrive"), "Check in", ""))
            h2 { "Rebook" }
            form method="post" action={ (base) "/rebook" } novalidate {
                (layout::csrf(cx))
                (slot_radios(cx, free, error_for(error, "slot")))
                (layout::radios("by", "Who asked", &[("patient", "The patient"), ("hospital", "The hospital")], f(form, "by"), error_for(error, "by")))
                (layout::input(&Field { value: f(form, "rebook-reason"), error: error_for(error, "reason"), ..Field::new("rebook-reason", "Reason") }))
                button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" data-testid="rebook" { "Rebook" }
            }
            h2 { "Cancel" }
            form method="post" action={ (base) "/cancel" } novalidate {
                (layout::csrf(cx))
                (layout::radios("cancel-by", "Who cancelled", &[("patient", "The patient"), ("hospital", "The hospital")], f(form, "cancel-by"), error_for(error, "cancel-by")))
                (layout::input(&Field { value: f(form, "reason"), error: error_for(error, "reason"), ..Field::new("reason", "Reason") }))
                button class="nhsuk-button nhsuk-button--warning" data-module="nhsuk-button" type="submit" data-testid="cancel" { "Cancel the appointment" }
            }
            h2 { "Did not attend" }
            form method="post" action={ (base) "/dna" } novalidate {
                (layout::csrf(cx))
                @if Kind::of(a) == Some(Kind::New) {
                    p { "A patient who does not attend a first appointment is discharged back to their GP with a letter (the trust's access policy), unless a clinician keeps them on the list." }
                    (layout::input(&Field { value: f(form, "override"), error: error_for(error, "override"),
                        hint: Some("Only if a clinician decided to keep the patient on the list: why"),
                        ..Field::new("override", "Clinical override (optional)") }))
                }
                button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" data-testid="dna" { "Did not attend" }
            }
        }
        @if may && status == "arrived" {
            h2 { "Outcome of the attendance" }
            form method="post" action={ (base) "/outcome" } novalidate {
                (layout::csrf(cx))
                (layout::radios("outcome", "Outcome", &[("discharged", "Seen and discharged"), ("follow-up", "Follow-up"), ("admitted", "Add to the admitted waiting list")], f(form, "outcome"), error_for(error, "outcome")))
                h3 { "If discharged" }
                (layout::radios("treated", "First definitive treatment given in clinic?", &[("no", "No (RTT 34, decision not to treat)"), ("yes", "Yes (RTT 30)")], f(form, "treated"), None))
                h3 { "If follow-up" }
                (layout::input(&Field { kind: "date", value: f(form, "due"), error: error_for(error, "due"), ..Field::new("due", "Follow-up due by") }))
                h3 { "If added to the admitted list" }
                (layout::radios("list", "List", &[("inpatient", "Inpatient"), ("day-case", "Day case")], f(form, "list"), error_for(error, "list")))
                (layout::input(&Field { value: f(form, "procedure"), error: error_for(error, "procedure"), hint: Some("SNOMED CT code"), ..Field::new("procedure", "Intended procedure code") }))
                (layout::input(&Field { value: f(form, "procedure-name"), ..Field::new("procedure-name", "Intended procedure") }))
                (layout::radios("priority", "Priority", &priorities, f(form, "priority"), error_for(error, "priority")))
                button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="record-outcome" { "Record the outcome" }
            }
        }
    }
}

fn show_appointment(
    cx: &Cx,
    id: &str,
    form: &Form,
    error: Option<(String, String)>,
    done: Option<&str>,
) -> Response {
    let a = match cx.svc.read_as(cx.access(), "Appointment", id) {
        Ok(Some(a)) => a,
        Ok(None) => {
            return refusal(&OutpatientsError::NotFound(format!(
                "There is no appointment {id}."
            )));
        }
        Err(e) => return refusal(&e.into()),
    };
    let free = match (a["status"] == "booked", booking::entry_of(&a)) {
        (true, Some(e)) => {
            booking::free_slots(&cx.svc, cx.access(), e, cx.svc.now(), 60).unwrap_or_default()
        }
        _ => vec![],
    };
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    layout::page_with(
        status,
        cx,
        "Appointment",
        Nav::None,
        appointment_body(cx, id, &a, &free, form, &error, done),
    )
}

/// `GET /ui/appointments/{id}`.
async fn appointment_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        let done = match q.get("done").map(String::as_str) {
            Some("booked") => Some("Appointment booked."),
            Some("rebooked") => Some("Appointment rebooked; the old one is cancelled."),
            Some("arrived") => Some("Patient checked in."),
            Some("cancelled") => Some("Appointment cancelled; the patient is back on the waiting list."),
            Some("outcome") => Some("Outcome recorded."),
            Some("dna-discharged") => Some("Did not attend: discharged to the GP. A letter to the GP is drafted for the consultant to sign."),
            Some("dna") => Some("Did not attend: the patient is back on the waiting list."),
            _ => None,
        };
        show_appointment(cx, &id, &Form::new(), None, done)
    })
    .await
}

fn after(
    cx: &Cx,
    id: &str,
    form: &Form,
    r: Result<String, OutpatientsError>,
    field: &str,
) -> Response {
    match r {
        Ok(to) => see_other(&to),
        Err(OutpatientsError::Invalid(f, m)) => {
            let f = if f.is_empty() { field.to_owned() } else { f };
            show_appointment(cx, id, form, Some((f, m)), None)
        }
        Err(OutpatientsError::Conflict(m)) => {
            show_appointment(cx, id, form, Some((field.to_owned(), m)), None)
        }
        Err(e) => refusal(&e),
    }
}

/// `POST /ui/appointments/{id}/arrive`.
async fn arrive_post(State(ui): St, req: Req, Path(id): Path<String>, body: Bytes) -> Response {
    ui.run(req, Some(&body), move |cx, form| {
        let r = attendance::arrive(&cx.svc, cx.access(), &id, cx.svc.now())
            .map(|_| format!("/ui/appointments/{}?done=arrived", enc(&id)));
        after(cx, &id, &form, r, "outcome")
    })
    .await
}

/// `POST /ui/appointments/{id}/cancel`.
async fn cancel_post(State(ui): St, req: Req, Path(id): Path<String>, body: Bytes) -> Response {
    ui.run(req, Some(&body), move |cx, form| {
        let r = match CancelledBy::parse(f(&form, "cancel-by")) {
            None => Err(OutpatientsError::invalid(
                "cancel-by",
                "Choose who cancelled.",
            )),
            Some(by) => booking::cancel(
                &cx.svc,
                cx.access(),
                &id,
                by,
                f(&form, "reason"),
                cx.svc.now(),
            ),
        }
        .map(|()| format!("/ui/appointments/{}?done=cancelled", enc(&id)));
        after(cx, &id, &form, r, "reason")
    })
    .await
}

/// `POST /ui/appointments/{id}/rebook`.
async fn rebook_post(State(ui): St, req: Req, Path(id): Path<String>, body: Bytes) -> Response {
    ui.run(req, Some(&body), move |cx, form| {
        let slot = f(&form, "slot").trim().to_owned();
        let r = match CancelledBy::parse(f(&form, "by")) {
            _ if slot.is_empty() => Err(OutpatientsError::invalid("slot", "Choose the new slot.")),
            None => Err(OutpatientsError::invalid(
                "by",
                "Choose who asked for the change.",
            )),
            Some(by) => booking::rebook(
                &cx.svc,
                cx.access(),
                &id,
                &slot,
                by,
                f(&form, "rebook-reason"),
                cx.svc.now(),
            ),
        }
        .map(|new| format!("/ui/appointments/{}?done=rebooked", enc(&new)));
        after(cx, &id, &form, r, "slot")
    })
    .await
}

/// `POST /ui/appointments/{id}/dna`.
async fn dna_post(State(ui): St, req: Req, Path(id): Path<String>, body: Bytes) -> Response {
    ui.run(req, Some(&body), move |cx, form| {
        let over = Some(f(&form, "override")).filter(|o| !o.trim().is_empty());
        let r =
            attendance::did_not_attend(&cx.svc, cx.access(), &id, over, cx.svc.now()).map(|d| {
                format!(
                    "/ui/appointments/{}?done={}",
                    enc(&id),
                    if d.discharged {
                        "dna-discharged"
                    } else {
                        "dna"
                    }
                )
            });
        after(cx, &id, &form, r, "override")
    })
    .await
}

fn outcome_from(form: &Form) -> Result<Outcome, OutpatientsError> {
    match f(form, "outcome") {
        "discharged" => Ok(Outcome::Discharged {
            treated: match f(form, "treated") {
                "yes" => Some(true),
                "no" => Some(false),
                _ => None,
            },
        }),
        "follow-up" => Ok(Outcome::FollowUp {
            due: parse_date(f(form, "due")).ok_or_else(|| {
                OutpatientsError::invalid("due", "Enter the date the follow-up is due by.")
            })?,
        }),
        "admitted" => Ok(Outcome::Admitted {
            day_case: match f(form, "list") {
                "day-case" => true,
                "inpatient" => false,
                _ => {
                    return Err(OutpatientsError::invalid(
                        "list",
                        "Choose inpatient or day case.",
                    ));
                }
            },
            procedure: (
                f(form, "procedure").trim().to_owned(),
                f(form, "procedure-name").trim().to_owned(),
            ),
            priority: Priority::parse(f(form, "priority"))
                .filter(|p| p.admitted())
                .ok_or_else(|| {
                    OutpatientsError::invalid("priority", "Choose the priority, P1 to P4.")
                })?,
        }),
        _ => Err(OutpatientsError::invalid("outcome", "Choose the outcome.")),
    }
}

/// `POST /ui/appointments/{id}/outcome`.
async fn outcome_post(State(ui): St, req: Req, Path(id): Path<String>, body: Bytes) -> Response {
    ui.run(req, Some(&body), move |cx, form| {
        let r = outcome_from(&form)
            .and_then(|o| attendance::outcome(&cx.svc, cx.access(), &id, &o, cx.svc.now()))
            .map(|_| format!("/ui/appointments/{}?done=outcome", enc(&id)));
        after(cx, &id, &form, r, "outcome")
    })
    .await
}

// ---------------------------------------------------------------- routes

/// `GET /ui/clinics`: the templates, or with `clinic` that clinic's list.
async fn clinics_get(st: St, req: Req) -> Response {
    match crate::query_of(&req.target).get("clinic") {
        Some(id) => clinic_page(st, req, Path(id.clone())).await,
        None => clinics_page(st, req).await,
    }
}

/// `POST /ui/clinics`: saves a template, or with `clinic` generates its slots.
async fn clinics_post_any(st: St, req: Req, body: Bytes) -> Response {
    match crate::parse_form(&body).get("clinic") {
        Some(id) => slots_post(st, req, Path(id.clone()), body).await,
        None => clinics_post(st, req, body).await,
    }
}

/// `GET /ui/outpatients`: the waiting list, or with `entry` its booking.
async fn outpatients_get(st: St, req: Req) -> Response {
    match crate::query_of(&req.target).get("entry") {
        Some(id) => book_page(st, req, Path(id.clone())).await,
        None => waiting_page(st, req).await,
    }
}

/// `POST /ui/outpatients`: books `entry` into `slot`.
async fn outpatients_post(st: St, req: Req, body: Bytes) -> Response {
    let entry = crate::parse_form(&body)
        .get("entry")
        .cloned()
        .unwrap_or_default();
    book_post(st, req, Path(entry), body).await
}

/// `POST /ui/appointments/{id}/{action}`: arrive, cancel, rebook, dna, outcome.
async fn appointment_post(
    st: St,
    req: Req,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    match action.as_str() {
        "arrive" => arrive_post(st, req, Path(id), body).await,
        "cancel" => cancel_post(st, req, Path(id), body).await,
        "rebook" => rebook_post(st, req, Path(id), body).await,
        "dna" => dna_post(st, req, Path(id), body).await,
        "outcome" => outcome_post(st, req, Path(id), body).await,
        _ => {
            st.0.run(req, Some(&body), |_, _| {
                refusal(&OutpatientsError::NotFound(
                    "There is no such appointment action.".into(),
                ))
            })
            .await
        }
    }
}

/// The clinic pages' routes, merged into the UI's router.
pub(crate) fn routes() -> axum::Router<Ui> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/clinics", get(clinics_get).post(clinics_post_any))
        .route("/outpatients", get(outpatients_get).post(outpatients_post))
        .route("/outpatients/offers", post(offer_post))
        .route("/outpatients/offers/{id}", post(answer_post))
        .route("/appointments/{id}", get(appointment_page))
        .route("/appointments/{id}/{action}", post(appointment_post))
}
