//! The keyed anchor of the audit chain (issue 22): what makes a chain
//! rewritten in the database, and re-hashed to look whole, detectable.
//!
//! The chain (`wardline_store::audit`) proves its rows follow each other,
//! but SHA-256 has no secret: whoever can write the database can edit a row
//! and re-hash everything after it, delete the newest rows and move the
//! head back, or empty the chain and reset it. So the chain's head is
//! checkpointed, from time to time, to a file **outside the database**: one
//! line per checkpoint, sealed with an HMAC-SHA-256 under an **audit key
//! held outside the database** (`wardline audit key init`), each line's MAC
//! also covering the MAC of the line before, so the file is a chain of its
//! own:
//!
//! ```text
//! wardline-audit-checkpoint v1 head seq=20 hash=<64 hex> at=2026-12-04T13:40:00.000Z prev=<64 hex> mac=<64 hex>
//! wardline-audit-checkpoint v1 purge seq=12 hash=<64 hex> at=… prev=<mac of the line above> mac=…
//! ```
//!
//! A `head` line records the chain head; a `purge` line the anchor a keyed
//! purge left (so a purge anchor forged in the database, with the oldest
//! rows deleted, matches no line). [`check_file`] checks the file's lines
//! (MAC, order), and [`compare`] checks the database's chain against every
//! line: a row a checkpoint names must still have the hash it had, the head
//! must not be behind a checkpoint, and the purge anchor must be one a keyed
//! purge recorded.
//!
//! What it cannot do (ARCHITECTURE.md, "The keyed audit anchor"): rows
//! appended after the newest checkpoint can be rewritten until the next one;
//! and the file must be somewhere the database's administrators cannot
//! write (another machine's mount, an append-only file, another account):
//! deleting the file's last lines is only seen against a copy of it.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use wardline_store::audit::{AuditAnchor, GENESIS, Verification};

/// The first word of a key file.
const KEY_MAGIC: &str = "wardline-audit-key v1";
/// The first words of a checkpoint line.
const LINE_MAGIC: &str = "wardline-audit-checkpoint v1";

use crate::hexstr::{decode as unhex, encode as hex};

fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The audit key: 32 random bytes, kept in a file of its own (mode 0600)
/// outside the database and its data directory.
#[derive(Clone)]
pub struct AuditKey([u8; 32]);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(…)")
    }
}

impl AuditKey {
    pub fn generate() -> Result<AuditKey> {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        Ok(AuditKey(k))
    }

    #[cfg(test)]
    pub fn from_bytes(k: [u8; 32]) -> AuditKey {
        AuditKey(k)
    }

    fn file_text(&self) -> String {
        format!("{KEY_MAGIC} {}\n", hex(&self.0))
    }

    fn parse(text: &str) -> Option<AuditKey> {
        let rest = text.trim().strip_prefix(KEY_MAGIC)?.trim();
        let bytes = unhex(rest)?;
        Some(AuditKey(bytes.try_into().ok()?))
    }

    /// Writes a new key to `path` (which must not exist), readable by its
    /// owner only.
    pub fn create(path: &Path) -> Result<AuditKey> {
        let key = AuditKey::generate()?;
        write_key_file(path, "the audit key", &key.file_text())?;
        Ok(key)
    }

    /// Reads a key file; refuses one that others may read.
    pub fn load(path: &Path) -> Result<AuditKey> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the audit key {}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)?.permissions().mode();
            if mode & 0o077 != 0 {
                bail!(
                    "the audit key {} may be read by others (mode {:o}): `chmod 600` it",
                    path.display(),
                    mode & 0o777
                );
            }
        }
        AuditKey::parse(&text).ok_or_else(|| {
            anyhow::anyhow!(
                "{} is not an audit key (`wardline audit key init --out FILE` makes one)",
                path.display()
            )
        })
    }

    fn mac(&self, text: &str) -> Hmac<Sha256> {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC takes a key of any length");
        m.update(text.as_bytes());
        m
    }
}

/// What a checkpoint line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The chain head.
    Head,
    /// The anchor a purge left (the last purged row).
    Purge,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Head => "head",
            Kind::Purge => "purge",
        }
    }
}

/// One line of the checkpoint file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub kind: Kind,
    pub seq: i64,
    pub hash: String,
    pub at_ms: i64,
    /// The MAC of the line before (64 zeros for the first line).
    pub prev: String,
    pub mac: String,
}

