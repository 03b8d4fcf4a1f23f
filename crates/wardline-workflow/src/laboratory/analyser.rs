//! Results from an analyser's file.
//!
//! # The file
//!
//! UTF-8 CSV (RFC 4180 fields: comma-separated, a field with a comma or a
//! quote in double quotes), one result per line, four columns:
//!
//! ```text
//! specimen barcode,analyte code,value,unit
//! R0000012-1,718-7,131,g/L
//! R0000012-1,http://loinc.org|6690-2,14.2,10*9/L
//! ```
//!
//! * `specimen barcode` — the tube's label (the Specimen identifier).
//! * `analyte code` — as the catalogue has it, bare (`718-7`) or
//!   `system|code`.
//! * `value` — a decimal as the analyser printed it (or text, for an
//!   analyte without a unit).
//! * `unit` — optional; when given it must be the analyte's UCUM unit
//!   exactly (a file in other units is refused rather than converted).
//!
//! A first row whose first field is `specimen`, `barcode` or
//! `specimen barcode` is a header; blank lines and lines starting with `#`
//! are skipped. The file is one transaction: any bad row refuses the whole
//! file, naming its line, and nothing is entered. Each row goes to the
//! report, on that tube, of the test that produces the analyte, through
//! [`super::enter_results_in`] — the same rules as typing it in.

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;
use wardline_core::{Access, FhirService, Tx};

use super::bench::{authorised_reason, orderable_of};
use super::{LabError, SPECIMEN_ID, begin, clean_barcode, code_matches};
use crate::fhir::reference_id;
use crate::orders::catalogue::Catalogue;

/// One row of an analyser file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnalyserRow {
    /// The line in the file (from 1).
    pub line: u64,
    pub barcode: String,
    pub code: String,
    pub value: String,
    pub unit: Option<String>,
}

/// A report on a tube awaiting results: its id and its analytes' (code, unit).
type OpenReport = (String, Vec<(serde_json::Value, Option<String>)>);

/// What an import entered.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ImportReport {
    pub rows: usize,
    /// The reports given results.
    pub reports: Vec<String>,
}

/// Reads an analyser file (see the module documentation).
pub fn parse_csv(text: &str) -> Result<Vec<AnalyserRow>, LabError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i as u64 + 1;
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let mut rd = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(raw.as_bytes());
        let rec = match rd.records().next() {
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                return Err(LabError::invalid(format!(
                    "Analyser file, line {line}: {e}."
                )));
            }
            None => continue,
        };
        if rec.iter().all(str::is_empty) {
            continue;
        }
        let first = rec.get(0).unwrap_or_default();
        if out.is_empty()
            && matches!(
                first.to_ascii_lowercase().as_str(),
                "specimen" | "barcode" | "specimen barcode"
            )
        {
            continue;
        }
        if !(3..=4).contains(&rec.len()) {
            return Err(LabError::invalid(format!(
                "Analyser file, line {line}: expected 4 fields (specimen barcode, analyte code, value, unit), found {}.",
                rec.len()
            )));
        }
        let field = |k: usize, name: &str| -> Result<String, LabError> {
            let v = rec.get(k).unwrap_or_default();
            if v.is_empty() {
                Err(LabError::invalid(format!(
                    "Analyser file, line {line}: the {name} is empty."
                )))
            } else {
                Ok(v.to_owned())
            }
        };
        let barcode = field(0, "specimen barcode")?;
        let barcode = clean_barcode(&barcode)
            .map_err(|e| LabError::invalid(format!("Analyser file, line {line}: {}", e.message)))?;
        out.push(AnalyserRow {
            line,
            barcode,
            code: field(1, "analyte code")?,
            value: field(2, "value")?,
            unit: rec.get(3).filter(|u| !u.is_empty()).map(str::to_owned),
        });
    }
    if out.is_empty() {
        return Err(LabError::invalid(
            "Analyser file: there are no results in it.",
        ));
    }
    Ok(out)
}

/// Imports an analyser file now.
pub fn import_csv(
    svc: &FhirService,
    access: &dyn Access,
    catalogue: &Catalogue,
    text: &str,
) -> Result<ImportReport, LabError> {
    import_csv_at(svc, access, catalogue, text, svc.now())
}

/// [`import_csv`] at a given time.
pub fn import_csv_at(
    svc: &FhirService,
    access: &dyn Access,
    catalogue: &Catalogue,
    text: &str,
    now: OffsetDateTime,
) -> Result<ImportReport, LabError> {
    let rows = parse_csv(text)?;
    let mut tx = begin(svc, access, "lab-import", "U")?;
    let r = import_in(&mut tx, catalogue, &rows, now)?;
    tx.commit()?;
    Ok(r)
}

