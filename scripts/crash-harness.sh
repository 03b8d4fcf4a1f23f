#!/usr/bin/env bash
# The crash harness (issue 22), on demand: CRASH_CYCLES (default 100) `kill -9`
# cycles during mixed REST and MLLP ingest, on SQLite and then on PostgreSQL
# (a throwaway cluster from scripts/with-postgres.sh), each checking after the
# restart that everything acknowledged is there, every transaction is whole and
# every resent HL7 message is applied once (crates/wardline/tests/e2e/
# crash_cycles.rs). The README's test command runs the same test with 3 cycles.
#
#   scripts/crash-harness.sh                 # 100 cycles on each backend
#   CRASH_CYCLES=20 scripts/crash-harness.sh sqlite
#
# Prints one summary line per backend (cycles, time, acknowledged writes of each
# kind, lost, applied twice); exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
CYCLES="${CRASH_CYCLES:-100}"
BACKENDS=("$@")
[ "${#BACKENDS[@]}" -gt 0 ] || BACKENDS=(sqlite postgres)
export CARGO_INCREMENTAL=0 WARDLINE_CRASH_CYCLES="$CYCLES"
log() { printf '==> %s\n' "$*" >&2; }
log "building the e2e tests"
cargo test -p wardline --test e2e --no-run >&2
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
for b in "${BACKENDS[@]}"; do
    log "$CYCLES kill -9 cycles on $b"
    case "$b" in
        sqlite)
            cargo test -q -p wardline --test e2e crash_cycles_sqlite -- --nocapture | tee -a "$out"
            ;;
        postgres)
            scripts/with-postgres.sh bash -c 'export WARDLINE_REQUIRE_PG=1; cargo test -q -p wardline --test e2e crash_cycles_postgres -- --nocapture' | tee -a "$out"
            ;;
        *)
            log "unknown backend $b (sqlite or postgres)"
            exit 2
            ;;
    esac
done
log "summary"
grep '^crash harness' "$out" >&2
