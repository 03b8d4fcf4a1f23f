//! The clinical workspace: server-rendered HTML in the NHS design system
//! (`nhsuk-frontend`, vendored under `assets/nhsuk` by
//! `scripts/vendor-nhsuk.sh` and embedded in the binary).
//!
//! Every page is a thin view over `wardline-workflow`: a handler checks the
//! web session, builds the caller's [`Access`] (the same policy as the FHIR
//! API), calls one workflow function on a blocking thread and renders the
//! result. Rules live in the workflows, never here. Forms post back with the
//! session's CSRF token and redirect (post/redirect/get); errors are plain
//! sentences on an error page or beside the field, never a stack trace.
//!
//! The router is mounted by `wardline-http` under `/ui` ([`ROUTES`] lists
//! what it serves, for the route sweep). Without a session a page redirects
//! to `/auth/login?next=…`; a form post without one answers 401.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
// Helpers return `Result<T, Response>` so a handler can `?`-style return the
// error page it built; the page is the error, and it is large by nature.
#![allow(clippy::result_large_err)]

mod access;
mod adt;
mod assets;
mod beds;
mod catalogue;
mod chart;
mod chemo;
mod consent;
mod cumulative;
mod discharge;
mod formulary;
mod lab;
mod layout;
mod letters;
mod mar;
mod medicines;
mod merge;
mod notes;
mod orders;
mod patients;
mod pharmacy;
// issue 18: referrals
mod referrals;
mod results;
mod routes;
mod social_care;
mod transfers;
// issue 19: planned care
mod forms;
mod outpatients;
mod rtt;
mod theatres;
mod waiting;
// issue 20: news2
mod observations;
// end of issue 20: news2
// issue 20: ed
mod ed;
// end of issue 20: ed
// issue 20: alerts
mod alerts;
// end of issue 20: alerts
// issue 20: tasks
mod tasks;
// end of issue 20: tasks
// issue 20: forms
mod clinical_forms;
// end of issue 20: forms
// issue 22: downtime
pub mod downtime_report;
// end of issue 22: downtime

use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use wardline_auth::directory::Directory;
use wardline_auth::pkce;
use wardline_auth::policy::{Policy, Principal};
use wardline_auth::rbac::Role;
use wardline_auth_server::session::{self, Session};
use wardline_core::{Access, FhirService};

pub use layout::Nav;

pub use routes::{ROUTES, UiRoute};

/// The UI's shared state.
#[derive(Clone)]
pub(crate) struct Ui {
    pub svc: Arc<FhirService>,
    pub dir: Arc<Directory>,
}

