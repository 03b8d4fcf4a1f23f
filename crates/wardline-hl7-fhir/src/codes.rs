//! The code tables both directions share: one table per v2 field, read by
//! the inbound mapping (v2 → FHIR) and the outbound one (FHIR → v2), so
//! what Wardline sends it reads back as the same thing.
//!
//! A table is a list of `(v2 code, FHIR code)` rows. Inbound takes the
//! first row whose v2 code matches (case-insensitive); outbound sends the
//! v2 code of the first row whose FHIR code matches. So the first row of
//! a FHIR code is the code Wardline sends, and later rows are the other
//! v2 codes it accepts for it. Where v2 has no code of its own for a FHIR
//! code, the row that sends it is documented beside the table: the code it
//! reads back as is then the one of that v2 code (the round trip changes
//! it, always to the safer value).
//!
//! Fields that carry a code without its system (PV1-10, PV1-14, PV1-36 are
//! IS fields) are read back with the system of their v2 table
//! ([`SERVICE_TYPE_SYSTEM`], [`ADMIT_SOURCE_SYSTEM`],
//! [`DISCHARGE_DISPOSITION_SYSTEM`]).

/// `(v2 code, FHIR code)` rows; see the module documentation.
pub type Rows = &'static [(&'static str, &'static str)];

/// The FHIR code of a v2 code (the first matching row, case-insensitive).
pub fn to_fhir(rows: Rows, v2: &str) -> Option<&'static str> {
    rows.iter()
        .find(|(v, _)| v.eq_ignore_ascii_case(v2.trim()))
        .map(|(_, f)| *f)
}

/// The v2 code sent for a FHIR code (the first matching row).
pub fn to_v2(rows: Rows, fhir: &str) -> Option<&'static str> {
    rows.iter().find(|(_, f)| *f == fhir).map(|(v, _)| *v)
}

/// The v2 codes of a table, for error messages (`I, E, O …`).
pub fn v2_codes(rows: Rows) -> String {
    let mut out: Vec<&str> = Vec::new();
    for (v, _) in rows {
        if !out.contains(v) {
            out.push(v);
        }
    }
    out.join(", ")
}

/// PV1-2 patient class (table 0004) ↔ `Encounter.class` (v3 ActCode).
/// ActCodes without a v2 class of their own go out as the nearest one
/// (ACUTE, NONAC, SS as `I`; HH, VR, FLD as `O`) and read back as IMP and
/// AMB. Any other class goes out as `U` (unknown), which inbound reads as
/// the event's default class. `N` (not applicable) and `U` are not in the
/// table for the same reason.
pub const PATIENT_CLASS: Rows = &[
    ("I", "IMP"),
    ("E", "EMER"),
    ("O", "AMB"),
    ("P", "PRENC"),
    ("B", "IMP"),
    ("R", "AMB"),
    ("C", "AMB"),
    ("I", "ACUTE"),
    ("I", "NONAC"),
    ("I", "SS"),
    ("O", "HH"),
    ("O", "VR"),
    ("O", "FLD"),
];

/// The display of the ActCodes inbound writes.
pub fn patient_class_display(act_code: &str) -> &'static str {
    match act_code {
        "IMP" => "inpatient encounter",
        "EMER" => "emergency",
        "AMB" => "ambulatory",
        _ => "pre-admission",
    }
}

/// Priority (TQ-6 of ORC-7/OBR-27, TQ1-9; table 0027) ↔
/// `ServiceRequest.priority`. Table 0027 has no code for FHIR's `urgent`:
/// Wardline sends it as `A` (ASAP), never as a lower priority, so an urgent
/// order read back is `asap`. `P` (pre-op) and `T` (timing critical) are
/// read as urgent, `C` (callback) and `PRN` as routine.
pub const PRIORITY: Rows = &[
    ("S", "stat"),
    ("A", "asap"),
    ("R", "routine"),
    ("A", "urgent"),
    ("P", "urgent"),
    ("T", "urgent"),
    ("C", "routine"),
    ("PRN", "routine"),
];

/// ORC-5 order status (table 0038) ↔ `ServiceRequest.status`.
pub const ORDER_STATUS: Rows = &[
    ("IP", "active"),
    ("HD", "on-hold"),
    ("CA", "revoked"),
    ("CM", "completed"),
    ("ER", "entered-in-error"),
    ("A", "active"),
    ("SC", "active"),
    ("DC", "revoked"),
    ("RP", "revoked"),
];

