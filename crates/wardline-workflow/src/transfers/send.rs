//! Sending: the job step that delivers queued documents and follows them
//! up ([`run`]; the `wardline serve` job and `wardline transfers send
//! --now` both call it with the clock injected).
//!
//! For each delivery in `preparation` whose `nextAttempt` has come:
//!
//! 1. **Claim** (one transaction, under the Communication's lock):
//!    `nextAttempt` moves [`LEASE`] ahead, so a second runner at the same
//!    moment leaves it alone, and a runner that dies mid-send retries it
//!    after the lease. The document's Bundle and PDF and the practice's
//!    routes are read here.
//! 2. **Deliver** outside any transaction, on the current route (the
//!    `route` sub-extension, else the practice's first): MESH — the Bundle
//!    (or the PDF when there is no Bundle) to the practice mailbox with
//!    the kind's workflow id and the Communication id as local id; email —
//!    the PDF and the Bundle attached.
//! 3. **Record** (one transaction, under the lock, only if the claim still
//!    stands): MESH accepted → `in-progress`, `sent`, `meshMessageId`;
//!    email accepted → `completed`, `sent`; either closes the encounter's
//!    overdue-summary Task ([`super::standard::close_overdue_in`]). A
//!    failure → `attempts` + 1 and `nextAttempt` after a back-off doubling
//!    from [`Policy::backoff`]; after [`Policy::attempts_per_route`] (or at
//!    once when the route cannot work here, e.g. no SMTP configured) the
//!    next route, at once; after the last route, `stopped` and a
//!    [`super::DELIVERY_FAILURE_CODE`] Task on the delivery-failures
//!    worklist.
//!
//! **Consent** comes before any route ([`dissent_in`]): at the claim, the
//! patient's sharing decisions (`wardline_core::consent`, the reading the
//! access policy uses, at the job's clock) are read, and when the patient
//! has dissented from sharing with the recipient organisation no route is
//! tried and no bytes leave: the delivery is `stopped` with the reason as
//! `statusReason`, and a [`super::DELIVERY_WITHHELD_CODE`] Task (owner the
//! responsible consultant, as the overdue-summary Task) asks the team to
//! review it; the dashboard counts it as withheld. The withholding is its
//! own audited transaction (`transfers-withhold`). Pages ask
//! [`consent_warning`] to warn before queueing or signing.
//!
//! Every attempt is audited: the claim and the recorded outcome are each a
//! transaction of the job's agent with the Wardline subtype
//! `transfers-send` whose entity is the delivery (`Communication/{id}`).
//!
//! Deliveries `in-progress` over MESH are tracked: acknowledged →
//! `completed` with `received`; reported undeliverable → the next route as
//! after a failure.

use base64::Engine;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use wardline_core::audit::WARDLINE_SUBTYPE;
use wardline_core::{Access, FhirService, Tx};

use super::email::Mailer;
use super::mesh::{MeshClient, MeshMessage, Tracking};
use super::routing::{Channel, Route};
use super::{
    DELIVERY_FAILURE_CODE, KIND_SYSTEM, Kind, TransfersError, attempts, delivery_text, fhir_time,
    kind_of, lock_key, ms_of, parse_ms, set_delivery, set_status,
};
use crate::fhir::reference_id;
use crate::pmi::TASK_SYSTEM;

/// How long a claimed delivery is left to the runner that claimed it.
pub const LEASE: Duration = Duration::minutes(10);

/// The routes' connections this server has (none configured: that route
/// fails at once and the next is tried).
#[derive(Default)]
pub struct Transports {
    pub mesh: Option<MeshClient>,
    pub email: Option<Mailer>,
}

/// Retry policy.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Attempts on one route before the next route is tried.
    pub attempts_per_route: u32,
    /// The wait after the first failure; it doubles after each further one.
    pub backoff: Duration,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            attempts_per_route: 3,
            backoff: Duration::minutes(5),
        }
    }
}

