//! A signed clinical document (a discharge summary, a clinic letter: any
//! [`Summary`], titled by its `title`) as a PDF, written with `pdf-writer` in the PDF
//! base-14 fonts Helvetica and Helvetica-Bold (WinAnsi text; every PDF
//! reader has them, so nothing is embedded). Every heading and its
//! content, wrapped to the page width, across as many A4 pages as it
//! takes; the patient's name, NHS number and date of birth head every
//! page, and each page says its number of the total and the document's
//! status (a draft says it is not signed).
//!
//! `pdf-writer` writes PDF objects but does not lay text out, so the line
//! breaking is here, measured with the Helvetica widths of the Adobe font
//! metrics (the glyph widths below, in thousandths of the font size).

use pdf_writer::{Content, Name, Pdf, Rect, Ref, Str, TextStr};

use super::{Summary, display_time};

const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 50.0;
const BODY_TOP: f32 = PAGE_H - 100.0;
const BODY_BOTTOM: f32 = 60.0;
const SIZE: f32 = 10.0;
const LEADING: f32 = 13.0;

/// Helvetica glyph widths for the printable ASCII characters 32..=126.
const HELVETICA: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, // ' '../
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, // 0-9
    278, 278, 584, 584, 584, 556, 1015, // :;<=>?@
    667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, 667, 778, 722, 667,
    611, 722, 667, 944, 667, 667, 611, // A-Z
    278, 278, 278, 469, 556, 333, // [\]^_`
    556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500,
    278, 556, 500, 722, 500, 500, 500, // a-z
    334, 260, 334, 584, // {|}~
];

/// Text in WinAnsi (the PDF's encoding for the base-14 fonts): Latin-1
/// as it is, typographic quotes and dashes as their WinAnsi codes, anything
/// else as `?`.
pub fn win_ansi(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| match c {
            '\u{20}'..='\u{7e}' | '\u{a0}'..='\u{ff}' => c as u8,
            '\u{2018}' => 0x91,
            '\u{2019}' => 0x92,
            '\u{201c}' => 0x93,
            '\u{201d}' => 0x94,
            '\u{2022}' => 0x95,
            '\u{2013}' => 0x96,
            '\u{2014}' => 0x97,
            '\u{20ac}' => 0x80,
            '\t' => b' ',
            _ => b'?',
        })
        .collect()
}

/// The width of `s` in points at `size` (bold is wider: measured 10% wide).
pub fn width(s: &str, size: f32, bold: bool) -> f32 {
    let units: u32 = win_ansi(s)
        .iter()
        .map(|b| match b {
            32..=126 => u32::from(HELVETICA[usize::from(b - 32)]),
            _ => 667,
        })
        .sum();
    let w = units as f32 * size / 1000.0;
    if bold { w * 1.1 } else { w }
}

/// `text` broken into lines no wider than `max` points.
pub fn wrap(text: &str, size: f32, bold: bool, max: f32) -> Vec<String> {
    let mut out = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        for word in para.split_whitespace() {
            let candidate = if line.is_empty() {
                word.to_owned()
            } else {
                format!("{line} {word}")
            };
            if width(&candidate, size, bold) <= max {
                line = candidate;
                continue;
            }
            if !line.is_empty() {
                out.push(std::mem::take(&mut line));
            }
            // A word wider than the line is cut.
            let mut w = String::new();
            for ch in word.chars() {
                w.push(ch);
                if width(&w, size, bold) > max {
                    w.pop();
                    out.push(std::mem::take(&mut w));
                    w.push(ch);
                }
            }
            line = w;
        }
        out.push(line);
    }
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Style {
    Title,
    Heading,
    Body,
}

struct Line {
    text: String,
    style: Style,
    indent: f32,
    /// Space before it.
    gap: f32,
}

fn layout(s: &Summary) -> Vec<Line> {
    let max = PAGE_W - 2.0 * MARGIN;
    let mut lines = Vec::new();
    let mut push = |text: &str, style: Style, indent: f32, gap: f32| {
        let (size, bold) = match style {
            Style::Title => (16.0, true),
            Style::Heading => (12.0, true),
            Style::Body => (SIZE, false),
        };
        for (i, l) in wrap(text, size, bold, max - indent).into_iter().enumerate() {
            lines.push(Line {
                text: l,
                style,
                indent,
                gap: if i == 0 { gap } else { 0.0 },
            });
        }
    };
    push(&s.title, Style::Title, 0.0, 0.0);
    let state = match (s.status.as_str(), &s.signed) {
        ("final", Some(sig)) => format!("Signed by {} on {}.", sig.name, display_time(&sig.at)),
        ("amended", Some(sig)) => format!(
            "Amended and signed again by {} on {}.",
            sig.name,
            display_time(&sig.at)
        ),
        _ => format!(
            "DRAFT: not signed. This is not the {} until a clinician signs it.",
            s.title.to_lowercase()
        ),
    };
    push(&state, Style::Body, 0.0, 6.0);
    for sec in &s.sections {
        push(&sec.title, Style::Heading, 0.0, 12.0);
        for l in &sec.lines {
            push(&format!("- {l}"), Style::Body, 8.0, 2.0);
        }
        if let Some(e) = &sec.empty {
            push(e, Style::Body, 8.0, 2.0);
        }
        if let Some(w) = &sec.written {
            for p in w.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
                push(p, Style::Body, 8.0, 4.0);
            }
        }
    }
    lines
}

