//! `wardline hl7 …`: operator commands for HL7 v2 messages.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum Hl7Command {
    /// Parse an HL7 v2 file (one message, several, or a FHS/BHS batch; .gz
    /// accepted) and print it as a tree, one line per value named by its
    /// position (PID-3[2].1) and decoded; `--json` prints segments → fields
    /// → repetitions → components instead. Exit 1 with the line and field on
    /// bad input, and on a message cut off inside its header.
    Parse(ParseArgs),
    /// Send the messages of an HL7 v2 file over MLLP, one at a time, waiting
    /// for each ACK; prints one line per message (control id, ACK code,
    /// text). Exit 1 if any message is not acknowledged AA/CA.
    Send(SendArgs),
    /// Apply a stored inbound message again (after it was refused, or stored
    /// unmapped), optionally with a corrected text. Prints the new outcome.
    Reprocess(ReprocessArgs),
    /// Put an outbound message (e.g. a dead letter) back in its queue.
    Retry(RetryArgs),
    /// List stored HL7 messages, newest first: record id, direction, status,
    /// type, control id, reason.
    List(ListArgs),
}

/// Settings of the HL7 v2 engine shared by `serve` and the operator commands.
#[derive(Args, Clone, Debug)]
pub struct EngineArgs {
    /// Outbound MLLP destination, NAME=HOST:PORT or
    /// NAME=HOST:PORT/APPLICATION^FACILITY, optionally followed by
    /// `;orders=orm` for a system taking orders as ORM^O01 (default: one
    /// OML^O21 per requisition) and/or `;pharmacy=ras` for a pharmacy
    /// system told of each dose given or not given (RAS^O17) (repeat, or
    /// comma-separate in the environment variable).
    #[arg(
        long = "hl7-destination",
        env = "WARDLINE_HL7_DESTINATIONS",
        value_delimiter = ','
    )]
    pub destinations: Vec<String>,
    /// What to do with well-formed messages of a type or event Wardline does not
    /// map: `reject` (answer AR with error 200/201 at MSH-9) or `hold` (park
    /// them on hold and answer AE saying they were held, not applied). Either
    /// way they are stored and can be reprocessed once mapped; never AA.
    #[arg(long = "hl7-unsupported", env = "WARDLINE_HL7_UNSUPPORTED", default_value = "reject", value_parser = ["reject", "hold"])]
    pub unsupported: String,
    /// Base of the identifier systems given to local numbers from HL7 v2
    /// (hospital numbers, visit numbers, order numbers, locations).
    #[arg(
        long = "hl7-identifier-base",
        env = "WARDLINE_HL7_IDENTIFIER_BASE",
        default_value = "https://fhir.wardline.invalid/Id"
    )]
    pub identifier_base: String,
    /// MSH-3 (sending application) of outbound messages.
    #[arg(
        long = "hl7-application",
        env = "WARDLINE_HL7_APPLICATION",
        default_value = "WARDLINE"
    )]
    pub application: String,
    /// MSH-4 (sending facility) of outbound messages.
    #[arg(
        long = "hl7-facility",
        env = "WARDLINE_HL7_FACILITY",
        default_value = "WARDLINE"
    )]
    pub facility: String,
    /// Who is master of the beds when an HL7 v2 message puts a patient in a
    /// bed that is occupied, closed or blocked: `wardline` (default; the
    /// message is refused with AE naming the bed) or `external` (the PAS:
    /// its admission stands and a bed-clash task goes to the bed manager).
    #[arg(
        long = "hl7-bed-master",
        env = "WARDLINE_HL7_BED_MASTER",
        default_value = "wardline",
        value_parser = ["wardline", "external"]
    )]
    pub bed_master: String,
}

impl EngineArgs {
    pub fn mapping(&self) -> wardline_hl7_fhir::MappingConfig {
        wardline_hl7_fhir::MappingConfig {
            identifier_base: self.identifier_base.trim_end_matches('/').to_owned(),
            sending_application: self.application.clone(),
            sending_facility: self.facility.clone(),
            bed_master: if self.bed_master == "external" {
                wardline_workflow::adt::BedMaster::External
            } else {
                wardline_workflow::adt::BedMaster::Wardline
            },
        }
    }

    pub fn engine(&self) -> wardline_integration::EngineConfig {
        wardline_integration::EngineConfig {
            mapping: self.mapping(),
            unsupported: if self.unsupported == "hold" {
                wardline_integration::UnsupportedPolicy::Hold
            } else {
                wardline_integration::UnsupportedPolicy::Reject
            },
        }
    }

