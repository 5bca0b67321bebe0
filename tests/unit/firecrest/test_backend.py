"""The firecrest backend against a respx-mocked FirecREST v2 (real request/response shapes)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import httpx
import pytest
import requests
import respx
from firecrest.FirecrestException import ClientsCredentialsException

from jid_service.backends.base import (
    BackendError,
    BackendUnavailable,
    JobStatus,
    SubmissionOutcomeUnknown,
    SubmissionRejected,
)
from jid_service.backends.firecrest import FirecrestBackend, job_name

from .conftest import (
    CHANNEL_CLOSED,
    JOBS_URL,
    SYSTEM,
    VIEW_URL,
    WORK_DIR,
    FakeFiles,
    StubTokenSource,
    firecrest_error,
    listed_job,
    make_spec,
    route_files,
    sbatch_failure,
)

LOG_NAME = re.compile(re.escape(WORK_DIR) + r"/Tester_xpptut15_r0012_\d{4}-\d\d-\d\dT\d{6}_%j\.out")


def _error(status: int, message: str) -> httpx.Response:
    return httpx.Response(status, json={"errorType": "error", "message": message})


# -- submit -----------------------------------------------------------------


async def test_submit_posts_the_batch_script(router: respx.MockRouter, backend: FirecrestBackend):
    route = router.post(JOBS_URL).mock(return_value=httpx.Response(201, json={"jobId": "22"}))
    spec = make_spec(debug=True)

    submitted = await backend.submit(spec)

    assert submitted.tool_id == "22"
    assert route.call_count == 1
    request = route.calls.last.request
    assert request.headers["Authorization"] == "Bearer tok-1"
    job = json.loads(request.content)["job"]
    assert job["workingDirectory"] == WORK_DIR
    assert job["env"] == {"EXPERIMENT": "xpptut15", "RUN_NUM": "12"}
    assert job["name"] == job_name(spec)
    assert LOG_NAME.fullmatch(job["standardOutput"])
    assert job["standardError"] == job["standardOutput"]
    script = job["script"].splitlines()
    assert script[0] == "#!/bin/bash"
    directives = [line for line in script if line.startswith("#SBATCH ")]
    assert directives == [
        f"#SBATCH --job-name={job_name(spec)}",
        f"#SBATCH --output={job['standardOutput']}",
        f"#SBATCH --error={job['standardOutput']}",
        "#SBATCH --partition=debug",
        "#SBATCH --ntasks=2",
        "#SBATCH --time=10",
    ]
    # sbatch reads directives only before the first command
    assert script[1 : 1 + len(directives)] == directives
    assert "export EXPERIMENT=xpptut15" in script
    assert "export RUN_NUM=12" in script
    assert script[-1] == (
        "exec /opt/lute/bin/lute-run-task -c /sdf/data/lute/config/test.yaml -t Tester --debug"
    )
    assert submitted.log_path == job["standardOutput"].replace("%j", "22")


async def test_submit_accepts_an_integer_job_id(router: respx.MockRouter, backend):
    router.post(JOBS_URL).mock(return_value=httpx.Response(201, json={"jobId": 7}))
    submitted = await backend.submit(make_spec())
    assert submitted.tool_id == "7"
    assert submitted.log_path is not None and submitted.log_path.endswith("_7.out")


async def test_job_names_differ_per_job_key():
    assert job_name(make_spec(job_key="a")) != job_name(make_spec(job_key="b"))
    assert job_name(make_spec(job_key="a")) == job_name(make_spec(job_key="a"))


async def test_sbatch_refusal_is_rejected_after_one_attempt(router: respx.MockRouter, backend):
    # the real server answers every failed sbatch with a 500
    route = router.post(JOBS_URL).mock(return_value=sbatch_failure(
        "sbatch: error: invalid partition specified: nosuchpart",
        "sbatch: error: Batch job submission failed: Invalid partition name specified",
    ))
    with pytest.raises(SubmissionRejected) as err:
        await backend.submit(make_spec())
    assert route.call_count == 1  # definite: not retried
    assert str(err.value) == (
        "sbatch refused the job: sbatch: error: invalid partition specified: nosuchpart; "
        "sbatch: error: Batch job submission failed: Invalid partition name specified"
    )


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (firecrest_error(400, "Field required: job.script", error_type="validation"),
         "Field required"),
        (firecrest_error(403, "QOSMaxSubmitJobPerUserLimit", caused_by=["qos normal"]),
         r"QOSMaxSubmitJobPerUserLimit \(caused by: qos normal\)"),
        (firecrest_error(404, "System 'cluster' not found"), "not found"),
    ],
)
async def test_definite_refusals_are_rejected_once(
    router: respx.MockRouter, backend, answer, message
):
    route = router.post(JOBS_URL).mock(return_value=answer)
    with pytest.raises(SubmissionRejected, match=message):
        await backend.submit(make_spec())
    assert route.call_count == 1


@pytest.mark.parametrize(
    "changes",
    [
        {"experiment": "xpp'; touch /tmp/pwned; '"},
        {"run": "12\nexport X=1"},
        {"slurm_args": ("--partition=debug\n#SBATCH --uid=0",)},
        {"slurm_args": ("--comment=a b",)},
        {"slurm_args": ("--constraint=a#b",)},
    ],
)
async def test_unsafe_values_are_rejected_before_any_request(
    router: respx.MockRouter, backend, changes
):
    route = router.post(JOBS_URL).mock(return_value=httpx.Response(201, json={"jobId": "1"}))
    with pytest.raises(SubmissionRejected):
        await backend.submit(make_spec(**changes))
    assert route.call_count == 0


async def test_a_500_after_the_job_was_created_adopts_it(router: respx.MockRouter, backend):
    """FirecREST's SSH command timeout cut sbatch after Slurm queued the job."""
    spec = make_spec()
    created: list[dict[str, object]] = []

    def submit(request: httpx.Request) -> httpx.Response:
        created.append(listed_job("73", "PENDING", name=json.loads(request.content)["job"]["name"]))
        return firecrest_error(500, CHANNEL_CLOSED)

    post = router.post(JOBS_URL).mock(side_effect=submit)
    router.get(JOBS_URL).mock(side_effect=lambda _r: httpx.Response(200, json={"jobs": created}))
    submitted = await backend.submit(spec)
    assert submitted.tool_id == "73"
    assert post.call_count == 1  # never sent twice
    assert len(created) == 1


