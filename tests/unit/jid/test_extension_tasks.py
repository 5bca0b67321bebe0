"""A running JID accepts a managed task of a package installed after it started."""

from __future__ import annotations

import sys

from lute import extensions
from tests.unit.batch.facility_dist import install_facility

from .conftest import running_app

BASE = "/jid/ws"


async def test_a_package_installed_beside_a_running_jid_is_accepted(
    settings, auth, doc, tmp_path
) -> None:
    extensions.forget()
    async with running_app(settings) as client:
        refused = await client.post(f"{BASE}/exp1/render_job", json=doc("Greeter"), headers=auth)
        assert refused.status_code == 422, refused.text
        message = refused.json()["error"]
        assert "'Greeter' is not a known managed task" in message
        assert "lute.managed_tasks" in message  # says where managed tasks come from
        site = install_facility(tmp_path / "site")
        sys.path.insert(0, str(site))
        try:
            accepted = await client.post(
                f"{BASE}/exp1/render_job", json=doc("Greeter"), headers=auth
            )
        finally:
            sys.path.remove(str(site))
            extensions.forget()
    assert accepted.status_code == 200, accepted.text
    assert "Greeter" in " ".join(accepted.json()["value"]["argv"])


async def test_a_misspelt_managed_task_gets_a_did_you_mean(settings, auth, doc) -> None:
    async with running_app(settings) as client:
        refused = await client.post(f"{BASE}/exp1/render_job", json=doc("Testr"), headers=auth)
    assert refused.status_code == 422, refused.text
    assert "did you mean 'Tester'" in refused.json()["error"]
