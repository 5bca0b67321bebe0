#!/usr/bin/env bash
# bootstrap.sh [EXTRAS] - create .venv at the repository root (if missing) and
# install the project into it in editable mode with the given extras
# (default: airflow,firecrest,postgres,dev). Idempotent: a second run only
# re-checks the install.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
EXTRAS=${1:-airflow,firecrest,postgres,dev}
PY=${PYTHON:-python3}
cd "$ROOT"
if [ ! -x .venv/bin/python ]; then
    if ! "$PY" -m venv .venv 2>/dev/null; then
        # Debian's python3 ships venv separately
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null
            rm -rf .venv; "$PY" -m venv .venv
        else
            echo "bootstrap: '$PY -m venv' failed; install python3-venv" >&2; exit 1
        fi
    fi
fi
stamp=.venv/.lute-installed-$(echo "$EXTRAS" | tr ',' '-')
if [ ! -e "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[$EXTRAS]"
    touch "$stamp"
fi
