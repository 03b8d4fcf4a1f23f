//! The Emergency Department pages (issue 20): the tracking board per site
//! (`/ui/ed`, live like the bed board), arrival (`/ui/ed/arrive`: a known
//! patient found in the PMI, or an unknown one registered quickly), an
//! attendance with triage, streaming, taking the patient, waiting for,
//! referral, coding, decision to admit and discharge
//! (`/ui/ed/attendances/{id}`), and the ECDS-shaped extract
//! (`/ui/ed/export`, CSV or JSON). Every rule is `wardline_workflow::ed`'s.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use time::OffsetDateTime;
use wardline_auth::rbac::Activity;
use wardline_workflow::ed::attend::{self, Admit, Arrival, Coding};
use wardline_workflow::ed::board::{self, Board, Department, Detail, Row};
use wardline_workflow::ed::{
    ARRIVAL_MODES, COMPLAINTS, Clock, DESTINATIONS, DIAGNOSES, ECDS, EdError, INVESTIGATIONS,
    Stream, TREATMENTS, WaitingFor, duration_text, item, triage_category,
};
use wardline_workflow::pmi::{self, NewPatient, PatientQuery};

use crate::layout::{self, Field, Nav};
use crate::outpatients::{clock, error_for, f, summary};
use crate::{Cx, Form, Req, St, enc, see_other};

fn refusal(e: &EdError) -> Response {
    layout::refusal_page(e.status(), &e.message(), "attendance")
}

fn opts(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v = vec![(String::new(), "Choose…".to_owned())];
    v.extend(list.iter().map(|(c, l)| ((*c).to_owned(), (*l).to_owned())));
    v
}

/// "HH:MM" on the trust's wall clock as the latest such instant not after
/// `now` (an arrival recorded a little after midnight may be yesterday's).
fn wall_time(cx: &Cx, hm: &str, now: OffsetDateTime) -> Option<OffsetDateTime> {
    let t = wardline_workflow::outpatients::clinics::parse_time(hm)?;
    let mut best: Option<OffsetDateTime> = None;
    for days in [-1i64, 0, 1] {
        let day = (now + time::Duration::days(days)).date();
        let (ms, _) = wardline_fhir::datetime::parse_range_in(
            &format!(
                "{}T{:02}:{:02}:00",
                wardline_workflow::outpatients::clinics::date_text(day),
                t.hour(),
                t.minute()
            ),
            cx.svc.time_zone(),
        )?;
        let at = OffsetDateTime::from_unix_timestamp(ms / 1000).ok()?;
        if at <= now + time::Duration::minutes(5) && best.is_none_or(|b| at > b) {
            best = Some(at);
        }
    }
    best
}

fn clock_tag(c: Clock) -> Markup {
    let class = match c {
        Clock::Within => "nhsuk-tag--green",
        Clock::Amber => "nhsuk-tag--orange",
        Clock::Breached | Clock::TwelveHours => "nhsuk-tag--red",
    };
    html! { strong class={ "nhsuk-tag " (class) } data-testid="clock" data-clock=(c.code()) { (c.label()) } }
}

fn triage_tag(t: Option<u8>) -> Markup {
    let (text, class) = match t {
        Some(1) => ("1 Immediate", "nhsuk-tag--red"),
        Some(2) => ("2 Very urgent", "nhsuk-tag--orange"),
        Some(3) => ("3 Urgent", "nhsuk-tag--yellow"),
        Some(4) => ("4 Standard", "nhsuk-tag--green"),
        Some(_) => ("5 Non-urgent", "nhsuk-tag--blue"),
        None => ("Not triaged", "nhsuk-tag--white"),
    };
    html! { strong class={ "nhsuk-tag " (class) } data-testid="triage" data-triage=[t] { (text) } }
}

// ---------------------------------------------------------------- the board

fn default_site(cx: &Cx, depts: &[Department]) -> Option<String> {
    let mine = cx
        .principal
        .position
        .as_ref()
        .map(|p| p.locations.clone())
        .unwrap_or_default();
    depts
        .iter()
        .find(|d| mine.contains(&d.site))
        .or(depts.first())
        .map(|d| d.site.clone())
}