    pub fn destinations(&self) -> Result<Vec<wardline_integration::Destination>> {
        let mut out: Vec<wardline_integration::Destination> = Vec::new();
        for d in self.destinations.iter().filter(|d| !d.trim().is_empty()) {
            let d = wardline_integration::Destination::parse(d.trim())
                .map_err(|e| anyhow::anyhow!("--hl7-destination {e}"))?;
            anyhow::ensure!(
                !out.iter().any(|o| o.name == d.name),
                "--hl7-destination: '{}' is given twice",
                d.name
            );
            out.push(d);
        }
        Ok(out)
    }

    /// The service with the outbox hook when destinations are configured.
    pub fn service(
        &self,
        service: wardline_core::FhirService,
    ) -> Result<wardline_core::FhirService> {
        let dests = self.destinations()?;
        Ok(if dests.is_empty() {
            service
        } else {
            service.with_hook(std::sync::Arc::new(wardline_integration::OutboxHook::new(
                dests,
                self.mapping(),
            )))
        })
    }
}

#[derive(Args)]
pub struct ReprocessArgs {
    /// The record id (Communication id) of the stored message.
    id: String,
    /// Use this corrected HL7 v2 file instead of the stored text.
    #[arg(long = "with")]
    with: Option<PathBuf>,
    #[command(flatten)]
    store: crate::StoreArgs,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Args)]
pub struct RetryArgs {
    /// The record id (Communication id) of the outbound message.
    id: String,
    #[command(flatten)]
    store: crate::StoreArgs,
}

#[derive(Args)]
pub struct ListArgs {
    /// inbound or outbound.
    #[arg(long, value_parser = ["inbound", "outbound"])]
    direction: Option<String>,
    /// Record status: completed, not-done, on-hold (inbound); preparation,
    /// completed, stopped (outbound: queued, delivered, dead letter).
    #[arg(long)]
    status: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    count: usize,
    #[command(flatten)]
    store: crate::StoreArgs,
}

