//! The audit trail as the store keeps it: an append-only, hash-chained log.
//!
//! Each row is one FHIR `AuditEvent` (built by `wardline-core`; the store
//! never interprets it) plus the few columns IG officers search by. Rows are
//! numbered `seq` = 1, 2, 3 … without gaps, and each carries
//! `hash = SHA-256(prev_hash ‖ the row's fields)` where `prev_hash` is the
//! previous row's hash (or the purge anchor's, see below). So an edit changes
//! a hash, a deletion leaves a gap or a broken link, a reorder breaks links,
//! and deleting the newest rows disagrees with the chain head the store keeps.
//! [`verify`] walks the chain and reports every such finding, and also rows
//! lying beyond the head (inserted behind the store's back: no append can
//! succeed until they go) and patient-index entries (`audit_patient`) that do
//! not match their row (a search by patient would hide or invent an access).
//!
//! What the chain alone cannot show is a chain rewritten and re-hashed from
//! some row on, with the head moved to match (or emptied and reset): anyone
//! who can write the database can compute SHA-256. That is what the keyed
//! checkpoints outside the database are for (`wardline::anchor`, issue 22):
//! [`verify_with`] hands back the hashes of the rows they name.
//!
//! Rows are appended by [`crate::StoreTx::append_audit`] inside the
//! transaction of the write they describe (the chain head is locked until
//! commit, so the chain is in commit order on both backends), or by
//! [`crate::Store::append_audit`] in a transaction of their own (reads, logins,
//! batched by the caller).
//!
//! Retention: [`crate::Store::purge_audit`] deletes the oldest rows and records
//! an anchor (the last purged `seq` and `hash`), from which verification of
//! the remaining chain starts.

/// A row to append. The store assigns `seq`, `prev_hash` and `hash`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditAppend {
    pub recorded_ms: i64,
    /// Who (a `Practitioner/…` reference, a client id, or an operator name).
    pub agent: String,
    /// FHIR `AuditEvent.action`: C, R, U, D or E.
    pub action: String,
    /// The interaction or event code (`read`, `search-type`, `create`, `login`, `break-glass` …).
    pub subtype: String,
    /// FHIR `AuditEvent.outcome`: 0, 4, 8 or 12.
    pub outcome: i32,
    /// Ids of the patients whose data the event touched (searchable).
    pub patients: Vec<String>,
    /// The `AuditEvent` JSON (without `id`/`meta`; the store adds nothing to it).
    pub json: String,
}

/// A stored row.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub seq: i64,
    pub recorded_ms: i64,
    pub agent: String,
    pub action: String,
    pub subtype: String,
    pub outcome: i32,
    pub patients: Vec<String>,
    pub json: String,
    pub prev_hash: String,
    pub hash: String,
}

/// Criteria for [`crate::Store::search_audit`]; all given ones must hold.
/// Rows come newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    pub patient: Option<String>,
    pub agent: Option<String>,
    pub action: Option<String>,
    pub subtype: Option<String>,
    pub outcome: Option<i32>,
    /// `recorded_ms >= since_ms`.
    pub since_ms: Option<i64>,
    /// `recorded_ms < before_ms`.
    pub before_ms: Option<i64>,
    /// Keyset cursor: `seq < before_seq`.
    pub before_seq: Option<i64>,
    pub count: usize,
}

/// The last purged row, from which the remaining chain is verified.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditAnchor {
    pub seq: i64,
    pub hash: String,
}

