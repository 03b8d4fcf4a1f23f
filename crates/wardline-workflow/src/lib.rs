//! The domain services: the one home of every clinical rule. What clerks,
//! nurses and bed managers do, as operations over FHIR resources in the one
//! store, with no schema of their own, and reached the same way from every
//! channel (the web UI, FHIR operations, the HL7 v2 mapping, the CLI,
//! background jobs). A rule is written once, over a `wardline_core::Tx`
//! (so a channel that must apply it inside its own transaction can), and
//! offered to people and REST as a function over
//! [`wardline_core::FhirService`] and the caller's
//! [`wardline_core::Access`] that runs one authorised, validated and audited
//! transaction. ARCHITECTURE.md's recipe says how a new module is added.
//!
//! * [`pmi`] — the Patient Master Index: search, registration with NHS
//!   number checks and the trust's hospital numbers, one active record per
//!   NHS number on every channel ([`with_rules`]), scored duplicate
//!   detection with a review queue, and
//!   merge / unmerge with `Patient/$merge` semantics, also served over
//!   FHIR REST as `POST Patient/$merge`.
//! * [`chart`] — the chart summary behind the patient banner: each list as
//!   the caller may see it and what was hidden from them, problems and
//!   medicines current first, observations with their age.
//! * [`fhir`] — small readers of FHIR values (a concept's text, a
//!   reference's id); reading the record is the core's typed API.
//! * [`adt`] — admission, transfer, discharge and their cancellations as
//!   `Encounter` location history and `Location` bed state; the bed board;
//!   [`adt::beds`], the one place a patient enters or leaves a bed.
//! * [`orders`] — order communications: the `ServiceRequest` status
//!   lifecycle every channel obeys; [`orders::catalogue`], what can be
//!   ordered (tests, examinations, order sets, analytes and their ranges,
//!   the one home of abnormal flags); [`orders::request`], requesting from
//!   the chart (requisitions, specimens, the duplicate-order rule) and
//!   [`orders::label`], specimen labels with their barcodes.
//! * [`results`] — results: the `DiagnosticReport` status rules every
//!   channel obeys, matched results told to the requester's inbox (and
//!   corrections to everyone who read them), acknowledgement, escalation
//!   of unacknowledged critical results; `DiagnosticReport/$submit`.
//! * [`laboratory`] — the pathology laboratory (reception by barcode,
//!   result entry and analyser files, technical validation with delta
//!   checks, authorisation by another person, release to the requester,
//!   turnaround) and radiology's IR(ME)R justification.
//! * [`medicines`] — the formulary, prescribing on the inpatient drug
//!   chart with decision support, pharmacist screening, the medication
//!   administration record, discharge medicines and chemotherapy cycles.
//! * [`documents`] — clinical notes by heading, signed and amended with the
//!   original kept, with coded diagnoses and procedures ([`documents::notes`]).
//! * [`transfers`] — transfers of care: documents to GP practices over
//!   MESH and email (routing per practice, retries and fallback, the
//!   delivery lifecycle on every channel) and the 24-hour discharge
//!   summary standard (overdue Tasks, the compliance figures).
//! * [`referrals`] — e-Referrals out (BaRS) and in: intake from a GP, a
//!   consultant or a letter, and triage ([`referrals::triage`]) that opens
//!   the RTT pathway and the outpatient waiting-list entry.
//! * [`rtt`] — 18-week referral-to-treatment pathways: the national clock
//!   rules over the RTT status codes, weeks waited, and the PTL.
//! * [`waiting`] — waiting lists (outpatient, inpatient, day case): entries,
//!   priorities, suspensions, removal with a reason, validation.
//! * [`outpatients`] — outpatient clinics: templates and slots, booking
//!   from the waiting list (one appointment per slot on every channel),
//!   rebooking, cancellation, arrival, attendance outcomes and the clinic list.
//! * [`theatres`] — theatre sessions and lists from the admitted waiting
//!   list, on-the-day steps behind the WHO surgical safety checklist (on
//!   every channel), the operation recorded (RTT 30) and utilisation.
//! * [`forms`] — configurable forms (Questionnaire) completed in the chart
//!   (QuestionnaireResponse, checked against its version on every channel),
//!   answers extracted as Observations, KPIs per ward.
//! * [`ed`] — the Emergency Department: arrival, triage, streaming, the
//!   tracking board with its 4- and 12-hour clocks, referral, decision to
//!   admit through [`adt`], discharge, and the ECDS-shaped extract.
//! * [`consent`] — recording, withdrawing and listing patients' consent
//!   decisions (what they mean is the core's `consent`).
//! * [`tasks`] — the one home of the `Task` lifecycle (issue 20): raising,
//!   assigning to a person, team or ward, claiming, completing; the lists
//!   per user, team and ward; overdue reminders and escalation rules.
//!
//! The web UI (`wardline-web`) and the FHIR operations call these; they hold
//! no rules of their own.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod adt;
pub mod chart;
pub mod consent;
pub mod documents;
pub mod fhir;
pub mod laboratory;
pub mod medicines;
pub mod orders;
pub mod pmi;
pub mod referrals;
pub mod results;
pub mod transfers;
// issue 19: planned care
pub mod outpatients;
pub mod rtt;
pub mod theatres;
pub mod waiting;
// issue 20: news2
pub mod observations;
// end of issue 20: news2
// issue 20: ed
pub mod ed;
// end of issue 20: ed
// issue 20: alerts
pub mod alerts;
// end of issue 20: alerts
// issue 20: tasks
pub mod tasks;
// end of issue 20: tasks
// issue 20: forms
pub mod forms;
// end of issue 20: forms
// issue 22: downtime
pub mod downtime;
// end of issue 22: downtime

