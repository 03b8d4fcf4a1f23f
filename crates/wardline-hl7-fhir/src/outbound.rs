//! Outbound: a committed change to a FHIR resource becomes the HL7 v2.4
//! message (NHS ITK HL7 v2 conventions) a downstream system expects, or none.
//!
//! [`message_for`] is called by the engine for every change of a
//! [`TRIGGER_TYPES`] resource, inside the transaction that committed it;
//! `records` reads the committed state (patients, encounters, practitioners,
//! locations, observations referenced by the changed resource).
//!
//! # Envelope
//!
//! * `MSH|^~\&|` with the standard separators; MSH-3/MSH-4 from
//!   [`MappingConfig`](crate::MappingConfig); **MSH-5/MSH-6 are left empty**
//!   for the engine to fill per destination; MSH-7 the timestamp given;
//!   MSH-9 `type^event^structure` (`ADT^A01^ADT_A01`); MSH-10 the control id
//!   given; MSH-11 `P`; MSH-12 `2.4`; MSH-18 `UNICODE UTF-8` (the text is
//!   UTF-8). Segments end with CR.
//! * ADT messages carry `EVN|event|timestamp` after MSH.
//! * All text goes through the `wardline-hl7` builder, which escapes the
//!   delimiters `|^~\&` and CR/LF, so any FHIR text reads back unchanged.
//! * FHIR dates and times become HL7 DTM: `2026-11-23T10:15:00+01:00` →
//!   `20261123101500+0100`, `Z` → `+0000`, partial dates keep their precision.
//!
//! Every code table this direction shares with `inbound` (patient class,
//! priority, order/report/observation status, the SCH fields) is in
//! [`crate::codes`], so a message Wardline sends reads back, through
//! Wardline's own inbound mapping, as the record it was made from (the
//! few codes v2 cannot carry are listed there; `tests/outbound_roundtrip.rs`
//! checks every event).
//!
//! # Which change gives which message
//!
//! Common rules: a **delete gives no message**: in v2 deletes (A23, A29)
//! destroy records downstream systems keep for medico-legal reasons, and a
//! FHIR delete is an administrative correction, not a clinical event; the
//! clinical equivalents (an Encounter, order, report or appointment entered
//! in error or cancelled) are status changes, which do produce messages. An
//! **update that changes nothing the message carries** (only `meta`, the
//! narrative, unmapped elements) gives no message: the segments the resource
//! maps to are built from `before` and `after` and compared. An update
//! whose only change is that references to a merged Patient now point to
//! its survivor (a merge repointing the patient's records) gives no message:
//! the A40 announced it.
//!
//! **Patient** (PID, PD1, and `PV1|1|N` where the structure requires a PV1):
//! * created → `ADT^A28^ADT_A05`;
//! * updated with a change to PID or PD1 → `ADT^A31^ADT_A05`;
//! * merged (the update adds a `replaced-by` link and leaves the patient
//!   inactive) → `ADT^A40^ADT_A39`: PID/PD1 of the surviving patient (read
//!   through the link; unreadable → error), MRG-1 the merged patient's
//!   identifiers, MRG-7 its name. The survivor's own update (it gains a
//!   `replaces` link and the old identifiers) gives no message: the A40 says
//!   it.
//!
//! **PID**: PID-3 the NHS number first (`9434765919^^^NHS^NH`), then local
//! identifiers: a system `{identifier_base}/{authority}-{type}` becomes
//! `value^^^AUTHORITY^TYPE` (the reverse of
//! [`MappingConfig::local_system`](crate::MappingConfig::local_system); a
//! single slug is a type when it is an HL7 table 0203 code, else an
//! authority), any other system `value^^^^PI`; identifiers with `use` `old`
//! are left out (after a merge they belong to the merged record, sent in
//! MRG-1). PID-5 names, `official` first (XPN family^given^middle
//! names^suffix^prefix^^type, type L/D/N/M/S from the name's use), PID-7
//! birth date, PID-8 sex (M/F/O/U), PID-11 addresses other than `old`
//! (line 1, line 2, city, district or state, postcode in XAD-5, country,
//! type H/O/C/M, further lines in XAD-8), PID-13 home and other telecoms
//! and PID-14 work ones (`number^PRN^PH`, mobile `CP`, fax `FX`, e-mail
//! `^NET^Internet^addr`), PID-16 marital status, PID-22 the UK Core ethnic
//! category when coded in `UKCore-EthnicCategoryEngland` (`code^display`),
//! PID-29 death date/time, PID-30 `Y`/`N` and PID-32 the current NHS
//! number's UK Core verification status (`NSTS01`–`NSTS08`).
//! **PD1**-3 the GP practice (`name^^ODS code`) and PD1-4 the GP
//! (`GMP code^family^given^^^prefix`) from `generalPractitioner`, when the
//! reference resolves (or carries an identifier); otherwise left out.
//!
//! **Encounter** (EVN, PID of `subject`, PD1, PV1):
//! * created: `planned` → `A05` (ADT_A05); `arrived`, `triaged`,
//!   `in-progress` or `onleave` with class IMP → `A01`, other classes → `A04`
//!   (ADT_A01); created in any other status (an encounter recorded after the
//!   event, or in error) → none: v2 has no message for a visit that never
//!   was current;
//! * updated, first matching rule wins: status becomes `finished` → `A03`
//!   (ADT_A03); `finished` back to in-progress → `A13` (ADT_A01); `planned`
//!   → cancelled/entered-in-error → `A38` (ADT_A38), any other →
//!   cancelled/entered-in-error → `A11` (ADT_A09); `planned` → in progress →
//!   `A01`/`A04` as for a create; in-progress → `onleave` → `A21`, back →
//!   `A22` (ADT_A21); class changed to IMP from another class → `A06`, from
//!   IMP to another → `A07` (ADT_A06); the last transfer undone (the
//!   last `location` entry, which was active, removed and the completed
//!   one before it active again, earlier entries unchanged) → `A12`
//!   (ADT_A12, PV1-3 the location the patient is back in); the active
//!   location changed (both before and after have one) → `A02` (ADT_A02)
//!   with PV1-6 the prior location; any other change to PID/PV1 → `A08` (ADT_A01).
//! * **PV1**: PV1-1 `1`; PV1-2 class IMP/ACUTE/NONAC/SS → I, EMER → E,
//!   AMB/HH/VR/FLD → O, PRENC → P, else U; PV1-3 the current location (the
//!   last `location` with status `active`, else the last without status or
//!   end, else the last `planned`): the Location and its `partOf` chain fill
//!   PL by `physicalType` (bd → bed PL-3, ro → room PL-2, wa → ward PL-1, si →
//!   facility PL-4, bu → building PL-7, lvl → floor PL-8; an untyped
//!   location is the point of care PL-1 when it is the assigned one, the
//!   facility when it is the top of the chain), each named by its
//!   `{identifier_base}/location` identifier's last `/` segment, else its
//!   name; PV1-6 the prior location (A02 only); PV1-7/8/17 the participants
//!   ATND/REF/ADM (Practitioner, or PractitionerRole's practitioner: XCN with
//!   the GMC number, else `{identifier_base}/consultant` code, else GMP code,
//!   family, given, middle names, prefix); PV1-10 serviceType code; PV1-14
//!   admit source and PV1-36 discharge disposition codes; PV1-19 the visit
//!   number (`{identifier_base}/visit` identifier, else the Encounter id);
//!   PV1-44/45 period start/end.
//!
//! **ServiceRequest**, per destination ([`OrderFormat`], [`messages_for`]):
//! by default the changed ServiceRequests of one transaction that share a
//! requisition (`requisition` `{identifier_base}/requisition`) are **one
//! `OML^O21^OML_O21`** (MSH-12 `2.5.1`): PID, PD1, PV1 as below, then per
//! order that gives a message (the ORC-1 rules below, each order its own):
//! ORC (ORC-4 placer group number = the requisition; timing not in ORC-7),
//! TQ1 (TQ1-7 start, TQ1-9 priority) when either is known, OBR (as below,
//! without OBR-27), NTE per note, an OBX per answered item of the
//! QuestionnaireResponses in `supportingInfo` (OBX-3 `linkId^question^L`,
//! ST/ID/NM/CWE by answer type, OBX-11 F: the questions the department
//! asks), and an SPM per Specimen in `specimen` (SPM-2 its
//! `{identifier_base}/specimen` identifier — the label's barcode — else its
//! id, SPM-4 type, SPM-17 collected, SPM-18 received, SPM-27 container). A
//! request without a requisition is an OML of its own. A destination
//! configured for ORM (`NAME=HOST:PORT;orders=orm`) gets, as before,
//! `ORM^O01^ORM_O01` per ServiceRequest ([`message_for`]): (PID of `subject`, PD1, PV1 of
//! `encounter` when it resolves, ORC, OBR, NTE per note). ORC-1: `NW` when
//! created (or when a `draft` becomes active), `CA` when the status becomes
//! revoked/entered-in-error, `SC` for other status changes, `XO` for other
//! changes. A `draft` (or already revoked/entered-in-error) request gives
//! no message when created. ORC-2/OBR-2 the placer number
//! (`{identifier_base}/placer-order` identifier, else the resource id),
//! ORC-3/OBR-3 the filler number (`{identifier_base}/filler-order`) when
//! present, ORC-5 status (active IP, on-hold HD, revoked CA, completed CM,
//! entered-in-error ER), ORC-7/OBR-27 timing (TQ-4 occurrence start, TQ-6
//! priority: stat S, asap/urgent A, routine R), ORC-9 authoredOn, ORC-12 and
//! OBR-16 the requester (XCN), OBR-4 the code, OBR-31 reason codes. (An
//! urgent request goes out as `A`, never lower: table 0027 has no urgent.)
//!
//! **Codes** (CE/CWE): `code^display^system` for the first coding and the
//! alternate triplet from the second; systems LOINC → `LN`, SNOMED CT →
//! `SCT`, UCUM → `UCUM`, `…/CodeSystem/v2-0074` → `HL70074`, others their
//! last path segment; a concept with only text puts it in component 2.
//!
//! **DiagnosticReport** → `ORU^R01^ORU_R01` when its status is final,
//! corrected, amended, appended, preliminary or partial (not registered);
//! cancelled/entered-in-error only when the report had been sent (before
//! was in one of those statuses), as a withdrawal (OBR-25 X). Segments: PID
//! of `subject`, PD1, PV1 of `encounter` when it resolves, OBR, NTE
//! (conclusion), then per `result` Observation (each must resolve) an OBX
//! and an NTE per note. OBR-2 the placer number of the first `basedOn`
//! ServiceRequest, OBR-3 the filler number (`{identifier_base}/filler-order`
//! identifier, else the report id), OBR-4 code, OBR-7/8 effective
//! (start/end), OBR-22 issued, OBR-24 the category code, OBR-25 F (final),
//! C (corrected, amended, appended), P (preliminary, partial), X (cancelled,
//! entered-in-error). OBX-2 by value: Quantity NM (SN `<^5` with a
//! comparator), integer NM, string ST, CodeableConcept CWE, date DT,
//! dateTime TS, time TM, boolean ID (Y/N), Range SN `^low^-^high`, Ratio SN
//! `^n^:^d`; OBX-3 code, OBX-5 value, OBX-6 units (`code^unit^UCUM` for
//! UCUM), OBX-7 reference range `low-high` (`>low`, `<high`, or its text),
//! OBX-8 interpretation codes, OBX-11 status (F, C, P, I, X, W), OBX-14
//! effective. An Observation with components and no value sends one OBX
//! per component (its code and value), sharing OBX-4 sub-id.
//!
//! **Appointment** → `SIU^S12..S26^SIU_S12` (SCH, NTE for description and
//! comment, PID/PD1 of the Patient participant when there is one (an
//! unresolvable one is an error), RGS, AIS for the service type, AIL per
//! Location, AIP per Practitioner/PractitionerRole participant):
//! created booked/pending/arrived/checked-in → `S12` (proposed/waitlist: none
//! until booked); update: → cancelled `S15`; → entered-in-error `S17`
//! (deletion: it was recorded in error, as inbound reads S17); → noshow
//! `S26`; proposed/waitlist → booked/pending `S12`; start or end changed
//! `S13`; other changes `S14`. SCH-1/SCH-2 placer/filler appointment numbers
//! (`{identifier_base}/placer-appointment`, `/filler-appointment`
//! identifiers, else the resource id), SCH-6 reason (the cancellation
//! reason when cancelled), SCH-7 appointment type (table 0276,
//! FHIR's appointmentType binding; inbound reads it back from SCH-7), SCH-9/10 duration in minutes, SCH-11
//! timing `^^^start^end`, SCH-25 filler status (Pending, Waitlist, Booked,
//! Started, Complete, Cancelled, Noshow, Deleted).
//!
//! **MedicationAdministration** → `RAS^O17^RAS_O17` (MSH-12 `2.5.1`), only
//! through [`pharmacy_message_for`], for destinations configured
//! `;pharmacy=ras` ([`PharmacyFeed`]); [`message_for`] never sends one, so
//! no other feed changes. A dose recorded `completed`, `not-done` or
//! `stopped` (created, or reaching one of those) → RXA-21 `A`; a later
//! change to what the message carries → `U`; `entered-in-error` after one
//! of those → `D` (the segments as reported). In progress, deletes: none.
//! Segments: PID/PD1 of `subject` (required), PV1 of `context` when it
//! resolves, ORC, RXA, RXR. **ORC**-1 `RE`; ORC-2 the placer number: for a
//! prescription that came by RDE^O11 its `{identifier_base}/pharmacy-order`
//! identifier (the sender's number, as inbound stores ORC-2) with ORC-3 the
//! MedicationRequest id, else ORC-2 the MedicationRequest id; ORC-9 its
//! authoredOn; ORC-12 its requester (XCN). **RXA** (v2.5.1): RXA-1 `0`,
//! RXA-2 `1`, RXA-3/4 effective time (or period start/end), RXA-5 the
//! Medication's code — dm+d `code^name^DMD`, a local code `code^name^L`
//! (table 0396), else CE — RXA-6 the dose (`0` when not given, `999` when
//! given without an amount), RXA-7 its unit (`code^unit^UCUM` when coded),
//! RXA-10 the performer who gave it (not the witness; XCN), RXA-15 the
//! batch, RXA-18 the omission reason (`statusReason`, not-done only),
//! RXA-20 completion status (table 0322: CP given, PA stopped part way, RE
//! refused — omission `refused` — NA any other not-done), RXA-21 action.
//! **RXR**-1 the route (the dose's, else the prescription's): a SNOMED CT
//! route with a table 0162 code is `PO^Oral^HL70162^26643006^Oral^SCT` (the
//! codes inbound RDE reads), else CE; RXR-2 site. Errors: no request or an
//! unresolvable one (ORC-2), no medicine (RXA-5), no time (RXA-3), and a
//! dose whose `subject` is not its prescription's (PID-3, 207) — a dead
//! letter, never a message about the wrong patient. RDS^O13 is not sent: a
//! dispense is the pharmacy system's message to the ward (v2 chapter 4A),
//! and Wardline dispenses nothing.
//!
//! **Errors**: a resource whose patient is required (Encounter,
//! ServiceRequest, DiagnosticReport subject; an Appointment's Patient
//! participant; a merge's surviving patient) and does not resolve to a
//! Patient gives `MapError::content` (101 when absent, 204 when it does not
//! resolve) naming the reference; so does an unresolvable report result.
//! Store failures from `records` pass through.

