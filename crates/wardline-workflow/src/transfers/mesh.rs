//! The MESH API v2 client (the NHS message exchange): send to a mailbox,
//! track a sent message. Blocking HTTP (`reqwest`, rustls; the real MESH
//! needs the client certificate, [`MeshConfig::identity_pem`]); callers run
//! it on a thread of their own, never inside an async task.
//!
//! Every request carries the MESH authorisation header ([`auth_header`]):
//! `NHSMESH {mailbox}:{nonce}:{nonce count}:{timestamp}:{HMAC}`, the HMAC
//! being HMAC-SHA256, keyed with the environment's shared key, of
//! `{mailbox}:{nonce}:{nonce count}:{password}:{timestamp}` (timestamp
//! `YYYYMMDDHHMM`, UTC), hex.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use time::OffsetDateTime;

/// The MESH v2 media type (the API version asked for).
pub const MESH_V2: &str = "application/vnd.mesh.v2+json";

/// Where and as whom Wardline talks to MESH.
#[derive(Clone)]
pub struct MeshConfig {
    /// e.g. `https://msg.intspineservices.nhs.uk` (no trailing slash).
    pub url: String,
    /// The trust's own mailbox id.
    pub mailbox: String,
    pub password: String,
    /// The environment's shared key for the authorisation HMAC.
    pub shared_key: String,
    /// The client certificate and key (PEM, concatenated) the real MESH
    /// requires; none for a sandbox.
    pub identity_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for MeshConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshConfig")
            .field("url", &self.url)
            .field("mailbox", &self.mailbox)
            .finish_non_exhaustive()
    }
}

/// The MESH authorisation header value for `mailbox` at `now`.
pub fn auth_header(
    mailbox: &str,
    password: &str,
    shared_key: &str,
    nonce: &str,
    nonce_count: u32,
    now: OffsetDateTime,
) -> String {
    let t = now.to_offset(time::UtcOffset::UTC);
    let ts = format!(
        "{:04}{:02}{:02}{:02}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    );
    let data = format!("{mailbox}:{nonce}:{nonce_count}:{password}:{ts}");
    let hex = match <Hmac<Sha256> as KeyInit>::new_from_slice(shared_key.as_bytes()) {
        Ok(mut mac) => {
            mac.update(data.as_bytes());
            mac.finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        }
        // HMAC takes a key of any length: this cannot happen.
        Err(_) => String::new(),
    };
    format!("NHSMESH {mailbox}:{nonce}:{nonce_count}:{ts}:{hex}")
}

/// A message to send.
pub struct MeshMessage<'a> {
    pub to: &'a str,
    pub workflow: &'a str,
    pub local_id: &'a str,
    pub subject: &'a str,
    pub filename: &'a str,
    pub content_type: &'a str,
    pub body: Vec<u8>,
}

/// What MESH says of a sent message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tracking {
    /// Accepted, not yet acknowledged by the recipient.
    Waiting,
    /// The recipient acknowledged it.
    Acknowledged,
    /// MESH could not deliver it (with what it said).
    Failed(String),
}

/// A MESH mailbox client.
pub struct MeshClient {
    cfg: MeshConfig,
    http: reqwest::blocking::Client,
}

impl MeshClient {
    pub fn new(cfg: MeshConfig) -> Result<MeshClient, String> {
        let mut b = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .connect_timeout(std::time::Duration::from_secs(10));
        if let Some(pem) = &cfg.identity_pem {
            let id = reqwest::Identity::from_pem(pem)
                .map_err(|e| format!("the MESH client certificate cannot be read: {e}"))?;
            b = b.identity(id);
        }
        let http = b.build().map_err(|e| format!("MESH client: {e}"))?;
        Ok(MeshClient { cfg, http })
    }

    pub fn mailbox(&self) -> &str {
        &self.cfg.mailbox
    }

    fn auth(&self) -> String {
        auth_header(
            &self.cfg.mailbox,
            &self.cfg.password,
            &self.cfg.shared_key,
            &uuid::Uuid::new_v4().to_string(),
            1,
            OffsetDateTime::now_utc(),
        )
    }

    fn base(&self) -> String {
        format!(
            "{}/messageexchange/{}",
            self.cfg.url.trim_end_matches('/'),
            self.cfg.mailbox
        )
    }

    /// Sends `m`; returns MESH's message id.
    pub fn send(&self, m: &MeshMessage<'_>) -> Result<String, String> {
        let resp = self
            .http
            .post(format!("{}/outbox", self.base()))
            .header("authorization", self.auth())
            .header("accept", MESH_V2)
            .header("content-type", m.content_type)
            .header("mex-to", m.to)
            .header("mex-workflowid", m.workflow)
            .header("mex-localid", m.local_id)
            .header("mex-subject", m.subject)
            .header("mex-filename", m.filename)
            .body(m.body.clone())
            .send()
            .map_err(|e| format!("MESH is unreachable: {e}"))?;
        let status = resp.status();
        let text = resp.text().unwrap_or_default();
        if !status.is_success() {
            return Err(format!(
                "MESH refused the message ({status}): {}",
                text.chars().take(300).collect::<String>()
            ));
        }
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| format!("MESH's answer is not JSON ({e}): {text}"))?;
        v["message_id"]
            .as_str()
            .or_else(|| v["messageID"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| format!("MESH's answer has no message id: {text}"))
    }

    /// What MESH says of message `id` that this mailbox sent.
    pub fn track(&self, id: &str) -> Result<Tracking, String> {
        let resp = self
            .http
            .get(format!("{}/outbox/tracking", self.base()))
            .query(&[("messageID", id)])
            .header("authorization", self.auth())
            .header("accept", MESH_V2)
            .send()
            .map_err(|e| format!("MESH is unreachable: {e}"))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("MESH tracking of {id} failed ({status})"));
        }
        let v: Value = resp
            .json()
            .map_err(|e| format!("MESH tracking answer unreadable: {e}"))?;
        Ok(
            match v["status"]
                .as_str()
                .unwrap_or("")
                .to_ascii_lowercase()
                .as_str()
            {
                "acknowledged" => Tracking::Acknowledged,
                "undeliverable" | "error" => Tracking::Failed(format!(
                    "MESH reports the message {}: {}",
                    v["status"].as_str().unwrap_or("failed"),
                    v["failure_description"]
                        .as_str()
                        .or_else(|| v["status_description"].as_str())
                        .unwrap_or("no reason given")
                )),
                _ => Tracking::Waiting,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_authorisation_header_is_the_documented_hmac() {
        // Checked against mesh-sandbox's own generate_cipher_text with the
        // same inputs (mailbox X26ABC1, password "password", key "Banana").
        let h = auth_header(
            "X26ABC1",
            "password",
            "Banana",
            "nonce-1",
            1,
            datetime!(2026-12-03 08:05 UTC),
        );
        assert!(h.starts_with("NHSMESH X26ABC1:nonce-1:1:202612030805:"));
        let mac = h.rsplit(':').next().unwrap();
        assert_eq!(mac.len(), 64);
        assert_eq!(
            mac,
            "27b8e4441a92625d77ed67d0ab77e5425f4cd7911df11a031f324dc241393653"
        );
    }
}