impl Checkpoint {
    /// Seals a new line after the line whose MAC is `prev`.
    pub fn seal(key: &AuditKey, kind: Kind, anchor: &AuditAnchor, at_ms: i64, prev: &str) -> Self {
        let mut c = Checkpoint {
            kind,
            seq: anchor.seq,
            hash: anchor.hash.clone(),
            at_ms,
            prev: prev.to_owned(),
            mac: String::new(),
        };
        c.mac = hex(&key.mac(&c.body()).finalize().into_bytes());
        c
    }

    /// Everything the MAC covers.
    fn body(&self) -> String {
        format!(
            "{LINE_MAGIC} {} seq={} hash={} at={} prev={}",
            self.kind.word(),
            self.seq,
            self.hash,
            wardline_fhir::datetime::format_instant(self.at_ms),
            self.prev
        )
    }

    pub fn line(&self) -> String {
        format!("{} mac={}", self.body(), self.mac)
    }

    /// When it was made, as written.
    pub fn at(&self) -> String {
        wardline_fhir::datetime::format_instant(self.at_ms)
    }

    /// Reads a line back (without checking its MAC).
    pub fn parse(line: &str) -> Option<Checkpoint> {
        let rest = line.strip_prefix(LINE_MAGIC)?.strip_prefix(' ')?;
        let mut words = rest.split(' ');
        let kind = match words.next()? {
            "head" => Kind::Head,
            "purge" => Kind::Purge,
            _ => return None,
        };
        let mut field = |name: &str| words.next()?.strip_prefix(name)?.strip_prefix('=');
        let seq_text = field("seq")?;
        let seq: i64 = seq_text.parse().ok()?;
        let hash = field("hash")?.to_owned();
        let at_text = field("at")?.to_owned();
        let prev = field("prev")?.to_owned();
        let mac = field("mac")?.to_owned();
        if words.next().is_some() || !is_hash(&hash) || !is_hash(&prev) || !is_hash(&mac) {
            return None;
        }
        let at_ms = wardline_fhir::datetime::parse_range(&at_text)?.0;
        let c = Checkpoint {
            kind,
            seq,
            hash,
            at_ms,
            prev,
            mac,
        };
        // Only the canonical spelling: a line is what it was sealed as.
        (c.line() == line && seq >= 0 && seq.to_string() == seq_text).then_some(c)
    }

    /// Whether the MAC is this line's under `key`.
    pub fn verifies(&self, key: &AuditKey) -> bool {
        let Some(mac) = unhex(&self.mac) else {
            return false;
        };
        key.mac(&self.body()).verify_slice(&mac).is_ok()
    }
}

/// The checkpoint file, read and checked on its own.
#[derive(Debug, Default)]
pub struct CheckedFile {
    /// The lines that pass the key check, with their line numbers (from 1).
    pub checkpoints: Vec<(usize, Checkpoint)>,
    /// What is wrong with the file itself, one sentence each.
    pub problems: Vec<String>,
}

/// Checks every line of a checkpoint file's `text` under `key`: its MAC,
/// and that it follows the line before (its `prev` is that line's MAC).
pub fn check_file(key: &AuditKey, text: &str) -> CheckedFile {
    let mut out = CheckedFile::default();
    let mut prev_mac = Some(GENESIS.to_owned());
    let mut last_head: Option<(usize, i64)> = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let Some(c) = Checkpoint::parse(line) else {
            out.problems.push(format!(
                "checkpoint line {n} is not a checkpoint line (edited or damaged)"
            ));
            prev_mac = None;
            continue;
        };
        if !c.verifies(key) {
            out.problems.push(format!(
                "checkpoint line {n} fails the key check: it was edited, or made with another audit key"
            ));
            prev_mac = None;
            continue;
        }
        if let Some(p) = &prev_mac
            && *p != c.prev
        {
            out.problems.push(format!(
                "checkpoint line {n} does not follow the line before it: lines were removed, inserted or reordered"
            ));
        }
        if c.kind == Kind::Head {
            if let Some((m, seq)) = last_head
                && c.seq < seq
            {
                out.problems.push(format!(
                    "checkpoint line {n} records seq {}, behind line {m}'s seq {seq}: the chain was moved back between them",
                    c.seq
                ));
            }
            last_head = Some((n, c.seq));
        }
        prev_mac = Some(c.mac.clone());
        out.checkpoints.push((n, c));
    }
    out
}

/// The `seq`s whose row hashes [`compare`] needs from the walk.
pub fn wanted(file: &CheckedFile) -> Vec<i64> {
    file.checkpoints
        .iter()
        .filter(|(_, c)| c.kind == Kind::Head && c.seq > 0)
        .map(|(_, c)| c.seq)
        .collect()
}

