//! Chemotherapy pages, over `wardline_workflow::medicines::chemo` (which
//! holds every rule):
//!
//! * `/ui/patients/{id}/chemotherapy` — the patient's cycles; the latest
//!   height and weight with the BSA by both formulas (the one used, capped
//!   or not); prescribing a cycle: regimen, cycle number, day 1, then every
//!   dose's calculation shown with a reduction (and its reason) per drug
//!   and the lifetime totals, before it is prescribed.
//! * `/ui/chemotherapy/{careplan}` — one cycle: the doses with their
//!   calculation, the pre-cycle checks with values and dates, verification
//!   by a second clinician and a pharmacist, release and delay.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use wardline_auth::rbac::Activity;
use wardline_workflow::medicines::MedicinesError;
use wardline_workflow::medicines::chemo::cycle::{
    self, CycleView, Plan, Reduction, Request, VerifyAs,
};
use wardline_workflow::medicines::chemo::dose::{self, Standing};
use wardline_workflow::medicines::chemo::regimen::{self, Regimen};
use wardline_workflow::medicines::chemo::{ChemoConfig, bsa, revoke};
use wardline_workflow::medicines::formulary;

use crate::layout::{self, Nav};
use crate::patients::patient_or_404;
use crate::{Cx, Form, Req, St, enc, see_other};

fn get<'a>(f: &'a Form, k: &str) -> &'a str {
    f.get(k).map(|s| s.trim()).unwrap_or_default()
}

fn chemo_error(e: &MedicinesError) -> Response {
    layout::refusal_page(e.status(), &e.message(), "chemotherapy")
}

fn config() -> Result<ChemoConfig, Response> {
    ChemoConfig::from_env().map_err(|e| {
        layout::error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Chemotherapy is not configured correctly",
            &e,
        )
    })
}

fn status_tag(status: &str) -> Markup {
    let (class, text) = match status {
        "draft" => ("nhsuk-tag--yellow", "Prescribed: not released"),
        "active" => ("nhsuk-tag--green", "Released"),
        "on-hold" => ("nhsuk-tag--orange", "Delayed"),
        "revoked" => ("nhsuk-tag--grey", "Cancelled"),
        _ => ("nhsuk-tag--grey", status),
    };
    html! { strong class={ "nhsuk-tag " (class) } data-testid="cycle-status" { (text) } }
}

fn n(x: f64) -> String {
    dose::trim(x)
}

/// The height, weight and BSA by both formulas.
fn bsa_summary(
    height: Option<(f64, &str)>,
    weight: Option<(f64, &str)>,
    b: Option<&Result<bsa::Bsa, String>>,
) -> Markup {
    html! {
        dl class="nhsuk-summary-list" data-testid="bsa" {
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Height" }
                dd class="nhsuk-summary-list__value" { @match height { Some((h, d)) => { (n(h)) " cm (" (d) ")" }, None => { "Not recorded" } } } }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Weight" }
                dd class="nhsuk-summary-list__value" { @match weight { Some((w, d)) => { (n(w)) " kg (" (d) ")" }, None => { "Not recorded" } } } }
            @match b {
                Some(Ok(b)) => {
                    div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "BSA (Mosteller)" }
                        dd class="nhsuk-summary-list__value" { (n(b.mosteller)) " m²" @if b.formula == bsa::Formula::Mosteller { " — used" } } }
                    div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "BSA (DuBois)" }
                        dd class="nhsuk-summary-list__value" { (n(b.dubois)) " m²" @if b.formula == bsa::Formula::DuBois { " — used" } } }
                    div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "BSA doses are calculated from" }
                        dd class="nhsuk-summary-list__value" data-testid="bsa-used" {
                            strong { (n(b.used)) " m²" } " (" (b.formula.label()) ")"
                            @if b.capped { " " strong class="nhsuk-tag nhsuk-tag--orange" { "Capped" } " from " (n(b.uncapped)) " m²" }
                        } }
                }
                Some(Err(e)) => {
                    div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "BSA" }
                        dd class="nhsuk-summary-list__value" { (e) } }
                }
                None => {}
            }
        }
    }
}

fn regimen_options(regimens: &[Regimen]) -> Vec<(String, String)> {
    let mut o = vec![(String::new(), "Choose a regimen".to_owned())];
    o.extend(regimens.iter().filter(|r| r.active).map(|r| {
        (
            r.id.clone(),
            format!("{} ({} cycles of {} days)", r.title, r.cycles, r.cycle_days),
        )
    }));
    o
}

