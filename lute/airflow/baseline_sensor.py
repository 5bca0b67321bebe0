"""Airflow's own deferrable sensor, as the benchmarks' baseline for deferred steps.

The benchmark DAGs (``workflows/airflow/bench_*.py``) set N of these beside N
managed steps in the same stack, so a figure of the steps can be read
against what Airflow itself needs to defer and end as many tasks.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync

from lute.airflow.trigger_end import EndFromTriggerOption, ending_from_trigger_allowed


class BaselineSensor(EndFromTriggerOption, DateTimeSensorAsync):
    """``DateTimeSensorAsync`` ending from its trigger where Airflow allows it, as steps do.

    With listener plugins Airflow refuses a DAG whose tasks end from the
    trigger; this sensor then ends in the worker, so the DAG file still parses.
    """

    def __init__(self, *, end_from_trigger: bool = False, **kwargs: Any) -> None:
        # Airflow's sensor reads the option in __init__ when it starts from the
        # trigger, while the DAG file is parsed: built with it off (reading it
        # then loads no plugin), then set as asked, as the managed steps do.
        super().__init__(end_from_trigger=False, **kwargs)
        self.end_from_trigger = end_from_trigger
        if self.start_from_trigger:
            args = self.start_trigger_args
            self.start_trigger_args = dataclasses.replace(args, trigger_kwargs={
                **(args.trigger_kwargs or {}),
                "end_from_trigger": end_from_trigger and ending_from_trigger_allowed(load=False),
            })
