"""The batch script the ``firecrest`` backend submits, and what values it may carry.

The script does what ``submit_slurm.sh`` does on a login node: ``#SBATCH``
lines, ``export EXPERIMENT/RUN_NUM``, then ``lute-run-task -c CONFIG -t NAME
[--debug]``, its log in the work dir under the name ``submit_slurm.sh`` gives.

FirecREST splices some fields into a remote shell command inside single
quotes; every value the backend sends (or writes into ``#SBATCH`` lines) keeps
to :data:`SAFE_NAME` or :data:`SAFE_PATH`, so no value can break out of them.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from jid_service.backends.base import SubmissionRejected, SubmitSpec
from jid_service.backends.slurm_dialect import job_name, log_date, log_path_for, sbatch_line

SAFE_NAME = re.compile(r"[A-Za-z0-9_.@+=:-]+")
SAFE_PATH = re.compile(r"/[A-Za-z0-9_.@+=:/-]*")


def check_name(field: str, value: str) -> str:
    """``value`` unchanged, or SubmissionRejected when it is not a :data:`SAFE_NAME`."""
    if not SAFE_NAME.fullmatch(value):
        raise SubmissionRejected(
            f"{field} {value!r} cannot be sent to FirecREST: only letters, digits and _.@+=:- "
            "are allowed"
        )
    return value


def run_argv(launcher: str, spec: SubmitSpec) -> list[str]:
    """The command the batch script runs on the compute node."""
    return [launcher, *spec.run_task_args()]


def script_and_log(
    spec: SubmitSpec, work_dir: str, launcher: str, date: str | None = None
) -> tuple[str, str]:
    """The batch script for ``spec`` and its log file (``%j`` for the job id).

    ``date`` is the log name's date as ``submit_slurm.sh`` writes it (default:
    now). Raises SubmissionRejected when a value cannot be written safely.
    """
    date = date or log_date()
    if spec.kerberos_cache is not None:
        # the cache is a file on the JID's host; the job runs on the remote system
        raise SubmissionRejected(
            "-K: the firecrest backend cannot forward a Kerberos cache to the remote "
            "system; leave kerb_file out of the run's conf"
        )
    check_name("experiment", spec.experiment)
    check_name("run", spec.run)
    check_name("task name", spec.taskname)
    check_name("date", date)
    log_file = str(log_path_for(Path(work_dir), spec, date, "%j"))
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={job_name(spec)}",
        f"#SBATCH --output={log_file}",
        f"#SBATCH --error={log_file}",
    ]
    lines += [sbatch_line(option) for option in spec.slurm_args]
    lines += [
        "# Written by the LUTE job interface daemon (firecrest backend).",
        f"export EXPERIMENT={shlex.quote(spec.experiment)}",
        f"export RUN_NUM={shlex.quote(spec.run)}",
        "exec " + " ".join(shlex.quote(arg) for arg in run_argv(launcher, spec)),
    ]
    return "\n".join(lines) + "\n", log_file


def submission_body(
    spec: SubmitSpec, work_dir: str, launcher: str, date: str | None = None
) -> dict[str, Any]:
    """The JSON body of ``POST /compute/{system}/jobs`` for ``spec``."""
    script, log_file = script_and_log(spec, work_dir, launcher, date)
    return {
        "job": {
            "name": job_name(spec),
            "script": script,
            "workingDirectory": work_dir,
            "standardOutput": log_file,
            "standardError": log_file,
            "env": {"EXPERIMENT": spec.experiment, "RUN_NUM": spec.run},
        }
    }