/// The prescriber's request from the form; `Err` names the field.
fn request_of(patient: &str, regimens: &[Regimen], f: &Form) -> Result<Request, (String, String)> {
    let r = regimens
        .iter()
        .find(|r| r.id == get(f, "regimen"))
        .ok_or(("regimen".to_owned(), "Choose a regimen".to_owned()))?;
    let c: u32 = get(f, "cycle")
        .parse()
        .ok()
        .filter(|c| (1..=r.cycles).contains(c))
        .ok_or((
            "cycle".to_owned(),
            format!("Give a cycle number from 1 to {}", r.cycles),
        ))?;
    let start = cycle::parse_date(get(f, "start")).ok_or((
        "start".to_owned(),
        "Give day 1 as a date (YYYY-MM-DD)".to_owned(),
    ))?;
    let mut reductions = Vec::new();
    for (i, d) in r.drugs_in(c).enumerate() {
        let p = get(f, &format!("reduce-{i}"));
        if p.is_empty() || p == "0" {
            continue;
        }
        let percent: f64 = p.parse().map_err(|_| {
            (
                format!("reduce-{i}"),
                format!("{}: give the reduction as a percentage", d.name),
            )
        })?;
        reductions.push(Reduction {
            drug: d.name.clone(),
            percent,
            reason: get(f, &format!("reason-{i}")).to_owned(),
        });
    }
    Ok(Request {
        patient: patient.to_owned(),
        regimen: r.id.clone(),
        cycle: c,
        start,
        reductions,
        cumulative_override: Some(get(f, "override").to_owned()).filter(|s| !s.is_empty()),
    })
}

