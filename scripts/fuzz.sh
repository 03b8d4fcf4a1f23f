#!/usr/bin/env bash
# Fuzzing (cargo-fuzz / libFuzzer), on demand: never part of the test suite.
# Runs every target of the two fuzz projects for FUZZ_SECONDS (default 60)
# each, one after another, with the nightly toolchain:
#   crates/wardline-hl7/fuzz   parse, mllp_decoder, inbound_mapping (HL7 v2)
#   crates/wardline-core/fuzz  fhir_json (FHIR JSON parsing, limits, R4
#                              validation, index extraction), search_query
#                              (the search parser and the SQL it runs)
#
#   scripts/fuzz.sh                      # all targets, 60 s each
#   FUZZ_SECONDS=300 scripts/fuzz.sh parse inbound_mapping
#   FUZZ_RUNS=10000000 scripts/fuzz.sh fhir_json   # stop after N executions
#
# * Installs cargo-fuzz $CARGO_FUZZ_VERSION (pinned) with `cargo install
#   --locked` when `cargo fuzz` is missing. Needs the nightly toolchain
#   (`rustup toolchain install nightly`) and a C++ compiler (libFuzzer).
# * Corpus: crates/wardline-hl7/fuzz/corpus/<target> (git-ignored), seeded
#   from the project's own fixtures (fuzz/seeds/, benches/data/). The shared
#   test data ($WARDLINE_TESTDATA/hl7v2, default <repo>/../shared/testdata/hl7v2)
#   is passed, when present, as an extra read-only corpus directory for the
#   message targets: libFuzzer reads it but writes new inputs only to the
#   first directory, so nothing is copied into the repository. fhir_json is
#   seeded from crates/wardline-core/fuzz/seeds/json and reads the official
#   FHIR examples ($WARDLINE_TESTDATA/fhir-r4-examples) the same way;
#   search_query from crates/wardline-core/fuzz/seeds/search.
# * Crashes go to fuzz/artifacts/<target>/ (git-ignored); logs to
#   $FUZZ_TARGET_DIR/logs/<target>.log. Build output goes to FUZZ_TARGET_DIR
#   (default ${CARGO_TARGET_DIR:-<repo>/target}/fuzz), apart from the normal
#   builds (the fuzz build uses sanitizer flags).
# * Exit status: non-zero if any target found a crash (the summary at the end
#   names the artifact; reproduce with `cargo +nightly fuzz run <target>
#   <artifact>` in the target's fuzz directory, minimise with `cargo +nightly
#   fuzz tmin <target> <artifact>`).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
HL7_FUZZ="$ROOT/crates/wardline-hl7/fuzz"
CORE_FUZZ="$ROOT/crates/wardline-core/fuzz"
CARGO_FUZZ_VERSION="0.13.2"
SECONDS_EACH="${FUZZ_SECONDS:-60}"
# FUZZ_SANITIZER=none builds without AddressSanitizer: several times faster,
# and the fuzzed crates are safe Rust (no `unsafe`), so the sanitizer finds
# little that a panic would not; the default keeps it.
SANITIZER="${FUZZ_SANITIZER:-address}"
TESTDATA_ROOT="${WARDLINE_TESTDATA:-$ROOT/../shared/testdata}"
TESTDATA="$TESTDATA_ROOT/hl7v2"
# FUZZ_RUNS=N: stop each target after N executions (no time limit unless
# FUZZ_SECONDS is given too).
runs_flag=()
if [ -n "${FUZZ_RUNS:-}" ]; then
    runs_flag=(-runs="$FUZZ_RUNS")
    SECONDS_EACH="${FUZZ_SECONDS:-0}"
fi
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/fuzz}"
LOGS="$CARGO_TARGET_DIR/logs"

if [ "$#" -gt 0 ]; then
    TARGETS=("$@")
else
    TARGETS=(parse mllp_decoder inbound_mapping fhir_json search_query)
fi

log() { printf '==> %s\n' "$*" >&2; }
# Copies seed files into a corpus directory, keeping what is already there.
seed() {
    local dir="$1" f
    shift
    for f in "$@"; do
        [ -e "$dir/$(basename "$f")" ] || cp "$f" "$dir/"
    done
}

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    log "the nightly toolchain is missing: rustup toolchain install nightly"
    exit 2
fi
if ! command -v c++ >/dev/null 2>&1; then
    log "no C++ compiler (libFuzzer is built from C++): install g++ or clang"
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi
installed="$(cargo fuzz --version | awk '{print $2}')"
if [ "$installed" != "$CARGO_FUZZ_VERSION" ]; then
    log "note: cargo-fuzz $installed installed (pinned: $CARGO_FUZZ_VERSION)"
fi
log "$(cargo fuzz --version), $(rustup run nightly rustc --version)"

mkdir -p "$LOGS"
# The project of each target; only the projects of the targets asked for are
# built.
project() {
    case "$1" in
        fhir_json | search_query) echo "$CORE_FUZZ" ;;
        *) echo "$HL7_FUZZ" ;;
    esac
}
for d in $(for t in "${TARGETS[@]}"; do project "$t"; done | sort -u); do
    log "building the fuzz targets of $d (nightly, into $CARGO_TARGET_DIR)"
    (cd "$d" && cargo +nightly fuzz build -s "$SANITIZER")
done

status=0
summary=()
for t in "${TARGETS[@]}"; do
    corpus="corpus/$t"
    extra=()
    FUZZ_DIR="$(project "$t")"
    cd "$FUZZ_DIR"
    mkdir -p "corpus/$t"
    case "$t" in
        fhir_json)
            seed "$corpus" seeds/json/*
            if [ -d "$TESTDATA_ROOT/fhir-r4-examples" ]; then
                extra=("$TESTDATA_ROOT/fhir-r4-examples")
            else
                log "no shared test data at $TESTDATA_ROOT/fhir-r4-examples: project seeds only"
            fi
            ;;
        search_query)
            seed "$corpus" seeds/search/*
            ;;
        mllp_decoder)
            seed "$corpus" seeds/mllp/*
            ;;
        *)
            seed "$corpus" seeds/hl7/* ../benches/data/*.hl7
            if [ -d "$TESTDATA" ]; then
                extra=("$TESTDATA")
            else
                log "no shared test data at $TESTDATA: project seeds only"
            fi
            ;;
    esac
    log "fuzzing $t for ${SECONDS_EACH}s (corpus $corpus ${extra[*]:-})"
    # Without -jobs: one in-process fuzzing job, output on stderr (with
    # -jobs=N libFuzzer writes fuzz-<n>.log files into the current directory).
    if cargo +nightly fuzz run -s "$SANITIZER" "$t" "$corpus" "${extra[@]}" -- \
        -max_total_time="$SECONDS_EACH" "${runs_flag[@]}" -max_len=16384 -timeout=10 \
        -print_final_stats=1 2>&1 | tee "$LOGS/$t.log" >&2; then
        result="clean"
    else
        result="FAILED (see $LOGS/$t.log; artifacts in $FUZZ_DIR/artifacts/$t/)"
        status=1
    fi
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$LOGS/$t.log" | tail -n 1)"
    took="$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$LOGS/$t.log" | tail -n 1)"
    summary+=("$t: ${execs:-?} executions in ${took:-$SECONDS_EACH} s, $result")
done

log "summary"
printf '  %s\n' "${summary[@]}" >&2
exit "$status"