mod datatypes;
mod orders;
mod patient;
mod pharmacy;
mod schedule;
mod visit;

use serde_json::Value;
use wardline_fhir::reference;
use wardline_hl7::{MessageBuilder, Separators};

use crate::{MapError, MappingConfig, Records};

pub(crate) use datatypes::{Rep, Seg};

/// A change to one resource, as committed: `before` is the previous current
/// version (None on create), `after` the new one (None on delete).
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub resource_type: &'a str,
    pub before: Option<&'a Value>,
    pub after: Option<&'a Value>,
}

/// A v2 message ready to send (MSH-5/MSH-6 still empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    /// `type^event`, e.g. `ADT^A01`.
    pub message_type: String,
    /// ER7 text, segments ended by `\r`.
    pub text: String,
    /// Id of the Patient the message is about (the surviving one for A40).
    pub patient_id: Option<String>,
}

/// Resource types whose changes may produce messages.
pub const TRIGGER_TYPES: &[&str] = &[
    "Patient",
    "Encounter",
    "ServiceRequest",
    "DiagnosticReport",
    "Appointment",
];

/// Resource types whose changes may produce pharmacy messages
/// ([`pharmacy_message_for`]), for destinations that take them.
pub const PHARMACY_TRIGGER_TYPES: &[&str] = &["MedicationAdministration"];