/// What one run did (Communication ids).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunReport {
    pub sent: Vec<String>,
    pub acknowledged: Vec<String>,
    pub retrying: Vec<String>,
    pub failed: Vec<String>,
    /// Stopped before any route was tried: the patient dissented from
    /// sharing with the recipient.
    pub withheld: Vec<String>,
}

struct Claimed {
    id: String,
    kind: Kind,
    attempts: u32,
    routes: Vec<Route>,
    current: usize,
    bundle: Option<Vec<u8>>,
    pdf: Option<Vec<u8>>,
    /// The patient's own copy (not a practice's).
    to_patient: bool,
}

enum Claim {
    /// No longer due, or not a delivery.
    Skip,
    /// Stopped: the patient dissented from sharing with the recipient.
    Withheld,
    Due(Box<Claimed>),
}

enum Outcome {
    Sent(Route, Option<String>),
    Failed(String, bool),
}

fn begin<'a>(svc: &'a FhirService, access: &'a dyn Access) -> Result<Tx<'a>, TransfersError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "transfers-send", "U");
    Ok(tx)
}

/// Delivers what is due and tracks what is waiting for acknowledgement, at
/// `now` (see the module documentation).
pub fn run(
    svc: &FhirService,
    access: &dyn Access,
    transports: &Transports,
    policy: Policy,
    now: OffsetDateTime,
) -> Result<RunReport, TransfersError> {
    let mut report = RunReport::default();
    let (due, waiting) = {
        let mut tx = begin(svc, access)?;
        // Only deliveries (the HL7 message store's Communications are not).
        let kinds = Kind::ALL
            .iter()
            .map(|k| format!("{KIND_SYSTEM}|{}", k.1))
            .collect::<Vec<_>>()
            .join(",");
        let kinds = format!("category={kinds}");
        let prep = tx.find(
            "Communication",
            &format!("status=preparation&{kinds}&_count=1000"),
        )?;
        let sent = tx.find(
            "Communication",
            &format!("status=in-progress&{kinds}&_count=1000"),
        )?;
        tx.commit()?;
        let now_ms = ms_of(now);
        let due: Vec<String> = prep
            .iter()
            .filter(|c| kind_of(c).is_some())
            .filter(|c| {
                delivery_text(c, "nextAttempt")
                    .and_then(parse_ms)
                    .unwrap_or(0)
                    <= now_ms
            })
            .filter_map(|c| c["id"].as_str().map(str::to_owned))
            .collect();
        let waiting: Vec<(String, String)> = sent
            .iter()
            .filter(|c| kind_of(c).is_some() && delivery_text(c, "route") == Some("mesh"))
            .filter_map(|c| {
                Some((
                    c["id"].as_str()?.to_owned(),
                    delivery_text(c, "meshMessageId")?.to_owned(),
                ))
            })
            .collect();
        (due, waiting)
    };
    if let Some(mesh) = &transports.mesh {
        for (id, mesh_id) in waiting {
            match mesh.track(&mesh_id) {
                Ok(Tracking::Waiting) => {}
                Ok(Tracking::Acknowledged) => {
                    let mut tx = begin(svc, access)?;
                    if acknowledged_in(&mut tx, &id, &mesh_id, now)? {
                        report.acknowledged.push(id);
                    }
                    tx.commit()?;
                }
                Ok(Tracking::Failed(why)) => {
                    let mut tx = begin(svc, access)?;
                    if let Some(failed) =
                        undeliverable_in(&mut tx, &id, &mesh_id, &why, policy, now)?
                    {
                        if failed {
                            report.failed.push(id);
                        } else {
                            report.retrying.push(id);
                        }
                    }
                    tx.commit()?;
                }
                Err(e) => tracing::warn!(communication = %id, error = %e, "MESH tracking failed"),
            }
        }
    }
    for id in due {
        let claimed = {
            let mut tx = begin(svc, access)?;
            let c = claim_in(&mut tx, &id, now)?;
            tx.commit()?;
            c
        };
        let c = match claimed {
            Claim::Skip => continue,
            Claim::Withheld => {
                report.withheld.push(id);
                continue;
            }
            Claim::Due(c) => c,
        };
        let outcome = deliver(transports, &c);
        let mut tx = begin(svc, access)?;
        let result = record_in(&mut tx, &c, outcome, policy, now)?;
        tx.commit()?;
        match result {
            Some(Recorded::Sent) => report.sent.push(id),
            Some(Recorded::Retrying) => report.retrying.push(id),
            Some(Recorded::Failed) => report.failed.push(id),
            None => {}
        }
    }
    Ok(report)
}