/// The web UI router (paths below `/ui`; `wardline-http` nests it).
pub fn router(svc: Arc<FhirService>, dir: Arc<Directory>) -> Router {
    let ui = Ui { svc, dir };
    Router::new()
        .route("/", get(|| async { see_other("/ui/patients") }))
        .route("/patients", get(patients::search_page))
        .route(
            "/patients/new",
            get(patients::register_page).post(patients::register_post),
        )
        .route("/patients/{id}", get(chart::chart_page))
        .route(
            "/patients/{id}/admit",
            get(adt::admit_page).post(adt::admit_post),
        )
        .route("/patients/{id}/unmerge", post(merge::unmerge_post))
        .route(
            "/patients/{id}/break-glass",
            get(access::break_glass_page).post(access::break_glass_post),
        )
        .route(
            "/patients/{id}/consent",
            get(consent::form_page).post(consent::form_post),
        )
        .route(
            "/patients/{id}/consent/{consent}/withdraw",
            post(consent::withdraw_post),
        )
        .route("/break-glass", get(access::reviews_page))
        .route(
            "/encounters/{id}/transfer",
            get(adt::transfer_page).post(adt::transfer_post),
        )
        .route(
            "/encounters/{id}/discharge",
            get(adt::discharge_page).post(adt::discharge_post),
        )
        .route("/encounters/{id}/cancel", post(adt::cancel_post))
        .route("/duplicates", get(merge::queue_page))
        .route("/duplicates/scan", post(merge::scan_post))
        .route("/duplicates/{task}/dismiss", post(merge::dismiss_post))
        .route("/merge", get(merge::confirm_page).post(merge::merge_post))
        .route("/beds", get(beds::sites_page))
        .route("/beds/{ward}", get(beds::ward_page))
        .route(
            "/beds/{ward}/{bed}/state",
            get(beds::bed_state_page).post(beds::bed_state_post),
        )
        // ── issue 16: the order catalogue (catalogue.rs) ──
        .route("/catalogue", get(catalogue::list_page))
        .route(
            "/catalogue/new",
            get(catalogue::new_page).post(catalogue::new_post),
        )
        .route(
            "/catalogue/import",
            get(catalogue::import_page).post(catalogue::import_post),
        )
        .route(
            "/catalogue/sets/new",
            get(catalogue::set_new_page).post(catalogue::set_new_post),
        )
        .route(
            "/catalogue/sets/{id}",
            get(catalogue::set_page).post(catalogue::set_post),
        )
        .route(
            "/catalogue/sets/{id}/retire",
            post(catalogue::set_retire_post),
        )
        .route(
            "/catalogue/sets/{id}/reinstate",
            post(catalogue::set_reinstate_post),
        )
        .route("/catalogue/{id}", get(catalogue::view_page))
        .route(
            "/catalogue/{id}/edit",
            get(catalogue::edit_page).post(catalogue::edit_post),
        )
        .route("/catalogue/{id}/retire", post(catalogue::retire_post))
        .route("/catalogue/{id}/reinstate", post(catalogue::reinstate_post))
        // ── issue 16: requesting, specimen labels (orders.rs) ──
        .route(
            "/patients/{id}/order",
            get(orders::order_page).post(orders::order_post),
        )
        .route("/requisitions/{requisition}", get(orders::requisition_page))
        .route(
            "/requisitions/{requisition}/cancel",
            post(orders::cancel_post),
        )
        .route(
            "/requisitions/{requisition}/labels",
            get(orders::labels_page),
        )
        // ── issue 16: results inbox, result view, cumulative view (results.rs) ──
        .route("/results", get(results::inbox_page))
        .route("/results/{task}", get(results::result_page))
        .route(
            "/results/{task}/acknowledge",
            post(results::acknowledge_post),
        )
        // ── issue 16: unmatched results worklist (results.rs) ──
        .route("/patients/{id}/results", get(cumulative::cumulative_page))
        .route("/results/unmatched", get(cumulative::worklist_page))
        .route(
            "/results/unmatched/{report}",
            get(cumulative::match_page).post(cumulative::match_post),
        )
        // ── issue 16: the laboratory and radiology (lab.rs) ──
        .route("/lab", get(lab::lab_page))
        .route("/lab/receive", post(lab::receive_post))
        .route("/lab/import", post(lab::import_post))
        .route("/lab/reports/{id}", get(lab::report_page))
        .route("/lab/reports/{id}/results", post(lab::results_post))
        .route("/lab/reports/{id}/validate", post(lab::validate_post))
        .route("/lab/reports/{id}/authorise", post(lab::authorise_post))
        .route("/lab/turnaround", get(lab::turnaround_page))
        .route("/radiology", get(lab::radiology_page))
        .route("/radiology/{id}/justify", post(lab::justify_post))
        // ── end of issue 16 ──
        // ── issue 17: formulary ──
        .route("/formulary", get(formulary::list_page))
        .route(
            "/formulary/import",
            get(formulary::import_page).post(formulary::import_post),
        )
        .route("/formulary/{id}", get(formulary::view_page))
        // ── end of issue 17: formulary ──
        // ── issue 17: prescribing ──
        .route("/patients/{id}/medicines", get(medicines::chart_page))
        .route(
            "/patients/{id}/medicines/new",
            get(medicines::new_page).post(medicines::new_post),
        )
        .route("/prescriptions/{id}", get(medicines::detail_page))
        .route(
            "/prescriptions/{id}/change",
            get(medicines::change_page).post(medicines::change_post),
        )
        .route(
            "/prescriptions/{id}/discontinue",
            post(medicines::discontinue_post),
        )
        // ── end of issue 17: prescribing ──
        // ── issue 17: screening ──
        .route("/pharmacy", get(pharmacy::worklist_page))
        .route(
            "/pharmacy/prescriptions/{id}",
            get(pharmacy::prescription_page),
        )
        .route(
            "/pharmacy/prescriptions/{id}/screen",
            post(pharmacy::screen_post),
        )
        .route(
            "/pharmacy/prescriptions/{id}/annotate",
            post(pharmacy::annotate_post),
        )
        .route(
            "/pharmacy/prescriptions/{id}/query",
            post(pharmacy::query_post),
        )
        .route("/pharmacy/queries", get(pharmacy::queries_page))
        .route(
            "/pharmacy/queries/{task}/answer",
            post(pharmacy::answer_post),
        )
        .route(
            "/encounters/{id}/discharge-medicines",
            get(pharmacy::discharge_page),
        )
        // ── end of issue 17: screening ──
        // ── issue 17: mar ──
        .route("/drug-round", get(mar::my_round_page))
        .route("/wards/{ward}/drug-round", get(mar::round_page))
        .route("/patients/{id}/mar", get(mar::mar_page))
        .route("/patients/{id}/mar/{request}/dose", get(mar::dose_page))
        .route("/patients/{id}/mar/{request}/give", post(mar::give_post))
        .route("/patients/{id}/mar/{request}/omit", post(mar::omit_post))
        // ── end of issue 17: mar ──
        // ── issue 17: chemotherapy ──
        .route(
            "/patients/{id}/chemotherapy",
            get(chemo::patient_chemo_page).post(chemo::prescribe_post),
        )
        .route("/chemotherapy/{id}", get(chemo::cycle_page))
        .route("/chemotherapy/{id}/verify", post(chemo::verify_post))
        .route("/chemotherapy/{id}/release", post(chemo::release_post))
        .route("/chemotherapy/{id}/delay", post(chemo::delay_post))
        .route("/chemotherapy/{id}/revoke", post(chemo::revoke_post))
        // ── end of issue 17: chemotherapy ──
        // ── issue 18: notes ──
        .route(
            "/patients/{id}/notes",
            get(notes::list_page).post(notes::create_post),
        )
        .route("/patients/{id}/notes/new", get(notes::new_page))
        .route("/notes/{id}", get(notes::note_page))
        .route("/notes/{id}/edit", post(notes::edit_post))
        .route("/notes/{id}/sign", post(notes::sign_post))
        .route("/notes/{id}/amend", post(notes::amend_post))
        .route("/notes/{id}/error", post(notes::error_post))
        .route("/notes/{id}/entries", post(notes::entry_post))
        .route("/notes/{id}/entries/correct", post(notes::correct_post))
        // ── end of issue 18: notes ──
        // ── issue 18: discharge ──
        .route(
            "/encounters/{id}/discharge-summary",
            get(discharge::encounter_page::<discharge::Summaries>)
                .post(discharge::start_post::<discharge::Summaries>),
        )
        .route(
            "/discharge-summaries/{id}",
            get(discharge::summary_page::<discharge::Summaries>),
        )
        .route(
            "/discharge-summaries/{id}/edit",
            get(discharge::edit_page::<discharge::Summaries>)
                .post(discharge::edit_post::<discharge::Summaries>),
        )
        .route(
            "/discharge-summaries/{id}/sign",
            post(discharge::sign_post::<discharge::Summaries>),
        )
        .route(
            "/discharge-summaries/{id}/amend",
            get(discharge::amend_page::<discharge::Summaries>)
                .post(discharge::amend_post::<discharge::Summaries>),
        )
        .route(
            "/discharge-summaries/{id}/pdf",
            get(discharge::pdf_page::<discharge::Summaries>),
        )
        // ── end of issue 18: discharge ──
        // ── issue 18: transfers ──
        .route("/transfers", get(transfers::dashboard_page))
        .route("/transfers/routing", get(transfers::routing_page))
        .route(
            "/transfers/routing/{org}",
            get(transfers::routing_edit_page).post(transfers::routing_post),
        )
        // ── end of issue 18: transfers ──
        // ── issue 18: letters ──
        .route("/patients/{id}/clinic-letters", get(letters::patient_page))
        .route(
            "/patients/{id}/letter-preference",
            post(letters::preference_post),
        )
        .route(
            "/encounters/{id}/clinic-letter",
            get(discharge::encounter_page::<letters::Letters>)
                .post(discharge::start_post::<letters::Letters>),
        )
        .route(
            "/clinic-letters/{id}",
            get(discharge::summary_page::<letters::Letters>),
        )
        .route(
            "/clinic-letters/{id}/edit",
            get(discharge::edit_page::<letters::Letters>)
                .post(discharge::edit_post::<letters::Letters>),
        )
        .route(
            "/clinic-letters/{id}/sign",
            post(discharge::sign_post::<letters::Letters>),
        )
        .route(
            "/clinic-letters/{id}/amend",
            get(discharge::amend_page::<letters::Letters>)
                .post(discharge::amend_post::<letters::Letters>),
        )
        .route(
            "/clinic-letters/{id}/pdf",
            get(discharge::pdf_page::<letters::Letters>),
        )
        .route("/letter-printing", get(letters::print_page))
        .route("/letter-printing/{task}/done", post(letters::printed_post))
        // ── end of issue 18: letters ──
        // ── issue 18: referrals ──
        .route("/referrals", get(referrals::out_page))
        .route("/referrals/triage", get(referrals::triage_page))
        .route(
            "/patients/{id}/referrals",
            get(referrals::patient_page).post(referrals::create_post),
        )
        .route("/patients/{id}/referrals/new", get(referrals::new_page))
        .route(
            "/patients/{id}/referrals/upload",
            post(referrals::upload_post),
        )
        .route("/referrals/{id}", get(referrals::referral_page))
        .route("/referrals/{id}/send", post(referrals::send_post))
        .route("/referrals/{id}/retry", post(referrals::retry_post))
        .route("/referrals/{id}/cancel", post(referrals::cancel_post))
        .route("/referrals/{id}/reject", post(referrals::reject_post))
        // ── end of issue 18: referrals ──
        // ── issue 18: social ──
        .route("/social-care", get(social_care::worklist_page))
        .route("/encounters/{id}/social-care", get(social_care::case_page))
        .route(
            "/encounters/{id}/social-care/assessment",
            post(social_care::assessment_post),
        )
        .route(
            "/encounters/{id}/social-care/discharge",
            post(social_care::discharge_post),
        )
        .route(
            "/encounters/{id}/social-care/withdraw",
            get(social_care::withdraw_page).post(social_care::withdraw_post),
        )
        // ── end of issue 18: social ──
        // ── issue 19: rtt ──
        .route("/referrals/{id}/triage", get(rtt::triage_page))
        .route("/referrals/{id}/triage/accept", post(rtt::accept_post))
        .route("/referrals/{id}/triage/redirect", post(rtt::redirect_post))
        .route("/patients/{id}/referrals/in/new", get(rtt::intake_page))
        .route("/patients/{id}/referrals/in", post(rtt::intake_post))
        .route("/patients/{id}/pathways", get(rtt::patient_page))
        .route("/rtt/pathways/{id}", get(rtt::pathway_page))
        .route("/rtt/pathways/{id}/events", post(rtt::event_post))
        .route("/rtt/ptl", get(rtt::ptl_page))
        .route("/rtt/ptl.csv", get(rtt::ptl_csv))
        .route("/waiting-lists", get(waiting::lists_page))
        .route("/waiting-lists/validation", get(waiting::validation_page))
        .route("/waiting-lists/entries/{id}", get(waiting::entry_page))
        .route(
            "/waiting-lists/entries/{id}/suspend",
            post(waiting::suspend_post),
        )
        .route(
            "/waiting-lists/entries/{id}/resume",
            post(waiting::resume_post),
        )
        .route(
            "/waiting-lists/entries/{id}/remove",
            post(waiting::remove_post),
        )
        .route(
            "/waiting-lists/entries/{id}/validate",
            post(waiting::validate_post),
        )
        .route("/patients/{id}/waiting-lists/new", get(waiting::add_page))
        .route("/patients/{id}/waiting-lists", post(waiting::add_post))
        // ── end of issue 19: rtt ──
        // ── issue 19: clinics ──
        .merge(outpatients::routes())
        // ── end of issue 19: clinics ──
        // ── issue 19: theatres ──
        .merge(theatres::routes())
        // ── end of issue 19: theatres ──
        // ── issue 20: news2 ──
        .merge(observations::routes())
        // ── end of issue 20: news2 ──
        // ── issue 20: ed ──
        .merge(ed::routes())
        // ── end of issue 20: ed ──
        // ── issue 20: alerts ──
        .merge(alerts::routes())
        // ── end of issue 20: alerts ──
        // ── issue 20: tasks ──
        .merge(tasks::routes())
        // ── end of issue 20: tasks ──
        // ── issue 20: forms ──
        .merge(clinical_forms::routes())
        // ── end of issue 20: forms ──
        // ── issue 18: access ──
        // ── end of issue 18: access ──
        .route("/events", get(beds::events))
        .route("/static/{*file}", get(assets::serve))
        .fallback(|| async {
            layout::error_page(
                StatusCode::NOT_FOUND,
                "Page not found",
                "There is no page at this address. Check it, or use the menu.",
            )
        })
        // Issue 22: downtime.
        .layer(axum::middleware::from_fn_with_state(
            ui.clone(),
            downtime_guard,
        ))
        .with_state(ui)
}

