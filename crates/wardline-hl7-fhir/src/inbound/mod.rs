//! Inbound: a parsed HL7 v2 message → changes to the record.
//!
//! [`apply`] reads the current record through [`Records`] and saves what the
//! message changes; the caller runs it in one store transaction, so an error
//! after some saves rolls everything back. [`is_supported`] tells which
//! `MSH-9` type^event pairs are mapped; others are [`MapError::unsupported`]
//! (200 unknown message type, 201 unknown event). Content problems are
//! [`MapError::content`] with a table 0357 code (101 required field missing,
//! 102 data type error, 103 table value not found, 204 unknown key
//! identifier), the field location (`PID-3`, `OBX[2]-5`) and a sentence naming
//! the value.
//!
//! # General rules
//!
//! * Values are read with the message's own separators and escapes decoded;
//!   `\.br\` in FT/TX text becomes a line break.
//! * Updates: an empty field leaves the stored value unchanged; the HL7 null
//!   `""` deletes it (patient demographics, consultants, hospital service,
//!   admit source, GP/practice); a value replaces it.
//! * Timestamps (TS/DTM/DT): `YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]`; dates
//!   keep their precision (`2024`, `2024-03`, `2024-03-05`); with a time,
//!   minutes/seconds are zero-filled and a timestamp without offset is read as
//!   Europe/London local time and given the UK offset of that moment (GMT
//!   `+00:00` or BST `+01:00`, current UK rules for every year; the repeated
//!   October hour is taken as BST). `instant`s (DiagnosticReport.issued,
//!   Appointment start/end, DocumentReference.date) are always to the second.
//!   A bad timestamp is error 102 naming the field and the value.
//! * Coded values (CE/CWE): coding-system `LN` → `http://loinc.org`, `SCT` →
//!   `http://snomed.info/sct`, `I10` → ICD-10, `HL7nnnn` →
//!   `http://terminology.hl7.org/CodeSystem/v2-nnnn`, any other name → a local
//!   system `{identifier_base without /Id}/CodeSystem/<name-slug>`, no name →
//!   a coding without system. Alternate codings (CE-4..6) are kept.
//! * Clinicians (XCN) are Practitioners found/created by identifier: `G` + 7
//!   digits → `https://fhir.nhs.uk/Id/gmp-number` (GP), 7 digits →
//!   `https://fhir.hl7.org.uk/Id/gmc-number`, else `{base}/consultant`. An
//!   XCN without an id (name only) is ignored.
//!
//! # Patient (PID, PD1) — every message type
//!
//! * The NHS number is the PID-3 repetition with CX-4 `NHS` or CX-5 `NH`,
//!   checked with Modulus 11 (invalid → 102 at PID-3), stored normalised with
//!   system `https://fhir.nhs.uk/Id/nhs-number`. Other repetitions are local
//!   numbers (`use` `usual`, CX-5 as a v2-0203 `type`) with system
//!   `MappingConfig::local_system(CX-4, CX-5)`. No identifier → 101 at PID-3.
//! * The patient is found by NHS number first (as a current one, then as a
//!   superseded one), then by each local number; else it is created
//!   (`active` true), claiming UK Core Patient (`meta.profile`; the core
//!   holds every write of it to the profile).
//! * PID-32 (identity reliability, table 0445 as the NHS ADT specification
//!   extends it: `NSTS01`–`NSTS08`, or `01`–`08`) → the UK Core NHS number
//!   verification status extension on the NHS number (`codes::NHS_NUMBER_STATUS`;
//!   another `NSTS` code is 103; other 0445 codes are not read); none keeps
//!   the stored status. PID-22 (ethnic group, CE) → the UK Core ethnic
//!   category extension: an NHS Data Dictionary code (`A`–`Z`, `99`) without
//!   a coding system (or `NHS`) in `UKCore-EthnicCategoryEngland`, anything
//!   else by the CE rule; `""` removes it.
//! * ADT messages update the found patient: the message's identifiers are
//!   added (others kept; a different NHS number replaces the stored one,
//!   which is kept with `use` `old` under
//!   `https://fhir.wardline.invalid/Id/superseded-nhs-number`, since UK Core
//!   allows one NHS number), and present demographics replace the stored
//!   ones. Orders, appointments and documents only find the patient (or
//!   create it with the message's demographics); they never change a
//!   stored patient. **Results never create one** (see ORU^R01 below).
//! * PID-5 XPN → name (family^given^middle^suffix^prefix^degree^type; type
//!   L official, D/A usual, M/B maiden, N nickname, S anonymous; middle
//!   names are extra `given`); PID-7 → birthDate (date part); PID-8 sex M/F →
//!   male/female, U/N → unknown, O/A → other, anything else 103; PID-11 XAD →
//!   address (street, other designation, other geographic designation as
//!   lines; city; county as `district`; XAD-5 postcode, UK postcodes
//!   normalised to `NW3 2QG`; type H home, B/O work, C temp, BA old, M
//!   postal); PID-13 → telecom (PRN home, WPN work, ORN/VHN temp, CP/PRS
//!   mobile, Internet/NET email, FX fax, BP pager), PID-14 → telecom `work`
//!   (each field replaces only its own entries); PID-16 (table 0002) →
//!   maritalStatus in v3-MaritalStatus (v2-0002 when it has no equivalent);
//!   PID-29 → deceasedDateTime, else PID-30 Y/N (YES/NO accepted) →
//!   deceasedBoolean.
//! * PD1-3 (XON; ODS code in XON-10 or XON-3) → Organization found/created
//!   by `https://fhir.nhs.uk/Id/ods-organization-code`; PD1-4 (XCN) → GP
//!   Practitioner; both → generalPractitioner.
//!
//! # ADT → Encounter and Location
//!
//! * Every event here is one Wardline also sends (`outbound`): applied to
//!   the Encounter as it was before the change that made outbound send it,
//!   the event gives the Encounter as it was after (the round trip is
//!   tested in `tests/outbound_roundtrip.rs`).
//! * The Encounter is identified by the visit number PV1-19 (system
//!   `{base}/visit`). A01/A04/A05 create it (claiming UK Core Encounter); A02, A03, A06, A07, A08 (with a
//!   PV1-19), A11, A12, A13, A21, A22, A38 need a known one (204 at PV1-19
//!   naming the value; an empty PV1-19 is 101). A08 without PV1-19 updates
//!   the patient only.
//! * PV1-2 (table 0004) → class (v3 ActCode), by the table both directions
//!   share (`codes::PATIENT_CLASS`): I/B IMP, E EMER, O/R/C AMB, P PRENC;
//!   empty/N/U → the event's default (A04 and A07 AMB, A05 PRENC, else IMP).
//! * PV1-3 PL (ward^room^bed^facility) → Locations site (PL-4) → ward (PL-1)
//!   → room (PL-2) → bed (PL-3), each found/created by `{base}/location` with
//!   the path of the levels present (`RWG/WARD7/BAY2/BED4`), physicalType
//!   si/wa/ro/bd, `partOf` the level above. Encounter.location holds the most
//!   specific level, with `status` and `period`.
//! * Beds: the mapping never writes a bed itself. Every event that puts a
//!   patient in or out of a bed calls `wardline_workflow::adt::beds`
//!   (`enter`, `leave`, `undo_move`, `return_to_last`, `go_on_leave`,
//!   `back_from_leave`, as `Mover::Feed(MappingConfig::bed_master)`), which
//!   locks and checks the bed and keeps its operationalStatus (v2-0116):
//!   `O` when a patient is admitted, registered or transferred into it (and
//!   when a cancel transfer/discharge puts them back), `H` housekeeping when
//!   they leave it (transfer out, discharge), `U` unoccupied after a
//!   cancelled admission or a cancelled transfer into it. A bed that cannot
//!   take the patient (another patient, closed, blocked) refuses the message
//!   with 207 at PV1-3 where Wardline is bed master, or stands with a
//!   bed-clash Task where an external PAS is.
//! * PV1-7/8/17 (XCN) → participant ATND/REF/ADM (v3-ParticipationType),
//!   replacing the participants of that type; PV1-10 → serviceType
//!   (v2-0069); PV1-14 → hospitalization.admitSource (v2-0023); PV1-36 →
//!   hospitalization.dischargeDisposition (v2-0112). These are IS fields:
//!   the code comes without its system, so it is read back with the system
//!   of its v2 table whatever system it was sent from.
//! * Event times: the event time is EVN-6, else EVN-2, else MSH-7.
//! * A01 admit / A04 register: status in-progress, period.start PV1-44 else
//!   the event time, the location becomes the active entry (a resend at the
//!   same location changes nothing). A05 pre-admit: status planned,
//!   period.start PV2-8 (expected admit) else PV1-44, location entry
//!   `planned`; a later A01 for the same visit starts it.
//! * A02 transfer: the active location entry is completed with period.end =
//!   event time, the new one (PV1-3, required: 101) appended active from the
//!   event time.
//! * A03 discharge: status finished, period.end PV1-45 else the event time,
//!   the active location completed.
//! * A08: patient, class (when PV1-2 is given), consultants, service, admit
//!   source; locations are not changed by A08.
//! * A11 cancel admit: status `entered-in-error` (the admission should never
//!   have been recorded; `cancelled` would mean it ended before it began),
//!   the active location completed and its bed `U`.
//! * A12 cancel transfer: the latest location entry is removed (its bed `U`)
//!   and the previous one is active again (end removed, bed `O`). When PV1-3
//!   already names the active location the message is a resend and nothing
//!   changes; with fewer than two entries → 204 at PV1-19.
//! * A13 cancel discharge: back to in-progress, period.end and
//!   dischargeDisposition removed, the last location active again (bed `O`);
//!   an encounter that is not finished is left as it is (resend).
//! * A06 change an outpatient to an inpatient / A07 an inpatient to an
//!   outpatient (outbound sends them when the class of a current encounter
//!   changes to or from IMP): class from PV1-2 (default IMP for A06, AMB for
//!   A07); a `planned` visit becomes in-progress (period.start as A01); a
//!   PV1-3 other than the patient's current place moves them there through
//!   `beds::enter` (A06: the admission to that bed; the bed rules apply, 207
//!   at PV1-3 when refused); PV1-3 empty or where they are: no move (an A07
//!   does not by itself free the bed: a transfer or discharge does). A
//!   finished, cancelled or entered-in-error visit → 207 at PV1-19.
//! * A21 leave of absence (in-progress → `onleave`) through
//!   `beds::go_on_leave`: the location entry stays active, so **the bed
//!   stays held** (`onleave` is a current status: the board shows it
//!   occupied and no one else can be admitted to it); nothing is written to
//!   the bed. A22 back from leave (`onleave` → in-progress) through
//!   `beds::back_from_leave`, which checks the held bed still takes them
//!   (like A13) and marks it occupied. A resend (already on leave / back)
//!   changes nothing; A21 for a visit not in progress or A22 for one not on
//!   leave → 207 at PV1-19.
//! * A38 cancel pre-admit: a `planned` visit becomes `cancelled` (a
//!   pre-admission that will not happen; period and planned location are
//!   kept as the record of what was planned). A pre-admission holds no bed
//!   (its location entry is only `planned`), so no bed rule is involved. An
//!   already cancelled visit is a resend (nothing changes); any other status
//!   → 207 at PV1-19 (an admission is cancelled with A11). Outbound also
//!   sends A38 for a planned visit entered in error: it reads back
//!   `cancelled`.
//! * A28 add person / A31 update person: Patient only (created when unknown).
//! * A40 merge: PID is the surviving patient (found/created and updated),
//!   MRG-1 the prior identifiers (same NHS/local rules) → the source patient
//!   (unknown → 204 at MRG-1), then `wardline_workflow::pmi::merge_in(source,
//!   target)` (references repointed, Provenance, unmerge; its refusals are
//!   207 at MRG-1). When the prior identifiers already lead to the survivor
//!   (resend) nothing changes.
//!
//! # ORM^O01 / OML^O21 → ServiceRequest
//!
//! * One ServiceRequest per order: an ORC starts an order, the OBR after it
//!   joins it (an OBR without its own ORC starts one), NTEs → note.
//! * Identifiers: placer ORC-2/OBR-2 (`{base}/placer-order`, type PLAC) and
//!   filler ORC-3/OBR-3 (`{base}/filler-order`, type FILL); found by placer,
//!   then filler; new numbers are added. Both empty → 101 at ORC-2. ORC-4
//!   (placer group number) → `requisition` (`{base}/requisition`), as
//!   Wardline's OML^O21 sends it.
//! * ORC-1 (table 0119) → status: NW/RL/OK/SN/RO/RP (or empty) active,
//!   CA/OC/DC/CR/OD/DR revoked (entered-in-error when ORC-5 is ER, as
//!   Wardline sends a request entered in error), HD/OH on-hold;
//!   XO/XX/XR/SC/RE take ORC-5 (table 0038, `codes::ORDER_STATUS`: A/IP/SC
//!   active, CA/DC/RP revoked, CM completed, ER entered-in-error, HD
//!   on-hold) or keep the stored status. Unknown codes → 103. Cancelling an
//!   unknown order → 204 at ORC-2. The change obeys the order lifecycle of
//!   `wardline_workflow::orders` (a completed or cancelled order is not
//!   started again; entered-in-error is final): a message that breaks it →
//!   207 at ORC-1 with the reason. intent `order`.
//! * code OBR-4; priority TQ1-9, else OBR-27.6, else ORC-7.6
//!   (`codes::PRIORITY`): S stat, A asap, P/T urgent, R/C/PRN routine (else
//!   103); requester ORC-12 (else OBR-16);
//!   authoredOn ORC-9; reasonCode OBR-31; subject; encounter by PV1-19 when
//!   that visit is known.
//!
//! # ORL^O22 / ORR^O02 → the filler's answer to an order
//!
//! * The reply to an order Wardline sent (as the application
//!   acknowledgement the outbound dispatcher receives, or sent to the
//!   listener). Each ORC names an order by placer number ORC-2 (else OBR-2),
//!   else filler number ORC-3 (else OBR-3); an order Wardline does not hold
//!   → 204 at ORC-2; no ORC → 101.
//! * ORC-3 is recorded as the order's filler number (`{base}/filler-order`,
//!   type FILL), so results quoting only it find the order.
//! * ORC-1: `OK`/`NA` accepted — the status is kept (an order stays
//!   `active`); `UA` (unable to accept), `CR` (cancelled as requested), `OC`
//!   (cancelled by the filler) → `revoked` through
//!   `wardline_workflow::orders::set_status` (a lifecycle refusal, e.g. a
//!   completed order, is 207 at ORC-1), with a note "LABSYS could not
//!   accept the order (UA): reason" (MSH-3; the reason is ORC-16 text or
//!   code, else the NTEs of that order, else ERR-8, else MSA-3; the note's
//!   time is MSH-7); an order already cancelled gets no second note; `UC`
//!   (unable to cancel) adds a note and changes no status; any other code →
//!   103 at ORC-1. Nothing else of the order changes; a reply sent again
//!   writes nothing.
//!
//! # ORU^R01 → DiagnosticReport + Observations, through `results::receive_in`
//!
//! * **Never a Patient from a result.** The patient is the one PID-3 names
//!   with certainty: each number that can identify a person — the NHS
//!   number (CX-4 `NHS` or CX-5 `NH`, Modulus 11 checked, found as a
//!   current NHS number) and local numbers whose assigning authority CX-4
//!   is given (system `MappingConfig::local_system(CX-4, CX-5)`) — that is
//!   in the record must lead to the same Patient, at least one must, none
//!   may be carried by two patients, and PID-7 must agree with the stored
//!   birth date when both are present. A number without an assigner, a
//!   name or a date of birth alone identify no one.
//! * **The order** is the ServiceRequest with the placer number
//!   OBR-2/ORC-2, else the one with the filler number OBR-3 (recorded from
//!   the filler's ORL/ORR), and it must be **that patient's**.
//! * Matched (patient and order): `subject`, `basedOn` and (when PV1-19 is
//!   a visit of that patient) `encounter` are set on the report and its
//!   Observations. Otherwise the report is stored **unmatched** in the
//!   shape `wardline_workflow::results::unmatched` documents: `meta.tag`
//!   `result-match|unmatched`, no subject, basedOn or encounter, what PID
//!   said (identifiers, names, birth date, sex, address, telecom) as the
//!   contained Patient `#reported-patient` (extension `reported-patient`),
//!   the placer and filler numbers as `reported-order` extensions and the
//!   reason as `unmatched-reason` ("no patient with NHS number …", "order
//!   … is not an order of Patient/…", "… are different patients' numbers",
//!   "the date of birth sent … is not …"). **The message is acknowledged
//!   `AA`**: the result is kept, whole, on the matching worklist — nothing
//!   is lost and nothing is filed to a best guess. A message without PID is
//!   stored unmatched the same way.
//! * A report already filed to a patient (by an earlier message, or by a
//!   person from the worklist) stays filed to that patient and order; a
//!   message naming, with certainty, another patient is refused, 207 at
//!   PID-3 (a result moves between patients only by cancelling it and
//!   sending it for the right one). An unmatched report that a later
//!   message can match is filed then (the marks removed).
//! * The report and its Observations go to
//!   `wardline_workflow::results::receive_in` (source `Hl7 { sender:
//!   MSH-3 }`) in the message's transaction: the status rules, the
//!   matching tag and the inbox notification of the requester (and of
//!   everyone who read an earlier version) are the results service's. Its
//!   refusals — a final sent as final again with other values, a final
//!   going back to preliminary, a cancelled report reopened — are **207 at
//!   OBR-25** with its sentence (`AE`), and nothing of the message is
//!   applied; the same message again changes nothing and tells no one twice.
//!   A report whose order names no requester and no consultant is kept
//!   unmatched by `receive_in` (nobody would be told).
//! * One DiagnosticReport per OBR, identified by the filler number OBR-3
//!   (else ORC-3; none → 101 at OBR-3); a report sent again (corrected,
//!   final after preliminary) is a new version of the same resources. code
//!   OBR-4 (required, 101); status OBR-25 (table 0123: O/I/S registered, A
//!   partial, P/R preliminary, C/M corrected, F final, X cancelled, Y/Z or
//!   empty unknown); category OBR-24 (v2-0074); effective OBR-7; issued
//!   OBR-22; NTEs after the OBR → conclusion. (`codes::REPORT_STATUS`.)
//! * One Observation per OBX, identified by `{base}/observation` |
//!   `<filler>-<OBR occurrence in the message>-<OBX-3 code>-<OBX-4>`, and
//!   rewritten as a whole each time (a corrected value replaces the old one).
//!   OBX-3 required (101). Value by OBX-2: NM → valueQuantity (a non-number
//!   is 102), units OBX-6 as UCUM when declared UCUM or made of UCUM
//!   characters only; SN → valueQuantity (with comparator `<` `>` `<=` `>=`),
//!   valueRange (`a-b`), valueRatio (`a:b`, `a/b`), else valueString;
//!   CE/CWE/CNE → valueCodeableConcept; DT/TS/DTM → valueDateTime; TM →
//!   valueTime; ST/TX/FT and others → valueString (repetitions joined by
//!   line breaks); an NM with a leading `<` `>` `<=` `>=` (`<15`) keeps it as
//!   the quantity's comparator; ED → DiagnosticReport.presentedForm, not an Observation.
//!   OBX-7 → referenceRange (`a-b`, `<b`, `>a`, else text); OBX-8 →
//!   interpretation (v2-0078; when absent, `receive_in` may compute it from
//!   the catalogue's analyte); OBX-11 (table 0085: F/U final, C corrected,
//!   P/R/S preliminary, I/O registered, X/N cancelled, D/W entered-in-error;
//!   empty → from the report status; `codes::OBSERVATION_STATUS`); OBX-14 effective (else OBR-7); NTEs
//!   after the OBX → note. Observations of an earlier version that the new
//!   message no longer carries are left as they are, but dropped from
//!   DiagnosticReport.result.
//!
//! # RDE^O11 → MedicationRequest (issue 17)
//!
//! Orders from an external e-prescribing system become prescriptions on
//! the drug chart through `wardline_workflow::medicines::prescribe`
//! (`prescribe_in`, `change_in`, `discontinue_in`) on the message's
//! transaction — the same rules as a prescriber on the chart.
//!
//! * PID-3: the patient must be known (found as for orders); an unknown
//!   patient is 204 at PID-3 — a pharmacy message never creates one. PV1-19
//!   names the admission when known, else the patient's current one.
//! * One prescription per ORC, with the RXE, RXR and TQ1 after it. ORC-1
//!   (table 0119): `NW` new (a resend of a placer number already on the
//!   chart changes nothing), `XO` change (the current prescription of that
//!   placer number is stopped "changed" and replaced), `DC`/`CA`/`OC`
//!   discontinue (reason ORC-16, else "Discontinued by {MSH-3}"); an unknown
//!   placer number is 204 at ORC-2, other codes 103 at ORC-1.
//! * ORC-2 placer number → `identifier` `{base}/pharmacy-order` (type
//!   PLAC), 101 when empty. ORC-12 (XCN) → the prescriber, found or created
//!   as for orders, who signs the prescription: 101 when empty (NW, XO).
//! * RXE-2 give code: a formulary entry's VMP or AMP code (103 naming the
//!   code when none). RXE-3 dose (102 unless a positive number); RXE-5 its
//!   unit: the entry's unit of dose or strength unit (103 otherwise, naming
//!   both). RXR-1: a table 0162 route (PO, IV, IM, SC, PR, SL, TP → SNOMED
//!   CT) or a SNOMED CT route code, one of the entry's routes (103
//!   otherwise).
//! * Timing: TQ1-3 repeat pattern (else RXE-1.2): OD/QD/DAILY/OM 08:00,
//!   BD/BID/Q12H 08:00 20:00, TDS/TID/Q8H 06:00 14:00 22:00, QDS/QID 08:00
//!   12:00 18:00 22:00, Q6H, Q4H, ON/QHS/NOCTE 22:00; TQ1-4 explicit times
//!   (HHMM) replace them; `PRN` in the pattern or TQ1-9 is as required, its
//!   minimum interval from `Q{n}H` (101 without one) and its maximum in 24
//!   hours that interval's doses; `ONCE`/`STAT` or TQ1-14 = 1 once only at
//!   TQ1-7. TQ1-7/8 start and stop. Other patterns are 103 at TQ1-3.
//! * RXE-27 give indication (else ORC-16) → the indication (101 at RXE-27
//!   when neither). RXE-7 → further instructions.
//! * Decision support runs as at the chart: a hard stop is 207 at RXE-2
//!   naming the alert; override alerts are gone past with the reason that
//!   the order was signed in the sending system, kept as DetectedIssues,
//!   and the prescription is unscreened like any other until a pharmacist
//!   screens it. Any other refusal of the workflow is 207 naming the field
//!   it is about. Every refusal rolls the whole message back.
//!
//! # SIU → Appointment
//!
//! * Identified by SCH-2 filler (`{base}/filler-appointment`) then SCH-1
//!   placer (`{base}/placer-appointment`) appointment id; both empty → 101.
//!   S12 creates (or updates a resend) with status booked; S13 reschedule
//!   (booked, new times), S14 modification (status kept), S15 cancellation
//!   (cancelled, SCH-6 → cancelationReason), S17 deletion
//!   (entered-in-error), S26 no-show (noshow) need a known appointment (204
//!   at SCH-2, or SCH-1 when only that is given).
//! * start/end: SCH-11 TQ start (component 4) and end (5); else start from
//!   AIS-4 (or AIG-8, AIL-6, AIP-6) and end = start + duration (AIS-7/AIS-8,
//!   else SCH-9/SCH-10; units minutes by default, hours, days, seconds;
//!   another unit is 103). FHIR wants start and end together: with a start
//!   and no end, the start goes to requestedPeriod.
//! * participant: the patient, AIP-3 Practitioners (AIP-4 role → type),
//!   AIL-3 Locations (the PV1-3 hierarchy rules), AIG-3 resources as a
//!   display-only actor; all `required`/`accepted`; rebuilt from each
//!   message. SCH-6 → reasonCode (S15: cancelationReason), SCH-7
//!   (table 0276) → appointmentType, the binding FHIR R4 gives it and what
//!   Wardline sends there (SCH-8, table 0277, only when SCH-7 is empty);
//!   `codes::SCH_*`. serviceType AIS-3.
//!
//! # MDM → DocumentReference
//!
//! * T01–T11. Identified by TXA-12 (`{base}/document`, also the
//!   masterIdentifier; empty → 101). TXA-2 → type (v2-0270); TXA-6
//!   origination (else TXA-4 activity) → date; TXA-4 → context.period.start;
//!   TXA-9 originator and TXA-5 provider → author; PV1-19 → context.encounter
//!   when known. TXA-17 (table 0271) → docStatus: AU/LA final, DI/DO/IN/IP/PA
//!   preliminary; TXA-19 (table 0273) → status: AV/UN current, CA
//!   entered-in-error, OB superseded; T11 → entered-in-error; unknown codes
//!   103. TXA-13 parent document on T05/T06 (addendum) → relatesTo
//!   `appends`, on T09/T10 (replacement) → `replaces` and the parent becomes
//!   superseded.
//! * Content: the OBX values (TX/FT/ST…, repetitions and segments joined by
//!   line breaks) as one `text/plain` attachment, base64 in `data`; each ED
//!   OBX as an attachment of its own type. A notification without OBX keeps
//!   the stored content, or gets a `text/plain` attachment without data
//!   (titled TXA-16) since content is required.
pub mod adt;
mod document;
mod matching;
mod orders;
mod patient;
pub(crate) mod pharmacy;
mod replies;
mod sched;
pub(crate) mod ts;
pub(crate) mod util;