fn attachment_bytes(tx: &mut Tx<'_>, att: &Value) -> Result<Option<Vec<u8>>, TransfersError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    if let Some(d) = att["data"].as_str() {
        return Ok(b64.decode(d).ok());
    }
    let Some(url) = att["url"].as_str() else {
        return Ok(None);
    };
    if let Some(id) = url.strip_prefix("Binary/") {
        return Ok(tx
            .get("Binary", id)?
            .and_then(|b| b["data"].as_str().and_then(|d| b64.decode(d).ok())));
    }
    if let Some(id) = url.strip_prefix("Bundle/") {
        return Ok(tx
            .get("Bundle", id)?
            .and_then(|b| serde_json::to_vec(&b).ok()));
    }
    Ok(None)
}

/// A document's Bundle (JSON) and PDF.
type Files = (Option<Vec<u8>>, Option<Vec<u8>>);

/// The document's Bundle (JSON) and PDF.
fn files_in(tx: &mut Tx<'_>, doc: &Value) -> Result<Files, TransfersError> {
    let (mut bundle, mut pdf) = (None, None);
    for c in doc["content"].as_array().into_iter().flatten() {
        let att = &c["attachment"];
        let ct = att["contentType"].as_str().unwrap_or("");
        if ct.starts_with("application/pdf") && pdf.is_none() {
            pdf = attachment_bytes(tx, att)?;
        } else if (ct.contains("fhir+json")
            || att["url"]
                .as_str()
                .is_some_and(|u| u.starts_with("Bundle/")))
            && bundle.is_none()
        {
            bundle = attachment_bytes(tx, att)?;
        }
    }
    Ok((bundle, pdf))
}

fn current_route(comm: &Value, routes: &[Route]) -> usize {
    let ch = delivery_text(comm, "route").and_then(Channel::of_code);
    ch.and_then(|ch| routes.iter().position(|r| r.channel == ch))
        .unwrap_or(0)
}

/// Claims a due delivery (see the module documentation): [`Claim::Skip`]
/// when it is no longer due or waiting, [`Claim::Withheld`] when the
/// patient's dissent stopped it (recorded in a transaction of its own).
fn claim_in(tx: &mut Tx<'_>, id: &str, now: OffsetDateTime) -> Result<Claim, TransfersError> {
    tx.lock(&[lock_key(id)])?;
    let Some(mut comm) = tx.get("Communication", id)? else {
        return Ok(Claim::Skip);
    };
    let next = delivery_text(&comm, "nextAttempt")
        .and_then(parse_ms)
        .unwrap_or(0);
    if comm["status"] != "preparation" || next > ms_of(now) {
        return Ok(Claim::Skip);
    }
    let Some(kind) = kind_of(&comm) else {
        return Ok(Claim::Skip);
    };
    if let Some(why) = dissent_in(tx, &comm, now)? {
        tx.set_audit_subtype(WARDLINE_SUBTYPE, "transfers-withhold", "U");
        withhold_in(tx, comm, &why, now)?;
        return Ok(Claim::Withheld);
    }
    let routes = recipient_routes(tx, &comm)?;
    let doc_id = reference_id(&comm["payload"][0]["contentReference"], "DocumentReference")
        .map(str::to_owned);
    let (bundle, pdf) = match doc_id {
        Some(d) => match tx.get("DocumentReference", &d)? {
            Some(doc) => files_in(tx, &doc)?,
            None => (None, None),
        },
        None => (None, None),
    };
    let current = current_route(&comm, &routes);
    set_delivery(
        &mut comm,
        "nextAttempt",
        Some(("valueDateTime", json!(fhir_time(now + LEASE)))),
    );
    tx.save(comm.clone())?;
    Ok(Claim::Due(Box::new(Claimed {
        id: id.to_owned(),
        kind,
        attempts: attempts(&comm),
        routes,
        current,
        bundle,
        pdf,
        to_patient: reference_id(&comm["recipient"][0], "Patient").is_some(),
    })))
}