use wardline_core::FhirService;

/// The service with the workflows' FHIR operations registered
/// (`Patient/$merge`, `DiagnosticReport/$submit`); the server's composition
/// root calls this.
pub fn with_operations(svc: FhirService) -> FhirService {
    svc.with_operation(pmi::MergeOperation::spec())
        .with_operation(results::operation::SubmitOperation::spec())
        .with_operation(medicines::prescribe::operation::PrescribeOperation::spec())
        .with_operation(medicines::prescribe::operation::DiscontinueOperation::spec())
        .with_operation(medicines::chemo::operation::CycleOperation::spec())
        // issue 18: discharge summaries' signed documents.
        .with_operation(documents::discharge::operation::DocumentOperation::spec())
        // issue 18: referrals: BaRS messages received from other providers.
        .with_operation(referrals::inbound::ProcessMessageOperation::spec())
        // issue 20: news2
        // end of issue 20: news2
        // issue 20: ed
        // end of issue 20: ed
        // issue 20: alerts: who records each alert kind, the MHA legal expiry.
        .with_rule(std::sync::Arc::new(alerts::rule::AlertRule))
    // end of issue 20: alerts
    // issue 20: tasks
    // end of issue 20: tasks
    // issue 20: forms
    // end of issue 20: forms
}

/// The service with the workflows' write rules registered, which the core
/// asks on every write path (`pmi::UniqueIdentifiers`: one active record per
/// NHS number, one record per hospital number); every composition root
/// that writes calls this. A module whose rule a single write of any
/// channel could break adds its `wardline_core::WriteRule` here.
pub fn with_rules(svc: FhirService) -> FhirService {
    svc.with_rule(std::sync::Arc::new(pmi::UniqueIdentifiers))
        .with_rule(std::sync::Arc::new(orders::catalogue::CatalogueRule))
        .with_rule(std::sync::Arc::new(medicines::prescribe::PrescriptionRule))
        .with_rule(std::sync::Arc::new(medicines::formulary::FormularyRule))
        .with_rule(std::sync::Arc::new(medicines::mar::DoseSlotRule))
        .with_rule(std::sync::Arc::new(documents::notes::NoteRule))
        // issue 18: discharge summaries' lifecycle, one per admission.
        .with_rule(std::sync::Arc::new(documents::discharge::DischargeRule))
        .with_rule(std::sync::Arc::new(transfers::DeliveryRule))
        // issue 18: referrals' lifecycle on every channel.
        .with_rule(std::sync::Arc::new(referrals::ReferralRule))
        // issue 19: one booked appointment per clinic slot, on every channel.
        .with_rule(std::sync::Arc::new(outpatients::SlotRule))
        // issue 19: theatre cases: steps in order, the WHO checklist first.
        .with_rule(std::sync::Arc::new(theatres::TheatreRule))
        // issue 19: a waiting-list entry's states on every channel.
        .with_rule(std::sync::Arc::new(waiting::EntryRule))
        // issue 19: a plain e-Referral POSTed over FHIR awaits triage.
        .with_hook(std::sync::Arc::new(referrals::triage::IntakeHook))
        // Not a rule but a consequence every writer needs: a once-only
        // prescription completed when its dose is given.
        .with_hook(std::sync::Arc::new(medicines::mar::OnceOnlyDone))
        // The formulary kept in memory is read again after any change.
        .with_hook(std::sync::Arc::new(medicines::formulary::FormularyChanged))
        // issue 19: a clinic slot is busy while an appointment holds it.
        .with_hook(std::sync::Arc::new(outpatients::SlotStatus))
        // issue 20: news2
        // NEWS2 scored on arrival on every channel, and escalated.
        .with_hook(std::sync::Arc::new(observations::scoring::ScoreOnArrival))
        // SpO₂ scale 2 set or stopped by a registered clinician only.
        .with_rule(std::sync::Arc::new(observations::scale::ScaleRule))
        // end of issue 20: news2
        // issue 20: ed
        // the Emergency Department attendance's lifecycle on every channel.
        .with_rule(std::sync::Arc::new(ed::EdRule))
        // end of issue 20: ed
        // issue 20: alerts: who records each alert kind, the MHA legal expiry.
        .with_rule(std::sync::Arc::new(alerts::rule::AlertRule))
        // end of issue 20: alerts
        // issue 20: tasks
        // The Task lifecycle and urgent work always owned, on every channel.
        .with_rule(std::sync::Arc::new(tasks::TaskRule))
        // end of issue 20: tasks
        // issue 20: forms: a form version valid and frozen once in use; a
        // response valid against its version; marked answers extracted.
        .with_rule(std::sync::Arc::new(forms::rule::FormRule))
        .with_rule(std::sync::Arc::new(forms::rule::ResponseRule))
        .with_hook(std::sync::Arc::new(forms::rule::Extraction))
    // end of issue 20: forms
}
