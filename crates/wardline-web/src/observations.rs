//! Observations pages (issue 20): a patient's observation chart
//! (`/ui/patients/{id}/observations`: the open NEWS2 escalations as an
//! alert, the ward form for a full set, each parameter's graph over time
//! with the NEWS2 bands shaded, and the table), and the escalation task
//! list per ward or team (`/ui/observations/tasks`, acknowledge and
//! complete). Every rule is `wardline_workflow::observations`'.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, PreEscaped, html};
use wardline_workflow::observations::chart::{ChartSet, chart};
use wardline_workflow::observations::news2::{self, Acvpu, Parameter, Response as Level, Scale};
use wardline_workflow::observations::record::{VitalsForm, record_vitals};
use wardline_workflow::observations::tasks::{Escalation, act, open_escalations};
use wardline_workflow::observations::{ObservationsError, scale::set_scale_two};

use crate::layout::{self, Field, Nav};
use crate::{Cx, Req, St, enc, see_other};

fn refusal(e: &ObservationsError) -> Response {
    layout::refusal_page(e.status(), &e.message(), "observations")
}

/// A parameter's graph: its value axis, the chart's precision (`step`) and
/// the part score of a value — `news2`'s own function, so the shaded bands
/// are drawn from the one home of the NEWS2 thresholds, never a copy.
struct Graph {
    p: Parameter,
    unit: &'static str,
    lo: f64,
    hi: f64,
    step: f64,
    part: fn(f64) -> u8,
}

const GRAPHS: [Graph; 5] = [
    Graph {
        p: Parameter::RespirationRate,
        unit: "/min",
        lo: 0.0,
        hi: 40.0,
        step: 1.0,
        part: news2::respiration_rate,
    },
    Graph {
        p: Parameter::Spo2,
        unit: "%",
        lo: 80.0,
        hi: 100.0,
        step: 1.0,
        part: |v| news2::spo2(v, Scale::One, None),
    },
    Graph {
        p: Parameter::SystolicBp,
        unit: "mmHg",
        lo: 60.0,
        hi: 240.0,
        step: 1.0,
        part: news2::systolic_bp,
    },
    Graph {
        p: Parameter::Pulse,
        unit: "/min",
        lo: 30.0,
        hi: 160.0,
        step: 1.0,
        part: news2::pulse,
    },
    Graph {
        p: Parameter::Temperature,
        unit: "°C",
        lo: 34.0,
        hi: 41.0,
        step: 0.1,
        part: news2::temperature,
    },
];

/// The graph's NEWS2 bands (low, high, part), read off the scoring function
/// at the chart's precision: a band edge lies half a step between the last
/// value of one part and the first of the next (8 → 3, 9 → 1: 8.5).
fn bands(g: &Graph) -> Vec<(f64, f64, u8)> {
    let mut out: Vec<(f64, f64, u8)> = Vec::new();
    let n = ((g.hi - g.lo) / g.step).round() as i64;
    for i in 0..=n {
        let v = g.lo + i as f64 * g.step;
        let part = (g.part)(v);
        let hi = (v + g.step / 2.0).min(g.hi);
        match out.last_mut() {
            Some((_, h, q)) if *q == part => *h = hi,
            _ => out.push(((v - g.step / 2.0).max(g.lo), hi, part)),
        }
    }
    out
}

fn band_fill(part: u8) -> &'static str {
    match part {
        0 => "#ffffff",
        1 => "#fff7bf",
        2 => "#ffd9a8",
        _ => "#f9c5c5",
    }
}

