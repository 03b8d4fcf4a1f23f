//! Accessor paths in HL7 notation: `SEG[occ]-F[rep].C.S`, all 1-based.
//!
//! * `PID-3` — the whole field 3 of the first PID (all repetitions, raw);
//! * `PID-3[2]` — its second repetition;
//! * `PID-3.1` — component 1 of the first repetition; `PID-3[2].4.2` —
//!   subcomponent 2 of component 4 of repetition 2;
//! * `OBX[3]-5` — field 5 of the third OBX segment;
//! * `MSH-1` and `MSH-2` address the separators themselves.

use std::fmt;
use std::str::FromStr;

use crate::error::PathError;

/// A parsed accessor path (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Path {
    /// Segment id, e.g. `PID`.
    pub segment: String,
    /// Occurrence of the segment in the message, 1-based (default 1).
    pub occurrence: usize,
    /// Field number, 1-based.
    pub field: usize,
    /// Repetition, 1-based; `None` addresses the whole field unless a
    /// component is given, in which case the first repetition is used.
    pub repetition: Option<usize>,
    /// Component, 1-based.
    pub component: Option<usize>,
    /// Subcomponent, 1-based (only with a component).
    pub subcomponent: Option<usize>,
}

impl Path {
    /// Parses a path such as `OBX[3]-5.1`.
    pub fn parse(path: &str) -> Result<Path, PathError> {
        let err = |m: &str| PathError {
            path: path.to_string(),
            message: m.to_string(),
        };
        let b = path.as_bytes();
        if b.len() < 3
            || !b[0].is_ascii_uppercase()
            || !b[1..3]
                .iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        {
            return Err(err("expected a 3-character segment id first, e.g. PID-3"));
        }
        let segment = path[..3].to_string();
        let mut rest = &path[3..];
        let mut occurrence = 1;
        if let Some(r) = rest.strip_prefix('[') {
            let (n, r) = index(r, &err)?;
            occurrence = n;
            rest = r;
        }
        let Some(r) = rest.strip_prefix('-') else {
            return Err(err("expected '-' and a field number after the segment id"));
        };
        let (field, mut rest) = number(r, &err, "field")?;
        let mut repetition = None;
        if let Some(r) = rest.strip_prefix('[') {
            let (n, r) = index(r, &err)?;
            repetition = Some(n);
            rest = r;
        }
        let mut component = None;
        let mut subcomponent = None;
        if let Some(r) = rest.strip_prefix('.') {
            let (n, r) = number(r, &err, "component")?;
            component = Some(n);
            rest = r;
            if let Some(r) = rest.strip_prefix('.') {
                let (n, r) = number(r, &err, "subcomponent")?;
                subcomponent = Some(n);
                rest = r;
            }
        }
        if !rest.is_empty() {
            return Err(err(&format!("unexpected {rest:?} at the end")));
        }
        Ok(Path {
            segment,
            occurrence,
            field,
            repetition,
            component,
            subcomponent,
        })
    }
}

fn number<'p>(
    s: &'p str,
    err: &dyn Fn(&str) -> PathError,
    what: &str,
) -> Result<(usize, &'p str), PathError> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let n: usize = s[..digits]
        .parse()
        .map_err(|_| err(&format!("expected a {what} number")))?;
    if n == 0 {
        return Err(err(&format!("{what} numbers start at 1")));
    }
    Ok((n, &s[digits..]))
}

fn index<'p>(s: &'p str, err: &dyn Fn(&str) -> PathError) -> Result<(usize, &'p str), PathError> {
    let (n, r) = number(s, err, "index")?;
    let r = r.strip_prefix(']').ok_or_else(|| err("expected ']'"))?;
    Ok((n, r))
}

impl FromStr for Path {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Path::parse(s)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.segment)?;
        if self.occurrence != 1 {
            write!(f, "[{}]", self.occurrence)?;
        }
        write!(f, "-{}", self.field)?;
        if let Some(r) = self.repetition {
            write!(f, "[{r}]")?;
        }
        if let Some(c) = self.component {
            write!(f, ".{c}")?;
        }
        if let Some(s) = self.subcomponent {
            write!(f, ".{s}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let p = Path::parse("OBX[3]-5[2].4.2").unwrap();
        assert_eq!(
            p,
            Path {
                segment: "OBX".into(),
                occurrence: 3,
                field: 5,
                repetition: Some(2),
                component: Some(4),
                subcomponent: Some(2)
            }
        );
        assert_eq!(p.to_string(), "OBX[3]-5[2].4.2");
        let p: Path = "MSH-9.1".parse().unwrap();
        assert_eq!((p.field, p.component, p.repetition), (9, Some(1), None));
        assert_eq!(Path::parse("ZNT-1").unwrap().segment, "ZNT");
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "PI-3",
            "pid-3",
            "PID",
            "PID-",
            "PID-0",
            "PID-3.",
            "PID-3[0]",
            "PID-3[1",
            "PID-3.1.2.3",
            "PID-3x",
            "PID.3",
        ] {
            assert!(Path::parse(bad).is_err(), "{bad}");
        }
    }
}
