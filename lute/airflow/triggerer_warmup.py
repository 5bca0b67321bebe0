"""Ready the triggerer's in-process Execution API when the triggerer starts.

In Airflow 3 a trigger reaches Airflow (XComs, connections and variables not
set in the environment, task states) through its triggerer's supervisor,
which answers each request on its one thread through an Execution API app it
builds in-process on the first request: importing the app, building its
routes and, on that first request, Cadwyn's routes for every API version,
about 6 s of CPU on a quiet machine and far more on a busy one. Until it is
done the supervisor neither answers the runner nor hands over events or new
triggers, so every trigger of the triggerer stalls, and Airflow logs
``TriggerRunner subprocess event loop appears deadlocked``. The first such
request of a fresh triggerer was the XCom store of the first step that ended
there.

The provider's Airflow plugin pays that cost when the triggerer process loads
its plugins (as it starts its job, before the trigger runner is forked and
before any trigger runs): it builds the app, sends it one request so Cadwyn
builds its versioned routes and the route opens its database session, and
hands this ready app to the supervisor. It also imports the trigger's module,
which the trigger runner would otherwise import on its event loop when the
first step defers. It does nothing in any other Airflow
process, and nothing if the installed Airflow lacks the pieces it relies on
(it logs why). The plugin has no listeners: Airflow refuses tasks that end
from their trigger while a listener plugin is installed.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
from typing import Any

from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger(__name__)

_WARM_PATH = "/xcoms/lute-warmup/lute-warmup/lute-warmup/lute-warmup"
"""An XCom that does not exist: the first request builds Cadwyn's routes, and this one
also opens the route's database session, as the first trigger's XCom store would."""

_state: dict[str, Any] = {}


def is_triggerer_process(argv: list[str] | None = None) -> bool:
    """True in the process ``airflow triggerer`` started."""
    argv = sys.argv if argv is None else argv
    return len(argv) > 1 and argv[1] == "triggerer"


async def _first_request(app: Any) -> None:
    import httpx

    # An answer of any status will do: only building the routes matters.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://warmup.invalid") as client:
        await client.get(_WARM_PATH)


def warm_in_process_api() -> Any | None:
    """Build the supervisor's Execution API now and make the supervisor use it; None if unable."""
    if "api" in _state:
        return _state["api"]
    try:
        from airflow.jobs import triggerer_job_runner as runner

        build = runner.in_process_api_server
        api = build()
        asyncio.run(_first_request(api.app))
    except Exception:
        log.warning("could not ready the triggerer's in-process Execution API", exc_info=True)
        return None
    _state["api"] = api
    # The supervisor builds its client once (a cached property) from this.
    runner.in_process_api_server = lambda: api
    return api


TRIGGER_MODULES = ("lute.airflow.trigger", "airflow.sdk.execution_time.xcom")
"""Imported before the trigger runner is forked, which inherits them: the runner
imports a trigger's class on its event loop, blocking every trigger meanwhile."""


def preload_trigger_modules() -> None:
    """Import what the first JID trigger would otherwise import on the runner's loop."""
    for name in TRIGGER_MODULES:
        try:
            importlib.import_module(name)
        except Exception:
            log.warning("could not preload %s", name, exc_info=True)


class TriggererWarmupPlugin(AirflowPlugin):
    """Readies the triggerer's in-process Execution API when the triggerer loads its plugins."""

    name = "lute_triggerer_warmup"

    @classmethod
    def on_load(cls, *args: Any, **kwargs: Any) -> None:
        """Called by Airflow's plugin manager in every process that loads plugins."""
        if is_triggerer_process():
            warm_in_process_api()
            preload_trigger_modules()