/// The hash of the empty chain (what the first row's `prev_hash` is).
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The chain hash of a row: SHA-256 over `prev_hash` and every field, each
/// length-prefixed so that no two different rows hash the same input.
pub fn chain_hash(prev_hash: &str, seq: i64, row: &AuditAppend) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    fn field(h: &mut Sha256, s: &[u8]) {
        h.update((s.len() as u64).to_be_bytes());
        h.update(s);
    }
    // The same bytes as before (decimal integers, patients joined by one
    // space), without allocating a string for each (issue 21: the audit
    // writer hashes every row of every read).
    let mut num = [0u8; 20];
    field(&mut h, prev_hash.as_bytes());
    field(&mut h, decimal(seq, &mut num));
    field(&mut h, decimal(row.recorded_ms, &mut num));
    field(&mut h, row.agent.as_bytes());
    field(&mut h, row.action.as_bytes());
    field(&mut h, row.subtype.as_bytes());
    field(&mut h, decimal(i64::from(row.outcome), &mut num));
    let joined =
        row.patients.iter().map(String::len).sum::<usize>() + row.patients.len().saturating_sub(1);
    h.update((joined as u64).to_be_bytes());
    for (i, p) in row.patients.iter().enumerate() {
        if i > 0 {
            h.update(b" ");
        }
        h.update(p.as_bytes());
    }
    field(&mut h, row.json.as_bytes());
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for b in h.finalize() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

/// `n` in decimal (as `n.to_string()` writes it), in `buf`.
fn decimal(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

/// The links [`chain`] computes — (`seq`, `prev_hash`, `hash`) of each row
/// appended after (`head_seq`, `head_hash`) — without copying the rows (a
/// backend inserts them from `rows` itself).
pub fn chain_links(
    head_seq: i64,
    head_hash: &str,
    rows: &[AuditAppend],
) -> Vec<(i64, String, String)> {
    let mut prev = head_hash.to_owned();
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            let seq = head_seq + 1 + i as i64;
            let hash = chain_hash(&prev, seq, r);
            (seq, std::mem::replace(&mut prev, hash.clone()), hash)
        })
        .collect()
}

impl AuditRow {
    pub fn append(&self) -> AuditAppend {
        AuditAppend {
            recorded_ms: self.recorded_ms,
            agent: self.agent.clone(),
            action: self.action.clone(),
            subtype: self.subtype.clone(),
            outcome: self.outcome,
            patients: self.patients.clone(),
            json: self.json.clone(),
        }
    }
}

/// Computes the rows to insert after a chain head of (`seq`, `hash`).
pub fn chain(head_seq: i64, head_hash: &str, rows: &[AuditAppend]) -> Vec<AuditRow> {
    let mut prev = head_hash.to_owned();
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            let seq = head_seq + 1 + i as i64;
            let hash = chain_hash(&prev, seq, r);
            let row = AuditRow {
                seq,
                recorded_ms: r.recorded_ms,
                agent: r.agent.clone(),
                action: r.action.clone(),
                subtype: r.subtype.clone(),
                outcome: r.outcome,
                patients: r.patients.clone(),
                json: r.json.clone(),
                prev_hash: prev.clone(),
                hash: hash.clone(),
            };
            prev = hash;
            row
        })
        .collect()
}

/// The error an append meets when a row already holds the next `seq`: a
/// row was inserted after the chain head behind the store's back, and no
/// audit event can be appended (so nothing audited can be served) until it
/// is removed. Both backends turn their unique-key violation into this.
pub fn beyond_head_error(head_seq: i64) -> crate::StoreError {
    crate::StoreError::Backend(format!(
        "the audit chain is tampered with: a row with seq {} already lies beyond the chain \
         head (seq {head_seq}), inserted behind Wardline's back, so no audit event can be \
         appended; run `wardline audit verify`",
        head_seq + 1
    ))
}

