//! `wardline referrals …` and `serve`'s e-Referral settings
//! (`wardline_workflow::referrals`): delivering BaRS messages to other
//! providers with this server's SMART Backend Services credentials at
//! them, chasing referrals not accepted in time, and making the key pair
//! other providers register for this server.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use wardline_core::{ServiceConfig, Trusted};
use wardline_workflow::referrals::message::Local;
use wardline_workflow::referrals::send::{BackendAuth, HttpTransport, Policy};

/// How this server sends e-Referrals (`serve` and `wardline referrals
/// send` take the same flags).
#[derive(Args, Clone)]
pub struct ReferralArgs {
    /// The client id other providers registered for this server (SMART
    /// Backend Services). Unset: messages are posted without a token.
    #[arg(long, env = "WARDLINE_BARS_CLIENT_ID", requires = "bars_key")]
    bars_client_id: Option<String>,
    /// This server's ES384 private key (PKCS#8 DER), whose public key the
    /// other providers registered (`wardline referrals keygen`).
    #[arg(long, env = "WARDLINE_BARS_KEY")]
    bars_key: Option<PathBuf>,
    /// The key id of that key.
    #[arg(long, env = "WARDLINE_BARS_KID", default_value = "wardline-bars")]
    bars_kid: String,
    /// The scopes asked for at the other providers.
    #[arg(
        long,
        env = "WARDLINE_BARS_SCOPE",
        default_value = "system/ServiceRequest.crus system/Patient.crs system/DocumentReference.c system/Task.crus system/Organization.rs"
    )]
    bars_scope: String,
    /// Attempts to deliver a message before a failure Task is raised.
    #[arg(long, env = "WARDLINE_REFERRAL_ATTEMPTS", default_value_t = 3,
        value_parser = clap::value_parser!(u32).range(1..))]
    referral_attempts: u32,
    /// Minutes to wait after a failed attempt (doubling after each further one).
    #[arg(long, env = "WARDLINE_REFERRAL_BACKOFF_MINUTES", default_value_t = 5,
        value_parser = clap::value_parser!(u32).range(1..))]
    referral_backoff_minutes: u32,
    /// Days a delivered referral may wait for acceptance before the
    /// referrer is asked to chase it.
    #[arg(long, env = "WARDLINE_REFERRAL_CHASE_DAYS", default_value_t = 14,
        value_parser = clap::value_parser!(u32).range(1..))]
    referral_chase_days: u32,
}

impl ReferralArgs {
    pub fn transport(&self) -> Result<HttpTransport> {
        let auth = match (&self.bars_client_id, &self.bars_key) {
            (Some(id), Some(path)) => Some(BackendAuth {
                client_id: id.clone(),
                kid: self.bars_kid.clone(),
                key_der: std::fs::read(path)
                    .with_context(|| format!("cannot read {}", path.display()))?,
                scope: self.bars_scope.clone(),
            }),
            _ => None,
        };
        HttpTransport::new(auth).map_err(|e| anyhow::anyhow!("{e}"))
    }

    pub fn policy(&self) -> Policy {
        Policy {
            attempts_per_route: self.referral_attempts,
            backoff: time::Duration::minutes(i64::from(self.referral_backoff_minutes)),
        }
    }

    pub fn chase_period(&self) -> time::Duration {
        time::Duration::days(i64::from(self.referral_chase_days))
    }
}

#[derive(Subcommand)]
pub enum ReferralsCommand {
    /// Deliver the referral messages that are due (what `serve` does every
    /// minute), as at `--now`; prints one line per message that moved.
    Send(SendArgs),
    /// Raise a chase Task for each referral not accepted within the chase
    /// period (what `serve` does every minute), as at `--now`.
    Chase(ChaseArgs),
    /// Make this server's ES384 key pair: the private key (PKCS#8 DER) for
    /// `--bars-key`, and the public JWK Set the other providers register
    /// (`wardline client add … --jwks-file`).
    Keygen(KeygenArgs),
}

