//! Encryption at rest (issue 22): the database key and the secrets sealed
//! with it.
//!
//! One **database key** (`wardline key init --out FILE`: 32 random bytes
//! in a file of its own, owner-only, outside the data directory) is given
//! to every command with `--db-key-file` (`WARDLINE_DB_KEY_FILE`). Two keys
//! are derived from it (HMAC-SHA-256 under a label each), so neither use
//! can stand in for the other:
//!
//! - on SQLite, the SQLCipher key of the whole database file (and its WAL):
//!   [`DbKey::sqlcipher_key`], set on every connection before anything else
//!   (`wardline_store_sqlite::SqliteStore::open_with_key`);
//! - on both backends, the **secrets key**: the values of the namespaces in
//!   [`SEALED_NAMESPACES`] of the system key-value data (each account's
//!   password hash and TOTP seed, the token signing key) are sealed with
//!   XChaCha20-Poly1305, bound to their namespace and key, by
//!   [`SealedStore`], a decorator of the store the binary opens. On
//!   PostgreSQL this is all Wardline encrypts: the rest is the volume's
//!   (see ARCHITECTURE.md).
//!
//! The first open with a key seals any plaintext secrets and leaves a
//! marker ([`MARKER`], itself sealed: it checks the key). From then on an
//! open without the key, or with another, is refused naming the key file;
//! nothing falls back to plaintext.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use wardline_fhir::SearchQuery;
use wardline_store::{
    HistoryRequest, IncludeRequest, PageRequest, Reader, Reindex, ResourceWrite, Result as SR,
    SearchPage, Store, StoreError, StoreTx, StoredResource, audit,
};

/// The first words of a database key file.
const KEY_MAGIC: &str = "wardline-db-key v1";
/// The first words of a sealed value.
const SEALED_PREFIX: &str = "wardline-sealed v1 ";
/// The system key-value namespaces whose values are secrets: `account`
/// (password hash, TOTP seed, lockout counters) and `auth` (the token
/// signing key).
pub const SEALED_NAMESPACES: [&str; 2] = ["account", "auth"];
/// Where the marker of a sealed database lives (namespace, key); its value
/// is a known text sealed with the secrets key.
pub const MARKER: (&str, &str) = ("at-rest", "secrets-sealed");
const MARKER_TEXT: &str = "wardline secrets sealed";

use crate::hexstr::{decode as unhex, encode as hex};

/// The database key and the file it came from (named in every error).
#[derive(Clone)]
pub struct DbKey {
    bytes: [u8; 32],
    path: PathBuf,
}

impl std::fmt::Debug for DbKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DbKey({})", self.path.display())
    }
}

impl DbKey {
    /// Writes a new random key to `path` (which must not exist), readable
    /// by its owner only.
    pub fn create(path: &Path) -> Result<DbKey> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let text = format!(
            "# wardline database key: keep it outside the data directory and its backups, and \
             keep a copy in escrow (without it the database cannot be read)\n{KEY_MAGIC} {}\n",
            hex(&bytes)
        );
        crate::anchor::write_key_file(path, "the database key", &text)?;
        Ok(DbKey {
            bytes,
            path: path.to_owned(),
        })
    }

    /// Reads a key file; refuses one that others may read.
    pub fn load(path: &Path) -> Result<DbKey> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the database key {}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)?.permissions().mode();
            if mode & 0o077 != 0 {
                bail!(
                    "the database key {} may be read by others (mode {:o}): `chmod 600` it",
                    path.display(),
                    mode & 0o777
                );
            }
        }
        let bytes = text
            .lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(KEY_MAGIC))
            .and_then(|rest| unhex(rest.trim()))
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{} is not a database key (`wardline key init --out FILE` makes one)",
                    path.display()
                )
            })?;
        Ok(DbKey {
            bytes,
            path: path.to_owned(),
        })
    }

    /// The key file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn derive(&self, label: &str) -> [u8; 32] {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.bytes)
            .expect("HMAC takes a key of any length");
        m.update(label.as_bytes());
        let mac = m.finalize().into_bytes();
        let mut out = [0u8; 32];
        out.copy_from_slice(&mac);
        out
    }

    /// The SQLCipher key of the SQLite database.
    pub fn sqlcipher_key(&self) -> [u8; 32] {
        self.derive("wardline sqlcipher v1")
    }

    /// The sealer of the secrets in the system key-value data.
    pub fn sealer(&self) -> Sealer {
        let k = self.derive("wardline secrets v1");
        Sealer {
            aead: XChaCha20Poly1305::new_from_slice(&k).expect("a 32-byte key"),
        }
    }
}