/// Why the patient's consent forbids sending `comm` to its recipient, at
/// `now` (`None`: it may go). The recipient is an organisation outside the
/// trust (a GP practice, a local authority): a delivery leaves the trust by
/// its nature. The patient's sharing decisions are read as the access
/// policy reads them (`wardline_core::consent`).
pub fn dissent_in(
    tx: &mut Tx<'_>,
    comm: &Value,
    now: OffsetDateTime,
) -> Result<Option<String>, TransfersError> {
    let (Some(patient), Some(org)) = (
        reference_id(&comm["subject"], "Patient"),
        comm["recipient"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|r| reference_id(r, "Organization")),
    ) else {
        return Ok(None);
    };
    let (patient, org) = (patient.to_owned(), org.to_owned());
    dissent_for_in(tx, &patient, &org, now)
}

/// Why the patient `patient` (id) dissents from sharing with the
/// organisation `org` (id) at `now`, naming it (`None`: no dissent).
fn dissent_for_in(
    tx: &mut Tx<'_>,
    patient: &str,
    org: &str,
    now: OffsetDateTime,
) -> Result<Option<String>, TransfersError> {
    let sharing = wardline_core::consent::sharing_in(tx, patient, ms_of(now))?;
    if sharing.allows(org, false) {
        return Ok(None);
    }
    let name = tx
        .get("Organization", org)?
        .and_then(|o| o["name"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("Organization/{org}"));
    Ok(Some(if sharing.deny_all_partners {
        format!(
            "The patient has dissented from sharing their record with organisations outside the trust, {name} among them."
        )
    } else {
        format!("The patient has dissented from sharing their record with {name}.")
    }))
}

/// The warning a page shows before queueing or signing a document for
/// `recipient` (`Organization/{id}`) about `patient` (`Patient/{id}`): the
/// reason the delivery would be withheld, or `None`. Read as the caller
/// (audited as `transfers-consent-check`).
pub fn consent_warning(
    svc: &FhirService,
    access: &dyn Access,
    patient: &str,
    recipient: &str,
    now: OffsetDateTime,
) -> Result<Option<String>, TransfersError> {
    let (Some(p), Some(o)) = (
        patient.strip_prefix("Patient/"),
        recipient.strip_prefix("Organization/"),
    ) else {
        return Ok(None);
    };
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "transfers-consent-check", "R");
    let w = dissent_for_in(&mut tx, p, o, now)?;
    tx.commit()?;
    Ok(w)
}

/// [`consent_warning`] for the patient's registered GP practice (the
/// recipient signing a discharge summary queues it for): the reason its
/// delivery would be withheld, or `None` (also when no practice is named).
/// `patient` is the Patient id. Read as the caller (audited as
/// `transfers-consent-check`).
pub fn practice_consent_warning(
    svc: &FhirService,
    access: &dyn Access,
    patient: &str,
    now: OffsetDateTime,
) -> Result<Option<String>, TransfersError> {
    let mut tx = svc.begin(access)?;
    tx.set_audit_subtype(WARDLINE_SUBTYPE, "transfers-consent-check", "R");
    let gp = tx
        .get("Patient", patient)?
        .and_then(|p| crate::documents::discharge::prefill::gp_practice_id(&p));
    let w = match gp {
        Some(org) => dissent_for_in(&mut tx, patient, &org, now)?,
        None => None,
    };
    tx.commit()?;
    Ok(w)
}