async def test_a_job_listed_late_is_adopted(router: respx.MockRouter, backend):
    """sbatch still waits for the controller when the 500 comes back; the job shows up later."""
    spec = make_spec()
    post = router.post(JOBS_URL).mock(return_value=firecrest_error(500, CHANNEL_CLOSED))
    listing = router.get(JOBS_URL).mock(side_effect=[
        httpx.Response(200, json={"jobs": []}),
        httpx.Response(200, json={"jobs": [listed_job("74", "PENDING", name=job_name(spec))]}),
    ])
    assert (await backend.submit(spec)).tool_id == "74"
    assert (post.call_count, listing.call_count) == (1, 2)


async def test_unknown_outcome_is_not_resent_and_the_next_submit_looks_first(
    router: respx.MockRouter, backend
):
    spec = make_spec()
    post = router.post(JOBS_URL).mock(side_effect=[
        httpx.ReadTimeout("no answer"), httpx.Response(201, json={"jobId": "41"})])
    listing = router.get(JOBS_URL).mock(return_value=httpx.Response(
        200, json={"jobs": [listed_job("9", "RUNNING", name="other")]}))
    with pytest.raises(SubmissionOutcomeUnknown) as err:
        await backend.submit(spec)
    assert post.call_count == 1
    assert listing.call_count == 3  # a look per attempt of the retry policy
    assert err.value.retry_after >= 30
    # the client's retry: looked up first, still not listed, so submitted once
    assert (await backend.submit(spec)).tool_id == "41"
    assert (post.call_count, listing.call_count) == (2, 4)


async def test_retry_of_an_unknown_outcome_adopts_the_job_listed_meanwhile(
    router: respx.MockRouter, backend
):
    spec = make_spec()
    post = router.post(JOBS_URL).mock(return_value=firecrest_error(502, "Bad Gateway"))
    jobs: list[dict[str, object]] = []
    router.get(JOBS_URL).mock(side_effect=lambda _r: httpx.Response(200, json={"jobs": jobs}))
    with pytest.raises(SubmissionOutcomeUnknown):
        await backend.submit(spec)
    jobs.append(listed_job("75", "RUNNING", name=job_name(spec)))
    assert (await backend.submit(spec)).tool_id == "75"
    assert post.call_count == 1


async def test_retry_of_an_unknown_outcome_waits_while_nothing_can_be_listed(
    router: respx.MockRouter, backend
):
    spec = make_spec()
    post = router.post(JOBS_URL).mock(return_value=firecrest_error(500, CHANNEL_CLOSED))
    router.get(JOBS_URL).mock(return_value=firecrest_error(
        500, "Error executing Slurm command.", caused_by=["Slurm accounting storage is disabled"]))
    for _ in range(2):
        with pytest.raises(SubmissionOutcomeUnknown):
            await backend.submit(spec)
    assert post.call_count == 1