/// One parameter's graph as inline SVG (NEWS2 bands shaded, a point per set).
fn graph_svg(g: &Graph, sets: &[ChartSet]) -> Markup {
    let (w, h, ml, mr, mt, mb) = (640.0, 160.0, 48.0, 12.0, 8.0, 20.0);
    let y = |v: f64| {
        let v = v.clamp(g.lo, g.hi);
        mt + (g.hi - v) / (g.hi - g.lo) * (h - mt - mb)
    };
    let points: Vec<(f64, f64)> = sets
        .iter()
        .filter_map(|s| s.value(g.p))
        .enumerate()
        .map(|(i, v)| (i as f64, v))
        .collect();
    let n = points.len().max(2) as f64 - 1.0;
    let x = |i: f64| ml + i / n * (w - ml - mr);
    let path: Vec<String> = points
        .iter()
        .map(|(i, v)| format!("{:.1},{:.1}", x(*i), y(*v)))
        .collect();
    let title = format!("{} over time ({} readings)", g.p.label(), points.len());
    html! {
        figure class="wl-obs-graph" {
            figcaption class="nhsuk-body-s" { (g.p.label()) " (" (g.unit) ")" }
            svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (w) " " (h) } role="img" aria-label=(title)
                data-testid="obs-graph" data-parameter=(format!("{:?}", g.p)) data-points=(points.len()) {
                title { (title) }
                @for (lo, hi, part) in &bands(g) {
                    rect data-testid="news2-band" data-score=(part) x=(ml) y=(format!("{:.1}", y(*hi)))
                        width=(w - ml - mr) height=(format!("{:.1}", (y(*lo) - y(*hi)).max(0.0))) fill=(band_fill(*part)) {}
                    text x=(ml - 4.0) y=(format!("{:.1}", y(*hi) + 10.0)) font-size="10" text-anchor="end" fill="#212b32" {
                        (format!("{}", if *hi >= g.hi { g.hi } else { hi.floor() }))
                    }
                }
                @if points.len() > 1 {
                    polyline points=(path.join(" ")) fill="none" stroke="#005eb8" stroke-width="2" {}
                }
                @for (i, v) in &points {
                    circle data-testid="obs-point" data-value=(v) cx=(format!("{:.1}", x(*i))) cy=(format!("{:.1}", y(*v))) r="3.5" fill="#005eb8" {}
                }
            }
        }
    }
}

fn level_tag(l: Option<Level>) -> Markup {
    let (class, text) = match l {
        Some(Level::Emergency) => ("nhsuk-tag nhsuk-tag--red", "Emergency response"),
        Some(Level::Urgent) => ("nhsuk-tag nhsuk-tag--orange", "Urgent response"),
        Some(Level::UrgentWard) => ("nhsuk-tag nhsuk-tag--yellow", "Urgent ward-based response"),
        _ => ("nhsuk-tag nhsuk-tag--grey", "Low"),
    };
    html! { strong class=(class) data-level=(l.map(Level::code).unwrap_or("low")) { (text) } }
}

fn num(v: Option<f64>) -> String {
    v.map(|x| format!("{x}")).unwrap_or_else(|| "—".into())
}

struct FormState<'a> {
    form: &'a VitalsForm,
    error: Option<(String, String)>,
}

fn vitals_form(cx: &Cx, id: &str, st: &FormState<'_>) -> Markup {
    let err = |k: &str| {
        st.error
            .as_ref()
            .filter(|(f, _)| f == k)
            .map(|(_, m)| m.as_str())
    };
    let f = st.form;
    let numeric = |name: &'static str, label: &'static str, hint: &'static str, value: &str| {
        let mut fl = Field::new(name, label);
        fl.hint = Some(hint);
        fl.value = value;
        fl.error = err(name);
        fl.width = "nhsuk-input--width-4";
        // Numeric keyboard on a tablet; decimals allowed (temperature).
        let m = layout::input(&fl);
        PreEscaped(
            m.into_string()
                .replace("type=\"text\"", "type=\"text\" inputmode=\"decimal\""),
        )
    };
    let acvpu: Vec<(String, String)> = std::iter::once((String::new(), "Select".to_owned()))
        .chain(
            Acvpu::ALL
                .iter()
                .map(|c| (c.code().to_owned(), format!("{} — {}", c.code(), c.label()))),
        )
        .collect();
    html! {
        form method="post" action={ "/ui/patients/" (enc(id)) "/observations" } novalidate data-testid="obs-form" {
            (layout::csrf(cx))
            (numeric("respiration_rate", "Respiration rate (breaths per minute)", "For example, 16", &f.respiration_rate))
            (numeric("spo2", "SpO₂ (%)", "For example, 97", &f.spo2))
            (layout::radios("oxygen", "Air or oxygen?", &[("air", "Air"), ("oxygen", "Oxygen")], &f.oxygen, err("oxygen")))
            (numeric("systolic_bp", "Systolic blood pressure (mmHg)", "For example, 120", &f.systolic_bp))
            (numeric("pulse", "Pulse (beats per minute)", "For example, 72", &f.pulse))
            (layout::select("consciousness", "Consciousness (ACVPU; C is new confusion)", &acvpu, &f.consciousness, err("consciousness")))
            (numeric("temperature", "Temperature (°C)", "For example, 37.2", &f.temperature))
            button class="nhsuk-button" data-module="nhsuk-button" type="submit" data-testid="record-obs" { "Record observations" }
        }
    }
}

