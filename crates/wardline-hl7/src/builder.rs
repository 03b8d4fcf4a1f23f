//! Building messages from scratch: [`MessageBuilder`] and [`SegmentBuilder`].

use crate::error::ParseError;
use crate::escape::escape;
use crate::message::Message;
use crate::separators::Separators;

/// Builds a message segment by segment. MSH-1 and MSH-2 are written from the
/// separators; every text given to the setters is escaped, so any text
/// (delimiters, CR, LF included) reads back unchanged through
/// [`Message::text`]. Segments end with CR, the HL7 standard terminator,
/// unless [`MessageBuilder::terminator`] says otherwise.
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    seps: Separators,
    terminator: String,
    segments: Vec<SegmentBuilder>,
}

/// One segment under construction. Field numbers are HL7 numbers (1-based);
/// in MSH, fields 1 and 2 are the separators and cannot be set.
#[derive(Debug, Clone)]
pub struct SegmentBuilder {
    id: String,
    seps: Separators,
    /// Index 0 unused; raw (encoded) field values.
    fields: Vec<FieldValue>,
}

#[derive(Debug, Clone, Default)]
enum FieldValue {
    #[default]
    Empty,
    Raw(String),
    /// repetition → component → subcomponent, raw.
    Tree(Vec<Vec<Vec<String>>>),
}

impl MessageBuilder {
    /// A builder whose first segment is an MSH with these separators.
    pub fn new(seps: Separators) -> Self {
        MessageBuilder {
            seps,
            terminator: "\r".into(),
            segments: vec![SegmentBuilder::new("MSH", seps)],
        }
    }

    /// Segment terminator used when encoding (default `"\r"`).
    pub fn terminator(mut self, terminator: &str) -> Self {
        self.terminator = terminator.to_string();
        self
    }

    /// The MSH segment.
    pub fn msh(&mut self) -> &mut SegmentBuilder {
        &mut self.segments[0]
    }

    /// Appends a segment and returns it.
    pub fn segment(&mut self, id: &str) -> &mut SegmentBuilder {
        self.segments.push(SegmentBuilder::new(id, self.seps));
        self.segments.last_mut().expect("just pushed")
    }

    /// The encoded message.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for s in &self.segments {
            s.encode_into(&mut out);
            out.push_str(&self.terminator);
        }
        out
    }

    /// The encoded message, parsed. Fails only if a segment id given to
    /// [`MessageBuilder::segment`] is not a valid id (3 upper-case letters or
    /// digits) or is MSH/FHS/BHS/BTS/FTS, or the terminator is not CR/LF.
    pub fn build(&self) -> Result<Message<'static>, ParseError> {
        let text = self.encode();
        Message::parse(&text).map(Message::into_owned)
    }
}

impl SegmentBuilder {
    fn new(id: &str, seps: Separators) -> Self {
        SegmentBuilder {
            id: id.to_string(),
            seps,
            fields: Vec::new(),
        }
    }

    fn slot(&mut self, field: usize) -> Option<&mut FieldValue> {
        if field == 0 || (self.id == "MSH" && field <= 2) {
            return None;
        }
        if self.fields.len() <= field {
            self.fields.resize(field + 1, FieldValue::Empty);
        }
        Some(&mut self.fields[field])
    }

    /// Sets field `field` to `text` (escaped). Ignored for field 0 and MSH-1/2.
    pub fn set(&mut self, field: usize, text: &str) -> &mut Self {
        let raw = escape(text, &self.seps).into_owned();
        if let Some(slot) = self.slot(field) {
            *slot = FieldValue::Raw(raw);
        }
        self
    }

    /// Sets field `field` to an already-encoded value (written as is; it
    /// must use this message's separators and contain no field separator,
    /// CR or LF).
    pub fn set_raw(&mut self, field: usize, raw: &str) -> &mut Self {
        if let Some(slot) = self.slot(field) {
            *slot = FieldValue::Raw(raw.to_string());
        }
        self
    }

    /// Sets component `component` of the first repetition of `field`.
    pub fn set_component(&mut self, field: usize, component: usize, text: &str) -> &mut Self {
        self.set_at(field, 1, component, 1, text)
    }

    /// Sets one subcomponent, all positions 1-based. Other values already set
    /// in the same field as components or subcomponents are kept; a value set
    /// with [`SegmentBuilder::set`] or [`SegmentBuilder::set_raw`] is replaced.
    pub fn set_at(
        &mut self,
        field: usize,
        repetition: usize,
        component: usize,
        subcomponent: usize,
        text: &str,
    ) -> &mut Self {
        if repetition == 0 || component == 0 || subcomponent == 0 {
            return self;
        }
        let raw = escape(text, &self.seps).into_owned();
        let Some(slot) = self.slot(field) else {
            return self;
        };
        if !matches!(slot, FieldValue::Tree(_)) {
            *slot = FieldValue::Tree(Vec::new());
        }
        let FieldValue::Tree(reps) = slot else {
            return self;
        };
        if reps.len() < repetition {
            reps.resize(repetition, Vec::new());
        }
        let comps = &mut reps[repetition - 1];
        if comps.len() < component {
            comps.resize(component, Vec::new());
        }
        let subs = &mut comps[component - 1];
        if subs.len() < subcomponent {
            subs.resize(subcomponent, String::new());
        }
        subs[subcomponent - 1] = raw;
        self
    }

    fn encode_into(&self, out: &mut String) {
        let s = &self.seps;
        out.push_str(&self.id);
        let first = if self.id == "MSH" {
            out.push(s.field);
            out.push_str(&s.encoding_characters());
            3
        } else {
            1
        };
        for f in self.fields.iter().skip(first) {
            out.push(s.field);
            match f {
                FieldValue::Empty => {}
                FieldValue::Raw(r) => out.push_str(r),
                FieldValue::Tree(reps) => {
                    for (ri, comps) in reps.iter().enumerate() {
                        if ri > 0 {
                            // Without a repetition separator only one repetition can be written.
                            let Some(r) = s.repetition else { break };
                            out.push(r);
                        }
                        for (ci, subs) in comps.iter().enumerate() {
                            if ci > 0 {
                                out.push(s.component);
                            }
                            for (si, sub) in subs.iter().enumerate() {
                                if si > 0 {
                                    let Some(t) = s.subcomponent else { break };
                                    out.push(t);
                                }
                                out.push_str(sub);
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_from_scratch() {
        let mut b = MessageBuilder::new(Separators::default());
        b.msh()
            .set(3, "APP")
            .set_component(9, 1, "ADT")
            .set_component(9, 2, "A01")
            .set(10, "ID|1")
            .set(12, "2.5");
        b.segment("PID")
            .set_at(3, 2, 4, 2, "a&b")
            .set_at(3, 1, 1, 1, "111")
            .set(5, "line1\nline2");
        assert_eq!(
            b.encode(),
            "MSH|^~\\&|APP||||||ADT^A01|ID\\F\\1||2.5\rPID|||111~^^^&a\\T\\b||line1\\X0A\\line2\r"
        );
        let m = b.build().unwrap();
        assert_eq!(m.text("MSH-10").unwrap().unwrap(), "ID|1");
        assert_eq!(m.text("PID-3[2].4.2").unwrap().unwrap(), "a&b");
        assert_eq!(m.text("PID-5").unwrap().unwrap(), "line1\nline2");
        assert_eq!(m.message_type().unwrap(), "ADT");
        let mut b = MessageBuilder::new(Separators::default());
        b.msh().set(1, "x").set(2, "y");
        assert_eq!(b.encode(), "MSH|^~\\&\r");
        b.segment("bad");
        assert!(b.build().is_err());
    }
}