@pytest.mark.parametrize(
    "first",
    [
        httpx.ConnectError("refused"),
        firecrest_error(
            503, "The scheduler service for the requested system (cluster) is unhealthy."),
        firecrest_error(429, "Too many requests"),
    ],
)
async def test_failures_after_which_nothing_ran_are_resent(
    router: respx.MockRouter, backend, first
):
    post = router.post(JOBS_URL).mock(
        side_effect=[first, httpx.Response(201, json={"jobId": "23"})])
    listing = router.get(JOBS_URL).mock(return_value=httpx.Response(200, json={"jobs": []}))
    assert (await backend.submit(make_spec())).tool_id == "23"
    assert (post.call_count, listing.call_count) == (2, 0)


async def test_unanswered_submit_finds_the_job_instead_of_resubmitting(
    router: respx.MockRouter, backend
):
    spec = make_spec()
    post = router.post(JOBS_URL).mock(side_effect=httpx.ReadTimeout("no answer"))
    listing = router.get(JOBS_URL).mock(
        return_value=httpx.Response(
            200, json={"jobs": [listed_job("40", "PENDING", name=job_name(spec))]}
        )
    )
    submitted = await backend.submit(spec)
    assert submitted.tool_id == "40"
    assert post.call_count == 1  # never sent twice
    assert listing.call_count == 1


async def test_find_submitted_recovers_the_listed_job_with_its_log(
    router: respx.MockRouter, backend
):
    spec = make_spec(job_key="interrupted-1")
    out = f"{WORK_DIR}/Tester_xpptut15_r0012_2024-05-01T100000_%j.out"
    router.get(JOBS_URL).mock(return_value=httpx.Response(200, json={"jobs": [
        listed_job("39", "COMPLETED", name=job_name(make_spec(job_key="someone-else"))),
        listed_job("40", "PENDING", name=job_name(spec)),
    ]}))
    router.get(f"{JOBS_URL}/40/metadata").mock(return_value=httpx.Response(
        200, json={"jobs": [{"jobId": "40", "standardOutput": out}]}))
    found = await backend.find_submitted("interrupted-1")
    assert found is not None
    assert (found.tool_id, found.log_path) == ("40", out.replace("%j", "40"))


async def test_find_submitted_of_an_unlisted_key_is_none(router: respx.MockRouter, backend):
    router.get(JOBS_URL).mock(return_value=httpx.Response(
        200, json={"jobs": [listed_job("9", "RUNNING", name="Tester-0123456789ab")]}))
    assert await backend.find_submitted("never-submitted") is None


async def test_find_submitted_cannot_tell_when_the_listing_fails(
    router: respx.MockRouter, backend
):
    # "cannot tell" must not read as "never submitted": that would submit twice
    router.get(JOBS_URL).mock(return_value=httpx.Response(500, json={"message": "down"}))
    with pytest.raises(BackendUnavailable):
        await backend.find_submitted("interrupted-1")


async def test_submit_without_job_id_is_an_error(router: respx.MockRouter, backend):
    router.post(JOBS_URL).mock(return_value=httpx.Response(201, json={"jobId": None}))
    with pytest.raises(BackendError, match="no job id"):
        await backend.submit(make_spec())


# -- the batch script, run by a real bash -------------------------------------


async def test_batch_script_runs_with_every_value_intact(tmp_path: Path, tokens):
    """Shell metacharacters in paths reach the launcher as data, never as code."""
    import subprocess

    marker = tmp_path / "pwned"
    launcher = tmp_path / "launcher.sh"
    launcher.write_text(
        '#!/bin/bash\nprintf "%s\\n" "EXPERIMENT=$EXPERIMENT" "RUN_NUM=$RUN_NUM" "$@"\n'
    )
    launcher.chmod(0o755)
    evil_config = Path(f"/cfg/a b/$(touch {marker})/`touch {marker}`;x'y\".yaml")
    be = FirecrestBackend(
        firecrest_url="https://firecrest.example.org",
        system=SYSTEM,
        work_dir=WORK_DIR,
        token_source=tokens,
        launcher=str(launcher),
    )
    try:
        script = be.batch_script(make_spec(config_path=evil_config, run="12_2024-05-01"))
    finally:
        await be.aclose()
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "EXPERIMENT=xpptut15",
        "RUN_NUM=12_2024-05-01",
        "-c",
        str(evil_config),
        "-t",
        "Tester",
    ]
    assert not marker.exists()