fn chart_body(
    cx: &Cx,
    p: &wardline_workflow::pmi::PatientSummary,
    sets: &[ChartSet],
    open: &[Escalation],
    st: &FormState<'_>,
    done: Option<&str>,
) -> Markup {
    let latest = sets.iter().rev().find(|s| s.total.is_some());
    html! {
        (layout::back_link(&format!("/ui/patients/{}", enc(&p.id)), "Back to the chart"))
        @if let Some(d) = done { (layout::success(d)) }
        @if let Some((f, m)) = &st.error { (layout::error_summary(&[(f.clone(), m.clone())])) }
        (crate::chart::banner(p, None))
        h2 class="nhsuk-heading-l" data-testid="obs-heading" { "Observations and NEWS2" }
        @for e in open {
            div class="nhsuk-warning-callout" data-testid="news2-alert" data-level=(e.level.map(Level::code).unwrap_or("")) {
                h3 class="nhsuk-warning-callout__label" { span role="text" { "NEWS2 escalation " (level_tag(e.level)) } }
                p { (e.description) " — raised " (layout::long_date(&e.authored_on)) ", " (if e.status == "in-progress" { "acknowledged" } else { "not yet acknowledged" }) "." }
                p { a href="/ui/observations/tasks" { "Escalation tasks" } }
            }
        }
        @if let Some(s) = latest {
            p class="nhsuk-body-l" data-testid="latest-news2" data-score=(s.total.unwrap_or(0)) {
                "Latest NEWS2: " strong { (s.total.unwrap_or(0)) } " " (level_tag(s.response))
                @if !s.complete { " " strong class="nhsuk-tag nhsuk-tag--grey" { "Incomplete set" } }
                " at " (layout::long_date(&s.at))
            }
        }
        h2 { "Record a set of observations" }
        (vitals_form(cx, &p.id, st))
        h2 { "Charts" }
        @if sets.is_empty() { p data-testid="no-obs" { "No observations recorded." } }
        @else {
            @for g in &GRAPHS { (graph_svg(g, sets)) }
            table class="nhsuk-table" data-testid="obs-table" {
                caption class="nhsuk-table__caption" { "Every set, newest first" }
                thead class="nhsuk-table__head" { tr {
                    th scope="col" { "Time" } th scope="col" { "RR" } th scope="col" { "SpO₂" } th scope="col" { "Air/O₂" }
                    th scope="col" { "BP sys" } th scope="col" { "Pulse" } th scope="col" { "ACVPU" } th scope="col" { "Temp" } th scope="col" { "NEWS2" }
                } }
                tbody class="nhsuk-table__body" {
                    @for s in sets.iter().rev() {
                        tr class="nhsuk-table__row" data-testid="obs-row" {
                            td class="nhsuk-table__cell" { (layout::long_date(&s.at)) }
                            td class="nhsuk-table__cell" { (num(s.vitals.respiration_rate)) }
                            td class="nhsuk-table__cell" { (num(s.vitals.spo2)) }
                            td class="nhsuk-table__cell" { (match s.vitals.oxygen { Some(true) => "O₂", Some(false) => "Air", None => "—" }) }
                            td class="nhsuk-table__cell" { (num(s.vitals.systolic_bp)) }
                            td class="nhsuk-table__cell" { (num(s.vitals.pulse)) }
                            td class="nhsuk-table__cell" { (s.vitals.consciousness.map(Acvpu::code).unwrap_or("—")) }
                            td class="nhsuk-table__cell" { (num(s.vitals.temperature)) }
                            td class="nhsuk-table__cell" data-testid="obs-score" { (s.total.map(|t| t.to_string()).unwrap_or_else(|| "—".into())) " " (level_tag(s.response)) }
                        }
                    }
                }
            }
        }
        h2 { "SpO₂ scale" }
        p { "Scale 2 is for confirmed hypercapnic respiratory failure (target 88–92%), set by a prescriber." }
        form method="post" action={ "/ui/patients/" (enc(&p.id)) "/observations/scale" } novalidate {
            (layout::csrf(cx))
            (layout::radios("scale", "SpO₂ scale", &[("1", "Scale 1"), ("2", "Scale 2")], "", None))
            button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" { "Set scale" }
        }
    }
}

fn show(cx: &Cx, id: &str, st: &FormState<'_>, done: Option<&str>, status: StatusCode) -> Response {
    let p = match crate::patients::patient_or_404(cx, id) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let patient = format!("Patient/{}", p.id);
    let (sets, _) = match chart(&cx.svc, cx.access(), &patient) {
        Ok(c) => c,
        Err(e) => return refusal(&e),
    };
    let open = match open_escalations(&cx.svc, cx.access(), Some(&patient)) {
        Ok(o) => o,
        Err(e) => return refusal(&e),
    };
    layout::page_with(
        status,
        cx,
        "Observations",
        Nav::Patients,
        chart_body(cx, &p, &sets, &open, st, done),
    )
}