/// Which pharmacy messages a destination takes (`;pharmacy=ras`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PharmacyFeed {
    /// None: the default, so existing feeds are unchanged.
    #[default]
    None,
    /// `RAS^O17` (v2.5.1) for each dose given or not given.
    Ras,
}

/// Which message a destination takes orders in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrderFormat {
    /// `OML^O21` (v2.5.1), one per requisition: the default.
    #[default]
    Oml,
    /// `ORM^O01` (v2.4), one per ServiceRequest: for systems that take
    /// only that.
    Orm,
}

/// A message built for some of a transaction's changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    /// `Type/id` of the changed resources the message announces.
    pub about: Vec<String>,
    /// The message, none, or why it could not be built.
    pub message: Result<Option<OutboundMessage>, MapError>,
}

/// The messages announcing a transaction's changes, in the order of the
/// changes, for a destination taking orders as `orders`. With
/// [`OrderFormat::Oml`] the changed ServiceRequests of one requisition
/// (`{identifier_base}/requisition`) become **one** `OML^O21` (at the place
/// of the first), each order with its own ORC-1; a ServiceRequest without
/// a requisition is an OML^O21 of its own. Every other change, and every
/// ServiceRequest with [`OrderFormat::Orm`], is [`message_for`].
/// `control_id` gives MSH-10 of each message.
pub fn messages_for(
    changes: &[Change],
    records: &mut dyn Records,
    cfg: &MappingConfig,
    orders: OrderFormat,
    control_id: &mut dyn FnMut() -> String,
    timestamp: &str,
) -> Vec<Built> {
    let mut out = Vec::new();
    let mut done = vec![false; changes.len()];
    for i in 0..changes.len() {
        if done[i] {
            continue;
        }
        let c = &changes[i];
        let about_of = |c: &Change| -> String {
            let id = c
                .after
                .or(c.before)
                .and_then(|v| str_of(v, "id"))
                .unwrap_or("");
            format!("{}/{id}", c.resource_type)
        };
        if c.resource_type != "ServiceRequest" || orders == OrderFormat::Orm || c.after.is_none() {
            done[i] = true;
            out.push(Built {
                about: vec![about_of(c)],
                message: message_for(c, records, cfg, &control_id(), timestamp),
            });
            continue;
        }
        let mut ctx = Ctx {
            records: &mut *records,
            cfg,
        };
        let group = c.after.and_then(|a| orders::requisition(&ctx, a));
        let mut members = Vec::new();
        for (j, d) in changes.iter().enumerate().skip(i) {
            let Some(after) = d.after else { continue };
            if done[j] || d.resource_type != "ServiceRequest" {
                continue;
            }
            if j == i || (group.is_some() && orders::requisition(&ctx, after) == group) {
                done[j] = true;
                members.push(d);
            }
        }
        let mut items = Vec::new();
        let mut message = Ok(None);
        for m in &members {
            let (Some(after), before) = (m.after, m.before) else {
                continue;
            };
            if let Some(b) = before
                && without_meta(b) == without_meta(after)
            {
                continue;
            }
            if let Some(b) = before {
                match only_repointed_by_merge(&mut ctx, b, after) {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(e) => {
                        message = Err(e);
                        break;
                    }
                }
            }
            items.push((before, after));
        }
        if message.is_ok() {
            message = orders::plan_oml(&mut ctx, &items)
                .map(|p| p.map(|p| p.into_message(cfg, &control_id(), timestamp)));
        }
        out.push(Built {
            about: members.iter().map(|m| about_of(m)).collect(),
            message,
        });
    }
    out
}

