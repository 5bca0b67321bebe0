"""What a finished ``local`` job cost, from the files of its job directory.

``spec.json`` has when it was submitted; the runner's exit file when the
command started and ended, its peak memory and CPU time (see
:mod:`jid_service.backends.local_runner`). The queue wait is the time the job
waited for a free slot (``local_max_parallel``). No CPUs are allocated to a
local job, so it has no CPU efficiency; its peak memory is that of its
largest process, not the sum of its processes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jid_service.backends.job_cost import CostReading, JobCost, time_between


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def read_cost(job_dir: Path) -> CostReading | None:
    """The cost of the job in ``job_dir``; None until its exit file is written."""
    try:
        outcome = json.loads((job_dir / "exit").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(outcome, dict):
        return None
    try:
        submitted = _number(json.loads((job_dir / "spec.json").read_text()).get("submitted_at"))
    except (OSError, ValueError, AttributeError):
        submitted = None
    started, ended = _number(outcome.get("started_at")), _number(outcome.get("ended_at"))
    rss, cpu = _number(outcome.get("max_rss_bytes")), _number(outcome.get("cpu_seconds"))
    code = outcome.get("exit_code")
    cost = JobCost(
        queue_wait_seconds=time_between(submitted, started),
        run_seconds=time_between(started, ended),
        exit_code=code if isinstance(code, int) and not isinstance(code, bool) else None,
        max_rss_bytes=int(rss) if rss is not None and rss >= 0 else None,
        cpu_seconds=cpu if cpu is not None and cpu >= 0 else None,
    )
    return CostReading(cost=cost, settled=True)