use wardline_hl7::Message;

use crate::records::TxRecords;
use crate::{MapError, MappingConfig};

/// What a message did.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The patient the message was about.
    pub patient_id: Option<String>,
    /// One line for the message log (`ADT^A01: Patient/r1, Encounter/r4 …`).
    pub summary: String,
}

const ADT_EVENTS: &[&str] = &[
    "A01", "A02", "A03", "A04", "A05", "A06", "A07", "A08", "A11", "A12", "A13", "A21", "A22",
    "A28", "A31", "A38", "A40",
];

const SIU_EVENTS: &[&str] = &["S12", "S13", "S14", "S15", "S17", "S26"];

const MDM_EVENTS: &[&str] = &[
    "T01", "T02", "T03", "T04", "T05", "T06", "T07", "T08", "T09", "T10", "T11",
];

/// Whether MSH-9 type^event is mapped.
pub fn is_supported(message_type: &str, trigger_event: &str) -> bool {
    match message_type {
        "ADT" => ADT_EVENTS.contains(&trigger_event),
        "ORM" => trigger_event == "O01",
        "OML" => trigger_event == "O21",
        "ORL" => trigger_event == "O22",
        "ORR" => trigger_event == "O02",
        "ORU" => trigger_event == "R01",
        "RDE" => trigger_event == "O11",
        "SIU" => SIU_EVENTS.contains(&trigger_event),
        "MDM" => MDM_EVENTS.contains(&trigger_event),
        _ => false,
    }
}

