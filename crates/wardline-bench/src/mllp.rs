//! `wardline-bench mllp`: durable HL7 v2 ingest over MLLP.
//!
//! A fresh store (SQLite in a temp dir, or `--database`), the engine and the
//! MLLP listener in this process on 127.0.0.1, and `--connections` client
//! threads each sending ADT^A01 admissions of distinct patients to distinct
//! beds (about 1 KB each, UK-shaped: NHS number, hospital number, GP
//! practice, ward/bay/bed, consultant) and waiting for each reply. The
//! messages carry MSH-15 `AL`, MSH-16 `NE` (enhanced mode, as many PAS feeds
//! send them), so the one reply is the commit ACK, checked to be `CA` (an
//! original-mode `AA` is accepted too). Reports messages/s and ACK latency.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use wardline_core::ServiceConfig;
use wardline_hl7::mllp::{FrameDecoder, encode_frame};

#[derive(Args)]
pub struct MllpBenchArgs {
    /// A postgres://… URL to benchmark PostgreSQL (an empty database).
    #[arg(long)]
    database: Option<String>,
    /// Concurrent MLLP connections.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Total messages.
    #[arg(long, default_value_t = 4_000)]
    messages: usize,
    /// Issue 21: group commit (SQLite) on or off, to compare in one binary.
    #[arg(long, default_value = "on", value_parser = wardline::parse_on_off, action = clap::ArgAction::Set)]
    group_commit: bool,
}

/// A ~1 KB UK ADT^A01 for patient `i`.
pub fn a01(i: usize) -> String {
    let nhs = wardline_demo::population::nhs_number(i);
    let ward = ["WARD7", "WARD9", "AMU", "CCU"][i % 4];
    format!(
        "MSH|^~\\&|PAS|RWG|WARDLINE|RWG|20261123091500||ADT^A01^ADT_A01|B{i}|P|2.4|||AL|NE|GBR|UNICODE UTF-8\r\
         EVN|A01|20261123091500|||C{i:05}^CLERK^WARD\r\
         PID|1||{nhs}^^^NHS^NH~RWG{i:07}^^^RWG^MR||BENCHMARK^PATIENT^{i}^^MR||19{:02}0{}1{}|{}|||{} HIGH STREET^^WATFORD^HERTS^WD18 0HB^GBR^H||01923 217{:03}^PRN^PH|||M|||||||||||||||||\r\
         PD1|||THE SURGERY^^E82{:03}^^^^^^^E82{:03}|G8{:06}^GP^ALAN\r\
         NK1|1|BENCHMARK^PARTNER|SPO^Spouse|{} HIGH STREET^^WATFORD^^WD18 0HB|01923 217{:03}\r\
         PV1|1|I|{ward}^BAY{}^BED{}^RWG||||C{:07}^CONSULTANT^CARE^^^DR|||GEN||||19|||C{:07}^CONSULTANT^CARE^^^DR|IP|V{i}|||||||||||||||||||||||||20261123091500\r\
         PV2|||^Chest pain on exertion\r\
         OBX|1|NM|8302-2^Body height^LN||172|cm^centimetre^UCUM|||||F\r\
         OBX|2|NM|29463-7^Body weight^LN||81.5|kg^kilogram^UCUM|||||F\r\
         ZU1|1|Y|ELECTIVE LIST WL{i:06}|18 WEEK CLOCK RUNNING\r\
         AL1|1|DA|^PENICILLIN|SV|RASH\r\
         DG1|1||R07.4^Chest pain, unspecified^I10|||A\r",
        i % 90 + 10,
        i % 9 + 1,
        i % 9,
        if i.is_multiple_of(2) { "F" } else { "M" },
        i % 200 + 1,
        i % 1000,
        i % 1000,
        i % 1000,
        i % 1_000_000,
        i % 200 + 1,
        i % 1000,
        i % 6 + 1,
        i,
        1_000_000 + i % 50,
        1_000_000 + i % 50,
    )
}

pub fn run(a: MllpBenchArgs) -> Result<()> {
    let dir = tempfile::tempdir()?;
    wardline::set_group_commit(wardline_store::group_commit::GroupCommit {
        enabled: a.group_commit,
        ..Default::default()
    });
    let service = Arc::new(
        crate::StoreArgs {
            data_dir: dir.path().to_owned(),
            database: a.database.clone(),
            time_zone: None,
            db_key_file: None,
        }
        .service(ServiceConfig::default())?,
    );
    let backend = service.backend();
    let engine = Arc::new(wardline_integration::Engine::new(
        service,
        wardline_integration::EngineConfig::default(),
    ));
    let rt = tokio::runtime::Runtime::new()?;
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    rt.spawn(wardline_integration::serve(
        listener,
        engine,
        wardline_integration::ListenerConfig::default(),
    ));
    let conns = a.connections.max(1);
    let per = a.messages / conns;
    let size = a01(0).len();
    let start = Instant::now();
    let threads: Vec<_> = (0..conns)
        .map(|c| {
            std::thread::spawn(move || -> Result<Vec<Duration>> {
                let mut s = std::net::TcpStream::connect(addr)?;
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(Duration::from_secs(120)))?;
                let mut dec = FrameDecoder::new(1 << 20);
                let mut buf = [0u8; 4096];
                let mut lat = Vec::with_capacity(per);
                for k in 0..per {
                    let i = c * per + k;
                    let t = Instant::now();
                    s.write_all(&encode_frame(a01(i).as_bytes()))?;
                    let ack = loop {
                        if let Some(f) = dec.next_frame() {
                            break f;
                        }
                        let n = s.read(&mut buf)?;
                        anyhow::ensure!(n > 0, "connection closed");
                        let _ = dec.push(&buf[..n]);
                    };
                    lat.push(t.elapsed());
                    let text = String::from_utf8_lossy(&ack);
                    // The message asks for enhanced mode (MSH-15 AL, MSH-16 NE): the one
                    // reply is the commit ACK, sent after the commit.
                    anyhow::ensure!(
                        text.contains("MSA|CA|") || text.contains("MSA|AA|"),
                        "not accepted: {text}"
                    );
                }
                Ok(lat)
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in threads {
        all.extend(
            t.join()
                .map_err(|_| anyhow::anyhow!("client thread panicked"))??,
        );
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort();
    let pct =
        |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)].as_secs_f64() * 1000.0;
    println!(
        "mllp ingest [{backend}, {conns} connections, ADT^A01 of {size} bytes, ACK after commit]: {} messages in {secs:.2} s = {:.0} messages/s, ACK latency p50 {:.2} ms, p99 {:.2} ms",
        all.len(),
        all.len() as f64 / secs,
        pct(0.5),
        pct(0.99)
    );
    Ok(())
}
