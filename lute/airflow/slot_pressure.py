"""Whether other steps of a DAG run are waiting for a worker slot.

A deferrable step first waits ``defer_after`` seconds in its worker so that a
short job ends without the cost of deferring. That wait holds a worker slot:
while other steps of the same run are ready but not started, holding it
delays them by as much, so the step then defers at once and gives its slot
to the next. Ready but not started is ``scheduled`` (waiting for pool or
concurrency capacity) or ``queued``: Airflow 3's scheduler queues every ready
task instance, and the executor starts them as its worker slots free up. The
count is taken once the step has submitted its job, a second or more after
it started, when a sibling that had a free slot has long been ``running``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

WAITING_FOR_A_SLOT = ("scheduled", "queued")
"""Task instance states of a step that is ready to run but has no worker slot yet."""


def steps_waiting_for_a_slot(context: Mapping[str, Any], log: logging.Logger) -> int:
    """How many task instances of this step's DAG run wait for a worker slot.

    Asked through the task SDK (the worker's supervisor asks Airflow's API
    server). Where it cannot be asked (an Airflow without that call, or no
    supervisor), the answer is 0: the step then keeps its usual inline wait.
    """
    ti = context.get("ti")
    run_id = getattr(ti, "run_id", None)
    count_of = getattr(ti, "get_ti_count", None)
    if run_id is None or count_of is None:
        return 0
    try:
        count = count_of(dag_id=ti.dag_id, run_ids=[run_id], states=list(WAITING_FOR_A_SLOT))
    except Exception as exc:  # a hint only: never fail the step over it
        log.info("could not count the steps waiting for a worker slot (%s)", exc)
        return 0
    return count if isinstance(count, int) and count > 0 else 0