/// Stops a delivery the patient's dissent forbids: no route tried,
/// `statusReason` the reason, and a [`super::DELIVERY_WITHHELD_CODE`] Task
/// for the responsible team.
fn withhold_in(
    tx: &mut Tx<'_>,
    mut comm: Value,
    why: &str,
    now: OffsetDateTime,
) -> Result<(), TransfersError> {
    set_status(&mut comm, "stopped", Some(&format!("Not sent: {why}")))?;
    set_delivery(&mut comm, "nextAttempt", None);
    set_delivery(
        &mut comm,
        "lastError",
        Some(("valueString", json!(format!("Withheld: {why}")))),
    );
    let now_s = fhir_time(now);
    let id = comm["id"].as_str().unwrap_or_default().to_owned();
    let kind = kind_of(&comm).unwrap_or(Kind::DischargeSummary);
    let mut task = json!({
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "priority": "urgent",
        "code": {"coding": [{"system": TASK_SYSTEM, "code": super::DELIVERY_WITHHELD_CODE,
            "display": "Document withheld: the patient dissented from sharing"}]},
        "focus": {"reference": format!("Communication/{id}")},
        "for": comm["subject"],
        "encounter": comm["encounter"],
        "authoredOn": now_s,
        "lastModified": now_s,
        "description": format!("{} not sent: {why} Review with the patient how the recipient is to be told what they need (for example a copy given to the patient).", kind.label()),
    });
    if let Some(e) = reference_id(&comm["encounter"], "Encounter").map(str::to_owned)
        && let Some(enc) = tx.get("Encounter", &e)?
        && let Some(owner) = crate::results::escalation::attending(&enc)
    {
        task["owner"] = json!({"reference": owner});
    }
    tx.save(comm)?;
    tx.save(task)?;
    Ok(())
}

fn deliver(t: &Transports, c: &Claimed) -> Outcome {
    let Some(route) = c.routes.get(c.current) else {
        return Outcome::Failed(
            "The practice has no delivery route (MESH mailbox or email address) set.".into(),
            true,
        );
    };
    if c.bundle.is_none() && c.pdf.is_none() {
        return Outcome::Failed(
            "The document has neither a Bundle nor a PDF to send.".into(),
            true,
        );
    }
    let local = format!("Communication/{}", c.id);
    match route.channel {
        Channel::Mesh => {
            let Some(mesh) = &t.mesh else {
                return Outcome::Failed("MESH is not configured on this server.".into(), true);
            };
            let (body, ct, name) = match (&c.bundle, &c.pdf) {
                (Some(b), _) => (b.clone(), "application/fhir+json", format!("{}.json", c.id)),
                (None, Some(p)) => (p.clone(), "application/pdf", format!("{}.pdf", c.id)),
                (None, None) => (Vec::new(), "application/octet-stream", String::new()),
            };
            match mesh.send(&MeshMessage {
                to: &route.address,
                workflow: c.kind.mesh_workflow(),
                local_id: &local,
                subject: c.kind.label(),
                filename: &name,
                content_type: ct,
                body,
            }) {
                Ok(mid) => Outcome::Sent(route.clone(), Some(mid)),
                Err(e) => Outcome::Failed(e, false),
            }
        }
        Channel::Email => {
            let Some(mailer) = &t.email else {
                return Outcome::Failed(
                    "Email (SMTP) is not configured on this server.".into(),
                    true,
                );
            };
            let (subject, body, atts) =
                super::email::compose(c.kind, c.to_patient, &local, &c.pdf, &c.bundle);
            match mailer.send(&route.address, &subject, &body, atts) {
                Ok(()) => Outcome::Sent(route.clone(), None),
                Err(e) => Outcome::Failed(e, false),
            }
        }
    }
}

enum Recorded {
    Sent,
    Retrying,
    Failed,
}

