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
}

#[derive(Args)]
pub struct ParseArgs {
    file: PathBuf,
}

pub fn run(cmd: Hl7Command) -> Result<ExitCode> {
    match cmd {
        Hl7Command::Parse(a) => parse(&a.file),
    }
}

fn parse(file: &std::path::Path) -> Result<ExitCode> {
    let raw = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let bytes = if file.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&raw[..]), &mut out)
            .with_context(|| format!("{}: not gzip", file.display()))?;
        out
    } else {
        raw
    };
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