/// Checks the database's chain, as walked (`v`, with the hashes of
/// [`wanted`]), against every checkpoint that passed the key check; one
/// sentence per finding.
pub fn compare(file: &CheckedFile, v: &Verification) -> Vec<String> {
    let mut out = Vec::new();
    let heads: Vec<&(usize, Checkpoint)> = file
        .checkpoints
        .iter()
        .filter(|(_, c)| c.kind == Kind::Head)
        .collect();
    // The head behind a checkpoint: the newest such line says most.
    if let Some((n, c)) = heads
        .iter()
        .filter(|(_, c)| c.seq > v.head.seq)
        .max_by_key(|(_, c)| c.seq)
    {
        out.push(format!(
            "the chain head is seq {}, but checkpoint line {n} ({}) recorded seq {}: rows {}..{} were deleted and the head moved back",
            v.head.seq,
            c.at(),
            c.seq,
            v.head.seq + 1,
            c.seq
        ));
    }
    // Each row a checkpoint names must still have its hash; the first that
    // does not is where the rewrite reaches back to (at the latest).
    let mut rewritten: Vec<(usize, &Checkpoint, &str)> = Vec::new();
    // The newest checkpointed seq below the first rewritten one that still
    // matches (or the purge anchor): the rewrite starts after it.
    let mut intact_upto = v.anchor.as_ref().map_or(0, |a| a.seq);
    let mut by_seq = heads.clone();
    by_seq.sort_by_key(|(_, c)| c.seq);
    for (_, c) in &by_seq {
        if c.seq <= v.head.seq && v.hashes.get(&c.seq) == Some(&c.hash) && c.seq > intact_upto {
            intact_upto = c.seq;
        } else if v.hashes.get(&c.seq).is_some_and(|h| *h != c.hash) {
            break;
        }
    }
    for (n, c) in &by_seq {
        if c.seq == 0 || c.seq > v.head.seq {
            continue;
        }
        match &v.anchor {
            Some(a) if c.seq < a.seq => continue,
            Some(a) if c.seq == a.seq => {
                if a.hash != c.hash {
                    rewritten.push((*n, c, "the purge anchor"));
                }
                continue;
            }
            _ => {}
        }
        match v.hashes.get(&c.seq) {
            Some(h) if *h == c.hash => {}
            Some(_) => rewritten.push((*n, c, "")),
            None => out.push(format!(
                "row {}, anchored by checkpoint line {n} ({}), is missing",
                c.seq,
                c.at()
            )),
        }
    }
    if let Some((n, c, what)) = rewritten.first() {
        let what = if what.is_empty() {
            format!("row {}", c.seq)
        } else {
            format!("{what} (seq {})", c.seq)
        };
        out.push(format!(
            "{what} is not what checkpoint line {n} ({}) anchored: the chain was rewritten and re-hashed within rows {}..{}{}",
            c.at(),
            intact_upto + 1,
            c.seq,
            match rewritten.len() - 1 {
                0 => String::new(),
                1 => "; 1 later checkpoint disagrees too".to_owned(),
                k => format!("; {k} later checkpoints disagree too"),
            }
        ));
    }
    // The purge anchor must be one a keyed purge recorded.
    let purges: Vec<&(usize, Checkpoint)> = file
        .checkpoints
        .iter()
        .filter(|(_, c)| c.kind == Kind::Purge)
        .collect();
    match (&v.anchor, purges.last()) {
        (Some(a), _) if purges.iter().any(|(_, c)| c.seq == a.seq && c.hash == a.hash) => {}
        (Some(a), _) => out.push(format!(
            "the purge anchor (seq {}) is recorded by no checkpoint: rows up to seq {} were deleted and the anchor set in the database, not by a keyed purge (or a purge ran without --audit-key)",
            a.seq, a.seq
        )),
        (None, Some((n, c))) => out.push(format!(
            "checkpoint line {n} ({}) records a purge up to seq {}, but the database has no purge anchor",
            c.at(),
            c.seq
        )),
        (None, None) => {}
    }
    out
}

/// Refuses a key or checkpoint file inside the SQLite data directory:
/// whoever can write the database could rewrite it there.
pub fn ensure_outside(what: &str, file: &Path, data_dir: &Path) -> Result<()> {
    let Ok(dir) = std::fs::canonicalize(data_dir) else {
        return Ok(());
    };
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let Ok(parent) = std::fs::canonicalize(&parent) else {
        return Ok(());
    };
    if parent.starts_with(&dir) {
        bail!(
            "{what} {} is inside the data directory {}: keep it where whoever can write the \
             database cannot (another disk, account or machine)",
            file.display(),
            dir.display()
        );
    }
    Ok(())
}