fn board_rows(cx: &Cx, b: &Board) -> Markup {
    html! {
        p data-testid="ed-summary" {
            (b.rows.len()) " in the department · "
            span data-testid="count-amber" { (b.amber) } " at or past 3 h 30 · "
            span data-testid="count-breached" { (b.breached) } " past 4 hours · "
            span data-testid="count-twelve" { (b.twelve_hours) } " past 12 hours"
            @if b.withheld > 0 { " · " (b.withheld) " not shown (no access)" }
        }
        @if b.rows.is_empty() {
            p data-testid="no-patients" { "Nobody is in the department." }
        } @else {
            table class="nhsuk-table wl-ed-board" data-testid="ed-board" {
                thead class="nhsuk-table__head" { tr {
                    th scope="col" { "Patient" } th scope="col" { "Where" } th scope="col" { "Triage" }
                    th scope="col" { "Time in department" } th scope="col" { "Clinician" }
                    th scope="col" { "Waiting for" } th scope="col" { "Referred to" }
                } }
                tbody class="nhsuk-table__body" {
                    @for r in &b.rows { (board_row(cx, r)) }
                }
            }
        }
    }
}

fn board_row(cx: &Cx, r: &Row) -> Markup {
    html! {
        tr class={ "nhsuk-table__row wl-ed-row--" (r.clock.code()) } data-testid="ed-row" data-attendance=(r.attendance) data-patient=(r.patient) data-clock=(r.clock.code()) {
            td class="nhsuk-table__cell" {
                a href={ "/ui/ed/attendances/" (enc(&r.attendance)) } data-testid="open-attendance" { (r.name) }
                br; span class="nhsuk-body-s" { (crate::patients::nhs_text(r.nhs_number.as_deref())) }
                @if let Some(c) = &r.complaint { br; span class="nhsuk-body-s" { (c) } }
            }
            td class="nhsuk-table__cell" data-testid="place" { (r.place) }
            td class="nhsuk-table__cell" {
                (triage_tag(r.triage))
                @if let Some(d) = &r.discriminator { br; span class="nhsuk-body-s" { (d) } }
            }
            td class="nhsuk-table__cell" {
                span data-testid="in-department" { (duration_text(r.in_department_ms)) }
                " since " (clock(cx, &r.arrived)) br; (clock_tag(r.clock))
            }
            td class="nhsuk-table__cell" data-testid="clinician" { (r.clinician.as_deref().unwrap_or("—")) }
            td class="nhsuk-table__cell" data-testid="waiting-for" {
                @for w in &r.waiting_for { strong class="nhsuk-tag nhsuk-tag--grey" { (w.label()) } " " }
                @if r.waiting_for.is_empty() { "—" }
            }
            td class="nhsuk-table__cell" data-testid="referrals" {
                @for s in &r.referrals { (s) br; }
                @if r.referrals.is_empty() { "—" }
            }
        }
    }
}

/// `GET /ui/ed?site=` (and `&fragment=board`, the live region).
pub(crate) async fn board_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, q| {
        let depts = match board::departments(&cx.svc, cx.access()) {
            Ok(d) => d,
            Err(e) => return refusal(&e),
        };
        let Some(site) = q
            .get("site")
            .filter(|s| !s.is_empty())
            .cloned()
            .or_else(|| default_site(cx, &depts))
        else {
            return layout::error_page(
                StatusCode::NOT_FOUND,
                "No Emergency Department",
                "The trust has no Emergency Department set up in Wardline.",
            );
        };
        let b = match board::board(&cx.svc, cx.access(), &site, cx.svc.now()) {
            Ok(b) => b,
            Err(e) => return refusal(&e),
        };
        if q.get("fragment").map(String::as_str) == Some("board") {
            return layout::fragment(board_rows(cx, &b));
        }
        let body = html! {
            h1 { span class="nhsuk-caption-l" { (b.department.site_name) } "Emergency Department" }
            ul class="nhsuk-list wl-inline-list" {
                @for d in &depts {
                    li { a href={ "/ui/ed?site=" (enc(&d.site)) } aria-current=[(d.site == b.department.site).then_some("page")] { (d.site_name) } }
                }
            }
            p {
                @if cx.may(Activity::Adt) {
                    a class="nhsuk-button" href={ "/ui/ed/arrive?site=" (enc(&b.department.site)) } data-testid="record-arrival" { "Record an arrival" }
                    " "
                }
                a href="/ui/ed/export" data-testid="to-export" { "ECDS extract" }
            }
            p class="nhsuk-body-s" { "Updates as patients arrive and move. Amber at 3 h 30, red at 4 hours, flagged at 12 hours. Last updated " span data-updated-at { "when the page loaded" } "." }
            div id="board" data-live={ "/ui/ed?site=" (enc(&b.department.site)) "&fragment=board" } aria-live="polite" {
                (board_rows(cx, &b))
            }
        };
        layout::page(cx, "Emergency Department", Nav::None, body)
    })
    .await
}