/// The v2 message announcing `change`, or None when the change is not worth
/// a message (see the module documentation for the rules).
pub fn message_for(
    change: &Change,
    records: &mut dyn Records,
    cfg: &MappingConfig,
    control_id: &str,
    timestamp: &str,
) -> Result<Option<OutboundMessage>, MapError> {
    let Some(after) = change.after else {
        return Ok(None);
    };
    if let Some(before) = change.before
        && without_meta(before) == without_meta(after)
    {
        return Ok(None);
    }
    let mut ctx = Ctx { records, cfg };
    let before = change.before;
    if let Some(b) = before
        && change.resource_type != "Patient"
        && only_repointed_by_merge(&mut ctx, b, after)?
    {
        return Ok(None);
    }
    let planned = match change.resource_type {
        "Patient" => patient::plan(&mut ctx, before, after)?,
        "Encounter" => visit::plan(&mut ctx, before, after)?,
        "ServiceRequest" => orders::plan_order(&mut ctx, before, after)?,
        "DiagnosticReport" => orders::plan_report(&mut ctx, before, after)?,
        "Appointment" => schedule::plan(&mut ctx, before, after)?,
        _ => None,
    };
    Ok(planned.map(|p| p.into_message(cfg, control_id, timestamp)))
}

/// The `RAS^O17` announcing a change to a MedicationAdministration (a dose
/// given, not given, corrected or withdrawn), or None when the change is
/// not worth one (see the module documentation). Only for destinations
/// configured [`PharmacyFeed::Ras`]; [`message_for`] never sends one.
pub fn pharmacy_message_for(
    change: &Change,
    records: &mut dyn Records,
    cfg: &MappingConfig,
    control_id: &str,
    timestamp: &str,
) -> Result<Option<OutboundMessage>, MapError> {
    let Some(after) = change.after else {
        return Ok(None);
    };
    if change.resource_type != "MedicationAdministration" {
        return Ok(None);
    }
    if let Some(before) = change.before
        && without_meta(before) == without_meta(after)
    {
        return Ok(None);
    }
    let mut ctx = Ctx { records, cfg };
    if let Some(b) = change.before
        && only_repointed_by_merge(&mut ctx, b, after)?
    {
        return Ok(None);
    }
    let planned = pharmacy::plan(&mut ctx, change.before, after)?;
    Ok(planned.map(|p| p.into_message(cfg, control_id, timestamp)))
}

