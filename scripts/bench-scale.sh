#!/usr/bin/env bash
# The issue-3 benchmarks at hospital scale, run on demand (never in CI):
# generates a synthetic population, loads it into SQLite and into a throwaway
# PostgreSQL, and runs `wardline-bench chart|everything|export|explain` on each.
#
#   scripts/bench-scale.sh [PATIENTS]        (default 10000 ≈ 1.05M resources)
#
# BENCH_DIR (default target/bench-scale) keeps the generated NDJSON and the
# SQLite store between runs; BENCH_BACKENDS="sqlite postgres" picks backends.
set -euo pipefail
cd "$(dirname "$0")/.."
P="${1:-10000}"
DIR="${BENCH_DIR:-target/bench-scale}"
BACKENDS="${BENCH_BACKENDS:-sqlite postgres}"
mkdir -p "$DIR"
cargo build --release -q -p wardline -p wardline-bench
T="${CARGO_TARGET_DIR:-$PWD/target}"
W="$T/release/wardline"
WB="$T/release/wardline-bench"
GEN="$DIR/gen-$P"
if [ ! -f "$GEN/Patient.ndjson" ]; then
    "$W" generate --patients "$P" --out "$GEN"
fi
export RUST_LOG=warn
echo "== machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r); $(date -u +%F)"

run_benches() {
    "$WB" chart "$@"
    "$WB" everything "$@"
    "$WB" export "$@"
    "$WB" explain "$@"
}

for b in $BACKENDS; do
    case "$b" in
    sqlite)
        if [ ! -f "$DIR/sqlite-$P/wardline.db" ]; then
            echo "== loading $GEN into SQLite"
            /usr/bin/time -f "load: %e s" "$W" import "$GEN" --data-dir "$DIR/sqlite-$P"
        fi
        echo "== sqlite"
        run_benches --data-dir "$DIR/sqlite-$P"
        ;;
    postgres)
        export -f run_benches
        export W WB GEN
        scripts/with-postgres.sh bash -c '
            set -euo pipefail
            echo "== loading $GEN into PostgreSQL"
            /usr/bin/time -f "load: %e s" "$W" import "$GEN" --database "$WARDLINE_TEST_PG_URL"
            psql -q "$WARDLINE_TEST_PG_URL" -c "VACUUM ANALYZE"
            echo "== postgres"
            run_benches --database "$WARDLINE_TEST_PG_URL"
        '
        ;;
    *) echo "unknown backend $b" >&2; exit 2 ;;
    esac
done