/// Seals and opens secret values (XChaCha20-Poly1305, a random 24-byte
/// nonce each, the namespace and key as associated data, so a sealed value
/// moved to another account does not open).
#[derive(Clone)]
pub struct Sealer {
    aead: XChaCha20Poly1305,
}

fn aad(namespace: &str, key: &str) -> String {
    format!("wardline-sealed v1\0{namespace}\0{key}")
}

impl Sealer {
    pub fn seal(&self, namespace: &str, key: &str, value: &str) -> SR<String> {
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce)
            .map_err(|e| StoreError::Backend(format!("no randomness to seal a secret: {e}")))?;
        let aad = aad(namespace, key);
        let ct = self
            .aead
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| StoreError::Backend("cannot seal a secret".into()))?;
        let mut all = nonce.to_vec();
        all.extend_from_slice(&ct);
        Ok(format!(
            "{SEALED_PREFIX}{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(all)
        ))
    }

    /// Opens a sealed value; `Err` names the entry when it is not sealed,
    /// or not with this key.
    pub fn open(&self, namespace: &str, key: &str, stored: &str) -> SR<String> {
        let Some(b64) = stored.strip_prefix(SEALED_PREFIX) else {
            return Err(StoreError::Backend(format!(
                "the secret {namespace}/{key} is stored in plaintext in a database whose secrets \
                 are sealed (written behind Wardline's back?)"
            )));
        };
        let wrong = || {
            StoreError::Backend(format!(
                "the secret {namespace}/{key} does not open with the database key (another \
                 key, or the value was altered)"
            ))
        };
        let all = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(b64)
            .map_err(|_| wrong())?;
        if all.len() < 24 {
            return Err(wrong());
        }
        let (nonce, ct) = all.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().map_err(|_| wrong())?;
        let aad = aad(namespace, key);
        let pt = self
            .aead
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| wrong())?;
        String::from_utf8(pt).map_err(|_| wrong())
    }
}

fn is_sealed_ns(namespace: &str) -> bool {
    SEALED_NAMESPACES.contains(&namespace)
}

/// Whether the database's secrets are sealed (the marker is there).
pub fn is_sealed(store: &dyn Store) -> Result<bool> {
    Ok(store
        .kv_get(MARKER.0, MARKER.1)
        .map_err(|e| anyhow::anyhow!("cannot read the system data: {e}"))?
        .is_some())
}

/// Checks `key` against a sealed database's marker, or seals the
/// plaintext secrets of one that is not sealed yet (one transaction: every
/// secret and the marker, or nothing). Returns how many were sealed.
pub fn seal_secrets(store: &dyn Store, key: &DbKey) -> Result<usize> {
    let sealer = key.sealer();
    let marker = store
        .kv_get(MARKER.0, MARKER.1)
        .map_err(|e| anyhow::anyhow!("cannot read the system data: {e}"))?;
    if let Some(m) = marker {
        return match sealer.open(MARKER.0, MARKER.1, &m) {
            Ok(t) if t == MARKER_TEXT => Ok(0),
            _ => bail!(
                "the database's secrets were sealed with another key than {}: give the key this \
                 database was encrypted with (--db-key-file)",
                key.path().display()
            ),
        };
    }
    let mut plain = Vec::new();
    for ns in SEALED_NAMESPACES {
        for (k, v) in store
            .kv_list(ns, "")
            .map_err(|e| anyhow::anyhow!("cannot read the system data: {e}"))?
        {
            if !v.starts_with(SEALED_PREFIX) {
                plain.push((ns, k, v));
            }
        }
    }
    let fail = |e: StoreError| anyhow::anyhow!("cannot seal the secrets: {e}");
    let mut tx = store.begin().map_err(fail)?;
    for (ns, k, v) in &plain {
        let sealed = sealer.seal(ns, k, v).map_err(fail)?;
        tx.kv_put(ns, k, &sealed).map_err(fail)?;
    }
    let m = sealer.seal(MARKER.0, MARKER.1, MARKER_TEXT).map_err(fail)?;
    tx.kv_put(MARKER.0, MARKER.1, &m).map_err(fail)?;
    tx.commit().map_err(fail)?;
    Ok(plain.len())
}

