//! A message as people read it: one line per value, named by its position
//! (`PID-3[2].1`, segment, field, repetition, component, subcomponent) and
//! decoded, as the "tree" views of the common HL7 tools show it; and what
//! makes a header complete enough to be a message at all.

use std::fmt::Write as _;

use crate::message::Message;
use crate::segment::Segment;

/// The fields every message's header carries, by number and name: without
/// them no reply can be addressed or acknowledged.
pub const REQUIRED_HEADER: [(usize, &str); 3] = [
    (9, "message type"),
    (10, "message control id"),
    (12, "version id"),
];

impl Message<'_> {
    /// The message as indented lines, one per non-empty value:
    ///
    /// ```text
    /// MSH (line 1)
    ///   MSH-9.1      ADT
    ///   MSH-9.2      A01
    /// PID (line 2)
    ///   PID-3[1].1   9434765919
    /// ```
    ///
    /// The repetition is shown only for a field with more than one, the
    /// component only for a field with more than one, the subcomponent
    /// likewise. MSH-1 and MSH-2 (the separators) are shown as written.
    pub fn tree(&self) -> String {
        let mut out = String::new();
        for s in self.segments() {
            segment_tree(s, &mut out);
        }
        out
    }

    /// The first of [`REQUIRED_HEADER`] that the header does not reach or
    /// leaves empty, with the number of the header's last field: `Some((9,
    /// "message type", 2))` for a message cut off after MSH-2.
    pub fn header_gap(&self) -> Option<(usize, &'static str, usize)> {
        let h = self.header();
        let last = h.field_count();
        REQUIRED_HEADER
            .into_iter()
            .find(|(n, _)| h.field(*n).is_none_or(|f| f.is_empty()))
            .map(|(n, name)| (n, name, last))
    }
}

fn segment_tree(s: &Segment<'_>, out: &mut String) {
    let id = s.id();
    let _ = writeln!(out, "{id} (line {})", s.line());
    for (i, f) in s.fields().enumerate() {
        let n = i + 1;
        if f.is_empty() {
            continue;
        }
        if s.is_header() && n <= 2 {
            let _ = writeln!(out, "  {:<14} {}", format!("{id}-{n}"), f.raw());
            continue;
        }
        let reps: Vec<_> = f.repetitions().collect();
        for (r, rep) in reps.iter().enumerate() {
            let comps: Vec<_> = rep.components().collect();
            for (c, comp) in comps.iter().enumerate() {
                let subs = comp.subcomponents().count();
                for sc in 1..=subs {
                    let text = comp.subcomponent_text(sc).unwrap_or_default();
                    if text.is_empty() {
                        continue;
                    }
                    let mut name = format!("{id}-{n}");
                    if reps.len() > 1 {
                        let _ = write!(name, "[{}]", r + 1);
                    }
                    if comps.len() > 1 || subs > 1 {
                        let _ = write!(name, ".{}", c + 1);
                    }
                    if subs > 1 {
                        let _ = write!(name, ".{sc}");
                    }
                    let _ = writeln!(out, "  {name:<14} {text}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::message::Message;

    #[test]
    fn a_tree_names_every_value_by_its_position() {
        let m = Message::parse(
            "MSH|^~\\&|PAS|RWG|||20261123090000||ADT^A01|MSG001|P|2.4\r\
             PID|1||9434765919^^^NHS~RWG1^^^PAS&1.2&ISO||SMITH^JANE||19700101|F\r\
             NTE|1||Ward 7 \\T\\ bay 2\r",
        )
        .unwrap();
        let t = m.tree();
        let lines: Vec<&str> = t.lines().map(str::trim_end).collect();
        assert_eq!(lines[0], "MSH (line 1)");
        assert!(lines.contains(&"  MSH-2          ^~\\&"), "{t}");
        assert!(lines.contains(&"  MSH-9.1        ADT"), "{t}");
        assert!(lines.contains(&"  MSH-9.2        A01"), "{t}");
        assert!(lines.contains(&"  MSH-12         2.4"), "{t}");
        assert!(lines.contains(&"PID (line 2)"), "{t}");
        assert!(lines.contains(&"  PID-1          1"), "{t}");
        assert!(lines.contains(&"  PID-3[1].1     9434765919"), "{t}");
        assert!(lines.contains(&"  PID-3[2].4.1   PAS"), "{t}");
        assert!(lines.contains(&"  PID-3[2].4.2   1.2"), "{t}");
        assert!(lines.contains(&"  PID-5.2        JANE"), "{t}");
        assert!(lines.contains(&"  NTE-3          Ward 7 & bay 2"), "{t}");
        assert!(!t.contains("PID-2"), "empty fields are left out: {t}");
    }

    #[test]
    fn a_header_cut_short_says_where() {
        let whole = Message::parse("MSH|^~\\&|A|B|C|D|20261123||ADT^A01|X1|P|2.4\r").unwrap();
        assert_eq!(whole.header_gap(), None);
        let cut = Message::parse("MSH|^~\\&|A|B").unwrap();
        assert_eq!(cut.header_gap(), Some((9, "message type", 4)));
        let no_version = Message::parse("MSH|^~\\&|A|B|C|D|20261123||ADT^A01|X1|P\r").unwrap();
        assert_eq!(no_version.header_gap(), Some((12, "version id", 11)));
    }
}