#[derive(Args)]
pub struct SendArgs {
    file: PathBuf,
    /// The MLLP listener, HOST:PORT.
    #[arg(long)]
    to: String,
    /// Seconds to wait for each ACK.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

#[derive(Args)]
pub struct ParseArgs {
    file: PathBuf,
    /// Print the parsed file as JSON instead of the tree.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: Hl7Command) -> Result<ExitCode> {
    match cmd {
        Hl7Command::Parse(a) => parse(&a.file, a.json),
        Hl7Command::Send(a) => send(&a),
        Hl7Command::Reprocess(a) => reprocess(a),
        Hl7Command::Retry(a) => retry(a),
        Hl7Command::List(a) => list(a),
    }
}

fn read_maybe_gz(file: &std::path::Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    if file.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&raw[..]), &mut out)
            .with_context(|| format!("{}: not gzip", file.display()))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn send(a: &SendArgs) -> Result<ExitCode> {
    use std::io::{Read, Write};
    use wardline_hl7::mllp::{FrameDecoder, encode_frame};
    let bytes = read_maybe_gz(&a.file)?;
    let file = match wardline_hl7::parse_file_bytes(&bytes) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {}: {e}", a.file.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut stream = std::net::TcpStream::connect(&a.to)
        .with_context(|| format!("cannot connect to {}", a.to))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(a.timeout)))?;
    let mut decoder = FrameDecoder::new(16 << 20);
    let mut all_ok = true;
    let mut buf = vec![0u8; 64 * 1024];
    for m in file.messages() {
        let id = m.control_id().unwrap_or_default().into_owned();
        stream.write_all(&encode_frame(m.encode().as_bytes()))?;
        let frame = loop {
            if let Some(f) = decoder.next_frame() {
                break f;
            }
            let n = stream
                .read(&mut buf)
                .with_context(|| format!("no ACK for {id} from {}", a.to))?;
            anyhow::ensure!(
                n > 0,
                "{} closed the connection before acknowledging {id}",
                a.to
            );
            decoder
                .push(&buf[..n])
                .map_err(|e| anyhow::anyhow!("{}: {e}", a.to))?;
        };
        let text = String::from_utf8_lossy(&frame);
        let ack = wardline_hl7::Message::parse(&text)
            .map_err(|e| anyhow::anyhow!("the ACK for {id} is not HL7: {e}"))?;
        let code = ack.text("MSA-1").ok().flatten().unwrap_or_default();
        let about = ack.text("MSA-2").ok().flatten().unwrap_or_default();
        let why = ack
            .text("ERR-8")
            .ok()
            .flatten()
            .or_else(|| ack.text("MSA-3").ok().flatten())
            .unwrap_or_default();
        println!("{id}\t{code}\t{why}");
        if about != id {
            eprintln!("warning: the ACK for {id} names {about}");
        }
        all_ok &= matches!(code.as_ref(), "AA" | "CA");
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn parse(file: &std::path::Path, json: bool) -> Result<ExitCode> {
    let bytes = read_maybe_gz(file)?;
    let f = match wardline_hl7::parse_file_bytes(&bytes) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut out = String::new();
    let mut cut = Vec::new();
    let mut n = 0;
    for part in &f.parts {
        match part {
            wardline_hl7::FilePart::Envelope(s) => {
                out.push_str(&format!("{} (line {}): {}\n", s.id(), s.line(), s.raw()));
            }
            wardline_hl7::FilePart::Message(m) => {
                n += 1;
                if let Some((field, name, last)) = m.header_gap() {
                    cut.push(format!(
                        "{}: message {n} (line {}): the header ends at MSH-{last}, without \
                         MSH-{field} ({name}): the message is cut off or is not HL7 v2",
                        file.display(),
                        m.header().line()
                    ));
                }
                out.push_str(&format!("\nMessage {n}\n{}", m.tree()));
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&f.to_json())?);
    } else {
        print!("{}", out.trim_start());
    }
    for c in &cut {
        eprintln!("error: {c}");
    }
    Ok(if cut.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn open_service(store: &crate::StoreArgs) -> Result<wardline_core::FhirService> {
    store.existing_service(wardline_core::ServiceConfig::default())
}

fn reprocess(a: ReprocessArgs) -> Result<ExitCode> {
    let svc = a.engine.service(open_service(&a.store)?)?;
    let engine = wardline_integration::Engine::new(std::sync::Arc::new(svc), a.engine.engine());
    let corrected = match &a.with {
        Some(f) => Some(read_maybe_gz(f)?),
        None => None,
    };
    match engine.reprocess(&a.id, corrected.as_deref()) {
        Ok(r) => {
            let ack = wardline_hl7::Message::parse(&r.ack).ok();
            let why = ack
                .as_ref()
                .and_then(|m| {
                    m.text("ERR-8")
                        .ok()
                        .flatten()
                        .or_else(|| m.text("MSA-3").ok().flatten())
                })
                .map(|c| c.into_owned())
                .unwrap_or_default();
            println!("{}\t{}\t{why}", a.id, r.code.as_str());
            Ok(if r.code == wardline_hl7::AckCode::AA {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn retry(a: RetryArgs) -> Result<ExitCode> {
    let svc = open_service(&a.store)?;
    match wardline_integration::outbox::retry(&svc, &a.id) {
        Ok(()) => {
            println!("Communication/{} queued again", a.id);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn list(a: ListArgs) -> Result<ExitCode> {
    use wardline_integration::message_store::{
        DIRECTION_SYSTEM, EVENT_SYSTEM, MESSAGE_TYPE_SYSTEM,
    };
    let svc = open_service(&a.store)?;
    let mut q = form_urlencoded::Serializer::new(String::new());
    match &a.direction {
        Some(d) => q.append_pair("category", &format!("{DIRECTION_SYSTEM}|{d}")),
        None => q.append_pair(
            "category",
            &format!("{DIRECTION_SYSTEM}|inbound,{DIRECTION_SYSTEM}|outbound"),
        ),
    };
    if let Some(s) = &a.status {
        q.append_pair("status", s);
    }
    q.append_pair("_sort", "-_lastUpdated");
    q.append_pair("_count", &a.count.to_string());
    let found = svc
        .transact(&wardline_core::Trusted::operator("hl7-cli"), |tx| {
            tx.find("Communication", &q.finish())
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let code = |r: &serde_json::Value, system: &str| -> String {
        r["category"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["coding"].get(0))
            .find(|c| c["system"] == system)
            .and_then(|c| c["code"].as_str())
            .unwrap_or("")
            .to_owned()
    };
    println!("id\tdirection\tstatus\ttype\tcontrol-id\treason");
    for r in &found {
        println!(
            "{}\t{}\t{}\t{}^{}\t{}\t{}",
            r["id"].as_str().unwrap_or(""),
            code(r, DIRECTION_SYSTEM),
            r["status"].as_str().unwrap_or(""),
            code(r, MESSAGE_TYPE_SYSTEM),
            code(r, EVENT_SYSTEM),
            r["identifier"][0]["value"].as_str().unwrap_or(""),
            r["statusReason"]["text"].as_str().unwrap_or(""),
        );
    }
    Ok(ExitCode::SUCCESS)
}