async def test_render_is_the_script_submit_sends(router: respx.MockRouter, backend):
    route = router.post(JOBS_URL).mock(return_value=httpx.Response(201, json={"jobId": "5"}))
    spec = make_spec()
    rendering = backend.render(spec)
    assert route.call_count == 0  # a dry run submits nothing
    await backend.submit(spec)
    sent = json.loads(route.calls.last.request.content)["job"]["script"]
    # the two differ at most in the timestamp of the log file name
    stamp = re.compile(r"\d{4}-\d\d-\d\dT\d{6}")
    assert rendering.backend == "firecrest"
    assert rendering.script is not None
    assert stamp.sub("DATE", rendering.script) == stamp.sub("DATE", sent)
    assert rendering.argv == [
        "/opt/lute/bin/lute-run-task",
        "-c",
        "/sdf/data/lute/config/test.yaml",
        "-t",
        "Tester",
    ]
    assert shlex.split(rendering.script.splitlines()[-1])[1:] == rendering.argv


# -- statuses ---------------------------------------------------------------


async def test_statuses_of_many_jobs_take_one_listing_call(router: respx.MockRouter, backend):
    route = router.get(JOBS_URL).mock(
        return_value=httpx.Response(
            200,
            json={
                "jobs": [
                    listed_job("101", "PENDING", exit_code=0),
                    listed_job("102", "RUNNING", exit_code=0),
                    listed_job("103", "COMPLETED", exit_code=0),
                    listed_job("104", "FAILED", exit_code=3, signal=0),
                    listed_job("105", "CANCELLED by 1234", exit_code=0, signal=15),
                    listed_job("106", "TIMEOUT", exit_code=0, signal=0),
                    listed_job("107", ["OUT_OF_MEMORY"], exit_code=0, signal=9),
                    listed_job("999", "RUNNING"),  # someone else's job of this account
                ]
            },
        )
    )
    asked = ["101", "102", "103", "104", "105", "106", "107"]

    states = await backend.statuses(asked)

    assert route.call_count == 1
    assert len(router.calls) == 1  # nothing else was asked
    assert set(states) == set(asked)
    expected = {
        "101": (JobStatus.SUBMITTED, "PENDING", None),
        "102": (JobStatus.RUNNING, "RUNNING", None),
        "103": (JobStatus.DONE, "COMPLETED", 0),
        "104": (JobStatus.FAILED, "FAILED", 3),
        "105": (JobStatus.EXITED, "CANCELLED by 1234", 143),
        "106": (JobStatus.FAILED, "TIMEOUT", 0),
        "107": (JobStatus.FAILED, "OUT_OF_MEMORY", 137),
    }
    for tool_id, (status, raw, code) in expected.items():
        state = states[tool_id]
        assert (state.tool_id, state.status, state.raw_status, state.exit_code) == (
            tool_id,
            status,
            raw,
            code,
        )


async def test_jobs_missing_from_the_listing_are_looked_up_one_by_one(
    router: respx.MockRouter, backend
):
    router.get(JOBS_URL).mock(
        return_value=httpx.Response(200, json={"jobs": [listed_job("1", "RUNNING")]})
    )
    old = router.get(f"{JOBS_URL}/2").mock(
        return_value=httpx.Response(200, json={"jobs": [listed_job("2", "COMPLETED")]})
    )
    gone = router.get(f"{JOBS_URL}/3").mock(
        return_value=httpx.Response(404, json={"detail": "Job not found."})
    )
    states = await backend.statuses(["1", "2", "3"])
    assert {k: v.status for k, v in states.items()} == {
        "1": JobStatus.RUNNING,
        "2": JobStatus.DONE,
    }
    assert (old.call_count, gone.call_count) == (1, 1)


async def test_lookups_per_call_are_bounded_and_take_turns(router: respx.MockRouter, tokens):
    be = FirecrestBackend(
        firecrest_url="https://firecrest.example.org",
        system=SYSTEM,
        work_dir=WORK_DIR,
        token_source=tokens,
        missing_lookups=2,
    )
    router.get(JOBS_URL).mock(return_value=httpx.Response(200, json={"jobs": []}))
    lookups = router.get(url__regex=rf"{JOBS_URL}/\d+$").mock(
        return_value=httpx.Response(404, json={"detail": "Job not found."})
    )
    try:
        await be.statuses(["11", "12", "13"])
        first = {call.request.url.path.rsplit("/", 1)[1] for call in lookups.calls}
        await be.statuses(["11", "12", "13"])
        second = {call.request.url.path.rsplit("/", 1)[1] for call in lookups.calls[2:]}
    finally:
        await be.aclose()
    assert lookups.call_count == 4
    assert len(first) == 2 and len(second) == 2
    assert first | second == {"11", "12", "13"}


