"""A small client of Airflow 3's REST API v2 (what the launcher needs, nothing more).

Token auth: ``POST /auth/token`` with the user's name and password gives a JWT
sent as ``Authorization: Bearer``; a ready token can be given instead. Every
call has a timeout; connection errors are retried (``attempts`` tries in all,
0.5 s before the second, doubling after) and then raised as
:class:`AirflowUnreachableError`. Creating a run or a Variable is sent again
after a 5xx, and the health check asked again while a component reports
unhealthy: both happen while the metadata database is busy. A refused login
or token is :class:`AirflowAuthError`. The password and token never appear
in messages.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from lute.airflow.client import bearer
from lute.launch.airflow_sqlite import CONNECT_ARGS as SQLITE_CONNECT_ARGS

HEALTH_NEEDED = ("metadatabase", "scheduler", "triggerer")

HEALTH_WAIT_S = 60.0
"""How long a component that reports unhealthy is given to recover before the launch fails."""

READ_TIMEOUT_S = SQLITE_CONNECT_ARGS["timeout"] + 10.0
"""How long an answer may take: longer than the embedded stack's SQLite lock wait.

An API server whose request waits for the metadata database's write lock
answers late, not never; giving up sooner only resends the request to the
same queue (and, under load, reported a busy Airflow as unreachable).
"""


class AirflowError(Exception):
    """Airflow answered with an unexpected error."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class AirflowUnreachableError(AirflowError):
    """Airflow could not be reached (after a few retries) or is not healthy."""


class AirflowAuthError(AirflowError):
    """Airflow refused the credentials."""


class AirflowNotFoundError(AirflowError):
    """The DAG or run does not exist."""


T = TypeVar("T")


def _q(value: str) -> str:
    return quote(value, safe="")


class _UnhealthyError(AirflowUnreachableError):
    """Airflow answered, but a component it needs reports unhealthy."""


class _TransientConflictError(AirflowError):
    """A 409 from a create whose run does not exist: another request's conflict."""


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, _TransientConflictError):
        return True
    return (
        isinstance(exc, AirflowError)
        and not isinstance(exc, AirflowUnreachableError)
        and exc.status_code is not None
        and exc.status_code >= 500
    )


def _stop_after_first_failure(seconds: float) -> Callable[[RetryCallState], bool]:
    """A tenacity stop: give up ``seconds`` after the first failed answer.

    Counted from that answer, not from the first request: one answer can take
    a whole database lock wait (an API server request that waited out the
    embedded stack's 30 s SQLite lock answers 500 only then), and a budget
    counted from the start would then allow no second attempt.
    """
    first: list[float] = []

    def stop(state: RetryCallState) -> bool:
        now = state.outcome_timestamp or time.monotonic()
        if not first:
            first.append(now)
        return now - first[0] > seconds

    return stop


