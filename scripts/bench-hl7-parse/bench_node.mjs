// Parse throughput of @medplum/core's HL7 v2 parser (Hl7Message.parse) on
// Wardline's ADT^A01 fixture, for scripts/bench-hl7-parse.sh (see
// BENCHMARKS.md, issue 4).
//
//     node bench_node.mjs FIXTURE [--rounds N] [--round-ms MS]
//
// Prints one tab-separated line per measurement: implementation, operation,
// median messages/s, slowest round, fastest round. Each operation is checked
// once against the expected values, then calibrated, warmed up (which also
// lets V8 optimise it) and timed in several rounds; the median is reported.
//
// Hl7Message.parse splits eagerly into segments, fields, repetitions and
// components (no validation, no group structure). Fields are read with
// getSegment(name).getField(n).toString() / .getComponent(c, sub, rep);
// encode is toString().

import { readFileSync } from 'node:fs';
import { Hl7Message } from '@medplum/core';

const EXPECTED = [
  '9434765919',
  'Bloggs',
  '19620314',
  'RAL7W',
  'V2026112300417^^^RFH^VN',
  'ADT',
  'PAS20261123091502000417',
  '20261123091500',
  'Belsize Medical Practice^^F83004',
  'Okafor',
];

function parseOnly(text) {
  return Hl7Message.parse(text);
}

function parseAndRead(text) {
  const m = Hl7Message.parse(text);
  const msh = m.header;
  const pid = m.getSegment('PID');
  const pv1 = m.getSegment('PV1');
  return [
    pid.getComponent(3, 1, undefined, 0), // PID-3[1].1 NHS number
    pid.getComponent(5, 1), // PID-5.1
    pid.getField(7).toString(), // PID-7
    pv1.getComponent(3, 1), // PV1-3.1
    pv1.getField(19).toString(), // PV1-19
    msh.getComponent(9, 1), // MSH-9.1
    msh.getField(10).toString(), // MSH-10
    m.getSegment('EVN').getField(2).toString(), // EVN-2
    m.getSegment('PD1').getField(3).toString(), // PD1-3
    pv1.getComponent(7, 2), // PV1-7.2
  ];
}

function roundTrip(text) {
  return Hl7Message.parse(text).toString();
}

let sink = 0;

function measure(op, text, rounds, roundMs) {
  const run = (n) => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      const r = op(text);
      sink += r.length === undefined ? 1 : r.length;
    }
    return Number(process.hrtime.bigint() - t0) / 1e6;
  };
  let iters = 64;
  for (;;) {
    const took = run(iters);
    if (took >= roundMs / 4) {
      iters = Math.max(1, Math.floor((iters * roundMs) / took));
      break;
    }
    iters *= 4;
  }
  run(iters); // warm-up round
  const rates = [];
  for (let r = 0; r < rounds; r++) {
    rates.push((iters * 1000) / run(iters));
  }
  rates.sort((a, b) => a - b);
  return [rates[Math.floor(rates.length / 2)], rates[0], rates[rates.length - 1]];
}

const args = process.argv.slice(2);
const fixture = args[0];
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const rounds = opt('--rounds', 7);
const roundMs = opt('--round-ms', 300);
const text = readFileSync(fixture, 'utf8');

const got = parseAndRead(text);
if (JSON.stringify(got) !== JSON.stringify(EXPECTED)) {
  throw new Error(`unexpected field values: ${JSON.stringify(got)}`);
}
if (roundTrip(text) !== text) {
  throw new Error('round trip is not byte for byte');
}

// The script runs from the install directory (see bench-hl7-parse.sh).
const medplumVersion = JSON.parse(
  readFileSync(new URL('./node_modules/@medplum/core/package.json', import.meta.url), 'utf8'),
).version;
const name = `@medplum/core ${medplumVersion} (npm), Node ${process.version}`;
for (const [opname, op] of [
  ['parse', parseOnly],
  ['parse + 10 fields', parseAndRead],
  ['parse + encode', roundTrip],
]) {
  const [med, lo, hi] = measure(op, text, rounds, roundMs);
  console.log(`${name}\t${opname}\t${med.toFixed(0)}\t${lo.toFixed(0)}\t${hi.toFixed(0)}`);
}
if (sink === 42) console.log('');