async def test_a_failing_lookup_leaves_the_job_out(router: respx.MockRouter, backend):
    router.get(JOBS_URL).mock(return_value=httpx.Response(200, json={"jobs": []}))
    router.get(f"{JOBS_URL}/5").mock(return_value=_error(500, "sacct failed"))
    assert await backend.statuses(["5"]) == {}


async def test_statuses_of_no_jobs_make_no_call(router: respx.MockRouter, backend):
    route = router.get(JOBS_URL).mock(return_value=httpx.Response(200, json={"jobs": []}))
    assert await backend.statuses([]) == {}
    assert route.call_count == 0


async def test_statuses_with_null_job_list(router: respx.MockRouter, backend):
    router.get(JOBS_URL).mock(return_value=httpx.Response(200, json={"jobs": None}))
    router.get(f"{JOBS_URL}/1").mock(return_value=httpx.Response(404, json={"detail": "no"}))
    assert await backend.statuses(["1"]) == {}


async def test_listing_500_then_success(router: respx.MockRouter, backend):
    route = router.get(JOBS_URL).mock(
        side_effect=[
            _error(500, "Error executing Slurm command."),
            httpx.Response(200, json={"jobs": [listed_job("1", "RUNNING")]}),
        ]
    )
    states = await backend.statuses(["1"])
    assert states["1"].status is JobStatus.RUNNING
    assert route.call_count == 2


async def test_persistent_500_is_unavailable_after_the_budget(router: respx.MockRouter, backend):
    route = router.get(JOBS_URL).mock(return_value=_error(500, "slurmctld is down"))
    with pytest.raises(BackendUnavailable, match=r"after 3 attempt.*slurmctld is down") as err:
        await backend.statuses(["1"])
    assert route.call_count == 3  # max_attempts, then it stops
    assert err.value.retry_after > 0


async def test_retry_after_of_a_503_is_passed_on(router: respx.MockRouter, backend):
    router.get(JOBS_URL).mock(
        return_value=httpx.Response(503, headers={"Retry-After": "17"}, json={"message": "busy"})
    )
    with pytest.raises(BackendUnavailable) as err:
        await backend.statuses(["1"])
    assert err.value.retry_after == 17


@pytest.mark.parametrize(
    "failure", [httpx.ReadTimeout("read timed out"), httpx.ConnectError("refused")]
)
async def test_timeouts_and_connection_errors_are_retried_then_unavailable(
    router: respx.MockRouter, backend, failure
):
    route = router.get(JOBS_URL).mock(side_effect=failure)
    with pytest.raises(BackendUnavailable, match=type(failure).__name__):
        await backend.statuses(["1"])
    assert route.call_count == 3


async def test_timeout_then_success(router: respx.MockRouter, backend):
    route = router.get(JOBS_URL).mock(
        side_effect=[
            httpx.ReadTimeout("slow"),
            httpx.Response(200, json={"jobs": [listed_job("1", "COMPLETED")]}),
        ]
    )
    assert (await backend.statuses(["1"]))["1"].status is JobStatus.DONE
    assert route.call_count == 2


async def test_retry_budget_in_time_bounds_the_attempts(router: respx.MockRouter, tokens):
    be = FirecrestBackend(
        firecrest_url="https://firecrest.example.org",
        system=SYSTEM,
        work_dir=WORK_DIR,
        token_source=tokens,
        max_attempts=50,
        retry_budget=0.0,
        backoff_initial=0.001,
    )
    route = router.get(JOBS_URL).mock(return_value=_error(502, "bad gateway"))
    try:
        with pytest.raises(BackendUnavailable):
            await be.statuses(["1"])
    finally:
        await be.aclose()
    assert route.call_count == 1


# -- tokens -----------------------------------------------------------------


async def test_401_refreshes_the_token_once_then_retries(
    router: respx.MockRouter, backend, tokens: StubTokenSource
):
    route = router.get(JOBS_URL).mock(
        side_effect=[
            _error(401, "Token expired"),
            httpx.Response(200, json={"jobs": [listed_job("1", "RUNNING")]}),
        ]
    )
    states = await backend.statuses(["1"])
    assert states["1"].status is JobStatus.RUNNING
    assert tokens.issued == 2
    assert [call.request.headers["Authorization"] for call in route.calls] == [
        "Bearer tok-1",
        "Bearer tok-2",
    ]