// ---------------------------------------------------------------- arrival

fn arrive_body(cx: &Cx, form: &Form, error: &Option<(String, String)>) -> Markup {
    let field = |id: &'static str, label: &'static str| Field {
        value: f(form, id),
        error: error_for(error, id),
        ..Field::new(id, label)
    };
    let depts = board::departments(&cx.svc, cx.access()).unwrap_or_default();
    let site = match f(form, "site") {
        "" => default_site(cx, &depts).unwrap_or_default(),
        s => s.to_owned(),
    };
    let chosen = match f(form, "patient") {
        "" => None,
        id => pmi::summary(&cx.svc, cx.access(), id).ok().flatten(),
    };
    let found = match (f(form, "q").trim(), &chosen) {
        ("", _) | (_, Some(_)) => Vec::new(),
        (q, None) => pmi::search(
            &cx.svc,
            cx.access(),
            &PatientQuery {
                text: q.to_owned(),
                ..PatientQuery::default()
            },
            10,
        )
        .unwrap_or_default(),
    };
    let sites: Vec<(String, String)> = depts
        .iter()
        .map(|d| (d.site.clone(), d.site_name.clone()))
        .collect();
    html! {
        (layout::back_link(&format!("/ui/ed?site={}", enc(&site)), "Emergency Department"))
        h1 { "Record an arrival" }
        (summary(error))
        @if let Some(p) = &chosen {
            (crate::chart::banner(p, None))
        } @else {
            h2 { "Find the patient" }
            form method="get" action="/ui/ed/arrive" novalidate {
                input type="hidden" name="site" value=(site);
                (layout::input(&Field { hint: Some("Name, NHS number or hospital number"), ..field("q", "Patient") }))
                button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" data-testid="find-patient" { "Search" }
            }
            @if !found.is_empty() {
                ul class="nhsuk-list" data-testid="found" {
                    @for p in &found {
                        li { a href={ "/ui/ed/arrive?site=" (enc(&site)) "&patient=" (enc(&p.id)) } data-testid="choose-patient" data-patient=(p.id) {
                            (p.display_name) " · " (crate::patients::nhs(p)) " · born " (p.birth_date.as_deref().unwrap_or("not known"))
                        } }
                    }
                }
            }
            p class="nhsuk-body-s" { "Not known, or cannot say? Record an unknown patient below: they are registered with an estimated age and traced later." }
        }
        form method="post" action="/ui/ed/arrive" novalidate {
            (layout::csrf(cx))
            input type="hidden" name="patient" value=(f(form, "patient"));
            (layout::select("site", "Emergency Department", &sites, &site, error_for(error, "site")))
            @if chosen.is_none() {
                fieldset class="nhsuk-fieldset" id="patient" {
                    legend class="nhsuk-fieldset__legend nhsuk-fieldset__legend--s" { "Unknown patient" }
                    (layout::radios("unknown_gender", "Sex", &[("male", "Unknown male"), ("female", "Unknown female")], f(form, "unknown_gender"), error_for(error, "unknown_gender")))
                    (layout::input(&Field { width: "nhsuk-input--width-3", ..field("estimated_age", "Estimated age in years") }))
                }
            }
            (layout::select("mode", "How the patient arrived", &opts(&ARRIVAL_MODES), f(form, "mode"), error_for(error, "mode")))
            (layout::input(&Field { hint: Some("For an ambulance arrival"), width: "nhsuk-input--width-10", ..field("ambulance_incident", "Ambulance incident reference") }))
            (layout::input(&Field { hint: Some("24-hour clock, for example 14:05; leave empty for now"), width: "nhsuk-input--width-5", ..field("arrived", "Arrival time") }))
            (layout::input(&Field { hint: Some("24-hour clock (ambulance arrivals)"), width: "nhsuk-input--width-5", ..field("handover", "Handover time") }))
            (layout::select("complaint", "Chief complaint", &opts(&COMPLAINTS), f(form, "complaint"), error_for(error, "complaint")))
            button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="arrive" { "Record the arrival" }
        }
    }
}

/// `GET /ui/ed/arrive?site=&patient=&q=`.
pub(crate) async fn arrive_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, q| {
        layout::page(
            cx,
            "Record an arrival",
            Nav::None,
            arrive_body(cx, &q, &None),
        )
    })
    .await
}

