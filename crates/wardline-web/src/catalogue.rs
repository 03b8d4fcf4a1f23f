//! The order catalogue's administration: `/ui/catalogue` lists what can be
//! ordered by department (local codes marked as such, retired entries
//! marked), with the order sets; an administrator views, adds, edits,
//! retires and reinstates tests and examinations and order sets, and
//! imports a catalogue Bundle (a FHIR JSON file). Every change is one call
//! to `wardline_workflow::orders::catalogue`, whose write rule checks the
//! entry (a refused entry comes back as a sentence beside the form); who may
//! change it is the policy's (`ManageCatalogue`), who may read it too (any
//! member of staff).

use axum::body::Bytes;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::json;
use wardline_core::Op;
use wardline_workflow::orders::catalogue::{
    self, Analyte, BASE, Catalogue, CatalogueError, DEPARTMENTS, LOCAL_ANALYTE, LOCAL_ORDERABLE,
    LOINC, MODALITIES, OrderSet, Orderable, SNOMED, SPECIMEN_TYPES, SexRange, SpecimenRequirement,
};

use crate::layout::{self, Field, Nav};
use crate::{Cx, Form, Req, St, enc, see_other};

const TITLE: &str = "Order catalogue";
/// Blank analyte rows offered below the existing ones.
const BLANK_ROWS: usize = 3;

fn may_change(cx: &Cx) -> bool {
    cx.access()
        .check_type(Op::Update, Some("ActivityDefinition"))
        .is_ok()
}

fn refuse_unless_manager(cx: &Cx) -> Result<(), Response> {
    if may_change(cx) {
        Ok(())
    } else {
        Err(layout::error_page(
            StatusCode::FORBIDDEN,
            "You do not have access",
            "Only the order catalogue's managers can change it.",
        ))
    }
}

fn error_response(e: &CatalogueError) -> Response {
    layout::refusal_page(e.status(), e.message(), "catalogue")
}

fn load(cx: &Cx) -> Result<Catalogue, Response> {
    catalogue::load_as(&cx.svc, cx.access()).map_err(|e| error_response(&e))
}

fn get<'a>(f: &'a Form, k: &str) -> &'a str {
    f.get(k).map(|s| s.trim()).unwrap_or_default()
}