async def test_a_cached_token_is_reused(router: respx.MockRouter, backend, tokens):
    router.get(JOBS_URL).mock(
        return_value=httpx.Response(200, json={"jobs": [listed_job("1", "RUNNING")]})
    )
    await backend.statuses(["1"])
    await backend.statuses(["1"])
    assert tokens.issued == 1


async def test_401_twice_is_unavailable_without_looping(
    router: respx.MockRouter, backend, tokens: StubTokenSource
):
    route = router.get(JOBS_URL).mock(return_value=_error(401, "Invalid token"))
    with pytest.raises(BackendUnavailable, match="refused twice"):
        await backend.statuses(["1"])
    assert route.call_count == 2
    assert tokens.issued == 2


class RefusingTokenSource:
    """A token server that rejects the client credentials."""

    def get_access_token(self) -> str:
        resp = requests.Response()
        resp.status_code = 401
        resp._content = b'{"error": "unauthorized_client"}'
        raise ClientsCredentialsException([resp])


class UnreachableTokenSource:
    calls = 0

    def get_access_token(self) -> str:
        type(self).calls += 1
        raise requests.ConnectionError("token server down")


async def test_refused_client_credentials_name_the_variables(router: respx.MockRouter):
    be = FirecrestBackend(
        firecrest_url="https://firecrest.example.org",
        system=SYSTEM,
        work_dir=WORK_DIR,
        token_source=RefusingTokenSource(),
    )
    route = router.get(JOBS_URL).mock(return_value=httpx.Response(200, json={"jobs": []}))
    try:
        with pytest.raises(BackendUnavailable, match="FIRECREST_CLIENT_ID"):
            await be.statuses(["1"])
    finally:
        await be.aclose()
    assert route.call_count == 0


async def test_unreachable_token_server_is_retried_then_unavailable(router: respx.MockRouter):
    be = FirecrestBackend(
        firecrest_url="https://firecrest.example.org",
        system=SYSTEM,
        work_dir=WORK_DIR,
        token_source=UnreachableTokenSource(),
        max_attempts=2,
        backoff_initial=0.001,
    )
    try:
        with pytest.raises(BackendUnavailable, match="token server"):
            await be.statuses(["1"])
    finally:
        await be.aclose()
    assert UnreachableTokenSource.calls == 2


# -- logs -------------------------------------------------------------------


LOG = f"{WORK_DIR}/Tester_xpptut15_r0012_2024-05-01T100000_22.out"


def non_ascii_log(lines: int = 12) -> bytes:
    """A log of 1-, 2-, 3- and 4-byte characters."""
    return "".join(f"Tester: étape {i} — données ✓ 𝛼β\n" for i in range(lines)).encode()


async def read_in_chunks(backend: FirecrestBackend, limit: int) -> tuple[str, int]:
    """Follow next_offset like a JID client until the log's end: (text, reads)."""
    parts, offset, reads = [], 0, 0
    while True:
        chunk = await backend.read_log("22", LOG, offset=offset, limit=limit)
        reads += 1
        assert chunk.offset == offset
        parts.append(chunk.text)
        read, offset = chunk.next_offset - chunk.offset, chunk.next_offset
        if read == 0 or read < limit - 3:  # how the JID tells the end of the log
            return "".join(parts), reads


@pytest.mark.parametrize("limit", [1, 7, 64, 100, 1024 * 1024])
async def test_non_ascii_log_reads_byte_exact_in_chunks(router: respx.MockRouter, backend, limit):
    files = FakeFiles()
    files.files[LOG] = data = non_ascii_log()
    route_files(router, files)
    text, _ = await read_in_chunks(backend, limit)
    assert text.encode() == data
    assert files.downloads == 0  # UTF-8 logs need no download
    assert all(offset % size == 0 for size, offset in files.views)  # whole blocks only


async def test_a_genuine_replacement_character_is_read_exactly(
    router: respx.MockRouter, backend
):
    files = FakeFiles()
    files.files[LOG] = data = non_ascii_log(3) + "bad input: \ufffd\n".encode() + non_ascii_log(2)
    route_files(router, files)
    text, _ = await read_in_chunks(backend, 64)
    assert text.encode() == data


async def test_a_read_from_inside_a_character_gives_what_a_local_read_gives(
    router: respx.MockRouter, backend
):
    files = FakeFiles()
    files.files[LOG] = data = "aé€b".encode()
    route_files(router, files)
    chunk = await backend.read_log("22", LOG, offset=2, limit=100)  # inside "é"
    assert chunk.text == data[2:].decode(errors="replace")
    assert chunk.next_offset == len(data)


