"""What the ``slurm`` and ``firecrest`` backends say to Slurm the same way.

Both end in ``sbatch``: one through ``submit_slurm.sh`` on this host, one
through a batch script sent to FirecREST. Whatever marks a job as the
submission of one control document, names its log file or writes an
``#SBATCH`` line lives here, so the two cannot drift apart. The mapping of
Slurm's state strings to ARP statuses is the other half of this dialect:
:mod:`jid_service.backends.states`.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from pathlib import Path

from jid_service.backends.base import SubmissionRejected, SubmitSpec

LOG_DATE_FORMAT = "%Y-%m-%dT%H%M%S"
"""The ``DATE`` of a log file name, as ``submit_slurm.sh`` writes it."""

_SAFE_TAG = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_SBATCH_OPTION = re.compile(r"--?[A-Za-z][A-Za-z0-9-]*(=[^\s\"'\\#]+)?", re.ASCII)


def job_tag(job_key: str) -> str:
    """The Slurm ``--comment`` that marks a job as the submission of ``job_key``.

    Lets the backend find a job whose submission answer was lost (a timeout
    after sbatch reached the controller) instead of submitting it twice. Keys
    outside a safe character set are replaced by a hash, so caller text never
    reaches Slurm verbatim.
    """
    if _SAFE_TAG.fullmatch(job_key):
        return f"jid:{job_key}"
    return "jid:sha256-" + hashlib.sha256(job_key.encode()).hexdigest()[:32]


def key_digest(job_key: str) -> str:
    """The short digest of ``job_key`` that ends the job's name (see :func:`job_name`)."""
    return hashlib.sha256(job_key.encode()).hexdigest()[:12]


def job_name(spec: SubmitSpec) -> str:
    """The Slurm job name: the task name and a digest of the job key, unique per job."""
    return f"{spec.taskname}-{key_digest(spec.job_key)}"


def log_date(now: datetime | None = None) -> str:
    """The ``DATE`` part of a log file name for a job submitted ``now``."""
    return (now or datetime.now()).strftime(LOG_DATE_FORMAT)


def log_path_for(log_dir: Path, spec: SubmitSpec, date: str, job_id: str) -> Path:
    """The log file name submit_slurm.sh uses: NAME_EXPERIMENT_rRUN(04d)_DATE_JOBID.out."""
    run = spec.run.split("_", 1)[0]
    run_part = f"{int(run):04d}" if run.isascii() and run.isdigit() else run
    return log_dir / f"{spec.taskname}_{spec.experiment}_r{run_part}_{date}_{job_id}.out"


def log_glob(job_id: str) -> str:
    """The pattern that finds the log of ``job_id`` among :func:`log_path_for` names."""
    return f"*_{job_id}.out"


def sbatch_line(option: str) -> str:
    """``#SBATCH OPTION``; SubmissionRejected when the option cannot be written safely."""
    if not _SBATCH_OPTION.fullmatch(option):
        raise SubmissionRejected(f"Slurm option {option!r} cannot be written as an #SBATCH line")
    return f"#SBATCH {option}"