/// Issue 22: read-only downtime. Keeps the pages' view of the switch fresh
/// (read at most once a second, on a blocking thread), and refuses every
/// form post while downtime lasts with a page saying nothing was saved
/// (503) — before any handler runs, so no form half-does anything. A
/// break-glass declaration is still taken: it only records why the user
/// looks, which reading in downtime needs. The core refuses every write
/// anyway (`wardline_core::downtime`); this is the page that says so.
async fn downtime_guard(
    State(ui): State<Ui>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if ui.svc.downtime_is_stale() {
        let svc = ui.svc.clone();
        let _ = tokio::task::spawn_blocking(move || svc.refresh_downtime_if_stale()).await;
    }
    let write = req.method() == Method::POST && !req.uri().path().ends_with("/break-glass");
    if write && ui.svc.downtime().is_some() {
        return layout::downtime_page(&ui.svc);
    }
    next.run(req).await
}

pub(crate) fn see_other(location: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, location.to_owned())],
        String::new(),
    )
        .into_response()
}

/// What a UI handler knows about its request before the session is checked.
pub(crate) struct Req {
    pub method: Method,
    /// Path and query as the browser asked for them (`/ui/...`).
    pub target: String,
    pub headers: HeaderMap,
    pub peer: Option<IpAddr>,
}

