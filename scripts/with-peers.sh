#!/usr/bin/env bash
# Runs a command with the transfers-of-care test peers running on free
# loopback ports, and stops them afterwards (also usable by hand:
# `scripts/with-peers.sh cargo test -p wardline-workflow --test transfers`).
#
# * MESH: mesh-sandbox (PyPI, pinned in tests/peers/requirements.txt) with
#   AUTH_MODE=full, so the real MESH authorisation header (HMAC with the
#   shared key) is checked; canned mailboxes X26ABC1..3, password "password".
# * SMTP: aiosmtpd with tests/peers/smtp_sink.py, which writes each message it
#   accepts to a directory.
#
# Both live in their own venv under the cargo target directory (the Python
# test venv pins pydantic 1; mesh-sandbox needs 2), rebuilt when the
# requirements file changes. Exports:
#   WARDLINE_TEST_MESH_URL        http://127.0.0.1:PORT
#   WARDLINE_TEST_MESH_SHARED_KEY the sandbox's shared key
#   WARDLINE_TEST_SMTP            127.0.0.1:PORT
#   WARDLINE_TEST_SMTP_DIR        where each accepted message is written (*.eml)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null ||
    echo "$ROOT/target")}"
PEERS_VENV="$TARGET_DIR/peers-venv"
REQ="$ROOT/tests/peers/requirements.txt"
REQ_HASH="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ ! -x "$PEERS_VENV/bin/python" ] || [ "$(cat "$PEERS_VENV/.requirements-sha256" 2>/dev/null)" != "$REQ_HASH" ]; then
    rm -rf "$PEERS_VENV"
    python3 -m venv "$PEERS_VENV"
    echo "==> installing the transfers test peers (mesh-sandbox, aiosmtpd) from PyPI" >&2
    "$PEERS_VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ"
    echo "$REQ_HASH" >"$PEERS_VENV/.requirements-sha256"
fi

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

SHARED_KEY="wardline-test-$$"
MESH_PORT="$(free_port)"
(cd "$WORK" && STORE_MODE=memory AUTH_MODE=full SHARED_KEY="$SHARED_KEY" \
    exec "$PEERS_VENV/bin/uvicorn" mesh_sandbox.api:app --host 127.0.0.1 --port "$MESH_PORT" \
    --log-level warning) >"$WORK/mesh.log" 2>&1 &
PIDS+=("$!")
SMTP_PORT="$(free_port)"
"$PEERS_VENV/bin/python" "$ROOT/tests/peers/smtp_sink.py" --port "$SMTP_PORT" --dir "$WORK/mail" \
    >"$WORK/smtp.log" 2>&1 &
PIDS+=("$!")

# Wait (bounded: 60 s) for both to answer.
ready=0
for _ in $(seq 1 300); do
    if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$MESH_PORT/health', timeout=1)" 2>/dev/null &&
        python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $SMTP_PORT), 1)" 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.2
done
if [ "$ready" -ne 1 ]; then
    echo "the transfers test peers did not start:" >&2
    cat "$WORK/mesh.log" "$WORK/smtp.log" >&2
    exit 98
fi

export WARDLINE_TEST_MESH_URL="http://127.0.0.1:$MESH_PORT"
export WARDLINE_TEST_MESH_SHARED_KEY="$SHARED_KEY"
export WARDLINE_TEST_SMTP="127.0.0.1:$SMTP_PORT"
export WARDLINE_TEST_SMTP_DIR="$WORK/mail"
"$@"
