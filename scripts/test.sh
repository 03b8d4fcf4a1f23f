#!/usr/bin/env bash
# The whole Wardline test suite (the README's test command; .ci/run calls exactly this).
#
# Installs what it needs and is missing: PostgreSQL from Debian's packages (when
# initdb is not found) and the Python test clients from PyPI (into a venv under
# the cargo target directory). Then: rustfmt check, clippy (-D warnings), build,
# and, inside scripts/with-postgres.sh (a throw-away PostgreSQL on a loopback
# port in a temp dir, exported as WARDLINE_TEST_PG_URL), every Rust test of every
# crate and the Python external-client tests. Ends with "N passed, N failed".
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

# --- Static checks and build ---------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
log "cargo build (tests and binary)"
cargo build --workspace
cargo test --workspace --no-run

# --- Tests, inside a throw-away PostgreSQL --------------------------------------
LOGDIR="$(mktemp -d)"
trap 'rm -rf "$LOGDIR"' EXIT
export WARDLINE_BIN="$TARGET_DIR/debug/wardline"
export LOGDIR VENV ROOT

log "tests (Rust and Python) inside scripts/with-postgres.sh"
set +e
scripts/with-postgres.sh bash -c '
    set -u
    if [ -z "${WARDLINE_TEST_PG_URL:-}" ]; then
        echo "with-postgres.sh did not set WARDLINE_TEST_PG_URL" >&2
        exit 97
    fi
    cargo test --workspace 2>&1 | tee "$LOGDIR/cargo.log"
    echo "${PIPESTATUS[0]}" >"$LOGDIR/cargo.rc"
    (cd "$ROOT/tests/python" && "$VENV/bin/python" -m pytest -p no:cacheprovider) 2>&1 | tee "$LOGDIR/pytest.log"
    echo "${PIPESTATUS[0]}" >"$LOGDIR/pytest.rc"
'
wrapper_rc=$?
set -e

cargo_rc="$(cat "$LOGDIR/cargo.rc" 2>/dev/null || echo 99)"
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
passed=$(($(sum_cargo passed) + $(sum_pytest passed)))
failed=$(($(sum_cargo failed) + $(sum_pytest failed) + $(sum_pytest error)))

status=0
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
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
    failed=1
fi
echo
echo "$passed passed, $failed failed"
exit "$status"
