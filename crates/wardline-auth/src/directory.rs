//! People, positions and credentials.
//!
//! FHIR-native where FHIR has the concept: a user is a `Practitioner` (with
//! an identifier in [`USERNAME_SYSTEM`]); each **position** is a
//! `PractitionerRole` (role code in [`ROLE_SYSTEM`], the organisation — the
//! trust, a department, or a partner such as a GP practice or the council —
//! and the sites or wards it covers). Credentials are not FHIR and never
//! leave through the API: the argon2id hash, the TOTP secret and the lockout
//! counters live in the store's system key-value table (namespace
//! `account`), as do the token signing key (`auth`) and break-glass grants
//! (`break-glass`).
//!
//! Every change here runs in a service transaction on behalf of the actor
//! (an administrator through the API, or the operator's CLI), so it is
//! audited like any write; logins and failed logins are audited as DICOM
//! user-authentication events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use wardline_core::access::{Access, Agent, AgentKind, Trusted};
use wardline_core::audit::{AuditRecord, WARDLINE_SUBTYPE};
use wardline_core::{FhirService, Tx};
use wardline_fhir::FhirError;
use wardline_fhir::datetime::{format_instant, now_ms};
use wardline_store::{PageRequest, Reader};

use crate::clock::Clock;
use crate::policy::Principal;
use crate::rbac::Role;
use crate::scopes::ScopeSet;
use crate::{password, pkce, token, totp};

pub const USERNAME_SYSTEM: &str = "https://fhir.wardline.invalid/Id/username";
pub const ROLE_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/role";
/// The code of a break-glass review task (`Task.code`).
pub const TASK_SYSTEM: &str = "https://fhir.wardline.invalid/CodeSystem/task";

/// Failed logins before an account is locked, and for how long.
pub const LOCKOUT_AFTER: u32 = 5;
pub const LOCKOUT_MS: i64 = 15 * 60 * 1000;
/// Longest break-glass grant.
pub const MAX_BREAK_GLASS_MINUTES: i64 = 12 * 60;

/// `Task.code` (system [`TASK_SYSTEM`]) of a break-glass review.
pub const BREAK_GLASS_REVIEW_CODE: &str = "break-glass-review";

/// One use of break-glass, for the privacy officer's review.
#[derive(Clone, Debug, PartialEq)]
pub struct BreakGlassReview {
    /// The review Task's id.
    pub task: String,
    /// The user's login name.
    pub user: String,
    /// `Practitioner/…` of the user.
    pub practitioner: Option<String>,
    /// The patient's id.
    pub patient: Option<String>,
    pub reason: String,
    /// When it was granted, and until when (instants).
    pub granted: Option<String>,
    pub until: Option<String>,
    /// The review Task's status (`requested` until someone reviews it).
    pub status: String,
}

/// A position a user holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Position {
    /// The PractitionerRole id.
    pub id: String,
    pub practitioner: String,
    pub role: Role,
    /// Organization id.
    pub organization: String,
    /// Location ids (sites, wards, clinics) it covers.
    pub locations: Vec<String>,
    pub active: bool,
}

impl Position {
    fn from_resource(v: &Value) -> Option<Position> {
        let role = v
            .get("code")?
            .as_array()?
            .iter()
            .flat_map(|c| {
                c.get("coding")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
            })
            .find(|c| c.get("system").and_then(Value::as_str) == Some(ROLE_SYSTEM))
            .and_then(|c| c.get("code").and_then(Value::as_str))
            .and_then(Role::parse)?;
        let id_of = |r: &Value, t: &str| {
            r.get("reference")
                .and_then(Value::as_str)
                .and_then(|s| s.strip_prefix(&format!("{t}/")))
                .map(str::to_owned)
        };
        Some(Position {
            id: v.get("id")?.as_str()?.to_owned(),
            practitioner: id_of(v.get("practitioner")?, "Practitioner")?,
            role,
            organization: v
                .get("organization")
                .and_then(|o| id_of(o, "Organization"))
                .unwrap_or_default(),
            locations: v
                .get("location")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|l| id_of(l, "Location"))
                .collect(),
            active: v.get("active").and_then(Value::as_bool).unwrap_or(true),
        })
    }
}