fn unknown_patient(cx: &Cx, form: &Form) -> Result<String, (String, String)> {
    let gender = f(form, "unknown_gender");
    if !matches!(gender, "male" | "female") {
        return Err((
            "patient".into(),
            "Choose the patient who has arrived, or record an unknown male or female.".into(),
        ));
    }
    let age: i32 = f(form, "estimated_age")
        .trim()
        .parse()
        .ok()
        .filter(|a| (0..=120).contains(a))
        .ok_or_else(|| {
            (
                "estimated_age".to_owned(),
                "Enter the estimated age in years, from 0 to 120.".to_owned(),
            )
        })?;
    let year = cx.svc.now().year() - age;
    let p = NewPatient {
        family: "Unknown".into(),
        given: if gender == "male" {
            "Male".into()
        } else {
            "Female".into()
        },
        birth_date: format!("{year:04}-01-01"),
        gender: gender.into(),
        // The national default postcode of an address not known.
        postcode: "ZZ99 3VZ".into(),
        ..NewPatient::default()
    };
    pmi::register(&cx.svc, cx.access(), &p, true)
        .map(|s| s.id)
        .map_err(|e| ("patient".to_owned(), e.to_string()))
}

/// `POST /ui/ed/arrive`.
pub(crate) async fn arrive_post(State(ui): St, req: Req, body: Bytes) -> Response {
    ui.run(req, Some(&body), move |cx, form| {
        let again = |e: (String, String)| {
            layout::page_with(
                StatusCode::UNPROCESSABLE_ENTITY,
                cx,
                "Error: Record an arrival",
                Nav::None,
                arrive_body(cx, &form, &Some(e)),
            )
        };
        let t = cx.svc.now();
        let arrived = match f(&form, "arrived").trim() {
            "" => None,
            s => match wall_time(cx, s, t) {
                Some(x) => Some(x),
                None => {
                    return again((
                        "arrived".into(),
                        "Enter the arrival time as hours and minutes, for example 14:05.".into(),
                    ));
                }
            },
        };
        let handover = match f(&form, "handover").trim() {
            "" => None,
            s => match wall_time(cx, s, t) {
                Some(x) => Some(x),
                None => {
                    return again((
                        "handover".into(),
                        "Enter the handover time as hours and minutes, for example 14:20.".into(),
                    ));
                }
            },
        };
        if wardline_workflow::ed::label(&ARRIVAL_MODES, f(&form, "mode")).is_none() {
            return again(("mode".into(), "Choose how the patient arrived.".into()));
        }
        let patient = match f(&form, "patient") {
            "" => match unknown_patient(cx, &form) {
                Ok(id) => id,
                Err(e) => return again(e),
            },
            p => p.to_owned(),
        };
        let a = Arrival {
            patient_id: patient,
            site: f(&form, "site").to_owned(),
            mode: f(&form, "mode").to_owned(),
            ambulance_incident: f(&form, "ambulance_incident").to_owned(),
            handover,
            arrived,
            complaint: f(&form, "complaint").to_owned(),
        };
        match attend::arrive(&cx.svc, cx.access(), &a, t) {
            Ok(id) => see_other(&format!("/ui/ed/attendances/{}?done=arrived", enc(&id))),
            Err(e @ (EdError::Field(..) | EdError::Conflict(..))) => {
                again((e.field().unwrap_or("patient").to_owned(), e.message()))
            }
            Err(e) => refusal(&e),
        }
    })
    .await
}

// ---------------------------------------------------------------- an attendance

fn done_text(d: &str) -> Option<&'static str> {
    Some(match d {
        "arrived" => "Arrival recorded.",
        "triage" => "Triage recorded.",
        "stream" => "Patient moved.",
        "see" => "You are the responsible clinician.",
        "waiting" => "Waiting for updated.",
        "refer" => "Referral sent to the specialty's team.",
        "code" => "Coding recorded.",
        "discharge" => "Patient discharged from the department.",
        _ => return None,
    })
}

fn summary_list(rows: Vec<(&str, Markup)>) -> Markup {
    html! {
        dl class="nhsuk-summary-list" {
            @for (k, v) in rows {
                div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { (k) } dd class="nhsuk-summary-list__value" { (v) } }
            }
        }
    }
}