fn record_in(
    tx: &mut Tx<'_>,
    c: &Claimed,
    outcome: Outcome,
    policy: Policy,
    now: OffsetDateTime,
) -> Result<Option<Recorded>, TransfersError> {
    tx.lock(&[lock_key(&c.id)])?;
    let Some(mut comm) = tx.get("Communication", &c.id)? else {
        return Ok(None);
    };
    // The claim stands only if nobody recorded anything since.
    if comm["status"] != "preparation" || attempts(&comm) != c.attempts {
        return Ok(None);
    }
    match outcome {
        Outcome::Sent(route, mesh_id) => {
            let to = if mesh_id.is_some() {
                "in-progress"
            } else {
                "completed"
            };
            set_status(&mut comm, to, None)?;
            comm["sent"] = json!(fhir_time(now));
            set_delivery(
                &mut comm,
                "route",
                Some(("valueCode", json!(route.channel.code()))),
            );
            set_delivery(
                &mut comm,
                "address",
                Some(("valueString", json!(route.address))),
            );
            set_delivery(
                &mut comm,
                "attempts",
                Some(("valueInteger", json!(c.attempts + 1))),
            );
            set_delivery(&mut comm, "nextAttempt", None);
            set_delivery(
                &mut comm,
                "meshMessageId",
                mesh_id.map(|m| ("valueString", json!(m))),
            );
            let enc = comm["encounter"]["reference"].as_str().map(str::to_owned);
            tx.save(comm)?;
            if let Some(e) = enc.filter(|_| c.kind == Kind::DischargeSummary) {
                super::standard::close_overdue_in(tx, &e, now)?;
            }
            Ok(Some(Recorded::Sent))
        }
        Outcome::Failed(why, route_unusable) => {
            let route = c.routes.get(c.current).cloned();
            if let Some(r) = &route {
                set_delivery(
                    &mut comm,
                    "route",
                    Some(("valueCode", json!(r.channel.code()))),
                );
                set_delivery(
                    &mut comm,
                    "address",
                    Some(("valueString", json!(r.address))),
                );
            }
            let label = route.as_ref().map_or("No route", |r| r.channel.label());
            set_delivery(
                &mut comm,
                "lastError",
                Some(("valueString", json!(format!("{label}: {why}")))),
            );
            failed_in(
                tx,
                comm,
                c.attempts + 1,
                route_unusable,
                c.current,
                &c.routes,
                policy,
                now,
            )
            .map(Some)
        }
    }
}

/// After a failure on route `current` (the `made`-th attempt on it): the
/// next attempt, the next route, or the end.
#[allow(clippy::too_many_arguments)]
fn failed_in(
    tx: &mut Tx<'_>,
    mut comm: Value,
    made: u32,
    route_unusable: bool,
    current: usize,
    routes: &[Route],
    policy: Policy,
    now: OffsetDateTime,
) -> Result<Recorded, TransfersError> {
    if comm["status"] == "in-progress" {
        set_status(&mut comm, "preparation", None)?;
    }
    if !route_unusable && made < policy.attempts_per_route.max(1) {
        let wait = policy.backoff * 2i32.saturating_pow(made.saturating_sub(1).min(16));
        set_delivery(&mut comm, "attempts", Some(("valueInteger", json!(made))));
        set_delivery(
            &mut comm,
            "nextAttempt",
            Some(("valueDateTime", json!(fhir_time(now + wait)))),
        );
        tx.save(comm)?;
        return Ok(Recorded::Retrying);
    }
    if let Some(next) = routes.get(current + 1) {
        set_delivery(
            &mut comm,
            "route",
            Some(("valueCode", json!(next.channel.code()))),
        );
        set_delivery(
            &mut comm,
            "address",
            Some(("valueString", json!(next.address))),
        );
        set_delivery(&mut comm, "attempts", Some(("valueInteger", json!(0))));
        set_delivery(
            &mut comm,
            "nextAttempt",
            Some(("valueDateTime", json!(fhir_time(now)))),
        );
        tx.save(comm)?;
        return Ok(Recorded::Retrying);
    }
    let why = delivery_text(&comm, "lastError")
        .unwrap_or("every route failed")
        .to_owned();
    set_status(&mut comm, "stopped", Some(&format!("Not delivered: {why}")))?;
    set_delivery(&mut comm, "attempts", Some(("valueInteger", json!(made))));
    set_delivery(&mut comm, "nextAttempt", None);
    let now_s = fhir_time(now);
    let id = comm["id"].as_str().unwrap_or_default().to_owned();
    let task = json!({
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "priority": "urgent",
        "code": {"coding": [{"system": TASK_SYSTEM, "code": DELIVERY_FAILURE_CODE,
            "display": "Document not delivered"}]},
        "focus": {"reference": format!("Communication/{id}")},
        "for": comm["subject"],
        "encounter": comm["encounter"],
        "authoredOn": now_s,
        "lastModified": now_s,
        "description": match recipient_words(&comm) {
            "the patient" => format!("The patient's copy was not delivered to their email address: {why}. Check the address with the patient and send it again, or print and post it."),
            who => format!("Not delivered to {who} on any route: {why}. Check the routes and send it again, or send it by another means."),
        },
    });
    tx.save(comm)?;
    tx.save(task)?;
    Ok(Recorded::Failed)
}

