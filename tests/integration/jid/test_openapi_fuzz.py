"""Schemathesis over ``/openapi.json`` against a live ``jid-service serve`` with a valid token.

Every operation gets schema-valid and schema-invalid requests (a bounded number
of examples, derandomized so a run is repeatable): no 5xx, every answer
conforms to the documented schema, status codes and content types, invalid
data is rejected, and requests without the token are refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance
from schemathesis.core.parameters import ParameterLocation

from jid_service.app import create_app
from jid_service.auth import issue_token
from jid_service.settings import JIDSettings

from .serve_process import ServeProcess, write_task_config

pytestmark = pytest.mark.timeout(300)

# The schema the daemon serves (create_app does no I/O until started); the live
# process below serves the same document, which the first test checks.
_SCHEMA = create_app(JIDSettings(auth_secret="s" * 64)).openapi()
schema = schemathesis.openapi.from_dict(_SCHEMA)


@pytest.fixture(scope="module")
def live_jid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    base = tmp_path_factory.mktemp("fuzz")
    write_task_config(base / "cfg")
    process = ServeProcess(base / "jid", [base / "cfg"])
    process.start()
    try:
        yield process
    finally:
        process.stop()


def test_served_schema_is_the_one_fuzzed(live_jid: ServeProcess) -> None:
    import httpx

    served = httpx.get(f"{live_jid.base}/openapi.json", timeout=10).json()
    assert served["paths"].keys() == _SCHEMA["paths"].keys()


@schema.parametrize()
@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: schemathesis.Case, live_jid: ServeProcess) -> None:
    if case.path == "/jid/ws/wait" and isinstance(case.body, dict):
        # keep the long-poll short (its default is 30 s); out-of-range and
        # mistyped values stay as generated, so negative cases stay negative
        timeout = case.body.get("timeout", 30.0)
        if isinstance(timeout, int | float) and not isinstance(timeout, bool) \
                and 0 <= timeout <= 60:
            case.body["timeout"] = min(timeout, 0.2)
    if isinstance(case.query, dict):
        # a None value is dropped from the query string on the wire: make the
        # case say what is really sent, so that its revalidation is right
        for key in [k for k, v in case.query.items() if v is None]:
            del case.query[key]
    # A case whose headers were generated invalid (the only header is the
    # token) goes out as generated, so the daemon must refuse it (401); every
    # other case carries a valid token.
    headers = None
    if not (case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER)):
        token = issue_token(live_jid.secret, "fuzzer", "*", 600, admin=True)
        headers = {"Authorization": f"Bearer {token}"}
    case.call_and_validate(
        base_url=live_jid.base,
        headers=headers,
        # a schema-valid document may still name a task, config or launcher the
        # daemon refuses (422) or a job it does not know (404): that is correct
        excluded_checks=[positive_data_acceptance],
        timeout=30,
    )


def test_fuzz_left_no_stray_config(live_jid: ServeProcess) -> None:
    assert Path(live_jid.settings_file).exists()