/// The store with the secrets of [`SEALED_NAMESPACES`] sealed on the way in
/// and opened on the way out; everything else passes through.
pub struct SealedStore {
    inner: Arc<dyn Store>,
    sealer: Sealer,
}

impl SealedStore {
    pub fn new(inner: Arc<dyn Store>, sealer: Sealer) -> SealedStore {
        SealedStore { inner, sealer }
    }
}

impl Reader for SealedStore {
    fn read(&self, resource_type: &str, id: &str) -> SR<Option<StoredResource>> {
        self.inner.read(resource_type, id)
    }
    fn read_many(&self, keys: &[(String, String)]) -> SR<Vec<StoredResource>> {
        self.inner.read_many(keys)
    }
    fn search(&self, query: &SearchQuery, page: &PageRequest) -> SR<SearchPage> {
        self.inner.search(query, page)
    }
    fn include(&self, req: &IncludeRequest) -> SR<Vec<StoredResource>> {
        self.inner.include(req)
    }
    fn vread(&self, resource_type: &str, id: &str, version: i64) -> SR<Option<StoredResource>> {
        self.inner.vread(resource_type, id, version)
    }
}

impl Store for SealedStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    fn watch_changes(&self, on_change: Box<dyn Fn() + Send + Sync>) -> SR<bool> {
        self.inner.watch_changes(on_change)
    }
    fn history(&self, req: &HistoryRequest) -> SR<Vec<StoredResource>> {
        self.inner.history(req)
    }
    fn explain(&self, query: &SearchQuery, page: &PageRequest) -> SR<Vec<String>> {
        self.inner.explain(query, page)
    }
    fn begin(&self) -> SR<Box<dyn StoreTx + '_>> {
        Ok(Box::new(SealedTx {
            inner: self.inner.begin()?,
            sealer: &self.sealer,
        }))
    }
    fn append_audit(&self, rows: &[audit::AuditAppend]) -> SR<Vec<i64>> {
        self.inner.append_audit(rows)
    }
    fn scan_audit(&self, after_seq: i64, limit: usize) -> SR<Vec<audit::AuditRow>> {
        self.inner.scan_audit(after_seq, limit)
    }
    fn scan_audit_patients(&self, after_seq: i64, upto_seq: i64) -> SR<Vec<(i64, String)>> {
        self.inner.scan_audit_patients(after_seq, upto_seq)
    }
    fn search_audit(&self, q: &audit::AuditQuery) -> SR<Vec<audit::AuditRow>> {
        self.inner.search_audit(q)
    }
    fn audit_head(&self) -> SR<audit::AuditAnchor> {
        self.inner.audit_head()
    }
    fn audit_anchor(&self) -> SR<Option<audit::AuditAnchor>> {
        self.inner.audit_anchor()
    }
    fn purge_audit(&self, before_ms: i64) -> SR<u64> {
        self.inner.purge_audit(before_ms)
    }
    fn kv_get(&self, namespace: &str, key: &str) -> SR<Option<String>> {
        let v = self.inner.kv_get(namespace, key)?;
        match v {
            Some(v) if is_sealed_ns(namespace) => Ok(Some(self.sealer.open(namespace, key, &v)?)),
            v => Ok(v),
        }
    }
    fn kv_list(&self, namespace: &str, prefix: &str) -> SR<Vec<(String, String)>> {
        let all = self.inner.kv_list(namespace, prefix)?;
        if !is_sealed_ns(namespace) {
            return Ok(all);
        }
        all.into_iter()
            .map(|(k, v)| {
                let v = self.sealer.open(namespace, &k, &v)?;
                Ok((k, v))
            })
            .collect()
    }
    fn kv_put(&self, namespace: &str, key: &str, value: &str) -> SR<()> {
        if is_sealed_ns(namespace) {
            let sealed = self.sealer.seal(namespace, key, value)?;
            self.inner.kv_put(namespace, key, &sealed)
        } else {
            self.inner.kv_put(namespace, key, value)
        }
    }
    fn kv_delete(&self, namespace: &str, key: &str) -> SR<bool> {
        self.inner.kv_delete(namespace, key)
    }
}

/// A transaction of a [`SealedStore`].
struct SealedTx<'a> {
    inner: Box<dyn StoreTx + 'a>,
    sealer: &'a Sealer,
}

