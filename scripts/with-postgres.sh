#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL cluster.
#
#   scripts/with-postgres.sh <command...>
#
# Installs Debian's `postgresql` if no initdb is present, starts a cluster on a
# free loopback port in a temporary directory (trust auth, fsync left ON so
# crash-safety tests mean something), creates the database `wardline_test`,
# exports WARDLINE_TEST_PG_URL, runs the command, then stops the cluster and
# removes the directory. Exits with the command's exit code.
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 <command...>" >&2
    exit 2
fi

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

find_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

PGBIN="$(find_bin || true)"
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
    echo "with-postgres: installing PostgreSQL from Debian packages" >&2
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >/dev/null
    PGBIN="$(find_bin)"
fi

# The server refuses to run as root: run it as the `postgres` user when root.
run_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

DIR="$(mktemp -d -t wardline-pg.XXXXXX)"
if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$DIR"; fi
chmod 700 "$DIR"

cleanup() {
    run_pg "$PGBIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

run_pg "$PGBIN/initdb" -D "$DIR/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

started=""
for _ in 1 2 3 4 5 6 7 8 9 10; do
    PORT=$((20000 + RANDOM % 40000))
    port_free "$PORT" || continue
    if run_pg "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 30 \
        -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null; then
        started=1
        break
    fi
done
if [ -z "$started" ]; then
    echo "with-postgres: could not start PostgreSQL; log follows" >&2
    cat "$DIR/server.log" >&2 || true
    exit 1
fi

"$PGBIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres wardline_test
export WARDLINE_TEST_PG_URL="postgres://postgres@127.0.0.1:$PORT/wardline_test"
echo "with-postgres: PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') at $WARDLINE_TEST_PG_URL" >&2

set +e
"$@"
rc=$?
set -e
exit "$rc"
