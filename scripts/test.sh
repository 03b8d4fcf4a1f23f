#!/usr/bin/env bash
# The whole Wardline test suite (the README's test command; .ci/run calls exactly this).
#
# Installs what it needs and is missing: PostgreSQL and Chromium from Debian's
# packages, the Python test clients from PyPI (into a venv under the cargo target
# directory) and playwright-core from npm (tests/browser, from its lockfile).
# Then: rustfmt check, clippy (-D warnings), build; inside
# scripts/with-postgres.sh (a throw-away PostgreSQL on a loopback port in a temp
# dir, exported as WARDLINE_TEST_PG_URL) every Rust test of every crate and the
# Python external-client tests; then the browser tests (headless Chromium
# against `wardline serve --demo`). Ends with "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

log() { printf '\n==> %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
    log "installing Debian packages: $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# --- PostgreSQL server binaries ------------------------------------------------
find_pg_bin() {
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        return 0
    fi
    local d
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -n "$d" ] && [ -x "$d/initdb" ]; then
        export PATH="$d:$PATH"
        return 0
    fi
    return 1
}
if ! find_pg_bin; then
    apt_install postgresql
    find_pg_bin || { echo "initdb not found after installing postgresql" >&2; exit 1; }
fi

# --- OpenSSL's libcrypto (issue 22) -----------------------------------------------
# SQLite is built with SQLCipher (rusqlite's bundled-sqlcipher), which links the
# system's libcrypto: its headers are needed to build.
if [ ! -f /usr/include/openssl/evp.h ]; then
    apt_install libssl-dev
fi

# --- Python clients ------------------------------------------------------------
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null ||
    echo "$ROOT/target")"
VENV="$TARGET_DIR/test-venv"
REQ="$ROOT/tests/python/requirements.txt"
REQ_HASH="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements-sha256" 2>/dev/null)" != "$REQ_HASH" ]; then
    command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
    rm -rf "$VENV"
    if ! python3 -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        apt_install python3-venv
        python3 -m venv "$VENV"
    fi
    log "installing Python test clients from PyPI"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ"
    echo "$REQ_HASH" >"$VENV/.requirements-sha256"
fi

# --- PDF checks (discharge summaries): Debian poppler-utils' pdftotext ---------
if ! command -v pdftotext >/dev/null 2>&1; then
    apt_install poppler-utils
fi

# --- Browser tests: Debian Chromium and npm playwright-core ---------------------
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
    apt_install chromium
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
fi
export CHROMIUM
BROWSER_DIR="$ROOT/tests/browser"
LOCK_HASH="$(sha256sum "$BROWSER_DIR/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$BROWSER_DIR/node_modules/.lock-sha256" 2>/dev/null)" != "$LOCK_HASH" ]; then
    log "installing the browser test client (npm ci)"
    (cd "$BROWSER_DIR" && npm ci --no-audit --no-fund --silent)
    echo "$LOCK_HASH" >"$BROWSER_DIR/node_modules/.lock-sha256"
fi

# --- Static checks and build ---------------------------------------------------
# No incremental state: it only pays off across edits, and on CI it would
# double the target directory (a full build must fit a small disk).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
# One build of tests and binary: `cargo test` builds the `wardline` binary too
# (with the dev-dependency features it is tested with), so a separate `cargo
# build` would only compile the stack a second time.
log "cargo build (tests and binary)"
cargo test --workspace --no-run

# --- Tests, inside a throw-away PostgreSQL --------------------------------------
LOGDIR="$(mktemp -d)"
trap 'rm -rf "$LOGDIR"' EXIT
export WARDLINE_BIN="$TARGET_DIR/debug/wardline"
export LOGDIR VENV ROOT

