"""What a DAG file written for LUTE under Airflow 2 needs to parse under Airflow 3.

LUTE's DAG files import ``from lute.operators.jidoperators import
JIDSlurmOperator`` (that module re-exports this one) and pass Airflow 2's
``schedule_interval``, which Airflow 3's ``DAG`` no longer accepts. This
module offers:

* :class:`DAG` and :func:`dag`: Airflow 3's, taking ``schedule_interval`` as
  ``schedule`` (given both, the DAG file is refused: which one was meant is
  unknown);
* :class:`JIDSlurmOperator`: this project's operator;
* :class:`RequestOnlyOperator`: LUTE's "submit the step and return" operator.

The lasting fix is the one ``docs/airflow.md`` ("Migrating from LUTE") gives:
``ruff check --select AIR301 --fix`` rewrites ``schedule_interval`` to
``schedule`` in place, after which Airflow's own ``DAG`` is enough.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import airflow.sdk

from lute.airflow.operator import JIDSlurmOperator
from lute.airflow.step_conf import is_dry_run

__all__ = ["DAG", "JIDSlurmOperator", "RequestOnlyOperator", "dag"]


def _schedule_of(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with Airflow 2's ``schedule_interval`` moved to ``schedule``."""
    if "schedule_interval" not in kwargs:
        return kwargs
    kwargs = dict(kwargs)
    interval = kwargs.pop("schedule_interval")
    if "schedule" in kwargs:
        raise TypeError("give schedule or schedule_interval, not both")
    kwargs["schedule"] = interval
    return kwargs


class DAG(airflow.sdk.DAG):
    """Airflow 3's DAG, also taking Airflow 2's ``schedule_interval``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **_schedule_of(kwargs))


def dag(*args: Any, **kwargs: Any) -> Callable[..., Any]:
    """Airflow 3's ``@dag`` decorator, also taking ``schedule_interval``."""
    return airflow.sdk.dag(*args, **_schedule_of(kwargs))


class RequestOnlyOperator(JIDSlurmOperator):
    """Submit the step's job through the JID and end without waiting for it (as LUTE's).

    The step succeeds once the JID accepted the job; its return value (XCom)
    is the JID's answer, the control document with ``tool_id`` and ``status``.
    A dry run renders the submission instead, as every step does.
    """

    def execute(self, context: Any) -> Any:
        """Submit (or render) this step's job; never wait for it."""
        conf = self._conf(context)
        doc = self.control_document(context)
        with self._client(conf) as client:
            if is_dry_run(conf):
                return self._dry_run(client, doc, context)
            return self._submit(client, doc)