fn header(s: &Summary) -> [String; 2] {
    [
        format!("{} - {}", s.patient.name, s.title),
        format!(
            "NHS number: {}   Date of birth: {}",
            s.patient.nhs_number.as_deref().unwrap_or("not recorded"),
            s.patient.birth_date.as_deref().unwrap_or("not recorded"),
        ),
    ]
}

/// The document as a PDF.
pub fn render(s: &Summary) -> Vec<u8> {
    let lines = layout(s);
    // Paginate.
    let mut pages: Vec<Vec<(f32, &Line)>> = vec![Vec::new()];
    let mut y = BODY_TOP;
    for l in &lines {
        let h = match l.style {
            Style::Title => 22.0,
            Style::Heading => 16.0,
            Style::Body => LEADING,
        } + l.gap;
        // Keep a heading with the line after it.
        let need = if l.style == Style::Heading {
            h + LEADING
        } else {
            h
        };
        if y - need < BODY_BOTTOM && pages.last().is_some_and(|p| !p.is_empty()) {
            pages.push(Vec::new());
            y = BODY_TOP;
        }
        y -= h;
        if let Some(p) = pages.last_mut() {
            p.push((y, l));
        }
    }
    let n = pages.len();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let regular = Ref::new(3);
    let bold = Ref::new(4);
    let info = Ref::new(5);
    let first = 6;
    let page_ref = |i: usize| Ref::new(first + 2 * i32::try_from(i).unwrap_or(0));
    let content_ref = |i: usize| Ref::new(first + 2 * i32::try_from(i).unwrap_or(0) + 1);
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids((0..n).map(page_ref))
        .count(i32::try_from(n).unwrap_or(i32::MAX));
    pdf.type1_font(regular)
        .base_font(Name(b"Helvetica"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold)
        .base_font(Name(b"Helvetica-Bold"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    {
        let title = format!("{} - {}", s.title, s.patient.name);
        let mut di = pdf.document_info(info);
        di.title(TextStr(&title));
        di.producer(TextStr("Wardline"));
    }
    let head = header(s);
    let status = if matches!(s.status.as_str(), "final" | "amended") {
        s.status.clone()
    } else {
        "DRAFT - not signed".to_owned()
    };
    for (i, page) in pages.iter().enumerate() {
        let mut c = Content::new();
        // Identifiers on every page.
        c.begin_text();
        c.set_font(Name(b"F2"), 11.0);
        c.next_line(MARGIN, PAGE_H - 40.0);
        c.show(Str(&win_ansi(&head[0])));
        c.set_font(Name(b"F1"), 10.0);
        c.next_line(0.0, -14.0);
        c.show(Str(&win_ansi(&head[1])));
        c.end_text();
        c.set_line_width(0.5);
        c.move_to(MARGIN, PAGE_H - 64.0);
        c.line_to(PAGE_W - MARGIN, PAGE_H - 64.0);
        c.stroke();
        for (y, l) in page {
            let (font, size) = match l.style {
                Style::Title => (Name(b"F2"), 16.0),
                Style::Heading => (Name(b"F2"), 12.0),
                Style::Body => (Name(b"F1"), SIZE),
            };
            c.begin_text();
            c.set_font(font, size);
            c.next_line(MARGIN + l.indent, *y);
            c.show(Str(&win_ansi(&l.text)));
            c.end_text();
        }
        let foot = format!("Page {} of {n}   {status}", i + 1);
        c.begin_text();
        c.set_font(Name(b"F1"), 9.0);
        c.next_line(MARGIN, 30.0);
        c.show(Str(&win_ansi(&foot)));
        c.end_text();
        let data = c.finish();
        let mut pg = pdf.page(page_ref(i));
        pg.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H));
        pg.parent(tree);
        pg.contents(content_ref(i));
        {
            let mut res = pg.resources();
            let mut fonts = res.fonts();
            fonts.pair(Name(b"F1"), regular);
            fonts.pair(Name(b"F2"), bold);
        }
        drop(pg);
        pdf.stream(content_ref(i), &data);
    }
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_keeps_lines_within_the_width_and_every_word() {
        let text = "The patient was admitted with community acquired pneumonia and treated with antibiotics for five days with a good response. Supercalifragilisticexpialidocious".repeat(3);
        let lines = wrap(&text, 10.0, false, 200.0);
        assert!(lines.len() > 5);
        for l in &lines {
            assert!(width(l, 10.0, false) <= 200.0, "{l}");
        }
        assert_eq!(lines.join("").replace(' ', ""), text.replace(' ', ""));
    }

    #[test]
    fn win_ansi_maps_quotes_and_pound() {
        assert_eq!(
            win_ansi("£5 ‘a’ – b ☃"),
            b"\xa35 \x91a\x92 \x96 b ?".to_vec()
        );
    }
}
