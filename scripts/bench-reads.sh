#!/usr/bin/env bash
# Reads by id with the audit trail on, measured from outside the server
# (issue 21), run on demand (never in CI): builds a release `wardline`, loads
# the Synthea bundles into a fresh SQLite store, starts `wardline serve` on
# 127.0.0.1 with a backend client's token, and runs `wrk` over
# `GET /Patient/{id}` and `GET /Observation/{id}` (ids cycled). Every read is
# audited: its AuditEvent is durable before the response is sent.
#
#   scripts/bench-reads.sh [SECONDS] [CONNECTIONS]   (default 20 s, 64)
#
# Needs `wrk` (Debian: `apt-get install -y wrk`) and `curl`. WARDLINE_BIN runs
# an already built binary instead of building (to compare two builds);
# WARDLINE_TESTDATA (default ../shared/testdata) holds synthea-r4/bundles;
# BENCH_PORT (default 18431). Prints the data directory's size before and
# after (the audit rows the run wrote), requests/s and the p99 latency.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-20}"
CONNS="${2:-64}"
PORT="${BENCH_PORT:-18431}"
DATA="${WARDLINE_TESTDATA:-../shared/testdata}/synthea-r4/bundles"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 2; }
if [ -n "${WARDLINE_BIN:-}" ]; then
    W="$WARDLINE_BIN"
else
    cargo build --release -q -p wardline
    W="${CARGO_TARGET_DIR:-$PWD/target}/release/wardline"
fi
DIR="$(mktemp -d)"
SERVER=""
cleanup() {
    if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
    rm -rf "$DIR"
}
trap cleanup EXIT
export RUST_LOG=warn WARDLINE_DATA_DIR="$DIR/data"
echo "== machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $(uname -r); $(date -u '+%F %H:%M UTC')"
"$W" import "$DATA" --report "$DIR/import.txt" >/dev/null 2>&1
"$W" client add bench-reads --name "bench-reads" --scope 'system/*.rs' >/dev/null
TOKEN="$("$W" token --client bench-reads --scope 'system/*.rs' --minutes 120 | tr -d '\n')"
"$W" serve --listen "127.0.0.1:$PORT" >"$DIR/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
    sleep 0.2
done
curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null || { cat "$DIR/server.log" >&2; exit 1; }
B="http://127.0.0.1:$PORT/fhir"
ids() {
    curl -sf -H "Authorization: Bearer $TOKEN" "$B/$1?_count=100&_elements=id" |
        grep -o '"fullUrl":"[^"]*"' | sed 's/.*\/\([A-Za-z]*\/[^"]*\)"$/\1/'
}
{ ids Patient; ids Observation; } >"$DIR/paths.txt"
N=$(wc -l <"$DIR/paths.txt")
[ "$N" -gt 0 ] || { echo "no ids found" >&2; exit 1; }
# One path per line, read by every wrk thread; requests cycle through them.
cat >"$DIR/reads.lua" <<EOF
local paths = {}
for line in io.lines("$DIR/paths.txt") do paths[#paths + 1] = "/fhir/" .. line end
local i = 0
wrk.headers["Authorization"] = "Bearer $TOKEN"
wrk.headers["Accept"] = "application/fhir+json"
request = function()
    i = i % #paths + 1
    return wrk.format("GET", paths[i])
end
EOF
before=$(du -sb "$DIR/data" | cut -f1)
wrk -t1 -c1 -d3s -s "$DIR/reads.lua" "http://127.0.0.1:$PORT" >/dev/null # warm-up
wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s "$DIR/reads.lua" "http://127.0.0.1:$PORT" | tee "$DIR/wrk.txt"
after=$(du -sb "$DIR/data" | cut -f1)
non2xx=$(grep -o 'Non-2xx or 3xx responses: [0-9]*' "$DIR/wrk.txt" || true)
echo "== $N distinct resources; data directory ${before} -> ${after} bytes${non2xx:+; $non2xx}"
echo "== reads by id, audit on, $CONNS connections, ${SECS} s: $(awk '/Requests\/sec/{print $2}' "$DIR/wrk.txt") req/s, p99 $(awk '$1=="99%"{print $2}' "$DIR/wrk.txt")"
