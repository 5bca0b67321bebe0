#!/usr/bin/env bash
# run_demo.sh - the project's main job, from a fresh clone:
#   1. set up (.venv with Airflow, via launch_scripts/dev/bootstrap.sh),
#   2. start the dev stack (Airflow 3 + the JID, local backend) unless one runs,
#   3. run launch_airflow.py on the demo workflow (sfx_demo, config/demo.yaml),
#      streaming every step's log, then print the summary and the outputs,
#   4. stop the stack it started (also on failure or Ctrl-C).
# Exit code: the launcher's (0 success, 1 run failed, 2 bad config, 3 unreachable).
#
# Knobs: LUTE_DEMO_EXPERIMENT (demo), LUTE_DEMO_RUN (1), LUTE_DEV_STATE_DIR (.dev),
# LUTE_DEMO_AIRFLOW_PORT (28080), LUTE_DEMO_JID_PORT (28000).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
EXPERIMENT=${LUTE_DEMO_EXPERIMENT:-demo}
RUN=${LUTE_DEMO_RUN:-1}
STATE=${LUTE_DEV_STATE_DIR:-$ROOT/.dev}
AIRFLOW_PORT=${LUTE_DEMO_AIRFLOW_PORT:-28080}
JID_PORT=${LUTE_DEMO_JID_PORT:-28000}

echo "== set-up (.venv)"
# an install with the airflow extra that is newer than pyproject.toml will do
# (e.g. the full one .ci/run makes); otherwise bootstrap it
installed=0
for stamp in .venv/.lute-installed-*airflow*; do
    if [ -e "$stamp" ] && [ ! pyproject.toml -nt "$stamp" ]; then installed=1; fi
done
if [ "$installed" = 1 ] && [ -x .venv/bin/lute-dev-stack ]; then
    echo "   .venv is installed and up to date"
else
    launch_scripts/dev/bootstrap.sh airflow
fi
PY=$ROOT/.venv/bin/python
STACK=("$ROOT/.venv/bin/lute-dev-stack" --state-dir "$STATE")

started=0
stop_stack() {
    if [ "$started" = 1 ]; then
        echo "== stopping the dev stack"
        "${STACK[@]}" down || true
    fi
}
trap stop_stack EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

status=0
"${STACK[@]}" status >/dev/null 2>&1 || status=$?
if [ "$status" = 0 ]; then
    echo "== a dev stack already runs from $STATE: using it (left running)"
else
    if [ "$status" = 1 ]; then  # some recorded process died: clear the rest first
        "${STACK[@]}" down
    fi
    echo "== starting the dev stack (Airflow 3 + JID)"
    started=1
    "${STACK[@]}" up --airflow-port "$AIRFLOW_PORT" --jid-port "$JID_PORT" \
        --wait-dag lute_sfx_demo
fi

# the demo config's work_dir is ../work_dirs/demo relative to config/
mkdir -p "$ROOT/work_dirs/demo"

echo "== running the demo workflow (sfx_demo, experiment $EXPERIMENT, run $RUN)"
rc=0
LUTE_LAUNCH_CONFIG="$STATE/launch.yaml" "$PY" launch_scripts/launch_airflow.py \
    -c config/demo.yaml -w sfx_demo -e "$EXPERIMENT" -r "$RUN" || rc=$?

echo "== outputs (tables and plots of experiment $EXPERIMENT run $RUN)"
out_dir=$ROOT/work_dirs/demo/$(printf '%s_r%04d' "$EXPERIMENT" "$RUN" 2>/dev/null || echo "${EXPERIMENT}_r$RUN")
if [ -d "$out_dir" ]; then
    find "$out_dir" -maxdepth 1 -type f \( -name '*.csv' -o -name '*.png' \) | sort | sed 's/^/  /'
else
    echo "  (no output directory $out_dir)"
fi
exit "$rc"
