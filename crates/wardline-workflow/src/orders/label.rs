//! Specimen labels: what is printed on a tube, and its barcode.
//!
//! One label per `Specimen` of a requisition (see [`super::request`]): the
//! patient's name, NHS number, date of birth and hospital number, the
//! requisition, the tube (container type and cap colour), the tests in it,
//! the priority, and a **Code 128** barcode of the specimen's identifier
//! (`WL/Id/specimen`, e.g. `R0000042-1`) with the same text printed under
//! it — exactly the value the laboratory's reception scans to find the
//! specimen. The bars come from the `barcoders` crate (character set B:
//! printable ASCII); the SVG is drawn here, with a quiet zone of ten modules
//! on each side (ISO/IEC 15417 asks for at least ten) and only presentation
//! attributes (the UI's Content-Security-Policy forbids inline styles).

use barcoders::sym::code128::Code128;
use serde::Serialize;

use super::request::{OrdersError, Requisition};

/// Modules of white space either side of the bars.
pub const QUIET_ZONE: usize = 10;
/// Width of one module, in SVG user units (pixels on screen).
const MODULE: usize = 2;
const BAR_HEIGHT: usize = 64;
const TEXT_HEIGHT: usize = 20;

/// The bars of `value` in Code 128 (set B), one entry per module (1 bar,
/// 0 space), without quiet zones. Refused when `value` is empty or has a
/// character set B cannot carry (only printable ASCII).
pub fn modules(value: &str) -> Result<Vec<u8>, OrdersError> {
    if value.is_empty() || !value.chars().all(|c| (' '..='~').contains(&c)) {
        return Err(OrdersError::Invalid(format!(
            "'{value}' cannot be printed as a barcode: use letters, digits and punctuation only."
        )));
    }
    let code = Code128::new(format!("\u{0181}{value}")).map_err(|e| {
        OrdersError::Invalid(format!("'{value}' cannot be printed as a barcode: {e}."))
    })?;
    Ok(code.encode())
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A standalone SVG of `value` as a Code 128 barcode with quiet zones and
/// the value in text under the bars.
pub fn barcode_svg(value: &str) -> Result<String, OrdersError> {
    let bars = modules(value)?;
    let width = (bars.len() + 2 * QUIET_ZONE) * MODULE;
    let height = BAR_HEIGHT + TEXT_HEIGHT;
    let mut rects = String::new();
    let mut i = 0;
    while i < bars.len() {
        if bars[i] == 1 {
            let start = i;
            while i < bars.len() && bars[i] == 1 {
                i += 1;
            }
            rects.push_str(&format!(
                r#"<rect x="{}" y="0" width="{}" height="{BAR_HEIGHT}"/>"#,
                (QUIET_ZONE + start) * MODULE,
                (i - start) * MODULE
            ));
        } else {
            i += 1;
        }
    }
    let text = xml_escape(value);
    Ok(format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="wl-barcode" role="img" aria-label="Barcode {text}" width="{width}" height="{height}" viewBox="0 0 {width} {height}" shape-rendering="crispEdges" data-barcode="{text}"><rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/><g fill="#000">{rects}</g><text x="{}" y="{}" text-anchor="middle" font-family="monospace" font-size="16" fill="#000">{text}</text></svg>"##,
        width / 2,
        BAR_HEIGHT + TEXT_HEIGHT - 4
    ))
}

/// What one label carries.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Label {
    /// The specimen identifier: the barcode's value.
    pub specimen: String,
    pub requisition: String,
    /// `SMITH, John`.
    pub patient_name: String,
    /// Formatted `943 476 5919`.
    pub nhs_number: Option<String>,
    pub hospital_number: Option<String>,
    /// `YYYY-MM-DD`.
    pub birth_date: Option<String>,
    pub container: String,
    pub colour: Option<String>,
    pub specimen_type: String,
    pub tests: Vec<String>,
    pub priority: String,
    /// When the request was made.
    pub requested: String,
    /// The barcode, an SVG.
    pub barcode: String,
}