impl<S: Send + Sync> FromRequestParts<S> for Req {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Req, Self::Rejection> {
        let wardline_auth_server::Peer(peer) =
            wardline_auth_server::Peer::from_request_parts(parts, state)
                .await
                .unwrap_or(wardline_auth_server::Peer(None));
        // Nested under /ui: the original URI keeps the prefix.
        let uri = parts
            .extensions
            .get::<axum::extract::OriginalUri>()
            .map(|o| o.0.clone())
            .unwrap_or_else(|| parts.uri.clone());
        Ok(Req {
            method: parts.method.clone(),
            target: uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| "/ui/".into()),
            headers: parts.headers.clone(),
            peer,
        })
    }
}

/// A signed-in request: who, in which position, and their access.
pub(crate) struct Cx {
    pub svc: Arc<FhirService>,
    pub dir: Arc<Directory>,
    pub access: Box<dyn Access>,
    /// Who is signed in, as the policy sees them (break-glass is asked
    /// for in their name).
    pub principal: Principal,
    /// The role of the position acted in.
    pub role: Option<Role>,
    pub session: Session,
    /// "Staff Nurse at Cedar Ward" (`Directory::position_label`).
    pub position: String,
}

impl Cx {
    pub fn access(&self) -> &dyn Access {
        &*self.access
    }