impl Reader for SealedTx<'_> {
    fn read(&self, resource_type: &str, id: &str) -> SR<Option<StoredResource>> {
        self.inner.read(resource_type, id)
    }
    fn read_many(&self, keys: &[(String, String)]) -> SR<Vec<StoredResource>> {
        self.inner.read_many(keys)
    }
    fn search(&self, query: &SearchQuery, page: &PageRequest) -> SR<SearchPage> {
        self.inner.search(query, page)
    }
    fn include(&self, req: &IncludeRequest) -> SR<Vec<StoredResource>> {
        self.inner.include(req)
    }
    fn vread(&self, resource_type: &str, id: &str, version: i64) -> SR<Option<StoredResource>> {
        self.inner.vread(resource_type, id, version)
    }
}

impl StoreTx for SealedTx<'_> {
    fn write(&mut self, w: ResourceWrite) -> SR<()> {
        self.inner.write(w)
    }
    fn announce_change(&mut self) -> SR<()> {
        self.inner.announce_change()
    }
    fn reindex(&mut self, items: &[Reindex]) -> SR<usize> {
        self.inner.reindex(items)
    }
    fn append_audit(&mut self, rows: &[audit::AuditAppend]) -> SR<()> {
        self.inner.append_audit(rows)
    }
    fn kv_put(&mut self, namespace: &str, key: &str, value: &str) -> SR<()> {
        if is_sealed_ns(namespace) {
            let sealed = self.sealer.seal(namespace, key, value)?;
            self.inner.kv_put(namespace, key, &sealed)
        } else {
            self.inner.kv_put(namespace, key, value)
        }
    }
    fn kv_get(&mut self, namespace: &str, key: &str) -> SR<Option<String>> {
        let v = self.inner.kv_get(namespace, key)?;
        match v {
            Some(v) if is_sealed_ns(namespace) => Ok(Some(self.sealer.open(namespace, key, &v)?)),
            v => Ok(v),
        }
    }
    fn lock(&mut self, keys: &[&str]) -> SR<()> {
        self.inner.lock(keys)
    }
    fn commit(self: Box<Self>) -> SR<()> {
        self.inner.commit()
    }
}

/// Whether the file at `path` is a plaintext SQLite database (`Some(true)`),
/// something else — an encrypted one — (`Some(false)`), or absent or empty
/// (`None`).
pub fn sqlite_is_plaintext(path: &Path) -> Result<Option<bool>> {
    use std::io::Read;
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut head = [0u8; 16];
    let mut n = 0;
    while n < head.len() {
        let got = f
            .read(&mut head[n..])
            .with_context(|| format!("cannot read {}", path.display()))?;
        if got == 0 {
            break;
        }
        n += got;
    }
    if n == 0 {
        return Ok(None);
    }
    Ok(Some(&head == wardline_store_sqlite::PLAINTEXT_HEADER))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> DbKey {
        DbKey {
            bytes: [9; 32],
            path: PathBuf::from("k"),
        }
    }

    #[test]
    fn sealed_values_open_only_where_they_were_sealed() {
        let s = key().sealer();
        let v = s.seal("account", "alice", "{\"totp\":\"SEED\"}").unwrap();
        assert!(v.starts_with(SEALED_PREFIX));
        assert!(!v.contains("SEED"));
        assert_eq!(
            s.open("account", "alice", &v).unwrap(),
            "{\"totp\":\"SEED\"}"
        );
        // Moved to another account, it does not open.
        assert!(s.open("account", "bob", &v).is_err());
        // Nor under another key, nor in plaintext.
        let other = DbKey {
            bytes: [8; 32],
            path: PathBuf::from("k2"),
        };
        assert!(other.sealer().open("account", "alice", &v).is_err());
        assert!(s.open("account", "alice", "{}").is_err());
    }

    #[test]
    fn the_two_derived_keys_differ() {
        let k = key();
        assert_ne!(k.sqlcipher_key(), k.derive("wardline secrets v1"));
    }

    #[test]
    fn key_files_round_trip_and_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("db.key");
        let k = DbKey::create(&p).unwrap();
        assert_eq!(DbKey::load(&p).unwrap().bytes, k.bytes);
        assert!(DbKey::create(&p).is_err(), "never overwritten");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = DbKey::load(&p).unwrap_err().to_string();
            assert!(e.contains("chmod 600"), "{e}");
        }
    }
}