/// OBR-25 result status (table 0123) ↔ `DiagnosticReport.status`.
/// `amended` and `appended` have no code of their own and go out as `C`
/// (read back `corrected`); `partial` goes out as `P` (read back
/// `preliminary`, which FHIR defines as a kind of partial report; `A` is
/// read as partial); `entered-in-error` goes out as `X` (read back
/// `cancelled`: both withdraw the report).
pub const REPORT_STATUS: Rows = &[
    ("F", "final"),
    ("C", "corrected"),
    ("P", "preliminary"),
    ("P", "partial"),
    ("A", "partial"),
    ("X", "cancelled"),
    ("O", "registered"),
    ("I", "registered"),
    ("S", "registered"),
    ("R", "preliminary"),
    ("M", "corrected"),
    ("Y", "unknown"),
    ("Z", "unknown"),
    ("C", "amended"),
    ("C", "appended"),
    ("X", "entered-in-error"),
];

/// OBX-11 observation result status (table 0085) ↔ `Observation.status`
/// (`amended` goes out as `C`, read back `corrected`).
pub const OBSERVATION_STATUS: Rows = &[
    ("F", "final"),
    ("C", "corrected"),
    ("P", "preliminary"),
    ("I", "registered"),
    ("X", "cancelled"),
    ("W", "entered-in-error"),
    ("U", "final"),
    ("R", "preliminary"),
    ("S", "preliminary"),
    ("O", "registered"),
    ("N", "cancelled"),
    ("D", "entered-in-error"),
    ("C", "amended"),
];

/// SCH-6 event reason ↔ `Appointment.reasonCode` (the first; the
/// cancellation reason on S15/S26).
pub const SCH_REASON: usize = 6;
/// SCH-7 appointment reason (table 0276: ROUTINE, WALKIN, CHECKUP,
/// FOLLOWUP, EMERGENCY) ↔ `Appointment.appointmentType`, which FHIR R4
/// binds to that very table (v2-0276).
pub const SCH_APPOINTMENT_TYPE: usize = 7;
/// SCH-8 appointment type (table 0277: Normal, Tentative, Complete): read
/// as `appointmentType` only when SCH-7 is empty; Wardline sends none.
pub const SCH_TYPE_0277: usize = 8;

/// PV1-10 hospital service (table 0069) → `Encounter.serviceType`.
pub const SERVICE_TYPE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v2-0069";
/// PV1-14 admit source (table 0023) → `hospitalization.admitSource`.
pub const ADMIT_SOURCE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v2-0023";
/// PV1-36 discharge disposition (table 0112) →
/// `hospitalization.dischargeDisposition`.
pub const DISCHARGE_DISPOSITION_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v2-0112";

/// PID-32 identity reliability code (table 0445 as the NHS HL7 v2 ADT
/// specification extends it: `NSTS01`–`NSTS08`, the NHS Number Status
/// Indicator) ↔ the UK Core NHS number verification status (England codes
/// `01`–`08`). The bare codes `01`–`08` are accepted inbound too. Other
/// 0445 codes (`AL`, `UD`, …) are not about the NHS number and are not read.
pub const NHS_NUMBER_STATUS: Rows = &[
    ("NSTS01", "01"),
    ("NSTS02", "02"),
    ("NSTS03", "03"),
    ("NSTS04", "04"),
    ("NSTS05", "05"),
    ("NSTS06", "06"),
    ("NSTS07", "07"),
    ("NSTS08", "08"),
    ("01", "01"),
    ("02", "02"),
    ("03", "03"),
    ("04", "04"),
    ("05", "05"),
    ("06", "06"),
    ("07", "07"),
    ("08", "08"),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every FHIR code outbound sends reads back as itself, except the
    /// documented ones.
    #[test]
    fn what_is_sent_reads_back() {
        let lossy = [
            ("urgent", "asap"),
            ("ACUTE", "IMP"),
            ("NONAC", "IMP"),
            ("SS", "IMP"),
            ("HH", "AMB"),
            ("VR", "AMB"),
            ("FLD", "AMB"),
            ("amended", "corrected"),
            ("partial", "preliminary"),
            ("appended", "corrected"),
            ("entered-in-error", "cancelled"),
        ];
        for (name, rows) in [
            ("class", PATIENT_CLASS),
            ("priority", PRIORITY),
            ("order status", ORDER_STATUS),
            ("report status", REPORT_STATUS),
            ("observation status", OBSERVATION_STATUS),
        ] {
            for (_, fhir) in rows.iter() {
                let v2 = to_v2(rows, fhir).unwrap();
                let back = to_fhir(rows, v2).unwrap();
                let expected = lossy
                    .iter()
                    .find(|(f, _)| f == fhir && back != *fhir)
                    .map_or(*fhir, |(_, b)| *b);
                assert_eq!(back, expected, "{name}: {fhir} → {v2} → {back}");
            }
        }
        assert_eq!(to_fhir(PRIORITY, "prn"), Some("routine"));
        assert_eq!(to_v2(PATIENT_CLASS, "XYZ"), None);
        assert_eq!(v2_codes(PATIENT_CLASS), "I, E, O, P, B, R, C");
    }
}