log "tests (Rust and Python) inside scripts/with-postgres.sh"
set +e
# WARDLINE_REQUIRE_PG=1: a PostgreSQL variant without a database fails, never
# skips (crates/wardline-store-postgres/src/testenv.rs, tests/python/conftest.py).
# If PostgreSQL cannot start, with-postgres.sh exits non-zero before any test
# runs, no cargo.rc is written, and the suite fails below.
# scripts/with-peers.sh (issue 18): the MESH sandbox and an SMTP server on
# loopback ports (its own venv under the target directory);
# WARDLINE_REQUIRE_PEERS=1 makes a transfers test without them fail, never skip.
scripts/with-postgres.sh scripts/with-peers.sh bash -c '
    set -u
    if [ -z "${WARDLINE_TEST_PG_URL:-}" ]; then
        echo "with-postgres.sh did not set WARDLINE_TEST_PG_URL" >&2
        exit 97
    fi
    export WARDLINE_REQUIRE_PG=1
    export WARDLINE_REQUIRE_PEERS=1
    cargo test --workspace --no-fail-fast 2>&1 | tee "$LOGDIR/cargo.log"
    echo "${PIPESTATUS[0]}" >"$LOGDIR/cargo.rc"
    (cd "$ROOT/tests/python" && "$VENV/bin/python" -m pytest -p no:cacheprovider) 2>&1 | tee "$LOGDIR/pytest.log"
    echo "${PIPESTATUS[0]}" >"$LOGDIR/pytest.rc"
'
wrapper_rc=$?
log "browser tests (headless Chromium; screenshots in $TARGET_DIR/browser-artifacts)"
export WARDLINE_ARTIFACTS="$TARGET_DIR/browser-artifacts"
(cd "$ROOT/tests/browser" && node --test --test-concurrency=1 --test-reporter=tap) 2>&1 | tee "$LOGDIR/browser.log"
echo "${PIPESTATUS[0]}" >"$LOGDIR/browser.rc"
set -e

cargo_rc="$(cat "$LOGDIR/cargo.rc" 2>/dev/null || echo 99)"
browser_rc="$(cat "$LOGDIR/browser.rc" 2>/dev/null || echo 99)"
pytest_rc="$(cat "$LOGDIR/pytest.rc" 2>/dev/null || echo 99)"

sum_cargo() { # $1 = passed|failed
    { grep -E '^test result: ' "$LOGDIR/cargo.log" 2>/dev/null || true; } |
        awk -v w="$1" '{for (i = 2; i <= NF; i++) if ($i ~ "^" w) s += $(i - 1)} END {print s + 0}'
}
sum_pytest() { # $1 = passed|failed|error
    { tail -n 5 "$LOGDIR/pytest.log" 2>/dev/null || true; } |
        awk -v w="$1" '/(passed|failed|error|skipped|no tests ran)/ {line = $0} END {
            n = split(line, f, /[ ,]+/); s = 0
            for (i = 2; i <= n; i++) if (f[i] ~ "^" w) s += f[i - 1]
            print s + 0 }'
}
sum_browser() { # $1 = pass|fail (node --test TAP summary: "# pass N")
    { grep -E "^# $1 [0-9]+" "$LOGDIR/browser.log" 2>/dev/null || true; } | awk '{s += $3} END {print s + 0}'
}
passed=$(($(sum_cargo passed) + $(sum_pytest passed) + $(sum_browser pass)))
failed=$(($(sum_cargo failed) + $(sum_pytest failed) + $(sum_pytest error) + $(sum_browser fail)))

status=0
if [ ! -f "$LOGDIR/cargo.rc" ]; then
    echo "scripts/with-postgres.sh failed (exit $wrapper_rc) before any test ran: PostgreSQL could not be started" >&2
    status=1
fi
if [ "$wrapper_rc" -ne 0 ] && [ "$cargo_rc" -eq 0 ] && [ "$pytest_rc" -eq 0 ]; then
    echo "scripts/with-postgres.sh failed (exit $wrapper_rc)" >&2
    status=1
fi
if [ "$cargo_rc" -ne 0 ]; then
    echo "cargo test failed (exit $cargo_rc)" >&2
    status=1
fi
if [ "$pytest_rc" -eq 5 ]; then
    echo "pytest collected no tests (exit 5): that is a failure" >&2
    status=1
elif [ "$pytest_rc" -ne 0 ]; then
    echo "pytest failed (exit $pytest_rc)" >&2
    status=1
fi
if [ "$browser_rc" -ne 0 ]; then
    echo "browser tests failed (exit $browser_rc)" >&2
    status=1
fi
if [ "$(sum_browser pass)" -eq 0 ]; then
    echo "the browser tests ran no test: that is a failure" >&2
    status=1
fi
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
    failed=1
fi
echo
echo "$passed passed, $failed failed"
exit "$status"
