#!/usr/bin/env bash
# start_postgres.sh - start a private PostgreSQL cluster on loopback for tests
# (Debian's postgresql package, no systemd), idempotently, and print
#   LUTE_TEST_PG_URL=postgresql+psycopg://...
# for `eval`. Its pid is recorded; stop_postgres.sh stops exactly that cluster.
set -euo pipefail
STATE=${LUTE_PG_STATE_DIR:-/tmp/lute-pg}
PORT=${LUTE_PG_PORT:-55432}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$PGBIN" ] || { echo "start_postgres: PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir -p "$STATE"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$STATE"
if [ ! -s "$STATE/data/PG_VERSION" ]; then
    as_pg "$PGBIN/initdb" -D "$STATE/data" -A trust -U postgres >"$STATE/initdb.log" 2>&1
fi
if ! as_pg "$PGBIN/pg_ctl" -D "$STATE/data" status >/dev/null 2>&1; then
    as_pg "$PGBIN/pg_ctl" -D "$STATE/data" -l "$STATE/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -k $STATE" start >/dev/null
fi
as_pg "$PGBIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname='lute_test'" | grep -q 1 \
    || as_pg "$PGBIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres lute_test
echo "LUTE_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:$PORT/lute_test"