/// What a mapping decided: the message type and its segments after MSH.
pub(crate) struct Planned {
    pub code: &'static str,
    pub event: &'static str,
    pub structure: &'static str,
    pub segments: Vec<Seg>,
    pub patient_id: Option<String>,
}

impl Planned {
    fn into_message(
        self,
        cfg: &MappingConfig,
        control_id: &str,
        timestamp: &str,
    ) -> OutboundMessage {
        let mut b = MessageBuilder::new(Separators::default());
        b.msh()
            .set(3, &cfg.sending_application)
            .set(4, &cfg.sending_facility)
            .set(7, timestamp)
            .set_component(9, 1, self.code)
            .set_component(9, 2, self.event)
            .set_component(9, 3, self.structure)
            .set(10, control_id)
            .set(11, "P")
            // OML^O21 carries SPM and TQ1, which came with v2.5; RAS^O17
            // is a v2.5.1 structure.
            .set(
                12,
                if matches!(self.code, "OML" | "RAS") {
                    "2.5.1"
                } else {
                    "2.4"
                },
            )
            .set(18, "UNICODE UTF-8");
        if self.code == "ADT" {
            b.segment("EVN").set(1, self.event).set(2, timestamp);
        }
        for s in &self.segments {
            s.emit(&mut b);
        }
        OutboundMessage {
            message_type: format!("{}^{}", self.code, self.event),
            text: b.encode(),
            patient_id: self.patient_id,
        }
    }
}

