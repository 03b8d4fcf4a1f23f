//! Delivering referral messages ([`run`]) and chasing referrals not
//! accepted in time ([`chase`]); the clock is injected (`now`).
//!
//! For each referral whose delivery `nextAttempt` has come (a referral
//! sent, or a received one accepted or rejected):
//!
//! 1. **Claim** (one transaction, under the ServiceRequest's lock):
//!    `nextAttempt` moves [`LEASE`] ahead (a second runner leaves it
//!    alone; a runner that dies retries after the lease) and the message
//!    is built ([`super::message::build_in`]).
//! 2. **Post** it outside any transaction to the address (the receiver's
//!    `$process-message`, or the referrer's for a response) through the
//!    [`Transport`] ([`HttpTransport`]: HTTP with a SMART Backend Services
//!    token).
//! 3. **Record** (one transaction, under the lock, if the claim stands):
//!    accepted (2xx) → `delivered`; a failure → `attempts` + 1 and
//!    `nextAttempt` after a back-off doubling from [`Policy::backoff`];
//!    after [`Policy::attempts_per_route`] attempts, or at once when the
//!    receiver refused the message as wrong (4xx but 408/429), no more
//!    attempts and a [`super::FAILURE_CODE`] Task for the referrer.

use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use wardline_core::{Access, FhirService, Tx};

use super::message::{Local, build_in};
use super::{
    CATEGORY_SYSTEM, CHASE_CODE, FAILURE_CODE, ReferralError, State, begin, is_inbound, lock_key,
    raise_task_in, state_of,
};
pub use crate::transfers::send::{LEASE, Policy};
use crate::transfers::{attempts, delivery_text, fhir_time, ms_of, parse_ms, set_delivery};

/// Why a post failed; `permanent` when sending it again cannot help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    pub permanent: bool,
}

/// How messages reach other providers.
pub trait Transport: Send + Sync {
    /// POSTs `message` to the `$process-message` at `url`.
    fn post(&self, url: &str, message: &Value) -> Result<(), Failure>;
}

/// SMART Backend Services credentials this server holds at the other
/// providers: the client id they registered for it and its private key.
#[derive(Clone)]
pub struct BackendAuth {
    pub client_id: String,
    /// The key id of the registered public key.
    pub kid: String,
    /// ES384 private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
    /// The scopes asked for.
    pub scope: String,
}

impl std::fmt::Debug for BackendAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendAuth")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// HTTP(S) posting, blocking (run it off async tasks): a token from the
/// receiver's `/auth/token` (client credentials, `private_key_jwt`), then
/// the message with it.
pub struct HttpTransport {
    client: reqwest::blocking::Client,
    auth: Option<BackendAuth>,
}

impl HttpTransport {
    pub fn new(auth: Option<BackendAuth>) -> Result<HttpTransport, String> {
        let client = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(HttpTransport { client, auth })
    }

    /// The receiver's base: `url` less its `/$process-message`.
    fn base(url: &str) -> &str {
        url.strip_suffix("/$process-message").unwrap_or(url)
    }

    fn token(&self, auth: &BackendAuth, url: &str) -> Result<String, Failure> {
        let base = Self::base(url);
        let root = base.strip_suffix("/fhir").unwrap_or(base);
        let token_url = format!("{root}/auth/token");
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let claims = json!({"iss": auth.client_id, "sub": auth.client_id, "aud": token_url,
            "exp": now + 300, "iat": now, "jti": uuid::Uuid::new_v4().to_string()});
        let key = jsonwebtoken::EncodingKey::from_ec_der(&auth.key_der);
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES384);
        header.typ = Some("JWT".into());
        header.kid = Some(auth.kid.clone());
        let assertion = jsonwebtoken::encode(&header, &claims, &key).map_err(|e| Failure {
            message: format!("The client assertion cannot be signed: {e}"),
            permanent: true,
        })?;
        let resp = self
            .client
            .post(&token_url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", auth.scope.as_str()),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion.as_str()),
            ])
            .send()
            .map_err(|e| transient(format!("The receiver's token endpoint: {e}")))?;
        let status = resp.status();
        let body: Value = resp.json().unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(Failure {
                message: format!(
                    "The receiver refused our credentials ({status}): {}",
                    body["error_description"]
                        .as_str()
                        .or_else(|| body["error"].as_str())
                        .unwrap_or("")
                ),
                permanent: false,
            });
        }
        body["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| transient("The receiver's token endpoint gave no token.".into()))
    }
}

fn transient(message: String) -> Failure {
    Failure {
        message,
        permanent: false,
    }
}