fn code_of(c: &serde_json::Value) -> String {
    c["coding"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn local_tag() -> Markup {
    html! { strong class="nhsuk-tag nhsuk-tag--yellow" data-testid="local-code" title="A local code of this trust, not SNOMED CT" { "Local code" } }
}

fn status_tag(active: bool) -> Markup {
    html! {
        @if active {
            strong class="nhsuk-tag nhsuk-tag--green" { "Active" }
        } @else {
            strong class="nhsuk-tag nhsuk-tag--grey" data-testid="retired" { "Retired" }
        }
    }
}

fn retest_text(h: Option<u32>) -> String {
    let plural = |n: u32, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match h {
        None => String::new(),
        Some(h) if h % (24 * 7) == 0 => plural(h / (24 * 7), "week"),
        Some(h) if h % 24 == 0 => plural(h / 24, "day"),
        Some(h) => plural(h, "hour"),
    }
}

fn done_banner(f: &Form) -> Markup {
    let m = match get(f, "done") {
        "added" => "The test or examination was added.",
        "saved" => "The changes were saved.",
        "retired" => "It was retired: it can no longer be ordered.",
        "reinstated" => "It was reinstated: it can be ordered again.",
        "set-added" => "The order set was added.",
        "set-saved" => "The order set was saved.",
        "set-retired" => "The order set was retired.",
        "set-reinstated" => "The order set was reinstated.",
        "imported" => "The catalogue Bundle was imported.",
        _ => return html! {},
    };
    layout::success(m)
}

// ---- the list ---------------------------------------------------------------

fn list(cx: &Cx, c: &Catalogue, f: &Form) -> Markup {
    let manager = may_change(cx);
    html! {
        (done_banner(f))
        @if get(f, "done") == "imported" {
            p data-testid="import-report" {
                (get(f, "created")) " created, " (get(f, "updated")) " updated, " (get(f, "unchanged")) " unchanged."
            }
        }
        h1 { (TITLE) }
        p { "What can be requested from the chart: pathology tests and panels, radiology examinations and order sets. Codes are SNOMED CT unless marked as a local code. Reference and critical ranges are the laboratory's." }
        @if manager {
            div class="nhsuk-action-link" {
                a class="nhsuk-button" href="/ui/catalogue/new" data-testid="add-orderable" { "Add a test or examination" }
                " "
                a class="nhsuk-button nhsuk-button--secondary" href="/ui/catalogue/sets/new" { "Add an order set" }
                " "
                a class="nhsuk-button nhsuk-button--secondary" href="/ui/catalogue/import" { "Import a catalogue file" }
            }
        }
        @if !c.problems.is_empty() {
            div class="nhsuk-warning-callout" data-testid="catalogue-problems" {
                h3 class="nhsuk-warning-callout__label" { "Entries that cannot be ordered" }
                p { "These stored entries do not pass the catalogue's checks, so requesters do not see them. Correct them (or import a corrected file):" }
                ul { @for p in &c.problems { li { (p) } } }
            }
        }
        @if c.orderables.is_empty() {
            p data-testid="catalogue-empty" { "The catalogue is empty." }
        }
        @for (dept, name) in DEPARTMENTS {
            @let items: Vec<&Orderable> = c.orderables.iter().filter(|o| o.department == dept).collect();
            @if !items.is_empty() {
                h2 id={ "dept-" (dept) } { (name) }
                table class="nhsuk-table" data-testid={ "department-" (dept) } {
                    thead class="nhsuk-table__head" {
                        tr {
                            th scope="col" { "Test or examination" }
                            th scope="col" { "Code" }
                            th scope="col" { @if dept == "radiology" { "Modality" } @else { "Specimen and container" } }
                            th scope="col" { "Minimum retest interval" }
                            th scope="col" { "Status" }
                        }
                    }
                    tbody class="nhsuk-table__body" {
                        @for o in items {
                            tr class="nhsuk-table__row" data-testid={ "orderable-" (o.id) } {
                                td class="nhsuk-table__cell" { a href={ "/ui/catalogue/" (enc(&o.id)) } { (o.title) } }
                                td class="nhsuk-table__cell" {
                                    (code_of(&o.code)) " "
                                    @if o.local_code { (local_tag()) }
                                }
                                td class="nhsuk-table__cell" {
                                    @if let Some(m) = &o.modality {
                                        (m) @if o.ionising { " (ionising)" }
                                    } @else if let Some(s) = &o.specimen {
                                        (wardline_workflow::fhir::concept_text(&s.specimen_type).unwrap_or_default()) ", " (s.container)
                                    }
                                }
                                td class="nhsuk-table__cell" { (retest_text(o.retest_interval_hours)) }
                                td class="nhsuk-table__cell" { (status_tag(o.active)) }
                            }
                        }
                    }
                }
            }
        }
        h2 id="sets" { "Order sets" }
        @if c.sets.is_empty() {
            p { "No order sets." }
        } @else {
            table class="nhsuk-table" data-testid="order-sets" {
                thead class="nhsuk-table__head" {
                    tr { th scope="col" { "Order set" } th scope="col" { "Contains" } th scope="col" { "Status" } }
                }
                tbody class="nhsuk-table__body" {
                    @for s in &c.sets {
                        tr class="nhsuk-table__row" data-testid={ "set-" (s.id) } {
                            td class="nhsuk-table__cell" { a href={ "/ui/catalogue/sets/" (enc(&s.id)) } { (s.title) } }
                            td class="nhsuk-table__cell" {
                                (s.orderables.iter().map(|id| c.orderable(id).map_or(id.as_str(), |o| o.title.as_str())).collect::<Vec<_>>().join(", "))
                            }
                            td class="nhsuk-table__cell" { (status_tag(s.active)) }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /ui/catalogue`.
pub(crate) async fn list_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, f| match load(cx) {
        Ok(c) => layout::page(cx, TITLE, Nav::Catalogue, list(cx, &c, &f)),
        Err(r) => r,
    })
    .await
}

// ---- one orderable ------------------------------------------------------------

fn num(v: Option<f64>) -> String {
    v.map(|v| format!("{v}")).unwrap_or_default()
}

fn view(cx: &Cx, o: &Orderable, f: &Form) -> Markup {
    let row = |k: &str, v: Markup| {
        html! {
            div class="nhsuk-summary-list__row" {
                dt class="nhsuk-summary-list__key" { (k) }
                dd class="nhsuk-summary-list__value" { (v) }
            }
        }
    };
    html! {
        (layout::back_link("/ui/catalogue", "Back to the catalogue"))
        (done_banner(f))
        span class="nhsuk-caption-l" { (catalogue::department_name(&o.department)) }
        h1 data-testid="orderable-title" { (o.title) " " (status_tag(o.active)) }
        @if let Some(d) = &o.description { p { (d) } }
        dl class="nhsuk-summary-list" {
            (row("Code", html! {
                (code_of(&o.code)) " – " (wardline_workflow::fhir::concept_text(&o.code).unwrap_or_default()) " "
                @if o.local_code { (local_tag()) } @else { span class="nhsuk-tag nhsuk-tag--blue" { "SNOMED CT" } }
            }))
            @if let Some(s) = &o.specimen {
                (row("Specimen", html! { (wardline_workflow::fhir::concept_text(&s.specimen_type).unwrap_or_default()) }))
                (row("Container", html! {
                    (s.container)
                    @if let Some(c) = &s.colour { " – " (c) " cap" }
                    @if let Some(v) = s.minimum_volume_ml { ", at least " (v) " mL" }
                }))
            }
            @if let Some(p) = &o.preparation { (row("Patient preparation", html! { (p) })) }
            @if let Some(t) = &o.timing { (row("Timing and handling", html! { (t) })) }
            @if let Some(m) = &o.modality {
                (row("Modality", html! { (m) @if o.ionising { " – ionising radiation (IR(ME)R justification required)" } }))
            }
            (row("Minimum retest interval", html! {
                @if o.retest_interval_hours.is_some() { (retest_text(o.retest_interval_hours)) } @else { "None" }
            }))
            (row("Canonical URL", html! { code { (o.url) } }))
        }
        @if !o.analytes.is_empty() {
            h2 { "Results it produces" }
            table class="nhsuk-table" data-testid="analytes" {
                thead class="nhsuk-table__head" {
                    tr {
                        th scope="col" { "Analyte" } th scope="col" { "Code" } th scope="col" { "Reference range" }
                        th scope="col" { "Critical below" } th scope="col" { "Critical above" } th scope="col" { "Delta check" }
                    }
                }
                tbody class="nhsuk-table__body" {
                    @for a in &o.analytes {
                        tr class="nhsuk-table__row" {
                            td class="nhsuk-table__cell" { (a.display) }
                            td class="nhsuk-table__cell" {
                                (code_of(&a.code))
                                @if a.code["coding"][0]["system"] == LOCAL_ANALYTE { " " (local_tag()) }
                            }
                            td class="nhsuk-table__cell" {
                                @if a.sex_ranges.is_empty() {
                                    (a.range_text().unwrap_or_default())
                                } @else {
                                    @for r in &a.sex_ranges {
                                        (r.gender) ": " (catalogue::range_text(r.low, r.high, a.unit.as_deref()).unwrap_or_default()) br;
                                    }
                                }
                            }
                            td class="nhsuk-table__cell" { (num(a.critical_low)) }
                            td class="nhsuk-table__cell" { (num(a.critical_high)) }
                            td class="nhsuk-table__cell" {
                                @if let Some(d) = a.delta_absolute { "± " (d) " " }
                                @if let Some(p) = a.delta_percent { "± " (p) "%" }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(q) = &o.questionnaire {
            h2 { "Questions the requester answers" }
            ul data-testid="questions" {
                @for i in &q.items {
                    li { (i.text) @if i.required { " (required)" } }
                }
            }
        }
        @if may_change(cx) {
            div class="nhsuk-button-group" {
                a class="nhsuk-button nhsuk-button--secondary" href={ "/ui/catalogue/" (enc(&o.id)) "/edit" } { "Edit" }
                @if o.active {
                    (layout::action_button(cx, &format!("/ui/catalogue/{}/retire", enc(&o.id)), "Retire", "nhsuk-button--warning"))
                } @else {
                    (layout::action_button(cx, &format!("/ui/catalogue/{}/reinstate", enc(&o.id)), "Reinstate", "nhsuk-button--secondary"))
                }
            }
        }
    }
}

/// `GET /ui/catalogue/{id}`.
pub(crate) async fn view_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, f| {
        let c = match load(cx) {
            Ok(c) => c,
            Err(r) => return r,
        };
        match c.orderable(&id) {
            Some(o) => layout::page(cx, &o.title, Nav::Catalogue, view(cx, o, &f)),
            None => error_response(&CatalogueError::NotFound(format!(
                "There is no test or examination with id {id}."
            ))),
        }
    })
    .await
}

async fn set_active(
    ui: crate::Ui,
    req: Req,
    body: Bytes,
    kind: &'static str,
    id: String,
    active: bool,
) -> Response {
    ui.run(req, Some(&body), move |cx, _| {
        let (t, back, done) = match kind {
            "set" => (
                "PlanDefinition",
                format!("/ui/catalogue/sets/{}", enc(&id)),
                if active {
                    "set-reinstated"
                } else {
                    "set-retired"
                },
            ),
            _ => (
                "ActivityDefinition",
                format!("/ui/catalogue/{}", enc(&id)),
                if active { "reinstated" } else { "retired" },
            ),
        };
        match catalogue::set_active(&cx.svc, cx.access(), t, &id, active) {
            Ok(()) => see_other(&format!("{back}?done={done}")),
            Err(e) => error_response(&e),
        }
    })
    .await
}

/// `POST /ui/catalogue/{id}/retire`.
pub(crate) async fn retire_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    set_active(ui, req, body, "orderable", id, false).await
}

/// `POST /ui/catalogue/{id}/reinstate`.
pub(crate) async fn reinstate_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    set_active(ui, req, body, "orderable", id, true).await
}

// ---- the orderable form ---------------------------------------------------------

/// The form's fields for an orderable (to show it for editing).
fn form_of(o: &Orderable) -> Form {
    let mut f = Form::new();
    let mut put = |k: &str, v: String| {
        f.insert(k.to_owned(), v);
    };
    put("id", o.id.clone());
    put("title", o.title.clone());
    put("department", o.department.clone());
    put(
        "code_system",
        if o.local_code { "local" } else { "snomed" }.into(),
    );
    put("code", code_of(&o.code));
    put(
        "code_display",
        o.code["coding"][0]["display"]
            .as_str()
            .unwrap_or_default()
            .into(),
    );
    put("description", o.description.clone().unwrap_or_default());
    if let Some(s) = &o.specimen {
        put("specimen_type", code_of(&s.specimen_type));
        put("container", s.container.clone());
        put("colour", s.colour.clone().unwrap_or_default());
        put("volume", num(s.minimum_volume_ml));
    }
    put("preparation", o.preparation.clone().unwrap_or_default());
    put("timing", o.timing.clone().unwrap_or_default());
    put("modality", o.modality.clone().unwrap_or_default());
    if o.ionising {
        put("ionising", "yes".into());
    }
    put(
        "questionnaire",
        o.questionnaire
            .as_ref()
            .map(|q| q.url.clone())
            .unwrap_or_default(),
    );
    put(
        "retest",
        o.retest_interval_hours
            .map(|h| h.to_string())
            .unwrap_or_default(),
    );
    for (i, a) in o.analytes.iter().enumerate() {
        let k = |n: &str| format!("a{i}_{n}");
        put(
            &k("system"),
            if a.code["coding"][0]["system"] == LOCAL_ANALYTE {
                "local"
            } else {
                "loinc"
            }
            .into(),
        );
        put(&k("code"), code_of(&a.code));
        put(&k("name"), a.display.clone());
        put(&k("unit"), a.unit.clone().unwrap_or_default());
        if a.sex_ranges.is_empty() {
            put(&k("low"), num(a.low));
            put(&k("high"), num(a.high));
        }
        for r in &a.sex_ranges {
            let g = if r.gender == "male" { "m" } else { "f" };
            put(&k(&format!("{g}low")), num(r.low));
            put(&k(&format!("{g}high")), num(r.high));
        }
        put(&k("clow"), num(a.critical_low));
        put(&k("chigh"), num(a.critical_high));
        put(&k("dabs"), num(a.delta_absolute));
        put(&k("dpct"), num(a.delta_percent));
    }
    f
}

type Errors = Vec<(String, String)>;

fn number(f: &Form, k: &str, label: &str, errors: &mut Errors) -> Option<f64> {
    let t = get(f, k);
    if t.is_empty() {
        return None;
    }
    match Analyte::parse_value(t) {
        Ok(v) => Some(v),
        Err(e) => {
            errors.push((k.to_owned(), format!("{label}: {e}")));
            None
        }
    }
}

/// Reads the orderable form into an [`Orderable`] (the workflow checks
/// the rules when it is saved), or the fields that are wrong.
pub(crate) fn orderable_from_form(f: &Form, c: &Catalogue, id: &str) -> Result<Orderable, Errors> {
    let mut errors = Errors::new();
    let title = get(f, "title");
    if title.is_empty() {
        errors.push(("title".into(), "Enter the name requesters see".into()));
    }
    if !catalogue::valid_id(id) {
        errors.push((
            "id".into(),
            "Enter an id of letters, digits and hyphens (for example path-zinc)".into(),
        ));
    }
    let department = get(f, "department");
    if !DEPARTMENTS.iter().any(|(d, _)| *d == department) {
        errors.push(("department".into(), "Choose the department".into()));
    }
    let imaging = department == "radiology";
    let code = get(f, "code");
    if code.is_empty() {
        errors.push((
            "code".into(),
            "Enter the code (SNOMED CT, or a local code)".into(),
        ));
    }
    let local = get(f, "code_system") != "snomed";
    let display = if get(f, "code_display").is_empty() {
        title
    } else {
        get(f, "code_display")
    };
    let code_json = json!({"coding": [{"system": if local { LOCAL_ORDERABLE } else { SNOMED }, "code": code, "display": display}], "text": title});
    let opt = |k: &str| Some(get(f, k).to_owned()).filter(|s| !s.is_empty());
    let specimen = if imaging {
        None
    } else {
        let st = get(f, "specimen_type");
        let Some((_, st_display)) = SPECIMEN_TYPES.iter().find(|(c, _)| *c == st) else {
            errors.push(("specimen_type".into(), "Choose the specimen type".into()));
            return Err(errors);
        };
        if get(f, "container").is_empty() {
            errors.push((
                "container".into(),
                "Enter the container, for example EDTA (purple top)".into(),
            ));
        }
        Some(SpecimenRequirement {
            // The stored concept (with its text) when the type is unchanged.
            specimen_type: c
                .orderable(id)
                .and_then(|o| o.specimen.as_ref())
                .filter(|s| code_of(&s.specimen_type) == st)
                .map_or_else(
                    || json!({"coding": [{"system": SNOMED, "code": st, "display": st_display}]}),
                    |s| s.specimen_type.clone(),
                ),
            container: get(f, "container").to_owned(),
            colour: opt("colour"),
            minimum_volume_ml: number(f, "volume", "Minimum volume", &mut errors),
        })
    };
    let modality = if imaging {
        let m = get(f, "modality");
        if !MODALITIES.iter().any(|(c, _)| *c == m) {
            errors.push(("modality".into(), "Choose the modality".into()));
        }
        Some(m.to_owned())
    } else {
        None
    };
    let questionnaire = match get(f, "questionnaire") {
        "" => None,
        url => match c.questionnaire(url) {
            Some(q) => Some(q.clone()),
            None => {
                errors.push((
                    "questionnaire".into(),
                    "Choose one of the catalogue's question sets".into(),
                ));
                None
            }
        },
    };
    let retest = match get(f, "retest") {
        "" => None,
        t => match t.parse::<u32>() {
            Ok(h) if h > 0 => Some(h),
            _ => {
                errors.push(("retest".into(), "Enter the minimum retest interval as a whole number of hours, or leave it empty".into()));
                None
            }
        },
    };
    let mut analytes = Vec::new();
    let rows = (0..200).take_while(|i| f.contains_key(&format!("a{i}_code")));
    for i in rows {
        let k = |n: &str| format!("a{i}_{n}");
        let acode = get(f, &k("code"));
        let name = get(f, &k("name"));
        if acode.is_empty() && name.is_empty() {
            continue;
        }
        let label = |what: &str| format!("Result {} {what}", i + 1);
        if acode.is_empty() || name.is_empty() {
            errors.push((
                k("code"),
                format!("{}: enter both its code and its name", label("")),
            ));
            continue;
        }
        let system = if get(f, &k("system")) == "local" {
            LOCAL_ANALYTE
        } else {
            LOINC
        };
        let unit = opt(&k("unit"));
        let mut sex_ranges = Vec::new();
        for (g, gender) in [("m", "male"), ("f", "female")] {
            let lo = number(
                f,
                &k(&format!("{g}low")),
                &label(&format!("{gender} low")),
                &mut errors,
            );
            let hi = number(
                f,
                &k(&format!("{g}high")),
                &label(&format!("{gender} high")),
                &mut errors,
            );
            if lo.is_some() || hi.is_some() {
                sex_ranges.push(SexRange {
                    gender: gender.to_owned(),
                    low: lo,
                    high: hi,
                });
            }
        }
        let (mut low, mut high) = (
            number(f, &k("low"), &label("reference low"), &mut errors),
            number(f, &k("high"), &label("reference high"), &mut errors),
        );
        if !sex_ranges.is_empty() {
            // The widest of the sexes' ranges, as the catalogue reads them.
            low = sex_ranges
                .iter()
                .map(|r| r.low)
                .try_fold(f64::INFINITY, |m, l| l.map(|l| m.min(l)));
            high = sex_ranges
                .iter()
                .map(|r| r.high)
                .try_fold(f64::NEG_INFINITY, |m, h| h.map(|h| m.max(h)));
        }
        analytes.push(Analyte {
            code: json!({"coding": [{"system": system, "code": acode, "display": name}], "text": name}),
            display: name.to_owned(),
            unit,
            low,
            high,
            critical_low: number(f, &k("clow"), &label("critical low"), &mut errors),
            critical_high: number(f, &k("chigh"), &label("critical high"), &mut errors),
            delta_absolute: number(f, &k("dabs"), &label("delta (absolute)"), &mut errors),
            delta_percent: number(f, &k("dpct"), &label("delta (%)"), &mut errors),
            sex_ranges,
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Orderable {
        id: id.to_owned(),
        url: c.orderable(id).map_or_else(
            || format!("{BASE}/ActivityDefinition/{id}"),
            |o| o.url.clone(),
        ),
        title: title.to_owned(),
        code: code_json,
        local_code: local,
        department: department.to_owned(),
        imaging,
        modality,
        ionising: imaging && get(f, "ionising") == "yes",
        specimen,
        preparation: if imaging { None } else { opt("preparation") },
        timing: if imaging { None } else { opt("timing") },
        retest_interval_hours: retest,
        questionnaire,
        analytes,
        active: c.orderable(id).is_none_or(|o| o.active),
        description: opt("description"),
    })
}

fn textarea(id: &str, label: &str, value: &str, hint: Option<&str>) -> Markup {
    html! {
        div class="nhsuk-form-group" {
            label class="nhsuk-label" for=(id) { (label) }
            @if let Some(h) = hint { div class="nhsuk-hint" id={ (id) "-hint" } { (h) } }
            textarea class="nhsuk-textarea" id=(id) name=(id) rows="2" { (value) }
        }
    }
}

fn small(f: &Form, id: &str, label: &str) -> Markup {
    html! {
        div class="nhsuk-date-input__item" {
            label class="nhsuk-label nhsuk-date-input__label" for=(id) { (label) }
            input class="nhsuk-input nhsuk-input--width-5" id=(id) name=(id) type="text" inputmode="decimal" value=(get(f, id)) autocomplete="off";
        }
    }
}

fn orderable_form(
    cx: &Cx,
    c: &Catalogue,
    f: &Form,
    errors: &[(String, String)],
    editing: Option<&str>,
) -> Markup {
    let err = |k: &str| errors.iter().find(|(e, _)| e == k).map(|(_, m)| m.as_str());
    let depts: Vec<(String, String)> = std::iter::once((String::new(), "Choose…".to_owned()))
        .chain(
            DEPARTMENTS
                .iter()
                .map(|(c, n)| ((*c).to_owned(), (*n).to_owned())),
        )
        .collect();
    let specimens: Vec<(String, String)> = std::iter::once((String::new(), "Choose…".to_owned()))
        .chain(
            SPECIMEN_TYPES
                .iter()
                .map(|(c, n)| ((*c).to_owned(), format!("{n} ({c})"))),
        )
        .collect();
    let modalities: Vec<(String, String)> =
        std::iter::once((String::new(), "Not imaging".to_owned()))
            .chain(
                MODALITIES
                    .iter()
                    .map(|(c, n)| ((*c).to_owned(), format!("{c} – {n}"))),
            )
            .collect();
    let questionnaires: Vec<(String, String)> =
        std::iter::once((String::new(), "No questions".to_owned()))
            .chain(
                c.questionnaires
                    .iter()
                    .map(|q| (q.url.clone(), q.title.clone())),
            )
            .collect();
    // The rows filled in (up to the last one), then blank ones to add.
    let rows = (0..200)
        .take_while(|i| f.contains_key(&format!("a{i}_code")))
        .filter(|i| {
            !get(f, &format!("a{i}_code")).is_empty() || !get(f, &format!("a{i}_name")).is_empty()
        })
        .last()
        .map_or(0, |i| i + 1)
        + BLANK_ROWS;
    let (action, heading) = match editing {
        Some(id) => (
            format!("/ui/catalogue/{}/edit", enc(id)),
            format!("Edit {}", get(f, "title")),
        ),
        None => (
            "/ui/catalogue/new".to_owned(),
            "Add a test or examination".to_owned(),
        ),
    };
    let field =
        |id: &'static str, label: &'static str, hint: Option<&'static str>, width: &'static str| {
            let mut fd = Field::new(id, label);
            fd.value = get(f, id);
            fd.error = err(id);
            fd.hint = hint;
            fd.width = width;
            layout::input(&fd)
        };
    html! {
        (layout::back_link(&editing.map_or("/ui/catalogue".to_owned(), |id| format!("/ui/catalogue/{}", enc(id))), "Back"))
        h1 { (heading) }
        (layout::error_summary(errors))
        form method="post" action=(action) novalidate data-testid="orderable-form" {
            (layout::csrf(cx))
            @if editing.is_none() {
                (field("id", "Id", Some("A stable identifier, never reused: letters, digits and hyphens, e.g. path-zinc or rad-xr-wrist"), "nhsuk-input--width-20"))
            }
            (field("title", "Name requesters see", None, ""))
            (layout::select("department", "Department", &depts, get(f, "department"), err("department")))
            (layout::radios("code_system", "Code", &[("snomed", "SNOMED CT"), ("local", "Local code (no SNOMED CT concept)")], if get(f, "code_system").is_empty() { "local" } else { get(f, "code_system") }, None))
            (field("code", "Code value", None, "nhsuk-input--width-10"))
            (field("code_display", "Code display name", Some("The concept's name (SNOMED CT fully specified name, or the local name)"), ""))
            (textarea("description", "Advice for requesters (optional)", get(f, "description"), None))
            h2 { "Pathology: specimen" }
            (layout::select("specimen_type", "Specimen type", &specimens, get(f, "specimen_type"), err("specimen_type")))
            (field("container", "Container", Some("As the ward knows it, e.g. EDTA (purple top)"), ""))
            (field("colour", "Cap colour", None, "nhsuk-input--width-10"))
            (field("volume", "Minimum volume (mL)", None, "nhsuk-input--width-5"))
            (textarea("preparation", "Patient preparation (fasting)", get(f, "preparation"), None))
            (textarea("timing", "Timing and handling notes", get(f, "timing"), None))
            h2 { "Radiology" }
            (layout::select("modality", "Modality", &modalities, get(f, "modality"), err("modality")))
            div class="nhsuk-form-group" {
                div class="nhsuk-checkboxes" {
                    div class="nhsuk-checkboxes__item" {
                        input class="nhsuk-checkboxes__input" id="ionising" name="ionising" type="checkbox" value="yes" checked[get(f, "ionising") == "yes"];
                        label class="nhsuk-label nhsuk-checkboxes__label" for="ionising" { "Uses ionising radiation (IR(ME)R justification required)" }
                    }
                }
            }
            (layout::select("questionnaire", "Questions the requester must answer", &questionnaires, get(f, "questionnaire"), err("questionnaire")))
            (field("retest", "Minimum retest interval (hours)", Some("Ordering it again within this time warns of a duplicate. Leave empty for none."), "nhsuk-input--width-5"))
            h2 id="results" { "Results it produces" }
            @if let Some(e) = err("results") {
                p class="nhsuk-error-message" data-testid="results-error" { span class="nhsuk-u-visually-hidden" { "Error: " } (e) }
            }
            p class="nhsuk-hint" { "Reference limits are inclusive; a value below the critical low or above the critical high is critical. Give male and female ranges only where they differ (then leave the general range empty). Delta: the largest change from the patient's previous result that passes technical validation." }
            @for i in 0..rows {
                @let k = |n: &str| format!("a{i}_{n}");
                fieldset class="nhsuk-fieldset nhsuk-u-margin-bottom-4" data-testid={ "analyte-" (i) } {
                    legend class="nhsuk-fieldset__legend nhsuk-fieldset__legend--s" { "Result " (i + 1) }
                    @if let Some(e) = err(&k("code")) { span class="nhsuk-error-message" { (e) } }
                    div class="nhsuk-date-input" {
                        div class="nhsuk-date-input__item" {
                            label class="nhsuk-label nhsuk-date-input__label" for=(k("system")) { "Code system" }
                            select class="nhsuk-select" id=(k("system")) name=(k("system")) {
                                option value="loinc" selected[get(f, &k("system")) != "local"] { "LOINC" }
                                option value="local" selected[get(f, &k("system")) == "local"] { "Local" }
                            }
                        }
                        (small(f, &k("code"), "Code"))
                        div class="nhsuk-date-input__item" {
                            label class="nhsuk-label nhsuk-date-input__label" for=(k("name")) { "Name" }
                            input class="nhsuk-input nhsuk-input--width-20" id=(k("name")) name=(k("name")) type="text" value=(get(f, &k("name"))) autocomplete="off";
                        }
                        (small(f, &k("unit"), "Unit (UCUM)"))
                    }
                    div class="nhsuk-date-input" {
                        (small(f, &k("low"), "Low")) (small(f, &k("high"), "High"))
                        (small(f, &k("mlow"), "Male low")) (small(f, &k("mhigh"), "Male high"))
                        (small(f, &k("flow"), "Female low")) (small(f, &k("fhigh"), "Female high"))
                    }
                    div class="nhsuk-date-input" {
                        (small(f, &k("clow"), "Critical low")) (small(f, &k("chigh"), "Critical high"))
                        (small(f, &k("dabs"), "Delta (absolute)")) (small(f, &k("dpct"), "Delta (%)"))
                    }
                }
            }
            button class="nhsuk-button" data-module="nhsuk-button" type="submit" { @if editing.is_some() { "Save changes" } @else { "Add to the catalogue" } }
        }
    }
}

fn save(cx: &Cx, f: &Form, editing: Option<&str>) -> Response {
    if let Err(r) = refuse_unless_manager(cx) {
        return r;
    }
    let c = match load(cx) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let id = editing.unwrap_or(get(f, "id")).to_owned();
    let title = if editing.is_some() {
        "Edit"
    } else {
        "Add a test or examination"
    };
    let again = |errors: &[(String, String)]| {
        layout::page_with(
            StatusCode::UNPROCESSABLE_ENTITY,
            cx,
            title,
            Nav::Catalogue,
            orderable_form(cx, &c, f, errors, editing),
        )
    };
    let o = match orderable_from_form(f, &c, &id) {
        Ok(o) => o,
        Err(errors) => return again(&errors),
    };
    match catalogue::save_orderable(&cx.svc, cx.access(), &o, editing.is_none()) {
        Ok(()) => see_other(&format!(
            "/ui/catalogue/{}?done={}",
            enc(&id),
            if editing.is_some() { "saved" } else { "added" }
        )),
        Err(CatalogueError::Invalid(m)) => {
            // The rule names what is wrong; results' problems go by the results.
            let at = if m.contains("analyte") {
                "results"
            } else {
                "title"
            };
            again(&[(at.to_owned(), layout::sentence(&m))])
        }
        Err(e) => error_response(&e),
    }
}

/// `GET /ui/catalogue/new`.
pub(crate) async fn new_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, _| {
        if let Err(r) = refuse_unless_manager(cx) {
            return r;
        }
        match load(cx) {
            Ok(c) => layout::page(
                cx,
                "Add a test or examination",
                Nav::Catalogue,
                orderable_form(cx, &c, &Form::new(), &[], None),
            ),
            Err(r) => r,
        }
    })
    .await
}

/// `POST /ui/catalogue/new`.
pub(crate) async fn new_post(State(ui): St, req: Req, body: Bytes) -> Response {
    ui.run(req, Some(&body), move |cx, f| save(cx, &f, None))
        .await
}

/// `GET /ui/catalogue/{id}/edit`.
pub(crate) async fn edit_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, _| {
        if let Err(r) = refuse_unless_manager(cx) {
            return r;
        }
        let c = match load(cx) {
            Ok(c) => c,
            Err(r) => return r,
        };
        match c.orderable(&id) {
            Some(o) => layout::page(
                cx,
                &format!("Edit {}", o.title),
                Nav::Catalogue,
                orderable_form(cx, &c, &form_of(o), &[], Some(&id)),
            ),
            None => error_response(&CatalogueError::NotFound(format!(
                "There is no test or examination with id {id}."
            ))),
        }
    })
    .await
}

/// `POST /ui/catalogue/{id}/edit`.
pub(crate) async fn edit_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| save(cx, &f, Some(&id)))
        .await
}

// ---- order sets ---------------------------------------------------------------------

fn set_form(
    cx: &Cx,
    c: &Catalogue,
    f: &Form,
    errors: &[(String, String)],
    editing: Option<&OrderSet>,
) -> Markup {
    let err = |k: &str| errors.iter().find(|(e, _)| e == k).map(|(_, m)| m.as_str());
    let field = |id: &'static str, label: &'static str, hint: Option<&'static str>| {
        let mut fd = Field::new(id, label);
        fd.value = get(f, id);
        fd.error = err(id);
        fd.hint = hint;
        layout::input(&fd)
    };
    let action = editing.map_or("/ui/catalogue/sets/new".to_owned(), |s| {
        format!("/ui/catalogue/sets/{}", enc(&s.id))
    });
    html! {
        (layout::back_link("/ui/catalogue#sets", "Back to the catalogue"))
        (done_banner(f))
        @match editing {
            Some(s) => { h1 data-testid="set-title" { (s.title) " " (status_tag(s.active)) } }
            None => { h1 { "Add an order set" } }
        }
        (layout::error_summary(errors))
        @if may_change(cx) {
            form method="post" action=(action) novalidate data-testid="set-form" {
                (layout::csrf(cx))
                @if editing.is_none() { (field("id", "Id", Some("Letters, digits and hyphens, e.g. chest-pain"))) }
                (field("title", "Name requesters see", None))
                (textarea("description", "Description (optional)", get(f, "description"), None))
                div class={ "nhsuk-form-group" @if err("tests").is_some() { " nhsuk-form-group--error" } } id="tests" {
                    fieldset class="nhsuk-fieldset" {
                        legend class="nhsuk-fieldset__legend nhsuk-fieldset__legend--s" { "Tests and examinations in the set" }
                        @if let Some(e) = err("tests") { span class="nhsuk-error-message" { (e) } }
                        @for (dept, name) in DEPARTMENTS {
                            @let items: Vec<&Orderable> = c.department(dept).collect();
                            @if !items.is_empty() {
                                h3 class="nhsuk-heading-xs" { (name) }
                                div class="nhsuk-checkboxes" {
                                    @for o in items {
                                        @let k = format!("o:{}", o.id);
                                        div class="nhsuk-checkboxes__item" {
                                            input class="nhsuk-checkboxes__input" id=(k) name=(k) type="checkbox" value="yes" checked[get(f, &k) == "yes"];
                                            label class="nhsuk-label nhsuk-checkboxes__label" for=(k) { (o.title) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                button class="nhsuk-button" data-module="nhsuk-button" type="submit" { @if editing.is_some() { "Save changes" } @else { "Add the order set" } }
            }
            @if let Some(s) = editing {
                @if s.active {
                    (layout::action_button(cx, &format!("/ui/catalogue/sets/{}/retire", enc(&s.id)), "Retire this order set", "nhsuk-button--warning"))
                } @else {
                    (layout::action_button(cx, &format!("/ui/catalogue/sets/{}/reinstate", enc(&s.id)), "Reinstate this order set", "nhsuk-button--secondary"))
                }
            }
        } @else if let Some(s) = editing {
            ul { @for id in &s.orderables { li { (c.orderable(id).map_or(id.as_str(), |o| o.title.as_str())) } } }
        }
    }
}

fn set_form_of(s: &OrderSet) -> Form {
    let mut f = Form::new();
    f.insert("id".into(), s.id.clone());
    f.insert("title".into(), s.title.clone());
    f.insert(
        "description".into(),
        s.description.clone().unwrap_or_default(),
    );
    for o in &s.orderables {
        f.insert(format!("o:{o}"), "yes".into());
    }
    f
}

fn save_set(cx: &Cx, f: &Form, editing: Option<&str>) -> Response {
    if let Err(r) = refuse_unless_manager(cx) {
        return r;
    }
    let c = match load(cx) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let current = editing.and_then(|id| c.set(id)).cloned();
    if editing.is_some() && current.is_none() {
        return error_response(&CatalogueError::NotFound(
            "There is no such order set.".into(),
        ));
    }
    let id = editing.unwrap_or(get(f, "id")).to_owned();
    let mut errors = Errors::new();
    if !catalogue::valid_id(&id) {
        errors.push((
            "id".into(),
            "Enter an id of letters, digits and hyphens".into(),
        ));
    }
    if get(f, "title").is_empty() {
        errors.push(("title".into(), "Enter the name requesters see".into()));
    }
    // In catalogue order, so the set reads as the catalogue does.
    let orderables: Vec<String> = c
        .orderables
        .iter()
        .filter(|o| get(f, &format!("o:{}", o.id)) == "yes")
        .map(|o| o.id.clone())
        .collect();
    if orderables.is_empty() {
        errors.push((
            "tests".into(),
            "Choose at least one test or examination".into(),
        ));
    }
    let again = |errors: &[(String, String)]| {
        layout::page_with(
            StatusCode::UNPROCESSABLE_ENTITY,
            cx,
            "Order set",
            Nav::Catalogue,
            set_form(cx, &c, f, errors, current.as_ref()),
        )
    };
    if !errors.is_empty() {
        return again(&errors);
    }
    let set = OrderSet {
        url: current
            .as_ref()
            .map_or_else(|| format!("{BASE}/PlanDefinition/{id}"), |s| s.url.clone()),
        id: id.clone(),
        title: get(f, "title").to_owned(),
        orderables,
        active: current.as_ref().is_none_or(|s| s.active),
        description: Some(get(f, "description").to_owned()).filter(|s| !s.is_empty()),
    };
    match catalogue::save_order_set(&cx.svc, cx.access(), &set, editing.is_none()) {
        Ok(()) => see_other(&format!(
            "/ui/catalogue/sets/{}?done={}",
            enc(&id),
            if editing.is_some() {
                "set-saved"
            } else {
                "set-added"
            }
        )),
        Err(CatalogueError::Invalid(m)) => again(&[("title".to_owned(), layout::sentence(&m))]),
        Err(e) => error_response(&e),
    }
}

/// `GET /ui/catalogue/sets/new`.
pub(crate) async fn set_new_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, _| {
        if let Err(r) = refuse_unless_manager(cx) {
            return r;
        }
        match load(cx) {
            Ok(c) => layout::page(
                cx,
                "Add an order set",
                Nav::Catalogue,
                set_form(cx, &c, &Form::new(), &[], None),
            ),
            Err(r) => r,
        }
    })
    .await
}

/// `POST /ui/catalogue/sets/new`.
pub(crate) async fn set_new_post(State(ui): St, req: Req, body: Bytes) -> Response {
    ui.run(req, Some(&body), move |cx, f| save_set(cx, &f, None))
        .await
}

/// `GET /ui/catalogue/sets/{id}`: the set, and for managers its form.
pub(crate) async fn set_page(State(ui): St, req: Req, Path(id): Path<String>) -> Response {
    ui.run(req, None, move |cx, q| {
        let c = match load(cx) {
            Ok(c) => c,
            Err(r) => return r,
        };
        let Some(s) = c.set(&id) else {
            return error_response(&CatalogueError::NotFound(format!(
                "There is no order set with id {id}."
            )));
        };
        let mut f = set_form_of(s);
        if let Some(d) = q.get("done") {
            f.insert("done".into(), d.clone());
        }
        layout::page(
            cx,
            &s.title,
            Nav::Catalogue,
            set_form(cx, &c, &f, &[], Some(s)),
        )
    })
    .await
}

/// `POST /ui/catalogue/sets/{id}`.
pub(crate) async fn set_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    ui.run(req, Some(&body), move |cx, f| save_set(cx, &f, Some(&id)))
        .await
}

/// `POST /ui/catalogue/sets/{id}/retire`.
pub(crate) async fn set_retire_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    set_active(ui, req, body, "set", id, false).await
}

/// `POST /ui/catalogue/sets/{id}/reinstate`.
pub(crate) async fn set_reinstate_post(
    State(ui): St,
    req: Req,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    set_active(ui, req, body, "set", id, true).await
}

// ---- import ---------------------------------------------------------------------------

fn import_form(cx: &Cx, errors: &[(String, String)]) -> Markup {
    html! {
        (layout::back_link("/ui/catalogue", "Back to the catalogue"))
        h1 { "Import a catalogue file" }
        p { "A FHIR R4 Bundle (JSON) of Questionnaire, ActivityDefinition and order-set PlanDefinition resources, as a transaction of PUTs or a collection. Every entry is checked first: if any is wrong, nothing is imported and the entry is named. Entries with the id of an existing one replace it." }
        (layout::error_summary(errors))
        form method="post" action="/ui/catalogue/import" enctype="multipart/form-data" novalidate data-testid="import-form" {
            (layout::csrf(cx))
            div class={ "nhsuk-form-group" @if !errors.is_empty() { " nhsuk-form-group--error" } } {
                label class="nhsuk-label" for="bundle" { "Catalogue file (.json)" }
                @if let Some((_, e)) = errors.first() {
                    span class="nhsuk-error-message" id="bundle-error" { span class="nhsuk-u-visually-hidden" { "Error: " } (e) }
                }
                input class="nhsuk-file-upload" id="bundle" name="bundle" type="file" accept=".json,application/json,application/fhir+json"
                    aria-describedby=[(!errors.is_empty()).then_some("bundle-error")];
            }
            button class="nhsuk-button" data-module="nhsuk-button" type="submit" { "Import" }
        }
    }
}

/// `GET /ui/catalogue/import`.
pub(crate) async fn import_page(State(ui): St, req: Req) -> Response {
    ui.run(req, None, move |cx, _| {
        if let Err(r) = refuse_unless_manager(cx) {
            return r;
        }
        layout::page(
            cx,
            "Import a catalogue file",
            Nav::Catalogue,
            import_form(cx, &[]),
        )
    })
    .await
}

/// The largest catalogue file accepted (a trust's whole catalogue is far
/// smaller).
const MAX_FILE: usize = 16 * 1024 * 1024;

/// `POST /ui/catalogue/import` (multipart: `csrf` and the file `bundle`).
pub(crate) async fn import_post(
    State(ui): St,
    req: Req,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    // Not a multipart body: no CSRF token either, so the run refuses it
    // (401 without a session, 403 with one) before the failure is shown.
    let (mut fields, problem) = crate::multipart_fields(multipart, MAX_FILE).await;
    let failure = problem.map(|p| match p {
        crate::UploadProblem::NotMultipart => "Send the file with the form (a multipart upload).",
        crate::UploadProblem::TooLarge => "The file is larger than 16 MB: that is not a catalogue.",
        crate::UploadProblem::Cut => "The upload did not arrive whole. Try again.",
        crate::UploadProblem::Unreadable => "The upload could not be read. Choose the file again.",
    });
    // The CSRF token travels in the multipart body; the run checks it.
    let form = crate::csrf_form(&fields);
    let file = fields.remove("bundle").unwrap_or_default();
    ui.run(req, Some(&form), move |cx, _| {
        if let Err(r) = refuse_unless_manager(cx) {
            return r;
        }
        let again = |m: String| {
            layout::page_with(
                StatusCode::UNPROCESSABLE_ENTITY,
                cx,
                "Import a catalogue file",
                Nav::Catalogue,
                import_form(cx, &[("bundle".to_owned(), m)]),
            )
        };
        if let Some(m) = failure {
            return again(m.to_owned());
        }
        if file.is_empty() {
            return again("Choose the catalogue file to import.".to_owned());
        }
        let bundle: serde_json::Value = match serde_json::from_slice(&file) {
            Ok(b) => b,
            Err(e) => {
                return again(format!(
                    "The file is not JSON (line {}, column {}).",
                    e.line(),
                    e.column()
                ));
            }
        };
        match catalogue::import(&cx.svc, cx.access(), &bundle) {
            Ok(r) => see_other(&format!(
                "/ui/catalogue?done=imported&created={}&updated={}&unchanged={}",
                r.created.len(),
                r.updated.len(),
                r.unchanged.len()
            )),
            Err(CatalogueError::Invalid(m)) => again(layout::sentence(&m)),
            Err(e) => error_response(&e),
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed() -> Catalogue {
        let b = wardline_demo::order_catalogue();
        let of = |t: &str| -> Vec<serde_json::Value> {
            b["entry"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["resource"].clone())
                .filter(|r| r["resourceType"] == t)
                .collect()
        };
        catalogue::from_resources(
            &of("ActivityDefinition"),
            &of("PlanDefinition"),
            &of("Questionnaire"),
        )
    }

    #[test]
    fn every_seed_orderable_survives_the_form() {
        let c = seed();
        for o in &c.orderables {
            let back = orderable_from_form(&form_of(o), &c, &o.id)
                .unwrap_or_else(|e| panic!("{}: {e:?}", o.id));
            let mut want = o.clone();
            // The form writes the code's text as the title and the local
            // analyte system as chosen; compare what it models.
            want.code["text"] = json!(o.title);
            for (a, b) in want.analytes.iter_mut().zip(&back.analytes) {
                a.code = b.code.clone();
            }
            assert_eq!(back, want, "{}", o.id);
        }
    }

    #[test]
    fn intervals_read_as_people_say_them() {
        assert_eq!(retest_text(Some(168)), "1 week");
        assert_eq!(retest_text(Some(48)), "2 days");
        assert_eq!(retest_text(Some(1)), "1 hour");
        assert_eq!(retest_text(Some(2160)), "90 days");
        assert_eq!(retest_text(None), "");
    }

    #[test]
    fn wrong_fields_are_named() {
        let c = seed();
        let mut f = form_of(c.orderable("path-ue").unwrap());
        f.insert("a1_clow".into(), "two".into());
        f.insert("retest".into(), "-3".into());
        f.insert("title".into(), String::new());
        let errors = orderable_from_form(&f, &c, "path-ue").unwrap_err();
        let keys: Vec<&str> = errors.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["title", "retest", "a1_clow"], "{errors:?}");
        assert!(errors[2].1.contains("Result 2 critical low"), "{errors:?}");
    }

    proptest::proptest! {
        /// Whatever is typed into the number boxes, the form either names
        /// the field or reads a finite number.
        #[test]
        fn any_typed_number_is_read_or_named(t in "\\PC{0,12}") {
            let c = seed();
            let mut f = form_of(c.orderable("path-crp").unwrap());
            f.insert("a0_high".into(), t.clone());
            match orderable_from_form(&f, &c, "path-crp") {
                Ok(o) => {
                    let h = o.analytes[0].high;
                    proptest::prop_assert!(h.is_none_or(f64::is_finite));
                    proptest::prop_assert_eq!(h.is_none(), t.trim().is_empty());
                }
                Err(e) => proptest::prop_assert!(e.iter().any(|(k, _)| k == "a0_high")),
            }
        }
    }
}