/// The labels of a requisition, one per specimen, in specimen order.
pub fn labels(r: &Requisition) -> Result<Vec<Label>, OrdersError> {
    r.specimens
        .iter()
        .map(|s| {
            Ok(Label {
                specimen: s.identifier.clone(),
                requisition: r.requisition.clone(),
                patient_name: r.patient.display_name.clone(),
                nhs_number: r.patient.nhs_number.clone(),
                hospital_number: r.patient.hospital_number.clone(),
                birth_date: r.patient.birth_date.clone(),
                container: s.container.clone(),
                colour: s.colour.clone(),
                specimen_type: s.specimen_type.clone(),
                tests: s.tests.clone(),
                priority: r.priority.clone(),
                requested: r.authored_on.clone(),
                barcode: barcode_svg(&s.identifier)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes Code 128 set B modules back to text (the test's own reader,
    /// written from the symbology's table, not from the encoder).
    fn decode(m: &[u8]) -> String {
        // Widths of each symbol: runs of equal modules.
        let mut runs = Vec::new();
        let mut i = 0;
        while i < m.len() {
            let s = i;
            while i < m.len() && m[i] == m[s] {
                i += 1;
            }
            runs.push(i - s);
        }
        // Start B = 211214; each symbol six runs; stop 2331112 (7 runs).
        let patterns = table();
        let mut values = Vec::new();
        let mut k = 0;
        while k + 7 <= runs.len() || k + 6 <= runs.len() {
            let sym: String = runs[k..(k + 6).min(runs.len())]
                .iter()
                .map(|w| char::from(b'0' + *w as u8))
                .collect();
            if sym == "233111" {
                break;
            }
            let v = patterns
                .iter()
                .position(|p| *p == sym)
                .unwrap_or_else(|| panic!("no symbol {sym}"));
            values.push(v);
            k += 6;
        }
        assert_eq!(values[0], 104, "start code B");
        let data = &values[1..values.len() - 1];
        let check = values[values.len() - 1];
        let sum: usize = 104
            + data
                .iter()
                .enumerate()
                .map(|(i, v)| (i + 1) * v)
                .sum::<usize>();
        assert_eq!(sum % 103, check, "check symbol");
        data.iter().map(|v| char::from((v + 32) as u8)).collect()
    }

    fn table() -> Vec<String> {
        "212222 222122 222221 121223 121322 131222 122213 122312 132212 221213 \
         221312 231212 112232 122132 122231 113222 123122 123221 223211 221132 \
         221231 213212 223112 312131 311222 321122 321221 312212 322112 322211 \
         212123 212321 232121 111323 131123 131321 112313 132113 132311 211313 \
         231113 231311 112133 112331 132131 113123 113321 133121 313121 211331 \
         231131 213113 213311 213131 311123 311321 331121 312113 312311 332111 \
         314111 221411 431111 111224 111422 121124 121421 141122 141221 112214 \
         112412 122114 122411 142112 142211 241211 221114 413111 241112 134111 \
         111242 121142 121241 114212 124112 124211 411212 421112 421211 212141 \
         214121 412121 111143 111341 131141 114113 114311 411113 411311 113141 \
         114131 311141 411131 211412 211214 211232"
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn the_bars_decode_back_to_the_specimen_identifier() {
        for v in ["R0000001-1", "R1234567-12", "ABC xyz ~!"] {
            assert_eq!(decode(&modules(v).unwrap()), v);
        }
    }

    #[test]
    fn the_svg_has_quiet_zones_and_the_text() {
        let svg = barcode_svg("R0000042-1").unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains(">R0000042-1</text>"), "{svg}");
        assert!(svg.contains(r#"data-barcode="R0000042-1""#));
        // The first bar starts after the quiet zone.
        let first = svg.split(r##"<g fill="#000"><rect x=""##).nth(1).unwrap();
        let x: usize = first.split('"').next().unwrap().parse().unwrap();
        assert_eq!(x, QUIET_ZONE * MODULE);
        // No inline style (the CSP forbids it).
        assert!(!svg.contains("style="), "{svg}");
    }

    #[test]
    fn what_cannot_be_a_barcode_is_refused() {
        assert!(modules("").is_err());
        assert!(modules("R000\u{e9}").is_err());
        assert!(barcode_svg("tab\there").is_err());
    }

    proptest::proptest! {
        /// Any printable ASCII text round-trips through the bars.
        #[test]
        fn printable_ascii_round_trips(v in "[ -~]{1,24}") {
            proptest::prop_assert_eq!(decode(&modules(&v).unwrap()), v);
        }
    }
}