fn attendance_body(
    cx: &Cx,
    d: &Detail,
    patient: Option<&pmi::PatientSummary>,
    form: &Form,
    error: &Option<(String, String)>,
    done: Option<&str>,
) -> Markup {
    let e = &d.encounter;
    let id = e["id"].as_str().unwrap_or_default();
    let open = wardline_workflow::ed::in_department(e);
    let action = |a: &str| format!("/ui/ed/attendances/{}/{a}", enc(id));
    let field = |name: &'static str, label: &'static str| Field {
        value: f(form, name),
        error: error_for(error, name),
        ..Field::new(name, label)
    };
    let site = d
        .department
        .as_ref()
        .map(|x| x.site.clone())
        .unwrap_or_default();
    let text = |name: &str, key: &str| {
        item(e, name)
            .and_then(|v| v[key].as_str())
            .map(str::to_owned)
    };
    let streams: Vec<(&str, &str)> = Stream::ALL.iter().map(|s| (s.code(), s.label())).collect();
    let mut specialties = vec![(String::new(), "Choose…".to_owned())];
    specialties.extend(
        wardline_workflow::rtt::SPECIALTIES
            .iter()
            .map(|(c, n)| ((*c).to_owned(), format!("{c} {n}"))),
    );
    let beds = {
        let mut v = vec![(String::new(), "Choose…".to_owned())];
        if open && cx.may(Activity::RecordClinical) {
            v.extend(
                wardline_workflow::adt::available_beds(&cx.svc, cx.access(), None)
                    .unwrap_or_default(),
            );
        }
        v
    };
    let waiting: Vec<String> = wardline_workflow::ed::items(e, "waiting-for")
        .filter_map(|w| w["valueCode"].as_str().map(str::to_owned))
        .collect();
    let may = cx.may(Activity::RecordClinical);
    html! {
        @if let Some(p) = patient { (crate::chart::banner(p, None)) }
        (layout::back_link(&format!("/ui/ed?site={}", enc(&site)), "Emergency Department"))
        @if let Some(m) = done { (layout::success(m)) }
        (summary(error))
        h2 { "Attendance" }
        (summary_list(vec![
            ("Status", html! { span data-testid="status" { (e["status"].as_str().unwrap_or("")) } }),
            ("Arrived", html! { (e["period"]["start"].as_str().map(|s| clock(cx, s)).unwrap_or_default()) " · " (item(e, "arrival-mode").and_then(|v| v["valueCoding"]["display"].as_str()).unwrap_or("")) }),
            ("Ambulance incident", html! { (text("ambulance-incident", "valueString").unwrap_or_else(|| "—".into())) @if let Some(h) = text("handover", "valueDateTime") { " · handed over " (clock(cx, &h)) } }),
            ("Where", html! { span data-testid="where" { (d.place) } }),
            ("Time in department", html! { span data-testid="in-department" { (duration_text(d.in_department_ms)) } " " (clock_tag(d.clock)) }),
            ("Triage", html! { (triage_tag(triage_category(e))) @if let Some(x) = text("triage-discriminator", "valueString") { " " (x) } @if let Some(t) = text("triage-time", "valueDateTime") { " at " (clock(cx, &t)) } }),
            ("Chief complaint", html! { (e["reasonCode"][0]["text"].as_str().unwrap_or("—")) }),
            ("Responsible clinician", html! { span data-testid="clinician" { (e["participant"][0]["individual"]["display"].as_str().unwrap_or("—")) } }),
            ("Diagnoses", html! { @for (_, t) in &d.diagnoses { (t) br; } @if d.diagnoses.is_empty() { "—" } }),
            ("Discharge destination", html! { span data-testid="destination" { (e["hospitalization"]["dischargeDisposition"]["text"].as_str().unwrap_or("—")) } }),
        ]))
        @if let Some(adm) = attend::admission_of(e) {
            p data-testid="admitted" { "Admitted: " a href={ "/ui/encounters/" (enc(&adm)) "/transfer" } { "the admission" } }
        }
        @if open && may {
            h2 id="triage" { "Triage" }
            form method="post" action=(action("triage")) novalidate {
                (layout::csrf(cx))
                (layout::radios("category", "Triage category", &[("1", "1 Immediate"), ("2", "2 Very urgent"), ("3", "3 Urgent"), ("4", "4 Standard"), ("5", "5 Non-urgent")], f(form, "category"), error_for(error, "category")))
                (layout::input(&Field { hint: Some("What decided the category, for example severe pain"), ..field("discriminator", "Discriminator") }))
                button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="save-triage" { "Record triage" }
            }
            h2 { "Stream" }
            form method="post" action=(action("stream")) novalidate {
                (layout::csrf(cx))
                (layout::radios("stream", "Area", &streams, f(form, "stream"), error_for(error, "stream")))
                button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" data-testid="save-stream" { "Move" }
            }
            form method="post" action=(action("see")) novalidate {
                (layout::csrf(cx))
                button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" data-testid="see" { "Take this patient (responsible clinician)" }
            }
            h2 { "Waiting for" }
            form method="post" action=(action("waiting")) novalidate {
                (layout::csrf(cx))
                div class="nhsuk-checkboxes" id="waiting" {
                    @for w in WaitingFor::ALL {
                        div class="nhsuk-checkboxes__item" {
                            input class="nhsuk-checkboxes__input" type="checkbox" id={ "wait-" (w.code()) } name={ "wait-" (w.code()) } value="yes" checked[waiting.iter().any(|x| x == w.code())];
                            label class="nhsuk-label nhsuk-checkboxes__label" for={ "wait-" (w.code()) } { (w.label()) }
                        }
                    }
                }
                button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" data-testid="save-waiting" { "Save" }
            }
            h2 { "Refer to a specialty" }
            form method="post" action=(action("refer")) novalidate {
                (layout::csrf(cx))
                (layout::select("specialty", "Specialty", &specialties, f(form, "specialty"), error_for(error, "specialty")))
                (layout::input(&field("note", "Why (optional)")))
                button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" data-testid="refer" { "Refer" }
            }
            h2 { "Decision to admit" }
            form method="post" action=(action("admit")) novalidate {
                (layout::csrf(cx))
                (layout::select("bed", "Bed", &beds, f(form, "bed"), error_for(error, "bed")))
                (layout::select("admit_specialty", "Specialty", &specialties, f(form, "admit_specialty"), None))
                (layout::input(&Field { hint: Some("Only if Wardline warns about the bed (mixed-sex bay, isolation)"), ..field("placement_reason", "Reason to go ahead") }))
                button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="admit" { "Admit" }
            }
            h2 { "Discharge from the department" }
            form method="post" action=(action("discharge")) novalidate {
                (layout::csrf(cx))
                (layout::select("destination", "Destination", &opts(&DESTINATIONS[..4]), f(form, "destination"), error_for(error, "destination")))
                button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" data-testid="discharge" { "Discharge" }
            }
        }
        @if may {
            h2 { "Coding (ECDS)" }
            form method="post" action=(action("code")) novalidate {
                (layout::csrf(cx))
                (layout::select("diagnosis", "Add a diagnosis", &opts(&DIAGNOSES), f(form, "diagnosis"), error_for(error, "diagnosis")))
                fieldset class="nhsuk-fieldset" {
                    legend class="nhsuk-fieldset__legend nhsuk-fieldset__legend--s" { "Investigations" }
                    @for (c, l) in INVESTIGATIONS {
                        @let on = d.investigations.iter().any(|(x, _)| x == c);
                        div class="nhsuk-checkboxes__item" {
                            input class="nhsuk-checkboxes__input" type="checkbox" id={ "inv-" (c) } name={ "inv-" (c) } value="yes" checked[on];
                            label class="nhsuk-label nhsuk-checkboxes__label" for={ "inv-" (c) } { (l) }
                        }
                    }
                }
                fieldset class="nhsuk-fieldset" {
                    legend class="nhsuk-fieldset__legend nhsuk-fieldset__legend--s" { "Treatments" }
                    @for (c, l) in TREATMENTS {
                        @let on = d.treatments.iter().any(|(x, _)| x == c);
                        div class="nhsuk-checkboxes__item" {
                            input class="nhsuk-checkboxes__input" type="checkbox" id={ "trt-" (c) } name={ "trt-" (c) } value="yes" checked[on];
                            label class="nhsuk-label nhsuk-checkboxes__label" for={ "trt-" (c) } { (l) }
                        }
                    }
                }
                button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" data-testid="save-coding" { "Save coding" }
            }
        }
    }
}