/// Appends sealed lines to a checkpoint file (one process at a time: an
/// exclusive lock on the file while it reads the last line and appends).
pub struct Checkpointer {
    key: AuditKey,
    path: PathBuf,
    local: Mutex<()>,
}

impl Checkpointer {
    /// Loads the key and checks that the file (created when absent) ends
    /// with a line this key sealed.
    pub fn open(key_file: &Path, path: &Path) -> Result<Checkpointer> {
        let key = AuditKey::load(key_file)?;
        let cp = Checkpointer {
            key,
            path: path.to_owned(),
            local: Mutex::new(()),
        };
        let mut f = cp.file()?;
        if let Some(last) = last_line(&mut f)? {
            match Checkpoint::parse(&last) {
                Some(c) if c.verifies(&cp.key) => {}
                _ => bail!(
                    "the last line of the audit checkpoint file {} does not pass the check of the \
                     audit key {}: another key, or an edited file (`wardline audit verify` says more)",
                    path.display(),
                    key_file.display()
                ),
            }
        }
        Ok(cp)
    }

    fn file(&self) -> Result<std::fs::File> {
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true).append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o640);
        }
        opts.open(&self.path).with_context(|| {
            format!(
                "cannot open the audit checkpoint file {}",
                self.path.display()
            )
        })
    }

    /// Appends a line recording `anchor`, unless `kind` is [`Kind::Head`]
    /// and the last line already records this very head. Durable (fsync)
    /// on return. Returns the line written.
    pub fn record(&self, kind: Kind, anchor: &AuditAnchor) -> Result<Option<Checkpoint>> {
        let _guard = self.local.lock().unwrap_or_else(|e| e.into_inner());
        let mut f = self.file()?;
        f.lock()
            .with_context(|| format!("cannot lock {}", self.path.display()))?;
        let last = last_line(&mut f)?.and_then(|l| Checkpoint::parse(&l));
        if kind == Kind::Head
            && let Some(l) = &last
            && l.kind == Kind::Head
            && l.seq == anchor.seq
            && l.hash == anchor.hash
        {
            return Ok(None);
        }
        let prev = last.map_or_else(|| GENESIS.to_owned(), |l| l.mac);
        let c = Checkpoint::seal(
            &self.key,
            kind,
            anchor,
            wardline_fhir::datetime::now_ms(),
            &prev,
        );
        f.write_all(format!("{}\n", c.line()).as_bytes())
            .and_then(|()| f.sync_data())
            .with_context(|| {
                format!(
                    "cannot append to the audit checkpoint file {}",
                    self.path.display()
                )
            })?;
        Ok(Some(c))
    }

    /// The newest head line, if any (for the start-up check).
    pub fn last(&self) -> Result<Option<Checkpoint>> {
        let mut f = self.file()?;
        Ok(last_line(&mut f)?.and_then(|l| Checkpoint::parse(&l)))
    }
}

/// The last non-empty line of a file (lines are short: its last 4 KiB).
fn last_line(f: &mut std::fs::File) -> Result<Option<String>> {
    let len = f.seek(SeekFrom::End(0))?;
    let from = len.saturating_sub(4096);
    f.seek(SeekFrom::Start(from))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    Ok(text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(str::to_owned))
}