/// The record and configuration a mapping works with.
pub(crate) struct Ctx<'a> {
    pub records: &'a mut dyn Records,
    pub cfg: &'a MappingConfig,
}

impl Ctx<'_> {
    /// The resource a Reference points to: a literal reference
    /// (`Type/id`, absolute URL, `_history` ignored), a contained resource
    /// (`#id`, looked up in `owner`), or a logical reference (`type` and
    /// `identifier`). `None` when absent or not in the record.
    pub fn resolve(&mut self, owner: &Value, reference: &Value) -> Result<Option<Value>, MapError> {
        if let Some(r) = str_of(reference, "reference") {
            if let Some(local) = r.strip_prefix('#') {
                return Ok(arr(owner, "contained")
                    .iter()
                    .find(|c| str_of(c, "id") == Some(local))
                    .cloned());
            }
            return match split_reference(r) {
                Some((t, id)) => self.records.read(t, id),
                None => Ok(None),
            };
        }
        if let (Some(t), Some(ident)) = (str_of(reference, "type"), reference.get("identifier"))
            && let (Some(system), Some(value)) = (str_of(ident, "system"), str_of(ident, "value"))
        {
            return self.records.find_by_identifier(t, system, value);
        }
        Ok(None)
    }

    /// Like [`Ctx::resolve`], keeping the result only when it is a `want`.
    pub fn resolve_as(
        &mut self,
        owner: &Value,
        reference: &Value,
        want: &str,
    ) -> Result<Option<Value>, MapError> {
        Ok(self
            .resolve(owner, reference)?
            .filter(|r| str_of(r, "resourceType") == Some(want)))
    }

    /// The Patient `reference` (an element of `owner`, described by `what`
    /// for the error) points to; an error when absent or unresolvable.
    pub fn required_patient(
        &mut self,
        owner: &Value,
        reference: Option<&Value>,
        what: &str,
    ) -> Result<Value, MapError> {
        let me = describe(owner);
        let Some(reference) = reference else {
            return Err(MapError::content(
                101,
                Some("PID-3"),
                format!("{me} has no {what}: the message needs its patient"),
            ));
        };
        match self.resolve_as(owner, reference, "Patient")? {
            Some(p) => Ok(p),
            None => Err(MapError::content(
                204,
                Some("PID-3"),
                format!(
                    "{me} {what} {} is not a Patient in the record",
                    describe_reference(reference)
                ),
            )),
        }
    }

    /// A Practitioner from a reference to a Practitioner or to a
    /// PractitionerRole (its `practitioner`).
    pub fn practitioner(
        &mut self,
        owner: &Value,
        reference: &Value,
    ) -> Result<Option<Value>, MapError> {
        let Some(r) = self.resolve(owner, reference)? else {
            return Ok(None);
        };
        match str_of(&r, "resourceType") {
            Some("Practitioner") => Ok(Some(r)),
            Some("PractitionerRole") => match r.get("practitioner") {
                Some(p) => self.resolve_as(&r, p, "Practitioner"),
                None => Ok(None),
            },
            _ => Ok(None),
        }
    }
}