/// Credentials and lockout state of a user (never exposed through FHIR).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Account {
    pub username: String,
    pub practitioner: String,
    pub password_hash: String,
    /// Base32 TOTP secret.
    pub totp_secret: String,
    #[serde(default)]
    pub failed: u32,
    #[serde(default)]
    pub locked_until_ms: i64,
    /// The last TOTP step accepted (a code is never accepted twice).
    #[serde(default)]
    pub last_totp_step: i64,
    #[serde(default)]
    pub disabled: bool,
}

/// A registered SMART client (app or backend service).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    /// Redirect URIs (apps using authorization code + PKCE).
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// The most this client may be granted.
    pub scope: String,
    /// Public JWKS (backend services using private_key_jwt).
    #[serde(default)]
    pub jwks: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LoginError {
    #[error("the user name, password or security code is not right")]
    Invalid,
    #[error("the account is locked after too many failed sign-ins; try again after {0}")]
    Locked(String),
    #[error("the account is disabled")]
    Disabled,
    /// The password and the code were right but the code was used before
    /// (each code signs in once): said plainly, so the user waits for the
    /// next one instead of retyping the password.
    #[error(
        "this security code has already been used; wait for the next one (a new code starts every 30 seconds)"
    )]
    CodeUsed,
    #[error("{0}")]
    Store(String),
}

/// The directory of users, positions, clients and keys.
pub struct Directory {
    svc: Arc<FhirService>,
    trust: String,
    keys: token::Keys,
    parents: Mutex<(Instant, HashMap<String, Option<String>>)>,
    clock: Clock,
    recent_encounter_days: u32,
}

/// How many days after an encounter finished its care relationship lasts
/// by default ([`Directory::with_recent_encounter_days`]): long enough to
/// write and sign the discharge summary and answer the practice's
/// questions, short enough that access ends with the episode.
pub const DEFAULT_RECENT_ENCOUNTER_DAYS: u32 = 14;

const PARENT_CACHE: Duration = Duration::from_secs(60);

fn store_err(e: impl std::fmt::Display) -> FhirError {
    FhirError::internal(e.to_string())
}

impl Directory {
    /// Opens the directory over the service's store; creates the token
    /// signing key on first use. `trust` is the id of the trust's
    /// Organization (its departments are `partOf` it; everything else is a
    /// partner).
    pub fn open(svc: Arc<FhirService>, trust: &str) -> Result<Directory, FhirError> {
        let kv = svc.system_data();
        let key = match kv.get("auth", "signing-key")? {
            Some(k) => totp::base32_decode(&k)
                .ok_or_else(|| FhirError::internal("the token signing key is corrupt"))?,
            None => {
                let k = pkce::random_bytes(32);
                kv.put("auth", "signing-key", &totp::base32_encode(&k))?;
                k
            }
        };
        Ok(Directory {
            svc,
            trust: trust.to_owned(),
            keys: token::Keys::new(&key),
            parents: Mutex::new((Instant::now(), HashMap::new())),
            clock: Clock::system(),
            recent_encounter_days: DEFAULT_RECENT_ENCOUNTER_DAYS,
        })
    }

    /// The directory reading `clock` where the policy needs the time
    /// (tests inject a clock they can move; production keeps the system
    /// clock).
    pub fn with_clock(mut self, clock: Clock) -> Directory {
        self.clock = clock;
        self
    }

    /// How many days after a finished encounter's `period.end` the
    /// positions it involves keep their relationship with the patient
    /// (`wardline serve --recent-encounter-days`; 0: none after the end).
    pub fn with_recent_encounter_days(mut self, days: u32) -> Directory {
        self.recent_encounter_days = days;
        self
    }

    pub fn recent_encounter_days(&self) -> u32 {
        self.recent_encounter_days
    }

