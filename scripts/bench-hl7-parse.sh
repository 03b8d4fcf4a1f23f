#!/usr/bin/env bash
# Issue 4: parse throughput of Wardline's HL7 v2 parser against peer parsers,
# measured side by side in one run, on demand (never in the test suite).
#
#   scripts/bench-hl7-parse.sh
#
# Same fixture (crates/wardline-hl7/benches/data/adt_a01_1k.hl7) and the same
# three operations for every implementation: parse; parse + read 10 fields;
# parse + encode. Peers: PyPI hl7 and hl7apy (scripts/bench-hl7-parse/
# requirements.txt) and npm @medplum/core (package.json), installed into
# $CARGO_TARGET_DIR/bench-hl7-parse (the workspace target dir when unset),
# never into the source tree. Every benchmark runs pinned to one core
# (BENCH_CORE, default 1), one after another; then one comparison table.
# BENCH_ROUNDS / BENCH_ROUND_MS tune the rounds (defaults 9 x 200 ms for Rust,
# 7 x 300 ms for the peers). Takes about 1-2 minutes after the first install.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
HERE="$ROOT/scripts/bench-hl7-parse"
FIXTURE="$ROOT/crates/wardline-hl7/benches/data/adt_a01_1k.hl7"
CORE="${BENCH_CORE:-1}"

log() { printf '==> %s\n' "$*" >&2; }

if [ -n "${CARGO_TARGET_DIR:-}" ]; then
    TARGET_DIR="$CARGO_TARGET_DIR"
else
    TARGET_DIR="$(cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null ||
        echo "$ROOT/target")"
fi
CACHE="$TARGET_DIR/bench-hl7-parse"
mkdir -p "$CACHE"

# --- Peers: Python venv and node_modules under the target dir ------------------
VENV="$CACHE/venv"
REQ_HASH="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements-sha256" 2>/dev/null)" != "$REQ_HASH" ]; then
    log "installing PyPI peers into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
    echo "$REQ_HASH" >"$VENV/.requirements-sha256"
fi

NODE_DIR="$CACHE/node"
PKG_HASH="$(cat "$HERE/package.json" "$HERE/package-lock.json" | sha256sum | cut -d' ' -f1)"
mkdir -p "$NODE_DIR"
if [ ! -d "$NODE_DIR/node_modules" ] || [ "$(cat "$NODE_DIR/.package-sha256" 2>/dev/null)" != "$PKG_HASH" ]; then
    log "installing npm peer into $NODE_DIR"
    cp "$HERE/package.json" "$HERE/package-lock.json" "$NODE_DIR/"
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error) >&2
    echo "$PKG_HASH" >"$NODE_DIR/.package-sha256"
fi
# Run from the install dir so that '@medplum/core' resolves there.
cp "$HERE/bench_node.mjs" "$NODE_DIR/"

# --- Rust bench, release ---------------------------------------------------------
log "building the Rust bench (release)"
BENCH_BIN="$(cargo bench -p wardline-hl7 --bench parse --no-run --message-format=json |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "parse":
        print(m["executable"])')"
[ -x "$BENCH_BIN" ] || { echo "bench binary not found" >&2; exit 1; }

# --- Run, one after another, on one core -------------------------------------------
PIN=()
if command -v taskset >/dev/null 2>&1; then
    PIN=(taskset -c "$CORE")
else
    log "taskset not found: running unpinned"
fi
RESULTS="$CACHE/results.tsv"
: >"$RESULTS"
log "load before: $(uptime | sed 's/.*load average/load average/')"
log "wardline-hl7 (Rust, release)"
HL7_BENCH_ROUNDS="${BENCH_ROUNDS:-9}" HL7_BENCH_ROUND_MS="${BENCH_ROUND_MS:-200}" \
    "${PIN[@]}" "$BENCH_BIN" --tsv | tee -a "$RESULTS" >&2
log "PyPI hl7, hl7apy"
"${PIN[@]}" "$VENV/bin/python" "$HERE/bench_python.py" "$FIXTURE" \
    --rounds "${BENCH_ROUNDS:-7}" --round-ms "${BENCH_ROUND_MS:-300}" | tee -a "$RESULTS" >&2
log "npm @medplum/core"
"${PIN[@]}" node "$NODE_DIR/bench_node.mjs" "$FIXTURE" \
    --rounds "${BENCH_ROUNDS:-7}" --round-ms "${BENCH_ROUND_MS:-300}" | tee -a "$RESULTS" >&2
log "load after: $(uptime | sed 's/.*load average/load average/')"

# --- One table ----------------------------------------------------------------------
python3 - "$RESULTS" "$(wc -c <"$FIXTURE")" "$CORE" <<'PY'
import sys
path, size, core = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = [line.rstrip("\n").split("\t") for line in open(path) if line.strip()]
base = {}
for impl, op, med, lo, hi in rows:
    if impl == "wardline-hl7":
        base[op] = float(med)
def base_for(op):
    # "parse + encode (drops final CR)" compares with "parse + encode".
    return base.get(op.split(" (")[0])
print(f"\nfixture: {size} bytes ADT^A01; one core (taskset -c {core}); median of rounds\n")
print("| implementation | operation | messages/s | MB/s | spread of rounds (min–max) | relative to Wardline |")
print("|---|---|---:|---:|---:|---:|")
for impl, op, med, lo, hi in rows:
    med, lo, hi = float(med), float(lo), float(hi)
    b = base_for(op)
    if impl == "wardline-hl7":
        rel = "1 (baseline)"
    elif b:
        rel = f"1/{b / med:,.0f}"
    else:
        rel = "—"
    print(f"| {impl} | {op} | {med:,.0f} | {med * size / 1e6:.2f} | {lo:,.0f}–{hi:,.0f} | {rel} |")
PY
