"""Every endpoint of the JID through its ASGI app (httpx), with the local backend."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from jid_service.settings import JIDSettings

from .conftest import running_app

BASE = "/jid/ws"
FINAL = ("DONE", "FAILED", "EXITED")


async def wait_final(client: httpx.AsyncClient, job: dict[str, Any], headers: dict[str, str],
                     timeout: float = 30) -> dict[str, Any]:
    """Follow a job with /wait until it ends (bounded)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while job["status"] not in FINAL:
        assert asyncio.get_running_loop().time() < deadline, f"job did not end: {job}"
        r = await client.post(f"{BASE}/wait", json={"jobs": [job], "timeout": 5},
                              headers=headers)
        assert r.status_code == 200, r.text
        job = r.json()["value"][0]
    return job


async def start(client: httpx.AsyncClient, control: dict[str, Any], headers: dict[str, str],
                experiment: str = "exp1") -> dict[str, Any]:
    r = await client.post(f"{BASE}/{experiment}/start_job", json=control, headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and body["error"] is None
    return body["value"]


async def test_lute_operator_sequence(client, auth, doc) -> None:
    """start_job, then job_statuses in a loop, then job_log_file: exactly as LUTE does it."""
    control = doc()
    msg = await start(client, control, auth)
    assert msg["tool_id"] and msg["status"] == "SUBMITTED"
    assert msg["_id"] == control["_id"] and msg["def"] == control["def"]
    jobs = [msg]
    for _ in range(400):
        if jobs[0].get("status") not in ("RUNNING", "SUBMITTED"):
            break
        r = await client.post(f"{BASE}/job_statuses", json=jobs, headers=auth)
        assert r.status_code == 200
        body = r.json()
        assert body["success"] is True
        jobs = body["value"]
        # LUTE's check_for_error looks for these strings in the value
        assert " error: " not in jobs and "Traceback" not in jobs
        await asyncio.sleep(0.05)
    assert jobs[0]["status"] == "DONE"
    assert jobs[0]["raw_status"] == "COMPLETED" and jobs[0]["exit_code"] == 0
    r = await client.post(f"{BASE}/exp1/job_log_file", json=jobs[0], headers=auth)
    assert r.status_code == 200
    out = r.json()["value"]
    assert "fake task Tester" in out
    assert "EXPERIMENT=exp1 RUN_NUM=12" in out
    assert "héllo wörld ✓" in out


async def test_failed_job(client, auth, doc) -> None:
    job = await wait_final(client, await start(client, doc("FailingTester"), auth), auth)
    assert job["status"] == "FAILED"
    assert job["exit_code"] == 3


async def test_kill_running_job(client, auth, doc) -> None:
    job = await start(client, doc("Sleeper"), auth)
    # wait until it runs, so the cancel goes to a live process
    while job["status"] == "SUBMITTED":
        r = await client.post(f"{BASE}/wait", json={"jobs": [job], "timeout": 5}, headers=auth)
        job = r.json()["value"][0]
    assert job["status"] == "RUNNING"
    r = await client.post(f"{BASE}/exp1/kill_job", json=job, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["value"]["status"] == "EXITED"
    assert r.json()["value"]["raw_status"] == "CANCELLED"
    # killing again is harmless
    r = await client.post(f"{BASE}/exp1/kill_job", json=job, headers=auth)
    assert r.json()["value"]["status"] == "EXITED"


async def test_kill_finished_job_keeps_its_status(client, auth, doc) -> None:
    job = await wait_final(client, await start(client, doc(), auth), auth)
    r = await client.post(f"{BASE}/exp1/kill_job", json=job, headers=auth)
    assert r.json()["value"]["status"] == "DONE"


async def test_kill_unknown_job_is_404(client, auth, doc) -> None:
    r = await client.post(f"{BASE}/exp1/kill_job", json=doc(), headers=auth)
    assert r.status_code == 404
    assert r.json() == {"success": False, "value": None, "error": r.json()["error"]}
    assert "no job" in r.json()["error"]


async def test_start_job_is_idempotent(client, auth, doc) -> None:
    control = doc()
    first = await start(client, control, auth)
    second = await start(client, control, auth)
    assert first["tool_id"] == second["tool_id"]
    r = await client.get(f"{BASE}/jobs", params={"experiment": "exp1"}, headers=auth)
    assert len(r.json()["value"]) == 1


async def test_concurrent_identical_start_jobs_submit_once(client, auth, doc, settings) -> None:
    control = doc("Sleeper")
    answers = await asyncio.gather(
        *[client.post(f"{BASE}/exp1/start_job", json=control, headers=auth) for _ in range(2)]
    )
    assert [a.status_code for a in answers] == [200, 200]
    tool_ids = {a.json()["value"]["tool_id"] for a in answers}
    assert len(tool_ids) == 1
    # exactly one job exists in the backend's state
    jobs = list((Path(settings.state_dir) / "local" / "jobs").iterdir())
    assert len(jobs) == 1
    await client.post(f"{BASE}/exp1/kill_job", json=answers[0].json()["value"], headers=auth)


async def test_same_id_in_other_experiment_conflicts(client, token, doc) -> None:
    headers = {"Authorization": f"Bearer {token(experiments=['exp1', 'exp2'])}"}
    control = doc()
    await start(client, control, headers)
    other = dict(control, experiment="exp2")
    r = await client.post(f"{BASE}/exp2/start_job", json=other, headers=headers)
    assert r.status_code == 409


async def test_job_statuses_filters_and_echoes(client, token, doc) -> None:
    both = {"Authorization": f"Bearer {token(experiments=['exp1', 'exp2'])}"}
    only1 = {"Authorization": f"Bearer {token(experiments=['exp1'])}"}
    job1 = await start(client, doc(), both)
    job2 = await start(client, doc(experiment="exp2"), both, experiment="exp2")
    unknown = doc()
    r = await client.post(f"{BASE}/job_statuses", json=[job1, job2, unknown], headers=only1)
    ids = [d["_id"] for d in r.json()["value"]]
    assert ids == [job1["_id"], unknown["_id"]]  # exp2's job is not shown to an exp1 token
    assert r.json()["value"][1] == {**unknown, "raw_status": None, "exit_code": None}
    # a job of another experiment cannot be read by claiming a visible experiment
    disguised = dict(job2, experiment="exp1")
    r = await client.post(f"{BASE}/job_statuses", json=[disguised], headers=only1)
    assert r.json()["value"] == []


async def test_job_log_incremental(client, auth, doc) -> None:
    job = await wait_final(client, await start(client, doc(), auth), auth)
    r = await client.post(f"{BASE}/exp1/job_log_file", json=job, headers=auth)
    whole = r.json()["value"]
    text, offset = "", 0
    for _ in range(200):
        r = await client.post(f"{BASE}/exp1/job_log",
                              json={"job": job, "offset": offset, "limit": 7}, headers=auth)
        assert r.status_code == 200, r.text
        part = r.json()["value"]
        assert part["offset"] == offset
        text += part["text"]
        offset = part["next_offset"]
        if part["complete"]:
            break
    assert text == whole
    assert offset == len(whole.encode())


async def test_job_log_not_complete_while_running(client, auth, doc) -> None:
    job = await start(client, doc("Sleeper"), auth)
    r = await client.post(f"{BASE}/exp1/job_log", json={"job": job, "offset": 0, "limit": 1000},
                          headers=auth)
    assert r.json()["value"]["complete"] is False
    await client.post(f"{BASE}/exp1/kill_job", json=job, headers=auth)


async def test_render_job_submits_nothing(client, auth, doc, settings, config_root) -> None:
    control = doc(params=f"--taskname Tester --config {config_root / 'test.yaml'} --debug")
    r = await client.post(f"{BASE}/exp1/render_job", json=control, headers=auth)
    assert r.status_code == 200, r.text
    value = r.json()["value"]
    assert value["backend"] == "local"
    assert value["argv"][-5:] == ["-c", str((config_root / "test.yaml").resolve()), "-t",
                                  "Tester", "--debug"]
    r = await client.get(f"{BASE}/jobs", headers=auth)
    assert r.json()["value"] == []
    assert not list((Path(settings.state_dir) / "local" / "jobs").iterdir())


async def test_list_jobs_filters(client, token, doc) -> None:
    headers = {"Authorization": f"Bearer {token(experiments='*')}"}
    a = await start(client, doc(arp_root_job_id="root-A"), headers)
    b = await start(client, doc("FailingTester", arp_root_job_id="root-A"), headers)
    c = await start(client, doc(arp_root_job_id="root-B", experiment="exp2"), headers,
                    experiment="exp2")
    for job in (a, b, c):
        await wait_final(client, job, headers)
    r = await client.get(f"{BASE}/jobs", params={"arp_root_job_id": "root-A"}, headers=headers)
    assert [d["_id"] for d in r.json()["value"]] == [a["_id"], b["_id"]]
    r = await client.get(f"{BASE}/jobs", params={"status": "FAILED"}, headers=headers)
    assert [d["_id"] for d in r.json()["value"]] == [b["_id"]]
    r = await client.get(f"{BASE}/jobs", params={"experiment": "exp2"}, headers=headers)
    assert [d["_id"] for d in r.json()["value"]] == [c["_id"]]
    only1 = {"Authorization": f"Bearer {token(experiments=['exp1'])}"}
    r = await client.get(f"{BASE}/jobs", headers=only1)
    assert {d["experiment"] for d in r.json()["value"]} == {"exp1"}
    r = await client.get(f"{BASE}/jobs", params={"experiment": "exp2"}, headers=only1)
    assert r.status_code == 403


async def test_wait_returns_at_timeout_when_nothing_changes(client, auth, doc) -> None:
    job = await start(client, doc("Sleeper"), auth)
    while job["status"] == "SUBMITTED":
        r = await client.post(f"{BASE}/wait", json={"jobs": [job], "timeout": 5}, headers=auth)
        job = r.json()["value"][0]
    r = await client.post(f"{BASE}/wait", json={"jobs": [job], "timeout": 0.3}, headers=auth)
    assert r.status_code == 200
    assert r.json()["value"][0]["status"] == "RUNNING"
    await client.post(f"{BASE}/exp1/kill_job", json=job, headers=auth)


async def test_wait_returns_at_once_when_status_differs(client, auth, doc) -> None:
    job = await wait_final(client, await start(client, doc(), auth), auth)
    stale = dict(job, status="RUNNING")
    r = await client.post(f"{BASE}/wait", json={"jobs": [stale], "timeout": 60}, headers=auth)
    assert r.json()["value"][0]["status"] == "DONE"


@pytest.mark.parametrize("timeout", [-1, 61, "x"])
async def test_wait_timeout_bounds(client, auth, timeout) -> None:
    r = await client.post(f"{BASE}/wait", json={"jobs": [], "timeout": timeout}, headers=auth)
    assert r.status_code == 422
    assert "timeout" in r.json()["error"]


async def test_healthz_and_metrics(client, auth, doc) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200
    value = r.json()["value"]
    assert value == {"backend": "local", "backend_ok": True, "store_ok": True,
                     "detail": None, "replica": value["replica"], "poller": "leader"}
    assert value["replica"].endswith(f":{os.getpid()}")  # hostname:pid by default
    await wait_final(client, await start(client, doc(), auth), auth)
    r = await client.get("/metrics")
    assert r.status_code == 200
    text = r.text
    assert 'jid_jobs{status="DONE"} 1.0' in text
    assert 'jid_backend_calls_total{operation="submit",outcome="ok"} 1.0' in text
    assert 'jid_backend_call_seconds_count{operation="statuses"}' in text
    assert 'route="/jid/ws/{experiment}/start_job"' in text
    assert 'route="/jid/ws/wait"' in text
    assert "jid_poller_leader 1.0" in text  # alone on SQLite: always the poller
    # never tokens, never raw paths with ids or experiments
    token = auth["Authorization"].split()[1]
    assert token not in text
    assert "/jid/ws/exp1/" not in text


async def test_unknown_route_and_method_use_the_envelope(client, auth) -> None:
    r = await client.get(f"{BASE}/nothing", headers=auth)
    assert r.status_code == 404
    assert r.json()["success"] is False and r.json()["error"]
    r = await client.get(f"{BASE}/exp1/start_job", headers=auth)
    assert r.status_code == 405
    assert r.json()["success"] is False


async def test_openapi_is_complete(client) -> None:
    r = await client.get("/openapi.json")
    spec = r.json()
    paths = spec["paths"]
    for path in ("/jid/ws/{experiment}/start_job", "/jid/ws/job_statuses",
                 "/jid/ws/{experiment}/job_log_file", "/jid/ws/{experiment}/kill_job",
                 "/jid/ws/{experiment}/render_job", "/jid/ws/{experiment}/job_log",
                 "/jid/ws/jobs", "/jid/ws/wait", "/healthz", "/metrics"):
        assert path in paths
    control = spec["components"]["schemas"]["ControlDocument"]
    assert control["additionalProperties"] is False
    assert {"_id", "def", "experiment", "run_num"} <= set(control["required"])


async def test_restart_loses_nothing(settings: JIDSettings, auth, doc) -> None:
    """A new app on the same store and state dir sees every job, and finishes them."""
    async with running_app(settings) as client:
        done = await wait_final(client, await start(client, doc(), auth), auth)
        running = await start(client, doc("Sleeper"), auth)
    async with running_app(settings) as client:
        r = await client.post(f"{BASE}/job_statuses", json=[done, running], headers=auth)
        value = r.json()["value"]
        assert value[0]["status"] == "DONE"
        assert value[1]["tool_id"] == running["tool_id"]
        assert value[1]["status"] in ("SUBMITTED", "RUNNING")
        # submitting the same document again after the restart does not resubmit
        again = await start(client, doc_copy(running), auth)
        assert again["tool_id"] == running["tool_id"]
        r = await client.post(f"{BASE}/exp1/kill_job", json=running, headers=auth)
        assert r.json()["value"]["status"] == "EXITED"


def doc_copy(job: dict[str, Any]) -> dict[str, Any]:
    """The control document as a client would resend it."""
    return json.loads(json.dumps(job))


async def test_local_concurrency_limit(settings: JIDSettings, auth, doc) -> None:
    limited = settings.model_copy(update={"local_max_parallel": 1})
    async with running_app(limited) as client:
        first = await start(client, doc("Sleeper"), auth)
        second = await start(client, doc(), auth)
        while first["status"] == "SUBMITTED":
            r = await client.post(f"{BASE}/wait", json={"jobs": [first], "timeout": 5},
                                  headers=auth)
            first = r.json()["value"][0]
        # the slot is taken: the second job waits, queued
        r = await client.post(f"{BASE}/wait", json={"jobs": [second], "timeout": 0.5},
                              headers=auth)
        assert r.json()["value"][0]["status"] == "SUBMITTED"
        assert r.json()["value"][0]["raw_status"] == "PENDING"
        await client.post(f"{BASE}/exp1/kill_job", json=first, headers=auth)
        second = await wait_final(client, second, auth)
        assert second["status"] == "DONE"


async def test_kill_queued_job(settings: JIDSettings, auth, doc) -> None:
    limited = settings.model_copy(update={"local_max_parallel": 1})
    async with running_app(limited) as client:
        first = await start(client, doc("Sleeper"), auth)
        queued = await start(client, doc("Sleeper"), auth)
        r = await client.post(f"{BASE}/exp1/kill_job", json=queued, headers=auth)
        assert r.json()["value"]["status"] == "EXITED"
        r = await client.post(f"{BASE}/exp1/kill_job", json=first, headers=auth)
        assert r.json()["value"]["status"] == "EXITED"


async def test_integer_root_id_is_accepted_and_listed(client, auth, doc) -> None:
    job = await start(client, doc(arp_root_job_id=4711), auth)
    assert job["arp_root_job_id"] == 4711
    r = await client.get(f"{BASE}/jobs", params={"arp_root_job_id": "4711"}, headers=auth)
    assert [d["_id"] for d in r.json()["value"]] == [job["_id"]]


async def test_retry_of_a_stored_job_needs_no_revalidation(client, auth, doc, config_root) -> None:
    """ARP retries start_job: the stored job comes back even if its config has gone since."""
    extra = config_root / "extra.yaml"
    extra.write_text("title: t\n")
    control = doc(params=f"--taskname Tester --config {extra}")
    first = await start(client, control, auth)
    extra.unlink()
    again = await start(client, control, auth)
    assert again["tool_id"] == first["tool_id"]
    fresh = dict(control, _id="another-id")
    r = await client.post(f"{BASE}/exp1/start_job", json=fresh, headers=auth)
    assert r.status_code == 422 and "does not exist" in r.json()["error"]
    # the token rules still apply to a retry
    r = await client.post(f"{BASE}/exp1/start_job", json=control,
                          headers={"Authorization": "Bearer x"})
    assert r.status_code == 401


async def test_path_and_document_experiment_must_match(client, token, doc) -> None:
    headers = {"Authorization": f"Bearer {token(experiments=['exp1', 'exp2'])}"}
    control = await start(client, doc(), headers)
    for endpoint in ("start_job", "render_job", "kill_job", "job_log_file"):
        r = await client.post(f"{BASE}/exp2/{endpoint}", json=control, headers=headers)
        assert r.status_code == 422, (endpoint, r.text)
        assert "path says 'exp2'" in r.json()["error"]


async def test_list_jobs_refuses_unknown_filters(client, auth) -> None:
    r = await client.get(f"{BASE}/jobs", params={"experimnet": "exp1"}, headers=auth)
    assert r.status_code == 422
    assert "'experimnet'" in r.json()["error"]


async def test_job_log_file_of_a_long_log_is_its_end(settings, auth, doc) -> None:
    small = settings.model_copy(update={"log_max_bytes": 1024})
    async with running_app(small) as client:
        job = await wait_final(client, await start(client, doc(), auth), auth)
        record = client.app.state.service.store.get(job["_id"])
        with open(record.log_path, "a") as fh:
            fh.write("".join(f"line {i:05d} ✓\n" for i in range(400)) + "Task failed: FINAL\n")
        text = (await client.post(f"{BASE}/exp1/job_log_file", json=job,
                                  headers=auth)).json()["value"]
        size = Path(record.log_path).stat().st_size
        assert text.startswith("[... the first ") and "bytes of the log omitted" in text
        assert text.endswith("line 00399 ✓\nTask failed: FINAL\n")
        assert "fake task Tester" not in text  # the head was dropped
        kept = text.split("\n", 1)[1]
        assert len(kept.encode()) <= 1024 < size


async def test_oversized_body_is_refused(client, auth) -> None:
    body = b"[" + b" " * (17 * 1024 * 1024) + b"]"
    r = await client.post(f"{BASE}/job_statuses", content=body,
                          headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["success"] is False and "request body above" in r.json()["error"]


async def test_run_num_as_lute_launcher_sends_it(client, auth, doc) -> None:
    """LUTE's launch_airflow.py sends run_id = "<RUN>_<UTC isoformat()>", colons included."""
    job = await wait_final(client, await start(client, doc(run_num="12_2026-01-21T08:01:17.123456"),
                                              auth), auth)
    assert job["status"] == "DONE"
    r = await client.post(f"{BASE}/exp1/job_log_file", json=job, headers=auth)
    assert "RUN_NUM=12_2026-01-21T08:01:17.123456" in r.json()["value"]


async def test_oversized_chunked_body_is_refused_while_it_arrives(client, auth) -> None:
    chunk = b" " * (1024 * 1024)
    sent = 0

    async def body():
        nonlocal sent
        yield b"["
        for _ in range(40):  # 40 MiB offered without a Content-Length
            sent += 1
            yield chunk
        yield b"]"

    r = await client.post(f"{BASE}/job_statuses", content=body(),
                          headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json() == {"success": False, "value": None,
                        "error": "request body above 16777216 bytes"}
    assert sent <= 17  # reading stopped just past the 16 MiB limit


async def test_chunked_body_under_the_limit_is_accepted(client, auth, doc) -> None:
    payload = json.dumps([doc()] * 3).encode()

    async def body():
        for i in range(0, len(payload), 100):
            yield payload[i:i + 100]

    r = await client.post(f"{BASE}/job_statuses", content=body(),
                          headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert len(r.json()["value"]) == 3


async def test_typical_duration_of_a_step_from_its_done_jobs(client, auth, doc, token,
                                                             config_root) -> None:
    url = f"{BASE}/exp1/typical_duration"
    step = doc()
    r = await client.post(url, json=step, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["value"] == {"task": "Tester", "runs": 0, "median_seconds": None}
    for _ in range(2):
        done = await wait_final(client, await start(client, doc(), auth), auth)
        assert done["status"] == "DONE"
    failed = await wait_final(client, await start(client, doc("FailingTester"), auth), auth)
    assert failed["status"] == "FAILED"
    value = (await client.post(url, json=step, headers=auth)).json()["value"]
    assert value["runs"] == 2 and 0 < value["median_seconds"] < 30
    # only DONE jobs of the same task with the same parameters count
    value = (await client.post(url, json=doc("FailingTester"), headers=auth)).json()["value"]
    assert value["runs"] == 0
    (config_root / "other.yaml").write_text("title: other\n")
    other_config = doc(params=f"--taskname Tester --config {config_root / 'other.yaml'}")
    value = (await client.post(url, json=other_config, headers=auth)).json()["value"]
    assert value["runs"] == 0
    listed = (await client.get(f"{BASE}/jobs", headers=auth)).json()["value"]
    assert len(listed) == 3  # asking submitted nothing
    other = {"Authorization": f"Bearer {token(experiments=['exp2'])}"}
    assert (await client.post(url, json=step, headers=other)).status_code == 403
    bad = await client.post(f"{BASE}/exp2/typical_duration", json=step,
                            headers={"Authorization": f"Bearer {token(experiments='*')}"})
    assert bad.status_code == 422 and "experiment" in bad.json()["error"]