impl Transport for HttpTransport {
    fn post(&self, url: &str, message: &Value) -> Result<(), Failure> {
        let mut req = self
            .client
            .post(url)
            .header("Content-Type", "application/fhir+json")
            .header("Accept", "application/fhir+json")
            .body(message.to_string());
        if let Some(a) = &self.auth {
            req = req.bearer_auth(self.token(a, url)?);
        }
        let resp = req
            .send()
            .map_err(|e| transient(format!("Not reached: {e}")))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body: Value = resp.json().unwrap_or(Value::Null);
        let why = body["issue"][0]["diagnostics"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let code = status.as_u16();
        Err(Failure {
            message: format!("The receiver answered {code}: {why}"),
            permanent: (400..500).contains(&code) && ![401, 403, 408, 429].contains(&code),
        })
    }
}

/// What one run did (ServiceRequest ids).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunReport {
    pub delivered: Vec<String>,
    pub retrying: Vec<String>,
    pub failed: Vec<String>,
}

struct Claimed {
    id: String,
    attempts: u32,
    address: String,
    message: Result<Value, ReferralError>,
}

fn due(sr: &Value, now_ms: i64) -> bool {
    delivery_text(sr, "nextAttempt")
        .and_then(parse_ms)
        .is_some_and(|t| t <= now_ms)
}

/// Delivers every referral message due at `now` (see the module
/// documentation), as `access` (audited `referrals-deliver`).
pub fn run(
    svc: &FhirService,
    access: &dyn Access,
    transport: &dyn Transport,
    local: &Local,
    policy: Policy,
    now: OffsetDateTime,
) -> Result<RunReport, ReferralError> {
    let mut report = RunReport::default();
    let ids: Vec<String> = {
        let mut tx = begin(svc, access, "referrals-deliver", "U")?;
        let all = tx.find(
            "ServiceRequest",
            &format!("category={CATEGORY_SYSTEM}|referral&status=active,revoked&_count=1000"),
        )?;
        tx.commit()?;
        all.iter()
            .filter(|s| state_of(s).is_some() && due(s, ms_of(now)))
            .filter_map(|s| s["id"].as_str().map(str::to_owned))
            .collect()
    };
    for id in ids {
        let claimed = {
            let mut tx = begin(svc, access, "referrals-deliver", "U")?;
            let c = claim_in(&mut tx, &id, local, now)?;
            tx.commit()?;
            c
        };
        let Some(c) = claimed else { continue };
        let outcome = match &c.message {
            Ok(m) => transport.post(&c.address, m),
            Err(e) => Err(Failure {
                message: e.message(),
                permanent: true,
            }),
        };
        let mut tx = begin(svc, access, "referrals-deliver", "U")?;
        let recorded = record_in(&mut tx, &c, outcome, policy, now)?;
        tx.commit()?;
        match recorded {
            Some(Ok(())) => report.delivered.push(id),
            Some(Err(false)) => report.retrying.push(id),
            Some(Err(true)) => report.failed.push(id),
            None => {}
        }
    }
    Ok(report)
}

fn claim_in(
    tx: &mut Tx<'_>,
    id: &str,
    local: &Local,
    now: OffsetDateTime,
) -> Result<Option<Claimed>, ReferralError> {
    tx.lock(&[lock_key(id)])?;
    let Some(mut sr) = tx.get("ServiceRequest", id)? else {
        return Ok(None);
    };
    if !due(&sr, ms_of(now)) {
        return Ok(None);
    }
    let Some(address) = delivery_text(&sr, "address").map(str::to_owned) else {
        return Ok(None);
    };
    let message = build_in(tx, &sr, local, now);
    set_delivery(
        &mut sr,
        "nextAttempt",
        Some(("valueDateTime", json!(fhir_time(now + LEASE)))),
    );
    let attempts = attempts(&sr);
    tx.save(sr)?;
    Ok(Some(Claimed {
        id: id.to_owned(),
        attempts,
        address,
        message,
    }))
}