fn show(
    cx: &Cx,
    id: &str,
    form: &Form,
    error: Option<(String, String)>,
    done: Option<&str>,
) -> Response {
    let d = match board::detail(&cx.svc, cx.access(), id, cx.svc.now()) {
        Ok(d) => d,
        Err(e) => return refusal(&e),
    };
    let patient = d.encounter["subject"]["reference"]
        .as_str()
        .and_then(|r| r.strip_prefix("Patient/"))
        .and_then(|p| pmi::summary(&cx.svc, cx.access(), p).ok().flatten());
    let title = patient
        .as_ref()
        .map_or_else(|| "Attendance".to_owned(), |p| p.display_name.clone());
    let body = attendance_body(cx, &d, patient.as_ref(), form, &error, done);
    match error {
        Some(_) => layout::page_with(
            StatusCode::UNPROCESSABLE_ENTITY,
            cx,
            &format!("Error: {title}"),
            Nav::None,
            body,
        ),
        None => layout::page(cx, &title, Nav::None, body),
    }
}

/// `GET /ui/ed/attendances/{id}`.
pub(crate) async fn attendance_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        let done = q.get("done").and_then(|d| done_text(d));
        show(cx, &id, &Form::new(), None, done)
    })
    .await
}

fn ticked(form: &Form, prefix: &str) -> Vec<String> {
    form.iter()
        .filter(|(k, v)| k.starts_with(prefix) && v.as_str() == "yes")
        .map(|(k, _)| k[prefix.len()..].to_owned())
        .collect()
}