/// Whether Wardline maps some events of this message type (an unmapped event
/// of it is error 201, an unmapped type 200).
pub fn is_known_type(message_type: &str) -> bool {
    matches!(
        message_type,
        "ADT" | "ORM" | "OML" | "ORL" | "ORR" | "ORU" | "RDE" | "SIU" | "MDM"
    )
}

/// Applies the message to the record (see the module doc), now.
pub fn apply(
    msg: &Message<'_>,
    records: &mut TxRecords<'_, '_>,
    cfg: &MappingConfig,
) -> Result<Applied, MapError> {
    apply_at(msg, records, cfg, time::OffsetDateTime::now_utc())
}

/// [`apply`] at a given time (when results are notified).
pub fn apply_at(
    msg: &Message<'_>,
    records: &mut TxRecords<'_, '_>,
    cfg: &MappingConfig,
    now: time::OffsetDateTime,
) -> Result<Applied, MapError> {
    let ty = msg.message_type().unwrap_or_default().trim().to_owned();
    let ev = msg.trigger_event().unwrap_or_default().trim().to_owned();
    if !is_supported(&ty, &ev) {
        return Err(if is_known_type(&ty) {
            MapError::unsupported(
                201,
                format!("MSH-9 event '{ty}^{ev}' is not mapped for message type {ty}"),
            )
        } else {
            MapError::unsupported(200, format!("MSH-9 message type '{ty}^{ev}' is not mapped"))
        });
    }
    match ty.as_str() {
        "ADT" => adt::apply(msg, records, cfg, &ev),
        "ORM" | "OML" => orders::apply_order(msg, records, cfg, &format!("{ty}^{ev}")),
        "ORL" | "ORR" => replies::apply_reply(msg, records, cfg, &format!("{ty}^{ev}")),
        "ORU" => orders::apply_result(msg, records, cfg, now),
        "RDE" => pharmacy::apply_rde(msg, records, cfg, now),
        "SIU" => sched::apply(msg, records, cfg, &ev),
        "MDM" => document::apply(msg, records, cfg, &ev),
        _ => Err(MapError::unsupported(
            200,
            format!("MSH-9 message type '{ty}^{ev}' is not mapped"),
        )),
    }
}
