#!/usr/bin/env bash
# Submit one LUTE managed task as a Slurm batch job running lute-run-task.
#
#   submit_slurm.sh -c CONFIG -t NAME [--debug] [-e EXP] [-r RUN] [-K KRB5CCNAME] [slurm args...]
#
# Prints only the job id on stdout (sbatch --parsable). Every other argument
# goes to sbatch unchanged. The log file is
#   $LUTE_LOG_DIR/NAME_EXPERIMENT_rRUN(04d)_DATE_%J.out   (DATE: %Y-%m-%dT%H%M%S)
# with LUTE_LOG_DIR defaulting to ./logs (created). -e/-r are exported as
# EXPERIMENT/RUN_NUM for the job (sbatch exports the environment by default).
# lute-run-task is found as: $LUTE_PYTHON -m lute.run_task, else this
# repository's .venv/bin/python -m lute.run_task, else lute-run-task on PATH.
# The job script is generated with every value quoted by printf %q; nothing is
# evaluated.
set -euo pipefail

usage() {
    cat >&2 <<USAGE
usage: $(basename "$0") -c CONFIG -t NAME [--debug] [-e EXPERIMENT] [-r RUN] [-K KRB5CCNAME] [slurm args...]
  -c, --config      task config YAML (made absolute)
  -t, --taskname    managed task name (e.g. Tester)
  --debug           verbose lute-run-task
  -e, --experiment  experiment (exported as EXPERIMENT)
  -r, --run         run number (exported as RUN_NUM)
  -K, --KERB        Kerberos credential cache (exported as KRB5CCNAME)
  other arguments are passed to sbatch; LUTE_LOG_DIR sets the log directory (default ./logs)
USAGE
}

CONFIG="" TASK="" DEBUG=0
SLURM_ARGS=()
need_value() { [[ $# -ge 2 && -n $2 ]] || { echo "$(basename "$0"): $1 needs a value" >&2; usage; exit 2; }; }
while [[ $# -gt 0 ]]; do
    case $1 in
        -c|--config) need_value "$@"; CONFIG=$2; shift 2 ;;
        --config=*) CONFIG=${1#*=}; shift ;;
        -t|--taskname) need_value "$@"; TASK=$2; shift 2 ;;
        --taskname=*) TASK=${1#*=}; shift ;;
        -e|--experiment) need_value "$@"; export EXPERIMENT=$2; shift 2 ;;
        -r|--run) need_value "$@"; export RUN_NUM=$2; shift 2 ;;
        -K|--KERB) need_value "$@"; export KRB5CCNAME=$2; shift 2 ;;
        --debug) DEBUG=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) SLURM_ARGS+=("$1"); shift ;;
    esac
done

if [[ -z $CONFIG || -z $TASK ]]; then
    echo "$(basename "$0"): -c CONFIG and -t NAME are required" >&2
    usage
    exit 2
fi
if [[ ! $TASK =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
    echo "$(basename "$0"): invalid managed task name: $TASK" >&2
    exit 2
fi
if [[ ! -f $CONFIG ]]; then
    echo "$(basename "$0"): config not found: $CONFIG" >&2
    exit 2
fi
CONFIG=$(cd "$(dirname -- "$CONFIG")" && pwd)/$(basename -- "$CONFIG")

# lute-run-task of this project
SCRIPT_DIR=$(cd "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_PYTHON=$SCRIPT_DIR/../.venv/bin/python
if [[ -n ${LUTE_PYTHON:-} ]]; then
    RUNNER=("$LUTE_PYTHON" -m lute.run_task)
elif [[ -x $REPO_PYTHON ]]; then
    RUNNER=("$(cd "$SCRIPT_DIR/.." && pwd)/.venv/bin/python" -m lute.run_task)
elif command -v lute-run-task >/dev/null 2>&1; then
    RUNNER=("$(command -v lute-run-task)")
else
    echo "$(basename "$0"): cannot find lute-run-task (set LUTE_PYTHON)" >&2
    exit 1
fi
CMD=("${RUNNER[@]}" -c "$CONFIG" -t "$TASK")
[[ $DEBUG == 1 ]] && CMD+=(--debug)

# log file: NAME_EXPERIMENT_rRUN(04d)_DATE_%J.out
EXP_PART=${EXPERIMENT:-noexp}
RUN=${RUN_NUM:-0}
RUN=${RUN%%_*}
if [[ $RUN =~ ^[0-9]+$ ]]; then
    RUN_PART=$(printf '%04d' "$((10#$RUN))")
else
    RUN_PART=$RUN
fi
LOG_DIR=${LUTE_LOG_DIR:-$PWD/logs}
mkdir -p -- "$LOG_DIR"
LOG_DIR=$(cd "$LOG_DIR" && pwd)
LOG_FILE="$LOG_DIR/${TASK}_${EXP_PART}_r${RUN_PART}_$(date +%Y-%m-%dT%H%M%S)_%J.out"

# sbatch reads the job script from stdin; each word quoted by printf %q. exec makes
# lute-run-task the batch process itself, so a Slurm cancel signals it directly.
SCRIPT="#!/bin/bash"$'\n'
SCRIPT+="exec $(printf '%q ' "${CMD[@]}")"$'\n'
if [[ $DEBUG == 1 ]]; then
    printf 'submitting: %s\nlog: %s\n' "$(printf '%q ' "${CMD[@]}")" "$LOG_FILE" >&2
fi

exec sbatch --parsable --job-name="$TASK" --output="$LOG_FILE" --error="$LOG_FILE" \
    "${SLURM_ARGS[@]}" <<<"$SCRIPT"