#[derive(Args)]
pub struct SendArgs {
    /// This server's own `$process-message` URL (where answers come back).
    #[arg(long)]
    bars_endpoint: String,
    /// The time to act as at (RFC 3339); default: now.
    #[arg(long, value_parser = parse_now)]
    now: Option<OffsetDateTime>,
    #[command(flatten)]
    referrals: ReferralArgs,
    #[command(flatten)]
    trust: crate::user::TrustArgs,
    #[command(flatten)]
    store: crate::StoreArgs,
}

#[derive(Args)]
pub struct ChaseArgs {
    /// The time to act as at (RFC 3339); default: now.
    #[arg(long, value_parser = parse_now)]
    now: Option<OffsetDateTime>,
    #[command(flatten)]
    referrals: ReferralArgs,
    #[command(flatten)]
    store: crate::StoreArgs,
}

#[derive(Args)]
pub struct KeygenArgs {
    /// Where to write the private key (PKCS#8 DER).
    #[arg(long)]
    key_out: PathBuf,
    /// Where to write the public JWK Set (JSON).
    #[arg(long)]
    jwks_out: PathBuf,
    /// The key id.
    #[arg(long, default_value = "wardline-bars")]
    kid: String,
}

fn parse_now(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("'{s}' is not an RFC 3339 date-time with an offset ({e})"))
}

/// Who this server is on the wire.
pub fn local(endpoint: String, trust_organization: &str) -> Local {
    Local {
        organization: Some(trust_organization.to_owned()),
        endpoint,
        phone: None,
    }
}

pub fn run(cmd: ReferralsCommand) -> Result<ExitCode> {
    match cmd {
        ReferralsCommand::Send(a) => {
            let svc = a.store.service(ServiceConfig::default())?;
            let now = a.now.unwrap_or_else(OffsetDateTime::now_utc);
            let r = wardline_workflow::referrals::send::run(
                &svc,
                &Trusted::operator("referrals"),
                &a.referrals.transport()?,
                &local(a.bars_endpoint, &a.trust.trust_organization),
                a.referrals.policy(),
                now,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            for (what, ids) in [
                ("delivered", &r.delivered),
                ("retrying", &r.retrying),
                ("failed", &r.failed),
            ] {
                for id in ids {
                    println!("{what}: ServiceRequest/{id}");
                }
            }
            if r == Default::default() {
                println!("nothing to send");
            }
            Ok(ExitCode::SUCCESS)
        }
        ReferralsCommand::Chase(a) => {
            let svc = a.store.service(ServiceConfig::default())?;
            let now = a.now.unwrap_or_else(OffsetDateTime::now_utc);
            let ids = wardline_workflow::referrals::send::chase(
                &svc,
                &Trusted::operator("referrals"),
                a.referrals.chase_period(),
                now,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            for id in &ids {
                println!("chase: ServiceRequest/{id}");
            }
            if ids.is_empty() {
                println!("nothing to chase");
            }
            Ok(ExitCode::SUCCESS)
        }
        ReferralsCommand::Keygen(a) => {
            use p384::elliptic_curve::sec1::ToEncodedPoint;
            use p384::pkcs8::EncodePrivateKey;
            let secret = loop {
                if let Ok(k) = p384::SecretKey::from_slice(&wardline_auth::pkce::random_bytes(48)) {
                    break k;
                }
            };
            let der = secret
                .to_pkcs8_der()
                .map_err(|e| anyhow::anyhow!("cannot encode the key: {e}"))?;
            let point = secret.public_key().to_encoded_point(false);
            let (Some(x), Some(y)) = (point.x(), point.y()) else {
                anyhow::bail!("the public key has no coordinates");
            };
            use base64::Engine;
            let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
            let jwks = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-384", "use": "sig",
                "alg": "ES384", "kid": a.kid, "x": b64(x), "y": b64(y)}]});
            std::fs::write(&a.key_out, der.as_bytes())
                .with_context(|| format!("cannot write {}", a.key_out.display()))?;
            std::fs::write(&a.jwks_out, serde_json::to_vec_pretty(&jwks)?)
                .with_context(|| format!("cannot write {}", a.jwks_out.display()))?;
            println!(
                "key: {}\njwks: {}",
                a.key_out.display(),
                a.jwks_out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
