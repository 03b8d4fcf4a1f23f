//! `wardline-bench`: Wardline's benchmarks, run on demand (never in the test
//! suite) and kept out of the shipped `wardline` binary.
//!
//! `wardline-bench ingest|read|search|chart|everything|export|explain|mllp|
//! workspace|matching|results|checks|mar|discharge|mesh|ptl|clinic|theatre|news2` (see `--help` of each, and `BENCHMARKS.md` for the figures).
//! It is tooling that composes the system as the `wardline` binary does:
//! it opens the store (SQLite under `--data-dir`, or `--database`), builds a
//! `FhirService`, and starts the HTTP server, the MLLP listener or the
//! workspace in-process. What is not being measured — counting the
//! patients loaded, picking ids to request — reads through the core's
//! unaudited `system_reader`; only `explain` (the database's query plans)
//! needs the store itself (`FhirService::store()`), which no product code
//! above the core calls. What it measures goes through the same paths as
//! production (`handle`, HTTP with a real token and the access policy, the
//! export engine of `wardline-export`, the workflows).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod bench;
mod checks;
mod discharge;
// issue 21: bounded work
mod extract;
mod mar;
mod matching;
mod mesh;
mod mllp;
mod ptl;
// issue 19: outpatient clinics
mod clinic;
// issue 19: theatres
mod results;
mod theatre;
mod workspace;
// issue 20: news2
mod news2;
// end of issue 20: news2
// issue 20: ed
mod ed;
// end of issue 20: ed
// issue 20: alerts
// end of issue 20: alerts
// issue 20: tasks
// end of issue 20: tasks
// issue 20: forms
// end of issue 20: forms

use clap::Parser;
use wardline::{StoreArgs, load};

// As in the `wardline` binary, so the figures are those of the server.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "wardline-bench",
    version,
    about = "Wardline's benchmarks: run one and print its figures"
)]
struct Cli {
    #[command(subcommand)]
    command: bench::BenchCommand,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match bench::run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
