"""Shell metacharacters in every field of a control document are inert: nothing runs them.

Each payload would create a marker file if any shell saw it. Accepted documents
are run to the end by the local backend (their config file name itself carries
a payload); refused ones must get a 4xx. Either way the marker never appears.
"""

from __future__ import annotations

import asyncio
import shlex
from pathlib import Path

import pytest

from .test_api import BASE, wait_final


def payloads(marker: Path) -> list[str]:
    m = str(marker)
    return [f"$(touch {m})", f"`touch {m}`", f"; touch {m}", f"| touch {m}", f"&& touch {m}",
            f"\ntouch {m}", f"' ; touch {m} ; '", f'" ; touch {m} ; "', f"${{IFS}}touch${{IFS}}{m}"]


FIELDS = ["_id", "arp_root_job_id", "experiment", "run_num", "user", "status", "tool_id",
          "def_id", "def._id", "def.name", "def.executable", "def.trigger", "def.location",
          "def.run_as_user", "def.parameters"]


@pytest.mark.parametrize("field", FIELDS)
async def test_metacharacters_in_every_field(client, token, doc, tmp_path, field) -> None:
    marker = tmp_path / "marker"
    admin = {"Authorization": f"Bearer {token(experiments='*', admin=True)}"}
    accepted = []
    for payload in payloads(marker):
        control = doc()
        if field.startswith("def."):
            key = field[4:]
            control["def"][key] = (control["def"][key] + " " + payload if key == "parameters"
                                   else payload)
        else:
            control[field] = payload
        for path in (f"{BASE}/exp1/render_job", f"{BASE}/exp1/start_job"):
            r = await client.post(path, json=control, headers=admin)
            assert r.status_code in (200, 403, 422), (field, payload, r.text)
            if r.status_code == 200 and path.endswith("start_job"):
                accepted.append(r.json()["value"])
    for job in accepted:
        await wait_final(client, job, admin)
    await asyncio.sleep(0.2)
    assert not marker.exists(), f"a payload in {field} was executed"


async def test_metacharacters_in_an_accepted_config_path(client, auth, doc, config_root,
                                                         tmp_path) -> None:
    """A config file whose very name is a payload is accepted and run, as one argv item."""
    marker = tmp_path / "marker"
    jobs = []
    for i, payload in enumerate(payloads(marker)):
        if "\n" in payload or "/" in payload.replace(str(marker), ""):
            continue
        name = f"cfg{i}{payload.replace(str(marker), 'MARK').replace('/', '_')}.yaml"
        path = config_root / name
        path.write_text("title: t\n")
        control = doc(params=f"--taskname Tester --config {shlex.quote(str(path))}")
        r = await client.post(f"{BASE}/exp1/start_job", json=control, headers=auth)
        assert r.status_code == 200, (payload, r.text)
        jobs.append((path, r.json()["value"]))
    assert jobs
    for path, job in jobs:
        final = await wait_final(client, job, auth)
        assert final["status"] == "DONE"
        log = (await client.post(f"{BASE}/exp1/job_log_file", json=final, headers=auth)).json()
        assert f"config={path}" in log["value"]  # the argument arrived verbatim
    assert not marker.exists()
    assert not (config_root / "MARK").exists()
