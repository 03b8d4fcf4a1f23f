//! `wardline hl7 …`: operator commands for HL7 v2 messages.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum Hl7Command {
    /// Parse an HL7 v2 file (one message, several, or a FHS/BHS batch; .gz
    /// accepted) and print it as JSON: segments → fields → repetitions →
    /// components, unescaped. Exit 1 with the line and field on bad input.
    Parse(ParseArgs),
    /// Send the messages of an HL7 v2 file over MLLP, one at a time, waiting
    /// for each ACK; prints one line per message (control id, ACK code,
    /// text). Exit 1 if any message is not acknowledged AA/CA.
    Send(SendArgs),
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
}

pub fn run(cmd: Hl7Command) -> Result<ExitCode> {
    match cmd {
        Hl7Command::Parse(a) => parse(&a.file),
        Hl7Command::Send(a) => send(&a),
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

fn parse(file: &std::path::Path) -> Result<ExitCode> {
    let bytes = read_maybe_gz(file)?;
    match wardline_hl7::parse_file_bytes(&bytes) {
        Ok(f) => {
            println!("{}", serde_json::to_string_pretty(&f.to_json())?);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            Ok(ExitCode::FAILURE)
        }
    }
}