/// Who a delivery is for, in words.
fn recipient_words(comm: &Value) -> &'static str {
    if reference_id(&comm["recipient"][0], "Patient").is_some() {
        "the patient"
    } else if matches!(
        kind_of(comm),
        Some(Kind::CareActAssessment | Kind::CareActDischarge)
    ) {
        "the local authority"
    } else {
        "the GP practice"
    }
}

fn acknowledged_in(
    tx: &mut Tx<'_>,
    id: &str,
    mesh_id: &str,
    now: OffsetDateTime,
) -> Result<bool, TransfersError> {
    tx.lock(&[lock_key(id)])?;
    let Some(mut comm) = tx.get("Communication", id)? else {
        return Ok(false);
    };
    if comm["status"] != "in-progress" || delivery_text(&comm, "meshMessageId") != Some(mesh_id) {
        return Ok(false);
    }
    set_status(&mut comm, "completed", None)?;
    comm["received"] = json!(fhir_time(now));
    tx.save(comm)?;
    Ok(true)
}

/// MESH reported the message undeliverable: `Some(true)` stopped,
/// `Some(false)` another route next.
fn undeliverable_in(
    tx: &mut Tx<'_>,
    id: &str,
    mesh_id: &str,
    why: &str,
    policy: Policy,
    now: OffsetDateTime,
) -> Result<Option<bool>, TransfersError> {
    tx.lock(&[lock_key(id)])?;
    let Some(mut comm) = tx.get("Communication", id)? else {
        return Ok(None);
    };
    if comm["status"] != "in-progress" || delivery_text(&comm, "meshMessageId") != Some(mesh_id) {
        return Ok(None);
    }
    let routes = recipient_routes(tx, &comm)?;
    let current = current_route(&comm, &routes);
    if let Some(o) = comm.as_object_mut() {
        o.remove("sent");
    }
    set_delivery(&mut comm, "meshMessageId", None);
    set_delivery(
        &mut comm,
        "lastError",
        Some(("valueString", json!(format!("MESH: {why}")))),
    );
    let made = attempts(&comm);
    let r = failed_in(tx, comm, made, true, current, &routes, policy, now)?;
    Ok(Some(matches!(r, Recorded::Failed)))
}

/// The routes of the delivery's recipient practice, in order of
/// preference: none when the recipient names no practice or one that does
/// not exist (the delivery then stops on the failures worklist), but a
/// store error is an error — never read as "no route", which would stop a
/// delivery that could be sent.
fn recipient_routes(tx: &mut Tx<'_>, comm: &Value) -> Result<Vec<Route>, TransfersError> {
    super::routing::recipient_routes_in(tx, &comm["recipient"][0])
}