async def test_a_log_above_5_mib_reads_whole_and_in_chunks(router: respx.MockRouter, backend):
    files = FakeFiles()
    line = "Tester: frame 000123 — peaks 17 ✓\n".encode()
    data = line * (6_900_000 // len(line) + 1)
    files.files[LOG] = data
    route_files(router, files)
    whole = await backend.read_log("22", LOG, offset=0, limit=16 * 1024 * 1024)
    assert whole.text.encode() == data
    assert whole.next_offset == len(data)
    sizes = {size for size, _ in files.views}
    assert max(sizes) * 2 <= 5 * 1024 * 1024  # the server's 2 x size window fits its buffer
    text, reads = await read_in_chunks(backend, 1024 * 1024)
    assert text.encode() == data and reads == 7


async def test_a_413_halves_the_block(router: respx.MockRouter, backend):
    files = FakeFiles(buffer=1024 * 1024)  # a site with a 1 MiB output buffer
    files.files[LOG] = data = bytes(range(32, 127)) * 30000
    route_files(router, files)
    chunk = await backend.read_log("22", LOG, offset=0, limit=len(data) + 10)
    assert chunk.text.encode() == data
    assert max(size for size, _ in files.views[-3:]) <= 512 * 1024


@pytest.mark.parametrize("limit", [7, 64, 4096])
async def test_a_log_that_is_not_utf8_reads_byte_exact(router: respx.MockRouter, backend, limit):
    files = FakeFiles()
    files.files[LOG] = data = "Tester: température élevée, ½ fini\n".encode("latin-1") * 20
    route_files(router, files)
    text, _ = await read_in_chunks(backend, limit)
    assert text == data.decode("utf-8", errors="replace")
    assert files.downloads >= 1  # the raw bytes came from ops/download


async def test_a_large_log_that_is_not_utf8_counts_one_byte_per_bad_byte(
    router: respx.MockRouter, backend
):
    files = FakeFiles(buffer=64 * 1024)
    files.files[LOG] = data = b"caf\xe9 ok\n" * 10000  # too large to download
    route_files(router, files)
    chunk = await backend.read_log("22", LOG, offset=0, limit=len(data) + 10)
    assert chunk.next_offset == len(data)
    assert chunk.text == data.decode("utf-8", errors="replace")


async def test_read_log_of_a_missing_file_is_empty(router: respx.MockRouter, backend):
    router.get(VIEW_URL).mock(return_value=_error(404, "No such file or directory"))
    chunk = await backend.read_log("22", f"{WORK_DIR}/x.out", offset=5, limit=100)
    assert (chunk.text, chunk.offset, chunk.next_offset) == ("", 5, 5)


async def test_read_log_without_a_path_asks_the_job_metadata(router: respx.MockRouter, backend):
    out = f"{WORK_DIR}/Tester_xpptut15_r0012_2024-05-01_10-00-00_%j.out"
    router.get(f"{JOBS_URL}/22/metadata").mock(
        return_value=httpx.Response(
            200, json={"jobs": [{"jobId": "22", "script": "#!/bin/bash", "standardOutput": out}]}
        )
    )
    # an older server's view answers a bare string
    view = router.get(VIEW_URL).mock(return_value=httpx.Response(200, json={"output": "hi"}))
    chunk = await backend.read_log("22", None, offset=0, limit=10)
    assert chunk.text == "hi"
    assert view.calls.last.request.url.params["path"] == out.replace("%j", "22")


# -- cancel -----------------------------------------------------------------


async def test_cancel_deletes_the_job(router: respx.MockRouter, backend):
    route = router.delete(f"{JOBS_URL}/22").mock(return_value=httpx.Response(204))
    await backend.cancel("22")
    assert route.call_count == 1
    assert route.calls.last.request.headers["Authorization"] == "Bearer tok-1"


@pytest.mark.parametrize(
    "answer",
    [
        _error(
            500,
            "Unexpected Slurm command response. exit_status:0 std_err:scancel: error: Kill job "
            "error on job id 22: Job/step already completing or completed",
        ),
        httpx.Response(404, json={"detail": "Job not found"}),
    ],
)
async def test_cancelling_an_ended_job_is_not_an_error(router: respx.MockRouter, backend, answer):
    route = router.delete(f"{JOBS_URL}/22").mock(return_value=answer)
    await backend.cancel("22")
    assert route.call_count == 1  # no retry either


async def test_a_refused_cancel_is_not_retried(router: respx.MockRouter, backend):
    route = router.delete(f"{JOBS_URL}/22").mock(return_value=firecrest_error(
        500, "Unexpected Slurm command response. exit_status:1 std_err:scancel: error: "
        "Kill job error on job id 22: Access/permission denied\n"))
    with pytest.raises(BackendError, match="permission denied"):
        await backend.cancel("22")
    assert route.call_count == 1


def test_the_token_helper_logs_nothing():
    from jid_service.backends.firecrest.config import FirecrestConfig
    from jid_service.backends.firecrest.transport import client_credentials

    auth = client_credentials(FirecrestConfig(
        url="https://firecrest.example.org", client_id="c", client_secret="s",
        token_url="https://auth.example.org/token", system=SYSTEM, work_dir=WORK_DIR))
    assert auth.disable_client_logging is True


async def test_cancel_outage_is_unavailable(router: respx.MockRouter, backend):
    router.delete(f"{JOBS_URL}/22").mock(return_value=_error(500, "Connection refused"))
    with pytest.raises(BackendUnavailable):
        await backend.cancel("22")


async def test_cancel_refuses_a_malformed_id(router: respx.MockRouter, backend):
    with pytest.raises(BackendError):
        await backend.cancel("22/../../status")


# -- health -----------------------------------------------------------------


def _systems(healthy: bool = True, name: str = SYSTEM) -> dict[str, object]:
    return {
        "systems": [
            {
                "name": name,
                "ssh": {"host": "login", "port": 22},
                "scheduler": {"type": "slurm", "version": "22.05.8"},
                "servicesHealth": [
                    {
                        "serviceType": "scheduler",
                        "lastChecked": "2024-05-01T10:00:00Z",
                        "latency": 0.2,
                        "healthy": healthy,
                        "message": None if healthy else "slurmctld not responding",
                    },
                    {"serviceType": "ssh", "healthy": True},
                ],
                "probing": {"interval": 60, "timeout": 10},
                "fileSystems": [],
            }
        ]
    }


async def test_health_ok(router: respx.MockRouter, backend):
    route = router.get("/status/systems").mock(return_value=httpx.Response(200, json=_systems()))
    listing = router.get(JOBS_URL).mock(return_value=httpx.Response(200, json={"jobs": []}))
    await backend.health()
    await backend.health()
    assert route.call_count == 2
    assert listing.call_count == 1  # a recent listing is not repeated


async def test_health_reports_a_failing_listing(router: respx.MockRouter, backend):
    router.get("/status/systems").mock(return_value=httpx.Response(200, json=_systems()))
    router.get(JOBS_URL).mock(return_value=firecrest_error(
        500, "Error executing Slurm command.", caused_by=["Slurm accounting storage is disabled"]))
    with pytest.raises(BackendUnavailable, match=r"listings fail.*accounting storage is disabled"):
        await backend.health()


async def test_concurrent_health_checks_share_one_probe_and_a_failure_is_cached(
    router: respx.MockRouter, backend
):
    import asyncio

    route = router.get("/status/systems").mock(return_value=firecrest_error(
        503, "The scheduler service for the requested system (cluster) is unhealthy."))
    results = await asyncio.gather(*(backend.health() for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, BackendUnavailable) and "unhealthy" in str(r) for r in results)
    calls = route.call_count
    assert calls == 2  # one probe (two attempts) for all five callers
    with pytest.raises(BackendUnavailable, match="unhealthy"):
        await backend.health()
    assert route.call_count == calls  # answered from the cached failure


async def test_a_hung_gateway_fails_the_health_check_with_a_reason(
    router: respx.MockRouter, backend, monkeypatch
):
    import asyncio

    from jid_service.backends.firecrest import backend as backend_module

    monkeypatch.setattr(backend_module, "HEALTH_DEADLINE", 0.2)

    async def hang(_request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        raise AssertionError("unreachable")

    router.get("/status/systems").mock(side_effect=hang)
    with pytest.raises(BackendUnavailable) as err:
        await backend.health()
    assert "no answer" in str(err.value)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (httpx.Response(200, json=_systems(healthy=False)), "slurmctld not responding"),
        (httpx.Response(200, json=_systems(name="other")), "does not offer"),
        (_error(503, "maintenance"), "maintenance"),
    ],
)
async def test_health_down(router: respx.MockRouter, backend, answer, message):
    router.get("/status/systems").mock(return_value=answer)
    with pytest.raises(BackendUnavailable, match=message):
        await backend.health()


def test_a_kerberos_cache_is_refused_not_dropped(backend) -> None:
    # a cache on the JID's host means nothing on the remote system: say so
    # instead of running the job without the credentials it was given
    with pytest.raises(SubmissionRejected, match="Kerberos cache"):
        backend.render(make_spec(kerberos_cache="FILE:/var/lib/jid/krb5/cc_1"))