/// Writes a new key file, `what` (e.g. "the audit key"), at `path`:
/// created new (an existing key is never overwritten), readable by its owner
/// only, synced before it is reported written. The audit key and the backup
/// key are both written so.
pub fn write_key_file(path: &Path, what: &str, text: &str) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).with_context(|| {
        format!(
            "cannot create {what} {} (an existing key is never overwritten)",
            path.display()
        )
    })?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> AuditKey {
        AuditKey::from_bytes([7; 32])
    }

    fn anchor(seq: i64) -> AuditAnchor {
        AuditAnchor {
            seq,
            hash: format!("{seq:064x}"),
        }
    }

    /// Three sealed lines: heads at 5 and 9, a purge at 3.
    fn file_text(k: &AuditKey) -> String {
        let a = Checkpoint::seal(k, Kind::Head, &anchor(5), 1_764_000_000_000, GENESIS);
        let b = Checkpoint::seal(k, Kind::Purge, &anchor(3), 1_764_000_060_000, &a.mac);
        let c = Checkpoint::seal(k, Kind::Head, &anchor(9), 1_764_000_120_000, &b.mac);
        format!("{}\n{}\n{}\n", a.line(), b.line(), c.line())
    }

    #[test]
    fn a_sealed_file_checks_and_reads_back() {
        let k = key();
        let f = check_file(&k, &file_text(&k));
        assert!(f.problems.is_empty(), "{:?}", f.problems);
        assert_eq!(f.checkpoints.len(), 3);
        assert_eq!(f.checkpoints[2].1.seq, 9);
        assert_eq!(f.checkpoints[1].1.kind, Kind::Purge);
        assert_eq!(wanted(&f), vec![5, 9]);
    }

    #[test]
    fn another_key_a_removed_line_and_a_moved_back_head_are_named() {
        let k = key();
        let text = file_text(&k);
        let other = check_file(&AuditKey::from_bytes([8; 32]), &text);
        assert_eq!(other.problems.len(), 3, "{:?}", other.problems);
        assert!(other.problems[0].contains("line 1 fails the key check"));
        let lines: Vec<&str> = text.lines().collect();
        let removed = format!("{}\n{}\n", lines[0], lines[2]);
        let f = check_file(&k, &removed);
        assert_eq!(
            f.problems,
            vec![
                "checkpoint line 2 does not follow the line before it: lines were removed, inserted or reordered"
            ]
        );
        let a = Checkpoint::seal(&k, Kind::Head, &anchor(9), 0, GENESIS);
        let b = Checkpoint::seal(&k, Kind::Head, &anchor(4), 0, &a.mac);
        let f = check_file(&k, &format!("{}\n{}\n", a.line(), b.line()));
        assert!(
            f.problems[0].contains("line 2 records seq 4, behind line 1's seq 9"),
            "{:?}",
            f.problems
        );
    }

    #[test]
    fn keys_round_trip_and_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        let k = AuditKey::create(&path).unwrap();
        assert_eq!(AuditKey::load(&path).unwrap().0, k.0);
        assert!(AuditKey::create(&path).is_err(), "never overwritten");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = AuditKey::load(&path).unwrap_err().to_string();
            assert!(e.contains("may be read by others"), "{e}");
        }
    }

    #[test]
    fn the_checkpointer_appends_a_chain_and_skips_an_unchanged_head() {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("k");
        AuditKey::create(&key_path).unwrap();
        let file = dir.path().join("checkpoints");
        let cp = Checkpointer::open(&key_path, &file).unwrap();
        assert!(cp.record(Kind::Head, &anchor(3)).unwrap().is_some());
        assert!(cp.record(Kind::Head, &anchor(3)).unwrap().is_none());
        assert!(cp.record(Kind::Purge, &anchor(2)).unwrap().is_some());
        assert!(cp.record(Kind::Head, &anchor(3)).unwrap().is_some());
        let k = AuditKey::load(&key_path).unwrap();
        let f = check_file(&k, &std::fs::read_to_string(&file).unwrap());
        assert!(f.problems.is_empty(), "{:?}", f.problems);
        assert_eq!(f.checkpoints.len(), 3);
        // Another key cannot continue the file.
        let other = dir.path().join("k2");
        AuditKey::create(&other).unwrap();
        let e = Checkpointer::open(&other, &file).err().unwrap().to_string();
        assert!(e.contains("does not pass the check"), "{e}");
    }

    #[test]
    fn files_inside_the_data_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let inside = dir.path().join("checkpoints");
        assert!(ensure_outside("--audit-checkpoints", &inside, dir.path()).is_err());
        let other = tempfile::tempdir().unwrap();
        ensure_outside("--audit-checkpoints", &other.path().join("c"), dir.path()).unwrap();
    }

    proptest! {
        /// Any single byte changed anywhere in a checkpoint file is found:
        /// the line no longer parses, fails the key check, or breaks the
        /// link of the line after it.
        #[test]
        fn any_single_byte_change_is_detected(pos in 0usize..10_000, byte in any::<u8>()) {
            let k = key();
            let text = file_text(&k);
            let mut bytes = text.clone().into_bytes();
            let pos = pos % bytes.len();
            prop_assume!(bytes[pos] != byte);
            bytes[pos] = byte;
            let changed = String::from_utf8_lossy(&bytes).into_owned();
            let f = check_file(&k, &changed);
            prop_assert!(
                !f.problems.is_empty() || f.checkpoints.len() != 3,
                "undetected change at byte {pos}: {changed}"
            );
        }
    }
}
