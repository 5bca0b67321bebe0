"""The launcher's Airflow client: retries, error mapping, the token header, waiting for a DAG."""

import time

import httpx
import pytest

from lute.launch.airflow_api import (
    AirflowAuthError,
    AirflowClient,
    AirflowError,
    AirflowNotFoundError,
    AirflowUnreachableError,
)
from lute.launch.airflow_sqlite import CONNECT_ARGS as SQLITE_CONNECT_ARGS


def _client(handler, **kw) -> AirflowClient:
    return AirflowClient("http://airflow.test", transport=httpx.MockTransport(handler), **kw)


def test_connection_errors_are_retried_then_unreachable():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("refused", request=request)

    client = _client(handler, token="t", attempts=2)
    with pytest.raises(AirflowUnreachableError) as err:
        client.get_dag("lute_test")
    assert len(calls) == 2
    assert "ConnectError" in str(err.value)


def test_a_connection_error_then_an_answer_succeeds():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(200, json={"dag_id": "lute_test"})

    assert _client(handler, token="t").get_dag("lute_test") == {"dag_id": "lute_test"}
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, AirflowAuthError), (403, AirflowAuthError), (404, AirflowNotFoundError),
     (500, AirflowError)],
)
def test_http_errors_are_mapped_and_not_retried(status, error):
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(status, text="no")

    with pytest.raises(error) as err:
        _client(handler, token="t").dag_run("d", "r")
    assert err.value.status_code == status
    assert len(calls) == 1


@pytest.mark.parametrize("token", ["abc", "Bearer abc"])
def test_the_token_is_sent_as_one_bearer(token):
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(200, json={"tasks": []})

    _client(handler, token=token).tasks("d")
    assert seen == ["Bearer abc"]


def test_login_gets_a_token_from_auth_token():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/token":
            return httpx.Response(201, json={"access_token": "jwt-1"})
        assert request.headers["Authorization"] == "Bearer jwt-1"
        return httpx.Response(200, json={"tasks": [{"task_id": "a"}]})

    client = _client(handler, username="u", password="p")
    client.login()
    assert client.tasks("d") == [{"task_id": "a"}]


def test_wait_for_dag_polls_until_parsed_and_announces_once():
    answers = iter([404, 404, 200])
    waits = []

    def handler(request: httpx.Request) -> httpx.Response:
        status = next(answers)
        return httpx.Response(status, json={"dag_id": "d", "is_paused": True})

    dag = _client(handler, token="t").wait_for_dag("d", 30.0, on_wait=lambda: waits.append(1))
    assert dag["dag_id"] == "d"
    assert waits == [1]


def test_wait_for_dag_gives_up_with_not_found():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"detail": "not found"})

    with pytest.raises(AirflowNotFoundError):
        _client(handler, token="t").wait_for_dag("d", 0.2)


_DB_ERROR = {"detail": {"reason": "Database error", "statement": "hidden"}}


def test_trigger_sends_again_after_a_database_error_and_creates_one_run():
    posts = []

    def handler(request: httpx.Request) -> httpx.Response:
        posts.append(request)
        if len(posts) == 1:
            return httpx.Response(500, json=_DB_ERROR)
        return httpx.Response(200, json={"dag_run_id": "lute_1", "state": "queued"})

    run = _client(handler, token="t").trigger("lute_test", "lute_1", {"a": 1})
    assert run["state"] == "queued"
    assert [p.method for p in posts] == ["POST", "POST"]
    assert {p.read() for p in posts} == {posts[0].read()}, "the same body, run id included"


def test_trigger_whose_first_request_landed_returns_that_run():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path))
        if request.method == "GET":
            return httpx.Response(200, json={"dag_run_id": "lute_1", "state": "running",
                                             "conf": {"a": 1}})
        if len([s for s in seen if s[0] == "POST"]) == 1:
            return httpx.Response(503, json=_DB_ERROR)  # written, then the answer failed
        return httpx.Response(409, json={"detail": "already exists"})

    run = _client(handler, token="t").trigger("lute_test", "lute_1", {"a": 1})
    assert run["state"] == "running"
    assert seen[-1] == ("GET", "/api/v2/dags/lute_test/dagRuns/lute_1")


