"""What finished jobs cost through FirecREST v2: the job model's ``time`` and ``status``."""

from __future__ import annotations

import httpx
import respx

from jid_service.backends.firecrest import decode
from jid_service.backends.firecrest.listing import COST_LOOKUPS
from tests.unit.firecrest.conftest import JOBS_URL, listed_job


async def test_time_and_exit_code_of_a_looked_up_job(router: respx.MockRouter, backend):
    route = router.get(f"{JOBS_URL}/7").mock(return_value=httpx.Response(
        200, json={"jobs": [listed_job("7", "FAILED", exit_code=2)]}))
    costs = await backend.costs(["7"])
    assert route.call_count == 1
    reading = costs["7"]
    assert reading.settled
    cost = reading.cost
    assert cost.run_seconds == 3 and cost.exit_code == 2
    # the v2 job model has no submission time, memory or CPU use: unknown
    assert cost.queue_wait_seconds is None
    assert (cost.max_rss_bytes, cost.cpu_seconds, cost.cpu_efficiency) == (None, None, None)


def test_a_submission_time_gives_the_queue_wait() -> None:
    job = listed_job("8", "COMPLETED")
    job["time"] = {**job["time"], "submission": 1699999990}
    assert decode.job_cost("8", job).cost.queue_wait_seconds == 10


def test_a_running_job_is_not_settled_and_unset_times_are_unknown() -> None:
    job = listed_job("9", "RUNNING", exit_code=None)
    job["time"] = {"elapsed": 5, "start": 1700000000, "end": 0, "suspended": 0, "limit": 600}
    reading = decode.job_cost("9", job)
    assert not reading.settled and reading.cost.run_seconds == 5
    assert reading.cost.exit_code is None


def test_slurmrestd_numbers_and_a_missing_time_object() -> None:
    job = listed_job("10", "COMPLETED")
    job["time"] = {"elapsed": {"set": True, "infinite": False, "number": 42},
                   "start": {"set": True, "number": 1700000000},
                   "end": {"set": False, "number": 0}}
    cost = decode.job_cost("10", job).cost
    assert cost.run_seconds == 42
    del job["time"]
    reading = decode.job_cost("10", job)
    assert reading.cost.run_seconds is None and not reading.settled


async def test_unknown_jobs_are_left_out_and_lookups_are_bounded(router: respx.MockRouter,
                                                                 backend):
    lookups = router.get(url__regex=rf"{JOBS_URL}/\d+$").mock(
        return_value=httpx.Response(404, json={"detail": "Job not found."}))
    ids = [str(n) for n in range(100, 100 + COST_LOOKUPS + 3)]
    assert await backend.costs([*ids, "../x"]) == {}
    assert lookups.call_count == COST_LOOKUPS