/// One thing [`verify`] found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The row's content does not give its hash: it was edited.
    Edited { seq: i64 },
    /// The row does not link to the row before it (reordered or replaced).
    BrokenLink { seq: i64 },
    /// Rows between these are missing (deleted).
    Missing { after: i64, before: i64 },
    /// The newest rows are missing: the chain head says `head`, the last row is `last`.
    Truncated { last: i64, head: i64 },
    /// The chain head names row `seq` but with another hash than the row's.
    HeadMismatch { seq: i64 },
    /// `rows` rows (at least; from `first`) lie beyond the chain head `head`.
    BeyondHead { first: i64, rows: usize, head: i64 },
    /// Row `seq`'s entries in the patient index (`audit_patient`) differ
    /// from the patients the row names: `missing` are not found by a search
    /// for them, `extra` are found though the row does not name them.
    PatientIndex {
        seq: i64,
        missing: Vec<String>,
        extra: Vec<String>,
    },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::Edited { seq } => write!(
                f,
                "row {seq} was altered: its hash does not match its content"
            ),
            Finding::BrokenLink { seq } => write!(
                f,
                "row {seq} does not follow the row before it (reordered or replaced)"
            ),
            Finding::Missing { after, before } => write!(
                f,
                "rows {}..{} are missing (deleted)",
                after + 1,
                before - 1
            ),
            Finding::Truncated { last, head } => write!(
                f,
                "rows {}..{head} are missing from the end (the chain head is {head})",
                last + 1
            ),
            Finding::HeadMismatch { seq } => write!(
                f,
                "the chain head names row {seq} with another hash than the row has (the head or the row was rewritten)"
            ),
            Finding::BeyondHead { first, rows, head } => write!(
                f,
                "{rows} row{} from seq {first} lie{} beyond the chain head (seq {head}): inserted behind Wardline's back; no audit event can be appended until removed",
                if *rows == 1 { "" } else { "s" },
                if *rows == 1 { "s" } else { "" },
            ),
            Finding::PatientIndex {
                seq,
                missing,
                extra,
            } => {
                write!(f, "row {seq}'s patient index (audit_patient) was altered:")?;
                if !missing.is_empty() {
                    write!(
                        f,
                        " it lacks {} (a search by patient would not find the row)",
                        missing.join(", ")
                    )?;
                }
                if !extra.is_empty() {
                    if !missing.is_empty() {
                        write!(f, ";")?;
                    }
                    write!(
                        f,
                        " it lists {}, whom the row does not name",
                        extra.join(", ")
                    )?;
                }
                Ok(())
            }
        }
    }
}

/// Walks rows in `seq` order (fed in pages by the caller) and collects findings.
pub struct Verifier {
    prev_seq: i64,
    prev_hash: String,
    pub rows: u64,
    pub findings: Vec<Finding>,
    /// The `seq`s whose hashes the caller wants ([`Verifier::want`]).
    wanted: std::collections::BTreeSet<i64>,
    /// Their hashes, as walked.
    pub hashes: std::collections::BTreeMap<i64, String>,
}

impl Verifier {
    pub fn new(anchor: Option<&AuditAnchor>) -> Verifier {
        let (prev_seq, prev_hash) = match anchor {
            Some(a) => (a.seq, a.hash.clone()),
            None => (0, GENESIS.to_owned()),
        };
        Verifier {
            prev_seq,
            prev_hash,
            rows: 0,
            findings: Vec::new(),
            wanted: Default::default(),
            hashes: Default::default(),
        }
    }

    /// Keeps the hash of each row with one of these `seq`s as it is walked.
    pub fn want(mut self, seqs: impl IntoIterator<Item = i64>) -> Verifier {
        self.wanted.extend(seqs);
        self
    }

    /// Compares a row's patient-index entries (`indexed`, any order) with
    /// the patients it names.
    pub fn index(&mut self, r: &AuditRow, indexed: &[String]) {
        let named = crate::sql::audit_patients(&r.patients);
        let mut missing: Vec<String> = named
            .iter()
            .filter(|p| !indexed.iter().any(|i| i == *p))
            .map(|p| (*p).to_owned())
            .collect();
        let mut extra: Vec<String> = indexed
            .iter()
            .filter(|i| !named.contains(&i.as_str()))
            .cloned()
            .collect();
        if missing.is_empty() && extra.is_empty() {
            return;
        }
        missing.sort();
        extra.sort();
        extra.dedup();
        self.findings.push(Finding::PatientIndex {
            seq: r.seq,
            missing,
            extra,
        });
    }