    /// Now, by the directory's clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn reader(&self) -> &dyn Reader {
        self.svc.system_reader()
    }

    pub fn service(&self) -> &Arc<FhirService> {
        &self.svc
    }

    pub fn keys(&self) -> &token::Keys {
        &self.keys
    }

    pub fn trust(&self) -> &str {
        &self.trust
    }

    /// Current resources of type `t` matching `params` (at most 200).
    pub fn search(
        &self,
        reader: &dyn Reader,
        t: &str,
        params: &[(&str, String)],
    ) -> Result<Vec<Value>, FhirError> {
        let pairs: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let q = wardline_fhir::search::parse(
            wardline_fhir::definitions::r4(),
            Some(t),
            &pairs,
            wardline_fhir::search::Handling::Strict,
        )?;
        let page = reader.search(
            &q,
            &PageRequest {
                count: 200,
                ..PageRequest::default()
            },
        )?;
        Ok(page
            .resources
            .iter()
            .filter_map(|r| serde_json::from_str(&r.json).ok())
            .collect())
    }

    pub fn is_trust_root(&self, org: &str) -> bool {
        org == self.trust
    }

    /// The trust itself or one of its departments (`partOf`, transitively).
    pub fn is_trust_organisation(&self, reader: &dyn Reader, org: &str) -> Result<bool, FhirError> {
        let mut cur = org.to_owned();
        for _ in 0..6 {
            if cur == self.trust {
                return Ok(true);
            }
            let Some(next) = self.parent(reader, "Organization", &cur)? else {
                return Ok(false);
            };
            cur = next;
        }
        Ok(false)
    }

    /// Whether location `loc` is one of `targets` or within one (bed → bay
    /// → ward → site).
    pub fn location_within(
        &self,
        reader: &dyn Reader,
        loc: &str,
        targets: &[String],
    ) -> Result<bool, FhirError> {
        if targets.is_empty() {
            return Ok(false);
        }
        let mut cur = loc.to_owned();
        for _ in 0..6 {
            if targets.contains(&cur) {
                return Ok(true);
            }
            let Some(next) = self.parent(reader, "Location", &cur)? else {
                return Ok(false);
            };
            cur = next;
        }
        Ok(false)
    }

    fn parent(&self, reader: &dyn Reader, t: &str, id: &str) -> Result<Option<String>, FhirError> {
        let key = format!("{t}/{id}");
        {
            let mut g = self.parents.lock().unwrap_or_else(|e| e.into_inner());
            if g.0.elapsed() > PARENT_CACHE {
                *g = (Instant::now(), HashMap::new());
            }
            if let Some(p) = g.1.get(&key) {
                return Ok(p.clone());
            }
        }
        let p = reader
            .read(t, id)?
            .filter(|r| !r.deleted)
            .and_then(|r| serde_json::from_str::<Value>(&r.json).ok())
            .and_then(|v| {
                v.pointer("/partOf/reference")
                    .and_then(Value::as_str)
                    .and_then(|s| s.strip_prefix(&format!("{t}/")))
                    .map(str::to_owned)
            });
        self.parents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .insert(key, p.clone());
        Ok(p)
    }

    // ---- accounts ------------------------------------------------------------

    pub fn account(&self, username: &str) -> Result<Option<Account>, FhirError> {
        match self.svc.system_data().get("account", username)? {
            Some(s) => serde_json::from_str(&s)
                .map(Some)
                .map_err(|e| FhirError::internal(format!("account {username} unreadable: {e}"))),
            None => Ok(None),
        }
    }

    fn put_account(&self, tx: Option<&mut Tx<'_>>, a: &Account) -> Result<(), FhirError> {
        let s = serde_json::to_string(a).map_err(store_err)?;
        match tx {
            Some(tx) => tx.kv_put("account", &a.username, &s),
            None => self.svc.system_data().put("account", &a.username, &s),
        }
    }

    /// Creates a user: a Practitioner and an account with a password and a
    /// new TOTP secret (returned, base32, to be enrolled in an authenticator
    /// app).
    pub fn add_user(
        &self,
        actor: &dyn Access,
        username: &str,
        name: &str,
        password_text: &str,
    ) -> Result<(String, String), FhirError> {
        if username.is_empty()
            || !username
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(FhirError::invalid(
                "a user name is letters, digits, '.', '_' or '-'",
            ));
        }
        if self.account(username)?.is_some() {
            return Err(FhirError::new(
                409,
                "duplicate",
                format!("user '{username}' already exists"),
            ));
        }
        password::check_policy(password_text, username).map_err(FhirError::invalid)?;
        let secret = totp::base32_encode(&totp::new_secret());
        let (family, given) = match name.rsplit_once(' ') {
            Some((g, f)) => (f.to_owned(), Some(g.to_owned())),
            None => (name.to_owned(), None),
        };
        let mut human = json!({"text": name, "family": family});
        if let Some(g) = given {
            human["given"] = json!(g.split(' ').collect::<Vec<_>>());
        }
        let hash = password::hash(password_text);
        let practitioner = self.svc.transact(actor, |tx| {
            tx.set_audit_subtype(WARDLINE_SUBTYPE, "user-add", "C");
            let saved = tx.save(json!({
                "resourceType": "Practitioner",
                "active": true,
                "identifier": [{"system": USERNAME_SYSTEM, "value": username}],
                "name": [human],
            }))?;
            self.put_account(
                Some(tx),
                &Account {
                    username: username.to_owned(),
                    practitioner: saved.id.clone(),
                    password_hash: hash,
                    totp_secret: secret.clone(),
                    failed: 0,
                    locked_until_ms: 0,
                    last_totp_step: 0,
                    disabled: false,
                },
            )?;
            Ok(saved.id)
        })?;
        Ok((practitioner, secret))
    }

    /// Gives a user a position; returns its PractitionerRole id.
    pub fn grant(
        &self,
        actor: &dyn Access,
        username: &str,
        role: Role,
        organization: &str,
        locations: &[String],
    ) -> Result<String, FhirError> {
        let acc = self
            .account(username)?
            .ok_or_else(|| FhirError::not_found(format!("no user '{username}'")))?;
        let reader = self.reader();
        if reader
            .read("Organization", organization)?
            .is_none_or(|r| r.deleted)
        {
            return Err(FhirError::invalid(format!(
                "no Organization/{organization}"
            )));
        }
        for l in locations {
            if reader.read("Location", l)?.is_none_or(|r| r.deleted) {
                return Err(FhirError::invalid(format!("no Location/{l}")));
            }
        }
        self.svc.transact(actor, |tx| {
            tx.set_audit_subtype(WARDLINE_SUBTYPE, "grant", "C");
            let mut role_resource = json!({
                "resourceType": "PractitionerRole",
                "active": true,
                "period": {"start": format_instant(now_ms())},
                "practitioner": {"reference": format!("Practitioner/{}", acc.practitioner), "display": username},
                "organization": {"reference": format!("Organization/{organization}")},
                "code": [{"coding": [{"system": ROLE_SYSTEM, "code": role.code(), "display": role.display()}]}],
            });
            if !locations.is_empty() {
                role_resource["location"] = locations
                    .iter()
                    .map(|l| json!({"reference": format!("Location/{l}")}))
                    .collect();
            }
            let saved = tx.save(role_resource)?;
            Ok(saved.id)
        })
    }

    /// Ends a user's positions with `role` (or the one with id `role` as a
    /// PractitionerRole id); returns how many ended.
    pub fn revoke(
        &self,
        actor: &dyn Access,
        username: &str,
        role: &str,
    ) -> Result<usize, FhirError> {
        let acc = self
            .account(username)?
            .ok_or_else(|| FhirError::not_found(format!("no user '{username}'")))?;
        let ended = self.svc.transact(actor, |tx| {
            tx.set_audit_subtype(WARDLINE_SUBTYPE, "revoke", "U");
            let mut n = 0;
            for mut r in tx.find(
                "PractitionerRole",
                &format!("practitioner=Practitioner/{}&active=true", acc.practitioner),
            )? {
                let Some(p) = Position::from_resource(&r) else {
                    continue;
                };
                if p.id == role || p.role.code() == role {
                    r["active"] = json!(false);
                    r["period"]["end"] = json!(format_instant(now_ms()));
                    tx.save(r)?;
                    n += 1;
                }
            }
            Ok(n)
        })?;
        if ended == 0 {
            return Err(FhirError::not_found(format!(
                "'{username}' holds no active position '{role}'"
            )));
        }
        Ok(ended)
    }

    /// Active positions of a user.
    /// A position in words, as people name it: "Staff Nurse at Cedar Ward"
    /// — the role, then the names of the places it covers, or of its
    /// organisation when it names none ("Consultant at Watford General
    /// Hospital", "GP at The Elms Surgery"). An id stands in for a name the
    /// directory does not hold.
    pub fn position_label(&self, p: &Position) -> String {
        let keys: Vec<(String, String)> = if p.locations.is_empty() {
            vec![("Organization".to_owned(), p.organization.clone())]
        } else {
            p.locations
                .iter()
                .map(|l| ("Location".to_owned(), l.clone()))
                .collect()
        };
        let found = self.reader().read_many(&keys).unwrap_or_default();
        let names: Vec<String> = keys
            .iter()
            .map(|(t, id)| {
                found
                    .iter()
                    .find(|r| &r.resource_type == t && &r.id == id && !r.deleted)
                    .and_then(|r| serde_json::from_str::<Value>(&r.json).ok())
                    .and_then(|v| v["name"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| id.clone())
            })
            .collect();
        format!("{} at {}", p.role.display(), names.join(", "))
    }

    pub fn positions(&self, username: &str) -> Result<Vec<Position>, FhirError> {
        let Some(acc) = self.account(username)? else {
            return Ok(Vec::new());
        };
        self.positions_of(&acc.practitioner)
    }

    fn positions_of(&self, practitioner: &str) -> Result<Vec<Position>, FhirError> {
        Ok(self
            .search(
                self.reader(),
                "PractitionerRole",
                &[("practitioner", format!("Practitioner/{practitioner}"))],
            )?
            .iter()
            .filter_map(Position::from_resource)
            .filter(|p| p.active)
            .collect())
    }

    /// Every user with their active positions.
    pub fn list(&self) -> Result<Vec<(Account, Vec<Position>)>, FhirError> {
        let mut out = Vec::new();
        for (_, v) in self.svc.system_data().list("account", "")? {
            let a: Account = serde_json::from_str(&v).map_err(store_err)?;
            let p = self.positions_of(&a.practitioner)?;
            out.push((a, p));
        }
        Ok(out)
    }

    /// Checks a password and TOTP code. Five failures lock the account for
    /// 15 minutes; a TOTP code is accepted once. Audited either way.
    pub fn login(
        &self,
        username: &str,
        password_text: &str,
        code: &str,
        address: Option<&str>,
    ) -> Result<Account, LoginError> {
        let now = now_ms();
        let agent = Agent {
            kind: AgentKind::User,
            name: username.to_owned(),
            address: address.map(str::to_owned),
            ..Agent::default()
        };
        let audit = |ok: bool, who: Option<String>, why: Option<String>| {
            let mut rec = AuditRecord::security(
                ("110114", "User Authentication"),
                ("http://dicom.nema.org/resources/ontology/DCM", "110122"),
                "E",
            );
            rec.set_status(if ok { 200 } else { 401 }, why);
            let mut a = agent.clone();
            a.who = who;
            self.svc
                .record_audit(&a, &[rec])
                .map_err(|e| LoginError::Store(e.to_string()))
        };
        let acc = self
            .account(username)
            .map_err(|e| LoginError::Store(e.to_string()))?;
        let Some(mut acc) = acc else {
            // Same work as a real check, so a missing user cannot be told
            // apart by timing.
            let _ = password::verify(
                password_text,
                DUMMY_HASH.get_or_init(|| password::hash("not-a-real-password")),
            );
            audit(false, None, Some("unknown user".into()))?;
            return Err(LoginError::Invalid);
        };
        let who = Some(format!("Practitioner/{}", acc.practitioner));
        if acc.disabled {
            audit(false, who, Some("account disabled".into()))?;
            return Err(LoginError::Disabled);
        }
        if acc.locked_until_ms > now {
            audit(false, who, Some("account locked".into()))?;
            return Err(LoginError::Locked(format_instant(acc.locked_until_ms)));
        }
        let password_ok = password::verify(password_text, &acc.password_hash);
        let verified = totp::base32_decode(&acc.totp_secret)
            .and_then(|s| totp::verify(&s, code, now / 1000, 1));
        let reused = password_ok && verified.is_some_and(|s| s <= acc.last_totp_step);
        let step = verified.filter(|s| *s > acc.last_totp_step);
        let put = |a: &Account| {
            self.put_account(None, a)
                .map_err(|e| LoginError::Store(e.to_string()))
        };
        match (password_ok, step) {
            (true, Some(step)) => {
                acc.failed = 0;
                acc.locked_until_ms = 0;
                acc.last_totp_step = step;
                put(&acc)?;
                audit(true, who, None)?;
                Ok(acc)
            }
            _ => {
                acc.failed += 1;
                let why = if acc.failed >= LOCKOUT_AFTER {
                    acc.locked_until_ms = now + LOCKOUT_MS;
                    acc.failed = 0;
                    "failed sign-in; account locked"
                } else {
                    "failed sign-in"
                };
                put(&acc)?;
                if reused {
                    audit(false, who, Some(format!("{why}: security code reused")))?;
                    return Err(LoginError::CodeUsed);
                }
                audit(false, who, Some(why.into()))?;
                Err(LoginError::Invalid)
            }
        }
    }

    // ---- tokens and principals -------------------------------------------------

    /// A signed access token for a user acting in `position` (which must be
    /// one of theirs and active).
    pub fn issue_user_token(
        &self,
        username: &str,
        position: &str,
        scope: &ScopeSet,
        patient: Option<&str>,
        client_id: Option<&str>,
        ttl_secs: i64,
    ) -> Result<String, FhirError> {
        let acc = self
            .account(username)?
            .ok_or_else(|| FhirError::not_found(format!("no user '{username}'")))?;
        if !self
            .positions_of(&acc.practitioner)?
            .iter()
            .any(|p| p.id == position)
        {
            return Err(FhirError::invalid(format!(
                "'{username}' holds no active position {position}"
            )));
        }
        let now = now_ms() / 1000;
        Ok(token::issue(
            &self.keys,
            &token::Claims {
                iss: "wardline".into(),
                sub: username.to_owned(),
                fhir_user: Some(format!("Practitioner/{}", acc.practitioner)),
                position: Some(position.to_owned()),
                scope: scope.to_string(),
                patient: patient.map(str::to_owned),
                client_id: client_id.map(str::to_owned),
                sid: None,
                iat: now,
                exp: now + ttl_secs,
                jti: pkce::random_token(12),
            },
        ))
    }

    /// A signed access token for a backend service.
    pub fn issue_system_token(&self, client_id: &str, scope: &ScopeSet, ttl_secs: i64) -> String {
        let now = now_ms() / 1000;
        token::issue(
            &self.keys,
            &token::Claims {
                iss: "wardline".into(),
                sub: client_id.to_owned(),
                fhir_user: None,
                position: None,
                scope: scope.to_string(),
                patient: None,
                client_id: Some(client_id.to_owned()),
                sid: None,
                iat: now,
                exp: now + ttl_secs,
                jti: pkce::random_token(12),
            },
        )
    }

    /// The principal a verified token stands for, checked against the
    /// directory now (a revoked position or a disabled account stops working
    /// at once, whatever the token's expiry).
    pub fn principal(
        &self,
        claims: &token::Claims,
        address: Option<&str>,
    ) -> Result<Principal, FhirError> {
        let scopes: ScopeSet = claims.scope.parse().map_err(|e| {
            FhirError::new(401, "login", format!("the token's scope is invalid: {e}"))
        })?;
        let unauthorised = |m: &str| FhirError::new(401, "login", m.to_owned());
        if claims.position.is_none() && claims.fhir_user.is_none() {
            // A backend service.
            let client = claims
                .client_id
                .clone()
                .unwrap_or_else(|| claims.sub.clone());
            if self.client(&client)?.is_none() {
                return Err(unauthorised("the client is no longer registered"));
            }
            return Ok(Principal {
                agent: Agent {
                    kind: AgentKind::System,
                    name: client.clone(),
                    client_id: Some(client),
                    address: address.map(str::to_owned),
                    ..Agent::default()
                },
                scopes,
                position: None,
                patient: None,
                break_glass: HashMap::new(),
                system: true,
            });
        }
        let acc = self
            .account(&claims.sub)?
            .ok_or_else(|| unauthorised("the user no longer exists"))?;
        if acc.disabled {
            return Err(unauthorised("the account is disabled"));
        }
        let position = match &claims.position {
            Some(pid) => Some(
                self.positions_of(&acc.practitioner)?
                    .into_iter()
                    .find(|p| &p.id == pid)
                    .ok_or_else(|| {
                        unauthorised("the position this token was issued for has ended")
                    })?,
            ),
            None => None,
        };
        let now = self.now_ms();
        let mut break_glass = HashMap::new();
        for (k, v) in self
            .svc
            .system_data()
            .list("break-glass", &format!("{}/", claims.sub))?
        {
            if let Ok(g) = serde_json::from_str::<Value>(&v)
                && g.get("expires").and_then(Value::as_i64).unwrap_or(0) > now
                && let Some((_, patient)) = k.split_once('/')
            {
                break_glass.insert(
                    patient.to_owned(),
                    g.get("reason")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
        }
        Ok(Principal {
            agent: Agent {
                kind: AgentKind::User,
                name: claims.sub.clone(),
                who: Some(format!("Practitioner/{}", acc.practitioner)),
                position: position
                    .as_ref()
                    .map(|p| format!("PractitionerRole/{}", p.id)),
                client_id: claims.client_id.clone(),
                address: address.map(str::to_owned),
            },
            scopes,
            position,
            patient: claims.patient.clone(),
            break_glass,
            system: false,
        })
    }

    /// Emergency access: a time-limited grant for this user to this patient,
    /// with the reason given; audited (purpose of use BTG) and raised to the
    /// privacy officer as a Task, all in one transaction. Returns the expiry.
    pub fn break_glass(
        &self,
        principal: &Principal,
        patient: &str,
        reason: &str,
        minutes: i64,
    ) -> Result<i64, FhirError> {
        let Some(pos) = &principal.position else {
            return Err(wardline_core::access::forbidden(
                "break-glass needs a position",
            ));
        };
        if !pos.role.has(crate::rbac::Activity::BreakGlass) {
            return Err(wardline_core::access::forbidden(format!(
                "your position ({}) cannot use break-glass",
                pos.role.display()
            )));
        }
        let reason = reason.trim();
        if reason.len() < 10 {
            return Err(FhirError::invalid(
                "state the reason for emergency access (at least 10 characters)",
            )
            .at("reason"));
        }
        if !(1..=MAX_BREAK_GLASS_MINUTES).contains(&minutes) {
            return Err(FhirError::invalid(format!(
                "break-glass lasts 1 to {MAX_BREAK_GLASS_MINUTES} minutes"
            ))
            .at("minutes"));
        }
        let now = self.now_ms();
        let expires = now + minutes * 60_000;
        let actor = Trusted::new(principal.agent.clone());
        self.svc.transact(&actor, |tx| {
            if tx.get("Patient", patient)?.is_none() {
                return Err(FhirError::not_found(format!("Patient/{patient} is not known")));
            }
            tx.set_audit_subtype(WARDLINE_SUBTYPE, "break-glass", "E");
            {
                let rec = tx.audit_record();
                rec.event_type = (
                    "http://dicom.nema.org/resources/ontology/DCM",
                    "110113",
                    "Security Alert",
                );
                rec.break_glass = Some(reason.to_owned());
                rec.touch("Patient", patient, Some(patient));
            }
            tx.kv_put(
                "break-glass",
                &format!("{}/{patient}", principal.agent.name),
                &json!({"expires": expires, "reason": reason, "position": pos.id, "granted": now})
                    .to_string(),
            )?;
            tx.save(json!({
                "resourceType": "Task",
                "status": "requested",
                "intent": "order",
                "priority": "urgent",
                "code": {"coding": [{"system": TASK_SYSTEM, "code": BREAK_GLASS_REVIEW_CODE, "display": "Review emergency (break-glass) access"}]},
                "description": format!("{} used break-glass: {reason}", principal.agent.name),
                "for": {"reference": format!("Patient/{patient}")},
                "authoredOn": format_instant(now),
                "requester": {"reference": principal.agent.who.clone().unwrap_or_default(), "display": principal.agent.name},
                "reasonCode": {"text": reason},
                "owner": {"reference": format!("Organization/{}", self.trust), "display": "Privacy officer"},
                "restriction": {"period": {"start": format_instant(now), "end": format_instant(expires)}},
            }))?;
            Ok(())
        })?;
        Ok(expires)
    }

    /// The break-glass events to review, newest first (at most 200): the
    /// review Tasks [`Directory::break_glass`] raised, read with the
    /// reviewer's `access`, so the reading is audited. They are part of the
    /// audit trail: only those the policy lets read it (information
    /// governance) may list them; others are refused (403).
    pub fn break_glass_reviews(
        &self,
        access: &dyn Access,
    ) -> Result<Vec<BreakGlassReview>, FhirError> {
        access.check_operation(wardline_core::access::Operation::AuditTrail)?;
        let found = self.svc.search_as(
            access,
            "Task",
            &[
                ("code", format!("{TASK_SYSTEM}|{BREAK_GLASS_REVIEW_CODE}")),
                ("_sort", "-_lastUpdated".to_owned()),
                ("_count", "200".to_owned()),
            ],
        )?;
        let text = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_owned);
        Ok(found
            .resources
            .iter()
            .map(|t| {
                let description = text(t, "/description").unwrap_or_default();
                BreakGlassReview {
                    task: text(t, "/id").unwrap_or_default(),
                    user: text(t, "/requester/display")
                        .or_else(|| description.split(' ').next().map(str::to_owned))
                        .unwrap_or_default(),
                    practitioner: text(t, "/requester/reference"),
                    patient: text(t, "/for/reference")
                        .and_then(|r| r.strip_prefix("Patient/").map(str::to_owned)),
                    reason: text(t, "/reasonCode/text")
                        .or_else(|| description.split_once(": ").map(|(_, r)| r.to_owned()))
                        .unwrap_or_default(),
                    granted: text(t, "/authoredOn"),
                    until: text(t, "/restriction/period/end"),
                    status: text(t, "/status").unwrap_or_default(),
                }
            })
            .collect())
    }

    // ---- SMART clients ------------------------------------------------------

    pub fn client(&self, id: &str) -> Result<Option<Client>, FhirError> {
        match self.svc.system_data().get("client", id)? {
            Some(s) => Ok(Some(serde_json::from_str(&s).map_err(store_err)?)),
            None => Ok(None),
        }
    }

    pub fn register_client(&self, actor: &dyn Access, c: &Client) -> Result<(), FhirError> {
        let _: ScopeSet = c
            .scope
            .parse()
            .map_err(|e| FhirError::invalid(format!("scope: {e}")))?;
        let s = serde_json::to_string(c).map_err(store_err)?;
        self.svc.transact(actor, |tx| {
            tx.set_audit_subtype(WARDLINE_SUBTYPE, "client-register", "C");
            tx.kv_put("client", &c.client_id, &s)
        })
    }
}

static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
