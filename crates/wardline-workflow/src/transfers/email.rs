//! Email to a GP practice over SMTP (`lettre`, no OpenSSL): the fallback
//! route. The document goes as attachments — the PDF (what a practice
//! reads) and the FHIR document Bundle (what its system can file); the
//! subject and body name no patient (the address may be wrong).

use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Message, SmtpTransport, Transport};

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain SMTP (a relay on a trusted network, or a test server).
    None,
    /// STARTTLS, required (nhs.net's submission service).
    StartTls,
    /// TLS from the start (port 465).
    Tls,
}

/// Where and as whom Wardline sends email.
#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    /// The sender address, e.g. `discharge.summaries@trust.nhs.net`.
    pub from: String,
    pub security: SmtpSecurity,
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("from", &self.from)
            .field("security", &self.security)
            .finish_non_exhaustive()
    }
}

/// A file attached to an email.
pub struct EmailAttachment {
    pub filename: String,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// An SMTP sender.
pub struct Mailer {
    from: Mailbox,
    transport: SmtpTransport,
}

impl Mailer {
    pub fn new(cfg: &SmtpConfig) -> Result<Mailer, String> {
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|e| format!("the sender address {:?} is not valid: {e}", cfg.from))?;
        let mut b = match cfg.security {
            SmtpSecurity::None => SmtpTransport::builder_dangerous(&cfg.host),
            SmtpSecurity::StartTls => SmtpTransport::starttls_relay(&cfg.host)
                .map_err(|e| format!("SMTP STARTTLS to {}: {e}", cfg.host))?,
            SmtpSecurity::Tls => SmtpTransport::relay(&cfg.host)
                .map_err(|e| format!("SMTP TLS to {}: {e}", cfg.host))?,
        }
        .port(cfg.port)
        .timeout(Some(std::time::Duration::from_secs(30)));
        if let Some((u, p)) = &cfg.credentials {
            b = b.credentials(Credentials::new(u.clone(), p.clone()));
        }
        Ok(Mailer {
            from,
            transport: b.build(),
        })
    }

    /// Sends one message to `to`; `Err` says why it was not accepted.
    pub fn send(
        &self,
        to: &str,
        subject: &str,
        body: &str,
        attachments: Vec<EmailAttachment>,
    ) -> Result<(), String> {
        let to: Mailbox = to
            .parse()
            .map_err(|e| format!("the practice's email address {to:?} is not valid: {e}"))?;
        let mut parts = MultiPart::mixed().singlepart(SinglePart::plain(body.to_owned()));
        for a in attachments {
            let ct = ContentType::parse(&a.content_type).unwrap_or(
                ContentType::parse("application/octet-stream").map_err(|e| e.to_string())?,
            );
            parts = parts.singlepart(Attachment::new(a.filename).body(a.body, ct));
        }
        let msg = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .multipart(parts)
            .map_err(|e| format!("the email cannot be built: {e}"))?;
        self.transport
            .send(&msg)
            .map(|_| ())
            .map_err(|e| format!("the mail server did not accept the email: {e}"))
    }
}

/// The email that carries a delivery (subject, body, attachments): to a
/// practice, the PDF and the FHIR document, naming no patient; to the
/// patient (their own copy), the PDF only, in words for them.
pub fn compose(
    kind: super::Kind,
    to_patient: bool,
    local: &str,
    pdf: &Option<Vec<u8>>,
    bundle: &Option<Vec<u8>>,
) -> (String, String, Vec<EmailAttachment>) {
    let stem = kind.code();
    let mut atts = Vec::new();
    if let Some(p) = pdf {
        atts.push(EmailAttachment {
            filename: format!("{stem}.pdf"),
            content_type: "application/pdf".into(),
            body: p.clone(),
        });
    }
    if to_patient {
        let body = format!(
            "Your {} from the hospital is attached as a PDF.\n\nReference: {local}.\nIf this letter is not for you, please tell the hospital and delete this email.\nYou asked for your letters by email; to have them by post instead, tell the clinic.\n",
            kind.label().to_lowercase()
        );
        return (format!("Your {}", kind.label().to_lowercase()), body, atts);
    }
    if let Some(b) = bundle {
        atts.push(EmailAttachment {
            filename: format!("{stem}.fhir.json"),
            content_type: "application/fhir+json".into(),
            body: b.clone(),
        });
    }
    let body = match kind {
        super::Kind::CareActAssessment | super::Kind::CareActDischarge => format!(
            "A {} about a patient in hospital is attached (the FHIR document for your case management system).\n\nReference: {local}.\nIf this local authority is not responsible for the patient, tell the sender and delete this email.\n",
            kind.label().to_lowercase()
        ),
        _ => format!(
            "A {} for one of your patients is attached (PDF, and the FHIR document for your clinical system).\n\nReference: {local}.\nIf this practice is not the patient's registered practice, tell the sender and delete this email.\n",
            kind.label().to_lowercase()
        ),
    };
    (format!("{} ({local})", kind.label()), body, atts)
}