/// Is the only difference between `before` and `after` that references to
/// a Patient merged away (`link` `replaced-by`) now point to the survivor?
/// A merge repoints every resource of the merged patient; the A40 already
/// tells receivers, so these updates are not announced one by one.
fn only_repointed_by_merge(ctx: &mut Ctx, before: &Value, after: &Value) -> Result<bool, MapError> {
    // The relative references to a Patient (`Patient/…`).
    fn patient_refs(v: &Value) -> Vec<&str> {
        reference::references(v)
            .filter(|r| r.starts_with("Patient/"))
            .collect()
    }
    let new = patient_refs(after);
    let gone: Vec<String> = patient_refs(before)
        .into_iter()
        .filter(|r| !new.contains(r))
        .map(str::to_owned)
        .collect();
    if gone.is_empty() {
        return Ok(false);
    }
    let mut repointed = without_meta(before);
    for r in gone {
        let Some((_, id)) = split_reference(&r) else {
            return Ok(false);
        };
        let Some(merged) = ctx.records.read("Patient", id)? else {
            return Ok(false);
        };
        let Some(survivor) = arr(&merged, "link")
            .iter()
            .find(|l| str_of(l, "type") == Some("replaced-by"))
            .and_then(|l| l.get("other"))
            .and_then(|o| str_of(o, "reference"))
        else {
            return Ok(false);
        };
        reference::rewrite_references(&mut repointed, |s| (s == r).then(|| survivor.to_owned()));
    }
    Ok(repointed == without_meta(after))
}