/// `Some(Ok)` delivered, `Some(Err(false))` retrying, `Some(Err(true))`
/// failed for good; `None` when the claim no longer stands.
fn record_in(
    tx: &mut Tx<'_>,
    c: &Claimed,
    outcome: Result<(), Failure>,
    policy: Policy,
    now: OffsetDateTime,
) -> Result<Option<Result<(), bool>>, ReferralError> {
    tx.lock(&[lock_key(&c.id)])?;
    let Some(mut sr) = tx.get("ServiceRequest", &c.id)? else {
        return Ok(None);
    };
    if attempts(&sr) != c.attempts || delivery_text(&sr, "nextAttempt").is_none() {
        return Ok(None);
    }
    let made = c.attempts + 1;
    set_delivery(&mut sr, "attempts", Some(("valueInteger", json!(made))));
    match outcome {
        Ok(()) => {
            set_delivery(&mut sr, "nextAttempt", None);
            set_delivery(&mut sr, "lastError", None);
            set_delivery(
                &mut sr,
                "delivered",
                Some(("valueDateTime", json!(fhir_time(now)))),
            );
            tx.save(sr)?;
            Ok(Some(Ok(())))
        }
        Err(f) => {
            set_delivery(
                &mut sr,
                "lastError",
                Some(("valueString", json!(f.message))),
            );
            if !f.permanent && made < policy.attempts_per_route.max(1) {
                let wait = policy.backoff * 2i32.saturating_pow(made.saturating_sub(1).min(16));
                set_delivery(
                    &mut sr,
                    "nextAttempt",
                    Some(("valueDateTime", json!(fhir_time(now + wait)))),
                );
                tx.save(sr)?;
                return Ok(Some(Err(false)));
            }
            set_delivery(&mut sr, "nextAttempt", None);
            let saved = tx.save(sr)?.resource;
            let what = if is_inbound(&saved) {
                "The answer to a received referral was not delivered to the referrer"
            } else {
                "A referral was not delivered to the provider"
            };
            raise_task_in(
                tx,
                &saved,
                FAILURE_CODE,
                "Referral not delivered",
                &format!(
                    "{what} after {made} attempt(s): {}. Check the provider's endpoint and send it again, or refer by another means.",
                    f.message
                ),
                now,
            )?;
            Ok(Some(Err(true)))
        }
    }
}

/// Sends a referral that was not delivered again (its failure Task
/// closed), in `tx`.
pub fn retry_in(tx: &mut Tx<'_>, id: &str, now: OffsetDateTime) -> Result<(), ReferralError> {
    tx.lock(&[lock_key(id)])?;
    let mut sr = tx
        .get("ServiceRequest", id)?
        .filter(|s| state_of(s).is_some())
        .ok_or_else(|| ReferralError::NotFound(format!("There is no referral {id}.")))?;
    let Some(address) = delivery_text(&sr, "address").map(str::to_owned) else {
        return Err(ReferralError::Conflict(
            "The referral has nothing to deliver.".into(),
        ));
    };
    if delivery_text(&sr, "delivered").is_some() || delivery_text(&sr, "nextAttempt").is_some() {
        return Err(ReferralError::Conflict(
            "The referral is delivered or waiting to be.".into(),
        ));
    }
    super::queue_delivery(&mut sr, &address, now);
    tx.save(sr)?;
    super::close_tasks_in(tx, id, FAILURE_CODE, now)
}

/// [`retry_in`] as one audited transaction (`referrals-send`).
pub fn retry(
    svc: &FhirService,
    access: &dyn Access,
    id: &str,
    now: OffsetDateTime,
) -> Result<(), ReferralError> {
    let mut tx = begin(svc, access, "referrals-send", "U")?;
    retry_in(&mut tx, id, now)?;
    tx.commit()?;
    Ok(())
}

/// Raises a chase Task ([`CHASE_CODE`], for the referrer) for each
/// referral of ours delivered more than `period` before `now` and still
/// not accepted or rejected (one per referral). Returns their ids.
pub fn chase(
    svc: &FhirService,
    access: &dyn Access,
    period: Duration,
    now: OffsetDateTime,
) -> Result<Vec<String>, ReferralError> {
    let mut tx = begin(svc, access, "referrals-chase", "C")?;
    let sent = tx.find(
        "ServiceRequest",
        &format!("category={CATEGORY_SYSTEM}|referral&status=active&_count=1000"),
    )?;
    let limit = ms_of(now - period);
    let mut out = Vec::new();
    for sr in sent {
        if is_inbound(&sr) || state_of(&sr) != Some(State::Sent) {
            continue;
        }
        let Some(at) = delivery_text(&sr, "delivered").and_then(parse_ms) else {
            continue;
        };
        if at > limit {
            continue;
        }
        let days = period.whole_days();
        if raise_task_in(
            &mut tx,
            &sr,
            CHASE_CODE,
            "Chase a referral not yet accepted",
            &format!(
                "The referral was delivered on {} and has not been accepted or rejected within {}: contact the provider.",
                delivery_text(&sr, "delivered").unwrap_or_default(),
                if days > 0 {
                    format!("{days} day(s)")
                } else {
                    format!("{} hour(s)", period.whole_hours())
                }
            ),
            now,
        )? {
            out.push(sr["id"].as_str().unwrap_or_default().to_owned());
        }
    }
    tx.commit()?;
    Ok(out)
}