/// `GET /ui/patients/{id}/observations`.
pub(crate) async fn chart_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        let done = match q.get("done").map(String::as_str) {
            Some("recorded") => Some("Observations recorded and NEWS2 scored."),
            Some("scale") => Some("SpO₂ scale saved."),
            _ => None,
        };
        let form = VitalsForm::default();
        show(
            cx,
            &id,
            &FormState {
                form: &form,
                error: None,
            },
            done,
            StatusCode::OK,
        )
    })
    .await
}

/// `POST /ui/patients/{id}/observations`: record a set.
pub(crate) async fn record_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let g = |k: &str| f.get(k).cloned().unwrap_or_default();
        let form = VitalsForm {
            respiration_rate: g("respiration_rate"),
            spo2: g("spo2"),
            oxygen: g("oxygen"),
            systolic_bp: g("systolic_bp"),
            pulse: g("pulse"),
            consciousness: g("consciousness"),
            temperature: g("temperature"),
        };
        let encounter = wardline_workflow::adt::current_stay(&cx.svc, cx.access(), &id)
            .ok()
            .flatten()
            .map(|s| format!("Encounter/{}", s.encounter_id));
        match record_vitals(
            &cx.svc,
            cx.access(),
            &format!("Patient/{id}"),
            encounter.as_deref(),
            &form,
            cx.svc.now(),
        ) {
            Ok(_) => see_other(&format!(
                "/ui/patients/{}/observations?done=recorded",
                enc(&id)
            )),
            Err(ObservationsError::Field { field, message }) => show(
                cx,
                &id,
                &FormState {
                    form: &form,
                    error: Some((field, message)),
                },
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            Err(e) => refusal(&e),
        }
    })
    .await
}

/// `POST /ui/patients/{id}/observations/scale`.
pub(crate) async fn scale_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let on = match f.get("scale").map(String::as_str) {
            Some("2") => true,
            Some("1") => false,
            _ => {
                return refusal(&ObservationsError::Invalid(
                    "Choose scale 1 or scale 2.".into(),
                ));
            }
        };
        match set_scale_two(
            &cx.svc,
            cx.access(),
            &format!("Patient/{id}"),
            on,
            cx.svc.now(),
        ) {
            Ok(_) => see_other(&format!(
                "/ui/patients/{}/observations?done=scale",
                enc(&id)
            )),
            Err(e) => refusal(&e),
        }
    })
    .await
}

// ---------------------------------------------------------------- task list