def _first_post_fails(first: httpx.Response, after_s: float = 0.0):
    """A handler whose first POST gets ``first`` (after ``after_s``), later ones a queued run.

    No run exists to GET; returns the handler and the list of POSTs it saw.
    """
    posts: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(404, json={"detail": "not found"})
        posts.append(request)
        if len(posts) == 1:
            time.sleep(after_s)
            return first
        return httpx.Response(200, json={"dag_run_id": "lute_1", "state": "queued"})

    return handler, posts


def test_trigger_sends_again_after_a_conflict_of_another_run():
    # two launches at once: Airflow's unique constraint tripped by the other
    # request, while this run does not exist
    handler, posts = _first_post_fails(
        httpx.Response(409, json={"detail": {"reason": "Unique constraint violation"}})
    )
    run = _client(handler, token="t").trigger("lute_test", "lute_1", {})
    assert run["state"] == "queued"
    assert len(posts) == 2


def test_trigger_with_a_run_id_taken_by_another_run_is_an_error():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={"dag_run_id": "lute_1", "conf": {"other": True}})
        return httpx.Response(409, json={"detail": "already exists"})

    with pytest.raises(AirflowError) as err:
        _client(handler, token="t").trigger("lute_test", "lute_1", {})
    assert err.value.status_code == 409


def test_trigger_gives_up_on_a_lasting_server_error():
    posts = []

    def handler(request: httpx.Request) -> httpx.Response:
        posts.append(request)
        return httpx.Response(500, json=_DB_ERROR)

    with pytest.raises(AirflowError) as err:
        _client(handler, token="t", trigger_retry_s=1.0).trigger("lute_test", "lute_1", {})
    assert err.value.status_code == 500
    assert "Database error" in str(err.value)
    assert len(posts) >= 2


def test_trigger_does_not_resend_a_refused_request():
    posts = []

    def handler(request: httpx.Request) -> httpx.Response:
        posts.append(request)
        return httpx.Response(400, json={"detail": "bad conf"})

    with pytest.raises(AirflowError):
        _client(handler, token="t").trigger("lute_test", "lute_1", {})
    assert len(posts) == 1


def test_an_answer_may_take_longer_than_the_embedded_stacks_lock_wait():
    # an API server waiting on SQLite's write lock answers late; the client
    # must not give up (and resend into the same queue) before it can answer
    timeout = AirflowClient("http://airflow.test")._http.timeout
    assert timeout.read is not None and timeout.read > SQLITE_CONNECT_ARGS["timeout"]
    assert timeout.connect is not None and timeout.connect <= 3.0


def test_trigger_resends_after_a_first_answer_slower_than_its_budget():
    # The API server answers 500 only once it has waited out the database
    # lock, which can take longer than the whole resend budget: the budget
    # counts from that first failed answer, so there is a second attempt.
    handler, posts = _first_post_fails(httpx.Response(500, json=_DB_ERROR), after_s=1.2)
    run = _client(handler, token="t", trigger_retry_s=1.0).trigger("lute_test", "lute_1", {})
    assert run["state"] == "queued"
    assert len(posts) == 2


@pytest.mark.parametrize(("second", "created"), [(201, True), (409, False)])
def test_creating_a_variable_resends_after_a_server_error(second, created):
    posts = []

    def handler(request: httpx.Request) -> httpx.Response:
        posts.append(request)
        if len(posts) == 1:
            return httpx.Response(500, json=_DB_ERROR)
        return httpx.Response(second, json={"key": "k"})

    assert _client(handler, token="t").create_variable("k", "v") is created
    assert len(posts) == 2


def _health(triggerer: str) -> dict:
    return {"metadatabase": {"status": "healthy"}, "scheduler": {"status": "healthy"},
            "triggerer": {"status": triggerer}}


def test_a_component_reported_unhealthy_for_a_while_is_asked_again():
    # a busy metadata database delays heartbeats: unhealthy, then healthy again
    answers = [_health("unhealthy"), _health("unhealthy"), _health("healthy")]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=answers.pop(0))

    _client(handler).check_health(wait_s=30.0)
    assert answers == []


def test_a_component_that_stays_unhealthy_is_named():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json=_health("unhealthy"))

    with pytest.raises(AirflowUnreachableError) as err:
        _client(handler).check_health(wait_s=0.5)
    assert "not healthy: triggerer" in str(err.value)
    assert len(calls) >= 2
