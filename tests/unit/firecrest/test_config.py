"""Building the firecrest backend from settings and environment; secrets stay hidden."""

from __future__ import annotations

import logging
import time

import httpx
import pytest
import respx
from firecrest import ClientCredentialsAuth

from jid_service.backends.firecrest import (
    MIN_TOKEN_VALIDITY,
    FirecrestBackend,
    FirecrestConfigError,
    create,
)
from jid_service.backends.firecrest.transport import BearerAuth as _BearerAuth
from jid_service.settings import JIDSettings

from .conftest import JOBS_URL, SYSTEM, WORK_DIR

SECRET = "s3cr3t-client-secret-value"

ENV = {
    "FIRECREST_URL": "https://firecrest.example.org",
    "FIRECREST_CLIENT_ID": "lute-jid",
    "FIRECREST_CLIENT_SECRET": SECRET,
    "AUTH_TOKEN_URL": "https://auth.example.org/realms/hpc/protocol/openid-connect/token",
}


def _settings(**changes: object) -> JIDSettings:
    fields: dict[str, object] = {
        "backend": "firecrest",
        "firecrest_system": SYSTEM,
        "firecrest_work_dir": WORK_DIR,
        "firecrest_launcher": "/opt/lute/bin/lute-run-task",
    }
    fields.update(changes)
    return JIDSettings(**fields)  # type: ignore[arg-type]


async def test_from_settings_uses_client_credentials_with_60s_validity():
    backend = FirecrestBackend.from_settings(_settings(), env=ENV)
    try:
        source = backend._auth._source
        assert isinstance(source, ClientCredentialsAuth)
        assert source._min_token_validity == MIN_TOKEN_VALIDITY >= 60
        assert source._client_id == "lute-jid"
        assert backend.system == SYSTEM
        assert backend.work_dir == WORK_DIR
        assert backend.launcher == "/opt/lute/bin/lute-run-task"
    finally:
        await backend.aclose()


async def test_launcher_defaults_to_lute_run_task():
    backend = FirecrestBackend.from_settings(_settings(firecrest_launcher=None), env=ENV)
    try:
        assert backend.launcher == "lute-run-task"
    finally:
        await backend.aclose()


@pytest.mark.parametrize("missing", sorted(ENV))
def test_a_missing_variable_is_named(missing: str):
    env = {k: v for k, v in ENV.items() if k != missing}
    with pytest.raises(FirecrestConfigError, match=missing):
        FirecrestBackend.from_settings(_settings(), env=env)


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({"firecrest_system": None}, "firecrest_system"),
        ({"firecrest_work_dir": None}, "firecrest_work_dir"),
        ({"firecrest_work_dir": "relative/dir"}, "firecrest_work_dir"),
        ({"firecrest_work_dir": "/scratch/it's"}, "firecrest_work_dir"),
        ({"firecrest_launcher": "lute-run-task; rm -rf /"}, "firecrest_launcher"),
    ],
)
def test_bad_settings_are_named(changes: dict[str, object], name: str):
    with pytest.raises(FirecrestConfigError, match=name):
        FirecrestBackend.from_settings(_settings(**changes), env=ENV)


def test_create_backend_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch):
    for key in ENV:
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(FirecrestConfigError, match="FIRECREST_URL"):
        create(_settings())


async def test_secrets_are_not_in_reprs_or_logs(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    backend = FirecrestBackend.from_settings(_settings(), env=ENV, backoff_initial=0.001)
    backend._auth._source._access_token = "the-access-token"  # as if fetched
    backend._auth._source._token_expiration_ts = time.time() + 3600
    try:
        with respx.mock(base_url=ENV["FIRECREST_URL"]) as router:
            route = router.get(JOBS_URL).mock(
                side_effect=[
                    httpx.Response(500, json={"message": "scheduler error"}),
                    httpx.Response(200, json={"jobs": []}),
                ]
            )
            router.get(f"{JOBS_URL}/1").mock(return_value=httpx.Response(404, json={}))
            assert await backend.statuses(["1"]) == {}
            assert route.calls.last.request.headers["Authorization"] == "Bearer the-access-token"
    finally:
        await backend.aclose()
    shown = repr(backend) + repr(backend._auth) + caplog.text
    assert SECRET not in shown
    assert "the-access-token" not in shown


def test_invalidate_drops_the_cached_token_of_client_credentials_auth():
    auth = ClientCredentialsAuth("id", "secret", "https://auth.example.org/token", 60)
    auth._access_token = "cached"
    auth._token_expiration_ts = 1e12
    bearer = _BearerAuth(auth)
    bearer.invalidate()
    assert auth._access_token is None
    assert auth._token_expiration_ts is None