/// `POST /ui/ed/attendances/{id}/{action}`: triage, stream, see, waiting,
/// refer, code, admit, discharge.
pub(crate) async fn action_post(
    State(ui): St,
    req: Req,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, form| {
        let (svc, acc, t) = (&cx.svc, cx.access(), cx.svc.now());
        let r: Result<String, EdError> = match action.as_str() {
            "triage" => match f(&form, "category").parse::<u8>() {
                Ok(c) => attend::triage(svc, acc, &id, c, f(&form, "discriminator"), t)
                    .map(|()| "triage".into()),
                Err(_) => Err(EdError::Field(
                    "category",
                    "Choose the triage category, 1 (immediate) to 5 (non-urgent).".into(),
                )),
            },
            "stream" => match Stream::parse(f(&form, "stream")) {
                Some(s) => attend::stream(svc, acc, &id, s, t).map(|()| "stream".into()),
                None => Err(EdError::Field("stream", "Choose the area.".into())),
            },
            "see" => attend::see(svc, acc, &id, t).map(|()| "see".into()),
            "waiting" => {
                let w: Vec<WaitingFor> = ticked(&form, "wait-")
                    .iter()
                    .filter_map(|c| WaitingFor::parse(c))
                    .collect();
                attend::waiting(svc, acc, &id, &w).map(|()| "waiting".into())
            }
            "refer" => attend::refer(svc, acc, &id, f(&form, "specialty"), f(&form, "note"), t)
                .map(|_| "refer".into()),
            "code" => attend::code(
                svc,
                acc,
                &id,
                &Coding {
                    diagnosis: f(&form, "diagnosis").to_owned(),
                    investigations: ticked(&form, "inv-"),
                    treatments: ticked(&form, "trt-"),
                    ..Coding::default()
                },
            )
            .map(|()| "code".into()),
            "admit" => {
                let nonempty =
                    |k: &str| Some(f(&form, k).trim().to_owned()).filter(|s| !s.is_empty());
                attend::admit(
                    svc,
                    acc,
                    &id,
                    &Admit {
                        bed: f(&form, "bed").to_owned(),
                        consultant: None,
                        specialty: nonempty("admit_specialty"),
                        placement_reason: nonempty("placement_reason"),
                    },
                    t,
                )
                .map(|adm| format!("admitted:{adm}"))
            }
            "discharge" => attend::discharge(svc, acc, &id, f(&form, "destination"), t)
                .map(|()| "discharge".into()),
            _ => {
                return layout::error_page(
                    StatusCode::NOT_FOUND,
                    "Page not found",
                    "There is no such action on an attendance.",
                );
            }
        };
        match r {
            Ok(done) => match done.strip_prefix("admitted:") {
                Some(adm) => see_other(&format!(
                    "/ui/ed?site={}&admitted={}",
                    enc(&site_of(cx, &id)),
                    enc(adm)
                )),
                None => see_other(&format!("/ui/ed/attendances/{}?done={done}", enc(&id))),
            },
            Err(e @ (EdError::Field(..) | EdError::Conflict(..))) => {
                let field = e.field().unwrap_or(match action.as_str() {
                    "admit" => "bed",
                    "discharge" => "destination",
                    "refer" => "specialty",
                    "triage" => "category",
                    _ => "status",
                });
                show(cx, &id, &form, Some((field.to_owned(), e.message())), None)
            }
            Err(EdError::Fhir(fe)) if fe.status == 422 => show(
                cx,
                &id,
                &form,
                Some(("status".to_owned(), EdError::Fhir(fe).message())),
                None,
            ),
            Err(e) => refusal(&e),
        }
    })
    .await
}