fn tasks_body(cx: &Cx, open: &[Escalation], done: Option<&str>) -> Markup {
    let mut teams: Vec<Option<&str>> = open.iter().map(Escalation::team).collect();
    teams.sort();
    teams.dedup();
    html! {
        @if let Some(d) = done { (layout::success(d)) }
        h1 { "NEWS2 escalation tasks" }
        @if open.is_empty() { p data-testid="tasks-empty" { "No open escalations." } }
        @for team in &teams {
            h2 data-testid="team" { (team.map(|t| team_name(cx, t)).unwrap_or_else(|| "No responsible team".into())) }
            table class="nhsuk-table" {
                thead class="nhsuk-table__head" { tr {
                    th scope="col" { "Patient" } th scope="col" { "Escalation" } th scope="col" { "Raised" } th scope="col" { "Status" } th scope="col" { "Action" }
                } }
                tbody class="nhsuk-table__body" {
                    @for e in open.iter().filter(|e| e.team() == *team) {
                        tr class="nhsuk-table__row" data-testid="escalation-row" data-task=(e.id) data-level=(e.level.map(Level::code).unwrap_or("")) {
                            td class="nhsuk-table__cell" {
                                a href={ "/ui/patients/" (enc(e.patient.strip_prefix("Patient/").unwrap_or(&e.patient))) "/observations" } { (patient_name(cx, &e.patient)) }
                            }
                            td class="nhsuk-table__cell" { (level_tag(e.level)) br; (e.description) }
                            td class="nhsuk-table__cell" { (layout::long_date(&e.authored_on)) }
                            td class="nhsuk-table__cell" { (if e.status == "in-progress" { "Acknowledged" } else { "Not acknowledged" }) }
                            td class="nhsuk-table__cell" {
                                @if e.status == "requested" {
                                    (layout::action_button(cx, &format!("/ui/observations/tasks/{}/acknowledge", enc(&e.id)), "Acknowledge", "nhsuk-button--secondary"))
                                }
                                form method="post" action={ "/ui/observations/tasks/" (enc(&e.id)) "/complete" } novalidate {
                                    (layout::csrf(cx))
                                    div class="nhsuk-form-group" {
                                        label class="nhsuk-label" for={ "outcome-" (e.id) } { "Outcome" }
                                        input class="nhsuk-input" id={ "outcome-" (e.id) } name="outcome" type="text";
                                    }
                                    button class="nhsuk-button" data-module="nhsuk-button" type="submit" { "Complete" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn read_name(cx: &Cx, t: &str, reference: &str) -> Option<String> {
    let id = reference.strip_prefix(&format!("{t}/"))?;
    let r = cx.svc.read_as(cx.access(), t, id).ok().flatten()?;
    r["name"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| wardline_workflow::orders::request::person_name(&r))
}

fn patient_name(cx: &Cx, r: &str) -> String {
    read_name(cx, "Patient", r).unwrap_or_else(|| r.to_owned())
}

fn team_name(cx: &Cx, r: &str) -> String {
    ["Location", "CareTeam", "Practitioner"]
        .iter()
        .find_map(|t| read_name(cx, t, r))
        .unwrap_or_else(|| r.to_owned())
}

/// `GET /ui/observations/tasks`.
pub(crate) async fn tasks_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, q| {
        let done = match q.get("done").map(String::as_str) {
            Some("acknowledged") => Some("Escalation acknowledged."),
            Some("completed") => Some("Escalation completed."),
            _ => None,
        };
        match open_escalations(&cx.svc, cx.access(), None) {
            Ok(open) => layout::page(
                cx,
                "NEWS2 escalation tasks",
                Nav::None,
                tasks_body(cx, &open, done),
            ),
            Err(e) => refusal(&e),
        }
    })
    .await
}

async fn task_action(ui: crate::Ui, req: Req, id: String, body: Bytes, complete: bool) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let outcome = f.get("outcome").cloned().unwrap_or_default();
        match act(&cx.svc, cx.access(), &id, complete, &outcome, cx.svc.now()) {
            Ok(()) => see_other(if complete {
                "/ui/observations/tasks?done=completed"
            } else {
                "/ui/observations/tasks?done=acknowledged"
            }),
            Err(e) => refusal(&e),
        }
    })
    .await
}

/// `POST /ui/observations/tasks/{id}/acknowledge`.
pub(crate) async fn acknowledge_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    task_action(ui, req, id, body, false).await
}

/// `POST /ui/observations/tasks/{id}/complete`.
pub(crate) async fn complete_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    task_action(ui, req, id, body, true).await
}

/// The observation pages' routes (under `/ui`), merged into the router.
pub(crate) fn routes() -> axum::Router<crate::Ui> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route(
            "/patients/{id}/observations",
            get(chart_page).post(record_post),
        )
        .route("/patients/{id}/observations/scale", post(scale_post))
        .route("/observations/tasks", get(tasks_page))
        .route(
            "/observations/tasks/{id}/acknowledge",
            post(acknowledge_post),
        )
        .route("/observations/tasks/{id}/complete", post(complete_post))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bands drawn are the chart's (RCP 2017), read off the scoring
    /// functions: respiration rate ≤ 8 | 9–11 | 12–20 | 21–24 | ≥ 25, and
    /// temperature's tenths.
    #[test]
    fn the_graph_bands_are_the_scoring_functions() {
        let rr = bands(&GRAPHS[0]);
        assert_eq!(
            rr,
            vec![
                (0.0, 8.5, 3),
                (8.5, 11.5, 1),
                (11.5, 20.5, 0),
                (20.5, 24.5, 2),
                (24.5, 40.0, 3)
            ]
        );
        let t = bands(&GRAPHS[4]);
        let edges: Vec<(String, u8)> = t.iter().map(|(_, h, p)| (format!("{h:.2}"), *p)).collect();
        assert_eq!(
            edges,
            [
                ("35.05", 3),
                ("36.05", 1),
                ("38.05", 0),
                ("39.05", 1),
                ("41.00", 2)
            ]
            .map(|(e, p)| (e.to_owned(), p))
        );
        for g in &GRAPHS {
            let b = bands(g);
            assert_eq!(b.first().map(|x| x.0), Some(g.lo), "{:?}", g.p);
            assert_eq!(b.last().map(|x| x.1), Some(g.hi), "{:?}", g.p);
            assert!(
                b.windows(2)
                    .all(|w| (w[0].1 - w[1].0).abs() < 1e-9 && w[0].2 != w[1].2)
            );
        }
    }
}
