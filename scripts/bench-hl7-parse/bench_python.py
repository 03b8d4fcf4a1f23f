"""Parse throughput of the PyPI HL7 v2 parsers `hl7` and `hl7apy` on Wardline's
ADT^A01 fixture, for scripts/bench-hl7-parse.sh (see BENCHMARKS.md, issue 4).

    python bench_python.py FIXTURE [--rounds N] [--round-ms MS]

Prints one tab-separated line per measurement:
implementation, operation, median messages/s, slowest round, fastest round.
Each operation is checked once against the expected values, then calibrated,
warmed up and timed in several rounds; the median round is reported.

Options used, for fairness with a parser that neither validates nor builds a
message structure tree:
* hl7: `hl7.parse(text)` (eager split into segments, fields, repetitions,
  components); fields read by index (`msg.segment("PID")[3][0][0]`);
  encode with `str(msg)`.
* hl7apy: `parse_message(text, validation_level=VALIDATION_LEVEL.TOLERANT,
  find_groups=False)` (no validation, no group structure); fields read by name
  (`msg.pid.pid_3[0].cx_1.value`); encode with `msg.to_er7()`.
"""

import argparse
import gc
import statistics
import sys
import time
from importlib.metadata import version

import hl7
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

EXPECTED = [
    "9434765919",
    "Bloggs",
    "19620314",
    "RAL7W",
    "V2026112300417^^^RFH^VN",
    "ADT",
    "PAS20261123091502000417",
    "20261123091500",
    "Belsize Medical Practice^^F83004",
    "Okafor",
]


# ---- hl7 -------------------------------------------------------------------

def hl7_parse(text):
    return hl7.parse(text)


def hl7_fields(text):
    m = hl7.parse(text)
    msh = m.segment("MSH")
    pid = m.segment("PID")
    pv1 = m.segment("PV1")
    return [
        str(pid[3][0][0]),  # PID-3[1].1 NHS number
        str(pid[5][0][0]),  # PID-5.1
        str(pid[7]),  # PID-7
        str(pv1[3][0][0]),  # PV1-3.1
        str(pv1[19]),  # PV1-19
        str(msh[9][0][0]),  # MSH-9.1
        str(msh[10]),  # MSH-10
        str(m.segment("EVN")[2]),  # EVN-2
        str(m.segment("PD1")[3]),  # PD1-3
        str(pv1[7][0][1]),  # PV1-7.2
    ]


def hl7_encode(text):
    return str(hl7.parse(text))


# ---- hl7apy ----------------------------------------------------------------

def hl7apy_parse_message(text):
    return parse_message(
        text, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=False
    )


def hl7apy_fields(text):
    m = hl7apy_parse_message(text)
    pid = m.pid
    pv1 = m.pv1
    return [
        pid.pid_3[0].cx_1.value,
        pid.pid_5[0].xpn_1.value,
        pid.pid_7.value,
        pv1.pv1_3.pl_1.value,
        pv1.pv1_19.to_er7(),
        m.msh.msh_9.msg_1.value,
        m.msh.msh_10.value,
        m.evn.evn_2.value,
        m.pd1.pd1_3.to_er7(),
        pv1.pv1_7.xcn_2.value,
    ]


def hl7apy_encode(text):
    return hl7apy_parse_message(text).to_er7()


# ---- harness ---------------------------------------------------------------

def measure(op, text, rounds, round_s):
    iters = 4
    while True:
        t0 = time.perf_counter()
        for _ in range(iters):
            op(text)
        took = time.perf_counter() - t0
        if took >= round_s / 4:
            iters = max(1, int(iters * round_s / took))
            break
        iters *= 4
    for _ in range(iters):  # warm-up round
        op(text)
    rates = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(iters):
            op(text)
        rates.append(iters / (time.perf_counter() - t0))
    gc.collect()
    return statistics.median(rates), min(rates), max(rates)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("fixture")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--round-ms", type=int, default=300)
    args = ap.parse_args()
    with open(args.fixture, newline="") as f:
        text = f.read()

    # Correctness first: same values as the Rust bench reads.
    assert hl7_fields(text) == EXPECTED, hl7_fields(text)
    assert hl7apy_fields(text) == EXPECTED, hl7apy_fields(text)
    assert hl7_encode(text) == text
    # hl7apy drops the final segment terminator: not byte for byte.
    hl7apy_exact = hl7apy_encode(text) == text
    assert hl7apy_encode(text) == text.rstrip("\r")

    impls = [
        (f"hl7 {version('hl7')} (PyPI)", hl7_parse, hl7_fields, hl7_encode, ""),
        (
            f"hl7apy {version('hl7apy')} (PyPI)",
            hl7apy_parse_message,
            hl7apy_fields,
            hl7apy_encode,
            "" if hl7apy_exact else " (drops final CR)",
        ),
    ]
    py = f"CPython {sys.version.split()[0]}"
    for name, parse, fields, encode, enc_note in impls:
        for opname, op in (
            ("parse", parse),
            ("parse + 10 fields", fields),
            ("parse + encode" + enc_note, encode),
        ):
            med, lo, hi = measure(op, text, args.rounds, args.round_ms / 1000)
            print(f"{name}, {py}\t{opname}\t{med:.0f}\t{lo:.0f}\t{hi:.0f}", flush=True)


if __name__ == "__main__":
    main()