    pub fn row(&mut self, r: &AuditRow) {
        self.rows += 1;
        if self.wanted.contains(&r.seq) {
            self.hashes.insert(r.seq, r.hash.clone());
        }
        if chain_hash(&r.prev_hash, r.seq, &r.append()) != r.hash {
            self.findings.push(Finding::Edited { seq: r.seq });
        }
        if r.seq > self.prev_seq + 1 {
            self.findings.push(Finding::Missing {
                after: self.prev_seq,
                before: r.seq,
            });
        } else if r.prev_hash != self.prev_hash {
            self.findings.push(Finding::BrokenLink { seq: r.seq });
        }
        self.prev_seq = r.seq;
        self.prev_hash = r.hash.clone();
    }

    /// Ends the walk against the chain head the store keeps.
    pub fn finish(self, head: &AuditAnchor) -> (u64, Vec<Finding>) {
        let (rows, findings, _) = self.finish_with_hashes(head);
        (rows, findings)
    }

    /// [`Verifier::finish`], with the hashes asked for by [`Verifier::want`].
    pub fn finish_with_hashes(
        mut self,
        head: &AuditAnchor,
    ) -> (u64, Vec<Finding>, std::collections::BTreeMap<i64, String>) {
        if head.seq > self.prev_seq {
            self.findings.push(Finding::Truncated {
                last: self.prev_seq,
                head: head.seq,
            });
        } else if head.seq == self.prev_seq && head.hash != self.prev_hash && self.rows > 0 {
            self.findings.push(Finding::HeadMismatch { seq: head.seq });
        }
        (self.rows, self.findings, self.hashes)
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Verification {
    /// Rows walked.
    pub rows: u64,
    /// The first and last `seq` walked (`None` when there were no rows).
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    /// Where the walk started (`None`: at the genesis).
    pub anchor: Option<AuditAnchor>,
    /// The chain head the walk ended against.
    pub head: AuditAnchor,
    pub findings: Vec<Finding>,
    /// The hashes of the rows asked for by [`verify_with`] that were walked.
    pub hashes: std::collections::BTreeMap<i64, String>,
}

/// Walks the chain of `store` from its anchor to the head it has when the
/// walk starts (rows appended meanwhile are left for the next walk), reading
/// `page` rows per round trip, and checks each row's patient-index entries;
/// then looks for rows beyond the head.
pub fn verify(store: &dyn crate::Store, page: usize) -> crate::Result<Verification> {
    verify_with(store, page, &[])
}

/// [`verify`], keeping the hashes of the rows numbered `wanted` (the rows a
/// keyed checkpoint names) in [`Verification::hashes`].
pub fn verify_with(
    store: &dyn crate::Store,
    page: usize,
    wanted: &[i64],
) -> crate::Result<Verification> {
    let page = page.max(1);
    let anchor = store.audit_anchor()?;
    let head = store.audit_head()?;
    let mut v = Verifier::new(anchor.as_ref()).want(wanted.iter().copied());
    let mut after = anchor.as_ref().map_or(0, |a| a.seq);
    let (mut first_seq, mut last_seq) = (None, None);
    loop {
        let rows = store.scan_audit(after, page)?;
        let full = rows.len() == page;
        let walked: Vec<&AuditRow> = rows.iter().filter(|r| r.seq <= head.seq).collect();
        for r in &walked {
            first_seq.get_or_insert(r.seq);
            last_seq = Some(r.seq);
            v.row(r);
        }
        if let (Some(lo), Some(hi)) = (walked.first(), walked.last()) {
            let mut index = store
                .scan_audit_patients(lo.seq - 1, hi.seq)?
                .into_iter()
                .peekable();
            for r in &walked {
                let mut mine = Vec::new();
                while let Some((seq, p)) = index.next_if(|(s, _)| *s <= r.seq) {
                    if seq == r.seq {
                        mine.push(p);
                    }
                }
                v.index(r, &mine);
            }
        }
        match rows.last() {
            Some(r) if full && r.seq < head.seq => after = r.seq,
            _ => break,
        }
    }
    let (rows, mut findings, hashes) = v.finish_with_hashes(&head);
    // Rows beyond the head: read them, then the head again (a row committed
    // before the scan moved the head in the same transaction, so one beyond
    // the head read after is not an append in flight).
    let beyond = store.scan_audit(head.seq, page)?;
    if !beyond.is_empty() {
        let now = store.audit_head()?;
        let past: Vec<&AuditRow> = beyond.iter().filter(|r| r.seq > now.seq).collect();
        if let Some(first) = past.first() {
            findings.push(Finding::BeyondHead {
                first: first.seq,
                rows: past.len(),
                head: now.seq,
            });
        }
    }
    Ok(Verification {
        rows,
        first_seq,
        last_seq,
        anchor,
        head,
        findings,
        hashes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: i64) -> AuditAppend {
        AuditAppend {
            recorded_ms: 1_700_000_000_000 + n,
            agent: "Practitioner/a".into(),
            action: "R".into(),
            subtype: "read".into(),
            outcome: 0,
            patients: vec![format!("p{n}")],
            json: format!("{{\"n\":{n}}}"),
        }
    }

    fn verify(rows: &[AuditRow], head: &AuditAnchor) -> Vec<Finding> {
        let mut v = Verifier::new(None);
        for r in rows {
            v.row(r);
        }
        v.finish(head).1
    }

    #[test]
    fn an_intact_chain_verifies_and_each_tamper_is_found() {
        let rows = chain(0, GENESIS, &(1..=5).map(row).collect::<Vec<_>>());
        let head = AuditAnchor {
            seq: 5,
            hash: rows[4].hash.clone(),
        };
        assert!(verify(&rows, &head).is_empty());

        let mut edited = rows.clone();
        edited[2].json = "{\"n\":99}".into();
        assert_eq!(verify(&edited, &head), vec![Finding::Edited { seq: 3 }]);

        let mut deleted = rows.clone();
        deleted.remove(1);
        assert_eq!(
            verify(&deleted, &head),
            vec![Finding::Missing {
                after: 1,
                before: 3
            }]
        );

        let mut swapped = rows.clone();
        let (a, b) = (swapped[1].clone(), swapped[2].clone());
        swapped[1] = AuditRow { seq: 2, ..b };
        swapped[2] = AuditRow { seq: 3, ..a };
        let f = verify(&swapped, &head);
        assert!(f.contains(&Finding::Edited { seq: 2 }), "{f:?}");
        assert!(f.contains(&Finding::BrokenLink { seq: 2 }), "{f:?}");

        let truncated = &rows[..3];
        assert_eq!(
            verify(truncated, &head),
            vec![Finding::Truncated { last: 3, head: 5 }]
        );
    }

    #[test]
    fn a_rewritten_head_and_altered_patient_index_entries_are_named() {
        let rows = chain(0, GENESIS, &(1..=3).map(row).collect::<Vec<_>>());
        let head = AuditAnchor {
            seq: 3,
            hash: "f".repeat(64),
        };
        assert_eq!(verify(&rows, &head), vec![Finding::HeadMismatch { seq: 3 }]);

        let mut v = Verifier::new(None).want([2]);
        for r in &rows {
            v.row(r);
        }
        v.index(&rows[0], &["p1".into()]);
        v.index(&rows[1], &[]);
        v.index(&rows[2], &["p3".into(), "p9".into()]);
        let (_, f, hashes) = v.finish_with_hashes(&AuditAnchor {
            seq: 3,
            hash: rows[2].hash.clone(),
        });
        assert_eq!(
            hashes.into_iter().collect::<Vec<_>>(),
            vec![(2, rows[1].hash.clone())]
        );
        assert_eq!(
            f,
            vec![
                Finding::PatientIndex {
                    seq: 2,
                    missing: vec!["p2".into()],
                    extra: vec![]
                },
                Finding::PatientIndex {
                    seq: 3,
                    missing: vec![],
                    extra: vec!["p9".into()]
                },
            ]
        );
        assert_eq!(
            f[0].to_string(),
            "row 2's patient index (audit_patient) was altered: it lacks p2 (a search by patient would not find the row)"
        );
        assert_eq!(
            Finding::BeyondHead {
                first: 4,
                rows: 1,
                head: 3
            }
            .to_string(),
            "1 row from seq 4 lies beyond the chain head (seq 3): inserted behind Wardline's back; no audit event can be appended until removed"
        );
    }

    #[test]
    fn chain_continues_from_an_anchor() {
        let rows = chain(0, GENESIS, &(1..=4).map(row).collect::<Vec<_>>());
        let anchor = AuditAnchor {
            seq: 2,
            hash: rows[1].hash.clone(),
        };
        let mut v = Verifier::new(Some(&anchor));
        for r in &rows[2..] {
            v.row(r);
        }
        let (n, f) = v.finish(&AuditAnchor {
            seq: 4,
            hash: rows[3].hash.clone(),
        });
        assert_eq!((n, f), (2, vec![]));
    }
}

#[cfg(test)]
mod hash_tests {
    use super::*;

    /// The hash is over the same bytes as when every number was formatted
    /// with `to_string` and the patients joined with `join(" ")`: rows
    /// chained before issue 21 still verify.
    #[test]
    fn chain_hash_bytes_are_unchanged() {
        use sha2::{Digest, Sha256};
        fn reference(prev_hash: &str, seq: i64, row: &AuditAppend) -> String {
            let mut h = Sha256::new();
            let mut field = |s: &str| {
                h.update((s.len() as u64).to_be_bytes());
                h.update(s.as_bytes());
            };
            field(prev_hash);
            field(&seq.to_string());
            field(&row.recorded_ms.to_string());
            field(&row.agent);
            field(&row.action);
            field(&row.subtype);
            field(&row.outcome.to_string());
            field(&row.patients.join(" "));
            field(&row.json);
            h.finalize().iter().map(|b| format!("{b:02x}")).collect()
        }
        for (seq, ms, outcome, patients) in [
            (1, 1_700_000_000_000, 0, vec![]),
            (0, 0, 4, vec!["p1".to_owned()]),
            (
                i64::MAX,
                -5,
                -8,
                vec!["a".to_owned(), "bb".to_owned(), "".to_owned()],
            ),
            (
                i64::MIN,
                i64::MIN,
                8,
                vec!["x y".to_owned(), "z".to_owned()],
            ),
        ] {
            let row = AuditAppend {
                recorded_ms: ms,
                agent: "Practitioner/a".into(),
                action: "R".into(),
                subtype: "read".into(),
                outcome,
                patients,
                json: "{\"resourceType\":\"AuditEvent\"}".into(),
            };
            assert_eq!(
                chain_hash(GENESIS, seq, &row),
                reference(GENESIS, seq, &row)
            );
        }
        let rows: Vec<AuditAppend> = (0..3)
            .map(|i| AuditAppend {
                recorded_ms: i,
                agent: "a".into(),
                action: "R".into(),
                subtype: "read".into(),
                outcome: 0,
                patients: vec![format!("p{i}")],
                json: "{}".into(),
            })
            .collect();
        let full = chain(7, "h", &rows);
        let links = chain_links(7, "h", &rows);
        assert_eq!(
            links,
            full.iter()
                .map(|r| (r.seq, r.prev_hash.clone(), r.hash.clone()))
                .collect::<Vec<_>>()
        );
    }
}
