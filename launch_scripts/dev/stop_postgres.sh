#!/usr/bin/env bash
# stop_postgres.sh - stop the cluster that start_postgres.sh started (its data dir only).
set -euo pipefail
STATE=${LUTE_PG_STATE_DIR:-/tmp/lute-pg}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ -s "$STATE/data/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$STATE/data" -m fast stop || true