/// `Type/id` of a literal reference (relative or absolute, `_history`
/// dropped).
pub(crate) fn split_reference(r: &str) -> Option<(&str, &str)> {
    let r = r.split(['?', '#']).next().unwrap_or(r);
    let r = match r.find("/_history/") {
        Some(i) => &r[..i],
        None => r,
    };
    let mut parts = r.rsplitn(3, '/');
    let id = parts.next().filter(|s| !s.is_empty())?;
    let t = parts
        .next()
        .filter(|s| s.starts_with(|c: char| c.is_ascii_uppercase()))?;
    Some((t, id))
}

/// `Patient/123` for messages.
pub(crate) fn describe(resource: &Value) -> String {
    format!(
        "{}/{}",
        str_of(resource, "resourceType").unwrap_or("resource"),
        str_of(resource, "id").unwrap_or("(no id)")
    )
}

fn describe_reference(reference: &Value) -> String {
    if let Some(r) = str_of(reference, "reference") {
        return r.to_string();
    }
    if let Some(i) = reference.get("identifier") {
        return format!(
            "{}|{}",
            str_of(i, "system").unwrap_or(""),
            str_of(i, "value").unwrap_or("")
        );
    }
    str_of(reference, "display")
        .unwrap_or("(empty reference)")
        .to_string()
}

/// The resource without `meta` (and the narrative `text`, which is derived).
pub(crate) fn without_meta(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("meta");
        o.remove("text");
    }
    v
}

/// A non-empty string member.
pub(crate) fn str_of<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// An array member (empty when absent or not an array).
pub(crate) fn arr<'v>(v: &'v Value, key: &str) -> &'v [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The first coding's code of a CodeableConcept member.
pub(crate) fn concept_code<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(first_code)
}

/// The first code of a CodeableConcept (or of a Coding).
pub(crate) fn first_code(cc: &Value) -> Option<&str> {
    str_of(cc, "code").or_else(|| arr(cc, "coding").iter().find_map(|c| str_of(c, "code")))
}

/// The value of the first identifier of `resource` with `system`.
pub(crate) fn identifier_value<'v>(resource: &'v Value, system: &str) -> Option<&'v str> {
    arr(resource, "identifier")
        .iter()
        .find(|i| str_of(i, "system") == Some(system))
        .and_then(|i| str_of(i, "value"))
}

/// Does any identifier-like system end with `/{suffix}`?
pub(crate) fn system_is(system: Option<&str>, suffix: &str) -> bool {
    system.is_some_and(|s| s.rsplit('/').next() == Some(suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(split_reference("Patient/1"), Some(("Patient", "1")));
        assert_eq!(
            split_reference("https://x.nhs.uk/fhir/Patient/1/_history/3"),
            Some(("Patient", "1"))
        );
        assert_eq!(split_reference("1"), None);
        assert_eq!(split_reference("patient/1"), None);
        assert_eq!(split_reference("Patient/"), None);
    }

    #[test]
    fn meta_and_narrative_do_not_count() {
        let a = serde_json::json!({"resourceType": "Patient", "meta": {"versionId": "1"}, "gender": "male"});
        let b = serde_json::json!({"resourceType": "Patient", "meta": {"versionId": "2"}, "gender": "male",
            "text": {"status": "generated", "div": "<div/>"}});
        assert_eq!(without_meta(&a), without_meta(&b));
    }
}
