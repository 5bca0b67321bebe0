"""Every auth rule on every protected endpoint; tokens never reach the logs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from .conftest import SECRET

BASE = "/jid/ws"


def _requests(doc: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(method, path, body) of every endpoint that needs a token."""
    return [
        ("POST", f"{BASE}/exp1/start_job", doc),
        ("POST", f"{BASE}/job_statuses", [doc]),
        ("POST", f"{BASE}/exp1/job_log_file", doc),
        ("POST", f"{BASE}/exp1/job_log", {"job": doc, "offset": 0, "limit": 10}),
        ("POST", f"{BASE}/exp1/kill_job", doc),
        ("POST", f"{BASE}/exp1/render_job", doc),
        ("POST", f"{BASE}/wait", {"jobs": [doc], "timeout": 0}),
        ("GET", f"{BASE}/jobs", None),
    ]


def _raw(claims: dict[str, Any], secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def _without(claims: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in claims.items() if k != key}


def _bad_headers(token: Callable[..., str]) -> dict[str, dict[str, str]]:
    now = int(time.time())
    good = {"sub": "alice", "experiments": ["exp1"], "admin": False, "exp": now + 600}
    return {
        "missing": {},
        "empty": {"Authorization": ""},
        "basic scheme": {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
        "bearer without token": {"Authorization": "Bearer"},
        "garbage": {"Authorization": "Bearer not-a-jwt"},
        "expired": {"Authorization": f"Bearer {token(ttl=-30)}"},
        "wrong secret": {"Authorization": f"Bearer {_raw(good, secret='x' * 40)}"},
        "no exp": {"Authorization": f"Bearer {_raw(_without(good, 'exp'))}"},
        "no sub": {"Authorization": f"Bearer {_raw(_without(good, 'sub'))}"},
        "bad experiments": {"Authorization": f"Bearer {_raw({**good, 'experiments': 5})}"},
        "bad admin": {"Authorization": f"Bearer {_raw({**good, 'admin': 'yes'})}"},
        "other algorithm": {"Authorization": f"Bearer {_raw(good, algorithm='HS512')}"},
        "unsigned": {"Authorization": "Bearer " + jwt.encode(good, None, algorithm="none")},
    }


@pytest.mark.parametrize("case", list(_bad_headers(lambda **_: "x")))
async def test_401_on_every_endpoint(client, token, doc, case: str) -> None:
    headers = _bad_headers(token)[case]
    for method, path, body in _requests(doc()):
        r = await client.request(method, path, json=body, headers=headers)
        assert r.status_code == 401, (case, path, r.text)
        assert r.json()["success"] is False and r.json()["error"]
        assert r.headers["www-authenticate"] == "Bearer"


async def test_403_for_another_experiment(client, token, doc) -> None:
    headers = {"Authorization": f"Bearer {token(experiments=['exp2'])}"}
    for method, path, body in _requests(doc()):
        if "/exp1/" not in path:
            continue
        r = await client.request(method, path, json=body, headers=headers)
        assert r.status_code == 403, (path, r.text)
        assert "exp1" in r.json()["error"]


async def test_run_as_user_is_recorded_but_grants_nothing(client, token, doc) -> None:
    # LUTE's operator sends the Airflow worker's account as run_as_user with a
    # non-admin token: that must work, and the job is still the token user's
    other = doc(definition={"run_as_user": "airflow-worker"})
    alice = {"Authorization": f"Bearer {token(user='alice')}"}
    for path in (f"{BASE}/exp1/start_job", f"{BASE}/exp1/render_job"):
        r = await client.post(path, json=other, headers=alice)
        assert r.status_code == 200, r.text
    bob = {"Authorization": f"Bearer {token(user='airflow-worker')}"}
    r = await client.post(f"{BASE}/exp1/kill_job", json=other, headers=bob)
    assert r.status_code == 403, r.text


@pytest.mark.parametrize("run_as_user", [None, ""])
async def test_empty_run_as_user_is_the_caller(client, auth, doc, run_as_user) -> None:
    r = await client.post(f"{BASE}/exp1/render_job",
                          json=doc(definition={"run_as_user": run_as_user}), headers=auth)
    assert r.status_code == 200


async def test_wildcard_and_list_tokens(client, token, doc) -> None:
    for exps in ("*", ["*"], ["exp0", "exp1"]):
        headers = {"Authorization": f"Bearer {token(experiments=exps)}"}
        r = await client.post(f"{BASE}/exp1/render_job", json=doc(), headers=headers)
        assert r.status_code == 200, exps


async def test_health_and_metrics_need_no_token(client) -> None:
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/metrics")).status_code == 200


async def test_tokens_never_logged(client, token, doc, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    good = token()
    expired = token(ttl=-30)
    await client.post(f"{BASE}/exp1/start_job", json=doc(),
                      headers={"Authorization": f"Bearer {good}"})
    await client.post(f"{BASE}/exp1/start_job", json=doc(),
                      headers={"Authorization": f"Bearer {expired}"})
    r = await client.post(f"{BASE}/exp1/start_job", json=doc(),
                          headers={"Authorization": "Bearer not-a-jwt"})
    assert "not-a-jwt" not in r.text
    text = caplog.text
    assert good not in text and expired not in text
    metrics = (await client.get("/metrics")).text
    assert good not in metrics and "Bearer" not in metrics
