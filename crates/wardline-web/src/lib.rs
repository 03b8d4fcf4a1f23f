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

/// One page or action of the UI (paths relative to the server root).
#[derive(Clone, Copy, Debug)]
pub struct UiRoute {
    pub method: &'static str,
    pub path: &'static str,
    pub what: &'static str,
}

const fn r(method: &'static str, path: &'static str, what: &'static str) -> UiRoute {
    UiRoute { method, path, what }
}

/// Everything the UI serves. All of it needs a signed-in session: GETs
/// redirect to the sign-in page without one, POSTs answer 401, and POSTs
/// need the session's CSRF token (403 without it).
pub const ROUTES: &[UiRoute] = &[
    r("GET", "/ui/", "home: redirects to patient search"),
    r("GET", "/ui/patients", "find a patient"),
    r("GET", "/ui/patients/new", "register a patient"),
    r("POST", "/ui/patients/new", "register a patient"),
    r("GET", "/ui/patients/{id}", "chart summary and banner"),
    r("GET", "/ui/patients/{id}/admit", "admit to a bed"),
    r("POST", "/ui/patients/{id}/admit", "admit to a bed"),
    r(
        "GET",
        "/ui/encounters/{id}/transfer",
        "transfer to another bed",
    ),
    r(
        "POST",
        "/ui/encounters/{id}/transfer",
        "transfer to another bed",
    ),
    r("GET", "/ui/encounters/{id}/discharge", "discharge"),
    r("POST", "/ui/encounters/{id}/discharge", "discharge"),
    r(
        "POST",
        "/ui/encounters/{id}/cancel",
        "cancel the last ADT event",
    ),
    r(
        "GET",
        "/ui/patients/{id}/break-glass",
        "emergency access (break-glass): reason and time limit",
    ),
    r(
        "POST",
        "/ui/patients/{id}/break-glass",
        "emergency access (break-glass): audited, raised for review",
    ),
    r(
        "GET",
        "/ui/patients/{id}/consent",
        "record a consent decision",
    ),
    r(
        "POST",
        "/ui/patients/{id}/consent",
        "record a consent decision",
    ),
    r(
        "POST",
        "/ui/patients/{id}/consent/{consent}/withdraw",
        "withdraw a consent decision",
    ),
    r(
        "GET",
        "/ui/break-glass",
        "break-glass uses to review (information governance)",
    ),
    r("GET", "/ui/duplicates", "possible duplicates to review"),
    r("POST", "/ui/duplicates/scan", "look for duplicates now"),
    r(
        "POST",
        "/ui/duplicates/{task}/dismiss",
        "not the same person",
    ),
    r("GET", "/ui/merge", "confirm a merge"),
    r("POST", "/ui/merge", "merge two records"),
    r("POST", "/ui/patients/{id}/unmerge", "undo a merge"),
    r("GET", "/ui/beds", "bed state by site and ward"),
    r("GET", "/ui/beds/{ward}", "the ward's bed board (live)"),
    r(
        "GET",
        "/ui/beds/{ward}/{bed}/state",
        "close or block a bed: the reason, confirmed",
    ),
    r(
        "POST",
        "/ui/beds/{ward}/{bed}/state",
        "bed cleaned, closed, blocked",
    ),
    // ── issue 16: the order catalogue (catalogue.rs) ──
    r(
        "GET",
        "/ui/catalogue",
        "the order catalogue by department, and order sets",
    ),
    r("GET", "/ui/catalogue/new", "add a test or examination"),
    r("POST", "/ui/catalogue/new", "add a test or examination"),
    r("GET", "/ui/catalogue/import", "import a catalogue Bundle"),
    r(
        "POST",
        "/ui/catalogue/import",
        "import a catalogue Bundle (file upload)",
    ),
    r("GET", "/ui/catalogue/sets/new", "add an order set"),
    r("POST", "/ui/catalogue/sets/new", "add an order set"),
    r(
        "GET",
        "/ui/catalogue/sets/{id}",
        "an order set (and its form)",
    ),
    r("POST", "/ui/catalogue/sets/{id}", "change an order set"),
    r(
        "POST",
        "/ui/catalogue/sets/{id}/retire",
        "retire an order set",
    ),
    r(
        "POST",
        "/ui/catalogue/sets/{id}/reinstate",
        "reinstate an order set",
    ),
    r("GET", "/ui/catalogue/{id}", "a test or examination"),
    r(
        "GET",
        "/ui/catalogue/{id}/edit",
        "edit a test or examination",
    ),
    r(
        "POST",
        "/ui/catalogue/{id}/edit",
        "edit a test or examination",
    ),
    r(
        "POST",
        "/ui/catalogue/{id}/retire",
        "retire a test or examination",
    ),
    r(
        "POST",
        "/ui/catalogue/{id}/reinstate",
        "reinstate a test or examination",
    ),
    // ── issue 16: requesting, specimen labels (orders.rs) ──
    r("GET", "/ui/patients/{id}/order", "order tests and imaging"),
    r("POST", "/ui/patients/{id}/order", "order tests and imaging"),
    r(
        "GET",
        "/ui/requisitions/{requisition}",
        "a requisition: its tests, status and tubes",
    ),
    r(
        "POST",
        "/ui/requisitions/{requisition}/cancel",
        "cancel a test of a requisition",
    ),
    r(
        "GET",
        "/ui/requisitions/{requisition}/labels",
        "printable specimen labels with barcodes",
    ),
    // ── issue 16: results inbox, result view, cumulative view (results.rs) ──
    r(
        "GET",
        "/ui/results",
        "results inbox: critical and new first; team escalations",
    ),
    r(
        "GET",
        "/ui/results/{task}",
        "a result: ranges, flags, earlier values (marks it read)",
    ),
    r(
        "POST",
        "/ui/results/{task}/acknowledge",
        "acknowledge a result with an outcome",
    ),
    // ── issue 16: unmatched results worklist (results.rs) ──
    r(
        "GET",
        "/ui/patients/{id}/results",
        "cumulative results: table and trend charts",
    ),
    r("GET", "/ui/results/unmatched", "unmatched results worklist"),
    r(
        "GET",
        "/ui/results/unmatched/{report}",
        "match an unmatched result",
    ),
    r(
        "POST",
        "/ui/results/unmatched/{report}",
        "match an unmatched result",
    ),
    // ── issue 16: the laboratory and radiology (lab.rs) ──
    r(
        "GET",
        "/ui/lab",
        "laboratory: receive a specimen by its barcode; the bench worklist",
    ),
    r(
        "POST",
        "/ui/lab/receive",
        "receive a specimen by its barcode",
    ),
    r("POST", "/ui/lab/import", "enter an analyser's results file"),
    r(
        "GET",
        "/ui/lab/reports/{id}",
        "a laboratory report: enter, validate, authorise",
    ),
    r("POST", "/ui/lab/reports/{id}/results", "enter results"),
    r(
        "POST",
        "/ui/lab/reports/{id}/validate",
        "technical validation with delta checks",
    ),
    r(
        "POST",
        "/ui/lab/reports/{id}/authorise",
        "authorise and release a report",
    ),
    r("GET", "/ui/lab/turnaround", "turnaround times per test"),
    r(
        "GET",
        "/ui/radiology",
        "imaging requests to justify (IR(ME)R)",
    ),
    r(
        "POST",
        "/ui/radiology/{id}/justify",
        "record an IR(ME)R justification",
    ),
    // ── end of issue 16 ──
    // ── issue 17: formulary ──
    r(
        "GET",
        "/ui/formulary",
        "the formulary: search the medicines",
    ),
    r("GET", "/ui/formulary/import", "import a formulary file"),
    r(
        "POST",
        "/ui/formulary/import",
        "import a formulary file (upload or paste)",
    ),
    r("GET", "/ui/formulary/{id}", "a medicine of the formulary"),
    // ── end of issue 17: formulary ──
    // ── issue 17: prescribing ──
    r("GET", "/ui/patients/{id}/medicines", "the drug chart"),
    r("GET", "/ui/patients/{id}/medicines/new", "prescribe"),
    r("POST", "/ui/patients/{id}/medicines/new", "prescribe"),
    r("GET", "/ui/prescriptions/{id}", "a prescription"),
    r(
        "GET",
        "/ui/prescriptions/{id}/change",
        "change a prescription",
    ),
    r(
        "POST",
        "/ui/prescriptions/{id}/change",
        "change a prescription",
    ),
    r(
        "POST",
        "/ui/prescriptions/{id}/discontinue",
        "discontinue a prescription",
    ),
    // ── end of issue 17: prescribing ──
    // ── issue 17: screening ──
    r(
        "GET",
        "/ui/pharmacy",
        "the pharmacist's screening worklist, by ward",
    ),
    r(
        "GET",
        "/ui/pharmacy/prescriptions/{id}",
        "one prescription to screen, annotate or query",
    ),
    r(
        "POST",
        "/ui/pharmacy/prescriptions/{id}/screen",
        "mark a prescription screened",
    ),
    r(
        "POST",
        "/ui/pharmacy/prescriptions/{id}/annotate",
        "annotate a prescription",
    ),
    r(
        "POST",
        "/ui/pharmacy/prescriptions/{id}/query",
        "query a prescription with its prescriber",
    ),
    r(
        "GET",
        "/ui/pharmacy/queries",
        "the prescriber's open pharmacy queries",
    ),
    r(
        "POST",
        "/ui/pharmacy/queries/{task}/answer",
        "answer a pharmacy query",
    ),
    r(
        "GET",
        "/ui/encounters/{id}/discharge-medicines",
        "an admission's discharge medicines (TTO)",
    ),
    // ── end of issue 17: screening ──
    // ── issue 17: mar ──
    r(
        "GET",
        "/ui/drug-round",
        "the signed-in nurse's ward's drug round",
    ),
    r(
        "GET",
        "/ui/wards/{ward}/drug-round",
        "a ward's drug round: due, overdue, given",
    ),
    r(
        "GET",
        "/ui/patients/{id}/mar",
        "the medication administration record",
    ),
    r(
        "GET",
        "/ui/patients/{id}/mar/{request}/dose",
        "give or omit a dose",
    ),
    r(
        "POST",
        "/ui/patients/{id}/mar/{request}/give",
        "record a dose given (witness for a controlled drug)",
    ),
    r(
        "POST",
        "/ui/patients/{id}/mar/{request}/omit",
        "record a dose not given, with its reason",
    ),
    // ── end of issue 17: mar ──
    // ── issue 17: chemotherapy ──
    r(
        "GET",
        "/ui/patients/{id}/chemotherapy",
        "a patient's chemotherapy cycles; prescribe a cycle",
    ),
    r(
        "POST",
        "/ui/patients/{id}/chemotherapy",
        "prescribe a chemotherapy cycle",
    ),
    r(
        "GET",
        "/ui/chemotherapy/{id}",
        "a chemotherapy cycle: doses, checks, verification",
    ),
    r(
        "POST",
        "/ui/chemotherapy/{id}/verify",
        "verify a chemotherapy cycle",
    ),
    r(
        "POST",
        "/ui/chemotherapy/{id}/release",
        "release a chemotherapy cycle",
    ),
    r(
        "POST",
        "/ui/chemotherapy/{id}/delay",
        "delay a chemotherapy cycle",
    ),
    r(
        "POST",
        "/ui/chemotherapy/{id}/revoke",
        "cancel (revoke) a chemotherapy cycle",
    ),
    // ── end of issue 17: chemotherapy ──
    // ── issue 18: notes ──
    r(
        "GET",
        "/ui/patients/{id}/notes",
        "a patient's clinical notes, newest first",
    ),
    r(
        "POST",
        "/ui/patients/{id}/notes",
        "save a new clinical note as a draft",
    ),
    r(
        "GET",
        "/ui/patients/{id}/notes/new",
        "write a ward round or clinic note by heading",
    ),
    r(
        "GET",
        "/ui/notes/{id}",
        "a clinical note with every version and what changed",
    ),
    r("POST", "/ui/notes/{id}/edit", "edit a draft note"),
    r("POST", "/ui/notes/{id}/sign", "sign a note (its author)"),
    r(
        "POST",
        "/ui/notes/{id}/amend",
        "amend a signed note, with the reason",
    ),
    r(
        "POST",
        "/ui/notes/{id}/error",
        "mark a note entered in error",
    ),
    r(
        "POST",
        "/ui/notes/{id}/entries",
        "add a coded diagnosis or procedure to a note",
    ),
    r(
        "POST",
        "/ui/notes/{id}/entries/correct",
        "correct a coded entry's ICD-10 or OPCS-4 code",
    ),
    // ── end of issue 18: notes ──
    // ── issue 18: discharge ──
    r(
        "GET",
        "/ui/encounters/{id}/discharge-summary",
        "an admission's discharge summary, or start it",
    ),
    r(
        "POST",
        "/ui/encounters/{id}/discharge-summary",
        "start a discharge summary pre-filled from the record",
    ),
    r(
        "GET",
        "/ui/discharge-summaries/{id}",
        "a discharge summary under the PRSB headings: preview, sign",
    ),
    r(
        "GET",
        "/ui/discharge-summaries/{id}/edit",
        "write the clinician's headings of a draft summary",
    ),
    r(
        "POST",
        "/ui/discharge-summaries/{id}/edit",
        "save a draft discharge summary",
    ),
    r(
        "POST",
        "/ui/discharge-summaries/{id}/sign",
        "sign a discharge summary (document Bundle, PDF)",
    ),
    r(
        "GET",
        "/ui/discharge-summaries/{id}/amend",
        "amend a signed discharge summary",
    ),
    r(
        "POST",
        "/ui/discharge-summaries/{id}/amend",
        "amend and sign again",
    ),
    r(
        "GET",
        "/ui/discharge-summaries/{id}/pdf",
        "a discharge summary as PDF",
    ),
    // ── end of issue 18: discharge ──
    // ── issue 18: transfers ──
    r(
        "GET",
        "/ui/transfers",
        "discharge summaries against the 24-hour standard: by ward and specialty, overdue, failed deliveries",
    ),
    r(
        "GET",
        "/ui/transfers/routing",
        "GP practices' delivery routes (MESH, email)",
    ),
    r(
        "GET",
        "/ui/transfers/routing/{org}",
        "change a GP practice's delivery routes",
    ),
    r(
        "POST",
        "/ui/transfers/routing/{org}",
        "save a GP practice's delivery routes",
    ),
    // ── end of issue 18: transfers ──
    // ── issue 18: letters ──
    r(
        "GET",
        "/ui/patients/{id}/clinic-letters",
        "a patient's outpatient attendances, their clinic letters and the patient's preference for copies",
    ),
    r(
        "POST",
        "/ui/patients/{id}/letter-preference",
        "record how the patient wants copies of letters (email, post, none)",
    ),
    r(
        "GET",
        "/ui/encounters/{id}/clinic-letter",
        "an attendance's clinic letter, or start it",
    ),
    r(
        "POST",
        "/ui/encounters/{id}/clinic-letter",
        "start a clinic letter pre-filled from the record",
    ),
    r(
        "GET",
        "/ui/clinic-letters/{id}",
        "a clinic letter under the PRSB outpatient headings: preview, sign, where it went",
    ),
    r(
        "GET",
        "/ui/clinic-letters/{id}/edit",
        "write the clinician's headings of a draft letter",
    ),
    r(
        "POST",
        "/ui/clinic-letters/{id}/edit",
        "save a draft clinic letter",
    ),
    r(
        "POST",
        "/ui/clinic-letters/{id}/sign",
        "sign a clinic letter (sent to the GP, copied to the patient)",
    ),
    r(
        "GET",
        "/ui/clinic-letters/{id}/amend",
        "amend a signed clinic letter",
    ),
    r(
        "POST",
        "/ui/clinic-letters/{id}/amend",
        "amend a clinic letter and sign it again",
    ),
    r(
        "GET",
        "/ui/clinic-letters/{id}/pdf",
        "a clinic letter as PDF",
    ),
    r(
        "GET",
        "/ui/letter-printing",
        "patients' copies of clinic letters to print and post",
    ),
    r(
        "POST",
        "/ui/letter-printing/{task}/done",
        "mark a patient's copy printed and posted",
    ),
    // ── end of issue 18: letters ──
    // ── issue 18: referrals ──
    r(
        "GET",
        "/ui/referrals",
        "e-Referrals sent to other providers, with their states",
    ),
    r(
        "GET",
        "/ui/referrals/triage",
        "e-Referrals received from other providers, to accept or reject",
    ),
    r(
        "GET",
        "/ui/patients/{id}/referrals",
        "a patient's e-Referrals",
    ),
    r(
        "GET",
        "/ui/patients/{id}/referrals/new",
        "make an e-Referral: provider, priority, reason, documents",
    ),
    r(
        "POST",
        "/ui/patients/{id}/referrals",
        "save an e-Referral as a draft",
    ),
    r(
        "POST",
        "/ui/patients/{id}/referrals/upload",
        "upload a PDF to attach to an e-Referral",
    ),
    r(
        "GET",
        "/ui/referrals/{id}",
        "an e-Referral: its provider, state, attachments and delivery",
    ),
    r(
        "POST",
        "/ui/referrals/{id}/send",
        "send an e-Referral (BaRS)",
    ),
    r(
        "POST",
        "/ui/referrals/{id}/retry",
        "send an undelivered e-Referral again",
    ),
    r(
        "POST",
        "/ui/referrals/{id}/cancel",
        "cancel an e-Referral, with the reason",
    ),
    r(
        "POST",
        "/ui/referrals/{id}/reject",
        "reject a received e-Referral, with the reason",
    ),
    // ── end of issue 18: referrals ──
    // ── issue 18: social ──
    r(
        "GET",
        "/ui/social-care",
        "Care Act notices to local authorities by ward: deliveries, overdue and due notices",
    ),
    r(
        "GET",
        "/ui/encounters/{id}/social-care",
        "an admission's Care Act notices: give the assessment and discharge notices",
    ),
    r(
        "POST",
        "/ui/encounters/{id}/social-care/assessment",
        "give a Care Act assessment notice to the local authority",
    ),
    r(
        "POST",
        "/ui/encounters/{id}/social-care/discharge",
        "give a Care Act discharge notice (a reason to give it short of the timescales)",
    ),
    r(
        "GET",
        "/ui/encounters/{id}/social-care/withdraw",
        "withdraw a Care Act notice",
    ),
    r(
        "POST",
        "/ui/encounters/{id}/social-care/withdraw",
        "send the withdrawal notice",
    ),
    // ── end of issue 18: social ──
    // ── issue 18: access ──
    // ── end of issue 18: access ──
    // ── issue 19: rtt ──
    r(
        "GET",
        "/ui/referrals/{id}/triage",
        "triage a received referral: accept with a priority, redirect or reject",
    ),
    r(
        "POST",
        "/ui/referrals/{id}/triage/accept",
        "accept a referral: the RTT clock starts on the date received, the patient goes on the outpatient (new) list",
    ),
    r(
        "POST",
        "/ui/referrals/{id}/triage/redirect",
        "redirect a referral to another service or provider",
    ),
    r(
        "GET",
        "/ui/patients/{id}/referrals/in/new",
        "record a referral received: a letter typed in, or from another consultant",
    ),
    r(
        "POST",
        "/ui/patients/{id}/referrals/in",
        "record a referral received, with the letter's PDF",
    ),
    r(
        "GET",
        "/ui/patients/{id}/pathways",
        "a patient's referral to treatment pathways and waiting-list entries",
    ),
    r(
        "GET",
        "/ui/rtt/pathways/{id}",
        "an RTT pathway: its clock, weeks waited and events",
    ),
    r(
        "POST",
        "/ui/rtt/pathways/{id}/events",
        "record an RTT event (status, date, the record that is the event)",
    ),
    r(
        "GET",
        "/ui/rtt/ptl",
        "the patient-targeted list: weeks-waiting bands, 18-week performance, 52-week breaches",
    ),
    r("GET", "/ui/rtt/ptl.csv", "the PTL as CSV"),
    r(
        "GET",
        "/ui/waiting-lists",
        "the waiting lists by list and specialty",
    ),
    r(
        "GET",
        "/ui/waiting-lists/validation",
        "the waiting-list validation worklist",
    ),
    r(
        "GET",
        "/ui/waiting-lists/entries/{id}",
        "a waiting-list entry: suspend, resume, remove, validate",
    ),
    r(
        "POST",
        "/ui/waiting-lists/entries/{id}/suspend",
        "suspend an entry with a reason until a date",
    ),
    r(
        "POST",
        "/ui/waiting-lists/entries/{id}/resume",
        "end an entry's suspension",
    ),
    r(
        "POST",
        "/ui/waiting-lists/entries/{id}/remove",
        "remove an entry from its list, with the reason",
    ),
    r(
        "POST",
        "/ui/waiting-lists/entries/{id}/validate",
        "mark an entry validated",
    ),
    r(
        "GET",
        "/ui/patients/{id}/waiting-lists/new",
        "add a patient to a waiting list (procedure, P1 to P4, date decided)",
    ),
    r(
        "POST",
        "/ui/patients/{id}/waiting-lists",
        "add a patient to a waiting list",
    ),
    // ── end of issue 19: rtt ──
    // ── issue 19: clinics ──
    r("GET", "/ui/clinics", "templates; ?clinic=: its day list"),
    r("POST", "/ui/clinics", "save a template; clinic=: slots"),
    r("GET", "/ui/outpatients", "to book; ?entry=: free slots"),
    r("POST", "/ui/outpatients", "book an entry into a slot"),
    r(
        "POST",
        "/ui/outpatients/offers",
        "record an offer of dates to a patient on the list (reasonable: 3 weeks' notice, two dates)",
    ),
    r(
        "POST",
        "/ui/outpatients/offers/{id}",
        "the patient's answer to an offer: a date accepted (booked) or declined",
    ),
    r("GET", "/ui/appointments/{id}", "an appointment's page"),
    r("POST", "/ui/appointments/{id}/{action}", "check-in etc."),
    // ── end of issue 19: clinics ──
    // ── issue 19: theatres ──
    r("GET", "/ui/theatres", "a day's theatre sessions; plan one"),
    r("POST", "/ui/theatres", "plan a theatre session"),
    r(
        "GET",
        "/ui/theatres/sessions/{id}",
        "a session's list; add cases",
    ),
    r(
        "POST",
        "/ui/theatres/sessions/{id}/add",
        "add an entry to the list",
    ),
    r(
        "POST",
        "/ui/theatres/cases/{id}/move",
        "move a case up or down",
    ),
    r(
        "GET",
        "/ui/theatres/cases/{id}",
        "a case on the day, WHO checklist",
    ),
    r(
        "POST",
        "/ui/theatres/cases/{id}/step",
        "record the next step",
    ),
    r(
        "POST",
        "/ui/theatres/cases/{id}/checklist",
        "tick checklist items",
    ),
    r(
        "POST",
        "/ui/theatres/cases/{id}/operation",
        "record the operation",
    ),
    r("POST", "/ui/theatres/cases/{id}/cancel", "cancel a case"),
    r("GET", "/ui/theatres/utilisation", "theatre utilisation"),
    // ── end of issue 19: theatres ──
    // ── issue 20: news2 ──
    r(
        "GET",
        "/ui/patients/{id}/observations",
        "a patient's observation chart: NEWS2 alerts, the ward form, graphs with the NEWS2 bands, the table",
    ),
    r(
        "POST",
        "/ui/patients/{id}/observations",
        "record a set of vital signs (NEWS2 scored, escalated)",
    ),
    r(
        "POST",
        "/ui/patients/{id}/observations/scale",
        "set the patient's SpO₂ scale (scale 2: prescribers only)",
    ),
    r(
        "GET",
        "/ui/observations/tasks",
        "open NEWS2 escalation tasks per ward or team",
    ),
    r(
        "POST",
        "/ui/observations/tasks/{id}/acknowledge",
        "acknowledge a NEWS2 escalation",
    ),
    r(
        "POST",
        "/ui/observations/tasks/{id}/complete",
        "complete a NEWS2 escalation with its outcome",
    ),
    // ── end of issue 20: news2 ──
    // ── issue 20: ed ──
    r("GET", "/ui/ed", "the ED tracking board (live)"),
    r("GET", "/ui/ed/arrive", "find the arriving patient"),
    r("POST", "/ui/ed/arrive", "record an arrival"),
    r("GET", "/ui/ed/attendances/{id}", "an ED attendance"),
    r("POST", "/ui/ed/attendances/{id}/triage", "triage"),
    r("POST", "/ui/ed/attendances/{id}/stream", "stream"),
    r("POST", "/ui/ed/attendances/{id}/see", "take the patient"),
    r("POST", "/ui/ed/attendances/{id}/waiting", "waiting for"),
    r("POST", "/ui/ed/attendances/{id}/refer", "refer"),
    r("POST", "/ui/ed/attendances/{id}/code", "ECDS coding"),
    r("POST", "/ui/ed/attendances/{id}/admit", "admit"),
    r("POST", "/ui/ed/attendances/{id}/discharge", "leave"),
    r("GET", "/ui/ed/export", "the ECDS extract"),
    // ── end of issue 20: ed ──
    // ── issue 20: alerts ──
    r("GET", "/ui/patients/{id}/alerts", "clinical alerts"),
    r("POST", "/ui/patients/{id}/alerts/allergies", "an allergy"),
    r("POST", "/ui/patients/{id}/alerts/nka", "none known"),
    r("POST", "/ui/patients/{id}/alerts/cpis", "a CP-IS flag"),
    r("POST", "/ui/patients/{id}/alerts/eol", "end of life"),
    r("POST", "/ui/patients/{id}/alerts/mha", "an MHA section"),
    r("POST", "/ui/allergies/{id}/{action}", "verify, refute"),
    r("POST", "/ui/alerts/{flag}/{action}", "regrade, renew, end"),
    // ── end of issue 20: alerts ──
    // ── issue 20: tasks ──
    r("GET", "/ui/tasks", "task lists: mine, my teams', a ward's"),
    r("GET", "/ui/tasks/{id}", "a task, its history and actions"),
    r("POST", "/ui/tasks/{id}/claim", "claim a task"),
    r("POST", "/ui/tasks/{id}/assign", "assign or reassign a task"),
    r(
        "POST",
        "/ui/tasks/{id}/complete",
        "complete a task with its outcome",
    ),
    r(
        "POST",
        "/ui/tasks/{id}/change",
        "change a task's due time or priority",
    ),
    // ── end of issue 20: tasks ──
    // ── issue 20: forms ──
    r("GET", "/ui/forms", "forms: list, define"),
    r("POST", "/ui/forms", "create a draft form"),
    r("POST", "/ui/forms/import", "import a Questionnaire"),
    r("GET", "/ui/forms/{id}", "a form version and its items"),
    r("POST", "/ui/forms/{id}/items", "add an item"),
    r("POST", "/ui/forms/{id}/remove", "remove an item"),
    r("POST", "/ui/forms/{id}/activate", "make it active"),
    r("POST", "/ui/forms/{id}/retire", "retire a version"),
    r("POST", "/ui/forms/{id}/version", "a new draft version"),
    r("GET", "/ui/patients/{id}/forms", "a patient's forms"),
    r("GET", "/ui/patients/{id}/forms/{form}", "fill a form"),
    r("POST", "/ui/patients/{id}/forms/{form}", "save a response"),
    r("GET", "/ui/responses/{id}", "a form response"),
    r("GET", "/ui/kpis", "forms KPIs per ward"),
    // ── end of issue 20: forms ──
    r(
        "GET",
        "/ui/events",
        "server-sent events: the record changed",
    ),
    r(
        "GET",
        "/ui/static/{*file}",
        "stylesheets, scripts and icons",
    ),
];

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
        .with_state(ui)
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