    /// Whether the position acted in may do `a`: pages offer only the
    /// actions the user's position allows (the core still decides each
    /// request).
    pub fn may(&self, a: wardline_auth::rbac::Activity) -> bool {
        self.role.is_some_and(|r| r.has(a))
    }
}

pub(crate) use forms::{
    Form, UploadProblem, csrf_form, enc, fhir_error, multipart_fields, parse_form, query_of,
};

impl Ui {
    /// Runs `f` for a signed-in user on a blocking thread. `form` is the
    /// posted body of a POST, whose `csrf` field must match the session.
    pub(crate) async fn run(
        &self,
        req: Req,
        form: Option<&Bytes>,
        f: impl FnOnce(&Cx, Form) -> Response + Send + 'static,
    ) -> Response {
        let ui = self.clone();
        let form = form.map(|b| parse_form(b));
        tokio::task::spawn_blocking(move || ui.run_blocking(req, form, f))
            .await
            .unwrap_or_else(|_| {
                layout::error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "Wardline could not finish this request. Try again; if it keeps happening, tell the service desk.",
                )
            })
    }

    fn run_blocking(
        &self,
        req: Req,
        form: Option<Form>,
        f: impl FnOnce(&Cx, Form) -> Response,
    ) -> Response {
        let session = match session::session_user(&self.dir, &req.headers) {
            Ok(Some(s)) => s,
            Ok(None) => {
                if req.method == Method::GET || req.method == Method::HEAD {
                    let next: String =
                        form_urlencoded::byte_serialize(req.target.as_bytes()).collect();
                    return see_other(&format!("/auth/login?next={next}"));
                }
                return layout::error_page(
                    StatusCode::UNAUTHORIZED,
                    "Sign in again",
                    "Your session has ended, so this was not saved. Sign in again and repeat it.",
                );
            }
            Err(e) => return layout::fhir_error_page(&e),
        };
        let form = match form {
            Some(fm) => {
                let ok = fm
                    .get("csrf")
                    .is_some_and(|c| pkce::constant_time_eq(c.as_bytes(), session.csrf.as_bytes()));
                if !ok {
                    return layout::error_page(
                        StatusCode::FORBIDDEN,
                        "This form has expired",
                        "The form could not be checked (it may be from an earlier session, or from another site). Go back, reload the page and try again.",
                    );
                }
                fm
            }
            None => query_of(&req.target),
        };
        // The session is checked; the CSRF token too for posts: authenticate
        // as a safe request.
        let principal = match wardline_auth_server::principal_for(
            &self.dir,
            Some(&Method::GET),
            &req.headers,
            req.peer,
        ) {
            Ok(p) => p,
            Err(e) => return layout::fhir_error_page(&e),
        };
        let role = principal.position.as_ref().map(|p| p.role);
        let position = principal
            .position
            .as_ref()
            .map(|p| self.dir.position_label(p))
            .unwrap_or_default();
        let cx = Cx {
            svc: self.svc.clone(),
            dir: self.dir.clone(),
            access: Box::new(Policy::new(principal.clone(), self.dir.clone())),
            principal,
            role,
            session,
            position,
        };
        f(&cx, form)
    }
}