fn site_of(cx: &Cx, id: &str) -> String {
    board::detail(&cx.svc, cx.access(), id, cx.svc.now())
        .ok()
        .and_then(|d| d.department.map(|d| d.site))
        .unwrap_or_default()
}

// ---------------------------------------------------------------- the extract

/// `GET /ui/ed/export?from=&to=&format=csv|json`: the form and the
/// columns' documentation, or the download.
pub(crate) async fn export_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, q| {
        let today = cx.svc.now().date();
        let day = |k: &str, d: time::Date| {
            q.get(k)
                .and_then(|s| wardline_workflow::outpatients::clinics::parse_date(s))
                .unwrap_or(d)
        };
        let (from, to) = (day("from", today - time::Duration::days(1)), day("to", today));
        let format = q.get("format").cloned().unwrap_or_default();
        if format == "csv" || format == "json" {
            let start = from.midnight().assume_utc();
            let end = (to + time::Duration::days(1)).midnight().assume_utc();
            let rows = match board::extract(&cx.svc, cx.access(), start, end) {
                Ok(r) => r,
                Err(e) => return refusal(&e),
            };
            let name = format!("ecds-{from}-{to}.{format}");
            let (body, kind) = if format == "csv" {
                match board::to_csv(&rows) {
                    Ok(c) => (c, "text/csv; charset=utf-8"),
                    Err(e) => return refusal(&e),
                }
            } else {
                (serde_json::to_string_pretty(&rows).unwrap_or_default(), "application/json")
            };
            return (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, kind.to_owned()),
                    (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
                ],
                body,
            )
                .into_response();
        }
        let from_s = from.to_string();
        let to_s = to.to_string();
        let body = html! {
            (layout::back_link("/ui/ed", "Emergency Department"))
            h1 { "ECDS extract" }
            p { "Attendances that arrived from the first day to the last (inclusive, UTC days), one row each, in the shape of the Emergency Care Data Set. Codes are SNOMED CT; several are joined with a semicolon." }
            form method="get" action="/ui/ed/export" novalidate {
                (layout::input(&Field { kind: "date", value: &from_s, ..Field::new("from", "From") }))
                (layout::input(&Field { kind: "date", value: &to_s, ..Field::new("to", "To") }))
                (layout::radios("format", "Format", &[("csv", "CSV"), ("json", "JSON")], "csv", None))
                button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="download" { "Download" }
            }
            h2 { "Columns" }
            table class="nhsuk-table" data-testid="columns" {
                thead class="nhsuk-table__head" { tr { th scope="col" { "Column" } th scope="col" { "ECDS data item" } th scope="col" { "From" } } }
                tbody class="nhsuk-table__body" {
                    @for (c, item, from) in ECDS {
                        tr class="nhsuk-table__row" { td class="nhsuk-table__cell" { code { (c) } } td class="nhsuk-table__cell" { (item) } td class="nhsuk-table__cell" { (from) } }
                    }
                }
            }
            h2 { "Codes" }
            @for (title, list) in [("Arrival mode", &ARRIVAL_MODES[..]), ("Chief complaint", &COMPLAINTS[..]), ("Diagnosis", &DIAGNOSES[..]), ("Investigation", &INVESTIGATIONS[..]), ("Treatment", &TREATMENTS[..]), ("Discharge destination", &DESTINATIONS[..])] {
                h3 { (title) }
                ul class="nhsuk-list" { @for (c, l) in list { li { code { (c) } " " (l) } } }
            }
            h3 { "Acuity" }
            ul class="nhsuk-list" { @for (n, c, l) in wardline_workflow::ed::ACUITY { li { (n) ": " code { (c) } " " (l) } } }
        };
        layout::page(cx, "ECDS extract", Nav::None, body)
    })
    .await
}

/// The pages' routes (listed in `crate::ROUTES`), merged into the UI router.
pub(crate) fn routes() -> axum::Router<crate::Ui> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/ed", get(board_page))
        .route("/ed/arrive", get(arrive_page).post(arrive_post))
        .route("/ed/export", get(export_page))
        .route("/ed/attendances/{id}", get(attendance_page))
        .route("/ed/attendances/{id}/{action}", post(action_post))
}