class AirflowClient:
    """Blocking client of one Airflow instance."""

    def __init__(
        self,
        base_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout: float = READ_TIMEOUT_S,
        attempts: int = 3,
        trigger_retry_s: float = 20.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._username = username
        self._password = password
        self._token = token
        self.attempts = attempts
        self.trigger_retry_s = trigger_retry_s
        # a short connect timeout: an unroutable host must still fail within ~10 s
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"AirflowClient({self.base_url!r})"

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # ------------------------------------------------------------- transport
    def _send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        # only connection-level failures are retried: an HTTP answer, even an
        # error, is Airflow's word and is mapped by the caller
        retrying = Retrying(
            retry=retry_if_exception_type(httpx.TransportError),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=0.5),
            reraise=True,
        )
        try:
            return retrying(self._http.request, method, path, **kw)
        except httpx.TransportError as exc:
            raise AirflowUnreachableError(
                f"cannot reach Airflow at {self.base_url} ({type(exc).__name__})"
            ) from None

    def login(self) -> None:
        """Get a JWT from ``/auth/token`` unless a token was given."""
        if self._token:
            return
        if not (self._username and self._password):
            raise AirflowAuthError("no Airflow credentials (username and password, or a token)")
        resp = self._send(
            "POST", "/auth/token", json={"username": self._username, "password": self._password}
        )
        if resp.status_code in (401, 403):
            raise AirflowAuthError(
                f"Airflow at {self.base_url} refused the login of user {self._username!r}",
                resp.status_code,
            )
        if resp.status_code >= 400:
            raise AirflowError(f"Airflow login failed ({resp.status_code})", resp.status_code)
        self._token = resp.json()["access_token"]

    def request(self, method: str, path: str, **kw: Any) -> Any:
        """An authenticated call; the decoded JSON body (None if empty)."""
        headers = dict(kw.pop("headers", None) or {})
        if self._token:
            headers["Authorization"] = bearer(self._token)
        resp = self._send(method, path, headers=headers, **kw)
        if resp.status_code in (401, 403):
            raise AirflowAuthError(
                f"Airflow refused the credentials ({resp.status_code}) for {method} {path}",
                resp.status_code,
            )
        if resp.status_code == 404:
            raise AirflowNotFoundError(f"Airflow: not found: {method} {path}", 404)
        if resp.status_code >= 400:
            detail = resp.text[:300]
            raise AirflowError(
                f"Airflow answered {resp.status_code} to {method} {path}: {detail}",
                resp.status_code,
            )
        return resp.json() if resp.content else None

    # ---------------------------------------------------------------- calls
    def health(self) -> dict[str, Any]:
        """``/api/v2/monitor/health`` (no auth needed)."""
        resp = self._send("GET", "/api/v2/monitor/health")
        if resp.status_code >= 400:
            raise AirflowUnreachableError(f"Airflow health check answered {resp.status_code}")
        return resp.json()

    def check_health(
        self, needed: tuple[str, ...] = HEALTH_NEEDED, wait_s: float = HEALTH_WAIT_S
    ) -> None:
        """Raise AirflowUnreachableError unless every ``needed`` component is healthy.

        A component that reports unhealthy is asked again for up to ``wait_s``
        seconds: a busy metadata database delays the scheduler's and the
        triggerer's heartbeats, and Airflow then reports them unhealthy for a
        while although they run.
        """

        def once() -> None:
            body = self.health()
            bad = [k for k in needed if (body.get(k) or {}).get("status") != "healthy"]
            if bad:
                raise _UnhealthyError(
                    f"Airflow at {self.base_url} is up but not healthy: {', '.join(bad)}"
                )

        Retrying(
            retry=retry_if_exception_type(_UnhealthyError),
            stop=stop_after_delay(wait_s),
            wait=wait_exponential(multiplier=0.5, max=5.0),
            reraise=True,
        )(once)

    def connection_has_password(self, conn_id: str) -> bool | None:
        """Whether Airflow's stored connection ``conn_id`` carries a password (a token).

        None when Airflow cannot tell this caller: no such stored connection (one
        defined by an environment variable is not listed), or no permission to read
        connections.
        """
        try:
            conn = self.request("GET", f"/api/v2/connections/{_q(conn_id)}")
        except (AirflowNotFoundError, AirflowAuthError):
            return None
        return bool((conn or {}).get("password"))

    def get_dag(self, dag_id: str) -> dict[str, Any]:
        """The DAG's details (raises AirflowNotFoundError)."""
        return self.request("GET", f"/api/v2/dags/{_q(dag_id)}")

    def wait_for_dag(
        self,
        dag_id: str,
        timeout: float = 120.0,
        *,
        on_wait: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """The DAG's details once Airflow has parsed it (a new DAG file takes a while).

        Polls every 0.5 s, growing to 3 s; ``on_wait`` is called once, before the
        first wait. Raises AirflowNotFoundError if the DAG is still unknown after
        ``timeout`` seconds.
        """

        def before_sleep(state: RetryCallState) -> None:
            if on_wait is not None and state.attempt_number == 1:
                on_wait()

        retrying = Retrying(
            retry=retry_if_exception_type(AirflowNotFoundError),
            stop=stop_after_delay(timeout),
            wait=wait_exponential(multiplier=0.5, exp_base=1.5, max=3.0),
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(self.get_dag, dag_id)

    def unpause(self, dag_id: str) -> None:
        """Unpause a DAG."""
        self.request("PATCH", f"/api/v2/dags/{_q(dag_id)}", json={"is_paused": False})

    def create_variable(self, key: str, value: str, description: str = "") -> bool:
        """Create a Variable; False if one of that key already exists (it is left as it is).

        A 5xx (a busy metadata database) is sent again, as :meth:`trigger` does;
        a 409 after that may be this request's own earlier attempt.
        """
        body = {"key": key, "value": value, "description": description}

        def attempt() -> bool:
            try:
                self.request("POST", "/api/v2/variables", json=body)
            except AirflowError as exc:
                if exc.status_code == 409:
                    return False
                raise
            return True

        return self._resending(attempt)

    def _resending(self, attempt: Callable[[], T]) -> T:
        """``attempt()``, sent again on a transient failure for ``trigger_retry_s``."""
        retrying = Retrying(
            retry=retry_if_exception(_is_transient),
            stop=_stop_after_first_failure(self.trigger_retry_s),
            wait=wait_exponential(multiplier=0.5, max=4.0),
            reraise=True,
        )
        return retrying(attempt)

    def tasks(self, dag_id: str) -> list[dict[str, Any]]:
        """The DAG's tasks (``task_id``, ``operator_name``, ...)."""
        return self.request("GET", f"/api/v2/dags/{_q(dag_id)}/tasks")["tasks"]

    def dag_ids(self, pattern: str | None = None) -> list[str]:
        """The ids of the DAGs Airflow has parsed (``pattern``: SQL LIKE on the id)."""
        params: dict[str, Any] = {"limit": 1000}
        if pattern:
            params["dag_id_pattern"] = pattern
        body = self.request("GET", "/api/v2/dags", params=params) or {}
        return [d["dag_id"] for d in body.get("dags") or [] if d.get("dag_id")]

    def import_errors(self) -> list[dict[str, Any]]:
        """The DAG files Airflow failed to import (``filename``, ``stack_trace``, ...)."""
        body = self.request("GET", "/api/v2/importErrors", params={"limit": 1000}) or {}
        return list(body.get("import_errors") or [])

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any]) -> dict[str, Any]:
        """Create a DAG run now (``logical_date`` null, as Airflow 3 requires).

        Airflow answers 5xx, or 409 "Unique constraint violation", when its
        metadata database is briefly busy or another run of the DAG is created
        at the same moment (SQLite locked, a PostgreSQL fail-over), though the
        run may have been written. The run id is the caller's, so sending again
        is safe: after a 409 the run is looked up, and a run of that id with the
        same conf is this request's; no such run means the conflict was another
        one's, and the request is sent again. A run of that id with another
        conf is an error.
        """
        body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns"

        def attempt() -> dict[str, Any]:
            try:
                return self.request("POST", path, json=body)
            except AirflowError as exc:
                if exc.status_code != 409:
                    raise
                try:
                    existing = self.dag_run(dag_id, run_id)
                except AirflowNotFoundError:
                    raise _TransientConflictError(str(exc), 409) from None
                if existing.get("conf") != conf:
                    raise
                return existing

        return self._resending(attempt)

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """The run's details (``state``, dates)."""
        return self.request("GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The run's task instances."""
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances"
        return self.request("GET", path, params={"limit": 1000})["task_instances"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str) -> Any:
        """An XCom value (native JSON)."""
        path = (
            f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/"
            f"{_q(task_id)}/xcomEntries/{_q(key)}"
        )
        return self.request("GET", path)["value"]

    def task_log_events(
        self, dag_id: str, run_id: str, task_id: str, try_number: int
    ) -> list[dict[str, Any]]:
        """The structured events of one try's Airflow task log."""
        path = (
            f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/"
            f"{_q(task_id)}/logs/{int(try_number)}"
        )
        body = self.request(
            "GET", path, params={"full_content": "true"}, headers={"Accept": "application/json"}
        )
        content = (body or {}).get("content") or []
        return [e for e in content if isinstance(e, dict)]

    def mark_run_failed(self, dag_id: str, run_id: str) -> None:
        """Set the run's state to failed (Airflow then stops its running tasks)."""
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}"
        self.request("PATCH", path, json={"state": "failed"})