/// `State` + `Req` + optional body: the arguments of every page handler.
pub(crate) type St = State<Ui>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for r in ROUTES {
            assert!(r.path.starts_with("/ui/"), "{r:?}");
            assert!(seen.insert((r.method, r.path)), "listed twice: {r:?}");
        }
    }

    #[test]
    fn the_three_date_fields_are_read_as_one_date() {
        let f = parse_form(b"birth_date-day=7&birth_date-month=3&birth_date-year=1961&x=1");
        assert_eq!(f["birth_date"], "1961-03-07");
        let f = parse_form(b"d-day=31&d-month=2&d-year=2024");
        assert_eq!(f["d"], "2024-02-31", "left for the domain's calendar check");
        let f = parse_form(b"d-day=&d-month=&d-year=");
        assert_eq!(f["d"], "");
        let f = parse_form(b"d-day=7&d-month=March&d-year=61");
        assert_eq!(f["d"], "61-March-7", "as typed, refused by the domain");
        // Shown again as typed: a wrong month in full, a day without its zero.
        let html = layout::input(&layout::Field {
            kind: "date",
            value: &parse_form(b"d-day=07&d-month=March&d-year=61")["d"],
            ..layout::Field::new("d", "Date")
        })
        .into_string();
        assert!(
            html.contains(r#"name="d-month" type="text" inputmode="numeric" value="March""#),
            "{html}"
        );
        assert!(
            html.contains(r#"name="d-day" type="text" inputmode="numeric" value="7""#),
            "{html}"
        );
        assert!(
            html.contains(r#"name="d-year" type="text" inputmode="numeric" value="61""#),
            "{html}"
        );
        // A single value sent as such is kept.
        let f = parse_form(b"d=2020-01-02&d-day=&d-month=&d-year=");
        assert_eq!(f["d"], "2020-01-02");
    }

    #[test]
    fn forms_and_queries_parse() {
        let f = parse_form(b"a=1&b=x+y&csrf=%2F");
        assert_eq!(f["b"], "x y");
        assert_eq!(f["csrf"], "/");
        assert_eq!(query_of("/ui/patients?q=smith")["q"], "smith");
        assert!(query_of("/ui/patients").is_empty());
    }
}