/// [`import_csv`] inside a transaction, for parsed rows.
pub fn import_in(
    tx: &mut Tx<'_>,
    catalogue: &Catalogue,
    rows: &[AnalyserRow],
    now: OffsetDateTime,
) -> Result<ImportReport, LabError> {
    let at_line =
        |line: u64, m: &str| LabError::invalid(format!("Analyser file, line {line}: {m}"));
    // report id → its values, in file order.
    let mut per_report: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    // barcode → the tube's open reports with their analytes.
    let mut tubes: BTreeMap<String, Vec<OpenReport>> = BTreeMap::new();
    for row in rows {
        if !tubes.contains_key(&row.barcode) {
            let q: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("identifier", &format!("{SPECIMEN_ID}|{}", row.barcode))
                .append_pair("_count", "2")
                .finish();
            let found = tx.find("Specimen", &q)?;
            let [spec] = found.as_slice() else {
                return Err(at_line(
                    row.line,
                    &format!("no specimen has the barcode {}.", row.barcode),
                ));
            };
            if spec["receivedTime"].is_null() {
                return Err(at_line(
                    row.line,
                    &format!(
                        "specimen {} has not been received: receive it before its results.",
                        row.barcode
                    ),
                ));
            }
            let sid = spec["id"].as_str().unwrap_or_default();
            let mut reports = Vec::new();
            for dr in tx.find("DiagnosticReport", &format!("specimen=Specimen/{sid}"))? {
                if !super::is_lab_record(&dr) || authorised_reason(&dr).is_some() {
                    continue;
                }
                let Some(sr_id) = dr["basedOn"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find_map(|r| reference_id(r, "ServiceRequest"))
                else {
                    continue;
                };
                let Some(sr) = tx.get("ServiceRequest", sr_id)? else {
                    continue;
                };
                let analytes = orderable_of(catalogue, &sr)
                    .map(|o| {
                        o.analytes
                            .iter()
                            .map(|a| (a.code.clone(), a.unit.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                reports.push((dr["id"].as_str().unwrap_or_default().to_owned(), analytes));
            }
            tubes.insert(row.barcode.clone(), reports);
        }
        let reports = tubes.get(&row.barcode).map(Vec::as_slice).unwrap_or(&[]);
        let target = reports.iter().find_map(|(id, analytes)| {
            analytes
                .iter()
                .find(|(c, _)| code_matches(c, &row.code))
                .map(|(_, unit)| (id, unit))
        });
        let Some((report, unit)) = target else {
            return Err(at_line(
                row.line,
                &format!(
                    "no test awaiting results on specimen {} produces analyte {}.",
                    row.barcode, row.code
                ),
            ));
        };
        if let (Some(given), Some(expected)) = (&row.unit, unit)
            && given != expected
        {
            return Err(at_line(
                row.line,
                &format!(
                    "analyte {} is reported in {expected}, not {given}: the file is not converted.",
                    row.code
                ),
            ));
        }
        per_report
            .entry(report.clone())
            .or_default()
            .push((row.code.clone(), row.value.clone()));
    }
    let mut done = ImportReport {
        rows: rows.len(),
        reports: Vec::new(),
    };
    for (report, values) in per_report {
        super::enter_results_in(tx, catalogue, &report, &values, now).map_err(|e| {
            let line = rows
                .iter()
                .find(|r| values.iter().any(|(c, _)| *c == r.code))
                .map(|r| r.line)
                .unwrap_or(0);
            LabError {
                message: format!("Analyser file, near line {line}: {}", e.message),
                ..e
            }
        })?;
        done.reports.push(report);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_file_with_a_header_and_comments() {
        let rows = parse_csv(
            "specimen barcode,analyte code,value,unit\n# run 12\n\nR0000001-1, 718-7 ,131,g/L\nR0000001-1,\"http://loinc.org|6690-2\",14.2,\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 4);
        assert_eq!(rows[0].code, "718-7");
        assert_eq!(rows[0].unit.as_deref(), Some("g/L"));
        assert_eq!(rows[1].code, "http://loinc.org|6690-2");
        assert_eq!(rows[1].unit, None);
    }

    #[test]
    fn bad_rows_name_their_line() {
        let e = parse_csv("R1-1,718-7,131,g/L\nR1-1,,5,g/L\n").unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(
            e.message.contains("line 2") && e.message.contains("analyte code"),
            "{e}"
        );
        let e = parse_csv("R1-1,718-7\n").unwrap_err();
        assert!(
            e.message.contains("line 1") && e.message.contains("4 fields"),
            "{e}"
        );
        assert!(
            parse_csv("specimen,code,value,unit\n").is_err(),
            "no results"
        );
    }

    proptest! {
        /// Whatever the fields hold (commas, quotes, spaces inside), a file
        /// written by a CSV writer reads back row for row.
        #[test]
        fn written_files_read_back(rows in proptest::collection::vec(
            ("R[0-9]{7}-[1-9]", "[A-Za-z0-9|:/.,\" -]{0,20}[A-Za-z0-9]", "[0-9]{1,4}(\\.[0-9]{1,3})?", proptest::option::of("[a-zA-Z/*0-9]{1,8}")), 1..20)) {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(["specimen barcode", "analyte code", "value", "unit"]).unwrap();
            for (b, c, v, u) in &rows {
                w.write_record([b.as_str(), c.as_str(), v.as_str(), u.as_deref().unwrap_or("")]).unwrap();
            }
            let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
            let back = parse_csv(&text).unwrap();
            prop_assert_eq!(back.len(), rows.len());
            for (r, (b, c, v, u)) in back.iter().zip(&rows) {
                prop_assert_eq!(&r.barcode, b);
                prop_assert_eq!(&r.code, c.trim());
                prop_assert_eq!(&r.value, v);
                prop_assert_eq!(&r.unit, u);
            }
        }
    }
}
