//! `wardline formulary …`: the medicines formulary.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use wardline_core::{ServiceConfig, Trusted};
use wardline_workflow::medicines::formulary::{self, ImportError};

#[derive(Subcommand)]
pub enum FormularyCommand {
    /// Import a formulary file (CSV, one row per VMP; the format is
    /// docs/formulary-format.md). The whole file is checked first: any
    /// wrong line refuses it (each problem printed as FILE line N: column:
    /// what) and nothing is written. Otherwise each row becomes
    /// Medication/med-{vmp_code}, and medicines no longer in the file are
    /// withdrawn (marked inactive, never deleted). Prints what was added,
    /// changed and withdrawn.
    Import(ImportArgs),
}

#[derive(Args)]
pub struct ImportArgs {
    /// The formulary file (CSV).
    file: PathBuf,
    #[command(flatten)]
    store: crate::StoreArgs,
}

pub fn run(cmd: FormularyCommand) -> Result<ExitCode> {
    match cmd {
        FormularyCommand::Import(a) => {
            let text = std::fs::read(&a.file)
                .with_context(|| format!("cannot read {}", a.file.display()))?;
            let name = a.file.display().to_string();
            let Ok(text) = String::from_utf8(text) else {
                eprintln!("{name}: the file is not UTF-8 text");
                return Ok(ExitCode::FAILURE);
            };
            let svc = a.store.service(ServiceConfig::default())?;
            match formulary::import(&svc, &Trusted::operator("formulary-import"), &text, &name) {
                Ok(report) => {
                    for l in report.lines() {
                        println!("{l}");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(ImportError::File(problems)) => {
                    for p in &problems {
                        eprintln!("{p}");
                    }
                    eprintln!("{name}: not imported (nothing was changed)");
                    Ok(ExitCode::FAILURE)
                }
                Err(e) => Err(anyhow::anyhow!("{name}: not imported: {e}")),
            }
        }
    }
}
