//! End-to-end tests of the `wardline` binary: each starts the real server (or
//! runs the CLI) and drives it from outside, over HTTP, MLLP or the command line.
//!
//! One test binary, one module per area. Linking the whole stack once instead of
//! once per file keeps the build small enough for CI's disk and quicker to link.

mod common;

mod access;
mod access_after_discharge;
mod audit_tamper;
mod care_act;
mod catalogue;
mod chart;
mod chemo;
mod cli;
mod crash;
mod cumulative;
mod discharge;
mod duplicate_queue;
mod duplicate_scan;
mod errors;
mod examples;
mod export;
mod formulary;
mod graph;
mod hl7;
// issue 23: wardline import
mod import;
mod input;
mod lab;
mod letters;
mod local_time;
mod mar;
mod merge;
mod notes;
mod orders;
mod orders_hl7;
// issue 19: outpatient clinics
mod outpatients;
mod pharmacy;
mod pharmacy_hl7;
mod pmi;
mod prescribe;
// issue 18: referrals
mod referrals;
mod results;
// issue 19: referrals in, triage, waiting lists, RTT (helper rtt)
mod rtt;
mod search;
mod synthea;
// issue 19: theatres
mod theatres;
mod transfers;
mod transfers_chain;
mod ui;
mod uk_core;
// issue 20: news2
mod observations;
// end of issue 20: news2
// issue 20: ed
mod ed;
// end of issue 20: ed
// issue 20: alerts
mod alerts;
// end of issue 20: alerts
// issue 20: tasks
mod tasks;
// end of issue 20: tasks
// issue 20: forms
mod forms;
// end of issue 20: forms
// issue 21: bounded work
mod bounded;
// end of issue 21: bounded work
// issue 21: timeouts
mod timeouts;
// end of issue 21: timeouts
// issue 21: group commit
mod group_commit;
// end of issue 21: group commit
// issue 22: audit anchor
mod audit_anchor;
// end of issue 22: audit anchor
// issue 22: backup
mod backup;
// end of issue 22: backup
// issue 20: clock
// end of issue 20: clock
// issue 22: outages
mod outage;
// end of issue 22: outages
// issue 21: write path
mod write_path;
// end of issue 21: write path
// issue 22: downtime
mod downtime;
// end of issue 22: downtime
// issue 22: postgres ops
mod pg_ops;
// end of issue 22: postgres ops
// issue 22: at rest
mod at_rest;
// end of issue 22: at rest
// issue 22: crash harness
mod crash_cycles;
// end of issue 22: crash harness
