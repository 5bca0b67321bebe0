#!/usr/bin/env bash
# submit_launch_airflow.sh [PATH/launch_airflow.py] [launch_airflow.py arguments]
#                          [--partition=P] [--account=A] [slurm args]
#
# What the eLog/ARP runs: submit launch_airflow.py as a one-task Slurm job and
# return at once (the eLog allows 30 s). LUTE's eLog definitions name the
# launcher first (".../lute/launch_scripts/launch_airflow.py -c ... -w ..."):
# a first argument whose file name is launch_airflow.py, wherever it lives,
# is taken as that command and replaced by this install's launcher. --partition/--account place the
# launcher's own job and are also passed on (as Slurm arguments for every
# managed task), as LUTE does. Every other argument goes to launch_airflow.py
# unchanged; nothing goes through a shell string.
#
# Credentials are not copied anywhere: the launcher reads them from the
# environment (sbatch exports it: Authorization, EXPERIMENT, RUN_NUM, ARP_*,
# LUTE_LAUNCH_CONFIG, LUTE_AIRFLOW_*, LUTE_JID_*) or from the user's own
# config file, so concurrent launches never share or overwrite a file.
#
# Knobs: LUTE_PYTHON (interpreter; default the repo's .venv, else python3),
# LUTE_LAUNCH_LOG_DIR (where the launcher's Slurm log goes; default ./logs).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PARTITION=""
ACCOUNT=""
POS=()
if [[ $# -gt 0 && $(basename -- "$1") == launch_airflow.py ]]; then
    shift  # LUTE's form: the launcher's path comes first; ours runs instead
fi
while [[ $# -gt 0 ]]; do
    case "$1" in
        --partition=*) PARTITION="${1#*=}"; shift ;;
        --account=*) ACCOUNT="${1#*=}"; shift ;;
        --partition|--account)
            [[ $# -ge 2 ]] || { echo "submit_launch_airflow.sh: $1 needs a value" >&2; exit 2; }
            if [[ $1 == --partition ]]; then PARTITION=$2; else ACCOUNT=$2; fi
            shift 2 ;;
        *) POS+=("$1"); shift ;;
    esac
done

PY=${LUTE_PYTHON:-}
if [[ -z $PY ]]; then
    if [[ -x $ROOT/.venv/bin/python ]]; then PY=$ROOT/.venv/bin/python; else PY=python3; fi
fi
LOG_DIR=${LUTE_LAUNCH_LOG_DIR:-$PWD/logs}
mkdir -p "$LOG_DIR"

CMD=("$PY" "$ROOT/launch_scripts/launch_airflow.py" "${POS[@]+"${POS[@]}"}")
SBATCH=(sbatch --parsable --ntasks=1 --job-name=lute_launch
        "--output=$LOG_DIR/lute_launch_%j.out")
if [[ -n $PARTITION ]]; then
    SBATCH+=("--partition=$PARTITION"); CMD+=("--partition=$PARTITION")
fi
if [[ -n $ACCOUNT ]]; then
    SBATCH+=("--account=$ACCOUNT"); CMD+=("--account=$ACCOUNT")
fi

# The batch script execs the launcher with its argv as separate, quoted words
# (printf %q), so no argument is ever re-split or interpreted by a shell.
script=$(printf '#!/bin/bash\nexec'; printf ' %q' "${CMD[@]}"; printf '\n')
jobid=$(printf '%s' "$script" | "${SBATCH[@]}")
echo "Submitted launch_airflow.py as Slurm job ${jobid%%;*} (log: $LOG_DIR/lute_launch_${jobid%%;*}.out)"