/// Every dose of a plan with its calculation, and a reduction per drug.
fn plan_table(plan: &Plan, f: &Form, editable: bool) -> Markup {
    html! {
        table class="nhsuk-table" data-testid="plan-doses" {
            caption class="nhsuk-table__caption" { "Doses for cycle " (plan.cycle) " of " (plan.regimen.title) }
            thead class="nhsuk-table__head" { tr class="nhsuk-table__row" {
                th class="nhsuk-table__header" { "Drug" } th class="nhsuk-table__header" { "Protocol" }
                th class="nhsuk-table__header" { "Calculation" } th class="nhsuk-table__header" { "Dose" }
                @if editable { th class="nhsuk-table__header" { "Reduction" } }
            } }
            tbody class="nhsuk-table__body" {
                @for (i, d) in plan.doses.iter().enumerate() {
                    tr class="nhsuk-table__row" {
                        td class="nhsuk-table__cell" { strong { (d.drug) } br; span class="nhsuk-body-s" { (d.medication_name) } }
                        td class="nhsuk-table__cell" { (d.calc.basis.describe(d.calc.per))
                            @if d.times_per_day == 2 { " twice daily" } " · day " (regimen::days_text(&d.days)) " · " (d.route)
                            @if let Some(inf) = &d.infusion { br; span class="nhsuk-body-s" { (inf) } } }
                        td class="nhsuk-table__cell" { ul class="nhsuk-list nhsuk-body-s" { @for s in &d.calc.steps { li { (s) } } } }
                        td class="nhsuk-table__cell" data-testid="plan-dose" { strong { (n(d.calc.final_dose)) " mg" } }
                        @if editable {
                            td class="nhsuk-table__cell" {
                                div class="nhsuk-form-group" {
                                    label class="nhsuk-label" for={ "reduce-" (i) } { "Reduce by (%)" }
                                    input class="nhsuk-input nhsuk-input--width-3" id={ "reduce-" (i) } name={ "reduce-" (i) } type="text" inputmode="decimal" value=(get(f, &format!("reduce-{i}")));
                                }
                                div class="nhsuk-form-group" {
                                    label class="nhsuk-label" for={ "reason-" (i) } { "Reason" }
                                    input class="nhsuk-input" id={ "reason-" (i) } name={ "reason-" (i) } type="text" value=(get(f, &format!("reason-{i}")));
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(g) = &plan.gfr {
            p data-testid="gfr" { "GFR for Calvert: Cockcroft–Gault " (n(g.crcl)) " mL/min (age " (g.age) ", "
                (n(plan.weight.value)) " kg, creatinine " (n(g.creatinine.value)) " µmol/L on " (g.creatinine.date()) ")"
                @if g.capped { ", capped at " (n(g.used)) " mL/min" } "." }
        }
        @for c in &plan.cumulative {
            @let class = match c.standing { Standing::Within => "", Standing::Warning => "nhsuk-warning-callout", Standing::Beyond => "nhsuk-error-summary" };
            div class=(class) data-testid="cumulative" { p { (c.sentence()) } }
        }
    }
}

fn patient_page(
    cx: &Cx,
    id: &str,
    f: &Form,
    error: Option<(String, String)>,
    status: StatusCode,
) -> Response {
    let p = match patient_or_404(cx, id) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let cfg = match config() {
        Ok(c) => c,
        Err(r) => return r,
    };
    let pc = match cycle::patient_cycles(&cx.svc, cx.access(), &cfg, id) {
        Ok(x) => x,
        Err(e) => return chemo_error(&e),
    };
    let regimens = match regimen::load(&cx.svc) {
        Ok(r) => r,
        Err(e) => return chemo_error(&e),
    };
    let may_prescribe = cx.role.is_some_and(|r| r.has(Activity::Prescribe));
    let mut error = error;
    // The preview: a regimen, cycle and day 1 chosen.
    let plan = if may_prescribe && !get(f, "regimen").is_empty() {
        match request_of(id, &regimens, f) {
            Ok(req) => match formulary::load(&cx.svc) {
                Ok(fm) => match cycle::preview(&cx.svc, cx.access(), &fm, &cfg, &req) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        error.get_or_insert(("regimen".into(), layout::sentence(&e.message())));
                        None
                    }
                },
                Err(e) => return crate::fhir_error(&e),
            },
            Err(e) => {
                error.get_or_insert(e);
                None
            }
        }
    } else {
        None
    };
    let err = |k: &str| {
        error
            .as_ref()
            .filter(|(f, _)| f == k)
            .map(|(_, m)| m.as_str())
    };
    let today = cx.svc.now().date();
    let start = match get(f, "start") {
        "" => format!(
            "{:04}-{:02}-{:02}",
            today.year(),
            u8::from(today.month()),
            today.day()
        ),
        s => s.to_owned(),
    };
    let beyond = plan
        .as_ref()
        .is_some_and(|p| p.cumulative.iter().any(|c| c.standing == Standing::Beyond));
    let body = html! {
        (crate::chart::banner(&p, None))
        (layout::back_link(&format!("/ui/patients/{}", enc(id)), "Back to the record"))
        h2 class="nhsuk-heading-l" { "Chemotherapy" }
        @if let Some((field, msg)) = &error { (layout::error_summary(&[(field.clone(), msg.clone())])) }
        h3 { "Height, weight and body surface area" }
        (bsa_summary(
            pc.height.as_ref().map(|h| (h.value, h.date())),
            pc.weight.as_ref().map(|w| (w.value, w.date())),
            pc.bsa.as_ref(),
        ))
        p class="nhsuk-body-s" { "The trust calculates doses from the " (cfg.bsa_formula.label()) " BSA"
            @match cfg.bsa_cap { Some(c) => { ", capped at " (n(c)) " m²" }, None => { ", uncapped" } }
            "; a weight taken more than " (cfg.weight_max_age_days) " days before day 1 is not used." }
        h3 { "Cycles" }
        @if pc.cycles.is_empty() { p { "No chemotherapy cycle is prescribed." } } @else {
            table class="nhsuk-table" data-testid="cycles" {
                thead class="nhsuk-table__head" { tr class="nhsuk-table__row" {
                    th class="nhsuk-table__header" { "Cycle" } th class="nhsuk-table__header" { "Day 1" }
                    th class="nhsuk-table__header" { "BSA" } th class="nhsuk-table__header" { "Status" }
                } }
                tbody class="nhsuk-table__body" {
                    @for c in &pc.cycles {
                        tr class="nhsuk-table__row" {
                            td class="nhsuk-table__cell" { a href={ "/ui/chemotherapy/" (enc(&c.id)) } { (c.title) } }
                            td class="nhsuk-table__cell" { (c.start) }
                            td class="nhsuk-table__cell" { (c.bsa.map(n).unwrap_or_default()) " m²" }
                            td class="nhsuk-table__cell" { (status_tag(&c.status)) }
                        }
                    }
                }
            }
        }
        @if may_prescribe {
            h3 { "Prescribe a cycle" }
            form method="get" action={ "/ui/patients/" (enc(id)) "/chemotherapy" } novalidate {
                (layout::select("regimen", "Regimen", &regimen_options(&regimens), get(f, "regimen"), err("regimen")))
                (layout::input(&layout::Field { value: get(f, "cycle"), width: "nhsuk-input--width-3", error: err("cycle"), ..layout::Field::new("cycle", "Cycle number") }))
                (layout::input(&layout::Field { kind: "date", value: &start, width: "nhsuk-input--width-10", error: err("start"), ..layout::Field::new("start", "Day 1") }))
                button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" { "Calculate doses" }
            }
            @if let Some(plan) = &plan {
                form method="post" action={ "/ui/patients/" (enc(id)) "/chemotherapy" } novalidate {
                    (layout::csrf(cx))
                    input type="hidden" name="regimen" value=(plan.regimen.id);
                    input type="hidden" name="cycle" value=(plan.cycle);
                    input type="hidden" name="start" value=(start);
                    (bsa_summary(Some((plan.height.value, plan.height.date())), Some((plan.weight.value, plan.weight.date())), Some(&Ok(plan.bsa))))
                    (plan_table(plan, f, true))
                    @if beyond {
                        div class="nhsuk-form-group" {
                            label class="nhsuk-label" for="override" { "Consultant's reason to go past the lifetime limit" }
                            textarea class="nhsuk-textarea" id="override" name="override" rows="2" { (get(f, "override")) }
                        }
                    }
                    p { "Reductions apply when you prescribe; the cycle's page shows each dose as calculated." }
                    button class="nhsuk-button" data-module="nhsuk-button" type="submit" { "Prescribe cycle" }
                }
            }
        }
    };
    layout::page_with(status, cx, "Chemotherapy", Nav::Patients, body)
}

pub(crate) async fn patient_chemo_page(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
) -> Response {
    ui.run(req, None, move |cx, q| {
        patient_page(cx, &id, &q, None, StatusCode::OK)
    })
    .await
}

pub(crate) async fn prescribe_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let cfg = match config() {
            Ok(c) => c,
            Err(r) => return r,
        };
        let regimens = match regimen::load(&cx.svc) {
            Ok(r) => r,
            Err(e) => return chemo_error(&e),
        };
        let req = match request_of(&id, &regimens, &f) {
            Ok(r) => r,
            Err(e) => return patient_page(cx, &id, &f, Some(e), StatusCode::UNPROCESSABLE_ENTITY),
        };
        let fm = match formulary::load(&cx.svc) {
            Ok(x) => x,
            Err(e) => return crate::fhir_error(&e),
        };
        match cycle::prescribe_cycle(&cx.svc, cx.access(), &fm, &cfg, &req, cx.svc.now()) {
            Ok(p) => see_other(&format!(
                "/ui/chemotherapy/{}?done=prescribed",
                enc(&p.careplan)
            )),
            Err(e) if matches!(e.status(), 400 | 403 | 409) => patient_page(
                cx,
                &id,
                &f,
                Some(("regimen".into(), layout::sentence(&e.message()))),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            Err(e) => chemo_error(&e),
        }
    })
    .await
}

// ---------------------------------------------------------------- the cycle

fn cycle_body(cx: &Cx, v: &CycleView, q: &Form) -> Markup {
    let me = cx.access().agent().key().into_owned();
    let may_prescribe = cx.role.is_some_and(|r| r.has(Activity::Prescribe));
    let may_screen = cx
        .role
        .is_some_and(|r| r.has(Activity::ScreenPrescriptions));
    let open = matches!(v.status.as_str(), "draft" | "on-hold");
    let action = |what: &str| format!("/ui/chemotherapy/{}/{what}", enc(&v.id));
    let error = get(q, "error");
    html! {
        (layout::back_link(&format!("/ui/patients/{}/chemotherapy", enc(&v.patient)), "Back to the patient's chemotherapy"))
        h1 { (v.title) " " (status_tag(&v.status)) }
        @match get(q, "done") {
            "prescribed" => (layout::success("The cycle was prescribed. It needs verification by a second clinician and a pharmacist before release.")),
            "verified" => (layout::success("Your verification was recorded.")),
            "released" => (layout::success("The cycle was released: its prescriptions are active.")),
            "delayed" => (layout::success("The cycle was delayed.")),
            "revoked" => (layout::success("The cycle was cancelled: none of its doses can be given.")),
            _ => {}
        }
        @if !error.is_empty() { (layout::error_summary(&[("actions".to_owned(), error.to_owned())])) }
        p { "Day 1: " strong data-testid="day1" { (v.start) } " · prescribed by " (v.prescriber) }
        (bsa_summary(v.height.as_ref().map(|(h, d)| (*h, d.as_str())), v.weight.as_ref().map(|(w, d)| (*w, d.as_str())),
            v.bsa.map(|used| Ok(bsa::Bsa {
                mosteller: v.bsa_mosteller.unwrap_or_default(), dubois: v.bsa_dubois.unwrap_or_default(),
                formula: bsa::Formula::parse(&v.bsa_formula).unwrap_or(bsa::Formula::Mosteller),
                uncapped: v.bsa_uncapped.unwrap_or(used), used, capped: v.bsa_capped })).as_ref()))
        @if let Some(g) = v.gfr { p data-testid="gfr" { "GFR used for Calvert: " (n(g)) " mL/min." } }
        h2 { "Doses" }
        table class="nhsuk-table" data-testid="doses" {
            thead class="nhsuk-table__head" { tr class="nhsuk-table__row" {
                th class="nhsuk-table__header" { "Medicine" } th class="nhsuk-table__header" { "Dose" }
                th class="nhsuk-table__header" { "How it was calculated" } th class="nhsuk-table__header" { "Prescription" }
            } }
            tbody class="nhsuk-table__body" {
                @for d in &v.doses {
                    tr class="nhsuk-table__row" data-testid="dose-row" {
                        td class="nhsuk-table__cell" { (d.medicine) }
                        td class="nhsuk-table__cell" data-testid="dose" { strong { (n(d.dose_mg)) " mg" } }
                        td class="nhsuk-table__cell nhsuk-body-s" { (d.steps)
                            @if let Some((p, r)) = &d.reduction { br; "Reduction " (n(*p)) " %: " (r) } }
                        td class="nhsuk-table__cell" { (d.status) }
                    }
                }
            }
        }
        @if !v.overrides.is_empty() {
            div class="nhsuk-warning-callout" { h3 class="nhsuk-warning-callout__label" { "Lifetime limit overridden" }
                @for o in &v.overrides { p { (o) } } }
        }
        @if open {
            h2 { "Pre-cycle checks" }
            table class="nhsuk-table" data-testid="checks" {
                thead class="nhsuk-table__head" { tr class="nhsuk-table__row" {
                    th class="nhsuk-table__header" { "Check" } th class="nhsuk-table__header" { "Needed" }
                    th class="nhsuk-table__header" { "Latest result" } th class="nhsuk-table__header" { "" }
                } }
                tbody class="nhsuk-table__body" {
                    @for c in &v.checks {
                        tr class="nhsuk-table__row" {
                            td class="nhsuk-table__cell" { (c.name) }
                            td class="nhsuk-table__cell" { (c.needed) }
                            td class="nhsuk-table__cell" { @match &c.result { Some(r) => { (n(r.value)) " " (r.unit) " on " (r.date()) }, None => { "None" } } }
                            td class="nhsuk-table__cell" {
                                @if c.passed { strong class="nhsuk-tag nhsuk-tag--green" { "Passed" } }
                                @else { strong class="nhsuk-tag nhsuk-tag--red" { "Not passed" } br; span class="nhsuk-body-s" { (c.problem.clone().unwrap_or_default()) } }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Verification" }
        dl class="nhsuk-summary-list" data-testid="verifications" {
            @for role in [VerifyAs::Clinical, VerifyAs::Pharmacy] {
                div class="nhsuk-summary-list__row" {
                    dt class="nhsuk-summary-list__key" { (role.label()) }
                    dd class="nhsuk-summary-list__value" {
                        @match v.verified(role) {
                            Some(x) => { "Verified by " (if x.by_name.is_empty() { &x.by } else { &x.by_name }) " at " (x.at) }
                            None => { "Not verified" }
                        }
                    }
                }
            }
        }
        @if open {
            div id="actions" {
                @if v.verified(VerifyAs::Clinical).is_none() && may_prescribe && me != v.prescriber_key {
                    form method="post" action=(action("verify")) novalidate {
                        (layout::csrf(cx)) input type="hidden" name="role" value="clinical";
                        button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" { "Verify as second clinician" }
                    }
                }
                @if v.verified(VerifyAs::Pharmacy).is_none() && may_screen && me != v.prescriber_key {
                    form method="post" action=(action("verify")) novalidate {
                        (layout::csrf(cx)) input type="hidden" name="role" value="pharmacy";
                        button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" { "Verify as pharmacist" }
                    }
                }
                @if may_prescribe {
                    @if v.releasable() {
                        (layout::action_button(cx, &action("release"), "Release cycle", ""))
                    } @else {
                        p class="nhsuk-body-s" { "Release needs both verifications and every pre-cycle check passed." }
                    }
                }
            }
        }
        @if may_prescribe && matches!(v.status.as_str(), "draft" | "active" | "on-hold") {
            h2 { "Delay" }
            @for d in &v.delays { p class="nhsuk-body-s" { "Delayed from " (d.from) " to " (d.to) ": " (d.reason) } }
            form method="post" action=(action("delay")) novalidate {
                (layout::csrf(cx))
                (layout::input(&layout::Field { kind: "date", width: "nhsuk-input--width-10", ..layout::Field::new("to", "New day 1") }))
                (layout::input(&layout::Field::new("reason", "Reason for the delay")))
                button class="nhsuk-button nhsuk-button--secondary" data-module="nhsuk-button" type="submit" { "Delay cycle" }
            }
        }
        @if let Some(why) = &v.revoked { p data-testid="revoked" { "Cancelled: " (why) } }
        @if may_prescribe && matches!(v.status.as_str(), "draft" | "active" | "on-hold") {
            h2 { "Cancel the cycle" }
            p class="nhsuk-body-s" { "Cancels the prescriptions not yet released and stops those released: none of this cycle's doses can then be given." }
            form method="post" action=(action("revoke")) novalidate {
                (layout::csrf(cx))
                (layout::input(&layout::Field::new("revoke_reason", "Reason for cancelling")))
                button class="nhsuk-button nhsuk-button--warning" data-module="nhsuk-button" type="submit" data-testid="revoke" { "Cancel cycle" }
            }
        }
        p class="nhsuk-body-s" { "Shared with the cancer centre as FHIR: "
            code { "GET /fhir/CarePlan/" (v.id) "/$chemotherapy-cycle" } }
    }
}

pub(crate) async fn cycle_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        let cfg = match config() {
            Ok(c) => c,
            Err(r) => return r,
        };
        match cycle::view(&cx.svc, cx.access(), &cfg, &id) {
            Ok(v) => {
                let title = v.title.clone();
                layout::page(cx, &title, Nav::Patients, cycle_body(cx, &v, &q))
            }
            Err(e) => chemo_error(&e),
        }
    })
    .await
}

fn back(id: &str, r: Result<&str, MedicinesError>) -> Response {
    match r {
        Ok(done) => see_other(&format!("/ui/chemotherapy/{}?done={done}", enc(id))),
        Err(e) if matches!(e.status(), 400 | 403 | 409) => see_other(&format!(
            "/ui/chemotherapy/{}?error={}",
            enc(id),
            enc(&layout::sentence(&e.message()))
        )),
        Err(e) => chemo_error(&e),
    }
}

pub(crate) async fn verify_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let Some(role) = VerifyAs::parse(get(&f, "role")) else {
            return back(
                &id,
                Err(MedicinesError::Invalid(
                    "Say which verification this is.".into(),
                )),
            );
        };
        back(
            &id,
            cycle::verify(&cx.svc, cx.access(), &id, role, cx.svc.now()).map(|_| "verified"),
        )
    })
    .await
}

pub(crate) async fn release_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, _f| {
        let cfg = match config() {
            Ok(c) => c,
            Err(r) => return r,
        };
        back(
            &id,
            cycle::release(&cx.svc, cx.access(), &cfg, &id, cx.svc.now()).map(|_| "released"),
        )
    })
    .await
}

pub(crate) async fn delay_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        let Some(to) = cycle::parse_date(get(&f, "to")) else {
            return back(
                &id,
                Err(MedicinesError::Invalid(
                    "Give the new day 1 as a date.".into(),
                )),
            );
        };
        back(
            &id,
            cycle::delay(
                &cx.svc,
                cx.access(),
                &id,
                get(&f, "reason"),
                to,
                cx.svc.now(),
            )
            .map(|_| "delayed"),
        )
    })
    .await
}

pub(crate) async fn revoke_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| {
        back(
            &id,
            revoke::revoke(
                &cx.svc,
                cx.access(),
                &id,
                get(&f, "revoke_reason"),
                cx.svc.now(),
            )
            .map(|_| "revoked"),
        )
    })
    .await
}
