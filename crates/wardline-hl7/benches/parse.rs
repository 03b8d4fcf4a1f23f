//! Parse throughput of one ~1 KB UK ADT^A01 v2.4 message (issue 4).
//!
//! Run on demand, never in the test suite:
//!
//! ```text
//! cargo bench -p wardline-hl7 --bench parse            # table
//! cargo bench -p wardline-hl7 --bench parse -- --tsv   # machine-readable
//! ```
//!
//! Single thread, no framework: each operation is warmed up, then timed in
//! several rounds of a fixed iteration count with `std::time::Instant`; the
//! median round is reported (with the fastest and slowest as a spread).
//! `HL7_BENCH_ROUNDS` (default 9) and `HL7_BENCH_ROUND_MS` (default 200) tune
//! the run. `HL7_BENCH_ITERS=N` instead runs every operation exactly N times
//! in one round, without calibration or warm-up: for instruction counts that
//! do not depend on the machine's load, e.g.
//! `HL7_BENCH_ITERS=10000 valgrind --tool=callgrind <bench binary> --tsv`. `scripts/bench-hl7-parse.sh` runs this next to peer parsers on the
//! same fixture and the same core.

use std::hint::black_box;
use std::time::{Duration, Instant};

use wardline_hl7::{Message, Path};

const FIXTURE: &str = include_str!("data/adt_a01_1k.hl7");

/// The ten fields an ADT consumer typically reads, with their values in the
/// fixture (checked once before timing).
const FIELDS: [(&str, &str); 10] = [
    ("PID-3[1].1", "9434765919"),
    ("PID-5.1", "Bloggs"),
    ("PID-7", "19620314"),
    ("PV1-3.1", "RAL7W"),
    ("PV1-19", "V2026112300417^^^RFH^VN"),
    ("MSH-9.1", "ADT"),
    ("MSH-10", "PAS20261123091502000417"),
    ("EVN-2", "20261123091500"),
    ("PD1-3", "Belsize Medical Practice^^F83004"),
    ("PV1-7.2", "Okafor"),
];

fn parse_only(input: &str) -> usize {
    let msg = Message::parse(black_box(input)).expect("fixture parses");
    msg.segments().len()
}

fn parse_and_read(input: &str) -> usize {
    let msg = Message::parse(black_box(input)).expect("fixture parses");
    let mut n = 0;
    for (path, _) in FIELDS {
        n += msg
            .get(black_box(path))
            .expect("valid path")
            .map_or(0, str::len);
    }
    n
}

fn parse_and_read_parsed_paths(input: &str, paths: &[Path]) -> usize {
    let msg = Message::parse(black_box(input)).expect("fixture parses");
    let mut n = 0;
    for p in paths {
        n += msg.get_path(black_box(p)).map_or(0, str::len);
    }
    n
}

fn round_trip(input: &str) -> usize {
    let msg = Message::parse(black_box(input)).expect("fixture parses");
    msg.encode().len()
}

struct Measured {
    name: &'static str,
    /// Messages per second of each round, sorted.
    rates: Vec<f64>,
}

impl Measured {
    fn median(&self) -> f64 {
        self.rates[self.rates.len() / 2]
    }
}

/// Times `op` over the fixture: calibrate an iteration count for one round
/// of about `round`, warm up, then `rounds` timed rounds.
fn measure(
    name: &'static str,
    rounds: usize,
    round: Duration,
    op: &dyn Fn(&str) -> usize,
) -> Measured {
    if let Some(n) = fixed_iters() {
        let t = Instant::now();
        for _ in 0..n {
            black_box(op(black_box(FIXTURE)));
        }
        let rate = n as f64 / t.elapsed().as_secs_f64();
        return Measured {
            name,
            rates: vec![rate],
        };
    }
    let mut iters: u64 = 64;
    loop {
        let t = Instant::now();
        for _ in 0..iters {
            black_box(op(black_box(FIXTURE)));
        }
        let took = t.elapsed();
        if took >= round / 4 {
            let per = took.as_secs_f64() / iters as f64;
            iters = ((round.as_secs_f64() / per) as u64).max(1);
            break;
        }
        iters *= 4;
    }
    // Warm-up: one more round, not recorded.
    for _ in 0..iters {
        black_box(op(black_box(FIXTURE)));
    }
    let mut rates: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                black_box(op(black_box(FIXTURE)));
            }
            iters as f64 / t.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    Measured { name, rates }
}

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

fn fixed_iters() -> Option<u64> {
    std::env::var("HL7_BENCH_ITERS").ok()?.parse().ok()
}

fn check_fixture(paths: &[Path]) {
    let msg = Message::parse(FIXTURE).expect("fixture parses");
    for ((path, want), p) in FIELDS.iter().zip(paths) {
        assert_eq!(msg.get(path).unwrap(), Some(*want), "{path}");
        assert_eq!(msg.get_path(p), Some(*want), "{path}");
    }
    assert_eq!(msg.encode(), FIXTURE, "round trip is byte for byte");
}

fn main() {
    // `cargo bench` passes `--bench`; the only option of ours is `--tsv`.
    let tsv = std::env::args().any(|a| a == "--tsv");
    let rounds = env_usize("HL7_BENCH_ROUNDS", 9);
    let round = Duration::from_millis(env_usize("HL7_BENCH_ROUND_MS", 200) as u64);
    let paths: Vec<Path> = FIELDS
        .iter()
        .map(|(p, _)| Path::parse(p).expect("valid path"))
        .collect();
    check_fixture(&paths);

    let results = [
        measure("parse", rounds, round, &parse_only),
        measure("parse + 10 fields", rounds, round, &parse_and_read),
        measure(
            "parse + 10 fields (pre-parsed paths)",
            rounds,
            round,
            &|s| parse_and_read_parsed_paths(s, &paths),
        ),
        measure("parse + encode", rounds, round, &round_trip),
    ];

    let bytes = FIXTURE.len() as f64;
    if tsv {
        for m in &results {
            println!(
                "wardline-hl7\t{}\t{:.0}\t{:.0}\t{:.0}",
                m.name,
                m.median(),
                m.rates[0],
                m.rates[m.rates.len() - 1]
            );
        }
        return;
    }
    println!(
        "wardline-hl7 parse throughput: {} bytes ADT^A01, single thread, median of {rounds} rounds of ~{} ms",
        FIXTURE.len(),
        round.as_millis()
    );
    println!();
    println!(
        "| {:<38} | {:>12} | {:>8} | {:>8} | {:>21} |",
        "operation", "messages/s", "MB/s", "µs/msg", "spread (min–max)"
    );
    println!(
        "|{:-<40}|{:->14}|{:->10}|{:->10}|{:->23}|",
        "", "", "", "", ""
    );
    for m in &results {
        let med = m.median();
        let spread = format!("{:.0}–{:.0}", m.rates[0], m.rates[m.rates.len() - 1]);
        println!(
            "| {:<38} | {:>12.0} | {:>8.1} | {:>8.3} | {:>21} |",
            m.name,
            med,
            med * bytes / 1e6,
            1e6 / med,
            spread
        );
    }
}
