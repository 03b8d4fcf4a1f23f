//! Counters of the integration engine for Prometheus `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

use wardline_hl7::AckCode;

use crate::engine::Receipt;

#[derive(Default)]
pub struct Metrics {
    /// Inbound messages by ACK code: AA, AE, AR.
    acks: [AtomicU64; 3],
    duplicates: AtomicU64,
    /// Outbound messages acknowledged AA, failed attempts, dead-lettered.
    pub(crate) sent: AtomicU64,
    pub(crate) send_failures: AtomicU64,
    pub(crate) dead_letters: AtomicU64,
}

pub static METRICS: Metrics = Metrics {
    acks: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
    duplicates: AtomicU64::new(0),
    sent: AtomicU64::new(0),
    send_failures: AtomicU64::new(0),
    dead_letters: AtomicU64::new(0),
};

impl Metrics {
    pub fn count(&self, r: &Receipt) {
        let i = match r.code {
            AckCode::AA | AckCode::CA => 0,
            AckCode::AE | AckCode::CE => 1,
            AckCode::AR | AckCode::CR => 2,
        };
        self.acks[i].fetch_add(1, Ordering::Relaxed);
        if r.duplicate {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Prometheus text exposition of the counters.
    pub fn render(&self) -> String {
        let mut s = String::new();
        s.push_str("# HELP wardline_hl7_inbound_total Inbound HL7 v2 messages by the ACK sent.\n");
        s.push_str("# TYPE wardline_hl7_inbound_total counter\n");
        for (i, code) in ["AA", "AE", "AR"].iter().enumerate() {
            s.push_str(&format!(
                "wardline_hl7_inbound_total{{ack=\"{code}\"}} {}\n",
                self.acks[i].load(Ordering::Relaxed)
            ));
        }
        for (name, help, v) in [
            (
                "wardline_hl7_inbound_duplicates_total",
                "Inbound messages received again (acknowledged, not applied).",
                &self.duplicates,
            ),
            (
                "wardline_hl7_outbound_sent_total",
                "Outbound messages acknowledged AA by their destination.",
                &self.sent,
            ),
            (
                "wardline_hl7_outbound_failures_total",
                "Failed outbound delivery attempts (retried).",
                &self.send_failures,
            ),
            (
                "wardline_hl7_outbound_dead_letters_total",
                "Outbound messages moved to the dead-letter state.",
                &self.dead_letters,
            ),
        ] {
            s.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
        s
    }
}
